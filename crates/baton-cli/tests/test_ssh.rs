//! The SSH executor against real OpenSSH servers on loopback
//! (baton_testutils::sshd: two `sshd`s with their own host keys, ports and,
//! as root, users, stand for two machines; a host's user cannot read the
//! test's files, so what an attempt needs reaches it through baton): attempts spread over the hosts by their slots,
//! each fetching through the reverse tunnel and pushing its work back; a
//! gate's failure retried with its feedback; stop keeps the work; a baton
//! killed outright is resumed by adopting what still runs there; a host
//! that goes away fails its attempt with the reason and the task retries on
//! the other; nothing of a run is left on a host.

use crate::common::*;
use baton_testutils::sshd::{Hosts, Users};
use baton_testutils::{fake_agent, TestEnv};
use std::path::Path;
use std::time::Duration;

/// Two (or `n`) hosts, or None (the test is skipped) where there is no
/// sshd; BATON_REQUIRE_SSH=1 (scripts/test.sh) makes that a failure.
fn hosts(env: &TestEnv, n: usize) -> Option<Hosts> {
    hosts_for(env, n, Users::Own)
}

/// [`hosts`] that let in `users` (the test's own, for a real CLI installed
/// in its home).
fn hosts_for(env: &TestEnv, n: usize, users: Users) -> Option<Hosts> {
    match Hosts::start_for(&env.root().join("ssh"), n, users) {
        Ok(h) => Some(h),
        Err(e) if std::env::var("BATON_REQUIRE_SSH").is_ok_and(|v| v == "1") => {
            panic!("BATON_REQUIRE_SSH=1 but no SSH hosts: {e}")
        }
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

/// A plan header: profile `remote` (the default) runs on the hosts with
/// these slots, profile `here` stays local.
fn header(h: &Hosts, slots: &[u32]) -> String {
    let fake = fake_agent().display().to_string();
    let list: Vec<String> = h
        .hosts
        .iter()
        .zip(slots)
        .map(|(host, n)| {
            format!(
                "{{ host = {:?}, slots = {n}, dir = {:?} }}",
                host.alias,
                host.work.display().to_string()
            )
        })
        .collect();
    format!(
        r#"[executor]
kind = "ssh"
ssh_config = {config:?}
grace = "10s"
hosts = [{list}]

[agent.remote]
adapter = "exec"
command = [{fake:?}]

[agent.here]
adapter = "exec"
command = [{fake:?}]
executor = "local"

[defaults]
agent = "remote"

"#,
        config = h.config.display().to_string(),
        list = list.join(", "),
    )
}

fn logs(env: &TestEnv, task: &str) -> String {
    let out = baton(env).args(["logs", task]).output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run_id(env: &TestEnv) -> String {
    latest_run_opt(env).expect("a run")["run"]
        .as_str()
        .unwrap()
        .to_string()
}

/// What is left of `run` in the hosts' working directories.
fn left_on_hosts(h: &Hosts, run: &str) -> Vec<String> {
    h.hosts
        .iter()
        .map(|host| host.work.join("runs").join(run))
        .filter(|d| d.exists())
        .map(|d| d.display().to_string())
        .collect()
}

fn assert_integrated(env: &TestEnv, run: &str, files: &[(&str, &str)]) {
    let integration = format!("baton/{run}/integration");
    for (path, text) in files {
        assert_eq!(
            show(env, &integration, path).as_deref(),
            Some(*text),
            "{path}"
        );
    }
}

#[test]
fn tasks_spread_over_two_hosts_by_their_slots_and_their_work_comes_home() {
    let env = TestEnv::new();
    let Some(h) = hosts(&env, 2) else { return };
    // Each agent notes where its prompt file is (moved to its host), outside its worktree.
    // (Where the hosts' users may write, and the test read.)
    let seen = h.shared.clone();
    let mut plan = header(&h, &[1, 1]);
    for t in ["a", "b", "c"] {
        plan.push_str(&format!(
            "[[task]]\nid = \"{t}\"\nprompt = \"env BATON_PROMPT_FILE {seen}/{t}\\nsleep 2\\nwrite {t}.txt from {t}\\ncommit {t} by itself\\nwrite {t}-loose.txt left uncommitted\"\ngates = [\"test -f {t}.txt\", \"test -f {t}-loose.txt\"]\n\n",
            seen = seen.display()
        ));
    }
    plan.push_str("[[task]]\nid = \"d\"\nagent = \"here\"\nprompt = \"write d.txt from here\"\n");
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let run = run_json(&env, &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, logs(&env, "a"));
    let id = run_id(&env);
    assert_integrated(
        &env,
        &id,
        &[
            ("a.txt", "from a\n"),
            ("b-loose.txt", "left uncommitted\n"),
            ("c.txt", "from c\n"),
            ("d.txt", "from here\n"),
        ],
    );
    // Each worked on a host, in a directory of its own there, and both
    // hosts took work (one slot each: three tasks cannot share one).
    let mut on = Vec::new();
    for t in ["a", "b", "c"] {
        let wt = std::fs::read_to_string(seen.join(t)).unwrap();
        let host = h
            .hosts
            .iter()
            .find(|host| Path::new(&wt).starts_with(&host.work))
            .unwrap_or_else(|| panic!("{t} worked in {wt}, on no host"));
        on.push(host.alias.clone());
        assert!(
            logs(&env, t).contains(&format!("host {}", host.alias)),
            "{t}"
        );
    }
    on.sort();
    on.dedup();
    assert_eq!(on, ["h1", "h2"], "both hosts took work");
    assert!(
        left_on_hosts(&h, &id).is_empty(),
        "{:?}",
        left_on_hosts(&h, &id)
    );
}

#[test]
fn a_failed_gate_is_retried_on_a_host_with_its_feedback() {
    let env = TestEnv::new();
    let Some(h) = hosts(&env, 1) else { return };
    let fed = h.shared.join("fed.txt");
    let plan = format!(
        "{}[[task]]\nid = \"fix\"\nretries = 1\nprompt = \"on-attempt 1 write wrong.txt oops\\non-attempt 2 feedback {fed}\\non-attempt 2 write right.txt ok\"\ngates = [\"test -f right.txt || (echo right.txt is missing; exit 1)\"]\n",
        header(&h, &[2]),
        fed = fed.display()
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let run = run_json(&env, &[]);
    assert_eq!(run.code, 0, "{}\n{:#}", run.stderr, run.report);
    let t = task(&run.report, "fix");
    assert_eq!(t["attempts"], 2, "{t:#}");
    let feedback = std::fs::read_to_string(&fed).unwrap();
    assert!(feedback.contains("right.txt is missing"), "{feedback}");
    let id = run_id(&env);
    assert_integrated(&env, &id, &[("right.txt", "ok\n"), ("wrong.txt", "oops\n")]);
}

#[test]
fn stop_ends_the_attempt_there_and_its_work_so_far_is_on_the_branch() {
    let env = TestEnv::new();
    let Some(h) = hosts(&env, 1) else { return };
    let plan = format!(
        "{}[[task]]\nid = \"long\"\nprompt = \"write half.txt first half\\nsay half written\\nsleep 300\"\n",
        header(&h, &[1])
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let child = spawn_baton(&env, &["run", "--json"]);
    wait_for("the host to write half", 60, || {
        logs(&env, "long").contains("half written")
    });
    let id = run_id(&env);
    let out = output(baton(&env).args(["stop", "long"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = parse_run(child.wait_with_output_timeout(Duration::from_secs(90)));
    assert_eq!(
        task(&run.report, "long")["status"],
        "stopped",
        "{:#}",
        run.report
    );
    let branch = format!("baton/{id}/task/long");
    assert_eq!(
        show(&env, &branch, "half.txt").as_deref(),
        Some("first half\n"),
        "{}",
        logs(&env, "long")
    );
    assert!(left_on_hosts(&h, &id).is_empty());
}

#[test]
fn a_baton_killed_mid_run_is_resumed_by_adopting_what_runs_on_the_host() {
    let env = TestEnv::new();
    let Some(h) = hosts(&env, 2) else { return };
    // One file per task: each host's user writes its own.
    let count = h.shared.join("started");
    let plan = format!(
        "{}[[task]]\nid = \"quick\"\nprompt = \"append {count}-quick quick\\nsay quick started\\nsleep 3\\nwrite quick.txt done\"\n\n[[task]]\nid = \"slow\"\nprompt = \"append {count}-slow slow\\nsay slow started\\nsleep 12\\nwrite slow.txt done\"\n",
        header(&h, &[1, 1]),
        count = count.display()
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let mut child = spawn_baton(&env, &["run", "--json"]);
    wait_for("both to start on their hosts", 60, || {
        logs(&env, "quick").contains("quick started") && logs(&env, "slow").contains("slow started")
    });
    let id = run_id(&env);
    child.kill().unwrap(); // SIGKILL: no cleanup at all
    let _ = child.wait();
    // quick ends and waits to push while baton is away.
    std::thread::sleep(Duration::from_secs(5));
    let run = parse_run(baton(&env).args(["resume", "--json"]).output().unwrap());
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, logs(&env, "slow"));
    for t in ["quick", "slow"] {
        // The attempt that ran on, taken up as itself: no second attempt.
        assert_eq!(task(&run.report, t)["attempts"], 1, "{t}: {:#}", run.report);
        assert_eq!(
            task(&run.report, t)["status"],
            "succeeded",
            "{t}: {:#}",
            run.report
        );
        let l = logs(&env, t);
        assert!(l.contains("left running by an earlier baton"), "{t}: {l}");
    }
    assert_integrated(
        &env,
        &id,
        &[("quick.txt", "done\n"), ("slow.txt", "done\n")],
    );
    // Neither agent ran twice.
    for t in ["quick", "slow"] {
        let started = std::fs::read_to_string(h.shared.join(format!("started-{t}"))).unwrap();
        assert_eq!(started.lines().count(), 1, "{t}: {started}");
    }
    assert!(
        left_on_hosts(&h, &id).is_empty(),
        "{:?}",
        left_on_hosts(&h, &id)
    );
}

#[test]
fn a_host_that_goes_away_fails_its_attempt_and_the_task_retries_on_the_other() {
    let env = TestEnv::new();
    let Some(mut h) = hosts(&env, 2) else { return };
    // h1 has more free slots: the first attempt goes there.
    let plan = format!(
        "{}[[task]]\nid = \"move\"\nretries = 1\nprompt = \"say working\\non-attempt 1 sleep 300\\nwrite moved.txt done\"\n",
        header(&h, &[2, 1])
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let child = spawn_baton(&env, &["run", "--json"]);
    wait_for("the first attempt to work on h1", 60, || {
        logs(&env, "move").contains("working")
    });
    assert!(logs(&env, "move").contains("host h1"));
    h.go_away(0);
    let run = parse_run(child.wait_with_output_timeout(Duration::from_secs(120)));
    assert_eq!(run.code, 0, "{}\n{:#}", run.stderr, run.report);
    let t = task(&run.report, "move");
    assert_eq!(t["attempts"], 2, "{t:#}");
    let l = logs(&env, "move");
    assert!(l.contains("lost the connection to h1"), "{l}");
    assert!(l.contains("host h2"), "{l}");
    assert_integrated(&env, &run_id(&env), &[("moved.txt", "done\n")]);
}

#[test]
fn doctor_checks_every_host_and_says_which_cannot_be_reached() {
    let env = TestEnv::new();
    let Some(h) = hosts(&env, 1) else { return };
    // A host nothing listens for.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let mut plan = header(&h, &[1]);
    plan = plan.replace(
        "hosts = [",
        &format!("hosts = [{{ host = \"127.0.0.1\", port = {port}, name = \"gone\" }}, "),
    );
    plan.push_str("[[task]]\nid = \"t\"\nprompt = \"say hi\"\n");
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let out = output(baton(&env).args(["doctor"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("ok  h1: reached"), "{text}");
    assert!(text.contains("ok  h1: git version"), "{text}");
    assert!(
        text.contains("h1: this baton will be copied there") || text.contains("h1: baton at"),
        "{text}"
    );
    assert!(text.contains("NO  gone: cannot be reached"), "{text}");
}

/// Claude Code itself on a host: its model requests go to baton's model
/// gateway through a tunnel of the host's own (the host's loopback, not
/// this machine's gateway port), and the host never holds the key.
#[test]
fn claude_code_on_a_host_reaches_its_model_through_the_tunnel_to_the_gateway() {
    let env = TestEnv::new();
    let Some(h) = hosts_for(&env, 1, Users::Same) else {
        return;
    };
    let Some(bins) = crate::test_real_agents::bins(&["claude"]) else {
        return;
    };
    use baton_testutils::model_server::{ModelServer, Scripts, Step};
    const KEY: &str = "sk-ant-real-key-for-the-host-7731";
    let server = ModelServer::start(Scripts::new().script(
        "hello",
        vec![
            Step::write("hello.txt", "hi from a host\n"),
            Step::run("env > host-env.txt"),
            Step::say("wrote it"),
        ],
    ));
    // The host's sessions have a bare PATH: the profile gives node's.
    let path = std::env::var("PATH").unwrap_or_default();
    let more = [("PATH", path.as_str()), ("ANTHROPIC_API_KEY", KEY)];
    let profile =
        crate::test_real_agents::profile_with(&env, "claude", &bins[0], &server, &more, "");
    let plan = format!(
        "{}{profile}[[task]]\nid = \"hello\"\nagent = \"claude\"\nprompt = \"Do it. [[script:hello]]\"\ntimeout = \"4m\"\n",
        header(&h, &[1])
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, logs(&env, "hello"));
    let id = run_id(&env);
    let branch = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(
        show(&env, branch, "hello.txt").as_deref(),
        Some("hi from a host\n")
    );
    let seen = show(&env, branch, "host-env.txt").expect("the agent's environment");
    assert!(!seen.contains(KEY), "the host held the key:\n{seen}");
    let pwd = seen
        .lines()
        .find_map(|l| l.strip_prefix("PWD="))
        .unwrap_or_default();
    assert!(
        Path::new(pwd).starts_with(&h.hosts[0].work),
        "worked in {pwd}"
    );
    let told = seen
        .lines()
        .find_map(|l| l.strip_prefix("ANTHROPIC_BASE_URL=http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no gateway URL:\n{seen}"));
    assert!(seen.contains("baton-gw-"), "a token, not the key:\n{seen}");
    let request = env.repo.join(format!(
        ".git/baton/runs/{id}/logs/hello/attempt-1.job.json"
    ));
    let request: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(request).unwrap()).unwrap();
    let here = request["gateway_url"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let there = told.split('/').next().unwrap();
    assert_ne!(
        there, here,
        "the host reached the gateway through its own port"
    );
    let calls: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|q| q.path.contains("/messages"))
        .collect();
    assert!(!calls.is_empty());
    assert!(calls.iter().all(|q| q.header("x-api-key") == Some(KEY)));
    assert_nowhere_in_state(&env, KEY);
    assert!(left_on_hosts(&h, &id).is_empty());
}

/// `[workspace] setup` runs on the host, in the attempt's worktree there,
/// not on this machine; a second attempt with the same setup inputs on
/// that host takes what setup made from the host's cache instead of
/// running it again.
#[test]
fn setup_runs_on_the_host_once_per_inputs_and_its_result_is_reused() {
    let env = TestEnv::new();
    let Some(h) = hosts(&env, 1) else { return };
    let ran = h.shared.join("setup-ran");
    env.write(".gitignore", "deps/\n");
    env.write("package-lock.json", "{\"v\": 1}\n");
    let plan = format!(
        "[workspace]\nsetup = [\"echo $PWD >> {ran}\", \"mkdir -p deps && echo built > deps/lib.txt\"]\nsetup_inputs = [\"package-lock.json\"]\n\n{}[[task]]\nid = \"a\"\nprompt = \"write a.txt a\"\ngates = [\"grep -q built deps/lib.txt\"]\n\n[[task]]\nid = \"b\"\nneeds = [\"a\"]\nprompt = \"write b.txt b\"\ngates = [\"grep -q built deps/lib.txt\"]\n",
        header(&h, &[1]),
        ran = ran.display()
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, logs(&env, "b"));
    // Setup ran once, on the host (in a worktree under its directory).
    let runs = std::fs::read_to_string(&ran).unwrap();
    assert_eq!(runs.lines().count(), 1, "{runs}");
    assert!(
        Path::new(runs.trim()).starts_with(&h.hosts[0].work),
        "{runs}"
    );
    assert!(logs(&env, "b").contains("setup: reused what it made before"));
    // What setup made stays out of the work.
    let branch = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(show(&env, branch, "deps/lib.txt"), None);
    assert_eq!(show(&env, branch, "b.txt").as_deref(), Some("b\n"));
}

/// A message to Claude Code running on a host reaches it in its running
/// session (through its follower and the git door's input), not by a new
/// attempt.
#[test]
fn steering_reaches_claude_code_running_on_a_host() {
    let env = TestEnv::new();
    let Some(h) = hosts_for(&env, 1, Users::Same) else {
        return;
    };
    let Some(bins) = crate::test_real_agents::bins(&["claude"]) else {
        return;
    };
    let server = crate::test_real_agents::steer_server("steer");
    let path = std::env::var("PATH").unwrap_or_default();
    let more = [("PATH", path.as_str())];
    let profile =
        crate::test_real_agents::profile_with(&env, "claude", &bins[0], &server, &more, "");
    let plan = format!(
        "{}{profile}[[task]]\nid = \"t\"\nagent = \"claude\"\nprompt = \"Begin. [[script:steer]]\"\ntimeout = \"4m\"\n",
        header(&h, &[1])
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let child = spawn_baton(&env, &["run", "--json"]);
    crate::test_real_agents::steer_mid_turn(&env, child, &server, "t");
    assert!(logs(&env, "t").contains("host h1"));
}

/// Later attempts of a run skip the host's probe (what the first found is
/// remembered); when the baton it found there is gone (here an agent
/// removed it), the next attempt copies it again and runs, not fails.
#[test]
fn an_attempt_whose_baton_is_gone_from_the_host_copies_it_again() {
    let env = TestEnv::new();
    let Some(h) = hosts(&env, 1) else { return };
    let mut plan = header(&h, &[1]);
    plan.push_str("[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\n\n");
    plan.push_str("[[task]]\nid = \"a\"\nagent = \"sh\"\nprompt = \"echo a > a.txt; rm -f \\\"$(readlink /proc/$PPID/exe)\\\"\"\n\n");
    plan.push_str("[[task]]\nid = \"b\"\nneeds = [\"a\"]\nprompt = \"write b.txt b\"\n\n");
    plan.push_str("[[task]]\nid = \"c\"\nneeds = [\"b\"]\nprompt = \"write c.txt c\"\n");
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let run = run_json(&env, &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, logs(&env, "b"));
    for t in ["a", "b", "c"] {
        assert_eq!(task(&run.report, t)["attempts"], 1, "{t}: {:#}", run.report);
    }
    assert!(
        logs(&env, "b").contains("copying baton to h1"),
        "{}",
        logs(&env, "b")
    );
    // c found the copy b made, remembered: no copy, no probe's words.
    assert!(
        !logs(&env, "c").contains("copying baton"),
        "{}",
        logs(&env, "c")
    );
    let id = run_id(&env);
    assert_integrated(
        &env,
        &id,
        &[("a.txt", "a\n"), ("b.txt", "b\n"), ("c.txt", "c\n")],
    );
}

/// As root, each test host has a network namespace of its own: an agent
/// there does not reach this machine's loopback (what it needs of this
/// machine comes through ssh's tunnels), and its work still comes home.
#[test]
fn a_host_in_a_namespace_of_its_own_reaches_this_machine_only_through_ssh() {
    let env = TestEnv::new();
    let Some(h) = hosts(&env, 1) else { return };
    if h.hosts[0].addr == "127.0.0.1" {
        eprintln!("skipped: no network namespace here (not root?)");
        return;
    }
    let here = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = here.local_addr().unwrap().port();
    let mut plan = header(&h, &[1]);
    plan.push_str("[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\n\n");
    plan.push_str(&format!(
        "[[task]]\nid = \"a\"\nagent = \"sh\"\nprompt = \"if (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; then echo reached; else echo apart; fi > seen.txt\"\n"
    ));
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let run = run_json(&env, &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, logs(&env, "a"));
    assert_integrated(&env, &run_id(&env), &[("seen.txt", "apart\n")]);
}
