"""The metrics added for operators, read from a live stack's admin listeners."""

from __future__ import annotations

import os
import re
import signal
import socket
import time

import httpx

from stack import Stack, new_stack


def scrape(stack: Stack, service: str) -> dict[str, float]:
    """Every sample line of a service's /metrics, by its name and labels as written."""
    samples = {}
    for line in httpx.get(stack.admin_url(service, "/metrics")).text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def test_request_latency_process_and_build_metrics_on_every_service(stack):
    stack.ekey("call", "POST", stack.url("gateway", "/payments"), "-d", '{"amount":1}')
    with httpx.Client(http2=True, verify=stack.ca) as client:
        assert client.post(stack.url("gateway", "/payments")).status_code == 401
        assert client.get(stack.url("jwks", "/internal/v1/keys/some-kid")).status_code in (401, 403, 405, 404)
    gateway, issuer, jwks = (scrape(stack, name) for name in ("gateway", "issuer", "jwks"))
    assert gateway['ekey_request_seconds_count{route="/",status_class="2xx"}'] == 1
    assert gateway['ekey_request_seconds_count{route="/",status_class="4xx"}'] == 1
    assert issuer['ekey_request_seconds_count{route="/token",status_class="2xx"}'] >= 1
    # Each token issued is counted under its template and timed once.
    issued = sum(value for key, value in issuer.items() if key.startswith("ekey_issue_count_total{"))
    assert issued >= 1 and issuer["ekey_issue_latency_seconds_count"] >= issued
    assert any(key.startswith('ekey_request_seconds_count{route="/internal/v1/keys/:kid"') for key in jwks)
    for samples, listener in ((gateway, "gateway"), (issuer, "issuer"), (jwks, "jwks")):
        assert samples[f'ekey_build_info{{version="{stack.ekey("--version").stdout.strip()}"}}'] == 1
        assert samples["process_open_fds"] > 5
        assert 10e6 < samples["process_resident_memory_bytes"] < 2e9
        assert samples["process_cpu_seconds_total"] > 0
        assert abs(samples["process_start_time_seconds"] - time.time()) < 600
        # ekey up's development certificates live a year
        assert 360 * 86400 < samples[f'ekey_tls_certificate_expiry_seconds{{listener="{listener}"}}'] <= 366 * 86400


def test_upstream_errors_are_counted_by_status():
    """A route to a closed port gives 502; a demo API stopped (SIGSTOP) past a 1 s first-byte
    timeout gives 504; each is counted once under its status."""
    # A port held bound but not listening, from before the stack picks its ports:
    # connections to it are refused, and no process can take it.
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    stack = new_stack()
    stack.start()  # the first start writes stack.yaml
    stack.stop()
    config = stack.folder / "stack.yaml"
    text = "".join(config.read_text().splitlines(keepends=True)[1:])
    gateway_port, closed_port = stack.ports["gateway-port"], closed.getsockname()[1]
    for old, new in (
        ('actions: ["POST:/payments", "GET:/payments/:id"]', 'actions: ["POST:/payments", "GET:/payments/:id", "POST:/closed"]'),
        ("  dpop: {max_age: 5s", "  timeouts: {first_byte: 1s}\n  dpop: {max_age: 5s"),
    ):
        assert old in text, old
        text = text.replace(old, new, 1)
    # after the demo API's route, whose upstream port `ekey up` reads as the demo API's
    text = text.rstrip("\n") + (f'\n    - {{prefix: /closed, upstream: "http://127.0.0.1:{closed_port}", '
                                f'audience: "https://api.example.com", public_origin: "https://localhost:{gateway_port}"}}\n')
    config.write_text(text)
    with stack:
        refused = stack.ekey("call", "POST", stack.url("gateway", "/closed"), "-d", "{}", check=False)
        assert "502" in refused.stderr, refused.stderr
        api = next(int(m.group(1)) for line in reversed(stack.output)
                   if (m := re.search(r"started api \(ekey, pid (\d+)\)", line)))
        os.kill(api, signal.SIGSTOP)
        try:
            late = stack.ekey("call", "POST", stack.url("gateway", "/payments"), "-d", "{}", check=False)
        finally:
            os.kill(api, signal.SIGCONT)
        assert "504" in late.stderr, late.stderr
        samples = scrape(stack, "gateway")
        assert samples['ekey_gateway_upstream_errors_total{status="502"}'] == 1
        assert samples['ekey_gateway_upstream_errors_total{status="504"}'] == 1  # both exported from start (0)
        assert samples['ekey_request_seconds_count{route="/closed",status_class="5xx"}'] == 1
        assert samples['ekey_request_seconds_count{route="/",status_class="5xx"}'] == 1
    closed.close()
