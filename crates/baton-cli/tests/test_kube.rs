//! The Kubernetes executor on a real one-node cluster (scripts/k8s-cluster.sh,
//! which scripts/test.sh starts and names in BATON_TEST_KUBECONFIG): attempts
//! run as Jobs whose pods fetch from baton's git door and push their work
//! back; stop deletes the Job without losing work; a baton killed mid-run
//! is resumed by following its Jobs, and no Job outlives its run.

use crate::common::*;
use baton_testutils::{fake_agent, TestEnv};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams};
use std::path::Path;
use std::time::Duration;

/// The cluster's kubeconfig, or None (the test is skipped) where no cluster
/// runs; BATON_REQUIRE_K8S=1 (the README's test command) makes that a failure.
pub(crate) fn kubeconfig() -> Option<String> {
    match std::env::var("BATON_TEST_KUBECONFIG") {
        Ok(k) if Path::new(&k).exists() => Some(k),
        _ if std::env::var("BATON_REQUIRE_K8S").is_ok_and(|v| v == "1") => {
            panic!("BATON_REQUIRE_K8S=1 but BATON_TEST_KUBECONFIG names no kubeconfig (start one with scripts/k8s-cluster.sh up)")
        }
        _ => {
            eprintln!("skipped: no cluster (BATON_TEST_KUBECONFIG; scripts/k8s-cluster.sh up)");
            None
        }
    }
}

/// A plan header: profile `pod` runs on the cluster (baton and the fake
/// agent mounted from this build), profile `here` stays local.
pub(crate) fn header(kubeconfig: &str) -> String {
    let baton = Path::new(baton_bin());
    let bin_dir = baton.parent().unwrap().display().to_string();
    let fake = fake_agent().display().to_string();
    let fake_dir = Path::new(&fake).parent().unwrap().display().to_string();
    let mut mounts = vec![format!("{bin_dir:?}")];
    if fake_dir != bin_dir {
        mounts.push(format!("{fake_dir:?}"));
    }
    format!(
        r#"[executor]
kind = "kubernetes"
image = "baton.local/debian:bookworm"
baton = {baton:?}
host_network = true
mounts = [{mounts}]
kubeconfig = {kubeconfig:?}
grace = "10s"

[agent.pod]
adapter = "exec"
command = [{fake:?}]

[agent.here]
adapter = "exec"
command = [{fake:?}]
executor = "local"

[defaults]
agent = "pod"

"#,
        mounts = mounts.join(", ")
    )
}

/// Runs `f` with a client of the test cluster.
pub(crate) fn with_client<T>(kubeconfig: &str, f: impl AsyncFnOnce(kube::Client) -> T) -> T {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        f(kube::Client::try_from(config).unwrap()).await
    })
}

/// Each file has this text on the run's integration branch.
pub(crate) fn assert_integrated(env: &TestEnv, run: &str, files: &[(&str, &str)]) {
    let integration = format!("baton/{run}/integration");
    for (path, text) in files {
        assert_eq!(
            show(env, &integration, path).as_deref(),
            Some(*text),
            "{path}"
        );
    }
}

pub(crate) fn jobs_of(kubeconfig: &str, run: &str) -> Vec<Job> {
    with_client(kubeconfig, async |client| {
        let jobs: Api<Job> = Api::namespaced(client, "default");
        let lp = ListParams::default().labels(&format!("baton.dev/run={run}"));
        jobs.list(&lp).await.unwrap().items
    })
}

fn succeeded(j: &Job) -> bool {
    j.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) > 0
}

pub(crate) fn run_id(env: &TestEnv) -> String {
    latest_run_opt(env).expect("a run")["run"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn four_tasks_run_as_jobs_stream_live_gate_in_their_pods_and_merge() {
    let Some(kc) = kubeconfig() else { return };
    let env = TestEnv::new();
    let plan = format!(
        r#"{}[[task]]
id = "a"
prompt = "say started a\nsleep 3\nwrite a.txt from a pod"
gates = ["test -f a.txt", "grep -q pod a.txt"]

[[task]]
id = "b"
prompt = "write b.txt from b\ncommit b by itself\nwrite b2.txt left uncommitted"

[[task]]
id = "c"
needs = ["a", "b"]
prompt = "write c.txt saw a and b"
gates = ["test -f a.txt && test -f b.txt"]

[[task]]
id = "d"
agent = "here"
prompt = "write d.txt from here"
"#,
        header(&kc)
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let child = spawn_baton(&env, &["run", "--json"]);
    // Live: the pod's first line is in the task's log while it still runs.
    wait_for("task a's pod to speak", 120, || {
        let out = baton(&env).args(["logs", "a"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).contains("started a")
    });
    assert_eq!(task_status(&env, "a"), "running");
    let out = child.wait_with_output_timeout(Duration::from_secs(300));
    let run = parse_run(out);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for id in ["a", "b", "c", "d"] {
        assert_eq!(
            task(&run.report, id)["status"],
            "succeeded",
            "{id}: {:#}",
            run.report
        );
    }
    let id = run.report["run"].as_str().unwrap().to_string();
    assert_integrated(
        &env,
        &id,
        &[
            ("a.txt", "from a pod\n"),
            ("b2.txt", "left uncommitted\n"),
            ("c.txt", "saw a and b\n"),
            ("d.txt", "from here\n"),
        ],
    );
    // The gates ran in the pod and are recorded as the task's.
    let gates = store_rows(
        &env,
        &format!("SELECT count(*) FROM events WHERE run_id = '{id}' AND task_id = 'a' AND kind = 'gate_finished'"),
    );
    assert_eq!(gates, vec!["2"]);
    // The attempt's work is kept under its ref, pushed by the pod.
    let kept = env.git(&["rev-parse", &format!("refs/baton/{id}/a/1")]);
    assert_eq!(
        kept.trim(),
        env.git(&["rev-parse", &format!("baton/{id}/task/a")])
            .trim()
    );
    assert!(jobs_of(&kc, &id).is_empty(), "no Job outlives its run");
}

#[test]
fn stop_deletes_the_job_and_the_work_so_far_is_on_the_branch() {
    let Some(kc) = kubeconfig() else { return };
    let env = TestEnv::new();
    let plan = format!(
        "{}[[task]]\nid = \"long\"\nprompt = \"write half.txt first half\\nsay half written\\nsleep 300\"\n",
        header(&kc)
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let child = spawn_baton(&env, &["run", "--json"]);
    wait_for("the pod to write half", 120, || {
        let out = baton(&env).args(["logs", "long"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).contains("half written")
    });
    let id = run_id(&env);
    assert_eq!(jobs_of(&kc, &id).len(), 1);
    let out = output(baton(&env).args(["stop", "long"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = child.wait_with_output_timeout(Duration::from_secs(120));
    let run = parse_run(out);
    assert_eq!(
        task(&run.report, "long")["status"],
        "stopped",
        "{:#}",
        run.report
    );
    let branch = format!("baton/{id}/task/long");
    assert_eq!(
        show(&env, &branch, "half.txt").as_deref(),
        Some("first half\n")
    );
    assert!(jobs_of(&kc, &id).is_empty());
}

#[test]
fn a_baton_killed_mid_run_is_resumed_by_following_its_jobs_and_no_work_is_lost() {
    let Some(kc) = kubeconfig() else { return };
    let env = TestEnv::new();
    let plan = format!(
        r#"{}[[task]]
id = "quick"
prompt = "say quick started\nsleep 4\nwrite quick.txt done\nsay quick done"

[[task]]
id = "slow"
prompt = "say slow started\nsleep 25\nwrite slow.txt done"
"#,
        header(&kc)
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let mut child = spawn_baton(&env, &["run", "--json"]);
    wait_for("both pods to run", 120, || {
        let out = baton(&env).args(["logs", "slow"]).output().unwrap();
        let quick = baton(&env).args(["logs", "quick"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).contains("slow started")
            && String::from_utf8_lossy(&quick.stdout).contains("quick started")
    });
    let id = run_id(&env);
    child.kill().unwrap(); // SIGKILL: no cleanup at all
    let _ = child.wait();
    // The Jobs go on without baton; quick's agent ends and its pod waits
    // to push its work.
    std::thread::sleep(Duration::from_secs(8));
    let jobs = jobs_of(&kc, &id);
    assert_eq!(jobs.len(), 2, "baton's death deleted no Job");
    assert!(!jobs.iter().any(succeeded), "no pod ended without pushing");
    let out = baton(&env)
        .args(["resume", "--json"])
        .output()
        .expect("resume");
    let run = parse_run(out);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for t in ["quick", "slow"] {
        assert_eq!(
            task(&run.report, t)["status"],
            "succeeded",
            "{t}: {:#}",
            run.report
        );
        // The Job's attempt taken up as itself: no second attempt.
        assert_eq!(task(&run.report, t)["attempts"], 1, "{t}: {:#}", run.report);
    }
    assert_integrated(
        &env,
        &id,
        &[("quick.txt", "done\n"), ("slow.txt", "done\n")],
    );
    // Neither task ran again: the resumed attempts followed the first Jobs.
    for t in ["quick", "slow"] {
        let out = baton(&env).args(["logs", t]).output().unwrap();
        let logs = String::from_utf8_lossy(&out.stdout);
        assert!(
            logs.contains("of attempt 1, left running by an earlier baton"),
            "{t}: {logs}"
        );
    }
    assert!(jobs_of(&kc, &id).is_empty(), "none left behind");
}

/// A Secret in the default namespace (made again if there).
fn secret(kubeconfig: &str, name: &str, data: &[(&str, &str)]) {
    use k8s_openapi::api::core::v1::Secret;
    with_client(kubeconfig, async |client| {
        let secrets: Api<Secret> = Api::namespaced(client, "default");
        let _ = secrets.delete(name, &Default::default()).await;
        let s = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            string_data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        };
        secrets.create(&Default::default(), &s).await.unwrap();
    });
}

/// Claude Code itself in a pod: node and the CLI mounted from this machine,
/// the model server on 127.0.0.1 (the pod shares the host's network), its
/// API key from a Secret (never in the Job).
#[test]
fn claude_code_does_its_task_in_a_pod_with_its_key_from_a_secret() {
    let Some(kc) = kubeconfig() else { return };
    let Some(bins) = crate::test_real_agents::bins(&["claude"]) else {
        return;
    };
    use baton_testutils::model_server::{ModelServer, Scripts, Step};
    let server = ModelServer::start(Scripts::new().script(
        "hello",
        vec![
            Step::write("hello.txt", "hi from a pod\n"),
            Step::say("wrote it"),
        ],
    ));
    secret(
        &kc,
        "baton-test-anthropic",
        &[("ANTHROPIC_API_KEY", "mock-key")],
    );
    let env = TestEnv::new();
    let agents = bins[0]
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .display()
        .to_string();
    let node = "/usr/bin/node:/opt/node/bin/node";
    let path = "/opt/node/bin:/usr/local/bin:/usr/bin:/bin";
    let head = header(&kc).replacen(
        "mounts = [",
        &format!("env_from = [\"baton-test-anthropic\"]\nmounts = [{agents:?}, {node:?}, "),
        1,
    );
    let profile = crate::test_real_agents::profile_with(
        &env,
        "claude",
        &bins[0],
        &server,
        &[("PATH", path)],
        "",
    );
    let plan = format!(
        "{head}{profile}[[task]]\nid = \"hello\"\nagent = \"claude\"\nprompt = \"Say hello. [[script:hello]]\"\ntimeout = \"4m\"\n"
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = task(&r.report, "hello");
    assert_eq!(t["status"], "succeeded", "{t:#}");
    assert_eq!(t["result"], "wrote it");
    assert!(
        t["usage"]["input_tokens"].as_u64().unwrap_or(0) > 0,
        "usage came through the pod's log: {t:#}"
    );
    let id = r.report["run"].as_str().unwrap().to_string();
    assert_integrated(&env, &id, &[("hello.txt", "hi from a pod\n")]);
    let logs = output(baton(&env).args(["logs", "hello"]));
    let logs =
        String::from_utf8_lossy(&logs.stderr).into_owned() + &String::from_utf8_lossy(&logs.stdout);
    assert!(
        logs.contains("not put in the Job") && logs.contains("ANTHROPIC_API_KEY"),
        "{logs}"
    );
    assert!(!logs.contains("mock-key"), "the key is in no log");
    assert!(jobs_of(&kc, &id).is_empty());
}

/// A plan of one task (`task`, its script of the same name) for Claude Code
/// in a pod behind the gateway (pods share the host's network here: they
/// reach it at 127.0.0.1), its profile holding `key`.
fn claude_in_a_pod_behind_the_gateway(
    env: &TestEnv,
    kc: &str,
    claude: &Path,
    server: &baton_testutils::model_server::ModelServer,
    key: &str,
    task: &str,
) -> String {
    let agents = claude.parent().unwrap().parent().unwrap();
    let agents = agents.display().to_string();
    let node = "/usr/bin/node:/opt/node/bin/node";
    let path = "/opt/node/bin:/usr/local/bin:/usr/bin:/bin";
    let mounts = format!("mounts = [{agents:?}, {node:?}, ");
    let head = header(kc).replacen("mounts = [", &mounts, 1);
    let more = [("PATH", path), ("ANTHROPIC_API_KEY", key)];
    let profile = crate::test_real_agents::profile_with(env, "claude", claude, server, &more, "");
    format!(
        "[gateway]\nhost = \"127.0.0.1\"\n\n{head}{profile}[[task]]\nid = \"{task}\"\nagent = \"claude\"\nprompt = \"Do it. [[script:{task}]]\"\ntimeout = \"4m\"\n"
    )
}

/// The recommended setup: Claude Code in a pod reaches its provider through
/// baton's model gateway (`[gateway] host`: the name pods reach this
/// machine by; the test cluster shares the host's network), with a token
/// of its attempt's: no Secret, and the Job, the pod and every file baton
/// wrote hold no key.
#[test]
fn claude_code_in_a_pod_goes_through_the_gateway_and_the_job_holds_no_key() {
    let Some(kc) = kubeconfig() else { return };
    let Some(bins) = crate::test_real_agents::bins(&["claude"]) else {
        return;
    };
    use baton_testutils::model_server::{ModelServer, Scripts, Step};
    const REAL_KEY: &str = "sk-ant-real-key-for-the-pod-5521";
    let server = ModelServer::start(Scripts::new().script(
        "hello",
        vec![
            Step::write("hello.txt", "hi through the gateway\n"),
            Step::run("env > pod-env.txt"),
            Step::say("wrote it"),
        ],
    ));
    let env = TestEnv::new();
    let plan = claude_in_a_pod_behind_the_gateway(&env, &kc, &bins[0], &server, REAL_KEY, "hello");
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = task(&r.report, "hello");
    assert_eq!(t["status"], "succeeded", "{t:#}");
    let id = r.report["run"].as_str().unwrap().to_string();
    let branch = r.report["integration_branch"].as_str().unwrap();
    let seen = show(&env, branch, "pod-env.txt").expect("the pod's environment");
    assert!(!seen.contains(REAL_KEY), "the pod held the key:\n{seen}");
    assert!(
        seen.contains("ANTHROPIC_BASE_URL=http://127.0.0.1:") && seen.contains("baton-gw-"),
        "the pod holds the gateway and a token:\n{seen}"
    );
    // The provider got the key, from the gateway, on every model request.
    let model_calls: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|q| q.path.contains("/messages"))
        .collect();
    assert!(!model_calls.is_empty());
    assert!(
        model_calls
            .iter()
            .all(|q| q.header("x-api-key") == Some(REAL_KEY)),
        "{model_calls:?}"
    );
    assert!(
        t["usage"]["gateway_requests"].as_u64().unwrap_or(0) > 0,
        "counted at the wire: {t:#}"
    );
    let logs = output(baton(&env).args(["logs", "hello"]));
    let logs =
        String::from_utf8_lossy(&logs.stderr).into_owned() + &String::from_utf8_lossy(&logs.stdout);
    assert!(
        !logs.contains("not put in the Job"),
        "nothing was dropped: {logs}"
    );
    assert_nowhere_in_state(&env, REAL_KEY);
    assert!(jobs_of(&kc, &id).is_empty());
}

/// baton is killed while Claude Code in a pod runs a tool; its next
/// request finds no gateway until `baton resume` starts it again at the
/// same address and honours the token the pod holds: the adopted Job's
/// agent goes on where it was (no second run of it), through the gateway.
#[test]
fn a_resumed_run_honours_the_token_of_the_pod_it_adopts() {
    let Some(kc) = kubeconfig() else { return };
    let Some(bins) = crate::test_real_agents::bins(&["claude"]) else {
        return;
    };
    use baton_testutils::model_server::{ModelServer, Scripts, Step};
    const REAL_KEY: &str = "sk-ant-real-key-adopted-8812";
    let server = ModelServer::start(Scripts::new().script(
        "long",
        vec![
            Step::run("sleep 10"),
            Step::write("after.txt", "after the restart\n"),
            Step::say("done after all"),
        ],
    ));
    let env = TestEnv::new();
    let plan = claude_in_a_pod_behind_the_gateway(&env, &kc, &bins[0], &server, REAL_KEY, "long");
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let mut child = spawn_baton(&env, &["run", "--json"]);
    wait_for("the pod's agent to run its tool", 120, || {
        let out = baton(&env).args(["logs", "long"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).contains("sleep 10")
    });
    let id = run_id(&env);
    child.kill().unwrap(); // SIGKILL: the gateway goes with it
    let _ = child.wait();
    let out = baton(&env)
        .args(["resume", "--json"])
        .output()
        .expect("resume");
    let run = parse_run(out);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let t = task(&run.report, "long");
    assert_eq!(t["status"], "succeeded", "{t:#}");
    assert_eq!(t["result"], "done after all", "{t:#}");
    assert_integrated(&env, &id, &[("after.txt", "after the restart\n")]);
    let out = baton(&env).args(["logs", "long"]).output().unwrap();
    let logs = String::from_utf8_lossy(&out.stdout);
    assert!(
        logs.contains("of attempt 1, left running by an earlier baton"),
        "{logs}"
    );
    let played: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|q| q.step.is_some())
        .collect();
    assert_eq!(played.len(), 3, "each step once: {played:?}");
    assert!(played
        .iter()
        .all(|q| q.header("x-api-key") == Some(REAL_KEY)));
    assert_nowhere_in_state(&env, REAL_KEY);
    assert!(jobs_of(&kc, &id).is_empty(), "none left behind");
}

#[test]
fn doctor_checks_the_cluster_and_its_image() {
    let Some(kc) = kubeconfig() else { return };
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        &format!("{}[[task]]\nid = \"a\"\nprompt = \"x\"\n", header(&kc)),
    );
    let out = output(baton(&env).arg("doctor"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    for want in [
        "pod [exec]: runs",
        "ok  reachable: Kubernetes 1.20",
        "ok  namespace default: there",
        "ok  permissions: create, list and delete Jobs",
        "ok  image baton.local/debian:bookworm: baton ",
        "git version",
    ] {
        assert!(text.contains(want), "{want:?} in {text}");
    }
    // A namespace that is not there, an image that is not there.
    let bad = header(&kc).replace(
        "image = \"baton.local/debian:bookworm\"",
        "image = \"baton.local/nothing:1\"\nnamespace = \"nowhere\"",
    );
    env.write(
        "baton.toml",
        &format!("{bad}[[task]]\nid = \"a\"\nprompt = \"x\"\n"),
    );
    let out = output(baton(&env).arg("doctor"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("NO  namespace nowhere: missing"), "{text}");
    assert!(text.contains("NO  image baton.local/nothing:1"), "{text}");
}

/// The plan header with a `remote`: a bare repository both baton and the
/// pods reach (mounted read-write at its own path); and that path.
fn remote_header(env: &TestEnv, kc: &str) -> (String, String) {
    let bare = env.scratch("shared.git");
    let out = std::process::Command::new("git")
        .args(["init", "-q", "--bare"])
        .arg(&bare)
        .output()
        .unwrap();
    assert!(out.status.success());
    let bare = bare.display().to_string();
    let head = header(kc).replacen(
        "mounts = [",
        &format!("remote = {bare:?}\nmounts = [\"{bare}:{bare}:rw\", "),
        1,
    );
    (head, bare)
}

/// `remote`: the pods fetch from and push to a repository both sides reach
/// (here a bare repository mounted read-write), not baton's own door.
#[test]
fn pods_can_work_through_a_remote_both_sides_reach() {
    let Some(kc) = kubeconfig() else { return };
    let env = TestEnv::new();
    let (head, bare) = remote_header(&env, &kc);
    env.write(
        "baton.toml",
        &format!("{head}[[task]]\nid = \"a\"\nprompt = \"write a.txt through the remote\"\n"),
    );
    env.commit_all("plan");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let id = r.report["run"].as_str().unwrap().to_string();
    assert_integrated(&env, &id, &[("a.txt", "through the remote\n")]);
    // The work went through the shared repository.
    let there = std::process::Command::new("git")
        .args([
            "--git-dir",
            &bare,
            "rev-parse",
            &format!("refs/baton/{id}/a/1"),
        ])
        .output()
        .unwrap();
    assert!(there.status.success(), "the pod pushed to the remote");
    let logs = output(baton(&env).args(["logs", "a"]));
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(!logs.contains("/git/"), "no door was used: {logs}");
}

/// The pod's own timeout ends its agent; the task fails as a timeout with
/// the work so far on its branch, and its Job is gone.
#[test]
fn a_timeout_in_the_pod_fails_the_task_as_a_timeout_and_keeps_its_work() {
    let Some(kc) = kubeconfig() else { return };
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        &format!(
            "{}[[task]]\nid = \"t\"\nprompt = \"write part.txt so far\\nsleep 120\"\ntimeout = \"4s\"\nretries = 0\n",
            header(&kc)
        ),
    );
    env.commit_all("plan");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let t = task(&r.report, "t");
    assert_eq!(t["status"], "failed", "{t:#}");
    assert!(
        t["reason"].as_str().unwrap().contains("timed out after 4"),
        "{t:#}"
    );
    let id = r.report["run"].as_str().unwrap().to_string();
    let branch = format!("baton/{id}/task/t");
    assert_eq!(show(&env, &branch, "part.txt").as_deref(), Some("so far\n"));
    assert!(jobs_of(&kc, &id).is_empty());
}

/// With a remote, a pod finishes (and pushes) while baton is dead: the
/// resumed run collects that finished Job without running the task again.
#[test]
fn a_job_that_finished_while_baton_was_dead_is_collected_not_run_again() {
    let Some(kc) = kubeconfig() else { return };
    let env = TestEnv::new();
    let (head, _) = remote_header(&env, &kc);
    env.write(
        "baton.toml",
        &format!(
            "{head}[[task]]\nid = \"t\"\nprompt = \"say begun\\nsleep 3\\nwrite t.txt once\"\n"
        ),
    );
    env.commit_all("plan");
    let mut child = spawn_baton(&env, &["run", "--json"]);
    wait_for("the pod to begin", 120, || {
        let out = baton(&env).args(["logs", "t"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).contains("begun")
    });
    let id = run_id(&env);
    child.kill().unwrap();
    let _ = child.wait();
    wait_for("the Job to finish without baton", 120, || {
        jobs_of(&kc, &id).iter().any(succeeded)
    });
    let r = parse_run(output(baton(&env).args(["resume", "--json"])));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        task(&r.report, "t")["status"],
        "succeeded",
        "{:#}",
        r.report
    );
    assert_integrated(&env, &id, &[("t.txt", "once\n")]);
    let logs = output(baton(&env).args(["logs", "t"]));
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(
        logs.contains("of attempt 1, left running by an earlier baton"),
        "{logs}"
    );
    assert_eq!(
        logs.matches("begun").count(),
        1,
        "attempt 1's log is the collected one, and no new run: {logs}"
    );
    assert!(jobs_of(&kc, &id).is_empty());
}

/// `baton serve` drives a run on the cluster and crashes; started again,
/// it resumes the run and follows the Job its first life made.
#[test]
fn a_restarted_server_follows_the_jobs_of_the_run_it_was_driving() {
    let Some(kc) = kubeconfig() else { return };
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        &format!(
            "{}[[task]]\nid = \"t\"\nprompt = \"say begun\\nsleep 8\\nwrite t.txt served\"\n",
            header(&kc)
        ),
    );
    env.commit_all("plan");
    let srv = crate::test_serve::serve(&env, "127.0.0.1:0");
    let mut follower = spawn_baton(&env, &["run", "--json"]);
    wait_for("the pod to begin", 120, || {
        let out = baton(&env).args(["logs", "t"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).contains("begun")
    });
    let id = run_id(&env);
    srv.crash();
    let _ = follower.kill();
    let _ = follower.wait();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(jobs_of(&kc, &id).len(), 1, "the crash deleted no Job");
    let _srv = crate::test_serve::serve(&env, "127.0.0.1:0");
    wait_for("the resumed task to succeed", 120, || {
        latest_run_opt(&env)
            .map(|r| r["run"] == id.as_str() && task(&r, "t")["status"] == "succeeded")
            .unwrap_or(false)
    });
    assert_integrated(&env, &id, &[("t.txt", "served\n")]);
    let logs = output(baton(&env).args(["logs", "t"]));
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(
        logs.contains("of attempt 1, left running by an earlier baton"),
        "{logs}"
    );
    wait_for("no Job of the run left", 30, || {
        jobs_of(&kc, &id).is_empty()
    });
}

/// A Job labelled as run `run`'s that no attempt of it follows (what a
/// crash between making a Job and recording it would leave).
fn stray_job(kubeconfig: &str, run: &str) {
    use k8s_openapi::api::batch::v1::JobSpec;
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
    with_client(kubeconfig, async |client| {
        let jobs: Api<Job> = Api::namespaced(client, "default");
        let job = Job {
            metadata: kube::api::ObjectMeta {
                name: Some(format!("stray-{run}")),
                labels: Some([("baton.dev/run".to_string(), run.to_string())].into()),
                ..Default::default()
            },
            spec: Some(JobSpec {
                template: PodTemplateSpec {
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "stray".into(),
                            image: Some("baton.local/debian:bookworm".into()),
                            image_pull_policy: Some("Never".into()),
                            command: Some(vec!["sleep".into(), "300".into()]),
                            ..Default::default()
                        }],
                        restart_policy: Some("Never".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        };
        jobs.create(&Default::default(), &job).await.unwrap();
    });
}

/// The engine sweeps its run's Jobs at its end, whoever drives it: here
/// `baton serve`, with a Job of the run that no attempt follows.
#[test]
fn a_run_that_baton_serve_drives_leaves_no_job_behind_even_one_it_did_not_make() {
    let Some(kc) = kubeconfig() else { return };
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        &format!(
            "{}[[task]]\nid = \"t\"\nprompt = \"say begun\\nsleep 3\\nwrite t.txt served\"\n",
            header(&kc)
        ),
    );
    env.commit_all("plan");
    let _srv = crate::test_serve::serve(&env, "127.0.0.1:0");
    let run = spawn_baton(&env, &["run", "--json"]);
    wait_for("the pod to begin", 120, || {
        let out = baton(&env).args(["logs", "t"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).contains("begun")
    });
    let id = run_id(&env);
    stray_job(&kc, &id);
    assert_eq!(jobs_of(&kc, &id).len(), 2);
    let out = run.wait_with_output_timeout(Duration::from_secs(120));
    assert_eq!(parse_run(out).code, 0);
    wait_for("no Job of the run left", 30, || {
        jobs_of(&kc, &id).is_empty()
    });
}

/// `[workspace] setup` runs in the pod, after its fetch: what it makes
/// (ignored, so never in git) is there for the agent and its gates.
#[test]
fn setup_runs_in_the_pod_where_the_agent_works() {
    let Some(kc) = kubeconfig() else { return };
    let env = TestEnv::new();
    env.write(".gitignore", "deps/\n");
    let plan = format!(
        "[workspace]\nsetup = [\"mkdir -p deps && echo built > deps/lib.txt\"]\n\n{}[[task]]\nid = \"t\"\nprompt = \"write t.txt t\"\ngates = [\"grep -q built deps/lib.txt\"]\n",
        header(&kc)
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let logs = output(baton(&env).args(["logs", "t"]));
    let logs =
        String::from_utf8_lossy(&logs.stdout).into_owned() + &String::from_utf8_lossy(&logs.stderr);
    assert!(logs.contains("baton (pod): setup `mkdir -p deps"), "{logs}");
    let id = run_id(&env);
    assert!(jobs_of(&kc, &id).is_empty());
}

/// A message to Claude Code running in a pod reaches its running session
/// (the follower hands it to the git door, the pod asks for it there): the
/// same attempt goes on, no Job is made again.
#[test]
fn steering_reaches_claude_code_running_in_a_pod() {
    let Some(kc) = kubeconfig() else { return };
    let Some(bins) = crate::test_real_agents::bins(&["claude"]) else {
        return;
    };
    let server = crate::test_real_agents::steer_server("steered");
    let env = TestEnv::new();
    let plan =
        claude_in_a_pod_behind_the_gateway(&env, &kc, &bins[0], &server, "sk-ant-k", "steered");
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let child = spawn_baton(&env, &["run", "--json"]);
    crate::test_real_agents::steer_mid_turn(&env, child, &server, "steered");
    assert!(jobs_of(&kc, &run_id(&env)).is_empty());
}
