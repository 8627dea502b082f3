//! An attempt moved to another machine's file system. A pod has one of its
//! own, so the attempt's paths (its worktree, its prompt file, a hermetic
//! home) are kept as they are here; an SSH host shares its file system with
//! other work (and may be this machine under another user), so each of
//! them is put under the attempt's own directory there, and every argument,
//! variable and file the agent gets says the new place.

use super::PodAttempt;
use std::path::{Path, PathBuf};

impl PodAttempt {
    /// What marks this attempt's start in a warm pod's log: its ref and
    /// its door's URL (with its token), hashed. An earlier attempt in the
    /// same pod cannot print it ahead (it does not know the token), nor
    /// does the log show the token.
    pub fn begin_mark(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("{}\0{}", self.keep_ref, self.git_url));
        digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    /// Every path of this machine the attempt names, put under `root`
    /// (`/a/b` becomes `<root>/a/b`).
    pub fn relocate(&mut self, root: &Path) {
        let mut prefixes: Vec<String> = std::iter::once(self.worktree.clone())
            .chain(
                self.files
                    .iter()
                    .filter_map(|(p, _)| p.parent().map(Path::to_path_buf)),
            )
            .chain(self.dirs.iter().cloned())
            .filter(|p| p.is_absolute() && p.parent().is_some())
            .map(|p| p.to_string_lossy().trim_end_matches('/').to_string())
            .collect();
        // Longest first, so a file's directory inside the worktree is one
        // match, not two.
        prefixes.sort_by_key(|p| std::cmp::Reverse(p.len()));
        prefixes.dedup();
        let root = root.to_string_lossy().trim_end_matches('/').to_string();
        self.rewrite(|s| move_paths(s, &prefixes, &root));
    }

    /// Every text the agent and its gates are given (arguments, variables,
    /// input, files and their paths, the worktree) passed through `f`.
    pub fn rewrite(&mut self, f: impl Fn(&str) -> String) {
        let path = |p: &Path| PathBuf::from(f(&p.to_string_lossy()));
        self.worktree = path(&self.worktree);
        self.program = f(&self.program);
        let texts = self.args.iter_mut().chain(self.stdin_lines.iter_mut());
        let values = self
            .env
            .iter_mut()
            .chain(self.gate_env.iter_mut())
            .map(|(_, v)| v);
        for t in texts.chain(values) {
            *t = f(t);
        }
        for (p, text) in &mut self.files {
            *p = path(p);
            *text = f(text);
        }
        for d in &mut self.dirs {
            *d = path(d);
        }
    }
}

/// Whether `c` may go on a path's last name (so `/a/bc` is not `/a/b`).
fn continues_a_name(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '+' | '@')
}

/// `s` with each of `prefixes` (longest first) that stands as a whole
/// path or a path's start put under `root`, in one pass: what was put
/// there is never matched again.
fn move_paths(s: &str, prefixes: &[String], root: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    'scan: while i < s.len() {
        let rest = &s[i..];
        let starts_a_path = i == 0 || !s[..i].ends_with(continues_a_name);
        if starts_a_path && rest.starts_with('/') {
            for p in prefixes {
                let Some(after) = rest.strip_prefix(p.as_str()) else {
                    continue;
                };
                if after.chars().next().is_none_or(|c| !continues_a_name(c)) {
                    out.push_str(root);
                    out.push_str(p);
                    i += p.len();
                    continue 'scan;
                }
            }
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        i += c.len_utf8().max(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt() -> PodAttempt {
        PodAttempt {
            run: "r".into(),
            task: "t".into(),
            attempt: 1,
            git_url: "http://127.0.0.1:1/git/x".into(),
            branch: "baton/r/t".into(),
            start: "abc".into(),
            keep_ref: "refs/baton/r/t/1".into(),
            worktree: "/w/repo/.baton/wt/t".into(),
            program: "claude".into(),
            args: vec![
                "--settings".into(),
                "/w/repo/.baton/desks/t/settings.json".into(),
                "--add-dir=/w/repo/.baton/wt/t".into(),
                "/w/repo/.baton/wt/tt".into(),
            ],
            env: vec![
                ("HOME".into(), "/w/repo/.baton/homes/claude".into()),
                ("PATH".into(), "/usr/bin:/bin".into()),
            ],
            stdin_lines: vec![],
            live: None,
            files: vec![(
                "/w/repo/.baton/desks/t/settings.json".into(),
                r#"{"cwd":"/w/repo/.baton/wt/t/src"}"#.into(),
            )],
            dirs: vec!["/w/repo/.baton/homes/claude".into()],
            gates: vec![],
            gate_env: vec![("BATON_WORKTREE".into(), "/w/repo/.baton/wt/t".into())],
            setup: vec![],
            setup_key: None,
            setup_timeout_secs: 60,
            timeout_secs: 60,
            message: "m".into(),
        }
    }

    #[test]
    fn every_path_of_this_machine_moves_under_the_root_once() {
        let mut a = attempt();
        a.relocate(Path::new("/home/h/.cache/baton/runs/r/t-1/root/"));
        let root = "/home/h/.cache/baton/runs/r/t-1/root";
        assert_eq!(
            a.worktree,
            PathBuf::from(format!("{root}/w/repo/.baton/wt/t"))
        );
        assert_eq!(
            a.args[1],
            format!("{root}/w/repo/.baton/desks/t/settings.json")
        );
        assert_eq!(a.args[2], format!("--add-dir={root}/w/repo/.baton/wt/t"));
        // Another path that only starts with the same letters stays.
        assert_eq!(a.args[3], "/w/repo/.baton/wt/tt");
        assert_eq!(a.env[0].1, format!("{root}/w/repo/.baton/homes/claude"));
        assert_eq!(a.env[1].1, "/usr/bin:/bin");
        assert_eq!(
            a.files[0].1,
            format!(r#"{{"cwd":"{root}/w/repo/.baton/wt/t/src"}}"#)
        );
        assert_eq!(
            a.dirs[0],
            PathBuf::from(format!("{root}/w/repo/.baton/homes/claude"))
        );
        assert_eq!(a.gate_env[0].1, format!("{root}/w/repo/.baton/wt/t"));
        // Moving again moves the new paths, not the old ones twice over.
        let before = a.clone();
        a.relocate(Path::new("/x"));
        assert_eq!(
            a.args[2],
            format!("--add-dir=/x{}", before.worktree.display())
        );
    }
}
