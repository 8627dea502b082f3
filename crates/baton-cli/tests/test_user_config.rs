//! The user config (`~/.config/baton/config.toml`): profiles, defaults,
//! prices and notify every plan sees; a plan's own win; `check` says where
//! each came from; its secrets are masked as a plan's; a resumed run keeps
//! the profiles it started with; `baton init --user` writes one.

use crate::common::*;
use crate::test_serve::serve;
use baton_testutils::TestEnv;

const SECRET: &str = "tok-user-config-secret-7788";

/// Writes the user config where baton looks for it ($HOME/.config/...).
fn write_user(env: &TestEnv, text: &str) -> std::path::PathBuf {
    let path = env.root().join(".config/baton/config.toml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

fn user_text() -> String {
    format!(
        "[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\nenv = {{ SERVICE_TOKEN = \"{SECRET}\" }}\n\n[agent.other]\nadapter = \"exec\"\ncommand = [\"false\"]\n\n[defaults]\nagent = \"sh\"\nretries = 1\n"
    )
}

#[test]
fn a_plan_runs_on_the_users_profiles_its_own_win_and_check_says_where_each_came_from() {
    let env = TestEnv::new();
    let path = write_user(&env, &user_text());
    env.write(
        "baton.toml",
        "[agent.other]\nadapter = \"exec\"\ncommand = [\"bash\", \"-euc\"]\n\n[[task]]\nid = \"a\"\nprompt = \"echo \\\"token=$SERVICE_TOKEN\\\"; echo a > a.txt\"\n\n[[task]]\nid = \"b\"\nagent = \"other\"\nprompt = \"echo b > b.txt\"\n",
    );
    env.commit_all("plan");
    let stdout = check_ok(&env);
    assert!(stdout.contains("  a [sh]"), "{stdout}");
    let lines: Vec<&str> = stdout.lines().skip_while(|l| *l != "profiles:").collect();
    assert_eq!(
        lines,
        [
            "profiles:".to_string(),
            "  other  from the plan (in place of the user config's)".into(),
            format!("  sh     from the user config {}", path.display()),
        ],
        "{stdout}"
    );
    let r = parse_run(output(baton(&env).args(["run", "--json"])));
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    assert_eq!(task(&r.report, "a")["merged"], true);
    assert_eq!(
        task(&r.report, "b")["merged"],
        true,
        "the plan's `other` ran, not the user's `false`"
    );
    // The secret reached the agent, and nothing baton wrote.
    let logs = output(baton(&env).args(["logs", "a"]));
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(logs.contains("token=[REDACTED]"), "{logs}");
    assert!(!r.stderr.contains(SECRET) && !r.report.to_string().contains(SECRET));
    assert_nowhere_in_state(&env, SECRET);
    // The run keeps the profiles it ran with: its stored plan names the user's.
    let source = store_rows(&env, "SELECT plan_source FROM runs").concat();
    assert!(source.contains("user.agent.\"sh\""), "{source}");
}

/// A plan of a, then b (after a): killed once a has merged.
fn crash_after_a(env: &TestEnv) {
    env.write(
        "baton.toml",
        "[[task]]\nid = \"a\"\nprompt = \"echo a > a.txt\"\n\n[[task]]\nid = \"b\"\nneeds = [\"a\"]\nprompt = \"echo b > b.txt\"\n",
    );
    env.commit_all("plan");
    crash_at(env, "merged");
}

#[test]
fn a_resumed_run_goes_on_with_the_profiles_it_started_with() {
    let env = TestEnv::new();
    // No secret in it: the store keeps the user's profiles whole.
    let text = "[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\n\n[defaults]\nagent = \"sh\"\n";
    write_user(&env, text);
    crash_after_a(&env);
    // The user changes the profile meanwhile: this run goes on as it began.
    write_user(&env, &text.replace("[\"bash\", \"-ec\"]", "[\"false\"]"));
    let r = parse_run(output(baton(&env).args(["resume", "--json"])));
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    assert!(
        r.stderr.contains("the user config has changed since run"),
        "{}",
        r.stderr
    );
    assert_eq!(task(&r.report, "b")["merged"], true);
    // A new run reads the user config as it is now.
    let r = parse_run(output(baton(&env).args(["run", "--json"])));
    assert_eq!(task(&r.report, "a")["status"], "failed", "{:#}", r.report);
}

#[test]
fn a_secret_the_store_masked_stops_a_resume_after_the_user_config_changed() {
    let env = TestEnv::new();
    write_user(&env, &user_text());
    crash_after_a(&env);
    write_user(&env, &user_text().replace("retries = 1", "retries = 2"));
    let out = output(baton(&env).args(["resume"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("or the user config it was read with) has changed"),
        "{stderr}"
    );
    // Put back, it resumes.
    write_user(&env, &user_text());
    let r = parse_run(output(baton(&env).args(["resume", "--json"])));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_nowhere_in_state(&env, SECRET);
}

#[test]
fn a_broken_user_config_is_refused_with_its_place_and_baton_config_chooses_another() {
    let env = TestEnv::new();
    write_plan(&env, "[[task]]\nid = \"a\"\nprompt = \"say x\"\n");
    env.commit_all("plan");
    let path = write_user(&env, "[agent.x]\nadapter = \"nope\"\n");
    for cmd in ["check", "run"] {
        let out = output(baton(&env).arg(cmd));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {stderr}");
        let place = format!("{}:2:11: agent \"x\": unknown adapter", path.display());
        assert!(stderr.contains(&place), "{cmd}: {stderr}");
    }
    assert!(!env.repo.join(".git/baton").exists(), "nothing is made");
    write_user(&env, "[run]\nmax_parallel = 9\n");
    let out = output(baton(&env).arg("check"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("config.toml:1:2: unknown field `run`"),
        "{stderr}"
    );
    assert!(stderr.contains("the rest belongs in a plan"), "{stderr}");
    // BATON_CONFIG names another file; empty, none at all.
    let out = output(baton(&env).arg("check").env("BATON_CONFIG", ""));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other = env.scratch("other.toml");
    std::fs::write(&other, "[prices.\"m\"]\ninput = -1\noutput = 1\n").unwrap();
    let out = output(baton(&env).arg("check").env("BATON_CONFIG", &other));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("other.toml:1:1: prices \"m\""), "{stderr}");
    // A plan may not write the user's keys itself.
    env.write(
        "baton.toml",
        "user.agent.z = { adapter = \"exec\", command = [\"sh\"] }\n[[task]]\nid = \"a\"\nprompt = \"x\"\nagent = \"z\"\n",
    );
    let out = output(baton(&env).arg("check").env("BATON_CONFIG", ""));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`user` is baton's"), "{stderr}");
}

#[test]
fn init_user_writes_a_config_once_that_plans_then_use() {
    let env = TestEnv::new();
    let xdg = env.scratch("xdg");
    let out = output(
        baton(&env)
            .args(["init", "--user"])
            .env("XDG_CONFIG_HOME", &xdg)
            .env("PATH", "/usr/bin:/bin"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = xdg.join("baton/config.toml");
    assert!(
        stdout.contains(&format!("wrote {}", path.display())),
        "{stdout}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("# [notify]"), "{text}");
    // Profiles added by hand are seen by a plan that has none.
    std::fs::write(
        &path,
        format!("{text}\n[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\n"),
    )
    .unwrap();
    env.write(
        "baton.toml",
        "[[task]]\nid = \"a\"\nagent = \"sh\"\nprompt = \"echo a > a.txt\"\n",
    );
    env.commit_all("plan");
    let r = parse_run(output(
        baton(&env)
            .args(["run", "--json"])
            .env("XDG_CONFIG_HOME", &xdg),
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let again = output(
        baton(&env)
            .args(["init", "--user"])
            .env("XDG_CONFIG_HOME", &xdg),
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwrites"));
}

#[test]
fn a_server_queues_tasks_to_the_users_profiles() {
    let env = TestEnv::new();
    write_user(&env, &user_text());
    env.write("baton.toml", "[run]\nmax_parallel = 2\n");
    env.commit_all("plan");
    let srv = serve(&env, "127.0.0.1:0");
    let out = output(baton(&env).args(["add", "echo \"t=${SERVICE_TOKEN:0:8}\" > t.txt"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the queued task to succeed", 30, || {
        store_rows(
            &env,
            "SELECT status FROM tasks WHERE run_id IN (SELECT id FROM runs WHERE kind = 'service')",
        ) == ["succeeded"]
    });
    // The token reached the agent (its first 8 characters are in the work
    // it committed; the whole would be a secret in the worktree).
    let branch = store_rows(&env, "SELECT branch FROM tasks").concat();
    assert_eq!(
        show(&env, &branch, "t.txt").as_deref(),
        Some(format!("t={}\n", &SECRET[..8]).as_str())
    );
    drop(srv);
    assert_nowhere_in_state(&env, SECRET);
}

/// docs/user-config.md's user config and plan check together, and `check`
/// prints the profiles as the page shows them.
#[test]
fn the_user_config_in_the_docs_works_with_its_plan() {
    let page = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/user-config.md");
    let text = std::fs::read_to_string(page).unwrap();
    let blocks: Vec<&str> = text
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    let env = TestEnv::new();
    let path = write_user(&env, blocks[0]);
    env.write("baton.toml", blocks[1]);
    let stdout = check_ok(&env);
    assert!(stdout.contains("\nprofiles:\n"), "{stdout}");
    let shown = stdout.replace(&path.display().to_string(), "~/.config/baton/config.toml");
    let page = text.replace(
        "/home/ana/.config/baton/config.toml",
        "~/.config/baton/config.toml",
    );
    for line in shown.lines().skip(1) {
        assert!(page.contains(line), "{line:?} is not on the page:\n{shown}");
    }
}

/// `baton plan` in a repository with no plan: the user config's profiles
/// plan, are named to the planner (never shown: their env holds a secret),
/// and the plan it writes names them without tables, checks and runs.
#[test]
fn a_planner_of_the_users_plans_with_its_profiles_and_never_sees_their_secrets() {
    let env = TestEnv::new();
    let script = env.scratch("planner.py");
    let seen = env.scratch("prompt.txt");
    std::fs::write(
        &script,
        format!(
            r###"import sys
prompt = sys.argv[-1]
open({seen:?}, "w").write(prompt)
out = prompt.split("## Where to write it\n\n", 1)[1].split("\n\n    ", 1)[1].split("\n", 1)[0]
open(out, "w").write('[[task]]\nid = "hello"\nagent = "sh"\nprompt = "echo hi > hello.txt"\n')
print("one task")
"###,
            seen = seen.display().to_string()
        ),
    )
    .unwrap();
    write_user(
        &env,
        &format!(
            "[agent.planner]\nadapter = \"exec\"\ncommand = [\"python3\", {:?}]\nenv = {{ PLANNER_TOKEN = \"{SECRET}\" }}\n\n[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\n\n[defaults]\nagent = \"planner\"\n",
            script.display().to_string()
        ),
    );
    let out = output(baton(&env).args(["plan", "say hi", "-o", "hi.toml"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("  hello [sh]"), "{stdout}");
    let prompt = std::fs::read_to_string(&seen).unwrap();
    assert!(prompt.contains("- `sh`: exec"), "{prompt}");
    assert!(
        !prompt.contains(SECRET) && !prompt.contains("[agent.planner]"),
        "{prompt}"
    );
    let written = std::fs::read_to_string(env.repo.join("hi.toml")).unwrap();
    assert!(!written.contains("[agent."), "{written}");
    assert_nowhere_in_state(&env, SECRET);
    env.commit_all("plan");
    let r = parse_run(output(baton(&env).args(["run", "--json", "hi.toml"])));
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// A user profile the plan replaces is no agent's, but its secret is in
/// the run's stored text all the same: masked there.
#[test]
fn a_secret_of_a_replaced_user_profile_is_masked_too() {
    let env = TestEnv::new();
    write_user(&env, &user_text());
    env.write(
        "baton.toml",
        "[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\n\n[[task]]\nid = \"a\"\nprompt = \"echo a > a.txt\"\n",
    );
    env.commit_all("plan");
    let r = parse_run(output(baton(&env).args(["run", "--json"])));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_nowhere_in_state(&env, SECRET);
    let source = store_rows(&env, "SELECT plan_source FROM runs").concat();
    assert!(
        source.contains("SERVICE_TOKEN = \"[REDACTED]\""),
        "{source}"
    );
}

/// A run started before there was a user config resumes after one came,
/// with the profiles it started with.
#[test]
fn a_run_from_before_the_user_config_resumes_after_it_came() {
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        &bash_plan("\n[[task]]\nid = \"a\"\nprompt = \"echo a > a.txt\"\n\n[[task]]\nid = \"b\"\nneeds = [\"a\"]\nprompt = \"echo b > b.txt\"\n"),
    );
    env.commit_all("plan");
    crash_at(&env, "merged");
    write_user(&env, "[defaults]\nretries = 3\n");
    let r = parse_run(output(baton(&env).args(["resume", "--json"])));
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    assert!(
        r.stderr.contains("the user config has changed since run"),
        "{}",
        r.stderr
    );
    assert_eq!(task(&r.report, "b")["merged"], true);
}

/// `baton check`'s output, once it has passed.
fn check_ok(env: &TestEnv) -> String {
    let out = output(baton(env).arg("check"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
