//! `baton retry`: run a task that did not succeed again, and merge it.

use super::usage;
use crate::progress;
use baton_core::model::ControlKind;
use baton_core::Engine;
use clap::Args;
use std::path::Path;

/// Run a failed, stopped, conflicted or skipped task again (with what
/// depends on it), as the API's retry does. A run going on in another
/// process (or `serve`) is asked to; a finished one is reopened and driven
/// here until it ends, with the exit status of `baton run`.
#[derive(Args)]
pub struct RetryArgs {
    /// The task, or its item's id in `baton inbox`.
    pub task: String,
    /// The run (default: the latest).
    #[arg(long)]
    pub run: Option<String>,
    /// Print the final report as JSON on stdout (when driven here).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub ci: super::CiArgs,
}

pub async fn run(cwd: &Path, mut args: RetryArgs) -> anyhow::Result<i32> {
    (args.run, args.task) = super::task_or_item(cwd, args.run.as_deref(), &args.task).await?;
    let found = super::task_of_run(cwd, args.run.as_deref(), &args.task).await?;
    let (repo, store, paths, rec) = (found.repo, found.store, found.paths, found.run);
    if baton_core::control::is_live(&paths, &rec.id) {
        return super::send_control(cwd, Some(&rec.id), &args.task, ControlKind::Retry, None).await;
    }
    let (id, task) = (rec.id.clone(), args.task.clone());
    let t = store.call(move |s| s.task(&id, &task)).await?;
    if let Some(t) = t.filter(|t| !t.status.allows(ControlKind::Retry)) {
        return Err(usage(format!(
            "task {:?} is {}: only a task that failed, was stopped, conflicted or was skipped can be retried",
            args.task, t.status
        )));
    }
    if rec.finished_at.is_some() {
        let id = rec.id.clone();
        store.call(move |s| s.reopen_run(&id)).await?;
    }
    let opts = super::engine_options()?;
    let engine = Engine::resume(repo, Some(&rec.id), opts)
        .await
        .map_err(|e| usage(e.to_string()))?;
    // Asked before the run is driven, so that it cannot end first.
    let answer = engine
        .handle()
        .request(&args.task, ControlKind::Retry, None);
    let ci = args.ci.output();
    let json = args.json;
    let drive = tokio::spawn(async move { progress::drive(engine, json, &ci).await });
    match answer.await {
        Some(a) if a.ok => eprintln!("{}", a.message),
        Some(a) => eprintln!("error: {}", a.message),
        None => eprintln!("error: the run ended before it could answer"),
    }
    drive.await?
}
