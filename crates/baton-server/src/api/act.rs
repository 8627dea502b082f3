//! `/api/act/<token>`: an action link from a notification (see
//! `notify::links`). Its signature is its access: no baton token. A GET
//! (a link opened in a browser, or fetched by a preview) only shows what
//! it would do, with a button; a POST (that button, or ntfy's HTTP action)
//! does it, once. A forged, expired or used link, or one whose item no
//! longer allows it, changes nothing.

use super::ApiError;
use crate::notify::links::{Claim, LinkError};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use baton_core::clock::now_ms;
use baton_core::inbox::{Item, ItemKind};
use serde_json::json;
use std::sync::Arc;

/// What the link would do, and a button that does it.
pub async fn show(State(st): State<Arc<AppState>>, Path(token): Path<String>) -> Response {
    let (claim, item) = match check(&st, &token).await {
        Ok(x) => x,
        Err(e) => return page(e.status, "Nothing to do", &e.message, None),
    };
    let what = said(&claim, &item);
    page(StatusCode::OK, "baton", &what, Some(&token))
}

/// Does what the link says, once.
pub async fn act(
    State(st): State<Arc<AppState>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let browser = headers
        .get("accept")
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let done = act_once(&st, &token).await;
    let (status, ok, message) = match done {
        Ok(a) => (
            if a.ok {
                StatusCode::OK
            } else {
                StatusCode::CONFLICT
            },
            a.ok,
            a.message,
        ),
        Err(e) => (e.status, false, e.message),
    };
    if browser {
        let title = if ok { "Done" } else { "Nothing was done" };
        return page(status, title, &message, None);
    }
    (status, Json(json!({ "ok": ok, "message": message }))).into_response()
}

async fn act_once(st: &Arc<AppState>, token: &str) -> Result<baton_core::engine::Answer, ApiError> {
    let (claim, item) = check(st, token).await?;
    let (nonce, action, id) = (claim.nonce.clone(), claim.action.clone(), claim.item);
    let fresh = st
        .store
        .call(move |s| s.use_link(&nonce, id, &action))
        .await
        .map_err(ApiError::internal)?;
    if !fresh {
        return Err(ApiError::new(StatusCode::GONE, LinkError::Used.to_string()));
    }
    let done = super::inbox::perform(st, &item, &claim.action, claim.answer.clone()).await;
    if !matches!(&done, Ok(a) if a.ok) {
        // Nothing was done: the link works again (its item decides if it may).
        let nonce = claim.nonce.clone();
        let what = format!("that link {} did nothing", claim.nonce);
        st.write(what, move |s| s.release_link(&nonce)).await;
    }
    done
}

/// The link's claim and the item it is about, if the link is baton's, has
/// not run out, and its item still allows what it does.
async fn check(st: &AppState, token: &str) -> Result<(Claim, Item), ApiError> {
    let Some(links) = st.links.get() else {
        return Err(ApiError::not_found("this server gives no action links"));
    };
    let claim = links.check(token, now_ms()).map_err(|e| {
        let status = match e {
            LinkError::Forged => StatusCode::UNAUTHORIZED,
            LinkError::Expired | LinkError::Used => StatusCode::GONE,
        };
        ApiError::new(status, e.to_string())
    })?;
    let nonce = claim.nonce.clone();
    let used = st
        .store
        .call(move |s| s.link_used(&nonce))
        .await
        .map_err(ApiError::internal)?;
    if used {
        return Err(ApiError::new(StatusCode::GONE, LinkError::Used.to_string()));
    }
    let id = claim.item;
    let item = st
        .store
        .call(move |s| s.inbox_item(id, now_ms()))
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::GONE,
                format!("item {id} no longer needs anyone"),
            )
        })?;
    if !item.actions.contains(&claim.action.as_str()) {
        let msg = format!("item {id} no longer allows {}", claim.action);
        return Err(ApiError::new(StatusCode::CONFLICT, msg));
    }
    Ok((claim, item))
}

fn said(claim: &Claim, item: &Item) -> String {
    let task = item.task.as_deref().unwrap_or("");
    match (claim.action.as_str(), &claim.answer) {
        ("answer", Some(a)) => format!("Answer {:?} to task {task}'s question: {}", a, item.text),
        ("approve", _) if item.kind == ItemKind::Plan => {
            format!("Run the plan of run {}: {}", item.run, item.text)
        }
        ("discard", _) => format!("Discard the plan of run {}: {}", item.run, item.text),
        (action, _) => format!(
            "{} task {task} of run {} ({})",
            crate::notify::capitalised(action),
            item.run,
            item.text
        ),
    }
}

/// A small page of its own (no script: the dashboard's policy holds).
fn page(status: StatusCode, title: &str, text: &str, act: Option<&str>) -> Response {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let button = act
        // Posted back to the page's own address (/api/act/..., or under
        // /api/repos/<name> on a server of several).
        .map(|t| {
            format!(
                "<form method=\"post\" action=\"{}\"><button type=\"submit\">Do it</button></form>",
                esc(t)
            )
        })
        .unwrap_or_default();
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{t}</title></head><body><h1>{t}</h1><p>{x}</p>{button}</body></html>",
        t = esc(title),
        x = esc(text)
    );
    (status, Html(html)).into_response()
}
