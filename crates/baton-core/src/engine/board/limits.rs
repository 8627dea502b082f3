//! Provider limits, owned by the board alone: which profiles (or the
//! accounts they share) the provider limits and until when, which ready
//! tasks wait for them, and which fallback profile takes a task over when
//! its own cannot go on. Workers report limits; the board decides.

use super::slot::{Standing, Wait};
use super::{waits, Action, Board};
use crate::model::Activity;

/// A limit on a profile (or account), until `until_ms`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Limit {
    pub until_ms: i64,
    /// Why its tasks wait. None: its tasks may start, but no task falls
    /// back to it meanwhile (its quota ran out for a task that moved on).
    pub why: Option<String>,
}

impl Board {
    /// What a profile's limits are held under: its account, else itself.
    pub fn limit_key<'a>(&'a self, profile: &'a str) -> &'a str {
        self.rules
            .accounts
            .get(profile)
            .map_or(profile, String::as_str)
    }

    /// The provider limits `profile` (and its account's other profiles, see
    /// [`Board::limit_key`]) until `until_ms`. With `why`, no task of it starts meanwhile.
    pub fn limit(&mut self, profile: &str, until_ms: i64, why: Option<String>) {
        let key = self.limit_key(profile).to_string();
        let held = self.limited.entry(key).or_insert(Limit {
            until_ms,
            why: None,
        });
        held.until_ms = held.until_ms.max(until_ms);
        if why.is_some() {
            held.why = why;
        }
    }

    /// Limits that have passed by `now_ms` are lifted: their waiting tasks
    /// may start.
    pub fn release_limits(&mut self, now_ms: i64) -> Vec<Action> {
        let over: Vec<String> = self
            .limited
            .iter()
            .filter(|(_, l)| l.until_ms <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &over {
            self.limited.remove(key);
        }
        self.stop_waiting(Wait::Limit, |b, t| {
            over.iter().any(|k| k == b.limit_key(&t.spec.agent))
        })
    }

    /// Why tasks of `profile` may not start now, if they may not.
    pub(super) fn limited_why(&self, profile: &str) -> Option<&str> {
        let held = self.limited.get(self.limit_key(profile))?;
        held.why.as_deref()
    }

    /// Tells ready task `i` once that it waits for its profile's limit;
    /// true when it does.
    pub(super) fn waits_for_limit(&mut self, i: usize, out: &mut Vec<Action>) -> bool {
        let Some(why) = self.limited_why(&self.tasks[i].spec.agent) else {
            return false;
        };
        if self.tasks[i].waits() != Some(Wait::Limit) {
            out.push(waits(i, Activity::WaitingRateLimit, "rate_limit", why));
            self.tasks[i].standing = Standing::Pending {
                waits: Some(Wait::Limit),
            };
        }
        true
    }

    /// Task `i`'s profile `from` cannot go on (the provider's limit lasts
    /// too long): the fallback that takes it over is the first of `from`'s
    /// that has not worked on it (`worked`), preferring one not limited at
    /// `now_ms`. None: there is none.
    pub fn fallback(&self, from: &str, worked: &[String], now_ms: i64) -> Option<String> {
        let fresh: Vec<&String> = self
            .rules
            .fallbacks
            .get(from)
            .into_iter()
            .flatten()
            .filter(|f| !worked.contains(f))
            .collect();
        let free = |f: &&&String| {
            let key = self.limit_key(f);
            self.limited.get(key).is_none_or(|l| l.until_ms <= now_ms)
        };
        fresh
            .iter()
            .find(free)
            .or(fresh.first())
            .map(|f| f.to_string())
    }
}
