//! `[[schedule]]`s as `baton serve` keeps them: when each fires next (for
//! `baton runs` and the dashboard), and what it started last, so that a
//! schedule never overlaps itself, across restarts too.

use super::{Result, Store};
use rusqlite::{params, OptionalExtension, Row};

#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRow {
    pub name: String,
    pub cron: String,
    /// Seconds since the epoch; None: it names no time any more.
    pub next_at: Option<i64>,
    pub last_fired_at: Option<i64>,
    pub last_run_id: Option<String>,
    /// The task it queued last (a `prompt` schedule).
    pub last_task_id: Option<String>,
    /// When its time last came while what it started still went on.
    pub last_skipped_at: Option<i64>,
}

impl ScheduleRow {
    fn from_row(r: &Row) -> rusqlite::Result<ScheduleRow> {
        Ok(ScheduleRow {
            name: r.get("name")?,
            cron: r.get("cron")?,
            next_at: r.get("next_at")?,
            last_fired_at: r.get("last_fired_at")?,
            last_run_id: r.get("last_run_id")?,
            last_task_id: r.get("last_task_id")?,
            last_skipped_at: r.get("last_skipped_at")?,
        })
    }
}

impl Store {
    /// Records when schedule `name` fires next.
    pub fn set_schedule_next(&self, name: &str, cron: &str, next_at: Option<i64>) -> Result<()> {
        self.conn().execute(
            "INSERT INTO schedules (name, cron, next_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(name) DO UPDATE SET cron = ?2, next_at = ?3",
            params![name, cron, next_at],
        )?;
        Ok(())
    }

    /// Records what schedule `name` started at `at` (seconds).
    pub fn schedule_fired(&self, name: &str, at: i64, run: &str, task: Option<&str>) -> Result<()> {
        self.conn().execute(
            "UPDATE schedules SET last_fired_at = ?2, last_run_id = ?3, last_task_id = ?4 WHERE name = ?1",
            params![name, at, run, task],
        )?;
        Ok(())
    }

    /// Records that schedule `name`'s time `at` was skipped (it still ran).
    pub fn schedule_skipped(&self, name: &str, at: i64) -> Result<()> {
        self.conn().execute(
            "UPDATE schedules SET last_skipped_at = ?2 WHERE name = ?1",
            params![name, at],
        )?;
        Ok(())
    }

    pub fn schedule(&self, name: &str) -> Result<Option<ScheduleRow>> {
        Ok(self
            .reader()
            .query_row(
                "SELECT * FROM schedules WHERE name = ?1",
                [name],
                ScheduleRow::from_row,
            )
            .optional()?)
    }

    /// Every schedule, by name.
    pub fn schedules(&self) -> Result<Vec<ScheduleRow>> {
        let conn = self.reader();
        let mut st = conn.prepare_cached("SELECT * FROM schedules ORDER BY name")?;
        let rows = st.query_map([], ScheduleRow::from_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;

    #[test]
    fn a_schedule_keeps_its_next_time_and_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("baton.db")).unwrap();
        store
            .set_schedule_next("nightly", "0 3 * * *", Some(100))
            .unwrap();
        store.schedule_fired("nightly", 100, "r1", None).unwrap();
        store
            .set_schedule_next("nightly", "0 3 * * *", Some(200))
            .unwrap();
        store.schedule_skipped("nightly", 200).unwrap();
        let row = store.schedule("nightly").unwrap().unwrap();
        assert_eq!((row.next_at, row.last_fired_at), (Some(200), Some(100)));
        assert_eq!(row.last_run_id.as_deref(), Some("r1"));
        assert_eq!(row.last_skipped_at, Some(200));
        assert_eq!(store.schedules().unwrap().len(), 1);
        assert!(store.schedule("other").unwrap().is_none());
    }
}
