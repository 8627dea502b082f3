//! Runs one child process (an agent attempt or a gate) in its own process
//! group: output to the log file or a stream of lines ([`Output`]; secrets
//! masked) by its pumps ([`super::output`]), parsed events to the worker as
//! they come, a timeout, stall detection, live steering over stdin where
//! the agent takes it, and stop/steer/shutdown requests that kill the whole
//! group. [`spawn`] starts it; [`Running::wait`] follows it to its end,
//! telling an [`AttemptSink`] what happens.

use super::output::{pump, Msg, Tail};
pub(crate) use super::writer::Output;
use super::writer::{targets, LogWriter};
use crate::adapter::{AgentEvent, Finish, StreamParser};
use crate::engine::messages::WorkerCmd;
use crate::gateway::Wire;
use crate::process::{kill_tree, reap_leftovers, Watchdog};
use crate::secrets::Redactor;
use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc::{self, UnboundedReceiver};

const STDOUT_TAIL: usize = crate::adapter::TEXT_TAIL;
const STDERR_TAIL: usize = 16 * 1024;
/// Messages from an agent's pumps not yet taken by the attempt: a full
/// queue holds the pumps (and so the agent), not baton's memory.
const QUEUE: usize = 2;

pub(crate) struct Spec<'a> {
    pub program: OsString,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    pub cwd: &'a Path,
    pub output: Output,
    pub timeout: Duration,
    /// The `cgroup.procs` files of the cgroups it runs in (its limits).
    pub cgroup: Vec<std::ffi::CString>,
    /// Variables of baton's environment it must not inherit.
    pub unset: Vec<OsString>,
    /// Between SIGTERM and SIGKILL when it is ended (a pod's follower
    /// needs the pod's own grace to see its work pushed).
    pub grace: Duration,
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
    /// Keep the end of stdout and stderr together (a check's output, for
    /// feedback); an agent's is not kept (its log has it), which saves a
    /// buffer per running agent.
    pub combined: bool,
    /// What the model gateway tells of the agent's requests.
    pub wire: Option<&'a mut UnboundedReceiver<Wire>>,
}

/// What the worker hears while the process runs; any answer but None ends
/// the process with that request.
pub(crate) trait AttemptSink: Send {
    /// The process started, in its own group `pgid`.
    async fn started(&mut self, _pgid: i32) {}
    /// Some output arrived (it resets the stall clock).
    async fn output(&mut self) {}
    /// The agent's stream said these things.
    async fn events(&mut self, _events: &[AgentEvent]) -> Option<WorkerCmd> {
        None
    }
    /// Nothing came for `stall_after`.
    async fn stalled(&mut self) -> Option<WorkerCmd> {
        None
    }
    /// Message `id` went to the agent's stdin.
    async fn delivered(&mut self, _id: i64) {}
    /// The model gateway told of one of the agent's requests.
    async fn wire(&mut self, _w: Wire) -> Option<WorkerCmd> {
        None
    }
}

/// For processes nobody listens to beyond their exit (gates).
pub(crate) struct Unheard;

impl AttemptSink for Unheard {}

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
    pub stderr_tail: String,
    /// stdout and stderr together, in arrival order per chunk (for gate
    /// feedback); empty unless [`Io::combined`] asked for it.
    pub combined_tail: String,
    /// How the agent's stream ended, as its parser reads it (None: no parser).
    pub finish: Option<Finish>,
}

/// The gateway's next word, or never (no gateway, or it has gone).
async fn next_wire(rx: &mut Option<&mut UnboundedReceiver<Wire>>) -> Option<Wire> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// The end of a process that never started.
pub(crate) fn not_started(msg: String) -> Outcome {
    Outcome {
        ended: Ended::SpawnFailed(msg),
        stderr_tail: String::new(),
        combined_tail: String::new(),
        finish: None,
    }
}

/// A process that started, and what follows it.
pub(crate) struct Running<'a> {
    child: tokio::process::Child,
    pgid: i32,
    timeout: Duration,
    grace: Duration,
    /// Feeds a stdin pipe kept open for steering; dropping it closes the pipe.
    stdin: Option<mpsc::UnboundedSender<String>>,
    steer: Option<SteerLine<'a>>,
    stall_after: Option<Duration>,
    redactor: Option<Arc<Redactor>>,
    msgs: mpsc::Receiver<Msg>,
    combined: Option<Arc<Mutex<Tail>>>,
    out_task: Option<tokio::task::JoinHandle<(String, Option<Finish>)>>,
    err_task: Option<tokio::task::JoinHandle<(String, Option<Finish>)>>,
    watchdog: Option<&'a Watchdog>,
    wire: Option<&'a mut UnboundedReceiver<Wire>>,
}

/// Starts the process in its own group, its output going to the log (and
/// the parser); Err says why it could not start.
pub(crate) async fn spawn<'a>(
    spec: Spec<'_>,
    io: Io<'a>,
    watchdog: Option<&'a Watchdog>,
) -> Result<Running<'a>, String> {
    let Io {
        parser,
        stdin_lines,
        steer,
        stall_after,
        redactor,
        combined,
        wire,
    } = io;
    let (log_out, log_err) = targets(&spec.output).await?;
    let mut child = command(&spec, stdin_lines.is_some()).spawn().map_err(|e| {
        let prog = spec.program.to_string_lossy();
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("cannot start {prog:?}: not found (is it installed and on PATH, or set the profile's `command`?)")
        } else {
            format!("cannot start {prog:?}: {e}")
        }
    })?;
    let pgid = child.id().map(|p| p as i32).unwrap_or(0);
    if let Some(w) = watchdog {
        w.watch(pgid);
    }
    let mut stdin = child.stdin.take().map(stdin_writer);
    for l in stdin_lines.iter().flatten() {
        if let Some(tx) = &stdin {
            let _ = tx.send(l.clone());
        }
    }
    if steer.is_none() {
        // Nothing will be written later: the agent reads to the end of its
        // input and goes on.
        stdin = None;
    }
    let (tx, msgs) = mpsc::channel::<Msg>(QUEUE);
    let combined = combined.then(|| Arc::new(Mutex::new(Tail::new(STDERR_TAIL))));
    let writer = |target| LogWriter::new(target, redactor.clone());
    // Only what the parser's finish reads is kept of the end of stdout.
    let tail = parser.as_ref().map_or(STDOUT_TAIL, |p| p.tail_wanted());
    let out_task = child.stdout.take().map(|s| {
        let log = writer(log_out);
        tokio::spawn(pump(s, log, tail, combined.clone(), parser, tx.clone()))
    });
    let err_task = child.stderr.take().map(|s| {
        let log = writer(log_err);
        tokio::spawn(pump(
            s,
            log,
            STDERR_TAIL,
            combined.clone(),
            None,
            tx.clone(),
        ))
    });
    Ok(Running {
        child,
        pgid,
        timeout: spec.timeout,
        grace: spec.grace,
        stdin,
        steer,
        stall_after,
        redactor,
        msgs,
        combined,
        out_task,
        err_task,
        watchdog,
        wire,
    })
}

/// The process in a group of its own (so that stop, timeout and baton's
/// death end all of it), its output piped.
fn command(spec: &Spec<'_>, stdin_pipe: bool) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&spec.program);
    for name in crate::process::withheld() {
        // Before its own env: a profile that gives the variable keeps it.
        cmd.env_remove(name);
    }
    for name in &spec.unset {
        cmd.env_remove(name);
    }
    cmd.args(&spec.args)
        .current_dir(spec.cwd)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(if stdin_pipe {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    if !spec.cgroup.is_empty() {
        let procs = spec.cgroup.clone();
        // SAFETY: join_self makes only async-signal-safe calls.
        unsafe {
            cmd.pre_exec(move || crate::sandbox::cgroup::join_self(&procs));
        }
    }
    cmd
}

/// Stdin is written by a task of its own, so that an agent that does not
/// read it yet never blocks the timeout, a stop or the output pumps.
fn stdin_writer(mut pipe: tokio::process::ChildStdin) -> mpsc::UnboundedSender<String> {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            let written = pipe.write_all(format!("{line}\n").as_bytes()).await;
            if written.is_err() || pipe.flush().await.is_err() {
                break;
            }
        }
    });
    tx
}

impl Running<'_> {
    /// Follows the process to its end, telling `sink` what happens; a
    /// request from `cmds` or an answer from `sink` ends the whole group.
    pub async fn wait<S: AttemptSink>(
        mut self,
        sink: &mut S,
        cmds: &mut UnboundedReceiver<WorkerCmd>,
    ) -> Outcome {
        sink.started(self.pgid).await;
        let ended = self.until_end(sink, cmds).await;
        self.stdin = None;
        // Background children the agent left behind die with it.
        reap_leftovers(self.pgid);
        if let Some(w) = self.watchdog {
            w.forget(self.pgid);
        }
        // Output pipes close once the group is gone; a process that escaped
        // the group may hold them open, so do not wait forever: the pumps
        // may go on while they make progress (they wait on a full queue,
        // which is read here), and are given up after IDLE without any.
        async fn join<T>(t: Option<tokio::task::JoinHandle<T>>) -> Option<T> {
            t?.await.ok()
        }
        const IDLE: Duration = Duration::from_secs(2);
        // And not forever even then (one that escaped and prints on).
        let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
        let (out, err) = (self.out_task.take(), self.err_task.take());
        let joined = async { (join(out).await, join(err).await) };
        tokio::pin!(joined);
        let mut deadline = tokio::time::Instant::now() + IDLE;
        let mut open = true;
        let (out, err) = loop {
            tokio::select! {
                both = &mut joined => break both,
                msg = self.msgs.recv(), if open => match msg {
                    Some(Msg::Events(evs)) => {
                        let _ = sink.events(&evs).await;
                        deadline = tokio::time::Instant::now() + IDLE;
                    }
                    Some(Msg::Output) => deadline = tokio::time::Instant::now() + IDLE,
                    None => open = false,
                },
                () = tokio::time::sleep_until(deadline.min(give_up)) => break (None, None),
            }
        };
        let (_, finish) = out.unwrap_or_default();
        let (stderr_tail, _) = err.unwrap_or_default();
        // What the pumps read after the exit still counts (usage, the final result).
        while let Ok(msg) = self.msgs.try_recv() {
            if let Msg::Events(evs) = &msg {
                let _ = sink.events(evs).await;
            }
        }
        let combined_tail = match self.combined.as_ref().map(|c| c.lock()) {
            Some(Ok(t)) => t.text(),
            _ => String::new(),
        };
        let combined_tail = match &self.redactor {
            Some(r) => r.redact(&combined_tail),
            None => combined_tail,
        };
        Outcome {
            ended,
            stderr_tail,
            combined_tail,
            finish,
        }
    }

    async fn kill(&mut self) {
        kill_tree(&mut self.child, self.pgid, self.grace).await;
    }

    async fn until_end<S: AttemptSink>(
        &mut self,
        sink: &mut S,
        cmds: &mut UnboundedReceiver<WorkerCmd>,
    ) -> Ended {
        let sleep = tokio::time::sleep(self.timeout);
        tokio::pin!(sleep);
        let stall = self
            .stall_after
            .unwrap_or(Duration::from_secs(365 * 24 * 3600));
        let period = (stall / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        let mut stall_tick = tokio::time::interval(period);
        let mut last_output = Instant::now();
        let mut stalled = false;
        let mut msgs_open = true;
        let mut turns_expected = 1u32;
        let mut turns_ended = 0u32;
        loop {
            tokio::select! {
                st = self.child.wait() => return match st {
                    Ok(s) => Ended::Exited(exit_code(s)),
                    Err(e) => Ended::SpawnFailed(format!("lost the process: {e}")),
                },
                _ = &mut sleep => {
                    self.kill().await;
                    return Ended::TimedOut;
                }
                msg = self.msgs.recv(), if msgs_open => {
                    let Some(msg) = msg else { msgs_open = false; continue };
                    last_output = Instant::now();
                    stalled = false;
                    let reply = match &msg {
                        Msg::Output => {
                            sink.output().await;
                            None
                        }
                        Msg::Events(evs) => {
                            turns_ended += evs.iter().filter(|e| matches!(e, AgentEvent::TurnEnd { .. })).count() as u32;
                            sink.events(evs).await
                        }
                    };
                    if let Some(c) = reply {
                        self.kill().await;
                        return Ended::Cmd(c);
                    }
                    // Every turn asked for is done: closing stdin lets the agent exit.
                    if self.stdin.is_some() && turns_ended >= turns_expected {
                        self.stdin = None;
                    }
                }
                _ = stall_tick.tick(), if self.stall_after.is_some() => {
                    if !stalled && last_output.elapsed() >= stall {
                        stalled = true;
                        if let Some(c) = sink.stalled().await {
                            self.kill().await;
                            return Ended::Cmd(c);
                        }
                    }
                }
                cmd = cmds.recv() => {
                    if let Some(ended) = self.on_cmd(cmd, sink, &mut turns_expected).await {
                        return ended;
                    }
                }
                w = next_wire(&mut self.wire) => {
                    match w {
                        Some(w) => if let Some(c) = sink.wire(w).await {
                            self.kill().await;
                            return Ended::Cmd(c);
                        },
                        None => self.wire = None,
                    }
                }
            }
        }
    }

    /// A request while the process runs: a message or a steer the agent
    /// takes live goes to its stdin (one more turn expected); any other
    /// request ends it. Some: how the process ended.
    async fn on_cmd<S: AttemptSink>(
        &mut self,
        cmd: Option<WorkerCmd>,
        sink: &mut S,
        turns_expected: &mut u32,
    ) -> Option<Ended> {
        match cmd {
            // A message never ends the attempt; one that cannot be handed
            // over now waits for the next attempt.
            Some(WorkerCmd::Message { id, said }) => {
                if self.steers_live(&said) {
                    let line = self.steer.and_then(|f| f(&said)).unwrap_or_default();
                    if self.stdin.as_ref().is_some_and(|tx| tx.send(line).is_ok()) {
                        *turns_expected += 1;
                        sink.delivered(id).await;
                    }
                }
                None
            }
            Some(WorkerCmd::Steer(m)) if self.steers_live(&m) => {
                let line = self.steer.and_then(|f| f(&m)).unwrap_or_default();
                if self.stdin.as_ref().is_some_and(|tx| tx.send(line).is_ok()) {
                    *turns_expected += 1;
                    return None;
                }
                self.kill().await;
                Some(Ended::Cmd(WorkerCmd::Steer(m)))
            }
            Some(c) => {
                self.kill().await;
                Some(Ended::Cmd(c))
            }
            // The engine is gone: nobody will ask again; let the process finish.
            None => Some(match self.child.wait().await {
                Ok(s) => Ended::Exited(exit_code(s)),
                Err(e) => Ended::SpawnFailed(format!("lost the process: {e}")),
            }),
        }
    }

    /// Whether a steer message can reach the agent while it runs.
    fn steers_live(&self, message: &str) -> bool {
        self.stdin.is_some() && self.steer.and_then(|f| f(message)).is_some()
    }
}

/// Starts the process and follows it to its end.
pub(crate) async fn run<S: AttemptSink>(
    spec: Spec<'_>,
    io: Io<'_>,
    watchdog: Option<&Watchdog>,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
    sink: &mut S,
) -> Outcome {
    match spawn(spec, io, watchdog).await {
        Ok(running) => running.wait(sink, cmds).await,
        Err(msg) => not_started(msg),
    }
}
