//! `GET /api/incoming`: where work comes in from, for the dashboard: the
//! served plan's sources with the items taken lately, its schedules with
//! their next time, and its hooks.

use super::ApiError;
use crate::runner;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use baton_core::plan::{HookAuth, Scheduled, SourceMode};
use serde_json::{json, Value};
use std::sync::Arc;

/// How many items of each source are listed.
const RECENT: usize = 10;

pub async fn list(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let plan = match runner::config_plan(&state) {
        Ok(p) => p,
        // The page says why nothing comes in.
        Err(e) => {
            return Ok(Json(
                json!({ "sources": [], "schedules": [], "hooks": [], "error": e.to_string() }),
            ))
        }
    };
    let mut sources = Vec::new();
    for s in &plan.sources {
        let name = s.name.clone();
        let items = state
            .store
            .call(move |st| st.source_items(&name, RECENT))
            .await
            .map_err(ApiError::internal)?;
        let items: Vec<Value> = items
            .iter()
            .map(|i| {
                json!({
                    "item": i.item, "title": i.title, "url": i.url,
                    "run": (!i.run_id.is_empty()).then_some(&i.run_id),
                    "task": (!i.task_id.is_empty()).then_some(&i.task_id),
                    "taken_at": baton_core::clock::rfc3339(i.taken_at),
                    "reported": i.reported_at.is_some(),
                })
            })
            .collect();
        let mode = match s.mode {
            SourceMode::Task => "task",
            SourceMode::Plan => "plan",
        };
        sources.push(json!({
            "name": s.name, "kind": s.kind(), "mode": mode,
            "poll_s": s.poll.as_secs(), "items": items,
        }));
    }
    let rows = state
        .store
        .call(|st| st.schedules())
        .await
        .map_err(ApiError::internal)?;
    let schedules: Vec<Value> = plan
        .schedules
        .iter()
        .map(|s| {
            let row = rows.iter().find(|r| r.name == s.name);
            let at = |secs: Option<i64>| secs.map(|t| baton_core::clock::rfc3339(t * 1000));
            json!({
                "name": s.name, "cron": s.cron_text, "starts": starts(&s.what),
                "next_at": at(row.and_then(|r| r.next_at)),
                "last_fired_at": at(row.and_then(|r| r.last_fired_at)),
                "last_run": row.and_then(|r| r.last_run_id.clone()),
                "last_task": row.and_then(|r| r.last_task_id.clone()),
                "last_skipped_at": at(row.and_then(|r| r.last_skipped_at)),
            })
        })
        .collect();
    let api = state.opts.api();
    let hooks: Vec<Value> = plan
        .hooks
        .iter()
        .map(|h| {
            let auth = match h.auth {
                HookAuth::Secret(_) => "signature",
                HookAuth::Token(_) => "token",
            };
            json!({ "name": h.name, "path": format!("{api}/hooks/{}", h.name), "auth": auth, "starts": starts(&h.what) })
        })
        .collect();
    Ok(Json(
        json!({ "sources": sources, "schedules": schedules, "hooks": hooks }),
    ))
}

/// What a schedule or a hook starts, in a few words.
fn starts(what: &Scheduled) -> String {
    match what {
        Scheduled::Plan(p) => format!("a run of {p}"),
        Scheduled::Task { agent: Some(a), .. } => format!("a task for {a}"),
        Scheduled::Task { .. } => "a task".into(),
    }
}
