//! `[[schedule]]`: `baton serve` starts a plan's run or queues a task at the
//! times a cron expression names, never overlapping a schedule with itself,
//! and `baton runs` shows when each fires next.

use crate::common::*;
use baton_testutils::{fake_agent, TestEnv};
use std::process::Stdio;

#[test]
fn schedules_start_runs_and_tasks_on_time_never_overlapping_themselves() {
    let env = TestEnv::new();
    let fake = fake_agent().display().to_string();
    let profile = format!(
        "[agent.fake]\nadapter = \"exec\"\ncommand = [{fake:?}]\n\n[defaults]\nagent = \"fake\"\n"
    );
    env.write(
        "nightly.toml",
        &format!("{profile}\n[[task]]\nid = \"night\"\nprompt = \"write night.txt from the nightly plan\"\n"),
    );
    env.write(
        "baton.toml",
        &format!(
            "{profile}\n[[schedule]]\nname = \"tick\"\ncron = \"*/2 * * * * *\"\nprompt = \"write tick.txt from the schedule\\nsleep 5\"\n\n\
             [[schedule]]\nname = \"nightly\"\ncron = \"*/3 * * * * *\"\nplan = \"nightly.toml\"\n"
        ),
    );
    env.commit_all("plans");
    let log = std::fs::File::create(env.scratch("serve.log")).unwrap();
    let mut server = baton(&env)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("BATON_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let ticks = || {
        store_rows(
            &env,
            "SELECT started_at || ' ' || finished_at FROM tasks WHERE id LIKE 't%-tick' AND status = 'succeeded' ORDER BY started_at",
        )
    };
    wait_for("two ticks to run to their end", 60, || ticks().len() >= 2);
    let nightly = store_rows(
        &env,
        "SELECT count(*) FROM runs WHERE plan_path = 'nightly.toml'",
    );
    let runs = output(baton(&env).arg("runs"));
    // SAFETY: signalling a child we started.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let _ = server.wait();
    let serve_log = std::fs::read_to_string(env.scratch("serve.log")).unwrap();
    // A tick lasts 5 s and its time comes every 2 s: the next one starts
    // only after the last one ended, and the times between are skipped.
    let spans: Vec<(i64, i64)> = ticks()
        .iter()
        .map(|l| {
            let (a, b) = l.split_once(' ').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect();
    for pair in spans.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "ticks overlapped: {spans:?}");
    }
    assert!(
        serve_log
            .contains("schedule tick: what it started last still goes on; this time is skipped"),
        "{serve_log}"
    );
    let skipped = store_rows(
        &env,
        "SELECT last_skipped_at IS NOT NULL FROM schedules WHERE name = 'tick'",
    );
    assert_eq!(skipped, ["1"]);
    // The plan schedule started runs of its plan file.
    assert!(nightly[0].parse::<u32>().unwrap() >= 1, "{serve_log}");
    let runs = String::from_utf8_lossy(&runs.stdout);
    assert!(runs.contains("schedules of `baton serve` (UTC):"), "{runs}");
    assert!(
        runs.contains("tick") && runs.contains("*/2 * * * * *") && runs.contains("next 20"),
        "{runs}"
    );
}
