//! `[[route]]`: where a task queued with tags goes. To a profile, or with
//! `agent = "best"` to the profile among `among` with the best record on
//! tasks of that tag (the scorecard's, see `stats::best_for`), once one has
//! `min_tasks` of them; until then to the first of `among`.

use super::error::Checker;
use super::raw::RawRoute;
use super::AgentProfile;
use std::collections::BTreeMap;
use toml::Spanned;

/// Tasks a profile must have finished with a tag before `agent = "best"`
/// trusts its record, when the route does not say.
pub const DEFAULT_MIN_TASKS: u32 = 5;

/// How far back `agent = "best"` reads the record.
pub const BEST_OVER: &str = "90d";

#[derive(Debug, Clone)]
pub struct Route {
    pub tags: Vec<String>,
    /// The profile; for `agent = "best"`, the one to use while no profile
    /// has a record (the first of `among`).
    pub agent: String,
    pub best: Option<BestOf>,
}

/// `agent = "best"`: the profiles it chooses among, and the record it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct BestOf {
    pub among: Vec<String>,
    pub min_tasks: u32,
}

pub(super) fn check_routes(
    ck: &mut Checker,
    raw: &[Spanned<RawRoute>],
    agents: &BTreeMap<String, AgentProfile>,
) -> Vec<Route> {
    let mut routes = Vec::new();
    for r in raw {
        let r = r.get_ref();
        let agent = r.agent.get_ref();
        let at = Some(r.agent.span());
        let best = agent == "best" && (r.among.is_some() || !agents.contains_key("best"));
        if !best {
            if !agents.contains_key(agent) {
                ck.at(
                    at,
                    None,
                    format!("route to unknown agent profile {agent:?}"),
                );
            }
            let misplaced = r.among.as_ref().map(|a| a.span());
            if let Some(span) = misplaced.or(r.min_tasks.as_ref().map(|n| n.span())) {
                let msg = "among and min_tasks belong to a route with agent = \"best\"";
                ck.at(Some(span), None, msg.into());
            }
            routes.push(Route {
                tags: r.tags.clone(),
                agent: agent.clone(),
                best: None,
            });
            continue;
        }
        let Some(among) = r.among.as_ref().filter(|a| !a.get_ref().is_empty()) else {
            let msg = "agent = \"best\" needs among = [\"<profile>\", ...]: the profiles it chooses from (the first until one has a record)";
            ck.at(at, None, msg.into());
            continue;
        };
        if let Some(bad) = among.get_ref().iter().find(|p| !agents.contains_key(*p)) {
            ck.at(
                Some(among.span()),
                None,
                format!("among names unknown profile {bad:?}"),
            );
            continue;
        }
        let min_tasks = match &r.min_tasks {
            None => DEFAULT_MIN_TASKS,
            Some(n) if (1..=10_000).contains(n.get_ref()) => *n.get_ref() as u32,
            Some(n) => {
                let msg = format!("min_tasks must be 1 to 10000, not {}", n.get_ref());
                ck.at(Some(n.span()), None, msg);
                continue;
            }
        };
        routes.push(Route {
            tags: r.tags.clone(),
            agent: among.get_ref()[0].clone(),
            best: Some(BestOf {
                among: among.get_ref().clone(),
                min_tasks,
            }),
        });
    }
    routes
}

#[cfg(test)]
mod tests {
    use crate::plan::parse_with_a_profile;

    #[test]
    fn best_chooses_among_named_profiles_with_a_record() {
        let plan = "[agent.b]\nadapter = \"exec\"\ncommand = [\"true\"]\n\n[[route]]\ntags = [\"docs\"]\nagent = \"best\"\namong = [\"b\", \"a\"]\nmin_tasks = 3\n";
        let p = parse_with_a_profile(plan).unwrap();
        let r = &p.routes[0];
        assert_eq!(r.agent, "b", "the first of among until one has a record");
        let best = r.best.as_ref().unwrap();
        assert_eq!(
            (best.among.as_slice(), best.min_tasks),
            (["b".to_string(), "a".to_string()].as_slice(), 3)
        );
        let err = |text: &str| parse_with_a_profile(text).err().unwrap_or_default();
        let e = err("[[route]]\ntags = [\"x\"]\nagent = \"best\"\n");
        assert!(e.contains("needs among"), "{e}");
        let e = err("[[route]]\ntags = [\"x\"]\nagent = \"best\"\namong = [\"zz\"]\n");
        assert!(e.contains("among names unknown profile \"zz\""), "{e}");
        let e =
            err("[[route]]\ntags = [\"x\"]\nagent = \"best\"\namong = [\"a\"]\nmin_tasks = 0\n");
        assert!(e.contains("min_tasks must be 1 to 10000"), "{e}");
        let e = err("[[route]]\ntags = [\"x\"]\nagent = \"a\"\namong = [\"a\"]\n");
        assert!(e.contains("belong to a route with agent = \"best\""), "{e}");
    }
}
