//! `baton serve`: a long-running process for one repository (or several,
//! see repos.rs) that runs plans and queued tasks, serves a JSON API
//! (OpenAPI at /api/openapi.json), an event stream (SSE at /api/events) and
//! the web dashboard at /. Every view reads the store; every action goes
//! through the engine's control requests.

mod api;
mod assets;
mod auth;
mod error;
pub mod git_door;
mod intake;
pub mod mcp;
mod notify;
mod proposals;
mod pulls;
mod repos;
mod runner;
mod schedule;
mod sign;
mod state;

pub use auth::{hash_token, new_token};
pub use notify::spawn_notifier;

pub use repos::{check_names as check_repo_names, valid_name as valid_repo_name};
pub use state::{AppState, ServeOptions};

use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
    #[error("a baton serve{} already serves this repository ({}){}; use it, or stop it first", pid.map(|p| format!(" (pid {p})")).unwrap_or_default(), root.display(), url.as_ref().map(|u| format!(" at {u}")).unwrap_or_default())]
    AlreadyServing {
        root: std::path::PathBuf,
        pid: Option<u32>,
        url: Option<String>,
    },
}

/// The whole HTTP surface of a server of one repository, for tests that
/// call it in process.
pub fn router(state: Arc<AppState>) -> Router {
    router_of(vec![state])
}

/// The whole HTTP surface of a server of `states` (one or more): with one,
/// its API is /api; with several, each one's is /api/repos/<name>.
pub fn router_of(states: Vec<Arc<AppState>>) -> Router {
    let Some(first) = states.first().cloned() else {
        return Router::new();
    };
    // MCP over streamable HTTP, behind the same access rules as the API.
    let mcp = Router::new()
        .nest_service("/mcp", mcp::http_service(states.clone()))
        .layer(axum::middleware::from_fn_with_state(
            first.clone(),
            auth::guard,
        ));
    let mut app = Router::new().merge(assets::routes());
    if states.len() == 1 {
        app = app.nest("/api", api::routes(first.clone()));
    } else {
        app = app.nest("/api", api::server_routes(first.clone()));
        for s in &states {
            let one = api::routes(s.clone()).with_state(s.clone());
            app = app.nest(&s.opts.api(), one);
        }
    }
    app.with_state(first).merge(mcp)
}

/// The address to put in a link to `addr` (a wildcard is this machine).
fn reachable(addr: &SocketAddr) -> String {
    match addr.ip().is_unspecified() {
        true => format!("127.0.0.1:{}", addr.port()),
        false => addr.to_string(),
    }
}

/// Whether an address only this machine can reach.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// Takes the lock that keeps a second server off `opts`'s repository.
fn lock(opts: &ServeOptions) -> Result<baton_core::lock::RunLock, ServeError> {
    // One server per repository: two would both resume and drive the same runs.
    let paths = baton_core::paths::StatePaths::new(opts.repo.state_dir());
    match baton_core::lock::RunLock::acquire(&paths.root.join("serve.lock")) {
        Ok(Ok(lock)) => Ok(lock),
        Ok(Err(pid)) => {
            let url = std::fs::read_to_string(paths.root.join("serve.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v["url"].as_str().map(str::to_string));
            Err(ServeError::AlreadyServing {
                root: opts.repo.root.clone(),
                pid,
                url,
            })
        }
        Err(e) => Err(ServeError::Setup(format!(
            "cannot lock {} for serve: {e}",
            opts.repo.root.display()
        ))),
    }
}

/// Listens, resumes what was going on in each repository of `all` (one or
/// more, each with its own store and lock), and serves until `shutdown`
/// resolves; then stops their runs' agents (their work committed) so that
/// the next `serve` resumes them. `on_listen` gets the bound address.
pub async fn serve(
    all: Vec<ServeOptions>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_listen: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let Some(addr) = all.first().map(|o| o.addr.clone()) else {
        return Err(ServeError::Setup("no repository to serve".into()));
    };
    repos::check_names(&all.iter().collect::<Vec<_>>()).map_err(ServeError::Setup)?;
    let _locks = all.iter().map(lock).collect::<Result<Vec<_>, _>>()?;
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|e| ServeError::Setup(e.to_string()))?;
    let mut states = Vec::new();
    for opts in all {
        states.push(AppState::new(opts, true).map_err(ServeError::Setup)?);
    }
    if states.len() > 1 {
        repos::share(&states);
    }
    // Every repository is opened (its sources' and hooks' secrets withheld)
    // before any of them resumes a run: an agent of one never gets
    // another's secrets. A repository that cannot open stops the server
    // before anything runs.
    let mut opened = Vec::new();
    for state in &states {
        match open(state, &local) {
            Ok(o) => opened.push(o),
            Err(e) => {
                for s in &states {
                    s.remove_discovery();
                }
                return Err(e);
            }
        }
    }
    for (state, o) in states.iter().zip(opened) {
        start(state, o, &local).await;
    }
    on_listen(local);
    let app = router_of(states.clone());
    let stopping = states.clone();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            for s in &stopping {
                s.begin_shutdown();
            }
        })
        .await
        .map_err(|e| ServeError::Setup(e.to_string()));
    for state in &states {
        state.wait_for_runs().await;
        state.remove_discovery();
    }
    result
}

/// What [`open`] read of a repository's served plan.
struct Opened {
    served: Option<baton_core::Plan>,
    intakes: Vec<intake::Intake>,
}

/// Opens one repository: its discovery file, and its served plan's
/// sources and hooks (their secrets withheld from every agent from now).
fn open(state: &Arc<AppState>, local: &SocketAddr) -> Result<Opened, ServeError> {
    let root = state.opts.repo.root.display().to_string();
    // On a server of several, an error says which repository it is about.
    let at = |e: String| match state.opts.name {
        Some(_) => ServeError::Setup(format!("{root}: {e}")),
        None => ServeError::Setup(e),
    };
    state
        .write_discovery(local)
        .map_err(|e| at(format!("cannot set up the local user's access: {e}")))?;
    // The served plan's sources, hooks and schedules, read once. A plan
    // that does not parse takes no work (said), and keeps nothing else
    // from starting.
    let served = match runner::config_plan(state) {
        Ok(p) => Some(p),
        Err(e) => {
            if state.opts.repo.root.join(&state.opts.plan).exists() {
                tracing::warn!("{root}: no work is taken from trackers, hooks or schedules: {e}");
            }
            None
        }
    };
    let mut intakes = Vec::new();
    if let Some(plan) = &served {
        intakes = intake::open(state, plan).map_err(at)?;
        api::inbound::open(state, plan).map_err(at)?;
    }
    Ok(Opened { served, intakes })
}

/// Starts what one opened repository's server does besides answering:
/// what was going on when it last stopped, its notifier, its sources and
/// schedules.
async fn start(state: &Arc<AppState>, o: Opened, local: &SocketAddr) {
    let root = state.opts.repo.root.display().to_string();
    runner::resume_interrupted(state).await;
    pulls::resume(state).await;
    let notify = o
        .served
        .as_ref()
        .map(|p| p.notify.clone())
        .unwrap_or_default();
    let base = state
        .opts
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", reachable(local)));
    if let Err(e) = notify::spawn_notifier(state.clone(), notify, &base) {
        tracing::warn!("{root}: notifications are off: {e}");
    }
    intake::spawn(state.clone(), o.intakes);
    if let Some(plan) = &o.served {
        schedule::spawn(state, plan);
    }
}
