//! Agents ask a person: `baton ask` from a script (which waits), the door
//! an agent with the `ask` tool uses (its turn ends and the task waits with
//! no process and no slot), answers from `baton answer`, timeouts with and
//! without a default, and a kill -9 while a task waits.

use crate::common::*;
use baton_testutils::TestEnv;
use std::process::Child;

fn baton_path() -> String {
    baton_bin().to_string()
}

/// `baton inbox --json`.
fn inbox(env: &TestEnv) -> Vec<serde_json::Value> {
    let out = output(baton(env).args(["inbox", "--json"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("inbox JSON")
}

/// The id of the one open question in the inbox, once there is one.
fn open_question(env: &TestEnv) -> String {
    let mut id = String::new();
    wait_for("a question in the inbox", 30, || {
        let items = inbox(env);
        let q = items.iter().find(|i| i["kind"] == "question");
        id = q.map(|q| q["id"].to_string()).unwrap_or_default();
        !id.is_empty()
    });
    id
}

fn finish(child: Child) -> RunOutput {
    parse_run(child.wait_with_output().expect("baton run"))
}

#[test]
fn a_script_asks_waits_for_the_answer_and_a_wrong_answer_changes_nothing() {
    let env = TestEnv::new();
    let script = format!(
        "c=$({:?} ask 'Which colour?' --option red --option blue); echo \"$c\" > colour.txt",
        baton_path()
    );
    env.write(
        "baton.toml",
        &bash_plan(&format!(
            "\n[[task]]\nid = \"pick\"\nprompt = '''{script}'''\n"
        )),
    );
    env.commit_all("plan");
    let child = spawn_baton(&env, &["run", "--json"]);
    let id = open_question(&env);
    // While the script waits, its task says so.
    wait_for("the waiting activity", 20, || {
        store_rows(&env, "SELECT activity FROM tasks WHERE id = 'pick'").concat()
            == "waiting_answer"
    });
    let out = output(baton(&env).args(["answer", &id, "green"]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("answer one of: red, blue"), "{err}");
    let out = output(baton(&env).args(["answer", "999999", "red"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no question 999999"));
    let out = output(baton(&env).args(["answer", &id, "BLUE"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = output(baton(&env).args(["answer", &id, "red"]));
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("answered already: blue"));
    let r = finish(child);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    assert_eq!(
        task_show(&env, &r.report, "pick", "colour.txt").as_deref(),
        Some("blue\n")
    );
    // One attempt: the script waited; the answer was its, not a new attempt's.
    assert_eq!(task(&r.report, "pick")["attempts"], 1);
    let events = store_rows(
        &env,
        "SELECT kind FROM events WHERE kind LIKE 'question_%' ORDER BY seq",
    );
    assert_eq!(events, ["question_asked", "question_answered"]);
}

#[test]
fn a_timeout_gives_the_default_or_fails_the_task_with_the_question() {
    let env = TestEnv::new();
    let b = baton_path();
    let body = format!(
        "\n[[task]]\nid = \"dflt\"\nprompt = '''c=$({b:?} ask 'Ship it?' --option yes --option no --timeout 1s --default no); echo \"$c\" > answer.txt'''\n\n[[task]]\nid = \"silent\"\nprompt = '''{b:?} ask 'Anyone there?' --timeout 1s > answer.txt'''\n"
    );
    env.write("baton.toml", &bash_plan(&body));
    env.commit_all("plan");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1, "{}\n{:#}", r.stderr, r.report);
    let d = task(&r.report, "dflt");
    assert_eq!(d["status"], "succeeded", "{d:#}");
    let branch = d["branch"].as_str().unwrap().to_string();
    assert_eq!(show(&env, &branch, "answer.txt").as_deref(), Some("no\n"));
    let s = task(&r.report, "silent");
    assert_eq!(s["status"], "failed", "{s:#}");
    assert_eq!(s["reason"], "no answer to: Anyone there?", "{s:#}");
    let by = store_rows(&env, "SELECT answered_by FROM questions ORDER BY task_id");
    assert_eq!(by, ["default", "expired"]);
    // A bad question is refused before anyone sees it.
    let out = output(
        baton(&env)
            .env("BATON_ASK_SOCKET", env.scratch("nobody.sock"))
            .args([
                "ask",
                "q",
                "--option",
                "a",
                "--timeout",
                "1m",
                "--default",
                "b",
            ]),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not one of the options"));
    let out = output(
        baton(&env)
            .env_remove("BATON_ASK_SOCKET")
            .args(["ask", "q"]),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("inside a task baton runs"));
}

#[test]
fn an_agent_that_asks_ends_its_turn_waits_without_a_slot_and_survives_kill_9() {
    let env = TestEnv::new();
    let plan = asker_plan("\n[run]\nmax_parallel = 1\n");
    env.write(
        "baton.toml",
        &format!("{plan}\n[[task]]\nid = \"other\"\nprompt = \"echo done > other.txt\"\n"),
    );
    env.commit_all("plan");
    let mut child = spawn_baton(&env, &["run", "--json"]);
    let id = open_question(&env);
    // The waiting task holds no slot: the other task ran (max_parallel = 1).
    wait_for_task(&env, "other", "succeeded");
    let row = store_rows(
        &env,
        "SELECT status || ' ' || activity FROM tasks WHERE id = 'ask'",
    );
    assert_eq!(row, ["pending waiting_answer"]);
    let attempt = store_rows(&env, "SELECT status FROM attempts WHERE task_id = 'ask'");
    assert_eq!(attempt, ["asked"]);
    let status = output(baton(&env).arg("status"));
    let said = String::from_utf8_lossy(&status.stdout);
    assert!(said.contains("waiting: answer"), "{said}");
    // The run does not end while a question waits.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended with a question open"
    );
    // baton dies; the answer is kept, and resume goes on with it.
    child.kill().unwrap();
    child.wait().unwrap();
    let out = output(baton(&env).args(["answer", &id, "red"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("baton resume"));
    let r = parse_run(output(baton(&env).args(["resume", "--json"])));
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let t = task(&r.report, "ask");
    assert_eq!(t["attempts"], 2, "{t:#}");
    let branch = t["branch"].as_str().unwrap().to_string();
    assert_eq!(show(&env, &branch, "colour.txt").as_deref(), Some("red\n"));
}

#[test]
fn a_question_answered_while_baton_runs_starts_the_waiting_task_again() {
    let env = TestEnv::new();
    env.write("baton.toml", &asker_plan(""));
    env.commit_all("plan");
    let child = spawn_baton(&env, &["run", "--json"]);
    let id = open_question(&env);
    wait_waiting(&env, "ask", 20);
    let out = output(baton(&env).args(["answer", &id, "blue"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("goes on with the answer"));
    let r = finish(child);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    assert_eq!(
        task_show(&env, &r.report, "ask", "colour.txt").as_deref(),
        Some("blue\n")
    );
}

/// A real agent CLI calls its `ask` tool (named `tool` in its requests),
/// ends its turn, and the task waits; answered from the CLI, the agent's
/// session goes on with the answer and the task succeeds.
fn a_real_agent_asks_and_goes_on_in_its_session(agent: &str, tool: &str) {
    use crate::test_real_agents::{bins, profile_with};
    use baton_testutils::model_server::{ModelServer, Scripts, Step};
    let Some(bins) = bins(&[agent]) else { return };
    let server = ModelServer::start(Scripts::new().script(
        "ask",
        vec![
            // The CLI connects its MCP servers while it starts; on a busy
            // machine the tool may join the second request, not the first.
            Step::run("sleep 1"),
            Step::call(
                tool,
                serde_json::json!({"question": "Which colour?", "options": ["red", "blue"]}),
            ),
            Step::say("I asked which colour; waiting for the answer."),
            Step::write("colour.txt", "blue\n"),
            Step::say("wrote the colour"),
        ],
    ));
    let env = TestEnv::new();
    let plan = format!(
        "{}[[task]]\nid = \"t\"\nagent = \"{agent}\"\nprompt = \"Pick a colour. [[script:ask]]\"\ngates = [\"grep -q blue colour.txt\"]\ntimeout = \"4m\"\n",
        profile_with(&env, agent, &bins[0], &server, &[], "")
    );
    env.write("baton.toml", &plan);
    let child = spawn_baton(&env, &["run", "--json"]);
    let id = {
        let mut id = String::new();
        wait_for("the agent's question", 120, || {
            id = store_rows(&env, "SELECT id FROM questions WHERE answered_at IS NULL").concat();
            !id.is_empty()
        });
        id
    };
    wait_waiting(&env, "t", 60);
    let q = store_rows(&env, "SELECT text || ' ' || options FROM questions");
    assert_eq!(q, [r#"Which colour? ["red","blue"]"#]);
    // The tool told the model to end its turn.
    assert!(server
        .requests()
        .iter()
        .any(|r| r.body.to_string().contains("End your turn now")));
    let out = output(baton(&env).args(["answer", &id, "blue"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = parse_run(child.wait_with_output().unwrap());
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let t = task(&r.report, "t");
    assert_eq!(t["result"], "wrote the colour");
    assert_eq!(t["attempts"], 2, "{t:#}");
    // The answer went to the same session as a new turn.
    let answered = server.requests().iter().any(|r| {
        let body = r.body.to_string();
        body.contains("is: blue") && body.contains("Which colour?")
    });
    assert!(
        answered,
        "the answer reached the model in the agent's session"
    );
    let sessions = store_rows(
        &env,
        "SELECT DISTINCT session_id FROM attempts WHERE task_id = 't' AND session_id IS NOT NULL",
    );
    assert_eq!(
        sessions.len(),
        1,
        "one session across both attempts: {sessions:?}"
    );
}

#[test]
fn claude_code_asks_ends_its_turn_and_goes_on_with_the_answer() {
    a_real_agent_asks_and_goes_on_in_its_session("claude", "mcp__baton__ask");
}

#[test]
fn the_inbox_lists_questions_approvals_and_failures_and_acts_on_their_ids() {
    let env = TestEnv::new();
    let b = baton_path();
    let body = format!(
        "\n[[task]]\nid = \"ship\"\napprove = true\nprompt = \"echo v1 > release.txt\"\n\n[[task]]\nid = \"broken\"\nprompt = \"exit 3\"\n\n[[task]]\nid = \"ask\"\nprompt = '''c=$({b:?} ask 'Which region?' --option eu --option us --timeout 10m --default eu); echo \"$c\" > region.txt'''\n"
    );
    env.write("baton.toml", &bash_plan(&body));
    env.commit_all("plan");
    let out = output(baton(&env).arg("inbox"));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "nothing needs you\n");
    let child = spawn_baton(&env, &["run", "--json"]);
    let mut items = Vec::new();
    wait_for("three items", 30, || {
        items = inbox(&env);
        items.len() == 3
    });
    let by_kind = |k: &str| {
        items
            .iter()
            .find(|i| i["kind"] == k)
            .unwrap_or_else(|| panic!("no {k}: {items:#?}"))
            .clone()
    };
    let q = by_kind("question");
    assert_eq!(q["task"], "ask");
    assert_eq!(q["text"], "Which region?");
    assert_eq!(q["options"], serde_json::json!(["eu", "us"]));
    assert_eq!(q["default"], "eu");
    assert_eq!(q["actions"], serde_json::json!(["answer", "stop"]));
    let a = by_kind("approval");
    assert_eq!(a["task"], "ship");
    assert_eq!(a["actions"], serde_json::json!(["approve", "stop"]));
    let f = by_kind("failed");
    assert_eq!(f["task"], "broken");
    assert_eq!(f["actions"], serde_json::json!(["retry"]));
    for i in &items {
        let run = i["run"].as_str().unwrap();
        assert!(!run.is_empty() && i["since"].as_i64().unwrap() > 0, "{i:#}");
    }
    // The text form says how to act on each.
    let out = output(baton(&env).arg("inbox"));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("baton answer {} TEXT", q["id"])),
        "{said}"
    );
    assert!(
        said.contains(&format!("baton approve {}", a["id"])),
        "{said}"
    );
    assert!(said.contains("options: eu | us (default: eu)"), "{said}");
    // Acting on ids.
    let out = output(baton(&env).args(["approve", &a["id"].to_string()]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = output(baton(&env).args(["answer", &q["id"].to_string(), "us"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = finish(child);
    assert_eq!(r.code, 1, "{}\n{:#}", r.stderr, r.report);
    assert_eq!(task(&r.report, "ship")["merged"], true);
    assert_eq!(
        task_show(&env, &r.report, "ask", "region.txt").as_deref(),
        Some("us\n")
    );
    // What is left is the failure, until it is retried.
    let left = inbox(&env);
    assert_eq!(left.len(), 1, "{left:#?}");
    assert_eq!(left[0]["kind"], "failed");
    assert_eq!(left[0]["id"], f["id"]);
}

#[test]
fn an_asker_that_goes_away_leaves_its_task_waiting_and_the_answer_still_reaches_it() {
    let env = TestEnv::new();
    let b = baton_path();
    // The script's `baton ask` is cut off (as a CLI's shell tool times out)
    // and the script ends: the task waits; the answer comes with its next
    // attempt's messages.
    let script = format!(
        "if [ -n \"$BATON_MESSAGES\" ]; then printf '%s\\n' \"$BATON_MESSAGES\" > got.txt; exit 0; fi; timeout 1 {b:?} ask 'Which colour?' || true"
    );
    env.write(
        "baton.toml",
        &bash_plan(&format!(
            "\n[[task]]\nid = \"t\"\nprompt = '''{script}'''\n"
        )),
    );
    env.commit_all("plan");
    let child = spawn_baton(&env, &["run", "--json"]);
    let id = open_question(&env);
    wait_waiting(&env, "t", 20);
    let out = output(baton(&env).args(["answer", &id, "teal"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = finish(child);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let got = task_show(&env, &r.report, "t", "got.txt").unwrap();
    assert!(got.contains("\"Which colour?\" is: teal"), "{got}");
}

#[test]
fn a_waiting_task_stopped_closes_its_question() {
    let env = TestEnv::new();
    env.write("baton.toml", &asker_plan(""));
    env.commit_all("plan");
    let child = spawn_baton(&env, &["run", "--json"]);
    let id = open_question(&env);
    wait_waiting(&env, "ask", 20);
    let out = output(baton(&env).args(["stop", "ask"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = finish(child);
    assert_eq!(task(&r.report, "ask")["status"], "stopped");
    assert!(inbox(&env).is_empty(), "{:#?}", inbox(&env));
    let out = output(baton(&env).args(["answer", &id, "red"]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("closed") || err.contains("has already ended"),
        "{err}"
    );
}

#[test]
fn codex_asks_ends_its_turn_and_goes_on_with_the_answer() {
    // Codex declares MCP tools in a namespace behind its tool search; the
    // scripted model calls `ask` there as a model would.
    a_real_agent_asks_and_goes_on_in_its_session("codex", "mcp__baton__ask");
}

#[test]
fn an_agent_cannot_flood_people_with_questions() {
    let env = TestEnv::new();
    // 31 questions through the door, none waiting; each answer line kept.
    let flood = r#"python3 - > said.txt <<'PY'
import json, os, socket
for i in range(31):
    door = socket.socket(socket.AF_UNIX)
    door.connect(os.environ["BATON_ASK_SOCKET"])
    door.sendall((json.dumps({"question": "q%d?" % i}) + "\n").encode())
    print(door.makefile().readline().strip())
PY"#;
    env.write(
        "baton.toml",
        &bash_plan(&format!(
            "\n[[task]]\nid = \"loud\"\nprompt = '''{flood}'''\n"
        )),
    );
    env.commit_all("plan");
    let child = spawn_baton(&env, &["run", "--json"]);
    // It asked and ended its turn: it waits, with 30 questions, not 31.
    wait_waiting(&env, "loud", 30);
    assert_eq!(inbox(&env).len(), 30);
    let out = output(baton(&env).args(["stop", "loud"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = finish(child);
    assert_eq!(
        task(&r.report, "loud")["status"],
        "stopped",
        "{:#}",
        r.report
    );
    let said = task_show(&env, &r.report, "loud", "said.txt").unwrap();
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.len(), 31, "{said}");
    assert!(
        lines[..30].iter().all(|l| l.starts_with(r#"{"asked""#)),
        "{said}"
    );
    assert!(
        lines[30].contains("asked 30 questions in this run, the most one task may"),
        "{said}"
    );
    assert_eq!(store_rows(&env, "SELECT COUNT(*) FROM questions"), ["30"]);
    // The task ended: its questions went with it.
    assert!(inbox(&env).is_empty());
}
