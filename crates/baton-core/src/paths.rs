//! Where baton keeps things for one repository: the store, per-run logs and
//! locks, and task worktrees, all under the git common dir by default so that
//! nothing shows in the user's `git status`.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct StatePaths {
    pub root: PathBuf,
}

impl StatePaths {
    pub fn new(root: PathBuf) -> Self {
        StatePaths { root }
    }

    pub fn db(&self) -> PathBuf {
        self.root.join("baton.db")
    }

    /// Keys `baton serve` signs with for this repository (action links,
    /// VAPID): files only this user reads, in the user's keys directory,
    /// which every sandbox hides (whatever repository it is for).
    pub fn secrets(&self) -> PathBuf {
        use sha2::{Digest, Sha256};
        let of: String = Sha256::digest(self.root.display().to_string().as_bytes())[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        crate::access::keys_dir().join(of)
    }

    pub fn run_dir(&self, run: &str) -> PathBuf {
        self.root.join("runs").join(run)
    }

    pub fn lock(&self, run: &str) -> PathBuf {
        self.run_dir(run).join("lock")
    }

    pub fn attempt_log(&self, run: &str, task: &str, n: u32) -> PathBuf {
        self.run_dir(run)
            .join("logs")
            .join(task)
            .join(format!("attempt-{n}.log"))
    }

    pub fn default_worktrees(&self) -> PathBuf {
        self.root.join("worktrees")
    }
}

/// The worktree directory of one task under a worktrees root.
pub fn task_worktree(worktrees: &Path, run: &str, task: &str) -> PathBuf {
    worktrees.join(run).join(task)
}

pub fn integration_branch(run: &str) -> String {
    format!("baton/{run}/integration")
}

pub fn task_branch(run: &str, task: &str) -> String {
    format!("baton/{run}/task/{task}")
}

/// Where attempt `n` of a task keeps its end commit, whatever its outcome:
/// an agent that later resets or rewrites its branch cannot make it unreachable.
pub fn attempt_ref(run: &str, task: &str, n: u32) -> String {
    format!("refs/baton/{run}/{task}/{n}")
}
