//! `[notify]`: where `baton serve` says that something needs a person (an
//! agent's question, an approval, a failure, a pull request baton stopped
//! fixing, and a run's end), with links that act on it: ntfy (a phone app,
//! self-hostable) and the webhook; quiet hours and the kinds told.

use super::error::Checker;
use super::raw::RawNotify;
use crate::duration::parse_duration;
use std::time::Duration;
use toml::Spanned;

/// What can be told: the inbox's kinds, `stalled` (an agent went silent)
/// and `run` (a run ended).
pub const KINDS: &[&str] = &[
    "question",
    "approval",
    "failed",
    "conflicted",
    "limit",
    "pull",
    "plan",
    "stalled",
    "run",
];

#[derive(Debug, Clone, PartialEq)]
pub struct NotifySettings {
    /// An ntfy topic's URL (`https://ntfy.sh/my-topic`).
    pub ntfy: Option<String>,
    /// The variable holding an ntfy access token, for a protected topic.
    pub ntfy_token_env: Option<String>,
    /// A URL that gets a JSON POST (also `serve --webhook`).
    pub webhook: Option<String>,
    /// Local time, minutes after midnight: nothing is sent from `.0` to
    /// `.1` (it may wrap past midnight); what came in meanwhile and still
    /// needs a person is sent when they end.
    pub quiet: Option<(u32, u32)>,
    /// The kinds told (default: all of [`KINDS`]).
    pub kinds: Vec<String>,
    /// How long an action link works.
    pub link_ttl: Duration,
}

impl Default for NotifySettings {
    fn default() -> NotifySettings {
        NotifySettings {
            ntfy: None,
            ntfy_token_env: None,
            webhook: None,
            quiet: None,
            kinds: KINDS.iter().map(|k| k.to_string()).collect(),
            link_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

impl NotifySettings {
    pub fn tells(&self, kind: &str) -> bool {
        self.kinds.iter().any(|k| k == kind)
    }

    /// Whether `minute` (of the local day) falls in the quiet hours.
    pub fn is_quiet(&self, minute: u32) -> bool {
        match self.quiet {
            None => false,
            Some((from, to)) if from <= to => minute >= from && minute < to,
            Some((from, to)) => minute >= from || minute < to,
        }
    }
}

pub(super) fn check_notify(ck: &mut Checker, raw: &Option<Spanned<RawNotify>>) -> NotifySettings {
    let mut out = NotifySettings::default();
    let Some(raw) = raw else {
        return out;
    };
    let r = raw.get_ref();
    let subject = Some("[notify]".to_string());
    let url = |ck: &mut Checker, v: &Option<Spanned<String>>, key: &str| {
        let v = v.as_ref()?;
        let u = v.get_ref().trim();
        if u.starts_with("http://") || u.starts_with("https://") {
            return Some(u.trim_end_matches('/').to_string());
        }
        let msg = format!("notify.{key} must be an http:// or https:// URL, not {u:?}");
        ck.at(Some(v.span()), subject.clone(), msg);
        None
    };
    out.ntfy = url(ck, &r.ntfy, "ntfy");
    if let Some(n) = &out.ntfy {
        let topic = n.split("://").nth(1).and_then(|rest| rest.split_once('/'));
        if topic.is_none_or(|(_, t)| t.is_empty() || t.contains('/')) {
            let msg = format!("notify.ntfy is a topic's URL (https://ntfy.sh/<topic>), not {n:?}");
            ck.at(r.ntfy.as_ref().map(|s| s.span()), subject.clone(), msg);
        }
    }
    out.webhook = url(ck, &r.webhook, "webhook");
    out.ntfy_token_env = r.ntfy_token_env.as_ref().map(|v| v.get_ref().clone());
    if let Some(q) = &r.quiet_hours {
        match parse_quiet(q.get_ref()) {
            Ok(hours) => out.quiet = Some(hours),
            Err(e) => ck.at(
                Some(q.span()),
                subject.clone(),
                format!("notify.quiet_hours: {e}"),
            ),
        }
    }
    if let Some(kinds) = &r.kinds {
        for k in kinds.get_ref() {
            if !KINDS.contains(&k.as_str()) {
                let msg = format!("notify.kinds: {k:?} is not one of {}", KINDS.join(", "));
                ck.at(Some(kinds.span()), subject.clone(), msg);
            }
        }
        out.kinds = kinds.get_ref().clone();
    }
    if let Some(t) = &r.link_ttl {
        match parse_duration(t.get_ref()) {
            Ok(d) if d >= Duration::from_secs(60) => out.link_ttl = d,
            Ok(_) => ck.at(
                Some(t.span()),
                subject.clone(),
                "notify.link_ttl must be at least a minute".into(),
            ),
            Err(e) => ck.at(
                Some(t.span()),
                subject.clone(),
                format!("notify.link_ttl: {e}"),
            ),
        }
    }
    out
}

/// `"22:00-07:00"`: from, to, as minutes after midnight.
fn parse_quiet(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{text:?} is not HH:MM-HH:MM (e.g. \"22:00-07:00\", local time)");
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let minute = |t: &str| -> Option<u32> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    };
    let (from, to) = (minute(a).ok_or_else(bad)?, minute(b).ok_or_else(bad)?);
    if from == to {
        return Err(format!("{text:?} starts and ends at the same time"));
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_may_wrap_past_midnight() {
        let s = |q| NotifySettings {
            quiet: Some(parse_quiet(q).unwrap()),
            ..NotifySettings::default()
        };
        let night = s("22:00-07:00");
        assert!(night.is_quiet(23 * 60) && night.is_quiet(0) && night.is_quiet(6 * 60 + 59));
        assert!(
            !night.is_quiet(7 * 60) && !night.is_quiet(12 * 60) && !night.is_quiet(21 * 60 + 59)
        );
        let lunch = s("12:00-13:30");
        assert!(lunch.is_quiet(12 * 60 + 15) && !lunch.is_quiet(13 * 60 + 30));
        assert!(!NotifySettings::default().is_quiet(0));
        assert!(parse_quiet("25:00-07:00").is_err());
        assert!(parse_quiet("22:00").is_err());
        assert!(parse_quiet("07:00-07:00").is_err());
    }
}
