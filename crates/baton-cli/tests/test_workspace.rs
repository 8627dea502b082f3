//! `[workspace]`: setup and teardown, files copied from the checkout, a
//! port block and workspace id per task, and admission by free memory.

use crate::common::*;
use baton_testutils::TestEnv;

#[test]
fn setup_runs_once_per_new_worktree_and_its_output_is_in_the_log() {
    let env = TestEnv::new();
    let count = env.scratch("setups");
    env.write(
        "baton.toml",
        &bash_plan(&format!(
            r#"
[workspace]
setup = ["echo setting-up-$BATON_TASK; echo x >> {count}; mkdir -p node_modules; touch node_modules/ready"]

[[task]]
id = "t"
retries = 1
gates = ["test -e done2"]
prompt = "test -e node_modules/ready; if [ -e done1 ]; then touch done2; else touch done1; fi"
"#,
            count = count.display()
        )),
    );
    env.write(".gitignore", "node_modules/\n");
    env.commit_all("ignore node_modules");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(task(&r.report, "t")["attempts"], 2);
    assert_eq!(
        std::fs::read_to_string(&count).unwrap(),
        "x\n",
        "not run again for the retry"
    );
    let logs =
        String::from_utf8_lossy(&output(baton(&env).args(["logs", "t"])).stdout).into_owned();
    assert!(logs.contains("setting-up-t"), "{logs}");
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(show(&env, integration, "node_modules/ready"), None);
}

#[test]
fn a_failing_setup_fails_the_task_with_the_command_and_its_output() {
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        &bash_plan(
            "[workspace]\nsetup = [\"echo cannot reach the registry >&2; exit 7\"]\n\n[[task]]\nid = \"t\"\nretries = 2\nprompt = \"touch never\"\n",
        ),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let t = task(&r.report, "t");
    assert_eq!(
        (t["status"].as_str(), t["attempts"].as_u64()),
        (Some("failed"), Some(1)),
        "{t}"
    );
    let reason = t["reason"].as_str().unwrap();
    assert!(
        reason.contains("setup `echo cannot reach the registry"),
        "{reason}"
    );
    assert!(
        reason.contains("exit status 7") && reason.contains("cannot reach the registry"),
        "{reason}"
    );
}

#[test]
fn teardown_runs_before_a_worktree_goes() {
    let env = TestEnv::new();
    let log = env.scratch("teardowns");
    env.write(
        "baton.toml",
        &bash_plan(&format!(
            "[workspace]\nteardown = [\"echo $BATON_TASK $BATON_WORKSPACE >> {log}\"]\n\n[run]\nmax_parallel = 1\n\n[[task]]\nid = \"a\"\nprompt = \"touch a\"\n\n[[task]]\nid = \"b\"\nprompt = \"touch b\"\n",
            log = log.display()
        )),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let said = std::fs::read_to_string(&log).unwrap();
    let tasks: Vec<&str> = said.lines().filter_map(|l| l.split(' ').next()).collect();
    // a's desk went to b (teardown first), and b's went at the end.
    assert_eq!(tasks, vec!["a", "b"], "{said}");
    assert!(
        said.lines()
            .all(|l| l.split(' ').nth(1).is_some_and(|w| w.starts_with('b'))),
        "{said}"
    );
}

#[test]
fn copied_files_reach_the_worktree_and_are_never_committed() {
    let env = TestEnv::new();
    let seen = env.scratch("seen-env");
    env.write(".gitignore", ".env\nconfig/*.local.toml\n");
    env.commit_all("ignore local files");
    env.write(".env", "SECRET=1\n");
    env.write("config/db.local.toml", "port = 5432\n");
    env.write(
        "baton.toml",
        &bash_plan(&format!(
            "[workspace]\ncopy = [\".env\", \"config/*.local.toml\", \".env.missing\"]\n\n[[task]]\nid = \"t\"\nprompt = \"cat .env config/db.local.toml > {seen}; echo work > work.txt\"\n",
            seen = seen.display()
        )),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        "SECRET=1\nport = 5432\n"
    );
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(
        show(&env, integration, "work.txt").as_deref(),
        Some("work\n")
    );
    assert_eq!(show(&env, integration, ".env"), None);
    assert_eq!(show(&env, integration, "config/db.local.toml"), None);
    let warnings = task(&r.report, "t")["warnings"].to_string();
    assert!(
        warnings.contains(".env.missing") && warnings.contains("skipped"),
        "{warnings}"
    );
}

#[test]
fn a_copied_file_git_does_not_ignore_is_a_plan_error() {
    let env = TestEnv::new();
    env.write("notes.local", "x\n");
    env.write(
        "baton.toml",
        &bash_plan(
            "[workspace]\ncopy = [\"notes.local\"]\n\n[[task]]\nid = \"t\"\nprompt = \"true\"\n",
        ),
    );
    for cmd in [&["check"][..], &["run"][..]] {
        let out = output(baton(&env).args(cmd));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {err}");
        assert!(
            err.contains("\"notes.local\", which git does not ignore"),
            "{err}"
        );
        // Where it is written, as every plan error says.
        assert!(err.contains("baton.toml:8:9:"), "{err}");
    }
    assert_eq!(
        env.git(&["branch", "--list", "baton/*"]),
        "",
        "nothing started"
    );
}

#[test]
fn running_tasks_hold_ports_of_their_own_that_were_free() {
    let env = TestEnv::new();
    // Something already listens on the first port of the range.
    let busy = std::net::TcpListener::bind(("127.0.0.1", 20000)).ok();
    let dir = env.scratch("ports");
    std::fs::create_dir_all(&dir).unwrap();
    let mut plan = String::from("[workspace]\nports = 2\n\n[run]\nmax_parallel = 3\n");
    for t in ["a", "b", "c"] {
        plan.push_str(&format!(
            "\n[[task]]\nid = \"{t}\"\nprompt = \"echo $BATON_PORT $BATON_PORT_1 $BATON_PORT_2 $BATON_WORKSPACE > {d}/{t}; sleep 0.5\"\n",
            d = dir.display()
        ));
    }
    env.write("baton.toml", &bash_plan(&plan));
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut all = std::collections::HashSet::new();
    for t in ["a", "b", "c"] {
        let line = std::fs::read_to_string(dir.join(t)).unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words.len(), 4, "{line}");
        assert_eq!(words[0], words[1], "BATON_PORT is BATON_PORT_1");
        for p in &words[1..3] {
            let p: u16 = p.parse().unwrap();
            assert!((20000..30000).contains(&p));
            if busy.is_some() {
                assert_ne!(p, 20000, "a port something listens on is not handed out");
            }
            assert!(all.insert(p), "port {p} handed out twice");
        }
    }
    assert_eq!(
        store_rows(&env, "SELECT COUNT(*) FROM ports"),
        ["0"],
        "a run that ended holds no port"
    );
    // Two runs at once (two plans) never share a port either.
    for (name, t) in [("one.toml", "x"), ("two.toml", "y")] {
        env.write(
            name,
            &bash_plan(&format!(
                "[workspace]\nports = 3\n\n[[task]]\nid = \"{t}\"\nprompt = \"echo $BATON_PORT_1 $BATON_PORT_2 $BATON_PORT_3 > {d}/{t}; sleep 1\"\n",
                d = dir.display()
            )),
        );
    }
    let runs: Vec<_> = ["one.toml", "two.toml"]
        .iter()
        .map(|plan| {
            baton(&env)
                .args(["run", "--here", plan])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        let out = run.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ports = |t: &str| -> Vec<String> {
        let line = std::fs::read_to_string(dir.join(t)).unwrap();
        line.split_whitespace().map(str::to_string).collect()
    };
    let (x, y) = (ports("x"), ports("y"));
    assert_eq!((x.len(), y.len()), (3, 3));
    assert!(x.iter().all(|p| !y.contains(p)), "{x:?} {y:?}");
    drop(busy);
}

#[test]
fn no_agent_starts_while_memory_is_short_and_the_task_says_so() {
    let env = TestEnv::new();
    let mem = env.scratch("memavailable");
    std::fs::write(&mem, "1048576").unwrap();
    env.write(
        "baton.toml",
        &bash_plan("[run]\nmin_free_memory = \"2G\"\n\n[[task]]\nid = \"t\"\nprompt = \"echo ran > ran.txt\"\n"),
    );
    let child = baton(&env)
        .env("BATON_MEMAVAILABLE_FILE", &mem)
        .args(["run", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the task to say it waits for memory", 20, || {
        String::from_utf8_lossy(&output(baton(&env).arg("status")).stdout)
            .contains("pending (waiting: memory)")
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(task_status(&env, "t"), "pending", "held back");
    std::fs::write(&mem, (8u64 << 30).to_string()).unwrap();
    let r = parse_run(child.wait_with_output().unwrap());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("waiting: memory (1 MiB available"),
        "{}",
        r.stderr
    );
    assert_eq!(task(&r.report, "t")["merged"], true);
}

#[test]
fn a_pooled_worktree_comes_back_clean_with_its_caches_and_setup_reruns_only_on_new_inputs() {
    let env = TestEnv::new();
    let setups = env.scratch("setups");
    let seen = env.scratch("seen");
    env.write(".gitignore", "cache/\n");
    env.write("lock.txt", "v1\n");
    env.commit_all("a lock file");
    let plan = |tasks: &str| {
        bash_plan(&format!(
            r#"
[workspace]
pool = 1
setup_inputs = ["lock.txt"]
setup = ["mkdir -p cache; cat lock.txt > cache/deps; pwd > cache/where; echo ${{BATON_TASK:-pool}} >> {setups}"]
{tasks}"#,
            setups = setups.display()
        ))
    };
    // Run 1 leaves a prepared worktree in the pool (a done task's, or the refill's).
    env.write(
        "baton.toml",
        &plan("[[task]]\nid = \"one\"\nprompt = \"echo one > one.txt\"\n"),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Run 2: "two" starts in it with setup done; its desk then goes to
    // "three": none of two's work (not merged), but the caches it left.
    let check = format!(
        "{{ test -e cache/deps && echo deps; test -e cache/scratch && echo scratch; test $(cat cache/where) = $(pwd) && echo same-place; test -e two.txt && echo two; test -e one.txt && echo one; git status --porcelain; }} > {seen}",
        seen = seen.display()
    );
    env.write(
        "baton.toml",
        &plan(&format!(
            "[[task]]\nid = \"two\"\nmerge = false\nprompt = \"echo two > two.txt; echo s > cache/scratch\"\n\n[[task]]\nid = \"three\"\nneeds = [\"two\"]\nprompt = \"{}\"\n",
            check.replace('"', "\\\"")
        )),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let said = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(
        said, "deps\nscratch\nsame-place\n",
        "caches stay where setup made them (a virtualenv holds its path); no trace of other tasks"
    );
    let ran = std::fs::read_to_string(&setups).unwrap();
    assert!(ran.lines().any(|l| l == "one"), "{ran}");
    assert!(
        !ran.contains("two") && !ran.contains("three"),
        "setup is not run again for the same inputs: {ran}"
    );
    // New inputs: setup runs again.
    env.write("lock.txt", "v2\n");
    env.commit_all("new deps");
    env.write(
        "baton.toml",
        &plan("[[task]]\nid = \"four\"\nprompt = \"cat cache/deps > four.txt\"\n"),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let ran = std::fs::read_to_string(&setups).unwrap();
    assert!(ran.contains("four\n"), "{ran}");
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(show(&env, integration, "four.txt").as_deref(), Some("v2\n"));
    // A task's marker in the pool stands for a desk that is there.
    let pool = env.repo.join(".git/baton/worktrees/.pool");
    for e in std::fs::read_dir(&pool).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(slot) = name.strip_suffix(".task") {
            assert!(pool.join(slot).is_dir(), "{name} marks a desk that is gone");
        }
    }
}

#[test]
fn a_sparse_worktree_holds_only_the_named_directories() {
    let env = TestEnv::new();
    env.write("services/api/a.txt", "a\n");
    env.write("libs/b.txt", "b\n");
    env.write("other/c.txt", "c\n");
    env.commit_all("a monorepo");
    let seen = env.scratch("seen");
    env.write(
        "baton.toml",
        &bash_plan(&format!(
            "[workspace]\nsparse = [\"services/api\", \"libs/\"]\n\n[[task]]\nid = \"t\"\nprompt = \"ls services/api libs other > {seen} 2>&1 || true; echo new > services/api/new.txt\"\n",
            seen = seen.display()
        )),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let said = std::fs::read_to_string(&seen).unwrap();
    assert!(said.contains("a.txt") && said.contains("b.txt"), "{said}");
    assert!(said.contains("other") && !said.contains("c.txt"), "{said}");
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(
        show(&env, integration, "services/api/new.txt").as_deref(),
        Some("new\n")
    );
    assert_eq!(
        show(&env, integration, "other/c.txt").as_deref(),
        Some("c\n"),
        "the rest is untouched"
    );
    assert!(
        task(&r.report, "t")["warnings"]
            .as_array()
            .is_none_or(|w| w.is_empty()),
        "no repo change reported"
    );
}

#[test]
fn a_task_that_did_not_finish_well_gives_nothing_back_to_the_pool() {
    let env = TestEnv::new();
    let seen = env.scratch("seen");
    env.write(
        "baton.toml",
        &bash_plan("[workspace]\npool = 1\n\n[[task]]\nid = \"bad\"\nprompt = \"echo half > dirty.txt; exit 3\"\n"),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let bad_wt = task(&r.report, "bad")["worktree"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        std::path::Path::new(&bad_wt).join("dirty.txt").exists(),
        "its desk is kept as it was"
    );
    env.write(
        "baton.toml",
        &bash_plan(&format!(
            "[workspace]\npool = 1\n\n[[task]]\nid = \"next\"\nprompt = \"ls > {seen}; git status --porcelain >> {seen}\"\n",
            seen = seen.display()
        )),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let said = std::fs::read_to_string(&seen).unwrap();
    assert!(!said.contains("dirty.txt"), "{said}");
}

#[test]
fn a_pooled_worktree_follows_the_plan_s_sparse_directories() {
    let env = TestEnv::new();
    env.write("a/x.txt", "x\n");
    env.write("b/y.txt", "y\n");
    env.commit_all("two directories");
    let seen = env.scratch("seen");
    let plan = |sparse: &str, id: &str| {
        bash_plan(&format!(
            "[workspace]\npool = 1\n{sparse}\n\n[[task]]\nid = \"{id}\"\nprompt = \"ls a b > {seen} 2>&1 || true\"\n",
            seen = seen.display()
        ))
    };
    env.write("baton.toml", &plan("sparse = [\"a\"]", "one"));
    assert_eq!(run_json(&env, &[]).code, 0);
    assert!(!std::fs::read_to_string(&seen).unwrap().contains("y.txt"));
    env.write("baton.toml", &plan("", "two"));
    assert_eq!(run_json(&env, &[]).code, 0);
    let said = std::fs::read_to_string(&seen).unwrap();
    assert!(said.contains("x.txt") && said.contains("y.txt"), "{said}");
}

#[test]
fn a_task_in_setup_says_so_and_a_stop_during_setup_ends_it_and_its_setup() {
    let env = TestEnv::new();
    let go = env.scratch("go");
    env.write(
        "baton.toml",
        &bash_plan(&format!(
            "[workspace]\nsetup = [\"while [ ! -e {go} ]; do sleep 0.05; done\"]\n\n[[task]]\nid = \"t\"\non_failure = \"continue\"\nprompt = \"echo t > t.txt\"\n\n[[task]]\nid = \"u\"\nprompt = \"echo u > u.txt\"\n",
            go = go.display()
        )),
    );
    let child = baton(&env)
        .args(["run", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = || String::from_utf8_lossy(&output(baton(&env).arg("status")).stdout).into_owned();
    wait_for("both tasks to show their setup", 20, || {
        status().matches("running: setup").count() == 2
    });
    let out = output(baton(&env).args(["stop", "t"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for_task(&env, "t", "stopped");
    // Its setup is gone with it; the other's goes on until it may finish.
    let loops = || {
        let out = std::process::Command::new("pgrep")
            .args(["-f", &format!("while \\[ ! -e {}", go.display())])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    wait_for("one setup left", 10, || loops() == 1);
    std::fs::write(&go, "").unwrap();
    let r = parse_run(child.wait_with_output().unwrap());
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(task(&r.report, "t")["status"], "stopped", "{}", r.report);
    assert_eq!(task(&r.report, "u")["merged"], true, "{}", r.report);
    assert_eq!(loops(), 0);
}
