//! Prompt templates: `{{ tasks.<id>.result }}`, `{{ feedback }}` and friends,
//! rendered with minijinja in strict mode so a typo is an error, not an empty string.

use minijinja::{Environment, UndefinedBehavior};
use regex::Regex;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;

/// What a prompt may read about one upstream task.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TaskView {
    pub result: String,
    pub status: String,
    pub branch: String,
    pub commit: String,
    pub files: Vec<String>,
}

/// Everything a prompt template can see.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PromptContext {
    pub tasks: BTreeMap<String, TaskView>,
    pub feedback: String,
    pub task: String,
    pub run: String,
    pub attempt: u32,
    /// The plan's `payload` (a hook's delivery); null when it has none.
    pub payload: serde_json::Value,
}

const KNOWN_VARS: &[&str] = &["tasks", "feedback", "task", "run", "attempt", "payload"];

fn env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env
}

fn task_refs() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r#"tasks\s*(?:\.\s*([A-Za-z0-9_]+)|\[\s*["']([A-Za-z0-9_-]+)["']\s*\])"#)
            .expect("static regex")
    })
}

/// Text nobody wrote as a template (an issue's body, from a tracker) as
/// a prompt that renders to exactly that text: inside a `{% raw %}` block,
/// each `{% endraw %}` it holds given as a string expression.
pub fn literal(text: &str) -> String {
    static ENDRAW: OnceLock<Regex> = OnceLock::new();
    let endraw =
        ENDRAW.get_or_init(|| Regex::new(r"\{%-?\s*endraw\s*-?%\}").expect("static regex"));
    let mut out = String::from("{% raw %}");
    let mut last = 0;
    for m in endraw.find_iter(text) {
        out.push_str(&text[last..m.start()]);
        // The tag holds no quote or backslash: it is safe in a string.
        out.push_str(&format!(
            "{{% endraw %}}{{{{ \"{}\" }}}}{{% raw %}}",
            m.as_str()
        ));
        last = m.end();
    }
    out.push_str(&text[last..]);
    out.push_str("{% endraw %}");
    out
}

/// The code of a template: what is inside its `{{ }}` and `{% %}` tags,
/// outside `{% raw %}` blocks. Prose that says "tasks.x" is not a reference.
fn template_code(src: &str) -> String {
    static RAW: OnceLock<(Regex, Regex)> = OnceLock::new();
    let (raw_open, raw_close) = RAW.get_or_init(|| {
        (
            Regex::new(r"^\{%-?\s*raw\s*-?%\}").expect("static regex"),
            Regex::new(r"\{%-?\s*endraw\s*-?%\}").expect("static regex"),
        )
    });
    let mut code = String::new();
    let mut rest = src;
    while let Some(at) = rest.find('{') {
        rest = &rest[at..];
        if let Some(m) = raw_open.find(rest) {
            rest = &rest[m.end()..];
            match raw_close.find(rest) {
                Some(end) => rest = &rest[end.end()..],
                None => break,
            }
            continue;
        }
        let close = match rest.get(..2) {
            Some("{{") => "}}",
            Some("{%") => "%}",
            _ => {
                rest = &rest[1..];
                continue;
            }
        };
        match rest[2..].find(close) {
            Some(end) => {
                code.push_str(&rest[2..2 + end]);
                code.push('\n');
                rest = &rest[2 + end + 2..];
            }
            None => break,
        }
    }
    code
}

/// The upstream task ids a template mentions, in order of first mention.
pub fn referenced_tasks(src: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for c in task_refs().captures_iter(&template_code(src)) {
        let id = c
            .get(1)
            .or_else(|| c.get(2))
            .map(|m| m.as_str().to_string());
        if let Some(id) = id {
            if seen.insert(id.clone()) {
                out.push(id);
            }
        }
    }
    out
}

/// Checks a prompt template against the tasks it needs, by rendering it with
/// placeholder values. Returns a message for people on failure.
pub fn check(src: &str, needs: &[String]) -> Result<(), String> {
    for id in referenced_tasks(src) {
        if !needs.contains(&id) {
            return Err(format!(
                "prompt reads tasks.{id}, but the task does not need {id:?}; add it to `needs`"
            ));
        }
    }
    let env = env();
    let tmpl = env
        .template_from_str(src)
        .map_err(|e| format!("prompt template: {}", describe(&e)))?;
    let mut unknown: Vec<String> = tmpl
        .undeclared_variables(false)
        .into_iter()
        .filter(|v| !KNOWN_VARS.contains(&v.as_str()))
        .collect();
    unknown.sort();
    if let Some(v) = unknown.first() {
        return Err(format!(
            "prompt uses `{v}`, which templates do not have (they have: {})",
            KNOWN_VARS.join(", ")
        ));
    }
    if tmpl.undeclared_variables(false).contains("payload") {
        // Its shape is the delivery's: known only when one comes.
        return Ok(());
    }
    let ctx = PromptContext {
        tasks: needs
            .iter()
            .map(|n| (n.clone(), TaskView::default()))
            .collect(),
        ..Default::default()
    };
    tmpl.render(&ctx)
        .map(|_| ())
        .map_err(|e| format!("prompt template: {}", describe(&e)))
}

/// Whether the template reads `{{ feedback }}` itself (if not, baton appends it).
pub fn uses_feedback(src: &str) -> bool {
    let env = env();
    match env.template_from_str(src) {
        Ok(t) => t.undeclared_variables(false).contains("feedback"),
        Err(_) => false,
    }
}

/// What a resolver's prompt (`[run] resolver_prompt`) can see.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ResolveContext {
    /// The conflicted task's id, prompt and final message.
    pub task: String,
    pub prompt: String,
    pub result: String,
    /// The files that hold conflict markers.
    pub paths: Vec<String>,
    /// The tasks merged since it started, oldest first.
    pub merged: Vec<MergedView>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct MergedView {
    pub id: String,
    pub prompt: String,
    pub result: String,
}

/// The resolver's prompt unless the plan gives its own.
pub const RESOLVER_PROMPT: &str = "Your work on task \"{{ task }}\" conflicts with work merged into the integration branch since you started. baton has merged the integration branch into your worktree; these files hold conflict markers: {{ paths | join(\", \") }}.

Resolve every conflict so that the intent of both sides is kept, remove every marker, make sure the result works, and finish.

Your task was:
{{ prompt }}
{% if result %}When you finished it you said:
{{ result }}
{% endif %}{% if merged %}
Merged since you started:
{% for m in merged %}- task \"{{ m.id }}\": {{ m.prompt }}{% if m.result %}
  it said: {{ m.result }}{% endif %}
{% endfor %}{% endif %}";

/// A resolver prompt for `ctx` from template `src`.
pub fn render_resolver(src: &str, ctx: &ResolveContext) -> Result<String, String> {
    env().render_str(src, ctx).map_err(|e| describe(&e))
}

/// Whether `src` renders as a resolver prompt (its variables are known).
pub fn check_resolver(src: &str) -> Result<(), String> {
    let sample = ResolveContext {
        task: "t".into(),
        prompt: "p".into(),
        result: "r".into(),
        paths: vec!["a.txt".into()],
        merged: vec![MergedView {
            id: "m".into(),
            prompt: "p".into(),
            result: "r".into(),
        }],
    };
    render_resolver(src, &sample).map(drop).map_err(|e| {
        format!("resolver_prompt: {e} (it can use task, prompt, result, paths and merged)")
    })
}

/// What a race's judge reads (`[run] judge_prompt`): the task, and each
/// candidate that passed its gates.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JudgeContext {
    pub task: String,
    pub prompt: String,
    pub candidates: Vec<JudgeCandidate>,
}

/// One candidate as its judge sees it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JudgeCandidate {
    pub id: String,
    pub agent: String,
    /// What its agent said when it finished.
    pub result: String,
    /// Its change, as a diff (cut at a size a prompt can hold: `diff_cut`).
    pub diff: String,
    pub diff_cut: bool,
    /// Its gates, its cost and its time, in words.
    pub gates: String,
    pub cost: String,
    pub time: String,
}

/// The judge's prompt unless the plan gives its own. Its last lines must
/// say `WINNER:` and `REASON:` (see `pick::verdict_of`).
pub const JUDGE_PROMPT: &str = "You judge a race: several candidates did the same task \"{{ task }}\", each in its own worktree, and each passed the task's gates. Pick the one whose work best does what the task asks: correct, complete, clear, and no larger than it needs to be. Do not change any file.

The task was:
{{ prompt }}
{% for c in candidates %}
=== Candidate {{ c.id }} (agent {{ c.agent }}; gates: {{ c.gates }}; cost: {{ c.cost }}; time: {{ c.time }}) ===
{% if c.result %}It said when it finished:
{{ c.result }}
{% endif %}Its change:
{{ c.diff }}{% if c.diff_cut %}
[the diff is cut here]{% endif %}
{% endfor %}
End your answer with exactly these two lines, naming one candidate by its id:
WINNER: <candidate id>
REASON: <one sentence>";

/// A judge's prompt for `ctx` from template `src`.
pub fn render_judge(src: &str, ctx: &JudgeContext) -> Result<String, String> {
    env().render_str(src, ctx).map_err(|e| describe(&e))
}

/// Whether `src` renders as a judge's prompt (its variables are known).
pub fn check_judge(src: &str) -> Result<(), String> {
    let sample = JudgeContext {
        task: "t".into(),
        prompt: "p".into(),
        candidates: vec![JudgeCandidate {
            id: "t.1".into(),
            ..Default::default()
        }],
    };
    render_judge(src, &sample).map(drop).map_err(|e| {
        format!("judge_prompt: {e} (it can use task, prompt and candidates: each with id, agent, result, diff, diff_cut, gates, cost and time)")
    })
}

pub fn render(src: &str, ctx: &PromptContext) -> Result<String, String> {
    let env = env();
    env.render_str(src, ctx).map_err(|e| describe(&e))
}

fn describe(e: &minijinja::Error) -> String {
    let mut msg = e.to_string();
    if let Some(line) = e.line() {
        if !msg.contains("line") {
            msg.push_str(&format!(" (template line {line})"));
        }
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resolver_prompt_names_the_paths_and_both_sides() {
        assert!(check_resolver(RESOLVER_PROMPT).is_ok());
        let ctx = ResolveContext {
            task: "b".into(),
            prompt: "write b".into(),
            result: "b wrote it".into(),
            paths: vec!["x.txt".into(), "y.txt".into()],
            merged: vec![MergedView {
                id: "a".into(),
                prompt: "write a".into(),
                result: String::new(),
            }],
        };
        let p = render_resolver(RESOLVER_PROMPT, &ctx).unwrap();
        assert!(p.starts_with("Your work on task \"b\" conflicts"), "{p}");
        assert!(p.contains("conflict markers: x.txt, y.txt."), "{p}");
        assert!(
            p.contains("When you finished it you said:\nb wrote it\n"),
            "{p}"
        );
        assert!(
            p.contains("- task \"a\": write a\n") && !p.contains("it said"),
            "{p}"
        );
        let e = check_resolver("{{ nope }}").unwrap_err();
        assert!(e.contains("resolver_prompt") && e.contains("paths"), "{e}");
    }

    #[test]
    fn literal_text_renders_as_itself_whatever_tags_it_holds() {
        let ctx = super::PromptContext::default();
        for text in [
            "Fix {{ tasks.x.result }} and {% if y %}z{% endif %}",
            "a {% endraw %} b {%- endraw -%} c {% raw %} d",
            "plain",
        ] {
            let lit = super::literal(text);
            assert_eq!(super::render(&lit, &ctx).unwrap(), text);
            assert_eq!(super::check(&lit, &[]), Ok(()));
        }
    }

    #[test]
    fn prose_and_raw_blocks_are_not_references() {
        let src = "see tasks.a in the docs {{ tasks.b.result }} {% raw %}{{ tasks.c }}{% endraw %} {% if tasks.d %}x{% endif %}";
        assert_eq!(referenced_tasks(src), vec!["b", "d"]);
    }

    #[test]
    fn finds_references_in_both_spellings() {
        let src = r#"{{ tasks.a.result }} {{ tasks["b-1"].files }} {{ tasks.a.status }}"#;
        assert_eq!(referenced_tasks(src), vec!["a", "b-1"]);
    }

    #[test]
    fn check_rejects_unneeded_task_and_unknown_variable() {
        let needs = vec!["a".to_string()];
        assert!(check("{{ tasks.a.result }}", &needs).is_ok());
        let e = check("{{ tasks.b.result }}", &needs).unwrap_err();
        assert!(e.contains("does not need \"b\""), "{e}");
        let e = check("{{ task_result }}", &needs).unwrap_err();
        assert!(e.contains("task_result"), "{e}");
        let e = check("{% if %}", &needs).unwrap_err();
        assert!(e.contains("prompt template"), "{e}");
    }

    #[test]
    fn renders_dash_ids_and_feedback() {
        let mut ctx = PromptContext {
            feedback: "gate failed".into(),
            ..Default::default()
        };
        ctx.tasks.insert(
            "my-id".into(),
            TaskView {
                result: "done".into(),
                ..Default::default()
            },
        );
        let out = render(r#"{{ tasks["my-id"].result }}: {{ feedback }}"#, &ctx).unwrap();
        assert_eq!(out, "done: gate failed");
        assert!(uses_feedback("x {{ feedback }}"));
        assert!(!uses_feedback("x {{ tasks.a.result }}"));
    }
}
