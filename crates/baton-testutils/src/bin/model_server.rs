//! The scripted model server as a program, for benchmarks and for trying
//! baton with the real agent CLIs by hand, without a model.
//!
//!   model-server serve --url-file F [--tasks N] [--outage SPEC]...
//!       Serves on 127.0.0.1 until killed; writes its URL to F. Scripts
//!       `t1`..`tN` each write `tK.txt` (a prompt holding `[[script:tK]]`
//!       plays one). SPEC: `api=anthropic|openai|gemini,kind=rate_limit|quota,
//!       retry_after=SECS,after=REQUESTS,requests=N,lasting=SECS`.
//!   model-server profile AGENT --url URL --home DIR [--name NAME] [--env K=V]...
//!       Prints a baton profile (`[agent.NAME]`) that runs AGENT's installed
//!       CLI against the server, hermetically (its home in DIR).

use baton_testutils::model_server::{
    agent_bin, baton_profile, Api, ModelServer, Outage, Scripts, Step,
};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let res = match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("profile") => profile(&args[1..]),
        _ => Err("usage: model-server serve --url-file F [--tasks N] [--outage SPEC]... | model-server profile AGENT --url URL --home DIR [--name NAME] [--env K=V]...".into()),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("model-server: {e}");
            ExitCode::from(2)
        }
    }
}

/// The values of `--flag` in `args`, in order.
fn flag<'a>(args: &'a [String], name: &str) -> Vec<&'a str> {
    args.windows(2)
        .filter(|w| w[0] == name)
        .map(|w| w[1].as_str())
        .collect()
}

fn one<'a>(args: &'a [String], name: &str) -> Result<&'a str, String> {
    flag(args, name)
        .first()
        .copied()
        .ok_or_else(|| format!("{name} is required"))
}

fn serve(args: &[String]) -> Result<(), String> {
    let url_file = one(args, "--url-file")?;
    let tasks: u32 = match flag(args, "--tasks").first() {
        Some(n) => n
            .parse()
            .map_err(|_| format!("--tasks {n}: not a number"))?,
        None => 0,
    };
    let mut scripts = Scripts::new();
    for k in 1..=tasks {
        let file = format!("t{k}.txt");
        let text = format!("t{k}\n");
        // The write twice: Claude Code keeps an API error in its session as
        // a model turn, so a session resumed after a limit plays step 2.
        scripts = scripts.script(
            &format!("t{k}"),
            vec![
                Step::write(&file, &text),
                Step::write(&file, &text),
                Step::say(&format!("wrote {file}")),
            ],
        );
    }
    for spec in flag(args, "--outage") {
        scripts = scripts.outage(outage(spec)?);
    }
    let server = ModelServer::start(scripts);
    std::fs::write(url_file, server.url()).map_err(|e| format!("cannot write {url_file}: {e}"))?;
    loop {
        std::thread::park();
    }
}

fn outage(spec: &str) -> Result<Outage, String> {
    let mut kv = std::collections::HashMap::new();
    for part in spec.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("--outage {spec}: {part:?} is not key=value"))?;
        kv.insert(k, v);
    }
    let num = |k: &str| -> Result<Option<u32>, String> {
        kv.get(k)
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("--outage {spec}: {k}={v} is not a number"))
            })
            .transpose()
    };
    let api = match kv.get("api").copied() {
        Some("anthropic") => Api::Anthropic,
        Some("openai") => Api::OpenAi,
        Some("gemini") => Api::Gemini,
        other => {
            return Err(format!(
                "--outage {spec}: api must be anthropic, openai or gemini, not {other:?}"
            ))
        }
    };
    let mut o = match kv.get("kind").copied().unwrap_or("rate_limit") {
        "rate_limit" => Outage::rate_limit(api, num("retry_after")?.unwrap_or(3)),
        "quota" => Outage::quota(api),
        k => {
            return Err(format!(
                "--outage {spec}: kind must be rate_limit or quota, not {k:?}"
            ))
        }
    };
    if let Some(n) = num("after")? {
        o = o.after(n);
    }
    if let Some(n) = num("requests")? {
        o = o.requests(n);
    }
    if let Some(s) = num("lasting")? {
        o = o.lasting(std::time::Duration::from_secs(s.into()));
    }
    Ok(o)
}

fn profile(args: &[String]) -> Result<(), String> {
    let agent = args.first().ok_or("profile: which agent?")?;
    let url = one(args, "--url")?;
    let home = std::path::PathBuf::from(one(args, "--home")?);
    let name = flag(args, "--name").first().copied().unwrap_or(agent);
    let bin = agent_bin(agent)
        .ok_or_else(|| format!("{agent} is not installed: run scripts/install-agents.sh"))?;
    std::fs::create_dir_all(&home).map_err(|e| format!("cannot make {}: {e}", home.display()))?;
    let mut more_env = Vec::new();
    for kv in flag(args, "--env") {
        more_env.push(
            kv.split_once('=')
                .ok_or_else(|| format!("--env {kv}: not K=V"))?,
        );
    }
    print!(
        "{}",
        baton_profile(name, agent, &bin, url, &home, &more_env, "")
    );
    Ok(())
}
