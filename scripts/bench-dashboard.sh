#!/usr/bin/env bash
# The dashboard with 1,000 stations reporting every second (BENCH_STATIONS,
# BENCH_SECONDS): frame times, long tasks and heap in Debian's chromium,
# against the release build. Installs chromium if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/frontend-deps.sh
(cd frontend && npm run build)
./scripts/build-deps.sh
cargo build --release --bin isobar
ISOBAR_BIN=$PWD/target/release/isobar ./scripts/e2e.sh bench
