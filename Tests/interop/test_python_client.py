"""The Python client of ekey_py (built from docs/spec alone) against a real `ekey up` stack.

Each test names the spec sections it checks. The stack's template `demo-payments` allows
POST:/payments and GET:/payments/:id for https://api.example.com, limit <= 5, ttl <= 60,
bound by DPoP or mTLS, to `client:demo` (the demo DPoP key) and the workload certificate.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
import time

import pytest

from ekey_py import (DPoPKey, EKeyClient, EKeyError, ath, certificate_thumbprint, decode_jws,
                     jwk_thumbprint)
from ekey_py.jose import verify_es256
from stack import Stack, new_stack

AUD = "https://api.example.com"
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def demo_key(stack: Stack) -> DPoPKey:
    return DPoPKey.from_pem(stack.dpop_key)


@pytest.fixture
def dpop(stack: Stack, demo_key: DPoPKey):
    """A client authenticating as `client:demo` with the demo DPoP key, no certificate."""
    with EKeyClient(stack.url("issuer", "/token"), ca=stack.ca, dpop_key=demo_key) as client:
        yield client


@pytest.fixture
def workload(stack: Stack):
    """A client presenting the workload certificate (spiffe://example.org/demo/checkout)."""
    with EKeyClient(stack.url("issuer", "/token"), ca=stack.ca, cert=stack.workload_cert) as client:
        yield client


def refused(call, *args, **kwargs) -> EKeyError:
    with pytest.raises(EKeyError) as info:
        call(*args, **kwargs)
    return info.value


def pay(client: EKeyClient, stack: Stack, token, **kwargs):
    return client.call("POST", stack.url("gateway", "/payments"), token,
                       content=b'{"amount":10}', headers=JSON, **kwargs)


# §7.2.2, §7.6, §6.1, §9.9.2, §9.8 -------------------------------------------------------

def test_dpop_token_is_used_once_then_refused(stack, dpop, demo_key):
    token = dpop.request_token("POST:/payments", AUD, limit=1)
    assert token.token_type == "DPoP"
    assert token.cnf == {"jkt": demo_key.thumbprint}

    response = pay(dpop, stack, token)
    assert response.status_code == 201
    assert response.http_version == "HTTP/2"
    said = response.json()["gateway_said"]
    assert said["x-ekey-sub"] == "client:demo"
    assert said["x-ekey-trace"] == token.trace
    assert said["x-ekey-action"] == "POST:/payments"
    assert said["x-ekey-use"] == "1/1"

    # §9.8: every use spent -> 401 replay_detected, challenge error="invalid_token" (§9.11).
    error = refused(pay, dpop, stack, token)
    assert (error.status, error.error) == (401, "replay_detected")
    assert error.www_authenticate == 'DPoP error="invalid_token", algs="ES256 EdDSA"'
    assert error.response.headers["cache-control"] == "no-store"


def test_replayed_proof_is_refused_and_not_counted(stack, dpop):
    token = dpop.request_token("POST:/payments", AUD, limit=2)
    url = stack.url("gateway", "/payments")
    proof = dpop.proof_for("POST", url, token)
    assert pay(dpop, stack, token, proof=proof).status_code == 201

    # §6.4: the same jti for the same trace -> 401 replay_detected, before the limit.
    error = refused(pay, dpop, stack, token, proof=proof)
    assert (error.status, error.error) == (401, "replay_detected")

    # §9.8 "nothing is counted for a refused request": the second use is still there.
    assert pay(dpop, stack, token).json()["gateway_said"]["x-ekey-use"] == "2/2"


def test_limit_three_gives_exactly_three_uses(stack, dpop):
    token = dpop.request_token("POST:/payments", AUD, limit=3)
    uses = [pay(dpop, stack, token).json()["gateway_said"]["x-ekey-use"] for _ in range(3)]
    assert uses == ["1/3", "2/3", "3/3"]
    error = refused(pay, dpop, stack, token)
    assert (error.status, error.error) == (401, "replay_detected")


# §7.2.1, §7.3, §6.5 -----------------------------------------------------------------------

def test_mtls_token_needs_the_same_certificate(stack, workload, dpop):
    token = workload.request_token("GET:/payments/42", AUD, bind="mTLS", limit=3)
    assert token.token_type == "EKey"
    assert token.cnf == {"x5t#S256": certificate_thumbprint(stack.workload_cert[0])}
    assert token.header["bind"] == "mTLS"
    assert token.claims["sub"] == "spiffe://example.org/demo/checkout"

    url = stack.url("gateway", "/payments/42")
    response = workload.call("GET", url, token)
    assert response.status_code == 200
    assert response.json()["gateway_said"]["x-ekey-use"] == "1/3"

    # No client certificate on the connection: 401 invalid_proof, challenge invalid_token.
    error = refused(dpop.call, "GET", url, token)
    assert (error.status, error.error) == (401, "invalid_proof")
    assert error.www_authenticate == 'EKey error="invalid_token"'

    # Another valid certificate of the same CA: refused the same way.
    with EKeyClient(stack.url("issuer", "/token"), ca=stack.ca, cert=stack.admin_cert) as admin:
        error = refused(admin.call, "GET", url, token)
        assert (error.status, error.error) == (401, "invalid_proof")

    # Neither refusal spent a use (§9.2: no store write before step 5).
    assert workload.call("GET", url, token).json()["gateway_said"]["x-ekey-use"] == "2/3"


# §9.7, §5.2 -------------------------------------------------------------------------------

def test_capability_mismatch(stack, dpop):
    token = dpop.request_token("POST:/payments", AUD, limit=1)
    error = refused(dpop.call, "GET", stack.url("gateway", "/payments/42"), token)
    assert (error.status, error.error) == (403, "capability_mismatch")
    assert error.www_authenticate == 'DPoP error="insufficient_scope", algs="ES256 EdDSA"'
    error = refused(dpop.call, "POST", stack.url("gateway", "/payments/"), token)  # trailing / counts
    assert (error.status, error.error) == (403, "capability_mismatch")
    assert pay(dpop, stack, token).status_code == 201  # the one use was left untouched


# §6.1 steps 3 and 4 -----------------------------------------------------------------------

@pytest.mark.parametrize("htm, path", [("GET", "/payments"), ("POST", "/payments/42"),
                                       ("POST", "/payments/"), ("POST", "/other")])
def test_proof_for_another_method_or_uri_is_refused(stack, dpop, htm, path):
    token = dpop.request_token("POST:/payments", AUD, limit=1)
    proof = dpop.proof_for(htm, stack.url("gateway", path), token)
    error = refused(pay, dpop, stack, token, proof=proof)
    assert (error.status, error.error) == (401, "invalid_proof")
    assert error.www_authenticate == 'DPoP error="invalid_dpop_proof", algs="ES256 EdDSA"'
    assert pay(dpop, stack, token).status_code == 201


def test_proof_htu_on_another_origin_is_refused(stack, dpop):
    token = dpop.request_token("POST:/payments", AUD, limit=1)
    port = stack.ports["gateway-port"]
    for htu in (f"http://localhost:{port}/payments", f"https://127.0.0.1:{port}/payments",
                f"https://localhost:{port + 1}/payments", f"https://user@localhost:{port}/payments"):
        error = refused(pay, dpop, stack, token, proof=dpop.proof_for("POST", htu, token))
        assert (error.status, error.error) == (401, "invalid_proof"), htu


def test_proof_htu_compared_as_uri(stack, dpop):
    """§6.1 step 4: scheme and host case-insensitive, query and fragment left out."""
    token = dpop.request_token("POST:/payments", AUD, limit=2)
    port = stack.ports["gateway-port"]
    for htu in (f"HTTPS://LOCALHOST:{port}/payments", f"https://localhost:{port}/payments?x=1#f"):
        header, claims, _ = decode_jws(dpop.proof_for("POST", htu, token))
        claims["htu"] = htu  # proof_for strips the query; put it back to test the gateway
        proof = dpop.dpop_key.sign_jws(header, claims)
        assert pay(dpop, stack, token, proof=proof).status_code == 201, htu


def test_proof_without_ath_or_with_wrong_ath_is_refused(stack, dpop, demo_key):
    """§6.2: ath must be the hash of the token sent; no ath and no trace nonce links nothing."""
    token = dpop.request_token("POST:/payments", AUD, limit=1)
    url = stack.url("gateway", "/payments")
    other = dpop.request_token("POST:/payments", AUD, limit=1)
    for proof in (demo_key.proof("POST", url), demo_key.proof("POST", url, token=other.token)):
        error = refused(pay, dpop, stack, token, proof=proof)
        assert (error.status, error.error) == (401, "invalid_proof")


def test_proof_by_another_key_is_refused(stack, dpop):
    token = dpop.request_token("POST:/payments", AUD, limit=1)
    stranger = DPoPKey.generate()
    error = refused(pay, dpop, stack, token,
                    proof=stranger.proof("POST", stack.url("gateway", "/payments"), token=token.token))
    assert (error.status, error.error) == (401, "invalid_proof")


def test_old_proof_is_refused(stack, dpop):
    """§6.1 step 5: iat more than max_age (5 s) away."""
    token = dpop.request_token("POST:/payments", AUD, limit=1)
    proof = dpop.proof_for("POST", stack.url("gateway", "/payments"), token, iat=int(time.time()) - 30)
    error = refused(pay, dpop, stack, token, proof=proof)
    assert (error.status, error.error) == (401, "invalid_proof")


# §7.7 -------------------------------------------------------------------------------------

def test_issuer_errors(stack, dpop):
    error = refused(dpop.request_token, "POST:/payments", AUD, limit=6)
    assert (error.status, error.error) == (403, "access_denied")
    error = refused(dpop.request_token, "DELETE:/payments", AUD)
    assert (error.status, error.error) == (403, "access_denied")
    error = refused(dpop.request_token, "POST:/payments", AUD, ttl=61)
    assert (error.status, error.error) == (400, "invalid_request")
    error = refused(dpop.request_token, "POST:/a/../b", AUD)
    assert (error.status, error.error) == (400, "invalid_request")
    # §7.3: client:demo authenticated by its proof, but mTLS without a certificate.
    error = refused(dpop.request_token, "POST:/payments", AUD, bind="mTLS")
    assert (error.status, error.error) == (400, "invalid_request")
    assert error.response.headers.get("www-authenticate") is None
    assert error.response.headers["cache-control"] == "no-store"
    with EKeyClient(stack.url("issuer", "/token"), ca=stack.ca) as anonymous:  # §7.2: no credential
        error = refused(anonymous.request_token, "POST:/payments", AUD)
        assert (error.status, error.error) == (401, "invalid_client")
    with EKeyClient(stack.url("issuer", "/token"), ca=stack.ca, dpop_key=DPoPKey.generate()) as stranger:
        error = refused(stranger.request_token, "POST:/payments", AUD)
        assert (error.status, error.error) == (401, "invalid_client")
    token = dpop.request_token("POST:/payments", AUD, ttl=10)
    assert token.expires_in == 10 and token.claims["exp"] - token.claims["iat"] == 10


def test_mtls_caller_may_ask_for_a_dpop_token_with_jwk(stack, workload):
    """§7.3 row 3: DPoP without a proof, jwk sent, caller authenticated by mTLS."""
    key = DPoPKey.generate()
    workload.dpop_key = key
    token = workload.request_token("POST:/payments", AUD, send_jwk=True, prove=False)
    assert token.cnf == {"jkt": key.thumbprint}
    assert pay(workload, stack, token).json()["gateway_said"]["x-ekey-sub"] == \
        "spiffe://example.org/demo/checkout"


# Interop with the Swift CLI --------------------------------------------------------------

def test_swift_inspect_agrees_with_python_decoding(stack, dpop, demo_key):
    token = dpop.request_token("POST:/payments", AUD, limit=2, scope="create:payment",
                               subcap=["GET:/payments/:id"])
    inspected = json.loads(stack.ekey("inspect", "--json", token.token).stdout)
    assert inspected["header"] == token.header
    assert inspected["claims"] == token.claims
    claims = token.claims
    assert claims["cnf"]["jkt"] == demo_key.thumbprint == jwk_thumbprint(demo_key.public_jwk)
    assert claims["trace"] == token.trace and len(token.trace) == 32
    assert claims["exp"] == token.expires_at and claims["exp"] - claims["iat"] == token.expires_in
    assert token.header["kid"] == token.kid and token.header["typ"] == "EKEY"
    assert claims["cap"] == {"action": "POST:/payments", "limit": 2, "scope": "create:payment",
                             "subcap": ["GET:/payments/:id"]}
    text = stack.ekey("inspect", token.token).stdout
    assert demo_key.thumbprint in text and token.trace in text

    # The CLI also reads a proof made by Python.
    url = stack.url("gateway", "/payments")
    proof = dpop.proof_for("POST", url, token)
    inspected = json.loads(stack.ekey("inspect", "--json", proof).stdout)
    assert inspected["header"] == {"typ": "dpop+jwt", "alg": "ES256", "jwk": demo_key.public_jwk}
    assert inspected["claims"]["ath"] == ath(token.token)
    assert (inspected["claims"]["htm"], inspected["claims"]["htu"]) == ("POST", url)


def test_swift_proof_with_python_token_and_python_proof_with_swift_token(stack, dpop, demo_key):
    url = stack.url("gateway", "/payments")
    token = dpop.request_token("POST:/payments", AUD, limit=1)
    swift_proof = stack.ekey("proof", "--key", str(stack.dpop_key), "--method", "POST",
                             "--url", url, "--token", token.token).stdout.strip()
    assert verify_es256(demo_key.public_jwk, swift_proof)
    assert pay(dpop, stack, token, proof=swift_proof).status_code == 201

    answer = json.loads(stack.ekey("token", "--action", "POST:/payments", "--json").stdout)
    assert answer["cnf"] == {"jkt": demo_key.thumbprint}
    response = pay(dpop, stack, answer["token"])
    assert response.json()["gateway_said"]["x-ekey-trace"] == answer["trace"]


# §6.3 server nonces, on a second stack with gateway.dpop.nonce: true ---------------------

@pytest.fixture(scope="module")
def nonce_stack():
    """A stack whose stack.yaml (kept as edited: first line removed) turns nonces on."""
    running = new_stack()
    running.start()  # the first start writes stack.yaml, the PKI and the demo key
    running.stop()
    config = running.folder / "stack.yaml"
    lines = config.read_text().splitlines(keepends=True)
    edited = "".join(lines[1:]).replace("nonce: false", "nonce: true")
    assert "nonce: true" in edited
    config.write_text(edited)
    with running:
        yield running


def expected_nonce(secret_file, now: int, window: int = 60) -> str:
    """§6.3: base64url(first 18 bytes of HMAC-SHA256(secret, "ekey-dpop-nonce:" || w))."""
    secret = secret_file.read_bytes()
    if secret.endswith(b"\n"):
        secret = secret[:-1]
    mac = hmac.new(secret, b"ekey-dpop-nonce:" + struct.pack(">q", now // window), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()[:18]).rstrip(b"=").decode()


def test_nonce_challenge_is_answered_once(nonce_stack):
    stack = nonce_stack
    key = DPoPKey.from_pem(stack.dpop_key)
    with EKeyClient(stack.url("issuer", "/token"), ca=stack.ca, dpop_key=key) as client:
        statuses: list[int] = []
        client.http.event_hooks["response"].append(lambda r: statuses.append(r.status_code))
        token = client.request_token("POST:/payments", AUD, limit=2)  # the issuer ignores nonces
        url = stack.url("gateway", "/payments")

        # A proof without a nonce: 401 use_dpop_nonce with DPoP-Nonce (§6.3, §9.11).
        error = refused(pay, client, stack, token, proof=client.proof_for("POST", url, token))
        client.nonces.clear()  # forget the nonce this refusal taught the client
        assert (error.status, error.error) == (401, "use_dpop_nonce")
        assert error.www_authenticate == 'DPoP error="use_dpop_nonce", algs="ES256 EdDSA"'
        nonce = error.response.headers["dpop-nonce"]
        assert len(nonce) == 24
        now = int(time.time())
        secret = stack.pki / "dpop-nonce.key"
        assert nonce in {expected_nonce(secret, now), expected_nonce(secret, now - 2)}

        # The client's own call: challenged once, retried once with the nonce, then 201.
        statuses.clear()
        response = pay(client, stack, token)
        assert response.status_code == 201 and statuses == [401, 201]
        # The nonce is remembered: the next call needs no challenge.
        statuses.clear()
        assert pay(client, stack, token).json()["gateway_said"]["x-ekey-use"] == "2/2"
        assert statuses == [201]


def test_proof_with_nonce_but_no_ath_is_refused(nonce_stack):
    """§6.3: with server nonces on, ath is REQUIRED."""
    stack = nonce_stack
    key = DPoPKey.from_pem(stack.dpop_key)
    with EKeyClient(stack.url("issuer", "/token"), ca=stack.ca, dpop_key=key) as client:
        token = client.request_token("POST:/payments", AUD, limit=1)
        nonce = refused(pay, client, stack, token, proof=key.proof("POST", stack.url("gateway", "/payments"),
                                                                  token=token.token)).response.headers["dpop-nonce"]
        proof = key.proof("POST", stack.url("gateway", "/payments"), nonce=nonce)
        error = refused(pay, client, stack, token, proof=proof)
        assert (error.status, error.error) == (401, "invalid_proof")
        assert pay(client, stack, token).status_code == 201


# §7.6, §7.8, §6.4 (issuer), §9.4, §9.11 ---------------------------------------------------

def test_metadata_and_token_answer(stack, dpop):
    metadata = dpop.http.get(stack.url("issuer", "/.well-known/oauth-authorization-server"))
    assert metadata.status_code == 200
    assert metadata.json()["token_endpoint"] == dpop.token_endpoint
    assert metadata.json()["issuer"] + "/token" == dpop.token_endpoint
    token = dpop.request_token("POST:/payments", AUD)
    assert set(token.raw) == {"token", "token_type", "expires_in", "expires_at", "trace", "cnf", "kid"}
    assert token.claims["iss"] == metadata.json()["issuer"]


def test_token_request_proof_replay_is_refused(stack, dpop, demo_key):
    proof = demo_key.proof("POST", dpop.token_endpoint)
    dpop.request_token("POST:/payments", AUD, proof=proof)
    error = refused(dpop.request_token, "POST:/payments", AUD, proof=proof)
    assert (error.status, error.error) == (401, "invalid_client")


def test_no_token_and_dpop_token_as_bearer(stack, dpop):
    response = dpop.http.post(stack.url("gateway", "/payments"))
    assert response.status_code == 401 and response.json()["error"] == "invalid_request"
    assert response.headers.get_list("www-authenticate") == ['DPoP algs="ES256 EdDSA"', "EKey"]
    token = dpop.request_token("POST:/payments", AUD, limit=1)
    error = refused(pay, dpop, stack, token, scheme="Bearer")
    assert (error.status, error.error) == (401, "invalid_token")
    assert error.www_authenticate == 'Bearer error="invalid_token"'
    assert pay(dpop, stack, token, scheme="EKey").status_code == 201  # §9.4: EKey with a proof


# §6.1 step 2 and §4.1: malformed proofs, assembled by hand ------------------------------

def _proof_variants(key: DPoPKey, url: str, token: str) -> dict:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from ekey_py.jose import b64url, compact_json

    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk}

    def claims(**changes):
        base = {"jti": b64url(hashlib.sha256(repr(changes).encode() + str(time.time_ns()).encode()).digest()),
                "htm": "POST", "htu": url, "iat": int(time.time()), "ath": ath(token)}
        base.update(changes)
        return {k: v for k, v in base.items() if v is not None}

    def signed(signing_input: str) -> str:
        return f"{signing_input}.{b64url(key.sign_raw(signing_input.encode()))}"

    good = key.sign_jws(header, claims())
    der_input = f"{b64url(compact_json(header))}.{b64url(compact_json(claims()))}"
    private_d = key._key.private_numbers().private_value.to_bytes(32, "big")
    duplicate = b'{"typ":"dpop+jwt","typ":"dpop+jwt","alg":"ES256","jwk":' + compact_json(key.public_jwk) + b"}"
    return {
        "typ in another case": key.sign_jws({**header, "typ": "DPoP+jwt"}, claims()),
        "private d in jwk": key.sign_jws({**header, "jwk": {**key.public_jwk, "d": b64url(private_d)}}, claims()),
        "alg EdDSA for a P-256 key": key.sign_jws({**header, "alg": "EdDSA"}, claims()),
        "crit in header": key.sign_jws({**header, "crit": ["x"], "x": 1}, claims()),
        "duplicate header member": signed(f"{b64url(duplicate)}.{b64url(compact_json(claims()))}"),
        "DER signature": der_input + "." + b64url(key._key.sign(der_input.encode(), ec.ECDSA(hashes.SHA256()))),
        "padded base64url": good + "==",
        "jti of 129 characters": key.sign_jws(header, claims(jti="a" * 129)),
        "iat with a fraction": key.sign_jws(header, claims(iat=time.time())),
        "no iat": key.sign_jws(header, claims(iat=None)),
        "nonce not a string": key.sign_jws(header, claims(nonce=5)),
        "htm in lower case": key.sign_jws(header, claims(htm="post")),
    }


def test_malformed_proofs_are_refused(stack, dpop, demo_key):
    url = stack.url("gateway", "/payments")
    names = list(_proof_variants(demo_key, url, "x"))
    for name in names:
        token = dpop.request_token("POST:/payments", AUD, limit=1)
        proof = _proof_variants(demo_key, url, token.token)[name]
        error = refused(pay, dpop, stack, token, proof=proof)
        assert (error.status, error.error) == (401, "invalid_proof"), name
    # The limits themselves are accepted: a 128-character jti.
    token = dpop.request_token("POST:/payments", AUD, limit=1)
    assert pay(dpop, stack, token, proof=dpop.proof_for("POST", url, token, jti="a" * 128)).status_code == 201
