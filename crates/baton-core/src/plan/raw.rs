//! The plan file as TOML deserializes it, before validation. Spans are kept on
//! every value that a later check may need to point at.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPlan {
    #[serde(default)]
    pub run: RawRun,
    #[serde(default)]
    pub agent: BTreeMap<String, Spanned<RawAgent>>,
    #[serde(default)]
    pub prices: BTreeMap<String, Spanned<RawPrice>>,
    #[serde(default)]
    pub defaults: Option<Spanned<RawTask>>,
    #[serde(default)]
    pub task: Vec<Spanned<RawTask>>,
    #[serde(default)]
    pub route: Vec<Spanned<RawRoute>>,
    #[serde(default)]
    pub workspace: RawWorkspace,
    #[serde(default)]
    pub executor: RawExecutor,
    #[serde(default)]
    pub source: Vec<Spanned<RawSource>>,
    #[serde(default)]
    pub schedule: Vec<Spanned<RawSchedule>>,
    pub land: Option<Spanned<RawLand>>,
    #[serde(default)]
    pub hook: Vec<Spanned<RawHook>>,
    pub notify: Option<Spanned<RawNotify>>,
    pub container: Option<Spanned<super::container::RawContainer>>,
    // Not Spanned: a `[gateway.providers.x]` header alone makes the table
    // implicitly, which a Spanned cannot read.
    pub gateway: Option<RawGateway>,
    pub payload: Option<toml::Table>,
    /// The user config's settings, written ahead of the plan's own text by
    /// [`super::UserConfig::compose`] (`user.agent.x = {...}` and so on).
    pub user: Option<super::user::RawUser>,
}

/// `[gateway]`: the model gateway's address and its providers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGateway {
    pub listen: Option<Spanned<String>>,
    pub host: Option<Spanned<String>>,
    #[serde(default)]
    pub providers: BTreeMap<String, Spanned<RawProvider>>,
    #[serde(default)]
    pub accounts: BTreeMap<String, Spanned<RawAccount>>,
    #[serde(default)]
    pub log_bodies: bool,
}

/// `[gateway.accounts.<account>]`: what one provider account may do.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccount {
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub concurrency: Option<i64>,
    pub key_file: Option<Spanned<String>>,
    pub key_command: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProvider {
    pub url: Option<Spanned<String>>,
    pub key_file: Option<Spanned<String>>,
    pub key_command: Option<Spanned<String>>,
}

/// `[notify]`: where `baton serve` tells people, with action links.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNotify {
    pub ntfy: Option<Spanned<String>>,
    pub ntfy_token_env: Option<Spanned<String>>,
    pub webhook: Option<Spanned<String>>,
    pub quiet_hours: Option<Spanned<String>>,
    pub kinds: Option<Spanned<Vec<String>>>,
    pub link_ttl: Option<Spanned<String>>,
}

/// `[[hook]]`: a delivery to `/api/hooks/<name>` starts a plan or a task.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHook {
    pub name: Option<Spanned<String>>,
    pub secret_env: Option<Spanned<String>>,
    pub token_env: Option<Spanned<String>>,
    pub plan: Option<Spanned<String>>,
    pub prompt: Option<Spanned<String>>,
    pub agent: Option<Spanned<String>>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `[land]`: what becomes of a run that succeeded, and of its pull request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLand {
    pub mode: Option<Spanned<String>>,
    pub follow: Option<Spanned<bool>>,
    pub merge_when: Option<Spanned<String>>,
    pub max_fixes: Option<Spanned<i64>>,
    pub fixer: Option<Spanned<String>>,
    pub budget_usd: Option<Spanned<f64>>,
    pub poll: Option<Spanned<String>>,
    pub remote: Option<Spanned<String>>,
    pub repo: Option<Spanned<String>>,
    pub api_url: Option<Spanned<String>>,
    pub token_env: Option<Spanned<String>>,
    pub webhook_secret_env: Option<Spanned<String>>,
}

/// `[[schedule]]`: a plan run, or a task, at the times a cron expression names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSchedule {
    pub name: Option<Spanned<String>>,
    pub cron: Option<Spanned<String>>,
    pub plan: Option<Spanned<String>>,
    pub prompt: Option<Spanned<String>>,
    pub agent: Option<Spanned<String>>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `[[source]]`: where `baton serve` takes work from (a tracker).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSource {
    pub kind: Option<Spanned<String>>,
    pub mode: Option<Spanned<String>>,
    pub repo: Option<Spanned<String>>,
    pub label: Option<Spanned<String>>,
    pub assignee: Option<Spanned<String>>,
    pub api_url: Option<Spanned<String>>,
    pub token_env: Option<Spanned<String>>,
    pub poll: Option<Spanned<String>>,
    /// `kind = "command"`: prints the items, one JSON object a line.
    pub command: Option<Spanned<Vec<String>>>,
    /// And gets what baton reports, as JSON on its stdin.
    pub report: Option<Spanned<Vec<String>>>,
    /// Its name (default: the command's first word).
    pub name: Option<Spanned<String>>,
    /// The variable holding the secret GitHub signs its webhooks with.
    pub webhook_secret_env: Option<Spanned<String>>,
}

/// `[executor]`: where attempts run (`kind`), and the cluster's settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExecutor {
    pub kind: Option<Spanned<String>>,
    pub namespace: Option<String>,
    pub image: Option<Spanned<String>>,
    pub baton: Option<String>,
    pub cpu: Option<Spanned<String>>,
    pub memory: Option<Spanned<String>>,
    pub service_account: Option<String>,
    pub node_selector: Option<BTreeMap<String, String>>,
    pub env_from: Option<Vec<String>>,
    pub mounts: Option<Spanned<Vec<String>>>,
    pub host_network: Option<bool>,
    pub grace: Option<Spanned<String>>,
    pub git_listen: Option<Spanned<String>>,
    pub git_host: Option<String>,
    pub remote: Option<String>,
    pub kubeconfig: Option<String>,
    pub context: Option<String>,
    /// `kind = "ssh"`: the hosts, and an ssh_config file for them.
    pub hosts: Option<Spanned<Vec<toml::Value>>>,
    pub ssh_config: Option<String>,
    /// `kind = "kubernetes"`: pods kept running for attempts to claim.
    pub warm: Option<Spanned<i64>>,
    /// A warm pod takes the run's attempts one after another.
    pub reuse: Option<Spanned<bool>>,
}

/// `[workspace]`: how each task's worktree is made ready.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWorkspace {
    pub setup: Option<Spanned<Vec<String>>>,
    pub teardown: Option<Spanned<Vec<String>>>,
    pub copy: Option<Spanned<Vec<String>>>,
    pub ports: Option<Spanned<i64>>,
    pub setup_timeout: Option<Spanned<String>>,
    pub setup_inputs: Option<Spanned<Vec<String>>>,
    pub pool: Option<Spanned<toml::Value>>,
    pub sparse: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub service: Vec<Spanned<super::service::RawService>>,
}

/// `[[route]]`: tasks queued with one of these tags go to this profile.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub tags: Vec<String>,
    pub agent: Spanned<String>,
    pub among: Option<Spanned<Vec<String>>>,
    pub min_tasks: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRun {
    pub max_parallel: Option<Spanned<i64>>,
    pub base: Option<Spanned<String>>,
    pub budget_usd: Option<Spanned<f64>>,
    pub worktrees: Option<Spanned<String>>,
    pub stall_after: Option<Spanned<String>>,
    pub verify: Option<Spanned<Vec<String>>>,
    pub verify_batch: Option<Spanned<i64>>,
    pub overlap: Option<Spanned<String>>,
    pub resolver: Option<Spanned<String>>,
    pub resolver_prompt: Option<Spanned<String>>,
    pub judge_prompt: Option<Spanned<String>>,
    pub land: Option<Spanned<String>>,
    pub min_free_memory: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAgent {
    pub adapter: Spanned<String>,
    pub model: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub instructions: Option<Spanned<String>>,
    pub command: Option<Spanned<Vec<String>>>,
    pub home: Option<Spanned<String>>,
    pub max_parallel: Option<Spanned<i64>>,
    pub sandbox: Option<Spanned<String>>,
    pub network: Option<Spanned<toml::Value>>,
    pub hide: Option<Vec<String>>,
    pub memory: Option<Spanned<String>>,
    pub pids: Option<Spanned<i64>>,
    pub max_wait: Option<Spanned<String>>,
    pub fallback: Option<Spanned<Vec<String>>>,
    pub account: Option<String>,
    pub executor: Option<Spanned<String>>,
    pub host_labels: Option<Spanned<Vec<String>>>,
    pub ask: Option<bool>,
    pub gateway: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPrice {
    pub input: f64,
    pub output: f64,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTask {
    pub id: Option<Spanned<String>>,
    pub prompt: Option<Spanned<String>>,
    pub agent: Option<Spanned<String>>,
    pub needs: Option<Vec<Spanned<String>>>,
    pub context: Option<Vec<Spanned<String>>>,
    pub gates: Option<Vec<String>>,
    pub retries: Option<Spanned<i64>>,
    pub timeout: Option<Spanned<String>>,
    pub budget_usd: Option<Spanned<f64>>,
    pub approve: Option<bool>,
    pub merge: Option<bool>,
    pub fail_if: Option<Spanned<String>>,
    pub on_failure: Option<Spanned<String>>,
    pub stall_after: Option<Spanned<String>>,
    pub files: Option<Spanned<Vec<String>>>,
    pub on_conflict: Option<Spanned<String>>,
    pub lead: Option<Spanned<bool>>,
    pub max_tasks: Option<Spanned<i64>>,
    /// A race (a `[[task]]` only): see `plan::race`.
    pub candidates: Option<Spanned<i64>>,
    pub agents: Option<Spanned<Vec<String>>>,
    pub pick: Option<Spanned<String>>,
    pub rank_by: Option<Spanned<Vec<String>>>,
    pub rank: Option<Spanned<String>>,
    pub judge: Option<Spanned<String>>,
    /// In `[defaults]` only: the sandbox of profiles that do not say.
    pub sandbox: Option<Spanned<String>>,
    pub network: Option<Spanned<toml::Value>>,
}

impl RawTask {
    /// Fills every field the task leaves out from `[defaults]`.
    pub fn with_defaults(mut self, d: &RawTask) -> RawTask {
        macro_rules! fill {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = d.$f.clone(); } )* };
        }
        fill!(
            prompt,
            agent,
            needs,
            context,
            gates,
            retries,
            timeout,
            budget_usd,
            approve,
            merge,
            fail_if,
            on_failure,
            files,
            on_conflict
        );
        self
    }
}
