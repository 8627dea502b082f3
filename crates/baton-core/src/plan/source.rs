//! `[[source]]`: trackers `baton serve` takes work from. A GitHub source
//! makes each open issue of `repo` that has `label` (and, if given, is
//! assigned to `assignee`) a task, routed by its labels through
//! `[[route]]`; baton comments on the issue when the task starts and when
//! it ends. Its token is read from the environment variable `token_env`
//! (default `GITHUB_TOKEN`) by baton alone: agents never get it. A command
//! source is any tracker: `command` prints its items as JSON lines, and
//! `report` (if given) hears what baton says about them.

use super::error::Checker;
use super::raw::RawSource;
use crate::duration::parse_duration;
use std::time::Duration;
use toml::Spanned;

/// One tracker to take work from.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// Its name in the store and in messages (`github:owner/repo#label`).
    pub name: String,
    pub kind: SourceKind,
    /// How often it is asked for new work.
    pub poll: Duration,
    /// What an item becomes: a task, or a goal for the planner.
    pub mode: SourceMode,
}

/// What a source's item becomes (`mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceMode {
    /// One task, its prompt the item's text.
    #[default]
    Task,
    /// The goal of a planner run; the plan it writes (checked) runs.
    Plan,
}

#[derive(Debug, Clone, PartialEq)]
// Outside baton-core a match on it has an arm for the others: a new kind
// does not change another tracker's crate.
#[non_exhaustive]
pub enum SourceKind {
    GitHub(GitHubSource),
    Command(CommandSource),
}

/// A tracker by command, run in the repository's root.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandSource {
    /// Prints the items that are work now: a JSON object a line, with
    /// `id`, `title` and optionally `body`, `labels`, `url`, `comments`.
    pub command: Vec<String>,
    /// Gets each report (a JSON object) on its stdin.
    pub report: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GitHubSource {
    /// `owner/name`.
    pub repo: String,
    /// Issues with this label are work.
    pub label: String,
    /// And, when set, assigned to this login.
    pub assignee: Option<String>,
    /// The REST API's root (GitHub Enterprise: `https://HOST/api/v3`).
    pub api_url: String,
    /// The environment variable baton reads its token from.
    pub token_env: String,
    /// The variable holding the secret its webhooks are signed with: a
    /// signed delivery to `/api/hooks/github` makes baton look at once
    /// (polling stays, as the fallback).
    pub webhook_secret_env: Option<String>,
}

impl Source {
    /// Its `kind`, as the plan says it.
    pub fn kind(&self) -> &'static str {
        match self.kind {
            SourceKind::GitHub(_) => "github",
            SourceKind::Command(_) => "command",
        }
    }

    /// The environment variables that hold its secrets: baton keeps them
    /// from every process it starts.
    pub fn secret_vars(&self) -> Vec<String> {
        match &self.kind {
            SourceKind::GitHub(g) => {
                github_secret_vars(&g.token_env, g.webhook_secret_env.as_deref())
            }
            // Its programs have baton's environment; they hold their own secrets.
            SourceKind::Command(_) => Vec::new(),
        }
    }
}

/// What holds a GitHub token and a webhook secret: `token_env`, the
/// webhook's variable, and the variables `gh auth token` (baton's
/// fallback) answers from; each once.
pub(super) fn github_secret_vars(token_env: &str, webhook: Option<&str>) -> Vec<String> {
    let mut vars = vec![token_env.to_string()];
    for v in webhook.into_iter().chain(GH_TOKEN_VARS) {
        if !vars.iter().any(|have| have == v) {
            vars.push(v.to_string());
        }
    }
    vars
}

/// Where `gh` finds a token before its own login.
pub(super) const GH_TOKEN_VARS: [&str; 3] = ["GH_TOKEN", "GITHUB_TOKEN", "GH_ENTERPRISE_TOKEN"];

const DEFAULT_POLL: Duration = Duration::from_secs(60);
/// GitHub allows a token 5,000 requests an hour; faster than this would
/// spend them on nothing.
const MIN_POLL: Duration = Duration::from_secs(5);
pub const GITHUB_API: &str = "https://api.github.com";

pub(super) fn check_sources(ck: &mut Checker, raw: &[Spanned<RawSource>]) -> Vec<Source> {
    let mut out: Vec<Source> = Vec::new();
    for r in raw {
        let (span, s) = (r.span(), r.get_ref());
        let kind = s.kind.as_ref().map(|k| k.get_ref().as_str());
        let source = match kind {
            Some("github") => {
                misplaced(ck, s, "github", span.clone());
                check_github(ck, s, span.clone())
            }
            Some("command") => {
                misplaced(ck, s, "command", span.clone());
                check_command(ck, s, span.clone())
            }
            Some(other) => {
                let at = s.kind.as_ref().map(|k| k.span());
                ck.at(
                    at,
                    None,
                    format!("source.kind must be \"github\" or \"command\", not {other:?}"),
                );
                None
            }
            None => {
                let msg = "a [[source]] needs `kind` (\"github\" or \"command\")".to_string();
                ck.at(Some(span.clone()), None, msg);
                None
            }
        };
        let Some(mut source) = source else { continue };
        source.mode = match s.mode.as_ref().map(|m| m.get_ref().as_str()) {
            None | Some("task") => SourceMode::Task,
            Some("plan") => SourceMode::Plan,
            Some(other) => {
                let at = s.mode.as_ref().map(|m| m.span());
                let msg = format!("source.mode must be \"task\" or \"plan\", not {other:?}");
                ck.at(at, None, msg);
                SourceMode::Task
            }
        };
        if out.iter().any(|o| o.name == source.name) {
            let msg = format!("{} is a [[source]] twice", source.name);
            ck.at(Some(span), None, msg);
            continue;
        }
        out.push(source);
    }
    out
}

fn check_github(ck: &mut Checker, s: &RawSource, span: std::ops::Range<usize>) -> Option<Source> {
    let subject = Some("source \"github\"".to_string());
    let repo = match &s.repo {
        Some(r) if is_repo(r.get_ref()) => r.get_ref().clone(),
        Some(r) => {
            let msg = format!("repo must be \"owner/name\", not {:?}", r.get_ref());
            ck.at(Some(r.span()), subject, msg);
            return None;
        }
        None => {
            ck.at(
                Some(span),
                subject,
                "a GitHub source needs `repo` (\"owner/name\")".into(),
            );
            return None;
        }
    };
    let label = match &s.label {
        Some(l) if !l.get_ref().trim().is_empty() && !l.get_ref().contains(',') => {
            l.get_ref().clone()
        }
        Some(l) => {
            let msg = "label names one label (issues that have it are work), not empty nor a list";
            ck.at(Some(l.span()), subject, msg.into());
            return None;
        }
        None => {
            let msg = "a GitHub source needs `label`: the label that makes an issue work for baton";
            ck.at(Some(span), subject, msg.into());
            return None;
        }
    };
    let api_url = s
        .api_url
        .as_ref()
        .map(|u| u.get_ref().trim_end_matches('/').to_string())
        .unwrap_or_else(|| GITHUB_API.into());
    if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
        let at = s.api_url.as_ref().map(|u| u.span());
        ck.at(
            at,
            subject.clone(),
            format!("api_url must be an http(s) URL, not {api_url:?}"),
        );
    }
    let token_env = s
        .token_env
        .as_ref()
        .map(|t| t.get_ref().clone())
        .unwrap_or_else(|| "GITHUB_TOKEN".into());
    let poll = poll(ck, s, &subject);
    let assignee = s.assignee.as_ref().map(|a| a.get_ref().clone());
    let webhook_secret_env = s.webhook_secret_env.as_ref().map(|w| w.get_ref().clone());
    Some(Source {
        name: format!("github:{repo}#{label}"),
        kind: SourceKind::GitHub(GitHubSource {
            repo,
            label,
            assignee,
            api_url,
            token_env,
            webhook_secret_env,
        }),
        poll,
        mode: SourceMode::Task,
    })
}

/// Fields of the other kind of source: said, not ignored.
fn misplaced(ck: &mut Checker, s: &RawSource, kind: &str, span: std::ops::Range<usize>) {
    let github = [
        ("repo", s.repo.is_some()),
        ("label", s.label.is_some()),
        ("assignee", s.assignee.is_some()),
        ("api_url", s.api_url.is_some()),
        ("token_env", s.token_env.is_some()),
        ("webhook_secret_env", s.webhook_secret_env.is_some()),
    ];
    let command = [
        ("command", s.command.is_some()),
        ("report", s.report.is_some()),
        ("name", s.name.is_some()),
    ];
    let others: &[(&str, bool)] = if kind == "github" { &command } else { &github };
    for (field, _) in others.iter().filter(|(_, set)| *set) {
        let msg = format!("`{field}` is not a setting of a {kind} source");
        ck.at(Some(span.clone()), Some(format!("source {kind:?}")), msg);
    }
}

fn check_command(ck: &mut Checker, s: &RawSource, span: std::ops::Range<usize>) -> Option<Source> {
    let subject = Some("source \"command\"".to_string());
    let program = |field: &Option<Spanned<Vec<String>>>, what: &str, ck: &mut Checker| {
        let f = field.as_ref()?;
        if f.get_ref().first().is_none_or(|p| p.trim().is_empty()) {
            let msg = format!("{what} is empty; name a program, e.g. [\"./tracker.sh\", \"list\"]");
            ck.at(Some(f.span()), subject.clone(), msg);
            return None;
        }
        Some(f.get_ref().clone())
    };
    let Some(command) = program(&s.command, "command", ck) else {
        if s.command.is_none() {
            let msg = "a command source needs `command`: the program that prints its items";
            ck.at(Some(span), subject.clone(), msg.into());
        }
        return None;
    };
    let report = program(&s.report, "report", ck);
    let name = match &s.name {
        Some(n) => n.get_ref().clone(),
        None => std::path::Path::new(&command[0])
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| command[0].clone()),
    };
    let poll = poll(ck, s, &subject);
    Some(Source {
        name: format!("command:{name}"),
        kind: SourceKind::Command(CommandSource { command, report }),
        poll,
        mode: SourceMode::Task,
    })
}

fn poll(ck: &mut Checker, s: &RawSource, subject: &Option<String>) -> Duration {
    let Some(p) = &s.poll else {
        return DEFAULT_POLL;
    };
    match parse_duration(p.get_ref()) {
        Ok(d) if d >= MIN_POLL => d,
        Ok(_) => {
            let msg = format!("poll must be at least {}s", MIN_POLL.as_secs());
            ck.at(Some(p.span()), subject.clone(), msg);
            DEFAULT_POLL
        }
        Err(e) => {
            ck.at(Some(p.span()), subject.clone(), format!("poll: {e}"));
            DEFAULT_POLL
        }
    }
}

pub(super) fn is_repo(s: &str) -> bool {
    let ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    matches!(s.split_once('/'), Some((o, n)) if ok(o) && ok(n))
}

#[cfg(test)]
mod tests {
    use crate::plan::parse_with_a_profile as parse;
    use crate::plan::SourceKind;

    #[test]
    fn a_github_source_takes_its_defaults() {
        let p = parse("[[source]]\nkind = \"github\"\nrepo = \"acme/app\"\nlabel = \"baton\"\n")
            .unwrap();
        let s = &p.sources[0];
        assert_eq!(s.name, "github:acme/app#baton");
        assert_eq!(s.poll.as_secs(), 60);
        let SourceKind::GitHub(g) = &s.kind else {
            panic!("{s:?}")
        };
        assert_eq!(g.api_url, "https://api.github.com");
        assert_eq!(g.token_env, "GITHUB_TOKEN");
        let kept = ["GITHUB_TOKEN", "GH_TOKEN", "GH_ENTERPRISE_TOKEN"];
        assert_eq!(s.secret_vars(), kept);
    }

    #[test]
    fn source_mistakes_are_plan_errors_with_their_place() {
        for (text, says) in [
            ("[[source]]\nrepo = \"a/b\"\n", "needs `kind`"),
            ("[[source]]\nkind = \"jira\"\n", "source.kind must be \"github\" or \"command\""),
            ("[[source]]\nkind = \"command\"\n", "needs `command`"),
            ("[[source]]\nkind = \"command\"\ncommand = [\"x\"]\nlabel = \"y\"\n", "`label` is not a setting of a command source"),
            ("[[source]]\nkind = \"command\"\ncommand = []\n", "command is empty"),
            ("[[source]]\nkind = \"command\"\ncommand = [\"x\"]\nreport = [\"\"]\n", "report is empty"),
            ("[[source]]\nkind = \"github\"\nlabel = \"x\"\n", "needs `repo`"),
            ("[[source]]\nkind = \"github\"\nrepo = \"nope\"\nlabel = \"x\"\n", "\"owner/name\""),
            ("[[source]]\nkind = \"github\"\nrepo = \"a/b\"\n", "needs `label`"),
            ("[[source]]\nkind = \"github\"\nrepo = \"a/b\"\nlabel = \"a,b\"\n", "names one label"),
            ("[[source]]\nkind = \"github\"\nrepo = \"a/b\"\nlabel = \"x\"\npoll = \"1s\"\n", "at least 5s"),
            ("[[source]]\nkind = \"github\"\nrepo = \"a/b\"\nlabel = \"x\"\nmode = \"plans\"\n", "source.mode must be \"task\" or \"plan\", not \"plans\""),
            ("[[source]]\nkind = \"github\"\nrepo = \"a/b\"\nlabel = \"x\"\napi_url = \"ftp://x\"\n", "http(s) URL"),
            ("[[source]]\nkind = \"github\"\nrepo = \"a/b\"\nlabel = \"x\"\nlabels = \"y\"\n", "unknown field"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(says), "{text}: {err}");
            assert!(err.contains("baton.toml:"), "{text}: no place in {err}");
        }
    }
}
