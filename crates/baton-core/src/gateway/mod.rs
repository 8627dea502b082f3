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
    /// aider and opencode the one their model surely names (`anthropic/...`,
    /// `openai/...`, `gemini/...`; see [`route::by_model`]), or for
    /// opencode a provider of its config by its package. opencode's model
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
            "aider" => by_model(model?),
            "opencode" => {
                let from_config = || {
                    let c = opencode_config(env)?;
                    c.get("model")?.as_str().map(str::to_string)
                };
                let m = model.map(str::to_string).or_else(from_config)?;
                let (id, _) = m.split_once('/')?;
                match route::known_id(id) {
                    true => by_model(&m),
                    false => route::opencode_own_provider(id, env),
                }
            }
            _ => None,
        }
    }
}

/// Every variable a CLI could take a provider's key, address or another
/// way to a model from (a cloud's credentials, a switch to a cloud's API
/// that would pass the gateway by): an agent behind the gateway gets none
/// of them, from its profile or from baton's environment.
pub const PROVIDER_VARS: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_API_BASE",
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
    "GEMINI_API_BASE",
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
    /// The name pods reach this machine by (`[gateway] host`), for agents
    /// on a cluster; else the address it listens on.
    pub host: Option<String>,
    pub providers: BTreeMap<Provider, Upstream>,
    pub accounts: BTreeMap<String, AccountLimits>,
    /// Keys read when an attempt starts: an account's, else its provider's
    /// (`key_file`, `key_command`).
    pub account_keys: BTreeMap<String, KeySource>,
    pub provider_keys: BTreeMap<Provider, KeySource>,
    /// Each request's and answer's body told to its attempt, which keeps
    /// them masked beside its log (off: no prompt is kept).
    pub log_bodies: bool,
}

impl Default for GatewaySettings {
    fn default() -> GatewaySettings {
        GatewaySettings {
            listen: "127.0.0.1:0".into(),
            host: None,
            providers: Provider::ALL
                .iter()
                .map(|p| {
                    let url = p.default_url().to_string();
                    (*p, Upstream { url })
                })
                .collect(),
            accounts: BTreeMap::new(),
            account_keys: BTreeMap::new(),
            provider_keys: BTreeMap::new(),
            log_bodies: false,
        }
    }
}

impl GatewaySettings {
    /// Whether the plan says how agents elsewhere (pods) reach it: a host
    /// named, or an address that is neither loopback nor every address.
    pub fn reaches_pods(&self) -> bool {
        let ip = self.listen.parse::<std::net::SocketAddr>().map(|a| a.ip());
        self.host.is_some() || ip.is_ok_and(|ip| !ip.is_loopback() && !ip.is_unspecified())
    }

    /// The gateway's URL for agents elsewhere, given the URL it has here
    /// (`http://ip:port`, the port it got).
    pub fn url_for_pods(&self, here: &str) -> Result<String, String> {
        let port = here.rsplit(':').next().unwrap_or_default();
        let listen_ip = self.listen.parse::<std::net::SocketAddr>().map(|a| a.ip());
        match &self.host {
            Some(h) => Ok(format!("http://{h}:{port}")),
            None if listen_ip.is_ok_and(|ip| ip.is_unspecified() || ip.is_loopback()) => Err(format!(
                "gateway.listen {} is not an address pods reach: set gateway.host to the name pods reach this machine by (\"127.0.0.1\" when they share its network)",
                self.listen
            )),
            None => Ok(here.to_string()),
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
    /// `earlier`, the token of an attempt an earlier baton left running
    /// (a Job this attempt adopts), is honoured as `token` is, and
    /// forgotten with it.
    fn honour(&self, token: &str, earlier: &str);
}

/// A future the binary's gateway returns.
pub type Boxed<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// A gateway that started, or why not.
pub type Started = Result<Arc<dyn Gateway>, String>;

/// What the binary plugs in: how a run's gateway is started.
pub struct GatewayKind {
    pub start: fn(GatewaySettings) -> Boxed<Started>,
}

mod agent_env;
mod keys;
mod route;

pub use agent_env::agent_env;
pub use keys::{file_path, read_key, KeyError, KeySource};
use route::{by_model, opencode_config};
pub use route::{
    credential_for, decide, key_in, profile_upstream, route, Decision, KeyFrom, KeySources, Route,
    RouteError,
};

#[cfg(test)]
mod tests {
    use super::*;

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
