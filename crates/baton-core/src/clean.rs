//! Cleaning up finished runs without losing anything: every branch tip of a
//! run is kept under `refs/baton/archive/<run>/...` before the branch goes,
//! and a worktree goes only when it holds nothing uncommitted.

use crate::git::{git_ok, GitError, Repo};
use crate::store::RunRecord;
use std::path::PathBuf;

/// What cleaning a run does (or would do).
#[derive(Debug, Clone, Default)]
pub struct Cleanup {
    pub run: String,
    /// Worktrees to remove.
    pub worktrees: Vec<PathBuf>,
    /// Worktrees kept because they hold uncommitted changes, and which.
    pub kept: Vec<(PathBuf, Vec<String>)>,
    /// Worktrees on a run's branch that baton did not make (one a person
    /// added to look at a task's work, the main checkout): never touched,
    /// and their branches stay.
    pub foreign: Vec<(PathBuf, String)>,
    /// Branches checked out in kept worktrees: they stay too.
    pub kept_branches: Vec<String>,
    /// Branches to delete: (ref, its tip, where the tip is kept).
    pub branches: Vec<(String, String, String)>,
}

/// Finds what there is to clean of `run` (finished: the caller checks).
pub async fn survey(repo: &Repo, run: &RunRecord) -> Result<Cleanup, GitError> {
    let mut c = Cleanup {
        run: run.id.clone(),
        ..Default::default()
    };
    let prefix = format!("refs/heads/baton/{}/", run.id);
    let refs = git_ok(
        &repo.root,
        [
            "for-each-ref",
            "--format=%(refname) %(objectname)",
            prefix.as_str(),
        ],
    )
    .await?;
    for line in refs.lines() {
        let Some((name, tip)) = line.split_once(' ') else {
            continue;
        };
        let rest = name.trim_start_matches(&prefix);
        let archive = format!("refs/baton/archive/{}/{rest}", run.id);
        c.branches
            .push((name.to_string(), tip.to_string(), archive));
    }
    let root = PathBuf::from(&run.worktrees_dir);
    let main = repo
        .root
        .canonicalize()
        .unwrap_or_else(|_| repo.root.clone());
    for (path, branch) in repo.worktrees().await? {
        let on_run_branch = branch.as_deref().is_some_and(|b| b.starts_with(&prefix));
        // The run's own: its tasks' desks (where the run put them, or in
        // the warm pool's place, marked so) and its verify worktree.
        let is_main = path.canonicalize().unwrap_or_else(|_| path.clone()) == main;
        let own = !is_main
            && (path.parent() == Some(root.join(&run.id).as_path())
                || path == root.join(format!("{}-verify", run.id))
                || on_run_branch && PathBuf::from(format!("{}.task", path.display())).exists());
        if !own {
            if let (true, Some(b)) = (on_run_branch, branch) {
                c.kept_branches.push(b.clone());
                c.foreign.push((path, b));
            }
            continue;
        }
        let changes = repo.changes(&path, true).await?;
        if changes.is_empty() {
            c.worktrees.push(path);
        } else {
            c.kept_branches.extend(branch);
            c.kept.push((path, changes));
        }
    }
    // What is said and what is done are the same list.
    let kept = c.kept_branches.clone();
    c.branches.retain(|(name, _, _)| !kept.contains(name));
    Ok(c)
}

/// Does it: worktrees first (a branch checked out cannot go), then each
/// branch, its tip kept first. A kept worktree keeps its branch too.
pub async fn apply(repo: &Repo, c: &Cleanup) -> Result<(), GitError> {
    for path in &c.worktrees {
        repo.remove_worktree(path).await?;
        // A desk in the warm pool's place has a marker beside it.
        let _ = std::fs::remove_file(format!("{}.task", path.display()));
    }
    for (name, tip, archive) in &c.branches {
        repo.set_ref(archive, tip).await?;
        git_ok(
            &repo.root,
            ["update-ref", "-d", name.as_str(), tip.as_str()],
        )
        .await?;
    }
    Ok(())
}
