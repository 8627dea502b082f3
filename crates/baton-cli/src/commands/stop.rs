//! `baton stop`: stop a task of a run going on in another process.

use baton_core::model::ControlKind;
use clap::Args;
use std::path::Path;

/// Stop a task: its agent's whole process group is killed, its work committed
/// on its branch, and it ends as `stopped`.
#[derive(Args)]
pub struct StopArgs {
    /// The task, or its item's id in `baton inbox`.
    pub task: String,
    /// The run (default: the latest).
    #[arg(long)]
    pub run: Option<String>,
}

pub async fn run(cwd: &Path, args: StopArgs) -> anyhow::Result<i32> {
    let (run, task) = super::task_or_item(cwd, args.run.as_deref(), &args.task).await?;
    super::send_control(cwd, run.as_deref(), &task, ControlKind::Stop, None).await
}
