//! Claude Code: `claude -p --input-format stream-json --output-format
//! stream-json --verbose`. The prompt goes in as a user message on stdin,
//! which stays open so that `baton steer` reaches the running agent; baton
//! closes it when a turn ends with no message waiting.

use super::events::{clip, str_of, u64_of, AgentEvent, ToolKind, UsageMode, UsageReport};
use super::{program, Adapter, Finish, Launch, LaunchRequest, McpServer, McpWiring, StreamParser};
use serde_json::{json, Value};

pub(super) const INFO: super::AdapterInfo = super::AdapterInfo {
    name: "claude",
    cli: Some("claude"),
    make: || Box::new(ClaudeAdapter),
    state: |h| {
        let config = h.var("CLAUDE_CONFIG_DIR");
        vec![
            config.unwrap_or_else(|| h.dir.join(".claude")),
            h.dir.join(".claude.json"),
        ]
    },
    mcp: Some(mcp),
    needs_model: None,
};

/// Claude Code's `--mcp-config` file.
fn mcp(server: &McpServer) -> McpWiring {
    let doc = json!({ "mcpServers": { &server.name: {
        "type": "stdio", "command": server.command, "args": server.args,
    }}});
    let path = server.config_dir.join("claude-mcp.json");
    McpWiring::file(path, doc.to_string(), Some("--mcp-config"), None)
}

pub struct ClaudeAdapter;

fn user_line(text: &str) -> String {
    json!({ "type": "user", "message": { "role": "user", "content": [{ "type": "text", "text": text }] } }).to_string()
}

impl Adapter for ClaudeAdapter {
    fn launch(&self, req: &LaunchRequest) -> Result<Launch, String> {
        let (prog, mut args) = program(req.profile, "claude");
        args.extend(
            [
                "-p",
                "--input-format",
                "stream-json",
                "--output-format",
                "stream-json",
                "--verbose",
                "--permission-mode",
                "bypassPermissions",
            ]
            .map(Into::into),
        );
        if let Some(m) = &req.profile.model {
            args.extend(["--model".into(), m.into()]);
        }
        if let Some(s) = req.session {
            args.extend(["--resume".into(), s.into()]);
        }
        args.extend(req.profile.args.iter().map(Into::into));
        let wiring = req.mcp.map(mcp).unwrap_or_default();
        args.extend(wiring.args);
        let files = wiring.files;
        let mut env = Vec::new();
        // bypassPermissions refuses to run as root unless told it is sandboxed;
        // a baton worktree is the agent's own desk.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 && !req.profile.env.contains_key("IS_SANDBOX") {
            env.push(("IS_SANDBOX".into(), "1".into()));
        }
        Ok(Launch {
            program: prog,
            args,
            env,
            stdin_lines: Some(vec![user_line(req.prompt)]),
            files,
        })
    }

    fn stream_parser(&self) -> Box<dyn StreamParser> {
        Box::<ClaudeParser>::default()
    }

    fn steer_line(&self, message: &str) -> Option<String> {
        Some(user_line(message))
    }
}

fn tool_kind(name: &str) -> ToolKind {
    match name {
        "Read" | "NotebookRead" => ToolKind::FileRead,
        "Write" | "Edit" | "MultiEdit" | "NotebookEdit" => ToolKind::FileEdit,
        "Bash" | "BashOutput" | "KillShell" => ToolKind::Command,
        "Grep" | "Glob" | "LS" | "WebSearch" | "WebFetch" => ToolKind::Search,
        _ => ToolKind::Other,
    }
}

fn tool_detail(input: &Value) -> String {
    for key in [
        "file_path",
        "command",
        "pattern",
        "path",
        "url",
        "query",
        "description",
    ] {
        if let Some(s) = input.get(key).and_then(|v| v.as_str()) {
            return clip(s, 300);
        }
    }
    clip(&input.to_string(), 300)
}

#[derive(Default)]
struct ClaudeParser {
    model: Option<String>,
    result: Option<String>,
    error: Option<String>,
    last_text: String,
}

impl StreamParser for ClaudeParser {
    fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match (str_of(&v, "type"), str_of(&v, "subtype")) {
            ("system", "init") => {
                self.model = v.get("model").and_then(|m| m.as_str()).map(str::to_string);
                out.push(AgentEvent::Session {
                    id: str_of(&v, "session_id").to_string(),
                    model: self.model.clone(),
                });
            }
            ("system", "api_retry") => {
                let status = v.get("error_status").and_then(Value::as_u64);
                out.push(AgentEvent::Retrying {
                    detail: format!(
                        "model API error {}, retry {} of {}",
                        status.map(|s| s.to_string()).unwrap_or_default(),
                        u64_of(&v, "attempt"),
                        u64_of(&v, "max_retries")
                    ),
                });
                // Claude Code waits by itself; the wait it chose is the provider's word.
                let said = str_of(&v, "error");
                if let Some(mut limit) = status.and_then(|s| super::limits::from_status(s, said)) {
                    limit.retry_after_ms = v
                        .get("retry_delay_ms")
                        .and_then(Value::as_f64)
                        .map(|ms| ms as u64);
                    out.push(AgentEvent::RateLimited(limit));
                }
            }
            ("assistant", _) => {
                let msg = &v["message"];
                // Claude Code words an API error as a message of its own
                // ("<synthetic>", with an `error`): not the agent speaking.
                let synthetic = str_of(msg, "model") == "<synthetic>" && v.get("error").is_some();
                for c in msg["content"].as_array().into_iter().flatten() {
                    match str_of(c, "type") {
                        "text" if synthetic => out.push(AgentEvent::Error {
                            message: str_of(c, "text").to_string(),
                        }),
                        "text" => {
                            self.last_text = str_of(c, "text").to_string();
                            out.push(AgentEvent::Message {
                                text: self.last_text.clone(),
                            });
                        }
                        "tool_use" => {
                            let name = str_of(c, "name");
                            out.push(AgentEvent::ToolCall {
                                id: str_of(c, "id").to_string(),
                                name: name.to_string(),
                                kind: tool_kind(name),
                                detail: tool_detail(&c["input"]),
                            });
                        }
                        _ => {}
                    }
                }
                let u = &msg["usage"];
                if str_of(msg, "model") != "<synthetic>" && u.is_object() {
                    out.push(AgentEvent::Usage(UsageReport {
                        input_tokens: u64_of(u, "input_tokens")
                            + u64_of(u, "cache_read_input_tokens")
                            + u64_of(u, "cache_creation_input_tokens"),
                        output_tokens: u64_of(u, "output_tokens"),
                        cost_usd: None,
                        model: self.model.clone().or_else(|| {
                            msg.get("model")
                                .and_then(|m| m.as_str())
                                .map(str::to_string)
                        }),
                        mode: UsageMode::Add,
                    }));
                }
            }
            ("user", _) => {
                for c in v["message"]["content"].as_array().into_iter().flatten() {
                    if str_of(c, "type") == "tool_result" {
                        let detail = match &c["content"] {
                            Value::String(s) => clip(s, 300),
                            other => clip(&other.to_string(), 300),
                        };
                        out.push(AgentEvent::ToolResult {
                            id: str_of(c, "tool_use_id").to_string(),
                            ok: !c.get("is_error").and_then(|e| e.as_bool()).unwrap_or(false),
                            detail,
                        });
                    }
                }
            }
            ("result", _) => {
                let text = str_of(&v, "result").to_string();
                let is_error = v.get("is_error").and_then(|e| e.as_bool()).unwrap_or(false);
                let u = &v["usage"];
                out.push(AgentEvent::Usage(UsageReport {
                    input_tokens: u64_of(u, "input_tokens")
                        + u64_of(u, "cache_read_input_tokens")
                        + u64_of(u, "cache_creation_input_tokens"),
                    output_tokens: u64_of(u, "output_tokens"),
                    cost_usd: v.get("total_cost_usd").and_then(|c| c.as_f64()),
                    model: self.model.clone(),
                    mode: UsageMode::Total,
                }));
                if is_error {
                    self.error = Some(text.clone());
                    out.push(AgentEvent::Error {
                        message: text.clone(),
                    });
                    let status = v.get("api_error_status").and_then(Value::as_u64);
                    out.extend(
                        status
                            .and_then(|s| super::limits::from_status(s, &text))
                            .map(AgentEvent::RateLimited),
                    );
                } else {
                    self.error = None;
                }
                self.result = Some(text.clone());
                out.push(AgentEvent::TurnEnd {
                    result: text,
                    is_error,
                });
            }
            _ => {}
        }
        out
    }

    fn finish(&mut self, _stdout_tail: &str) -> Finish {
        Finish {
            final_message: self
                .result
                .clone()
                .unwrap_or_else(|| self.last_text.clone()),
            error: self.error.clone(),
            complete: self.result.is_some(),
            limit: None,
        }
    }
}
