//! The plan of a run made for one tracker item: a served plan that lands
//! its work as pull requests gives each item a run (and so a pull request)
//! of its own, with the served plan's profiles, defaults, gates and
//! `[land]`, and the item's task as its only task.

use super::{Diagnostic, Plan, PlanError};

impl Plan {
    /// This plan's own text (without a user config's head: the item's run
    /// is composed with it again) without its tasks, sources and schedules
    /// (they belong to `baton run` and `baton serve`, not to an item's run), with
    /// `snippet` (a [`Plan::task_snippet`]) as its one task, and `base`
    /// (a commit) as its `run.base` when given.
    pub fn item_source(&self, snippet: &str, base: Option<&str>) -> Result<String, PlanError> {
        let table = self.item_table(base)?;
        let mut text = toml::to_string(&table).map_err(|e| self.broken(e))?;
        text.push_str(snippet);
        Ok(text)
    }

    /// This (served) plan as an item's run takes it: without its tasks,
    /// sources, schedules and hooks, `base` (a commit) as its `run.base`
    /// when given.
    fn item_table(&self, base: Option<&str>) -> Result<toml::Table, PlanError> {
        let own = super::user::parts(&self.source).1;
        let mut table: toml::Table = own.parse().map_err(|e| self.broken(e))?;
        for key in ["task", "source", "schedule", "hook"] {
            table.remove(key);
        }
        set_base(&mut table, base);
        Ok(table)
    }

    /// The run of the plan a planner wrote for a tracker item (`mode =
    /// "plan"`): only its tasks are taken, into this (served) plan in place
    /// of its own. The planner read text nobody reviewed (an issue), so
    /// nothing else it wrote is trusted: profiles, defaults, workspace,
    /// executor and `[land]` (where the code and the token go) are the
    /// served plan's. A task without an `agent` gets the planned plan's
    /// default agent, which must be a served profile like any task's (the
    /// run's check says so otherwise). `base` (a commit) becomes `run.base`.
    pub fn planned_source(&self, planned: &str, base: Option<&str>) -> Result<String, PlanError> {
        let planned: toml::Table = planned.parse().map_err(|e| self.broken(e))?;
        let default_agent = planned
            .get("defaults")
            .and_then(|d| d.get("agent"))
            .cloned();
        let mut tasks = match planned.get("task") {
            Some(toml::Value::Array(tasks)) => tasks.clone(),
            _ => Vec::new(),
        };
        for task in &mut tasks {
            if let (toml::Value::Table(t), Some(a)) = (task, &default_agent) {
                t.entry("agent").or_insert_with(|| a.clone());
            }
        }
        let mut table = self.item_table(base)?;
        table.insert("task".into(), toml::Value::Array(tasks));
        toml::to_string(&table).map_err(|e| self.broken(e))
    }

    fn broken(&self, e: impl std::fmt::Display) -> PlanError {
        PlanError::Invalid {
            path: self.path.clone(),
            diagnostics: vec![Diagnostic {
                line: None,
                column: None,
                subject: Some("a tracker item's run".into()),
                message: format!("its plan cannot be made from this one: {e}"),
            }],
        }
    }
}

/// `run.base` set to `base` (a commit), when given.
fn set_base(table: &mut toml::Table, base: Option<&str>) {
    let Some(base) = base else { return };
    let run = table
        .entry("run")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(run) = run {
        run.insert("base".into(), toml::Value::String(base.into()));
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::{Land, Plan};
    use std::path::Path;

    const SERVED: &str = r#"
[agent.a]
adapter = "exec"
command = ["true"]

[defaults]
agent = "a"
gates = ["test -f out.txt"]

[[task]]
id = "nightly"
prompt = "for baton run only"

[[source]]
kind = "command"
command = ["./items.sh"]

[[schedule]]
name = "tidy"
cron = "0 3 * * *"
prompt = "tidy up"

[land]
mode = "pr"
follow = true
repo = "acme/app"
"#;

    #[test]
    fn an_items_plan_keeps_the_settings_and_has_only_the_items_task() {
        let served = Plan::parse_config(Path::new("baton.toml"), SERVED, None).unwrap();
        let snippet = Plan::task_snippet("github-12-fix", "Fix it.\n\"quoted\"", None);
        let text = served.item_source(&snippet, Some("0123abc")).unwrap();
        let p = Plan::parse(Path::new("item.toml"), &text, None).unwrap();
        let ids: Vec<&str> = p.tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["github-12-fix"]);
        assert_eq!(p.tasks[0].prompt, "Fix it.\n\"quoted\"");
        assert_eq!(p.tasks[0].agent, "a");
        assert_eq!(p.tasks[0].gates.len(), 1);
        assert!(p.sources.is_empty() && p.schedules.is_empty());
        assert_eq!(p.run.land, Land::Pr);
        assert_eq!(p.run.base, "0123abc");
        let same = served.item_source(&snippet, None).unwrap();
        let p = Plan::parse(Path::new("item.toml"), &same, None).unwrap();
        assert_eq!(p.run.base, "HEAD");
        assert!(p.pull.follow);
        assert_eq!(p.pull.repo.as_deref(), Some("acme/app"));
    }

    #[test]
    fn a_planned_plan_brings_only_its_tasks() {
        let served = Plan::parse_config(Path::new("baton.toml"), SERVED, None).unwrap();
        // The planner copied the served profile, and tried more.
        let planned = "[agent.a]\nadapter = \"exec\"\ncommand = [\"true\"]\n\n[defaults]\nagent = \"a\"\n\n[[task]]\nid = \"one\"\nprompt = \"x\"\n\n[[task]]\nid = \"two\"\nneeds = [\"one\"]\nprompt = \"y\"\n";
        let text = served.planned_source(planned, Some("abc123")).unwrap();
        let p = Plan::parse(Path::new("item.toml"), &text, None).unwrap();
        let ids: Vec<&str> = p.tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["one", "two"]);
        assert_eq!(p.tasks[1].agent, "a");
        assert_eq!(p.run.land, Land::Pr);
        assert_eq!(p.run.base, "abc123");
        // Where the code and the token go, and what runs, stay the served plan's.
        let steered = format!("{planned}\n[land]\nmode = \"merge\"\napi_url = \"https://elsewhere.example\"\n\n[agent.b]\nadapter = \"exec\"\ncommand = [\"curl\"]\n\n[workspace]\nsetup = [\"curl elsewhere\"]\n");
        let text = served.planned_source(&steered, None).unwrap();
        let p = Plan::parse(Path::new("item.toml"), &text, None).unwrap();
        assert_eq!(p.run.land, Land::Pr);
        assert_eq!(p.pull.api_url, "https://api.github.com");
        assert!(!p.agents.contains_key("b"));
        assert!(p.workspace.setup.is_empty());
        // A task for a profile the served plan does not have does not run.
        let other = planned
            .replace("agent = \"a\"", "agent = \"b\"")
            .replace("[agent.a]", "[agent.b]");
        let text = served.planned_source(&other, None).unwrap();
        let err = Plan::parse(Path::new("item.toml"), &text, None).unwrap_err();
        assert!(err.to_string().contains("\"b\""), "{err}");
    }
}
