//! `baton approve`: let a task that waits for a person be merged.

use baton_core::model::ControlKind;
use clap::Args;
use std::path::Path;

/// Approve a task with `approve = true` whose gates passed; it is then merged.
#[derive(Args)]
pub struct ApproveArgs {
    /// The task, or its item's id in `baton inbox`.
    pub task: String,
    /// The run (default: the latest).
    #[arg(long)]
    pub run: Option<String>,
}

pub async fn run(cwd: &Path, args: ApproveArgs) -> anyhow::Result<i32> {
    let (run, task) = super::task_or_item(cwd, args.run.as_deref(), &args.task).await?;
    super::send_control(cwd, run.as_deref(), &task, ControlKind::Approve, None).await
}
