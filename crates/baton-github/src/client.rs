//! GitHub's REST API over HTTP/1.1 (TLS by rustls with the system's roots;
//! plain HTTP for a stand-in on 127.0.0.1): the headers GitHub asks for,
//! pages followed through the `link` header, and its errors said as
//! [`TrackerError`]s (credentials, rate limits with when to try again).

use baton_core::tracker::TrackerError;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::time::Duration;

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// One call's bound: GitHub answers in well under a second.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Bodies larger than this are not GitHub's answers to these calls.
const MAX_BODY: usize = 16 * 1024 * 1024;

pub(crate) struct Client {
    api: String,
    token: String,
    http: hyper_util::client::legacy::Client<Https, Full<Bytes>>,
}

/// Percent-encodes a query value or a path segment.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Client {
    pub fn new(api: &str, token: String) -> Result<Client, String> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| format!("cannot read the system's certificate roots: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(https);
        Ok(Client {
            api: api.trim_end_matches('/').to_string(),
            token,
            http,
        })
    }

    /// GETs `path` and every page after it (`rel="next"`), up to `max`
    /// pages; the items of every page, in order.
    pub async fn get_pages(&self, path: &str, max: usize) -> Result<Vec<Value>, TrackerError> {
        let mut url = format!("{}{path}", self.api);
        let mut items = Vec::new();
        for _ in 0..max {
            let (body, next) = self.call(Method::GET, &url, None).await?;
            match body {
                Value::Array(page) => items.extend(page),
                other => {
                    return Err(TrackerError::Other(format!(
                        "GitHub answered GET {url} with {} instead of a list",
                        kind(&other)
                    )))
                }
            }
            match next {
                Some(n) => url = n,
                None => break,
            }
        }
        Ok(items)
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, TrackerError> {
        let url = format!("{}{path}", self.api);
        self.call(Method::POST, &url, Some(body))
            .await
            .map(|(v, _)| v)
    }

    pub async fn get(&self, path: &str) -> Result<Value, TrackerError> {
        let url = format!("{}{path}", self.api);
        self.call(Method::GET, &url, None).await.map(|(v, _)| v)
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, TrackerError> {
        let url = format!("{}{path}", self.api);
        self.call(Method::PUT, &url, Some(body))
            .await
            .map(|(v, _)| v)
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, TrackerError> {
        let url = format!("{}{path}", self.api);
        self.call(Method::PATCH, &url, Some(body))
            .await
            .map(|(v, _)| v)
    }

    /// A text GET that GitHub answers with a redirect to where the text is
    /// (a job's log): the redirect is followed once, without the token (the
    /// place it names is signed for this request alone).
    pub async fn get_text(&self, path: &str) -> Result<String, TrackerError> {
        let url = format!("{}{path}", self.api);
        let what = format!("GET {url}");
        let (status, headers, bytes) = self.send(Method::GET, &url, None, true).await?;
        let (status, headers, bytes) = if status.is_redirection() {
            let to = headers
                .get("location")
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| TrackerError::Other(format!("{what}: a redirect to nowhere")))?
                .to_string();
            self.send(Method::GET, &to, None, false).await?
        } else {
            (status, headers, bytes)
        };
        if status.is_success() {
            return Ok(String::from_utf8_lossy(&bytes).into_owned());
        }
        Err(refusal(status, &headers, &json_of(&bytes), &what))
    }

    /// One call: its JSON body and the next page's URL, if any.
    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(Value, Option<String>), TrackerError> {
        let what = format!("{method} {url}");
        let (status, headers, bytes) = self.send(method, url, body, true).await?;
        let json = json_of(&bytes);
        if status.is_success() {
            let next = headers
                .get("link")
                .and_then(|l| l.to_str().ok())
                .and_then(next_link);
            return Ok((json, next));
        }
        Err(refusal(status, &headers, &json, &what))
    }

    /// One request, with the token when `auth`: its status, headers and
    /// whole body, within the bound.
    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        auth: bool,
    ) -> Result<(StatusCode, hyper::HeaderMap, Bytes), TrackerError> {
        let what = format!("{method} {url}");
        let mut req = Request::builder()
            .method(method)
            .uri(url)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .header("user-agent", concat!("baton/", env!("CARGO_PKG_VERSION")))
            .header("content-type", "application/json");
        if auth {
            req = req.header("authorization", format!("Bearer {}", self.token));
        }
        let req = req
            .body(Full::new(Bytes::from(
                body.map(Value::to_string).unwrap_or_default(),
            )))
            .map_err(|e| TrackerError::Other(format!("{what}: {e}")))?;
        // The whole answer, body included, within the bound: a stalled
        // body would otherwise hold the caller for good.
        let answer = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| format!("{what}: {}", chain(&e)))?;
            let (status, headers) = (resp.status(), resp.headers().clone());
            let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY);
            let bytes = body
                .collect()
                .await
                .map_err(|e| format!("{what}: reading the answer: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, headers, bytes))
        };
        tokio::time::timeout(CALL_TIMEOUT, answer)
            .await
            .map_err(|_| TrackerError::Other(format!("{what}: no whole answer in 30 s")))?
            .map_err(TrackerError::Other)
    }
}

/// A body as JSON (text that is not JSON is kept, clipped, as a string).
fn json_of(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes).unwrap_or(Value::String(
        String::from_utf8_lossy(bytes).chars().take(200).collect(),
    ))
}

/// An error and its causes, which hyper keeps apart.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(&format!(": {c}"));
        cause = c.source();
    }
    out
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Object(_) => "an object",
        Value::String(_) => "text",
        _ => "a value",
    }
}

/// GitHub's refusal as a [`TrackerError`]: credentials, a rate limit (when
/// to try again: `retry-after` seconds, else `x-ratelimit-reset`), or else
/// its status and message.
fn refusal(
    status: StatusCode,
    headers: &hyper::HeaderMap,
    body: &Value,
    what: &str,
) -> TrackerError {
    let message = body
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("no message");
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
    };
    let limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN
            && (header("x-ratelimit-remaining") == Some(0) || header("retry-after").is_some()));
    if limited {
        let now = baton_core::clock::now_ms();
        let until_ms = match (header("retry-after"), header("x-ratelimit-reset")) {
            (Some(secs), _) => now + secs * 1000,
            (None, Some(reset)) => reset * 1000,
            // GitHub's advice when it says neither: wait a minute.
            (None, None) => now + 60_000,
        };
        return TrackerError::Limited {
            why: format!("GitHub's rate limit ({message})"),
            until_ms,
        };
    }
    if status == StatusCode::UNAUTHORIZED {
        return TrackerError::Credentials(format!("GitHub refused the token: {message}"));
    }
    TrackerError::Other(format!("GitHub answered {status} to {what}: {message}"))
}

/// The `rel="next"` URL of a `link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        is_next.then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_is_read_from_a_link_header_in_any_order() {
        let link = r#"<https://api.github.com/repositories/1/issues?page=2>; rel="prev", <https://api.github.com/repositories/1/issues?page=4>; rel="next", <https://api.github.com/repositories/1/issues?page=515>; rel="last""#;
        assert_eq!(
            next_link(link).as_deref(),
            Some("https://api.github.com/repositories/1/issues?page=4")
        );
        assert_eq!(next_link(r#"<https://x/?page=1>; rel="first""#), None);
    }

    #[test]
    fn rate_limits_say_when_to_try_again() {
        let mut h = hyper::HeaderMap::new();
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        h.insert("x-ratelimit-reset", "1900000000".parse().unwrap());
        let body = serde_json::json!({"message": "API rate limit exceeded"});
        let e = refusal(StatusCode::FORBIDDEN, &h, &body, "GET /x");
        assert_eq!(
            e,
            TrackerError::Limited {
                why: "GitHub's rate limit (API rate limit exceeded)".into(),
                until_ms: 1_900_000_000_000
            }
        );
        let plain = refusal(
            StatusCode::FORBIDDEN,
            &hyper::HeaderMap::new(),
            &body,
            "GET /x",
        );
        assert!(matches!(plain, TrackerError::Other(m) if m.contains("403")));
        assert_eq!(encode("good first issue"), "good%20first%20issue");
    }
}
