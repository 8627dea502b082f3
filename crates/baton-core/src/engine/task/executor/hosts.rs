//! Which SSH host an attempt goes to: one that carries its profile's
//! `host_labels` and has a free slot, the least busy first; a host an
//! attempt lost lately is passed over while another can take the work. An
//! attempt waits here for a slot when every fitting host is full. A claim
//! is given back when it is dropped (the attempt landed, or failed before).

use crate::plan::{Ssh, SshHost};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long a host that was lost is passed over.
const LOST_FOR: Duration = Duration::from_secs(120);

#[derive(Debug, Default, Clone, Copy)]
struct Load {
    busy: u32,
    lost_at: Option<Instant>,
}

#[derive(Default)]
pub(crate) struct HostBoard {
    load: Mutex<BTreeMap<String, Load>>,
    freed: Notify,
}

/// One slot of a host, held while its attempt runs.
pub(crate) struct HostClaim {
    board: Arc<HostBoard>,
    pub host: String,
}

impl Drop for HostClaim {
    fn drop(&mut self) {
        if let Ok(mut load) = self.board.load.lock() {
            if let Some(l) = load.get_mut(&self.host) {
                l.busy = l.busy.saturating_sub(1);
            }
        }
        self.board.freed.notify_waiters();
    }
}

/// The host to take among `hosts` with `load` (None: all that fit are
/// full): the fitting one with the most free slots, one not lost lately
/// first.
fn choose(
    hosts: &[SshHost],
    labels: &[String],
    load: &BTreeMap<String, Load>,
    now: Instant,
) -> Option<String> {
    hosts
        .iter()
        .filter(|h| h.has_labels(labels))
        .filter_map(|h| {
            let l = load.get(&h.name).copied().unwrap_or_default();
            let free = h.slots.checked_sub(l.busy).filter(|f| *f > 0)?;
            let lost = l.lost_at.is_some_and(|t| now.duration_since(t) < LOST_FOR);
            Some((lost, std::cmp::Reverse(free), h.name.clone()))
        })
        .min_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)))
        .map(|(_, _, name)| name)
}

impl HostBoard {
    /// A slot for an attempt of a profile with `labels`: on `adopted` (the
    /// host an earlier baton's attempt still runs on) whatever its load,
    /// else as [`choose`] says, waiting for one to free.
    pub async fn claim(
        self: &Arc<Self>,
        ssh: &Ssh,
        labels: &[String],
        adopted: Option<&str>,
    ) -> Result<HostClaim, String> {
        if !ssh.hosts.iter().any(|h| h.has_labels(labels)) {
            return Err(format!("no SSH host carries every one of {labels:?}"));
        }
        loop {
            let freed = self.freed.notified();
            {
                let mut load = self.load.lock().map_err(|_| "the host board broke")?;
                let take = match adopted {
                    Some(h) if ssh.host(h).is_some() => Some(h.to_string()),
                    _ => choose(&ssh.hosts, labels, &load, Instant::now()),
                };
                if let Some(host) = take {
                    load.entry(host.clone()).or_default().busy += 1;
                    return Ok(HostClaim {
                        board: self.clone(),
                        host,
                    });
                }
            }
            freed.await;
        }
    }

    /// An attempt lost `host`: it is passed over for a while.
    pub fn lost(&self, host: &str) {
        if let Ok(mut load) = self.load.lock() {
            load.entry(host.to_string()).or_default().lost_at = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, slots: u32, labels: &[&str]) -> SshHost {
        SshHost {
            name: name.into(),
            host: name.into(),
            user: None,
            port: None,
            slots,
            labels: labels.iter().map(|l| l.to_string()).collect(),
            dir: None,
        }
    }

    fn loaded(pairs: &[(&str, u32, bool)]) -> BTreeMap<String, Load> {
        let now = Instant::now();
        pairs
            .iter()
            .map(|(h, busy, lost)| {
                let lost_at = lost.then_some(now);
                (
                    h.to_string(),
                    Load {
                        busy: *busy,
                        lost_at,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn the_least_busy_fitting_host_with_room_is_taken() {
        let hosts = [host("a", 2, &[]), host("b", 3, &["gpu"])];
        let now = Instant::now();
        let none: &[String] = &[];
        assert_eq!(
            choose(&hosts, none, &loaded(&[]), now).as_deref(),
            Some("b")
        );
        assert_eq!(
            choose(&hosts, none, &loaded(&[("b", 2, false)]), now).as_deref(),
            Some("a")
        );
        let full = loaded(&[("a", 2, false), ("b", 3, false)]);
        assert_eq!(choose(&hosts, none, &full, now), None);
        let gpu = ["gpu".to_string()];
        assert_eq!(
            choose(&hosts, &gpu, &loaded(&[("b", 1, false)]), now).as_deref(),
            Some("b")
        );
        assert_eq!(choose(&hosts, &gpu, &loaded(&[("b", 3, false)]), now), None);
    }

    #[test]
    fn a_lost_host_is_passed_over_while_another_has_room() {
        let hosts = [host("a", 2, &[]), host("b", 2, &[])];
        let now = Instant::now();
        let none: &[String] = &[];
        assert_eq!(
            choose(&hosts, none, &loaded(&[("a", 0, true)]), now).as_deref(),
            Some("b")
        );
        let both = loaded(&[("a", 0, true), ("b", 2, false)]);
        assert_eq!(choose(&hosts, none, &both, now).as_deref(), Some("a"));
        let later = now + LOST_FOR + Duration::from_secs(1);
        let past = loaded(&[("a", 0, true), ("b", 1, false)]);
        assert_eq!(choose(&hosts, none, &past, later).as_deref(), Some("a"));
    }

    #[tokio::test]
    async fn a_full_board_waits_for_a_slot_to_free() {
        let ssh = Ssh {
            hosts: vec![host("a", 1, &[])],
            config: None,
            grace: Duration::from_secs(1),
            baton: None,
        };
        let board = Arc::new(HostBoard::default());
        let first = board.claim(&ssh, &[], None).await.unwrap();
        let waiting = {
            let (board, ssh) = (board.clone(), ssh.clone());
            tokio::spawn(async move { board.claim(&ssh, &[], None).await.map(|c| c.host.clone()) })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a full host gives no second slot");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert_eq!(second.unwrap().unwrap().unwrap(), "a");
        assert!(board.claim(&ssh, &["gpu".into()], None).await.is_err());
    }
}
