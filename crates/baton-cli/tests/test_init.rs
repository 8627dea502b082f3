//! `baton init`: a first plan for the repository, from the agent CLIs on
//! PATH and the kind of project; never over a file.

use crate::common::*;
use baton_testutils::TestEnv;

/// `baton init` with only these agent CLIs (stand-ins) and git on PATH.
fn init_with(env: &TestEnv, clis: &[&str]) -> std::process::Output {
    let bin = env.scratch("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for cli in clis {
        let p = bin.join(cli);
        std::fs::write(&p, "#!/bin/sh\necho 1.0\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    path_with_git(&bin);
    output(baton(env).arg("init").env("PATH", &bin))
}

#[test]
fn init_in_a_rust_project_with_two_agents() {
    let env = TestEnv::new();
    env.write("Cargo.toml", "[package]\nname = \"x\"\n");
    let out = init_with(&env, &["codex", "claude"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    insta::assert_snapshot!("init_rust_said", String::from_utf8_lossy(&out.stdout));
    let plan = std::fs::read_to_string(env.repo.join("baton.toml")).unwrap();
    insta::assert_snapshot!("init_rust_plan", plan);
    // What it wrote is a valid plan.
    let check = output(baton(&env).arg("check"));
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn init_guesses_each_kind_of_project_s_test_command() {
    for (file, gate) in [
        ("package.json", "npm test"),
        ("pyproject.toml", "python3 -m pytest -q"),
        ("go.mod", "go test ./..."),
        ("Makefile", "make test"),
    ] {
        let env = TestEnv::new();
        env.write(file, "\n");
        let out = init_with(&env, &["gemini"]);
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let plan = std::fs::read_to_string(env.repo.join("baton.toml")).unwrap();
        assert!(
            plan.contains(&format!("gates = [{gate:?}]")),
            "{file}: {plan}"
        );
        assert!(
            plan.contains("[agent.gemini]") && plan.contains("agent = \"gemini\""),
            "{plan}"
        );
    }
}

#[test]
fn init_with_no_agent_cli_writes_a_plan_that_runs() {
    let env = TestEnv::new();
    let out = init_with(&env, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("no agent CLI found on PATH"), "{said}");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(
        show(&env, integration, "HELLO.txt").as_deref(),
        Some("hello from baton\n")
    );
}

#[test]
fn init_never_overwrites_a_plan() {
    let env = TestEnv::new();
    env.write("baton.toml", "# mine\n");
    let out = init_with(&env, &["claude"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("never overwrites"));
    assert_eq!(
        std::fs::read_to_string(env.repo.join("baton.toml")).unwrap(),
        "# mine\n"
    );
}
