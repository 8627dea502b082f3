//! `POST /api/hooks/github`: GitHub's webhooks for the served plan's GitHub
//! sources. A delivery is taken only when its `X-Hub-Signature-256` is the
//! HMAC-SHA256 of its raw body under a source's webhook secret (compared in
//! constant time); it then wakes that source, which looks at its issues at
//! once instead of at its next poll. Anything else is refused and changes
//! nothing. This route is open to callers without a baton token: the
//! signature is its access.

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// A GitHub source that takes webhooks.
pub struct Hook {
    /// `owner/name`.
    pub repo: String,
    pub secret: String,
    /// Wakes the source's poller.
    pub wake: Arc<tokio::sync::Notify>,
}

pub async fn github(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signature = header("x-hub-signature-256").unwrap_or_default();
    let hooks = state.hooks.lock().map(|h| h.len()).unwrap_or(0);
    if hooks == 0 {
        return Err(ApiError::not_found(
            "no [[source]] of the served plan takes GitHub webhooks (set its webhook_secret_env)",
        ));
    }
    let signed: Vec<(String, Arc<tokio::sync::Notify>)> = state
        .hooks
        .lock()
        .map(|hooks| {
            let ok = hooks
                .iter()
                .filter(|h| signature_ok(&h.secret, &body, signature));
            ok.map(|h| (h.repo.clone(), h.wake.clone())).collect()
        })
        .unwrap_or_default();
    if signed.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the delivery's X-Hub-Signature-256 is not the HMAC-SHA256 of its body under any source's webhook secret",
        ));
    }
    let event = header("x-github-event").unwrap_or_default();
    if event == "ping" {
        return Ok((StatusCode::OK, Json(json!({"ok": true, "event": "ping"}))));
    }
    let payload: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("the delivery is not JSON: {e} (set the webhook's content type to application/json)")))?;
    let repo = payload
        .pointer("/repository/full_name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let woken: Vec<&String> = signed
        .iter()
        .filter(|(r, _)| {
            r.eq_ignore_ascii_case(repo) && matches!(event, "issues" | "issue_comment")
        })
        .map(|(r, wake)| {
            wake.notify_one();
            r
        })
        .collect();
    let taken = !woken.is_empty();
    let status = if taken {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({"ok": true, "event": event, "taken": taken})),
    ))
}

/// Whether `header` (`sha256=<hex>`) signs `body` under `secret`.
fn signature_ok(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex) = header.strip_prefix("sha256=") else {
        return false;
    };
    let want: String = hmac_sha256(secret.as_bytes(), body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // Constant time: every byte is looked at whatever differs.
    hex.len() == want.len()
        && hex
            .bytes()
            .zip(want.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a.to_ascii_lowercase() ^ b))
            == 0
}

/// HMAC (RFC 2104) over SHA-256.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_as_github_makes_them() {
        // GitHub's documented example (docs: validating webhook deliveries).
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(signature_ok(
            "It's a Secret to Everybody",
            b"Hello, World!",
            sig
        ));
        assert!(!signature_ok("another secret", b"Hello, World!", sig));
        assert!(!signature_ok(
            "It's a Secret to Everybody",
            b"Hello, World?",
            sig
        ));
        assert!(!signature_ok(
            "It's a Secret to Everybody",
            b"Hello, World!",
            &sig[..20]
        ));
        assert!(!signature_ok(
            "It's a Secret to Everybody",
            b"Hello, World!",
            ""
        ));
        // A key longer than a block is hashed first (RFC 4231, case 6).
        let long = [0xaau8; 131];
        let mac = hmac_sha256(
            &long,
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }
}
