//! Asking a run driven by another process to stop, steer, approve or retry
//! a task: the request goes into the store's control table, the engine
//! driving the run answers it there. The CLI and the server both use this;
//! an engine in the same process is asked through its
//! [`EngineHandle`](crate::engine::EngineHandle) instead.

use crate::engine::Answer;
use crate::lock::{self, LockState};
use crate::model::{ControlKind, RunStatus};
use crate::paths::StatePaths;
use crate::store::{RunRecord, Store, StoreError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a request waits for its answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a request did not reach an engine, or got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("run {run} has no task {task:?} (its tasks: {known})")]
    NoTask {
        run: String,
        task: String,
        known: String,
    },
    #[error("run {run} is not going on (status: {status}); nothing can {kind} its tasks now{}", if *.resumable { "; continue it with `baton resume`" } else { "" })]
    NotLive {
        run: String,
        status: RunStatus,
        kind: ControlKind,
        /// Not finished: `baton resume` would continue it.
        resumable: bool,
    },
    #[error("run {run} did not answer within {} s; is its baton process stuck?", ANSWER_TIMEOUT.as_secs())]
    Timeout { run: String },
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one sender (a task, or people) may send in a run: a loop of agents
/// cannot flood it.
pub const MESSAGES_PER_MINUTE: u32 = 20;
pub const MESSAGES_PER_RUN: u32 = 200;
/// The longest message.
pub const MAX_MESSAGE: usize = 16 * 1024;

/// Posts a message from `from` (a task of the run; None: a person) to task
/// `to` of a run going on; returns its id. Delivery is then asked of the
/// engine with a [`ControlKind::Message`] request naming the id.
pub async fn post_message(
    store: &Arc<Store>,
    paths: &StatePaths,
    run: &RunRecord,
    from: Option<&str>,
    to: &str,
    text: &str,
) -> Result<i64, ControlError> {
    let refuse = |m: String| Err(ControlError::Refused(m));
    if text.trim().is_empty() {
        return refuse("the message is empty".into());
    }
    if text.len() > MAX_MESSAGE {
        return refuse(format!(
            "the message is {} KiB; at most {} KiB (put more in a file the task can read)",
            text.len() / 1024,
            MAX_MESSAGE / 1024
        ));
    }
    if from == Some(to) {
        return refuse(format!("task {to:?} cannot send a message to itself"));
    }
    check_task(store, &run.id, to).await?;
    if let Some(f) = from {
        check_task(store, &run.id, f).await?;
    }
    if !is_live(paths, &run.id) {
        return Err(ControlError::NotLive {
            run: run.id.clone(),
            status: run.status,
            kind: ControlKind::Message,
            resumable: run.finished_at.is_none(),
        });
    }
    let (r, t) = (run.id.clone(), to.to_string());
    let target = store.call(move |s| s.task(&r, &t)).await?;
    if let Some(t) = target.filter(|t| t.status.is_finished()) {
        return refuse(format!(
            "task {to:?} has already ended ({}); nobody would read a message",
            t.status
        ));
    }
    let (r, f) = (run.id.clone(), from.map(str::to_string));
    let since = crate::clock::now_ms() - 60_000;
    let (last_minute, all) = store
        .call(move |s| s.sent_counts(&r, f.as_deref(), since))
        .await?;
    let who = from
        .map(|f| format!("task {f:?}"))
        .unwrap_or_else(|| "people".into());
    if all >= MESSAGES_PER_RUN {
        return refuse(format!(
            "{who} sent {all} messages in run {}, the most one sender may",
            run.id
        ));
    }
    if last_minute >= MESSAGES_PER_MINUTE {
        return refuse(format!(
            "{who} sent {last_minute} messages in the last minute, the most one sender may; wait a little"
        ));
    }
    let (r, f, t, x) = (
        run.id.clone(),
        from.map(str::to_string),
        to.to_string(),
        text.to_string(),
    );
    Ok(store
        .call(move |s| s.post_message(&r, f.as_deref(), &t, &x))
        .await?)
}

/// A person answers question `id` (an agent's `ask`): checked against its
/// options, written once, then handed to the process driving its run (the
/// waiting task goes on). A run nobody drives keeps the answer for `resume`.
pub async fn answer_question(
    store: &Arc<Store>,
    paths: &StatePaths,
    id: i64,
    text: &str,
) -> Result<Answer, ControlError> {
    let refuse = |m: String| Err(ControlError::Refused(m));
    let Some(q) = store.call(move |s| s.question(id)).await? else {
        return refuse(format!(
            "there is no question {id} (`baton inbox` lists the open ones)"
        ));
    };
    if !q.is_open() {
        return refuse(closed(&q));
    }
    let (r, t) = (q.run_id.clone(), q.task_id.clone());
    if let Some(t) = store.call(move |s| s.task(&r, &t)).await? {
        if t.status.is_finished() {
            return refuse(format!(
                "task {:?} has already ended ({}); nobody waits for this answer",
                t.id, t.status
            ));
        }
    }
    let fitted = crate::ask::fit_answer(&q.question, text).map_err(ControlError::Refused)?;
    match store
        .call(move |s| s.answer_question(id, &fitted, "person"))
        .await?
    {
        crate::store::Answered::Now { .. } => {}
        crate::store::Answered::Closed(q) => return refuse(closed(&q)),
        crate::store::Answered::Unknown => return refuse(format!("there is no question {id}")),
    }
    let r = q.run_id.clone();
    let run = store.call(move |s| s.run(&r)).await?;
    if !is_live(paths, &run.id) {
        return Ok(Answer::yes(format!(
            "answered; run {} is not going on now: `baton resume {}` continues task {:?} with the answer",
            run.id, run.id, q.task_id
        )));
    }
    let id = id.to_string();
    let asked = request(
        store,
        paths,
        &run,
        &q.task_id,
        ControlKind::Answer,
        Some(&id),
    );
    match asked.await {
        // The answer is written: a script that waited for it may have taken
        // it and ended its run before the engine heard of it.
        Err(ControlError::NotLive { .. }) => Ok(Answer::yes(format!(
            "answered; task {:?} took the answer",
            q.task_id
        ))),
        other => other,
    }
}

/// Why a question takes no answer now, in words.
fn closed(q: &crate::store::QuestionRecord) -> String {
    match (q.answered_by.as_deref(), &q.answer) {
        (Some("expired"), _) => format!("question {} got no answer in time; its task failed", q.id),
        (Some("closed"), _) => format!("question {} was closed: its task ended", q.id),
        (_, Some(a)) => format!("question {} was answered already: {a}", q.id),
        _ => format!("question {} is closed", q.id),
    }
}

/// Checks that `run` has `task`.
pub async fn check_task(store: &Arc<Store>, run: &str, task: &str) -> Result<(), ControlError> {
    let (r, t) = (run.to_string(), task.to_string());
    let known = store
        .call(move |s| -> Result<Option<Vec<String>>, StoreError> {
            if s.task(&r, &t)?.is_some() {
                return Ok(None);
            }
            Ok(Some(s.tasks(&r)?.into_iter().map(|t| t.id).collect()))
        })
        .await?;
    match known {
        None => Ok(()),
        Some(ids) => Err(ControlError::NoTask {
            run: run.to_string(),
            task: task.to_string(),
            known: ids.join(", "),
        }),
    }
}

/// Whether a process drives `run` now.
pub fn is_live(paths: &StatePaths, run: &str) -> bool {
    matches!(lock::probe(&paths.lock(run)), LockState::Held(_))
}

/// Sends a request to the process driving `run` and waits for its answer.
pub async fn request(
    store: &Arc<Store>,
    paths: &StatePaths,
    run: &RunRecord,
    task: &str,
    kind: ControlKind,
    message: Option<&str>,
) -> Result<Answer, ControlError> {
    // An added task is new: only the others must exist.
    if kind != ControlKind::Add {
        check_task(store, &run.id, task).await?;
    }
    if !is_live(paths, &run.id) {
        return Err(ControlError::NotLive {
            run: run.id.clone(),
            status: run.status,
            kind,
            resumable: run.finished_at.is_none(),
        });
    }
    let (r, t, m) = (
        run.id.clone(),
        task.to_string(),
        message.map(str::to_string),
    );
    let id = store
        .call(move |s| s.send_control(&r, &t, kind, m.as_deref()))
        .await?;
    match wait_answer(store, paths, &run.id, id, ANSWER_TIMEOUT).await? {
        Waited::Answered(a) => Ok(a),
        Waited::TimedOut => Err(ControlError::Timeout {
            run: run.id.clone(),
        }),
        // It ended between the look above and the request: said at once.
        Waited::Ended => {
            let r = run.id.clone();
            let now = store.call(move |s| s.run(&r)).await?;
            Err(ControlError::NotLive {
                run: run.id.clone(),
                status: now.status,
                kind,
                resumable: now.finished_at.is_none(),
            })
        }
    }
}

/// How waiting for an answer ended.
enum Waited {
    Answered(Answer),
    TimedOut,
    /// No process drives the run any more, and none answered.
    Ended,
}

/// Waits for the process driving `run` to answer control request `id`.
async fn wait_answer(
    store: &Arc<Store>,
    paths: &StatePaths,
    run: &str,
    id: i64,
    timeout: Duration,
) -> Result<Waited, StoreError> {
    let deadline = Instant::now() + timeout;
    loop {
        // Looked at before the answer: an answer written just before the
        // engine let go of the run is still read below.
        let live = is_live(paths, run);
        if let Some(c) = store.call(move |s| s.control(id)).await? {
            if c.handled_at.is_some() {
                return Ok(Waited::Answered(Answer {
                    ok: c.ok == Some(true),
                    message: c.response.unwrap_or_default(),
                }));
            }
        }
        if !live {
            return Ok(Waited::Ended);
        }
        if Instant::now() > deadline {
            return Ok(Waited::TimedOut);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
