#!/usr/bin/env bash
# Deploys isobar to AWS with the CloudFormation templates in deploy/aws/
# (docs/deploy.md, "AWS", walks through it).
#
#   scripts/deploy-aws.sh [--params FILE] [--set KEY=VALUE]... [--dry-run] COMMAND [ARGS]
#
# Commands:
#   deploy [--only STACK,...] [--plan]
#               the stacks in order: base network data [kafka] iot dashboard
#               service observability (kafka only with CLUSTER=true, whose
#               MSK bootstrap brokers then go to iot and service); the
#               daemon's IoT certificate is made before the service stack if
#               it has none. --plan creates change sets
#               and executes none, and makes no certificate (a stack that
#               imports from one not yet deployed cannot be planned).
#   init-daemon-cert [--rotate]
#               makes the daemon's IoT Core certificate and stores it, with
#               its key and AmazonRootCA1, in the iot stack's secret; with
#               --rotate replaces one that exists and restarts the service.
#   register-station ID [--out DIR]
#               a thing, a certificate and its key for station ID, written
#               with the endpoint and the CA to DIR (default
#               ~/.isobar/stations/<env>/ID), readable by you only.
#   deregister-station ID [--yes]
#               detaches, deactivates and deletes the station's certificates
#               and deletes its thing.
#   publish-dashboard
#               scripts/publish-dashboard.sh with the API origin, bucket and
#               distribution of the deployed stacks.
#   outputs     every stack's outputs.
#   status      every stack's status, the service's tasks, alarms in ALARM.
#   destroy [--yes]
#               deletes the stacks, last first, and the stations' certificates
#               and things. The data lake, the log bucket, the dashboard
#               bucket, the ECR repository, the KMS key and the database's
#               final snapshot are kept.
#
# Options:
#   --params FILE   KEY=VALUE lines (deploy/aws/params.example.env lists every
#                   key); default deploy/aws/params.env. No shell expansion.
#   --set KEY=VALUE overrides the file; repeatable.
#   --dry-run       validates the input and prints every command it would run,
#                   calling nothing: no AWS CLI or credentials needed.
#
# Bad input exits 64 and says what is wrong; a missing tool exits 69.
set -euo pipefail
# Everything this script writes (keys, certificates, the secret's JSON) is
# readable by you only; the dashboard's build gets the caller's umask back.
caller_umask=$(umask)
umask 077

root=$(cd "$(dirname "$0")/.." && pwd)
templates=$root/deploy/aws
stacks_in_order=(base network data kafka iot dashboard service observability)

# Amazon Root CA 1, which signs IoT Core's ATS endpoints.
amazon_root_ca1_sha256=8E:CD:E6:88:4F:3D:87:B1:12:5B:A3:1A:C3:FC:B1:3D:70:16:DE:7F:57:CC:90:4F:E1:CB:97:C6:AE:98:19:6E

# usage [STATUS]: the comment above; 64 (bad input) unless asked for.
usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit "${1:-64}"
}
fail() {
  echo "deploy-aws: $*" >&2
  exit 64
}
say() { echo "deploy-aws: $*" >&2; }

# --- the parameters ------------------------------------------------------------

# KEY then the stack parameters it sets (stack:Parameter).
param_map=(
  "ALARM_EMAIL base:AlarmEmail"
  "LOG_RETENTION_DAYS base:LogRetentionDays network:LogRetentionDays kafka:LogRetentionDays iot:LogRetentionDays service:LogRetentionDays"
  "VPC_CIDR network:VpcCidr"
  "NAT_GATEWAYS network:NatGateways"
  "FLOW_LOG_TRAFFIC network:FlowLogTrafficType"
  "DB_INSTANCE_CLASS data:DbInstanceClass"
  "DB_ENGINE_VERSION data:DbEngineVersion"
  "DB_ALLOCATED_STORAGE data:DbAllocatedStorage"
  "DB_MAX_ALLOCATED_STORAGE data:DbMaxAllocatedStorage"
  "DB_MULTI_AZ data:DbMultiAz"
  "DB_BACKUP_RETENTION_DAYS data:DbBackupRetentionDays"
  "DB_DELETION_PROTECTION data:DbDeletionProtection"
  "DB_PERFORMANCE_INSIGHTS data:DbPerformanceInsights"
  "CACHE_NODE_TYPE data:CacheNodeType"
  "CACHE_NODES data:CacheNodes"
  "LAKE_COLD_STORAGE_CLASS data:LakeColdStorageClass"
  "LAKE_COLD_AFTER_DAYS data:LakeColdAfterDays"
  "RAW_EXPIRE_DAYS data:RawExpireDays"
  "ARCHIVE_PREFIX data:ArchivePrefix"
  "KAFKA_VERSION kafka:KafkaVersion"
  "KAFKA_INSTANCE_TYPE kafka:KafkaInstanceType"
  "KAFKA_BROKERS kafka:KafkaBrokers"
  "KAFKA_VOLUME_GIB kafka:KafkaVolumeGiB"
  "KAFKA_TOPIC iot:KafkaTopic service:KafkaTopic"
  "MQTT_CLIENT_ID iot:MqttClientId"
  "RAW_BUFFER_SECONDS iot:RawBufferSeconds"
  "DASHBOARD_DOMAIN dashboard:DashboardDomainName"
  "DASHBOARD_CERTIFICATE_ARN dashboard:DashboardCertificateArn"
  "PRICE_CLASS dashboard:PriceClass"
  "IMAGE_URI service:ImageUri"
  "CPU_ARCHITECTURE service:CpuArchitecture"
  "CONTAINER_USER service:ContainerUser"
  "CERTIFICATE_ARN service:CertificateArn"
  "API_DOMAIN service:ApiDomainName"
  "HOSTED_ZONE_ID service:HostedZoneId"
  "MQTT_MAX_INFLIGHT service:MqttMaxInflight"
  "TASK_CPU service:TaskCpu"
  "TASK_MEMORY service:TaskMemory"
  "MAX_TASKS service:MaxTasks"
  "CPU_TARGET_PERCENT service:CpuTargetPercent"
  "LOG_LEVEL service:LogLevel"
  "ARCHIVE_SEGMENT_AGE service:ArchiveSegmentAge"
  "TRACE_SAMPLE_RATIO service:TraceSampleRatio"
  "WAF_RATE_LIMIT service:WafRateLimit"
  "LB_DELETION_PROTECTION service:LoadBalancerDeletionProtection"
  "INIT_IMAGE service:InitImage"
  "COLLECTOR_IMAGE service:CollectorImage"
  "ERROR_RATE_PERCENT observability:ErrorRatePercent"
  "SLOW_RESPONSE_SECONDS observability:SlowResponseSeconds"
  "CPU_ALARM_PERCENT observability:CpuPercent"
  "DATA_MISSING_PERIODS observability:DataMissingPeriods"
)
# Keys of the script itself.
script_keys=(ISOBAR_ENV AWS_REGION AWS_PROFILE IOT_ENDPOINT CLUSTER)

declare -A value=()   # KEY -> value, for every key given (empty included)
declare -A known=()
for entry in "${param_map[@]}"; do known[${entry%% *}]=1; done
for key in "${script_keys[@]}"; do known[$key]=1; done

# set_key KEY VALUE WHERE
set_key() {
  [ -n "${known[$1]:-}" ] || fail "$3: unknown key $1 (deploy/aws/params.example.env lists them)"
  value[$1]=$2
}

# KEY=VALUE lines; '#' starts a comment line; a value may be quoted with ''
# or "" (taken literally, nothing is expanded).
read_params() {
  local file=$1 n=0 line key val
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    line=${line%$'\r'}
    [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
    [[ $line =~ ^([A-Z][A-Z0-9_]*)=(.*)$ ]] || fail "$file:$n: not KEY=VALUE: $line"
    key=${BASH_REMATCH[1]}
    val=${BASH_REMATCH[2]}
    if [[ $val =~ ^\"(.*)\"$ || $val =~ ^\'(.*)\'$ ]]; then
      val=${BASH_REMATCH[1]}
    fi
    set_key "$key" "$val" "$file:$n"
  done <"$file"
}

get() { printf '%s' "${value[$1]:-}"; }
given() { [ -n "${value[$1]+x}" ]; }
# CLUSTER=true: workers on an MSK cluster that the IoT rule writes to.
cluster_mode() { [ "$(get CLUSTER)" = true ]; }

# check KEY REGEX WHAT: a given, non-empty value must match.
check() {
  local v
  v=$(get "$1")
  [ -z "$v" ] || [[ $v =~ $2 ]] || fail "$1=$v: $3"
}
need() {
  [ -n "$(get "$1")" ] || fail "$1 is required ($2); set it in the params file or with --set $1=..."
}

validate_common() {
  env_name=${value[ISOBAR_ENV]:-prod}
  [[ $env_name =~ ^[a-z][a-z0-9]{0,11}$ ]] ||
    fail "ISOBAR_ENV=$env_name: 1 to 12 lower-case letters and digits, starting with a letter (it is part of IoT rule names, which allow no hyphen)"
  region=$(get AWS_REGION)
  [ -n "$region" ] || fail "AWS_REGION is required (the region to deploy to, e.g. eu-west-1)"
  [[ $region =~ ^[a-z]{2}(-[a-z]+)+-[0-9]$ ]] || fail "AWS_REGION=$region: not a region name like eu-west-1"
  check AWS_PROFILE '^[A-Za-z0-9_.-]+$' "not a profile name"
  check IOT_ENDPOINT '^[a-z0-9]+-ats\.iot\.[a-z0-9-]+\.amazonaws\.com$' \
    "not an IoT Core ATS endpoint (aws iot describe-endpoint --endpoint-type iot:Data-ATS)"
  if given AWS_PROFILE && [ -n "$(get AWS_PROFILE)" ]; then
    export AWS_PROFILE
    AWS_PROFILE=$(get AWS_PROFILE)
  fi
}

# What CloudFormation would refuse anyway, said before anything is created,
# and what only this script knows (MAX_TASKS).
validate_deploy() {
  local domain='^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$'
  local number='^[0-9]+$' bool='^(true|false)$'
  if wants service; then
    need IMAGE_URI "the daemon's image in the base stack's ECR repository"
    need API_DOMAIN "the API's domain, e.g. api.wx.example.net"
    need CERTIFICATE_ARN "an ACM certificate in $region for API_DOMAIN"
  fi
  check IMAGE_URI '^[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127}|@sha256:[0-9a-f]{64})$' \
    "not an ECR image (<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag> or @sha256:<digest>)"
  local image_region
  image_region=$(get IMAGE_URI | sed -n 's/^[0-9]*\.dkr\.ecr\.\([a-z0-9-]*\)\.amazonaws\.com\/.*/\1/p')
  [ -z "$image_region" ] || [ "$image_region" = "$region" ] ||
    fail "IMAGE_URI is in $image_region, the deployment in $region: push the image to the base stack's repository (isobar-$env_name)"
  check API_DOMAIN "$domain" "not a domain name"
  check DASHBOARD_DOMAIN "$domain" "not a domain name"
  check CERTIFICATE_ARN "^arn:aws[a-z-]*:acm:$region:[0-9]{12}:certificate/[0-9a-f-]+\$" \
    "not an ACM certificate in $region (the load balancer's certificate must be in its region)"
  check DASHBOARD_CERTIFICATE_ARN '^arn:aws[a-z-]*:acm:us-east-1:[0-9]{12}:certificate/[0-9a-f-]+$' \
    "not an ACM certificate in us-east-1 (CloudFront takes its certificates from there only)"
  if [ -n "$(get DASHBOARD_DOMAIN)" ] && [ -z "$(get DASHBOARD_CERTIFICATE_ARN)" ]; then
    fail "DASHBOARD_DOMAIN needs DASHBOARD_CERTIFICATE_ARN (an ACM certificate in us-east-1)"
  fi
  if [ -z "$(get DASHBOARD_DOMAIN)" ] && [ -n "$(get DASHBOARD_CERTIFICATE_ARN)" ]; then
    fail "DASHBOARD_CERTIFICATE_ARN is for DASHBOARD_DOMAIN: give both or neither"
  fi
  check HOSTED_ZONE_ID '^Z[A-Z0-9]{1,31}$' "not a Route 53 hosted zone id"
  check ALARM_EMAIL '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$' "not an e-mail address"
  check CLUSTER '^(true|false)$' "true or false"
  check MAX_TASKS '^[0-9]+$' "not a number"
  if [ -n "$(get MAX_TASKS)" ] && ! cluster_mode && [ "$(get MAX_TASKS)" != 1 ]; then
    fail "MAX_TASKS=$(get MAX_TASKS): a single instance runs as one task. Every task would connect to IoT Core with the same MQTT client id and take the session from the others; set CLUSTER=true to run workers on MSK instead (docs/deploy.md, AWS)"
  fi
  if [ -n "$(get MAX_TASKS)" ] && cluster_mode && { [ "$(get MAX_TASKS)" -lt 2 ] || [ "$(get MAX_TASKS)" -gt 12 ]; }; then
    fail "MAX_TASKS=$(get MAX_TASKS): with CLUSTER=true, 2 (one may fail) to 12 (one worker per partition)"
  fi
  check KAFKA_BROKERS '^(2|4|6)$' "2, 4 or 6 (even over the two private subnets)"
  check KAFKA_VOLUME_GIB '^[0-9]+$' "not a whole number"
  check KAFKA_INSTANCE_TYPE '^kafka\.[a-z0-9]+\.[a-z0-9]+$' "not an MSK broker type (kafka.m7g.large)"
  check KAFKA_VERSION '^[0-9]+\.[0-9]+\.([0-9]+|x)(\.kraft)?$' "not an MSK Kafka version (3.9.x)"
  check KAFKA_TOPIC '^[A-Za-z0-9._-]{1,249}$' "not a Kafka topic name"
  if ! cluster_mode; then
    local k
    for k in KAFKA_VERSION KAFKA_INSTANCE_TYPE KAFKA_BROKERS KAFKA_VOLUME_GIB; do
      [ -z "$(get "$k")" ] || fail "$k is for the cluster mode: set CLUSTER=true, or leave $k out"
    done
  fi
  check NAT_GATEWAYS '^[12]$' "1 or 2"
  check VPC_CIDR '^([0-9]{1,3}\.){3}[0-9]{1,3}/(1[6-9]|2[0-2])$' "an IPv4 CIDR block from /16 to /22"
  check FLOW_LOG_TRAFFIC '^(ACCEPT|REJECT|ALL)$' "ACCEPT, REJECT or ALL"
  check LOG_RETENTION_DAYS '^(1|3|5|7|14|30|60|90|120|150|180|365|400|545|731|1096|1827|2192|2557|2922|3288|3653)$' \
    "one of CloudWatch Logs' retention periods (1, 3, 5, 7, 14, 30, 60, 90, ..., 365, ..., 3653)"
  local k
  for k in DB_ALLOCATED_STORAGE DB_MAX_ALLOCATED_STORAGE DB_BACKUP_RETENTION_DAYS LAKE_COLD_AFTER_DAYS \
    RAW_EXPIRE_DAYS RAW_BUFFER_SECONDS MQTT_MAX_INFLIGHT TASK_CPU TASK_MEMORY CPU_TARGET_PERCENT WAF_RATE_LIMIT \
    ERROR_RATE_PERCENT CPU_ALARM_PERCENT DATA_MISSING_PERIODS CACHE_NODES; do
    check "$k" "$number" "not a whole number"
  done
  for k in DB_MULTI_AZ DB_DELETION_PROTECTION DB_PERFORMANCE_INSIGHTS LB_DELETION_PROTECTION; do
    check "$k" "$bool" "true or false"
  done
  check CACHE_NODES '^[123]$' "1, 2 or 3"
  check MQTT_MAX_INFLIGHT '^([1-9]|[1-9][0-9]|100)$' "1 to 100 (IoT Core sends a client at most 100 unacknowledged messages)"
  check TASK_CPU '^(256|512|1024|2048|4096)$' "256, 512, 1024, 2048 or 4096"
  check DB_INSTANCE_CLASS '^db\.[a-z0-9]+\.[a-z0-9]+$' "not an RDS instance class (db.t4g.small)"
  check DB_ENGINE_VERSION '^1[4-7]\.[0-9]+$' "PostgreSQL major.minor, 14 to 17"
  check CACHE_NODE_TYPE '^cache\.[a-z0-9]+\.[a-z0-9]+$' "not an ElastiCache node type (cache.t4g.micro)"
  check LAKE_COLD_STORAGE_CLASS '^(GLACIER_IR|GLACIER|DEEP_ARCHIVE)$' "GLACIER_IR, GLACIER or DEEP_ARCHIVE"
  check ARCHIVE_PREFIX '^[a-z0-9][a-z0-9_-]*/$' "one path segment ending in a slash (lake/), or empty"
  check MQTT_CLIENT_ID '^[A-Za-z0-9_-]{1,64}$' "1 to 64 of A-Z a-z 0-9 _ -"
  check PRICE_CLASS '^PriceClass_(100|200|All)$' "PriceClass_100, PriceClass_200 or PriceClass_All"
  check CPU_ARCHITECTURE '^(X86_64|ARM64)$' "X86_64 or ARM64"
  check CONTAINER_USER '^[0-9]+:[0-9]+$' "uid:gid, numbers"
  check LOG_LEVEL '^[a-z0-9_:=,]+$' "a tracing filter (info, isobar=debug,warn)"
  check ARCHIVE_SEGMENT_AGE '^[1-9][0-9]*(s|m|h)$' "a duration above zero, like 15m (the daemon refuses 0)"
  check TRACE_SAMPLE_RATIO '^(0(\.[0-9]+)?|1(\.0+)?)$' "a share from 0 to 1"
  check SLOW_RESPONSE_SECONDS '^[0-9]+(\.[0-9]+)?$' "seconds"
}

# --- running things ----------------------------------------------------------

dry_run=0

# show COMMAND...: the command as it could be pasted into a shell, aws_
# spelled out.
show() {
  local a words=()
  [ "$1" = aws_ ] && { shift; set -- aws --region "$region" "$@"; }
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
      words+=("$a")
    else
      words+=("'${a//\'/\'\\\'\'}'")
    fi
  done
  printf '+ %s\n' "${words[*]}"
}

# run COMMAND...: what changes something; shown, not run, in a dry run.
run() {
  if [ "$dry_run" -eq 1 ]; then
    show "$@"
  else
    "$@"
  fi
}

# run_quiet COMMAND...: run, its output (an id or an ARN) dropped.
run_quiet() {
  if [ "$dry_run" -eq 1 ]; then
    show "$@"
  else
    "$@" >/dev/null
  fi
}

# read_into VAR PLACEHOLDER COMMAND...: what reads something the rest needs;
# a dry run shows it and goes on with PLACEHOLDER.
read_into() {
  local var=$1 placeholder=$2 out
  shift 2
  if [ "$dry_run" -eq 1 ]; then
    show "$@"
    out=$placeholder
  else
    out=$("$@")
  fi
  printf -v "$var" '%s' "$out"
}

aws_() { aws --region "$region" "$@"; }

require_tools() {
  [ "$dry_run" -eq 1 ] && return 0
  local t
  for t in "$@"; do
    if ! command -v "$t" >/dev/null 2>&1; then
      echo "deploy-aws: $t is needed (--dry-run shows what would run without it)" >&2
      exit 69
    fi
  done
}

stack_name() { printf 'isobar-%s-%s' "$env_name" "$1"; }

# output STACK KEY: one output of a deployed stack.
output_into() {
  local var=$1 stack=$2 key=$3
  read_into "$var" "<$key of $(stack_name "$stack")>" \
    aws_ cloudformation describe-stacks --stack-name "$(stack_name "$stack")" \
    --query "Stacks[0].Outputs[?OutputKey=='$key'].OutputValue | [0]" --output text
  if [ "$dry_run" -eq 0 ] && { [ -z "${!var}" ] || [ "${!var}" = None ]; }; then
    echo "deploy-aws: $(stack_name "$stack") has no output $key: is it deployed?" >&2
    exit 1
  fi
}

# --- deploy ------------------------------------------------------------------

selected=("${stacks_in_order[@]}")
wants() {
  local s
  for s in "${selected[@]}"; do [ "$s" = "$1" ] && return 0; done
  return 1
}

stack_params() {
  local stack=$1 entry key target
  printf '%s\n' "EnvName=$env_name"
  for entry in "${param_map[@]}"; do
    key=${entry%% *}
    given "$key" || continue
    for target in ${entry#* }; do
      [ "${target%%:*}" = "$stack" ] && printf '%s\n' "${target#*:}=$(get "$key")"
    done
  done
}

iot_endpoint=""
kafka_brokers=""
deploy_stack() {
  local stack=$1 plan=$2 params=()
  mapfile -t params < <(stack_params "$stack")
  if [ "$stack" = service ]; then
    params+=("IotEndpoint=$iot_endpoint")
  fi
  if [ "$stack" = iot ] || [ "$stack" = service ]; then
    params+=("KafkaBootstrapBrokers=$kafka_brokers")
  fi
  local args=(cloudformation deploy
    --stack-name "$(stack_name "$stack")"
    --template-file "$templates/$stack.yaml"
    --capabilities CAPABILITY_IAM
    --no-fail-on-empty-changeset
    --tags project=isobar "env=$env_name"
    --parameter-overrides "${params[@]}")
  [ "$plan" -eq 1 ] && args+=(--no-execute-changeset)
  say "stack $(stack_name "$stack") ($stack.yaml)"
  run aws_ "${args[@]}"
}

cmd_deploy() {
  local plan=0 only=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --plan) plan=1; shift ;;
      --only) only=${2:-}; [ -n "$only" ] || fail "--only needs stack names"; shift 2 ;;
      *) fail "deploy: unknown argument $1" ;;
    esac
  done
  if [ -n "$only" ]; then
    local s want=()
    IFS=, read -r -a want <<<"$only"
    for s in "${want[@]}"; do
      [[ " ${stacks_in_order[*]} " == *" $s "* ]] || fail "--only: no stack $s (stacks: ${stacks_in_order[*]})"
    done
    selected=()
    for s in "${stacks_in_order[@]}"; do
      [[ ",$only," == *",$s,"* ]] && selected+=("$s")
    done
  fi
  validate_deploy
  local s
  for s in "${selected[@]}"; do
    [ -f "$templates/$s.yaml" ] || fail "missing template $templates/$s.yaml"
  done
  require_tools aws
  if [ "$dry_run" -eq 0 ] && wants service; then
    local account
    account=$(aws_ sts get-caller-identity --query Account --output text)
    [[ $(get IMAGE_URI) == "$account".* ]] ||
      fail "IMAGE_URI is not in this account ($account): push the image to the base stack's repository"
  fi
  for s in "${selected[@]}"; do
    # The cluster mode's stack, only in the cluster mode.
    [ "$s" = kafka ] && ! cluster_mode && continue
    if { [ "$s" = iot ] || [ "$s" = service ]; } && cluster_mode && [ -z "$kafka_brokers" ]; then
      local cluster_arn
      output_into cluster_arn kafka ClusterArn
      read_into kafka_brokers "<SASL/SCRAM bootstrap brokers of $cluster_arn>" \
        aws_ kafka get-bootstrap-brokers --cluster-arn "$cluster_arn" \
        --query BootstrapBrokerStringSaslScram --output text
    fi
    if [ "$s" = service ]; then
      ensure_daemon_cert "$plan"
      if [ -n "$(get IOT_ENDPOINT)" ]; then
        iot_endpoint=$(get IOT_ENDPOINT)
      else
        read_into iot_endpoint "<iot:Data-ATS endpoint>" \
          aws_ iot describe-endpoint --endpoint-type iot:Data-ATS --query endpointAddress --output text
      fi
    fi
    deploy_stack "$s" "$plan"
  done
  if [ "$dry_run" -eq 1 ]; then
    local n=${#selected[@]}
    wants kafka && ! cluster_mode && n=$((n - 1))
    say "dry run done: $n stacks would be deployed"
  elif [ "$plan" -eq 0 ] && wants service; then
    say "deployed. Next: point $(get API_DOMAIN) at the load balancer (unless HOSTED_ZONE_ID is set),"
    say "  scripts/deploy-aws.sh publish-dashboard, and register-station ID for each station."
  fi
}

# --- the daemon's certificate ---------------------------------------------------

# amazon_root_ca FILE: AmazonRootCA1, from the system's store or Amazon
# Trust Services, checked by its fingerprint.
amazon_root_ca() {
  local dest=$1 f got
  if [ "$dry_run" -eq 1 ]; then
    printf '+ # AmazonRootCA1 (sha256 %s) to %q\n' "$amazon_root_ca1_sha256" "$dest"
    return 0
  fi
  for f in /etc/ssl/certs/Amazon_Root_CA_1.pem /usr/share/ca-certificates/mozilla/Amazon_Root_CA_1.crt; do
    if [ -f "$f" ]; then
      cp "$f" "$dest"
      break
    fi
  done
  if [ ! -s "$dest" ]; then
    require_tools curl
    curl -fsSL --proto '=https' https://www.amazontrust.com/repository/AmazonRootCA1.pem -o "$dest"
  fi
  got=$(openssl x509 -in "$dest" -noout -fingerprint -sha256 | sed 's/^.*=//')
  if [ "${got^^}" != "$amazon_root_ca1_sha256" ]; then
    echo "deploy-aws: $dest is not Amazon Root CA 1 (sha256 $got)" >&2
    exit 1
  fi
}

# The certificate's id is kept as a tag of the secret, so whether it is
# filled is known without reading the secret.
daemon_cert_id() {
  local secret=$1
  read_into "$2" None \
    aws_ secretsmanager describe-secret --secret-id "$secret" \
    --query "Tags[?Key=='isobar:certificate-id'].Value | [0]" --output text
}

ensure_daemon_cert() {
  local plan=$1 secret id
  output_into secret iot MqttClientSecretArn
  daemon_cert_id "$secret" id
  if [ "$id" = None ] || [ -z "$id" ]; then
    # A plan changes nothing: the certificate is made by the deploy itself.
    if [ "$plan" -eq 1 ]; then
      say "the daemon has no IoT certificate yet: deploy without --plan (or init-daemon-cert) makes one"
      return 0
    fi
    if [ "$dry_run" -eq 1 ]; then
      say "when the daemon has no IoT certificate yet, one is made:"
    else
      say "the daemon has no IoT certificate yet: making one"
    fi
    make_daemon_cert "$secret" ""
  else
    say "the daemon's IoT certificate: $id"
  fi
}

# make_daemon_cert SECRET OLD_ID
make_daemon_cert() {
  local secret=$1 old=$2 policy dir cert_arn cert_id
  require_tools aws jq openssl
  output_into policy iot DaemonPolicyName
  dir=$(mktemp -d)
  # shellcheck disable=SC2064 # the directory is known now
  trap "rm -rf '$dir'" EXIT
  read_into cert_arn "arn:aws:iot:$region:<account>:cert/<new certificate id>" \
    aws_ iot create-keys-and-certificate --set-as-active \
    --certificate-pem-outfile "$dir/certificate.pem" \
    --private-key-outfile "$dir/private.key" \
    --public-key-outfile "$dir/public.key" \
    --query certificateArn --output text
  cert_id=${cert_arn##*/}
  run aws_ iot attach-policy --policy-name "$policy" --target "$cert_arn"
  amazon_root_ca "$dir/ca.pem"
  if [ "$dry_run" -eq 1 ]; then
    printf '+ # {"certificate_pem", "private_key_pem", "ca_pem"} of those files to %q\n' "$dir/secret.json"
  else
    jq -n --rawfile cert "$dir/certificate.pem" --rawfile key "$dir/private.key" \
      --rawfile ca "$dir/ca.pem" '{certificate_pem: $cert, private_key_pem: $key, ca_pem: $ca}' \
      >"$dir/secret.json"
  fi
  # The secret goes from a file, never on a command line.
  run_quiet aws_ secretsmanager put-secret-value --secret-id "$secret" \
    --secret-string "file://$dir/secret.json" --query VersionId --output text
  run_quiet aws_ secretsmanager tag-resource --secret-id "$secret" \
    --tags "Key=isobar:certificate-id,Value=$cert_id"
  rm -rf "$dir"
  trap - EXIT
  say "the daemon's certificate is $cert_id (its key is in the secret only)"
  if [ -n "$old" ]; then
    say "once the new task runs, retire the old certificate:"
    say "  aws --region $region iot detach-policy --policy-name $policy --target <arn of $old>"
    say "  aws --region $region iot update-certificate --certificate-id $old --new-status INACTIVE"
  fi
}

cmd_init_daemon_cert() {
  local rotate=0 secret id
  while [ $# -gt 0 ]; do
    case "$1" in
      --rotate) rotate=1; shift ;;
      *) fail "init-daemon-cert: unknown argument $1" ;;
    esac
  done
  require_tools aws
  output_into secret iot MqttClientSecretArn
  daemon_cert_id "$secret" id
  if [ "$id" != None ] && [ -n "$id" ] && [ "$rotate" -eq 0 ]; then
    say "the daemon already has a certificate ($id); --rotate replaces it"
    return 0
  fi
  [ "$id" = None ] && id=""
  make_daemon_cert "$secret" "$id"
  if [ "$rotate" -eq 1 ]; then
    local cluster service
    output_into cluster service ClusterName
    output_into service service ServiceName
    run_quiet aws_ ecs update-service --cluster "$cluster" --service "$service" --force-new-deployment \
      --query service.serviceName --output text
  fi
}

# --- stations ------------------------------------------------------------------

station_id_ok() {
  [[ ${1:-} =~ ^[A-Za-z0-9_-]{1,64}$ ]] ||
    fail "station id '${1:-}': 1 to 64 of A-Z a-z 0-9 _ - (the daemon's station ids, also the thing name)"
}

cmd_register_station() {
  local id="" out=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --out) out=${2:-}; [ -n "$out" ] || fail "--out needs a directory"; shift 2 ;;
      -*) fail "register-station: unknown argument $1" ;;
      *) [ -z "$id" ] || fail "register-station takes one station id"; id=$1; shift ;;
    esac
  done
  station_id_ok "$id"
  out=${out:-${HOME:?}/.isobar/stations/$env_name/$id}
  if [ -e "$out" ] && [ -n "$(ls -A "$out" 2>/dev/null)" ]; then
    fail "$out exists and is not empty: a station's key is never overwritten (choose another --out)"
  fi
  require_tools aws
  local policy cert_arn endpoint
  output_into policy iot StationPolicyName
  if [ "$dry_run" -eq 0 ]; then
    mkdir -p "$out"
    chmod 700 "$out"
  else
    printf '+ mkdir -m 700 %q\n' "$out"
  fi
  run_quiet aws_ iot create-thing --thing-name "$id" \
    --attribute-payload "{\"attributes\": {\"isobar_env\": \"$env_name\"}}" --query thingArn --output text
  # The CLI writes the key straight to its file; only the ARN is printed.
  read_into cert_arn "arn:aws:iot:$region:<account>:cert/<new certificate id>" \
    aws_ iot create-keys-and-certificate --set-as-active \
    --certificate-pem-outfile "$out/certificate.pem.crt" \
    --private-key-outfile "$out/private.pem.key" \
    --public-key-outfile "$out/public.pem.key" \
    --query certificateArn --output text
  run aws_ iot attach-policy --policy-name "$policy" --target "$cert_arn"
  run aws_ iot attach-thing-principal --thing-name "$id" --principal "$cert_arn"
  if [ -n "$(get IOT_ENDPOINT)" ]; then
    endpoint=$(get IOT_ENDPOINT)
  else
    read_into endpoint "<iot:Data-ATS endpoint>" \
      aws_ iot describe-endpoint --endpoint-type iot:Data-ATS --query endpointAddress --output text
  fi
  amazon_root_ca "$out/AmazonRootCA1.pem"
  if [ "$dry_run" -eq 1 ]; then
    printf '+ # endpoint.txt and README.txt to %q\n' "$out"
    return 0
  fi
  printf '%s\n' "$endpoint" >"$out/endpoint.txt"
  cat >"$out/README.txt" <<EOF
Station $id of isobar deployment $env_name ($region).

Connect to $endpoint:8883 with TLS: the broker's CA AmazonRootCA1.pem, the
client certificate certificate.pem.crt and its key private.pem.key. The
MQTT client id must be $id. Publish QoS 1 to weather/$id/observations;
the certificate may do nothing else. Keep private.pem.key on the station
only.

  mosquitto_pub -h $endpoint -p 8883 --cafile AmazonRootCA1.pem \\
    --cert certificate.pem.crt --key private.pem.key -i $id -q 1 \\
    -t weather/$id/observations \\
    -m '{"temperature": 21.5, "timestamp": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"}'
EOF
  chmod 600 "$out"/*
  say "station $id registered: certificate ${cert_arn##*/}, files in $out"
}

confirm() {
  local what=$1 yes=$2 answer
  [ "$yes" -eq 1 ] && return 0
  [ "$dry_run" -eq 1 ] && return 0
  [ -t 0 ] || fail "$what: refusing without --yes when not asked on a terminal"
  read -r -p "deploy-aws: $what. Type the deployment name ($env_name) to go on: " answer
  [ "$answer" = "$env_name" ] || fail "not confirmed; nothing done"
}

# deregister ID POLICY: every certificate of the thing, then the thing.
deregister() {
  local id=$1 policy=$2 principals p
  read_into principals "<certificate-arn-of-$id>" \
    aws_ iot list-thing-principals --thing-name "$id" --query principals --output text
  [ "$principals" = None ] && principals=""
  for p in $principals; do
    run aws_ iot detach-thing-principal --thing-name "$id" --principal "$p"
    run aws_ iot detach-policy --policy-name "$policy" --target "$p"
    run aws_ iot update-certificate --certificate-id "${p##*/}" --new-status INACTIVE
    run aws_ iot delete-certificate --certificate-id "${p##*/}"
  done
  run aws_ iot delete-thing --thing-name "$id"
}

cmd_deregister_station() {
  local id="" yes=0 policy
  while [ $# -gt 0 ]; do
    case "$1" in
      --yes) yes=1; shift ;;
      -*) fail "deregister-station: unknown argument $1" ;;
      *) [ -z "$id" ] || fail "deregister-station takes one station id"; id=$1; shift ;;
    esac
  done
  station_id_ok "$id"
  confirm "station $id loses its certificates and thing" "$yes"
  require_tools aws
  output_into policy iot StationPolicyName
  deregister "$id" "$policy"
  say "station $id deregistered"
}

# --- the dashboard, outputs, status -------------------------------------------

cmd_publish_dashboard() {
  [ $# -eq 0 ] || fail "publish-dashboard takes no arguments"
  require_tools aws
  local origin bucket distribution
  output_into origin service ApiOrigin
  output_into bucket dashboard DashboardBucketName
  output_into distribution dashboard DistributionId
  umask "$caller_umask"
  run "$root/scripts/publish-dashboard.sh" --api-origin "$origin" --bucket "$bucket" --distribution "$distribution"
}

cmd_outputs() {
  [ $# -eq 0 ] || fail "outputs takes no arguments"
  require_tools aws
  local s
  for s in "${stacks_in_order[@]}"; do
    echo "== $(stack_name "$s")"
    run aws_ cloudformation describe-stacks --stack-name "$(stack_name "$s")" \
      --query 'Stacks[0].Outputs[].[OutputKey, OutputValue]' --output text || true
  done
}

cmd_status() {
  [ $# -eq 0 ] || fail "status takes no arguments"
  require_tools aws
  local s
  for s in "${stacks_in_order[@]}"; do
    printf '%-28s ' "$(stack_name "$s")"
    run aws_ cloudformation describe-stacks --stack-name "$(stack_name "$s")" \
      --query 'Stacks[0].StackStatus' --output text 2>/dev/null || echo "not deployed"
  done
  run aws_ ecs describe-services --cluster "isobar-$env_name" --services "isobar-$env_name" \
    --query 'services[0].{running: runningCount, desired: desiredCount, deployments: length(deployments)}' \
    --output table || true
  echo "alarms in ALARM:"
  run aws_ cloudwatch describe-alarms --alarm-name-prefix "isobar-$env_name-" --state-value ALARM \
    --query 'MetricAlarms[].AlarmName' --output text || true
}

# --- destroy -------------------------------------------------------------------

stack_exists() {
  [ "$dry_run" -eq 1 ] && return 0
  aws_ cloudformation describe-stacks --stack-name "$(stack_name "$1")" >/dev/null 2>&1
}

cmd_destroy() {
  local yes=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --yes) yes=1; shift ;;
      *) fail "destroy: unknown argument $1" ;;
    esac
  done
  require_tools aws
  # Checked before anything is deleted: a protected database would stop
  # the teardown halfway.
  if stack_exists data; then
    local db protected
    output_into db data DbInstanceId
    read_into protected False \
      aws_ rds describe-db-instances --db-instance-identifier "$db" \
      --query 'DBInstances[0].DeletionProtection' --output text
    if [ "$protected" = True ]; then
      fail "the database $db is protected: deploy with --set DB_DELETION_PROTECTION=false --only data first"
    fi
  fi
  confirm "every stack of isobar-$env_name is deleted (the lake, logs, repository, key and a final database snapshot are kept)" "$yes"
  local s
  for s in observability service dashboard iot kafka data network base; do
    stack_exists "$s" || { say "$(stack_name "$s"): not deployed"; continue; }
    if [ "$s" = service ]; then
      local lb
      read_into lb "<load balancer arn>" \
        aws_ cloudformation describe-stack-resource --stack-name "$(stack_name service)" \
        --logical-resource-id LoadBalancer --query StackResourceDetail.PhysicalResourceId --output text
      run_quiet aws_ elbv2 modify-load-balancer-attributes --load-balancer-arn "$lb" \
        --attributes Key=deletion_protection.enabled,Value=false --query 'Attributes[0].Key' --output text
    fi
    if [ "$s" = iot ]; then
      # A policy attached to a certificate cannot be deleted: the stations
      # and the daemon lose theirs first.
      local station_policy daemon_policy things thing targets t
      output_into station_policy iot StationPolicyName
      output_into daemon_policy iot DaemonPolicyName
      read_into things "<things with isobar_env=$env_name>" \
        aws_ iot list-things --attribute-name isobar_env --attribute-value "$env_name" \
        --query 'things[].thingName' --output text
      [ "$things" = None ] && things=""
      for thing in $things; do
        deregister "$thing" "$station_policy"
      done
      read_into targets "<certificates with the daemon policy>" \
        aws_ iot list-targets-for-policy --policy-name "$daemon_policy" --query targets --output text
      [ "$targets" = None ] && targets=""
      for t in $targets; do
        run aws_ iot detach-policy --policy-name "$daemon_policy" --target "$t"
        run aws_ iot update-certificate --certificate-id "${t##*/}" --new-status INACTIVE
        run aws_ iot delete-certificate --certificate-id "${t##*/}"
      done
    fi
    say "deleting $(stack_name "$s")"
    run aws_ cloudformation delete-stack --stack-name "$(stack_name "$s")"
    run aws_ cloudformation wait stack-delete-complete --stack-name "$(stack_name "$s")"
  done
  say "deleted. Kept: the data lake bucket isobar-$env_name-lake-<account>-$region, the log and dashboard"
  say "  buckets, the ECR repository isobar-$env_name, the KMS key (the lake and the snapshot need it),"
  say "  and the database's final snapshot. Deploying $env_name again needs the lake bucket gone or renamed."
}

# --- main ----------------------------------------------------------------------

params_file=""
overrides=()
command=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --params) params_file=${2:-}; [ -n "$params_file" ] || fail "--params needs a file"; shift 2 ;;
    --set) [[ ${2:-} == *=* ]] || fail "--set needs KEY=VALUE"; overrides+=("$2"); shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage 0 ;;
    *)
      if [ -z "$command" ]; then command=$1; else args+=("$1"); fi
      shift
      ;;
  esac
done
[ -n "$command" ] || usage

if [ -n "$params_file" ]; then
  [ -f "$params_file" ] || fail "--params $params_file: no such file"
  read_params "$params_file"
elif [ -f "$templates/params.env" ]; then
  read_params "$templates/params.env"
fi
for o in "${overrides[@]}"; do
  set_key "${o%%=*}" "${o#*=}" "--set"
done
validate_common
[ "$dry_run" -eq 1 ] && say "dry run: nothing is called, every command is printed"

case "$command" in
  deploy) cmd_deploy "${args[@]}" ;;
  init-daemon-cert) cmd_init_daemon_cert "${args[@]}" ;;
  register-station) cmd_register_station "${args[@]}" ;;
  deregister-station) cmd_deregister_station "${args[@]}" ;;
  publish-dashboard) cmd_publish_dashboard "${args[@]}" ;;
  outputs) cmd_outputs "${args[@]}" ;;
  status) cmd_status "${args[@]}" ;;
  destroy) cmd_destroy "${args[@]}" ;;
  *) echo "deploy-aws: unknown command $command" >&2; usage ;;
esac
