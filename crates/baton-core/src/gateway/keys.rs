//! Keys the plan points at rather than holds: a file, or a command that
//! prints the key (a password manager's, a cloud's secret store's), named
//! on `[gateway.accounts.<account>]` or `[gateway.providers.<provider>]`.
//! Read once when a run starts, by baton only: a sandboxed agent cannot
//! read a key file (it is hidden from it), and a key read is masked in
//! everything baton writes.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where a key is read from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeySource {
    /// `key_file`: its first line (`~/` is the home of the user baton runs
    /// as; a relative path is the repository's).
    File(String),
    /// `key_command`: run with `sh -c` in the repository; what it prints.
    Command(String),
}

impl KeySource {
    /// How the plan says it (`key_file "..."`), never the key.
    pub fn describe(&self) -> String {
        match self {
            KeySource::File(f) => format!("key_file {f:?}"),
            KeySource::Command(c) => format!("key_command {c:?}"),
        }
    }
}

/// Why a key source gave no key: `why` never holds what it printed;
/// `detail` is a failed command's error output, which may (a tool that
/// echoes its input) and so is shown to a person, never stored.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyError {
    pub why: String,
    pub detail: Option<String>,
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.why)
    }
}

impl KeyError {
    fn new(why: String) -> KeyError {
        KeyError { why, detail: None }
    }
}

/// The longest a key command may take.
const COMMAND_TIME: Duration = Duration::from_secs(30);

/// The key `source` gives, read now (`repo`: where relative paths and the
/// command start).
pub async fn read_key(source: &KeySource, repo: &Path) -> Result<String, KeyError> {
    let text = match source {
        KeySource::File(f) => {
            let path = file_path(f, repo);
            tokio::fs::read_to_string(&path).await.map_err(|e| {
                KeyError::new(format!("cannot read the key file {}: {e}", path.display()))
            })?
        }
        KeySource::Command(c) => run(c, repo).await?,
    };
    let key = text.lines().next().unwrap_or("").trim().to_string();
    if key.is_empty() {
        let why = format!(
            "{} gave no key (its first line is empty)",
            source.describe()
        );
        return Err(KeyError::new(why));
    }
    Ok(key)
}

/// Where a `key_file` is: `~/` in the home of the user baton runs as, a
/// relative path in the repository.
pub fn file_path(f: &str, repo: &Path) -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match (f.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => repo.join(f),
    }
}

async fn run(command: &str, repo: &Path) -> Result<String, KeyError> {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(repo)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let late = || {
        format!(
            "key_command {command:?} took over {}s",
            COMMAND_TIME.as_secs()
        )
    };
    let out = tokio::time::timeout(COMMAND_TIME, cmd.output())
        .await
        .map_err(|_| KeyError::new(late()))?
        .map_err(|e| KeyError::new(format!("cannot run key_command {command:?}: {e}")))?;
    if !out.status.success() {
        // Its error output may say why; its standard output may be a key.
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(KeyError {
            why: format!("key_command {command:?} failed ({})", out.status),
            detail: Some(err.trim().chars().take(300).collect()),
        });
    }
    String::from_utf8(out.stdout)
        .map_err(|_| KeyError::new(format!("key_command {command:?} printed no text")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_the_first_line_a_file_or_command_gives() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k"), "sk-file\nrest\n").unwrap();
        let file = KeySource::File("k".into());
        assert_eq!(read_key(&file, dir.path()).await.unwrap(), "sk-file");
        let cmd = KeySource::Command("printf ' sk-cmd \\n'".into());
        assert_eq!(read_key(&cmd, dir.path()).await.unwrap(), "sk-cmd");
        let failing = KeySource::Command("printf 'sk-%s' leaked; echo n''ope >&2; exit 3".into());
        let e = read_key(&failing, dir.path()).await.unwrap_err();
        assert!(
            e.why.contains("exit status: 3") && !e.why.contains("nope"),
            "{e:?}"
        );
        assert_eq!(e.detail.as_deref(), Some("nope"), "shown, not stored");
        assert!(!format!("{e:?}").contains("sk-leaked"));
        let empty = KeySource::Command("true".into());
        let e = read_key(&empty, dir.path()).await.unwrap_err();
        assert!(e.why.contains("no key"), "{e}");
        let missing = KeySource::File("absent".into());
        let e = read_key(&missing, dir.path()).await.unwrap_err();
        assert!(e.why.contains("absent"), "{e}");
    }
}
