//! A lead task's tools, served outside its sandbox. baton starts `baton mcp
//! --listen` for the attempt with the lead's scope (its run, its name, its
//! `max_tasks`) on its own command line, on a Unix socket in a directory of
//! its own; only the lead's sandbox gets that directory. Inside, the
//! agent's CLI starts `baton mcp --connect`, a relay with no access of its
//! own: the lead cannot write baton's store, widen its scope or reach
//! another run, whatever it runs.

use super::start::Start;
use crate::adapter;
use crate::engine::shared::Shared;
use std::path::PathBuf;
use std::time::Duration;

/// The door of one lead attempt; the server behind it ends with it.
pub(crate) struct Door {
    /// The directory holding the socket, bound into the lead's sandbox.
    pub dir: PathBuf,
    /// Killed with its handle (`kill_on_drop`), or with baton.
    server: tokio::process::Child,
}

impl Drop for Door {
    fn drop(&mut self) {
        // The server is killed with its handle; its socket goes here.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The MCP server a lead's agent is handed, and the door behind it; None
/// for a task that is not a lead.
pub(crate) async fn open(
    sh: &Shared,
    st: &Start,
    n: u32,
    ask: Option<&std::path::Path>,
) -> Result<Option<(adapter::McpServer, Door)>, String> {
    let Some(max_tasks) = st.spec.lead else {
        return Ok(None);
    };
    let Some(baton) = &sh.baton else {
        return Err("a lead task needs baton's own binary to serve its tools, and this engine was started without it".into());
    };
    static DOORS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let k = DOORS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // Under the temporary directory, which every sandbox has a private one
    // of: no other agent sees it. Short: a socket path has at most 107 bytes.
    let dir = std::env::temp_dir().join(format!("baton-{}-lead-{k}", std::process::id()));
    let socket = dir.join("door.sock");
    let log_path = sh
        .paths
        .attempt_log(&sh.run_id, &st.spec.id, n)
        .with_extension("tools.log");
    if let Some(parent) = log_path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot make {}: {e}", parent.display()))?;
    }
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("cannot write {}: {e}", log_path.display()))?;
    make_private_dir(&dir)?;
    let mut cmd = tokio::process::Command::new(baton);
    cmd.arg("-C")
        .arg(&sh.repo.root)
        .args(["mcp", "--run", &sh.run_id, "--as", &st.spec.id])
        .args(["--max-tasks", &max_tasks.to_string()])
        .args(
            ask.map(|s| ["--ask".as_ref(), s.as_os_str()])
                .into_iter()
                .flatten(),
        )
        .arg("--listen")
        .arg(&socket)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    // SAFETY: prctl only marks this process to be killed with its parent;
    // it allocates nothing and is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let server = match cmd.spawn() {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!("cannot start the lead's tools ({baton}): {e}"));
        }
    };
    // From here the door owns the directory (and removes it when it goes).
    let mut door = Door { dir, server };
    door.wait_open(&socket, &log_path).await?;
    let tools = adapter::McpServer {
        name: "baton".into(),
        command: baton.clone(),
        args: vec![
            "mcp".into(),
            "--connect".into(),
            socket.display().to_string(),
        ],
        config_dir: sh.paths.run_dir(&sh.run_id).join("mcp").join(&st.spec.id),
    };
    Ok(Some((tools, door)))
}

impl Door {
    /// Waits for the tools' socket (at most 20 s); an error says why not.
    async fn wait_open(
        &mut self,
        socket: &std::path::Path,
        log: &std::path::Path,
    ) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !socket.exists() {
            if let Ok(Some(status)) = self.server.try_wait() {
                return Err(format!(
                    "the lead's tools ended at once ({status}); see {}",
                    log.display()
                ));
            }
            if tokio::time::Instant::now() > deadline {
                return Err("the lead's tools did not start within 20 s".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }
}

pub(super) fn make_private_dir(dir: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot make {}: {e}", dir.display()))
}
