//! Rows of the store as Rust values.

use crate::model::{
    Activity, AttemptKind, AttemptStatus, ControlKind, EventKind, RunKind, RunStatus, TaskStatus,
};
use rusqlite::Row;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: String,
    pub repo: String,
    pub plan_path: String,
    #[serde(skip)]
    pub plan_source: String,
    pub base: String,
    pub base_commit: String,
    pub integration_branch: String,
    pub worktrees_dir: String,
    pub status: RunStatus,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub pid: Option<u32>,
    pub kind: RunKind,
    /// The branch `base` named when the run started (`baton land` lands there).
    pub base_branch: Option<String>,
}

impl RunRecord {
    pub(crate) fn from_row(r: &Row) -> rusqlite::Result<Self> {
        Ok(RunRecord {
            id: r.get("id")?,
            repo: r.get("repo")?,
            plan_path: r.get("plan_path")?,
            plan_source: r.get("plan_source")?,
            base: r.get("base")?,
            base_commit: r.get("base_commit")?,
            integration_branch: r.get("integration_branch")?,
            worktrees_dir: r.get("worktrees_dir")?,
            status: r.get("status")?,
            created_at: r.get("created_at")?,
            finished_at: r.get("finished_at")?,
            pid: r.get("pid")?,
            kind: r.get("kind")?,
            base_branch: r.get("base_branch")?,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskRecord {
    pub run_id: String,
    pub id: String,
    /// Whether `[workspace] setup` has run in its worktree.
    pub setup_done: bool,
    pub status: TaskStatus,
    pub attempts: u32,
    pub failures: u32,
    pub branch: String,
    pub worktree: Option<String>,
    pub start_commit: Option<String>,
    pub commit_id: Option<String>,
    pub merged: bool,
    pub result: Option<String>,
    pub reason: Option<String>,
    pub feedback: Option<String>,
    pub files: Option<Vec<String>>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    /// What the model gateway counted beyond that (see [`WireUsageRecord`]).
    #[serde(flatten)]
    pub wire: WireUsageRecord,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub activity: Option<Activity>,
    pub session_id: Option<String>,
    pub last_output_at: Option<i64>,
    /// Set when a person asked for a retry: failures count from this attempt on.
    pub retry_from: u32,
    /// The profile that runs the task.
    pub agent: Option<String>,
    /// The tasks it waits for.
    pub needs: Vec<String>,
    /// What a person should know that did not stop the task.
    pub warnings: Vec<String>,
    /// Where its work would conflict with the integration branch now.
    pub conflict_ahead: Vec<String>,
}

impl TaskRecord {
    /// Its worktree, while it exists.
    pub fn existing_worktree(&self) -> Option<&std::path::Path> {
        self.worktree
            .as_deref()
            .map(std::path::Path::new)
            .filter(|w| w.exists())
    }

    pub(crate) fn from_row(r: &Row) -> rusqlite::Result<Self> {
        let files: Option<String> = r.get("files")?;
        let needs: Option<String> = r.get("needs")?;
        Ok(TaskRecord {
            run_id: r.get("run_id")?,
            id: r.get("id")?,
            setup_done: r.get("setup_done")?,
            status: r.get("status")?,
            attempts: r.get("attempts")?,
            failures: r.get("failures")?,
            branch: r.get("branch")?,
            worktree: r.get("worktree")?,
            start_commit: r.get("start_commit")?,
            commit_id: r.get("commit_id")?,
            merged: r.get("merged")?,
            result: r.get("result")?,
            reason: r.get("reason")?,
            feedback: r.get("feedback")?,
            files: files.and_then(|f| serde_json::from_str(&f).ok()),
            input_tokens: r.get("input_tokens")?,
            output_tokens: r.get("output_tokens")?,
            cost_usd: r.get("cost_usd")?,
            wire: WireUsageRecord::from_row(r)?,
            started_at: r.get("started_at")?,
            finished_at: r.get("finished_at")?,
            activity: r.get("activity")?,
            session_id: r.get("session_id")?,
            last_output_at: r.get("last_output_at")?,
            retry_from: r.get("retry_from")?,
            agent: r.get("agent")?,
            needs: needs
                .and_then(|n| serde_json::from_str(&n).ok())
                .unwrap_or_default(),
            warnings: serde_json::from_str(&r.get::<_, String>("warnings")?).unwrap_or_default(),
            conflict_ahead: serde_json::from_str(&r.get::<_, String>("conflict_ahead")?)
                .unwrap_or_default(),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    pub run_id: String,
    pub task_id: String,
    pub n: u32,
    pub kind: AttemptKind,
    pub status: AttemptStatus,
    pub pgid: Option<i32>,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub log_path: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub session_id: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    pub model: Option<String>,
    /// Where the attempt's end commit is kept (`refs/baton/<run>/<task>/<n>`).
    pub commit_ref: Option<String>,
    #[serde(flatten)]
    pub wire: WireUsageRecord,
}

/// A task's or attempt's usage as the model gateway counted it beyond
/// tokens and cost (all None when it did not go through the gateway), and
/// the agent's own figure kept beside it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WireUsageRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_read_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_requests: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reported_cost_usd: Option<f64>,
}

impl WireUsageRecord {
    fn from_row(r: &Row) -> rusqlite::Result<Self> {
        Ok(WireUsageRecord {
            cache_read_tokens: r.get("cache_read_tokens")?,
            cache_write_tokens: r.get("cache_write_tokens")?,
            gateway_requests: r.get("gateway_requests")?,
            reported_cost_usd: r.get("reported_cost_usd")?,
        })
    }
}

impl AttemptRecord {
    pub(crate) fn from_row(r: &Row) -> rusqlite::Result<Self> {
        Ok(AttemptRecord {
            run_id: r.get("run_id")?,
            task_id: r.get("task_id")?,
            n: r.get("n")?,
            kind: r.get("kind")?,
            status: r.get("status")?,
            pgid: r.get("pgid")?,
            exit_code: r.get("exit_code")?,
            reason: r.get("reason")?,
            log_path: r.get("log_path")?,
            started_at: r.get("started_at")?,
            finished_at: r.get("finished_at")?,
            session_id: r.get("session_id")?,
            input_tokens: r.get("input_tokens")?,
            output_tokens: r.get("output_tokens")?,
            cost_usd: r.get("cost_usd")?,
            model: r.get("model")?,
            commit_ref: r.get("commit_ref")?,
            wire: WireUsageRecord::from_row(r)?,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub seq: i64,
    pub run_id: String,
    pub ts: i64,
    pub task_id: Option<String>,
    pub attempt: Option<u32>,
    pub kind: EventKind,
    pub data: serde_json::Value,
}

impl Event {
    /// What the event says, typed; None when its data does not fit its
    /// kind (written by another version of baton, say).
    pub fn payload(&self) -> Option<crate::payload::Payload> {
        crate::payload::Payload::read(self.kind, &self.data).ok()
    }

    pub(crate) fn from_row(r: &Row) -> rusqlite::Result<Self> {
        let data: String = r.get("data")?;
        Ok(Event {
            seq: r.get("seq")?,
            run_id: r.get("run_id")?,
            ts: r.get("ts")?,
            task_id: r.get("task_id")?,
            attempt: r.get("attempt")?,
            kind: r.get("kind")?,
            data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Control {
    pub id: i64,
    pub run_id: String,
    pub task_id: String,
    pub kind: ControlKind,
    pub message: Option<String>,
    pub handled_at: Option<i64>,
    pub ok: Option<bool>,
    pub response: Option<String>,
}

impl Control {
    pub(crate) fn from_row(r: &Row) -> rusqlite::Result<Self> {
        Ok(Control {
            id: r.get("id")?,
            run_id: r.get("run_id")?,
            task_id: r.get("task_id")?,
            kind: r.get("kind")?,
            message: r.get("message")?,
            handled_at: r.get("handled_at")?,
            ok: r.get("ok")?,
            response: r.get("response")?,
        })
    }
}
