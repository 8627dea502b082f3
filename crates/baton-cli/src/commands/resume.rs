//! `baton resume`: continue an interrupted run.

use super::{open_repo, usage};
use crate::progress;
use baton_core::{Engine, EngineError, RunOptions};
use clap::Args;
use std::path::Path;

/// Continue a run that was interrupted (Ctrl-C, a crash, kill -9). Tasks that
/// finished are not redone; work left by interrupted attempts is committed first.
#[derive(Args)]
pub struct ResumeArgs {
    /// The run id (default: the latest run).
    pub run: Option<String>,
    /// Print the final report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Keep the worktrees of tasks that succeeded.
    #[arg(long)]
    pub keep_worktrees: bool,
    /// Merge tasks marked `approve = true` without waiting.
    #[arg(long)]
    pub auto_approve: bool,
    #[command(flatten)]
    pub ci: super::CiArgs,
}

pub async fn run(cwd: &Path, args: ResumeArgs) -> anyhow::Result<i32> {
    let repo = open_repo(cwd)?;
    let opts = RunOptions {
        worktrees: None,
        keep_worktrees: args.keep_worktrees,
        auto_approve: args.auto_approve,
        ..super::engine_options()?
    };
    let engine = Engine::resume(repo, args.run.as_deref(), opts)
        .await
        .map_err(|e| match e {
            EngineError::Store(s) => usage(s.to_string()),
            e @ (EngineError::Finished { .. } | EngineError::Busy { .. }) => usage(e.to_string()),
            other => anyhow::Error::new(other),
        })?;
    let code = progress::drive(engine, args.json, &args.ci.output()).await?;
    Ok(code)
}
