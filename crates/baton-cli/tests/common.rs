use baton_testutils::{fake_agent, TestEnv};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn baton_bin() -> &'static str {
    env!("CARGO_BIN_EXE_baton")
}

pub fn baton(env: &TestEnv) -> Command {
    let mut c = env.command(baton_bin());
    c.stdin(Stdio::null());
    c
}

/// The profile every plan in the tests uses: the fake agent through `exec`.
pub fn plan_header() -> String {
    format!(
        "[agent.fake]\nadapter = \"exec\"\ncommand = [{:?}]\n\n[defaults]\nagent = \"fake\"\n\n",
        fake_agent().display().to_string()
    )
}

/// A plan whose default agent is bash itself: each prompt is a script.
pub fn bash_plan(body: &str) -> String {
    format!("[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\n\n[defaults]\nagent = \"sh\"\n{body}")
}

pub fn write_plan(env: &TestEnv, body: &str) {
    env.write("baton.toml", &format!("{}{body}", plan_header()));
}

pub struct RunOutput {
    pub code: i32,
    pub report: Value,
    pub stderr: String,
}

pub fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("run baton")
}

/// `baton run --json` with the given extra arguments.
pub fn run_json(env: &TestEnv, extra: &[&str]) -> RunOutput {
    let out = output(baton(env).args(["run", "--json"]).args(extra));
    parse_run(out)
}

pub fn parse_run(out: Output) -> RunOutput {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stdout: {stdout}\nstderr: {stderr}"));
    RunOutput {
        code: out.status.code().unwrap_or(-1),
        report,
        stderr,
    }
}

pub fn task<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["tasks"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["id"] == id))
        .unwrap_or_else(|| panic!("no task {id} in report: {report:#}"))
}

pub fn spawn_baton(env: &TestEnv, args: &[&str]) -> Child {
    baton(env)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn baton")
}

/// Polls `cond` until it holds, failing the test after `secs`.
pub fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

pub fn pid_alive(pid: i32) -> bool {
    // A zombie is dead for our purposes.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.trim_start().chars().next());
            state != Some('Z')
        }
        Err(_) => false,
    }
}

/// The pid a process writes to `path`, once the file holds a whole one (a
/// file seen the moment it is made is still empty).
pub fn wait_for_pid(what: &str, path: &Path) -> i32 {
    let whole = || {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
    };
    wait_for(what, 20, || whole().is_some());
    read_pid(path)
}

pub fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .parse()
        .expect("pid")
}

/// The latest run's report, or None while there is none yet.
pub fn latest_run_opt(env: &TestEnv) -> Option<Value> {
    let out = output(baton(env).args(["status", "--json"]));
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

/// A task's status in the latest run ("" while the run does not exist yet).
pub fn task_status(env: &TestEnv, id: &str) -> String {
    latest_run_opt(env)
        .map(|r| task(&r, id)["status"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// Waits until task `id` of the latest run has `status`; on a timeout the
/// panic shows what `baton status` said last.
pub fn wait_for_task(env: &TestEnv, id: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = output(baton(env).args(["status", "--json"]));
        let seen = serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .map(|r| task(&r, id)["status"].as_str().unwrap_or("").to_string());
        if seen.as_deref() == Some(status) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after 20s waiting for {id} to be {status}; `baton status --json` last said (exit {:?}):\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Contents of `path` at `rev` in the test repository.
pub fn show(env: &TestEnv, rev: &str, path: &str) -> Option<String> {
    let out = env.git_output(&["show", &format!("{rev}:{path}")]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Makes temp paths and run ids stable for snapshots.
pub fn redact(env: &TestEnv, text: &str, run: Option<&str>) -> String {
    let mut t = text.replace(&env.root().display().to_string(), "[TMP]");
    t = t.replace(&fake_agent().display().to_string(), "[FAKE_AGENT]");
    if let Some(run) = run {
        t = t.replace(run, "[RUN]");
    }
    let hashes = regex::Regex::new(r"\b[0-9a-f]{12,40}\b").unwrap();
    t = hashes.replace_all(&t, "[HASH]").into_owned();
    let durations = regex::Regex::new(r"\b\d+(\.\d+)?(ms|s)\b|\b\d+m\d\ds\b").unwrap();
    durations.replace_all(&t, "[T]").into_owned()
}

/// A run going on in another process: one task whose agent hangs. Stop it
/// with `baton stop t` and wait for the child.
pub fn hanging_run(env: &TestEnv) -> Child {
    let started = env.scratch("started");
    write_plan(
        env,
        &format!(
            "[[task]]\nid = \"t\"\nprompt = \"touch {}; hang\"\n",
            started.display()
        ),
    );
    let child = spawn_baton(env, &["run"]);
    wait_for("the agent", 20, || started.exists());
    child
}

/// The rows `sql` selects from the repository's store, a line each (the
/// first column): for what no command prints, such as event rows. Read with
/// Python's sqlite3, as any outside tool would.
pub fn store_rows(env: &TestEnv, sql: &str) -> Vec<String> {
    let db = env.repo.join(".git/baton/baton.db");
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys\nfor row in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]): print(row[0])",
        ])
        .arg(&db)
        .arg(sql)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A directory for PATH that holds git (a link to the one on PATH) and
/// whatever a test puts beside it, and nothing else.
pub fn path_with_git(bin: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(bin).unwrap();
    let git = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v git"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let _ = std::os::unix::fs::symlink(git.trim(), bin.join("git"));
    bin.to_path_buf()
}

/// `baton serve` on a free port with `envs` set and its stderr in the
/// scratch file `log`, once it listens: the child and its URL.
pub fn serve_logged(env: &TestEnv, log: &str, envs: &[(&str, &str)]) -> (Child, String) {
    let file = std::fs::File::create(env.scratch(log)).unwrap();
    let mut cmd = baton(env);
    cmd.args(["serve", "--addr", "127.0.0.1:0"])
        .env("BATON_LOG", "info")
        .stdout(Stdio::null())
        .stderr(file);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let read = || std::fs::read_to_string(env.scratch(log)).unwrap_or_default();
    let listening = |text: String| {
        text.lines()
            .find_map(|l| l.strip_prefix("baton serve: listening on "))
            .map(str::to_string)
    };
    wait_for("the server to listen", 30, || listening(read()).is_some());
    let url = listening(read()).unwrap_or_default();
    (child, url)
}

/// Waits until task `id` waits for an answer to its agent's question
/// (pending, with no process: `waiting: answer`).
pub fn wait_waiting(env: &TestEnv, id: &str, secs: u64) {
    let q = format!("SELECT status || ' ' || activity FROM tasks WHERE id = '{id}'");
    wait_for("the task to wait for an answer", secs, || {
        store_rows(env, &q).concat() == "pending waiting_answer"
    });
}

/// A plan whose task `ask` is the asker fixture (an agent that asks
/// through its door and ends its turn), with `more` after the profile.
pub fn asker_plan(more: &str) -> String {
    let asker = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/asker.py");
    bash_plan(&format!(
        "{more}\n[agent.py]\nadapter = \"exec\"\ncommand = [\"python3\", {:?}]\n\n[[task]]\nid = \"ask\"\nagent = \"py\"\nprompt = \"pick a colour\"\n",
        asker.display().to_string()
    ))
}

/// The text of `path` on task `id`'s branch, as run `report` names it.
pub fn task_show(env: &TestEnv, report: &Value, id: &str, path: &str) -> Option<String> {
    let branch = task(report, id)["branch"].as_str()?.to_string();
    show(env, &branch, path)
}

/// `secret` is in nothing baton wrote under `.git/baton` (its store, logs,
/// prompts, plans).
pub fn assert_nowhere_in_state(env: &TestEnv, secret: &str) {
    let found = Command::new("grep")
        .args(["-rl", secret])
        .arg(env.repo.join(".git/baton"))
        .output()
        .unwrap();
    assert!(
        found.stdout.is_empty(),
        "a secret is in: {}",
        String::from_utf8_lossy(&found.stdout)
    );
}

/// `baton run` killed (SIGKILL) at failpoint `point`, then `baton resume`:
/// the report before the resume (as the store had it) and the resume's.
pub fn crash_then_resume(env: &TestEnv, point: &str) -> (Value, RunOutput) {
    crash_at(env, point);
    let before = latest_run_opt(env).expect("the run is in the store");
    let r = parse_run(output(baton(env).args(["resume", "--json"])));
    assert_eq!(r.code, 0, "{point}: {}", r.stderr);
    (before, r)
}

/// `baton run` killed (SIGKILL) at failpoint `point`.
pub fn crash_at(env: &TestEnv, point: &str) {
    use std::os::unix::process::ExitStatusExt;
    let crashed = output(
        baton(env)
            .args(["run", "--json"])
            .env("BATON_FAILPOINT", point),
    );
    assert_eq!(
        crashed.status.signal(),
        Some(libc::SIGKILL),
        "{point}: baton did not die there: {}",
        String::from_utf8_lossy(&crashed.stderr)
    );
}

/// A child's output, killed first if it runs longer than `limit`.
pub trait WaitTimeout {
    fn wait_with_output_timeout(self, limit: Duration) -> std::process::Output;
}

impl WaitTimeout for std::process::Child {
    fn wait_with_output_timeout(self, limit: Duration) -> std::process::Output {
        let pid = self.id() as i32;
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let guard = std::thread::spawn(move || {
            if wait.recv_timeout(limit).is_err() {
                // SAFETY: kill(2) on our child, which has not been reaped yet.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        let out = self.wait_with_output().expect("wait for baton");
        let _ = done.send(());
        let _ = guard.join();
        out
    }
}
