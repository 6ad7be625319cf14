"""`ekey-load --engine paced`, the load generator behind loadtest/run's latency-at-a-rate
figures, against a real issuer: every request answered, its own lateness reported, and
more streams on one connection than a server lets a client reset (libnghttp2 allows a
burst of 1,000 resets), so a generator that reset its streams would fail here."""

import json
import subprocess

from stack import BIN_DIR


def paced_issuance(stack, rate: int, requests: int, connections: int) -> dict:
    cert, key = stack.workload_cert
    result = subprocess.run(
        [str(BIN_DIR / "ekey-load"), "--engine", "paced", "--mode", "issue", "--url", stack.url("issuer", "/token"),
         "--issuer", stack.url("issuer"), "--audience", "https://api.example.com", "--ca", stack.ca,
         "--cert", cert, "--key", key, "--rate", str(rate), "--requests", str(requests),
         "--connections", str(connections), "--json", "--label", "paced"],
        capture_output=True, text=True, timeout=120, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_paced_request_is_answered_on_one_connection(stack):
    report = paced_issuance(stack, rate=400, requests=1200, connections=1)
    # The stack's template allows a rate per minute: past it the issuer answers 429.
    assert set(report["statuses"]) <= {"201", "429"} and report["statuses"].get("201", 0) > 0, report
    assert sum(report["statuses"].values()) == 1200 and report["failures"] == 0, report
    assert report["late_sends"] >= 0 and report["max_lateness_ms"] >= 0
    assert report["p50_ms"] > 0


def test_paced_engine_refuses_what_it_cannot_pace(stack):
    result = subprocess.run(
        [str(BIN_DIR / "ekey-load"), "--engine", "paced", "--mode", "plain", "--url", stack.upstream_url, "--rate", "10"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "https://" in result.stderr
