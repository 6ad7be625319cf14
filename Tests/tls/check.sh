#!/usr/bin/env bash
# TLS scan (issue 9), run at the end of `make test`: testssl.sh against the real services.
#   - ekey-issuer and ekey-gateway with the default TLS settings: only TLS 1.3 offered
#     (SSLv2, SSLv3, TLS 1.0, 1.1 and 1.2 "not offered"), no finding rated HIGH or CRITICAL;
#   - a second ekey-gateway with `tls.min_version: "1.2"`: TLS 1.2 and 1.3 only, every TLS 1.2
#     suite offered is ECDHE with an AEAD cipher (AES-GCM or ChaCha20-Poly1305), no finding
#     rated HIGH or CRITICAL.
# Checks run per port, the three ports at once (chosen to stay near a minute per port on
# this project's 2-core CI machine): protocols (-p), ciphers per protocol (-E), server defaults and certificate (-S),
# vulnerabilities (-U). The development CA of the generated PKI is passed with --add-ca, so
# the certificate's chain of trust is judged against it. One finding is excluded, by id and
# only for the development CA's certificate: cert_revocation (HIGH in testssl.sh 3.0: no CRL
# or OCSP URL in the certificate), a property of the dev PKI, not of the TLS set-up.
# Protocol, cipher and vulnerability findings are never excluded.
# Uses the debug binaries from `swift build` (builds nothing itself) and installs testssl.sh
# with apt when missing. TLS_CHECKS overrides the testssl.sh checks. Summary per port on
# stdout; the JSON files and logs stay in .build/tls/. Exit 0 when every assertion holds,
# 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN=$ROOT/.build/debug
OUT=$ROOT/.build/tls
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
CHECKS=${TLS_CHECKS:--p -E -S -U}

for product in ekey ekey-jwks ekey-issuer ekey-gateway; do
  [ -x "$BIN/$product" ] || { echo "Tests/tls/check.sh: $BIN/$product is missing; run \`swift build\` (or \`swift build --build-tests\`) first" >&2; exit 1; }
done
TESTSSL=$(command -v testssl.sh || command -v testssl || true)
if [ -z "$TESTSSL" ]; then
  echo "Installing testssl.sh"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq testssl.sh >/dev/null
  TESTSSL=$(command -v testssl.sh || command -v testssl)
fi
for tool in python3 curl; do command -v "$tool" >/dev/null || { echo "Tests/tls/check.sh: $tool is missing (make deps installs it)" >&2; exit 1; }; done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ekey-tls.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 0.3
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# Distinct free ports below the kernel's ephemeral range (Tests/interop/free_ports.py): one
# that bind(0) hands out can be taken meanwhile as an outgoing connection's source port.
read -r JWKS JWKS_ADMIN ISS ISS_ADMIN GW GW_ADMIN GW12 GW12_ADMIN UP <<< "$(python3 Tests/interop/free_ports.py 9)"

"$BIN/ekey" pki init --dir "$WORK/pki" --host localhost >/dev/null
PKI=$WORK/pki

stack() { # $1 gateway port, $2 gateway admin port, $3 extra keys of the gateway's tls map
cat <<EOF
store: {url: "memory://", prefix: "ekey-tls:"}
jwks:
  listen: 127.0.0.1:$JWKS
  admin_listen: 127.0.0.1:$JWKS_ADMIN
  tls: {cert: $PKI/server.crt, key: $PKI/server.key, client_ca: $PKI/ca.crt, client_auth: optional}
  authorized_issuers: ["spiffe://example.org/ekey/issuer"]
  admins: ["spiffe://example.org/ekey/admin"]
issuer:
  listen: 127.0.0.1:$ISS
  admin_listen: 127.0.0.1:$ISS_ADMIN
  issuer_url: https://localhost:$ISS
  tls: {cert: $PKI/server.crt, key: $PKI/server.key, client_ca: $PKI/ca.crt, client_auth: optional}
  signing: {alg: ES256}
  publisher: {url: "https://localhost:$JWKS", ca: $PKI/ca.crt, cert: $PKI/issuer-client.crt, key: $PKI/issuer-client.key}
  templates:
    - {name: tls, subjects: ["spiffe://example.org/demo/checkout"], audiences: ["https://api.example.com"],
       actions: ["POST:/payments"], max_limit: 10, max_ttl: 60, binds: [DPoP, mTLS]}
gateway:
  listen: 127.0.0.1:$1
  admin_listen: 127.0.0.1:$2
  tls: {cert: $PKI/server.crt, key: $PKI/server.key, client_ca: $PKI/ca.crt, client_auth: optional$3}
  issuer: https://localhost:$ISS
  jwks: {url: "https://localhost:$JWKS/.well-known/jwks.json", ca: $PKI/ca.crt}
  routes: [{prefix: /, upstream: "http://127.0.0.1:$UP", audience: "https://api.example.com", public_origin: "https://api.example.com"}]
EOF
}
stack "$GW" "$GW_ADMIN" "" > "$WORK/stack.yaml"
stack "$GW12" "$GW12_ADMIN" ', min_version: "1.2"' > "$WORK/stack-tls12.yaml"

start() { # name, command...
  local name=$1; shift
  "$@" > "$WORK/$name.log" 2>&1 &
  PIDS+=($!)
}
start jwks "$BIN/ekey-jwks" --config "$WORK/stack.yaml"
start issuer "$BIN/ekey-issuer" --config "$WORK/stack.yaml"
start gateway "$BIN/ekey-gateway" --config "$WORK/stack.yaml"
start gateway-tls12 "$BIN/ekey-gateway" --config "$WORK/stack-tls12.yaml"
ready() { for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0; sleep 0.1; done; echo "Tests/tls/check.sh: $2 not ready; its log:" >&2; tail -20 "$WORK/$2.log" >&2; exit 1; }
ready "$JWKS_ADMIN" jwks; ready "$ISS_ADMIN" issuer; ready "$GW_ADMIN" gateway; ready "$GW12_ADMIN" gateway-tls12

rm -rf "$OUT"; mkdir -p "$OUT"
scan() { # name, port
  local started=$SECONDS rc=0
  # shellcheck disable=SC2086
  "$TESTSSL" --quiet --color 0 --warnings batch --ip 127.0.0.1 --add-ca "$PKI/ca.crt" \
    --jsonfile "$OUT/$1.json" --logfile "$OUT/$1.log" $CHECKS "localhost:$2" >/dev/null 2>&1 || rc=$?
  echo "$1 (port $2): testssl.sh exit $rc in $((SECONDS - started)) s"
  echo "$rc" > "$OUT/$1.rc"
}
echo "Scanning with testssl.sh $("$TESTSSL" --version 2>/dev/null | grep -o "[0-9]\+\.[0-9]\+\.[0-9]\+" | head -1) ($CHECKS)..."
# The three scans run at once: each spends much of its time in openssl start-ups and
# waits, so together they take about as long as the longest alone on two cores.
scan issuer "$ISS" & SCANS=($!)
scan gateway "$GW" & SCANS+=($!)
scan gateway-tls12 "$GW12" & SCANS+=($!)
wait "${SCANS[@]}"

python3 - "$OUT" <<'EOF'
import json, os, re, sys
out = sys.argv[1]
PROTOCOLS = ["SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3"]
SEVERITIES = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "WARN", "FATAL"]
AEAD = re.compile(r"(GCM|CHACHA20[-_]POLY1305)")
failures = []

def check(name, allowed):
    path = f"{out}/{name}.json"
    if not os.path.exists(path):
        failures.append(f"{name}: testssl.sh wrote no JSON (see {out}/{name}.log)")
        return
    findings = json.load(open(path))
    by_id = {}
    for f in findings:
        by_id.setdefault(f["id"], []).append(f)
    offered = []
    for p in PROTOCOLS:
        if p not in by_id:
            failures.append(f"{name}: no result for protocol {p}")
            continue
        text = by_id[p][0]["finding"]
        is_offered = text.startswith("offered")
        if is_offered: offered.append(p)
        if not is_offered and not text.startswith("not offered"):
            failures.append(f"{name}: protocol {p}: unexpected result {text!r}")
        if is_offered != (p in allowed):
            failures.append(f"{name}: protocol {p} is {'offered' if is_offered else 'not offered'}; expected {'offered' if p in allowed else 'not offered'}")
    ciphers = {}
    for f in findings:
        m = re.match(r"cipher-(tls1(?:_[0-9])?|ssl[23])_", f["id"])
        if m:
            parts = f["finding"].split()
            # "TLS 1.2  xc02b  ECDHE-ECDSA-AES128-GCM-SHA256  ECDH 253  AESGCM  128  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
            ciphers.setdefault(m.group(1), []).append(parts[-1] if parts else f["finding"])
    if "TLS1_2" in allowed:
        tls12 = ciphers.get("tls1_2", [])
        if not tls12:
            failures.append(f"{name}: TLS 1.2 is expected but no TLS 1.2 cipher was listed")
        for c in tls12:
            if not (c.startswith("TLS_ECDHE_") and AEAD.search(c)):
                failures.append(f"{name}: TLS 1.2 suite {c} is not ECDHE with AEAD")
    for proto in ciphers:
        if proto not in ("tls1_2", "tls1_3"):
            failures.append(f"{name}: ciphers offered for {proto}: {ciphers[proto]}")
    counts = {s: 0 for s in SEVERITIES}
    for f in findings:
        if f["severity"] in counts: counts[f["severity"]] += 1
    issuers = [f["finding"] for f in by_id.get("cert_caIssuers", [])]
    excluded = []
    for f in findings:
        if f["severity"] not in ("HIGH", "CRITICAL", "FATAL"):
            continue
        # The one exclusion: testssl.sh 3.0 rates a certificate with neither a CRL
        # distribution point nor an OCSP URL as HIGH. That is a property of the certificate
        # `ekey pki init` makes for development (its private CA publishes no revocation
        # service), not of the services' TLS set-up, and --add-ca cannot change it;
        # production certificates come from the operator's CA. Excluded only for a
        # certificate issued by the E-Key development CA.
        if f["id"] == "cert_revocation" and f["finding"] == "Neither CRL nor OCSP URI provided" \
                and issuers == ["E-Key development CA"]:
            excluded.append(f)
            continue
        failures.append(f"{name}: {f['severity']} {f['id']}: {f['finding']}")
    rc = open(f"{out}/{name}.rc").read().strip()
    if counts["FATAL"] or rc not in ("0",):
        # testssl.sh exits non-zero on a scan error (and with --warnings batch stops on one).
        failures.append(f"{name}: testssl.sh exit status {rc} (see {out}/{name}.log)")
    print(f"{name}: protocols offered {', '.join(offered) or 'none'}")
    for proto in sorted(ciphers):
        print(f"  {proto.replace('tls1_', 'TLS 1.')} ciphers: {' '.join(ciphers[proto])}")
    print("  findings: " + ", ".join(f"{s} {counts[s]}" for s in SEVERITIES) + f" (of {len(findings)})")
    for f in findings:
        if f["severity"] in ("MEDIUM", "LOW", "WARN"):
            print(f"    {f['severity']:<6} {f['id']}: {f['finding']}")
    for f in excluded:
        print(f"    {f['severity']:<6} {f['id']}: {f['finding']} (excluded: development CA certificate without revocation URLs)")

check("issuer", {"TLS1_3"})
check("gateway", {"TLS1_3"})
check("gateway-tls12", {"TLS1_2", "TLS1_3"})
if failures:
    print("\nFAIL Tests/tls/check.sh:")
    for f in failures: print("  " + f)
    sys.exit(1)
print("\nPASS Tests/tls/check.sh: TLS 1.3 only by default, ECDHE+AEAD only with min_version 1.2, nothing rated HIGH or CRITICAL")
EOF
