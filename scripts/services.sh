#!/usr/bin/env bash
# Makes sure the real services the tests use are running, installing and
# starting any that is missing. Idempotent: does nothing when all are up.
set -euo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  local port=$1 name=$2
  for _ in $(seq 1 50); do
    listening "$port" && return 0
    sleep 0.1
  done
  echo "services: $name did not start on port $port" >&2
  return 1
}

if listening 1883; then
  echo "services: mosquitto is listening on 1883"
else
  if ! command -v mosquitto >/dev/null 2>&1; then
    echo "services: installing mosquitto"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
  fi
  echo "services: starting mosquitto"
  if [ -f /etc/mosquitto/mosquitto.conf ]; then
    mosquitto -d -c /etc/mosquitto/mosquitto.conf
  else
    mosquitto -d -p 1883
  fi
  wait_for 1883 mosquitto
fi
