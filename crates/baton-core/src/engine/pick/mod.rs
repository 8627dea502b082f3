//! A race's pick, once its candidates let it (see the board's `race`): what
//! each candidate did is gathered, scored where `rank` asks, and the winner
//! chosen by the rules of [`crate::pick`]. The winner's commit becomes the
//! race task's own (its branch moves there) and goes on through `verify`
//! and the merge queue; every candidate's end stays under
//! `refs/baton/<run>/<task>/candidate-<n>`. The pick is the race task's
//! "worker": it ends with an outcome like any task's, and a resumed run
//! picks again from the same record, so the same winner.

mod gather;
mod judge;
mod rank_cmd;

pub(crate) use judge::JudgeDesk;

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
pub(crate) fn spawn(
    sh: Arc<Shared>,
    spec: TaskSpec,
    desk: JudgeDesk,
    cmds: UnboundedReceiver<WorkerCmd>,
) {
    tokio::spawn(async move {
        let task = spec.id.clone();
        let notes = sh.notes.clone();
        let (outcome, start) = match tokio::spawn(run(sh, spec, desk, cmds)).await {
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
    desk: JudgeDesk,
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
    let recorded = earlier(&sh, &spec.id, &mut seen).await;
    let again = recorded.is_some();
    let chosen = match recorded {
        Some(chosen) => Ok(chosen),
        None => choose(&sh, &spec, race, &mut seen, &desk, &mut cmds).await,
    };
    // A request that came while it picked (the pick itself takes none).
    let chosen = chosen.and_then(|c| match cmds.try_recv() {
        Ok(cmd) => Err(cmd),
        Err(_) => Ok(c),
    });
    let (winner, mode, reason) = match chosen {
        Ok(chosen) => chosen,
        Err(cmd) => {
            let end = cmd.ends(None, String::new(), " while picking");
            return (end.unwrap_or(Outcome::Interrupted { commit: None }), None);
        }
    };
    let won = winner.map(|w| &seen[w]);
    // A pick recorded before (a resumed run) is not said again.
    let picked = (!again).then(|| {
        Payload::Picked(Picked {
            mode,
            winner: won.map(|w| w.entrant.task.clone()),
            reason: reason.clone(),
            candidates: seen.iter().map(|s| s.entrant.clone()).collect(),
        })
    });
    let (Some(w), Some(commit)) = (won, won.and_then(|w| w.entrant.commit.clone())) else {
        if let Some(p) = picked {
            sh.event(Some(&spec.id), None, p).await;
        }
        return (failed(reason), None);
    };
    if let Err(e) = point_branch(&sh, &spec.id, &commit).await {
        let why = format!(
            "cannot point the race's branch at its winner {}: {e}",
            w.entrant.task
        );
        return (failed(why), None);
    }
    // A resolver works in the race's own desk: it is made now, on its branch.
    let worktree = match spec.resolve_conflicts {
        true => match resolver_desk(&sh, &spec.id, &desk.worktrees).await {
            Ok(made) => made,
            Err(e) => {
                return (
                    failed(format!("cannot make the race's desk for a resolver: {e}")),
                    None,
                )
            }
        },
        false => None,
    };
    let start = w.record.start_commit.clone();
    let update = TaskUpdate {
        start_commit: start.clone(),
        worktree,
        ..Default::default()
    };
    sh.update_task(&spec.id, update, picked).await;
    crate::failpoint::hit("picked");
    (
        Outcome::Done {
            commit,
            result: reason,
        },
        start,
    )
}

fn failed(reason: String) -> Outcome {
    Outcome::Failed {
        commit: None,
        reason,
        result: String::new(),
    }
}

/// A person's pick of `candidate` in place of race task `race_id`'s
/// winner: the race's commit, branch and record become the candidate's,
/// and a `picked` event says so. Returns its commit and start commit.
pub(crate) async fn by_hand(
    sh: &Shared,
    race_id: &str,
    candidate: &str,
) -> Result<(String, Option<String>), String> {
    let (race, id) = (race_id.to_string(), candidate.to_string());
    let read = sh
        .db(move |s, run| -> Result<_, crate::store::StoreError> {
            let moves = s.moves(run)?;
            Ok((s.task(run, &id)?, moves))
        })
        .await
        .map_err(|e| format!("cannot read candidate {candidate}: {e}"))?;
    let (Some(rec), moves) = read else {
        return Err(format!("the store has no candidate {candidate}"));
    };
    let Some(commit) = rec.commit_id.clone() else {
        return Err(format!("candidate {candidate} left no commit"));
    };
    let before = moves.iter().rev().find_map(|e| match e.payload() {
        Some(Payload::Picked(p)) if e.task_id.as_deref() == Some(race.as_str()) => Some(p),
        _ => None,
    });
    let was = before.as_ref().and_then(|p| p.winner.clone());
    if was.as_deref() == Some(candidate) {
        return Err(format!("{candidate} is the winner of {race_id:?} already"));
    }
    point_branch(sh, race_id, &commit)
        .await
        .map_err(|e| format!("cannot point the race's branch at {candidate}: {e}"))?;
    let reason = match &was {
        Some(w) => format!("picked by hand (baton pick) in place of {w}"),
        None => "picked by hand (baton pick)".to_string(),
    };
    let picked = Picked {
        mode: "person".into(),
        winner: Some(candidate.to_string()),
        reason: reason.clone(),
        candidates: before
            .map(|p| placed_first(p.candidates, candidate))
            .unwrap_or_default(),
    };
    let update = TaskUpdate {
        commit_id: Some(commit.clone()),
        start_commit: rec.start_commit.clone(),
        result: Some(reason),
        ..Default::default()
    };
    sh.update_task(race_id, update, Some(Payload::Picked(picked)))
        .await;
    Ok((commit, rec.start_commit))
}

/// The candidates with `winner` in first place, the others that passed
/// after it in their order.
fn placed_first(mut all: Vec<crate::pick::Entrant>, winner: &str) -> Vec<crate::pick::Entrant> {
    let mut order: Vec<usize> = (0..all.len()).filter(|&i| all[i].place.is_some()).collect();
    order.sort_by_key(|&i| (all[i].task != winner, all[i].place));
    let w = all.iter().position(|e| e.task == winner);
    if let Some(w) = w.filter(|w| !order.contains(w)) {
        order.insert(0, w);
    }
    for (place, i) in order.into_iter().enumerate() {
        all[i].place = Some(place as u32 + 1);
    }
    all
}

/// The race task's own desk on its branch, for a resolver (`on_conflict =
/// "resolve"`), when it has none (a judge's is there already): its path.
async fn resolver_desk(
    sh: &Shared,
    race_id: &str,
    worktrees: &std::path::Path,
) -> Result<Option<String>, crate::git::GitError> {
    let id = race_id.to_string();
    let rec = sh.db(move |s, run| s.task(run, &id)).await.ok().flatten();
    if rec.as_ref().and_then(|r| r.existing_worktree()).is_some() {
        return Ok(None);
    }
    let path = crate::paths::task_worktree(worktrees, &sh.run_id, race_id);
    let branch = crate::paths::task_branch(&sh.run_id, race_id);
    sh.repo.restore_worktree(&path, &branch).await?;
    Ok(Some(path.display().to_string()))
}

/// The race task's branch at `commit`; a judge's desk on it follows, so
/// that it holds the winner's work (and serves a later task as a spare).
async fn point_branch(
    sh: &Shared,
    race_id: &str,
    commit: &str,
) -> Result<(), crate::git::GitError> {
    let id = race_id.to_string();
    let rec = sh.db(move |s, run| s.task(run, &id)).await.ok().flatten();
    if let Some(wt) = rec.as_ref().and_then(|r| r.existing_worktree()) {
        return sh
            .repo
            .in_desk_ok(wt, ["reset", "-q", "--hard", commit])
            .await
            .map(drop);
    }
    let branch = format!(
        "refs/heads/{}",
        crate::paths::task_branch(&sh.run_id, race_id)
    );
    sh.repo.set_ref(&branch, commit).await
}

/// The pick a baton before this one made and recorded for this very
/// record (each candidate where it was: a resumed run, or a person's pick
/// before it), if one was: the same record gives the same winner, judge or
/// not. A candidate retried since makes it moot.
async fn earlier(
    sh: &Shared,
    race_id: &str,
    seen: &mut [Seen],
) -> Option<(Option<usize>, String, String)> {
    let moves = sh.db(|s, run| s.moves(run)).await.ok()?;
    let picked = moves.iter().rev().find_map(|e| match e.payload() {
        Some(Payload::Picked(p)) if e.task_id.as_deref() == Some(race_id) => Some(p),
        _ => None,
    })?;
    let same = |s: &Seen| {
        let e = picked.candidates.iter().find(|e| e.task == s.entrant.task);
        e.is_some_and(|e| e.status == s.entrant.status && e.commit == s.entrant.commit)
    };
    if seen.len() != picked.candidates.len() || !seen.iter().all(same) {
        return None;
    }
    let winner = picked.winner.as_deref()?;
    let w = seen
        .iter()
        .position(|s| s.entrant.task == winner && s.entrant.passed())?;
    for s in seen.iter_mut() {
        if let Some(e) = picked.candidates.iter().find(|e| e.task == s.entrant.task) {
            s.entrant = e.clone();
        }
    }
    Some((Some(w), picked.mode, picked.reason))
}

/// The winner (an index into `seen`) and why; Err: a request cut it short.
async fn choose(
    sh: &Arc<Shared>,
    spec: &TaskSpec,
    race: &Race,
    seen: &mut [Seen],
    desk: &JudgeDesk,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> Result<(Option<usize>, String, String), WorkerCmd> {
    let race_id = spec.id.as_str();
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
        Pick::Judge { judge } => {
            let (w, why) = judge::judge(sh, spec, judge, seen, desk, cmds).await?;
            (w, why, entrants(seen))
        }
    };
    for (s, e) in seen.iter_mut().zip(ranked.drain(..)) {
        s.entrant = e;
    }
    Ok((winner, mode(&race.pick).to_string(), reason))
}

fn mode(pick: &Pick) -> &'static str {
    match pick {
        Pick::First => "first",
        Pick::All { .. } => "all",
        Pick::Judge { .. } => "judge",
    }
}
