#!/usr/bin/env bash
# Installs what the dashboard's browser tests need, idempotently: Debian's
# chromium (a test tool's own browser download cannot work here) and
# playwright-core from npm (pinned in tests/e2e/package-lock.json; it never
# downloads a browser).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (Debian package)" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >&2
fi
if [ ! -d tests/e2e/node_modules/playwright-core ] || [ tests/e2e/package-lock.json -nt tests/e2e/node_modules/.package-lock.json ]; then
  (cd tests/e2e && npm ci --silent --no-audit --no-fund >&2)
fi
echo "browser tests: $(/usr/bin/chromium --version 2>/dev/null | head -1), playwright-core $(node -p "require('./tests/e2e/node_modules/playwright-core/package.json').version")"
