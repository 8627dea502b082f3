//! Work taken from trackers (`[[source]]` in the served plan): every `poll`
//! each source is asked for its items; an item not taken before becomes a
//! task of the service run (routed by its labels through `[[route]]`, its
//! text kept literal), and its tracker is told; once the task has ended,
//! the tracker is told how. A served plan that lands as pull requests
//! (`[land] mode = "pr"`) gives each item a run of its own instead, landed
//! as its own pull request (and followed, with `follow`), which tells the
//! item when it opens and when it merges; an item that names others it
//! waits for is taken once their work has merged. The store remembers which item became which
//! task (the row is written before the task is queued, under an id made
//! from the item), so a restarted server neither takes an item twice nor
//! forgets to report one. A tracker that fails (down, a rate limit) is
//! asked again later; one item it fails on does not hold up the others.

mod labels;
mod planned;

use crate::api::hooks::{Hook, Wants};
use crate::runner;
use crate::state::AppState;
use baton_core::plan::{Land, Plan, Source, SourceKind, SourceMode};
use baton_core::store::SourceItem;
use baton_core::tracker::{self, ItemComment, Report, Tracker, TrackerError, WorkItem};
use std::sync::Arc;
use std::time::Duration;

/// One source and its tracker, made when the server starts.
pub struct Intake {
    source: Source,
    /// What its items' task ids start with.
    tag: String,
    tracker: Box<dyn Tracker>,
    /// Each item gets a run of its own (the served plan lands as pull
    /// requests), not a task of the service run.
    own_runs: bool,
    /// A signed webhook for the source: look now, not at the next poll.
    wake: Arc<tokio::sync::Notify>,
}

/// The served plan's sources with their trackers. Their secrets (tokens)
/// are kept from every process baton starts from here on. Err: a source
/// cannot be used (no token, no tracker of its kind), said whole.
pub fn open(state: &AppState, plan: &Plan) -> Result<Vec<Intake>, String> {
    let secrets: Vec<String> = plan.sources.iter().flat_map(Source::secret_vars).collect();
    baton_core::process::withhold(&secrets);
    let own_runs = plan.run.land == Land::Pr;
    let kinds: Vec<&'static str> = plan.sources.iter().map(Source::kind).collect();
    plan.sources
        .iter()
        .cloned()
        .map(|source| {
            let tracker = tracker::make(state.opts.trackers, &source, &state.opts.repo.root)?;
            let wake = Arc::new(tokio::sync::Notify::new());
            take_hooks(state, &source, &wake)?;
            let alone = kinds.iter().filter(|k| **k == source.kind()).count() == 1;
            Ok(Intake {
                tag: tag_of(&source, alone),
                source,
                tracker,
                own_runs,
                wake,
            })
        })
        .collect()
}

/// What a source's task ids start with: a command source's name; a
/// GitHub source's kind, and its repository and label when the plan has
/// two (issue #1 of one repository is not issue #1 of another).
fn tag_of(source: &Source, alone: bool) -> String {
    match &source.kind {
        SourceKind::Command(_) => runner::slug(source.name.trim_start_matches("command:")),
        SourceKind::GitHub(g) if !alone => {
            let name = g.repo.split('/').nth(1).unwrap_or(&g.repo);
            format!("github-{}", runner::slug(&format!("{name} {}", g.label)))
        }
        _ => source.kind().into(),
    }
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
    let who = format!("the source {}", source.name);
    Hook::listen(state, &g.repo, var, wake, Wants::Issues, &who)
}

/// Polls each source until the server shuts down.
pub fn spawn(state: Arc<AppState>, intakes: Vec<Intake>) {
    for intake in intakes {
        let state = state.clone();
        tokio::spawn(async move {
            let mut stop = state.shutdown_rx();
            loop {
                let next = intake.poll(&state).await;
                tokio::select! {
                    _ = tokio::time::sleep(next.wait) => {}
                    // A rate limit is waited out whole, webhooks or not.
                    _ = intake.wake.notified(), if !next.limited => {}
                    _ = stop.changed() => return,
                }
            }
        });
    }
}

/// When to look again.
struct Next {
    wait: Duration,
    /// The tracker asked to wait (a rate limit).
    limited: bool,
}

/// Whether a tracker's failure ends the round: its credentials or its
/// rate limit hold for every item; anything else is the item's own.
fn ends_round(e: &TrackerError) -> bool {
    matches!(
        e,
        TrackerError::Credentials(_) | TrackerError::Limited { .. }
    )
}

impl Intake {
    /// One round: ended tasks reported, new items taken; when to look again.
    async fn poll(&self, state: &Arc<AppState>) -> Next {
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
                Err(Taken::Tracker(e)) if ends_round(&e) => return self.after(e),
                Err(Taken::Tracker(e)) => tracing::warn!("{name}: {}: {e}", item.key),
                Err(Taken::Refused(why)) => {
                    tracing::warn!("{name}: {} was not taken: {why}", item.key);
                }
                Err(Taken::Waits(key)) => {
                    tracing::debug!("{name}: {} waits for {key} to merge", item.key);
                }
            }
        }
        Next {
            wait: self.source.poll,
            limited: false,
        }
    }

    /// When to look again after a failure, which is logged.
    fn after(&self, e: TrackerError) -> Next {
        let name = &self.source.name;
        match &e {
            TrackerError::Limited { until_ms, .. } => {
                tracing::warn!("{name}: {e}; asking again after it");
                Next {
                    wait: tracker::limit_wait(*until_ms),
                    limited: true,
                }
            }
            _ => {
                tracing::warn!("{name}: {e}");
                Next {
                    wait: self.source.poll,
                    limited: false,
                }
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
        if let Some(known) = &known {
            if self.queued(state, known).await? {
                self.pass_on_labels(state, known, item).await?;
                return self.pass_on_comments(state, known, item).await;
            }
        }
        if self.own_runs {
            if let Some(key) = self.open_need(state, item).await? {
                return Err(Taken::Waits(key));
            }
        }
        if let Some(known) = known {
            // Recorded, but its task never queued (baton died between):
            // queued now, under the id it was recorded with.
            return self.queue(state, item, &known.task_id).await;
        }
        // An item's own run is made when it is queued: none to name yet.
        let run = match self.own_runs {
            true => String::new(),
            false => runner::ensure_service(state).await.map_err(refused)?,
        };
        let id = self.task_id(item);
        let taken = SourceItem {
            source: self.source.name.clone(),
            item: item.key.clone(),
            run_id: run,
            task_id: id.clone(),
            title: item.title.clone(),
            url: item.url.clone(),
            taken_at: 0,
            reported_at: None,
            started_told_at: None,
            comments_seen: 0,
            count_seen: 0,
            labels_seen: Some(item.labels.clone()),
        };
        // Recorded before the task is queued: whatever happens next, the
        // item never becomes a second task.
        let row = taken.clone();
        state
            .store
            .call(move |s| s.take_source_item(&row))
            .await
            .map_err(|e| Taken::Refused(format!("cannot record it: {e}")))?;
        self.queue(state, item, &id).await
    }

    /// The task id of an item: its source's kind, its key and its title.
    fn task_id(&self, item: &WorkItem) -> String {
        self.id_of(&item.key, &item.title)
    }

    fn id_of(&self, key: &str, title: &str) -> String {
        let words = format!("{} {}", key.trim_start_matches('#'), title);
        format!("{}-{}", self.tag, runner::slug(&words))
    }

    /// Whether the task of a recorded item is in its run.
    async fn queued(&self, state: &Arc<AppState>, known: &SourceItem) -> Result<bool, Taken> {
        let (run, task) = (known.run_id.clone(), known.task_id.clone());
        if task.is_empty() {
            // The item is a whole (planned) run. Only a run that is not
            // there is "not queued": any other failure is said, and the
            // item is not started again.
            return match state.store.call(move |s| s.run(&run)).await {
                Ok(_) => Ok(true),
                Err(baton_core::store::StoreError::NoSuchRun(_)) => Ok(false),
                Err(e) => Err(refused(e)),
            };
        }
        let found = state.store.call(move |s| s.task(&run, &task)).await;
        Ok(found.map_err(refused)?.is_some())
    }

    /// Queues the task of a recorded item (as `id`) and tells the tracker;
    /// a task that cannot be queued lets go of the item, to be taken again.
    async fn queue(&self, state: &Arc<AppState>, item: &WorkItem, id: &str) -> Result<(), Taken> {
        let comments = self.tracker.comments(item).await.map_err(Taken::Tracker)?;
        let comments = people(comments);
        let mut full = item.clone();
        full.comments = comments;
        let text = tracker::prompt(&full);
        let prompt = baton_core::template::literal(&text);
        let queued = if self.source.mode == SourceMode::Plan {
            self.start_planner(state, &text).await
        } else if self.own_runs {
            runner::start_item_run(state, id, &prompt, &item.labels).await
        } else {
            let needs = self.needs(state, item).await?;
            runner::add_named_task(state, id, &prompt, None, &item.labels, &needs, Some(id)).await
        };
        let (run, task) = match queued {
            Ok(done) => done,
            Err(e) => {
                let (source, key) = (self.source.name.clone(), item.key.clone());
                let forgot = state
                    .store
                    .call(move |s| s.forget_source_item(&source, &key))
                    .await;
                if let Err(f) = forgot {
                    let name = &self.source.name;
                    tracing::error!("{name}: {} stays recorded without a task: {f}", item.key);
                }
                return Err(Taken::Refused(e.to_string()));
            }
        };
        tracing::info!(
            "{}: {} became task {task} of run {run}",
            self.source.name,
            item.key
        );
        let (source, key) = (self.source.name.clone(), item.key.clone());
        let (n, count) = (full.comments.len() as u32, item.comment_count);
        let (r, t) = (run.clone(), task.clone());
        // Where its task is (queued again after a crash, it may be in a
        // newer service run), and the comments it has had.
        let what = format!("{}: {}'s task", self.source.name, item.key);
        state
            .write(what, move |s| {
                s.move_source_item(&source, &key, &r, &t)?;
                s.set_source_comments_seen(&source, &key, n, count)
            })
            .await;
        let (r, t) = (run.clone(), task.clone());
        let agent = state.store.call(move |s| s.task(&r, &t)).await;
        let agent = agent.ok().flatten().and_then(|t| t.agent);
        self.tell_started(state, &item.key, &run, &task, agent.as_deref())
            .await
            .map_err(Taken::Tracker)
    }

    /// The tasks of the items `item` waits for that baton took into the
    /// service run (an item that is not baton's work is not waited for).
    async fn needs(&self, state: &Arc<AppState>, item: &WorkItem) -> Result<Vec<String>, Taken> {
        if item.needs.is_empty() {
            return Ok(Vec::new());
        }
        let run = runner::ensure_service(state).await.map_err(refused)?;
        let mut tasks = Vec::new();
        for key in &item.needs {
            let (source, key) = (self.source.name.clone(), key.clone());
            let taken = state
                .store
                .call(move |s| s.source_item(&source, &key))
                .await;
            match taken.map_err(refused)? {
                Some(t) if t.run_id == run => tasks.push(t.task_id),
                _ => {}
            }
        }
        Ok(tasks)
    }

    /// An item `item` waits for that baton took and whose work has not
    /// merged yet (its own run starts from the base once that work is there).
    async fn open_need(
        &self,
        state: &Arc<AppState>,
        item: &WorkItem,
    ) -> Result<Option<String>, Taken> {
        for key in &item.needs {
            let (source, k) = (self.source.name.clone(), key.clone());
            let taken = state.store.call(move |s| s.source_item(&source, &k)).await;
            if taken
                .map_err(refused)?
                .is_some_and(|t| t.reported_at.is_none())
            {
                return Ok(Some(key.clone()));
            }
        }
        Ok(None)
    }

    /// Tells the tracker that `item`'s task is queued, and records that it
    /// heard (until then, each round tells it again).
    async fn tell_started(
        &self,
        state: &Arc<AppState>,
        key: &str,
        run: &str,
        task: &str,
        agent: Option<&str>,
    ) -> Result<(), TrackerError> {
        let link = state.opts.task_link(run, task);
        let text = tracker::started_comment(run, task, agent, link.as_deref());
        let report = Report {
            event: "started",
            item: key.to_string(),
            run: run.to_string(),
            task: task.to_string(),
            status: None,
            text: tracker::marked(&text),
        };
        self.tracker.report(&report).await?;
        let (source, key) = (self.source.name.clone(), key.to_string());
        let what = format!("{source}: that {key} heard its start");
        state
            .write(what, move |s| s.mark_source_item_started(&source, &key))
            .await;
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
        if known.task_id.is_empty() {
            // A planned run has no one task to tell.
            return Ok(());
        }
        // A task that has ended (its pull request may be open) hears no more.
        let (r, t) = (known.run_id.clone(), known.task_id.clone());
        let task = state.store.call(move |s| s.task(&r, &t)).await;
        if task
            .map_err(refused)?
            .is_some_and(|t| t.status.is_finished())
        {
            return Ok(());
        }
        let comments = people(self.tracker.comments(item).await.map_err(Taken::Tracker)?);
        let seen = (known.comments_seen as usize).min(comments.len());
        let mut passed = comments.len();
        for (i, c) in comments.iter().enumerate().skip(seen) {
            let text = format!("{} commented on {}:\n{}", c.author, item.key, c.body.trim());
            let sent =
                runner::send_message(state, &known.run_id, None, &known.task_id, &text).await;
            if let Err(e) = sent {
                // This one and those after it are passed on next round.
                let (name, key) = (&known.source, &item.key);
                tracing::info!("{name}: a comment on {key} not passed on yet: {e}");
                passed = i;
                break;
            }
        }
        // The count is kept only when every comment went: else the next
        // round reads them again.
        let count = if passed == comments.len() {
            item.comment_count
        } else {
            known.count_seen
        };
        let (source, key) = (known.source.clone(), known.item.clone());
        let what = format!("{source}: the comments passed on for {key}");
        state
            .write(what, move |s| {
                s.set_source_comments_seen(&source, &key, passed as u32, count)
            })
            .await;
        Ok(())
    }

    /// Tells the tracker how each taken item's task ended. An item the
    /// tracker refuses (deleted, moved) is said and skipped; only its
    /// credentials or a rate limit end the round.
    async fn report_ends(&self, state: &Arc<AppState>) -> Result<(), TrackerError> {
        let source = self.source.name.clone();
        let open = state
            .store
            .call(move |s| s.unreported_source_items(&source))
            .await
            .map_err(|e| TrackerError::Other(e.to_string()))?;
        for item in open {
            match self.report_end(state, &item).await {
                Ok(()) => {}
                Err(e) if ends_round(&e) => return Err(e),
                Err(e) => tracing::warn!("{}: cannot report on {}: {e}", item.source, item.item),
            }
        }
        Ok(())
    }

    async fn report_end(
        &self,
        state: &Arc<AppState>,
        item: &SourceItem,
    ) -> Result<(), TrackerError> {
        if item.task_id.is_empty() {
            return self.report_run_end(state, item).await;
        }
        let (r, t) = (item.run_id.clone(), item.task_id.clone());
        let record = state.store.call(move |s| s.task(&r, &t)).await;
        let Ok(Some(task)) = record else {
            return Ok(());
        };
        if !task.status.is_finished() {
            if item.started_told_at.is_none() {
                let agent = task.agent.as_deref();
                self.tell_started(state, &item.item, &item.run_id, &item.task_id, agent)
                    .await?;
            }
            return Ok(());
        }
        if !task.status.is_bad_end() && self.source.mode == SourceMode::Plan {
            // The planner's task: its plan runs now.
            return self.run_planned(state, item).await;
        }
        if !task.status.is_bad_end() && self.lands_as_pull(state, &item.run_id).await {
            // Its pull request tells the item when it opens and merges.
            return Ok(());
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
        self.tell_end(state, item, &ended).await
    }
}

impl Intake {
    /// Whether `run` is an item's own run, which lands as a pull request.
    async fn lands_as_pull(&self, state: &Arc<AppState>, run: &str) -> bool {
        let r = run.to_string();
        let rec = state.store.call(move |s| s.run(&r)).await;
        self.own_runs && rec.is_ok_and(|r| r.kind != baton_core::model::RunKind::Service)
    }
}

/// What people wrote: not baton's own comments (they carry its mark).
fn people(comments: Vec<ItemComment>) -> Vec<ItemComment> {
    let mine = |c: &ItemComment| c.body.contains(tracker::MARK);
    comments.into_iter().filter(|c| !mine(c)).collect()
}

fn refused(e: impl std::fmt::Display) -> Taken {
    Taken::Refused(e.to_string())
}

enum Taken {
    /// The tracker failed: the item is taken next time (a failure of its
    /// credentials or a rate limit ends the round).
    Tracker(TrackerError),
    /// baton would not make it a task (a bad route, the store): said, skipped.
    Refused(String),
    /// It waits for this item's work to merge first.
    Waits(String),
}

#[cfg(test)]
mod tests {
    use baton_core::plan::Plan;

    #[test]
    fn two_github_sources_give_their_items_ids_of_their_own() {
        let text = "[agent.a]\nadapter = \"exec\"\ncommand = [\"true\"]\n\n[[source]]\nkind = \"github\"\nrepo = \"acme/app\"\nlabel = \"baton\"\n\n[[source]]\nkind = \"github\"\nrepo = \"acme/site\"\nlabel = \"baton\"\n\n[[source]]\nkind = \"command\"\nname = \"board\"\ncommand = [\"./list\"]\n";
        let plan = Plan::parse_config(std::path::Path::new("baton.toml"), text, None).unwrap();
        let tags: Vec<String> = plan
            .sources
            .iter()
            .map(|s| super::tag_of(s, false))
            .collect();
        assert_eq!(tags, ["github-app-baton", "github-site-baton", "board"]);
        assert_eq!(super::tag_of(&plan.sources[0], true), "github");
    }
}
