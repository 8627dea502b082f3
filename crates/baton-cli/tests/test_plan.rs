//! `baton plan`: a planner agent writes the plan, baton checks it (errors go
//! back to the planner), writes it, and runs it when asked.

use crate::common::*;
use baton_testutils::TestEnv;

/// A planner (an `exec` agent) whose first draft names a task that does not
/// exist; from the second attempt on it writes a valid two-task plan. It
/// records what it was given.
fn planner_plan(env: &TestEnv) {
    let script = env.scratch("planner.py");
    let seen = env.scratch("planner-seen.txt");
    std::fs::write(
        &script,
        format!(
            r#"import os, sys
out = os.environ["BATON_PLAN_OUT"]
attempt = os.environ["BATON_ATTEMPT"]
with open({seen:?}, "a") as f:
    f.write("attempt " + attempt + "\n" + os.environ.get("BATON_FEEDBACK", "") + "\n")
    f.write("prompt has goal: " + str("split the greeting" in sys.argv[-1]) + "\n")
open("scratch-change.txt", "w").write("the planner's checkout is thrown away")
head = '[agent.sh]\nadapter = "exec"\ncommand = ["bash", "-ec"]\n\n[defaults]\nagent = "sh"\n'
if attempt == "1":
    body = '\n[[task]]\nid = "hello"\nneeds = ["nowhere"]\nprompt = "echo hi > hello.txt"\n'
else:
    body = '\n[[task]]\nid = "hello"\nprompt = "echo hi > hello.txt"\ngates = ["test -s hello.txt"]\n\n[[task]]\nid = "bye"\nneeds = ["hello"]\nprompt = "echo bye > bye.txt"\n'
open(out, "w").write(head + body)
print("two tasks: hello, then bye")
"#,
            seen = seen.display().to_string()
        ),
    )
    .unwrap();
    env.write(
        "baton.toml",
        &format!(
            "[agent.planner]\nadapter = \"exec\"\ncommand = [\"python3\", {:?}]\n\n[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\n\n[defaults]\nagent = \"planner\"\n\n[[task]]\nid = \"unused\"\nprompt = \"x\"\n",
            script.display().to_string()
        ),
    );
    env.commit_all("profiles");
}

#[test]
fn plan_writes_a_checked_plan_after_the_planner_fixes_its_first_draft() {
    let env = TestEnv::new();
    planner_plan(&env);
    let out = output(baton(&env).args(["plan", "split the greeting", "-o", "greet.toml"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("wrote greet.toml"), "{stdout}");
    assert!(
        stdout.contains("phase 1:\n  hello [sh] (1 gate)\nphase 2:\n  bye [sh] needs hello"),
        "{stdout}"
    );
    assert!(stdout.contains("next: `baton run greet.toml`"), "{stdout}");
    let written = std::fs::read_to_string(env.repo.join("greet.toml")).unwrap();
    assert!(written.contains("id = \"bye\""), "{written}");
    // The first draft's errors went back to the planner.
    let seen = std::fs::read_to_string(env.scratch("planner-seen.txt")).unwrap();
    assert!(seen.contains("attempt 2"), "{seen}");
    assert!(
        seen.contains("nowhere"),
        "the check's error is the feedback: {seen}"
    );
    assert!(seen.contains("prompt has goal: True"), "{seen}");
    // Nothing the planner did in its checkout reached the user's branch or tree.
    assert!(!env.repo.join("scratch-change.txt").exists());
    assert_eq!(env.git(&["status", "--porcelain"]).trim(), "?? greet.toml");
    // And the plan it wrote runs.
    let r = run_json(&env, &["greet.toml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn plan_run_yes_runs_the_plan_it_wrote() {
    let env = TestEnv::new();
    planner_plan(&env);
    let out = output(baton(&env).args([
        "plan",
        "split the greeting",
        "-o",
        "greet.toml",
        "--run",
        "--yes",
    ]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report = latest_run_opt(&env).unwrap();
    assert_eq!(report["plan"], "greet.toml");
    assert_eq!(task(&report, "bye")["status"], "succeeded");
    let integration = report["integration_branch"].as_str().unwrap();
    assert_eq!(show(&env, integration, "bye.txt").as_deref(), Some("bye\n"));

    // Without a terminal and without --yes it asks nobody and runs nothing.
    let out = output(baton(&env).args(["plan", "split the greeting", "-o", "again.toml", "--run"]));
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --yes"));
    assert_eq!(
        latest_run_opt(&env).unwrap()["plan"]
            .as_str()
            .map(|p| p.ends_with("-planner.toml")),
        Some(true)
    );
}

#[test]
fn plan_refuses_to_overwrite_and_says_when_the_planner_never_gets_it_right() {
    let env = TestEnv::new();
    planner_plan(&env);
    let out = output(baton(&env).args(["plan", "anything"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("baton.toml exists; baton plan never overwrites"));
    assert!(latest_run_opt(&env).is_none(), "nothing was started");

    let out = output(baton(&env).args(["plan", "x", "-o", "p.toml", "--agent", "nobody"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no agent profile \"nobody\""));

    // With no retry the bad first draft is the end.
    let out = output(baton(&env).args(["plan", "x", "-o", "p.toml", "--retries", "0"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("did not write a valid plan") && stderr.contains("last draft is"),
        "{stderr}"
    );
    assert!(!env.repo.join("p.toml").exists());
}

#[test]
fn the_planner_example_plans_and_runs() {
    let env = TestEnv::new();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/plan.sh");
    let out = output(
        env.command("bash")
            .arg(&script)
            .env("BATON", baton_bin())
            .env("TMPDIR", env.root()),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("planner: Two tasks") && stdout.contains("wrote greet.toml"),
        "{stdout}"
    );
    assert!(
        stderr.contains("run ") && stderr.contains("succeeded in"),
        "{stderr}"
    );
}
