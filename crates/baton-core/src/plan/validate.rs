//! From TOML text to a [`Plan`], collecting every problem with its place.

use super::error::{Checker, Diagnostic};
use super::raw::{RawPlan, RawTask};
use super::{Plan, Price, RunSettings, TaskSpec, DEFAULT_MAX_PARALLEL, DEFAULT_STALL_AFTER};
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
    let mut ck = Checker::new(source);
    let mut raw: RawPlan = match toml::from_str(source) {
        Ok(r) => r,
        Err(e) => {
            let msg = e.message().trim().to_string();
            ck.at(e.span(), None, msg);
            return Err(ck.diags);
        }
    };
    super::user::refuse_in_plan(&mut ck, &raw);
    let user = super::user::merge(&mut raw, ck.user.clone());

    let run = check_run(&mut ck, &raw, repo_root);
    let executor = super::executor::check_executor(&mut ck, &raw.executor);
    let agents = super::agent::check_agents(&mut ck, &raw, repo_root, &executor);
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
            if let Some(span) = super::race::race_fields(d.get_ref()) {
                let msg = "candidates, agents, pick, rank_by, rank and judge belong to a [[task]] that races, not to [defaults]";
                ck.at(Some(span), None, msg.into());
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
    if let Some(p) = &raw.run.judge_prompt {
        if let Err(e) = crate::template::check_judge(p.get_ref()) {
            ck.at(Some(p.span()), None, e);
        }
        run.judge_prompt = Some(p.get_ref().clone());
    }
    let routes = super::route::check_routes(&mut ck, &raw.route, &agents);
    let sources = super::source::check_sources(&mut ck, &raw.source);
    let schedules = super::schedule::check_schedules(&mut ck, &raw.schedule, &agents, repo_root);
    let pull = super::land::check_land(&mut ck, &raw.land, &agents, &mut run.land);
    let hooks = super::hook::check_hooks(&mut ck, &raw.hook, &agents, repo_root);
    let notify = super::notify::check_notify(&mut ck, &raw.notify);
    let gateway = super::gateway::check_gateway(&mut ck, &raw.gateway);
    let walled = super::container::any_walled(&agents);
    let container =
        super::container::check_container(&mut ck, raw.container.as_ref(), repo_root, walled);
    super::container::check_profiles(&mut ck, &agents, &container);
    let mut workspace = workspace;
    if let Some(dev) = container
        .dev
        .as_ref()
        .filter(|_| super::container::any_walled(&agents))
    {
        // The dev container's creation is the desk's first setup, cached with it.
        let mut setup = dev.post_create.clone();
        setup.append(&mut workspace.setup);
        workspace.setup = setup;
        // Each forwarded port is published on one of the task's own ports.
        let forwards = dev.forward_ports.len().min(super::MAX_PORTS as usize) as u16;
        workspace.ports = workspace.ports.max(forwards);
    }
    let payload = raw
        .payload
        .as_ref()
        .and_then(|t| serde_json::to_value(t).ok())
        .unwrap_or(serde_json::Value::Null);
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
        sources,
        schedules,
        pull,
        hooks,
        payload,
        notify,
        gateway,
        user,
        container,
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
        judge_prompt: None,
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
        run.base_at = ck.place(b.span().start);
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
