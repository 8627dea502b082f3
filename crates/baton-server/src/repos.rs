//! One server, several repositories: each keeps its own state (store, lock,
//! runs, sources), and they share one token set, one Web Push key and one
//! listener. A repository's API is under /api/repos/<name>; with one
//! repository it is /api, as it always was.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use baton_core::store::Store;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;

/// What the repositories served together share.
pub struct Shared {
    /// Every served repository's store: a token any of them knows opens
    /// them all (one token set).
    pub stores: Vec<Arc<Store>>,
    /// Each repository, for `/api/repos` and the dashboard's switcher.
    pub repos: Vec<Value>,
    /// Where the one Web Push key is kept: the first repository's secrets.
    pub push_secrets: PathBuf,
}

/// Whether `name` may name a repository in a URL and a tool's argument.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Refuses names that are not valid or not unique, before anything starts.
pub fn check_names(states: &[&crate::ServeOptions]) -> Result<(), String> {
    if states.len() < 2 {
        return Ok(());
    }
    let mut seen = std::collections::BTreeMap::new();
    for o in states {
        let name = o.name.as_deref().unwrap_or_default();
        if !valid_name(name) {
            return Err(format!(
                "{}: {name:?} cannot name a repository (letters, digits, '-', '_' and '.', not first); give it a name",
                o.repo.root.display()
            ));
        }
        if let Some(other) = seen.insert(name.to_string(), &o.repo.root) {
            return Err(format!(
                "two repositories are named {name:?} ({} and {}); give one another name",
                other.display(),
                o.repo.root.display()
            ));
        }
    }
    Ok(())
}

/// Tells each state of the others: done once, before any request.
pub fn share(states: &[Arc<AppState>]) {
    let Some(first) = states.first() else { return };
    let repos: Vec<Value> = states.iter().map(|s| describe(s)).collect();
    for s in states {
        let _ = s.shared.set(Shared {
            stores: states.iter().map(|o| o.store.clone()).collect(),
            repos: repos.clone(),
            push_secrets: first.paths.secrets(),
        });
    }
}

fn describe(s: &AppState) -> Value {
    let root = &s.opts.repo.root;
    let dir = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    json!({
        "name": s.opts.name.clone().unwrap_or(dir),
        "root": root.display().to_string(),
        "api": s.opts.api(),
    })
}

/// The state of repository `name` among `states`; with no name, the only
/// one there is.
pub fn pick<'a>(
    states: &'a [Arc<AppState>],
    name: Option<&str>,
) -> Result<&'a Arc<AppState>, String> {
    let names = || {
        states
            .iter()
            .filter_map(|s| s.opts.name.as_deref())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        None if states.len() == 1 => Ok(&states[0]),
        None => Err(format!(
            "this server serves several repositories ({}): say which with `repo`",
            names()
        )),
        Some(n) => states
            .iter()
            .find(|s| {
                s.opts.name.as_deref() == Some(n) || (states.len() == 1 && describe(s)["name"] == n)
            })
            .ok_or_else(|| {
                format!(
                    "no repository {n:?} here; this server serves: {}",
                    match states.len() {
                        1 => describe(&states[0])["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        _ => names(),
                    }
                )
            }),
    }
}

/// GET /api/repos: the repositories this server serves, each with its
/// name, directory and API root.
pub async fn list(State(st): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let repos = match st.shared.get() {
        Some(shared) => shared.repos.clone(),
        None => vec![describe(&st)],
    };
    Ok(Json(json!({ "repos": repos })))
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_fit_a_url() {
        for ok in ["web", "api-2", "my_repo", "a.b"] {
            assert!(super::valid_name(ok), "{ok}");
        }
        for bad in ["", ".git", "a/b", "a b", "é", "..", &"x".repeat(65)] {
            assert!(!super::valid_name(bad), "{bad}");
        }
    }
}
