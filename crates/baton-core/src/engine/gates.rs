//! Gates: shell commands run in the task's worktree after an attempt. The
//! first failing one becomes the feedback for the next attempt.

use super::messages::WorkerCmd;
use super::output::last_lines;
use super::shared::Shared;
use super::supervise::{self, Ended, Spec, Unheard};
use crate::model::EventKind;
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc::UnboundedReceiver;

const FEEDBACK_LINES: usize = 40;

pub(crate) enum GateResult {
    Passed,
    Failed { reason: String, feedback: String },
    Interrupted(WorkerCmd),
}

/// The attempt whose work the gates check.
pub(crate) struct GateRun<'a> {
    pub task: &'a str,
    pub attempt: u32,
    pub gates: &'a [String],
    pub worktree: &'a Path,
    pub timeout: Duration,
    pub env: &'a [(OsString, OsString)],
}

pub(crate) async fn run_all(
    sh: &Shared,
    g: GateRun<'_>,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> GateResult {
    let GateRun {
        task,
        attempt,
        gates,
        worktree,
        timeout,
        env,
    } = g;
    let log = sh.paths.attempt_log(&sh.run_id, task, attempt);
    for gate in gates {
        let data = serde_json::json!({ "gate": gate });
        sh.event(Some(task), Some(attempt), EventKind::GateStarted, data)
            .await;
        let heading = format!("\n==> baton: gate `{gate}`\n");
        if let Ok(mut f) = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .await
        {
            let _ = f.write_all(heading.as_bytes()).await;
        }
        let spec = Spec {
            program: "sh".into(),
            args: vec!["-c".into(), gate.into()],
            env: env.to_vec(),
            cwd: worktree,
            log: log.clone(),
            timeout,
        };
        let started = std::time::Instant::now();
        let io = supervise::Io {
            redactor: Some(sh.redactor.clone()),
            ..Default::default()
        };
        let out = supervise::run(spec, io, sh.watchdog.as_ref(), cmds, &mut Unheard).await;
        let ms = started.elapsed().as_millis() as u64;
        let (passed, reason) = match &out.ended {
            Ended::Exited(0) => (true, String::new()),
            Ended::Exited(code) => (
                false,
                format!("gate `{gate}` failed with exit status {code}"),
            ),
            Ended::TimedOut => (
                false,
                format!(
                    "gate `{gate}` timed out after {}",
                    crate::duration::human(timeout)
                ),
            ),
            Ended::SpawnFailed(e) => (false, format!("gate `{gate}` could not run: {e}")),
            Ended::Cmd(_) => (false, String::new()),
        };
        let data = serde_json::json!({ "gate": gate, "passed": passed, "duration_ms": ms, "reason": reason });
        sh.event(Some(task), Some(attempt), EventKind::GateFinished, data)
            .await;
        if let Ended::Cmd(c) = out.ended {
            return GateResult::Interrupted(c);
        }
        if !passed {
            let tail = last_lines(&out.combined_tail, FEEDBACK_LINES);
            let feedback = format!("{reason}. The end of its output:\n{tail}");
            return GateResult::Failed { reason, feedback };
        }
    }
    GateResult::Passed
}
