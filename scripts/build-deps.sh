#!/usr/bin/env bash
# The Debian packages the Rust build links against, installed if missing:
# OpenSSL's headers and pkg-config, for librdkafka's TLS and SASL/SCRAM (the
# cluster mode's Kafka client). Idempotent: does nothing when both are there.
set -euo pipefail

missing=()
for package in libssl-dev pkg-config; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  echo "build-deps: installing ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
