//! Rate limits, overload and exhausted quotas, as the agent CLIs report
//! them: one vocabulary (`rate_limited` events, and an attempt that ended
//! on one), whatever the vendor's words.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// Too many requests for now (HTTP 429): it passes.
    RateLimit,
    /// The provider is overloaded (HTTP 529, 503): it passes.
    Overloaded,
    /// The account's quota or credit is used up: it passes only at a reset,
    /// if ever; another vendor may take over.
    Quota,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limit {
    pub kind: LimitKind,
    /// How long the provider asked to wait, where it said so.
    pub retry_after_ms: Option<u64>,
    /// When the quota resets, as the CLI put it ("3pm", an epoch, a date).
    pub resets_at: Option<String>,
    pub detail: String,
}

/// The limit an HTTP status means, if any.
pub fn from_status(status: u64, detail: &str) -> Option<Limit> {
    let kind = match status {
        429 => {
            if is_quota(detail) {
                LimitKind::Quota
            } else {
                LimitKind::RateLimit
            }
        }
        529 | 503 => LimitKind::Overloaded,
        _ if is_quota(detail) => LimitKind::Quota,
        _ => return None,
    };
    Some(limit(kind, detail))
}

/// The limit an error message names, if any.
pub fn from_text(text: &str) -> Option<Limit> {
    let t = text.to_ascii_lowercase();
    let kind = if is_quota(&t) {
        LimitKind::Quota
    } else if t.contains("429")
        || t.contains("too many requests")
        || ["rate limit", "rate-limit", "rate_limit", "ratelimit"]
            .iter()
            .any(|w| t.contains(w))
    {
        LimitKind::RateLimit
    } else if t.contains("529") || t.contains("overloaded") {
        LimitKind::Overloaded
    } else {
        return None;
    };
    Some(limit(kind, text))
}

fn is_quota(text: &str) -> bool {
    // aider says "check your quotas" on every rate limit: not a quota by itself.
    let t = text.to_ascii_lowercase().replace("check your quotas", "");
    [
        "quota",
        "credit balance is too low",
        "usage limit reached",
        "insufficient_quota",
        "resource_exhausted",
        "billing",
    ]
    .iter()
    .any(|w| t.contains(w))
}

fn limit(kind: LimitKind, detail: &str) -> Limit {
    Limit {
        kind,
        retry_after_ms: None,
        resets_at: resets_at(detail),
        detail: crate::adapter::clip(detail.trim(), 300),
    }
}

/// "usage limit reached ... resets at 3pm", "Claude AI usage limit
/// reached|1764000000": when the quota comes back, as said.
fn resets_at(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = lower.find("resets at ") {
        let rest = &text[i + "resets at ".len()..];
        let end = rest.find(['.', '\n']).unwrap_or(rest.len());
        return Some(rest[..end].trim().to_string()).filter(|s| !s.is_empty());
    }
    let (_, epoch) = text.split_once("limit reached|")?;
    let digits: String = epoch.chars().take_while(char::is_ascii_digit).collect();
    (!digits.is_empty()).then_some(digits)
}

/// Wraps a CLI's parser: an error or a retry that names a limit is also a
/// `rate_limited` event, and a failure that was one says so in its finish.
pub struct Recognise {
    inner: Box<dyn super::StreamParser>,
    /// The last limit the stream named, for the wait it asked.
    last: Option<Limit>,
}

impl Recognise {
    pub fn new(inner: Box<dyn super::StreamParser>) -> Recognise {
        Recognise { inner, last: None }
    }
}

/// How long to wait out `limit` before the next attempt: what the provider
/// asked, else a backoff that doubles with each limit in a row (30 s up to
/// 10 min). A used-up quota, or a wait beyond `max_wait`, is not waited out.
pub fn wait_for(
    limit: &Limit,
    in_a_row: u32,
    max_wait: std::time::Duration,
) -> Result<std::time::Duration, String> {
    use std::time::Duration;
    if limit.kind == LimitKind::Quota {
        let when = limit
            .resets_at
            .as_ref()
            .map(|r| format!(" (it resets at {r})"))
            .unwrap_or_default();
        return Err(format!("the quota is used up{when}"));
    }
    let wait = match limit.retry_after_ms {
        Some(ms) => Duration::from_millis(ms.max(1000)),
        None => Duration::from_secs(30u64.saturating_mul(1 << in_a_row.min(5)).min(600)),
    };
    if wait > max_wait {
        return Err(format!(
            "the provider asks to wait {}, longer than the profile's max_wait {}",
            crate::duration::human(wait),
            crate::duration::human(max_wait)
        ));
    }
    Ok(wait)
}

impl super::StreamParser for Recognise {
    fn line(&mut self, line: &str) -> Vec<super::AgentEvent> {
        use super::AgentEvent;
        let mut events = self.inner.line(line);
        if events
            .iter()
            .any(|e| matches!(e, AgentEvent::RateLimited(_)))
        {
            for e in events.iter_mut() {
                if let AgentEvent::RateLimited(l) = e {
                    // A later word without the wait keeps the one asked before.
                    if l.retry_after_ms.is_none() {
                        l.retry_after_ms = self.last.as_ref().and_then(|p| p.retry_after_ms);
                    }
                    self.last = Some(l.clone());
                }
            }
            return events;
        }
        let mut named = events.iter().find_map(|e| match e {
            AgentEvent::Error { message } => from_text(message),
            AgentEvent::Retrying { detail } => from_text(detail),
            _ => None,
        });
        if let Some(l) = &mut named {
            // An error that names the limit keeps the wait asked before.
            if l.retry_after_ms.is_none() {
                l.retry_after_ms = self.last.as_ref().and_then(|p| p.retry_after_ms);
            }
            self.last = Some(l.clone());
        }
        events.extend(named.map(AgentEvent::RateLimited));
        events
    }

    fn tail_wanted(&self) -> usize {
        self.inner.tail_wanted()
    }

    fn finish(&mut self, stdout_tail: &str) -> super::Finish {
        let mut finish = self.inner.finish(stdout_tail);
        if finish.limit.is_none() {
            finish.limit = finish.error.as_deref().and_then(from_text).map(|mut l| {
                l.retry_after_ms = self.last.as_ref().and_then(|p| p.retry_after_ms);
                l
            });
        }
        finish
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendors_words_become_one_kind() {
        let k = |t: &str| from_text(t).map(|l| l.kind);
        assert_eq!(
            k("Reconnecting... 1/5 (exceeded retry limit, last status: 429 Too Many Requests)"),
            Some(LimitKind::RateLimit)
        );
        assert_eq!(
            k("Quota exceeded. Check your plan and billing details."),
            Some(LimitKind::Quota)
        );
        assert_eq!(
            k("[API Error: You have exhausted your daily quota on this model.]"),
            Some(LimitKind::Quota)
        );
        assert_eq!(k("Credit balance is too low"), Some(LimitKind::Quota));
        assert_eq!(
            k("API Error: 529 Overloaded. This is a server-side issue"),
            Some(LimitKind::Overloaded)
        );
        assert_eq!(
            k("The API provider has rate limited you. Try again later or check your quotas."),
            Some(LimitKind::RateLimit)
        );
        assert_eq!(k("API Error: 400 invalid request"), None);
        assert_eq!(
            from_status(429, "").map(|l| l.kind),
            Some(LimitKind::RateLimit)
        );
        assert_eq!(
            from_status(400, "insufficient_quota").map(|l| l.kind),
            Some(LimitKind::Quota)
        );
        assert_eq!(from_status(500, "boom"), None);
    }

    #[test]
    fn a_limit_is_waited_out_as_asked_or_with_a_backoff_but_a_quota_is_not() {
        use std::time::Duration;
        let max = Duration::from_secs(1800);
        let mut l = from_text("429 Too Many Requests").unwrap();
        assert_eq!(wait_for(&l, 0, max), Ok(Duration::from_secs(30)));
        assert_eq!(wait_for(&l, 2, max), Ok(Duration::from_secs(120)));
        assert_eq!(wait_for(&l, 9, max), Ok(Duration::from_secs(600)));
        l.retry_after_ms = Some(3000);
        assert_eq!(wait_for(&l, 5, max), Ok(Duration::from_secs(3)));
        let e = wait_for(&l, 0, Duration::from_secs(1)).unwrap_err();
        assert!(e.contains("longer than the profile's max_wait"), "{e}");
        let q = from_text("usage limit reached; resets at 3pm").unwrap();
        assert_eq!(
            wait_for(&q, 0, max).unwrap_err(),
            "the quota is used up (it resets at 3pm)"
        );
    }

    #[test]
    fn a_reset_time_is_kept_as_said() {
        let l = from_text("5-hour usage limit reached; resets at 3pm (Europe/Paris).").unwrap();
        assert_eq!(
            (l.kind, l.resets_at.as_deref()),
            (LimitKind::Quota, Some("3pm (Europe/Paris)"))
        );
        let l = from_text("Claude AI usage limit reached|1764000000").unwrap();
        assert_eq!(l.resets_at.as_deref(), Some("1764000000"));
    }
}
