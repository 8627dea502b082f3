//! Reading an agent's output without holding it in memory: raw bytes go to
//! the attempt's log (or stream, [`super::writer`]); lines (each capped) go
//! to the parser; only a bounded tail is kept.

use super::writer::{LogWriter, MAX_LINE};
use crate::adapter::{AgentEvent, Finish, StreamParser};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

/// The last `n` lines of `text` (for feedback from an agent's or gate's output).
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Keeps the last `cap` bytes written to it.
pub struct Tail {
    buf: Vec<u8>,
    cap: usize,
}

impl Tail {
    pub fn new(cap: usize) -> Self {
        Tail {
            buf: Vec::new(),
            cap,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        // Only the end of a big chunk can stay.
        let bytes = &bytes[bytes.len().saturating_sub(self.cap)..];
        // Room is made before it grows: the buffer never holds more than
        // its cap and a little slack, whatever the agent prints.
        let slack = self.cap / 4;
        if self.buf.len() + bytes.len() > self.cap + slack {
            let keep = self.cap.saturating_sub(bytes.len());
            let cut = self.buf.len().saturating_sub(keep);
            self.buf.drain(..cut);
        }
        self.buf.extend_from_slice(bytes);
    }

    pub fn text(&self) -> String {
        let start = self.buf.len().saturating_sub(self.cap);
        String::from_utf8_lossy(&self.buf[start..]).into_owned()
    }
}

/// Splits a byte stream into lines no longer than `max` bytes; the rest of
/// an over-long line is dropped rather than buffered.
pub struct Lines {
    buf: Vec<u8>,
    max: usize,
    overflow: bool,
}

impl Lines {
    pub fn new(max: usize) -> Self {
        Lines {
            buf: Vec::new(),
            max,
            overflow: false,
        }
    }

    pub fn feed(&mut self, mut chunk: &[u8], mut out: impl FnMut(&str)) {
        while !chunk.is_empty() {
            match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.take(&chunk[..i]);
                    let line = String::from_utf8_lossy(&self.buf);
                    out(line.trim_end_matches('\r'));
                    self.buf.clear();
                    self.overflow = false;
                    chunk = &chunk[i + 1..];
                }
                None => {
                    self.take(chunk);
                    chunk = &[];
                }
            }
        }
    }

    fn take(&mut self, part: &[u8]) {
        if self.overflow {
            return;
        }
        let room = self.max - self.buf.len();
        if part.len() > room {
            self.buf.extend_from_slice(&part[..room]);
            self.overflow = true;
        } else {
            self.buf.extend_from_slice(part);
        }
    }

    /// The last line if the stream did not end with a newline.
    pub fn finish(&mut self, out: impl FnMut(&str)) {
        if !self.buf.is_empty() {
            let line = String::from_utf8_lossy(&self.buf).into_owned();
            self.buf.clear();
            let mut out = out;
            out(&line);
        }
    }
}

/// What a pump tells the supervisor.
pub(super) enum Msg {
    Output,
    Events(Vec<AgentEvent>),
}

/// What one read of an agent's pipe takes at most.
const READ_BUF: usize = 8 * 1024;

/// Reads one pipe to its end: everything to `log`, the end kept (`tail_cap`
/// bytes, and into `combined` when kept), lines to the parser, whose
/// events go to the supervisor; returns the tail (secrets masked) and the
/// parser's last word.
pub(super) async fn pump<R: AsyncRead + Unpin>(
    mut r: R,
    mut log: LogWriter,
    tail_cap: usize,
    combined: Option<Arc<Mutex<Tail>>>,
    mut parser: Option<Box<dyn StreamParser>>,
    tx: mpsc::Sender<Msg>,
) -> (String, Option<Finish>) {
    let mut tail = Tail::new(tail_cap);
    let mut lines = Lines::new(MAX_LINE);
    let mut buf = vec![0u8; READ_BUF];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        log.write(chunk).await;
        tail.push(chunk);
        if let Some(Ok(mut c)) = combined.as_ref().map(|c| c.lock()) {
            c.push(chunk);
        }
        // A sign of life: one waiting is enough.
        let _ = tx.try_send(Msg::Output);
        if let Some(p) = parser.as_mut() {
            let mut events = Vec::new();
            lines.feed(chunk, |l| events.extend(p.line(l)));
            if !events.is_empty() {
                // Waits while the queue is full: the agent's pipe fills and
                // it waits too, instead of baton's memory growing.
                let _ = tx.send(Msg::Events(events)).await;
            }
        }
    }
    log.finish().await;
    if let Some(p) = parser.as_mut() {
        let mut events = Vec::new();
        lines.finish(|l| events.extend(p.line(l)));
        if !events.is_empty() {
            let _ = tx.send(Msg::Events(events)).await;
        }
    }
    let raw = tail.text();
    // The parser's last word is said here, where it lives, from what the
    // agent really printed: `fail_if` must see a secret it printed (the
    // store masks the final message where it is written).
    let finish = parser.map(|mut p| p.finish(&raw));
    let text = match log.redactor() {
        Some(r) => r.redact(&raw),
        None => raw,
    };
    (text, finish)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_only_the_end() {
        let mut t = Tail::new(4);
        for chunk in [b"abc".as_slice(), b"defgh", b"ij"] {
            t.push(chunk);
        }
        assert_eq!(t.text(), "ghij");
    }

    #[test]
    fn lines_are_split_across_chunks_and_capped() {
        let mut l = Lines::new(5);
        let mut got = Vec::new();
        l.feed(b"ab", |s| got.push(s.to_string()));
        l.feed(b"c\r\nlonger-than-five\nx", |s| got.push(s.to_string()));
        l.finish(|s| got.push(s.to_string()));
        assert_eq!(got, vec!["abc", "longe", "x"]);
    }
}
