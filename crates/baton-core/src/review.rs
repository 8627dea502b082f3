//! A person's review of a task's work: comments on lines of its files (and
//! a note on the whole), kept as drafts, then sent to its agent as one
//! structured message (each comment with its file, line, the lines around
//! it and the text). After the agent's next commit, each comment says
//! whether the lines it was on changed (addressed? for the person to
//! confirm) or did not.

use crate::control::ControlError;
use crate::engine::Answer;
use crate::git::Repo;
use crate::model::{ControlKind, TaskStatus};
use crate::paths::StatePaths;
use crate::store::{RunRecord, Store};
use serde::Serialize;
use std::sync::Arc;

/// Lines shown around a commented line.
const AROUND: usize = 3;
/// Lines that count as "the lines it was on", either side.
const NEAR: u32 = 1;
pub const MAX_COMMENT: usize = 4000;
pub const MAX_COMMENTS: usize = 50;

/// One comment, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comment {
    pub id: i64,
    pub run: String,
    pub task: String,
    pub path: String,
    pub line: u32,
    pub text: String,
    /// The lines around it when it was made (`>` marks its line).
    pub hunk: String,
    /// The task's commit it was made on.
    pub commit: String,
    pub created_at: i64,
    /// When it went to the agent (None: a draft).
    pub submitted_at: Option<i64>,
}

/// What became of the lines a sent comment was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    /// Not sent yet.
    Draft,
    /// Sent; the agent has not committed since.
    Sent,
    /// The lines changed since: addressed? (the person confirms).
    Changed,
    /// The agent committed, and the lines did not change.
    Unchanged,
    /// The file is gone.
    Gone,
}

/// `PATH:LINE` as a person writes it.
pub fn parse_place(text: &str) -> Result<(String, u32), String> {
    let bad = || format!("{text:?} is not PATH:LINE (e.g. src/app.rs:42)");
    let (path, line) = text.rsplit_once(':').ok_or_else(bad)?;
    let line: u32 = line.parse().map_err(|_| bad())?;
    if path.is_empty() || line == 0 || path.starts_with('/') || path.split('/').any(|p| p == "..") {
        return Err(bad());
    }
    Ok((path.to_string(), line))
}

/// The lines around `line` (1-based) of `text`, its own marked with `>`;
/// None when the file is shorter.
pub fn excerpt(text: &str, line: u32) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let at = line as usize;
    if at == 0 || at > lines.len() {
        return None;
    }
    let from = at.saturating_sub(AROUND + 1);
    let to = (at + AROUND).min(lines.len());
    let out: Vec<String> = (from..to)
        .map(|i| {
            let mark = if i + 1 == at { '>' } else { ' ' };
            format!("{mark}{:>5} | {}", i + 1, lines[i])
        })
        .collect();
    Some(out.join("\n"))
}

/// The one message the agent gets: every comment with where it is.
pub fn compose(comments: &[Comment], note: Option<&str>) -> String {
    let mut out = format!(
        "A person reviewed your work and left {} comment{}. Address each one (change the code, or say why not), then finish.\n",
        comments.len(),
        if comments.len() == 1 { "" } else { "s" }
    );
    for (i, c) in comments.iter().enumerate() {
        out.push_str(&format!(
            "\n{}. {} line {}:\n```\n{}\n```\n{}\n",
            i + 1,
            c.path,
            c.line,
            c.hunk,
            c.text.trim()
        ));
    }
    if let Some(n) = note.map(str::trim).filter(|n| !n.is_empty()) {
        out.push_str(&format!("\nOn the whole: {n}\n"));
    }
    out
}

/// Whether a `git diff -U0` of one file touches old lines near `line`.
pub fn touched(diff: &str, line: u32) -> bool {
    diff.lines()
        .filter_map(|l| l.strip_prefix("@@ -"))
        .filter_map(|l| l.split_whitespace().next())
        .any(|old| {
            let (start, count) = match old.split_once(',') {
                Some((s, c)) => (s.parse::<u32>().unwrap_or(0), c.parse::<u32>().unwrap_or(1)),
                None => (old.parse::<u32>().unwrap_or(0), 1),
            };
            // A pure insertion (count 0) sits after `start`.
            let (lo, hi) = match count {
                0 => (start, start + 1),
                n => (start, start + n - 1),
            };
            lo <= line + NEAR && hi + NEAR >= line
        })
}

/// What became of comment `c`'s lines, the task's work now at `now`.
pub async fn mark(repo: &Repo, c: &Comment, now: Option<&str>) -> Mark {
    if c.submitted_at.is_none() {
        return Mark::Draft;
    }
    let Some(now) = now.filter(|n| *n != c.commit) else {
        return Mark::Sent;
    };
    let spec = format!("{now}:{}", c.path);
    if crate::git::git_ok(&repo.root, ["cat-file", "-e", spec.as_str()])
        .await
        .is_err()
    {
        return Mark::Gone;
    }
    let args = [
        "diff",
        "-U0",
        "--no-color",
        "--no-ext-diff",
        &c.commit,
        now,
        "--",
        &c.path,
    ];
    match crate::git::git_ok(&repo.root, args).await {
        Ok(diff) if touched(&diff, c.line) => Mark::Changed,
        Ok(_) => Mark::Unchanged,
        Err(_) => Mark::Sent,
    }
}

/// The text of `path` at `commit`, if it is a file there.
pub async fn file_at(repo: &Repo, commit: &str, path: &str) -> Option<String> {
    let spec = format!("{commit}:{path}");
    crate::git::git_ok(&repo.root, ["show", spec.as_str()])
        .await
        .ok()
}

/// Where each line of a unified diff sits on the new side: `(path, line)`
/// for a line that can be commented on (added or unchanged), None for the
/// others (headers, hunks, removed lines).
pub fn places<S: AsRef<str>>(diff: &[S]) -> Vec<Option<(String, u32)>> {
    let (mut path, mut line): (Option<String>, u32) = (None, 0);
    diff.iter()
        .map(|l| {
            let l = l.as_ref();
            if let Some(p) = l.strip_prefix("+++ ") {
                path = p.strip_prefix("b/").map(str::to_string);
                return None;
            }
            if l.starts_with("---")
                || l.starts_with("diff ")
                || l.starts_with("index ")
                || l.starts_with('-')
            {
                return None;
            }
            if let Some(h) = l.strip_prefix("@@") {
                line = h
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix('+'))
                    .and_then(|w| w.split(',').next()?.parse().ok())
                    .unwrap_or(0);
                return None;
            }
            if l.starts_with('\\') {
                return None;
            }
            let at = line;
            line += 1;
            Some((path.clone()?, at))
        })
        .collect()
}

/// The commit a task's work is at now: its branch's tip.
pub async fn tip(repo: &Repo, t: &crate::store::TaskRecord) -> Option<String> {
    let branch = format!("refs/heads/{}", t.branch);
    let args = ["rev-parse", "--verify", "--quiet", branch.as_str()];
    match crate::git::git_ok(&repo.root, args).await {
        Ok(c) => Some(c.trim().to_string()),
        Err(_) => t.commit_id.clone(),
    }
}

/// Keeps a draft comment on `path:line` of task `task`'s work as it is now.
pub async fn add_comment(
    repo: &Repo,
    store: &Arc<Store>,
    run: &str,
    task: &str,
    place: (&str, u32),
    text: &str,
) -> Result<Comment, ControlError> {
    let refuse = |m: String| Err(ControlError::Refused(m));
    let (path, line) = place;
    if text.trim().is_empty() || text.len() > MAX_COMMENT {
        return refuse(format!("a comment has 1 to {MAX_COMMENT} characters"));
    }
    crate::control::check_task(store, run, task).await?;
    let (r, t) = (run.to_string(), task.to_string());
    let (rec, drafts) = store
        .call(move |s| -> Result<_, crate::store::StoreError> {
            let drafts = s
                .comments(&r, &t)?
                .iter()
                .filter(|c| c.submitted_at.is_none())
                .count();
            Ok((s.task(&r, &t)?, drafts))
        })
        .await?;
    let Some(rec) = rec else {
        return refuse(format!("run {run} has no task {task:?}"));
    };
    if drafts >= MAX_COMMENTS {
        return refuse(format!(
            "{drafts} comments wait to be sent; send them first (--submit)"
        ));
    }
    let Some(commit) = tip(repo, &rec).await else {
        return refuse(format!("task {task:?} has no work yet to comment on"));
    };
    let Some(file) = file_at(repo, &commit, path).await else {
        return refuse(format!(
            "task {task:?}'s work has no file {path} (at {})",
            &commit[..commit.len().min(12)]
        ));
    };
    let Some(hunk) = excerpt(&file, line) else {
        return refuse(format!(
            "{path} has {} lines; there is no line {line}",
            file.lines().count()
        ));
    };
    let mut c = Comment {
        id: 0,
        run: run.to_string(),
        task: task.to_string(),
        path: path.to_string(),
        line,
        text: text.trim().to_string(),
        hunk,
        commit,
        created_at: crate::clock::now_ms(),
        submitted_at: None,
    };
    let kept = c.clone();
    c.id = store.call(move |s| s.add_comment(&kept)).await?;
    Ok(c)
}

/// Sends a task's draft comments (and `note`) to its agent as one review:
/// a running agent gets it as a message; one waiting for approval, or not
/// started again yet, a new attempt with it as feedback (a steer); one that
/// failed or was stopped runs again with it (a retry). No retry is used.
pub async fn submit(
    store: &Arc<Store>,
    paths: &StatePaths,
    run: &RunRecord,
    task: &str,
    note: Option<&str>,
) -> Result<Answer, ControlError> {
    let refuse = |m: String| Err(ControlError::Refused(m));
    let (r, t) = (run.id.clone(), task.to_string());
    let (rec, comments) = store
        .call(move |s| -> Result<_, crate::store::StoreError> {
            Ok((s.task(&r, &t)?, s.comments(&r, &t)?))
        })
        .await?;
    let Some(rec) = rec else {
        return refuse(format!("run {} has no task {task:?}", run.id));
    };
    let drafts: Vec<Comment> = comments
        .into_iter()
        .filter(|c| c.submitted_at.is_none())
        .collect();
    if drafts.is_empty() && note.is_none_or(|n| n.trim().is_empty()) {
        return refuse(format!(
            "nothing to send: add comments to {task:?} first (--comment PATH:LINE TEXT)"
        ));
    }
    let text = compose(&drafts, note);
    let answer = match rec.status {
        TaskStatus::Running => {
            let id = crate::control::post_message(store, paths, run, None, task, &text).await?;
            let id = id.to_string();
            crate::control::request(store, paths, run, task, ControlKind::Message, Some(&id))
                .await?
        }
        TaskStatus::AwaitingApproval | TaskStatus::Pending => {
            crate::control::request(store, paths, run, task, ControlKind::Steer, Some(&text))
                .await?
        }
        TaskStatus::Failed | TaskStatus::Stopped | TaskStatus::Conflicted | TaskStatus::Skipped => {
            crate::control::request(store, paths, run, task, ControlKind::Retry, Some(&text))
                .await?
        }
        TaskStatus::Merging => {
            return refuse(format!(
                "task {task:?} is being merged; review it once it is"
            ))
        }
        TaskStatus::Succeeded => {
            return refuse(format!(
            "task {task:?} has succeeded and its work is merged; queue a new task for the changes"
        ))
        }
    };
    if answer.ok {
        let ids: Vec<i64> = drafts.iter().map(|c| c.id).collect();
        store.call(move |s| s.comments_sent(&ids)).await?;
    }
    Ok(answer)
}

/// Each of a task's comments with what became of its lines.
pub async fn marked(
    repo: &Repo,
    store: &Arc<Store>,
    run: &str,
    task: &str,
) -> Result<Vec<(Comment, Mark)>, ControlError> {
    let (r, t) = (run.to_string(), task.to_string());
    let (rec, comments) = store
        .call(move |s| -> Result<_, crate::store::StoreError> {
            Ok((s.task(&r, &t)?, s.comments(&r, &t)?))
        })
        .await?;
    let now = match &rec {
        Some(rec) => tip(repo, rec).await,
        None => None,
    };
    let mut out = Vec::new();
    for c in comments {
        let m = mark(repo, &c, now.as_deref()).await;
        out.push((c, m));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_path_and_line() {
        assert_eq!(parse_place("src/a.rs:42").unwrap(), ("src/a.rs".into(), 42));
        assert_eq!(
            parse_place("dir:x/b.txt:3").unwrap(),
            ("dir:x/b.txt".into(), 3)
        );
        for bad in ["a.rs", "a.rs:0", ":3", "/etc/passwd:1", "../x:1", "a.rs:x"] {
            assert!(parse_place(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_excerpt_marks_its_line() {
        let text = (1..=10)
            .map(|i| format!("l{i}"))
            .collect::<Vec<_>>()
            .join("\n");
        let e = excerpt(&text, 5).unwrap();
        assert!(
            e.contains(">    5 | l5") && e.contains("     2 | l2") && e.contains("     8 | l8"),
            "{e}"
        );
        assert!(!e.contains("l1\n") && !e.contains("l9"), "{e}");
        assert!(excerpt(&text, 11).is_none());
        assert_eq!(excerpt("one", 1).unwrap(), ">    1 | one");
    }

    #[test]
    fn each_new_side_line_of_a_diff_knows_its_place() {
        let diff = [
            "diff --git a/x.rs b/x.rs",
            "index 1..2 100644",
            "--- a/x.rs",
            "+++ b/x.rs",
            "@@ -3,3 +3,4 @@ fn f()",
            " keep",
            "-gone",
            "+new",
            "+newer",
            "\\ No newline at end of file",
            "@@ -20 +21 @@",
            "+late",
            "--- a/old",
            "+++ /dev/null",
            "@@ -1 +0,0 @@",
            "-deleted",
        ];
        let p = places(&diff);
        let at = |i: usize| p[i].clone().map(|(f, l)| format!("{f}:{l}"));
        assert_eq!((0..5).map(at).collect::<Vec<_>>(), vec![None; 5]);
        assert_eq!(at(5).as_deref(), Some("x.rs:3"));
        assert_eq!(at(6), None);
        assert_eq!(at(7).as_deref(), Some("x.rs:4"));
        assert_eq!(at(8).as_deref(), Some("x.rs:5"));
        assert_eq!(at(9), None);
        assert_eq!(at(11).as_deref(), Some("x.rs:21"));
        assert!(
            p[12..].iter().all(Option::is_none),
            "a deleted file has nothing to comment on"
        );
    }

    #[test]
    fn lines_near_a_hunk_count_as_touched() {
        let diff = "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -10,2 +10,3 @@\n-a\n+b\n@@ -30 +31,0 @@\n-c\n";
        assert!(touched(diff, 10) && touched(diff, 11) && touched(diff, 12) && touched(diff, 9));
        assert!(!touched(diff, 14) && !touched(diff, 7));
        assert!(touched(diff, 30) && touched(diff, 31));
        assert!(
            touched("@@ -5,0 +6,2 @@\n+x\n", 6),
            "an insertion after line 5"
        );
        assert!(!touched("", 3));
    }

    #[test]
    fn the_message_holds_every_comment_with_its_place() {
        let c = |id, path: &str, line, text: &str| Comment {
            id,
            run: "r".into(),
            task: "t".into(),
            path: path.into(),
            line,
            text: text.into(),
            hunk: format!(">{line:>5} | code"),
            commit: "c".into(),
            created_at: 0,
            submitted_at: None,
        };
        let m = compose(
            &[
                c(1, "a.rs", 3, "rename this"),
                c(2, "b.rs", 9, "off by one"),
            ],
            Some("good start"),
        );
        assert!(
            m.starts_with("A person reviewed your work and left 2 comments."),
            "{m}"
        );
        assert!(
            m.contains("1. a.rs line 3:\n```\n>    3 | code\n```\nrename this"),
            "{m}"
        );
        assert!(
            m.contains("2. b.rs line 9:") && m.ends_with("On the whole: good start\n"),
            "{m}"
        );
    }
}
