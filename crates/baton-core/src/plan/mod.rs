//! The plan file: parsing and validation into a [`Plan`] the engine can trust.

mod error;
mod raw;
mod validate;

pub use error::{Diagnostic, PlanError};

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
}

#[derive(Debug, Clone)]
pub struct Route {
    pub tags: Vec<String>,
    pub agent: String,
}

#[derive(Debug, Clone)]
pub struct RunSettings {
    pub max_parallel: usize,
    pub base: String,
    pub budget_usd: Option<f64>,
    /// Where task worktrees go (relative to the repository root), if not the default.
    pub worktrees: Option<String>,
    pub stall_after: Duration,
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
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    Stop,
    Continue,
}

#[derive(Debug, Clone)]
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
    pub fail_if: Option<Regex>,
    pub on_failure: OnFailure,
    pub stall_after: Duration,
}

impl Plan {
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
        let mut t = toml::Table::new();
        t.insert("id".into(), toml::Value::String(id.into()));
        t.insert("prompt".into(), toml::Value::String(prompt.into()));
        if let Some(a) = agent {
            t.insert("agent".into(), toml::Value::String(a.into()));
        }
        format!("\n[[task]]\n{}", toml::to_string(&t).unwrap_or_default())
    }

    /// Validates tasks queued at run time (TOML snippets from
    /// [`Plan::task_snippet`]) against this plan's profiles and defaults;
    /// returns their specs, in order.
    pub fn parse_added(&self, snippets: &[String]) -> Result<Vec<TaskSpec>, PlanError> {
        let mut source = self.source.clone();
        for s in snippets {
            source.push_str(s);
        }
        let plan = Plan::parse_config(&self.path, &source, None)?;
        // The plan file's own tasks come first; queued ones follow them.
        let file_tasks = plan.tasks.len() - snippets.len().min(plan.tasks.len());
        Ok(plan.tasks.into_iter().skip(file_tasks).collect())
    }

    /// The profile a queued task goes to: the one it names, else the first
    /// route matching one of its tags, else the plan's default agent (None).
    pub fn route(&self, agent: Option<&str>, tags: &[String]) -> Option<String> {
        if let Some(a) = agent {
            return Some(a.to_string());
        }
        self.routes
            .iter()
            .find(|r| r.tags.iter().any(|t| tags.contains(t)))
            .map(|r| r.agent.clone())
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
