//! What the engine hands a worker when it starts (or restarts) a task: the
//! task, its branch and desk, what its attempts so far left. The worker's
//! parts (the attempt, holds, the remote, a lead's door) all read it.

use crate::engine::desk::DeskPlan;
use crate::model::AttemptKind;
use crate::plan::TaskSpec;
use crate::template::TaskView;
use std::collections::BTreeMap;
use std::ffi::OsString;

/// What the engine hands a worker when it starts (or restarts) a task.
pub(crate) struct Start {
    pub spec: TaskSpec,
    /// Where the task works: its branch and desk.
    pub desk: DeskPlan,
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
    /// The setup key at the start commit, once worked out.
    pub setup_key: Option<String>,
}
