//! baton's GitHub tracker: the open issues of a repository that carry a
//! label (and, if set, are assigned to a login) are work; baton comments on
//! them. It speaks GitHub's REST API (version 2022-11-28) over HTTPS with
//! hyper and rustls (the stack the Kubernetes client already brings), with
//! the token from the source's `token_env` (else `gh auth token`), which
//! only baton holds. The binary registers [`KIND`], and [`FORGE`]: pull
//! requests opened and followed to their merge (`[land] follow`).

mod client;
mod forge;

pub use forge::FORGE;

use baton_core::plan::{GitHubSource, Source, SourceKind};
use baton_core::tracker::{ItemComment, Report, Tracker, TrackerError, TrackerKind, WorkItem};
use client::Client;
use serde_json::Value;

/// The GitHub tracker, for the binary's list of tracker kinds.
pub const KIND: TrackerKind = TrackerKind {
    kind: "github",
    make,
};

/// Pages of issues read per poll at most (100 each).
const MAX_PAGES: usize = 10;

/// Ends each comment baton writes: baton's own comments are not what
/// people said to the task.
use baton_core::tracker::MARK;

fn make(source: &Source, _root: &std::path::Path) -> Result<Box<dyn Tracker>, String> {
    let SourceKind::GitHub(g) = &source.kind else {
        return Err(format!("{} is not a GitHub source", source.name));
    };
    let token = token(&g.token_env).ok_or_else(|| {
        format!(
            "the source {} needs a GitHub token in ${} (a fine-grained token with Issues: read and write on {}), or `gh` logged in",
            source.name, g.token_env, g.repo
        )
    })?;
    let client = Client::new(&g.api_url, token)?;
    Ok(Box::new(Issues {
        source: g.clone(),
        client,
    }))
}

/// The token: the variable's value, else what `gh auth token` prints.
fn token(var: &str) -> Option<String> {
    if let Some(t) = std::env::var(var).ok().filter(|t| !t.trim().is_empty()) {
        return Some(t.trim().to_string());
    }
    let out = std::process::Command::new("gh")
        .args(["auth", "token"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let t = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !t.is_empty()).then_some(t)
}

/// A repository's issues with the source's label.
struct Issues {
    source: GitHubSource,
    client: Client,
}

impl Issues {
    async fn list(&self) -> Result<Vec<WorkItem>, TrackerError> {
        let g = &self.source;
        let mut query = format!(
            "state=open&labels={}&per_page=100",
            client::encode(&g.label)
        );
        if let Some(a) = &g.assignee {
            query.push_str(&format!("&assignee={}", client::encode(a)));
        }
        let first = format!("/repos/{}/issues?{query}", g.repo);
        let issues = self.client.get_pages(&first, MAX_PAGES).await?;
        // Pull requests are issues to this endpoint too: they are not work.
        let issues = issues.iter().filter(|i| i.get("pull_request").is_none());
        let mut items: Vec<WorkItem> = issues.filter_map(work_item).collect();
        // Oldest first: work is taken in the order it was asked for.
        items.reverse();
        Ok(items)
    }

    /// An issue's comments, but baton's own: one call (or a page more)
    /// when it has any.
    async fn read_comments(&self, item: &WorkItem) -> Result<Vec<ItemComment>, TrackerError> {
        if item.comment_count == 0 {
            return Ok(Vec::new());
        }
        let number = item.key.trim_start_matches('#');
        let path = format!(
            "/repos/{}/issues/{number}/comments?per_page=100",
            self.source.repo
        );
        let comments = self.client.get_pages(&path, MAX_PAGES).await?;
        let people = comments
            .iter()
            .filter_map(|c| {
                let author = c
                    .pointer("/user/login")
                    .and_then(Value::as_str)
                    .unwrap_or("ghost");
                let body = c.get("body").and_then(Value::as_str)?;
                if body.contains(MARK) {
                    return None;
                }
                Some(ItemComment {
                    author: author.to_string(),
                    body: body.to_string(),
                })
            })
            .collect();
        Ok(people)
    }
}

/// An issue as GitHub's REST API gives it (labels as objects or names).
fn work_item(issue: &Value) -> Option<WorkItem> {
    let number = issue.get("number")?.as_u64()?;
    let labels = issue
        .get("labels")
        .and_then(Value::as_array)
        .map(|ls| {
            ls.iter()
                .filter_map(|l| l.as_str().or_else(|| l.get("name")?.as_str()))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Some(WorkItem {
        key: format!("#{number}"),
        title: issue.get("title")?.as_str()?.to_string(),
        body: issue
            .get("body")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        labels,
        url: issue
            .get("html_url")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        comments: Vec::new(),
        comment_count: issue.get("comments").and_then(Value::as_u64).unwrap_or(0) as u32,
        needs: needs_in(
            issue
                .get("body")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        ),
    })
}

/// The issues an issue's text says it waits for: "Blocked by #12",
/// "depends on #3, #4", and the issues of a task list (`- [ ] #7`).
fn needs_in(body: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |n: &str| {
        let key = format!("#{n}");
        if !out.contains(&key) {
            out.push(key);
        }
    };
    for line in body.lines() {
        let lower = line.to_ascii_lowercase();
        for phrase in ["blocked by", "depends on"] {
            let mut rest = lower.as_str();
            while let Some(at) = rest.find(phrase) {
                rest = &rest[at + phrase.len()..];
                // "#3, #4 and #5": every number right after the phrase.
                let mut list = rest.trim_start();
                while let Some(after) = list.strip_prefix('#') {
                    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
                    if digits.is_empty() {
                        break;
                    }
                    add(&digits);
                    list = after[digits.len()..].trim_start_matches([',', ' ']);
                    list = list.strip_prefix("and ").unwrap_or(list);
                }
            }
        }
        let item = line.trim_start();
        let task = ["- [ ] ", "- [x] ", "- [X] ", "* [ ] ", "* [x] "]
            .iter()
            .find_map(|p| item.strip_prefix(p));
        if let Some(after) = task.and_then(|t| t.trim_start().strip_prefix('#')) {
            let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
            if !digits.is_empty() {
                add(&digits);
            }
        }
    }
    out
}

impl Tracker for Issues {
    fn items(&self) -> baton_core::executor::Boxed<'_, Result<Vec<WorkItem>, TrackerError>> {
        Box::pin(self.list())
    }

    fn comments<'a>(
        &'a self,
        item: &'a WorkItem,
    ) -> baton_core::executor::Boxed<'a, Result<Vec<ItemComment>, TrackerError>> {
        Box::pin(self.read_comments(item))
    }

    fn report<'a>(
        &'a self,
        report: &'a Report,
    ) -> baton_core::executor::Boxed<'a, Result<(), TrackerError>> {
        Box::pin(async move {
            let number = report.item.trim_start_matches('#');
            let path = format!("/repos/{}/issues/{number}/comments", self.source.repo);
            let body = serde_json::json!({ "body": report.text });
            self.client.post(&path, &body).await.map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_testutils::github::GitHub;
    use std::time::Duration;

    fn source(gh: &GitHub, var: &str) -> Source {
        Source {
            name: "github:acme/app#baton".into(),
            kind: SourceKind::GitHub(GitHubSource {
                repo: "acme/app".into(),
                label: "baton".into(),
                assignee: None,
                api_url: gh.url(),
                token_env: var.into(),
                webhook_secret_env: None,
            }),
            poll: Duration::from_secs(60),
            mode: Default::default(),
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn labelled_open_issues_are_work_with_their_comments_and_pull_requests_are_not() {
        let gh = GitHub::start("acme/app", "tok-1");
        let a = gh.open_issue(
            "Add a --json flag",
            "The report should be JSON.",
            &["baton", "cli"],
        );
        gh.comment(a, "maria", "Keep the names snake_case.");
        gh.open_issue("Not for baton", "", &["cli"]);
        gh.open_pull_request("A labelled PR", &["baton"]);
        let b = gh.open_issue("Fix the crash", "", &["baton"]);
        // SAFETY: this test's own variable, set before any thread reads it.
        unsafe { std::env::set_var("BATON_TEST_GH_TOKEN_1", "tok-1") };
        let tracker = make(
            &source(&gh, "BATON_TEST_GH_TOKEN_1"),
            std::path::Path::new("."),
        )
        .unwrap();
        let items = rt().block_on(tracker.items()).unwrap();
        let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, [format!("#{a}"), format!("#{b}")]);
        assert_eq!(items[0].labels, ["baton", "cli"]);
        // Comments are read on asking, not with every listing.
        assert_eq!((items[0].comment_count, items[1].comment_count), (1, 0));
        let read = rt().block_on(tracker.comments(&items[0])).unwrap();
        assert_eq!(read[0].author, "maria");
        let listed = gh
            .calls()
            .iter()
            .filter(|c| c.path.ends_with("/comments"))
            .count();
        assert_eq!(listed, 1, "only the asked-for comments were read");
        assert_eq!(
            items[0].url,
            format!("https://github.com/acme/app/issues/{a}")
        );
        assert_eq!(items[1].body, "");
        let report = Report {
            event: "started",
            item: items[1].key.clone(),
            run: "r".into(),
            task: "t".into(),
            status: None,
            text: baton_core::tracker::marked("on it"),
        };
        rt().block_on(tracker.report(&report)).unwrap();
        let said = "on it\n\n<!-- baton -->".to_string();
        assert_eq!(gh.comments(b), [("baton-bot[bot]".to_string(), said)]);
        // baton's own comments are not what people said.
        let again = rt().block_on(tracker.items()).unwrap();
        assert_eq!(again[1].comment_count, 1);
        let read = rt().block_on(tracker.comments(&again[1])).unwrap();
        assert!(read.is_empty(), "{read:?}");
        // Every call carried the token and asked for the labelled open issues.
        let calls = gh.calls();
        assert!(calls
            .iter()
            .all(|c| c.authorization.as_deref() == Some("Bearer tok-1")));
        assert!(calls[0].query.contains("state=open") && calls[0].query.contains("labels=baton"));
    }

    #[test]
    fn an_issue_says_what_it_waits_for_in_words_or_a_task_list() {
        let body = "Blocked by #12.\nThis depends on #3, #4 and #5 too.\n\n- [ ] #7\n- [x] #8 done\n- [ ] write docs\nSee #99 and blocked by nothing.";
        assert_eq!(needs_in(body), ["#12", "#3", "#4", "#5", "#7", "#8"]);
        assert!(needs_in("").is_empty());
    }

    #[test]
    fn more_than_a_page_of_issues_is_read_through_the_link_header() {
        let gh = GitHub::start("acme/app", "tok-2");
        for n in 0..130 {
            gh.open_issue(&format!("issue {n}"), "", &["baton"]);
        }
        unsafe { std::env::set_var("BATON_TEST_GH_TOKEN_2", "tok-2") };
        let tracker = make(
            &source(&gh, "BATON_TEST_GH_TOKEN_2"),
            std::path::Path::new("."),
        )
        .unwrap();
        let items = rt().block_on(tracker.items()).unwrap();
        assert_eq!(items.len(), 130);
        assert_eq!(items[0].title, "issue 0");
        let pages = gh
            .calls()
            .iter()
            .filter(|c| c.path.ends_with("/issues"))
            .count();
        assert_eq!(pages, 2);
    }

    #[test]
    fn a_bad_token_is_said_as_such_and_a_missing_one_before_any_call() {
        let gh = GitHub::start("acme/app", "right");
        unsafe { std::env::set_var("BATON_TEST_GH_TOKEN_3", "wrong") };
        let tracker = make(
            &source(&gh, "BATON_TEST_GH_TOKEN_3"),
            std::path::Path::new("."),
        )
        .unwrap();
        let err = rt().block_on(tracker.items()).unwrap_err();
        assert!(
            matches!(&err, TrackerError::Credentials(m) if m.contains("Bad credentials")),
            "{err:?}"
        );
        // No `gh` to fall back on (nextest runs each test in its own process).
        let empty = std::env::temp_dir().join("baton-test-no-gh");
        std::fs::create_dir_all(&empty).unwrap();
        unsafe { std::env::set_var("PATH", &empty) };
        let missing = make(
            &source(&gh, "BATON_TEST_GH_TOKEN_UNSET"),
            std::path::Path::new("."),
        )
        .err()
        .unwrap_or_default();
        assert!(
            missing.contains("needs a GitHub token in $BATON_TEST_GH_TOKEN_UNSET"),
            "{missing}"
        );
    }
}
