//! The remote side of an attempt (`baton __pod-attempt`, what a pod runs),
//! here without a cluster: the "remote" is this test's repository. Its
//! stdout is the attempt's stream for the baton that follows it: the
//! agent's lines as they are, everything else tagged, and its end last.

use crate::common::*;
use baton_core::executor::{PodEnd, PodLine, SPEC_ENV};
use baton_testutils::TestEnv;
use std::time::{Duration, Instant};

fn attempt(env: &TestEnv, agent: &str, gates: &[&str]) -> serde_json::Value {
    let branch = env.git(&["branch", "--show-current"]);
    let start = env.git(&["rev-parse", "HEAD"]);
    serde_json::json!({
        "run": "r1", "task": "t", "attempt": 1,
        "git_url": env.root().join("repo"),
        "branch": branch.trim(), "start": start.trim(),
        "keep_ref": "refs/baton/r1/t/1",
        "worktree": env.scratch("pod-worktree"),
        "program": "sh", "args": ["-c", agent],
        "env": [], "stdin_lines": ["first line in"],
        "files": [[env.scratch("home/settings.json"), "{}"]],
        "dirs": [env.scratch("home/.cache")],
        "gates": gates, "gate_env": [["GATE_SAYS", "from the gate env"]],
        "timeout_secs": 30,
        "message": "baton: t attempt 1 (in its pod)",
    })
}

/// Runs the pod's side; its exit status and its stdout's lines.
fn pod(env: &TestEnv, spec: &serde_json::Value) -> (i32, Vec<String>) {
    let started = Instant::now();
    let out = baton(env)
        .arg("__pod-attempt")
        .env(SPEC_ENV, spec.to_string())
        .output()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "it waited on something"
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines = text.lines().map(str::to_string).collect();
    (out.status.code().unwrap_or(-1), lines)
}

fn end(lines: &[String]) -> PodEnd {
    match lines.last().and_then(|l| PodLine::parse(l)) {
        Some(PodLine::End(end)) => end,
        other => panic!("the last line is not the end: {other:?}\n{lines:#?}"),
    }
}

fn tagged(lines: &[String]) -> Vec<PodLine> {
    lines.iter().filter_map(|l| PodLine::parse(l)).collect()
}

#[test]
fn the_pods_side_streams_the_agent_as_is_tags_the_rest_and_runs_the_gates_to_the_first_failure() {
    let env = TestEnv::new();
    // `cat` ends only when its input is closed: nothing steers a pod's agent.
    // A line of the agent's that would pass for baton's own end is not
    // taken for it.
    let forged = PodLine::End(PodEnd {
        code: Some(9),
        pushed: true,
        ..Default::default()
    })
    .to_line();
    let agent = format!(
        r#"cat; echo '{{"type":"said"}}'; printf '%s\n' '{forged}'; echo complaint >&2; echo made > made.txt"#
    );
    let gates = [
        "test -f made.txt && echo gate one says $GATE_SAYS",
        "echo out before failing; echo err before failing >&2; exit 3",
        "echo never ran > never.txt",
    ];
    let (code, lines) = pod(&env, &attempt(&env, &agent, &gates));
    assert_eq!(code, 0, "the agent's status: {lines:#?}");
    // The agent's stdout as it is, in order; its stderr and the gates' output tagged.
    let raw: Vec<&String> = lines
        .iter()
        .filter(|l| PodLine::parse(l).is_none())
        .collect();
    assert_eq!(raw, ["first line in", r#"{"type":"said"}"#], "{lines:#?}");
    let said = tagged(&lines);
    assert!(
        said.contains(&PodLine::Stderr("complaint".into())),
        "{said:#?}"
    );
    assert!(said.contains(&PodLine::Stderr(forged)), "{said:#?}");
    let ends = said.iter().filter(|l| matches!(l, PodLine::End(_))).count();
    assert_eq!(ends, 1, "{said:#?}");
    let gate_out = PodLine::Stderr("gate one says from the gate env".into());
    assert!(said.contains(&gate_out), "{said:#?}");
    let end = end(&lines);
    assert_eq!(end.code, Some(0));
    assert!(end.pushed && end.error.is_none(), "{end:#?}");
    // The gates ran in order up to the first that failed, which tells why.
    let codes: Vec<Option<i32>> = end.gates.iter().map(|g| g.code).collect();
    assert_eq!(codes, [Some(0), Some(3)]);
    let failed = &end.gates[1];
    assert!(failed.tail.contains("out before failing"), "{failed:#?}");
    assert!(failed.tail.contains("err before failing"), "{failed:#?}");
    // The work was committed and pushed under the attempt's ref.
    let kept = env.git(&["rev-parse", "refs/baton/r1/t/1"]);
    assert_eq!(Some(kept.trim().to_string()), end.commit);
    let files = env.git(&["ls-tree", "--name-only", "refs/baton/r1/t/1"]);
    assert!(
        files.contains("made.txt") && !files.contains("never.txt"),
        "{files}"
    );
}

#[test]
fn a_pods_agent_that_overruns_its_time_is_ended_and_its_work_still_pushed() {
    let env = TestEnv::new();
    let mut spec = attempt(&env, "echo partial > partial.txt; sleep 60", &["true"]);
    spec["timeout_secs"] = 1.into();
    let (code, lines) = pod(&env, &spec);
    assert_eq!(code, 1, "{lines:#?}");
    let end = end(&lines);
    assert!(end.timed_out && end.code.is_none(), "{end:#?}");
    assert!(
        end.gates.is_empty(),
        "no gate runs after a failed agent: {end:#?}"
    );
    assert!(end.pushed, "{end:#?}");
    let files = env.git(&["ls-tree", "--name-only", "refs/baton/r1/t/1"]);
    assert!(files.contains("partial.txt"), "{files}");
}

#[test]
fn a_pod_that_cannot_fetch_says_why_and_runs_nothing() {
    let env = TestEnv::new();
    let mut spec = attempt(&env, "echo ran > ran.txt", &["true"]);
    spec["start"] = "0000000000000000000000000000000000000000".into();
    let (code, lines) = pod(&env, &spec);
    assert_eq!(code, 1, "{lines:#?}");
    let end = end(&lines);
    let error = end.error.unwrap_or_default();
    assert!(error.contains("not at the attempt's start"), "{error}");
    assert!(!end.pushed && end.gates.is_empty());
    assert!(!env.scratch("pod-worktree/ran.txt").exists());
}
