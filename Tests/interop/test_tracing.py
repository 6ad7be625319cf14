"""Traces: spans of the gateway, issuer and publisher arrive at a real OTLP/HTTP receiver.

The receiver is an HTTP server in this process that decodes OTLP/HTTP protobuf export
requests with the `opentelemetry-proto` package. A client calls the gateway with its own
`traceparent`; the test then checks the spans' names, parent links and attributes, that
the upstream received the gateway's span as its parent, and that no span carries a token
or a proof.
"""

from __future__ import annotations

import gzip
import json
import os
import secrets
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)

from stack import new_stack


class Receiver:
    """An OTLP/HTTP traces endpoint on 127.0.0.1 keeping every span with its service name."""

    def __init__(self) -> None:
        self.spans: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.add(self.path, request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, path: str, request: ExportTraceServiceRequest) -> None:
        assert path == "/v1/traces", path
        with self.lock:
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append({
                            "service": resource.get("service.name"),
                            "name": span.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "kind": span.kind,
                            "attributes": {a.key: (a.value.string_value or a.value.int_value) for a in span.attributes},
                            "raw": span.SerializeToString(),
                        })

    def wait_for(self, predicate, seconds: float = 15) -> list[dict]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.lock:
                found = [span for span in self.spans if predicate(span)]
            if found:
                return found
            time.sleep(0.1)
        raise AssertionError(f"no such span among {[(s['service'], s['name']) for s in self.spans]}")


@pytest.fixture(scope="module")
def traced():
    receiver = Receiver()
    stack = new_stack()
    stack.start()  # the first start writes stack.yaml
    stack.stop()
    config = stack.folder / "stack.yaml"
    text = "".join(config.read_text().splitlines(keepends=True)[1:])
    config.write_text(text + f'tracing:\n  endpoint: "http://127.0.0.1:{receiver.port}"\n')
    previous = os.environ.get("OTEL_BSP_SCHEDULE_DELAY")
    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "100"  # export within 0.1 s (milliseconds)
    try:
        with stack:
            yield stack, receiver
    finally:
        receiver.server.shutdown()
        if previous is None:
            os.environ.pop("OTEL_BSP_SCHEDULE_DELAY", None)
        else:
            os.environ["OTEL_BSP_SCHEDULE_DELAY"] = previous


def test_a_gateway_call_is_one_trace_continued_from_the_client_and_passed_upstream(traced):
    stack, receiver = traced
    url = stack.url("gateway", "/payments")
    answer = json.loads(stack.ekey("token", "--action", "POST:/payments", "--json").stdout)
    token = answer["token"]
    proof = stack.ekey("proof", "--key", str(stack.dpop_key), "--method", "POST", "--url", url, "--token", token).stdout.strip()
    client_trace, client_span = secrets.token_hex(16), secrets.token_hex(8)
    with httpx.Client(http2=True, verify=ssl.create_default_context(cafile=stack.ca)) as client:
        response = client.post(url, content=b'{"amount":3}', headers={
            "Authorization": f"DPoP {token}", "DPoP": proof, "Content-Type": "application/json",
            "traceparent": f"00-{client_trace}-{client_span}-01"})
    assert response.status_code == 201, response.text

    request_span = receiver.wait_for(lambda s: s["name"] == "gateway.request" and s["trace_id"] == client_trace)[0]
    assert request_span["service"] == "ekey-gateway"
    assert request_span["parent_span_id"] == client_span
    assert request_span["kind"] == 2  # SPAN_KIND_SERVER
    assert request_span["attributes"]["http.request.method"] == "POST"
    assert request_span["attributes"]["url.path"] == "/payments"
    assert request_span["attributes"]["http.response.status_code"] == 201

    steps = ["verify.path", "verify.token_extraction", "verify.token", "verify.binding", "verify.capability",
             "verify.usage", "gateway.upstream"]
    children = receiver.wait_for(lambda s: s["trace_id"] == client_trace and s["name"] == "gateway.upstream")
    children = [s for s in receiver.spans if s["trace_id"] == client_trace and s["name"] in steps]
    assert sorted(s["name"] for s in children) == sorted(steps)
    assert all(s["parent_span_id"] == request_span["span_id"] for s in children)
    upstream = next(s for s in children if s["name"] == "gateway.upstream")
    assert upstream["kind"] == 3  # SPAN_KIND_CLIENT
    # the demo API received the gateway's upstream span as its parent, not the client's
    assert response.json()["gateway_said"]["traceparent"] == f"00-{client_trace}-{upstream['span_id']}-01"

    secrets_seen = [token, proof, token.split(".")[2], proof.split(".")[2]]
    for span in receiver.spans:
        assert not any(secret.encode() in span["raw"] for secret in secrets_seen), span["name"]


def test_a_refusal_marks_its_step(traced):
    stack, receiver = traced
    trace = secrets.token_hex(16)
    with httpx.Client(http2=True, verify=ssl.create_default_context(cafile=stack.ca)) as client:
        response = client.post(stack.url("gateway", "/payments"), headers={"traceparent": f"00-{trace}-{secrets.token_hex(8)}-01"})
    assert response.status_code == 401
    step = receiver.wait_for(lambda s: s["trace_id"] == trace and s["name"] == "verify.token_extraction")[0]
    assert step["attributes"]["ekey.outcome"] == "invalid_request"
    assert not [s for s in receiver.spans if s["trace_id"] == trace and s["name"] in ("verify.token", "verify.usage")]


def test_the_issuer_and_the_publisher_trace_their_routes(traced):
    stack, receiver = traced
    stack.ekey("token", "--action", "POST:/payments", "--json")
    token_span = receiver.wait_for(lambda s: s["service"] == "ekey-issuer" and s["name"] == "/token")[-1]
    children = {s["name"] for s in receiver.spans if s["parent_span_id"] == token_span["span_id"]}
    assert {"issuer.authentication", "issuer.policy", "issuer.store", "issuer.signing"} <= children
    with httpx.Client(verify=ssl.create_default_context(cafile=stack.ca)) as client:
        assert client.get(stack.url("jwks", "/.well-known/jwks.json")).status_code == 200
    receiver.wait_for(lambda s: s["service"] == "ekey-jwks" and s["name"] == "/.well-known/jwks.json")
