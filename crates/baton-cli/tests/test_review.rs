//! Review comments on a task's lines: kept as drafts, sent as one
//! structured review (a new attempt for a task waiting for approval, no
//! retry used), and after the agent's next commit each says whether its
//! lines changed. With a script agent and with the real Claude Code.

use crate::common::*;
use baton_testutils::TestEnv;
use serde_json::Value;

fn review(env: &TestEnv, args: &[&str]) -> std::process::Output {
    output(baton(env).arg("review").args(args))
}

fn marks(env: &TestEnv, task: &str) -> Vec<(String, String)> {
    let out = review(env, &[task, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    list.iter()
        .map(|c| {
            (
                format!("{}:{}", c["path"].as_str().unwrap(), c["line"]),
                c["mark"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_review_goes_to_the_agent_as_one_message_and_says_which_lines_changed() {
    let env = TestEnv::new();
    let script = r#"if [ -n "$BATON_FEEDBACK" ]; then printf '%s' "$BATON_FEEDBACK" > review.txt; sed -i '2s/.*/two fixed/' notes.txt; else printf 'one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\n' > notes.txt; fi"#;
    env.write(
        "baton.toml",
        &bash_plan(&format!(
            "\n[[task]]\nid = \"w\"\napprove = true\nprompt = '''{script}'''\n"
        )),
    );
    env.commit_all("plan");
    let run = spawn_baton(&env, &["run", "--json"]);
    wait_for_task(&env, "w", "awaiting_approval");
    // What is wrong is said, and nothing is kept.
    for (args, said) in [
        (vec!["w", "--comment", "notes.txt", "x"], "not PATH:LINE"),
        (vec!["w", "--comment", "notes.txt:40", "x"], "has 9 lines"),
        (
            vec!["w", "--comment", "nope.txt:1", "x"],
            "has no file nope.txt",
        ),
        (vec!["w", "--submit"], "nothing to send"),
        (vec!["ghost", "--comment", "notes.txt:1", "x"], "no task"),
    ] {
        let out = review(&env, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(said), "{args:?}: {err}");
    }
    assert!(marks(&env, "w").is_empty());
    let out = review(
        &env,
        &[
            "w",
            "--comment",
            "notes.txt:2",
            "fix two",
            "--comment",
            "notes.txt:8",
            "eight is fine?",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        marks(&env, "w"),
        [
            ("notes.txt:2".into(), "draft".into()),
            ("notes.txt:8".into(), "draft".into())
        ]
    );
    let out = review(&env, &["w", "--submit", "--note", "nearly there"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the second attempt", 30, || {
        store_rows(&env, "SELECT attempts FROM tasks WHERE id = 'w'").concat() == "2"
    });
    wait_for_task(&env, "w", "awaiting_approval");
    assert_eq!(
        marks(&env, "w"),
        [
            ("notes.txt:2".into(), "changed".into()),
            ("notes.txt:8".into(), "unchanged".into())
        ]
    );
    let out = output(baton(&env).args(["approve", "w"]));
    assert!(out.status.success());
    let r = parse_run(run.wait_with_output().unwrap());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = task(&r.report, "w");
    let got = show(&env, t["branch"].as_str().unwrap(), "review.txt").unwrap();
    assert!(
        got.starts_with("A person reviewed your work and left 2 comments."),
        "{got}"
    );
    assert!(
        got.contains("1. notes.txt line 2:\n```\n     1 | one\n>    2 | two\n"),
        "{got}"
    );
    assert!(
        got.contains("fix two")
            && got.contains("2. notes.txt line 8:")
            && got.contains("On the whole: nearly there"),
        "{got}"
    );
    // A review is not a failure: no retry was used.
    assert_eq!(
        store_rows(&env, "SELECT failures FROM tasks WHERE id = 'w'"),
        ["0"]
    );
}

#[test]
fn claude_code_gets_the_review_in_its_session_and_the_comment_shows_its_lines_changed() {
    use crate::test_real_agents::{bins, profile_with};
    use baton_testutils::model_server::{ModelServer, Scripts, Step};
    let Some(bins) = bins(&["claude"]) else {
        return;
    };
    let server = ModelServer::start(Scripts::new().script(
        "notes",
        vec![
            Step::write("notes.txt", "one\ntwo\nthree\n"),
            Step::say("wrote the notes"),
            Step::write("notes.txt", "one\ntwo, reviewed\nthree\n"),
            Step::say("addressed the review"),
        ],
    ));
    let env = TestEnv::new();
    let plan = format!(
        "{}[[task]]\nid = \"t\"\nagent = \"claude\"\napprove = true\nprompt = \"Write notes. [[script:notes]]\"\ntimeout = \"4m\"\n",
        profile_with(&env, "claude", &bins[0], &server, &[], "")
    );
    env.write("baton.toml", &plan);
    let run = spawn_baton(&env, &["run", "--json"]);
    wait_for_task(&env, "t", "awaiting_approval");
    let out = review(
        &env,
        &[
            "t",
            "--comment",
            "notes.txt:2",
            "say it was reviewed",
            "--submit",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the review's attempt", 120, || {
        store_rows(&env, "SELECT attempts FROM tasks WHERE id = 't'").concat() == "2"
            && task_status(&env, "t") == "awaiting_approval"
    });
    assert_eq!(marks(&env, "t"), [("notes.txt:2".into(), "changed".into())]);
    let reached = server.requests().iter().any(|r| {
        let body = r.body.to_string();
        body.contains("1. notes.txt line 2:") && body.contains("say it was reviewed")
    });
    assert!(reached, "the review reached the model as one message");
    let out = output(baton(&env).args(["approve", "t"]));
    assert!(out.status.success());
    let r = parse_run(run.wait_with_output().unwrap());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(task(&r.report, "t")["result"], "addressed the review");
}
