//! Taking over a run after a crash: what a crashed baton left running is
//! reaped, the work its attempts left is committed, and each task is taken
//! up where it stood (a merge that landed but was not recorded is not done
//! twice).

use super::setup::{lock_run, open_store, Parts, RunOptions};
use super::Engine;
use crate::clock::now_ms;
use crate::engine::merge::lane::Line;
use crate::engine::EngineError;
use crate::git::Repo;
use crate::model::{AttemptStatus, RunKind, RunStatus, TaskStatus};
use crate::paths::StatePaths;
use crate::payload::Payload;
use crate::plan::Plan;
use crate::process::{self};
use crate::store::{RunRecord, Store, TaskUpdate};
use std::collections::HashMap;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

impl Engine {
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
        let plan = plan_with_queued(&repo, &store, &record, opts.user.as_ref()).await?;
        reap_orphans(&run_id).await;
        if crate::plan::container::any_walled(&plan.agents) || !plan.workspace.services.is_empty() {
            sweep_containers(&plan, &repo.common_dir, &run_id).await;
        }
        let integration_ref = format!("refs/heads/{}", record.integration_branch);
        let head = repo.ref_commit(&integration_ref).await?.ok_or_else(|| {
            EngineError::Io(format!(
                "the integration branch {} no longer exists; the run cannot continue",
                record.integration_branch
            ))
        })?;
        let taken = Taken::up(&repo, &store, &run_id, &plan, &head).await?;
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
        engine.restore(taken);
        engine.restore_questions().await;
        Ok(engine)
    }

    /// The board, the desks and the merge lane as the tasks were taken up.
    fn restore(&mut self, taken: Taken) {
        let Taken {
            statuses,
            forced,
            desk_of,
            lines,
            to_merge,
        } = taken;
        self.board.restore(&statuses, &forced);
        // Desks of tasks that ended well before the crash serve later tasks
        // (and are removed at the end), as if this process had released them.
        // A desk another task took before the crash (recorded as its own)
        // is that task's, not a spare.
        let claimed: HashSet<&PathBuf> = statuses
            .iter()
            .filter(|(_, s)| **s != TaskStatus::Succeeded)
            .filter_map(|(id, _)| desk_of.get(id))
            .collect();
        for (id, status) in &statuses {
            let done = *status == TaskStatus::Succeeded;
            match desk_of.get(id) {
                Some(wt) if done && claimed.contains(wt) => continue,
                // Where a task waiting to merge gives its desk back later.
                Some(wt) => self.desks.assign(id, wt.clone()),
                None => {}
            }
            if done {
                self.desks.release(&self.sh.run_id, id);
            }
        }
        for (i, line) in lines {
            self.lane.started(i, line);
        }
        for i in to_merge {
            self.lane.push(i);
        }
    }
}

/// What the run's tasks are once taken up after a crash.
struct Taken {
    statuses: HashMap<String, TaskStatus>,
    /// Tasks a person asked to retry.
    forced: Vec<String>,
    /// Where each task's desk is (the pool's desks are not at the usual place).
    desk_of: HashMap<String, PathBuf>,
    /// What the merge lane knows of each task's branch.
    lines: Vec<(usize, Line)>,
    /// Tasks waiting to merge, in plan order.
    to_merge: Vec<usize>,
}

impl Taken {
    /// Marks the run resumed and takes each task of `plan` up (see
    /// [`take_up`]).
    async fn up(
        repo: &Repo,
        store: &Arc<Store>,
        run_id: &str,
        plan: &Plan,
        head: &str,
    ) -> Result<Taken, EngineError> {
        let id = run_id.to_string();
        let records = store
            .call(move |s| {
                let pid = std::process::id();
                s.set_run_status(&id, RunStatus::Running, false, Some(pid))?;
                s.event(&id, None, None, Payload::RunResumed { pid })?;
                s.tasks(&id)
            })
            .await?;
        let mut taken = Taken {
            statuses: HashMap::new(),
            forced: records
                .iter()
                .filter(|r| r.retry_from > 0)
                .map(|r| r.id.clone())
                .collect(),
            desk_of: records
                .iter()
                .filter_map(|r| Some((r.id.clone(), r.worktree.clone()?.into())))
                .collect(),
            lines: Vec::new(),
            to_merge: Vec::new(),
        };
        for (i, spec) in crate::plan::race::expand(&plan.tasks).iter().enumerate() {
            let Some(rec) = records.iter().find(|r| r.id == spec.id) else {
                continue;
            };
            // What the merge lane knows of the branch, as the record had it
            // (taking a dead resolver up puts the task's own commit back).
            taken.lines.push((i, line_of(rec)));
            let status = take_up(repo, store, run_id, rec, head).await?;
            if status == TaskStatus::Merging {
                taken.to_merge.push(i);
            }
            taken.statuses.insert(spec.id.clone(), status);
        }
        Ok(taken)
    }
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

/// A crashed baton's agents may still run (if its watchdog died too).
async fn reap_orphans(run: &str) {
    for pgid in process::orphan_groups(run) {
        tracing::info!("reaping process group {pgid} left by run {run}");
        process::signal_group(pgid, libc::SIGTERM);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        process::signal_group(pgid, libc::SIGKILL);
    }
}

/// Removes the containers a crash of this run left (found by its label).
async fn sweep_containers(plan: &Plan, common_dir: &std::path::Path, run: &str) {
    let repo = crate::container::repo_key(common_dir);
    let swept = match crate::container::runtime::locate(plan.container.runtime).await {
        Ok(engine) => crate::container::sweep(&engine, &repo, run).await,
        Err(e) => Err(e),
    };
    match swept {
        Ok(0) => {}
        Ok(n) => tracing::info!("removed {n} containers left by run {run}"),
        Err(e) => tracing::warn!("cannot sweep the containers of run {run}: {e}"),
    }
}

/// The plan a resumed run goes on with: its plan, and the tasks queued
/// while it ran.
async fn plan_with_queued(
    repo: &Repo,
    store: &Arc<Store>,
    record: &RunRecord,
    user: Option<&crate::plan::UserConfig>,
) -> Result<Plan, EngineError> {
    let mut plan = plan_for_resume(repo, record, user)?;
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
        TaskStatus::Running if still_away(repo, run, rec) => {
            // Its attempt runs on in a pod or on a host: the same attempt
            // is taken up again, and its follower adopts it.
            hand_over(store, run, rec).await?;
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
            let data = Payload::Merged {
                changes: true,
                integration: Some(head.to_string()),
                found_on_resume: true,
            };
            let (run, task) = (run.to_string(), rec.id.clone());
            store
                .call(move |s| s.update_task(&run, &task, &upd, Some(data)))
                .await?;
            Ok(TaskStatus::Succeeded)
        }
        other => Ok(other),
    }
}

/// Whether the task's latest attempt went to a remote executor and its end
/// was never collected: it may still run there (baton's death does not
/// end a Job or an attempt on a host).
fn still_away(repo: &Repo, run: &str, rec: &crate::store::TaskRecord) -> bool {
    if rec.attempts == 0 {
        return false;
    }
    let log = StatePaths::new(repo.state_dir()).attempt_log(run, &rec.id, rec.attempts);
    log.with_extension("job.json").exists() && !log.with_extension("end.json").exists()
}

/// A task whose remote attempt outlived the old process: it waits to run,
/// and its next attempt is that one again (its number is not used up), so
/// it is shown as the attempt it is.
async fn hand_over(
    store: &Arc<Store>,
    run: &str,
    rec: &crate::store::TaskRecord,
) -> Result<(), EngineError> {
    let (r, task, n) = (run.to_string(), rec.id.clone(), rec.attempts);
    store
        .call(move |s| back_to_pending(s, &r, &task, Some(n - 1)))
        .await?;
    Ok(())
}

/// The task waits to run again (with `attempts` so far, if they change),
/// and says it was interrupted and taken up.
fn back_to_pending(
    s: &Store,
    run: &str,
    task: &str,
    attempts: Option<u32>,
) -> crate::store::Result<()> {
    let upd = TaskUpdate {
        status: Some(TaskStatus::Pending),
        attempts,
        ..Default::default()
    };
    let data = Payload::Interrupted {
        reason: None,
        resumed: true,
    };
    s.update_task(run, task, &upd, Some(data))
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
            back_to_pending(s, &r, &task, None)
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
fn plan_for_resume(
    repo: &Repo,
    record: &RunRecord,
    user: Option<&crate::plan::UserConfig>,
) -> Result<Plan, EngineError> {
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
    let text = crate::plan::compose(user, &text);
    let same = |text: &str| match parse(text) {
        Ok(plan) if crate::engine::redactor_for(&plan).redact(text) == record.plan_source => {
            Some(plan)
        }
        _ => None,
    };
    if let Some(plan) = same(&text) {
        return Ok(plan);
    }
    if text == record.plan_source {
        return Ok(stored()?);
    }
    // The plan is as it was but the user config changed (or came since:
    // the stored plan has no head): the run goes on with the profiles it
    // started with, when the store has them whole.
    let (head, _) = crate::plan::user_parts(&record.plan_source);
    if !head.contains(crate::secrets::MASK) {
        let kept = format!("{head}{}", crate::plan::own_text(&text));
        if let Some(plan) = same(&kept) {
            tracing::warn!(
                "the user config has changed since run {} started; it goes on with the profiles it started with",
                record.id
            );
            return Ok(plan);
        }
    }
    Err(EngineError::Io(format!(
        "the plan {} (or the user config it was read with) has changed since run {} started; restore it, or start a new run with `baton run`",
        file.display(),
        record.id
    )))
}
