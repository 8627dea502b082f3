//! One file per subcommand; what they share lives here.

pub mod add;
pub mod answer;
pub mod approve;
pub mod ask;
pub mod check;
pub mod clean;
pub mod completions;
pub mod diff;
pub mod discard;
pub mod doctor;
pub mod inbox;
pub mod init;
pub mod land;
pub mod logs;
pub mod mcp;
pub mod msg;
pub mod pick;
pub mod plan;
pub mod pull;
pub mod resume;
pub mod retry;
pub mod review;
pub mod run;
pub mod runs;
pub mod serve;
pub mod stats;
pub mod status;
pub mod steer;
pub mod stop;
pub mod token;
pub mod watch;

use anyhow::Context;
use baton_core::control::{self, ControlError};
use baton_core::engine::Answer;
use baton_core::model::ControlKind;
use baton_core::paths::StatePaths;
use baton_core::store::{RunRecord, Store};
use baton_core::{EngineError, Plan, PlanError, Repo};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A usage or plan problem: exit 2, nothing was started.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

pub fn exit_code_for(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.is::<UsageError>() || cause.is::<PlanError>() {
            return 2;
        }
        if let Some(EngineError::Plan(_)) = cause.downcast_ref::<EngineError>() {
            return 2;
        }
    }
    1
}

/// How a run reports to CI (shared by `run`, `resume` and `retry`).
#[derive(clap::Args, Clone, Default)]
pub struct CiArgs {
    /// `github`: `::error` annotations for failed tasks (file and line where
    /// a gate's output names them), `::group::` around the progress, and a
    /// Markdown summary appended to $GITHUB_STEP_SUMMARY; the default when
    /// GITHUB_ACTIONS=true. `text`: none of it.
    #[arg(long, value_parser = ["text", "github"])]
    pub format: Option<String>,
    /// Write a JUnit XML report of the run's tasks to FILE (GitLab and most
    /// CI systems show it).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

impl CiArgs {
    pub fn output(&self) -> crate::ci::CiOutput {
        crate::ci::CiOutput::new(self.format.as_deref(), self.junit.clone())
    }
}

pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

pub fn open_repo(cwd: &Path) -> anyhow::Result<Repo> {
    Repo::discover(cwd).map_err(|e| usage(e.to_string()))
}

pub fn open_store(repo: &Repo) -> anyhow::Result<(Arc<Store>, StatePaths)> {
    let paths = StatePaths::new(repo.state_dir());
    let db = paths.db();
    if !db.exists() {
        return Err(usage(format!(
            "no baton runs in {} yet; start one with `baton run`",
            repo.root.display()
        )));
    }
    let store = Store::open(&db).with_context(|| format!("opening {}", db.display()))?;
    Ok((Arc::new(store), paths))
}

pub fn find_run(store: &Store, run: Option<&str>) -> anyhow::Result<RunRecord> {
    store.find_run(run).map_err(|e| usage(e.to_string()))
}

/// A task named on the command line, or an inbox item's id (`baton inbox`)
/// in its place: the run and task the item is about. A task of that name
/// in the run wins over an item.
pub async fn task_or_item(
    cwd: &Path,
    run: Option<&str>,
    task: &str,
) -> anyhow::Result<(Option<String>, String)> {
    let unchanged = Ok((run.map(str::to_string), task.to_string()));
    let Ok(id) = task.parse::<i64>() else {
        return unchanged;
    };
    let repo = open_repo(cwd)?;
    let (store, _) = open_store(&repo)?;
    if let Ok(rec) = store.find_run(run) {
        if store.task(&rec.id, task)?.is_some() {
            return unchanged;
        }
    }
    let now = baton_core::clock::now_ms();
    match store.inbox_item(id, now)? {
        Some(baton_core::inbox::Item {
            run: item_run,
            task: Some(t),
            ..
        }) if run.is_none_or(|r| r == item_run) => Ok((Some(item_run), t)),
        _ => unchanged,
    }
}

/// The inbox's plan item with id `id`, if `id` is one: not when a run is
/// named (a task of it is meant) or the latest run has a task `id`.
pub async fn plan_item(
    cwd: &Path,
    id: &str,
    run: Option<&str>,
) -> anyhow::Result<Option<baton_core::inbox::Item>> {
    let Ok(n) = id.parse::<i64>() else {
        return Ok(None);
    };
    if run.is_some() {
        return Ok(None);
    }
    let repo = open_repo(cwd)?;
    let Ok((store, _)) = open_store(&repo) else {
        return Ok(None);
    };
    if let Ok(latest) = store.find_run(None) {
        if store.task(&latest.id, id)?.is_some() {
            return Ok(None);
        }
    }
    let id = n;
    let now = baton_core::clock::now_ms();
    let item = store.call(move |s| s.inbox_item(id, now)).await?;
    Ok(item.filter(|i| i.kind == baton_core::inbox::ItemKind::Plan))
}

/// What a command about one task of a run starts from: the repository, its
/// store, the run (default: the latest), the task checked to be in it.
pub struct TaskOfRun {
    pub repo: Repo,
    pub store: Arc<Store>,
    pub paths: StatePaths,
    pub run: RunRecord,
}

pub async fn task_of_run(cwd: &Path, run: Option<&str>, task: &str) -> anyhow::Result<TaskOfRun> {
    let repo = open_repo(cwd)?;
    let (store, paths) = open_store(&repo)?;
    let run = find_run(&store, run)?;
    control::check_task(&store, &run.id, task)
        .await
        .map_err(|e| usage(e.to_string()))?;
    Ok(TaskOfRun {
        repo,
        store,
        paths,
        run,
    })
}

/// Reads and validates the plan at `plan` (relative to `cwd`) in the
/// repository around `cwd`.
pub fn load_plan(cwd: &Path, plan: &Path) -> anyhow::Result<(baton_core::Repo, Plan)> {
    let repo = open_repo(cwd)?;
    let path = if plan.is_absolute() {
        plan.to_path_buf()
    } else {
        cwd.join(plan)
    };
    if !path.exists() {
        return Err(usage(format!(
            "no plan at {}; write one (see docs/plan-reference.md) or name it: baton run PATH",
            plan.display()
        )));
    }
    let shown = if plan.is_absolute() {
        path.clone()
    } else {
        plan.to_path_buf()
    };
    let source = std::fs::read_to_string(&path)
        .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
    let source = baton_core::plan::compose(user_config()?.as_ref(), &source);
    let plan = Plan::parse(&shown, &source, Some(&repo.root))?;
    Ok((repo, plan))
}

/// Where the user config is: `$BATON_CONFIG` (empty: none), else
/// `$XDG_CONFIG_HOME/baton/config.toml`, else `~/.config/baton/config.toml`.
pub fn user_config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BATON_CONFIG") {
        return (!p.is_empty()).then(|| PathBuf::from(p));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".config"),
    };
    Some(base.join("baton").join("config.toml"))
}

/// The user config every plan is composed with, checked; None when there
/// is none. A config with problems stops the command with them.
pub fn user_config() -> anyhow::Result<Option<baton_core::plan::UserConfig>> {
    let Some(path) = user_config_path() else {
        return Ok(None);
    };
    Ok(baton_core::plan::UserConfig::load(&path)?)
}

/// The adapters whose agent CLI is on PATH, in the registry's order (as
/// `doctor` finds them): what `init` and `plan` offer as profiles.
pub fn installed_agents() -> Vec<&'static str> {
    baton_core::adapter::ADAPTERS
        .iter()
        .filter(|a| a.cli.is_some_and(|cli| which(cli).is_some()))
        .map(|a| a.name)
        .collect()
}

/// Finds a program the way the shell would.
pub fn which(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return is_exec(&p).then_some(p);
    }
    std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(program))
                .find(|p| is_exec(p))
        })
        .unwrap_or(None)
}

/// Engine options every command that drives a run starts from: this
/// binary's watchdog, and the binary itself for lead tasks' tools.
pub fn engine_options() -> anyhow::Result<baton_core::RunOptions> {
    Ok(baton_core::RunOptions {
        watchdog: watchdog_command(),
        baton: std::env::current_exe().ok(),
        drivers: crate::executors::DRIVERS,
        gateway: Some(&baton_gateway::KIND),
        user: user_config()?,
        ..Default::default()
    })
}

/// The command that starts this binary's watchdog.
pub fn watchdog_command() -> Option<Vec<OsString>> {
    let exe = std::env::current_exe().ok()?;
    Some(vec![exe.into_os_string(), "__watchdog".into()])
}

/// Sends a request to the process driving a run and prints its answer.
pub async fn send_control(
    cwd: &Path,
    run: Option<&str>,
    task: &str,
    kind: ControlKind,
    message: Option<&str>,
) -> anyhow::Result<i32> {
    let repo = open_repo(cwd)?;
    let (store, paths) = open_store(&repo)?;
    let rec = find_run(&store, run)?;
    said(control::request(&store, &paths, &rec, task, kind, message).await)
}

/// Prints a request's answer; its exit status, or a usage error for a
/// request that names what is not there (or a run nobody drives).
pub fn said(answer: Result<Answer, ControlError>) -> anyhow::Result<i32> {
    match answer {
        Ok(Answer { ok: true, message }) => {
            eprintln!("{message}");
            Ok(0)
        }
        Ok(Answer { ok: false, message }) => {
            eprintln!("error: {message}");
            Ok(1)
        }
        Err(
            e @ (ControlError::NoTask { .. }
            | ControlError::NotLive { .. }
            | ControlError::Refused(_)),
        ) => Err(usage(e.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// Until SIGTERM or Ctrl-C: how a long-running command (`serve`, a lead's
/// `mcp --listen`) is told to stop.
pub async fn terminated() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
    }
}
