//! The scheduler: the four patterns, skipping, on_failure, max_parallel.

use crate::common::*;
use baton_testutils::TestEnv;

#[test]
fn sequential_chain_sees_upstream_work_merged() {
    let env = TestEnv::new();
    write_plan(
        &env,
        r#"
[[task]]
id = "first"
prompt = "write step.txt one; say first done"

[[task]]
id = "second"
needs = ["first"]
prompt = "append step.txt two"
gates = ["grep -q one step.txt"]

[[task]]
id = "third"
needs = ["second"]
prompt = "append step.txt three"
gates = ["test $(wc -l < step.txt) -eq 3"]
"#,
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let integ = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(show(&env, integ, "step.txt").unwrap(), "one\ntwo\nthree\n");
}

#[test]
fn split_role_synthesizer_reads_every_upstream_result() {
    let env = TestEnv::new();
    let out = env.scratch("synth.txt");
    write_plan(
        &env,
        &format!(
            r#"
[[task]]
id = "security"
prompt = "say no injection found"
merge = false

[[task]]
id = "perf-review"
prompt = "write perf.txt measured; say loop in search is O(n^2)"

[[task]]
id = "synth"
needs = ["security", "perf-review"]
prompt = """prompt {out}

security: {{{{ tasks.security.result }}}} ({{{{ tasks.security.status }}}})
perf: {{{{ tasks["perf-review"].result }}}} on {{{{ tasks["perf-review"].branch }}}} files {{{{ tasks["perf-review"].files | join(",") }}}}"""
merge = false
"#,
            out = out.display()
        ),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let prompt = std::fs::read_to_string(&out).unwrap();
    assert!(
        prompt.contains("security: no injection found (succeeded)"),
        "{prompt}"
    );
    let run = r.report["run"].as_str().unwrap();
    assert!(
        prompt.contains(&format!(
            "perf: loop in search is O(n^2) on baton/{run}/task/perf-review files perf.txt"
        )),
        "{prompt}"
    );
}

#[test]
fn dependents_of_a_failed_task_are_skipped_and_stop_starts_nothing_new() {
    let env = TestEnv::new();
    write_plan(
        &env,
        r#"
[run]
max_parallel = 1

[[task]]
id = "broken"
prompt = "exit 1"

[[task]]
id = "child"
needs = ["broken"]
prompt = "say x"

[[task]]
id = "grandchild"
needs = ["child"]
prompt = "say x"

[[task]]
id = "independent"
prompt = "say x"
"#,
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1);
    assert_eq!(task(&r.report, "broken")["status"], "failed");
    for id in ["child", "grandchild"] {
        let t = task(&r.report, id);
        assert_eq!(t["status"], "skipped");
        assert_eq!(t["attempts"], 0);
    }
    assert!(task(&r.report, "child")["reason"]
        .as_str()
        .unwrap()
        .contains("needs \"broken\", which failed"));
    assert!(task(&r.report, "grandchild")["reason"]
        .as_str()
        .unwrap()
        .contains("needs \"child\", which was skipped"));
    // max_parallel 1 and file order: "independent" had not started when "broken" failed.
    let ind = task(&r.report, "independent");
    assert_eq!(ind["status"], "skipped");
    assert!(
        ind["reason"]
            .as_str()
            .unwrap()
            .contains("on_failure is \"stop\""),
        "{ind}"
    );
}

#[test]
fn on_failure_continue_lets_independent_work_run() {
    let env = TestEnv::new();
    write_plan(
        &env,
        r#"
[run]
max_parallel = 1

[[task]]
id = "broken"
prompt = "exit 1"
on_failure = "continue"

[[task]]
id = "child"
needs = ["broken"]
prompt = "say x"

[[task]]
id = "independent"
prompt = "write ind.txt x"
"#,
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1);
    assert_eq!(task(&r.report, "child")["status"], "skipped");
    assert_eq!(task(&r.report, "independent")["status"], "succeeded");
    assert_eq!(task(&r.report, "independent")["merged"], true);
}

#[test]
fn running_tasks_finish_after_a_stop_failure() {
    let env = TestEnv::new();
    let go = env.scratch("go");
    write_plan(
        &env,
        &format!(
            r#"
[run]
max_parallel = 2

[[task]]
id = "slow"
prompt = "wait-file {go}; write slow.txt done"

[[task]]
id = "fails"
prompt = "touch {go}; exit 1"
"#,
            go = go.display()
        ),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1);
    assert_eq!(task(&r.report, "fails")["status"], "failed");
    let slow = task(&r.report, "slow");
    assert_eq!(
        slow["status"], "succeeded",
        "a running task finishes and merges: {slow}"
    );
    assert_eq!(slow["merged"], true);
}

#[test]
fn max_parallel_bounds_concurrency() {
    let env = TestEnv::new();
    let dir = env.scratch("slots");
    std::fs::create_dir_all(&dir).unwrap();
    let mut body = String::from("[run]\nmax_parallel = 2\n");
    for i in 0..6 {
        // Each task records how many others are inside at once.
        body.push_str(&format!(
            "\n[[task]]\nid = \"t{i}\"\nprompt = \"touch {d}/in-{i}; sleep 0.3; write count-{i}.txt x\"\n",
            d = dir.display()
        ));
    }
    write_plan(&env, &body);
    let mut child = spawn_baton(&env, &["run", "--json"]);
    let mut max_seen = 0;
    let mut done = false;
    while !done {
        let running = latest_run_opt(&env).map(|r| {
            r["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["status"] == "running")
                .count()
        });
        max_seen = max_seen.max(running.unwrap_or(0));
        done = child.try_wait().unwrap().is_some();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(max_seen <= 2, "at most 2 at once, saw {max_seen}");
    assert!(max_seen == 2, "two should run together, saw {max_seen}");
}

#[test]
fn examples_run_and_merge() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut ran = 0;
    for entry in std::fs::read_dir(&root).expect("examples/") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let env = TestEnv::new();
        std::fs::copy(&path, env.repo.join("baton.toml")).unwrap();
        let r = run_json(&env, &[]);
        assert_eq!(r.code, 0, "{} failed: {}", path.display(), r.stderr);
        for t in r.report["tasks"].as_array().unwrap() {
            assert_eq!(t["status"], "succeeded", "{}: {t}", path.display());
        }
        ran += 1;
    }
    assert!(ran >= 4, "the four patterns are in examples/, found {ran}");
}
