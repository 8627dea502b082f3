//! The run engine. A reader finds each part in the file named after it:
//!
//! - [`board`]: every task's status and every rule that moves it; pure, no I/O.
//! - [`merge`]: the merge queue onto the integration branch; git only.
//! - [`shell`]: the [`Engine`] itself, which carries out what the board
//!   decides (store rows and events, workers, merges) and answers requests.
//! - [`handle`]: requests to an engine in this process, answered over a channel.
//! - [`setup`]: creating a run, and taking one over after a crash.
//! - [`desks`]: where task worktrees live, and reusing those of done tasks.
//! - [`worker`]: one task from worktree to checked result, attempt by attempt;
//!   [`attempt`] one attempt in phases; [`watch`] what its agent's stream
//!   means; [`supervise`] one process group; [`gates`] the checks after it.

mod board;
mod desk;
mod merge;
mod messages;
mod process;
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
