//! `/api/inbox`: everything that needs a person, across runs (see
//! `baton_core::inbox`), and acting on an item by its id: answer a
//! question, approve, retry or stop the item's task, run or discard a
//! planner's plan.

use super::{ApiError, JsonBody};
use crate::state::AppState;
use crate::{proposals, runner};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use baton_core::clock::now_ms;
use baton_core::engine::Answer;
use baton_core::inbox::{Item, ItemKind};
use baton_core::model::ControlKind;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

pub async fn list(State(st): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let items = st
        .store
        .call(move |s| s.inbox(now_ms()))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "count": items.len(), "items": items })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActBody {
    /// The answer, for `answer`.
    #[serde(default)]
    text: Option<String>,
}

/// `POST /api/inbox/{id}/{action}`: `answer` (with `text`), `approve`,
/// `retry` or `stop`, as the item allows.
pub async fn act(
    State(st): State<Arc<AppState>>,
    Path((id, action)): Path<(i64, String)>,
    JsonBody(body): JsonBody<ActBody>,
) -> Result<Response, ApiError> {
    let item = find(&st, id).await?;
    if !item.actions.contains(&action.as_str()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "item {id} ({}) allows {}",
                item.kind,
                match item.actions.is_empty() {
                    true => "no action here".to_string(),
                    false => item.actions.join(", "),
                }
            ),
        ));
    }
    let answer = perform(&st, &item, &action, body.text).await?;
    let status = match answer.ok {
        true => StatusCode::OK,
        false => StatusCode::CONFLICT,
    };
    Ok((status, Json(json!(answer))).into_response())
}

/// Does `action` on `item` (which allows it): answers its question (with
/// `text`), says yes or no to its plan, or sends its task the control.
pub(crate) async fn perform(
    st: &Arc<AppState>,
    item: &Item,
    action: &str,
    text: Option<String>,
) -> Result<Answer, ApiError> {
    match (item.kind, action) {
        (_, "answer") => {
            let text = text.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
                ApiError::new(StatusCode::BAD_REQUEST, "answer needs a non-empty \"text\"")
            })?;
            Ok(baton_core::control::answer_question(&st.store, &st.paths, item.id, &text).await?)
        }
        (ItemKind::Plan, "approve") => {
            let run = proposals::approve(st, &item.run, None).await?;
            Ok(Answer::yes(format!(
                "run {run} started: the plan of run {}",
                item.run
            )))
        }
        (ItemKind::Plan, "discard") => {
            proposals::discard(st, &item.run).await?;
            Ok(Answer::yes(format!(
                "the plan of run {} was discarded",
                item.run
            )))
        }
        (_, other) => {
            let kind: ControlKind = other
                .parse()
                .map_err(|_| ApiError::not_found(format!("unknown action {other:?}")))?;
            let task = item.task.clone().unwrap_or_default();
            Ok(runner::control(st, &item.run, &task, kind, None).await?)
        }
    }
}

async fn find(st: &AppState, id: i64) -> Result<Item, ApiError> {
    st.store
        .call(move |s| s.inbox_item(id, now_ms()))
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("nothing in the inbox has id {id}")))
}
