//! An attempt's pass through the run's model gateway (see
//! [`crate::gateway`]): a token of its own for its provider, the key its
//! profile names kept here, the gateway the only way out of a restricted
//! sandbox, and the token forgotten when the attempt ends.

use super::start::Start;
use crate::engine::shared::Shared;
use crate::gateway::{self, Access, Credential, Decision, Gateway, KeyFrom, KeySource, Wire};
use crate::plan::{AgentProfile, Executor, GatewayUse};
use std::ffi::OsString;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

pub(crate) struct GatePass {
    pub gateway: Arc<dyn Gateway>,
    pub access: Access,
    /// The agent's variables that point its CLI at the gateway.
    pub env: Vec<(OsString, OsString)>,
    /// What the gateway tells of the attempt's requests (taken by the
    /// attempt's watch).
    pub wire: Mutex<Option<UnboundedReceiver<Wire>>>,
}

impl GatePass {
    /// What the gateway tells of the attempt's requests, once.
    pub fn take_wire(&self) -> Option<UnboundedReceiver<Wire>> {
        self.wire.lock().ok()?.take()
    }

    /// `host:port` of the gateway, as a sandbox's allow-list names it.
    pub(super) fn host(&self) -> String {
        let url = self.gateway.url();
        url.trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string()
    }
}

impl Drop for GatePass {
    fn drop(&mut self) {
        self.gateway.revoke(&self.access.token);
    }
}

/// The pass of attempt `n`, if its profile goes through the gateway.
pub(super) fn pass(
    sh: &Shared,
    st: &Start,
    profile: &AgentProfile,
    n: u32,
) -> Result<Option<GatePass>, String> {
    let from_baton = |v: &str| std::env::var(v).ok();
    let route = match gateway::decide(profile, &sh.plan.gateway, from_baton) {
        Decision::Through(r) => r,
        Decision::Direct | Decision::Login(_) => return Ok(None),
        Decision::Broken(why) => return Err(why),
    };
    let Some(gw) = sh.gateway.clone() else {
        return match profile.gateway {
            GatewayUse::On => Err("gateway = true, but the run has no model gateway".into()),
            // A baton built without it (a library's engine): as before.
            _ => Ok(None),
        };
    };
    let model = profile.model.as_deref();
    let credential = match route.key {
        KeyFrom::Given { credential, .. } => credential,
        // Read as the run started (every profile's route was decided then).
        KeyFrom::Source { source, owner } => match sh.keys.get(&source) {
            Some(key) => Credential {
                key: key.clone(),
                bearer: false,
            },
            None => {
                let name = &profile.name;
                return Err(format!(
                    "the key of {owner} for profile {name:?} was not read as the run started"
                ));
            }
        },
    };
    let provider = route.provider;
    let (tx, rx) = unbounded_channel();
    let label = format!("{}/{}/{n}", sh.run_id, st.spec.id);
    let who = gateway::Grantee {
        label,
        provider,
        credential,
        account: profile.account_name().to_string(),
        upstream: route.upstream,
    };
    // An agent on a cluster reaches it by the name the plan gives; one on
    // an SSH host through a tunnel to the same port on its own loopback.
    let url = match &profile.executor {
        Executor::Local => gw.url(),
        Executor::Remote(r) if matches!(**r, crate::plan::Remote::Ssh(_)) => gw.url(),
        Executor::Remote(_) => sh.plan.gateway.url_for_pods(&gw.url())?,
    };
    let token = gw.grant(who, tx);
    let access = Access {
        base_url: format!("{url}/{provider}"),
        token,
    };
    let env = gateway::agent_env(&profile.adapter, provider, model, &access, &profile.env)
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    Ok(Some(GatePass {
        access,
        env,
        gateway: gw,
        wire: Mutex::new(Some(rx)),
    }))
}

/// Every `key_file` of the plan, as a path a sandbox hides.
pub(crate) fn key_files(sh: &Shared) -> Vec<String> {
    let g = &sh.plan.gateway;
    g.account_keys
        .values()
        .chain(g.provider_keys.values())
        .filter_map(|k| match k {
            KeySource::File(f) => Some(gateway::file_path(f, &sh.repo.root)),
            KeySource::Command(_) => None,
        })
        .map(|p| p.display().to_string())
        .collect()
}

/// The longest the end of an attempt waits for the gateway to tell of
/// answers its agent had (an answer whose reader went away ends at once).
const DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Counts what the gateway still tells once the agent ended: until every
/// answer in flight has told (the channel closes) or [`DRAIN`] passed.
pub(super) async fn drain(rx: &mut UnboundedReceiver<Wire>, watch: &mut super::watch::Watch<'_>) {
    let until = tokio::time::Instant::now() + DRAIN;
    while let Ok(Some(w)) = tokio::time::timeout_at(until, rx.recv()).await {
        // The attempt is over: a budget crossed now is the next one's to see.
        let _ = watch.wire(w).await;
    }
}
