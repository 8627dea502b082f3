//! `baton plan`: a planner agent writes the plan, baton checks it (errors go
//! back to the planner), writes it, and runs it when asked.

use crate::common::*;
use crate::test_serve::{http_get, http_post, serve};
use baton_testutils::ntfy::Ntfy;
use baton_testutils::TestEnv;
use serde_json::{json, Value};

/// A planner (an `exec` agent) whose first draft names a task that does not
/// exist; from the second attempt on it writes a valid two-task plan. It
/// records what it was given.
fn planner_plan(env: &TestEnv) {
    planner_plan_with(env, "");
}

/// [`planner_plan`] with `more` (tables) before its profiles.
fn planner_plan_with(env: &TestEnv, more: &str) {
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
            "{more}[agent.planner]\nadapter = \"exec\"\ncommand = [\"python3\", {:?}]\n\n[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\n\n[defaults]\nagent = \"planner\"\n\n[[task]]\nid = \"unused\"\nprompt = \"x\"\n",
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

/// Has the server's planner propose a plan for `goal`; its run, once the
/// plan is ready.
fn propose(srv: &crate::test_serve::Server, goal: &str) -> String {
    let body = serde_json::json!({ "goal": goal }).to_string();
    let (status, said) = http_post(&srv.url, "/api/plans", &body, Some(&token()));
    assert_eq!(status, 201, "{said}");
    let run = json_body(&said)["run"].as_str().unwrap().to_string();
    let path = format!("/api/plans/{run}");
    wait_for("the planner's plan", 60, || {
        let p = json_body(&http_get(&srv.url, &path, Some(&token())).1);
        assert_ne!(p["status"], "failed", "{p:#}");
        p["status"] == "ready"
    });
    run
}

fn token() -> String {
    baton_core::access::local_token().unwrap()
}

fn json_body(text: &str) -> Value {
    let body = text.split("\r\n\r\n").nth(1).unwrap_or(text);
    serde_json::from_str(body).unwrap_or(Value::Null)
}

fn inbox(env: &TestEnv) -> Vec<Value> {
    let out = output(baton(env).args(["inbox", "--json"]));
    assert_eq!(out.status.code(), Some(0));
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

fn run_status(env: &TestEnv, run: &str) -> String {
    store_rows(env, &format!("SELECT status FROM runs WHERE id = '{run}'")).concat()
}

#[test]
fn a_planned_goal_waits_in_the_inbox_and_a_phone_runs_it_once() {
    let ntfy = Ntfy::start(None);
    let env = TestEnv::new();
    planner_plan_with(
        &env,
        &format!("[notify]\nntfy = {:?}\n\n", ntfy.topic_url("plans")),
    );
    let srv = serve(&env, "127.0.0.1:0");
    let planner = propose(&srv, "split the greeting");

    let items = inbox(&env);
    assert_eq!(items.len(), 1, "{items:#?}");
    let item = &items[0];
    assert_eq!(
        (&item["kind"], &item["run"], &item["task"], &item["actions"]),
        (
            &json!("plan"),
            &json!(planner),
            &Value::Null,
            &json!(["approve", "discard"])
        )
    );
    let text = item["text"].as_str().unwrap();
    assert!(
        text.contains("\"split the greeting\"") && text.contains("two tasks: hello, then bye"),
        "{text}"
    );

    // The phone is told, with a button for yes and one for no.
    let told = || {
        ntfy.messages()
            .into_iter()
            .find(|m| m["tags"] == json!(["plan"]))
    };
    wait_for("the plan on ntfy", 30, || told().is_some());
    let m = told().unwrap();
    let labels: Vec<&str> = m["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["Run it", "Discard"], "{m:#}");
    assert!(
        m["click"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/?proposal={planner}")),
        "{m:#}"
    );
    let link = |n: usize| {
        let url = m["actions"][n]["url"].as_str().unwrap();
        url[url.find("/api/act/").unwrap()..].to_string()
    };

    // A tap whose action fails (the plan's file is gone) does nothing and
    // leaves the link working.
    let plans = env.repo.join(".git/baton/plans");
    let file = std::fs::read_dir(&plans)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| !p.to_string_lossy().ends_with("-proposal.toml"))
        .unwrap();
    let aside = env.scratch("plan-aside.toml");
    std::fs::rename(&file, &aside).unwrap();
    let (status, said) = http_post(&srv.url, &link(0), "", None);
    assert_eq!(status, 400, "{said}");
    assert!(said.contains("cannot run"), "{said}");
    assert_eq!(store_rows(&env, "SELECT COUNT(*) FROM runs"), ["1"]);
    std::fs::rename(&aside, &file).unwrap();

    // The tap starts the plan as a run, once.
    let (status, said) = http_post(&srv.url, &link(0), "", None);
    assert_eq!(status, 200, "{said}");
    let message = json_body(&said)["message"].as_str().unwrap().to_string();
    let run = message
        .strip_prefix("run ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("{message}"))
        .to_string();
    wait_for("the planned run", 60, || {
        run_status(&env, &run) == "succeeded"
    });
    let tasks = store_rows(
        &env,
        &format!("SELECT id FROM tasks WHERE run_id = '{run}' ORDER BY id"),
    );
    assert_eq!(tasks, ["bye", "hello"]);
    assert!(inbox(&env).is_empty());
    let p = json_body(&http_get(&srv.url, &format!("/api/plans/{planner}"), Some(&token())).1);
    assert_eq!(
        p["decided"],
        json!({ "decision": "approved", "run": run }),
        "{p:#}"
    );

    // Neither a second tap, the other button, nor the dashboard's Run
    // starts anything more.
    assert_eq!(http_post(&srv.url, &link(0), "", None).0, 410);
    assert_eq!(http_post(&srv.url, &link(1), "", None).0, 410);
    let again = json!({ "proposal": planner }).to_string();
    let (status, said) = http_post(&srv.url, "/api/runs", &again, Some(&token()));
    assert_eq!(status, 409, "{said}");
    assert!(
        said.contains(&format!("approved already (run {run})")),
        "{said}"
    );
    let runs = store_rows(&env, "SELECT COUNT(*) FROM runs");
    assert_eq!(runs, ["2"], "the planner's run and the one it became");
}

#[test]
fn approve_and_discard_say_yes_and_no_to_plans_with_a_server_or_without() {
    let env = TestEnv::new();
    planner_plan(&env);
    let srv = serve(&env, "127.0.0.1:0");
    let (first, second, third) = (
        propose(&srv, "split the greeting"),
        propose(&srv, "split the greeting again"),
        propose(&srv, "split the greeting once more"),
    );
    let items = inbox(&env);
    let id_of = |run: &str| {
        items
            .iter()
            .find(|i| i["run"] == run)
            .map(|i| i["id"].as_i64().unwrap().to_string())
            .unwrap()
    };
    let (yes, no, later) = (id_of(&first), id_of(&second), id_of(&third));

    // No: the plan leaves the inbox; a second no is refused, saying why.
    let out = output(baton(&env).args(["discard", &no]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains(&format!("the plan of run {second} was discarded")));
    let out = output(baton(&env).args(["discard", &no]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains(&format!("no plan in `baton inbox` has id \"{no}\"")));
    let (status, said) = http_post(
        &srv.url,
        &format!("/api/plans/{second}/discard"),
        "{}",
        Some(&token()),
    );
    assert_eq!(status, 409, "{said}");
    assert!(said.contains("discarded already"), "{said}");
    // Nor is an item that is no plan, or a number that names nothing.
    let yes_n: i64 = yes.parse().unwrap();
    for not_a_plan in ["plan".to_string(), (yes_n + 100_000).to_string()] {
        let out = output(baton(&env).args(["discard", &not_a_plan]));
        assert_eq!(out.status.code(), Some(2), "{not_a_plan}");
    }

    // Yes with a server up: the server runs it.
    let out = output(baton(&env).args(["approve", &yes]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("started: the plan of run {first}")),
        "{stdout}"
    );
    let waiting: Vec<String> = inbox(&env)
        .iter()
        .map(|i| i["run"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(waiting, [third.as_str()]);
    drop(srv);

    // `baton plan` hands its plan over as a file: it waits in no inbox.
    let out = output(baton(&env).args(["plan", "split the greeting", "-o", "greet.toml"]));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(inbox(&env).len(), 1);

    // Yes with no server: the plan runs here, and the yes names its run.
    let out = output(baton(&env).args(["approve", &later]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("running the plan of run {third}")),
        "{stderr}"
    );
    let decided = store_rows(
        &env,
        &format!("SELECT data FROM events WHERE run_id = '{third}' AND kind = 'plan_decided'"),
    );
    let decided: Value = serde_json::from_str(&decided.concat()).unwrap();
    assert_eq!(decided["decision"], "approved");
    let became = decided["run"].as_str().unwrap();
    assert_eq!(run_status(&env, became), "succeeded");
    assert!(inbox(&env).is_empty());
}
