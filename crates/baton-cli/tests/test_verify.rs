//! `[run] verify`: checks on the merged whole before the integration branch
//! moves; a failure keeps the task's work off it and feeds the task back.

use crate::common::*;
use baton_testutils::TestEnv;

fn plan(retries: u32, fb: &std::path::Path) -> String {
    bash_plan(&format!(
        r#"
[run]
verify = ["test ! -e bad.txt || (echo 'bad.txt must not land' >&2; exit 3)"]

[[task]]
id = "t"
retries = {retries}
prompt = """
printf '%s' "$BATON_FEEDBACK" > {fb}
if [ "$BATON_ATTEMPT" = 1 ]; then echo bad > bad.txt; else rm -f bad.txt; echo good > good.txt; fi
"""
"#,
        fb = fb.display()
    ))
}

#[test]
fn a_failing_verify_keeps_the_work_off_and_retries_the_task_with_its_output() {
    let env = TestEnv::new();
    let fb = env.scratch("feedback.txt");
    env.write("baton.toml", &plan(1, &fb));
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = task(&r.report, "t");
    assert_eq!(
        (t["attempts"].as_u64(), t["merged"].as_bool()),
        (Some(2), Some(true)),
        "{t}"
    );
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(
        show(&env, integration, "good.txt").as_deref(),
        Some("good\n")
    );
    assert_eq!(show(&env, integration, "bad.txt"), None);
    let feedback = std::fs::read_to_string(&fb).unwrap();
    assert!(feedback.contains("verify `test ! -e bad.txt"), "{feedback}");
    assert!(feedback.contains("bad.txt must not land"), "{feedback}");
    // The branch moved once: the failed merge never reached it.
    let moves = env.git(&["rev-list", "--first-parent", "--count", integration]);
    let base = env.git(&["rev-list", "--first-parent", "--count", "HEAD"]);
    assert_eq!(
        moves.trim().parse::<u32>().unwrap(),
        base.trim().parse::<u32>().unwrap() + 1
    );
    assert!(r.stderr.contains("verify"), "{}", r.stderr);
}

#[test]
fn a_failing_verify_with_no_retries_left_fails_the_task_and_nothing_moves() {
    let env = TestEnv::new();
    let fb = env.scratch("feedback.txt");
    env.write("baton.toml", &plan(0, &fb));
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let t = task(&r.report, "t");
    assert_eq!(t["status"], "failed");
    let reason = t["reason"].as_str().unwrap();
    assert!(reason.contains("verify `test ! -e bad.txt"), "{reason}");
    assert!(reason.contains("failed with exit status 3"), "{reason}");
    assert_eq!(r.report["integration_commit"], r.report["base_commit"]);
    // Its work is still on its branch.
    let branch = t["branch"].as_str().unwrap();
    assert_eq!(show(&env, branch, "bad.txt").as_deref(), Some("bad\n"));
    let list = env.git(&["worktree", "list"]);
    assert_eq!(
        list.lines().filter(|l| l.contains("-verify")).count(),
        0,
        "{list}"
    );
}

#[test]
fn the_engine_answers_during_a_long_verify_and_ctrl_c_leaves_the_merge_for_resume() {
    let env = TestEnv::new();
    let once = env.scratch("verified-once");
    let started = env.scratch("verify-started");
    env.write(
        "baton.toml",
        &bash_plan(&format!(
            r#"
[run]
verify = ["test -e {once} || (touch {once} {started}; sleep 60)"]

[[task]]
id = "t"
prompt = "echo t > t.txt"
"#,
            once = once.display(),
            started = started.display()
        )),
    );
    let child = spawn_baton(&env, &["run", "--json"]);
    wait_for("the verify to start", 20, || started.exists());
    let out = output(baton(&env).args(["stop", "t"]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("is being merged; it cannot be stopped now"),
        "{said}"
    );
    let t0 = std::time::Instant::now();
    // SAFETY: signalling a child we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let r = parse_run(child.wait_with_output().unwrap());
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(r.code, 130, "{}", r.stderr);
    assert_eq!(task(&r.report, "t")["status"], "merging");

    let r = parse_run(output(baton(&env).args(["resume", "--json"])));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(task(&r.report, "t")["merged"], true);
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(show(&env, integration, "t.txt").as_deref(), Some("t\n"));
}

#[test]
fn a_batch_of_four_with_one_bad_task_lands_the_other_three() {
    let env = TestEnv::new();
    let log = env.scratch("verify.log");
    let mut body = format!(
        r#"
[run]
max_parallel = 5
verify_batch = 4
# t0's check is slow, so the four others finish meanwhile and wait together.
verify = ["""
echo "$BATON_TASK: $(ls *.txt | tr '\n' ' ')" >> {log}
if [ "$BATON_TASK" = t0 ]; then sleep 2; fi
test ! -e bad.txt || (echo 'bad.txt must not land' >&2; exit 3)
"""]

[[task]]
id = "t0"
prompt = "echo t0 > t0.txt"
"#,
        log = log.display()
    );
    for (id, file) in [("a", "a"), ("b", "bad"), ("c", "c"), ("d", "d")] {
        body.push_str(&format!(
            "\n[[task]]\nid = \"{id}\"\nprompt = \"sleep 0.5; echo {id} > {file}.txt\"\n"
        ));
    }
    env.write("baton.toml", &bash_plan(&body));
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let checks = std::fs::read_to_string(&log).unwrap();
    let integration = r.report["integration_branch"].as_str().unwrap();
    for id in ["t0", "a", "c", "d"] {
        let t = task(&r.report, id);
        assert_eq!(t["merged"], true, "{id}: {t}\nchecks:\n{checks}");
        let file = format!("{id}.txt");
        assert_eq!(show(&env, integration, &file), Some(format!("{id}\n")));
    }
    let b = task(&r.report, "b");
    assert_eq!(b["status"], "failed", "{b}");
    let reason = b["reason"].as_str().unwrap();
    assert!(reason.contains("failed with exit status 3"), "{reason}");
    assert_eq!(show(&env, integration, "bad.txt"), None);
    // The second check held all four merges: they were checked as one batch.
    let second = checks.lines().nth(1).unwrap_or_default();
    for file in ["a.txt", "bad.txt", "c.txt", "d.txt"] {
        assert!(second.contains(file), "{second}\nchecks:\n{checks}");
    }
    // Bisection: fewer checks than a check per task after the first failure.
    assert!(checks.lines().count() <= 6, "checks:\n{checks}");
}

#[test]
fn verify_batch_without_verify_is_a_plan_error() {
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        &bash_plan("[run]\nverify_batch = 4\n\n[[task]]\nid = \"t\"\nprompt = \"true\"\n"),
    );
    let out = output(baton(&env).args(["check"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("run.verify_batch is set but run.verify is not"),
        "{err}"
    );
}

/// Tried on a real Python project, every merge failed verify with
/// `.venv/bin/python: not found`: verify's worktree had no setup. It is a
/// desk like a task's now: its setup (once per setup key), the copied
/// files, the run's ports.
#[test]
fn verify_runs_in_a_desk_made_ready_like_a_tasks() {
    let env = TestEnv::new();
    env.write(".gitignore", ".venv/\n.env\n");
    env.write(".env", "MODE=test\n");
    let setups = env.scratch("setups");
    env.write(
        "baton.toml",
        &bash_plan(&format!(
            r#"
[workspace]
setup = ["mkdir -p .venv/bin && printf '#!/bin/sh\necho tool ran\n' > .venv/bin/tool && chmod +x .venv/bin/tool && echo x >> {setups}"]
copy = [".env"]
ports = 2

[run]
verify = [".venv/bin/tool", "grep -q MODE=test .env", "test -n \"$BATON_PORT_2\""]

[[task]]
id = "a"
prompt = "echo a > a.txt"

[[task]]
id = "b"
prompt = "echo b > b.txt"
"#,
            setups = setups.display()
        )),
    );
    env.git(&["add", "baton.toml", ".gitignore"]);
    env.git(&["commit", "-qm", "plan"]);
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    for t in ["a", "b"] {
        assert_eq!(task(&r.report, t)["merged"], true, "{:#}", r.report);
    }
    // Two tasks' desks and the verify desk once, not once per merge.
    let ran = std::fs::read_to_string(&setups).unwrap().lines().count();
    assert_eq!(ran, 3, "setup ran {ran} times");
}
