//! A scripted stand-in for GitHub's REST API on 127.0.0.1, for the tests of
//! baton's tracker intake. It speaks the shapes of GitHub's published
//! OpenAPI description (`github/rest-api-description`, version 2022-11-28)
//! for the calls baton makes:
//!
//! - `GET /repos/{owner}/{repo}/issues` (`state`, `labels`, `assignee`,
//!   `per_page`, `page`; pull requests are in the list with a
//!   `pull_request` key; a `link` header with `rel="next"` while pages are
//!   left)
//! - `POST /repos/{owner}/{repo}/issues` (`title`, `body`, `labels`; 201)
//! - `GET /repos/{owner}/{repo}/issues/{n}`
//! - `GET /repos/{owner}/{repo}/issues/{n}/comments` (ascending id)
//! - `POST /repos/{owner}/{repo}/issues/{n}/comments` (`{"body"}`, 201 and a
//!   `location` header)
//! - `PATCH /repos/{owner}/{repo}/issues/{n}` (`state`, `state_reason`)
//! - `POST /repos/{owner}/{repo}/issues/{n}/labels` (`{"labels": [...]}`,
//!   200 with the issue's labels), `DELETE .../labels/{name}`
//!
//! Every request needs `Authorization: Bearer <the token>` (else 401 "Bad
//! credentials", as GitHub answers) and a `User-Agent` (else 403). Errors
//! are GitHub's `basic-error` bodies. Requests are recorded for the tests'
//! assertions; the test adds issues, comments and labels as people would.

mod hooks;
mod pulls;

pub use hooks::Delivery;
pub use pulls::Pull;

use crate::http::{self, Outcome, Request, Response};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A request the stand-in received.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub body: Value,
}

#[derive(Clone, Debug)]
struct Issue {
    number: u64,
    title: String,
    body: Option<String>,
    labels: Vec<String>,
    assignees: Vec<String>,
    author: String,
    state: String,
    state_reason: Option<String>,
    pull_request: bool,
}

#[derive(Clone, Debug)]
struct Comment {
    id: u64,
    issue: u64,
    author: String,
    body: String,
}

impl State {
    /// Issue `n`'s comment count, as the issue's `comments` field says it.
    fn count(&self, n: u64) -> usize {
        self.comments.iter().filter(|c| c.issue == n).count()
    }
}

#[derive(Default)]
struct State {
    issues: Vec<Issue>,
    comments: Vec<Comment>,
    calls: Vec<Call>,
    next_comment: u64,
    /// Comments to refuse with a 502 before taking one again.
    failing_comments: u32,
    pulls: pulls::Pulls,
    /// Where webhooks go, when set.
    hook: Option<hooks::Hook>,
    /// Every API call is refused as GitHub's rate limit does until this
    /// time (seconds since the epoch).
    limited_until: Option<u64>,
    deliveries: Vec<Delivery>,
}

impl State {
    /// A new issue (or the issue side of a pull request); its number.
    fn add_issue(&mut self, title: &str, body: &str, labels: &[&str], pr: bool) -> u64 {
        let number = self.issues.len() as u64 + 1;
        self.issues.push(Issue {
            number,
            title: title.into(),
            body: (!body.is_empty()).then(|| body.to_string()),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            assignees: Vec::new(),
            author: if pr { "baton-bot[bot]" } else { "octocat" }.into(),
            state: "open".into(),
            state_reason: None,
            pull_request: pr,
        });
        number
    }

    /// Pull request `n` merged as `commit`: it closes, and so do the
    /// issues its body says it fixes.
    fn merged(&mut self, n: u64, commit: &str, body: &str) {
        if let Some(p) = self.pulls.list.iter_mut().find(|p| p.number == n) {
            p.merged = Some(commit.to_string());
        }
        let mut close = vec![n];
        close.extend(pulls::closes(body));
        for i in self.issues.iter_mut().filter(|i| close.contains(&i.number)) {
            i.state = "closed".into();
            i.state_reason = Some("completed".into());
        }
    }
}

/// The stand-in: its own thread and runtime, stopped when dropped.
pub struct GitHub {
    url: String,
    repo: String,
    token: String,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Stops the watcher (CI on pushes, check run deliveries).
    watching: Arc<AtomicBool>,
    watcher: Option<std::thread::JoinHandle<()>>,
}

/// Seconds since the epoch, as GitHub's `x-ratelimit-reset` counts.
fn epoch_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl GitHub {
    /// Serves repository `repo` ("owner/name") to holders of `token`.
    pub fn start(repo: &str, token: &str) -> GitHub {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(Mutex::new(State {
            next_comment: 1000,
            ..Default::default()
        }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        let (repo_, token_) = (repo.to_string(), token.to_string());
        let thread = std::thread::Builder::new()
            .name("github-stand-in".into())
            .spawn(move || serve(listener, shared, repo_, token_, stopped))
            .expect("spawn the GitHub stand-in");
        let url = format!("http://127.0.0.1:{port}");
        let watching = Arc::new(AtomicBool::new(false));
        let (shared, url_, repo_, flag) = (
            state.clone(),
            url.clone(),
            repo.to_string(),
            watching.clone(),
        );
        let every = std::time::Duration::from_millis(50);
        let watcher = std::thread::Builder::new()
            .name("github-stand-in-watcher".into())
            .spawn(move || hooks::watch(shared, url_, repo_, flag, every))
            .expect("spawn the GitHub stand-in's watcher");
        GitHub {
            url,
            repo: repo.to_string(),
            token: token.to_string(),
            state,
            stop: Some(stop),
            thread: Some(thread),
            watching,
            watcher: Some(watcher),
        }
    }

    /// Webhooks go to `url`, signed with `secret`.
    pub fn webhook(&self, url: &str, secret: &str) {
        lock(&self.state).hook = Some(hooks::Hook {
            url: url.into(),
            secret: secret.into(),
        });
    }

    /// Each check takes `secs` to complete (it is `in_progress` until then).
    pub fn ci_takes(&self, secs: f64) {
        lock(&self.state).pulls.ci_secs = secs;
    }

    /// The deliveries made so far (and those due with no hook set).
    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.state).deliveries.clone()
    }

    /// The API's root, for `api_url`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// A person opens an issue; its number.
    pub fn open_issue(&self, title: &str, body: &str, labels: &[&str]) -> u64 {
        self.add(title, body, labels, false)
    }

    /// A pull request (it is in the issues list too, with a `pull_request` key).
    pub fn open_pull_request(&self, title: &str, labels: &[&str]) -> u64 {
        self.add(title, "", labels, true)
    }

    fn add(&self, title: &str, body: &str, labels: &[&str], pr: bool) -> u64 {
        lock(&self.state).add_issue(title, body, labels, pr)
    }

    /// Issue `n` is assigned to `login`.
    pub fn assign(&self, n: u64, login: &str) {
        lock(&self.state).issues[(n - 1) as usize]
            .assignees
            .push(login.into());
    }

    /// GitHub's rate limit holds for the next `secs` seconds: every API
    /// call is refused with 403, `x-ratelimit-remaining: 0` and
    /// `x-ratelimit-reset` (as GitHub documents its primary rate limit).
    pub fn rate_limit_for(&self, secs: u64) {
        lock(&self.state).limited_until = Some(epoch_secs() + secs);
    }

    /// A person sets issue `n`'s labels.
    pub fn set_labels(&self, n: u64, labels: &[&str]) {
        lock(&self.state).issues[(n - 1) as usize].labels =
            labels.iter().map(|l| l.to_string()).collect();
    }

    /// A person comments on issue `n`.
    pub fn comment(&self, n: u64, author: &str, body: &str) {
        let mut st = lock(&self.state);
        st.next_comment += 1;
        let id = st.next_comment;
        st.comments.push(Comment {
            id,
            issue: n,
            author: author.into(),
            body: body.into(),
        });
    }

    /// Issue `n`'s comments, oldest first, as (author, body).
    pub fn comments(&self, n: u64) -> Vec<(String, String)> {
        let st = lock(&self.state);
        let mine = st.comments.iter().filter(|c| c.issue == n);
        mine.map(|c| (c.author.clone(), c.body.clone())).collect()
    }

    /// Issue `n`'s state and labels.
    pub fn issue(&self, n: u64) -> (String, Vec<String>) {
        let st = lock(&self.state);
        let i = &st.issues[(n - 1) as usize];
        (i.state.clone(), i.labels.clone())
    }

    /// The next `n` comments written through the API fail (502, as a
    /// GitHub having a bad moment answers).
    pub fn fail_next_comments(&self, n: u32) {
        lock(&self.state).failing_comments = n;
    }

    /// Every request so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.state).calls.clone()
    }

    fn issue_json(&self, st: &State, i: &Issue) -> Value {
        issue_json(&self.url, &self.repo, i, st.count(i.number))
    }
}

impl Drop for GitHub {
    fn drop(&mut self) {
        self.watching.store(true, Ordering::Relaxed);
        if let Some(t) = self.watcher.take() {
            let _ = t.join();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn user(login: &str) -> Value {
    let bot = login.ends_with("[bot]");
    json!({
        "login": login, "id": 1, "node_id": "U_1", "type": if bot { "Bot" } else { "User" },
        "site_admin": false, "url": format!("https://api.github.com/users/{login}"),
        "html_url": format!("https://github.com/{login}"),
    })
}

fn label_json(name: &str) -> Value {
    json!({"id": 1, "node_id": "L_1", "url": "", "name": name, "description": null,
           "color": "ededed", "default": false})
}

fn issue_json(url: &str, repo: &str, i: &Issue, comments: usize) -> Value {
    let mut v = json!({
        "id": 100 + i.number, "node_id": format!("I_{}", i.number), "number": i.number,
        "url": format!("{url}/repos/{repo}/issues/{}", i.number),
        "html_url": format!("https://github.com/{repo}/issues/{}", i.number),
        "title": i.title, "body": i.body, "state": i.state, "state_reason": i.state_reason,
        "user": user(&i.author), "labels": i.labels.iter().map(|l| label_json(l)).collect::<Vec<_>>(),
        "assignee": i.assignees.first().map(|a| user(a)),
        "assignees": i.assignees.iter().map(|a| user(a)).collect::<Vec<_>>(),
        "milestone": null, "locked": false, "comments": comments, "closed_at": null,
        "created_at": "2026-12-01T10:00:00Z", "updated_at": "2026-12-01T10:00:00Z",
    });
    if i.pull_request {
        v["pull_request"] = json!({
            "url": format!("{url}/repos/{repo}/pulls/{}", i.number),
            "html_url": format!("https://github.com/{repo}/pull/{}", i.number),
            "diff_url": null, "patch_url": null, "merged_at": null,
        });
    }
    v
}

fn comment_json(url: &str, repo: &str, c: &Comment) -> Value {
    json!({
        "id": c.id, "node_id": format!("IC_{}", c.id), "body": c.body, "user": user(&c.author),
        "url": format!("{url}/repos/{repo}/issues/comments/{}", c.id),
        "html_url": format!("https://github.com/{repo}/issues/{}#issuecomment-{}", c.issue, c.id),
        "issue_url": format!("{url}/repos/{repo}/issues/{}", c.issue),
        "created_at": "2026-12-01T10:00:00Z", "updated_at": "2026-12-01T10:00:00Z",
        "author_association": "OWNER",
    })
}

fn error(status: u16, message: &str) -> Outcome {
    let body = json!({"message": message, "documentation_url": "https://docs.github.com/rest",
                      "status": status.to_string()});
    Outcome::Respond(Response::json(status, &body))
}

fn serve(
    listener: std::net::TcpListener,
    state: Arc<Mutex<State>>,
    repo: String,
    token: String,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return eprintln!("github stand-in: no runtime");
    };
    rt.block_on(async {
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
            return eprintln!("github stand-in: no listener");
        };
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let (state, repo, token) = (state.clone(), repo.clone(), token.clone());
                    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
                    tokio::spawn(http::serve_connection(stream, move |req| {
                        let url = format!("http://127.0.0.1:{port}");
                        let out = handle(&state, &url, &repo, &token, req);
                        async move { out }
                    }));
                }
            }
        }
    });
    rt.shutdown_background();
}

fn query<'a>(q: &'a str, key: &str) -> Option<&'a str> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// `%2C` and friends, as a client encodes a query or a path segment.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn handle(state: &Mutex<State>, url: &str, repo: &str, token: &str, req: Request) -> Outcome {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let mut st = lock(state);
    st.calls.push(Call {
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        authorization: req.header("authorization").map(str::to_string),
        body: body.clone(),
    });
    if let Some(id) = req.path.strip_prefix("/_logs/") {
        return pulls::log(&st, id);
    }
    if req.path == "/_hook" {
        // The stand-in's own control (not GitHub's): where webhooks go.
        let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
        let (Some(url), Some(secret)) = (field("url"), field("secret")) else {
            return error(422, "POST /_hook takes {\"url\", \"secret\"}");
        };
        st.hook = Some(hooks::Hook { url, secret });
        return Outcome::Respond(Response::json(200, &json!({"ok": true})));
    }
    if req.header("user-agent").is_none_or(str::is_empty) {
        return error(403, "Request forbidden by administrative rules. Please make sure your request has a User-Agent header");
    }
    if req.header("authorization") != Some(format!("Bearer {token}").as_str()) {
        return error(401, "Bad credentials");
    }
    if let Some(until) = st.limited_until {
        if epoch_secs() < until {
            let body = json!({"message": "API rate limit exceeded for user ID 1.",
                              "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"});
            let mut r = Response::json(403, &body);
            r.headers.push(("x-ratelimit-limit".into(), "5000".into()));
            r.headers.push(("x-ratelimit-remaining".into(), "0".into()));
            r.headers
                .push(("x-ratelimit-reset".into(), until.to_string()));
            return Outcome::Respond(r);
        }
    }
    let prefix = format!("/repos/{repo}/issues");
    if !req.path.starts_with(&prefix) {
        if let Some(out) = pulls::handle(&mut st, url, repo, &req, &body) {
            return out;
        }
    }
    let Some(rest) = req.path.strip_prefix(&prefix) else {
        return error(404, "Not Found");
    };
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let number = parts.first().and_then(|n| n.parse::<u64>().ok());
    let exists = number.filter(|n| *n >= 1 && *n <= st.issues.len() as u64);
    match (req.method.as_str(), number, exists, &parts[..]) {
        ("GET", None, _, []) => list_issues(&st, url, repo, &req.query),
        ("POST", None, _, []) => create_issue(&mut st, url, repo, &body),
        (_, Some(_), None, _) => error(404, "Not Found"),
        ("GET", _, Some(n), [_]) => {
            let i = &st.issues[(n - 1) as usize];
            Outcome::Respond(Response::json(200, &issue_json(url, repo, i, st.count(n))))
        }
        ("PATCH", _, Some(n), [_]) => update_issue(&mut st, url, repo, n, &body),
        ("GET", _, Some(n), [_, "comments"]) => {
            let list: Vec<Value> = st
                .comments
                .iter()
                .filter(|c| c.issue == n)
                .map(|c| comment_json(url, repo, c))
                .collect();
            Outcome::Respond(Response::json(200, &Value::Array(list)))
        }
        ("POST", _, Some(_), [_, "comments"]) if st.failing_comments > 0 => {
            st.failing_comments -= 1;
            error(502, "Server Error")
        }
        ("POST", _, Some(n), [_, "comments"]) => {
            let Some(text) = body.get("body").and_then(Value::as_str) else {
                let v = json!({"message": "Validation Failed", "documentation_url": "https://docs.github.com/rest",
                               "errors": [{"resource": "IssueComment", "field": "body", "code": "missing_field"}]});
                return Outcome::Respond(Response::json(422, &v));
            };
            st.next_comment += 1;
            let c = Comment {
                id: st.next_comment,
                issue: n,
                author: "baton-bot[bot]".into(),
                body: text.into(),
            };
            let mut resp = Response::json(201, &comment_json(url, repo, &c));
            let at = format!("{url}/repos/{repo}/issues/comments/{}", c.id);
            resp.headers.push(("location".into(), at));
            st.comments.push(c);
            Outcome::Respond(resp)
        }
        ("POST", _, Some(n), [_, "labels"]) => {
            let names: Vec<String> = match body.get("labels").unwrap_or(&body) {
                Value::Array(a) => a
                    .iter()
                    .filter_map(|l| l.as_str().or(l.get("name").and_then(Value::as_str)))
                    .map(str::to_string)
                    .collect(),
                _ => Vec::new(),
            };
            let issue = &mut st.issues[(n - 1) as usize];
            for l in names {
                if !issue.labels.contains(&l) {
                    issue.labels.push(l);
                }
            }
            let labels: Vec<Value> = issue.labels.iter().map(|l| label_json(l)).collect();
            Outcome::Respond(Response::json(200, &Value::Array(labels)))
        }
        ("DELETE", _, Some(n), [_, "labels", name]) => {
            let name = decode(name);
            let issue = &mut st.issues[(n - 1) as usize];
            if !issue.labels.contains(&name) {
                return error(404, "Label does not exist");
            }
            issue.labels.retain(|l| *l != name);
            let labels: Vec<Value> = issue.labels.iter().map(|l| label_json(l)).collect();
            Outcome::Respond(Response::json(200, &Value::Array(labels)))
        }
        _ => error(404, "Not Found"),
    }
}

fn list_issues(st: &State, url: &str, repo: &str, q: &str) -> Outcome {
    let state = query(q, "state").unwrap_or("open");
    let labels: Vec<String> = query(q, "labels")
        .map(|l| decode(l).split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let assignee = query(q, "assignee").map(decode);
    let per_page: usize = query(q, "per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page: usize = query(q, "page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    // Newest first, GitHub's default (`sort=created`, `direction=desc`).
    let matching: Vec<&Issue> = st
        .issues
        .iter()
        .rev()
        .filter(|i| state == "all" || i.state == state)
        .filter(|i| labels.iter().all(|l| i.labels.contains(l)))
        .filter(|i| match assignee.as_deref() {
            None => true,
            Some("*") => !i.assignees.is_empty(),
            Some("none") => i.assignees.is_empty(),
            Some(a) => i.assignees.iter().any(|x| x == a),
        })
        .collect();
    let start = (page - 1) * per_page;
    let items: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(per_page)
        .map(|i| issue_json(url, repo, i, st.count(i.number)))
        .collect();
    let mut resp = Response::json(200, &Value::Array(items));
    if start + per_page < matching.len() {
        let last = matching.len().div_ceil(per_page);
        let base = format!("{url}/repos/{repo}/issues");
        let keep: Vec<&str> = q.split('&').filter(|kv| !kv.starts_with("page=")).collect();
        let keep = keep.join("&");
        let link = format!(
            "<{base}?{keep}&page={}>; rel=\"next\", <{base}?{keep}&page={last}>; rel=\"last\"",
            page + 1
        );
        resp.headers.push(("link".into(), link));
    }
    Outcome::Respond(resp)
}

fn create_issue(st: &mut State, url: &str, repo: &str, body: &Value) -> Outcome {
    let Some(title) = body.get("title").and_then(Value::as_str) else {
        let v = json!({"message": "Validation Failed", "documentation_url": "https://docs.github.com/rest",
                       "errors": [{"resource": "Issue", "field": "title", "code": "missing_field"}]});
        return Outcome::Respond(Response::json(422, &v));
    };
    let labels = body.get("labels").and_then(Value::as_array).map(|ls| {
        ls.iter()
            .filter_map(|l| l.as_str().or(l.get("name").and_then(Value::as_str)))
            .map(str::to_string)
            .collect()
    });
    let number = st.issues.len() as u64 + 1;
    let issue = Issue {
        number,
        title: title.into(),
        body: body.get("body").and_then(Value::as_str).map(str::to_string),
        labels: labels.unwrap_or_default(),
        assignees: Vec::new(),
        author: "octocat".into(),
        state: "open".into(),
        state_reason: None,
        pull_request: false,
    };
    let mut resp = Response::json(201, &issue_json(url, repo, &issue, 0));
    resp.headers.push((
        "location".into(),
        format!("{url}/repos/{repo}/issues/{number}"),
    ));
    st.issues.push(issue);
    Outcome::Respond(resp)
}

fn update_issue(st: &mut State, url: &str, repo: &str, n: u64, body: &Value) -> Outcome {
    let issue = &mut st.issues[(n - 1) as usize];
    if let Some(s) = body.get("state").and_then(Value::as_str) {
        if s != "open" && s != "closed" {
            let v = json!({"message": "Validation Failed", "documentation_url": "https://docs.github.com/rest",
                           "errors": [{"resource": "Issue", "field": "state", "code": "invalid"}]});
            return Outcome::Respond(Response::json(422, &v));
        }
        if s != issue.state {
            issue.state = s.into();
            issue.state_reason = body
                .get("state_reason")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
    }
    let issue = issue.clone();
    let count = st.count(n);
    Outcome::Respond(Response::json(200, &issue_json(url, repo, &issue, count)))
}

impl GitHub {
    /// The pushed-to repository (a bare git repository on disk): pull
    /// requests' heads are its branches, and merges are made in it.
    pub fn use_remote(&self, path: &std::path::Path) {
        lock(&self.state).pulls.remote = Some(path.to_path_buf());
    }

    /// A CI check: `script` runs (`sh -c`) in each new head commit's tree;
    /// it passes when the script does, and its output is the job's log.
    pub fn ci(&self, name: &str, script: &str) {
        lock(&self.state)
            .pulls
            .ci
            .push((name.into(), script.into()));
    }

    /// Which merge methods the repository allows (merge, squash, rebase).
    pub fn merge_methods(&self, merge: bool, squash: bool, rebase: bool) {
        lock(&self.state).pulls.methods = Some([merge, squash, rebase]);
    }

    /// The pull requests, oldest first.
    pub fn pulls(&self) -> Vec<Pull> {
        lock(&self.state).pulls.list.clone()
    }

    /// The check runs of pull request `n`'s commits so far, oldest first,
    /// as (commit, name, passed).
    pub fn check_runs(&self) -> Vec<(String, String, bool)> {
        let st = lock(&self.state);
        let runs = st.pulls.checks.iter();
        runs.map(|c| (c.sha.clone(), c.name.clone(), c.passed))
            .collect()
    }

    /// A person reviews pull request `n` (`APPROVED`, `CHANGES_REQUESTED`,
    /// `COMMENTED`); the review's id.
    pub fn review(&self, n: u64, author: &str, state: &str, body: &str) -> u64 {
        let mut st = lock(&self.state);
        let commit = head_of(&st, n);
        let id = st.pulls.next();
        let review = pulls::ReviewRec {
            id,
            pull: n,
            author: author.into(),
            state: state.into(),
            body: body.into(),
            commit,
        };
        // Webhooks carry the state in lower case.
        let mut shown = pulls::review_json(&self.repo, &review);
        shown["state"] = json!(state.to_ascii_lowercase());
        st.pulls.reviews.push(review);
        let event =
            json!({"action": "submitted", "review": shown, "pull_request": self.minimal(&st, n)});
        drop(st);
        let due = hooks::merged(event, hooks::around(&self.repo, author));
        hooks::deliver(&self.state, vec![("pull_request_review", due)]);
        id
    }

    /// Pull request `n` in a webhook's minimal shape.
    fn minimal(&self, st: &State, n: u64) -> Value {
        let p = st.pulls.list.iter().find(|p| p.number == n);
        let (head, base) = p.map_or((String::new(), String::new()), |p| {
            (p.head.clone(), p.base.clone())
        });
        hooks::minimal_pull(n, &head, &head_of(st, n), &base)
    }

    /// A person comments on line `line` of `path` in pull request `n`'s
    /// diff; the comment's id.
    pub fn review_comment(&self, n: u64, author: &str, path: &str, line: u64, body: &str) -> u64 {
        let mut st = lock(&self.state);
        let commit = head_of(&st, n);
        let id = st.pulls.next();
        let comment = pulls::LineComment {
            id,
            pull: n,
            author: author.into(),
            path: path.into(),
            line,
            body: body.into(),
            in_reply_to: None,
            commit,
        };
        let shown = pulls::comment_json(&self.url, &self.repo, &comment);
        st.pulls.comments.push(comment);
        let event =
            json!({"action": "created", "comment": shown, "pull_request": self.minimal(&st, n)});
        drop(st);
        let due = hooks::merged(event, hooks::around(&self.repo, author));
        hooks::deliver(&self.state, vec![("pull_request_review_comment", due)]);
        id
    }

    /// Replies in pull request `n`'s review threads, as (the thread's first
    /// comment, body).
    pub fn replies(&self, n: u64) -> Vec<(u64, String)> {
        let st = lock(&self.state);
        let mine = st.pulls.comments.iter().filter(|c| c.pull == n);
        mine.filter_map(|c| Some((c.in_reply_to?, c.body.clone())))
            .collect()
    }

    /// Issue `n` as the API returns it (for tests that check a shape).
    pub fn issue_as_json(&self, n: u64) -> Value {
        let st = lock(&self.state);
        self.issue_json(&st, &st.issues[(n - 1) as usize])
    }
}

fn head_of(st: &State, n: u64) -> String {
    let p = st.pulls.list.iter().find(|p| p.number == n);
    p.and_then(|p| st.pulls.sha_of(&p.head)).unwrap_or_default()
}
