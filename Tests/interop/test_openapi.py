"""The OpenAPI documents of docs/spec/openapi/ checked against live services.

Every test drives a real `ekey up` stack (the `stack` fixture) with httpx over real TLS
(HTTP/2 on the main listeners, plain HTTP/1.1 on the admin listeners) and validates each
request/response pair with openapi-core against the document of the service. Two extra
processes, started from the stack's PKI, produce what a healthy stack never answers: an
issuer whose publisher is unreachable (503 without a signing key, `/readyz` 503) and whose
only template allows one token a minute (429), and a publisher whose Redis store is
unreachable (503 on every route that reads the store). The last test checks that every
(path, method, status) the documents list was seen.

Needs openapi-core==0.23.1 (pip install openapi-core==0.23.1) besides httpx and h2.
"""

from __future__ import annotations

import base64
import hashlib
import json
import signal
import socket
import ssl
import subprocess
import time
import uuid

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import PathError, ServerNotFound
from openapi_core.security.factories import SecurityProviderFactory
from openapi_core.security.providers import UnsupportedProvider
from werkzeug.datastructures import Headers, ImmutableMultiDict

from stack import BIN_DIR, REPO, Stack, free_port

SPEC_DIR = REPO / "docs" / "spec" / "openapi"

# openapi-core has no provider for OpenAPI 3.1's `mutualTLS` scheme; a TLS certificate is not
# visible in an HTTP request object anyway, so the scheme counts as satisfied.
SecurityProviderFactory.PROVIDERS.setdefault("mutualTLS", UnsupportedProvider)
pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type")

# `application/jwk-set+json` (RFC 7517) is JSON; openapi-core only knows `application/json`.
CONFIG = Config(extra_media_type_deserializers={"application/jwk-set+json": json.loads})
APIS = {name: OpenAPI.from_file_path(str(SPEC_DIR / f"{name}.yaml"), config=CONFIG) for name in ("issuer", "publisher")}
SEEN: set[tuple[str, str, str, str]] = set()
AUDIENCE = "https://api.example.com"


# MARK: openapi-core adapters for httpx


class OpenAPIRequest:
    """An httpx.Request in openapi-core's Request protocol."""

    def __init__(self, request: httpx.Request) -> None:
        self.host_url = f"{request.url.scheme}://{request.url.netloc.decode()}"
        self.path = request.url.path
        self.method = request.method.lower()
        self.body = bytes(request.content) or None
        self.content_type = request.headers.get("content-type", "").lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(request.url.params.multi_items()),
            header=Headers(list(request.headers.multi_items())),
            cookie=ImmutableMultiDict(),
            path={},
        )


class OpenAPIResponse:
    """An httpx.Response (or an altered copy of its parts) in openapi-core's Response protocol."""

    def __init__(self, status_code: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.status_code = status_code
        self.headers = Headers(headers)
        self.content_type = self.headers.get("content-type", "").lower()
        self.data = data

    @classmethod
    def of(cls, response: httpx.Response) -> "OpenAPIResponse":
        return cls(response.status_code, list(response.headers.multi_items()), response.content)


def path_pattern(path: str) -> str:
    return "/internal/v1/keys/{kid}" if path.startswith("/internal/v1/keys/") else path


def check(api: str, response: httpx.Response, status: int, request_valid: bool | None = True) -> httpx.Response:
    """Asserts `status`, validates the response against `api`'s document, and the request:
    valid (`True`), refused by the document's schemas (`False`), or not judged (`None`)."""
    assert response.status_code == status, (response.status_code, response.headers, response.text)
    request = OpenAPIRequest(response.request)
    APIS[api].validate_response(request, OpenAPIResponse.of(response))
    if request_valid is True:
        APIS[api].validate_request(request)
    elif request_valid is False:
        with pytest.raises(Exception) as refused:
            APIS[api].validate_request(request)
        # refused by a schema, not because the request matched no server, path or operation
        assert not isinstance(refused.value, (PathError, ServerNotFound)), refused.value
    SEEN.add((api, path_pattern(request.path), request.method, str(status)))
    return response


# MARK: TLS clients, DPoP proofs


def tls(stack: Stack, cert: tuple[str, str] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=stack.ca)
    if cert:
        context.load_cert_chain(*cert)
    return context


def client(stack: Stack, cert: tuple[str, str] | None = None, http2: bool = True) -> httpx.Client:
    return httpx.Client(http2=http2, verify=tls(stack, cert), timeout=10)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(key: ec.EllipticCurvePrivateKey) -> dict:
    numbers = key.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": b64(numbers.x.to_bytes(32, "big")), "y": b64(numbers.y.to_bytes(32, "big"))}


def thumbprint(jwk: dict) -> str:
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    return b64(hashlib.sha256(canonical.encode()).digest())


def es256(key: ec.EllipticCurvePrivateKey, header: dict, claims: dict) -> str:
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return signing_input + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def proof(key: ec.EllipticCurvePrivateKey, htu: str, htm: str = "POST", jti: str | None = None) -> str:
    return es256(
        key, {"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(key)},
        {"jti": jti or str(uuid.uuid4()), "htm": htm, "htu": htu, "iat": int(time.time())})


def demo_key(stack: Stack) -> ec.EllipticCurvePrivateKey:
    return serialization.load_pem_private_key(stack.dpop_key.read_bytes(), password=None)


def token_body(**overrides) -> dict:
    body = {"aud": AUDIENCE, "cap": {"action": "POST:/payments", "limit": 1}, "bind": "DPoP"}
    body.update(overrides)
    return body


# MARK: fixtures


@pytest.fixture(scope="module")
def issuer_url(stack: Stack) -> str:
    return stack.url("issuer", "/token")


@pytest.fixture(scope="module")
def anon(stack: Stack):
    with client(stack) as c:
        yield c


@pytest.fixture(scope="module")
def workload(stack: Stack):
    with client(stack, stack.workload_cert) as c:
        yield c


@pytest.fixture(scope="module")
def admin(stack: Stack):
    with client(stack, stack.admin_cert) as c:
        yield c


@pytest.fixture(scope="module")
def issuer_client(stack: Stack):
    with client(stack, (str(stack.pki / "issuer-client.crt"), str(stack.pki / "issuer-client.key"))) as c:
        yield c


@pytest.fixture(scope="module")
def plain():
    with httpx.Client(timeout=10) as c:
        yield c


class Broken:
    """The extra processes: an issuer without a reachable publisher, a publisher without a reachable store."""

    def __init__(self, stack: Stack) -> None:
        self.ports = {name: free_port() for name in ("jwks", "jwks-admin", "issuer", "issuer-admin", "dead")}
        pki = stack.pki
        tls_line = f"{{cert: {pki}/server.crt, key: {pki}/server.key, client_ca: {pki}/ca.crt, client_auth: optional}}"
        self.folder = stack.folder.parent / "broken"
        self.folder.mkdir(exist_ok=True)
        jwks = f"""store:
  url: redis://127.0.0.1:{self.ports['dead']}
jwks:
  listen: 127.0.0.1:{self.ports['jwks']}
  admin_listen: 127.0.0.1:{self.ports['jwks-admin']}
  tls: {tls_line}
  authorized_issuers: ["spiffe://example.org/ekey/issuer"]
  admins: ["spiffe://example.org/ekey/admin"]
"""
        issuer = f"""store:
  url: memory://
issuer:
  listen: 127.0.0.1:{self.ports['issuer']}
  admin_listen: 127.0.0.1:{self.ports['issuer-admin']}
  issuer_url: https://localhost:{self.ports['issuer']}
  tls: {tls_line}
  publisher: {{url: "https://localhost:{self.ports['dead']}", ca: {pki}/ca.crt, cert: {pki}/issuer-client.crt, key: {pki}/issuer-client.key}}
  templates:
    - name: one-a-minute
      subjects: ["spiffe://example.org/demo/checkout"]
      audiences: ["{AUDIENCE}"]
      actions: ["POST:/payments"]
      max_limit: 5
      max_ttl: 60
      binds: [mTLS]
      rate_per_minute: 1
"""
        (self.folder / "jwks.yaml").write_text(jwks)
        (self.folder / "issuer.yaml").write_text(issuer)
        self.processes = {
            name: subprocess.Popen(
                [str(BIN_DIR / f"ekey-{name}"), "--config", str(self.folder / f"{name}.yaml")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for name in ("jwks", "issuer")
        }
        deadline = time.monotonic() + 30
        for name in ("jwks", "issuer"):
            while True:
                try:
                    if httpx.get(self.admin_url(name, "/healthz"), timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline and self.processes[name].poll() is None, f"ekey-{name} did not start"
                time.sleep(0.05)

    def url(self, service: str, path: str) -> str:
        return f"https://localhost:{self.ports[service]}{path}"

    def admin_url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[service + '-admin']}{path}"

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@pytest.fixture(scope="module")
def broken(stack: Stack):
    processes = Broken(stack)
    yield processes
    processes.stop()


# MARK: issuer: POST /token successes


def test_token_dpop_registered_key(stack, anon, issuer_url):
    key = demo_key(stack)
    response = check("issuer", anon.post(issuer_url, json=token_body(), headers={"DPoP": proof(key, issuer_url)}), 201)
    body = response.json()
    assert response.http_version == "HTTP/2"
    assert body["token_type"] == "DPoP" and body["cnf"] == {"jkt": thumbprint(public_jwk(key))}
    assert "www-authenticate" not in response.headers


def test_token_mtls(workload, issuer_url):
    body = check("issuer", workload.post(issuer_url, json=token_body(bind="mTLS", ttl=30)), 201).json()
    assert body["token_type"] == "EKey" and "x5t#S256" in body["cnf"] and body["expires_in"] == 30


def test_token_mtls_with_jwk_to_bind(workload, issuer_url):
    jwk = public_jwk(ec.generate_private_key(ec.SECP256R1()))
    body = check("issuer", workload.post(issuer_url, json=token_body(jwk=jwk)), 201).json()
    assert body["cnf"] == {"jkt": thumbprint(jwk)}


def test_token_nulls_and_unknown_members_are_ignored(stack, anon, issuer_url):
    body = token_body(ttl=None, jwk=None, sub=None, subject_token=None, unknown_member={"x": 1})
    body["cap"].update(scope=None, subcap=["GET:/payments/42"])
    check("issuer", anon.post(issuer_url, json=body, headers={"DPoP": proof(demo_key(stack), issuer_url)}), 201)


# MARK: issuer: POST /token refusals


@pytest.mark.parametrize("content", [
    b"{not json", b"[]", b'{"aud": "a", "aud": "b"}', json.dumps({"cap": {"action": "POST:/payments", "limit": 1}, "bind": "mTLS"}).encode(),
])
def test_token_400_body_not_a_token_request(workload, issuer_url, content):
    response = workload.post(issuer_url, content=content, headers={"Content-Type": "application/json"})
    # a duplicate member is not something JSON Schema can see: the document describes it in prose
    check("issuer", response, 400, request_valid=None if b'"aud": "b"' in content else False)


@pytest.mark.parametrize("change", [
    {"ttl": 61}, {"ttl": 0}, {"ttl": "30"}, {"bind": "Bearer"}, {"aud": ""},
    {"cap": {"action": "POST:/payments", "limit": 0}},
    {"cap": {"action": "post:/payments", "limit": 1}},
    {"cap": {"action": "POST:payments", "limit": 1}},
    {"cap": {"action": "POST:/payments"}},
    {"cap": {"action": "POST:/payments", "limit": 1, "subcap": ["GET:/a"] * 33}},
    {"jwk": {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "d": "AAAA"}},
    {"sub": ""},
])
def test_token_400_schema(workload, issuer_url, change):
    check("issuer", workload.post(issuer_url, json=token_body(**change)), 400, request_valid=False)


def test_token_400_binding_cannot_be_made(stack, anon, workload, issuer_url):
    key = demo_key(stack)
    # bind mTLS without a certificate
    check("issuer", anon.post(issuer_url, json=token_body(bind="mTLS"), headers={"DPoP": proof(key, issuer_url)}), 400)
    # a jwk that differs from the proof key
    other = public_jwk(ec.generate_private_key(ec.SECP256R1()))
    check("issuer", anon.post(issuer_url, json=token_body(jwk=other), headers={"DPoP": proof(key, issuer_url)}), 400)
    # bind DPoP over mTLS with neither proof nor jwk
    check("issuer", workload.post(issuer_url, json=token_body()), 400)
    # jwk with bind mTLS
    check("issuer", workload.post(issuer_url, json=token_body(bind="mTLS", jwk=other)), 400)


def test_token_400_two_proofs_or_two_identities(stack, anon, workload, issuer_url):
    key = demo_key(stack)
    headers = [("DPoP", proof(key, issuer_url)), ("DPoP", proof(key, issuer_url))]
    check("issuer", anon.post(issuer_url, json=token_body(), headers=headers), 400)
    check("issuer", workload.post(issuer_url, json=token_body(bind="mTLS", subject_token="a.b.c")), 400)


def test_token_401_invalid_client(stack, anon, workload, issuer_url):
    key = demo_key(stack)
    # no credential at all (the document's security cannot see a missing certificate)
    response = check("issuer", anon.post(issuer_url, json=token_body()), 401)
    assert "www-authenticate" not in response.headers
    # a proof by a key that is not registered
    stranger = ec.generate_private_key(ec.SECP256R1())
    check("issuer", anon.post(issuer_url, json=token_body(), headers={"DPoP": proof(stranger, issuer_url)}), 401)
    # a replayed proof: the first use spends the jti
    spent = proof(key, issuer_url)
    check("issuer", anon.post(issuer_url, json=token_body(), headers={"DPoP": spent}), 201)
    check("issuer", anon.post(issuer_url, json=token_body(), headers={"DPoP": spent}), 401)
    # a proof for another URI or method, also from an mTLS caller
    check("issuer", anon.post(issuer_url, json=token_body(), headers={"DPoP": proof(key, issuer_url + "x")}), 401)
    check("issuer", workload.post(issuer_url, json=token_body(), headers={"DPoP": proof(key, issuer_url, htm="GET")}), 401)
    # token exchange from an issuer without IdPs: the subject token fails
    check("issuer", anon.post(issuer_url, json=token_body(subject_token="a.b.c"), headers={"DPoP": proof(stranger, issuer_url)}), 401)


@pytest.mark.parametrize("change", [
    {"aud": "https://elsewhere.example"},
    {"cap": {"action": "DELETE:/payments", "limit": 1}},
    {"cap": {"action": "POST:/payments", "limit": 6}},
    {"cap": {"action": "POST:/payments", "limit": 1, "subcap": ["GET:/refunds/1"]}},
    {"sub": "spiffe://example.org/someone-else"},
])
def test_token_403_policy(workload, issuer_url, change):
    check("issuer", workload.post(issuer_url, json=token_body(bind="mTLS", **change)), 403)


def test_token_403_unknown_identity(admin, issuer_url):
    check("issuer", admin.post(issuer_url, json=token_body(bind="mTLS")), 403)


def test_token_429_and_503_without_signing_key(stack, broken):
    url = broken.url("issuer", "/token")
    with client(stack, stack.workload_cert) as c:
        # the rate limit comes before the signing key: the first request passes it and finds no key
        check("issuer", c.post(url, json=token_body(bind="mTLS")), 503)
        response = check("issuer", c.post(url, json=token_body(bind="mTLS")), 429)
    assert int(response.headers["retry-after"]) >= 1


# MARK: issuer: metadata and admin listener


def test_issuer_metadata(stack, anon):
    body = check("issuer", anon.get(stack.url("issuer", "/.well-known/oauth-authorization-server")), 200).json()
    assert body["issuer"] == stack.url("issuer") and body["token_endpoint"] == stack.url("issuer", "/token")


@pytest.mark.parametrize("service,api", [("issuer", "issuer"), ("jwks", "publisher")])
def test_admin_listener(stack, plain, service, api):
    for path in ("/healthz", "/readyz", "/metrics"):
        response = check(api, plain.get(stack.admin_url(service, path)), 200)
        assert response.http_version == "HTTP/1.1"


@pytest.mark.parametrize("service,api", [("issuer", "issuer"), ("jwks", "publisher")])
def test_admin_not_ready(broken, plain, service, api):
    check(api, plain.get(broken.admin_url(service, "/readyz")), 503)


# MARK: publisher: the key set


def test_jwks_200_and_304(stack, anon):
    url = stack.url("jwks", "/.well-known/jwks.json")
    response = check("publisher", anon.get(url), 200)
    tag = response.headers["etag"]
    assert response.json()["keys"], "the issuer's key is published"
    for value in (tag, "*", f'"other", W/{tag}'):
        not_modified = check("publisher", anon.get(url, headers={"If-None-Match": value}), 304)
        assert not_modified.content == b"" and not_modified.headers["etag"] == tag


# MARK: publisher: internal routes


def new_registration(kid: str | None = None, not_after: int | None = None) -> tuple[dict, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = public_jwk(key)
    kid = kid or thumbprint(jwk)
    body = {"kid": kid, "jwk": {**jwk, "kid": kid, "alg": "ES256"}}
    if not_after is not None:
        body["not_after"] = not_after
    return body, key


def test_register_revoke_and_tombstone(stack, anon, admin, issuer_client):
    keys = stack.url("jwks", "/internal/v1/keys")
    registration, _ = new_registration()
    kid = registration["kid"]
    check("publisher", issuer_client.post(keys, json=registration), 201)
    check("publisher", issuer_client.post(keys, json=registration), 200)
    check("publisher", issuer_client.post(keys, json={**registration, "not_after": int(time.time()) + 3600}), 200)
    other, _ = new_registration(kid=kid)
    check("publisher", issuer_client.post(keys, json=other), 409)
    # revocation: 204, 204 again, then 410 for that kid whatever the key
    revoke = stack.url("jwks", f"/internal/v1/keys/{kid}")
    check("publisher", admin.delete(revoke), 204)
    check("publisher", admin.delete(revoke), 204)
    check("publisher", issuer_client.post(keys, json=registration), 410)
    check("publisher", issuer_client.post(keys, json=other), 410)
    check("publisher", admin.delete(stack.url("jwks", "/internal/v1/keys/never-registered")), 404)
    published = [key["kid"] for key in anon.get(stack.url("jwks", "/.well-known/jwks.json")).json()["keys"]]
    assert kid not in published
    export = check("publisher", admin.get(keys), 200).json()
    assert kid in [tombstone["kid"] for tombstone in export["revoked"]]


@pytest.mark.parametrize("mutate", [
    lambda body: body["jwk"].update(alg="EdDSA"),
    lambda body: body["jwk"].update(d="AAAA"),
    lambda body: body["jwk"].update(kid="another"),
    lambda body: body["jwk"].pop("alg"),
    lambda body: body.update(kid=""),
    lambda body: body.update(not_after="tomorrow"),
])
def test_register_400(stack, issuer_client, mutate):
    body, _ = new_registration()
    mutate(body)
    # jwk.kid differing from kid is a cross-member rule JSON Schema cannot state
    valid = None if body["jwk"].get("kid") == "another" else False
    check("publisher", issuer_client.post(stack.url("jwks", "/internal/v1/keys"), json=body), 400, request_valid=valid)


def test_internal_401_and_403(stack, anon, admin, issuer_client):
    keys = stack.url("jwks", "/internal/v1/keys")
    registration, _ = new_registration()
    revoke = stack.url("jwks", "/internal/v1/keys/some-kid")
    for caller, status in ((anon, 401), (admin, 403)):
        check("publisher", caller.post(keys, json=registration), status)
    for caller, status in ((anon, 401), (issuer_client, 403)):
        check("publisher", caller.get(keys), status)
        check("publisher", caller.put(keys, json={"keys": []}), status)
        check("publisher", caller.delete(revoke), status)


def test_export_import(stack, admin):
    keys = stack.url("jwks", "/internal/v1/keys")
    export = check("publisher", admin.get(keys), 200).json()
    assert export["keys"], "the issuer's key is stored"
    imported = check("publisher", admin.put(keys, json=export), 200).json()
    assert imported == {"imported": len(export["keys"])}
    # an export made before tombstones existed
    check("publisher", admin.put(keys, json={"keys": export["keys"]}), 200)
    # a kid twice is 400; a key whose kid has a tombstone (imported here) is 409, nothing changed
    check("publisher", admin.put(keys, json={"keys": export["keys"] * 2}), 400, request_valid=None)
    record = export["keys"][0]
    tombstone = {"kid": record["kid"], "revoked_at": int(time.time()), "forget_after": int(time.time()) + 60}
    check("publisher", admin.put(keys, json={"keys": export["keys"], "revoked": [tombstone]}), 409)
    check("publisher", admin.put(keys, json={"revoked": []}), 400, request_valid=False)
    assert check("publisher", admin.get(keys), 200).json() == export


def test_publisher_503_without_store(stack, broken):
    keys = broken.url("jwks", "/internal/v1/keys")
    registration, _ = new_registration()
    with client(stack) as anon_broken:
        check("publisher", anon_broken.get(broken.url("jwks", "/.well-known/jwks.json")), 503)
    with client(stack, stack.admin_cert) as admin_broken:
        check("publisher", admin_broken.get(keys), 503)
        check("publisher", admin_broken.put(keys, json={"keys": []}), 503)
        check("publisher", admin_broken.delete(broken.url("jwks", "/internal/v1/keys/some-kid")), 503)
    with client(stack, (str(stack.pki / "issuer-client.crt"), str(stack.pki / "issuer-client.key"))) as issuer_broken:
        check("publisher", issuer_broken.post(keys, json=registration), 503)


# MARK: routes the documents do not list


@pytest.mark.parametrize("service,api,method,path", [
    ("issuer", "issuer", "GET", "/token"),
    ("issuer", "issuer", "GET", "/nothing-here"),
    ("jwks", "publisher", "POST", "/.well-known/jwks.json"),
    ("jwks", "publisher", "DELETE", "/internal/v1/keys"),
    ("jwks", "publisher", "GET", "/internal/v1/keys/some-kid"),
])
def test_unlisted_routes_are_404_with_no_body(stack, anon, service, api, method, path):
    response = anon.request(method, stack.url(service, path))
    assert response.status_code == 404 and response.content == b""
    with pytest.raises(Exception, match="not found"):
        APIS[api].validate_request(OpenAPIRequest(response.request))


# MARK: the validator catches mismatches


def test_validator_catches_altered_responses(stack, anon, issuer_url):
    response = anon.post(issuer_url, json=token_body(), headers={"DPoP": proof(demo_key(stack), issuer_url)})
    request = OpenAPIRequest(response.request)
    headers = list(response.headers.multi_items())
    APIS["issuer"].validate_response(request, OpenAPIResponse(201, headers, response.content))
    body = response.json()
    alterations = {
        "a required member dropped": (201, headers, {k: v for k, v in body.items() if k != "kid"}),
        "an extra member": (201, headers, {**body, "scope": "x"}),
        "a wrong token_type": (201, headers, {**body, "token_type": "Bearer"}),
        "Cache-Control missing": (201, [(k, v) for k, v in headers if k.lower() != "cache-control"], body),
        "an undocumented status": (200, headers, body),
        "an error body for a 201": (201, headers, {"error": "access_denied", "error_description": "x"}),
        "a 403 body with the wrong code": (403, headers, {"error": "invalid_request", "error_description": "x"}),
    }
    for name, (status, altered_headers, altered_body) in alterations.items():
        altered = OpenAPIResponse(status, altered_headers, json.dumps(altered_body).encode())
        with pytest.raises(Exception):
            APIS["issuer"].validate_response(request, altered)
            pytest.fail(f"the validator missed {name}")


# MARK: shutdown (last: it stops the extra issuer)


def test_draining_issuer_answers_503_over_http1_and_http2(stack, broken):
    # hold one request in flight (a body that never completes), then ask the issuer to stop
    context = tls(stack)
    context.set_alpn_protocols(["http/1.1"])
    held = context.wrap_socket(socket.create_connection(("127.0.0.1", broken.ports["issuer"])), server_hostname="localhost")
    held.sendall(b"POST /token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
    time.sleep(0.3)
    with client(stack, http2=False) as http1, client(stack) as http2:
        broken.processes["issuer"].send_signal(signal.SIGTERM)
        time.sleep(0.3)
        for response in (
            http1.get(broken.url("issuer", "/.well-known/oauth-authorization-server")),
            http1.post(broken.url("issuer", "/token"), json=token_body(bind="mTLS")),
        ):
            check("issuer", response, 503, request_valid=None)
            assert response.headers["retry-after"] == "1" and response.headers["connection"] == "close"
        # HTTP/2 forbids Connection (RFC 9113 §8.2.2): the 503 comes without it, on a stream
        # that is answered, not reset.
        response = http2.get(broken.url("issuer", "/.well-known/oauth-authorization-server"))
        assert response.http_version == "HTTP/2"
        check("issuer", response, 503, request_valid=None)
        assert response.headers["retry-after"] == "1" and "connection" not in response.headers
    held.close()


# MARK: coverage of the documents


def test_every_documented_status_was_seen():
    documented = set()
    for api, document in APIS.items():
        with open(SPEC_DIR / f"{api}.yaml") as file:
            import yaml
            spec = yaml.safe_load(file)
        for path, item in spec["paths"].items():
            for method, operation in item.items():
                if method in ("get", "put", "post", "delete", "patch", "head", "options"):
                    documented |= {(api, path, method, status) for status in operation["responses"]}
    missing = sorted(documented - SEEN)
    assert not missing, f"documented but never produced by a live service: {missing}"
    assert SEEN <= documented
