//! One task on the board, and where it stands, as an enum with its data.

use crate::model::TaskStatus;
use crate::plan::TaskSpec;

/// One task on the board: its spec and where it stands.
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) spec: TaskSpec,
    pub(super) standing: Standing,
    /// Retried by request (or waiting on a task that was): on_failure =
    /// "stop" does not hold it back.
    pub(super) forced: bool,
}

/// Where a task stands, with what only that standing has: a pending task
/// cannot be stopping, nor a running one waiting for memory.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Standing {
    /// Not started. `waits`: what it was told it waits for (told once).
    Pending { waits: Option<Wait> },
    /// Its worker runs. `stopping`: asked to stop, its worker is on it.
    /// `resolving`: the attempt resolves a merge conflict.
    Running { stopping: bool, resolving: bool },
    /// Any other status: waiting for approval or the merge queue, or ended.
    Other(TaskStatus),
}

/// What a ready task waits for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Wait {
    Memory,
    Limit,
    /// Its agent asked a person and ended its turn: it starts again only
    /// once the answer comes (or fails when the time runs out).
    Answer,
}

impl Standing {
    pub(super) fn of(status: TaskStatus) -> Standing {
        match status {
            TaskStatus::Pending => Standing::Pending { waits: None },
            TaskStatus::Running => Standing::Running {
                stopping: false,
                resolving: false,
            },
            other => Standing::Other(other),
        }
    }

    pub(super) fn status(&self) -> TaskStatus {
        match self {
            Standing::Pending { .. } => TaskStatus::Pending,
            Standing::Running { .. } => TaskStatus::Running,
            Standing::Other(s) => *s,
        }
    }
}

impl Slot {
    pub(super) fn status(&self) -> TaskStatus {
        self.standing.status()
    }

    pub(super) fn waits(&self) -> Option<Wait> {
        match self.standing {
            Standing::Pending { waits } => waits,
            _ => None,
        }
    }

    pub(super) fn is_stopping(&self) -> bool {
        matches!(self.standing, Standing::Running { stopping: true, .. })
    }
}
