//! Gemini API (`POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`), as Gemini CLI uses it: tools
//! `write_file {file_path, content}` and `run_shell_command {command}`.
//! Its side requests (model router, next-speaker check) ask for JSON
//! matching a schema; they get a schema-shaped answer.

use super::turn::{
    collect_text, fill_schema, named_call, new_id, run_call, sse_event, write_by_shell, write_call,
    Action, Entry, ToolCall, Turn, INPUT_TOKENS, OUTPUT_TOKENS,
};
use crate::http::Response;
use serde_json::{json, Value};

/// `model` and `method` come from the path `models/{model}:{method}`.
pub(crate) fn inspect(body: &Value, model: &str, method: &str) -> Result<Turn, String> {
    let contents = body
        .get("contents")
        .and_then(Value::as_array)
        .ok_or("contents: expected an array")?;
    let tools: Vec<String> = body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("functionDeclarations").and_then(Value::as_array))
        .flatten()
        .filter_map(|d| d.get("name").and_then(Value::as_str).map(String::from))
        .collect();
    let mut text = String::new();
    collect_text(
        body.get("systemInstruction").unwrap_or(&Value::Null),
        &mut text,
    );
    collect_text(&Value::Array(contents.clone()), &mut text);
    Ok(Turn {
        side: tools.is_empty() || json_schema(body).is_some(),
        text,
        entries: contents
            .iter()
            .map(|c| Entry::new(c["role"] == "model", c))
            .collect(),
        tools,
        freeform: Vec::new(),
        model: model.to_string(),
        stream: method == "streamGenerateContent",
    })
}

pub(crate) fn render(action: &Action, turn: &Turn, sse: bool) -> Response {
    let part = match action {
        Action::Say(text) => json!({"text": text}),
        Action::Write { path, content } => call_part(
            write_call(turn, path, content)
                .or_else(|| run_call(turn, &write_by_shell(&turn.absolute(path), content))),
            &format!("(no write tool declared to write {path})"),
        ),
        Action::Run { command } => call_part(
            run_call(turn, command),
            &format!("(no shell tool declared to run {command})"),
        ),
        Action::Call { tool, args } => call_part(
            named_call(turn, tool, args),
            &format!("(no tool {tool} declared)"),
        ),
    };
    respond(part, turn, sse)
}

/// Side requests: JSON shaped by the requested schema, else plain text.
pub(crate) fn side(body: &Value, turn: &Turn, sse: bool) -> Response {
    let text = match json_schema(body) {
        Some(schema) => fill_schema(schema).to_string(),
        None => "Scripted task".to_string(),
    };
    respond(json!({"text": text}), turn, sse)
}

pub(crate) fn error(status: u16, message: &str) -> Value {
    let kind = match status {
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        s if s >= 500 => "INTERNAL",
        _ => "INVALID_ARGUMENT",
    };
    json!({"error": {"code": status, "message": message, "status": kind}})
}

fn call_part(call: Option<ToolCall>, fallback: &str) -> Value {
    match call {
        Some(c) => json!({"functionCall": {"name": c.name, "args": c.args}}),
        None => json!({"text": fallback}),
    }
}

fn json_schema(body: &Value) -> Option<&Value> {
    let config = body.get("generationConfig")?;
    config
        .get("responseJsonSchema")
        .or_else(|| config.get("responseSchema"))
        .or_else(|| (config.get("responseMimeType")? == "application/json").then_some(&Value::Null))
}

fn respond(part: Value, turn: &Turn, sse: bool) -> Response {
    let chunk = json!({
        "candidates": [{"content": {"role": "model", "parts": [part]},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": INPUT_TOKENS, "candidatesTokenCount": OUTPUT_TOKENS,
                          "totalTokenCount": INPUT_TOKENS + OUTPUT_TOKENS},
        "modelVersion": turn.model,
        "responseId": new_id("mock-"),
    });
    if !turn.stream {
        return Response::json(200, &chunk);
    }
    if !sse {
        // streamGenerateContent without alt=sse answers a JSON array.
        return Response::json(200, &json!([chunk]));
    }
    let mut out = String::new();
    sse_event(&mut out, None, &chunk);
    Response::sse(out)
}
