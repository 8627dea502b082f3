//! The fake agent itself must do what its scripts say, or every engine test
//! built on it proves nothing.

use std::process::Command;

fn fake(script: &str, dir: &std::path::Path, attempt: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fake-agent"))
        .arg(script)
        .current_dir(dir)
        .env("BATON_ATTEMPT", attempt)
        .output()
        .expect("run fake-agent")
}

#[test]
fn runs_a_script_until_the_first_blank_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = fake(
        "write a.txt hi\\nthere; say done\n\nsay ignored",
        dir.path(),
        "1",
    );
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a.txt")).unwrap(),
        "hi\nthere\n"
    );
}

#[test]
fn exits_with_code_and_honours_on_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let out = fake("on-attempt 1 exit 4; say second", dir.path(), "1");
    assert_eq!(out.status.code(), Some(4));
    let out = fake("on-attempt 1 exit 4; say second", dir.path(), "2");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "second\n");
}

#[test]
fn rejects_unknown_statements() {
    let dir = tempfile::tempdir().unwrap();
    let out = fake("frobnicate", dir.path(), "1");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown statement"));
}
