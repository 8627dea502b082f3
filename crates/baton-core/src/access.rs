//! Tokens, and the local user's own. Every request to `baton serve` (its
//! API, its MCP endpoint) needs a token, on loopback too: any process of
//! the machine can reach loopback, a sandboxed agent with the network on
//! among them. The user's own commands and browser use the local token, a
//! file only the user can read, in a directory every sandbox hides
//! ([`local_token_dir`]). Tokens are stored as their SHA-256, never as
//! themselves.

use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

/// A new random token (32 bytes, hex).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    if !filled {
        // No /dev/urandom: time and address entropy, hashed.
        let seed = format!(
            "{:?}{:p}{}",
            std::time::SystemTime::now(),
            &bytes,
            std::process::id()
        );
        bytes.copy_from_slice(&Sha256::digest(seed.as_bytes()));
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the store keeps of a token.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.trim().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where the local token lives: `$XDG_RUNTIME_DIR/baton` (the user's own
/// runtime directory), else `baton-user-<uid>` in the temporary directory.
/// Every sandbox lays an empty directory over it (and its /tmp is private).
pub fn local_token_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() && dir.is_dir() => dir.join("baton"),
        _ => std::env::temp_dir().join(format!("baton-user-{}", uid())),
    }
}

/// Where `baton serve` keeps the keys it signs with, one directory per
/// repository: `$XDG_STATE_HOME/baton/keys` (default
/// `~/.local/state/baton/keys`), kept across restarts, readable by this
/// user only. Every sandbox lays an empty directory over it.
pub fn keys_dir() -> PathBuf {
    keys_dirs().remove(0)
}

/// Every place a baton of this user may keep its keys, the one it uses
/// first: a sandbox hides them all (a server started with another
/// `XDG_STATE_HOME` than `baton run` keeps them in the other).
pub fn keys_dirs() -> Vec<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let mut out = Vec::new();
    out.extend(var("XDG_STATE_HOME").map(|s| s.join("baton/keys")));
    out.extend(var("HOME").map(|h| h.join(".local/state/baton/keys")));
    out.dedup();
    if out.is_empty() {
        out.push(std::env::temp_dir().join(format!("baton-keys-{}", uid())));
    }
    out
}

fn uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The local user's token, made the first time it is asked for.
/// Makes `dir` (and what is missing above it) a directory only this user
/// can enter, or checks that it is one: in a shared /tmp someone else could
/// have made it first, or put a link there.
pub fn private_dir(dir: &std::path::Path) -> Result<(), String> {
    let say = |what: &str, e: std::io::Error| format!("{what} {}: {e}", dir.display());
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(say("cannot make", e)),
    }
    let m = std::fs::symlink_metadata(dir).map_err(|e| say("cannot look at", e))?;
    if m.file_type().is_symlink() || !m.is_dir() || m.uid() != uid() {
        return Err(format!(
            "{} is not a directory of this user's; remove it, and baton makes its own",
            dir.display()
        ));
    }
    if m.permissions().mode() & 0o077 != 0 {
        let private = std::fs::Permissions::from_mode(0o700);
        std::fs::set_permissions(dir, private).map_err(|e| say("cannot make private", e))?;
    }
    Ok(())
}

pub fn local_token() -> Result<String, String> {
    let dir = local_token_dir();
    let say = |what: &str, e: std::io::Error| format!("{what} {}: {e}", dir.display());
    private_dir(&dir)?;
    let file = dir.join("local-token");
    if let Ok(text) = std::fs::read_to_string(&file) {
        let token = text.trim();
        if token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(token.to_string());
        }
    }
    let token = new_token();
    // Written beside, then renamed: a reader never sees half a token.
    let part =
        write_beside(&file, &token).map_err(|e| say("cannot write the local token in", e))?;
    std::fs::rename(&part, &file).map_err(|e| say("cannot write the local token in", e))?;
    // Two made at once: the one that stayed is everyone's.
    std::fs::read_to_string(&file)
        .map(|t| t.trim().to_string())
        .map_err(|e| say("cannot read the local token in", e))
}

/// Writes `text`, synced, to a new file beside `file` that only this user
/// can read; its path, to put in place.
fn write_beside(file: &std::path::Path, text: &str) -> std::io::Result<PathBuf> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let part = file.with_file_name(format!(".{name}.{}.{n}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&part)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(part)
}

/// A kept key is text of at least this many characters (a token, or a
/// key document in base64url): anything shorter is damaged and replaced.
const MIN_KEY: usize = 32;

/// The key `name` kept in `dir` (a private directory), made by `make` the
/// first time, or when what is there is damaged; two processes racing
/// keep the first one's.
pub fn kept_key(
    dir: &std::path::Path,
    name: &str,
    make: impl FnOnce() -> Result<String, String>,
) -> Result<String, String> {
    let say = |what: &str, e: std::io::Error| format!("{what} {}: {e}", dir.display());
    private_dir(dir)?;
    let file = dir.join(name);
    let read = || {
        std::fs::read_to_string(&file)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| t.len() >= MIN_KEY)
    };
    if let Some(key) = read() {
        return Ok(key);
    }
    let key = make()?;
    if key.len() < MIN_KEY {
        return Err(format!("a key for {} came out too short", file.display()));
    }
    let part = write_beside(&file, &key).map_err(|e| say("cannot write a key in", e))?;
    // Linked, not renamed: a key another process made first stays; a
    // damaged one is replaced.
    let placed = match std::fs::hard_link(&part, &file) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && read().is_none() => {
            std::fs::rename(&part, &file)
        }
        other => other,
    };
    let _ = std::fs::remove_file(&part);
    match placed {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(say("cannot keep a key in", e))
        }
        _ => {}
    }
    read().ok_or_else(|| format!("the key in {} does not read", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_key_is_made_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("secrets");
        let (first, second) = ("1".repeat(40), "2".repeat(40));
        let a = kept_key(&keys, "k", || Ok(first.clone())).unwrap();
        let b = kept_key(&keys, "k", || Ok(second.clone())).unwrap();
        assert_eq!((&a, &b), (&first, &first));
        // A damaged key (cut short) is replaced, not used.
        std::fs::write(keys.join("k"), "").unwrap();
        assert_eq!(kept_key(&keys, "k", || Ok(second.clone())).unwrap(), second);
        assert!(kept_key(&keys, "short", || Ok("x".into())).is_err());
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&keys), 0o700);
        assert_eq!(mode(&keys.join("k")), 0o600);
        assert!(kept_key(&keys, "other", || Err("no".into())).is_err());
    }

    #[test]
    fn tokens_are_random_hex_and_stored_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(hash_token(&a), hash_token(&format!(" {a}\n")));
        assert_ne!(hash_token(&a), a);
    }
}
