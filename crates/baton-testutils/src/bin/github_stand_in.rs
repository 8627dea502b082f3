//! The GitHub stand-in as a program, for benchmarks and for trying
//! `[[source]] kind = "github"` by hand without GitHub.
//!
//!   github-stand-in serve --repo OWNER/NAME --token TOKEN --url-file F
//!       Serves GitHub's REST shapes for one repository on 127.0.0.1 until
//!       killed; writes its URL to F; prints each request it gets as a line
//!       (`GET /repos/o/r/issues?state=open&...`) on stdout.

use baton_testutils::github::GitHub;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.windows(2)
        .find(|w| w[0] == name)
        .map(|w| w[1].as_str())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some("serve"), Some(repo), Some(token), Some(file)) = (
        args.first().map(String::as_str),
        flag(&args, "--repo"),
        flag(&args, "--token"),
        flag(&args, "--url-file"),
    ) else {
        eprintln!("usage: github-stand-in serve --repo OWNER/NAME --token TOKEN --url-file F");
        return ExitCode::from(2);
    };
    let gh = GitHub::start(repo, token);
    if let Err(e) = std::fs::write(file, gh.url()) {
        eprintln!("github-stand-in: cannot write {file}: {e}");
        return ExitCode::from(1);
    }
    let mut told = 0;
    loop {
        let calls = gh.calls();
        let mut out = std::io::stdout().lock();
        for c in &calls[told..] {
            let q = if c.query.is_empty() {
                String::new()
            } else {
                format!("?{}", c.query)
            };
            if writeln!(out, "{} {}{q}", c.method, c.path).is_err() {
                return ExitCode::SUCCESS;
            }
        }
        let _ = out.flush();
        told = calls.len();
        std::thread::sleep(Duration::from_millis(20));
    }
}
