//! The model gateway's seam: baton stands between agents and their model
//! providers. An attempt's agent is given the gateway as its provider's
//! base URL and a token of its own as its key; the gateway forwards each
//! request to the real provider with the real key (which the agent never
//! sees), reads the usage from every answer (streamed or not) and tells the
//! attempt, refuses a request once the attempt may spend no more, and
//! forgets the token when the attempt ends. The gateway itself (an HTTP
//! server and client) lives in a crate of its own, which the binary plugs
//! in ([`GatewayKind`]); everything here is pure.

use crate::adapter::Prices;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

pub use crate::model::Provider;

impl Provider {
    /// Where its API is when the plan says nothing.
    pub fn default_url(self) -> &'static str {
        match self {
            Provider::Anthropic => "https://api.anthropic.com",
            Provider::Openai => "https://api.openai.com",
            Provider::Gemini => "https://generativelanguage.googleapis.com",
        }
    }

    /// The variables that hold its key, in the order they are looked for.
    pub fn key_vars(self) -> &'static [&'static str] {
        match self {
            Provider::Anthropic => &["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"],
            Provider::Openai => &["OPENAI_API_KEY", "CODEX_API_KEY"],
            Provider::Gemini => &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        }
    }

    /// The provider a profile's agent speaks, if the gateway can stand in
    /// front of it: Claude Code, Codex and Gemini CLI speak their vendor's;
    /// aider and opencode the one their model names (`anthropic/...`,
    /// `gemini/...`; any other: an OpenAI-compatible API). opencode's model
    /// may be in its config (`OPENCODE_CONFIG_CONTENT` in `env`).
    pub fn of_profile(
        adapter: &str,
        model: Option<&str>,
        env: &BTreeMap<String, String>,
    ) -> Option<Provider> {
        match adapter {
            "claude" => Some(Provider::Anthropic),
            "codex" => Some(Provider::Openai),
            "gemini" => Some(Provider::Gemini),
            "aider" => Some(by_model(model.unwrap_or(""))),
            "opencode" => {
                let from_config = || {
                    let c = opencode_config(env)?;
                    c.get("model")?.as_str().map(str::to_string)
                };
                let m = model.map(str::to_string).or_else(from_config);
                Some(by_model(&m.unwrap_or_default()))
            }
            _ => None,
        }
    }
}

/// The provider a model name means (`anthropic/claude-x`, `claude-x`,
/// `gemini/...`, `google/...`; anything else an OpenAI-compatible API).
fn by_model(model: &str) -> Provider {
    let (prefix, name) = model.split_once('/').unwrap_or(("", model));
    match prefix {
        "anthropic" => Provider::Anthropic,
        "gemini" | "google" => Provider::Gemini,
        "" if name.starts_with("claude") => Provider::Anthropic,
        "" if name.starts_with("gemini") => Provider::Gemini,
        _ => Provider::Openai,
    }
}

/// opencode's config given in the profile's environment, if any.
fn opencode_config(
    env: &BTreeMap<String, String>,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    match serde_json::from_str(env.get("OPENCODE_CONFIG_CONTENT")?).ok()? {
        serde_json::Value::Object(m) => Some(m),
        _ => None,
    }
}

/// The provider id of opencode's model (`mock` of `mock/model`).
fn opencode_provider_id(model: Option<&str>, env: &BTreeMap<String, String>) -> Option<String> {
    let m = match model {
        Some(m) => m.to_string(),
        None => opencode_config(env)?.get("model")?.as_str()?.to_string(),
    };
    m.split_once('/').map(|(p, _)| p.to_string())
}

/// Every variable a CLI could take a provider's key, address or another
/// way to a model from (a cloud's credentials, a switch to a cloud's API
/// that would pass the gateway by): an agent behind the gateway gets none
/// of them, from its profile or from baton's environment.
pub const PROVIDER_VARS: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_BEDROCK_BASE_URL",
    "ANTHROPIC_VERTEX_BASE_URL",
    "ANTHROPIC_VERTEX_PROJECT_ID",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "AWS_BEARER_TOKEN_BEDROCK",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_API_BASE",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT",
    "AZURE_OPENAI_API_KEY",
    "CODEX_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
];

/// The key a provider's requests carry, and how: Anthropic takes an API
/// key as `x-api-key` and an auth token (`ANTHROPIC_AUTH_TOKEN`) as a
/// bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub key: String,
    pub bearer: bool,
}

/// Where one provider's requests go.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// Scheme, host and optional path prefix (`https://api.anthropic.com`).
    pub url: String,
}

/// What a provider account may do, kept by the gateway for every agent on
/// it (`[gateway.accounts.<account>]`; a profile's account is its
/// `account`, else its name).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountLimits {
    /// Requests a minute, started evenly spaced.
    pub rpm: Option<u32>,
    /// Tokens a minute (input and output of the answers).
    pub tpm: Option<u64>,
    /// Requests in flight at once.
    pub concurrency: Option<u32>,
}

/// The gateway of a run (`[gateway]`).
#[derive(Debug, Clone, PartialEq)]
pub struct GatewaySettings {
    /// Where it listens (`127.0.0.1:0`: a free port on loopback).
    pub listen: String,
    pub providers: BTreeMap<Provider, Upstream>,
    pub accounts: BTreeMap<String, AccountLimits>,
    /// Each request's and answer's body told to its attempt, which keeps
    /// them masked beside its log (off: no prompt is kept).
    pub log_bodies: bool,
}

impl Default for GatewaySettings {
    fn default() -> GatewaySettings {
        GatewaySettings {
            listen: "127.0.0.1:0".into(),
            providers: Provider::ALL
                .iter()
                .map(|p| {
                    let url = p.default_url().to_string();
                    (*p, Upstream { url })
                })
                .collect(),
            accounts: BTreeMap::new(),
            log_bodies: false,
        }
    }
}

/// Tokens one answer used, as the provider counted them. `input` does not
/// include the cached tokens (`cache_read`, `cache_write`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireUsage {
    pub input: u64,
    pub output: u64,
    #[serde(default)]
    pub cache_read: u64,
    #[serde(default)]
    pub cache_write: u64,
}

impl WireUsage {
    pub fn add(&mut self, o: &WireUsage) {
        self.input += o.input;
        self.output += o.output;
        self.cache_read += o.cache_read;
        self.cache_write += o.cache_write;
    }

    /// Its cost at `model`'s price: cache reads at a tenth of the input
    /// price, cache writes at 1.25 times it (the providers' list terms).
    pub fn cost(&self, prices: &Prices, model: &str) -> Option<f64> {
        let p = prices.lookup(model)?;
        let per = 1_000_000.0;
        let input =
            self.input as f64 + self.cache_read as f64 * 0.1 + self.cache_write as f64 * 1.25;
        Some((input * p.input + self.output as f64 * p.output) / per)
    }
}

/// What the gateway tells an attempt about one of its requests.
#[derive(Debug, Clone, PartialEq)]
pub enum Wire {
    /// A request was answered (any status): its model and what it used.
    Answered {
        provider: Provider,
        model: Option<String>,
        status: u16,
        usage: Option<WireUsage>,
        /// From the request's start to the answer's end.
        ms: u64,
    },
    /// The provider limited it (429, 529, a used-up quota); `retry_after`
    /// as it said, in seconds.
    Limited {
        provider: Provider,
        status: u16,
        retry_after: Option<u64>,
        message: String,
    },
    /// The gateway refused it (the attempt may spend no more).
    Refused { provider: Provider, why: String },
    /// It waits at the gateway for its account's limits (`why`), about
    /// `ms` long.
    Queued { why: String, ms: u64 },
    /// A request's body and its answer's (`log_bodies`), each cut at
    /// [`MAX_LOGGED_BODY`].
    Bodies { request: String, answer: String },
    /// It went on after waiting.
    Going,
}

/// The base URL a profile gives its CLI for `provider` itself (its `env`,
/// or opencode's config), as the gateway's upstream for its requests: the
/// API version at its end (`/v1`, `/v1beta`) is the request's, not the
/// upstream's. Plan text, never the agent's: it cannot send the key
/// elsewhere.
pub fn profile_upstream(
    adapter: &str,
    provider: Provider,
    model: Option<&str>,
    env: &BTreeMap<String, String>,
) -> Option<Upstream> {
    let var = |k: &str| env.get(k).cloned();
    let url = match (adapter, provider) {
        ("claude", _) => var("ANTHROPIC_BASE_URL"),
        ("gemini", _) => var("GOOGLE_GEMINI_BASE_URL"),
        ("aider", Provider::Openai) => var("OPENAI_API_BASE"),
        ("aider", Provider::Anthropic) => {
            var("ANTHROPIC_API_BASE").or_else(|| var("ANTHROPIC_BASE_URL"))
        }
        ("aider", Provider::Gemini) => var("GEMINI_API_BASE"),
        ("opencode", _) => {
            let id = opencode_provider_id(model, env)?;
            let c = opencode_config(env)?;
            let u = c
                .get("provider")?
                .get(&id)?
                .get("options")?
                .get("baseURL")?;
            u.as_str().map(str::to_string)
        }
        _ => None,
    }?;
    let url = url.trim().trim_end_matches('/');
    let url = ["/v1beta", "/v1"]
        .iter()
        .find_map(|v| url.strip_suffix(v))
        .unwrap_or(url);
    let ok = (url.starts_with("http://") || url.starts_with("https://")) && !url.contains('?');
    ok.then(|| Upstream {
        url: url.to_string(),
    })
}

/// The most of one body `log_bodies` keeps.
pub const MAX_LOGGED_BODY: usize = 1024 * 1024;

/// Whom a token is for: an attempt (`label`: run/task/attempt), the
/// provider it may reach and with what key, and the account whose limits
/// it shares.
#[derive(Debug, Clone, PartialEq)]
pub struct Grantee {
    pub label: String,
    pub provider: Provider,
    pub credential: Credential,
    pub account: String,
    /// Where its requests go, when its profile names its own base URL (an
    /// existing proxy setup); else `[gateway.providers]`'s.
    pub upstream: Option<Upstream>,
}

/// What an attempt's agent is given to reach its provider.
#[derive(Debug, Clone, PartialEq)]
pub struct Access {
    /// `http://127.0.0.1:PORT/<provider>`: the provider's base URL for it.
    pub base_url: String,
    /// Its key: good for this attempt only, while it runs.
    pub token: String,
}

/// A run's gateway, as the engine uses it.
pub trait Gateway: Send + Sync {
    /// `http://host:port`, where agents reach it.
    fn url(&self) -> String;
    /// A token for one attempt; what its requests do is told to `sink`.
    fn grant(&self, who: Grantee, sink: UnboundedSender<Wire>) -> String;
    /// From now on `token`'s requests are refused with `why`.
    fn refuse(&self, token: &str, why: &str);
    /// `token` is forgotten: the attempt ended.
    fn revoke(&self, token: &str);
}

/// A future the binary's gateway returns.
pub type Boxed<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// A gateway that started, or why not.
pub type Started = Result<Arc<dyn Gateway>, String>;

/// What the binary plugs in: how a run's gateway is started.
pub struct GatewayKind {
    pub start: fn(GatewaySettings) -> Boxed<Started>,
}

/// The key `provider`'s requests carry for a profile: from its `env`, else
/// from baton's own environment (`process_env`); None: there is none.
/// How a profile's agent goes through the gateway: the provider its CLI
/// speaks, the key its requests carry, and its own upstream if it names one.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub provider: Provider,
    pub credential: Credential,
    pub upstream: Option<Upstream>,
}

/// Why a profile's agent cannot go through the gateway.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RouteError {
    #[error("the {0} adapter cannot go through the gateway")]
    Speaks(String),
    #[error("no key for {provider}; set {} in the profile's env or in baton's environment", .provider.key_vars().join(" or "))]
    NoKey { provider: Provider },
}

/// The route of a profile's agent (`process_env`: baton's environment,
/// where a key is looked for after the profile's `env`).
pub fn route(
    adapter: &str,
    model: Option<&str>,
    env: &BTreeMap<String, String>,
    process_env: impl Fn(&str) -> Option<String>,
) -> Result<Route, RouteError> {
    let provider = Provider::of_profile(adapter, model, env)
        .ok_or_else(|| RouteError::Speaks(adapter.to_string()))?;
    let credential = credential_for(adapter, model, provider, env, process_env)
        .ok_or(RouteError::NoKey { provider })?;
    Ok(Route {
        provider,
        credential,
        upstream: profile_upstream(adapter, provider, model, env),
    })
}

/// The key for a profile's agent: an opencode profile's own provider's
/// `apiKey` in its config first, then as [`key_for`].
pub fn credential_for(
    adapter: &str,
    model: Option<&str>,
    provider: Provider,
    profile_env: &BTreeMap<String, String>,
    process_env: impl Fn(&str) -> Option<String>,
) -> Option<Credential> {
    if adapter == "opencode" {
        let id = opencode_provider_id(model, profile_env);
        let config = opencode_config(profile_env);
        let key = id.zip(config).and_then(|(id, c)| {
            let k = c.get("provider")?.get(&id)?.get("options")?.get("apiKey")?;
            k.as_str().map(str::to_string)
        });
        if let Some(key) = key.filter(|k| !k.trim().is_empty()) {
            return Some(Credential { key, bearer: false });
        }
    }
    key_for(provider, profile_env, process_env)
}

pub fn key_for(
    provider: Provider,
    profile_env: &BTreeMap<String, String>,
    process_env: impl Fn(&str) -> Option<String>,
) -> Option<Credential> {
    let vars = provider.key_vars();
    let given = |k: &String| !k.trim().is_empty();
    let (var, key) = vars
        .iter()
        .find_map(|v| {
            profile_env
                .get(*v)
                .filter(|k| given(k))
                .map(|k| (*v, k.clone()))
        })
        .or_else(|| {
            vars.iter()
                .find_map(|v| process_env(v).filter(given).map(|k| (*v, k)))
        })?;
    Some(Credential {
        key,
        bearer: var == "ANTHROPIC_AUTH_TOKEN",
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_comes_from_the_profile_first_then_from_batons_environment() {
        let mut env = BTreeMap::new();
        let none = |_: &str| None;
        assert_eq!(key_for(Provider::Anthropic, &env, none), None);
        let process = |v: &str| (v == "ANTHROPIC_AUTH_TOKEN").then(|| "from-baton".to_string());
        let bearer = Credential {
            key: "from-baton".into(),
            bearer: true,
        };
        assert_eq!(key_for(Provider::Anthropic, &env, process), Some(bearer));
        env.insert("ANTHROPIC_API_KEY".to_string(), "from-profile".to_string());
        let key = key_for(Provider::Anthropic, &env, process).unwrap();
        assert_eq!((key.key.as_str(), key.bearer), ("from-profile", false));
        env.insert("GEMINI_API_KEY".to_string(), " ".to_string());
        assert_eq!(key_for(Provider::Gemini, &env, none), None, "blank is none");
    }

    #[test]
    fn aider_and_opencode_speak_the_provider_their_model_names() {
        let none = BTreeMap::new();
        let of = |a: &str, m: &str| Provider::of_profile(a, Some(m), &none);
        assert_eq!(of("aider", "openai/mock-model"), Some(Provider::Openai));
        assert_eq!(of("aider", "claude-sonnet-4-5"), Some(Provider::Anthropic));
        assert_eq!(
            of("opencode", "google/gemini-2.5-pro"),
            Some(Provider::Gemini)
        );
        assert_eq!(of("exec", "x"), None);
        let mut env = BTreeMap::new();
        let config = r#"{"model":"mock/m","provider":{"mock":{"npm":"x","options":{"baseURL":"http://old/v1","apiKey":"sk-in-config"}}}}"#;
        env.insert("OPENCODE_CONFIG_CONTENT".to_string(), config.to_string());
        assert_eq!(
            Provider::of_profile("opencode", None, &env),
            Some(Provider::Openai)
        );
        let key = credential_for("opencode", None, Provider::Openai, &env, |_| None).unwrap();
        assert_eq!(key.key, "sk-in-config");
        let access = Access {
            base_url: "http://127.0.0.1:7/openai".into(),
            token: "baton-gw-t".into(),
        };
        let set = agent_env("opencode", Provider::Openai, None, &access, &env);
        let merged: serde_json::Value = serde_json::from_str(&set[0].1).unwrap();
        let options = &merged["provider"]["mock"]["options"];
        assert_eq!(options["baseURL"], "http://127.0.0.1:7/openai/v1");
        assert_eq!(options["apiKey"], "baton-gw-t");
        assert_eq!(merged["provider"]["mock"]["npm"], "x", "the rest is kept");
        assert!(!set[0].1.contains("sk-in-config"));
    }

    #[test]
    fn a_profiles_own_base_url_is_its_upstream_less_the_api_version() {
        let env: BTreeMap<String, String> = [
            ("ANTHROPIC_BASE_URL", "https://proxy.example/anthropic/"),
            ("OPENAI_API_BASE", "http://127.0.0.1:9/v1"),
            ("GOOGLE_GEMINI_BASE_URL", "not a url"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let up = |a: &str, p| profile_upstream(a, p, None, &env).map(|u| u.url);
        assert_eq!(
            up("claude", Provider::Anthropic).as_deref(),
            Some("https://proxy.example/anthropic")
        );
        assert_eq!(
            up("aider", Provider::Openai).as_deref(),
            Some("http://127.0.0.1:9")
        );
        assert_eq!(
            up("gemini", Provider::Gemini),
            None,
            "not a URL: the plan's own"
        );
        assert_eq!(
            up("codex", Provider::Openai),
            None,
            "Codex's is in its config"
        );
    }

    #[test]
    fn cached_tokens_cost_less_to_read_and_more_to_write() {
        let prices = Prices::new(&BTreeMap::new());
        let u = WireUsage {
            input: 1_000_000,
            output: 100_000,
            cache_read: 1_000_000,
            cache_write: 0,
        };
        // claude-sonnet-4: $3 in, $15 out per million.
        let cost = u.cost(&prices, "claude-sonnet-4-5").unwrap();
        assert!((cost - (3.0 + 0.3 + 1.5)).abs() < 1e-9, "{cost}");
        assert_eq!(u.cost(&prices, "local-llm"), None);
    }
}
