//! An attempt's pass through the run's model gateway (see
//! [`crate::gateway`]): a token of its own for its provider, the key its
//! profile names kept here, the gateway the only way out of a restricted
//! sandbox, and the token forgotten when the attempt ends.

use super::start::Start;
use crate::engine::shared::Shared;
use crate::gateway::{self, Access, Gateway, Wire};
use crate::plan::sandbox::{Network, Sandbox};
use crate::plan::AgentProfile;
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
    fn host(&self) -> String {
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
    if !profile.gateway {
        return Ok(None);
    }
    let gw = sh
        .gateway
        .clone()
        .ok_or("gateway = true, but the run has no model gateway")?;
    let model = profile.model.as_deref();
    let from_baton = |v: &str| std::env::var(v).ok();
    let route = gateway::route(&profile.adapter, model, &profile.env, from_baton)
        .map_err(|e| format!("gateway = true on profile {:?}: {e}", profile.name))?;
    let provider = route.provider;
    let (tx, rx) = unbounded_channel();
    let label = format!("{}/{}/{n}", sh.run_id, st.spec.id);
    let who = gateway::Grantee {
        label,
        provider,
        credential: route.credential,
        account: profile
            .account
            .clone()
            .unwrap_or_else(|| profile.name.clone()),
        upstream: route.upstream,
    };
    let token = gw.grant(who, tx);
    let access = Access {
        base_url: format!("{}/{provider}", gw.url()),
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

/// The sandbox an attempt gets: with its network restricted (off, or an
/// allow-list), the gateway is reachable, and it is the only way to the
/// provider.
pub(super) fn network(spec: &Sandbox, gate: Option<&GatePass>) -> Sandbox {
    let mut spec = spec.clone();
    let Some(g) = gate else {
        return spec;
    };
    spec.network = match spec.network {
        Network::On => Network::On,
        Network::Off => Network::Allow(vec![g.host()]),
        Network::Allow(mut list) => {
            list.push(g.host());
            Network::Allow(list)
        }
    };
    spec
}
