#!/usr/bin/env bash
# Builds baton, makes a throwaway git repository, and runs an example plan in
# it with `exec` agents (bash scripts: no API key needed). Then shows what
# landed on the run's integration branch.
#
#   examples/demo.sh                    # the parallel example
#   examples/demo.sh examples/split-role.toml
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
plan=$(cd "$(dirname "${1:-$here/examples/parallel.toml}")" && pwd)/$(basename "${1:-parallel.toml}")
# The `quick` profile: the whole binary, built in about a minute and a half
# on 2 cores rather than 6 for the release build (docs/building.md);
# `cargo install` and scripts/dist.sh build the release one.
echo "building baton (cargo build --profile quick; about a minute and a half the first time)" >&2
# Where cargo put it, as cargo says (a target directory may be configured).
baton=$(cargo build --profile quick -q -p baton-cli --bin baton \
  --manifest-path "$here/Cargo.toml" --message-format=json-render-diagnostics |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)

demo=$(mktemp -d "${TMPDIR:-/tmp}/baton-demo.XXXXXX")
git init -q -b main "$demo"
git -C "$demo" -c user.name=demo -c user.email=demo@localhost commit -q --allow-empty -m "empty project"
cp "$plan" "$demo/baton.toml"
echo "demo repository: $demo" >&2
"$baton" -C "$demo" check
status=0
"$baton" -C "$demo" run || status=$?
branch=$(git -C "$demo" for-each-ref --format='%(refname:short)' 'refs/heads/baton/*/integration' | tail -n 1)
echo >&2
echo "files on $branch:" >&2
git -C "$demo" ls-tree -r --name-only "$branch" >&2
echo "history:" >&2
git -C "$demo" log --oneline --graph "$branch" >&2
exit "$status"
