//! The arguments of baton's MCP tools (their JSON schemas are what clients
//! see), and a task's arguments as the `[[task]]` TOML the engine reads.

use rmcp::schemars::{self, JsonSchema};
use serde::Deserialize;

/// A tool's arguments with the repository they are about.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct InRepo<T> {
    /// The repository, by its name on this server (GET /api/repos lists
    /// them): needed when the server serves several.
    #[serde(default)]
    pub repo: Option<String>,
    #[serde(flatten)]
    pub args: T,
}

/// Only the repository: inbox_list's argument.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct RepoArg {
    /// The repository, by its name on this server; left out on a server of
    /// several, every repository's items, each with its `repo`.
    #[serde(default)]
    pub repo: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PlanArg {
    /// The plan, as the text of a baton.toml.
    pub plan: String,
}

/// A task, as a plan's `[[task]]` says it.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TaskArg {
    /// `[A-Za-z0-9_-]+`, unique in its run (made from the prompt when left out of task_add).
    #[serde(default)]
    pub id: Option<String>,
    /// What the agent is asked to do (a template: `{{ tasks.<id>.result }}` reads a task it needs).
    pub prompt: String,
    /// The agent profile (default: the plan's defaults.agent).
    #[serde(default)]
    pub agent: Option<String>,
    /// Tasks that must succeed and be merged before this one starts.
    #[serde(default)]
    pub needs: Vec<String>,
    /// Shell commands run in the task's worktree after each attempt; all must exit 0.
    #[serde(default)]
    pub gates: Vec<String>,
    /// Extra attempts after a failed attempt or gate.
    #[serde(default)]
    pub retries: Option<u32>,
    /// false: the result is the final message only; nothing is merged.
    #[serde(default)]
    pub merge: Option<bool>,
    /// Files whose text is given with the prompt.
    #[serde(default)]
    pub context: Vec<String>,
    /// A race: this many candidates of the task's agent (2 to 10), each in
    /// its own worktree with its own gates; the winner alone merges.
    #[serde(default)]
    pub candidates: Option<u32>,
    /// A race: one candidate per profile named (profiles may repeat).
    #[serde(default)]
    pub agents: Vec<String>,
    /// How a race's winner is picked: "first" to pass its gates, "all"
    /// (ranked by rank_by, or by the rank command), or "judge".
    #[serde(default)]
    pub pick: Option<String>,
    /// The agent profile that judges a race (pick = "judge").
    #[serde(default)]
    pub judge: Option<String>,
    /// What ranks a race's candidates that passed: gates, diff_lines, cost, time.
    #[serde(default)]
    pub rank_by: Vec<String>,
    /// A command run in each passing candidate's worktree that prints a number; higher wins.
    #[serde(default)]
    pub rank: Option<String>,
}

impl TaskArg {
    /// The task as a `[[task]]` TOML snippet with id `id`.
    pub fn snippet(&self, id: &str) -> Result<String, String> {
        if self.prompt.trim().is_empty() {
            return Err(format!("task {id:?}: the prompt is empty"));
        }
        let mut t = toml::Table::new();
        t.insert("id".into(), id.into());
        t.insert("prompt".into(), self.prompt.as_str().into());
        if let Some(a) = &self.agent {
            t.insert("agent".into(), a.as_str().into());
        }
        let list = |v: &[String]| toml::Value::Array(v.iter().map(|s| s.as_str().into()).collect());
        for (key, v) in [
            ("needs", &self.needs),
            ("gates", &self.gates),
            ("context", &self.context),
        ] {
            if !v.is_empty() {
                t.insert(key.into(), list(v));
            }
        }
        if let Some(r) = self.retries {
            t.insert("retries".into(), i64::from(r).into());
        }
        if let Some(m) = self.merge {
            t.insert("merge".into(), m.into());
        }
        let race = baton_core::plan::race::RaceFields {
            candidates: self.candidates,
            agents: self.agents.clone(),
            pick: self.pick.clone(),
            judge: self.judge.clone(),
            rank_by: self.rank_by.clone(),
            rank: self.rank.clone(),
        };
        race.write(&mut t);
        let body = toml::to_string(&t).map_err(|e| e.to_string())?;
        Ok(format!("\n[[task]]\n{body}"))
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RunStartArg {
    /// A whole plan, as TOML text.
    #[serde(default)]
    pub plan: Option<String>,
    /// Or: a plan file in the repository, relative to its root.
    #[serde(default)]
    pub path: Option<String>,
    /// Or: tasks, run with the profiles and defaults of the server's plan (baton.toml).
    #[serde(default)]
    pub tasks: Option<Vec<TaskArg>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct TaskAddArg {
    /// The run (default: the latest; a lead task: its own).
    #[serde(default)]
    pub run: Option<String>,
    #[serde(flatten)]
    pub task: TaskArg,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RunArg {
    /// The run (default: the latest).
    #[serde(default)]
    pub run: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct TaskRef {
    /// The run (default: the latest).
    #[serde(default)]
    pub run: Option<String>,
    pub task: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SteerArg {
    /// The run (default: the latest).
    #[serde(default)]
    pub run: Option<String>,
    pub task: String,
    /// What the agent is told.
    pub message: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PickArg {
    /// The run (default: the latest).
    #[serde(default)]
    pub run: Option<String>,
    /// The race task.
    pub task: String,
    /// The candidate to make its winner: its id (`<task>.<n>`) or number.
    pub candidate: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct LogsArg {
    /// The run (default: the latest).
    #[serde(default)]
    pub run: Option<String>,
    pub task: String,
    /// How many bytes from the end of its last attempt's log (default 16384).
    #[serde(default)]
    pub bytes: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WaitArg {
    /// The run (default: the latest).
    #[serde(default)]
    pub run: Option<String>,
    /// Wait for this task only (default: the whole run).
    #[serde(default)]
    pub task: Option<String>,
    /// Give up after this many seconds (default 600, at most 3600); the answer says `done: false`.
    #[serde(default)]
    pub timeout_s: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct MessageSendArg {
    /// The run (default: the latest; a task's own tools: its run).
    #[serde(default)]
    pub run: Option<String>,
    /// The task the message is for.
    pub to: String,
    pub text: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct MessageReadArg {
    /// The run (default: the latest; a task's own tools: its run).
    #[serde(default)]
    pub run: Option<String>,
    /// Whose messages (default: the task these tools belong to).
    #[serde(default)]
    pub task: Option<String>,
    /// Only messages with a larger id (the last one read).
    #[serde(default)]
    pub after: Option<i64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct InboxAnswerArg {
    /// The question's id (from inbox_list).
    pub id: i64,
    /// The answer; a question with options takes one of them.
    pub text: String,
}
