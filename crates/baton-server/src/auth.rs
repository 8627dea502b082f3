//! Access: every /api request (but /api/health) and /mcp needs a token, a
//! Bearer header or the session cookie the dashboard gets from POST
//! /api/session, on loopback too: any process of the machine reaches
//! loopback, a sandboxed agent among them. The user's own commands and
//! browser use the local token (`baton_core::access`). Actions cannot be
//! triggered across sites: they need a JSON body (a cross-site form cannot
//! send one without a CORS preflight, which is never granted) and an Origin,
//! if sent, that matches the Host.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

pub const COOKIE: &str = "baton_session";

pub use baton_core::access::{hash_token, new_token};

pub(crate) fn bearer(req: &Request) -> Option<String> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ").map(|t| t.trim().to_string())
}

fn cookie(req: &Request) -> Option<String> {
    let raw = req.headers().get(header::COOKIE)?.to_str().ok()?;
    raw.split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Whether `token` opens this server: a token of any repository it
/// serves opens them all (one token set).
pub(crate) async fn token_ok(state: &AppState, token: &str) -> bool {
    let hash = hash_token(token);
    let stores = match state.shared.get() {
        Some(shared) => shared.stores.as_slice(),
        None => std::slice::from_ref(&state.store),
    };
    for store in stores {
        let hash = hash.clone();
        if store
            .call(move |s| s.has_token(&hash))
            .await
            .unwrap_or(false)
        {
            return true;
        }
    }
    false
}

fn same_origin(req: &Request) -> bool {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split("://").nth(1).unwrap_or("");
    origin != "null" && origin_host == host
}

/// Whether a Host (or Origin host) names this machine's loopback.
fn loopback_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((n, port)) if port.chars().all(|c| c.is_ascii_digit()) && !n.ends_with(':') => n,
        _ => host,
    };
    matches!(name, "127.0.0.1" | "localhost" | "[::1]" | "::1")
}

pub async fn guard(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if !state.require_token {
        // Without a token, only pages served from loopback may call: a site
        // whose name was rebound to 127.0.0.1 arrives with its own Host.
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("127.0.0.1");
        let origin_ok = match req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
        {
            Some(o) => loopback_host(o.split("://").nth(1).unwrap_or("")),
            None => true,
        };
        if !loopback_host(host) || !origin_ok {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "on loopback, baton answers only requests addressed to 127.0.0.1, localhost or [::1]",
            ));
        }
    }
    // An action link is signed and works once: whoever holds it may use
    // it, from any site (ntfy's web app) and with any body (a phone app's
    // tap, a form on the link's own page).
    let signed_link = req.uri().path().starts_with("/act/");
    if req.method() == Method::POST && !signed_link {
        if req
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            == Some("cross-site")
            || !same_origin(&req)
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "cross-site requests cannot act on baton",
            ));
        }
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.starts_with("application/json"))
            .unwrap_or(false);
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "actions take a JSON body (Content-Type: application/json)",
            ));
        }
    }
    // Inside /api the path has lost its prefix. A webhook's signature (or
    // its hook's own token) is its access (api/hooks.rs, api/inbound.rs).
    let path = req.uri().path();
    // An action link's signature is its access (api/act.rs).
    let open = matches!(path, "/health" | "/api/health")
        || path.starts_with("/hooks/")
        || path.starts_with("/act/");
    if state.require_token && !open {
        let ok = match bearer(&req).or_else(|| cookie(&req)) {
            Some(t) => token_ok(&state, &t).await,
            None => false,
        };
        if !ok {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "every request needs a token, on loopback too: send Authorization: Bearer <token> (`baton token url` prints a link that signs the dashboard in; `baton token new` makes one for another machine)",
            ));
        }
    }
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_hosts() {
        for ok in [
            "127.0.0.1:7878",
            "localhost:80",
            "[::1]:7878",
            "localhost",
            "127.0.0.1",
        ] {
            assert!(super::loopback_host(ok), "{ok}");
        }
        for bad in [
            "attacker.com:7878",
            "127.0.0.1.evil.com",
            "10.0.0.1:7878",
            "",
        ] {
            assert!(!super::loopback_host(bad), "{bad}");
        }
    }
}
