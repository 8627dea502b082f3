//! `baton add`: queue a task for the running `baton serve`.

use super::{open_repo, usage};
use clap::Args;
use std::path::Path;

/// Queue a task for the `baton serve` of this repository, which runs it like
/// a planned task (worktree, gates, merge queue). Its profile is --agent, or
/// the first [[route]] matching a --tag, or the plan's default agent.
#[derive(Args)]
pub struct AddArgs {
    /// What the agent should do.
    pub prompt: String,
    /// The agent profile (from the plan).
    #[arg(long)]
    pub agent: Option<String>,
    /// Tags for routing to a profile (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
}

pub async fn run(cwd: &Path, args: AddArgs) -> anyhow::Result<i32> {
    let repo = open_repo(cwd)?;
    let server = crate::client::find(&repo.state_dir()).ok_or_else(|| {
        usage("no `baton serve` is running for this repository; start one with `baton serve`")
    })?;
    let body = serde_json::json!({ "prompt": args.prompt, "agent": args.agent, "tags": args.tags });
    let v = tokio::task::spawn_blocking(move || server.json("POST", "/api/tasks", Some(&body)))
        .await??;
    println!("{}", v["task"].as_str().unwrap_or_default());
    eprintln!(
        "queued task {} in run {}",
        v["task"].as_str().unwrap_or("?"),
        v["run"].as_str().unwrap_or("?")
    );
    Ok(0)
}
