//! The user config (`~/.config/baton/config.toml`, found by the CLI): agent
//! profiles, `[defaults]`, `[prices]` and `[notify]` that every plan sees.
//! A plan's own settings win: its `[agent.x]` replaces the user's of the
//! same name, its `[defaults]` fields and `[prices]` entries come first, its
//! `[notify]` replaces the user's whole.
//!
//! The user's settings travel with the plan's text: [`UserConfig::compose`]
//! writes them ahead of it as `user.*` keys, and that text is the plan a run
//! keeps. A resumed run, a task added later, a follower re-reading the plan
//! all read the same profiles the run started with, whatever the user file
//! says by then; validation maps anything found in that head back to the
//! user config rather than to a line of the plan.

use super::error::{line_col, Checker, Diagnostic};
use super::raw::{RawAgent, RawNotify, RawPlan, RawPrice, RawTask};
use super::PlanError;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The first line of a composed plan: `# baton: N bytes from the user
/// config PATH`, N the length of the lines that follow it up to and with
/// [`PLAN_MARK`] (so nothing in them can end the head early).
const HEAD: &str = "# baton: ";
const HEAD_FROM: &str = " bytes from the user config ";
/// The line after which the plan's own text starts.
const PLAN_MARK: &str = "# baton: the plan\n";
/// What a user config may hold (and how the head writes each).
const SECTIONS: [&str; 4] = ["agent", "prices", "defaults", "notify"];

/// A user config, read and checked.
#[derive(Debug, Clone)]
pub struct UserConfig {
    pub path: PathBuf,
    /// Its settings, as TOML (only the [`SECTIONS`] there are).
    table: toml::Table,
    /// The repositories one `baton serve` serves when given none (`[[repo]]`).
    pub repos: Vec<RepoEntry>,
}

/// A repository of the user's (`[[repo]]`): `baton serve` with no `--repo`
/// serves all of them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoEntry {
    /// Its directory (`~/` is the user's home, as the CLI expands it).
    pub path: PathBuf,
    /// Its name in URLs and tools (default: the directory's name).
    pub name: Option<String>,
    /// The plan its queued tasks use (default: baton.toml).
    pub plan: Option<PathBuf>,
}

/// Where a plan's profiles came from, when a user config was in play.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserLayer {
    /// The user config's path, as written in the plan's head.
    pub path: String,
    /// Profiles the plan took from it.
    pub profiles: BTreeSet<String>,
    /// Profiles of the user config the plan's own of the same name replaced.
    pub replaced: BTreeSet<String>,
    /// The `env` of those replaced profiles: no agent gets it, but the
    /// run's stored text holds it, so it is masked as an agent's would be.
    pub env: BTreeMap<String, String>,
}

/// `user.*`: what [`UserConfig::compose`] writes ahead of a plan.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUser {
    #[serde(default)]
    agent: BTreeMap<String, Spanned<RawAgent>>,
    #[serde(default)]
    prices: BTreeMap<String, Spanned<RawPrice>>,
    defaults: Option<Spanned<RawTask>>,
    notify: Option<Spanned<RawNotify>>,
}

/// The user file's shape: only these sections, each where a plan has it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read for its shape only
struct UserFile {
    agent: Option<toml::Table>,
    prices: Option<toml::Table>,
    defaults: Option<toml::Table>,
    notify: Option<toml::Table>,
    repo: Option<Vec<RepoEntry>>,
}

impl UserConfig {
    /// Checks a user config's text as a plan's sections are checked, with
    /// lines of that file; `path` is where it was read (for messages).
    pub fn parse(path: &Path, text: &str) -> Result<UserConfig, PlanError> {
        let invalid = |diagnostics| PlanError::Invalid {
            path: path.to_path_buf(),
            diagnostics,
        };
        let file = match toml::from_str::<UserFile>(text) {
            Ok(f) => f,
            Err(e) => {
                let (line, column) = match e.span() {
                    Some(s) => {
                        let (l, c) = line_col(text, s.start);
                        (Some(l), Some(c))
                    }
                    None => (None, None),
                };
                let message = format!(
                "{} (a user config holds only [agent.NAME], [defaults], [prices], [notify] and [[repo]]; the rest belongs in a plan)",
                e.message().trim()
            );
                return Err(invalid(vec![Diagnostic {
                    line,
                    column,
                    subject: None,
                    message,
                }]));
            }
        };
        // Its sections are a plan's: checked by the same rules, with no
        // repository to look files up in (each plan that uses them does).
        let mut table: toml::Table = toml::from_str(text).map_err(|e| {
            invalid(vec![Diagnostic {
                line: None,
                column: None,
                subject: None,
                message: e.message().trim().to_string(),
            }])
        })?;
        table.remove("repo");
        // What was checked as a plan's sections is all but the repositories
        // (`repo = [...]` or `[["repo"]]` would be missed by the blanking).
        let blanked = toml::from_str::<toml::Table>(&without_repos(text));
        if blanked.is_ok_and(|t| t.contains_key("repo")) {
            return Err(invalid(vec![Diagnostic {
                line: None,
                column: None,
                subject: None,
                message:
                    "write each repository as a table of its own, starting with a line `[[repo]]`"
                        .into(),
            }]));
        }
        // `[[repo]]` is the user config's own: blanked, lines kept.
        super::Plan::parse_config(path, &without_repos(text), None)?;
        Ok(UserConfig {
            path: path.to_path_buf(),
            table,
            repos: file.repo.unwrap_or_default(),
        })
    }

    /// Reads and checks the user config at `path`; None when there is none.
    pub fn load(path: &Path) -> Result<Option<UserConfig>, PlanError> {
        match std::fs::read_to_string(path) {
            Ok(text) => UserConfig::parse(path, &text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(PlanError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// The profiles it defines, by name.
    pub fn profiles(&self) -> Vec<&str> {
        match self.table.get("agent").and_then(|a| a.as_table()) {
            Some(t) => t.keys().map(String::as_str).collect(),
            None => Vec::new(),
        }
    }

    /// The plan text a run reads: this config's settings as `user.*` keys,
    /// then `plan` as written (see [`compose`]).
    pub fn compose(&self, plan: &str) -> String {
        compose(Some(self), plan)
    }

    /// Its settings as `user.*` lines (empty for a config with none).
    fn head(&self) -> String {
        let mut head = String::new();
        for section in SECTIONS {
            let Some(value) = self.table.get(section) else {
                continue;
            };
            match (section, value.as_table()) {
                ("agent" | "prices", Some(entries)) => {
                    for (name, entry) in entries {
                        let key = toml::Value::String(name.clone());
                        head.push_str(&format!("user.{section}.{key} = {entry}\n"));
                    }
                }
                _ => head.push_str(&format!("user.{section} = {value}\n")),
            }
        }
        head
    }
}

/// `text` with its `[[repo]]` tables blanked (each line left empty, so the
/// rest keeps its line numbers): a plan has no `repo`.
fn without_repos(text: &str) -> String {
    let mut inside = false;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let head = line.trim_start();
        if head.starts_with('[') {
            let name: String = head.chars().filter(|c| !c.is_whitespace()).collect();
            inside = name.starts_with("[[repo]]");
        }
        match inside {
            true => out.push_str(if line.ends_with('\n') { "\n" } else { "" }),
            false => out.push_str(line),
        }
    }
    out
}

/// `plan` as a run reads it: the user config's settings (if any) as
/// `user.*` keys ahead of it. With none, the plan is left as written,
/// unless it begins as a composed plan would: then it gets an empty head,
/// so that what it wrote there is its own (and `user.*` in it refused),
/// never taken for a user config's.
pub fn compose(user: Option<&UserConfig>, plan: &str) -> String {
    let head = user.map(UserConfig::head).unwrap_or_default();
    if head.is_empty() && !plan.starts_with(HEAD) {
        return plan.to_string();
    }
    let path = match user.filter(|_| !head.is_empty()) {
        Some(u) => u.path.display().to_string().replace(['\n', '\r'], "?"),
        None => "(none)".to_string(),
    };
    let body = format!("{head}{PLAN_MARK}");
    format!("{HEAD}{}{HEAD_FROM}{path}\n{body}{plan}", body.len())
}

/// A composed plan's own text, as its author wrote it: what baton keeps in
/// a file of its own (the user config's head may hold secret values).
pub fn own_text(source: &str) -> &str {
    parts(source).1
}

/// Where a composed plan's own text starts, and the user config's path as
/// the head names it; None for a plan with no head.
pub(super) fn split(source: &str) -> Option<(usize, String)> {
    let rest = source.strip_prefix(HEAD)?;
    let (line, _) = rest.split_once('\n')?;
    let (len, path) = line.split_once(HEAD_FROM)?;
    let len: usize = len.parse().ok()?;
    let start = HEAD.len() + line.len() + 1 + len;
    let head = source.get(..start)?;
    head.ends_with(PLAN_MARK).then(|| (start, path.to_string()))
}

/// A composed plan as (the user config's head, the plan's own text); the
/// head is empty for a plan with none.
pub fn parts(source: &str) -> (&str, &str) {
    match split(source) {
        Some((start, _)) => source.split_at(start),
        None => ("", source),
    }
}

/// `user.*` is written by baton ahead of a plan, never inside one: a plan
/// that writes it would give itself profiles under another's name.
pub(super) fn refuse_in_plan(ck: &mut Checker, raw: &RawPlan) {
    let Some(user) = &raw.user else { return };
    let starts = user
        .agent
        .values()
        .map(|a| a.span().start)
        .chain(user.prices.values().map(|p| p.span().start))
        .chain(user.defaults.iter().map(|d| d.span().start))
        .chain(user.notify.iter().map(|n| n.span().start));
    let written = starts.filter(|s| *s >= ck.own_start).min();
    let outside = written.is_some() || (ck.user.is_none());
    if outside {
        let msg = "`user` is baton's: it holds your user config's settings ahead of a plan; a plan writes its own as [agent.NAME], [defaults], [prices] and [notify]";
        ck.at(written.map(|s| s..s), None, msg.into());
    }
}

/// Moves the user config's settings into the plan's own where the plan has
/// none of the same name: what [`UserLayer`] records.
pub(super) fn merge(raw: &mut RawPlan, path: Option<String>) -> Option<UserLayer> {
    let user = raw.user.take()?;
    let mut layer = UserLayer {
        path: path.unwrap_or_default(),
        ..UserLayer::default()
    };
    for (name, agent) in user.agent {
        match raw.agent.entry(name) {
            std::collections::btree_map::Entry::Occupied(own) => {
                layer.replaced.insert(own.key().clone());
                // Not the run's, but in its stored text: masked all the same.
                layer.env.extend(agent.into_inner().env);
            }
            std::collections::btree_map::Entry::Vacant(free) => {
                layer.profiles.insert(free.key().clone());
                free.insert(agent);
            }
        }
    }
    for (model, price) in user.prices {
        raw.prices.entry(model).or_insert(price);
    }
    raw.defaults = match (raw.defaults.take(), user.defaults) {
        (Some(own), Some(theirs)) => {
            let span = own.span();
            Some(Spanned::new(
                span,
                own.into_inner().with_defaults(theirs.get_ref()),
            ))
        }
        (own, theirs) => own.or(theirs),
    };
    if raw.notify.is_none() {
        raw.notify = user.notify;
    }
    Some(layer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Plan;

    const USER: &str = r#"
[agent.claude]
adapter = "claude"
model = "sonnet"

[agent.sh]
adapter = "exec"
command = ["bash", "-ec"]
env = { GREETING = "hi\nthere" }

[defaults]
agent = "claude"
retries = 2

[prices."my-model"]
input = 1.0
output = 2.0

[notify]
ntfy = "https://ntfy.example/topic"
"#;

    fn user() -> UserConfig {
        UserConfig::parse(Path::new("/home/u/.config/baton/config.toml"), USER).unwrap()
    }

    #[test]
    fn the_plan_sees_the_users_profiles_and_its_own_win() {
        let plan = "[agent.sh]\nadapter = \"exec\"\ncommand = [\"sh\", \"-c\"]\n\n[defaults]\nretries = 0\n\n[[task]]\nid = \"a\"\nprompt = \"x\"\n";
        let text = user().compose(plan);
        let p = Plan::parse(Path::new("baton.toml"), &text, None).unwrap();
        assert_eq!(
            p.agents["sh"].command.as_deref(),
            Some(&["sh".to_string(), "-c".into()][..])
        );
        assert_eq!(p.agents["claude"].model.as_deref(), Some("sonnet"));
        // [defaults]: the plan's retries, the user's agent.
        assert_eq!(p.tasks[0].agent, "claude");
        assert_eq!(p.tasks[0].retries, 0);
        assert_eq!(p.prices["my-model"].output, 2.0);
        assert_eq!(p.notify.ntfy.as_deref(), Some("https://ntfy.example/topic"));
        let layer = p.user.clone().unwrap();
        assert_eq!(layer.path, "/home/u/.config/baton/config.toml");
        assert_eq!(layer.profiles.iter().collect::<Vec<_>>(), ["claude"]);
        assert_eq!(layer.replaced.iter().collect::<Vec<_>>(), ["sh"]);
        // A task added later reads the same composed text.
        let added = p
            .parse_added(&[Plan::task_snippet("b", "y", None)], None)
            .unwrap();
        assert_eq!(added[0].agent, "claude");
    }

    #[test]
    fn repos_are_the_user_configs_own_and_its_other_lines_keep_their_numbers() {
        let text = "[[repo]]\npath = \"~/src/web\"\n\n[[ repo ]]\npath = \"/srv/api\"\nname = \"api\"\nplan = \"ci/baton.toml\"\n\n[agent.x]\nadapter = \"nope\"\n";
        let e = UserConfig::parse(Path::new("/u/c.toml"), text).unwrap_err();
        let d = &e.diagnostics()[0];
        assert_eq!(d.line, Some(10), "{e}");
        let ok = text.replace("nope", "exec\"\ncommand = [\"sh\"]\n#");
        let u = UserConfig::parse(Path::new("/u/c.toml"), &ok).unwrap();
        assert_eq!(u.repos.len(), 2);
        assert_eq!(u.repos[1].name.as_deref(), Some("api"));
        assert_eq!(u.repos[1].plan.as_deref(), Some(Path::new("ci/baton.toml")));
        // Never in a plan's head.
        assert!(!u.compose("").contains("repo"), "{}", u.compose(""));
        let bad = UserConfig::parse(Path::new("/u/c.toml"), "[[repo]]\nname = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("path"), "{bad}");
        for other in [
            "repo = [{ path = \"/x\" }]\n",
            "[[\"repo\"]]\npath = \"/x\"\n",
        ] {
            let e = UserConfig::parse(Path::new("/u/c.toml"), other)
                .unwrap_err()
                .to_string();
            assert!(e.contains("a line `[[repo]]`"), "{other}: {e}");
        }
    }

    #[test]
    fn a_plans_lines_stay_its_own_and_the_heads_problems_name_the_user_config() {
        let plan = "[[task]]\nid = \"a\"\nprompt = \"x\"\nretries = -1\n";
        let text = user().compose(plan);
        let e = Plan::parse(Path::new("baton.toml"), &text, None).unwrap_err();
        let d = &e.diagnostics()[0];
        assert_eq!((d.line, d.column), (Some(4), Some(11)), "{e}");
        // The user's default agent names a profile this plan has not.
        let lone = UserConfig::parse(
            Path::new("/u/config.toml"),
            "[defaults]\nagent = \"nobody\"\n",
        )
        .unwrap();
        let e = Plan::parse(Path::new("baton.toml"), &lone.compose(plan), None).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("from the user config /u/config.toml"),
            "{text}"
        );
        assert!(!text.contains("baton.toml:1:"), "{text}");
    }

    #[test]
    fn a_user_file_is_checked_with_its_own_lines_and_holds_only_its_sections() {
        let e =
            UserConfig::parse(Path::new("c.toml"), "[agent.x]\nadapter = \"nope\"\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("c.toml:2:11: agent \"x\": unknown adapter"),
            "{e}"
        );
        let e = UserConfig::parse(Path::new("c.toml"), "[run]\nmax_parallel = 2\n").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("c.toml:1:"), "{text}");
        assert!(text.contains("the rest belongs in a plan"), "{text}");
    }

    #[test]
    fn a_plan_cannot_write_the_users_keys_itself() {
        let plan = "user.agent.x = { adapter = \"exec\", command = [\"sh\"] }\n[[task]]\nid = \"a\"\nprompt = \"x\"\nagent = \"x\"\n";
        let e = Plan::parse(Path::new("baton.toml"), plan, None).unwrap_err();
        assert!(
            e.to_string().contains("baton.toml:1:16: `user` is baton's"),
            "{e}"
        );
    }

    #[test]
    fn a_plan_that_begins_like_a_composed_one_is_still_only_a_plan() {
        let forged = "# baton: 18 bytes from the user config /etc/trusted\n# baton: the plan\nuser.agent.x = { adapter = \"exec\", command = [\"sh\"] }\n[[task]]\nid = \"a\"\nprompt = \"x\"\nagent = \"x\"\n";
        assert!(split(forged).is_some(), "it does look composed");
        for user in [None, Some(&user())] {
            let text = compose(user, forged);
            let e = Plan::parse(Path::new("baton.toml"), &text, None).unwrap_err();
            assert!(
                e.to_string().contains("baton.toml:3:16: `user` is baton's"),
                "{e}"
            );
        }
    }

    #[test]
    fn nothing_in_the_users_values_ends_its_head_early() {
        let text = "[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\nenv = { NOTE = \"a\\n# baton: the plan\\nuser.agent.y = 1\" }\n";
        let u = UserConfig::parse(Path::new("c.toml"), text).unwrap();
        let plan = "[[task]]\nid = \"a\"\nprompt = \"x\"\nagent = \"sh\"\n";
        let p = Plan::parse(Path::new("baton.toml"), &u.compose(plan), None).unwrap();
        assert_eq!(
            p.agents["sh"].env["NOTE"],
            "a\n# baton: the plan\nuser.agent.y = 1"
        );
        assert_eq!(own_text(&p.source), plan);
    }

    #[test]
    fn an_empty_user_config_leaves_the_plan_as_written() {
        let empty = UserConfig::parse(Path::new("c.toml"), "# nothing yet\n").unwrap();
        assert_eq!(empty.compose("[[task]]\n"), "[[task]]\n");
        assert!(split("[[task]]\n").is_none());
    }
}
