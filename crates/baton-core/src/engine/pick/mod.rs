//! A race's pick, once its candidates let it (see the board's `race`): what
//! each candidate did is gathered, scored where `rank` asks, and the winner
//! chosen by the rules of [`crate::pick`]. The winner's commit becomes the
//! race task's own (its branch moves there) and goes on through `verify`
//! and the merge queue; every candidate's end stays under
//! `refs/baton/<run>/<task>/candidate-<n>`. The pick is the race task's
//! "worker": it ends with an outcome like any task's, and a resumed run
//! picks again from the same record, so the same winner.

mod gather;
mod rank_cmd;

use crate::engine::messages::{Outcome, WorkerCmd, WorkerNote};
use crate::engine::shared::Shared;
use crate::payload::Payload;
use crate::pick::Picked;
use crate::plan::race::{Pick, Race};
use crate::plan::TaskSpec;
use crate::store::TaskUpdate;
use gather::Seen;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedReceiver;

/// Picks race task `spec`'s winner in a task of its own; its end (a panic
/// too) reaches the engine as a note.
pub(crate) fn spawn(sh: Arc<Shared>, spec: TaskSpec, cmds: UnboundedReceiver<WorkerCmd>) {
    tokio::spawn(async move {
        let task = spec.id.clone();
        let notes = sh.notes.clone();
        let (outcome, start) = match tokio::spawn(run(sh, spec, cmds)).await {
            Ok(end) => end,
            Err(e) => {
                let reason = format!("internal error in baton while picking: {e}");
                (Outcome::Broken { reason }, None)
            }
        };
        let _ = notes.send(WorkerNote::Finished {
            task,
            outcome,
            start,
        });
    });
}

/// How the pick ended, and the commit the winner's work started from.
async fn run(
    sh: Arc<Shared>,
    spec: TaskSpec,
    mut cmds: UnboundedReceiver<WorkerCmd>,
) -> (Outcome, Option<String>) {
    let Some(race) = &spec.race else {
        let reason = format!("task {:?} was picked for, but races nothing", spec.id);
        return (Outcome::Broken { reason }, None);
    };
    let mut seen = match gather::candidates(&sh, &spec.id, race).await {
        Ok(seen) => seen,
        Err(reason) => return (Outcome::Broken { reason }, None),
    };
    let (winner, reason) = match choose(&sh, &spec.id, race, &mut seen, &mut cmds).await {
        Ok(chosen) => chosen,
        Err(cmd) => {
            let end = cmd.ends(None, String::new(), " while picking");
            return (end.unwrap_or(Outcome::Interrupted { commit: None }), None);
        }
    };
    keep_candidates(&sh, &spec.id, &seen).await;
    let won = winner.map(|w| &seen[w]);
    let picked = Picked {
        mode: mode(&race.pick).into(),
        winner: won.map(|w| w.entrant.task.clone()),
        reason: reason.clone(),
        candidates: seen.iter().map(|s| s.entrant.clone()).collect(),
    };
    let (Some(w), Some(commit)) = (won, won.and_then(|w| w.entrant.commit.clone())) else {
        sh.event(Some(&spec.id), None, Payload::Picked(picked))
            .await;
        let failed = Outcome::Failed {
            commit: None,
            reason,
            result: String::new(),
        };
        return (failed, None);
    };
    let branch = format!(
        "refs/heads/{}",
        crate::paths::task_branch(&sh.run_id, &spec.id)
    );
    if let Err(e) = sh.repo.set_ref(&branch, &commit).await {
        let reason = format!(
            "cannot point the race's branch at its winner {}: {e}",
            w.entrant.task
        );
        return (Outcome::Broken { reason }, None);
    }
    let start = w.record.start_commit.clone();
    let update = TaskUpdate {
        start_commit: start.clone(),
        ..Default::default()
    };
    sh.update_task(&spec.id, update, Some(Payload::Picked(picked)))
        .await;
    (
        Outcome::Done {
            commit,
            result: reason,
        },
        start,
    )
}

/// The winner (an index into `seen`) and why; Err: a request cut it short.
async fn choose(
    sh: &Shared,
    race_id: &str,
    race: &Race,
    seen: &mut [Seen],
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> Result<(Option<usize>, String), WorkerCmd> {
    if let Ok(cmd) = cmds.try_recv() {
        return Err(cmd);
    }
    let entrants = |seen: &[Seen]| seen.iter().map(|s| s.entrant.clone()).collect::<Vec<_>>();
    let (winner, reason, mut ranked) = match &race.pick {
        Pick::First => {
            let mut e = entrants(seen);
            let (w, why) = crate::pick::first(&mut e);
            (w, why, e)
        }
        Pick::All { rank_by, rank } => {
            if let Some(command) = rank {
                rank_cmd::score_all(sh, race_id, command, seen, cmds).await?;
            }
            let mut e = entrants(seen);
            let (w, why) = crate::pick::rank(&mut e, rank_by, rank.is_some());
            (w, why, e)
        }
        Pick::Judge { .. } => {
            let mut e = entrants(seen);
            let by = crate::plan::race::DEFAULT_RANK_BY;
            let (w, why) = crate::pick::rank(&mut e, &by, false);
            let why = format!("no judge runs in this baton yet; ranked by gates, diff_lines, cost and time: {why}");
            (w, why, e)
        }
    };
    for (s, e) in seen.iter_mut().zip(ranked.drain(..)) {
        s.entrant = e;
    }
    Ok((winner, reason))
}

fn mode(pick: &Pick) -> &'static str {
    match pick {
        Pick::First => "first",
        Pick::All { .. } => "all",
        Pick::Judge { .. } => "judge",
    }
}

/// Every candidate's end, kept where `baton pick` and a person find it
/// (and where no cleanup of its own branch can lose it).
async fn keep_candidates(sh: &Shared, race_id: &str, seen: &[Seen]) {
    for (k, s) in seen.iter().enumerate() {
        let Some(commit) = &s.entrant.commit else {
            continue;
        };
        let kept = format!("refs/baton/{}/{race_id}/candidate-{}", sh.run_id, k + 1);
        if let Err(e) = sh.repo.set_ref(&kept, commit).await {
            tracing::warn!("cannot keep candidate {} at {kept}: {e}", s.entrant.task);
        }
    }
}
