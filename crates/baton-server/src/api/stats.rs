//! `GET /api/stats`: the scorecard of the repository's agent profiles (or
//! models), as `baton stats --json` prints it.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use baton_core::stats::{scorecard, since_ms, By};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// "30d" (the default), "12h", ...
    since: Option<String>,
    by: Option<By>,
}

pub async fn scorecard_of(
    State(st): State<Arc<AppState>>,
    Query(q): Query<StatsQuery>,
) -> Result<Json<Value>, ApiError> {
    let since_text = q.since.unwrap_or_else(|| "30d".into());
    let from = since_ms(&since_text).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("since {since_text:?}: {e}"),
        )
    })?;
    let by = q.by.unwrap_or(By::Profile);
    let tasks = st
        .store
        .call(move |s| s.task_outcomes(from))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(
        json!({ "since": since_text, "lines": scorecard(&tasks, by) }),
    ))
}
