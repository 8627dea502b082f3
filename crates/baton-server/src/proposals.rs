//! Saying yes or no to a plan a planner wrote (the dashboard's goal box):
//! yes starts it as a run (as written, or as the person edited it), no
//! drops it; either is recorded on the planner's run, once, so the plan
//! leaves the inbox and a second yes starts nothing.

use crate::runner::{self, RunnerError};
use crate::state::AppState;
use baton_core::model::PlanDecision;
use baton_core::planner::proposal::{self, ProposalError};
use std::path::Path;
use std::sync::Arc;

/// Runs planning run `planner`'s plan (or `edited`, the person's version
/// of it); the new run's id.
pub async fn approve(
    st: &Arc<AppState>,
    planner: &str,
    edited: Option<String>,
) -> Result<String, RunnerError> {
    // One yes at a time: two taps on one plan must not start it twice.
    let _one = st.proposals.lock().await;
    let (id, root) = (planner.to_string(), st.opts.repo.root.clone());
    let user = st.opts.user.clone();
    let edit = edited.is_some();
    let text = st
        .store
        .call(move |s| match edit {
            // The person's version is checked as it starts, not the original.
            true => proposal::waiting_run(s, &id).map(|_| None),
            false => proposal::waiting(s, &id, &root, user.as_ref()).map(|(text, _)| Some(text)),
        })
        .await
        .map_err(runner_error)?;
    let Some(source) = edited.or(text) else {
        return Err(RunnerError::Internal("no plan to run".into()));
    };
    let run = runner::start_source(st, Path::new("dashboard-plan.toml"), &source).await?;
    let (id, r) = (planner.to_string(), run.clone());
    let decided = st
        .store
        .call(move |s| s.decide_plan(&id, PlanDecision::Approved, Some(&r)))
        .await;
    if !matches!(decided, Ok(true)) {
        // Only a decision made outside this server (no lock between them)
        // gets here; the run goes on, and the log says so.
        tracing::error!("run {run} started from planning run {planner}'s plan, but its decision could not be recorded: {decided:?}");
    }
    Ok(run)
}

/// Drops planning run `planner`'s plan.
pub async fn discard(st: &Arc<AppState>, planner: &str) -> Result<(), RunnerError> {
    let _one = st.proposals.lock().await;
    let id = planner.to_string();
    st.store
        .call(move |s| {
            proposal::waiting_run(s, &id)?;
            proposal::decide(s, &id, PlanDecision::Discarded, None)
        })
        .await
        .map_err(runner_error)
}

fn runner_error(e: ProposalError) -> RunnerError {
    match e {
        ProposalError::NotPlanning(_) => RunnerError::NoRun(e.to_string()),
        ProposalError::NotReady(_) | ProposalError::Decided { .. } => {
            RunnerError::Busy(e.to_string())
        }
        ProposalError::Unreadable { .. } => RunnerError::Invalid(e.to_string()),
        ProposalError::Store(s) => match s {
            baton_core::store::StoreError::NoSuchRun(_) => RunnerError::NoRun(s.to_string()),
            s => RunnerError::Internal(s.to_string()),
        },
    }
}
