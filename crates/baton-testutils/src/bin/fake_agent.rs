//! A scriptable stand-in for a coding agent, for testing baton's
//! orchestration. baton's exec adapter passes the prompt as the last
//! argument; the script is the prompt's lines up to the first blank line
//! (what baton appends after it, like feedback, is ignored). Statements are
//! separated by newlines or `;`. See `baton_testutils::fake_agent` docs.

use std::io::Write;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Duration;

fn unescape(s: &str) -> String {
    s.replace("\\n", "\n")
}

fn write_file(path: &str, text: &str, append: bool) -> Result<(), String> {
    let p = Path::new(path);
    if let Some(dir) = p.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        }
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(p)
        .map_err(|e| format!("open {path}: {e}"))?;
    f.write_all(unescape(text).as_bytes())
        .map_err(|e| e.to_string())?;
    f.write_all(b"\n").map_err(|e| e.to_string())
}

fn split2(rest: &str) -> (&str, &str) {
    let rest = rest.trim_start();
    match rest.find(char::is_whitespace) {
        Some(i) => (&rest[..i], rest[i..].trim_start()),
        None => (rest, ""),
    }
}

fn run(stmt: &str) -> Result<Option<u8>, String> {
    let (cmd, rest) = split2(stmt);
    match cmd {
        "write" | "append" => {
            let (path, text) = split2(rest);
            write_file(path, text, cmd == "append")?;
        }
        "touch" => {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(rest)
                .map_err(|e| format!("touch {rest}: {e}"))?;
        }
        "commit" => {
            let ok = Command::new("git")
                .args(["add", "-A"])
                .status()
                .map_err(|e| e.to_string())?
                .success()
                && Command::new("git")
                    .args(["commit", "-q", "-m", rest])
                    .status()
                    .map_err(|e| e.to_string())?
                    .success();
            if !ok {
                return Err("git commit failed".into());
            }
        }
        "say" => {
            println!("{}", unescape(rest));
            let _ = std::io::stdout().flush();
        }
        "err" => eprintln!("{}", unescape(rest)),
        "sleep" => {
            let secs: f64 = rest
                .parse()
                .map_err(|_| format!("sleep: bad number {rest:?}"))?;
            std::thread::sleep(Duration::from_secs_f64(secs));
        }
        "hang" => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        "ignore-signals" => {
            // SAFETY: setting dispositions to SIG_IGN is always sound.
            unsafe {
                libc::signal(libc::SIGINT, libc::SIG_IGN);
                libc::signal(libc::SIGTERM, libc::SIG_IGN);
            }
        }
        "grandchild" => {
            // A child that ignores SIGTERM and SIGINT too, and outlives us unless killed.
            let child = Command::new("sh")
                .args(["-c", "trap '' TERM INT; exec sleep 300"])
                .spawn()
                .map_err(|e| format!("spawn grandchild: {e}"))?;
            write_file(rest, &child.id().to_string(), false)?;
            std::mem::forget(child);
        }
        "pid" => write_file(rest, &std::process::id().to_string(), false)?,
        "env" => {
            let (name, path) = split2(rest);
            write_file(path, &std::env::var(name).unwrap_or_default(), false)?;
        }
        "feedback" => write_file(
            rest,
            &std::env::var("BATON_FEEDBACK").unwrap_or_default(),
            false,
        )?,
        "prompt" => write_file(
            rest,
            &std::env::var("BATON_PROMPT").unwrap_or_default(),
            false,
        )?,
        // Every prompt it gets, one after another (`prompt` keeps the last).
        "prompts" => write_file(
            rest,
            &format!(
                "{}\n----",
                std::env::var("BATON_PROMPT").unwrap_or_default()
            ),
            true,
        )?,
        "spam" => {
            let n: usize = rest
                .parse()
                .map_err(|_| format!("spam: bad size {rest:?}"))?;
            let line = "x".repeat(99) + "\n";
            let mut out = std::io::stdout().lock();
            let mut left = n;
            while left > 0 {
                let k = left.min(line.len());
                out.write_all(&line.as_bytes()[..k])
                    .map_err(|e| e.to_string())?;
                left -= k;
            }
        }
        "stream" => {
            // N Claude-style message lines, each stamped with the time it was
            // written (µs since the epoch), PAUSE ms apart: for latency benchmarks.
            let (n, pause) = split2(rest);
            let n: u64 = n.parse().map_err(|_| format!("stream: bad count {n:?}"))?;
            let pause: u64 = pause.parse().unwrap_or(0);
            let mut out = std::io::stdout().lock();
            for i in 0..n {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_micros())
                    .unwrap_or(0);
                writeln!(out, r#"{{"type":"assistant","message":{{"content":[{{"type":"text","text":"line {i} at {now}"}}]}}}}"#).map_err(|e| e.to_string())?;
                out.flush().map_err(|e| e.to_string())?;
                std::thread::sleep(Duration::from_millis(pause));
            }
        }
        "wait-file" => {
            while !Path::new(rest).exists() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        "exit" => {
            let code: u8 = rest
                .parse()
                .map_err(|_| format!("exit: bad code {rest:?}"))?;
            return Ok(Some(code));
        }
        "on-attempt" => {
            let (n, inner) = split2(rest);
            let want: u32 = n
                .parse()
                .map_err(|_| format!("on-attempt: bad number {n:?}"))?;
            let attempt: u32 = std::env::var("BATON_ATTEMPT")
                .ok()
                .and_then(|a| a.parse().ok())
                .unwrap_or(1);
            if attempt == want {
                return run(inner);
            }
        }
        "" => {}
        other => return Err(format!("unknown statement {other:?}")),
    }
    Ok(None)
}

fn main() -> ExitCode {
    // Standing in for a real CLI (whose last argument is not the prompt), the
    // script comes from the environment.
    let prompt = match std::env::var("FAKE_AGENT_SCRIPT") {
        Ok(s) => s,
        Err(_) => match std::env::args().next_back() {
            Some(p) => p,
            None => {
                eprintln!("fake-agent: no prompt");
                return ExitCode::from(2);
            }
        },
    };
    let script: Vec<&str> = prompt
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .collect();
    for line in script {
        for stmt in line.split(';') {
            match run(stmt.trim()) {
                Ok(None) => {}
                Ok(Some(code)) => return ExitCode::from(code),
                Err(e) => {
                    eprintln!("fake-agent: {e}");
                    return ExitCode::from(3);
                }
            }
        }
    }
    ExitCode::SUCCESS
}
