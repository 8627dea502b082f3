//! Tasks: detail, attempts, transcript, diff, log; actions; queueing.

use super::{ApiError, JsonBody};
use crate::runner;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use baton_core::model::ControlKind;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

const MAX_TEXT: u64 = 4 * 1024 * 1024;

async fn find_task(
    st: &AppState,
    run: &str,
    task: &str,
) -> Result<baton_core::store::TaskRecord, ApiError> {
    let (r, t) = (run.to_string(), task.to_string());
    st.store
        .call(move |s| {
            s.run(&r)?;
            s.task(&r, &t)
        })
        .await
        .map_err(|e| ApiError::not_found(e.to_string()))?
        .ok_or_else(|| ApiError::not_found(format!("run {run} has no task {task:?}")))
}

async fn read_attempts(
    st: &AppState,
    run: &str,
    task: &str,
) -> Result<Vec<baton_core::store::AttemptRecord>, ApiError> {
    let (r, t) = (run.to_string(), task.to_string());
    st.store
        .call(move |s| s.attempts(&r, &t))
        .await
        .map_err(ApiError::internal)
}

async fn attempts_json(st: &AppState, run: &str, task: &str) -> Result<Value, ApiError> {
    let atts = read_attempts(st, run, task).await?;
    Ok(json!(atts
        .iter()
        .map(|a| json!({
            "n": a.n, "kind": a.kind, "status": a.status, "exit_code": a.exit_code, "reason": a.reason,
            "started_at": a.started_at, "finished_at": a.finished_at,
            "input_tokens": a.input_tokens, "output_tokens": a.output_tokens, "cost_usd": a.cost_usd,
            "model": a.model, "session_id": a.session_id, "log_path": a.log_path,
            "commit_ref": a.commit_ref,
        }))
        .collect::<Vec<_>>()))
}

pub async fn detail(
    State(st): State<Arc<AppState>>,
    Path((run, task)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    find_task(&st, &run, &task).await?;
    let report = super::runs::report_json(&st, &run).await?;
    let t = report["tasks"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["id"] == task.as_str()))
        .cloned()
        .unwrap_or(Value::Null);
    Ok(Json(
        json!({ "task": t, "attempts": attempts_json(&st, &run, &task).await? }),
    ))
}

pub async fn attempts(
    State(st): State<Arc<AppState>>,
    Path((run, task)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    find_task(&st, &run, &task).await?;
    Ok(Json(
        json!({ "attempts": attempts_json(&st, &run, &task).await? }),
    ))
}

pub async fn transcript(
    State(st): State<Arc<AppState>>,
    Path((run, task)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    find_task(&st, &run, &task).await?;
    let events = st
        .store
        .call(move |s| s.task_events(&run, &task, 10_000))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "events": events })))
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

pub async fn diff(
    State(st): State<Arc<AppState>>,
    Path((run, task)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let t = find_task(&st, &run, &task).await?;
    // Read no more than the cap, whatever the task generated; mask secrets.
    let diff = baton_core::logs::task_diff(&st.opts.repo, &st.store, &t, MAX_TEXT as usize)
        .await
        .map_err(ApiError::internal)?;
    let Some((mut body, cut)) = diff else {
        return Ok(text(String::new()));
    };
    if cut {
        body.push_str("\n[diff cut at 4 MiB]\n");
    }
    Ok(text(body))
}

#[derive(Deserialize)]
pub struct LogQuery {
    attempt: Option<u32>,
}

pub async fn log(
    State(st): State<Arc<AppState>>,
    Path((run, task)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiError> {
    find_task(&st, &run, &task).await?;
    let atts = read_attempts(&st, &run, &task).await?;
    let a = match q.attempt {
        Some(n) => atts
            .iter()
            .find(|a| a.n == n)
            .ok_or_else(|| ApiError::not_found(format!("task {task:?} has no attempt {n}")))?,
        None => atts.last().ok_or_else(|| {
            ApiError::not_found(format!("task {task:?} has not started an attempt"))
        })?,
    };
    // Only the end of a huge log: memory stays bounded whatever the agent printed.
    let path = std::path::Path::new(&a.log_path);
    let masked = baton_core::logs::masked_tail(&st.store, &run, path, MAX_TEXT)
        .await
        .map_err(ApiError::internal)?;
    Ok(text(masked))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Action {
    message: Option<String>,
}

pub async fn act(
    State(st): State<Arc<AppState>>,
    Path((run, task, action)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<Action>,
) -> Result<Response, ApiError> {
    let kind = match action.parse::<ControlKind>() {
        Ok(k)
            if !matches!(
                k,
                ControlKind::Add | ControlKind::Message | ControlKind::Answer
            ) =>
        {
            k
        }
        _ => {
            return Err(ApiError::not_found(format!(
                "unknown action {action:?} (stop, steer, approve, retry, pick)"
            )))
        }
    };
    let message = body.message.filter(|m| !m.trim().is_empty());
    if kind == ControlKind::Steer && message.is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "steer needs a non-empty \"message\"",
        ));
    }
    let answer = runner::control(&st, &run, &task, kind, message.as_deref()).await?;
    let status = if answer.ok {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    Ok((status, Json(json!(answer))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageBody {
    text: String,
}

/// A person's message to a task: a running Claude Code gets it at once,
/// other agents with their next attempt.
pub async fn send_message(
    State(st): State<Arc<AppState>>,
    Path((run, task)): Path<(String, String)>,
    JsonBody(body): JsonBody<MessageBody>,
) -> Result<Response, ApiError> {
    let (id, answer) = runner::send_message(&st, &run, None, &task, &body.text).await?;
    let status = if answer.ok {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    Ok((
        status,
        Json(json!({ "id": id, "ok": answer.ok, "message": answer.message })),
    )
        .into_response())
}

/// The messages sent to a task, oldest first.
pub async fn messages(
    State(st): State<Arc<AppState>>,
    Path((run, task)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    find_task(&st, &run, &task).await?;
    let list = st
        .store
        .call(move |s| s.messages_to(&run, &task, 0))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "messages": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddTask {
    prompt: String,
    agent: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    /// A race (PLAN-FORMAT.md, "Races"): the task's agent this many times,
    /// or one candidate per profile of `agents`; how the winner is picked.
    candidates: Option<u32>,
    #[serde(default)]
    agents: Vec<String>,
    pick: Option<String>,
    judge: Option<String>,
    #[serde(default)]
    rank_by: Vec<String>,
    rank: Option<String>,
}

pub async fn add(
    State(st): State<Arc<AppState>>,
    JsonBody(body): JsonBody<AddTask>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let agent = body.agent.filter(|a| !a.trim().is_empty());
    let tags: Vec<String> = body
        .tags
        .into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    let race = baton_core::plan::race::RaceFields {
        candidates: body.candidates,
        agents: body.agents,
        pick: body.pick,
        judge: body.judge,
        rank_by: body.rank_by,
        rank: body.rank,
    };
    let (run, task) = runner::add_task(&st, &body.prompt, agent.as_deref(), &tags, &race).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "run": run, "task": task })),
    ))
}

/// Trades a Bearer token for a session cookie (for the dashboard, whose
/// event stream cannot send headers).
pub async fn session(
    State(st): State<Arc<AppState>>,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let token = crate::auth::bearer(&req).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "send Authorization: Bearer <token>",
        )
    })?;
    if !crate::auth::token_ok(&st, &token).await {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unknown token"));
    }
    let session = crate::auth::new_token();
    let hash = crate::auth::hash_token(&session);
    st.store
        .call(move |s| s.add_token(&hash, "dashboard session"))
        .await
        .map_err(ApiError::internal)?;
    let cookie = format!(
        "{}={session}; HttpOnly; SameSite=Strict; Path=/",
        crate::auth::COOKIE
    );
    Ok(([(header::SET_COOKIE, cookie)], Json(json!({ "ok": true }))).into_response())
}
