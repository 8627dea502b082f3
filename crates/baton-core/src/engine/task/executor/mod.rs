//! The seam between an attempt and where its agent runs. The attempt
//! prepares the agent's launch as for a local run; its profile's executor
//! then places it ([`Placement::place`]): here, the agent is the process the
//! engine supervises; elsewhere, a process here follows the remote run (its
//! output is the agent's stream, so parsing, usage, budgets, stall and stop
//! work the same). Once that process ended the executor brings the remote
//! end home ([`Placement::land`]) and says how the remote gates went.
//!
//! Every remote executor is placed the same way ([`remote`]): what differs
//! between them is their settings ([`crate::plan::Remote`]) and the driver
//! the binary registers for their follower ([`crate::executor::Driver`]).

pub(crate) mod hosts;
pub(crate) mod remote;

use super::agent::AgentRun;
use super::launch::Prepared;
use super::start::Start;
use crate::engine::messages::GateResult;
use crate::engine::process::supervise::{Ended, Spec};
use crate::engine::shared::Shared;
use crate::executor::PodEnd;
use crate::payload::{CheckEnd, Payload};
use crate::plan::{AgentProfile, Executor};
use std::time::Duration;

/// Where one attempt's agent runs.
pub(crate) enum Placement {
    /// Here, in a process group of baton's own.
    Local,
    /// Elsewhere (a pod on a cluster); a process here makes it run there
    /// and follows it.
    Remote(remote::Follower),
}

/// What a placed attempt left, once its process here ended.
pub(crate) enum Landed {
    /// Here: its gates run here.
    Here,
    /// Elsewhere: its end as the remote side told it (None: it told nothing).
    Away(Option<PodEnd>),
}

impl Placement {
    /// Places attempt `n` as `profile`'s executor says.
    pub async fn place(
        sh: &Shared,
        st: &Start,
        adapter: &dyn crate::adapter::Adapter,
        profile: &AgentProfile,
        n: u32,
        prepared: &Prepared,
    ) -> Result<Placement, String> {
        match &profile.executor {
            Executor::Local => Ok(Placement::Local),
            Executor::Remote(there) => {
                // Its agent takes messages while it runs when its CLI does
                // (as here).
                let live = adapter.steer_line("-").is_some();
                let follower = remote::place(sh, st, profile, there, live, n, prepared).await?;
                Ok(Placement::Remote(follower))
            }
        }
    }

    /// Whether the agent is the process here (its stdin reaches it).
    pub fn is_here(&self) -> bool {
        matches!(self, Placement::Local)
    }

    /// Whether a message reaches the agent while it runs: here through its
    /// stdin, elsewhere through its follower's (which hands it over); else
    /// a steer restarts its attempt.
    pub fn takes_input(&self) -> bool {
        match self {
            Placement::Local => true,
            Placement::Remote(f) => f.live,
        }
    }

    /// The process the engine supervises: the agent's own launch here, else
    /// the follower (the agent's environment and stdin travel in its
    /// request, not to it).
    pub fn shape(&self, spec: &mut Spec<'_>) {
        match self {
            Placement::Local => {}
            Placement::Remote(f) => f.shape(spec),
        }
    }

    /// After the process here ended: the remote end brought home (the
    /// worktree moved to the commit it pushed), and what `ran` says made
    /// to read as a local run would.
    pub async fn land(self, sh: &Shared, st: &Start, n: u32, ran: &mut AgentRun) -> Landed {
        let end = match self {
            Placement::Local => return Landed::Here,
            Placement::Remote(f) => f.land(sh, st, n).await,
        };
        // Its own timeout ended the remote agent: a timeout, as it would be here.
        if end.as_ref().is_some_and(|p| p.timed_out) && matches!(ran.out.ended, Ended::Exited(_)) {
            ran.out.ended = Ended::TimedOut;
        }
        if end.is_none() {
            // No remote side said how it went: the reason is what its follower said.
            let tail = ran.out.stderr_tail.trim();
            let said = tail.lines().last().map(str::to_string);
            ran.last_error = said.or(ran.last_error.take());
        }
        Landed::Away(end)
    }
}

impl Landed {
    /// How the remote gates went, in the words of local gates; None: they
    /// run here.
    pub async fn gates(self, sh: &Shared, st: &Start, n: u32) -> Option<GateResult> {
        let Landed::Away(end) = self else {
            return None;
        };
        let end = end.unwrap_or_default();
        let (task, spec) = (&st.spec.id, &st.spec);
        Some(pod_gates(sh, task, n, &end, spec.gates.len(), spec.timeout).await)
    }
}

/// A remote side's gates (the pod protocol's end) as events and a result,
/// in the words of local gates.
async fn pod_gates(
    sh: &Shared,
    task: &str,
    n: u32,
    end: &PodEnd,
    expected: usize,
    timeout: Duration,
) -> GateResult {
    // A failure of the pod's own, with what went wrong in it.
    let pod_failed = |what: String| {
        let why = end.error.as_deref().map(|e| format!(": {e}"));
        let reason = format!("{what}{}", why.unwrap_or_default());
        GateResult::Failed {
            feedback: reason.clone(),
            reason,
        }
    };
    if !end.pushed {
        return pod_failed("the pod's work did not reach baton".into());
    }
    for g in &end.gates {
        let started = Payload::GateStarted {
            gate: g.gate.clone(),
        };
        sh.event(Some(task), Some(n), started).await;
        let ended = match (g.code, g.timed_out, &g.error) {
            (Some(c), _, _) => Ended::Exited(c),
            (None, true, _) => Ended::TimedOut,
            (None, false, e) => Ended::SpawnFailed(e.clone().unwrap_or_default()),
        };
        let (passed, reason) =
            crate::engine::process::gates::judge("gate", &g.gate, &ended, timeout);
        let data = Payload::GateFinished(CheckEnd {
            gate: g.gate.clone(),
            passed,
            duration_ms: g.duration_ms,
            reason: reason.clone(),
        });
        sh.event(Some(task), Some(n), data).await;
        if !passed {
            return crate::engine::process::gates::failed(&g.gate, reason, &g.tail);
        }
    }
    if end.gates.len() < expected {
        let ran = end.gates.len();
        return pod_failed(format!("the pod ran {ran} of the task's {expected} gates"));
    }
    GateResult::Passed
}
