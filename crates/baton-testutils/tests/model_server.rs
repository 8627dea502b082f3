//! The scripted model server, spoken to over plain HTTP in each dialect,
//! then driven by the real agent CLIs when they are installed in
//! ~/.cache/baton/agents/bin (each CLI test is skipped with a notice
//! otherwise).

use baton_testutils::model_server::{agent_args, agent_bin, agent_env, ModelServer, Scripts, Step};
use baton_testutils::{hermetic_env, TestEnv};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- helpers

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The `data:` payloads of an SSE body, `[DONE]` excluded.
    fn events(&self) -> Vec<Value> {
        self.body
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}")))
            .collect()
    }
}

/// Sends one request and reads the whole answer (the connection is closed
/// by the server after it, as asked). None if nothing came within `wait`.
fn send(url: &str, method: &str, path: &str, body: &str, wait: Duration) -> Option<Reply> {
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(wait)).expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nX-Test: Yes\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body.as_bytes()).expect("write body");
    let mut raw = Vec::new();
    if let Err(e) = stream.read_to_end(&mut raw) {
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{e}"
        );
        return None;
    }
    let raw = String::from_utf8(raw).expect("utf8 answer");
    let (headers, body) = raw.split_once("\r\n\r\n").expect("head/body split");
    let status = headers[9..12].parse().expect("status");
    Some(Reply {
        status,
        headers: headers.to_string(),
        body: body.to_string(),
    })
}

fn post(server: &ModelServer, path: &str, body: &Value) -> Reply {
    send(
        &server.url(),
        "POST",
        path,
        &body.to_string(),
        Duration::from_secs(10),
    )
    .expect("an answer")
}

fn write_then_say() -> Vec<Step> {
    vec![
        Step::write("hello.txt", "hello from mock\n"),
        Step::say("Created hello.txt."),
        Step::run("echo appended >> hello.txt"),
        Step::say("Appended."),
    ]
}

// ------------------------------------------------------------- Anthropic

fn anthropic_request(messages: Value) -> Value {
    json!({
        "model": "claude-test", "max_tokens": 1000, "stream": true,
        "system": [{"type": "text", "text": "Env:\nWorking directory: /work/repo\n"}],
        "tools": [{"name": "Write", "input_schema": {}}, {"name": "Bash", "input_schema": {}}],
        "messages": messages,
    })
}

#[test]
fn anthropic_plays_steps_by_history_with_usage() {
    let server = ModelServer::start(Scripts::new().script("w", write_then_say()));
    let first = post(
        &server,
        "/v1/messages?beta=true",
        &anthropic_request(json!([{"role": "user", "content": "do it [[script:w]]"}])),
    );
    assert_eq!(first.status, 200);
    assert!(first.headers.contains("text/event-stream"));
    let events = first.events();
    assert_eq!(events[0]["type"], "message_start");
    assert_eq!(events[0]["message"]["usage"]["input_tokens"], 100);
    assert_eq!(events[1]["content_block"]["name"], "Write");
    let input: Value = serde_json::from_str(
        events[2]["delta"]["partial_json"]
            .as_str()
            .expect("partial json"),
    )
    .expect("tool input");
    assert_eq!(
        input,
        json!({"file_path": "/work/repo/hello.txt", "content": "hello from mock\n"})
    );
    let delta = events
        .iter()
        .find(|e| e["type"] == "message_delta")
        .unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["output_tokens"], 20);

    // One assistant turn in the history: step 1, final text.
    let second = post(
        &server,
        "/v1/messages",
        &anthropic_request(json!([
            {"role": "user", "content": "do it [[script:w]]"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Write", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
        ])),
    );
    let events = second.events();
    assert_eq!(events[2]["delta"]["text"], "Created hello.txt.");
    assert!(second.body.contains("\"stop_reason\":\"end_turn\""));

    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].query, "beta=true");
    assert_eq!(seen[0].path, "/v1/messages");
    assert_eq!(seen[0].header("x-test"), Some("Yes"));
    assert_eq!(seen[0].script.as_deref(), Some("w"));
    assert_eq!((seen[0].step, seen[1].step), (Some(0), Some(1)));
    assert_eq!(seen[1].body["model"], "claude-test");
}

#[test]
fn anthropic_reads_an_existing_file_before_replacing_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("old.txt"), "old\n").unwrap();
    let server = ModelServer::start(Scripts::new().default_script(vec![
        Step::write("old.txt", "new\n"),
        Step::write("new.txt", "new\n"),
    ]));
    let mut request = anthropic_request(json!([{"role": "user", "content": "go"}]));
    request["stream"] = json!(false);
    request["system"] = json!(format!("Working directory: {}\n", dir.path().display()));
    request["tools"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "Read", "input_schema": {}}));
    let body = post(&server, "/v1/messages", &request).json();
    let names: Vec<_> = body["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["Read", "Write"]);
    assert_eq!(body["stop_reason"], "tool_use");

    request["messages"] = json!([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": body["content"]},
        {"role": "user", "content": "results"},
    ]);
    let body = post(&server, "/v1/messages", &request).json();
    assert_eq!(body["content"].as_array().unwrap().len(), 1);
    assert_eq!(body["content"][0]["name"], "Write");
}

#[test]
fn anthropic_side_requests_do_not_play_steps() {
    let server = ModelServer::start(Scripts::new().default_script(vec![Step::HttpError(500)]));
    let mut title = anthropic_request(json!([{"role": "user", "content": "name this"}]));
    title.as_object_mut().unwrap().remove("tools");
    title["stream"] = json!(false);
    title["output_config"] = json!({"format": {"type": "json_schema", "schema": {
        "type": "object", "properties": {"title": {"type": "string"}}}}});
    let reply = post(&server, "/v1/messages", &title);
    assert_eq!(reply.status, 200);
    let body = reply.json();
    let text: Value = serde_json::from_str(body["content"][0]["text"].as_str().unwrap()).unwrap();
    assert!(text["title"].is_string());
    assert_eq!(body["usage"]["output_tokens"], 20);
    let seen = server.requests();
    assert!(seen[0].side);
    assert_eq!(seen[0].step, None);
}

// --------------------------------------------------------------- Responses

fn responses_request(input: Value) -> Value {
    json!({
        "model": "gpt-5.5", "stream": true, "instructions": "be brief",
        "tools": [
            {"type": "function", "name": "exec_command", "parameters": {}},
            {"type": "custom", "name": "apply_patch"},
        ],
        "input": input,
    })
}

#[test]
fn responses_writes_with_apply_patch_then_runs_commands() {
    let server = ModelServer::start(Scripts::new().script("w", write_then_say()));
    let prompt = json!([
        {"type": "message", "role": "user", "content": [{"type": "input_text",
            "text": "<environment_context><cwd>/r</cwd></environment_context>"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "[[script:w]]"}]},
    ]);
    let reply = post(&server, "/v1/responses", &responses_request(prompt.clone()));
    let events = reply.events();
    let done = events
        .iter()
        .find(|e| e["type"] == "response.output_item.done")
        .expect("item done");
    assert_eq!(done["item"]["type"], "custom_tool_call");
    assert_eq!(
        done["item"]["input"],
        "*** Begin Patch\n*** Add File: /r/hello.txt\n+hello from mock\n*** End Patch\n"
    );
    let completed = events.last().unwrap();
    assert_eq!(completed["type"], "response.completed");
    assert_eq!(completed["response"]["usage"]["input_tokens"], 100);
    assert_eq!(completed["response"]["usage"]["output_tokens"], 20);

    // Two model items (patch call, message) before: step 2, a command.
    let mut input = prompt.as_array().unwrap().clone();
    input.push(
        json!({"type": "custom_tool_call", "call_id": "c1", "name": "apply_patch", "input": ""}),
    );
    input.push(json!({"type": "custom_tool_call_output", "call_id": "c1", "output": "ok"}));
    input.push(json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "x"}]}));
    input.push(json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "more"}]}));
    let reply = post(&server, "/v1/responses", &responses_request(json!(input)));
    let done = reply
        .events()
        .into_iter()
        .find(|e| e["type"] == "response.output_item.done")
        .expect("item done");
    assert_eq!(done["item"]["type"], "function_call");
    assert_eq!(done["item"]["name"], "exec_command");
    let args: Value = serde_json::from_str(done["item"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["cmd"], "echo appended >> hello.txt");
    assert_eq!(server.requests()[1].step, Some(2));
}

#[test]
fn responses_lists_models() {
    let server = ModelServer::start(Scripts::new());
    let reply = send(
        &server.url(),
        "GET",
        "/v1/models",
        "",
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(reply.status, 200);
    assert!(reply.json()["data"].is_array());
}

// ------------------------------------------------------------------- Chat

#[test]
fn chat_uses_opencode_tools_and_streams_usage() {
    let server = ModelServer::start(Scripts::new().script("w", write_then_say()));
    let request = json!({
        "model": "mock-model", "stream": true,
        "tools": [{"type": "function", "function": {"name": "bash"}},
                  {"type": "function", "function": {"name": "write"}}],
        "messages": [
            {"role": "system", "content": "<env>\n  Working directory: /o\n</env>"},
            {"role": "user", "content": "go [[script:w]]"},
        ],
    });
    let reply = post(&server, "/v1/chat/completions", &request);
    assert!(reply.body.ends_with("data: [DONE]\n\n"));
    let events = reply.events();
    let call = &events[0]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(call["index"], 0);
    assert_eq!(call["function"]["name"], "write");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(
        args,
        json!({"filePath": "/o/hello.txt", "content": "hello from mock\n"})
    );
    assert_eq!(events[1]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(events[2]["usage"]["prompt_tokens"], 100);
    assert_eq!(events[2]["usage"]["completion_tokens"], 20);
}

#[test]
fn chat_without_tools_answers_in_aider_whole_file_format() {
    let server = ModelServer::start(Scripts::new().script("w", write_then_say()));
    // aider's few-shot example turns come before the prompt and must not
    // count as history.
    let request = json!({
        "model": "mock-model",
        "messages": [
            {"role": "system", "content": "Act as an expert software developer."},
            {"role": "user", "content": "Change the greeting"},
            {"role": "assistant", "content": "greeting.py\n```\nprint('hey')\n```\n"},
            {"role": "user", "content": "I switched to a new code base."},
            {"role": "assistant", "content": "Ok."},
            {"role": "user", "content": "make it [[script:w]]"},
        ],
    });
    let reply = post(&server, "/v1/chat/completions", &request);
    let body = reply.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "hello.txt\n```\nhello from mock\n```\n"
    );
    assert_eq!(body["usage"]["total_tokens"], 120);
    assert_eq!(server.requests()[0].step, Some(0));
}

#[test]
fn chat_replays_a_step_whose_reply_aider_dropped() {
    let server = ModelServer::start(Scripts::new().script("w", write_then_say()));
    // aider added the mentioned file to the chat and asks again: the
    // write was not applied, so it is played again.
    let request = json!({"model": "m", "messages": [
        {"role": "system", "content": "Act as an expert software developer."},
        {"role": "user", "content": "edit [[script:w]]"},
        {"role": "assistant", "content": "hello.txt\n```\nhello from mock\n```\n"},
        {"role": "user", "content": "I added these files to the chat: hello.txt\nLet me know if there are others we should add."},
    ]});
    let reply = post(&server, "/v1/chat/completions", &request);
    assert!(reply.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .starts_with("hello.txt\n```"));
    assert_eq!(server.requests()[0].step, Some(0));
}

#[test]
fn chat_title_requests_are_side_requests() {
    let server = ModelServer::start(Scripts::new().script("w", vec![Step::Hang]));
    let request = json!({"model": "m", "messages": [
        {"role": "system", "content": "You are a title generator. You output ONLY a thread title."},
        {"role": "user", "content": "[[script:w]]"},
    ]});
    let reply = post(&server, "/v1/chat/completions", &request);
    assert_eq!(reply.status, 200);
    assert!(server.requests()[0].side);
}

// ----------------------------------------------------------------- Gemini

fn gemini_request(contents: Value) -> Value {
    json!({
        "contents": contents,
        "tools": [{"functionDeclarations": [{"name": "write_file"}, {"name": "run_shell_command"}]}],
    })
}

#[test]
fn gemini_streams_function_calls_with_usage() {
    let server = ModelServer::start(Scripts::new().script("w", write_then_say()));
    let path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";
    let prompt = json!({"role": "user", "parts": [
        {"text": "- **Workspace Directories:**\n  - /g\n- **Directory Structure:**"},
        {"text": "[[script:w]]"}]});
    let reply = post(&server, path, &gemini_request(json!([prompt.clone()])));
    let events = reply.events();
    let part = &events[0]["candidates"][0]["content"]["parts"][0];
    assert_eq!(part["functionCall"]["name"], "write_file");
    assert_eq!(part["functionCall"]["args"]["file_path"], "/g/hello.txt");
    assert_eq!(events[0]["usageMetadata"]["promptTokenCount"], 100);
    assert_eq!(events[0]["usageMetadata"]["candidatesTokenCount"], 20);

    let history = json!([prompt,
        {"role": "model", "parts": [{"functionCall": {"name": "write_file", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "write_file", "response": {}}}]},
        {"role": "model", "parts": [{"text": "Created."}]},
        {"role": "user", "parts": [{"text": "again"}]}]);
    let reply = post(
        &server,
        "/v1beta/models/x:generateContent",
        &gemini_request(history),
    );
    let body = reply.json();
    let call = &body["candidates"][0]["content"]["parts"][0]["functionCall"];
    assert_eq!(call["name"], "run_shell_command");
    assert_eq!(call["args"]["command"], "echo appended >> hello.txt");
}

#[test]
fn gemini_router_gets_schema_shaped_json() {
    let server = ModelServer::start(Scripts::new().default_script(vec![Step::HttpError(400)]));
    let router = json!({
        "contents": [{"role": "user", "parts": [{"text": "route this"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": {
            "type": "OBJECT", "properties": {
                "complexity_reasoning": {"type": "STRING"},
                "complexity_score": {"type": "INTEGER"}}}},
    });
    let reply = post(
        &server,
        "/v1beta/models/gemini-flash-lite:generateContent",
        &router,
    );
    assert_eq!(reply.status, 200);
    let text = reply.json()["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["complexity_score"], 1);
    assert!(server.requests()[0].side);
}

// ------------------------------------------------- selection and injection

#[test]
fn markers_select_scripts_and_unknown_ones_fall_back_to_default() {
    let server = ModelServer::start(
        Scripts::new()
            .script("a", vec![Step::say("from a")])
            .script("b", vec![Step::say("from b")])
            .default_script(vec![Step::say("from default")]),
    );
    let ask = |text: &str| {
        let mut r = anthropic_request(json!([{"role": "user", "content": text}]));
        r["stream"] = json!(false);
        post(&server, "/v1/messages", &r).json()["content"][0]["text"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(ask("[[script:b]]"), "from b");
    assert_eq!(ask("[[script:nope]] then [[script:a]]"), "from a");
    assert_eq!(ask("[[script:nope]]"), "from default");
    assert_eq!(ask("nothing"), "from default");
    // Past the end of a script.
    let mut r = anthropic_request(json!([
        {"role": "user", "content": "[[script:a]]"},
        {"role": "assistant", "content": "from a"},
        {"role": "user", "content": "more"},
    ]));
    r["stream"] = json!(false);
    assert_eq!(
        post(&server, "/v1/messages", &r).json()["content"][0]["text"],
        "done."
    );
}

#[test]
fn http_errors_use_each_dialects_error_body() {
    let server = ModelServer::start(Scripts::new().default_script(vec![Step::HttpError(400)]));
    let a = post(
        &server,
        "/v1/messages",
        &anthropic_request(json!([{"role": "user", "content": "x"}])),
    );
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["error"]["type"], "invalid_request_error");
    let r = post(&server, "/v1/responses", &responses_request(json!([])));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["message"], "mock http_error 400");
    let g = post(
        &server,
        "/v1beta/models/m:streamGenerateContent?alt=sse",
        &gemini_request(json!([{"role": "user", "parts": [{"text": "x"}]}])),
    );
    assert_eq!(g.status, 400);
    assert_eq!(g.json()["error"]["status"], "INVALID_ARGUMENT");

    let server = ModelServer::start(Scripts::new().default_script(vec![Step::HttpError(503)]));
    let c = post(
        &server,
        "/v1/chat/completions",
        &json!({"messages": [{"role": "user", "content": "x"}]}),
    );
    assert_eq!(c.status, 503);
    assert_eq!(c.json()["error"]["type"], "server_error");
}

#[test]
fn hang_never_answers_and_slow_answers_late() {
    let server = ModelServer::start(
        Scripts::new()
            .script("hang", vec![Step::Hang])
            .script("slow", vec![Step::slow(0.5, Step::say("late"))]),
    );
    let body = |m: &str| {
        json!({"messages": [{"role": "user", "content": format!("[[script:{m}]]")}]}).to_string()
    };
    let started = Instant::now();
    let hung = send(
        &server.url(),
        "POST",
        "/v1/chat/completions",
        &body("hang"),
        Duration::from_millis(700),
    );
    assert!(hung.is_none(), "a hung request got an answer");
    // The hung request is recorded while it hangs.
    assert_eq!(server.requests()[0].script.as_deref(), Some("hang"));

    let started_slow = Instant::now();
    let slow = send(
        &server.url(),
        "POST",
        "/v1/chat/completions",
        &body("slow"),
        Duration::from_secs(5),
    )
    .expect("slow answers");
    assert!(started_slow.elapsed() >= Duration::from_millis(500));
    assert_eq!(slow.json()["choices"][0]["message"]["content"], "late");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn dropping_the_server_closes_hung_connections() {
    let server = ModelServer::start(Scripts::new().default_script(vec![Step::Hang]));
    let addr = server.url().trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).unwrap();
    let body = r#"{"messages":[{"role":"user","content":"x"}]}"#;
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    while server.requests().is_empty() {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(server);
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    // EOF (or a reset), not a timeout.
    match stream.read_to_end(&mut rest) {
        Ok(n) => assert_eq!(n, 0),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
    assert!(TcpStream::connect(&addr).is_err(), "still listening");
}

#[test]
fn bad_requests_get_400_and_unknown_paths_404() {
    let server = ModelServer::start(Scripts::new());
    let url = server.url();
    let wait = Duration::from_secs(5);
    let r = send(&url, "POST", "/v1/messages", "{not json", wait).unwrap();
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"].is_string());
    let r = send(&url, "POST", "/v1/messages", r#"{"messages": 3}"#, wait).unwrap();
    assert_eq!(r.status, 400);
    let r = send(&url, "POST", "/elsewhere", "{}", wait).unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(server.requests()[0].body, json!("{not json"));
    assert!(url.starts_with("http://127.0.0.1:") && !url.ends_with('/'));
}

#[test]
fn parallel_conversations_share_one_server() {
    let scripts = (0..8).fold(Scripts::new(), |s, i| {
        s.script(&format!("s{i}"), vec![Step::say(&format!("answer {i}"))])
    });
    let server = ModelServer::start(scripts);
    std::thread::scope(|scope| {
        for i in 0..8 {
            let server = &server;
            scope.spawn(move || {
                let body =
                    json!({"messages": [{"role": "user", "content": format!("[[script:s{i}]]")}]});
                let reply = post(server, "/v1/chat/completions", &body);
                assert_eq!(
                    reply.json()["choices"][0]["message"]["content"],
                    format!("answer {i}")
                );
            });
        }
    });
    assert_eq!(server.requests().len(), 8);
}

// -------------------------------------------------------------- real CLIs

/// The installed CLI, or None with a notice (the test then passes).
fn installed(agent: &str) -> Option<PathBuf> {
    let bin = agent_bin(agent);
    if bin.is_none() {
        eprintln!("SKIPPED: {agent} is not installed (run scripts/install-agents.sh)");
    }
    bin
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `agent` on `prompt` in `env`'s repository, hermetically, killing
/// its process group after `limit`.
fn run_agent(bin: &PathBuf, agent: &str, env: &TestEnv, url: &str, prompt: &str) -> Run {
    use std::os::unix::process::CommandExt;
    let home = env.scratch(&format!("home-{agent}"));
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LANG", "C.UTF-8")
        .envs(hermetic_env())
        .envs(agent_env(agent, url, &home))
        .args(agent_args(agent, prompt))
        .current_dir(&env.repo)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let child = cmd.spawn().expect("spawn agent");
    let pid = child.id() as i32;
    let limit = Duration::from_secs(120);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if done_rx.recv_timeout(limit).is_err() {
            // SAFETY: kill(2) on the child's own process group.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
    });
    let out = child.wait_with_output().expect("wait agent");
    let _ = done_tx.send(());
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The JSON lines of a CLI's stdout.
fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .filter_map(|l| serde_json::from_str(l.trim()).ok())
        .collect()
}

/// Runs `agent` once with a write script and once with an HTTP 400; checks
/// the files, the exit codes and that `usage` finds token counts. Agents
/// with tools also replace the repository's existing README.md and append
/// to it with a shell command (aider answers once per run and runs no
/// commands, so it only writes the new file).
fn drive(agent: &str, code_on_400: i32, usage: impl Fn(&str) -> bool) {
    let Some(bin) = installed(agent) else { return };
    let with_tools = agent != "aider";
    let mut steps = vec![Step::write("hello.txt", "hello from mock\n")];
    if with_tools {
        steps.push(Step::write("README.md", "replaced\n"));
        steps.push(Step::run("echo appended >> README.md"));
    }
    steps.push(Step::say("Done writing."));
    let server = ModelServer::start(
        Scripts::new()
            .script("write", steps)
            .script("fail", vec![Step::HttpError(400)]),
    );
    let env = TestEnv::new();
    let run = run_agent(
        &bin,
        agent,
        &env,
        &server.url(),
        "make hello.txt [[script:write]]",
    );
    let report = |run: &Run| format!("stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert_eq!(run.code, Some(0), "{agent} failed\n{}", report(&run));
    let read = |name: &str| std::fs::read_to_string(env.repo.join(name)).ok();
    assert_eq!(
        read("hello.txt").as_deref(),
        Some("hello from mock\n"),
        "{agent} did not write the file\n{}",
        report(&run)
    );
    if with_tools {
        assert_eq!(
            read("README.md").as_deref(),
            Some("replaced\nappended\n"),
            "{agent} did not replace README.md and append to it\n{}",
            report(&run)
        );
    }
    assert!(usage(&run.stdout), "{agent}: no usage\n{}", report(&run));
    let played: Vec<_> = server
        .requests()
        .iter()
        .filter_map(|r| r.step.filter(|_| r.script.as_deref() == Some("write")))
        .collect();
    let expected: Vec<usize> = if with_tools {
        vec![0, 1, 2, 3]
    } else {
        vec![0]
    };
    assert_eq!(played, expected, "{agent}: steps played");

    let env = TestEnv::new();
    let run = run_agent(&bin, agent, &env, &server.url(), "fail [[script:fail]]");
    assert_eq!(
        run.code,
        Some(code_on_400),
        "{agent} on 400\n{}",
        report(&run)
    );
    assert!(
        run.stdout.contains("mock http_error 400"),
        "{agent}: error not shown\n{}",
        report(&run)
    );
}

#[test]
fn claude_code_against_the_server() {
    drive("claude", 1, |out| {
        json_lines(out).iter().any(|e| {
            e["type"] == "result"
                && e["usage"]["input_tokens"] == 400
                && e["usage"]["output_tokens"] == 80
        })
    });
}

#[test]
fn codex_against_the_server() {
    drive("codex", 1, |out| {
        json_lines(out).iter().any(|e| {
            e["type"] == "turn.completed"
                && e["usage"]["input_tokens"] == 400
                && e["usage"]["output_tokens"] == 80
        })
    });
}

#[test]
fn gemini_against_the_server() {
    drive("gemini", 144, |out| {
        json_lines(out).iter().any(|e| {
            e["type"] == "result"
                && e["stats"]["input_tokens"] == 400
                && e["stats"]["output_tokens"] == 80
        })
    });
}

#[test]
fn opencode_against_the_server() {
    drive("opencode", 1, |out| {
        json_lines(out).iter().any(|e| {
            e["type"] == "step_finish"
                && e["part"]["tokens"]["input"] == 100
                && e["part"]["tokens"]["output"] == 20
        })
    });
}

#[test]
fn aider_against_the_server() {
    // aider exits 0 even when the API call fails; it prints the error.
    drive("aider", 0, |out| {
        out.contains("Tokens: 100 sent, 20 received.")
    });
}
