//! Review comments on a task's lines: drafts until sent, then kept with
//! when they went (see [`crate::review`]).

use super::{Result, Store};
use crate::clock::now_ms;
use crate::review::Comment;
use rusqlite::{params, Row};

fn comment(r: &Row) -> rusqlite::Result<Comment> {
    Ok(Comment {
        id: r.get("id")?,
        run: r.get("run_id")?,
        task: r.get("task_id")?,
        path: r.get("path")?,
        line: r.get("line")?,
        text: r.get("text")?,
        hunk: r.get("hunk")?,
        commit: r.get("commit_at")?,
        created_at: r.get("created_at")?,
        submitted_at: r.get("submitted_at")?,
    })
}

impl Store {
    /// Keeps a draft comment (masked like every message); its id.
    pub fn add_comment(&self, c: &Comment) -> Result<i64> {
        let text = self.mask_for_run(&c.run, &c.text)?;
        let hunk = self.mask_for_run(&c.run, &c.hunk)?;
        let conn = self.conn();
        conn.execute(
            "INSERT INTO review_comments (run_id, task_id, path, line, text, hunk, commit_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![c.run, c.task, c.path, c.line, text, hunk, c.commit, now_ms()],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// A task's comments, oldest first (drafts and sent).
    pub fn comments(&self, run: &str, task: &str) -> Result<Vec<Comment>> {
        let conn = self.reader();
        let mut st = conn.prepare_cached(
            "SELECT * FROM review_comments WHERE run_id = ?1 AND task_id = ?2 ORDER BY id",
        )?;
        let rows = st.query_map(params![run, task], comment)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Forgets a draft; false when there is no such draft of the task.
    pub fn drop_comment(&self, run: &str, task: &str, id: i64) -> Result<bool> {
        let n = self.conn().execute(
            "DELETE FROM review_comments WHERE id = ?1 AND run_id = ?2 AND task_id = ?3 AND submitted_at IS NULL",
            params![id, run, task],
        )?;
        Ok(n == 1)
    }

    /// Marks the drafts `ids` sent now.
    pub fn comments_sent(&self, ids: &[i64]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let now = now_ms();
        for id in ids {
            tx.execute(
                "UPDATE review_comments SET submitted_at = ?2 WHERE id = ?1 AND submitted_at IS NULL",
                params![id, now],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}
