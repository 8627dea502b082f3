//! `baton serve`: the long-running server with the API and dashboard.

use super::{open_repo, usage, watchdog_command};
use baton_server::ServeOptions;
use clap::Args;
use std::path::{Path, PathBuf};

/// Serve the web dashboard and the API for this repository, run plans and
/// queued tasks (`baton add`), and resume what was going on when it stopped.
/// Beyond 127.0.0.1 every API call needs a token (`baton token new`).
#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub addr: String,
    /// The plan whose profiles, defaults and [[route]]s queued tasks use.
    #[arg(long, default_value = "baton.toml")]
    pub plan: PathBuf,
    /// A URL that gets a JSON POST ({"text": ...}) when a task needs a person.
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
}

async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
    }
    eprintln!("baton serve: stopping; running agents are stopped and their work committed, `baton serve` resumes them");
}

pub async fn run(cwd: &Path, args: ServeArgs) -> anyhow::Result<i32> {
    let repo = open_repo(cwd)?;
    if args.plan.is_absolute()
        || args
            .plan
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(usage(
            "--plan must be a path inside the repository, relative to its root",
        ));
    }
    if let Some(w) = &args.webhook {
        if !(w.starts_with("http://") || w.starts_with("https://")) {
            return Err(usage(format!(
                "--webhook must be an http:// or https:// URL, not {w:?}"
            )));
        }
    }
    let opts = ServeOptions {
        baton: std::env::current_exe().ok(),
        addr: args.addr.clone(),
        repo,
        plan: args.plan.clone(),
        watchdog: watchdog_command(),
        webhook: args.webhook.clone(),
    };
    baton_server::serve(opts, shutdown(), |addr| {
        eprintln!("baton serve: listening on http://{addr}");
        if !baton_server::is_loopback(&addr) {
            eprintln!("baton serve: not loopback: every API call needs a token; create one with `baton token new`");
        }
    })
    .await
    .map_err(|e| match e {
        baton_server::ServeError::Bind { .. } | baton_server::ServeError::AlreadyServing { .. } => {
            usage(e.to_string())
        }
        other => anyhow::Error::new(other),
    })?;
    Ok(0)
}
