//! An MCP server handed to an agent (a lead task gets baton's own tools),
//! in the form each CLI reads: Claude Code `--mcp-config`, Codex `-c
//! mcp_servers.*`, Gemini CLI a settings file, opencode a config file, an
//! `exec` agent the command line in `BATON_MCP_COMMAND`.

use serde_json::json;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct McpServer {
    /// The name tools are namespaced under (`mcp__<name>__<tool>` for Claude).
    pub name: String,
    pub command: String,
    pub args: Vec<String>,
    /// A directory of the attempt's own where config files may be written.
    pub config_dir: PathBuf,
}

impl McpServer {
    fn argv(&self) -> Vec<String> {
        std::iter::once(self.command.clone())
            .chain(self.args.iter().cloned())
            .collect()
    }

    /// Claude Code's `--mcp-config` file.
    pub fn claude_config(&self) -> (PathBuf, String) {
        let doc = json!({ "mcpServers": { &self.name: {
            "type": "stdio", "command": self.command, "args": self.args,
        }}});
        (self.config_dir.join("claude-mcp.json"), doc.to_string())
    }

    /// Codex `-c key=value` overrides (values in TOML).
    pub fn codex_overrides(&self) -> Vec<String> {
        let toml_str = |s: &str| toml::Value::String(s.to_string()).to_string();
        let args: Vec<String> = self.args.iter().map(|a| toml_str(a)).collect();
        let key = format!("mcp_servers.{}", self.name);
        vec![
            format!("{key}.command={}", toml_str(&self.command)),
            format!("{key}.args=[{}]", args.join(",")),
            // Without it a headless Codex refuses every MCP call.
            format!("{key}.default_tools_approval_mode=\"approve\""),
        ]
    }

    /// Gemini CLI's settings, read from `GEMINI_CLI_SYSTEM_SETTINGS_PATH`.
    pub fn gemini_settings(&self) -> (PathBuf, String) {
        let doc = json!({ "mcpServers": { &self.name: {
            "command": self.command, "args": self.args,
        }}});
        (
            self.config_dir.join("gemini-settings.json"),
            doc.to_string(),
        )
    }

    /// opencode's config, read from `OPENCODE_CONFIG`.
    pub fn opencode_config(&self) -> (PathBuf, String) {
        let doc = json!({ "mcp": { &self.name: {
            "type": "local", "command": self.argv(), "enabled": true,
        }}});
        (self.config_dir.join("opencode.json"), doc.to_string())
    }

    /// The command line as a JSON array, for `BATON_MCP_COMMAND`.
    pub fn command_json(&self) -> String {
        serde_json::Value::from(self.argv()).to_string()
    }
}
