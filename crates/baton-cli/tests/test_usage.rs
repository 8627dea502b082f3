//! Truthful state, usage, budgets and secrets, with the fake agent standing
//! in for a real CLI's stream (the real CLIs are in test_real_agents).

use crate::common::*;
use baton_testutils::{fake_agent, TestEnv};

/// A Claude Code stream line reporting one model call's usage.
fn claude_usage_line(input: u64, output: u64) -> String {
    format!(
        r#"{{"type":"assistant","message":{{"model":"claude-sonnet-4-5","content":[{{"type":"text","text":"working"}}],"usage":{{"input_tokens":{input},"output_tokens":{output}}}}}}}"#
    )
}

fn fake_claude_profile(name: &str, script: &str) -> String {
    format!(
        "[agent.{name}]\nadapter = \"claude\"\ncommand = [{:?}]\nenv = {{ FAKE_AGENT_SCRIPT = {:?} }}\n\n",
        fake_agent().display().to_string(),
        script
    )
}

#[test]
fn a_silent_agent_is_reported_as_stalled() {
    let env = TestEnv::new();
    let go = env.scratch("go");
    write_plan(
        &env,
        &format!("[run]\nstall_after = \"300ms\"\n\n[[task]]\nid = \"quiet\"\nprompt = \"say hello; wait-file {go}; say bye\"\n", go = go.display()),
    );
    let child = spawn_baton(&env, &["run", "--json"]);
    wait_for("the task to be reported stalled", 20, || {
        latest_run_opt(&env)
            .map(|r| task(&r, "quiet")["activity"] == "stalled")
            .unwrap_or(false)
    });
    let out = output(baton(&env).arg("status"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("running: stalled"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::write(&go, "").unwrap();
    let r = parse_run(child.wait_with_output().unwrap());
    assert_eq!(
        r.code, 0,
        "a stalled agent is reported, not killed: {}",
        r.stderr
    );
    assert!(r.stderr.contains("quiet: stalled"), "{}", r.stderr);
}

#[test]
fn task_budget_stops_the_agent_mid_run() {
    let env = TestEnv::new();
    let init =
        r#"{"type":"system","subtype":"init","session_id":"s-1","model":"claude-sonnet-4-5"}"#;
    // 1M input tokens of claude-sonnet-4* cost $3 by the built-in prices.
    let script = format!(
        "say {init}\nwrite partial.txt started\nsay {}\nhang",
        claude_usage_line(1_000_000, 10)
    );
    env.write(
        "baton.toml",
        &format!("{}[[task]]\nid = \"pricey\"\nagent = \"c\"\nprompt = \"do it\"\nbudget_usd = 1.0\nretries = 3\ntimeout = \"60s\"\n", fake_claude_profile("c", &script)),
    );
    let t0 = std::time::Instant::now();
    let r = run_json(&env, &[]);
    assert!(
        t0.elapsed().as_secs() < 30,
        "stopped while running, not at the timeout"
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let t = task(&r.report, "pricey");
    assert_eq!(t["status"], "failed");
    assert_eq!(t["attempts"], 1, "a budget stop is not retried");
    assert!(
        t["reason"]
            .as_str()
            .unwrap()
            .starts_with("budget exceeded: the task spent $3.0"),
        "{t}"
    );
    assert_eq!(t["usage"]["input_tokens"], 1_000_000);
    assert_eq!(t["usage"]["output_tokens"], 10);
    assert!(
        (t["usage"]["cost_usd"].as_f64().unwrap() - 3.00015).abs() < 1e-9,
        "{t}"
    );
    assert_eq!(
        show(&env, t["branch"].as_str().unwrap(), "partial.txt").as_deref(),
        Some("started\n"),
        "its work is committed"
    );
}

#[test]
fn run_budget_stops_every_agent() {
    let env = TestEnv::new();
    let script = format!("say {}\nhang", claude_usage_line(400_000, 0));
    let mut plan = fake_claude_profile("c", &script);
    // Crossed only once all three have reported: costs reach the engine as
    // they are reported, so a lower budget would stop the last agent before
    // it says what it spent.
    plan.push_str("[run]\nmax_parallel = 3\nbudget_usd = 3.0\n\n");
    for id in ["a", "b", "c"] {
        plan.push_str(&format!(
            "[[task]]\nid = \"{id}\"\nagent = \"c\"\nprompt = \"x\"\ntimeout = \"60s\"\n\n"
        ));
    }
    plan.push_str("[[task]]\nid = \"later\"\nneeds = [\"a\"]\nagent = \"c\"\nprompt = \"x\"\n");
    env.write("baton.toml", &plan);
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    for id in ["a", "b", "c"] {
        let t = task(&r.report, id);
        assert_eq!(t["status"], "failed", "{t}");
        assert!(
            t["reason"]
                .as_str()
                .unwrap()
                .starts_with("run budget exceeded"),
            "{t}"
        );
    }
    assert_eq!(task(&r.report, "later")["status"], "skipped");
    let cost = r.report["usage"]["cost_usd"].as_f64().unwrap();
    assert!(
        (cost - 3.6).abs() < 1e-9,
        "three agents at $1.20 each: {cost}"
    );
}

#[test]
fn usage_is_null_when_nothing_reports_it() {
    let env = TestEnv::new();
    write_plan(&env, "[[task]]\nid = \"t\"\nprompt = \"say hi\"\n");
    let r = run_json(&env, &[]);
    let u = &task(&r.report, "t")["usage"];
    assert!(
        u["input_tokens"].is_null() && u["output_tokens"].is_null() && u["cost_usd"].is_null(),
        "{u}"
    );
}

#[test]
fn secrets_never_reach_logs_events_or_reports() {
    let env = TestEnv::new();
    let secret = "sk-test-4f1e9c2b7a";
    let plan = format!(
        "[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-c\"]\nenv = {{ MY_API_KEY = \"{secret}\" }}\n\n[[task]]\nid = \"leaky\"\nagent = \"sh\"\nprompt = \"echo \\\"key is $MY_API_KEY\\\"; echo \\\"err $MY_API_KEY\\\" >&2; exit 1\"\n"
    );
    env.write("baton.toml", &plan);
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1);
    let report = r.report.to_string();
    assert!(!report.contains(secret), "report: {report}");
    assert!(
        report.contains("[REDACTED]"),
        "the masked value still shows where it was: {report}"
    );
    let logs = output(baton(&env).args(["logs", "leaky"]));
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(
        logs.contains("key is [REDACTED]") && !logs.contains(secret),
        "{logs}"
    );
    let db = std::fs::read(env.repo.join(".git/baton/baton.db")).unwrap();
    let wal = std::fs::read(env.repo.join(".git/baton/baton.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the store holds the secret"
        );
    }
    assert!(!r.stderr.contains(secret));
}

#[test]
fn garbage_on_stdout_is_a_failed_attempt_with_a_reason() {
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        &format!(
            "{}[[task]]\nid = \"noisy\"\nagent = \"c\"\nprompt = \"x\"\n",
            fake_claude_profile(
                "c",
                "say this is not json\nsay {\"type\":\nwrite half.txt done"
            )
        ),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1);
    let t = task(&r.report, "noisy");
    assert_eq!(t["status"], "failed");
    assert!(
        t["reason"]
            .as_str()
            .unwrap()
            .contains("output ended without its final result"),
        "{t}"
    );
    assert_eq!(
        show(&env, t["branch"].as_str().unwrap(), "half.txt").as_deref(),
        Some("done\n")
    );
}

#[test]
fn a_hermetic_home_is_the_agents_own() {
    let env = TestEnv::new();
    let seen = env.scratch("home.txt");
    env.write(
        "baton.toml",
        &format!(
            "[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-c\"]\nhome = \"hermetic\"\n\n[[task]]\nid = \"t\"\nagent = \"sh\"\nprompt = \"echo $HOME $XDG_CONFIG_HOME > {}; touch $HOME/state\"\n",
            seen.display()
        ),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(&seen).unwrap();
    let home = text.split_whitespace().next().unwrap().to_string();
    let run = r.report["run"].as_str().unwrap();
    assert_eq!(
        home,
        format!("{}/.git/baton/runs/{run}/homes/t", env.repo.display())
    );
    assert!(text.contains(&format!("{home}/.config")));
    assert!(std::path::Path::new(&home).join("state").exists());
    assert!(
        !env.root().join("state").exists(),
        "the user's home (the test's HOME) is untouched"
    );
}
