//! `POST /api/hooks/github`: GitHub's webhooks for the served plan's GitHub
//! sources and for the pull requests the server follows. A delivery is
//! taken only when its `X-Hub-Signature-256` is the HMAC-SHA256 of its raw
//! body under a hook's secret (compared in constant time); it then wakes
//! the hooks it concerns: a source for its issues' events, a follower for
//! its pull request's checks, reviews, review comments and comments. They
//! look at once instead of at their next poll. Anything else is refused and
//! changes nothing. This route is open to callers without a baton token:
//! the signature is its access.

use crate::error::ApiError;
use crate::sign::hmac_sha256;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

/// A GitHub source, or a followed pull request, that takes webhooks.
pub struct Hook {
    /// `owner/name`.
    pub repo: String,
    pub secret: String,
    /// Wakes the source's poller, or the pull request's follower.
    pub wake: Arc<tokio::sync::Notify>,
    pub wants: Wants,
}

/// The secret in `$var`, if it is set and not empty.
pub(crate) fn secret_in(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|s| !s.is_empty())
}

impl Hook {
    /// Takes deliveries for `repo` signed with the secret in `$var`, waking
    /// `wake` for those it `wants`, from now on. Err: the secret is not
    /// set; `who` says whose it is.
    pub fn listen(
        state: &AppState,
        repo: &str,
        var: &str,
        wake: &Arc<tokio::sync::Notify>,
        wants: Wants,
        who: &str,
    ) -> Result<(), String> {
        let secret = secret_in(var).ok_or_else(|| {
            format!("{who} takes webhooks signed with the secret in ${var}, which is not set")
        })?;
        let hook = Hook {
            repo: repo.to_string(),
            secret,
            wake: wake.clone(),
            wants,
        };
        if let Ok(mut hooks) = state.hooks.lock() {
            hooks.push(hook);
        }
        Ok(())
    }

    /// Stops the deliveries that wake `wake`.
    pub fn forget(state: &AppState, wake: &Arc<tokio::sync::Notify>) {
        if let Ok(mut hooks) = state.hooks.lock() {
            hooks.retain(|h| !Arc::ptr_eq(&h.wake, wake));
        }
    }
}

/// Which deliveries wake a hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wants {
    /// A source: its issues' events.
    Issues,
    /// A follower: the events of pull request N.
    Pull(u64),
}

impl Wants {
    /// Whether a delivery of `event` with `payload` concerns this hook.
    fn wakes(self, event: &str, payload: &Value) -> bool {
        let number = |at: &str| payload.pointer(at).and_then(Value::as_u64);
        let in_list = |at: &str, n: u64| {
            let list = payload.pointer(at).and_then(Value::as_array);
            list.is_some_and(|l| {
                l.iter()
                    .any(|p| p.get("number").and_then(Value::as_u64) == Some(n))
            })
        };
        match self {
            Wants::Issues => matches!(event, "issues" | "issue_comment"),
            Wants::Pull(n) => match event {
                "pull_request"
                | "pull_request_review"
                | "pull_request_review_comment"
                | "pull_request_review_thread" => number("/pull_request/number") == Some(n),
                "check_run" => in_list("/check_run/pull_requests", n),
                "check_suite" => in_list("/check_suite/pull_requests", n),
                "issue_comment" => number("/issue/number") == Some(n),
                // A commit status names a commit, not a pull request.
                "status" => true,
                _ => false,
            },
        }
    }
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
            "nothing here takes GitHub webhooks: set webhook_secret_env on a [[source]] or in [land] of the served plan",
        ));
    }
    let signed: Vec<(String, Wants, Arc<tokio::sync::Notify>)> = state
        .hooks
        .lock()
        .map(|hooks| {
            let ok = hooks
                .iter()
                .filter(|h| signature_ok(&h.secret, &body, signature));
            ok.map(|h| (h.repo.clone(), h.wants, h.wake.clone()))
                .collect()
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
        .filter(|(r, wants, _)| r.eq_ignore_ascii_case(repo) && wants.wakes(event, &payload))
        .map(|(r, _, wake)| {
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
pub(crate) fn signature_ok(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex) = header.strip_prefix("sha256=") else {
        return false;
    };
    let want = crate::sign::hex(&hmac_sha256(secret.as_bytes(), body));
    crate::sign::same(&hex.to_ascii_lowercase(), &want)
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

#[cfg(test)]
mod wants_tests {
    use super::Wants;
    use serde_json::json;

    #[test]
    fn a_follower_wakes_for_its_own_pull_request_only() {
        let check = |n: u64| json!({"check_run": {"pull_requests": [{"number": n}]}});
        let review = |n: u64| json!({"pull_request": {"number": n}});
        let me = Wants::Pull(7);
        assert!(me.wakes("check_run", &check(7)));
        assert!(!me.wakes("check_run", &check(8)));
        assert!(!me.wakes("check_run", &json!({"check_run": {"pull_requests": []}})));
        assert!(me.wakes("pull_request_review", &review(7)));
        assert!(me.wakes("pull_request_review_comment", &review(7)));
        assert!(!me.wakes("pull_request_review", &review(70)));
        assert!(me.wakes("issue_comment", &json!({"issue": {"number": 7}})));
        assert!(me.wakes("status", &json!({"sha": "abc"})));
        assert!(!me.wakes("issues", &json!({"issue": {"number": 7}})));
        assert!(!me.wakes("push", &json!({})));
    }

    #[test]
    fn a_source_wakes_for_issues_and_their_comments() {
        let any = json!({"issue": {"number": 3}});
        assert!(Wants::Issues.wakes("issues", &any));
        assert!(Wants::Issues.wakes("issue_comment", &any));
        assert!(!Wants::Issues.wakes("check_run", &any));
    }
}
