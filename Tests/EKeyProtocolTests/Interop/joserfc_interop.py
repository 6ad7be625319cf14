#!/usr/bin/env python3
"""Interop peer for the E-Key protocol tests, built on joserfc (an independent JOSE library).

  joserfc_interop.py make    < {"now", "issuer", "audience", "url"}   -> tokens and proofs made by joserfc
  joserfc_interop.py verify  < {"cases": [{"kind", "jws", "jwk"?}]}  -> what joserfc reads from Swift-made JWS

E-Key tokens carry the `bind` header parameter, which third-party verifiers must allow:
the registry below declares it, as docs/spec/token.md asks.
"""
import base64
import hashlib
import json
import secrets
import sys
import warnings

from joserfc import jws
from joserfc.jwk import ECKey, OKPKey
from joserfc.jws import JWSRegistry
from joserfc.registry import HeaderParameter

warnings.simplefilter("ignore")  # joserfc flags "EdDSA" as superseded by RFC 9864; E-Key uses it on purpose.

REGISTRY = JWSRegistry(
    header_registry={"bind": HeaderParameter("E-Key binding mode", "str")},
    algorithms=["ES256", "EdDSA"],
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_key(alg: str):
    return ECKey.generate_key("P-256") if alg == "ES256" else OKPKey.generate_key("Ed25519")


def make(params):
    now = params["now"]
    cases = []
    for alg in ("ES256", "EdDSA"):
        issuer_key = new_key(alg)
        proof_key = new_key(alg)
        kid = "joserfc-" + alg.lower()
        trace = secrets.token_hex(16)
        claims = {
            "iss": params["issuer"], "sub": "spiffe://example.org/interop", "aud": params["audience"],
            "iat": now, "exp": now + 30, "trace": trace,
            "cap": {"action": "POST:/payments", "limit": 1, "subcap": ["GET:/payments/:id"]},
            "cnf": {"jkt": proof_key.thumbprint()},
        }
        token = jws.serialize_compact(
            {"alg": alg, "typ": "EKEY", "kid": kid, "bind": "DPoP"},
            json.dumps(claims).encode(), issuer_key, registry=REGISTRY)
        proof_claims = {
            "jti": secrets.token_urlsafe(16), "htm": "POST", "htu": params["url"], "iat": now,
            "ath": b64url(hashlib.sha256(token.encode()).digest()),
        }
        proof = jws.serialize_compact(
            {"alg": alg, "typ": "dpop+jwt", "jwk": proof_key.as_dict(private=False)},
            json.dumps(proof_claims).encode(), proof_key, registry=REGISTRY)
        public = issuer_key.as_dict(private=False)
        public["kid"] = kid
        cases.append({
            "alg": alg, "issuer_jwk": public, "token": token, "proof": proof, "trace": trace,
            "proof_thumbprint": proof_key.thumbprint(), "proof_jti": proof_claims["jti"],
        })
    return {"cases": cases}


def verify(params):
    results = []
    for case in params["cases"]:
        try:
            if case["kind"] == "proof":
                header = json.loads(base64.urlsafe_b64decode(case["jws"].split(".")[0] + "=="))
                key_dict = header["jwk"]
            else:
                key_dict = case["jwk"]
            key = ECKey.import_key(key_dict) if key_dict["kty"] == "EC" else OKPKey.import_key(key_dict)
            obj = jws.deserialize_compact(case["jws"], key, registry=REGISTRY)
            results.append({
                "ok": True, "header": obj.headers(), "payload": json.loads(obj.payload),
                "thumbprint": key.thumbprint(),
            })
        except Exception as error:  # report, the Swift side asserts
            results.append({"ok": False, "error": f"{type(error).__name__}: {error}"})
    return {"results": results}


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    request = json.load(sys.stdin)
    if command == "make":
        print(json.dumps(make(request)))
    elif command == "verify":
        print(json.dumps(verify(request)))
    else:
        sys.exit("usage: joserfc_interop.py make|verify < request.json")
