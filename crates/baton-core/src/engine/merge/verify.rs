//! `[run] verify`: the run's checks on the merged whole. A task's merge
//! commit is checked out (detached) in a worktree kept for the run, whose
//! ignored files (build caches) stay between merges, and the checks run
//! there before the integration branch moves: a failing check keeps the
//! task's work off it. The worktree is a desk like a task's: the files
//! `copy` names, the run's ports, `[workspace] setup` (again only when its
//! inputs changed). It runs in a task of its own, so the engine goes on
//! answering while it does.

use crate::engine::desk::{pool, workspace};
use crate::engine::messages::{WorkerCmd, WorkerNote};
use crate::engine::process::gates::{self, GateResult, Kind};
use crate::engine::process::supervise::Output;
use crate::engine::shared::Shared;
use crate::plan::DEFAULT_TIMEOUT;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

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
        let result = check(&sh, &task, &commit, &dir, &mut cmds).await;
        let _ = sh.notes.send(WorkerNote::Verified { result });
    });
    tx
}

fn failed(reason: String) -> GateResult {
    GateResult::Failed {
        feedback: reason.clone(),
        reason,
    }
}

/// The verify desk made ready like a task's (checkout; `copy` when it is
/// new; the run's ports; `[workspace] setup` when its inputs changed), then
/// the checks. The merged whole is the agents' code: all of it runs in the
/// sandbox of the run's checks when its agents have one.
async fn check(
    sh: &Shared,
    task: &str,
    commit: &str,
    dir: &Path,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> GateResult {
    let new = match checkout(sh, dir, commit).await {
        Ok(new) => new,
        Err(reason) => return failed(reason),
    };
    let mut env: Vec<(OsString, OsString)> = vec![
        ("PWD".into(), dir.to_path_buf().into()),
        ("BATON_RUN".into(), sh.run_id.clone().into()),
        ("BATON_TASK".into(), task.into()),
    ];
    let ports = match sh.plan.workspace.ports {
        0 => Vec::new(),
        n => match workspace::take_ports(sh, VERIFY_DESK, n).await {
            Ok(p) => p,
            Err(reason) => return failed(reason),
        },
    };
    env.extend(workspace::env(&sh.run_id, VERIFY_DESK, &ports));
    let jail = match crate::engine::process::jail::for_checks(sh) {
        Some(spec) => {
            match crate::engine::process::jail::check_jail(
                sh,
                &spec,
                "verify",
                Some(task),
                None,
                dir,
                &env,
            )
            .await
            {
                Ok(j) => Some(j),
                Err(reason) => return failed(reason),
            }
        }
        None => None,
    };
    let jail = jail.as_ref();
    let log = sh
        .paths
        .run_dir(&sh.run_id)
        .join("logs")
        .join(format!("verify-{task}.log"));
    if new {
        for note in workspace::copy_files(sh, dir).await {
            tracing::warn!("verify: {note}");
        }
    }
    let desk = Desk {
        task,
        dir,
        env: &env,
        jail,
        log: &log,
    };
    if let Some(unset) = setup(sh, &desk, commit, cmds).await {
        return unset;
    }
    let run = gates::GateRun {
        kind: Kind::Verify,
        task: Some(task),
        attempt: None,
        gates: &sh.plan.run.verify,
        worktree: dir,
        output: Output::Log(log),
        timeout: DEFAULT_TIMEOUT,
        env: &env,
        jail,
        unset: &[],
    };
    gates::run_all(sh, run, cmds).await
}

/// The verify desk as its checks see it.
struct Desk<'a> {
    task: &'a str,
    dir: &'a Path,
    env: &'a [(OsString, OsString)],
    jail: Option<&'a crate::engine::process::jail::Jail>,
    log: &'a Path,
}

/// `[workspace] setup` in the verify desk, when its inputs changed since it
/// last ran there; Some: it did not pass.
async fn setup(
    sh: &Shared,
    desk: &Desk<'_>,
    commit: &str,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> Option<GateResult> {
    let ws = &sh.plan.workspace;
    if ws.setup.is_empty() {
        return None;
    }
    let key = pool::setup_key(sh, commit).await;
    if pool::read_key(&sh.repo, desk.dir).as_deref() == Some(key.as_str()) {
        return None;
    }
    let run = gates::GateRun {
        kind: Kind::Setup,
        task: Some(desk.task),
        attempt: None,
        gates: &ws.setup,
        worktree: desk.dir,
        output: Output::Log(desk.log.to_path_buf()),
        timeout: ws.setup_timeout,
        env: desk.env,
        jail: desk.jail,
        unset: &[],
    };
    match gates::run_all(sh, run, cmds).await {
        GateResult::Passed => {
            pool::write_key(&sh.repo, desk.dir, &key);
            None
        }
        GateResult::Failed { reason, feedback } => Some(GateResult::Failed {
            reason: format!("verify's setup: {reason}"),
            feedback,
        }),
        interrupted => Some(interrupted),
    }
}

/// The verify desk's name among the run's desks (ports, workspace id): not
/// a task id, which cannot start with a dot.
const VERIFY_DESK: &str = ".verify";

/// The verify worktree at `commit`, with nothing of the last check but
/// ignored files (a setup's, a build's caches); whether it is new.
async fn checkout(sh: &Shared, dir: &Path, commit: &str) -> Result<bool, String> {
    let new = sh.repo.desk_git_dir(dir).is_none();
    let res = if new {
        sh.repo.add_detached_worktree(dir, commit, &[]).await
    } else {
        sh.repo.checkout_detached(dir, commit).await
    };
    res.map(|()| new)
        .map_err(|e| format!("cannot check out the merge to verify it: {e}"))
}
