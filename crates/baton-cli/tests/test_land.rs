//! `baton land`: a finished run's work into the branch it started from.

use crate::common::*;
use baton_testutils::TestEnv;

fn finished_run(env: &TestEnv) -> RunOutput {
    write_plan(
        env,
        "[[task]]\nid = \"a\"\nprompt = \"write a.txt from the run\"\n",
    );
    env.commit_all("plan");
    let r = run_json(env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r
}

#[test]
fn land_fast_forwards_the_branch_and_its_checkout() {
    let env = TestEnv::new();
    let r = finished_run(&env);
    let out = output(baton(&env).arg("land"));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("fast-forward"), "{said}");
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(
        env.git(&["rev-parse", "main"]),
        env.git(&["rev-parse", integration])
    );
    assert_eq!(
        std::fs::read_to_string(env.repo.join("a.txt")).unwrap(),
        "from the run\n",
        "the checkout followed the branch"
    );
    let again = output(baton(&env).arg("land"));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds"));
}

#[test]
fn land_into_another_branch_leaves_the_one_it_started_from() {
    let env = TestEnv::new();
    let before = env.git(&["rev-parse", "HEAD"]);
    env.git(&["branch", "release", &before]);
    let r = finished_run(&env);
    let main = env.git(&["rev-parse", "main"]);
    let out = output(baton(&env).args(["land", "--into", "release"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(
        env.git(&["show", "release:a.txt"]),
        env.git(&["show", &format!("{integration}:a.txt")])
    );
    assert_eq!(env.git(&["rev-parse", "main"]), main, "main is left alone");
    let out = output(baton(&env).args(["land", "--into", "nowhere"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nowhere"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn land_merges_when_the_branch_moved_on() {
    let env = TestEnv::new();
    finished_run(&env);
    env.write("mine.txt", "my own work\n");
    env.commit_all("meanwhile");
    let out = output(baton(&env).arg("land"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parents = env.git(&["rev-list", "--parents", "-n", "1", "main"]);
    assert_eq!(
        parents.split_whitespace().count(),
        3,
        "a merge commit: {parents}"
    );
    assert!(env.repo.join("a.txt").exists() && env.repo.join("mine.txt").exists());
    let message = env.git(&["log", "-1", "--format=%B", "main"]);
    assert!(
        message.contains("baton: land run") && message.contains("- a (succeeded)"),
        "{message}"
    );
}

#[test]
fn land_never_touches_a_checkout_with_changes_of_its_own() {
    let env = TestEnv::new();
    finished_run(&env);
    let before = env.git(&["rev-parse", "main"]);
    env.write("baton.toml", "# edited by hand\n");
    let out = output(baton(&env).arg("land"));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("with changes of its own (baton.toml)"),
        "{said}"
    );
    assert_eq!(env.git(&["rev-parse", "main"]), before);
    assert_eq!(
        std::fs::read_to_string(env.repo.join("baton.toml")).unwrap(),
        "# edited by hand\n"
    );
    assert!(!env.repo.join("a.txt").exists());
}

#[test]
fn land_pushes_to_a_remote() {
    let env = TestEnv::new();
    finished_run(&env);
    let remote = env.scratch("remote.git");
    env.git(&["init", "-q", "--bare", remote.to_str().unwrap()]);
    env.git(&["remote", "add", "origin", remote.to_str().unwrap()]);
    let out = output(baton(&env).args(["land", "--push", "origin"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pushed = env.git(&["--git-dir", remote.to_str().unwrap(), "rev-parse", "main"]);
    assert_eq!(pushed, env.git(&["rev-parse", "main"]));
}

#[test]
fn land_pr_pushes_the_integration_branch_and_asks_gh() {
    let env = TestEnv::new();
    write_plan(
        &env,
        "[[task]]\nid = \"a\"\nprompt = \"write a.txt from the run\"\ngates = [\"test -e a.txt\"]\n",
    );
    env.commit_all("plan");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let run = r.report["run"].as_str().unwrap().to_string();
    let remote = env.scratch("remote.git");
    env.git(&["init", "-q", "--bare", remote.to_str().unwrap()]);
    env.git(&["remote", "add", "origin", remote.to_str().unwrap()]);
    // A recording stand-in for the GitHub CLI: the service is outside.
    let bin = env.scratch("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let said = env.scratch("gh-args");
    let gh = bin.join("gh");
    std::fs::write(
        &gh,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {}\necho https://example.invalid/pr/1\n",
            said.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&gh, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = output(baton(&env).args(["land", "--pr"]).env("PATH", path));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "https://example.invalid/pr/1"
    );
    let args = std::fs::read_to_string(&said).unwrap();
    let args: Vec<&str> = args.lines().collect();
    let integration = format!("baton/{run}/integration");
    assert_eq!(
        &args[..6],
        [
            "pr",
            "create",
            "--base",
            "main",
            "--head",
            integration.as_str()
        ]
    );
    assert!(args.contains(&"--title") && args.iter().any(|a| a.starts_with("baton: run")));
    // The description: each task's status, result, gates and usage.
    assert!(
        args.iter()
            .any(|a| a.contains("| a | succeeded |") && a.contains("`test -e a.txt` passed")),
        "{args:?}"
    );
    let pushed = env.git(&[
        "--git-dir",
        remote.to_str().unwrap(),
        "rev-parse",
        &integration,
    ]);
    assert_eq!(pushed, env.git(&["rev-parse", &integration]));
    assert_ne!(
        env.git(&["rev-parse", "main"]),
        pushed,
        "nothing landed locally"
    );
}

#[test]
fn land_refuses_a_run_that_is_going_on() {
    let env = TestEnv::new();
    let mut child = hanging_run(&env);
    let out = output(baton(&env).arg("land"));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("is still going on"), "{said}");
    let _ = output(baton(&env).args(["stop", "t"]));
    child.wait().unwrap();
}

#[test]
fn land_squash_makes_one_commit_of_the_run() {
    let env = TestEnv::new();
    finished_run(&env);
    let before = env.git(&["rev-parse", "main"]);
    let out = output(baton(&env).args(["land", "--squash"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parents = env.git(&["rev-list", "--parents", "-n", "1", "main"]);
    assert_eq!(
        parents.split_whitespace().collect::<Vec<_>>()[1..],
        [before.trim()]
    );
    assert!(env.repo.join("a.txt").exists());
}

#[test]
fn run_land_merge_lands_an_unattended_run_that_succeeded() {
    let env = TestEnv::new();
    write_plan(
        &env,
        "[run]\nland = \"merge\"\n\n[[task]]\nid = \"a\"\nprompt = \"write a.txt landed\"\n",
    );
    env.commit_all("plan");
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("landed run"), "{}", r.stderr);
    let integration = r.report["integration_branch"].as_str().unwrap();
    assert_eq!(
        env.git(&["rev-parse", "main"]),
        env.git(&["rev-parse", integration])
    );
    assert_eq!(
        std::fs::read_to_string(env.repo.join("a.txt")).unwrap(),
        "landed\n"
    );
}
