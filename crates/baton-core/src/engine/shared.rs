//! What every worker of a run shares: the repository, the store, the plan,
//! prices, the secrets to mask, and the way back to the engine.

use crate::engine::messages::WorkerNote;
use crate::git::Repo;
use crate::paths::StatePaths;
use crate::payload::Payload;
use crate::plan::Plan;
use crate::process::Watchdog;
use crate::secrets::Redactor;
use crate::store::{Store, TaskUpdate};

use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

pub(crate) struct Shared {
    pub repo: Repo,
    pub store: Arc<Store>,
    pub paths: StatePaths,
    pub run_id: String,
    pub plan: Arc<Plan>,
    pub watchdog: Option<Watchdog>,
    pub prices: Arc<crate::adapter::Prices>,
    pub redactor: Arc<Redactor>,
    /// Where workers report what they spend and how they ended.
    pub notes: UnboundedSender<WorkerNote>,
    /// Tasks making their worktrees now: the pool's refill waits for them
    /// (both take git's worktree lock and the disk, and a task comes first).
    pub starting_tasks: std::sync::atomic::AtomicUsize,
    /// baton's own binary: a lead task's agent gets `baton mcp` from it.
    pub baton: Option<String>,
    /// The remote executors' drivers the binary registered.
    pub drivers: &'static [&'static crate::executor::Driver],
    /// Questions whose asker (a script's `baton ask`) waits on its door
    /// now: their answers are the door's to hand over.
    pub live_askers: Arc<std::sync::Mutex<std::collections::HashSet<i64>>>,
    /// The run's model gateway, when a profile goes through it.
    pub gateway: Option<Arc<dyn crate::gateway::Gateway>>,
    /// The keys the plan's key sources gave, read once as the run started
    /// (a key command may ask a person, a password manager, or be slow).
    pub keys: Arc<std::collections::HashMap<crate::gateway::KeySource, String>>,
    /// The container engine and image of `sandbox = "container"`
    /// profiles, found (and built) by the first attempt that needs them.
    pub containers: tokio::sync::OnceCell<Arc<crate::container::Ready>>,
    /// The container engine, found once (containers and services).
    pub engine: tokio::sync::OnceCell<crate::container::Engine>,
    /// The SSH executor's hosts: their slots taken, the ones lost lately.
    pub hosts: Arc<crate::engine::task::executor::hosts::HostBoard>,
}

/// Secrets are the values of secret-named variables the agents can see:
/// baton's own environment (which they inherit) and the profiles' env.
pub(crate) fn redactor_for(plan: &Plan) -> Redactor {
    let own: Vec<(String, String)> = std::env::vars().collect();
    Redactor::from_vars(
        own.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain(
            plan.agents
                .values()
                .flat_map(|a| a.env.iter())
                .chain(plan.user.iter().flat_map(|u| u.env.iter()))
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .chain(
                    (plan.workspace.services.iter().flat_map(|s| s.env.iter()))
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                ),
        ),
    )
}

impl Shared {
    /// Runs `f` with the store and this run's id off the async threads.
    pub async fn db<T, F>(&self, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce(&Store, &str) -> T + Send + 'static,
    {
        let run = self.run_id.clone();
        self.store.call(move |s| f(s, &run)).await
    }

    /// A store write the run goes on without if it fails (an activity, a
    /// warning, a pid): never dropped in silence, but said in the log with
    /// what it was for.
    pub async fn write<T, F>(&self, what: &str, f: F)
    where
        T: Send + 'static,
        F: FnOnce(&Store, &str) -> Result<T, crate::store::StoreError> + Send + 'static,
    {
        if let Err(e) = self.db(f).await {
            tracing::warn!("run {}: cannot record {what}: {e}", self.run_id);
        }
    }

    /// Appends an event of this run; a failure to record it is logged.
    pub async fn event(&self, task: Option<&str>, attempt: Option<u32>, payload: Payload) {
        let task = task.map(str::to_string);
        let kind = payload.kind();
        let res = self
            .db(move |s, run| s.event(run, task.as_deref(), attempt, payload))
            .await;
        if let Err(e) = res {
            tracing::error!("cannot record {kind} in run {}: {e}", self.run_id);
        }
    }

    /// Updates a task's row and records why, in one transaction; a failure
    /// to record it is logged.
    pub async fn update_task(&self, task: &str, update: TaskUpdate, event: Option<Payload>) {
        let id = task.to_string();
        let res = self
            .db(move |s, run| s.update_task(run, &id, &update, event))
            .await;
        if let Err(e) = res {
            tracing::error!("cannot record task {task} of run {}: {e}", self.run_id);
        }
    }

    pub fn new(
        repo: Repo,
        store: Arc<Store>,
        paths: StatePaths,
        run_id: String,
        plan: Plan,
        watchdog: Option<Watchdog>,
        notes: UnboundedSender<WorkerNote>,
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
            notes,
            starting_tasks: Default::default(),
            baton: None,
            drivers: &[],
            live_askers: Default::default(),
            gateway: None,
            keys: Default::default(),
            containers: Default::default(),
            engine: Default::default(),
            hosts: Default::default(),
        }
    }

    /// The engine and image of the run's containers: found, built or
    /// pulled once; an error is tried again by the next attempt.
    pub async fn containers(&self) -> Result<Arc<crate::container::Ready>, String> {
        let engine = self.engine().await?;
        self.containers
            .get_or_try_init(|| async {
                let ready =
                    crate::container::Ready::prepare(engine, &self.plan.container, &self.repo.root)
                        .await?;
                Ok::<_, String>(Arc::new(ready))
            })
            .await
            .cloned()
    }

    /// The container engine the plan asks for (or the first installed).
    pub async fn engine(&self) -> Result<crate::container::Engine, String> {
        self.engine
            .get_or_try_init(|| crate::container::runtime::locate(self.plan.container.runtime))
            .await
            .cloned()
    }
}
