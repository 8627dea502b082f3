//! `[workspace]`: what makes a fresh worktree ready for an agent on a real
//! project: setup and teardown commands, files a checkout lacks, and a
//! block of ports of its own.

use super::error::Checker;
use super::raw::RawWorkspace;
use crate::duration::parse_duration;
use crate::plan::FileSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// At most this many ports per task: a block is for a few servers, not a range.
pub const MAX_PORTS: u16 = 16;
/// Setup installs dependencies: longer than a gate's default hour is a typo.
const DEFAULT_SETUP_TIMEOUT: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone)]
pub struct Workspace {
    /// Run in each new worktree before its first attempt.
    pub setup: Vec<String>,
    /// Run in a worktree before it is removed.
    pub teardown: Vec<String>,
    /// Globs of untracked or ignored files copied from the user's checkout.
    pub copy: Vec<String>,
    /// Ports each running task holds (`BATON_PORT`, `BATON_PORT_1..N`).
    pub ports: u16,
    /// How long setup (each command) and teardown may take.
    pub setup_timeout: Duration,
    /// Files whose contents decide whether a pooled worktree's setup is
    /// still good (e.g. `package-lock.json`).
    pub setup_inputs: Vec<String>,
    /// Prepared worktrees kept for the repository across runs.
    pub pool: Pool,
    /// Directories checked out (cone mode); empty: the whole tree.
    pub sparse: Vec<String>,
    /// Servers each attempt gets its own of (`[[workspace.service]]`).
    pub services: Vec<super::service::Service>,
}

/// How many prepared worktrees the pool keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pool {
    #[default]
    Off,
    Size(usize),
    /// As many as the run's `max_parallel`.
    Auto,
}

/// A pool bigger than this holds more disk than it saves time.
pub const MAX_POOL: usize = 64;

impl Default for Workspace {
    fn default() -> Workspace {
        Workspace {
            setup: Vec::new(),
            teardown: Vec::new(),
            copy: Vec::new(),
            ports: 0,
            setup_timeout: DEFAULT_SETUP_TIMEOUT,
            setup_inputs: Vec::new(),
            pool: Pool::Off,
            sparse: Vec::new(),
            services: Vec::new(),
        }
    }
}

pub(super) fn check_workspace(ck: &mut Checker, raw: &RawWorkspace) -> Workspace {
    let mut ws = Workspace::default();
    for (field, list, out) in [
        ("setup", &raw.setup, &mut ws.setup),
        ("teardown", &raw.teardown, &mut ws.teardown),
    ] {
        if let Some(l) = list {
            if l.get_ref().iter().any(|c| c.trim().is_empty()) {
                let msg = format!("workspace.{field} has an empty command");
                ck.at(Some(l.span()), None, msg);
            }
            *out = l.get_ref().clone();
        }
    }
    if let Some(c) = &raw.copy {
        for g in c.get_ref() {
            if let Err(why) = copy_glob_problem(g) {
                ck.at(Some(c.span()), None, format!("workspace.copy {g:?}: {why}"));
            }
        }
        ws.copy = c.get_ref().clone();
    }
    if let Some(p) = &raw.ports {
        match u16::try_from(*p.get_ref()) {
            Ok(n) if n <= MAX_PORTS => ws.ports = n,
            _ => ck.at(
                Some(p.span()),
                None,
                format!(
                    "workspace.ports must be from 0 to {MAX_PORTS}, not {}",
                    p.get_ref()
                ),
            ),
        }
    }
    if let Some(p) = &raw.pool {
        ws.pool = match p.get_ref() {
            toml::Value::Integer(0) => Pool::Off,
            toml::Value::Integer(n) if (1..=MAX_POOL as i64).contains(n) => Pool::Size(*n as usize),
            toml::Value::String(s) if s == "auto" => Pool::Auto,
            other => {
                let msg = format!(
                    "workspace.pool must be a number from 0 to {MAX_POOL} or \"auto\", not {other}"
                );
                ck.at(Some(p.span()), None, msg);
                Pool::Off
            }
        };
    }
    for (field, list, out) in [
        ("setup_inputs", &raw.setup_inputs, &mut ws.setup_inputs),
        ("sparse", &raw.sparse, &mut ws.sparse),
    ] {
        if let Some(l) = list {
            for item in l.get_ref() {
                let problem = copy_glob_problem(item).and_then(|()| match field {
                    "sparse" => sparse_dir_problem(item),
                    _ => Ok(()),
                });
                if let Err(why) = problem {
                    ck.at(
                        Some(l.span()),
                        None,
                        format!("workspace.{field} {item:?}: {why}"),
                    );
                }
            }
            *out = l
                .get_ref()
                .iter()
                .map(|p| p.trim_end_matches('/').to_string())
                .collect();
        }
    }
    ws.services = super::service::check_services(ck, &raw.service);
    if let Some(t) = &raw.setup_timeout {
        match parse_duration(t.get_ref()) {
            Ok(d) => ws.setup_timeout = d,
            Err(e) => ck.at(
                Some(t.span()),
                None,
                format!("workspace.setup_timeout: {e}"),
            ),
        }
    }
    ws
}

/// A copy glob names files inside the checkout: relative, no `..`, not `.git`.
fn copy_glob_problem(g: &str) -> Result<(), &'static str> {
    let g = g.trim();
    if g.is_empty() {
        return Err("empty; name a file such as \".env\"");
    }
    if g.starts_with('/') {
        return Err("must be relative to the repository root");
    }
    if g.split('/').any(|part| part == "..") {
        return Err("must not leave the repository (`..`)");
    }
    if g.split('/').next() == Some(".git") {
        return Err("cannot copy git's own files");
    }
    Ok(())
}

/// A sparse entry is a directory of the tree, as cone mode takes it: no
/// patterns (`*` would check out nothing, and the task's commit would
/// delete every file of the project).
fn sparse_dir_problem(d: &str) -> Result<(), &'static str> {
    if d.contains(['*', '?', '[', ']', '{', '}', '!', '\\']) {
        return Err("must name a directory, not a pattern (cone mode)");
    }
    if d.trim_matches('/').is_empty() || d.split('/').any(|p| p == ".") {
        return Err("must name a directory below the root");
    }
    Ok(())
}

/// The files under `root` a copy glob names (relative paths): a plain path
/// is looked up; a glob walks from its longest plain directory prefix.
pub fn matching_files(root: &Path, glob: &str) -> Vec<PathBuf> {
    let is_plain = |part: &str| !part.contains(['*', '?', '[', '{']);
    if is_plain(glob) {
        return if root.join(glob).is_file() {
            vec![PathBuf::from(glob)]
        } else {
            Vec::new()
        };
    }
    let Ok(set) = FileSet::new(&[glob.to_string()]) else {
        return Vec::new();
    };
    let prefix: PathBuf = glob.split('/').take_while(|p| is_plain(p)).collect();
    let mut out = Vec::new();
    let mut dirs = vec![prefix];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let rel = dir.join(e.file_name());
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() && e.file_name() != ".git" {
                dirs.push(rel);
            } else if kind.is_file() && set.matches(&rel.to_string_lossy()) {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

/// Copied files must be ignored by git (or baton's leftover commit would
/// commit them): a copy glob matching a file git does not ignore is a plan
/// error, said with the file.
impl super::Plan {
    pub async fn check_copies(&self, repo: &crate::git::Repo) -> Result<(), super::PlanError> {
        let mut files: Vec<String> = Vec::new();
        for g in &self.workspace.copy {
            let found = matching_files(&repo.root, g);
            files.extend(found.iter().map(|f| f.to_string_lossy().into_owned()));
        }
        if files.is_empty() {
            return Ok(());
        }
        let mut args = vec!["check-ignore".to_string(), "--".to_string()];
        args.extend(files.iter().cloned());
        let ignored: std::collections::HashSet<String> =
            match crate::git::git(&repo.root, &args).await {
                Ok(out) => out.stdout.lines().map(str::to_string).collect(),
                Err(_) => return Ok(()),
            };
        let bad: Vec<super::Diagnostic> = files
            .iter()
            .filter(|f| !ignored.contains(*f))
            .map(|f| super::Diagnostic {
                line: self.copy_line(f).map(|(l, _)| l),
                column: self.copy_line(f).map(|(_, c)| c),
                subject: None,
                message: format!(
                    "workspace.copy names {f:?}, which git does not ignore: baton would commit it with the task's work; add it to .gitignore or drop it from copy"
                ),
            })
            .collect();
        if bad.is_empty() {
            return Ok(());
        }
        Err(super::PlanError::Invalid {
            path: self.path.clone(),
            diagnostics: bad,
        })
    }
}

impl super::Plan {
    /// Where in the plan's text the `copy` glob that names `file` is written
    /// (line and column, from 1), for a message that says where.
    fn copy_line(&self, file: &str) -> Option<(usize, usize)> {
        let own = super::user::parts(&self.source).1;
        let from = own
            .lines()
            .position(|l| l.trim_start().starts_with("copy") && l.contains('='))?;
        let names = |g: &String| {
            g == file || FileSet::new(std::slice::from_ref(g)).is_ok_and(|s| s.matches(file))
        };
        let glob = self.workspace.copy.iter().find(|g| names(g))?;
        for (i, line) in own.lines().enumerate().skip(from) {
            for quote in ['"', '\''] {
                if let Some(col) = line.find(&format!("{quote}{glob}{quote}")) {
                    return Some((i + 1, col + 1));
                }
            }
        }
        Some((from + 1, 1))
    }
}

/// A size such as "2G", "512M", "1.5GiB" or "1000000" (bytes), in bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("bad size {text:?}: write it like \"2G\" or \"512M\""))?;
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        other => {
            return Err(format!(
                "bad size {text:?}: unknown unit {other:?} (K, M, G or T)"
            ))
        }
    };
    let bytes = n * mult as f64;
    if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("bad size {text:?}: must be more than zero"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        for bad in ["", "G", "2X", "0", "-1G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn copy_globs_find_files_below_their_plain_prefix() {
        let dir = std::env::temp_dir().join(format!("baton-copy-{}", std::process::id()));
        for f in [
            ".env",
            "config/a.local.toml",
            "config/b.toml",
            "config/x/c.local.toml",
        ] {
            let p = dir.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "x").unwrap();
        }
        assert_eq!(matching_files(&dir, ".env"), vec![PathBuf::from(".env")]);
        assert!(matching_files(&dir, ".env.missing").is_empty());
        assert_eq!(
            matching_files(&dir, "config/*.local.toml"),
            vec![PathBuf::from("config/a.local.toml")]
        );
        assert_eq!(matching_files(&dir, "config/**/*.local.toml").len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn copy_globs_stay_inside_the_checkout() {
        assert!(copy_glob_problem(".env").is_ok());
        assert!(copy_glob_problem("config/*.local.toml").is_ok());
        for bad in ["", "/etc/passwd", "../x", "a/../../b", ".git/config"] {
            assert!(copy_glob_problem(bad).is_err(), "{bad}");
        }
        for bad in ["*", "src/*", "!src", ".", "./a"] {
            assert!(sparse_dir_problem(bad).is_err(), "{bad}");
        }
        assert!(sparse_dir_problem("crates/core").is_ok());
    }
}
