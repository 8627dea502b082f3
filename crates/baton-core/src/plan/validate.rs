//! From TOML text to a [`Plan`], collecting every problem with its place.

use super::error::{line_col, Checker, Diagnostic};
use super::raw::{RawAgent, RawPlan, RawTask};
use super::{
    AgentProfile, Plan, Price, RunSettings, TaskSpec, DEFAULT_MAX_PARALLEL, DEFAULT_STALL_AFTER,
};
use crate::duration::parse_duration;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use toml::Spanned;

/// Longer than this is a typo, not a plan (an hour is the default).
const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

pub(super) fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub(super) fn parse(
    path: &Path,
    source: &str,
    repo_root: Option<&Path>,
    allow_no_tasks: bool,
) -> Result<Plan, Vec<Diagnostic>> {
    let mut ck = Checker {
        source,
        diags: Vec::new(),
    };
    let raw: RawPlan = match toml::from_str(source) {
        Ok(r) => r,
        Err(e) => {
            let msg = e.message().trim().to_string();
            ck.at(e.span(), None, msg);
            return Err(ck.diags);
        }
    };

    let run = check_run(&mut ck, &raw, repo_root);
    let executor = super::executor::check_executor(&mut ck, &raw.executor);
    let agents = check_agents(&mut ck, &raw, repo_root, &executor);
    let prices = check_prices(&mut ck, &raw);
    let workspace = super::workspace::check_workspace(&mut ck, &raw.workspace);

    let defaults = match &raw.defaults {
        Some(d) => {
            if let Some(id) = &d.get_ref().id {
                ck.at(
                    Some(id.span()),
                    None,
                    "[defaults] cannot set `id`: every task needs its own".into(),
                );
            }
            d.get_ref().clone()
        }
        None => RawTask::default(),
    };

    if raw.task.is_empty() && !allow_no_tasks {
        ck.at(
            None,
            None,
            "the plan has no tasks; add at least one [[task]] with an id and a prompt".into(),
        );
    }

    let mut tasks = Vec::new();
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    for t in &raw.task {
        let span = t.span();
        let merged = t.get_ref().clone().with_defaults(&defaults);
        let own_stall = merged.stall_after.is_some();
        if let Some(mut task) =
            super::task::check_task(&mut ck, span, merged, &agents, repo_root, &mut first_seen)
        {
            if !own_stall {
                task.stall_after = run.stall_after;
            }
            tasks.push(task);
        }
    }

    check_needs(&mut ck, &raw, &tasks);
    let mut run = run;
    if let Some(r) = &raw.run.resolver {
        if !agents.contains_key(r.get_ref()) {
            ck.at(
                Some(r.span()),
                None,
                format!("run.resolver names no agent profile: {:?}", r.get_ref()),
            );
        }
        run.resolver = Some(r.get_ref().clone());
    }
    if let Some(p) = &raw.run.resolver_prompt {
        if let Err(e) = crate::template::check_resolver(p.get_ref()) {
            ck.at(Some(p.span()), None, e);
        }
        run.resolver_prompt = Some(p.get_ref().clone());
    }
    let mut routes = Vec::new();
    for r in &raw.route {
        let r = r.get_ref();
        if !agents.contains_key(r.agent.get_ref()) {
            ck.at(
                Some(r.agent.span()),
                None,
                format!("route to unknown agent profile {:?}", r.agent.get_ref()),
            );
        }
        routes.push(super::Route {
            tags: r.tags.clone(),
            agent: r.agent.get_ref().clone(),
        });
    }
    if !ck.diags.is_empty() {
        // In file order, so people can fix them top to bottom.
        ck.diags
            .sort_by_key(|d| (d.line.unwrap_or(0), d.column.unwrap_or(0)));
        return Err(ck.diags);
    }
    Ok(Plan {
        path: path.to_path_buf(),
        source: source.to_string(),
        run,
        agents,
        prices,
        workspace,
        executor,
        tasks,
        routes,
    })
}

/// A batch bigger than this would make a bisection longer than the checks saved.
const MAX_VERIFY_BATCH: usize = 64;

fn check_run(ck: &mut Checker, raw: &RawPlan, repo_root: Option<&Path>) -> RunSettings {
    let mut run = RunSettings {
        max_parallel: DEFAULT_MAX_PARALLEL,
        base: "HEAD".into(),
        base_at: None,
        budget_usd: None,
        worktrees: None,
        stall_after: DEFAULT_STALL_AFTER,
        verify: Vec::new(),
        verify_batch: 1,
        overlap_allowed: false,
        resolver: None,
        resolver_prompt: None,
        land: super::Land::None,
        min_free_memory: None,
    };
    if let Some(mp) = &raw.run.max_parallel {
        if *mp.get_ref() < 1 {
            ck.at(
                Some(mp.span()),
                None,
                format!("run.max_parallel must be at least 1, not {}", mp.get_ref()),
            );
        } else {
            run.max_parallel = *mp.get_ref() as usize;
        }
    }
    if let Some(b) = &raw.run.base {
        if b.get_ref().trim().is_empty() {
            ck.at(
                Some(b.span()),
                None,
                "run.base is empty; name a commit, branch or tag".into(),
            );
        }
        run.base = b.get_ref().clone();
        run.base_at = Some(line_col(ck.source, b.span().start));
    }
    if let Some(b) = &raw.run.budget_usd {
        run.budget_usd = check_budget(ck, b, None, "run.budget_usd");
    }
    if let Some(w) = &raw.run.worktrees {
        if let Some(root) = repo_root {
            if let Err(e) = super::check_worktrees(root, Path::new(w.get_ref())) {
                ck.at(Some(w.span()), None, format!("run.worktrees: {e}"));
            }
        }
        run.worktrees = Some(w.get_ref().clone());
    }
    if let Some(v) = &raw.run.verify {
        if v.get_ref().iter().any(|c| c.trim().is_empty()) {
            ck.at(
                Some(v.span()),
                None,
                "run.verify has an empty command".into(),
            );
        }
        run.verify = v.get_ref().clone();
    }
    if let Some(b) = &raw.run.verify_batch {
        match usize::try_from(*b.get_ref()) {
            Ok(n) if (1..=MAX_VERIFY_BATCH).contains(&n) => run.verify_batch = n,
            _ => ck.at(
                Some(b.span()),
                None,
                format!(
                    "run.verify_batch must be from 1 to {MAX_VERIFY_BATCH}, not {}",
                    b.get_ref()
                ),
            ),
        }
        if raw.run.verify.is_none() {
            ck.at(
                Some(b.span()),
                None,
                "run.verify_batch is set but run.verify is not: there is nothing to check in batches".into(),
            );
        }
    }
    if let Some(l) = &raw.run.land {
        run.land = match l.get_ref().as_str() {
            "none" => super::Land::None,
            "merge" => super::Land::Merge,
            "pr" => super::Land::Pr,
            other => {
                let msg = format!("run.land must be \"none\", \"merge\" or \"pr\", not {other:?}");
                ck.at(Some(l.span()), None, msg);
                super::Land::None
            }
        };
    }
    if let Some(m) = &raw.run.min_free_memory {
        match super::parse_size(m.get_ref()) {
            Ok(b) if crate::memory::total().is_some_and(|t| b >= t) => ck.at(
                Some(m.span()),
                None,
                format!(
                    "run.min_free_memory: {} is more than this machine has ({}): no agent would ever start",
                    crate::memory::human(b),
                    crate::memory::human(crate::memory::total().unwrap_or(0))
                ),
            ),
            Ok(b) => run.min_free_memory = Some(b),
            Err(e) => ck.at(Some(m.span()), None, format!("run.min_free_memory: {e}")),
        }
    }
    if let Some(o) = &raw.run.overlap {
        match o.get_ref().as_str() {
            "wait" => {}
            "allow" => run.overlap_allowed = true,
            other => ck.at(
                Some(o.span()),
                None,
                format!("run.overlap must be \"wait\" (the default) or \"allow\", not {other:?}"),
            ),
        }
    }
    if let Some(s) = &raw.run.stall_after {
        if let Some(d) = check_duration(ck, s, None, "run.stall_after") {
            run.stall_after = d;
        }
    }
    run
}

/// A duration from the plan, within sensible bounds.
pub(super) fn check_duration(
    ck: &mut Checker,
    s: &Spanned<String>,
    subject: Option<String>,
    name: &str,
) -> Option<std::time::Duration> {
    match parse_duration(s.get_ref()) {
        Ok(d) if d > MAX_DURATION => {
            ck.at(
                Some(s.span()),
                subject,
                format!("{name} {:?} is longer than 7 days", s.get_ref()),
            );
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            ck.at(Some(s.span()), subject, format!("{name}: {e}"));
            None
        }
    }
}

pub(super) fn check_budget(
    ck: &mut Checker,
    b: &Spanned<f64>,
    subject: Option<String>,
    name: &str,
) -> Option<f64> {
    let v = *b.get_ref();
    if !(v.is_finite() && v > 0.0) {
        ck.at(
            Some(b.span()),
            subject,
            format!("{name} must be a positive number of dollars, not {v}"),
        );
        None
    } else {
        Some(v)
    }
}

fn check_agents(
    ck: &mut Checker,
    raw: &RawPlan,
    repo_root: Option<&Path>,
    executor: &super::ExecutorSettings,
) -> BTreeMap<String, AgentProfile> {
    let mut out = BTreeMap::new();
    for (name, a) in &raw.agent {
        let subject = Some(format!("agent {name:?}"));
        let a_span = a.span();
        let a = a.get_ref();
        let adapter = a.adapter.get_ref().as_str();
        if !is_valid_id(name) {
            ck.at(
                Some(a_span.clone()),
                subject.clone(),
                "profile names may use only letters, digits, '_' and '-'".into(),
            );
        }
        if crate::adapter::find(adapter).is_none() {
            ck.at(
                Some(a.adapter.span()),
                subject.clone(),
                format!(
                    "unknown adapter {adapter:?}; expected one of {}",
                    crate::adapter::names().join(", ")
                ),
            );
        }
        if let Some(cmd) = &a.command {
            if cmd.get_ref().is_empty() || cmd.get_ref()[0].trim().is_empty() {
                ck.at(
                    Some(cmd.span()),
                    subject.clone(),
                    "`command` is empty; name a program".into(),
                );
            }
        } else if adapter == "exec" {
            ck.at(
                Some(a_span.clone()),
                subject.clone(),
                "an exec profile needs `command`, e.g. command = [\"bash\", \"-ec\"]".into(),
            );
        }
        let hermetic_home = match a.home.as_ref().map(|h| (h.get_ref().as_str(), h.span())) {
            None | Some(("inherit", _)) => false,
            Some(("hermetic", _)) => true,
            Some((other, span)) => {
                ck.at(Some(span), subject.clone(), format!("home must be \"inherit\" (the user's home) or \"hermetic\" (one of its own), not {other:?}"));
                false
            }
        };
        if let Some(instr) = &a.instructions {
            check_file(ck, repo_root, instr, subject.clone(), "instructions file");
        }
        let max_parallel = a.max_parallel.as_ref().and_then(|m| {
            let n = usize::try_from(*m.get_ref()).ok().filter(|n| *n >= 1);
            if n.is_none() {
                let msg = format!("max_parallel must be at least 1, not {}", m.get_ref());
                ck.at(Some(m.span()), subject.clone(), msg);
            }
            n
        });
        let max_wait = match &a.max_wait {
            Some(w) => match parse_duration(w.get_ref()) {
                Ok(d) => d,
                Err(e) => {
                    ck.at(Some(w.span()), subject.clone(), format!("max_wait: {e}"));
                    super::DEFAULT_MAX_WAIT
                }
            },
            None => super::DEFAULT_MAX_WAIT,
        };
        if a.account.as_ref().is_some_and(|acc| acc.trim().is_empty()) {
            let msg = "account is empty: name the provider account the profile's limits are shared under, or leave it out".to_string();
            ck.at(Some(a_span.clone()), subject.clone(), msg);
        }
        let executor =
            super::executor::profile_executor(ck, executor, a.executor.as_ref(), &subject);
        // On a cluster the pod is the agent's sandbox.
        let sandbox = match executor {
            super::Executor::Local => profile_sandbox(
                ck,
                a,
                raw.defaults.as_ref().map(|d| d.get_ref()),
                a_span.clone(),
                &subject,
            ),
            super::Executor::Remote(_) => None,
        };
        out.insert(
            name.clone(),
            AgentProfile {
                name: name.clone(),
                adapter: adapter.to_string(),
                model: a.model.clone(),
                args: a.args.clone(),
                env: a.env.clone(),
                instructions: a.instructions.as_ref().map(|s| s.get_ref().clone()),
                command: a.command.as_ref().map(|c| c.get_ref().clone()),
                hermetic_home,
                max_parallel,
                sandbox,
                max_wait,
                fallback: a
                    .fallback
                    .as_ref()
                    .map(|f| f.get_ref().clone())
                    .unwrap_or_default(),
                account: a.account.clone().filter(|a| !a.trim().is_empty()),
                executor,
            },
        );
    }
    for (name, a) in &raw.agent {
        for f in a.get_ref().fallback.iter() {
            for fb in f.get_ref() {
                if fb == name || !out.contains_key(fb) {
                    let why = if fb == name {
                        "the profile itself"
                    } else {
                        "no profile of the plan"
                    };
                    ck.at(
                        Some(f.span()),
                        Some(format!("agent {name:?}")),
                        format!("fallback {fb:?} is {why}; name other profiles"),
                    );
                }
            }
        }
    }
    out
}

/// A profile's sandbox: its own fields, else `[defaults]`' `sandbox` and
/// `network`.
fn profile_sandbox(
    ck: &mut Checker,
    a: &RawAgent,
    defaults: Option<&RawTask>,
    span: std::ops::Range<usize>,
    subject: &Option<String>,
) -> Option<super::sandbox::Sandbox> {
    let mode = a
        .sandbox
        .as_ref()
        .or(defaults.and_then(|d| d.sandbox.as_ref()));
    let network = a
        .network
        .as_ref()
        .or(defaults.and_then(|d| d.network.as_ref()));
    let at = mode
        .map(|m| m.span())
        .or(network.map(|n| n.span()))
        .unwrap_or(span);
    let parsed = super::sandbox::parse(
        mode.map(|m| m.get_ref().as_str()),
        network.map(|n| n.get_ref()),
        a.hide.as_deref(),
        a.memory.as_ref().map(|m| m.get_ref().as_str()),
        a.pids.as_ref().map(|p| *p.get_ref()),
    );
    match parsed {
        Ok(s) => s,
        Err(e) => {
            ck.at(Some(at), subject.clone(), e);
            None
        }
    }
}

pub(super) fn check_file(
    ck: &mut Checker,
    repo_root: Option<&Path>,
    rel: &Spanned<String>,
    subject: Option<String>,
    what: &str,
) {
    let Some(root) = repo_root else { return };
    let p = rel.get_ref();
    if Path::new(p).is_absolute() || p.split('/').any(|c| c == "..") {
        ck.at(
            Some(rel.span()),
            subject,
            format!("{what} {p:?} must be a path inside the repository, relative to its root"),
        );
        return;
    }
    if p.split('/').any(|c| c == ".git") {
        ck.at(
            Some(rel.span()),
            subject,
            format!("{what} {p:?} is inside .git, which may hold credentials; name a file of the work tree"),
        );
        return;
    }
    if !root.join(p).is_file() {
        ck.at(
            Some(rel.span()),
            subject,
            format!("{what} {p:?} does not exist (looked in {})", root.display()),
        );
    }
}

fn check_prices(ck: &mut Checker, raw: &RawPlan) -> BTreeMap<String, Price> {
    let mut out = BTreeMap::new();
    for (model, p) in &raw.prices {
        let v = p.get_ref();
        if !(v.input.is_finite() && v.input >= 0.0 && v.output.is_finite() && v.output >= 0.0) {
            ck.at(
                Some(p.span()),
                Some(format!("prices {model:?}")),
                "input and output prices must be zero or more (USD per million tokens)".into(),
            );
        }
        out.insert(
            model.clone(),
            Price {
                input: v.input,
                output: v.output,
            },
        );
    }
    out
}

fn check_needs(ck: &mut Checker, raw: &RawPlan, tasks: &[TaskSpec]) {
    let ids: HashMap<&str, ()> = tasks.iter().map(|t| (t.id.as_str(), ())).collect();
    for t in &raw.task {
        let Some(id) = t.get_ref().id.as_ref().map(|s| s.get_ref().as_str()) else {
            continue;
        };
        for n in t.get_ref().needs.iter().flatten() {
            if !ids.contains_key(n.get_ref().as_str()) {
                ck.at(
                    Some(n.span()),
                    Some(format!("task {id:?}")),
                    format!("needs unknown task {:?}", n.get_ref()),
                );
            }
        }
    }
    let graph: Vec<(&str, Vec<&str>)> = tasks
        .iter()
        .map(|t| (t.id.as_str(), t.needs.iter().map(String::as_str).collect()))
        .collect();
    if let Err(cycle) = crate::dag::phases(&graph) {
        let first = cycle.first().copied().unwrap_or_default();
        let span = raw
            .task
            .iter()
            .find(|t| t.get_ref().id.as_ref().map(|s| s.get_ref().as_str()) == Some(first))
            .and_then(|t| t.get_ref().id.as_ref().map(|s| s.span()));
        ck.at(
            span,
            None,
            format!("the tasks form a cycle: {}", cycle.join(" -> ")),
        );
    }
}
