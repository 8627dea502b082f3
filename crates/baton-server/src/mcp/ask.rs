//! The `ask` tool: an agent asks a person. `baton mcp --ask SOCKET` serves
//! only this tool (inside the agent's sandbox, with no access of its own:
//! it relays to the attempt's door), and a lead's door offers it beside the
//! lead's tools. The call returns at once: people take longer than an MCP
//! client waits for a tool, so the agent ends its turn and the answer
//! arrives as its next message.

use baton_core::ask::{self, AskRequest};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::schemars::{self, JsonSchema};
use rmcp::{tool, tool_handler, tool_router, ServerHandler};
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub const DESCRIPTION: &str = "Ask a person (the lead running this team) a question you cannot settle yourself: a choice only they can make, missing access, unclear requirements. Give `question`, and `options` when the answer is a choice. The question is recorded and this returns at once: END YOUR TURN right after (do not guess the answer); the answer arrives as your next message and you go on from there. Optional `timeout` (e.g. \"30m\") and `default` (given when the time runs out).";

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AskArg {
    /// The question, as a person will read it.
    pub question: String,
    /// The answers to choose from; leave out for a free answer.
    #[serde(default)]
    pub options: Vec<String>,
    /// How long to wait for the answer (e.g. "30m", "2h"); by default, until answered.
    #[serde(default)]
    pub timeout: Option<String>,
    /// The answer given when the timeout passes (one of the options, if any).
    #[serde(default)]
    pub default: Option<String>,
}

/// Asks through the attempt's door; what the agent is told.
pub async fn ask_through(socket: &Path, a: AskArg) -> Result<String, String> {
    let req = AskRequest {
        question: a.question,
        options: a.options,
        timeout: a.timeout,
        default: a.default,
        wait: false,
    };
    let asked = ask::ask(socket, &req).await?;
    Ok(format!(
        "Your question is recorded (question {}) and a person has been told. End your turn now, without guessing the answer: it will arrive as your next message, and you go on from there.",
        asked.id
    ))
}

/// The tool alone, for `baton mcp --ask`.
#[derive(Clone)]
pub struct AskMcp {
    socket: PathBuf,
    tool_router: ToolRouter<AskMcp>,
}

#[tool_router]
impl AskMcp {
    pub fn new(socket: PathBuf) -> AskMcp {
        AskMcp {
            socket,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = DESCRIPTION)]
    async fn ask(&self, Parameters(a): Parameters<AskArg>) -> Result<String, String> {
        ask_through(&self.socket, a).await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for AskMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("baton", env!("CARGO_PKG_VERSION")))
            .with_instructions("baton runs this task. When only a person can settle something, call `ask` and end your turn; the answer comes as your next message.")
    }
}

/// Serves `ask` on stdin/stdout until the client goes away.
pub async fn serve_ask(socket: PathBuf) -> Result<(), String> {
    super::on_stdio(AskMcp::new(socket)).await
}
