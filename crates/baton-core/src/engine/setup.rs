//! Creating a run, and picking one up again after a crash or Ctrl-C.

use super::{Engine, EngineError, Rt, Shared, Status};
use crate::clock::{new_run_id, now_ms};
use crate::git::Repo;
use crate::lock::RunLock;
use crate::paths::{integration_branch, task_branch, StatePaths};
use crate::plan::Plan;
use crate::process::{self, Watchdog};
use crate::store::{RunRecord, Store, TaskUpdate};
use serde_json::json;
use std::collections::VecDeque;
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
}

fn open_store(paths: &StatePaths, opts: &RunOptions) -> Result<Arc<Store>, EngineError> {
    match &opts.store {
        Some(s) => Ok(s.clone()),
        None => Ok(Arc::new(Store::open(&paths.db())?)),
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

impl Engine {
    /// Creates a new run of `plan`: its integration branch from `run.base`,
    /// its records in the store. Nothing runs until [`Engine::drive`].
    pub async fn start(
        repo: Repo,
        mut plan: Plan,
        opts: RunOptions,
    ) -> Result<Engine, EngineError> {
        let paths = StatePaths::new(repo.state_dir());
        let store = open_store(&paths, &opts)?;
        if opts.service {
            // The plan file's tasks are for `baton run`; a service run gets its tasks queued.
            plan.tasks.clear();
        }
        let run_id = new_run_id();
        let base_commit = repo.resolve_commit(&plan.run.base).await?;
        let lock = lock_run(&paths, &run_id)?;
        let integration = integration_branch(&run_id);
        let integration_ref = format!("refs/heads/{integration}");
        repo.create_ref(&integration_ref, &base_commit).await?;
        let worktrees = worktrees_root(&repo, &paths, &plan, &opts);
        let record = RunRecord {
            id: run_id.clone(),
            repo: repo.root.display().to_string(),
            plan_path: plan.path.display().to_string(),
            // The plan may hold secrets (a profile's env): the store keeps it masked.
            plan_source: super::redactor_for(&plan).redact(&plan.source),
            base: plan.run.base.clone(),
            base_commit: base_commit.clone(),
            integration_branch: integration.clone(),
            worktrees_dir: worktrees.display().to_string(),
            status: "running".into(),
            created_at: now_ms(),
            finished_at: None,
            pid: Some(std::process::id()),
            kind: if opts.service { "service" } else { "plan" }.into(),
        };
        let tasks: Vec<(String, String)> = plan
            .tasks
            .iter()
            .map(|t| (t.id.clone(), task_branch(&run_id, &t.id)))
            .collect();
        store.create_run(&record, &tasks)?;
        store.set_run_kind(&run_id, &record.kind)?;
        store.event(
            &run_id,
            None,
            None,
            "run_started",
            &json!({ "plan": record.plan_path, "base": base_commit, "tasks": tasks.len() }),
        )?;
        let rts = plan
            .tasks
            .iter()
            .map(|t| Rt {
                spec: t.clone(),
                status: Status::Pending,
                tx: None,
            })
            .collect();
        let watchdog = watchdog(&opts);
        Ok(Engine {
            sh: Arc::new(Shared::new(repo, store, paths, run_id, plan, watchdog)),
            _lock: lock,
            opts,
            integration_ref,
            head: base_commit,
            worktrees,
            tasks: rts,
            merge_queue: VecDeque::new(),
            stop_new: None,
            shutting_down: false,
            removed_worktree: false,
            over_budget: false,
            forced: Default::default(),
        })
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
        let store = open_store(&paths, &opts)?;
        let record = store.find_run(run)?;
        let run_id = record.id.clone();
        let lock = lock_run(&paths, &run_id)?;
        if record.finished_at.is_some() {
            return Err(EngineError::Finished {
                run: run_id,
                status: record.status,
            });
        }
        opts.service = record.kind == "service";
        let mut plan = plan_for_resume(&repo, &record)?;
        if opts.service {
            plan.tasks.clear();
        }
        let snippets: Vec<String> = store
            .added_tasks(&run_id)?
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        if !snippets.is_empty() {
            let added = plan.parse_added(&snippets)?;
            plan.tasks.extend(added);
        }

        // A crashed baton's agents may still run (if its watchdog died too).
        for pgid in process::orphan_groups(&run_id) {
            tracing::info!("reaping process group {pgid} left by run {run_id}");
            process::signal_group(pgid, libc::SIGTERM);
            std::thread::sleep(std::time::Duration::from_millis(200));
            process::signal_group(pgid, libc::SIGKILL);
        }
        let integration_ref = format!("refs/heads/{}", record.integration_branch);
        let head = repo.ref_commit(&integration_ref).await?.ok_or_else(|| {
            EngineError::Io(format!(
                "the integration branch {} no longer exists; the run cannot continue",
                record.integration_branch
            ))
        })?;
        store.set_run_status(&run_id, "running", false, Some(std::process::id()))?;
        store.event(
            &run_id,
            None,
            None,
            "run_resumed",
            &json!({ "pid": std::process::id() }),
        )?;

        let records = store.tasks(&run_id)?;
        let mut rts = Vec::new();
        let mut merge_queue = VecDeque::new();
        for spec in &plan.tasks {
            let rec = records.iter().find(|r| r.id == spec.id);
            let mut status = rec
                .map(|r| Status::parse(&r.status))
                .unwrap_or(Status::Pending);
            if status == Status::Running {
                // Its attempt died with the old process: keep its work, run it again.
                if let Some(r) = rec {
                    if let Some(wt) = r
                        .worktree
                        .as_deref()
                        .filter(|w| std::path::Path::new(w).exists())
                    {
                        let msg =
                            format!("baton: {} attempt {} (interrupted)", spec.id, r.attempts);
                        if let Err(e) = repo.commit_all(std::path::Path::new(wt), &msg).await {
                            tracing::warn!("cannot commit what task {} left: {e}", spec.id);
                        }
                        if let Ok(h) = repo.head(std::path::Path::new(wt)).await {
                            store.update_task(
                                &run_id,
                                &spec.id,
                                &TaskUpdate {
                                    commit_id: Some(h),
                                    ..Default::default()
                                },
                                None,
                            )?;
                        }
                    }
                    if r.attempts > 0 {
                        store.finish_attempt(
                            &run_id,
                            &spec.id,
                            r.attempts,
                            "interrupted",
                            None,
                            Some("baton stopped while it ran"),
                        )?;
                    }
                }
                status = Status::Pending;
                store.update_task(
                    &run_id,
                    &spec.id,
                    &TaskUpdate {
                        status: Some("pending".into()),
                        ..Default::default()
                    },
                    Some(("interrupted", &json!({ "resumed": true }))),
                )?;
            }
            if status == Status::Queued {
                // A crash between moving the integration branch and recording
                // the merge: it is merged already, do not merge it twice.
                let commit = rec.and_then(|r| r.commit_id.clone());
                let merged = match &commit {
                    Some(c) => {
                        repo.is_ancestor(c, &head).await.unwrap_or(false)
                            && rec.and_then(|r| r.start_commit.as_deref()) != Some(c.as_str())
                    }
                    None => false,
                };
                if merged {
                    status = Status::Succeeded;
                    let upd = TaskUpdate {
                        status: Some("succeeded".into()),
                        merged: Some(true),
                        finished_at: Some(now_ms()),
                        ..Default::default()
                    };
                    store.update_task(&run_id, &spec.id, &upd, Some(("merged", &json!({ "changes": true, "integration": head, "found_on_resume": true }))))?;
                } else {
                    merge_queue.push_back(spec.id.clone());
                }
            }
            rts.push(Rt {
                spec: spec.clone(),
                status,
                tx: None,
            });
        }
        let worktrees = opts
            .worktrees
            .clone()
            .unwrap_or_else(|| PathBuf::from(&record.worktrees_dir));
        let watchdog = watchdog(&opts);
        let mut engine = Engine {
            sh: Arc::new(Shared::new(repo, store, paths, run_id, plan, watchdog)),
            _lock: lock,
            opts,
            integration_ref,
            head,
            worktrees,
            tasks: rts,
            merge_queue,
            stop_new: None,
            shutting_down: false,
            removed_worktree: false,
            over_budget: false,
            forced: records
                .iter()
                .filter(|r| r.retry_from > 0)
                .map(|r| r.id.clone())
                .collect(),
        };
        // A failure before the crash still stops new work.
        for i in 0..engine.tasks.len() {
            let s = engine.tasks[i].status;
            if matches!(s, Status::Failed | Status::Stopped | Status::Conflicted) {
                engine.after_failure(i, s);
            }
        }
        Ok(engine)
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
        if record.kind == "service" {
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
        Ok(plan) if super::redactor_for(&plan).redact(&text) == record.plan_source => Ok(plan),
        _ if text == record.plan_source => Ok(stored()?),
        _ => Err(EngineError::Io(format!(
            "the plan {} has changed since run {} started; restore it, or start a new run with `baton run`",
            file.display(),
            record.id
        ))),
    }
}
