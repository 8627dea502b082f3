//! `baton pick`: a person chooses a race's winner by hand.

use baton_core::model::ControlKind;
use clap::Args;
use std::path::Path;

/// Make another candidate a race's winner, before the race merges: its work
/// replaces the picked one's (which stays on its branch and under
/// refs/baton/<run>/<task>/candidate-<n>). The race must wait for approval
/// (`approve = true`); approve it afterwards to merge.
///
/// Example: `baton pick fix-login 2` (or `baton pick fix-login fix-login.2`).
#[derive(Args)]
pub struct PickArgs {
    /// The race task.
    pub task: String,
    /// The candidate: its id (`<task>.<n>`) or its number.
    pub candidate: String,
    /// The run (default: the latest).
    #[arg(long)]
    pub run: Option<String>,
}

pub async fn run(cwd: &Path, args: PickArgs) -> anyhow::Result<i32> {
    let candidate = Some(args.candidate.as_str());
    super::send_control(
        cwd,
        args.run.as_deref(),
        &args.task,
        ControlKind::Pick,
        candidate,
    )
    .await
}
