//! `exec`: any command. The rendered prompt is its last argument and its
//! trimmed standard output is the final message.

use super::{
    Adapter, AgentEvent, Finish, Launch, LaunchRequest, McpServer, McpWiring, StreamParser,
};

pub(super) const INFO: super::AdapterInfo = super::AdapterInfo {
    name: "exec",
    cli: None,
    make: || Box::new(ExecAdapter),
    // Its command's state is its own business: it gets no home of its own
    // to write in.
    state: |_| Vec::new(),
    mcp: Some(mcp),
    needs_model: None,
};

/// The server's command line as a JSON array, in `BATON_MCP_COMMAND`.
fn mcp(server: &McpServer) -> McpWiring {
    McpWiring {
        env: vec![("BATON_MCP_COMMAND".into(), server.command_json().into())],
        ..McpWiring::default()
    }
}

pub struct ExecAdapter;

/// The kernel's limit on one argument (MAX_ARG_STRLEN), its final NUL included.
pub const MAX_ARG: usize = 128 * 1024;

impl Adapter for ExecAdapter {
    fn launch(&self, req: &LaunchRequest) -> Result<Launch, String> {
        let command = req
            .profile
            .command
            .as_ref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| format!("profile {:?} has no command", req.profile.name))?;
        if req.prompt.len() >= MAX_ARG {
            return Err(format!(
                "the prompt is {} KiB, more than one argument can carry ({} KiB); an exec command can read it from the file named by $BATON_PROMPT_FILE instead",
                req.prompt.len() / 1024,
                MAX_ARG / 1024
            ));
        }
        let mut args: Vec<_> = command[1..].iter().map(Into::into).collect();
        args.extend(req.profile.args.iter().map(Into::into));
        args.push(req.prompt.into());
        let mut env: Vec<_> = req
            .profile
            .env
            .iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        if let Some(model) = &req.profile.model {
            env.push(("BATON_MODEL".into(), model.into()));
        }
        env.extend(req.mcp.map(mcp).unwrap_or_default().env);
        Ok(Launch {
            program: command[0].clone().into(),
            args,
            env,
            stdin_lines: None,
            files: Vec::new(),
        })
    }

    fn stream_parser(&self) -> Box<dyn StreamParser> {
        Box::new(ExecParser)
    }

    fn prompt_is_text(&self) -> bool {
        false
    }
}

struct ExecParser;

impl StreamParser for ExecParser {
    fn line(&mut self, _line: &str) -> Vec<AgentEvent> {
        Vec::new()
    }

    /// Its result is its plain output.
    fn tail_wanted(&self) -> usize {
        super::TEXT_TAIL
    }

    fn finish(&mut self, stdout_tail: &str) -> Finish {
        Finish {
            final_message: stdout_tail.trim().to_string(),
            error: None,
            complete: true,
            limit: None,
        }
    }
}
