#!/usr/bin/env bash
# Installs the real agent CLIs that baton's end-to-end tests drive, at pinned
# versions, into a cache outside the clone (default ~/.cache/baton/agents;
# BATON_AGENTS_DIR overrides). Idempotent: a second run with the same
# versions does nothing. Prints the directory holding the binaries.
set -euo pipefail

CLAUDE=2.1.197      # @anthropic-ai/claude-code
CODEX=0.169.0       # @openai/codex
GEMINI=0.61.0       # @google/gemini-cli
OPENCODE=1.18.33    # opencode-ai
AIDER=0.86.2        # aider-chat (PyPI)

dir=${BATON_AGENTS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/baton/agents}
stamp="$dir/versions"
want="claude=$CLAUDE codex=$CODEX gemini=$GEMINI opencode=$OPENCODE aider=$AIDER"
mkdir -p "$dir/bin"

if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing agent CLIs into $dir ($want)" >&2
  npm install --silent --no-audit --no-fund --prefix "$dir/npm" \
    "@anthropic-ai/claude-code@$CLAUDE" "@openai/codex@$CODEX" \
    "@google/gemini-cli@$GEMINI" "opencode-ai@$OPENCODE" >&2
  if [ ! -x "$dir/aider/bin/aider" ] || ! "$dir/aider/bin/aider" --version 2>/dev/null | grep -q "$AIDER"; then
    python3 -m venv "$dir/aider"
    "$dir/aider/bin/pip" install -q --disable-pip-version-check "aider-chat==$AIDER" >&2
  fi
  for b in claude codex gemini opencode; do
    ln -sf "../npm/node_modules/.bin/$b" "$dir/bin/$b"
  done
  ln -sf "../aider/bin/aider" "$dir/bin/aider"
  echo "$want" > "$stamp"
fi
echo "$dir/bin"
