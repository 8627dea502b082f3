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
use crate::pick::Entrant;
use crate::pick::Picked;
use crate::plan::race::{Pick, Race};
use crate::plan::TaskSpec;
use crate::store::TaskUpdate;
use gather::Field;
use std::path::{Path, PathBuf};
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
    let mut field = match gather::candidates(&sh, &spec.id, race).await {
        Ok(field) => field,
        Err(reason) => return (Outcome::Broken { reason }, None),
    };
    let recorded = earlier(&sh, &spec.id, &mut field).await;
    let again = recorded.is_some();
    let chosen = match recorded {
        Some(chosen) => Ok(chosen),
        None => choose(&sh, &spec, race, &mut field, &desk, &mut cmds).await,
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
    // A pick recorded before (a resumed run) is not said again.
    let picked = (!again).then(|| {
        Payload::Picked(Picked {
            mode,
            winner: winner.map(|w| field.entrants[w].task.clone()),
            reason: reason.clone(),
            candidates: field.entrants.clone(),
        })
    });
    let won = winner.and_then(|w| Some((w, field.entrants[w].commit.clone()?)));
    let Some((w, commit)) = won else {
        if let Some(p) = picked {
            sh.event(Some(&spec.id), None, p).await;
        }
        return (failed(reason), None);
    };
    let own_desk = own_desk(&sh, &spec.id).await;
    if let Err(e) = point_branch(&sh, &spec.id, own_desk.as_deref(), &commit).await {
        let why = format!(
            "cannot point the race's branch at its winner {}: {e}",
            field.entrants[w].task
        );
        return (failed(why), None);
    }
    // A resolver works in the race's own desk: it is made now, on its branch
    // (a judge's is there already).
    let worktree = match (spec.resolve_conflicts, &own_desk) {
        (true, None) => match resolver_desk(&sh, &spec.id, &desk.worktrees).await {
            Ok(made) => Some(made),
            Err(e) => {
                return (
                    failed(format!("cannot make the race's desk for a resolver: {e}")),
                    None,
                )
            }
        },
        _ => None,
    };
    let start = field.records[w].start_commit.clone();
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
            let desk = s
                .task(run, &race)?
                .and_then(|r| r.existing_worktree().map(Path::to_path_buf));
            Ok((s.task(run, &id)?, desk, s.moves(run)?))
        })
        .await
        .map_err(|e| format!("cannot read candidate {candidate}: {e}"))?;
    let (Some(rec), own_desk, moves) = read else {
        return Err(format!("the store has no candidate {candidate}"));
    };
    let Some(commit) = rec.commit_id.clone() else {
        return Err(format!("candidate {candidate} left no commit"));
    };
    let before = crate::pick::last_picks(&moves).remove(race_id);
    let was = before.as_ref().and_then(|p| p.winner.clone());
    if was.as_deref() == Some(candidate) {
        return Err(format!("{candidate} is the winner of {race_id:?} already"));
    }
    point_branch(sh, race_id, own_desk.as_deref(), &commit)
        .await
        .map_err(|e| format!("cannot point the race's branch at {candidate}: {e}"))?;
    let reason = match &was {
        Some(w) => format!("picked by hand (baton pick) in place of {w}"),
        None => "picked by hand (baton pick)".to_string(),
    };
    let mut candidates = before.map(|p| p.candidates).unwrap_or_default();
    if let Some(w) = candidates.iter().position(|e| e.task == candidate) {
        crate::pick::place_first(&mut candidates, w);
    }
    let picked = Picked {
        mode: "person".into(),
        winner: Some(candidate.to_string()),
        reason: reason.clone(),
        candidates,
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

/// The race task's own desk, while it has one (a judge's, or a resolver's).
async fn own_desk(sh: &Shared, race_id: &str) -> Option<PathBuf> {
    let id = race_id.to_string();
    let rec = sh.db(move |s, run| s.task(run, &id)).await.ok().flatten();
    rec.and_then(|r| r.existing_worktree().map(Path::to_path_buf))
}

/// The race task's own desk made on its branch, for a resolver (`on_conflict
/// = "resolve"`): its path.
async fn resolver_desk(
    sh: &Shared,
    race_id: &str,
    worktrees: &Path,
) -> Result<String, crate::git::GitError> {
    let path = crate::paths::task_worktree(worktrees, &sh.run_id, race_id);
    let branch = crate::paths::task_branch(&sh.run_id, race_id);
    sh.repo.restore_worktree(&path, &branch).await?;
    Ok(path.display().to_string())
}

/// The race task's branch at `commit`; its desk (`own_desk`), if it has
/// one, follows, so that it holds the winner's work (and serves a later
/// task as a spare).
async fn point_branch(
    sh: &Shared,
    race_id: &str,
    own_desk: Option<&Path>,
    commit: &str,
) -> Result<(), crate::git::GitError> {
    if let Some(wt) = own_desk {
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
    field: &mut Field,
) -> Option<(Option<usize>, String, String)> {
    let moves = sh.db(|s, run| s.moves(run)).await.ok()?;
    let picked = crate::pick::last_picks(&moves).remove(race_id)?;
    let same = |e: &Entrant| {
        let was = picked.candidates.iter().find(|p| p.task == e.task);
        was.is_some_and(|p| p.status == e.status && p.commit == e.commit)
    };
    if field.entrants.len() != picked.candidates.len() || !field.entrants.iter().all(same) {
        return None;
    }
    let winner = picked.winner.as_deref()?;
    let w = field
        .entrants
        .iter()
        .position(|e| e.task == winner && e.passed())?;
    for e in field.entrants.iter_mut() {
        if let Some(p) = picked.candidates.iter().find(|p| p.task == e.task) {
            *e = p.clone();
        }
    }
    Some((Some(w), picked.mode, picked.reason))
}

/// The winner (an index into the field), the pick's mode and why; Err: a
/// request cut it short.
async fn choose(
    sh: &Arc<Shared>,
    spec: &TaskSpec,
    race: &Race,
    field: &mut Field,
    desk: &JudgeDesk,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> Result<(Option<usize>, String, String), WorkerCmd> {
    if let Ok(cmd) = cmds.try_recv() {
        return Err(cmd);
    }
    let (winner, reason) = match &race.pick {
        Pick::First => crate::pick::first(&mut field.entrants),
        Pick::All { rank_by, rank } => {
            if let Some(command) = rank {
                rank_cmd::score_all(sh, &spec.id, command, field, cmds).await?;
            }
            crate::pick::rank(&mut field.entrants, rank_by, rank.is_some())
        }
        Pick::Judge { judge } => judge::judge(sh, spec, judge, field, desk, cmds).await?,
    };
    Ok((winner, mode(&race.pick).to_string(), reason))
}

fn mode(pick: &Pick) -> &'static str {
    match pick {
        Pick::First => "first",
        Pick::All { .. } => "all",
        Pick::Judge { .. } => "judge",
    }
}
