//! `baton plan`: a planner agent writes a plan for a goal. The planner is
//! itself a one-task run of baton (its own worktree of the base commit,
//! its adapter, logs, retries with feedback, stop and resume), whose gate
//! is `baton check` on the plan it wrote: a plan that does not validate goes
//! back to it with the errors.

use crate::plan::Plan;
use std::path::{Path, PathBuf};

/// The rules that make parallel work succeed, given to every planner; a
/// project's `.baton/planner.md` (or `--instructions`) replaces them.
pub const INSTRUCTIONS: &str = include_str!("instructions.md");

/// The plan format, as users read it.
pub const REFERENCE: &str = include_str!("../../../../docs/plan-reference.md");

/// Where a project keeps its own planner instructions.
pub const PROJECT_INSTRUCTIONS: &str = ".baton/planner.md";

#[derive(Debug, thiserror::Error)]
pub enum PlannerError {
    #[error("{path}: {message}")]
    Profiles { path: String, message: String },
    #[error("no agent profile {name:?} to plan with (profiles: {known}); name one with --agent")]
    NoProfile { name: String, known: String },
    #[error("no agent to plan with: no plan names a default agent and no agent CLI (claude, codex, gemini, opencode, aider) is on PATH; name one with --agent")]
    NoAgent,
}

/// The agent profiles (and prices) a planner may use, and the default one.
#[derive(Debug, Clone)]
pub struct Profiles {
    /// `[agent.*]`, `[prices]` and `[gateway]`, as TOML tables.
    pub tables: toml::Table,
    pub default: Option<String>,
    /// Profiles of the user config (name, adapter, model): a planned plan
    /// names them and writes no table for them (their `env` may hold
    /// secrets, which no planner is shown).
    pub users: Vec<(String, String, Option<String>)>,
}

impl Profiles {
    /// The profiles of a plan's text (only `[agent.*]`, `[prices]` and
    /// `defaults.agent` are read; the rest may be anything), and those of
    /// the user config it was composed with.
    pub fn from_plan_text(path: &str, text: &str) -> Result<Profiles, PlannerError> {
        let err = |message: String| PlannerError::Profiles {
            path: path.to_string(),
            message,
        };
        let mut doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| err(e.to_string()))?;
        let users = users_of(&mut doc);
        let mut tables = toml::Table::new();
        // The gateway's too: its key sources and addresses are the profiles'.
        for key in ["agent", "prices", "gateway"] {
            if let Some(v) = doc.get(key) {
                tables.insert(key.into(), v.clone());
            }
        }
        let default = doc
            .get("defaults")
            .and_then(|d| d.get("agent"))
            .and_then(|a| a.as_str())
            .map(str::to_string);
        Ok(Profiles {
            tables,
            default,
            users,
        })
    }

    pub fn names(&self) -> Vec<String> {
        let own: Vec<String> = self
            .tables
            .get("agent")
            .and_then(|a| a.as_table())
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        let users = self.users.iter().map(|(n, _, _)| n.clone());
        own.into_iter().chain(users).collect()
    }

    /// The user config's profiles, one line each, for the planner to name.
    fn users_text(&self) -> String {
        let line = |(name, adapter, model): &(String, String, Option<String>)| match model {
            Some(m) => format!("- `{name}`: {adapter}, model {m}\n"),
            None => format!("- `{name}`: {adapter}\n"),
        };
        self.users.iter().map(line).collect()
    }

    /// The profile to plan with: `wanted`, else the default, else the first.
    pub fn choose(&self, wanted: Option<&str>) -> Result<String, PlannerError> {
        let names = self.names();
        let pick = wanted
            .map(str::to_string)
            .or_else(|| self.default.clone())
            .or_else(|| names.iter().find(|n| *n != "sh").cloned());
        match pick {
            Some(p) if names.contains(&p) => Ok(p),
            Some(p) => Err(PlannerError::NoProfile {
                name: p,
                known: names.join(", "),
            }),
            None => Err(PlannerError::NoAgent),
        }
    }

    /// The profile tables as TOML text, for the planner to copy.
    pub fn text(&self) -> String {
        toml::to_string(&self.tables).unwrap_or_default()
    }
}

/// What a planning run needs.
pub struct Request<'a> {
    pub goal: &'a str,
    pub profiles: &'a Profiles,
    pub profile: &'a str,
    pub instructions: &'a str,
    /// Where the planner writes the plan (`BATON_PLAN_OUT`).
    pub out: &'a Path,
    /// The command that validates a plan file (`baton check`), as argv.
    pub check: Vec<String>,
    pub retries: u32,
}

/// The one-task plan that runs the planner.
pub fn planner_plan(req: &Request) -> String {
    let mut doc = req.profiles.tables.clone();
    // The planner's profile also gets the output path in its environment.
    if let Some(profile) = doc
        .get_mut("agent")
        .and_then(|a| a.get_mut(req.profile))
        .and_then(|p| p.as_table_mut())
    {
        let env = profile
            .entry("env")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let Some(env) = env.as_table_mut() {
            env.insert(
                "BATON_PLAN_OUT".into(),
                req.out.display().to_string().into(),
            );
        }
    }
    let check: Vec<String> = req
        .check
        .iter()
        .chain([&req.out.display().to_string()])
        .map(|a| sh_quote(a))
        .collect();
    let mut task = toml::Table::new();
    task.insert("id".into(), "plan".into());
    task.insert("agent".into(), req.profile.into());
    task.insert("merge".into(), false.into());
    task.insert("retries".into(), i64::from(req.retries).into());
    task.insert("prompt".into(), prompt(req).into());
    task.insert(
        "gates".into(),
        vec![toml::Value::from(check.join(" "))].into(),
    );
    doc.insert("task".into(), vec![toml::Value::Table(task)].into());
    toml::to_string(&doc).unwrap_or_default()
}

/// What the planner is told. Raw for the template engine: a goal or a
/// reference with `{{` in it is text, not a template.
fn prompt(req: &Request) -> String {
    let body = format!(
        "You are the planner for baton. Write a plan (a TOML file) that reaches this goal with a team of coding agents working in parallel.\n\n\
         ## The goal\n\n{goal}\n\n\
         ## Where to write it\n\n\
         Write the plan to this file{also}:\n\n    {out}\n\n\
         Then say in one or two sentences how the plan splits the work. baton checks the file with `baton check`; if it is not valid you get the errors and write it again.\n\n\
         ## Agent profiles\n\n\
         The plan must start with these tables exactly as they are; give each task an `agent` from them (default: `{profile}`):\n\n```toml\n{profiles}```\n\n{users}\
         ## How to plan\n\n{rules}\n\n\
         ## The plan format\n\n{reference}\n",
        goal = req.goal.trim(),
        out = req.out.display(),
        also = if req.profiles.users.iter().any(|(n, _, _)| n == req.profile) {
            ""
        } else {
            " (its path is also in the environment variable BATON_PLAN_OUT)"
        },
        profile = req.profile,
        profiles = req.profiles.text(),
        users = match req.profiles.users_text() {
            t if t.is_empty() => String::new(),
            t => format!("These profiles come from the user's own config: give tasks these names as `agent` too, and write no table for them:\n\n{t}\n"),
        },
        rules = req.instructions.trim(),
        reference = REFERENCE,
    );
    format!(
        "{{% raw %}}{}{{% endraw %}}",
        body.replace("{% endraw %}", "{% endraw %}{{ '{% endraw %}' }}{% raw %}")
    )
}

/// A composed plan's user config (`user.*`) taken out of `doc`: its
/// profiles the plan has none of the same name of (name, adapter, model),
/// and its default agent where the plan names none.
fn users_of(doc: &mut toml::Table) -> Vec<(String, String, Option<String>)> {
    let Some(toml::Value::Table(user)) = doc.remove("user") else {
        return Vec::new();
    };
    let own = |name: &str| doc.get("agent").and_then(|a| a.get(name)).is_some();
    let text = |v: &toml::Value, key: &str| v.get(key).and_then(|x| x.as_str()).map(str::to_string);
    let mut out = Vec::new();
    if let Some(agents) = user.get("agent").and_then(|a| a.as_table()) {
        for (name, profile) in agents {
            if !own(name) {
                let adapter = text(profile, "adapter").unwrap_or_default();
                out.push((name.clone(), adapter, text(profile, "model")));
            }
        }
    }
    let default = user.get("defaults").and_then(|d| text(d, "agent"));
    if let (Some(agent), false) = (
        default,
        doc.get("defaults").and_then(|d| d.get("agent")).is_some(),
    ) {
        let defaults = doc
            .entry("defaults")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let Some(d) = defaults.as_table_mut() {
            d.insert("agent".into(), agent.into());
        }
    }
    out
}

/// Reads the plan the planner wrote and validates it against the user's
/// repository (paths relative to `root`), composed with the user config
/// the profiles came from; the plan is shown as `shown`. The text is as
/// the planner wrote it.
pub fn read_plan(
    out: &Path,
    shown: &Path,
    root: &Path,
    user: Option<&crate::plan::UserConfig>,
) -> Result<(String, Plan), String> {
    let text = std::fs::read_to_string(out)
        .map_err(|e| format!("the planner wrote no plan at {}: {e}", out.display()))?;
    let composed = crate::plan::compose(user, &text);
    let plan = Plan::parse(shown, &composed, Some(root)).map_err(|e| e.to_string())?;
    Ok((text, plan))
}

/// Where a planning run writes: `<state>/plans/<stamp>.toml`, and the
/// planner's own one-task plan beside it.
pub fn paths(state_dir: &Path, stamp: &str) -> (PathBuf, PathBuf) {
    let dir = state_dir.join("plans");
    (
        dir.join(format!("{stamp}.toml")),
        dir.join(format!("{stamp}-planner.toml")),
    )
}

/// How the planner's own plan file of a planning run whose plan waits for
/// a person's yes ends (the inbox lists such runs by it).
pub const PROPOSAL_SUFFIX: &str = "-proposal.toml";

/// A planning run ready to start: its one-task plan (also written to
/// `planner_path`), and where the planner writes (`out`).
pub struct Prepared {
    pub profile: String,
    pub out: PathBuf,
    pub planner_path: PathBuf,
    pub plan: Plan,
}

/// Everything before a planning run starts, for the CLI and the server.
pub struct Setup<'a> {
    pub goal: &'a str,
    pub profiles: &'a Profiles,
    pub agent: Option<&'a str>,
    /// `None`: the project's `.baton/planner.md`, else [`INSTRUCTIONS`].
    pub instructions: Option<String>,
    pub check: Vec<String>,
    pub retries: u32,
    /// Its plan waits for a person's yes in the inbox (the dashboard's
    /// goal box); false where its caller runs or writes it (`baton plan`,
    /// a tracker's item).
    pub waits: bool,
    /// The user config the profiles came from: the planner's own run is
    /// composed with it (its profile may be one of the user's).
    pub user: Option<&'a crate::plan::UserConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Planner(#[from] PlannerError),
    #[error("the goal is empty: say what the plan should achieve")]
    EmptyGoal,
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Plan(#[from] crate::PlanError),
}

/// Chooses the planner's profile and writes its one-task plan under the
/// repository's state directory.
pub fn prepare(root: &Path, state_dir: &Path, s: Setup) -> Result<Prepared, PrepareError> {
    if s.goal.trim().is_empty() {
        return Err(PrepareError::EmptyGoal);
    }
    let profile = s.profiles.choose(s.agent)?;
    let instructions = match s.instructions {
        Some(text) => text,
        None => std::fs::read_to_string(root.join(PROJECT_INSTRUCTIONS))
            .unwrap_or_else(|_| INSTRUCTIONS.to_string()),
    };
    let stamp = crate::clock::rfc3339(crate::clock::now_ms()).replace([':', '.'], "-");
    let (out, mut planner_path) = paths(state_dir, &stamp);
    if s.waits {
        planner_path.set_file_name(format!("{stamp}{PROPOSAL_SUFFIX}"));
    }
    let io = |e: std::io::Error| PrepareError::Io(format!("{}: {e}", planner_path.display()));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let source = planner_plan(&Request {
        goal: s.goal,
        profiles: s.profiles,
        profile: &profile,
        instructions: &instructions,
        out: &out,
        check: s.check,
        retries: s.retries,
    });
    std::fs::write(&planner_path, &source).map_err(io)?;
    let source = crate::plan::compose(s.user, &source);
    let plan = Plan::parse(&planner_path, &source, Some(root))?;
    Ok(Prepared {
        profile,
        out,
        planner_path,
        plan,
    })
}

/// Where a planning run's planner writes, read back from its plan: its
/// profile's `BATON_PLAN_OUT`, or (a profile of the user config, which the
/// planner's plan does not write) its prompt.
pub fn out_of(plan_source: &str) -> Option<PathBuf> {
    let doc: toml::Table = plan_source.parse().ok()?;
    let task = doc.get("task")?.as_array()?.first()?;
    let agent = task.get("agent")?.as_str()?;
    let env = doc
        .get("agent")
        .and_then(|a| a.get(agent))
        .and_then(|p| p.get("env"));
    if let Some(out) = env.and_then(|e| e.get("BATON_PLAN_OUT")) {
        return out.as_str().map(PathBuf::from);
    }
    let prompt = task.get("prompt")?.as_str()?;
    let (_, rest) = prompt.split_once("\n\n## Where to write it\n\n")?;
    let (_, rest) = rest.split_once("\n\n    ")?;
    rest.lines().next().map(PathBuf::from)
}

/// The goal a planning run was given, read back from its planner's prompt
/// (for the inbox: what the plan waiting for a yes is for).
pub fn goal_of(plan_source: &str) -> Option<String> {
    let doc: toml::Table = plan_source.parse().ok()?;
    let prompt = doc
        .get("task")?
        .as_array()?
        .first()?
        .get("prompt")?
        .as_str()?;
    let (_, rest) = prompt.split_once("## The goal\n\n")?;
    let (goal, _) = rest.split_once("\n\n## Where to write it\n\n")?;
    Some(goal.replace("{% endraw %}{{ '{% endraw %}' }}{% raw %}", "{% endraw %}"))
}

fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=:+,@".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

pub mod proposal;

#[cfg(test)]
mod tests;
