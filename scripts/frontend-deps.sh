#!/usr/bin/env bash
# Installs the dashboard's npm packages exactly as locked, only when they are
# missing or the lock file changed since the last install. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../frontend"

if ! command -v npm >/dev/null 2>&1; then
  echo "frontend-deps: npm is required (Node.js 20.19 or newer)" >&2
  exit 1
fi
stamp=node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  echo "frontend-deps: installing npm packages (npm ci)"
  npm ci --no-audit --no-fund
fi
