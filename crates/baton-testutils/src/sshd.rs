//! Real OpenSSH servers on loopback standing for machines an SSH executor
//! sends attempts to: each its own `sshd` (Debian's) with its own host key
//! and port; one client key made for the test; an ssh_config naming each
//! as an alias (`h1`, `h2`, ...) with its known host key, so `ssh` checks
//! it strictly and asks for nothing. [`Hosts::go_away`] ends one host and
//! everything it runs, as a machine that is switched off.
//!
//! `sshd` runs as the test's user and lets in only that user (and needs
//! `/run/sshd` as root). None here: [`Hosts::start`] says so, and the
//! caller skips (or fails, with BATON_REQUIRE_SSH=1).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Hosts {
    pub dir: PathBuf,
    /// The ssh_config file that names each host.
    pub config: PathBuf,
    pub hosts: Vec<Host>,
}

pub struct Host {
    /// Its alias in [`Hosts::config`].
    pub alias: String,
    pub port: u16,
    /// Where attempts work on it (its `dir`).
    pub work: PathBuf,
    server: Option<Child>,
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
        let (mut known, mut config, mut hosts) = (String::new(), String::new(), Vec::new());
        for i in 1..=n {
            let alias = format!("h{i}");
            let key = dir.join(format!("{alias}_host_key"));
            keygen(&key)?;
            let port = free_port();
            let host_pub =
                std::fs::read_to_string(key.with_extension("pub")).map_err(|e| e.to_string())?;
            let mut words = host_pub.split_whitespace();
            let (kind, blob) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            known.push_str(&format!("[127.0.0.1]:{port} {kind} {blob}\n"));
            let cfg = dir.join(format!("{alias}_sshd_config"));
            std::fs::write(
                &cfg,
                format!(
                    "ListenAddress 127.0.0.1:{port}\nHostKey {key}\nAuthorizedKeysFile {authorized}\n\
                     PidFile none\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     AllowTcpForwarding yes\nAllowUsers {user}\nLogLevel ERROR\nMaxSessions 64\nMaxStartups 64\n",
                    key = key.display(),
                    authorized = authorized.display(),
                    user = user(),
                ),
            )
            .map_err(|e| e.to_string())?;
            let work = dir.join(format!("{alias}-work"));
            config.push_str(&format!(
                "Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {id}\n  \
                 IdentitiesOnly yes\n  UserKnownHostsFile {known}\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n",
                user = user(),
                id = client_key.display(),
                known = dir.join("known_hosts").display(),
            ));
            let mut host = Host {
                alias,
                port,
                work,
                server: None,
            };
            host.server = Some(serve(&cfg, dir, &host.alias)?);
            hosts.push(host);
        }
        std::fs::write(dir.join("known_hosts"), known).map_err(|e| e.to_string())?;
        let config_path = dir.join("ssh_config");
        std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
        for h in &hosts {
            listening(h.port)?;
        }
        Ok(Hosts {
            dir: dir.to_path_buf(),
            config: config_path,
            hosts,
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
        }
    }
}

fn serve(cfg: &Path, dir: &Path, alias: &str) -> Result<Child, String> {
    let log =
        std::fs::File::create(dir.join(format!("{alias}_sshd.log"))).map_err(|e| e.to_string())?;
    Command::new(SSHD)
        .args(["-D", "-e", "-f"])
        .arg(cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {SSHD}: {e}"))
}

fn listening(port: u16) -> Result<(), String> {
    let since = Instant::now();
    while since.elapsed() < Duration::from_secs(10) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "sshd did not listen on 127.0.0.1:{port} within 10s"
    ))
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
