//! What every worker of a run shares: the repository, the store, the plan,
//! prices, the secrets to mask, and the way back to the engine.

use super::messages::WorkerNote;
use crate::git::Repo;
use crate::paths::StatePaths;
use crate::plan::Plan;
use crate::process::Watchdog;
use crate::secrets::Redactor;
use crate::store::Store;
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
}

/// Secrets are the values of secret-named variables the agents can see:
/// baton's own environment (which they inherit) and the profiles' env.
pub(crate) fn redactor_for(plan: &Plan) -> Redactor {
    let own: Vec<(String, String)> = std::env::vars().collect();
    Redactor::from_vars(
        own.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain(
            plan.agents
                .values()
                .flat_map(|a| a.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        ),
    )
}

impl Shared {
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
        }
    }
}
