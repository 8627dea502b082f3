//! baton's GitHub forge: pull requests opened, read and merged through the
//! REST API (the calls and shapes of GitHub's OpenAPI description, version
//! 2022-11-28), with the token `[land] token_env` names (else `gh auth
//! token`). The binary registers [`FORGE`].

use crate::client::{self, Client};
use baton_core::executor::Boxed;
use baton_core::forge::{
    Check, Forge, ForgeError, ForgeKind, NewPull, Pull, PullState, Review, ReviewComment,
};
use baton_core::plan::PullSettings;
use serde_json::{json, Value};

pub const FORGE: ForgeKind = ForgeKind {
    kind: "github",
    make,
};

/// Pages read per list at most (100 items each).
const MAX_PAGES: usize = 10;

fn make(settings: &PullSettings, repo: &str) -> Result<Box<dyn Forge>, String> {
    let token = crate::token(&settings.token_env).ok_or_else(|| {
        format!(
            "following pull requests needs a GitHub token in ${} (a fine-grained token with Pull requests, Issues and Contents: read and write, and Checks and Actions: read, on {repo}), or `gh` logged in",
            settings.token_env
        )
    })?;
    Ok(Box::new(GitHubForge {
        repo: repo.to_string(),
        client: Client::new(&settings.api_url, token)?,
    }))
}

struct GitHubForge {
    repo: String,
    client: Client,
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

fn number(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

fn login(v: &Value) -> String {
    v.pointer("/user/login")
        .and_then(Value::as_str)
        .unwrap_or("ghost")
        .to_string()
}

fn bad_shape(what: &str) -> ForgeError {
    ForgeError::Other(format!("GitHub's answer to {what} lacks what baton reads"))
}

/// A `pull-request` as baton reads it.
fn pull_of(v: &Value) -> Result<Pull, ForgeError> {
    let number = number(v, "number").ok_or_else(|| bad_shape("a pull request"))?;
    let merged = v.get("merged").and_then(Value::as_bool).unwrap_or(false)
        || v.get("merged_at").is_some_and(|m| !m.is_null());
    let state = match (text(v, "state").as_str(), merged) {
        (_, true) => PullState::Merged,
        ("closed", false) => PullState::Closed,
        _ => PullState::Open,
    };
    let head_sha = v
        .pointer("/head/sha")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_shape("a pull request"))?;
    Ok(Pull {
        number,
        url: text(v, "html_url"),
        state,
        head_sha: head_sha.to_string(),
        base: v
            .pointer("/base/ref")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        mergeable: v.get("mergeable").and_then(Value::as_bool),
    })
}

fn check_of(v: &Value) -> Option<Check> {
    let output = v.get("output").cloned().unwrap_or(Value::Null);
    let summary = [text(&output, "title"), text(&output, "summary")]
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    Some(Check {
        id: number(v, "id")?,
        name: text(v, "name"),
        pending: text(v, "status") != "completed",
        conclusion: v
            .get("conclusion")
            .and_then(Value::as_str)
            .map(str::to_string),
        url: v
            .get("html_url")
            .or(v.get("details_url"))
            .and_then(Value::as_str)
            .map(str::to_string),
        summary,
    })
}

impl GitHubForge {
    async fn open_pull(&self, new: &NewPull) -> Result<Pull, ForgeError> {
        let body =
            json!({"title": new.title, "head": new.head, "base": new.base, "body": new.body});
        let v = self
            .client
            .post(&format!("/repos/{}/pulls", self.repo), &body)
            .await?;
        pull_of(&v)
    }

    async fn get_pull(&self, n: u64) -> Result<Pull, ForgeError> {
        pull_of(
            &self
                .client
                .get(&format!("/repos/{}/pulls/{n}", self.repo))
                .await?,
        )
    }

    /// The check runs of `sha` (the latest of each name, GitHub's default).
    async fn list_checks(&self, sha: &str) -> Result<Vec<Check>, ForgeError> {
        let path = format!(
            "/repos/{}/commits/{}/check-runs?filter=latest&per_page=100",
            self.repo,
            client::encode(sha)
        );
        let v = self.client.get(&path).await?;
        let runs = v.get("check_runs").and_then(Value::as_array);
        let runs = runs.ok_or_else(|| bad_shape("a list of check runs"))?;
        Ok(runs.iter().filter_map(check_of).collect())
    }

    async fn list_reviews(&self, n: u64) -> Result<Vec<Review>, ForgeError> {
        let path = format!("/repos/{}/pulls/{n}/reviews?per_page=100", self.repo);
        let list = self.client.get_pages(&path, MAX_PAGES).await?;
        Ok(list
            .iter()
            .filter_map(|r| {
                Some(Review {
                    id: number(r, "id")?,
                    author: login(r),
                    state: text(r, "state"),
                    body: text(r, "body"),
                })
            })
            .collect())
    }

    async fn list_review_comments(&self, n: u64) -> Result<Vec<ReviewComment>, ForgeError> {
        let path = format!("/repos/{}/pulls/{n}/comments?per_page=100", self.repo);
        let list = self.client.get_pages(&path, MAX_PAGES).await?;
        Ok(list
            .iter()
            .filter_map(|c| {
                Some(ReviewComment {
                    id: number(c, "id")?,
                    author: login(c),
                    path: text(c, "path"),
                    line: number(c, "line").or(number(c, "original_line")),
                    hunk: text(c, "diff_hunk"),
                    body: text(c, "body"),
                    in_reply_to: number(c, "in_reply_to_id"),
                })
            })
            .collect())
    }

    /// Merges with the first method the repository allows (merge commit,
    /// squash, rebase), at `sha` only.
    async fn merge_pull(&self, n: u64, sha: &str) -> Result<String, ForgeError> {
        let repo = self.client.get(&format!("/repos/{}", self.repo)).await?;
        let allowed = |k: &str| repo.get(k).and_then(Value::as_bool).unwrap_or(true);
        let method = [
            ("merge", "allow_merge_commit"),
            ("squash", "allow_squash_merge"),
            ("rebase", "allow_rebase_merge"),
        ]
        .into_iter()
        .find(|(_, k)| allowed(k))
        .map(|(m, _)| m)
        .unwrap_or("merge");
        let body = json!({"sha": sha, "merge_method": method});
        let v = self
            .client
            .put(&format!("/repos/{}/pulls/{n}/merge", self.repo), &body)
            .await?;
        v.get("sha")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| bad_shape("a merge"))
    }
}

impl Forge for GitHubForge {
    fn open(&self, new: &NewPull) -> Boxed<'_, Result<Pull, ForgeError>> {
        let new = new.clone();
        Box::pin(async move { self.open_pull(&new).await })
    }

    fn pull(&self, number: u64) -> Boxed<'_, Result<Pull, ForgeError>> {
        Box::pin(self.get_pull(number))
    }

    fn checks<'a>(&'a self, sha: &'a str) -> Boxed<'a, Result<Vec<Check>, ForgeError>> {
        Box::pin(self.list_checks(sha))
    }

    fn log_tail<'a>(
        &'a self,
        check: &'a Check,
        lines: usize,
    ) -> Boxed<'a, Result<String, ForgeError>> {
        Box::pin(async move {
            // A check run of GitHub Actions has its job's id.
            let path = format!("/repos/{}/actions/jobs/{}/logs", self.repo, check.id);
            let log = self.client.get_text(&path).await?;
            let all: Vec<&str> = log.lines().collect();
            Ok(all[all.len().saturating_sub(lines)..].join("\n"))
        })
    }

    fn reviews(&self, number: u64) -> Boxed<'_, Result<Vec<Review>, ForgeError>> {
        Box::pin(self.list_reviews(number))
    }

    fn review_comments(&self, number: u64) -> Boxed<'_, Result<Vec<ReviewComment>, ForgeError>> {
        Box::pin(self.list_review_comments(number))
    }

    fn reply<'a>(
        &'a self,
        number: u64,
        to: u64,
        body: &'a str,
    ) -> Boxed<'a, Result<(), ForgeError>> {
        Box::pin(async move {
            let path = format!("/repos/{}/pulls/{number}/comments/{to}/replies", self.repo);
            self.client
                .post(&path, &json!({"body": body}))
                .await
                .map(drop)
        })
    }

    fn comment<'a>(&'a self, number: u64, body: &'a str) -> Boxed<'a, Result<(), ForgeError>> {
        Box::pin(async move {
            let path = format!("/repos/{}/issues/{number}/comments", self.repo);
            self.client
                .post(&path, &json!({"body": body}))
                .await
                .map(drop)
        })
    }

    fn merge<'a>(&'a self, number: u64, sha: &'a str) -> Boxed<'a, Result<String, ForgeError>> {
        Box::pin(self.merge_pull(number, sha))
    }

    fn close_issue(&self, number: u64) -> Boxed<'_, Result<(), ForgeError>> {
        Box::pin(async move {
            let path = format!("/repos/{}/issues/{number}", self.repo);
            let issue = self.client.get(&path).await?;
            if text(&issue, "state") == "closed" {
                return Ok(());
            }
            let body = json!({"state": "closed", "state_reason": "completed"});
            self.client.patch(&path, &body).await.map(drop)
        })
    }
}
