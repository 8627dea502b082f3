# What the benchmarks share: the baton binary (BATON, else a release build),
# a hermetic git identity, a scratch directory, fresh repositories, a timer.
# Sourced by bench/*.sh.
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${BATON:-}" ]; then
  cargo build --release -q -p baton-cli --manifest-path "$here/Cargo.toml"
  BATON="$here/target/release/baton"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GIT_CONFIG_GLOBAL=/dev/null GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@localhost \
  GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@localhost

new_repo() {
  rm -rf "$work/repo" "$work/wt"
  mkdir -p "$work/wt"
  git init -q -b main "$work/repo"
  git -C "$work/repo" commit -q --allow-empty -m init
}

# A plan of N trivial tasks (each writes one file), J at a time.
trivial_plan() {
  local n=$1 j=$2
  printf '[run]\nmax_parallel = %s\n\n[agent.sh]\nadapter = "exec"\ncommand = ["bash", "-ec"]\n\n[defaults]\nagent = "sh"\n' "$j"
  for i in $(seq 1 "$n"); do printf '\n[[task]]\nid = "t%s"\nprompt = "echo %s > f%s.txt"\n' "$i" "$i" "$i"; done
}

# Runs the plan of N tasks through baton; checks every file reached the
# integration branch.
with_baton() {
  local n=$1 j=$2 integration
  new_repo
  trivial_plan "$n" "$j" > "$work/plan.toml"
  "$BATON" -C "$work/repo" run "$work/plan.toml" 2>/dev/null
  integration=$(git -C "$work/repo" for-each-ref --format='%(refname)' 'refs/heads/baton/*/integration')
  test "$(git -C "$work/repo" ls-tree --name-only "$integration" | wc -l)" -eq "$n"
}

# Milliseconds a command takes.
time_it() {
  local start end
  start=$(date +%s%N)
  "$@" >/dev/null
  end=$(date +%s%N)
  echo $(( (end - start) / 1000000 ))
}
