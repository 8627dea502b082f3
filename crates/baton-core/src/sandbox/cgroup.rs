//! `memory` and `pids` of a sandboxed profile: each attempt's agent runs in
//! a cgroup of its own, made beside baton's own cgroup, with those limits.
//! The kernel then kills an agent that outgrows its memory (and only it)
//! and refuses it more processes than it may have; baton reads afterwards
//! which limit was hit, so the task fails with that reason.
//!
//! cgroup v2 is used where baton's cgroup has the memory and pids
//! controllers delegated to it (`systemd-run --user -p Delegate=yes`, a
//! container's own cgroup); cgroup v1 where its memory and pids hierarchies
//! are writable (as root on a v1 or hybrid machine). Elsewhere [`Cgroup::make`]
//! says why not, and the attempt runs with a notice instead: a limit never
//! passes silently.

use std::ffi::CString;
use std::path::{Path, PathBuf};

/// The limits asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Limits {
    pub memory: Option<u64>,
    pub pids: Option<u32>,
}

/// One attempt's cgroup: a directory per hierarchy (one for v2; memory and
/// pids apart for v1). Removed by [`Cgroup::remove`] once the agent ended.
pub struct Cgroup {
    dirs: Vec<PathBuf>,
    v2: bool,
    limits: Limits,
    /// The `cgroup.procs` files the agent joins, ready for `pre_exec`.
    procs: Vec<CString>,
}

/// Where the cgroup hierarchies are mounted and where this process sits in
/// them, as `/proc/self/mountinfo` and `/proc/self/cgroup` say.
#[derive(Debug, Default, PartialEq)]
struct Place {
    /// cgroup v2: the directory of this process's cgroup.
    v2: Option<PathBuf>,
    /// cgroup v1: (controller, directory of this process's cgroup in it).
    v1: Vec<(String, PathBuf)>,
}

fn place(mountinfo: &str, own: &str) -> Place {
    let mut out = Place::default();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(mount), Some(fstype)) = (left.get(3), left.get(4), right.first())
        else {
            continue;
        };
        let options = right.get(2).copied().unwrap_or("");
        match *fstype {
            "cgroup2" => {
                if let Some(path) = own_path(own, |c| c.is_empty()) {
                    out.v2 = Some(inside(mount, root, &path));
                }
            }
            "cgroup" => {
                for c in options
                    .split(',')
                    .filter(|o| ["memory", "pids"].contains(o))
                {
                    if let Some(path) = own_path(own, |cs| cs.split(',').any(|x| x == c)) {
                        out.v1.push((c.to_string(), inside(mount, root, &path)));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// This process's path in the hierarchy whose controller list matches.
fn own_path(own: &str, matches: impl Fn(&str) -> bool) -> Option<String> {
    own.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        matches(controllers).then(|| path.to_string())
    })
}

/// The directory of cgroup `path` in a hierarchy mounted at `mount` from
/// `root` (a container sees its own cgroup as the mount's root).
fn inside(mount: &str, root: &str, path: &str) -> PathBuf {
    let rel = path
        .strip_prefix(root)
        .filter(|r| root != "/" && (r.is_empty() || r.starts_with('/')))
        .unwrap_or(path);
    Path::new(mount).join(rel.trim_start_matches('/'))
}

fn needed(l: Limits) -> Vec<&'static str> {
    let mut c = Vec::new();
    if l.memory.is_some() {
        c.push("memory");
    }
    if l.pids.is_some() {
        c.push("pids");
    }
    c
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

impl Cgroup {
    /// A new cgroup `name` with `limits`; Err says why limits cannot be
    /// applied on this machine.
    pub fn make(name: &str, limits: Limits) -> Result<Cgroup, String> {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let place = place(&read("/proc/self/mountinfo"), &read("/proc/self/cgroup"));
        let why_not_v2 = match &place.v2 {
            Some(base) => match Self::make_v2(base, name, limits) {
                Ok(cg) => return Ok(cg),
                Err(e) => e,
            },
            None => "no cgroup v2 hierarchy is mounted".to_string(),
        };
        match Self::make_v1(&place, name, limits) {
            Ok(cg) => Ok(cg),
            Err(why_not_v1) => Err(format!(
                "memory and pids limits are not applied: {why_not_v2}, and {why_not_v1} (see docs/security.md)"
            )),
        }
    }

    fn make_v2(base: &Path, name: &str, limits: Limits) -> Result<Cgroup, String> {
        let has = std::fs::read_to_string(base.join("cgroup.controllers")).unwrap_or_default();
        let missing: Vec<&str> = needed(limits)
            .into_iter()
            .filter(|c| !has.split_whitespace().any(|h| h == *c))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "baton's cgroup v2 {} has no {} controller delegated to it",
                base.display(),
                missing.join(" or ")
            ));
        }
        let on = std::fs::read_to_string(base.join("cgroup.subtree_control")).unwrap_or_default();
        for c in needed(limits) {
            if !on.split_whitespace().any(|h| h == c) {
                write(&base.join("cgroup.subtree_control"), &format!("+{c}")).map_err(|e| {
                    format!("{e} (a cgroup with processes of its own cannot hand controllers down: start baton in a delegated scope)")
                })?;
            }
        }
        let dir = base.join(name);
        std::fs::create_dir(&dir)
            .map_err(|e| format!("cannot make the cgroup {}: {e}", dir.display()))?;
        let cg = Cgroup {
            procs: procs_files(std::slice::from_ref(&dir)),
            dirs: vec![dir.clone()],
            v2: true,
            limits,
        };
        let set = || -> Result<(), String> {
            if let Some(m) = limits.memory {
                write(&dir.join("memory.max"), &m.to_string())?;
                // Swap would only slow the agent down on its way to the limit.
                let _ = write(&dir.join("memory.swap.max"), "0");
            }
            if let Some(p) = limits.pids {
                write(&dir.join("pids.max"), &p.to_string())?;
            }
            Ok(())
        };
        match set() {
            Ok(()) => Ok(cg),
            Err(e) => {
                cg.remove_now();
                Err(e)
            }
        }
    }

    fn make_v1(place: &Place, name: &str, limits: Limits) -> Result<Cgroup, String> {
        let mut dirs = Vec::new();
        let mut made = |c: &str| -> Result<PathBuf, String> {
            let base = place
                .v1
                .iter()
                .find(|(have, _)| have == c)
                .map(|(_, d)| d)
                .ok_or_else(|| format!("no cgroup v1 {c} hierarchy is mounted"))?;
            let dir = base.join(name);
            std::fs::create_dir(&dir)
                .map_err(|e| format!("cannot make the cgroup v1 {}: {e}", dir.display()))?;
            dirs.push(dir.clone());
            Ok(dir)
        };
        let set = |made: &mut dyn FnMut(&str) -> Result<PathBuf, String>| -> Result<(), String> {
            if let Some(m) = limits.memory {
                let dir = made("memory")?;
                write(&dir.join("memory.limit_in_bytes"), &m.to_string())?;
                // With swap accounting on, swap counts too (no way around
                // the limit through swap).
                let _ = write(&dir.join("memory.memsw.limit_in_bytes"), &m.to_string());
            }
            if let Some(p) = limits.pids {
                write(&made("pids")?.join("pids.max"), &p.to_string())?;
            }
            Ok(())
        };
        let res = set(&mut made);
        let cg = Cgroup {
            procs: procs_files(&dirs),
            dirs,
            v2: false,
            limits,
        };
        match res {
            Ok(()) => Ok(cg),
            Err(e) => {
                cg.remove_now();
                Err(e)
            }
        }
    }

    /// The `cgroup.procs` files the agent's process writes itself into
    /// between fork and exec (see [`join_self`]).
    pub fn procs(&self) -> &[CString] {
        &self.procs
    }

    /// Which limit the agent hit, in words, if any.
    pub fn hit(&self) -> Option<String> {
        let count = |file: &str, key: &str| -> u64 {
            self.dirs
                .iter()
                .filter_map(|d| std::fs::read_to_string(d.join(file)).ok())
                .flat_map(|t| {
                    t.lines()
                        .filter_map(|l| l.strip_prefix(key)?.trim().parse::<u64>().ok())
                        .collect::<Vec<_>>()
                })
                .sum()
        };
        let oom = if self.v2 {
            count("memory.events", "oom_kill ")
        } else {
            count("memory.oom_control", "oom_kill ")
        };
        if let (Some(m), true) = (self.limits.memory, oom > 0) {
            return Some(format!(
                "killed at its memory limit of {} (the profile's `memory`)",
                crate::memory::human(m)
            ));
        }
        if let (Some(p), true) = (self.limits.pids, count("pids.events", "max ") > 0) {
            return Some(format!(
                "refused a new process at its limit of {p} (the profile's `pids`)"
            ));
        }
        None
    }

    /// Kills whatever is left in the cgroup (a process that left the
    /// agent's process group too) and removes it.
    pub async fn remove(self) {
        for _ in 0..20 {
            self.kill_all();
            if self.try_rmdir() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        tracing::warn!("cannot remove the cgroups {:?}", self.dirs);
    }

    fn remove_now(&self) {
        self.kill_all();
        self.try_rmdir();
    }

    fn kill_all(&self) {
        for d in &self.dirs {
            let pids = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            for pid in pids.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }

    fn try_rmdir(&self) -> bool {
        self.dirs
            .iter()
            .all(|d| std::fs::remove_dir(d).is_ok() || !d.exists())
    }
}

fn procs_files(dirs: &[PathBuf]) -> Vec<CString> {
    use std::os::unix::ffi::OsStrExt;
    dirs.iter()
        .filter_map(|d| CString::new(d.join("cgroup.procs").as_os_str().as_bytes()).ok())
        .collect()
}

/// Moves the calling process into the cgroups whose `cgroup.procs` files
/// are given ("0" is the writer itself). Only async-signal-safe calls: it
/// runs between fork and exec.
pub fn join_self(procs: &[CString]) -> std::io::Result<()> {
    for p in procs {
        // SAFETY: open/write/close on a NUL-terminated path we own.
        unsafe {
            let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let n = libc::write(fd, b"0".as_ptr().cast(), 1);
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            if n != 1 {
                return Err(err);
            }
        }
    }
    Ok(())
}

/// What a sandbox with these limits gets on this machine, for `baton
/// doctor`: how they are applied, or why not.
pub fn describe(limits: Limits) -> String {
    let mut asked = Vec::new();
    if let Some(m) = limits.memory {
        asked.push(format!("memory {}", crate::memory::human(m)));
    }
    if let Some(p) = limits.pids {
        asked.push(format!("{p} processes"));
    }
    let name = format!("baton-doctor-{}", std::process::id());
    match Cgroup::make(&name, limits) {
        Ok(cg) => {
            let how = if cg.v2 { "cgroup v2" } else { "cgroup v1" };
            cg.remove_now();
            format!(
                "limits: {} per agent (through {how}; an agent over its memory is killed)",
                asked.join(", ")
            )
        }
        Err(why) => format!("limits: {}: {why}", asked.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn each_hierarchy_is_found_where_this_process_sits_in_it() {
        let own = "9:name=systemd:/\n8:pids:/\n4:memory:/api/x1\n0::/\n";
        let p = place(HYBRID, own);
        assert_eq!(p.v2, Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(
            p.v1,
            [
                (
                    "memory".into(),
                    PathBuf::from("/sys/fs/cgroup/memory/api/x1")
                ),
                ("pids".into(), PathBuf::from("/sys/fs/cgroup/pids")),
            ]
        );
        // A pure v2 machine, in a user's delegated scope.
        let v2 = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let p = place(v2, "0::/user.slice/user-1000.slice/baton.scope\n");
        assert_eq!(
            p.v2,
            Some(PathBuf::from(
                "/sys/fs/cgroup/user.slice/user-1000.slice/baton.scope"
            ))
        );
        assert!(p.v1.is_empty());
        // A container whose cgroup is the mount's root.
        let c = "30 23 0:26 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let p = place(c, "0::/kubepods/pod1/c\n");
        assert_eq!(p.v2, Some(PathBuf::from("/sys/fs/cgroup/c")));
    }
}
