//! `baton serve`: a long-running process for one repository that runs plans
//! and queued tasks, serves a JSON API (OpenAPI at /api/openapi.json), an
//! event stream (SSE at /api/events) and the web dashboard at /. Every view
//! reads the store; every action goes through the engine's control requests.

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
mod runner;
mod schedule;
mod sign;
mod state;

pub use auth::{hash_token, new_token};
pub use notify::spawn_notifier;

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
    #[error("a baton serve{} already serves this repository{}; use it, or stop it first", pid.map(|p| format!(" (pid {p})")).unwrap_or_default(), url.as_ref().map(|u| format!(" at {u}")).unwrap_or_default())]
    AlreadyServing {
        pid: Option<u32>,
        url: Option<String>,
    },
}

/// The whole HTTP surface, for `serve` and for tests that call it in process.
pub fn router(state: Arc<AppState>) -> Router {
    // MCP over streamable HTTP, behind the same access rules as the API.
    let mcp = Router::new()
        .nest_service("/mcp", mcp::http_service(state.clone()))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ));
    Router::new()
        .merge(assets::routes())
        .nest("/api", api::routes(state.clone()))
        .with_state(state)
        .merge(mcp)
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

/// Listens, resumes what was going on, and serves until `shutdown` resolves;
/// then stops its runs' agents (their work committed) so that the next
/// `serve` resumes them. `on_listen` gets the bound address.
pub async fn serve(
    opts: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_listen: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    // One server per repository: two would both resume and drive the same runs.
    let paths = baton_core::paths::StatePaths::new(opts.repo.state_dir());
    let _one = match baton_core::lock::RunLock::acquire(&paths.root.join("serve.lock")) {
        Ok(Ok(lock)) => lock,
        Ok(Err(pid)) => {
            let url = std::fs::read_to_string(paths.root.join("serve.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v["url"].as_str().map(str::to_string));
            return Err(ServeError::AlreadyServing { pid, url });
        }
        Err(e) => {
            return Err(ServeError::Setup(format!(
                "cannot lock the repository for serve: {e}"
            )))
        }
    };
    let listener = tokio::net::TcpListener::bind(&opts.addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: opts.addr.clone(),
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|e| ServeError::Setup(e.to_string()))?;
    let state = AppState::new(opts, true).map_err(ServeError::Setup)?;
    state
        .write_discovery(&local)
        .map_err(|e| ServeError::Setup(format!("cannot set up the local user's access: {e}")))?;
    // The served plan's sources, hooks and schedules, read once. A plan
    // that does not parse takes no work (said), and keeps nothing else
    // from starting.
    let served = match runner::config_plan(&state) {
        Ok(p) => Some(p),
        Err(e) => {
            if state.opts.repo.root.join(&state.opts.plan).exists() {
                tracing::warn!("no work is taken from trackers, hooks or schedules: {e}");
            }
            None
        }
    };
    // Before any run starts: the sources' and hooks' secrets are kept from
    // its agents.
    let mut intakes = Vec::new();
    if let Some(plan) = &served {
        intakes = intake::open(&state, plan).map_err(ServeError::Setup)?;
        api::inbound::open(&state, plan).map_err(ServeError::Setup)?;
    }
    runner::resume_interrupted(&state).await;
    pulls::resume(&state).await;
    let notify = served
        .as_ref()
        .map(|p| p.notify.clone())
        .unwrap_or_default();
    let base = state
        .opts
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", reachable(&local)));
    if let Err(e) = notify::spawn_notifier(state.clone(), notify, &base) {
        tracing::warn!("notifications are off: {e}");
    }
    intake::spawn(state.clone(), intakes);
    if let Some(plan) = &served {
        schedule::spawn(&state, plan);
    }
    on_listen(local);
    let app = router(state.clone());
    let stopping = state.clone();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            stopping.begin_shutdown();
        })
        .await
        .map_err(|e| ServeError::Setup(e.to_string()));
    state.wait_for_runs().await;
    state.remove_discovery();
    result
}
