//! What the server shares between requests: the repository, the store, the
//! runs it drives, and how it is reached.

use baton_core::git::Repo;
use baton_core::paths::StatePaths;
use baton_core::store::Store;
use baton_core::EngineHandle;
use std::collections::HashMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

#[derive(Clone)]
pub struct ServeOptions {
    pub addr: String,
    pub repo: Repo,
    /// The plan whose profiles, defaults and routes queued tasks use, and the
    /// default plan for runs started from the API (relative to the repo root).
    pub plan: PathBuf,
    pub watchdog: Option<Vec<OsString>>,
    /// A URL that gets a JSON POST when a task needs a person.
    pub webhook: Option<String>,
    /// baton's own binary, for lead tasks' tools (`baton mcp`).
    pub baton: Option<PathBuf>,
    /// The remote executors' drivers the binary registered.
    pub drivers: &'static [&'static baton_core::executor::Driver],
    /// The model gateway the binary has, for profiles with `gateway = true`.
    pub gateway: Option<&'static baton_core::gateway::GatewayKind>,
    /// The trackers the binary can take work from (`[[source]]`).
    pub trackers: &'static [&'static baton_core::tracker::TrackerKind],
    /// Where pull requests are opened and followed (`[land] follow`).
    pub forges: &'static [&'static baton_core::forge::ForgeKind],
    /// Where people reach the dashboard (`--public-url`): trackers' items
    /// get a link to their run there.
    pub public_url: Option<String>,
    /// The user config every plan this server reads is composed with.
    pub user: Option<baton_core::plan::UserConfig>,
    /// Its name when the server serves several repositories (its API is
    /// then under /api/repos/<name>); None when it serves this one alone.
    pub name: Option<String>,
}

impl ServeOptions {
    /// Plan text as a run reads it: composed with the user config, if any.
    pub fn compose(&self, plan: &str) -> String {
        baton_core::plan::compose(self.user.as_ref(), plan)
    }

    /// The dashboard's address of task `task` of run `run`, when the
    /// server's public URL is known.
    pub fn task_link(&self, run: &str, task: &str) -> Option<String> {
        let base = self.public_url.as_deref()?.trim_end_matches('/');
        Some(format!(
            "{base}/?{}run={run}&task={task}",
            self.repo_query()
        ))
    }

    /// Where this repository's API is on the server: /api, or
    /// /api/repos/<name> on a server of several.
    pub fn api(&self) -> String {
        match &self.name {
            Some(n) => format!("/api/repos/{n}"),
            None => "/api".to_string(),
        }
    }

    /// `repo=<name>&` for a dashboard link on a server of several.
    pub fn repo_query(&self) -> String {
        match &self.name {
            Some(n) => format!("repo={n}&"),
            None => String::new(),
        }
    }
}

/// A run this process drives: the task driving it, and its handle.
pub struct Driven {
    pub task: tokio::task::JoinHandle<()>,
    pub handle: EngineHandle,
}

pub struct AppState {
    pub opts: ServeOptions,
    pub store: Arc<Store>,
    pub paths: StatePaths,
    /// Every API call needs a token: always so under `serve`; only a test
    /// or an embedding that calls the router in process leaves it off.
    pub require_token: bool,
    /// Runs this process drives, by id.
    pub engines: Mutex<HashMap<String, Driven>>,
    pub shutdown_tx: watch::Sender<bool>,
    /// The standing run that takes queued tasks.
    pub service: tokio::sync::Mutex<Option<String>>,
    /// GitHub sources and followers that take webhooks (`/api/hooks/github`).
    pub hooks: Mutex<Vec<crate::api::hooks::Hook>>,
    /// The served plan's `[[hook]]`s (`/api/hooks/<name>`).
    pub inbound: Mutex<Vec<crate::api::inbound::Inbound>>,
    /// The ids of deliveries taken lately (a sender that retries one is
    /// answered, and nothing starts twice).
    pub deliveries: Mutex<std::collections::VecDeque<String>>,
    /// What signs and checks the action links notifications carry (set
    /// once the server knows where it is reached).
    pub links: std::sync::OnceLock<crate::notify::links::Links>,
    /// Held while a planner's plan is said yes or no to.
    pub proposals: tokio::sync::Mutex<()>,
    /// What the repositories served together share (set once, as `serve`
    /// starts; unset for a state made alone, as tests and `baton mcp` do).
    pub shared: std::sync::OnceLock<crate::repos::Shared>,
}

impl AppState {
    /// A store write the server goes on without if it fails (what a source
    /// or a schedule keeps): never dropped in silence, but said in the log
    /// with what it was for. The server's twin of the engine's
    /// `Shared::write`.
    pub async fn write<T, F>(&self, what: impl std::fmt::Display, f: F)
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, baton_core::store::StoreError> + Send + 'static,
    {
        if let Err(e) = self.store.call(f).await {
            tracing::error!("cannot record {what}: {e}");
        }
    }

    pub fn new(opts: ServeOptions, require_token: bool) -> Result<Arc<AppState>, String> {
        let paths = StatePaths::new(opts.repo.state_dir());
        let store = Arc::new(Store::open(&paths.db()).map_err(|e| e.to_string())?);
        Ok(Arc::new(AppState {
            opts,
            store,
            paths,
            require_token,
            engines: Mutex::new(HashMap::new()),
            shutdown_tx: watch::channel(false).0,
            service: tokio::sync::Mutex::new(None),
            hooks: Mutex::new(Vec::new()),
            inbound: Mutex::new(Vec::new()),
            deliveries: Mutex::new(std::collections::VecDeque::new()),
            links: std::sync::OnceLock::new(),
            proposals: tokio::sync::Mutex::new(()),
            shared: std::sync::OnceLock::new(),
        }))
    }

    /// The handle of a run this process drives.
    pub fn handle(&self, run: &str) -> Option<EngineHandle> {
        let g = self.engines.lock().ok()?;
        g.get(run).map(|d| d.handle.clone())
    }

    pub fn begin_shutdown(&self) {
        let _ = self.shutdown_tx.send(true);
    }

    pub fn shutdown_rx(&self) -> watch::Receiver<bool> {
        self.shutdown_tx.subscribe()
    }

    /// Resolves when the server begins to shut down.
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.shutdown_rx();
        async move {
            while !*rx.borrow() {
                if rx.changed().await.is_err() {
                    break;
                }
            }
        }
    }

    /// Waits for every run driven here to stop its agents and record its state.
    pub async fn wait_for_runs(&self) {
        self.begin_shutdown();
        let handles: Vec<_> = match self.engines.lock() {
            Ok(mut g) => g.drain().map(|(_, d)| d.task).collect(),
            Err(_) => Vec::new(),
        };
        for h in handles {
            let _ = h.await;
        }
    }

    fn discovery_path(&self) -> PathBuf {
        self.paths.root.join("serve.json")
    }

    /// Lets the local user's token in, and tells other baton commands of
    /// this repository where the server is (the token is not in that file:
    /// a sandboxed agent can read the repository).
    pub fn write_discovery(&self, addr: &SocketAddr) -> Result<(), String> {
        let token = baton_core::access::local_token()?;
        let hash = baton_core::access::hash_token(&token);
        let known = self.store.has_token(&hash).map_err(|e| e.to_string())?;
        if !known {
            self.store
                .add_token(&hash, "local user")
                .map_err(|e| e.to_string())?;
        }
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            addr.ip().to_string()
        };
        let info = serde_json::json!({
            "url": format!("http://{host}:{}", addr.port()),
            "api": self.opts.api(),
            "pid": std::process::id(),
        });
        let path = self.discovery_path();
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
        {
            let _ = f.write_all(info.to_string().as_bytes());
        }
        Ok(())
    }

    /// Where the server's one Web Push key is kept: the first served
    /// repository's secrets (a browser subscribes with one key only).
    pub fn push_secrets(&self) -> PathBuf {
        match self.shared.get() {
            Some(shared) => shared.push_secrets.clone(),
            None => self.paths.secrets(),
        }
    }

    pub fn remove_discovery(&self) {
        let _ = std::fs::remove_file(self.discovery_path());
    }
}
