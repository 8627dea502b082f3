//! `baton`: run a team of coding agents on one repository.

mod ci;
mod client;
mod commands;
mod executors;
mod progress;
mod watch;

use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "baton",
    version,
    about = "Run a team of coding agents on one repository",
    long_about = "Run a team of coding agents on one repository.\n\n\
        A plan (baton.toml) lists tasks, the agent that does each, what each needs, and the \
        gates (commands) that check it. baton runs every ready task in its own git worktree and \
        branch, checks it, retries with feedback, and merges passing work into \
        baton/<run>/integration. Your checked-out branch and working tree are never touched.",
    after_help = "Start with `baton init` to write a plan, `baton check` to see its phases, then `baton run`.\n\
        Exit status of run and resume: 0 every task succeeded, 1 a task did not, 2 invalid plan or arguments, 130 interrupted (resume it)."
)]
struct Cli {
    /// Run as if started in DIR (like `git -C`).
    #[arg(short = 'C', global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Write logs to FILE instead of stderr.
    #[arg(long, global = true, value_name = "FILE")]
    log_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Init(commands::init::InitArgs),
    Plan(commands::plan::PlanArgs),
    Run(commands::run::RunArgs),
    Resume(commands::resume::ResumeArgs),
    Retry(commands::retry::RetryArgs),
    Status(commands::status::StatusArgs),
    Watch(commands::watch::WatchArgs),
    Logs(commands::logs::LogsArgs),
    Diff(commands::diff::DiffArgs),
    Stop(commands::stop::StopArgs),
    Steer(commands::steer::SteerArgs),
    Msg(commands::msg::MsgArgs),
    Ask(commands::ask::AskArgs),
    Answer(commands::answer::AnswerArgs),
    Inbox(commands::inbox::InboxArgs),
    Review(commands::review::ReviewArgs),
    Approve(commands::approve::ApproveArgs),
    Pick(commands::pick::PickArgs),
    Discard(commands::discard::DiscardArgs),
    Land(commands::land::LandArgs),
    Runs(commands::runs::RunsArgs),
    Stats(commands::stats::StatsArgs),
    Clean(commands::clean::CleanArgs),
    Check(commands::check::CheckArgs),
    Doctor(commands::doctor::DoctorArgs),
    Serve(commands::serve::ServeArgs),
    Add(commands::add::AddArgs),
    Mcp(commands::mcp::McpArgs),
    Token(commands::token::TokenArgs),
    Completions(commands::completions::CompletionsArgs),
    Man(commands::completions::ManArgs),
    #[command(name = "__watchdog", hide = true)]
    Watchdog,
    /// An attempt on a remote executor, on this machine: makes it run
    /// there (a Job on a cluster) and follows it.
    #[command(name = "__follow", hide = true)]
    Follow {
        request: PathBuf,
    },
    /// An attempt inside its pod (the request is in BATON_POD_ATTEMPT, or
    /// the file `--spec` names).
    #[command(name = "__pod-attempt", hide = true)]
    PodAttempt {
        #[arg(long)]
        spec: Option<PathBuf>,
    },
    /// A warm pod, waiting for an attempt (the warm door's URL is in
    /// BATON_WARM_URL), then running it.
    #[command(name = "__pod-wait", hide = true)]
    PodWait,
    /// An attempt on an SSH host, over there: starts it (reading it from
    /// stdin) unless it runs already, and prints its output to its end;
    /// `--stop` asks it to end.
    #[command(name = "__host-attempt", hide = true)]
    HostAttempt {
        dir: PathBuf,
        #[arg(long)]
        stop: bool,
        /// Leaves out the first lines of its output (a follower that
        /// connected again has them).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Where the host keeps what `[workspace] setup` made, by its key.
        #[arg(long)]
        cache: Option<PathBuf>,
    },
    /// Inside a sandbox whose network is an allow-list: the agent's parent.
    #[command(name = "__sandbox-bridge", hide = true)]
    SandboxBridge {
        #[arg(long)]
        socket: PathBuf,
        #[arg(long)]
        forward: Vec<u16>,
        /// Only the forwards: the network is the agent's own otherwise.
        #[arg(long)]
        direct: bool,
        #[arg(last = true, required = true)]
        command: Vec<std::ffi::OsString>,
    },
}

/// `screen`: the command draws on the terminal (`watch`), so without a log
/// file nothing is logged (a line on stderr would tear the picture).
fn init_logging(verbose: u8, file: Option<&PathBuf>, screen: bool) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    if screen && file.is_none() {
        return Ok(());
    }
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_env("BATON_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match file {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| anyhow::anyhow!("cannot open log file {}: {e}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .init();
        }
        // Colours only for a person at a terminal, not in a file or a pipe.
        None => {
            use std::io::IsTerminal;
            let tty = std::io::stderr().is_terminal();
            builder.with_ansi(tty).with_writer(std::io::stderr).init()
        }
    }
    Ok(())
}

/// Threads for blocking work (the store, file copies): enough for the
/// store's one writer and readers, and git's waits, at once.
const BLOCKING_THREADS: usize = 16;

/// Memory that does not grow with the number of threads: glibc gives each
/// thread that allocates an arena of its own (up to 8 per core), and their
/// free space is not shared, so a burst of store writes on many threads
/// leaves the process far bigger than what it holds.
fn bounded_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any
    // thread of ours starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Runs the agent under the sandbox's network bridge; prints nothing (its
/// output is the agent's).
fn sandbox_bridge(
    plan: baton_core::sandbox::bridge::Plan,
    mut command: Vec<std::ffi::OsString>,
) -> ExitCode {
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::from(125);
    };
    let program = command.remove(0);
    match rt.block_on(baton_core::sandbox::bridge::run(plan, program, command)) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("baton sandbox bridge: {e}");
            ExitCode::from(125)
        }
    }
}

/// `baton __follow`: the request's executor's driver follows it.
async fn follow(request: &std::path::Path) -> anyhow::Result<i32> {
    use anyhow::Context;
    let text = std::fs::read_to_string(request)
        .with_context(|| format!("cannot read {}", request.display()))?;
    let req: baton_core::executor::FollowRequest = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an attempt's request", request.display()))?;
    let driver = executors::driver(req.executor.kind()).map_err(anyhow::Error::msg)?;
    (driver.follow)(request, req)
        .await
        .map_err(anyhow::Error::msg)
}

/// The hidden commands of remote executors: their output is an attempt's
/// stream, their status the attempt's.
fn executor_command(cmd: &Command) -> Option<ExitCode> {
    let exit = |code: i32| ExitCode::from(code.clamp(0, 255) as u8);
    let rt = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .ok()
    };
    match cmd {
        Command::PodAttempt { spec } => {
            let Some(rt) = rt() else {
                return Some(ExitCode::from(125));
            };
            let (from, text) = match spec {
                Some(path) => (
                    path.display().to_string(),
                    std::fs::read_to_string(path).unwrap_or_default(),
                ),
                None => (
                    baton_core::executor::SPEC_ENV.to_string(),
                    std::env::var(baton_core::executor::SPEC_ENV).unwrap_or_default(),
                ),
            };
            match serde_json::from_str(&text) {
                Ok(spec) => Some(exit(rt.block_on(baton_core::executor::pod::run(spec)))),
                Err(e) => {
                    eprintln!("baton: {from} holds no attempt: {e}");
                    Some(ExitCode::from(125))
                }
            }
        }
        Command::PodWait => {
            let Some(rt) = rt() else {
                return Some(ExitCode::from(125));
            };
            Some(exit(rt.block_on(baton_core::executor::warm::wait())))
        }
        Command::HostAttempt {
            dir, stop: true, ..
        } => Some(exit(if baton_core::executor::host::stop(dir) {
            0
        } else {
            1
        })),
        Command::HostAttempt {
            dir,
            stop: false,
            from,
            cache,
        } => {
            let served = std::env::current_exe()
                .map_err(|e| format!("cannot find baton's own binary: {e}"))
                .and_then(|baton| {
                    baton_core::executor::host::serve(dir, &baton, *from, cache.as_deref())
                });
            match served {
                Ok(code) => Some(exit(code)),
                Err(e) => {
                    eprintln!("baton: {e}");
                    Some(ExitCode::from(125))
                }
            }
        }
        Command::Follow { request } => {
            let Some(rt) = rt() else {
                return Some(ExitCode::from(125));
            };
            match rt.block_on(follow(request)) {
                Ok(code) => Some(exit(code)),
                Err(e) => {
                    eprintln!("baton: {e:#}");
                    Some(ExitCode::from(1))
                }
            }
        }
        _ => None,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Watchdog = cli.command {
        baton_core::process::watchdog_main();
        return ExitCode::SUCCESS;
    }
    if let Some(code) = executor_command(&cli.command) {
        return code;
    }
    if let Command::SandboxBridge {
        socket,
        forward,
        direct,
        command,
    } = cli.command
    {
        let plan = baton_core::sandbox::bridge::Plan {
            socket,
            forwards: forward,
            direct,
        };
        return sandbox_bridge(plan, command);
    }
    let screen = matches!(cli.command, Command::Watch(_));
    if let Err(e) = init_logging(cli.verbose, cli.log_file.as_ref(), screen) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    if matches!(
        cli.command,
        Command::Status(_)
            | Command::Logs(_)
            | Command::Diff(_)
            | Command::Completions(_)
            | Command::Man(_)
            | Command::Check(_)
            | Command::Doctor(_)
            | Command::Runs(_)
            | Command::Stats(_)
    ) {
        // Read-only commands end quietly when their output pipe closes (`| head`).
        // SAFETY: restoring the default disposition of SIGPIPE is always sound.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let cwd = match &cli.dir {
        Some(d) => d.clone(),
        None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    };
    bounded_malloc();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Store calls run on blocking threads: with many agents writing at
        // once an unbounded pool grows a thread (and a malloc arena) per
        // writer, which all wait on one database anyway.
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Init(a) => commands::init::run(&cwd, a).await,
            Command::Plan(a) => commands::plan::run(&cwd, a).await,
            Command::Run(a) => commands::run::run(&cwd, a).await,
            Command::Resume(a) => commands::resume::run(&cwd, a).await,
            Command::Retry(a) => commands::retry::run(&cwd, a).await,
            Command::Status(a) => commands::status::run(&cwd, a).await,
            Command::Watch(a) => commands::watch::run(&cwd, a).await,
            Command::Logs(a) => commands::logs::run(&cwd, a).await,
            Command::Diff(a) => commands::diff::run(&cwd, a).await,
            Command::Completions(a) => commands::completions::run(a, Cli::command()),
            Command::Man(_) => commands::completions::man(Cli::command()),
            Command::Stop(a) => commands::stop::run(&cwd, a).await,
            Command::Steer(a) => commands::steer::run(&cwd, a).await,
            Command::Msg(a) => commands::msg::run(&cwd, a).await,
            Command::Ask(a) => commands::ask::run(a).await,
            Command::Answer(a) => commands::answer::run(&cwd, a).await,
            Command::Inbox(a) => commands::inbox::run(&cwd, a).await,
            Command::Review(a) => commands::review::run(&cwd, a).await,
            Command::Approve(a) => commands::approve::run(&cwd, a).await,
            Command::Pick(a) => commands::pick::run(&cwd, a).await,
            Command::Discard(a) => commands::discard::run(&cwd, a).await,
            Command::Land(a) => commands::land::run(&cwd, a).await,
            Command::Runs(a) => commands::runs::run(&cwd, a).await,
            Command::Stats(a) => commands::stats::run(&cwd, a).await,
            Command::Clean(a) => commands::clean::run(&cwd, a).await,
            Command::Check(a) => commands::check::run(&cwd, a).await,
            Command::Doctor(a) => commands::doctor::run(&cwd, a).await,
            Command::Serve(a) => commands::serve::run(&cwd, a).await,
            Command::Add(a) => commands::add::run(&cwd, a).await,
            Command::Mcp(a) => commands::mcp::run(&cwd, a).await,
            Command::Token(a) => commands::token::run(&cwd, a),
            Command::Watchdog
            | Command::SandboxBridge { .. }
            | Command::Follow { .. }
            | Command::HostAttempt { .. }
            | Command::PodWait
            | Command::PodAttempt { .. } => Ok(0),
        }
    });
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            let code = commands::exit_code_for(&e);
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}
