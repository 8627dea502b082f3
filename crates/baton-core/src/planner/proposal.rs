//! A planner's plan that waits for a yes: what it is, and saying yes or no
//! to it once (from the dashboard, the inbox, a phone, or `baton approve`).

use super::{out_of, read_plan};
use crate::model::{PlanDecision, TaskStatus};
use crate::plan::Plan;
use crate::store::{Store, StoreError};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ProposalError {
    #[error("run {0} is not a planner's run whose plan waits for a yes")]
    NotPlanning(String),
    #[error("the planner of run {0} has not written a plan (yet)")]
    NotReady(String),
    #[error("run {run}'s plan was {decision} already{}", became.as_ref().map(|r| format!(" (run {r})")).unwrap_or_default())]
    Decided {
        run: String,
        decision: PlanDecision,
        became: Option<String>,
    },
    #[error("run {run}'s plan cannot run: {why}")]
    Unreadable { run: String, why: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Planning run `run`'s plan, as its text and the plan it parses to
/// (checked against the repository at `root`), if it waits for a yes.
pub fn waiting(
    store: &Store,
    run: &str,
    root: &Path,
    user: Option<&crate::plan::UserConfig>,
) -> Result<(String, Plan), ProposalError> {
    let out = waiting_run(store, run)?;
    read_plan(&out, Path::new("plan.toml"), root, user).map_err(|why| ProposalError::Unreadable {
        run: run.into(),
        why,
    })
}

/// Where planning run `run`'s plan is, if it waits for a yes (without
/// reading it: a plan that cannot run may still be discarded).
pub fn waiting_run(store: &Store, run: &str) -> Result<PathBuf, ProposalError> {
    let rec = store.run(run)?;
    let out = out_of(&rec.plan_source)
        .filter(|_| rec.plan_path.ends_with(super::PROPOSAL_SUFFIX))
        .ok_or_else(|| ProposalError::NotPlanning(run.into()))?;
    let planned = store.task(run, "plan")?;
    if planned.map(|t| t.status) != Some(TaskStatus::Succeeded) {
        return Err(ProposalError::NotReady(run.into()));
    }
    if let Some((decision, became)) = store.plan_decision(run)? {
        return Err(ProposalError::Decided {
            run: run.into(),
            decision,
            became,
        });
    }
    Ok(out)
}

/// Records `decision` on planning run `run` (with the run it became); an
/// error when someone decided first.
pub fn decide(
    store: &Store,
    run: &str,
    decision: PlanDecision,
    became: Option<&str>,
) -> Result<(), ProposalError> {
    if store.decide_plan(run, decision, became)? {
        return Ok(());
    }
    let (decision, became) = store.plan_decision(run)?.unwrap_or((decision, None));
    Err(ProposalError::Decided {
        run: run.into(),
        decision,
        became,
    })
}
