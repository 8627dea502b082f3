//! baton's Kubernetes executor, on this machine: its [`DRIVER`], which the
//! binary registers. `baton __follow <request>` is the process the engine
//! supervises for an attempt on a cluster: it offers the repository to the
//! pod (a git door of its own), makes the attempt's Job (or adopts the one
//! an earlier baton left running), prints the pod's log as the agent's
//! stream, and on SIGTERM (a stop, a timeout) deletes the Job and follows
//! the pod until it has pushed its work. When baton itself died (its parent
//! is gone) it leaves the Job running for `baton resume`. [`sweep`] removes
//! a run's Jobs at its end; [`doctor::check`] is `baton doctor`'s part.
//! The settings are the plan's ([`Kubernetes`]); the pod runs
//! `baton __pod-attempt` ([`baton_core::executor::pod`]).

pub mod doctor;
mod follow;
mod job;
mod warm;

use anyhow::{anyhow, bail, Context};
use baton_core::executor::{Door, Driver, FollowRequest, PodAttempt, PodEnd};
use baton_core::git::git_ok;
use baton_core::plan::{Kubernetes, Remote};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::path::{Path, PathBuf};

use job::is_secret_name;

/// The Kubernetes executor, for the binary's list of drivers.
pub const DRIVER: Driver = Driver {
    kind: "kubernetes",
    follow: |request, req| {
        Box::pin(async move { attempt(request, req).await.map_err(|e| format!("{e:#}")) })
    },
    sweep: |remote, run| {
        Box::pin(async move {
            let cluster = cluster(remote).map_err(|e| e.to_string())?;
            sweep(cluster, run).await.map_err(|e| format!("{e:#}"))
        })
    },
    keep_warm: Some(|remote, warm| Box::pin(warm::keep(remote, warm))),
    doctor: |remote| {
        Box::pin(async move {
            match cluster(remote) {
                Ok(cluster) => doctor::check(cluster).await,
                Err(e) => vec![(false, e.to_string())],
            }
        })
    },
};

/// The cluster a remote executor's settings describe.
fn cluster(remote: &Remote) -> anyhow::Result<&Kubernetes> {
    match remote {
        Remote::Kubernetes(k) => Ok(k),
        other => Err(anyhow!("not a Kubernetes executor: {}", other.kind())),
    }
}

/// A client for the plan's cluster: its kubeconfig and context, else
/// `$KUBECONFIG`, `~/.kube/config` or the pod's service account.
pub async fn client(cluster: &Kubernetes) -> anyhow::Result<Client> {
    let opts = KubeConfigOptions {
        context: cluster.context.clone(),
        ..Default::default()
    };
    let config = match &cluster.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read the kubeconfig {path}"))?;
            Config::from_custom_kubeconfig(kc, &opts).await?
        }
        None if cluster.context.is_some() => Config::from_kubeconfig(&opts).await?,
        None => Config::infer().await.context(
            "no cluster configured (set KUBECONFIG, or executor.kubeconfig in the plan)",
        )?,
    };
    Ok(Client::try_from(config)?)
}

/// `baton __follow` for an attempt on a cluster (`request` is the file
/// `req` was read from): the attempt's exit status.
pub async fn attempt(request: &Path, mut req: FollowRequest) -> anyhow::Result<i32> {
    let cluster = cluster(&req.executor)?.clone();
    let dropped = drop_secrets(&mut req);
    if !dropped.is_empty() {
        eprintln!(
            "baton: not put in the Job (secrets go through executor.env_from): {}",
            dropped.join(", ")
        );
    }
    let client = client(&cluster).await?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &cluster.namespace);
    let mut adopted = earlier_job(&jobs, &req).await?;
    if let Some(earlier) = &adopted {
        // An earlier follower collected that one already: it is only left
        // over (a reused warm pod's may run another attempt by now: the
        // pool's, or the sweep's, to end).
        let n = earlier.attempt;
        if request
            .with_file_name(format!("attempt-{n}.end.json"))
            .exists()
        {
            if !earlier.warm {
                let _ = jobs
                    .delete(&earlier.name, &DeleteParams::background())
                    .await;
            }
            adopted = None;
        }
    }
    let door = match &adopted {
        Some(earlier) => earlier_door(request, earlier.attempt),
        None => None,
    };
    let _door_task = open_door(&mut req, &cluster, door).await?;
    if adopted.is_none() {
        share_branch(&req, &cluster).await?;
    }
    let (name, source) = job_to_follow(&jobs, &mut req, &cluster, adopted).await?;
    // Written back with the door, so a later baton serves the same one.
    std::fs::write(request, serde_json::to_string_pretty(&req)?)
        .with_context(|| format!("cannot write {}", request.display()))?;
    let reading = source.reading(&req.pod);
    let reused = matches!(source, Source::Warm { reuse: true });
    let socket = warm_socket(&req);
    let keep_ref = req.pod.keep_ref.clone();
    // Ends the Job's pod: a reused one through the pool, which leaves it
    // alone when it went on to another attempt; any other by deleting it.
    let end_pod = || async {
        match (reused, &socket) {
            (true, Some(s)) => warm::gone(s, &name, &keep_ref).await,
            _ => {
                let _ = jobs.delete(&name, &DeleteParams::background()).await;
            }
        }
    };
    let outcome = match follow::follow(&client, &cluster, &name, reading, &end_pod).await {
        Ok(o) => o,
        Err(e) => {
            if reused {
                end_pod().await;
            }
            return Err(e);
        }
    };
    if outcome.parent_died {
        // baton died: the Job goes on, and `baton resume` follows it.
        return Ok(143);
    }
    // A pod that comes back for the next attempt keeps its Job, unless
    // this one was stopped, its pod told to go (it ends), or it broke off
    // (it is not trusted).
    let back = reused && outcome.end.as_ref().is_some_and(|e| !e.terminated) && !outcome.terminated;
    if !back {
        end_pod().await;
    }
    let end = collect(&req, &cluster, &outcome).await;
    std::fs::write(&req.end_file, serde_json::to_string(&end)?)
        .with_context(|| format!("cannot write {}", req.end_file.display()))?;
    Ok(match (end.code, outcome.terminated) {
        (Some(c), _) => c,
        (None, true) => 143,
        (None, false) => 1,
    })
}

/// Where the followed Job came from.
enum Source {
    /// Made now for this attempt.
    Made,
    /// Left running by an earlier baton (`warm`: in a warm pod).
    Adopted { warm: bool },
    /// A warm pod claimed now (its container is known to run); `reuse`:
    /// it comes back for the run's next attempt.
    Warm { reuse: bool },
}

impl Source {
    /// How the Job's log is read: a warm pod's from its attempt's
    /// [`PodLine::Begin`](baton_core::executor::PodLine), past those it ran
    /// before (claimed now: its last two minutes are enough).
    fn reading(&self, pod: &PodAttempt) -> follow::Reading {
        let claimed = matches!(self, Source::Warm { .. });
        let warm = claimed || matches!(self, Source::Adopted { warm: true });
        follow::Reading {
            running: claimed,
            begin: warm.then(|| pod.begin_mark()),
            since_seconds: claimed.then_some(120),
        }
    }
}

/// The socket the run's followers claim warm pods on.
fn warm_socket(req: &FollowRequest) -> Option<PathBuf> {
    let logs = req.end_file.parent().and_then(|d| d.parent())?;
    Some(baton_core::executor::warm_socket(logs))
}

/// The Job to follow: the one an earlier baton left running (`adopted`,
/// its name and attempt), else a warm pod's, else a new one made now.
async fn job_to_follow(
    jobs: &Api<Job>,
    req: &mut FollowRequest,
    cluster: &Kubernetes,
    adopted: Option<Earlier>,
) -> anyhow::Result<(String, Source)> {
    if let Some(Earlier {
        name,
        attempt: n,
        warm,
    }) = adopted
    {
        // Its pod pushes (and so is collected) under its own attempt's ref.
        req.pod.keep_ref = baton_core::paths::attempt_ref(&req.pod.run, &req.pod.task, n);
        eprintln!(
            "baton: following the Job {name} of attempt {n}, left running by an earlier baton"
        );
        return Ok((name, Source::Adopted { warm }));
    }
    if cluster.warm > 0 {
        let since = std::time::Instant::now();
        if let Some(c) = match warm_socket(req) {
            Some(s) => warm::claimed(&s, &req.pod).await,
            None => None,
        } {
            eprintln!(
                "baton: attempt {} runs in the warm pod of Job {} (claimed in {} ms)",
                req.pod.attempt,
                c.job,
                since.elapsed().as_millis()
            );
            return Ok((c.job, Source::Warm { reuse: c.reuse }));
        }
        eprintln!("baton: no warm pod waits now: this attempt makes its own Job");
    }
    let j = job::job(&req.pod, cluster);
    let made = jobs.create(&PostParams::default(), &j).await.map_err(|e| {
        anyhow!(
            "cannot create the attempt's Job in namespace {}: {e}",
            cluster.namespace
        )
    })?;
    Ok((made.metadata.name.unwrap_or_default(), Source::Made))
}

/// The pod's end as it told it (or why it told nothing), its work fetched
/// from the remote both sides reach when there is one.
async fn collect(req: &FollowRequest, cluster: &Kubernetes, outcome: &follow::Followed) -> PodEnd {
    let end = match &outcome.end {
        Some(end) => end.clone(),
        None => {
            eprintln!(
                "baton: the pod ended without saying how its attempt went ({})",
                outcome.why
            );
            PodEnd {
                error: Some(outcome.why.clone()),
                ..Default::default()
            }
        }
    };
    if let Some(e) = &end.error {
        eprintln!("baton: in the pod: {e}");
    }
    if let (true, Some(remote)) = (end.pushed, &cluster.remote) {
        let refspec = format!("+{0}:{0}", req.pod.keep_ref);
        let fetch = ["fetch", "-q", remote.as_str(), refspec.as_str()];
        if let Err(e) = git_ok(&req.git_dir, fetch).await {
            eprintln!("baton: cannot fetch the pod's work from {remote}: {e}");
        }
    }
    end
}

/// With a remote both sides reach, the pod fetches the task's branch there:
/// it is pushed first (the pod's work is fetched back from there at its end).
async fn share_branch(req: &FollowRequest, cluster: &Kubernetes) -> anyhow::Result<()> {
    let Some(remote) = &cluster.remote else {
        return Ok(());
    };
    let refspec = format!("+refs/heads/{0}:refs/heads/{0}", req.pod.branch);
    git_ok(
        &req.git_dir,
        ["push", "-q", remote.as_str(), refspec.as_str()],
    )
    .await
    .map_err(|e| anyhow!("cannot push the task's branch to {remote}: {e}"))?;
    Ok(())
}

fn drop_secrets(req: &mut FollowRequest) -> Vec<String> {
    let mut dropped = Vec::new();
    let tokens = &req.gateway_env;
    for env in [&mut req.pod.env, &mut req.pod.gate_env] {
        env.retain(|(k, _)| {
            // A model gateway token is the attempt's, not a key.
            let secret = is_secret_name(k) && !tokens.contains(k);
            if secret && !dropped.contains(k) {
                dropped.push(k.clone());
            }
            !secret
        });
    }
    dropped
}

/// A Job of the same task that an earlier attempt made (or claimed).
struct Earlier {
    name: String,
    attempt: u32,
    /// A warm pod's Job (by its label, not its name: a task may be called
    /// `warm-up`).
    warm: bool,
}

/// A Job of the same task that an earlier attempt made and whose baton
/// died: it is followed, not made again.
async fn earlier_job(jobs: &Api<Job>, req: &FollowRequest) -> anyhow::Result<Option<Earlier>> {
    let labels = job::labels(&req.pod.run, &req.pod.task, req.pod.attempt);
    let selector = format!(
        "{}={},{}={}",
        job::RUN_LABEL,
        labels[job::RUN_LABEL],
        job::TASK_LABEL,
        labels[job::TASK_LABEL]
    );
    let list = jobs
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| anyhow!("cannot list the run's Jobs: {e}"))?;
    let found = list
        .items
        .into_iter()
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .filter_map(|j| {
            let labels = j.metadata.labels.as_ref()?;
            let attempt = labels.get(job::ATTEMPT_LABEL)?.parse().ok()?;
            let warm = labels.contains_key(warm::WARM_LABEL);
            Some(Earlier {
                name: j.metadata.name?,
                attempt,
                warm,
            })
        })
        .max_by_key(|e| e.attempt);
    Ok(found)
}

/// The door an earlier attempt's follower opened for its pod.
fn earlier_door(request: &Path, n: u32) -> Option<Door> {
    let file: PathBuf = request.with_file_name(format!("attempt-{n}.job.json"));
    let text = std::fs::read_to_string(file).ok()?;
    let req: FollowRequest = serde_json::from_str(&text).ok()?;
    req.door
}

/// Opens the git door the pod fetches from and pushes to (unless the plan
/// names a remote both reach), and sets the pod's URL.
async fn open_door(
    req: &mut FollowRequest,
    cluster: &Kubernetes,
    earlier: Option<Door>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if let Some(remote) = &cluster.remote {
        req.pod.git_url = remote.clone();
        return Ok(None);
    }
    let (addr, token) = match earlier.or(req.door.clone()) {
        Some(d) => (d.addr, d.token),
        None => (cluster.git_listen.clone(), baton_server::new_token()),
    };
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot offer the repository to the pod on {addr}"))?;
    let bound = listener.local_addr()?;
    let host = match &cluster.git_host {
        Some(h) => h.clone(),
        None if bound.ip().is_unspecified() => {
            bail!("executor.git_listen {addr} listens everywhere: set executor.git_host to the name pods reach this machine by")
        }
        None => bound.ip().to_string(),
    };
    let door = baton_server::git_door::GitDoor {
        git_dir: req.git_dir.clone(),
        token: token.clone(),
        fetch: req.pod.branch.clone(),
        push_prefix: format!("refs/baton/{}/{}/", req.pod.run, req.pod.task),
        input: {
            let input = std::sync::Arc::new(baton_server::git_door::Input::default());
            let heard = input.clone();
            baton_core::executor::follower::hear_input(move |line| heard.push(line));
            input
        },
    };
    req.pod.git_url = format!("http://{host}:{}/git/{token}", bound.port());
    req.door = Some(Door {
        addr: bound.to_string(),
        token,
        remote_port: None,
        gateway: None,
    });
    Ok(Some(tokio::spawn(async move {
        if let Err(e) = baton_server::git_door::serve(listener, door).await {
            eprintln!("baton: the git door closed: {e}");
        }
    })))
}

/// Deletes every Job of `run` (the end of a run: none outlives it).
/// Returns how many there were.
pub async fn sweep(cluster: &Kubernetes, run: &str) -> anyhow::Result<usize> {
    let client = client(cluster).await?;
    let jobs: Api<Job> = Api::namespaced(client, &cluster.namespace);
    let selector = format!("{}={}", job::RUN_LABEL, job::label_value(run));
    let list = jobs.list(&ListParams::default().labels(&selector)).await?;
    let mut n = 0;
    for j in list.items {
        if let Some(name) = j.metadata.name {
            if jobs
                .delete(&name, &DeleteParams::background())
                .await
                .is_ok()
            {
                n += 1;
            }
        }
    }
    Ok(n)
}
