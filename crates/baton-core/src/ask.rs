//! Asking a person from inside a task. Each local attempt gets a door: a
//! Unix socket in a directory of its own (bound into its sandbox), named to
//! the agent by `BATON_ASK_SOCKET`. Whoever connects there speaks for that
//! task only: `baton ask` (a script, which waits for the answer) and the
//! `ask` MCP tool (`baton mcp --ask`, which returns at once and tells the
//! agent to end its turn). One JSON line each way, then the answer's line
//! when the asker waits for it.

use crate::payload::Question;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// The variable that names a task's door.
pub const SOCKET_VAR: &str = "BATON_ASK_SOCKET";

pub const MAX_QUESTION: usize = 4000;
pub const MAX_OPTIONS: usize = 10;
pub const MAX_OPTION: usize = 200;
/// Questions one task may ask in a run: a looping agent cannot flood people.
pub const MAX_PER_TASK: u32 = 30;

/// What the asker sends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AskRequest {
    pub question: String,
    pub options: Vec<String>,
    /// How long to wait (`30m`, `2h`); None: until answered.
    pub timeout: Option<String>,
    /// The answer given when the time runs out; needs `timeout`.
    pub default: Option<String>,
    /// Keep the connection until the answer comes (`baton ask`).
    pub wait: bool,
}

/// What the door answers: first the question's id (or an error), then,
/// for a waiting asker, the answer (or why none came).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AskReply {
    Asked { id: i64 },
    Answer { text: String },
    Error { message: String },
}

impl AskRequest {
    /// The question this asks, checked; `now` in ms since the epoch.
    pub fn check(&self, now: i64) -> Result<Question, String> {
        let text = self.question.trim();
        if text.is_empty() {
            return Err("the question is empty".into());
        }
        if text.len() > MAX_QUESTION {
            return Err(format!(
                "the question is {} characters; at most {MAX_QUESTION} (put more in a file in your worktree and point to it)",
                text.len()
            ));
        }
        if self.options.len() > MAX_OPTIONS {
            return Err(format!(
                "{} options; at most {MAX_OPTIONS}",
                self.options.len()
            ));
        }
        let mut options: Vec<String> = Vec::new();
        for o in &self.options {
            let o = o.trim();
            if o.is_empty() || o.len() > MAX_OPTION {
                return Err(format!(
                    "an option must have 1 to {MAX_OPTION} characters (got {:?})",
                    o.chars().take(40).collect::<String>()
                ));
            }
            if options.iter().any(|x| x == o) {
                return Err(format!("option {o:?} is given twice"));
            }
            options.push(o.to_string());
        }
        let expires_at = match &self.timeout {
            None => None,
            Some(t) => {
                let d = crate::duration::parse_duration(t).map_err(|e| format!("timeout: {e}"))?;
                if d < Duration::from_secs(1) {
                    return Err(format!("timeout {t:?} is shorter than a second"));
                }
                Some(now.saturating_add(d.as_millis().min(i64::MAX as u128) as i64))
            }
        };
        let default_answer = match &self.default {
            None => None,
            Some(_) if expires_at.is_none() => {
                return Err(
                    "a default answer is given when the timeout passes: give --timeout too".into(),
                )
            }
            Some(d) => {
                let d = d.trim().to_string();
                if !options.is_empty() && !options.contains(&d) {
                    return Err(format!(
                        "the default {d:?} is not one of the options ({})",
                        options.join(", ")
                    ));
                }
                Some(d)
            }
        };
        Ok(Question {
            text: text.to_string(),
            options,
            default_answer,
            expires_at,
        })
    }
}

/// Checks an answer to a question that offers options: it must be one of
/// them (case aside), and reads as the option itself.
pub fn fit_answer(q: &Question, answer: &str) -> Result<String, String> {
    let a = answer.trim();
    if a.is_empty() {
        return Err("the answer is empty".into());
    }
    if q.options.is_empty() {
        return Ok(a.to_string());
    }
    q.options
        .iter()
        .find(|o| o.eq_ignore_ascii_case(a))
        .cloned()
        .ok_or_else(|| format!("answer one of: {}", q.options.join(", ")))
}

/// A connection to a task's door, after its question was recorded.
pub struct Asked {
    pub id: i64,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::net::unix::OwnedReadHalf>>,
    _write: tokio::net::unix::OwnedWriteHalf,
}

/// Asks through the door at `socket`: the question's id, or why not.
pub async fn ask(socket: &Path, req: &AskRequest) -> Result<Asked, String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| format!("cannot reach baton at {}: {e}", socket.display()))?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(req).map_err(|e| e.to_string())?;
    line.push('\n');
    write
        .write_all(line.as_bytes())
        .await
        .map_err(|e| format!("cannot send the question: {e}"))?;
    let mut lines = tokio::io::BufReader::new(read).lines();
    match next_reply(&mut lines).await? {
        AskReply::Asked { id } => Ok(Asked {
            id,
            lines,
            _write: write,
        }),
        AskReply::Error { message } => Err(message),
        AskReply::Answer { .. } => Err("baton answered before it recorded the question".into()),
    }
}

impl Asked {
    /// Waits for the answer (the request asked to wait).
    pub async fn answer(mut self) -> Result<String, String> {
        match next_reply(&mut self.lines).await? {
            AskReply::Answer { text } => Ok(text),
            AskReply::Error { message } => Err(message),
            AskReply::Asked { .. } => Err("baton recorded the question twice".into()),
        }
    }
}

async fn next_reply(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::net::unix::OwnedReadHalf>>,
) -> Result<AskReply, String> {
    match lines.next_line().await {
        Ok(Some(l)) => {
            serde_json::from_str(&l).map_err(|e| format!("baton's answer does not read ({e}): {l}"))
        }
        Ok(None) => Err("baton closed the connection (the attempt ended, or baton stopped)".into()),
        Err(e) => Err(format!("lost the connection to baton: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(q: &str) -> AskRequest {
        AskRequest {
            question: q.into(),
            ..AskRequest::default()
        }
    }

    #[test]
    fn a_question_is_checked_before_anyone_sees_it() {
        assert!(req("  ").check(0).unwrap_err().contains("empty"));
        assert!(req(&"x".repeat(MAX_QUESTION + 1)).check(0).is_err());
        let mut r = req("Which?");
        r.options = vec!["a".into(), "a".into()];
        assert!(r.check(0).unwrap_err().contains("twice"));
        r.options = vec!["a".into(), "b".into()];
        r.default = Some("a".into());
        assert!(r.check(0).unwrap_err().contains("--timeout"));
        r.timeout = Some("2m".into());
        let q = r.check(1000).unwrap();
        assert_eq!(q.expires_at, Some(121_000));
        assert_eq!(q.default_answer.as_deref(), Some("a"));
        r.default = Some("c".into());
        assert!(r.check(0).unwrap_err().contains("not one of the options"));
        r.default = None;
        r.timeout = Some("soon".into());
        assert!(r.check(0).unwrap_err().starts_with("timeout"));
    }

    #[test]
    fn an_answer_to_a_choice_must_be_one_of_its_options() {
        let q = Question {
            text: "Which?".into(),
            options: vec!["Red".into(), "Blue".into()],
            ..Question::default()
        };
        assert_eq!(fit_answer(&q, " blue ").unwrap(), "Blue");
        assert!(fit_answer(&q, "green").unwrap_err().contains("Red, Blue"));
        assert!(fit_answer(&q, "").is_err());
        let free = Question::default();
        assert_eq!(
            fit_answer(&free, "anything at all").unwrap(),
            "anything at all"
        );
    }

    #[test]
    fn replies_read_as_one_json_line_each() {
        let line = serde_json::to_string(&AskReply::Asked { id: 4 }).unwrap();
        assert_eq!(line, r#"{"asked":{"id":4}}"#);
        assert!(serde_json::from_str::<AskRequest>(r#"{"question":"q","extra":1}"#).is_err());
    }
}
