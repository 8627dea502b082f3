//! `pick = "judge"`: an agent of the judge's profile reads the task and
//! what each passing candidate did (its diff, gates, cost, time and final
//! words) and names the winner on its last lines. It works as an attempt of
//! the race task (kind `judge`: its cost is the race's, its transcript the
//! race's) in the race task's own desk. A judge that names nobody, or
//! fails, falls back to ranking by the default measures, and says so.

use super::gather::Field;
use crate::engine::messages::{Outcome, WorkerCmd};
use crate::engine::shared::Shared;
use crate::engine::task;
use crate::model::AttemptKind;
use crate::pick::Entrant;
use crate::plan::race::DEFAULT_RANK_BY;
use crate::plan::TaskSpec;
use crate::template::{render_judge, JudgeCandidate, JudgeContext, JUDGE_PROMPT};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc::{self, UnboundedReceiver};

/// At most this much of each candidate's diff goes into the judge's prompt.
const DIFF_CAP: usize = 40_000;

/// Where the judge works: the race task's desk, made from `head`.
pub(crate) struct JudgeDesk {
    pub head: String,
    pub worktrees: PathBuf,
}

/// The winner (an index into the field) and why; Err: a request cut it short.
pub(super) async fn judge(
    sh: &Arc<Shared>,
    race: &TaskSpec,
    profile: &str,
    field: &mut Field,
    desk: &JudgeDesk,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> Result<(Option<usize>, String), WorkerCmd> {
    let entrants = &mut field.entrants;
    let passed: Vec<usize> = (0..entrants.len())
        .filter(|&i| entrants[i].passed())
        .collect();
    if passed.len() < 2 {
        // Nothing to judge: one winner or none, as the ranking says.
        return Ok(ranked(entrants, None));
    }
    let prompt = prompt(sh, race, field, &passed).await;
    let entrants = &mut field.entrants;
    let said = match run_judge(sh, race, profile, prompt, desk, cmds).await? {
        Outcome::Done { result, .. } => result,
        Outcome::Failed { reason, .. } => {
            return Ok(ranked(
                entrants,
                Some(format!("the judge failed ({reason})")),
            ))
        }
        Outcome::Waiting { .. } => {
            let why = "the judge asked a question instead of naming a winner".to_string();
            return Ok(ranked(entrants, Some(why)));
        }
        Outcome::Broken { reason } => {
            return Ok(ranked(
                entrants,
                Some(format!("the judge could not run ({reason})")),
            ))
        }
        Outcome::Stopped { .. } => return Err(WorkerCmd::Stop),
        Outcome::Interrupted { .. } => return Err(WorkerCmd::Shutdown),
    };
    let ids: Vec<&str> = passed.iter().map(|&i| entrants[i].task.as_str()).collect();
    let (winner, reason) = match crate::pick::verdict_of(&said, &ids) {
        Ok(named) => named,
        Err(why) => return Ok(ranked(entrants, Some(why))),
    };
    // The verdict names one of `passed`.
    let w = passed.iter().copied().find(|&i| entrants[i].task == winner);
    if let Some(w) = w {
        crate::pick::place_first(entrants, w);
        entrants[w].note = Some(format!("the judge: {reason}"));
    }
    Ok((w, format!("the judge ({profile}) named {winner}: {reason}")))
}

/// The ranking by the default measures, after `why` the judge could not
/// decide (None: there was nothing to judge).
fn ranked(entrants: &mut [Entrant], why: Option<String>) -> (Option<usize>, String) {
    let (w, reason) = crate::pick::rank(entrants, &DEFAULT_RANK_BY, false);
    match why {
        Some(why) => (
            w,
            format!("{why}; ranked by gates, diff_lines, cost and time instead: {reason}"),
        ),
        None => (w, reason),
    }
}

/// The judge's prompt: the plan's template, else baton's.
async fn prompt(sh: &Shared, race: &TaskSpec, field: &Field, passed: &[usize]) -> String {
    let mut candidates = Vec::new();
    for &i in passed {
        let (e, r) = (&field.entrants[i], &field.records[i]);
        let (diff, diff_cut) = match (&r.start_commit, &e.commit) {
            (Some(from), Some(to)) => match sh.repo.diff_capped(from, to, DIFF_CAP).await {
                Ok((bytes, cut)) => (String::from_utf8_lossy(&bytes).into_owned(), cut),
                Err(e) => (format!("(its diff could not be read: {e})"), false),
            },
            _ => ("(no change)".to_string(), false),
        };
        candidates.push(JudgeCandidate {
            id: e.task.clone(),
            agent: e.agent.clone(),
            result: r.result.clone().unwrap_or_default().trim().to_string(),
            diff,
            diff_cut,
            gates: match e.gate_failures {
                0 => "passed at the first try".into(),
                n => format!("passed after {n} failed run(s)"),
            },
            cost: e
                .cost_usd
                .map(|c| format!("${c:.4}"))
                .unwrap_or_else(|| "unknown".into()),
            time: e
                .time_ms
                .map(|t| crate::duration::human(std::time::Duration::from_millis(t as u64)))
                .unwrap_or_else(|| "unknown".into()),
        });
    }
    let ctx = JudgeContext {
        task: race.id.clone(),
        prompt: race.prompt.trim().to_string(),
        candidates,
    };
    // The plan's template was checked when the plan was read.
    let template = sh.plan.run.judge_prompt.as_deref();
    template
        .and_then(|t| render_judge(t, &ctx).ok())
        .or_else(|| render_judge(JUDGE_PROMPT, &ctx).ok())
        .unwrap_or_default()
}

/// Runs the judge's agent once, as an attempt of the race task, passing on
/// the requests that reach the pick meanwhile.
async fn run_judge(
    sh: &Arc<Shared>,
    race: &TaskSpec,
    profile: &str,
    prompt: String,
    desk: &JudgeDesk,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> Result<Outcome, WorkerCmd> {
    let spec = TaskSpec {
        // Baton's text with agents' diffs and words in it, not a template.
        prompt: crate::template::literal(&prompt),
        agent: profile.to_string(),
        context: Vec::new(),
        gates: Vec::new(),
        retries: 0,
        fail_if: None,
        lead: None,
        race: None,
        ..race.clone()
    };
    let mut start = task::Start::prepare(sh, spec, &desk.head, &desk.worktrees, None).await;
    start.kind = AttemptKind::Judge;
    start.session = None;
    start.feedback = None;
    // The worker counts itself out once its desk is made.
    sh.starting_tasks
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let (tx, rx) = mpsc::unbounded_channel();
    let judging = task::run(sh.clone(), start, rx);
    tokio::pin!(judging);
    loop {
        tokio::select! {
            (outcome, _) = &mut judging => return Ok(outcome),
            Some(cmd) = cmds.recv() => {
                let _ = tx.send(cmd);
            }
        }
    }
}
