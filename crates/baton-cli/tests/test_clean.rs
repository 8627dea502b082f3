//! `baton runs` and `baton clean`: listing runs, and cleaning them up
//! without making a single commit unreachable.

use crate::common::*;
use baton_testutils::TestEnv;
use std::collections::BTreeSet;

fn reachable(env: &TestEnv) -> BTreeSet<String> {
    env.git(&["rev-list", "--all"])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn clean_removes_worktrees_and_branches_and_keeps_every_commit() {
    let env = TestEnv::new();
    write_plan(
        &env,
        "[[task]]\nid = \"good\"\nprompt = \"write good.txt yes\"\non_failure = \"continue\"\n\n[[task]]\nid = \"bad\"\nprompt = \"write bad.txt kept; exit 3\"\non_failure = \"continue\"\n\n[[task]]\nid = \"dirty\"\nprompt = \"write dirty.txt x; exit 4\"\n",
    );
    let r = run_json(&env, &["--keep-worktrees"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let run = r.report["run"].as_str().unwrap().to_string();
    // Work nobody committed, left in one task's worktree.
    let dirty_wt = task(&r.report, "dirty")["worktree"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(format!("{dirty_wt}/unsaved.txt"), "by hand\n").unwrap();

    let runs = String::from_utf8_lossy(&output(baton(&env).arg("runs")).stdout).into_owned();
    assert!(
        runs.contains(&run) && runs.contains("failed") && runs.contains("2 failed, 1 succeeded"),
        "{runs}"
    );
    assert!(runs.contains("worktrees"), "{runs}");

    let before = reachable(&env);
    let dry = output(baton(&env).args(["clean", "--dry-run"]));
    let said = String::from_utf8_lossy(&dry.stdout);
    assert!(
        said.contains("would remove 2 worktrees and 3 branches"),
        "{said}"
    );
    assert!(
        said.contains("kept") && said.contains("unsaved.txt"),
        "{said}"
    );
    assert_eq!(reachable(&env), before, "a dry run changes nothing");
    assert!(env.git(&["branch", "--list", "baton/*"]).lines().count() == 4);

    let out = output(baton(&env).arg("clean"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = reachable(&env);
    assert!(before.is_subset(&after), "every commit stays reachable");
    let left = env.git(&["branch", "--list", "baton/*"]);
    assert_eq!(
        left.trim().trim_start_matches(['+', '*', ' ']),
        format!("baton/{run}/task/dirty"),
        "{left}"
    );
    assert!(std::path::Path::new(&dirty_wt).join("unsaved.txt").exists());
    let archive = env.git(&[
        "for-each-ref",
        "--format=%(refname)",
        &format!("refs/baton/archive/{run}/"),
    ]);
    assert!(
        archive.contains(&format!("refs/baton/archive/{run}/task/good")),
        "{archive}"
    );
    assert!(
        archive.contains(&format!("refs/baton/archive/{run}/integration")),
        "{archive}"
    );
    let list = env.git(&["worktree", "list"]);
    assert_eq!(
        list.lines().count(),
        2,
        "only the dirty one is left: {list}"
    );
}

#[test]
fn clean_refuses_a_run_that_is_going_on() {
    let env = TestEnv::new();
    let mut child = hanging_run(&env);
    let run = latest_run_opt(&env).unwrap()["run"]
        .as_str()
        .unwrap()
        .to_string();
    let out = output(baton(&env).args(["clean", &run]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has not finished"));
    let bulk = output(baton(&env).arg("clean"));
    assert!(String::from_utf8_lossy(&bulk.stderr).contains("no finished run to clean"));
    let _ = output(baton(&env).args(["stop", "t"]));
    child.wait().unwrap();
}

#[test]
fn clean_older_than_leaves_newer_runs_alone() {
    let env = TestEnv::new();
    write_plan(&env, "[[task]]\nid = \"t\"\nprompt = \"write t.txt yes\"\n");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let branches = || env.git(&["branch", "--list", "baton/*"]).lines().count();
    let before = branches();
    let out = output(baton(&env).args(["clean", "--older-than", "7d"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(branches(), before, "a run that ended just now is kept");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let out = output(baton(&env).args(["clean", "--older-than", "10ms"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(branches(), 0);
    let bad = output(baton(&env).args(["clean", "--older-than", "7 days"]));
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--older-than"));
}
