//! Port blocks for running tasks (`[workspace] ports`): a block no live task
//! of any run in this repository holds, each port checked free when handed
//! out. The store is shared by every baton process of the repository, so
//! the table is the registry; a block whose holder died is taken back.

use super::{Result, Store};
use rusqlite::params;

/// Where blocks are handed out from: below Linux's ephemeral range
/// (32768-60999), so outgoing connections do not take them meanwhile.
pub const PORT_RANGE: std::ops::Range<u16> = 20000..30000;

impl Store {
    /// Takes `n` consecutive ports for `task`, held by process `pid`; None
    /// when no block is free. `is_free` checks that nothing listens there.
    pub fn take_ports(
        &self,
        run: &str,
        task: &str,
        n: u16,
        pid: u32,
        is_alive: impl Fn(u32) -> bool,
        is_free: impl Fn(u16) -> bool,
    ) -> Result<Option<Vec<u16>>> {
        let mut conn = self.conn();
        // Immediate: it reads, then writes; a deferred transaction would be
        // refused at once (not waited for) when another baton process wrote
        // in between.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Blocks of processes that are gone, and this task's own (a retry).
        let holders: Vec<u32> = {
            let mut q = tx.prepare("SELECT DISTINCT pid FROM ports")?;
            let rows = q.query_map([], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for dead in holders.into_iter().filter(|p| !is_alive(*p)) {
            tx.execute("DELETE FROM ports WHERE pid = ?1", [dead])?;
        }
        tx.execute(
            "DELETE FROM ports WHERE run_id = ?1 AND task_id = ?2",
            params![run, task],
        )?;
        let held: std::collections::HashSet<u16> = {
            let mut q = tx.prepare("SELECT port FROM ports")?;
            let rows = q.query_map([], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let n = n.max(1);
        let mut start = PORT_RANGE.start;
        while start + n <= PORT_RANGE.end {
            let block: Vec<u16> = (start..start + n).collect();
            if let Some(taken) = block.iter().position(|p| held.contains(p) || !is_free(*p)) {
                start += taken as u16 + 1;
                continue;
            }
            for p in &block {
                tx.execute(
                    "INSERT INTO ports (port, run_id, task_id, pid) VALUES (?1, ?2, ?3, ?4)",
                    params![p, run, task, pid],
                )?;
            }
            tx.commit()?;
            return Ok(Some(block));
        }
        Ok(None)
    }

    /// Gives back the ports `task` holds.
    pub fn release_ports(&self, run: &str, task: &str) -> Result<()> {
        self.conn().execute(
            "DELETE FROM ports WHERE run_id = ?1 AND task_id = ?2",
            params![run, task],
        )?;
        Ok(())
    }

    /// Gives back every port the run's tasks hold (the run ended).
    pub fn release_run_ports(&self, run: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM ports WHERE run_id = ?1", [run])?;
        Ok(())
    }
}
