//! Plans proposed by a planner agent for a goal (the dashboard's goal box,
//! `baton plan` for the browser): start one, then read it when it is ready.

use super::{ApiError, JsonBody};
use crate::runner;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use baton_core::model::TaskStatus;
use baton_core::planner;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Goal {
    goal: String,
    agent: Option<String>,
}

/// Starts a planner for a goal; its run is answered at once.
pub async fn propose(
    State(st): State<Arc<AppState>>,
    JsonBody(body): JsonBody<Goal>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let agent = body.agent.filter(|a| !a.trim().is_empty());
    let run = runner::propose(&st, &body.goal, agent.as_deref(), true).await?;
    Ok((StatusCode::CREATED, Json(json!({ "run": run }))))
}

/// Says no to a planner's plan (the dashboard's Discard).
pub async fn discard(
    State(st): State<Arc<AppState>>,
    Path(run): Path<String>,
) -> Result<Json<Value>, ApiError> {
    crate::proposals::discard(&st, &run).await?;
    Ok(Json(
        json!({ "ok": true, "message": format!("the plan of run {run} was discarded") }),
    ))
}

/// Where a planner stands: `planning`, `ready` (with the plan's text, its
/// tasks and the planner's words) or `failed` (with why, and its draft).
pub async fn proposal(
    State(st): State<Arc<AppState>>,
    Path(run): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = run.clone();
    let (rec, tasks, decided) = st
        .store
        .call(move |s| {
            Ok::<_, baton_core::store::StoreError>((
                s.run(&id)?,
                s.tasks(&id)?,
                s.plan_decision(&id)?,
            ))
        })
        .await
        .map_err(|e| ApiError::not_found(e.to_string()))?;
    let decided = decided.map(|(decision, run)| json!({ "decision": decision, "run": run }));
    let out = planner::out_of(&rec.plan_source)
        .ok_or_else(|| ApiError::not_found(format!("run {run} is not a planner's run")))?;
    let Some(task) = tasks.first() else {
        return Err(ApiError::not_found(format!(
            "run {run} has no planner task"
        )));
    };
    let draft = || std::fs::read_to_string(&out).ok();
    let answer = match task.status {
        TaskStatus::Succeeded => {
            let shown = std::path::Path::new("plan.toml");
            match planner::read_plan(&out, shown, &st.opts.repo.root, st.opts.user.as_ref()) {
                Ok((text, plan)) => {
                    let tasks: Vec<Value> = plan
                        .tasks
                        .iter()
                        .map(|t| json!({ "id": t.id, "agent": t.agent, "needs": t.needs, "status": "pending" }))
                        .collect();
                    json!({ "run": run, "status": "ready", "plan": text, "tasks": tasks, "said": task.result, "decided": decided })
                }
                Err(e) => json!({ "run": run, "status": "failed", "error": e, "draft": draft() }),
            }
        }
        s if s.is_finished() => json!({
            "run": run, "status": "failed",
            "error": task.reason.clone().unwrap_or_else(|| format!("the planner {}", s.past())),
            "draft": draft(),
        }),
        _ => json!({ "run": run, "status": "planning", "activity": task.activity }),
    };
    Ok(Json(answer))
}
