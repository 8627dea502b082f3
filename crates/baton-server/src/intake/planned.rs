//! Items of a source with `mode = "plan"`: the item is the goal of a
//! planner run (with the served plan's profiles); once the planner has
//! written a plan that passes `baton check`, its tasks (only they: the
//! rest stays the served plan's) run as the item's own run, and the
//! item hears how the whole run ended (or, landed as a pull request, how
//! that ended). A planner that fails, or whose plan never checks, is
//! reported like a failed task.

use super::Intake;
use crate::runner::{self, RunnerError};
use crate::state::AppState;
use baton_core::model::{PlanDecision, RunStatus};
use baton_core::planner;
use baton_core::store::SourceItem;
use baton_core::tracker::{self, Report, TrackerError};
use std::sync::Arc;

impl Intake {
    /// Starts the planner for an item's text; (its run, its task).
    pub(super) async fn start_planner(
        &self,
        state: &Arc<AppState>,
        goal: &str,
    ) -> Result<(String, String), RunnerError> {
        // The item's own run follows from its plan: nobody is asked.
        let run = runner::propose(state, goal, None, false).await?;
        let r = run.clone();
        let tasks = state.store.call(move |s| s.tasks(&r)).await;
        let tasks = tasks.map_err(|e| RunnerError::Internal(e.to_string()))?;
        let task = tasks
            .first()
            .map(|t| t.id.clone())
            .ok_or_else(|| RunnerError::Internal(format!("the planner's run {run} has no task")))?;
        Ok((run, task))
    }

    /// The planner of `item` succeeded: its plan runs as the item's run,
    /// and the item hears what was planned.
    pub(super) async fn run_planned(
        &self,
        state: &Arc<AppState>,
        item: &SourceItem,
    ) -> Result<(), TrackerError> {
        let r = item.run_id.clone();
        let rec = state.store.call(move |s| s.run(&r)).await;
        let rec = rec.map_err(|e| TrackerError::Other(e.to_string()))?;
        let Some(out) = planner::out_of(&rec.plan_source) else {
            return Ok(());
        };
        let shown = std::path::Path::new("plan.toml");
        let (text, plan) = match planner::read_plan(
            &out,
            shown,
            &state.opts.repo.root,
            state.opts.user.as_ref(),
        ) {
            Ok(read) => read,
            Err(e) => {
                let why = format!("the planner's plan cannot run: {e}");
                return self.report_failed_plan(state, item, &why).await;
            }
        };
        let id = self.id_of(&item.item, &item.title);
        let run = match runner::start_planned_run(state, &id, &text).await {
            Ok(run) => run,
            Err(e) => {
                let why = format!("the planner's plan cannot start: {e}");
                return self.report_failed_plan(state, item, &why).await;
            }
        };
        let (planner, r) = (item.run_id.clone(), run.clone());
        let what = format!("that run {run} is planning run {planner}'s plan");
        state
            .write(what, move |s| {
                s.decide_plan(&planner, PlanDecision::Approved, Some(&r))
            })
            .await;
        let tasks: Vec<String> = plan.tasks.iter().map(|t| t.id.clone()).collect();
        tracing::info!(
            "{}: {} was planned as run {run} ({})",
            item.source,
            item.item,
            tasks.join(", ")
        );
        let (source, key, r) = (item.source.clone(), item.item.clone(), run.clone());
        let what = format!("{source}: {key}'s planned run");
        // The item is now the whole run (no one task).
        state
            .write(what, move |s| s.move_source_item(&source, &key, &r, ""))
            .await;
        let text = tracker::planned_comment(&run, &tasks);
        let report = Report {
            event: "planned",
            item: item.item.clone(),
            run,
            task: String::new(),
            status: None,
            text: tracker::marked(&text),
        };
        self.tracker.report(&report).await
    }

    /// The item of a planned run hears how the run ended (unless its pull
    /// request tells it).
    pub(super) async fn report_run_end(
        &self,
        state: &Arc<AppState>,
        item: &SourceItem,
    ) -> Result<(), TrackerError> {
        let r = item.run_id.clone();
        let found = state
            .store
            .call(move |s| Ok::<_, baton_core::store::StoreError>((s.run(&r)?, s.tasks(&r)?)))
            .await;
        let Ok((rec, tasks)) = found else {
            return Ok(());
        };
        if rec.finished_at.is_none() || rec.status == RunStatus::Interrupted {
            return Ok(());
        }
        let succeeded = rec.status == RunStatus::Succeeded;
        if succeeded && self.lands_as_pull(state, &item.run_id).await {
            return Ok(());
        }
        let bad = tasks.iter().find(|t| t.status.is_bad_end());
        let reason = bad.map(|t| {
            let why = t.reason.as_deref().unwrap_or("did not succeed");
            format!("task `{}` {}: {why}", t.id, t.status.as_str())
        });
        let cost = tasks.iter().filter_map(|t| t.cost_usd).sum::<f64>();
        let ended = tracker::Ended {
            run: &item.run_id,
            task: "",
            succeeded,
            status: rec.status.as_str(),
            reason: reason.as_deref(),
            cost_usd: tasks.iter().any(|t| t.cost_usd.is_some()).then_some(cost),
            branch: succeeded.then_some(rec.integration_branch.as_str()),
        };
        self.tell_end(state, item, &ended).await
    }

    /// The planner of `item` could not give it a run: said as its end.
    async fn report_failed_plan(
        &self,
        state: &Arc<AppState>,
        item: &SourceItem,
        why: &str,
    ) -> Result<(), TrackerError> {
        let ended = tracker::Ended {
            run: &item.run_id,
            task: &item.task_id,
            succeeded: false,
            status: "failed",
            reason: Some(why),
            cost_usd: None,
            branch: None,
        };
        self.tell_end(state, item, &ended).await
    }

    /// Tells the tracker how `item` ended, and records that it heard.
    pub(super) async fn tell_end(
        &self,
        state: &Arc<AppState>,
        item: &SourceItem,
        ended: &tracker::Ended<'_>,
    ) -> Result<(), TrackerError> {
        let report = Report {
            event: "ended",
            item: item.item.clone(),
            run: item.run_id.clone(),
            task: item.task_id.clone(),
            status: Some(ended.status.to_string()),
            text: tracker::marked(&tracker::ended_comment(ended)),
        };
        self.tracker.report(&report).await?;
        // Not recorded, the comment would be written again next round:
        // the log says so.
        let (source, key) = (item.source.clone(), item.item.clone());
        let what = format!("{source}: that {key} was reported");
        state
            .write(what, move |s| s.mark_source_item_reported(&source, &key))
            .await;
        Ok(())
    }
}
