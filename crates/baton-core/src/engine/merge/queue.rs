//! The merge queue: finished tasks wait here and are merged into the run's
//! integration branch one at a time. A merge never touches a work tree
//! (`git merge-tree` + `commit-tree`), and the branch moves by
//! compare-and-swap, so nothing else is ever overwritten. It does git and
//! nothing else; what a merge means for the task is the board's to say.

pub(crate) use crate::engine::messages::MergeResult;
use crate::git::{Repo, TreeMerge};
use std::collections::VecDeque;

/// A merge made and not yet published, or the end of it.
#[derive(Debug)]
pub(crate) enum Prepared {
    Commit(String),
    Done(MergeResult),
}

/// What the queue needs to know of a task it merges.
pub(crate) struct Candidate<'a> {
    pub id: &'a str,
    pub branch: &'a str,
    /// The task's last commit, and the commit it started from.
    pub commit: Option<&'a str>,
    pub start_commit: Option<&'a str>,
}

pub(crate) struct MergeQueue {
    run: String,
    integration_ref: String,
    head: String,
    /// Board indices of the tasks waiting, oldest first.
    waiting: VecDeque<usize>,
    /// Moves of the integration branch by someone else, undone: (what was
    /// there, the ref it is kept under).
    undone: Vec<(String, String)>,
    /// Merges made on the head, each on the one before, not published yet
    /// (a batch under the run's checks); the next merge goes on the last.
    pending: Vec<String>,
    /// (commit, tree) of the last merge made or the tip as last asked: a
    /// merge whose tree is the tip's brought nothing, and only then is it
    /// worth asking git why.
    known_tree: Option<(String, String)>,
}

impl MergeQueue {
    pub fn new(run: &str, integration_ref: String, head: String) -> MergeQueue {
        MergeQueue {
            run: run.to_string(),
            integration_ref,
            head,
            waiting: VecDeque::new(),
            undone: Vec::new(),
            pending: Vec::new(),
            known_tree: None,
        }
    }

    /// The integration branch's head as this queue last left it.
    pub fn head(&self) -> &str {
        &self.head
    }

    /// Where the next merge goes: on the last one not yet published.
    fn tip(&self) -> &str {
        self.pending.last().unwrap_or(&self.head)
    }

    /// Whether merges are made and not published.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Forgets the merges not published: the next one goes on the head.
    pub fn discard(&mut self) {
        self.pending.clear();
    }

    pub fn push(&mut self, task: usize) {
        self.waiting.push_back(task);
    }

    /// Puts tasks back at the front of the queue, in this order.
    pub fn push_front(&mut self, tasks: &[usize]) {
        for &t in tasks.iter().rev() {
            self.waiting.push_front(t);
        }
    }

    pub fn pop(&mut self) -> Option<usize> {
        self.waiting.pop_front()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Merges the queue's head into a task's worktree, conflict markers and
    /// all, for its agent to finish; returns whether it conflicted.
    pub async fn merge_into(
        &self,
        repo: &crate::git::Repo,
        worktree: &std::path::Path,
    ) -> Result<bool, crate::git::GitError> {
        let args = ["merge", "--no-edit", "--no-ff", self.head.as_str()];
        Ok(repo.in_desk(worktree, args).await?.code != 0)
    }

    /// The foreign moves undone since last asked.
    pub fn take_undone(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.undone)
    }

    /// The integration branch belongs to the queue: a commit someone else put
    /// there (an agent pushing to it, a person) has not been checked, so the
    /// branch goes back to the queue's head and that commit is kept under
    /// `refs/baton/<run>/foreign-<k>`. A deleted branch is made again.
    pub async fn guard(&mut self, repo: &Repo) -> Result<(), String> {
        let now = repo
            .ref_commit(&self.integration_ref)
            .await
            .map_err(|e| e.to_string())?;
        match now {
            Some(c) if c == self.head => Ok(()),
            Some(foreign) => {
                let kept = format!("refs/baton/{}/foreign-{}", self.run, self.undone.len() + 1);
                repo.set_ref(&kept, &foreign)
                    .await
                    .map_err(|e| format!("cannot keep {foreign} under {kept}: {e}"))?;
                repo.move_ref(&self.integration_ref, &self.head, &foreign)
                    .await
                    .map_err(|e| format!("cannot put the integration branch back: {e}"))?;
                self.undone.push((foreign, kept));
                Ok(())
            }
            None => repo
                .create_ref(&self.integration_ref, &self.head)
                .await
                .map_err(|e| format!("cannot make the deleted integration branch again: {e}")),
        }
    }

    /// Makes the merge commit of a task's work onto the queue's tip (the
    /// head, or the last merge not published), without moving the
    /// integration branch; or says why there is none.
    pub async fn prepare(&mut self, repo: &Repo, c: Candidate<'_>) -> Prepared {
        let commit = c.commit.unwrap_or_default();
        let nothing = Prepared::Done(MergeResult::Merged { integration: None });
        if commit.is_empty() || c.start_commit == Some(commit) {
            return nothing;
        }
        let message = format!(
            "baton: merge task {}\n\nRun: {}\nBranch: {}",
            c.id, self.run, c.branch
        );
        let tip = self.tip().to_string();
        let tree = match repo.merge_tree(&tip, commit).await {
            Ok(TreeMerge::Clean(tree)) => tree,
            Ok(TreeMerge::Conflict(paths)) => {
                let reason = format!(
                    "merge conflict with the integration branch in {}; the task's work is kept on branch {}",
                    paths.join(", "),
                    c.branch
                );
                return Prepared::Done(MergeResult::Conflict { paths, reason });
            }
            Err(e) => return Prepared::Done(MergeResult::Failed(format!("merge failed: {e}"))),
        };
        // A branch that ends below where the task started holds none of its
        // work; its merge changes nothing, which is the cheap thing to see.
        if let Some(start) = c.start_commit {
            if self.is_tip_tree(repo, &tree).await
                && repo.is_ancestor(commit, start).await.unwrap_or(false)
            {
                return nothing;
            }
        }
        match repo
            .commit_tree(&tree, &[tip.as_str(), commit], &message)
            .await
        {
            Ok(new) => {
                self.known_tree = Some((new.clone(), tree));
                self.pending.push(new.clone());
                Prepared::Commit(new)
            }
            Err(e) => Prepared::Done(MergeResult::Failed(format!("merge failed: {e}"))),
        }
    }

    async fn is_tip_tree(&mut self, repo: &Repo, tree: &str) -> bool {
        let tip = self.tip().to_string();
        let known = self.known_tree.as_ref().filter(|(c, _)| *c == tip);
        if let Some((_, t)) = known {
            return t == tree;
        }
        let spec = format!("{tip}^{{tree}}");
        match repo.ref_commit(&spec).await {
            Ok(Some(t)) => {
                let same = t == tree;
                self.known_tree = Some((tip, t));
                same
            }
            _ => false,
        }
    }

    /// Moves the integration branch from the queue's head to `new` (a merge
    /// commit `prepare` made on it, or on merges before it), by
    /// compare-and-swap; the merges up to `new` are published then.
    pub async fn publish(&mut self, repo: &Repo, new: &str) -> MergeResult {
        for round in 0..2 {
            match repo.move_ref(&self.integration_ref, new, &self.head).await {
                Ok(()) => {
                    crate::failpoint::hit("merged");
                    self.head = new.to_string();
                    if let Some(at) = self.pending.iter().position(|c| c == new) {
                        self.pending.drain(..=at);
                    }
                    return MergeResult::Merged {
                        integration: Some(new.to_string()),
                    };
                }
                Err(e) if round == 0 => {
                    // Someone moved the integration branch: undo it, then move it.
                    tracing::warn!("integration branch moved under baton: {e}");
                    if let Err(reason) = self.guard(repo).await {
                        return MergeResult::Failed(reason);
                    }
                }
                Err(e) => {
                    return MergeResult::Failed(format!("cannot move the integration branch: {e}"))
                }
            }
        }
        MergeResult::Failed("the integration branch kept moving during the merge".into())
    }
}
