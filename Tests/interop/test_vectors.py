"""docs/spec/vectors/ judged by ekey_py.verify, a second verifier written from docs/spec alone.

Every case of every vector file is one test, named `file:case`. No running stack is needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ekey_py.verify import Refusal, check_path, jwk_thumbprint, matches, parse_action, verify_proof, verify_token

VECTORS = Path(__file__).resolve().parents[2] / "docs" / "spec" / "vectors"
FILES = ("paths", "capabilities", "thumbprints", "tokens", "proofs", "keys")

# The gateway setting of tokens.json (its description) and proofs.json.
ISSUER = "https://issuer.example.com"
AUDIENCE = "https://api.example.com"
CLOCK_SKEW = 5
PROOF_MAX_AGE = 5


def load(name: str) -> dict:
    return json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))


KEYS = load("keys")


def cases() -> list:
    params = []
    for name in FILES:
        document = load(name)
        if name == "keys":
            # keys.json has no cases: judge that each named key's thumbprint is the one stated.
            for role, entry in document.items():
                if isinstance(entry, dict) and "public_jwk" in entry:
                    case = {"name": f"{role} thumbprint", "input": {"jwk": entry["public_jwk"]},
                            "expect": {"thumbprint": entry["thumbprint"]}}
                    params.append(pytest.param("thumbprints", case, id=f"keys:{case['name']}"))
            continue
        for case in document["cases"]:
            params.append(pytest.param(name, case, id=f"{name}:{case['name']}"))
    return params


def judge(kind: str, given: dict) -> dict:
    """The verdict of ekey_py.verify for one case's input, in the vectors' `expect` shape."""
    try:
        if kind == "paths":
            check_path(given["target"])
            return {"verdict": "accept"}
        if kind == "capabilities":
            action = parse_action(given["action"])
            if "method" not in given:
                return {"verdict": "valid"}
            return {"verdict": "match" if matches(action, given["method"], given["target"]) else "no_match"}
        if kind == "thumbprints":
            return {"thumbprint": jwk_thumbprint(given["jwk"])}
        if kind == "tokens":
            result = verify_token(given["token"], given["now"], KEYS["jwks"], ISSUER, AUDIENCE, CLOCK_SKEW)
            return {"verdict": "valid", "sub": result["sub"], "cap": result["cap"],
                    "trace": result["trace"], "binding": result["binding"]}
        if kind == "proofs":
            request = given["request"]
            result = verify_proof(given["proof"], request["method"], request["url"],
                                  request["access_token"], request["bound_jkt"], given["now_ms"],
                                  max_age_s=PROOF_MAX_AGE)
            return {"verdict": "valid", "jti": result["jti"], "jkt": result["jkt"]}
    except Refusal as refusal:
        return {"verdict": "reject", "status": refusal.status, "error": refusal.error,
                "reason": refusal.description}
    raise AssertionError(f"unknown vector file {kind}")


@pytest.mark.parametrize("kind,case", cases())
def test_vector(kind: str, case: dict) -> None:
    verdict = judge(kind, case["input"])
    reason = verdict.pop("reason", None)
    assert verdict == case["expect"], f"{case['name']}: ours {verdict} ({reason}), vector {case['expect']}"


def test_every_file_has_cases() -> None:
    for name in FILES[:-1]:
        assert load(name)["cases"], name


# --- Beyond the vectors: rules of the spec the files do not exercise, signed anew with the
# test keys of keys.json, so that a verifier passing the vectors is seen to refuse for the
# rule and not by accident. Verdicts come from token.md §4 and binding.md §6.

def _signer(role: str):
    from cryptography.hazmat.primitives.asymmetric import ec

    from ekey_py.jose import DPoPKey, b64url_decode

    d = int.from_bytes(b64url_decode(KEYS[role]["private_jwk"]["d"]), "big")
    return DPoPKey(ec.derive_private_key(d, ec.SECP256R1()))


def _token(header_json: bytes, payload_json: bytes, role: str = "issuer") -> str:
    from ekey_py.jose import b64url

    signing_input = f"{b64url(header_json)}.{b64url(payload_json)}"
    return f"{signing_input}.{b64url(_signer(role).sign_raw(signing_input.encode('ascii')))}"


_NOW = 1_800_000_000
_HEADER = {"alg": "ES256", "bind": "DPoP", "kid": "vector-issuer-1", "typ": "EKEY"}
_CLAIMS = {"aud": AUDIENCE, "cap": {"action": "POST:/payments", "limit": 1},
           "cnf": {"jkt": KEYS["holder"]["thumbprint"]}, "exp": _NOW + 20, "iat": _NOW - 10,
           "iss": ISSUER, "sub": "spiffe://example.org/checkout", "trace": "5f0c1d2e3f405162738495a6b7c8d9e0"}


def _with(base: dict, **changes) -> bytes:
    value = {**base, **changes}
    return json.dumps({k: v for k, v in value.items() if v is not None}, separators=(",", ":")).encode()


def _flip_last_char(token: str) -> str:
    return token[:-1] + ("A" if token[-1] != "A" else "B")


_LEGACY_HEX = "a" * 64
_EXTRA_TOKENS = {
    "re-signed valid token": (_token(_with(_HEADER), _with(_CLAIMS)), "valid"),
    "signature altered": (_flip_last_char(_token(_with(_HEADER), _with(_CLAIMS))), "invalid_token"),
    "padded base64url header": ("=.".join(_token(_with(_HEADER), _with(_CLAIMS)).split(".", 1)), "invalid_token"),
    "duplicate member in the payload": (_token(_with(_HEADER), _with(_CLAIMS)[:-1] + b',"sub":"x"}'), "invalid_token"),
    "iat with a fraction": (_token(_with(_HEADER), _with(_CLAIMS).replace(b'"iat":1799999990', b'"iat":1799999990.0')), "invalid_token"),
    "aud as an array": (_token(_with(_HEADER), _with(_CLAIMS, aud=[AUDIENCE])), "invalid_token"),
    "cnf with two members": (_token(_with(_HEADER), _with(_CLAIMS, cnf={"jkt": KEYS["holder"]["thumbprint"], "x5t#S256": KEYS["holder"]["thumbprint"]})), "invalid_token"),
    "trace in upper case": (_token(_with(_HEADER), _with(_CLAIMS, trace="5F0C1D2E3F405162738495A6B7C8D9E0")), "invalid_token"),
    "legacy mTLS hex jkt": (_token(_with(_HEADER, bind="mTLS"), _with(_CLAIMS, cnf={"jkt": _LEGACY_HEX})), "valid"),
    "hex jkt without bind": (_token(_with(_HEADER, bind=None), _with(_CLAIMS, cnf={"jkt": _LEGACY_HEX})), "invalid_token"),
    "expired and bind/cnf disagree: step 7 before step 10": (
        _token(_with(_HEADER, bind="mTLS"), _with(_CLAIMS, exp=_NOW - 6, iat=_NOW - 30)), "expired_token"),
    "header nested 17 levels": (_token(_with(_HEADER, x=json.loads("[" * 16 + "]" * 16)), _with(_CLAIMS)), "invalid_token"),
    "header nested 16 levels": (_token(_with(_HEADER, x=json.loads("[" * 15 + "]" * 15)), _with(_CLAIMS)), "valid"),
}


@pytest.mark.parametrize("name", list(_EXTRA_TOKENS))
def test_token_rules_beyond_the_vectors(name: str) -> None:
    token, expected = _EXTRA_TOKENS[name]
    try:
        result = verify_token(token, _NOW, KEYS["jwks"], ISSUER, AUDIENCE, CLOCK_SKEW)
        verdict = "valid"
    except Refusal as refusal:
        verdict, result = refusal.error, refusal.description
    assert verdict == expected, result
    if name == "legacy mTLS hex jkt":
        from ekey_py.jose import b64url

        assert result["binding"]["mode"] == "mTLS"
        assert result["binding"]["x5t#S256"] == b64url(bytes.fromhex(_LEGACY_HEX))


def _proof(claims: dict, role: str = "holder") -> str:
    signer = _signer(role)
    return signer.sign_jws({"typ": "dpop+jwt", "alg": "ES256", "jwk": signer.public_jwk}, claims)


_ACCESS = _token(_with(_HEADER), _with(_CLAIMS))
_URL = "https://api.example.com/payments"
_PROOF = {"jti": "p1", "htm": "POST", "htu": _URL, "iat": _NOW}
_EXTRA_PROOFS = {
    "re-signed valid proof": ({}, "valid"),
    "htu with user information": ({"htu": "https://u@api.example.com/payments"}, "invalid_proof"),
    "htu over http": ({"htu": "http://api.example.com/payments"}, "invalid_proof"),
    "htu with a query and fragment (left out)": ({"htu": _URL + "?x=1#f"}, "valid"),
    "htu with a trailing slash": ({"htu": _URL + "/"}, "invalid_proof"),
    "htu with port 443 written out": ({"htu": "https://api.example.com:443/payments"}, "valid"),
    "htu with another port": ({"htu": "https://api.example.com:8443/payments"}, "invalid_proof"),
    # now_ms is 1 ms before _NOW: the second starting at iat must have an instant within 5 s.
    "iat 5 s ahead of a clock 1 ms short": ({"iat": _NOW + 5}, "invalid_proof"),
    "iat 6 s old, its last millisecond 5 s old": ({"iat": _NOW - 6}, "valid"),
    "iat 7 s old": ({"iat": _NOW - 7}, "invalid_proof"),
    "iat as a string": ({"iat": str(_NOW)}, "invalid_proof"),
    "nonce not a string": ({"nonce": 1}, "invalid_proof"),
}


@pytest.mark.parametrize("name", list(_EXTRA_PROOFS))
def test_proof_rules_beyond_the_vectors(name: str) -> None:
    from ekey_py.jose import ath

    changes, expected = _EXTRA_PROOFS[name]
    proof = _proof({**_PROOF, "ath": ath(_ACCESS), **changes})
    try:
        verify_proof(proof, "POST", _URL, _ACCESS, KEYS["holder"]["thumbprint"], _NOW * 1000 - 1, PROOF_MAX_AGE)
        verdict = "valid"
    except Refusal as refusal:
        verdict = refusal.error
    assert verdict == expected


def test_eddsa_proof_is_verified() -> None:
    """An Ed25519 proof key (RFC 8037): bound to its thumbprint it passes, re-signed by another it fails."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from ekey_py.jose import ath, b64url, compact_json

    def sign(key, claims):
        raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        header = {"typ": "dpop+jwt", "alg": "EdDSA", "jwk": {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}}
        signing_input = f"{b64url(compact_json(header))}.{b64url(compact_json(claims))}"
        return f"{signing_input}.{b64url(key.sign(signing_input.encode('ascii')))}", header["jwk"]

    key = Ed25519PrivateKey.generate()
    proof, jwk = sign(key, {**_PROOF, "ath": ath(_ACCESS)})
    assert verify_proof(proof, "POST", _URL, _ACCESS, jwk_thumbprint(jwk), _NOW * 1000)["jkt"] == jwk_thumbprint(jwk)
    other, _ = sign(Ed25519PrivateKey.generate(), {**_PROOF, "ath": ath(_ACCESS)})
    forged = ".".join(proof.split(".")[:2] + other.split(".")[2:])
    with pytest.raises(Refusal) as refused:
        verify_proof(forged, "POST", _URL, _ACCESS, jwk_thumbprint(jwk), _NOW * 1000)
    assert refused.value.error == "invalid_proof"
