//! The run engine, in rooms by concern; imports only go down the list:
//!
//! - `run/`: the [`Engine`] loop: it asks the board, carries out its
//!   actions (store rows and events, workers, merges) and answers requests;
//!   starting a run and taking one over after a crash; the in-process handle.
//! - `merge/`: from "task done" to "branch moved": the merge lane, the
//!   queue onto the integration branch, verify batches, the resolver's prompt.
//! - `pick/`: a race's end: its candidates' figures, their rank command,
//!   the winner's commit made the race task's own.
//! - `task/`: one task from desk to checked result, attempt by attempt, and
//!   where its agent runs (its executor).
//! - `desk/`: where tasks work: worktrees, spares, the warm pool, setup.
//! - `process/`: one process group: its sandbox, supervision, output, gates.
//! - `board/`: every task's standing and every rule that moves it; pure, no
//!   I/O; the only owner of provider limits.
//! - `shared.rs` and `messages.rs`: what every part shares, and what travels
//!   between them.
//!
//! docs/architecture.md walks one task through them.

mod board;
mod desk;
mod merge;
pub(crate) mod messages;
mod pick;
pub(crate) mod process;
mod run;
mod shared;
mod task;

pub use messages::{Answer, WorkerCmd};
pub use run::handle::EngineHandle;
pub use run::setup::RunOptions;
pub use run::Engine;

pub(crate) use shared::redactor_for;

use crate::git::GitError;
use crate::model::RunStatus;
use crate::plan::PlanError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("run {run} is still going on in process {}; stop it first or wait", pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into()))]
    Busy { run: String, pid: Option<u32> },
    #[error("run {run} has already finished ({status}); there is nothing to resume")]
    Finished { run: String, status: RunStatus },
    #[error("{0}")]
    Io(String),
}
