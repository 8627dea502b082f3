//! A provider that refuses model requests for a while, as a rate limit, an
//! overload or a used-up quota does: the CLIs speaking its API get its
//! error (with a `retry-after` header where given), the others go on.

use std::time::{Duration, Instant};

/// Which provider an outage hits: the API its CLIs speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// Claude Code.
    Anthropic,
    /// Codex (Responses), opencode and aider (Chat Completions).
    OpenAi,
    /// Gemini CLI.
    Gemini,
}

/// Model requests of `api` after the first `after` are answered with
/// `status` and the provider's error body saying `message`, until
/// `requests` of them were refused or `lasts` has passed since the first
/// refusal (neither: for good).
#[derive(Clone, Debug)]
pub struct Outage {
    pub api: Api,
    pub status: u16,
    pub message: String,
    /// The error's type where the provider names one (OpenAI's
    /// `insufficient_quota`); else the status's usual one.
    pub kind: Option<String>,
    pub retry_after: Option<u32>,
    pub after: u32,
    pub requests: Option<u32>,
    pub lasts: Option<Duration>,
}

impl Outage {
    /// HTTP 429 asking for `retry_after` seconds.
    pub fn rate_limit(api: Api, retry_after: u32) -> Outage {
        Outage {
            api,
            status: 429,
            message: "Rate limit reached for requests; please retry after a short wait".into(),
            kind: None,
            retry_after: Some(retry_after),
            after: 0,
            requests: None,
            lasts: None,
        }
    }

    /// The account's credit or quota is used up, in the provider's words.
    pub fn quota(api: Api) -> Outage {
        let (status, message, kind) = match api {
            Api::Anthropic => (400, "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.", None),
            Api::OpenAi => (429, "You exceeded your current quota, please check your plan and billing details.", Some("insufficient_quota")),
            Api::Gemini => (429, "You have exhausted your daily quota on this model.", None),
        };
        Outage {
            api,
            status,
            message: message.into(),
            kind: kind.map(str::to_string),
            retry_after: None,
            after: 0,
            requests: None,
            lasts: None,
        }
    }

    /// Lets the first `n` requests through.
    pub fn after(mut self, n: u32) -> Outage {
        self.after = n;
        self
    }

    /// Refuses only `n` requests.
    pub fn requests(mut self, n: u32) -> Outage {
        self.requests = Some(n);
        self
    }

    /// Ends `d` after the first refusal.
    pub fn lasting(mut self, d: Duration) -> Outage {
        self.lasts = Some(d);
        self
    }
}

/// An outage and what it has done so far.
#[derive(Debug)]
pub(crate) struct State {
    pub outage: Outage,
    seen: u32,
    refused: u32,
    since: Option<Instant>,
}

impl State {
    pub fn new(outage: Outage) -> State {
        State {
            outage,
            seen: 0,
            refused: 0,
            since: None,
        }
    }

    /// Whether this model request of `api` is refused (and counts it).
    pub fn refuses(&mut self, api: Api, now: Instant) -> bool {
        let o = &self.outage;
        if api != o.api {
            return false;
        }
        self.seen += 1;
        if self.seen <= o.after {
            return false;
        }
        let over = o.requests.is_some_and(|n| self.refused >= n)
            || matches!((o.lasts, self.since), (Some(d), Some(t)) if now >= t + d);
        if over {
            return false;
        }
        self.since.get_or_insert(now);
        self.refused += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_starts_after_some_requests_and_ends_by_count_or_time() {
        let t0 = Instant::now();
        let mut s = State::new(Outage::rate_limit(Api::Anthropic, 3).after(1).requests(2));
        let seen: Vec<bool> = (0..5).map(|_| s.refuses(Api::Anthropic, t0)).collect();
        assert_eq!(seen, [false, true, true, false, false]);
        assert!(!s.refuses(Api::OpenAi, t0), "other providers go on");

        let mut s = State::new(Outage::quota(Api::OpenAi).lasting(Duration::from_secs(10)));
        assert!(s.refuses(Api::OpenAi, t0));
        assert!(s.refuses(Api::OpenAi, t0 + Duration::from_secs(9)));
        assert!(!s.refuses(Api::OpenAi, t0 + Duration::from_secs(10)));
    }
}
