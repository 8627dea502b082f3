//! Checks: shell commands that judge work. Gates run in the task's worktree
//! after an attempt; `verify` runs on the merged whole before the
//! integration branch moves. The first failing one becomes the feedback for
//! the task's next attempt.

use super::output::last_lines;
use super::supervise::{self, Ended, Output, Spec, Unheard};
use crate::engine::messages::WorkerCmd;
use crate::engine::shared::Shared;
use crate::payload::{CheckEnd, Payload};
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc::UnboundedReceiver;

const FEEDBACK_LINES: usize = 40;

pub(crate) use crate::engine::messages::GateResult;

/// Which commands: gates of an attempt, the run's verify, or a worktree's
/// `[workspace]` setup or teardown (run the same way, with stop and timeout).
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Gate,
    Verify,
    Setup,
    Teardown,
}

impl Kind {
    pub(crate) fn word(self) -> &'static str {
        match self {
            Kind::Gate => "gate",
            Kind::Verify => "verify",
            Kind::Setup => "setup",
            Kind::Teardown => "teardown",
        }
    }

    /// What says that `gate` started.
    fn started(self, gate: &str) -> Payload {
        let gate = gate.to_string();
        match self {
            Kind::Gate => Payload::GateStarted { gate },
            Kind::Verify => Payload::VerifyStarted { gate },
            Kind::Setup => Payload::SetupStarted { gate },
            Kind::Teardown => Payload::TeardownStarted { gate },
        }
    }

    /// What says how a check ended.
    fn finished(self, end: CheckEnd) -> Payload {
        match self {
            Kind::Gate => Payload::GateFinished(end),
            Kind::Verify => Payload::VerifyFinished(end),
            Kind::Setup => Payload::SetupFinished(end),
            Kind::Teardown => Payload::TeardownFinished(end),
        }
    }
}

/// The work the checks judge.
pub(crate) struct GateRun<'a> {
    pub kind: Kind,
    /// Whose commands they are (None: the run's, e.g. a pool worktree's setup).
    pub task: Option<&'a str>,
    /// The attempt whose work it is (None for verify, which checks a merge).
    pub attempt: Option<u32>,
    pub gates: &'a [String],
    pub worktree: &'a Path,
    pub output: Output,
    pub timeout: Duration,
    pub env: &'a [(OsString, OsString)],
    /// The agent's sandbox (`bwrap` arguments): its gates run in it too.
    pub jail: Option<&'a crate::engine::process::jail::Jail>,
    /// Variables of baton's environment they must not inherit (a provider's
    /// key, when the agent goes through the model gateway).
    pub unset: &'a [OsString],
}

pub(crate) async fn run_all(
    sh: &Shared,
    g: GateRun<'_>,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> GateResult {
    let word = g.kind.word();
    for gate in g.gates {
        sh.event(g.task, g.attempt, g.kind.started(gate)).await;
        let watched = Watched {
            redactor: Some(sh.redactor.clone()),
            watchdog: sh.watchdog.as_ref(),
        };
        let (out, ms) = run_one(&g, gate, watched, cmds).await;
        let (passed, reason) = judge(word, gate, &out.ended, g.timeout);
        let end = CheckEnd {
            gate: gate.to_string(),
            passed,
            duration_ms: ms,
            reason: reason.clone(),
        };
        sh.event(g.task, g.attempt, g.kind.finished(end)).await;
        if let Ended::Cmd(c) = out.ended {
            return GateResult::Interrupted(c);
        }
        if !passed {
            return failed(gate, reason, &out.combined_tail);
        }
    }
    GateResult::Passed
}

/// What watches a check beyond its own end: secrets masked in its output,
/// and the watchdog that ends it when baton dies.
#[derive(Default)]
pub(crate) struct Watched<'a> {
    pub redactor: Option<std::sync::Arc<crate::secrets::Redactor>>,
    pub watchdog: Option<&'a crate::process::Watchdog>,
}

/// Runs one of `g`'s commands to its end, in the agent's sandbox when it
/// has one: how it ended, and how long it took in milliseconds. A remote
/// attempt runs its gates with this too.
pub(crate) async fn run_one(
    g: &GateRun<'_>,
    gate: &str,
    watched: Watched<'_>,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> (supervise::Outcome, u64) {
    if let Output::Log(log) = &g.output {
        heading(log, &format!("\n==> baton: {} `{gate}`\n", g.kind.word())).await;
    }
    let (program, args) = match g.jail {
        Some(j) => j.command("sh".into(), vec!["-c".into(), gate.into()]),
        None => ("sh".into(), vec!["-c".into(), gate.into()]),
    };
    let spec = Spec {
        program,
        args,
        env: g.env.to_vec(),
        cwd: g.worktree,
        output: g.output.clone(),
        timeout: g.timeout,
        cgroup: Vec::new(),
        unset: g.unset.to_vec(),
        grace: crate::process::KILL_GRACE,
    };
    let started = std::time::Instant::now();
    let io = supervise::Io {
        redactor: watched.redactor,
        combined: true,
        ..Default::default()
    };
    let out = supervise::run(spec, io, watched.watchdog, cmds, &mut Unheard).await;
    if let (Some(j), false) = (g.jail, matches!(out.ended, supervise::Ended::Exited(_))) {
        j.settle().await;
    }
    (out, started.elapsed().as_millis() as u64)
}

/// A check's heading in the log its output goes to.
async fn heading(log: &Path, heading: &str) {
    if let Some(dir) = log.parent() {
        // Setup runs before anything else of the attempt wrote its log.
        let _ = tokio::fs::create_dir_all(dir).await;
    }
    if let Ok(mut f) = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .await
    {
        let _ = f.write_all(heading.as_bytes()).await;
    }
}

/// Whether a check passed, and if not why, in the words of a reason.
pub(crate) fn judge(
    word: &str,
    gate_cmd: &str,
    ended: &Ended,
    timeout: Duration,
) -> (bool, String) {
    let gate = short_command(gate_cmd);
    match ended {
        Ended::Exited(0) => (true, String::new()),
        Ended::Exited(code) => (
            false,
            format!("{word} `{gate}` failed with exit status {code}"),
        ),
        Ended::TimedOut => (
            false,
            format!(
                "{word} `{gate}` timed out after {}",
                crate::duration::human(timeout)
            ),
        ),
        Ended::SpawnFailed(e) => (false, format!("{word} `{gate}` could not run: {e}")),
        Ended::Cmd(_) => (false, String::new()),
    }
}

/// A failed check as the next attempt's feedback: the reason, the whole
/// command when the reason shows only its first line, the end of its output.
pub(crate) fn failed(gate_cmd: &str, reason: String, output: &str) -> GateResult {
    let tail = last_lines(output, FEEDBACK_LINES);
    let whole = if gate_cmd.trim() == short_command(gate_cmd) {
        String::new()
    } else {
        format!(" The whole command:\n{}\n", gate_cmd.trim())
    };
    let feedback = format!("{reason}.{whole} The end of its output:\n{tail}");
    GateResult::Failed { reason, feedback }
}

/// A check's command as a reason names it: its first line, cut at 80
/// characters (a multi-line script would not read as a reason).
fn short_command(cmd: &str) -> String {
    let cmd = cmd.trim();
    let first = cmd.lines().next().unwrap_or_default();
    let cut: String = first.chars().take(80).collect();
    if cut.len() < cmd.len() {
        format!("{cut} …")
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_command_is_named_by_its_first_line() {
        assert_eq!(super::short_command("cargo test"), "cargo test");
        assert_eq!(super::short_command("\n set -e\nmake\n"), "set -e …");
        let long = "x".repeat(100);
        assert_eq!(super::short_command(&long), format!("{} …", "x".repeat(80)));
    }
}
