//! A sandbox that is a container (`sandbox = "container"`): the desk's
//! work tree, its own git directory (the desk's `.git` read-only over it),
//! the shared repository's objects read-only (its own git borrows them),
//! the agent CLI's state, its doors and `[container] mounts`, and nothing
//! else of the host; the profile's network, memory and pids; labels naming
//! the run, task and attempt.

use super::jail::Room;
use crate::container::cell::{Bind, Cell};
use crate::engine::shared::Shared;
use crate::plan::sandbox::Network;
use crate::sandbox::proxy::Proxy;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// `bridged`: the proxy and the addresses the command reaches through it.
pub(crate) async fn draw(
    sh: &Shared,
    room: &Room<'_>,
    home: Option<&Path>,
    writable: Vec<PathBuf>,
    bridged: Option<(&Proxy, &[String])>,
) -> Result<Cell, String> {
    let proxy = bridged.map(|(p, _)| p);
    let ready = sh.containers().await?;
    let mut cell = Cell::new(&ready.engine, ready.image.clone(), name(sh, room));
    cell.labels = labels(sh, room);
    cell.workdir = room.worktree.to_path_buf();
    cell.binds = binds(sh, room, home, writable, proxy);
    if let Some(b) = cell
        .binds
        .iter()
        .find(|b| bad_path(&b.host) || bad_path(&b.inside))
    {
        return Err(format!(
            "cannot bind {} into a container: a path with `:` or `,` cannot be said to the engine",
            b.host.display()
        ));
    }
    let hermetic = room.agent.is_some_and(|a| a.hermetic_home);
    if let (Some(h), false) = (home, hermetic) {
        // The home is empty inside but for the CLI's own state.
        cell.tmpfs.push(h.to_path_buf());
    }
    let settings = &sh.plan.container;
    if let Some(dev) = &settings.dev {
        cell.env = dev
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        cell.user = dev.remote_user.clone();
        cell.before = dev.post_start.clone();
    }
    environment(&mut cell, room, home);
    user(&mut cell, &ready.engine);
    cell.network_off = room.spec.network != Network::On;
    if !cell.network_off {
        cell.publish = forwards(settings, room.env);
    }
    cell.memory = room.spec.memory;
    cell.pids = room.spec.pids;
    cell.cpus = settings.cpus;
    if let Some((p, list)) = bridged {
        // A container with its own network keeps it: only `list` goes
        // through baton.
        cell.prefix = super::jail::bridge(sh, p, list, room.spec.network == Network::On)?;
        cell.prefix.push("--".into());
    }
    Ok(cell)
}

/// Who the command runs as: the image's user, or you under a root engine
/// while baton is not root (its root would own what the agent writes).
fn user(cell: &mut Cell, engine: &crate::container::Engine) {
    if cell.user.is_none() && !engine.rootless && !crate::sandbox::is_root() {
        // SAFETY: getuid and getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        cell.user = Some(format!("{uid}:{gid}"));
    } else if cell.user.is_some() && engine.rootless && engine.is_podman() {
        // The image's user is you outside, so it can write the desk.
        cell.userns = Some("keep-id".into());
    }
}

/// The variables the container gets: the attempt's (by name: their values
/// stay off every command line), its home, and the provider keys of
/// baton's own environment (as an agent without a container inherits
/// them; a gateway's attempt has them unset for the client). The engine's
/// client keeps its own home and XDG directories.
fn environment(cell: &mut Cell, room: &Room<'_>, home: Option<&Path>) {
    let mut names: Vec<OsString> = Vec::new();
    for (k, _) in room.env {
        if !names.contains(k) && !crate::container::ENGINE_VARS.iter().any(|e| k == e) {
            names.push(k.clone());
        }
    }
    // As an agent without a container inherits them from baton: the
    // provider keys and git's identity (where its config holds none).
    let inherited = crate::gateway::PROVIDER_VARS.iter().chain(GIT_IDENTITY);
    for k in inherited {
        if !names.iter().any(|n| n == k) {
            names.push(k.into());
        }
    }
    cell.env_names = names;
    // The agent is walled in: Claude Code's bypassPermissions as root asks
    // to be told (its profile may say otherwise).
    if room.agent.is_some() && crate::sandbox::env_var(room.env, "IS_SANDBOX").is_none() {
        cell.env.push(("IS_SANDBOX".into(), "1".into()));
    }
    for k in crate::container::ENGINE_VARS {
        let attempt = match (*k, crate::sandbox::env_var(room.env, k)) {
            ("HOME", None) => home.map(|h| h.as_os_str().to_os_string()),
            (_, a) => a,
        };
        let Some(value) = attempt else { continue };
        cell.env
            .push((k.to_string(), value.to_string_lossy().to_string()));
        if room.env.iter().any(|(e, _)| e == k) {
            cell.client_env.push((k.into(), std::env::var_os(k)));
        }
    }
}

/// git's identity in the environment, passed on by name.
const GIT_IDENTITY: &[&str] = &[
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_AUTHOR_DATE",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
    "GIT_COMMITTER_DATE",
];

/// A path the engine's `--volume` cannot carry.
fn bad_path(p: &Path) -> bool {
    let s = p.to_string_lossy();
    s.contains(':') || s.contains(',')
}

/// The dev container file's bind mounts baton lends: (host, inside). A
/// file of the repository (which an agent's merged commit can change)
/// lends only what is inside the repository, and no socket: never your
/// home, /tmp's sockets or an engine's.
pub(crate) fn dev_mounts(
    settings: &crate::plan::container::ContainerSettings,
    root: &Path,
) -> Vec<(String, String)> {
    use std::os::unix::fs::FileTypeExt;
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let mut out = Vec::new();
    for m in settings.dev.iter().flat_map(|d| d.mounts.iter()) {
        let parts: Vec<&str> = m.rsplitn(3, ':').collect();
        let [_, inside, host] = parts.as_slice() else {
            continue;
        };
        let Ok(real) = root.join(host).canonicalize() else {
            continue;
        };
        let socket = std::fs::metadata(&real).is_ok_and(|m| m.file_type().is_socket());
        if real.starts_with(&root) && !socket {
            out.push((real.display().to_string(), inside.to_string()));
        }
    }
    out
}

/// The object directories git reads for the repository: its own and those
/// its alternates name (a `--shared` clone's).
fn objects(common: &Path) -> Vec<PathBuf> {
    let own = common.join("objects");
    let mut all = vec![own.clone()];
    let listed = std::fs::read_to_string(own.join("info/alternates")).unwrap_or_default();
    for line in listed.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let p = Path::new(line);
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            own.join(p)
        };
        if p.is_dir() && !all.contains(&p) {
            all.push(p);
        }
    }
    all
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
    crate::container::name_of(&raw)
}

fn labels(sh: &Shared, room: &Room<'_>) -> Vec<String> {
    let repo = crate::container::repo_key(&sh.repo.common_dir);
    crate::container::labels(&repo, &sh.run_id, room.task, room.attempt)
}

fn binds(
    sh: &Shared,
    room: &Room<'_>,
    home: Option<&Path>,
    writable: Vec<PathBuf>,
    proxy: Option<&Proxy>,
) -> Vec<Bind> {
    let mut binds = desk_binds(sh, room, home, writable);
    binds.extend(lent_binds(sh, room, proxy));
    // One bind a place: the engines refuse a destination twice (a hermetic
    // home is also among the writable paths).
    let mut seen: Vec<PathBuf> = Vec::new();
    binds.retain(|b| {
        let first = !seen.contains(&b.inside);
        seen.push(b.inside.clone());
        first
    });
    binds
}

fn same(p: &Path, writable: bool) -> Bind {
    Bind {
        host: p.to_path_buf(),
        inside: p.to_path_buf(),
        writable,
    }
}

/// The desk: the shared repository's objects read-only (the desk's own
/// git borrows them, and theirs), then what is the desk's to write.
fn desk_binds(
    sh: &Shared,
    room: &Room<'_>,
    home: Option<&Path>,
    writable: Vec<PathBuf>,
) -> Vec<Bind> {
    let mut binds: Vec<Bind> = objects(&sh.repo.common_dir)
        .iter()
        .map(|o| same(o, false))
        .collect();
    binds.push(same(room.worktree, true));
    binds.push(same(&room.own_git.dir, true));
    let dotgit = room.worktree.join(".git");
    if dotgit.exists() {
        binds.push(Bind {
            host: room.own_git.dotgit.clone(),
            inside: dotgit,
            writable: false,
        });
    }
    if let (true, Some(h)) = (room.agent.is_some_and(|a| a.hermetic_home), home) {
        binds.push(same(h, true));
    }
    binds.extend(
        writable
            .iter()
            .filter(|w| w.exists())
            .map(|w| same(w, true)),
    );
    binds
}

/// What is lent read-only: the proxy's socket, baton itself (the bridge,
/// `baton ask`), the files baton wrote for the command, its prompt, and
/// the mounts the plan and the dev container file name.
fn lent_binds(sh: &Shared, room: &Room<'_>, proxy: Option<&Proxy>) -> Vec<Bind> {
    let mut binds: Vec<Bind> = proxy
        .and_then(|p| p.socket.parent())
        .map(|d| same(d, false))
        .into_iter()
        .collect();
    if let Some(b) = sh.baton.as_deref().map(Path::new).filter(|b| b.exists()) {
        binds.push(same(b, false));
        // On the image's PATH too, for a script's `baton ask`.
        binds.push(Bind {
            host: b.to_path_buf(),
            inside: "/usr/local/bin/baton".into(),
            writable: false,
        });
    }
    let prompt = crate::sandbox::env_var(room.env, "BATON_PROMPT_FILE").map(PathBuf::from);
    let files = room.files.iter().map(|f| f.to_path_buf()).chain(prompt);
    binds.extend(files.filter(|f| f.exists()).map(|f| same(&f, false)));
    let settings = &sh.plan.container;
    binds.extend(settings.mounts.iter().map(|m| Bind {
        host: m.host.clone().into(),
        inside: m.pod.clone().into(),
        writable: m.writable,
    }));
    // The dev container file's: read-only, and only the repository's own.
    binds.extend(
        dev_mounts(settings, &sh.repo.root)
            .into_iter()
            .map(|(host, inside)| Bind {
                host: host.into(),
                inside: inside.into(),
                writable: false,
            }),
    );
    binds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::DevContainer;
    use crate::plan::container::ContainerSettings;

    #[test]
    fn a_dev_container_file_lends_only_the_repositorys_own_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        std::fs::create_dir_all(root.join("tools")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("etc-link")).unwrap();
        let listener = std::os::unix::net::UnixListener::bind(root.join("agent.sock")).unwrap();
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        let settings = ContainerSettings {
            dev: Some(DevContainer {
                mounts: vec![
                    "tools:/opt/tools:ro".into(),
                    format!("{}:/opt/abs:rw", root.join("tools").display()),
                    "/etc:/x:ro".into(),
                    "etc-link:/y:ro".into(),
                    "../:/z:ro".into(),
                    "agent.sock:/s:ro".into(),
                    format!("{home}:/h:ro"),
                ],
                ..DevContainer::default()
            }),
            ..ContainerSettings::default()
        };
        let lent = dev_mounts(&settings, &root);
        let tools = root
            .canonicalize()
            .unwrap()
            .join("tools")
            .display()
            .to_string();
        assert_eq!(
            lent,
            [
                (tools.clone(), "/opt/tools".to_string()),
                (tools, "/opt/abs".to_string())
            ]
        );
        drop(listener);
    }

    #[test]
    fn the_objects_git_borrows_are_the_repositorys_and_its_alternates() {
        let dir = tempfile::tempdir().unwrap();
        let common = dir.path().join("repo/.git");
        let other = dir.path().join("origin/.git/objects");
        std::fs::create_dir_all(common.join("objects/info")).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        let listed = format!("# a comment\n{}\n/nowhere/objects\n", other.display());
        std::fs::write(common.join("objects/info/alternates"), listed).unwrap();
        assert_eq!(objects(&common), [common.join("objects"), other]);
    }
}
