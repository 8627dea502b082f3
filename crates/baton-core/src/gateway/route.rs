//! Which provider a profile's agent speaks, where its requests go and
//! the key they carry: from the profile, the plan's key sources or baton's
//! environment.

use super::{Credential, GatewaySettings, KeySource, Provider, Upstream};
use crate::plan::{AgentProfile, Executor, GatewayUse};
use std::collections::BTreeMap;

/// The provider a model name surely means (`anthropic/...`, `openai/...`,
/// `gemini/...`, `google/...`, or a bare `claude-...`, `gemini-...`,
/// `gpt-...`, `o3...`); None for anything else (an alias like `sonnet`,
/// another vendor's `bedrock/...`, `openrouter/...`): its CLI knows where
/// that goes, and the gateway must not guess.
pub(super) fn by_model(model: &str) -> Option<Provider> {
    let (prefix, name) = model.split_once('/').unwrap_or(("", model));
    let openai_name = name.starts_with("gpt-")
        || name.starts_with("chatgpt")
        || name.starts_with("codex")
        || (name.starts_with('o') && name[1..].starts_with(|c: char| c.is_ascii_digit()));
    match prefix {
        "anthropic" => Some(Provider::Anthropic),
        "openai" => Some(Provider::Openai),
        "gemini" | "google" => Some(Provider::Gemini),
        "" if name.starts_with("claude") => Some(Provider::Anthropic),
        "" if name.starts_with("gemini") => Some(Provider::Gemini),
        "" if openai_name => Some(Provider::Openai),
        _ => None,
    }
}

/// The provider an opencode provider of the profile's own config speaks
/// (`mock` of `mock/model`, with its own `baseURL`), by the package it is
/// made with; None when it has no address of its own or another API.
pub(super) fn opencode_own_provider(id: &str, env: &BTreeMap<String, String>) -> Option<Provider> {
    let config = opencode_config(env)?;
    let p = config.get("provider")?.get(id)?;
    p.get("options")?.get("baseURL")?.as_str()?;
    match p.get("npm")?.as_str()? {
        "@ai-sdk/openai-compatible" | "@ai-sdk/openai" => Some(Provider::Openai),
        "@ai-sdk/anthropic" => Some(Provider::Anthropic),
        "@ai-sdk/google" => Some(Provider::Gemini),
        _ => None,
    }
}

/// Whether an opencode model's provider id is one of the three the gateway
/// knows by name (else: a provider of the profile's config).
pub(super) fn known_id(id: &str) -> bool {
    matches!(id, "anthropic" | "openai" | "google" | "gemini")
}

/// opencode's config given in the profile's environment, if any.
pub(super) fn opencode_config(
    env: &BTreeMap<String, String>,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    match serde_json::from_str(env.get("OPENCODE_CONFIG_CONTENT")?).ok()? {
        serde_json::Value::Object(m) => Some(m),
        _ => None,
    }
}

/// The provider id of opencode's model (`mock` of `mock/model`).
pub(super) fn opencode_provider_id(
    model: Option<&str>,
    env: &BTreeMap<String, String>,
) -> Option<String> {
    let m = match model {
        Some(m) => m.to_string(),
        None => opencode_config(env)?.get("model")?.as_str()?.to_string(),
    };
    m.split_once('/').map(|(p, _)| p.to_string())
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
        ("codex", _) => var("OPENAI_BASE_URL"),
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

/// The variables a CLI reads its provider's base URL from.
const BASE_URL_VARS: &[&str] = &[
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_API_BASE",
    "OPENAI_BASE_URL",
    "OPENAI_API_BASE",
    "GOOGLE_GEMINI_BASE_URL",
    "GEMINI_API_BASE",
];

/// How a profile's agent goes through the gateway: the provider its CLI
/// speaks, the key its requests carry, and its own upstream if it names one.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub provider: Provider,
    pub key: KeyFrom,
    pub upstream: Option<Upstream>,
}

/// Where a profile's key comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyFrom {
    /// In hand: the profile's `env` (opencode's config included), or
    /// baton's own environment (`from_profile` false).
    Given {
        credential: Credential,
        from_profile: bool,
    },
    /// Read when an attempt starts, from a source the plan names on `owner`
    /// (`[gateway.accounts.x]`, `[gateway.providers.x]`).
    Source { source: KeySource, owner: String },
}

impl KeyFrom {
    /// Where it comes from, in words (never the key).
    pub fn describe(&self) -> String {
        match self {
            KeyFrom::Given {
                from_profile: true, ..
            } => "the profile's env".into(),
            KeyFrom::Given { .. } => "baton's environment".into(),
            KeyFrom::Source { source, owner } => format!("{owner} {}", source.describe()),
        }
    }
}

/// Why a profile's agent cannot go through the gateway.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RouteError {
    #[error("the {0} adapter cannot go through the gateway (or its model names no provider it knows: anthropic/, openai/, gemini/)")]
    Speaks(String),
    #[error("no key for {provider}; set {} in the profile's env or in baton's environment, or key_command/key_file on [gateway.accounts.<account>] or [gateway.providers.{provider}]", .provider.key_vars().join(" or "))]
    NoKey { provider: Provider },
}

/// The route of a profile's agent: its key from its `env`, else from the
/// plan's `sources` (the account's, then the provider's key source), else
/// from baton's environment (`process_env`).
pub fn route(
    adapter: &str,
    model: Option<&str>,
    env: &BTreeMap<String, String>,
    sources: &KeySources<'_>,
    process_env: impl Fn(&str) -> Option<String>,
) -> Result<Route, RouteError> {
    let provider = Provider::of_profile(adapter, model, env)
        .ok_or_else(|| RouteError::Speaks(adapter.to_string()))?;
    let given = |credential, from_profile| KeyFrom::Given {
        credential,
        from_profile,
    };
    let own = credential_for(adapter, model, provider, env).map(|c| given(c, true));
    // An opencode provider of the profile's own goes to its own address:
    // only its own key may go there, never one found for a vendor.
    let own_provider =
        adapter == "opencode" && opencode_provider_id(model, env).is_some_and(|id| !known_id(&id));
    let key = match own_provider {
        true => own,
        false => own
            .or_else(|| sources.of(provider))
            .or_else(|| key_in(provider, &process_env).map(|c| given(c, false))),
    }
    .ok_or(RouteError::NoKey { provider })?;
    // A base URL set for every CLI in baton's own environment (a company
    // proxy) is kept too; the agent gets none of those variables.
    let mut seen = env.clone();
    for v in BASE_URL_VARS {
        if !seen.contains_key(*v) {
            if let Some(url) = process_env(v) {
                seen.insert(v.to_string(), url);
            }
        }
    }
    Ok(Route {
        provider,
        key,
        upstream: profile_upstream(adapter, provider, model, &seen),
    })
}

/// The plan's key sources a profile may use: its account's, then its
/// provider's.
pub struct KeySources<'a> {
    pub settings: &'a GatewaySettings,
    pub account: &'a str,
}

impl KeySources<'_> {
    fn of(&self, provider: Provider) -> Option<KeyFrom> {
        let from = |source: &KeySource, owner: String| KeyFrom::Source {
            source: source.clone(),
            owner,
        };
        let s = self.settings;
        s.account_keys
            .get(self.account)
            .map(|k| from(k, format!("[gateway.accounts.{}]", self.account)))
            .or_else(|| {
                let k = s.provider_keys.get(&provider)?;
                Some(from(k, format!("[gateway.providers.{provider}]")))
            })
    }
}

/// Whether a profile's agent goes through the gateway.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Through(Route),
    /// It reaches its provider itself: `gateway = false`, a CLI the
    /// gateway does not stand in front of, or a remote executor.
    Direct,
    /// `gateway` left out and no key found: its CLI uses its own login.
    /// The notice that says so.
    Login(String),
    /// `gateway = true`, and it cannot: why.
    Broken(String),
}

/// Whether `p`'s agent goes through the gateway (`process_env`: baton's
/// environment): unless the profile says otherwise, it does whenever a key
/// for its provider is found, since only then is there a key to keep from
/// it; a CLI logged in on its own (a subscription) reaches its provider
/// itself.
pub fn decide(
    p: &AgentProfile,
    settings: &GatewaySettings,
    process_env: impl Fn(&str) -> Option<String>,
) -> Decision {
    let on = match p.gateway {
        GatewayUse::Off => return Decision::Direct,
        GatewayUse::On => true,
        GatewayUse::Auto => false,
    };
    // Pods reach it only where the plan says how (else their keys come
    // from the cluster's Secrets, `env_from`); SSH hosts through a tunnel.
    let tunnelled =
        matches!(&p.executor, Executor::Remote(r) if matches!(**r, crate::plan::Remote::Ssh(_)));
    if !on && matches!(p.executor, Executor::Remote(_)) && !tunnelled && !settings.reaches_pods() {
        return Decision::Direct;
    }
    if !on {
        // A key set empty in the profile says: not this way (its login).
        let provider = Provider::of_profile(&p.adapter, p.model.as_deref(), &p.env);
        let blank = provider
            .into_iter()
            .flat_map(|pr| pr.key_vars())
            .find(|v| p.env.get(**v).is_some_and(|k| k.trim().is_empty()));
        if let Some(var) = blank {
            return Decision::Login(format!(
                "profile {:?}: its env sets {var} empty, so its agent is not behind the model gateway and uses its CLI's own login",
                p.name
            ));
        }
    }
    let sources = KeySources {
        settings,
        account: p.account_name(),
    };
    match route(&p.adapter, p.model.as_deref(), &p.env, &sources, process_env) {
        Ok(r) => Decision::Through(r),
        Err(RouteError::Speaks(_)) if !on => Decision::Direct,
        Err(RouteError::NoKey { provider }) if !on => Decision::Login(format!(
            "profile {:?}: no {provider} key found, so its agent is not behind the model gateway and uses its CLI's own login (set gateway = false to say so, or give it a key: {})",
            p.name,
            provider.key_vars().join(" or ")
        )),
        Err(e) => Decision::Broken(format!("gateway = true on profile {:?}: {e}", p.name)),
    }
}

/// The key a profile itself gives its agent: an opencode profile's own
/// provider's `apiKey` in its config, else its `env`'s (see [`key_in`]).
pub fn credential_for(
    adapter: &str,
    model: Option<&str>,
    provider: Provider,
    profile_env: &BTreeMap<String, String>,
) -> Option<Credential> {
    if adapter == "opencode" {
        let id = opencode_provider_id(model, profile_env);
        let config = opencode_config(profile_env);
        let key = id.zip(config).and_then(|(id, c)| {
            let k = c.get("provider")?.get(&id)?.get("options")?.get("apiKey")?;
            k.as_str().map(str::to_string)
        });
        // `{env:X}` and `{file:...}` are opencode's to expand, not a key.
        let literal =
            |k: &String| !k.trim().is_empty() && !k.contains("{env:") && !k.contains("{file:");
        if let Some(key) = key.filter(literal) {
            return Some(Credential { key, bearer: false });
        }
    }
    key_in(provider, |v| profile_env.get(v).cloned())
}

/// The key `provider`'s requests carry, from the first of its variables
/// (`Provider::key_vars`) that `vars` gives not blank; None: none does.
pub fn key_in(provider: Provider, vars: impl Fn(&str) -> Option<String>) -> Option<Credential> {
    let (var, key) = provider
        .key_vars()
        .iter()
        .find_map(|v| vars(v).filter(|k| !k.trim().is_empty()).map(|k| (*v, k)))?;
    Some(Credential {
        key,
        bearer: var == "ANTHROPIC_AUTH_TOKEN",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::{agent_env, Access};
    use crate::plan::Plan;

    fn plan(text: &str) -> Plan {
        let tasks = "[[task]]\nid = \"t\"\nprompt = \"p\"\nagent = \"exec\"\n[agent.exec]\nadapter = \"exec\"\ncommand = [\"true\"]\n";
        Plan::parse(
            std::path::Path::new("p.toml"),
            &format!("{text}\n{tasks}"),
            None,
        )
        .unwrap()
    }

    fn decided(plan: &Plan, profile: &str, baton: &[(&str, &str)]) -> Decision {
        let env = |v: &str| {
            baton
                .iter()
                .find(|(k, _)| *k == v)
                .map(|(_, x)| x.to_string())
        };
        decide(&plan.agents[profile], &plan.gateway, env)
    }

    #[test]
    fn a_profile_is_behind_the_gateway_whenever_a_key_is_found_unless_it_says() {
        let p = plan(
            r#"
[agent.keyed]
adapter = "claude"
env = { ANTHROPIC_API_KEY = "sk-profile" }
[agent.login]
adapter = "codex"
[agent.off]
adapter = "claude"
gateway = false
env = { ANTHROPIC_API_KEY = "sk-profile" }
[agent.blank]
adapter = "claude"
env = { ANTHROPIC_API_KEY = "" }
[agent.on]
adapter = "codex"
gateway = true
[agent.sourced]
adapter = "gemini"
account = "team"
[gateway.accounts.team]
key_command = "pass show team"
[gateway.providers.gemini]
key_file = "~/gemini.key"
[agent.provider_sourced]
adapter = "gemini"
"#,
        );
        let key_of = |d: Decision| match d {
            Decision::Through(r) => r.key.describe(),
            other => panic!("not through: {other:?}"),
        };
        assert_eq!(key_of(decided(&p, "keyed", &[])), "the profile's env");
        // A base URL in baton's environment (a company proxy) is kept.
        let proxy = [("ANTHROPIC_BASE_URL", "https://corp.example/anthropic/v1")];
        let Decision::Through(r) = decided(&p, "keyed", &proxy) else {
            panic!("keyed goes through");
        };
        assert_eq!(r.upstream.unwrap().url, "https://corp.example/anthropic");
        let baton = [("OPENAI_API_KEY", "sk-baton")];
        assert_eq!(key_of(decided(&p, "login", &baton)), "baton's environment");
        let Decision::Login(notice) = decided(&p, "login", &[]) else {
            panic!("no key: its own login");
        };
        assert!(
            notice.contains("\"login\"") && notice.contains("OPENAI_API_KEY"),
            "{notice}"
        );
        assert_eq!(decided(&p, "off", &[]), Decision::Direct);
        let Decision::Login(notice) = decided(&p, "blank", &[("ANTHROPIC_API_KEY", "sk-baton")])
        else {
            panic!("a key set empty means its login, whatever baton has");
        };
        assert!(notice.contains("sets ANTHROPIC_API_KEY empty"), "{notice}");
        assert_eq!(
            decided(&p, "exec", &[]),
            Decision::Direct,
            "not a CLI it fronts"
        );
        let Decision::Broken(why) = decided(&p, "on", &[("ANTHROPIC_API_KEY", "x")]) else {
            panic!("gateway = true without a key is an error");
        };
        assert!(why.contains("no key for openai"), "{why}");
        // The account's source, then the provider's, then baton's environment.
        let gemini = [("GEMINI_API_KEY", "sk-baton")];
        let sourced = key_of(decided(&p, "sourced", &gemini));
        assert_eq!(
            sourced,
            r#"[gateway.accounts.team] key_command "pass show team""#
        );
        let by_provider = key_of(decided(&p, "provider_sourced", &gemini));
        assert_eq!(
            by_provider,
            r#"[gateway.providers.gemini] key_file "~/gemini.key""#
        );
    }

    #[test]
    fn a_key_comes_from_the_profile_first_then_from_batons_environment() {
        let mut env = BTreeMap::new();
        let none = |_: &str| None;
        let settings = GatewaySettings::default();
        let sources = KeySources {
            settings: &settings,
            account: "a",
        };
        let key = |adapter: &str,
                   env: &BTreeMap<String, String>,
                   process: &dyn Fn(&str) -> Option<String>| {
            match route(adapter, None, env, &sources, process) {
                Ok(Route {
                    key: KeyFrom::Given { credential, .. },
                    ..
                }) => Some(credential),
                _ => None,
            }
        };
        assert_eq!(key("claude", &env, &none), None);
        let process = |v: &str| (v == "ANTHROPIC_AUTH_TOKEN").then(|| "from-baton".to_string());
        let bearer = Credential {
            key: "from-baton".into(),
            bearer: true,
        };
        assert_eq!(key("claude", &env, &process), Some(bearer));
        env.insert("ANTHROPIC_API_KEY".to_string(), "from-profile".to_string());
        let k = key("claude", &env, &process).unwrap();
        assert_eq!((k.key.as_str(), k.bearer), ("from-profile", false));
        env.insert("GEMINI_API_KEY".to_string(), " ".to_string());
        assert_eq!(key("gemini", &env, &none), None, "blank is none");
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
        // Only what a model surely names: an alias or another vendor's
        // model is its CLI's to route.
        for unsure in [
            "sonnet",
            "flash",
            "bedrock/anthropic.claude",
            "openrouter/x/y",
            "",
        ] {
            assert_eq!(of("aider", unsure), None, "{unsure}");
            assert_eq!(of("opencode", unsure), None, "{unsure}");
        }
        assert_eq!(of("aider", "gpt-4o"), Some(Provider::Openai));
        assert_eq!(of("aider", "o3-mini"), Some(Provider::Openai));
        assert_eq!(Provider::of_profile("aider", None, &none), None);
        let mut env = BTreeMap::new();
        let config = r#"{"model":"mock/m","provider":{"mock":{"npm":"@ai-sdk/openai-compatible","options":{"baseURL":"http://old/v1","apiKey":"sk-in-config"}}}}"#;
        // A provider of its own speaks the API its package does.
        let other_api = config.replace("@ai-sdk/openai-compatible", "x");
        env.insert("OPENCODE_CONFIG_CONTENT".to_string(), other_api);
        assert_eq!(Provider::of_profile("opencode", None, &env), None);
        env.insert("OPENCODE_CONFIG_CONTENT".to_string(), config.to_string());
        assert_eq!(
            Provider::of_profile("opencode", None, &env),
            Some(Provider::Openai)
        );
        let key = credential_for("opencode", None, Provider::Openai, &env).unwrap();
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
        assert_eq!(
            merged["provider"]["mock"]["npm"], "@ai-sdk/openai-compatible",
            "the rest is kept"
        );
        assert!(!set[0].1.contains("sk-in-config"));
        // Another provider of its config keeps no key either.
        let two = config.replace(
            r#""provider":{"#,
            r#""provider":{"groq":{"npm":"y","options":{"apiKey":"gsk-other"}},"#,
        );
        env.insert("OPENCODE_CONFIG_CONTENT".to_string(), two);
        let set = agent_env("opencode", Provider::Openai, None, &access, &env);
        assert!(!set[0].1.contains("gsk-other"), "{}", set[0].1);
        // A provider of its own with no key of its own: never a vendor's key
        // (it would go to that provider's address).
        let keyless = config.replace(r#","apiKey":"sk-in-config""#, "");
        env.insert("OPENCODE_CONFIG_CONTENT".to_string(), keyless);
        let baton = |v: &str| (v == "OPENAI_API_KEY").then(|| "sk-openai".to_string());
        let settings = GatewaySettings::default();
        let sources = KeySources {
            settings: &settings,
            account: "a",
        };
        let r = route("opencode", None, &env, &sources, baton);
        assert_eq!(
            r.unwrap_err(),
            RouteError::NoKey {
                provider: Provider::Openai
            }
        );
        // opencode's own placeholders are not keys.
        let placeholder = config.replace("sk-in-config", "{env:MOCK_KEY}");
        env.insert("OPENCODE_CONFIG_CONTENT".to_string(), placeholder);
        let r = route("opencode", None, &env, &sources, |_| None);
        assert!(r.is_err(), "{r:?}");
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
            "Codex's is in its config, or OPENAI_BASE_URL"
        );
    }
}
