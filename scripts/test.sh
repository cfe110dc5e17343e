#!/usr/bin/env bash
# The project's test command (`make test`, and what CI runs): formatting and
# lints, the Rust unit and integration tests (which start the real binary),
# then the dashboard's type-check, build and unit tests. Installs what it
# needs; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "services: Mosquitto on 127.0.0.1:1883 (external-broker tests)"
./scripts/services.sh

step "rust: format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --all-features -- -D warnings

step "rust: unit and integration tests"
cargo test --all-features

step "dashboard: packages, type-check and build"
./scripts/frontend-deps.sh
(cd frontend && npm run build)

step "dashboard: unit tests"
(cd frontend && npm test)
