//! Where pull requests live (GitHub today): the seam baton follows a pull
//! request through. A forge opens one, says its state, its checks (with
//! the failed jobs' logs), its reviews and review comments, takes
//! comments, replies and the merge. Its client lives in a crate of its
//! own, registered by the binary ([`ForgeKind`]), as trackers' are; what
//! baton does with what it says is decided in [`crate::follow`].

use crate::executor::Boxed;
use crate::plan::PullSettings;
pub use crate::tracker::TrackerError as ForgeError;

/// A pull request to open.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPull {
    pub title: String,
    pub body: String,
    /// The branch with the work.
    pub head: String,
    /// The branch it goes into.
    pub base: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullState {
    Open,
    Closed,
    Merged,
}

/// A pull request as the forge has it now.
#[derive(Debug, Clone, PartialEq)]
pub struct Pull {
    pub number: u64,
    pub url: String,
    pub state: PullState,
    /// The commit its branch is at.
    pub head_sha: String,
    pub base: String,
    /// Whether it merges into its base without conflict (None: the forge
    /// is still working it out).
    pub mergeable: Option<bool>,
}

/// One check on a commit (a CI job).
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub id: u64,
    pub name: String,
    /// Still queued or running.
    pub pending: bool,
    /// `success`, `failure`, `timed_out`, `cancelled`, `neutral`,
    /// `skipped`, `action_required`, ... (None while pending).
    pub conclusion: Option<String>,
    /// Its page, for people.
    pub url: Option<String>,
    /// What it said about itself (title and summary).
    pub summary: String,
}

impl Check {
    /// It ended and did not pass.
    pub fn failed(&self) -> bool {
        !self.pending
            && matches!(
                self.conclusion.as_deref(),
                Some("failure" | "timed_out" | "cancelled" | "action_required" | "startup_failure")
            )
    }
}

/// A review of a pull request.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    pub id: u64,
    pub author: String,
    /// `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`, `DISMISSED`.
    pub state: String,
    pub body: String,
}

/// A comment on a line of a pull request's diff.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewComment {
    pub id: u64,
    pub author: String,
    pub path: String,
    pub line: Option<u64>,
    /// The diff around it.
    pub hunk: String,
    pub body: String,
    /// The comment it answers (a thread's first comment has none).
    pub in_reply_to: Option<u64>,
}

/// A forge baton opens pull requests on and follows them through.
pub trait Forge: Send + Sync {
    fn open(&self, new: &NewPull) -> Boxed<'_, Result<Pull, ForgeError>>;
    fn pull(&self, number: u64) -> Boxed<'_, Result<Pull, ForgeError>>;
    /// The checks on `sha`, each once (its latest run).
    fn checks<'a>(&'a self, sha: &'a str) -> Boxed<'a, Result<Vec<Check>, ForgeError>>;
    /// The end of a failed check's log (at most `lines` lines).
    fn log_tail<'a>(
        &'a self,
        check: &'a Check,
        lines: usize,
    ) -> Boxed<'a, Result<String, ForgeError>>;
    fn reviews(&self, number: u64) -> Boxed<'_, Result<Vec<Review>, ForgeError>>;
    fn review_comments(&self, number: u64) -> Boxed<'_, Result<Vec<ReviewComment>, ForgeError>>;
    /// Answers review comment `to` in its thread.
    fn reply<'a>(
        &'a self,
        number: u64,
        to: u64,
        body: &'a str,
    ) -> Boxed<'a, Result<(), ForgeError>>;
    /// Comments on issue or pull request `number`.
    fn comment<'a>(&'a self, number: u64, body: &'a str) -> Boxed<'a, Result<(), ForgeError>>;
    /// Merges it at `sha` (refused if its branch moved) with the method the
    /// repository allows; the merge commit.
    fn merge<'a>(&'a self, number: u64, sha: &'a str) -> Boxed<'a, Result<String, ForgeError>>;
    /// Closes issue `number` as done, if it is open.
    fn close_issue(&self, number: u64) -> Boxed<'_, Result<(), ForgeError>>;
}

/// Makes a forge's client for `repo` (`owner/name`) with the settings' token.
pub type MakeForge = fn(&PullSettings, &str) -> Result<Box<dyn Forge>, String>;

/// A kind of forge the binary can follow pull requests on.
pub struct ForgeKind {
    pub kind: &'static str,
    pub make: MakeForge,
}

/// The forge for `settings` (GitHub is the only kind there is yet).
pub fn make(
    kinds: &[&ForgeKind],
    settings: &PullSettings,
    repo: &str,
) -> Result<Box<dyn Forge>, String> {
    let kind = kinds
        .iter()
        .find(|k| k.kind == "github")
        .ok_or("this baton was built without a GitHub client: it cannot follow pull requests")?;
    (kind.make)(settings, repo)
}
