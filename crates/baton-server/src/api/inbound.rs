//! `POST /api/hooks/<name>`: deliveries for the served plan's `[[hook]]`s.
//! A delivery is taken only when it proves itself: the HMAC-SHA256 of its
//! raw body under the hook's secret in `X-Hub-Signature-256` (as GitHub
//! signs), or the hook's own token as `Authorization: Bearer` (not a baton
//! token: the route is open to callers without one). Its JSON body then
//! starts a run of the hook's plan (as that run's `payload`) or queues the
//! hook's task (its prompt rendered with the body as `payload`). Anything
//! else is refused and starts nothing.

use super::hooks::signature_ok;
use crate::error::ApiError;
use crate::runner;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use baton_core::plan::{Hook, HookAuth, Plan, Scheduled};
use baton_core::template::{self, PromptContext};
use serde_json::{json, Value};
use std::sync::Arc;

/// A hook and its secret (or token).
#[derive(Clone)]
pub struct Inbound {
    hook: Hook,
    secret: String,
}

/// Takes the served plan's hooks with their secrets, which are kept from
/// every process baton starts from here on. Err: a hook's variable is not
/// set (said whole).
pub fn open(state: &AppState, plan: &Plan) -> Result<(), String> {
    let vars: Vec<String> = plan.hooks.iter().map(|h| h.secret_var().into()).collect();
    baton_core::process::withhold(&vars);
    let mut taken = Vec::new();
    for hook in plan.hooks.iter().cloned() {
        let var = hook.secret_var();
        let secret = super::hooks::secret_in(var);
        let what = match hook.auth {
            HookAuth::Secret(_) => "secret",
            HookAuth::Token(_) => "token",
        };
        let secret = secret.ok_or_else(|| {
            format!(
                "the hook {:?} takes deliveries with the {what} in ${var}, which is not set",
                hook.name
            )
        })?;
        taken.push(Inbound { hook, secret });
    }
    if let Ok(mut inbound) = state.inbound.lock() {
        *inbound = taken;
    }
    Ok(())
}

pub async fn deliver(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let found = state
        .inbound
        .lock()
        .ok()
        .and_then(|list| list.iter().find(|i| i.hook.name == name).cloned());
    let Some(inbound) = found else {
        return Err(ApiError::not_found(format!(
            "the served plan has no [[hook]] named {name:?}"
        )));
    };
    if !proven(&inbound, &headers, &body) {
        let how = match inbound.hook.auth {
            HookAuth::Secret(_) => {
                "its X-Hub-Signature-256 is not the HMAC-SHA256 of its body under the hook's secret"
            }
            HookAuth::Token(_) => {
                "it does not carry the hook's token (Authorization: Bearer <token>)"
            }
        };
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            format!("the delivery is refused: {how}"),
        ));
    }
    let delivery = delivery_id(&headers).map(|id| format!("{name} {id}"));
    if let Some(id) = &delivery {
        if !reserve(&state, id) {
            // A retry of a delivery taken (or being taken): started once.
            return Ok((StatusCode::OK, Json(json!({"ok": true, "duplicate": true}))));
        }
    }
    // Its own task: a sender that hangs up does not cut a start in half.
    let st = state.clone();
    let (n, delivered) = (name.clone(), delivery.clone());
    let work = tokio::spawn(async move {
        let started = start(&st, &n, &inbound, &body).await;
        if let (Err(_), Some(id)) = (&started, &delivered) {
            // Nothing started: the sender may try it again.
            if let Ok(mut seen) = st.deliveries.lock() {
                seen.retain(|s| s != id);
            }
        }
        started
    });
    let started = work.await.map_err(ApiError::internal)??;
    tracing::info!("hook {name}: {started}");
    Ok((StatusCode::ACCEPTED, Json(started)))
}

/// Records delivery `id` as taken, unless it was: whether it was not. One
/// lock, so two retries at once cannot both pass.
fn reserve(state: &AppState, id: &str) -> bool {
    let Ok(mut seen) = state.deliveries.lock() else {
        return true;
    };
    if seen.iter().any(|s| s == id) {
        return false;
    }
    seen.push_back(id.to_string());
    while seen.len() > KEPT_DELIVERIES {
        seen.pop_front();
    }
    true
}

/// What a proven delivery starts.
async fn start(
    state: &Arc<AppState>,
    name: &str,
    inbound: &Inbound,
    body: &[u8],
) -> Result<Value, ApiError> {
    let payload: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the delivery is not JSON: {e}"),
        )
    })?;
    let started = match &inbound.hook.what {
        Scheduled::Task {
            prompt,
            agent,
            tags,
        } => {
            let ctx = PromptContext {
                payload,
                ..Default::default()
            };
            let text = template::render(prompt, &ctx).map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("the hook's prompt cannot be made from this delivery: {e}"),
                )
            })?;
            // What the delivery said is text, not a template.
            let literal = template::literal(&text);
            let queued =
                runner::add_named_task(state, name, &literal, agent.as_deref(), tags, &[], None);
            let (run, task) = queued.await?;
            json!({"ok": true, "run": run, "task": task})
        }
        Scheduled::Plan(plan) => {
            let run = runner::start_delivered(state, name, plan, &payload).await?;
            json!({"ok": true, "run": run})
        }
    };
    Ok(started)
}

/// How many delivery ids are remembered (senders retry within minutes).
const KEPT_DELIVERIES: usize = 1000;

/// A delivery's id, as its sender names it: GitHub's `X-GitHub-Delivery`,
/// else an `Idempotency-Key`.
fn delivery_id(headers: &HeaderMap) -> Option<String> {
    ["x-github-delivery", "idempotency-key"]
        .iter()
        .find_map(|h| headers.get(*h)?.to_str().ok())
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_string)
}

/// Whether the delivery carries the hook's signature or token.
fn proven(inbound: &Inbound, headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match inbound.hook.auth {
        HookAuth::Secret(_) => {
            let signature = header("x-hub-signature-256").unwrap_or_default();
            signature_ok(&inbound.secret, body, signature)
        }
        HookAuth::Token(_) => {
            let given = header("authorization").and_then(|v| v.strip_prefix("Bearer "));
            given.is_some_and(|t| same(t.trim().as_bytes(), inbound.secret.as_bytes()))
        }
    }
}

/// Equal, compared in a time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
