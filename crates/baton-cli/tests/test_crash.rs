//! baton itself dying: no orphans, nothing lost, and `baton resume`.

use crate::common::*;
use baton_testutils::TestEnv;
use std::time::{Duration, Instant};

fn plan_with_a_hanging_task(env: &TestEnv, marker: &std::path::Path) {
    let gc = env.scratch("gc.pid");
    let me = env.scratch("agent.pid");
    write_plan(
        env,
        &format!(
            r#"
[run]
max_parallel = 2

[[task]]
id = "quick"
prompt = "write quick.txt done; say quick"

[[task]]
id = "long"
prompt = """on-attempt 1 write long.txt from attempt one
on-attempt 1 grandchild {gc}
on-attempt 1 pid {me}
on-attempt 1 ignore-signals
on-attempt 1 hang
on-attempt 2 append long.txt finished on resume
append {marker} ran"""

[[task]]
id = "after"
needs = ["quick", "long"]
prompt = "append {marker} after; write after.txt yes"
"#,
            gc = gc.display(),
            me = me.display(),
            marker = marker.display()
        ),
    );
}

#[test]
fn killed_baton_leaves_no_agents_and_resume_finishes_the_run() {
    let env = TestEnv::new();
    let marker = env.scratch("runs.log");
    plan_with_a_hanging_task(&env, &marker);
    let mut child = spawn_baton(&env, &["run", "--json"]);
    let me = env.scratch("agent.pid");
    let agent = wait_for_pid("the long agent to start", &me);
    wait_for_task(&env, "quick", "succeeded");
    let grandchild = wait_for_pid("its grandchild's pid", &env.scratch("gc.pid"));

    child.kill().unwrap(); // SIGKILL: no cleanup code of baton's runs
    child.wait().unwrap();
    let t0 = Instant::now();
    wait_for("agents to die after baton was killed", 10, || {
        !pid_alive(agent) && !pid_alive(grandchild)
    });
    assert!(t0.elapsed() < Duration::from_secs(8));

    let status = output(baton(&env).arg("status"));
    assert!(
        String::from_utf8_lossy(&status.stdout)
            .contains("interrupted; continue it with `baton resume`"),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );

    let r = parse_run(output(baton(&env).args(["resume", "--json"])));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let quick = task(&r.report, "quick");
    assert_eq!(quick["attempts"], 1, "finished tasks are not redone");
    let long = task(&r.report, "long");
    assert_eq!(long["status"], "succeeded");
    assert_eq!(long["attempts"], 2);
    let integ = r.report["integration_branch"].as_str().unwrap();
    // The killed attempt's work was kept and built on.
    assert_eq!(
        show(&env, integ, "long.txt").as_deref(),
        Some("from attempt one\nfinished on resume\n")
    );
    assert_eq!(show(&env, integ, "after.txt").as_deref(), Some("yes\n"));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "ran\nafter\n");

    let again = output(baton(&env).arg("resume"));
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already finished"));
}

#[test]
fn ctrl_c_stops_agents_commits_work_and_resume_continues() {
    let env = TestEnv::new();
    let marker = env.scratch("runs.log");
    plan_with_a_hanging_task(&env, &marker);
    let child = spawn_baton(&env, &["run", "--json"]);
    let me = env.scratch("agent.pid");
    let agent = wait_for_pid("the long agent to start", &me);
    wait_for_task(&env, "quick", "succeeded");
    let grandchild = wait_for_pid("its grandchild's pid", &env.scratch("gc.pid"));
    // SAFETY: signalling a child we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let r = parse_run(child.wait_with_output().unwrap());
    assert_eq!(r.code, 130, "{}", r.stderr);
    assert_eq!(r.report["status"], "interrupted");
    assert!(
        r.stderr.contains("continue with: baton resume"),
        "{}",
        r.stderr
    );
    assert!(
        !pid_alive(agent) && !pid_alive(grandchild),
        "no agent outlives an interrupted run"
    );
    let long = task(&r.report, "long");
    assert_eq!(long["status"], "pending");
    assert_eq!(
        show(&env, long["branch"].as_str().unwrap(), "long.txt").as_deref(),
        Some("from attempt one\n")
    );

    let r = parse_run(output(baton(&env).args(["resume", "--json"])));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(task(&r.report, "quick")["attempts"], 1);
    assert_eq!(task(&r.report, "after")["status"], "succeeded");
}

#[test]
fn a_run_cannot_be_resumed_while_it_is_going_on() {
    let env = TestEnv::new();
    let started = env.scratch("started");
    write_plan(
        &env,
        &format!(
            "[[task]]\nid = \"t\"\nprompt = \"touch {s}; hang\"\n",
            s = started.display()
        ),
    );
    let mut child = spawn_baton(&env, &["run"]);
    wait_for("the agent", 20, || started.exists());
    let out = output(baton(&env).arg("resume"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is still going on in process"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = output(baton(&env).args(["stop", "t"]));
    assert!(out.status.success());
    assert_eq!(child.wait().unwrap().code(), Some(1));
}

/// Eight tasks with needs: a and b feed c, which feeds d and e, which feed
/// f; g and h stand alone. Every task has a gate.
fn eight_tasks() -> String {
    let mut plan = String::from("[run]\nmax_parallel = 2\n");
    for (id, needs) in [
        ("a", ""),
        ("b", ""),
        ("c", "\"a\", \"b\""),
        ("d", "\"c\""),
        ("e", "\"c\""),
        ("f", "\"d\", \"e\""),
        ("g", ""),
        ("h", ""),
    ] {
        plan.push_str(&format!(
            "\n[[task]]\nid = \"{id}\"\nneeds = [{needs}]\nprompt = \"write {id}.txt {id}; say {id} done\"\ngates = [\"test -f {id}.txt\"]\n"
        ));
    }
    plan
}

/// Processes still running with this run in their environment.
fn processes_of(run: &str) -> Vec<String> {
    let want = format!("BATON_RUN={run}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let environ = entry.path().join("environ");
        if let Ok(bytes) = std::fs::read(&environ) {
            if bytes.split(|b| *b == 0).any(|v| v == want.as_bytes()) {
                found.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    found
}

#[test]
fn resume_after_a_crash_at_any_moment_finishes_the_run() {
    let points = [
        "desk-made",
        "desk-made@5",
        "desk-moved",
        "attempt-started@2",
        "agent-ended@3",
        "gates@4",
        "merged",
        "merged@5",
    ];
    crash_and_resume(&eight_tasks(), &points, false);
}

#[test]
fn resume_after_a_crash_finishes_a_run_whose_desks_come_from_the_pool() {
    let points = [
        "desk-made",
        "desk-made@4",
        "desk-moved",
        "desk-moved@3",
        "merged@3",
    ];
    let plan = format!("[workspace]\npool = 2\n\n{}", eight_tasks());
    crash_and_resume(&plan, &points, true);
}

/// Kills baton at each of `points` in a run of `plan`, resumes it, and
/// checks every task merged once, git sound, no worktree of the run and no
/// process left (with a pool, only the pool's worktrees stay).
fn crash_and_resume(plan: &str, points: &[&str], pooled: bool) {
    for &point in points {
        let env = TestEnv::new();
        write_plan(&env, plan);
        let (before, r) = crash_then_resume(&env, point);
        let run = before["run"].as_str().unwrap().to_string();
        let integration = r.report["integration_branch"].as_str().unwrap();
        for id in ["a", "b", "c", "d", "e", "f", "g", "h"] {
            let t = task(&r.report, id);
            assert_eq!(
                (t["status"].as_str(), t["merged"].as_bool()),
                (Some("succeeded"), Some(true)),
                "{point}: {t}"
            );
            assert_eq!(
                show(&env, integration, &format!("{id}.txt")).as_deref(),
                Some(format!("{id}\n").as_str()),
                "{point}: {id}'s work is merged"
            );
            let was = task(&before, id);
            if was["merged"] == true {
                assert_eq!(t["attempts"], was["attempts"], "{point}: {id} was redone");
            }
        }
        let fsck = env.git_output(&["fsck", "--no-progress"]);
        assert!(
            fsck.status.success(),
            "{point}: {}",
            String::from_utf8_lossy(&fsck.stderr)
        );
        let list = env.git(&["worktree", "list"]);
        let left: Vec<&str> = list
            .lines()
            .skip(1)
            .filter(|l| !(pooled && l.contains("/.pool/") && l.contains("(detached HEAD)")))
            .collect();
        assert!(left.is_empty(), "{point}: {list}\n{:#}", r.report);
        assert!(processes_of(&run).is_empty(), "{point}: orphans");
    }
}

#[test]
fn log_lines_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let env = TestEnv::new();
    write_plan(&env, "[[task]]\nid = \"a\"\nprompt = \"say a\"\n");
    let out = output(
        baton(&env)
            .args(["run"])
            .env("BATON_FAILPOINT", "desk-made"),
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("failpoint desk-made"), "{said}");
    assert!(!said.contains('\u{1b}'), "{said:?}");
}

/// A run whose agent wrote some work and hangs; the run's process and the
/// agent's pid.
fn run_with_a_hanging_agent(env: &TestEnv) -> (std::process::Child, i32) {
    let me = env.scratch("agent.pid");
    write_plan(
        env,
        &format!(
            "[[task]]\nid = \"t\"\nprompt = \"write wip.txt kept; pid {me}; hang\"\n",
            me = me.display()
        ),
    );
    let child = spawn_baton(env, &["run"]);
    let pid = wait_for_pid("the agent to start", &me);
    (child, pid)
}

#[test]
fn a_store_removed_under_a_live_run_stops_it_and_says_so() {
    let env = TestEnv::new();
    let (child, agent) = run_with_a_hanging_agent(&env);
    let db = env.repo.join(".git/baton/baton.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("was removed, replaced or cut short while run"),
        "{said}"
    );
    assert!(!pid_alive(agent), "its agent is stopped");
    let branch = env.git(&[
        "for-each-ref",
        "--format=%(refname)",
        "refs/heads/baton/*/task/t",
    ]);
    assert_eq!(
        show(&env, branch.trim(), "wip.txt").as_deref(),
        Some("kept\n")
    );
}

#[test]
fn a_store_that_refuses_the_run_leaves_no_branch_behind() {
    let env = TestEnv::new();
    write_plan(&env, "[[task]]\nid = \"t\"\nprompt = \"say hi\"\n");
    let first = run_json(&env, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    // The store now refuses every new run (as a read-only one would).
    let db = env.repo.join(".git/baton/baton.db");
    let sql = "CREATE TRIGGER refuse BEFORE INSERT ON runs BEGIN SELECT RAISE(FAIL, 'store is read-only'); END;";
    let py = format!(
        "import sqlite3; c = sqlite3.connect({:?}); c.execute({sql:?}); c.commit()",
        db.display().to_string()
    );
    let made = std::process::Command::new("python3")
        .args(["-c", &py])
        .status()
        .unwrap();
    assert!(made.success());
    let out = output(baton(&env).arg("run"));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("store is read-only"), "{said}");
    let branches = env.git(&[
        "for-each-ref",
        "--format=%(refname)",
        "refs/heads/baton/*/integration",
    ]);
    assert_eq!(
        branches.lines().count(),
        1,
        "only the first run's: {branches}"
    );
}

#[test]
fn a_desk_baton_cannot_make_stops_the_run_resumable_instead_of_failing_the_task() {
    let env = TestEnv::new();
    write_plan(
        &env,
        "[[task]]\nid = \"t\"\nprompt = \"write t.txt done\"\n",
    );
    // Where worktrees go is a file: no desk can be made there.
    std::fs::create_dir_all(env.repo.join(".git/baton")).unwrap();
    std::fs::write(env.repo.join(".git/baton/worktrees"), "in the way\n").unwrap();
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 130, "{}", r.stderr);
    assert_eq!(r.report["status"], "interrupted");
    assert_eq!(
        task(&r.report, "t")["status"],
        "pending",
        "not the task's failure"
    );
    assert!(
        r.stderr.contains("continue with: baton resume"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("baton cannot go on: cannot create the task's worktree"),
        "{}",
        r.stderr
    );

    std::fs::remove_file(env.repo.join(".git/baton/worktrees")).unwrap();
    let r = parse_run(output(baton(&env).args(["resume", "--json"])));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(task(&r.report, "t")["merged"], true);
}

/// A store cut short in place (same file, fewer bytes) is noticed like one
/// removed: the run stops and says so, its agent's work kept.
#[test]
fn a_store_truncated_under_a_live_run_stops_it_and_says_so() {
    let env = TestEnv::new();
    let (child, agent) = run_with_a_hanging_agent(&env);
    let db = env.repo.join(".git/baton/baton.db");
    let len = std::fs::metadata(&db).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("cut short while run"), "{said}");
    assert!(!pid_alive(agent), "its agent is stopped");
}
