//! Trackers work comes from (`[[source]]`): the seam, and what baton says
//! to them. A tracker lists the items that are work now and takes comments;
//! its client (GitHub's REST API) lives in a crate of its own, registered by
//! the binary ([`TrackerKind`]), as executors' drivers are. What an item
//! becomes (a task's prompt) and what baton writes back are decided here,
//! the same for every tracker.

pub mod command;

use crate::executor::Boxed;
use crate::plan::Source;
use serde::Serialize;
use std::path::Path;

/// One piece of work in a tracker (an issue).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkItem {
    /// Its key in the tracker (`#12`), unique within its source.
    pub key: String,
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
    /// Its page, for people.
    pub url: String,
    /// What people said on it, oldest first, for a tracker that lists
    /// them with the item; others give them on asking ([`Tracker::comments`]).
    pub comments: Vec<ItemComment>,
    /// How many comments the tracker counts on it (its own too): while it
    /// stays the same, its comments are not asked for again.
    pub comment_count: u32,
    /// The keys of items it waits for ("Blocked by #12"): those that are
    /// baton's work too become its task's `needs`.
    pub needs: Vec<String>,
}

/// Items in the order they are taken: each after the listed items it
/// needs (a cycle is broken where the listing has it), else as listed.
pub fn in_needs_order(items: Vec<WorkItem>) -> Vec<WorkItem> {
    let index: std::collections::HashMap<&str, usize> = items
        .iter()
        .enumerate()
        .map(|(i, it)| (it.key.as_str(), i))
        .collect();
    // 0: not seen, 1: on the way (a cycle stops there), 2: placed. Walked
    // with a stack of its own: a listing's chain of needs can be long.
    let mut state = vec![0u8; items.len()];
    let mut order = Vec::with_capacity(items.len());
    for start in 0..items.len() {
        if state[start] != 0 {
            continue;
        }
        state[start] = 1;
        let mut stack = vec![(start, 0usize)];
        while let Some((i, next)) = stack.last_mut() {
            let i = *i;
            match items[i].needs.get(*next) {
                Some(need) => {
                    *next += 1;
                    if let Some(&j) = index.get(need.as_str()) {
                        if state[j] == 0 {
                            state[j] = 1;
                            stack.push((j, 0));
                        }
                    }
                }
                None => {
                    state[i] = 2;
                    order.push(i);
                    stack.pop();
                }
            }
        }
    }
    let mut slots: Vec<Option<WorkItem>> = items.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct ItemComment {
    pub author: String,
    pub body: String,
}

/// Why a tracker could not be asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrackerError {
    /// It refused the credentials (a bad or missing token).
    #[error("{0}")]
    Credentials(String),
    /// It asked to wait (a rate limit) until this time (ms since the epoch).
    #[error("{why} (until {until_ms} ms)")]
    Limited { why: String, until_ms: i64 },
    #[error("{0}")]
    Other(String),
}

/// How long a rate limit that holds until `until_ms` is waited out: whole
/// (a webhook does not cut it short), at least a second, and then a look
/// at once, whatever the poll (with webhooks it may be far off).
pub fn limit_wait(until_ms: i64) -> std::time::Duration {
    let left = (until_ms - crate::clock::now_ms()).max(0) as u64;
    std::time::Duration::from_millis(left).max(std::time::Duration::from_secs(1))
}

/// What baton tells a tracker about one of its items.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `started` or `ended`.
    pub event: &'static str,
    /// The item's key.
    pub item: String,
    pub run: String,
    pub task: String,
    /// How the task ended (`succeeded`, `failed`, ...); None when it starts.
    pub status: Option<String>,
    /// The same in a person's words (a comment's text).
    pub text: String,
}

/// A tracker baton takes work from and reports to.
pub trait Tracker: Send + Sync {
    /// The items that are work now.
    fn items(&self) -> Boxed<'_, Result<Vec<WorkItem>, TrackerError>>;
    /// What people said on `item`, oldest first (not what baton said). By
    /// default, what the listing gave.
    fn comments<'a>(
        &'a self,
        item: &'a WorkItem,
    ) -> Boxed<'a, Result<Vec<ItemComment>, TrackerError>> {
        Box::pin(async move { Ok(item.comments.clone()) })
    }
    /// Tells the tracker about one of its items (a comment on an issue).
    fn report<'a>(&'a self, report: &'a Report) -> Boxed<'a, Result<(), TrackerError>>;
}

/// A tracker made from its settings, or why it cannot be.
pub type Made = Result<Box<dyn Tracker>, String>;

/// How the binary makes a tracker of one kind from its settings (and the
/// repository's root, where a tracker's commands run).
pub struct TrackerKind {
    pub kind: &'static str,
    pub make: fn(&Source, &Path) -> Made,
}

/// The maker of `source`'s kind among `kinds`.
pub fn make(
    kinds: &[&TrackerKind],
    source: &Source,
    root: &Path,
) -> Result<Box<dyn Tracker>, String> {
    let kind = source.kind();
    let found = kinds.iter().find(|k| k.kind == kind);
    let maker = found.ok_or_else(|| format!("this baton has no {kind} tracker"))?;
    (maker.make)(source, root)
}

/// Ends everything baton writes to a tracker (markdown hides it): what
/// carries it is baton's own, never passed back to a task as a person's.
pub const MARK: &str = "<!-- baton -->";

/// `text` with baton's mark.
pub fn marked(text: &str) -> String {
    format!("{text}\n\n{MARK}")
}

/// The task's prompt: the item's title and text, then what people said.
pub fn prompt(item: &WorkItem) -> String {
    let mut out = format!("{} ({})\n\n{}", item.title, item.url, item.body.trim());
    if !item.comments.is_empty() {
        out.push_str("\n\nComments on it, oldest first:");
        for c in &item.comments {
            out.push_str(&format!("\n\n{} wrote:\n{}", c.author, c.body.trim()));
        }
    }
    out.trim_end().to_string()
}

/// What the tracker is told when its item's task starts.
pub fn started_comment(run: &str, task: &str, agent: Option<&str>, link: Option<&str>) -> String {
    let who = agent
        .map(|a| format!(" by agent profile `{a}`"))
        .unwrap_or_default();
    let mut out = format!("baton took this on as task `{task}` of run `{run}`{who}.");
    if let Some(l) = link {
        out.push_str(&format!(" Follow it at {l}"));
    }
    out
}

/// How a task ended, in the words of a comment on its item.
pub struct Ended<'a> {
    pub run: &'a str,
    pub task: &'a str,
    pub succeeded: bool,
    /// Its status's word (`succeeded`, `failed`, `stopped`).
    pub status: &'a str,
    pub reason: Option<&'a str>,
    pub cost_usd: Option<f64>,
    /// Where its work is (the run's integration branch) when it succeeded.
    pub branch: Option<&'a str>,
}

/// What the tracker is told when a planner's plan for its item runs.
pub fn planned_comment(run: &str, tasks: &[String]) -> String {
    let list: Vec<String> = tasks.iter().map(|t| format!("`{t}`")).collect();
    format!(
        "baton planned this as {} task{} ({}), running as run `{run}`.",
        tasks.len(),
        if tasks.len() == 1 { "" } else { "s" },
        list.join(", ")
    )
}

/// How a task ended, or a whole run (`task` empty: an item that was planned).
pub fn ended_comment(e: &Ended<'_>) -> String {
    let cost = e
        .cost_usd
        .map(|c| format!(" It cost ${c:.2}."))
        .unwrap_or_default();
    if e.task.is_empty() {
        return run_ended_comment(e, &cost);
    }
    if e.succeeded {
        let at = e
            .branch
            .map(|b| format!(" Its work is merged into `{b}`."))
            .unwrap_or_default();
        format!("Task `{}` of run `{}` succeeded.{at}{cost}", e.task, e.run)
    } else {
        let why = e.reason.map(|r| format!(": {r}")).unwrap_or_default();
        format!(
            "Task `{}` of run `{}` {}{why}.{cost} Retry it with `baton retry {} --run {}`.",
            e.task, e.run, e.status, e.task, e.run
        )
    }
}

fn run_ended_comment(e: &Ended<'_>, cost: &str) -> String {
    if e.succeeded {
        let at = e
            .branch
            .map(|b| format!(" Its work is merged into `{b}`."))
            .unwrap_or_default();
        format!("Run `{}` succeeded.{at}{cost}", e.run)
    } else {
        let why = e.reason.map(|r| format!(": {r}")).unwrap_or_default();
        format!(
            "Run `{}` {}{why}.{cost} Its tasks can be retried with `baton retry TASK --run {}`.",
            e.run, e.status, e.run
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_items_prompt_holds_its_title_text_and_comments() {
        let item = WorkItem {
            key: "#7".into(),
            title: "Add a --json flag".into(),
            body: "The report should be JSON.\n".into(),
            labels: vec!["baton".into()],
            url: "https://github.com/a/b/issues/7".into(),
            comments: vec![ItemComment {
                author: "maria".into(),
                body: "Keep the field names snake_case.".into(),
            }],
            comment_count: 1,
            needs: Vec::new(),
        };
        let p = prompt(&item);
        assert!(p.starts_with(
            "Add a --json flag (https://github.com/a/b/issues/7)\n\nThe report should be JSON."
        ));
        assert!(
            p.ends_with("maria wrote:\nKeep the field names snake_case."),
            "{p}"
        );
    }

    #[test]
    fn items_come_after_the_listed_items_they_need() {
        let item = |key: &str, needs: &[&str]| WorkItem {
            key: key.into(),
            title: key.into(),
            body: String::new(),
            labels: Vec::new(),
            url: String::new(),
            comments: Vec::new(),
            comment_count: 0,
            needs: needs.iter().map(|n| n.to_string()).collect(),
        };
        let order = in_needs_order(vec![
            item("#1", &["#3"]),
            item("#2", &[]),
            item("#3", &["#4", "#9"]),
            item("#4", &[]),
            item("#5", &["#6"]),
            item("#6", &["#5"]),
        ]);
        let keys: Vec<&str> = order.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["#4", "#3", "#1", "#2", "#6", "#5"]);
        // A chain far deeper than a stack would take.
        let chain: Vec<WorkItem> = (0..200_000)
            .map(|n| item(&format!("#{n}"), &[&format!("#{}", n + 1)]))
            .collect();
        let order = in_needs_order(chain);
        assert_eq!(order[0].key, "#199999");
        assert_eq!(order.len(), 200_000);
    }

    #[test]
    fn comments_say_what_happened_and_how_to_go_on() {
        let ok = ended_comment(&Ended {
            run: "r1",
            task: "t1",
            succeeded: true,
            status: "succeeded",
            reason: None,
            cost_usd: Some(0.126),
            branch: Some("baton/r1/integration"),
        });
        assert_eq!(ok, "Task `t1` of run `r1` succeeded. Its work is merged into `baton/r1/integration`. It cost $0.13.");
        let bad = ended_comment(&Ended {
            run: "r1",
            task: "t1",
            succeeded: false,
            status: "failed",
            reason: Some("gate `cargo test` failed with exit status 101"),
            cost_usd: None,
            branch: None,
        });
        assert!(bad.contains("failed: gate `cargo test` failed"), "{bad}");
        assert!(bad.contains("baton retry t1 --run r1"), "{bad}");
        let start = started_comment("r1", "t1", Some("claude"), Some("http://h/runs/r1"));
        assert_eq!(start, "baton took this on as task `t1` of run `r1` by agent profile `claude`. Follow it at http://h/runs/r1");
    }
}
