//! The git door as a hostile attempt meets it: the real git CLI against a
//! door on loopback. An attempt sees and fetches only its task's branch,
//! pushes only under its own prefix, runs none of the repository's hooks,
//! and nothing at all without its token.

use baton_server::git_door::{serve, GitDoor, Input};
use baton_testutils::TestEnv;
use std::sync::Arc;

const BRANCH: &str = "baton/r1/task/t";
const PREFIX: &str = "refs/baton/r1/t/";

/// A door to `env`'s repository with token "tok", served on a runtime of
/// its own: its URL (with the token) and the runtime (the door ends with it).
fn open(env: &TestEnv) -> (String, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let door = GitDoor {
        git_dir: env.repo.join(".git"),
        token: "tok".into(),
        fetch: BRANCH.into(),
        push_prefix: PREFIX.into(),
        input: Arc::new(Input::default()),
    };
    rt.spawn(serve(listener, door));
    (format!("http://127.0.0.1:{port}/git/tok"), rt)
}

/// A second repository, where the attempt works.
fn pod_side(env: &TestEnv) -> std::path::PathBuf {
    let dir = env.scratch("pod");
    std::fs::create_dir_all(&dir).unwrap();
    let out = env
        .command("git")
        .args(["init", "-q"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    dir
}

fn git_in(env: &TestEnv, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    env.command("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn an_attempt_reaches_only_its_branch_and_its_own_refs_through_the_door() {
    let env = TestEnv::new();
    env.git(&["branch", BRANCH]);
    env.git(&["branch", "secret"]);
    let marker = env.scratch("hook-ran");
    let hook = env.repo.join(".git/hooks/post-receive");
    std::fs::write(&hook, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let main_before = env.git(&["rev-parse", "main"]);
    let (url, _rt) = open(&env);
    let pod = pod_side(&env);

    // It sees its branch alone: not main, not HEAD, not another branch.
    let seen = git_in(&env, &pod, &["ls-remote", &url]);
    let seen = String::from_utf8_lossy(&seen.stdout).into_owned();
    assert!(seen.contains(&format!("refs/heads/{BRANCH}")), "{seen}");
    assert_eq!(seen.lines().count(), 1, "{seen}");
    // It cannot fetch another branch, by name or by what it points at.
    let other = git_in(&env, &pod, &["fetch", "-q", &url, "refs/heads/secret"]);
    assert!(!other.status.success());
    env.git(&["commit", "-q", "--allow-empty", "-m", "only on secret"]);
    let hidden = env.git(&["rev-parse", "HEAD"]);
    env.git(&["branch", "-f", "secret", &hidden]);
    env.git(&["reset", "-q", "--hard", "HEAD~1"]);
    for version in ["0", "2"] {
        let by_id = env
            .command("git")
            .args(["-c", &format!("protocol.version={version}")])
            .args(["fetch", "-q", &url, &hidden])
            .current_dir(&pod)
            .output()
            .unwrap();
        assert!(
            !by_id.status.success(),
            "a hidden commit was served by its id (protocol v{version})"
        );
    }
    let own = format!("+refs/heads/{BRANCH}:refs/heads/{BRANCH}");
    assert!(git_in(&env, &pod, &["fetch", "-q", &url, &own])
        .status
        .success());
    assert!(git_in(&env, &pod, &["checkout", "-q", BRANCH])
        .status
        .success());
    std::fs::write(pod.join("work.txt"), "work\n").unwrap();
    assert!(git_in(&env, &pod, &["add", "-A"]).status.success());
    assert!(git_in(&env, &pod, &["commit", "-q", "-m", "w"])
        .status
        .success());

    // A push outside its prefix is refused, and changes nothing.
    for target in ["refs/heads/main", "refs/heads/new", "refs/baton/r1/other/1"] {
        let push = git_in(&env, &pod, &["push", "-q", &url, &format!("HEAD:{target}")]);
        assert!(!push.status.success(), "{target} was taken");
    }
    assert_eq!(env.git(&["rev-parse", "main"]), main_before);
    assert!(env
        .git_output(&["rev-parse", "--verify", "-q", "refs/heads/new"])
        .stdout
        .is_empty());
    // Its own ref is taken, and the repository's hooks do not run for it.
    let mine = format!("HEAD:{PREFIX}1");
    let push = git_in(&env, &pod, &["push", "-q", &url, &mine]);
    assert!(
        push.status.success(),
        "{}",
        String::from_utf8_lossy(&push.stderr)
    );
    assert_eq!(
        env.git(&["rev-parse", &format!("{PREFIX}1")]),
        String::from_utf8_lossy(&git_in(&env, &pod, &["rev-parse", "HEAD"]).stdout).trim()
    );
    assert!(
        !marker.exists(),
        "the repository's post-receive hook ran for a pod's push"
    );

    // Without its token (or with another), nothing.
    let wrong = url.replace("/tok", "/tok2");
    assert!(!git_in(&env, &pod, &["ls-remote", &wrong]).status.success());
    // The token may come in a header instead (a command line shows in
    // `ps`); `~` without it, or with another, is nothing.
    let bare = url.replace("/tok", "/~");
    assert!(!git_in(&env, &pod, &["ls-remote", &bare]).status.success());
    let with = |token: &str| {
        let header = format!("http.extraHeader=Authorization: Bearer {token}");
        git_in(&env, &pod, &["-c", &header, "ls-remote", &bare])
    };
    assert!(!with("tok2").status.success());
    let seen = with("tok");
    assert!(
        seen.status.success(),
        "{}",
        String::from_utf8_lossy(&seen.stderr)
    );
    assert!(String::from_utf8_lossy(&seen.stdout).contains(BRANCH));
}
