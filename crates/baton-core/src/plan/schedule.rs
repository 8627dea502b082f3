//! `[[schedule]]`: what `baton serve` starts at the times a cron expression
//! names (UTC): a run of another plan file (`plan`), or a task queued to
//! the service run (`prompt`, routed like `baton add`). A schedule never
//! overlaps itself: when its time comes while its last run or task still
//! goes on, that time is skipped. Times missed while the server was down
//! are not made up.

use super::error::Checker;
use super::raw::RawSchedule;
use super::validate::{check_file, is_valid_id};
use super::AgentProfile;
use crate::cron::Cron;
use std::collections::BTreeMap;
use std::path::Path;
use toml::Spanned;

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub name: String,
    /// As written, for people.
    pub cron_text: String,
    pub cron: Cron,
    pub what: Scheduled,
}

/// What a schedule starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Scheduled {
    /// A run of this plan file (relative to the repository's root).
    Plan(String),
    /// A task of the service run.
    Task {
        prompt: String,
        agent: Option<String>,
        tags: Vec<String>,
    },
}

pub(super) fn check_schedules(
    ck: &mut Checker,
    raw: &[Spanned<RawSchedule>],
    agents: &BTreeMap<String, AgentProfile>,
    repo_root: Option<&Path>,
) -> Vec<Schedule> {
    let mut out: Vec<Schedule> = Vec::new();
    for r in raw {
        let Some(s) = check_one(ck, r, agents, repo_root) else {
            continue;
        };
        if out.iter().any(|o| o.name == s.name) {
            let at = r.get_ref().name.as_ref().map(|n| n.span());
            ck.at(at, None, format!("two schedules are named {:?}", s.name));
            continue;
        }
        out.push(s);
    }
    out
}

fn check_one(
    ck: &mut Checker,
    r: &Spanned<RawSchedule>,
    agents: &BTreeMap<String, AgentProfile>,
    repo_root: Option<&Path>,
) -> Option<Schedule> {
    let (span, s) = (r.span(), r.get_ref());
    let Some(name) = &s.name else {
        let msg = "a [[schedule]] needs a `name` (it keeps its runs from overlapping)";
        ck.at(Some(span), None, msg.into());
        return None;
    };
    let subject = Some(format!("schedule {:?}", name.get_ref()));
    if !is_valid_id(name.get_ref()) {
        let msg = "schedule names may use only letters, digits, '_' and '-'";
        ck.at(Some(name.span()), subject.clone(), msg.into());
    }
    let Some(cron_text) = &s.cron else {
        let msg = "a schedule needs `cron`, e.g. \"0 3 * * 1-5\" (03:00 UTC on weekdays)";
        ck.at(Some(span), subject, msg.into());
        return None;
    };
    let cron = match Cron::parse(cron_text.get_ref()) {
        Ok(c) => c,
        Err(e) => {
            ck.at(Some(cron_text.span()), subject, format!("cron: {e}"));
            return None;
        }
    };
    let starts = Starts {
        plan: &s.plan,
        prompt: &s.prompt,
        agent: &s.agent,
        tags: &s.tags,
    };
    let what = check_starts(ck, &starts, "schedule", subject, span, agents, repo_root)?;
    Some(Schedule {
        name: name.get_ref().clone(),
        cron_text: cron_text.get_ref().clone(),
        cron,
        what,
    })
}

/// What a schedule or a hook says it starts, as written.
pub(super) struct Starts<'a> {
    pub plan: &'a Option<Spanned<String>>,
    pub prompt: &'a Option<Spanned<String>>,
    pub agent: &'a Option<Spanned<String>>,
    pub tags: &'a [String],
}

/// A `plan` (a plan file's run) or a `prompt` (a task, with `agent` or
/// `tags`): exactly one; `what` names the table in messages.
pub(super) fn check_starts(
    ck: &mut Checker,
    s: &Starts<'_>,
    what: &str,
    subject: Option<String>,
    span: std::ops::Range<usize>,
    agents: &BTreeMap<String, AgentProfile>,
    repo_root: Option<&Path>,
) -> Option<Scheduled> {
    let started = match (s.plan, s.prompt) {
        (Some(p), None) => {
            check_file(ck, repo_root, p, subject.clone(), &format!("{what}'s plan"));
            Scheduled::Plan(p.get_ref().clone())
        }
        (None, Some(p)) if !p.get_ref().trim().is_empty() => {
            let unknown = s
                .agent
                .as_ref()
                .filter(|a| !agents.contains_key(a.get_ref()));
            if let Some(a) = unknown {
                let msg = format!("unknown agent profile {:?}", a.get_ref());
                ck.at(Some(a.span()), subject.clone(), msg);
            }
            Scheduled::Task {
                prompt: p.get_ref().clone(),
                agent: s.agent.as_ref().map(|a| a.get_ref().clone()),
                tags: s.tags.to_vec(),
            }
        }
        _ => {
            let msg = format!("a {what} starts either a `plan` (a plan file's run) or a `prompt` (a task): give one");
            ck.at(Some(span), subject, msg);
            return None;
        }
    };
    if matches!(started, Scheduled::Plan(_)) && (s.agent.is_some() || !s.tags.is_empty()) {
        let msg = format!("`agent` and `tags` are for a {what}'s `prompt`, not its `plan`");
        ck.at(Some(span), subject, msg);
    }
    Some(started)
}

#[cfg(test)]
mod tests {
    use crate::plan::parse_with_a_profile as parse;
    use crate::plan::Scheduled;

    #[test]
    fn a_schedule_starts_a_plan_or_a_task() {
        let p = parse("[[schedule]]\nname = \"nightly\"\ncron = \"0 3 * * 1-5\"\nplan = \"nightly.toml\"\n\n[[schedule]]\nname = \"deps\"\ncron = \"0 6 * * mon\"\nprompt = \"update the dependencies\"\ntags = [\"deps\"]\n").unwrap();
        assert_eq!(p.schedules[0].what, Scheduled::Plan("nightly.toml".into()));
        assert!(matches!(&p.schedules[1].what, Scheduled::Task { tags, .. } if tags == &["deps"]));
    }

    #[test]
    fn schedule_mistakes_are_plan_errors_with_their_place() {
        for (text, says) in [
            ("[[schedule]]\ncron = \"* * * * *\"\nplan = \"x.toml\"\n", "needs a `name`"),
            ("[[schedule]]\nname = \"n\"\nplan = \"x.toml\"\n", "needs `cron`"),
            ("[[schedule]]\nname = \"n\"\ncron = \"61 * * * *\"\nplan = \"x.toml\"\n", "cron: minute: 61 is out of range"),
            ("[[schedule]]\nname = \"n\"\ncron = \"* * * * *\"\n", "either a `plan`"),
            ("[[schedule]]\nname = \"n\"\ncron = \"* * * * *\"\nplan = \"x\"\nprompt = \"y\"\n", "either a `plan`"),
            ("[[schedule]]\nname = \"n\"\ncron = \"* * * * *\"\nprompt = \"y\"\nagent = \"b\"\n", "unknown agent profile \"b\""),
            ("[[schedule]]\nname = \"n\"\ncron = \"* * * * *\"\nplan = \"x\"\ntags = [\"t\"]\n", "not its `plan`"),
            ("[[schedule]]\nname = \"n\"\ncron = \"* * * * *\"\nplan = \"x\"\n\n[[schedule]]\nname = \"n\"\ncron = \"* * * * *\"\nplan = \"y\"\n", "two schedules are named \"n\""),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(says), "{text}: {err}");
            assert!(err.contains("baton.toml:"), "{text}: no place in {err}");
        }
    }
}
