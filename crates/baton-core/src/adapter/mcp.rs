//! An MCP server handed to an agent (a lead task gets baton's own tools).
//! Each adapter says in its own file how its CLI reads one (its
//! [`super::AdapterInfo::mcp`]): arguments, variables or a config file.

use std::ffi::OsString;
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

/// What a CLI is given so that it starts an MCP server: arguments (added
/// where the adapter puts them), variables, and files baton writes first.
#[derive(Debug, Default, Clone)]
pub struct McpWiring {
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    pub files: Vec<(PathBuf, String)>,
}

impl McpWiring {
    /// A config file the CLI is pointed to, by `flag` or by `var`.
    pub fn file(path: PathBuf, text: String, flag: Option<&str>, var: Option<&str>) -> McpWiring {
        let mut w = McpWiring::default();
        if let Some(flag) = flag {
            w.args = vec![flag.into(), path.clone().into()];
        }
        if let Some(var) = var {
            w.env = vec![(var.into(), path.clone().into())];
        }
        w.files = vec![(path, text)];
        w
    }
}

impl McpServer {
    /// The server's command line: program, then arguments.
    pub fn argv(&self) -> Vec<String> {
        std::iter::once(self.command.clone())
            .chain(self.args.iter().cloned())
            .collect()
    }

    /// The command line as a JSON array, for `BATON_MCP_COMMAND`.
    pub fn command_json(&self) -> String {
        serde_json::Value::from(self.argv()).to_string()
    }
}
