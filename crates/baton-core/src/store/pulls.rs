//! A run's pull request as baton follows it: a row per run that opened one.
//! What was already handed to a fix attempt (the head whose checks failed,
//! the review comments and reviews) is kept, so that nothing is fixed twice
//! and nothing is lost when baton restarts mid-fix.

use super::{Result, Store};
use crate::clock::now_ms;
use crate::model::PullStatus;
use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq)]
pub struct PullRecord {
    pub run_id: String,
    pub number: u64,
    pub url: String,
    /// `owner/name`.
    pub repo: String,
    /// Its branch (the run's integration branch) and the one it goes into.
    pub head: String,
    pub base: String,
    pub status: PullStatus,
    pub fixes_used: u32,
    /// What its fix attempts cost together.
    pub spent_usd: f64,
    /// The head commit it was last seen at.
    pub seen_sha: Option<String>,
    /// The head commit whose failed checks went to a fix attempt.
    pub handled_sha: Option<String>,
    /// Review comments and reviews that went to a fix attempt.
    pub handled_comments: Vec<u64>,
    pub handled_reviews: Vec<u64>,
    /// The fix attempt going on.
    pub fixing: Option<Fixing>,
    /// Its checks and reviews in a few words, as last seen (`baton status`).
    pub checks: String,
    pub reviews: String,
    /// Why it needs a person, or how it ended.
    pub note: Option<String>,
    pub opened_at: i64,
    pub updated_at: i64,
}

/// A fix attempt going on: its task, why, and the review comments it
/// answers once pushed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fixing {
    pub task: String,
    /// `checks`, `review` or `conflict`.
    pub why: String,
    #[serde(default)]
    pub comments: Vec<u64>,
    /// What its task is told, and by which profile (None: the default):
    /// a baton that stopped before the task was added adds it from these.
    #[serde(default)]
    pub prompt: String,
    #[serde(default)]
    pub agent: Option<String>,
}

fn ids(text: String) -> Vec<u64> {
    serde_json::from_str(&text).unwrap_or_default()
}

impl PullRecord {
    /// A pull request just opened: nothing fixed, seen or spent yet.
    pub fn opened(
        run: &str,
        number: u64,
        url: &str,
        repo: &str,
        head: &str,
        base: &str,
    ) -> PullRecord {
        PullRecord {
            run_id: run.into(),
            number,
            url: url.into(),
            repo: repo.into(),
            head: head.into(),
            base: base.into(),
            status: PullStatus::Following,
            fixes_used: 0,
            spent_usd: 0.0,
            seen_sha: None,
            handled_sha: None,
            handled_comments: Vec::new(),
            handled_reviews: Vec::new(),
            fixing: None,
            checks: String::new(),
            reviews: String::new(),
            note: None,
            opened_at: 0,
            updated_at: 0,
        }
    }

    fn from_row(r: &Row) -> rusqlite::Result<PullRecord> {
        let fixing: Option<String> = r.get("fixing")?;
        Ok(PullRecord {
            run_id: r.get("run_id")?,
            number: r.get::<_, i64>("number")? as u64,
            url: r.get("url")?,
            repo: r.get("repo")?,
            head: r.get("head")?,
            base: r.get("base")?,
            status: r.get("status")?,
            fixes_used: r.get("fixes_used")?,
            spent_usd: r.get("spent_usd")?,
            seen_sha: r.get("seen_sha")?,
            handled_sha: r.get("handled_sha")?,
            handled_comments: ids(r.get("handled_comments")?),
            handled_reviews: ids(r.get("handled_reviews")?),
            fixing: fixing.and_then(|f| serde_json::from_str(&f).ok()),
            checks: r.get("checks")?,
            reviews: r.get("reviews")?,
            note: r.get("note")?,
            opened_at: r.get("opened_at")?,
            updated_at: r.get("updated_at")?,
        })
    }
}

impl Store {
    /// Records the pull request a run opened (or what it is now: every
    /// field but `opened_at` is written).
    pub fn put_pull(&self, p: &PullRecord) -> Result<()> {
        let list = |v: &[u64]| serde_json::Value::from(v.to_vec()).to_string();
        let fixing = match &p.fixing {
            Some(f) => Some(
                serde_json::to_string(f)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?,
            ),
            None => None,
        };
        self.conn().execute(
            "INSERT INTO pulls (run_id, number, url, repo, head, base, status, fixes_used, spent_usd,
                 seen_sha, handled_sha, handled_comments, handled_reviews, fixing, checks, reviews,
                 note, opened_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?19, ?18)
             ON CONFLICT(run_id) DO UPDATE SET number = ?2, url = ?3, repo = ?4, head = ?5,
                 base = ?6, status = ?7, fixes_used = ?8, spent_usd = ?9, seen_sha = ?10,
                 handled_sha = ?11, handled_comments = ?12, handled_reviews = ?13, fixing = ?14,
                 checks = ?15, reviews = ?16, note = ?17, updated_at = ?18",
            params![
                p.run_id,
                p.number as i64,
                p.url,
                p.repo,
                p.head,
                p.base,
                p.status,
                p.fixes_used,
                p.spent_usd,
                p.seen_sha,
                p.handled_sha,
                list(&p.handled_comments),
                list(&p.handled_reviews),
                fixing,
                p.checks,
                p.reviews,
                p.note,
                now_ms(),
                if p.opened_at > 0 { p.opened_at } else { now_ms() },
            ],
        )?;
        Ok(())
    }

    pub fn pull(&self, run: &str) -> Result<Option<PullRecord>> {
        Ok(self
            .reader()
            .query_row(
                "SELECT * FROM pulls WHERE run_id = ?1",
                [run],
                PullRecord::from_row,
            )
            .optional()?)
    }

    /// The pull requests baton follows (`serve` picks them up at start).
    pub fn followed_pulls(&self) -> Result<Vec<PullRecord>> {
        let conn = self.reader();
        let mut st = conn
            .prepare_cached("SELECT * FROM pulls WHERE status = 'following' ORDER BY opened_at")?;
        let rows = st.query_map([], PullRecord::from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pull_row_keeps_what_was_handed_to_fixes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("b.db")).unwrap();
        let mut p = PullRecord::opened(
            "r1",
            7,
            "https://github.com/a/b/pull/7",
            "a/b",
            "baton/r1",
            "main",
        );
        p.opened_at = 5;
        store.put_pull(&p).unwrap();
        p.fixes_used = 1;
        p.handled_comments = vec![11, 12];
        p.fixing = Some(Fixing {
            task: "fix-1-review".into(),
            why: "review".into(),
            comments: vec![11, 12],
            prompt: "address the review".into(),
            agent: None,
        });
        store.put_pull(&p).unwrap();
        let back = store.pull("r1").unwrap().unwrap();
        assert_eq!(back.fixes_used, 1);
        assert_eq!(back.handled_comments, vec![11, 12]);
        assert_eq!(back.fixing, p.fixing);
        assert_eq!(back.opened_at, 5, "opened_at is written once");
        assert_eq!(store.followed_pulls().unwrap().len(), 1);
        p.status = PullStatus::Merged;
        store.put_pull(&p).unwrap();
        assert!(store.followed_pulls().unwrap().is_empty());
        assert_eq!(store.pull("r2").unwrap(), None);
    }
}
