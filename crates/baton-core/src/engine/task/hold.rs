//! A task whose agent the provider limits waits the limit out instead of
//! failing: no retry is used, its profile takes no new task meanwhile, and
//! its next attempt goes on where the agent was (its session resumed).

//!
//! When the limit lasts longer than the profile may wait, the task falls
//! back: the board picks the profile that takes it over.

use super::attempt::Limited;
use super::start::Start;
use crate::adapter::limits::LimitKind;
use crate::adapter::{self, Adapter, AgentEvent};
use crate::clock::now_ms;
use crate::engine::messages::{Outcome, WorkerCmd, WorkerNote};
use crate::engine::shared::Shared;
use crate::model::Activity;
use crate::payload::{LimitWait, Payload};
use crate::plan::AgentProfile;
use crate::store::TaskUpdate;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::oneshot;

/// The agent working on a task now, and the profiles that worked on it
/// before (a fallback is never handed back).
pub(crate) struct Agent {
    pub profile: AgentProfile,
    pub adapter: Box<dyn Adapter>,
    worked: Vec<String>,
    /// Attempts in a row the provider limited: each waits longer.
    pub limited_in_a_row: u32,
}

impl Agent {
    pub fn new(profile: AgentProfile) -> Result<Agent, String> {
        Ok(Agent {
            adapter: adapter::for_profile(&profile.cli())?,
            worked: vec![profile.name.clone()],
            profile,
            limited_in_a_row: 0,
        })
    }
}

/// After an attempt the provider limited: waits the limit out (Ok: the next
/// attempt may start), or falls back to another profile (Ok, with `agent`
/// now that one), or ends the task.
pub(crate) async fn after_limit(
    sh: &Shared,
    st: &mut Start,
    agent: &mut Agent,
    limited: Limited,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> Result<(), Outcome> {
    let p = &agent.profile;
    let wait = match crate::adapter::limits::wait_for(
        &limited.limit,
        agent.limited_in_a_row,
        p.max_wait,
    ) {
        Ok(w) => w,
        Err(why) => return fall_back(sh, st, agent, limited, &why).await,
    };
    agent.limited_in_a_row += 1;
    match wait_out(sh, &st.spec.id, p, &limited, wait, cmds).await {
        Held::Over => {
            st.feedback = Some(format!(
                "The model provider limited your previous attempt ({}); it has passed. Go on where you left off.",
                limited.limit.detail
            ));
            Ok(())
        }
        // A steer goes on with its message; any other request ends the task.
        Held::Cmd(cmd) => {
            let Limited { commit, result, .. } = limited;
            match cmd.ends(commit, result, " while it waited out a rate limit") {
                Ok(end) => Err(end),
                Err(message) => {
                    st.feedback = Some(message);
                    Ok(())
                }
            }
        }
    }
}

/// The limit lasts longer than the profile may wait (`why`): the board
/// picks a fallback, which takes the task over with a handoff; with none,
/// the task fails.
async fn fall_back(
    sh: &Shared,
    st: &mut Start,
    agent: &mut Agent,
    limited: Limited,
    why: &str,
) -> Result<(), Outcome> {
    let from = agent.profile.name.clone();
    // A quota that ran out: no other task should fall back to it meanwhile.
    let quota_until = (limited.limit.kind == LimitKind::Quota)
        .then(|| now_ms() + agent.profile.max_wait.as_millis() as i64);
    let why = format!("{}; {why}", limited.reason);
    let fail = |reason: String| Outcome::Failed {
        commit: limited.commit.clone(),
        reason,
        result: limited.result.clone(),
    };
    let (answer, choice) = oneshot::channel();
    let asked = WorkerNote::Fallback {
        from: from.clone(),
        worked: agent.worked.clone(),
        quota_until,
        answer,
    };
    // The engine answers every note; no answer means it is gone.
    let next = match sh.notes.send(asked) {
        Ok(()) => choice.await.ok().flatten(),
        Err(_) => {
            return Err(Outcome::Interrupted {
                commit: limited.commit,
            })
        }
    };
    let Some(next) = next.and_then(|n| sh.plan.agents.get(&n).cloned()) else {
        return Err(fail(why));
    };
    let Ok(next_adapter) = adapter::for_profile(&next.cli()) else {
        let name = &next.name;
        return Err(fail(format!("{why}; its fallback {name:?} cannot start")));
    };
    st.feedback = Some(handoff(sh, st, &from, &why, &limited.result).await);
    st.session = None;
    let data = Payload::Fallback {
        from: from.clone(),
        to: next.name.clone(),
        reason: why.clone(),
    };
    let upd = TaskUpdate {
        agent: Some(next.name.clone()),
        ..Default::default()
    };
    sh.update_task(&st.spec.id, upd, Some(data)).await;
    agent.worked.push(next.name.clone());
    agent.adapter = next_adapter;
    agent.profile = next;
    agent.limited_in_a_row = 0;
    Ok(())
}

/// How a wait ended.
enum Held {
    /// The time is up: the next attempt may start.
    Over,
    /// A request came meanwhile (stop, shutdown, steer, budget).
    Cmd(WorkerCmd),
}

/// Waits `wait` for task `task` whose `profile` the provider limits, saying
/// so in its status and transcript; requests are answered meanwhile.
async fn wait_out(
    sh: &Shared,
    task: &str,
    profile: &AgentProfile,
    limited: &Limited,
    wait: Duration,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> Held {
    let until = now_ms() + wait.as_millis() as i64;
    let what = match limited.limit.kind {
        LimitKind::Overloaded => "the provider is overloaded",
        _ => "rate limit",
    };
    let on = match &profile.account {
        Some(a) => format!("{} (account {a})", profile.name),
        None => profile.name.clone(),
    };
    let reason = format!(
        "waiting: {what} on {on} until {} ({})",
        crate::clock::rfc3339(until),
        crate::duration::human(wait)
    );
    let data = Payload::Waiting {
        for_: "rate_limit".into(),
        reason: reason.clone(),
        limit: Some(LimitWait {
            profile: profile.name.clone(),
            account: profile.account.clone(),
            until_ms: until,
            at_wire: limited.at_wire,
        }),
    };
    let t = task.to_string();
    sh.write("set activity", move |s, run| {
        s.set_activity(run, &t, Some(Activity::WaitingRateLimit), Some(now_ms()))
    })
    .await;
    sh.event(Some(task), None, data).await;
    let _ = sh.notes.send(WorkerNote::Limited {
        // Profiles of one account share its limits: the board knows which.
        profile: profile.name.clone(),
        until_ms: until,
        reason,
    });
    let sleep = tokio::time::sleep(wait);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = &mut sleep => return Held::Over,
            cmd = cmds.recv() => match cmd {
                // A message waits for the attempt to come.
                Some(WorkerCmd::Message { .. }) => {}
                Some(c) => return Held::Cmd(c),
                // The engine is gone: nothing will start the next attempt.
                None => return Held::Cmd(WorkerCmd::Shutdown),
            },
        }
    }
}

/// What a fallback agent is told when it takes a task over: why the other
/// stopped, the task's prompt, what it said last, and the diff of its work
/// so far (the work itself is in the worktree and on the branch).
async fn handoff(sh: &Shared, st: &Start, from: &str, why: &str, last_said: &str) -> String {
    let tip = format!("refs/heads/{}", st.desk.branch);
    let diff = match sh
        .repo
        .diff_capped(&st.desk.start_commit, &tip, 64 * 1024)
        .await
    {
        Ok((bytes, cut)) => {
            let mut d = String::from_utf8_lossy(&bytes).into_owned();
            if cut {
                d.push_str("\n[cut at 64 KiB: `git diff` in your worktree shows all of it]");
            }
            if d.trim().is_empty() {
                "(none yet)".to_string()
            } else {
                d
            }
        }
        Err(e) => format!("(cannot read it: {e})"),
    };
    // Its last message, rather than the error its attempt ended with.
    let task = st.spec.id.clone();
    let message = sh
        .db(move |s, run| s.task_events_tail(run, &task, 200))
        .await
        .unwrap_or_default()
        .into_iter()
        .rev()
        .find_map(|e| match e.payload()? {
            Payload::Agent(AgentEvent::Message { text }) => Some(text),
            _ => None,
        });
    let said = message.unwrap_or_else(|| last_said.to_string());
    let said = if said.trim().is_empty() {
        "(nothing)"
    } else {
        said.trim()
    };
    format!(
        "You take this task over from another agent ({from}), which had to stop: {why}\n\n\
         The task, as it was given:\n{prompt}\n\n\
         What that agent said last:\n{said}\n\n\
         Its work so far, already in your worktree and on the branch (from where the task started):\n{diff}\n\n\
         Go on from there.",
        prompt = st.spec.prompt.trim(),
    )
}
