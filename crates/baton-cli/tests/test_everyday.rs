//! Everyday commands: `baton runs`, `baton diff`, `baton retry`,
//! `baton completions` and `baton man`.

use crate::common::*;
use baton_testutils::TestEnv;

#[test]
fn runs_lists_every_run_newest_first_with_its_tasks_by_state() {
    let env = TestEnv::new();
    write_plan(
        &env,
        "[[task]]\nid = \"one\"\nprompt = \"write one.txt 1\"\n",
    );
    assert_eq!(run_json(&env, &[]).code, 0);
    write_plan(
        &env,
        "[[task]]\nid = \"good\"\nprompt = \"write good.txt 1\"\n\n[[task]]\nid = \"bad\"\nprompt = \"exit 3\"\non_failure = \"continue\"\n\n[[task]]\nid = \"after\"\nneeds = [\"bad\"]\nprompt = \"say x\"\n",
    );
    assert_eq!(run_json(&env, &["--keep-worktrees"]).code, 1);
    let redact = |text: &str| {
        let id = regex::Regex::new(r"\d{8}-\d{6}-[0-9a-f]{4}").unwrap();
        let age = regex::Regex::new(r"\d+(\.\d+)?(ms|s|m\d*s?) ago").unwrap();
        let size = regex::Regex::new(r"worktrees \d+\.\d MiB").unwrap();
        let time = regex::Regex::new(r#""\d{4}-\d\d-\d\dT[^"]+""#).unwrap();
        let bytes = regex::Regex::new(r#""worktrees_bytes": [1-9]\d*"#).unwrap();
        let text = id.replace_all(text, "<run>");
        let text = age.replace_all(&text, "<age> ago");
        let text = size.replace_all(&text, "worktrees <size> MiB");
        let text = time.replace_all(&text, "\"<time>\"");
        bytes
            .replace_all(&text, "\"worktrees_bytes\": <bytes>")
            .into_owned()
    };
    let out = output(baton(&env).arg("runs"));
    assert!(out.status.success());
    insta::assert_snapshot!("runs", redact(&String::from_utf8_lossy(&out.stdout)));
    let out = output(baton(&env).args(["runs", "--json", "-n", "1"]));
    insta::assert_snapshot!("runs_json", redact(&String::from_utf8_lossy(&out.stdout)));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "-n 1 lists one run");
}

#[test]
fn diff_shows_what_a_task_changed_like_git_diff() {
    let env = TestEnv::new();
    env.write("notes.txt", "one\n");
    env.commit_all("notes");
    write_plan(
        &env,
        "[[task]]\nid = \"edit\"\nprompt = \"write notes.txt two; write new.txt fresh\"\n\n[[task]]\nid = \"later\"\nneeds = [\"edit\"]\nprompt = \"say nothing to do\"\n",
    );
    assert_eq!(run_json(&env, &[]).code, 0);
    let out = output(baton(&env).args(["diff", "edit"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let index = regex::Regex::new(r"index [0-9a-f]+\.\.[0-9a-f]+").unwrap();
    insta::assert_snapshot!("diff_edit", index.replace_all(&text, "index <a>..<b>"));
    let names = output(baton(&env).args(["diff", "edit", "--name-only"]));
    assert_eq!(
        String::from_utf8_lossy(&names.stdout),
        "new.txt\nnotes.txt\n"
    );
    // A task that changed nothing has an empty diff.
    let out = output(baton(&env).args(["diff", "later"]));
    assert!(out.status.success() && out.stdout.is_empty());
    let out = output(baton(&env).args(["diff", "nope"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no task \"nope\""));
}

#[test]
fn completions_and_the_man_page_come_from_the_same_definitions() {
    let env = TestEnv::new();
    let out = output(baton(&env).args(["completions", "bash"]));
    assert!(out.status.success());
    let bash = String::from_utf8_lossy(&out.stdout);
    assert!(bash.contains("_baton()"), "{bash}");
    for sub in ["init", "run", "resume", "diff", "land", "clean", "serve"] {
        assert!(bash.contains(&format!("baton,{sub})")), "{sub} completes");
    }
    assert!(
        !bash.contains("__watchdog") && !bash.contains("__sandbox-bridge"),
        "hidden subcommands are not offered"
    );
    let commands: Vec<&str> = bash
        .lines()
        .filter_map(|l| l.trim().strip_prefix("baton,")?.strip_suffix(')'))
        .collect();
    insta::assert_snapshot!("completions_bash_commands", commands.join("\n"));
    for shell in ["zsh", "fish"] {
        let out = output(baton(&env).args(["completions", shell]));
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
    let bad = output(baton(&env).args(["completions", "tcsh"]));
    assert_eq!(bad.status.code(), Some(2));
    let man = output(baton(&env).arg("man"));
    let roff = String::from_utf8_lossy(&man.stdout);
    assert!(
        roff.contains(".TH baton 1") && roff.contains("coding agents"),
        "{roff}"
    );
}

#[test]
fn retry_reopens_a_finished_run_runs_the_task_again_and_merges_it() {
    let env = TestEnv::new();
    let marker = env.scratch("tried-once");
    env.write(
        "baton.toml",
        &bash_plan(&format!(
            "[[task]]\nid = \"flaky\"\nprompt = \"test -e {m} || {{ touch {m}; exit 1; }}; echo ok > flaky.txt\"\n\n[[task]]\nid = \"after\"\nneeds = [\"flaky\"]\nprompt = \"echo after > after.txt\"\n",
            m = marker.display()
        )),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(task(&r.report, "after")["status"], "skipped");
    let none = output(baton(&env).args(["retry", "nope"]));
    assert_eq!(none.status.code(), Some(2));
    let out = output(baton(&env).args(["retry", "flaky", "--json"]));
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    let r = parse_run(out);
    let redact = |text: &str| {
        let id = regex::Regex::new(r"\d{8}-\d{6}-[0-9a-f]{4}").unwrap();
        let at = regex::Regex::new(r"\[ *[0-9.]+m?s\]|in [0-9.]+m?s|at [0-9a-f]{12}").unwrap();
        let text = id.replace_all(text, "<run>");
        at.replace_all(&text, "<t>").into_owned()
    };
    // The live lines interleave with the answer; the summary is fixed.
    assert!(said.contains("task \"flaky\" will run again"), "{said}");
    let summary = said.split("\n\n").last().unwrap_or_default();
    insta::assert_snapshot!("retry_summary", redact(summary));
    assert_eq!(r.code, 0, "{}", r.stderr);
    for id in ["flaky", "after"] {
        assert_eq!(task(&r.report, id)["merged"], true, "{id}: {:#}", r.report);
    }
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(
        show(&env, integration, "after.txt").as_deref(),
        Some("after\n")
    );
    let again = output(baton(&env).args(["retry", "flaky"]));
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("only a task that failed"));
}

fn ci_plan(env: &TestEnv) {
    env.write("src/lib.rs", "fn a() {}\n\nfn broken() {}\n");
    env.commit_all("a source file");
    env.write(
        "baton.toml",
        &bash_plan(
            "[run]\nmax_parallel = 1\n\n[[task]]\nid = \"good\"\non_failure = \"continue\"\nprompt = \"echo ok > ok.txt\"\n\n[[task]]\nid = \"bad\"\non_failure = \"continue\"\nprompt = \"echo broken > b.txt\"\ngates = [\"echo 'error: src/lib.rs:3:4: broken here'; exit 1\"]\n\n[[task]]\nid = \"after\"\nneeds = [\"bad\"]\nprompt = \"true\"\n",
        ),
    );
}

#[test]
fn on_github_a_run_annotates_failures_groups_its_progress_and_writes_a_summary() {
    let env = TestEnv::new();
    ci_plan(&env);
    let summary = env.scratch("summary.md");
    let out = output(
        baton(&env)
            .args(["run", "--format", "github"])
            .env("GITHUB_STEP_SUMMARY", &summary),
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("::group::baton run "), "{stdout}");
    assert!(stdout.contains("::endgroup::"), "{stdout}");
    let error = stdout
        .lines()
        .find(|l| l.starts_with("::error "))
        .unwrap_or_default();
    assert!(
        error.starts_with(
            "::error file=src/lib.rs,line=3,title=baton%3A task bad failed::gate `echo 'error"
        ),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("::error ").count(),
        2,
        "bad and the task it held back: {stdout}"
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("| `good` | ✅ succeeded | 1 |"), "{md}");
    assert!(md.contains("| `bad` | ❌ failed | 1 |"), "{md}");
    assert!(md.contains("| `after` | ❌ skipped |"), "{md}");
    // Without it (and not on GitHub), stdout has none of it.
    let plain = output(baton(&env).args(["run"]));
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("::"));
}

#[test]
fn a_junit_report_lists_every_task_as_a_test_case() {
    let env = TestEnv::new();
    ci_plan(&env);
    let xml = env.scratch("report.xml");
    let out = output(baton(&env).args(["run", "--junit"]).arg(&xml));
    assert_eq!(out.status.code(), Some(1));
    // Checked by a real XML parser, against the shape JUnit consumers read.
    let check = r#"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
suite = root.find("testsuite")
assert (suite.get("tests"), suite.get("failures"), suite.get("skipped"), suite.get("errors")) == ("3", "1", "1", "0"), suite.attrib
cases = {c.get("name"): c for c in suite.findall("testcase")}
assert sorted(cases) == ["after", "bad", "good"], sorted(cases)
assert cases["good"].find("failure") is None and cases["good"].find("skipped") is None
assert "src/lib.rs" in cases["bad"].find("failure").get("message") or "gate" in cases["bad"].find("failure").get("message")
assert cases["after"].find("skipped") is not None
for c in cases.values():
    float(c.get("time")); assert c.get("classname").startswith("baton.")
print("ok")
"#;
    let py = std::process::Command::new("python3")
        .arg("-c")
        .arg(check)
        .arg(&xml)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&py.stderr),
        std::fs::read_to_string(&xml).unwrap_or_default()
    );
}
