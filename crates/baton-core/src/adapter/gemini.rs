//! Gemini CLI: `gemini -p PROMPT --output-format stream-json --yolo`,
//! resumed with `--resume SESSION_ID`.

use super::events::{clip, str_of, u64_of, AgentEvent, ToolKind, UsageMode, UsageReport};
use super::{program, Adapter, Finish, Launch, LaunchRequest, McpServer, McpWiring, StreamParser};
use serde_json::{json, Value};

pub(super) const INFO: super::AdapterInfo = super::AdapterInfo {
    name: "gemini",
    cli: Some("gemini"),
    make: || Box::new(GeminiAdapter),
    state: |h| vec![h.dir.join(".gemini")],
    mcp: Some(mcp),
    needs_model: None,
};

/// Gemini CLI's settings, read from `GEMINI_CLI_SYSTEM_SETTINGS_PATH`.
fn mcp(server: &McpServer) -> McpWiring {
    let doc = json!({ "mcpServers": { &server.name: {
        "command": server.command, "args": server.args,
    }}});
    let path = server.config_dir.join("gemini-settings.json");
    let var = Some("GEMINI_CLI_SYSTEM_SETTINGS_PATH");
    McpWiring::file(path, doc.to_string(), None, var)
}

pub struct GeminiAdapter;

impl Adapter for GeminiAdapter {
    fn launch(&self, req: &LaunchRequest) -> Result<Launch, String> {
        let (prog, mut args) = program(req.profile, "gemini");
        args.extend([
            "-p".into(),
            req.prompt.into(),
            "--output-format".into(),
            "stream-json".into(),
            "--yolo".into(),
        ]);
        if let Some(m) = &req.profile.model {
            args.extend(["--model".into(), m.into()]);
        }
        if let Some(s) = req.session {
            args.extend(["--resume".into(), s.into()]);
        }
        args.extend(req.profile.args.iter().map(Into::into));
        // Without NO_RELAUNCH the CLI re-executes itself as a child that does not
        // get our signals; the worktree is baton's, so it is trusted.
        let mut env = vec![
            ("GEMINI_CLI_NO_RELAUNCH".into(), "true".into()),
            ("GEMINI_CLI_TRUST_WORKSPACE".into(), "true".into()),
        ];
        let wiring = req.mcp.map(mcp).unwrap_or_default();
        env.extend(wiring.env);
        let files = wiring.files;
        Ok(Launch {
            program: prog,
            args,
            env,
            stdin_lines: None,
            files,
        })
    }

    fn stream_parser(&self) -> Box<dyn StreamParser> {
        Box::<GeminiParser>::default()
    }
}

fn tool_kind(name: &str) -> ToolKind {
    match name {
        "read_file" | "read_many_files" => ToolKind::FileRead,
        "write_file" | "replace" | "edit" => ToolKind::FileEdit,
        "run_shell_command" => ToolKind::Command,
        "glob"
        | "search_file_content"
        | "grep"
        | "list_directory"
        | "google_web_search"
        | "web_fetch" => ToolKind::Search,
        _ => ToolKind::Other,
    }
}

#[derive(Default)]
struct GeminiParser {
    model: Option<String>,
    text: String,
    result: Option<String>,
    error: Option<String>,
}

impl StreamParser for GeminiParser {
    fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match str_of(&v, "type") {
            "init" => {
                self.model = v.get("model").and_then(|m| m.as_str()).map(str::to_string);
                out.push(AgentEvent::Session {
                    id: str_of(&v, "session_id").to_string(),
                    model: self.model.clone(),
                });
            }
            "message" if str_of(&v, "role") == "assistant" => {
                let content = str_of(&v, "content");
                if v.get("delta").and_then(|d| d.as_bool()).unwrap_or(false) {
                    self.text.push_str(content);
                } else {
                    self.text = content.to_string();
                }
                out.push(AgentEvent::Message {
                    text: content.to_string(),
                });
            }
            "tool_use" => {
                self.text.clear();
                let name = str_of(&v, "tool_name");
                let p = &v["parameters"];
                let detail = ["file_path", "command", "pattern", "path", "query"]
                    .iter()
                    .find_map(|k| p.get(*k).and_then(|x| x.as_str()))
                    .map(|s| clip(s, 300))
                    .unwrap_or_else(|| clip(&p.to_string(), 300));
                out.push(AgentEvent::ToolCall {
                    id: str_of(&v, "tool_id").to_string(),
                    name: name.to_string(),
                    kind: tool_kind(name),
                    detail,
                });
            }
            "tool_result" => out.push(AgentEvent::ToolResult {
                id: str_of(&v, "tool_id").to_string(),
                ok: str_of(&v, "status") == "success",
                detail: clip(str_of(&v["error"], "message"), 300),
            }),
            "error" => {
                let msg = str_of(&v, "message").to_string();
                out.push(AgentEvent::Error { message: msg });
            }
            "result" => {
                let stats = &v["stats"];
                // The model that did the work: the one with the most tokens.
                let model = stats["models"]
                    .as_object()
                    .and_then(|m| {
                        m.iter()
                            .max_by_key(|(_, s)| u64_of(s, "total_tokens"))
                            .map(|(k, _)| k.clone())
                    })
                    .or_else(|| self.model.clone());
                out.push(AgentEvent::Usage(UsageReport {
                    input_tokens: u64_of(stats, "input_tokens"),
                    output_tokens: u64_of(stats, "output_tokens"),
                    cost_usd: None,
                    model,
                    mode: UsageMode::Total,
                }));
                let is_error = str_of(&v, "status") != "success";
                if is_error {
                    let msg = str_of(&v["error"], "message").to_string();
                    let msg = if msg.is_empty() {
                        format!("gemini ended with status {:?}", str_of(&v, "status"))
                    } else {
                        msg
                    };
                    self.error = Some(msg.clone());
                    out.push(AgentEvent::Error {
                        message: msg.clone(),
                    });
                    out.push(AgentEvent::TurnEnd {
                        result: msg,
                        is_error: true,
                    });
                } else {
                    self.error = None;
                    out.push(AgentEvent::TurnEnd {
                        result: self.text.clone(),
                        is_error: false,
                    });
                }
                self.result = Some(self.text.clone());
            }
            _ => {}
        }
        out
    }

    fn finish(&mut self, _stdout_tail: &str) -> Finish {
        Finish {
            final_message: self.result.clone().unwrap_or_else(|| self.text.clone()),
            error: self.error.clone(),
            complete: self.result.is_some(),
            limit: None,
        }
    }
}
