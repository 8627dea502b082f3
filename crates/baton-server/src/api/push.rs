//! `/api/push`: Web Push for the dashboard. `GET /api/push/key` is the
//! server's VAPID public key (a browser subscribes with it);
//! `POST /api/push/subscriptions` keeps a browser's subscription
//! (`endpoint`, `keys.p256dh`, `keys.auth`, as `PushSubscription.toJSON()`
//! gives them) and `DELETE` with its `endpoint` forgets it.

use super::{ApiError, JsonBody};
use crate::notify::push;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

pub async fn key(State(st): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let secrets = st.push_secrets();
    let vapid = tokio::task::spawn_blocking(move || push::vapid(&secrets))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "public_key": vapid.public_key() })))
}

#[derive(Deserialize)]
pub struct Keys {
    p256dh: String,
    auth: String,
}

#[derive(Deserialize)]
pub struct Subscription {
    endpoint: String,
    keys: Keys,
}

pub async fn subscribe(
    State(st): State<Arc<AppState>>,
    JsonBody(sub): JsonBody<Subscription>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    push::check_subscription(&sub.endpoint, &sub.keys.p256dh, &sub.keys.auth)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    let (e, k, a) = (sub.endpoint.clone(), sub.keys.p256dh, sub.keys.auth);
    st.store
        .call(move |s| s.add_push(&e, &k, &a))
        .await
        .map_err(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "ok": true, "endpoint": sub.endpoint })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unsubscribe {
    endpoint: String,
}

pub async fn unsubscribe(
    State(st): State<Arc<AppState>>,
    JsonBody(u): JsonBody<Unsubscribe>,
) -> Result<Json<Value>, ApiError> {
    let e = u.endpoint.clone();
    let gone = st
        .store
        .call(move |s| s.remove_push(&e))
        .await
        .map_err(ApiError::internal)?;
    if !gone {
        return Err(ApiError::not_found(format!(
            "no subscription {:?}",
            u.endpoint
        )));
    }
    Ok(Json(json!({ "ok": true })))
}
