//! Runs driven by the server: plans started from the API, the standing
//! service run that takes queued tasks, and runs left interrupted by an
//! earlier server or a crashed `baton run`, resumed at start.

use crate::state::{AppState, Driven};
use baton_core::control::{self, ControlError};
use baton_core::engine::Answer;
use baton_core::model::{ControlKind, RunKind};
use baton_core::plan::race::RaceFields;
use baton_core::plan::{Land, TaskSpec};
use baton_core::store::{Added, NewTask};
use baton_core::{Engine, EngineHandle, Plan, RunOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why the runner could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The request itself is wrong (a plan, a prompt, a profile).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NoRun(String),
    /// The run is in a state that does not allow it.
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("{0}")]
    Internal(String),
}

fn invalid(e: impl std::fmt::Display) -> RunnerError {
    RunnerError::Invalid(e.to_string())
}

fn internal(e: impl std::fmt::Display) -> RunnerError {
    RunnerError::Internal(e.to_string())
}

pub(crate) fn options(state: &AppState, service: bool) -> RunOptions {
    RunOptions {
        watchdog: state.opts.watchdog.clone(),
        baton: state.opts.baton.clone(),
        drivers: state.opts.drivers,
        gateway: state.opts.gateway,
        store: Some(state.store.clone()),
        user: state.opts.user.clone(),
        service,
        ..Default::default()
    }
}

/// Drives an engine in the background until it ends or the server stops;
/// returns its handle.
fn spawn(state: &Arc<AppState>, engine: Engine) -> EngineHandle {
    let handle = engine.handle();
    let run = engine.run_id().to_string();
    let mut rx = state.shutdown_rx();
    let st = state.clone();
    let id = run.clone();
    let land = engine.land_setting();
    let task = tokio::spawn(async move {
        let stop = async move {
            while !*rx.borrow() {
                if rx.changed().await.is_err() {
                    break;
                }
            }
        };
        match engine.drive(stop).await {
            Ok(report) if report.exit_code() == 0 && land != Land::None => {
                land_run(&st, &id, land).await
            }
            Ok(_) => {}
            Err(e) => tracing::error!("run {id}: {e}"),
        }
        if let Ok(mut g) = st.engines.lock() {
            g.remove(&id);
        }
    });
    if let Ok(mut g) = state.engines.lock() {
        let driven = Driven {
            task,
            handle: handle.clone(),
        };
        g.insert(run, driven);
    }
    handle
}

pub fn is_live(state: &AppState, run: &str) -> bool {
    control::is_live(&state.paths, run)
}

/// A run's report as JSON (each task with its agent, needs, attention and
/// allowed actions), and whether it is going on: the API's and the MCP tools'.
pub async fn report(state: &AppState, run: &str) -> Result<serde_json::Value, String> {
    let report = baton_core::Report::load(&state.store, run)
        .await
        .map_err(|e| e.to_string())?;
    let mut v = serde_json::to_value(&report).map_err(|e| e.to_string())?;
    v["live"] = serde_json::json!(is_live(state, run));
    Ok(v)
}

/// Starts a run of a plan file (a path inside the repository).
pub async fn start_plan(state: &Arc<AppState>, plan: &str) -> Result<String, RunnerError> {
    let rel = Path::new(plan);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(invalid(
            "plan must be a path inside the repository, relative to its root",
        ));
    }
    let root = &state.opts.repo.root;
    let source = tokio::fs::read_to_string(root.join(rel))
        .await
        .map_err(|e| invalid(format!("cannot read plan {plan}: {e}")))?;
    start_source(state, rel, &source).await
}

/// Starts a run of a plan given as text (`path` names it in reports).
pub async fn start_source(
    state: &Arc<AppState>,
    path: &Path,
    source: &str,
) -> Result<String, RunnerError> {
    let root = &state.opts.repo.root;
    let source = state.opts.compose(source);
    let plan = Plan::parse(path, &source, Some(root)).map_err(invalid)?;
    start_engine(state, plan, options(state, false)).await
}

/// Starts a run of `plan` and drives it in the background; its id.
async fn start_engine(
    state: &Arc<AppState>,
    plan: Plan,
    opts: RunOptions,
) -> Result<String, RunnerError> {
    let engine = Engine::start(state.opts.repo.clone(), plan, opts)
        .await
        .map_err(invalid)?;
    Ok(spawn(state, engine).run_id().to_string())
}

/// Starts a run of plan file `plan` for a delivery to hook `hook`: the
/// plan with the delivery as its `[payload]`, written under baton's state
/// directory (named by the hook and the time) so that a resumed run reads
/// it back.
pub async fn start_delivered(
    state: &Arc<AppState>,
    hook: &str,
    plan: &str,
    payload: &serde_json::Value,
) -> Result<String, RunnerError> {
    let root = &state.opts.repo.root;
    let source = tokio::fs::read_to_string(root.join(plan))
        .await
        .map_err(|e| invalid(format!("cannot read the hook's plan {plan}: {e}")))?;
    let text = baton_core::plan::with_payload(&source, payload)
        .map_err(|e| invalid(format!("the hook's plan {plan}: {e}")))?;
    // Two deliveries in one millisecond get files of their own.
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let at = baton_core::clock::now_ms();
    start_kept(state, "hooks", &format!("{hook}-{at}-{n}"), &text, None).await
}

/// Starts a run of plan text `text`, kept first as `<dir>/<name>.toml`
/// under baton's state directory (a resumed run reads it back). It is
/// checked before it is written: text that is no plan leaves nothing.
async fn start_kept(
    state: &Arc<AppState>,
    dir: &str,
    name: &str,
    text: &str,
    base_branch: Option<String>,
) -> Result<String, RunnerError> {
    let (file, shown) = kept_plan(state, dir, name);
    let composed = state.opts.compose(text);
    let plan = Plan::parse(&shown, &composed, Some(&state.opts.repo.root)).map_err(invalid)?;
    // The file holds the plan's own text: the user config's head may hold
    // secret values, and a resumed run composes it again.
    write_plan(&file, baton_core::plan::own_text(&composed)).await?;
    let mut opts = options(state, false);
    opts.base_branch = base_branch;
    start_engine(state, plan, opts).await
}

/// Where a plan baton makes (for a tracker item, for a delivery) is kept,
/// under its state directory: the file, and as runs name it (relative to
/// the repository's root when inside it).
fn kept_plan(state: &AppState, dir: &str, name: &str) -> (PathBuf, PathBuf) {
    let file = state
        .opts
        .repo
        .state_dir()
        .join(dir)
        .join(format!("{name}.toml"));
    let root = &state.opts.repo.root;
    let shown = file.strip_prefix(root).unwrap_or(&file).to_path_buf();
    (file, shown)
}

async fn write_plan(file: &Path, text: &str) -> Result<(), RunnerError> {
    let written = match file.parent() {
        Some(dir) => tokio::fs::create_dir_all(dir).await,
        None => Ok(()),
    };
    let written = match written {
        Ok(()) => tokio::fs::write(file, text).await,
        Err(e) => Err(e),
    };
    written.map_err(|e| internal(format!("cannot write {}: {e}", file.display())))
}

/// Adds a task (a `[[task]]` TOML snippet) to a run going on: checked
/// against the run's own profiles and tasks first, so a task that cannot
/// run is refused and nothing is stored.
pub async fn add_to_run(
    state: &Arc<AppState>,
    run: &str,
    id: &str,
    snippet: &str,
    cap: Option<u32>,
) -> Result<(), RunnerError> {
    let r = run.to_string();
    let (rec, tasks) = state
        .store
        .call(move |s| Ok::<_, baton_core::store::StoreError>((s.run(&r)?, s.tasks(&r)?)))
        .await
        .map_err(|e| RunnerError::NoRun(e.to_string()))?;
    if !is_live(state, run) {
        return Err(RunnerError::Busy(format!(
            "run {run} is not going on (status: {}); tasks can be added only to a run going on",
            rec.status
        )));
    }
    if tasks.iter().any(|t| t.id == id) {
        return Err(invalid(format!("run {run} has a task {id:?} already")));
    }
    let plan =
        Plan::parse_config(Path::new(&rec.plan_path), &rec.plan_source, None).map_err(invalid)?;
    // Tasks added before it come along: it may need them. It is checked
    // here, once, and stored as checked.
    let r = run.to_string();
    let mut snippets: Vec<String> = state
        .store
        .call(move |s| s.added_tasks(&r))
        .await
        .map_err(internal)?
        .into_iter()
        .map(|(_, a)| a.snippet)
        .collect();
    snippets.push(snippet.to_string());
    let added = plan
        .parse_added(&snippets, Some(&state.opts.repo.root))
        .map_err(invalid)?
        .pop()
        .ok_or_else(|| invalid("the task did not parse as a task"))?;
    if cap.is_some() && added.race.is_some() {
        return Err(invalid(format!(
            "task {id:?}: a lead adds tasks of one agent each (a race's candidates would pass its max_tasks)"
        )));
    }
    let kept = Added {
        snippet: snippet.to_string(),
        spec: serde_json::to_string(&added).map_err(internal)?,
        tags: Vec::new(),
    };
    let tasks = new_tasks(run, &added);
    let r = run.to_string();
    state
        .store
        .call(move |s| s.add_tasks_capped(&r, &tasks, &kept, cap))
        .await
        .map_err(|e| match e {
            baton_core::store::StoreError::Capped { .. } => RunnerError::Busy(e.to_string()),
            e => internal(e),
        })?;
    let answer = control(state, run, id, ControlKind::Add, None).await?;
    if !answer.ok {
        return Err(invalid(answer.message));
    }
    Ok(())
}

/// Starts a planner for `goal` with the profiles of the server's plan;
/// answers its run (`GET /api/plans/<run>` reads the plan when it is ready).
pub async fn propose(
    state: &Arc<AppState>,
    goal: &str,
    agent: Option<&str>,
    waits: bool,
) -> Result<String, RunnerError> {
    let root = &state.opts.repo.root;
    let path = root.join(&state.opts.plan);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        invalid(format!(
            "no agent profiles to plan with: cannot read {} ({e}); `baton init` writes one",
            path.display()
        ))
    })?;
    let profiles = baton_core::planner::Profiles::from_plan_text(
        &state.opts.plan.display().to_string(),
        &state.opts.compose(&text),
    )
    .map_err(invalid)?;
    let baton = state.opts.baton.as_ref().ok_or_else(|| {
        internal("this server was started without baton's own binary, which checks the plans")
    })?;
    let setup = baton_core::planner::Setup {
        goal,
        profiles: &profiles,
        agent,
        instructions: None,
        check: vec![baton.display().to_string(), "check".into()],
        retries: 2,
        waits,
        user: state.opts.user.as_ref(),
    };
    let prepared =
        baton_core::planner::prepare(root, &state.opts.repo.state_dir(), setup).map_err(invalid)?;
    start_engine(state, prepared.plan, options(state, false)).await
}

/// The configuration plan: profiles, defaults and routes for queued tasks.
pub fn config_plan(state: &AppState) -> Result<Plan, RunnerError> {
    let root = &state.opts.repo.root;
    let path = &state.opts.plan;
    let source = std::fs::read_to_string(root.join(path)).unwrap_or_default();
    let source = state.opts.compose(&source);
    Plan::parse_config(path, &source, Some(root)).map_err(invalid)
}

/// The service run's id, starting or resuming it if needed.
pub async fn ensure_service(state: &Arc<AppState>) -> Result<String, RunnerError> {
    let mut guard = state.service.lock().await;
    if let Some(id) = guard.as_ref() {
        if is_live(state, id) {
            return Ok(id.clone());
        }
    }
    let existing = state
        .store
        .call(|s| s.service_run())
        .await
        .map_err(internal)?;
    let engine = match existing {
        Some(r) if !is_live(state, &r.id) => {
            Engine::resume(state.opts.repo.clone(), Some(&r.id), options(state, true))
                .await
                .map_err(internal)?
        }
        Some(r) => {
            *guard = Some(r.id.clone());
            return Ok(r.id);
        }
        None => Engine::start(
            state.opts.repo.clone(),
            config_plan(state)?,
            options(state, true),
        )
        .await
        .map_err(internal)?,
    };
    let id = spawn(state, engine).run_id().to_string();
    *guard = Some(id.clone());
    Ok(id)
}

/// Resumes every run that is not finished and that nobody drives.
pub async fn resume_interrupted(state: &Arc<AppState>) {
    let Ok(runs) = state.store.call(|s| s.runs(200)).await else {
        return;
    };
    for r in runs.into_iter().filter(|r| r.finished_at.is_none()) {
        if is_live(state, &r.id) {
            continue;
        }
        let service = r.kind == RunKind::Service;
        match Engine::resume(
            state.opts.repo.clone(),
            Some(&r.id),
            options(state, service),
        )
        .await
        {
            Ok(engine) => {
                tracing::info!("resumed run {}", r.id);
                let id = spawn(state, engine).run_id().to_string();
                if service {
                    *state.service.lock().await = Some(id);
                }
            }
            Err(e) => tracing::warn!("cannot resume run {}: {e}", r.id),
        }
    }
}

/// Asks for `kind` on a task of `run`. A run this server drives is asked
/// directly over its handle; a retry on a run nobody drives reopens it and
/// resumes it here; a run another process drives is asked through the store.
pub async fn control(
    state: &Arc<AppState>,
    run: &str,
    task: &str,
    kind: ControlKind,
    message: Option<&str>,
) -> Result<Answer, RunnerError> {
    let store = &state.store;
    let id = run.to_string();
    let rec = store
        .call(move |s| s.run(&id))
        .await
        .map_err(|e| RunnerError::NoRun(e.to_string()))?;
    if kind != ControlKind::Add {
        control::check_task(store, run, task).await?;
    }
    if let Some(h) = state.handle(run) {
        if let Some(answer) = h.request(task, kind, message.map(str::to_string)).await {
            return Ok(answer);
        }
        // It ended between the lookup and the request: as if it were not ours.
    }
    if kind != ControlKind::Retry || is_live(state, run) {
        return Ok(control::request(store, &state.paths, &rec, task, kind, message).await?);
    }
    // A retry on a run nobody drives reopens it and resumes it here.
    if rec.finished_at.is_some() {
        let id = run.to_string();
        store
            .call(move |s| s.reopen_run(&id))
            .await
            .map_err(internal)?;
    }
    let service = rec.kind == RunKind::Service;
    let engine = Engine::resume(state.opts.repo.clone(), Some(run), options(state, service))
        .await
        .map_err(|e| RunnerError::Busy(e.to_string()))?;
    // Asked before it is driven, so that it cannot end without answering.
    let answer = engine
        .handle()
        .request(task, kind, message.map(str::to_string));
    spawn(state, engine);
    answer
        .await
        .ok_or_else(|| RunnerError::Busy(format!("run {run} ended before it could answer")))
}

/// Posts a message from `from` (None: a person) to task `to` and has the
/// engine hand it over; answers the message id and what became of it.
pub async fn send_message(
    state: &Arc<AppState>,
    run: &str,
    from: Option<&str>,
    to: &str,
    text: &str,
) -> Result<(i64, Answer), RunnerError> {
    let id = run.to_string();
    let rec = state
        .store
        .call(move |s| s.run(&id))
        .await
        .map_err(|e| RunnerError::NoRun(e.to_string()))?;
    let posted = control::post_message(&state.store, &state.paths, &rec, from, to, text).await;
    let message = match posted {
        Ok(id) => id,
        Err(ControlError::Refused(m)) => return Err(invalid(m)),
        Err(e) => return Err(e.into()),
    };
    let answer = control(
        state,
        run,
        to,
        ControlKind::Message,
        Some(&message.to_string()),
    )
    .await?;
    Ok((message, answer))
}

/// `[run] land` for a run this server drove to success, as `baton run`
/// does for its own: merged into the branch it started from, or a pull
/// request. What happened goes to the log.
async fn land_run(state: &Arc<AppState>, run: &str, land: Land) {
    if land == Land::Pr && crate::pulls::has_pull(state, run).await {
        // A fix attempt on its pull request: the follower pushes it.
        return;
    }
    if land == Land::Pr && follows(state, run).await {
        if let Err(e) = crate::pulls::open_and_follow(state, run).await {
            tracing::warn!("run {run}: cannot open its pull request: {e}");
        }
        return;
    }
    let id = run.to_string();
    let found = state
        .store
        .call(move |s| {
            Ok::<_, baton_core::store::StoreError>((
                s.run(&id)?,
                s.tasks(&id)?,
                s.gate_results(&id)?,
            ))
        })
        .await;
    let (rec, tasks, gates) = match found {
        Ok(v) => v,
        Err(e) => return tracing::error!("run {run}: cannot land it: {e}"),
    };
    let opts = baton_core::land::LandOptions {
        pr: land == Land::Pr,
        ..Default::default()
    };
    match baton_core::land::land(&state.opts.repo, &rec, &tasks, &gates, false, &opts).await {
        Ok(landed) => tracing::info!("run {run} landed: {landed:?}"),
        Err(e) => tracing::warn!("run {run}: run.land could not land it: {e}"),
    }
}

/// Whether run `run`'s plan follows its pull request (`[land] follow`).
async fn follows(state: &AppState, run: &str) -> bool {
    let r = run.to_string();
    let Ok(rec) = state.store.call(move |s| s.run(&r)).await else {
        return false;
    };
    Plan::parse_config(Path::new(&rec.plan_path), &rec.plan_source, None)
        .is_ok_and(|p| p.pull.follow)
}

pub(crate) fn slug(prompt: &str) -> String {
    let mut out = String::new();
    for c in prompt.chars() {
        if out.len() >= 24 {
            break;
        }
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// Starts the run of one tracker item: the served plan's settings with
/// task `id` as its only task (routed by `tags` as a queued task is);
/// returns (run, task). Its plan is written under baton's state directory,
/// named by the task: a run started from it before (a restart between the
/// start and its record) is the answer, so an item never gets two runs,
/// and a resumed run reads its plan back from there.
pub async fn start_item_run(
    state: &Arc<AppState>,
    id: &str,
    prompt: &str,
    tags: &[String],
) -> Result<(String, String), RunnerError> {
    if let Some(run) = item_run_of(state, id).await? {
        return Ok((run, id.to_string()));
    }
    let config = config_plan(state)?;
    let agent = routed(state, &config, None, tags).await?;
    let snippet = Plan::task_snippet(id, prompt, agent.as_deref());
    let (tip, branch) = tip_of(state, &config, id).await;
    let text = config
        .item_source(&snippet, tip.as_deref())
        .map_err(invalid)?;
    let run = start_kept(state, "items", id, &text, branch).await?;
    Ok((run, id.to_string()))
}

/// Starts the run of the plan a planner wrote for tracker item `id`
/// (`mode = "plan"`), as [`start_item_run`] does a task's; returns it.
pub async fn start_planned_run(
    state: &Arc<AppState>,
    id: &str,
    planned: &str,
) -> Result<String, RunnerError> {
    if let Some(run) = item_run_of(state, id).await? {
        return Ok(run);
    }
    let config = config_plan(state)?;
    let (tip, branch) = tip_of(state, &config, id).await;
    let text = config
        .planned_source(planned, tip.as_deref())
        .map_err(invalid)?;
    start_kept(state, "items", id, &text, branch).await
}

/// The run started before for tracker item `id` (a restart between the
/// start and its record), if any.
async fn item_run_of(state: &AppState, id: &str) -> Result<Option<String>, RunnerError> {
    let path = kept_plan(state, "items", id).1.display().to_string();
    let found = state.store.call(move |s| s.run_of_plan(&path)).await;
    Ok(found.map_err(internal)?.map(|r| r.id))
}

/// Where an item's run starts when its work goes to the remote's branch
/// (the served plan lands as pull requests), which may be ahead of this
/// checkout: the branch's tip there, fetched, and the branch (None, None:
/// this checkout's base, as any run).
async fn tip_of(state: &AppState, config: &Plan, id: &str) -> (Option<String>, Option<String>) {
    if config.run.land != Land::Pr {
        return (None, None);
    }
    let Some(branch) = state.opts.repo.branch_of(&config.run.base).await else {
        return (None, None);
    };
    match remote_tip(state, &config.pull.remote, &branch, id).await {
        Some(tip) => (Some(tip), Some(branch)),
        None => (None, None),
    }
}

/// The commit `branch` is at on `remote`, fetched; None (said) when it
/// cannot be fetched: the run starts from this checkout's branch then.
async fn remote_tip(state: &AppState, remote: &str, branch: &str, id: &str) -> Option<String> {
    // A ref of the item's own: two items started at once do not race for one.
    let kept = format!("refs/baton/remote-tips/{id}");
    match state.opts.repo.fetch_branch(remote, branch, &kept).await {
        Ok(tip) => Some(tip),
        Err(e) => {
            tracing::warn!(
                "cannot fetch {branch} from {remote} (the run starts from this checkout's): {e}"
            );
            None
        }
    }
}

/// The store's rows of a queued task: a race's candidates, then itself.
fn new_tasks(run: &str, spec: &TaskSpec) -> Vec<NewTask> {
    baton_core::plan::race::expand(std::slice::from_ref(spec))
        .into_iter()
        .map(|t| NewTask {
            branch: baton_core::paths::task_branch(run, &t.id),
            id: t.id,
            agent: t.agent,
            needs: t.needs,
        })
        .collect()
}

/// The profile a task queued with `tags` goes to ([`Plan::route`]); a
/// route with `agent = "best"` reads the scorecard of that tag.
async fn routed(
    state: &AppState,
    config: &Plan,
    agent: Option<&str>,
    tags: &[String],
) -> Result<Option<String>, RunnerError> {
    let best = config
        .route_of(tags)
        .and_then(|(r, tag)| Some((r.best.clone()?, tag.to_string())));
    let (Some((best, tag)), None) = (best, agent) else {
        return known_agent(config, config.route(agent, tags));
    };
    let from = baton_core::stats::since_ms(baton_core::plan::route::BEST_OVER).unwrap_or(0);
    let outcomes = state
        .store
        .call(move |s| s.task_outcomes(from))
        .await
        .map_err(internal)?;
    let (chosen, why) = baton_core::stats::best_for(&outcomes, &tag, &best.among, best.min_tasks);
    tracing::info!("a task tagged {tag:?} goes to {chosen}: {why}");
    Ok(Some(chosen))
}

/// `agent` if the plan defines it (None: the plan's default).
fn known_agent(config: &Plan, agent: Option<String>) -> Result<Option<String>, RunnerError> {
    if let Some(a) = &agent {
        if !config.agents.contains_key(a) {
            let known: Vec<&str> = config.agents.keys().map(String::as_str).collect();
            return Err(invalid(format!(
                "unknown agent profile {a:?} (the plan defines: {})",
                known.join(", ")
            )));
        }
    }
    Ok(agent)
}

/// Queues a task in the service run (a race of candidates, with `race`);
/// returns (run, task).
pub async fn add_task(
    state: &Arc<AppState>,
    prompt: &str,
    agent: Option<&str>,
    tags: &[String],
    race: &RaceFields,
) -> Result<(String, String), RunnerError> {
    let named = Named {
        name: prompt,
        prompt,
        needs: &[],
        id: None,
    };
    queue(state, named, agent, tags, race).await
}

/// A task to queue: its id (else made from `name`), prompt and needs.
struct Named<'a> {
    name: &'a str,
    prompt: &'a str,
    needs: &'a [String],
    id: Option<&'a str>,
}

/// Queues a task whose id is `id`, else made from `name` (its prompt's
/// words by default), after the service run's tasks `needs`; returns (run,
/// task). With `id`, a task of that id queued before is the answer: asking
/// again after a crash queues nothing twice.
pub async fn add_named_task(
    state: &Arc<AppState>,
    name: &str,
    prompt: &str,
    agent: Option<&str>,
    tags: &[String],
    needs: &[String],
    id: Option<&str>,
) -> Result<(String, String), RunnerError> {
    let named = Named {
        name,
        prompt,
        needs,
        id,
    };
    queue(state, named, agent, tags, &RaceFields::default()).await
}

async fn queue(
    state: &Arc<AppState>,
    named: Named<'_>,
    agent: Option<&str>,
    tags: &[String],
    race: &RaceFields,
) -> Result<(String, String), RunnerError> {
    let Named {
        name,
        prompt,
        needs,
        id,
    } = named;
    if prompt.trim().is_empty() {
        return Err(invalid("the prompt is empty"));
    }
    let config = config_plan(state)?;
    let agent = routed(state, &config, agent, tags).await?;
    let run = ensure_service(state).await?;
    let r = run.clone();
    let existing: Vec<String> = state
        .store
        .call(move |s| s.tasks(&r))
        .await
        .map_err(internal)?
        .into_iter()
        .map(|t| t.id)
        .collect();
    if let Some(missing) = needs.iter().find(|n| !existing.contains(n)) {
        return Err(invalid(format!(
            "the service run {run} has no task {missing:?} to wait for"
        )));
    }
    if let Some(id) = id.filter(|id| existing.iter().any(|e| e == id)) {
        return Ok((run, id.to_string()));
    }
    let n = existing.len() + 1;
    let s = slug(name);
    let id = match id {
        Some(id) => id.to_string(),
        None if s.is_empty() => format!("t{n}"),
        None => format!("t{n}-{s}"),
    };
    let snippet = Plan::race_snippet(&id, prompt, agent.as_deref(), race);
    // Validate against the profiles and defaults before anything is stored.
    let mut spec = config
        .parse_added(std::slice::from_ref(&snippet), Some(&state.opts.repo.root))
        .map_err(invalid)?
        .into_iter()
        .next()
        .ok_or_else(|| invalid("the queued task did not parse as a task"))?;
    // Its needs are tasks of the run, not of the plan file: checked above.
    spec.needs = needs.to_vec();
    let kept = Added {
        spec: serde_json::to_string(&spec).map_err(internal)?,
        snippet,
        tags: tags.to_vec(),
    };
    let tasks = new_tasks(&run, &spec);
    let r = run.clone();
    state
        .store
        .call(move |s| s.add_tasks_capped(&r, &tasks, &kept, None))
        .await
        .map_err(internal)?;
    let answer = control(state, &run, &id, ControlKind::Add, None).await?;
    if !answer.ok {
        return Err(invalid(answer.message));
    }
    Ok((run, id))
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs_are_ref_safe() {
        assert_eq!(super::slug("Fix the login bug!"), "fix-the-login-bug");
        assert_eq!(super::slug("  ***  "), "");
        assert!(super::slug(&"x".repeat(100)).len() <= 24);
    }
}
