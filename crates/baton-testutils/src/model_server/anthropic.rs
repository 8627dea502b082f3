//! Anthropic Messages API (`POST /v1/messages`), as Claude Code uses it:
//! streamed SSE, tools `Write {file_path, content}` and `Bash {command}`.

use super::turn::{
    collect_text, fill_schema, named_call, new_id, run_call, sse_event, write_by_shell, write_call,
    Action, Entry, ToolCall, Turn, INPUT_TOKENS, OUTPUT_TOKENS,
};
use crate::http::Response;
use serde_json::{json, Value};

pub(crate) fn inspect(body: &Value) -> Result<Turn, String> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("messages: expected an array")?;
    let tools: Vec<String> = body
        .get("tools")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .filter_map(|t| t.get("name").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut text = String::new();
    collect_text(body.get("system").unwrap_or(&Value::Null), &mut text);
    collect_text(&Value::Array(messages.clone()), &mut text);
    let mut turn = Turn {
        text,
        entries: messages
            .iter()
            .map(|m| Entry::new(m["role"] == "assistant", &m["content"]))
            .collect(),
        tools,
        freeform: Vec::new(),
        model: str_field(body, "model"),
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        side: false,
    };
    // Claude Code's side requests (titles, summaries, probes) declare
    // neither of the tools the main loop has.
    turn.side = !(turn.has_tool("Write") || turn.has_tool("Bash"));
    Ok(turn)
}

pub(crate) fn render(action: &Action, turn: &Turn, note: Option<&str>) -> Response {
    let mut blocks: Vec<Block> = note
        .map(|n| Block::Text(n.to_string()))
        .into_iter()
        .collect();
    blocks.extend(match action {
        Action::Say(text) => vec![Block::Text(text.clone())],
        Action::Write { path, content } => write_blocks(turn, path, content),
        Action::Run { command } => match run_call(turn, command) {
            Some(call) => vec![Block::Tool(call)],
            None => vec![Block::Text(format!(
                "(no shell tool declared to run {command})"
            ))],
        },
        Action::Call { tool, args } => match named_call(turn, tool, args) {
            Some(call) => vec![Block::Tool(call)],
            None => vec![Block::Text(format!("(no tool {tool} declared)"))],
        },
    });
    message(&blocks, turn)
}

/// Claude Code's Write refuses to replace a file the session has not read,
/// so an existing file is read first, in the same message (Claude Code runs
/// the calls in order). The server looks at the file system for this: it
/// runs on the agent's machine, and only the existence of the file matters.
fn write_blocks(turn: &Turn, path: &str, content: &str) -> Vec<Block> {
    let Some(call) = write_call(turn, path, content)
        .or_else(|| run_call(turn, &write_by_shell(&turn.absolute(path), content)))
    else {
        return vec![Block::Text(format!(
            "(no write tool declared to write {path})"
        ))];
    };
    let absolute = turn.absolute(path);
    let mut blocks = Vec::new();
    if call.name == "Write" && turn.has_tool("Read") && std::path::Path::new(&absolute).is_file() {
        blocks.push(Block::Tool(ToolCall {
            name: "Read".to_string(),
            args: json!({"file_path": absolute}),
        }));
    }
    blocks.push(Block::Tool(call));
    blocks
}

/// The answer to a side request: JSON when it asks for a schema (the
/// session title), else plain text.
pub(crate) fn side(body: &Value, turn: &Turn) -> Response {
    let text = match body.pointer("/output_config/format/schema") {
        Some(schema) => fill_schema(schema).to_string(),
        None => "Scripted task".to_string(),
    };
    message(&[Block::Text(text)], turn)
}

pub(crate) fn error(status: u16, message: &str) -> Value {
    let kind = match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    };
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

enum Block {
    Text(String),
    Tool(ToolCall),
}

fn message(blocks: &[Block], turn: &Turn) -> Response {
    let id = new_id("msg_mock_");
    let content: Vec<Value> = blocks
        .iter()
        .map(|b| match b {
            Block::Text(t) => json!({"type": "text", "text": t}),
            Block::Tool(c) => json!({"type": "tool_use", "id": new_id("toolu_mock_"),
                                     "name": c.name, "input": c.args}),
        })
        .collect();
    let stop = if blocks.iter().any(|b| matches!(b, Block::Tool(_))) {
        "tool_use"
    } else {
        "end_turn"
    };
    if !turn.stream {
        return Response::json(
            200,
            &json!({
                "id": id, "type": "message", "role": "assistant", "model": turn.model,
                "content": content, "stop_reason": stop, "stop_sequence": null,
                "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
            }),
        );
    }
    let mut out = String::new();
    let start = json!({"type": "message_start", "message": {
        "id": id, "type": "message", "role": "assistant", "model": turn.model, "content": [],
        "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 1,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}});
    sse_event(&mut out, Some("message_start"), &start);
    for (index, block) in content.iter().enumerate() {
        // A block starts empty and its body comes as one delta, as the API does.
        let mut empty = block.clone();
        let delta = if block["type"] == "text" {
            empty["text"] = json!("");
            json!({"type": "text_delta", "text": block["text"]})
        } else {
            empty["input"] = json!({});
            json!({"type": "input_json_delta", "partial_json": block["input"].to_string()})
        };
        let events = [
            ("content_block_start", json!({"content_block": empty})),
            ("content_block_delta", json!({"delta": delta})),
            ("content_block_stop", json!({})),
        ];
        for (kind, mut data) in events {
            data["type"] = json!(kind);
            data["index"] = json!(index);
            sse_event(&mut out, Some(kind), &data);
        }
    }
    sse_event(
        &mut out,
        Some("message_delta"),
        &json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
                "usage": {"output_tokens": OUTPUT_TOKENS}}),
    );
    sse_event(
        &mut out,
        Some("message_stop"),
        &json!({"type": "message_stop"}),
    );
    Response::sse(out)
}

fn str_field(body: &Value, key: &str) -> String {
    body.get(key)
        .and_then(Value::as_str)
        .unwrap_or("mock-model")
        .to_string()
}
