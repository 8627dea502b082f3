//! The GitHub stand-in as a program, for benchmarks and for trying
//! `[[source]] kind = "github"` by hand without GitHub.
//!
//!   github-stand-in serve --repo OWNER/NAME --token TOKEN --url-file F
//!                         [--remote BARE.git] [--ci-script SH] [--ci-secs N]
//!       Serves GitHub's REST shapes for one repository on 127.0.0.1 until
//!       killed; writes its URL to F; prints each request it gets as a line
//!       (`GET /repos/o/r/issues?state=open&...`) on stdout, and each
//!       webhook delivery made or due (`HOOK check_run completed failure
//!       #12 -> 202`; status 0 with no hook set). With `--remote`, pull
//!       requests are that repository's branches; `--ci-script` is the
//!       check `test` run on each pushed head, taking `--ci-secs`.
//!       `POST /_hook {"url", "secret"}` sets where webhooks go.

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
    if let Some(remote) = flag(&args, "--remote") {
        gh.use_remote(std::path::Path::new(remote));
    }
    if let Some(script) = flag(&args, "--ci-script") {
        gh.ci("test", script);
    }
    if let Some(secs) = flag(&args, "--ci-secs") {
        match secs.parse::<f64>() {
            Ok(s) if s >= 0.0 => gh.ci_takes(s),
            _ => {
                eprintln!("github-stand-in: --ci-secs takes a number of seconds, not {secs:?}");
                return ExitCode::from(2);
            }
        }
    }
    if let Err(e) = std::fs::write(file, gh.url()) {
        eprintln!("github-stand-in: cannot write {file}: {e}");
        return ExitCode::from(1);
    }
    let (mut told, mut hooked) = (0, 0);
    loop {
        let calls = gh.calls();
        let deliveries = gh.deliveries();
        let mut out = std::io::stdout().lock();
        for d in &deliveries[hooked..] {
            if writeln!(out, "{}", delivery_line(d)).is_err() {
                return ExitCode::SUCCESS;
            }
        }
        hooked = deliveries.len();
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

/// `HOOK <event> <action> <conclusion or -> #<pull>... -> <status>`.
fn delivery_line(d: &baton_testutils::github::Delivery) -> String {
    let b = &d.body;
    let text = |p: &str| {
        b.pointer(p)
            .and_then(|v| v.as_str())
            .unwrap_or("-")
            .to_string()
    };
    let mut pulls: Vec<String> = Vec::new();
    if let Some(list) = b
        .pointer("/check_run/pull_requests")
        .and_then(|v| v.as_array())
    {
        pulls.extend(
            list.iter()
                .filter_map(|p| p["number"].as_u64())
                .map(|n| format!("#{n}")),
        );
    }
    if let Some(n) = b.pointer("/pull_request/number").and_then(|v| v.as_u64()) {
        pulls.push(format!("#{n}"));
    }
    format!(
        "HOOK {} {} {} {} -> {}",
        d.event,
        text("/action"),
        text("/check_run/conclusion"),
        pulls.join(","),
        d.status
    )
}
