//! Work taken from trackers: a row per item that became a task, so that an
//! item is taken once (across restarts of `baton serve`) and its end is
//! reported back once.

use super::{Result, Store};
use crate::clock::now_ms;
use rusqlite::{params, OptionalExtension, Row};

#[derive(Debug, Clone, PartialEq)]
pub struct SourceItem {
    /// The source's name (`github:owner/repo#label`).
    pub source: String,
    /// The item's key in its tracker (`#12`).
    pub item: String,
    pub run_id: String,
    pub task_id: String,
    pub title: String,
    pub url: String,
    pub taken_at: i64,
    /// When its end was reported to the tracker; None: not yet.
    pub reported_at: Option<i64>,
    /// When the tracker was told its task started; None: not yet (it is
    /// told again until it hears).
    pub started_told_at: Option<i64>,
    /// How many of its comments the task has had (in its prompt, or as
    /// messages since).
    pub comments_seen: u32,
    /// The tracker's comment count (its own comments too) when they were
    /// last read: while it stays, they are not read again.
    pub count_seen: u32,
    /// Its labels as its task last heard them; None: not recorded yet.
    pub labels_seen: Option<Vec<String>>,
}

impl SourceItem {
    fn from_row(r: &Row) -> rusqlite::Result<SourceItem> {
        Ok(SourceItem {
            source: r.get("source")?,
            item: r.get("item")?,
            run_id: r.get("run_id")?,
            task_id: r.get("task_id")?,
            title: r.get("title")?,
            url: r.get("url")?,
            taken_at: r.get("taken_at")?,
            reported_at: r.get("reported_at")?,
            started_told_at: r.get("started_told_at")?,
            comments_seen: r.get("comments_seen")?,
            count_seen: r.get("count_seen")?,
            labels_seen: r
                .get::<_, Option<String>>("labels_seen")?
                .and_then(|t| serde_json::from_str(&t).ok()),
        })
    }
}

impl Store {
    /// Records that `item` of `source` became task `task` of `run`.
    pub fn take_source_item(&self, item: &SourceItem) -> Result<()> {
        self.conn().execute(
            "INSERT INTO source_items (source, item, run_id, task_id, title, url, taken_at, comments_seen, count_seen, labels_seen)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                item.source,
                item.item,
                item.run_id,
                item.task_id,
                item.title,
                item.url,
                now_ms(),
                item.comments_seen,
                item.count_seen,
                item.labels_seen
                    .as_ref()
                    .and_then(|l| serde_json::to_string(l).ok())
            ],
        )?;
        Ok(())
    }

    /// Where an item's task went (a task queued again after a crash may be
    /// in a newer service run).
    pub fn move_source_item(&self, source: &str, item: &str, run: &str, task: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE source_items SET run_id = ?3, task_id = ?4 WHERE source = ?1 AND item = ?2",
            params![source, item, run, task],
        )?;
        Ok(())
    }

    /// Drops the row of an item whose task could not be queued (it is
    /// taken again next time).
    pub fn forget_source_item(&self, source: &str, item: &str) -> Result<()> {
        self.conn().execute(
            "DELETE FROM source_items WHERE source = ?1 AND item = ?2",
            params![source, item],
        )?;
        Ok(())
    }

    pub fn source_item(&self, source: &str, item: &str) -> Result<Option<SourceItem>> {
        Ok(self
            .reader()
            .query_row(
                "SELECT * FROM source_items WHERE source = ?1 AND item = ?2",
                params![source, item],
                SourceItem::from_row,
            )
            .optional()?)
    }

    /// The items of `source` whose end is not reported yet, oldest first.
    pub fn unreported_source_items(&self, source: &str) -> Result<Vec<SourceItem>> {
        let conn = self.reader();
        let mut st = conn.prepare_cached(
            "SELECT * FROM source_items WHERE source = ?1 AND reported_at IS NULL ORDER BY taken_at",
        )?;
        let rows = st.query_map([source], SourceItem::from_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The items taken from `source`, newest first, at most `limit`.
    pub fn source_items(&self, source: &str, limit: usize) -> Result<Vec<SourceItem>> {
        let conn = self.reader();
        let mut st = conn.prepare_cached(
            "SELECT * FROM source_items WHERE source = ?1 ORDER BY taken_at DESC LIMIT ?2",
        )?;
        let rows = st.query_map(params![source, limit as i64], SourceItem::from_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The items whose tasks are in `run`, oldest first.
    pub fn run_source_items(&self, run: &str) -> Result<Vec<SourceItem>> {
        let conn = self.reader();
        let mut st =
            conn.prepare_cached("SELECT * FROM source_items WHERE run_id = ?1 ORDER BY taken_at")?;
        let rows = st.query_map([run], SourceItem::from_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The tracker heard that the item's task started.
    pub fn mark_source_item_started(&self, source: &str, item: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE source_items SET started_told_at = ?3 WHERE source = ?1 AND item = ?2",
            params![source, item, now_ms()],
        )?;
        Ok(())
    }

    /// The task has had `n` of the item's comments, read when the tracker
    /// counted `count`.
    /// The labels of `item` its task has heard of.
    pub fn set_source_labels_seen(
        &self,
        source: &str,
        item: &str,
        labels: &[String],
    ) -> Result<()> {
        let text = serde_json::to_string(labels).unwrap_or_else(|_| "[]".into());
        self.conn().execute(
            "UPDATE source_items SET labels_seen = ?3 WHERE source = ?1 AND item = ?2",
            params![source, item, text],
        )?;
        Ok(())
    }

    pub fn set_source_comments_seen(
        &self,
        source: &str,
        item: &str,
        n: u32,
        count: u32,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE source_items SET comments_seen = ?3, count_seen = ?4 WHERE source = ?1 AND item = ?2",
            params![source, item, n, count],
        )?;
        Ok(())
    }

    pub fn mark_source_item_reported(&self, source: &str, item: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE source_items SET reported_at = ?3 WHERE source = ?1 AND item = ?2",
            params![source, item, now_ms()],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::SourceItem;
    use crate::store::Store;

    #[test]
    fn an_item_is_taken_once_and_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("baton.db")).unwrap();
        let item = SourceItem {
            source: "github:a/b#baton".into(),
            item: "#3".into(),
            run_id: "r".into(),
            task_id: "t1-fix".into(),
            title: "Fix it".into(),
            url: "https://github.com/a/b/issues/3".into(),
            taken_at: 0,
            reported_at: None,
            started_told_at: None,
            comments_seen: 1,
            count_seen: 1,
            labels_seen: None,
        };
        store.take_source_item(&item).unwrap();
        store
            .set_source_comments_seen("github:a/b#baton", "#3", 4, 6)
            .unwrap();
        store
            .mark_source_item_started("github:a/b#baton", "#3")
            .unwrap();
        assert!(store.take_source_item(&item).is_err(), "taken twice");
        let open = store.unreported_source_items("github:a/b#baton").unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].task_id, "t1-fix");
        store
            .mark_source_item_reported("github:a/b#baton", "#3")
            .unwrap();
        assert!(store
            .unreported_source_items("github:a/b#baton")
            .unwrap()
            .is_empty());
        let kept = store
            .source_item("github:a/b#baton", "#3")
            .unwrap()
            .unwrap();
        assert!(kept.reported_at.is_some());
        assert_eq!((kept.comments_seen, kept.count_seen), (4, 6));
        assert!(kept.started_told_at.is_some());
        assert!(store
            .source_item("github:a/b#baton", "#4")
            .unwrap()
            .is_none());
    }
}
