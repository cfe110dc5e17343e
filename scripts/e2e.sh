#!/usr/bin/env bash
# End-to-end tests of the dashboard: Debian's chromium, driven by
# playwright-core, against the real daemon (target/debug/isobar, or
# ISOBAR_BIN) running its simulator, embedded MQTT server and SQLite.
# Installs chromium if it is missing; safe to run again. Screenshots of
# every view land in frontend/e2e/screenshots/ (E2E_SCREENSHOTS overrides).
# `e2e.sh bench` runs the dashboard benchmark instead (bench-dashboard.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  echo "e2e: installing Debian's chromium"
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

./scripts/frontend-deps.sh
bin=${ISOBAR_BIN:-$PWD/target/debug/isobar}
if [ -z "${ISOBAR_BIN:-}" ]; then
  # The binary embeds the dashboard: build it after frontend/dist. The
  # same build as `cargo test --features fault-injection` (whose
  # integration tests use this binary), so after the test suite there is
  # nothing to do; a plain `cargo build` would build the dependencies
  # again with other features.
  [ -f frontend/dist/index.html ] || (cd frontend && npm run build)
  cargo test --features fault-injection --no-run --quiet
fi
export ISOBAR_BIN=$bin

cd frontend
if [ "${1:-}" = bench ]; then
  node e2e/bench.mjs
else
  node --test --test-reporter=spec e2e/dashboard.e2e.mjs
fi
