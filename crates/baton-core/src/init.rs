//! `baton init`: a first plan for a repository, written for a person to
//! read: a profile for each agent CLI found, one example task whose gate is
//! the project's own test command, and the common settings commented out.

use std::path::Path;

/// The kind of project a repository holds, by the files at its root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Project {
    Cargo,
    Npm,
    Python,
    Go,
    Make,
    Unknown,
}

impl Project {
    /// Looks at the repository's top level (the first match wins).
    pub fn detect(root: &Path) -> Project {
        let has = |f: &str| root.join(f).exists();
        if has("Cargo.toml") {
            Project::Cargo
        } else if has("package.json") {
            Project::Npm
        } else if ["pyproject.toml", "setup.py", "pytest.ini", "setup.cfg"]
            .iter()
            .any(|f| has(f))
        {
            Project::Python
        } else if has("go.mod") {
            Project::Go
        } else if has("Makefile") {
            Project::Make
        } else {
            Project::Unknown
        }
    }

    /// The command that tells whether the project still works.
    pub fn test_command(self) -> Option<&'static str> {
        match self {
            Project::Cargo => Some("cargo test"),
            Project::Npm => Some("npm test"),
            Project::Python => Some("python3 -m pytest -q"),
            Project::Go => Some("go test ./..."),
            Project::Make => Some("make test"),
            Project::Unknown => None,
        }
    }

    /// What a new worktree needs before an agent can run the tests.
    fn setup(self) -> Option<&'static str> {
        match self {
            Project::Npm => Some("npm ci"),
            Project::Python => Some(
                "python3 -m venv .venv && .venv/bin/python -m pip install -q -r requirements.txt",
            ),
            Project::Cargo => Some("cargo fetch"),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Project::Cargo => "Rust (cargo)",
            Project::Npm => "Node (npm)",
            Project::Python => "Python",
            Project::Go => "Go",
            Project::Make => "make",
            Project::Unknown => "unknown",
        }
    }
}

/// The plan text: `agents` are the adapters whose CLI is installed, in
/// the registry's order (the first is the default); none found: a shell
/// profile does the example.
pub fn plan_text(agents: &[&str], project: Project) -> String {
    let default = agents.first().copied().unwrap_or("sh");
    let mut out = String::from(
        "# baton.toml: a plan of tasks for agents, each in its own worktree and branch.\n\
         # Check it with `baton check`, run it with `baton run`; every field is in\n\
         # docs/plan-reference.md.\n\n\
         [run]\n\
         max_parallel = 3          # tasks at once\n\
         # verify = [\"...\"]        # checks on the merged whole, before the integration branch moves\n\
         # budget_usd = 5.0\n\n",
    );
    for a in agents {
        out.push_str(&format!("[agent.{a}]\nadapter = \"{a}\"\n"));
        if let Some(model) = crate::adapter::find(a).and_then(|i| i.needs_model) {
            out.push_str(&format!("# model = \"{model}\"  # {a} needs a model\n"));
        }
        out.push('\n');
    }
    out.push_str(
        "[agent.sh]                # any command: the prompt is its last argument\n\
         adapter = \"exec\"\n\
         command = [\"bash\", \"-ec\"]\n\n",
    );
    out.push_str("[workspace]\n");
    let setup = project.setup().unwrap_or("...");
    out.push_str(&format!(
        "# setup = [{setup:?}]   # once per new worktree (install dependencies)\n"
    ));
    out.push_str("# copy = [\".env\"]           # ignored files copied from your checkout\n");
    out.push_str("# ports = 1                # BATON_PORT for each running task\n\n");
    out.push_str(&format!(
        "[defaults]\nagent = \"{default}\"\nretries = 1\n\n"
    ));
    let (prompt, gate) = match (agents.is_empty(), project.test_command()) {
        (true, _) => (
            "echo 'hello from baton' > HELLO.txt".to_string(),
            Some("test -s HELLO.txt".to_string()),
        ),
        (false, Some(test)) => (
            format!("Find one small thing in this {} project that its tests do not cover, and add a test for it. Keep the change small.", project.name()),
            Some(test.to_string()),
        ),
        (false, None) => (
            "Read the README and fix one unclear sentence. Keep the change small.".to_string(),
            None,
        ),
    };
    out.push_str(&format!("[[task]]\nid = \"first\"\nprompt = {prompt:?}\n"));
    if let Some(g) = gate {
        out.push_str(&format!(
            "gates = [{g:?}]          # must pass before the work is merged\n"
        ));
    }
    out.push_str(
        "\n# [[task]]\n# id = \"second\"\n# needs = [\"first\"]       # starts once first is merged\n# prompt = \"Document what {{ tasks.first.result }} changed.\"\n",
    );
    out
}

/// The user config's text (`baton init --user`): a profile for each agent
/// CLI installed, the first as the default agent, and the other sections
/// commented out. No secret goes in it: profiles name where a key comes from.
pub fn user_text(agents: &[&str]) -> String {
    let mut out = String::from(
        "# baton's user config: profiles, defaults, prices and notifications every\n\
         # plan sees. A plan's own [agent.NAME] replaces the one of the same name\n\
         # here; `baton check` says where each profile came from. Keep keys out of\n\
         # this file: profiles read them from the environment, or from a command\n\
         # (see docs/user-config.md).\n\n",
    );
    for a in agents {
        out.push_str(&format!("[agent.{a}]\nadapter = \"{a}\"\n"));
        if let Some(model) = crate::adapter::find(a).and_then(|i| i.needs_model) {
            out.push_str(&format!("model = \"{model}\"\n"));
        }
        out.push('\n');
    }
    match agents.first() {
        Some(first) => out.push_str(&format!("[defaults]\nagent = \"{first}\"\n")),
        None => out.push_str("# [defaults]\n# agent = \"claude\"\n"),
    }
    out.push_str(
        "# timeout = \"30m\"\n# retries = 1\n\n\
         # [prices.\"my-model\"]      # USD per million tokens, for models baton has no price for\n\
         # input = 1.0\n# output = 4.0\n\n\
         # [notify]                 # where `baton serve` tells you what needs you\n\
         # ntfy = \"https://ntfy.sh/your-topic\"\n\
         # ntfy_token_env = \"NTFY_TOKEN\"\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_user_config_init_writes_is_valid() {
        for agents in [
            &[][..],
            &["claude"],
            &["claude", "codex", "gemini", "opencode", "aider"],
        ] {
            let text = user_text(agents);
            let user = crate::plan::UserConfig::parse(Path::new("config.toml"), &text)
                .unwrap_or_else(|e| panic!("{agents:?}: {e}\n{text}"));
            let mut want = agents.to_vec();
            want.sort();
            assert_eq!(user.profiles(), want);
            let plan = user.compose("[[task]]\nid = \"a\"\nprompt = \"x\"\nagent = \"sh\"\n[agent.sh]\nadapter = \"exec\"\ncommand = [\"true\"]\n");
            let plan = crate::plan::Plan::parse(Path::new("baton.toml"), &plan, None)
                .unwrap_or_else(|e| panic!("{agents:?}: {e}"));
            assert_eq!(plan.agents.len(), agents.len() + 1);
        }
    }

    #[test]
    fn every_plan_init_writes_is_valid() {
        let projects = [
            Project::Cargo,
            Project::Npm,
            Project::Python,
            Project::Go,
            Project::Make,
            Project::Unknown,
        ];
        let agent_sets: [&[&str]; 3] = [
            &[],
            &["claude"],
            &["claude", "codex", "gemini", "opencode", "aider"],
        ];
        for p in projects {
            for agents in agent_sets {
                let text = plan_text(agents, p);
                let plan = crate::plan::Plan::parse(Path::new("baton.toml"), &text, None)
                    .unwrap_or_else(|e| panic!("{p:?} {agents:?}: {e}\n{text}"));
                assert_eq!(plan.tasks.len(), 1);
                assert_eq!(plan.tasks[0].agent, agents.first().copied().unwrap_or("sh"));
                assert_eq!(
                    plan.tasks[0].gates.first().map(String::as_str).is_some(),
                    p.test_command().is_some() || agents.is_empty()
                );
            }
        }
    }
}
