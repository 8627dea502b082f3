//! OpenAI Responses API (`POST /v1/responses`), as Codex uses it: streamed
//! SSE; files are written with `apply_patch` (a freeform tool when the model
//! slug is one Codex knows), commands run with its shell tool.

use super::turn::{
    collect_text, named_call, new_id, now_secs, run_call, sse_event, write_by_shell, Action, Entry,
    Turn, INPUT_TOKENS, OUTPUT_TOKENS,
};
use crate::http::Response;
use serde_json::{json, Value};

pub(crate) fn inspect(body: &Value) -> Result<Turn, String> {
    let input = body.get("input").ok_or("input: missing")?;
    let items: &[Value] = match input {
        Value::Array(items) => items,
        Value::String(_) => &[],
        _ => return Err("input: expected an array or a string".into()),
    };
    let mut tools = Vec::new();
    let mut freeform = Vec::new();
    for tool in body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = tool
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("function");
        let name = match tool.get("name").and_then(Value::as_str) {
            Some(n) => n.to_string(),
            None => kind.to_string(), // e.g. "local_shell", "web_search", "tool_search"
        };
        // Codex declares an MCP server's tools in a namespace
        // (`mcp__<server>`): each is known here as `mcp__<server>__<tool>`.
        if kind == "namespace" {
            for t in tool
                .get("tools")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(n) = t.get("name").and_then(Value::as_str) {
                    tools.push(format!("namespace:{name}__{n}"));
                }
            }
        }
        if kind == "custom" {
            freeform.push(name.clone());
        }
        tools.push(name);
    }
    let mut text = String::new();
    collect_text(body.get("instructions").unwrap_or(&Value::Null), &mut text);
    collect_text(input, &mut text);
    // Every response this server sends is one output item, so past model
    // turns are the model-made items in the input.
    let entries = items
        .iter()
        .map(|item| {
            let kind = item
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("message");
            let role = item.get("role").and_then(Value::as_str);
            let model = matches!(
                kind,
                "function_call" | "custom_tool_call" | "local_shell_call"
            ) || (kind == "message" && role == Some("assistant"));
            Entry::new(model, item)
        })
        .collect();
    Ok(Turn {
        side: tools.is_empty(),
        text,
        entries,
        tools,
        freeform,
        model: body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("mock-model")
            .to_string(),
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
    })
}

pub(crate) fn render(action: &Action, turn: &Turn) -> Response {
    let item = match action {
        Action::Say(text) => message_item(text),
        Action::Write { path, content } => {
            let path = turn.absolute(path);
            if turn.has_tool("apply_patch") {
                let patch = add_file_patch(&path, content);
                if turn.freeform.iter().any(|t| t == "apply_patch") {
                    json!({"type": "custom_tool_call", "id": new_id("ctc_"), "call_id": new_id("call_"),
                           "name": "apply_patch", "input": patch, "status": "completed"})
                } else {
                    function_item("apply_patch", &json!({"input": patch}))
                }
            } else {
                match run_call(turn, &write_by_shell(&path, content)) {
                    Some(call) => function_item(&call.name, &call.args),
                    None => message_item(&format!("(no write tool declared to write {path})")),
                }
            }
        }
        Action::Run { command } => match run_call(turn, command) {
            Some(call) => function_item(&call.name, &call.args),
            None => message_item(&format!("(no shell tool declared to run {command})")),
        },
        // A tool declared by its own name is called so; an MCP tool Codex
        // keeps in a namespace, in it.
        Action::Call { tool, args } => match (named_call(turn, tool, args), deferred(turn, tool)) {
            (Some(call), _) => function_item(&call.name, &call.args),
            (None, Some((namespace, name))) => namespaced_item(namespace, name, args),
            (None, None) => message_item(&format!("(no tool {tool} declared)")),
        },
    };
    respond(item, turn)
}

/// The answer to a request without tools: plain text.
pub(crate) fn side(turn: &Turn) -> Response {
    respond(message_item("Scripted task"), turn)
}

/// `GET /v1/models`: the OpenAI list shape, plus Codex's `models` key
/// (empty, so Codex keeps its built-in model presets).
pub(crate) fn models() -> Value {
    json!({
        "object": "list",
        "data": [{"id": "mock-model", "object": "model", "created": 0, "owned_by": "mock"}],
        "models": [],
    })
}

/// A patch in Codex's apply_patch format that creates `path` with `content`.
fn add_file_patch(path: &str, content: &str) -> String {
    let mut patch = format!("*** Begin Patch\n*** Add File: {path}\n");
    for line in content.lines() {
        patch.push('+');
        patch.push_str(line);
        patch.push('\n');
    }
    patch.push_str("*** End Patch\n");
    patch
}

fn message_item(text: &str) -> Value {
    json!({"type": "message", "id": new_id("msg_"), "role": "assistant", "status": "completed",
           "content": [{"type": "output_text", "text": text, "annotations": []}]})
}

/// An MCP tool (`mcp__<server>__<tool>`) Codex declares in its namespace
/// (known here as `namespace:mcp__<server>__<tool>`),
/// up front or deferred behind its tool search (the namespace named in its
/// `<tools>` note): the namespace and the tool's own name.
fn deferred<'a>(turn: &Turn, tool: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = tool.strip_prefix("mcp__")?;
    let (server, name) = rest.split_once("__")?;
    let namespace = &tool[..5 + server.len()];
    let listed = turn.has_tool(&format!("namespace:{tool}"))
        || (turn.has_tool("tool_search") && turn.text.contains(&format!("- {namespace}")));
    listed.then_some((namespace, name))
}

/// A call of `name` in `namespace`, as Codex takes an MCP tool call.
fn namespaced_item(namespace: &str, name: &str, args: &Value) -> Value {
    json!({"type": "function_call", "id": new_id("fc_"), "call_id": new_id("call_"),
           "namespace": namespace, "name": name, "arguments": args.to_string(), "status": "completed"})
}

fn function_item(name: &str, args: &Value) -> Value {
    json!({"type": "function_call", "id": new_id("fc_"), "call_id": new_id("call_"),
           "name": name, "arguments": args.to_string(), "status": "completed"})
}

fn respond(item: Value, turn: &Turn) -> Response {
    let id = new_id("resp_");
    let usage = json!({
        "input_tokens": INPUT_TOKENS, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": OUTPUT_TOKENS, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
    });
    let response = |status: &str, output: Value, usage: Value| {
        json!({"id": id, "object": "response", "created_at": now_secs(), "status": status,
               "model": turn.model, "output": output, "usage": usage})
    };
    if !turn.stream {
        return Response::json(200, &response("completed", json!([item]), usage));
    }
    let mut out = String::new();
    let mut seq = 0;
    let mut event = |out: &mut String, kind: &str, mut data: Value| {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(seq);
        seq += 1;
        sse_event(out, Some(kind), &data);
    };
    event(
        &mut out,
        "response.created",
        json!({"response": response("in_progress", json!([]), Value::Null)}),
    );
    let mut added = item.clone();
    if added["type"] == "message" {
        added["content"] = json!([]);
        added["status"] = json!("in_progress");
    }
    event(
        &mut out,
        "response.output_item.added",
        json!({"output_index": 0, "item": added}),
    );
    if let Some(text) = item["content"][0]["text"].as_str() {
        event(
            &mut out,
            "response.output_text.delta",
            json!({"item_id": item["id"], "output_index": 0, "content_index": 0, "delta": text}),
        );
    }
    event(
        &mut out,
        "response.output_item.done",
        json!({"output_index": 0, "item": item}),
    );
    event(
        &mut out,
        "response.completed",
        json!({"response": response("completed", json!([item]), usage)}),
    );
    Response::sse(out)
}
