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
pub struct Tokens(Mutex<Map>);

#[derive(Default)]
struct Map {
    grants: HashMap<String, Grant>,
    /// Earlier tokens honoured as a token is (see `Gateway::honour`).
    aliases: HashMap<String, Vec<String>>,
}

impl Tokens {
    fn map(&self) -> std::sync::MutexGuard<'_, Map> {
        // A panic elsewhere while holding it leaves a map still worth reading.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add(&self, token: String, grant: Grant) {
        self.map().grants.insert(token, grant);
    }

    /// `earlier` is honoured as `token`, sharing its grant.
    pub fn alias(&self, token: &str, earlier: &str) {
        let mut m = self.map();
        let Some(g) = m.grants.get(token).cloned() else {
            return;
        };
        if earlier == token || m.grants.contains_key(earlier) {
            return;
        }
        m.grants.insert(earlier.to_string(), g);
        let list = m.aliases.entry(token.to_string()).or_default();
        list.push(earlier.to_string());
    }

    pub fn get(&self, token: &str) -> Option<Grant> {
        self.map().grants.get(token).cloned()
    }

    pub fn refuse(&self, token: &str, why: &str) {
        let mut m = self.map();
        let mut all = m.aliases.get(token).cloned().unwrap_or_default();
        all.push(token.to_string());
        for t in all {
            if let Some(g) = m.grants.get_mut(&t) {
                g.refused = Some(why.to_string());
            }
        }
    }

    pub fn remove(&self, token: &str) {
        let mut m = self.map();
        for t in m.aliases.remove(token).unwrap_or_default() {
            m.grants.remove(&t);
        }
        m.grants.remove(token);
    }
}
