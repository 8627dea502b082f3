//! `baton serve`: the long-running server with the API and dashboard.

use super::{open_repo, usage, watchdog_command};
use baton_server::ServeOptions;
use clap::Args;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Serve the web dashboard and the API for this repository, run plans and
/// queued tasks (`baton add`), and resume what was going on when it stopped.
/// Every request needs a token, on loopback too: `baton token url` prints a
/// link that signs the dashboard in; `baton token new` makes one to share.
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
    /// Where people reach this server's dashboard (e.g. behind a proxy):
    /// the comments baton writes on trackers' items link to their run there.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
}

async fn shutdown() {
    super::terminated().await;
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
    if let Some(u) = &args.public_url {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            return Err(usage(format!(
                "--public-url must be an http:// or https:// URL, not {u:?}"
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
        drivers: crate::executors::DRIVERS,
        gateway: Some(&baton_gateway::KIND),
        trackers: crate::executors::TRACKERS,
        forges: crate::executors::FORGES,
        public_url: args.public_url.clone(),
        user: super::user_config()?,
    };
    baton_server::serve(opts, shutdown(), |addr| {
        eprintln!("baton serve: listening on http://{addr}");
        let shown = if addr.ip().is_unspecified() {
            format!("127.0.0.1:{}", addr.port())
        } else {
            addr.to_string()
        };
        // The sign-in link is shown on a terminal only, not in a log.
        match baton_core::access::local_token() {
            Ok(t) if std::io::stderr().is_terminal() => {
                eprintln!("baton serve: dashboard (signs you in): http://{shown}/#token={t}")
            }
            _ => eprintln!("baton serve: every request needs a token, on loopback too; `baton token url` prints a link that signs the dashboard in"),
        }
        if !baton_server::is_loopback(&addr) {
            eprintln!("baton serve: not loopback: from another machine, use a token of its own (`baton token new`)");
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
