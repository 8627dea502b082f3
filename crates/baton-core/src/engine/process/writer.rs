//! Where a supervised process's output is written: a log file, or a
//! stream of lines (a remote attempt's own output), with secrets masked.

use crate::secrets::Redactor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// The longest line kept whole; a longer one is written in pieces.
pub(crate) const MAX_LINE: usize = 1024 * 1024;

/// Where a process's output goes.
#[derive(Clone)]
pub(crate) enum Output {
    /// Appended to a log file, stdout and stderr as they come.
    Log(PathBuf),
    /// Line by line to `to`: a remote attempt's own output, which the
    /// baton following it reads as the attempt's stream. Stdout's lines go
    /// as they are when `stdout_as_is` (the agent's stream), every other
    /// line through `tag` (so that it is not taken for the agent's).
    Lines {
        to: mpsc::Sender<String>,
        stdout_as_is: bool,
        tag: fn(&str) -> String,
    },
}

/// Where one pipe's output is written; None: nowhere any more (a write
/// failed).
pub(crate) enum Target {
    File(Option<tokio::fs::File>),
    Lines {
        to: Option<mpsc::Sender<String>>,
        tag: fn(&str) -> String,
        /// Lines go as they are (the agent's stream), except any that
        /// would pass for baton's own (a forged end): those are tagged.
        as_is: bool,
    },
}

/// Writes one pipe's output; with secrets to mask, or to a stream of
/// lines, it goes line by line.
pub(crate) struct LogWriter {
    target: Target,
    redactor: Option<Arc<Redactor>>,
    pending: Vec<u8>,
}

impl LogWriter {
    pub fn new(target: Target, redactor: Option<Arc<Redactor>>) -> LogWriter {
        LogWriter {
            target,
            redactor,
            pending: Vec::new(),
        }
    }

    pub fn redactor(&self) -> Option<&Arc<Redactor>> {
        self.redactor.as_ref()
    }

    pub async fn write(&mut self, chunk: &[u8]) {
        let redactor = self.redactor.clone().filter(|r| !r.is_empty());
        if redactor.is_none() && matches!(self.target, Target::File(_)) {
            self.raw(chunk).await;
            return;
        }
        self.pending.extend_from_slice(chunk);
        while let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=i).collect();
            match &redactor {
                Some(r) => {
                    let text = r.redact(&String::from_utf8_lossy(&line));
                    self.raw(text.as_bytes()).await
                }
                None => self.raw(&line).await,
            }
        }
        if self.pending.len() > MAX_LINE {
            self.flush_pending().await;
        }
    }

    /// Writes what is left and waits until the file has it.
    pub async fn finish(&mut self) {
        self.flush_pending().await;
        if let Target::File(Some(f)) = &mut self.target {
            let _ = f.flush().await;
        }
    }

    async fn flush_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        let text = match &self.redactor {
            Some(r) => r.redact(&text),
            None => text,
        };
        self.raw(text.as_bytes()).await;
    }

    /// Writes bytes as they are, or one line (its end cut) as a line.
    async fn raw(&mut self, bytes: &[u8]) {
        match &mut self.target {
            Target::File(file) => {
                if let Some(f) = file.as_mut() {
                    if f.write_all(bytes).await.is_err() {
                        *file = None;
                    }
                }
            }
            Target::Lines { to, tag, as_is } => {
                let Some(tx) = to.as_ref() else { return };
                let text = String::from_utf8_lossy(bytes);
                let line = text.strip_suffix('\n').unwrap_or(&text);
                let line = line.strip_suffix('\r').unwrap_or(line);
                let line = match *as_is && !line.starts_with(crate::executor::TAG) {
                    true => line.to_string(),
                    false => tag(line),
                };
                // Waits while the reader is behind (the pipe, then the
                // process, wait too); a reader gone takes nothing more.
                if tx.send(line).await.is_err() {
                    *to = None;
                }
            }
        }
    }
}

/// Where stdout's pump and stderr's write.
pub(crate) async fn targets(output: &Output) -> Result<(Target, Target), String> {
    match output {
        Output::Log(log) => {
            let (out, err) = open_logs(log).await?;
            Ok((Target::File(Some(out)), Target::File(Some(err))))
        }
        Output::Lines {
            to,
            stdout_as_is,
            tag,
        } => {
            let out = Target::Lines {
                to: Some(to.clone()),
                tag: *tag,
                as_is: *stdout_as_is,
            };
            let err = Target::Lines {
                to: Some(to.clone()),
                tag: *tag,
                as_is: false,
            };
            Ok((out, err))
        }
    }
}

/// The log, opened twice for appending (stdout's pump and stderr's).
async fn open_logs(log: &Path) -> Result<(tokio::fs::File, tokio::fs::File), String> {
    if let Some(dir) = log.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| format!("cannot create log dir {}: {e}", dir.display()))?;
    }
    let open_log = || async {
        tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .await
            .map_err(|e| format!("cannot open log {}: {e}", log.display()))
    };
    Ok((open_log().await?, open_log().await?))
}
