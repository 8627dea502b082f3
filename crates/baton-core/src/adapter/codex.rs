//! Codex CLI: `codex exec --json PROMPT`, resumed with
//! `codex exec --json resume THREAD_ID PROMPT`.

use super::events::{clip, str_of, u64_of, AgentEvent, ToolKind, UsageMode, UsageReport};
use super::{program, Adapter, Finish, Launch, LaunchRequest, McpServer, McpWiring, StreamParser};
use serde_json::Value;

pub(super) const INFO: super::AdapterInfo = super::AdapterInfo {
    name: "codex",
    cli: Some("codex"),
    make: || Box::new(CodexAdapter),
    state: |h| vec![h.var("CODEX_HOME").unwrap_or_else(|| h.dir.join(".codex"))],
    mcp: Some(mcp),
    needs_model: None,
};

/// Codex `-c key=value` overrides (values in TOML).
fn mcp(server: &McpServer) -> McpWiring {
    let toml_str = |s: &str| toml::Value::String(s.to_string()).to_string();
    let args: Vec<String> = server.args.iter().map(|a| toml_str(a)).collect();
    let key = format!("mcp_servers.{}", server.name);
    let overrides = [
        format!("{key}.command={}", toml_str(&server.command)),
        format!("{key}.args=[{}]", args.join(",")),
        // Without it a headless Codex refuses every MCP call.
        format!("{key}.default_tools_approval_mode=\"approve\""),
        // `codex exec` does not wait for a server that starts slowly: its
        // tools would be missing from the first requests.
        format!("{key}.required=true"),
    ];
    McpWiring {
        args: overrides
            .into_iter()
            .flat_map(|o| ["-c".into(), o.into()])
            .collect(),
        ..McpWiring::default()
    }
}

pub struct CodexAdapter;

impl Adapter for CodexAdapter {
    fn launch(&self, req: &LaunchRequest) -> Result<Launch, String> {
        let (prog, mut args) = program(req.profile, "codex");
        args.extend(["exec".into(), "--json".into()]);
        if req.sandboxed {
            args.extend(["--sandbox".into(), "danger-full-access".into()]);
        }
        if let Some(m) = &req.profile.model {
            args.extend(["--model".into(), m.into()]);
        }
        args.extend(req.profile.args.iter().map(Into::into));
        if let Some(g) = req.gateway {
            // After the profile's own: the gateway's provider wins.
            args.extend(gateway_args(&g.base_url));
        }
        args.extend(req.mcp.map(mcp).unwrap_or_default().args);
        if let Some(s) = req.session {
            args.extend(["resume".into(), s.into()]);
        }
        args.push(req.prompt.into());
        Ok(Launch {
            program: prog,
            args,
            env: Vec::new(),
            stdin_lines: None,
            files: Vec::new(),
        })
    }

    fn stream_parser(&self) -> Box<dyn StreamParser> {
        Box::<CodexParser>::default()
    }
}

/// Codex's provider, pointed at the gateway (its key is the attempt's
/// token, in the variable `agent_env` sets).
fn gateway_args(base_url: &str) -> Vec<std::ffi::OsString> {
    let provider = format!(
        "model_providers.baton={{name=\"baton\",base_url=\"{base_url}/v1\",env_key=\"BATON_GATEWAY_KEY\",wire_api=\"responses\"}}"
    );
    vec![
        "-c".into(),
        "model_provider=\"baton\"".into(),
        "-c".into(),
        provider.into(),
    ]
}

#[derive(Default)]
struct CodexParser {
    started: std::collections::HashSet<String>,
    last_message: String,
    done: bool,
    error: Option<String>,
}

fn item_event(item: &Value, completed: bool) -> Option<AgentEvent> {
    let id = str_of(item, "id").to_string();
    match (str_of(item, "type"), completed) {
        ("command_execution", false) => Some(AgentEvent::ToolCall {
            id,
            name: "shell".into(),
            kind: ToolKind::Command,
            detail: clip(str_of(item, "command"), 300),
        }),
        ("command_execution", true) => Some(AgentEvent::ToolResult {
            id,
            ok: item.get("exit_code").and_then(|c| c.as_i64()) == Some(0),
            detail: clip(str_of(item, "aggregated_output"), 300),
        }),
        ("file_change", false) => {
            let paths: Vec<&str> = item["changes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| str_of(c, "path"))
                .collect();
            Some(AgentEvent::ToolCall {
                id,
                name: "apply_patch".into(),
                kind: ToolKind::FileEdit,
                detail: paths.join(", "),
            })
        }
        ("file_change", true) => Some(AgentEvent::ToolResult {
            id,
            ok: str_of(item, "status") == "completed",
            detail: String::new(),
        }),
        ("web_search", false) => Some(AgentEvent::ToolCall {
            id,
            name: "web_search".into(),
            kind: ToolKind::Search,
            detail: clip(str_of(item, "query"), 300),
        }),
        ("mcp_tool_call", false) => Some(AgentEvent::ToolCall {
            id,
            name: str_of(item, "tool").to_string(),
            kind: ToolKind::Other,
            detail: String::new(),
        }),
        ("error", _) => Some(AgentEvent::Error {
            message: str_of(item, "message").to_string(),
        }),
        _ => None,
    }
}

impl StreamParser for CodexParser {
    fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match str_of(&v, "type") {
            "thread.started" => out.push(AgentEvent::Session {
                id: str_of(&v, "thread_id").to_string(),
                model: None,
            }),
            "item.started" => {
                self.started.insert(str_of(&v["item"], "id").to_string());
                out.extend(item_event(&v["item"], false));
            }
            "item.completed" => {
                let item = &v["item"];
                if str_of(item, "type") == "agent_message" {
                    self.last_message = str_of(item, "text").to_string();
                    out.push(AgentEvent::Message {
                        text: self.last_message.clone(),
                    });
                } else {
                    // An item seen only when completed still gets its call first.
                    let id = str_of(item, "id").to_string();
                    if str_of(item, "type") != "error" && !self.started.remove(&id) {
                        out.extend(item_event(item, false));
                    }
                    out.extend(item_event(item, true));
                }
            }
            "turn.completed" => {
                let u = &v["usage"];
                out.push(AgentEvent::Usage(UsageReport {
                    input_tokens: u64_of(u, "input_tokens"),
                    output_tokens: u64_of(u, "output_tokens")
                        + u64_of(u, "reasoning_output_tokens"),
                    cost_usd: None,
                    model: None,
                    mode: UsageMode::Session,
                }));
                self.done = true;
                self.error = None;
                out.push(AgentEvent::TurnEnd {
                    result: self.last_message.clone(),
                    is_error: false,
                });
            }
            "turn.failed" => {
                let msg = error_text(str_of(&v["error"], "message"));
                self.done = true;
                self.error = Some(msg.clone());
                out.push(AgentEvent::Error {
                    message: msg.clone(),
                });
                out.push(AgentEvent::TurnEnd {
                    result: msg,
                    is_error: true,
                });
            }
            "error" => {
                let msg = error_text(str_of(&v, "message"));
                if msg.starts_with("Reconnecting") {
                    out.push(AgentEvent::Retrying {
                        detail: msg.clone(),
                    });
                }
                self.error = Some(msg.clone());
                out.push(AgentEvent::Error { message: msg });
            }
            _ => {}
        }
        out
    }

    fn finish(&mut self, _stdout_tail: &str) -> Finish {
        Finish {
            final_message: self.last_message.clone(),
            error: if self.done { self.error.clone() } else { None },
            complete: self.done,
            limit: None,
        }
    }
}

/// Codex wraps API errors as JSON in a string; show the message inside.
fn error_text(raw: &str) -> String {
    serde_json::from_str::<Value>(raw)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| raw.to_string())
}
