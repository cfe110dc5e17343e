#!/usr/bin/env bash
# Builds isobar and its dashboard, then runs the daemon with the simulator.
# Works on a fresh machine and on one where something (say Mosquitto)
# already listens on 1883 or 8080: it then picks free ports and says so.
#
#   SIMULATE=N        simulated stations (default 10; 0 for none)
#   WEB_PORT=P        preferred dashboard/API port (default 8080)
#   MQTT_PORT=P       preferred embedded MQTT server port (default 1883)
#   ISOBAR__MQTT__MODE=external ISOBAR__MQTT__BROKER=host:port
#                     use a broker that is already running instead
set -euo pipefail
cd "$(dirname "$0")/.."

simulate=${SIMULATE:-10}
web_port=${WEB_PORT:-8080}
mqtt_port=${MQTT_PORT:-1883}

in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port_from() {
  local port=$1
  while in_use "$port"; do port=$((port + 1)); done
  echo "$port"
}

./scripts/frontend-deps.sh
./scripts/build-deps.sh
(cd frontend && npm run build --silent)
cargo build --bin isobar

args=(run --simulate "$simulate" --data-dir "${ISOBAR_DATA_DIR:-data}")

if in_use "$web_port"; then
  chosen=$(free_port_from $((web_port + 1)))
  echo "run: port $web_port is in use; the dashboard and API will use $chosen"
  web_port=$chosen
fi
args+=(--listen "127.0.0.1:$web_port")

if [ "${ISOBAR__MQTT__MODE:-embedded}" = "external" ]; then
  echo "run: using the external MQTT broker at ${ISOBAR__MQTT__BROKER:-127.0.0.1:1883}"
else
  if in_use "$mqtt_port"; then
    chosen=$(free_port_from 18830)
    echo "run: port $mqtt_port is in use (another MQTT broker?); the embedded MQTT server will use $chosen."
    echo "run: to use the broker on $mqtt_port instead: ISOBAR__MQTT__MODE=external make run"
    mqtt_port=$chosen
  else
    echo "run: starting the embedded MQTT broker on port $mqtt_port"
  fi
  args+=(--mqtt-listen "127.0.0.1:$mqtt_port")
fi

echo "run: open http://localhost:$web_port (Ctrl-C to stop)"
exec ./target/debug/isobar "${args[@]}"
