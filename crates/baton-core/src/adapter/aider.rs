//! aider: plain text only. `aider --message PROMPT --yes-always --no-pretty
//! --no-stream --no-auto-commits FILES...`; its edits are read from
//! "Applied edit to FILE" and its usage from "Tokens: N sent, M received."

use super::events::{AgentEvent, ToolKind, UsageMode, UsageReport};
use super::{program, Adapter, Finish, Launch, LaunchRequest, StreamParser};

pub(super) const INFO: super::AdapterInfo = super::AdapterInfo {
    name: "aider",
    cli: Some("aider"),
    make: || Box::new(AiderAdapter),
    state: |h| vec![h.dir.join(".aider"), h.xdg("XDG_CACHE_HOME", ".cache")],
    mcp: None,
    needs_model: Some("openai/gpt-4o"),
};

pub struct AiderAdapter;

impl Adapter for AiderAdapter {
    fn launch(&self, req: &LaunchRequest) -> Result<Launch, String> {
        let (prog, mut args) = program(req.profile, "aider");
        args.extend(
            [
                "--yes-always",
                "--no-pretty",
                "--no-stream",
                "--no-auto-commits",
                "--no-check-update",
                "--no-show-model-warnings",
                "--analytics-disable",
            ]
            .map(Into::into),
        );
        if let Some(m) = &req.profile.model {
            args.extend(["--model".into(), m.into()]);
        }
        args.extend(req.profile.args.iter().map(Into::into));
        args.extend(["--message".into(), req.prompt.into()]);
        // aider edits the files in its chat; give it the task's context files.
        args.extend(req.files.iter().map(Into::into));
        Ok(Launch {
            program: prog,
            args,
            env: Vec::new(),
            stdin_lines: None,
            files: Vec::new(),
        })
    }

    fn stream_parser(&self) -> Box<dyn StreamParser> {
        Box::<AiderParser>::default()
    }
}

#[derive(Default)]
struct AiderParser {
    edits: usize,
    error: Option<String>,
    /// The last thing it said was that the provider limits it.
    limited: bool,
}

/// "1.2k" -> 1200, "345" -> 345.
fn count(s: &str) -> u64 {
    let s = s.trim().trim_end_matches(',');
    if let Some(k) = s.strip_suffix('k') {
        return (k.parse::<f64>().unwrap_or(0.0) * 1000.0) as u64;
    }
    s.parse().unwrap_or(0)
}

fn dollars(s: &str) -> Option<f64> {
    s.trim()
        .trim_start_matches('$')
        .trim_end_matches(',')
        .parse()
        .ok()
}

impl StreamParser for AiderParser {
    fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        let line = line.trim();
        let mut out = Vec::new();
        if let Some(file) = line.strip_prefix("Applied edit to ") {
            self.edits += 1;
            let id = format!("edit-{}", self.edits);
            out.push(AgentEvent::ToolCall {
                id: id.clone(),
                name: "edit".into(),
                kind: ToolKind::FileEdit,
                detail: file.to_string(),
            });
            out.push(AgentEvent::ToolResult {
                id,
                ok: true,
                detail: String::new(),
            });
        } else if let Some(rest) = line.strip_prefix("Tokens: ") {
            // A model reply after an error: aider got past it (it retries).
            self.limited = false;
            self.error = None;
            // "Tokens: 100 sent, 20 received. Cost: $0.01 message, $0.02 session."
            let words: Vec<&str> = rest.split_whitespace().collect();
            let sent = words
                .iter()
                .position(|w| w.starts_with("sent"))
                .and_then(|i| i.checked_sub(1))
                .map(|i| count(words[i]));
            let recv = words
                .iter()
                .position(|w| w.starts_with("received"))
                .and_then(|i| i.checked_sub(1))
                .map(|i| count(words[i]));
            let cost = words
                .iter()
                .position(|w| w.starts_with("message"))
                .and_then(|i| i.checked_sub(1))
                .and_then(|i| dollars(words[i]));
            out.push(AgentEvent::Usage(UsageReport {
                input_tokens: sent.unwrap_or(0),
                output_tokens: recv.unwrap_or(0),
                cost_usd: cost,
                model: None,
                mode: UsageMode::Add,
            }));
        } else if line.contains("has rate limited you") {
            // aider retries by itself; when it gives up, this was its last word.
            self.limited = true;
            out.push(AgentEvent::Retrying {
                detail: line.to_string(),
            });
        } else if line.contains("litellm.") && (line.contains("Error") || line.contains("error")) {
            self.error = Some(line.to_string());
            out.push(AgentEvent::Error {
                message: line.to_string(),
            });
        }
        out
    }

    /// Its result is its plain output.
    fn tail_wanted(&self) -> usize {
        super::TEXT_TAIL
    }

    fn finish(&mut self, stdout_tail: &str) -> Finish {
        // aider exits 0 when it gives up on a rate limit; that is a failure.
        let gave_up = self
            .limited
            .then(|| "the API provider rate limited aider until it gave up".to_string());
        Finish {
            final_message: stdout_tail.trim().to_string(),
            error: self.error.clone().or(gave_up),
            complete: true,
            limit: None,
        }
    }
}
