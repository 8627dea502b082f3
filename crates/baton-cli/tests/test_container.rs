//! `sandbox = "container"` and `[[workspace.service]]` with real Podman:
//! exec agents in a container of the project's image probe what they can
//! reach; limits, stop, kill -9 and resume leave no container behind
//! (checked by the run's label); each task gets its own service. The base
//! image is `scripts/container-images.sh`'s (no registry here); images the
//! tests need are built from it.

use crate::common::*;
use baton_testutils::TestEnv;
use std::process::Command;

pub(crate) const BASE: &str = "baton.local/debian:bookworm";

/// Whether Podman and the base image are here; with BATON_REQUIRE_CONTAINERS=1
/// (set by scripts/test.sh as root) their absence fails the test.
pub(crate) fn podman_ready() -> bool {
    let ok = Command::new("podman")
        .args(["image", "exists", BASE])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let msg = format!("no podman with the image {BASE} (scripts/container-images.sh)");
        assert!(
            !std::env::var("BATON_REQUIRE_CONTAINERS").is_ok_and(|v| v == "1"),
            "BATON_REQUIRE_CONTAINERS=1 but {msg}"
        );
        eprintln!("skipped: {msg}");
    }
    ok
}

/// The containers (running or not) that carry `run`'s label.
pub(crate) fn containers_of(run: &str) -> Vec<String> {
    let out = Command::new("podman")
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
        .arg(format!("label=baton.run={run}"))
        .output()
        .expect("podman ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The stand-in database's image, built once for all the tests here.
fn tcp_echo_image() -> &'static str {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tcp-echo");
        let out = Command::new("podman")
            .args([
                "build",
                "--ulimit=nofile=1024:1024",
                "--ulimit=nproc=1024:1024",
                "-q",
            ])
            .args(["-t", "baton.local/tcp-echo:test"])
            .arg(&dir)
            .output()
            .expect("podman build");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    "baton.local/tcp-echo:test"
}

/// A run in another process, killed if the test fails before it ends
/// (its containers then go with the run's watchdog).
struct Running(Option<std::process::Child>);

impl Running {
    fn wait(mut self) -> RunOutput {
        parse_run(self.0.take().unwrap().wait_with_output().unwrap())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `[container]` of the base image.
fn on_base() -> String {
    format!("[container]\nimage = \"{BASE}\"\n")
}

fn contained(env: &TestEnv, container: &str, extra: &str, body: &str) {
    env.write(
        "baton.toml",
        &format!(
            "{container}\n[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\nsandbox = \"container\"\n{extra}env = {{ REPO = {:?} }}\n\n[defaults]\nagent = \"sh\"\n{body}",
            env.repo.display().to_string()
        ),
    );
    env.commit_all("plan");
}

fn run_id(r: &RunOutput) -> String {
    r.report["run"].as_str().unwrap().to_string()
}

#[test]
fn an_agent_in_the_projects_dev_container_writes_its_worktree_and_reaches_nothing_else() {
    if !podman_ready() {
        return;
    }
    let env = TestEnv::new();
    let ssh = env.root().join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::write(ssh.join("id_ed25519"), "SECRET KEY\n").unwrap();
    // A listener on this machine's loopback: `network = "off"` must not reach it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    env.write(
        ".devcontainer/Dockerfile",
        &format!("FROM {BASE}\nRUN echo from-the-image > /made.txt\n"),
    );
    env.write(
        ".devcontainer/devcontainer.json",
        r#"{
  // As an editor writes it: comments, a trailing comma.
  "build": { "dockerfile": "Dockerfile" },
  "postCreateCommand": "echo created > created.txt",
  "postStartCommand": "echo started > /tmp/started",
  "containerEnv": { "APP_ENV": "in-container" },
  "features": {},
}"#,
    );
    env.write(".gitignore", "created.txt\n");
    let probe = format!(
        r#"
try() {{ if ( eval "$1" ) 2>/dev/null; then echo "$2: yes"; else echo "$2: no"; fi; }}
{{
try 'echo x > "$REPO/evil.txt"' write-checkout
try 'cat "$REPO/baton.toml"' read-checkout
try 'test -e "$HOME/.ssh/id_ed25519"' see-ssh
try 'exec 3<>/dev/tcp/127.0.0.1/{port}' reach-host
try 'test -f /run/.containerenv' in-container
try 'git status --short >/dev/null && git log -1 --format=%s >/dev/null' git-works
echo "image: $(cat /made.txt)"
echo "started: $(cat /tmp/started)"
echo "env: $APP_ENV"
echo "setup: $(cat created.txt)"
}} > probe.txt
git add probe.txt && git commit -qm "committed in the container"
"#
    );
    contained(
        &env,
        "",
        "network = \"off\"\n",
        &format!("\n[[task]]\nid = \"probe\"\nprompt = '''{probe}'''\ngates = [\"test -f /made.txt\", \"test -e /tmp/started\"]\n"),
    );
    let check = output(baton(&env).arg("check"));
    let said = String::from_utf8_lossy(&check.stderr);
    assert!(
        said.contains("baton does not act on features (ignored)"),
        "{said}"
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let integration = r.report["integration_branch"].as_str().unwrap();
    let said = show(&env, integration, "probe.txt").unwrap();
    let log = std::process::Command::new("git")
        .args([
            "-C",
            env.repo.to_str().unwrap(),
            "log",
            "--format=%s",
            integration,
        ])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(
        log.contains("committed in the container"),
        "the agent's own commit came home: {log}"
    );
    for line in [
        "read-checkout: no",
        "see-ssh: no",
        "reach-host: no",
        "in-container: yes",
        "git-works: yes",
        "image: from-the-image",
        "started: started",
        "env: in-container",
        "setup: created",
    ] {
        assert!(said.contains(line), "{line}: {said}");
    }
    assert!(
        listener.accept().is_err(),
        "nothing connected to the host's listener"
    );
    assert!(!env.repo.join("evil.txt").exists());
    assert_eq!(
        std::fs::read_to_string(ssh.join("id_ed25519")).unwrap(),
        "SECRET KEY\n"
    );
    assert!(
        containers_of(&run_id(&r)).is_empty(),
        "no container outlives its run"
    );
    // The gates ran in containers of the image too, postStartCommand first.
    let doctor = output(baton(&env).arg("doctor"));
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(text.contains("ok  engine: podman"), "{text}");
    assert!(
        text.contains("(built from .devcontainer/devcontainer.json): here"),
        "{text}"
    );
}

#[test]
fn a_forwarded_port_of_the_dev_container_is_the_tasks_own_port() {
    if !podman_ready() {
        return;
    }
    let env = TestEnv::new();
    env.write(
        ".devcontainer/devcontainer.json",
        &format!("{{\"image\": \"{BASE}\", \"forwardPorts\": [8000]}}"),
    );
    // The agent serves on 8000 inside; the test reaches it at the task's
    // port on this machine, then lets it finish.
    let script = r#"
perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalAddr => "0.0.0.0", LocalPort => 8000, Listen => 1, ReuseAddr => 1) or die; open(F, ">", "listening"); print F "$ENV{BATON_PORT}\n"; close F; $c = $s->accept; print $c "inside\n"; close $c'
echo served > served.txt
"#;
    contained(
        &env,
        "",
        "",
        &format!("\n[[task]]\nid = \"web\"\nprompt = '''{script}'''\n"),
    );
    let child = Running(Some(spawn_baton(&env, &["run", "--json"])));
    let mut port = String::new();
    wait_for("the agent's server", 60, || {
        let found = latest_run_opt(&env).and_then(|r| {
            let wt = task(&r, "web")["worktree"].as_str()?.to_string();
            std::fs::read_to_string(std::path::Path::new(&wt).join("listening")).ok()
        });
        port = found.unwrap_or_default().trim().to_string();
        !port.is_empty()
    });
    let mut got = String::new();
    wait_for("an answer through the forwarded port", 20, || {
        use std::io::Read;
        got.clear();
        std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap()))
            .and_then(|mut c| c.read_to_string(&mut got))
            .is_ok()
            && !got.is_empty()
    });
    assert_eq!(got, "inside\n");
    let r = child.wait();
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
}

#[test]
fn an_agent_with_a_home_of_its_own_keeps_it_across_its_commands() {
    if !podman_ready() {
        return;
    }
    let env = TestEnv::new();
    // Its home is bound whole (once: the engine refuses a place twice).
    contained(
        &env,
        &on_base(),
        "home = \"hermetic\"\n",
        "\n[[task]]\nid = \"h\"\nprompt = 'echo kept > \"$HOME/note\"; echo \"$HOME\" > home.txt'\ngates = ['test \"$(cat \"$HOME/note\")\" = kept']\n",
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let integration = r.report["integration_branch"].as_str().unwrap();
    let home = show(&env, integration, "home.txt").unwrap();
    assert!(home.contains("/homes/h"), "{home}");
}

#[test]
fn a_memory_hog_in_a_container_is_killed_at_its_limit_and_says_so() {
    if !podman_ready() {
        return;
    }
    let env = TestEnv::new();
    contained(
        &env,
        &on_base(),
        "memory = \"64M\"\n",
        "\n[[task]]\nid = \"hog\"\nprompt = 'x=$(head -c 400000000 /dev/zero | tr \"\\0\" a); echo done'\n",
    );
    let r = run_json(&env, &[]);
    assert_ne!(r.code, 0);
    let t = task(&r.report, "hog");
    assert_eq!(t["status"], "failed", "{t}");
    let reason = t["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("killed at its memory limit of 64 MiB"),
        "{reason}"
    );
}

/// The pid of the watchdog baton `pid` started (`__watchdog`).
fn watchdog_of(pid: u32) -> Option<i32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let p: i32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        let ppid: u32 = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        (ppid == pid && String::from_utf8_lossy(&cmd).contains("__watchdog")).then_some(p)
    })
}

/// The engine clients (`podman run`) of `run`'s containers.
fn clients_of(run: &str) -> Vec<i32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|e| {
            let p: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).to_string();
            (cmd.starts_with("podman\0run\0") && cmd.contains(run)).then_some(p)
        })
        .collect()
}

/// Waits until `run` has a container that `before` does not hold: its name.
fn new_container(run: &str, before: &[String]) -> Vec<String> {
    let mut now = Vec::new();
    wait_for("the attempt's container", 60, || {
        now = containers_of(run);
        !now.is_empty() && now.iter().all(|c| !before.contains(c))
    });
    now
}

#[test]
fn stop_and_a_crash_of_baton_leave_no_container_once_the_run_resumes() {
    if !podman_ready() {
        return;
    }
    let env = TestEnv::new();
    contained(
        &env,
        &on_base(),
        "",
        "\n[[task]]\nid = \"slow\"\nprompt = 'sleep 300'\n",
    );
    let mut child = spawn_baton(&env, &["run"]);
    let mut run = String::new();
    wait_for("the run", 30, || {
        run = latest_run_opt(&env)
            .and_then(|r| r["run"].as_str().map(str::to_string))
            .unwrap_or_default();
        !run.is_empty()
    });
    new_container(&run, &[]);
    // kill -9 of baton: its watchdog ends the engine's client, and the
    // container goes with it.
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for("the container to go with baton", 30, || {
        containers_of(&run).is_empty()
    });
    // kill -9 of everything baton started on this machine (its watchdog,
    // the engine's client): the container is left, until the run resumes.
    let mut resumed = spawn_baton(&env, &["resume"]);
    let left = new_container(&run, &[]);
    let dog = watchdog_of(resumed.id()).expect("the resumed run's watchdog");
    let clients = clients_of(&run);
    assert!(!clients.is_empty(), "the engine's client runs");
    for pid in clients.into_iter().chain([dog]) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    resumed.kill().unwrap();
    resumed.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        containers_of(&run),
        left,
        "a crash of both leaves the container"
    );
    let resumed = spawn_baton(&env, &["resume"]);
    new_container(&run, &left);
    let out = output(baton(&env).args(["stop", "slow"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = resumed.wait_with_output().unwrap();
    assert!(done.status.code().is_some(), "resume ended");
    assert!(containers_of(&run).is_empty(), "{:?}", containers_of(&run));
}

#[test]
fn each_task_gets_its_own_service_and_cannot_reach_another_tasks() {
    if !podman_ready() {
        return;
    }
    let image = tcp_echo_image();
    let env = TestEnv::new();
    // Each task says where its service is, waits to be told the other's,
    // then reads its own and tries the other's.
    let probe = r#"
env | grep '^BATON_SERVICE_DB_' | sort > vars-$BATON_TASK.txt
echo "$BATON_SERVICE_DB_PORT" > port.txt
while [ ! -s other.txt ]; do sleep 0.1; done
read_port() { (exec 3<>/dev/tcp/127.0.0.1/$1 && timeout 5 cat <&3) 2>/dev/null || true; }
mine=$(read_port "$BATON_SERVICE_DB_PORT"); theirs=$(read_port "$(cat other.txt)")
printf 'mine: %s\ntheirs: %s\n' "${mine:-none}" "${theirs:-none}" > seen-$BATON_TASK.txt
rm port.txt other.txt
"#;
    for (wall, net) in [("bwrap", "off"), ("container", "off"), ("container", "on")] {
        env.write(
            "baton.toml",
            &format!(
                "[container]\nimage = \"{BASE}\"\n\n[[workspace.service]]\nname = \"db\"\nimage = \"{image}\"\nport = 7000\nenv = {{ GREETING = \"hello\" }}\nurl = \"tcp://{{host}}:{{port}}\"\n\n[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\nsandbox = \"{wall}\"\nnetwork = \"{net}\"\n\n[defaults]\nagent = \"sh\"\n\n[[task]]\nid = \"a\"\nprompt = '''{probe}'''\n\n[[task]]\nid = \"b\"\nprompt = '''{probe}'''\n"
            ),
        );
        env.commit_all(&format!("{wall} {net}"));
        let child = Running(Some(spawn_baton(&env, &["run", "--json"])));
        let mut desks: Vec<(std::path::PathBuf, String)> = Vec::new();
        wait_for("both tasks' services", 90, || {
            desks = latest_run_opt(&env)
                .into_iter()
                .flat_map(|r| {
                    ["a", "b"].map(|id| {
                        let wt = task(&r, id)["worktree"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string();
                        let port =
                            std::fs::read_to_string(std::path::Path::new(&wt).join("port.txt"));
                        (wt.into(), port.unwrap_or_default().trim().to_string())
                    })
                })
                .filter(|(_, p)| !p.is_empty())
                .collect();
            desks.len() == 2
        });
        assert_ne!(desks[0].1, desks[1].1, "one port each");
        std::fs::write(desks[0].0.join("other.txt"), &desks[1].1).unwrap();
        std::fs::write(desks[1].0.join("other.txt"), &desks[0].1).unwrap();
        let r = child.wait();
        assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
        let integration = r.report["integration_branch"].as_str().unwrap();
        let mut greeted = Vec::new();
        for id in ["a", "b"] {
            let vars = show(&env, integration, &format!("vars-{id}.txt")).unwrap();
            let port = vars
                .lines()
                .find_map(|l| l.strip_prefix("BATON_SERVICE_DB_PORT="))
                .unwrap();
            assert!(
                vars.contains(&format!("BATON_SERVICE_DB_URL=tcp://127.0.0.1:{port}")),
                "{vars}"
            );
            let seen = show(&env, integration, &format!("seen-{id}.txt")).unwrap();
            let mine = seen.lines().find_map(|l| l.strip_prefix("mine: ")).unwrap();
            assert!(mine.starts_with("hello from "), "{wall}/{net} {id}: {seen}");
            assert!(
                seen.contains("theirs: none"),
                "{wall}/{net} {id} reached the other's: {seen}"
            );
            greeted.push(mine.to_string());
        }
        assert_ne!(greeted[0], greeted[1], "two instances, one per task");
        assert!(
            containers_of(&run_id(&r)).is_empty(),
            "services go with their tasks"
        );
        let ready = store_rows(&env, "SELECT data FROM events WHERE kind = 'service_ready'");
        assert!(ready.len() >= 2, "{ready:?}");
    }
    let doctor = output(baton(&env).arg("doctor"));
    let text = String::from_utf8_lossy(&doctor.stdout);
    for line in [
        "ok  engine: podman",
        "ok  bridge: baton runs inside the image",
        "ok  service db: image baton.local/tcp-echo:test here",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
}

#[test]
fn a_retried_attempt_gets_a_fresh_service() {
    if !podman_ready() {
        return;
    }
    let image = tcp_echo_image();
    let env = TestEnv::new();
    // Attempt 1 meets its service and fails; attempt 2 meets another.
    let script = r#"
got=$( (exec 3<>/dev/tcp/127.0.0.1/$BATON_SERVICE_DB_PORT && timeout 5 cat <&3) )
echo "$BATON_ATTEMPT $BATON_SERVICE_DB_PORT $got" >> met.txt
test "$BATON_ATTEMPT" != 1
"#;
    env.write(
        "baton.toml",
        &format!("[[workspace.service]]\nname = \"db\"\nimage = \"{image}\"\nport = 7000\nenv = {{ GREETING = \"hi\" }}\n\n[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\n\n[[task]]\nid = \"t\"\nagent = \"sh\"\nretries = 1\nprompt = '''{script}'''\n"),
    );
    env.commit_all("plan");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let met = show(
        &env,
        r.report["integration_branch"].as_str().unwrap(),
        "met.txt",
    )
    .unwrap();
    let lines: Vec<Vec<&str>> = met.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(lines.len(), 2, "{met}");
    assert!(lines.iter().all(|l| l[2] == "hi"), "{met}");
    assert_ne!(lines[0][4], lines[1][4], "a fresh instance each: {met}");
    assert!(containers_of(&run_id(&r)).is_empty());
}

/// The reason task `t` failed, its one service `db` given `more`: it
/// never gets to run.
fn failed_by_its_service(more: &str) -> String {
    let env = TestEnv::new();
    write_plan(
        &env,
        &format!("[[workspace.service]]\nname = \"db\"\nimage = \"{BASE}\"\nport = 7000\n{more}\n[[task]]\nid = \"t\"\nprompt = \"echo never\"\n"),
    );
    let r = run_json(&env, &[]);
    assert_ne!(r.code, 0);
    assert!(
        containers_of(&run_id(&r)).is_empty(),
        "the service went with it"
    );
    task(&r.report, "t")["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_service_that_never_listens_fails_the_attempt_at_its_ready_timeout() {
    if !podman_ready() {
        return;
    }
    let reason = failed_by_its_service(
        "ready_timeout = \"2s\"\ncommand = [\"sh\", \"-c\", \"echo warming up; sleep 60\"]\n",
    );
    assert!(
        reason.contains("service db did not answer on port 7000 within 2.0s"),
        "{reason}"
    );
    assert!(reason.contains("warming up"), "{reason}");
}

#[test]
fn a_service_that_never_answers_fails_the_attempt_with_its_log() {
    if !podman_ready() {
        return;
    }
    let reason =
        failed_by_its_service("command = [\"sh\", \"-c\", \"echo no database here; exit 3\"]\n");
    assert!(
        reason.contains("service db stopped before it answered"),
        "{reason}"
    );
    assert!(reason.contains("no database here"), "{reason}");
}

/// Claude Code itself in a container: node and the CLI lent read-only from
/// this machine (`[container] mounts`), the model server on this machine's
/// loopback reached only through baton's proxy (`network` lists it), the
/// API key passed by name (never on the engine's command line).
#[test]
fn claude_code_does_its_task_in_a_container_through_the_proxy() {
    if !podman_ready() {
        return;
    }
    let Some(bins) = crate::test_real_agents::bins(&["claude"]) else {
        return;
    };
    use baton_testutils::model_server::{ModelServer, Scripts, Step};
    let server = ModelServer::start(Scripts::new().script(
        "hello",
        vec![
            Step::write("hello.txt", "hi from a container\n"),
            Step::say("wrote it"),
        ],
    ));
    let env = TestEnv::new();
    let agents = bins[0]
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .display()
        .to_string();
    let host = server
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let rules = format!("\nsandbox = \"container\"\nnetwork = [\"{host}\"]\n");
    let profile = crate::test_real_agents::profile_with(&env, "claude", &bins[0], &server, &[], "")
        .replacen('\n', &rules, 1);
    env.write(
        "baton.toml",
        &format!("[container]\nimage = \"{BASE}\"\nmounts = [{agents:?}, \"/usr/bin/node\"]\n\n{profile}[[task]]\nid = \"hello\"\nagent = \"claude\"\nprompt = \"Say hello. [[script:hello]]\"\ntimeout = \"4m\"\n"),
    );
    env.commit_all("plan");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let t = task(&r.report, "hello");
    assert_eq!(t["result"], "wrote it", "{t:#}");
    assert!(
        t["usage"]["input_tokens"].as_u64().unwrap_or(0) > 0,
        "{t:#}"
    );
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(
        show(&env, integration, "hello.txt").as_deref(),
        Some("hi from a container\n")
    );
    let q = "SELECT COUNT(*) FROM events WHERE kind = 'sandbox_connection' AND data LIKE '%\"allowed\":true%'";
    let through: u32 = store_rows(&env, q).concat().parse().unwrap_or(0);
    assert!(through > 0, "the model was reached through baton's proxy");
    assert!(containers_of(&run_id(&r)).is_empty());
}
