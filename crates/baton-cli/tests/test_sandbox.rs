//! `sandbox = "bwrap"`: agents (and their gates) under bubblewrap, with exec
//! agents probing what they can reach.

use crate::common::*;
use baton_testutils::TestEnv;
use std::io::Write;

fn fixture(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

fn sandboxed(env: &TestEnv, extra: &str, body: &str) {
    env.write(
        "baton.toml",
        &format!(
            "[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\nsandbox = \"bwrap\"\n{extra}env = {{ REPO = {:?} }}\n\n[defaults]\nagent = \"sh\"\n{body}",
            env.repo.display().to_string()
        ),
    );
    env.commit_all("plan");
}

/// Events of `kind` for `task`, their data as JSON text, from the store.
fn events(env: &TestEnv, task: &str, kind: &str) -> Vec<String> {
    store_rows(
        env,
        &format!(
            "SELECT data FROM events WHERE kind = '{kind}' AND task_id = '{task}' ORDER BY seq"
        ),
    )
}

#[test]
fn a_sandboxed_agent_writes_only_its_own_worktree_and_sees_no_other_process() {
    let env = TestEnv::new();
    // Secrets the agent must not see.
    let ssh = env.root().join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::write(ssh.join("id_ed25519"), "SECRET KEY\n").unwrap();
    let probe = r#"
try() { if ( eval "$1" ) 2>/dev/null; then echo "$2: wrote"; else echo "$2: refused"; fi; }
{
try 'echo x > "$REPO/evil.txt"' checkout
try 'echo x > "$(dirname "$PWD")/other/evil.txt"' other-worktree
try 'echo x > "$HOME/.ssh/evil"' ssh
try 'echo x > /etc/evil' etc
try 'echo x > /usr/evil' usr
echo "ssh entries: $(ls -A "$HOME/.ssh" | wc -l)"
echo "processes: $(ps -e -o comm= | sort -u | tr '\n' ' ')"
} > probe.txt
echo mine > own.txt
"#;
    sandboxed(
        &env,
        "",
        &format!(
            "\n[[task]]\nid = \"probe\"\nprompt = '''{probe}'''\ngates = [\"! (echo x > \\\"$REPO/gate-evil.txt\\\") 2>/dev/null\", \"test -s own.txt\"]\n\n[[task]]\nid = \"other\"\nprompt = \"sleep 1; echo theirs > theirs.txt\"\n"
        ),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let branch = task(&r.report, "probe")["branch"]
        .as_str()
        .unwrap()
        .to_string();
    let said = show(&env, &branch, "probe.txt").unwrap();
    for what in ["checkout", "other-worktree", "ssh", "etc", "usr"] {
        assert!(said.contains(&format!("{what}: refused")), "{what}: {said}");
    }
    assert!(said.contains("ssh entries: 0"), "{said}");
    let procs = said.lines().find(|l| l.starts_with("processes:")).unwrap();
    assert!(!procs.contains("baton"), "baton is out of sight: {procs}");
    // Nothing reached the real places; its own work merged.
    assert!(!env.repo.join("evil.txt").exists() && !env.repo.join("gate-evil.txt").exists());
    assert!(!ssh.join("evil").exists());
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(
        show(&env, integration, "own.txt").as_deref(),
        Some("mine\n")
    );
    assert_eq!(
        show(&env, integration, "theirs.txt").as_deref(),
        Some("theirs\n")
    );
}

/// A server on this machine's loopback that greets whoever connects.
fn greeter(name: &'static str) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let _ = c.write_all(format!("hello from {name}\n").as_bytes());
        }
    });
    port
}

#[test]
fn network_off_reaches_nothing_and_an_allow_list_only_its_hosts_each_try_an_event() {
    let env = TestEnv::new();
    let (a, b) = (greeter("a"), greeter("b"));
    // In the repository: a sandbox hides what lies elsewhere under /tmp.
    std::fs::copy(fixture("net_probe.py"), env.repo.join("net_probe.py")).unwrap();
    let probe = "net_probe.py";
    env.write(
        "baton.toml",
        &format!(
            "[agent.off]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\nsandbox = \"bwrap\"\nnetwork = \"off\"\n\n\
             [agent.allow]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\nsandbox = \"bwrap\"\nnetwork = [\"127.0.0.1:{a}\"]\n\n\
             [[task]]\nid = \"off\"\nagent = \"off\"\nprompt = \"python3 {probe} 127.0.0.1:{a} > off.txt\"\n\n\
             [[task]]\nid = \"allow\"\nagent = \"allow\"\nprompt = \"python3 {probe} 127.0.0.1:{a} 127.0.0.1:{b} > allow.txt\"\n"
        ),
    );
    env.commit_all("plan");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let net = |t: &str| {
        show(
            &env,
            task(&r.report, t)["branch"].as_str().unwrap(),
            &format!("{t}.txt"),
        )
        .unwrap()
    };
    let off = net("off");
    assert!(
        off.contains(&format!("direct 127.0.0.1:{a}: refused")),
        "{off}"
    );
    assert!(off.contains("proxy") && off.contains("no proxy"), "{off}");
    let allow = net("allow");
    assert!(
        allow.contains(&format!("direct 127.0.0.1:{a}: got hello from a")),
        "{allow}"
    );
    assert!(
        allow.contains(&format!("direct 127.0.0.1:{b}: refused")),
        "{allow}"
    );
    assert!(
        allow.contains(&format!("proxy 127.0.0.1:{a}: HTTP/1.1 200")),
        "{allow}"
    );
    assert!(
        allow.contains(&format!("proxy 127.0.0.1:{b}: HTTP/1.1 403")),
        "{allow}"
    );
    let seen = events(&env, "allow", "sandbox_connection");
    assert!(
        seen.iter()
            .any(|e| e.contains(&format!("127.0.0.1:{a}")) && e.contains("\"allowed\":true")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|e| e.contains(&format!("127.0.0.1:{b}")) && e.contains("\"allowed\":false")),
        "{seen:?}"
    );
    assert!(events(&env, "off", "sandbox_connection").is_empty());
}

/// Whether this machine lets a test make a cgroup with a memory limit (as
/// root with cgroup v1, or in a delegated cgroup v2): checked here on its
/// own, not through baton.
fn cgroups_writable() -> bool {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut bases = Vec::new();
    for l in own.lines() {
        match l.splitn(3, ':').collect::<Vec<_>>()[..] {
            [_, "memory", path] => bases.push(format!("/sys/fs/cgroup/memory{path}")),
            [_, "", path] => bases.push(format!("/sys/fs/cgroup{path}")),
            _ => {}
        }
    }
    bases.iter().any(|b| {
        let probe = std::path::Path::new(b).join(format!("baton-test-{}", std::process::id()));
        let ok = std::fs::create_dir(&probe).is_ok()
            && (probe.join("memory.limit_in_bytes").exists() || probe.join("memory.max").exists());
        let _ = std::fs::remove_dir(&probe);
        ok
    })
}

#[test]
fn a_memory_hog_is_killed_at_its_limit_and_a_fork_bomb_stops_at_its_pids() {
    if !cgroups_writable() {
        eprintln!("skipped: this machine gives no cgroup to write (run as root, or in a delegated cgroup v2)");
        return;
    }
    let env = TestEnv::new();
    sandboxed(
        &env,
        "memory = \"64M\"\npids = 32\n",
        r#"
[[task]]
id = "hog"
on_failure = "continue"
prompt = "python3 -c 'b = bytearray(b\"x\") * (512 << 20)'"

[[task]]
id = "forks"
on_failure = "continue"
prompt = "python3 -c 'import os, time\nfor i in range(100):\n    if os.fork() == 0:\n        time.sleep(30)\n        os._exit(0)'"

[[task]]
id = "fits"
prompt = "echo fits > fits.txt"
"#,
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let reason = |id: &str| {
        task(&r.report, id)["reason"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert!(
        reason("hog").contains("killed at its memory limit of 64 MiB"),
        "{}",
        reason("hog")
    );
    assert!(
        reason("forks").contains("refused a new process at its limit of 32"),
        "{}",
        reason("forks")
    );
    assert_eq!(task(&r.report, "fits")["merged"], true, "{}", r.stderr);
    assert!(events(&env, "fits", "sandbox_notice").is_empty());
    // The attempts' cgroups are gone, and so are the forks' sleepers.
    let mine = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let left: Vec<String> = mine
        .lines()
        .filter_map(|l| {
            let parts: Vec<&str> = l.splitn(3, ':').collect();
            let dir = match parts[1] {
                "memory" | "pids" => format!("/sys/fs/cgroup/{}{}", parts[1], parts[2]),
                _ => return None,
            };
            Some(
                std::fs::read_dir(dir)
                    .ok()?
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect::<Vec<_>>(),
            )
        })
        .flatten()
        .filter(|n| n.contains("-forks-") || n.contains("-hog-") || n.contains("-fits-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let sleepers = std::process::Command::new("pgrep")
        .args(["-f", "time.sleep\\(30\\)"])
        .output()
        .unwrap();
    assert!(sleepers.stdout.is_empty(), "a fork outlived its agent");
}

#[test]
fn bad_sandbox_settings_are_plan_errors() {
    let env = TestEnv::new();
    let check = |plan: &str| {
        env.write("baton.toml", plan);
        let out = output(baton(&env).arg("check"));
        assert_eq!(out.status.code(), Some(2));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let said = check("[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\"]\nnetwork = \"off\"\n\n[[task]]\nid = \"t\"\nagent = \"sh\"\nprompt = \"x\"\n");
    assert!(
        said.contains("baton.toml:4:11: agent \"sh\": network needs a sandbox (sandbox = \"bwrap\" or \"container\")"),
        "{said}"
    );
    let said = check("[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\"]\n\n[[task]]\nid = \"t\"\nagent = \"sh\"\nprompt = \"x\"\nsandbox = \"bwrap\"\n");
    assert!(said.contains("belong to an agent profile"), "{said}");
    let said = check("[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\"]\nsandbox = \"bwrap\"\nnetwork = [\"example.com\"]\n\n[[task]]\nid = \"t\"\nagent = \"sh\"\nprompt = \"x\"\n");
    assert!(said.contains("is not \"host:port\""), "{said}");
}
