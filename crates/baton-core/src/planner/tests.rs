use super::*;
use crate::template::{render, PromptContext};

const USER_PLAN: &str = r#"
[agent.claude]
adapter = "claude"
model = "opus"

[agent.sh]
adapter = "exec"
command = ["bash", "-ec"]

[prices."opus"]
input = 15.0
output = 75.0

[defaults]
agent = "claude"

[[task]]
id = "x"
prompt = "y"
"#;

fn profiles() -> Profiles {
    Profiles::from_plan_text("baton.toml", USER_PLAN).unwrap()
}

#[test]
fn profiles_are_read_from_a_plan_and_chosen_by_name_or_default() {
    let p = profiles();
    assert_eq!(p.names(), ["claude", "sh"]);
    assert_eq!(p.choose(None).unwrap(), "claude");
    assert_eq!(p.choose(Some("sh")).unwrap(), "sh");
    let err = p.choose(Some("codex")).unwrap_err().to_string();
    assert!(
        err.contains("\"codex\"") && err.contains("claude, sh"),
        "{err}"
    );
    let text = p.text();
    assert!(
        text.contains("[agent.claude]") && text.contains("[prices.opus]"),
        "{text}"
    );
    assert!(
        !text.contains("[[task]]") && !text.contains("defaults"),
        "{text}"
    );
    let none = Profiles::from_plan_text("p", "").unwrap();
    assert!(matches!(none.choose(None), Err(PlannerError::NoAgent)));
    let bad = Profiles::from_plan_text("p.toml", "[agent")
        .unwrap_err()
        .to_string();
    assert!(bad.starts_with("p.toml: "), "{bad}");
}

fn request<'a>(p: &'a Profiles, goal: &'a str) -> Request<'a> {
    Request {
        goal,
        profiles: p,
        profile: "claude",
        instructions: "one objective per task",
        out: Path::new("/tmp/plans/it's.toml"),
        check: vec!["/usr/bin/baton".into(), "check".into()],
        retries: 2,
    }
}

#[test]
fn the_planner_is_a_valid_one_task_plan_whose_gate_checks_what_it_wrote() {
    let p = profiles();
    let source = planner_plan(&request(&p, "add a search endpoint"));
    let plan = Plan::parse(Path::new("planner.toml"), &source, None).unwrap();
    assert_eq!(plan.tasks.len(), 1);
    let t = &plan.tasks[0];
    assert_eq!(
        (t.id.as_str(), t.agent.as_str(), t.merge, t.retries),
        ("plan", "claude", false, 2)
    );
    assert_eq!(t.gates, ["/usr/bin/baton check '/tmp/plans/it'\\''s.toml'"]);
    let env = &plan.agents["claude"].env;
    assert_eq!(
        env.get("BATON_PLAN_OUT").map(String::as_str),
        Some("/tmp/plans/it's.toml")
    );
}

#[test]
fn the_goal_and_the_reference_reach_the_planner_as_text_not_template() {
    let p = profiles();
    let goal = "render {{ tasks.a.result }} and {% endraw %} {% if x %}";
    let source = planner_plan(&request(&p, goal));
    let plan = Plan::parse(Path::new("planner.toml"), &source, None).unwrap();
    let ctx = PromptContext {
        tasks: Default::default(),
        feedback: String::new(),
        task: "plan".into(),
        run: "r".into(),
        attempt: 1,
        payload: serde_json::Value::Null,
    };
    let prompt = render(&plan.tasks[0].prompt, &ctx).unwrap();
    assert!(prompt.contains(goal), "{prompt}");
    assert_eq!(
        goal_of(&source).as_deref(),
        Some(goal),
        "read back for the inbox"
    );
    assert_eq!(goal_of("[[task]]\nid = \"x\"\nprompt = \"y\"\n"), None);
    assert!(prompt.contains("/tmp/plans/it's.toml"));
    assert!(prompt.contains("one objective per task"));
    assert!(prompt.contains("[agent.claude]"));
    assert!(
        prompt.contains("## `[[task]]`"),
        "the plan reference is given"
    );
}

/// A user config's profiles are named to the planner, never shown whole
/// (their `env` may hold secrets), and a planner of the user's own runs
/// composed with it; where it writes is read back from its prompt.
#[test]
fn the_users_profiles_are_named_to_the_planner_and_never_shown() {
    let user = crate::plan::UserConfig::parse(
        Path::new("/u/config.toml"),
        "[agent.mine]\nadapter = \"claude\"\nmodel = \"opus\"\nenv = { MY_API_TOKEN = \"tok-never-shown-1234\" }\n\n[agent.sh]\nadapter = \"exec\"\ncommand = [\"false\"]\n\n[defaults]\nagent = \"mine\"\n",
    )
    .unwrap();
    let own = "[agent.sh]\nadapter = \"exec\"\ncommand = [\"bash\", \"-ec\"]\n";
    let p = Profiles::from_plan_text("baton.toml", &user.compose(own)).unwrap();
    assert_eq!(p.names(), ["sh", "mine"]);
    assert_eq!(p.choose(None).unwrap(), "mine", "the user's default agent");
    let req = Request {
        profile: "mine",
        ..request(&p, "add a search endpoint")
    };
    let source = planner_plan(&req);
    assert!(!source.contains("tok-never-shown"), "{source}");
    assert!(source.contains("- `mine`: claude, model opus"), "{source}");
    assert!(!source.contains("[agent.mine]"), "{source}");
    let plan = Plan::parse(Path::new("planner.toml"), &user.compose(&source), None).unwrap();
    assert_eq!(plan.tasks[0].agent, "mine");
    assert_eq!(
        out_of(&plan.source).as_deref(),
        Some(Path::new("/tmp/plans/it's.toml"))
    );
    assert_eq!(out_of(&source), out_of(&plan.source));
}
