//! Warm pods (`[executor] warm = N`): while a run goes on, N pods of the
//! image are kept running, each waiting for an attempt (`baton
//! __pod-wait`, asking the run's warm door here with a token of its own).
//! An attempt's follower claims one on the run's socket: the pool hands the
//! attempt to a pod that is waiting now, labels its Job as the attempt's
//! (so `resume` finds it as it finds any attempt's Job), and makes another
//! in the background. None waiting: the follower makes a Job as without
//! warm pods. With `reuse`, a pod whose attempt is over asks again (tidied,
//! [`baton_core::executor::warm`]): it is labelled idle and waits for the
//! next claim, and the pool makes another only when a follower says its
//! pod is gone (a stop deleted it, it died). The run's end sweeps every Job
//! of the run, warm or claimed; a pod whose baton is gone ends by itself.

use crate::job::{self, label_value, ATTEMPT_LABEL, RUN_LABEL, TASK_LABEL};
use anyhow::{anyhow, Context};
use baton_core::executor::{PodAttempt, Warm};
use baton_core::plan::{Kubernetes, Remote};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::oneshot;

/// How every warm pod's Job's name begins.
pub const JOB_PREFIX: &str = "baton-warm-";
/// `idle` while it waits, `claimed` once an attempt has it.
pub const WARM_LABEL: &str = "baton.dev/warm";
/// How long a pod's ask waits for an attempt before it is answered empty.
const ASK_WAIT: Duration = Duration::from_secs(20);

/// The run's pool: where its pods' Jobs are made, the pods waiting now
/// (by token), and every pod (by its token now).
struct Pool {
    api: Api<Job>,
    cluster: Kubernetes,
    run: String,
    /// The warm door's URL, before a pod's token.
    base: String,
    waiting: Mutex<HashMap<String, oneshot::Sender<String>>>,
    pods: Mutex<HashMap<String, WarmPod>>,
    /// A pod asked (one may be waiting now).
    asked: tokio::sync::Notify,
}

/// What the pool knows of one of its pods.
struct WarmPod {
    job: String,
    /// It comes back for more (it asked with `?reuse`).
    reusable: bool,
    /// The ref of the attempt it runs now (asking again: it is over).
    busy: Option<String>,
}

/// How long a claim waits for a warm pod that is still starting (no
/// longer than a Job of its own would take to start).
const CLAIM_WAIT: Duration = Duration::from_secs(60);

/// Keeps `remote`'s warm pods while the run goes on (the engine drops this
/// future at the run's end).
pub async fn keep(remote: Remote, warm: Warm) {
    let Remote::Kubernetes(cluster) = remote else {
        return;
    };
    if let Err(e) = serve(&cluster, &warm).await {
        eprintln!("baton: no warm pods for run {}: {e:#}", warm.run);
    }
}

async fn serve(cluster: &Kubernetes, warm: &Warm) -> anyhow::Result<()> {
    if cluster.warm == 0 {
        return Ok(());
    }
    let client = crate::client(cluster).await?;
    let jobs: Api<Job> = Api::namespaced(client, &cluster.namespace);
    // Idle pods an earlier life of the run left: their tokens are gone.
    let idle = format!("{RUN_LABEL}={},{WARM_LABEL}=idle", label_value(&warm.run));
    for j in jobs.list(&ListParams::default().labels(&idle)).await?.items {
        if let Some(name) = j.metadata.name {
            let _ = jobs.delete(&name, &DeleteParams::background()).await;
        }
    }
    // A port of its own on the git doors' address: a fixed `git_listen`
    // port stays theirs.
    let ip = cluster
        .git_listen
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip())
        .context("executor.git_listen is not an address")?;
    let door = tokio::net::TcpListener::bind((ip, 0))
        .await
        .with_context(|| format!("cannot open the warm door on {ip}"))?;
    let bound = door.local_addr()?;
    let host = match &cluster.git_host {
        Some(h) => h.clone(),
        None if bound.ip().is_unspecified() => {
            return Err(anyhow!(
                "executor.git_listen listens everywhere: set executor.git_host"
            ))
        }
        None => bound.ip().to_string(),
    };
    let base = format!("http://{host}:{}/warm", bound.port());
    let claims = claims_socket(&warm.socket)?;
    let pool = Arc::new(Pool {
        api: jobs,
        cluster: cluster.clone(),
        run: warm.run.clone(),
        base,
        waiting: Default::default(),
        pods: Default::default(),
        asked: Default::default(),
    });
    for _ in 0..cluster.warm {
        pool.make().await?;
    }
    // Everything the pool runs ends with it (the run's end drops it).
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(answer_asks(door, pool.clone()));
    loop {
        let (conn, _) = claims.accept().await?;
        let pool = pool.clone();
        tasks.spawn(async move {
            if let Err(e) = claim(conn, &pool).await {
                eprintln!("baton: a claim of a warm pod failed: {e:#}");
            }
        });
        while tasks.try_join_next().is_some() {}
    }
}

fn claims_socket(path: &std::path::Path) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .context("the claims socket has no directory")?;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    if !ours(dir) {
        return Err(anyhow!("{} is not yours alone", dir.display()));
    }
    let _ = std::fs::remove_file(path);
    tokio::net::UnixListener::bind(path)
        .with_context(|| format!("cannot listen on {}", path.display()))
}

impl Pool {
    /// A new warm pod's Job.
    async fn make(&self) -> anyhow::Result<()> {
        let token = baton_server::new_token();
        let j = job::warm_job(&self.cluster, &self.run, &format!("{}/{token}", self.base));
        let made = (self.api)
            .create(&PostParams::default(), &j)
            .await
            .map_err(|e| anyhow!("cannot create a warm pod's Job: {e}"))?;
        let pod = WarmPod {
            job: made.metadata.name.unwrap_or_default(),
            reusable: false,
            busy: None,
        };
        if let Ok(mut all) = self.pods.lock() {
            all.insert(token, pod);
        }
        Ok(())
    }

    /// A pod that asks while it is busy is done with its attempt: its Job
    /// is no longer that attempt's (a resumed run would follow it as such).
    async fn back(&self, token: &str) {
        let was_busy = (self.pods.lock().ok()).and_then(|mut p| {
            p.get_mut(token)
                .and_then(|p| p.busy.take().map(|_| p.job.clone()))
        });
        if let Some(name) = was_busy {
            let idle = serde_json::json!({ "metadata": { "labels": {
                TASK_LABEL: null, ATTEMPT_LABEL: null, WARM_LABEL: "idle",
            }}});
            let params = PatchParams::default();
            let patch = Patch::Merge(&idle);
            if let Err(e) = self.api.patch(&name, &params, &patch).await {
                eprintln!("baton: cannot label the warm Job {name} idle again: {e}");
            }
        }
    }

    /// The pod of Job `name` is to go, if it still runs the attempt of
    /// `keep_ref` (a follower's stop, or its attempt broke off; one that
    /// went on to another attempt is that one's now): its Job is deleted,
    /// and another pod made.
    async fn gone(&self, name: &str, keep_ref: &str) -> anyhow::Result<()> {
        let runs_it = |p: &WarmPod| p.job == name && p.busy.as_deref() == Some(keep_ref);
        let token = (self.pods.lock().ok())
            .and_then(|all| all.iter().find(|(_, p)| runs_it(p)).map(|(t, _)| t.clone()));
        match token {
            Some(token) => self.drop_pod(&token).await,
            None => Ok(()),
        }
    }

    /// The pod of `token` takes the attempt of `keep_ref`: whether it comes
    /// back for more, and the token it asks with then. Each assignment
    /// gives a pod a new token (the old one was in its environment, which
    /// its agent may read): a pod used once gets none, and is forgotten.
    /// None: the pod is gone already (its ask broke off, and another took
    /// its place).
    fn hand_over(&self, token: &str, keep_ref: &str) -> Option<(bool, String)> {
        let mut all = self.pods.lock().ok()?;
        let pod = all.remove(token)?;
        if !pod.reusable {
            return Some((false, String::new()));
        }
        let next = baton_server::new_token();
        let busy = Some(keep_ref.to_string());
        all.insert(next.clone(), WarmPod { busy, ..pod });
        Some((true, next))
    }

    /// Forgets the pod of `token`, deletes its Job and makes another.
    async fn drop_pod(&self, token: &str) -> anyhow::Result<()> {
        let Some(pod) = self.pods.lock().ok().and_then(|mut p| p.remove(token)) else {
            return Ok(());
        };
        // It may have asked already (a stop as its attempt ended): no claim
        // gets it now.
        if let Ok(mut w) = self.waiting.lock() {
            w.remove(token);
        }
        let _ = (self.api)
            .delete(&pod.job, &DeleteParams::background())
            .await;
        self.make().await
    }
}

/// The warm door: each pod's ask waits for an attempt, a while at a time.
async fn answer_asks(door: tokio::net::TcpListener, pool: Arc<Pool>) {
    // The answers end with the pool (a pod that goes after the run's end
    // is not replaced).
    let mut answers = tokio::task::JoinSet::new();
    loop {
        let conn = match door.accept().await {
            Ok((conn, _)) => conn,
            Err(e) => {
                // Out of files, a moment: the door stays open.
                eprintln!("baton: the warm door cannot take an ask: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
        };
        let pool = pool.clone();
        answers.spawn(async move {
            let _ = answer(conn, &pool).await;
        });
        while answers.try_join_next().is_some() {}
    }
}

async fn answer(mut conn: tokio::net::TcpStream, pool: &Pool) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let target = text.split_whitespace().nth(1).unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let token = path.rsplit('/').next().unwrap_or_default().to_string();
    let known = pool
        .pods
        .lock()
        .map(|p| p.contains_key(&token))
        .unwrap_or(false);
    let (mut read, mut write) = conn.split();
    let (code, body) = match (known, query) {
        (false, _) => ("404 Not Found", String::new()),
        // It will not ask again (it could not tidy, or its time is up):
        // another takes its place.
        (true, "bye") => {
            if let Err(e) = pool.drop_pod(&token).await {
                eprintln!("baton: cannot replace a warm pod: {e:#}");
            }
            ("204 No Content", String::new())
        }
        (true, _) => {
            if query == "reuse" {
                if let Some(pod) = pool
                    .pods
                    .lock()
                    .ok()
                    .as_mut()
                    .and_then(|p| p.get_mut(&token))
                {
                    pod.reusable = true;
                }
            }
            pool.back(&token).await;
            tokio::select! {
                // An attempt handed over is written, even as the pod goes.
                biased;
                spec = assignment(pool, &token) => match spec {
                    Some(spec) => ("200 OK", spec),
                    None => ("204 No Content", String::new()),
                },
                // Its ask broke off: the pod is gone (evicted, deleted, it
                // died), and no claim must hand it an attempt; another
                // takes its place.
                _ = closed(&mut read) => {
                    if let Err(e) = pool.drop_pod(&token).await {
                        eprintln!("baton: cannot replace a warm pod: {e:#}");
                    }
                    return Ok(());
                }
            }
        }
    };
    let reply = format!(
        "HTTP/1.1 {code}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    write.write_all(reply.as_bytes()).await
}

/// The attempt for the pod of `token`, if a claim hands it one within
/// [`ASK_WAIT`] (or took it a moment before).
async fn assignment(pool: &Pool, token: &str) -> Option<String> {
    let (tx, rx) = oneshot::channel();
    if let Ok(mut w) = pool.waiting.lock() {
        w.insert(token.to_string(), tx);
    }
    pool.asked.notify_waiters();
    tokio::pin!(rx);
    match tokio::time::timeout(ASK_WAIT, &mut rx).await {
        Ok(got) => got.ok(),
        Err(_) => {
            // Still waiting: answered empty. Taken by a claim a moment
            // ago: its attempt is on its way.
            let claimed = (pool.waiting.lock())
                .map(|mut w| w.remove(token).is_none())
                .unwrap_or(false);
            match claimed {
                true => rx.await.ok(),
                false => None,
            }
        }
    }
}

/// Ends when the other side closes the connection (it sends nothing more
/// after its request).
async fn closed(read: &mut tokio::net::tcp::ReadHalf<'_>) {
    let mut buf = [0u8; 256];
    while let Ok(n) = read.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

/// What a follower says on the run's socket.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Say {
    /// A pod for this attempt, please.
    Claim(Box<PodAttempt>),
    /// The pod of this Job (`job`), if it still runs the attempt of
    /// `keep_ref`, is to go (a stop, or its attempt broke off): another is
    /// made.
    Gone { job: String, keep_ref: String },
}

/// A claimed pod: its Job, and whether it comes back for the run's next
/// attempt (its Job is then kept at the attempt's end).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Claimed {
    pub job: String,
    pub reuse: bool,
}

/// One follower's word: a claim (its attempt handed to a pod waiting now,
/// whose Job is then the attempt's; the answer names it, or `null`: none),
/// or a pod gone.
async fn claim(conn: tokio::net::UnixStream, pool: &Pool) -> anyhow::Result<()> {
    let (read, mut write) = conn.into_split();
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    let pod = match serde_json::from_str(&line).context("the claim holds no attempt")? {
        Say::Claim(pod) => pod,
        Say::Gone { job, keep_ref } => return pool.gone(&job, &keep_ref).await,
    };
    let spec = serde_json::to_value(&pod)?;
    let mut taken = None;
    while let Some((token, tx)) = waiting_pod(pool).await {
        let Some(name) = (pool.pods.lock().ok()).and_then(|p| p.get(&token).map(|p| p.job.clone()))
        else {
            continue;
        };
        // Labelled first: a baton that dies now finds the Job as the attempt's.
        let labels = serde_json::json!({ "metadata": { "labels": {
            TASK_LABEL: label_value(&pod.task),
            ATTEMPT_LABEL: pod.attempt.to_string(),
            WARM_LABEL: "claimed",
        }}});
        let labelled = (pool.api)
            .patch(&name, &PatchParams::default(), &Patch::Merge(&labels))
            .await;
        if let Err(e) = labelled {
            // Its Job is going (or the API failed it): another pod takes
            // its place, and the claim the next one waiting.
            eprintln!("baton: cannot label the warm Job {name}: {e}");
            pool.drop_pod(&token).await?;
            continue;
        }
        let Some((reuse, next)) = pool.hand_over(&token, &pod.keep_ref) else {
            continue;
        };
        let assignment = serde_json::json!({ "attempt": &spec, "next": &next });
        if tx.send(assignment.to_string()).is_ok() {
            taken = Some(Claimed { job: name, reuse });
            break;
        }
        // Its pod is gone (its ask broke off): its Job goes, another comes.
        if reuse {
            pool.drop_pod(&next).await?;
        } else {
            let _ = (pool.api).delete(&name, &DeleteParams::background()).await;
            pool.make().await?;
        }
    }
    // A pod used once is replaced now; one that comes back is not.
    let replace = taken.as_ref().is_some_and(|c: &Claimed| !c.reuse);
    let answer = serde_json::json!({ "claimed": taken });
    write.write_all(format!("{answer}\n").as_bytes()).await?;
    if replace {
        pool.make().await?;
    }
    Ok(())
}

/// A pod waiting now, or the first to ask within [`CLAIM_WAIT`] (the
/// pool's pods may still be starting, or asking again).
async fn waiting_pod(pool: &Pool) -> Option<(String, oneshot::Sender<String>)> {
    let deadline = tokio::time::Instant::now() + CLAIM_WAIT;
    loop {
        let asked = pool.asked.notified();
        if let Some(found) = next_waiting(pool) {
            return Some(found);
        }
        tokio::time::timeout_at(deadline, asked).await.ok()?;
    }
}

fn next_waiting(pool: &Pool) -> Option<(String, oneshot::Sender<String>)> {
    let mut w = pool.waiting.lock().ok()?;
    let token = w.keys().next()?.clone();
    w.remove_entry(&token)
}

/// A warm pod for `pod`'s attempt from the run's pool, if one waits (or
/// starts) now. The pool always answers (within [`CLAIM_WAIT`] and an API
/// call), or is gone (its socket closes): no timeout here, so an attempt
/// is never handed to a pod after its follower gave up and made a Job of
/// its own.
pub async fn claimed(socket: &std::path::Path, pod: &PodAttempt) -> Option<Claimed> {
    let answer = say(socket, &Say::Claim(Box::new(pod.clone()))).await?;
    let mut v: serde_json::Value = serde_json::from_str(&answer).ok()?;
    serde_json::from_value(v.get_mut("claimed")?.take()).ok()
}

/// Asks the pool to end the pod of Job `job` if it still runs the
/// attempt of `keep_ref` (a stop, or the attempt broke off); another is
/// made.
pub async fn gone(socket: &std::path::Path, job: &str, keep_ref: &str) {
    let say_it = Say::Gone {
        job: job.to_string(),
        keep_ref: keep_ref.to_string(),
    };
    let _ = say(socket, &say_it).await;
}

/// One line to the pool on its socket, and its answer (empty for none).
async fn say(socket: &std::path::Path, what: &Say) -> Option<String> {
    if !ours(socket.parent()?) {
        eprintln!(
            "baton: {} is not yours alone: no warm pod is claimed through it",
            socket.display()
        );
        return None;
    }
    let conn = tokio::net::UnixStream::connect(socket).await.ok()?;
    let (read, mut write) = conn.into_split();
    let line = serde_json::to_string(what).ok()? + "\n";
    write.write_all(line.as_bytes()).await.ok()?;
    let mut answer = String::new();
    BufReader::new(read).read_line(&mut answer).await.ok()?;
    Some(answer)
}

/// Whether `dir` is this user's and nobody else's (the attempt, with its
/// tokens, goes through a socket in it).
fn ours(dir: &std::path::Path) -> bool {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // SAFETY: getuid(2) cannot fail.
    let me = unsafe { libc::getuid() };
    std::fs::symlink_metadata(dir)
        .is_ok_and(|m| m.is_dir() && m.uid() == me && m.permissions().mode() & 0o077 == 0)
}
