//! Creating a run, and picking one up again after a crash or Ctrl-C.

use super::handle::EngineHandle;
use super::repo_watch::RepoWatch;
use super::Engine;
use super::{Spending, Wiring};
use crate::clock::{new_run_id, now_ms};
use crate::engine::board::{Board, Rules};
use crate::engine::desk::Desks;
use crate::engine::merge::lane::MergeLane;
use crate::engine::merge::queue::MergeQueue;
use crate::engine::shared::Shared;
use crate::engine::EngineError;
use crate::git::Repo;
use crate::lock::RunLock;
use crate::model::{RunKind, RunStatus};
use crate::paths::{integration_branch, task_branch, StatePaths};
use crate::payload::Payload;
use crate::plan::Plan;
use crate::process::Watchdog;
use crate::store::{NewTask, RunRecord, Store};
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
    /// The remote executors the binary drives (see
    /// [`crate::executor::Driver`]); at its end the run sweeps what it left
    /// on the one it used.
    pub drivers: &'static [&'static crate::executor::Driver],
    /// The branch the run's work is offered to (a pull request's base),
    /// when `run.base` names a commit fetched from it rather than the
    /// branch itself (a tracker item's run starts from the remote's tip).
    pub base_branch: Option<String>,
    /// The model gateway the binary has (started for a run whose profiles
    /// use it; see [`crate::gateway`]).
    pub gateway: Option<&'static crate::gateway::GatewayKind>,
    /// The user config new plans are composed with (read by the binary):
    /// a resumed run's plan file is composed with it again and must come
    /// out as the run started.
    pub user: Option<crate::plan::UserConfig>,
}

/// A run's gateway (if any profile goes through it), the notices about
/// profiles that could but do not, and the keys its key sources gave.
type Started = (
    Option<Arc<dyn crate::gateway::Gateway>>,
    Vec<String>,
    HashMap<crate::gateway::KeySource, String>,
);

/// The run's model gateway, if a profile goes through it; a notice for
/// each profile that could but uses its CLI's own login instead; and the
/// keys of the plan's key sources, read now: one that gives none stops the
/// run before anything runs, and every key read is masked.
async fn start_gateway(
    plan: &Plan,
    opts: &RunOptions,
    kept: &std::path::Path,
    repo: &std::path::Path,
) -> Result<Started, EngineError> {
    use crate::gateway::{decide, Decision, KeyFrom};
    let from_baton = |v: &str| std::env::var(v).ok();
    let mut through = false;
    let mut notices = Vec::new();
    let mut keys = HashMap::new();
    for p in plan.agents.values() {
        let route = match decide(p, &plan.gateway, from_baton) {
            Decision::Through(r) => r,
            Decision::Login(notice) => {
                notices.push(notice);
                continue;
            }
            Decision::Direct => continue,
            Decision::Broken(why) => return Err(EngineError::Io(why)),
        };
        through = true;
        match route.key {
            KeyFrom::Source { source, owner } if !keys.contains_key(&source) => {
                let read = crate::gateway::read_key(&source, repo).await;
                let key = read.map_err(|e| {
                    let name = &p.name;
                    let why = format!("the key of {owner} for profile {name:?}: {e} (`baton doctor` shows more)");
                    EngineError::Io(why)
                })?;
                keys.insert(source, key);
            }
            // Codex and Gemini CLI may be logged in with a subscription,
            // which an exported key now passes by: say so.
            KeyFrom::Given {
                from_profile: false,
                ..
            } if matches!(p.adapter.as_str(), "codex" | "gemini") => notices.push(format!(
                "profile {:?}: behind the model gateway with the {} key of baton's environment; if its CLI is logged in with a subscription instead, set gateway = false",
                p.name, route.provider
            )),
            _ => {}
        }
    }
    let on = |p: &crate::plan::AgentProfile| p.gateway == crate::plan::GatewayUse::On;
    let kind = match opts.gateway {
        Some(kind) if through => kind,
        None if plan.agents.values().any(on) => {
            let why =
                "a profile has gateway = true, but this baton was built without the model gateway";
            return Err(EngineError::Io(why.into()));
        }
        _ => return Ok((None, notices, HashMap::new())),
    };
    let gw = listen_as_before(kind, &plan.gateway, kept).await?;
    tracing::info!("the model gateway listens at {}", gw.url());
    Ok((Some(gw), notices, keys))
}

/// Starts the gateway where this run's gateway listened before (`kept`
/// says), when the plan leaves its port free: agents on a cluster that
/// an earlier baton started (adopted Jobs) reach it at the same address.
/// Else (or that port is taken) where the plan says; `kept` then says
/// where it listens.
async fn listen_as_before(
    kind: &crate::gateway::GatewayKind,
    settings: &crate::gateway::GatewaySettings,
    kept: &std::path::Path,
) -> Result<Arc<dyn crate::gateway::Gateway>, EngineError> {
    let planned: Option<std::net::SocketAddr> = settings.listen.parse().ok();
    let before = tokio::fs::read_to_string(kept).await.ok();
    let before: Option<std::net::SocketAddr> = before.and_then(|t| t.trim().parse().ok());
    if let (Some(p), Some(b)) = (planned, before) {
        if p.port() == 0 && p.ip() == b.ip() {
            let mut same = settings.clone();
            same.listen = b.to_string();
            if let Ok(gw) = (kind.start)(same).await {
                return Ok(gw);
            }
        }
    }
    let gw = (kind.start)(settings.clone())
        .await
        .map_err(EngineError::Io)?;
    let port = gw.url().rsplit(':').next().unwrap_or_default().to_string();
    if let Some(p) = planned {
        let at = format!("{}:{port}", p.ip());
        if let Err(e) = tokio::fs::write(kept, at).await {
            tracing::warn!(
                "cannot keep where the gateway listens ({}): {e}",
                kept.display()
            );
        }
    }
    Ok(gw)
}

pub(super) async fn open_store(
    paths: &StatePaths,
    opts: &RunOptions,
) -> Result<Arc<Store>, EngineError> {
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

pub(super) fn lock_run(paths: &StatePaths, run: &str) -> Result<RunLock, EngineError> {
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
pub(super) struct Parts {
    pub(super) repo: Repo,
    pub(super) store: Arc<Store>,
    pub(super) paths: StatePaths,
    pub(super) run_id: String,
    pub(super) plan: Plan,
    pub(super) lock: RunLock,
    pub(super) opts: RunOptions,
    pub(super) worktrees: PathBuf,
    pub(super) integration_ref: String,
    pub(super) head: String,
}

impl Parts {
    /// The engine, its board holding every task of the plan as pending.
    pub(super) async fn assemble(self) -> Result<Engine, EngineError> {
        if self.plan.pull.follow {
            // The forge's token is baton's from the run's first agent on,
            // not only once its pull request opens.
            crate::process::withhold(&self.plan.pull.secret_vars());
        }
        let kept = self.paths.run_dir(&self.run_id).join("gateway.addr");
        let (gateway, notices, keys) =
            start_gateway(&self.plan, &self.opts, &kept, &self.repo.root).await?;
        // Keys baton read for itself are masked like the agents' own.
        let keys_read = keys.values().map(String::as_str);
        let redactor = crate::engine::redactor_for(&self.plan).with_values(keys_read);
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
        let prints = redactor.fingerprints(&run);
        let spent_before = self
            .store
            .call(move |s| {
                s.add_secret_prints(&run, &prints)?;
                s.run_cost(&run)
            })
            .await?;
        let spent_before = spent_before.unwrap_or(0.0);
        let rules = rules(&self.run_id, &self.plan, &self.opts);
        let board = Board::new(rules, crate::plan::race::expand(&self.plan.tasks));
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
        sh.drivers = self.opts.drivers;
        sh.gateway = gateway;
        sh.keys = Arc::new(keys);
        sh.redactor = Arc::new(redactor);
        sh.store.set_redactor(sh.redactor.clone());
        for notice in notices {
            sh.event(None, None, Payload::GatewayNotice { notice })
                .await;
        }
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
            asking: Default::default(),
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
            base_branch: match &opts.base_branch {
                Some(b) => Some(b.clone()),
                None => repo.branch_of(&plan.run.base).await,
            },
        };
        let on_board = crate::plan::race::expand(&plan.tasks);
        let tasks: Vec<NewTask> = on_board.iter().map(|t| new_task(&run_id, t)).collect();
        let data = Payload::RunStarted {
            plan: record.plan_path.clone(),
            base: base_commit.clone(),
            tasks: tasks.len(),
        };
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
        store.call(move |s| s.event(&id, None, None, data)).await?;
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
}

/// The run's settings the board's rules depend on.
fn rules(run: &str, plan: &Plan, opts: &RunOptions) -> Rules {
    let agents = plan.agents.values();
    Rules {
        run: run.to_string(),
        max_parallel: plan.run.max_parallel,
        service: opts.service,
        auto_approve: opts.auto_approve,
        overlap_allowed: plan.run.overlap_allowed,
        profile_limits: agents
            .clone()
            .filter_map(|a| Some((a.name.clone(), a.max_parallel?)))
            .collect(),
        accounts: agents
            .filter_map(|a| Some((a.name.clone(), a.account.clone()?)))
            .collect(),
        fallbacks: fallbacks(plan),
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

fn new_task(run: &str, t: &crate::plan::TaskSpec) -> NewTask {
    NewTask {
        id: t.id.clone(),
        branch: task_branch(run, &t.id),
        agent: t.agent.clone(),
        needs: t.needs.clone(),
    }
}
