//! Following an attempt's pod: wait for it to start (or say why it cannot),
//! then copy its log: the agent's stream to stdout for the engine's parser,
//! the agent's stderr and baton's notes to stderr, and keep the attempt's
//! end. SIGTERM deletes the Job and goes on following the pod, which
//! commits and pushes in its grace period.

use anyhow::anyhow;
use baton_core::executor::follower::{relay, Parent};
use baton_core::executor::{PodEnd, PodLine};
use baton_core::plan::Kubernetes;
use futures_util::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use kube::Client;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};

/// How long a pod may take to start before the attempt fails.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// Reasons a container waits for that no waiting fixes.
const HOPELESS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "ErrImageNeverPull",
];

pub struct Followed {
    pub end: Option<PodEnd>,
    /// Why there is no end, when there is none.
    pub why: String,
    /// A stop or timeout asked it to end (the Job was deleted).
    pub terminated: bool,
    /// baton, whose child this is, died: nothing was deleted.
    pub parent_died: bool,
}

/// How a Job's log is read.
pub struct Reading {
    /// Its container is known to run (a warm pod that asked for its
    /// attempt), whatever the API says of it yet (the kubelet reports a
    /// pod's phase a second or more late).
    pub running: bool,
    /// A warm pod's log: the attempt's lines start after the
    /// [`PodLine::Begin`] of this ref (those before were other attempts').
    pub begin: Option<String>,
    /// Only the log's last seconds (a pod claimed a moment ago).
    pub since_seconds: Option<i64>,
}

/// Follows `job`'s pod, read as `reading` says; `stop` ends the pod (on
/// SIGTERM: it gets its grace to commit and push, and is followed on).
pub async fn follow<S, F>(
    client: &Client,
    cluster: &Kubernetes,
    job: &str,
    reading: Reading,
    stop: S,
) -> anyhow::Result<Followed>
where
    S: Fn() -> F,
    F: std::future::Future<Output = ()>,
{
    let parent = Parent::now();
    let mut term = signal(SignalKind::terminate())?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &cluster.namespace);
    let mut out = Followed {
        end: None,
        why: String::new(),
        terminated: false,
        parent_died: false,
    };
    let since = std::time::Instant::now();
    let pod = tokio::select! {
        p = started(&pods, job, parent, reading.running) => {
            let p = p?;
            eprintln!("baton: pod {p} runs ({} ms after its Job was there)", since.elapsed().as_millis());
            p
        }
        _ = term.recv() => {
            out.parent_died = parent.died_on_term().await;
            out.terminated = !out.parent_died;
            if !out.parent_died {
                stop().await;
            }
            out.why = "ended before its pod started".into();
            return Ok(out);
        }
    };
    let params = LogParams {
        follow: true,
        container: Some("agent".into()),
        since_seconds: reading.since_seconds,
        ..Default::default()
    };
    let mut before = reading.begin.is_some();
    let stream = log_stream(&pods, &pod, &params).await?;
    let mut lines = stream.lines();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            // baton gone without a word (SIGKILL): the Job is left for resume.
            _ = tick.tick() => if parent.gone() {
                out.parent_died = true;
                return Ok(out);
            },
            line = lines.next() => match line {
                Some(Ok(line)) if before => {
                    before = PodLine::parse(&line) != reading.begin.clone().map(PodLine::Begin);
                }
                Some(Ok(line)) => {
                    relay(&line, "pod", &mut out.end);
                    // Its end is its last line: the pod's exit (which the
                    // log's end waits for, a second or so) adds nothing.
                    if out.end.is_some() {
                        break;
                    }
                }
                Some(Err(e)) => { out.why = format!("the pod's log broke off: {e}"); break; }
                None => break,
            },
            _ = term.recv(), if !out.terminated && !out.parent_died => {
                out.parent_died = parent.died_on_term().await;
                out.terminated = !out.parent_died;
                if out.parent_died {
                    return Ok(out);
                }
                // The pod gets SIGTERM and its grace to commit and push.
                stop().await;
            }
        }
    }
    if out.end.is_none() && out.why.is_empty() {
        out.why = match pods.get_opt(&pod).await {
            Ok(Some(p)) => describe_end(&p),
            _ => "its pod is gone".into(),
        };
    }
    Ok(out)
}

/// The name of the Job's pod once its container runs (or has run).
/// The pod's log, followed; a moment's retries for a container the kubelet
/// has not yet told the API of.
async fn log_stream(
    pods: &Api<Pod>,
    pod: &str,
    params: &LogParams,
) -> anyhow::Result<impl futures_util::AsyncBufRead> {
    let mut tries = 0;
    loop {
        match pods.log_stream(pod, params).await {
            Ok(s) => return Ok(s),
            Err(_) if tries < 30 => tries += 1,
            Err(e) => return Err(anyhow!("cannot read the log of pod {pod}: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn started(
    pods: &Api<Pod>,
    job: &str,
    parent: Parent,
    running: bool,
) -> anyhow::Result<String> {
    let since = Instant::now();
    let mut said = false;
    loop {
        if parent.gone() {
            return Err(anyhow!(
                "baton is gone; the Job {job} is left for `baton resume`"
            ));
        }
        let list = pods
            .list(&ListParams::default().labels(&format!("job-name={job}")))
            .await
            .map_err(|e| anyhow!("cannot list the pods of Job {job}: {e}"))?;
        if let Some(p) = list.items.into_iter().next() {
            let name = p.metadata.name.clone().unwrap_or_default();
            let phase = p
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default();
            if running || matches!(phase.as_str(), "Running" | "Succeeded" | "Failed") {
                return Ok(name);
            }
            if let Some(why) = waiting(&p) {
                if HOPELESS.contains(&why.0.as_str()) {
                    return Err(anyhow!("pod {name} cannot start: {}: {}", why.0, why.1));
                }
            }
            if !said {
                eprintln!("baton: waiting for pod {name} to start");
                said = true;
            }
        }
        if since.elapsed() > START_TIMEOUT {
            return Err(anyhow!(
                "the Job {job} had no running pod after {}s (is the node ready, the image there?)",
                START_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn waiting(p: &Pod) -> Option<(String, String)> {
    let statuses = p.status.as_ref()?.container_statuses.as_ref()?;
    let w = statuses.first()?.state.as_ref()?.waiting.as_ref()?;
    Some((w.reason.clone()?, w.message.clone().unwrap_or_default()))
}

fn describe_end(p: &Pod) -> String {
    let term = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref());
    match term {
        Some(t) => format!(
            "its container ended with status {}{}",
            t.exit_code,
            t.reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        None => "its log ended while it ran".into(),
    }
}
