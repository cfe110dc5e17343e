#!/usr/bin/env bash
# `make bench-api`: loads a release build of the daemon with wrk on the
# latest readings of every station (GET /api/v1/latest, from the cache) and
# on history (one station, one day of one-second readings, pages of
# 1,000), on SQLite and on PostgreSQL, and prints requests per second and
# latency percentiles. A benchmark, not a test: it asserts nothing.
#
#   BENCH_STORES="sqlite postgres"   stores to measure
#   BENCH_SECONDS=20                 length of each run
#   BENCH_LATEST_CONNECTIONS=64      concurrent connections, latest readings
#   BENCH_HISTORY_CONNECTIONS="1 4"  concurrent connections, history
#   BENCH_STATIONS=10                simulated stations besides BENCH1
set -euo pipefail
cd "$(dirname "$0")/.."

STORES=${BENCH_STORES:-sqlite postgres}
SECONDS_EACH=${BENCH_SECONDS:-20}
LATEST_CONNECTIONS=${BENCH_LATEST_CONNECTIONS:-64}
HISTORY_CONNECTIONS=${BENCH_HISTORY_CONNECTIONS:-1 4}
STATIONS=${BENCH_STATIONS:-10}
DAY=86400

if ! command -v wrk >/dev/null 2>&1; then
  echo "bench-api: installing wrk"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1 || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  }
fi
if [[ " $STORES " == *" postgres "* ]]; then
  ./scripts/services.sh >/dev/null
fi
./scripts/build-deps.sh
cargo build --release --quiet --bin isobar
BIN=target/release/isobar

WORK=$(mktemp -d)
DAEMON=""
DB=""
cleanup() {
  if [ -n "$DAEMON" ]; then kill "$DAEMON" 2>/dev/null || true; wait "$DAEMON" 2>/dev/null || true; fi
  if [ -n "$DB" ]; then psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One day of one-second readings of BENCH1, for `isobar replay`.
python3 - "$WORK/day.csv" <<'PY'
import math, sys
start = 1736726400  # 2025-01-13T00:00:00Z
with open(sys.argv[1], "w") as f:
    f.write("time,station,temperature_C,humidity_pct,pressure_hPa,wind_speed_ms,wind_direction_deg\n")
    for s in range(86400):
        # A day that passes quality control: every value moves a little.
        day = 2 * math.pi * (s - 21600) / 86400
        t = 5 + 8 * math.sin(day) + 0.05 * math.sin(s / 7)
        rh = 70 - 20 * math.sin(day) + 2 * math.sin(s / 11)
        p = 1013 + 3 * math.sin(s / 20000) + 0.2 * math.sin(s / 13)
        wind = 3 + 2 * math.sin(s / 300) + 0.5 * math.sin(s / 3)
        f.write(f"{start + s},BENCH1,{t:.2f},{rh:.1f},{p:.2f},{wind:.2f},{(s * 7) % 360}\n")
PY

# wrk's summary: requests per second and the latency percentiles.
report() {
  local label=$1 out=$2
  local rps p50 p99
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  printf '%-10s %-34s %12s req/s   p50 %8s   p99 %8s\n' "$STORE" "$label" "$rps" "$p50" "$p99"
  if grep -q "Non-2xx" <<<"$out"; then
    echo "bench-api: $label had non-2xx answers:" >&2
    echo "$out" >&2
    exit 1
  fi
}

for STORE in $STORES; do
  WEB=$(free_port)
  MQTT=$(free_port)
  env_store=()
  if [ "$STORE" = postgres ]; then
    DB="isobar_bench_$$"
    psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $DB" >/dev/null
    env_store=(ISOBAR__STORAGE__BACKEND=postgres "ISOBAR__STORAGE__POSTGRES_URL=postgres://postgres@127.0.0.1:5432/$DB")
  fi
  mkdir -p "$WORK/$STORE"
  env "${env_store[@]}" \
    ISOBAR__LOG__LEVEL=warn \
    ISOBAR__WEB__RATE_LIMIT__PER_SECOND=0 \
    ISOBAR__ARCHIVE__BACKEND=off \
    ISOBAR__SIMULATOR__STATIONS="$STATIONS" \
    "$BIN" run --listen "127.0.0.1:$WEB" --mqtt-listen "127.0.0.1:$MQTT" \
    --data-dir "$WORK/$STORE" >"$WORK/$STORE.log" 2>&1 &
  DAEMON=$!
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$WEB/ready" >/dev/null && break
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:$WEB/ready" >/dev/null || { cat "$WORK/$STORE.log" >&2; exit 1; }

  "$BIN" replay "$WORK/day.csv" --broker "127.0.0.1:$MQTT" >/dev/null
  # Every reading of the day stored: the last page holds the last second.
  for _ in $(seq 1 600); do
    n=$(curl -sf "http://127.0.0.1:$WEB/api/v1/stations/BENCH1/readings?from=2025-01-13T23:43:20Z&to=2025-01-14T00:00:00Z&limit=10000" \
      | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["readings"]))' 2>/dev/null || echo 0)
    [ "$n" = 1000 ] && break
    sleep 0.2
  done
  [ "$n" = 1000 ] || { echo "bench-api: the day was not stored ($n of the last 1000)" >&2; exit 1; }
  # And rolled up: the aggregator's catching up would otherwise compete
  # with the load for the 2 cores.
  for _ in $(seq 1 600); do
    rolled=$(curl -sf "http://127.0.0.1:$WEB/api/v1/stations/BENCH1/rollups?resolution=1h&from=2025-01-13T00:00:00Z&to=2025-01-14T00:00:00Z" \
      | python3 -c 'import json,sys; print(sum(r["variables"]["temperature_c"]["count"] for r in json.load(sys.stdin)["rollups"]))' 2>/dev/null || echo 0)
    [ "$rolled" = "$DAY" ] && break
    sleep 0.5
  done
  [ "$rolled" = "$DAY" ] || { echo "bench-api: the day was not rolled up ($rolled of $DAY)" >&2; exit 1; }
  if [ "$STORE" = postgres ]; then
    # As autovacuum would soon after a bulk load: without statistics the
    # planner expects a handful of rows and sorts instead of walking the index.
    psql -h 127.0.0.1 -U postgres -d "$DB" -qc "ANALYZE observations" >/dev/null
  fi

  BASE="http://127.0.0.1:$WEB"
  curl -sf "$BASE/api/v1/latest" >/dev/null
  # Warm up, then measure.
  wrk -t1 -c"$LATEST_CONNECTIONS" -d2s "$BASE/api/v1/latest" >/dev/null
  out=$(wrk -t1 -c"$LATEST_CONNECTIONS" -d"${SECONDS_EACH}s" --latency "$BASE/api/v1/latest")
  stations=$(curl -sf "$BASE/api/v1/latest" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["readings"]))')
  report "latest ($stations stations, c=$LATEST_CONNECTIONS)" "$out"
  wrk -t1 -c1 -d2s -s scripts/bench/history.lua "$BASE" >/dev/null
  for c in $HISTORY_CONNECTIONS; do
    out=$(wrk -t1 -c"$c" -d"${SECONDS_EACH}s" --latency -s scripts/bench/history.lua "$BASE")
    report "history (pages of 1000, c=$c)" "$out"
  done

  kill "$DAEMON"; wait "$DAEMON" 2>/dev/null || true; DAEMON=""
  if [ -n "$DB" ]; then
    psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null; DB=""
  fi
done
