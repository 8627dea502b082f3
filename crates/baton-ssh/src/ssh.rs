//! The system `ssh` client, one host at a time: the user's keys, agent and
//! ssh_config (or the plan's `ssh_config`), never a password prompt
//! (`BatchMode`). Every command goes through one master connection per
//! host (`ControlMaster`), which baton starts in a session of its own: so a
//! stop or a follower's end does not cut the other attempts' streams, and
//! it ends by itself a minute after its last use (or at the run's end).

use anyhow::{anyhow, Context};
use baton_core::plan::{Ssh, SshHost};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// How long a master outlives its last client.
const PERSIST: &str = "60";

/// One host, as `ssh` is told to reach it.
pub struct Target {
    pub host: SshHost,
    config: Option<String>,
    /// The master's socket.
    control: PathBuf,
}

/// The directory of the masters' sockets and locks (short: a socket's
/// path has about 100 bytes).
pub fn control_dir() -> anyhow::Result<PathBuf> {
    // SAFETY: getuid(2) cannot fail.
    let uid = unsafe { libc::getuid() };
    let dir = std::env::temp_dir().join(format!("baton-ssh-{uid}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot make {}", dir.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot keep {} to yourself", dir.display()))?;
    Ok(dir)
}

/// `s` as one word of a POSIX shell (and of fish, zsh and bash alike).
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Target {
    /// The host, for `scope` (a run's id): each run has a master of its
    /// own, which its end closes without cutting another run's.
    pub fn new(ssh: &Ssh, host: &SshHost, scope: &str) -> anyhow::Result<Target> {
        let key = {
            use sha2::Digest;
            let who = format!(
                "{scope}|{:?}|{:?}|{:?}|{:?}",
                ssh.config, host.host, host.user, host.port
            );
            let hash = sha2::Sha256::digest(who.as_bytes());
            hash[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        Ok(Target {
            host: host.clone(),
            config: ssh.config.clone(),
            control: control_dir()?.join(key),
        })
    }

    /// `ssh` with baton's options: the master itself, or a client of it
    /// (ssh takes an option's first value, so this comes first).
    fn ssh(&self, master: bool) -> Command {
        let mut c = Command::new("ssh");
        match master {
            true => c
                .args(["-o", "ControlMaster=yes", "-o"])
                .arg(format!("ControlPersist={PERSIST}")),
            false => c.args(["-o", "ControlMaster=no"]),
        };
        if let Some(f) = &self.config {
            c.arg("-F").arg(f);
        }
        c.args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]);
        c.args(["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]);
        c.arg("-o")
            .arg(format!("ControlPath={}", self.control.display()));
        if let Some(u) = &self.host.user {
            c.arg("-l").arg(u);
        }
        if let Some(p) = self.host.port {
            c.arg("-p").arg(p.to_string());
        }
        c.kill_on_drop(true);
        c
    }

    /// A command to run `script` (a POSIX shell script) over there.
    pub fn command(&self, script: &str) -> Command {
        let mut c = self.ssh(false);
        c.arg(&self.host.host)
            .arg("--")
            .arg(format!("sh -c {}", quote(script)));
        c
    }

    /// Runs `script` there: its stdout, or what went wrong.
    pub async fn run(&self, script: &str) -> anyhow::Result<String> {
        self.master().await?;
        stdout_of(self.command(script), &format!("on {}", self.host.name)).await
    }

    /// Asks the master (`ssh -O op`); its stdout.
    pub async fn control(&self, op: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut c = self.ssh(false);
        c.args(["-O", op]).args(args).arg(&self.host.host);
        stdout_of(c, &format!("ssh -O {op}")).await
    }

    /// Removes the master's lock (once it has ended).
    pub fn forget(&self) {
        let _ = std::fs::remove_file(self.control.with_extension("lock"));
        let _ = std::fs::remove_file(self.beside("ready"));
    }

    /// A file of this run's connection to the host, beside its socket.
    pub fn beside(&self, ext: &str) -> PathBuf {
        self.control.with_extension(ext)
    }

    /// Runs `script` there without waiting for it: its ssh goes on (in a
    /// group of its own) after this process ends. For a tidy-up whose
    /// outcome changes nothing (the run's sweep does it again).
    pub fn detach(&self, script: &str) {
        let mut c = self.command(script);
        c.kill_on_drop(false)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = c.spawn();
    }

    /// The master connection, started unless it runs.
    pub async fn master(&self) -> anyhow::Result<()> {
        if self.control("check", &[]).await.is_ok() {
            return Ok(());
        }
        let lock = self.control.with_extension("lock");
        let _held = tokio::task::spawn_blocking(move || baton_core::lock::hold(&lock))
            .await
            .context("the lock's task failed")?
            .context("cannot lock the host's master")?;
        if self.control("check", &[]).await.is_ok() {
            return Ok(());
        }
        let mut c = self.ssh(true);
        c.args(["-N", "-f"])
            .arg(&self.host.host)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: setsid(2) is async-signal-safe. The master leaves the
        // follower's process group, which a stop ends.
        unsafe {
            c.as_std_mut().pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let out = tokio::time::timeout(Duration::from_secs(30), c.output())
            .await
            .map_err(|_| anyhow!("cannot reach {} within 30s", self.host.name))?
            .context("cannot run ssh")?;
        if !out.status.success() {
            return Err(anyhow!(
                "cannot reach {}: {}",
                self.host.name,
                said(&out.stderr, out.status.code())
            ));
        }
        Ok(())
    }
}

/// `c`'s stdout once it succeeded; else what it said, after `what`.
async fn stdout_of(mut c: Command, what: &str) -> anyhow::Result<String> {
    let out = c
        .stdin(Stdio::null())
        .output()
        .await
        .context("cannot run ssh")?;
    if !out.status.success() {
        return Err(anyhow!("{what}: {}", said(&out.stderr, out.status.code())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What an `ssh` that failed said, in a line.
pub fn said(stderr: &[u8], code: Option<i32>) -> String {
    let text = String::from_utf8_lossy(stderr);
    let last = text.lines().rev().find(|l| !l.trim().is_empty());
    match (last, code) {
        (Some(l), _) => l.trim().to_string(),
        (None, Some(c)) => format!("ssh exited with status {c}"),
        (None, None) => "ssh was killed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn a_quoted_word_stays_one_word() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
