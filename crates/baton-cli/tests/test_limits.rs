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
    assert_eq!(t["rate_limit_waits"], 1, "{t}");
    let waited = t["rate_limit_wait_ms"].as_i64().unwrap();
    assert!((1100..=1300).contains(&waited), "{t}");
    assert_eq!(t["agents"], serde_json::json!(["claude"]));
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

#[test]
fn a_used_up_quota_hands_the_task_to_the_fallback_profile_with_the_work_so_far() {
    let env = TestEnv::new();
    let fake =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/limited_claude.py");
    env.write(
        "baton.toml",
        &format!(
            "[agent.claude]\nadapter = \"claude\"\ncommand = [\"python3\", {:?}]\nenv = {{ FAKE_LIMIT = \"quota\" }}\nfallback = [\"sh\"]\n\n\
             [agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\n\n\
             [[task]]\nid = \"t\"\nagent = \"claude\"\nprompt = 'printf \"%s\\n\" \"$BATON_FEEDBACK\" > handoff.txt; cat partial.txt > finished.txt'\n",
            fake.display().to_string()
        ),
    );
    env.commit_all("plan");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let t = task(&r.report, "t");
    assert_eq!(
        (t["agent"].as_str(), t["attempts"].as_u64()),
        (Some("sh"), Some(2)),
        "{t}"
    );
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(
        show(&env, integration, "finished.txt").as_deref(),
        Some("half done\n")
    );
    let handoff = show(&env, integration, "handoff.txt").unwrap();
    for said in [
        "take this task over from another agent (claude)",
        "Credit balance is too low",
        "I wrote half of it",
        "+half done",
        "cat partial.txt",
    ] {
        assert!(
            handoff.contains(said),
            "{said:?} not in the handoff:\n{handoff}"
        );
    }
    assert_eq!(t["agents"], serde_json::json!(["claude", "sh"]), "{t}");
    assert_eq!(t["fallbacks"][0]["to"], "sh", "{t}");
    assert!(
        t["fallbacks"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("the quota is used up"),
        "{t}"
    );
    let moved = store_rows(
        &env,
        "SELECT data FROM events WHERE kind = 'fallback' AND task_id = 't'",
    );
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert!(
        moved[0].contains("\"from\":\"claude\"") && moved[0].contains("\"to\":\"sh\""),
        "{moved:?}"
    );

    // A fallback that names no profile is a plan error.
    env.write("baton.toml", "[agent.a]\nadapter = \"exec\"\ncommand = [\"true\"]\nfallback = [\"a\", \"nobody\"]\n\n[[task]]\nid = \"t\"\nagent = \"a\"\nprompt = \"x\"\n");
    let out = output(baton(&env).arg("check"));
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("fallback \"a\" is the profile itself")
            && said.contains("fallback \"nobody\" is no profile of the plan"),
        "{said}"
    );
}

#[test]
fn a_fallback_whose_provider_limits_it_now_is_passed_over() {
    let env = TestEnv::new();
    let fake =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/limited_claude.py");
    let fake = fake.display().to_string();
    // "busy" runs into a rate limit on `slow` at once and waits it out;
    // a moment later "t" finds its quota used up on `claude`, whose first
    // fallback is `slow`.
    env.write(
        "baton.toml",
        &format!(
            "[agent.claude]\nadapter = \"claude\"\ncommand = [\"python3\", {fake:?}]\nenv = {{ FAKE_LIMIT = \"quota\", FAKE_SLEEP = \"1\" }}\nfallback = [\"slow\", \"sh\"]\n\n\
             [agent.slow]\nadapter = \"claude\"\ncommand = [\"python3\", {fake:?}]\nenv = {{ FAKE_RETRY_MS = \"4000\" }}\n\n\
             [agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\n\n\
             [[task]]\nid = \"busy\"\nagent = \"slow\"\nprompt = \"go\"\n\n\
             [[task]]\nid = \"t\"\nagent = \"claude\"\nprompt = \"cat partial.txt > finished.txt\"\n"
        ),
    );
    env.commit_all("plan");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let t = task(&r.report, "t");
    assert_eq!(t["agents"], serde_json::json!(["claude", "sh"]), "{t}");
    let busy = task(&r.report, "busy");
    assert_eq!(busy["rate_limit_waits"], 1, "{busy}");
}
