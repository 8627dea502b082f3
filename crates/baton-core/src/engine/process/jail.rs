//! The sandbox a desk's commands run in, drawn for one use: an agent's
//! attempt (its CLI's state writable, a lead's door to its tools), or a check that runs
//! the project's code over an agent's work (setup, gates, teardown,
//! verify), which writes only the desk. Each gets the desk's own git
//! directory, so nothing it runs can touch the shared repository.

use crate::engine::shared::Shared;
use crate::payload::Payload;
use crate::plan::sandbox::{Network, Sandbox, Wall};
use crate::plan::AgentProfile;
use crate::sandbox::{proxy::Proxy, OwnGit};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// What one sandbox is drawn for.
pub(crate) struct Room<'a> {
    pub spec: &'a Sandbox,
    pub worktree: &'a Path,
    pub own_git: &'a OwnGit,
    /// The environment the command gets (its HOME and PATH are read).
    pub env: &'a [(OsString, OsString)],
    /// The agent that works here: its CLI's own state is writable. None: a
    /// check, which writes only the desk.
    pub agent: Option<&'a AgentProfile>,
    /// Doors out of the sandbox (directories with a socket): a lead's to
    /// its tools, and the one for questions to a person.
    pub doors: Vec<&'a Path>,
    /// Whose connections the proxy reports.
    pub task: Option<&'a str>,
    pub attempt: Option<u32>,
    /// Addresses on this machine's loopback the command must reach (its
    /// own services, the model gateway): a container with its own network
    /// still reaches them there, through the bridge.
    pub loopback: &'a [String],
    /// Files baton wrote for the command (its CLI's MCP config), which a
    /// container must see where they are, read-only.
    pub files: Vec<&'a Path>,
}

/// A drawn sandbox: bubblewrap's arguments or a container's recipe, and
/// the proxy of an allow-list, which lives as long as this does.
pub(crate) struct Jail {
    walls: Walls,
    _proxy: Option<Proxy>,
}

enum Walls {
    Bwrap(Vec<OsString>),
    Container(Box<crate::container::Cell>),
}

impl Jail {
    /// `program args` run inside: the program to start and its arguments.
    pub fn command(&self, program: OsString, args: Vec<OsString>) -> (OsString, Vec<OsString>) {
        match &self.walls {
            Walls::Bwrap(jail) => crate::sandbox::wrap(jail, program, args),
            Walls::Container(cell) => cell.command(program, args),
        }
    }
}

impl Jail {
    /// Waits until no container of this sandbox runs: after a command was
    /// killed (stop, timeout), its engine's client is gone but not its
    /// container, which would go on writing the desk baton is about to
    /// commit and check.
    pub async fn settle(&self) {
        let Walls::Container(cell) = &self.walls else {
            return;
        };
        let names = cell.names();
        if names.is_empty() {
            return;
        }
        if let Err(e) = crate::container::remove_with(&cell.program, &names).await {
            tracing::warn!("cannot remove the containers {names:?}: {e}");
        }
    }

    /// Which limit a command that exited with `code` hit, if it says so:
    /// in a container, SIGKILL comes from the kernel at its memory limit
    /// (baton's own stop and timeout are told apart before this).
    pub fn limit_hit(&self, code: i32) -> Option<String> {
        let Walls::Container(cell) = &self.walls else {
            return None;
        };
        match (cell.memory, code) {
            (Some(m), 137) => Some(format!(
                "killed at its memory limit of {} (the profile's `memory`; SIGKILL in its container)",
                crate::memory::human(m)
            )),
            _ => None,
        }
    }
}

impl Drop for Jail {
    /// A command's container goes with it (`--rm`), unless the command was
    /// killed (SIGKILL reaches the engine's client, not the container):
    /// what is left is removed here, off the async threads.
    fn drop(&mut self) {
        if let Walls::Container(cell) = &self.walls {
            crate::container::remove_later(cell.program.clone(), cell.names());
        }
    }
}

/// Where the desk `name` of this run keeps its own git directory.
pub(crate) fn own_git(sh: &Shared, name: &str) -> OwnGit {
    OwnGit::at(&sh.paths.run_dir(&sh.run_id).join("desks").join(name))
}

/// The desk's own git directory, made as its work tree stands now.
pub(crate) async fn make_own_git(
    sh: &Shared,
    name: &str,
    worktree: &Path,
) -> Result<OwnGit, String> {
    let own = own_git(sh, name);
    own.make(&sh.repo, worktree)
        .await
        .map_err(|e| format!("cannot make the desk's own git directory: {e}"))?;
    Ok(own)
}

/// The name of a task's desk among the run's desks (its own git directory).
pub(crate) fn desk_name(task: &str) -> String {
    format!("task-{task}")
}

/// The sandbox of a command that checks or prepares a desk (setup, teardown,
/// verify, the pool's setup): it writes only the desk, whose own git
/// directory `desk` names; `task` and `attempt` own the proxy's events.
pub(crate) async fn check_jail(
    sh: &Shared,
    spec: &crate::plan::sandbox::Sandbox,
    desk: &str,
    task: Option<&str>,
    attempt: Option<u32>,
    worktree: &std::path::Path,
    env: &[(OsString, OsString)],
) -> Result<Jail, String> {
    let own = make_own_git(sh, desk, worktree).await?;
    let room = Room {
        spec,
        worktree,
        own_git: &own,
        env,
        agent: None,
        doors: Vec::new(),
        task,
        attempt,
        loopback: &[],
        files: Vec::new(),
    };
    draw(sh, room).await
}

/// The sandbox the run's own checks (verify, a spare desk's teardown, the
/// pool's setup) run in: none if no agent of the plan is sandboxed, else
/// the least any of them may do (no network if one has none, else only the
/// hosts any lists), every hidden path of any.
pub(crate) fn for_checks(sh: &Shared) -> Option<Sandbox> {
    let boxes: Vec<&Sandbox> = sh
        .plan
        .agents
        .values()
        .filter_map(|a| a.sandbox.as_ref())
        .collect();
    let first = boxes.first()?;
    let mut hide: Vec<String> = Vec::new();
    for h in boxes.iter().flat_map(|b| b.hide.iter()) {
        if !hide.contains(h) {
            hide.push(h.clone());
        }
    }
    let network = if boxes.iter().any(|b| b.network == Network::Off) {
        Network::Off
    } else if boxes.iter().any(|b| matches!(b.network, Network::Allow(_))) {
        let mut hosts: Vec<String> = Vec::new();
        for b in &boxes {
            if let Network::Allow(list) = &b.network {
                hosts.extend(
                    list.iter()
                        .filter(|h| !hosts.contains(h))
                        .cloned()
                        .collect::<Vec<_>>(),
                );
            }
        }
        Network::Allow(hosts)
    } else {
        first.network.clone()
    };
    let wall = if boxes.iter().any(|b| b.wall == Wall::Container) {
        Wall::Container
    } else {
        Wall::Bwrap
    };
    Some(Sandbox {
        wall,
        network,
        hide,
        memory: None,
        pids: None,
    })
}

pub(crate) async fn draw(sh: &Shared, room: Room<'_>) -> Result<Jail, String> {
    let home = crate::sandbox::env_var(room.env, "HOME")
        .or_else(|| std::env::var_os("HOME"))
        .map(PathBuf::from);
    let mut writable = Vec::new();
    match (&home, room.agent) {
        (Some(h), Some(a)) if a.hermetic_home => writable.push(h.clone()),
        (Some(h), Some(a)) => {
            for p in crate::sandbox::cli_state(&a.adapter, h, room.env) {
                // A directory the CLI would make: made now, so it can be bound.
                if p.extension().is_none() {
                    let _ = tokio::fs::create_dir_all(&p).await;
                }
                writable.push(p);
            }
        }
        _ => {}
    }
    writable.extend(room.doors.iter().map(|d| d.to_path_buf()));
    let allow = match &room.spec.network {
        Network::Allow(list) => Some(list.clone()),
        Network::On if room.spec.wall == Wall::Container && !room.loopback.is_empty() => {
            Some(room.loopback.to_vec())
        }
        _ => None,
    };
    let proxy = match &allow {
        Some(list) => Some(start_proxy(sh, room.task, room.attempt, list)?),
        None => None,
    };
    let bridged = proxy.as_ref().zip(allow.as_deref());
    if room.spec.wall == Wall::Container {
        let cell = super::cell::draw(sh, &room, home.as_deref(), writable, bridged).await?;
        return Ok(Jail {
            walls: Walls::Container(Box::new(cell)),
            _proxy: proxy,
        });
    }
    let visible = visible(sh, room.env, room.agent, proxy.as_ref());
    let desk = crate::sandbox::Desk {
        worktree: room.worktree,
        repo_root: &sh.repo.root,
        own_git: Some(room.own_git),
        home: home.as_deref(),
        writable,
        visible,
    };
    let mut args = crate::sandbox::bwrap_args(room.spec, &desk);
    if let Some((p, list)) = bridged {
        args.push("--".into());
        args.extend(bridge(sh, p, list, false)?);
    }
    Ok(Jail {
        walls: Walls::Bwrap(args),
        _proxy: proxy,
    })
}

/// The command runs under baton's network bridge, which reaches `proxy`
/// for the addresses of `list` (`direct`: only its loopback ones, the
/// network otherwise the command's own): the words to run it under.
pub(super) fn bridge(
    sh: &Shared,
    proxy: &Proxy,
    list: &[String],
    direct: bool,
) -> Result<Vec<OsString>, String> {
    let baton = sh.baton.as_deref().ok_or("the sandbox's network bridge (an allow-list, services, the model gateway) is baton's own binary inside it, and this engine was started without it")?;
    let plan = crate::sandbox::bridge::Plan {
        socket: proxy.socket.clone(),
        forwards: crate::sandbox::bridge::loopback_ports(list),
        direct,
    };
    Ok(crate::sandbox::bridge::prefix(baton, &plan))
}

/// What the sandbox must still see under its private /tmp: the proxy's
/// socket, baton itself (the bridge), the programs and scripts, and PATH.
fn visible(
    sh: &Shared,
    env: &[(OsString, OsString)],
    agent: Option<&AgentProfile>,
    proxy: Option<&Proxy>,
) -> Vec<PathBuf> {
    let mut visible: Vec<PathBuf> = proxy
        .iter()
        .filter_map(|p| p.socket.parent().map(Path::to_path_buf))
        .collect();
    visible.extend(
        sh.baton
            .as_ref()
            .and_then(|b| Path::new(b).parent().map(Path::to_path_buf)),
    );
    let path = crate::sandbox::env_var(env, "PATH")
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    visible.extend(std::env::split_paths(&path));
    for word in agent.and_then(|a| a.command.as_ref()).into_iter().flatten() {
        let p = Path::new(word);
        if p.is_absolute() && p.exists() {
            visible.extend(p.parent().map(Path::to_path_buf));
        }
    }
    visible
}

/// The proxy of a sandbox whose network is an allow-list; every
/// connection it is asked for becomes an event.
fn start_proxy(
    sh: &Shared,
    task: Option<&str>,
    n: Option<u32>,
    list: &[String],
) -> Result<Proxy, String> {
    static PROXIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    // A directory of its own: the sandbox sees this proxy's socket only, not
    // another profile's (with another list). Short: a Unix socket's path
    // has at most 107 bytes.
    let k = PROXIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("baton-{}-proxy-{k}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let socket = dir.join("proxy.sock");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let proxy = Proxy::start(&socket, list.to_vec(), tx).map_err(|e| {
        format!(
            "cannot start the sandbox's proxy at {}: {e}",
            socket.display()
        )
    })?;
    let (store, run) = (sh.store.clone(), sh.run_id.clone());
    let task = task.map(str::to_string);
    tokio::spawn(async move {
        while let Some(asked) = rx.recv().await {
            let said = Payload::SandboxConnection {
                host: asked.host,
                allowed: asked.allowed,
            };
            let (run, task) = (run.clone(), task.clone());
            let res = store
                .call(move |s| s.event(&run, task.as_deref(), n, said))
                .await;
            if let Err(e) = res {
                tracing::warn!("cannot record a sandbox connection: {e}");
            }
        }
    });
    Ok(proxy)
}
