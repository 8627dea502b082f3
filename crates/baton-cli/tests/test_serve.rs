//! `baton serve` as a process: the CLI hands runs to it, `add` queues tasks,
//! a restart resumes what was going on, and beyond loopback a token is needed.

use crate::common::*;
use baton_testutils::TestEnv;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Stdio};

pub(crate) struct Server {
    child: Child,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling a child we started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Server {
    /// SIGKILL: the server dies without a word (a crash).
    pub(crate) fn crash(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn serve(env: &TestEnv, addr: &str) -> Server {
    serve_env(env, addr, &[])
}

/// [`serve`] with more environment variables.
pub(crate) fn serve_env(env: &TestEnv, addr: &str, vars: &[(&str, &str)]) -> Server {
    serve_with(env, &["--addr", addr], vars)
}

/// `baton serve` with these arguments and environment variables.
pub(crate) fn serve_with(env: &TestEnv, args: &[&str], vars: &[(&str, &str)]) -> Server {
    let mut child = baton(env)
        .arg("serve")
        .args(args)
        .envs(vars.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(u) = line.strip_prefix("baton serve: listening on ") {
            break u.to_string();
        }
    };
    // Keep draining stderr so the server never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    Server { child, url }
}

/// One request to a server (a JSON body when given); its status and the
/// whole answer.
pub(crate) fn http(
    method: &str,
    url: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, String) {
    let host = url
        .trim_start_matches("http://")
        .replace("0.0.0.0", "127.0.0.1");
    let mut s = std::net::TcpStream::connect(&host).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let content = body
        .map(|b| {
            format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            )
        })
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}{content}Connection: close\r\n\r\n{}",
        body.unwrap_or_default()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, text)
}

/// A JSON POST to a server; its status and the whole answer.
pub(crate) fn http_post(url: &str, path: &str, body: &str, token: Option<&str>) -> (u16, String) {
    http("POST", url, path, Some(body), token)
}

pub(crate) fn http_get(url: &str, path: &str, token: Option<&str>) -> (u16, String) {
    http("GET", url, path, None, token)
}

#[test]
fn run_and_add_go_through_a_running_server() {
    let env = TestEnv::new();
    write_plan(
        &env,
        "[[task]]\nid = \"a\"\nprompt = \"write a.txt from serve; say done\"\n",
    );
    let _srv = serve(&env, "127.0.0.1:0");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("goes on in `baton serve`"),
        "{}",
        r.stderr
    );
    assert_eq!(task(&r.report, "a")["merged"], true);

    let out = output(baton(&env).args(["add", "say hello from add", "--tag", "x"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(id.starts_with("t1-say-hello"), "{id}");
    wait_for("the queued task to succeed", 20, || {
        task_status(&env, &id) == "succeeded"
    });
}

#[test]
fn add_without_a_server_says_how_to_start_one() {
    let env = TestEnv::new();
    let out = output(baton(&env).args(["add", "x"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("start one with `baton serve`"));
}

#[test]
fn a_restarted_server_resumes_what_was_going_on() {
    let env = TestEnv::new();
    let go = env.scratch("go");
    let started = env.scratch("started");
    write_plan(
        &env,
        &format!("[[task]]\nid = \"long\"\nprompt = \"\"\"touch {s}\non-attempt 1 hang\nwait-file {go}\nwrite long.txt finished\"\"\"\n", s = started.display(), go = go.display()),
    );
    let srv = serve(&env, "127.0.0.1:0");
    let out = output(baton(&env).args(["add", "placeholder"]));
    assert!(out.status.success());
    // A plan run handed to the server:
    let mut follower = spawn_baton(&env, &["run", "--json"]);
    wait_for("the agent to start", 20, || started.exists());
    drop(srv); // SIGTERM: agents stopped, work committed, runs left to resume
    let _ = follower.wait();
    let run = latest_run_opt(&env).unwrap();
    let run_id = run["run"].as_str().unwrap().to_string();
    std::fs::write(&go, "").unwrap();
    let _srv = serve(&env, "127.0.0.1:0");
    wait_for("the resumed task to succeed", 30, || {
        latest_run_opt(&env)
            .map(|r| r["run"] == run_id.as_str() && task(&r, "long")["status"] == "succeeded")
            .unwrap_or(false)
    });
    let r = latest_run_opt(&env).unwrap();
    assert_eq!(task(&r, "long")["attempts"], 2);
}

/// A queued task is checked once and stored as it will be read (its spec),
/// and read back so; one an older baton stored only as plan text still
/// resumes, from its text.
#[test]
fn a_queued_task_is_stored_as_checked_and_an_older_one_resumes_from_its_text() {
    let env = TestEnv::new();
    let go = env.scratch("go");
    let started = env.scratch("started");
    write_plan(&env, "[[task]]\nid = \"a\"\nprompt = \"say x\"\n");
    let srv = serve(&env, "127.0.0.1:0");
    let prompt = format!(
        "touch {s}\non-attempt 1 hang\non-attempt 2 hang\nwait-file {go}\nwrite queued.txt finished",
        s = started.display(),
        go = go.display()
    );
    let out = output(baton(&env).args(["add", &prompt]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the agent to start", 20, || started.exists());
    let spec = store_rows(&env, "SELECT spec FROM added_tasks");
    let spec: serde_json::Value = serde_json::from_str(&spec[0]).expect("a spec");
    assert_eq!(spec["prompt"], prompt.as_str());
    let id = spec["id"].as_str().unwrap().to_string();
    let db = env.repo.join(".git/baton/baton.db");
    let sql = |statement: &str| {
        let py = "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\nc.execute(sys.argv[2])\nc.commit()";
        let mut cmd = std::process::Command::new("python3");
        let out = output(cmd.args(["-c", py]).arg(&db).arg(statement));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // The spec is what a restart reads: the plan text is not parsed again.
    drop(srv);
    sql("UPDATE added_tasks SET snippet = '[[task]] not toml'");
    std::fs::remove_file(&started).unwrap();
    let srv = serve(&env, "127.0.0.1:0");
    wait_for("the task to start again", 20, || started.exists());
    // As an older baton left it: the plan text only.
    drop(srv);
    let snippet = format!("\n[[task]]\nid = '{id}'\nprompt = '''{prompt}'''\n");
    let snippet = snippet.replace('\'', "''");
    sql(&format!(
        "UPDATE added_tasks SET spec = NULL, snippet = '{snippet}'"
    ));
    std::fs::write(&go, "").unwrap();
    let _srv = serve(&env, "127.0.0.1:0");
    wait_for("the resumed queued task to succeed", 30, || {
        latest_run_opt(&env).is_some_and(|r| {
            r["tasks"].as_array().is_some_and(|ts| {
                ts.iter()
                    .any(|t| t["id"] == id.as_str() && t["status"] == "succeeded")
            })
        })
    });
}

#[test]
fn on_loopback_too_every_request_needs_a_token_and_token_url_signs_the_browser_in() {
    let env = TestEnv::new();
    write_plan(&env, "[[task]]\nid = \"a\"\nprompt = \"say x\"\n");
    let srv = serve(&env, "127.0.0.1:0");
    assert_eq!(http_get(&srv.url, "/api/runs", None).0, 401);
    assert_eq!(http_get(&srv.url, "/api/health", None).0, 200);
    let out = output(baton(&env).args(["token", "url"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (base, token) = link.split_once("/#token=").expect("a sign-in link");
    assert_eq!(base, srv.url);
    assert_eq!(http_get(&srv.url, "/api/runs", Some(token)).0, 200);
    // The discovery file in the repository (which agents can read) holds
    // no token.
    let found = std::fs::read_to_string(env.repo.join(".git/baton/serve.json")).unwrap();
    assert!(!found.contains(token), "{found}");
}

#[test]
fn beyond_loopback_the_api_needs_a_token() {
    let env = TestEnv::new();
    write_plan(&env, "[[task]]\nid = \"a\"\nprompt = \"say x\"\n");
    let srv = serve(&env, "0.0.0.0:0");
    let (status, body) = http_get(&srv.url, "/api/runs", None);
    assert_eq!(status, 401, "{body}");
    let out = output(baton(&env).args(["token", "new"]));
    assert!(out.status.success());
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(token.len(), 64);
    assert_eq!(http_get(&srv.url, "/api/runs", Some(&token)).0, 200);
    assert_eq!(http_get(&srv.url, "/api/runs", Some("not-it")).0, 401);
    // The dashboard page itself loads; its data needs the token.
    assert_eq!(http_get(&srv.url, "/", None).0, 200);
}

#[test]
fn another_process_stops_a_task_the_server_drives_through_the_store() {
    let env = TestEnv::new();
    write_plan(
        &env,
        "[[task]]\nid = \"long\"\nprompt = \"write wip.txt halfway; hang\"\n",
    );
    let _srv = serve(&env, "127.0.0.1:0");
    let child = spawn_baton(&env, &["run", "--json"]);
    wait_for_task(&env, "long", "running");
    let out = output(baton(&env).args(["stop", "long"]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("stopping task \"long\""), "{said}");
    let r = parse_run(child.wait_with_output().unwrap());
    assert_eq!(r.code, 1, "{}", r.stderr);
    let t = task(&r.report, "long");
    assert_eq!(t["status"], "stopped");
    let branch = t["branch"].as_str().unwrap();
    assert_eq!(show(&env, branch, "wip.txt").as_deref(), Some("halfway\n"));
}

#[test]
fn a_diff_read_later_by_a_server_masks_the_secrets_the_run_saw() {
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        "[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\nenv = { DEPLOY_KEY = \"from-the-profile-456\" }\n\n[[task]]\nid = \"leaky\"\nagent = \"sh\"\nprompt = \"echo \\\"$MY_API_TOKEN $DEPLOY_KEY\\\" > creds.txt\"\n",
    );
    // The secret in baton's own environment is not in the server's.
    let out = output(
        baton(&env)
            .args(["run", "--json", "--here"])
            .env("MY_API_TOKEN", "from-batons-env-123"),
    );
    let r = parse_run(out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let run = r.report["run"].as_str().unwrap().to_string();
    assert_eq!(
        task_show(&env, &r.report, "leaky", "creds.txt").as_deref(),
        Some("from-batons-env-123 from-the-profile-456\n"),
        "the agent wrote both into its work"
    );
    let srv = serve(&env, "127.0.0.1:0");
    let token = baton_core::access::local_token().unwrap();
    let diff = format!("/api/runs/{run}/tasks/leaky/diff");
    let (status, text) = http_get(&srv.url, &diff, Some(&token));
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("+[REDACTED] [REDACTED]"), "{text}");
    assert!(!text.contains("from-batons-env-123"), "{text}");
    assert!(!text.contains("from-the-profile-456"), "{text}");
}

#[test]
fn a_second_server_on_one_repository_is_refused_with_the_first_ones_address() {
    let env = TestEnv::new();
    write_plan(&env, "[[task]]\nid = \"a\"\nprompt = \"say a\"\n");
    let first = serve(&env, "127.0.0.1:0");
    let out = output(baton(&env).args(["serve", "--addr", "127.0.0.1:0"]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("already serves this repository") && said.contains(&first.url),
        "{said}"
    );
}

#[test]
fn a_run_the_server_drives_lands_itself_when_the_plan_says_so() {
    let env = TestEnv::new();
    write_plan(
        &env,
        "[run]\nland = \"merge\"\n\n[[task]]\nid = \"a\"\nprompt = \"write a.txt landed by serve\"\n",
    );
    env.commit_all("plan");
    let _srv = serve(&env, "127.0.0.1:0");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("goes on in `baton serve`"),
        "{}",
        r.stderr
    );
    let integration = r.report["integration_branch"].as_str().unwrap().to_string();
    wait_for("the server to land the run on main", 20, || {
        env.git(&["rev-parse", "main"]) == env.git(&["rev-parse", &integration])
    });
    assert_eq!(
        std::fs::read_to_string(env.repo.join("a.txt")).unwrap(),
        "landed by serve\n"
    );
}

#[test]
fn the_inbox_is_served_and_a_question_is_answered_through_the_api() {
    let env = TestEnv::new();
    let b = baton_bin();
    env.write(
        "baton.toml",
        &bash_plan(&format!(
            "\n[[task]]\nid = \"ask\"\nprompt = '''c=$({b:?} ask 'Which region?' --option eu --option us); echo \"$c\" > region.txt'''\n"
        )),
    );
    env.commit_all("plan");
    let srv = serve(&env, "127.0.0.1:0");
    let out = output(baton(&env).args(["token", "url"]));
    let link = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let token = link
        .split_once("/#token=")
        .expect("a sign-in link")
        .1
        .to_string();
    assert_eq!(http_get(&srv.url, "/api/inbox", None).0, 401);
    let run = spawn_baton(&env, &["run", "--json"]);
    let mut item = Value::Null;
    wait_for("the question in /api/inbox", 30, || {
        let (status, text) = http_get(&srv.url, "/api/inbox", Some(&token));
        assert_eq!(status, 200, "{text}");
        let body: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap_or("{}"))
            .unwrap_or(Value::Null);
        item = body["items"][0].clone();
        body["count"] == 1
    });
    assert_eq!(item["kind"], "question");
    assert_eq!(item["options"], serde_json::json!(["eu", "us"]));
    let id = item["id"].as_i64().unwrap();
    let post = |path: &str, body: &str| http_post(&srv.url, path, body, Some(&token));
    assert_eq!(post(&format!("/api/inbox/{id}/approve"), "{}").0, 409);
    assert_eq!(post("/api/inbox/1/answer", r#"{"text":"us"}"#).0, 404);
    let (status, text) = post(&format!("/api/inbox/{id}/answer"), r#"{"text":"mars"}"#);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("answer one of: eu, us"), "{text}");
    let (status, text) = post(&format!("/api/inbox/{id}/answer"), r#"{"text":"us"}"#);
    assert_eq!(status, 200, "{text}");
    let r = parse_run(run.wait_with_output().unwrap());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        task_show(&env, &r.report, "ask", "region.txt").as_deref(),
        Some("us\n")
    );
    let (_, text) = http_get(&srv.url, "/api/inbox", Some(&token));
    assert!(text.contains(r#""count":0"#), "{text}");
}
