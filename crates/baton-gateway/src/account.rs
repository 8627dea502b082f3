//! One provider account's limits, kept for every agent on it at once: a
//! request waits here rather than run into the provider's limit. After a
//! 429 or 529 the whole account holds until the provider said to come back;
//! with `rpm` requests start at most that often (evenly spaced); with `tpm`
//! no request starts while the last minute's tokens reach it; with
//! `concurrency` at most that many are in flight.

use baton_core::gateway::AccountLimits;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How long an account holds after a limit that did not say how long.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(5);
const MINUTE: Duration = Duration::from_secs(60);

pub struct Account {
    limits: AccountLimits,
    state: Mutex<State>,
    slots: Option<Arc<Semaphore>>,
}

#[derive(Default)]
struct State {
    /// No request starts before this (a provider's limit).
    held_until: Option<Instant>,
    /// When the next request may start (`rpm`).
    next_start: Option<Instant>,
    /// Tokens answered in the last minute, and when (`tpm`).
    tokens: VecDeque<(Instant, u64)>,
}

/// Why a request waits, in words for the agent's activity and the log.
#[derive(Debug, Clone, PartialEq)]
pub enum Wait {
    Held,
    Rate,
    Tokens,
}

impl Account {
    pub fn new(limits: AccountLimits) -> Account {
        let slots = limits
            .concurrency
            .map(|n| Arc::new(Semaphore::new(n.max(1) as usize)));
        Account {
            limits,
            state: Mutex::new(State::default()),
            slots,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When a request asking now may start, and why it waits if it does;
    /// the start is taken (the next one's is after it).
    pub fn start_at(&self, now: Instant) -> (Instant, Option<Wait>) {
        let mut st = self.state();
        let mut at = now;
        let mut why = None;
        if let Some(h) = st.held_until.filter(|h| *h > at) {
            (at, why) = (h, Some(Wait::Held));
        }
        if let Some(tpm) = self.limits.tpm {
            while st.tokens.front().is_some_and(|(t, _)| *t + MINUTE <= now) {
                st.tokens.pop_front();
            }
            let used: u64 = st.tokens.iter().map(|(_, n)| n).sum();
            if used >= tpm {
                // The minute frees up as its oldest answer ages out.
                if let Some((oldest, _)) = st.tokens.front() {
                    let free = *oldest + MINUTE;
                    if free > at {
                        (at, why) = (free, Some(Wait::Tokens));
                    }
                }
            }
        }
        if let Some(rpm) = self.limits.rpm.filter(|r| *r > 0) {
            let gap = MINUTE / rpm;
            if let Some(next) = st.next_start.filter(|n| *n > at) {
                (at, why) = (next, Some(Wait::Rate));
            }
            st.next_start = Some(at + gap);
        }
        (at, why)
    }

    /// A place among the account's requests in flight, when it limits them.
    pub async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        let slots = self.slots.clone()?;
        slots.acquire_owned().await.ok()
    }

    /// Whether a request would wait for a place now.
    pub fn slots_full(&self) -> bool {
        self.slots
            .as_ref()
            .is_some_and(|s| s.available_permits() == 0)
    }

    /// The provider limited the account: nobody starts until `after`.
    pub fn hold(&self, now: Instant, after: Duration) {
        let mut st = self.state();
        let until = now + after;
        if st.held_until.is_none_or(|h| h < until) {
            st.held_until = Some(until);
        }
    }

    /// An answer used `tokens` (for `tpm`).
    pub fn used(&self, now: Instant, tokens: u64) {
        if self.limits.tpm.is_some() && tokens > 0 {
            self.state().tokens.push_back((now, tokens));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rpm: Option<u32>, tpm: Option<u64>) -> AccountLimits {
        AccountLimits {
            rpm,
            tpm,
            concurrency: None,
        }
    }

    #[test]
    fn requests_of_an_account_start_evenly_spaced_at_its_rpm() {
        let a = Account::new(limits(Some(120), None));
        let t0 = Instant::now();
        assert_eq!(a.start_at(t0), (t0, None));
        let (second, why) = a.start_at(t0);
        assert_eq!(
            (second - t0, why),
            (Duration::from_millis(500), Some(Wait::Rate))
        );
        let (third, _) = a.start_at(t0 + Duration::from_millis(100));
        assert_eq!(third - t0, Duration::from_secs(1));
        // Long after, no wait.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(a.start_at(later), (later, None));
    }

    #[test]
    fn a_limit_holds_the_whole_account_until_it_passes() {
        let a = Account::new(limits(None, None));
        let t0 = Instant::now();
        a.hold(t0, Duration::from_secs(7));
        a.hold(t0, Duration::from_secs(2)); // a shorter one does not shorten it
        let (at, why) = a.start_at(t0 + Duration::from_secs(1));
        assert_eq!((at - t0, why), (Duration::from_secs(7), Some(Wait::Held)));
        let after = t0 + Duration::from_secs(8);
        assert_eq!(a.start_at(after), (after, None));
    }

    #[test]
    fn a_minute_that_used_its_tokens_holds_until_its_oldest_answer_ages_out() {
        let a = Account::new(limits(None, Some(1000)));
        let t0 = Instant::now();
        a.used(t0, 600);
        assert_eq!(a.start_at(t0).1, None);
        a.used(t0 + Duration::from_secs(10), 500);
        let (at, why) = a.start_at(t0 + Duration::from_secs(20));
        assert_eq!((at - t0, why), (MINUTE, Some(Wait::Tokens)));
        let late = t0 + Duration::from_secs(61);
        assert_eq!(a.start_at(late), (late, None), "the first answer aged out");
    }
}
