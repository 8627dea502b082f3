//! The API in process: the router called directly, against a real
//! repository, the real store and the fake agent.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use baton_server::{router, AppState, ServeOptions};
use baton_testutils::{fake_agent, hermetic_env, TestEnv};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};
use tower::ServiceExt;

mod door;

fn hermetic() {
    static ONCE: Once = Once::new();
    // In-process engines run git with this process's environment.
    ONCE.call_once(|| {
        for (k, v) in hermetic_env() {
            std::env::set_var(k, v);
        }
    });
}

struct Api {
    env: TestEnv,
    state: Arc<AppState>,
}

const PLAN: &str = r#"
[[route]]
tags = ["docs"]
agent = "writer"

[agent.writer]
adapter = "exec"
command = ["bash", "-ec"]

[[task]]
id = "one"
prompt = "write one.txt hello; say made one"

[[task]]
id = "two"
needs = ["one"]
prompt = "say two saw {{ tasks.one.result }}"
merge = false
"#;

fn api_with(require_token: bool, plan: &str) -> Api {
    hermetic();
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        &format!("[agent.fake]\nadapter = \"exec\"\ncommand = [{:?}]\n\n[defaults]\nagent = \"fake\"\n{plan}", fake_agent().display().to_string()),
    );
    let repo = baton_core::Repo::discover(&env.repo).unwrap();
    let opts = ServeOptions {
        baton: None,
        addr: "127.0.0.1:0".into(),
        repo,
        plan: "baton.toml".into(),
        watchdog: None,
        webhook: None,
        drivers: &[],
        gateway: None,
        trackers: &[],
        forges: &[],
        public_url: None,
        user: None,
        name: None,
    };
    let state = AppState::new(opts, require_token).unwrap();
    Api { env, state }
}

fn api() -> Api {
    api_with(false, PLAN)
}

impl Api {
    async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let res = router(self.state.clone()).oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, v)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let req = Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(req).await
    }

    /// The run ends a moment after its last task (worktrees removed, the
    /// integration branch checked).
    async fn wait_run_end(&self, run: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.get(&format!("/api/runs/{run}")).await.1["status"] == "running" {
            assert!(Instant::now() < deadline, "run {run} never ended");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    async fn wait_task(&self, run: &str, task: &str, want: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, r) = self.get(&format!("/api/runs/{run}")).await;
            if let Some(t) = r["tasks"]
                .as_array()
                .and_then(|ts| ts.iter().find(|t| t["id"] == task))
            {
                if t["status"] == want {
                    return t.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "task {task} never became {want}: {r:#}"
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_started_from_the_api_is_visible_in_every_view() {
    let a = api();
    let (s, v) = a.get("/api/runs").await;
    assert_eq!(
        (s, v["runs"].as_array().map(|r| r.len())),
        (StatusCode::OK, Some(0))
    );
    let (s, v) = a.post("/api/runs", json!({ "plan": "baton.toml" })).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let run = v["run"].as_str().unwrap().to_string();
    a.wait_task(&run, "two", "succeeded").await;
    a.wait_run_end(&run).await;

    let (_, list) = a.get("/api/runs").await;
    assert_eq!(list["runs"][0]["id"], run.as_str());
    assert_eq!(list["runs"][0]["counts"]["succeeded"], 2);
    let (_, r) = a.get(&format!("/api/runs/{run}")).await;
    assert_eq!(r["status"], "succeeded");
    let two = r["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "two")
        .unwrap();
    assert_eq!(two["needs"], json!(["one"]));
    assert_eq!(two["agent"], "fake");
    assert_eq!(two["result"], "two saw made one");
    // The scorecard counts both, at their first try.
    let (s, card) = a.get("/api/stats?since=1h").await;
    assert_eq!(s, StatusCode::OK, "{card}");
    let fake = &card["lines"][0];
    assert_eq!(
        (
            &fake["name"],
            &fake["tasks"],
            &fake["first_try"],
            &fake["failed"]
        ),
        (&json!("fake"), &json!(2), &json!(2), &json!(0)),
        "{card}"
    );
    let (s, card) = a.get("/api/stats?by=model").await;
    assert_eq!(
        (s, &card["lines"][0]["name"]),
        (StatusCode::OK, &json!("unknown"))
    );
    let (s, bad) = a.get("/api/stats?since=soon").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");

    let (s, d) = a.get(&format!("/api/runs/{run}/tasks/one")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(d["attempts"][0]["status"], "succeeded");
    let (_, t) = a
        .get(&format!("/api/runs/{run}/tasks/one/transcript"))
        .await;
    let kinds: Vec<&str> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in ["task_started", "attempt_started", "committed", "merged"] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    let (_, diff) = a.get(&format!("/api/runs/{run}/tasks/one/diff")).await;
    assert!(diff.as_str().unwrap().contains("+hello"), "{diff}");
    let (_, log) = a.get(&format!("/api/runs/{run}/tasks/one/log")).await;
    assert_eq!(log.as_str().unwrap(), "made one\n");
    let (_, u) = a.get(&format!("/api/runs/{run}/usage")).await;
    assert_eq!(u["tasks"].as_array().unwrap().len(), 2);
    let (_, ev) = a
        .get(&format!("/api/runs/{run}/events?after=0&limit=3"))
        .await;
    assert_eq!(ev["events"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_say_what_is_wrong() {
    let a = api();
    let (s, v) = a.get("/api/runs/nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        v["error"].as_str().unwrap().contains("no run \"nope\""),
        "{v}"
    );
    let (s, _) = a.get("/api/nothing-here").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = a
        .post("/api/runs", json!({ "plan": "../etc/passwd" }))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = a.post("/api/runs", json!({ "plan": "missing.toml" })).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("cannot read plan missing.toml"));
    let (s, v) = a
        .post("/api/runs", json!({ "plan": "baton.toml", "extra": 1 }))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `extra`"),
        "{v}"
    );
    let req = Request::post("/api/runs")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let (s, v) = a.send(req).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // A form post from another site is refused before anything happens.
    let req = Request::post("/api/runs")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(a.send(req).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let req = Request::post("/api/runs")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::HOST, "127.0.0.1:7878")
        .header(header::ORIGIN, "https://evil.example")
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(a.send(req).await.0, StatusCode::FORBIDDEN);
    // A site whose name was rebound to 127.0.0.1 is not this machine's page.
    let req = Request::get("/api/runs")
        .header(header::HOST, "attacker.example:7878")
        .body(Body::empty())
        .unwrap();
    assert_eq!(a.send(req).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        a.get("/api/runs").await.1["runs"].as_array().unwrap().len(),
        0,
        "nothing was started"
    );

    let (_, v) = a.post("/api/runs", json!({})).await;
    let run = v["run"].as_str().unwrap().to_string();
    a.wait_task(&run, "two", "succeeded").await;
    a.wait_run_end(&run).await;
    let (s, _) = a.get(&format!("/api/runs/{run}/tasks/ghost")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = a
        .post(&format!("/api/runs/{run}/tasks/one/explode"), json!({}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = a
        .post(&format!("/api/runs/{run}/tasks/one/steer"), json!({}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = a
        .post(&format!("/api/runs/{run}/tasks/one/stop"), json!({}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["error"].as_str().unwrap().contains("is not going on"));
    let (s, v) = a.post("/api/tasks", json!({ "prompt": "  " })).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = a
        .post("/api/tasks", json!({ "prompt": "x", "agent": "nobody" }))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("unknown agent profile \"nobody\""),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_stop_approve_steer_retry() {
    let a = api_with(
        false,
        r#"
[[task]]
id = "hangs"
prompt = "hang"

[[task]]
id = "gated"
prompt = "write g.txt x"
approve = true
on_failure = "continue"

[[task]]
id = "flaky"
prompt = "on-attempt 1 exit 4; on-attempt 2 say fixed"
on_failure = "continue"
"#,
    );
    let (_, v) = a.post("/api/runs", json!({})).await;
    let run = v["run"].as_str().unwrap().to_string();
    a.wait_task(&run, "hangs", "running").await;
    a.wait_task(&run, "gated", "awaiting_approval").await;
    let t = a.wait_task(&run, "flaky", "failed").await;
    assert_eq!(t["attention"], "failed");

    let (s, v) = a
        .post(&format!("/api/runs/{run}/tasks/hangs/stop"), json!({}))
        .await;
    assert_eq!((s, v["ok"].clone()), (StatusCode::OK, json!(true)), "{v}");
    a.wait_task(&run, "hangs", "stopped").await;

    let (s, v) = a
        .post(&format!("/api/runs/{run}/tasks/flaky/approve"), json!({}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (s, v) = a
        .post(&format!("/api/runs/{run}/tasks/gated/approve"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let t = a.wait_task(&run, "gated", "succeeded").await;
    assert_eq!(t["merged"], true);

    // The run has ended (a task failed); a retry reopens it and runs the task again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.get(&format!("/api/runs/{run}")).await.1["status"] == "running" {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let (s, v) = a
        .post(&format!("/api/runs/{run}/tasks/flaky/retry"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let t = a.wait_task(&run, "flaky", "succeeded").await;
    assert_eq!(t["attempts"], 2);
    assert_eq!(t["result"], "fixed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_the_server_drives_is_asked_directly_not_through_the_store() {
    let a = api_with(false, "[[task]]\nid = \"hangs\"\nprompt = \"hang\"\n");
    let (_, v) = a.post("/api/runs", json!({})).await;
    let run = v["run"].as_str().unwrap().to_string();
    let t = a.wait_task(&run, "hangs", "running").await;
    assert_eq!(t["actions"], json!(["stop", "steer"]), "{t}");
    let (s, v) = a
        .post(&format!("/api/runs/{run}/tasks/hangs/stop"), json!({}))
        .await;
    assert_eq!((s, v["ok"].clone()), (StatusCode::OK, json!(true)), "{v}");
    assert!(
        v["message"].as_str().unwrap().starts_with("stopping task"),
        "{v}"
    );
    let t = a.wait_task(&run, "hangs", "stopped").await;
    assert_eq!(t["actions"], json!(["retry"]), "{t}");
    // The answer came over the engine's handle: nothing went through the
    // control table that other processes use.
    let controls = a.state.store.controls(&run).unwrap();
    assert!(controls.is_empty(), "{controls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_tasks_run_and_are_routed_by_tag() {
    let a = api();
    let (s, v) = a
        .post("/api/tasks", json!({ "prompt": "say queued hello" }))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (run, task) = (
        v["run"].as_str().unwrap().to_string(),
        v["task"].as_str().unwrap().to_string(),
    );
    let t = a.wait_task(&run, &task, "succeeded").await;
    assert_eq!(t["result"], "queued hello");
    assert_eq!(t["agent"], "fake");
    let controls = a.state.store.controls(&run).unwrap();
    assert!(controls.is_empty(), "queued in process: {controls:?}");
    let (_, v) = a
        .post(
            "/api/tasks",
            json!({ "prompt": "echo routed > r.txt; echo by bash", "tags": ["docs"] }),
        )
        .await;
    assert_eq!(
        v["run"],
        run.as_str(),
        "queued tasks share the standing run"
    );
    let t = a
        .wait_task(&run, v["task"].as_str().unwrap(), "succeeded")
        .await;
    assert_eq!(
        (t["agent"].as_str(), t["result"].as_str()),
        (Some("writer"), Some("by bash"))
    );
    let (_, r) = a.get(&format!("/api/runs/{run}")).await;
    assert_eq!(r["status"], "running", "the standing run waits for more");
    a.state.wait_for_runs().await;
    let (_, r) = a.get(&format!("/api/runs/{run}")).await;
    assert_eq!(r["status"], "interrupted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_race_runs_its_candidates_and_merges_its_winner() {
    let a = api();
    let (s, v) = a
        .post("/api/tasks", json!({ "prompt": "x", "candidates": 1 }))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("candidates must be 2 to 10"),
        "{v}"
    );
    let prompt = "echo \"$BATON_TASK\" > race.txt";
    let race = json!({ "prompt": prompt, "agents": ["writer", "writer"], "pick": "first" });
    let (s, v) = a.post("/api/tasks", race).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (run, task) = (
        v["run"].as_str().unwrap().to_string(),
        v["task"].as_str().unwrap().to_string(),
    );
    let t = a.wait_task(&run, &task, "succeeded").await;
    let agents: Vec<&str> = t["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["agent"].as_str().unwrap())
        .collect();
    assert_eq!(agents, ["writer", "writer"], "{t}");
    assert_eq!(t["merged"], true, "{t}");
    let winner = t["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["winner"] == true);
    let winner = winner.unwrap_or_else(|| panic!("{t}"))["task"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        t["pick_reason"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{winner} passed its gates first")),
        "{t}"
    );
    let (s, v) = a
        .post(
            &format!("/api/runs/{run}/tasks/{winner}/pick"),
            json!({ "message": "1" }),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["message"].as_str().unwrap().contains("is no race"), "{v}");
    a.state.wait_for_runs().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_to_the_best_goes_to_the_profile_with_the_best_record_for_its_tag() {
    let plan = "[agent.writer]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\n\n[[route]]\ntags = [\"docs\"]\nagent = \"best\"\namong = [\"fake\", \"writer\"]\nmin_tasks = 1\n";
    let a = api_with(false, plan);
    let queue = |body: Value| {
        let a = &a;
        async move {
            let (s, v) = a.post("/api/tasks", body).await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            (
                v["run"].as_str().unwrap().to_string(),
                v["task"].as_str().unwrap().to_string(),
            )
        }
    };
    // No record yet: the first of `among`, then the one still without one.
    let (run, first) = queue(json!({ "prompt": "say first", "tags": ["docs"] })).await;
    assert_eq!(
        a.wait_task(&run, &first, "succeeded").await["agent"],
        "fake"
    );
    let (_, second) = queue(json!({ "prompt": "echo second", "tags": ["docs"] })).await;
    assert_eq!(
        a.wait_task(&run, &second, "succeeded").await["agent"],
        "writer"
    );
    let (_, failed) = queue(json!({ "prompt": "exit 3", "agent": "fake", "tags": ["docs"] })).await;
    a.wait_task(&run, &failed, "failed").await;
    // fake: 1 of 2 docs tasks; writer: 1 of 1.
    let (_, chosen) = queue(json!({ "prompt": "echo chosen", "tags": ["docs"] })).await;
    assert_eq!(
        a.wait_task(&run, &chosen, "succeeded").await["agent"],
        "writer"
    );
    let (_, v) = a.get("/api/stats?by=tag").await;
    let names: Vec<&str> = v["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["docs/writer", "docs/fake"], "{v}");
    a.state.wait_for_runs().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_every_call_needs_a_token() {
    let a = api_with(true, PLAN);
    let (s, v) = a.get("/api/runs").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(v["error"].as_str().unwrap().contains("baton token new"));
    let bad = Request::get("/api/runs")
        .header(header::AUTHORIZATION, "Bearer wrong")
        .body(Body::empty())
        .unwrap();
    assert_eq!(a.send(bad).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(a.get("/api/events").await.0, StatusCode::UNAUTHORIZED);

    let token = baton_server::new_token();
    a.state
        .store
        .add_token(&baton_server::hash_token(&token), "test")
        .unwrap();
    let ok = Request::get("/api/runs")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(a.send(ok).await.0, StatusCode::OK);

    // The dashboard trades the token for a cookie.
    let login = Request::post("/api/session")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from("{}"))
        .unwrap();
    let res = router(a.state.clone()).oneshot(login).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let with_cookie = Request::get("/api/runs")
        .header(header::COOKIE, pair)
        .body(Body::empty())
        .unwrap();
    assert_eq!(a.send(with_cookie).await.0, StatusCode::OK);
    // The token is stored only as a hash.
    let db = std::fs::read(a.env.repo.join(".git/baton/baton.db")).unwrap();
    let wal = std::fs::read(a.env.repo.join(".git/baton/baton.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()));
    }
}

async fn read_sse(a: &Api, req: Request<Body>, want: usize) -> Vec<(i64, Value)> {
    let res = router(a.state.clone()).oneshot(req).await.unwrap();
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = res.into_body();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = Vec::new();
    while out.len() < want && Instant::now() < deadline {
        let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_secs(5), body.frame()).await
        else {
            break;
        };
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
        out = text
            .split("\n\n")
            .filter_map(|block| {
                let id = block
                    .lines()
                    .find_map(|l| l.strip_prefix("id: "))?
                    .parse()
                    .ok()?;
                let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
                Some((id, serde_json::from_str(data).ok()?))
            })
            .collect();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_resumes_from_the_last_id() {
    let a = api();
    let (_, v) = a.post("/api/runs", json!({})).await;
    let run = v["run"].as_str().unwrap().to_string();
    a.wait_task(&run, "two", "succeeded").await;
    let all = a.state.store.all_events_after(0, 10_000).unwrap();
    assert!(all.len() > 8, "{all:?}");

    let got = read_sse(
        &a,
        Request::get("/api/events?after=0")
            .body(Body::empty())
            .unwrap(),
        all.len(),
    )
    .await;
    assert_eq!(
        got.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        all.iter().map(|e| e.seq).collect::<Vec<_>>()
    );
    assert_eq!(got[0].1["kind"], "run_started");

    // A reconnecting client sends Last-Event-ID and gets only what it missed.
    let mid = all[5].seq;
    let req = Request::get("/api/events?after=0")
        .header("last-event-id", mid.to_string())
        .body(Body::empty())
        .unwrap();
    let got = read_sse(&a, req, all.len() - 6).await;
    assert_eq!(got.first().map(|g| g.0), Some(all[6].seq));
    assert_eq!(got.len(), all.len() - 6);

    // New events arrive live.
    let (_, v) = a.post("/api/tasks", json!({ "prompt": "say live" })).await;
    let after = all.last().unwrap().seq;
    let got = read_sse(
        &a,
        Request::get(format!("/api/events?after={after}"))
            .body(Body::empty())
            .unwrap(),
        3,
    )
    .await;
    assert!(got.iter().all(|(id, _)| *id > after));
    assert!(
        got.iter().any(|(_, e)| e["task_id"] == v["task"]),
        "{got:?}"
    );
    a.state.wait_for_runs().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_and_dashboard_are_served() {
    let a = api();
    let (s, doc) = a.get("/api/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    for p in [
        "/api/runs",
        "/api/stats",
        "/api/runs/{run}",
        "/api/runs/{run}/tasks/{task}/diff",
        "/api/runs/{run}/tasks/{task}/steer",
        "/api/tasks",
        "/api/events",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} documented");
    }
    let res = router(a.state.clone())
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'self'"),
        "nothing is loaded from elsewhere: {csp}"
    );
    let html =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(html.contains("/assets/app.js"));
    assert!(!html.contains("https://"), "no external resources");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_needs_a_person_calls_the_webhook() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    hermetic();
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        &format!("[agent.fake]\nadapter = \"exec\"\ncommand = [{:?}]\n\n[[task]]\nid = \"needs-ok\"\nagent = \"fake\"\nprompt = \"say ready\"\napprove = true\n", fake_agent().display().to_string()),
    );
    let repo = baton_core::Repo::discover(&env.repo).unwrap();
    let opts = ServeOptions {
        baton: None,
        addr: "127.0.0.1:0".into(),
        repo,
        plan: "baton.toml".into(),
        watchdog: None,
        webhook: Some(url),
        drivers: &[],
        gateway: None,
        trackers: &[],
        forges: &[],
        public_url: None,
        user: None,
        name: None,
    };
    let state = AppState::new(opts, false).unwrap();
    baton_server::spawn_notifier(state.clone(), Default::default(), "http://127.0.0.1:1").unwrap();
    let a = Api { env, state };
    let (_, v) = a.post("/api/runs", json!({})).await;
    let run = v["run"].as_str().unwrap().to_string();
    let (mut sock, _) = tokio::time::timeout(Duration::from_secs(20), listener.accept())
        .await
        .expect("webhook called")
        .unwrap();
    let mut buf = vec![0u8; 8192];
    let mut got = String::new();
    while !got.contains("}") {
        let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let _ = sock
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        .await;
    assert!(got.starts_with("POST /hook"), "{got}");
    let body: Value = serde_json::from_str(got.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["kind"], "approval_needed");
    assert_eq!(body["run"], run.as_str());
    // The item it is, and a link that approves it.
    assert_eq!(body["item"]["kind"], "approval", "{body}");
    assert_eq!(body["item"]["task"], "needs-ok", "{body}");
    assert_eq!(body["actions"][0]["label"], "Approve", "{body}");
    let link = body["actions"][0]["url"].as_str().unwrap();
    assert!(link.starts_with("http://127.0.0.1:1/api/act/"), "{link}");
    assert!(
        body["text"].as_str().unwrap().contains("needs-ok"),
        "{body}"
    );
    a.state.wait_for_runs().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_413_not_400() {
    let a = api();
    let prompt = "x".repeat(3 * 1024 * 1024);
    let (s, v) = a.post("/api/tasks", json!({ "prompt": prompt })).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
}
