//! Work from a tracker: `baton serve` with a `[[source]]` takes the labelled
//! issues of a repository on the GitHub stand-in (which speaks GitHub's REST
//! shapes) as tasks, and reports back on them.

use crate::common::*;
use baton_testutils::github::GitHub;
use baton_testutils::{fake_agent, TestEnv};
use std::process::{Child, Stdio};

const TOKEN: &str = "ghp_baton-test-token-0123456789";

fn plan(env: &TestEnv, gh: &GitHub) -> String {
    let fake = fake_agent().display().to_string();
    let script = |name: &str| {
        let seen = env
            .scratch(&format!("{name}-prompt.txt"))
            .display()
            .to_string();
        let token = env
            .scratch(&format!("{name}-token.txt"))
            .display()
            .to_string();
        format!(
            "prompt {seen}; env BATON_TEST_GITHUB_TOKEN {token}; write {name}.txt done by {name}"
        )
    };
    format!(
        r#"[agent.fake]
adapter = "exec"
command = [{fake:?}]
env = {{ FAKE_AGENT_SCRIPT = {fake_script:?} }}

[agent.docs]
adapter = "exec"
command = [{fake:?}]
env = {{ FAKE_AGENT_SCRIPT = {docs_script:?} }}

[defaults]
agent = "fake"

[[route]]
tags = ["docs"]
agent = "docs"

[[source]]
kind = "github"
repo = "acme/app"
label = "baton"
api_url = {url:?}
token_env = "BATON_TEST_GITHUB_TOKEN"
poll = "5s"
"#,
        fake_script = script("fake"),
        docs_script = script("docs"),
        url = gh.url(),
    )
}

/// `baton serve` with the tracker's token in its environment; its stderr
/// goes to a file (for a failing test's message).
fn serve(env: &TestEnv, log: &str) -> Child {
    let log = std::fs::File::create(env.scratch(log)).unwrap();
    baton(env)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("BATON_TEST_GITHUB_TOKEN", TOKEN)
        .env("BATON_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn stop(mut child: Child) {
    // SAFETY: signalling a child we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
}

/// What baton said on issue `n`, in order.
fn said(gh: &GitHub, n: u64) -> Vec<String> {
    let comments = gh.comments(n).into_iter();
    let baton = comments.filter(|(who, _)| who == "baton-bot[bot]");
    baton.map(|(_, body)| body).collect()
}

#[test]
fn labelled_issues_become_routed_tasks_and_hear_how_they_ended_once() {
    let env = TestEnv::new();
    let gh = GitHub::start("acme/app", TOKEN);
    let docs = gh.open_issue(
        "Write the notes",
        "Put {{ tasks.x.result }} and {% if y %} in them, as written.",
        &["baton", "docs"],
    );
    gh.comment(docs, "maria", "Keep them short.");
    let other = gh.open_issue("Not for baton", "", &["cli"]);
    let pr = gh.open_pull_request("A labelled pull request", &["baton"]);
    env.write("baton.toml", &plan(&env, &gh));
    env.commit_all("plan");
    let server = serve(&env, "serve-1.log");
    let log = || std::fs::read_to_string(env.scratch("serve-1.log")).unwrap_or_default();
    wait_for("the issue's task to end and be reported", 60, || {
        said(&gh, docs).len() >= 2
    });
    let comments = said(&gh, docs);
    assert!(
        comments[0].starts_with("baton took this on as task `github-1-write-the-notes` of run"),
        "{comments:?}\n{}",
        log()
    );
    assert!(
        comments[0].contains("by agent profile `docs`"),
        "routed by its label: {comments:?}"
    );
    assert!(
        comments[1].contains("succeeded. Its work is merged into `baton/"),
        "{comments:?}"
    );
    // The agent got the issue's text as it is written, and its comments.
    let prompt = std::fs::read_to_string(env.scratch("docs-prompt.txt")).unwrap();
    assert!(
        prompt.starts_with("Write the notes (https://github.com/acme/app/issues/1)"),
        "{prompt}"
    );
    assert!(
        prompt.contains("Put {{ tasks.x.result }} and {% if y %} in them"),
        "{prompt}"
    );
    assert!(
        prompt.contains("maria wrote:\nKeep them short."),
        "{prompt}"
    );
    // The tracker's token is baton's: the agent's environment does not have it.
    let token = std::fs::read_to_string(env.scratch("docs-token.txt")).unwrap();
    assert_eq!(token.trim(), "", "the agent saw the token");
    // Neither an issue without the label nor a pull request is work.
    assert!(said(&gh, other).is_empty() && said(&gh, pr).is_empty());
    stop(server);
    // A restarted server takes nothing twice and says nothing again.
    let server = serve(&env, "serve-2.log");
    let fix = gh.open_issue("Fix the crash", "", &["baton"]);
    wait_for("the new issue to be reported", 60, || {
        said(&gh, fix).len() >= 2
    });
    stop(server);
    assert_eq!(said(&gh, docs).len(), 2, "{:?}", said(&gh, docs));
    let tasks = store_rows(&env, "SELECT count(*) FROM source_items");
    assert_eq!(tasks, ["2"]);
    assert!(said(&gh, fix)[0].contains("by agent profile `fake`"));
    // No token appears in anything baton wrote.
    assert_nowhere_in_state(&env, TOKEN);
    for log in ["serve-1.log", "serve-2.log"] {
        let text = std::fs::read_to_string(env.scratch(log)).unwrap();
        assert!(!text.contains(TOKEN), "the token is in {log}");
    }
}

#[test]
fn a_server_whose_source_has_no_token_says_so_and_does_not_start() {
    let env = TestEnv::new();
    let gh = GitHub::start("acme/app", TOKEN);
    env.write("baton.toml", &plan(&env, &gh));
    env.commit_all("plan");
    // git, but no `gh` to fall back on.
    let bin = path_with_git(&env.scratch("no-gh"));
    let out = baton(&env)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env_remove("BATON_TEST_GITHUB_TOKEN")
        .env("PATH", &bin)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("github:acme/app#baton needs a GitHub token in $BATON_TEST_GITHUB_TOKEN"),
        "{err}"
    );
    assert!(gh.calls().is_empty());
}

/// A tracker by command for a test: `list.sh` prints `items`, `report.sh`
/// runs `report` (a shell line; `{reports}` is the reports file), and the
/// plan takes work from it every 5 s.
struct Board {
    items: std::path::PathBuf,
    reports: std::path::PathBuf,
}

fn command_source(env: &TestEnv, name: &str, report: &str) -> Board {
    use std::os::unix::fs::PermissionsExt;
    let dir = env.scratch("tracker");
    std::fs::create_dir_all(&dir).unwrap();
    let board = Board {
        items: dir.join("items.jsonl"),
        reports: dir.join("reports.jsonl"),
    };
    let script = |file: &str, body: &str| {
        let path = dir.join(file);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    };
    let list = script("list.sh", &format!("cat {}", board.items.display()));
    let reports = board.reports.display().to_string();
    let report = script("report.sh", &report.replace("{reports}", &reports));
    let fake = fake_agent().display().to_string();
    env.write(
        "baton.toml",
        &format!(
            "[agent.fake]\nadapter = \"exec\"\ncommand = [{fake:?}]\n\n[defaults]\nagent = \"fake\"\n\n\
             [[source]]\nkind = \"command\"\nname = \"{name}\"\ncommand = [{list:?}]\nreport = [{report:?}]\npoll = \"5s\"\n"
        ),
    );
    env.commit_all("plan");
    board
}

/// Any tracker by command: `command` lists items as JSON lines, `report`
/// hears each report as JSON on its stdin; a listing with a bad line is
/// said and changes nothing.
#[test]
fn a_command_source_lists_work_and_hears_reports_and_a_bad_listing_changes_nothing() {
    let env = TestEnv::new();
    let board = command_source(&env, "linear", "cat >> {reports}");
    let (items, reports) = (&board.items, &board.reports);
    let line =
        r#"{"id": "ENG-1", "title": "write notes.txt from the tracker", "labels": ["docs"]}"#;
    std::fs::write(items, format!("{line}\n")).unwrap();
    let server = serve(&env, "serve.log");
    let heard = || -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(reports).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    wait_for("the item's task to start and end", 60, || {
        heard().len() >= 2
    });
    let got = heard();
    assert_eq!(got[0]["event"], "started");
    assert_eq!(got[0]["item"], "ENG-1");
    let task = got[0]["task"].as_str().unwrap().to_string();
    assert!(task.starts_with("linear-eng-1-write-notes"), "{task}");
    assert_eq!(
        (got[1]["event"].as_str(), got[1]["status"].as_str()),
        (Some("ended"), Some("succeeded"))
    );
    assert_eq!(got[1]["task"], task.as_str());
    assert!(got[1]["text"].as_str().unwrap().contains("succeeded"));
    // A listing with a bad line: said, and nothing in it is taken.
    let more = r#"{"id": "ENG-2", "title": "never taken"}"#;
    std::fs::write(items, format!("{line}\n{{\"title\": \"no id\"}}\n{more}\n")).unwrap();
    let log = || std::fs::read_to_string(env.scratch("serve.log")).unwrap_or_default();
    wait_for("the bad line to be said", 30, || {
        log().contains("printed line 2: missing field `id`")
    });
    stop(server);
    assert_eq!(heard().len(), 2, "{:?}", heard());
    assert_eq!(store_rows(&env, "SELECT count(*) FROM source_items"), ["1"]);
}

/// A person's comment on an issue whose task is running, and a change of
/// its labels, go to the task as messages; baton's own comments do not.
#[test]
fn a_comment_or_a_label_on_a_running_tasks_issue_reaches_the_task_as_a_message() {
    let env = TestEnv::new();
    let gh = GitHub::start("acme/app", TOKEN);
    let go = env.scratch("go");
    let fake = fake_agent().display().to_string();
    let mut plan = plan(&env, &gh);
    plan.push_str(&format!(
        "\n[agent.slow]\nadapter = \"exec\"\ncommand = [{fake:?}]\nenv = {{ FAKE_AGENT_SCRIPT = \"wait-file {}; write slow.txt done\" }}\n\n[[route]]\ntags = [\"slow\"]\nagent = \"slow\"\n",
        go.display()
    ));
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let n = gh.open_issue("Take your time", "", &["baton", "slow"]);
    let server = serve(&env, "serve.log");
    wait_for("the task to start", 60, || !said(&gh, n).is_empty());
    gh.set_labels(n, &["baton", "slow", "urgent"]);
    gh.comment(n, "maria", "Also update the changelog.");
    let messages = || {
        store_rows(
            &env,
            "SELECT to_task || ': ' || replace(text, char(10), ' / ') FROM messages",
        )
    };
    wait_for("the label and the comment to reach the task", 30, || {
        messages().len() >= 2
    });
    std::fs::write(&go, "").unwrap();
    wait_for("the task to end", 60, || said(&gh, n).len() >= 2);
    stop(server);
    let got = messages();
    assert_eq!(
        got.len(),
        2,
        "only the label and the person's comment: {got:?}"
    );
    assert_eq!(
        got[0],
        "github-1-take-your-time: The labels of #1 changed: added `urgent`."
    );
    assert!(
        got[1].starts_with(
            "github-1-take-your-time: maria commented on #1: / Also update the changelog."
        ),
        "{got:?}"
    );
}

/// GitHub's signature of `body` under `secret`, made as GitHub documents it
/// (by Python's hmac, not by baton's code).
pub(crate) fn github_signature(secret: &str, body: &str) -> String {
    let py = "import hmac,hashlib,sys; print('sha256=' + hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())";
    let out = std::process::Command::new("python3")
        .args(["-c", py, secret, body])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Delivers a webhook to the server at `url`; the status it answered.
fn deliver(url: &str, event: &str, signature: &str, body: &str) -> u16 {
    use std::io::{Read, Write};
    let host = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "POST /api/hooks/github HTTP/1.1\r\nHost: {host}\r\nUser-Agent: GitHub-Hookshot/abc123\r\n\
         X-GitHub-Event: {event}\r\nX-GitHub-Delivery: 0b989ba4-242f-11e5-81e1-c7b6966d2516\r\n\
         X-Hub-Signature-256: {signature}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A signed GitHub webhook makes baton look at once (polling is the
/// fallback); a delivery whose signature does not match is refused and
/// changes nothing; no baton token is needed, the signature is the access.
#[test]
fn a_signed_webhook_wakes_the_source_and_a_badly_signed_one_is_refused() {
    let env = TestEnv::new();
    let gh = GitHub::start("acme/app", TOKEN);
    let plan = plan(&env, &gh).replace(
        "poll = \"5s\"",
        "poll = \"1h\"\nwebhook_secret_env = \"BATON_TEST_HOOK_SECRET\"",
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let envs = [
        ("BATON_TEST_GITHUB_TOKEN", TOKEN),
        ("BATON_TEST_HOOK_SECRET", "It's a Secret to Everybody"),
    ];
    let (server, url) = serve_logged(&env, "serve.log", &envs);
    // The first look happened at start; the next poll is an hour away.
    wait_for("the first look", 30, || !gh.calls().is_empty());
    let n = gh.open_issue("Fix the crash", "", &["baton"]);
    let body = r#"{"action": "labeled", "issue": {"number": 1}, "label": {"name": "baton"}, "repository": {"full_name": "acme/app"}, "sender": {"login": "maria"}}"#;
    let forged = github_signature("another secret", body);
    assert_eq!(deliver(&url, "issues", &forged, body), 401);
    assert_eq!(deliver(&url, "issues", "", body), 401);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(
        said(&gh, n).is_empty(),
        "a refused delivery changed something"
    );
    let signed = github_signature("It's a Secret to Everybody", body);
    assert_eq!(deliver(&url, "ping", &signed, body), 200);
    assert_eq!(deliver(&url, "issues", &signed, body), 202);
    wait_for("the issue to be taken after the webhook", 20, || {
        !said(&gh, n).is_empty()
    });
    stop(server);
}

/// A tracker that fails when told a task started hears it at the next
/// round, once; the item is not taken twice.
#[test]
fn a_start_the_tracker_did_not_hear_is_told_again_and_once() {
    let env = TestEnv::new();
    let gh = GitHub::start("acme/app", TOKEN);
    let go = env.scratch("go");
    let fake = fake_agent().display().to_string();
    let plan = plan(&env, &gh).replace(
        "[defaults]\nagent = \"fake\"",
        &format!(
            "[agent.slow]\nadapter = \"exec\"\ncommand = [{fake:?}]\nenv = {{ FAKE_AGENT_SCRIPT = \"wait-file {}; write slow.txt done\" }}\n\n[defaults]\nagent = \"slow\"",
            go.display()
        ),
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    gh.fail_next_comments(1);
    let n = gh.open_issue("Take your time", "", &["baton"]);
    let server = serve(&env, "serve.log");
    wait_for("the start to be told again", 30, || said(&gh, n).len() == 1);
    std::fs::write(&go, "").unwrap();
    wait_for("the end to be told", 30, || said(&gh, n).len() == 2);
    stop(server);
    let told = said(&gh, n);
    assert!(told[0].starts_with("baton took this on"), "{told:?}");
    assert!(told[1].contains("succeeded"), "{told:?}");
    assert_eq!(store_rows(&env, "SELECT count(*) FROM source_items"), ["1"]);
    let log = std::fs::read_to_string(env.scratch("serve.log")).unwrap();
    assert!(log.contains("502"), "the failure is in the log: {log}");
}

/// "Blocked by #N" on an issue that is baton's work too: its task needs
/// that one's, and starts after it merged, though it was opened first.
#[test]
fn an_issue_blocked_by_another_picked_one_waits_for_its_task() {
    let env = TestEnv::new();
    let gh = GitHub::start("acme/app", TOKEN);
    env.write("baton.toml", &plan(&env, &gh));
    env.commit_all("plan");
    let top = gh.open_issue("Build on the base", "Blocked by #2.", &["baton"]);
    let base = gh.open_issue("Lay the base", "", &["baton"]);
    let server = serve(&env, "serve.log");
    wait_for("both tasks to end", 60, || {
        said(&gh, top).len() >= 2 && said(&gh, base).len() >= 2
    });
    stop(server);
    let rows = store_rows(
        &env,
        "SELECT s.item || ' ' || t.id || ' ' || t.needs || ' ' || t.started_at || ' ' || t.finished_at FROM source_items s JOIN tasks t ON t.run_id = s.run_id AND t.id = s.task_id ORDER BY s.item",
    );
    let field = |row: &str, i: usize| row.split(' ').nth(i).unwrap().to_string();
    let (top_row, base_row) = (&rows[0], &rows[1]);
    assert_eq!(field(top_row, 0), "#1", "{rows:?}");
    assert!(
        field(top_row, 2).contains(&field(base_row, 1)),
        "the top task needs the base's: {rows:?}"
    );
    let (top_start, base_end): (i64, i64) = (
        field(top_row, 3).parse().unwrap(),
        field(base_row, 4).parse().unwrap(),
    );
    assert!(top_start >= base_end, "{rows:?}");
    assert_eq!(field(base_row, 1), "github-2-lay-the-base", "{rows:?}");
    let taken = store_rows(
        &env,
        "SELECT item FROM source_items ORDER BY taken_at, rowid",
    );
    assert_eq!(taken, ["#2", "#1"], "the base was taken first");
}

/// A tracker that refuses to hear about one item (its report fails every
/// time) does not hold up the others: they are taken and reported.
#[test]
fn one_item_the_tracker_refuses_does_not_hold_up_the_others() {
    let env = TestEnv::new();
    // Refuses every report about ENG-1, as a tracker whose item was deleted.
    let refuse = r#"r=$(cat); case "$r" in *'"ENG-1"'*) echo gone >&2; exit 1;; esac; echo "$r" >> {reports}"#;
    let board = command_source(&env, "board", refuse);
    let (items, reports) = (&board.items, &board.reports);
    std::fs::write(
        items,
        "{\"id\": \"ENG-1\", \"title\": \"write one.txt first\"}\n{\"id\": \"ENG-2\", \"title\": \"write two.txt second\"}\n",
    )
    .unwrap();
    let server = serve(&env, "serve.log");
    let heard = || std::fs::read_to_string(reports).unwrap_or_default();
    wait_for("ENG-2 to be reported as ended", 60, || {
        heard().contains("\"event\":\"ended\"")
    });
    stop(server);
    assert!(heard().contains("\"item\":\"ENG-2\""), "{}", heard());
    assert!(!heard().contains("ENG-1"), "{}", heard());
    let log = std::fs::read_to_string(env.scratch("serve.log")).unwrap();
    assert!(log.contains("exited with 1: gone"), "{log}");
    assert_eq!(store_rows(&env, "SELECT count(*) FROM source_items"), ["2"]);
}

/// baton died after recording an item and before queuing its task: the
/// next server queues it (once, under the recorded id, in its service
/// run) and reports on it.
#[test]
fn an_item_recorded_but_never_queued_is_queued_by_the_next_server() {
    let env = TestEnv::new();
    let gh = GitHub::start("acme/app", TOKEN);
    env.write("baton.toml", &plan(&env, &gh));
    env.commit_all("plan");
    // A first server makes the store, and finds no work.
    let first = serve(&env, "serve-1.log");
    wait_for("the first look", 30, || !gh.calls().is_empty());
    stop(first);
    // The store as a server that died in between left it: the item
    // recorded, its task never queued.
    let n = gh.open_issue("Left half done", "", &["baton"]);
    let insert = "INSERT INTO source_items (source, item, run_id, task_id, title, url, taken_at) \
                  VALUES ('github:acme/app#baton', '#1', 'a-run-gone', 'github-1-left-half-done', 'Left half done', '', 0)";
    let py =
        "import sqlite3,sys\nc = sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()";
    let db = env.repo.join(".git/baton/baton.db");
    let done = std::process::Command::new("python3")
        .args(["-c", py])
        .arg(&db)
        .arg(insert)
        .status()
        .unwrap();
    assert!(done.success());
    let server = serve(&env, "serve.log");
    wait_for("the item's task to end and be reported", 60, || {
        said(&gh, n).len() >= 2
    });
    stop(server);
    let rows = store_rows(
        &env,
        "SELECT s.task_id || ' ' || (s.run_id = t.run_id) FROM source_items s JOIN tasks t ON t.id = s.task_id",
    );
    assert_eq!(
        rows,
        ["github-1-left-half-done 1"],
        "queued once, where the row says"
    );
    assert!(said(&gh, n)[1].contains("succeeded"), "{:?}", said(&gh, n));
}

/// A source with `mode = "plan"`: the issue is a planner's goal; the plan
/// it writes (checked) runs as the issue's own run, and the issue hears
/// what was planned and how the run ended.
#[test]
fn an_issue_in_plan_mode_is_planned_then_its_plan_runs_and_it_hears_the_end() {
    let env = TestEnv::new();
    let gh = GitHub::start("acme/app", TOKEN);
    let script = env.scratch("planner.py");
    let seen = env.scratch("planner-goal.txt");
    std::fs::write(
        &script,
        format!(
            r#"import os, sys
open({seen:?}, "w").write(sys.argv[-1])
plan = '[agent.sh]\nadapter = "exec"\ncommand = ["bash", "-ec"]\n\n[defaults]\nagent = "sh"\n\n[[task]]\nid = "hello"\nprompt = "echo hi > hello.txt"\n\n[[task]]\nid = "bye"\nneeds = ["hello"]\nprompt = "echo bye > bye.txt"\n'
open(os.environ["BATON_PLAN_OUT"], "w").write(plan)
print("hello, then bye")
"#,
            seen = seen.display().to_string()
        ),
    )
    .unwrap();
    let plan = format!(
        r#"[agent.planner]
adapter = "exec"
command = ["python3", {script:?}]

[agent.sh]
adapter = "exec"
command = ["bash", "-ec"]

[defaults]
agent = "planner"

[[source]]
kind = "github"
repo = "acme/app"
label = "baton"
mode = "plan"
api_url = {url:?}
token_env = "BATON_TEST_GITHUB_TOKEN"
poll = "5s"
"#,
        script = script.display().to_string(),
        url = gh.url(),
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let n = gh.open_issue(
        "Greet, then say goodbye",
        "Two files, in order.",
        &["baton"],
    );
    let server = serve(&env, "serve-plan.log");
    let log = || std::fs::read_to_string(env.scratch("serve-plan.log")).unwrap_or_default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while said(&gh, n).len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:#?}\n{}",
            said(&gh, n),
            log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    stop(server);
    let told = said(&gh, n);
    assert!(
        told[0].starts_with("baton took this on as task `"),
        "{told:#?}"
    );
    assert!(told[0].contains("by agent profile `planner`"), "{told:#?}");
    let run = store_rows(&env, "SELECT run_id FROM source_items")[0].clone();
    assert!(
        told[1].starts_with(&format!(
            "baton planned this as 2 tasks (`hello`, `bye`), running as run `{run}`."
        )),
        "{told:#?}"
    );
    assert!(
        told[2].starts_with(&format!(
            "Run `{run}` succeeded. Its work is merged into `baton/{run}/integration`."
        )),
        "{told:#?}"
    );
    let goal = std::fs::read_to_string(&seen).unwrap();
    assert!(goal.contains("Greet, then say goodbye"), "{goal}");
    assert!(goal.contains("Two files, in order."), "{goal}");
    let branch = format!("baton/{run}/integration");
    assert_eq!(show(&env, &branch, "bye.txt").as_deref(), Some("bye\n"));
    let statuses = store_rows(
        &env,
        &format!("SELECT id || ' ' || status FROM tasks WHERE run_id = '{run}' ORDER BY position"),
    );
    assert_eq!(statuses, ["hello succeeded", "bye succeeded"]);
    // The item's plan ran as it was planned: it never waited for a yes.
    let inbox = output(baton(&env).args(["inbox", "--json"]));
    assert_eq!(String::from_utf8_lossy(&inbox.stdout).trim(), "[]");
}

/// While GitHub's rate limit holds, a signed webhook does not make baton
/// call again; once it is over, baton looks at once, though its next poll
/// is an hour away.
#[test]
fn a_webhook_during_a_rate_limit_waits_for_its_end() {
    let env = TestEnv::new();
    let gh = GitHub::start("acme/app", TOKEN);
    let plan = plan(&env, &gh).replace(
        "poll = \"5s\"",
        "poll = \"1h\"\nwebhook_secret_env = \"BATON_TEST_HOOK_SECRET\"",
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    gh.rate_limit_for(4);
    let envs = [
        ("BATON_TEST_GITHUB_TOKEN", TOKEN),
        ("BATON_TEST_HOOK_SECRET", "It's a Secret to Everybody"),
    ];
    let (server, url) = serve_logged(&env, "serve.log", &envs);
    let read_log = || std::fs::read_to_string(env.scratch("serve.log")).unwrap_or_default();
    wait_for("the first look to be refused", 30, || {
        read_log().contains("rate limit")
    });
    let before = gh.calls().len();
    let n = gh.open_issue("Fix the crash", "", &["baton"]);
    let body =
        r#"{"action": "labeled", "issue": {"number": 1}, "repository": {"full_name": "acme/app"}}"#;
    let signed = github_signature("It's a Secret to Everybody", body);
    assert_eq!(deliver(&url, "issues", &signed, body), 202);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(gh.calls().len(), before, "a call during the rate limit");
    wait_for("the issue to be taken once the limit is over", 20, || {
        !said(&gh, n).is_empty()
    });
    stop(server);
}
