//! opencode: `opencode run --format json PROMPT`, resumed with
//! `--session SESSION_ID`. It has no final event: a `step_finish` whose
//! reason is `stop` ends the turn.

use super::events::{clip, str_of, u64_of, AgentEvent, ToolKind, UsageMode, UsageReport};
use super::{program, Adapter, Finish, Launch, LaunchRequest, McpServer, McpWiring, StreamParser};
use serde_json::Value;

pub(super) const INFO: super::AdapterInfo = super::AdapterInfo {
    name: "opencode",
    cli: Some("opencode"),
    make: || Box::new(OpencodeAdapter),
    state: |h| {
        [
            ("XDG_CONFIG_HOME", ".config"),
            ("XDG_DATA_HOME", ".local/share"),
            ("XDG_STATE_HOME", ".local/state"),
            ("XDG_CACHE_HOME", ".cache"),
        ]
        .into_iter()
        .map(|(k, default)| h.xdg(k, default).join("opencode"))
        .collect()
    },
    mcp: Some(mcp),
    needs_model: None,
};

/// opencode's config, read from `OPENCODE_CONFIG`.
fn mcp(server: &McpServer) -> McpWiring {
    let doc = serde_json::json!({ "mcp": { &server.name: {
        "type": "local", "command": server.argv(), "enabled": true,
    }}});
    let path = server.config_dir.join("opencode.json");
    McpWiring::file(path, doc.to_string(), None, Some("OPENCODE_CONFIG"))
}

pub struct OpencodeAdapter;

impl Adapter for OpencodeAdapter {
    fn launch(&self, req: &LaunchRequest) -> Result<Launch, String> {
        let (prog, mut args) = program(req.profile, "opencode");
        args.extend(["run".into(), "--format".into(), "json".into()]);
        if let Some(m) = &req.profile.model {
            args.extend(["--model".into(), m.into()]);
        }
        if let Some(s) = req.session {
            args.extend(["--session".into(), s.into()]);
        }
        args.extend(req.profile.args.iter().map(Into::into));
        args.push(req.prompt.into());
        let wiring = req.mcp.map(mcp).unwrap_or_default();
        let (env, files) = (wiring.env, wiring.files);
        Ok(Launch {
            program: prog,
            args,
            env,
            stdin_lines: None,
            files,
        })
    }

    fn stream_parser(&self) -> Box<dyn StreamParser> {
        Box::<OpencodeParser>::default()
    }
}

fn tool_kind(name: &str) -> ToolKind {
    match name {
        "read" => ToolKind::FileRead,
        "write" | "edit" | "patch" | "multiedit" => ToolKind::FileEdit,
        "bash" => ToolKind::Command,
        "grep" | "glob" | "list" | "webfetch" | "websearch" => ToolKind::Search,
        _ => ToolKind::Other,
    }
}

#[derive(Default)]
struct OpencodeParser {
    session: Option<String>,
    text: String,
    done: bool,
    error: Option<String>,
}

impl StreamParser for OpencodeParser {
    fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let sid = str_of(&v, "sessionID");
        if !sid.is_empty() && self.session.is_none() {
            self.session = Some(sid.to_string());
            out.push(AgentEvent::Session {
                id: sid.to_string(),
                model: None,
            });
        }
        let part = &v["part"];
        match str_of(&v, "type") {
            "text" => {
                self.text = str_of(part, "text").to_string();
                out.push(AgentEvent::Message {
                    text: self.text.clone(),
                });
            }
            "tool_use" => {
                let name = str_of(part, "tool");
                let state = &part["state"];
                let input = &state["input"];
                let detail = ["filePath", "command", "pattern", "path", "url"]
                    .iter()
                    .find_map(|k| input.get(*k).and_then(|x| x.as_str()))
                    .map(|s| clip(s, 300))
                    .unwrap_or_else(|| clip(&input.to_string(), 300));
                let id = str_of(part, "callID").to_string();
                out.push(AgentEvent::ToolCall {
                    id: id.clone(),
                    name: name.to_string(),
                    kind: tool_kind(name),
                    detail,
                });
                let status = str_of(state, "status");
                if status == "completed" || status == "error" {
                    out.push(AgentEvent::ToolResult {
                        id,
                        ok: status == "completed",
                        detail: clip(str_of(state, "output"), 300),
                    });
                }
            }
            "step_finish" => {
                let t = &part["tokens"];
                let cache = &t["cache"];
                let cost = part.get("cost").and_then(|c| c.as_f64());
                out.push(AgentEvent::Usage(UsageReport {
                    input_tokens: u64_of(t, "input")
                        + u64_of(cache, "read")
                        + u64_of(cache, "write"),
                    output_tokens: u64_of(t, "output") + u64_of(t, "reasoning"),
                    // opencode says 0 for models it has no price for: that is unknown, not free.
                    cost_usd: cost.filter(|c| *c > 0.0),
                    model: None,
                    mode: UsageMode::Add,
                }));
                if str_of(part, "reason") == "stop" {
                    self.done = true;
                    out.push(AgentEvent::TurnEnd {
                        result: self.text.clone(),
                        is_error: false,
                    });
                }
            }
            "error" => {
                let e = &v["error"];
                let msg = e["data"]["message"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| str_of(e, "name").to_string());
                let msg = match e["data"]["statusCode"].as_u64() {
                    Some(code) => format!("model API error {code}: {msg}"),
                    None => msg,
                };
                self.error = Some(msg.clone());
                out.push(AgentEvent::Error { message: msg });
            }
            _ => {}
        }
        out
    }

    fn finish(&mut self, _stdout_tail: &str) -> Finish {
        Finish {
            final_message: self.text.clone(),
            error: if self.done { None } else { self.error.clone() },
            complete: self.done,
            limit: None,
        }
    }
}
