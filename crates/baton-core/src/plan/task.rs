//! One `[[task]]` checked, field by field, into a [`TaskSpec`]: every
//! problem is reported at its place and the check goes on, so one pass
//! names them all.

use super::error::Checker;
use super::raw::RawTask;
use super::validate::{check_budget, check_duration, check_file, is_valid_id};
use super::{AgentProfile, FileSet, OnFailure, TaskSpec, DEFAULT_STALL_AFTER, DEFAULT_TIMEOUT};
use regex::Regex;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

/// Task ids name a branch and a directory: `<id>.lock` must fit in a file name.
const MAX_ID_LEN: usize = 128;

/// Tasks a lead may add when it says nothing.
const DEFAULT_MAX_TASKS: u32 = 10;

/// Who a problem is about, and where to point when a field is missing.
struct Subject {
    name: Option<String>,
    id_span: Range<usize>,
}

impl Subject {
    fn at(&self, ck: &mut Checker, span: Option<Range<usize>>, msg: String) {
        ck.at(span, self.name.clone(), msg);
    }

    /// A problem with no field of its own to point at: the task's id.
    fn at_id(&self, ck: &mut Checker, msg: String) {
        ck.at(Some(self.id_span.clone()), self.name.clone(), msg);
    }
}

pub(super) fn check_task(
    ck: &mut Checker,
    span: Range<usize>,
    t: RawTask,
    agents: &BTreeMap<String, AgentProfile>,
    repo_root: Option<&Path>,
    first_seen: &mut HashMap<String, usize>,
) -> Option<TaskSpec> {
    let Some(id_s) = &t.id else {
        ck.at(Some(span), None, "a [[task]] has no `id`".into());
        return None;
    };
    let id = id_s.get_ref().clone();
    let who = Subject {
        name: Some(format!("task {id:?}")),
        id_span: id_s.span(),
    };
    check_id(ck, &who, id_s, first_seen);
    let prompt = prompt(ck, &who, &t);
    // A race of `agents` needs no `agent` of its own: it is its first candidate's.
    let first = t.agents.as_ref().and_then(|a| a.get_ref().first().cloned());
    let agent = match (&t.agent, first) {
        (None, Some(first)) => first,
        _ => agent(ck, &who, &t, agents),
    };
    let profile = agents.get(&agent);
    let needs: Vec<String> = t
        .needs
        .as_ref()
        .map(|n| n.iter().map(|s| s.get_ref().clone()).collect())
        .unwrap_or_default();
    let context = context(ck, &who, &t, repo_root);
    if profile.is_some_and(|a| a.adapter == "exec") {
        check_exec_prompt(ck, &who, &t, &prompt, &context, repo_root);
    }
    if !prompt.is_empty() {
        if let Err(e) = crate::template::check(&prompt, &needs) {
            who.at(ck, t.prompt.as_ref().map(|p| p.span()), e);
        }
    }
    let subject = who.name.clone();
    let timeout = t.timeout.as_ref();
    let timeout = timeout.and_then(|s| check_duration(ck, s, subject.clone(), "timeout"));
    let stall_after = t.stall_after.as_ref();
    let stall_after =
        stall_after.and_then(|s| check_duration(ck, s, subject.clone(), "stall_after"));
    let budget_usd = t.budget_usd.as_ref();
    let budget_usd = budget_usd.and_then(|b| check_budget(ck, b, subject.clone(), "budget_usd"));
    let lead = check_lead(ck, &t, profile.map(|a| a.adapter.as_str()), &subject);
    check_placement(ck, &who, &t, profile);
    let gates = t.gates.clone().unwrap_or_default();
    check_gates(ck, &who, &gates);
    let race = super::race::check_race(ck, &subject, &t, &agent, agents);
    Some(TaskSpec {
        id,
        prompt,
        agent,
        needs,
        context,
        gates,
        retries: retries(ck, &who, &t),
        timeout: timeout.unwrap_or(DEFAULT_TIMEOUT),
        budget_usd,
        approve: t.approve.unwrap_or(false),
        merge: t.merge.unwrap_or(true),
        fail_if: fail_if(ck, &who, &t),
        on_failure: on_failure(ck, &who, &t),
        stall_after: stall_after.unwrap_or(DEFAULT_STALL_AFTER),
        files: files(ck, &who, &t),
        resolve_conflicts: resolve_conflicts(ck, &who, &t),
        lead,
        race,
        candidate: None,
    })
}

/// The id: its characters, its length, and that no task before had it.
fn check_id(
    ck: &mut Checker,
    who: &Subject,
    id_s: &Spanned<String>,
    first_seen: &mut HashMap<String, usize>,
) {
    let id = id_s.get_ref();
    if !is_valid_id(id) {
        who.at_id(
            ck,
            "task ids may use only letters, digits, '_' and '-'".into(),
        );
    } else if id.len() > MAX_ID_LEN {
        ck.at(
            Some(id_s.span()),
            None,
            format!(
                "task id of {} characters: at most {MAX_ID_LEN} (it names a git branch and a directory)",
                id.len()
            ),
        );
    }
    if let Some(&prev) = first_seen.get(id) {
        let first = match ck.place(prev) {
            Some((line, _)) => format!("first defined on line {line}"),
            None => "first defined in the user config".into(),
        };
        who.at_id(ck, format!("duplicate task id ({first})"));
    } else {
        first_seen.insert(id.clone(), id_s.span().start);
    }
}

fn prompt(ck: &mut Checker, who: &Subject, t: &RawTask) -> String {
    match &t.prompt {
        Some(p) if p.get_ref().contains('\0') => {
            let msg = "`prompt` contains a NUL byte, which no program can be given";
            who.at(ck, Some(p.span()), msg.into());
            String::new()
        }
        Some(p) if !p.get_ref().trim().is_empty() => p.get_ref().clone(),
        Some(p) => {
            who.at(ck, Some(p.span()), "`prompt` is empty".into());
            String::new()
        }
        None => {
            who.at_id(ck, "no `prompt` (and none in [defaults])".into());
            String::new()
        }
    }
}

/// The task's agent profile, which the plan must define.
fn agent(
    ck: &mut Checker,
    who: &Subject,
    t: &RawTask,
    agents: &BTreeMap<String, AgentProfile>,
) -> String {
    let Some(a) = &t.agent else {
        who.at_id(ck, "no `agent`, and [defaults] names none".into());
        return String::new();
    };
    if !agents.contains_key(a.get_ref()) {
        let known: Vec<&str> = agents.keys().map(String::as_str).collect();
        let known = if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        };
        let msg = format!(
            "unknown agent profile {:?} (the plan defines: {known})",
            a.get_ref()
        );
        who.at(ck, Some(a.span()), msg);
    }
    a.get_ref().clone()
}

fn context(ck: &mut Checker, who: &Subject, t: &RawTask, repo_root: Option<&Path>) -> Vec<String> {
    let files = t.context.iter().flatten();
    files
        .map(|f| {
            check_file(ck, repo_root, f, who.name.clone(), "context file");
            f.get_ref().clone()
        })
        .collect()
}

/// An exec prompt is one argument: what is known of it now must fit.
fn check_exec_prompt(
    ck: &mut Checker,
    who: &Subject,
    t: &RawTask,
    prompt: &str,
    context: &[String],
    repo_root: Option<&Path>,
) {
    let files = context
        .iter()
        .filter_map(|f| std::fs::metadata(repo_root?.join(f)).ok())
        .map(|m| m.len() as usize);
    let known = prompt.len() + files.sum::<usize>();
    if known >= crate::adapter::exec::MAX_ARG {
        let msg = format!(
            "the prompt (with its context files) is {} KiB, more than one argument can carry (128 KiB); an exec command can read a long prompt from $BATON_PROMPT_FILE",
            known / 1024
        );
        who.at(ck, t.prompt.as_ref().map(|p| p.span()), msg);
    }
}

fn retries(ck: &mut Checker, who: &Subject, t: &RawTask) -> u32 {
    match &t.retries {
        Some(r) if *r.get_ref() < 0 || *r.get_ref() > 100 => {
            let msg = format!("retries must be between 0 and 100, not {}", r.get_ref());
            who.at(ck, Some(r.span()), msg);
            0
        }
        Some(r) => *r.get_ref() as u32,
        None => 0,
    }
}

fn fail_if(ck: &mut Checker, who: &Subject, t: &RawTask) -> Option<Regex> {
    let s = t.fail_if.as_ref()?;
    if s.get_ref().is_empty() {
        let msg = "fail_if is empty: it would match every final message";
        who.at(ck, Some(s.span()), msg.into());
        return None;
    }
    match Regex::new(s.get_ref()) {
        Ok(r) => Some(r),
        Err(e) => {
            // The regex crate's message ends with the line that says what.
            let text = e.to_string();
            let msg = text.lines().last().unwrap_or("invalid").trim();
            let msg = format!("fail_if is not a valid regex: {msg}");
            who.at(ck, Some(s.span()), msg);
            None
        }
    }
}

fn on_failure(ck: &mut Checker, who: &Subject, t: &RawTask) -> OnFailure {
    let said = t.on_failure.as_ref();
    match said.map(|s| (s.get_ref().as_str(), s.span())) {
        None | Some(("stop", _)) => OnFailure::Stop,
        Some(("continue", _)) => OnFailure::Continue,
        Some((other, span)) => {
            let msg = format!("on_failure must be \"stop\" or \"continue\", not {other:?}");
            who.at(ck, Some(span), msg);
            OnFailure::Stop
        }
    }
}

/// The files a task says it changes: globs relative to the root.
fn files(ck: &mut Checker, who: &Subject, t: &RawTask) -> FileSet {
    let Some(f) = &t.files else {
        return FileSet::default();
    };
    let globs = f.get_ref();
    if globs
        .iter()
        .any(|g| g.trim().is_empty() || g.starts_with('/'))
    {
        let msg =
            "files are globs relative to the repository root (`src/api/**`), not empty or absolute";
        who.at(ck, Some(f.span()), msg.into());
        return FileSet::default();
    }
    FileSet::new(globs).unwrap_or_else(|e| {
        who.at(ck, Some(f.span()), format!("files: {e}"));
        FileSet::default()
    })
}

/// `on_conflict = "resolve"`: a conflicting merge goes to a resolver.
fn resolve_conflicts(ck: &mut Checker, who: &Subject, t: &RawTask) -> bool {
    let said = t.on_conflict.as_ref();
    match said.map(|s| (s.get_ref().as_str(), s.span())) {
        None | Some(("fail", _)) => false,
        Some(("resolve", _)) => true,
        Some((other, span)) => {
            let msg =
                format!("on_conflict must be \"fail\" (the default) or \"resolve\", not {other:?}");
            who.at(ck, Some(span), msg);
            false
        }
    }
}

/// Where the task may run: a lead stays on this machine, and sandboxes
/// belong to profiles.
fn check_placement(ck: &mut Checker, who: &Subject, t: &RawTask, profile: Option<&AgentProfile>) {
    let remote = profile.is_some_and(|a| matches!(a.executor, super::Executor::Remote(_)));
    if let (Some(l), true) = (t.lead.as_ref().filter(|l| *l.get_ref()), remote) {
        let msg = "a lead task runs on this machine (its tools change the run); give it a profile with executor = \"local\"";
        who.at(ck, Some(l.span()), msg.into());
    }
    let misplaced = t.sandbox.as_ref().map(|s| s.span());
    if let Some(at) = misplaced.or(t.network.as_ref().map(|n| n.span())) {
        let msg = "sandbox and network belong to an agent profile (or [defaults]), not to a task";
        who.at(ck, Some(at), msg.into());
    }
}

fn check_gates(ck: &mut Checker, who: &Subject, gates: &[String]) {
    for g in gates {
        if g.trim().is_empty() {
            who.at_id(ck, "a gate is an empty command".into());
        } else if g.contains('\0') {
            let msg = format!(
                "the gate {:?} holds a NUL character, which no command can carry",
                g.replace('\0', "\\0")
            );
            who.at_id(ck, msg);
        }
    }
}

/// `lead = true` (with `max_tasks`): only for agents that can speak MCP.
fn check_lead(
    ck: &mut Checker,
    t: &RawTask,
    adapter: Option<&str>,
    subject: &Option<String>,
) -> Option<u32> {
    let max = t.max_tasks.as_ref().map(|m| (*m.get_ref(), m.span()));
    let lead = t.lead.as_ref().filter(|l| *l.get_ref());
    let Some(lead) = lead else {
        if let Some((_, span)) = max {
            ck.at(
                Some(span),
                subject.clone(),
                "max_tasks is for a lead task (lead = true)".into(),
            );
        }
        return None;
    };
    if let Some(a) = adapter
        .and_then(crate::adapter::find)
        .filter(|a| a.mcp.is_none())
    {
        ck.at(
            Some(lead.span()),
            subject.clone(),
            format!(
                "a lead task's agent must speak MCP ({}); {} does not",
                crate::adapter::mcp_names().join(", "),
                a.name
            ),
        );
    }
    match max {
        Some((n, span)) if !(1..=1000).contains(&n) => {
            ck.at(
                Some(span),
                subject.clone(),
                format!("max_tasks must be between 1 and 1000, not {n}"),
            );
            None
        }
        Some((n, _)) => Some(n as u32),
        None => Some(DEFAULT_MAX_TASKS),
    }
}
