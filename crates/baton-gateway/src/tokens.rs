//! The tokens the gateway honours: one per running attempt, each with the
//! provider it may reach, the key its requests carry there, where what
//! they do is told, and whether it may still spend.

use baton_core::gateway::{Credential, Provider, Wire};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::mpsc::UnboundedSender;

#[derive(Clone)]
pub struct Grant {
    /// run/task/attempt, for the log.
    pub label: String,
    pub provider: Provider,
    pub credential: Credential,
    /// Where its requests go, when its profile says (else the provider's).
    pub upstream: Option<baton_core::gateway::Upstream>,
    /// The account whose limits its requests share.
    pub account: std::sync::Arc<crate::account::Account>,
    /// Its requests in flight at once, at most [`MAX_IN_FLIGHT`].
    pub in_flight: std::sync::Arc<tokio::sync::Semaphore>,
    pub sink: UnboundedSender<Wire>,
    /// Why its requests are refused now, if they are.
    pub refused: Option<String>,
}

/// An agent's requests at once: its CLI's own (a turn, a title, a sub-agent
/// or two), not a flood that would hold baton's memory.
pub const MAX_IN_FLIGHT: usize = 16;

#[derive(Default)]
pub struct Tokens(Mutex<HashMap<String, Grant>>);

impl Tokens {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Grant>> {
        // A panic elsewhere while holding it leaves a map still worth reading.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add(&self, token: String, grant: Grant) {
        self.map().insert(token, grant);
    }

    pub fn get(&self, token: &str) -> Option<Grant> {
        self.map().get(token).cloned()
    }

    pub fn refuse(&self, token: &str, why: &str) {
        if let Some(g) = self.map().get_mut(token) {
            g.refused = Some(why.to_string());
        }
    }

    pub fn remove(&self, token: &str) {
        self.map().remove(token);
    }
}
