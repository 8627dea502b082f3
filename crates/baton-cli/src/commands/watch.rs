//! `baton watch`: a terminal dashboard of a run (see `crate::watch`).

use super::{open_repo, open_store, usage};
use clap::Args;
use std::io::IsTerminal;
use std::path::Path;

/// Watch a run live in the terminal: its tasks with state, activity,
/// attempt, time and cost; the selected task's transcript and diff; keys to
/// stop, steer, approve and retry tasks and to switch runs (? lists them).
/// It reads the store, so it shows a run driven by `baton run` in another
/// terminal, by `baton serve`, or one that has ended. Quitting leaves the
/// run going on.
#[derive(Args)]
pub struct WatchArgs {
    /// The run (default: the latest).
    #[arg(long)]
    pub run: Option<String>,
}

pub async fn run(cwd: &Path, args: WatchArgs) -> anyhow::Result<i32> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(usage(
            "baton watch needs a terminal; elsewhere use `baton status`, `baton status --json` or `baton logs --follow TASK`",
        ));
    }
    let repo = open_repo(cwd)?;
    let (store, paths) = open_store(&repo)?;
    if let Some(id) = &args.run {
        super::find_run(&store, Some(id))?;
    }
    let source = crate::watch::Source { repo, store, paths };
    crate::watch::run(source, args.run).await
}
