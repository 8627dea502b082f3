//! The run engine: schedules ready tasks up to `max_parallel`, hands each to
//! a worker, merges finished work through a one-at-a-time merge queue, and
//! answers control requests (stop, steer, approve) from other processes.

mod control;
mod gates;
mod meter;
mod output;
mod prompt;
mod setup;
mod supervise;
mod worker;

pub use control::wait_answer;
pub use setup::RunOptions;

use crate::clock::now_ms;
use crate::git::{GitError, MergeOutcome, Repo};
use crate::lock::RunLock;
use crate::paths::StatePaths;
use crate::plan::{OnFailure, Plan, PlanError, TaskSpec};
use crate::process::Watchdog;
use crate::report::Report;
use crate::store::{Store, StoreError, TaskUpdate};
use crate::template::TaskView;
use serde_json::json;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::{self, UnboundedSender};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("run {run} is still going on in process {}; stop it first or wait", pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into()))]
    Busy { run: String, pid: Option<u32> },
    #[error("run {run} has already finished ({status}); there is nothing to resume")]
    Finished { run: String, status: String },
    #[error("{0}")]
    Io(String),
}

/// A request to a task's worker.
#[derive(Debug, Clone)]
pub enum WorkerCmd {
    Stop,
    Steer(String),
    Shutdown,
    /// A budget was crossed: stop the agent, keep its work, fail the task.
    OverBudget(String),
}

/// What every worker shares.
pub(crate) struct Shared {
    pub repo: Repo,
    pub store: Arc<Store>,
    pub paths: StatePaths,
    pub run_id: String,
    pub plan: Arc<Plan>,
    pub watchdog: Option<Watchdog>,
    pub prices: Arc<crate::adapter::Prices>,
    pub redactor: Arc<crate::secrets::Redactor>,
}

/// Secrets are the values of secret-named variables the agents can see:
/// baton's own environment (which they inherit) and the profiles' env.
pub(crate) fn redactor_for(plan: &Plan) -> crate::secrets::Redactor {
    let own: Vec<(String, String)> = std::env::vars().collect();
    crate::secrets::Redactor::from_vars(
        own.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain(
            plan.agents
                .values()
                .flat_map(|a| a.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        ),
    )
}

impl Shared {
    fn new(
        repo: Repo,
        store: Arc<Store>,
        paths: StatePaths,
        run_id: String,
        plan: Plan,
        watchdog: Option<Watchdog>,
    ) -> Shared {
        let redactor = Arc::new(redactor_for(&plan));
        store.set_redactor(redactor.clone());
        let prices = Arc::new(crate::adapter::Prices::new(&plan.prices));
        Shared {
            repo,
            store,
            paths,
            run_id,
            plan: Arc::new(plan),
            watchdog,
            prices,
            redactor,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Pending,
    Running,
    AwaitingApproval,
    Queued,
    Succeeded,
    Failed,
    Stopped,
    Conflicted,
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::AwaitingApproval => "awaiting_approval",
            Status::Queued => "merging",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Stopped => "stopped",
            Status::Conflicted => "conflicted",
            Status::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Status {
        match s {
            "running" => Status::Running,
            "awaiting_approval" => Status::AwaitingApproval,
            "merging" => Status::Queued,
            "succeeded" => Status::Succeeded,
            "failed" => Status::Failed,
            "stopped" => Status::Stopped,
            "conflicted" => Status::Conflicted,
            "skipped" => Status::Skipped,
            _ => Status::Pending,
        }
    }

    fn is_bad_end(self) -> bool {
        matches!(
            self,
            Status::Failed | Status::Stopped | Status::Conflicted | Status::Skipped
        )
    }
}

struct Rt {
    spec: TaskSpec,
    status: Status,
    tx: Option<UnboundedSender<WorkerCmd>>,
}

pub struct Engine {
    sh: Arc<Shared>,
    _lock: RunLock,
    opts: RunOptions,
    integration_ref: String,
    head: String,
    worktrees: PathBuf,
    tasks: Vec<Rt>,
    merge_queue: VecDeque<String>,
    /// Why nothing new starts, once a task with on_failure = "stop" failed.
    stop_new: Option<String>,
    shutting_down: bool,
    removed_worktree: bool,
    over_budget: bool,
    /// Tasks retried by request (and what waits on them): on_failure = "stop" does not hold them back.
    forced: std::collections::HashSet<String>,
}

impl Engine {
    pub fn run_id(&self) -> &str {
        &self.sh.run_id
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.sh.store
    }

    fn idx(&self, id: &str) -> Option<usize> {
        self.tasks.iter().position(|t| t.spec.id == id)
    }

    fn running(&self) -> usize {
        self.tasks
            .iter()
            .filter(|t| t.status == Status::Running)
            .count()
    }

    fn set_status(
        &mut self,
        i: usize,
        status: Status,
        mut upd: TaskUpdate,
        event: &str,
        data: serde_json::Value,
    ) {
        self.tasks[i].status = status;
        upd.status = Some(status.as_str().into());
        if matches!(
            status,
            Status::Succeeded
                | Status::Failed
                | Status::Stopped
                | Status::Conflicted
                | Status::Skipped
        ) {
            upd.finished_at = Some(now_ms());
            self.tasks[i].tx = None;
        }
        let id = self.tasks[i].spec.id.clone();
        if let Err(e) = self
            .sh
            .store
            .update_task(&self.sh.run_id, &id, &upd, Some((event, &data)))
        {
            tracing::error!("cannot record task {id}: {e}");
        }
    }

    /// Drives the run until every task has ended or `shutdown` resolves
    /// (then running agents are stopped, their work committed, and the run
    /// left to `resume`).
    pub async fn drive(
        mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Report, EngineError> {
        let (fin_tx, mut fin_rx) = mpsc::unbounded_channel::<worker::Finished>();
        let mut tick = tokio::time::interval(Duration::from_millis(150));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        // Requests sent before this process took the run (a retry that reopened it).
        self.poll_controls(&fin_tx).await;
        loop {
            self.process_merges().await;
            if !self.shutting_down {
                self.schedule(&fin_tx).await;
            }
            let awaiting = self
                .tasks
                .iter()
                .any(|t| t.status == Status::AwaitingApproval);
            let idle = self.running() == 0
                && self.merge_queue.is_empty()
                && (!awaiting || self.shutting_down);
            // A service run waits for queued tasks until it is shut down.
            if idle && (!self.opts.service || self.shutting_down) {
                break;
            }
            tokio::select! {
                Some(f) = fin_rx.recv() => self.on_finished(f),
                _ = tick.tick() => {
                    self.poll_controls(&fin_tx).await;
                    self.check_run_budget();
                }
                _ = &mut shutdown, if !self.shutting_down => {
                    self.shutting_down = true;
                    let _ = self.sh.store.event(&self.sh.run_id, None, None, "interrupt", &json!({}));
                    for t in &self.tasks {
                        if let Some(tx) = &t.tx {
                            let _ = tx.send(WorkerCmd::Shutdown);
                        }
                    }
                }
            }
        }
        self.finish().await
    }

    async fn finish(mut self) -> Result<Report, EngineError> {
        // Tasks that can never start now (a blocked chain) are skipped, not left hanging.
        if !self.shutting_down {
            for i in 0..self.tasks.len() {
                if self.tasks[i].status == Status::Pending {
                    let reason = self.stop_new.clone().unwrap_or_else(|| {
                        "not started: its upstream tasks did not all succeed".into()
                    });
                    self.set_status(
                        i,
                        Status::Skipped,
                        TaskUpdate {
                            reason: Some(Some(reason.clone())),
                            ..Default::default()
                        },
                        "skipped",
                        json!({ "reason": reason }),
                    );
                }
            }
        }
        if self.removed_worktree {
            let _ = crate::git::git(&self.sh.repo.root, ["worktree", "prune"]).await;
        }
        let status = if self.shutting_down {
            "interrupted"
        } else if self.tasks.iter().all(|t| t.status == Status::Succeeded) {
            "succeeded"
        } else {
            "failed"
        };
        self.sh
            .store
            .set_run_status(&self.sh.run_id, status, !self.shutting_down, None)?;
        self.sh.store.event(
            &self.sh.run_id,
            None,
            None,
            "run_finished",
            &json!({ "status": status }),
        )?;
        if let Some(w) = &self.sh.watchdog {
            w.finish();
        }
        Ok(Report::load(&self.sh.store, &self.sh.run_id)?)
    }

    async fn schedule(&mut self, fin_tx: &UnboundedSender<worker::Finished>) {
        // Skips propagate down chains whatever the file order, so repeat until settled.
        loop {
            let mut changed = false;
            for i in 0..self.tasks.len() {
                if self.tasks[i].status != Status::Pending {
                    continue;
                }
                let blocked = self.tasks[i].spec.needs.iter().find_map(|n| {
                    let j = self.idx(n)?;
                    let s = self.tasks[j].status;
                    s.is_bad_end()
                        .then(|| format!("needs {n:?}, which {}", past(s)))
                });
                // A task a person asked to retry runs even after a failure stopped new work.
                let forced = self.forced.contains(&self.tasks[i].spec.id);
                let reason = blocked.or_else(|| if forced { None } else { self.stop_new.clone() });
                if let Some(reason) = reason {
                    self.set_status(
                        i,
                        Status::Skipped,
                        TaskUpdate {
                            reason: Some(Some(reason.clone())),
                            ..Default::default()
                        },
                        "skipped",
                        json!({ "reason": reason }),
                    );
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        for i in 0..self.tasks.len() {
            if self.running() >= self.sh.plan.run.max_parallel {
                break;
            }
            if self.tasks[i].status != Status::Pending {
                continue;
            }
            let ready = self.tasks[i].spec.needs.iter().all(|n| {
                self.idx(n)
                    .map(|j| self.tasks[j].status == Status::Succeeded)
                    .unwrap_or(false)
            });
            if ready {
                self.start_task(i, None, fin_tx).await;
            }
        }
    }

    async fn upstream_views(&self, spec: &TaskSpec) -> BTreeMap<String, TaskView> {
        let wants_files = spec.prompt.contains("files");
        let mut out = BTreeMap::new();
        for n in &spec.needs {
            let Ok(Some(r)) = self.sh.store.task(&self.sh.run_id, n) else {
                continue;
            };
            let mut files = r.files.clone().unwrap_or_default();
            if wants_files && r.files.is_none() {
                if let (Some(from), Some(to)) = (&r.start_commit, &r.commit_id) {
                    files = self
                        .sh
                        .repo
                        .changed_files(from, to)
                        .await
                        .unwrap_or_default();
                    let _ = self.sh.store.update_task(
                        &self.sh.run_id,
                        n,
                        &TaskUpdate {
                            files: Some(files.clone()),
                            ..Default::default()
                        },
                        None,
                    );
                }
            }
            out.insert(
                n.clone(),
                TaskView {
                    result: r.result.clone().unwrap_or_default(),
                    status: r.status.clone(),
                    branch: r.branch.clone(),
                    commit: r.commit_id.clone().unwrap_or_default(),
                    files,
                },
            );
        }
        out
    }

    /// Starts (or restarts, with `steer`) the worker of task `i`.
    async fn start_task(
        &mut self,
        i: usize,
        steer: Option<String>,
        fin_tx: &UnboundedSender<worker::Finished>,
    ) {
        let spec = self.tasks[i].spec.clone();
        let rec = self.sh.store.task(&self.sh.run_id, &spec.id).ok().flatten();
        let (attempts, stored_feedback, existing_wt) = rec
            .as_ref()
            .map(|r| (r.attempts, r.feedback.clone(), r.worktree.clone()))
            .unwrap_or((0, None, None));
        let worktree = existing_wt.clone().map(PathBuf::from).unwrap_or_else(|| {
            crate::paths::task_worktree(&self.worktrees, &self.sh.run_id, &spec.id)
        });
        let start = worker::Start {
            upstream: self.upstream_views(&spec).await,
            branch: crate::paths::task_branch(&self.sh.run_id, &spec.id),
            worktree,
            start_commit: rec
                .as_ref()
                .and_then(|r| r.start_commit.clone())
                .unwrap_or_else(|| self.head.clone()),
            existing: existing_wt.is_some(),
            session: rec.as_ref().and_then(|r| r.session_id.clone()),
            attempts,
            feedback: steer.or(stored_feedback),
            spec: spec.clone(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        self.tasks[i].tx = Some(tx);
        self.set_status(
            i,
            Status::Running,
            TaskUpdate::default(),
            "task_started",
            json!({ "attempts_before": attempts }),
        );
        let sh = self.sh.clone();
        let fin = fin_tx.clone();
        let id = spec.id.clone();
        tokio::spawn(async move {
            let handle = tokio::spawn(worker::run(sh, start, rx));
            let finished = match handle.await {
                Ok(f) => f,
                Err(e) => worker::Finished {
                    task: id,
                    outcome: worker::Outcome::Failed {
                        commit: None,
                        reason: format!("internal error in baton: {e}"),
                        result: String::new(),
                    },
                },
            };
            let _ = fin.send(finished);
        });
    }

    fn on_finished(&mut self, f: worker::Finished) {
        let Some(i) = self.idx(&f.task) else { return };
        match f.outcome {
            worker::Outcome::Done { commit, result } => {
                let upd = TaskUpdate {
                    commit_id: Some(commit.clone()),
                    result: Some(result),
                    reason: Some(None),
                    ..Default::default()
                };
                let spec = &self.tasks[i].spec;
                if spec.approve && !self.opts.auto_approve {
                    self.set_status(
                        i,
                        Status::AwaitingApproval,
                        upd,
                        "approval_needed",
                        json!({ "commit": commit }),
                    );
                } else if spec.merge {
                    self.set_status(
                        i,
                        Status::Queued,
                        upd,
                        "merge_queued",
                        json!({ "commit": commit }),
                    );
                    self.merge_queue.push_back(f.task);
                } else {
                    self.set_status(
                        i,
                        Status::Succeeded,
                        upd,
                        "succeeded",
                        json!({ "commit": commit, "merged": false }),
                    );
                    self.drop_worktree(i);
                }
            }
            worker::Outcome::Failed {
                commit,
                reason,
                result,
            } => {
                let upd = TaskUpdate {
                    commit_id: commit,
                    result: Some(result),
                    ..Default::default()
                };
                self.end_badly(i, Status::Failed, reason, upd);
            }
            worker::Outcome::Stopped { commit, reason } => {
                let upd = TaskUpdate {
                    commit_id: commit,
                    ..Default::default()
                };
                self.end_badly(i, Status::Stopped, reason, upd);
            }
            worker::Outcome::Interrupted { commit } => {
                let upd = TaskUpdate {
                    commit_id: commit,
                    ..Default::default()
                };
                self.set_status(i, Status::Pending, upd, "interrupted", json!({}));
                self.tasks[i].tx = None;
            }
        }
    }

    /// Ends a task as failed, stopped or conflicted, with why, and applies
    /// its `on_failure`.
    fn end_badly(&mut self, i: usize, status: Status, reason: String, mut upd: TaskUpdate) {
        upd.reason = Some(Some(reason.clone()));
        self.set_status(i, status, upd, status.as_str(), json!({ "reason": reason }));
        self.after_failure(i, status);
    }

    fn after_failure(&mut self, i: usize, status: Status) {
        let spec = &self.tasks[i].spec;
        // Queued tasks of a service run are independent of each other.
        if spec.on_failure == OnFailure::Stop && self.stop_new.is_none() && !self.opts.service {
            self.stop_new = Some(format!(
                "not started: task {:?} {} and its on_failure is \"stop\"",
                spec.id,
                past(status)
            ));
        }
    }

    fn drop_worktree(&mut self, i: usize) {
        if self.opts.keep_worktrees {
            return;
        }
        let path =
            crate::paths::task_worktree(&self.worktrees, &self.sh.run_id, &self.tasks[i].spec.id);
        if path.exists() && std::fs::remove_dir_all(&path).is_ok() {
            self.removed_worktree = true;
        }
    }

    async fn process_merges(&mut self) {
        while let Some(id) = self.merge_queue.pop_front() {
            let Some(i) = self.idx(&id) else { continue };
            if let Err(reason) = self.merge_one(i).await {
                self.end_badly(i, Status::Failed, reason, TaskUpdate::default());
            }
        }
    }

    async fn merge_one(&mut self, i: usize) -> Result<(), String> {
        let id = self.tasks[i].spec.id.clone();
        let rec = self
            .sh
            .store
            .task(&self.sh.run_id, &id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("task {id} vanished from the store"))?;
        let commit = rec.commit_id.clone().unwrap_or_default();
        if commit.is_empty() || rec.start_commit.as_deref() == Some(commit.as_str()) {
            self.set_status(
                i,
                Status::Succeeded,
                TaskUpdate {
                    merged: Some(true),
                    ..Default::default()
                },
                "merged",
                json!({ "changes": false }),
            );
            self.drop_worktree(i);
            return Ok(());
        }
        let message = format!(
            "baton: merge task {id}\n\nRun: {}\nBranch: {}",
            self.sh.run_id, rec.branch
        );
        for round in 0..2 {
            let outcome = self
                .sh
                .repo
                .merge_commits(&self.head, &commit, &message)
                .await
                .map_err(|e| format!("merge failed: {e}"))?;
            match outcome {
                MergeOutcome::Merged(new) => match self
                    .sh
                    .repo
                    .move_ref(&self.integration_ref, &new, &self.head)
                    .await
                {
                    Ok(()) => {
                        self.head = new.clone();
                        self.set_status(
                            i,
                            Status::Succeeded,
                            TaskUpdate {
                                merged: Some(true),
                                ..Default::default()
                            },
                            "merged",
                            json!({ "changes": true, "integration": new }),
                        );
                        self.drop_worktree(i);
                        return Ok(());
                    }
                    Err(e) if round == 0 => {
                        // Someone moved the integration branch: merge onto what is there now.
                        tracing::warn!("integration branch moved under baton: {e}");
                        self.head = self
                            .sh
                            .repo
                            .ref_commit(&self.integration_ref)
                            .await
                            .map_err(|e| e.to_string())?
                            .ok_or_else(|| {
                                format!(
                                    "the integration branch {} was deleted",
                                    self.integration_ref
                                )
                            })?;
                    }
                    Err(e) => return Err(format!("cannot move the integration branch: {e}")),
                },
                MergeOutcome::Conflict(paths) => {
                    let reason = format!("merge conflict with the integration branch in {}; the task's work is kept on branch {}", paths.join(", "), rec.branch);
                    self.set_status(
                        i,
                        Status::Conflicted,
                        TaskUpdate {
                            reason: Some(Some(reason.clone())),
                            ..Default::default()
                        },
                        "conflicted",
                        json!({ "paths": paths }),
                    );
                    self.after_failure(i, Status::Conflicted);
                    return Ok(());
                }
            }
        }
        Err("the integration branch kept moving during the merge".into())
    }
}

fn past(s: Status) -> &'static str {
    match s {
        Status::Failed => "failed",
        Status::Stopped => "was stopped",
        Status::Conflicted => "conflicted",
        Status::Skipped => "was skipped",
        _ => "did not succeed",
    }
}
