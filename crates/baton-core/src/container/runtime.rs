//! The container engine on this machine: Podman or Docker, as the plan asks
//! or whichever is installed (Podman first), and whether it runs rootless.

use crate::plan::container::Runtime;
use std::process::Command;

/// A container engine found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    /// `podman` or `docker`: the command.
    pub program: String,
    pub version: String,
    /// Podman runs as the user who calls it; Docker's daemon is root's
    /// unless it says it is rootless.
    pub rootless: bool,
}

impl Engine {
    pub fn is_podman(&self) -> bool {
        self.program == "podman"
    }

    /// In words, for `baton doctor` and messages.
    pub fn describe(&self) -> String {
        let how = if self.rootless { "rootless" } else { "as root" };
        format!("{} ({how})", self.version)
    }
}

/// The engine the plan asks for, or the first installed; why not, if none.
pub fn find(asked: Runtime) -> Result<Engine, String> {
    let names: &[&str] = match asked {
        Runtime::Podman => &["podman"],
        Runtime::Docker => &["docker"],
        Runtime::Any => &["podman", "docker"],
    };
    let mut why = Vec::new();
    for name in names {
        match probe(name) {
            Ok(e) => return Ok(e),
            Err(e) => why.push(e),
        }
    }
    Err(format!(
        "no container engine works here: {} (Debian and Ubuntu: apt install podman)",
        why.join("; ")
    ))
}

/// [`find`] off the async threads (it runs the engines' `version`).
pub async fn locate(asked: Runtime) -> Result<Engine, String> {
    tokio::task::spawn_blocking(move || find(asked))
        .await
        .map_err(|e| format!("cannot look for a container engine: {e}"))?
}

fn probe(name: &str) -> Result<Engine, String> {
    let out = Command::new(name)
        .args(["version", "--format", "{{.Client.Version}}"])
        .output()
        .map_err(|e| format!("{name} is not installed ({e})"))?;
    if !out.status.success() {
        return Err(format!(
            "`{name} version` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let version = format!("{name} {}", String::from_utf8_lossy(&out.stdout).trim());
    let rootless = if name == "podman" {
        !crate::sandbox::is_root()
    } else {
        let info = Command::new(name)
            .args(["info", "--format", "{{.SecurityOptions}}"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("rootless"))
            .unwrap_or(false);
        info
    };
    Ok(Engine {
        program: name.to_string(),
        version,
        rootless,
    })
}

/// `--ulimit` for the limits this process has, so that the container
/// starts with no more than baton may give: an engine that sets its own
/// defaults needs CAP_SYS_RESOURCE, which a root in a container may lack.
pub fn ulimits() -> Vec<String> {
    // More processes than the kernel numbers is no limit; runc is refused
    // a `nproc` above it on such machines.
    let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(32768);
    let mut out = Vec::new();
    for (name, which, cap) in [
        ("nofile", libc::RLIMIT_NOFILE, u64::MAX),
        ("nproc", libc::RLIMIT_NPROC, pid_max),
    ] {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct it is given.
        if unsafe { libc::getrlimit(which, &mut r) } != 0 {
            continue;
        }
        let hard = r.rlim_max.min(cap);
        let soft = r.rlim_cur.min(hard);
        out.push(format!("--ulimit={name}={soft}:{hard}"));
    }
    out
}
