//! Scripts: what the scripted model answers, chosen statelessly per request.

use std::collections::BTreeMap;

/// One model response (or a way of not giving one).
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// A tool call that writes `content` to `path` (relative to the agent's
    /// cwd; made absolute when the request reveals the cwd, since Claude,
    /// Gemini and opencode want absolute paths).
    WriteFile { path: String, content: String },
    /// A shell tool call.
    Run { command: String },
    /// A call of a tool the agent declares by that name (an MCP tool:
    /// `mcp__baton__wait` for Claude Code), with these arguments.
    Call {
        tool: String,
        args: serde_json::Value,
    },
    /// Final assistant text; ends the turn.
    Say(String),
    /// Answer with this HTTP status and the dialect's JSON error body.
    HttpError(u16),
    /// Accept the request and never answer (the connection stays open).
    Hang,
    /// Wait, then do `then`.
    Slow { secs: f64, then: Box<Step> },
    /// Say `text` in the same message as `then`'s tool call (Claude Code:
    /// a text block before the call; the other dialects play `then` alone).
    Note { text: String, then: Box<Step> },
}

impl Step {
    /// Shorthand for `Step::WriteFile`.
    pub fn write(path: &str, content: &str) -> Step {
        Step::WriteFile {
            path: path.into(),
            content: content.into(),
        }
    }

    /// Shorthand for `Step::Run`.
    pub fn run(command: &str) -> Step {
        Step::Run {
            command: command.into(),
        }
    }

    /// Shorthand for `Step::Call`.
    pub fn call(tool: &str, args: serde_json::Value) -> Step {
        Step::Call {
            tool: tool.into(),
            args,
        }
    }

    /// Shorthand for `Step::Say`.
    pub fn say(text: &str) -> Step {
        Step::Say(text.into())
    }

    /// Shorthand for `Step::Note`.
    pub fn noted(text: &str, then: Step) -> Step {
        Step::Note {
            text: text.into(),
            then: Box::new(then),
        }
    }

    /// Shorthand for `Step::Slow`.
    pub fn slow(secs: f64, then: Step) -> Step {
        Step::Slow {
            secs,
            then: Box::new(then),
        }
    }
}

/// Named scripts plus a default one. A request picks the script named by the
/// first `[[script:NAME]]` marker in its conversation that names a known
/// script, else the default; its step is the number of model turns in the
/// request's history after the message holding that marker (all model turns
/// for the default script). Past the end, the answer is `Say("done.")`.
#[derive(Clone, Debug, Default)]
pub struct Scripts {
    named: BTreeMap<String, Vec<Step>>,
    default: Vec<Step>,
    outages: Vec<super::Outage>,
}

impl Scripts {
    pub fn new() -> Self {
        Scripts::default()
    }

    pub fn script(mut self, name: &str, steps: Vec<Step>) -> Self {
        self.named.insert(name.to_string(), steps);
        self
    }

    pub fn default_script(mut self, steps: Vec<Step>) -> Self {
        self.default = steps;
        self
    }

    /// A provider's outage: see [`super::Outage`]. The first one that
    /// refuses a request answers it.
    pub fn outage(mut self, outage: super::Outage) -> Self {
        self.outages.push(outage);
        self
    }

    pub(crate) fn outages(&self) -> &[super::Outage] {
        &self.outages
    }

    /// The script a conversation selects: its name (None for the default)
    /// and its steps.
    pub(crate) fn select(&self, conversation: &str) -> (Option<String>, &[Step]) {
        for name in markers(conversation) {
            if let Some(steps) = self.named.get(name) {
                return (Some(name.to_string()), steps);
            }
        }
        (None, &self.default)
    }
}

/// The step at `index`, or the closing `Say("done.")` past the end.
pub(crate) fn step_at(steps: &[Step], index: usize) -> Step {
    steps
        .get(index)
        .cloned()
        .unwrap_or_else(|| Step::Say("done.".into()))
}

/// Every `[[script:NAME]]` marker's NAME, in order of appearance.
pub(crate) fn markers(text: &str) -> impl Iterator<Item = &str> {
    const OPEN: &str = "[[script:";
    text.match_indices(OPEN).filter_map(|(at, _)| {
        let rest = &text[at + OPEN.len()..];
        let end = rest.find("]]")?;
        let name = &rest[..end];
        // A marker name is a plain word, so that JSON escaping of the
        // request body cannot change it.
        let plain = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
        plain.then_some(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_known_marker_wins() {
        let scripts = Scripts::new()
            .script("b", vec![Step::say("B")])
            .default_script(vec![Step::say("D")]);
        let (name, steps) = scripts.select("x [[script:a]] y [[script:b]] [[script:c]]");
        assert_eq!(name.as_deref(), Some("b"));
        assert_eq!(steps, [Step::say("B")]);
        let (name, steps) = scripts.select("no marker");
        assert_eq!(name, None);
        assert_eq!(steps, [Step::say("D")]);
        assert_eq!(step_at(steps, 5), Step::say("done."));
    }

    #[test]
    fn odd_markers_are_ignored() {
        assert_eq!(
            markers("[[script:]] [[script:a b]] [[script:ok-1.x]] [[script:open")
                .collect::<Vec<_>>(),
            ["ok-1.x"]
        );
    }
}
