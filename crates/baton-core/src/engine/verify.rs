//! `[run] verify`: the run's checks on the merged whole. A task's merge
//! commit is checked out (detached) in a worktree kept for the run, whose
//! ignored files (build caches) stay between merges, and the checks run
//! there before the integration branch moves: a failing check keeps the
//! task's work off it. It runs in a task of its own, so the engine goes on
//! answering while it does.

use super::gates::{self, GateResult, Kind};
use super::messages::{WorkerCmd, WorkerNote};
use super::shared::Shared;
use crate::plan::DEFAULT_TIMEOUT;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc::{self, UnboundedSender};

/// Starts checking `commit` (the merge of `task`); the verdict comes back as
/// a note. Returns where to send a shutdown.
pub(crate) fn spawn(
    sh: Arc<Shared>,
    task: String,
    commit: String,
    dir: PathBuf,
) -> UnboundedSender<WorkerCmd> {
    let (tx, mut cmds) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let result = match checkout(&sh, &dir, &commit).await {
            Ok(()) => {
                let env: Vec<(OsString, OsString)> = vec![
                    ("PWD".into(), dir.clone().into()),
                    ("BATON_RUN".into(), sh.run_id.clone().into()),
                    ("BATON_TASK".into(), task.clone().into()),
                ];
                // The merged whole is the agents' code: verify runs it in
                // the sandbox of the run's checks when they have one.
                let jail = match super::jail::for_checks(&sh) {
                    Some(spec) => match verify_jail(&sh, &spec, &task, &dir, &env).await {
                        Ok(j) => Some(j),
                        Err(reason) => {
                            let result = GateResult::Failed {
                                feedback: reason.clone(),
                                reason,
                            };
                            let _ = sh.notes.send(WorkerNote::Verified { result });
                            return;
                        }
                    },
                    None => None,
                };
                let run = gates::GateRun {
                    kind: Kind::Verify,
                    task: Some(&task),
                    attempt: None,
                    gates: &sh.plan.run.verify,
                    worktree: &dir,
                    log: sh
                        .paths
                        .run_dir(&sh.run_id)
                        .join("logs")
                        .join(format!("verify-{task}.log")),
                    timeout: DEFAULT_TIMEOUT,
                    env: &env,
                    jail: jail.as_ref().map(|j| j.args.as_slice()),
                };
                gates::run_all(&sh, run, &mut cmds).await
            }
            Err(reason) => GateResult::Failed {
                feedback: reason.clone(),
                reason,
            },
        };
        let _ = sh.notes.send(WorkerNote::Verified { result });
    });
    tx
}

/// The sandbox verify runs in, with the verify desk's own git directory.
async fn verify_jail(
    sh: &Shared,
    spec: &crate::plan::sandbox::Sandbox,
    task: &str,
    dir: &std::path::Path,
    env: &[(OsString, OsString)],
) -> Result<super::jail::Jail, String> {
    let own = super::jail::make_own_git(sh, "verify", dir).await?;
    let room = super::jail::Room {
        spec,
        worktree: dir,
        own_git: &own,
        env,
        agent: None,
        lead: false,
        task: Some(task),
        attempt: None,
    };
    super::jail::draw(sh, room).await
}

/// The verify worktree at `commit`, with nothing of the last check but
/// ignored files.
async fn checkout(sh: &Shared, dir: &std::path::Path, commit: &str) -> Result<(), String> {
    let res = if dir.join(".git").exists() {
        sh.repo.checkout_detached(dir, commit).await
    } else {
        sh.repo.add_detached_worktree(dir, commit, &[]).await
    };
    res.map_err(|e| format!("cannot check out the merge to verify it: {e}"))
}
