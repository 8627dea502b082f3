//! One inbox of everything that needs a person, across the repository's
//! runs: questions agents asked, tasks waiting for approval, tasks that
//! failed or conflicted with their retries used up, tasks held by a
//! provider's limit, pull requests baton stopped fixing, and plans a
//! planner wrote that wait for a yes. Each item's id is the number of the
//! event that opened it (a question's id is its own; a plan's is its
//! planner's success), so an id never changes and names one thing; `since`
//! is that event's time.

pub use crate::model::ItemKind;
use serde::Serialize;

/// Runs that ended longer ago than this no longer fill the inbox (their
/// tasks can still be retried by name).
pub const ENDED_RUNS_SHOWN_MS: i64 = 24 * 3600 * 1000;

/// One thing that needs a person.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub id: i64,
    pub kind: ItemKind,
    pub run: String,
    pub task: Option<String>,
    /// What it is about, in words.
    pub text: String,
    /// A question's choices (empty: any answer, or not a question).
    pub options: Vec<String>,
    /// When it came in (ms since the epoch).
    pub since: i64,
    /// What a person can do: `answer`, `approve`, `retry`, `stop`,
    /// `discard` (a plan).
    pub actions: Vec<&'static str>,
    /// When a question's time runs out, if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// A question's default answer at its timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}
