//! Following a pull request to its merge: `[land] mode = "pr"` with
//! `follow = true` opens the run's pull request on the GitHub stand-in
//! (which speaks GitHub's REST shapes, with a bare git repository on disk as
//! the pushed-to remote and CI scripts run on each pushed commit), and a
//! red check, a review comment and the cap each get what they should.

use crate::common::*;
use baton_testutils::github::GitHub;
use baton_testutils::{fake_agent, TestEnv};
use std::process::{Child, Output, Stdio};

pub(crate) const TOKEN: &str = "ghp_baton-follow-token-0123456789";

/// A repository with a bare `origin` the stand-in serves as `acme/app`.
fn setup() -> (TestEnv, GitHub) {
    setup_with("grep -q fixed app.txt || { echo 'FAIL: app.txt says it is broken'; exit 1; }")
}

/// [`setup`] with `ci` as the check `test`'s script.
pub(crate) fn setup_with(ci: &str) -> (TestEnv, GitHub) {
    let env = TestEnv::new();
    let remote = env.scratch("origin.git");
    env.git(&[
        "init",
        "-q",
        "--bare",
        "-b",
        "main",
        remote.to_str().unwrap(),
    ]);
    env.git(&["remote", "add", "origin", remote.to_str().unwrap()]);
    env.git(&["push", "-q", "origin", "main"]);
    let gh = GitHub::start("acme/app", TOKEN);
    gh.use_remote(&remote);
    gh.ci("test", ci);
    (env, gh)
}

/// A plan whose task writes a broken file, and whose fixer fixes it (each
/// of its prompts kept in the scratch file `fixer-prompts.txt`).
fn plan(env: &TestEnv, gh: &GitHub, fixer: &str, land: &str) -> String {
    let fake = fake_agent().display().to_string();
    let prompts = env.scratch("fixer-prompts.txt").display().to_string();
    format!(
        r#"[agent.fake]
adapter = "exec"
command = [{fake:?}]

[agent.fixer]
adapter = "exec"
command = [{fake:?}]
env = {{ FAKE_AGENT_SCRIPT = "prompts {prompts}; {fixer}" }}

[defaults]
agent = "fake"

[[task]]
id = "t1"
prompt = "write app.txt broken"

[land]
mode = "pr"
follow = true
repo = "acme/app"
api_url = {url:?}
token_env = "BATON_TEST_GITHUB_TOKEN"
poll = "1s"
fixer = "fixer"
{land}
"#,
        url = gh.url(),
    )
}

fn spawn(env: &TestEnv, args: &[&str]) -> Child {
    baton(env)
        .args(args)
        .env("BATON_TEST_GITHUB_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child, secs: u64) -> Output {
    let pid = child.id() as i32;
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !waiter.is_finished() {
        if std::time::Instant::now() > deadline {
            // SAFETY: signalling a child we started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let out = waiter.join().unwrap();
            panic!(
                "baton did not finish in {secs}s; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    waiter.join().unwrap()
}

/// What baton wrote on issue or pull request `n`, in order.
pub(crate) fn said(gh: &GitHub, n: u64) -> Vec<String> {
    gh.comments(n)
        .into_iter()
        .filter(|(who, _)| who == "baton-bot[bot]")
        .map(|(_, body)| body)
        .collect()
}

pub(crate) fn remote_file(env: &TestEnv, rev: &str, path: &str) -> String {
    let remote = env.scratch("origin.git");
    let spec = format!("{rev}:{path}");
    env.git(&["--git-dir", remote.to_str().unwrap(), "show", &spec])
}

#[test]
fn a_red_check_and_a_review_each_get_a_fix_then_the_approved_pull_request_merges() {
    let (env, gh) = setup();
    let seen = env.scratch("fixer-token.txt").display().to_string();
    let fixer = format!("env BATON_TEST_GITHUB_TOKEN {seen}; append app.txt fixed");
    let p = plan(&env, &gh, &fixer, "merge_when = \"approved\"").replace(
        "prompt = \"write app.txt broken\"",
        &format!("prompt = \"env BATON_TEST_GITHUB_TOKEN {seen}.task; write app.txt broken\""),
    );
    env.write("baton.toml", &p);
    env.commit_all("plan");
    env.git(&["push", "-q", "origin", "main"]);
    let child = spawn(&env, &["run", "baton.toml"]);
    wait_for("the pull request to open", 60, || !gh.pulls().is_empty());
    let n = gh.pulls()[0].number;
    // CI fails on the first head, the fixer's commit makes it pass.
    wait_for("a passing check", 90, || {
        gh.check_runs().iter().any(|(_, _, ok)| *ok)
    });
    let runs = gh.check_runs();
    assert!(!runs[0].2, "the first head fails: {runs:?}");
    let thread = gh.review_comment(n, "ana", "app.txt", 1, "Say in the file why it was broken.");
    gh.review(n, "ana", "CHANGES_REQUESTED", "");
    wait_for("the thread to be answered", 90, || {
        !gh.replies(n).is_empty()
    });
    gh.review(n, "ana", "APPROVED", "Thanks.");
    let out = finish(child, 90);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");

    let pull = &gh.pulls()[0];
    assert!(pull.merged.is_some(), "{pull:?}");
    assert!(pull.head.starts_with("baton/"), "{pull:?}");
    assert!(remote_file(&env, "main", "app.txt").contains("fixed"));
    let prompts = std::fs::read_to_string(env.scratch("fixer-prompts.txt")).unwrap();
    let prompts: Vec<&str> = prompts
        .split("\n----")
        .filter(|p| !p.trim().is_empty())
        .collect();
    assert_eq!(prompts.len(), 2, "{prompts:?}");
    assert!(
        prompts[0].contains("checks of pull request #"),
        "{}",
        prompts[0]
    );
    assert!(
        prompts[0].contains("FAIL: app.txt says it is broken"),
        "{}",
        prompts[0]
    );
    assert!(
        prompts[1].contains("Say in the file why it was broken."),
        "{}",
        prompts[1]
    );
    assert!(
        prompts[1].contains("`app.txt:1`, @ana wrote"),
        "{}",
        prompts[1]
    );

    let replies = gh.replies(n);
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0].0, thread);
    assert!(replies[0].1.starts_with("Addressed in "), "{replies:?}");
    let said = said(&gh, n);
    assert_eq!(said.len(), 4, "{said:#?}");
    assert!(
        said[0].starts_with("baton is fixing its failed checks: fix 1 of 3, task `fix-1-checks`"),
        "{said:#?}"
    );
    assert!(
        said[1].starts_with("baton pushed ") && said[1].contains("(fix-1-checks)"),
        "{said:#?}"
    );
    assert!(
        said[2].starts_with("baton is fixing the review comments: fix 2 of 3, task `fix-2-review`"),
        "{said:#?}"
    );
    assert!(said[3].contains("(fix-2-review)"), "{said:#?}");
    assert!(
        said.iter().all(|s| s.ends_with("<!-- baton -->")),
        "{said:#?}"
    );
    // Every step is an event of the run.
    let kinds = store_rows(
        &env,
        "SELECT kind FROM events WHERE kind LIKE 'pull_%' ORDER BY seq",
    );
    assert_eq!(
        kinds,
        [
            "pull_opened",
            "pull_fix",
            "pull_fix_ended",
            "pull_fix",
            "pull_fix_ended",
            "pull_merged"
        ],
    );
    // The token stayed baton's: neither the task's agent nor the fixer's
    // saw it (each wrote what it saw), and every call to the stand-in
    // carried it.
    for file in [seen.clone(), format!("{seen}.task")] {
        let token_seen = std::fs::read_to_string(&file).unwrap();
        assert_eq!(
            token_seen.trim(),
            "",
            "an agent saw the forge's token ({file})"
        );
    }
    assert!(gh.calls().iter().all(|c| c.authorization.as_deref()
        == Some(&format!("Bearer {TOKEN}"))
        || c.path.starts_with("/_logs/")));
}

#[test]
fn past_max_fixes_the_pull_request_needs_a_person_and_says_so() {
    let (env, gh) = setup();
    let p = plan(
        &env,
        &gh,
        "append notes.txt tried",
        "max_fixes = 1\nmerge_when = \"green\"",
    );
    env.write("baton.toml", &p);
    env.commit_all("plan");
    let out = finish(spawn(&env, &["run", "baton.toml"]), 120);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains("needs a person: 1 of 1 fix attempts used, and checks failed: test"),
        "{stderr}"
    );
    let n = gh.pulls()[0].number;
    assert!(gh.pulls()[0].merged.is_none());
    let said = said(&gh, n);
    assert_eq!(said.len(), 3, "{said:#?}");
    assert!(
        said[2].starts_with(
            "baton stops fixing this pull request and needs a person: 1 of 1 fix attempts used"
        ),
        "{said:#?}"
    );
    let status = store_rows(&env, "SELECT status || ' ' || fixes_used FROM pulls");
    assert_eq!(status, ["needs_you 1"]);
    let kinds = store_rows(
        &env,
        "SELECT kind FROM events WHERE kind = 'pull_needs_you'",
    );
    assert_eq!(kinds.len(), 1);
}

/// `baton serve` with the forge's token; SIGKILLed when dropped unless
/// stopped first.
pub(crate) struct Served {
    child: Child,
    /// Where it listens (`http://127.0.0.1:PORT`).
    pub url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The secret `serve` checks webhooks with (when the plan names it).
const HOOK_SECRET: &str = "webhook-secret-for-the-tests";

pub(crate) fn serve(env: &TestEnv, log: &str) -> Served {
    serve_with(env, log, &[])
}

/// [`serve`] with more arguments.
pub(crate) fn serve_with(env: &TestEnv, log: &str, more: &[&str]) -> Served {
    use std::io::BufRead;
    let log = std::fs::File::create(env.scratch(log)).unwrap();
    let mut child = baton(env)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .args(more)
        .env("BATON_TEST_GITHUB_TOKEN", TOKEN)
        .env("BATON_TEST_HOOK_SECRET", HOOK_SECRET)
        .env("BATON_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut before = Vec::new();
    let url = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(url) = line.strip_prefix("baton serve: listening on ") {
            break url.trim().to_string();
        }
        before.push(line);
    };
    std::thread::spawn(move || {
        use std::io::Write;
        let mut log = log;
        for l in before.into_iter().chain(lines.map_while(Result::ok)) {
            let _ = writeln!(log, "{l}");
        }
    });
    Served { child, url }
}

#[test]
fn serve_killed_mid_fix_picks_the_pull_request_up_where_it_was() {
    let (env, gh) = setup();
    let go = env.scratch("go");
    let fixer = format!("wait-file {}; append app.txt fixed", go.display());
    let p = plan(&env, &gh, &fixer, "merge_when = \"green\"");
    env.write("baton.toml", &p);
    env.commit_all("plan");
    let first = serve(&env, "serve-1.log");
    // Handed to the server, which lands it as a pull request and follows it.
    let _ = run_json(&env, &[]);
    wait_for("the fix attempt to start", 90, || {
        store_rows(&env, "SELECT status FROM tasks WHERE id = 'fix-1-checks'") == ["running"]
    });
    drop(first);
    std::fs::write(&go, "").unwrap();
    let second = serve(&env, "serve-2.log");
    wait_for("the pull request to merge", 120, || {
        store_rows(&env, "SELECT status FROM pulls") == ["merged"]
    });
    drop(second);
    let log = std::fs::read_to_string(env.scratch("serve-2.log")).unwrap_or_default();
    assert_eq!(gh.pulls().len(), 1, "one pull request: {log}");
    let fixes = store_rows(
        &env,
        "SELECT id || ' ' || status FROM tasks WHERE id LIKE 'fix-%'",
    );
    assert_eq!(fixes, ["fix-1-checks succeeded"], "{log}");
    let n = gh.pulls()[0].number;
    let said = said(&gh, n);
    assert_eq!(said.len(), 2, "{said:#?}");
    assert!(said[0].contains("fix 1 of 3"), "{said:#?}");
    assert!(said[1].contains("(fix-1-checks)"), "{said:#?}");
    assert!(gh.pulls()[0].merged.is_some());
    assert!(remote_file(&env, "main", "app.txt").contains("fixed"));
}

#[test]
fn a_base_that_conflicts_is_merged_in_by_a_fix_attempt() {
    let (env, gh) = setup();
    // The resolver is a script: it merges the commit the prompt names and
    // keeps both sides.
    let resolve = "sha=$(printf '%s' \"$0\" | grep -o 'Merge commit [0-9a-f]*' | head -1 | cut -d' ' -f3); git merge -q --no-edit \"$sha\" || true; printf 'fixed: both\\n' > app.txt; git add -A; git commit -qm 'merge the base'";
    let p = plan(&env, &gh, "exit 1", "merge_when = \"approved\"")
        .replace(
            "[agent.fixer]\nadapter = \"exec\"",
            &format!("[agent.fixer]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\", {resolve:?}]\n[agent.unused]\nadapter = \"exec\""),
        )
        .replace("prompt = \"write app.txt broken\"", "prompt = \"write app.txt fixed by the task\"")
        // The conflict goes to the run's resolver, not to the fixer (which fails).
        .replace("fixer = \"fixer\"", "fixer = \"unused\"");
    let p = format!("[run]\nresolver = \"fixer\"\n\n{p}");
    env.write("baton.toml", &p);
    env.commit_all("plan");
    env.git(&["push", "-q", "origin", "main"]);
    let child = spawn(&env, &["run", "baton.toml"]);
    wait_for("the pull request to open", 60, || !gh.pulls().is_empty());
    let n = gh.pulls()[0].number;
    // Someone lands a change to the same file on main.
    env.git(&["checkout", "-q", "-b", "other", "main"]);
    env.write("app.txt", "fixed on main\n");
    env.commit_all("main's own app.txt");
    env.git(&["push", "-q", "origin", "other:main"]);
    env.git(&["checkout", "-q", "main"]);
    wait_for("the conflict fix to be pushed", 90, || {
        said(&gh, n).iter().any(|s| s.contains("(fix-1-conflict)"))
    });
    gh.review(n, "ana", "APPROVED", "");
    let out = finish(child, 90);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    let said = said(&gh, n);
    assert!(
        said[0].starts_with("baton is fixing its conflict with the base branch: fix 1 of 3"),
        "{said:#?}"
    );
    assert_eq!(remote_file(&env, "main", "app.txt"), "fixed: both");
    let kinds = store_rows(
        &env,
        "SELECT kind FROM events WHERE kind LIKE 'pull_%' ORDER BY seq",
    );
    assert_eq!(
        kinds,
        ["pull_opened", "pull_fix", "pull_fix_ended", "pull_merged"]
    );
}

#[test]
fn webhooks_wake_the_follower_at_once_though_it_polls_once_an_hour() {
    let (env, gh) = setup();
    gh.ci_takes(1.0);
    let p = plan(
        &env,
        &gh,
        "append app.txt fixed",
        "merge_when = \"green\"\nwebhook_secret_env = \"BATON_TEST_HOOK_SECRET\"",
    )
    .replace("poll = \"1s\"", "poll = \"1h\"");
    env.write("baton.toml", &p);
    env.commit_all("plan");
    env.git(&["push", "-q", "origin", "main"]);
    let served = serve(&env, "serve.log");
    let log = || std::fs::read_to_string(env.scratch("serve.log")).unwrap_or_default();
    gh.webhook(&format!("{}/api/hooks/github", served.url), HOOK_SECRET);
    // Handed to the server, which lands it as a pull request and follows it.
    let _ = run_json(&env, &[]);
    // Red, fixed, green, merged: each step after the first look comes
    // from a delivery (the next poll is an hour away).
    let merged = || store_rows(&env, "SELECT status FROM pulls") == ["merged"];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !merged() {
        assert!(
            std::time::Instant::now() < deadline,
            "not merged in 60 s; serve's log:\n{}",
            log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(served);
    let checks: Vec<(String, u16, String)> = gh
        .deliveries()
        .into_iter()
        .filter(|d| d.event == "check_run")
        .map(|d| {
            let conclusion = d.body["check_run"]["conclusion"]
                .as_str()
                .unwrap_or("")
                .to_string();
            (d.event, d.status, conclusion)
        })
        .collect();
    assert_eq!(
        checks,
        [
            ("check_run".to_string(), 202, "failure".to_string()),
            ("check_run".to_string(), 202, "success".to_string())
        ],
        "{}",
        log()
    );
    let fixes = store_rows(
        &env,
        "SELECT id || ' ' || status FROM tasks WHERE id LIKE 'fix-%'",
    );
    assert_eq!(fixes, ["fix-1-checks succeeded"]);
    assert!(remote_file(&env, "main", "app.txt").contains("fixed"));
    // The report says where the pull request stands (and the API's too).
    let out = output(baton(&env).args(["status", "--json"]));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pull = &report["pull"];
    assert_eq!(pull["status"], "merged", "{report:#}");
    assert_eq!(pull["number"], gh.pulls()[0].number, "{report:#}");
    assert_eq!(pull["fixes_used"], 1, "{report:#}");
    assert!(
        pull["checks"].as_str().unwrap().contains("passed"),
        "{report:#}"
    );
}

#[test]
fn a_persons_push_to_the_branch_is_kept_under_the_next_fix() {
    let (env, gh) = setup();
    let p = plan(
        &env,
        &gh,
        "append app.txt reviewed",
        "merge_when = \"approved\"",
    )
    .replace(
        "prompt = \"write app.txt broken\"",
        "prompt = \"write app.txt fixed\"",
    );
    env.write("baton.toml", &p);
    env.commit_all("plan");
    env.git(&["push", "-q", "origin", "main"]);
    let child = spawn(&env, &["run", "baton.toml"]);
    wait_for("the pull request to go green", 60, || {
        gh.check_runs().iter().any(|(_, _, ok)| *ok)
    });
    let pull = gh.pulls()[0].clone();
    // A person pushes a commit of their own to the pull request's branch.
    let person = env.scratch("person");
    env.git(&["fetch", "-q", "origin", &pull.head]);
    env.git(&[
        "worktree",
        "add",
        "-q",
        "--detach",
        person.to_str().unwrap(),
        "FETCH_HEAD",
    ]);
    let at = person.to_str().unwrap();
    std::fs::write(person.join("notes.txt"), "from a person\n").unwrap();
    env.git(&["-C", at, "add", "notes.txt"]);
    env.git(&["-C", at, "commit", "-qm", "a person's notes"]);
    let spec = format!("HEAD:refs/heads/{}", pull.head);
    env.git(&["-C", at, "push", "-q", "origin", &spec]);
    wait_for("the person's commit to be checked", 30, || {
        gh.check_runs().len() >= 2
    });
    gh.review_comment(pull.number, "ana", "app.txt", 1, "Say it was reviewed.");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while gh.replies(pull.number).is_empty() {
        if std::time::Instant::now() > deadline {
            // Says what baton said, and ends the test.
            finish(child, 0);
            unreachable!("finish panics on a baton that has not ended");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    gh.review(pull.number, "ana", "APPROVED", "");
    let out = finish(child, 60);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    // Both the person's commit and the fix reached main.
    assert_eq!(remote_file(&env, "main", "notes.txt"), "from a person");
    assert!(remote_file(&env, "main", "app.txt").contains("reviewed"));
    // Taken before the fix, or merged with it before its push, as the looks fall.
    assert!(stderr.contains(" the push to baton/"), "{stderr}");
}
