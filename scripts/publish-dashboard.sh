#!/usr/bin/env bash
# Publishes the dashboard as static files, e.g. to S3 behind CloudFront,
# talking to the daemon's API at another origin.
#
#   scripts/publish-dashboard.sh --api-origin https://api.wx.example.net \
#       --bucket my-dashboard-bucket [--distribution E123ABC] [--dry-run]
#
# Builds frontend/dist, stages a copy whose config.js names the API origin,
# and uploads it with the AWS CLI: hashed assets cached for a year, the
# page and config.js revalidated on every load; then, with --distribution,
# invalidates those two in CloudFront. --dry-run stages the files and prints
# what it would upload without calling AWS (no CLI or credentials needed).
# --out DIR keeps the staged files there.
#
# The daemon must let the dashboard's origin in: web.cors_origins (REST)
# and web.allowed_origins (the websocket), see docs/api.md.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 64
}

api_origin=""
bucket=""
distribution=""
dry_run=0
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --api-origin) api_origin=${2:-}; shift 2 ;;
    --bucket) bucket=${2:-}; shift 2 ;;
    --distribution) distribution=${2:-}; shift 2 ;;
    --out) out=${2:-}; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage ;;
    *) echo "publish-dashboard: unknown argument $1" >&2; usage ;;
  esac
done

fail() {
  echo "publish-dashboard: $*" >&2
  exit 64
}

# The origin alone: scheme, host and optional port; no path, no trailing slash.
if ! [[ $api_origin =~ ^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$ ]]; then
  fail "--api-origin must be an origin like https://api.wx.example.net (got '${api_origin}')"
fi
if [ -z "$bucket" ] && [ "$dry_run" -eq 0 ]; then
  fail "--bucket is required (or --dry-run)"
fi
if [ -n "$bucket" ] && ! [[ $bucket =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9._/-]*)?$ ]]; then
  fail "--bucket must be an S3 bucket name, optionally with a prefix (got '${bucket}')"
fi
if [ "$dry_run" -eq 0 ] && ! command -v aws >/dev/null 2>&1; then
  fail "the AWS CLI (aws) is needed to upload; --dry-run shows what would be uploaded"
fi

if [ -z "${SKIP_BUILD:-}" ]; then
  ./scripts/frontend-deps.sh
  (cd frontend && npm run build)
fi
[ -f frontend/dist/index.html ] || fail "frontend/dist is not built"

if [ -n "$out" ]; then
  stage=$out
  rm -rf "$stage"
  mkdir -p "$stage"
else
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' EXIT
fi
cp -R frontend/dist/. "$stage/"
cat >"$stage/config.js" <<JS
// Written by scripts/publish-dashboard.sh.
window.isobarConfig = { apiOrigin: '${api_origin}' };
JS

target="s3://${bucket:-BUCKET}"
run() {
  if [ "$dry_run" -eq 1 ]; then
    printf 'would run:'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}

echo "publish-dashboard: $(find "$stage" -type f | wc -l) files for ${target}, API at ${api_origin}"
run aws s3 sync "$stage/assets" "$target/assets" --delete \
  --cache-control "public, max-age=31536000, immutable"
run aws s3 sync "$stage" "$target" --delete --exclude "assets/*" \
  --cache-control "no-cache"
if [ -n "$distribution" ]; then
  run aws cloudfront create-invalidation --distribution-id "$distribution" \
    --paths /index.html /config.js "/docs/*"
fi
