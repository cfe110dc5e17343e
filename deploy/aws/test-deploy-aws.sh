#!/usr/bin/env bash
# Tests scripts/deploy-aws.sh without AWS: its dry runs (which must call
# nothing), its refusals of bad input (exit 64), and, against a stand-in for
# the AWS CLI, that station keys and the daemon's certificate go to files
# readable by their owner only, and never to the output.
#
#   deploy/aws/test-deploy-aws.sh
#
# Needs bash, jq and openssl (installed from Debian when missing); prints one line per case and 'N passed, N failed'.
set -euo pipefail
cd "$(dirname "$0")/../.."

# jq and openssl come from Debian; installed when missing.
missing=()
for tool in jq openssl; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test-deploy-aws: installing ${missing[*]} from Debian"
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

script=scripts/deploy-aws.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The stand-in: records every call in $FAKE_AWS_LOG and answers the calls
# the script makes with made-up values.
mkdir -p "$tmp/bin"
cat >"$tmp/bin/aws" <<'FAKE'
#!/usr/bin/env bash
set -euo pipefail
printf '%s\n' "$*" >>"$FAKE_AWS_LOG"
after() {
  local flag=$1
  shift
  while [ $# -gt 0 ]; do
    if [ "$1" = "$flag" ]; then
      printf '%s' "$2"
      return
    fi
    shift
  done
}
case "$*" in
  *"cloudformation describe-stacks"*OutputKey==*)
    key=$(printf '%s' "$*" | sed -n "s/.*OutputKey=='\([A-Za-z]*\)'.*/\1/p")
    echo "fake-$key"
    ;;
  *"cloudformation describe-stacks"*) exit 255 ;;
  *"secretsmanager describe-secret"*) echo None ;;
  *"iot create-keys-and-certificate"*)
    printf -- '-----BEGIN CERTIFICATE-----\nFAKECERT\n-----END CERTIFICATE-----\n' \
      >"$(after --certificate-pem-outfile "$@")"
    printf -- '-----BEGIN RSA PRIVATE KEY-----\nFAKE-PRIVATE-KEY-MATERIAL\n-----END RSA PRIVATE KEY-----\n' \
      >"$(after --private-key-outfile "$@")"
    printf -- '-----BEGIN PUBLIC KEY-----\nFAKEPUB\n-----END PUBLIC KEY-----\n' >"$(after --public-key-outfile "$@")"
    echo "arn:aws:iot:eu-west-1:123456789012:cert/0123abcd"
    ;;
  *"secretsmanager put-secret-value"*)
    src=$(after --secret-string "$@")
    cp "${src#file://}" "$FAKE_AWS_DIR/secret.json"
    echo v1
    ;;
  *"iot describe-endpoint"*) echo a1b2c3-ats.iot.eu-west-1.amazonaws.com ;;
  *"iot create-thing"*) echo "arn:aws:iot:eu-west-1:123456789012:thing/$(after --thing-name "$@")" ;;
  *"sts get-caller-identity"*) echo 123456789012 ;;
  *) ;;
esac
FAKE
chmod +x "$tmp/bin/aws"
export FAKE_AWS_LOG=$tmp/aws.log FAKE_AWS_DIR=$tmp
export PATH="$tmp/bin:$PATH"
export HOME=$tmp/home
mkdir -p "$HOME"

cat >"$tmp/params.env" <<'EOF'
# a deployment for the tests
ISOBAR_ENV=test
AWS_REGION=eu-west-1
IMAGE_URI=123456789012.dkr.ecr.eu-west-1.amazonaws.com/isobar-test:1.2.3
API_DOMAIN=api.wx.example.net
CERTIFICATE_ARN=arn:aws:acm:eu-west-1:123456789012:certificate/00000000-1111-2222-3333-444444444444
ALARM_EMAIL="ops@example.net"
DASHBOARD_DOMAIN=
EOF

passed=0 failed=0 skipped=0
out=$tmp/out
# case NAME EXPECTED_STATUS ARGS...: runs the script; the output is in $out.
run_case() {
  local name=$1 want=$2 got=0
  shift 2
  : >"$FAKE_AWS_LOG"
  "$script" "$@" >"$out" 2>&1 </dev/null || got=$?
  if [ "$got" -ne "$want" ]; then
    fail "$name" "exit $got, expected $want"
    return 1
  fi
}
pass() {
  passed=$((passed + 1))
  printf 'ok    %s\n' "$1"
}
fail() {
  failed=$((failed + 1))
  printf 'FAIL  %s: %s\n' "$1" "$2"
  sed 's/^/      | /' "$out"
}
skip() {
  skipped=$((skipped + 1))
  printf 'skip  %s: %s\n' "$1" "$2"
}
has() { grep -qF -- "$2" "$out" || { fail "$1" "no '$2' in the output"; return 1; }; }
lacks() { ! grep -qF -- "$2" "$out" || { fail "$1" "'$2' in the output"; return 1; }; }
no_aws_calls() { [ ! -s "$FAKE_AWS_LOG" ] || { fail "$1" "called aws: $(head -n 1 "$FAKE_AWS_LOG")"; return 1; }; }

p=(--params "$tmp/params.env")

# --- dry runs ------------------------------------------------------------------

t="dry-run deploy: seven stacks in order, nothing called"
if run_case "$t" 0 "${p[@]}" --dry-run deploy && no_aws_calls "$t"; then
  order=$(grep -o 'stack-name isobar-test-[a-z]* --template-file' "$out" | awk '{print $2}' | tr '\n' ' ')
  if [ "$order" = "isobar-test-base isobar-test-network isobar-test-data isobar-test-iot isobar-test-dashboard isobar-test-service isobar-test-observability " ]; then
    pass "$t"
  else
    fail "$t" "order: $order"
  fi
fi

t="dry-run deploy CLUSTER=true: MSK after data, its brokers to iot and service"
if run_case "$t" 0 "${p[@]}" --set CLUSTER=true --set MAX_TASKS=6 --set KAFKA_BROKERS=4 --dry-run deploy &&
  no_aws_calls "$t"; then
  order=$(grep -o 'stack-name isobar-test-[a-z]* --template-file' "$out" | awk '{print $2}' | tr '\n' ' ')
  brokers=$(grep -n 'kafka get-bootstrap-brokers' "$out" | head -n 1 | cut -d: -f1)
  kafka=$(grep -n 'stack-name isobar-test-kafka' "$out" | head -n 1 | cut -d: -f1)
  iot=$(grep -n 'stack-name isobar-test-iot' "$out" | head -n 1 | cut -d: -f1)
  with_brokers=$(grep -c 'KafkaBootstrapBrokers=<SASL/SCRAM bootstrap brokers of' "$out")
  if [ "$order" != "isobar-test-base isobar-test-network isobar-test-data isobar-test-kafka isobar-test-iot isobar-test-dashboard isobar-test-service isobar-test-observability " ]; then
    fail "$t" "order: $order"
  elif [ -z "$brokers" ] || [ "$kafka" -gt "$brokers" ] || [ "$brokers" -gt "$iot" ]; then
    fail "$t" "kafka at ${kafka:-?}, bootstrap brokers read at ${brokers:-?}, iot at ${iot:-?}"
  elif [ "$with_brokers" -ne 2 ]; then
    fail "$t" "$with_brokers stacks got the brokers, expected iot and service"
  elif has "$t" "KafkaBrokers=4" && has "$t" "MaxTasks=6" && has "$t" "BootstrapBrokerStringSaslScram" &&
    has "$t" "dry run done: 8 stacks"; then
    pass "$t"
  fi
fi

t="dry-run deploy: a single instance has no MSK, and no brokers for iot and service"
if run_case "$t" 0 "${p[@]}" --dry-run deploy && lacks "$t" "isobar-test-kafka" &&
  lacks "$t" "get-bootstrap-brokers" && has "$t" "dry run done: 7 stacks"; then
  n=$(grep -cE 'KafkaBootstrapBrokers=( |$)' "$out" || true)
  if [ "$n" -eq 2 ]; then
    pass "$t"
  else
    fail "$t" "$n stacks got an empty KafkaBootstrapBrokers, expected iot and service"
  fi
fi

t="dry-run deploy: parameters reach their stacks"
if run_case "$t" 0 "${p[@]}" --dry-run deploy &&
  has "$t" "--parameter-overrides EnvName=test AlarmEmail=ops@example.net" &&
  has "$t" "ImageUri=123456789012.dkr.ecr.eu-west-1.amazonaws.com/isobar-test:1.2.3" &&
  has "$t" "ApiDomainName=api.wx.example.net" &&
  has "$t" "DashboardDomainName=" &&
  has "$t" "aws --region eu-west-1 cloudformation deploy" &&
  has "$t" "--capabilities CAPABILITY_IAM"; then
  pass "$t"
fi

t="dry-run deploy: the daemon's certificate is made before the service stack"
if run_case "$t" 0 "${p[@]}" --dry-run deploy; then
  cert=$(grep -n 'iot create-keys-and-certificate' "$out" | head -n 1 | cut -d: -f1)
  service=$(grep -n 'stack-name isobar-test-service' "$out" | head -n 1 | cut -d: -f1)
  iot=$(grep -n 'stack-name isobar-test-iot' "$out" | head -n 1 | cut -d: -f1)
  if [ -n "$cert" ] && [ -n "$service" ] && [ "$iot" -lt "$cert" ] && [ "$cert" -lt "$service" ] &&
    has "$t" "secretsmanager put-secret-value" && has "$t" "iot describe-endpoint"; then
    pass "$t"
  else
    fail "$t" "iot at ${iot:-?}, certificate at ${cert:-?}, service at ${service:-?}"
  fi
fi

t="dry-run deploy: IOT_ENDPOINT given is used, not looked up"
if run_case "$t" 0 "${p[@]}" --set IOT_ENDPOINT=zz9-ats.iot.eu-west-1.amazonaws.com --dry-run deploy &&
  has "$t" "IotEndpoint=zz9-ats.iot.eu-west-1.amazonaws.com" && lacks "$t" "describe-endpoint"; then
  pass "$t"
fi

t="dry-run deploy --only service,observability"
if run_case "$t" 0 "${p[@]}" --dry-run deploy --only observability,service && lacks "$t" "isobar-test-base"; then
  n=$(grep -c 'cloudformation deploy' "$out")
  if [ "$n" -eq 2 ]; then pass "$t"; else fail "$t" "$n stacks deployed, expected 2"; fi
fi

t="dry-run deploy --only base needs no image, domain or certificate yet"
if run_case "$t" 0 "${p[@]}" --set IMAGE_URI= --set API_DOMAIN= --set CERTIFICATE_ARN= --dry-run deploy --only base &&
  has "$t" "isobar-test-base"; then
  n=$(grep -c 'cloudformation deploy' "$out")
  if [ "$n" -eq 1 ]; then pass "$t"; else fail "$t" "$n stacks deployed, expected 1"; fi
fi

t="dry-run deploy --plan creates change sets only"
if run_case "$t" 0 "${p[@]}" --dry-run deploy --plan; then
  n=$(grep -c -- '--no-execute-changeset' "$out")
  if [ "$n" -eq 7 ] && lacks "$t" "create-keys-and-certificate"; then
    pass "$t"
  elif [ "$n" -ne 7 ]; then
    fail "$t" "$n change sets, expected 7"
  fi
fi

t="--set overrides the file"
if run_case "$t" 0 "${p[@]}" --set TASK_CPU=1024 --set ISOBAR_ENV=stage --dry-run deploy &&
  has "$t" "TaskCpu=1024" && has "$t" "isobar-stage-service"; then
  pass "$t"
fi

t="dry-run without the AWS CLI on PATH"
if PATH=/usr/bin:/bin run_case "$t" 0 "${p[@]}" --dry-run deploy; then
  pass "$t"
fi

t="dry-run register-station: commands shown, no directory made"
if run_case "$t" 0 "${p[@]}" --dry-run register-station WS001 && no_aws_calls "$t" &&
  has "$t" "iot create-thing --thing-name WS001" && has "$t" "iot attach-thing-principal" &&
  has "$t" "--private-key-outfile $HOME/.isobar/stations/test/WS001/private.pem.key"; then
  if [ -e "$HOME/.isobar" ]; then fail "$t" "made $HOME/.isobar"; else pass "$t"; fi
fi

t="dry-run destroy --yes: last stack first, nothing called"
if run_case "$t" 0 "${p[@]}" --dry-run destroy --yes && no_aws_calls "$t"; then
  order=$(grep -o 'delete-stack --stack-name isobar-test-[a-z]*' "$out" | awk '{print $3}' | tr '\n' ' ')
  if [ "$order" = "isobar-test-observability isobar-test-service isobar-test-dashboard isobar-test-iot isobar-test-kafka isobar-test-data isobar-test-network isobar-test-base " ] &&
    has "$t" "deletion_protection.enabled,Value=false" && has "$t" "iot list-targets-for-policy"; then
    pass "$t"
  else
    fail "$t" "order: $order"
  fi
fi

t="dry-run publish-dashboard"
if run_case "$t" 0 "${p[@]}" --dry-run publish-dashboard &&
  has "$t" "scripts/publish-dashboard.sh --api-origin '<ApiOrigin of isobar-test-service>'" &&
  has "$t" "--distribution '<DistributionId of isobar-test-dashboard>'"; then
  pass "$t"
fi

# --- bad input: exit 64, naming what is wrong, before anything is called -----

# refuse NAME MESSAGE ARGS...
refuse() {
  local name=$1 message=$2
  shift 2
  if run_case "$name" 64 "$@" && has "$name" "$message" && no_aws_calls "$name"; then
    pass "$name"
  fi
}
refuse "no command" "Commands:"
refuse "unknown command" "unknown command frobnicate" "${p[@]}" frobnicate
refuse "unknown option of deploy" "deploy: unknown argument --force" "${p[@]}" --dry-run deploy --force
refuse "--only an unknown stack" "--only: no stack bogus" "${p[@]}" --dry-run deploy --only bogus
refuse "params file missing" "no such file" --params "$tmp/none.env" --dry-run deploy
refuse "no region" "AWS_REGION is required" --set ISOBAR_ENV=test --dry-run deploy
refuse "bad deployment name" "ISOBAR_ENV=Prod-1" "${p[@]}" --set ISOBAR_ENV=Prod-1 --dry-run deploy
refuse "IMAGE_URI missing" "IMAGE_URI is required" "${p[@]}" --set IMAGE_URI= --dry-run deploy
refuse "IMAGE_URI not in ECR" "not an ECR image" "${p[@]}" --set IMAGE_URI=docker.io/isobar:1 --dry-run deploy
refuse "IMAGE_URI in another region" "IMAGE_URI is in us-east-1" "${p[@]}" \
  --set IMAGE_URI=123456789012.dkr.ecr.us-east-1.amazonaws.com/isobar-test:1 --dry-run deploy
refuse "certificate in another region" "not an ACM certificate in eu-west-1" "${p[@]}" \
  --set CERTIFICATE_ARN=arn:aws:acm:us-east-1:123456789012:certificate/0000 --dry-run deploy
refuse "dashboard domain without its certificate" "DASHBOARD_DOMAIN needs DASHBOARD_CERTIFICATE_ARN" "${p[@]}" \
  --set DASHBOARD_DOMAIN=wx.example.net --dry-run deploy
refuse "dashboard certificate outside us-east-1" "not an ACM certificate in us-east-1" "${p[@]}" \
  --set DASHBOARD_DOMAIN=wx.example.net --set DASHBOARD_CERTIFICATE_ARN=arn:aws:acm:eu-west-1:123456789012:certificate/0 \
  --dry-run deploy
refuse "more than one task" "same MQTT client id" "${p[@]}" --set MAX_TASKS=2 --dry-run deploy
refuse "one worker in the cluster mode" "MAX_TASKS=1: with CLUSTER=true, 2" "${p[@]}" --set CLUSTER=true --set MAX_TASKS=1 --dry-run deploy
refuse "more workers than partitions" "MAX_TASKS=13" "${p[@]}" --set CLUSTER=true --set MAX_TASKS=13 --dry-run deploy
refuse "MSK settings without the cluster mode" "KAFKA_BROKERS is for the cluster mode" "${p[@]}" --set KAFKA_BROKERS=4 --dry-run deploy
refuse "an odd number of brokers" "KAFKA_BROKERS=3: 2, 4 or 6" "${p[@]}" --set CLUSTER=true --set KAFKA_BROKERS=3 --dry-run deploy
refuse "CLUSTER not a boolean" "CLUSTER=yes: true or false" "${p[@]}" --set CLUSTER=yes --dry-run deploy
refuse "not a boolean" "DB_MULTI_AZ=yes: true or false" "${p[@]}" --set DB_MULTI_AZ=yes --dry-run deploy
refuse "in-flight window above IoT Core's" "MQTT_MAX_INFLIGHT=500" "${p[@]}" --set MQTT_MAX_INFLIGHT=500 --dry-run deploy
refuse "a segment age of zero, which the daemon refuses" "ARCHIVE_SEGMENT_AGE=0m" "${p[@]}" --set ARCHIVE_SEGMENT_AGE=0m --dry-run deploy
refuse "retention CloudWatch does not offer" "LOG_RETENTION_DAYS=100" "${p[@]}" --set LOG_RETENTION_DAYS=100 --dry-run deploy
refuse "unknown key" "unknown key NOT_A_KEY" "${p[@]}" --set NOT_A_KEY=1 --dry-run deploy
refuse "bad station id" "station id 'bad/id'" "${p[@]}" --dry-run register-station bad/id
refuse "register-station without an id" "station id ''" "${p[@]}" --dry-run register-station
refuse "two station ids" "takes one station id" "${p[@]}" --dry-run register-station WS1 WS2

printf 'ISOBAR_ENV=test\nAWS_REGION=eu-west-1\nthis is not a setting\n' >"$tmp/bad.env"
refuse "a line that is not KEY=VALUE" "bad.env:3: not KEY=VALUE" --params "$tmp/bad.env" --dry-run deploy

t="a value is data, never run"
cp "$tmp/params.env" "$tmp/inject.env"
# shellcheck disable=SC2016 # the $( ) is the point: it must stay text
printf 'LOG_LEVEL=$(touch %s/pwned)\n' "$tmp" >>"$tmp/inject.env"
if run_case "$t" 64 --params "$tmp/inject.env" --dry-run deploy && has "$t" "LOG_LEVEL=\$(touch"; then
  if [ -e "$tmp/pwned" ]; then fail "$t" "the value was run"; else pass "$t"; fi
fi

t="without the AWS CLI a real run exits 69"
if PATH=/usr/bin:/bin run_case "$t" 69 "${p[@]}" deploy && has "$t" "aws is needed"; then
  pass "$t"
fi

t="destroy asks, and refuses without a terminal"
if run_case "$t" 64 "${p[@]}" destroy && has "$t" "refusing without --yes" &&
  ! grep -q 'delete-stack' "$FAKE_AWS_LOG"; then
  pass "$t"
fi

t="deregister-station asks, and refuses without a terminal"
if run_case "$t" 64 "${p[@]}" deregister-station WS001 && has "$t" "refusing without --yes" && no_aws_calls "$t"; then
  pass "$t"
fi

t="deploy --plan makes no certificate, and executes no change set"
if run_case "$t" 0 "${p[@]}" deploy --plan --only service &&
  has "$t" "deploy without --plan (or init-daemon-cert) makes one"; then
  if grep -q 'create-keys-and-certificate\|put-secret-value' "$FAKE_AWS_LOG"; then
    fail "$t" "calls: $(cat "$FAKE_AWS_LOG")"
  elif ! grep -q 'cloudformation deploy --stack-name isobar-test-service .*--no-execute-changeset' "$FAKE_AWS_LOG"; then
    fail "$t" "no change set: $(cat "$FAKE_AWS_LOG")"
  else
    pass "$t"
  fi
fi

t="dry-run deregister-station: each certificate's calls once"
if run_case "$t" 0 "${p[@]}" --dry-run deregister-station WS001 --yes && no_aws_calls "$t" &&
  has "$t" "iot delete-thing --thing-name WS001"; then
  n=$(grep -c 'iot delete-certificate' "$out")
  if [ "$n" -eq 1 ]; then pass "$t"; else fail "$t" "$n delete-certificate calls"; fi
fi

# --- against the stand-in: where the keys go ---------------------------------

if [ ! -f /etc/ssl/certs/Amazon_Root_CA_1.pem ] || ! command -v jq >/dev/null || ! command -v openssl >/dev/null; then
  skip "register-station and init-daemon-cert against the stand-in" \
    "needs jq, openssl and the system's Amazon Root CA 1 (/etc/ssl/certs)"
else
  t="register-station: key, certificate, CA and endpoint, owner-only, key never printed"
  dir=$tmp/stations/WS001
  if run_case "$t" 0 "${p[@]}" register-station WS001 --out "$dir" && lacks "$t" "FAKE-PRIVATE-KEY-MATERIAL"; then
    modes=$(stat -c '%a %n' "$dir" "$dir"/* | sort)
    bad=$(stat -c '%a %n' "$dir"/* | grep -v '^600 ' || true)
    if [ "$(stat -c %a "$dir")" != 700 ] || [ -n "$bad" ]; then
      fail "$t" "modes: $modes"
    elif ! grep -q FAKE-PRIVATE-KEY-MATERIAL "$dir/private.pem.key" ||
      [ "$(cat "$dir/endpoint.txt")" != a1b2c3-ats.iot.eu-west-1.amazonaws.com ] ||
      ! cmp -s "$dir/AmazonRootCA1.pem" /etc/ssl/certs/Amazon_Root_CA_1.pem ||
      ! grep -q -- '-t weather/WS001/observations' "$dir/README.txt"; then
      fail "$t" "files: $(ls "$dir")"
    elif ! grep -q 'attach-policy --policy-name fake-StationPolicyName --target arn:aws:iot:eu-west-1:123456789012:cert/0123abcd' "$FAKE_AWS_LOG" ||
      ! grep -q 'attach-thing-principal --thing-name WS001' "$FAKE_AWS_LOG"; then
      fail "$t" "calls: $(cat "$FAKE_AWS_LOG")"
    else
      pass "$t"
    fi
  fi

  t="register-station never overwrites a station's files"
  if run_case "$t" 64 "${p[@]}" register-station WS001 --out "$dir" && has "$t" "is not empty" && no_aws_calls "$t"; then
    pass "$t"
  fi

  t="init-daemon-cert: certificate, key and CA to the secret from a file, tagged, nothing printed"
  rm -f "$tmp/secret.json"
  if run_case "$t" 0 "${p[@]}" init-daemon-cert && lacks "$t" "FAKE-PRIVATE-KEY-MATERIAL"; then
    if ! jq -e '(.private_key_pem | contains("FAKE-PRIVATE-KEY-MATERIAL")) and (.certificate_pem | contains("FAKECERT")) and (.ca_pem | contains("BEGIN CERTIFICATE"))' \
      "$tmp/secret.json" >/dev/null 2>&1; then
      fail "$t" "the secret's JSON: $(jq -c 'keys' "$tmp/secret.json" 2>&1)"
    elif grep -q 'FAKE-PRIVATE-KEY-MATERIAL' "$FAKE_AWS_LOG"; then
      fail "$t" "the key was on an aws command line"
    elif ! grep -q 'tag-resource --secret-id fake-MqttClientSecretArn --tags Key=isobar:certificate-id,Value=0123abcd' "$FAKE_AWS_LOG" ||
      ! grep -q 'attach-policy --policy-name fake-DaemonPolicyName' "$FAKE_AWS_LOG"; then
      fail "$t" "calls: $(cat "$FAKE_AWS_LOG")"
    else
      pass "$t"
    fi
  fi
fi

printf '\ndeploy-aws tests: %d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
[ "$failed" -eq 0 ]
