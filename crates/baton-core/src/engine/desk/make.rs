//! Making a task's desk: its worktree on its branch (new, reused from a
//! done task or the pool, or found where a crash left it), the files
//! `copy` names, its ports, and whether `[workspace] setup` must run there.

use super::{pool, workspace, DeskPlan};
use crate::clock::now_ms;
use crate::engine::shared::Shared;
use crate::git::Reuse;
use crate::store::TaskUpdate;

/// A made desk: what the task's attempts need of it.
#[derive(Debug)]
pub(crate) struct Made {
    /// Whether `[workspace] setup` has yet to run in it.
    pub needs_setup: bool,
    /// The setup key at the start commit, once worked out.
    pub setup_key: Option<String>,
    /// `BATON_WORKSPACE` and the task's ports, for setup, agent and gates.
    pub env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
}

/// Why a desk could not be made.
#[derive(Debug)]
pub(crate) enum Unmade {
    /// baton itself could not make the worktree: not the task's failure.
    Broken(String),
    /// The task cannot work there (its sparse directories, its ports).
    Failed(String),
}

/// Makes task `task`'s desk as `plan` says (its start commit follows a
/// branch made before a crash), and records where it is. `needs_setup`:
/// whether setup had yet to run, as the store knew.
pub(crate) async fn make(
    sh: &Shared,
    task: &str,
    plan: &mut DeskPlan,
    mut needs_setup: bool,
) -> Result<Made, Unmade> {
    let mut setup_key = None;
    if plan.keep_ignored && !plan.existing {
        // A desk in the pool's place: recorded before it is made or taken,
        // so that a crash from here on finds the task there.
        let upd = TaskUpdate {
            worktree: Some(plan.worktree.display().to_string()),
            start_commit: Some(plan.start_commit.clone()),
            ..Default::default()
        };
        sh.update_task(task, upd, None).await;
    }
    let desk = match ensure_worktree(sh, plan).await {
        Ok(desk) => desk,
        Err(reason) => return Err(Unmade::Broken(reason)),
    };
    crate::failpoint::hit("desk-made");
    if desk != Desk::Existing {
        let notes = workspace::copy_files(sh, &plan.worktree).await;
        if !notes.is_empty() {
            let t = task.to_string();
            sh.write("add task warnings", move |s, run| {
                s.add_task_warnings(run, &t, &notes)
            })
            .await;
        }
        needs_setup = !sh.plan.workspace.setup.is_empty();
        if desk == Desk::Warm {
            let sparse = &sh.plan.workspace.sparse;
            if let Err(e) = pool::match_sparse(&sh.repo, &plan.worktree, sparse).await {
                return Err(Unmade::Failed(format!(
                    "cannot set the worktree's sparse directories: {e}"
                )));
            }
        }
        if desk == Desk::Warm && needs_setup {
            let key = pool::setup_key(sh, &plan.start_commit).await;
            needs_setup = pool::read_key(&sh.repo, &plan.worktree).as_deref() != Some(key.as_str());
            setup_key = Some(key);
        }
    }
    let ports = match sh.plan.workspace.ports {
        0 => Vec::new(),
        n => match workspace::take_ports(sh, task, n).await {
            Ok(p) => p,
            Err(reason) => return Err(Unmade::Failed(reason)),
        },
    };
    let env = workspace::env(&sh.run_id, task, &ports);
    if !plan.existing && desk == Desk::Existing {
        // The branch is older than this start (made before a crash): the
        // task starts where its branch does.
        if let Ok(tip) = sh.repo.head(&plan.worktree).await {
            plan.start_commit = tip;
        }
    }
    let upd = TaskUpdate {
        worktree: Some(plan.worktree.display().to_string()),
        start_commit: (!plan.existing).then(|| plan.start_commit.clone()),
        started_at: (!plan.existing).then(now_ms),
        setup_done: needs_setup.then_some(false),
        ..Default::default()
    };
    sh.update_task(task, upd, None).await;

    Ok(Made {
        needs_setup,
        setup_key,
        env,
    })
}

/// What the task's desk was made from.
#[derive(PartialEq)]
enum Desk {
    /// A new branch at the task's start commit.
    New,
    /// A branch that already existed: it may have moved past the start.
    Existing,
    /// A new branch at the start commit, in a worktree that kept its
    /// ignored files (caches) from an earlier task or the pool.
    Warm,
}

async fn ensure_worktree(sh: &Shared, st: &DeskPlan) -> Result<Desk, String> {
    if st.in_place {
        return reuse_in_place(sh, st).await;
    }
    if st.worktree.join(".git").exists() {
        match sh.repo.current_branch(&st.worktree).await {
            // Ours, made before a crash that came before the store knew of it.
            Some(b) if b == st.branch => return Ok(Desk::Existing),
            // Another task's desk, moved here (or taken where it is) before
            // a crash: finish making it ours.
            _ if !branch_exists(sh, &st.branch).await => {
                let (reuse, desk) = match st.keep_ignored {
                    true => (Reuse::KeepIgnored, Desk::Warm),
                    false => (Reuse::Scrub, Desk::New),
                };
                return sh
                    .repo
                    .switch_worktree(&st.worktree, &st.branch, &st.start_commit, reuse)
                    .await
                    .map(|()| desk)
                    .map_err(|e| format!("cannot make the task's worktree: {e}"));
            }
            _ if st.existing => return Ok(Desk::Existing),
            _ => {}
        }
    }
    if st.existing {
        return match sh.repo.restore_worktree(&st.worktree, &st.branch).await {
            Ok(()) => Ok(Desk::Existing),
            // The desk was recorded before it was made, and never made.
            Err(_) if !branch_exists(sh, &st.branch).await => add_new(sh, st)
                .await
                .map_err(|e| format!("cannot create the task's worktree: {e}")),
            Err(e) => Err(format!("cannot create the task's worktree: {e}")),
        };
    }
    // Without the pool a done task's desk moves here, nothing of it kept.
    let res = if let Some(spare) = st.spare.as_deref().filter(|s| s.exists()) {
        if let Some(before) = &st.spare_of {
            // The desk was another task's: its teardown goes first.
            workspace::teardown(sh, before, spare).await;
        }
        let reused = sh
            .repo
            .reuse_worktree(spare, &st.worktree, &st.branch, &st.start_commit)
            .await;
        match reused {
            Ok(()) => Ok(Desk::New),
            Err(e) => {
                tracing::debug!(
                    "cannot reuse {} ({e}); making a new worktree",
                    spare.display()
                );
                for left in [spare, st.worktree.as_path()] {
                    if left.exists() {
                        let _ = sh.repo.remove_worktree(left).await;
                    }
                }
                add_new(sh, st).await
            }
        }
    } else {
        add_new(sh, st).await
    };
    // A crash between creating the branch and recording it leaves the branch:
    // attach to it rather than fail on "already exists" forever. Asked only
    // on a failure, so a new desk costs one git process.
    let res = match res {
        Ok(desk) => Ok(desk),
        Err(_) if branch_exists(sh, &st.branch).await => sh
            .repo
            .restore_worktree(&st.worktree, &st.branch)
            .await
            .map(|()| Desk::Existing),
        Err(e) => Err(e),
    };
    res.map_err(|e| format!("cannot create the task's worktree: {e}"))
}

/// A desk that exists (a done task's, or the pool's) becomes this task's
/// where it is (its place is recorded already: see [`make`]).
async fn reuse_in_place(sh: &Shared, st: &DeskPlan) -> Result<Desk, String> {
    let reuse = if st.pooled {
        pool::claim(&st.worktree);
        Reuse::Clean
    } else {
        if let Some(before) = &st.spare_of {
            workspace::teardown(sh, before, &st.worktree).await;
        }
        Reuse::KeepIgnored
    };
    crate::failpoint::hit("desk-moved");
    sh.repo
        .switch_worktree(&st.worktree, &st.branch, &st.start_commit, reuse)
        .await
        .map(|()| Desk::Warm)
        .map_err(|e| {
            format!(
                "cannot make {} the task's worktree: {e}",
                st.worktree.display()
            )
        })
}

async fn add_new(sh: &Shared, st: &DeskPlan) -> Result<Desk, crate::git::GitError> {
    let sparse = &sh.plan.workspace.sparse;
    sh.repo
        .add_worktree(&st.worktree, &st.branch, &st.start_commit, sparse)
        .await?;
    pool::note_sparse(&sh.repo, &st.worktree, sparse);
    Ok(Desk::New)
}

async fn branch_exists(sh: &Shared, branch: &str) -> bool {
    let name = format!("refs/heads/{branch}");
    matches!(sh.repo.ref_commit(&name).await, Ok(Some(_)))
}
