//! The stand-in's pull requests, check runs, reviews and review comments,
//! in the shapes of GitHub's OpenAPI description (2022-11-28):
//!
//! - `POST /repos/{o}/{r}/pulls` (`pulls/create`: `title`, `head`, `base`,
//!   `body`; 201 with a `pull-request`), `GET .../pulls/{n}` (`pulls/get`)
//! - `PUT .../pulls/{n}/merge` (`pulls/merge`: `sha`, `merge_method`; 200
//!   `{sha, merged, message}`, 405 when it cannot merge, 409 when `sha` is
//!   not its head)
//! - `GET .../commits/{ref}/check-runs` (`checks/list-for-ref`:
//!   `{total_count, check_runs}`)
//! - `GET .../actions/jobs/{id}/logs` (302 to where the log's text is)
//! - `GET .../pulls/{n}/reviews`, `GET .../pulls/{n}/comments`, `POST
//!   .../pulls/{n}/comments/{id}/replies` (201)
//! - `GET /repos/{o}/{r}` (`repos/get`: the merge methods it allows)
//!
//! The pushed-to repository is a git remote on disk: a pull request's head
//! is what its branch is there, and a merge is made there with git. CI is a
//! script per check, run on each new head commit's tree (its output is the
//! job's log); people's reviews and line comments are added by the test.

use super::hooks::{self, Due};
use super::{error, user, State};
use crate::http::{Outcome, Request, Response};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

#[derive(Default)]
pub(super) struct Pulls {
    pub list: Vec<Pull>,
    pub checks: Vec<CheckRun>,
    pub reviews: Vec<ReviewRec>,
    pub comments: Vec<LineComment>,
    pub ci: Vec<(String, String)>,
    pub remote: Option<PathBuf>,
    /// Which merge methods the repository allows: merge, squash, rebase.
    pub methods: Option<[bool; 3]>,
    /// How long a check runs before it completes.
    pub ci_secs: f64,
    next_id: u64,
}

/// A pull request (what the tests look at, too).
#[derive(Clone, Debug)]
pub struct Pull {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub head: String,
    pub base: String,
    /// Its merge commit, once merged.
    pub merged: Option<String>,
    pub closed: bool,
}

#[derive(Clone, Debug)]
pub(super) struct CheckRun {
    pub id: u64,
    pub sha: String,
    pub name: String,
    pub passed: bool,
    pub log: String,
    /// When it started; it completes `ci_secs` later.
    pub started: Instant,
    /// Its `check_run` `completed` delivery is made.
    pub announced: bool,
}

#[derive(Clone, Debug)]
pub(super) struct ReviewRec {
    pub id: u64,
    pub pull: u64,
    pub author: String,
    pub state: String,
    pub body: String,
    pub commit: String,
}

#[derive(Clone, Debug)]
pub(super) struct LineComment {
    pub id: u64,
    pub pull: u64,
    pub author: String,
    pub path: String,
    pub line: u64,
    pub body: String,
    pub in_reply_to: Option<u64>,
    pub commit: String,
}

impl Pulls {
    pub fn next(&mut self) -> u64 {
        self.next_id += 1;
        5000 + self.next_id
    }

    fn git(&self, args: &[&str]) -> Option<String> {
        let remote = self.remote.as_ref()?;
        let out = Command::new("git")
            .arg("-C")
            .arg(remote)
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    pub fn sha_of(&self, branch: &str) -> Option<String> {
        self.git(&[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}"),
        ])
    }

    /// The merged tree of `base` and `head`, or None when they conflict.
    fn merged_tree(&self, base: &str, head: &str) -> Option<String> {
        self.git(&["merge-tree", "--write-tree", base, head])
            .map(|o| o.lines().next().unwrap_or("").to_string())
    }

    /// Runs each CI script on `sha`'s tree once.
    fn run_ci(&mut self, sha: &str) {
        let todo: Vec<(String, String)> = self
            .ci
            .iter()
            .filter(|(name, _)| !self.checks.iter().any(|c| c.sha == sha && c.name == *name))
            .cloned()
            .collect();
        for (name, script) in todo {
            let (passed, log) = self.run_script(sha, &script);
            let id = self.next();
            self.checks.push(CheckRun {
                id,
                sha: sha.into(),
                name,
                passed,
                log,
                started: Instant::now(),
                announced: false,
            });
        }
    }

    /// Whether check `c` has completed.
    fn done(&self, c: &CheckRun) -> bool {
        c.started.elapsed().as_secs_f64() >= self.ci_secs
    }

    /// What has happened since the last look: each open pull request's new
    /// head gets its CI, and each check that completed is announced (with
    /// the pull requests whose head it ran on).
    pub(super) fn watch(&mut self, url: &str, repo: &str) -> Vec<Due> {
        let open: Vec<(u64, String, String)> = self
            .list
            .iter()
            .filter(|p| p.merged.is_none() && !p.closed)
            .map(|p| (p.number, p.head.clone(), p.base.clone()))
            .collect();
        let mut heads = Vec::new();
        for (n, head, base) in open {
            if let Some(sha) = self.sha_of(&head) {
                self.run_ci(&sha);
                heads.push((n, head, sha, base));
            }
        }
        let mut due = Vec::new();
        for i in 0..self.checks.len() {
            let c = &self.checks[i];
            if c.announced || !self.done(c) {
                continue;
            }
            let pulls: Vec<Value> = heads
                .iter()
                .filter(|(_, _, sha, _)| *sha == c.sha)
                .map(|(n, head, sha, base)| hooks::minimal_pull(*n, head, sha, base))
                .collect();
            let mut run = check_json(url, repo, c, true);
            run["pull_requests"] = Value::Array(pulls);
            let body = hooks::merged(
                json!({"action": "completed", "check_run": run}),
                hooks::around(repo, "github-actions[bot]"),
            );
            due.push(("check_run", body));
            self.checks[i].announced = true;
        }
        due
    }

    fn run_script(&self, sha: &str, script: &str) -> (bool, String) {
        let Some(remote) = &self.remote else {
            return (false, "the stand-in has no remote".into());
        };
        let Ok(dir) = tempfile::tempdir() else {
            return (false, "no temporary directory".into());
        };
        let archive = format!(
            "git -C '{}' archive {sha} | tar -x -C '{}'",
            remote.display(),
            dir.path().display()
        );
        let ok = Command::new("sh").args(["-c", &archive]).status();
        if !ok.is_ok_and(|s| s.success()) {
            return (false, format!("cannot check out {sha}"));
        }
        match Command::new("sh")
            .args(["-c", &format!("exec 2>&1; {script}")])
            .current_dir(dir.path())
            .output()
        {
            Ok(out) => (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            ),
            Err(e) => (false, format!("cannot run the check: {e}")),
        }
    }
}

fn pull_json(url: &str, repo: &str, p: &Pull, pulls: &Pulls) -> Value {
    let head_sha = pulls.sha_of(&p.head).unwrap_or_default();
    let base_sha = pulls.sha_of(&p.base).unwrap_or_default();
    let mergeable = match (&p.merged, p.closed) {
        (Some(_), _) | (_, true) => Value::Null,
        _ => json!(pulls.merged_tree(&base_sha, &head_sha).is_some()),
    };
    let state = if p.closed || p.merged.is_some() {
        "closed"
    } else {
        "open"
    };
    let html = format!("https://github.com/{repo}/pull/{}", p.number);
    let owner = repo.split('/').next().unwrap_or("");
    let side = |r: &str, sha: &str| json!({"label": format!("{owner}:{r}"), "ref": r, "sha": sha, "user": user("octocat"), "repo": null});
    let mut v = json!({
        "id": 9000 + p.number, "node_id": format!("PR_{}", p.number), "number": p.number,
        "url": format!("{url}/repos/{repo}/pulls/{}", p.number), "html_url": html,
        "diff_url": format!("{html}.diff"), "patch_url": format!("{html}.patch"),
        "issue_url": format!("{url}/repos/{repo}/issues/{}", p.number),
        "state": state, "locked": false, "title": p.title, "body": p.body, "user": user("baton-bot[bot]"),
        "labels": [], "milestone": null, "draft": false, "active_lock_reason": null,
        "created_at": "2026-12-01T10:00:00Z", "updated_at": "2026-12-01T10:00:00Z",
        "closed_at": null, "merged_at": p.merged.as_ref().map(|_| "2026-12-01T11:00:00Z"),
        "merge_commit_sha": p.merged,
    });
    let more = json!({
        "assignee": null, "assignees": [], "requested_reviewers": [],
        "requested_teams": [], "author_association": "NONE", "auto_merge": null,
        "head": side(&p.head, &head_sha), "base": side(&p.base, &base_sha),
        "_links": {}, "merged": p.merged.is_some(), "mergeable": mergeable, "rebaseable": mergeable,
        "mergeable_state": if mergeable == json!(false) { "dirty" } else { "clean" },
        "merged_by": p.merged.as_ref().map(|_| user("baton-bot[bot]")), "comments": 0,
        "review_comments": pulls.comments.iter().filter(|c| c.pull == p.number).count(),
        "maintainer_can_modify": false, "commits": 1, "additions": 1, "deletions": 0, "changed_files": 1,
    });
    if let (Some(a), Value::Object(b)) = (v.as_object_mut(), more) {
        a.extend(b);
    }
    v
}

fn check_json(url: &str, repo: &str, c: &CheckRun, done: bool) -> Value {
    let conclusion = match (done, c.passed) {
        (false, _) => Value::Null,
        (true, true) => json!("success"),
        (true, false) => json!("failure"),
    };
    json!({
        "id": c.id, "head_sha": c.sha, "node_id": format!("CR_{}", c.id), "external_id": "",
        "url": format!("{url}/repos/{repo}/check-runs/{}", c.id),
        "html_url": format!("https://github.com/{repo}/actions/runs/1/job/{}", c.id),
        "details_url": format!("https://github.com/{repo}/actions/runs/1/job/{}", c.id),
        "status": if done { "completed" } else { "in_progress" }, "conclusion": conclusion,
        "started_at": "2026-12-01T10:00:00Z",
        "completed_at": if done { json!("2026-12-01T10:01:00Z") } else { Value::Null },
        "output": {"title": if c.passed { "passed" } else { "failed" }, "summary": "", "text": null,
                   "annotations_count": 0, "annotations_url": ""},
        "name": c.name, "check_suite": {"id": 1}, "app": null, "pull_requests": [],
    })
}

pub(super) fn review_json(repo: &str, r: &ReviewRec) -> Value {
    json!({
        "id": r.id, "node_id": format!("PRR_{}", r.id), "user": user(&r.author), "body": r.body,
        "state": r.state, "html_url": format!("https://github.com/{repo}/pull/{}#pullrequestreview-{}", r.pull, r.id),
        "pull_request_url": "", "_links": {}, "submitted_at": "2026-12-01T10:00:00Z",
        "commit_id": r.commit, "author_association": "MEMBER",
    })
}

pub(super) fn comment_json(url: &str, repo: &str, c: &LineComment) -> Value {
    let mut v = json!({
        "url": format!("{url}/repos/{repo}/pulls/comments/{}", c.id), "pull_request_review_id": null,
        "id": c.id, "node_id": format!("PRRC_{}", c.id),
        "diff_hunk": format!("@@ -{0},1 +{0},1 @@\n+changed line", c.line), "path": c.path,
        "position": 1, "original_position": 1, "commit_id": c.commit, "original_commit_id": c.commit,
        "user": user(&c.author), "body": c.body, "created_at": "2026-12-01T10:00:00Z",
        "updated_at": "2026-12-01T10:00:00Z",
        "html_url": format!("https://github.com/{repo}/pull/{}#discussion_r{}", c.pull, c.id),
        "pull_request_url": format!("{url}/repos/{repo}/pulls/{}", c.pull),
        "author_association": "MEMBER", "_links": {}, "line": c.line, "original_line": c.line,
        "side": "RIGHT",
    });
    if let Some(to) = c.in_reply_to {
        v["in_reply_to_id"] = json!(to);
    }
    v
}

fn invalid(field: &str, code: &str) -> Outcome {
    let v = json!({"message": "Validation Failed", "documentation_url": "https://docs.github.com/rest",
                   "errors": [{"resource": "PullRequest", "field": field, "code": code}]});
    Outcome::Respond(Response::json(422, &v))
}

/// The text of a job's log, where the logs endpoint redirects (no token:
/// the address is the access, as GitHub's signed blob URLs are).
pub(super) fn log(st: &State, id: &str) -> Outcome {
    let found = id
        .parse::<u64>()
        .ok()
        .and_then(|id| st.pulls.checks.iter().find(|c| c.id == id));
    match found {
        Some(c) => Outcome::Respond(Response {
            status: 200,
            content_type: "text/plain",
            body: c.log.clone().into_bytes(),
            retry_after: None,
            headers: Vec::new(),
        }),
        None => error(404, "Not Found"),
    }
}

/// Routes under `/repos/{repo}` that are not issues; None: not one of them.
pub(super) fn handle(
    st: &mut State,
    url: &str,
    repo: &str,
    req: &Request,
    body: &Value,
) -> Option<Outcome> {
    let rest = req.path.strip_prefix(&format!("/repos/{repo}"))?;
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let n = parts.get(1).and_then(|n| n.parse::<u64>().ok());
    let out = match (req.method.as_str(), &parts[..]) {
        ("GET", []) => {
            let [m, s, r] = st.pulls.methods.unwrap_or([true, true, true]);
            Outcome::Respond(Response::json(
                200,
                &json!({
                    "id": 1, "name": repo.split('/').nth(1), "full_name": repo, "private": true,
                    "default_branch": "main", "allow_merge_commit": m, "allow_squash_merge": s,
                    "allow_rebase_merge": r,
                }),
            ))
        }
        ("POST", ["pulls"]) => create(st, url, repo, body),
        ("GET", ["pulls", _]) => match find(st, n) {
            Some(p) => Outcome::Respond(Response::json(200, &pull_json(url, repo, &p, &st.pulls))),
            None => error(404, "Not Found"),
        },
        ("PUT", ["pulls", _, "merge"]) => merge(st, n, body),
        ("GET", ["pulls", _, "reviews"]) => {
            let list: Vec<Value> = st
                .pulls
                .reviews
                .iter()
                .filter(|r| Some(r.pull) == n)
                .map(|r| review_json(repo, r))
                .collect();
            Outcome::Respond(Response::json(200, &Value::Array(list)))
        }
        ("GET", ["pulls", _, "comments"]) => {
            let list: Vec<Value> = st
                .pulls
                .comments
                .iter()
                .filter(|c| Some(c.pull) == n)
                .map(|c| comment_json(url, repo, c))
                .collect();
            Outcome::Respond(Response::json(200, &Value::Array(list)))
        }
        ("POST", ["pulls", _, "comments", to, "replies"]) => reply(st, url, repo, n, to, body),
        ("GET", ["commits", sha, "check-runs"]) => {
            let sha = sha.to_string();
            st.pulls.run_ci(&sha);
            let list: Vec<Value> = st
                .pulls
                .checks
                .iter()
                .filter(|c| c.sha == sha)
                .map(|c| check_json(url, repo, c, st.pulls.done(c)))
                .collect();
            Outcome::Respond(Response::json(
                200,
                &json!({"total_count": list.len(), "check_runs": list}),
            ))
        }
        ("GET", ["actions", "jobs", id, "logs"]) => {
            let mut r = Response::json(302, &Value::Null);
            r.body.clear();
            r.headers
                .push(("location".into(), format!("{url}/_logs/{id}")));
            Outcome::Respond(r)
        }
        _ => return None,
    };
    Some(out)
}

fn find(st: &State, n: Option<u64>) -> Option<Pull> {
    st.pulls.list.iter().find(|p| Some(p.number) == n).cloned()
}

fn create(st: &mut State, url: &str, repo: &str, body: &Value) -> Outcome {
    let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(title), Some(head), Some(base)) = (field("title"), field("head"), field("base"))
    else {
        return invalid("title", "missing_field");
    };
    if st.pulls.sha_of(&head).is_none() {
        return invalid("head", "invalid");
    }
    if st
        .pulls
        .list
        .iter()
        .any(|p| p.head == head && p.merged.is_none() && !p.closed)
    {
        let v = json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "code": "custom",
                       "message": format!("A pull request already exists for {head}.")}]});
        return Outcome::Respond(Response::json(422, &v));
    }
    let text = field("body").unwrap_or_default();
    let number = st.add_issue(&title, &text, &[], true);
    let p = Pull {
        number,
        title,
        body: text,
        head,
        base,
        merged: None,
        closed: false,
    };
    let v = pull_json(url, repo, &p, &st.pulls);
    st.pulls.list.push(p);
    let mut r = Response::json(201, &v);
    r.headers.push((
        "location".into(),
        format!("{url}/repos/{repo}/pulls/{number}"),
    ));
    Outcome::Respond(r)
}

fn merge(st: &mut State, n: Option<u64>, body: &Value) -> Outcome {
    let Some(p) = find(st, n) else {
        return error(404, "Not Found");
    };
    if p.merged.is_some() || p.closed {
        return error(405, "Pull Request is not mergeable");
    }
    let head = st.pulls.sha_of(&p.head).unwrap_or_default();
    let base = st.pulls.sha_of(&p.base).unwrap_or_default();
    if body
        .get("sha")
        .and_then(Value::as_str)
        .is_some_and(|s| s != head)
    {
        return error(
            409,
            "Head branch was modified. Review and try the merge again.",
        );
    }
    let Some(tree) = st.pulls.merged_tree(&base, &head) else {
        return error(405, "Pull Request is not mergeable");
    };
    let message = format!("Merge pull request #{} from {}", p.number, p.head);
    let commit = st.pulls.git(&[
        "commit-tree",
        &tree,
        "-p",
        &base,
        "-p",
        &head,
        "-m",
        &message,
    ]);
    let Some(commit) = commit else {
        return error(500, "Server Error");
    };
    let moved = st.pulls.git(&[
        "update-ref",
        &format!("refs/heads/{}", p.base),
        &commit,
        &base,
    ]);
    if moved.is_none() {
        return error(
            409,
            "Base branch was modified. Review and try the merge again.",
        );
    }
    st.merged(p.number, &commit, &p.body);
    let v = json!({"sha": commit, "merged": true, "message": "Pull Request successfully merged"});
    Outcome::Respond(Response::json(200, &v))
}

fn reply(st: &mut State, url: &str, repo: &str, n: Option<u64>, to: &str, body: &Value) -> Outcome {
    let Some(p) = find(st, n) else {
        return error(404, "Not Found");
    };
    let to = to.parse::<u64>().ok();
    let Some(first) = st
        .pulls
        .comments
        .iter()
        .find(|c| Some(c.id) == to && c.pull == p.number)
        .cloned()
    else {
        return error(404, "Not Found");
    };
    let Some(text) = body.get("body").and_then(Value::as_str) else {
        return invalid("body", "missing_field");
    };
    let id = st.pulls.next();
    let c = LineComment {
        id,
        pull: p.number,
        author: "baton-bot[bot]".into(),
        path: first.path,
        line: first.line,
        body: text.into(),
        in_reply_to: Some(first.in_reply_to.unwrap_or(first.id)),
        commit: first.commit,
    };
    let v = comment_json(url, repo, &c);
    st.pulls.comments.push(c);
    Outcome::Respond(Response::json(201, &v))
}

/// The issue numbers a pull request's body closes (`Fixes #N`, `Closes
/// #N`, `Resolves #N`), as GitHub reads them.
pub(super) fn closes(body: &str) -> Vec<u64> {
    let lower = body.to_lowercase();
    let mut out = Vec::new();
    for word in [
        "fixes", "fixed", "fix", "closes", "closed", "close", "resolves", "resolved", "resolve",
    ] {
        let mut at = 0;
        while let Some(i) = lower[at..].find(&format!("{word} #")) {
            let start = at + i + word.len() + 2;
            let digits: String = lower[start..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if let Ok(n) = digits.parse() {
                if !out.contains(&n) {
                    out.push(n);
                }
            }
            at = start;
        }
    }
    out
}
