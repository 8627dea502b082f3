//! The engine shell: it asks the board what to do and does it. Store rows
//! and their events (one transaction each), workers started and told,
//! merges, worktrees dropped. Requests come from a handle in this process
//! or, for other processes, from the store's control table; both take the
//! same path. What workers spend reaches the run budget as they report it.

use super::board::{Action, Board, Reply};
use super::handle::EngineHandle;
use super::merge::{Candidate, MergeQueue, MergeResult};
use super::messages::{Answer, Request, WorkerCmd, WorkerNote};
use super::setup::RunOptions;
use super::shared::Shared;
use super::{worker, EngineError};
use crate::clock::now_ms;
use crate::lock::RunLock;
use crate::model::{ControlKind, EventKind, RunStatus, TaskStatus};
use crate::report::Report;
use crate::store::TaskUpdate;
use serde_json::json;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinSet;

/// How often requests from other processes are looked for in the store.
const CONTROL_POLL: Duration = Duration::from_millis(150);

pub struct Engine {
    pub(super) sh: Arc<Shared>,
    pub(super) _lock: RunLock,
    pub(super) opts: RunOptions,
    pub(super) worktrees: PathBuf,
    pub(super) board: Board,
    pub(super) merges: MergeQueue,
    pub(super) workers: HashMap<usize, UnboundedSender<WorkerCmd>>,
    pub(super) notes: UnboundedReceiver<WorkerNote>,
    pub(super) requests: UnboundedReceiver<Request>,
    pub(super) handle: EngineHandle,
    /// What the run had spent before this process took it, and what each
    /// attempt since has spent, by (task, attempt).
    pub(super) spent_before: f64,
    pub(super) spent: HashMap<(String, u32), f64>,
    /// Worktrees of tasks that are done, for the next tasks to start in.
    pub(super) spares: Vec<PathBuf>,
    /// Worktrees being removed; each says whether git's metadata needs a prune.
    pub(super) removals: JoinSet<bool>,
}

/// The channels an engine is built around.
pub(super) struct Wiring {
    pub notes_tx: UnboundedSender<WorkerNote>,
    pub notes: UnboundedReceiver<WorkerNote>,
    pub requests_tx: UnboundedSender<Request>,
    pub requests: UnboundedReceiver<Request>,
}

impl Wiring {
    pub fn new() -> Wiring {
        let (notes_tx, notes) = mpsc::unbounded_channel();
        let (requests_tx, requests) = mpsc::unbounded_channel();
        Wiring {
            notes_tx,
            notes,
            requests_tx,
            requests,
        }
    }
}

impl Engine {
    pub fn run_id(&self) -> &str {
        &self.sh.run_id
    }

    pub fn store(&self) -> &Arc<crate::store::Store> {
        &self.sh.store
    }

    /// A handle for requests from this process (the server's, or a caller
    /// that drives the engine itself).
    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// Drives the run until every task has ended or `shutdown` resolves
    /// (then running agents are stopped, their work committed, and the run
    /// left to `resume`).
    pub async fn drive(
        mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Report, EngineError> {
        let mut tick = tokio::time::interval(CONTROL_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        // Requests sent before this process took the run (a retry that reopened it).
        self.poll_controls().await;
        loop {
            // Requests sent before the engine could stop (a retry that reopened it).
            while let Ok(req) = self.requests.try_recv() {
                self.take(req).await;
            }
            self.process_merges().await;
            let next = self.board.next();
            self.apply(next).await;
            if self.board.is_done(!self.merges.is_empty()) {
                break;
            }
            tokio::select! {
                Some(note) = self.notes.recv() => self.on_note(note).await,
                Some(req) = self.requests.recv() => self.take(req).await,
                _ = tick.tick() => self.poll_controls().await,
                _ = &mut shutdown, if !self.board.is_shutting_down() => {
                    let acts = self.board.shutdown();
                    self.apply(acts).await;
                }
            }
        }
        self.finish().await
    }

    async fn finish(mut self) -> Result<Report, EngineError> {
        let (skipped, status) = self.board.wind_up();
        self.apply(skipped).await;
        for path in std::mem::take(&mut self.spares) {
            self.remove_worktree(path);
        }
        let mut prune = false;
        while let Some(r) = self.removals.join_next().await {
            prune |= r.unwrap_or(true);
        }
        if prune {
            let _ = crate::git::git(&self.sh.repo.root, ["worktree", "prune"]).await;
        }
        let run = &self.sh.run_id;
        let store = &self.sh.store;
        store.set_run_status(run, status, status != RunStatus::Interrupted, None)?;
        let data = json!({ "status": status });
        store.event(run, None, None, EventKind::RunFinished, &data)?;
        if let Some(w) = &self.sh.watchdog {
            w.finish();
        }
        Ok(Report::load(store, run).await?)
    }

    /// Carries out what the board decided, in order.
    async fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Record {
                    task,
                    status,
                    update,
                    event,
                } => self.record(task, status, *update, event),
                Action::RunEvent(kind, data) => {
                    let run = &self.sh.run_id;
                    if let Err(e) = self.sh.store.event(run, None, None, kind, &data) {
                        tracing::error!("cannot record {kind} for run {run}: {e}");
                    }
                }
                Action::Start { task, feedback } => self.start_worker(task, feedback).await,
                Action::Send { task, cmd } => {
                    if let Some(tx) = self.workers.get(&task) {
                        let _ = tx.send(cmd);
                    }
                }
                Action::Merge(task) => self.merges.push(task),
                Action::DropWorktree(task) => self.drop_worktree(task),
            }
        }
    }

    fn record(
        &self,
        task: usize,
        status: Option<TaskStatus>,
        mut update: TaskUpdate,
        event: Option<(EventKind, serde_json::Value)>,
    ) {
        if let Some(s) = status {
            update.status = Some(s);
            if s.is_finished() {
                update.finished_at = Some(now_ms());
            }
        }
        let id = self.board.id(task);
        let event = event.as_ref().map(|(k, d)| (*k, d));
        if let Err(e) = self
            .sh
            .store
            .update_task(&self.sh.run_id, id, &update, event)
        {
            tracing::error!("cannot record task {id}: {e}");
        }
    }

    /// Starts (or restarts, with a person's `feedback`) the worker of task `i`.
    async fn start_worker(&mut self, i: usize, feedback: Option<String>) {
        let spec = self.board.spec(i).clone();
        let mut start = worker::Start::prepare(
            &self.sh,
            spec,
            self.merges.head(),
            &self.worktrees,
            feedback,
        )
        .await;
        if !start.existing {
            start.spare = self.spares.pop();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        self.workers.insert(i, tx);
        let data = json!({ "attempts_before": start.attempts });
        let started = Some((EventKind::TaskStarted, data));
        self.record(i, Some(TaskStatus::Running), TaskUpdate::default(), started);
        worker::spawn(self.sh.clone(), start, rx);
    }

    async fn on_note(&mut self, note: WorkerNote) {
        match note {
            WorkerNote::Spent { task, attempt, usd } => {
                self.spent.insert((task, attempt), usd);
                if let Some(budget) = self.sh.plan.run.budget_usd {
                    let total = self.spent_before + self.spent.values().sum::<f64>();
                    let acts = self.board.spent(total, budget);
                    self.apply(acts).await;
                }
            }
            WorkerNote::Finished { task, outcome } => {
                let Some(i) = self.board.idx(&task) else {
                    return;
                };
                self.workers.remove(&i);
                let acts = self.board.finished(i, outcome);
                self.apply(acts).await;
            }
        }
    }

    async fn process_merges(&mut self) {
        while let Some(i) = self.merges.pop() {
            let id = self.board.id(i).to_string();
            let result = match self.sh.store.task(&self.sh.run_id, &id) {
                Ok(Some(rec)) => {
                    let c = Candidate {
                        id: &id,
                        branch: &rec.branch,
                        commit: rec.commit_id.as_deref(),
                        start_commit: rec.start_commit.as_deref(),
                    };
                    self.merges.merge(&self.sh.repo, c).await
                }
                Ok(None) => MergeResult::Failed(format!("task {id} vanished from the store")),
                Err(e) => MergeResult::Failed(e.to_string()),
            };
            let acts = self.board.merged(i, result);
            self.apply(acts).await;
        }
    }

    /// A task ended well: its worktree is kept for the next task to start
    /// in (its work is on its branch), unless worktrees are to be kept as they are.
    fn drop_worktree(&mut self, i: usize) {
        if self.opts.keep_worktrees {
            return;
        }
        let path = crate::paths::task_worktree(&self.worktrees, &self.sh.run_id, self.board.id(i));
        if path.exists() {
            self.spares.push(path);
        }
    }

    /// Removes a worktree off the engine's loop.
    fn remove_worktree(&mut self, path: PathBuf) {
        let sh = self.sh.clone();
        self.removals.spawn(async move {
            match sh.repo.remove_worktree(&path).await {
                Ok(()) => false,
                Err(e) => {
                    // Not a worktree git knows (any more): the directory goes, and
                    // git's metadata is pruned at the end of the run.
                    tracing::debug!("git worktree remove {}: {e}", path.display());
                    let _ = tokio::fs::remove_dir_all(&path).await;
                    true
                }
            }
        });
    }

    async fn take(&mut self, req: Request) {
        let answer = self.answer(&req.task, req.kind, req.message).await;
        let _ = req.answer.send(answer);
    }

    /// Answers a request, from this process or another.
    async fn answer(&mut self, task: &str, kind: ControlKind, message: Option<String>) -> Answer {
        if let Some(no) = self.board.refuse(kind) {
            return Answer::no(no);
        }
        if kind == ControlKind::Add {
            return self.add_queued(task);
        }
        let Some(i) = self.board.idx(task) else {
            return Answer::no(format!("run {} has no task {task:?}", self.sh.run_id));
        };
        let reply = if kind == ControlKind::Retry {
            self.retry(i, message).await
        } else {
            self.board.request(i, kind, message)
        };
        self.apply(reply.actions).await;
        Answer {
            ok: reply.ok,
            message: reply.message,
        }
    }

    /// A task that ended badly runs again. A conflicted task first gets the
    /// integration branch merged into its worktree, conflicts and all, for
    /// its agent to resolve.
    async fn retry(&mut self, i: usize, message: Option<String>) -> Reply {
        if let Some(no) = self.board.check_retry(i) {
            return Reply::no(no);
        }
        let rec = self
            .sh
            .store
            .task(&self.sh.run_id, self.board.id(i))
            .ok()
            .flatten();
        let attempts = rec.as_ref().map(|r| r.attempts).unwrap_or(0);
        let mut feedback = message.unwrap_or_else(|| {
            rec.as_ref()
                .and_then(|r| r.feedback.clone())
                .unwrap_or_default()
        });
        let worktree = rec
            .as_ref()
            .and_then(|r| r.worktree.clone())
            .filter(|w| std::path::Path::new(w).exists());
        if let (TaskStatus::Conflicted, Some(wt)) = (self.board.status(i), worktree) {
            let head = self.merges.head();
            let out = crate::git::git(
                std::path::Path::new(&wt),
                ["merge", "--no-edit", "--no-ff", head],
            )
            .await;
            let conflicted = out.map(|o| o.code != 0).unwrap_or(true);
            feedback = format!(
                "Your work conflicted with the integration branch, which baton has now merged into your worktree{}. Resolve every conflict (keep both sides' intent), then finish.\n{feedback}",
                if conflicted { " with conflict markers left in the files" } else { "" }
            );
        }
        self.board.retry(i, feedback, attempts)
    }

    /// Takes a task queued at run time (its plan text is in the store).
    fn add_queued(&mut self, task: &str) -> Answer {
        if self.board.idx(task).is_some() {
            return Answer::no(format!("task {task:?} exists already"));
        }
        let snippet = match self.sh.store.added_tasks(&self.sh.run_id) {
            Ok(all) => all.into_iter().find(|(id, _)| id == task).map(|(_, s)| s),
            Err(e) => return Answer::no(e.to_string()),
        };
        let Some(snippet) = snippet else {
            return Answer::no(format!("no queued task {task:?} in the store"));
        };
        let spec = match self.sh.plan.parse_added(&[snippet]) {
            Ok(mut specs) if specs.len() == 1 => specs.remove(0),
            Ok(_) => return Answer::no("the queued task did not parse as one task"),
            Err(e) => return Answer::no(e.to_string()),
        };
        let data = json!({ "agent": spec.agent });
        let run = &self.sh.run_id;
        let _ = self
            .sh
            .store
            .event(run, Some(task), None, EventKind::TaskQueued, &data);
        match self.board.add(spec) {
            Ok(_) => Answer::yes(format!("task {task:?} queued")),
            Err(e) => Answer::no(e),
        }
    }

    /// Requests from other processes, answered in the store.
    async fn poll_controls(&mut self) {
        let controls = match self.sh.store.pending_controls(&self.sh.run_id) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("cannot read control requests: {e}");
                return;
            }
        };
        for c in controls {
            let answer = self.answer(&c.task_id, c.kind, c.message.clone()).await;
            let _ = self
                .sh
                .store
                .answer_control(c.id, answer.ok, &answer.message);
        }
    }
}
