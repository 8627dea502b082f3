//! The tokens an answer used, read as it passes: a streamed answer's
//! server-sent events line by line, a whole answer once it is complete.
//! Each provider says it its own way:
//! - Anthropic: `message_start` (input, cache) then `message_delta`
//!   (output so far); a whole message has `usage`.
//! - OpenAI Responses: `response.completed` (or `.incomplete`, `.failed`)
//!   carries the response with its `usage`; Chat Completions: a chunk or a
//!   completion with `usage` (input counts the cached tokens too).
//! - Gemini: every chunk's `usageMetadata`, the last one standing.

use baton_core::gateway::{Provider, WireUsage};
use serde_json::Value;

/// A line or a whole answer bigger than this is passed on unread.
const MAX_HELD: usize = 16 * 1024 * 1024;

/// Reads one answer's usage from its bytes as they pass.
pub struct Scanner {
    provider: Provider,
    sse: bool,
    held: Vec<u8>,
    too_big: bool,
    usage: Option<WireUsage>,
    model: Option<String>,
}

impl Scanner {
    /// For an answer of `provider` whose content type is `content_type`.
    pub fn new(provider: Provider, content_type: &str) -> Scanner {
        Scanner {
            provider,
            sse: content_type.starts_with("text/event-stream"),
            held: Vec::new(),
            too_big: false,
            usage: None,
            model: None,
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        if self.too_big {
            return;
        }
        if !self.sse {
            self.hold(bytes);
            return;
        }
        let mut rest = bytes;
        while let Some(at) = rest.iter().position(|b| *b == b'\n') {
            self.hold(&rest[..at]);
            let line = std::mem::take(&mut self.held);
            self.line(&line);
            rest = &rest[at + 1..];
        }
        self.hold(rest);
    }

    fn hold(&mut self, bytes: &[u8]) {
        if self.held.len() + bytes.len() > MAX_HELD {
            self.too_big = true;
            self.held = Vec::new();
            return;
        }
        self.held.extend_from_slice(bytes);
    }

    fn line(&mut self, line: &[u8]) {
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        let data = data.trim_ascii();
        if data.is_empty() || data == b"[DONE]" {
            return;
        }
        if let Ok(v) = serde_json::from_slice::<Value>(data) {
            self.take(&v);
        }
    }

    /// The usage and model the answer gave (None: it said none, or it was
    /// too big to read).
    pub fn finish(mut self) -> (Option<WireUsage>, Option<String>) {
        if !self.too_big {
            let held = std::mem::take(&mut self.held);
            match self.sse {
                true => self.line(&held),
                false => match serde_json::from_slice::<Value>(&held) {
                    // A Gemini stream without `alt=sse` is one JSON array.
                    Ok(Value::Array(chunks)) => chunks.iter().for_each(|c| self.take(c)),
                    Ok(v) => self.take(&v),
                    Err(_) => {}
                },
            }
        }
        (self.usage, self.model)
    }

    fn take(&mut self, v: &Value) {
        match self.provider {
            Provider::Anthropic => self.anthropic(v),
            Provider::Openai => self.openai(v),
            Provider::Gemini => self.gemini(v),
        }
    }

    fn anthropic(&mut self, v: &Value) {
        let (usage, model) = match v["type"].as_str() {
            Some("message_start") => (&v["message"]["usage"], &v["message"]["model"]),
            Some("message") => (&v["usage"], &v["model"]),
            Some("message_delta") => {
                // Counts so far: each given one replaces what was known.
                let u = self.usage.get_or_insert_with(WireUsage::default);
                let d = &v["usage"];
                set(&mut u.output, &d["output_tokens"]);
                set(&mut u.input, &d["input_tokens"]);
                set(&mut u.cache_read, &d["cache_read_input_tokens"]);
                set(&mut u.cache_write, &d["cache_creation_input_tokens"]);
                return;
            }
            _ => return,
        };
        if usage.is_object() {
            self.usage = Some(WireUsage {
                input: n(&usage["input_tokens"]),
                output: n(&usage["output_tokens"]),
                cache_read: n(&usage["cache_read_input_tokens"]),
                cache_write: n(&usage["cache_creation_input_tokens"]),
            });
        }
        self.set_model(model);
    }

    fn openai(&mut self, v: &Value) {
        let response = match v["type"].as_str() {
            Some("response.completed" | "response.incomplete" | "response.failed") => {
                &v["response"]
            }
            _ => v,
        };
        let u = &response["usage"];
        if u.is_object() {
            // Responses say input/output; Chat Completions prompt/completion.
            let input = n(&u["input_tokens"]).max(n(&u["prompt_tokens"]));
            let cached = n(&u["input_tokens_details"]["cached_tokens"])
                .max(n(&u["prompt_tokens_details"]["cached_tokens"]));
            self.usage = Some(WireUsage {
                input: input.saturating_sub(cached),
                output: n(&u["output_tokens"]).max(n(&u["completion_tokens"])),
                cache_read: cached,
                cache_write: 0,
            });
            self.set_model(&response["model"]);
        }
    }

    fn gemini(&mut self, v: &Value) {
        let u = &v["usageMetadata"];
        if u.is_object() {
            let cached = n(&u["cachedContentTokenCount"]);
            self.usage = Some(WireUsage {
                input: n(&u["promptTokenCount"]).saturating_sub(cached),
                output: n(&u["candidatesTokenCount"]) + n(&u["thoughtsTokenCount"]),
                cache_read: cached,
                cache_write: 0,
            });
        }
        self.set_model(&v["modelVersion"]);
    }

    fn set_model(&mut self, m: &Value) {
        if let Some(m) = m.as_str().filter(|m| !m.is_empty()) {
            self.model = Some(m.to_string());
        }
    }
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn set(field: &mut u64, v: &Value) {
    if let Some(x) = v.as_u64() {
        *field = x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `text` in pieces of `step` bytes, as a network would.
    fn scan(
        provider: Provider,
        ct: &str,
        text: &str,
        step: usize,
    ) -> (Option<WireUsage>, Option<String>) {
        let mut s = Scanner::new(provider, ct);
        for chunk in text.as_bytes().chunks(step) {
            s.feed(chunk);
        }
        s.finish()
    }

    fn u(input: u64, output: u64, cache_read: u64, cache_write: u64) -> Option<WireUsage> {
        Some(WireUsage {
            input,
            output,
            cache_read,
            cache_write,
        })
    }

    /// As Anthropic streams a message (from its Messages streaming docs).
    const ANTHROPIC_SSE: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"usage\":{\"input_tokens\":472,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":2000,\"output_tokens\":2}}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":89}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    #[test]
    fn an_anthropic_stream_gives_its_input_at_the_start_and_its_output_at_the_end() {
        for step in [1, 7, 4096] {
            let (usage, model) = scan(
                Provider::Anthropic,
                "text/event-stream; charset=utf-8",
                ANTHROPIC_SSE,
                step,
            );
            assert_eq!(usage, u(472, 89, 2000, 100), "step {step}");
            assert_eq!(model.as_deref(), Some("claude-sonnet-4-5"));
        }
        let whole = r#"{"id":"msg","type":"message","model":"claude-x","usage":{"input_tokens":10,"output_tokens":3}}"#;
        assert_eq!(
            scan(Provider::Anthropic, "application/json", whole, 5).0,
            u(10, 3, 0, 0)
        );
    }

    #[test]
    fn openai_responses_and_chat_completions_count_cached_input_apart() {
        let sse = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"model\":\"gpt-5\",\"usage\":null}}\n\nevent: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"model\":\"gpt-5-2025\",\"usage\":{\"input_tokens\":1000,\"input_tokens_details\":{\"cached_tokens\":600},\"output_tokens\":50,\"total_tokens\":1050}}}\n\n";
        let (usage, model) = scan(Provider::Openai, "text/event-stream", sse, 3);
        assert_eq!(usage, u(400, 50, 600, 0));
        assert_eq!(model.as_deref(), Some("gpt-5-2025"));
        let chat = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"choices\":[],\"model\":\"gpt-4o\",\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":5,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\ndata: [DONE]\n\n";
        assert_eq!(
            scan(Provider::Openai, "text/event-stream", chat, 11).0,
            u(16, 5, 4, 0)
        );
        let whole = r#"{"object":"chat.completion","model":"m","usage":{"prompt_tokens":7,"completion_tokens":2}}"#;
        assert_eq!(
            scan(Provider::Openai, "application/json", whole, 100).0,
            u(7, 2, 0, 0)
        );
    }

    #[test]
    fn gemini_counts_thoughts_as_output_and_its_last_chunk_stands() {
        let sse = "data: {\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":90,\"candidatesTokenCount\":1},\"modelVersion\":\"gemini-2.5-flash\"}\r\n\r\ndata: {\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":90,\"cachedContentTokenCount\":30,\"candidatesTokenCount\":12,\"thoughtsTokenCount\":8}}\r\n\r\n";
        let (usage, model) = scan(Provider::Gemini, "text/event-stream", sse, 2);
        assert_eq!(usage, u(60, 20, 30, 0));
        assert_eq!(model.as_deref(), Some("gemini-2.5-flash"));
        let array = r#"[{"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":1}},{"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":4}}]"#;
        assert_eq!(
            scan(Provider::Gemini, "application/json", array, 9).0,
            u(5, 4, 0, 0)
        );
    }

    #[test]
    fn an_answer_without_usage_or_too_big_to_read_says_none() {
        assert_eq!(
            scan(Provider::Openai, "application/json", "{\"error\":{}}", 4).0,
            None
        );
        assert_eq!(
            scan(
                Provider::Anthropic,
                "text/event-stream",
                "data: not json\n\n",
                4
            )
            .0,
            None
        );
        let mut s = Scanner::new(Provider::Openai, "application/json");
        s.feed(&vec![b' '; MAX_HELD + 1]);
        s.feed(br#"{"usage":{"input_tokens":1}}"#);
        assert_eq!(s.finish().0, None);
    }
}
