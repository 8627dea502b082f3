//! Webhooks the stand-in delivers as GitHub does (the `webhooks` of its
//! OpenAPI description): `POST` to the hook's URL with `Content-Type:
//! application/json`, `X-GitHub-Event`, `X-GitHub-Delivery` and
//! `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body under the
//! secret>`. Events: `check_run` `completed` (with the pull requests whose
//! head the check ran on), `pull_request_review` `submitted` and
//! `pull_request_review_comment` `created`. A watcher thread runs CI on
//! each open pull request's new head as it is pushed (the remote is a git
//! repository on disk, so pushes are seen by looking) and announces each
//! check when it completes, after `ci_takes`.

use super::{lock, State};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where deliveries go.
#[derive(Clone, Debug)]
pub(super) struct Hook {
    pub url: String,
    pub secret: String,
}

/// A delivery made (or due, with no hook set: `status` 0), for tests and
/// for the benchmark's clock.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub event: String,
    pub body: Value,
    /// The receiver's HTTP status; 0 when there was no hook to send it to
    /// or it could not be reached.
    pub status: u16,
    pub at: Instant,
}

/// A delivery due: its event and body.
pub(super) type Due = (&'static str, Value);

/// Sends each delivery due to the hook, if any, and records it.
pub(super) fn deliver(state: &Mutex<State>, due: Vec<Due>) {
    if due.is_empty() {
        return;
    }
    let hook = lock(state).hook.clone();
    for (event, body) in due {
        let text = body.to_string();
        let status = match &hook {
            Some(h) => {
                let id = lock(state).deliveries.len() + 1;
                post(h, event, id, &text).unwrap_or(0)
            }
            None => 0,
        };
        lock(state).deliveries.push(Delivery {
            event: event.into(),
            body,
            status,
            at: Instant::now(),
        });
    }
}

/// Looks at the remote every `every` until `stop`: new heads get their CI
/// run, completed checks are announced.
pub(super) fn watch(
    state: Arc<Mutex<State>>,
    url: String,
    repo: String,
    stop: Arc<AtomicBool>,
    every: Duration,
) {
    while !stop.load(Ordering::Relaxed) {
        let due = lock(&state).pulls.watch(&url, &repo);
        deliver(&state, due);
        std::thread::sleep(every);
    }
}

/// The payload's `repository` and `sender`.
pub(super) fn around(repo: &str, sender: &str) -> Value {
    json!({
        "repository": {"id": 1, "node_id": "R_1", "name": repo.split('/').nth(1), "full_name": repo,
                       "private": true, "default_branch": "main"},
        "sender": super::user(sender),
    })
}

/// A pull request's minimal shape (`pull-request-minimal`), as check runs
/// and review events carry it.
pub(super) fn minimal_pull(n: u64, head: &str, sha: &str, base: &str) -> Value {
    let repo = json!({"id": 1, "url": "", "name": "app"});
    json!({"id": 1000 + n, "number": n, "url": "", "state": "open",
           "head": {"ref": head, "sha": sha, "repo": repo}, "base": {"ref": base, "sha": "", "repo": repo}})
}

/// `a`'s keys and `b`'s together.
pub(super) fn merged(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// One delivery over HTTP/1.1; the answer's status.
fn post(hook: &Hook, event: &str, id: usize, body: &str) -> Option<u16> {
    let rest = hook.url.strip_prefix("http://")?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let signature: String = hmac_sha256(hook.secret.as_bytes(), body.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: GitHub-Hookshot/stand-in\r\nContent-Type: application/json\r\nX-GitHub-Event: {event}\r\nX-GitHub-Delivery: 00000000-0000-0000-0000-{id:012}\r\nX-Hub-Signature-256: sha256={signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}

/// HMAC (RFC 2104) over SHA-256, as GitHub signs deliveries.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, msg).as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    #[test]
    fn signs_as_rfc_4231_says() {
        // RFC 4231, test case 2.
        let mac = super::hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
