//! The adapters' stream parsers on real output captured from the agent CLIs
//! (fixtures/agent-streams, copied from ../shared/agent-streams).

use baton_core::adapter::limits::LimitKind;
use baton_core::adapter::{for_profile, AgentEvent, Finish, ToolKind, UsageMode};
use baton_core::plan::AgentProfile;

fn parse(adapter: &str, fixture: &str) -> (Vec<AgentEvent>, Finish) {
    let profile = AgentProfile {
        name: adapter.into(),
        adapter: adapter.into(),
        model: None,
        args: vec![],
        env: Default::default(),
        instructions: None,
        command: Some(vec!["true".into()]),
        hermetic_home: false,
        max_parallel: None,
        sandbox: None,
        max_wait: baton_core::plan::DEFAULT_MAX_WAIT,
        fallback: vec![],
        account: None,
        executor: Default::default(),
        host_labels: Vec::new(),
        ask: true,
        gateway: baton_core::plan::GatewayUse::Off,
    };
    let path = format!(
        "{}/tests/fixtures/agent-streams/{fixture}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut p = for_profile(&profile.cli()).unwrap().parser();
    let mut events = Vec::new();
    for line in text.lines() {
        events.extend(p.line(line));
    }
    let fin = p.finish(&text);
    (events, fin)
}

fn usage(events: &[AgentEvent]) -> Vec<(u64, u64, Option<f64>, UsageMode)> {
    events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Usage(u) => Some((u.input_tokens, u.output_tokens, u.cost_usd, u.mode)),
            _ => None,
        })
        .collect()
}

fn session(events: &[AgentEvent]) -> Option<String> {
    events.iter().find_map(|e| match e {
        AgentEvent::Session { id, .. } => Some(id.clone()),
        _ => None,
    })
}

fn tool_calls(events: &[AgentEvent]) -> Vec<(String, ToolKind, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ToolCall {
                name, kind, detail, ..
            } => Some((name.clone(), *kind, detail.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn claude_run() {
    let (ev, fin) = parse("claude", "claude_run1.jsonl");
    assert_eq!(
        session(&ev).as_deref(),
        Some("4edf23f5-525b-4823-b397-1dc4f0af28d0")
    );
    assert_eq!(
        tool_calls(&ev),
        vec![(
            "Write".into(),
            ToolKind::FileEdit,
            "/home/dev/demo/hello.txt".into()
        )]
    );
    assert!(ev
        .iter()
        .any(|e| matches!(e, AgentEvent::ToolResult { ok: true, .. })));
    assert_eq!(
        usage(&ev).last(),
        Some(&(200, 40, Some(0.002), UsageMode::Total))
    );
    assert!(fin.complete && fin.error.is_none());
    assert_eq!(fin.final_message, "Created hello.txt.");
}

#[test]
fn claude_errors_and_interruptions() {
    let (ev, fin) = parse("claude", "claude_fail400.jsonl");
    assert!(fin.error.as_deref().unwrap().contains("API Error: 400"));
    assert!(ev
        .iter()
        .any(|e| matches!(e, AgentEvent::TurnEnd { is_error: true, .. })));
    let (ev, fin) = parse("claude", "claude_fail500.jsonl");
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, AgentEvent::Retrying { .. }))
            .count(),
        2
    );
    assert!(fin.error.as_deref().unwrap().contains("API Error: 500"));
    let (_, fin) = parse("claude", "claude_sigINT.jsonl");
    assert!(!fin.complete, "no result line means interrupted");
}

#[test]
fn claude_resume_partial_and_two_turns() {
    let (ev, fin) = parse("claude", "claude_resume.jsonl");
    assert!(tool_calls(&ev)
        .iter()
        .any(|(n, k, _)| n == "Bash" && *k == ToolKind::Command));
    assert!(fin.complete);
    let (ev, fin) = parse("claude", "claude_partial.jsonl");
    assert!(fin.complete && !tool_calls(&ev).is_empty());
    let (ev, _) = parse("claude", "claude_streamin_2turns.jsonl");
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, AgentEvent::TurnEnd { .. }))
            .count(),
        2,
        "one result per turn"
    );
}

#[test]
fn codex_run_resume_and_failures() {
    let (ev, fin) = parse("codex", "codex_run_final.jsonl");
    assert_eq!(
        session(&ev).as_deref(),
        Some("01a1fc72-6166-78b1-9203-7cd6e14c92c4")
    );
    assert_eq!(
        tool_calls(&ev),
        vec![(
            "apply_patch".into(),
            ToolKind::FileEdit,
            "/home/dev/demo/hello.txt".into()
        )]
    );
    assert_eq!(usage(&ev), vec![(200, 40, None, UsageMode::Session)]);
    assert!(fin.complete && fin.error.is_none());
    assert_eq!(fin.final_message, "Created hello.txt.");

    let (ev, _) = parse("codex", "codex_resume.jsonl");
    assert_eq!(tool_calls(&ev)[0].1, ToolKind::Command);
    assert_eq!(
        usage(&ev),
        vec![(400, 80, None, UsageMode::Session)],
        "codex counts the whole thread"
    );

    let (_, fin) = parse("codex", "codex_fail400.jsonl");
    assert_eq!(fin.error.as_deref(), Some("mock http_error 400"));
    let (ev, fin) = parse("codex", "codex_connrefused.jsonl");
    assert!(!fin.complete, "it retries forever: no final event");
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, AgentEvent::Retrying { .. }))
            .count(),
        5
    );
}

#[test]
fn gemini_run_and_failure() {
    let (ev, fin) = parse("gemini", "gemini_run3.jsonl");
    assert_eq!(
        session(&ev).as_deref(),
        Some("f4d05a90-758d-44f3-9b7c-2f2e44bf1917")
    );
    assert_eq!(
        tool_calls(&ev),
        vec![(
            "write_file".into(),
            ToolKind::FileEdit,
            "/home/dev/demo/hello.txt".into()
        )]
    );
    assert_eq!(usage(&ev), vec![(300, 60, None, UsageMode::Total)]);
    assert!(fin.complete && fin.error.is_none());
    assert_eq!(fin.final_message, "Created hello.txt.");
    let (_, fin) = parse("gemini", "gemini_resume.jsonl");
    assert!(fin.complete);
    let (_, fin) = parse("gemini", "gemini_fail400.jsonl");
    assert!(fin
        .error
        .as_deref()
        .unwrap()
        .contains("mock http_error 400"));
}

#[test]
fn opencode_run_and_failure() {
    let (ev, fin) = parse("opencode", "opencode_run1.jsonl");
    assert_eq!(
        session(&ev).as_deref(),
        Some("ses_e0384b968ffeKnKnvS6YbZKj68")
    );
    assert_eq!(
        tool_calls(&ev),
        vec![(
            "write".into(),
            ToolKind::FileEdit,
            "/home/dev/demo/hello.txt".into()
        )]
    );
    assert_eq!(
        usage(&ev),
        vec![
            (100, 20, None, UsageMode::Add),
            (100, 20, None, UsageMode::Add)
        ],
        "cost 0 is unknown, not free"
    );
    assert!(fin.complete);
    assert_eq!(fin.final_message, "Created hello.txt.");
    let (_, fin) = parse("opencode", "opencode_resume.jsonl");
    assert!(fin.complete);
    let (_, fin) = parse("opencode", "opencode_fail400.jsonl");
    assert!(!fin.complete);
    assert_eq!(
        fin.error.as_deref(),
        Some("model API error 400: mock http_error 400")
    );
}

#[test]
fn aider_plain_text() {
    let (ev, fin) = parse("aider", "aider_run1.out");
    assert_eq!(
        tool_calls(&ev),
        vec![("edit".into(), ToolKind::FileEdit, "hello.txt".into())]
    );
    assert_eq!(usage(&ev), vec![(100, 20, None, UsageMode::Add)]);
    assert!(fin.final_message.contains("Applied edit to hello.txt"));
}

#[test]
fn garbage_is_ignored_not_fatal() {
    for adapter in ["claude", "codex", "gemini", "opencode"] {
        let profile = AgentProfile {
            name: "x".into(),
            adapter: adapter.into(),
            model: None,
            args: vec![],
            env: Default::default(),
            instructions: None,
            command: None,
            hermetic_home: false,
            max_parallel: None,
            sandbox: None,
            max_wait: baton_core::plan::DEFAULT_MAX_WAIT,
            fallback: vec![],
            account: None,
            executor: Default::default(),
            host_labels: Vec::new(),
            ask: true,
            gateway: baton_core::plan::GatewayUse::Off,
        };
        let mut p = for_profile(&profile.cli()).unwrap().parser();
        for line in [
            "",
            "not json",
            "{\"type\":",
            "[1,2,3]",
            "{\"type\":\"assistant\",\"message\":42}",
            "\u{0}\u{1}",
        ] {
            let _ = p.line(line);
        }
        let fin = p.finish("");
        assert!(!fin.complete, "{adapter}: garbage is not a result");
    }
}

fn limits(events: &[AgentEvent]) -> Vec<(LimitKind, Option<u64>)> {
    events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::RateLimited(l) => Some((l.kind, l.retry_after_ms)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_rate_limit_the_cli_rides_out_is_an_event_not_a_failure() {
    let (ev, fin) = parse("claude", "claude_429.jsonl");
    let seen = limits(&ev);
    assert!(!seen.is_empty(), "claude's api_retry on 429");
    assert_eq!(
        seen[0],
        (LimitKind::RateLimit, Some(3000)),
        "the wait it chose"
    );
    assert!(fin.limit.is_none() && fin.error.is_none());
    for (adapter, fixture) in [("codex", "codex_429.jsonl"), ("aider", "aider_429.out")] {
        let (ev, fin) = parse(adapter, fixture);
        assert!(
            limits(&ev).iter().all(|(k, _)| *k == LimitKind::RateLimit) && !limits(&ev).is_empty(),
            "{adapter}: {ev:?}"
        );
        assert!(fin.limit.is_none(), "{adapter} recovered: {fin:?}");
    }
    // Gemini CLI and opencode retry a 429 without a word.
    for (adapter, fixture) in [
        ("gemini", "gemini_429.jsonl"),
        ("opencode", "opencode_429.jsonl"),
    ] {
        let (ev, fin) = parse(adapter, fixture);
        assert!(limits(&ev).is_empty() && fin.limit.is_none(), "{adapter}");
    }
}

#[test]
fn a_used_up_quota_or_lasting_overload_ends_the_attempt_as_a_limit() {
    for (adapter, fixture, kind) in [
        ("claude", "claude_quota.jsonl", LimitKind::Quota),
        ("claude", "claude_529.jsonl", LimitKind::Overloaded),
        ("codex", "codex_quota.jsonl", LimitKind::Quota),
        ("gemini", "gemini_quota.jsonl", LimitKind::Quota),
        ("opencode", "opencode_quota.jsonl", LimitKind::Quota),
        // aider says the same words for a quota as for a rate limit.
        ("aider", "aider_quota.out", LimitKind::RateLimit),
    ] {
        let (ev, fin) = parse(adapter, fixture);
        let limit = fin
            .limit
            .clone()
            .unwrap_or_else(|| panic!("{fixture}: no limit in {fin:?}"));
        assert_eq!(limit.kind, kind, "{fixture}: {limit:?}");
        assert!(!limits(&ev).is_empty(), "{fixture}: a rate_limited event");
        assert!(fin.error.is_some(), "{fixture} failed");
    }
}

#[test]
fn claude_code_s_own_words_for_an_api_error_are_an_error_not_the_agent_speaking() {
    let (ev, _) = parse("claude", "claude_quota.jsonl");
    assert!(
        ev.iter().any(
            |e| matches!(e, AgentEvent::Error { message } if message == "Credit balance is too low")
        ),
        "{ev:?}"
    );
    assert!(
        !ev.iter().any(|e| matches!(e, AgentEvent::Message { .. })),
        "a fallback is told what the agent said, not the error again: {ev:?}"
    );
}

#[test]
fn a_limit_that_ends_the_attempt_keeps_the_wait_the_provider_asked() {
    // Claude Code's retries used up on a 429 (its stream as it ends then).
    let (_, fin) = parse("claude", "claude_429_gave_up.jsonl");
    let limit = fin.limit.expect("the attempt ended on a limit");
    assert_eq!(
        (limit.kind, limit.retry_after_ms),
        (LimitKind::RateLimit, Some(1200))
    );
}
