//! What `baton serve`'s notifications keep: the links already used (each
//! works once), how far the notifier has read the event log, and the items
//! it holds in quiet hours (an item is told once, across restarts). Its
//! keys are not here: agents may read the store (`StatePaths::secrets`).

use super::{Result, Store};
use crate::clock::now_ms;
use rusqlite::{params, OptionalExtension};

impl Store {
    /// Marks link `nonce` used; false when it was used already.
    pub fn use_link(&self, nonce: &str, item: i64, action: &str) -> Result<bool> {
        let changed = self.conn().execute(
            "INSERT OR IGNORE INTO used_links (nonce, item, action, used_at) VALUES (?1, ?2, ?3, ?4)",
            params![nonce, item, action, now_ms()],
        )?;
        Ok(changed == 1)
    }

    /// Makes a used link usable again (what it did failed, so nothing
    /// was done: the person may tap it again).
    pub fn release_link(&self, nonce: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM used_links WHERE nonce = ?1", [nonce])?;
        Ok(())
    }

    pub fn link_used(&self, nonce: &str) -> Result<bool> {
        Ok(self
            .reader()
            .query_row("SELECT 1 FROM used_links WHERE nonce = ?1", [nonce], |_| {
                Ok(())
            })
            .optional()?
            .is_some())
    }

    /// The last event `channel` has dealt with, if it ever read any.
    pub fn notified_seq(&self, channel: &str) -> Result<Option<i64>> {
        Ok(self
            .reader()
            .query_row("SELECT seq FROM notified WHERE name = ?1", [channel], |r| {
                r.get(0)
            })
            .optional()?)
    }

    pub fn set_notified_seq(&self, channel: &str, seq: i64) -> Result<()> {
        self.conn().execute(
            "INSERT INTO notified (name, seq) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
            params![channel, seq],
        )?;
        Ok(())
    }

    /// Keeps a browser's push subscription (again: its keys are replaced).
    pub fn add_push(&self, endpoint: &str, p256dh: &str, auth: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO push_subscriptions (endpoint, p256dh, auth, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (endpoint) DO UPDATE SET p256dh = excluded.p256dh, auth = excluded.auth",
            params![endpoint, p256dh, auth, now_ms()],
        )?;
        Ok(())
    }

    /// Forgets a subscription; false when there was none.
    pub fn remove_push(&self, endpoint: &str) -> Result<bool> {
        let n = self.conn().execute(
            "DELETE FROM push_subscriptions WHERE endpoint = ?1",
            [endpoint],
        )?;
        Ok(n == 1)
    }

    /// Every subscription: endpoint, p256dh and auth (base64url).
    pub fn push_subscriptions(&self) -> Result<Vec<(String, String, String)>> {
        let conn = self.reader();
        let mut st = conn.prepare_cached(
            "SELECT endpoint, p256dh, auth FROM push_subscriptions ORDER BY created_at",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Keeps inbox item `id` for the end of quiet hours (across restarts).
    pub fn hold_notice(&self, id: i64) -> Result<()> {
        self.set_notified_seq(&format!("held:{id}"), id)
    }

    /// The items held for the end of quiet hours.
    pub fn held_notices(&self) -> Result<Vec<i64>> {
        let conn = self.reader();
        let mut st =
            conn.prepare_cached("SELECT seq FROM notified WHERE name LIKE 'held:%' ORDER BY seq")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    pub fn release_notice(&self, id: i64) -> Result<()> {
        self.conn().execute(
            "DELETE FROM notified WHERE name = ?1",
            [format!("held:{id}")],
        )?;
        Ok(())
    }
}
