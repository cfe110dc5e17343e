#!/usr/bin/env bash
# Property-based checks of the live daemon against its own OpenAPI document:
# schemathesis generates requests for every documented operation and fails
# on a server error (5xx) or on a response the document does not describe
# (status, content type or body). Installs schemathesis from PyPI if it is
# missing; starts the daemon built by `cargo test` (or BIN) with the
# simulator on free ports, and stops it afterwards.
#
#   scripts/schemathesis.sh               # fixed seed, as CI runs it
#   SCHEMATHESIS_SEED=random scripts/schemathesis.sh
set -euo pipefail
cd "$(dirname "$0")/.."

version=4.32.5
if ! python3 -c "import schemathesis, sys; sys.exit(schemathesis.__version__ != '$version')" 2>/dev/null; then
  echo "schemathesis: installing $version"
  python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$version"
fi

bin=${BIN:-target/debug/isobar}
[ -x "$bin" ] || cargo build --quiet
data=$(mktemp -d)
out="$data/daemon.log"
"$bin" run --listen 127.0.0.1:0 --mqtt-listen 127.0.0.1:0 --data-dir "$data" --simulate 5 \
  >"$out" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$data"' EXIT

base=
for _ in $(seq 1 100); do
  base=$(sed -n 's|^isobar: dashboard and API on \(http://[^ ]*\).*|\1|p' "$out" | head -n1)
  [ -n "$base" ] && curl -fsS "$base/ready" >/dev/null 2>&1 && break
  sleep 0.2
done
if [ -z "$base" ]; then
  echo "schemathesis: the daemon did not start:" >&2
  cat "$out" >&2
  exit 1
fi

seed=${SCHEMATHESIS_SEED:-20261201}
seed_args=(--seed "$seed")
[ "$seed" = random ] && seed_args=()
python3 -c 'from schemathesis.cli import schemathesis; schemathesis()' run "$base/api/v1/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-50}" \
  --workers 2 \
  "${seed_args[@]}"
