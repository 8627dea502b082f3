//! `baton mcp`: baton's tools for an MCP client, on stdin and stdout.

use super::{open_repo, usage, watchdog_command};
use baton_server::mcp::{self, Scope};
use baton_server::{AppState, ServeOptions};
use clap::Args;
use std::path::{Path, PathBuf};

/// Serve baton's MCP tools on stdin/stdout, for Claude Code, Codex or any
/// MCP client (e.g. `claude mcp add baton -- baton mcp`): plan_check,
/// run_start, task_add, run_status, task_logs, task_diff, task_stop,
/// task_steer, task_approve, task_retry and wait. Runs it starts are driven
/// in this process; when the client goes away they are interrupted (agents
/// stopped, work committed) and `baton resume` continues them. `baton serve`
/// offers the same tools at /mcp.
#[derive(Args)]
pub struct McpArgs {
    /// The plan whose profiles and defaults `run_start` with `tasks` uses.
    #[arg(long, default_value = "baton.toml")]
    pub plan: PathBuf,
    /// Act on this run only (what a lead task's tools do).
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,
    /// With --run: how many tasks the client may add to it.
    #[arg(long, value_name = "N", requires = "run")]
    pub max_tasks: Option<u32>,
    /// With --run: the task these tools belong to (its messages are from it).
    #[arg(long = "as", value_name = "TASK", requires = "run")]
    pub as_task: Option<String>,
}

pub async fn run(cwd: &Path, args: McpArgs) -> anyhow::Result<i32> {
    let repo = open_repo(cwd)?;
    let plan = if args.plan.is_absolute() {
        args.plan
            .strip_prefix(&repo.root)
            .unwrap_or(&args.plan)
            .to_path_buf()
    } else {
        args.plan.clone()
    };
    let opts = ServeOptions {
        baton: std::env::current_exe().ok(),
        addr: String::new(),
        repo,
        plan,
        watchdog: watchdog_command(),
        webhook: None,
    };
    let state = AppState::new(opts, false).map_err(|e| anyhow::anyhow!(e))?;
    if let Some(run) = &args.run {
        state
            .store
            .run(run)
            .map_err(|e| usage(format!("--run: {e}")))?;
    }
    let scope = Scope {
        run: args.run,
        max_tasks: args.max_tasks,
        task: args.as_task,
    };
    let served = mcp::serve_stdio(state.clone(), scope).await;
    // The client is gone: runs driven here stop their agents and keep their work.
    state.wait_for_runs().await;
    served.map_err(anyhow::Error::msg)?;
    Ok(0)
}
