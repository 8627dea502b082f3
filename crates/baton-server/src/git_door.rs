//! The repository offered to one pod over git's smart HTTP: `git
//! http-backend` does the protocol (baton does not reimplement git); this
//! door checks the attempt's token and hides every ref but the ones the
//! attempt may use (`transfer.hideRefs`: a hidden ref can be neither
//! fetched nor pushed).
//!
//!   GET  /git/<token>/info/refs?service=git-upload-pack
//!   POST /git/<token>/git-upload-pack | git-receive-pack
//!   GET  /git/<token>/baton-input?after=N
//!
//! `<token>` may be `~`, the token then in an `Authorization: Bearer`
//! header (what the attempt's git sends: its command lines, which other
//! users of a host see, never hold the token).
//!
//! The last is not git's: the lines the agent is sent while it runs (a
//! message, a steer), after the first N, waited for a while when there
//! are none yet (a long poll); a JSON array of strings.

use axum::body::{to_bytes, Body};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, Response, StatusCode};
use axum::routing::any;
use axum::Router;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// What one attempt may do with the repository.
#[derive(Debug, Clone)]
pub struct GitDoor {
    /// The repository's git directory.
    pub git_dir: PathBuf,
    pub token: String,
    /// The one branch it may fetch (its task's).
    pub fetch: String,
    /// The refs it may push: everything under this prefix (its task's
    /// attempt refs).
    pub push_prefix: String,
    /// Lines for the agent's input, as its follower hears them.
    pub input: Arc<Input>,
}

/// Lines for a remote agent's input, in order; a line is never taken back.
#[derive(Debug)]
pub struct Input {
    lines: std::sync::Mutex<Vec<String>>,
    added: tokio::sync::Notify,
    /// This door's, so an attempt that asked an earlier one (a baton that
    /// died) counts its lines anew.
    epoch: String,
}

impl Default for Input {
    fn default() -> Input {
        Input {
            lines: Default::default(),
            added: Default::default(),
            epoch: crate::new_token()[..16].to_string(),
        }
    }
}

/// How long a poll for input waits when there is none.
const INPUT_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

impl Input {
    pub fn push(&self, line: String) {
        if let Ok(mut l) = self.lines.lock() {
            l.push(line);
        }
        self.added.notify_waiters();
    }

    /// The lines after the first `n`, waiting up to `wait` for one.
    pub async fn after(&self, n: usize, wait: std::time::Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let added = self.added.notified();
            let now: Vec<String> = match self.lines.lock() {
                Ok(l) => l.iter().skip(n).cloned().collect(),
                Err(_) => return Vec::new(),
            };
            if !now.is_empty() {
                return now;
            }
            if tokio::time::timeout_at(deadline, added).await.is_err() {
                return Vec::new();
            }
        }
    }
}

/// Serves the door until the listener's task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, door: GitDoor) -> std::io::Result<()> {
    let app = Router::new()
        .route("/git/{token}/{*rest}", any(handle))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(Arc::new(door));
    axum::serve(listener, app).await
}

fn status(code: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(Body::from(format!("{text}\n")));
    *r.status_mut() = code;
    r
}

async fn handle(
    State(door): State<Arc<GitDoor>>,
    Path((token, rest)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response<Body> {
    // `~`: the token is in the `Authorization: Bearer` header instead (a
    // URL in a git command line shows in `ps` to every user of the
    // machine; a header from the repository's config does not).
    let given = match token.as_str() {
        baton_core::executor::BEARER_PATH => bearer(&headers).unwrap_or_default(),
        _ => token,
    };
    if !same(given.as_bytes(), door.token.as_bytes()) {
        return status(StatusCode::NOT_FOUND, "no such repository");
    }
    if rest == "baton-input" {
        let after = query
            .as_deref()
            .and_then(|q| q.strip_prefix("after="))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        let lines = door.input.after(after, INPUT_WAIT).await;
        let answer = serde_json::json!({ "epoch": door.input.epoch, "lines": lines });
        let mut r = Response::new(Body::from(answer.to_string()));
        r.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        );
        return r;
    }
    let allowed = matches!(
        rest.as_str(),
        "info/refs" | "git-upload-pack" | "git-receive-pack"
    );
    if !allowed {
        return status(StatusCode::NOT_FOUND, "not a git smart HTTP path");
    }
    let body = match to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            return status(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the request: {e}"),
            )
        }
    };
    match backend(&door, &rest, query.as_deref(), &method, &headers, &body).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("git http-backend: {e}");
            status(StatusCode::INTERNAL_SERVER_ERROR, &e)
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    Some(value.strip_prefix("Bearer ")?.trim().to_string())
}

/// Constant time: a token is not guessed a byte at a time.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The git configuration of the door: receive-pack on, every ref hidden
/// but the attempt's own (the last matching rule wins).
fn config(door: &GitDoor) -> Vec<(String, String)> {
    vec![
        ("http.receivepack".into(), "true".into()),
        ("uploadpack.hideRefs".into(), "refs/".into()),
        (
            "uploadpack.hideRefs".into(),
            format!("!refs/heads/{}", door.fetch),
        ),
        ("receive.hideRefs".into(), "refs/".into()),
        ("receive.hideRefs".into(), format!("!{}", door.push_prefix)),
        // HEAD names the user's branch: nothing for a pod.
        ("uploadpack.hideRefs".into(), "HEAD".into()),
        // A pod's push runs none of the repository's hooks (a post-receive
        // that deploys is the user's, not an attempt's) and starts no
        // maintenance in it (baton's own git commands do neither).
        ("core.hooksPath".into(), "/dev/null".into()),
        ("receive.autogc".into(), "false".into()),
    ]
}

async fn backend(
    door: &GitDoor,
    rest: &str,
    query: Option<&str>,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response<Body>, String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let mut cmd = tokio::process::Command::new("git");
    // Protocol v0 only (the client's Git-Protocol header is not passed
    // on): v2's fetch serves any object by its id, hidden refs' too.
    cmd.arg("http-backend")
        .env_remove("GIT_PROTOCOL")
        .env("GIT_PROJECT_ROOT", &door.git_dir)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", format!("/{rest}"))
        .env("REQUEST_METHOD", method.as_str())
        .env("QUERY_STRING", query.unwrap_or_default())
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("REMOTE_USER", "baton-pod")
        .env("REMOTE_ADDR", "pod");
    let cfg = config(door);
    cmd.env("GIT_CONFIG_COUNT", cfg.len().to_string());
    for (i, (k, v)) in cfg.iter().enumerate() {
        cmd.env(format!("GIT_CONFIG_KEY_{i}"), k)
            .env(format!("GIT_CONFIG_VALUE_{i}"), v);
    }
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run git http-backend: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let input = body.to_vec();
        tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
        });
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("git http-backend: {e}"))?;
    if !out.stderr.is_empty() {
        tracing::debug!("git http-backend: {}", String::from_utf8_lossy(&out.stderr));
    }
    cgi_response(&out.stdout)
}

/// A CGI program's output (headers, a blank line, the body) as a response.
fn cgi_response(out: &[u8]) -> Result<Response<Body>, String> {
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| {
            out.windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, i + 2))
        })
        .ok_or("git http-backend wrote no headers")?;
    let head = String::from_utf8_lossy(&out[..split.0]);
    let mut resp = Response::new(Body::from(out[split.1..].to_vec()));
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split(' ').next().and_then(|c| c.parse::<u16>().ok());
            if let Some(s) = code.and_then(|c| StatusCode::from_u16(c).ok()) {
                *resp.status_mut() = s;
            }
        } else if let (Ok(n), Ok(v)) = (
            axum::http::HeaderName::from_bytes(name.trim().as_bytes()),
            axum::http::HeaderValue::from_str(value),
        ) {
            resp.headers_mut().append(n, v);
        }
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cgi_answer_keeps_its_status_headers_and_body() {
        let r =
            cgi_response(b"Status: 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nno").unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(r.headers()["content-type"], "text/plain");
        assert!(cgi_response(b"no headers at all").is_err());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
