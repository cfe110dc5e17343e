#!/usr/bin/env bash
# Tests scripts/isobarctl against the real daemon: installations in a
# temporary directory, on ports the system picks, with the embedded MQTT server
# and SQLite. Whatever it started is stopped on the way out, pass or fail.
#
#   ISOBAR_BIN=path   the binary to test (default target/debug/isobar)
set -euo pipefail
cd "$(dirname "$0")/.."

ctl=$PWD/scripts/isobarctl
export ISOBAR_BIN=${ISOBAR_BIN:-$PWD/target/debug/isobar}
if [ ! -x "$ISOBAR_BIN" ]; then
  echo "test-isobarctl: no isobar binary at $ISOBAR_BIN (cargo build, or set ISOBAR_BIN)" >&2
  exit 1
fi
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "test-isobarctl: $tool is needed" >&2; exit 1; }
done
# The caller's settings must not change what is tested.
unset ISOBAR_CONFIG
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^ISOBAR__' || true)

work=$(mktemp -d "${TMPDIR:-/tmp}/isobarctl-test.XXXXXX")
main_home=$work/main
export ISOBAR_HOME=$main_home

cleanup() {
  local rc=$? home file pid
  trap - EXIT
  for home in "$work"/*/; do
    home=${home%/}
    [ -d "$home" ] || continue
    if [ "$rc" -ne 0 ] && [ -f "$home/isobar.log" ]; then
      echo "--- the end of $home/isobar.log" >&2
      tail -n 20 "$home/isobar.log" >&2
    fi
    ISOBAR_HOME=$home "$ctl" stop --timeout 5 >/dev/null 2>&1 || true
    for file in "$home"/*.pid; do
      [ -f "$file" ] || continue
      pid=$(<"$file")
      kill -KILL "$pid" 2>/dev/null || true
    done
  done
  rm -rf "$work"
  if [ "$rc" -eq 0 ]; then
    echo "test-isobarctl: all passed in ${SECONDS}s"
  else
    echo "test-isobarctl: FAILED" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "not ok - $*" >&2
  [ -z "${out:-}" ] || printf '%s\n' "--- output:" "$out" >&2
  exit 1
}
ok() { echo "ok - $*"; }

# run EXPECTED_STATUS ARGS…: runs isobarctl, keeps its output (stdout and
# stderr) in $out, and fails unless it exits with EXPECTED_STATUS.
run() {
  local expected=$1 rc=0
  shift
  out=$("$ctl" "$@" 2>&1) || rc=$?
  [ "$rc" -eq "$expected" ] || fail "isobarctl $* exited $rc, not $expected"
}

has() { grep -qE -- "$1" <<<"$out" || fail "expected /$1/ in the output of the last command"; }

# json URL EXPR: the value of the Python expression EXPR over the JSON at
# URL, bound to `j`.
json() {
  curl -fsS "$1" | python3 -c "import json, sys; j = json.load(sys.stdin); print($2)"
}

# json_is URL EXPR VALUE: whether json URL EXPR prints VALUE.
json_is() { [ "$(json "$1" "$2")" = "$3" ]; }

# wait_for DESCRIPTION SECONDS COMMAND…: until COMMAND succeeds, running it
# again each time.
wait_for() {
  local what=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out waiting for $what"
    sleep 0.2
  done
}

alive() { kill -0 "$1" 2>/dev/null && [[ $(ps -o stat= -p "$1") != Z* ]]; }

# --- usage ---------------------------------------------------------------------
run 64 frobnicate
has '^usage: isobarctl'
ok "an unknown command exits 64 with the usage"
run 64 start --frobnicate
has "unknown option '--frobnicate'"
ok "an unknown option exits 64"
run 0 help
has 'simulator stop'
ok "help"

# --- nothing running -------------------------------------------------------
run 1 status
has 'not running'
ok "status exits 1 before anything started"
run 0 stop
has 'not running'
ok "stop with nothing running is a no-op"

# --- a bad configuration -------------------------------------------------------
printf '[persister]\nbatch_size = 0\n' >"$work/bad.toml"
run 64 start --config "$work/bad.toml" --listen 127.0.0.1:0 --mqtt-listen 127.0.0.1:0
has 'persister.batch_size: must be between 1 and 100000'
[ ! -f "$main_home/isobar.pid" ] || fail "a pid file was left by a start that failed"
run 1 status
ok "a bad configuration: start exits 64 and says which key and why"

# --- start ---------------------------------------------------------------------
run 0 start --simulate 2 --listen 127.0.0.1:0 --mqtt-listen 127.0.0.1:0
has 'isobar is ready'
url=$(sed -n 's#^ *dashboard *\(http://[^ ]*\)/$#\1#p' <<<"$out")
[ -n "$url" ] || fail "start printed no dashboard URL"
pid=$(<"$main_home/isobar.pid")
alive "$pid" || fail "the pid in the pid file ($pid) is not running"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$url/ready")" = 200 ] || fail "/ready is not 200 after start"
ok "start: ready at $url (pid $pid)"

wait_for "the 2 simulated stations" 10 json_is "$url/api/v1/summary" "j['stations']" 2
run 0 status
has "isobar is running \(pid $pid, up"
has 'ready +ready \(200\): mqtt ok, store ok'
has 'stations +2: 2 reporting, 0 silent'
has 'alerts +0 firing'
has "dashboard +$url/"
ok "status exits 0 and shows ready, each check, stations and alerts"

run 1 start --listen 127.0.0.1:0 --mqtt-listen 127.0.0.1:0
has 'already running'
if [ "$(<"$main_home/isobar.pid")" != "$pid" ] || ! alive "$pid"; then
  fail "a refused start disturbed the daemon"
fi
ok "start refuses while the daemon runs"

# --- the simulator -----------------------------------------------------------
stored_before=$(curl -fsS "$url/metrics" | sed -n 's/^isobar_readings_stored_total //p')
run 0 simulator --stations 5 --rounds 3 --interval 200ms --seed 7
has 'published 15 readings'
wait_for "stations WS003 to WS005" 10 json_is "$url/api/v1/summary" "j['stations']" 5
for id in WS003 WS004 WS005; do
  wait_for "3 readings of $id" 10 json_is "$url/api/v1/stations/$id/readings" "len(j['readings'])" 3
done
stored_after=$(curl -fsS "$url/metrics" | sed -n 's/^isobar_readings_stored_total //p')
((stored_after >= stored_before + 9)) || fail "readings stored went from $stored_before to only $stored_after"
ok "simulator --rounds 3: 5 stations, 3 readings each of the new ones ($stored_before -> $stored_after stored)"

run 0 simulator --background --stations 3
has 'in the background \(pid [0-9]+'
sim_pid=$(<"$main_home/simulator.pid")
alive "$sim_pid" || fail "the background simulator is not running"
run 1 simulator --background
has 'already running'
run 0 status
has "simulator +running in the background \(pid $sim_pid"
ok "a background simulator, shown by status"

# --- logs ----------------------------------------------------------------------
wait_for "the simulator's first log line" 5 grep -q 'simulator running stations=3' "$main_home/simulator.log"
wait_for "the MQTT server in the log" 5 grep -q 'embedded MQTT server listening' "$main_home/isobar.log"
run 0 logs
has 'isobar running web='
has 'embedded MQTT server listening'
run 0 logs -n 1
[ "$(wc -l <<<"$out")" -eq 1 ] || fail "logs -n 1 printed $(wc -l <<<"$out") lines"
run 0 logs --simulator -n 5
has 'simulator running stations=3'
ok "logs shows the daemon's and the simulator's log"

# --- a second installation beside the first ----------------------------------
web_port=${url##*:}
export ISOBAR_HOME=$work/second
run 1 start --listen "127.0.0.1:$web_port" --mqtt-listen 127.0.0.1:0
has 'exited with status 1 while starting'
has "cannot listen for HTTP on 127.0.0.1:$web_port"
[ ! -f "$ISOBAR_HOME/isobar.pid" ] || fail "a pid file was left by a start that failed"
ok "a port that is taken: start passes on the daemon's status and its reason"

if (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
  run 0 start --listen 127.0.0.1:0
  has 'port 1883 is in use'
  has 'MQTT +127\.0\.0\.1:[0-9]+ \(embedded MQTT server'
  ! grep -qE 'MQTT +127\.0\.0\.1:1883 ' <<<"$out" || fail "the embedded MQTT server did not move off 1883"
  run 0 status
  run 0 stop
  ok "the default MQTT port is taken: the embedded MQTT server moves to a free one"
else
  ok "# skip: port 1883 is free here, so the move off a taken default is not exercised"
fi

echo "$$" >"$ISOBAR_HOME/isobar.pid"
run 1 status
has 'stale pid file'
run 0 stop
has 'stale pid file'
[ ! -f "$ISOBAR_HOME/isobar.pid" ] || fail "stop left the stale pid file"
alive "$$" || fail "the stale pid's process was signalled"
ok "a pid file naming another process is stale, and that process is left alone"
export ISOBAR_HOME=$main_home

# --- stop ------------------------------------------------------------------------
run 0 stop --timeout 20
has 'simulator stopped'
has 'isobar stopped'
! alive "$pid" || fail "the daemon (pid $pid) still runs after stop"
! alive "$sim_pid" || fail "the simulator (pid $sim_pid) still runs after stop"
[ ! -f "$main_home/isobar.pid" ] || fail "stop left the pid file"
grep -q 'INFO isobar::app: stopped' "$main_home/isobar.log" || fail "the daemon did not log its orderly stop"
ok "stop: the simulator and the daemon are gone, after an orderly shutdown"
run 1 status
has 'not running'
ok "status exits 1 after stop"
run 0 stop
has 'not running'
ok "stop again is a no-op"
