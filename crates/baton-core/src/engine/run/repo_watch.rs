//! Changes to the repository itself during a run: an agent can write the
//! shared `.git/config` (`core.bare = true` breaks the user's checkout) or
//! its hooks, which every worktree shares. baton cannot stop that without a
//! sandbox, but it notices and says so (a read-only look at two small
//! places), and puts `core.bare` back: a checkout git no longer sees as one
//! is a broken repository for its user.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub(crate) struct RepoWatch {
    git_dir: PathBuf,
    config: Vec<String>,
    /// The config as the run found it.
    start_config: Vec<String>,
    hooks: BTreeMap<String, (u64, Option<std::time::SystemTime>)>,
}

impl RepoWatch {
    pub fn new(git_dir: &Path) -> RepoWatch {
        RepoWatch {
            git_dir: git_dir.to_path_buf(),
            config: read_config(git_dir),
            start_config: read_config(git_dir),
            hooks: read_hooks(git_dir),
        }
    }

    /// Whether `core.bare` was turned on since the run began (it was off).
    pub fn made_bare(&self) -> bool {
        let bare = |c: &[String]| c.iter().any(|l| l.replace(' ', "") == "bare=true");
        !bare(&self.start_config) && bare(&read_config(&self.git_dir))
    }

    /// What changed since the last look, in words.
    pub fn changes(&mut self) -> Vec<String> {
        let mut said = Vec::new();
        let config = read_config(&self.git_dir);
        if config != self.config {
            let added: Vec<&str> = config
                .iter()
                .filter(|l| !self.config.contains(l))
                .map(String::as_str)
                .collect();
            let removed: Vec<&str> = self
                .config
                .iter()
                .filter(|l| !config.contains(l))
                .map(String::as_str)
                .collect();
            said.push(format!(
                "the repository's .git/config changed during the run (added: {}; removed: {})",
                list(&added),
                list(&removed)
            ));
            self.config = config;
        }
        let hooks = read_hooks(&self.git_dir);
        for (name, seen) in &hooks {
            match self.hooks.get(name) {
                None => said.push(format!("git hook {name} was added during the run")),
                Some(before) if before != seen => {
                    said.push(format!("git hook {name} was changed during the run"))
                }
                _ => {}
            }
        }
        for name in self.hooks.keys().filter(|n| !hooks.contains_key(*n)) {
            said.push(format!("git hook {name} was removed during the run"));
        }
        self.hooks = hooks;
        said
    }
}

fn list(lines: &[&str]) -> String {
    if lines.is_empty() {
        "nothing".into()
    } else {
        lines.join(", ")
    }
}

fn read_config(git_dir: &Path) -> Vec<String> {
    std::fs::read_to_string(git_dir.join("config"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Hooks that would run (samples are not), by name: size and mtime.
fn read_hooks(git_dir: &Path) -> BTreeMap<String, (u64, Option<std::time::SystemTime>)> {
    let Ok(dir) = std::fs::read_dir(git_dir.join("hooks")) else {
        return BTreeMap::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let meta = e.metadata().ok()?;
            (!name.ends_with(".sample")).then(|| (name, (meta.len(), meta.modified().ok())))
        })
        .collect()
}
