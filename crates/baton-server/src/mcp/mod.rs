//! baton as an MCP server: `baton mcp` (stdio) and `/mcp` under `baton
//! serve` (streamable HTTP, behind the API's access rules). Any MCP client
//! (Claude Code, Codex, ...) can check and start plans, add tasks, watch,
//! steer and wait for them. A failure is a tool error with a message, never
//! a dropped connection.

mod args;
pub mod ask;
mod ops;
mod stdio;

use crate::state::AppState;
use args::*;
use baton_core::model::ControlKind;
use ops::{Answer, Ops};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::{tool, tool_handler, tool_router, ServerHandler, ServiceExt};
use std::sync::Arc;

/// Which runs the tools reach: all of the repository's, or (for a lead
/// task) its own run only, with a cap on the tasks it may add.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub run: Option<String>,
    pub max_tasks: Option<u32>,
    /// The task these tools belong to: its messages are from it.
    pub task: Option<String>,
    /// The task's attempt's door for questions (a lead's `ask` tool).
    pub ask: Option<std::path::PathBuf>,
}

#[derive(Clone)]
pub struct BatonMcp {
    /// The repositories the tools reach (one, or a server's several).
    states: Arc<[Arc<AppState>]>,
    scope: Scope,
    tool_router: ToolRouter<BatonMcp>,
}

/// A tool's answer as the client sees it: JSON text, or a tool error.
fn reply(a: Answer) -> Result<String, String> {
    a.map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
}

#[tool_router]
impl BatonMcp {
    pub fn new(state: Arc<AppState>, scope: Scope) -> BatonMcp {
        BatonMcp::of(vec![state].into(), scope)
    }

    /// The tools of a server of `states`: each call names its repository
    /// (`repo`) when there are several.
    pub fn of(states: Arc<[Arc<AppState>]>, scope: Scope) -> BatonMcp {
        let mut tool_router = Self::tool_router();
        if scope.ask.is_none() {
            tool_router.remove_route("ask");
        }
        BatonMcp {
            states,
            scope,
            tool_router,
        }
    }

    /// A call's operations on the repository it names, and its own arguments.
    fn take<T>(&self, a: InRepo<T>) -> Result<(Ops, T), String> {
        let state = crate::repos::pick(&self.states, a.repo.as_deref())?.clone();
        let scope = self.scope.clone();
        Ok((Ops { state, scope }, a.args))
    }

    #[tool(description = ask::DESCRIPTION)]
    async fn ask(&self, Parameters(a): Parameters<ask::AskArg>) -> Result<String, String> {
        match &self.scope.ask {
            Some(socket) => ask::ask_through(socket, a).await,
            None => Err("these tools have nobody to ask".into()),
        }
    }

    #[tool(
        description = "Validate a plan (baton.toml text) as `baton check` does; answers its phases, or the errors with line numbers."
    )]
    async fn plan_check(
        &self,
        Parameters(a): Parameters<InRepo<PlanArg>>,
    ) -> Result<String, String> {
        let (ops, a) = self.take(a)?;
        reply(ops.plan_check(a).await)
    }

    #[tool(
        description = "Start a run: give `plan` (plan text), `path` (a plan file in the repository) or `tasks` (run with the repository's profiles). Every task gets its own git worktree and branch; independent tasks run in parallel. Answers the run id; `wait` follows it."
    )]
    async fn run_start(
        &self,
        Parameters(a): Parameters<InRepo<RunStartArg>>,
    ) -> Result<String, String> {
        let (ops, a) = self.take(a)?;
        reply(ops.run_start(a).await)
    }

    #[tool(
        description = "Add a task to a run going on (default: the latest run): its prompt, and optionally id, agent, needs, gates, retries, merge, context. It runs when what it needs has merged."
    )]
    async fn task_add(
        &self,
        Parameters(a): Parameters<InRepo<TaskAddArg>>,
    ) -> Result<String, String> {
        let (ops, a) = self.take(a)?;
        reply(ops.task_add(a).await)
    }

    #[tool(
        description = "A run's report: its status and each task's status, attempts, result, reason, usage and branch."
    )]
    async fn run_status(
        &self,
        Parameters(a): Parameters<InRepo<RunArg>>,
    ) -> Result<String, String> {
        let (ops, a) = self.take(a)?;
        reply(ops.run_status(a).await)
    }

    #[tool(
        description = "The end of what a task's agent and gates printed in its last attempt (`bytes`, default 16384)."
    )]
    async fn task_logs(
        &self,
        Parameters(a): Parameters<InRepo<LogsArg>>,
    ) -> Result<String, String> {
        let (ops, a) = self.take(a)?;
        reply(ops.task_logs(a).await)
    }

    #[tool(description = "What a task changed: the git diff from where it started to its branch.")]
    async fn task_diff(
        &self,
        Parameters(a): Parameters<InRepo<TaskRef>>,
    ) -> Result<String, String> {
        let (ops, a) = self.take(a)?;
        reply(ops.task_diff(a).await)
    }

    #[tool(
        description = "Stop a running task: its agent is killed and its work committed on its branch."
    )]
    async fn task_stop(
        &self,
        Parameters(a): Parameters<InRepo<TaskRef>>,
    ) -> Result<String, String> {
        let (ops, a) = self.take(a)?;
        reply(ops.control(a, ControlKind::Stop, None).await)
    }

    #[tool(
        description = "Tell a running task's agent something (`message`): Claude Code gets it at once as a new user turn; other agents in a new attempt with it as feedback."
    )]
    async fn task_steer(
        &self,
        Parameters(a): Parameters<InRepo<SteerArg>>,
    ) -> Result<String, String> {
        let (ops, a) = self.take(a)?;
        let task = TaskRef {
            run: a.run,
            task: a.task,
        };
        reply(ops.control(task, ControlKind::Steer, Some(a.message)).await)
    }

    #[tool(description = "Approve a task that waits for approval (approve = true): it is merged.")]
    async fn task_approve(
        &self,
        Parameters(a): Parameters<InRepo<TaskRef>>,
    ) -> Result<String, String> {
        let (ops, a) = self.take(a)?;
        reply(ops.control(a, ControlKind::Approve, None).await)
    }

    #[tool(
        description = "Make another candidate a race's winner while the race waits for approval (approve = true); then task_approve merges it. A race's report lists its candidates, their figures and why the winner won."
    )]
    async fn task_pick(
        &self,
        Parameters(a): Parameters<InRepo<PickArg>>,
    ) -> Result<String, String> {
        let (ops, a) = self.take(a)?;
        let task = TaskRef {
            run: a.run,
            task: a.task,
        };
        reply(
            ops.control(task, ControlKind::Pick, Some(a.candidate))
                .await,
        )
    }

    #[tool(
        description = "Run a task that failed, was stopped, conflicted or was skipped again (and what waits on it)."
    )]
    async fn task_retry(
        &self,
        Parameters(a): Parameters<InRepo<TaskRef>>,
    ) -> Result<String, String> {
        let (ops, a) = self.take(a)?;
        reply(ops.control(a, ControlKind::Retry, None).await)
    }

    #[tool(
        description = "Send a message to a task of the run (`to`, `text`): a running Claude Code gets it at once as a new user turn; other agents with their next attempt. It is in both tasks' transcripts. Senders are limited per minute and per run."
    )]
    async fn message_send(
        &self,
        Parameters(a): Parameters<InRepo<MessageSendArg>>,
    ) -> Result<String, String> {
        let (ops, a) = self.take(a)?;
        reply(ops.message_send(a).await)
    }

    #[tool(
        description = "The messages sent to a task (default: the task these tools belong to), oldest first; `after` (a message id) reads only newer ones."
    )]
    async fn message_read(
        &self,
        Parameters(a): Parameters<InRepo<MessageReadArg>>,
    ) -> Result<String, String> {
        let (ops, a) = self.take(a)?;
        reply(ops.message_read(a).await)
    }

    #[tool(
        description = "Everything that needs a person across runs: questions agents asked (answer them with inbox_answer), tasks waiting for approval, failed or conflicted tasks, rate-limit holds, pull requests baton stopped fixing. Each item: id, kind, run, task, text, options, since, actions."
    )]
    async fn inbox_list(&self, Parameters(a): Parameters<RepoArg>) -> Result<String, String> {
        if a.repo.is_none() && self.states.len() > 1 {
            return reply(self.inbox_of_all().await);
        }
        let (ops, ()) = self.take(InRepo {
            repo: a.repo,
            args: (),
        })?;
        reply(ops.inbox_list().await)
    }

    #[tool(
        description = "Answer a question an agent asked (`id` from inbox_list, `text`; a question with options takes one of them): the waiting task goes on with the answer."
    )]
    async fn inbox_answer(
        &self,
        Parameters(a): Parameters<InRepo<InboxAnswerArg>>,
    ) -> Result<String, String> {
        let (ops, a) = self.take(a)?;
        reply(ops.inbox_answer(a).await)
    }

    #[tool(
        description = "Wait until a task (`task`) or the whole run has finished, or `timeout_s` (default 600) passes; answers `done` and the run's report."
    )]
    async fn wait(&self, Parameters(a): Parameters<InRepo<WaitArg>>) -> Result<String, String> {
        let (ops, a) = self.take(a)?;
        reply(ops.wait(a).await)
    }
}

impl BatonMcp {
    /// Every repository's inbox in one list, each item with its `repo`.
    async fn inbox_of_all(&self) -> Result<serde_json::Value, String> {
        let mut all = Vec::new();
        for state in self.states.iter() {
            let name = state.opts.name.clone().unwrap_or_default();
            let ops = Ops {
                state: state.clone(),
                scope: self.scope.clone(),
            };
            let listed = ops.inbox_list().await?;
            for mut item in listed["items"].as_array().cloned().unwrap_or_default() {
                item["repo"] = serde_json::Value::String(name.clone());
                all.push(item);
            }
        }
        Ok(serde_json::json!({ "count": all.len(), "items": all }))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for BatonMcp {
    fn get_info(&self) -> ServerConfig {
        let mut about = String::from(
            "baton runs a team of coding agents on one git repository: each task in its own worktree and branch, independent tasks in parallel, each checked by its gates and merged through a queue into baton/<run>/integration. Start with run_start (or task_add to a run going on), follow with wait and run_status.",
        );
        if let Some(run) = &self.scope.run {
            about.push_str(&format!(" These tools act on run {run} only: add tasks to it with task_add, then wait for them and read their results with run_status."));
        }
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("baton", env!("CARGO_PKG_VERSION")))
            .with_instructions(about)
    }
}

/// Serves the tools on stdin/stdout until the client goes away.
pub async fn serve_stdio(state: Arc<AppState>, scope: Scope) -> Result<(), String> {
    on_stdio(BatonMcp::new(state, scope)).await
}

/// Serves `handler`'s tools on stdin/stdout until the client goes away.
async fn on_stdio<H: ServerHandler>(handler: H) -> Result<(), String> {
    let transport = stdio::bounded(tokio::io::stdin(), tokio::io::stdout());
    let service = handler
        .serve(transport)
        .await
        .map_err(|e| format!("MCP session did not start: {e}"))?;
    service
        .waiting()
        .await
        .map(|_| ())
        .map_err(|e| format!("MCP session ended with an error: {e}"))
}

/// Serves the tools on a Unix socket, one session per connection, until
/// `stop` resolves: a lead task's door. The scope is this process's (given
/// by baton when it started it), never the client's to change; the socket
/// is reached only from the lead's own sandbox.
pub async fn serve_socket(
    state: Arc<AppState>,
    scope: Scope,
    path: &std::path::Path,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let listener = tokio::net::UnixListener::bind(path)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    tokio::pin!(stop);
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            () = &mut stop => return Ok(()),
        };
        let (stream, _) = conn.map_err(|e| format!("{}: {e}", path.display()))?;
        let (state, scope) = (state.clone(), scope.clone());
        tokio::spawn(async move {
            match BatonMcp::new(state, scope).serve(stream).await {
                Ok(service) => {
                    if let Err(e) = service.waiting().await {
                        tracing::warn!("an MCP session on the lead's door ended: {e}");
                    }
                }
                Err(e) => tracing::warn!("an MCP session on the lead's door did not start: {e}"),
            }
        });
    }
}

/// The tools over streamable HTTP, for `/mcp` under `baton serve` (of
/// one repository or several).
pub fn http_service(
    states: Vec<Arc<AppState>>,
) -> rmcp::transport::streamable_http_server::StreamableHttpService<
    BatonMcp,
    rmcp::transport::streamable_http_server::session::local::LocalSessionManager,
> {
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };
    // The API's guard checks Host, Origin and the token before a request gets here.
    let config = StreamableHttpServerConfig::default().disable_allowed_hosts();
    StreamableHttpService::new(
        move || Ok(BatonMcp::of(states.clone().into(), Scope::default())),
        Default::default(),
        config,
    )
}
