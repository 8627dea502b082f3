//! `baton steer`: give a running task a message.

use baton_core::model::ControlKind;
use clap::Args;
use std::path::Path;

/// Send a task a message. For exec agents the current attempt is stopped (its
/// work committed) and a new attempt starts with the message as feedback
/// ({{ feedback }}, BATON_FEEDBACK); a steer does not use up a retry.
#[derive(Args)]
pub struct SteerArgs {
    pub task: String,
    pub message: String,
    /// The run (default: the latest).
    #[arg(long)]
    pub run: Option<String>,
}

pub async fn run(cwd: &Path, args: SteerArgs) -> anyhow::Result<i32> {
    if args.message.trim().is_empty() {
        return Err(super::usage("the message is empty"));
    }
    super::send_control(
        cwd,
        args.run.as_deref(),
        &args.task,
        ControlKind::Steer,
        Some(&args.message),
    )
    .await
}
