//! Real OpenSSH servers on loopback standing for machines an SSH executor
//! sends attempts to: each its own `sshd` (Debian's) with its own host key
//! and port; one client key made for the test; an ssh_config naming each
//! as an alias (`h1`, `h2`, ...) with its known host key, so `ssh` checks
//! it strictly and asks for nothing. [`Hosts::go_away`] ends one host and
//! everything it runs, as a machine that is switched off. As root, each
//! host has a network namespace of its own ([`Netns`]): its loopback is
//! not this machine's, so baton's doors are reached only through ssh's
//! tunnels, as from another machine.
//!
//! As root ([`Users::Own`]), each host lets in a user of its own
//! (`baton-h1`, `baton-h2`, made once), who works in a directory of its
//! home and cannot read the test's files: what an attempt needs must reach
//! it through baton. Files the test's agents write for the test to read go
//! to [`Hosts::shared`]. [`Users::Same`] lets in the test's own user (for
//! real CLIs installed in its home). No sshd here: [`Hosts::start`] says
//! so, and the caller skips (or fails, with BATON_REQUIRE_SSH=1).

use crate::netns::Netns;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Hosts {
    pub dir: PathBuf,
    /// The ssh_config file that names each host.
    pub config: PathBuf,
    pub hosts: Vec<Host>,
    /// A directory every host's user may write (and the test read).
    pub shared: PathBuf,
}

/// Who the hosts let in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Users {
    /// A user of its own per host, where the test runs as root (else the
    /// test's user).
    Own,
    /// The test's user.
    Same,
}

/// The user host `i` lets in.
fn host_user(users: Users, i: usize) -> Result<String, String> {
    // SAFETY: getuid(2) cannot fail.
    if users == Users::Same || unsafe { libc::getuid() } != 0 {
        return Ok(user());
    }
    let name = format!("baton-h{i}");
    // Made once for every test, under a lock: tests start hosts at once.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("baton-test-users.lock"))
        .map_err(|e| e.to_string())?;
    use std::os::fd::AsRawFd;
    // SAFETY: flock on an open descriptor, released when it closes.
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    let known = Command::new("id")
        .arg(&name)
        .output()
        .is_ok_and(|o| o.status.success());
    // `*`: no password, and not locked (sshd without PAM refuses a locked
    // account, useradd's `!`).
    let (tool, args): (&str, &[&str]) = match known {
        false => (
            "useradd",
            &["--create-home", "--shell", "/bin/sh", "--password", "*"],
        ),
        true => ("usermod", &["--password", "*"]),
    };
    {
        let made = Command::new(tool)
            .args(args)
            .arg(&name)
            .output()
            .map_err(|e| format!("cannot run {tool}: {e}"))?;
        if !made.status.success() {
            return Err(format!(
                "useradd {name}: {}",
                String::from_utf8_lossy(&made.stderr)
            ));
        }
    }
    Ok(name)
}

/// `path` made `user`'s (as root).
fn give(path: &Path, user: &str) -> Result<(), String> {
    let out = Command::new("chown")
        .args(["-R", &format!("{user}:")])
        .arg(path)
        .output()
        .map_err(|e| e.to_string())?;
    match out.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

pub struct Host {
    /// Its alias in [`Hosts::config`].
    pub alias: String,
    pub port: u16,
    /// The address its sshd listens on (in its namespace, when it has one).
    pub addr: String,
    /// Where attempts work on it (its `dir`).
    pub work: PathBuf,
    server: Option<Child>,
    /// Goes after its server (declared after it).
    netns: Option<Netns>,
}

const SSHD: &str = "/usr/sbin/sshd";

fn keygen(path: &Path) -> Result<(), String> {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "baton-test", "-f"])
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run ssh-keygen: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            let out = Command::new("id").arg("-un").output().ok()?;
            Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .unwrap_or_else(|| "root".into())
}

impl Hosts {
    /// `n` hosts under `dir`, each listening; Err says why there are none.
    pub fn start(dir: &Path, n: usize) -> Result<Hosts, String> {
        Hosts::start_for(dir, n, Users::Own)
    }

    /// [`Hosts::start`], letting in `users`.
    pub fn start_for(dir: &Path, n: usize, users: Users) -> Result<Hosts, String> {
        if !Path::new(SSHD).exists() {
            return Err(format!("no {SSHD} (Debian's openssh-server)"));
        }
        // SAFETY: getuid(2) cannot fail.
        if unsafe { libc::getuid() } == 0 {
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let client_key = dir.join("client_key");
        keygen(&client_key)?;
        let pubkey =
            std::fs::read_to_string(client_key.with_extension("pub")).map_err(|e| e.to_string())?;
        let authorized = dir.join("authorized_keys");
        std::fs::write(&authorized, pubkey).map_err(|e| e.to_string())?;
        // Readable by sshd whatever the user (it reads as root what the
        // command prints; a user's own key file would have to be theirs).
        let keys_cmd = format!(
            "AuthorizedKeysCommand /usr/bin/cat {}\nAuthorizedKeysCommandUser {}\nAuthorizedKeysFile none\n",
            authorized.display(),
            user()
        );
        let shared = std::env::temp_dir().join(format!(
            "baton-hosts-{}",
            dir.to_string_lossy()
                .bytes()
                .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64))
        ));
        std::fs::create_dir_all(&shared).map_err(|e| e.to_string())?;
        {
            use std::os::unix::fs::PermissionsExt;
            let all = std::fs::Permissions::from_mode(0o1777);
            std::fs::set_permissions(&shared, all).map_err(|e| e.to_string())?;
        }
        let (mut known, mut config, mut hosts) = (String::new(), String::new(), Vec::new());
        for i in 1..=n {
            let alias = format!("h{i}");
            let login = host_user(users, i)?;
            let key = dir.join(format!("{alias}_host_key"));
            keygen(&key)?;
            let port = free_port();
            let netns = Netns::make();
            let addr = netns
                .as_ref()
                .map_or_else(|| "127.0.0.1".to_string(), |n| n.addr.clone());
            let host_pub =
                std::fs::read_to_string(key.with_extension("pub")).map_err(|e| e.to_string())?;
            let mut words = host_pub.split_whitespace();
            let (kind, blob) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            known.push_str(&format!("[{addr}]:{port} {kind} {blob}\n"));
            let cfg = dir.join(format!("{alias}_sshd_config"));
            std::fs::write(
                &cfg,
                format!(
                    "ListenAddress {addr}:{port}\nHostKey {key}\n{keys_cmd}\
                     PidFile none\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     AllowTcpForwarding yes\nAllowUsers {login}\nLogLevel ERROR\nMaxSessions 64\nMaxStartups 64\n",
                    key = key.display(),
                ),
            )
            .map_err(|e| e.to_string())?;
            // Where its attempts work: in its user's home when it has one
            // of its own (the test's directory is the test user's alone).
            let work = match login == user() {
                true => dir.join(format!("{alias}-work")),
                false => {
                    let home = PathBuf::from(format!("/home/{login}"));
                    let leaf = dir.parent().and_then(|p| p.file_name()).unwrap_or_default();
                    let w = home.join(format!("work-{}", leaf.to_string_lossy()));
                    std::fs::create_dir_all(&w).map_err(|e| e.to_string())?;
                    give(&w, &login)?;
                    w
                }
            };
            config.push_str(&format!(
                "Host {alias}\n  HostName {addr}\n  Port {port}\n  User {user}\n  IdentityFile {id}\n  \
                 IdentitiesOnly yes\n  UserKnownHostsFile {known}\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n",
                user = login,
                id = client_key.display(),
                known = dir.join("known_hosts").display(),
            ));
            let mut host = Host {
                alias,
                port,
                addr,
                work,
                server: None,
                netns,
            };
            host.server = Some(serve(&cfg, dir, &host.alias, host.netns.as_ref())?);
            hosts.push(host);
        }
        std::fs::write(dir.join("known_hosts"), known).map_err(|e| e.to_string())?;
        let config_path = dir.join("ssh_config");
        std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
        for h in &hosts {
            listening(&h.addr, h.port)?;
        }
        Ok(Hosts {
            dir: dir.to_path_buf(),
            config: config_path,
            hosts,
            shared,
        })
    }

    /// Ends host `i` (0-based) and everything it runs: its server, its
    /// connections, their commands and what those started.
    pub fn go_away(&mut self, i: usize) {
        if let Some(mut s) = self.hosts[i].server.take() {
            kill_tree(s.id() as i32);
            let _ = s.wait();
        }
        // Attempts started there left its process tree: they are found by
        // the directory they work in.
        kill_working_in(&self.hosts[i].work);
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for i in 0..self.hosts.len() {
            self.go_away(i);
            if !self.hosts[i].work.starts_with(&self.dir) {
                let _ = std::fs::remove_dir_all(&self.hosts[i].work);
            }
        }
        let _ = std::fs::remove_dir_all(&self.shared);
    }
}

fn serve(cfg: &Path, dir: &Path, alias: &str, netns: Option<&Netns>) -> Result<Child, String> {
    let log =
        std::fs::File::create(dir.join(format!("{alias}_sshd.log"))).map_err(|e| e.to_string())?;
    // `ip netns exec` execs sshd: the child is sshd itself.
    let mut c = match netns {
        Some(ns) => ns.command(SSHD),
        None => Command::new(SSHD),
    };
    c.args(["-D", "-e", "-f"])
        .arg(cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {SSHD}: {e}"))
}

fn listening(addr: &str, port: u16) -> Result<(), String> {
    let since = Instant::now();
    while since.elapsed() < Duration::from_secs(10) {
        if std::net::TcpStream::connect((addr, port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("sshd did not listen on {addr}:{port} within 10s"))
}

/// Each process's parent, from /proc.
fn parents() -> Vec<(i32, i32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // After the command's name in parentheses: state, then ppid.
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((pid, ppid))
        })
        .collect()
}

/// SIGKILL to `root` and every process below it.
fn kill_tree(root: i32) {
    let all = parents();
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(all.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    for pid in tree {
        // SAFETY: kill(2) on pids read from /proc just now.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// SIGKILL to every process whose working directory is under `dir`, and
/// what runs below it.
fn kill_working_in(dir: &Path) {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in procs.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(dir)) {
            kill_tree(pid);
        }
    }
}
