//! Agents (and their gates, setup, teardown and the run's verify) under
//! bubblewrap: the filesystem read-only but for the desk's work tree, its
//! own git directory ([`own_git`]), a private /tmp and the agent's own CLI
//! state; the shared repository read-only; secrets' directories hidden; a
//! PID namespace of its own (it cannot signal baton or another agent); no
//! capabilities, even as root; and nothing outliving it. The network is
//! unshared when the profile says `network = "off"` (or names the only
//! hosts it may reach), and then the host's sockets under /run are out of
//! sight too.

pub mod bridge;
pub mod cgroup;
pub mod own_git;
pub mod proxy;

pub use own_git::OwnGit;

use crate::plan::sandbox::{Network, Sandbox};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Where one attempt's sandbox is drawn.
pub struct Desk<'a> {
    pub worktree: &'a Path,
    /// The repository's checkout (read-only inside, with its `.git`).
    pub repo_root: &'a Path,
    /// The desk's own git directory, which its `.git` names inside. None:
    /// its `.git` stays as it is, read-only (git there can read, not write).
    pub own_git: Option<&'a OwnGit>,
    /// The agent's home (`HOME` of its environment).
    pub home: Option<&'a Path>,
    /// What else the agent may write: a hermetic home, its CLI's own state.
    pub writable: Vec<PathBuf>,
    /// What else it must see under a private /tmp (the proxy's socket).
    pub visible: Vec<PathBuf>,
}

/// The arguments of `bwrap` up to the program it runs.
pub fn bwrap_args(spec: &Sandbox, d: &Desk) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |args: &[&OsString]| a.extend(args.iter().map(|s| (*s).clone()));
    let os = |s: &str| OsString::from(s);
    let p = |p: &Path| p.as_os_str().to_os_string();
    push(&[
        &os("--die-with-parent"),
        &os("--unshare-pid"),
        &os("--unshare-ipc"),
        &os("--new-session"),
    ]);
    if is_root() {
        // Root keeps every capability in a sandbox unless told: it could
        // remount / writable, or unmount what hides a secret.
        push(&[&os("--cap-drop"), &os("ALL")]);
    }
    push(&[&os("--ro-bind"), &os("/"), &os("/")]);
    push(&[&os("--dev"), &os("/dev"), &os("--proc"), &os("/proc")]);
    // Private: /tmp always; /run (the host's sockets: a container engine's,
    // the session bus) when the network is not the agent's.
    let mut private = vec![Path::new("/tmp")];
    if spec.network != Network::On && Path::new("/run").is_dir() {
        private.push(Path::new("/run"));
    }
    for dir in &private {
        push(&[&os("--tmpfs"), &p(dir)]);
    }
    // What lives under them (a repository in /tmp, its worktrees, a home)
    // stays visible, read-only, above the private directory.
    let mut keep: Vec<&Path> = vec![d.repo_root];
    keep.extend(d.worktree.parent());
    keep.extend(d.home);
    keep.extend(d.own_git.map(|g| g.dir.as_path()));
    keep.extend(d.visible.iter().map(PathBuf::as_path));
    // Outer paths first, so that one already kept covers those inside it.
    keep.retain(|k| private.iter().any(|t| k.starts_with(t) && k != t) && k.exists());
    keep.sort_by_key(|k| k.components().count());
    let mut kept: Vec<&Path> = Vec::new();
    for k in keep {
        if !kept.iter().any(|o| k.starts_with(o)) {
            kept.push(k);
            push(&[&os("--ro-bind"), &p(k), &p(k)]);
        }
    }
    for h in hidden(spec, d.home) {
        match std::fs::metadata(&h) {
            // Empty and read-only: nothing to read, nothing to plant.
            Ok(m) if m.is_dir() => push(&[&os("--tmpfs"), &p(&h), &os("--remount-ro"), &p(&h)]),
            Ok(_) => push(&[&os("--ro-bind"), &os("/dev/null"), &p(&h)]),
            Err(_) => {}
        }
    }
    // The local user's token for `baton serve`, and the keys it signs
    // with: never an agent's.
    // Made now if missing: a token or a key written after the sandbox
    // started must not show through.
    let mut secret_dirs = vec![crate::access::local_token_dir()];
    secret_dirs.extend(crate::access::keys_dirs());
    for dir in &secret_dirs {
        let _ = crate::access::private_dir(dir);
    }
    for dir in &secret_dirs {
        if dir.is_dir() {
            push(&[&os("--tmpfs"), &p(dir), &os("--remount-ro"), &p(dir)]);
        }
    }
    let mut writable = vec![d.worktree.to_path_buf()];
    writable.extend(d.own_git.map(|g| g.dir.clone()));
    writable.extend(d.writable.iter().cloned());
    for w in writable.iter().filter(|w| w.exists()) {
        push(&[&os("--bind"), &p(w), &p(w)]);
    }
    // The desk's `.git` cannot be replaced or rewritten inside: it names
    // the desk's own git directory, or the one baton made, read-only.
    let dotgit = d.worktree.join(".git");
    if dotgit.exists() {
        let source = d.own_git.map_or(dotgit.clone(), |g| g.dotgit.clone());
        push(&[&os("--ro-bind"), &p(&source), &p(&dotgit)]);
    }
    if spec.network != Network::On {
        push(&[&os("--unshare-net")]);
    }
    push(&[&os("--setenv"), &os("TMPDIR"), &os("/tmp")]);
    push(&[&os("--chdir"), &p(d.worktree)]);
    a
}

/// `program args` run inside the sandbox.
pub fn wrap(
    jail: &[OsString],
    program: OsString,
    args: Vec<OsString>,
) -> (OsString, Vec<OsString>) {
    let mut all = jail.to_vec();
    all.push("--".into());
    all.push(program);
    all.extend(args);
    ("bwrap".into(), all)
}

/// The hidden paths, `~` made the agent's home.
pub fn hidden(spec: &Sandbox, home: Option<&Path>) -> Vec<PathBuf> {
    spec.hide
        .iter()
        .filter_map(|h| match (h.strip_prefix("~/"), home) {
            (Some(rest), Some(home)) => Some(home.join(rest)),
            (Some(_), None) => None,
            (None, _) => Some(PathBuf::from(h)),
        })
        .collect()
}

/// Whether baton runs as root (and so its sandboxes must drop capabilities).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// How the sandbox holds root, in words for `baton doctor`.
pub fn privilege_note() -> &'static str {
    if is_root() {
        "as root: every capability dropped (--cap-drop ALL), so no remount, unmount or raw device"
    } else {
        "as an unprivileged user: in a user namespace with no capabilities"
    }
}

/// `key` in an attempt's environment (the last setting wins).
pub fn env_var(env: &[(OsString, OsString)], key: &str) -> Option<OsString> {
    env.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

/// Where an agent CLI keeps its own state under a home (and where its
/// environment moves it): the only parts of an inherited home it may write.
/// Each adapter says so itself ([`crate::adapter::AdapterInfo::state`]).
pub fn cli_state(adapter: &str, home: &Path, env: &[(OsString, OsString)]) -> Vec<PathBuf> {
    let home = crate::adapter::Home { dir: home, env };
    crate::adapter::find(adapter).map_or_else(Vec::new, |a| (a.state)(&home))
}

/// Whether bubblewrap works on this machine: its version, or why not.
pub fn probe() -> Result<String, String> {
    let version = std::process::Command::new("bwrap")
        .arg("--version")
        .output()
        .map_err(|e| {
            format!("bwrap is not installed ({e}); Debian and Ubuntu: apt install bubblewrap")
        })?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    let tried = std::process::Command::new("bwrap")
        .args(["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"])
        .args([
            "--unshare-pid",
            "--unshare-net",
            "--die-with-parent",
            "true",
        ])
        .output()
        .map_err(|e| format!("{version} could not start: {e}"))?;
    if tried.status.success() {
        Ok(version)
    } else {
        Err(format!(
            "{version} cannot make a sandbox here: {} (user namespaces may be off: sysctl kernel.unprivileged_userns_clone=1)",
            String::from_utf8_lossy(&tried.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::sandbox::DEFAULT_HIDE;

    fn spec(network: Network) -> Sandbox {
        Sandbox {
            wall: crate::plan::sandbox::Wall::Bwrap,
            network,
            hide: DEFAULT_HIDE.iter().map(|s| s.to_string()).collect(),
            memory: None,
            pids: None,
        }
    }

    fn args_of(a: &[OsString]) -> String {
        a.iter()
            .map(|s| s.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn the_worktree_and_the_git_it_commits_to_are_the_writable_parts() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let wt = dir.path().join("wts/run/t1");
        let gitdir = repo.join(".git/worktrees/t1");
        for d in [
            &wt,
            &gitdir,
            &repo.join(".git/objects"),
            &repo.join(".git/refs"),
        ] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(wt.join(".git"), format!("gitdir: {}\n", gitdir.display())).unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        let desk = Desk {
            worktree: &wt,
            repo_root: &repo,
            own_git: None,
            home: Some(&home),
            writable: vec![],
            visible: vec![],
        };
        let a = args_of(&bwrap_args(&spec(Network::Off), &desk));
        let w = |p: &Path| format!("--bind {0} {0}", p.display());
        assert!(
            a.starts_with("--die-with-parent --unshare-pid --unshare-ipc --new-session"),
            "{a}"
        );
        assert_eq!(a.contains("--cap-drop ALL"), is_root(), "{a}");
        // No network: the host's sockets under /run are out of sight.
        assert!(a.contains("--tmpfs /run"), "{a}");
        assert!(!args_of(&bwrap_args(&spec(Network::On), &desk)).contains("--tmpfs /run"));
        assert!(a.contains(&w(&wt)), "{a}");
        // Nothing of the shared repository is writable; the desk's `.git`
        // is laid read-only over itself.
        for shared in [&gitdir, &repo.join(".git/objects"), &repo.join(".git/refs")] {
            assert!(!a.contains(&w(shared)), "{a}");
        }
        let dotgit = wt.join(".git");
        assert!(
            a.find(&w(&wt)).unwrap()
                < a.find(&format!("--ro-bind {0} {0}", dotgit.display()))
                    .unwrap(),
            "{a}"
        );
        assert!(
            a.contains(&format!("--tmpfs {}", home.join(".ssh").display())),
            "{a}"
        );
        assert!(
            !a.contains(".aws"),
            "a hidden path that is not there is left alone: {a}"
        );
        assert!(a.contains("--unshare-net"));
        assert!(!args_of(&bwrap_args(&spec(Network::On), &desk)).contains("--unshare-net"));
        // The checkout under /tmp stays visible, read-only, over the private /tmp.
        let ro = format!("--ro-bind {0} {0}", repo.display());
        assert!(
            a.find("--tmpfs /tmp").unwrap() < a.find(&ro).unwrap(),
            "{a}"
        );
        let (prog, all) = wrap(
            &bwrap_args(&spec(Network::On), &desk),
            "claude".into(),
            vec!["-p".into()],
        );
        assert_eq!(prog, "bwrap");
        assert!(args_of(&all).ends_with(&format!("--chdir {} -- claude -p", wt.display())));
    }

    #[test]
    fn each_cli_writes_only_its_own_state() {
        let home = Path::new("/home/u");
        let env = vec![(
            OsString::from("CLAUDE_CONFIG_DIR"),
            OsString::from("/cfg/claude"),
        )];
        assert_eq!(
            cli_state("claude", home, &env),
            [PathBuf::from("/cfg/claude"), home.join(".claude.json")]
        );
        assert_eq!(cli_state("codex", home, &[]), [home.join(".codex")]);
        assert!(cli_state("exec", home, &[]).is_empty());
    }
}
