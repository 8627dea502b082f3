//! The run's desks: where task worktrees live, the worktrees of tasks that
//! are done (kept for the next tasks to start in), the repository's warm
//! pool, which desk a starting task gets, and their removal or return to
//! the pool at the end of the run.

pub(crate) mod make;
pub(crate) mod pool;
pub(crate) mod workspace;

use crate::engine::shared::Shared;
use crate::git::Repo;
use pool::Pool;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::task::JoinHandle;

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
    /// The repository's warm pool of prepared worktrees, if the plan keeps one.
    pool: Option<Arc<Pool>>,
    /// The pool's refill going on in the background.
    refill: Option<JoinHandle<()>>,
}

/// Where a task works: its branch, and the desk (worktree) it is made in
/// or found at.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeskPlan {
    pub branch: String,
    pub worktree: PathBuf,
    /// Where a new worktree starts: the integration head when the task starts.
    pub start_commit: String,
    /// Whether the worktree exists already (resume, steer after approval wait).
    pub existing: bool,
    /// A worktree of a task that is done, to make this task's desk from.
    pub spare: Option<PathBuf>,
    /// The task that held the desk last, whose teardown comes first.
    pub spare_of: Option<String>,
    /// The desk keeps its ignored files (caches): its setup is done again
    /// only if its key changed.
    pub keep_ignored: bool,
    /// The desk comes from the pool: reset and cleaned already, torn down.
    pub pooled: bool,
    /// `worktree` is a desk that exists already and is used where it is.
    pub in_place: bool,
}

impl Desks {
    pub fn new(root: PathBuf, keep: bool, pool: Option<Arc<Pool>>) -> Desks {
        Desks {
            root,
            keep,
            spares: Vec::new(),
            assigned: HashMap::new(),
            pool,
            refill: None,
        }
    }

    /// Where a task with no desk of its own starts: in a done task's
    /// worktree, or, with a pool, in one of its desks (the pool's desks never
    /// move: what setup made there, a virtualenv say, may hold their path).
    pub fn place(&mut self, plan: &mut DeskPlan) {
        let Some(pool) = &self.pool else {
            (plan.spare, plan.spare_of) = self.spares.pop().unzip();
            return;
        };
        plan.keep_ignored = true;
        let desk = match self.spares.pop() {
            Some((desk, task)) => {
                plan.spare_of = Some(task);
                desk
            }
            None => match pool.take() {
                Some(desk) => {
                    plan.pooled = true;
                    desk
                }
                None => pool.new_desk(),
            },
        };
        plan.in_place = desk.exists();
        plan.worktree = desk;
    }

    /// The pool's refill starts in the background (once the first tasks
    /// are making their desks, so it waits for them).
    pub fn start_refill(&mut self, sh: &Arc<Shared>) {
        if let (Some(pool), None) = (&self.pool, &self.refill) {
            self.refill = Some(tokio::spawn(pool::refill(sh.clone(), pool.clone())));
        }
    }

    /// Done tasks' worktrees are torn down, then go back to the pool while
    /// it has room (their work is merged; their caches stay) or are removed
    /// by [`Desks::clear`].
    pub async fn return_spares(&mut self, sh: &Shared) {
        if let (Some(pool), Some(refill)) = (&self.pool, self.refill.take()) {
            pool.stop_refill();
            let _ = refill.await;
        }
        let mut gone = Vec::new();
        for (spare, task) in std::mem::take(&mut self.spares) {
            workspace::teardown(sh, &task, &spare).await;
            if let Some(pool) = self.pool.as_ref().filter(|p| p.has_room()) {
                match pool.put_back(&sh.repo, &spare).await {
                    Ok(()) => continue,
                    Err(e) => tracing::warn!("cannot put {} in the pool: {e}", spare.display()),
                }
            }
            gone.push((spare, task));
        }
        self.spares = gone;
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
                Ok(()) => pool::forget(path),
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
