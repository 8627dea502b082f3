//! Acting on a run from another process: stop, steer, approve, status, logs.

use crate::common::*;
use baton_testutils::TestEnv;
use std::time::{Duration, Instant};

fn finish(child: std::process::Child) -> RunOutput {
    parse_run(child.wait_with_output().expect("baton run"))
}

#[test]
fn stop_kills_the_whole_group_even_a_grandchild_that_ignores_sigterm() {
    let env = TestEnv::new();
    let gc = env.scratch("grandchild.pid");
    let me = env.scratch("agent.pid");
    write_plan(
        &env,
        &format!(
            "[[task]]\nid = \"stubborn\"\nprompt = \"ignore-signals; write wip.txt halfway; grandchild {gc}; pid {me}; hang\"\n",
            gc = gc.display(),
            me = me.display()
        ),
    );
    let child = spawn_baton(&env, &["run", "--json"]);
    let agent = wait_for_pid("the agent to start its grandchild", &me);
    let grandchild = wait_for_pid("the grandchild's pid", &gc);
    assert!(pid_alive(agent) && pid_alive(grandchild));

    let t0 = Instant::now();
    let out = output(baton(&env).args(["stop", "stubborn"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("stopping task \"stubborn\""));
    wait_for("agent and grandchild to die", 10, || {
        !pid_alive(agent) && !pid_alive(grandchild)
    });
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "took {:?}",
        t0.elapsed()
    );

    let r = finish(child);
    assert_eq!(r.code, 1);
    let t = task(&r.report, "stubborn");
    assert_eq!(t["status"], "stopped");
    assert_eq!(t["reason"], "stopped by request (baton stop)");
    assert_eq!(
        show(&env, t["branch"].as_str().unwrap(), "wip.txt").as_deref(),
        Some("halfway\n")
    );
}

#[test]
fn steer_restarts_an_exec_task_with_the_message_as_feedback() {
    let env = TestEnv::new();
    let fb = env.scratch("fb.txt");
    let started = env.scratch("started");
    write_plan(
        &env,
        &format!(
            "[[task]]\nid = \"t\"\nretries = 0\nprompt = \"\"\"on-attempt 1 touch {s}\non-attempt 1 hang\nfeedback {fb}\nwrite done.txt ok\"\"\"\n",
            s = started.display(),
            fb = fb.display()
        ),
    );
    let child = spawn_baton(&env, &["run", "--json"]);
    wait_for("attempt 1", 20, || started.exists());
    let out = output(baton(&env).args(["steer", "t", "use the other API instead"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = finish(child);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = task(&r.report, "t");
    assert_eq!(
        t["attempts"], 2,
        "a steer is a new attempt and does not use up a retry"
    );
    assert_eq!(
        std::fs::read_to_string(&fb).unwrap().trim(),
        "use the other API instead"
    );
}

#[test]
fn approve_merges_a_waiting_task() {
    let env = TestEnv::new();
    write_plan(
        &env,
        "[[task]]\nid = \"risky\"\nprompt = \"write risky.txt change\"\napprove = true\n\n[[task]]\nid = \"after\"\nneeds = [\"risky\"]\nprompt = \"append risky.txt more\"\n",
    );
    let child = spawn_baton(&env, &["run", "--json"]);
    wait_for_task(&env, "risky", "awaiting_approval");
    assert_eq!(
        task_status(&env, "after"),
        "pending",
        "nothing downstream starts before approval"
    );

    // Approving something that does not wait is refused, and changes nothing.
    let out = output(baton(&env).args(["approve", "after"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not waiting for approval"));

    let out = output(baton(&env).args(["approve", "risky"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = finish(child);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(task(&r.report, "risky")["merged"], true);
    assert_eq!(
        show(
            &env,
            r.report["integration_branch"].as_str().unwrap(),
            "risky.txt"
        )
        .as_deref(),
        Some("change\nmore\n")
    );
}

#[test]
fn status_and_logs_follow_a_run_from_another_process() {
    let env = TestEnv::new();
    let go = env.scratch("go");
    write_plan(
        &env,
        &format!("[[task]]\nid = \"chatty\"\nprompt = \"say line one; wait-file {go}; say line two\"\ngates = [\"echo gate-output\"]\n", go = go.display()),
    );
    let child = spawn_baton(&env, &["run", "--json"]);
    wait_for_task(&env, "chatty", "running");
    let out = output(baton(&env).arg("status"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("going on (pid"), "{text}");
    assert!(
        text.contains("chatty") && text.contains("running"),
        "{text}"
    );

    let follower = baton(&env)
        .args(["logs", "-f", "chatty"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&go, "").unwrap();
    let logs = follower.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(text.contains("==> attempt 1"), "{text}");
    assert!(
        text.contains("line one\n") && text.contains("line two\n"),
        "{text}"
    );
    assert!(
        text.contains("gate `echo gate-output`") && text.contains("gate-output\n"),
        "{text}"
    );
    let r = finish(child);
    assert_eq!(r.code, 0);

    let out = output(baton(&env).arg("status"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("succeeded (finished)"));
}

#[test]
fn control_commands_explain_what_is_wrong() {
    let env = TestEnv::new();
    let out = output(baton(&env).args(["stop", "x"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no baton runs"));

    write_plan(&env, "[[task]]\nid = \"t\"\nprompt = \"say hi\"\n");
    assert_eq!(run_json(&env, &[]).code, 0);
    let out = output(baton(&env).args(["stop", "nope"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no task \"nope\" (its tasks: t)"));
    let out = output(baton(&env).args(["steer", "t", "hello"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not going on"));
    let out = output(baton(&env).args(["status", "no-such-run"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no run \"no-such-run\""));
}

#[test]
fn auto_approve_merges_without_waiting() {
    let env = TestEnv::new();
    write_plan(
        &env,
        "[[task]]\nid = \"risky\"\nprompt = \"write risky.txt change\"\napprove = true\n",
    );
    let r = run_json(&env, &["--auto-approve"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(task(&r.report, "risky")["merged"], true);
}

#[test]
fn logs_streams_a_big_log_instead_of_reading_it_whole() {
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        &bash_plan(
            "[[task]]\nid = \"loud\"\nprompt = \"head -c 64000000 /dev/zero | tr '\\\\\\\\0' x; echo\"\n",
        ),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let status = baton(&env)
        .args(["logs", "loud"])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    // The largest child this test waited for: `baton logs` (and `baton run`).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) },
        0
    );
    let max_rss_mib = usage.ru_maxrss / 1024;
    // Read whole, the log alone would take 64 MiB; the binary's own pages
    // (which grow with it) and `baton run` stay well under 48.
    assert!(max_rss_mib < 48, "a 64 MB log took {max_rss_mib} MiB");
}
