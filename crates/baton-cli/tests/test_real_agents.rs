//! The real agent CLIs (Claude Code, Codex, Gemini CLI, opencode, aider, at
//! the versions scripts/install-agents.sh pins) under baton, against the
//! scripted model server on 127.0.0.1. With BATON_REQUIRE_AGENTS=1 (set by
//! scripts/test.sh, which installs them) a missing CLI fails the test;
//! otherwise such a test says so and passes without running.

use crate::common::*;
use baton_testutils::model_server::{
    agent_bin, agent_env, baton_profile, ModelServer, Scripts, Step,
};
use baton_testutils::TestEnv;
use std::path::PathBuf;

/// The CLIs' binaries, or None (after saying why) when they are not installed.
pub(crate) fn bins(agents: &[&str]) -> Option<Vec<PathBuf>> {
    let found: Vec<Option<PathBuf>> = agents.iter().map(|a| agent_bin(a)).collect();
    if found.iter().all(Option::is_some) {
        return Some(found.into_iter().flatten().collect());
    }
    let missing: Vec<&str> = agents
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(a, _)| *a)
        .collect();
    let msg = format!("agent CLIs not installed: {missing:?}; run scripts/install-agents.sh");
    if std::env::var("BATON_REQUIRE_AGENTS").is_ok_and(|v| v == "1") {
        panic!("{msg}");
    }
    eprintln!("skipped: {msg}");
    None
}

/// A profile that runs `agent`'s real CLI against `server`, hermetically.
fn profile(env: &TestEnv, agent: &str, bin: &std::path::Path, server: &ModelServer) -> String {
    profile_with(env, agent, bin, server, &[], "")
}

/// [`profile`] with more environment variables and more profile settings.
pub(crate) fn profile_with(
    env: &TestEnv,
    agent: &str,
    bin: &std::path::Path,
    server: &ModelServer,
    more_env: &[(&str, &str)],
    more: &str,
) -> String {
    let home = env.scratch(&format!("home-{agent}"));
    baton_profile(agent, agent, bin, &server.url(), &home, more_env, more)
}

fn attempts_sessions(env: &TestEnv, task: &str) -> Vec<String> {
    let out = output(baton(env).args(["logs", task]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let re = regex::Regex::new(r#""(?:session_id|thread_id|sessionID)":"([^"]+)""#).unwrap();
    let mut ids: Vec<String> = Vec::new();
    let heads = regex::Regex::new(r"==> (?:resolution )?attempt ").unwrap();
    for block in heads.split(&text).skip(1) {
        if let Some(c) = re.captures(block) {
            ids.push(c[1].to_string());
        }
    }
    ids
}

#[test]
fn every_agent_writes_its_file_in_parallel_and_everything_merges() {
    five_agents_write_and_merge(false);
}

/// The five CLIs under `sandbox = "bwrap"`, the model server the only host
/// they may reach.
#[test]
fn every_agent_does_its_task_inside_the_sandbox_with_only_the_model_server_reachable() {
    five_agents_write_and_merge(true);
}

fn five_agents_write_and_merge(sandboxed: bool) {
    let agents = ["claude", "codex", "gemini", "opencode", "aider"];
    let Some(bins) = bins(&agents) else { return };
    let mut scripts = Scripts::new();
    for a in agents {
        scripts = scripts.script(
            a,
            vec![
                Step::write(&format!("{a}.txt"), &format!("written by {a}\n")),
                Step::say(&format!("{a} wrote its file")),
            ],
        );
    }
    let server = ModelServer::start(scripts);
    let env = TestEnv::new();
    let mut plan = String::from("[run]\nmax_parallel = 5\n\n");
    let host = server
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    for (a, bin) in agents.iter().zip(&bins) {
        let mut p = profile(&env, a, bin, &server);
        if sandboxed {
            let rules = format!("\nsandbox = \"bwrap\"\nnetwork = [\"{host}\"]\n");
            p = p.replacen('\n', &rules, 1);
        }
        plan.push_str(&p);
    }
    let r = run_file_tasks(&env, &agents, plan);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let integ = r.report["integration_branch"].as_str().unwrap();
    for a in agents {
        let t = task(&r.report, a);
        assert_eq!(t["status"], "succeeded", "{a}: {t}");
        assert_eq!(t["merged"], true, "{a}");
        assert_eq!(
            show(&env, integ, &format!("{a}.txt")).as_deref(),
            Some(format!("written by {a}\n").as_str()),
            "{a}'s file merged"
        );
        assert!(
            t["usage"]["input_tokens"].as_i64().unwrap_or(0) >= 100,
            "{a} usage recorded: {t}"
        );
        assert!(
            t["usage"]["output_tokens"].as_i64().unwrap_or(0) >= 20,
            "{a} usage recorded: {t}"
        );
    }
    // Claude Code states its cost; the others' mock model has no price: unknown, not zero.
    assert!(task(&r.report, "claude")["usage"]["cost_usd"]
        .as_f64()
        .is_some());
    assert!(task(&r.report, "codex")["usage"]["cost_usd"].is_null());
    let out = output(baton(&env).args(["logs", "claude"]));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("mock-key"),
        "the API key is masked in logs"
    );
    if sandboxed {
        let q = "SELECT COUNT(*) FROM events WHERE kind = 'sandbox_connection' AND data LIKE '%\"allowed\":true%'";
        let n: u32 = store_rows(&env, q).concat().parse().unwrap_or(0);
        assert!(
            n >= 5,
            "every agent reached the model server through the proxy ({n} connections)"
        );
    }
}

/// Runs `plan` with a task per agent that writes `<agent>.txt` (its
/// script's name is the agent's); the logs of those that did not succeed
/// are printed.
pub(crate) fn run_file_tasks(env: &TestEnv, agents: &[&str], plan: String) -> RunOutput {
    write_file_tasks(env, agents, plan);
    let r = run_json(env, &[]);
    for a in agents
        .iter()
        .filter(|a| task(&r.report, a)["status"] != "succeeded")
    {
        let out = output(baton(env).args(["logs", a]));
        eprintln!("--- {a}'s log:\n{}", String::from_utf8_lossy(&out.stdout));
    }
    r
}

/// Writes `plan` with a task per agent (named after it, its script of the
/// same name, creating `<agent>.txt`) as the repository's `baton.toml`.
pub(crate) fn write_file_tasks(env: &TestEnv, agents: &[&str], mut plan: String) {
    for a in agents {
        // aider edits the files in its chat: the task names it as context.
        let context = if *a == "aider" {
            "context = [\"aider.txt\"]\n"
        } else {
            ""
        };
        plan.push_str(&format!("[[task]]\nid = \"{a}\"\nagent = \"{a}\"\nprompt = \"Create {a}.txt. [[script:{a}]]\"\ntimeout = \"4m\"\n{context}\n"));
    }
    env.write("aider.txt", "");
    env.commit_all("an empty file for aider to edit");
    env.write("baton.toml", &plan);
}

fn retry_resumes(agent: &str) {
    let Some(bins) = bins(&[agent]) else { return };
    let server = ModelServer::start(Scripts::new().script(
        "fix",
        vec![
            Step::write("answer.txt", "41\n"),
            Step::say("wrote 41"),
            Step::write("answer.txt", "42\n"),
            Step::say("fixed it"),
        ],
    ));
    let env = TestEnv::new();
    let plan = format!(
        "{}[[task]]\nid = \"t\"\nagent = \"{agent}\"\nprompt = \"Write the answer. [[script:fix]]\"\ngates = [\"grep -q 42 answer.txt\"]\nretries = 1\ntimeout = \"4m\"\n",
        profile(&env, agent, &bins[0], &server)
    );
    env.write("baton.toml", &plan);
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let t = task(&r.report, "t");
    assert_eq!(t["attempts"], 2);
    assert_eq!(t["result"], "fixed it");
    let sessions = attempts_sessions(&env, "t");
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert_eq!(
        sessions[0], sessions[1],
        "the retry continued the agent's session"
    );
    // The resumed request carried the whole conversation plus the gate's feedback.
    let fed = server.requests().iter().any(|q| {
        let body = q.body.to_string();
        body.contains("[[script:fix]]") && body.contains("grep -q 42 answer.txt")
    });
    assert!(fed, "the feedback reached the model in the resumed session");
}

#[test]
fn a_retry_resumes_the_claude_session() {
    retry_resumes("claude");
}

#[test]
fn a_retry_resumes_the_codex_session() {
    retry_resumes("codex");
}

#[test]
fn a_budget_stops_an_agent_mid_run() {
    let Some(bins) = bins(&["claude"]) else {
        return;
    };
    // Each model call costs about $0.30 at these prices: the first fits the
    // $0.50 budget, the second crosses it before its tool call runs.
    let server = ModelServer::start(Scripts::new().script(
        "spend",
        vec![
            Step::write("spent.txt", "started\n"),
            Step::write("second.txt", "never\n"),
            Step::say("finished"),
        ],
    ));
    let env = TestEnv::new();
    let plan = format!(
        "[prices.\"claude-*\"]\ninput = 3000.0\noutput = 3000.0\n\n{}[[task]]\nid = \"t\"\nagent = \"claude\"\nprompt = \"Spend. [[script:spend]]\"\nbudget_usd = 0.5\nretries = 2\ntimeout = \"4m\"\n",
        // Behind the model gateway (as every profile with a key is): the answer that crosses the budget is
        // the agent's (and the tool call in it may run), but the request
        // after it is refused at the gateway and never reaches the model. A
        // budget read from the agent's own stream could only stop it after
        // the fact, racing the crossing turn's tool call.
        profile_with(&env, "claude", &bins[0], &server, &[], "")
    );
    env.write("baton.toml", &plan);
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let t = task(&r.report, "t");
    assert_eq!(t["status"], "failed");
    assert_eq!(t["attempts"], 1, "a budget stop is not retried");
    assert!(
        t["reason"].as_str().unwrap().starts_with("budget exceeded"),
        "{t}"
    );
    assert_ne!(t["result"], "finished", "stopped before the end");
    let branch = t["branch"].as_str().unwrap();
    assert_eq!(
        show(&env, branch, "spent.txt").as_deref(),
        Some("started\n"),
        "its work is kept"
    );
    // Nothing reached the model after the budget was crossed: the third
    // step (the one after the crossing turn) was never played.
    let played: Vec<usize> = server
        .requests()
        .iter()
        .filter(|q| q.script.as_deref() == Some("spend"))
        .filter_map(|q| q.step)
        .collect();
    assert!(
        !played.contains(&2),
        "a request went on after the budget: {played:?}"
    );
    let cost = t["usage"]["cost_usd"].as_f64().unwrap();
    assert!(
        cost > 0.5 && cost < 0.5 + 0.37,
        "${cost}: at most one turn past the budget"
    );
}

#[test]
fn an_api_error_fails_the_attempt_with_a_reason() {
    let agents = ["claude", "codex", "gemini", "opencode"];
    let Some(bins) = bins(&agents) else { return };
    let server = ModelServer::start(Scripts::new().script("bad", vec![Step::HttpError(400)]));
    let env = TestEnv::new();
    let mut plan = String::from("[run]\nmax_parallel = 4\n\n");
    for (a, bin) in agents.iter().zip(&bins) {
        plan.push_str(&profile(&env, a, bin, &server));
    }
    for a in agents {
        plan.push_str(&format!("[[task]]\nid = \"{a}\"\nagent = \"{a}\"\nprompt = \"Fail. [[script:bad]]\"\ntimeout = \"3m\"\non_failure = \"continue\"\n\n"));
    }
    env.write("baton.toml", &plan);
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1);
    for a in agents {
        let t = task(&r.report, a);
        assert_eq!(t["status"], "failed", "{a}: {t}");
        let reason = t["reason"].as_str().unwrap();
        assert!(
            reason.contains("400"),
            "{a}: the reason says what the API said: {reason}"
        );
    }
}

/// A scripted model whose first turn is slow enough for a steer to come
/// while the agent runs: it writes first.txt, then (after 8 s) ends its
/// turn; a second turn writes second.txt.
pub(crate) fn steer_server(script: &str) -> ModelServer {
    ModelServer::start(Scripts::new().script(
        script,
        vec![
            Step::write("first.txt", "1\n"),
            Step::slow(8.0, Step::say("first turn done")),
            Step::write("second.txt", "2\n"),
            Step::say("did what you asked"),
        ],
    ))
}

/// Steers task `id` once its agent made its first request, and checks the
/// message reached the running agent (one attempt, a second turn that did
/// what it said); the run's report.
pub(crate) fn steer_mid_turn(
    env: &TestEnv,
    child: std::process::Child,
    server: &ModelServer,
    id: &str,
) -> serde_json::Value {
    wait_for("the agent's first model request", 120, || {
        server.requests().iter().any(|q| q.step == Some(1))
    });
    let out = output(baton(env).args(["steer", id, "also write second.txt"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = parse_run(child.wait_with_output_timeout(std::time::Duration::from_secs(240)));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = task(&r.report, id);
    assert_eq!(
        t["attempts"], 1,
        "the message reached the running agent: no new attempt"
    );
    assert_eq!(t["result"], "did what you asked");
    assert!(show(env, t["branch"].as_str().unwrap(), "second.txt").is_some());
    assert!(server
        .requests()
        .iter()
        .any(|q| q.body.to_string().contains("also write second.txt")));
    r.report
}

#[test]
fn steering_reaches_a_running_claude_code() {
    let Some(bins) = bins(&["claude"]) else {
        return;
    };
    let server = steer_server("steer");
    let env = TestEnv::new();
    let plan = format!(
        "{}[[task]]\nid = \"t\"\nagent = \"claude\"\nprompt = \"Begin. [[script:steer]]\"\ntimeout = \"4m\"\n",
        profile(&env, "claude", &bins[0], &server)
    );
    env.write("baton.toml", &plan);
    let child = spawn_baton(&env, &["run", "--json"]);
    steer_mid_turn(&env, child, &server, "t");
}

#[test]
fn a_retry_resumes_the_gemini_session() {
    retry_resumes("gemini");
}

#[test]
fn a_retry_resumes_the_opencode_session() {
    retry_resumes("opencode");
}

#[test]
fn a_cli_that_retries_forever_ends_at_the_timeout_with_its_last_error() {
    let Some(bins) = bins(&["codex"]) else { return };
    // A server that is gone: codex retries a refused connection forever.
    let server = ModelServer::start(Scripts::new());
    let env = TestEnv::new();
    let mut plan = profile(&env, "codex", &bins[0], &server);
    drop(server);
    plan.push_str("[[task]]\nid = \"t\"\nagent = \"codex\"\nprompt = \"x\"\ntimeout = \"8s\"\n");
    env.write("baton.toml", &plan);
    let t0 = std::time::Instant::now();
    let r = run_json(&env, &[]);
    assert!(t0.elapsed().as_secs() < 40, "bounded by the timeout");
    let t = task(&r.report, "t");
    assert_eq!(t["status"], "failed");
    let reason = t["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("attempt 1 timed out after 8.0s"),
        "{reason}"
    );
}

#[test]
fn claude_code_resolves_a_conflict_in_its_own_session_and_the_task_lands() {
    let Some(bins) = bins(&["claude"]) else {
        return;
    };
    // Claude's second turn after the task's prompt is the resolution: the
    // resolver continues the task's session, so the script goes on.
    let server = ModelServer::start(Scripts::new().script(
        "b",
        vec![
            Step::run("sleep 1; printf 'from b\\n' > shared.txt"),
            Step::say("b wrote it"),
            Step::run("printf 'from a\\nfrom b\\n' > shared.txt"),
            Step::say("kept both sides"),
        ],
    ));
    let env = TestEnv::new();
    let plan = format!(
        r#"{}[agent.sh]
adapter = "exec"
command = ["bash", "-ec"]

[run]
max_parallel = 2

[[task]]
id = "a"
agent = "sh"
prompt = "printf 'from a\n' > shared.txt"

[[task]]
id = "b"
agent = "claude"
on_conflict = "resolve"
prompt = "Write shared.txt. [[script:b]]"
gates = ["! grep -q '<<<<<<<' shared.txt"]
timeout = "4m"
"#,
        profile(&env, "claude", &bins[0], &server)
    );
    env.write("baton.toml", &plan);
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let b = task(&r.report, "b");
    assert_eq!(
        (b["merged"].as_bool(), b["attempts"].as_u64()),
        (Some(true), Some(2)),
        "{b}"
    );
    assert_eq!(b["result"], "kept both sides");
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(
        show(&env, integration, "shared.txt").as_deref(),
        Some("from a\nfrom b\n")
    );
    // The resolution prompt reached the model in the task's own session.
    let told = server.requests().iter().any(|q| {
        let body = q.body.to_string();
        body.contains("[[script:b]]") && body.contains("shared.txt") && body.contains("from a")
    });
    assert!(told, "the model was told of the conflict");
    let sessions = attempts_sessions(&env, "b");
    let logs =
        String::from_utf8_lossy(&output(baton(&env).args(["logs", "b"])).stdout).into_owned();
    assert!(
        logs.contains("==> resolution attempt 2 (succeeded)"),
        "{logs}"
    );
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert_eq!(
        sessions[0], sessions[1],
        "the resolver continued the task's session"
    );
}

#[test]
fn claude_code_plans_with_baton_plan_and_the_plan_runs() {
    let Some(bins) = bins(&["claude"]) else {
        return;
    };
    let plan = "[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\n\n[defaults]\nagent = \"sh\"\n\n[[task]]\nid = \"api\"\nprompt = \"echo 'fn search() {}' > search.rs\"\ngates = [\"test -s search.rs\"]\n\n[[task]]\nid = \"docs\"\nneeds = [\"api\"]\nprompt = \"echo 'search is in search.rs' > SEARCH.md\"\n";
    let server = ModelServer::start(Scripts::new().script(
        "plan",
        vec![
            Step::run(&format!("cat > \"$BATON_PLAN_OUT\" <<'PLAN'\n{plan}PLAN")),
            Step::say("Two tasks: the API first, then its docs."),
        ],
    ));
    let env = TestEnv::new();
    env.write("baton.toml", &profile(&env, "claude", &bins[0], &server));
    env.commit_all("profiles");
    let out = output(baton(&env).args([
        "plan",
        "Add a search function and document it. [[script:plan]]",
        "-o",
        "search.toml",
        "--run",
        "--yes",
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("planner: Two tasks: the API first, then its docs."),
        "{stdout}"
    );
    assert!(
        stdout.contains("phase 2:\n  docs [sh] needs api"),
        "{stdout}"
    );
    // The model was given the goal, the rules and the format.
    let asked = server.requests().iter().any(|q| {
        let body = q.body.to_string();
        body.contains("Add a search function")
            && body.contains("Contracts first")
            && body.contains("[[task]]")
    });
    assert!(asked, "the planner's prompt reached the model");
    let report = latest_run_opt(&env).unwrap();
    assert_eq!(report["plan"], "search.toml");
    let integration = report["integration_branch"].as_str().unwrap();
    assert_eq!(
        show(&env, integration, "SEARCH.md").as_deref(),
        Some("search is in search.rs\n")
    );
}

/// The text of a Claude Code stream's tool results, in order.
fn tool_results(stream: &str) -> Vec<String> {
    stream
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "user")
        .flat_map(|v| {
            v["message"]["content"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|c| c["type"] == "tool_result")
        .map(|c| c["content"].to_string())
        .collect()
}

#[test]
fn claude_code_conducts_a_run_through_baton_mcp() {
    let Some(bins) = bins(&["claude"]) else {
        return;
    };
    let server = ModelServer::start(Scripts::new().script(
        "conduct",
        vec![
            // As above: the MCP tools may join after the first request.
            Step::run("sleep 1"),
            Step::call(
                "mcp__baton__run_start",
                serde_json::json!({"tasks": [
                    {"id": "api", "prompt": "echo 'fn search() {}' > search.rs", "gates": ["test -s search.rs"]},
                    {"id": "docs", "needs": ["api"], "prompt": "echo 'search is in search.rs' > SEARCH.md"},
                ]}),
            ),
            Step::call("mcp__baton__wait", serde_json::json!({"timeout_s": 120})),
            Step::say("The run finished: api and docs are merged."),
        ],
    ));
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        &bash_plan("\n[[task]]\nid = \"unused\"\nprompt = \"true\"\n"),
    );
    env.commit_all("profiles");
    let config = env.scratch("mcp.json");
    let mcp = serde_json::json!({"mcpServers": {"baton": {"type": "stdio", "command": baton_bin(),
        "args": ["-C", env.repo.display().to_string(), "mcp"]}}});
    std::fs::write(&config, mcp.to_string()).unwrap();
    let home = env.scratch("home-claude");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = env.command(&bins[0]);
    cmd.envs(agent_env("claude", &server.url(), &home))
        .args([
            "-p",
            "Build search with baton and report. [[script:conduct]]",
        ])
        .args([
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            "bypassPermissions",
        ])
        // Last: --mcp-config takes every argument after it.
        .arg("--mcp-config")
        .arg(&config)
        .stdin(std::process::Stdio::null());
    let out = output(&mut cmd);
    let stream = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stream}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The run happened and merged.
    let report = latest_run_opt(&env).unwrap();
    assert_eq!(report["status"], "succeeded", "{report:#}");
    let integration = report["integration_branch"].as_str().unwrap();
    assert_eq!(
        show(&env, integration, "SEARCH.md").as_deref(),
        Some("search is in search.rs\n")
    );
    // And its results came back to the agent, in its transcript.
    // (the first is the shell step's)
    let results = tool_results(&stream);
    assert_eq!(results.len(), 3, "{stream}");
    assert!(
        results[1].contains(report["run"].as_str().unwrap()),
        "{}",
        results[1]
    );
    assert!(
        results[2].contains("\\\"done\\\": true") && results[2].contains("succeeded"),
        "{}",
        results[2]
    );
    assert!(stream.contains("The run finished: api and docs are merged."));
}

#[test]
fn claude_code_as_a_lead_task_grows_its_run_and_reports() {
    let Some(bins) = bins(&["claude"]) else {
        return;
    };
    let add = |id: &str| {
        Step::call(
            "mcp__baton__task_add",
            serde_json::json!({"id": id, "prompt": format!("echo {id} > {id}.txt; echo wrote {id}")}),
        )
    };
    let server = ModelServer::start(Scripts::new().script(
        "lead",
        vec![
            // Claude Code connects its MCP servers while it starts; on a busy
            // machine the tools may join the second request, not the first.
            Step::run("sleep 1"),
            add("one"),
            add("two"),
            add("three"),
            Step::call(
                "mcp__baton__wait",
                serde_json::json!({"task": "one", "timeout_s": 120}),
            ),
            Step::call(
                "mcp__baton__wait",
                serde_json::json!({"task": "two", "timeout_s": 120}),
            ),
            Step::say("one and two are merged."),
        ],
    ));
    let env = TestEnv::new();
    let plan = bash_plan(&format!(
        "\n{}[[task]]\nid = \"lead\"\nagent = \"claude\"\nlead = true\nmax_tasks = 2\nprompt = \"Split the work. [[script:lead]]\"\ntimeout = \"4m\"\n",
        profile(&env, "claude", &bins[0], &server)
    ));
    env.write("baton.toml", &plan);
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    for id in ["one", "two"] {
        assert_eq!(task(&r.report, id)["status"], "succeeded", "{:#}", r.report);
    }
    assert_eq!(
        r.report["tasks"].as_array().unwrap().len(),
        3,
        "the third was refused"
    );
    assert_eq!(task(&r.report, "lead")["result"], "one and two are merged.");
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(show(&env, integration, "two.txt").as_deref(), Some("two\n"));
    // The refusal reached the model as a tool error it can read.
    let told = server
        .requests()
        .iter()
        .any(|q| q.body.to_string().contains("max_tasks reached"));
    assert!(told, "the model saw why the third task was refused");
}

#[test]
fn a_message_reaches_a_running_claude_code_as_a_new_turn() {
    let Some(bins) = bins(&["claude"]) else {
        return;
    };
    let server = ModelServer::start(Scripts::new().script(
        "listen",
        vec![
            Step::write("first.txt", "1\n"),
            Step::slow(3.0, Step::say("first turn done")),
            Step::say("thanks for the note"),
        ],
    ));
    let env = TestEnv::new();
    let plan = format!(
        "{}[[task]]\nid = \"t\"\nagent = \"claude\"\nprompt = \"Begin. [[script:listen]]\"\ntimeout = \"4m\"\n",
        profile(&env, "claude", &bins[0], &server)
    );
    env.write("baton.toml", &plan);
    let child = spawn_baton(&env, &["run", "--json"]);
    wait_for("claude's second model call", 120, || {
        latest_run_opt(&env).is_some_and(|r| task(&r, "t")["status"] == "running")
            && server.requests().iter().any(|q| q.step == Some(1))
    });
    let out = output(baton(&env).args(["msg", "t", "the API moved to v2"]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("delivered to task \"t\" now"), "{said}");
    let r = parse_run(child.wait_with_output().unwrap());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = task(&r.report, "t");
    assert_eq!(t["attempts"], 1, "a message does not restart the agent");
    assert_eq!(t["result"], "thanks for the note");
    assert!(server.requests().iter().any(|q| q
        .body
        .to_string()
        .contains("Message from a person: the API moved to v2")));
}

#[test]
fn claude_code_and_codex_race_on_one_task_and_claude_code_judges() {
    let Some(bins) = bins(&["claude", "codex"]) else {
        return;
    };
    let server = ModelServer::start(
        Scripts::new()
            .script(
                "race",
                vec![
                    Step::write("fix.txt", "fixed\n"),
                    Step::say("fixed it"),
                ],
            )
            .script(
                "judge",
                vec![Step::say(
                    "Both pass their gates.\nWINNER: race.2\nREASON: its change is the one asked for",
                )],
            ),
    );
    let env = TestEnv::new();
    let plan = format!(
        r#"{}{}[run]
judge_prompt = "[[script:judge]] Name the best candidate of task {{{{ task }}}}: {{% for c in candidates %}}{{{{ c.id }}}} ({{{{ c.agent }}}}, {{{{ c.gates }}}}) {{% endfor %}}"

[[task]]
id = "race"
agents = ["claude", "codex"]
judge = "claude"
prompt = "Write fix.txt. [[script:race]]"
gates = ["grep -q fixed fix.txt"]
timeout = "4m"
"#,
        profile(&env, "claude", &bins[0], &server),
        profile(&env, "codex", &bins[1], &server)
    );
    env.write("baton.toml", &plan);
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let t = task(&r.report, "race");
    assert_eq!(
        t["pick_reason"], "the judge (claude) named race.2: its change is the one asked for",
        "{t}"
    );
    let candidates: Vec<(&str, &str, bool)> = t["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["agent"].as_str().unwrap(),
                c["status"].as_str().unwrap(),
                c["winner"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        candidates,
        [("claude", "succeeded", false), ("codex", "succeeded", true)]
    );
    assert_eq!(t["commit"], task(&r.report, "race.2")["commit"], "{t}");
    assert_eq!(t["merged"], true);
    let kinds = store_rows(&env, "SELECT kind FROM attempts WHERE task_id = 'race'");
    assert_eq!(kinds, ["judge"], "Claude Code judged as the race's attempt");
    let asked = server.requests().iter().any(|q| {
        let body = q.body.to_string();
        body.contains("[[script:judge]]")
            && body.contains("race.1 (claude, passed at the first try)")
    });
    assert!(asked, "the judge was told of both candidates");
}
