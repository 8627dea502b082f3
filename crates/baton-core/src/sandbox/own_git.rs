//! A sandboxed desk's own git directory. Inside its sandbox a desk's work
//! tree is a repository of its own: HEAD, index, refs and new objects in a
//! directory baton makes for it, the shared repository's objects read
//! through alternates, read-only. An agent can commit, branch, reset and
//! rewrite there as it likes; nothing of the shared repository (the user's
//! branches, other tasks' refs, its objects) can change. When the agent is
//! done, baton fetches what it ended on into the repository, its objects
//! checked by fsck on the way: the work comes home through git's own
//! transfer, never by trusting the agent's refs, files or config.

use crate::git::{git, git_ok, GitError, Repo};
use std::path::{Path, PathBuf};

/// A desk's own git directory and the `.git` file that points at it, which
/// the sandbox lays read-only over the work tree's `.git`.
#[derive(Debug, Clone)]
pub struct OwnGit {
    /// The git directory: writable inside the sandbox.
    pub dir: PathBuf,
    /// A file holding `gitdir: <dir>`, outside `dir` (so that nothing in
    /// the sandbox can change it).
    pub dotgit: PathBuf,
    /// What `dir` held when it was made (its HEAD, its refs), outside it:
    /// a desk whose HEAD never moved has nothing to bring home.
    made: PathBuf,
}

impl OwnGit {
    /// Where the desk `name` of a run keeps its own git directory.
    pub fn at(base: &Path) -> OwnGit {
        OwnGit {
            dir: base.join("git"),
            dotgit: base.join("dotgit"),
            made: base.join("made"),
        }
    }

    /// Makes (or makes anew) the directory as the desk's work tree stands
    /// in the repository: its HEAD, index and sparse patterns, the
    /// repository's branches and tags as they are now, its identity.
    pub async fn make(&self, repo: &Repo, worktree: &Path) -> Result<(), GitError> {
        let trusted = repo.desk_git_dir(worktree).ok_or_else(|| {
            GitError::Other(format!(
                "{} is not a worktree of {}",
                worktree.display(),
                repo.root.display()
            ))
        })?;
        let refs = git_ok(
            &repo.root,
            [
                "for-each-ref",
                "--format=%(objectname) %(refname) %(*objectname)",
                "refs/heads",
                "refs/tags",
                "refs/remotes",
            ],
        )
        .await?;
        let config = own_config(repo, &trusted).await;
        let io = |e: std::io::Error| GitError::Other(format!("{}: {e}", self.dir.display()));
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir).map_err(io)?;
        }
        for sub in ["objects/info", "refs/heads", "refs/tags", "info"] {
            std::fs::create_dir_all(self.dir.join(sub)).map_err(io)?;
        }
        let copy = |from: &Path, to: &str| match std::fs::copy(from, self.dir.join(to)) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(e)),
        };
        copy(&trusted.join("HEAD"), "HEAD")?;
        copy(&trusted.join("index"), "index")?;
        copy(
            &trusted.join("info/sparse-checkout"),
            "info/sparse-checkout",
        )?;
        copy(&repo.common_dir.join("info/exclude"), "info/exclude")?;
        let objects = repo.common_dir.join("objects");
        let write = |to: &str, text: String| std::fs::write(self.dir.join(to), text).map_err(io);
        write(
            "objects/info/alternates",
            format!("{}\n", objects.display()),
        )?;
        let packed = packed_refs(&refs);
        write("packed-refs", packed.clone())?;
        write("config", config)?;
        let head = std::fs::read_to_string(self.dir.join("HEAD")).unwrap_or_default();
        std::fs::write(&self.made, fingerprint(&head, &packed)).map_err(io)?;
        let pointer = format!("gitdir: {}\n", self.dir.display());
        std::fs::write(&self.dotgit, pointer).map_err(io)
    }

    /// Removes the directory (its work is home).
    pub fn remove(&self) -> Result<(), GitError> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(GitError::Other(format!("{}: {e}", self.dir.display()))),
        }
    }

    /// Fetches what the desk's HEAD ended on into the repository (kept
    /// under `keep`), and the other commits its reflog names as far as they
    /// can be had; returns the commit HEAD ended on (None: it never moved).
    /// Where it moved and what it left are read by the task's history from
    /// the directory itself. Run only once nothing runs in the sandbox any
    /// more.
    pub async fn bring_home(&self, repo: &Repo, keep: &str) -> Result<Option<String>, GitError> {
        if self.untouched() {
            return Ok(None);
        }
        let log = reflog(&self.dir);
        let spec = format!("+HEAD:{keep}");
        fetch(repo, &self.dir, &[spec.as_str()]).await?;
        let head = git_ok(&repo.root, ["rev-parse", "--verify", keep]).await?;
        // Commits it made and then left (a reset, a rebase): kept in the
        // repository too, for the task's history to keep under refs.
        let named: Vec<&str> = log.iter().map(|(sha, _)| sha.as_str()).collect();
        let others = repo.missing_objects(&named).await;
        if !others.is_empty() {
            let others: Vec<&str> = others.iter().map(String::as_str).collect();
            if let Err(e) = fetch(repo, &self.dir, &others).await {
                tracing::warn!("commits the agent left behind could not be fetched: {e}");
            }
        }
        Ok(Some(head))
    }

    /// Whether HEAD is where it was made, read from the files alone (the
    /// usual end of an agent that leaves its changes uncommitted): the same
    /// HEAD and packed refs, no ref of its own written, no reflog, no
    /// pointer elsewhere. Anything else is fetched.
    fn untouched(&self) -> bool {
        let read = |p: &str| std::fs::read_to_string(self.dir.join(p)).unwrap_or_default();
        let head = read("HEAD");
        let loose = head
            .trim()
            .strip_prefix("ref: ")
            .is_some_and(|r| self.dir.join(r).exists());
        let moved = loose
            || self.dir.join("logs").exists()
            || self.dir.join("commondir").exists()
            || self.dir.join("reftable").exists();
        let was = std::fs::read_to_string(&self.made).ok();
        !moved && was.is_some_and(|w| w == fingerprint(&head, &read("packed-refs")))
    }
}

/// A digest of a git directory's HEAD and packed refs.
fn fingerprint(head: &str, packed: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(head.as_bytes());
    h.update([0]);
    h.update(packed.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A packed-refs file as git writes it (other readers, such as aider's
/// GitPython, take only git's own header): each ref, and under an
/// annotated tag the commit it peels to.
fn packed_refs(listed: &str) -> String {
    let mut out = String::from("# pack-refs with: peeled fully-peeled sorted \n");
    for line in listed.lines() {
        let mut words = line.split(' ');
        let (Some(oid), Some(name)) = (words.next(), words.next()) else {
            continue;
        };
        out.push_str(&format!("{oid} {name}\n"));
        if let Some(peeled) = words.next().filter(|p| !p.is_empty()) {
            out.push_str(&format!("^{peeled}\n"));
        }
    }
    out
}

/// `git fetch` from a desk's own directory into the repository: no tags,
/// no FETCH_HEAD, every object checked by fsck. `upload-pack` reads that
/// directory's config, but none of its settings there starts a program
/// (`uploadpack.packObjectsHook` counts only from the user's own config).
async fn fetch(repo: &Repo, from: &Path, refspecs: &[&str]) -> Result<(), GitError> {
    let upload = "git -c uploadpack.allowAnySHA1InWant=true upload-pack";
    let from = from.display().to_string();
    let mut args: Vec<&str> = vec![
        "-c",
        "fetch.fsckObjects=true",
        "-c",
        "transfer.fsckObjects=true",
        "-c",
        "protocol.file.allow=always",
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        "--no-recurse-submodules",
        "--no-auto-gc",
        "--upload-pack",
        upload,
        &from,
    ];
    args.extend(refspecs);
    git_ok(&repo.root, &args).await.map(drop)
}

/// The config of a desk's own directory: a plain repository (of the
/// repository's object format), the sparse checkout its work tree has, and
/// the identity commits in the repository get.
async fn own_config(repo: &Repo, trusted: &Path) -> String {
    let listed = settings(repo).await;
    let get = |key: &str| {
        listed
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.trim().to_string())
            .rfind(|v| !v.is_empty())
    };
    let mut text = String::from("[core]\n\tbare = false\n\tlogallrefupdates = true\n");
    match get("extensions.objectformat") {
        Some(format) => text.push_str(&format!(
            "\trepositoryformatversion = 1\n[extensions]\n\tobjectformat = {format}\n"
        )),
        None => text.push_str("\trepositoryformatversion = 0\n"),
    }
    if trusted.join("info/sparse-checkout").exists() {
        let cone = get("core.sparsecheckoutcone").is_none_or(|v| v != "false");
        text.push_str(&format!(
            "[core]\n\tsparseCheckout = true\n\tsparseCheckoutCone = {cone}\n"
        ));
    }
    let (name, email) = (get("user.name"), get("user.email"));
    if name.is_some() || email.is_some() {
        text.push_str("[user]\n");
        for (k, v) in [("name", name), ("email", email)] {
            if let Some(v) = v {
                text.push_str(&format!("\t{k} = {}\n", quote(&v)));
            }
        }
    }
    text
}

/// The repository's settings a desk's own directory takes, asked of git
/// once per repository in a process (one git for all of them: a process
/// costs more than a look, and a run makes many desks).
async fn settings(repo: &Repo) -> String {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static SEEN: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    if let Some(known) = seen
        .lock()
        .ok()
        .and_then(|m| m.get(&repo.common_dir).cloned())
    {
        return known;
    }
    let wanted = r"^(user\.(name|email)|extensions\.objectformat|core\.sparsecheckoutcone)$";
    let listed = git(&repo.root, ["config", "--get-regexp", wanted])
        .await
        .map(|o| o.stdout)
        .unwrap_or_default();
    if let Ok(mut m) = seen.lock() {
        m.insert(repo.common_dir.clone(), listed.clone());
    }
    listed
}

/// A config value in double quotes, as git reads it back.
fn quote(v: &str) -> String {
    let escaped: String = v
        .chars()
        .filter(|c| *c != '\n')
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            _ => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

/// A git dir's HEAD reflog, newest first: each commit and what moved HEAD
/// there. Lines that are not a reflog's are skipped (the file is the
/// agent's).
pub fn reflog(dir: &Path) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(dir.join("logs/HEAD")) else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| {
            let (entry, why) = l.split_once('\t').unwrap_or((l, ""));
            let new = entry.split(' ').nth(1)?;
            let hex = new.len() >= 40 && new.bytes().all(|b| b.is_ascii_hexdigit());
            hex.then(|| (new.to_string(), why.to_string()))
        })
        .collect();
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reflog_skips_what_is_not_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let text = format!(
            "{z} {a} x <x> 1 +0000\tcommit (initial): one\nnonsense\n{a} $(rm -rf /) x\n{a} {b} x <x> 2 +0000\treset: moving to HEAD~\n",
            z = "0".repeat(40)
        );
        std::fs::write(dir.path().join("logs/HEAD"), text).unwrap();
        let log = reflog(dir.path());
        assert_eq!(
            log,
            [
                (b.clone(), "reset: moving to HEAD~".to_string()),
                (a.clone(), "commit (initial): one".to_string())
            ]
        );
    }

    #[test]
    fn packed_refs_peel_annotated_tags() {
        let a = "a".repeat(40);
        let t = "t".repeat(40);
        let listed = format!("{a} refs/heads/main \n{t} refs/tags/v1 {a}\n");
        assert_eq!(
            packed_refs(&listed),
            format!("# pack-refs with: peeled fully-peeled sorted \n{a} refs/heads/main\n{t} refs/tags/v1\n^{a}\n")
        );
    }

    #[test]
    fn config_values_are_quoted() {
        assert_eq!(quote(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        assert_eq!(quote("x\ny"), "\"xy\"");
    }
}
