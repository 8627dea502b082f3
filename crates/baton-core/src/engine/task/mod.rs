//! One task from worktree to checked result: its desk, then attempt after
//! attempt until one passes, the retries run out, or a request ends it.
//! Merging is the engine's, not the worker's.

pub(crate) mod attempt;
pub(crate) mod history;
pub(crate) mod hold;
pub(crate) mod lead;
pub(crate) mod meter;
pub(crate) mod prompt;
pub(crate) mod remote;
pub(crate) mod start;
pub(crate) mod watch;

use crate::clock::now_ms;
use crate::engine::desk::pool;
use crate::engine::desk::workspace;
use crate::engine::messages::{Outcome, WorkerCmd, WorkerNote};
use crate::engine::shared::Shared;
use crate::git::Reuse;
use crate::model::{Activity, AttemptKind, AttemptStatus, EventKind};
use crate::plan::TaskSpec;
use crate::store::{AttemptRecord, TaskUpdate};
use crate::template::TaskView;
use attempt::Step;
use serde_json::json;
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
        Start {
            upstream: upstream_views(sh, &spec).await,
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
            spare: None,
            session: rec.as_ref().and_then(|r| r.session_id.clone()),
            attempts: rec.as_ref().map(|r| r.attempts).unwrap_or(0),
            retry_from: rec.as_ref().map(|r| r.retry_from).unwrap_or(0),
            feedback: feedback.or_else(|| rec.as_ref().and_then(|r| r.feedback.clone())),
            needs_setup: !sh.plan.workspace.setup.is_empty()
                && !rec.as_ref().is_some_and(|r| r.setup_done),
            desk_env: Vec::new(),
            keep_ignored: false,
            pooled: false,
            in_place: false,
            spare_of: None,
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
async fn run(
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
    (outcome, st.start_commit)
}

fn failed(reason: String) -> Outcome {
    Outcome::Failed {
        commit: None,
        reason,
        result: String::new(),
    }
}

/// What the task's desk was made from.
#[derive(PartialEq)]
enum Desk {
    /// A new branch at the task's start commit.
    New,
    /// A branch that already existed: it may have moved past the start.
    Existing,
    /// A new branch at the start commit, in a worktree that kept its
    /// ignored files (caches) from an earlier task or the pool.
    Warm,
}

async fn ensure_worktree(sh: &Shared, st: &Start) -> Result<Desk, String> {
    if st.in_place {
        return reuse_in_place(sh, st).await;
    }
    if st.worktree.join(".git").exists() {
        match sh.repo.current_branch(&st.worktree).await {
            // Ours, made before a crash that came before the store knew of it.
            Some(b) if b == st.branch => return Ok(Desk::Existing),
            // Another task's desk, moved here (or taken where it is) before
            // a crash: finish making it ours.
            _ if !branch_exists(sh, &st.branch).await => {
                let (reuse, desk) = match st.keep_ignored {
                    true => (Reuse::KeepIgnored, Desk::Warm),
                    false => (Reuse::Scrub, Desk::New),
                };
                return sh
                    .repo
                    .switch_worktree(&st.worktree, &st.branch, &st.start_commit, reuse)
                    .await
                    .map(|()| desk)
                    .map_err(|e| format!("cannot make the task's worktree: {e}"));
            }
            _ if st.existing => return Ok(Desk::Existing),
            _ => {}
        }
    }
    if st.existing {
        return match sh.repo.restore_worktree(&st.worktree, &st.branch).await {
            Ok(()) => Ok(Desk::Existing),
            // The desk was recorded before it was made, and never made.
            Err(_) if !branch_exists(sh, &st.branch).await => add_new(sh, st)
                .await
                .map_err(|e| format!("cannot create the task's worktree: {e}")),
            Err(e) => Err(format!("cannot create the task's worktree: {e}")),
        };
    }
    // Without the pool a done task's desk moves here, nothing of it kept.
    let res = if let Some(spare) = st.spare.as_deref().filter(|s| s.exists()) {
        if let Some(before) = &st.spare_of {
            // The desk was another task's: its teardown goes first.
            workspace::teardown(sh, before, spare).await;
        }
        let reused = sh
            .repo
            .reuse_worktree(spare, &st.worktree, &st.branch, &st.start_commit)
            .await;
        match reused {
            Ok(()) => Ok(Desk::New),
            Err(e) => {
                tracing::debug!(
                    "cannot reuse {} ({e}); making a new worktree",
                    spare.display()
                );
                for left in [spare, st.worktree.as_path()] {
                    if left.exists() {
                        let _ = sh.repo.remove_worktree(left).await;
                    }
                }
                add_new(sh, st).await
            }
        }
    } else {
        add_new(sh, st).await
    };
    // A crash between creating the branch and recording it leaves the branch:
    // attach to it rather than fail on "already exists" forever. Asked only
    // on a failure, so a new desk costs one git process.
    let res = match res {
        Ok(desk) => Ok(desk),
        Err(_) if branch_exists(sh, &st.branch).await => sh
            .repo
            .restore_worktree(&st.worktree, &st.branch)
            .await
            .map(|()| Desk::Existing),
        Err(e) => Err(e),
    };
    res.map_err(|e| format!("cannot create the task's worktree: {e}"))
}

/// A desk that exists (a done task's, or the pool's) becomes this task's
/// where it is (its place is recorded already: see [`attempts`]).
async fn reuse_in_place(sh: &Shared, st: &Start) -> Result<Desk, String> {
    let reuse = if st.pooled {
        pool::claim(&st.worktree);
        Reuse::Clean
    } else {
        if let Some(before) = &st.spare_of {
            workspace::teardown(sh, before, &st.worktree).await;
        }
        Reuse::KeepIgnored
    };
    crate::failpoint::hit("desk-moved");
    sh.repo
        .switch_worktree(&st.worktree, &st.branch, &st.start_commit, reuse)
        .await
        .map(|()| Desk::Warm)
        .map_err(|e| {
            format!(
                "cannot make {} the task's worktree: {e}",
                st.worktree.display()
            )
        })
}

async fn add_new(sh: &Shared, st: &Start) -> Result<Desk, crate::git::GitError> {
    let sparse = &sh.plan.workspace.sparse;
    sh.repo
        .add_worktree(&st.worktree, &st.branch, &st.start_commit, sparse)
        .await?;
    pool::note_sparse(&sh.repo, &st.worktree, sparse);
    Ok(Desk::New)
}

async fn branch_exists(sh: &Shared, branch: &str) -> bool {
    let name = format!("refs/heads/{branch}");
    matches!(sh.repo.ref_commit(&name).await, Ok(Some(_)))
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
    if st.keep_ignored && !st.existing {
        // A desk in the pool's place: recorded before it is made or taken,
        // so that a crash from here on finds the task there.
        let upd = TaskUpdate {
            worktree: Some(st.worktree.display().to_string()),
            start_commit: Some(st.start_commit.clone()),
            ..Default::default()
        };
        sh.update_task(&task, upd, None).await;
    }
    let desk = match ensure_worktree(sh, st).await {
        Ok(desk) => desk,
        Err(reason) => return Outcome::Broken { reason },
    };
    crate::failpoint::hit("desk-made");
    if desk != Desk::Existing {
        let notes = workspace::copy_files(sh, &st.worktree).await;
        if !notes.is_empty() {
            let t = task.clone();
            sh.write("add task warnings", move |s, run| {
                s.add_task_warnings(run, &t, &notes)
            })
            .await;
        }
        st.needs_setup = !sh.plan.workspace.setup.is_empty();
        if desk == Desk::Warm {
            let sparse = &sh.plan.workspace.sparse;
            if let Err(e) = pool::match_sparse(&sh.repo, &st.worktree, sparse).await {
                return failed(format!("cannot set the worktree's sparse directories: {e}"));
            }
        }
        if desk == Desk::Warm && st.needs_setup {
            let key = pool::setup_key(sh, &st.start_commit).await;
            st.needs_setup =
                pool::read_key(&sh.repo, &st.worktree).as_deref() != Some(key.as_str());
            st.setup_key = Some(key);
        }
    }
    let ports = match sh.plan.workspace.ports {
        0 => Vec::new(),
        n => match workspace::take_ports(sh, &task, n).await {
            Ok(p) => p,
            Err(reason) => return failed(reason),
        },
    };
    st.desk_env = workspace::env(&sh.run_id, &task, &ports);
    if !st.existing && desk == Desk::Existing {
        // The branch is older than this start (made before a crash): the
        // task starts where its branch does.
        if let Ok(tip) = sh.repo.head(&st.worktree).await {
            st.start_commit = tip;
        }
    }
    let upd = TaskUpdate {
        worktree: Some(st.worktree.display().to_string()),
        start_commit: (!st.existing).then(|| st.start_commit.clone()),
        started_at: (!st.existing).then(now_ms),
        setup_done: st.needs_setup.then_some(false),
        ..Default::default()
    };
    sh.update_task(&task, upd, None).await;

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
        let (reason, feedback, commit, result) = match step {
            Step::End(o) => return o,
            Step::Steered(message) => {
                st.feedback = Some(message);
                continue;
            }
            Step::Limited(limited) => {
                match hold::after_limit(sh, st, &mut agent, limited, cmds).await {
                    Ok(()) => continue,
                    Err(end) => return end,
                }
            }
            Step::Failed {
                reason,
                feedback,
                commit,
                result,
            } => (reason, feedback, commit, result),
        };
        // Failures count across resumes; steered and interrupted attempts do not.
        let counted = match failures {
            Some(f) => f + 1,
            None => count_failures(sh, &task, st.retry_from).await.max(1),
        };
        let failures = *failures.insert(counted);
        let retry = failures <= st.spec.retries;
        let upd = TaskUpdate {
            failures: Some(failures),
            feedback: Some(Some(feedback.clone())),
            ..Default::default()
        };
        let data = json!({ "attempt": n, "reason": reason, "retry": retry });
        sh.update_task(&task, upd, Some((EventKind::AttemptFailed, data)))
            .await;
        if !retry {
            let reason = if st.spec.retries > 0 {
                format!("{reason} (after {failures} attempts)")
            } else {
                reason
            };
            return Outcome::Failed {
                commit,
                reason,
                result,
            };
        }
        st.feedback = Some(feedback);
    }
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
    };
    sh.write("start attempt", move |s, _| s.start_attempt(&attempt))
        .await;
    let upd = TaskUpdate {
        status: Some(crate::model::TaskStatus::Running),
        attempts: Some(n),
        ..Default::default()
    };
    let feedback = st.feedback.as_deref().is_some_and(|f| !f.is_empty());
    let data = json!({
        "attempt": n,
        "kind": st.kind,
        "feedback": feedback,
        "resumes_session": st.session.is_some(),
    });
    sh.update_task(task, upd, Some((EventKind::AttemptStarted, data)))
        .await;
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
