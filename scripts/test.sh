#!/usr/bin/env bash
# The project's test command (`make test`, and what CI runs): the dashboard's
# type-check, build and unit tests, then formatting, lints and the Rust unit
# and integration tests (which start the real binary and use the machine's
# Mosquitto), the API conformance checks, and the dashboard's end-to-end
# tests in chromium, and last the deployment files' lints. Installs and starts
# what it needs; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

# First: the Rust build embeds frontend/dist, and the tests check it is there.
step "dashboard: packages, type-check and build"
./scripts/frontend-deps.sh
(cd frontend && npm run build)

step "dashboard: unit tests"
(cd frontend && npm test)

step "services: Mosquitto, PostgreSQL, Redis, S3 and Kafka"
./scripts/services.sh

step "rust: the Debian packages the build links against"
./scripts/build-deps.sh

step "rust: format, lints and API docs"
cargo fmt --all -- --check
# Twice: the daemon as it ships (jemalloc), and with the system allocator
# (a profiling build) as well.
cargo clippy --all-targets --features fault-injection -- -D warnings
cargo clippy --all-targets --all-features -- -D warnings
# The API docs (the layout in lib.rs links into every module) build clean.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features --quiet

step "rust: unit and integration tests"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# With the allocator the daemon ships with; fault-injection lets the
# fault tests make a station actor panic.
cargo test --features fault-injection 2>&1 | tee "$log"
# One closing line for the whole Rust suite.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "\nrust: %d passed, %d failed\n", p, f }' "$log"

step "api: schemathesis and a generated client against the live daemon and its OpenAPI document"
./scripts/api-conformance.sh

step "dashboard: end-to-end in chromium against the daemon and its simulator"
./scripts/e2e.sh

step "operator script: scripts/isobarctl against the daemon"
./scripts/test-isobarctl.sh

step "deploy: the AWS deploy script's dry runs and input checks, without AWS"
./deploy/aws/test-deploy-aws.sh

step "deploy: lint Dockerfile, compose, manifests, templates and scripts"
./scripts/lint-deploy.sh
