//! Work taken from trackers (`[[source]]` in the served plan): every `poll`
//! each source is asked for its items; an item not taken before becomes a
//! task of the service run (routed by its labels through `[[route]]`, its
//! text kept literal), and its tracker is told; once the task has ended,
//! the tracker is told how. The store remembers which item became which
//! task, so a restarted server neither takes an item twice nor forgets to
//! report one. A tracker that fails (down, a rate limit) is asked again
//! later; nothing is lost.

use crate::api::hooks::Hook;
use crate::runner;
use crate::state::AppState;
use baton_core::plan::{Source, SourceKind};
use baton_core::store::SourceItem;
use baton_core::tracker::{self, Report, Tracker, TrackerError, WorkItem};
use std::sync::Arc;
use std::time::Duration;

/// One source and its tracker, made when the server starts.
pub struct Intake {
    source: Source,
    tracker: Box<dyn Tracker>,
    /// A signed webhook for the source: look now, not at the next poll.
    wake: Arc<tokio::sync::Notify>,
}

/// The served plan's sources with their trackers. Their secrets (tokens)
/// are kept from every process baton starts from here on. Err: a source
/// cannot be used (no token, no tracker of its kind), said whole.
pub fn open(state: &AppState) -> Result<Vec<Intake>, String> {
    let plan = match runner::config_plan(state) {
        Ok(p) => p,
        // A server without a plan file takes no work from trackers.
        Err(_) if !state.opts.repo.root.join(&state.opts.plan).exists() => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string()),
    };
    let secrets: Vec<String> = plan.sources.iter().flat_map(Source::secret_vars).collect();
    baton_core::process::withhold(&secrets);
    plan.sources
        .into_iter()
        .map(|source| {
            let tracker = tracker::make(state.opts.trackers, &source, &state.opts.repo.root)?;
            let wake = Arc::new(tokio::sync::Notify::new());
            take_hooks(state, &source, &wake)?;
            Ok(Intake {
                source,
                tracker,
                wake,
            })
        })
        .collect()
}

/// A GitHub source with `webhook_secret_env` takes signed webhooks.
fn take_hooks(
    state: &AppState,
    source: &Source,
    wake: &Arc<tokio::sync::Notify>,
) -> Result<(), String> {
    let SourceKind::GitHub(g) = &source.kind else {
        return Ok(());
    };
    let Some(var) = &g.webhook_secret_env else {
        return Ok(());
    };
    let secret = std::env::var(var).ok().filter(|s| !s.is_empty());
    let secret = secret.ok_or_else(|| {
        format!(
            "the source {} takes webhooks signed with the secret in ${var}, which is not set",
            source.name
        )
    })?;
    let hook = Hook {
        repo: g.repo.clone(),
        secret,
        wake: wake.clone(),
    };
    if let Ok(mut hooks) = state.hooks.lock() {
        hooks.push(hook);
    }
    Ok(())
}

/// Polls each source until the server shuts down.
pub fn spawn(state: Arc<AppState>, intakes: Vec<Intake>) {
    for intake in intakes {
        let state = state.clone();
        tokio::spawn(async move {
            let mut stop = state.shutdown_rx();
            loop {
                let wait = intake.poll(&state).await;
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = intake.wake.notified() => {}
                    _ = stop.changed() => return,
                }
            }
        });
    }
}

impl Intake {
    /// One round: new items taken, ended tasks reported; how long to wait
    /// before the next.
    async fn poll(&self, state: &Arc<AppState>) -> Duration {
        let name = &self.source.name;
        if let Err(e) = self.report_ends(state).await {
            return self.after(e);
        }
        let items = match self.tracker.items().await {
            Ok(items) => items,
            Err(e) => return self.after(e),
        };
        // An item that waits for another listed one is taken after it.
        for item in tracker::in_needs_order(items) {
            match self.take(state, &item).await {
                Ok(()) => {}
                Err(Taken::Tracker(e)) => return self.after(e),
                Err(Taken::Refused(why)) => {
                    tracing::warn!("{name}: {} was not taken: {why}", item.key);
                }
            }
        }
        self.source.poll
    }

    /// How long to wait after a failure, which is logged.
    fn after(&self, e: TrackerError) -> Duration {
        let name = &self.source.name;
        match &e {
            TrackerError::Limited { until_ms, .. } => {
                tracing::warn!("{name}: {e}; asking again after it");
                let left = (*until_ms - baton_core::clock::now_ms()).max(0) as u64;
                Duration::from_millis(left).max(self.source.poll)
            }
            _ => {
                tracing::warn!("{name}: {e}");
                self.source.poll
            }
        }
    }

    /// Makes `item` a task unless it was taken before, and tells its tracker.
    async fn take(&self, state: &Arc<AppState>, item: &WorkItem) -> Result<(), Taken> {
        let (source, key) = (self.source.name.clone(), item.key.clone());
        let known = state
            .store
            .call(move |s| s.source_item(&source, &key))
            .await
            .map_err(|e| Taken::Refused(e.to_string()))?;
        if let Some(known) = known {
            return self.pass_on_comments(state, &known, item).await;
        }
        let mut item = item.clone();
        item.comments = self.tracker.comments(&item).await.map_err(Taken::Tracker)?;
        let item = &item;
        let prompt = baton_core::template::literal(&tracker::prompt(item));
        let name = format!("{} {}", item.key.trim_start_matches('#'), item.title);
        let needs = self.needs(state, item).await?;
        let (run, task) = runner::add_named_task(state, &name, &prompt, None, &item.labels, &needs)
            .await
            .map_err(|e| Taken::Refused(e.to_string()))?;
        let taken = SourceItem {
            source: self.source.name.clone(),
            item: item.key.clone(),
            run_id: run.clone(),
            task_id: task.clone(),
            title: item.title.clone(),
            url: item.url.clone(),
            taken_at: 0,
            reported_at: None,
            started_told_at: None,
            comments_seen: item.comments.len() as u32,
            count_seen: item.comment_count,
        };
        // Recorded before the tracker is told: a failed comment never makes
        // the item a second task.
        let row = taken.clone();
        state
            .store
            .call(move |s| s.take_source_item(&row))
            .await
            .map_err(|e| Taken::Refused(format!("cannot record it: {e}")))?;
        tracing::info!(
            "{}: {} became task {task} of run {run}",
            self.source.name,
            item.key
        );
        let agent = state.store.call(move |s| s.task(&run, &task)).await;
        let agent = agent.ok().flatten().and_then(|t| t.agent);
        self.tell_started(state, &taken, agent.as_deref())
            .await
            .map_err(Taken::Tracker)
    }

    /// The tasks of the items `item` waits for that baton took into the
    /// service run (an item that is not baton's work is not waited for).
    async fn needs(&self, state: &Arc<AppState>, item: &WorkItem) -> Result<Vec<String>, Taken> {
        if item.needs.is_empty() {
            return Ok(Vec::new());
        }
        let run = runner::ensure_service(state)
            .await
            .map_err(|e| Taken::Refused(e.to_string()))?;
        let mut tasks = Vec::new();
        for key in &item.needs {
            let (source, key) = (self.source.name.clone(), key.clone());
            let taken = state
                .store
                .call(move |s| s.source_item(&source, &key))
                .await;
            match taken {
                Ok(Some(t)) if t.run_id == run => tasks.push(t.task_id),
                Ok(_) => {}
                Err(e) => return Err(Taken::Refused(e.to_string())),
            }
        }
        Ok(tasks)
    }

    /// Tells the tracker that `item`'s task started, and records that it
    /// heard (until then, each round tells it again).
    async fn tell_started(
        &self,
        state: &Arc<AppState>,
        item: &SourceItem,
        agent: Option<&str>,
    ) -> Result<(), TrackerError> {
        let report = Report {
            event: "started",
            item: item.item.clone(),
            run: item.run_id.clone(),
            task: item.task_id.clone(),
            status: None,
            text: tracker::started_comment(&item.run_id, &item.task_id, agent, None),
        };
        self.tracker.report(&report).await?;
        let (source, key) = (item.source.clone(), item.item.clone());
        let marked = state
            .store
            .call(move |s| s.mark_source_item_started(&source, &key))
            .await;
        if let Err(e) = marked {
            tracing::error!(
                "{}: cannot record that {} heard its start: {e}",
                item.source,
                item.item
            );
        }
        Ok(())
    }

    /// What people wrote on a taken item since its task last heard: each
    /// new comment goes to the task as a message from a person (a running
    /// agent gets it now where it can, else with its next attempt).
    async fn pass_on_comments(
        &self,
        state: &Arc<AppState>,
        known: &SourceItem,
        item: &WorkItem,
    ) -> Result<(), Taken> {
        // Read again only when the tracker counts something new: an idle
        // item costs no call.
        if known.reported_at.is_some() || item.comment_count == known.count_seen {
            return Ok(());
        }
        let comments = self.tracker.comments(item).await.map_err(Taken::Tracker)?;
        let seen = (known.comments_seen as usize).min(comments.len());
        for c in &comments[seen..] {
            let text = format!("{} commented on {}:\n{}", c.author, item.key, c.body.trim());
            let sent =
                runner::send_message(state, &known.run_id, None, &known.task_id, &text).await;
            if let Err(e) = sent {
                // A task that ended meanwhile: its end is reported next round.
                let (name, key) = (&known.source, &item.key);
                tracing::info!("{name}: a comment on {key} not passed on: {e}");
                break;
            }
        }
        let (source, key) = (known.source.clone(), known.item.clone());
        let (n, count) = (comments.len() as u32, item.comment_count);
        let set = state
            .store
            .call(move |s| s.set_source_comments_seen(&source, &key, n, count))
            .await;
        if let Err(e) = set {
            let (name, key) = (&known.source, &item.key);
            tracing::error!("{name}: cannot record the comments passed on for {key}: {e}");
        }
        Ok(())
    }

    /// Tells the tracker how each taken item's task ended.
    async fn report_ends(&self, state: &Arc<AppState>) -> Result<(), TrackerError> {
        let source = self.source.name.clone();
        let open = state
            .store
            .call(move |s| s.unreported_source_items(&source))
            .await
            .map_err(|e| TrackerError::Other(e.to_string()))?;
        for item in open {
            let (r, t) = (item.run_id.clone(), item.task_id.clone());
            let record = state.store.call(move |s| s.task(&r, &t)).await;
            let Ok(Some(task)) = record else { continue };
            if !task.status.is_finished() {
                if item.started_told_at.is_none() {
                    self.tell_started(state, &item, task.agent.as_deref())
                        .await?;
                }
                continue;
            }
            let branch = baton_core::paths::integration_branch(&item.run_id);
            let ended = tracker::Ended {
                run: &item.run_id,
                task: &item.task_id,
                succeeded: !task.status.is_bad_end(),
                status: task.status.as_str(),
                reason: task.reason.as_deref(),
                cost_usd: task.cost_usd,
                branch: task.merged.then_some(branch.as_str()),
            };
            let report = Report {
                event: "ended",
                item: item.item.clone(),
                run: item.run_id.clone(),
                task: item.task_id.clone(),
                status: Some(task.status.as_str().to_string()),
                text: tracker::ended_comment(&ended),
            };
            self.tracker.report(&report).await?;
            let (source, key) = (item.source.clone(), item.item.clone());
            let marked = state
                .store
                .call(move |s| s.mark_source_item_reported(&source, &key))
                .await;
            if let Err(e) = marked {
                // The comment would be written again next round: say so.
                tracing::error!(
                    "{}: cannot record that {} was reported: {e}",
                    item.source,
                    item.item
                );
            }
        }
        Ok(())
    }
}

enum Taken {
    /// The tracker failed: the round ends, and the item is taken next time.
    Tracker(TrackerError),
    /// baton would not make it a task (a bad route, the store): said, skipped.
    Refused(String),
}
