"""Envoy's ext_authz gRPC `Check` (docs/authorize.md) called by Python grpcio, a gRPC
implementation independent of the gateway's grpc-swift, against a real `ekey up --authorize`
stack with `gateway.authorize.grpc_listen` set. The stubs are generated at test time with
grpc_tools.protoc from the vendored protos (Sources/EKeyEnvoyAuth/Protos), so the test
checks those protos' wire format as well as the service.
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
from pathlib import Path

import grpc
import pytest
from grpc_tools import protoc

from ekey_py import DPoPKey, EKeyClient
from stack import REPO, Stack, free_port, new_stack

AUD = "https://api.example.com"
PROTOS = REPO / "Sources" / "EKeyEnvoyAuth" / "Protos"


@pytest.fixture(scope="module")
def stubs():
    """The messages, the service stub and base_pb2 generated from the vendored protos (as
    namespace packages: an `__init__.py` in `google/` would hide the installed google.protobuf)."""
    out = Path(tempfile.mkdtemp(prefix="ekey-grpc-stubs-"))
    protos = sorted(str(path.relative_to(PROTOS)) for path in PROTOS.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    status = protoc.main(["protoc", f"-I{PROTOS}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}", *protos])
    assert status == 0, f"protoc failed on {protos}"
    sys.path.insert(0, str(out))
    try:
        messages = importlib.import_module("envoy.service.auth.v3.external_auth_pb2")
        services = importlib.import_module("envoy.service.auth.v3.external_auth_pb2_grpc")
        base = importlib.import_module("envoy.config.core.v3.base_pb2")
        yield messages, services, base
    finally:
        sys.path.remove(str(out))


@pytest.fixture(scope="module")
def grpc_stack():
    """`ekey up --authorize` with the gRPC Check service on a free loopback port."""
    running = new_stack()
    running.ports["authorize-grpc"] = free_port()
    running.start(arguments=("--authorize", "--authorize-port", str(free_port())),
                  overrides={"EKEY_GATEWAY_AUTHORIZE_GRPC_LISTEN": f"127.0.0.1:{running.ports['authorize-grpc']}"})
    try:
        yield running
    finally:
        running.__exit__()


def check_request(messages, *, method: str, path: str, headers: dict[str, str]):
    """A CheckRequest as Envoy's ext_authz filter sends it: lower-case header keys, path with query."""
    request = messages.CheckRequest()
    http = request.attributes.request.http
    http.method = method
    http.path = path
    http.headers.update({":method": method, ":path": path, **{name.lower(): value for name, value in headers.items()}})
    return request


def test_grpcio_check_allows_once_then_relays_the_gateways_refusal(grpc_stack: Stack, stubs):
    messages, services, base = stubs
    key = DPoPKey.from_pem(grpc_stack.dpop_key)
    with EKeyClient(grpc_stack.url("issuer", "/token"), ca=grpc_stack.ca, dpop_key=key) as client:
        token = client.request_token("POST:/payments", AUD, limit=1)
    htu = grpc_stack.url("gateway", "/payments")

    def ask(path: str = "/payments?amount=5", **headers: str):
        with grpc.insecure_channel(f"127.0.0.1:{grpc_stack.ports['authorize-grpc']}") as channel:
            stub = services.AuthorizationStub(channel)
            return stub.Check(check_request(messages, method="POST", path=path, headers=headers), timeout=20)

    proof = key.proof("POST", htu, token=token.token)
    allowed = ask(authorization=f"DPoP {token.token}", dpop=proof)
    assert allowed.status.code == grpc.StatusCode.OK.value[0]
    assert allowed.WhichOneof("http_response") == "ok_response"
    added = {option.header.key.lower(): option.header.value for option in allowed.ok_response.headers}
    assert added["x-ekey-sub"] == "client:demo"
    assert added["x-ekey-trace"] == token.trace
    assert added["x-ekey-action"] == "POST:/payments"
    assert added["x-ekey-use"] == "1/1"
    assert all(option.append_action == base.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD for option in allowed.ok_response.headers)

    # The one use is spent: the gateway's 401 replay_detected, challenge and JSON for Envoy to relay.
    replay = ask(authorization=f"DPoP {token.token}", dpop=key.proof("POST", htu, token=token.token))
    assert replay.status.code == grpc.StatusCode.UNAUTHENTICATED.value[0]
    assert replay.WhichOneof("http_response") == "denied_response"
    denied = replay.denied_response
    assert denied.status.code == 401
    relayed = {option.header.key.lower(): option.header.value for option in denied.headers}
    assert relayed["www-authenticate"] == 'DPoP error="invalid_token", algs="ES256 EdDSA"'
    assert relayed["cache-control"] == "no-store"
    assert relayed["content-type"].startswith("application/json")
    assert json.loads(denied.body)["error"] == "replay_detected"

    # A token outside its capability: 403 capability_mismatch, PERMISSION_DENIED.
    with EKeyClient(grpc_stack.url("issuer", "/token"), ca=grpc_stack.ca, dpop_key=key) as client:
        other = client.request_token("POST:/payments", AUD, limit=1)
    get_proof = key.proof("GET", grpc_stack.url("gateway", "/payments/7"), token=other.token)
    with grpc.insecure_channel(f"127.0.0.1:{grpc_stack.ports['authorize-grpc']}") as channel:
        mismatch = services.AuthorizationStub(channel).Check(
            check_request(messages, method="GET", path="/payments/7", headers={"authorization": f"DPoP {other.token}", "dpop": get_proof}),
            timeout=20)
    assert mismatch.status.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert mismatch.denied_response.status.code == 403
    assert json.loads(mismatch.denied_response.body)["error"] == "capability_mismatch"
