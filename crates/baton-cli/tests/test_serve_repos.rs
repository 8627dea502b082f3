//! One `baton serve` for several repositories: each keeps its own store,
//! runs and lock; the API of each is under /api/repos/<name>, a token of
//! one opens them all, MCP tools take the repository, and the CLI of each
//! repository finds its own part of the server.

use crate::common::*;
use crate::test_mcp::{call, runtime};
use crate::test_serve::{http_get, http_post, serve_with, Server};
use baton_testutils::TestEnv;
use rmcp::ServiceExt;
use serde_json::{json, Value};
use std::path::Path;

/// Three repositories (web, api, docs), each with a bash profile whose one
/// task marks that it started in `marks`, then waits there for `go`.
fn three(marks: &Path) -> Vec<TestEnv> {
    ["web", "api", "docs"]
        .iter()
        .map(|name| {
            let env = TestEnv::new();
            let prompt = format!(
                "touch {m}/{name}.started; for i in $(seq 300); do [ -f {m}/go ] && break; sleep 0.1; done; echo {name} > {name}.txt",
                m = marks.display()
            );
            env.write(
                "baton.toml",
                &bash_plan(&format!("\n[[task]]\nid = \"w\"\nprompt = {prompt:?}\n")),
            );
            env.commit_all("plan");
            env
        })
        .collect()
}

fn serve_three(envs: &[TestEnv]) -> Server {
    let args: Vec<String> = ["web", "api", "docs"]
        .iter()
        .zip(envs)
        .flat_map(|(n, e)| ["--repo".to_string(), format!("{n}={}", e.repo.display())])
        .chain(["--addr".to_string(), "127.0.0.1:0".to_string()])
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    serve_with(&envs[0], &args, &[])
}

fn body(answer: &str) -> Value {
    let text = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {answer}"))
}

fn runs(url: &str, repo: &str, token: &str) -> Vec<Value> {
    let (code, answer) = http_get(url, &format!("/api/repos/{repo}/runs"), Some(token));
    assert_eq!(code, 200, "{answer}");
    body(&answer)["runs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn one_server_runs_in_two_repositories_at_once_each_with_its_own_api() {
    let marks = tempfile::tempdir().unwrap();
    let envs = three(marks.path());
    let srv = serve_three(&envs);
    // A token made in one repository opens the others.
    let out = output(baton(&envs[0]).args(["token", "new"]));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (code, answer) = http_get(&srv.url, "/api/repos", Some(&token));
    assert_eq!(code, 200, "{answer}");
    let names: Vec<Value> = body(&answer)["repos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(names, [json!("web"), json!("api"), json!("docs")]);
    assert!(runs(&srv.url, "docs", &token).is_empty());
    let (code, answer) = http_get(&srv.url, "/api/runs", Some(&token));
    assert_eq!(code, 404, "the bare API names no repository: {answer}");
    assert!(answer.contains("/api/repos/<name>"), "{answer}");
    let (code, answer) = http_get(&srv.url, "/api/repos/nope/runs", Some(&token));
    assert_eq!(code, 404, "{answer}");
    assert!(answer.contains("no repository \\\"nope\\\""), "{answer}");
    let (code, _) = http_get(&srv.url, "/api/repos/api/runs", Some("not-a-token"));
    assert_eq!(code, 401);
    // Without a token nothing of any repository answers, the list included
    // (an agent on loopback has none).
    for path in [
        "/api/repos",
        "/api/repos/docs/runs",
        "/api/repos/web/inbox",
        "/api/runs",
    ] {
        let (code, answer) = http_get(&srv.url, path, None);
        assert_eq!(code, 401, "{path}: {answer}");
    }
    let (code, answer) = http_post(
        &srv.url,
        "/api/repos/api/tasks",
        "{\"prompt\": \"x\"}",
        None,
    );
    assert_eq!(code, 401, "{answer}");

    // Runs in api and docs at once: the CLI of each repository hands its
    // run to the server, each to its own part.
    let cli = |i: usize| {
        let mut c = baton(&envs[0]);
        c.current_dir(&envs[i].repo).args(["run", "--json"]);
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c.spawn().unwrap()
    };
    let (api, docs) = (cli(1), cli(2));
    wait_for("both repositories' tasks to be running", 30, || {
        marks.path().join("api.started").exists() && marks.path().join("docs.started").exists()
    });
    std::fs::write(marks.path().join("go"), "").unwrap();
    for (child, name, env) in [(api, "api", &envs[1]), (docs, "docs", &envs[2])] {
        let r = parse_run(child.wait_with_output().unwrap());
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        assert!(
            r.stderr.contains("goes on in `baton serve`"),
            "{}",
            r.stderr
        );
        let branch = r.report["integration_branch"].as_str().unwrap().to_string();
        let shown = env.git(&["show", &format!("{branch}:{name}.txt")]);
        assert_eq!(shown, name);
    }
    assert!(!marks.path().join("web.started").exists());
    // Each repository's API lists its own runs only.
    assert_eq!(runs(&srv.url, "api", &token).len(), 1);
    assert_eq!(runs(&srv.url, "docs", &token).len(), 1);
    assert!(runs(&srv.url, "web", &token).is_empty());

    // `baton add` in a repository queues its task there.
    let out = output(
        baton(&envs[0])
            .current_dir(&envs[2].repo)
            .args(["add", "echo added > added.txt"]),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the added task's run in docs", 20, || {
        runs(&srv.url, "docs", &token).len() == 2
    });
    assert!(runs(&srv.url, "web", &token).is_empty());
    assert_eq!(runs(&srv.url, "api", &token).len(), 1);

    // A second server on one of them is refused, with the first's address.
    let out =
        output(
            baton(&envs[0])
                .current_dir(&envs[1].repo)
                .args(["serve", "--addr", "127.0.0.1:0"]),
        );
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("already serves") && said.contains(&srv.url),
        "{said}"
    );
}

#[test]
fn mcp_tools_start_a_run_in_the_repository_they_name() {
    let marks = tempfile::tempdir().unwrap();
    std::fs::write(marks.path().join("go"), "").unwrap();
    let envs = three(marks.path());
    let srv = serve_three(&envs);
    let out = output(baton(&envs[2]).args(["token", "new"]));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let url = format!("{}/mcp", srv.url);
    runtime().block_on(async {
        use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
        use rmcp::transport::StreamableHttpClientTransport;
        let config =
            StreamableHttpClientTransportConfig::with_uri(url.as_str()).auth_header(token.clone());
        let client =
            ().serve(StreamableHttpClientTransport::from_config(config))
                .await
                .expect("MCP over HTTP with a token of docs");
        // No token, no session: the one endpoint is guarded for every repository.
        let refused = ().serve(StreamableHttpClientTransport::from_uri(url.as_str())).await;
        assert!(refused.is_err(), "a client without a token got in");
        let tasks = json!([{ "id": "m", "prompt": "echo m > m.txt" }]);
        let e = call(&client, "run_start", json!({ "tasks": tasks }))
            .await
            .unwrap_err();
        assert!(
            e.contains("say which with `repo`") && e.contains("web, api, docs"),
            "{e}"
        );
        let e = call(
            &client,
            "run_start",
            json!({ "repo": "nope", "tasks": tasks }),
        )
        .await
        .unwrap_err();
        assert!(e.contains("no repository \"nope\""), "{e}");
        let started = call(
            &client,
            "run_start",
            json!({ "repo": "web", "tasks": tasks }),
        )
        .await
        .unwrap();
        let run = started["run"].as_str().unwrap().to_string();
        let w = call(
            &client,
            "wait",
            json!({ "repo": "web", "run": run, "timeout_s": 60 }),
        )
        .await
        .unwrap();
        assert_eq!(task(&w["report"], "m")["status"], "succeeded", "{w:#}");
        // The run is web's, not another's.
        let e = call(&client, "run_status", json!({ "repo": "api", "run": run }))
            .await
            .unwrap_err();
        assert!(e.contains(&run), "{e}");
        let inbox = call(&client, "inbox_list", json!({})).await.unwrap();
        assert_eq!(inbox["count"], 0, "{inbox:#}");
        client.cancel().await.unwrap();
    });
    assert_eq!(runs(&srv.url, "web", &token).len(), 1);
    assert!(runs(&srv.url, "api", &token).is_empty());
    // The dashboard's session cookie opens every repository too.
    let (code, answer) = http_post(&srv.url, "/api/session", "{}", Some(&token));
    assert_eq!(code, 200, "{answer}");
}

#[test]
fn repositories_come_from_the_user_config_and_bad_lists_are_refused() {
    let marks = tempfile::tempdir().unwrap();
    let envs = three(marks.path());
    // Two directories both named "repo": names are asked for.
    let out = output(baton(&envs[0]).args([
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--repo",
        &envs[1].repo.display().to_string(),
        "--repo",
        &envs[2].repo.display().to_string(),
    ]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("two repositories are named \"repo\""),
        "{said}"
    );
    let twice = format!("b={}/.", envs[1].repo.display());
    let first = format!("a={}", envs[1].repo.display());
    let out = output(baton(&envs[0]).args(["serve", "--repo", &first, "--repo", &twice]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("is given twice"), "{said}");
    // A linked worktree of a repository is that repository (one store, one lock).
    let linked = envs[1].root().join("linked");
    envs[1].git(&[
        "worktree",
        "add",
        "-q",
        "--detach",
        &linked.display().to_string(),
    ]);
    let linked = format!("c={}", linked.display());
    let out = output(baton(&envs[0]).args(["serve", "--repo", &first, "--repo", &linked]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("is given twice"), "{said}");
    let out = output(baton(&envs[0]).args(["serve", "--repo", "x=/nowhere/at/all"]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("/nowhere/at/all"), "{said}");
    // The user config's [[repo]] list, when no --repo is given.
    let config = envs[0].root().join(".config/baton/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        format!(
            "[[repo]]\npath = {:?}\nname = \"one\"\n\n[[repo]]\npath = {:?}\nname = \"two\"\n",
            envs[1].repo.display().to_string(),
            envs[2].repo.display().to_string()
        ),
    )
    .unwrap();
    // Served from one of its repositories: the list. From another
    // repository: that one alone, as without a list.
    let one = envs[1].repo.display().to_string();
    let alone = serve_with(&envs[0], &["--addr", "127.0.0.1:0"], &[]);
    let out = output(baton(&envs[0]).args(["token", "new"]));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (code, answer) = http_get(&alone.url, "/api/repos", Some(&token));
    assert_eq!(code, 200, "{answer}");
    assert_eq!(body(&answer)["repos"][0]["api"], "/api", "{answer}");
    drop(alone);
    let srv = serve_with(&envs[0], &["-C", &one, "--addr", "127.0.0.1:0"], &[]);
    let out = output(
        baton(&envs[0])
            .current_dir(&envs[1].repo)
            .args(["token", "new"]),
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (code, answer) = http_get(&srv.url, "/api/repos", Some(&token));
    assert_eq!(code, 200, "{answer}");
    let repos = body(&answer)["repos"].clone();
    assert_eq!(repos[0]["name"], "one", "{repos:#}");
    assert_eq!(repos[1]["api"], "/api/repos/two", "{repos:#}");
    // `token url` in a served repository opens the dashboard on it.
    let out = output(
        baton(&envs[0])
            .current_dir(&envs[2].repo)
            .args(["token", "url"]),
    );
    let link = String::from_utf8_lossy(&out.stdout);
    assert!(
        link.starts_with(&format!("{}/?repo=two#token=", srv.url)),
        "{link}"
    );
}

#[test]
fn a_repository_that_cannot_open_stops_the_server_and_says_which() {
    let marks = tempfile::tempdir().unwrap();
    let envs = three(marks.path());
    // docs has a hook whose secret is not set.
    envs[2].write(
        "baton.toml",
        &bash_plan(
            "\n[[hook]]\nname = \"deploy\"\ntoken_env = \"NO_SUCH_HOOK_TOKEN\"\nprompt = \"x\"\n",
        ),
    );
    let args: Vec<String> = ["web", "api", "docs"]
        .iter()
        .zip(&envs)
        .flat_map(|(n, e)| ["--repo".to_string(), format!("{n}={}", e.repo.display())])
        .collect();
    let out = output(
        baton(&envs[0])
            .arg("serve")
            .args(&args)
            .args(["--addr", "127.0.0.1:0"]),
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains(&envs[2].repo.display().to_string()) && said.contains("NO_SUCH_HOOK_TOKEN"),
        "the error names the repository and what is missing: {said}"
    );
    for env in &envs {
        assert!(
            !env.repo.join(".git/baton/serve.json").exists(),
            "a discovery file is left"
        );
    }
}
