//! The agent's run under supervision (its stream watched, its budget and
//! stall kept), and the verdict on how it ended.

use super::launch::Prepared;
use super::meter::Meter;
use super::start::Start;
use super::watch::Watch;
use crate::adapter::{self, Adapter, Finish};
use crate::duration::human;
use crate::engine::messages::WorkerCmd;
use crate::engine::process::output::last_lines;
use crate::engine::process::supervise::Output;
use crate::engine::process::supervise::{self, Ended, Io, Spec};
use crate::engine::shared::Shared;
use crate::plan::AgentProfile;
use crate::store::AttemptRecord;
use tokio::sync::mpsc::UnboundedReceiver;

/// The agent's process, from start to end, and what its stream said.
pub(crate) struct AgentRun {
    pub(super) out: supervise::Outcome,
    pub(super) session: Option<String>,
    pub(super) last_error: Option<String>,
    /// The sandbox limit the agent hit (its memory, its processes).
    pub(super) limit_hit: Option<String>,
    /// The provider's limit the gateway saw last, with no request through
    /// after it.
    pub(super) wire_limit: Option<crate::adapter::limits::Limit>,
    /// The gateway saw the provider limit one of its requests.
    pub(super) wire_limited: bool,
}

pub(super) async fn run_agent(
    sh: &Shared,
    st: &Start,
    adapter: &dyn Adapter,
    profile: &AgentProfile,
    n: u32,
    p: &Prepared,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> AgentRun {
    let placement = &p.placement;
    let task = st.spec.id.as_str();
    let mut spec = Spec {
        program: p.launch.program.clone(),
        args: p.launch.args.clone(),
        env: p.env.clone(),
        cwd: &st.desk.worktree,
        output: Output::Log(sh.paths.attempt_log(&sh.run_id, task, n)),
        timeout: st.spec.timeout,
        cgroup: p
            .cgroup
            .as_ref()
            .map(|c| c.procs().to_vec())
            .unwrap_or_default(),
        unset: p.unset.clone(),
        grace: crate::process::KILL_GRACE,
    };
    placement.shape(&mut spec);
    let id = task.to_string();
    let earlier: Vec<AttemptRecord> = sh
        .db(move |s, run| s.attempts(run, &id))
        .await
        .map(|a| a.into_iter().filter(|a| a.n != n).collect())
        .unwrap_or_default();
    let mut watch = Watch {
        sh,
        task,
        n,
        activity: None,
        meter: Meter::new(
            sh.prices.clone(),
            profile.model.clone(),
            session_base(&earlier, st.session.as_deref()),
        ),
        prior_cost: earlier.iter().filter_map(|a| a.cost_usd).sum(),
        budget: st.spec.budget_usd,
        session: None,
        last_error: None,
        asking: p.ask.as_ref().map(|a| a.waiting.clone()),
        gate: p
            .gate
            .as_ref()
            .map(|g| (g.gateway.clone(), g.access.token.clone())),
        priced_as: profile.model.clone(),
        reported: Meter::new(
            sh.prices.clone(),
            profile.model.clone(),
            session_base(&earlier, st.session.as_deref()),
        ),
        wire: Default::default(),
        profile: &profile.name,
        wire_limit: None,
        wire_limited: false,
    };
    let mut wire = p.gate.as_ref().and_then(|g| g.take_wire());
    let steer = |m: &str| adapter.steer_line(m);
    let (local, live) = (placement.is_here(), placement.takes_input());
    let io = Io {
        parser: Some(adapter.parser()),
        // A remote agent's first lines travel in its request; its
        // follower's stdin carries what it is sent while it runs.
        stdin_lines: match local {
            true => p.launch.stdin_lines.clone(),
            false => live.then(Vec::new),
        },
        // Where no stdin reaches the agent, a steer restarts its attempt.
        steer: if live { Some(&steer) } else { None },
        stall_after: Some(st.spec.stall_after),
        redactor: Some(sh.redactor.clone()),
        combined: false,
        wire: wire.as_mut(),
    };
    let out = supervise::run(spec, io, sh.watchdog.as_ref(), cmds, &mut watch).await;
    if !matches!(out.ended, supervise::Ended::Exited(_)) {
        if let Some(j) = &p.jail {
            j.settle().await;
        }
    }
    if let (Some(g), Some(rx)) = (&p.gate, wire.as_mut()) {
        // The last answers' usage may still be on its way: the token is
        // forgotten, then what the gateway still tells is counted.
        g.gateway.revoke(&g.access.token);
        super::gate::drain(rx, &mut watch).await;
    }
    let limit_hit = p.cgroup.as_ref().and_then(|c| c.hit()).or_else(|| {
        let supervise::Ended::Exited(code) = out.ended else {
            return None;
        };
        p.jail.as_ref().and_then(|j| j.limit_hit(code))
    });
    AgentRun {
        out,
        session: watch.session,
        last_error: watch.last_error,
        limit_hit,
        wire_limit: watch.wire_limit,
        wire_limited: watch.wire_limited,
    }
}

/// Tokens that earlier attempts already counted in the same agent session
/// (agents like Codex report session totals).
pub(super) fn session_base(earlier: &[AttemptRecord], session: Option<&str>) -> (u64, u64) {
    let Some(session) = session else {
        return (0, 0);
    };
    earlier
        .iter()
        .filter(|a| a.session_id.as_deref() == Some(session))
        .fold((0, 0), |acc, a| {
            (
                acc.0 + a.input_tokens.unwrap_or(0).max(0) as u64,
                acc.1 + a.output_tokens.unwrap_or(0).max(0) as u64,
            )
        })
}

/// How the agent's process ended, in the commit message's words.
pub(super) fn label(ended: &Ended) -> String {
    match ended {
        Ended::Exited(0) => "done".to_string(),
        Ended::Exited(c) => format!("exit {c}"),
        Ended::TimedOut => "timed out".into(),
        Ended::Cmd(WorkerCmd::Stop) => "stopped".into(),
        Ended::Cmd(WorkerCmd::Outrun(_)) => "outrun".into(),
        Ended::Cmd(WorkerCmd::Steer(_)) => "steered".into(),
        Ended::Cmd(WorkerCmd::Message { .. }) => "done".into(),
        Ended::Cmd(WorkerCmd::Shutdown) => "interrupted".into(),
        Ended::Cmd(WorkerCmd::OverBudget(_)) => "over budget".into(),
        Ended::Cmd(WorkerCmd::NoAnswer(_)) => "no answer".into(),
        Ended::SpawnFailed(_) => "could not start".into(),
    }
}

/// What the agent's end means, before any gate runs.
pub(super) enum Verdict {
    Passed,
    Interrupted(WorkerCmd),
    NotStarted(String),
    /// `code` is the exit status, None for a timeout.
    Failed {
        reason: String,
        feedback: String,
        code: Option<i32>,
    },
}

pub(super) fn judge(
    ran: &AgentRun,
    finish: &Finish,
    n: u32,
    timeout: std::time::Duration,
) -> Verdict {
    let with_last_error = |r: String| match &ran.last_error {
        Some(e) => format!("{r}; the agent's last error: {}", adapter::clip(e, 300)),
        None => r,
    };
    match &ran.out.ended {
        Ended::Cmd(cmd) => Verdict::Interrupted(cmd.clone()),
        Ended::SpawnFailed(reason) => Verdict::NotStarted(reason.clone()),
        Ended::TimedOut => {
            let r = with_last_error(format!("attempt {n} timed out after {}", human(timeout)));
            Verdict::Failed {
                feedback: format!("{r}; the agent was stopped. Work in smaller steps."),
                reason: r,
                code: None,
            }
        }
        Ended::Exited(code) if *code != 0 => {
            let mut r = format!("agent exited with status {code}");
            if let Some(hit) = &ran.limit_hit {
                r = format!("{r}: {hit}");
            } else if let Some(e) = finish.error.as_ref().or(ran.last_error.as_ref()) {
                r = format!("{r}: {}", adapter::clip(e, 300));
            }
            let tail = ran.out.stderr_tail.trim();
            let feedback = if tail.is_empty() {
                r.clone()
            } else {
                format!(
                    "{r}. The end of its error output:\n{}",
                    last_lines(tail, 20)
                )
            };
            Verdict::Failed {
                reason: r,
                feedback,
                code: Some(*code),
            }
        }
        Ended::Exited(code) => match (&finish.error, finish.complete) {
            (Some(e), _) => Verdict::Failed {
                reason: format!("agent reported an error: {e}"),
                feedback: format!("The agent reported an error: {e}"),
                code: Some(*code),
            },
            (None, false) => {
                let r = with_last_error("the agent's output ended without its final result (interrupted, or not the output format baton expects)".to_string());
                Verdict::Failed {
                    feedback: r.clone(),
                    reason: r,
                    code: Some(*code),
                }
            }
            (None, true) => Verdict::Passed,
        },
    }
}

/// The task's `fail_if`, if it matches the final message.
pub(super) fn fail_if(st: &Start, result: &str) -> Option<String> {
    let re = st.spec.fail_if.as_ref()?;
    let m = re.find(result)?;
    Some(format!(
        "fail_if /{}/ matched the final message: {:?}",
        re.as_str(),
        m.as_str()
    ))
}
