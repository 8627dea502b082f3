//! The engine's loop: it asks the board what to do and does it. Store rows
//! and their events (one transaction each), workers started and told,
//! merges, worktrees dropped. Requests come from a handle in this process
//! or, for other processes, from the store's control table; both take the
//! same path. What workers spend reaches the run budget as they report it.

pub(crate) mod asking;
pub(crate) mod handle;
pub(crate) mod repo_watch;
pub(crate) mod requests;
pub(crate) mod resume;
pub(crate) mod setup;

use crate::clock::now_ms;
use crate::engine::board::{Action, Board};
use crate::engine::desk::Desks;
use crate::engine::merge::lane::{Line, MergeLane, Settled};
use crate::engine::messages::{MergeResult, Request, WorkerCmd, WorkerNote};
use crate::engine::shared::Shared;
use crate::engine::{task, EngineError};
use crate::lock::RunLock;
use crate::model::{AttemptKind, RunStatus, TaskStatus};
use crate::payload::Payload;
use crate::report::Report;
use crate::store::TaskUpdate;
use handle::EngineHandle;
use repo_watch::RepoWatch;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

/// How often requests from other processes are looked for in the store.
const CONTROL_POLL: Duration = Duration::from_millis(150);

pub struct Engine {
    pub(super) sh: Arc<Shared>,
    pub(super) _lock: RunLock,
    pub(super) desks: Desks,
    pub(super) board: Board,
    pub(super) lane: MergeLane,
    pub(super) workers: HashMap<usize, UnboundedSender<WorkerCmd>>,
    pub(super) notes: UnboundedReceiver<WorkerNote>,
    pub(super) requests: UnboundedReceiver<Request>,
    pub(super) handle: EngineHandle,
    pub(super) spending: Spending,
    pub(super) repo_watch: RepoWatch,
    /// When open questions' time runs out.
    pub(super) asking: asking::Asking,
}

/// What the run has spent: before this process took it, and by each attempt since.
pub(super) struct Spending {
    pub before: f64,
    by_attempt: HashMap<(String, u32), f64>,
}

impl Spending {
    pub fn new(before: f64) -> Spending {
        Spending {
            before,
            by_attempt: HashMap::new(),
        }
    }

    /// Attempt `attempt` of `task` has spent `usd` so far; returns the run's total.
    fn attempt(&mut self, task: String, attempt: u32, usd: f64) -> f64 {
        self.by_attempt.insert((task, attempt), usd);
        self.before + self.by_attempt.values().sum::<f64>()
    }
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

    /// The remote executor some of the run's profiles send attempts to,
    /// if any.
    fn remote(&self) -> Option<Arc<crate::plan::Remote>> {
        let plan = &self.sh.plan;
        let used = plan
            .agents
            .values()
            .any(|a| matches!(a.executor, crate::plan::Executor::Remote(_)));
        plan.executor.remote.clone().filter(|_| used)
    }

    /// What the run's remote executor holds ready for its attempts (warm
    /// pods), kept while the run goes on; None: nothing is.
    fn keep_warm(&self) -> Option<tokio::task::JoinHandle<()>> {
        let remote = self.remote()?;
        let keep = crate::executor::driver(self.sh.drivers, remote.kind())?.keep_warm?;
        let logs = self.sh.paths.run_dir(&self.sh.run_id).join("logs");
        let warm = crate::executor::Warm {
            run: self.sh.run_id.clone(),
            socket: crate::executor::warm_socket(&logs),
        };
        Some(tokio::spawn(keep((*remote).clone(), warm)))
    }

    /// At the run's end (or its interruption), nothing of it is left on its
    /// remote executor: a Job a stop or a crash left is removed. (A baton
    /// killed outright leaves them for `resume`, which follows them.)
    async fn sweep_remote(&self) {
        let Some(remote) = self.remote() else {
            return;
        };
        let (kind, run) = (remote.kind(), &self.sh.run_id);
        let Some(driver) = crate::executor::driver(self.sh.drivers, kind) else {
            tracing::warn!("cannot remove what run {run} left on the {kind} executor: this baton has no driver for it");
            return;
        };
        match (driver.sweep)(&remote, run).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("removed {n} thing(s) run {run} left on the {kind} executor"),
            Err(e) => {
                tracing::warn!("cannot remove what run {run} left on the {kind} executor: {e}")
            }
        }
    }

    /// What the run does with itself once it succeeded (`[run] land`).
    pub fn land_setting(&self) -> crate::plan::Land {
        self.sh.plan.run.land
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
        let mut store_lost: Option<String> = None;
        // Requests sent before this process took the run (a retry that reopened it).
        self.poll_controls().await;
        let warm = self.keep_warm();
        loop {
            // Requests sent before the engine could stop (a retry that reopened it).
            while let Ok(req) = self.requests.try_recv() {
                self.take(req).await;
            }
            let settled = self.lane.step(&self.sh, &self.board, &self.desks).await;
            self.settle(settled).await;
            if let Some(min) = self.sh.plan.run.min_free_memory {
                let acts = self.board.hold(crate::memory::shortage(min));
                self.apply(acts).await;
            }
            let freed = self.board.release_limits(now_ms());
            self.apply(freed).await;
            let next = self.board.next();
            self.apply(next).await;
            self.desks.start_refill(&self.sh);
            if self.board.is_done(self.lane.is_busy()) {
                break;
            }
            tokio::select! {
                Some(note) = self.notes.recv() => self.on_note(note).await,
                Some(req) = self.requests.recv() => self.take(req).await,
                _ = tick.tick() => {
                    if store_lost.is_none() && self.sh.store.replaced() {
                        let why = format!(
                            "the store {} was removed, replaced or cut short while run {} went on: nothing the run does can be recorded any more, so baton stopped it; its work is on its branches ({})",
                            self.sh.store.path().display(),
                            self.sh.run_id,
                            crate::paths::task_branch(&self.sh.run_id, "*")
                        );
                        tracing::error!("{why}");
                        let acts = self.board.halt(why.clone());
                        self.apply(acts).await;
                        store_lost = Some(why);
                    }
                    self.poll_controls().await;
                    self.questions_due().await;
                }
                _ = &mut shutdown, if !self.board.is_shutting_down() => {
                    let acts = self.board.shutdown();
                    self.apply(acts).await;
                    // A merge being verified stays queued: resume merges it again.
                    self.lane.shutdown();
                }
            }
        }
        if let Some(w) = warm {
            // Its idle pods go with the run's sweep, once it is gone (it
            // would replace them).
            w.abort();
            let _ = w.await;
            let logs = self.sh.paths.run_dir(&self.sh.run_id).join("logs");
            let _ = std::fs::remove_file(crate::executor::warm_socket(&logs));
        }
        let report = self.finish().await;
        match store_lost {
            Some(why) => Err(EngineError::Io(why)),
            None => report,
        }
    }

    async fn finish(mut self) -> Result<Report, EngineError> {
        let (skipped, status) = self.board.wind_up();
        self.apply(skipped).await;
        self.lane.finish(&self.sh).await;
        self.desks.return_spares(&self.sh).await;
        self.desks.clear(&self.sh.repo, &self.sh.run_id).await;
        self.sweep_remote().await;
        if let Some(engine) = self.sh.engine.get() {
            // What a killed command left (its engine's client was killed,
            // not its container), and every service.
            let repo = crate::container::repo_key(&self.sh.repo.common_dir);
            if let Err(e) = crate::container::sweep(engine, &repo, &self.sh.run_id).await {
                tracing::warn!("run {}: {e}", self.sh.run_id);
            }
        }
        self.sh
            .write("release run ports", |s, run| s.release_run_ports(run))
            .await;
        self.sh.repo.maintain().await;
        let finished = status != RunStatus::Interrupted;
        self.sh
            .db(move |s, run| {
                s.set_run_status(run, status, finished, None)?;
                s.event(run, None, None, Payload::RunFinished { status })
            })
            .await?;
        if let Some(w) = &self.sh.watchdog {
            w.finish();
        }
        Ok(Report::load(&self.sh.store, &self.sh.run_id).await?)
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
                } => self.record(task, status, *update, event).await,
                Action::RunEvent(payload) => self.sh.event(None, None, payload).await,
                Action::Start { task, feedback } => self.start_worker(task, feedback).await,
                Action::Send { task, cmd } => {
                    if let Some(tx) = self.workers.get(&task) {
                        let _ = tx.send(cmd);
                    }
                }
                Action::Merge(task) => self.lane.push(task),
                Action::DropWorktree(task) => {
                    self.desks.release(&self.sh.run_id, self.board.id(task))
                }
            }
        }
    }

    async fn record(
        &self,
        task: usize,
        status: Option<TaskStatus>,
        mut update: TaskUpdate,
        event: Option<Payload>,
    ) {
        if let Some(s) = status {
            update.status = Some(s);
            if s.is_finished() {
                update.finished_at = Some(now_ms());
                // Nobody waits for the answers to an ended task's questions
                // (looked at only for a task that asked: a write per task
                // would cost every run).
                let id = self.board.id(task).to_string();
                if self.asking.has_asked(&id) {
                    self.sh
                        .write("close questions", move |st, run| {
                            st.close_questions(run, &id)
                        })
                        .await;
                }
            }
        }
        self.sh
            .update_task(self.board.id(task), update, event)
            .await;
    }

    /// Starts (or restarts, with a person's `feedback`) the worker of task `i`.
    async fn start_worker(&mut self, i: usize, feedback: Option<String>) {
        // A race picks; once merged, its conflict goes to a resolver as any task's.
        if self.board.spec(i).race.is_some() && !self.lane.has_resolution(i) {
            return self.start_pick(i).await;
        }
        let mut spec = self.board.spec(i).clone();
        let resolution = self.lane.take_resolution(i);
        let original_agent = spec.agent.clone();
        if let Some((profile, prompt)) = &resolution {
            // The prompt is baton's text, not a template.
            spec.prompt = format!("{{% raw %}}{prompt}{{% endraw %}}");
            spec.agent = profile.clone();
            spec.context.clear();
        }
        let mut start = task::Start::prepare(
            &self.sh,
            spec,
            self.lane.head(),
            self.desks.root(),
            feedback,
        )
        .await;
        // A desk left at the task's own path (a crash before the store knew of
        // it) is used as it is; only a task with none takes a spare.
        if !start.desk.existing && !start.desk.worktree.exists() {
            self.desks.place(&mut start.desk);
        }
        self.desks
            .assign(self.board.id(i), start.desk.worktree.clone());
        if resolution.is_some() {
            start.kind = AttemptKind::Resolve;
            start.feedback = None;
            // Another agent's session cannot be continued (a race's is its judge's).
            if start.spec.agent != original_agent || start.spec.race.is_some() {
                start.session = None;
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        self.workers.insert(i, tx);
        let line = Line {
            id: start.spec.id.clone(),
            branch: start.desk.branch.clone(),
            start_commit: Some(start.desk.start_commit.clone()),
            ..Line::default()
        };
        self.lane.started(i, line);
        let started = Some(Payload::TaskStarted {
            attempts_before: start.attempts,
        });
        self.record(i, Some(TaskStatus::Running), TaskUpdate::default(), started)
            .await;
        // Counted before the worker runs, so that the pool's refill, started
        // right after, already waits for it.
        self.sh
            .starting_tasks
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        task::spawn(self.sh.clone(), start, rx);
    }

    /// Starts race task `i`'s pick: its candidates have let it.
    async fn start_pick(&mut self, i: usize) {
        let spec = self.board.spec(i).clone();
        let (tx, rx) = mpsc::unbounded_channel();
        self.workers.insert(i, tx);
        let line = Line {
            id: spec.id.clone(),
            branch: crate::paths::task_branch(&self.sh.run_id, &spec.id),
            ..Line::default()
        };
        self.lane.started(i, line);
        let started = Some(Payload::TaskStarted { attempts_before: 0 });
        self.record(i, Some(TaskStatus::Running), TaskUpdate::default(), started)
            .await;
        let desk = crate::engine::pick::JudgeDesk {
            head: self.lane.head().to_string(),
            worktrees: self.desks.root().to_path_buf(),
        };
        crate::engine::pick::spawn(self.sh.clone(), spec, desk, rx);
    }

    async fn on_note(&mut self, note: WorkerNote) {
        match note {
            WorkerNote::Limited {
                profile,
                until_ms,
                reason,
            } => self.board.limit(&profile, until_ms, Some(reason)),
            WorkerNote::Fallback {
                from,
                worked,
                quota_until,
                answer,
            } => {
                if let Some(until) = quota_until {
                    self.board.limit(&from, until, None);
                }
                let _ = answer.send(self.board.fallback(&from, &worked, now_ms()));
            }
            WorkerNote::Spent { task, attempt, usd } => {
                let total = self.spending.attempt(task, attempt, usd);
                if let Some(budget) = self.sh.plan.run.budget_usd {
                    let acts = self.board.spent(total, budget);
                    self.apply(acts).await;
                }
            }
            WorkerNote::Asked {
                task,
                question,
                expires_at,
            } => {
                self.asking.set(question, expires_at);
                self.asking.asked_by(task);
            }
            WorkerNote::Verified { result } => {
                let lane = &mut self.lane;
                let settled = lane
                    .verified(&self.sh, &self.board, &self.desks, result)
                    .await;
                self.settle(settled).await;
            }
            WorkerNote::Finished {
                task,
                outcome,
                start,
            } => {
                let Some(i) = self.board.idx(&task) else {
                    return;
                };
                self.workers.remove(&i);
                self.notice_repo_changes(&task).await;
                keep_candidate(&self.sh, &task, outcome.commit()).await;
                // What lies ahead is known once it is merged (or not).
                let lane = &mut self.lane;
                lane.finished(&self.sh, i, outcome.commit(), start).await;
                let waiting = matches!(outcome, crate::engine::messages::Outcome::Waiting { .. });
                let acts = self.board.finished(i, outcome);
                self.apply(acts).await;
                if waiting {
                    self.answered_meanwhile(i).await;
                }
            }
        }
    }

    /// What merges (or their failures) mean for their tasks: a conflict may
    /// go to the resolver; otherwise the board hears of it.
    async fn settle(&mut self, settled: Vec<Settled>) {
        for (i, result) in settled {
            if let MergeResult::Conflict { paths, .. } = &result {
                let lane = &mut self.lane;
                if self.board.wants_resolver(i)
                    && lane.ready_resolver(&self.sh, &self.board, i, paths).await
                {
                    let acts = self.board.resolve(i, paths);
                    self.apply(acts).await;
                    continue;
                }
            }
            let notes_waiting = !self.notes.is_empty();
            let lane = &mut self.lane;
            lane.after(&self.sh, &self.board, i, &result, notes_waiting)
                .await;
            let acts = self.board.merged(i, result);
            self.apply(acts).await;
            self.lane.report_undone(&self.sh).await;
        }
    }

    /// Says what changed in the repository's config and hooks, noticed as
    /// `task` ended (it, or a task running beside it, did it).
    async fn notice_repo_changes(&mut self, task: &str) {
        let mut said = Vec::new();
        if self.repo_watch.made_bare() {
            let root = &self.sh.repo.root;
            match crate::git::git_ok(root, ["config", "core.bare", "false"]).await {
                Ok(_) => said.push("core.bare was turned on in the repository's config during the run; baton turned it off again".to_string()),
                Err(e) => said.push(format!("core.bare was turned on in the repository's config during the run, which breaks your checkout, and baton could not turn it off ({e}): run `git config core.bare false`")),
            }
        }
        said.extend(self.repo_watch.changes());
        if said.is_empty() {
            return;
        }
        let data = Payload::RepoChanged {
            changes: said.clone(),
            noticed_when: task.to_string(),
        };
        self.sh.event(Some(task), None, data).await;
        let id = task.to_string();
        self.sh
            .write("add task warnings", move |s, run| {
                s.add_task_warnings(run, &id, &said)
            })
            .await;
    }
}

/// A race's candidate ended at `commit`: kept where `baton pick` and a
/// person find it, `refs/baton/<run>/<race>/candidate-<n>` (and where no
/// cleanup of its own branch can lose it).
async fn keep_candidate(sh: &Shared, task: &str, commit: Option<String>) {
    let (Some((race, n)), Some(commit)) = (crate::plan::race::candidate_of_id(task), commit) else {
        return;
    };
    let kept = format!("refs/baton/{}/{race}/candidate-{n}", sh.run_id);
    if let Err(e) = sh.repo.set_ref(&kept, &commit).await {
        tracing::warn!("cannot keep candidate {task} at {kept}: {e}");
    }
}
