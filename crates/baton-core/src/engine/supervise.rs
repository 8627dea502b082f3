//! Runs one child process (an agent attempt or a gate) in its own process
//! group: output to the log file (secrets masked), parsed events to the
//! worker as they come, a timeout, stall detection, live steering over stdin
//! where the agent takes it, and stop/steer/shutdown requests that kill the
//! whole group.

use super::output::{Lines, Tail};
use super::WorkerCmd;
use crate::adapter::{AgentEvent, StreamParser};
use crate::process::{kill_tree, reap_leftovers, Watchdog, KILL_GRACE};
use crate::secrets::Redactor;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

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

/// Turns a steer message into a stdin line, for agents that take one live.
pub(crate) type SteerLine<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// How the process talks, beyond exit status.
#[derive(Default)]
pub(crate) struct Io<'a> {
    pub parser: Option<Box<dyn StreamParser>>,
    /// Lines for a stdin pipe kept open for steering; None: stdin is /dev/null.
    pub stdin_lines: Option<Vec<String>>,
    /// Turns a steer message into a stdin line, for agents that take one live.
    pub steer: Option<SteerLine<'a>>,
    pub stall_after: Option<Duration>,
    pub redactor: Option<Arc<Redactor>>,
}

/// What the worker hears while the process runs.
pub(crate) enum Signal<'e> {
    Started(i32),
    /// Some output arrived (resets the stall clock).
    Output,
    Events(&'e [AgentEvent]),
    Stalled,
}

#[derive(Debug)]
pub(crate) enum Ended {
    Exited(i32),
    TimedOut,
    /// A request (from the engine, or the worker's own budget check) ended it.
    Cmd(WorkerCmd),
    SpawnFailed(String),
}

pub(crate) struct Outcome {
    pub ended: Ended,
    pub stdout_tail: String,
    pub stderr_tail: String,
    /// stdout and stderr together, in arrival order per chunk (for gate feedback).
    pub combined_tail: String,
    pub parser: Option<Box<dyn StreamParser>>,
}

enum Msg {
    Output,
    Events(Vec<AgentEvent>),
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// Writes output to the log; with secrets to mask it goes line by line.
struct LogWriter {
    file: Option<std::fs::File>,
    redactor: Option<Arc<Redactor>>,
    pending: Vec<u8>,
}

impl LogWriter {
    fn write(&mut self, chunk: &[u8]) {
        let Some(r) = self.redactor.clone().filter(|r| !r.is_empty()) else {
            self.raw(chunk);
            return;
        };
        self.pending.extend_from_slice(chunk);
        while let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=i).collect();
            self.raw(r.redact(&String::from_utf8_lossy(&line)).as_bytes());
        }
        if self.pending.len() > MAX_LINE {
            self.flush_pending();
        }
    }

    fn flush_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        let text = match &self.redactor {
            Some(r) => r.redact(&text),
            None => text,
        };
        self.raw(text.as_bytes());
    }

    fn raw(&mut self, bytes: &[u8]) {
        if let Some(f) = self.file.as_mut() {
            if f.write_all(bytes).is_err() {
                self.file = None;
            }
        }
    }
}

async fn pump<R: AsyncRead + Unpin>(
    mut r: R,
    mut log: LogWriter,
    tail_cap: usize,
    combined: Arc<Mutex<Tail>>,
    mut parser: Option<Box<dyn StreamParser>>,
    tx: UnboundedSender<Msg>,
) -> (String, Option<Box<dyn StreamParser>>) {
    let mut tail = Tail::new(tail_cap);
    let mut lines = Lines::new(MAX_LINE);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        log.write(chunk);
        tail.push(chunk);
        if let Ok(mut c) = combined.lock() {
            c.push(chunk);
        }
        let _ = tx.send(Msg::Output);
        if let Some(p) = parser.as_mut() {
            let mut events = Vec::new();
            lines.feed(chunk, |l| events.extend(p.line(l)));
            if !events.is_empty() {
                let _ = tx.send(Msg::Events(events));
            }
        }
    }
    log.flush_pending();
    if let Some(p) = parser.as_mut() {
        let mut events = Vec::new();
        lines.finish(|l| events.extend(p.line(l)));
        if !events.is_empty() {
            let _ = tx.send(Msg::Events(events));
        }
    }
    let text = tail.text();
    let text = match &log.redactor {
        Some(r) => r.redact(&text),
        None => text,
    };
    (text, parser)
}

fn failed(msg: String, parser: Option<Box<dyn StreamParser>>) -> Outcome {
    Outcome {
        ended: Ended::SpawnFailed(msg),
        stdout_tail: String::new(),
        stderr_tail: String::new(),
        combined_tail: String::new(),
        parser,
    }
}

/// Starts the process and waits for it to end one way or another, telling
/// `on` what happens; `on` may answer with a request that ends the process.
pub(crate) async fn run(
    spec: Spec<'_>,
    io: Io<'_>,
    watchdog: Option<&Watchdog>,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
    on: &mut (dyn FnMut(Signal) -> Option<WorkerCmd> + Send),
) -> Outcome {
    let Io {
        parser,
        stdin_lines,
        steer,
        stall_after,
        redactor,
    } = io;
    if let Some(dir) = spec.log.parent() {
        if let Err(e) = std::fs::create_dir_all(dir) {
            return failed(
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
            return failed(
                format!("cannot open log {}: {e}", spec.log.display()),
                parser,
            )
        }
    };
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .current_dir(spec.cwd)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(if stdin_lines.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let prog = spec.program.to_string_lossy();
            let msg = if e.kind() == std::io::ErrorKind::NotFound {
                format!("cannot start {prog:?}: not found (is it installed and on PATH, or set the profile's `command`?)")
            } else {
                format!("cannot start {prog:?}: {e}")
            };
            return failed(msg, parser);
        }
    };
    let pgid = child.id().map(|p| p as i32).unwrap_or(0);
    if let Some(w) = watchdog {
        w.watch(pgid);
    }
    on(Signal::Started(pgid));

    // Stdin is written by a task of its own, so that an agent that does not
    // read it yet never blocks the timeout, a stop or the output pumps.
    // Dropping the sender closes the agent's stdin.
    let mut stdin: Option<mpsc::UnboundedSender<String>> = child.stdin.take().map(|mut pipe| {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                if pipe
                    .write_all(format!("{line}\n").as_bytes())
                    .await
                    .is_err()
                    || pipe.flush().await.is_err()
                {
                    break;
                }
            }
        });
        tx
    });
    for l in stdin_lines.iter().flatten() {
        if let Some(tx) = &stdin {
            let _ = tx.send(l.clone());
        }
    }
    let mut turns_expected = 1u32;
    let mut turns_ended = 0u32;

    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let combined = Arc::new(Mutex::new(Tail::new(STDERR_TAIL)));
    let writer = |file| LogWriter {
        file: Some(file),
        redactor: redactor.clone(),
        pending: Vec::new(),
    };
    let out_task = child.stdout.take().map(|s| {
        tokio::spawn(pump(
            s,
            writer(log_out),
            STDOUT_TAIL,
            combined.clone(),
            parser,
            tx.clone(),
        ))
    });
    let err_task = child.stderr.take().map(|s| {
        tokio::spawn(pump(
            s,
            writer(log_err),
            STDERR_TAIL,
            combined.clone(),
            None,
            tx.clone(),
        ))
    });
    drop(tx);

    let sleep = tokio::time::sleep(spec.timeout);
    tokio::pin!(sleep);
    let stall = stall_after.unwrap_or(Duration::from_secs(365 * 24 * 3600));
    let mut stall_tick =
        tokio::time::interval((stall / 4).clamp(Duration::from_millis(50), Duration::from_secs(5)));
    let mut last_output = Instant::now();
    let mut stalled = false;
    let mut rx_open = true;

    let ended = loop {
        tokio::select! {
            st = child.wait() => break match st {
                Ok(s) => Ended::Exited(exit_code(s)),
                Err(e) => Ended::SpawnFailed(format!("lost the process: {e}")),
            },
            _ = &mut sleep => {
                kill_tree(&mut child, pgid, KILL_GRACE).await;
                break Ended::TimedOut;
            }
            msg = rx.recv(), if rx_open => {
                let Some(msg) = msg else { rx_open = false; continue };
                last_output = Instant::now();
                stalled = false;
                let reply = match &msg {
                    Msg::Output => on(Signal::Output),
                    Msg::Events(evs) => {
                        turns_ended += evs.iter().filter(|e| matches!(e, AgentEvent::TurnEnd { .. })).count() as u32;
                        on(Signal::Events(evs))
                    }
                };
                if let Some(c) = reply {
                    kill_tree(&mut child, pgid, KILL_GRACE).await;
                    break Ended::Cmd(c);
                }
                // Every turn asked for is done: closing stdin lets the agent exit.
                if stdin.is_some() && turns_ended >= turns_expected {
                    stdin = None;
                }
            }
            _ = stall_tick.tick(), if stall_after.is_some() => {
                if !stalled && last_output.elapsed() >= stall {
                    stalled = true;
                    if let Some(c) = on(Signal::Stalled) {
                        kill_tree(&mut child, pgid, KILL_GRACE).await;
                        break Ended::Cmd(c);
                    }
                }
            }
            cmd = cmds.recv() => match cmd {
                Some(WorkerCmd::Steer(m)) if stdin.is_some() && steer.and_then(|f| f(&m)).is_some() => {
                    let line = steer.and_then(|f| f(&m)).unwrap_or_default();
                    let ok = stdin.as_ref().is_some_and(|tx| tx.send(line).is_ok());
                    if ok {
                        turns_expected += 1;
                    } else {
                        kill_tree(&mut child, pgid, KILL_GRACE).await;
                        break Ended::Cmd(WorkerCmd::Steer(m));
                    }
                }
                Some(c) => {
                    kill_tree(&mut child, pgid, KILL_GRACE).await;
                    break Ended::Cmd(c);
                }
                // The engine is gone: nobody will ask again; let the process finish.
                None => break match child.wait().await {
                    Ok(s) => Ended::Exited(exit_code(s)),
                    Err(e) => Ended::SpawnFailed(format!("lost the process: {e}")),
                },
            },
        }
    };
    drop(stdin);
    // Background children the agent left behind die with it.
    reap_leftovers(pgid);
    if let Some(w) = watchdog {
        w.forget(pgid);
    }

    // Output pipes close once the group is gone; a process that escaped the
    // group may hold them open, so do not wait forever.
    async fn join<T>(t: Option<tokio::task::JoinHandle<T>>) -> Option<T> {
        tokio::time::timeout(Duration::from_secs(2), t?)
            .await
            .ok()?
            .ok()
    }
    let (stdout_tail, parser) = join(out_task).await.unwrap_or_default();
    let (stderr_tail, _) = join(err_task).await.unwrap_or_default();
    // What the pumps read after the exit still counts (usage, the final result).
    while let Ok(msg) = rx.try_recv() {
        if let Msg::Events(evs) = &msg {
            let _ = on(Signal::Events(evs));
        }
    }
    let combined_tail = combined.lock().map(|t| t.text()).unwrap_or_default();
    let combined_tail = match &redactor {
        Some(r) => r.redact(&combined_tail),
        None => combined_tail,
    };
    Outcome {
        ended,
        stdout_tail,
        stderr_tail,
        combined_tail,
        parser,
    }
}
