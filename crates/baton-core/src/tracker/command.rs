//! A tracker by command (`[[source]] kind = "command"`): how Linear, Jira
//! or a board plug in without code in baton. `command` prints the items
//! that are work now, one JSON object a line:
//!
//! `{"id": "ENG-12", "title": "...", "body": "...", "labels": ["docs"],
//!   "url": "https://...", "comments": [{"author": "maria", "body": "..."}]}`
//!
//! (`id` and `title` are needed; `id` may be a number). `report`, if given,
//! is run once per report with it as one JSON object on its stdin
//! ([`super::Report`]). Both run in the repository's root with baton's
//! environment, under a time limit; a failure is said with the end of
//! their stderr, and changes nothing.

use super::{ItemComment, Report, Tracker, TrackerError, TrackerKind, WorkItem};
use crate::executor::Boxed;
use crate::plan::{CommandSource, Source, SourceKind};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const KIND: TrackerKind = TrackerKind {
    kind: "command",
    make,
};

/// How long a listing or a report may take.
const TIME: Duration = Duration::from_secs(60);
/// A listing bigger than this is not a list of work.
const MAX_OUTPUT: usize = 16 * 1024 * 1024;

fn make(source: &Source, root: &Path) -> Result<Box<dyn Tracker>, String> {
    let SourceKind::Command(c) = &source.kind else {
        return Err(format!("{} is not a command source", source.name));
    };
    Ok(Box::new(Commands {
        settings: c.clone(),
        root: root.to_path_buf(),
    }))
}

struct Commands {
    settings: CommandSource,
    root: PathBuf,
}

/// One line of a listing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    id: Id,
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    url: String,
    #[serde(default)]
    comments: Vec<LineComment>,
    /// Ids of items it waits for.
    #[serde(default)]
    needs: Vec<Id>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Number(u64),
}

impl Id {
    fn key(self) -> String {
        match self {
            Id::Text(t) => t,
            Id::Number(n) => n.to_string(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineComment {
    author: String,
    body: String,
}

/// A listing's items; Err names the first bad line and what is wrong.
pub fn parse(listing: &str) -> Result<Vec<WorkItem>, String> {
    let mut items: Vec<WorkItem> = Vec::new();
    for (n, line) in listing.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        let key = l.id.key();
        if key.trim().is_empty() || l.title.trim().is_empty() {
            return Err(format!(
                "line {}: `id` and `title` must not be empty",
                n + 1
            ));
        }
        if items.iter().any(|i| i.key == key) {
            return Err(format!("line {}: the id {key:?} is listed twice", n + 1));
        }
        let needs = l.needs.into_iter().map(Id::key).collect();
        items.push(WorkItem {
            needs,
            comment_count: l.comments.len() as u32,
            key,
            title: l.title,
            body: l.body,
            labels: l.labels,
            url: l.url,
            comments: l
                .comments
                .into_iter()
                .map(|c| ItemComment {
                    author: c.author,
                    body: c.body,
                })
                .collect(),
        });
    }
    Ok(items)
}

impl Commands {
    /// Runs `argv` (with `input` on its stdin); its stdout.
    async fn run(&self, argv: &[String], input: Option<String>) -> Result<String, TrackerError> {
        let shown = argv.join(" ");
        let mut child = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(&self.root)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| TrackerError::Other(format!("cannot start `{shown}`: {e}")))?;
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let said = shown.clone();
        let finished = async move {
            if let (Some(text), Some(mut stdin)) = (input, stdin) {
                // A program that does not read its input is its own
                // business; the time bound covers the writing too.
                let _ = stdin.write_all(text.as_bytes()).await;
            }
            let (out, err) = tokio::join!(read_capped(stdout), read_tail(stderr));
            let out = out?;
            if out.len() > MAX_OUTPUT {
                // Not read on: it would fill baton's memory.
                let _ = child.start_kill();
                return Ok(Err(format!("`{said}` printed more than 16 MiB")));
            }
            let status = child.wait().await?;
            Ok::<_, std::io::Error>(Ok((status, out, err?)))
        };
        let (status, stdout, stderr) = tokio::time::timeout(TIME, finished)
            .await
            .map_err(|_| TrackerError::Other(format!("`{shown}` took more than 60 s")))?
            .map_err(|e| TrackerError::Other(format!("`{shown}`: {e}")))?
            .map_err(TrackerError::Other)?;
        if !status.success() {
            let tail = crate::engine::process::output::last_lines(&stderr, 5);
            let code = status.code().map_or("a signal".into(), |c| c.to_string());
            return Err(TrackerError::Other(format!(
                "`{shown}` exited with {code}: {tail}"
            )));
        }
        Ok(String::from_utf8_lossy(&stdout).into_owned())
    }
}

/// A pipe read to its end, or to one byte past [`MAX_OUTPUT`].
async fn read_capped(pipe: Option<tokio::process::ChildStdout>) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if let Some(p) = pipe {
        p.take(MAX_OUTPUT as u64 + 1).read_to_end(&mut buf).await?;
    }
    Ok(buf)
}

/// The end of a pipe's text (what a failing program said last), the pipe
/// read to its end so that the program never waits on it.
async fn read_tail(pipe: Option<tokio::process::ChildStderr>) -> std::io::Result<String> {
    let mut tail = crate::engine::process::output::Tail::new(16 * 1024);
    if let Some(mut p) = pipe {
        let mut chunk = [0u8; 8192];
        loop {
            let n = p.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            tail.push(&chunk[..n]);
        }
    }
    Ok(tail.text())
}

impl Tracker for Commands {
    fn items(&self) -> Boxed<'_, Result<Vec<WorkItem>, TrackerError>> {
        Box::pin(async move {
            let listing = self.run(&self.settings.command, None).await?;
            let shown = self.settings.command.join(" ");
            parse(&listing).map_err(|e| TrackerError::Other(format!("`{shown}` printed {e}")))
        })
    }

    fn report<'a>(&'a self, report: &'a Report) -> Boxed<'a, Result<(), TrackerError>> {
        Box::pin(async move {
            let Some(argv) = &self.settings.report else {
                return Ok(());
            };
            let json =
                serde_json::to_string(report).map_err(|e| TrackerError::Other(e.to_string()))?;
            self.run(argv, Some(format!("{json}\n"))).await.map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use crate::plan::{CommandSource, Source, SourceKind};

    fn listing_of(script: &str) -> Result<Vec<crate::tracker::WorkItem>, String> {
        let source = Source {
            name: "command:t".into(),
            kind: SourceKind::Command(CommandSource {
                command: vec!["sh".into(), "-c".into(), script.into()],
                report: None,
            }),
            poll: std::time::Duration::from_secs(60),
            mode: Default::default(),
        };
        let tracker = super::make(&source, std::path::Path::new(".")).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(tracker.items()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_program_that_fails_or_prints_too_much_is_said_and_gives_nothing() {
        let err = listing_of("echo first >&2; echo boom >&2; exit 3").unwrap_err();
        assert!(err.ends_with("exited with 3: first\nboom"), "{err}");
        let started = std::time::Instant::now();
        let err = listing_of("yes '{\"id\": 1, \"title\": \"x\"}'").unwrap_err();
        assert!(err.contains("printed more than 16 MiB"), "{err}");
        assert!(started.elapsed().as_secs() < 30, "it was not cut short");
        let ok = listing_of("printf '{\"id\": 1, \"title\": \"x\"}'").unwrap();
        assert_eq!(ok.len(), 1);
    }

    #[test]
    fn a_listing_is_read_line_by_line_and_a_bad_line_is_named() {
        let items = parse(concat!(
            r#"{"id": "ENG-12", "title": "Add a flag", "labels": ["docs"], "comments": [{"author": "maria", "body": "short"}]}"#,
            "\n\n",
            r#"{"id": 7, "title": "Fix it", "body": "It crashes."}"#,
            "\n"
        ))
        .unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(
            (items[0].key.as_str(), items[1].key.as_str()),
            ("ENG-12", "7")
        );
        assert_eq!(items[0].comments[0].author, "maria");
        for (bad, says) in [
            ("{\"title\": \"x\"}", "line 1: missing field `id`"),
            ("{\"id\": 1, \"title\": \"\"}", "must not be empty"),
            ("not json", "line 1:"),
            (
                "{\"id\": 1, \"title\": \"a\", \"color\": 2}",
                "unknown field `color`",
            ),
            (
                "{\"id\": 1, \"title\": \"a\"}\n{\"id\": \"1\", \"title\": \"b\"}",
                "line 2: the id \"1\" is listed twice",
            ),
        ] {
            let err = parse(bad).err().unwrap_or_default();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
