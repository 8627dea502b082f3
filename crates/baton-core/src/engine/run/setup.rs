//! Creating a run, and picking one up again after a crash or Ctrl-C.

use super::handle::EngineHandle;
use super::repo_watch::RepoWatch;
use super::Engine;
use super::{Spending, Wiring};
use crate::clock::{new_run_id, now_ms};
use crate::engine::board::{Board, Rules};
use crate::engine::desk::Desks;
use crate::engine::merge::lane::{Line, MergeLane};
use crate::engine::merge::queue::MergeQueue;
use crate::engine::shared::Shared;
use crate::engine::EngineError;
use crate::git::Repo;
use crate::lock::RunLock;
use crate::model::{AttemptStatus, EventKind, RunKind, RunStatus, TaskStatus};
use crate::paths::{integration_branch, task_branch, StatePaths};
use crate::plan::Plan;
use crate::process::{self, Watchdog};
use crate::store::{NewTask, RunRecord, Store, TaskUpdate};
use serde_json::json;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct RunOptions {
    /// Where task worktrees go; overrides the plan's `run.worktrees`.
    pub worktrees: Option<PathBuf>,
    /// A command that runs [`crate::process::watchdog_main`] (the CLI passes
    /// its own executable with a hidden subcommand). Without one, agents can
    /// outlive a baton killed with SIGKILL.
    pub watchdog: Option<Vec<OsString>>,
    /// Keep the worktrees of tasks that succeeded (they are removed by default;
    /// their branches always stay).
    pub keep_worktrees: bool,
    /// Treat `approve = true` as approved (for unattended runs, e.g. CI).
    pub auto_approve: bool,
    /// Use this store instead of opening the repository's (a server shares one).
    pub store: Option<Arc<Store>>,
    /// The standing run of `baton serve`: it starts with no tasks, takes
    /// queued ones, and goes on until shut down.
    pub service: bool,
    /// baton's own binary (the CLI passes its executable): a lead task's
    /// agent gets its tools from `baton mcp`.
    pub baton: Option<PathBuf>,
}

async fn open_store(paths: &StatePaths, opts: &RunOptions) -> Result<Arc<Store>, EngineError> {
    match &opts.store {
        Some(s) => Ok(s.clone()),
        None => {
            let db = paths.db();
            let store = tokio::task::spawn_blocking(move || Store::open(&db))
                .await
                .map_err(|e| EngineError::Io(format!("cannot open the store: {e}")))??;
            Ok(Arc::new(store))
        }
    }
}

fn lock_run(paths: &StatePaths, run: &str) -> Result<RunLock, EngineError> {
    match RunLock::acquire(&paths.lock(run)) {
        Ok(Ok(l)) => Ok(l),
        Ok(Err(pid)) => Err(EngineError::Busy {
            run: run.to_string(),
            pid,
        }),
        Err(e) => Err(EngineError::Io(format!("cannot lock run {run}: {e}"))),
    }
}

fn watchdog(opts: &RunOptions) -> Option<Watchdog> {
    let cmd = opts.watchdog.as_ref()?;
    match Watchdog::spawn(cmd) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!("cannot start the watchdog ({e}); agents may outlive a killed baton");
            None
        }
    }
}

fn worktrees_root(repo: &Repo, paths: &StatePaths, plan: &Plan, opts: &RunOptions) -> PathBuf {
    let chosen = opts
        .worktrees
        .clone()
        .or_else(|| plan.run.worktrees.as_ref().map(PathBuf::from));
    match chosen {
        Some(p) if p.is_absolute() => p,
        Some(p) => repo.root.join(p),
        None => paths.default_worktrees(),
    }
}

/// The parts of an engine that `start` and `resume` find out differently.
struct Parts {
    repo: Repo,
    store: Arc<Store>,
    paths: StatePaths,
    run_id: String,
    plan: Plan,
    lock: RunLock,
    opts: RunOptions,
    worktrees: PathBuf,
    integration_ref: String,
    head: String,
}

impl Parts {
    /// The engine, its board holding every task of the plan as pending.
    async fn assemble(self) -> Result<Engine, EngineError> {
        let wiring = Wiring::new();
        let ws = &self.plan.workspace;
        if !ws.sparse.is_empty() {
            // Before the repository is watched: it is baton's change, not an agent's.
            self.repo.enable_worktree_config().await?;
        }
        let pool = match ws.pool {
            _ if self.opts.keep_worktrees => None,
            crate::plan::Pool::Off => None,
            crate::plan::Pool::Size(n) => Some(n),
            crate::plan::Pool::Auto => Some(self.plan.run.max_parallel),
        }
        .map(|n| {
            Arc::new(crate::engine::desk::pool::Pool::new(
                &self.worktrees,
                n,
                &self.head,
            ))
        });
        let desks = Desks::new(self.worktrees, self.opts.keep_worktrees, pool);
        let repo_watch = RepoWatch::new(&self.repo.common_dir);
        let run = self.run_id.clone();
        // What this process's agents can see, fingerprinted for views that
        // read the run later (in another process, with another environment).
        let prints = crate::engine::redactor_for(&self.plan).fingerprints(&run);
        let spent_before = self
            .store
            .call(move |s| {
                s.add_secret_prints(&run, &prints)?;
                s.run_cost(&run)
            })
            .await?;
        let spent_before = spent_before.unwrap_or(0.0);
        let rules = Rules {
            run: self.run_id.clone(),
            max_parallel: self.plan.run.max_parallel,
            service: self.opts.service,
            auto_approve: self.opts.auto_approve,
            overlap_allowed: self.plan.run.overlap_allowed,
            profile_limits: self
                .plan
                .agents
                .values()
                .filter_map(|a| Some((a.name.clone(), a.max_parallel?)))
                .collect(),
            accounts: self
                .plan
                .agents
                .values()
                .filter_map(|a| Some((a.name.clone(), a.account.clone()?)))
                .collect(),
            fallbacks: fallbacks(&self.plan),
        };
        let board = Board::new(rules, self.plan.tasks.iter().cloned());
        let merges = MergeQueue::new(&self.run_id, self.integration_ref, self.head.clone());
        let handle = EngineHandle::new(&self.run_id, wiring.requests_tx);
        let watchdog = watchdog(&self.opts);
        let mut sh = Shared::new(
            self.repo,
            self.store,
            self.paths,
            self.run_id,
            self.plan,
            watchdog,
            wiring.notes_tx,
        );
        sh.baton = self.opts.baton.as_ref().map(|b| b.display().to_string());
        let sh = Arc::new(sh);
        Ok(Engine {
            sh,
            _lock: self.lock,
            desks,
            board,
            lane: MergeLane::new(merges),
            workers: HashMap::new(),
            notes: wiring.notes,
            requests: wiring.requests,
            handle,
            spending: Spending::new(spent_before),
            repo_watch,
        })
    }
}

impl Engine {
    /// Creates a new run of `plan`: its integration branch from `run.base`,
    /// its records in the store. Nothing runs until [`Engine::drive`].
    pub async fn start(
        repo: Repo,
        mut plan: Plan,
        opts: RunOptions,
    ) -> Result<Engine, EngineError> {
        // A base that names no commit is the plan's error: found before
        // anything (a store, a branch) is created.
        let base_commit = plan.resolve_base(&repo).await?;
        plan.check_copies(&repo).await?;
        let paths = StatePaths::new(repo.state_dir());
        let store = open_store(&paths, &opts).await?;
        if opts.service {
            // The plan file's tasks are for `baton run`; a service run gets its tasks queued.
            plan.tasks.clear();
        }
        let run_id = new_run_id();
        let lock = lock_run(&paths, &run_id)?;
        let integration = integration_branch(&run_id);
        let integration_ref = format!("refs/heads/{integration}");
        let worktrees = worktrees_root(&repo, &paths, &plan, &opts);
        let kind = if opts.service {
            RunKind::Service
        } else {
            RunKind::Plan
        };
        let record = RunRecord {
            id: run_id.clone(),
            repo: repo.root.display().to_string(),
            plan_path: plan.path.display().to_string(),
            // The plan may hold secrets (a profile's env): the store keeps it masked.
            plan_source: crate::engine::redactor_for(&plan).redact(&plan.source),
            base: plan.run.base.clone(),
            base_commit: base_commit.clone(),
            integration_branch: integration.clone(),
            worktrees_dir: worktrees.display().to_string(),
            status: RunStatus::Running,
            created_at: now_ms(),
            finished_at: None,
            pid: Some(std::process::id()),
            kind,
            base_branch: repo.branch_of(&plan.run.base).await,
        };
        let tasks: Vec<NewTask> = plan.tasks.iter().map(|t| new_task(&run_id, t)).collect();
        let data = json!({ "plan": record.plan_path, "base": base_commit, "tasks": tasks.len() });
        // The store takes the run first: a branch it does not know of is never left behind.
        store.call(move |s| s.create_run(&record, &tasks)).await?;
        if let Err(e) = repo.create_ref(&integration_ref, &base_commit).await {
            let id = run_id.clone();
            let failed = store
                .call(move |s| s.set_run_status(&id, RunStatus::Failed, true, None))
                .await;
            if let Err(f) = failed {
                tracing::warn!("cannot record run {run_id} as failed: {f}");
            }
            return Err(e.into());
        }
        let id = run_id.clone();
        store
            .call(move |s| s.event(&id, None, None, EventKind::RunStarted, &data))
            .await?;
        Parts {
            repo,
            store,
            paths,
            run_id,
            plan,
            lock,
            opts,
            worktrees,
            integration_ref,
            head: base_commit,
        }
        .assemble()
        .await
    }

    /// Takes over an interrupted run (`None`: the latest): reaps what a crashed
    /// baton left running, commits the work its attempts left, and continues
    /// without redoing tasks that had finished.
    pub async fn resume(
        repo: Repo,
        run: Option<&str>,
        mut opts: RunOptions,
    ) -> Result<Engine, EngineError> {
        let paths = StatePaths::new(repo.state_dir());
        let store = open_store(&paths, &opts).await?;
        let wanted = run.map(str::to_string);
        let record = store.call(move |s| s.find_run(wanted.as_deref())).await?;
        let run_id = record.id.clone();
        let lock = lock_run(&paths, &run_id)?;
        if record.finished_at.is_some() {
            return Err(EngineError::Finished {
                run: run_id,
                status: record.status,
            });
        }
        opts.service = record.kind == RunKind::Service;
        let plan = plan_with_queued(&repo, &store, &record).await?;
        reap_orphans(&run_id).await;
        let integration_ref = format!("refs/heads/{}", record.integration_branch);
        let head = repo.ref_commit(&integration_ref).await?.ok_or_else(|| {
            EngineError::Io(format!(
                "the integration branch {} no longer exists; the run cannot continue",
                record.integration_branch
            ))
        })?;
        let id = run_id.clone();
        let records = store
            .call(move |s| {
                let pid = std::process::id();
                s.set_run_status(&id, RunStatus::Running, false, Some(pid))?;
                let data = json!({ "pid": pid });
                s.event(&id, None, None, EventKind::RunResumed, &data)?;
                s.tasks(&id)
            })
            .await?;
        let mut statuses = HashMap::new();
        // Where each task's desk is (the pool's desks are not at the usual place).
        let desk_of: HashMap<String, std::path::PathBuf> = records
            .iter()
            .filter_map(|r| Some((r.id.clone(), r.worktree.clone()?.into())))
            .collect();
        let mut to_merge = Vec::new();
        let mut lines = Vec::new();
        for (i, spec) in plan.tasks.iter().enumerate() {
            let Some(rec) = records.iter().find(|r| r.id == spec.id) else {
                continue;
            };
            // What the merge lane knows of the branch, as the record had it
            // (taking a dead resolver up puts the task's own commit back).
            lines.push((i, line_of(rec)));
            let status = take_up(&repo, &store, &run_id, rec, &head).await?;
            if status == TaskStatus::Merging {
                to_merge.push(i);
            }
            statuses.insert(spec.id.clone(), status);
        }
        let forced: Vec<String> = records
            .iter()
            .filter(|r| r.retry_from > 0)
            .map(|r| r.id.clone())
            .collect();
        let worktrees = opts
            .worktrees
            .clone()
            .unwrap_or_else(|| PathBuf::from(&record.worktrees_dir));
        let mut engine = Parts {
            repo,
            store,
            paths,
            run_id,
            plan,
            lock,
            opts,
            worktrees,
            integration_ref,
            head,
        }
        .assemble()
        .await?;
        engine.board.restore(&statuses, &forced);
        // Desks of tasks that ended well before the crash serve later tasks
        // (and are removed at the end), as if this process had released them.
        // A desk another task took before the crash (recorded as its own)
        // is that task's, not a spare.
        let claimed: std::collections::HashSet<&std::path::PathBuf> = statuses
            .iter()
            .filter(|(_, s)| **s != TaskStatus::Succeeded)
            .filter_map(|(id, _)| desk_of.get(id))
            .collect();
        for (id, status) in &statuses {
            let done = *status == TaskStatus::Succeeded;
            match desk_of.get(id) {
                Some(wt) if done && claimed.contains(wt) => continue,
                // Where a task waiting to merge gives its desk back later.
                Some(wt) => engine.desks.assign(id, wt.clone()),
                None => {}
            }
            if done {
                engine.desks.release(&engine.sh.run_id, id);
            }
        }
        for (i, line) in lines {
            engine.lane.started(i, line);
        }
        for i in to_merge {
            engine.lane.push(i);
        }
        Ok(engine)
    }
}

/// Each profile's fallbacks that are profiles of the plan, in order.
fn fallbacks(plan: &Plan) -> HashMap<String, Vec<String>> {
    let known = |f: &&String| plan.agents.contains_key(*f);
    plan.agents
        .values()
        .map(|a| {
            (
                a.name.clone(),
                a.fallback.iter().filter(known).cloned().collect(),
            )
        })
        .collect()
}

fn line_of(rec: &crate::store::TaskRecord) -> Line {
    Line {
        id: rec.id.clone(),
        branch: rec.branch.clone(),
        start_commit: rec.start_commit.clone(),
        commit: rec.commit_id.clone(),
        conflict_ahead: rec.conflict_ahead.clone(),
    }
}

fn new_task(run: &str, t: &crate::plan::TaskSpec) -> NewTask {
    NewTask {
        id: t.id.clone(),
        branch: task_branch(run, &t.id),
        agent: t.agent.clone(),
        needs: t.needs.clone(),
    }
}

/// A crashed baton's agents may still run (if its watchdog died too).
async fn reap_orphans(run: &str) {
    for pgid in process::orphan_groups(run) {
        tracing::info!("reaping process group {pgid} left by run {run}");
        process::signal_group(pgid, libc::SIGTERM);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        process::signal_group(pgid, libc::SIGKILL);
    }
}

/// The plan a resumed run goes on with: its plan, and the tasks queued
/// while it ran.
async fn plan_with_queued(
    repo: &Repo,
    store: &Arc<Store>,
    record: &RunRecord,
) -> Result<Plan, EngineError> {
    let mut plan = plan_for_resume(repo, record)?;
    if record.kind == RunKind::Service {
        plan.tasks.clear();
    }
    let id = record.id.clone();
    let added = store.call(move |s| s.added_tasks(&id)).await?;
    let kept: Vec<(&str, &str)> = added
        .iter()
        .map(|(_, a)| (a.snippet.as_str(), a.spec.as_str()))
        .collect();
    if !kept.is_empty() {
        let queued = plan.queued(&kept)?;
        plan.tasks.extend(queued);
    }
    Ok(plan)
}

/// Where a task of a resumed run stands now.
async fn take_up(
    repo: &Repo,
    store: &Arc<Store>,
    run: &str,
    rec: &crate::store::TaskRecord,
    head: &str,
) -> Result<TaskStatus, EngineError> {
    match rec.status {
        TaskStatus::Running if resolving(store, run, rec).await => {
            // A resolver died mid-merge: what it did is kept under its
            // attempt's ref; the task's own work goes back to the merge
            // queue, whose conflict brings the resolver again.
            let before = rec.commit_id.clone();
            take_back(repo, store, run, rec).await?;
            if let (Some(before), Some(wt)) = (before, rec.existing_worktree()) {
                if let Err(e) = repo
                    .in_desk_ok(wt, ["reset", "-q", "--hard", before.as_str()])
                    .await
                {
                    tracing::warn!(
                        "task {}: cannot take back the merge it was resolving: {e}",
                        rec.id
                    );
                    return Ok(TaskStatus::Pending);
                }
                let upd = TaskUpdate {
                    status: Some(TaskStatus::Merging),
                    commit_id: Some(before),
                    ..Default::default()
                };
                let (r, task) = (run.to_string(), rec.id.clone());
                store
                    .call(move |s| s.update_task(&r, &task, &upd, None))
                    .await?;
                return Ok(TaskStatus::Merging);
            }
            Ok(TaskStatus::Pending)
        }
        TaskStatus::Running => {
            // Its attempt died with the old process: keep its work, run it again.
            take_back(repo, store, run, rec).await?;
            Ok(TaskStatus::Pending)
        }
        TaskStatus::Merging if merged_already(repo, rec, head).await => {
            // A crash between moving the integration branch and recording
            // the merge: it is merged, do not merge it twice.
            let upd = TaskUpdate {
                status: Some(TaskStatus::Succeeded),
                merged: Some(true),
                finished_at: Some(now_ms()),
                ..Default::default()
            };
            let data = json!({ "changes": true, "integration": head, "found_on_resume": true });
            let (run, task) = (run.to_string(), rec.id.clone());
            store
                .call(move |s| s.update_task(&run, &task, &upd, Some((EventKind::Merged, &data))))
                .await?;
            Ok(TaskStatus::Succeeded)
        }
        other => Ok(other),
    }
}

/// Whether the attempt that died was a resolver's, on a merge in its worktree.
async fn resolving(store: &Arc<Store>, run: &str, rec: &crate::store::TaskRecord) -> bool {
    let (r, task) = (run.to_string(), rec.id.clone());
    let attempts = store.call(move |s| s.attempts(&r, &task)).await;
    attempts
        .ok()
        .and_then(|a| {
            a.last()
                .map(|a| a.kind == crate::model::AttemptKind::Resolve)
        })
        .unwrap_or(false)
}

/// A task whose attempt died with the old process: what it left is
/// committed (and kept under its attempt's ref), the attempt is recorded as
/// interrupted, and the task waits to run again.
async fn take_back(
    repo: &Repo,
    store: &Arc<Store>,
    run: &str,
    rec: &crate::store::TaskRecord,
) -> Result<(), EngineError> {
    if let Some(wt) = rec.existing_worktree() {
        // A sandboxed agent's commits are in its desk's own git directory.
        let desks = StatePaths::new(repo.state_dir()).run_dir(run).join("desks");
        let own = crate::sandbox::OwnGit::at(
            &desks.join(crate::engine::process::jail::desk_name(&rec.id)),
        );
        if own.dir.exists() {
            let n = rec.attempts;
            if let Err(e) =
                crate::engine::task::keep::fetch_home(repo, run, &rec.id, n, wt, &own).await
            {
                tracing::warn!(
                    "cannot take home what task {}'s agent committed: {e}",
                    rec.id
                );
            }
        }
        let msg = format!("baton: {} attempt {} (interrupted)", rec.id, rec.attempts);
        if let Err(e) = repo.commit_all(wt, &msg).await {
            tracing::warn!("cannot commit what task {} left: {e}", rec.id);
        }
        if let Ok(h) = repo.head(wt).await {
            if rec.attempts > 0 {
                crate::engine::task::keep::keep_ref(repo, store, run, &rec.id, rec.attempts, &h)
                    .await;
            }
            let upd = TaskUpdate {
                commit_id: Some(h),
                ..Default::default()
            };
            let (r, task) = (run.to_string(), rec.id.clone());
            store
                .call(move |s| s.update_task(&r, &task, &upd, None))
                .await?;
        }
    }
    let (r, task, n) = (run.to_string(), rec.id.clone(), rec.attempts);
    store
        .call(move |s| {
            if n > 0 {
                let why = Some("baton stopped while it ran");
                s.finish_attempt(&r, &task, n, AttemptStatus::Interrupted, None, why)?;
            }
            let upd = TaskUpdate {
                status: Some(TaskStatus::Pending),
                ..Default::default()
            };
            let data = json!({ "resumed": true });
            s.update_task(&r, &task, &upd, Some((EventKind::Interrupted, &data)))
        })
        .await?;
    Ok(())
}

/// Whether a task found in the merge queue is on the integration branch already.
async fn merged_already(repo: &Repo, rec: &crate::store::TaskRecord, head: &str) -> bool {
    match &rec.commit_id {
        Some(c) => {
            repo.is_ancestor(c, head).await.unwrap_or(false)
                && rec.start_commit.as_deref() != Some(c.as_str())
        }
        None => false,
    }
}

/// The plan a resumed run continues with. The store keeps the plan with its
/// secrets masked; the file, if it is still the same plan, has them.
fn plan_for_resume(repo: &Repo, record: &RunRecord) -> Result<Plan, EngineError> {
    let shown = std::path::Path::new(&record.plan_path);
    let file = if shown.is_absolute() {
        shown.to_path_buf()
    } else {
        repo.root.join(shown)
    };
    let parse = |text: &str| {
        if record.kind == RunKind::Service {
            Plan::parse_config(shown, text, None)
        } else {
            Plan::parse(shown, text, None)
        }
    };
    let stored = || parse(&record.plan_source);
    let Ok(text) = std::fs::read_to_string(&file) else {
        tracing::warn!(
            "plan {} is gone; resuming with the copy in the store (secret values in it are masked)",
            file.display()
        );
        return Ok(stored()?);
    };
    match parse(&text) {
        Ok(plan) if crate::engine::redactor_for(&plan).redact(&text) == record.plan_source => Ok(plan),
        _ if text == record.plan_source => Ok(stored()?),
        _ => Err(EngineError::Io(format!(
            "the plan {} has changed since run {} started; restore it, or start a new run with `baton run`",
            file.display(),
            record.id
        ))),
    }
}
