//! One request through the gateway: its token checked, forwarded to its
//! provider with the real key, and its answer streamed back untouched
//! while its usage is read on the way (a limit said by the provider is
//! told at once).

use crate::account::{Account, Wait, DEFAULT_HOLD};
use crate::route;
use crate::tokens::{Grant, Tokens};
use crate::usage::Scanner;
use baton_core::gateway::{AccountLimits, Provider, Upstream, Wire, MAX_LOGGED_BODY};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The biggest request body taken (a long conversation is a few MB).
const MAX_REQUEST: usize = 32 * 1024 * 1024;
/// How much of a limit's answer is read for its message.
const MAX_LIMIT_BODY: usize = 64 * 1024;
/// The longest a provider may take to begin its answer (a model thinking
/// long before a whole, unstreamed answer).
const UPSTREAM_HEAD: Duration = Duration::from_secs(15 * 60);
/// The longest a limit's answer may take to arrive whole.
const LIMIT_BODY_TIME: Duration = Duration::from_secs(10);
/// The longest `retry-after` the gateway holds an account for.
const MAX_HOLD_SECS: u64 = 24 * 60 * 60;

pub type Answer = Response<BoxBody<Bytes, hyper::Error>>;
pub type Upstreams = Client<HttpsConnector<crate::quickack::QuickAckConnector>, Full<Bytes>>;

pub struct Gate {
    pub tokens: Tokens,
    pub providers: BTreeMap<Provider, Upstream>,
    /// What each account may do (the plan's), and each one's state.
    pub limits: BTreeMap<String, AccountLimits>,
    pub accounts: std::sync::Mutex<HashMap<(Provider, String), Arc<Account>>>,
    pub client: Upstreams,
    /// Tell each request's and answer's body (`log_bodies`).
    pub log_bodies: bool,
}

impl Gate {
    /// The account `name` at `provider` (made on first use).
    pub fn account(&self, provider: Provider, name: &str) -> Arc<Account> {
        let mut all = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let limits = self.limits.get(name).copied().unwrap_or_default();
        all.entry((provider, name.to_string()))
            .or_insert_with(|| Arc::new(Account::new(limits)))
            .clone()
    }
}

/// Waits until the request's account lets it start, telling the attempt
/// while it waits; its place among the account's requests in flight.
async fn admitted(grant: &Grant) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let account = &grant.account;
    let (at, why) = account.start_at(tokio::time::Instant::now());
    let mut waited = false;
    if let Some(why) = why {
        let words = match why {
            Wait::Held => "the provider limited its account",
            Wait::Rate => "its account's rpm",
            Wait::Tokens => "its account's tpm",
        };
        let ms = at
            .saturating_duration_since(tokio::time::Instant::now())
            .as_millis() as u64;
        let _ = grant.sink.send(Wire::Queued {
            why: words.to_string(),
            ms,
        });
        tokio::time::sleep_until(at).await;
        waited = true;
    }
    if account.slots_full() {
        let _ = grant.sink.send(Wire::Queued {
            why: "its account's concurrency".to_string(),
            ms: 0,
        });
        waited = true;
    }
    let slot = account.slot().await;
    if waited {
        let _ = grant.sink.send(Wire::Going);
    }
    slot
}

/// A whole answer of the gateway's own.
fn own(status: StatusCode, body: String) -> Answer {
    let body = Full::new(Bytes::from(body))
        .map_err(|never: Infallible| match never {})
        .boxed();
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn refuse(provider: Provider, status: StatusCode, message: &str) -> Answer {
    own(
        status,
        route::error_body(provider, status.as_u16(), message),
    )
}

pub async fn handle(gate: &Gate, req: Request<Incoming>) -> Result<Answer, Infallible> {
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let Some((provider, path, query)) = route::split(target) else {
        let body = serde_json::json!({"error": "baton gateway: no provider at this path (/anthropic, /openai, /gemini)"});
        return Ok(own(StatusCode::NOT_FOUND, body.to_string()));
    };
    let Some(token) = route::token(provider, req.headers(), query.as_deref()) else {
        let why = "baton gateway: no token (the agent's key is its attempt's token)";
        return Ok(refuse(provider, StatusCode::UNAUTHORIZED, why));
    };
    let Some(grant) = gate.tokens.get(&token) else {
        let why = "baton gateway: this token is not (or no longer) an attempt's";
        return Ok(refuse(provider, StatusCode::UNAUTHORIZED, why));
    };
    if grant.provider != provider {
        let why = format!("baton gateway: this token is for {}", grant.provider);
        return Ok(refuse(provider, StatusCode::FORBIDDEN, &why));
    }
    if let Some(why) = &grant.refused {
        let _ = grant.sink.send(Wire::Refused {
            provider,
            why: why.clone(),
        });
        return Ok(refuse(
            provider,
            StatusCode::FORBIDDEN,
            &format!("baton: {why}"),
        ));
    }
    let Ok(permit) = grant.in_flight.clone().try_acquire_owned() else {
        let why = format!(
            "baton gateway: at most {} requests of one agent at once",
            crate::tokens::MAX_IN_FLIGHT
        );
        return Ok(refuse(provider, StatusCode::TOO_MANY_REQUESTS, &why));
    };
    let slot = admitted(&grant).await;
    Ok(forward(gate, grant, req, (provider, path, query), (permit, slot)).await)
}

async fn forward(
    gate: &Gate,
    grant: Grant,
    req: Request<Incoming>,
    (provider, path, query): (Provider, String, Option<String>),
    permit: Permits,
) -> Answer {
    let started = Instant::now();
    let Some(upstream) = grant.upstream.as_ref().or(gate.providers.get(&provider)) else {
        let why = format!("baton gateway: no upstream for {provider}");
        return refuse(provider, StatusCode::BAD_GATEWAY, &why);
    };
    let query = match provider {
        Provider::Gemini => route::query_without_key(query.as_deref()),
        _ => query,
    };
    let uri = match &query {
        Some(q) => format!("{}{path}?{q}", upstream.url.trim_end_matches('/')),
        None => format!("{}{path}", upstream.url.trim_end_matches('/')),
    };
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_REQUEST).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let why = format!("baton gateway: cannot read the request: {e}");
            return refuse(provider, StatusCode::PAYLOAD_TOO_LARGE, &why);
        }
    };
    let model = route::model_of(provider, &path, &body);
    let logged = gate.log_bodies.then(|| {
        let kept = &body[..body.len().min(MAX_LOGGED_BODY)];
        (String::from_utf8_lossy(kept).into_owned(), Vec::new())
    });
    let mut up = Request::new(Full::new(body));
    *up.method_mut() = parts.method;
    *up.headers_mut() = route::upstream_headers(provider, &parts.headers, &grant.credential);
    match uri.parse() {
        Ok(u) => *up.uri_mut() = u,
        Err(e) => {
            // The address may hold a proxy's credentials: not said.
            let why =
                format!("baton gateway: the upstream of {provider} is no valid address ({e})");
            return refuse(provider, StatusCode::BAD_GATEWAY, &why);
        }
    }
    let sent = tokio::time::timeout(UPSTREAM_HEAD, gate.client.request(up)).await;
    let sent = sent.map_err(|_| "it began no answer in time".to_string());
    let answer = match sent.and_then(|r| r.map_err(|e| e.to_string())) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!("gateway: {}: no answer from {provider}: {e}", grant.label);
            let _ = grant.sink.send(Wire::Answered {
                provider,
                model,
                status: 502,
                usage: None,
                ms: started.elapsed().as_millis() as u64,
            });
            let why = format!("baton gateway: no answer from {provider}: {e}");
            return refuse(provider, StatusCode::BAD_GATEWAY, &why);
        }
    };
    let status = answer.status().as_u16();
    tracing::debug!("gateway: {} {provider} {path} -> {status}", grant.label);
    if is_limit(status) {
        return limited(grant, provider, answer).await;
    }
    let content_type = answer
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (parts, body) = answer.into_parts();
    let tee = Tee {
        _permit: permit,
        inner: body,
        told: Some(Told {
            scanner: Scanner::new(provider, &content_type),
            sink: grant.sink,
            account: grant.account,
            provider,
            model,
            status,
            started,
            logged,
        }),
    };
    let mut out = Response::new(tee.boxed());
    *out.status_mut() = parts.status;
    *out.headers_mut() = route::downstream_headers(&parts.headers);
    out
}

/// A request's place among its agent's, and its account's, in flight.
type Permits = (
    tokio::sync::OwnedSemaphorePermit,
    Option<tokio::sync::OwnedSemaphorePermit>,
);

/// A provider's limit: 429, and Anthropic's 529 (overloaded).
fn is_limit(status: u16) -> bool {
    status == 429 || status == 529
}

/// Tells the attempt it was limited, and passes the answer on as it was.
async fn limited(grant: Grant, provider: Provider, answer: Response<Incoming>) -> Answer {
    let status = answer.status().as_u16();
    let retry_after = answer
        .headers()
        .get(hyper::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        // A day at most: a wild header must not hold an account for ever
        // (or overflow the clock).
        .map(|s| s.min(MAX_HOLD_SECS));
    let (parts, body) = answer.into_parts();
    let read = Limited::new(body, MAX_LIMIT_BODY).collect();
    let body = match tokio::time::timeout(LIMIT_BODY_TIME, read).await {
        Ok(Ok(b)) => b.to_bytes(),
        _ => Bytes::new(),
    };
    let message = String::from_utf8_lossy(&body).into_owned();
    // Every agent of the account waits it out here, not against the provider.
    let hold = retry_after.map_or(DEFAULT_HOLD, std::time::Duration::from_secs);
    grant.account.hold(tokio::time::Instant::now(), hold);
    let _ = grant.sink.send(Wire::Limited {
        provider,
        status,
        retry_after,
        message,
    });
    let full = Full::new(body)
        .map_err(|never: Infallible| match never {})
        .boxed();
    let mut out = Response::new(full);
    *out.status_mut() = parts.status;
    let mut headers = route::downstream_headers(&parts.headers);
    headers.remove(hyper::header::CONTENT_LENGTH);
    *out.headers_mut() = headers;
    out
}

/// What the answer's end tells the attempt.
struct Told {
    scanner: Scanner,
    sink: tokio::sync::mpsc::UnboundedSender<Wire>,
    account: Arc<Account>,
    provider: Provider,
    model: Option<String>,
    status: u16,
    started: Instant,
    /// The request's body, and the answer's so far (`log_bodies`).
    logged: Option<(String, Vec<u8>)>,
}

/// The answer's body passed on frame by frame, its usage read on the way;
/// told once, at its end or when the agent hangs up.
struct Tee {
    /// Its place among its agent's and its account's requests in flight,
    /// until it ends.
    _permit: Permits,
    inner: Incoming,
    told: Option<Told>,
}

impl Tee {
    fn tell(&mut self) {
        let Some(t) = self.told.take() else {
            return;
        };
        let (usage, said) = t.scanner.finish();
        if let Some(u) = &usage {
            let tokens = u.input + u.output + u.cache_read + u.cache_write;
            t.account.used(tokio::time::Instant::now(), tokens);
        }
        if let Some((request, answer)) = t.logged {
            let answer = String::from_utf8_lossy(&answer).into_owned();
            let _ = t.sink.send(Wire::Bodies { request, answer });
        }
        let _ = t.sink.send(Wire::Answered {
            provider: t.provider,
            model: said.or(t.model),
            status: t.status,
            usage,
            ms: t.started.elapsed().as_millis() as u64,
        });
    }
}

impl Body for Tee {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(t)) = (frame.data_ref(), this.told.as_mut()) {
                    t.scanner.feed(data);
                    if let Some((_, kept)) = t.logged.as_mut() {
                        let room = MAX_LOGGED_BODY.saturating_sub(kept.len());
                        kept.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.tell(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        self.tell();
    }
}
