//! What an agent did to its branch during an attempt, set right where it can
//! be: an agent that switched its worktree to another branch (or detached
//! HEAD) gets the task's branch moved to where it ended; every commit it
//! made or had that no ref reaches any more (a reset, a rebase) is kept under
//! `refs/baton/<run>/<task>/<n>-lost-<k>`; and the task says so in words.
//!
//! What the agent did is read from the git dir it worked in: the one baton
//! made for its worktree, or a sandboxed desk's own. Both are read as plain
//! files (HEAD, the HEAD reflog), never by running git there.

use crate::engine::shared::Shared;
use crate::payload::Payload;
use crate::sandbox::own_git::reflog;
use std::path::{Path, PathBuf};

/// Where the agent's HEAD and its reflog are.
pub(crate) enum Seen {
    /// Its worktree's own git dir (an agent without a sandbox).
    Worktree(Option<PathBuf>),
    /// A sandboxed desk's own git directory; the branch's head is read
    /// from the repository (baton's leftover commit is made there).
    Own(PathBuf),
}

impl Seen {
    fn dir(&self) -> Option<&Path> {
        match self {
            Seen::Worktree(d) => d.as_deref(),
            Seen::Own(d) => Some(d),
        }
    }

    fn reflog(&self) -> Vec<(String, String)> {
        self.dir().map(reflog).unwrap_or_default()
    }

    fn checked_out(&self) -> Option<String> {
        let head = std::fs::read_to_string(self.dir()?.join("HEAD")).ok()?;
        head.strip_prefix("ref: refs/heads/")
            .map(|b| b.trim().to_string())
    }
}

/// The task's branch when an attempt begins.
pub(crate) struct Before {
    seen: Seen,
    tip: Option<String>,
    /// How long the worktree's HEAD reflog was: what the attempt adds comes first.
    logged: usize,
}

pub(crate) async fn before(sh: &Shared, worktree: &Path, seen: Seen) -> Before {
    let log = seen.reflog();
    let tip = match log.first() {
        Some((sha, _)) => Some(sha.clone()),
        None => sh.repo.head(worktree).await.ok(),
    };
    Before {
        tip,
        logged: log.len(),
        seen,
    }
}

/// Once the attempt's work is committed: puts the branch back, keeps what
/// would be lost, records what happened; returns the branch's head.
pub(crate) async fn settle(
    sh: &Shared,
    task: &str,
    n: u32,
    branch: &str,
    start_commit: &str,
    worktree: &Path,
    before: &Before,
) -> Option<String> {
    let seen_in = &before.seen;
    let mut log = seen_in.reflog();
    let head = match (seen_in, log.first()) {
        (Seen::Worktree(_), Some((sha, _))) => sha.clone(),
        _ => sh.repo.head(worktree).await.ok()?,
    };
    let seen = log.len();
    log.truncate(seen.saturating_sub(before.logged));
    let on_branch = seen_in.checked_out().as_deref() == Some(branch);
    // Commits one after another on the task's branch lose nothing: the usual
    // case costs no more git. A desk's own directory records only the
    // agent's moves (baton's leftover commit is made at home): none is one.
    let nothing_else = seen > 0 || matches!(seen_in, Seen::Own(_));
    let only_commits = nothing_else
        && log
            .iter()
            .all(|(_, why)| why.starts_with("commit:") || why.starts_with("commit (merge)"));
    if on_branch && only_commits {
        return Some(head);
    }
    let mut candidates: Vec<String> = log.into_iter().map(|(sha, _)| sha).collect();
    candidates.extend(before.tip.clone());
    let said = look(
        sh,
        branch,
        start_commit,
        worktree,
        before,
        &head,
        &mut candidates,
    )
    .await;
    let kept = keep_lost(sh, task, n, &candidates).await;
    let mut said = said;
    if !kept.is_empty() {
        said.push(format!(
            "commits no branch reaches any more are kept under {}",
            kept.join(", ")
        ));
    }
    if !said.is_empty() {
        let data = Payload::BranchRewritten {
            warnings: said.clone(),
            kept,
        };
        sh.event(Some(task), Some(n), data).await;
        let id = task.to_string();
        sh.write("add task warnings", move |s, run| {
            s.add_task_warnings(run, &id, &said)
        })
        .await;
    }
    Some(head)
}

/// What the agent did to the branch, in words; the branch is put back on
/// the worktree if it switched away.
async fn look(
    sh: &Shared,
    branch: &str,
    start_commit: &str,
    worktree: &Path,
    before: &Before,
    head: &str,
    candidates: &mut Vec<String>,
) -> Vec<String> {
    let repo = &sh.repo;
    let mut said = Vec::new();
    let current = before.seen.checked_out();
    if current.as_deref() != Some(branch) {
        let tip = repo.ref_commit(&format!("refs/heads/{branch}")).await;
        candidates.extend(tip.ok().flatten());
        let place = match &current {
            Some(b) => format!("branch {b}"),
            None => "a detached HEAD".to_string(),
        };
        match repo.reattach(worktree, branch, head).await {
            Ok(()) => said.push(format!(
                "the agent switched its worktree to {place}; the task's branch now points where it ended ({})",
                short(head)
            )),
            Err(e) => said.push(format!(
                "the agent switched its worktree to {place}, and baton could not move the task's branch there: {e}"
            )),
        }
    }
    if let Some(tip) = &before.tip {
        if !repo.is_ancestor(tip, head).await.unwrap_or(true) {
            said.push(format!(
                "the agent moved its branch backwards or rewrote it (from {} to {})",
                short(tip),
                short(head)
            ));
        }
    }
    if head != start_commit && repo.is_ancestor(head, start_commit).await.unwrap_or(false) {
        said.push(format!(
            "the branch ends at {}, below where the task started ({}): it holds none of the task's work",
            short(head),
            short(start_commit)
        ));
    }
    said
}

/// Keeps each of `candidates` that no ref reaches under a ref of its own.
async fn keep_lost(sh: &Shared, task: &str, n: u32, candidates: &[String]) -> Vec<String> {
    let mut unique: Vec<String> = Vec::new();
    for c in candidates {
        if !unique.contains(c) {
            unique.push(c.clone());
        }
    }
    let mut kept = Vec::new();
    for (k, commit) in sh.repo.unreachable(&unique).await.iter().enumerate() {
        let name = format!(
            "{}-lost-{}",
            crate::paths::attempt_ref(&sh.run_id, task, n),
            k + 1
        );
        if sh.repo.set_ref(&name, commit).await.is_ok() {
            kept.push(name);
        }
    }
    kept
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}
