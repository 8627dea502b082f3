//! Running plans end to end: worktrees, commits, gates, retries with
//! feedback, merges and conflicts, reports.

use crate::common::*;
use baton_testutils::TestEnv;

#[test]
fn parallel_tasks_merge_and_the_user_tree_is_untouched() {
    let env = TestEnv::new();
    env.git(&["checkout", "-q", "-b", "feature"]);
    env.write("dirty.txt", "uncommitted user work\n");
    write_plan(
        &env,
        r#"
[[task]]
id = "one"
prompt = "write one.txt 1; say made one"

[[task]]
id = "two"
prompt = "write two.txt 2; commit agent commits itself; say made two"
"#,
    );
    let before_status = env.git(&["status", "--porcelain"]);
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rep = &r.report;
    assert_eq!(rep["status"], "succeeded");
    let integ = rep["integration_branch"].as_str().unwrap();
    assert!(
        integ.starts_with("baton/") && integ.ends_with("/integration"),
        "{integ}"
    );
    for (id, file, msg) in [
        ("one", "one.txt", "made one"),
        ("two", "two.txt", "made two"),
    ] {
        let t = task(rep, id);
        assert_eq!(t["status"], "succeeded");
        assert_eq!(t["merged"], true);
        assert_eq!(t["attempts"], 1);
        assert_eq!(t["result"], msg);
        assert_eq!(t["reason"], serde_json::Value::Null);
        assert_eq!(t["usage"]["cost_usd"], serde_json::Value::Null);
        let branch = t["branch"].as_str().unwrap();
        assert_eq!(
            branch,
            format!("baton/{}/task/{id}", rep["run"].as_str().unwrap())
        );
        assert!(show(&env, branch, file).is_some(), "{file} on {branch}");
        assert!(
            show(&env, integ, file).is_some(),
            "{file} merged into {integ}"
        );
    }
    // The user's branch, work tree and status are as they were.
    assert_eq!(env.git(&["rev-parse", "--abbrev-ref", "HEAD"]), "feature");
    assert_eq!(env.git(&["status", "--porcelain"]), before_status);
    assert!(!env.repo.join("one.txt").exists());
    assert_eq!(
        std::fs::read_to_string(env.repo.join("dirty.txt")).unwrap(),
        "uncommitted user work\n"
    );
    // Worktrees of merged tasks are cleaned up, their branches stay.
    assert_eq!(
        env.git(&["worktree", "list", "--porcelain"])
            .matches("worktree ")
            .count(),
        1
    );
}

#[test]
fn the_agent_gets_its_worktree_branch_and_environment() {
    let env = TestEnv::new();
    let d = env.scratch("seen");
    std::fs::create_dir_all(&d).unwrap();
    write_plan(
        &env,
        &format!(
            r#"
[agent.fake.env]
EXTRA = "from-profile"

[[task]]
id = "t"
prompt = "env BATON_RUN {d}/run; env BATON_TASK {d}/task; env BATON_ATTEMPT {d}/attempt; env EXTRA {d}/extra; prompt {d}/prompt; pid {d}/pid; env PWD {d}/pwd"
"#,
            d = d.display()
        ),
    );
    let r = run_json(&env, &["--keep-worktrees"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let read = |n: &str| {
        std::fs::read_to_string(d.join(n))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(read("run"), r.report["run"].as_str().unwrap());
    assert_eq!(read("task"), "t");
    assert_eq!(read("attempt"), "1");
    assert_eq!(read("extra"), "from-profile");
    assert!(read("prompt").starts_with("env BATON_RUN"));
    let wt = task(&r.report, "t")["worktree"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        wt.starts_with(&format!("{}/.git/baton/worktrees/", env.repo.display())),
        "{wt}"
    );
    assert_eq!(
        read("pwd"),
        wt,
        "PWD is the worktree: CLIs that read it must not work in the user's tree"
    );
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--abbrev-ref", "HEAD"])
        .current_dir(&wt)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&head.stdout).trim(),
        task(&r.report, "t")["branch"].as_str().unwrap()
    );
}

#[test]
fn failing_gate_is_fixed_on_retry_with_feedback() {
    let env = TestEnv::new();
    let fb = env.scratch("feedback.txt");
    write_plan(
        &env,
        &format!(
            r#"
[[task]]
id = "fix"
prompt = """on-attempt 1 write value.txt wrong
on-attempt 2 write value.txt right
on-attempt 2 feedback {fb}
say attempt done
"""
gates = ["grep -q right value.txt || (echo 'value.txt must say right' >&2; exit 1)"]
retries = 1
"#,
            fb = fb.display()
        ),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = task(&r.report, "fix");
    assert_eq!(t["status"], "succeeded");
    assert_eq!(t["attempts"], 2);
    let feedback = std::fs::read_to_string(&fb).unwrap();
    assert!(
        feedback.contains("gate `grep -q right value.txt"),
        "{feedback}"
    );
    assert!(feedback.contains("value.txt must say right"), "{feedback}");
    assert_eq!(
        show(
            &env,
            r.report["integration_branch"].as_str().unwrap(),
            "value.txt"
        )
        .as_deref(),
        Some("right\n")
    );
}

#[test]
fn feedback_reaches_the_template_and_retries_run_out() {
    let env = TestEnv::new();
    let fb = env.scratch("prompt.txt");
    write_plan(
        &env,
        &format!(
            r#"
[[task]]
id = "never"
prompt = """prompt {p}
err broke on attempt
exit 5

previous: {{{{ feedback }}}}"""
retries = 2
"#,
            p = fb.display()
        ),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1);
    let t = task(&r.report, "never");
    assert_eq!(t["status"], "failed");
    assert_eq!(t["attempts"], 3);
    assert_eq!(t["reason"], "agent exited with status 5 (after 3 attempts)");
    let prompt = std::fs::read_to_string(&fb).unwrap();
    assert!(
        prompt.contains("previous: agent exited with status 5"),
        "{prompt}"
    );
    assert!(
        prompt.contains("broke on attempt"),
        "stderr tail is in the feedback: {prompt}"
    );
    assert!(
        !prompt.contains("--- feedback"),
        "feedback is not appended when the template uses it: {prompt}"
    );
}

#[test]
fn failed_attempt_work_is_committed() {
    let env = TestEnv::new();
    write_plan(
        &env,
        "[[task]]\nid = \"crash\"\nprompt = \"write partial.txt half done; exit 1\"\n",
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1);
    let t = task(&r.report, "crash");
    assert_eq!(t["status"], "failed");
    assert_eq!(t["merged"], false);
    assert_eq!(
        show(&env, t["branch"].as_str().unwrap(), "partial.txt").as_deref(),
        Some("half done\n")
    );
    assert_eq!(
        show(&env, t["commit"].as_str().unwrap(), "partial.txt").as_deref(),
        Some("half done\n")
    );
}

#[test]
fn parallel_edits_of_the_same_lines_conflict_and_nothing_is_lost() {
    let env = TestEnv::new();
    env.write("shared.txt", "original\n");
    env.commit_all("shared file");
    write_plan(
        &env,
        r#"
[run]
max_parallel = 2

[[task]]
id = "left"
prompt = "write shared.txt left version"
on_failure = "continue"

[[task]]
id = "right"
prompt = "write shared.txt right version"
on_failure = "continue"
"#,
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let statuses: Vec<&str> = ["left", "right"]
        .iter()
        .map(|id| task(&r.report, id)["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses.contains(&"succeeded") && statuses.contains(&"conflicted"),
        "{statuses:?}"
    );
    let (won, lost) = if statuses[0] == "succeeded" {
        ("left", "right")
    } else {
        ("right", "left")
    };
    let integ = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(
        show(&env, integ, "shared.txt").unwrap(),
        format!("{won} version\n")
    );
    let loser = task(&r.report, lost);
    assert_eq!(loser["merged"], false);
    assert!(
        loser["reason"]
            .as_str()
            .unwrap()
            .contains("merge conflict with the integration branch in shared.txt"),
        "{loser}"
    );
    // The conflicted work is kept on its branch.
    assert_eq!(
        show(&env, loser["branch"].as_str().unwrap(), "shared.txt").unwrap(),
        format!("{lost} version\n")
    );
    // The integration branch holds exactly one merge.
    let merges = env.git(&["rev-list", "--merges", "--count", integ]);
    assert_eq!(merges, "1");
}

#[test]
fn fail_if_fails_the_task_on_its_final_message() {
    let env = TestEnv::new();
    write_plan(
        &env,
        "[[task]]\nid = \"review\"\nprompt = \"say found a CRITICAL bug in auth\"\nmerge = false\nfail_if = \"CRITICAL\"\nretries = 3\n",
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1);
    let t = task(&r.report, "review");
    assert_eq!(t["status"], "failed");
    assert_eq!(t["attempts"], 1, "a finding is not retried");
    assert_eq!(t["result"], "found a CRITICAL bug in auth");
    assert!(
        t["reason"]
            .as_str()
            .unwrap()
            .contains("fail_if /CRITICAL/ matched"),
        "{t}"
    );
}

#[test]
fn merge_false_reports_a_result_and_merges_nothing() {
    let env = TestEnv::new();
    write_plan(&env, "[[task]]\nid = \"report\"\nprompt = \"write notes.txt scratch; say all good\"\nmerge = false\n");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = task(&r.report, "report");
    assert_eq!(t["status"], "succeeded");
    assert_eq!(t["merged"], false);
    assert_eq!(t["result"], "all good");
    assert!(show(
        &env,
        r.report["integration_branch"].as_str().unwrap(),
        "notes.txt"
    )
    .is_none());
    assert_eq!(r.report["integration_commit"], r.report["base_commit"]);
}

#[test]
fn timeout_kills_the_attempt_and_fails_the_task() {
    let env = TestEnv::new();
    write_plan(
        &env,
        "[[task]]\nid = \"slow\"\nprompt = \"write started.txt yes; hang\"\ntimeout = \"1s\"\n",
    );
    let started = std::time::Instant::now();
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1);
    assert!(started.elapsed().as_secs() < 15);
    let t = task(&r.report, "slow");
    assert_eq!(t["status"], "failed");
    assert_eq!(t["reason"], "attempt 1 timed out after 1.0s");
    assert_eq!(
        show(&env, t["branch"].as_str().unwrap(), "started.txt").as_deref(),
        Some("yes\n")
    );
}

#[test]
fn missing_agent_binary_is_a_failed_attempt_with_a_reason() {
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        "[agent.ghost]\nadapter = \"exec\"\ncommand = [\"/nonexistent/agent-cli\"]\n\n[[task]]\nid = \"t\"\nagent = \"ghost\"\nprompt = \"x\"\nretries = 2\n",
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1);
    let t = task(&r.report, "t");
    assert_eq!(t["status"], "failed");
    assert!(
        t["reason"]
            .as_str()
            .unwrap()
            .contains("\"/nonexistent/agent-cli\": not found"),
        "{t}"
    );
}

#[test]
fn context_files_and_instructions_are_given_with_the_prompt() {
    let env = TestEnv::new();
    env.write("docs/contract.md", "The endpoint is /search.\n");
    env.write("docs/conventions.md", "Always write tests.\n");
    env.commit_all("docs");
    let p = env.scratch("prompt.txt");
    env.write(
        "baton.toml",
        &format!(
            "[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\", \"printf '%s' \\\"$BATON_PROMPT\\\" > {p}\"]\ninstructions = \"docs/conventions.md\"\n\n[[task]]\nid = \"t\"\nagent = \"sh\"\nprompt = \"Build it.\"\ncontext = [\"docs/contract.md\"]\n",
            p = p.display()
        ),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let prompt = std::fs::read_to_string(&p).unwrap();
    insta::assert_snapshot!("prompt_with_context", prompt);
}

#[test]
fn large_output_goes_to_the_log_not_the_report() {
    let env = TestEnv::new();
    write_plan(
        &env,
        "[[task]]\nid = \"loud\"\nprompt = \"spam 20000000; say the end\"\nmerge = false\n",
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let result = task(&r.report, "loud")["result"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(result.ends_with("the end"));
    assert!(
        result.len() <= 256 * 1024,
        "the final message is bounded: {}",
        result.len()
    );
    let out = output(baton(&env).args(["logs", "loud"]));
    assert!(out.status.success());
    assert!(
        out.stdout.len() > 20_000_000,
        "the whole output is in the log: {}",
        out.stdout.len()
    );
}

#[test]
fn report_snapshot() {
    let env = TestEnv::new();
    write_plan(
        &env,
        r#"
[[task]]
id = "a"
prompt = "write a.txt a; say done a"

[[task]]
id = "b"
needs = ["a"]
prompt = "exit 2"

[[task]]
id = "c"
needs = ["b"]
prompt = "say never"
"#,
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1);
    let run = r.report["run"].as_str().unwrap().to_string();
    let mut rep = r.report.clone();
    for key in [
        "base_commit",
        "integration_commit",
        "started_at",
        "finished_at",
        "duration_ms",
    ] {
        rep[key] = serde_json::Value::from(format!("[{key}]"));
    }
    for t in rep["tasks"].as_array_mut().unwrap() {
        for key in ["commit", "duration_ms", "worktree"] {
            if !t[key].is_null() {
                t[key] = serde_json::Value::from(format!("[{key}]"));
            }
        }
    }
    let text = redact(
        &env,
        &serde_json::to_string_pretty(&rep).unwrap(),
        Some(&run),
    );
    insta::assert_snapshot!("report_json", text);
    insta::assert_snapshot!(
        "run_summary",
        redact(
            &env,
            &r.stderr
                .lines()
                .skip_while(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("\n"),
            Some(&run)
        )
    );
}

#[test]
fn work_is_committed_despite_signing_hooks_and_a_stale_lock() {
    let env = TestEnv::new();
    // Signing that cannot work headless, and a hook that always refuses.
    env.git(&["config", "commit.gpgsign", "true"]);
    env.git(&["config", "gpg.program", "false"]);
    std::fs::write(
        env.repo.join(".git/hooks/pre-commit"),
        "#!/bin/sh\necho no commits today >&2\nexit 1\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["+x", ".git/hooks/pre-commit"])
        .current_dir(&env.repo)
        .status()
        .unwrap();
    env.write(
        "baton.toml",
        "[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\n\n[[task]]\nid = \"t\"\nagent = \"sh\"\nprompt = \"echo kept > kept.txt; touch \\\"$(git rev-parse --git-dir)/index.lock\\\"\"\n",
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = task(&r.report, "t");
    assert_eq!(t["merged"], true);
    assert_eq!(
        show(
            &env,
            r.report["integration_branch"].as_str().unwrap(),
            "kept.txt"
        )
        .as_deref(),
        Some("kept\n")
    );
}

#[test]
fn work_that_cannot_be_committed_fails_the_task_and_keeps_the_worktree() {
    let env = TestEnv::new();
    // An index that cannot be written: nothing can be committed.
    env.write(
        "baton.toml",
        "[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\n\n[[task]]\nid = \"t\"\nagent = \"sh\"\nprompt = \"echo precious > precious.txt; d=$(git rev-parse --git-dir); rm -f $d/index; mkdir $d/index\"\n",
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let t = task(&r.report, "t");
    assert_eq!(t["status"], "failed");
    assert!(
        t["reason"]
            .as_str()
            .unwrap()
            .starts_with("cannot commit the attempt's work"),
        "{t}"
    );
    let wt = t["worktree"].as_str().expect("the worktree is kept");
    assert_eq!(
        std::fs::read_to_string(std::path::Path::new(wt).join("precious.txt")).unwrap(),
        "precious\n"
    );
}

#[test]
fn a_done_tasks_worktree_becomes_the_next_tasks_desk_with_nothing_left_over() {
    let env = TestEnv::new();
    env.write(".gitignore", "build/\n");
    env.commit_all("ignore build");
    env.write(
        "baton.toml",
        &bash_plan(
            r#"
[run]
max_parallel = 1

[[task]]
id = "a"
prompt = "echo a > a.txt; mkdir -p build; echo junk > build/out.o; echo $PWD > here.txt"

[[task]]
id = "b"
needs = ["a"]
prompt = "echo $PWD > b-here.txt"
gates = ["test -f a.txt", "test ! -e build/out.o"]
"#,
        ),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let integration = r.report["integration_branch"].as_str().unwrap();
    let a_dir = show(&env, integration, "here.txt").unwrap();
    let b_dir = show(&env, integration, "b-here.txt").unwrap();
    assert!(a_dir.trim().ends_with("/a"), "{a_dir}");
    assert!(
        b_dir.trim().ends_with("/b"),
        "each task works at its own path: {b_dir}"
    );
    // Every worktree is gone at the end, git's metadata with it.
    let list = env.git(&["worktree", "list", "--porcelain"]);
    assert_eq!(list.matches("worktree ").count(), 1, "{list}");
    assert!(!std::path::Path::new(a_dir.trim()).exists());
    assert!(!std::path::Path::new(b_dir.trim()).exists());
}

#[test]
fn declared_files_keep_overlapping_tasks_apart_and_say_what_was_changed_outside() {
    let env = TestEnv::new();
    let log = env.scratch("order.log");
    write_plan(
        &env,
        &format!(
            r#"
[run]
max_parallel = 3

[[task]]
id = "api"
files = ["src/api/**"]
prompt = "append {log} api-start; sleep 0.3; write src/api/a.rs a; write notes.txt stray; append {log} api-end"

[[task]]
id = "handler"
files = ["src/api/handler.rs"]
prompt = "append {log} handler-start; write src/api/handler.rs h; append {log} handler-end"
"#,
            log = log.display()
        ),
    );
    let check = output(baton(&env).arg("check"));
    let said = String::from_utf8_lossy(&check.stderr);
    assert!(
        said.contains("tasks \"api\" and \"handler\" declare overlapping files; they will not run at the same time"),
        "{said}"
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let order = std::fs::read_to_string(&log).unwrap();
    assert_eq!(order, "api-start\napi-end\nhandler-start\nhandler-end\n");
    let warnings = task(&r.report, "api")["warnings"].to_string();
    assert!(
        warnings.contains("changed files outside its declared files (src/api/**): notes.txt"),
        "{warnings}"
    );
    assert_eq!(
        task(&r.report, "handler")["warnings"],
        serde_json::json!([])
    );
}

#[test]
fn a_conflict_is_seen_coming_while_the_task_still_runs() {
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
prompt = "write shared.txt from slow; commit early; wait-file {go}"

[[task]]
id = "quick"
prompt = "sleep 0.2; write shared.txt from quick"
"#,
            go = go.display()
        ),
    );
    let child = spawn_baton(&env, &["run", "--json"]);
    wait_for("quick to merge and the conflict to be seen", 20, || {
        latest_run_opt(&env).is_some_and(|r| {
            task(&r, "quick")["merged"] == true
                && task(&r, "slow")["conflict_ahead"] == serde_json::json!(["shared.txt"])
        })
    });
    let status = String::from_utf8_lossy(&output(baton(&env).arg("status")).stdout).into_owned();
    assert!(status.contains("conflict ahead in shared.txt"), "{status}");
    std::fs::write(&go, "").unwrap();
    let r = parse_run(child.wait_with_output().unwrap());
    assert_eq!(task(&r.report, "slow")["status"], "conflicted");
    assert!(
        r.stderr
            .contains("conflicts with the integration branch in [\"shared.txt\"]"),
        "{}",
        r.stderr
    );
}
