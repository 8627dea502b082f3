//! A host made ready for attempts: where they work there, and a baton
//! binary of this very build (copied on first use, named by its hash, so
//! hosts never run another version by mistake), or the one the plan names.

use crate::ssh::{quote, Target};
use anyhow::{anyhow, bail, Context};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// A host, ready.
#[derive(Debug, Clone, PartialEq)]
pub struct Ready {
    /// Where its attempts work: `<base>/runs/<run>/<task>-<n>`.
    pub base: String,
    /// baton there.
    pub baton: String,
}

/// The shell expression of the host's working directory.
pub fn base_expr(dir: Option<&str>) -> String {
    match dir {
        Some(d) if d.starts_with('/') => quote(d),
        Some(d) => format!("\"$HOME\"/{}", quote(d.trim_start_matches("~/"))),
        None => "\"$HOME\"/.cache/baton".to_string(),
    }
}

/// What `probe` found there.
#[derive(Debug)]
pub struct Probe {
    pub base: String,
    /// `uname -sm`.
    pub system: String,
    pub git: Option<String>,
    /// baton's path there, if it is there.
    pub baton: Option<String>,
}

/// One round trip: the working directory (made), the system, git, and
/// whether `baton` (a path, or a name on its PATH) is there.
pub async fn probe(t: &Target, baton: &str) -> anyhow::Result<Probe> {
    // Each answer tagged: a login shell's own words do not shift them.
    let script = format!(
        "umask 077; b={base}; mkdir -p \"$b/bin\" && cd \"$b\" && echo \"baton-base=$(pwd -P)\"; \
         echo \"baton-system=$(uname -sm)\"; echo \"baton-git=$(git --version 2>/dev/null)\"; \
         echo \"baton-found=$(command -v {baton} 2>/dev/null)\"",
        base = base_expr(t.host.dir.as_deref()),
        baton = quote(baton),
    );
    let out = t.run(&script).await?;
    let said = |tag: &str| {
        let tag = format!("baton-{tag}=");
        let line = out
            .lines()
            .find_map(|l| l.trim().strip_prefix(tag.as_str()));
        line.unwrap_or_default().trim().to_string()
    };
    let (base, system, git, found) = (said("base"), said("system"), said("git"), said("found"));
    if base.is_empty() {
        bail!("{}: cannot make its working directory", t.host.name);
    }
    Ok(Probe {
        base,
        system,
        git: Some(git).filter(|g| !g.is_empty()),
        baton: Some(found).filter(|b| !b.is_empty()),
    })
}

/// This binary's SHA-256, worked out once per build (kept beside the
/// masters' sockets, by size and time).
pub fn own_hash() -> anyhow::Result<(PathBuf, String)> {
    use sha2::Digest;
    let exe = std::env::current_exe().context("cannot find baton's own binary")?;
    let meta = std::fs::metadata(&exe).with_context(|| format!("cannot read {}", exe.display()))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let cache = crate::ssh::control_dir()?.join(format!("exe-{}-{mtime}.sha256", meta.len()));
    if let Ok(h) = std::fs::read_to_string(&cache) {
        if h.trim().len() == 64 {
            return Ok((exe, h.trim().to_string()));
        }
    }
    let mut file =
        std::fs::File::open(&exe).with_context(|| format!("cannot read {}", exe.display()))?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher)
        .with_context(|| format!("cannot read {}", exe.display()))?;
    let hash: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let _ = std::fs::write(&cache, &hash);
    Ok((exe, hash))
}

/// Whether a binary of this build runs on a host of `system` (`uname -sm`).
pub fn runs_on(system: &str) -> bool {
    let mut words = system.split_whitespace();
    let (os, arch) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    let os = if os == "Darwin" { "macos" } else { os };
    let arch = match arch {
        "arm64" => "aarch64",
        "amd64" => "x86_64",
        a => a,
    };
    os.eq_ignore_ascii_case(std::env::consts::OS) && arch == std::env::consts::ARCH
}

/// The host ready, as an earlier attempt of the run found it (remembered
/// beside the run's master connection: one round trip less an attempt),
/// else as [`ready_now`] makes it.
pub async fn ready(t: &Target, named: Option<&str>) -> anyhow::Result<Ready> {
    // Remembered for this build, this host's `dir` and the plan's baton
    // (a resumed run may be another build's, two hosts one address).
    let own = match named {
        Some(_) => String::new(),
        None => {
            let (_, hash) = tokio::task::spawn_blocking(own_hash)
                .await
                .context("hashing baton's binary failed")??;
            hash
        }
    };
    let key = format!("{own}|{:?}|{named:?}", t.host.dir);
    let path = t.beside("ready");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let lines: Vec<&str> = text.lines().collect();
        if let [k, base, baton] = lines.as_slice() {
            if *k == key {
                return Ok(Ready {
                    base: base.to_string(),
                    baton: baton.to_string(),
                });
            }
        }
    }
    let r = ready_now(t, named).await?;
    let _ = std::fs::write(&path, format!("{key}\n{}\n{}\n", r.base, r.baton));
    Ok(r)
}

/// Forgets what [`ready`] remembered (its baton is gone there).
pub fn forget(t: &Target) {
    let _ = std::fs::remove_file(t.beside("ready"));
}

/// The status of an attempt's command when the host's baton is not there.
pub const MISSING: i32 = 86;

/// The host ready now: the plan's baton there, else this build's, copied
/// unless a copy of the same hash is there.
async fn ready_now(t: &Target, named: Option<&str>) -> anyhow::Result<Ready> {
    if let Some(b) = named {
        let p = probe(t, b).await?;
        let baton = p
            .baton
            .ok_or_else(|| anyhow!("{}: executor.baton {b:?} is not there", t.host.name))?;
        return Ok(Ready {
            base: p.base,
            baton,
        });
    }
    let (exe, hash) = tokio::task::spawn_blocking(own_hash)
        .await
        .context("hashing baton's binary failed")??;
    let name = format!("bin/baton-{}", &hash[..16]);
    let p = probe(t, &format!("./{name}")).await?;
    let path = format!("{}/{name}", p.base);
    if p.baton.is_none() {
        if !runs_on(&p.system) {
            bail!(
                "{} is {}, and this baton is built for {} {}: install baton there and name it in executor.baton",
                t.host.name,
                p.system,
                std::env::consts::OS,
                std::env::consts::ARCH
            );
        }
        copy(t, &exe, &path, &hash).await?;
    }
    Ok(Ready {
        base: p.base,
        baton: path,
    })
}

/// Copies `exe` to `path` there (through a name of its own, so attempts
/// that start at once never run a half-written binary), checked by hash.
async fn copy(t: &Target, exe: &Path, path: &str, hash: &str) -> anyhow::Result<()> {
    eprintln!("baton: copying baton to {} ({path})", t.host.name);
    let script = format!(
        "set -e; p={p}; t=\"$p.$$\"; cat > \"$t\"; chmod 755 \"$t\"; \
         h=$( (sha256sum \"$t\" 2>/dev/null || shasum -a 256 \"$t\") | cut -c1-64); \
         if [ \"$h\" = {hash} ]; then mv -f \"$t\" \"$p\"; else rm -f \"$t\"; echo \"$h\"; exit 3; fi",
        p = quote(path),
    );
    let mut child = t
        .command(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run ssh")?;
    let mut stdin = child.stdin.take().context("ssh has no stdin")?;
    let mut file = tokio::fs::File::open(exe).await?;
    let sent = tokio::io::copy(&mut file, &mut stdin).await;
    drop(stdin);
    let out = child.wait_with_output().await?;
    match (sent, out.status.code()) {
        (Ok(_), Some(0)) => Ok(()),
        (_, Some(3)) => bail!(
            "{}: the copy of baton has another hash ({}) than this one ({hash})",
            t.host.name,
            String::from_utf8_lossy(&out.stdout).trim()
        ),
        (Err(e), _) => bail!("cannot copy baton to {}: {e}", t.host.name),
        (_, code) => bail!(
            "cannot copy baton to {}: {}",
            t.host.name,
            crate::ssh::said(&out.stderr, code)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_working_directory_is_under_the_remote_home_unless_absolute() {
        assert_eq!(base_expr(None), "\"$HOME\"/.cache/baton");
        assert_eq!(base_expr(Some("/srv/b")), "'/srv/b'");
        assert_eq!(base_expr(Some("~/w x")), "\"$HOME\"/'w x'");
    }

    #[test]
    fn this_build_runs_on_its_own_system_only() {
        let own = format!("{} {}", std::env::consts::OS, std::env::consts::ARCH);
        assert!(runs_on(&own));
        assert!(!runs_on("Darwin arm64") || std::env::consts::OS == "macos");
        assert!(!runs_on("Plan9 mips"));
    }
}
