//! Runs: list, start, report, usage, events.

use super::{ApiError, JsonBody};
use crate::runner;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use baton_core::report::Report;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub async fn list(State(st): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let (runs, counts) = st
        .store
        .call(|s| Ok::<_, baton_core::store::StoreError>((s.runs(100)?, s.status_counts()?)))
        .await
        .map_err(ApiError::internal)?;
    let mut out = Vec::new();
    for r in runs {
        let counts: BTreeMap<String, u32> = counts
            .iter()
            .filter(|(run, _, _)| *run == r.id)
            .map(|(_, status, n)| (status.to_string(), *n))
            .collect();
        out.push(json!({
            "id": r.id,
            "status": r.status,
            "kind": r.kind,
            "plan": r.plan_path,
            "started_at": baton_core::clock::rfc3339(r.created_at),
            "finished_at": r.finished_at.map(baton_core::clock::rfc3339),
            "integration_branch": r.integration_branch,
            "live": runner::is_live(&st, &r.id),
            "counts": counts,
        }));
    }
    Ok(Json(json!({ "runs": out })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// A plan file in the repository (default: the server's plan).
    plan: Option<String>,
    /// Or the plan itself, as TOML text (the dashboard's edited proposal).
    source: Option<String>,
    /// The planner's run whose plan this says yes to (as `source`, or as
    /// the planner wrote it): recorded, so it leaves the inbox.
    proposal: Option<String>,
}

pub async fn start(
    State(st): State<Arc<AppState>>,
    JsonBody(body): JsonBody<StartRun>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if let Some(planner) = body.proposal {
        if body.plan.is_some() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "\"proposal\" runs a planner's plan: give no \"plan\" file with it",
            ));
        }
        let run = crate::proposals::approve(&st, &planner, body.source).await?;
        return Ok((StatusCode::CREATED, Json(json!({ "run": run }))));
    }
    let run = match (body.plan, body.source) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "give \"plan\" (a file) or \"source\" (its text), not both",
            ))
        }
        (None, Some(source)) => {
            runner::start_source(&st, std::path::Path::new("dashboard-plan.toml"), &source).await?
        }
        (plan, None) => {
            let plan = plan.unwrap_or_else(|| st.opts.plan.display().to_string());
            runner::start_plan(&st, &plan).await?
        }
    };
    Ok((StatusCode::CREATED, Json(json!({ "run": run }))))
}

/// The JSON report of a run (each task with its agent, needs, attention
/// and allowed actions), and whether it is going on.
pub(crate) async fn report_json(st: &AppState, run: &str) -> Result<Value, ApiError> {
    runner::report(st, run).await.map_err(ApiError::not_found)
}

pub async fn report(
    State(st): State<Arc<AppState>>,
    Path(run): Path<String>,
) -> Result<Json<Value>, ApiError> {
    report_json(&st, &run).await.map(Json)
}

pub async fn usage(
    State(st): State<Arc<AppState>>,
    Path(run): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let report = Report::load(&st.store, &run)
        .await
        .map_err(|e| ApiError::not_found(e.to_string()))?;
    let tasks: Vec<Value> = report
        .tasks
        .iter()
        .map(|t| json!({ "id": t.id, "usage": t.usage }))
        .collect();
    Ok(Json(
        json!({ "run": run, "usage": report.usage, "tasks": tasks }),
    ))
}

#[derive(Deserialize)]
pub struct After {
    after: Option<i64>,
    limit: Option<usize>,
}

pub async fn events(
    State(st): State<Arc<AppState>>,
    Path(run): Path<String>,
    Query(q): Query<After>,
) -> Result<Json<Value>, ApiError> {
    let id = run.clone();
    st.store
        .call(move |s| s.run(&id))
        .await
        .map_err(|e| ApiError::not_found(e.to_string()))?;
    let (after, limit) = (q.after.unwrap_or(0), q.limit.unwrap_or(1000).min(5000));
    let events = st
        .store
        .call(move |s| s.events_after(&run, after, limit))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "events": events })))
}
