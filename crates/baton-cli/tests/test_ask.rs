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

/// The id of the one open question of the store, once there is one.
fn open_question(env: &TestEnv) -> String {
    let mut id = String::new();
    wait_for("a question", 30, || {
        id = store_rows(env, "SELECT id FROM questions WHERE answered_at IS NULL").concat();
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
    let branch = task(&r.report, "pick")["branch"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(show(&env, &branch, "colour.txt").as_deref(), Some("blue\n"));
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
    let by = store_rows(&env, "SELECT answered_by FROM questions ORDER BY id");
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
    let asker = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/asker.py");
    let body = format!(
        "\n[run]\nmax_parallel = 1\n\n[agent.py]\nadapter = \"exec\"\ncommand = [\"python3\", {:?}]\n\n[[task]]\nid = \"ask\"\nagent = \"py\"\nprompt = \"pick a colour\"\n\n[[task]]\nid = \"other\"\nprompt = \"echo done > other.txt\"\n",
        asker.display().to_string()
    );
    env.write("baton.toml", &bash_plan(&body));
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
    let asker = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/asker.py");
    let body = format!(
        "\n[agent.py]\nadapter = \"exec\"\ncommand = [\"python3\", {:?}]\n\n[[task]]\nid = \"ask\"\nagent = \"py\"\nprompt = \"pick a colour\"\n",
        asker.display().to_string()
    );
    env.write("baton.toml", &bash_plan(&body));
    env.commit_all("plan");
    let child = spawn_baton(&env, &["run", "--json"]);
    let id = open_question(&env);
    wait_for("the task to wait", 20, || {
        store_rows(&env, "SELECT activity FROM tasks WHERE id = 'ask'").concat() == "waiting_answer"
    });
    let out = output(baton(&env).args(["answer", &id, "blue"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("goes on with the answer"));
    let r = finish(child);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let branch = task(&r.report, "ask")["branch"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(show(&env, &branch, "colour.txt").as_deref(), Some("blue\n"));
}
