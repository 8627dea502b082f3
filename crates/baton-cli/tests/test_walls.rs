//! The walls, tried as an attacker would: sandboxed exec agents (bash
//! scripts) attack baton's own git, the shared repository, the checks that
//! run their code and the files baton copies; every result is checked from
//! outside the sandbox.

use crate::common::*;
use baton_testutils::TestEnv;
use std::process::Command;

/// A plan whose agent is bash under bubblewrap; `REPO` and `MARK` (a path
/// on the host where code that escaped would leave a mark) in its env.
fn sandboxed(env: &TestEnv, extra: &str, body: &str) {
    env.write(
        "baton.toml",
        &format!(
            "[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-c\"]\nsandbox = \"bwrap\"\n{extra}env = {{ REPO = {:?}, MARK = {:?} }}\n\n[defaults]\nagent = \"sh\"\n{body}",
            env.repo.display().to_string(),
            env.scratch("mark").display().to_string(),
        ),
    );
    env.commit_all("plan");
}

/// Marks left on the host by code that ran outside a sandbox.
fn marks(env: &TestEnv) -> Vec<String> {
    std::fs::read_dir(env.root())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("mark"))
        .collect()
}

/// `try 'command' name`: records in probe.txt whether the command worked.
const TRY: &str = r#"try() { if ( eval "$1" ) >/dev/null 2>&1; then echo "$2: wrote" >> probe.txt; else echo "$2: refused" >> probe.txt; fi; }
"#;

#[test]
fn an_agents_git_config_hooks_and_dot_git_never_run_outside_its_sandbox() {
    let env = TestEnv::new();
    let attack = format!(
        r##"{TRY}
mkdir -p .hooks
printf '#!/bin/sh\necho "$0" >> "$MARK-hook" 2>/dev/null\nexit 0\n' > .hooks/pre-commit
cp .hooks/pre-commit .hooks/post-commit
printf '#!/bin/sh\necho fsmonitor >> "$MARK-fsmonitor" 2>/dev/null\nexit 0\n' > .hooks/fsmon
chmod +x .hooks/*
git config core.hooksPath "$PWD/.hooks"
git config core.fsmonitor "$PWD/.hooks/fsmon"
git config --worktree core.hooksPath "$PWD/.hooks" || true
# A nested repository whose own config names a command.
mkdir sub && (cd sub && git init -q && git config core.fsmonitor "$PWD/../.hooks/fsmon" && echo x > f && git add f && git -c core.hooksPath=/dev/null commit -qm sub)
git add -A && git commit -qm "agent's own commit"
try 'rm -f .git' dotgit-remove
try 'printf "gitdir: %s\n" "$REPO/.git" > .git' dotgit-rewrite
try 'for f in "$REPO"/.git/worktrees/*/commondir; do echo /tmp > "$f"; done' commondir
try 'for f in "$REPO"/.git/worktrees/*; do echo "[core]" > "$f/config.worktree"; done' config-worktree
try 'echo "#!/bin/sh" > "$REPO/.git/hooks/pre-commit"' repo-hook
try 'git config --file "$REPO/.git/config" core.hooksPath /x' repo-config
echo left > left.txt
"##
    );
    sandboxed(
        &env,
        "",
        &format!(
            "\n[[task]]\nid = \"a\"\nprompt = '''{attack}'''\ngates = [\"test -s left.txt\"]\n"
        ),
    );
    let main_before = env.git(&["rev-parse", "main"]);
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    assert!(
        marks(&env).is_empty(),
        "ran outside the sandbox: {:?}",
        marks(&env)
    );
    let branch = task(&r.report, "a")["branch"].as_str().unwrap().to_string();
    let probe = show(&env, &branch, "probe.txt").unwrap();
    for what in [
        "dotgit-remove",
        "dotgit-rewrite",
        "commondir",
        "config-worktree",
        "repo-hook",
        "repo-config",
    ] {
        assert!(
            probe.contains(&format!("{what}: refused")),
            "{what}: {probe}"
        );
    }
    // Its commit and what it left both came home; the user's branch and
    // config are as they were.
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(
        show(&env, integration, "left.txt").as_deref(),
        Some("left\n")
    );
    let log = env.git(&["log", "--format=%s", integration]);
    assert!(log.contains("agent's own commit"), "{log}");
    assert_eq!(env.git(&["rev-parse", "main"]), main_before);
    assert!(env
        .git_output(&["config", "--get", "core.hooksPath"])
        .stdout
        .is_empty());
    assert!(env.git_output(&["fsck", "--no-progress"]).status.success());
}

#[test]
fn without_a_sandbox_a_rewritten_dot_git_keeps_batons_commit_off_the_users_branch() {
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        &bash_plan(
            "\n[[task]]\nid = \"a\"\nprompt = '''echo mine > mine.txt; printf 'gitdir: %s\\n' \"$(git rev-parse --git-common-dir)\" > .git'''\n",
        ),
    );
    env.commit_all("plan");
    let main_before = env.git(&["rev-parse", "main"]);
    let r = run_json(&env, &[]);
    assert_eq!(
        env.git(&["rev-parse", "main"]),
        main_before,
        "{:#}",
        r.report
    );
    assert_eq!(
        env.git(&["status", "--porcelain"]),
        "",
        "the user's index is untouched"
    );
    let branch = task(&r.report, "a")["branch"].as_str().unwrap().to_string();
    assert_eq!(show(&env, &branch, "mine.txt").as_deref(), Some("mine\n"));
    // Said, and the worktree's pointer put back.
    let warnings = task(&r.report, "a")["warnings"].to_string();
    assert!(
        warnings.contains("rewrote its worktree's .git"),
        "{warnings}"
    );
}

#[test]
fn a_sandboxed_agent_cannot_touch_the_shared_repository_or_another_tasks_refs() {
    let env = TestEnv::new();
    let attack = format!(
        r#"{TRY}
try 'git -C "$REPO" update-ref refs/heads/main HEAD~0' main-ref
try 'echo 0000000000000000000000000000000000000000 > "$REPO/.git/refs/heads/main"' main-file
try 'rm -rf "$REPO"/.git/objects/*' objects
try 'rm -f "$REPO"/.git/refs/heads/baton/*/task/other' other-branch
try 'rm -rf "$REPO"/.git/refs/baton' attempt-refs
try 'echo x > "$REPO/.git/packed-refs"' packed-refs
try 'git -C "$REPO/.git" config core.bare true' bare
# Its own refs are its own to change.
git update-ref -d refs/heads/main
echo done > done.txt
"#
    );
    sandboxed(
        &env,
        "",
        &format!(
            "\n[[task]]\nid = \"other\"\nprompt = \"echo theirs > theirs.txt\"\n\n[[task]]\nid = \"attack\"\nneeds = [\"other\"]\nprompt = '''{attack}'''\n"
        ),
    );
    let main_before = env.git(&["rev-parse", "main"]);
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let branch = task(&r.report, "attack")["branch"]
        .as_str()
        .unwrap()
        .to_string();
    let probe = show(&env, &branch, "probe.txt").unwrap();
    for what in [
        "main-ref",
        "main-file",
        "objects",
        "other-branch",
        "attempt-refs",
        "packed-refs",
        "bare",
    ] {
        assert!(
            probe.contains(&format!("{what}: refused")),
            "{what}: {probe}"
        );
    }
    assert_eq!(env.git(&["rev-parse", "main"]), main_before);
    assert!(env.git_output(&["fsck", "--no-progress"]).status.success());
    assert_eq!(env.git(&["config", "--get", "core.bare"]), "false");
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(
        show(&env, integration, "theirs.txt").as_deref(),
        Some("theirs\n")
    );
    assert_eq!(
        show(&env, integration, "done.txt").as_deref(),
        Some("done\n")
    );
}

#[test]
fn setup_verify_and_teardown_run_an_agents_code_in_the_sandbox() {
    let env = TestEnv::new();
    // The first task writes the scripts the run's checks call; the second's
    // desk has them when its setup runs.
    let evil = |what: &str| {
        format!(
            "printf 'echo {what} > \"$MARK-{what}\" 2>/dev/null; echo {what} > \"$REPO/{what}-evil\" 2>/dev/null; exit 0\\n' > {what}.sh"
        )
    };
    let write = [evil("setup"), evil("verify"), evil("teardown")].join("; ");
    sandboxed(
        &env,
        "",
        &format!(
            "\n[workspace]\nsetup = [\"test ! -f setup.sh || sh setup.sh\"]\nteardown = [\"test ! -f teardown.sh || sh teardown.sh\"]\n\n[run]\nverify = [\"test ! -f verify.sh || sh verify.sh\"]\n\n[[task]]\nid = \"a\"\nprompt = '''{write}'''\n\n[[task]]\nid = \"b\"\nneeds = [\"a\"]\nprompt = \"echo b > b.txt\"\n"
        ),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    // Each ran (its log says so), and none of them reached the host.
    let logs = env.repo.join(".git/baton/runs");
    let all = Command::new("grep")
        .args(["-rl", "==> baton: verify"])
        .arg(&logs)
        .output()
        .unwrap();
    assert!(!all.stdout.is_empty(), "verify ran");
    assert!(
        marks(&env).is_empty(),
        "ran outside the sandbox: {:?}",
        marks(&env)
    );
    for what in ["setup", "verify", "teardown"] {
        assert!(!env.repo.join(format!("{what}-evil")).exists(), "{what}");
    }
}

#[test]
fn workspace_copy_never_writes_through_a_link_an_agent_committed() {
    let env = TestEnv::new();
    env.write(".gitignore", ".env\n");
    env.write(".env", "API_KEY=the-users-secret\n");
    let stolen = env.scratch("stolen");
    env.write(
        "baton.toml",
        &bash_plan(&format!(
            "\n[workspace]\ncopy = [\".env\"]\n\n[[task]]\nid = \"a\"\nprompt = '''rm -f .env; ln -s {0:?} .env; git add -f .env; git commit -qm link'''\n\n[[task]]\nid = \"b\"\nneeds = [\"a\"]\nprompt = \"echo b > b.txt\"\n",
            stolen.display().to_string()
        )),
    );
    env.git(&["add", "baton.toml", ".gitignore"]);
    env.git(&["commit", "-qm", "plan"]);
    let r = run_json(&env, &[]);
    assert!(
        !stolen.exists(),
        "the user's .env was written through the link"
    );
    let warnings = task(&r.report, "b")["warnings"].to_string();
    assert!(warnings.contains("is a link"), "{:#}", r.report);
}

/// What a root agent tries with its capabilities, and whether each worked.
const ROOT_PROBE: &str = r#"try 'mount -o remount,rw /' remount
try 'umount "$HOME/.ssh"' umount
try 'test -s "$HOME/.ssh/id_ed25519"' read-key
try 'echo x > "$REPO/evil.txt"' checkout
try 'echo x > /etc/evil' etc
echo "uid $(id -u)" >> probe.txt
"#;

/// The probe's lines, from the task's branch.
fn probed(env: &TestEnv, r: &RunOutput) -> String {
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let branch = task(&r.report, "probe")["branch"]
        .as_str()
        .unwrap()
        .to_string();
    show(env, &branch, "probe.txt").unwrap()
}

fn secret_home(env: &TestEnv) {
    let ssh = env.root().join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::write(ssh.join("id_ed25519"), "SECRET KEY\n").unwrap();
}

#[test]
fn a_sandboxed_agent_has_no_capabilities_whoever_runs_baton() {
    let env = TestEnv::new();
    secret_home(&env);
    sandboxed(
        &env,
        "",
        &format!("\n[[task]]\nid = \"probe\"\nprompt = '''{TRY}{ROOT_PROBE}'''\n"),
    );
    let said = probed(&env, &run_json(&env, &[]));
    for what in ["remount", "umount", "read-key", "checkout", "etc"] {
        assert!(said.contains(&format!("{what}: refused")), "{what}: {said}");
    }
    assert!(!env.repo.join("evil.txt").exists());
}

/// The same walls for a user without privileges (root here runs baton as
/// `nobody` through setpriv; elsewhere the test user is one already).
#[test]
fn the_walls_hold_for_an_unprivileged_user_too() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return a_sandboxed_agent_has_no_capabilities_whoever_runs_baton();
    }
    let env = TestEnv::new();
    secret_home(&env);
    let attack = format!(
        "{TRY}{ROOT_PROBE}try 'git -C \"$REPO\" update-ref refs/heads/main HEAD' main-ref\n"
    );
    sandboxed(
        &env,
        "",
        &format!("\n[[task]]\nid = \"probe\"\nprompt = '''{attack}'''\n"),
    );
    // baton itself from a place nobody can reach (the build's own may be
    // under a directory only root may enter).
    let own = env.root().join("bin/baton");
    std::fs::create_dir_all(own.parent().unwrap()).unwrap();
    std::fs::copy(baton_bin(), &own).unwrap();
    let chown = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(env.root())
        .status()
        .unwrap();
    assert!(chown.success());
    let mut cmd = env.command(&own);
    let out = cmd
        .args(["run", "--json"])
        .env("HOME", env.root())
        .output_as_nobody();
    // Back to root, whose git would not read a repository of nobody's.
    let back = Command::new("chown")
        .args(["-R", "0:0"])
        .arg(env.root())
        .status()
        .unwrap();
    assert!(back.success());
    let said = probed(&env, &parse_run(out));
    assert!(said.contains("uid 65534"), "{said}");
    for what in [
        "remount", "umount", "read-key", "checkout", "etc", "main-ref",
    ] {
        assert!(said.contains(&format!("{what}: refused")), "{what}: {said}");
    }
}

/// Runs a command as `nobody` (uid and gid 65534, no groups).
trait AsNobody {
    fn output_as_nobody(&mut self) -> std::process::Output;
}

impl AsNobody for Command {
    fn output_as_nobody(&mut self) -> std::process::Output {
        let mut wrapped = Command::new("setpriv");
        wrapped.args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
        ]);
        wrapped.arg(self.get_program()).args(self.get_args());
        if let Some(dir) = self.get_current_dir() {
            wrapped.current_dir(dir);
        }
        for (k, v) in self.get_envs() {
            match v {
                Some(v) => wrapped.env(k, v),
                None => wrapped.env_remove(k),
            };
        }
        wrapped.stdin(std::process::Stdio::null());
        wrapped.output().expect("setpriv")
    }
}

#[test]
fn plans_that_would_fail_every_task_or_wait_forever_are_refused_by_check() {
    let env = TestEnv::new();
    let check = |body: &str, want: &str| {
        env.write(
            "baton.toml",
            &format!("[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\"]\n{body}\n\n[[task]]\nid = \"t\"\nagent = \"sh\"\nprompt = \"x\"\n"),
        );
        let out = output(baton(&env).arg("check"));
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{body}: {said}");
        assert!(said.contains(want), "{body}: {said}");
        assert!(said.contains("baton.toml:"), "where: {said}");
    };
    check(
        "sandbox = \"bwrap\"\nhide = [\"/\"]",
        "would hide what every program needs",
    );
    check(
        "sandbox = \"bwrap\"\nhide = [\"relative\"]",
        "must be an absolute path",
    );
    check("sandbox = \"bwrap\"\nnetwork = [\"*:443\"]", "no wildcards");
    check(
        "sandbox = \"bwrap\"\nnetwork = [\"a.io:443\", \"a.io:443\"]",
        "listed twice",
    );
    check("sandbox = \"bwrap\"\nmemory = \"1K\"", "too little");
    check("account = \"\"", "account is empty");
    check("\n[workspace]\nsparse = [\"*\"]", "not a pattern");
    check(
        "\n[run]\nmin_free_memory = \"999999T\"",
        "more than this machine has",
    );
    env.write(
        "baton.toml",
        &bash_plan("\n[[task]]\nid = \"t\"\nprompt = \"x\"\ngates = [\"echo a\\u0000b\"]\n"),
    );
    let out = output(baton(&env).arg("check"));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("NUL"), "{said}");
}

#[test]
fn a_repeated_squash_landing_adds_nothing() {
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        &bash_plan("\n[[task]]\nid = \"a\"\nprompt = \"echo a > a.txt\"\n"),
    );
    env.commit_all("plan");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{:#}", r.report);
    let first = output(baton(&env).args(["land", "--squash"]));
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let landed = env.git(&["rev-parse", "main"]);
    let again = output(baton(&env).args(["land", "--squash"]));
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(env.git(&["rev-parse", "main"]), landed, "no empty commit");
    assert_eq!(show(&env, "main", "a.txt").as_deref(), Some("a\n"));
}

#[test]
fn messages_are_masked_where_they_are_stored_and_fail_if_sees_the_real_text() {
    let env = TestEnv::new();
    let secret = "sk-live-0123456789abcdef0123";
    env.write(
        "baton.toml",
        &format!(
            "[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\nenv = {{ API_TOKEN = \"{secret}\" }}\n\n[defaults]\nagent = \"sh\"\n\n[[task]]\nid = \"leak\"\nprompt = 'echo \"the key is $API_TOKEN\"'\nfail_if = \"sk-live-[0-9a-f]+\"\n\n[[task]]\nid = \"wait\"\nprompt = \"sleep 3\"\n"
        ),
    );
    env.commit_all("plan");
    let mut child = spawn_baton(&env, &["run"]);
    wait_for_task(&env, "wait", "running");
    let sent = output(baton(&env).args(["msg", "wait", &format!("use {secret} please")]));
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    child.wait().unwrap();
    let rows = store_rows(&env, "SELECT text FROM messages").join("\n");
    assert!(!rows.is_empty() && !rows.contains(secret), "{rows}");
    let events = store_rows(&env, "SELECT data FROM events").join("\n");
    assert!(!events.contains(secret), "{events}");
    let status = output(baton(&env).args(["status", "--json"]));
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let leak = task(&report, "leak");
    assert_eq!(leak["status"], "failed", "{leak:#}");
    assert!(
        leak["reason"].as_str().unwrap().contains("fail_if"),
        "{leak:#}"
    );
    assert!(!report.to_string().contains(secret));
}

/// A sandboxed agent with the network on reaches the loopback address of a
/// `baton serve`, but has no token: not the local user's (hidden), not the
/// repository's discovery file's (it holds none).
#[test]
fn a_sandboxed_agent_cannot_act_through_a_local_server() {
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        &bash_plan("\n[[task]]\nid = \"gate\"\nprompt = \"true\"\napprove = true\n"),
    );
    env.commit_all("plan");
    let srv = crate::test_serve::serve(&env, "127.0.0.1:0");
    let token = baton_core::access::local_token().unwrap();
    let dir = baton_core::access::local_token_dir();
    // The server's signing keys, in the user's keys directory (the test's
    // home): there, and not for a sandboxed agent of any repository.
    let keys = env.root().join(".local/state/baton/keys");
    wait_for("the server's keys", 10, || {
        std::fs::read_dir(&keys).is_ok_and(|mut d| d.next().is_some())
    });
    // The run the server drives: a task waiting for a person.
    let started = crate::test_serve::http_post(&srv.url, "/api/runs", "{}", Some(&token));
    assert_eq!(started.0, 201, "{}", started.1);
    wait_for_task(&env, "gate", "awaiting_approval");
    let run = latest_run_opt(&env).unwrap()["run"]
        .as_str()
        .unwrap()
        .to_string();
    let attack = format!(
        r#"{TRY}
python3 - > http.txt <<'PY'
import json, urllib.request, glob
def call(method, path, body=None, token=None):
    req = urllib.request.Request("{url}" + path, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if token: req.add_header("Authorization", "Bearer " + token)
    try:
        return urllib.request.urlopen(req, timeout=5).status
    except urllib.error.HTTPError as e:
        return e.code
found = None
for f in glob.glob("{repo}/.git/baton/serve.json") + glob.glob("{dir}/*"):
    try:
        found = json.load(open(f)).get("token") if f.endswith(".json") else open(f).read().strip()
    except Exception:
        pass
print("approve", call("POST", "/api/runs/{run}/tasks/gate/approve", {{}}, found))
print("start", call("POST", "/api/runs", {{}}, found))
print("mcp", call("POST", "/mcp", {{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}}, found))
PY
try 'test -s "{dir}/local-token"' token-file
try 'cat {keys}/*/action-links | grep -q .' link-key
try 'cat {keys}/*/vapid.pkcs8 | grep -q .' vapid-key
"#,
        url = srv.url,
        repo = env.repo.display(),
        dir = dir.display(),
        keys = keys.display(),
    );
    let probe = TestEnv::new();
    sandboxed(
        &probe,
        "",
        &format!("\n[[task]]\nid = \"probe\"\nprompt = '''{attack}'''\n"),
    );
    // The same user: the probe's run has the server's home.
    let r = parse_run(output(
        baton(&probe)
            .env("HOME", env.root())
            .args(["run", "--json"]),
    ));
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let branch = task(&r.report, "probe")["branch"]
        .as_str()
        .unwrap()
        .to_string();
    let said = show(&probe, &branch, "http.txt").unwrap();
    for line in ["approve 401", "start 401", "mcp 401"] {
        assert!(said.contains(line), "{line}: {said}");
    }
    let probed = show(&probe, &branch, "probe.txt").unwrap();
    assert!(probed.contains("token-file: refused"), "{probed}");
    assert!(probed.contains("link-key: refused"), "{probed}");
    assert!(probed.contains("vapid-key: refused"), "{probed}");
    // Nothing moved: the task still waits for a person, and one run only.
    assert_eq!(task_status(&env, "gate"), "awaiting_approval");
    assert_eq!(store_rows(&env, "SELECT COUNT(*) FROM runs"), ["1"]);
    drop(srv);
}

/// A lead's scope is baton's, not its own: its tools run outside its
/// sandbox with the scope baton gave them, and the cap is counted where a
/// task is added.
#[test]
fn a_sandboxed_lead_cannot_widen_its_scope_or_write_the_store() {
    let env = TestEnv::new();
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile_lead.py");
    sandboxed(
        &env,
        "",
        &format!(
            "\n[agent.lead]\nadapter = \"exec\"\ncommand = [\"python3\", {:?}]\nsandbox = \"bwrap\"\nenv = {{ REPO = {:?} }}\n\n[[task]]\nid = \"lead\"\nagent = \"lead\"\nlead = true\nmax_tasks = 2\nprompt = \"grow\"\n",
            fixture.display().to_string(),
            env.repo.display().to_string(),
        ),
    );
    let r = run_json(&env, &[]);
    let branch = task(&r.report, "lead")["branch"]
        .as_str()
        .unwrap()
        .to_string();
    let said = show(&env, &branch, "hostile.txt").unwrap_or_else(|| panic!("{:#}", r.report));
    assert!(said.contains("door adds accepted: 2\n"), "{said}");
    assert!(said.contains("own server add accepted: False"), "{said}");
    assert!(said.contains("store write: refused"), "{said}");
    let ids: Vec<String> = store_rows(&env, "SELECT id FROM tasks ORDER BY id");
    assert_eq!(ids.len(), 3, "the lead and two tasks: {ids:?}");
    assert!(!ids.contains(&"widened".to_string()), "{ids:?}");
}

/// `baton clean` removes only what baton made: a worktree a person added
/// on a run's branch (with its ignored files) and the main checkout on one
/// stay, with their branches.
#[test]
fn clean_leaves_a_persons_worktrees_on_run_branches_alone() {
    let env = TestEnv::new();
    env.write(".gitignore", ".env\nnode_modules/\n");
    env.write(
        "baton.toml",
        &bash_plan("\n[[task]]\nid = \"a\"\nprompt = \"echo a > a.txt\"\n\n[[task]]\nid = \"b\"\nprompt = \"echo b > b.txt\"\n"),
    );
    env.commit_all("plan");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{:#}", r.report);
    let branch_a = task(&r.report, "a")["branch"].as_str().unwrap().to_string();
    let branch_b = task(&r.report, "b")["branch"].as_str().unwrap().to_string();
    let review = env.scratch("review");
    env.git(&["worktree", "add", "-q", review.to_str().unwrap(), &branch_a]);
    std::fs::write(review.join(".env"), "KEY=mine\n").unwrap();
    std::fs::create_dir_all(review.join("node_modules/x")).unwrap();
    env.git(&["checkout", "-q", &branch_b]);
    let out = output(baton(&env).arg("clean"));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        review.join(".env").exists() && review.join("node_modules/x").exists(),
        "{said}"
    );
    assert!(said.contains("a worktree baton did not make"), "{said}");
    for b in [&branch_a, &branch_b] {
        assert!(
            env.git_output(&["rev-parse", "--verify", b])
                .status
                .success(),
            "{b} stays"
        );
    }
    assert_eq!(env.git(&["rev-parse", "--abbrev-ref", "HEAD"]), branch_b);
}

/// Callers waiting on a run whose process goes away are told so at once,
/// not after the answer's timeout with "is its baton process stuck?".
#[test]
fn requests_to_a_run_that_ends_meanwhile_are_answered_that_it_ended() {
    let env = TestEnv::new();
    let mut child = hanging_run(&env);
    // The engine stops answering (as if busy), then dies.
    let pid = child.id() as i32;
    // SAFETY: signalling a child of this test.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let callers: Vec<_> = (0..10)
        .map(|_| {
            baton(&env)
                .args(["stop", "t"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    child.wait().unwrap();
    for c in callers {
        let out = c.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{said}");
        assert!(said.contains("is not going on"), "{said}");
        assert!(!said.contains("stuck"), "{said}");
    }
    // The agent the dead baton left: ended here (a resume would reap it).
    for pgid in store_rows(&env, "SELECT pgid FROM attempts WHERE pgid IS NOT NULL") {
        if let Ok(g) = pgid.parse::<i32>() {
            // SAFETY: signalling the test's own agent's group.
            unsafe { libc::kill(-g, libc::SIGKILL) };
        }
    }
}

/// Without a sandbox an agent can write the shared config; `core.bare =
/// true` would leave the user's checkout unusable: baton turns it back.
#[test]
fn an_agent_that_makes_the_repository_bare_is_undone_and_reported() {
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        &bash_plan("\n[[task]]\nid = \"a\"\nprompt = '''git config --file \"$(git rev-parse --git-common-dir)/config\" core.bare true; echo a > a.txt'''\n"),
    );
    env.commit_all("plan");
    let r = run_json(&env, &[]);
    assert_eq!(
        env.git(&["config", "--get", "core.bare"]),
        "false",
        "{:#}",
        r.report
    );
    assert!(env.git_output(&["status", "--porcelain"]).status.success());
    let warnings = task(&r.report, "a")["warnings"].to_string();
    assert!(warnings.contains("core.bare"), "{:#}", r.report);
}

/// A request line too long to take is answered with an error for its id
/// (the MCP library alone drops it without a word and the client waits
/// forever); the session goes on.
#[test]
fn a_60_mb_mcp_request_is_answered_with_an_error_and_the_session_goes_on() {
    use std::io::{BufRead, BufReader, Write};
    let env = TestEnv::new();
    write_plan(&env, "[[task]]\nid = \"a\"\nprompt = \"say x\"\n");
    let mut child = baton(&env)
        .arg("mcp")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut answer = |want: i64| -> serde_json::Value {
        loop {
            let mut line = String::new();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "the server ended");
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v["id"] == want {
                return v;
            }
        }
    };
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"2025-06-18","capabilities":{{}},"clientInfo":{{"name":"t","version":"1"}}}}}}"#).unwrap();
    answer(1);
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#
    )
    .unwrap();
    let huge = "x".repeat(60 * 1024 * 1024);
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"plan_check","arguments":{{"plan":"{huge}"}}}}}}"#).unwrap();
    let refused = answer(2);
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too large"),
        "{refused}"
    );
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":3,"method":"tools/list"}}"#).unwrap();
    let listed = answer(3);
    assert!(
        listed["result"]["tools"]
            .as_array()
            .is_some_and(|t| !t.is_empty()),
        "{listed}"
    );
    drop(stdin);
    child.wait().unwrap();
}
