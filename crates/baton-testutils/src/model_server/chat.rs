//! OpenAI Chat Completions (`POST /v1/chat/completions`): opencode (tools
//! `write {filePath, content}` and `bash {command}`, streamed) and aider (no
//! tools: edits come back as text in aider's whole-file format).

use super::turn::{
    collect_text, named_call, new_id, now_secs, run_call, sse_event, write_by_shell, write_call,
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
        .into_iter()
        .flatten()
        .filter_map(|t| t["function"]["name"].as_str().map(String::from))
        .collect();
    let mut text = String::new();
    collect_text(&Value::Array(messages.clone()), &mut text);
    let system: String = messages
        .iter()
        .filter(|m| m["role"] == "system")
        .map(|m| m["content"].to_string())
        .collect();
    Ok(Turn {
        // opencode names sessions with a tool-less request to the same
        // model; aider's requests are tool-less too but are the real work.
        side: tools.is_empty() && system.contains("title generator"),
        text,
        entries: messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let retried = messages.get(i + 1).is_some_and(aider_asks_again);
                Entry::new(m["role"] == "assistant" && !retried, m)
            })
            .collect(),
        tools,
        freeform: Vec::new(),
        model: body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("mock-model")
            .to_string(),
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// aider drops a reply that mentions files outside its chat: it adds them
/// and asks again with this message. The dropped reply did not take effect,
/// so it is not counted as a played step and the step is played again.
fn aider_asks_again(message: &Value) -> bool {
    message["role"] == "user"
        && message["content"]
            .as_str()
            .is_some_and(|c| c.starts_with("I added these files to the chat"))
}

pub(crate) fn render(action: &Action, turn: &Turn) -> Response {
    if turn.tools.is_empty() {
        return reply(Reply::Text(as_text(action)), turn);
    }
    let call = match action {
        Action::Say(text) => return reply(Reply::Text(text.clone()), turn),
        Action::Write { path, content } => write_call(turn, path, content)
            .or_else(|| run_call(turn, &write_by_shell(&turn.absolute(path), content))),
        Action::Run { command } => run_call(turn, command),
        Action::Call { tool, args } => named_call(turn, tool, args),
    };
    match call {
        Some(call) => reply(Reply::Tool(call), turn),
        None => reply(Reply::Text(as_text(action)), turn),
    }
}

pub(crate) fn side(turn: &Turn) -> Response {
    reply(Reply::Text("Scripted task".into()), turn)
}

/// The OpenAI error body, shared with the Responses API.
pub(crate) fn openai_error(status: u16, message: &str, kind: Option<&str>) -> Value {
    let kind_of_status = match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        s if s >= 500 => "server_error",
        _ => "invalid_request_error",
    };
    let kind = kind.unwrap_or(kind_of_status);
    json!({"error": {"message": message, "type": kind,
                     "param": null, "code": kind}})
}

/// An action as plain text for a tool-less client. A write uses aider's
/// whole-file format: the path on its own line, then a fence holding the
/// whole new content. A command can only be shown: aider, headless, runs
/// none (its whole-file format has no shell commands).
fn as_text(action: &Action) -> String {
    match action {
        Action::Say(text) => text.clone(),
        Action::Write { path, content } => {
            let fence = if content.contains("```") {
                "````"
            } else {
                "```"
            };
            let newline = if content.ends_with('\n') || content.is_empty() {
                ""
            } else {
                "\n"
            };
            format!("{path}\n{fence}\n{content}{newline}{fence}\n")
        }
        // Plain text, no fence: aider's whole-file format would take a
        // fenced command for the new content of the file in the chat.
        Action::Run { command } => format!("Run this command: {command}"),
        Action::Call { tool, args } => format!("Call {tool} with {args}"),
    }
}

enum Reply {
    Text(String),
    Tool(ToolCall),
}

fn reply(reply: Reply, turn: &Turn) -> Response {
    let id = new_id("chatcmpl-mock-");
    let usage = json!({"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS,
                       "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS});
    let (message, finish) = match &reply {
        Reply::Text(t) => (json!({"role": "assistant", "content": t}), "stop"),
        Reply::Tool(c) => (
            json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": new_id("call_mock_"), "type": "function",
                "function": {"name": c.name, "arguments": c.args.to_string()}}]}),
            "tool_calls",
        ),
    };
    let head = |choices: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": now_secs(),
               "model": turn.model, "choices": choices})
    };
    if !turn.stream {
        let mut full = head(json!([{"index": 0, "message": message, "finish_reason": finish}]));
        full["object"] = json!("chat.completion");
        full["usage"] = usage;
        return Response::json(200, &full);
    }
    let mut delta = message;
    if let Some(calls) = delta.get_mut("tool_calls").and_then(Value::as_array_mut) {
        for (i, call) in calls.iter_mut().enumerate() {
            call["index"] = json!(i);
        }
    }
    let mut out = String::new();
    sse_event(
        &mut out,
        None,
        &head(json!([{"index": 0, "delta": delta, "finish_reason": null}])),
    );
    sse_event(
        &mut out,
        None,
        &head(json!([{"index": 0, "delta": {}, "finish_reason": finish}])),
    );
    // Usage comes last with no choices, as OpenAI sends it with
    // `stream_options.include_usage`.
    let mut last = head(json!([]));
    last["usage"] = usage;
    sse_event(&mut out, None, &last);
    out.push_str("data: [DONE]\n\n");
    Response::sse(out)
}
