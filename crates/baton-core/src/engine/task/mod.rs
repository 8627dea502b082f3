//! One task from worktree to checked result: its desk, then attempt after
//! attempt until one passes, the retries run out, or a request ends it.
//! Merging is the engine's, not the worker's.

pub(crate) mod agent;
pub(crate) mod ask_door;
pub(crate) mod attempt;
pub(crate) mod executor;
pub(crate) mod gate;
pub(crate) mod history;
pub(crate) mod hold;
pub(crate) mod keep;
pub(crate) mod launch;
pub(crate) mod lead;
pub(crate) mod meter;
pub(crate) mod prompt;
pub(crate) mod services;
pub(crate) mod start;
pub(crate) mod watch;

use crate::clock::now_ms;
use crate::engine::desk::make::{make, Unmade};
use crate::engine::desk::DeskPlan;
use crate::engine::messages::{Outcome, WorkerCmd, WorkerNote};
use crate::engine::shared::Shared;
use crate::model::{Activity, AttemptKind, AttemptStatus};
use crate::payload::Payload;
use crate::plan::TaskSpec;
use crate::store::{AttemptRecord, TaskUpdate};
use crate::template::TaskView;
use attempt::{Failed, Step};
pub(crate) use start::Start;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedReceiver;

impl Start {
    /// Gathers what the task needs to start: its record so far (a resumed or
    /// steered task continues where it was) and what its upstream tasks did.
    pub async fn prepare(
        sh: &Shared,
        spec: TaskSpec,
        head: &str,
        worktrees: &Path,
        feedback: Option<String>,
    ) -> Start {
        let id = spec.id.clone();
        let rec = sh.db(move |s, run| s.task(run, &id)).await.ok().flatten();
        let existing_wt = rec.as_ref().and_then(|r| r.worktree.clone());
        let desk = DeskPlan {
            branch: crate::paths::task_branch(&sh.run_id, &spec.id),
            worktree: existing_wt
                .clone()
                .map(PathBuf::from)
                .unwrap_or_else(|| crate::paths::task_worktree(worktrees, &sh.run_id, &spec.id)),
            start_commit: rec
                .as_ref()
                .and_then(|r| r.start_commit.clone())
                .unwrap_or_else(|| head.to_string()),
            existing: existing_wt.is_some(),
            ..DeskPlan::default()
        };
        Start {
            upstream: upstream_views(sh, &spec).await,
            desk,
            session: rec.as_ref().and_then(|r| r.session_id.clone()),
            attempts: rec.as_ref().map(|r| r.attempts).unwrap_or(0),
            retry_from: rec.as_ref().map(|r| r.retry_from).unwrap_or(0),
            feedback: feedback.or_else(|| rec.as_ref().and_then(|r| r.feedback.clone())),
            needs_setup: !sh.plan.workspace.setup.is_empty()
                && !rec.as_ref().is_some_and(|r| r.setup_done),
            desk_env: Vec::new(),
            setup_key: None,
            spec,
            kind: AttemptKind::Work,
        }
    }
}

/// What the tasks this one needs did, for its prompt template.
async fn upstream_views(sh: &Shared, spec: &TaskSpec) -> BTreeMap<String, TaskView> {
    let wants_files = spec.prompt.contains("files");
    let mut out = BTreeMap::new();
    for n in &spec.needs {
        let id = n.clone();
        let Ok(Some(r)) = sh.db(move |s, run| s.task(run, &id)).await else {
            continue;
        };
        let mut files = r.files.clone().unwrap_or_default();
        if wants_files && r.files.is_none() {
            if let (Some(from), Some(to)) = (&r.start_commit, &r.commit_id) {
                files = sh.repo.changed_files(from, to).await.unwrap_or_default();
                let upd = TaskUpdate {
                    files: Some(files.clone()),
                    ..Default::default()
                };
                sh.update_task(n, upd, None).await;
            }
        }
        let view = TaskView {
            result: r.result.clone().unwrap_or_default(),
            status: r.status.to_string(),
            branch: r.branch.clone(),
            commit: r.commit_id.clone().unwrap_or_default(),
            files,
        };
        out.insert(n.clone(), view);
    }
    out
}

/// Runs the task in a task of its own; its end (a panic too) reaches the
/// engine as a note.
pub(crate) fn spawn(sh: Arc<Shared>, start: Start, cmds: UnboundedReceiver<WorkerCmd>) {
    let task = start.spec.id.clone();
    tokio::spawn(async move {
        let notes = sh.notes.clone();
        let (outcome, start) = match tokio::spawn(run(sh, start, cmds)).await {
            Ok((o, start)) => (o, Some(start)),
            Err(e) => (failed(format!("internal error in baton: {e}")), None),
        };
        let _ = notes.send(WorkerNote::Finished {
            task,
            outcome,
            start,
        });
    });
}

/// How the task's go ended, and the commit its work started from.
pub(crate) async fn run(
    sh: Arc<Shared>,
    mut st: Start,
    mut cmds: UnboundedReceiver<WorkerCmd>,
) -> (Outcome, String) {
    let task = st.spec.id.clone();
    let outcome = attempts(&sh, &mut st, &mut cmds).await;
    sh.write("release ports", move |s, run| {
        s.release_ports(run, &task)?;
        s.set_activity(run, &task, None, None)
    })
    .await;
    (outcome, st.desk.start_commit)
}

fn failed(reason: String) -> Outcome {
    Outcome::Failed {
        commit: None,
        reason,
        result: String::new(),
    }
}

/// The task's desk, then its attempts one after another.
async fn attempts(sh: &Shared, st: &mut Start, cmds: &mut UnboundedReceiver<WorkerCmd>) -> Outcome {
    let task = st.spec.id.clone();
    let t = task.clone();
    sh.write("set activity", move |s, run| {
        s.set_activity(run, &t, Some(Activity::Preparing), Some(now_ms()))
    })
    .await;
    // Counted in by the engine as it started this worker.
    let starting = Starting(&sh.starting_tasks);
    match make(sh, &task, &mut st.desk, st.needs_setup).await {
        Ok(made) => {
            st.needs_setup = made.needs_setup;
            st.setup_key = made.setup_key;
            st.desk_env = made.env;
        }
        Err(Unmade::Broken(reason)) => return Outcome::Broken { reason },
        Err(Unmade::Failed(reason)) => return failed(reason),
    }
    let Some(profile) = sh.plan.agents.get(&st.spec.agent).cloned() else {
        return failed(format!("unknown agent profile {:?}", st.spec.agent));
    };
    let mut agent = match hold::Agent::new(profile) {
        Ok(a) => a,
        Err(reason) => return failed(reason),
    };
    drop(starting);
    let mut failures: Option<u32> = None;
    loop {
        st.attempts += 1;
        let n = st.attempts;
        begin_attempt(sh, st, n).await;
        crate::failpoint::hit("attempt-started");
        let step = attempt::run(sh, st, &*agent.adapter, &agent.profile, n, cmds).await;
        if !matches!(step, Step::Limited(_)) {
            agent.limited_in_a_row = 0;
        }
        let failed = match step {
            Step::End(o) => return o,
            Step::Steered(message) => {
                st.feedback = Some(message);
                continue;
            }
            Step::Asked { question, commit } => return Outcome::Waiting { commit, question },
            // The session has had any feedback; the answer comes as a message.
            Step::Answered => {
                st.feedback = None;
                continue;
            }
            Step::Limited(limited) => {
                match hold::after_limit(sh, st, &mut agent, limited, cmds).await {
                    Ok(()) => continue,
                    Err(end) => return end,
                }
            }
            Step::Failed(failed) => failed,
        };
        // Failures count across resumes; steered and interrupted attempts do not.
        let counted = match failures {
            Some(f) => f + 1,
            None => count_failures(sh, &task, st.retry_from).await.max(1),
        };
        let failures = *failures.insert(counted);
        if let Some(end) = failed_attempt(sh, st, n, failures, failed).await {
            return end;
        }
    }
}

/// Records failed attempt `n` (the task's `failures`th): the task ends
/// when its retries are spent, else the next attempt gets the feedback.
async fn failed_attempt(
    sh: &Shared,
    st: &mut Start,
    n: u32,
    failures: u32,
    f: Failed,
) -> Option<Outcome> {
    let retry = failures <= st.spec.retries;
    let upd = TaskUpdate {
        failures: Some(failures),
        feedback: Some(Some(f.feedback.clone())),
        ..Default::default()
    };
    let data = Payload::AttemptFailed {
        attempt: n,
        reason: f.reason.clone(),
        retry,
    };
    sh.update_task(&st.spec.id, upd, Some(data)).await;
    if retry {
        st.feedback = Some(f.feedback);
        return None;
    }
    let reason = match st.spec.retries {
        0 => f.reason,
        _ => format!("{} (after {failures} attempts)", f.reason),
    };
    Some(Outcome::Failed {
        commit: f.commit,
        reason,
        result: f.result,
    })
}

/// A task counted among those starting (making their desks) until dropped.
struct Starting<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Records that attempt `n` starts.
async fn begin_attempt(sh: &Shared, st: &Start, n: u32) {
    let task = &st.spec.id;
    let log = sh.paths.attempt_log(&sh.run_id, task, n);
    let attempt = AttemptRecord {
        run_id: sh.run_id.clone(),
        task_id: task.clone(),
        n,
        kind: st.kind,
        status: AttemptStatus::Running,
        pgid: None,
        exit_code: None,
        reason: None,
        log_path: log.display().to_string(),
        started_at: now_ms(),
        finished_at: None,
        session_id: None,
        input_tokens: None,
        output_tokens: None,
        cost_usd: None,
        model: None,
        commit_ref: None,
        wire: Default::default(),
    };
    sh.write("start attempt", move |s, _| s.start_attempt(&attempt))
        .await;
    let upd = TaskUpdate {
        status: Some(crate::model::TaskStatus::Running),
        attempts: Some(n),
        ..Default::default()
    };
    let feedback = st.feedback.as_deref().is_some_and(|f| !f.is_empty());
    let data = Payload::AttemptStarted {
        attempt: n,
        kind: st.kind,
        feedback,
        resumes_session: st.session.is_some(),
    };
    sh.update_task(task, upd, Some(data)).await;
}

/// Failed attempts of the task so far (across resumes), read back from the
/// store once, so that steered and interrupted attempts do not count.
async fn count_failures(sh: &Shared, task: &str, from: u32) -> u32 {
    let task = task.to_string();
    sh.db(move |s, run| s.attempts(run, &task))
        .await
        .map(|a| {
            a.iter()
                .filter(|a| a.n > from && a.status.is_failure())
                .count() as u32
        })
        .unwrap_or(0)
}
