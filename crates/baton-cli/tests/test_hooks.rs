//! `[[hook]]`: other systems start work by posting to `/api/hooks/<name>`,
//! proving themselves with a signature (HMAC-SHA256 of the body, as GitHub
//! signs) or the hook's token. A delivery queues a task whose prompt reads
//! the delivery, or starts a run of a plan with the delivery as its
//! `payload`; a delivery that does not prove itself starts nothing.

use crate::common::*;
use crate::test_sources::github_signature;
use baton_testutils::{fake_agent, TestEnv};
use std::process::Child;

const SECRET: &str = "sentry's signing secret";
const DEPLOY_TOKEN: &str = "deploy-token-0123456789";

fn plan(env: &TestEnv) -> String {
    let fake = fake_agent().display().to_string();
    let seen = env.scratch("prompt.txt").display().to_string();
    let token = env.scratch("token.txt").display().to_string();
    format!(
        r#"[agent.fake]
adapter = "exec"
command = [{fake:?}]
env = {{ FAKE_AGENT_SCRIPT = "prompt {seen}; env DEPLOY_TOKEN {token}; write fixed.txt done" }}

[agent.sh]
adapter = "exec"
command = [{fake:?}]

[defaults]
agent = "fake"

[[hook]]
name = "sentry"
secret_env = "SENTRY_SECRET"
prompt = "Fix {{{{ payload.title }}}} (seen {{{{ payload.count }}}} times)."
tags = ["bug"]

[[hook]]
name = "deploy"
token_env = "DEPLOY_TOKEN"
plan = "hotfix.toml"
"#
    )
}

const HOTFIX: &str = r#"[agent.sh]
adapter = "exec"
command = ["FAKE"]

[[task]]
id = "pin"
agent = "sh"
prompt = "write version.txt {{ payload.release.version }}"
"#;

struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        // SAFETY: signalling a child we started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn serve(env: &TestEnv) -> Served {
    let envs = [("SENTRY_SECRET", SECRET), ("DEPLOY_TOKEN", DEPLOY_TOKEN)];
    let (child, url) = serve_logged(env, "serve.log", &envs);
    Served { child, url }
}

/// Posts `body` to `/api/hooks/<name>` with `headers`; (status, body).
fn post(url: &str, name: &str, headers: &[(&str, &str)], body: &str) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let host = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        s,
        "POST /api/hooks/{name} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer.split_whitespace().nth(1).unwrap().parse().unwrap();
    let json = answer
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b.trim()).ok())
        .unwrap_or(serde_json::Value::Null);
    (status, json)
}

fn tasks(env: &TestEnv) -> Vec<String> {
    store_rows(env, "SELECT id FROM tasks ORDER BY rowid")
}

#[test]
fn a_signed_delivery_queues_its_task_and_an_unsigned_one_nothing() {
    let env = TestEnv::new();
    env.write("baton.toml", &plan(&env));
    env.write("hotfix.toml", HOTFIX);
    env.commit_all("plan");
    let served = serve(&env);
    let body = r#"{"title": "a crash in {{ login }}", "count": 12, "level": null}"#;
    // Not proven: refused, and nothing is queued.
    let forged = github_signature("another secret", body);
    let (status, _) = post(
        &served.url,
        "sentry",
        &[("X-Hub-Signature-256", &forged)],
        body,
    );
    assert_eq!(status, 401);
    assert_eq!(post(&served.url, "sentry", &[], body).0, 401);
    let (status, err) = post(&served.url, "nope", &[], body);
    assert_eq!(status, 404, "{err}");
    assert!(err["error"]
        .as_str()
        .unwrap()
        .contains("no [[hook]] named \"nope\""));
    // The hooks' routes need no baton token: no path through them reaches
    // another route (here, queueing a task) without one.
    let queue = r#"{"prompt": "say smuggled"}"#;
    for sneaky in [
        "../tasks",
        "x/../../tasks",
        "%2e%2e/tasks",
        "github/../../tasks",
        "/tasks",
        "sentry/../../tasks",
    ] {
        let (status, said) = post(&served.url, sneaky, &[], queue);
        assert!(matches!(status, 401 | 404), "{sneaky}: {status} {said}");
    }
    let not_json = "title=x";
    let signed = github_signature(SECRET, not_json);
    let (status, _) = post(
        &served.url,
        "sentry",
        &[("X-Hub-Signature-256", &signed)],
        not_json,
    );
    assert_eq!(status, 400);
    assert!(
        tasks(&env).is_empty(),
        "a refused delivery queued {:?}",
        tasks(&env)
    );

    let signed = github_signature(SECRET, body);
    let headers = [
        ("X-Hub-Signature-256", signed.as_str()),
        ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
    ];
    let (status, answer) = post(&served.url, "sentry", &headers, body);
    assert_eq!(status, 202, "{answer}");
    // The sender retries the same delivery: answered, and nothing starts twice.
    let (again, said) = post(&served.url, "sentry", &headers, body);
    assert_eq!(again, 200, "{said}");
    assert_eq!(said["duplicate"], true, "{said}");
    let task = answer["task"].as_str().unwrap().to_string();
    assert!(task.contains("sentry"), "{answer}");
    wait_for("the hook's task to succeed", 30, || {
        store_rows(
            &env,
            &format!("SELECT status FROM tasks WHERE id = '{task}'"),
        ) == ["succeeded"]
    });
    drop(served);
    // The delivery reached the prompt as text (its braces are not a template).
    let prompt = std::fs::read_to_string(env.scratch("prompt.txt")).unwrap();
    assert!(
        prompt.starts_with("Fix a crash in {{ login }} (seen 12 times)."),
        "{prompt}"
    );
    // The hooks' secrets are baton's: the agent did not see them.
    let token = std::fs::read_to_string(env.scratch("token.txt")).unwrap();
    assert_eq!(token.trim(), "", "the agent saw a hook's token");
    assert_eq!(tasks(&env).len(), 1);
}

#[test]
fn a_delivery_with_the_token_starts_its_plan_with_the_delivery_as_payload() {
    let env = TestEnv::new();
    env.write("baton.toml", &plan(&env));
    let fake = fake_agent().display().to_string();
    env.write("hotfix.toml", &HOTFIX.replace("FAKE", &fake));
    env.commit_all("plans");
    let served = serve(&env);
    let body = r#"{"release": {"version": "1.2.3", "notes": null}}"#;
    let wrong = format!("Bearer {DEPLOY_TOKEN}x");
    assert_eq!(
        post(&served.url, "deploy", &[("Authorization", &wrong)], body).0,
        401
    );
    // A baton token is not the hook's token either.
    assert!(store_rows(&env, "SELECT id FROM runs").is_empty());
    let right = format!("Bearer {DEPLOY_TOKEN}");
    let (status, answer) = post(&served.url, "deploy", &[("Authorization", &right)], body);
    assert_eq!(status, 202, "{answer}");
    let run = answer["run"].as_str().unwrap().to_string();
    wait_for("the hotfix run to end", 30, || {
        store_rows(&env, &format!("SELECT status FROM runs WHERE id = '{run}'")) == ["succeeded"]
    });
    drop(served);
    let branch = format!("baton/{run}/integration");
    assert_eq!(
        show(&env, &branch, "version.txt").as_deref(),
        Some("1.2.3\n")
    );
    let plan = store_rows(
        &env,
        &format!("SELECT plan_path FROM runs WHERE id = '{run}'"),
    );
    assert!(plan[0].starts_with(".git/baton/hooks/deploy-"), "{plan:?}");
}

#[test]
fn a_server_whose_hook_has_no_secret_says_so_and_does_not_start() {
    let env = TestEnv::new();
    env.write("baton.toml", &plan(&env));
    env.write("hotfix.toml", HOTFIX);
    env.commit_all("plan");
    let out = baton(&env)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("DEPLOY_TOKEN", DEPLOY_TOKEN)
        .env_remove("SENTRY_SECRET")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("the hook \"sentry\" takes deliveries with the secret in $SENTRY_SECRET, which is not set"),
        "{err}"
    );
}
