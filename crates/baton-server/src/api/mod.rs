//! The JSON API under /api (see openapi.rs for the document it serves).

mod act;
mod events;
pub(crate) mod hooks;
pub(crate) mod inbound;
mod inbox;
mod incoming;
mod openapi;
mod plans;
mod push;
mod review;
mod runs;
mod stats;
mod tasks;

pub use crate::error::ApiError;

use crate::state::AppState;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;

/// A JSON body that failed to parse is a 400 with what was wrong, not axum's text.
pub struct JsonBody<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            // A body over the limit is 413, not a bad body.
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body too large: {}", e.body_text()),
            )),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("bad request body: {}", e.body_text()),
            )),
        }
    }
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "ok": true, "version": env!("CARGO_PKG_VERSION") }))
}

/// /api on a server of several repositories: only what is the server's
/// own (`first` holds the dashboard's sessions); each repository's routes
/// are under /api/repos/<name>.
pub fn server_routes(first: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/openapi.json", get(openapi::document))
        .route("/health", get(health))
        .route("/session", post(tasks::session))
        .route("/repos", get(crate::repos::list))
        .fallback(|uri: axum::http::Uri| async move {
            match uri.path().strip_prefix("/repos/") {
                Some(rest) => ApiError::not_found(format!(
                    "no repository {:?} on this server (GET /api/repos lists them)",
                    rest.split('/').next().unwrap_or_default()
                )),
                None => ApiError::not_found("this server serves several repositories: each one's API is under /api/repos/<name>/ (GET /api/repos lists them)"),
            }
        })
        .layer(axum::middleware::from_fn_with_state(
            first,
            crate::auth::guard,
        ))
}

pub fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/openapi.json", get(openapi::document))
        .route("/health", get(health))
        .route("/session", post(tasks::session))
        .route("/repos", get(crate::repos::list))
        .route("/runs", get(runs::list).post(runs::start))
        .route("/stats", get(stats::scorecard_of))
        .route("/plans", post(plans::propose))
        .route("/plans/{run}", get(plans::proposal))
        .route("/plans/{run}/discard", post(plans::discard))
        .route("/runs/{run}", get(runs::report))
        .route("/runs/{run}/usage", get(runs::usage))
        .route("/runs/{run}/events", get(runs::events))
        .route("/runs/{run}/tasks/{task}", get(tasks::detail))
        .route("/runs/{run}/tasks/{task}/attempts", get(tasks::attempts))
        .route(
            "/runs/{run}/tasks/{task}/transcript",
            get(tasks::transcript),
        )
        .route("/runs/{run}/tasks/{task}/diff", get(tasks::diff))
        .route("/runs/{run}/tasks/{task}/log", get(tasks::log))
        .route(
            "/runs/{run}/tasks/{task}/messages",
            get(tasks::messages).post(tasks::send_message),
        )
        .route("/runs/{run}/tasks/{task}/review", get(review::list))
        .route(
            "/runs/{run}/tasks/{task}/review/comments",
            post(review::add),
        )
        .route(
            "/runs/{run}/tasks/{task}/review/comments/{id}",
            axum::routing::delete(review::drop),
        )
        .route(
            "/runs/{run}/tasks/{task}/review/submit",
            post(review::submit),
        )
        .route("/runs/{run}/tasks/{task}/{action}", post(tasks::act))
        .route("/tasks", post(tasks::add))
        .route("/incoming", get(incoming::list))
        .route("/inbox", get(inbox::list))
        .route("/act/{token}", get(act::show).post(act::act))
        .route("/push/key", get(push::key))
        .route(
            "/push/subscriptions",
            post(push::subscribe).delete(push::unsubscribe),
        )
        .route("/inbox/{id}/{action}", post(inbox::act))
        .route("/hooks/github", post(hooks::github))
        .route("/hooks/{name}", post(inbound::deliver))
        .route("/events", get(events::stream))
        .fallback(|| async { ApiError::not_found("no such API path; see /api/openapi.json") })
        .layer(axum::middleware::from_fn_with_state(
            state,
            crate::auth::guard,
        ))
}
