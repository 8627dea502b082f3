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
    /// Serve on this Unix socket instead of stdin/stdout, a session per
    /// connection (a lead task's door: baton starts it outside the lead's
    /// sandbox, with --run, --as and --max-tasks).
    #[arg(
        long,
        value_name = "SOCKET",
        requires = "run",
        conflicts_with = "connect"
    )]
    pub listen: Option<PathBuf>,
    /// Relay stdin/stdout to a `baton mcp --listen` on this socket: what a
    /// lead's agent starts inside its sandbox, with no access of its own.
    #[arg(long, value_name = "SOCKET")]
    pub connect: Option<PathBuf>,
    /// The `ask` tool only, through an attempt's door for questions (what
    /// a task's agent starts inside its sandbox). With --listen: a lead's
    /// tools offer `ask` through this door too.
    #[arg(long, value_name = "SOCKET", conflicts_with = "connect")]
    pub ask: Option<PathBuf>,
}

/// Copies stdin to the socket and the socket to stdout until either ends.
async fn relay(socket: &Path) -> anyhow::Result<i32> {
    use anyhow::Context;
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| format!("cannot reach baton's tools at {}", socket.display()))?;
    let (mut from, mut to) = stream.into_split();
    let up = async {
        let copied = tokio::io::copy(&mut tokio::io::stdin(), &mut to).await;
        // The client is done: the server sees the end of its input.
        drop(to);
        copied
    };
    let mut stdout = tokio::io::stdout();
    let down = tokio::io::copy(&mut from, &mut stdout);
    tokio::select! {
        r = up => { r?; }
        r = down => { r?; }
    }
    Ok(0)
}

pub async fn run(cwd: &Path, args: McpArgs) -> anyhow::Result<i32> {
    if let Some(socket) = &args.connect {
        return relay(socket).await;
    }
    if let (Some(socket), None) = (&args.ask, &args.listen) {
        mcp::ask::serve_ask(socket.clone())
            .await
            .map_err(anyhow::Error::msg)?;
        return Ok(0);
    }
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
        drivers: crate::executors::DRIVERS,
        gateway: Some(&baton_gateway::KIND),
        trackers: crate::executors::TRACKERS,
        forges: crate::executors::FORGES,
        public_url: None,
        user: super::user_config()?,
        name: None,
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
        ask: args.ask,
    };
    let served = match &args.listen {
        Some(path) => mcp::serve_socket(state.clone(), scope, path, super::terminated()).await,
        None => mcp::serve_stdio(state.clone(), scope).await,
    };
    // The client is gone: runs driven here stop their agents and keep their work.
    state.wait_for_runs().await;
    served.map_err(anyhow::Error::msg)?;
    Ok(0)
}
