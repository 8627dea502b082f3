//! A scripted model server on 127.0.0.1 that the real agent CLIs (Claude
//! Code, Codex, Gemini CLI, opencode, aider) can be pointed at, so tests
//! drive them end to end without a real model.
//!
//! Dialects, chosen by path:
//! - `POST /v1/messages` (Anthropic Messages; `count_tokens` too): Claude Code.
//! - `POST /v1/responses` (OpenAI Responses; `GET /v1/models`): Codex.
//! - `POST /v1/chat/completions` (OpenAI Chat Completions): opencode, aider.
//! - `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent`
//!   (`?alt=sse`), `:countTokens` (Gemini API): Gemini CLI.
//!
//! Every answer is stateless: the request's first `[[script:NAME]]` marker
//! naming a known script selects the script (else the default one), and the
//! number of model turns in its history after the message holding that
//! marker (all of them for the default script) selects the step. A resumed
//! session thus continues where it stopped, and parallel runs can share one
//! server. Past the end of a script the model says "done.". Each model
//! response reports 100 input and 20 output tokens. Requests a CLI makes on
//! the side (titles, routing, next-speaker checks) get a plausible answer
//! without playing a step.
//!
//! [`agent_env`] and [`agent_args`] give the verified hermetic setup and
//! headless command line for each CLI.

mod agents;
mod anthropic;
mod chat;
mod gemini;
mod outage;
mod responses;
mod script;
mod turn;

pub use agents::{agent_args, agent_bin, agent_env, baton_profile, AGENTS};
pub use outage::{Api, Outage};
pub use script::{Scripts, Step};
pub use turn::{INPUT_TOKENS, OUTPUT_TOKENS};

use crate::http::{self, Outcome, Request, Response};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use turn::{Action, Turn};

/// A request the server received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// The path without the query string, e.g. `/v1/messages`.
    pub path: String,
    /// The query string without `?` (empty when none), e.g. `beta=true`.
    pub query: String,
    /// Header names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body as JSON; `Value::String` holding the raw text when it is
    /// not JSON; `Value::Null` when empty.
    pub body: Value,
    /// The script the request selected (None: the default script), for
    /// model requests that played a step.
    pub script: Option<String>,
    /// The index of the step played; None for side requests and others.
    pub step: Option<usize>,
    /// True for a model request answered on the side (no step played).
    pub side: bool,
    /// The status an outage answered it with instead of its step.
    pub refused: Option<u16>,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Recorded {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The server: its own thread and tokio runtime; dropping it stops both and
/// closes every connection, hung ones included.
pub struct ModelServer {
    url: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    scripts: Scripts,
    recorded: Mutex<Vec<Recorded>>,
    outages: Mutex<Vec<outage::State>>,
}

impl ModelServer {
    /// Binds 127.0.0.1 on a free port and serves `scripts` until dropped.
    pub fn start(scripts: Scripts) -> ModelServer {
        ModelServer::start_with(scripts, None)
    }

    /// [`ModelServer::start`] over HTTPS, with the certificate of `ca` (its
    /// URL is `https://127.0.0.1:PORT`).
    pub fn start_tls(scripts: Scripts, ca: &crate::tls::TestCa) -> ModelServer {
        ModelServer::start_with(scripts, Some(ca.acceptor()))
    }

    fn start_with(scripts: Scripts, tls: Option<tokio_rustls::TlsAcceptor>) -> ModelServer {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("local addr").port();
        let outages = scripts.outages().iter().cloned().map(outage::State::new);
        let shared = Arc::new(Shared {
            outages: Mutex::new(outages.collect()),
            scripts,
            recorded: Mutex::new(Vec::new()),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("model-server".into())
            .spawn(move || serve(listener, state, stopped, tls))
            .expect("spawn model server thread");
        ModelServer {
            url: format!("{scheme}://127.0.0.1:{port}"),
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash or `/v1`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.recorded).clone()
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking test thread must not take the server down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return eprintln!("model server: no runtime: {e}"),
    };
    runtime.block_on(async {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => return eprintln!("model server: listener: {e}"),
        };
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let shared = shared.clone();
                    let handler = move |req| handle(shared.clone(), req);
                    match tls.clone() {
                        None => {
                            tokio::spawn(http::serve_connection(stream, handler));
                        }
                        Some(tls) => {
                            tokio::spawn(async move {
                                // A client that does not trust the CA just goes away.
                                if let Ok(s) = tls.accept(stream).await {
                                    http::serve_connection(s, handler).await;
                                }
                            });
                        }
                    }
                }
            }
        }
    });
    // Drops every connection task, hung ones included.
    runtime.shutdown_background();
}

/// Which API a model request speaks.
#[derive(Clone, Copy)]
enum Dialect {
    Anthropic,
    Responses,
    Chat,
    Gemini { sse: bool },
}

/// What to do with a request, decided before any waiting so that the
/// request is recorded even when its step hangs.
enum Plan {
    Respond(Response),
    Side(Dialect, Turn),
    Play(Dialect, Turn, Step),
}

async fn handle(shared: Arc<Shared>, req: Request) -> Outcome {
    let raw = String::from_utf8_lossy(&req.body).into_owned();
    let body = if raw.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&raw).unwrap_or(Value::String(raw))
    };
    let mut record = Recorded {
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        headers: req.headers.clone(),
        body,
        script: None,
        step: None,
        side: false,
        refused: None,
        at: std::time::Instant::now(),
    };
    let mut plan = plan(&shared.scripts, &req, &mut record);
    if let Plan::Play(dialect, ..) = &plan {
        let now = std::time::Instant::now();
        let mut outages = lock(&shared.outages);
        if let Some(o) = outages
            .iter_mut()
            .find_map(|o| o.refuses(dialect.api(), now).then(|| o.outage.clone()))
        {
            record.refused = Some(o.status);
            let body = error_body(*dialect, o.status, &o.message, o.kind.as_deref());
            let mut resp = Response::json(o.status, &body);
            resp.retry_after = o.retry_after;
            plan = Plan::Respond(resp);
        }
    }
    let body = record.body.clone();
    lock(&shared.recorded).push(record);
    match plan {
        Plan::Respond(resp) => Outcome::Respond(resp),
        Plan::Side(dialect, turn) => Outcome::Respond(side(dialect, &turn, &body)),
        Plan::Play(dialect, turn, step) => play(dialect, &turn, step).await,
    }
}

fn plan(scripts: &Scripts, req: &Request, record: &mut Recorded) -> Plan {
    let path = req.path.trim_end_matches('/');
    let post = req.method == "POST";
    let (dialect, inspected) = if req.method == "HEAD" {
        // Claude Code probes `HEAD /` before its first request.
        return Plan::Respond(Response::json(200, &json!({})));
    } else if post && path.ends_with("/messages/count_tokens") {
        return Plan::Respond(Response::json(200, &json!({"input_tokens": 100})));
    } else if post && path.ends_with("/messages") {
        (Dialect::Anthropic, with_json(record, anthropic::inspect))
    } else if post && path.ends_with("/responses") {
        (Dialect::Responses, with_json(record, responses::inspect))
    } else if post && path.ends_with("/chat/completions") {
        (Dialect::Chat, with_json(record, chat::inspect))
    } else if req.method == "GET" && path.ends_with("/models") {
        return Plan::Respond(Response::json(200, &responses::models()));
    } else if let Some((model, method)) = gemini_target(path).filter(|_| post) {
        if method == "countTokens" {
            return Plan::Respond(Response::json(200, &json!({"totalTokens": 100})));
        }
        let sse = req.query.split('&').any(|kv| kv == "alt=sse");
        (
            Dialect::Gemini { sse },
            with_json(record, |b| gemini::inspect(b, model, method)),
        )
    } else {
        let msg = format!("no route for {} {}", req.method, req.path);
        return Plan::Respond(Response::json(404, &json!({"error": {"message": msg}})));
    };
    let turn = match inspected {
        Ok(t) => t,
        Err(msg) => {
            let body = json!({"error": {"message": msg, "type": "invalid_request_error"}});
            return Plan::Respond(Response::json(400, &body));
        }
    };
    if turn.side {
        record.side = true;
        return Plan::Side(dialect, turn);
    }
    let (name, steps) = scripts.select(&turn.text);
    let marker = name.as_ref().map(|n| format!("[[script:{n}]]"));
    let index = turn.step_index(marker.as_deref());
    let step = script::step_at(steps, index);
    record.script = name;
    record.step = Some(index);
    Plan::Play(dialect, turn, step)
}

fn with_json(
    record: &Recorded,
    inspect: impl FnOnce(&Value) -> Result<Turn, String>,
) -> Result<Turn, String> {
    match &record.body {
        Value::Object(_) => inspect(&record.body),
        _ => Err("the body is not a JSON object".into()),
    }
}

/// `(model, method)` from a Gemini path `.../models/{model}:{method}`.
fn gemini_target(path: &str) -> Option<(&str, &str)> {
    let (_, last) = path.rsplit_once("/models/")?;
    last.split_once(':')
}

async fn play(dialect: Dialect, turn: &Turn, mut step: Step) -> Outcome {
    let mut note = None;
    loop {
        let action = match step {
            Step::Slow { secs, then } => {
                // Clamped: from_secs_f64 panics on negative, NaN or huge values.
                let secs = if secs.is_finite() {
                    secs.clamp(0.0, 1e9)
                } else {
                    0.0
                };
                tokio::time::sleep(std::time::Duration::from_secs_f64(secs)).await;
                step = *then;
                continue;
            }
            Step::Note { text, then } => {
                note = Some(text);
                step = *then;
                continue;
            }
            Step::Hang => return Outcome::Hang,
            Step::HttpError(status) => {
                // A 1xx status cannot carry a body; out-of-range ones are not HTTP.
                let status = if (200..=599).contains(&status) {
                    status
                } else {
                    500
                };
                let body = error_body(dialect, status, &format!("mock http_error {status}"), None);
                return Outcome::Respond(Response::json(status, &body));
            }
            Step::WriteFile { path, content } => Action::Write { path, content },
            Step::Run { command } => Action::Run { command },
            Step::Call { tool, args } => Action::Call { tool, args },
            Step::Say(text) => Action::Say(text),
        };
        return Outcome::Respond(match dialect {
            Dialect::Anthropic => anthropic::render(&action, turn, note.as_deref()),
            Dialect::Responses => responses::render(&action, turn),
            Dialect::Chat => chat::render(&action, turn),
            Dialect::Gemini { sse } => gemini::render(&action, turn, sse),
        });
    }
}

fn side(dialect: Dialect, turn: &Turn, body: &Value) -> Response {
    match dialect {
        Dialect::Anthropic => anthropic::side(body, turn),
        Dialect::Responses => responses::side(turn),
        Dialect::Chat => chat::side(turn),
        Dialect::Gemini { sse } => gemini::side(body, turn, sse),
    }
}

fn error_body(dialect: Dialect, status: u16, message: &str, kind: Option<&str>) -> Value {
    match dialect {
        Dialect::Anthropic => anthropic::error(status, message),
        Dialect::Responses | Dialect::Chat => chat::openai_error(status, message, kind),
        Dialect::Gemini { .. } => gemini::error(status, message),
    }
}

impl Dialect {
    fn api(self) -> Api {
        match self {
            Dialect::Anthropic => Api::Anthropic,
            Dialect::Responses | Dialect::Chat => Api::OpenAi,
            Dialect::Gemini { .. } => Api::Gemini,
        }
    }
}
