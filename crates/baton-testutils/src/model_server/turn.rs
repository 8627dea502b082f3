//! What every dialect needs to know about a request, and how a script step
//! becomes a tool call the requesting CLI understands.

use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};

/// Token usage every model response reports, in each dialect's own format.
pub const INPUT_TOKENS: u64 = 100;
pub const OUTPUT_TOKENS: u64 = 20;

/// A model request as the server sees it, whatever the dialect.
#[derive(Debug, Default)]
pub(crate) struct Turn {
    /// All the request's text (decoded JSON strings), searched for the
    /// script marker and the cwd.
    pub text: String,
    /// The conversation history, oldest first.
    pub entries: Vec<Entry>,
    /// Names of the tools the request declares.
    pub tools: Vec<String>,
    /// Those of them that take freeform text rather than JSON arguments
    /// (Responses API "custom" tools, such as Codex's `apply_patch`).
    pub freeform: Vec<String>,
    pub model: String,
    pub stream: bool,
    /// A request the CLI makes on the side (titles, routing, probes): it is
    /// answered without playing a script step.
    pub side: bool,
}

/// One message (or Responses API item) of a conversation.
#[derive(Debug, Default)]
pub(crate) struct Entry {
    /// Made by the model: an assistant message or a tool call.
    pub model: bool,
    pub text: String,
}

impl Entry {
    pub fn new(model: bool, value: &Value) -> Entry {
        let mut text = String::new();
        collect_text(value, &mut text);
        Entry { model, text }
    }
}

impl Turn {
    /// The index of the step to play: the model turns in the history after
    /// the first entry holding `marker` (the prompt that chose the script),
    /// or all of them without a marker. Counting from the prompt skips the
    /// few-shot example turns aider sends before it.
    pub fn step_index(&self, marker: Option<&str>) -> usize {
        let from = marker
            .and_then(|m| self.entries.iter().position(|e| e.text.contains(m)))
            .unwrap_or(0);
        self.entries[from..].iter().filter(|e| e.model).count()
    }

    pub fn has_tool(&self, name: &str) -> bool {
        self.tools.iter().any(|t| t == name)
    }

    /// The first of `candidates` the request declares.
    pub fn pick_tool(&self, candidates: &[&'static str]) -> Option<&'static str> {
        candidates.iter().copied().find(|c| self.has_tool(c))
    }

    /// The agent's working directory, as its prompt states it.
    pub fn cwd(&self) -> Option<&str> {
        find_cwd(&self.text)
    }

    /// `path` made absolute against the cwd when the cwd is known.
    pub fn absolute(&self, path: &str) -> String {
        match self.cwd() {
            Some(cwd) if !path.starts_with('/') => {
                format!("{}/{}", cwd.trim_end_matches('/'), path)
            }
            _ => path.to_string(),
        }
    }
}

/// A step that produces a model message.
#[derive(Clone, Debug)]
pub(crate) enum Action {
    Write {
        path: String,
        content: String,
    },
    Run {
        command: String,
    },
    /// A call of any tool the request declares (an MCP tool, say).
    Call {
        tool: String,
        args: Value,
    },
    Say(String),
}

/// A tool call in a dialect-neutral form.
pub(crate) struct ToolCall {
    pub name: String,
    pub args: Value,
}

/// Tool names per purpose, across the CLIs (first declared one wins).
const WRITE_TOOLS: &[&str] = &["Write", "write", "write_file"];
const RUN_TOOLS: &[&str] = &[
    "Bash",
    "bash",
    "run_shell_command",
    "shell_command",
    "exec_command",
    "shell",
];

/// The tool call for a write, if the request declares a write tool.
pub(crate) fn write_call(turn: &Turn, path: &str, content: &str) -> Option<ToolCall> {
    let name = turn.pick_tool(WRITE_TOOLS)?;
    let path = turn.absolute(path);
    let args = match name {
        "write" => json!({"filePath": path, "content": content}),
        _ => json!({"file_path": path, "content": content}),
    };
    Some(ToolCall {
        name: name.to_string(),
        args,
    })
}

/// The call of `tool` with `args`, if the request declares that tool.
pub(crate) fn named_call(turn: &Turn, tool: &str, args: &Value) -> Option<ToolCall> {
    turn.has_tool(tool).then(|| ToolCall {
        name: tool.to_string(),
        args: args.clone(),
    })
}

/// The tool call for a shell command, if the request declares a shell tool.
pub(crate) fn run_call(turn: &Turn, command: &str) -> Option<ToolCall> {
    let name = turn.pick_tool(RUN_TOOLS)?;
    let args = match name {
        // Claude's and opencode's shell tools want a description.
        "Bash" | "bash" => json!({"command": command, "description": "scripted shell step"}),
        "exec_command" => json!({"cmd": command}),
        "shell" => json!({"command": ["bash", "-lc", command]}),
        _ => json!({"command": command}),
    };
    Some(ToolCall {
        name: name.to_string(),
        args,
    })
}

/// A shell command that writes a file, for CLIs that only offer a shell.
pub(crate) fn write_by_shell(path: &str, content: &str) -> String {
    format!(
        "printf '%s' {} > {}",
        shell_quote(content),
        shell_quote(path)
    )
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Finds the cwd in the phrasings the CLIs use in their prompts.
fn find_cwd(text: &str) -> Option<&str> {
    if let Some(at) = text.find("<cwd>") {
        let rest = &text[at + "<cwd>".len()..];
        if let Some(end) = rest.find("</cwd>") {
            return Some(rest[..end].trim()).filter(|p| p.starts_with('/'));
        }
    }
    // Gemini CLI: "- **Workspace Directories:**\n  - /path".
    if let Some(at) = text.find("Workspace Directories:**") {
        let rest = &text[at..];
        if let Some(line) = rest.lines().nth(1) {
            let dir = line.trim().trim_start_matches("- ").trim();
            if dir.starts_with('/') {
                return Some(dir);
            }
        }
    }
    for phrase in [
        "Primary working directory: ",
        "Working directory: ",
        "working directory: ",
        "I'm currently working in the directory: ",
        "current working directory is: ",
    ] {
        for (at, _) in text.match_indices(phrase) {
            let rest = &text[at + phrase.len()..];
            let line = rest.lines().next().unwrap_or("").trim();
            let line = line
                .trim_end_matches(['.', ',', '`', '"'])
                .trim_start_matches('`');
            if line.starts_with('/') {
                return Some(line);
            }
        }
    }
    None
}

/// Appends every string in `value` (keys excluded) to `out`, one per line.
pub(crate) fn collect_text(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(items) => items.iter().for_each(|v| collect_text(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_text(v, out)),
        _ => {}
    }
}

/// A value matching `schema` (JSON schema or Gemini's OpenAPI subset), for
/// side requests that demand structured output. Keys the CLIs branch on
/// get the answer that lets the run go on.
pub(crate) fn fill_schema(schema: &Value) -> Value {
    fill(schema, "")
}

fn fill(schema: &Value, key: &str) -> Value {
    match key {
        // Gemini's next-speaker check: the user speaks next, the turn ends.
        "next_speaker" => return json!("user"),
        // Claude Code's session title.
        "title" => return json!("Scripted task"),
        _ => {}
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    let kind = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("object")
        .to_ascii_lowercase();
    match kind.as_str() {
        "object" => {
            let mut out = Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, sub) in props {
                    out.insert(name.clone(), fill(sub, name));
                }
            }
            Value::Object(out)
        }
        "array" => json!([]),
        "boolean" => json!(false),
        // Gemini's router scores complexity from 1 (the lowest is cheapest).
        "integer" | "number" => schema.get("minimum").cloned().unwrap_or(json!(1)),
        _ => json!("scripted"),
    }
}

/// A fresh id with `prefix`, unique within the process.
pub(crate) fn new_id(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}{nanos:08x}{n:06x}")
}

/// Seconds since the epoch, for `created` fields.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One server-sent event; `event` is omitted when None.
pub(crate) fn sse_event(out: &mut String, event: Option<&str>, data: &Value) {
    if let Some(e) = event {
        out.push_str("event: ");
        out.push_str(e);
        out.push('\n');
    }
    out.push_str("data: ");
    out.push_str(&data.to_string());
    out.push_str("\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cwd_in_each_phrasing() {
        assert_eq!(find_cwd("a <cwd>/r/x</cwd> b"), Some("/r/x"));
        assert_eq!(find_cwd("Working directory: /r/y\nIs git"), Some("/r/y"));
        assert_eq!(find_cwd("Primary working directory: /r/z\n"), Some("/r/z"));
        assert_eq!(
            find_cwd("- **Workspace Directories:**\n  - /r/g\n- **Directory"),
            Some("/r/g")
        );
        assert_eq!(find_cwd("nothing here"), None);
    }

    #[test]
    fn fills_side_request_schemas() {
        let router = json!({"type": "OBJECT", "properties": {
            "complexity_reasoning": {"type": "STRING"},
            "complexity_score": {"type": "INTEGER"}}});
        assert_eq!(
            fill_schema(&router),
            json!({"complexity_reasoning": "scripted", "complexity_score": 1})
        );
        let next = json!({"type": "object", "properties": {
            "next_speaker": {"type": "string", "enum": ["model", "user"]},
            "choice": {"type": "string", "enum": ["flash", "pro"]}}});
        assert_eq!(
            fill_schema(&next),
            json!({"next_speaker": "user", "choice": "flash"})
        );
        let title = json!({"type": "object", "properties": {"title": {"type": "string"}}});
        assert_eq!(fill_schema(&title), json!({"title": "Scripted task"}));
    }

    #[test]
    fn quotes_for_the_shell() {
        assert_eq!(
            write_by_shell("a b", "it's\n"),
            r"printf '%s' 'it'\''s
' > 'a b'"
        );
    }
}
