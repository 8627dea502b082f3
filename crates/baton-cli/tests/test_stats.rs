//! `baton stats`: the scorecard over the runs of a repository, its figures
//! exact for a known history.

use crate::common::*;
use baton_testutils::TestEnv;
use serde_json::Value;

/// Two profiles, four tasks: `steady` succeeds at once once and fails its
/// gate twice on another; `shaky` succeeds at its second try once and
/// fails once. Then a second run where `steady` succeeds again.
#[test]
fn stats_count_each_profiles_tasks_tries_gates_and_failures() {
    let env = TestEnv::new();
    let profiles = "[agent.steady]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\n\n[agent.shaky]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\n\n";
    let first = format!(
        r#"{profiles}[[task]]
id = "a1"
agent = "steady"
prompt = "echo a > a.txt"

[[task]]
id = "a2"
agent = "shaky"
prompt = "[ \"$BATON_ATTEMPT\" -ge 2 ] || exit 1; echo b > b.txt"
retries = 1

[[task]]
id = "a3"
agent = "shaky"
prompt = "exit 3"
on_failure = "continue"

[[task]]
id = "a4"
agent = "steady"
prompt = "echo d > d.txt"
gates = ["test -f nothing-here"]
retries = 1
on_failure = "continue"
"#
    );
    env.write("baton.toml", &first);
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    env.write(
        "baton.toml",
        &format!(
            "{profiles}[[task]]\nid = \"b1\"\nagent = \"steady\"\nprompt = \"echo e > e.txt\"\n"
        ),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let out = output(baton(&env).args(["stats", "--json"]));
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let figures = |l: &Value| {
        let n = |k: &str| l[k].as_u64().unwrap();
        (
            l["name"].as_str().unwrap().to_string(),
            [
                n("tasks"),
                n("first_try"),
                n("after_retries"),
                n("failed"),
                n("gate_failures"),
            ],
        )
    };
    let got: Vec<_> = lines.iter().map(figures).collect();
    assert_eq!(
        got,
        [
            ("steady".to_string(), [3, 2, 0, 1, 2]),
            ("shaky".to_string(), [2, 0, 1, 1, 0]),
        ],
        "{lines:#?}"
    );
    assert!((lines[0]["success_rate"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
    assert!(lines[0]["mean_ms"].as_i64().is_some() && lines[0]["p90_ms"].as_i64().is_some());

    // By model: an exec agent names none.
    let out = output(baton(&env).args(["stats", "--by", "model", "--json"]));
    let lines: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(
        (lines[0]["name"].as_str(), lines[0]["tasks"].as_u64()),
        (Some("unknown"), Some(5))
    );

    // The text says the same, best first.
    let out = output(baton(&env).arg("stats"));
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = text.lines().collect();
    assert!(
        rows[0].starts_with("profile") && rows[0].contains("first try"),
        "{text}"
    );
    assert!(
        rows[1].starts_with("steady") && rows[1].contains("67%"),
        "{text}"
    );
    assert!(
        rows[2].starts_with("shaky") && rows[2].contains("50%"),
        "{text}"
    );

    // A bad --since is refused, saying what.
    let out = output(baton(&env).args(["stats", "--since", "soon"]));
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since \"soon\""));
}

/// A race between `steady` and `shaky` (twice each): the candidates count
/// for their profiles with their wins and losses; the race itself counts
/// for nobody.
#[test]
fn a_race_counts_its_candidates_wins_and_losses_and_not_itself() {
    let env = TestEnv::new();
    let plan = r#"[agent.steady]
adapter = "exec"
command = ["bash", "-ec"]

[agent.shaky]
adapter = "exec"
command = ["bash", "-ec"]

[[task]]
id = "r"
agents = ["shaky", "steady", "shaky", "steady"]
rank_by = ["diff_lines"]
prompt = """
case "$BATON_TASK" in
  r.1) exit 1 ;;
  r.2) echo one > out.txt ;;
  r.3) printf 'a\nb\n' > out.txt ;;
  r.4) printf 'a\nb\nc\n' > out.txt ;;
esac
"""
"#;
    env.write("baton.toml", plan);
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        task(&r.report, "r")["candidates"][1]["winner"],
        true,
        "{:#}",
        r.report
    );
    let out = output(baton(&env).args(["stats", "--json"]));
    let lines: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<(String, u64, u64, u64, u64)> = lines
        .iter()
        .map(|l| {
            let n = |k: &str| l[k].as_u64().unwrap();
            (
                l["name"].as_str().unwrap().to_string(),
                n("tasks"),
                n("failed"),
                n("wins"),
                n("losses"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("steady".to_string(), 2, 0, 1, 1),
            ("shaky".to_string(), 2, 1, 0, 2)
        ],
        "{lines:#?}"
    );
    let out = output(baton(&env).arg("stats"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().next().unwrap().ends_with("won lost"), "{text}");
}
