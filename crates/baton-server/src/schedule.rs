//! `[[schedule]]`s of the served plan: each waits for the next time its
//! cron expression names (UTC), then starts its plan's run or queues its
//! task, unless what it started last still goes on (that time is skipped,
//! and said). Times missed while the server was down are not made up: at
//! start each schedule waits for its next time from now. The store keeps
//! each one's next time (for `baton runs`) and what it started.

use crate::runner;
use crate::state::AppState;
use baton_core::plan::{Plan, Schedule, Scheduled};
use std::sync::Arc;
use std::time::Duration;

/// Starts one waiter per schedule of the served plan.
pub fn spawn(state: &Arc<AppState>, plan: &Plan) {
    for s in plan.schedules.iter().cloned() {
        tokio::spawn(keep(state.clone(), s));
    }
}

async fn keep(state: Arc<AppState>, s: Schedule) {
    let mut stop = state.shutdown_rx();
    // The last time it fired: a clock set back never makes it fire again.
    let mut last = i64::MIN;
    loop {
        let now_ms = baton_core::clock::now_ms();
        let next = s.cron.next_after(now_ms.div_euclid(1000).max(last));
        let (name, cron) = (s.name.clone(), s.cron_text.clone());
        let what = format!("schedule {name}'s next time");
        state
            .write(what, move |st| st.set_schedule_next(&name, &cron, next))
            .await;
        let Some(at) = next else {
            tracing::warn!(
                "schedule {}: {:?} names no time in the next eight years; it stops",
                s.name,
                s.cron_text
            );
            return;
        };
        let wait = Duration::from_millis((at * 1000 - now_ms).max(0) as u64);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {
                last = at;
                fire(&state, &s, at).await
            }
            _ = stop.changed() => return,
        }
    }
}

/// The schedule's time `at` (seconds) has come.
async fn fire(state: &Arc<AppState>, s: &Schedule, at: i64) {
    if still_going(state, &s.name).await {
        tracing::info!(
            "schedule {}: what it started last still goes on; this time is skipped",
            s.name
        );
        let name = s.name.clone();
        let what = format!("schedule {name}'s skipped time");
        state
            .write(what, move |st| st.schedule_skipped(&name, at))
            .await;
        return;
    }
    let started = match &s.what {
        Scheduled::Plan(plan) => runner::start_plan(state, plan).await.map(|run| (run, None)),
        Scheduled::Task {
            prompt,
            agent,
            tags,
        } => runner::add_named_task(state, &s.name, prompt, agent.as_deref(), tags, &[], None)
            .await
            .map(|(run, task)| (run, Some(task))),
    };
    match started {
        Ok((run, task)) => {
            tracing::info!(
                "schedule {}: started {}",
                s.name,
                task.as_deref()
                    .map_or(run.clone(), |t| format!("task {t} of run {run}"))
            );
            // Not recorded, the next time could overlap this one: the log
            // says so, as an error.
            let name = s.name.clone();
            let what = format!("what schedule {name} started");
            state
                .write(what, move |st| {
                    st.schedule_fired(&name, at, &run, task.as_deref())
                })
                .await;
        }
        Err(e) => tracing::warn!("schedule {}: cannot start: {e}", s.name),
    }
}

/// Whether what schedule `name` started last has not ended.
async fn still_going(state: &Arc<AppState>, name: &str) -> bool {
    let name = name.to_string();
    let row = state.store.call(move |st| st.schedule(&name)).await;
    let Ok(Some(row)) = row else {
        return false;
    };
    match (row.last_run_id, row.last_task_id) {
        (Some(run), Some(task)) => {
            let rec = state.store.call(move |st| st.task(&run, &task)).await;
            matches!(rec, Ok(Some(t)) if !t.status.is_finished())
        }
        (Some(run), None) => {
            let rec = state.store.call(move |st| st.run(&run)).await;
            matches!(rec, Ok(r) if r.finished_at.is_none())
        }
        _ => false,
    }
}
