//! Serves a few demo scripts for running the agent CLIs against by hand:
//! prints the URL, then every request as one JSON line to the file named
//! by the first argument (default /tmp/model-server.jsonl), until killed.
//!
//! Scripts (select with `[[script:NAME]]` in the prompt): `write` (the
//! default: writes hello.txt, then says so), `run` (appends with a shell
//! command), `sub` (writes src/deep/a.txt), `over` (overwrites README.md),
//! `fail400`, `fail500`, `hang`, `slow` (3 s, then the default).
//!
//! `model_server env AGENT URL HOME` instead prints `agent_env` as shell
//! `export` lines and `agent_args` for prompt "PROMPT" as a comment.

use baton_testutils::model_server::{self, ModelServer, Scripts, Step};
use std::io::Write;

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("env") && argv.len() == 5 {
        let home = std::path::Path::new(&argv[4]);
        for (k, v) in model_server::agent_env(&argv[2], &argv[3], home) {
            println!("export {k}='{}'", v.replace('\'', r"'\''"));
        }
        println!("# args: {:?}", model_server::agent_args(&argv[2], "PROMPT"));
        return;
    }
    let log = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/model-server.jsonl".into());
    let write = vec![
        Step::write("hello.txt", "hello from mock\n"),
        Step::say("Created hello.txt."),
        Step::run("echo appended >> hello.txt"),
        Step::say("Appended a line to hello.txt."),
    ];
    let scripts = Scripts::new()
        .script("write", write.clone())
        .script(
            "run",
            vec![
                Step::run("echo appended >> hello.txt"),
                Step::say("Appended a line to hello.txt."),
            ],
        )
        .script(
            "sub",
            vec![Step::write("src/deep/a.txt", "deep\n"), Step::say("ok")],
        )
        .script(
            "over",
            vec![Step::write("README.md", "replaced\n"), Step::say("ok")],
        )
        .script("fail400", vec![Step::HttpError(400)])
        .script("fail500", vec![Step::HttpError(500)])
        .script("hang", vec![Step::Hang])
        .script(
            "slow",
            vec![Step::slow(3.0, write[0].clone()), write[1].clone()],
        )
        .default_script(write);
    let server = ModelServer::start(scripts);
    println!("{}", server.url());
    let mut seen = 0;
    let mut out = std::fs::File::create(&log).expect("create log");
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let all = server.requests();
        for r in &all[seen..] {
            let line = serde_json::json!({
                "method": r.method, "path": r.path, "query": r.query,
                "headers": r.headers, "script": r.script, "step": r.step, "side": r.side,
                "body": r.body,
            });
            writeln!(out, "{line}").expect("write log");
        }
        seen = all.len();
    }
}
