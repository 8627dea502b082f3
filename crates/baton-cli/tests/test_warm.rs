//! Warm pods (`[executor] warm = N`) on the test cluster: attempts claim
//! pods that wait for them, a resumed run follows the claimed ones, and
//! with `reuse = true` one pod takes one attempt after another, tidied in
//! between, and is replaced when it goes. No pod outlives its run.

use crate::common::*;
use crate::test_kube::{assert_integrated, header, jobs_of, kubeconfig, run_id, with_client};
use baton_testutils::TestEnv;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams};
use std::time::Duration;

/// [`header`] with `n` warm pods, reused or not.
fn warm_header(kc: &str, n: u32, reuse: bool) -> String {
    let warm = format!(
        "kind = \"kubernetes\"\nwarm = {n}\n{}",
        if reuse { "reuse = true\n" } else { "" }
    );
    header(kc).replacen("kind = \"kubernetes\"\n", &warm, 1)
}

/// All `baton logs` shows of task `t`.
fn logs_of(env: &TestEnv, t: &str) -> String {
    let out = baton(env).args(["logs", t]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The word after each `says` in `text`, in order.
fn named_after(text: &str, says: &str) -> Vec<String> {
    text.match_indices(says)
        .filter_map(|(at, _)| text[at + says.len()..].split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The warm pods' Jobs task `t`'s attempts ran in, in order.
fn warm_pods_of(env: &TestEnv, t: &str) -> Vec<String> {
    let pods = named_after(&logs_of(env, t), "runs in the warm pod of Job ");
    assert!(!pods.is_empty(), "{t} ran in no warm pod");
    pods
}

/// `warm = 2`: pods kept waiting while the run goes on. Attempts claim
/// them (their Jobs labelled as the attempts'), the pool makes others, a
/// baton killed mid-run is resumed by following the claimed pods, and no
/// pod, warm or claimed, outlives the run.
#[test]
fn attempts_claim_warm_pods_and_none_is_left_after_a_crash_and_resume() {
    let Some(kc) = kubeconfig() else { return };
    let env = TestEnv::new();
    let head = warm_header(&kc, 2, false);
    let plan = format!(
        "{head}[[task]]\nid = \"a\"\nprompt = \"write a.txt a\"\n\n[[task]]\nid = \"b\"\nneeds = [\"a\"]\nprompt = \"say b started\\nsleep 20\\nwrite b.txt b\"\n\n[[task]]\nid = \"c\"\nneeds = [\"a\"]\nprompt = \"say c started\\nsleep 20\\nwrite c.txt c\"\n"
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let mut child = spawn_baton(&env, &["run", "--json"]);
    let logs = |t: &str| logs_of(&env, t);
    wait_for("b and c to run in pods", 120, || {
        logs("b").contains("b started") && logs("c").contains("c started")
    });
    let id = run_id(&env);
    // Two waiting pods again (made as the first were claimed), besides the claimed ones.
    wait_for("the pool to make new warm pods", 60, || {
        jobs_of(&kc, &id)
            .iter()
            .filter(|j| {
                j.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("baton.dev/warm"))
                    .map(String::as_str)
                    == Some("idle")
            })
            .count()
            >= 1
    });
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let r = parse_run(output(baton(&env).args(["resume", "--json"])));
    assert_eq!(r.code, 0, "{}", r.stderr);
    for t in ["a", "b", "c"] {
        assert_eq!(
            task(&r.report, t)["status"],
            "succeeded",
            "{t}: {:#}",
            r.report
        );
        assert_eq!(task(&r.report, t)["attempts"], 1, "{t}: {:#}", r.report);
    }
    // a ran in a warm pod; b and c, which ran in warm pods when baton
    // died, are followed there by the resumed run.
    let a = logs("a");
    assert!(a.contains("runs in the warm pod of Job baton-warm-"), "{a}");
    for t in ["b", "c"] {
        let l = logs(t);
        assert!(l.contains("following the Job baton-warm-"), "{t}: {l}");
        assert!(l.contains("left running by an earlier baton"), "{t}: {l}");
    }
    assert_integrated(
        &env,
        &id,
        &[("a.txt", "a\n"), ("b.txt", "b\n"), ("c.txt", "c\n")],
    );
    assert!(jobs_of(&kc, &id).is_empty(), "none left behind");
}

/// `reuse = true`: one warm pod takes the run's attempts one after
/// another. What an attempt left (a process that escaped its group, an
/// ignored file in its worktree) is gone when the next one starts there,
/// and the pod's Job goes with the run.
#[test]
fn a_reused_warm_pod_takes_the_next_attempt_with_nothing_of_the_last_left() {
    let Some(kc) = kubeconfig() else { return };
    let env = TestEnv::new();
    env.write(".gitignore", "scratch/\n");
    let head = warm_header(&kc, 1, true);
    let sh = "[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\n\n";
    // It also looks for the warm door's address (and its token): in its
    // environment, and in the pod's first process's.
    let escape = "mkdir -p scratch && touch scratch/left && pwd > where.txt && echo 1 > f1.txt && (setsid sleep 600 </dev/null >/dev/null 2>&1 &) && sleep 0.5; (env | grep -c BATON_WARM_UR[L] || true) > door.txt; (tr '\\\\0' '\\\\n' < /proc/1/environ 2>/dev/null | grep -c BATON_WARM_UR[L] || true) >> door.txt";
    let look = "n=0; for p in /proc/[0-9]*; do if tr '\\\\0' ' ' < $p/cmdline 2>/dev/null | grep -q '^sleep 600'; then n=$((n+1)); fi; done; echo $n > sleeps.txt; if test -e \\\"$(cat where.txt)/scratch/left\\\"; then echo yes; else echo no; fi > left.txt";
    let plan = format!(
        "{head}{sh}[[task]]\nid = \"t1\"\nagent = \"sh\"\nprompt = \"{escape}\"\n\n[[task]]\nid = \"t2\"\nagent = \"sh\"\nneeds = [\"t1\"]\nprompt = \"{look}\"\n\n[[task]]\nid = \"t3\"\nneeds = [\"t2\"]\nprompt = \"write f3.txt 3\"\n"
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let id = run_id(&env);
    assert_integrated(
        &env,
        &id,
        &[
            ("sleeps.txt", "0\n"),
            ("left.txt", "no\n"),
            ("f3.txt", "3\n"),
            ("door.txt", "0\n0\n"),
        ],
    );
    let first = warm_pods_of(&env, "t1");
    assert!(first[0].starts_with("baton-warm-"), "{first:?}");
    for t in ["t2", "t3"] {
        assert_eq!(warm_pods_of(&env, t), first, "{t} ran in another pod");
    }
    assert!(jobs_of(&kc, &id).is_empty(), "none left behind");
}

/// A baton killed while a reused warm pod runs its second attempt: resume
/// follows that pod from the attempt's own start (its log begins with the
/// first attempt, whose end is not this one's), and the attempt runs once.
#[test]
fn a_resumed_run_follows_a_reused_pod_from_its_own_attempt() {
    let Some(kc) = kubeconfig() else { return };
    let env = TestEnv::new();
    let head = warm_header(&kc, 1, true);
    let plan = format!(
        "{head}[[task]]\nid = \"a\"\nprompt = \"write a.txt a\"\n\n[[task]]\nid = \"b\"\nneeds = [\"a\"]\nprompt = \"say b started\\nsleep 15\\nwrite b.txt b\"\n"
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let mut child = spawn_baton(&env, &["run", "--json"]);
    let logs = |t: &str| logs_of(&env, t);
    wait_for("b to run in the pod a ran in", 120, || {
        logs("b").contains("b started")
    });
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let r = parse_run(output(baton(&env).args(["resume", "--json"])));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        task(&r.report, "b")["status"],
        "succeeded",
        "{:#}",
        r.report
    );
    assert_eq!(task(&r.report, "b")["attempts"], 1, "{:#}", r.report);
    let followed = named_after(&logs("b"), "following the Job ");
    assert_eq!(followed, warm_pods_of(&env, "a"), "{}", logs("b"));
    let id = run_id(&env);
    assert_integrated(&env, &id, &[("a.txt", "a\n"), ("b.txt", "b\n")]);
    assert!(jobs_of(&kc, &id).is_empty(), "none left behind");
}

/// A task retried after its gate failed takes the same reused pod again
/// (what its first attempt left in the pod's /tmp is still there, which
/// lets the gate pass); the first attempt's Job, kept for the pod's next
/// attempt, is not taken for a left-over one and deleted.
#[test]
fn a_retry_takes_the_reused_pod_its_first_attempt_ran_in() {
    let Some(kc) = kubeconfig() else { return };
    let env = TestEnv::new();
    // The first attempt leaves many ignored files: its pod is still
    // tidying them away when the retry starts.
    env.write(".gitignore", "scratch/\n");
    let head = warm_header(&kc, 1, true);
    let sh = "[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\n\n";
    let plan = format!(
        "{head}{sh}[[task]]\nid = \"t\"\nagent = \"sh\"\nprompt = \"if [ -f /tmp/tried ]; then echo ok > g.txt; else touch /tmp/tried; mkdir -p scratch && cd scratch && seq 1 40000 | xargs touch; fi\"\ngates = [\"test -f g.txt\"]\nretries = 1\n\n[[task]]\nid = \"u\"\nneeds = [\"t\"]\nprompt = \"write u.txt u\"\n"
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let started = std::time::Instant::now();
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(task(&r.report, "t")["attempts"], 2, "{:#}", r.report);
    // No claim waited out its minute for a pod that was deleted.
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "{:?}",
        started.elapsed()
    );
    let pods = warm_pods_of(&env, "t");
    assert_eq!(pods.len(), 2, "{pods:?}");
    assert_eq!(pods[0], pods[1], "{pods:?}");
    let id = run_id(&env);
    assert_integrated(&env, &id, &[("g.txt", "ok\n"), ("u.txt", "u\n")]);
    assert!(jobs_of(&kc, &id).is_empty(), "none left behind");
}

/// A stop of an attempt in a reused warm pod ends that pod (its work so far
/// is on the branch, as for any Job); the pool makes another, in which the
/// run's next attempt runs.
#[test]
fn a_stopped_attempt_ends_its_reused_pod_and_the_next_runs_in_another() {
    let Some(kc) = kubeconfig() else { return };
    let env = TestEnv::new();
    let head = warm_header(&kc, 1, true);
    let plan = format!(
        "[run]\nmax_parallel = 1\n\n{head}[[task]]\nid = \"long\"\non_failure = \"continue\"\nprompt = \"write half.txt first half\\nsay half written\\nsleep 300\"\n\n[[task]]\nid = \"next\"\nprompt = \"write next.txt next\"\n"
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let child = spawn_baton(&env, &["run", "--json"]);
    let logs = |t: &str| logs_of(&env, t);
    wait_for("the pod to write half", 120, || {
        logs("long").contains("half written")
    });
    let out = output(baton(&env).args(["stop", "long"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = parse_run(child.wait_with_output_timeout(Duration::from_secs(120)));
    assert_eq!(
        task(&run.report, "long")["status"],
        "stopped",
        "{:#}",
        run.report
    );
    assert_eq!(
        task(&run.report, "next")["status"],
        "succeeded",
        "{:#}",
        run.report
    );
    let id = run_id(&env);
    let branch = format!("baton/{id}/task/long");
    assert_eq!(
        show(&env, &branch, "half.txt").as_deref(),
        Some("first half\n")
    );
    assert_ne!(
        warm_pods_of(&env, "long"),
        warm_pods_of(&env, "next"),
        "the stopped pod took another attempt"
    );
    assert!(jobs_of(&kc, &id).is_empty(), "none left behind");
}

/// A warm pod that goes while it waits (deleted by hand, evicted) is
/// replaced at once, and no attempt is handed to it.
#[test]
fn a_warm_pod_that_goes_while_it_waits_is_replaced_and_handed_nothing() {
    let Some(kc) = kubeconfig() else { return };
    let env = TestEnv::new();
    let head = warm_header(&kc, 1, false);
    let go = env.scratch("go");
    let plan = format!(
        "{head}[[task]]\nid = \"first\"\nagent = \"here\"\nprompt = \"wait-file {go}\\nwrite first.txt first\"\n\n[[task]]\nid = \"b\"\nneeds = [\"first\"]\nprompt = \"write b.txt b\"\n",
        go = go.display()
    );
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let child = spawn_baton(&env, &["run", "--json"]);
    let idle = |kc: &str, id: &str| -> Vec<String> {
        jobs_of(kc, id)
            .into_iter()
            .filter(|j| {
                let labels = j.metadata.labels.clone().unwrap_or_default();
                labels.get("baton.dev/warm").map(String::as_str) == Some("idle")
                    && j.metadata.deletion_timestamp.is_none()
            })
            .filter_map(|j| j.metadata.name)
            .collect()
    };
    wait_for("a run", 30, || latest_run_opt(&env).is_some());
    let id = run_id(&env);
    wait_for("a warm pod", 60, || !idle(&kc, &id).is_empty());
    let first = idle(&kc, &id).remove(0);
    // Its pod runs and asks the warm door.
    wait_for("the warm pod to run", 60, || {
        with_client(&kc, async |client| {
            let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client, "default");
            let lp = ListParams::default().labels(&format!("job-name={first}"));
            pods.list(&lp)
                .await
                .unwrap()
                .items
                .iter()
                .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        })
    });
    std::thread::sleep(Duration::from_secs(2));
    with_client(&kc, async |client| {
        let jobs: Api<Job> = Api::namespaced(client, "default");
        let bg = kube::api::DeleteParams::background();
        jobs.delete(&first, &bg).await.unwrap();
    });
    wait_for("another warm pod", 60, || {
        idle(&kc, &id).iter().any(|n| *n != first)
    });
    std::fs::write(&go, "").unwrap();
    let run = parse_run(child.wait_with_output_timeout(Duration::from_secs(120)));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(task(&run.report, "b")["attempts"], 1, "{:#}", run.report);
    assert_eq!(warm_pods_of(&env, "b").len(), 1);
    assert_ne!(warm_pods_of(&env, "b")[0], first);
    assert!(jobs_of(&kc, &id).is_empty(), "none left behind");
}
