//! The whole loop from a tracker to a merge: `baton serve` takes a labelled
//! issue from the GitHub stand-in, gives it a run of its own (the served
//! plan lands as pull requests), merges its task, opens its pull request
//! with `Fixes #N`, and follows it: a red check and a review comment each
//! get a fix attempt by the real Claude Code (against the scripted model
//! server), the approved pull request merges, and the issue hears each
//! step and closes.

use crate::common::*;
use crate::test_follow::{remote_file, said, serve_with, setup_with, TOKEN};
use crate::test_real_agents::{bins, profile_with};
use baton_testutils::fake_agent;
use baton_testutils::model_server::{ModelServer, Scripts, Step};

#[test]
fn a_labelled_issue_becomes_a_pull_request_that_claude_code_fixes_until_it_merges() {
    let Some(bins) = bins(&["claude"]) else {
        return;
    };
    // The check's log names the script the fixer's model plays: the log
    // reaches the fixer's prompt, as a real log would.
    let (env, gh) = setup_with(
        "grep -q fixed app.txt || { echo 'FAIL: app.txt says it is broken [[script:fix-ci]]'; exit 1; }",
    );
    let server = ModelServer::start(
        Scripts::new()
            .script(
                "fix-ci",
                vec![
                    Step::run("printf 'fixed\\n' > app.txt"),
                    Step::say("app.txt says fixed now"),
                ],
            )
            .script(
                "fix-review",
                vec![
                    Step::run("printf 'fixed: it said broken\\n' > app.txt"),
                    Step::say("app.txt says why"),
                ],
            ),
    );
    let fake = fake_agent().display().to_string();
    let seen = env.scratch("task-token.txt").display().to_string();
    let task = format!("env BATON_TEST_GITHUB_TOKEN {seen}; write app.txt broken");
    let claude = profile_with(&env, "claude", &bins[0], &server, &[], "");
    let plan = format!(
        r#"{claude}[agent.fake]
adapter = "exec"
command = [{fake:?}]
env = {{ FAKE_AGENT_SCRIPT = {task:?} }}

[agent.notes]
adapter = "exec"
command = [{fake:?}]
env = {{ FAKE_AGENT_SCRIPT = "write notes.txt after app.txt" }}

[defaults]
agent = "fake"

[[route]]
tags = ["docs"]
agent = "notes"

[[source]]
kind = "github"
repo = "acme/app"
label = "baton"
api_url = {url:?}
token_env = "BATON_TEST_GITHUB_TOKEN"
poll = "5s"

[land]
mode = "pr"
follow = true
merge_when = "approved"
repo = "acme/app"
api_url = {url:?}
token_env = "BATON_TEST_GITHUB_TOKEN"
poll = "1s"
fixer = "claude"
"#,
        url = gh.url(),
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    env.git(&["push", "-q", "origin", "main"]);
    let issue = gh.open_issue("Make app.txt right", "It should say so.", &["baton"]);
    // Taken only once the first one's work has merged, and started from
    // the merge (its check passes with no fix: app.txt is right there).
    let notes = gh.open_issue("Write the notes", "Blocked by #1.", &["baton", "docs"]);
    let public = ["--public-url", "https://baton.example.com/"];
    let served = serve_with(&env, "serve.log", &public);
    let log = || std::fs::read_to_string(env.scratch("serve.log")).unwrap_or_default();
    let wait_for = |what: &str, secs: u64, cond: &mut dyn FnMut() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while !cond() {
            let late = std::time::Instant::now() > deadline;
            assert!(
                !late,
                "timed out after {secs}s waiting for {what}; serve's log:\n{}",
                log()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    wait_for("the pull request to open", 90, &mut || {
        !gh.pulls().is_empty()
    });
    let n = gh.pulls()[0].number;
    assert!(said(&gh, notes).is_empty(), "{:?}", said(&gh, notes));
    wait_for("the red check's fix to be pushed", 240, &mut || {
        said(&gh, n).iter().any(|s| s.contains("(fix-1-checks)"))
    });
    wait_for("a passing check", 60, &mut || {
        gh.check_runs().iter().any(|(_, _, ok)| *ok)
    });
    let thread = gh.review_comment(
        n,
        "ana",
        "app.txt",
        1,
        "Say in the file what it said before. [[script:fix-review]]",
    );
    gh.review(n, "ana", "CHANGES_REQUESTED", "");
    wait_for("the thread to be answered", 240, &mut || {
        !gh.replies(n).is_empty()
    });
    gh.review(n, "ana", "APPROVED", "Thanks.");
    wait_for("the issue to hear of the merge", 90, &mut || {
        said(&gh, issue).len() >= 3
    });
    assert_eq!(gh.issue(issue).0, "closed");
    wait_for("the notes' pull request", 60, &mut || gh.pulls().len() == 2);
    let n2 = gh.pulls()[1].number;
    wait_for("the notes' check", 60, &mut || gh.check_runs().len() == 4);
    gh.review(n2, "ana", "APPROVED", "");
    wait_for("the notes' issue to hear of the merge", 60, &mut || {
        said(&gh, notes).len() >= 3
    });
    drop(served);

    // A run of its own for each issue, not the service run: the first
    // issue's task, then the two fix attempts, by Claude Code; the notes'
    // task alone, started from the first pull request's merge.
    let runs = store_rows(
        &env,
        "SELECT kind || ' ' || base_commit FROM runs ORDER BY created_at",
    );
    let first = gh.pulls()[0]
        .merged
        .clone()
        .expect("the first pull request merged");
    assert_eq!(runs.len(), 2, "{runs:?}\n{}", log());
    assert!(runs.iter().all(|r| r.starts_with("plan ")), "{runs:?}");
    assert_eq!(runs[1], format!("plan {first}"), "{runs:?}");
    let tasks = store_rows(
        &env,
        "SELECT id || ' ' || agent || ' ' || status FROM tasks ORDER BY rowid",
    );
    assert_eq!(
        tasks,
        [
            "github-1-make-app-txt-right fake succeeded",
            "fix-1-checks claude succeeded",
            "fix-2-review claude succeeded",
            "github-2-write-the-notes notes succeeded"
        ],
        "{}",
        log()
    );
    let pulls = gh.pulls();
    assert!(pulls.iter().all(|p| p.merged.is_some()), "{pulls:?}");
    assert!(pulls[0].body.contains("Fixes #1"), "{}", pulls[0].body);
    assert!(pulls[1].body.contains("Fixes #2"), "{}", pulls[1].body);
    assert_eq!(gh.issue(notes).0, "closed");
    assert_eq!(
        remote_file(&env, "main", "app.txt"),
        "fixed: it said broken"
    );
    assert_eq!(remote_file(&env, "main", "notes.txt"), "after app.txt");
    // What the model was told: the failed check's log, then the review.
    let told = |marker: &str, text: &str| {
        server.requests().iter().any(|q| {
            let body = q.body.to_string();
            body.contains(marker) && body.contains(text)
        })
    };
    assert!(told(
        "[[script:fix-ci]]",
        &format!("checks of pull request #{n}")
    ));
    assert!(told("[[script:fix-review]]", "`app.txt:1`, @ana wrote"));

    // Every comment baton wrote, on the issue and on the pull request.
    let on_issue = said(&gh, issue);
    assert_eq!(on_issue.len(), 3, "{on_issue:#?}");
    assert!(
        on_issue[0].starts_with("baton took this on as task `github-1-make-app-txt-right` of run"),
        "{on_issue:#?}"
    );
    let run = &store_rows(&env, "SELECT id FROM runs ORDER BY created_at")[0];
    let link = format!(
        "Follow it at https://baton.example.com/?run={run}&task=github-1-make-app-txt-right"
    );
    assert!(on_issue[0].contains(&link), "{on_issue:#?}");
    assert!(
        on_issue[1].starts_with(&format!(
            "baton opened pull request #{n} with the work of run"
        )),
        "{on_issue:#?}"
    );
    assert!(
        on_issue[2].starts_with(&format!("Done: pull request #{n} is merged"))
            && on_issue[2].contains("2 fix attempts"),
        "{on_issue:#?}"
    );
    let on_pull = said(&gh, n);
    assert_eq!(on_pull.len(), 4, "{on_pull:#?}");
    assert!(
        on_pull[0].starts_with(
            "baton is fixing its failed checks: fix 1 of 3, task `fix-1-checks` of run"
        ),
        "{on_pull:#?}"
    );
    assert!(on_pull[0].contains("by `claude`"), "{on_pull:#?}");
    assert!(on_pull[1].starts_with("baton pushed "), "{on_pull:#?}");
    assert!(
        on_pull[2].starts_with("baton is fixing the review comments: fix 2 of 3"),
        "{on_pull:#?}"
    );
    assert!(on_pull[3].contains("(fix-2-review)"), "{on_pull:#?}");
    let replies = gh.replies(n);
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0].0, thread);
    assert!(replies[0].1.starts_with("Addressed in "), "{replies:?}");
    assert!(on_issue
        .iter()
        .chain(&on_pull)
        .all(|s| s.ends_with("<!-- baton -->")));

    // The token stayed baton's.
    let token_seen = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(token_seen.trim(), "", "the task's agent saw the token");
    for q in server.requests() {
        assert!(
            !q.body.to_string().contains(TOKEN),
            "the model was sent the token"
        );
    }
    assert_nowhere_in_state(&env, TOKEN);
}
