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
