"""Every example command of README.md and docs/ (not docs/spec/) runs against a live stack.

The commands come from doc_commands.py (fenced blocks tagged sh, bash, shell, console).
Each doc's commands run in order, with bash, in a folder of their own that holds a `.ekey`
link to the stack of the `stack` fixture (so `.ekey/...` paths and `ekey call`'s defaults
work, and files a doc creates, like `compose-pki/`, stay apart). Before running, the default
ports of the docs (gateway 9443, issuer 8443, jwks 7443, demo API 8080, admin 9101/9102/9103
on localhost or 127.0.0.1) become the stack's ports and `.build/debug/` becomes EKEY_BIN_DIR,
which is also first on PATH for a bare `ekey`.

A command is either run, run through a stand-in (STAND_IN), or skipped (SKIP); every entry
of those tables must still match a command of the docs, and a command that would need
docker, Kubernetes, make, swift or a second `ekey up` must be in SKIP. A run command must
exit 0 unless EXPECT_EXIT says what the doc shows; a `console` block's output lines must
appear in order (`…` and `...` stand for anything; JSON is compared by its keys and its
values except `id` and elided ones); CHECKS adds what a doc's comment promises.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from doc_commands import REPO, Command, all_commands, all_fences
from stack import BIN_DIR, Stack

# (file, command as doc_commands gives it) → why it cannot run here.
SKIP: dict[tuple[str, str], str] = {
    ("docs/authorize.md", "make grpc-generate"):
        "builds the two protoc plugins in release mode (minutes on two cores) and rewrites the checked-in generated code",
    ("README.md", "make up"):
        "builds with swift build (not here: shared 2-core machine) and starts a second stack on the default ports",
    ("README.md", "make test"):
        "builds and runs the whole Swift test suite, which includes this test",
    ("README.md", "docker compose -f compose/docker-compose.yml up --build -d"):
        "needs docker and builds the image",
    ("docs/compose.md", "docker compose -f compose/docker-compose.yml up --build -d"):
        "needs docker and builds the image",
    ("docs/compose.md", "docker compose -f compose/docker-compose.yml ps"):
        "needs docker and the compose stack",
    ("docs/compose.md", "docker compose -f compose/docker-compose.yml logs -f ekey-gateway"):
        "needs docker and the compose stack (and follows logs forever)",
    ("docs/compose.md",
     "docker compose -f compose/docker-compose.yml logs --no-log-prefix ekey-gateway | grep '\"label\":\"audit\"'"):
        "needs docker and the compose stack",
    ("docs/compose.md", "docker compose -f compose/docker-compose.yml exec ekey-gateway ekey-readyz 9102 /metrics"):
        "needs docker and the compose stack",
    ("docs/compose.md",
     "docker compose -f compose/docker-compose.yml -f compose/docker-compose.nonce.yml up -d"):
        "needs docker, and compose/docker-compose.nonce.yml is a file the reader writes (the yaml block above it)",
    ("docs/compose.md", "docker compose -f compose/docker-compose.yml down"):
        "needs docker and the compose stack",
    ("docs/compose.md", "docker compose -f compose/docker-compose.yml down -v"):
        "needs docker and the compose stack",
    ("docs/operations.md", "docker build -f compose/Dockerfile -t ekey:latest ."):
        "needs docker and a release build of the image",
    ("docs/operations.md", "kind load docker-image ekey:latest"):
        "needs kind and a Kubernetes cluster",
    ("docs/operations.md", "kubectl apply -k k8s/overlays/example"):
        "needs a Kubernetes cluster",
    ("docs/operations.md", "kubectl -n ekey rollout status deploy/ekey-jwks deploy/ekey-issuer deploy/ekey-gateway"):
        "needs a Kubernetes cluster",
    ("docs/operations.md", "kubectl -n ekey port-forward svc/ekey-issuer 8443 &"):
        "needs a Kubernetes cluster",
    ("docs/operations.md", "kubectl -n ekey port-forward svc/ekey-gateway 9443 &"):
        "needs a Kubernetes cluster",
    ("docs/operations.md",
     "curl --cacert k8s/overlays/example/pki/ca.crt https://localhost:8443/.well-known/oauth-authorization-server"):
        "needs the cluster's issuer behind port-forward: the local stack's certificate is not signed by that new k8s CA",
    ("docs/operations.md", "kubectl -n ekey wait --for=condition=Ready certificate --all --timeout=5m"):
        "needs a Kubernetes cluster with cert-manager",
    ("docs/operations.md", "kubectl -n ekey get certificate"):
        "needs a Kubernetes cluster with cert-manager",
    ("docs/operations.md",
     "kubectl -n ekey get certificate -o custom-columns=NAME:.metadata.name,NOT_AFTER:.status.notAfter,"
     "RENEWAL:.status.renewalTime"):
        "needs a Kubernetes cluster with cert-manager",
    ("docs/operations.md", "kubectl -n ekey rollout restart deploy/ekey-issuer deploy/ekey-gateway"):
        "needs a Kubernetes cluster",
    ("docs/operations.md", "kubectl -n ekey rollout status deploy/ekey-issuer deploy/ekey-gateway"):
        "needs a Kubernetes cluster",
    ("docs/operations.md", "kubectl apply -k k8s/overlays/prometheus-operator"):
        "needs a Kubernetes cluster with the Prometheus Operator",
    ("docs/operations.md", "kubectl -n ekey get servicemonitor,prometheusrule"):
        "needs a Kubernetes cluster with the Prometheus Operator",
    ("docs/operations.md", "kubectl -n ekey get configmap ekey-grafana-dashboard"):
        "needs a Kubernetes cluster",
    ("docs/operations.md", "docker compose -f compose/docker-compose.yml -f compose/docker-compose.monitoring.yml up -d"):
        "needs a Docker engine (and an image build)",
    ("docs/operations.md", "kubectl -n ekey port-forward svc/ekey-jwks 7443 &"):
        "needs a Kubernetes cluster (the commands after it run against the local publisher)",
    ("docs/security.md", "swift build --build-tests"):
        "a Swift build: not here (shared 2-core machine); make test runs it",
    ("docs/security.md",
     "swift test --skip-build --filter 'StrictHTTP1ParserTests|FramingCorpusTests|HeadDifferentialFuzzTests'"):
        "the Swift test suite itself; make test runs it",
    ("docs/security.md",
     "EKEY_FUZZ_ITERATIONS=20000 EKEY_FUZZ_SEED=0x$(openssl rand -hex 6) swift test --skip-build "
     "--filter HeadDifferentialFuzzTests"):
        "a long fuzz run (about 13 minutes) of the Swift test suite",
}

# (file, command) → (what runs instead, why): the local equivalent of a step that needs docker.
STAND_IN: dict[tuple[str, str], tuple[str, str]] = {
    ("docs/compose.md", "docker compose -f compose/docker-compose.yml cp ekey-issuer:/pki/. compose-pki/"):
        ("cp -R .ekey/pki/. compose-pki/",
         "the compose stack's pki volume is, here, the live stack's .ekey/pki; the commands after it then "
         "run against the live stack"),
}

# (file, command) → the exit status the doc shows (a refusal), instead of 0.
EXPECT_EXIT: dict[tuple[str, str], int] = {
    ("README.md", ".build/debug/ekey call POST https://localhost:9443/payments -d '{\"amount\":10}' --token @t.jwt"): 1,
    ("docs/configuration.md", "ekey config check bad.yaml"): 1,
}

# (file, command) → regular expressions its output must contain: what a comment in the doc says.
CHECKS: dict[tuple[str, str], list[str]] = {
    ("docs/compose.md",
     "curl --cacert compose-pki/ca.crt https://localhost:8443/.well-known/oauth-authorization-server"):
        [r'"token_endpoint":"https://localhost:\d+/token"'],
    ("docs/compose.md", "curl -i --cacert compose-pki/ca.crt https://localhost:9443/payments/42"):
        [r"(?m)^HTTP/\S+ 401", r"(?im)^www-authenticate: DPoP", r"(?im)^www-authenticate: EKey"],
    ("docs/compose.md", "ekey keygen --out compose-pki/dpop.key"):
        [r"mode 0600", r"thumbprint: \S+"],
    ("docs/compose.md",
     "ekey call POST https://localhost:9443/payments -d '{\"amount\":10}' --issuer https://localhost:8443 "
     "--ca compose-pki/ca.crt --cert compose-pki/workload.crt --cert-key compose-pki/workload.key "
     "--key compose-pki/dpop.key --audience https://api.example.com"):
        [r"DPoP-bound token for POST:/payments", r"→ 201 Created", r'"x-ekey-sub":"spiffe://example.org/demo/checkout"'],
    ("docs/compose.md",
     "ekey call GET https://localhost:9443/payments/42 --bind mTLS --issuer https://localhost:8443 "
     "--ca compose-pki/ca.crt --cert compose-pki/workload.crt --cert-key compose-pki/workload.key "
     "--audience https://api.example.com"):
        [r"→ 200 OK", r'"x-ekey-action":"GET:/payments/42"'],
    ("docs/compose.md", "ekey config check compose/stack.yaml"):
        [r"(?m)^OK: compose/stack.yaml"],
    ("docs/operations.md", "ekey jwks export --help"):
        [r"/internal/v1/keys"],
    ("docs/operations.md",
     "curl --cacert ca.crt --cert admin.crt --key admin.key -X PUT -H 'content-type: application/json' "
     "--data-binary @jwks-backup.json https://localhost:7443/internal/v1/keys"):
        [r'"imported":[1-9]'],
}

# A bad stack config whose errors are the three docs/configuration.md shows, on its lines 3, 5 and 9.
BAD_YAML = """\
store:
  prefix: "ekey:"
  url: mysql://db.internal:3306
gateway:
  listen: 0.0.0.0:99999
  tls: none
  issuer: https://issuer.example.com
  jwks: {url: "https://jwks.example.com:7443/.well-known/jwks.json", ca: ca.crt}
  dpop: {max_age: 5x}
  routes: [{prefix: /, upstream: "http://127.0.0.1:8080", audience: "https://api.example.com", public_origin: "https://localhost:9443"}]
"""

# file → shell run in the doc's folder before its commands: files a doc takes as given.
SETUP: dict[str, str] = {
    # `ekey config check ekey.yaml` / `bad.yaml`: a good config (the live stack's, with its pki)
    # and a bad one.
    "docs/configuration.md":
        "cp .ekey/stack.yaml ekey.yaml && ln -s .ekey/pki pki && cat > bad.yaml <<'EOF'\n" + BAD_YAML + "EOF\n",
    # The disaster-recovery example uses ca.crt, admin.crt and admin.key in the current folder.
    "docs/operations.md": "cp .ekey/pki/ca.crt .ekey/pki/admin.crt .ekey/pki/admin.key .",
}

# Commands that must never run from this test: they are for SKIP (or STAND_IN).
NEEDS_SKIP = re.compile(
    r"(^|[;&|]\s*|\s)(make|swift|docker|kubectl|kind|helm|minikube)\s|\bekey up\b|^\s*(sudo|apt-get)\s")

DEFAULT_PORTS = {
    "9443": "gateway-port", "8443": "issuer-port", "7443": "jwks-port", "8080": "upstream-port",
    "9101": "issuer-admin-port", "9102": "gateway-admin-port", "9103": "jwks-admin-port",
}
HOST_PORT = re.compile(r"\b(localhost|127\.0\.0\.1|\[::1\]):(" + "|".join(DEFAULT_PORTS) + r")\b")
VOLATILE_KEYS = {"id"}
TIMEOUT = 30

COMMANDS = all_commands()
DOCS = list(dict.fromkeys(command.file for command in COMMANDS))


def rewrite(text: str, stack: Stack) -> str:
    """The doc's default ports → the stack's; `.build/debug/` → EKEY_BIN_DIR."""
    text = HOST_PORT.sub(lambda m: f"{m[1]}:{stack.ports[DEFAULT_PORTS[m[2]]]}", text)
    return re.sub(r"(?<![\w/.-])\.build/debug/", str(BIN_DIR) + "/", text)


def line_pattern(expected: str) -> re.Pattern:
    """A doc output line as a regex: `\\S*…` (an elided value) and `...` match anything."""
    parts = re.split(r"(\S*…|\.\.\.)", expected.strip())
    return re.compile("".join(".*?" if i % 2 else re.escape(part) for i, part in enumerate(parts)))


def same_json(expected, actual) -> bool:
    """Same keys everywhere; same values except `id` keys and values elided with `…`."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and expected.keys() == actual.keys() and all(
            key in VOLATILE_KEYS or same_json(value, actual[key]) for key, value in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(
            same_json(e, a) for e, a in zip(expected, actual))
    if isinstance(expected, str) and "…" in expected:
        return isinstance(actual, str)
    return expected == actual


def output_problems(command: Command, output: str, stack: Stack) -> list[str]:
    """Expected `console` output lines that do not appear, in order, in `output`."""
    actual = output.splitlines()
    position, problems = 0, []
    for expected in (rewrite(line, stack) for line in command.output if line.strip() not in ("", "...", "…")):
        try:
            wanted = json.loads(expected)
            matches = lambda line: _json_or_none(line) is not None and same_json(wanted, _json_or_none(line))  # noqa: E731
        except ValueError:
            pattern = line_pattern(expected)
            matches = lambda line: pattern.fullmatch(line.strip()) is not None  # noqa: E731
        found = next((i for i in range(position, len(actual)) if matches(actual[i])), None)
        if found is None:
            problems.append(f"expected output line not found (in order): {expected}")
        else:
            position = found + 1
    return problems


def _json_or_none(line: str):
    try:
        return json.loads(line)
    except ValueError:
        return None


def run(command_text: str, cwd: Path) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EKEY_")}
    environment["PATH"] = f"{BIN_DIR}{os.pathsep}{environment.get('PATH', '')}"
    return subprocess.run(
        ["bash", "-c", command_text], cwd=cwd, env=environment, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)


def doc_folder(stack: Stack, doc: str) -> Path:
    """A fresh folder for one doc's commands, with `.ekey` (the live stack) and `compose`
    (the repository's, read only by the docs' commands)."""
    folder = stack.folder.parent / ("doc-" + doc.replace("/", "-").removesuffix(".md"))
    folder.mkdir()
    (folder / ".ekey").symlink_to(stack.folder)
    (folder / "compose").symlink_to(REPO / "compose")
    return folder


def test_every_fenced_block_is_tagged():
    """An untagged block would hide its commands from this test: tag it sh/console, or text."""
    untagged = [f"{fence.file}:{fence.line}" for fence in all_fences() if not fence.tag]
    assert not untagged, "fenced blocks without a language tag: " + ", ".join(untagged)


def test_tables_match_the_docs():
    """Every SKIP, STAND_IN, EXPECT_EXIT and CHECKS entry still names a command of the docs."""
    keys = {command.key for command in COMMANDS}
    stale = [f"{table}: {key}" for table, entries in
             (("SKIP", SKIP), ("STAND_IN", STAND_IN), ("EXPECT_EXIT", EXPECT_EXIT), ("CHECKS", CHECKS))
             for key in entries if key not in keys]
    assert not stale, "entries that match no command in the docs any more:\n" + "\n".join(stale)
    assert not set(SKIP) & set(STAND_IN), "a command is both skipped and stood in for"
    assert set(SETUP) <= set(DOCS), f"SETUP for a doc without commands: {set(SETUP) - set(DOCS)}"


def test_every_command_is_run_or_skipped():
    """A command that needs docker, Kubernetes, make, swift or a second stack must be skipped."""
    unhandled = [str(command) for command in COMMANDS
                 if command.key not in SKIP and command.key not in STAND_IN and NEEDS_SKIP.search(command.text)]
    assert not unhandled, "commands that cannot run here and are not in SKIP:\n" + "\n".join(unhandled)


@pytest.mark.parametrize("doc", DOCS)
def test_doc_commands(stack: Stack, doc: str):
    commands = [command for command in COMMANDS if command.file == doc]
    if all(command.key in SKIP for command in commands):
        pytest.skip(f"every command of {doc} is in SKIP")
    folder = doc_folder(stack, doc)
    if doc in SETUP:
        setup = run(SETUP[doc], folder)
        assert setup.returncode == 0, f"SETUP of {doc} failed:\n{setup.stdout}"
    failures = []
    for command in commands:
        if command.key in SKIP or NEEDS_SKIP.search(command.text) and command.key not in STAND_IN:
            continue
        text = STAND_IN[command.key][0] if command.key in STAND_IN else command.text
        try:
            result = run(rewrite(text, stack), folder)
        except subprocess.TimeoutExpired:
            failures.append(f"{command}\n  timed out after {TIMEOUT} s")
            continue
        problems = []
        expected_status = EXPECT_EXIT.get(command.key, 0)
        if result.returncode != expected_status:
            problems.append(f"exit status {result.returncode}, the doc shows {expected_status}")
        problems += output_problems(command, result.stdout, stack)
        problems += [f"output does not match {pattern!r}" for pattern in CHECKS.get(command.key, [])
                     if not re.search(pattern, result.stdout)]
        if problems:
            failures.append(f"{command}\n  " + "\n  ".join(problems) + "\n  output:\n    "
                            + "\n    ".join(result.stdout.splitlines()[-20:]))
    assert not failures, f"{len(failures)} command(s) of {doc} failed:\n\n" + "\n\n".join(failures)
