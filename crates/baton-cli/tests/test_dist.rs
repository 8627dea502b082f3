//! `scripts/dist.sh`: the release archive, the Python wheel and the npm
//! package, each installed into a clean place, and the installed `baton`
//! runs the demo plan.

use crate::common::*;
use baton_testutils::TestEnv;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `cmd`, panicking with its output unless it succeeds; its stdout.
fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The installed `baton` says its version and runs examples/parallel.toml.
fn runs_the_demo(installed: &Path, version: &str) {
    let said = ok(Command::new(installed).arg("--version"));
    assert_eq!(said.trim(), version, "{}", installed.display());
    let env = TestEnv::new();
    let plan = std::fs::read_to_string(root().join("examples/parallel.toml")).unwrap();
    env.write("baton.toml", &plan);
    env.commit_all("plan");
    let r = parse_run(output(env.command(installed).args(["run", "--json"])));
    assert_eq!(r.code, 0, "{}: {}", installed.display(), r.stderr);
    let merged = r.report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["merged"] == true)
        .count();
    assert_eq!(merged, 3, "{:#}", r.report);
}

#[test]
fn dist_builds_an_archive_a_wheel_and_an_npm_package_that_install_and_run() {
    let env = TestEnv::new();
    let out = env.scratch("dist");
    // `--out` relative to where it is run; npm's cache and logs in the
    // test's own directory.
    let npm_cache = env.scratch("npm-cache");
    ok(Command::new(root().join("scripts/dist.sh"))
        .args(["--binary", baton_bin(), "--out", "dist"])
        .current_dir(env.root())
        .env("npm_config_cache", &npm_cache)
        .env("npm_config_update_notifier", "false"));
    let version = ok(Command::new(baton_bin()).arg("--version"))
        .trim()
        .to_string();
    let number = version.trim_start_matches("baton ");
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let find = |prefix: &str, suffix: &str| {
        let name = names
            .iter()
            .find(|n| n.starts_with(prefix) && n.ends_with(suffix))
            .unwrap_or_else(|| panic!("no {prefix}*{suffix} in {names:?}"));
        out.join(name)
    };
    let archive = find(&format!("baton-{number}-"), ".tar.gz");
    let wheel = find(
        &format!("baton_conductor-{number}-py3-none-manylinux_"),
        ".whl",
    );
    let npm = find(&format!("baton-conductor-{number}"), ".tgz");
    // Their checksums, as `sha256sum -c` reads them.
    ok(Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&out));

    // The archive: binary, man page, completions, licences.
    let unpacked = env.scratch("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    ok(Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&unpacked));
    let stem = archive
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace(".tar.gz", "");
    let dir = unpacked.join(stem);
    for f in [
        "baton.1",
        "completions/baton.bash",
        "completions/_baton",
        "completions/baton.fish",
        "LICENSE-MIT",
        "LICENSE-APACHE",
        "README.md",
    ] {
        let text = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        assert!(!text.is_empty(), "{f} is missing or empty");
    }
    assert!(std::fs::read_to_string(dir.join("baton.1"))
        .unwrap()
        .contains(".TH baton"));
    runs_the_demo(&dir.join("baton"), &version);

    // The wheel, into a fresh virtual environment, from the file alone.
    let venv = env.scratch("venv");
    ok(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    ok(Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "--no-index", "--no-deps"])
        .arg(&wheel));
    runs_the_demo(&venv.join("bin/baton"), &version);
    let shown = ok(Command::new(venv.join("bin/pip")).args(["show", "baton-conductor"]));
    assert!(shown.contains(&format!("Version: {number}")), "{shown}");

    // The npm package, into a fresh global prefix, offline.
    let prefix = env.scratch("npm-prefix");
    ok(Command::new("npm")
        .args([
            "install",
            "-g",
            "--offline",
            "--no-audit",
            "--no-fund",
            "--prefix",
        ])
        .arg(&prefix)
        .arg(&npm)
        .env("npm_config_cache", &npm_cache)
        .env("npm_config_update_notifier", "false"));
    runs_the_demo(&prefix.join("bin/baton"), &version);
    let manifest = prefix.join("lib/node_modules/baton-conductor/package.json");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
    assert_eq!(manifest["os"], serde_json::json!(["linux"]), "{manifest:#}");
    assert_eq!(manifest["bin"]["baton"], "bin/baton", "{manifest:#}");
}
