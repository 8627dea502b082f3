//! The warm pool (`[workspace] pool`): prepared worktrees kept for the
//! repository across runs: checked out, setup done, ignored files (such as
//! `node_modules` or `target/`) kept. A starting task takes one and switches
//! it to its own branch (git writes only what differs), and runs setup
//! again only when the setup's key changed: its commands, `sparse`, or the
//! contents of `setup_inputs`.
//!
//! Several baton processes share one pool, so it lives in the filesystem:
//! a slot is a directory `<pool>/<name>` beside a marker file:
//! `<name>.ready` (free; holds the setup key it was prepared with) or
//! `<name>.building-<pid>` (being made). Taking a slot renames its marker
//! away, and a rename has one winner. A slot only ever enters the pool
//! from a task whose work is committed and merged (or from a fresh
//! checkout), and is reset before it is handed out. Every change of a
//! marker, and the sweep's reading of them all, holds `<pool>/.lock`: a
//! sweep reading the markers one kind after another would otherwise miss
//! a slot that moved from one kind to the next meanwhile, and remove a
//! task's desk under it.

use super::workspace::pid_alive;
use crate::engine::messages::WorkerCmd;
use crate::engine::process::gates::{self, GateResult, Kind};
use crate::engine::process::supervise::Output;
use crate::engine::shared::Shared;
use crate::git::{git, GitError, Repo};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

pub(crate) struct Pool {
    dir: PathBuf,
    size: usize,
    /// Where this run's slots are checked out: the commit the run started
    /// from, which the next run most likely starts from too (then a task
    /// takes a slot without checking anything out).
    commit: String,
    /// Set when the run ends: the refill stops (a done task's worktree is
    /// a better slot than one half made), its setup with it.
    stopping: std::sync::atomic::AtomicBool,
    setup_stop: std::sync::Mutex<Option<UnboundedSender<WorkerCmd>>>,
}

const READY: &str = ".ready";
const TASK: &str = ".task";

impl Pool {
    pub fn new(worktrees: &Path, size: usize, commit: &str) -> Pool {
        Pool {
            dir: worktrees.join(".pool"),
            size,
            commit: commit.to_string(),
            stopping: Default::default(),
            setup_stop: Default::default(),
        }
    }

    /// Stops the refill: no new slot is started, and the setup going on is
    /// stopped (its slot is removed).
    pub fn stop_refill(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut tx) = self.setup_stop.lock() {
            if let Some(tx) = tx.take() {
                let _ = tx.send(WorkerCmd::Shutdown);
            }
        }
    }

    /// The pool's lock, held while markers change or are read as a whole;
    /// None only when the pool's directory cannot be written (then nothing
    /// else works either, and says so).
    fn lock(&self) -> Option<crate::lock::Held> {
        lock_dir(&self.dir)
    }

    fn stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A free slot's worktree, taken; None when the pool is empty.
    pub fn take(&self) -> Option<PathBuf> {
        let pid = std::process::id();
        let _held = self.lock();
        for name in self.marked(READY) {
            let ready = self.dir.join(format!("{name}{READY}"));
            let taken = self.dir.join(format!("{name}.taken-{pid}"));
            if std::fs::rename(&ready, &taken).is_err() {
                continue; // another process won it
            }
            let path = self.dir.join(&name);
            if path.join(".git").exists() {
                // The marker stays until the worktree has moved out
                // ([`taken`]), so a sweep meanwhile leaves it alone.
                return Some(path);
            }
            let _ = std::fs::remove_file(&taken);
        }
        None
    }

    /// Slot names with a marker ending in `suffix`.
    fn marked(&self, suffix: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.strip_suffix(suffix).map(str::to_string)
            })
            .collect();
        names.sort();
        names
    }

    /// How many more slots the pool wants (ready and being made count).
    fn wanted(&self) -> usize {
        let _held = self.lock();
        let building = self
            .marked_any(".building-")
            .into_iter()
            .filter(|(_, pid)| pid_alive(*pid))
            .count();
        self.size
            .saturating_sub(self.marked(READY).len() + building)
    }

    /// (slot name, pid) of markers `<name><infix><pid>`.
    fn marked_any(&self, infix: &str) -> Vec<(String, u32)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                let (name, pid) = n.split_once(infix)?;
                Some((name.to_string(), pid.parse().ok()?))
            })
            .collect()
    }

    /// Where a task's new desk goes when the pool is on: beside the pool's
    /// worktrees, so that it can join them later without moving.
    pub fn new_desk(&self) -> PathBuf {
        let name = new_name();
        let _ = std::fs::create_dir_all(&self.dir);
        let _held = self.lock();
        let _ = std::fs::write(self.dir.join(format!("{name}{TASK}")), "");
        self.dir.join(name)
    }

    /// Whether the pool has room for one more slot.
    pub fn has_room(&self) -> bool {
        self.wanted() > 0
    }

    /// Puts a done task's worktree (its work merged, on its branch) into
    /// the pool: detached at the pool's commit, tracked changes reset and
    /// untracked files removed, ignored ones kept (its setup key goes with
    /// it).
    pub async fn put_back(&self, repo: &Repo, worktree: &Path) -> Result<(), GitError> {
        // A desk made in the pool stays where it is; another one moves in.
        let here = worktree.parent() == Some(self.dir.as_path());
        let name = match (here, worktree.file_name()) {
            (true, Some(n)) => n.to_string_lossy().into_owned(),
            _ => new_name(),
        };
        let path = self.dir.join(&name);
        let building = self.start_building(&name).map_err(|e| {
            GitError::Other(format!(
                "cannot write to the pool {}: {e}",
                self.dir.display()
            ))
        })?;
        let res = async {
            if !here {
                repo.move_worktree(worktree, &path).await?;
            }
            repo.checkout_detached(&path, &self.commit).await
        }
        .await;
        self.finish_building(&name, &building, res.is_ok());
        res
    }

    /// Marks slot `name` as being made by this process (a task's marker
    /// it had goes): the `building` marker, to hand to [`Self::finish_building`].
    fn start_building(&self, name: &str) -> std::io::Result<PathBuf> {
        let building = self.marker(name, "building");
        std::fs::create_dir_all(&self.dir)?;
        let _held = self.lock();
        std::fs::write(&building, "")?;
        let _ = std::fs::remove_file(self.dir.join(format!("{name}{TASK}")));
        Ok(building)
    }

    fn marker(&self, name: &str, what: &str) -> PathBuf {
        self.dir
            .join(format!("{name}.{what}-{}", std::process::id()))
    }

    /// Ends making slot `name`: ready, or its marker gone (the next
    /// refill removes what is left of it).
    fn finish_building(&self, name: &str, building: &Path, ok: bool) {
        let ready = self.dir.join(format!("{name}{READY}"));
        let _held = self.lock();
        if !(ok && std::fs::rename(building, ready).is_ok()) {
            let _ = std::fs::remove_file(building);
        }
    }

    /// Slots left half-made by a process that died, or not ours any more:
    /// their directories go (git's metadata with the next prune).
    async fn sweep(&self, repo: &Repo) {
        let gone = self.unheld();
        for dir in &gone {
            let _ = tokio::fs::remove_dir_all(dir).await;
        }
        if !gone.is_empty() {
            let _ = git(&repo.root, ["worktree", "prune"]).await;
        }
    }

    /// The slot directories no marker holds (markers of dead processes are
    /// removed on the way), read under the lock: a directory found here is
    /// nobody's, and nobody can take it any more (taking needs a marker).
    fn unheld(&self) -> Vec<PathBuf> {
        let _held = self.lock();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let held = |infix| {
            self.marked_any(infix)
                .into_iter()
                .filter(|(_, pid)| pid_alive(*pid))
                .map(|(n, _)| n)
        };
        let live: Vec<String> = self
            .marked(READY)
            .into_iter()
            .chain(self.marked(TASK))
            .chain(held(".building-"))
            .chain(held(".taken-"))
            .collect();
        let mut gone = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if !live.contains(&name) {
                    gone.push(e.path());
                }
            } else if let Some((_, pid)) = name
                .split_once(".building-")
                .or_else(|| name.split_once(".taken-"))
            {
                if pid.parse().is_ok_and(|p| !pid_alive(p)) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        gone
    }
}

/// The lock of the pool in `dir`.
fn lock_dir(dir: &Path) -> Option<crate::lock::Held> {
    match crate::lock::hold(&dir.join(".lock")) {
        Ok(held) => Some(held),
        Err(e) => {
            tracing::warn!("cannot lock the pool {}: {e}", dir.display());
            None
        }
    }
}

/// A slot taken by this process is a task's desk now (`<name>.task`),
/// which no sweep touches, until it goes back to the pool or is removed
/// (`baton clean` removes the marker with it; a desk may be marked before
/// git has made it, so a sweep cannot tell a stale marker).
pub(crate) fn claim(slot: &Path) {
    let taken = format!("{}.taken-{}", slot.display(), std::process::id());
    let _held = slot.parent().and_then(lock_dir);
    let _ = std::fs::rename(taken, format!("{}{TASK}", slot.display()));
}

/// A task's desk in the pool's place is gone: its marker goes too, or it
/// would stand for a slot that no longer exists. Nothing for a desk
/// elsewhere (it has no marker).
pub(crate) fn forget(desk: &Path) {
    let marker = PathBuf::from(format!("{}{TASK}", desk.display()));
    if marker.exists() {
        let _held = desk.parent().and_then(lock_dir);
        let _ = std::fs::remove_file(marker);
    }
}

/// Fills the pool up to its size in the background: a new worktree at
/// `commit` (sparse as configured), setup done in it.
pub(crate) async fn refill(sh: Arc<Shared>, pool: Arc<Pool>) {
    let commit = pool.commit.clone();
    pool.sweep(&sh.repo).await;
    loop {
        // Tasks that are making their worktrees go first.
        while sh.starting_tasks.load(std::sync::atomic::Ordering::SeqCst) > 0 && !pool.stopping() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        if !pool.has_room() || pool.stopping() {
            return;
        }
        let name = new_name();
        let path = pool.dir.join(&name);
        let Ok(building) = pool.start_building(&name) else {
            return;
        };
        let ws = &sh.plan.workspace;
        let made = sh
            .repo
            .add_detached_worktree(&path, &commit, &ws.sparse)
            .await;
        let ok = match made {
            Ok(()) => {
                note_sparse(&sh.repo, &path, &ws.sparse);
                prepare(&sh, &pool, &path, &commit).await
            }
            Err(e) => {
                tracing::warn!("cannot add a worktree to the pool: {e}");
                false
            }
        };
        if !ok && path.exists() {
            let _ = sh.repo.remove_worktree(&path).await;
        }
        pool.finish_building(&name, &building, ok);
        if !ok {
            return;
        }
    }
}

/// Setup in a new pool worktree at `commit` (its output in the run's pool
/// log), and the key it was done for.
async fn prepare(sh: &Shared, pool: &Pool, path: &Path, commit: &str) -> bool {
    let ws = &sh.plan.workspace;
    if pool.stopping() {
        return false;
    }
    if ws.setup.is_empty() {
        return true;
    }
    let (tx, mut cmds) = tokio::sync::mpsc::unbounded_channel();
    if let Ok(mut stop) = pool.setup_stop.lock() {
        *stop = Some(tx);
    }
    let env = vec![("PWD".into(), path.as_os_str().to_os_string())];
    let jail = match crate::engine::process::jail::for_checks(sh) {
        Some(spec) => {
            let name = format!(
                "pool-{}",
                path.file_name().unwrap_or_default().to_string_lossy()
            );
            match crate::engine::process::jail::check_jail(sh, &spec, &name, None, None, path, &env)
                .await
            {
                Ok(j) => Some(j),
                Err(e) => {
                    tracing::warn!("pool: {e}");
                    return false;
                }
            }
        }
        None => None,
    };
    let run = gates::GateRun {
        kind: Kind::Setup,
        task: None,
        attempt: None,
        gates: &ws.setup,
        worktree: path,
        output: Output::Log(sh.paths.run_dir(&sh.run_id).join("logs").join("pool.log")),
        timeout: ws.setup_timeout,
        env: &env,
        jail: jail.as_ref(),
        unset: &[],
    };
    let passed = matches!(gates::run_all(sh, run, &mut cmds).await, GateResult::Passed);
    if !passed || pool.stopping() {
        return false;
    }
    write_key(&sh.repo, path, &setup_key(sh, commit).await);
    true
}

/// Records the setup key a worktree's setup was done for.
pub(crate) fn write_key(repo: &Repo, worktree: &Path, key: &str) {
    if let Some(f) = key_file(repo, worktree) {
        let _ = std::fs::write(f, key);
    }
}

/// Where a worktree's sparse directories are noted (none: all of the tree).
fn sparse_file(repo: &Repo, worktree: &Path) -> Option<PathBuf> {
    Some(key_file(repo, worktree)?.with_file_name("baton-sparse"))
}

/// Notes the sparse directories a worktree was made with.
pub(crate) fn note_sparse(repo: &Repo, worktree: &Path, dirs: &[String]) {
    if let Some(f) = sparse_file(repo, worktree) {
        let _ = std::fs::write(f, dirs.join("\n"));
    }
}

/// A warm worktree made with other sparse directories than the plan's
/// now gets the plan's (or all of the tree).
pub(crate) async fn match_sparse(
    repo: &Repo,
    repo_worktree: &Path,
    dirs: &[String],
) -> Result<(), GitError> {
    let had = sparse_file(repo, repo_worktree)
        .and_then(|f| std::fs::read_to_string(f).ok())
        .unwrap_or_default();
    let had: Vec<String> = had
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if had == dirs {
        return Ok(());
    }
    if dirs.is_empty() {
        repo.in_desk_ok(repo_worktree, ["sparse-checkout", "disable"])
            .await?;
    } else {
        let mut args = vec!["sparse-checkout", "set", "--cone", "--"];
        args.extend(dirs.iter().map(String::as_str));
        repo.in_desk_ok(repo_worktree, &args).await?;
    }
    note_sparse(repo, repo_worktree, dirs);
    Ok(())
}

/// The setup key a worktree's setup was done for, if any.
pub(crate) fn read_key(repo: &Repo, worktree: &Path) -> Option<String> {
    std::fs::read_to_string(key_file(repo, worktree)?).ok()
}

/// What a worktree's setup depends on at `commit`: the setup commands, the
/// sparse directories, and the blobs of `setup_inputs` there. Two commits
/// with the same key need no new setup.
pub(crate) async fn setup_key(sh: &Shared, commit: &str) -> String {
    use std::hash::{Hash, Hasher};
    let ws = &sh.plan.workspace;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&ws.setup, &ws.sparse).hash(&mut h);
    if !ws.setup_inputs.is_empty() {
        let mut args = vec!["ls-tree", "-r", commit, "--"];
        args.extend(ws.setup_inputs.iter().map(String::as_str));
        match git(&sh.repo.root, &args).await {
            Ok(out) => out.stdout.hash(&mut h),
            Err(_) => commit.hash(&mut h),
        }
    }
    format!("{:016x}", h.finish())
}

/// Where a worktree's setup key is kept: its own git directory, which
/// moves with it, found from the repository (the worktree's own `.git` is
/// its agent's to rewrite).
fn key_file(repo: &Repo, worktree: &Path) -> Option<PathBuf> {
    Some(repo.desk_git_dir(worktree)?.join("baton-setup-key"))
}

fn new_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "w{}-{}-{}",
        std::process::id(),
        crate::clock::now_ms(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_taker_wins_a_slot_and_an_empty_pool_gives_none() {
        let root = std::env::temp_dir().join(format!("baton-pool-{}", std::process::id()));
        let pool = Pool::new(&root, 2, "c0");
        assert!(pool.take().is_none());
        assert_eq!(pool.wanted(), 2);
        std::fs::create_dir_all(pool.dir.join("a/.git")).unwrap();
        std::fs::write(pool.dir.join("a.ready"), "").unwrap();
        assert_eq!(pool.wanted(), 1);
        assert_eq!(pool.take(), Some(pool.dir.join("a")));
        assert!(pool.take().is_none(), "taken once");
        // A marker of a process that is gone does not count as being made.
        std::fs::write(pool.dir.join("b.building-999999999"), "").unwrap();
        assert_eq!(pool.wanted(), 2);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_desk_that_goes_takes_its_marker_with_it() {
        let root = std::env::temp_dir().join(format!("baton-pool-forget-{}", std::process::id()));
        let pool = Pool::new(&root, 1, "c0");
        let desk = pool.new_desk();
        let marker = PathBuf::from(format!("{}.task", desk.display()));
        assert!(marker.exists(), "a new desk is marked");
        forget(&desk);
        assert!(!marker.exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_sweep_never_takes_a_slot_that_moves_from_one_marker_to_the_next() {
        let root = std::env::temp_dir().join(format!("baton-pool-sweep-{}", std::process::id()));
        let pool = std::sync::Arc::new(Pool::new(&root, 1, "c0"));
        std::fs::create_dir_all(pool.dir.join("a/.git")).unwrap();
        std::fs::write(pool.dir.join("a.ready"), "").unwrap();
        let mover = {
            let pool = pool.clone();
            std::thread::spawn(move || {
                // ready -> taken -> task -> building -> ready, as tasks do.
                for _ in 0..3000 {
                    let slot = pool.take().expect("the slot is free");
                    claim(&slot);
                    assert!(pool.dir.join("a.task").exists(), "claimed");
                    let building = pool.start_building("a").unwrap();
                    pool.finish_building("a", &building, true);
                }
            })
        };
        let mut sweeps = 0;
        while !mover.is_finished() {
            let gone = pool.unheld();
            assert!(
                gone.is_empty(),
                "swept a held slot after {sweeps} sweeps: {gone:?}"
            );
            sweeps += 1;
        }
        mover.join().unwrap();
        std::fs::remove_dir_all(&root).unwrap();
    }
}
