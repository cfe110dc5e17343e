#!/usr/bin/env bash
# Makes sure the real services the tests use (Mosquitto on 1883, PostgreSQL
# on 5432 with trust auth for local connections, Redis on 6379, a
# Kafka-compatible broker on 9092) are running, installing and starting any
# that is missing, and that moto's S3 server is installed.
# Idempotent: does nothing when all are there.
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

if listening 5432; then
  echo "services: postgresql is listening on 5432"
else
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "services: installing postgresql"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
  hba=/etc/postgresql/$version/main/pg_hba.conf
  # Tests connect as postgres over TCP without a password.
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  fi
  echo "services: starting postgresql $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_for 5432 postgresql
fi
if ! psql -h 127.0.0.1 -U postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'test'" postgres | grep -q 1; then
  echo "services: creating database test"
  psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" postgres >/dev/null
fi

# A local S3-compatible server for the data-lake tests; each test starts its
# own on a free port.
if ! command -v moto_server >/dev/null 2>&1; then
  echo "services: installing moto (local S3 server)"
    # A system Python may refuse a global install (PEP 668); say so explicitly.
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]==5.2.5' 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages \
      'moto[server]==5.2.5'
fi

if listening 6379; then
  echo "services: redis is listening on 6379"
else
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "services: installing redis"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
  echo "services: starting redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  wait_for 6379 redis
fi

# A Kafka-compatible broker for the cluster mode: tansu, from crates.io
# (Debian packages no Kafka). The cluster tests each start their own on a
# free port; one runs on 9092 for development. Its first install builds for
# a while (some 20 minutes on two cores), then it is on the PATH.
TANSU_VERSION=0.6.0
if ! { command -v tansu >/dev/null 2>&1 && tansu --version 2>/dev/null | grep -qx "tansu $TANSU_VERSION"; }; then
  echo "services: installing tansu $TANSU_VERSION (a Kafka-compatible broker)"
  cargo install --locked --quiet tansu --version "$TANSU_VERSION" --features libsql,dynostore
fi
if listening 9092; then
  echo "services: a Kafka broker is listening on 9092"
else
  # tansu opens its SQLite file relative to where it runs.
  state=${XDG_STATE_HOME:-$HOME/.local/state}/isobar/kafka
  mkdir -p "$state"
  echo "services: starting tansu on 9092"
  (cd "$state" && exec setsid --fork tansu broker --listener-url tcp://127.0.0.1:9092 \
    --advertised-listener-url tcp://127.0.0.1:9092 --storage-engine sqlite://tansu.db \
    >tansu.log 2>&1 </dev/null)
  wait_for 9092 tansu
fi
