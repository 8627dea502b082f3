//! A label change on a taken item, while its task goes on, is delivered
//! to the task as a message from a person (as a new comment is): a person
//! relabelling an issue `urgent` or `frontend-only` is telling the agent
//! something.

use super::{refused, Intake, Taken};
use crate::runner;
use crate::state::AppState;
use baton_core::store::SourceItem;
use baton_core::tracker::WorkItem;
use std::sync::Arc;

impl Intake {
    pub(super) async fn pass_on_labels(
        &self,
        state: &Arc<AppState>,
        known: &SourceItem,
        item: &WorkItem,
    ) -> Result<(), Taken> {
        if known.reported_at.is_some() || known.task_id.is_empty() {
            return Ok(());
        }
        let seen = known.labels_seen.clone().unwrap_or_default();
        let Some(text) = changed(&item.key, &seen, &item.labels) else {
            if known.labels_seen.is_none() {
                self.record_labels(state, known, &item.labels).await;
            }
            return Ok(());
        };
        let (r, t) = (known.run_id.clone(), known.task_id.clone());
        let task = state.store.call(move |s| s.task(&r, &t)).await;
        let ended = task
            .map_err(refused)?
            .is_none_or(|t| t.status.is_finished());
        if !ended {
            let sent = runner::send_message(state, &known.run_id, None, &known.task_id, &text);
            if let Err(e) = sent.await {
                // Told next round: the labels seen stay as they were.
                let (name, key) = (&known.source, &item.key);
                tracing::info!("{name}: a label change on {key} not passed on yet: {e}");
                return Ok(());
            }
        }
        self.record_labels(state, known, &item.labels).await;
        Ok(())
    }

    async fn record_labels(&self, state: &Arc<AppState>, known: &SourceItem, labels: &[String]) {
        let (source, key, labels) = (known.source.clone(), known.item.clone(), labels.to_vec());
        let what = format!("{source}: the labels of {key}");
        state
            .write(what, move |s| {
                s.set_source_labels_seen(&source, &key, &labels)
            })
            .await;
    }
}

/// A person's words for a change of labels, if they changed.
fn changed(key: &str, seen: &[String], now: &[String]) -> Option<String> {
    let quoted = |l: &String| format!("`{l}`");
    let added: Vec<String> = now
        .iter()
        .filter(|l| !seen.contains(l))
        .map(quoted)
        .collect();
    let removed: Vec<String> = seen
        .iter()
        .filter(|l| !now.contains(l))
        .map(quoted)
        .collect();
    let mut parts = Vec::new();
    if !added.is_empty() {
        parts.push(format!("added {}", added.join(", ")));
    }
    if !removed.is_empty() {
        parts.push(format!("removed {}", removed.join(", ")));
    }
    (!parts.is_empty()).then(|| format!("The labels of {key} changed: {}.", parts.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::changed;

    #[test]
    fn a_change_of_labels_in_words() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(changed("#3", &l(&["baton"]), &l(&["baton"])), None);
        assert_eq!(
            changed("#3", &l(&["baton", "bug"]), &l(&["baton", "urgent"])).as_deref(),
            Some("The labels of #3 changed: added `urgent`; removed `bug`.")
        );
        assert_eq!(
            changed("#3", &l(&["baton"]), &l(&["baton", "a", "b"])).as_deref(),
            Some("The labels of #3 changed: added `a`, `b`.")
        );
    }
}
