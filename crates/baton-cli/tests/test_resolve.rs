//! `on_conflict = "resolve"`: a conflict goes to a resolver attempt, then
//! gates and the merge queue again; a resolver that gives up leaves the task
//! conflicted, nothing lost.

use crate::common::*;
use baton_testutils::TestEnv;

/// A resolver that keeps both sides: it drops the marker lines.
pub(crate) const KEEP_BOTH: &str = r#"for f in $(git diff --name-only --diff-filter=U); do sed -i -e '/^<<<<<<< /d' -e '/^=======$/d' -e '/^>>>>>>> /d' "$f"; done; printf '%s' "$0" > PROMPT_SEEN"#;

fn plan(resolver: &str, log: &std::path::Path) -> String {
    format!(
        r#"
[agent.fixer]
adapter = "exec"
command = ["bash", "-ec", {resolver:?}]

[run]
max_parallel = 2
resolver = "fixer"

[[task]]
id = "a"
prompt = "write shared.txt from a; say a wrote it"

[[task]]
id = "b"
on_conflict = "resolve"
gates = ["! grep -q '<<<<<<<' shared.txt"]
prompt = "append {log} b; sleep 0.3; write shared.txt from b; say b wrote it"
"#,
        log = log.display()
    )
}

#[test]
fn two_tasks_editing_the_same_lines_both_land_through_the_resolver() {
    let env = TestEnv::new();
    let log = env.scratch("b-runs");
    write_plan(&env, &plan(KEEP_BOTH, &log));
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for id in ["a", "b"] {
        assert_eq!(task(&r.report, id)["merged"], true, "{id}");
    }
    let integration = r.report["integration_branch"].as_str().unwrap();
    let shared = show(&env, integration, "shared.txt").unwrap();
    assert!(
        shared.contains("from a") && shared.contains("from b"),
        "{shared}"
    );
    // The resolver was told what each side meant.
    let seen = show(&env, integration, "PROMPT_SEEN").unwrap();
    assert!(
        seen.contains("shared.txt") && seen.contains("b wrote it"),
        "{seen}"
    );
    assert!(
        seen.contains("task \"a\": write shared.txt from a") && seen.contains("a wrote it"),
        "{seen}"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "b\n",
        "b's own work is not redone"
    );
    assert_eq!(task(&r.report, "b")["attempts"], 2);
    // The transcript shows the resolution as its own kind of attempt.
    let out = output(baton(&env).args(["logs", "b"]));
    let logs = String::from_utf8_lossy(&out.stdout);
    assert!(logs.contains("==> attempt 1 (succeeded)"), "{logs}");
    assert!(
        logs.contains("==> resolution attempt 2 (succeeded)"),
        "{logs}"
    );
}

#[test]
fn a_resolver_that_gives_up_leaves_the_task_conflicted_with_both_branches() {
    let env = TestEnv::new();
    let log = env.scratch("b-runs");
    write_plan(&env, &plan("echo cannot >&2; exit 1", &log));
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let b = task(&r.report, "b");
    assert_eq!(b["status"], "conflicted");
    assert!(
        b["reason"]
            .as_str()
            .unwrap()
            .contains("the resolver could not resolve the merge conflict"),
        "{b}"
    );
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(
        show(&env, integration, "shared.txt").as_deref(),
        Some("from a\n")
    );
    let run = r.report["run"].as_str().unwrap();
    assert_eq!(
        show(&env, &format!("refs/baton/{run}/b/1"), "shared.txt").as_deref(),
        Some("from b\n"),
        "b's own work is kept"
    );
}

#[test]
fn the_resolver_prompt_is_the_plan_s_own_template_when_it_gives_one() {
    let env = TestEnv::new();
    let log = env.scratch("b-runs");
    let own = "[run]\nresolver_prompt = \"Fix {{ paths | join(' ') }} of {{ task }} ({{ result }}); merged since: {% for m in merged %}{{ m.id }}={{ m.result }} {% endfor %}\"\n";
    write_plan(&env, &plan(KEEP_BOTH, &log).replacen("[run]\n", own, 1));
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let integration = r.report["integration_branch"].as_str().unwrap();
    let seen = show(&env, integration, "PROMPT_SEEN").unwrap();
    assert_eq!(
        seen,
        "Fix shared.txt of b (b wrote it); merged since: a=a wrote it"
    );

    // A template that reads what a resolver prompt does not have is a plan error.
    write_plan(
        &env,
        &plan(KEEP_BOTH, &log).replacen(
            "[run]\n",
            "[run]\nresolver_prompt = \"{{ tasks.a.result }}\"\n",
            1,
        ),
    );
    let out = output(baton(&env).arg("check"));
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("resolver_prompt:") && said.contains("baton.toml:"),
        "{said}"
    );
}

/// kill -9 while the resolver works: resume keeps what it did (under its
/// attempt's ref), merges the task's own work again and the conflict goes
/// to the resolver again: the task's own agent never runs on conflict
/// markers.
#[test]
fn a_crash_during_a_resolution_resumes_with_the_resolver() {
    let env = TestEnv::new();
    let log = env.scratch("b-runs");
    let started = env.scratch("resolver-started");
    let slow = format!(
        "if [ ! -e {0} ]; then touch {0}; sleep 60; fi; {KEEP_BOTH}",
        started.display()
    );
    write_plan(&env, &plan(&slow, &log));
    env.commit_all("plan");
    let mut child = spawn_baton(&env, &["run"]);
    wait_for("the resolver", 30, || started.exists());
    child.kill().unwrap();
    child.wait().unwrap();
    let out = output(baton(&env).args(["resume", "--json"]));
    let r = parse_run(out);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    for id in ["a", "b"] {
        assert_eq!(task(&r.report, id)["merged"], true, "{id}: {:#}", r.report);
    }
    let integration = r.report["integration_branch"].as_str().unwrap();
    let shared = show(&env, integration, "shared.txt").unwrap();
    assert!(
        shared.contains("from a") && shared.contains("from b") && !shared.contains("<<<<<<<"),
        "{shared}"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "b\n",
        "b's own agent ran once"
    );
}
