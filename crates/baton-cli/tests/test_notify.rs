//! Notifications you can act on: `baton serve` tells an ntfy topic (the
//! stand-in speaks ntfy's JSON publishing) when an agent asks or a task
//! waits for approval, with action links a phone taps: each works once,
//! a forged one does nothing, and opening one in a browser only shows what
//! it would do. Quiet hours hold what comes in.

use crate::common::*;
use crate::test_serve::{http_get, http_post};
use baton_testutils::ntfy::Ntfy;
use baton_testutils::TestEnv;
use serde_json::Value;

/// The path and token of an action link (`http://host/api/act/<token>`).
fn act_path(url: &str) -> String {
    let at = url.find("/api/act/").expect("an action link");
    url[at..].to_string()
}

fn body(text: &str) -> Value {
    serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap_or("")).unwrap_or(Value::Null)
}

#[test]
fn a_phone_answers_and_approves_through_ntfy_action_links_each_once() {
    // A protected topic: the token goes in a header, never in a message.
    let ntfy = Ntfy::start(Some("tk_phone_topic_token_77"));
    let env = TestEnv::new();
    let b = baton_bin();
    let plan = format!(
        "[notify]\nntfy = {:?}\nntfy_token_env = \"NTFY_TOKEN\"\n\n[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\nenv = {{ API_TOKEN = \"sekrit-value-0451\" }}\n\n[defaults]\nagent = \"sh\"\n\n[[task]]\nid = \"ask\"\nprompt = '''c=$({b:?} ask \"Colour? (token $API_TOKEN)\" --option red --option blue); echo \"$c\" > colour.txt'''\n\n[[task]]\nid = \"ship\"\nneeds = [\"ask\"]\napprove = true\nprompt = \"echo v1 > release.txt\"\n",
        ntfy.topic_url("baton-test")
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let srv = serve_with_env(&env, &[("NTFY_TOKEN", "tk_phone_topic_token_77")]);
    let run = spawn_baton(&env, &["run", "--json"]);
    let of_kind = |k: &str| {
        ntfy.messages()
            .into_iter()
            .find(|m| m["tags"] == serde_json::json!([k]))
    };
    wait_for("the question on ntfy", 30, || of_kind("question").is_some());
    let q = of_kind("question").unwrap();
    assert_eq!(q["topic"], "baton-test");
    assert_eq!(q["title"], "ask asks");
    assert_eq!(q["priority"], 4);
    let text = q["message"].as_str().unwrap();
    assert!(text.contains("Colour?"), "{q:#}");
    for secret in ["sekrit-value-0451", "tk_phone_topic_token_77"] {
        assert!(
            !q.to_string().contains(secret),
            "a secret reached ntfy: {q:#}"
        );
    }
    assert!(q["click"].as_str().unwrap().contains("task=ask"), "{q:#}");
    let labels: Vec<&str> = q["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["red", "blue"]);
    let blue = act_path(q["actions"][1]["url"].as_str().unwrap());
    let red = act_path(q["actions"][0]["url"].as_str().unwrap());
    assert_eq!(q["actions"][1]["method"], "POST");
    // A forged link (another signature) changes nothing.
    let (head, _) = blue.rsplit_once('.').unwrap();
    let forged = format!("{head}.{}", "0".repeat(64));
    let (status, said) = http_post(&srv.url, &forged, "", None);
    assert_eq!(status, 401, "{said}");
    assert_eq!(
        store_rows(
            &env,
            "SELECT COUNT(*) FROM questions WHERE answered_at IS NOT NULL"
        ),
        ["0"]
    );
    // Opening it in a browser only shows what it would do.
    let (status, page) = http_get(&srv.url, &blue, None);
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Answer &quot;blue&quot;") && page.contains("method=\"post\""),
        "{page}"
    );
    assert_eq!(
        store_rows(
            &env,
            "SELECT COUNT(*) FROM questions WHERE answered_at IS NOT NULL"
        ),
        ["0"]
    );
    // The phone's tap: a POST with no token.
    let (status, said) = http_post(&srv.url, &blue, "", None);
    assert_eq!(status, 200, "{said}");
    assert_eq!(body(&said)["ok"], true, "{said}");
    // Used, and the other choice gone with the question: both refused.
    let (status, said) = http_post(&srv.url, &blue, "", None);
    assert_eq!(status, 410, "{said}");
    assert!(said.contains("used already"), "{said}");
    let (status, _) = http_post(&srv.url, &red, "", None);
    assert_eq!(status, 410);
    // The approval that follows comes with its button.
    wait_for("the approval on ntfy", 30, || of_kind("approval").is_some());
    let a = of_kind("approval").unwrap();
    assert_eq!(a["actions"][0]["label"], "Approve", "{a:#}");
    let approve = act_path(a["actions"][0]["url"].as_str().unwrap());
    // As ntfy's web app sends it: from another site, with no JSON body.
    let said = tap_from_elsewhere(&srv.url, &approve);
    assert!(said.starts_with("HTTP/1.1 200"), "{said}");
    let r = parse_run(run.wait_with_output().unwrap());
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    assert_eq!(
        task_show(&env, &r.report, "ask", "colour.txt").as_deref(),
        Some("blue\n")
    );
    assert_eq!(task(&r.report, "ship")["merged"], true);
    // The run's end is told too, once; every item once.
    wait_for("the run's end on ntfy", 20, || of_kind("run").is_some());
    let kinds: Vec<String> = ntfy
        .messages()
        .iter()
        .map(|m| m["tags"][0].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        kinds,
        ["question", "approval", "run"],
        "{:#?}",
        ntfy.messages()
    );
}

/// ntfy is down when a task waits for approval: the notice is sent again
/// a little later, and arrives once.
#[test]
fn a_notice_that_fails_is_sent_again_once_its_server_is_back() {
    let ntfy = Ntfy::start(None);
    ntfy.fail_next(1);
    let env = TestEnv::new();
    let plan = format!(
        "[notify]\nntfy = {:?}\n\n[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\n\n[defaults]\nagent = \"sh\"\n\n[[task]]\nid = \"ship\"\napprove = true\nprompt = \"echo v1 > release.txt\"\n",
        ntfy.topic_url("retry")
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let (mut srv, _) = serve_logged(&env, "serve.log", &[]);
    let mut run = spawn_baton(&env, &["run", "--json"]);
    let approvals = || {
        ntfy.messages()
            .into_iter()
            .filter(|m| m["tags"] == serde_json::json!(["approval"]))
            .count()
    };
    wait_for("the approval, on a later try", 30, || approvals() == 1);
    // ntfy holds the message before its answer reaches baton, which logs
    // the success only then: wait for the line, not just the message.
    let log = || std::fs::read_to_string(env.scratch("serve.log")).unwrap_or_default();
    wait_for("the later try in the log", 10, || {
        log().contains("on a later try")
    });
    assert!(log().contains("notify: ntfy failed"), "{}", log());
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(approvals(), 1, "{:#?}", ntfy.messages());
    let _ = run.kill();
    let _ = run.wait();
    let _ = srv.kill();
    let _ = srv.wait();
}

#[test]
fn quiet_hours_hold_notifications() {
    let ntfy = Ntfy::start(Some("tk_secret_ntfy_token"));
    let env = TestEnv::new();
    // Quiet from a minute ago for two hours (local time, as the server reads it).
    let out = std::process::Command::new("date")
        .args(["-d", "-1 min", "+%H:%M"])
        .output()
        .unwrap();
    let from = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out = std::process::Command::new("date")
        .args(["-d", "+2 hours", "+%H:%M"])
        .output()
        .unwrap();
    let to = String::from_utf8_lossy(&out.stdout).trim().to_string();
    env.write(
        "baton.toml",
        &bash_plan(&format!(
            "\n[notify]\nntfy = {:?}\nntfy_token_env = \"NTFY_TOKEN\"\nquiet_hours = \"{from}-{to}\"\n\n[[task]]\nid = \"ship\"\napprove = true\nprompt = \"echo v1 > release.txt\"\n",
            ntfy.topic_url("quiet")
        )),
    );
    env.commit_all("plan");
    let _srv = serve_with_env(&env, &[("NTFY_TOKEN", "tk_secret_ntfy_token")]);
    let run = spawn_baton(&env, &["run"]);
    wait_for("the approval in the inbox", 30, || {
        store_rows(&env, "SELECT status FROM tasks WHERE id = 'ship'").concat()
            == "awaiting_approval"
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(
        ntfy.messages().is_empty(),
        "told in quiet hours: {:#?}",
        ntfy.messages()
    );
    let out = output(baton(&env).args(["approve", "ship"]));
    assert!(out.status.success());
    drop(run);
}

/// `baton serve` with more environment variables.
fn serve_with_env(env: &TestEnv, vars: &[(&str, &str)]) -> crate::test_serve::Server {
    crate::test_serve::serve_env(env, "127.0.0.1:0", vars)
}

/// A POST as a phone app or another site's page makes it: no token, a
/// form's content type, marked cross-site; the whole answer.
fn tap_from_elsewhere(url: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let host = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: https://ntfy.sh\r\nSec-Fetch-Site: cross-site\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn web_push_reaches_a_subscribed_browser_encrypted_and_its_buttons_act() {
    use baton_testutils::push::PushService;
    let push = PushService::start();
    let env = TestEnv::new();
    let b = baton_bin();
    env.write(
        "baton.toml",
        &bash_plan(&format!(
            "\n[[task]]\nid = \"ask\"\nprompt = '''c=$({b:?} ask 'Colour?' --option red --option blue); echo \"$c\" > colour.txt'''\n\n[[task]]\nid = \"ship\"\nneeds = [\"ask\"]\napprove = true\nprompt = \"echo v1 > release.txt\"\n"
        )),
    );
    env.commit_all("plan");
    let srv = crate::test_serve::serve(&env, "127.0.0.1:0");
    let out = output(baton(&env).args(["token", "new"]));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (status, key) = http_get(&srv.url, "/api/push/key", Some(&token));
    assert_eq!(status, 200, "{key}");
    let public = body(&key)["public_key"].as_str().unwrap().to_string();
    assert_eq!(
        public.len(),
        87,
        "an uncompressed P-256 key, base64url: {public}"
    );
    // A subscription is checked, then kept.
    let bad = r#"{"endpoint":"http://x/1","keys":{"p256dh":"AAAA","auth":"BBBB"}}"#;
    assert_eq!(
        http_post(&srv.url, "/api/push/subscriptions", bad, Some(&token)).0,
        400
    );
    let sub = push.subscribe().to_string();
    let (status, said) = http_post(&srv.url, "/api/push/subscriptions", &sub, Some(&token));
    assert_eq!(status, 201, "{said}");
    let run = spawn_baton(&env, &["run", "--json"]);
    wait_for("the question pushed", 30, || !push.messages().is_empty());
    let (n, q, headers) = push.messages().remove(0);
    assert_eq!(n, 0);
    assert_eq!(q["title"], "baton: ask asks", "{q:#}");
    assert!(q["body"].as_str().unwrap().contains("Colour?"), "{q:#}");
    assert_eq!(q["kind"], "question");
    let header = |k: &str| headers.iter().find(|(h, _)| h == k).map(|(_, v)| v.clone());
    assert_eq!(header("content-encoding").as_deref(), Some("aes128gcm"));
    assert!(header("authorization")
        .unwrap()
        .ends_with(&format!("k={public}")));
    let labels: Vec<&str> = q["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["title"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["red", "blue"]);
    let action = q["actions"][1]["action"].as_str().unwrap();
    let link = act_path(q["links"][action].as_str().unwrap());
    let (status, said) = http_post(&srv.url, &link, "", None);
    assert_eq!(status, 200, "{said}");
    // The browser is gone: the next push is refused (410) and it is forgotten.
    push.make_gone(0);
    wait_for("the approval, and the subscription forgotten", 30, || {
        store_rows(&env, "SELECT COUNT(*) FROM push_subscriptions").concat() == "0"
    });
    assert_eq!(
        push.messages().len(),
        1,
        "nothing was delivered to a gone subscription"
    );
    let out = output(baton(&env).args(["approve", "ship"]));
    assert!(out.status.success());
    let r = parse_run(run.wait_with_output().unwrap());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        task_show(&env, &r.report, "ask", "colour.txt").as_deref(),
        Some("blue\n")
    );
}

#[test]
fn claude_code_is_answered_from_a_phone_and_goes_on_in_its_session() {
    use crate::test_real_agents::{bins, profile_with};
    use baton_testutils::model_server::{ModelServer, Scripts, Step};
    let Some(bins) = bins(&["claude"]) else {
        return;
    };
    let server = ModelServer::start(Scripts::new().script(
        "ask",
        vec![
            Step::run("sleep 1"),
            Step::call(
                "mcp__baton__ask",
                serde_json::json!({"question": "Which region?", "options": ["eu", "us"]}),
            ),
            Step::say("Asked; waiting."),
            Step::write("region.txt", "us\n"),
            Step::say("deployed to us"),
        ],
    ));
    let ntfy = Ntfy::start(None);
    let env = TestEnv::new();
    let plan = format!(
        "[notify]\nntfy = {:?}\n\n{}[[task]]\nid = \"t\"\nagent = \"claude\"\nprompt = \"Deploy. [[script:ask]]\"\ntimeout = \"4m\"\n",
        ntfy.topic_url("phone"),
        profile_with(&env, "claude", &bins[0], &server, &[], "")
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let srv = serve_with_env(&env, &[]);
    let run = spawn_baton(&env, &["run", "--json"]);
    wait_for("the question on the phone", 120, || {
        !ntfy.messages().is_empty()
    });
    let q = ntfy.messages().remove(0);
    assert!(
        q["message"].as_str().unwrap().contains("Which region?"),
        "{q:#}"
    );
    let us = q["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["label"] == "us")
        .unwrap()
        .clone();
    // Tapped once the agent has ended its turn (a tap while it still runs
    // reaches it on its input instead, in the same attempt).
    wait_waiting(&env, "t", 60);
    let said = tap_from_elsewhere(&srv.url, &act_path(us["url"].as_str().unwrap()));
    assert!(said.starts_with("HTTP/1.1 200"), "{said}");
    let r = parse_run(run.wait_with_output().unwrap());
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let t = task(&r.report, "t");
    assert_eq!(t["result"], "deployed to us");
    assert_eq!(t["attempts"], 2);
    let answered = server
        .requests()
        .iter()
        .any(|r| r.body.to_string().contains("\\\"Which region?\\\" is: us"));
    assert!(
        answered,
        "the tapped answer reached the model in the agent's session"
    );
    let sessions = store_rows(&env, "SELECT COUNT(DISTINCT session_id) FROM attempts WHERE task_id = 't' AND session_id IS NOT NULL");
    assert_eq!(sessions, ["1"]);
}
