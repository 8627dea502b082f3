//! Runs one child process (an agent attempt or a gate) in its own process
//! group: output to the log file, a timeout, and stop/steer/shutdown
//! requests that kill the whole group.

use super::output::{Lines, Tail};
use super::WorkerCmd;
use crate::adapter::{AgentEvent, StreamParser};
use crate::process::{kill_tree, reap_leftovers, Watchdog, KILL_GRACE};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc::UnboundedReceiver;

const STDOUT_TAIL: usize = 256 * 1024;
const STDERR_TAIL: usize = 16 * 1024;
const MAX_LINE: usize = 1024 * 1024;

pub(crate) struct Spec<'a> {
    pub program: OsString,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    pub cwd: &'a Path,
    pub log: PathBuf,
    pub timeout: Duration,
}

#[derive(Debug)]
pub(crate) enum Ended {
    Exited(i32),
    TimedOut,
    /// A request from the engine ended it.
    Cmd(WorkerCmd),
    SpawnFailed(String),
}

pub(crate) struct Outcome {
    pub ended: Ended,
    pub stdout_tail: String,
    pub stderr_tail: String,
    /// stdout and stderr together, in arrival order per chunk (for gate feedback).
    pub combined_tail: String,
    pub events: Vec<AgentEvent>,
    pub parser: Option<Box<dyn StreamParser>>,
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

async fn pump<R: AsyncRead + Unpin>(
    mut r: R,
    log: Option<std::fs::File>,
    tail_cap: usize,
    combined: Arc<std::sync::Mutex<Tail>>,
    mut parser: Option<Box<dyn StreamParser>>,
) -> (String, Vec<AgentEvent>, Option<Box<dyn StreamParser>>) {
    use std::io::Write;
    let mut log = log;
    let mut tail = Tail::new(tail_cap);
    let mut lines = Lines::new(MAX_LINE);
    let mut events = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        if let Some(f) = log.as_mut() {
            if f.write_all(chunk).is_err() {
                log = None;
            }
        }
        tail.push(chunk);
        if let Ok(mut c) = combined.lock() {
            c.push(chunk);
        }
        if let Some(p) = parser.as_mut() {
            lines.feed(chunk, |l| events.extend(p.line(l)));
        }
    }
    if let Some(p) = parser.as_mut() {
        lines.finish(|l| events.extend(p.line(l)));
    }
    (tail.text(), events, parser)
}

/// Starts the process and waits for it to end one way or another. `on_start`
/// gets the process group id as soon as it exists.
pub(crate) async fn run(
    spec: Spec<'_>,
    parser: Option<Box<dyn StreamParser>>,
    watchdog: Option<&Watchdog>,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
    on_start: impl FnOnce(i32),
) -> Outcome {
    let fail = |msg: String, parser| Outcome {
        ended: Ended::SpawnFailed(msg),
        stdout_tail: String::new(),
        stderr_tail: String::new(),
        combined_tail: String::new(),
        events: Vec::new(),
        parser,
    };
    if let Some(dir) = spec.log.parent() {
        if let Err(e) = std::fs::create_dir_all(dir) {
            return fail(
                format!("cannot create log dir {}: {e}", dir.display()),
                parser,
            );
        }
    }
    let open_log = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
    };
    let (log_out, log_err) = match (open_log(), open_log()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            return fail(
                format!("cannot open log {}: {e}", spec.log.display()),
                parser,
            )
        }
    };
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .current_dir(spec.cwd)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let prog = spec.program.to_string_lossy();
            let msg = if e.kind() == std::io::ErrorKind::NotFound {
                format!("cannot start {prog:?}: not found (is it installed and on PATH?)")
            } else {
                format!("cannot start {prog:?}: {e}")
            };
            return fail(msg, parser);
        }
    };
    let pgid = child.id().map(|p| p as i32).unwrap_or(0);
    if let Some(w) = watchdog {
        w.watch(pgid);
    }
    on_start(pgid);

    let combined = Arc::new(std::sync::Mutex::new(Tail::new(STDERR_TAIL)));
    let out_task = child.stdout.take().map(|s| {
        tokio::spawn(pump(
            s,
            Some(log_out),
            STDOUT_TAIL,
            combined.clone(),
            parser,
        ))
    });
    let err_task = child
        .stderr
        .take()
        .map(|s| tokio::spawn(pump(s, Some(log_err), STDERR_TAIL, combined.clone(), None)));

    let sleep = tokio::time::sleep(spec.timeout);
    tokio::pin!(sleep);
    let ended = tokio::select! {
        st = child.wait() => match st {
            Ok(s) => Ended::Exited(exit_code(s)),
            Err(e) => Ended::SpawnFailed(format!("lost the process: {e}")),
        },
        _ = &mut sleep => {
            kill_tree(&mut child, pgid, KILL_GRACE).await;
            Ended::TimedOut
        }
        cmd = cmds.recv() => match cmd {
            Some(c) => {
                kill_tree(&mut child, pgid, KILL_GRACE).await;
                Ended::Cmd(c)
            }
            // The engine is gone: nobody will ask again; let the process finish.
            None => match child.wait().await {
                Ok(s) => Ended::Exited(exit_code(s)),
                Err(e) => Ended::SpawnFailed(format!("lost the process: {e}")),
            },
        },
    };
    // Background children the agent left behind die with it.
    reap_leftovers(pgid);
    if let Some(w) = watchdog {
        w.forget(pgid);
    }

    // Output pipes close once the group is gone; a process that escaped the
    // group may hold them open, so do not wait forever.
    let join = |t: Option<tokio::task::JoinHandle<_>>| async move {
        match t {
            Some(t) => tokio::time::timeout(Duration::from_secs(2), t)
                .await
                .ok()
                .and_then(Result::ok),
            None => None,
        }
    };
    let (stdout_tail, events, parser) = join(out_task).await.unwrap_or_default();
    let (stderr_tail, _, _) = join(err_task).await.unwrap_or_default();
    let combined_tail = combined.lock().map(|t| t.text()).unwrap_or_default();
    Outcome {
        ended,
        stdout_tail,
        stderr_tail,
        combined_tail,
        events,
        parser,
    }
}
