//! `[[hook]]`: deliveries `baton serve` takes at `POST /api/hooks/<name>`
//! from other systems (an error tracker, a deploy, a form). A delivery
//! proves itself with an HMAC-SHA256 signature of its body under a secret
//! (`secret_env`; `X-Hub-Signature-256: sha256=<hex>`, as GitHub signs) or
//! with a bearer token (`token_env`), and starts a run of a plan file
//! (`plan`, with the delivery's JSON as the run's `payload`) or queues a
//! task (`prompt`, a template that reads `{{ payload.* }}`).

use super::error::Checker;
use super::raw::RawHook;
use super::schedule::{check_starts, Starts};
use super::validate::is_valid_id;
use super::{AgentProfile, Scheduled};
use std::collections::BTreeMap;
use std::path::Path;
use toml::Spanned;

#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    pub name: String,
    pub auth: HookAuth,
    /// What a delivery starts: a run of a plan file, or a task of the
    /// service run (its prompt rendered with the delivery as `payload`).
    pub what: Scheduled,
}

/// How a delivery proves it may start work: the variable that holds the
/// secret or the token (the value is read when the server starts).
#[derive(Debug, Clone, PartialEq)]
pub enum HookAuth {
    /// `X-Hub-Signature-256`: the body's HMAC-SHA256 under this secret.
    Secret(String),
    /// `Authorization: Bearer <token>`.
    Token(String),
}

impl Hook {
    /// The variable holding its secret or token (kept from every agent).
    pub fn secret_var(&self) -> &str {
        match &self.auth {
            HookAuth::Secret(v) | HookAuth::Token(v) => v,
        }
    }
}

/// A plan's text with `payload` (a delivery: a JSON object) as its
/// `[payload]` table, for the run a hook starts. JSON's nulls have no TOML
/// form: they are left out (`{{ payload.x }}` of a null is an error either
/// way). Err: the plan is not TOML, or the payload is not an object.
pub fn with_payload(source: &str, payload: &serde_json::Value) -> Result<String, String> {
    let mut table: toml::Table = source.parse().map_err(|e| format!("{e}"))?;
    let Some(toml::Value::Table(p)) = to_toml(payload) else {
        return Err("a delivery that starts a plan is a JSON object".into());
    };
    table.insert("payload".into(), toml::Value::Table(p));
    toml::to_string(&table).map_err(|e| e.to_string())
}

fn to_toml(v: &serde_json::Value) -> Option<toml::Value> {
    use serde_json::Value as J;
    Some(match v {
        J::Null => return None,
        J::Bool(b) => toml::Value::Boolean(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64()?),
        },
        J::String(s) => toml::Value::String(s.clone()),
        J::Array(a) => toml::Value::Array(a.iter().filter_map(to_toml).collect()),
        J::Object(o) => toml::Value::Table(
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), to_toml(v)?)))
                .collect(),
        ),
    })
}

/// `/api/hooks/github` is GitHub's own route.
const RESERVED: &[&str] = &["github"];

pub(super) fn check_hooks(
    ck: &mut Checker,
    raw: &[Spanned<RawHook>],
    agents: &BTreeMap<String, AgentProfile>,
    repo_root: Option<&Path>,
) -> Vec<Hook> {
    let mut out: Vec<Hook> = Vec::new();
    for r in raw {
        let Some(h) = check_one(ck, r, agents, repo_root) else {
            continue;
        };
        if out.iter().any(|o| o.name == h.name) {
            let at = r.get_ref().name.as_ref().map(|n| n.span());
            ck.at(at, None, format!("two hooks are named {:?}", h.name));
            continue;
        }
        out.push(h);
    }
    out
}

fn check_one(
    ck: &mut Checker,
    r: &Spanned<RawHook>,
    agents: &BTreeMap<String, AgentProfile>,
    repo_root: Option<&Path>,
) -> Option<Hook> {
    let (span, h) = (r.span(), r.get_ref());
    let Some(name) = &h.name else {
        let msg = "a [[hook]] needs a `name` (it is taken at /api/hooks/<name>)";
        ck.at(Some(span), None, msg.into());
        return None;
    };
    let subject = Some(format!("hook {:?}", name.get_ref()));
    if !is_valid_id(name.get_ref()) {
        let msg = "hook names may use only letters, digits, '_' and '-'";
        ck.at(Some(name.span()), subject.clone(), msg.into());
    }
    if RESERVED.contains(&name.get_ref().as_str()) {
        let msg = "/api/hooks/github is GitHub's own (set webhook_secret_env on a [[source]] or in [land]); name this hook otherwise";
        ck.at(Some(name.span()), subject.clone(), msg.into());
    }
    let auth = match (&h.secret_env, &h.token_env) {
        (Some(s), None) => HookAuth::Secret(s.get_ref().clone()),
        (None, Some(t)) => HookAuth::Token(t.get_ref().clone()),
        _ => {
            let msg = "a hook needs either `secret_env` (deliveries signed with HMAC-SHA256, as GitHub signs) or `token_env` (a bearer token): give one";
            ck.at(Some(span), subject, msg.into());
            return None;
        }
    };
    let starts = Starts {
        plan: &h.plan,
        prompt: &h.prompt,
        agent: &h.agent,
        tags: &h.tags,
    };
    let what = check_starts(
        ck,
        &starts,
        "hook",
        subject.clone(),
        span,
        agents,
        repo_root,
    )?;
    if let (Scheduled::Task { prompt, .. }, Some(p)) = (&what, &h.prompt) {
        // Rendered with the delivery alone: it may read only `payload`.
        if let Err(e) = crate::template::check(prompt, &[]) {
            ck.at(Some(p.span()), subject, e);
        }
    }
    Some(Hook {
        name: name.get_ref().clone(),
        auth,
        what,
    })
}

#[cfg(test)]
mod tests {
    use crate::plan::parse_with_a_profile as parse;
    use crate::plan::{HookAuth, Scheduled};

    #[test]
    fn a_hook_starts_a_plan_or_a_task_with_a_secret_or_a_token() {
        let p = parse("[[hook]]\nname = \"deploy\"\ntoken_env = \"DEPLOY_TOKEN\"\nplan = \"hotfix.toml\"\n\n[[hook]]\nname = \"sentry\"\nsecret_env = \"SENTRY_SECRET\"\nprompt = \"Fix {{ payload.title }}\"\ntags = [\"bug\"]\n").unwrap();
        assert_eq!(p.hooks[0].auth, HookAuth::Token("DEPLOY_TOKEN".into()));
        assert_eq!(p.hooks[0].what, Scheduled::Plan("hotfix.toml".into()));
        assert_eq!(p.hooks[1].secret_var(), "SENTRY_SECRET");
        assert!(matches!(&p.hooks[1].what, Scheduled::Task { tags, .. } if tags == &["bug"]));
    }

    #[test]
    fn a_plans_payload_is_there_for_its_prompts() {
        let p = parse("[payload]\ntitle = \"boom\"\nn = 3\n\n[[task]]\nid = \"t\"\nagent = \"a\"\nprompt = \"Fix {{ payload.title }}\"\n").unwrap();
        assert_eq!(p.payload["title"], "boom");
        assert_eq!(p.payload["n"], 3);
        let none = parse("[[task]]\nid = \"t\"\nagent = \"a\"\nprompt = \"x\"\n").unwrap();
        assert!(none.payload.is_null());
    }

    #[test]
    fn a_delivery_becomes_the_plans_payload() {
        let plan = "[agent.a]\nadapter = \"exec\"\ncommand = [\"true\"]\n\n[[task]]\nid = \"t\"\nagent = \"a\"\nprompt = \"Fix {{ payload.issue.title }} ({{ payload.tags[1] }})\"\n";
        let delivery = serde_json::json!({"issue": {"title": "a \"quoted\" crash", "gone": null}, "tags": ["x", "y", null], "n": 1.5});
        let text = super::with_payload(plan, &delivery).unwrap();
        let p = crate::plan::Plan::parse(std::path::Path::new("h.toml"), &text, None).unwrap();
        assert_eq!(p.payload["issue"]["title"], "a \"quoted\" crash");
        assert!(p.payload["issue"].get("gone").is_none());
        assert_eq!(p.payload["tags"], serde_json::json!(["x", "y"]));
        assert_eq!(p.payload["n"], 1.5);
        let ctx = crate::template::PromptContext {
            payload: p.payload.clone(),
            ..Default::default()
        };
        let prompt = crate::template::render(&p.tasks[0].prompt, &ctx).unwrap();
        assert_eq!(prompt, "Fix a \"quoted\" crash (y)");
        assert!(super::with_payload(plan, &serde_json::json!([1])).is_err());
    }

    #[test]
    fn hook_mistakes_are_plan_errors_with_their_place() {
        for (text, says) in [
            ("[[hook]]\ntoken_env = \"T\"\nplan = \"x.toml\"\n", "needs a `name`"),
            ("[[hook]]\nname = \"github\"\ntoken_env = \"T\"\nplan = \"x.toml\"\n", "GitHub's own"),
            ("[[hook]]\nname = \"a b\"\ntoken_env = \"T\"\nplan = \"x.toml\"\n", "only letters"),
            ("[[hook]]\nname = \"n\"\nplan = \"x.toml\"\n", "either `secret_env`"),
            ("[[hook]]\nname = \"n\"\ntoken_env = \"T\"\nsecret_env = \"S\"\nplan = \"x.toml\"\n", "either `secret_env`"),
            ("[[hook]]\nname = \"n\"\ntoken_env = \"T\"\n", "either a `plan`"),
            ("[[hook]]\nname = \"n\"\ntoken_env = \"T\"\nprompt = \"{{ tasks.a.result }}\"\n", "does not need"),
            ("[[hook]]\nname = \"n\"\ntoken_env = \"T\"\nprompt = \"{{ nope }}\"\n", "prompt uses `nope`"),
            ("[[hook]]\nname = \"n\"\ntoken_env = \"T\"\nprompt = \"y\"\nagent = \"b\"\n", "unknown agent profile \"b\""),
            ("[[hook]]\nname = \"n\"\ntoken_env = \"T\"\nplan = \"x\"\ntags = [\"t\"]\n", "not its `plan`"),
            ("[[hook]]\nname = \"n\"\ntoken_env = \"T\"\nplan = \"x\"\n\n[[hook]]\nname = \"n\"\ntoken_env = \"T\"\nplan = \"y\"\n", "two hooks are named \"n\""),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(says), "{text}: {err}");
            assert!(err.contains("baton.toml:"), "{text}: no place in {err}");
        }
    }
}
