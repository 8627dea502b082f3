//! What an agent behind the gateway is told, per CLI: the gateway as its
//! provider's base URL and its token as its key.

use super::route::{opencode_config, opencode_provider_id};
use super::{Access, Provider};
use std::collections::BTreeMap;

/// The access as the agent's environment says it, per CLI (Codex's is
/// also in its arguments); `env` is the profile's, which opencode's config
/// is merged from.
pub fn agent_env(
    adapter: &str,
    provider: Provider,
    model: Option<&str>,
    access: &Access,
    env: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let (url, token) = (access.base_url.clone(), access.token.clone());
    match (adapter, provider) {
        ("claude", _) => vec![
            ("ANTHROPIC_BASE_URL".into(), url),
            ("ANTHROPIC_API_KEY".into(), token),
        ],
        ("codex", _) => vec![("BATON_GATEWAY_KEY".into(), token)],
        ("gemini", _) => vec![
            ("GOOGLE_GEMINI_BASE_URL".into(), url),
            ("GEMINI_API_KEY".into(), token),
        ],
        // aider's models are litellm's: each provider's base and key.
        ("aider", Provider::Anthropic) => vec![
            ("ANTHROPIC_API_BASE".into(), url.clone()),
            ("ANTHROPIC_BASE_URL".into(), url),
            ("ANTHROPIC_API_KEY".into(), token),
        ],
        ("aider", Provider::Gemini) => vec![
            ("GEMINI_API_BASE".into(), url),
            ("GEMINI_API_KEY".into(), token),
        ],
        ("aider", Provider::Openai) => vec![
            ("OPENAI_API_BASE".into(), format!("{url}/v1")),
            ("OPENAI_API_KEY".into(), token),
        ],
        ("opencode", _) => {
            let mut config = opencode_config(env).unwrap_or_default();
            let id = opencode_provider_id(model, env).unwrap_or_else(|| provider.to_string());
            let base = match provider {
                Provider::Gemini => format!("{url}/v1beta"),
                _ => format!("{url}/v1"),
            };
            let providers = config
                .entry("provider")
                .or_insert_with(|| serde_json::json!({}));
            if let Some(all) = providers.as_object_mut() {
                // No provider of its config keeps a key: the agent holds
                // only its token.
                for other in all.values_mut() {
                    let options = other.get_mut("options").and_then(|o| o.as_object_mut());
                    if let Some(o) = options {
                        o.remove("apiKey");
                    }
                }
                let p = all.entry(id).or_insert_with(|| serde_json::json!({}));
                if let Some(p) = p.as_object_mut() {
                    let options = p.entry("options").or_insert_with(|| serde_json::json!({}));
                    if let Some(o) = options.as_object_mut() {
                        o.insert("baseURL".into(), base.into());
                        o.insert("apiKey".into(), token.into());
                    }
                }
            }
            let text = serde_json::Value::Object(config).to_string();
            vec![("OPENCODE_CONFIG_CONTENT".into(), text)]
        }
        _ => Vec::new(),
    }
}
