//! Rate limits and used-up quotas with the real CLIs: the scripted model
//! server refuses one provider's requests as that provider does, and baton
//! waits the limit out or hands the task to another vendor's agent.

use crate::common::*;
use crate::test_real_agents::{bins, profile_with};
use baton_testutils::model_server::{Api, ModelServer, Outage, Scripts, Step};
use baton_testutils::TestEnv;

#[test]
fn claude_code_waits_out_a_rate_limit_without_a_retry_while_codex_keeps_working() {
    let Some(b) = bins(&["claude", "codex"]) else {
        return;
    };
    // Claude Code's two tries (its own retry, then baton's attempt) get 429
    // with retry-after: 3; the third goes through. Claude Code keeps the
    // error in its session as a model turn, so the resumed session plays
    // the script's second step: the same write.
    let server = ModelServer::start(
        Scripts::new()
            .script(
                "c",
                vec![
                    Step::write("c.txt", "claude\n"),
                    Step::write("c.txt", "claude\n"),
                    Step::say("wrote c.txt"),
                ],
            )
            .script(
                "x",
                vec![Step::write("x.txt", "codex\n"), Step::say("wrote x.txt")],
            )
            .outage(Outage::rate_limit(Api::Anthropic, 3).requests(2)),
    );
    let env = TestEnv::new();
    let claude = profile_with(
        &env,
        "claude",
        &b[0],
        &server,
        &[("CLAUDE_CODE_MAX_RETRIES", "1")],
        "",
    );
    let codex = profile_with(&env, "codex", &b[1], &server, &[], "");
    env.write(
        "baton.toml",
        &format!(
            "{claude}{codex}[[task]]\nid = \"c\"\nagent = \"claude\"\nprompt = \"Write c.txt. [[script:c]]\"\ntimeout = \"2m\"\n\n\
             [[task]]\nid = \"x\"\nagent = \"codex\"\nprompt = \"Write x.txt. [[script:x]]\"\ntimeout = \"2m\"\n"
        ),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let c = task(&r.report, "c");
    // No retries are allowed (the default): a second attempt is a wait's.
    assert_eq!(c["attempts"], 2, "{c}");
    // Both limits the provider imposed, seen at the gateway: the first was
    // waited out there by Claude Code's own retry, the second by baton
    // (one limit, counted once), each as long as the provider asked (3 s).
    assert_eq!(c["rate_limit_waits"], 2, "{c}");
    assert_eq!(c["rate_limit_wait_ms"], 6000, "{c}");
    let waits = store_rows(
        &env,
        "SELECT data FROM events WHERE kind = 'waiting' AND task_id = 'c'",
    );
    assert!(
        waits.len() == 1 && waits[0].contains("\"at_wire\":true"),
        "baton waited out the second, as the gateway saw it: {waits:?}"
    );
    let x = task(&r.report, "x");
    assert_eq!(
        (x["attempts"].as_u64(), x["merged"].as_bool()),
        (Some(1), Some(true)),
        "{x}"
    );
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(
        show(&env, integration, "c.txt").as_deref(),
        Some("claude\n")
    );
    assert_eq!(show(&env, integration, "x.txt").as_deref(), Some("codex\n"));
    let limited = store_rows(
        &env,
        "SELECT data FROM events WHERE kind = 'rate_limited' AND task_id = 'c'",
    );
    assert!(
        limited.iter().any(|l| l.contains("rate_limit")),
        "{limited:?}"
    );
    // Codex was answered while Claude Code was refused.
    let reqs = server.requests();
    let refused = reqs.iter().filter(|q| q.refused == Some(429)).count();
    assert_eq!(refused, 2);
    let first_codex = reqs
        .iter()
        .position(|q| q.path.ends_with("/responses") && q.step.is_some());
    let claude_through = reqs
        .iter()
        .position(|q| q.path.ends_with("/messages") && q.step.is_some() && q.refused.is_none());
    assert!(
        first_codex < claude_through,
        "{first_codex:?} {claude_through:?}"
    );
}

#[test]
fn claude_code_out_of_credit_hands_its_task_to_codex_with_the_work_so_far() {
    let Some(b) = bins(&["claude", "codex"]) else {
        return;
    };
    // Claude Code writes the first half and says so; then its credit is
    // gone. Codex, told why and shown the diff, writes the rest.
    let server = ModelServer::start(
        Scripts::new()
            .script(
                "halves",
                vec![
                    Step::noted(
                        "I wrote the first half; the second goes in rest.txt.",
                        Step::write("half.txt", "first half\n"),
                    ),
                    Step::write("rest.txt", "second half\n"),
                    Step::say("both halves written"),
                ],
            )
            .outage(Outage::quota(Api::Anthropic).after(1)),
    );
    let env = TestEnv::new();
    let claude = profile_with(
        &env,
        "claude",
        &b[0],
        &server,
        &[],
        "fallback = [\"codex\"]\n",
    );
    let codex = profile_with(&env, "codex", &b[1], &server, &[], "");
    env.write(
        "baton.toml",
        &format!(
            "{claude}{codex}[[task]]\nid = \"t\"\nagent = \"claude\"\nprompt = \"Write both halves. [[script:halves]]\"\ntimeout = \"2m\"\n"
        ),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let t = task(&r.report, "t");
    assert_eq!(t["agents"], serde_json::json!(["claude", "codex"]), "{t}");
    let why = t["fallbacks"][0]["reason"].as_str().unwrap();
    assert!(
        why.to_lowercase().contains("credit balance is too low")
            && why.contains("the quota is used up"),
        "{why}"
    );
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(
        show(&env, integration, "half.txt").as_deref(),
        Some("first half\n")
    );
    assert_eq!(
        show(&env, integration, "rest.txt").as_deref(),
        Some("second half\n")
    );
    // Codex's first request holds the handoff: the other agent's last
    // words and the diff of its work.
    let handoff = server
        .requests()
        .into_iter()
        .find(|q| q.path.ends_with("/responses") && q.step.is_some())
        .map(|q| q.body.to_string())
        .expect("codex asked the model");
    for said in [
        "take this task over from another agent (claude)",
        "I wrote the first half; the second goes in rest.txt.",
        "+first half",
    ] {
        assert!(handoff.contains(said), "{said:?} not in {handoff}");
    }
}
