//! The engine shell: it asks the board what to do and does it. Store rows
//! and their events (one transaction each), workers started and told,
//! merges, worktrees dropped. Requests come from a handle in this process
//! or, for other processes, from the store's control table; both take the
//! same path. What workers spend reaches the run budget as they report it.

use super::batch::{Batch, Next};
use super::board::{Action, Board, Reply};
use super::desks::Desks;
use super::gates::GateResult;
use super::handle::EngineHandle;
use super::merge::{Candidate, MergeQueue, MergeResult, Prepared};
use super::messages::{Answer, Request, WorkerCmd, WorkerNote};
use super::repo_watch::RepoWatch;
use super::shared::Shared;
use super::{verify, worker, EngineError};
use crate::clock::now_ms;
use crate::lock::RunLock;
use crate::model::{AttemptKind, ControlKind, EventKind, RunStatus, TaskStatus};
use crate::report::Report;
use crate::store::TaskUpdate;
use serde_json::json;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

/// How often requests from other processes are looked for in the store.
const CONTROL_POLL: Duration = Duration::from_millis(150);
/// How often at most running tasks are dry-run against a new integration head.
const LOOK_AHEAD_EVERY: Duration = Duration::from_secs(2);

pub struct Engine {
    pub(super) sh: Arc<Shared>,
    pub(super) _lock: RunLock,
    pub(super) desks: Desks,
    pub(super) board: Board,
    pub(super) merges: MergeQueue,
    pub(super) workers: HashMap<usize, UnboundedSender<WorkerCmd>>,
    pub(super) notes: UnboundedReceiver<WorkerNote>,
    pub(super) requests: UnboundedReceiver<Request>,
    pub(super) handle: EngineHandle,
    pub(super) spending: Spending,
    pub(super) repo_watch: RepoWatch,
    /// The merge being checked by the run's `verify`, if one is.
    pub(super) verifying: Option<Verifying>,
    /// Resolver attempts about to start, by task: (profile, prompt).
    pub(super) resolutions: HashMap<usize, (String, String)>,
    /// Where each started task's branch began, to skip the ones with no
    /// commits when looking for conflicts ahead.
    pub(super) starts: HashMap<usize, String>,
    /// When conflicts ahead were last looked for, and the tasks found with some.
    pub(super) last_look: Option<std::time::Instant>,
    pub(super) ahead: std::collections::HashSet<usize>,
    /// The repository's warm pool of prepared worktrees, if the plan keeps one.
    pub(super) pool: Option<Arc<super::pool::Pool>>,
    /// The pool's refill going on in the background.
    pub(super) refill: Option<tokio::task::JoinHandle<()>>,
    /// Profiles the provider limits, until when (ms).
    pub(super) limits: HashMap<String, i64>,
}

/// A batch of merges under the run's `verify` checks.
pub(super) struct Verifying {
    batch: Batch,
    stop: UnboundedSender<WorkerCmd>,
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

    /// The cluster some of the run's profiles send attempts to, if any.
    pub fn cluster(&self) -> Option<Arc<crate::plan::Kubernetes>> {
        let plan = &self.sh.plan;
        let used = plan
            .agents
            .values()
            .any(|a| matches!(a.executor, crate::plan::Executor::Kubernetes(_)));
        plan.executor.kubernetes.clone().filter(|_| used)
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
        loop {
            // Requests sent before the engine could stop (a retry that reopened it).
            while let Ok(req) = self.requests.try_recv() {
                self.take(req).await;
            }
            self.process_merges().await;
            if let Some(min) = self.sh.plan.run.min_free_memory {
                let acts = self.board.hold(crate::memory::shortage(min));
                self.apply(acts).await;
            }
            self.release_limits().await;
            let next = self.board.next();
            self.apply(next).await;
            // Once the first tasks are making their desks, so it waits for them.
            if let (Some(pool), None) = (&self.pool, &self.refill) {
                let refill = super::pool::refill(self.sh.clone(), pool.clone());
                self.refill = Some(tokio::spawn(refill));
            }
            if self
                .board
                .is_done(!self.merges.is_empty() || self.verifying.is_some())
            {
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
                    self.poll_controls().await
                }
                _ = &mut shutdown, if !self.board.is_shutting_down() => {
                    let acts = self.board.shutdown();
                    self.apply(acts).await;
                    // A merge being verified stays queued: resume merges it again.
                    if let Some(v) = &self.verifying {
                        let _ = v.stop.send(WorkerCmd::Shutdown);
                    }
                }
            }
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
        // What someone else put on the integration branch after the last merge.
        if let Err(e) = self.merges.guard(&self.sh.repo).await {
            tracing::error!("run {}: {e}", self.sh.run_id);
        }
        self.report_undone().await;
        self.pool_or_teardown().await;
        self.desks.clear(&self.sh.repo, &self.sh.run_id).await;
        self.sh
            .write("release run ports", |s, run| s.release_run_ports(run))
            .await;
        self.sh.repo.maintain().await;
        let finished = status != RunStatus::Interrupted;
        self.sh
            .db(move |s, run| {
                s.set_run_status(run, status, finished, None)?;
                let data = json!({ "status": status });
                s.event(run, None, None, EventKind::RunFinished, &data)
            })
            .await?;
        if let Some(w) = &self.sh.watchdog {
            w.finish();
        }
        Ok(Report::load(&self.sh.store, &self.sh.run_id).await?)
    }

    /// Done tasks' worktrees are torn down, then go back to the pool while
    /// it has room (their work is merged; their caches stay) or are removed.
    async fn pool_or_teardown(&mut self) {
        if let (Some(pool), Some(refill)) = (&self.pool, self.refill.take()) {
            pool.stop_refill();
            let _ = refill.await;
        }
        let mut gone = Vec::new();
        for (spare, task) in self.desks.take_spares() {
            super::workspace::teardown(&self.sh, &task, &spare).await;
            if let Some(pool) = self.pool.as_ref().filter(|p| p.has_room()) {
                match pool.put_back(&self.sh.repo, &spare).await {
                    Ok(()) => continue,
                    Err(e) => tracing::warn!("cannot put {} in the pool: {e}", spare.display()),
                }
            }
            gone.push((spare, task));
        }
        self.desks.set_spares(gone);
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
                Action::RunEvent(kind, data) => self.sh.event(None, None, kind, data).await,
                Action::Start { task, feedback } => self.start_worker(task, feedback).await,
                Action::Send { task, cmd } => {
                    if let Some(tx) = self.workers.get(&task) {
                        let _ = tx.send(cmd);
                    }
                }
                Action::Merge(task) => self.merges.push(task),
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
        event: Option<(EventKind, serde_json::Value)>,
    ) {
        if let Some(s) = status {
            update.status = Some(s);
            if s.is_finished() {
                update.finished_at = Some(now_ms());
            }
        }
        self.sh
            .update_task(self.board.id(task), update, event)
            .await;
    }

    /// Starts (or restarts, with a person's `feedback`) the worker of task `i`.
    async fn start_worker(&mut self, i: usize, feedback: Option<String>) {
        let mut spec = self.board.spec(i).clone();
        let resolution = self.resolutions.remove(&i);
        let original_agent = spec.agent.clone();
        if let Some((profile, prompt)) = &resolution {
            // The prompt is baton's text, not a template.
            spec.prompt = format!("{{% raw %}}{prompt}{{% endraw %}}");
            spec.agent = profile.clone();
            spec.context.clear();
        }
        let mut start = worker::Start::prepare(
            &self.sh,
            spec,
            self.merges.head(),
            self.desks.root(),
            feedback,
        )
        .await;
        // A desk left at the task's own path (a crash before the store knew of
        // it) is used as it is; only a task with none takes a spare.
        if !start.existing && !start.worktree.exists() {
            match &self.pool {
                // The pool's desks never move (what setup made there, a
                // virtualenv say, may hold their path): a task works where
                // its desk is.
                Some(pool) => {
                    start.keep_ignored = true;
                    let (desk, held_by) = match self.desks.spare() {
                        Some((desk, task)) => (desk, Some(task)),
                        None => match pool.take() {
                            Some(desk) => {
                                start.pooled = true;
                                (desk, None)
                            }
                            None => (pool.new_desk(), None),
                        },
                    };
                    start.in_place = desk.exists();
                    start.worktree = desk;
                    start.spare_of = held_by;
                }
                None => {
                    if let Some((desk, task)) = self.desks.spare() {
                        start.spare = Some(desk);
                        start.spare_of = Some(task);
                    }
                }
            }
        }
        self.desks.assign(self.board.id(i), start.worktree.clone());
        if resolution.is_some() {
            start.kind = AttemptKind::Resolve;
            start.feedback = None;
            // Another agent's session cannot be continued.
            if start.spec.agent != original_agent {
                start.session = None;
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        self.workers.insert(i, tx);
        self.starts.insert(i, start.start_commit.clone());
        let data = json!({ "attempts_before": start.attempts });
        let started = Some((EventKind::TaskStarted, data));
        self.record(i, Some(TaskStatus::Running), TaskUpdate::default(), started)
            .await;
        // Counted before the worker runs, so that the pool's refill, started
        // right after, already waits for it.
        self.sh
            .starting_tasks
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        worker::spawn(self.sh.clone(), start, rx);
    }

    /// Profiles whose limit has passed take tasks again.
    async fn release_limits(&mut self) {
        if self.limits.is_empty() {
            return;
        }
        let now = crate::clock::now_ms();
        let over: Vec<String> = self
            .limits
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(p, _)| p.clone())
            .collect();
        for profile in over {
            self.limits.remove(&profile);
            let acts = self.board.limit_profile(&profile, None);
            self.apply(acts).await;
        }
    }

    async fn on_note(&mut self, note: WorkerNote) {
        match note {
            WorkerNote::Limited {
                profile,
                until_ms,
                reason,
            } => {
                let until = self.limits.entry(profile.clone()).or_insert(until_ms);
                *until = (*until).max(until_ms);
                let acts = self.board.limit_profile(&profile, Some(reason));
                self.apply(acts).await;
            }
            WorkerNote::Spent { task, attempt, usd } => {
                let total = self.spending.attempt(task, attempt, usd);
                if let Some(budget) = self.sh.plan.run.budget_usd {
                    let acts = self.board.spent(total, budget);
                    self.apply(acts).await;
                }
            }
            WorkerNote::Verified { result } => {
                let Some(mut v) = self.verifying.take() else {
                    return;
                };
                let next = match result {
                    GateResult::Passed => v.batch.passed(),
                    // Stopped by a shutdown: the tasks stay queued for resume.
                    GateResult::Interrupted(_) => {
                        self.merges.discard();
                        return;
                    }
                    GateResult::Failed { reason, feedback } => v.batch.failed(reason, feedback),
                };
                self.verdict(v, next).await;
            }
            WorkerNote::Finished { task, outcome } => {
                let Some(i) = self.board.idx(&task) else {
                    return;
                };
                self.workers.remove(&i);
                self.notice_repo_changes(&task).await;
                // What lies ahead is known once it is merged (or not).
                if self.ahead.remove(&i) {
                    let id = task.clone();
                    self.sh
                        .write("set conflict ahead", move |s, run| {
                            s.set_conflict_ahead(run, &id, &[])
                        })
                        .await;
                }
                let acts = self.board.finished(i, outcome);
                self.apply(acts).await;
            }
        }
    }

    /// Merges what is queued, one at a time. With `verify`, up to
    /// `verify_batch` merges are made one on another and checked together
    /// (the loop goes on meanwhile); the branch moves once they pass.
    async fn process_merges(&mut self) {
        let verify = !self.sh.plan.run.verify.is_empty();
        let mut batch = Vec::new();
        while self.verifying.is_none() && batch.len() < self.sh.plan.run.verify_batch {
            let Some(i) = self.merges.pop() else {
                break;
            };
            let result = match self.prepare_merge(i).await {
                Prepared::Commit(new) if verify => {
                    batch.push((i, new));
                    continue;
                }
                Prepared::Commit(new) => self.merges.publish(&self.sh.repo, &new).await,
                // A conflict with merges not checked yet waits for them: it
                // is merged again on what lands.
                Prepared::Done(MergeResult::Conflict { .. }) if self.merges.has_pending() => {
                    self.merges.push_front(&[i]);
                    break;
                }
                Prepared::Done(result) => result,
            };
            self.settle_merge(i, result).await;
        }
        if let Some((batch, commit)) = Batch::new(batch) {
            self.check(batch, commit);
        }
    }

    /// Starts the run's checks on a commit of the batch.
    fn check(&mut self, batch: Batch, commit: String) {
        let dir = self.desks.verify_dir(&self.sh.run_id);
        let id = self.board.id(batch.probed_task()).to_string();
        let stop = verify::spawn(self.sh.clone(), id, commit, dir);
        self.verifying = Some(Verifying { batch, stop });
    }

    /// The merge commit of task `i` on the queue's tip, or why there is none.
    async fn prepare_merge(&mut self, i: usize) -> Prepared {
        let id = self.board.id(i).to_string();
        let task = id.clone();
        match self.sh.db(move |s, run| s.task(run, &task)).await {
            Ok(Some(rec)) => {
                let c = Candidate {
                    id: &id,
                    branch: &rec.branch,
                    commit: rec.commit_id.as_deref(),
                    start_commit: rec.start_commit.as_deref(),
                };
                self.merges.prepare(&self.sh.repo, c).await
            }
            Ok(None) => Prepared::Done(MergeResult::Failed(format!(
                "task {id} vanished from the store"
            ))),
            Err(e) => Prepared::Done(MergeResult::Failed(e.to_string())),
        }
    }

    /// Acts on the checks' verdict on a batch: publishes what passed, fails
    /// the culprit, requeues what sat on it, or checks the next commit.
    async fn verdict(&mut self, v: Verifying, next: Next) {
        if let Some((_, last)) = next.land.last() {
            let published = self.merges.publish(&self.sh.repo, last).await;
            if !matches!(published, MergeResult::Merged { .. }) {
                // The branch would not move: these did not land, the rest merge again.
                let rest: Vec<usize> = v.batch.unsettled().collect();
                self.merges.discard();
                for (t, _) in &next.land {
                    self.settle_merge(*t, published.clone()).await;
                }
                self.merges.push_front(&rest);
                return;
            }
            for (t, commit) in next.land {
                let landed = MergeResult::Merged {
                    integration: Some(commit),
                };
                self.settle_merge(t, landed).await;
            }
        }
        if let Some((t, reason, feedback)) = next.culprit {
            self.merges.discard();
            let result = self.verify_failed(t, reason, feedback).await;
            self.settle_merge(t, result).await;
            self.merges.push_front(&next.requeue);
        }
        if let Some(commit) = next.check {
            self.check(v.batch, commit);
        }
    }

    /// What a merge (or its failure) means for task `i`: a conflict may go
    /// to the resolver; otherwise the board hears of it.
    async fn settle_merge(&mut self, i: usize, result: MergeResult) {
        if let MergeResult::Conflict { paths, .. } = &result {
            if self.board.wants_resolver(i) && self.prepare_resolution(i, paths).await {
                let acts = self.board.resolve(i, paths);
                self.apply(acts).await;
                return;
            }
        }
        self.note_undeclared(i, &result).await;
        self.look_ahead(&result).await;
        let acts = self.board.merged(i, result);
        self.apply(acts).await;
        self.report_undone().await;
    }

    /// After a merge, each running task's work so far is merged (dry run)
    /// with the new head: where it would conflict is said now, before the
    /// task finishes, so a person (or the task's agent) can act.
    async fn look_ahead(&mut self, result: &MergeResult) {
        let MergeResult::Merged {
            integration: Some(head),
        } = result
        else {
            return;
        };
        // A dry run per running task per merge would cost more than the
        // merges when many short tasks land at once: at most one look per
        // LOOK_AHEAD_EVERY.
        if self
            .last_look
            .is_some_and(|t| t.elapsed() < LOOK_AHEAD_EVERY)
        {
            return;
        }
        // Workers that just ended are not worth a dry run: their notes come first.
        if !self.notes.is_empty() {
            return;
        }
        self.last_look = Some(std::time::Instant::now());
        let running: Vec<usize> = self.board.running_tasks().collect();
        for i in running {
            let id = self.board.id(i).to_string();
            // A task that has committed nothing yet has nothing to conflict:
            // its branch file says so without running git. No file: its desk
            // is not made yet (or git packed the ref, and the look waits for
            // the merge itself).
            let branch = crate::paths::task_branch(&self.sh.run_id, &id);
            let Ok(tip) =
                std::fs::read_to_string(self.sh.repo.common_dir.join("refs/heads").join(&branch))
            else {
                continue;
            };
            if Some(tip.trim()) == self.starts.get(&i).map(String::as_str) {
                continue;
            }
            let task = id.clone();
            let Ok(Some(rec)) = self.sh.db(move |s, run| s.task(run, &task)).await else {
                continue;
            };
            let branch = format!("refs/heads/{}", rec.branch);
            let Ok(Some(tip)) = self.sh.repo.ref_commit(&branch).await else {
                continue;
            };
            if rec.start_commit.as_deref() == Some(tip.as_str()) {
                continue;
            }
            let paths = self.sh.repo.dry_merge(head, &tip).await.unwrap_or_default();
            if paths == rec.conflict_ahead {
                continue;
            }
            if !paths.is_empty() {
                let data = json!({ "paths": paths, "integration": head });
                self.sh
                    .event(Some(&id), None, EventKind::ConflictAhead, data)
                    .await;
            }
            if paths.is_empty() {
                self.ahead.remove(&i);
            } else {
                self.ahead.insert(i);
            }
            self.sh
                .write("set conflict ahead", move |s, run| {
                    s.set_conflict_ahead(run, &id, &paths)
                })
                .await;
        }
    }

    /// A conflicted task's worktree gets the integration head merged in,
    /// conflict markers and all, and a resolver attempt is readied: its
    /// prompt names the conflicting paths and what each side meant (this
    /// task, and the tasks merged since it started). False: it cannot be.
    async fn prepare_resolution(&mut self, i: usize, paths: &[String]) -> bool {
        let id = self.board.id(i).to_string();
        let task = id.clone();
        let Ok(Some(rec)) = self.sh.db(move |s, run| s.task(run, &task)).await else {
            return false;
        };
        let Some(wt) = rec.existing_worktree() else {
            return false;
        };
        if self.merges.merge_into(&self.sh.repo, wt).await.is_err() {
            return false;
        }
        let since = rec.started_at.unwrap_or(0);
        let others = self
            .sh
            .db(|s, run| s.tasks(run))
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.id != id && t.merged && t.finished_at.is_some_and(|f| f >= since));
        let spec = self.board.spec(i);
        let said = |r: Option<&str>| r.map(|r| r.trim().to_string()).unwrap_or_default();
        let ctx = crate::template::ResolveContext {
            task: id.clone(),
            prompt: spec.prompt.trim().to_string(),
            result: said(rec.result.as_deref()),
            paths: paths.to_vec(),
            merged: others
                .map(|t| crate::template::MergedView {
                    prompt: self
                        .board
                        .idx(&t.id)
                        .map(|j| self.board.spec(j).prompt.trim().to_string())
                        .unwrap_or_default(),
                    result: said(t.result.as_deref()),
                    id: t.id,
                })
                .collect(),
        };
        // The plan's template was checked when the plan was read.
        let template = self.sh.plan.run.resolver_prompt.as_deref();
        let prompt = template
            .and_then(|t| crate::template::render_resolver(t, &ctx).ok())
            .or_else(|| {
                crate::template::render_resolver(crate::template::RESOLVER_PROMPT, &ctx).ok()
            })
            .unwrap_or_default();
        let profile = self
            .sh
            .plan
            .run
            .resolver
            .clone()
            .unwrap_or_else(|| spec.agent.clone());
        self.resolutions.insert(i, (profile, prompt));
        true
    }

    /// A merged task that declared `files` and changed others says which.
    async fn note_undeclared(&self, i: usize, result: &MergeResult) {
        let files = &self.board.spec(i).files;
        if files.is_empty()
            || !matches!(
                result,
                MergeResult::Merged {
                    integration: Some(_)
                }
            )
        {
            return;
        }
        let id = self.board.id(i).to_string();
        let task = id.clone();
        let Ok(Some(rec)) = self.sh.db(move |s, run| s.task(run, &task)).await else {
            return;
        };
        let (Some(from), Some(to)) = (rec.start_commit, rec.commit_id) else {
            return;
        };
        let changed = self
            .sh
            .repo
            .changed_files(&from, &to)
            .await
            .unwrap_or_default();
        let outside: Vec<String> = changed.into_iter().filter(|f| !files.matches(f)).collect();
        if outside.is_empty() {
            return;
        }
        let said = vec![format!(
            "changed files outside its declared files ({}): {}",
            files.globs().join(", "),
            outside.join(", ")
        )];
        self.sh
            .write("add task warnings", move |s, run| {
                s.add_task_warnings(run, &id, &said)
            })
            .await;
    }

    /// The run's checks failed on task `i`'s merge: the attempt that passed
    /// its gates counts as failed, and if retries are left the integration
    /// head is merged into its worktree for the next attempt to fix.
    async fn verify_failed(&mut self, i: usize, reason: String, feedback: String) -> MergeResult {
        let id = self.board.id(i).to_string();
        let retries = self.board.spec(i).retries;
        let (task, why) = (id.clone(), reason.clone());
        let rec = self
            .sh
            .db(move |s, run| -> Result<_, crate::store::StoreError> {
                let rec = s.task(run, &task)?;
                if let Some(r) = &rec {
                    s.fail_attempt(run, &task, r.attempts, &why)?;
                }
                let failed = s
                    .attempts(run, &task)?
                    .iter()
                    .filter(|a| a.status.is_failure())
                    .filter(|a| rec.as_ref().is_some_and(|r| a.n > r.retry_from))
                    .count() as u32;
                Ok((rec, failed))
            })
            .await;
        let (rec, failed) = match rec {
            Ok((rec, failed)) => (rec, failed),
            Err(e) => return MergeResult::Failed(format!("{reason} (and: {e})")),
        };
        let worktree = rec.as_ref().and_then(|r| r.existing_worktree());
        let retry = failed <= retries && worktree.is_some();
        if let (true, Some(wt)) = (retry, worktree) {
            let _ = self.merges.merge_into(&self.sh.repo, wt).await;
        }
        let reason =
            format!("{reason}, on the merge of the task's work with the integration branch");
        let feedback = format!(
            "Your work passed its gates, but the run's checks failed once it was merged with the integration branch (which baton has now merged into your worktree). {feedback}"
        );
        MergeResult::VerifyFailed {
            reason,
            feedback,
            retry,
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
        let data = json!({ "changes": said, "noticed_when": task });
        self.sh
            .event(Some(task), None, EventKind::RepoChanged, data)
            .await;
        let id = task.to_string();
        self.sh
            .write("add task warnings", move |s, run| {
                s.add_task_warnings(run, &id, &said)
            })
            .await;
    }

    /// Says which foreign moves of the integration branch were undone.
    async fn report_undone(&mut self) {
        for (foreign, kept) in self.merges.take_undone() {
            let data = json!({ "foreign": foreign, "kept": kept });
            self.sh
                .event(None, None, EventKind::IntegrationRestored, data)
                .await;
        }
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
            return self.add_queued(task).await;
        }
        let Some(i) = self.board.idx(task) else {
            return Answer::no(format!("run {} has no task {task:?}", self.sh.run_id));
        };
        let reply = match kind {
            ControlKind::Retry => self.retry(i, message).await,
            ControlKind::Message => self.deliver(i, message).await,
            _ => self.board.request(i, kind, message),
        };
        self.apply(reply.actions).await;
        Answer {
            ok: reply.ok,
            message: reply.message,
        }
    }

    /// A message posted in the store (`message` holds its id) for task `i`.
    async fn deliver(&mut self, i: usize, message: Option<String>) -> Reply {
        let Some(id) = message.and_then(|m| m.parse::<i64>().ok()) else {
            return Reply::no("a message request names no message".into());
        };
        let found = self.sh.db(move |s, _| s.message(id)).await;
        let Ok(Some(msg)) = found else {
            return Reply::no(format!("no message {id} in the store"));
        };
        let live = self
            .sh
            .plan
            .agents
            .get(&self.board.spec(i).agent)
            .and_then(|p| crate::adapter::for_profile(&p.cli()).ok())
            .is_some_and(|a| a.steer_line("").is_some());
        self.board.message(i, id, msg.said(), live)
    }

    /// A task that ended badly runs again. A conflicted task first gets the
    /// integration branch merged into its worktree, conflicts and all, for
    /// its agent to resolve.
    async fn retry(&mut self, i: usize, message: Option<String>) -> Reply {
        if let Some(no) = self.board.check_retry(i) {
            return Reply::no(no);
        }
        let id = self.board.id(i).to_string();
        let rec = self
            .sh
            .db(move |s, run| s.task(run, &id))
            .await
            .ok()
            .flatten();
        let attempts = rec.as_ref().map(|r| r.attempts).unwrap_or(0);
        let mut feedback = message.unwrap_or_else(|| {
            rec.as_ref()
                .and_then(|r| r.feedback.clone())
                .unwrap_or_default()
        });
        let worktree = rec.as_ref().and_then(|r| r.existing_worktree());
        if let (TaskStatus::Conflicted, Some(wt)) = (self.board.status(i), worktree) {
            let conflicted = self
                .merges
                .merge_into(&self.sh.repo, wt)
                .await
                .unwrap_or(true);
            feedback = format!(
                "Your work conflicted with the integration branch, which baton has now merged into your worktree{}. Resolve every conflict (keep both sides' intent), then finish.\n{feedback}",
                if conflicted { " with conflict markers left in the files" } else { "" }
            );
        }
        self.board.retry(i, feedback, attempts)
    }

    /// Takes a task queued at run time (its plan text is in the store).
    async fn add_queued(&mut self, task: &str) -> Answer {
        if self.board.idx(task).is_some() {
            return Answer::no(format!("task {task:?} exists already"));
        }
        let added = match self.sh.db(|s, run| s.added_tasks(run)).await {
            Ok(all) => all,
            Err(e) => return Answer::no(e.to_string()),
        };
        // Tasks added before it come along: it may need them.
        let Some(at) = added.iter().position(|(id, _)| id == task) else {
            return Answer::no(format!("no queued task {task:?} in the store"));
        };
        let snippets: Vec<String> = added[..=at].iter().map(|(_, s)| s.clone()).collect();
        let spec = match self.sh.plan.parse_added(&snippets, None) {
            Ok(mut specs) if specs.len() == snippets.len() => specs.remove(at),
            Ok(_) => return Answer::no("the queued task did not parse as one task"),
            Err(e) => return Answer::no(e.to_string()),
        };
        let data = json!({ "agent": spec.agent });
        self.sh
            .event(Some(task), None, EventKind::TaskQueued, data)
            .await;
        match self.board.add(spec) {
            Ok(_) => Answer::yes(format!("task {task:?} queued")),
            Err(e) => Answer::no(e),
        }
    }

    /// Requests from other processes, answered in the store.
    async fn poll_controls(&mut self) {
        let controls = match self.sh.db(|s, run| s.pending_controls(run)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("cannot read control requests: {e}");
                return;
            }
        };
        for c in controls {
            let answer = self.answer(&c.task_id, c.kind, c.message.clone()).await;
            let res = self
                .sh
                .db(move |s, _| s.answer_control(c.id, answer.ok, &answer.message))
                .await;
            if let Err(e) = res {
                tracing::warn!("cannot answer control request {}: {e}", c.id);
            }
        }
    }
}
