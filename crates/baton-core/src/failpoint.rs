//! Crash points for tests of resume: with `BATON_FAILPOINT=<name>` (or
//! `<name>@<n>` for its n-th pass) baton kills itself with SIGKILL when it
//! gets there, exactly as `kill -9` would at that moment. Unset, a pass costs
//! one environment lookup.

use std::sync::atomic::{AtomicU32, Ordering};

static PASSES: AtomicU32 = AtomicU32::new(0);

/// Dies here if the environment asks for it.
pub(crate) fn hit(name: &str) {
    let Some(want) = std::env::var_os("BATON_FAILPOINT") else {
        return;
    };
    let want = want.to_string_lossy();
    let (point, nth) = match want.split_once('@') {
        Some((p, n)) => (p, n.parse().unwrap_or(1)),
        None => (want.as_ref(), 1),
    };
    if point != name {
        return;
    }
    if PASSES.fetch_add(1, Ordering::SeqCst) + 1 == nth {
        tracing::warn!("failpoint {name}: dying as kill -9 would");
        // SAFETY: signalling this process itself.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}
