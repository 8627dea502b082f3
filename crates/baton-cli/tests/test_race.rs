//! Races: one task given to several candidates, each in its own worktree
//! with its own gates; the pick (`first`, `all` ranked by measures or a
//! command) chooses the winner, whose work alone merges; the losers' work
//! stays reachable; a task that needs the race waits for its winner.

use crate::common::*;
use baton_testutils::TestEnv;
use serde_json::Value;

/// Three candidates of one task: `t.1` passes slowly with a one-line diff
/// and a score of 1, `t.2` fails its gate, `t.3` passes fast with a
/// four-line diff and a score of 9. `after` reads what merged.
fn race_plan(race: &str) -> String {
    bash_plan(&format!(
        r#"
[[task]]
id = "t"
candidates = 3
{race}
gates = ["! grep -q broken out.txt"]
prompt = """
case "$BATON_TASK" in
  t.1) sleep 2; echo slow > out.txt; echo 1 > score ;;
  t.2) echo broken > out.txt ;;
  t.3) echo fast > out.txt; printf 'a\nb\nc\n' > extra.txt; echo 9 > score ;;
esac
"""

[[task]]
id = "after"
needs = ["t"]
prompt = "cp out.txt after.txt"
"#
    ))
}

/// The race's candidates in the report, by id: (status, winner, place).
fn candidates(report: &Value) -> Vec<(String, String, bool, Option<u64>)> {
    let t = task(report, "t");
    let list = t["candidates"].as_array().unwrap_or_else(|| panic!("{t}"));
    list.iter()
        .map(|c| {
            (
                c["task"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
                c["winner"].as_bool().unwrap(),
                c["place"].as_u64(),
            )
        })
        .collect()
}

fn merged_out(env: &TestEnv, r: &RunOutput) -> Option<String> {
    let integration = r.report["integration_branch"].as_str().unwrap();
    show(env, integration, "after.txt")
}

fn candidate_ref(env: &TestEnv, r: &RunOutput, n: u32) -> String {
    let run = r.report["run"].as_str().unwrap();
    env.git(&["rev-parse", &format!("refs/baton/{run}/t/candidate-{n}")])
        .trim()
        .to_string()
}

#[test]
fn the_first_to_pass_wins_the_others_are_stopped_and_after_gets_its_work() {
    let env = TestEnv::new();
    env.write("baton.toml", &race_plan("pick = \"first\""));
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = task(&r.report, "t");
    assert_eq!(
        (t["status"].as_str(), t["merged"].as_bool()),
        (Some("succeeded"), Some(true)),
        "{t}"
    );
    assert_eq!(t["pick_reason"], "t.3 passed its gates first", "{t}");
    let c = candidates(&r.report);
    assert_eq!(c[0].1, "stopped", "t.1 was outrun: {c:?}");
    // t.2 fails its gate, unless t.3 passed first on a loaded machine.
    assert!(matches!(c[1].1.as_str(), "failed" | "stopped"), "{c:?}");
    assert_eq!(c[2], ("t.3".into(), "succeeded".into(), true, Some(1)));
    let stopped = task(&r.report, "t.1")["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        stopped.contains("candidate t.3 of task \"t\" passed its gates first"),
        "{stopped}"
    );
    assert_eq!(merged_out(&env, &r).as_deref(), Some("fast\n"));
    // Only the winner merged; every candidate's work is reachable.
    assert_eq!(task(&r.report, "t.3")["merged"], false);
    assert_eq!(
        t["commit"].as_str(),
        Some(candidate_ref(&env, &r, 3).as_str())
    );
    let branch = t["branch"].as_str().unwrap();
    assert_eq!(
        env.git(&["rev-parse", branch]).trim(),
        candidate_ref(&env, &r, 3)
    );
}

#[test]
fn all_candidates_end_then_measures_rank_those_that_passed() {
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        &race_plan("pick = \"all\"\nrank_by = [\"gates\", \"diff_lines\"]"),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let c = candidates(&r.report);
    assert_eq!(
        c,
        [
            ("t.1".into(), "succeeded".into(), true, Some(1)),
            ("t.2".into(), "failed".into(), false, None),
            ("t.3".into(), "succeeded".into(), false, Some(2)),
        ]
    );
    let t = task(&r.report, "t");
    assert_eq!(
        t["pick_reason"],
        "t.1 ranked first of 2 that passed, by diff_lines (2 lines against 5 lines for t.3)",
        "{t}"
    );
    let figures = &t["candidates"][2];
    assert_eq!(
        (
            figures["diff_lines"].as_u64(),
            figures["gate_failures"].as_u64()
        ),
        (Some(5), Some(0))
    );
    assert_eq!(t["candidates"][1]["gate_failures"], 1);
    // The losers' work is kept: the one that failed, and the one that lost.
    for (n, text) in [(2, "broken"), (3, "fast")] {
        let kept = candidate_ref(&env, &r, n);
        assert_eq!(env.git(&["show", &format!("{kept}:out.txt")]).trim(), text);
    }
    assert_eq!(merged_out(&env, &r).as_deref(), Some("slow\n"));
}

#[test]
fn a_rank_command_scores_each_passing_candidate_in_its_worktree() {
    let env = TestEnv::new();
    env.write(
        "baton.toml",
        &race_plan("rank = \"echo scoring; cat score\""),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = task(&r.report, "t");
    let scores = scores_of(t);
    assert_eq!(scores, [Some(1.0), None, Some(9.0)], "{t}");
    assert!(
        t["pick_reason"]
            .as_str()
            .unwrap()
            .contains("t.3 ranked first of 2 that passed, by score (9 against 1 for t.1)"),
        "{t}"
    );
    assert_eq!(merged_out(&env, &r).as_deref(), Some("fast\n"));
}

#[test]
fn no_candidate_passing_fails_the_race_and_skips_what_needs_it() {
    let env = TestEnv::new();
    let plan = race_plan("").replace("! grep -q broken out.txt", "false");
    env.write("baton.toml", &plan);
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let t = task(&r.report, "t");
    assert_eq!(t["status"], "failed");
    assert_eq!(
        t["reason"], "no candidate passed its gates (t.1 failed, t.2 failed, t.3 failed)",
        "{t}"
    );
    assert_eq!(task(&r.report, "after")["status"], "skipped");
    assert_eq!(r.report["integration_commit"], r.report["base_commit"]);
}

/// A judge profile: a script that keeps the prompt it was given and says
/// `said` as its answer.
fn judge_profile(prompt_file: &std::path::Path, said: &str) -> String {
    format!(
        "[agent.judge]\nadapter = \"exec\"\ncommand = [\"bash\", \"-c\", \"printf '%s' \\\"$1\\\" > {}; printf '{said}'\", \"judge\"]\n",
        prompt_file.display()
    )
}

#[test]
fn a_judge_reads_each_passing_candidates_work_and_names_the_winner() {
    let env = TestEnv::new();
    let prompt = env.scratch("judge-prompt.txt");
    let said = "Both pass.\\\\nWINNER: t.3\\\\nREASON: it lists its extra lines";
    let plan = race_plan("pick = \"judge\"\njudge = \"judge\"");
    env.write(
        "baton.toml",
        &format!("{}\n{plan}", judge_profile(&prompt, said)),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = task(&r.report, "t");
    assert_eq!(
        t["pick_reason"], "the judge (judge) named t.3: it lists its extra lines",
        "{t}"
    );
    assert_eq!(
        t["attempts"], 1,
        "the judge ran once, as the race's attempt: {t}"
    );
    assert_eq!(merged_out(&env, &r).as_deref(), Some("fast\n"));
    let p = std::fs::read_to_string(&prompt).unwrap();
    assert!(
        p.contains("=== Candidate t.1 (agent sh; gates: passed at the first try"),
        "{p}"
    );
    assert!(
        p.contains("+fast") && p.contains("+slow") && p.contains("extra.txt"),
        "{p}"
    );
    assert!(
        !p.contains("Candidate t.2"),
        "a candidate that failed is not judged: {p}"
    );
    let kinds = store_rows(&env, "SELECT kind FROM attempts WHERE task_id = 't'");
    assert_eq!(kinds, ["judge"]);
}

#[test]
fn a_judge_that_names_nobody_falls_back_to_the_measures() {
    let env = TestEnv::new();
    let prompt = env.scratch("judge-prompt.txt");
    let plan = race_plan("judge = \"judge\"");
    env.write(
        "baton.toml",
        &format!("{}\n{plan}", judge_profile(&prompt, "WINNER: t.2")),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = task(&r.report, "t");
    assert_eq!(
        t["pick_reason"],
        "the judge named \"t.2\", which is no candidate that passed (t.1, t.3); ranked by gates, diff_lines, cost and time instead: t.1 ranked first of 2 that passed, by diff_lines (2 lines against 5 lines for t.3)",
        "{t}"
    );
    assert_eq!(merged_out(&env, &r).as_deref(), Some("slow\n"));
}

#[test]
fn a_race_killed_at_any_moment_resumes_without_redoing_a_candidate_and_picks_the_same() {
    for point in ["agent-ended@2", "gates@3", "picked", "merged"] {
        let env = TestEnv::new();
        let prompt = env.scratch("judge-prompt.txt");
        // A judge asked twice would change its mind: t.1 first, then t.3.
        let seen = env.scratch("judged");
        let said = format!(
            "$(test -e {s} && echo t.3 || (touch {s}; echo t.1))",
            s = seen.display()
        );
        let judge = judge_profile(&prompt, "").replace(
            "printf ''",
            &format!("echo \\\"WINNER: {said}\\\"; echo REASON: it is mine"),
        );
        let plan = race_plan("judge = \"judge\"");
        env.write("baton.toml", &format!("{judge}\n{plan}"));
        let (before, r) = crash_then_resume(&env, point);
        for id in ["t.1", "t.2", "t.3"] {
            let was = task(&before, id);
            if matches!(was["status"].as_str(), Some("succeeded" | "failed")) {
                assert_eq!(
                    task(&r.report, id)["attempts"],
                    was["attempts"],
                    "{point}: {id} ran again"
                );
            }
        }
        let t = task(&r.report, "t");
        assert_eq!(
            t["pick_reason"], "the judge (judge) named t.1: it is mine",
            "{point}: {t}"
        );
        assert_eq!(t["merged"], true, "{point}: {t}");
        assert_eq!(merged_out(&env, &r).as_deref(), Some("slow\n"), "{point}");
        let judged = store_rows(
            &env,
            "SELECT COUNT(*) FROM attempts WHERE task_id = 't' AND status != 'interrupted'",
        );
        assert_eq!(judged, ["1"], "{point}: the judge ran once");
    }
}

#[test]
fn a_person_picks_another_candidate_before_the_race_merges() {
    let env = TestEnv::new();
    env.write("baton.toml", &race_plan("approve = true"));
    let child = spawn_baton(&env, &["run", "--json"]);
    wait_for_task(&env, "t", "awaiting_approval");
    let pick = |args: &[&str]| {
        let out = output(baton(&env).arg("pick").args(args));
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, said) = pick(&["t", "2"]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("candidate t.2 did not pass its gates (failed)"),
        "{said}"
    );
    let (code, said) = pick(&["t", "t.9"]);
    assert!(
        code == Some(1)
            && said.contains("has no candidate \"t.9\" (its candidates: t.1, t.2, t.3)"),
        "{said}"
    );
    let (code, said) = pick(&["after", "1"]);
    assert!(
        code == Some(1) && said.contains("task \"after\" is no race"),
        "{said}"
    );
    let (code, said) = pick(&["t", "1"]);
    assert!(
        code == Some(1) && said.contains("t.1 is the winner of \"t\" already"),
        "{said}"
    );
    let (code, said) = pick(&["t", "3"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("candidate t.3 is its winner now; approve it to merge (baton approve t)"),
        "{said}"
    );
    let out = output(baton(&env).args(["approve", "t"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = parse_run(child.wait_with_output().unwrap());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = task(&r.report, "t");
    assert_eq!(
        t["pick_reason"], "picked by hand (baton pick) in place of t.1",
        "{t}"
    );
    let places: Vec<Option<u64>> = t["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["place"].as_u64())
        .collect();
    assert_eq!(
        places,
        [Some(2), None, Some(1)],
        "the person's pick comes first: {t}"
    );
    let winners: Vec<bool> = t["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["winner"].as_bool().unwrap())
        .collect();
    assert_eq!(winners, [false, false, true]);
    assert_eq!(merged_out(&env, &r).as_deref(), Some("fast\n"));
    let (code, said) = pick(&["t", "1"]);
    assert!(
        code == Some(2) && said.contains("nothing can pick its tasks now"),
        "{said}"
    );
}

#[test]
fn a_race_whose_winner_conflicts_goes_to_the_resolver_in_the_races_own_desk() {
    let env = TestEnv::new();
    let keep_both = crate::test_resolve::KEEP_BOTH;
    let plan = bash_plan(&format!(
        r#"
[agent.fixer]
adapter = "exec"
command = ["bash", "-ec", {keep_both:?}]

[run]
max_parallel = 3
resolver = "fixer"

[[task]]
id = "a"
prompt = "printf 'from a\n' > shared.txt"

[[task]]
id = "r"
candidates = 2
pick = "first"
on_conflict = "resolve"
gates = ["! grep -q '<<<<<<<' shared.txt"]
prompt = "sleep 0.5; printf 'from r\n' > shared.txt"
"#
    ));
    env.write("baton.toml", &plan);
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}\n{:#}", r.stderr, r.report);
    let t = task(&r.report, "r");
    assert_eq!(t["merged"], true, "{t}");
    let shared = show(
        &env,
        r.report["integration_branch"].as_str().unwrap(),
        "shared.txt",
    );
    let shared = shared.unwrap_or_default();
    assert!(
        shared.contains("from a") && shared.contains("from r"),
        "{shared}"
    );
    let kinds = store_rows(&env, "SELECT kind FROM attempts WHERE task_id = 'r'");
    assert_eq!(kinds, ["resolve"], "the resolver worked on the race itself");
}

/// What candidates wrote reaches their judge as text, never as a template:
/// a diff holding `{% endraw %}` and an expression is shown as it is (the
/// task's prompt writes the braces as octal escapes: it is a template too).
#[test]
fn a_candidates_template_text_reaches_the_judge_as_written() {
    let env = TestEnv::new();
    let prompt = env.scratch("judge-prompt.txt");
    let said = "WINNER: t.1\\\\nREASON: r";
    let plan = bash_plan(
        r#"
[[task]]
id = "t"
candidates = 2
judge = "judge"
prompt = "printf '\\173%% endraw %%\\175\\173\\173 6 * 7 \\175\\175\\n' > $BATON_TASK.txt"
"#,
    );
    env.write(
        "baton.toml",
        &format!("{}\n{plan}", judge_profile(&prompt, said)),
    );
    let r = run_json(&env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let p = std::fs::read_to_string(&prompt).unwrap();
    assert!(p.contains("+{% endraw %}{{ 6 * 7 }}"), "{p}");
    assert!(!p.contains("42"), "a candidate's text was rendered: {p}");
}

/// A rank command runs what a candidate wrote: it gets no provider key
/// from baton's environment.
#[test]
fn a_rank_command_gets_no_provider_key() {
    let env = TestEnv::new();
    let rank = r#"rank = "test -z \"$ANTHROPIC_API_KEY$OPENAI_API_KEY\" && echo 1 || echo 0""#;
    env.write("baton.toml", &race_plan(rank));
    let out = output(
        baton(&env)
            .args(["run", "--json"])
            .env("ANTHROPIC_API_KEY", "sk-ant-hostile-test")
            .env("OPENAI_API_KEY", "sk-hostile-test"),
    );
    let r = parse_run(out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = task(&r.report, "t");
    let scores = scores_of(t);
    assert_eq!(scores, [Some(1.0), None, Some(1.0)], "{t}");
}

/// Each candidate's score in a race's report, in the candidates' order.
fn scores_of(race: &Value) -> Vec<Option<f64>> {
    race["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["score"].as_f64())
        .collect()
}
