//! `baton run`: run a plan to the end.

use super::{load_plan, usage};
use crate::progress;
use baton_core::model::PlanDecision;
use baton_core::plan::Land;
use baton_core::{Engine, RunOptions};
use clap::Args;
use std::path::{Path, PathBuf};

/// Run a plan: every task in its own worktree and branch, checked by its
/// gates, merged into baton/<run>/integration.
#[derive(Args)]
pub struct RunArgs {
    /// The plan file.
    #[arg(default_value = "baton.toml")]
    pub plan: PathBuf,
    /// Print the final report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Where task worktrees go (default: inside the repository's .git/baton).
    #[arg(long, value_name = "DIR")]
    pub worktrees: Option<PathBuf>,
    /// Keep the worktrees of tasks that succeeded (their branches are always kept).
    #[arg(long)]
    pub keep_worktrees: bool,
    /// Merge tasks marked `approve = true` without waiting (unattended runs).
    #[arg(long)]
    pub auto_approve: bool,
    /// Run in this process even when a `baton serve` is up for the repository.
    #[arg(long)]
    pub here: bool,
    /// Override the plan's run.max_parallel.
    #[arg(long, short = 'j', value_name = "N")]
    pub max_parallel: Option<usize>,
    #[command(flatten)]
    pub ci: super::CiArgs,
    /// The planner's run whose plan this is (`baton approve` of a plan in
    /// the inbox): the yes is recorded once the run starts.
    #[arg(skip)]
    pub proposal: Option<String>,
}

impl RunArgs {
    /// `baton run PLAN` with every option at its default.
    pub fn for_plan(plan: PathBuf) -> RunArgs {
        RunArgs {
            plan,
            json: false,
            worktrees: None,
            keep_worktrees: false,
            auto_approve: false,
            here: false,
            max_parallel: None,
            ci: Default::default(),
            proposal: None,
        }
    }
}

pub async fn run(cwd: &Path, args: RunArgs) -> anyhow::Result<i32> {
    let (repo, mut plan) = load_plan(cwd, &args.plan)?;
    let local_only = args.here
        || args.worktrees.is_some()
        || args.keep_worktrees
        || args.max_parallel.is_some()
        || args.auto_approve;
    if !local_only {
        if let Some(code) = via_server(&repo, cwd, &args).await? {
            return Ok(code);
        }
    }

    if let Some(n) = args.max_parallel {
        if n == 0 {
            return Err(usage("--max-parallel must be at least 1"));
        }
        plan.run.max_parallel = n;
    }
    let worktrees = args
        .worktrees
        .map(|w| if w.is_absolute() { w } else { cwd.join(w) });
    if let Some(w) = &worktrees {
        baton_core::plan::check_worktrees(&repo.root, w)
            .map_err(|e| usage(format!("--worktrees: {e}")))?;
    }
    let opts = RunOptions {
        worktrees,
        keep_worktrees: args.keep_worktrees,
        auto_approve: args.auto_approve,
        ..super::engine_options()?
    };
    let land = plan.run.land;
    let follow = plan.pull.follow;
    let engine = Engine::start(repo.clone(), plan, opts)
        .await
        .map_err(|e| match e {
            baton_core::EngineError::Git(g) => usage(g.to_string()),
            other => anyhow::Error::new(other),
        })?;
    let run = engine.run_id().to_string();
    if let Some(planner) = &args.proposal {
        let (planner, r) = (planner.clone(), run.clone());
        let decided = engine
            .store()
            .call(move |s| s.decide_plan(&planner, PlanDecision::Approved, Some(&r)))
            .await;
        if !matches!(decided, Ok(true)) {
            eprintln!("warning: the plan was decided on elsewhere meanwhile; run {run} goes on");
        }
    }
    let json = args.json;
    let code = progress::drive(engine, json, &args.ci.output()).await?;
    if code != 0 || land == Land::None {
        return Ok(code);
    }
    // run.land: an unattended run that succeeded lands itself.
    let args = super::land::LandArgs {
        run: Some(run),
        into: None,
        squash: false,
        push: None,
        pr: land == Land::Pr,
        follow: land == Land::Pr && follow,
    };
    super::land::perform(cwd, args, !json).await
}

/// Hands the run to the repository's `baton serve`, if one is up and the plan
/// is inside the repository, and follows it there. None: run here.
async fn via_server(
    repo: &baton_core::Repo,
    cwd: &Path,
    args: &RunArgs,
) -> anyhow::Result<Option<i32>> {
    let Some(server) = crate::client::find(&repo.state_dir()) else {
        return Ok(None);
    };
    let abs = cwd.join(&args.plan);
    let abs = abs.canonicalize().unwrap_or(abs);
    let root = repo
        .root
        .canonicalize()
        .unwrap_or_else(|_| repo.root.clone());
    let Ok(rel) = abs.strip_prefix(&root) else {
        return Ok(None);
    };
    let body = serde_json::json!({ "plan": rel.display().to_string() });
    let v = tokio::task::spawn_blocking(move || server.json("POST", "/api/runs", Some(&body)))
        .await??;
    let run = v["run"].as_str().unwrap_or_default().to_string();
    let store = std::sync::Arc::new(baton_core::store::Store::open(
        &baton_core::paths::StatePaths::new(repo.state_dir()).db(),
    )?);
    Ok(Some(
        progress::follow(store, run, args.json, &args.ci.output()).await?,
    ))
}
