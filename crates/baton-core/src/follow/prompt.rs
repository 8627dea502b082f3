//! What a fix attempt is told, and what baton writes on the pull request.
//! The forge's text (logs, comments) is quoted, never run as a template.

use crate::forge::{Check, Review, ReviewComment};

/// How many lines of each failed job's log a fix attempt sees.
pub const LOG_LINES: usize = 150;

/// A fix attempt's prompt for checks that failed on `sha`; `logs` is each
/// failed check's log tail, in the same order.
pub fn for_checks(number: u64, sha: &str, failed: &[Check], logs: &[String]) -> String {
    let mut p = format!(
        "The checks of pull request #{number} failed on commit {sha}. Make them pass: find the cause in the logs below, fix it in the code (not by skipping or weakening a check), and run what reproduces it locally if you can.\n"
    );
    for (c, log) in failed.iter().zip(logs) {
        let conclusion = c.conclusion.as_deref().unwrap_or("failed");
        p.push_str(&format!("\n## Check `{}`: {conclusion}\n", c.name));
        if let Some(u) = &c.url {
            p.push_str(&format!("{u}\n"));
        }
        if !c.summary.trim().is_empty() {
            p.push_str(&format!("\n{}\n", c.summary.trim()));
        }
        if !log.trim().is_empty() {
            p.push_str(&format!("\nThe end of its log:\n\n{}\n", fenced(log)));
        }
    }
    p
}

/// A fix attempt's prompt for review comments (one review: every thread
/// and every review's own words).
pub fn for_review(number: u64, comments: &[ReviewComment], reviews: &[Review]) -> String {
    let mut p = format!(
        "Reviewers commented on pull request #{number}. Address each comment below in the code; where you disagree, leave the code as it is and say why in your final message.\n"
    );
    for r in reviews {
        p.push_str(&format!(
            "\n## Review by @{} ({})\n\n{}\n",
            r.author,
            r.state.to_lowercase(),
            quote(&r.body)
        ));
    }
    for c in comments {
        let line = c.line.map(|l| format!(":{l}")).unwrap_or_default();
        p.push_str(&format!(
            "\n## `{}{line}`, @{} wrote\n\n{}\n",
            c.path,
            c.author,
            quote(&c.body)
        ));
        if !c.hunk.trim().is_empty() {
            p.push_str(&format!(
                "\nOn this part of the diff:\n\n{}\n",
                fenced_as(&c.hunk, "diff")
            ));
        }
    }
    p
}

/// A fix attempt's prompt for a base that conflicts with the branch.
pub fn for_conflict(number: u64, base: &str, base_sha: &str, paths: &[String]) -> String {
    format!(
        "Pull request #{number} conflicts with its base branch `{base}`. Merge commit {base_sha} into your branch (`git merge {base_sha}`), resolve the conflicts in {} keeping what both sides meant, make sure it builds and its tests pass, and commit the merge.",
        paths.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ")
    )
}

fn quote(text: &str) -> String {
    text.trim()
        .lines()
        .map(|l| format!("> {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn fenced(text: &str) -> String {
    fenced_as(text, "")
}

/// `text` in a code fence longer than any run of backticks inside it.
fn fenced_as(text: &str, lang: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat((longest + 1).max(3));
    format!("{fence}{lang}\n{}\n{fence}", text.trim_end())
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checks_prompt_holds_each_failed_check_with_its_log_fenced() {
        let c = Check {
            id: 9,
            name: "test".into(),
            pending: false,
            conclusion: Some("failure".into()),
            url: Some("https://ci/9".into()),
            summary: "1 test failed".into(),
        };
        let p = for_checks(4, "abc", &[c], &["ok\n```\nassert failed: 2 != 3".into()]);
        assert!(p.contains("#4 failed on commit abc"), "{p}");
        assert!(p.contains("## Check `test`: failure\nhttps://ci/9"), "{p}");
        assert!(
            p.contains("````\nok\n```\nassert failed: 2 != 3\n````"),
            "{p}"
        );
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
    }

    #[test]
    fn a_review_prompt_holds_every_thread_and_review() {
        let c = ReviewComment {
            id: 1,
            author: "ana".into(),
            path: "src/a.rs".into(),
            line: Some(7),
            hunk: "@@ -1 +1 @@\n-x\n+y".into(),
            body: "Name it better.\nPlease.".into(),
            in_reply_to: None,
        };
        let r = Review {
            id: 2,
            author: "bo".into(),
            state: "CHANGES_REQUESTED".into(),
            body: "Add a test.".into(),
        };
        let p = for_review(4, &[c], &[r]);
        assert!(
            p.contains("## Review by @bo (changes_requested)\n\n> Add a test."),
            "{p}"
        );
        assert!(
            p.contains("## `src/a.rs:7`, @ana wrote\n\n> Name it better.\n> Please."),
            "{p}"
        );
        assert!(p.contains("```diff\n@@ -1 +1 @@"), "{p}");
    }
}
