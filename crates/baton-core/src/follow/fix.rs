//! Fix attempts on a followed pull request: a task added to the run (its
//! branch starts from the integration branch, which is the pull request's),
//! driven to its end like any task, then pushed, and the threads it
//! answered replied to.

use super::decide::{self, Trouble};
use super::{prompt, FollowError, Follower, Round};
use crate::executor::Boxed;
use crate::forge::Pull;
use crate::payload::Payload;
use crate::plan::Plan;
use crate::store::{Added, Fixing, NewTask, PullRecord};
use std::path::Path;

/// How a run is driven once a fix task is added to it: the CLI drives it
/// in its own process, the server as one of its runs.
pub trait FixDriver: Send + Sync {
    /// Drives run `run` (reopened, a task added) until it ends or baton
    /// stops.
    fn drive<'a>(&'a self, run: &'a str) -> Boxed<'a, Result<(), String>>;
}

/// A fix attempt about to start.
pub(super) struct Planned {
    pub why: &'static str,
    pub prompt: String,
    /// Files the trouble names (for choosing the fixer).
    pub mentioned: Vec<String>,
    /// Review comments it answers.
    pub comments: Vec<u64>,
}

impl Follower<'_> {
    /// Starts a fix attempt on checks that failed or a review.
    pub(super) async fn fix_trouble(
        &self,
        rec: &mut PullRecord,
        pull: &Pull,
        trouble: Trouble,
    ) -> Result<Round, FollowError> {
        let planned = match &trouble {
            Trouble::Checks(failed) => {
                let mut logs = Vec::new();
                for c in failed {
                    let log = match self.forge.log_tail(c, prompt::LOG_LINES).await {
                        Ok(l) => prompt::tail(&l, prompt::LOG_LINES),
                        Err(e) => format!("(its log could not be read: {e})"),
                    };
                    logs.push(log);
                }
                rec.handled_sha = Some(pull.head_sha.clone());
                let mentioned = self.files_in(&rec.head, &logs.join("\n")).await;
                Planned {
                    why: "checks",
                    prompt: prompt::for_checks(rec.number, &pull.head_sha, failed, &logs),
                    mentioned,
                    comments: Vec::new(),
                }
            }
            Trouble::Review { comments, reviews } => {
                rec.handled_comments.extend(comments.iter().map(|c| c.id));
                rec.handled_reviews.extend(reviews.iter().map(|r| r.id));
                Planned {
                    why: "review",
                    prompt: prompt::for_review(rec.number, comments, reviews),
                    mentioned: comments.iter().map(|c| c.path.clone()).collect(),
                    comments: comments.iter().map(|c| c.id).collect(),
                }
            }
        };
        self.start_fix(rec, planned).await
    }

    /// Records the fix (before its task exists: a baton that stops between
    /// adds it when it starts again), tells the pull request, and drives it.
    pub(super) async fn start_fix(
        &self,
        rec: &mut PullRecord,
        planned: Planned,
    ) -> Result<Round, FollowError> {
        let n = rec.fixes_used + 1;
        let run = rec.run_id.clone();
        let r = run.clone();
        let tasks = self.store.call(move |s| s.tasks(&r)).await?;
        let mut task = format!("fix-{n}-{}", planned.why);
        while tasks.iter().any(|t| t.id == task) {
            task.push('x');
        }
        // A conflict goes to the run's resolver when it names one, as a
        // conflict in the merge queue does.
        let resolver = match planned.why {
            "conflict" => self.resolver_of(&run).await,
            _ => None,
        };
        let agent = match (resolver, &self.settings.fixer) {
            (Some(r), _) => Some(r),
            (None, Some(f)) => Some(f.clone()),
            (None, None) => self.fixer_by_files(&tasks, &planned.mentioned).await,
        };
        rec.fixes_used = n;
        rec.fixing = Some(Fixing {
            task: task.clone(),
            why: planned.why.into(),
            comments: planned.comments,
            prompt: planned.prompt,
            agent: agent.clone(),
        });
        rec.note = Some(format!("fix {n} ({}) running as task {task}", planned.why));
        self.save(rec).await?;
        let (number, why) = (rec.number, planned.why.to_string());
        let t = task.clone();
        self.event(
            &run,
            Payload::PullFix {
                number,
                why,
                task: t,
                fix: n,
            },
        )
        .await?;
        let who = agent.map(|a| format!(" by `{a}`")).unwrap_or_default();
        let what = match planned.why {
            "checks" => "its failed checks",
            "review" => "the review comments",
            _ => "its conflict with the base branch",
        };
        let max = self.settings.max_fixes;
        (self.say)(&format!(
            "pull request #{number}: fix {n} of {max} for {what}, as task {task}"
        ));
        let text =
            format!("baton is fixing {what}: fix {n} of {max}, task `{task}` of run `{run}`{who}.");
        self.comment(number, &text).await;
        Ok(Round::Again)
    }

    /// The fix going on: added and driven if it has not ended, else its
    /// work pushed and its threads answered.
    pub(super) async fn after_fix(
        &self,
        rec: &mut PullRecord,
        f: Fixing,
    ) -> Result<Round, FollowError> {
        let run = rec.run_id.clone();
        let (r, t) = (run.clone(), f.task.clone());
        let mut found = self.store.call(move |s| s.task(&r, &t)).await?;
        if found.is_none() {
            self.add_task(&run, &f).await?;
        }
        if !found.as_ref().is_some_and(|t| t.status.is_finished()) {
            let paths = crate::paths::StatePaths::new(self.repo.state_dir());
            if crate::control::is_live(&paths, &run) {
                // Another baton drives the run (a server resumed it): its
                // end is near, looked for at every poll.
                return Ok(Round::Idle {
                    changed: false,
                    settled: false,
                });
            }
            if found.is_some() {
                let r = run.clone();
                self.store.call(move |s| s.reopen_run(&r)).await?;
            }
            self.fixes.drive(&run).await.map_err(FollowError::Other)?;
            let (r, t) = (run.clone(), f.task.clone());
            found = self.store.call(move |s| s.task(&r, &t)).await?;
        }
        let Some(task) = found.filter(|t| t.status.is_finished()) else {
            // Stopped before its end (baton is shutting down): picked up again.
            return Ok(Round::Idle {
                changed: false,
                settled: true,
            });
        };
        let pushed = if task.merged {
            match push(self, rec).await {
                Ok(commit) => Some(commit),
                Err(FollowError::Diverged(why)) => {
                    rec.fixing = None;
                    return self.needs_you(rec, why).await;
                }
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        let number = rec.number;
        rec.spent_usd += task.cost_usd.unwrap_or(0.0);
        rec.fixing = None;
        let reason = task
            .reason
            .clone()
            .unwrap_or_else(|| task.status.to_string());
        match &pushed {
            Some(commit) => {
                let short = decide::short(commit);
                (self.say)(&format!(
                    "pull request #{number}: {} pushed as {short}",
                    f.task
                ));
                for id in &f.comments {
                    let text = crate::tracker::marked(&format!("Addressed in {commit}."));
                    if let Err(e) = self.forge.reply(number, *id, &text).await {
                        (self.say)(&format!("cannot answer review comment {id}: {e}"));
                    }
                }
                let text = format!("baton pushed {commit} ({}).", f.task);
                self.comment(number, &text).await;
            }
            None => {
                (self.say)(&format!(
                    "pull request #{number}: {} failed: {reason}",
                    f.task
                ));
                // What it was for is open again (the cap bounds the tries).
                if f.why == "checks" {
                    rec.handled_sha = None;
                }
                rec.handled_comments.retain(|c| !f.comments.contains(c));
                let text = format!("baton's fix `{}` did not work out: {reason}.", f.task);
                self.comment(number, &text).await;
            }
        }
        rec.note = None;
        self.save(rec).await?;
        let task_id = f.task.clone();
        let reason = if pushed.is_some() {
            String::new()
        } else {
            reason
        };
        self.event(
            &run,
            Payload::PullFixEnded {
                number,
                task: task_id,
                pushed,
                reason,
            },
        )
        .await?;
        Ok(Round::Again)
    }

    /// Adds the fix's task to its run (reopened: it may have finished).
    async fn add_task(&self, run: &str, f: &Fixing) -> Result<(), FollowError> {
        let r = run.to_string();
        let (rec, added) = self
            .store
            .call(move |s| Ok::<_, crate::store::StoreError>((s.run(&r)?, s.added_tasks(&r)?)))
            .await?;
        let bad = |e: crate::plan::PlanError| FollowError::Other(format!("the fix task: {e}"));
        let plan =
            Plan::parse_config(Path::new(&rec.plan_path), &rec.plan_source, None).map_err(bad)?;
        let mut snippets: Vec<String> = added.into_iter().map(|(_, a)| a.snippet).collect();
        let snippet = Plan::task_snippet(&f.task, &f.prompt, f.agent.as_deref());
        snippets.push(snippet.clone());
        let root = Some(self.repo.root.as_path());
        let spec = plan.parse_added(&snippets, root).map_err(bad)?.pop();
        let spec = spec.ok_or_else(|| FollowError::Other("the fix task did not parse".into()))?;
        let kept = Added {
            snippet,
            spec: serde_json::to_string(&spec).map_err(|e| FollowError::Other(e.to_string()))?,
            tags: vec!["fix".into()],
        };
        let task = NewTask {
            branch: crate::paths::task_branch(run, &f.task),
            id: f.task.clone(),
            agent: spec.agent,
            needs: Vec::new(),
        };
        let r = run.to_string();
        self.store
            .call(move |s| {
                s.reopen_run(&r)?;
                s.add_task(&r, &task, &kept)
            })
            .await?;
        Ok(())
    }

    /// The profile of the task whose changes touch the `mentioned` files
    /// most (None: none does, the plan's default then).
    /// The run's `run.resolver`, if its plan names one.
    async fn resolver_of(&self, run: &str) -> Option<String> {
        let r = run.to_string();
        let rec = self.store.call(move |s| s.run(&r)).await.ok()?;
        let path = Path::new(&rec.plan_path);
        let plan = Plan::parse_config(path, &rec.plan_source, None).ok()?;
        plan.run.resolver
    }

    async fn fixer_by_files(
        &self,
        tasks: &[crate::store::TaskRecord],
        mentioned: &[String],
    ) -> Option<String> {
        if mentioned.is_empty() {
            return None;
        }
        let mut best: Option<(usize, String)> = None;
        for t in tasks.iter().filter(|t| t.merged) {
            let (Some(from), Some(to), Some(agent)) = (&t.start_commit, &t.commit_id, &t.agent)
            else {
                continue;
            };
            let Ok(files) = self.repo.changed_files(from, to).await else {
                continue;
            };
            let score = files.iter().filter(|f| mentioned.contains(f)).count();
            if score > 0 && best.as_ref().is_none_or(|(b, _)| score > *b) {
                best = Some((score, agent.clone()));
            }
        }
        best.map(|(_, a)| a)
    }

    /// The files of branch `head` that `text` (logs) names.
    async fn files_in(&self, head: &str, text: &str) -> Vec<String> {
        let tree = format!("refs/heads/{head}");
        let listed = crate::git::git_ok(
            &self.repo.root,
            ["ls-tree", "-r", "--name-only", tree.as_str()],
        )
        .await;
        let Ok(listed) = listed else {
            return Vec::new();
        };
        listed
            .lines()
            .filter(|f| text.contains(*f))
            .map(str::to_string)
            .collect()
    }
}

/// Pushes the pull request's branch (the run's integration branch) to the
/// remote; the commit pushed.
/// Pushes baton's copy of the branch, with any push someone else made to
/// it merged in first (Diverged: it cannot be).
pub(super) async fn push(f: &Follower<'_>, rec: &PullRecord) -> Result<String, FollowError> {
    if let super::sync::Synced::Conflict(why) = f.sync_with_remote(rec).await? {
        return Err(FollowError::Diverged(why));
    }
    let head_ref = format!("refs/heads/{}", rec.head);
    let missing = || FollowError::Other(format!("the branch {} is gone", rec.head));
    let tip = f.repo.ref_commit(&head_ref).await?.ok_or_else(missing)?;
    let spec = format!("{head_ref}:{head_ref}");
    let remote = f.settings.remote.as_str();
    crate::git::git_ok(&f.repo.root, ["push", "-q", remote, spec.as_str()]).await?;
    Ok(tip)
}
