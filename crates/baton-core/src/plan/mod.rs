//! The plan file: parsing and validation into a [`Plan`] the engine can trust.

mod agent;
pub mod container;
mod error;
mod executor;
mod files;
mod gateway;
mod hook;
mod item;
mod land;
mod notify;
pub mod race;
mod raw;
pub mod route;
pub mod sandbox;
mod schedule;
pub mod service;
mod source;
pub mod ssh;
mod task;
mod user;
mod validate;
mod workspace;

pub use crate::adapter::Price;
pub use error::{Diagnostic, PlanError};
pub use executor::{Executor, ExecutorSettings, Kubernetes, Mount, Remote};
pub use files::FileSet;
pub use hook::{with_payload, Hook, HookAuth};
pub use land::{repo_of_url, MergeWhen, PullSettings};
pub use notify::NotifySettings;
pub use schedule::{Schedule, Scheduled};
pub use source::{CommandSource, GitHubSource, Source, SourceKind, SourceMode};
pub use ssh::{Ssh, SshHost};
pub use user::{compose, own_text, parts as user_parts, RepoEntry, UserConfig, UserLayer};
pub use workspace::{matching_files, parse_size, Pool, Workspace, MAX_PORTS};

use regex::Regex;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_MAX_PARALLEL: usize = 3;
/// An attempt with no `timeout` still ends: agents can hang or retry forever.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// An agent silent this long is reported as stalled (it is not stopped).
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone)]
pub struct Plan {
    /// Where the plan was read from (for messages).
    pub path: PathBuf,
    /// The plan's text, kept so that a resumed run uses the plan it started with.
    pub source: String,
    pub run: RunSettings,
    pub agents: BTreeMap<String, AgentProfile>,
    pub prices: BTreeMap<String, Price>,
    /// Tasks in file order.
    pub tasks: Vec<TaskSpec>,
    /// Where tasks queued with tags go (`baton add --tag`).
    pub routes: Vec<Route>,
    /// How each task's worktree is made ready.
    pub workspace: Workspace,
    /// Where attempts run by default, and the cluster, if any.
    pub executor: ExecutorSettings,
    /// Where `baton serve` takes work from (`[[source]]`).
    pub sources: Vec<Source>,
    /// What `baton serve` starts at set times (`[[schedule]]`).
    pub schedules: Vec<Schedule>,
    /// How a pull request is followed to its end (`[land]`).
    pub pull: PullSettings,
    /// Deliveries `baton serve` takes at `/api/hooks/<name>` (`[[hook]]`).
    pub hooks: Vec<Hook>,
    /// Data every prompt template reads as `{{ payload.* }}` (a hook's
    /// delivery, for the run it starts); null when the plan has none.
    pub payload: serde_json::Value,
    /// Where `baton serve` tells people what needs them (`[notify]`).
    pub notify: NotifySettings,
    /// The model gateway (`[gateway]`), for profiles with `gateway = true`.
    pub gateway: crate::gateway::GatewaySettings,
    /// The user config the plan was composed with, and what it took from it.
    pub user: Option<UserLayer>,
    /// Where `sandbox = "container"` profiles run (`[container]`).
    pub container: container::ContainerSettings,
}

pub use route::Route;

#[derive(Debug, Clone)]
pub struct RunSettings {
    pub max_parallel: usize,
    pub base: String,
    /// Where `base` is written (line, column), for a message when it names no commit.
    pub base_at: Option<(usize, usize)>,
    pub budget_usd: Option<f64>,
    /// Where task worktrees go (relative to the repository root), if not the default.
    pub worktrees: Option<String>,
    pub stall_after: Duration,
    /// Checks run on the integration branch after each merge (before the
    /// branch moves); a failing one keeps the task's work off it.
    pub verify: Vec<String>,
    /// How many queued merges `verify` checks at once (a failure is
    /// bisected to the task that caused it).
    pub verify_batch: usize,
    /// Whether tasks whose declared `files` overlap may run at the same time.
    pub overlap_allowed: bool,
    /// The profile that resolves merge conflicts (default: the task's own).
    pub resolver: Option<String>,
    /// The resolver's prompt, a template (default: `template::RESOLVER_PROMPT`).
    pub resolver_prompt: Option<String>,
    /// The prompt template of a race's judge (`pick = "judge"`).
    pub judge_prompt: Option<String>,
    /// What `baton run` does with a run that succeeded: nothing, land it
    /// (`baton land`), or open a pull request (`baton land --pr`).
    pub land: Land,
    /// No new agent starts while the machine's available memory is below
    /// this many bytes.
    pub min_free_memory: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Land {
    #[default]
    None,
    Merge,
    Pr,
}

#[derive(Debug, Clone)]
pub struct AgentProfile {
    pub name: String,
    pub adapter: String,
    pub model: Option<String>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Path of the standing instructions file, relative to the repository root.
    pub instructions: Option<String>,
    pub command: Option<Vec<String>>,
    /// Give the agent a home of its own under baton's state dir instead of the user's.
    pub hermetic_home: bool,
    /// Its agents may ask a person (the `ask` tool, `baton ask`); `ask =
    /// false` gives them neither.
    pub ask: bool,
    /// At most this many tasks of this profile run at once.
    pub max_parallel: Option<usize>,
    /// Its agents and their gates run under bubblewrap (None: `sandbox = "off"`).
    pub sandbox: Option<sandbox::Sandbox>,
    /// The longest a task waits out a rate limit on this profile before it fails.
    pub max_wait: Duration,
    /// Profiles that take a task over when this one's quota is used up (or
    /// its limit lasts beyond `max_wait`), in order.
    pub fallback: Vec<String>,
    /// Profiles with the same account share a provider's limits: one limited
    /// holds them all.
    pub account: Option<String>,
    /// Where its attempts run: here, as Jobs on a cluster, or on SSH hosts.
    pub executor: Executor,
    /// On SSH hosts: only those that carry every one of these labels.
    pub host_labels: Vec<String>,
    /// Whether its agent reaches its provider through baton's model
    /// gateway, with a token of its attempt's instead of the key.
    pub gateway: GatewayUse,
}

/// Whether a profile's agent goes through the model gateway (its
/// `gateway` key; see [`crate::gateway::decide`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GatewayUse {
    /// Left out: through it whenever a key for its provider is found.
    #[default]
    Auto,
    On,
    Off,
}

impl AgentProfile {
    /// The provider account its limits (and the gateway's) are kept
    /// under: its `account`, else its own name.
    pub fn account_name(&self) -> &str {
        self.account.as_deref().unwrap_or(&self.name)
    }

    /// What its agent CLI's adapter reads of it.
    pub fn cli(&self) -> crate::adapter::CliProfile {
        crate::adapter::CliProfile {
            name: self.name.clone(),
            adapter: self.adapter.clone(),
            model: self.model.clone(),
            args: self.args.clone(),
            env: self.env.clone(),
            command: self.command.clone(),
        }
    }
}

/// How long a task waits out a provider's rate limit unless its profile says.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    Stop,
    Continue,
}

/// One task, checked. A task queued at run time is stored like this once it
/// is checked (JSON), and read back as it is.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TaskSpec {
    pub id: String,
    pub prompt: String,
    pub agent: String,
    pub needs: Vec<String>,
    pub context: Vec<String>,
    pub gates: Vec<String>,
    pub retries: u32,
    pub timeout: Duration,
    pub budget_usd: Option<f64>,
    pub approve: bool,
    pub merge: bool,
    #[serde(with = "pattern")]
    pub fail_if: Option<Regex>,
    pub on_failure: OnFailure,
    pub stall_after: Duration,
    /// The paths it expects to change (globs); empty: not declared.
    pub files: FileSet,
    /// Whether a merge conflict goes to a resolver attempt (else the task
    /// ends `conflicted`).
    pub resolve_conflicts: bool,
    /// A lead task: its agent gets baton's MCP tools for its own run and may
    /// add at most this many tasks to it.
    pub lead: Option<u32>,
    /// A race task: its candidates and how the winner is picked.
    #[serde(default)]
    pub race: Option<race::Race>,
    /// A candidate of a race task (made by [`race::expand`], never written).
    #[serde(default)]
    pub candidate: Option<race::CandidateOf>,
}

/// A regular expression stored as its pattern.
mod pattern {
    use regex::Regex;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(re: &Option<Regex>, s: S) -> Result<S::Ok, S::Error> {
        match re {
            Some(re) => s.serialize_some(re.as_str()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Regex>, D::Error> {
        let Some(p) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        Regex::new(&p).map(Some).map_err(serde::de::Error::custom)
    }
}

/// Where task worktrees may go: not the filesystem root, not inside the
/// working tree (baton never touches it; under `.git` is fine), not a file,
/// and somewhere a directory can be made. Checked without leaving anything.
pub fn check_worktrees(root: &Path, dir: &Path) -> Result<(), String> {
    if dir.as_os_str().is_empty() {
        return Err("empty: name a directory outside the working tree".into());
    }
    let mut abs = PathBuf::new();
    for part in root.join(dir).components() {
        match part {
            std::path::Component::ParentDir => {
                abs.pop();
            }
            std::path::Component::CurDir => {}
            other => abs.push(other),
        }
    }
    if abs.parent().is_none() {
        return Err("the filesystem root: name a directory of its own".into());
    }
    if abs.starts_with(root) && !abs.starts_with(root.join(".git")) {
        return Err(format!(
            "{} is inside the working tree {}, which baton never touches; choose a directory outside it (or under .git)",
            abs.display(),
            root.display()
        ));
    }
    if abs.exists() && !abs.is_dir() {
        return Err(format!("{} is a file, not a directory", abs.display()));
    }
    let mut existing = abs.as_path();
    while !existing.exists() {
        existing = existing.parent().unwrap_or(Path::new("/"));
    }
    if !existing.is_dir() {
        return Err(format!("{} is a file, not a directory", existing.display()));
    }
    // Whether a directory can be made there, found by making one and removing it.
    let probe = existing.join(format!(".baton-probe-{}", std::process::id()));
    std::fs::create_dir(&probe)
        .and_then(|()| std::fs::remove_dir(&probe))
        .map_err(|e| format!("no directory can be made in {}: {e}", existing.display()))
}

impl Plan {
    /// Resolves `run.base` to a commit of `repo`; a name that is no commit is
    /// a plan error at the place it is written.
    pub async fn resolve_base(&self, repo: &crate::git::Repo) -> Result<String, PlanError> {
        repo.resolve_commit(&self.run.base).await.map_err(|_| {
            let (line, column) = self.run.base_at.unzip();
            PlanError::Invalid {
                path: self.path.clone(),
                diagnostics: vec![Diagnostic {
                    line,
                    column,
                    subject: None,
                    message: format!(
                        "run.base {:?} names no commit in {}",
                        self.run.base,
                        repo.root.display()
                    ),
                }],
            }
        })
    }

    /// Pairs of tasks that may run at the same time (neither waits for the
    /// other, however far down) and declare overlapping `files`.
    pub fn overlapping_pairs(&self) -> Vec<(&str, &str)> {
        let upstream = |t: &'_ TaskSpec| -> std::collections::HashSet<String> {
            let mut seen = std::collections::HashSet::new();
            let mut todo: Vec<String> = t.needs.clone();
            while let Some(n) = todo.pop() {
                if !seen.insert(n.clone()) {
                    continue;
                }
                if let Some(u) = self.tasks.iter().find(|u| u.id == n) {
                    todo.extend(u.needs.iter().cloned());
                }
            }
            seen
        };
        let ups: Vec<_> = self.tasks.iter().map(upstream).collect();
        let mut out = Vec::new();
        for (i, a) in self.tasks.iter().enumerate() {
            for (j, b) in self.tasks.iter().enumerate().skip(i + 1) {
                let ordered = ups[i].contains(&b.id) || ups[j].contains(&a.id);
                if !ordered && !a.files.is_empty() && a.files.overlaps(&b.files) {
                    out.push((a.id.as_str(), b.id.as_str()));
                }
            }
        }
        out
    }

    /// Reads and validates a plan file. `repo_root` is where context and
    /// instruction files are looked up; without it those checks are skipped.
    pub fn load(path: &Path, repo_root: Option<&Path>) -> Result<Plan, PlanError> {
        let source = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Plan::parse(path, &source, repo_root)
    }

    /// Validates plan text; `path` is only used in messages.
    pub fn parse(path: &Path, source: &str, repo_root: Option<&Path>) -> Result<Plan, PlanError> {
        validate::parse(path, source, repo_root, false).map_err(|diagnostics| PlanError::Invalid {
            path: path.to_path_buf(),
            diagnostics,
        })
    }

    /// Like [`Plan::parse`], but a plan with no tasks is fine: `baton serve`
    /// takes profiles, defaults and routes from it and gets tasks queued later.
    pub fn parse_config(
        path: &Path,
        source: &str,
        repo_root: Option<&Path>,
    ) -> Result<Plan, PlanError> {
        validate::parse(path, source, repo_root, true).map_err(|diagnostics| PlanError::Invalid {
            path: path.to_path_buf(),
            diagnostics,
        })
    }

    /// The `[[task]]` table for a task queued at run time, as TOML text.
    pub fn task_snippet(id: &str, prompt: &str, agent: Option<&str>) -> String {
        Plan::race_snippet(id, prompt, agent, &race::RaceFields::default())
    }

    /// [`Plan::task_snippet`] of a task that may race candidates.
    pub fn race_snippet(
        id: &str,
        prompt: &str,
        agent: Option<&str>,
        race: &race::RaceFields,
    ) -> String {
        let mut t = toml::Table::new();
        t.insert("id".into(), toml::Value::String(id.into()));
        t.insert("prompt".into(), toml::Value::String(prompt.into()));
        if let Some(a) = agent {
            t.insert("agent".into(), toml::Value::String(a.into()));
        }
        race.write(&mut t);
        format!("\n[[task]]\n{}", toml::to_string(&t).unwrap_or_default())
    }

    /// Validates tasks queued at run time (TOML snippets from
    /// [`Plan::task_snippet`]) against this plan's profiles and defaults;
    /// returns their specs, in order. With `repo_root` (a task coming in),
    /// its `context` files get every check a plan's do: inside the
    /// repository, not git's own files, there.
    pub fn parse_added(
        &self,
        snippets: &[String],
        repo_root: Option<&Path>,
    ) -> Result<Vec<TaskSpec>, PlanError> {
        let mut source = self.source.clone();
        for s in snippets {
            source.push_str(s);
        }
        let plan = Plan::parse_config(&self.path, &source, repo_root)?;
        // The plan file's own tasks come first; queued ones follow them.
        let file_tasks = plan.tasks.len() - snippets.len().min(plan.tasks.len());
        Ok(plan.tasks.into_iter().skip(file_tasks).collect())
    }

    /// The specs of tasks queued at run time, from what the store kept of
    /// each, in order: (plan text, spec as checked, JSON). Each is read as it
    /// was checked; tasks an older baton queued (no spec kept) are checked
    /// again from their plan text.
    pub fn queued(&self, added: &[(&str, &str)]) -> Result<Vec<TaskSpec>, PlanError> {
        if added.iter().any(|(_, spec)| spec.is_empty()) {
            let snippets: Vec<String> = added.iter().map(|(s, _)| s.to_string()).collect();
            return self.parse_added(&snippets, None);
        }
        added
            .iter()
            .map(|(_, spec)| {
                serde_json::from_str(spec).map_err(|e| PlanError::Invalid {
                    path: self.path.clone(),
                    diagnostics: vec![Diagnostic {
                        line: None,
                        column: None,
                        subject: Some("a task queued at run time".into()),
                        message: format!("the store holds it damaged: {e}"),
                    }],
                })
            })
            .collect()
    }

    /// The profile a queued task goes to: the one it names, else the first
    /// route matching one of its tags, else the plan's default agent (None).
    /// (A route with `agent = "best"` gives its first profile here: see
    /// [`Plan::route_of`].)
    pub fn route(&self, agent: Option<&str>, tags: &[String]) -> Option<String> {
        if let Some(a) = agent {
            return Some(a.to_string());
        }
        self.route_of(tags).map(|(r, _)| r.agent.clone())
    }

    /// The first route matching one of `tags`, and the tag it matched.
    pub fn route_of(&self, tags: &[String]) -> Option<(&Route, &str)> {
        self.routes.iter().find_map(|r| {
            let tag = r.tags.iter().find(|t| tags.contains(t))?;
            Some((r, tag.as_str()))
        })
    }

    pub fn task(&self, id: &str) -> Option<&TaskSpec> {
        self.tasks.iter().find(|t| t.id == id)
    }

    /// The phases of the DAG: each phase holds tasks whose needs are all in earlier phases.
    pub fn phases(&self) -> Vec<Vec<&TaskSpec>> {
        let ids: Vec<(&str, Vec<&str>)> = self
            .tasks
            .iter()
            .map(|t| (t.id.as_str(), t.needs.iter().map(String::as_str).collect()))
            .collect();
        crate::dag::phases(&ids)
            .unwrap_or_default()
            .into_iter()
            .map(|phase| phase.into_iter().filter_map(|id| self.task(id)).collect())
            .collect()
    }
}

/// A plan of one exec profile and `text`, checked as `baton.toml`: for the
/// unit tests of one part of a plan.
#[cfg(test)]
pub(crate) fn parse_with_a_profile(text: &str) -> Result<Plan, String> {
    let plan = format!("[agent.a]\nadapter = \"exec\"\ncommand = [\"true\"]\n\n{text}");
    Plan::parse_config(Path::new("baton.toml"), &plan, None).map_err(|e| e.to_string())
}
