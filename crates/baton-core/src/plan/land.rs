//! `[land]`: what becomes of a run that succeeded, and of its pull request.
//! `mode` is `run.land` by another name (either may be given); with
//! `mode = "pr"` and `follow = true`, baton stays with the pull request:
//! red checks, review comments and conflicts with the base each get a fix
//! attempt (a task of the run, through its gates and `verify`), pushed to
//! the pull request's branch, until it merges (`merge_when`) or needs a
//! person (`max_fixes`, `budget_usd`).

use super::error::Checker;
use super::raw::RawLand;
use super::source::{is_repo, GITHUB_API};
use super::{AgentProfile, Land};
use crate::duration::parse_duration;
use std::collections::BTreeMap;
use std::time::Duration;
use toml::Spanned;

/// How a pull request is followed to its end (`[land]`).
#[derive(Debug, Clone, PartialEq)]
pub struct PullSettings {
    /// Stay with the pull request after it opens.
    pub follow: bool,
    pub merge_when: MergeWhen,
    /// Fix attempts at most; past them the pull request needs a person.
    pub max_fixes: u32,
    /// The profile fix attempts use (default: the task that touched the
    /// failing files most, else `defaults.agent`).
    pub fixer: Option<String>,
    /// What all fix attempts of one pull request may cost together.
    pub budget_usd: Option<f64>,
    /// How often the pull request is looked at when no webhook says.
    pub poll: Duration,
    /// Where the run's branch is pushed.
    pub remote: String,
    /// `owner/name`; default: read from the remote's URL.
    pub repo: Option<String>,
    pub api_url: String,
    pub token_env: String,
    /// Signed webhooks (`/api/hooks/github`) make `serve` look at once.
    pub webhook_secret_env: Option<String>,
}

/// When baton merges the pull request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MergeWhen {
    /// Every check passed, and no review asks for changes.
    Green,
    /// Green, and approved by a reviewer.
    Approved,
    /// A person merges it; baton keeps it green and answered.
    #[default]
    Never,
}

impl MergeWhen {
    pub fn as_str(self) -> &'static str {
        match self {
            MergeWhen::Green => "green",
            MergeWhen::Approved => "approved",
            MergeWhen::Never => "never",
        }
    }
}

impl Default for PullSettings {
    fn default() -> PullSettings {
        PullSettings {
            follow: false,
            merge_when: MergeWhen::Never,
            max_fixes: 3,
            fixer: None,
            budget_usd: None,
            poll: DEFAULT_POLL,
            remote: "origin".into(),
            repo: None,
            api_url: GITHUB_API.into(),
            token_env: "GITHUB_TOKEN".into(),
            webhook_secret_env: None,
        }
    }
}

const DEFAULT_POLL: Duration = Duration::from_secs(60);
const MIN_POLL: Duration = Duration::from_secs(1);

/// Reads `[land]`; its `mode` sets `land` (`run.land` may say the same,
/// not something else).
pub(super) fn check_land(
    ck: &mut Checker,
    raw: &Option<Spanned<RawLand>>,
    agents: &BTreeMap<String, AgentProfile>,
    land: &mut Land,
) -> PullSettings {
    let mut out = PullSettings::default();
    let Some(raw) = raw else {
        return out;
    };
    let (span, r) = (raw.span(), raw.get_ref());
    let subject = Some("[land]".to_string());
    if let Some(m) = &r.mode {
        let mode = match m.get_ref().as_str() {
            "none" => Some(Land::None),
            "merge" => Some(Land::Merge),
            "pr" => Some(Land::Pr),
            other => {
                let msg = format!("land.mode must be \"none\", \"merge\" or \"pr\", not {other:?}");
                ck.at(Some(m.span()), subject.clone(), msg);
                None
            }
        };
        match mode {
            Some(mode) if *land != Land::None && *land != mode => {
                let msg = "land.mode and run.land say different things; keep one".to_string();
                ck.at(Some(m.span()), subject.clone(), msg);
            }
            Some(mode) => *land = mode,
            None => {}
        }
    }
    out.follow = r.follow.as_ref().is_some_and(|f| *f.get_ref());
    if out.follow && *land != Land::Pr {
        let msg = "land.follow follows a pull request: it needs mode = \"pr\"".to_string();
        ck.at(Some(span.clone()), subject.clone(), msg);
    }
    if let Some(m) = &r.merge_when {
        out.merge_when = match m.get_ref().as_str() {
            "green" => MergeWhen::Green,
            "approved" => MergeWhen::Approved,
            "never" => MergeWhen::Never,
            other => {
                let msg = format!(
                    "land.merge_when must be \"green\", \"approved\" or \"never\", not {other:?}"
                );
                ck.at(Some(m.span()), subject.clone(), msg);
                MergeWhen::Never
            }
        };
    }
    if let Some(n) = &r.max_fixes {
        match u32::try_from(*n.get_ref()) {
            Ok(n) if n <= 100 => out.max_fixes = n,
            _ => {
                let msg = format!("land.max_fixes must be from 0 to 100, not {}", n.get_ref());
                ck.at(Some(n.span()), subject.clone(), msg);
            }
        }
    }
    if let Some(f) = &r.fixer {
        if !agents.contains_key(f.get_ref()) {
            let msg = format!("land.fixer names no agent profile: {:?}", f.get_ref());
            ck.at(Some(f.span()), subject.clone(), msg);
        }
        out.fixer = Some(f.get_ref().clone());
    }
    if let Some(b) = &r.budget_usd {
        if !b.get_ref().is_finite() || *b.get_ref() <= 0.0 {
            let msg = format!("land.budget_usd must be more than 0, not {}", b.get_ref());
            ck.at(Some(b.span()), subject.clone(), msg);
        }
        out.budget_usd = Some(*b.get_ref());
    }
    if let Some(p) = &r.poll {
        match parse_duration(p.get_ref()) {
            Ok(d) if d >= MIN_POLL => out.poll = d,
            Ok(_) => ck.at(
                Some(p.span()),
                subject.clone(),
                "land.poll must be at least 1s".into(),
            ),
            Err(e) => ck.at(Some(p.span()), subject.clone(), format!("land.poll: {e}")),
        }
    }
    if let Some(rm) = &r.remote {
        out.remote = rm.get_ref().clone();
    }
    if let Some(repo) = &r.repo {
        if !is_repo(repo.get_ref()) {
            let msg = format!("land.repo must be \"owner/name\", not {:?}", repo.get_ref());
            ck.at(Some(repo.span()), subject.clone(), msg);
        }
        out.repo = Some(repo.get_ref().clone());
    }
    if let Some(u) = &r.api_url {
        let url = u.get_ref().trim_end_matches('/').to_string();
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            let msg = format!("land.api_url must be an http(s) URL, not {url:?}");
            ck.at(Some(u.span()), subject.clone(), msg);
        }
        out.api_url = url;
    }
    if let Some(t) = &r.token_env {
        out.token_env = t.get_ref().clone();
    }
    out.webhook_secret_env = r.webhook_secret_env.as_ref().map(|w| w.get_ref().clone());
    out
}

impl PullSettings {
    /// The environment variables that hold its secrets: kept from agents.
    pub fn secret_vars(&self) -> Vec<String> {
        super::source::github_secret_vars(&self.token_env, self.webhook_secret_env.as_deref())
    }
}

/// `owner/name` from a GitHub remote's URL (`git@github.com:o/n.git`,
/// `https://github.com/o/n`, `ssh://git@host/o/n.git`).
pub fn repo_of_url(url: &str) -> Option<String> {
    let url = url.trim().trim_end_matches('/');
    let url = url.strip_suffix(".git").unwrap_or(url);
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.split_once('/')?.1,
        None => url.split_once(':')?.1,
    };
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let repo = match parts.as_slice() {
        [.., owner, name] => format!("{owner}/{name}"),
        _ => return None,
    };
    is_repo(&repo).then_some(repo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::parse_with_a_profile as parse;

    #[test]
    fn land_settings_take_their_defaults_and_set_the_mode() {
        let p = parse("[land]\nmode = \"pr\"\nfollow = true\nmerge_when = \"approved\"\n").unwrap();
        assert_eq!(p.run.land, Land::Pr);
        assert!(p.pull.follow);
        assert_eq!(p.pull.merge_when, MergeWhen::Approved);
        assert_eq!(p.pull.max_fixes, 3);
        assert_eq!(p.pull.remote, "origin");
        assert_eq!(p.pull.api_url, GITHUB_API);
        let same = parse("[run]\nland = \"pr\"\n[land]\nfollow = true\n").unwrap();
        assert_eq!(same.run.land, Land::Pr);
    }

    #[test]
    fn land_mistakes_are_plan_errors_with_their_place() {
        for (text, says) in [
            ("[land]\nmode = \"push\"\n", "land.mode must be"),
            (
                "[run]\nland = \"merge\"\n[land]\nmode = \"pr\"\n",
                "say different things",
            ),
            ("[land]\nfollow = true\n", "needs mode = \"pr\""),
            (
                "[land]\nmode = \"pr\"\nmerge_when = \"soon\"\n",
                "land.merge_when must be",
            ),
            ("[land]\nmode = \"pr\"\nmax_fixes = -1\n", "from 0 to 100"),
            (
                "[land]\nmode = \"pr\"\nfixer = \"zed\"\n",
                "names no agent profile",
            ),
            ("[land]\nmode = \"pr\"\nbudget_usd = 0\n", "more than 0"),
            ("[land]\nmode = \"pr\"\npoll = \"10ms\"\n", "at least 1s"),
            ("[land]\nmode = \"pr\"\nrepo = \"x\"\n", "\"owner/name\""),
            ("[land]\nmode = \"pr\"\nfolow = true\n", "unknown field"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(says), "{text}: {err}");
            assert!(err.contains("baton.toml:"), "{text}: no place in {err}");
        }
    }

    #[test]
    fn the_repository_is_read_from_the_remote_url() {
        for (url, repo) in [
            ("git@github.com:acme/app.git", Some("acme/app")),
            ("https://github.com/acme/app", Some("acme/app")),
            ("https://github.com/acme/app.git/", Some("acme/app")),
            ("ssh://git@ghe.corp:2222/acme/app.git", Some("acme/app")),
            ("/srv/git/app.git", None),
            ("https://github.com/", None),
        ] {
            assert_eq!(repo_of_url(url).as_deref(), repo, "{url}");
        }
    }
}
