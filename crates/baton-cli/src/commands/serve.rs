//! `baton serve`: the long-running server with the API and dashboard.

use super::{usage, watchdog_command};
use baton_core::git::Repo;
use baton_server::ServeOptions;
use clap::Args;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Serve the web dashboard and the API for this repository (or several),
/// run plans and queued tasks (`baton add`), and resume what was going on
/// when it stopped. Every request needs a token, on loopback too: `baton
/// token url` prints a link that signs the dashboard in; `baton token new`
/// makes one to share.
///
/// One server for several repositories: `--repo ~/src/web --repo
/// ~/src/api`, or the user config's `[[repo]]` list (served when no --repo
/// is given, from one of those repositories or outside any). Each keeps
/// its own store, runs and lock; the dashboard switches between them, each
/// one's API is under /api/repos/<name>, MCP tools take `repo`, and a token
/// of any of them opens them all.
#[derive(Args)]
pub struct ServeArgs {
    /// A repository to serve, as DIR or NAME=DIR (the name is in URLs and
    /// tools; default: the directory's name). Repeat it to serve several.
    /// Default: the repository here, or the user config's [[repo]] list.
    #[arg(long = "repo", value_name = "[NAME=]DIR")]
    pub repos: Vec<String>,
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub addr: String,
    /// The plan whose profiles, defaults and [[route]]s queued tasks use
    /// (in each repository; a [[repo]] entry may name its own).
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

/// One repository to serve: where it is, its name, its plan.
struct Entry {
    dir: PathBuf,
    name: Option<String>,
    plan: PathBuf,
}

/// The repositories to serve: `--repo` flags, else the user config's
/// `[[repo]]` list, else the repository here.
fn entries(
    cwd: &Path,
    args: &ServeArgs,
    user: Option<&baton_core::plan::UserConfig>,
) -> anyhow::Result<Vec<Entry>> {
    if !args.repos.is_empty() {
        return args
            .repos
            .iter()
            .map(|r| {
                let (name, dir) = match r.split_once('=') {
                    Some((n, d)) => (Some(n.to_string()), d),
                    None => (None, r.as_str()),
                };
                if dir.is_empty() {
                    return Err(usage(format!("--repo {r:?} names no directory")));
                }
                Ok(Entry {
                    dir: cwd.join(expand_home(dir)),
                    name,
                    plan: args.plan.clone(),
                })
            })
            .collect();
    }
    // The list is served from one of its repositories or from outside any;
    // from another repository, that repository alone (as always).
    let here = Repo::discover(cwd).ok();
    let listed = |user: &baton_core::plan::UserConfig| {
        let Some(here) = &here else { return true };
        let base = user.path.parent().unwrap_or(Path::new("/"));
        user.repos.iter().any(|r| {
            Repo::discover(&base.join(expand_home(&r.path.to_string_lossy())))
                .is_ok_and(|repo| same_dir(&repo.state_dir(), &here.state_dir()))
        })
    };
    if let Some(user) = user.filter(|u| !u.repos.is_empty() && listed(u)) {
        // A relative path is the config file's neighbour.
        let base = user.path.parent().unwrap_or(Path::new("/"));
        return Ok(user
            .repos
            .iter()
            .map(|r| Entry {
                dir: base.join(expand_home(&r.path.to_string_lossy())),
                name: r.name.clone(),
                plan: r.plan.clone().unwrap_or_else(|| args.plan.clone()),
            })
            .collect());
    }
    Ok(vec![Entry {
        dir: cwd.to_path_buf(),
        name: None,
        plan: args.plan.clone(),
    }])
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// `~/x` as the user's home's `x`.
fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

fn check_plan_path(plan: &Path) -> anyhow::Result<()> {
    if plan.is_absolute()
        || plan
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(usage(format!(
            "the plan {} must be a path inside the repository, relative to its root",
            plan.display()
        )));
    }
    Ok(())
}

pub async fn run(cwd: &Path, args: ServeArgs) -> anyhow::Result<i32> {
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
    let user = super::user_config()?;
    let entries = entries(cwd, &args, user.as_ref())?;
    let several = entries.len() > 1;
    let mut repos = Vec::new();
    for e in &entries {
        check_plan_path(&e.plan)?;
        let repo =
            Repo::discover(&e.dir).map_err(|err| usage(format!("{}: {err}", e.dir.display())))?;
        // Alone, a repository's API is /api as it always was: no name.
        let name = match (&e.name, several) {
            (Some(n), true) => Some(n.clone()),
            (None, true) => repo
                .root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned()),
            (_, false) => None,
        };
        if let Some(n) = &name {
            if !baton_server::valid_repo_name(n) {
                return Err(usage(format!(
                    "{}: {n:?} cannot name a repository in URLs (letters, digits, '-', '_' and '.'); give it one with --repo NAME=DIR",
                    repo.root.display()
                )));
            }
        }
        if let Some((other, _, _)) =
            repos
                .iter()
                .find(|(r, _, _): &&(Repo, Option<String>, PathBuf)| {
                    // A linked worktree shares its repository's store and lock.
                    same_dir(&r.state_dir(), &repo.state_dir())
                })
        {
            return Err(usage(format!(
                "{} is given twice (as {} too)",
                repo.root.display(),
                other.root.display()
            )));
        }
        repos.push((repo, name, e.plan.clone()));
    }
    let all: Vec<ServeOptions> = repos
        .into_iter()
        .map(|(repo, name, plan)| ServeOptions {
            baton: std::env::current_exe().ok(),
            addr: args.addr.clone(),
            repo,
            plan,
            watchdog: watchdog_command(),
            webhook: args.webhook.clone(),
            drivers: crate::executors::DRIVERS,
            gateway: Some(&baton_gateway::KIND),
            trackers: crate::executors::TRACKERS,
            forges: crate::executors::FORGES,
            public_url: args.public_url.clone(),
            user: user.clone(),
            name,
        })
        .collect();
    baton_server::check_repo_names(&all.iter().collect::<Vec<_>>()).map_err(usage)?;
    let served: Vec<(String, String)> = all
        .iter()
        .filter_map(|o| Some((o.name.clone()?, o.repo.root.display().to_string())))
        .collect();
    baton_server::serve(all, shutdown(), |addr| {
        eprintln!("baton serve: listening on http://{addr}");
        for (name, root) in &served {
            eprintln!("baton serve: serving {name} ({root}) at /api/repos/{name}");
        }
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
