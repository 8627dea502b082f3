#!/usr/bin/env bash
# `baton plan`: an agent writes the plan for a goal, baton checks it and runs
# it. Here the planner is a stand-in (adapter "exec": a script that writes a
# fixed plan to $BATON_PLAN_OUT, as a real agent writes its own), so this
# runs in a throwaway repository with no API key. With a real agent:
#
#   baton plan "Add a /search endpoint with tests" --agent claude --run
#
#   examples/plan.sh            # builds baton (release) first
#   BATON=path/to/baton examples/plan.sh
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
baton=${BATON:-}
if [ -z "$baton" ]; then
  cargo build --release -q -p baton-cli --manifest-path "$here/Cargo.toml"
  baton="$here/target/release/baton"
fi

demo=$(mktemp -d "${TMPDIR:-/tmp}/baton-plan.XXXXXX")
git init -q -b main "$demo"
git -C "$demo" -c user.name=demo -c user.email=demo@localhost commit -q --allow-empty -m "empty project"
# The profiles the planner may use; the planner is one of them.
cat > "$demo/profiles.toml" <<'TOML'
[agent.sh]
adapter = "exec"
command = ["bash", "-ec"]

[agent.planner]
adapter = "exec"
command = ["bash", "-ec", '''
cat > "$BATON_PLAN_OUT" <<'PLAN'
[agent.sh]
adapter = "exec"
command = ["bash", "-ec"]

[defaults]
agent = "sh"
retries = 1

[[task]]
id = "greeting"
prompt = "mkdir -p bin && printf '#!/bin/sh\\necho hello, $1\\n' > bin/greet && chmod +x bin/greet"
gates = ["test \"$(bin/greet you)\" = 'hello, you'"]

[[task]]
id = "readme"
needs = ["greeting"]
prompt = "echo 'Run bin/greet NAME.' > README.md"
PLAN
echo "Two tasks: the greeting with its check first, then its README."
''']
TOML
echo "demo repository: $demo" >&2
"$baton" -C "$demo" plan "Add a greeting command and document it" \
  --from profiles.toml --agent planner -o greet.toml --run --yes
