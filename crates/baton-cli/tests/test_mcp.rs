//! baton as an MCP server, driven by the official Rust SDK's client: over
//! stdio (`baton mcp`) and over streamable HTTP (`baton serve` at /mcp).

use crate::common::*;
use crate::test_serve::serve;
use baton_testutils::TestEnv;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};

pub(crate) type Client = RunningService<RoleClient, ()>;

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn stdio_client(env: &TestEnv, args: &[&str]) -> Client {
    let mut cmd = baton(env);
    cmd.arg("mcp").args(args);
    let transport = rmcp::transport::TokioChildProcess::new(tokio::process::Command::from(cmd))
        .expect("start baton mcp");
    ().serve(transport)
        .await
        .expect("MCP handshake with baton mcp")
}

/// Calls a tool; Ok(its JSON answer) or Err(its tool error's text).
pub(crate) async fn call(client: &Client, tool: &str, args: Value) -> Result<Value, String> {
    let Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    let params = CallToolRequestParams::new(tool.to_string()).with_arguments(args);
    let res: CallToolResult = client
        .call_tool(params)
        .await
        .unwrap_or_else(|e| panic!("{tool}: the connection failed instead of a tool error: {e}"));
    let text: String = res
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect();
    if res.is_error == Some(true) {
        return Err(text);
    }
    Ok(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{tool}: not JSON ({e}): {text}")))
}

fn sh_env() -> TestEnv {
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        &bash_plan("\n[[task]]\nid = \"unused\"\nprompt = \"true\"\n"),
    );
    env.commit_all("profiles");
    env
}

const TOOLS: [&str; 16] = [
    "inbox_answer",
    "inbox_list",
    "message_read",
    "message_send",
    "plan_check",
    "run_start",
    "run_status",
    "task_add",
    "task_approve",
    "task_diff",
    "task_logs",
    "task_pick",
    "task_retry",
    "task_steer",
    "task_stop",
    "wait",
];

#[test]
fn over_stdio_a_client_checks_starts_follows_and_retries_a_run() {
    let env = sh_env();
    let marker = env.scratch("second-time");
    runtime().block_on(async {
        let client = stdio_client(&env, &[]).await;
        let mut names: Vec<String> = client
            .list_all_tools()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        names.sort();
        assert_eq!(names, TOOLS);

        // plan_check: phases, or errors with where they are.
        let ok = call(&client, "plan_check", json!({"plan": bash_plan("\n[[task]]\nid = \"a\"\nprompt = \"x\"\n\n[[task]]\nid = \"b\"\nneeds = [\"a\"]\nprompt = \"y\"\n")})).await;
        assert_eq!(ok.unwrap()["phases"], json!([["a"], ["b"]]));
        let bad = call(&client, "plan_check", json!({"plan": "[[task]]\nid = \"a\"\nneeds = [\"zz\"]\nprompt = \"x\"\n"})).await;
        let bad = bad.unwrap_err();
        assert!(bad.contains("zz") && bad.contains("plan.toml:"), "{bad}");

        // run_start with tasks (the repository's profiles), then wait.
        let flaky = format!("if [ -e {m} ]; then echo ok > flaky.txt; else touch {m}; exit 3; fi", m = marker.display());
        let started = call(&client, "run_start", json!({"tasks": [
            {"id": "a", "prompt": "echo a > a.txt", "gates": ["test -s a.txt"]},
            // After b: a failure stops new work (on_failure = "stop").
            {"id": "flaky", "needs": ["b"], "prompt": flaky},
            {"id": "b", "needs": ["a"], "prompt": "echo b > b.txt"},
        ]})).await.unwrap();
        let run = started["run"].as_str().unwrap().to_string();
        let waited = call(&client, "wait", json!({"run": run, "timeout_s": 60})).await.unwrap();
        assert_eq!(waited["done"], true);
        assert_eq!(waited["run"], run.as_str());
        let report = &waited["report"];
        assert_eq!(task(report, "b")["status"], "succeeded", "{report:#}");
        assert_eq!(task(report, "flaky")["status"], "failed");

        let diff = call(&client, "task_diff", json!({"task": "b"})).await.unwrap();
        assert!(diff["diff"].as_str().unwrap().contains("+b"), "{diff}");
        assert_eq!(diff["run"], run.as_str());
        let logs = call(&client, "task_logs", json!({"task": "flaky"})).await.unwrap();
        assert_eq!(logs["attempt"], 1);

        // Errors are tool errors that say what is wrong; the session goes on.
        let e = call(&client, "task_logs", json!({"task": "nope"})).await.unwrap_err();
        assert!(e.contains("has no task \"nope\""), "{e}");
        let e = call(&client, "task_stop", json!({"task": "b"})).await.unwrap_err();
        assert!(e.contains("not going on") || e.contains("succeeded"), "{e}");
        let e = call(&client, "task_steer", json!({"task": "b", "message": " "})).await.unwrap_err();
        assert!(e.contains("non-empty"), "{e}");
        let e = call(&client, "task_add", json!({"prompt": "more"})).await.unwrap_err();
        assert!(e.contains("not going on"), "{e}");
        let e = call(&client, "run_start", json!({"plan": "x", "path": "y"})).await.unwrap_err();
        assert!(e.contains("exactly one"), "{e}");
        let e = call(&client, "run_status", json!({"run": "no-such-run"})).await.unwrap_err();
        assert!(e.contains("no-such-run"), "{e}");
        let e = call(&client, "task_approve", json!({"task": "a"})).await.unwrap_err();
        assert!(e.contains("not going on") || e.contains("ended"), "{e}");
        let e = call(&client, "task_pick", json!({"task": "a", "candidate": "1"})).await.unwrap_err();
        assert!(e.contains("not going on") || e.contains("ended"), "{e}");
        let e = call(&client, "message_send", json!({"to": "a", "text": "hi"})).await.unwrap_err();
        assert!(e.contains("not going on"), "{e}");
        let e = call(&client, "message_read", json!({})).await.unwrap_err();
        assert!(e.contains("name the task"), "{e}");
        let read = call(&client, "message_read", json!({"task": "a"})).await.unwrap();
        assert_eq!(read["messages"], json!([]));
        let e = call(&client, "wait", json!({"task": "zz"})).await.unwrap_err();
        assert!(e.contains("no task \"zz\""), "{e}");

        // A retry reopens the finished run and drives it in the server.
        let r = call(&client, "task_retry", json!({"task": "flaky"})).await.unwrap();
        assert_eq!(r["ok"], true, "{r}");
        let waited = call(&client, "wait", json!({"task": "flaky", "timeout_s": 60})).await.unwrap();
        assert_eq!(task(&waited["report"], "flaky")["status"], "succeeded");
        let status = call(&client, "run_status", json!({})).await.unwrap();
        assert_eq!(status["run"], run.as_str());
        client.cancel().await.unwrap();
    });
}

/// A run whose task "lead" does `first`, then waits until the test opens
/// the gate; the run's process, its id and the gate.
fn gated_run(env: &TestEnv, first: &str) -> (std::process::Child, String, std::path::PathBuf) {
    let gate = env.scratch("open");
    env.write(
        "long.toml",
        &bash_plan(&format!(
            "\n[[task]]\nid = \"lead\"\nprompt = \"{first}while [ ! -e {} ]; do sleep 0.05; done\"\n",
            gate.display()
        )),
    );
    env.commit_all("long");
    let child = spawn_baton(env, &["run", "long.toml", "--json"]);
    wait_for_task(env, "lead", "running");
    let run = latest_run_opt(env).unwrap()["run"]
        .as_str()
        .unwrap()
        .to_string();
    (child, run, gate)
}

#[test]
fn task_add_grows_a_run_going_on_and_a_scoped_server_caps_it() {
    let env = sh_env();
    let (child, run, gate) = gated_run(&env, "");
    runtime().block_on(async {
        let client = stdio_client(&env, &["--run", &run, "--max-tasks", "2"]).await;
        let a = call(
            &client,
            "task_add",
            json!({"id": "one", "prompt": "echo 1 > one.txt"}),
        )
        .await
        .unwrap();
        assert_eq!(
            (a["run"].as_str(), a["task"].as_str()),
            (Some(run.as_str()), Some("one"))
        );
        // A task may need one added before it.
        call(
            &client,
            "task_add",
            json!({"id": "two", "needs": ["one"], "prompt": "cat one.txt > two.txt"}),
        )
        .await
        .unwrap();
        let e = call(
            &client,
            "task_add",
            json!({"id": "three", "prompt": "true"}),
        )
        .await
        .unwrap_err();
        assert!(e.contains("max_tasks reached") && e.contains('2'), "{e}");
        let e = call(
            &client,
            "task_add",
            json!({"id": "r", "prompt": "true", "candidates": 2}),
        )
        .await
        .unwrap_err();
        assert!(e.contains("a lead adds tasks of one agent each"), "{e}");
        let e = call(&client, "run_start", json!({"plan": "x"}))
            .await
            .unwrap_err();
        assert!(e.contains("cannot start runs"), "{e}");
        let e = call(&client, "run_status", json!({"run": "other"}))
            .await
            .unwrap_err();
        assert!(e.contains(&format!("run {run} only")), "{e}");
        let w = call(&client, "wait", json!({"task": "two", "timeout_s": 60}))
            .await
            .unwrap();
        assert_eq!(task(&w["report"], "two")["status"], "succeeded", "{w:#}");
        client.cancel().await.unwrap();
    });
    std::fs::write(&gate, "").unwrap();
    let r = parse_run(child.wait_with_output().unwrap());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(show(&env, integration, "two.txt").as_deref(), Some("1\n"));
}

#[test]
fn over_http_under_serve_with_the_api_token_rules() {
    let env = sh_env();
    let srv = serve(&env, "0.0.0.0:0");
    let url = format!("{}/mcp", srv.url.replace("0.0.0.0", "127.0.0.1"));
    runtime().block_on(async {
        use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
        use rmcp::transport::StreamableHttpClientTransport;
        // Off loopback, no token: no session.
        let refused = ().serve(StreamableHttpClientTransport::from_uri(url.as_str())).await;
        assert!(refused.is_err(), "a client without a token got in");
        let out = output(baton(&env).args(["token", "new"]));
        let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let config = StreamableHttpClientTransportConfig::with_uri(url.as_str()).auth_header(token);
        let transport = StreamableHttpClientTransport::from_config(config);
        let client = ().serve(transport).await.expect("MCP over HTTP with the token");
        assert_eq!(client.list_all_tools().await.unwrap().len(), TOOLS.len());
        let started = call(
            &client,
            "run_start",
            json!({"tasks": [
                {"id": "h", "prompt": "echo h > h.txt"},
                {"id": "r", "prompt": "echo $BATON_TASK > r.txt", "candidates": 2, "pick": "first"}
            ]}),
        )
        .await
        .unwrap();
        let run = started["run"].as_str().unwrap().to_string();
        let w = call(&client, "wait", json!({"run": run, "timeout_s": 60}))
            .await
            .unwrap();
        assert_eq!(task(&w["report"], "h")["status"], "succeeded");
        let r = task(&w["report"], "r");
        assert_eq!(r["candidates"].as_array().map(Vec::len), Some(2), "{r}");
        assert_eq!(r["merged"], true, "a race from MCP merges its winner: {r}");
        // A race waiting for approval: another candidate is picked, then approved.
        let plan = "[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\n\n[[task]]\nid = \"p\"\nagent = \"sh\"\ncandidates = 2\napprove = true\nprompt = \"echo $BATON_TASK > p.txt\"\n";
        let started = call(&client, "run_start", json!({ "plan": plan })).await.unwrap();
        let run = started["run"].as_str().unwrap().to_string();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let report = loop {
            let s = call(&client, "run_status", json!({ "run": run })).await.unwrap();
            if task(&s, "p")["status"] == "awaiting_approval" {
                break s;
            }
            assert!(std::time::Instant::now() < deadline, "{s:#}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        let loser = task(&report, "p")["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["winner"] == false)
            .map(|c| c["task"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{report:#}"));
        let picked = json!({ "run": run, "task": "p", "candidate": loser });
        call(&client, "task_pick", picked).await.unwrap();
        call(&client, "task_approve", json!({ "run": run, "task": "p" })).await.unwrap();
        let w = call(&client, "wait", json!({ "run": run, "timeout_s": 60 })).await.unwrap();
        let p = task(&w["report"], "p");
        assert_eq!(p["merged"], true, "{p}");
        let won = p["candidates"].as_array().unwrap().iter().find(|c| c["winner"] == true);
        assert_eq!(won.map(|c| c["task"].clone()), Some(json!(loser)), "{p}");
        let e = call(&client, "task_diff", json!({"task": "zz"}))
            .await
            .unwrap_err();
        assert!(e.contains("no task \"zz\""), "{e}");
        client.cancel().await.unwrap();
    });
}

#[test]
fn a_lead_task_adds_tasks_to_its_run_waits_for_them_and_synthesizes() {
    let env = TestEnv::new();
    let lead = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lead.py");
    env.write(
        "baton.toml",
        &bash_plan(&format!(
            "\n[agent.lead]\nadapter = \"exec\"\ncommand = [\"python3\", {:?}]\n\n[[task]]\nid = \"lead\"\nagent = \"lead\"\nlead = true\nmax_tasks = 3\nprompt = \"split the work\"\n",
            lead.display().to_string()
        )),
    );
    env.commit_all("plan");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let ids: Vec<&str> = r.report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["lead", "part1", "part2", "part3"]);
    let said = task(&r.report, "lead")["result"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        said.contains("fourth refused: True") && said.contains("max_tasks reached"),
        "{said}"
    );
    let integration = r.report["integration_branch"].as_str().unwrap();
    let summary = show(&env, integration, "SUMMARY.md").unwrap();
    assert_eq!(
        summary,
        "part1: succeeded: done-1\npart2: succeeded: done-2\npart3: succeeded: done-3\n"
    );
    assert_eq!(
        show(&env, integration, "part3.txt").as_deref(),
        Some("part 3\n")
    );
}

#[test]
fn messages_between_tasks_wait_for_the_next_attempt_and_a_flood_is_cut_off() {
    let env = TestEnv::new();
    let messenger =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/messenger.py");
    env.write(
        "baton.toml",
        &bash_plan(&format!(
            "\n[agent.py]\nadapter = \"exec\"\ncommand = [\"python3\", {:?}]\n\n[[task]]\nid = \"lead\"\nagent = \"py\"\nlead = true\nprompt = \"talk\"\n\n[[task]]\nid = \"worker\"\nneeds = [\"lead\"]\nprompt = 'printf \"%s\\n\" \"$BATON_MESSAGES\" > got.txt'\n",
            messenger.display().to_string()
        )),
    );
    env.commit_all("plan");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let said = task(&r.report, "lead")["result"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        said.contains("first: task \"worker\" gets the message with its next attempt"),
        "{said}"
    );
    assert!(
        said.contains("sent 20 then refused") && said.contains("in the last minute"),
        "{said}"
    );
    assert!(said.contains("worker has 20 messages"), "{said}");
    // The waiting task got them all with its first attempt.
    let got = task_show(&env, &r.report, "worker", "got.txt").unwrap();
    assert!(
        got.starts_with("Message from task \"lead\": the contract is in api.md\n"),
        "{got}"
    );
    assert_eq!(got.lines().count(), 20, "{got}");
    // Each message is an event in both transcripts.
    let count = |kind: &str, task: &str| {
        let q = format!("SELECT COUNT(*) FROM events WHERE kind = '{kind}' AND task_id = '{task}'");
        store_rows(&env, &q).concat()
    };
    assert_eq!(count("message_sent", "lead"), "20");
    assert_eq!(count("message_received", "worker"), "20");
}

#[test]
fn baton_msg_says_what_is_wrong_and_sends_nothing() {
    let env = sh_env();
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0);
    let msg = |args: &[&str]| output(baton(&env).arg("msg").args(args));
    let out = msg(&["unused", "hello"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not going on"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = msg(&["nobody", "hello"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no task \"nobody\""));
    let out = msg(&["unused", "  "]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the message is empty"));
}

/// `task_add` gets every check a plan's task gets: a context file outside
/// the repository or in `.git` is refused before anything is stored, and a
/// context that is a link (committed by an agent) is never read through.
#[test]
fn task_add_refuses_context_a_plan_could_not_have_and_no_link_is_read() {
    let env = sh_env();
    let link = "ln -s /etc/passwd notes.md; git add notes.md; git commit -qm link; ";
    let (child, run, gate) = gated_run(&env, link);
    runtime().block_on(async {
        let client = stdio_client(&env, &["--run", &run]).await;
        for (context, said) in [
            ("/etc/passwd", "must be a path inside the repository"),
            (".git/config", "inside .git"),
            ("../outside.txt", "must be a path inside the repository"),
        ] {
            let e = call(
                &client,
                "task_add",
                json!({"id": "peek", "prompt": "true", "context": [context]}),
            )
            .await
            .unwrap_err();
            assert!(e.contains(said), "{context}: {e}");
        }
        // A file of the checkout passes the checks; in the task's desk it is
        // the link the lead committed, which baton does not follow.
        env.write("notes.md", "the user's notes\n");
        call(
            &client,
            "task_add",
            json!({"id": "reader", "needs": ["lead"], "prompt": "true", "context": ["notes.md"]}),
        )
        .await
        .unwrap();
        client.cancel().await.unwrap();
    });
    std::fs::write(&gate, "").unwrap();
    let r = parse_run(child.wait_with_output().unwrap());
    let reader = task(&r.report, "reader");
    assert_eq!(reader["status"], "failed", "{reader:#}");
    let reason = reader["reason"].as_str().unwrap();
    assert!(reason.contains("is a link"), "{reason}");
    assert_eq!(
        store_rows(
            &env,
            "SELECT COUNT(*) FROM added_tasks WHERE task_id = 'peek'"
        ),
        ["0"]
    );
}

#[test]
fn inbox_tools_list_a_question_and_answer_it() {
    let env = TestEnv::new();
    let b = baton_bin();
    env.write(
        "baton.toml",
        &bash_plan(&format!(
            "\n[[task]]\nid = \"ask\"\nprompt = '''c=$({b:?} ask 'Ship it?'); echo \"$c\" > answer.txt'''\n"
        )),
    );
    env.commit_all("plan");
    let run = spawn_baton(&env, &["run", "--json"]);
    runtime().block_on(async {
        let client = stdio_client(&env, &[]).await;
        let mut items = Value::Null;
        for _ in 0..400 {
            items = call(&client, "inbox_list", json!({})).await.unwrap();
            if items["count"] == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let item = &items["items"][0];
        assert_eq!(item["text"], "Ship it?", "{items:#}");
        let id = item["id"].as_i64().unwrap();
        let wrong = call(
            &client,
            "inbox_answer",
            json!({"id": id + 1000, "text": "x"}),
        )
        .await;
        assert!(wrong.unwrap_err().contains("there is no question"));
        let ok = call(
            &client,
            "inbox_answer",
            json!({"id": id, "text": "yes, today"}),
        )
        .await;
        assert_eq!(ok.unwrap()["ok"], true);
        client.cancel().await.unwrap();
    });
    let r = parse_run(run.wait_with_output().unwrap());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        task_show(&env, &r.report, "ask", "answer.txt").as_deref(),
        Some("yes, today\n")
    );
}
