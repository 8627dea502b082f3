//! Cleaning up finished runs without losing anything: every branch tip of a
//! run is kept under `refs/baton/archive/<run>/...` before the branch goes,
//! and a worktree goes only when it holds nothing uncommitted.

use crate::git::{git, git_ok, GitError, Repo};
use crate::store::RunRecord;
use std::path::{Path, PathBuf};

/// What cleaning a run does (or would do).
#[derive(Debug, Clone, Default)]
pub struct Cleanup {
    pub run: String,
    /// Worktrees to remove.
    pub worktrees: Vec<PathBuf>,
    /// Worktrees kept because they hold uncommitted changes, and which.
    pub kept: Vec<(PathBuf, Vec<String>)>,
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
    let list = git_ok(&repo.root, ["worktree", "list", "--porcelain"]).await?;
    let root = PathBuf::from(&run.worktrees_dir);
    for path in list.lines().filter_map(|l| l.strip_prefix("worktree ")) {
        let path = PathBuf::from(path);
        // The run's own: its tasks' desks and its verify worktree.
        let own = path.parent() == Some(root.join(&run.id).as_path())
            || path == root.join(format!("{}-verify", run.id));
        if !own {
            continue;
        }
        let changes = uncommitted(&path).await?;
        if changes.is_empty() {
            c.worktrees.push(path);
        } else {
            c.kept.push((path, changes));
        }
    }
    Ok(c)
}

/// Files with changes of their own (untracked ones too) in a worktree.
async fn uncommitted(path: &Path) -> Result<Vec<String>, GitError> {
    let out = git(path, ["status", "--porcelain"]).await?;
    Ok(out
        .stdout
        .lines()
        .map(|l| l.get(3..).unwrap_or(l).to_string())
        .collect())
}

/// Does it: worktrees first (a branch checked out cannot go), then each
/// branch, its tip kept first. A kept worktree keeps its branch too.
pub async fn apply(repo: &Repo, c: &Cleanup) -> Result<(), GitError> {
    for path in &c.worktrees {
        repo.remove_worktree(path).await?;
    }
    for (name, tip, archive) in &c.branches {
        if checked_out_in_kept(c, name).await {
            continue;
        }
        repo.set_ref(archive, tip).await?;
        git_ok(
            &repo.root,
            ["update-ref", "-d", name.as_str(), tip.as_str()],
        )
        .await?;
    }
    Ok(())
}

async fn checked_out_in_kept(c: &Cleanup, branch: &str) -> bool {
    for (path, _) in &c.kept {
        let head = git(path, ["symbolic-ref", "-q", "HEAD"]).await;
        if head.is_ok_and(|o| o.stdout.trim() == branch) {
            return true;
        }
    }
    false
}
