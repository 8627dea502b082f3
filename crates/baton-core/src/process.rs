//! Process groups: every agent and gate runs in a group of its own so that
//! stopping it reaches its grandchildren too; a watchdog process kills those
//! groups if baton itself dies without cleaning up (SIGKILL included).

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::process::{ChildStdin, Stdio};
use std::sync::Mutex;
use std::time::Duration;
use tokio::process::Child;

/// How long a group gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// Variables baton keeps for itself (a tracker's token, a hook's secret):
/// no agent, gate or setup it starts inherits them. Process-wide, because
/// every such process is started in one place ([`withheld`] is read there),
/// and only ever growing: each part of a server (sources, hooks, followed
/// pull requests) adds its own.
static WITHHELD: std::sync::Mutex<Vec<OsString>> = std::sync::Mutex::new(Vec::new());

/// Keeps `names` from every process baton starts from now on, besides
/// those kept already.
pub fn withhold(names: &[String]) {
    let mut kept = WITHHELD.lock().unwrap_or_else(|e| e.into_inner());
    for n in names {
        let n = OsString::from(n);
        if !kept.contains(&n) {
            kept.push(n);
        }
    }
}

/// What [`withhold`] keeps back.
pub fn withheld() -> Vec<OsString> {
    WITHHELD.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

pub fn signal_group(pgid: i32, sig: i32) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: killpg has no memory-safety preconditions.
    unsafe { libc::killpg(pgid, sig) == 0 }
}

pub fn group_alive(pgid: i32) -> bool {
    signal_group(pgid, 0)
}

/// Stops a child and its whole group: SIGTERM, then SIGKILL after the grace.
/// Returns the child's exit status if it could be reaped.
pub async fn kill_tree(
    child: &mut Child,
    pgid: i32,
    grace: Duration,
) -> Option<std::process::ExitStatus> {
    signal_group(pgid, libc::SIGTERM);
    let status = match tokio::time::timeout(grace, child.wait()).await {
        Ok(Ok(s)) => Some(s),
        _ => None,
    };
    // Grandchildren that ignore SIGTERM, or outlived their parent, go now.
    signal_group(pgid, libc::SIGKILL);
    match status {
        Some(s) => Some(s),
        None => child.wait().await.ok(),
    }
}

/// Kills what is left of a group after its leader exited on its own.
pub fn reap_leftovers(pgid: i32) {
    signal_group(pgid, libc::SIGKILL);
}

/// Finds process groups left by a crashed baton: processes whose environment
/// says they belong to `run` (BATON_RUN), grouped by their process group.
pub fn orphan_groups(run: &str) -> Vec<i32> {
    let needle = format!("BATON_RUN={run}");
    let mut groups = HashSet::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id() as i32;
    let my_ns = std::fs::read_link("/proc/self/ns/pid").ok();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        // A process in another PID namespace is a container's (an attempt's
        // pod on a one-node cluster): the cluster's to end, not ours.
        let ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
        if my_ns.is_some() && ns != my_ns {
            continue;
        }
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if !environ.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
            continue;
        }
        // An attempt on an SSH host that is this machine: its follower's
        // to adopt, not ours to end.
        let on_host = format!("{}=1", crate::executor::host::ON_HOST);
        if environ
            .split(|b| *b == 0)
            .any(|kv| kv == on_host.as_bytes())
        {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name (which may hold spaces) start at the last ')'.
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        if let Some(pgrp) = fields.get(2).and_then(|s| s.parse::<i32>().ok()) {
            if pgrp > 1 && pgrp != me {
                groups.insert(pgrp);
            }
        }
    }
    let mut v: Vec<i32> = groups.into_iter().collect();
    v.sort();
    v
}

/// The parent's end of a watchdog process.
pub struct Watchdog {
    stdin: Mutex<Option<ChildStdin>>,
    child: Mutex<Option<std::process::Child>>,
}

impl Watchdog {
    /// Starts the watchdog program (baton's hidden `__watchdog` command, which
    /// calls [`watchdog_main`]). It exits, killing every registered group, when
    /// its stdin closes, which the kernel does when this process dies.
    pub fn spawn(program: &[OsString]) -> std::io::Result<Watchdog> {
        let (prog, args) = program.split_first().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty watchdog command")
        })?;
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new(prog)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            // Its own group: a Ctrl-C at the terminal is baton's to handle, not the watchdog's.
            .process_group(0)
            .spawn()?;
        let stdin = child.stdin.take();
        Ok(Watchdog {
            stdin: Mutex::new(stdin),
            child: Mutex::new(Some(child)),
        })
    }

    fn send(&self, line: String) {
        if let Ok(mut guard) = self.stdin.lock() {
            if let Some(stdin) = guard.as_mut() {
                if stdin.write_all(line.as_bytes()).is_err() {
                    *guard = None;
                }
            }
        }
    }

    pub fn watch(&self, pgid: i32) {
        self.send(format!("+{pgid}\n"));
    }

    pub fn forget(&self, pgid: i32) {
        self.send(format!("-{pgid}\n"));
    }

    /// Closes the pipe without killing anything left registered (clean exit).
    pub fn finish(&self) {
        self.send("done\n".into());
        if let Ok(mut g) = self.stdin.lock() {
            g.take();
        }
        // Reap it (it exits at once on "done"), or a long-lived server collects zombies.
        if let Some(mut child) = self.child.lock().ok().and_then(|mut g| g.take()) {
            std::thread::spawn(move || child.wait());
        }
    }
}

/// The watchdog's own loop: reads `+PGID` / `-PGID` lines; at end of input
/// (the parent died) kills every group still registered.
pub fn watchdog_main() {
    // SAFETY: setting signal dispositions to SIG_IGN is always sound.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let mut groups: HashSet<i32> = HashSet::new();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let line = line.trim();
        if line == "done" {
            return;
        }
        if let Some(n) = line.strip_prefix('+').and_then(|s| s.parse().ok()) {
            groups.insert(n);
        } else if let Some(n) = line.strip_prefix('-').and_then(|s| s.parse::<i32>().ok()) {
            groups.remove(&n);
        }
    }
    for &g in &groups {
        signal_group(g, libc::SIGTERM);
    }
    let deadline = std::time::Instant::now() + KILL_GRACE;
    while std::time::Instant::now() < deadline && groups.iter().any(|&g| group_alive(g)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for &g in &groups {
        signal_group(g, libc::SIGKILL);
    }
}
