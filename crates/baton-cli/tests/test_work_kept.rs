//! Nothing an agent did is lost: every attempt's end commit stays reachable
//! under its own ref, whatever later attempts do to the branch; and an exec
//! agent's prompt (a command) is never broken by feedback appended to it.

use crate::common::*;
use baton_testutils::TestEnv;

#[test]
fn an_agent_that_resets_its_branch_cannot_lose_an_earlier_attempt() {
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        &bash_plan(
            r#"
[[task]]
id = "t"
retries = 1
prompt = """
if [ "$BATON_ATTEMPT" = 1 ]; then
  echo A > a.txt; git add a.txt; git commit -qm A
  echo B > b.txt
  exit 3
fi
git reset -q --hard "$(git rev-parse "baton/$BATON_RUN/integration")"
echo C > c.txt
"""
"#,
        ),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let run = r.report["run"].as_str().unwrap().to_string();
    let t = task(&r.report, "t");
    assert_eq!(t["attempts"], 2);
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(show(&env, integration, "c.txt").as_deref(), Some("C\n"));
    assert_eq!(
        show(&env, integration, "a.txt"),
        None,
        "attempt 2 threw it away"
    );

    // Attempt 1's work (its own commit and what baton committed after it)
    // is still there, under its ref.
    let first = format!("refs/baton/{run}/t/1");
    assert_eq!(show(&env, &first, "a.txt").as_deref(), Some("A\n"));
    assert_eq!(show(&env, &first, "b.txt").as_deref(), Some("B\n"));
    let second = format!("refs/baton/{run}/t/2");
    assert_eq!(show(&env, &second, "c.txt").as_deref(), Some("C\n"));

    let out = output(baton(&env).args(["logs", "t"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("==> attempt 1 (failed)")
            && text.contains(&format!("its work is kept at {first}")),
        "{text}"
    );
}

#[test]
fn an_exec_prompt_is_not_appended_to_on_a_retry() {
    let env = TestEnv::new();
    let fb = env.scratch("feedback.txt");
    env.write(
        "baton.toml",
        &bash_plan(&format!(
            r#"
[[task]]
id = "script"
retries = 1
gates = ["grep -q two n.txt"]
prompt = """
if [ "$BATON_ATTEMPT" = 1 ]; then echo one > n.txt; else echo two > n.txt; fi
printf '%s' "$BATON_FEEDBACK" > {fb}
"""
"#,
            fb = fb.display()
        )),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = task(&r.report, "script");
    assert_eq!(
        (t["status"].as_str(), t["attempts"].as_u64()),
        (Some("succeeded"), Some(2))
    );
    let feedback = std::fs::read_to_string(&fb).unwrap();
    assert!(
        feedback.contains("gate `grep -q two n.txt` failed"),
        "the second attempt gets the feedback in BATON_FEEDBACK: {feedback:?}"
    );
}

#[test]
fn an_agent_that_rewinds_below_its_start_loses_nothing_and_the_report_says_so() {
    let env = TestEnv::new();
    for n in 1..=2 {
        env.write(&format!("base{n}.txt"), "base\n");
        env.commit_all(&format!("base {n}"));
    }
    env.write(
        "baton.toml",
        &bash_plan(
            r#"
[[task]]
id = "t"
prompt = """
echo A > a.txt; git add a.txt; git commit -qm A
echo B > b.txt; git add b.txt; git commit -qm B
git reset -q --hard HEAD~3
"""
"#,
        ),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let run = r.report["run"].as_str().unwrap().to_string();
    let t = task(&r.report, "t");
    let warnings = t["warnings"].to_string();
    assert!(
        warnings.contains("moved its branch backwards"),
        "{warnings}"
    );
    assert!(
        warnings.contains("below where the task started"),
        "{warnings}"
    );
    let lost = format!("refs/baton/{run}/t/1-lost-1");
    assert!(warnings.contains(&lost), "{warnings}");
    assert_eq!(show(&env, &lost, "a.txt").as_deref(), Some("A\n"));
    assert_eq!(show(&env, &lost, "b.txt").as_deref(), Some("B\n"));
    // Nothing of it reached the integration branch, not even an empty merge.
    assert_eq!(r.report["integration_commit"], r.report["base_commit"]);
}

#[test]
fn an_agent_that_switches_branch_has_its_work_brought_back_to_the_task_branch() {
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        &bash_plan(
            "[[task]]\nid = \"t\"\nprompt = \"git checkout -q -b elsewhere; echo X > x.txt\"\n",
        ),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = task(&r.report, "t");
    assert!(
        t["warnings"]
            .to_string()
            .contains("switched its worktree to branch elsewhere"),
        "{t}"
    );
    let branch = t["branch"].as_str().unwrap();
    let commit = t["commit"].as_str().unwrap();
    assert_eq!(
        env.git(&["rev-parse", branch]).trim(),
        commit,
        "the branch holds the reported commit"
    );
    assert_eq!(show(&env, branch, "x.txt").as_deref(), Some("X\n"));
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(show(&env, integration, "x.txt").as_deref(), Some("X\n"));
}

#[test]
fn a_commit_pushed_to_the_integration_branch_by_an_agent_is_undone_and_kept() {
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        &bash_plan(
            r#"
[run]
max_parallel = 1

[[task]]
id = "rogue"
on_failure = "continue"
prompt = """
echo ungated > rogue.txt; git add rogue.txt; git commit -qm rogue
git update-ref "refs/heads/baton/$BATON_RUN/integration" HEAD
exit 1
"""

[[task]]
id = "b"
prompt = "echo b > b.txt"
"#,
        ),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1, "rogue failed: {}", r.stderr);
    let run = r.report["run"].as_str().unwrap().to_string();
    assert_eq!(task(&r.report, "b")["merged"], true);
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(show(&env, integration, "b.txt").as_deref(), Some("b\n"));
    assert_eq!(
        show(&env, integration, "rogue.txt"),
        None,
        "ungated work does not land"
    );
    let kept = format!("refs/baton/{run}/foreign-1");
    assert_eq!(show(&env, &kept, "rogue.txt").as_deref(), Some("ungated\n"));
    assert!(
        r.stderr
            .contains("someone else moved the integration branch"),
        "{}",
        r.stderr
    );
}

#[test]
fn changes_an_agent_makes_to_the_repositorys_config_and_hooks_are_reported() {
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        &bash_plan(
            r#"
[[task]]
id = "meddler"
prompt = """
git config --local baton.test.touched yes
hooks="$(git rev-parse --git-common-dir)/hooks"
mkdir -p "$hooks"; printf '#!/bin/sh\\nexit 0\\n' > "$hooks/post-commit"; chmod +x "$hooks/post-commit"
echo done > done.txt
"""
"#,
        ),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let warnings = task(&r.report, "meddler")["warnings"].to_string();
    assert!(
        warnings.contains(
            ".git/config changed during the run (added: [baton \\\"test\\\"], touched = yes"
        ),
        "{warnings}"
    );
    assert!(
        warnings.contains("git hook post-commit was added"),
        "{warnings}"
    );
}

#[test]
fn an_exec_prompt_that_grows_too_long_at_run_fails_with_a_reason() {
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        &bash_plan(
            r#"
[[task]]
id = "loud"
prompt = "head -c 200000 /dev/zero | tr '\\0' y"

[[task]]
id = "reader"
needs = ["loud"]
prompt = "echo '{{ tasks.loud.result }}' > got.txt"
"#,
        ),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let t = task(&r.report, "reader");
    assert_eq!(t["status"], "failed");
    let reason = t["reason"].as_str().unwrap();
    assert!(
        reason.contains("more than one argument can carry"),
        "{reason}"
    );
    assert!(reason.contains("BATON_PROMPT_FILE"), "{reason}");
}
