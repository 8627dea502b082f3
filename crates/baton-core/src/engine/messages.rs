//! What travels between the parts of the engine: requests to a worker, a
//! worker's outcome, the money it spends, and a person's request with its
//! answer.

use crate::model::ControlKind;
use serde::Serialize;
use tokio::sync::oneshot;

/// How a list of checks (gates, verify, setup, teardown) ended.
#[derive(Debug)]
pub(crate) enum GateResult {
    Passed,
    Failed { reason: String, feedback: String },
    Interrupted(WorkerCmd),
}

/// A request to a task's worker.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerCmd {
    Stop,
    Steer(String),
    /// A message (the store's id, and its text as the agent reads it) for an
    /// agent that takes input while it runs; the attempt goes on. One that
    /// cannot be handed over stays for the next attempt.
    Message {
        id: i64,
        said: String,
    },
    Shutdown,
    /// A budget was crossed: stop the agent, keep its work, fail the task.
    OverBudget(String),
    /// A question of its agent got no answer in time: stop the agent, keep
    /// its work, fail the task with this reason.
    NoAnswer(String),
    /// Another candidate of its race passed first: stop the agent, keep its
    /// work, end the task stopped with this reason.
    Outrun(String),
}

impl WorkerCmd {
    /// How a request that cut a task's go short ends it (`commit` and
    /// `result`: what the go left; `during`: what a stop cut short, in
    /// words). Err: a steer, whose message the next attempt gets.
    pub(crate) fn ends(
        self,
        commit: Option<String>,
        result: String,
        during: &str,
    ) -> Result<Outcome, String> {
        match self {
            WorkerCmd::Shutdown => Ok(Outcome::Interrupted { commit }),
            WorkerCmd::Stop => Ok(Outcome::Stopped {
                commit,
                reason: format!("stopped by request (baton stop){during}"),
            }),
            WorkerCmd::Outrun(reason) => Ok(Outcome::Stopped { commit, reason }),
            WorkerCmd::OverBudget(reason) | WorkerCmd::NoAnswer(reason) => Ok(Outcome::Failed {
                commit,
                reason,
                result,
            }),
            WorkerCmd::Steer(message) | WorkerCmd::Message { said: message, .. } => Err(message),
        }
    }
}

/// How a worker's go at a task ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// Gates passed; ready for approval or merge.
    Done { commit: String, result: String },
    Failed {
        commit: Option<String>,
        reason: String,
        result: String,
    },
    Stopped {
        commit: Option<String>,
        reason: String,
    },
    /// baton is shutting down; the task goes back to pending.
    Interrupted { commit: Option<String> },
    /// baton itself could not go on with the task (its desk could not be
    /// made): not the task's failure. The run stops, resumable.
    Broken { reason: String },
    /// Its agent asked a person (`question`, in words) and ended its turn:
    /// the task waits for the answer with no process and no slot.
    Waiting {
        commit: Option<String>,
        question: String,
    },
}

impl Outcome {
    /// The task's last commit, if the go left one.
    pub fn commit(&self) -> Option<String> {
        match self {
            Outcome::Done { commit, .. } => Some(commit.clone()),
            Outcome::Failed { commit, .. }
            | Outcome::Stopped { commit, .. }
            | Outcome::Interrupted { commit }
            | Outcome::Waiting { commit, .. } => commit.clone(),
            Outcome::Broken { .. } => None,
        }
    }
}

/// What a worker tells the engine.
#[derive(Debug)]
pub(crate) enum WorkerNote {
    /// What the attempt has cost so far (it only grows within an attempt).
    Spent {
        task: String,
        attempt: u32,
        usd: f64,
    },
    Finished {
        task: String,
        outcome: Outcome,
        /// The commit the task's work started from; None when the worker
        /// died before it knew.
        start: Option<String>,
    },
    /// A task's agent asked question `question`, whose time runs out at
    /// `expires_at` (the engine keeps the clock).
    Asked {
        task: String,
        question: i64,
        expires_at: Option<i64>,
    },
    /// The run's `verify` checks on a task's merge commit are done.
    Verified { result: GateResult },
    /// The provider limits `profile` (and the account it names) until then:
    /// start no task on it.
    Limited {
        profile: String,
        until_ms: i64,
        reason: String,
    },
    /// `task`'s profile `from` cannot go on: which fallback takes it over
    /// (none of `worked`)? With `quota_until`, `from`'s quota ran out: no
    /// task falls back to it until then.
    Fallback {
        from: String,
        worked: Vec<String>,
        quota_until: Option<i64>,
        answer: oneshot::Sender<Option<String>>,
    },
}

/// The engine's answer to a request: whether it was taken, and what happens
/// now (or why not), in words for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    pub ok: bool,
    pub message: String,
}

impl Answer {
    pub fn yes(message: impl Into<String>) -> Answer {
        Answer {
            ok: true,
            message: message.into(),
        }
    }

    pub fn no(message: impl Into<String>) -> Answer {
        Answer {
            ok: false,
            message: message.into(),
        }
    }
}

/// A request to a running engine, with where its answer goes.
#[derive(Debug)]
pub(crate) struct Request {
    pub task: String,
    pub kind: ControlKind,
    pub message: Option<String>,
    pub answer: oneshot::Sender<Answer>,
}

/// How a task's merge went.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MergeResult {
    /// Merged; `integration` is the new head, None when the task changed nothing.
    Merged {
        integration: Option<String>,
    },
    Conflict {
        paths: Vec<String>,
        reason: String,
    },
    /// git itself failed, or the branch kept moving: the reason in words.
    Failed(String),
    /// A `verify` check failed on the merged whole: the branch did not move.
    /// `retry`: the task has retries left and runs again on the current head.
    VerifyFailed {
        reason: String,
        feedback: String,
        retry: bool,
    },
}
