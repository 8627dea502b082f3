//! The merge lane: everything between "task done" and "branch moved". It
//! owns the queue, the batch under the run's `verify`, what it knows of each
//! started task's branch (so nothing is read back from the store to merge
//! it), the look for conflicts ahead and the resolver's prompts. The engine
//! hands it tasks and the checks' verdicts; the lane answers with how each
//! merge went, which the engine tells the board.

use super::batch::{Batch, Next};
use super::queue::{Candidate, MergeQueue, MergeResult, Prepared};
use super::verify;
use crate::engine::board::Board;
use crate::engine::desk::Desks;
use crate::engine::messages::{GateResult, WorkerCmd};
use crate::engine::shared::Shared;
use crate::payload::Payload;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// How often at most running tasks are dry-run against a new integration head.
const LOOK_AHEAD_EVERY: Duration = Duration::from_secs(2);

/// A merge settled: the task and how its merge went.
pub(crate) type Settled = (usize, MergeResult);

/// What the lane knows of a started task's branch.
#[derive(Debug, Clone, Default)]
pub(crate) struct Line {
    pub id: String,
    pub branch: String,
    /// Where the branch began; a branch still there has nothing to merge.
    pub start_commit: Option<String>,
    /// The task's last commit, once it finished.
    pub commit: Option<String>,
    /// The paths it would conflict on with the integration head, last said.
    pub conflict_ahead: Vec<String>,
}

/// A batch of merges under the run's `verify` checks.
struct Verifying {
    batch: Batch,
    stop: UnboundedSender<WorkerCmd>,
}

pub(crate) struct MergeLane {
    queue: MergeQueue,
    verifying: Option<Verifying>,
    lines: HashMap<usize, Line>,
    /// When conflicts ahead were last looked for.
    last_look: Option<Instant>,
    /// Resolver attempts about to start, by task: (profile, prompt).
    resolutions: HashMap<usize, (String, String)>,
}

impl MergeLane {
    pub fn new(queue: MergeQueue) -> MergeLane {
        MergeLane {
            queue,
            verifying: None,
            lines: HashMap::new(),
            last_look: None,
            resolutions: HashMap::new(),
        }
    }

    /// The integration head new tasks start from.
    pub fn head(&self) -> &str {
        self.queue.head()
    }

    /// Whether merges are queued or being checked.
    pub fn is_busy(&self) -> bool {
        !self.queue.is_empty() || self.verifying.is_some()
    }

    /// Task `i` started on `line.branch` (or was taken over by resume).
    pub fn started(&mut self, i: usize, line: Line) {
        self.lines.insert(i, line);
    }

    /// Task `i` ended with its work at `commit`, started from `start`.
    /// Conflicts ahead said of it are moot now (the merge will tell), and
    /// are cleared.
    pub async fn finished(
        &mut self,
        sh: &Shared,
        i: usize,
        commit: Option<String>,
        start: Option<String>,
    ) {
        let Some(line) = self.lines.get_mut(&i) else {
            return;
        };
        if commit.is_some() {
            line.commit = commit;
        }
        if start.is_some() {
            line.start_commit = start;
        }
        if std::mem::take(&mut line.conflict_ahead).is_empty() {
            return;
        }
        let id = line.id.clone();
        sh.write("set conflict ahead", move |s, run| {
            s.set_conflict_ahead(run, &id, &[])
        })
        .await;
    }

    pub fn push(&mut self, i: usize) {
        self.queue.push(i);
    }

    /// Stops the checks under way; their tasks stay queued for resume.
    pub fn shutdown(&self) {
        if let Some(v) = &self.verifying {
            let _ = v.stop.send(WorkerCmd::Shutdown);
        }
    }

    /// Whether a resolver attempt is readied for task `i`.
    pub fn has_resolution(&self, i: usize) -> bool {
        self.resolutions.contains_key(&i)
    }

    /// The resolver attempt readied for task `i`, if one is.
    pub fn take_resolution(&mut self, i: usize) -> Option<(String, String)> {
        self.resolutions.remove(&i)
    }

    /// Merges the integration head into a task's worktree (for its next
    /// attempt to fix); true when conflict markers were left.
    pub async fn merge_into(
        &self,
        sh: &Shared,
        worktree: &Path,
    ) -> Result<bool, crate::git::GitError> {
        self.queue.merge_into(&sh.repo, worktree).await
    }

    /// Merges what is queued, one at a time. With `verify`, up to
    /// `verify_batch` merges are made one on another and checked together
    /// (the run goes on meanwhile); the branch moves once they pass.
    pub async fn step(&mut self, sh: &Arc<Shared>, board: &Board, desks: &Desks) -> Vec<Settled> {
        let verify = !sh.plan.run.verify.is_empty();
        let mut settled = Vec::new();
        let mut batch = Vec::new();
        while self.verifying.is_none() && batch.len() < sh.plan.run.verify_batch {
            let Some(i) = self.queue.pop() else {
                break;
            };
            let result = match self.prepare(sh, i).await {
                Prepared::Commit(new) if verify => {
                    batch.push((i, new));
                    continue;
                }
                Prepared::Commit(new) => self.queue.publish(&sh.repo, &new).await,
                // A conflict with merges not checked yet waits for them: it
                // is merged again on what lands.
                Prepared::Done(MergeResult::Conflict { .. }) if self.queue.has_pending() => {
                    self.queue.push_front(&[i]);
                    break;
                }
                Prepared::Done(result) => result,
            };
            settled.push((i, result));
        }
        if let Some((batch, commit)) = Batch::new(batch) {
            self.check(sh, board, desks, batch, commit);
        }
        settled
    }

    /// The merge commit of task `i` on the queue's tip, or why there is none.
    async fn prepare(&mut self, sh: &Shared, i: usize) -> Prepared {
        let Some(line) = self.lines.get(&i) else {
            return Prepared::Done(MergeResult::Failed(format!(
                "task {i} was queued to merge without a branch"
            )));
        };
        let c = Candidate {
            id: &line.id,
            branch: &line.branch,
            commit: line.commit.as_deref(),
            start_commit: line.start_commit.as_deref(),
        };
        self.queue.prepare(&sh.repo, c).await
    }

    /// Starts the run's checks on a commit of the batch.
    fn check(&mut self, sh: &Arc<Shared>, board: &Board, desks: &Desks, b: Batch, commit: String) {
        let dir = desks.verify_dir(&sh.run_id);
        let id = board.id(b.probed_task()).to_string();
        let stop = verify::spawn(sh.clone(), id, commit, dir);
        self.verifying = Some(Verifying { batch: b, stop });
    }

    /// The checks' verdict on the batch under way: publishes what passed,
    /// fails the culprit, requeues what sat on it, or checks the next commit.
    pub async fn verified(
        &mut self,
        sh: &Arc<Shared>,
        board: &Board,
        desks: &Desks,
        result: GateResult,
    ) -> Vec<Settled> {
        let Some(mut v) = self.verifying.take() else {
            return Vec::new();
        };
        let next = match result {
            GateResult::Passed => v.batch.passed(),
            // Stopped by a shutdown: the tasks stay queued for resume.
            GateResult::Interrupted(_) => {
                self.queue.discard();
                return Vec::new();
            }
            GateResult::Failed { reason, feedback } => v.batch.failed(reason, feedback),
        };
        self.verdict(sh, board, desks, v, next).await
    }

    async fn verdict(
        &mut self,
        sh: &Arc<Shared>,
        board: &Board,
        desks: &Desks,
        v: Verifying,
        next: Next,
    ) -> Vec<Settled> {
        let mut settled = Vec::new();
        if let Some((_, last)) = next.land.last() {
            let published = self.queue.publish(&sh.repo, last).await;
            if !matches!(published, MergeResult::Merged { .. }) {
                // The branch would not move: these did not land, the rest merge again.
                let rest: Vec<usize> = v.batch.unsettled().collect();
                self.queue.discard();
                settled.extend(next.land.iter().map(|(t, _)| (*t, published.clone())));
                self.queue.push_front(&rest);
                return settled;
            }
            for (t, commit) in next.land {
                let integration = Some(commit);
                settled.push((t, MergeResult::Merged { integration }));
            }
        }
        if let Some((t, reason, feedback)) = next.culprit {
            self.queue.discard();
            let result = self.verify_failed(sh, board, t, reason, feedback).await;
            settled.push((t, result));
            self.queue.push_front(&next.requeue);
        }
        if let Some(commit) = next.check {
            self.check(sh, board, desks, v.batch, commit);
        }
        settled
    }

    /// The run's checks failed on task `i`'s merge: the attempt that passed
    /// its gates counts as failed, and if retries are left the integration
    /// head is merged into its worktree for the next attempt to fix.
    async fn verify_failed(
        &mut self,
        sh: &Shared,
        board: &Board,
        i: usize,
        reason: String,
        feedback: String,
    ) -> MergeResult {
        let id = board.id(i).to_string();
        let retries = board.spec(i).retries;
        let (task, why) = (id.clone(), reason.clone());
        let rec = sh
            .db(move |s, run| -> Result<_, crate::store::StoreError> {
                let rec = s.task(run, &task)?;
                if let Some(r) = &rec {
                    s.fail_attempt(run, &task, r.attempts, &why)?;
                }
                let failed = s
                    .attempts(run, &task)?
                    .iter()
                    .filter(|a| a.status.is_failure())
                    .filter(|a| rec.as_ref().is_some_and(|r| a.n > r.retry_from))
                    .count() as u32;
                Ok((rec, failed))
            })
            .await;
        let (rec, failed) = match rec {
            Ok((rec, failed)) => (rec, failed),
            Err(e) => return MergeResult::Failed(format!("{reason} (and: {e})")),
        };
        let worktree = rec.as_ref().and_then(|r| r.existing_worktree());
        let retry = failed <= retries && worktree.is_some();
        if let (true, Some(wt)) = (retry, worktree) {
            if let Err(e) = self.queue.merge_into(&sh.repo, wt).await {
                tracing::warn!("cannot merge the integration branch into {id}'s worktree: {e}");
            }
        }
        let reason =
            format!("{reason}, on the merge of the task's work with the integration branch");
        let feedback = format!(
            "Your work passed its gates, but the run's checks failed once it was merged with the integration branch (which baton has now merged into your worktree). {feedback}"
        );
        MergeResult::VerifyFailed {
            reason,
            feedback,
            retry,
        }
    }

    /// What follows a settled merge in the lane: a merged task that declared
    /// `files` and changed others says which, and running tasks are looked
    /// at for conflicts with the new head (unless `notes_waiting`: workers
    /// that just ended come first).
    pub async fn after(
        &mut self,
        sh: &Shared,
        board: &Board,
        i: usize,
        result: &MergeResult,
        notes_waiting: bool,
    ) {
        let MergeResult::Merged {
            integration: Some(head),
        } = result
        else {
            return;
        };
        self.note_undeclared(sh, board, i).await;
        if !notes_waiting {
            self.look_ahead(sh, board, head).await;
        }
    }

    async fn note_undeclared(&self, sh: &Shared, board: &Board, i: usize) {
        let files = &board.spec(i).files;
        let Some(line) = self.lines.get(&i).filter(|_| !files.is_empty()) else {
            return;
        };
        let (Some(from), Some(to)) = (&line.start_commit, &line.commit) else {
            return;
        };
        let changed = sh.repo.changed_files(from, to).await.unwrap_or_default();
        let outside: Vec<String> = changed.into_iter().filter(|f| !files.matches(f)).collect();
        if outside.is_empty() {
            return;
        }
        let said = vec![format!(
            "changed files outside its declared files ({}): {}",
            files.globs().join(", "),
            outside.join(", ")
        )];
        let id = line.id.clone();
        sh.write("add task warnings", move |s, run| {
            s.add_task_warnings(run, &id, &said)
        })
        .await;
    }

    /// After a merge, each running task's work so far is merged (dry run)
    /// with the new head: where it would conflict is said now, before the
    /// task finishes, so a person (or the task's agent) can act.
    async fn look_ahead(&mut self, sh: &Shared, board: &Board, head: &str) {
        // A dry run per running task per merge would cost more than the
        // merges when many short tasks land at once: at most one look per
        // LOOK_AHEAD_EVERY.
        if self
            .last_look
            .is_some_and(|t| t.elapsed() < LOOK_AHEAD_EVERY)
        {
            return;
        }
        self.last_look = Some(Instant::now());
        for i in board.running_tasks() {
            let Some(line) = self.lines.get_mut(&i) else {
                continue;
            };
            // A task that has committed nothing yet has nothing to conflict:
            // its branch file says so without running git. No file: its desk
            // is not made yet (or git packed the ref, and the look waits for
            // the merge itself).
            let file = sh.repo.common_dir.join("refs/heads").join(&line.branch);
            let Ok(tip) = std::fs::read_to_string(file) else {
                continue;
            };
            let tip = tip.trim();
            if Some(tip) == line.start_commit.as_deref() {
                continue;
            }
            let paths = sh.repo.dry_merge(head, tip).await.unwrap_or_default();
            if paths == line.conflict_ahead {
                continue;
            }
            let id = line.id.clone();
            if !paths.is_empty() {
                let data = Payload::ConflictAhead {
                    paths: paths.clone(),
                    integration: head.to_string(),
                };
                sh.event(Some(&id), None, data).await;
            }
            line.conflict_ahead = paths.clone();
            sh.write("set conflict ahead", move |s, run| {
                s.set_conflict_ahead(run, &id, &paths)
            })
            .await;
        }
    }

    /// A conflicted task's worktree gets the integration head merged in,
    /// conflict markers and all, and a resolver attempt is readied (see
    /// [`super::resolve`]). False: it cannot be.
    pub async fn ready_resolver(
        &mut self,
        sh: &Shared,
        board: &Board,
        i: usize,
        paths: &[String],
    ) -> bool {
        let id = board.id(i).to_string();
        let task = id.clone();
        let Ok(Some(rec)) = sh.db(move |s, run| s.task(run, &task)).await else {
            return false;
        };
        let Some(wt) = rec.existing_worktree() else {
            return false;
        };
        if self.queue.merge_into(&sh.repo, wt).await.is_err() {
            return false;
        }
        let since = rec.started_at.unwrap_or(0);
        let others = sh
            .db(|s, run| s.tasks(run))
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.id != id && t.merged && t.finished_at.is_some_and(|f| f >= since))
            .collect();
        let attempt = super::resolve::resolution(sh, board, i, &rec, others, paths);
        self.resolutions.insert(i, attempt);
        true
    }

    /// The run ends: what someone else put on the integration branch after
    /// the last merge is undone, and every undone move is said.
    pub async fn finish(&mut self, sh: &Shared) {
        if let Err(e) = self.queue.guard(&sh.repo).await {
            tracing::error!("run {}: {e}", sh.run_id);
        }
        self.report_undone(sh).await;
    }

    /// Says which foreign moves of the integration branch were undone.
    pub async fn report_undone(&mut self, sh: &Shared) {
        for (foreign, kept) in self.queue.take_undone() {
            let data = Payload::IntegrationRestored { foreign, kept };
            sh.event(None, None, data).await;
        }
    }
}
