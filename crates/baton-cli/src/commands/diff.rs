//! `baton diff`: what a task changed, shown by git (colour and pager as
//! `git diff` gives them on a terminal).

use super::usage;
use clap::Args;
use std::path::Path;

/// Show what a task changed: `git diff` from the commit it started from to
/// its branch (colour and your pager on a terminal, as git does).
#[derive(Args)]
pub struct DiffArgs {
    /// The task.
    pub task: String,
    /// The run (default: the latest).
    #[arg(long)]
    pub run: Option<String>,
    /// Only the names of the files it changed.
    #[arg(long)]
    pub name_only: bool,
}

pub async fn run(cwd: &Path, args: DiffArgs) -> anyhow::Result<i32> {
    let found = super::task_of_run(cwd, args.run.as_deref(), &args.task).await?;
    let (repo, store, rec) = (found.repo, found.store, found.run);
    let (run, task) = (rec.id.clone(), args.task.clone());
    let t = store
        .call(move |s| s.task(&run, &task))
        .await?
        .ok_or_else(|| usage(format!("run {} has no task {:?}", rec.id, args.task)))?;
    let Some(start) = t.start_commit else {
        return Err(usage(format!(
            "task {:?} of run {} has not started: it has changed nothing yet",
            args.task, rec.id
        )));
    };
    let tip = format!("refs/heads/{}", t.branch);
    let mut cmd = tokio::process::Command::new("git");
    cmd.current_dir(&repo.root).arg("diff");
    if args.name_only {
        cmd.arg("--name-only");
    }
    cmd.args([start.as_str(), tip.as_str(), "--"]);
    let status = cmd
        .status()
        .await
        .map_err(|e| anyhow::anyhow!("cannot run git diff: {e}"))?;
    match status.code() {
        Some(0) => Ok(0),
        _ => Err(anyhow::anyhow!(
            "git diff {start} {tip} failed ({status}); the task's branch may have been deleted (`baton clean` keeps its tip under refs/baton/archive/{}/)",
            rec.id
        )),
    }
}
