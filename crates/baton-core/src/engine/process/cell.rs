//! A sandbox that is a container (`sandbox = "container"`): the desk's
//! work tree, its own git directory (the desk's `.git` read-only over it),
//! the shared repository read-only, the agent CLI's state, its doors and
//! `[container] mounts`, and nothing else of the host; the profile's
//! network, memory and pids; labels naming the run, task and attempt.

use super::jail::Room;
use crate::container::cell::{Bind, Cell};
use crate::engine::shared::Shared;
use crate::plan::sandbox::Network;
use crate::sandbox::proxy::Proxy;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub(crate) async fn draw(
    sh: &Shared,
    room: &Room<'_>,
    home: Option<&Path>,
    writable: Vec<PathBuf>,
    proxy: Option<&Proxy>,
) -> Result<Cell, String> {
    let ready = sh.containers().await?;
    let mut cell = Cell::new(&ready.engine, ready.image.clone(), name(sh, room));
    cell.labels = labels(sh, room);
    cell.workdir = room.worktree.to_path_buf();
    cell.binds = binds(sh, room, home, writable, proxy);
    if let (Some(h), Some(a)) = (home, room.agent) {
        if !a.hermetic_home {
            // The home is empty inside but for the CLI's own state.
            cell.tmpfs.push(h.to_path_buf());
        }
    } else if let Some(h) = home {
        cell.tmpfs.push(h.to_path_buf());
    }
    let mut names: Vec<OsString> = Vec::new();
    for (k, _) in room.env {
        if !names.contains(k) {
            names.push(k.clone());
        }
    }
    if !names.iter().any(|k| k == "HOME") && home.is_some() {
        names.push("HOME".into());
    }
    cell.env_names = names;
    let settings = &sh.plan.container;
    if let Some(dev) = &settings.dev {
        cell.env = dev
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        cell.user = dev.remote_user.clone();
        if room.agent.is_some() {
            cell.before = dev.post_start.clone();
        }
    }
    cell.network_off = room.spec.network != Network::On;
    if !cell.network_off {
        cell.publish = forwards(settings, room.env);
    }
    cell.memory = room.spec.memory;
    cell.pids = room.spec.pids;
    cell.cpus = settings.cpus;
    let forwarded = match &room.spec.network {
        Network::Allow(list) => Some(list.as_slice()),
        Network::On if !room.services.is_empty() => Some(room.services),
        _ => None,
    };
    if let (Some(p), Some(list)) = (proxy, forwarded) {
        // The command runs under the bridge, which reaches the proxy.
        let baton = sh.baton.clone().ok_or("a network allow-list needs baton's own binary inside the container, and this engine was started without it")?;
        let plan = crate::sandbox::bridge::Plan {
            socket: p.socket.clone(),
            forwards: crate::sandbox::bridge::loopback_ports(list),
            // Its own network stays: only its services go through baton.
            direct: room.spec.network == Network::On,
        };
        cell.prefix = vec![baton.into(), "__sandbox-bridge".into()];
        cell.prefix.extend(crate::sandbox::bridge::args(&plan));
        cell.prefix.push("--".into());
    }
    Ok(cell)
}

/// The dev container's `forwardPorts`, each on the task's own port
/// (`BATON_PORT_1`, `BATON_PORT_2`...) of 127.0.0.1.
fn forwards(
    settings: &crate::plan::container::ContainerSettings,
    env: &[(OsString, OsString)],
) -> Vec<(u16, u16)> {
    let inside = settings.dev.iter().flat_map(|d| d.forward_ports.iter());
    inside
        .enumerate()
        .filter_map(|(i, port)| {
            let host = crate::sandbox::env_var(env, &format!("BATON_PORT_{}", i + 1))?;
            Some((host.to_str()?.parse().ok()?, *port))
        })
        .collect()
}

/// A name the engine takes: baton, the run, the desk or task, the attempt,
/// and a number of this process (two draws for one attempt never clash).
fn name(sh: &Shared, room: &Room<'_>) -> String {
    static DRAWN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let k = DRAWN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let desk = room
        .worktree
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let raw = format!(
        "baton-{}-{}-{}-{}-{k}",
        sh.run_id,
        room.task.unwrap_or(&desk),
        room.attempt.unwrap_or(0),
        std::process::id()
    );
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn labels(sh: &Shared, room: &Room<'_>) -> Vec<(String, String)> {
    let mut l = vec![(crate::container::RUN_LABEL.to_string(), sh.run_id.clone())];
    if let Some(t) = room.task {
        l.push(("baton.task".into(), t.to_string()));
    }
    if let Some(n) = room.attempt {
        l.push(("baton.attempt".into(), n.to_string()));
    }
    l
}

fn binds(
    sh: &Shared,
    room: &Room<'_>,
    home: Option<&Path>,
    writable: Vec<PathBuf>,
    proxy: Option<&Proxy>,
) -> Vec<Bind> {
    let same = |p: &Path, writable: bool| Bind {
        host: p.to_path_buf(),
        inside: p.to_path_buf(),
        writable,
    };
    // The shared repository read-only (the desk's own git borrows its
    // objects), then what is the desk's to write.
    let mut binds = vec![same(&sh.repo.root, false), same(room.worktree, true)];
    binds.push(same(&room.own_git.dir, true));
    let dotgit = room.worktree.join(".git");
    if dotgit.exists() {
        binds.push(Bind {
            host: room.own_git.dotgit.clone(),
            inside: dotgit,
            writable: false,
        });
    }
    let hermetic = room.agent.is_some_and(|a| a.hermetic_home);
    if let (true, Some(h)) = (hermetic, home) {
        binds.push(same(h, true));
    }
    binds.extend(
        writable
            .iter()
            .filter(|w| w.exists())
            .map(|w| same(w, true)),
    );
    binds.extend(
        proxy
            .and_then(|p| p.socket.parent())
            .map(|d| same(d, false)),
    );
    if let Some(b) = sh.baton.as_deref().map(Path::new).filter(|b| b.exists()) {
        binds.push(same(b, false));
    }
    // The prompt's file, which an agent may be pointed at.
    if let Some(f) = crate::sandbox::env_var(room.env, "BATON_PROMPT_FILE") {
        let f = PathBuf::from(f);
        if f.exists() {
            binds.push(same(&f, false));
        }
    }
    let settings = &sh.plan.container;
    for m in &settings.mounts {
        binds.push(Bind {
            host: m.host.clone().into(),
            inside: m.pod.clone().into(),
            writable: m.writable,
        });
    }
    for m in settings.dev.iter().flat_map(|d| d.mounts.iter()) {
        let parts: Vec<&str> = m.rsplitn(3, ':').collect();
        if let [mode, inside, host] = parts.as_slice() {
            binds.push(Bind {
                host: host.into(),
                inside: inside.into(),
                writable: *mode == "rw",
            });
        }
    }
    binds
}
