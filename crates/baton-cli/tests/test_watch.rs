//! `baton watch` in a real terminal: tmux runs it, send-keys types, and
//! capture-pane reads the screen.

use crate::common::*;
use baton_testutils::{hermetic_env, TestEnv};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux server of the test's own with one pane running `baton watch`;
/// after it exits the pane's shell prints its exit status and the
/// terminal's modes, so a test can see what it left behind.
struct Term {
    socket: String,
}

impl Term {
    fn start(env: &TestEnv, args: &str, extra_env: &[(&str, &str)]) -> Term {
        // A server of its own each time: one being killed cannot take the next.
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let socket = format!(
            "baton-test-{}-{}-{}",
            std::process::id(),
            env.root().file_name().unwrap().to_string_lossy(),
            STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let mut vars: Vec<(String, String)> = hermetic_env()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        vars.push(("HOME".into(), env.root().display().to_string()));
        // A panic's message must fit on the screen.
        vars.push(("RUST_BACKTRACE".into(), "0".into()));
        vars.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let exports: String = vars
            .iter()
            .map(|(k, v)| format!("export {k}={}; ", quote(v)))
            .collect();
        let script = format!(
            "{exports}cd {repo}; {baton} watch {args}; echo \"EXIT=$?\"; stty -a | tr ' ;' '\\n\\n' | grep -x -- '-\\?icanon'; sleep 600",
            repo = quote(&env.repo.display().to_string()),
            baton = quote(baton_bin()),
        );
        let out = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "160",
                "-y",
                "40",
            ])
            .args(["sh", "-c", &script])
            .env_remove("TMUX")
            .output()
            .expect("tmux (Debian package tmux) must be installed for the terminal tests");
        assert!(
            out.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Term { socket }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p"])
    }

    /// Types keys (tmux key names: Enter, Down, Tab, ...).
    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.tmux(&["send-keys", k]);
            std::thread::sleep(Duration::from_millis(60));
        }
    }

    fn text(&self, text: &str) {
        self.tmux(&["send-keys", "-l", text]);
    }

    /// Waits until the screen shows `want`; fails with the screen.
    fn wait(&self, want: &str) -> String {
        self.wait_until(want, |s| s.contains(want))
    }

    fn wait_until(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if cond(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "no {what:?} on the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The pid of `baton watch` (the pane's shell's child).
    fn watch_pid(&self) -> i32 {
        let shell = self.tmux(&["display", "-p", "#{pane_pid}"]);
        let shell = shell.trim();
        let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
            .unwrap_or_default();
        children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no child of the pane's shell {shell}"))
    }

    /// After `baton watch` ended: its exit status and whether the terminal
    /// is back in line mode (`icanon`, which raw mode turns off).
    fn after_exit(&self) -> (String, String) {
        let screen = self.wait("icanon");
        let exit = screen
            .lines()
            .find_map(|l| l.strip_prefix("EXIT="))
            .unwrap_or("")
            .to_string();
        let mode = screen
            .lines()
            .find(|l| l.trim().ends_with("icanon"))
            .unwrap_or("")
            .trim()
            .to_string();
        (exit, mode)
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[test]
fn watch_shows_a_live_run_stops_a_task_and_steers_another() {
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        &bash_plan(
            r#"
[[task]]
id = "slow"
prompt = "echo working; sleep 30; echo never > slow.txt"

[[task]]
id = "talk"
prompt = "if [ -n \"$BATON_FEEDBACK\" ]; then echo \"$BATON_FEEDBACK\" > steer.txt; exit 0; fi; sleep 30"
"#,
        ),
    );
    env.commit_all("plan");
    let run = spawn_baton(&env, &["run", "--json"]);
    wait_for_task(&env, "slow", "running");
    wait_for_task(&env, "talk", "running");

    let term = Term::start(&env, "", &[]);
    let screen = term.wait("transcript of slow");
    assert!(screen.contains("(live)"), "{screen}");
    assert!(screen.contains("talk"), "{screen}");

    // Stop the selected task: asked first, then done.
    term.keys(&["s"]);
    term.wait("stop slow?");
    term.keys(&["y"]);
    wait_for_task(&env, "slow", "stopped");
    term.wait_until("slow shown stopped", |s| {
        s.lines()
            .any(|l| l.contains("slow") && l.contains("stopped"))
    });

    // Steer the other one through the input line.
    term.keys(&["Down", "m"]);
    term.wait("steer talk>");
    term.text("use tabs");
    term.keys(&["Enter"]);
    term.wait("restarts with your message");
    let out = run.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "slow was stopped: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(task(&report, "talk")["status"], "succeeded");
    assert_eq!(
        task_show(&env, &report, "talk", "steer.txt").as_deref(),
        Some("use tabs\n")
    );
    term.wait_until("talk shown succeeded", |s| {
        s.lines()
            .any(|l| l.contains("talk") && l.contains("succeeded"))
    });

    term.keys(&["q"]);
    let (exit, mode) = term.after_exit();
    assert_eq!(exit, "0");
    assert_eq!(mode, "icanon", "raw mode left on");
    assert!(
        !term.screen().contains("baton watch ·"),
        "the alternate screen is left"
    );
}

fn one_finished_run(env: &TestEnv) {
    env.write(
        "baton.toml",
        &bash_plan("\n[[task]]\nid = \"hello\"\nprompt = \"echo hi > hello.txt\"\n"),
    );
    env.commit_all("plan");
    assert_eq!(run_json(env, &[]).code, 0);
}

#[test]
fn the_terminal_is_restored_when_watch_is_killed_or_panics() {
    let env = TestEnv::new();
    one_finished_run(&env);

    let term = Term::start(&env, "", &[]);
    term.wait("transcript of hello");
    // SAFETY: signalling a process of this test.
    unsafe { libc::kill(term.watch_pid(), libc::SIGTERM) };
    let (exit, mode) = term.after_exit();
    assert_eq!((exit.as_str(), mode.as_str()), ("0", "icanon"));
    drop(term);

    let term = Term::start(&env, "", &[("BATON_FAILPOINT", "watch_panic")]);
    let (exit, mode) = term.after_exit();
    assert_eq!((exit.as_str(), mode.as_str()), ("101", "icanon"));
    assert!(
        term.screen().contains("failpoint watch_panic"),
        "{}",
        term.screen()
    );
}

#[test]
fn watch_goes_on_when_the_run_process_is_killed_and_switches_runs() {
    let env = TestEnv::new();
    one_finished_run(&env);
    let first = latest_run_opt(&env).unwrap()["run"]
        .as_str()
        .unwrap()
        .to_string();
    env.write(
        "baton.toml",
        &bash_plan("\n[[task]]\nid = \"long\"\nprompt = \"sleep 60\"\n"),
    );
    env.commit_all("plan 2");
    let mut run = spawn_baton(&env, &["run"]);
    wait_for("the second run's task to run", 20, || {
        latest_run_opt(&env)
            .is_some_and(|r| r["tasks"][0]["id"] == "long" && r["tasks"][0]["status"] == "running")
    });

    let term = Term::start(&env, "", &[]);
    term.wait("transcript of long");
    term.wait("(live)");
    run.kill().unwrap(); // SIGKILL: the view is left with a run nobody drives
    run.wait().unwrap();
    term.wait("not driven by any process");

    // The older run, and back.
    term.keys(&["["]);
    term.wait(&format!("run {first}"));
    term.wait("transcript of hello");
    term.keys(&["["]);
    term.wait("no older run");
    term.keys(&["]"]);
    term.wait("transcript of long");
    term.keys(&["q"]);
    assert_eq!(term.after_exit(), ("0".to_string(), "icanon".to_string()));
}

#[test]
fn watch_stays_responsive_with_fifty_tasks_and_a_long_transcript() {
    let env = TestEnv::new();
    // A Claude Code stand-in that says 3,000 things: the transcript is long.
    let talker = env.scratch("talker.py");
    std::fs::write(
        &talker,
        r#"import json
for i in range(3000):
    print(json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": f"step {i}"}]}}))
print(json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "all 3000 steps done", "session_id": "s1"}))
"#,
    )
    .unwrap();
    let mut body = format!(
        "[agent.talker]\nadapter = \"claude\"\ncommand = [\"python3\", {:?}]\n\n[run]\nmax_parallel = 8\n",
        talker.display().to_string()
    );
    body.push_str("\n[[task]]\nid = \"chatty\"\nagent = \"talker\"\nprompt = \"talk\"\n");
    for i in 0..49 {
        body.push_str(&format!(
            "\n[[task]]\nid = \"t{i:02}\"\nprompt = \"echo {i} > f{i}.txt\"\n"
        ));
    }
    env.write("baton.toml", &bash_plan(&body));
    env.commit_all("plan");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let term = Term::start(&env, "", &[]);
    let screen = term.wait("all 3000 steps done");
    assert!(screen.contains("50/50 done"), "{screen}");
    // Scrolled back into the transcript, then to the last task and back.
    term.keys(&["PageUp", "PageUp"]);
    term.wait_until("the transcript scrolled back", |s| {
        s.contains("step 29") && !s.contains("all 3000 steps done")
    });
    term.keys(&["G"]);
    term.wait("transcript of t48");
    term.keys(&["g"]);
    term.wait("all 3000 steps done");
    term.keys(&["q"]);
    assert_eq!(term.after_exit().1, "icanon");
}

#[test]
fn retry_from_watch_reopens_a_finished_run_and_the_view_follows_it() {
    let env = TestEnv::new();
    let marker = env.scratch("second-time");
    env.write(
        "baton.toml",
        &bash_plan(&format!(
            "\n[[task]]\nid = \"flaky\"\nprompt = \"if [ -e {m} ]; then echo ok > flaky.txt; else touch {m}; exit 3; fi\"\n",
            m = marker.display()
        )),
    );
    env.commit_all("plan");
    assert_eq!(run_json(&env, &[]).code, 1);

    let term = Term::start(&env, "", &[]);
    term.wait_until("flaky shown failed", |s| {
        s.lines()
            .any(|l| l.contains("flaky") && l.contains("failed"))
    });
    term.keys(&["r"]);
    term.wait("retrying flaky");
    term.wait_until("flaky shown succeeded", |s| {
        s.lines()
            .any(|l| l.contains("flaky") && l.contains("succeeded"))
    });
    wait_for("the retry's run to end", 20, || {
        latest_run_opt(&env).is_some_and(|r| r["status"] == "succeeded")
    });
    let report = latest_run_opt(&env).unwrap();
    assert_eq!(task(&report, "flaky")["merged"], true, "{report:#}");
    term.keys(&["q"]);
    assert_eq!(term.after_exit().0, "0");
}

#[test]
fn the_inbox_in_watch_answers_a_question_with_one_key_and_another_by_typing() {
    let env = TestEnv::new();
    let b = baton_bin();
    env.write(
        "baton.toml",
        &bash_plan(&format!(
            "\n[[task]]\nid = \"pick\"\nprompt = '''c=$({b:?} ask 'Which colour?' --option red --option blue); echo \"$c\" > colour.txt'''\n\n[[task]]\nid = \"name\"\nprompt = '''n=$({b:?} ask 'Name it?'); echo \"$n\" > name.txt'''\n"
        )),
    );
    env.commit_all("plan");
    let run = spawn_baton(&env, &["run", "--json"]);
    // watch needs the run in the store (a loaded machine starts it late).
    wait_for("the run to be stored", 20, || {
        latest_run_opt(&env).is_some()
    });
    let term = Term::start(&env, "", &[]);
    term.wait("2 need you (i)");
    term.keys(&["i"]);
    let screen = term.wait("inbox: 2 need you");
    assert!(
        screen.contains("Which colour?") && screen.contains("Name it?"),
        "{screen}"
    );
    // The two asked at once: the colour question is first or second.
    if !term.screen().contains("1  red") {
        term.keys(&["Down"]);
    }
    term.wait("1  red");
    term.keys(&["2"]);
    term.wait("inbox: 1 need you");
    term.keys(&["Enter"]);
    term.wait("answer ");
    term.text("Aurora");
    term.keys(&["Enter"]);
    term.wait("nothing needs you");
    let out = run.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let branch = |t: &str| task(&report, t)["branch"].as_str().unwrap().to_string();
    assert_eq!(
        show(&env, &branch("pick"), "colour.txt").as_deref(),
        Some("blue\n")
    );
    assert_eq!(
        show(&env, &branch("name"), "name.txt").as_deref(),
        Some("Aurora\n")
    );
    term.keys(&["q"]);
}

#[test]
fn a_review_comment_is_made_on_a_diff_line_in_watch_and_sent() {
    let env = TestEnv::new();
    let script = r#"if [ -n "$BATON_FEEDBACK" ]; then printf '%s' "$BATON_FEEDBACK" > review.txt; sed -i '2s/.*/two fixed/' notes.txt; else printf 'one\ntwo\nthree\n' > notes.txt; fi"#;
    env.write(
        "baton.toml",
        &bash_plan(&format!(
            "\n[[task]]\nid = \"w\"\napprove = true\nprompt = '''{script}'''\n"
        )),
    );
    env.commit_all("plan");
    let run = spawn_baton(&env, &["run", "--json"]);
    wait_for_task(&env, "w", "awaiting_approval");
    let term = Term::start(&env, "", &[]);
    term.wait("transcript of w");
    term.keys(&["Tab"]);
    term.wait("+two");
    term.keys(&["c"]);
    term.wait("the line to comment on");
    term.keys(&["Down", "Enter"]);
    term.wait("comment notes.txt:2>");
    term.text("fix two");
    term.keys(&["Enter"]);
    term.wait("kept; S sends the review");
    term.keys(&["S"]);
    term.wait_until("the review's attempt", |_| {
        store_rows(&env, "SELECT attempts FROM tasks WHERE id = 'w'").concat() == "2"
    });
    wait_for_task(&env, "w", "awaiting_approval");
    let out = output(baton(&env).args(["approve", "w"]));
    assert!(out.status.success());
    let out = run.wait_with_output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got = task_show(&env, &report, "w", "review.txt").unwrap();
    assert!(
        got.contains("1. notes.txt line 2:") && got.contains("fix two"),
        "{got}"
    );
    term.keys(&["q"]);
}
