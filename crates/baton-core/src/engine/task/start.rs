//! What the engine hands a worker when it starts (or restarts) a task: the
//! task, its branch and desk, what its attempts so far left. The worker's
//! parts (the attempt, holds, the remote, a lead's door) all read it.

use crate::model::AttemptKind;
use crate::plan::TaskSpec;
use crate::template::TaskView;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

/// What the engine hands a worker when it starts (or restarts) a task.
pub(crate) struct Start {
    pub spec: TaskSpec,
    pub branch: String,
    pub worktree: PathBuf,
    /// Where a new worktree starts: the integration head when the task starts.
    pub start_commit: String,
    /// Whether the worktree exists already (resume, steer after approval wait).
    pub existing: bool,
    /// A worktree of a task that is done, to make this task's desk from.
    pub spare: Option<PathBuf>,
    pub attempts: u32,
    /// Failed attempts count from this one on (a person's retry starts the count again).
    pub retry_from: u32,
    pub feedback: Option<String>,
    /// The agent's session from an earlier attempt, to continue it.
    pub session: Option<String>,
    pub upstream: BTreeMap<String, TaskView>,
    /// What this start's attempts are for.
    pub kind: AttemptKind,
    /// Whether `[workspace] setup` has yet to run in the worktree.
    pub needs_setup: bool,
    /// `BATON_WORKSPACE` and the task's ports, for setup, agent and gates.
    pub desk_env: Vec<(OsString, OsString)>,
    /// The spare (a done task's or the pool's) keeps its ignored files: its
    /// setup is done again only if its key changed.
    pub keep_ignored: bool,
    /// The spare comes from the pool: reset and cleaned already, torn down.
    pub pooled: bool,
    /// `worktree` is a desk that exists already and is used where it is.
    pub in_place: bool,
    /// The task that held the desk last, whose teardown comes first.
    pub spare_of: Option<String>,
    /// The setup key at the start commit, once worked out.
    pub setup_key: Option<String>,
}
