//! Plan validation and `baton check`: every kind of invalid plan exits 2
//! with where the problem is, and creates nothing.

use crate::common::*;
use baton_testutils::TestEnv;

fn assert_rejected(body: &str, expect: &[&str]) -> String {
    let env = TestEnv::new();
    write_plan(&env, body);
    for cmd in ["check", "run"] {
        let out = output(baton(&env).arg(cmd));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(2),
            "`baton {cmd}` should exit 2; stderr: {stderr}"
        );
        for e in expect {
            assert!(
                stderr.contains(e),
                "`baton {cmd}` error should contain {e:?}; got: {stderr}"
            );
        }
    }
    assert!(
        !env.repo.join(".git/baton").exists(),
        "an invalid plan must create nothing"
    );
    assert_eq!(
        env.git(&["branch", "--list", "baton/*"]),
        "",
        "an invalid plan must create no branch"
    );
    let out = output(baton(&env).arg("check"));
    redact(&env, &String::from_utf8_lossy(&out.stderr), None)
}

// The header written by write_plan is 7 lines; plan bodies start on line 8.

#[test]
fn toml_syntax_error_names_line_and_column() {
    assert_rejected(
        "[[task]]\nid = \"a\"\nprompt = \"x\n",
        &["baton.toml:10:", "string"],
    );
}

#[test]
fn unknown_field_is_an_error() {
    let msg = assert_rejected(
        "[[task]]\nid = \"a\"\nprompt = \"x\"\nretry = 2\n",
        &["baton.toml:11:1", "unknown field `retry`"],
    );
    assert!(
        msg.contains("retries"),
        "should list the expected fields: {msg}"
    );
}

#[test]
fn duplicate_id_points_at_the_second() {
    assert_rejected(
        "[[task]]\nid = \"a\"\nprompt = \"x\"\n\n[[task]]\nid = \"a\"\nprompt = \"y\"\n",
        &[
            "baton.toml:13:6",
            "task \"a\"",
            "duplicate task id (first defined on line 9)",
        ],
    );
}

#[test]
fn unknown_need_and_unknown_agent() {
    assert_rejected(
        "[[task]]\nid = \"a\"\nprompt = \"x\"\nneeds = [\"ghost\"]\nagent = \"nobody\"\n",
        &[
            "baton.toml:11:10",
            "needs unknown task \"ghost\"",
            "baton.toml:12:9",
            "unknown agent profile \"nobody\"",
        ],
    );
}

#[test]
fn cycle_is_printed_as_the_cycle() {
    let msg = assert_rejected(
        "[[task]]\nid = \"a\"\nprompt = \"x\"\nneeds = [\"c\"]\n\n[[task]]\nid = \"b\"\nprompt = \"x\"\nneeds = [\"a\"]\n\n[[task]]\nid = \"c\"\nprompt = \"x\"\nneeds = [\"b\"]\n",
        &["the tasks form a cycle:"],
    );
    insta::assert_snapshot!("cycle_error", msg);
}

#[test]
fn bad_duration_and_bad_regex() {
    assert_rejected(
        "[[task]]\nid = \"a\"\nprompt = \"x\"\ntimeout = \"10 minutes\"\nfail_if = \"CRIT(\"\n",
        &[
            "baton.toml:11:11",
            "timeout: bad duration",
            "baton.toml:12:11",
            "fail_if is not a valid regex",
        ],
    );
}

#[test]
fn missing_context_file() {
    assert_rejected(
        "[[task]]\nid = \"a\"\nprompt = \"x\"\ncontext = [\"docs/missing.md\"]\n",
        &[
            "baton.toml:11:12",
            "context file \"docs/missing.md\" does not exist",
        ],
    );
}

#[test]
fn template_reading_a_task_it_does_not_need() {
    assert_rejected(
        "[[task]]\nid = \"a\"\nprompt = \"x\"\n\n[[task]]\nid = \"b\"\nprompt = \"{{ tasks.a.result }}\"\n",
        &["task \"b\"", "prompt reads tasks.a, but the task does not need \"a\""],
    );
}

#[test]
fn bad_values_are_each_reported() {
    let msg = assert_rejected(
        "[run]\nmax_parallel = 0\n\n[[task]]\nid = \"bad id\"\nprompt = \"x\"\non_failure = \"explode\"\nretries = -1\n",
        &["4 problems", "max_parallel must be at least 1", "task ids may use only", "on_failure must be", "retries must be between"],
    );
    insta::assert_snapshot!("many_errors", msg);
}

#[test]
fn exec_profile_without_command_and_unknown_adapter() {
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        "[agent.a]\nadapter = \"exec\"\n\n[agent.b]\nadapter = \"cursor\"\ncommand = [\"x\"]\n\n[[task]]\nid = \"t\"\nagent = \"a\"\nprompt = \"x\"\n",
    );
    let out = output(baton(&env).arg("check"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("an exec profile needs `command`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("baton.toml:5:11") && stderr.contains("unknown adapter \"cursor\""),
        "{stderr}"
    );
}

#[test]
fn missing_plan_file_is_a_usage_error() {
    let env = TestEnv::new();
    let out = output(baton(&env).args(["run", "nope.toml"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no plan at nope.toml"));
}

#[test]
fn check_prints_the_dag_as_phases() {
    let env = TestEnv::new();
    write_plan(
        &env,
        r#"
[[task]]
id = "api"
prompt = "x"
gates = ["true"]
retries = 2

[[task]]
id = "ui"
prompt = "x"

[[task]]
id = "review"
needs = ["api", "ui"]
prompt = "{{ tasks.api.result }} {{ tasks.ui.result }}"
merge = false

[[task]]
id = "ship"
needs = ["review"]
prompt = "x"
approve = true
"#,
    );
    let out = output(baton(&env).arg("check"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    insta::assert_snapshot!("check_phases", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn the_agent_examples_are_valid_plans() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/agents");
    let env = TestEnv::new();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let out = output(baton(&env).arg("check").arg(&path));
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        n += 1;
    }
    assert!(n >= 1);
}

#[test]
fn doctor_says_which_profiles_can_start() {
    let env = TestEnv::new();
    write_plan(
        &env,
        "[agent.ghost]\nadapter = \"codex\"\ncommand = [\"/nonexistent/codex\"]\n\n[[task]]\nid = \"t\"\nprompt = \"x\"\n",
    );
    let out = output(baton(&env).arg("doctor"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("agent CLIs:"), "{text}");
    assert!(text.contains("fake [exec]: ok"), "{text}");
    assert!(
        text.contains("ghost [codex]: cannot start: \"/nonexistent/codex\" not found"),
        "{text}"
    );
}

#[test]
fn doctor_says_where_a_gateway_profile_goes_and_whether_it_has_a_key() {
    let env = TestEnv::new();
    let sh = std::process::Command::new("sh")
        .args(["-c", "command -v sh"])
        .output()
        .unwrap();
    let sh = String::from_utf8_lossy(&sh.stdout).trim().to_string();
    let plan = format!(
        r#"[gateway.providers.anthropic]
url = "https://proxy.example"
[gateway.accounts.vault]
key_command = "printf 'sk-%s' vault"
[gateway.accounts.broken]
key_command = "echo locked >&2; exit 4"

[agent.keyed]
adapter = "claude"
command = [{sh:?}]
gateway = true
env = {{ ANTHROPIC_API_KEY = "sk-ant-doctor-123" }}

[agent.keyless]
adapter = "gemini"
command = [{sh:?}]
gateway = true
env = {{ GOOGLE_GEMINI_BASE_URL = "http://127.0.0.1:9/v1beta" }}

[agent.login]
adapter = "gemini"
command = [{sh:?}]

[agent.off]
adapter = "claude"
command = [{sh:?}]
gateway = false
env = {{ ANTHROPIC_API_KEY = "sk-ant-doctor-123" }}

[agent.vaulted]
adapter = "codex"
command = [{sh:?}]
account = "vault"

[agent.locked]
adapter = "codex"
command = [{sh:?}]
account = "broken"

[[task]]
id = "t"
agent = "keyed"
prompt = "x"
"#
    );
    env.write("baton.toml", &plan);
    let out = output(
        baton(&env)
            .arg("doctor")
            .env_remove("GEMINI_API_KEY")
            .env_remove("GOOGLE_API_KEY"),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let says = |line: &str| assert!(text.contains(line), "{line:?} not in:\n{text}");
    says("gateway: anthropic at https://proxy.example, its key from the profile's env");
    says("gateway: gateway = true on profile \"keyless\": no key for gemini; set GEMINI_API_KEY or GOOGLE_API_KEY");
    says("gateway: not behind it, no key found (its CLI's own login is used)");
    says("gateway: not behind it (gateway = false)");
    says(
        r#"gateway: openai at https://api.openai.com, its key from [gateway.accounts.vault] key_command "printf 'sk-%s' vault""#,
    );
    says("but its key from [gateway.accounts.broken] key_command \"echo locked >&2; exit 4\" cannot be read: key_command \"echo locked >&2; exit 4\" failed (exit status: 4): locked");
    assert!(
        !text.contains("sk-vault"),
        "the key read is never shown: {text}"
    );
    assert!(!text.contains("sk-ant-doctor-123"), "{text}");
}

#[test]
fn a_gateway_section_that_cannot_work_is_refused_with_where() {
    assert_rejected(
        r#"[gateway]
listen = "localhost"
host = "http://me:80"
[gateway.providers.anthropic]
url = "ftp://proxy"
[gateway.providers.mistral]
url = "https://x"
[gateway.providers.gemini]
key_file = "k"
key_command = "pass show gemini"
[gateway.accounts.team]
rpm = 0
key_command = " "

[agent.tool]
adapter = "exec"
command = ["true"]
gateway = true

[[task]]
id = "t"
agent = "tool"
prompt = "x"
"#,
        &[
            "gateway.listen is an address and port",
            "gateway.host is the name (or address) pods reach this machine by",
            "gateway.providers.anthropic.url must be an http:// or https:// URL",
            "gateway.providers.mistral: no such provider (anthropic, openai, gemini)",
            "gateway.providers.gemini: key_file and key_command both name its key; keep one",
            "gateway.accounts.team.rpm must be at least 1, not 0",
            "gateway.accounts.team.key_command is empty",
            "gateway = true: the gateway stands in front of the claude, codex, gemini, aider and opencode adapters, not \"exec\"",
        ],
    );
}

#[test]
fn plans_that_would_fail_at_run_fail_at_check() {
    let long_id = "t".repeat(251);
    assert_rejected(
        &format!(
            r#"[[task]]
id = "{long_id}"
prompt = "say long"

[[task]]
id = "nul"
prompt = "say a\u0000b"

[[task]]
id = "matches-all"
prompt = "say x"
fail_if = ""

[[task]]
id = "creds"
prompt = "say x"
context = [".git/config"]

[[task]]
id = "forever"
prompt = "say x"
timeout = "100000h"
"#
        ),
        &[
            "baton.toml:9:6: task id of 251 characters: at most 128",
            "baton.toml:14:10: task \"nul\": `prompt` contains a NUL byte",
            "baton.toml:19:11: task \"matches-all\": fail_if is empty",
            "baton.toml:24:12: task \"creds\": context file \".git/config\" is inside .git",
            "baton.toml:29:11: task \"forever\": timeout \"100000h\" is longer than 7 days",
        ],
    );
}

#[test]
fn worktrees_in_the_working_tree_or_nowhere_are_refused_at_check() {
    for (dir, expect) in [
        (".", "is inside the working tree"),
        ("", "empty: name a directory"),
        ("src/wt", "is inside the working tree"),
        ("/", "the filesystem root"),
        ("/proc/baton", "no directory can be made in /proc"),
        ("/dev/null/wt", "/dev/null is a file, not a directory"),
    ] {
        assert_rejected(
            &format!("[run]\nworktrees = {dir:?}\n\n[[task]]\nid = \"t\"\nprompt = \"say x\"\n"),
            &["baton.toml:9:13: run.worktrees: ", expect],
        );
    }
}

#[test]
fn a_base_that_names_no_commit_is_a_plan_error_and_creates_nothing() {
    assert_rejected(
        "[run]\nbase = \"no-such-branch\"\n\n[[task]]\nid = \"t\"\nprompt = \"say x\"\n",
        &["baton.toml:9:8: run.base \"no-such-branch\" names no commit"],
    );
}

#[test]
fn an_exec_prompt_too_long_for_one_argument_is_refused_at_check() {
    let env = TestEnv::new();
    env.write("big.md", &"x".repeat(200 * 1024));
    env.commit_all("big context");
    write_plan(
        &env,
        "[[task]]\nid = \"t\"\nprompt = \"say hi\"\ncontext = [\"big.md\"]\n",
    );
    let out = output(baton(&env).arg("check"));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains(
            "baton.toml:10:10: task \"t\": the prompt (with its context files) is 200 KiB"
        ),
        "{said}"
    );
}

/// Every whole plan in docs/ (a ```toml block with its profiles and
/// tasks; the others are excerpts) passes `baton check`: the workflows the
/// docs teach, such as the review workflow of docs/ci.md, are ones baton
/// takes.
#[test]
fn the_plans_in_the_docs_are_valid() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let mut checked = 0;
    let mut bad = Vec::new();
    let mut pages: Vec<_> = std::fs::read_dir(&docs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    for page in pages {
        let text = std::fs::read_to_string(&page).unwrap();
        for (i, block) in text.split("```toml\n").skip(1).enumerate() {
            let plan = block.split("```").next().unwrap();
            if !(plan.contains("[[task]]") && plan.contains("[agent.")) {
                continue;
            }
            let env = TestEnv::new();
            env.write("baton.toml", plan);
            let out = output(baton(&env).arg("check"));
            checked += 1;
            if !out.status.success() {
                bad.push(format!(
                    "{} block {}: {}",
                    page.file_name().unwrap().to_string_lossy(),
                    i + 1,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    assert!(checked >= 3, "only {checked} plans found in docs/");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn executor_mistakes_are_plan_errors() {
    // A cluster without its image.
    assert_rejected(
        "[executor]\nkind = \"kubernetes\"\n\n[[task]]\nid = \"a\"\nprompt = \"x\"\n",
        &["executor \"kubernetes\" needs `image`"],
    );
    // A profile sent to a cluster the plan does not describe, an unknown
    // executor, a bad quantity, a relative mount.
    assert_rejected(
        "[agent.far]\nadapter = \"exec\"\ncommand = [\"true\"]\nexecutor = \"k8s\"\n\n[[task]]\nid = \"a\"\nprompt = \"x\"\n",
        &["needs the cluster described in [executor]"],
    );
    assert_rejected(
        "[executor]\nkind = \"nomad\"\n\n[[task]]\nid = \"a\"\nprompt = \"x\"\n",
        &["executor.kind must be \"local\", \"kubernetes\" or \"ssh\", not \"nomad\""],
    );
    // SSH hosts: none listed, a bad one, a name twice, labels no host
    // carries, and hosts with a cluster.
    assert_rejected(
        "[executor]\nkind = \"ssh\"\n\n[[task]]\nid = \"a\"\nprompt = \"x\"\n",
        &["executor \"ssh\" needs `hosts`"],
    );
    assert_rejected(
        "[executor]\nkind = \"ssh\"\nhosts = [\"box:http\", { host = \"a\", slots = 0 }, \"b\", \"b\"]\n\n[[task]]\nid = \"a\"\nprompt = \"x\"\n",
        &[
            "executor.hosts[0]: \"http\" is not a port",
            "executor.hosts[1]: slots is from 1 to 256, not 0",
            "\"b\" is named twice",
        ],
    );
    assert_rejected(
        "[executor]\nkind = \"ssh\"\nhosts = [{ host = \"a\", labels = [\"mac\"] }]\n\n[agent.far]\nadapter = \"exec\"\ncommand = [\"true\"]\nhost_labels = [\"gpu\"]\n\n[[task]]\nid = \"a\"\nagent = \"far\"\nprompt = \"x\"\n",
        &["no host in [executor] hosts carries every one of host_labels [\"gpu\"]"],
    );
    assert_rejected(
        "[executor]\nkind = \"ssh\"\nhosts = [\"a\"]\nimage = \"i\"\n\n[[task]]\nid = \"a\"\nprompt = \"x\"\n",
        &["either SSH hosts (`hosts`) or a cluster (`image`), not both"],
    );
    assert_rejected(
        "[executor]\nkind = \"kubernetes\"\nimage = \"i\"\ncpu = \"two\"\nmounts = [\"opt\"]\n\n[[task]]\nid = \"a\"\nprompt = \"x\"\n",
        &["executor.cpu \"two\" is not a Kubernetes quantity", "executor.mounts \"opt\": name absolute paths"],
    );
    // Warm pods: how many, and reuse only with them (and not on hosts).
    assert_rejected(
        "[executor]\nkind = \"kubernetes\"\nimage = \"i\"\nwarm = 65\nreuse = true\n\n[[task]]\nid = \"a\"\nprompt = \"x\"\n",
        &[
            "executor.warm is from 0 to 64, not 65",
            "executor.reuse hands a warm pod the run's next attempt: set warm = N too",
        ],
    );
    assert_rejected(
        "[executor]\nkind = \"ssh\"\nhosts = [\"a\"]\nreuse = true\n\n[[task]]\nid = \"a\"\nprompt = \"x\"\n",
        &["executor.reuse is for warm pods on a cluster"],
    );
    // A lead task changes the run through its tools: it stays here.
    assert_rejected(
        "[executor]\nkind = \"kubernetes\"\nimage = \"i\"\n\n[[task]]\nid = \"a\"\nprompt = \"x\"\nlead = true\n",
        &["a lead task runs on this machine"],
    );
}

#[test]
fn a_plan_can_keep_some_profiles_local_and_send_others_to_a_cluster() {
    let env = TestEnv::new();
    write_plan(
        &env,
        "[executor]\nimage = \"baton.local/debian:bookworm\"\n\n[agent.far]\nadapter = \"exec\"\ncommand = [\"true\"]\nexecutor = \"kubernetes\"\n\n[[task]]\nid = \"a\"\nprompt = \"x\"\n\n[[task]]\nid = \"b\"\nagent = \"far\"\nprompt = \"x\"\n",
    );
    let out = output(baton(&env).arg("check"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
