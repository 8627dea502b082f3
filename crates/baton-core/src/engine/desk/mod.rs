//! The run's desks: where task worktrees live, the worktrees of tasks that
//! are done (kept for the next tasks to start in), and their removal at the
//! end of the run.

use crate::git::Repo;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A done task's worktree, and the task that held it last.
pub(crate) type Spare = (PathBuf, String);

pub(crate) struct Desks {
    root: PathBuf,
    /// Keep every worktree as it is (`--keep-worktrees`): none is reused or removed.
    keep: bool,
    spares: Vec<Spare>,
    /// Where each started task's worktree is (a desk may live anywhere:
    /// the pool's desks never move).
    assigned: HashMap<String, PathBuf>,
}

impl Desks {
    pub fn new(root: PathBuf, keep: bool) -> Desks {
        Desks {
            root,
            keep,
            spares: Vec::new(),
            assigned: HashMap::new(),
        }
    }

    /// Task `task` works in `path`.
    pub fn assign(&mut self, task: &str, path: PathBuf) {
        self.assigned.insert(task.to_string(), path);
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A task ended well: its worktree (its work is on its branch) waits for
    /// the next task to start in.
    pub fn release(&mut self, run: &str, task: &str) {
        if self.keep {
            return;
        }
        let path = self
            .assigned
            .remove(task)
            .unwrap_or_else(|| crate::paths::task_worktree(&self.root, run, task));
        if path.exists() {
            self.spares.push((path, task.to_string()));
        }
    }

    /// Where the run's `verify` checks run (beside the tasks' worktrees, so
    /// no task id can take its place).
    pub fn verify_dir(&self, run: &str) -> PathBuf {
        self.root.join(format!("{run}-verify"))
    }

    /// The worktrees of done tasks, waiting for a new task or removal.
    pub fn take_spares(&mut self) -> Vec<Spare> {
        std::mem::take(&mut self.spares)
    }

    pub fn set_spares(&mut self, spares: Vec<Spare>) {
        self.spares = spares;
    }

    /// A done task's worktree for a new task, if there is one.
    pub fn spare(&mut self) -> Option<Spare> {
        self.spares.pop()
    }

    /// Removes the worktrees nobody needs any more, git's metadata with them.
    pub async fn clear(&mut self, repo: &Repo, run: &str) {
        let mut gone: Vec<PathBuf> = self.spares.drain(..).map(|(p, _)| p).collect();
        let verify = self.verify_dir(run);
        if verify.exists() && !self.keep {
            gone.push(verify);
        }
        // Their work is on their branches: the directories go, and one prune
        // drops git's metadata of all of them (cheaper than one `git worktree
        // remove` each when many tasks end at once).
        for path in &gone {
            match tokio::fs::remove_dir_all(path).await {
                Ok(()) => super::pool::forget(path),
                Err(e) => tracing::warn!("cannot remove {}: {e}", path.display()),
            }
        }
        if !gone.is_empty() {
            let _ = crate::git::git(&repo.root, ["worktree", "prune"]).await;
        }
        // The run's directory, once nothing of it is left there.
        let _ = std::fs::remove_dir(self.root.join(run));
    }
}
