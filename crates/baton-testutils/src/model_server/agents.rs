//! How to point each real agent CLI at the model server hermetically, and
//! the headless command line verified for each (versions pinned in
//! scripts/install-agents.sh).
//!
//! Run the CLI with the returned environment on top of a cleared one (keep
//! PATH, which must reach `node` and `git`, and LANG), stdin from
//! /dev/null, cwd in the git repository, in its own process group under a
//! timeout. Each CLI then connects only to the server (checked with strace).
//!
//! What was observed per CLI (usage with the server's 100/20 tokens per
//! model response; "400" is a script step `HttpError(400)`):
//!
//! | CLI | success | usage | on 400 | on 5xx | on Hang |
//! |---|---|---|---|---|---|
//! | claude | exit 0, last line `result` | `result.usage`, `modelUsage` | exit 1, `result` with `is_error`, `api_error_status: 400` | `system/api_retry` x2, then as 400; exit 1 | waits |
//! | codex | exit 0, `turn.completed` | `turn.completed.usage` | exit 1, `error` then `turn.failed` | `error` "Reconnecting... 1/1", then `turn.failed`; exit 1 | waits |
//! | gemini | exit 0, `result` status success | `result.stats` | exit 144, `result` status error | 2 attempts, exit 244 | waits |
//! | opencode | exit 0, last `step_finish` reason stop | `step_finish.part.tokens` per step | exit 1, one `error` line | retries about 78 s, then exit 1 | waits |
//! | aider | exit 0, "Applied edit to F" | "Tokens: 100 sent, 20 received." | exit 0 (!), prints `litellm.BadRequestError` | retries about 80 s, exit 0 | waits |

use std::path::{Path, PathBuf};

/// The CLIs [`agent_env`] and [`agent_args`] know.
pub const AGENTS: &[&str] = &["claude", "codex", "gemini", "opencode", "aider"];

/// The fake API key every CLI is given.
const KEY: &str = "mock-key";
/// The model every CLI is told to use. Codex needs a slug it knows to offer
/// `apply_patch`; the others pass any name through.
const CODEX_MODEL: &str = "gpt-5.5";
const GEMINI_MODEL: &str = "gemini-2.5-flash";
const MODEL: &str = "mock-model";

/// The installed binary of `agent`, where scripts/install-agents.sh puts
/// it: `$BATON_AGENTS_DIR/bin`, default `${XDG_CACHE_HOME:-$HOME/.cache}/baton/agents/bin`.
/// None when it is not there.
pub fn agent_bin(agent: &str) -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let dir = var("BATON_AGENTS_DIR").or_else(|| {
        let cache = var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache")))?;
        Some(cache.join("baton/agents"))
    })?;
    Some(dir.join("bin").join(agent)).filter(|p| p.exists())
}

/// A baton profile (`[agent.NAME]`, then a blank line) that runs `agent`'s
/// CLI `bin` against the server at `url` hermetically: [`agent_env`] with
/// `home` as its home (given a git identity: aider writes one into the
/// repository's config when it finds none, which a sandbox refuses) and
/// `more_env` on top; `more` (TOML lines) before its `env`. Panics when
/// `home` cannot be written (test setup).
pub fn baton_profile(
    name: &str,
    agent: &str,
    bin: &Path,
    url: &str,
    home: &Path,
    more_env: &[(&str, &str)],
    more: &str,
) -> String {
    std::fs::create_dir_all(home).expect("create the agent's home");
    let gitconfig = home.join(".gitconfig");
    std::fs::write(
        &gitconfig,
        "[user]\n\tname = Test Author\n\temail = author@example.com\n",
    )
    .expect("write the agent's git identity");
    let mut env = agent_env(agent, url, home);
    env.push(("GIT_CONFIG_GLOBAL".into(), gitconfig.display().to_string()));
    env.retain(|(k, _)| !more_env.iter().any(|(m, _)| m == k));
    env.extend(more_env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    // A JSON string is a TOML basic string too (the same escapes).
    let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    let vars: Vec<String> = env.iter().map(|(k, v)| format!("{k} = {}", q(v))).collect();
    let model = match agent {
        "aider" => "model = \"openai/mock-model\"\n",
        "gemini" => "model = \"gemini-2.5-flash\"\n",
        _ => "",
    };
    format!(
        "[agent.{name}]\nadapter = \"{agent}\"\ncommand = [{}]\n{model}{more}env = {{ {} }}\n\n",
        q(&bin.display().to_string()),
        vars.join(", ")
    )
}

/// Environment for `agent` talking only to the server at `url`, with `home`
/// as its private home (config files it needs are written there). Panics
/// on an unknown agent or when `home` cannot be written (test setup).
pub fn agent_env(agent: &str, url: &str, home: &Path) -> Vec<(String, String)> {
    let h = |rel: &str| home.join(rel).display().to_string();
    let mut env: Vec<(&str, String)> = vec![
        ("HOME", home.display().to_string()),
        ("XDG_CONFIG_HOME", h(".config")),
        ("XDG_DATA_HOME", h(".local/share")),
        ("XDG_CACHE_HOME", h(".cache")),
        ("XDG_STATE_HOME", h(".local/state")),
        ("NO_COLOR", "1".into()),
        // Their temporary files stay in `home`: opencode unpacks a ~5 MB
        // `.so` on each run and leaves it, Gemini writes error reports,
        // Claude and Codex keep per-user directories there.
        ("TMPDIR", mkdir(home, "tmp")),
    ];
    match agent {
        "claude" => env.extend([
            ("ANTHROPIC_BASE_URL", url.to_string()),
            ("ANTHROPIC_API_KEY", KEY.into()),
            ("CLAUDE_CONFIG_DIR", h(".claude")),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
            ("DISABLE_AUTOUPDATER", "1".into()),
            ("DISABLE_TELEMETRY", "1".into()),
            ("DISABLE_ERROR_REPORTING", "1".into()),
            // Needed for bypassPermissions when running as root.
            ("IS_SANDBOX", "1".into()),
            // 10 retries by default (minutes of backoff on a 5xx); 2 keep
            // the `api_retry` events and fail in about 2 s.
            ("CLAUDE_CODE_MAX_RETRIES", "2".into()),
        ]),
        "codex" => {
            write(home, ".codex/config.toml", &codex_config(url));
            env.extend([("CODEX_HOME", h(".codex")), ("MOCK_API_KEY", KEY.into())]);
        }
        "gemini" => {
            write(home, ".gemini/settings.json", &gemini_settings());
            env.extend([
                ("GOOGLE_GEMINI_BASE_URL", url.to_string()),
                ("GEMINI_API_KEY", KEY.into()),
                ("GEMINI_CLI_TRUST_WORKSPACE", "true".into()),
                // Without it the CLI relaunches itself as a child that does
                // not get SIGINT/SIGTERM.
                ("GEMINI_CLI_NO_RELAUNCH", "true".into()),
                ("GEMINI_TELEMETRY_ENABLED", "false".into()),
            ]);
        }
        "opencode" => {
            // On every start opencode installs `@opencode-ai/plugin` from
            // the npm registry into its config dir (for local plugins, none
            // here) unless node_modules exists and package-lock.json lists
            // it; this stub satisfies that check, so nothing is fetched.
            mkdir(home, ".config/opencode/node_modules");
            write(home, ".config/opencode/package-lock.json", OPENCODE_LOCK);
            env.extend([
                ("OPENCODE_CONFIG_CONTENT", opencode_config(url)),
                ("OPENCODE_DISABLE_MODELS_FETCH", "true".into()),
                ("OPENCODE_DISABLE_AUTOUPDATE", "true".into()),
                ("OPENCODE_DISABLE_LSP_DOWNLOAD", "true".into()),
                ("OPENCODE_DISABLE_SHARE", "true".into()),
                ("OPENCODE_DISABLE_DEFAULT_PLUGINS", "true".into()),
                ("OPENCODE_DISABLE_CLAUDE_CODE", "true".into()),
            ]);
        }
        "aider" => {
            // aider fetches litellm's model list from GitHub unless its
            // cache (fresh for 24 hours) holds something; seeding it with
            // the mock model also gives aider a context size and zero cost.
            write(
                home,
                ".aider/caches/model_prices_and_context_window.json",
                &aider_models(),
            );
            env.extend([
                ("OPENAI_API_BASE", format!("{url}/v1")),
                ("OPENAI_API_KEY", KEY.into()),
                ("AIDER_ANALYTICS", "false".into()),
                ("AIDER_CHECK_UPDATE", "false".into()),
                ("AIDER_SHOW_MODEL_WARNINGS", "false".into()),
                // Otherwise aider adds `.aider*` to the repository's .gitignore.
                ("AIDER_GITIGNORE", "false".into()),
                // Keep aider's files out of the worktree: histories go to
                // home, and no repo map (whose tag cache lives in the repo).
                ("AIDER_CHAT_HISTORY_FILE", h(".aider.chat.history.md")),
                ("AIDER_INPUT_HISTORY_FILE", h(".aider.input.history")),
                ("AIDER_MAP_TOKENS", "0".into()),
                // aider commits a dirty file before editing it even with
                // --no-auto-commits; baton owns the worktree's history.
                ("AIDER_DIRTY_COMMITS", "false".into()),
                ("AIDER_SHOW_RELEASE_NOTES", "false".into()),
                // litellm's own copy of the price list, also from GitHub.
                ("LITELLM_LOCAL_MODEL_COST_MAP", "True".into()),
            ]);
        }
        other => panic!("agent_env: unknown agent {other:?} (known: {AGENTS:?})"),
    }
    env.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The headless command line (arguments after the binary) that runs
/// `prompt` to completion with machine-readable output where the CLI has it.
pub fn agent_args(agent: &str, prompt: &str) -> Vec<String> {
    let args: Vec<&str> = match agent {
        "claude" => vec![
            "-p",
            prompt,
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            "bypassPermissions",
        ],
        "codex" => vec!["exec", "--json", prompt],
        "gemini" => vec!["-p", prompt, "--output-format", "stream-json", "--yolo"],
        "opencode" => vec!["run", "--format", "json", prompt],
        "aider" => vec![
            "--model",
            "openai/mock-model",
            "--message",
            prompt,
            "--yes-always",
            "--no-pretty",
            "--no-stream",
            "--no-auto-commits",
        ],
        other => panic!("agent_args: unknown agent {other:?} (known: {AGENTS:?})"),
    };
    args.into_iter().map(String::from).collect()
}

fn mkdir(home: &Path, rel: &str) -> String {
    let dir = home.join(rel);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    dir.display().to_string()
}

fn write(home: &Path, rel: &str, text: &str) {
    let path = home.join(rel);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    }
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn codex_config(url: &str) -> String {
    format!(
        r#"model = "{CODEX_MODEL}"
model_provider = "mock"
approval_policy = "never"
sandbox_mode = "workspace-write"
check_for_update_on_startup = false

[model_providers.mock]
name = "mock"
base_url = "{url}/v1"
env_key = "MOCK_API_KEY"
wire_api = "responses"
# Defaults (4 and 5, multiplied) retry a 5xx for about 25 s.
request_max_retries = 1
stream_max_retries = 1

[analytics]
enabled = false

[features]
plugins = false
"#
    )
}

fn gemini_settings() -> String {
    serde_json::json!({
        "general": {
            "enableAutoUpdate": false,
            "enableAutoUpdateNotification": false,
            // 10 attempts by default, from 5 s apart: minutes on a 5xx.
            "maxAttempts": 2,
        },
        "privacy": {"usageStatisticsEnabled": false},
        "telemetry": {"enabled": false},
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "model": {"name": GEMINI_MODEL},
    })
    .to_string()
}

fn aider_models() -> String {
    let info = serde_json::json!({
        "max_input_tokens": 128000, "max_output_tokens": 8192, "max_tokens": 8192,
        "input_cost_per_token": 0.0, "output_cost_per_token": 0.0,
        "litellm_provider": "openai", "mode": "chat",
    });
    serde_json::json!({ MODEL: info, format!("openai/{MODEL}"): info }).to_string()
}

/// A package-lock.json that says `@opencode-ai/plugin` is installed.
const OPENCODE_LOCK: &str =
    r#"{"lockfileVersion": 3, "packages": {"": {"dependencies": {"@opencode-ai/plugin": "*"}}}}"#;

fn opencode_config(url: &str) -> String {
    serde_json::json!({
        "model": format!("mock/{MODEL}"),
        "small_model": format!("mock/{MODEL}"),
        "autoupdate": false,
        "share": "disabled",
        "provider": {"mock": {
            "npm": "@ai-sdk/openai-compatible",
            "name": "Mock",
            "options": {"baseURL": format!("{url}/v1"), "apiKey": KEY},
            "models": {MODEL: {"name": "Mock model", "tool_call": true}},
        }},
    })
    .to_string()
}
