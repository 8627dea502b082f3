//! Whatever happened, the work is kept: what the agent left is committed on
//! the task's branch (from the desk's own git, fetched home and checked),
//! and the attempt's end is kept under its own ref.

use super::history;
use super::start::Start;
use crate::engine::process::jail;
use crate::engine::shared::Shared;
use crate::git::Repo;
use crate::payload::Payload;
use crate::store::Store;
use std::sync::Arc;

/// What keeping an attempt's work needs to know.
pub(super) struct Kept<'a> {
    /// How the agent ended, in the commit message's words.
    pub(super) label: String,
    pub(super) before: &'a history::Before,
    /// A sandboxed desk's own git directory, whose commits come home first.
    pub(super) own_git: Option<&'a crate::sandbox::OwnGit>,
}

/// Commits what the attempt left and keeps the branch head (the agent may
/// have committed on its own too) under the attempt's ref. Err: the work
/// could not be committed; it stays in the worktree, which is kept.
pub(super) async fn keep_work(
    sh: &Shared,
    st: &Start,
    n: u32,
    k: Kept<'_>,
) -> Result<Option<String>, String> {
    let (task, worktree) = (st.spec.id.as_str(), st.desk.worktree.as_path());
    let msg = format!("baton: {task} attempt {n} ({})", k.label);
    match k.own_git {
        Some(own) => take_home(sh, task, n, worktree, own).await,
        None => restore_dot_git(sh, task, n, worktree).await,
    }
    let kept = match sh.repo.commit_all(worktree, &msg).await {
        Ok(committed) => {
            let (branch, start) = (&st.desk.branch, &st.desk.start_commit);
            let head = history::settle(sh, task, n, branch, start, worktree, k.before).await;
            if committed {
                let data = Payload::Committed {
                    commit: head.clone(),
                };
                sh.event(Some(task), Some(n), data).await;
            }
            if let Some(h) = &head {
                keep_ref(&sh.repo, &sh.store, &sh.run_id, task, n, h).await;
            }
            Ok(head)
        }
        Err(e) => {
            let data = Payload::CommitFailed {
                error: e.to_string(),
            };
            sh.event(Some(task), Some(n), data).await;
            Err(format!(
                "cannot commit the attempt's work (it is left uncommitted in {}): {e}",
                worktree.display()
            ))
        }
    };
    if let Some(own) = k.own_git {
        // Home now (and read by the history above): in step with the branch
        // again for the gates, else gone (a resume brings home only what an
        // agent left since).
        let renewed = if st.spec.gates.is_empty() {
            own.remove()
        } else {
            own.make(&sh.repo, worktree).await
        };
        if let Err(e) = renewed {
            tracing::warn!("task {task}: cannot renew the desk's own git directory: {e}");
        }
    }
    kept
}

/// An agent without a sandbox can rewrite or replace its worktree's `.git`
/// (baton's own git never follows it): what it put there is moved aside,
/// kept, baton's pointer goes back, and the task says so.
pub(super) async fn restore_dot_git(sh: &Shared, task: &str, n: u32, worktree: &std::path::Path) {
    let Some(trusted) = sh.repo.desk_git_dir(worktree) else {
        return;
    };
    let dotgit = worktree.join(".git");
    let named = crate::git::dot_git_target(worktree);
    let same = |p: &std::path::Path| p.canonicalize().ok() == trusted.canonicalize().ok();
    if named.as_deref().is_some_and(same) {
        return;
    }
    let aside = sh
        .paths
        .run_dir(&sh.run_id)
        .join("desks")
        .join(jail::desk_name(task))
        .join(format!("dot-git-{n}"));
    let moved = aside
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            std::fs::rename(&dotgit, &aside).or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            })
        })
        .and_then(|()| std::fs::write(&dotgit, format!("gitdir: {}\n", trusted.display())));
    let said = match moved {
        Ok(()) => format!(
            "the agent rewrote its worktree's .git; baton's git did not follow it, what it wrote is kept at {}, and the worktree points at its git directory again",
            aside.display()
        ),
        Err(e) => format!("the agent rewrote its worktree's .git, and baton could not put it back: {e}"),
    };
    let data = Payload::BranchRewritten {
        warnings: vec![said.clone()],
        kept: Vec::new(),
    };
    sh.event(Some(task), Some(n), data).await;
    let id = task.to_string();
    if let Err(e) = sh
        .db(move |s, run| s.add_task_warnings(run, &id, &[said]))
        .await
    {
        tracing::warn!("task {task}: cannot record a warning: {e}");
    }
}

/// A sandboxed agent's commits, from its desk's own git directory: fetched
/// into the repository and made the head of the task's branch (the index
/// with it; the files stay as the agent left them, for the leftover
/// commit). If they cannot be had (the agent broke its git directory), the
/// task says so and its files are committed as they are.
pub(crate) async fn take_home(
    sh: &Shared,
    task: &str,
    n: u32,
    worktree: &std::path::Path,
    own: &crate::sandbox::OwnGit,
) {
    if let Err(e) = fetch_home(&sh.repo, &sh.run_id, task, n, worktree, own).await {
        let said = vec![format!(
            "the agent's commits could not be fetched from its desk's git directory ({e}); what its files hold is committed as it is"
        )];
        let data = Payload::BranchRewritten {
            warnings: said.clone(),
            kept: Vec::new(),
        };
        sh.event(Some(task), Some(n), data).await;
        let id = task.to_string();
        if let Err(e) = sh
            .db(move |s, run| s.add_task_warnings(run, &id, &said))
            .await
        {
            tracing::warn!("task {task}: cannot record a warning: {e}");
        }
    }
}

/// [`take_home`]'s git: fetch, then the branch and index moved there.
pub(crate) async fn fetch_home(
    repo: &Repo,
    run: &str,
    task: &str,
    n: u32,
    worktree: &std::path::Path,
    own: &crate::sandbox::OwnGit,
) -> Result<(), crate::git::GitError> {
    let keep = format!("{}-desk", crate::paths::attempt_ref(run, task, n));
    let Some(head) = own.bring_home(repo, &keep).await? else {
        // Its HEAD never moved: what it did is in its files.
        return Ok(());
    };
    let moved = repo
        .in_desk_ok(worktree, ["reset", "-q", head.as_str(), "--"])
        .await;
    let removed = repo.delete_ref(&keep).await;
    moved?;
    removed
}

/// Keeps `commit` under attempt `n`'s ref and records where.
pub(crate) async fn keep_ref(
    repo: &Repo,
    store: &Arc<Store>,
    run: &str,
    task: &str,
    n: u32,
    commit: &str,
) {
    let name = crate::paths::attempt_ref(run, task, n);
    match repo.set_ref(&name, commit).await {
        Ok(()) => {
            let (run, task) = (run.to_string(), task.to_string());
            let recorded = store
                .call(move |s| s.set_attempt_ref(&run, &task, n, &name))
                .await;
            if let Err(e) = recorded {
                tracing::warn!("cannot record where attempt {n}'s work is kept: {e}");
            }
        }
        Err(e) => tracing::warn!("cannot keep attempt {n} of task {task} under {name}: {e}"),
    }
}
