//! The store: one SQLite database (WAL) per repository holding runs, tasks,
//! attempts, an append-only event log and the control requests that other
//! processes send to a running engine. Every view is read from here.

mod inbox;
mod messages;
mod notify;
mod ports;
mod proposals;
mod pulls;
mod questions;
mod records;
mod reviews;
mod schedules;
mod sources;
mod stats;

pub use messages::Message;
pub use ports::PORT_RANGE;
pub use pulls::{Fixing, PullRecord};
pub use questions::{Answered, QuestionRecord};
pub use records::{AttemptRecord, Control, Event, RunRecord, TaskRecord, WireUsageRecord};
pub use schedules::ScheduleRow;
pub use sources::SourceItem;

use crate::clock::now_ms;
use crate::model::{Activity, AttemptStatus, ControlKind, RunStatus, TaskStatus};
use crate::payload::Payload;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("store: cannot create {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no run {0:?} in this repository")]
    NoSuchRun(String),
    #[error("no runs in this repository yet; start one with `baton run`")]
    NoRuns,
    /// A lead's cap on the tasks it may add, counted where they are added.
    #[error("max_tasks reached: {limit} task{} may be added to run {run}, and {added} {} been", if *limit == 1 { "" } else { "s" }, if *added == 1 { "has" } else { "have" })]
    Capped { run: String, limit: u32, added: u32 },
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub struct Store {
    /// Wakes readers (the server's event stream) when an event is appended.
    events_tx: tokio::sync::broadcast::Sender<i64>,
    /// Every write goes through this connection.
    conn: Mutex<Connection>,
    /// Reads use their own connection: in WAL mode they never wait for a
    /// writer, so views stay quick while a run writes.
    reader: Mutex<Connection>,
    path: PathBuf,
    /// The database file this store opened (device, inode), to notice it
    /// removed or replaced under a live run.
    file: Option<(u64, u64)>,
    /// The longest the file was seen: shorter now means it was cut.
    longest: std::sync::atomic::AtomicU64,
    /// Every run sharing this store adds its secrets: all of them are masked.
    redactors: std::sync::RwLock<Vec<std::sync::Arc<crate::secrets::Redactor>>>,
}

/// What an attempt used so far.
#[derive(Debug, Default, Clone)]
pub struct AttemptUsage<'a> {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cost_usd: Option<f64>,
    pub model: Option<&'a str>,
    /// The gateway's count: cached input read and written, and requests
    /// (None: the attempt did not go through it).
    pub wire: Option<WireCount>,
}

/// What the model gateway counted of an attempt beyond tokens and cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireCount {
    pub cache_read: u64,
    pub cache_write: u64,
    pub requests: u64,
}

/// What an agent itself reported it used, kept beside the gateway's count.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reported {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: Option<f64>,
}

/// The columns a task update may set; None leaves a column as it is.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TaskUpdate {
    pub status: Option<TaskStatus>,
    pub attempts: Option<u32>,
    pub failures: Option<u32>,
    pub worktree: Option<String>,
    pub start_commit: Option<String>,
    pub commit_id: Option<String>,
    pub merged: Option<bool>,
    pub result: Option<String>,
    pub reason: Option<Option<String>>,
    pub feedback: Option<Option<String>>,
    pub files: Option<Vec<String>>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// A person asked for a retry: failures count from this attempt on.
    pub retry_from: Option<u32>,
    /// What the task is doing now (Some(None): nothing to say).
    pub activity: Option<Option<Activity>>,
    /// Whether `[workspace] setup` has run in its worktree.
    pub setup_done: Option<bool>,
    /// The profile that runs it now (a fallback took over).
    pub agent: Option<String>,
}

/// Each connection's page cache: negative is KiB, in SQLite's words.
const CACHE_KIB: i64 = -512;

/// Columns added after the first schema, in order; `PRAGMA user_version`
/// counts how many a database has.
const MIGRATIONS: &[&str] = &[
    "ALTER TABLE tasks ADD COLUMN activity TEXT",
    "ALTER TABLE tasks ADD COLUMN session_id TEXT",
    "ALTER TABLE tasks ADD COLUMN last_output_at INTEGER",
    "ALTER TABLE attempts ADD COLUMN session_id TEXT",
    "ALTER TABLE attempts ADD COLUMN input_tokens INTEGER",
    "ALTER TABLE attempts ADD COLUMN output_tokens INTEGER",
    "ALTER TABLE attempts ADD COLUMN cost_usd REAL",
    "ALTER TABLE attempts ADD COLUMN model TEXT",
    "ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'plan'",
    "ALTER TABLE tasks ADD COLUMN retry_from INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE tasks ADD COLUMN agent TEXT",
    "ALTER TABLE tasks ADD COLUMN needs TEXT",
    "ALTER TABLE attempts ADD COLUMN commit_ref TEXT",
    "ALTER TABLE runs ADD COLUMN secret_prints TEXT NOT NULL DEFAULT '[]'",
    "ALTER TABLE tasks ADD COLUMN warnings TEXT NOT NULL DEFAULT '[]'",
    "ALTER TABLE runs ADD COLUMN base_branch TEXT",
    "ALTER TABLE tasks ADD COLUMN conflict_ahead TEXT NOT NULL DEFAULT '[]'",
    "ALTER TABLE attempts ADD COLUMN kind TEXT NOT NULL DEFAULT 'work'",
    "ALTER TABLE tasks ADD COLUMN setup_done INTEGER NOT NULL DEFAULT 0",
    // A task's transcript read from its end (`baton watch`, the dashboard).
    "CREATE INDEX IF NOT EXISTS events_task ON events (run_id, task_id, seq)",
    "CREATE TABLE IF NOT EXISTS messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        from_task TEXT,
        to_task TEXT NOT NULL,
        text TEXT NOT NULL,
        ts INTEGER NOT NULL,
        delivered_at INTEGER
    );
    CREATE INDEX IF NOT EXISTS messages_to ON messages (run_id, to_task, id);
    CREATE INDEX IF NOT EXISTS messages_from ON messages (run_id, from_task, ts)",
    // The few events a report lists per task (waits, fallbacks): a partial
    // index, so that the many others cost nothing more to write.
    "CREATE INDEX IF NOT EXISTS events_moves ON events (run_id, seq) WHERE kind IN ('fallback', 'waiting')",
    // A queued task's checked spec, stored as it will be read.
    "ALTER TABLE added_tasks ADD COLUMN spec TEXT",
    // Work taken from a tracker (`[[source]]`): which item became which
    // task, and whether its end was reported back.
    "CREATE TABLE IF NOT EXISTS source_items (
        source TEXT NOT NULL,
        item TEXT NOT NULL,
        run_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        title TEXT NOT NULL,
        url TEXT NOT NULL,
        taken_at INTEGER NOT NULL,
        reported_at INTEGER,
        started_told_at INTEGER,
        comments_seen INTEGER NOT NULL DEFAULT 0,
        count_seen INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (source, item)
    )",
    // `[[schedule]]`s of a served plan: when each fires next, and what it
    // started last (a schedule never overlaps itself).
    "CREATE TABLE IF NOT EXISTS schedules (
        name TEXT PRIMARY KEY,
        cron TEXT NOT NULL,
        next_at INTEGER,
        last_fired_at INTEGER,
        last_run_id TEXT,
        last_task_id TEXT,
        last_skipped_at INTEGER
    )",
    // A run's pull request as baton follows it (`[land] follow`): where it
    // stands, what was handed to fix attempts, and the fix going on, so
    // that a restarted baton picks it up where it was.
    "CREATE TABLE IF NOT EXISTS pulls (
        run_id TEXT PRIMARY KEY,
        number INTEGER NOT NULL,
        url TEXT NOT NULL,
        repo TEXT NOT NULL,
        head TEXT NOT NULL,
        base TEXT NOT NULL,
        status TEXT NOT NULL,
        fixes_used INTEGER NOT NULL DEFAULT 0,
        spent_usd REAL NOT NULL DEFAULT 0,
        seen_sha TEXT,
        handled_sha TEXT,
        handled_comments TEXT NOT NULL DEFAULT '[]',
        handled_reviews TEXT NOT NULL DEFAULT '[]',
        fixing TEXT,
        checks TEXT NOT NULL DEFAULT '',
        reviews TEXT NOT NULL DEFAULT '',
        note TEXT,
        opened_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    )",
    // An item's labels as its task last heard them (a change is a message).
    "ALTER TABLE source_items ADD COLUMN labels_seen TEXT",
    // Questions agents ask people (`ask`); the id is its event's number.
    "CREATE TABLE IF NOT EXISTS questions (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        attempt INTEGER,
        text TEXT NOT NULL,
        options TEXT NOT NULL DEFAULT '[]',
        default_answer TEXT,
        expires_at INTEGER,
        asked_at INTEGER NOT NULL,
        answer TEXT,
        answered_at INTEGER,
        answered_by TEXT,
        message_id INTEGER
    );
    CREATE INDEX IF NOT EXISTS questions_open ON questions (answered_at, run_id)",
    // Notifications (`[notify]`): the links used (each works once), and how
    // far the notifier read the event log (and what it holds in quiet hours).
    "CREATE TABLE IF NOT EXISTS used_links (
        nonce TEXT PRIMARY KEY,
        item INTEGER NOT NULL,
        action TEXT NOT NULL,
        used_at INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS notified (
        name TEXT PRIMARY KEY,
        seq INTEGER NOT NULL
    )",
    // Browsers subscribed to Web Push notifications (the dashboard's
    // "Enable notifications").
    "CREATE TABLE IF NOT EXISTS push_subscriptions (
        endpoint TEXT PRIMARY KEY,
        p256dh TEXT NOT NULL,
        auth TEXT NOT NULL,
        created_at INTEGER NOT NULL
    )",
    // A person's comments on a task's lines (`baton review`).
    "CREATE TABLE IF NOT EXISTS review_comments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        path TEXT NOT NULL,
        line INTEGER NOT NULL,
        text TEXT NOT NULL,
        hunk TEXT NOT NULL,
        commit_at TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        submitted_at INTEGER
    );
    CREATE INDEX IF NOT EXISTS review_comments_task ON review_comments (run_id, task_id, id)",
    // The model gateway's count (the wire's: cached input apart, requests)
    // and, beside it, what the agent itself reported.
    "ALTER TABLE attempts ADD COLUMN cache_read_tokens INTEGER;
    ALTER TABLE attempts ADD COLUMN cache_write_tokens INTEGER;
    ALTER TABLE attempts ADD COLUMN gateway_requests INTEGER;
    ALTER TABLE attempts ADD COLUMN reported_input_tokens INTEGER;
    ALTER TABLE attempts ADD COLUMN reported_output_tokens INTEGER;
    ALTER TABLE attempts ADD COLUMN reported_cost_usd REAL;
    ALTER TABLE tasks ADD COLUMN cache_read_tokens INTEGER;
    ALTER TABLE tasks ADD COLUMN cache_write_tokens INTEGER;
    ALTER TABLE tasks ADD COLUMN gateway_requests INTEGER;
    ALTER TABLE tasks ADD COLUMN reported_cost_usd REAL",
    // The events the scorecard counts per task (failed attempts, gates): a
    // partial index, so that the many others cost nothing more to write.
    "CREATE INDEX IF NOT EXISTS events_outcomes ON events (run_id, task_id) WHERE kind IN ('attempt_failed', 'gate_finished')",
    // The report's moves now hold the provider's limits seen at the
    // gateway too: the index's condition follows `moves`' (word for word).
    "DROP INDEX IF EXISTS events_moves;
    CREATE INDEX events_moves ON events (run_id, seq) WHERE kind IN ('fallback', 'waiting') OR (kind = 'gateway_request' AND json_extract(data, '$.status') IN (429, 529))",
    // ... and races' picks.
    "DROP INDEX IF EXISTS events_moves;
    CREATE INDEX events_moves ON events (run_id, seq) WHERE kind IN ('fallback', 'waiting', 'picked') OR (kind = 'gateway_request' AND json_extract(data, '$.status') IN (429, 529))",
    // Races' picks across runs, by time: the scorecard's wins and losses.
    "CREATE INDEX IF NOT EXISTS events_picks ON events (ts) WHERE kind = 'picked'",
];

/// A run's moves (see [`Store::moves`]).
const MOVES: &str = "SELECT * FROM events WHERE run_id = ?1 AND (kind IN ('fallback', 'waiting', 'picked') OR (kind = 'gateway_request' AND json_extract(data, '$.status') IN (429, 529))) ORDER BY seq";

/// A task's usage: the sum of its attempts'.
fn sum_attempts(tx: &rusqlite::Transaction, run: &str, task: &str) -> Result<()> {
    tx.execute(
        "UPDATE tasks SET
            input_tokens = (SELECT SUM(input_tokens) FROM attempts WHERE run_id = ?1 AND task_id = ?2),
            output_tokens = (SELECT SUM(output_tokens) FROM attempts WHERE run_id = ?1 AND task_id = ?2),
            cost_usd = (SELECT SUM(cost_usd) FROM attempts WHERE run_id = ?1 AND task_id = ?2),
            cache_read_tokens = (SELECT SUM(cache_read_tokens) FROM attempts WHERE run_id = ?1 AND task_id = ?2),
            cache_write_tokens = (SELECT SUM(cache_write_tokens) FROM attempts WHERE run_id = ?1 AND task_id = ?2),
            gateway_requests = (SELECT SUM(gateway_requests) FROM attempts WHERE run_id = ?1 AND task_id = ?2),
            reported_cost_usd = (SELECT SUM(reported_cost_usd) FROM attempts WHERE run_id = ?1 AND task_id = ?2)
         WHERE run_id = ?1 AND id = ?2",
        params![run, task],
    )?;
    Ok(())
}

/// A task queued at run time, as the store keeps it.
#[derive(Debug, Clone, Default)]
pub struct Added {
    /// The plan text that defined it.
    pub snippet: String,
    /// Its checked spec, JSON of `plan::TaskSpec` (empty: an older baton
    /// queued it, and only `snippet` says what it is).
    pub spec: String,
    pub tags: Vec<String>,
}

/// A task as a run creates it: its id, branch, profile and what it waits for.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub id: String,
    pub branch: String,
    pub agent: String,
    pub needs: Vec<String>,
}

/// Brings a database to the current schema. The tables and every missing
/// column are made in one write transaction that reads the version inside
/// it: a run and a `baton status` beside it may open a new store at the same
/// moment, and only one of them may add each column.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current = MIGRATIONS.len() as i64;
    let version = |c: &Connection| c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0));
    if version(conn)? == current {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(include_str!("schema.sql"))?;
    let found = version(&tx)?;
    for sql in MIGRATIONS.iter().skip(found.max(0) as usize) {
        tx.execute_batch(sql)?;
    }
    if found < current {
        tx.pragma_update(None, "user_version", current)?;
    }
    tx.commit()
}

/// Runs `f` again while SQLite says the database is busy, for up to the
/// store's busy timeout.
fn while_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // Turning a new file to WAL needs it alone, and SQLite answers "busy"
        // at once rather than wait (waiting could deadlock); so wait here.
        while_busy(|| conn.pragma_update(None, "journal_mode", "WAL")).map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        // Rows are written once and read by recent ones: a small page cache
        // does (SQLite's default is 2 MiB a connection).
        conn.pragma_update(None, "cache_size", CACHE_KIB)
            .map_err(open_err)?;
        while_busy(|| migrate(&mut conn)).map_err(open_err)?;
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
            | rusqlite::OpenFlags::SQLITE_OPEN_URI;
        let reader = Connection::open_with_flags(path, flags).map_err(open_err)?;
        reader.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        reader
            .pragma_update(None, "cache_size", CACHE_KIB)
            .map_err(open_err)?;
        Ok(Store {
            file: file_id(path),
            events_tx: tokio::sync::broadcast::channel(1024).0,
            longest: std::sync::atomic::AtomicU64::new(
                std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            ),
            conn: Mutex::new(conn),
            reader: Mutex::new(reader),
            path: path.to_path_buf(),
            redactors: std::sync::RwLock::new(Vec::new()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the database file this store writes is gone from its path or
    /// is another file now, or was cut short in place (SQLite never shrinks
    /// it here: no auto-vacuum, and WAL checkpoints only grow it): what is
    /// written here would reach no view, or a damaged one.
    pub fn replaced(&self) -> bool {
        if self.file.is_some() && file_id(&self.path) != self.file {
            return true;
        }
        let len = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        let seen = self
            .longest
            .fetch_max(len, std::sync::atomic::Ordering::Relaxed);
        len < seen
    }

    /// Sequence numbers of events as this process appends them.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<i64> {
        self.events_tx.subscribe()
    }

    /// The newest event's sequence number (0 when there is none).
    pub fn last_seq(&self) -> Result<i64> {
        Ok(self
            .reader()
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?)
    }

    /// Events of every run after `after`, oldest first.
    pub fn all_events_after(&self, after: i64, limit: usize) -> Result<Vec<Event>> {
        let conn = self.reader();
        let mut st =
            conn.prepare_cached("SELECT * FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let rows = st.query_map(params![after, limit as i64], Event::from_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// How a run's gates ended, oldest first.
    pub fn gate_results(&self, run: &str) -> Result<Vec<Event>> {
        self.run_events(
            "SELECT * FROM events WHERE run_id = ?1 AND kind = 'gate_finished' ORDER BY seq",
            run,
        )
    }

    /// A run's fallbacks, waits and the provider's limits seen at the
    /// gateway, oldest first (the condition is the `events_moves` index's,
    /// word for word, so that SQLite uses it).
    pub fn moves(&self, run: &str) -> Result<Vec<Event>> {
        self.run_events(MOVES, run)
    }

    fn run_events(&self, sql: &str, run: &str) -> Result<Vec<Event>> {
        let conn = self.reader();
        let mut st = conn.prepare_cached(sql)?;
        let rows = st.query_map(params![run], Event::from_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Events of one task, oldest first.
    pub fn task_events(&self, run: &str, task: &str, limit: usize) -> Result<Vec<Event>> {
        let conn = self.reader();
        let mut st = conn.prepare(
            "SELECT * FROM events WHERE run_id = ?1 AND task_id = ?2 ORDER BY seq LIMIT ?3",
        )?;
        let rows = st.query_map(params![run, task, limit as i64], Event::from_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The last `n` events of one task, oldest first: a long transcript is
    /// read from its end.
    pub fn task_events_tail(&self, run: &str, task: &str, n: usize) -> Result<Vec<Event>> {
        let conn = self.reader();
        let mut st = conn.prepare_cached(
            "SELECT * FROM (SELECT * FROM events WHERE run_id = ?1 AND task_id = ?2 ORDER BY seq DESC LIMIT ?3) ORDER BY seq",
        )?;
        let rows = st.query_map(params![run, task, n as i64], Event::from_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Records a task queued at run time: the plan text that defined it,
    /// and its checked spec as it will be read (JSON of `plan::TaskSpec`).
    pub fn add_task(&self, run: &str, task: &NewTask, added: &Added) -> Result<()> {
        self.add_task_capped(run, task, added, None)
    }

    /// [`Store::add_task`], refused when the run has `cap` added tasks
    /// already: counted and added in one write transaction, so that callers
    /// at once cannot pass the cap together.
    pub fn add_task_capped(
        &self,
        run: &str,
        task: &NewTask,
        added: &Added,
        cap: Option<u32>,
    ) -> Result<()> {
        self.add_tasks_capped(run, std::slice::from_ref(task), added, cap)
    }

    /// [`Store::add_task_capped`] for a task that is several on the board
    /// (a race: its candidates, then itself): every row in one transaction;
    /// `added` is the last one's, the others are made from it.
    pub fn add_tasks_capped(
        &self,
        run: &str,
        tasks: &[NewTask],
        added: &Added,
        cap: Option<u32>,
    ) -> Result<()> {
        let Some(task) = tasks.last() else {
            return Ok(());
        };
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if let Some(limit) = cap {
            let added: u32 = tx.query_row(
                "SELECT COUNT(*) FROM added_tasks WHERE run_id = ?1",
                [run],
                |r| r.get(0),
            )?;
            if added >= limit {
                return Err(StoreError::Capped {
                    run: run.to_string(),
                    limit,
                    added,
                });
            }
        }
        let pos: i64 = tx.query_row(
            "SELECT COALESCE(MAX(position), -1) + 1 FROM tasks WHERE run_id = ?1",
            [run],
            |r| r.get(0),
        )?;
        for (k, t) in tasks.iter().enumerate() {
            insert_task(&tx, run, pos + k as i64, t)?;
        }
        tx.execute(
            "INSERT INTO added_tasks (run_id, task_id, snippet, tags, created_at, spec) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![run, task.id, added.snippet, serde_json::Value::from(added.tags.clone()).to_string(), now_ms(), added.spec],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The tasks queued at run time, in the order they came (their ids, in
    /// `ids`; their specs in `Added::spec`, empty when an older baton added
    /// them: then only their plan text says what they are).
    pub fn added_tasks(&self, run: &str) -> Result<Vec<(String, Added)>> {
        let conn = self.reader();
        let mut st = conn.prepare(
            "SELECT task_id, snippet, COALESCE(spec, ''), tags FROM added_tasks WHERE run_id = ?1 ORDER BY created_at, rowid",
        )?;
        let rows = st.query_map([run], |r| {
            let tags: String = r.get(3)?;
            let added = Added {
                snippet: r.get(1)?,
                spec: r.get(2)?,
                tags: serde_json::from_str(&tags).unwrap_or_default(),
            };
            Ok((r.get(0)?, added))
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The standing run of `baton serve` that is not finished, if any.
    pub fn service_run(&self) -> Result<Option<RunRecord>> {
        Ok(self
            .reader()
            .query_row("SELECT * FROM runs WHERE kind = 'service' AND finished_at IS NULL ORDER BY created_at DESC LIMIT 1", [], RunRecord::from_row)
            .optional()?)
    }

    /// Reopens a finished run so that `resume` continues it (for a retry).
    pub fn reopen_run(&self, run: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE runs SET finished_at = NULL, status = ?2 WHERE id = ?1",
            params![run, RunStatus::Interrupted],
        )?;
        Ok(())
    }

    /// Stores the hash of an API token.
    pub fn add_token(&self, hash: &str, label: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO tokens (hash, label, created_at) VALUES (?1, ?2, ?3)",
            params![hash, label, now_ms()],
        )?;
        Ok(())
    }

    pub fn has_token(&self, hash: &str) -> Result<bool> {
        Ok(self
            .reader()
            .query_row("SELECT COUNT(*) FROM tokens WHERE hash = ?1", [hash], |r| {
                r.get::<_, i64>(0)
            })?
            > 0)
    }

    /// From now on, these secret values are masked in everything this store
    /// writes (on top of those added before).
    pub fn set_redactor(&self, r: std::sync::Arc<crate::secrets::Redactor>) {
        if let Ok(mut g) = self.redactors.write() {
            g.push(r);
        }
    }

    /// Adds fingerprints of the secrets a run's agents can see (see
    /// [`crate::secrets::Fingerprint`]): any process can then mask them in
    /// what it reads later for that run, such as a diff.
    pub fn add_secret_prints(
        &self,
        run: &str,
        prints: &[crate::secrets::Fingerprint],
    ) -> Result<()> {
        let mut all = self.secret_prints(run)?;
        for p in prints {
            if !all.contains(p) {
                all.push(p.clone());
            }
        }
        let json = serde_json::to_string(&all).unwrap_or_else(|_| "[]".into());
        self.conn().execute(
            "UPDATE runs SET secret_prints = ?2 WHERE id = ?1",
            params![run, json],
        )?;
        Ok(())
    }

    pub fn secret_prints(&self, run: &str) -> Result<Vec<crate::secrets::Fingerprint>> {
        let json: Option<String> = self
            .reader()
            .query_row("SELECT secret_prints FROM runs WHERE id = ?1", [run], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(json
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default())
    }

    /// Masks in `text`, read for `run`, every secret this process knows and
    /// every secret the run's processes recorded a fingerprint of.
    pub fn mask_for_run(&self, run: &str, text: &str) -> Result<String> {
        let known = self.redact(text);
        let prints = self.secret_prints(run)?;
        Ok(crate::secrets::mask_fingerprints(&known, run, &prints))
    }

    /// Masks every secret this store knows of in `text`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        if let Ok(g) = self.redactors.read() {
            for r in g.iter() {
                out = r.redact(&out);
            }
        }
        out
    }

    fn clean(&self, text: &str) -> String {
        self.redact(text)
    }

    fn clean_opt(&self, text: &Option<String>) -> Option<String> {
        text.as_deref().map(|t| self.clean(t))
    }

    /// Records what an attempt used so far and rolls it up into its task.
    pub fn set_attempt_usage(&self, run: &str, task: &str, n: u32, u: &AttemptUsage) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE attempts SET input_tokens = ?4, output_tokens = ?5, cost_usd = ?6, model = COALESCE(?7, model) WHERE run_id = ?1 AND task_id = ?2 AND n = ?3",
            params![run, task, n, u.input_tokens.map(|v| v as i64), u.output_tokens.map(|v| v as i64), u.cost_usd, u.model],
        )?;
        if let Some(w) = u.wire {
            tx.execute(
                "UPDATE attempts SET cache_read_tokens = ?4, cache_write_tokens = ?5, gateway_requests = ?6 WHERE run_id = ?1 AND task_id = ?2 AND n = ?3",
                params![run, task, n, w.cache_read as i64, w.cache_write as i64, w.requests as i64],
            )?;
        }
        sum_attempts(&tx, run, task)?;
        tx.commit()?;
        Ok(())
    }

    /// What the agent of an attempt that went through the gateway said it
    /// used (its own figure, kept for comparison; the gateway's counts).
    pub fn set_attempt_reported(&self, run: &str, task: &str, n: u32, r: &Reported) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE attempts SET reported_input_tokens = ?4, reported_output_tokens = ?5, reported_cost_usd = ?6 WHERE run_id = ?1 AND task_id = ?2 AND n = ?3",
            params![run, task, n, r.input_tokens as i64, r.output_tokens as i64, r.cost_usd],
        )?;
        sum_attempts(&tx, run, task)?;
        tx.commit()?;
        Ok(())
    }

    pub fn set_attempt_session(&self, run: &str, task: &str, n: u32, session: &str) -> Result<()> {
        let conn = self.conn();
        conn.execute(
            "UPDATE attempts SET session_id = ?4 WHERE run_id = ?1 AND task_id = ?2 AND n = ?3",
            params![run, task, n, session],
        )?;
        conn.execute(
            "UPDATE tasks SET session_id = ?3 WHERE run_id = ?1 AND id = ?2",
            params![run, task, session],
        )?;
        Ok(())
    }

    /// What a running agent is doing (starting, working, waiting_model, running_tool, stalled).
    pub fn set_activity(
        &self,
        run: &str,
        task: &str,
        activity: Option<Activity>,
        last_output_at: Option<i64>,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE tasks SET activity = ?3, last_output_at = COALESCE(?4, last_output_at) WHERE run_id = ?1 AND id = ?2",
            params![run, task, activity, last_output_at],
        )?;
        Ok(())
    }

    /// Money the run has spent so far, where known.
    pub fn run_cost(&self, run: &str) -> Result<Option<f64>> {
        Ok(self.reader().query_row(
            "SELECT SUM(cost_usd) FROM tasks WHERE run_id = ?1",
            [run],
            |r| r.get(0),
        )?)
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves the connection usable; SQLite rolls back.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` with the store on a thread meant for blocking work, so that
    /// SQLite (and a lock held by another process) never holds up an async
    /// thread.
    pub async fn call<T, F>(self: &Arc<Self>, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> T + Send + 'static,
    {
        let store = self.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(v) => v,
            // Only a panic in `f` gets here: let it go on as the caller's.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    pub fn create_run(&self, run: &RunRecord, tasks: &[NewTask]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO runs (id, repo, plan_path, plan_source, base, base_commit, integration_branch, worktrees_dir, status, created_at, pid, kind, base_branch)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![run.id, run.repo, run.plan_path, run.plan_source, run.base, run.base_commit, run.integration_branch, run.worktrees_dir, run.status, run.created_at, run.pid, run.kind, run.base_branch],
        )?;
        for (pos, task) in tasks.iter().enumerate() {
            insert_task(&tx, &run.id, pos as i64, task)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn set_run_status(
        &self,
        run: &str,
        status: RunStatus,
        finished: bool,
        pid: Option<u32>,
    ) -> Result<()> {
        let finished_at = finished.then(now_ms);
        self.conn().execute(
            "UPDATE runs SET status = ?2, finished_at = ?3, pid = COALESCE(?4, pid) WHERE id = ?1",
            params![run, status, finished_at, pid],
        )?;
        Ok(())
    }

    /// Appends an event; returns its sequence number.
    pub fn event(
        &self,
        run: &str,
        task: Option<&str>,
        attempt: Option<u32>,
        payload: Payload,
    ) -> Result<i64> {
        let (kind, data) = payload.into_parts();
        let conn = self.conn();
        conn.execute(
            "INSERT INTO events (run_id, ts, task_id, attempt, kind, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![run, now_ms(), task, attempt, kind, self.clean(&data.to_string())],
        )?;
        let seq = conn.last_insert_rowid();
        let _ = self.events_tx.send(seq);
        Ok(seq)
    }

    /// Updates a task and appends the event that explains it, atomically.
    pub fn update_task(
        &self,
        run: &str,
        task: &str,
        u: &TaskUpdate,
        event: Option<Payload>,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let files = u
            .files
            .as_ref()
            .map(|f| serde_json::Value::from(f.clone()).to_string());
        tx.execute(
            "UPDATE tasks SET
                status = COALESCE(?3, status),
                attempts = COALESCE(?4, attempts),
                failures = COALESCE(?5, failures),
                worktree = COALESCE(?6, worktree),
                start_commit = COALESCE(?7, start_commit),
                commit_id = COALESCE(?8, commit_id),
                merged = COALESCE(?9, merged),
                result = COALESCE(?10, result),
                reason = CASE WHEN ?11 THEN ?12 ELSE reason END,
                feedback = CASE WHEN ?13 THEN ?14 ELSE feedback END,
                files = COALESCE(?15, files),
                started_at = COALESCE(?16, started_at),
                finished_at = COALESCE(?17, finished_at),
                retry_from = COALESCE(?18, retry_from),
                activity = CASE WHEN ?19 THEN ?20 ELSE activity END,
                setup_done = COALESCE(?21, setup_done),
                agent = COALESCE(?22, agent)
             WHERE run_id = ?1 AND id = ?2",
            params![
                run,
                task,
                u.status,
                u.attempts,
                u.failures,
                u.worktree,
                u.start_commit,
                u.commit_id,
                u.merged,
                self.clean_opt(&u.result),
                u.reason.is_some(),
                self.clean_opt(&u.reason.clone().flatten()),
                u.feedback.is_some(),
                self.clean_opt(&u.feedback.clone().flatten()),
                files,
                u.started_at,
                u.finished_at,
                u.retry_from,
                u.activity.is_some(),
                u.activity.flatten(),
                u.setup_done,
                u.agent
            ],
        )?;
        let recorded = event.is_some();
        if let Some((kind, data)) = event.map(Payload::into_parts) {
            tx.execute(
                "INSERT INTO events (run_id, ts, task_id, kind, data) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![run, now_ms(), task, kind, self.clean(&data.to_string())],
            )?;
        }
        let seq = tx.last_insert_rowid();
        tx.commit()?;
        if recorded {
            let _ = self.events_tx.send(seq);
        }
        Ok(())
    }

    pub fn start_attempt(&self, a: &AttemptRecord) -> Result<()> {
        self.conn().execute(
            "INSERT OR REPLACE INTO attempts (run_id, task_id, n, status, pgid, log_path, started_at, kind) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![a.run_id, a.task_id, a.n, a.status, a.pgid, a.log_path, a.started_at, a.kind],
        )?;
        Ok(())
    }

    /// Adds what a person should know about a task that did not stop it
    /// (its agent rewound its branch, say).
    pub fn add_task_warnings(&self, run: &str, task: &str, warnings: &[String]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let json: String = tx.query_row(
            "SELECT warnings FROM tasks WHERE run_id = ?1 AND id = ?2",
            [run, task],
            |r| r.get(0),
        )?;
        let mut all: Vec<String> = serde_json::from_str(&json).unwrap_or_default();
        all.extend(warnings.iter().map(|w| self.clean(w)));
        tx.execute(
            "UPDATE tasks SET warnings = ?3 WHERE run_id = ?1 AND id = ?2",
            params![run, task, serde_json::Value::from(all).to_string()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The paths where a running task's work would conflict with the
    /// integration branch as it is now (empty: none).
    pub fn set_conflict_ahead(&self, run: &str, task: &str, paths: &[String]) -> Result<()> {
        self.conn().execute(
            "UPDATE tasks SET conflict_ahead = ?3 WHERE run_id = ?1 AND id = ?2",
            params![
                run,
                task,
                serde_json::Value::from(paths.to_vec()).to_string()
            ],
        )?;
        Ok(())
    }

    /// Marks an attempt that passed as failed after all (the run's `verify`
    /// failed on its merge), so that it counts against the task's retries.
    pub fn fail_attempt(&self, run: &str, task: &str, n: u32, reason: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE attempts SET status = ?4, reason = ?5 WHERE run_id = ?1 AND task_id = ?2 AND n = ?3",
            params![run, task, n, AttemptStatus::Failed, self.clean(reason)],
        )?;
        Ok(())
    }

    /// Where the attempt's end commit is kept.
    pub fn set_attempt_ref(&self, run: &str, task: &str, n: u32, refname: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE attempts SET commit_ref = ?4 WHERE run_id = ?1 AND task_id = ?2 AND n = ?3",
            params![run, task, n, refname],
        )?;
        Ok(())
    }

    pub fn set_attempt_pgid(&self, run: &str, task: &str, n: u32, pgid: i32) -> Result<()> {
        self.conn().execute(
            "UPDATE attempts SET pgid = ?4 WHERE run_id = ?1 AND task_id = ?2 AND n = ?3",
            params![run, task, n, pgid],
        )?;
        Ok(())
    }

    pub fn finish_attempt(
        &self,
        run: &str,
        task: &str,
        n: u32,
        status: AttemptStatus,
        exit_code: Option<i32>,
        reason: Option<&str>,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE attempts SET status = ?4, exit_code = ?5, reason = ?6, finished_at = ?7 WHERE run_id = ?1 AND task_id = ?2 AND n = ?3 AND status = 'running'",
            params![run, task, n, status, exit_code, reason.map(|r| self.clean(r)), now_ms()],
        )?;
        Ok(())
    }

    pub fn run(&self, id: &str) -> Result<RunRecord> {
        self.reader()
            .query_row(
                "SELECT * FROM runs WHERE id = ?1",
                [id],
                RunRecord::from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NoSuchRun(id.to_string()))
    }

    /// The named run, or the latest one.
    pub fn find_run(&self, id: Option<&str>) -> Result<RunRecord> {
        match id {
            Some(id) => self.run(id),
            None => self
                .reader()
                .query_row(
                    "SELECT * FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1",
                    [],
                    RunRecord::from_row,
                )
                .optional()?
                .ok_or(StoreError::NoRuns),
        }
    }

    pub fn runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        let conn = self.reader();
        let mut st =
            conn.prepare("SELECT * FROM runs ORDER BY created_at DESC, rowid DESC LIMIT ?1")?;
        let rows = st.query_map([limit as i64], RunRecord::from_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The newest run started from the plan file `path` (as the run
    /// records it), if any.
    pub fn run_of_plan(&self, path: &str) -> Result<Option<RunRecord>> {
        Ok(self
            .reader()
            .query_row(
                "SELECT * FROM runs WHERE plan_path = ?1 ORDER BY created_at DESC, rowid DESC LIMIT 1",
                [path],
                RunRecord::from_row,
            )
            .optional()?)
    }

    pub fn tasks(&self, run: &str) -> Result<Vec<TaskRecord>> {
        let conn = self.reader();
        let mut st = conn.prepare("SELECT * FROM tasks WHERE run_id = ?1 ORDER BY position")?;
        let rows = st.query_map([run], TaskRecord::from_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// How many tasks of each run are in each status: (run, status, count).
    pub fn status_counts(&self) -> Result<Vec<(String, TaskStatus, u32)>> {
        let conn = self.reader();
        let mut st = conn
            .prepare_cached("SELECT run_id, status, COUNT(*) FROM tasks GROUP BY run_id, status")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// One task of a run, if it exists.
    pub fn task(&self, run: &str, id: &str) -> Result<Option<TaskRecord>> {
        Ok(self
            .reader()
            .query_row(
                "SELECT * FROM tasks WHERE run_id = ?1 AND id = ?2",
                [run, id],
                TaskRecord::from_row,
            )
            .optional()?)
    }

    pub fn attempts(&self, run: &str, task: &str) -> Result<Vec<AttemptRecord>> {
        let conn = self.reader();
        let mut st =
            conn.prepare("SELECT * FROM attempts WHERE run_id = ?1 AND task_id = ?2 ORDER BY n")?;
        let rows = st.query_map([run, task], AttemptRecord::from_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    pub fn events_after(&self, run: &str, after: i64, limit: usize) -> Result<Vec<Event>> {
        let conn = self.reader();
        let mut st = conn
            .prepare("SELECT * FROM events WHERE run_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3")?;
        let rows = st.query_map(params![run, after, limit as i64], Event::from_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Queues a request for the process running `run`; returns its id.
    pub fn send_control(
        &self,
        run: &str,
        task: &str,
        kind: ControlKind,
        message: Option<&str>,
    ) -> Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO controls (run_id, task_id, kind, message, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![run, task, kind, message, now_ms()],
        )?;
        Ok(conn.last_insert_rowid())
    }

    pub fn pending_controls(&self, run: &str) -> Result<Vec<Control>> {
        let conn = self.reader();
        let mut st = conn.prepare_cached(
            "SELECT * FROM controls WHERE run_id = ?1 AND handled_at IS NULL ORDER BY id",
        )?;
        let rows = st.query_map([run], Control::from_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    pub fn answer_control(&self, id: i64, ok: bool, response: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE controls SET handled_at = ?2, ok = ?3, response = ?4 WHERE id = ?1",
            params![id, now_ms(), ok, response],
        )?;
        Ok(())
    }

    /// Every request sent to `run` through the store, oldest first.
    pub fn controls(&self, run: &str) -> Result<Vec<Control>> {
        let conn = self.reader();
        let mut st = conn.prepare("SELECT * FROM controls WHERE run_id = ?1 ORDER BY id")?;
        let rows = st.query_map([run], Control::from_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    pub fn control(&self, id: i64) -> Result<Option<Control>> {
        Ok(self
            .reader()
            .query_row(
                "SELECT * FROM controls WHERE id = ?1",
                [id],
                Control::from_row,
            )
            .optional()?)
    }
}

fn insert_task(tx: &rusqlite::Transaction, run: &str, pos: i64, t: &NewTask) -> Result<()> {
    tx.execute(
        "INSERT INTO tasks (run_id, id, position, status, branch, agent, needs) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            run,
            t.id,
            pos,
            TaskStatus::Pending,
            t.branch,
            t.agent,
            serde_json::Value::from(t.needs.clone()).to_string()
        ],
    )?;
    Ok(())
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The plan SQLite makes for `sql` on a new store, step by step.
    pub(super) fn query_plan(sql: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db")).unwrap();
        let conn = store.reader();
        let mut q = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let n = q.parameter_count();
        let args: Vec<&str> = vec!["x"; n];
        let rows = q.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3));
        rows.unwrap().map(|r| r.unwrap()).collect()
    }

    /// A report reads a run's moves through their partial index, not
    /// through every event of the run.
    #[test]
    fn a_runs_moves_are_read_through_their_index() {
        let plan = query_plan(MOVES);
        assert!(
            plan.iter().any(|s| s.contains("USING INDEX events_moves")),
            "{plan:?}"
        );
    }

    /// A run and a `baton status` beside it both open a store that does not
    /// exist yet; neither may fail on the other's half-made schema.
    #[test]
    fn many_processes_opening_a_new_store_at_once_all_succeed() {
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(".baton/state.db");
            let barrier = Arc::new(std::sync::Barrier::new(6));
            let openers: Vec<_> = (0..6)
                .map(|_| {
                    let (path, barrier) = (path.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        Store::open(&path).map(|_| ())
                    })
                })
                .collect();
            for opener in openers {
                let opened = opener.join().unwrap();
                assert!(opened.is_ok(), "round {round}: {opened:?}");
            }
            let conn = Connection::open(&path).unwrap();
            let version: i64 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            assert_eq!(version, MIGRATIONS.len() as i64);
        }
    }
}
