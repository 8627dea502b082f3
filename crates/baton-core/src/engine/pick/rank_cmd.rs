//! `rank = "<command>"`: run in each passing candidate's worktree, in its
//! agent's sandbox (the command may run what the agent wrote), printing a
//! number; higher wins.

use super::gather::Field;
use crate::engine::messages::WorkerCmd;
use crate::engine::process::gates::{self, GateRun, Kind, Watched};
use crate::engine::process::supervise::Ended;
use crate::engine::process::writer::Output;
use crate::engine::shared::Shared;
use crate::pick::Entrant;
use crate::store::TaskRecord;
use std::ffi::OsString;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// How long a rank command may take in one worktree.
const RANK_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Scores every candidate that passed. Err: a request (stop, shutdown) cut
/// it short.
pub(super) async fn score_all(
    sh: &Shared,
    race_id: &str,
    command: &str,
    field: &mut Field,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> Result<(), WorkerCmd> {
    let Field { entrants, records } = field;
    for (e, r) in entrants.iter_mut().zip(records.iter()) {
        if !e.passed() {
            continue;
        }
        match score(sh, race_id, command, e, r, cmds).await {
            Ok(score) => e.score = Some(score),
            Err(Ok(note)) => e.note = Some(note),
            Err(Err(cmd)) => return Err(cmd),
        }
    }
    Ok(())
}

/// One candidate's score; Err(Ok): why it has none.
async fn score(
    sh: &Shared,
    race_id: &str,
    command: &str,
    e: &Entrant,
    r: &TaskRecord,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> Result<f64, Result<String, WorkerCmd>> {
    let id = e.task.as_str();
    let Some(worktree) = r.existing_worktree() else {
        return Err(Ok("not scored: its worktree is gone".into()));
    };
    let env: Vec<(OsString, OsString)> = vec![
        ("PWD".into(), worktree.into()),
        ("BATON_RUN".into(), sh.run_id.clone().into()),
        ("BATON_TASK".into(), race_id.into()),
        ("BATON_CANDIDATE".into(), id.into()),
    ];
    // As its gates run: in its agent's sandbox, where a key baton reads
    // from a file is hidden; and no provider key from baton's environment.
    let sandbox = sh.plan.agents.get(&e.agent).and_then(|a| {
        let mut s = a.sandbox.clone()?;
        s.hide.extend(crate::engine::task::gate::key_files(sh));
        Some(s)
    });
    let jail = match &sandbox {
        Some(spec) => {
            let desk = crate::engine::process::jail::desk_name(id);
            let jail = crate::engine::process::jail::check_jail(
                sh,
                spec,
                &desk,
                Some(id),
                None,
                worktree,
                &env,
            );
            Some(jail.await.map_err(|why| Ok(format!("not scored: {why}")))?)
        }
        None => None,
    };
    let unset: Vec<OsString> = crate::gateway::PROVIDER_VARS
        .iter()
        .map(OsString::from)
        .collect();
    let log = sh
        .paths
        .run_dir(&sh.run_id)
        .join("logs")
        .join(race_id)
        .join(format!("rank-{id}.log"));
    let run = GateRun {
        kind: Kind::Gate,
        task: Some(id),
        attempt: None,
        gates: &[],
        worktree,
        output: Output::Log(log),
        timeout: RANK_TIMEOUT,
        env: &env,
        jail: jail.as_ref(),
        unset: &unset,
    };
    let watched = Watched {
        redactor: Some(sh.redactor.clone()),
        watchdog: sh.watchdog.as_ref(),
    };
    let (out, _) = gates::run_one(&run, command, watched, cmds).await;
    match out.ended {
        Ended::Exited(0) => crate::pick::score_of(&out.combined_tail)
            .ok_or_else(|| Ok("not scored: its rank command printed no number".to_string())),
        Ended::Cmd(cmd) => Err(Err(cmd)),
        other => {
            let (_, why) = gates::judge("rank", command, &other, RANK_TIMEOUT);
            Err(Ok(format!("not scored: {why}")))
        }
    }
}
