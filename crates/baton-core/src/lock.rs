//! One process drives a run at a time: it holds an exclusive flock on the
//! run's lock file, which the kernel releases however the process ends.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;

pub struct RunLock {
    _file: File,
}

pub enum LockState {
    /// Nobody drives the run.
    Free,
    /// A live process holds it; its pid as written in the file, if readable.
    Held(Option<u32>),
}

fn open(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

fn try_flock(f: &File) -> bool {
    // SAFETY: flock on a valid, owned file descriptor.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

impl RunLock {
    /// Takes the lock, or says who has it.
    pub fn acquire(path: &Path) -> std::io::Result<Result<RunLock, Option<u32>>> {
        let mut f = open(path)?;
        if !try_flock(&f) {
            return Ok(Err(read_pid(path)));
        }
        f.set_len(0)?;
        write!(f, "{}", std::process::id())?;
        Ok(Ok(RunLock { _file: f }))
    }
}

/// An exclusive flock held until dropped, for a few quick steps that
/// several processes must not interleave (the warm pool's markers).
pub struct Held {
    _file: File,
}

/// Waits for the exclusive lock on `path` (made if missing).
pub fn hold(path: &Path) -> std::io::Result<Held> {
    let f = open(path)?;
    // SAFETY: flock on a valid, owned file descriptor; the kernel drops
    // the lock with the descriptor.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Held { _file: f })
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether some process drives the run now.
pub fn probe(path: &Path) -> LockState {
    let Ok(f) = OpenOptions::new().read(true).write(true).open(path) else {
        return LockState::Free;
    };
    if try_flock(&f) {
        // SAFETY: unlocking our own descriptor.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
        LockState::Free
    } else {
        LockState::Held(read_pid(path))
    }
}
