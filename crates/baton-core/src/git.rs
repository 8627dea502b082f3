//! The git CLI, run as a child process. Every mutation of a repository goes
//! through here; ref and index locks held by a concurrent git are waited out.
//!
//! A desk's files are an agent's, and an agent is assumed hostile: no git
//! baton runs may start a program the desk chose. So every command runs with
//! hooks, fsmonitor and submodule recursion off ([`HARDENED`]), and a
//! command in a desk names the git dir baton made for it ([`At::Desk`])
//! instead of following the desk's own `.git`, which its agent can rewrite.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("could not run git: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("`git {args}` failed ({status}): {stderr}")]
    Failed {
        args: String,
        status: String,
        stderr: String,
    },
    #[error("{0}")]
    Other(String),
}

#[derive(Debug)]
pub struct GitOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A repository as baton sees it: its main work tree and its common git dir.
#[derive(Debug, Clone)]
pub struct Repo {
    pub root: PathBuf,
    pub common_dir: PathBuf,
}

/// Identity used for baton's own commits when the user has none configured
/// (a fresh CI machine): without it, work could not be committed and would be lost.
const FALLBACK_IDENTITY: [&str; 4] = ["-c", "user.name=baton", "-c", "user.email=baton@localhost"];

fn is_lock_error(stderr: &str) -> bool {
    // A compare-and-swap that lost ("is at X but expected Y") is an answer, not contention.
    if stderr.contains("but expected") {
        return false;
    }
    // Two `git worktree add` at once can see each other's half-made metadata.
    stderr.contains("failed to read .git/worktrees/")
        || stderr.contains("failed to read") && stderr.contains("/worktrees/")
        || stderr.contains(".lock': File exists")
        || stderr.contains("cannot lock ref")
        || stderr.contains("Unable to create") && stderr.contains(".lock")
        || stderr.contains("could not lock")
}

fn is_identity_error(stderr: &str) -> bool {
    stderr.contains("Please tell me who you are")
        || stderr.contains("unable to auto-detect email address")
        || stderr.contains("empty ident name")
}

/// Makes the directory a new worktree goes in.
fn make_parent(path: &Path) -> Result<(), GitError> {
    match path.parent() {
        Some(parent) => std::fs::create_dir_all(parent)
            .map_err(|e| GitError::Other(format!("cannot create {}: {e}", parent.display()))),
        None => Ok(()),
    }
}

/// Long enough for a large checkout or merge on a slow disk.
const GIT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Settings before every command baton runs, over any config: nothing a
/// repository's or a desk's config names is started. No hook (a project's
/// `core.hooksPath` points into its work tree: husky's `.husky`), no
/// fsmonitor, no look into a nested repository (`git status` would run git
/// there, under that repository's own config, which an agent wrote).
pub const HARDENED: [&str; 10] = [
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "diff.ignoreSubmodules=all",
    "-c",
    "submodule.recurse=false",
    "-c",
    "status.submoduleSummary=false",
];

/// Where a git command runs.
#[derive(Debug, Clone, Copy)]
pub enum At<'a> {
    /// In this directory, on the repository git finds from it (baton's
    /// repository, the user's checkout, a pod's own clone).
    Dir(&'a Path),
    /// In a desk's work tree, with the git dir baton made for it.
    Desk {
        worktree: &'a Path,
        git_dir: &'a Path,
    },
}

/// Runs git in `dir`, waiting out lock contention for up to a few seconds.
pub async fn git<I, S>(dir: &Path, args: I) -> Result<GitOutput, GitError>
where
    I: IntoIterator<Item = S> + Clone,
    S: AsRef<OsStr>,
{
    git_at(At::Dir(dir), args).await
}

/// Runs git where `at` says, waiting out lock contention for up to a few
/// seconds.
pub async fn git_at<I, S>(at: At<'_>, args: I) -> Result<GitOutput, GitError>
where
    I: IntoIterator<Item = S> + Clone,
    S: AsRef<OsStr>,
{
    let mut delay = Duration::from_millis(5);
    let mut waited = Duration::ZERO;
    loop {
        let mut cmd = Command::new("git");
        cmd.args(HARDENED)
            .args(args.clone())
            .stdin(Stdio::null())
            .env("GIT_TERMINAL_PROMPT", "0")
            .kill_on_drop(true);
        match at {
            At::Dir(dir) => {
                cmd.current_dir(dir);
            }
            At::Desk { worktree, git_dir } => {
                cmd.current_dir(worktree)
                    .env("GIT_DIR", git_dir)
                    .env("GIT_WORK_TREE", worktree)
                    .env_remove("GIT_COMMON_DIR")
                    .env_remove("GIT_INDEX_FILE")
                    .env_remove("GIT_OBJECT_DIRECTORY");
            }
        }
        let run = cmd.output();
        // A hook that hangs must not hold a worker (and shutdown) forever.
        let out = match tokio::time::timeout(GIT_TIMEOUT, run).await {
            Ok(out) => out.map_err(GitError::Spawn)?,
            Err(_) => {
                return Err(GitError::Other(format!(
                    "`git {}` did not finish within {} minutes (a hook that hangs?)",
                    args.into_iter()
                        .map(|a| a.as_ref().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(" "),
                    GIT_TIMEOUT.as_secs() / 60
                )))
            }
        };
        let res = GitOutput {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        if res.code != 0 && is_lock_error(&res.stderr) && waited < Duration::from_secs(10) {
            tokio::time::sleep(delay).await;
            waited += delay;
            delay = (delay * 2).min(Duration::from_millis(200));
            continue;
        }
        return Ok(res);
    }
}

/// Like [`git`], but a non-zero exit is an error; returns trimmed stdout.
pub async fn git_ok<I, S>(dir: &Path, args: I) -> Result<String, GitError>
where
    I: IntoIterator<Item = S> + Clone,
    S: AsRef<OsStr>,
{
    git_ok_at(At::Dir(dir), args).await
}

/// Like [`git_at`], but a non-zero exit is an error; returns trimmed stdout.
pub async fn git_ok_at<I, S>(at: At<'_>, args: I) -> Result<String, GitError>
where
    I: IntoIterator<Item = S> + Clone,
    S: AsRef<OsStr>,
{
    let out = git_at(at, args.clone()).await?;
    if out.code != 0 {
        return Err(GitError::Failed {
            args: args
                .into_iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" "),
            status: format!("exit {}", out.code),
            stderr: out.stderr.trim().to_string(),
        });
    }
    Ok(out.stdout.trim().to_string())
}

static WORKTREE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An agent killed in the middle of a git command leaves the worktree's
/// index.lock behind, and every later commit would fail on it.
fn remove_stale_index_lock(at: At<'_>) {
    let gitdir = match at {
        At::Desk { git_dir, .. } => git_dir.to_path_buf(),
        At::Dir(worktree) => match dot_git_target(worktree) {
            Some(d) => d,
            None => return,
        },
    };
    let lock = gitdir.join("index.lock");
    if lock.exists() {
        tracing::warn!("removing {} left by a stopped agent", lock.display());
        let _ = std::fs::remove_file(lock);
    }
}

/// The git dir a worktree's `.git` file names: what git would follow (in a
/// pod's clone, where the whole machine is the desk's), or what an agent
/// may have rewritten it to.
pub fn dot_git_target(worktree: &Path) -> Option<PathBuf> {
    let dotgit = std::fs::read_to_string(worktree.join(".git")).ok()?;
    let gitdir = Path::new(dotgit.trim().strip_prefix("gitdir:")?.trim());
    Some(if gitdir.is_absolute() {
        gitdir.to_path_buf()
    } else {
        worktree.join(gitdir)
    })
}

pub enum MergeOutcome {
    Merged(String),
    Conflict(Vec<String>),
}

/// What is left of an earlier task in a worktree given to a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Nothing: untracked and ignored files go.
    Scrub,
    /// Its ignored files (caches such as node_modules); untracked ones go.
    KeepIgnored,
    /// It was reset and cleaned already (a pooled worktree): only the
    /// branch changes.
    Clean,
}

/// What `git merge-tree` made of two commits.
pub enum TreeMerge {
    /// The merged tree's id.
    Clean(String),
    /// The paths that conflict.
    Conflict(Vec<String>),
}

impl Repo {
    /// Finds the repository that holds `dir`.
    pub fn discover(dir: &Path) -> Result<Repo, GitError> {
        let out = std::process::Command::new("git")
            .args(["rev-parse", "--show-toplevel", "--git-common-dir"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .map_err(GitError::Spawn)?;
        if !out.status.success() {
            return Err(GitError::Other(format!(
                "{} is not inside a git repository with a work tree ({})",
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let root = PathBuf::from(lines.next().unwrap_or_default());
        let common = PathBuf::from(lines.next().unwrap_or_default());
        let common_dir = if common.is_absolute() {
            common
        } else {
            dir.join(common)
        };
        let common_dir = common_dir.canonicalize().unwrap_or(common_dir);
        Ok(Repo { root, common_dir })
    }

    /// The git dir git made for a linked worktree (`<common>/worktrees/<name>`,
    /// whose `gitdir` file points back at the worktree's `.git`), found from
    /// the common dir: never from the worktree's own `.git` file, which its
    /// agent can rewrite to point anywhere.
    pub fn desk_git_dir(&self, worktree: &Path) -> Option<PathBuf> {
        let want = worktree.join(".git");
        let want_real = worktree.canonicalize().ok().map(|w| w.join(".git"));
        let points_here = |dir: &Path| {
            let Ok(text) = std::fs::read_to_string(dir.join("gitdir")) else {
                return false;
            };
            let named = Path::new(text.trim());
            // Relative with worktree.useRelativePaths: from the git dir.
            let named = dir.join(named);
            named == want
                || want_real
                    .as_ref()
                    .is_some_and(|r| named.canonicalize().ok().as_ref() == Some(r))
        };
        let all = self.common_dir.join("worktrees");
        // git names a worktree's dir after its directory, unless taken.
        if let Some(name) = worktree.file_name() {
            let dir = all.join(name);
            if points_here(&dir) {
                return Some(dir);
            }
        }
        std::fs::read_dir(&all)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|d| points_here(d))
    }

    /// Where git runs for `worktree`: the repository's own checkout as git
    /// finds it; any other worktree with the git dir baton made for it.
    fn place(&self, worktree: &Path) -> Result<Option<PathBuf>, GitError> {
        if let Some(dir) = self.desk_git_dir(worktree) {
            return Ok(Some(dir));
        }
        let same = |a: &Path, b: &Path| a == b || a.canonicalize().ok() == b.canonicalize().ok();
        if same(worktree, &self.root) {
            return Ok(None);
        }
        Err(GitError::Other(format!(
            "{} is not a worktree of the repository at {} (no git dir under {} names it)",
            worktree.display(),
            self.root.display(),
            self.common_dir.join("worktrees").display()
        )))
    }

    /// Runs git in a worktree of this repository (see [`Repo::place`]).
    pub async fn in_desk<I, S>(&self, worktree: &Path, args: I) -> Result<GitOutput, GitError>
    where
        I: IntoIterator<Item = S> + Clone,
        S: AsRef<OsStr>,
    {
        match self.place(worktree)? {
            Some(git_dir) => {
                git_at(
                    At::Desk {
                        worktree,
                        git_dir: &git_dir,
                    },
                    args,
                )
                .await
            }
            None => git(worktree, args).await,
        }
    }

    /// Like [`Repo::in_desk`], but a non-zero exit is an error; returns
    /// trimmed stdout.
    pub async fn in_desk_ok<I, S>(&self, worktree: &Path, args: I) -> Result<String, GitError>
    where
        I: IntoIterator<Item = S> + Clone,
        S: AsRef<OsStr>,
    {
        match self.place(worktree)? {
            Some(git_dir) => {
                git_ok_at(
                    At::Desk {
                        worktree,
                        git_dir: &git_dir,
                    },
                    args,
                )
                .await
            }
            None => git_ok(worktree, args).await,
        }
    }

    /// Where baton keeps its store, logs and (by default) worktrees.
    pub fn state_dir(&self) -> PathBuf {
        self.common_dir.join("baton")
    }

    pub async fn resolve_commit(&self, rev: &str) -> Result<String, GitError> {
        let spec = format!("{rev}^{{commit}}");
        git_ok(
            &self.root,
            ["rev-parse", "--verify", "--quiet", spec.as_str()],
        )
        .await
        .map_err(|_| {
            GitError::Other(format!(
                "{rev:?} does not name a commit in {}",
                self.root.display()
            ))
        })
    }

    /// Every worktree of the repository: its path, and the branch (a full
    /// ref) it has checked out, None for a detached HEAD.
    pub async fn worktrees(&self) -> Result<Vec<(PathBuf, Option<String>)>, GitError> {
        let list = git_ok(&self.root, ["worktree", "list", "--porcelain"]).await?;
        let mut out: Vec<(PathBuf, Option<String>)> = Vec::new();
        for line in list.lines() {
            if let Some(p) = line.strip_prefix("worktree ") {
                out.push((PathBuf::from(p), None));
            } else if let (Some(b), Some(last)) = (line.strip_prefix("branch "), out.last_mut()) {
                last.1 = Some(b.to_string());
            }
        }
        Ok(out)
    }

    /// The files with changes of their own in a worktree; untracked ones
    /// only when `untracked`.
    pub async fn changes(&self, worktree: &Path, untracked: bool) -> Result<Vec<String>, GitError> {
        let which = if untracked {
            "--untracked-files=all"
        } else {
            "--untracked-files=no"
        };
        // Not trimmed: each line starts with its two status columns.
        let args = ["status", "--porcelain", "--ignore-submodules=all", which];
        let out = self.in_desk(worktree, args).await?;
        if out.code != 0 {
            return Err(GitError::Other(format!(
                "git status in {}: {}",
                worktree.display(),
                out.stderr.trim()
            )));
        }
        Ok(out
            .stdout
            .lines()
            .map(|l| l.get(3..).unwrap_or(l).to_string())
            .collect())
    }

    /// The local branch `rev` names (`HEAD`: the branch checked out in the
    /// main worktree), if it names one.
    pub async fn branch_of(&self, rev: &str) -> Option<String> {
        let out = git(&self.root, ["rev-parse", "--symbolic-full-name", rev])
            .await
            .ok()?;
        let full = out.stdout.trim();
        (out.code == 0).then(|| full.strip_prefix("refs/heads/").map(str::to_string))?
    }

    /// The commit a ref points to, or None if it does not exist.
    pub async fn ref_commit(&self, refname: &str) -> Result<Option<String>, GitError> {
        let out = git(&self.root, ["rev-parse", "--verify", "--quiet", refname]).await?;
        Ok((out.code == 0).then(|| out.stdout.trim().to_string()))
    }

    /// Fetches `branch` from `remote` into `kept` (forced: it mirrors the
    /// remote's branch, whatever it was before) and answers its commit.
    pub async fn fetch_branch(
        &self,
        remote: &str,
        branch: &str,
        kept: &str,
    ) -> Result<String, GitError> {
        let spec = format!("+refs/heads/{branch}:{kept}");
        git_ok(&self.root, ["fetch", "-q", "--", remote, spec.as_str()]).await?;
        self.ref_commit(kept).await?.ok_or_else(|| {
            GitError::Other(format!(
                "{kept} is missing after fetching {branch} from {remote}"
            ))
        })
    }

    /// Creates a ref that must not exist yet.
    pub async fn create_ref(&self, refname: &str, oid: &str) -> Result<(), GitError> {
        git_ok(&self.root, ["update-ref", refname, oid, ""])
            .await
            .map(drop)
    }

    /// Moves a ref, but only if it still points at `old` (compare and swap).
    pub async fn move_ref(&self, refname: &str, new: &str, old: &str) -> Result<(), GitError> {
        git_ok(&self.root, ["update-ref", refname, new, old])
            .await
            .map(drop)
    }

    /// Which of `oids` the repository does not have (each once), asked of
    /// one `git cat-file --batch-check`.
    pub async fn missing_objects(&self, oids: &[&str]) -> Vec<String> {
        use tokio::io::AsyncWriteExt;
        let mut unique: Vec<&str> = Vec::new();
        for o in oids {
            if !unique.contains(o) {
                unique.push(o);
            }
        }
        if unique.is_empty() {
            return Vec::new();
        }
        let child = Command::new("git")
            .args(HARDENED)
            .args(["cat-file", "--batch-check=%(objectname)"])
            .current_dir(&self.root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let Ok(mut child) = child else {
            return Vec::new();
        };
        if let Some(mut stdin) = child.stdin.take() {
            let asked: String = unique.iter().map(|o| format!("{o}\n")).collect();
            let _ = stdin.write_all(asked.as_bytes()).await;
        }
        let Ok(out) = child.wait_with_output().await else {
            return Vec::new();
        };
        // Each line is the object's name, or "<name> missing".
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_suffix(" missing"))
            .map(str::to_string)
            .collect()
    }

    /// The tree a commit holds.
    pub async fn tree_of(&self, commit: &str) -> Result<String, GitError> {
        let spec = format!("{commit}^{{tree}}");
        git_ok(&self.root, ["rev-parse", "--verify", spec.as_str()]).await
    }

    /// Removes a ref.
    pub async fn delete_ref(&self, refname: &str) -> Result<(), GitError> {
        git_ok(&self.root, ["update-ref", "-d", refname])
            .await
            .map(drop)
    }

    /// Points a ref at `oid`, creating or moving it (for keep-refs).
    pub async fn set_ref(&self, refname: &str, oid: &str) -> Result<(), GitError> {
        git_ok(&self.root, ["update-ref", refname, oid])
            .await
            .map(drop)
    }

    /// Adds a worktree at `path` on a new branch starting at `start`.
    /// Worktree additions are serialized in this process: git's worktree
    /// metadata is not safe to create concurrently.
    pub async fn add_worktree(
        &self,
        path: &Path,
        branch: &str,
        start: &str,
        sparse: &[String],
    ) -> Result<(), GitError> {
        self.add_worktree_at(path, Some(branch), start, sparse)
            .await
    }

    /// A new worktree at `path` on a new `branch` (or detached) at `start`;
    /// with `sparse` directories, only those (and the top level) are
    /// checked out (cone mode).
    async fn add_worktree_at(
        &self,
        path: &Path,
        branch: Option<&str>,
        start: &str,
        sparse: &[String],
    ) -> Result<(), GitError> {
        {
            let _serial = WORKTREE_LOCK.lock().await;
            make_parent(path)?;
            let mut args: Vec<&OsStr> = vec!["worktree".as_ref(), "add".as_ref(), "-q".as_ref()];
            match branch {
                Some(b) => args.extend(["-b".as_ref(), OsStr::new(b)]),
                None => args.push("--detach".as_ref()),
            }
            if !sparse.is_empty() {
                args.push("--no-checkout".as_ref());
            }
            args.extend([path.as_os_str(), OsStr::new(start)]);
            git_ok(&self.root, &args).await?;
        }
        if !sparse.is_empty() {
            let mut args = vec!["sparse-checkout", "set", "--cone", "--"];
            args.extend(sparse.iter().map(String::as_str));
            self.in_desk_ok(path, &args).await?;
            self.in_desk_ok(path, ["reset", "-q", "--hard"]).await?;
        }
        Ok(())
    }

    /// Lets each worktree have config of its own (`git sparse-checkout`
    /// needs it), so that doing it later is not a change under a run.
    pub async fn enable_worktree_config(&self) -> Result<(), GitError> {
        git_ok(&self.root, ["config", "extensions.worktreeConfig", "true"])
            .await
            .map(drop)
    }

    /// Moves a worktree (a rename: nothing is checked out again).
    pub async fn move_worktree(&self, from: &Path, to: &Path) -> Result<(), GitError> {
        let _serial = WORKTREE_LOCK.lock().await;
        make_parent(to)?;
        let args = [
            OsStr::new("worktree"),
            OsStr::new("move"),
            from.as_os_str(),
            to.as_os_str(),
        ];
        git_ok(&self.root, args).await.map(drop)
    }

    /// Makes the worktree at `from` (whose work is kept on its own branch)
    /// the worktree of a new task: moved to `to`, on a new `branch` from
    /// `start`, with nothing left of the earlier task (untracked and ignored
    /// files too). Cheaper than a new worktree on a big tree: only what
    /// differs is written.
    pub async fn reuse_worktree(
        &self,
        from: &Path,
        to: &Path,
        branch: &str,
        start: &str,
    ) -> Result<(), GitError> {
        self.move_worktree(from, to).await?;
        crate::failpoint::hit("desk-moved");
        self.switch_worktree(to, branch, start, Reuse::Scrub).await
    }

    /// Adds a worktree at `path` with `commit` checked out, on no branch.
    pub async fn add_detached_worktree(
        &self,
        path: &Path,
        commit: &str,
        sparse: &[String],
    ) -> Result<(), GitError> {
        self.add_worktree_at(path, None, commit, sparse).await
    }

    /// Checks out `commit` (on no branch) in an existing worktree; untracked
    /// files go, ignored ones (build caches) stay.
    pub async fn checkout_detached(&self, worktree: &Path, commit: &str) -> Result<(), GitError> {
        let args = ["checkout", "-q", "-f", "--detach", commit];
        self.in_desk_ok(worktree, args).await?;
        self.in_desk_ok(worktree, ["clean", "-ffdq"])
            .await
            .map(drop)
    }

    /// Re-attaches a worktree to an existing branch (resume after the directory was lost).
    pub async fn restore_worktree(&self, path: &Path, branch: &str) -> Result<(), GitError> {
        let _serial = WORKTREE_LOCK.lock().await;
        let _ = git(&self.root, ["worktree", "prune"]).await;
        git_ok(
            &self.root,
            [
                OsStr::new("worktree"),
                OsStr::new("add"),
                OsStr::new("-q"),
                path.as_os_str(),
                OsStr::new(branch),
            ],
        )
        .await
        .map(drop)
    }

    /// Commits everything left in a worktree. Returns whether a commit was made.
    /// Signing that cannot work headless does not cost the work: it is
    /// committed again without it. Call it only once the agent's processes
    /// are gone: a lock they left is removed.
    pub async fn commit_all(&self, worktree: &Path, message: &str) -> Result<bool, GitError> {
        match self.place(worktree)? {
            Some(git_dir) => {
                commit_at(
                    At::Desk {
                        worktree,
                        git_dir: &git_dir,
                    },
                    message,
                )
                .await
            }
            None => commit_at(At::Dir(worktree), message).await,
        }
    }

    /// The housekeeping `git commit` would have started after each of
    /// baton's commits (`git maintenance run --auto`), once; not when the
    /// user turned it off.
    pub async fn maintain(&self) {
        let off = git(&self.root, ["config", "--type=bool", "maintenance.auto"])
            .await
            .is_ok_and(|o| o.stdout.trim() == "false");
        if !off {
            let _ = git(&self.root, ["maintenance", "run", "--auto", "--quiet"]).await;
        }
    }

    /// Whether `commit` is already contained in `head`.
    pub async fn is_ancestor(&self, commit: &str, head: &str) -> Result<bool, GitError> {
        Ok(
            git(&self.root, ["merge-base", "--is-ancestor", commit, head])
                .await?
                .code
                == 0,
        )
    }

    pub async fn head(&self, worktree: &Path) -> Result<String, GitError> {
        self.in_desk_ok(worktree, ["rev-parse", "HEAD"]).await
    }

    /// Which of `commits` no ref reaches (work that git would garbage-collect).
    pub async fn unreachable(&self, commits: &[String]) -> Vec<String> {
        if commits.is_empty() {
            return Vec::new();
        }
        let mut args: Vec<&str> = vec!["rev-list"];
        args.extend(commits.iter().map(String::as_str));
        args.extend(["--not", "--all"]);
        let Ok(out) = git(&self.root, args).await else {
            return Vec::new();
        };
        let lost: std::collections::HashSet<&str> = out.stdout.lines().collect();
        commits
            .iter()
            .filter(|c| lost.contains(c.as_str()))
            .cloned()
            .collect()
    }

    /// Points `branch` at `commit` and makes it the worktree's branch again
    /// (after an agent switched away); the files stay as they are.
    pub async fn reattach(
        &self,
        worktree: &Path,
        branch: &str,
        commit: &str,
    ) -> Result<(), GitError> {
        let name = format!("refs/heads/{branch}");
        git_ok(&self.root, ["update-ref", name.as_str(), commit]).await?;
        self.in_desk_ok(worktree, ["symbolic-ref", "HEAD", name.as_str()])
            .await
            .map(drop)
    }

    /// The branch checked out in a worktree (None: a detached HEAD, or not a worktree).
    pub async fn current_branch(&self, worktree: &Path) -> Option<String> {
        let out = self
            .in_desk(worktree, ["symbolic-ref", "-q", "--short", "HEAD"])
            .await
            .ok()?;
        (out.code == 0).then(|| out.stdout.trim().to_string())
    }

    /// Checks out a new `branch` from `start` in an existing worktree; what
    /// is left of its earlier use goes as `reuse` says.
    pub async fn switch_worktree(
        &self,
        worktree: &Path,
        branch: &str,
        start: &str,
        reuse: Reuse,
    ) -> Result<(), GitError> {
        if reuse == Reuse::Clean && self.head(worktree).await.is_ok_and(|h| h == start) {
            // Nothing to check out: the branch is made where HEAD is, and
            // HEAD points at it (no look at every file of a big tree).
            let full = format!("refs/heads/{branch}");
            git_ok(&self.root, ["update-ref", full.as_str(), start, ""]).await?;
            return self
                .in_desk_ok(worktree, ["symbolic-ref", "HEAD", full.as_str()])
                .await
                .map(drop);
        }
        let args = ["checkout", "-q", "-f", "-b", branch, start];
        self.in_desk_ok(worktree, args).await?;
        let clean = match reuse {
            Reuse::Clean => return Ok(()),
            Reuse::KeepIgnored => "-ffdq",
            Reuse::Scrub => "-ffdxq",
        };
        self.in_desk_ok(worktree, ["clean", clean]).await.map(drop)
    }

    pub async fn changed_files(&self, from: &str, to: &str) -> Result<Vec<String>, GitError> {
        let range = format!("{from}..{to}");
        let out = git_ok(
            &self.root,
            ["diff", "--name-only", "--no-renames", range.as_str()],
        )
        .await?;
        Ok(out.lines().map(str::to_string).collect())
    }

    /// Lines added and removed from `from` to `to` (a binary file counts none).
    pub async fn diff_lines(&self, from: &str, to: &str) -> Result<u64, GitError> {
        let out = git_ok(&self.root, ["diff", "--numstat", "--no-renames", from, to]).await?;
        let count = |n: Option<&str>| n.and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
        Ok(out
            .lines()
            .map(|l| {
                let mut f = l.split('\t');
                count(f.next()) + count(f.next())
            })
            .sum())
    }

    /// Merges `theirs` into the commit `ours` without touching any work tree.
    /// On success returns the merge commit; the caller moves the branch.
    pub async fn merge_commits(
        &self,
        ours: &str,
        theirs: &str,
        message: &str,
    ) -> Result<MergeOutcome, GitError> {
        self.merged_commit(ours, theirs, message, &[ours, theirs])
            .await
    }

    /// The paths where merging `theirs` into `ours` would conflict (empty:
    /// it would merge cleanly); nothing is written.
    pub async fn dry_merge(&self, ours: &str, theirs: &str) -> Result<Vec<String>, GitError> {
        Ok(match self.merge_tree(ours, theirs).await? {
            TreeMerge::Clean(_) => Vec::new(),
            TreeMerge::Conflict(paths) => paths,
        })
    }

    /// Like [`Repo::merge_commits`], but the commit has `ours` as its only
    /// parent: `theirs`'s changes as one commit.
    pub async fn squash_commits(
        &self,
        ours: &str,
        theirs: &str,
        message: &str,
    ) -> Result<MergeOutcome, GitError> {
        self.merged_commit(ours, theirs, message, &[ours]).await
    }

    async fn merged_commit(
        &self,
        ours: &str,
        theirs: &str,
        message: &str,
        parents: &[&str],
    ) -> Result<MergeOutcome, GitError> {
        match self.merge_tree(ours, theirs).await? {
            TreeMerge::Clean(tree) => self
                .commit_tree(&tree, parents, message)
                .await
                .map(MergeOutcome::Merged),
            TreeMerge::Conflict(paths) => Ok(MergeOutcome::Conflict(paths)),
        }
    }

    /// The tree of `theirs` merged into `ours`, written to the object store
    /// but not committed; or the paths that conflict.
    pub async fn merge_tree(&self, ours: &str, theirs: &str) -> Result<TreeMerge, GitError> {
        let args = [
            "merge-tree",
            "--write-tree",
            "--name-only",
            "--no-messages",
            ours,
            theirs,
        ];
        let out = git(&self.root, args).await?;
        let mut lines = out.stdout.lines();
        let tree = lines.next().unwrap_or_default().trim().to_string();
        match out.code {
            0 => Ok(TreeMerge::Clean(tree)),
            1 => {
                let mut paths: Vec<String> = lines
                    .map(str::to_string)
                    .filter(|l| !l.is_empty())
                    .collect();
                paths.dedup();
                Ok(TreeMerge::Conflict(paths))
            }
            code => Err(GitError::Failed {
                args: "merge-tree".into(),
                status: format!("exit {code}"),
                stderr: out.stderr.trim().to_string(),
            }),
        }
    }

    /// A commit of `tree` with these parents; a repository without a
    /// committer identity gets baton's.
    pub async fn commit_tree(
        &self,
        tree: &str,
        parents: &[&str],
        message: &str,
    ) -> Result<String, GitError> {
        let mut identity = false;
        loop {
            let mut args: Vec<&str> = Vec::new();
            if identity {
                args.extend(FALLBACK_IDENTITY);
            }
            args.extend(["commit-tree", tree]);
            for p in parents {
                args.extend(["-p", p]);
            }
            args.extend(["-m", message]);
            let out = git(&self.root, &args).await?;
            if out.code == 0 {
                return Ok(out.stdout.trim().to_string());
            }
            if is_identity_error(&out.stderr) && !identity {
                identity = true;
                continue;
            }
            return Err(GitError::Failed {
                args: "commit-tree".into(),
                status: format!("exit {}", out.code),
                stderr: out.stderr.trim().to_string(),
            });
        }
    }

    /// The diff from `from` to `to`, at most `cap` bytes of it, and whether
    /// it was cut: memory stays bounded whatever a task changed.
    pub async fn diff_capped(
        &self,
        from: &str,
        to: &str,
        cap: usize,
    ) -> Result<(Vec<u8>, bool), GitError> {
        use tokio::io::AsyncReadExt;
        let mut child = Command::new("git")
            .args(HARDENED)
            .args([
                "diff",
                "--no-color",
                "--no-ext-diff",
                "--no-textconv",
                from,
                to,
            ])
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(GitError::Spawn)?;
        let mut bytes = Vec::new();
        if let Some(out) = child.stdout.take() {
            let _ = out.take(cap as u64 + 1).read_to_end(&mut bytes).await;
        }
        let cut = bytes.len() > cap;
        bytes.truncate(cap);
        let _ = child.kill().await;
        Ok((bytes, cut))
    }

    /// Removes a worktree whose work is committed, its metadata with it (so
    /// that worktree metadata does not pile up during a long run and slow
    /// every later `worktree add`). Its branch stays.
    pub async fn remove_worktree(&self, path: &Path) -> Result<(), GitError> {
        let _serial = WORKTREE_LOCK.lock().await;
        git_ok(
            &self.root,
            [
                OsStr::new("worktree"),
                OsStr::new("remove"),
                OsStr::new("--force"),
                path.as_os_str(),
            ],
        )
        .await
        .map(drop)
    }
}

/// [`Repo::commit_all`] for a worktree of any repository (a pod's clone).
pub async fn commit_all(worktree: &Path, message: &str) -> Result<bool, GitError> {
    commit_at(At::Dir(worktree), message).await
}

/// Commits everything in a work tree, with no hook (its commands would be
/// the desk's).
async fn commit_at(at: At<'_>, message: &str) -> Result<bool, GitError> {
    remove_stale_index_lock(at);
    git_ok_at(at, ["add", "-A"]).await?;
    let mut signed = true;
    let mut identity = false;
    let worktree = match at {
        At::Dir(d) => d,
        At::Desk { worktree, .. } => worktree,
    };
    loop {
        let mut args: Vec<&str> = Vec::new();
        if identity {
            args.extend(FALLBACK_IDENTITY);
        }
        if !signed {
            args.extend(["-c", "commit.gpgsign=false"]);
        }
        // Many of these commits end at once in parallel worktrees; the
        // maintenance git would start after each runs once, at the run's end.
        args.extend(["-c", "maintenance.auto=false"]);
        args.extend(["commit", "-q", "--no-verify", "-m", message]);
        let out = git_at(at, &args).await?;
        if out.code == 0 {
            return Ok(true);
        }
        let text = format!("{}{}", out.stdout, out.stderr);
        if text.contains("nothing to commit") || text.contains("nothing added to commit") {
            return Ok(false);
        }
        if is_identity_error(&text) && !identity {
            identity = true;
            continue;
        }
        if signed {
            tracing::warn!(worktree = %worktree.display(), "commit failed, retrying unsigned: {}", text.trim());
            signed = false;
            continue;
        }
        return Err(GitError::Failed {
            args: args.join(" "),
            status: format!("exit {}", out.code),
            stderr: text.trim().to_string(),
        });
    }
}
