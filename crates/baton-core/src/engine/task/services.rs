//! An attempt's own services (`[[workspace.service]]`): one container of
//! each, started before the agent, published on a port of 127.0.0.1 the
//! engine picks (free on the whole machine, whatever other runs or
//! repositories hold) and waited for, then removed with the attempt. The agent and
//! its gates find each at `BATON_SERVICE_<NAME>_ADDR` (and `_HOST`,
//! `_PORT`, `_URL`); a sandbox with no network reaches its own services
//! and no other task's.

use crate::engine::shared::Shared;
use crate::payload::Payload;
use crate::plan::service::Service;
use std::ffi::OsString;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Command;

/// The running services of one attempt; removed when dropped.
pub(crate) struct Services {
    program: String,
    names: Vec<String>,
    /// Their variables, for the agent and its gates.
    pub env: Vec<(OsString, OsString)>,
    /// `127.0.0.1:PORT` of each: what a closed sandbox may still reach.
    pub addrs: Vec<String>,
}

impl Drop for Services {
    fn drop(&mut self) {
        let names = std::mem::take(&mut self.names);
        crate::container::remove_later(self.program.clone(), names);
    }
}

/// Removes the containers an earlier attempt of `task` left (its services,
/// a command killed before its engine removed it), and waits until they
/// are gone: a forwarded port of the task is free again, and nothing of
/// the last attempt writes its desk.
pub(crate) async fn clear(sh: &Shared, task: &str) -> Result<(), String> {
    let engine = sh.engine().await?;
    let repo = crate::container::repo_key(&sh.repo.common_dir);
    crate::container::sweep_task(&engine, &repo, &sh.run_id, task).await?;
    Ok(())
}

/// Starts the plan's services for attempt `n` of `task` and waits until
/// each answers.
pub(crate) async fn start(sh: &Shared, task: &str, n: u32) -> Result<Option<Services>, String> {
    let ws = &sh.plan.workspace;
    if ws.services.is_empty() {
        return Ok(None);
    }
    let engine = sh.engine().await?;
    let mut out = Services {
        program: engine.program.clone(),
        names: Vec::new(),
        env: Vec::new(),
        addrs: Vec::new(),
    };
    for svc in &ws.services {
        let name = container_name(sh, task, n, &svc.name);
        let began = Instant::now();
        run(sh, &engine.program, &name, task, n, svc).await?;
        out.names.push(name.clone());
        let Some(port) = published(&engine.program, &name, svc).await else {
            // A service that ended at once has no port any more.
            return Err(failure(&engine.program, &name, svc, STOPPED).await);
        };
        ready(&engine.program, &name, svc, port).await?;
        let addr = format!("127.0.0.1:{port}");
        let data = Payload::ServiceReady {
            name: svc.name.clone(),
            addr: addr.clone(),
            ms: began.elapsed().as_millis() as u64,
        };
        sh.event(Some(task), Some(n), data).await;
        out.env.extend(variables(svc, port));
        out.addrs.push(addr);
    }
    Ok(Some(out))
}

/// `BATON_SERVICE_<NAME>_HOST`, `_PORT`, `_ADDR` and, if the plan gives
/// its form, `_URL`.
fn variables(svc: &Service, port: u16) -> Vec<(OsString, OsString)> {
    let p = svc.var_prefix();
    let mut v: Vec<(OsString, OsString)> = vec![
        (format!("{p}_HOST").into(), "127.0.0.1".into()),
        (format!("{p}_PORT").into(), port.to_string().into()),
        (
            format!("{p}_ADDR").into(),
            format!("127.0.0.1:{port}").into(),
        ),
    ];
    if let Some(url) = &svc.url {
        let url = url
            .replace("{host}", "127.0.0.1")
            .replace("{port}", &port.to_string());
        v.push((format!("{p}_URL").into(), url.into()));
    }
    v
}

fn labels(sh: &Shared, task: &str, n: u32) -> Vec<String> {
    let repo = crate::container::repo_key(&sh.repo.common_dir);
    crate::container::labels(&repo, &sh.run_id, Some(task), Some(n))
}

fn container_name(sh: &Shared, task: &str, n: u32, service: &str) -> String {
    let raw = format!(
        "baton-{}-{task}-{n}-{service}-{}",
        sh.run_id,
        std::process::id()
    );
    crate::container::name_of(&raw)
}

async fn run(
    sh: &Shared,
    program: &str,
    name: &str,
    task: &str,
    n: u32,
    svc: &Service,
) -> Result<(), String> {
    let mut cmd = Command::new(program);
    // No --rm: its log is read if it stops; it is removed with the attempt.
    cmd.args(["run", "--detach"])
        .arg(format!("--name={name}"))
        .args(labels(sh, task, n).iter().map(|l| format!("--label={l}")))
        .arg(format!("--label=baton.service={}", svc.name))
        .arg(format!("--publish=127.0.0.1::{}", svc.port))
        .args(crate::container::runtime::ulimits());
    for (k, _) in &svc.env {
        cmd.arg(format!("--env={k}"));
    }
    // Values through the client's environment: never on a command line.
    cmd.envs(svc.env.iter().map(|(k, v)| (k, v)));
    cmd.arg(&svc.image).args(&svc.command);
    // The engine may pull the image first: long, but not for ever.
    let out = tokio::time::timeout(
        PULL_TIMEOUT,
        cmd.stdin(Stdio::null()).kill_on_drop(true).output(),
    )
    .await
    .map_err(|_| {
        format!(
            "service {}: {program} did not start {} within {}",
            svc.name,
            svc.image,
            crate::duration::human(PULL_TIMEOUT)
        )
    })?
    .map_err(|e| format!("service {}: cannot run {program}: {e}", svc.name))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "service {} did not start from {}: {}",
        svc.name,
        svc.image,
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// Waits until the service's port takes a connection and its healthcheck
/// (if any) passes inside it; its log's end if it stops or never answers.
async fn ready(program: &str, name: &str, svc: &Service, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + svc.ready_timeout;
    let mut open = false;
    loop {
        if !open {
            open = answers(port).await;
        }
        if open {
            let Some(check) = &svc.healthcheck else {
                return Ok(());
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let mut cmd = Command::new(program);
            cmd.args(["exec", name, "sh", "-c", check])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true);
            let passed = tokio::time::timeout(left, cmd.status())
                .await
                .is_ok_and(|s| s.is_ok_and(|s| s.success()));
            if passed {
                return Ok(());
            }
        }
        // An engine that cannot say (busy, its lock taken) is asked again.
        let state = Command::new(program)
            .args([
                "container",
                "inspect",
                "--format",
                "{{.State.Running}}",
                name,
            ])
            .stdin(Stdio::null())
            .output()
            .await;
        let running = match state {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim() == "true",
            _ => true,
        };
        if !running || Instant::now() > deadline {
            let how = if running {
                format!(
                    "did not answer on port {} within {}",
                    svc.port,
                    crate::duration::human(svc.ready_timeout)
                )
            } else {
                STOPPED.to_string()
            };
            return Err(failure(program, name, svc, &how).await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The port of 127.0.0.1 the engine published the service on; None once
/// it has stopped.
async fn published(program: &str, name: &str, svc: &Service) -> Option<u16> {
    let out = Command::new(program)
        .args(["port", name, &format!("{}/tcp", svc.port)])
        .stdin(Stdio::null())
        .output()
        .await
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().rsplit_once(':')?.1.parse().ok())
}

/// Whether something listens behind the port: a connection that is not
/// closed at once. An engine's port proxy (rootless Podman, Docker's)
/// takes the connection itself and closes it while nothing listens inside.
async fn answers(port: u16) -> bool {
    use tokio::io::AsyncReadExt;
    let Ok(mut conn) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(200), conn.read(&mut byte)).await {
        // Quiet (a server waiting for its client to speak first), or it spoke.
        Err(_) | Ok(Ok(1..)) => true,
        // Closed or reset at once: the proxy, with nobody behind it.
        Ok(Ok(0)) | Ok(Err(_)) => false,
    }
}

/// How long the engine may take to start a service (pulling its image).
const PULL_TIMEOUT: Duration = Duration::from_secs(600);

const STOPPED: &str = "stopped before it answered";

/// Why the service is not there, and the end of its log.
async fn failure(program: &str, name: &str, svc: &Service, how: &str) -> String {
    format!(
        "service {} {how}{}",
        svc.name,
        log_tail(program, name).await
    )
}

async fn log_tail(program: &str, name: &str) -> String {
    let out = Command::new(program)
        .args(["logs", "--tail", "10", name])
        .stdin(Stdio::null())
        .output()
        .await;
    match out {
        Ok(o) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            let text = text.trim();
            if text.is_empty() {
                String::new()
            } else {
                format!("; its log ends:\n{text}")
            }
        }
        Err(_) => String::new(),
    }
}
