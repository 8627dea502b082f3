//! `/api/runs/{run}/tasks/{task}/review`: a person's comments on lines of
//! a task's work (see `baton_core::review`): list them with what became of
//! their lines, add or drop drafts, and send them as one review.

use super::{ApiError, JsonBody};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use baton_core::review;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

pub async fn list(
    State(st): State<Arc<AppState>>,
    Path((run, task)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let marked = review::marked(&st.opts.repo, &st.store, &run, &task).await?;
    let comments: Vec<Value> = marked
        .iter()
        .map(|(c, m)| {
            let mut v = json!(c);
            v["mark"] = json!(m);
            v
        })
        .collect();
    Ok(Json(json!({ "comments": comments })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    path: String,
    line: u32,
    text: String,
}

pub async fn add(
    State(st): State<Arc<AppState>>,
    Path((run, task)): Path<(String, String)>,
    JsonBody(c): JsonBody<NewComment>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let place = format!("{}:{}", c.path, c.line);
    let (path, line) =
        review::parse_place(&place).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    let kept = review::add_comment(
        &st.opts.repo,
        &st.store,
        &run,
        &task,
        (&path, line),
        &c.text,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!(kept))))
}

pub async fn drop(
    State(st): State<Arc<AppState>>,
    Path((run, task, id)): Path<(String, String, i64)>,
) -> Result<Json<Value>, ApiError> {
    let dropped = st
        .store
        .call(move |s| s.drop_comment(&run, &task, id))
        .await
        .map_err(ApiError::internal)?;
    if !dropped {
        return Err(ApiError::not_found(format!(
            "no draft comment {id} on this task"
        )));
    }
    Ok(Json(json!({ "ok": true })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Submit {
    #[serde(default)]
    note: Option<String>,
}

pub async fn submit(
    State(st): State<Arc<AppState>>,
    Path((run, task)): Path<(String, String)>,
    JsonBody(body): JsonBody<Submit>,
) -> Result<Response, ApiError> {
    let id = run.clone();
    let rec = st
        .store
        .call(move |s| s.run(&id))
        .await
        .map_err(|e| ApiError::not_found(e.to_string()))?;
    let answer = review::submit(&st.store, &st.paths, &rec, &task, body.note.as_deref()).await?;
    let status = match answer.ok {
        true => StatusCode::OK,
        false => StatusCode::CONFLICT,
    };
    Ok((status, Json(json!(answer))).into_response())
}
