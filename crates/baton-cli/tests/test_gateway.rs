//! The model gateway with the real agent CLIs: Claude Code, Codex and
//! Gemini CLI reach the scripted model server only through baton's
//! gateway (their own base URLs lead nowhere), with a token of their
//! attempt's as their key; the server sees the real key, the agents never
//! do, and every token is counted at the wire.

use crate::common::*;
use crate::test_real_agents::{bins, run_file_tasks, write_file_tasks};
use baton_testutils::model_server::{baton_profile, ModelServer, Scripts, Step, INPUT_TOKENS};
use baton_testutils::TestEnv;
use serde_json::Value;

const REAL_KEY: &str = "sk-real-provider-key-7781";

/// Where each CLI's key goes, and the header the provider reads it from
/// (aider and opencode speak an OpenAI-compatible API here).
fn key_of(agent: &str) -> (&'static str, &'static str) {
    match agent {
        "claude" => ("ANTHROPIC_API_KEY", "x-api-key"),
        "gemini" => ("GEMINI_API_KEY", "x-goog-api-key"),
        _ => ("OPENAI_API_KEY", "authorization"),
    }
}

fn provider_of(agent: &str) -> &'static str {
    match agent {
        "claude" => "anthropic",
        "gemini" => "gemini",
        _ => "openai",
    }
}

/// The plan: each agent behind the gateway (by default: its profile has a
/// key, and says nothing of the gateway); its profile's own base URL is
/// the model server's (the gateway's upstream for it: an existing setup
/// keeps working), and `[gateway.providers]` names it too (Codex keeps its
/// base URL in its config, which baton does not read). The agent itself
/// gets the gateway and a token: a request that bypassed the gateway would
/// reach the server with the token, which every test checks never happens.
/// `more` before the profiles, `profile` in each.
fn gateway_plan(
    env: &TestEnv,
    agents: &[&str],
    server: &ModelServer,
    more: &str,
    profile: &str,
) -> String {
    let bins = bins(agents).unwrap_or_default();
    let mut plan = format!("[run]\nmax_parallel = 3\n\n{more}");
    for p in ["anthropic", "openai", "gemini"] {
        plan.push_str(&format!(
            "[gateway.providers.{p}]\nurl = {:?}\n\n",
            server.url()
        ));
    }
    for (a, bin) in agents.iter().zip(&bins) {
        let home = env.scratch(&format!("home-{a}"));
        let (var, _) = key_of(a);
        let p = baton_profile(a, a, bin, &server.url(), &home, &[(var, REAL_KEY)], profile);
        // opencode's key is its provider's, in its config.
        let p = match *a {
            "opencode" => p.replace("mock-key", REAL_KEY),
            _ => p,
        };
        plan.push_str(&p);
    }
    plan
}

#[test]
fn the_five_clis_work_through_the_gateway_and_never_hold_the_key() {
    let agents = ["claude", "codex", "gemini", "opencode", "aider"];
    if bins(&agents).is_none() {
        return;
    }
    let mut scripts = Scripts::new();
    for a in agents {
        scripts = scripts.script(
            a,
            vec![
                Step::write(&format!("{a}.txt"), &format!("written by {a}\n")),
                // What the agent's own environment holds, from inside it.
                Step::run(&format!("env > {a}-env.txt")),
                Step::say(&format!("{a} wrote its file")),
            ],
        );
    }
    let server = ModelServer::start(scripts);
    let env = TestEnv::new();
    let plan = gateway_plan(&env, &agents, &server, "", "");
    // Claude Code's key comes from a command, Gemini CLI's from a file:
    // neither is in the plan.
    let key_file = env.scratch("gemini.key");
    std::fs::write(&key_file, format!("{REAL_KEY}\n")).unwrap();
    let command = format!("printf '%s' {REAL_KEY}").replace("sk-", "s''k-");
    let gemini_key = format!(
        "[gateway.providers.gemini]\nkey_file = {:?}\n",
        key_file.display().to_string()
    );
    let claude_key = format!("[gateway.accounts.claude]\nkey_command = {command:?}\n\n[agent.");
    let plan = plan
        .replace(&format!(", ANTHROPIC_API_KEY = \"{REAL_KEY}\""), "")
        .replace(&format!(", GEMINI_API_KEY = \"{REAL_KEY}\""), "")
        .replace("[gateway.providers.gemini]\n", &gemini_key)
        .replacen("[agent.", &claude_key, 1);
    let in_plan = plan.matches(REAL_KEY).count();
    assert_eq!(
        in_plan, 4,
        "codex's, aider's, opencode's env and config: {plan}"
    );
    let r = run_file_tasks(&env, &agents, plan);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let requests = server.requests();
    for a in agents {
        let t = task(&r.report, a);
        assert_eq!(t["status"], "succeeded", "{a}: {t}");
        // The agent held a token of baton's gateway, and no key (aider
        // runs no commands of the model's here: its environment is not shown).
        if a != "aider" {
            let seen = task_show(&env, &r.report, a, &format!("{a}-env.txt")).unwrap();
            assert!(!seen.contains(REAL_KEY), "{a} saw the key:\n{seen}");
            assert!(seen.contains("baton-gw-"), "{a} has no token:\n{seen}");
        }
        // The provider got the key, from the gateway, on every request.
        let (_, header) = key_of(a);
        let mine: Vec<_> = requests
            .iter()
            .filter(|q| q.header(header).is_some_and(|v| v.contains(REAL_KEY)))
            .filter(|q| match a {
                "claude" => q.path.contains("/messages"),
                "codex" => q.path.contains("/responses") || q.path.ends_with("/models"),
                "gemini" => q.path.contains("/models/"),
                _ => q.path.contains("/chat/completions"),
            })
            .collect();
        assert!(
            !mine.is_empty(),
            "{a}: no request with the key reached the server"
        );
        // Every token counted at the wire: what the gateway recorded of
        // the task's requests adds up to its usage.
        let q =
            format!("SELECT data FROM events WHERE kind = 'gateway_request' AND task_id = '{a}'");
        let told: Vec<Value> = store_rows(&env, &q)
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert!(!told.is_empty(), "{a}: no request through the gateway");
        assert!(
            told.iter().all(|d| d["provider"] == provider_of(a)),
            "{a}: {told:?}"
        );
        let input: u64 = told
            .iter()
            .filter_map(|d| d["usage"]["input"].as_u64())
            .sum();
        assert_eq!(t["usage"]["input_tokens"].as_u64(), Some(input), "{a}: {t}");
        assert!(input >= INPUT_TOKENS, "{a}: {t}");
        assert_eq!(
            t["usage"]["gateway_requests"].as_u64(),
            Some(told.len() as u64),
            "{a}: {t}"
        );
        let answered = told.iter().filter(|d| d["status"] == 200).count();
        assert_eq!(answered, told.len(), "{a}: {told:?}");
    }
    for q in &requests {
        assert!(
            !format!("{:?}", q.headers).contains("baton-gw-"),
            "a token reached the provider: {q:?}"
        );
    }
    // No body was kept: nobody asked (`log_bodies`).
    let found = std::process::Command::new("find")
        .arg(env.repo.join(".git/baton"))
        .args(["-name", "*.gateway.jsonl"])
        .output()
        .unwrap();
    assert!(
        found.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&found.stdout)
    );
    // Nothing baton wrote holds the key.
    assert_nowhere_in_state(&env, REAL_KEY);
}

/// Each model turn costs $1.20 here (120 tokens at $10,000 a million): a
/// $2 budget is crossed by the second turn, and the agent is stopped there.
#[test]
fn a_budget_crossed_mid_conversation_stops_the_agent_at_its_next_request() {
    if bins(&["claude"]).is_none() {
        return;
    }
    let steps = (0..6)
        .map(|i| Step::write(&format!("f{i}.txt"), "x\n"))
        .chain([Step::say("all written")])
        .collect();
    let server = ModelServer::start(Scripts::new().script("spend", steps));
    let env = TestEnv::new();
    // Whatever model Claude Code asks for (its side requests' too).
    let prices = "[prices.\"claude*\"]\ninput = 10000.0\noutput = 10000.0\n\n";
    let mut plan = gateway_plan(&env, &["claude"], &server, prices, "");
    plan.push_str("[[task]]\nid = \"spend\"\nagent = \"claude\"\nprompt = \"Write six files. [[script:spend]]\"\nbudget_usd = 2.0\nretries = 0\n");
    env.write("baton.toml", &plan);
    let r = run_json(&env, &[]);
    let t = task(&r.report, "spend");
    assert_eq!(t["status"], "failed", "{t}");
    let reason = t["reason"].as_str().unwrap();
    assert!(reason.contains("budget exceeded"), "{reason}");
    let cost = t["usage"]["cost_usd"].as_f64().unwrap();
    assert!(
        cost > 2.0 && cost <= 2.0 + 1.2 + 1e-9,
        "spent ${cost}: past the budget by at most one request"
    );
    let turns = server
        .requests()
        .iter()
        .filter(|q| q.script.as_deref() == Some("spend") && q.step.is_some())
        .count();
    assert!(turns < 7, "the agent went on for {turns} turns");
}

/// With its network off, a sandboxed agent's only way out is the gateway.
#[test]
fn a_sandboxed_agent_with_no_network_reaches_its_provider_through_the_gateway() {
    if bins(&["claude"]).is_none() {
        return;
    }
    let env = TestEnv::new();
    // Its key is in a file baton reads, in the repository (which the
    // sandbox shows read-only): hidden from the agent.
    let key_file = env.repo.join("secrets").join("anthropic.key");
    std::fs::create_dir_all(key_file.parent().unwrap()).unwrap();
    std::fs::write(&key_file, format!("{REAL_KEY}\n")).unwrap();
    let server = ModelServer::start(Scripts::new().script(
        "boxed",
        vec![
            Step::run(&format!("cat {} > seen.txt 2>&1; true", key_file.display())),
            Step::write("boxed.txt", "from the box\n"),
            // Whatever shows the key, baton's records mask it.
            Step::say(&format!("done, and the key is {REAL_KEY}")),
        ],
    ));
    let mut plan = gateway_plan(
        &env,
        &["claude"],
        &server,
        "[gateway.accounts.claude]\nkey_file = \"secrets/anthropic.key\"\n\n",
        "sandbox = \"bwrap\"\nnetwork = \"off\"\n",
    );
    plan = plan.replace(&format!(", ANTHROPIC_API_KEY = \"{REAL_KEY}\""), "");
    assert!(!plan.contains(REAL_KEY), "{plan}");
    plan.push_str("[[task]]\nid = \"boxed\"\nagent = \"claude\"\nprompt = \"Write boxed.txt. [[script:boxed]]\"\n");
    env.write("baton.toml", &plan);
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    assert_eq!(
        task_show(&env, &r.report, "boxed", "boxed.txt").as_deref(),
        Some("from the box\n")
    );
    let seen = task_show(&env, &r.report, "boxed", "seen.txt").unwrap_or_default();
    assert!(
        !seen.contains(REAL_KEY),
        "the agent read the key file: {seen}"
    );
    assert!(
        server
            .requests()
            .iter()
            .any(|q| q.header("x-api-key") == Some(REAL_KEY)),
        "the key from the file reached the provider"
    );
    assert_nowhere_in_state(&env, REAL_KEY);
    assert!(
        task(&r.report, "boxed")["usage"]["gateway_requests"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    );
    // The only host it reached is the gateway.
    let q = "SELECT data FROM events WHERE kind = 'sandbox_connection'";
    let hosts = store_rows(&env, q);
    assert!(
        !hosts.is_empty(),
        "{:?}",
        store_rows(
            &env,
            "SELECT kind || ' ' || data FROM events WHERE task_id = 'boxed'"
        )
    );
    let server_host = server.url().trim_start_matches("http://").to_string();
    assert!(hosts.iter().all(|h| !h.contains(&server_host)), "{hosts:?}");
}

/// Three Claude Codes on one account, a task each: (arrival times of the
/// model requests that carried the key, the report).
fn three_on_one_account(server: &ModelServer, account: &str) -> (Vec<std::time::Instant>, Value) {
    let env = TestEnv::new();
    let mut plan = gateway_plan(&env, &["claude"], server, account, "");
    for i in 0..3 {
        plan.push_str(&format!("[[task]]\nid = \"t{i}\"\nagent = \"claude\"\nprompt = \"Write t{i}.txt. [[script:t{i}]]\"\n\n"));
    }
    env.write("baton.toml", &plan);
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let mut at: Vec<_> = server
        .requests()
        .iter()
        .filter(|q| q.header("x-api-key") == Some(REAL_KEY))
        .map(|q| q.at)
        .collect();
    at.sort();
    (at, r.report)
}

fn scripts_for_three() -> Scripts {
    (0..3).fold(Scripts::new(), |s, i| {
        s.script(
            &format!("t{i}"),
            vec![Step::write(&format!("t{i}.txt"), "x\n"), Step::say("done")],
        )
    })
}

/// `rpm = 120`: the account's requests start half a second apart at least,
/// however many agents make them.
#[test]
fn an_accounts_rpm_spaces_the_requests_of_all_its_agents() {
    if bins(&["claude"]).is_none() {
        return;
    }
    let server = ModelServer::start(scripts_for_three());
    let (at, _) = three_on_one_account(&server, "[gateway.accounts.claude]\nrpm = 120\n\n");
    assert!(at.len() >= 6, "{} requests", at.len());
    for w in at.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= std::time::Duration::from_millis(450),
            "two requests {gap:?} apart"
        );
    }
}

/// The provider limits the account once (429, retry-after 2 s): every
/// agent of it waits that out at the gateway, then all go on; the report
/// counts the limit.
#[test]
fn a_limit_seen_once_holds_every_agent_of_the_account_then_all_go_on() {
    use baton_testutils::model_server::{Api, Outage};
    if bins(&["claude"]).is_none() {
        return;
    }
    let outage = Outage::rate_limit(Api::Anthropic, 2).requests(1);
    let server = ModelServer::start(scripts_for_three().outage(outage));
    let (at, report) = three_on_one_account(&server, "");
    let refused: Vec<_> = server
        .requests()
        .iter()
        .filter(|q| q.refused.is_some())
        .map(|q| q.at)
        .collect();
    assert_eq!(refused.len(), 1, "one request was limited");
    // Nothing reached the provider while the account held, but what was
    // already on its way as the limit came (sent before the gateway read
    // the 429: on a loaded machine, a few milliseconds).
    let in_flight = refused[0] + std::time::Duration::from_millis(100);
    let held_until = refused[0] + std::time::Duration::from_millis(1900);
    let during: Vec<_> = at
        .iter()
        .filter(|t| **t > in_flight && **t < held_until)
        .map(|t| t.duration_since(refused[0]))
        .collect();
    assert!(
        during.is_empty(),
        "requests went through during the hold, after the limit by {during:?}"
    );
    let waits: u64 = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["rate_limit_waits"].as_u64().unwrap())
        .sum();
    assert_eq!(waits, 1, "{report:#}");
}

/// A limit the gateway sees holds the account on the board too: a task of
/// the account that becomes ready meanwhile does not start until the
/// provider's `retry-after` has passed (its requests would only wait).
#[test]
fn a_limit_at_the_wire_keeps_the_accounts_next_task_from_starting_until_it_passes() {
    use baton_testutils::model_server::{Api, Outage};
    if bins(&["claude"]).is_none() {
        return;
    }
    let outage = Outage::rate_limit(Api::Anthropic, 4).requests(1);
    let server = ModelServer::start(scripts_for_three().outage(outage));
    let env = TestEnv::new();
    let mut plan = gateway_plan(&env, &["claude"], &server, "", "");
    // `prep` ends once the provider has limited `first` (the test says so),
    // so `later` becomes ready while the limit lasts.
    let flag = env.scratch("limited");
    let wait = format!("until [ -e {} ]; do sleep 0.05; done", flag.display());
    plan.push_str(&format!(
        "[agent.prep]\nadapter = \"exec\"\ncommand = [\"sh\", \"-c\", {wait:?}]\n\n\
         [[task]]\nid = \"first\"\nagent = \"claude\"\nprompt = \"Write t0.txt. [[script:t0]]\"\n\n\
         [[task]]\nid = \"prep\"\nagent = \"prep\"\nprompt = \"wait\"\nmerge = false\n\n\
         [[task]]\nid = \"later\"\nagent = \"claude\"\nneeds = [\"prep\"]\nprompt = \"Write t1.txt. [[script:t1]]\"\n",
    ));
    env.write("baton.toml", &plan);
    let child = spawn_baton(&env, &["run", "--json"]);
    wait_for("the provider to limit a request", 60, || {
        server.requests().iter().any(|q| q.refused.is_some())
    });
    std::fs::write(&flag, "").unwrap();
    let r = parse_run(child.wait_with_output().expect("baton ends"));
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let limited = store_rows(
        &env,
        "SELECT ts FROM events WHERE kind = 'gateway_request' AND json_extract(data, '$.status') = 429",
    );
    assert_eq!(limited.len(), 1, "one request was limited: {limited:?}");
    let limited_at: i64 = limited[0].parse().unwrap();
    let prep_done = task(&r.report, "prep")["started_at_ms"].as_i64().unwrap()
        + task(&r.report, "prep")["duration_ms"].as_i64().unwrap();
    assert!(
        prep_done < limited_at + 3000,
        "prep was done well before the limit passed"
    );
    let later = task(&r.report, "later")["started_at_ms"].as_i64().unwrap();
    assert!(
        later >= limited_at + 3900,
        "later started {} ms after the limit, which lasted 4 s",
        later - limited_at
    );
}

/// The provider over HTTPS, its certificate from a CA of the test's: the
/// gateway reaches it when baton trusts that CA (`SSL_CERT_FILE`), and
/// refuses it otherwise, nothing sent.
#[test]
fn the_gateway_reaches_a_provider_over_https_only_with_a_certificate_it_trusts() {
    use baton_testutils::tls::TestCa;
    let agents = ["claude", "codex", "gemini", "opencode", "aider"];
    if bins(&agents).is_none() {
        return;
    }
    let env = TestEnv::new();
    let ca = TestCa::new(&env.scratch("ca"));
    let scripts = agents.iter().fold(Scripts::new(), |s, a| {
        let file = format!("{a}.txt");
        s.script(
            a,
            vec![Step::write(&file, "over https\n"), Step::say("done")],
        )
    });
    let server = ModelServer::start_tls(scripts, &ca);
    assert!(server.url().starts_with("https://"));
    let profiles = gateway_plan(&env, &agents, &server, "", "");
    // The five CLIs, each through the gateway to the provider over HTTPS.
    write_file_tasks(&env, &agents, profiles.clone());
    let trusted = parse_run(output(
        baton(&env)
            .args(["run", "--json"])
            .env("SSL_CERT_FILE", &ca.ca_pem),
    ));
    assert_eq!(trusted.code, 0, "{}\n{:#}", trusted.stderr, trusted.report);
    for a in agents {
        assert_eq!(
            task_show(&env, &trusted.report, a, &format!("{a}.txt")).as_deref(),
            Some("over https\n"),
            "{a}"
        );
        let (_, header) = key_of(a);
        let keyed = |q: &&baton_testutils::model_server::Recorded| {
            q.header(header).is_some_and(|v| v.contains(REAL_KEY))
        };
        assert!(server.requests().iter().any(|q| keyed(&q)), "{a}");
    }
    let seen = server.requests();

    // The same provider, its CA not trusted: nothing reaches it.
    let mut plan = profiles;
    plan.push_str("[[task]]\nid = \"tls\"\nagent = \"claude\"\nprompt = \"Write tls.txt. [[script:claude]]\"\nretries = 0\n");
    env.write("baton.toml", &plan);
    let untrusted = parse_run(output(
        baton(&env)
            .args(["run", "--json"])
            .env("SSL_CERT_FILE", "/dev/null"),
    ));
    assert_ne!(untrusted.code, 0);
    assert_eq!(task(&untrusted.report, "tls")["status"], "failed");
    assert_eq!(server.requests().len(), seen.len(), "a request got through");
    let run = untrusted.report["run"].as_str().unwrap();
    let q = format!("SELECT COUNT(*) FROM events WHERE run_id = '{run}' AND kind = 'gateway_request' AND json_extract(data, '$.status') = 502");
    assert_ne!(store_rows(&env, &q), ["0"]);
}

/// `log_bodies = true`: each request's and answer's body is kept beside
/// the attempt's log, masked; without it, none is.
#[test]
fn bodies_are_kept_masked_only_when_asked() {
    if bins(&["claude"]).is_none() {
        return;
    }
    let script = vec![Step::write("kept.txt", "x\n"), Step::say("kept them")];
    let server = ModelServer::start(Scripts::new().script("kept", script));
    let env = TestEnv::new();
    let more = "[gateway]\nlog_bodies = true\n\n";
    let mut plan = gateway_plan(&env, &["claude"], &server, more, "");
    // A secret the run knows, in the prompt: the kept request must mask it.
    plan = plan.replacen("env = {", "env = { API_TOKEN = \"sekrit-value-0451\", ", 1);
    plan.push_str("[[task]]\nid = \"kept\"\nagent = \"claude\"\nprompt = \"Write kept.txt; the code is sekrit-value-0451. [[script:kept]]\"\n");
    env.write("baton.toml", &plan);
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let run = r.report["run"].as_str().unwrap();
    let path = env.repo.join(format!(
        ".git/baton/runs/{run}/logs/kept/attempt-1.gateway.jsonl"
    ));
    let kept = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = kept
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!lines.is_empty());
    assert!(kept.contains("[[script:kept]]"), "the request is kept");
    assert!(kept.contains("kept them"), "the answer is kept");
    assert!(!kept.contains("sekrit-value-0451"), "a secret is masked");
    assert!(!kept.contains(REAL_KEY));
}

/// Claude Code's credit runs out behind the gateway: the fallback hands
/// the task to Codex, also behind it, as without the gateway; the task's
/// requests went through it to both providers.
#[test]
fn a_used_up_quota_behind_the_gateway_falls_back_to_another_vendor_as_before() {
    use baton_testutils::model_server::{Api, Outage};
    if bins(&["claude", "codex"]).is_none() {
        return;
    }
    let server = ModelServer::start(
        Scripts::new()
            .script(
                "halves",
                vec![
                    Step::write("half.txt", "first half\n"),
                    Step::write("rest.txt", "second half\n"),
                    Step::say("both halves written"),
                ],
            )
            .outage(Outage::quota(Api::Anthropic).after(1)),
    );
    let env = TestEnv::new();
    let plan = gateway_plan(&env, &["claude", "codex"], &server, "", "");
    let mut plan = plan.replacen(
        "[agent.claude]\n",
        "[agent.claude]\nfallback = [\"codex\"]\n",
        1,
    );
    plan.push_str("[[task]]\nid = \"t\"\nagent = \"claude\"\nprompt = \"Write both halves. [[script:halves]]\"\ntimeout = \"2m\"\n");
    env.write("baton.toml", &plan);
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let t = task(&r.report, "t");
    assert_eq!(t["agents"], serde_json::json!(["claude", "codex"]), "{t}");
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(
        show(&env, integration, "rest.txt").as_deref(),
        Some("second half\n")
    );
    let q = "SELECT DISTINCT json_extract(data, '$.provider') FROM events WHERE kind = 'gateway_request' AND task_id = 't' ORDER BY 1";
    assert_eq!(store_rows(&env, q), ["anthropic", "openai"]);
}
