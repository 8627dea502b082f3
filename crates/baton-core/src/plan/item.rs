//! The plan of a run made for one tracker item: a served plan that lands
//! its work as pull requests gives each item a run (and so a pull request)
//! of its own, with the served plan's profiles, defaults, gates and
//! `[land]`, and the item's task as its only task.

use super::{Diagnostic, Plan, PlanError};

impl Plan {
    /// This plan's text without its tasks, sources and schedules (they
    /// belong to `baton run` and `baton serve`, not to an item's run), with
    /// `snippet` (a [`Plan::task_snippet`]) as its one task, and `base`
    /// (a commit) as its `run.base` when given.
    pub fn item_source(&self, snippet: &str, base: Option<&str>) -> Result<String, PlanError> {
        let mut table: toml::Table = self.source.parse().map_err(|e| self.broken(e))?;
        for key in ["task", "source", "schedule"] {
            table.remove(key);
        }
        set_base(&mut table, base);
        let mut text = toml::to_string(&table).map_err(|e| self.broken(e))?;
        text.push_str(snippet);
        Ok(text)
    }

    /// The plan a planner wrote for a tracker item (`mode = "plan"`),
    /// checked, as its run takes it: without sources, schedules or hooks,
    /// with this (served) plan's `[land]` when it has none of its own, and
    /// `base` (a commit) as its `run.base` when given.
    pub fn planned_source(&self, planned: &str, base: Option<&str>) -> Result<String, PlanError> {
        let mut table: toml::Table = planned.parse().map_err(|e| self.broken(e))?;
        for key in ["source", "schedule", "hook"] {
            table.remove(key);
        }
        let served: toml::Table = self.source.parse().map_err(|e| self.broken(e))?;
        if let (false, Some(land)) = (table.contains_key("land"), served.get("land")) {
            table.insert("land".into(), land.clone());
        }
        set_base(&mut table, base);
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
    fn a_planned_plan_runs_as_written_with_the_served_landing() {
        let served = Plan::parse_config(Path::new("baton.toml"), SERVED, None).unwrap();
        let planned = "[agent.sh]\nadapter = \"exec\"\ncommand = [\"true\"]\n\n[defaults]\nagent = \"sh\"\n\n[[task]]\nid = \"one\"\nprompt = \"x\"\n\n[[task]]\nid = \"two\"\nneeds = [\"one\"]\nprompt = \"y\"\n";
        let text = served.planned_source(planned, Some("abc123")).unwrap();
        let p = Plan::parse(Path::new("item.toml"), &text, None).unwrap();
        let ids: Vec<&str> = p.tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["one", "two"]);
        assert_eq!(p.tasks[1].agent, "sh");
        assert_eq!(p.run.land, Land::Pr);
        assert_eq!(p.run.base, "abc123");
        // A plan with a [land] of its own keeps it.
        let own = format!("{planned}\n[land]\nmode = \"merge\"\n");
        let text = served.planned_source(&own, None).unwrap();
        let p = Plan::parse(Path::new("item.toml"), &text, None).unwrap();
        assert_eq!(p.run.land, Land::Merge);
    }
}
