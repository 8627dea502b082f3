//! Runs: list, start, report, usage, events.

use super::{ApiError, JsonBody};
use crate::runner;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use baton_core::plan::Plan;
use baton_core::report::Report;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub async fn list(State(st): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let runs = st.store.runs(100).map_err(ApiError::internal)?;
    let mut out = Vec::new();
    for r in runs {
        let mut counts: BTreeMap<String, u32> = BTreeMap::new();
        for t in st.store.tasks(&r.id).map_err(ApiError::internal)? {
            *counts.entry(t.status).or_default() += 1;
        }
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
    plan: Option<String>,
}

pub async fn start(
    State(st): State<Arc<AppState>>,
    JsonBody(body): JsonBody<StartRun>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let plan = body
        .plan
        .unwrap_or_else(|| st.opts.plan.display().to_string());
    let run = runner::start_plan(&st, &plan).await?;
    Ok((StatusCode::CREATED, Json(json!({ "run": run }))))
}

/// Each task's agent and needs, from the plan the run keeps in the store.
pub(crate) fn task_shapes(st: &AppState, run: &str) -> BTreeMap<String, (String, Vec<String>)> {
    let Ok(rec) = st.store.run(run) else {
        return BTreeMap::new();
    };
    let path = std::path::Path::new(&rec.plan_path);
    let Ok(mut plan) = Plan::parse_config(path, &rec.plan_source, None) else {
        return BTreeMap::new();
    };
    if rec.kind == "service" {
        plan.tasks.clear();
    }
    let snippets: Vec<String> = st
        .store
        .added_tasks(run)
        .unwrap_or_default()
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    if let Ok(added) = plan.parse_added(&snippets) {
        plan.tasks.extend(added);
    }
    plan.tasks
        .into_iter()
        .map(|t| (t.id, (t.agent, t.needs)))
        .collect()
}

fn attention(status: &str, activity: Option<&str>) -> Value {
    match (status, activity) {
        ("awaiting_approval", _) => json!("approval"),
        ("failed", _) => json!("failed"),
        ("conflicted", _) => json!("conflicted"),
        ("running", Some("stalled")) => json!("stalled"),
        _ => Value::Null,
    }
}

/// The JSON report of a run, with what the dashboard needs per task.
pub(crate) fn report_json(st: &AppState, run: &str) -> Result<Value, ApiError> {
    let report = Report::load(&st.store, run).map_err(|e| ApiError::not_found(e.to_string()))?;
    let shapes = task_shapes(st, run);
    let records = st.store.tasks(run).map_err(ApiError::internal)?;
    let mut v = serde_json::to_value(&report).map_err(ApiError::internal)?;
    if let Some(tasks) = v["tasks"].as_array_mut() {
        for t in tasks {
            let id = t["id"].as_str().unwrap_or_default().to_string();
            let (agent, needs) = shapes.get(&id).cloned().unwrap_or_default();
            let rec = records.iter().find(|r| r.id == id);
            t["agent"] = json!(agent);
            t["needs"] = json!(needs);
            t["started_at_ms"] = json!(rec.and_then(|r| r.started_at));
            t["attention"] = attention(t["status"].as_str().unwrap_or(""), t["activity"].as_str());
        }
    }
    v["live"] = json!(runner::is_live(st, run));
    Ok(v)
}

pub async fn report(
    State(st): State<Arc<AppState>>,
    Path(run): Path<String>,
) -> Result<Json<Value>, ApiError> {
    report_json(&st, &run).map(Json)
}

pub async fn usage(
    State(st): State<Arc<AppState>>,
    Path(run): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let report = Report::load(&st.store, &run).map_err(|e| ApiError::not_found(e.to_string()))?;
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
    st.store
        .run(&run)
        .map_err(|e| ApiError::not_found(e.to_string()))?;
    let events = st
        .store
        .events_after(
            &run,
            q.after.unwrap_or(0),
            q.limit.unwrap_or(1000).min(5000),
        )
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "events": events })))
}
