//! An ntfy stand-in on 127.0.0.1: it takes what ntfy's JSON publishing
//! takes (`POST /` with `topic`, `message`, `title`, `tags`, `priority`,
//! `click`, and at most three `actions`, each `http`/`view`/`broadcast`
//! with a `label` and a `url`), answers as ntfy does (the message with its
//! `id`, `time` and `event`), refuses what ntfy refuses (400 with its
//! `{"code", "http", "error"}` body; 401/403 for a protected topic without
//! the right token), and keeps what it was sent for the test to read.

use crate::http::{Outcome, Request, Response, StandIn};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct State {
    messages: Vec<Value>,
    /// A token every publish must carry (`Authorization: Bearer`).
    token: Option<String>,
    /// How many publishes are still answered 503 (an outage).
    down_for: usize,
}

pub struct Ntfy {
    pub url: String,
    state: Arc<Mutex<State>>,
    _server: StandIn,
}

impl Ntfy {
    /// A server; its topics are open unless `token` is given.
    pub fn start(token: Option<&str>) -> Ntfy {
        let state = Arc::new(Mutex::new(State {
            token: token.map(str::to_string),
            ..State::default()
        }));
        let shared = state.clone();
        let server = StandIn::start(move |req| handle(&shared, req));
        Ntfy {
            url: server.url.clone(),
            state,
            _server: server,
        }
    }

    /// The URL of `topic` on this server, as `[notify] ntfy` takes it.
    pub fn topic_url(&self, topic: &str) -> String {
        format!("{}/{topic}", self.url)
    }

    /// The next `n` publishes are answered 503, as a server that is down.
    pub fn fail_next(&self, n: usize) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .down_for = n;
    }

    /// Every message published so far, as ntfy stored them.
    pub fn messages(&self) -> Vec<Value> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .messages
            .clone()
    }
}

fn refuse(status: u16, code: u32, error: &str) -> Outcome {
    let body = json!({"code": code, "http": status, "error": error, "link": "https://ntfy.sh/docs/publish/"});
    Outcome::Respond(Response::json(status, &body))
}

fn handle(state: &Arc<Mutex<State>>, req: Request) -> Outcome {
    if req.method != "POST" || req.path != "/" {
        return refuse(404, 40401, "page not found");
    }
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    if st.down_for > 0 {
        st.down_for -= 1;
        return refuse(503, 50301, "service unavailable");
    }
    if let Some(token) = &st.token {
        match req.header("authorization") {
            None => return refuse(401, 40101, "unauthorized"),
            Some(a) if a != format!("Bearer {token}") => return refuse(403, 40301, "forbidden"),
            Some(_) => {}
        }
    }
    let Ok(Value::Object(msg)) = serde_json::from_slice::<Value>(&req.body) else {
        return refuse(
            400,
            40024,
            "invalid request: request body must be message JSON",
        );
    };
    let topic = msg.get("topic").and_then(Value::as_str).unwrap_or("");
    let topic_ok = !topic.is_empty()
        && topic.len() <= 64
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !topic_ok {
        return refuse(400, 40009, "invalid request: topic invalid");
    }
    let actions = msg
        .get("actions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if actions.len() > 3 {
        return refuse(
            400,
            40018,
            "invalid request: actions invalid: only 3 actions allowed",
        );
    }
    let action_ok = |a: &Value| {
        matches!(a["action"].as_str(), Some("http" | "view" | "broadcast"))
            && a["label"].as_str().is_some_and(|l| !l.is_empty())
            && (a["action"] == "broadcast"
                || a["url"].as_str().is_some_and(|u| u.starts_with("http")))
    };
    if !actions.iter().all(action_ok) {
        return refuse(400, 40018, "invalid request: actions invalid");
    }
    let n = st.messages.len();
    let mut stored = Value::Object(msg.clone());
    stored["id"] = json!(format!("m{n:011}"));
    stored["time"] = json!(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0));
    stored["event"] = json!("message");
    st.messages.push(stored.clone());
    Outcome::Respond(Response::json(200, &stored))
}
