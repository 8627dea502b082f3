//! One attempt, in phases: prepare (prompt, launch, environment:
//! [`super::launch`]), run the agent ([`super::agent`]), keep its work (a
//! commit, and its end kept under the attempt's ref whatever happened:
//! [`super::keep`]), judge how the agent ended, then the gates. A
//! request that cuts it short (stop, steer, shutdown, budget) maps to one
//! outcome in one place, whichever phase it came in.

use super::agent::{fail_if, judge, label, run_agent, Verdict};
use super::executor::Placement;
use super::history;
use super::keep::{keep_work, Kept};
use super::launch::{gate_env, prepare};
use super::start::Start;
use crate::adapter::{self, Adapter};
use crate::clock::now_ms;
use crate::engine::desk::workspace;
use crate::engine::messages::{Outcome, WorkerCmd};
use crate::engine::process::gates::{self, GateResult};
use crate::engine::process::jail;
use crate::engine::process::supervise::Ended;
use crate::engine::process::supervise::Output;
use crate::engine::shared::Shared;
use crate::model::{Activity, AttemptStatus};
use crate::plan::AgentProfile;
use crate::store::TaskUpdate;
use std::ffi::OsString;
use tokio::sync::mpsc::UnboundedReceiver;

/// How an attempt ended, for the worker.
pub(crate) enum Step {
    /// The task is over, one way or another.
    End(Outcome),
    /// A person steered it: the next attempt gets the message.
    Steered(String),
    /// The agent or a gate failed; a retry may follow.
    Failed(Failed),
    /// The provider limited the agent (rate limit, overload, quota): not the
    /// task's failure; it may wait and go on.
    Limited(Limited),
    /// The agent asked a person and ended its turn: the task waits.
    Asked {
        question: String,
        commit: Option<String>,
    },
    /// An answer came while the agent ran and did not reach it: the next
    /// attempt takes it, in the agent's session.
    Answered,
}

/// What a failed attempt left: why, the feedback for the next one, its
/// work and its last word.
pub(crate) struct Failed {
    pub reason: String,
    pub feedback: String,
    pub commit: Option<String>,
    pub result: String,
}

/// What an attempt the provider limited left.
pub(crate) struct Limited {
    pub limit: adapter::limits::Limit,
    /// The model gateway saw it (its own event counts it).
    pub at_wire: bool,
    pub reason: String,
    pub commit: Option<String>,
    pub result: String,
}

/// Records how attempt `n` of a task ended.
struct Ledger<'a> {
    sh: &'a Shared,
    task: &'a str,
    n: u32,
}

impl Ledger<'_> {
    async fn finish(&self, status: AttemptStatus, code: Option<i32>, reason: Option<&str>) {
        let (task, n) = (self.task.to_string(), self.n);
        let reason = reason.map(str::to_string);
        let res = self
            .sh
            .db(move |s, run| s.finish_attempt(run, &task, n, status, code, reason.as_deref()))
            .await;
        if let Err(e) = res {
            tracing::error!("cannot record the end of attempt {n} of {}: {e}", self.task);
        }
    }

    async fn fail(&self, reason: String) -> Step {
        self.finish(AttemptStatus::Failed, None, Some(&reason))
            .await;
        Step::End(Outcome::Failed {
            commit: None,
            reason,
            result: String::new(),
        })
    }

    async fn result(&self, result: &str) {
        let upd = TaskUpdate {
            result: Some(result.to_string()),
            ..Default::default()
        };
        self.sh.update_task(self.task, upd, None).await;
    }
}

pub(crate) async fn run(
    sh: &Shared,
    st: &mut Start,
    adapter: &dyn Adapter,
    profile: &AgentProfile,
    n: u32,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> Step {
    let task = st.spec.id.clone();
    let ledger = Ledger { sh, task: &task, n };
    // A remote attempt runs setup where it works (`executor::setup`).
    let here = matches!(profile.executor, crate::plan::Executor::Local);
    if st.needs_setup && here {
        if let Some(step) = setup(&ledger, st, profile, cmds).await {
            return step;
        }
    }
    let mut prepared = match prepare(sh, st, adapter, profile, n).await {
        Ok(p) => p,
        Err(reason) => return ledger.fail(reason).await,
    };
    prepared.placement = match Placement::place(sh, st, adapter, profile, n, &prepared).await {
        Ok(p) => p,
        Err(reason) => return ledger.fail(reason).await,
    };
    let seen = match &prepared.own_git {
        Some(own) => history::Seen::Own(own.dir.clone()),
        None => history::Seen::Worktree(sh.repo.desk_git_dir(&st.desk.worktree)),
    };
    let before = history::before(sh, &st.desk.worktree, seen).await;
    let mut ran = run_agent(sh, st, adapter, profile, n, &prepared, cmds).await;
    let placement = std::mem::replace(&mut prepared.placement, Placement::Local);
    let landed = placement.land(sh, st, n, &mut ran).await;
    if let Some(cg) = prepared.cgroup.take() {
        cg.remove().await;
    }
    if let Some(s) = ran.session.clone() {
        st.session = Some(s);
    }
    let finish = ran.out.finish.clone().unwrap_or_default();
    let result = finish.final_message.clone();

    crate::failpoint::hit("agent-ended");
    // Whatever happened, the work is kept.
    let kept = Kept {
        label: label(&ran.out.ended),
        before: &before,
        own_git: prepared.own_git.as_ref(),
    };
    let commit = match keep_work(sh, st, n, kept).await {
        Ok(c) => c,
        Err(reason) => return unkept(&ledger, &ran.out.ended, reason, result).await,
    };
    let verdict = judge(&ran, &finish, n, st.spec.timeout);
    // The wire's word first: the provider's own status and retry-after,
    // whatever the CLI made of them.
    let limit = ran.wire_limit.as_ref().or(finish.limit.as_ref());
    if let (Verdict::Failed { reason, code, .. }, Some(limit)) = (&verdict, limit) {
        ledger
            .finish(AttemptStatus::Failed, *code, Some(reason))
            .await;
        return Step::Limited(Limited {
            at_wire: ran.wire_limited,
            limit: limit.clone(),
            reason: reason.clone(),
            commit,
            result,
        });
    }
    if let Some(step) = asked(&ledger, &prepared, &verdict, &commit).await {
        return step;
    }
    if let Some(step) = settle(&ledger, st, verdict, commit.clone(), &result).await {
        return step;
    }
    ledger.result(&result).await;
    if let Some(gated) = landed.gates(sh, st, n).await {
        return checked(&ledger, st, gated, commit, result).await;
    }
    let gate_env = gate_env(&prepared.env);
    let jail = prepared.jail.as_ref();
    let checks = Checks {
        env: &gate_env,
        jail,
        unset: &prepared.unset,
    };
    check(&ledger, st, checks, commit, result, cmds).await
}

/// The work could not be kept (committed on the task's branch): the
/// attempt fails, and the task with it, unless baton was stopping anyway.
async fn unkept(ledger: &Ledger<'_>, ended: &Ended, reason: String, result: String) -> Step {
    ledger
        .finish(AttemptStatus::Failed, None, Some(&reason))
        .await;
    Step::End(match ended {
        Ended::Cmd(WorkerCmd::Shutdown) => Outcome::Interrupted { commit: None },
        _ => Outcome::Failed {
            commit: None,
            reason,
            result,
        },
    })
}

/// `[workspace] setup` in the task's new worktree, once: a failure fails
/// the task (no retry would fix it) with the command and its output.
async fn setup(
    ledger: &Ledger<'_>,
    st: &mut Start,
    profile: &AgentProfile,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> Option<Step> {
    let (sh, task) = (ledger.sh, ledger.task);
    let t = task.to_string();
    sh.write("set activity", move |s, run| {
        s.set_activity(run, &t, Some(Activity::Setup), Some(now_ms()))
    })
    .await;
    let mut env: Vec<(OsString, OsString)> = vec![
        ("PWD".into(), st.desk.worktree.clone().into()),
        ("BATON_RUN".into(), sh.run_id.clone().into()),
        ("BATON_TASK".into(), task.into()),
    ];
    env.extend(st.desk_env.iter().cloned());
    // The project's setup runs code the agents wrote: in their sandbox.
    let jail = match &profile.sandbox {
        Some(spec) => match jail::check_jail(
            sh,
            spec,
            &jail::desk_name(task),
            Some(task),
            Some(ledger.n),
            &st.desk.worktree,
            &env,
        )
        .await
        {
            Ok(j) => Some(j),
            Err(reason) => return Some(ledger.fail(reason).await),
        },
        None => None,
    };
    let args = jail.as_ref();
    match workspace::setup(sh, task, ledger.n, &st.desk.worktree, &env, args, cmds).await {
        GateResult::Passed => {
            st.needs_setup = false;
            if st.desk.keep_ignored {
                let key = match st.setup_key.take() {
                    Some(k) => k,
                    None => crate::engine::desk::pool::setup_key(sh, &st.desk.start_commit).await,
                };
                crate::engine::desk::pool::write_key(&sh.repo, &st.desk.worktree, &key);
            }
            let upd = TaskUpdate {
                setup_done: Some(true),
                ..Default::default()
            };
            sh.update_task(task, upd, None).await;
            None
        }
        GateResult::Failed { feedback, .. } => Some(ledger.fail(feedback).await),
        GateResult::Interrupted(cmd) => {
            Some(interrupted(ledger, cmd, None, None, String::new()).await)
        }
    }
}

/// An agent that asked a person and ended its turn (passed or not) is not
/// judged yet: the task waits for the answer, or goes on with one that came
/// while it ran and could not reach it.
async fn asked(
    ledger: &Ledger<'_>,
    prepared: &super::launch::Prepared,
    verdict: &Verdict,
    commit: &Option<String>,
) -> Option<Step> {
    let asked = prepared
        .ask
        .as_ref()
        .is_some_and(|a| a.asked.load(std::sync::atomic::Ordering::SeqCst));
    if !asked || !matches!(verdict, Verdict::Passed | Verdict::Failed { .. }) {
        return None;
    }
    let (task, n) = (ledger.task.to_string(), ledger.n);
    let found = ledger
        .sh
        .db(move |s, run| -> Result<_, crate::store::StoreError> {
            // This attempt's questions: one an earlier go left open (a stop,
            // a retry) is no reason to wait now.
            let open = s.open_questions(Some(run))?;
            let open = open
                .into_iter()
                .find(|q| q.task_id == task && q.attempt == Some(n));
            Ok((open, s.answers_undelivered(run, &task)?))
        })
        .await;
    let (open, undelivered) = match found {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!("cannot read task {}'s questions: {e}", ledger.task);
            return None;
        }
    };
    if let Some(q) = open {
        let why = format!("asked a person: {}", q.question.text);
        ledger.finish(AttemptStatus::Asked, None, Some(&why)).await;
        return Some(Step::Asked {
            question: q.question.text,
            commit: commit.clone(),
        });
    }
    if undelivered.is_empty() {
        return None;
    }
    let why = "an answer came while the agent ran; it goes on with it";
    ledger.finish(AttemptStatus::Asked, None, Some(why)).await;
    Some(Step::Answered)
}

/// The attempt ends here unless the agent passed and `fail_if` does not match.
async fn settle(
    ledger: &Ledger<'_>,
    st: &Start,
    verdict: Verdict,
    commit: Option<String>,
    result: &str,
) -> Option<Step> {
    let result = result.to_string();
    match verdict {
        Verdict::Passed => {}
        Verdict::Interrupted(cmd) => {
            return Some(interrupted(ledger, cmd, None, commit, result).await)
        }
        Verdict::NotStarted(reason) => {
            ledger
                .finish(AttemptStatus::Failed, None, Some(&reason))
                .await;
            return Some(Step::End(Outcome::Failed {
                commit,
                reason,
                result: String::new(),
            }));
        }
        Verdict::Failed {
            reason,
            feedback,
            code,
        } => {
            let status = match code {
                Some(_) => AttemptStatus::Failed,
                None => AttemptStatus::TimedOut,
            };
            ledger.finish(status, code, Some(&reason)).await;
            return Some(Step::Failed(Failed {
                reason,
                feedback,
                commit,
                result,
            }));
        }
    }
    let reason = fail_if(st, &result)?;
    ledger
        .finish(AttemptStatus::Failed, Some(0), Some(&reason))
        .await;
    ledger.result(&result).await;
    Some(Step::End(Outcome::Failed {
        commit,
        reason,
        result,
    }))
}

/// The gates, once the agent is done and passed.
/// What an attempt's gates run with: the agent's environment (less its
/// prompt), its sandbox, and what they must not inherit.
struct Checks<'a> {
    env: &'a [(OsString, OsString)],
    jail: Option<&'a crate::engine::process::jail::Jail>,
    unset: &'a [OsString],
}

async fn check(
    ledger: &Ledger<'_>,
    st: &Start,
    c: Checks<'_>,
    commit: Option<String>,
    result: String,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> Step {
    let sh = ledger.sh;
    let gates = gates::GateRun {
        kind: gates::Kind::Gate,
        task: Some(ledger.task),
        attempt: Some(ledger.n),
        gates: &st.spec.gates,
        worktree: &st.desk.worktree,
        output: Output::Log(sh.paths.attempt_log(&sh.run_id, ledger.task, ledger.n)),
        timeout: st.spec.timeout,
        env: c.env,
        jail: c.jail,
        unset: c.unset,
    };
    crate::failpoint::hit("gates");
    let gated = gates::run_all(ledger.sh, gates, cmds).await;
    checked(ledger, st, gated, commit, result).await
}

/// The attempt's end, from how its gates went.
async fn checked(
    ledger: &Ledger<'_>,
    st: &Start,
    gated: GateResult,
    commit: Option<String>,
    result: String,
) -> Step {
    match gated {
        GateResult::Passed => {
            ledger.finish(AttemptStatus::Succeeded, Some(0), None).await;
            Step::End(Outcome::Done {
                commit: commit.unwrap_or_else(|| st.desk.start_commit.clone()),
                result,
            })
        }
        GateResult::Interrupted(cmd) => interrupted(ledger, cmd, Some(0), commit, result).await,
        GateResult::Failed { reason, feedback } => {
            ledger
                .finish(AttemptStatus::Failed, Some(0), Some(&reason))
                .await;
            Step::Failed(Failed {
                reason,
                feedback,
                commit,
                result,
            })
        }
    }
}

/// A request cut the attempt short: the agent (`code` None) or, once it
/// exited 0, its gates.
async fn interrupted(
    ledger: &Ledger<'_>,
    cmd: WorkerCmd,
    code: Option<i32>,
    commit: Option<String>,
    result: String,
) -> Step {
    let during = if code.is_some() { " during gates" } else { "" };
    let (status, why) = match &cmd {
        WorkerCmd::Shutdown => (
            AttemptStatus::Interrupted,
            format!("baton was stopped{during}"),
        ),
        WorkerCmd::Stop if code.is_some() => {
            (AttemptStatus::Stopped, "stopped during gates".into())
        }
        WorkerCmd::Stop => (AttemptStatus::Stopped, "stopped by request".into()),
        WorkerCmd::Outrun(reason) => (AttemptStatus::Stopped, reason.clone()),
        WorkerCmd::OverBudget(reason) | WorkerCmd::NoAnswer(reason) => {
            (AttemptStatus::Failed, reason.clone())
        }
        // A message never ends an attempt (supervise hands it over or
        // leaves it); were it to, it would be a steer.
        WorkerCmd::Steer(_) | WorkerCmd::Message { .. } => {
            (AttemptStatus::Steered, "restarted with a message".into())
        }
    };
    let step = match cmd.ends(commit, result, "") {
        Ok(end) => Step::End(end),
        Err(message) => Step::Steered(message),
    };
    ledger.finish(status, code, Some(&why)).await;
    step
}
