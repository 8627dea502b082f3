//! A task whose agent the provider limits waits the limit out instead of
//! failing: no retry is used, its profile takes no new task meanwhile, and
//! its next attempt goes on where the agent was (its session resumed).

use super::messages::{WorkerCmd, WorkerNote};
use super::shared::Shared;
use crate::adapter::limits::Limit;
use crate::clock::now_ms;
use crate::model::{Activity, EventKind};
use serde_json::json;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// How a wait ended.
pub(crate) enum Held {
    /// The time is up: the next attempt may start.
    Over,
    /// A request came meanwhile (stop, shutdown, steer, budget).
    Cmd(WorkerCmd),
}

/// Waits `wait` for task `task` whose `profile` the provider limits, saying
/// so in its status and transcript; requests are answered meanwhile.
pub(crate) async fn wait_out(
    sh: &Shared,
    task: &str,
    profile: &crate::plan::AgentProfile,
    limit: &Limit,
    wait: Duration,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> Held {
    let until = now_ms() + wait.as_millis() as i64;
    let what = match limit.kind {
        crate::adapter::limits::LimitKind::Overloaded => "the provider is overloaded",
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
    let data = json!({ "for": "rate_limit", "profile": profile.name, "account": profile.account, "until_ms": until, "reason": reason });
    let t = task.to_string();
    sh.write("set activity", move |s, run| {
        s.set_activity(run, &t, Some(Activity::WaitingRateLimit), Some(now_ms()))
    })
    .await;
    sh.event(Some(task), None, EventKind::Waiting, data).await;
    sh.hold_limit(profile, until);
    let _ = sh.notes.send(WorkerNote::Limited {
        // Profiles of one account share its limits.
        profile: super::shared::limit_key(profile),
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
pub(crate) async fn handoff(
    sh: &Shared,
    st: &super::start::Start,
    from: &str,
    why: &str,
    last_said: &str,
) -> String {
    let tip = format!("refs/heads/{}", st.branch);
    let diff = match sh.repo.diff_capped(&st.start_commit, &tip, 64 * 1024).await {
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
        .find(|e| e.kind == EventKind::AgentMessage)
        .and_then(|e| {
            e.data
                .get("text")
                .and_then(|t| t.as_str())
                .map(str::to_string)
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
