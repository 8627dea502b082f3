//! Rate limits: a task whose agent the provider limits waits the limit out
//! (no retry used) and goes on in its session; a used-up quota, or a wait
//! beyond `max_wait`, fails it with the reason. The agent here stands in
//! for Claude Code (its stream, its retries, its error result).

use crate::common::*;
use baton_testutils::TestEnv;

fn limited_plan(env: &TestEnv, extra: &str, fake_env: &str) {
    let fake =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/limited_claude.py");
    env.write(
        "baton.toml",
        &format!(
            "[agent.claude]\nadapter = \"claude\"\ncommand = [\"python3\", {:?}]\nenv = {{ {fake_env} }}\n{extra}\n[[task]]\nid = \"t\"\nagent = \"claude\"\nprompt = \"go\"\n",
            fake.display().to_string()
        ),
    );
    env.commit_all("plan");
}

#[test]
fn a_rate_limited_task_waits_it_out_without_using_a_retry_and_goes_on_in_its_session() {
    let env = TestEnv::new();
    limited_plan(&env, "", "FAKE_RETRY_MS = \"1200\"");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let t = task(&r.report, "t");
    assert_eq!(t["attempts"], 2, "{t}");
    assert_eq!(t["result"], "went on after the limit");
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(
        show(&env, integration, "limited.txt").as_deref(),
        Some("went on\n")
    );
    let waits = store_rows(
        &env,
        "SELECT data FROM events WHERE kind = 'waiting' AND task_id = 't'",
    );
    assert!(
        waits.iter().any(|w| w.contains("rate limit on claude")),
        "{waits:?}"
    );
    let limits = store_rows(
        &env,
        "SELECT data FROM events WHERE kind = 'rate_limited' AND task_id = 't'",
    );
    assert!(
        limits.iter().any(|l| l.contains("\"retry_after_ms\":1200")),
        "{limits:?}"
    );
    assert!(
        r.stderr.contains("waiting: rate limit on claude"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_used_up_quota_or_a_wait_beyond_max_wait_fails_the_task_with_the_reason() {
    let env = TestEnv::new();
    limited_plan(&env, "", "FAKE_LIMIT = \"quota\"");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1);
    let t = task(&r.report, "t");
    assert_eq!(t["attempts"], 1);
    let reason = t["reason"].as_str().unwrap();
    assert!(
        reason.contains("Credit balance is too low") && reason.contains("the quota is used up"),
        "{reason}"
    );

    let env = TestEnv::new();
    limited_plan(&env, "max_wait = \"1s\"\n", "FAKE_RETRY_MS = \"5000\"");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1);
    let reason = task(&r.report, "t")["reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains("longer than the profile's max_wait 1.0s"),
        "{reason}"
    );
}
