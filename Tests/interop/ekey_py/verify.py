"""A second, independent E-Key verifier, written from docs/spec only.

Path rules (token.md §5.3), the action grammar and matching (§5.1, §5.2), token
validation at a gateway (§4.1–§4.5) and DPoP proof checks (binding.md §6.1–§6.2, with
`ath` required). No Swift source was read to write it. Refusals raise `Refusal`, an
`EKeyError` carrying the gateway's status and `error` code (gateway.md §9.10).

`cryptography` is used only for the ECDSA P-256 and Ed25519 signature primitives;
base64url, strict JSON, thumbprints and the raw `r || s` to DER conversion come from
`jose.py` or are written here.
"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

from .client import EKeyError
from .jose import ath as ath_of, b64url_decode, jwk_thumbprint, strip_query, verify_es256

__all__ = ["Refusal", "Action", "check_path", "parse_action", "matches",
           "verify_token", "verify_proof", "jwk_thumbprint"]


class Refusal(EKeyError):
    """A verdict of refusal: the HTTP status and `error` code a gateway answers with."""

    def __init__(self, status: int, error: str, description: str = ""):
        super().__init__(status, error, description)


def _bad_request(why: str) -> Refusal:
    return Refusal(400, "invalid_request", why)


def _bad_token(why: str) -> Refusal:
    return Refusal(401, "invalid_token", why)


def _bad_proof(why: str) -> Refusal:
    return Refusal(401, "invalid_proof", why)


# --- §5.3 path rules -------------------------------------------------------------------

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_SUB_DELIMS = frozenset("!$&'()*+,;=")
_PCHAR_RAW = _UNRESERVED | _SUB_DELIMS | frozenset(":@")  # pchar without pct-encoded
_HEX = frozenset("0123456789abcdefABCDEF")
# Rule 3: bytes that must never be percent-encoded: unreserved, "/", "\", NUL.
_NEVER_ENCODED = frozenset(ord(c) for c in _UNRESERVED) | {0x2F, 0x5C, 0x00}


def check_path(target: str) -> None:
    """Accept a request target or raise 400 `invalid_request` (token.md §5.3)."""
    if not isinstance(target, str) or not target.startswith("/"):
        raise _bad_request("the target is not in origin form")
    path, _, query = target.partition("?")
    i = 0
    while i < len(path):
        c = path[i]
        if c == "%":  # rules 2 and 3
            pair = path[i + 1:i + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                raise _bad_request("% not followed by two hexadecimal digits")
            if int(pair, 16) in _NEVER_ENCODED:
                raise _bad_request(f"%{pair} encodes a character that must not be encoded")
            i += 3
            continue
        if c != "/" and c not in _PCHAR_RAW:  # rule 1
            raise _bad_request(f"character {c!r} not allowed in a path")
        i += 1
    segments = path[1:].split("/")
    for n, segment in enumerate(segments):
        if segment == "" and n != len(segments) - 1:  # rule 4
            raise _bad_request("empty segment")
        if segment.split(";", 1)[0] in (".", ".."):  # rule 5
            raise _bad_request("dot segment")
        if segment.startswith(";"):  # rule 6
            raise _bad_request("segment empty before a ';' parameter")
    for c in query:
        if c not in _PCHAR_RAW and c not in "/?%":
            raise _bad_request(f"character {c!r} not allowed in a query")


# --- §5.1 actions, §5.2 matching --------------------------------------------------------

_METHOD = re.compile(r"[A-Z]{1,16}")


@dataclass(frozen=True)
class Action:
    """A parsed action: the method and the pattern's parts (§5.1)."""

    text: str
    method: str
    parts: tuple[str, ...]

    @staticmethod
    def kind(part: str) -> str:
        if part == "*":
            return "rest"
        if part.startswith(":"):
            return "parameter"
        return "literal"


def _is_pchars(text: str, allow_percent: bool = True) -> bool:
    i = 0
    while i < len(text):
        c = text[i]
        if c == "%":
            if not allow_percent or len(text) < i + 3 or not set(text[i + 1:i + 3]) <= _HEX:
                return False
            i += 3
            continue
        if c not in _PCHAR_RAW:
            return False
        i += 1
    return True


def parse_action(text: str) -> Action:
    """Parse `method ":" pattern` or raise 400 `invalid_request` (§5.1)."""
    if not isinstance(text, str):
        raise _bad_request("an action is a string")
    method, colon, pattern = text.partition(":")
    if not colon or not _METHOD.fullmatch(method):
        raise _bad_request("the method is 1-16 upper-case ASCII letters followed by ':'")
    if not pattern.startswith("/") or "?" in pattern:
        raise _bad_request("a pattern starts with '/' and holds no '?'")
    parts = tuple(pattern[1:].split("/"))
    substituted = []
    for n, part in enumerate(parts):
        last = n == len(parts) - 1
        kind = Action.kind(part)
        if kind == "rest":
            if not last:
                raise _bad_request("'*' is allowed only as the last part")
            substituted.append("x")
        elif kind == "parameter":
            if len(part) < 2 or not _is_pchars(part[1:], allow_percent=False):
                raise _bad_request("a parameter is ':' and one or more name characters")
            substituted.append("x")
        else:
            if part == "" and not last:
                raise _bad_request("an empty literal is allowed only as the last part")
            if not _is_pchars(part):
                raise _bad_request("a literal is made of pchar")
            substituted.append(part)
    check_path("/" + "/".join(substituted))  # same 400 invalid_request
    return Action(text, method, parts)


def matches(action: Action | str, method: str, target: str) -> bool:
    """Whether a request's method and target match an action (§5.2)."""
    if isinstance(action, str):
        action = parse_action(action)
    if method != action.method:
        return False
    segments = target.partition("?")[0][1:].split("/")
    for n, part in enumerate(action.parts):
        kind = Action.kind(part)
        if kind == "rest":
            return n < len(segments)
        if n >= len(segments):
            return False
        if kind == "parameter" and segments[n] == "":
            return False
        if kind == "literal" and segments[n] != part:
            return False
    return len(segments) == len(action.parts)


# --- §4.1 strict JWS encoding -----------------------------------------------------------

MAX_DEPTH = 16


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    obj: dict = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate member {key!r}")
        obj[key] = value
    return obj


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_tree(value: Any, depth: int) -> None:
    """Depth (the top-level object is level 1) and no unpaired surrogates."""
    if isinstance(value, (dict, list)):
        if depth > MAX_DEPTH:
            raise ValueError("nested deeper than 16 levels")
        items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
        for key, item in items:
            if key is not None:
                key.encode("utf-8")  # UnicodeEncodeError (a ValueError) on a lone surrogate
            _check_tree(item, depth + 1)
    elif isinstance(value, str):
        value.encode("utf-8")


def strict_json_object(data: bytes) -> dict:
    """RFC 8259 object, valid UTF-8, no duplicates, no lone surrogates, depth <= 16 (§4.1)."""
    text = data.decode("utf-8")  # strict: refuses invalid UTF-8 and encoded surrogates
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    _check_tree(value, 1)
    return value


def _split_jws(jws: str) -> tuple[dict, dict, bytes, str]:
    """Strictly decode a compact JWS: (header, payload, 64-byte signature, signing input)."""
    parts = jws.split(".")
    if len(parts) != 3:
        raise ValueError("a compact JWS has three parts")
    header = strict_json_object(b64url_decode(parts[0]))
    payload = strict_json_object(b64url_decode(parts[1]))
    signature = b64url_decode(parts[2])
    if len(signature) != 64:
        raise ValueError("the signature is not 64 bytes")
    return header, payload, signature, f"{parts[0]}.{parts[1]}"


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_b64url_32(value: Any) -> bool:
    try:
        return isinstance(value, str) and len(b64url_decode(value)) == 32
    except ValueError:
        return False


# --- keys and signatures ----------------------------------------------------------------

_ALG_OF = {("EC", "P-256"): "ES256", ("OKP", "Ed25519"): "EdDSA"}
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


def public_key_alg(jwk: Any) -> str:
    """The algorithm of a public EC P-256 or Ed25519 JWK, or ValueError (binding.md §6.1)."""
    if not isinstance(jwk, dict):
        raise ValueError("a JWK is an object")
    if any(member in jwk for member in _PRIVATE_MEMBERS):
        raise ValueError("private key material in a JWK")
    alg = _ALG_OF.get((jwk.get("kty"), jwk.get("crv")))
    if alg is None:
        raise ValueError("not an EC P-256 or Ed25519 key")
    if "alg" in jwk and jwk["alg"] != alg:
        raise ValueError("the JWK's alg does not fit its key")
    coordinates = ("x", "y") if alg == "ES256" else ("x",)
    if not all(_is_b64url_32(jwk.get(c)) for c in coordinates):
        raise ValueError("key coordinates are not 32 bytes")
    if alg == "ES256":
        from cryptography.hazmat.primitives.asymmetric import ec

        ec.EllipticCurvePublicNumbers(  # ValueError when (x, y) is not on P-256
            int.from_bytes(b64url_decode(jwk["x"]), "big"),
            int.from_bytes(b64url_decode(jwk["y"]), "big"), ec.SECP256R1()).public_key()
    return alg


def signature_verifies(jwk: dict, alg: str, jws: str) -> bool:
    """ES256 via jose.verify_es256 (raw r||s to DER); EdDSA with Ed25519 (RFC 8037)."""
    if alg == "ES256":
        return verify_es256(jwk, jws)
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    head, body, sig = jws.split(".")
    try:
        Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"])).verify(
            b64url_decode(sig), f"{head}.{body}".encode("ascii"))
        return True
    except (InvalidSignature, ValueError):
        return False


# --- §4 token validation ----------------------------------------------------------------

MAX_TOKEN_BYTES = 8192
_KEY_PARAMETERS = ("crit", "b64", "jwk", "jku", "x5u", "x5c")
_TRACE = re.compile(r"[0-9a-f]{32}")
_LEGACY_JKT = re.compile(r"[0-9a-f]{64}")


def _check_token_header(header: dict) -> None:
    """§4.2."""
    if header.get("alg") not in ("ES256", "EdDSA"):
        raise ValueError("alg is not ES256 or EdDSA")
    if header.get("typ") != "EKEY":
        raise ValueError("typ is not EKEY")
    kid = header.get("kid")
    if not isinstance(kid, str) or not 1 <= len(kid) <= 128:
        raise ValueError("kid is not a string of 1-128 characters")
    if "bind" in header and header["bind"] not in ("DPoP", "mTLS"):
        raise ValueError("bind is not DPoP or mTLS")
    present = [name for name in _KEY_PARAMETERS if name in header]
    if present:
        raise ValueError(f"forbidden header parameter {present[0]}")


def _check_cap(cap: Any) -> dict:
    """§5.1: the cap object, its actions parsed; null scope/subcap count as absent."""
    if not isinstance(cap, dict):
        raise ValueError("cap is not an object")
    if not isinstance(cap.get("action"), str):
        raise ValueError("cap.action is not a string")
    if not _is_int(cap.get("limit"), 1, 1_000_000_000):
        raise ValueError("cap.limit is not an integer from 1 to 1,000,000,000")
    result = {"action": cap["action"], "limit": cap["limit"]}
    if cap.get("scope") is not None:
        if not isinstance(cap["scope"], str):
            raise ValueError("cap.scope is not a string")
        result["scope"] = cap["scope"]
    if cap.get("subcap") is not None:
        subcap = cap["subcap"]
        if not isinstance(subcap, list) or len(subcap) > 32 or not all(isinstance(s, str) for s in subcap):
            raise ValueError("cap.subcap is not an array of at most 32 strings")
        result["subcap"] = list(subcap)
    for text in [result["action"], *result.get("subcap", [])]:
        try:
            parse_action(text)
        except Refusal as refusal:
            raise ValueError(f"malformed action {text!r}: {refusal.description}") from None
    return result


def _check_claims(claims: dict) -> dict:
    """§4.3 presence, types and formats (step 5); the lifetime is step 9, the binding step 10."""
    for name in ("iss", "aud", "sub", "trace"):
        if not isinstance(claims.get(name), str):
            raise ValueError(f"{name} is missing or not a string")
    if claims["sub"] == "":
        raise ValueError("sub is empty")
    if not _TRACE.fullmatch(claims["trace"]):
        raise ValueError("trace is not 32 lowercase hexadecimal digits")
    for name in ("iat", "exp"):
        if not _is_int(claims.get(name), 0, 2**40 - 1):
            raise ValueError(f"{name} is not a JSON integer from 0 to 2^40 - 1")
    cnf = claims.get("cnf")
    if not isinstance(cnf, dict) or len(cnf) != 1:
        raise ValueError("cnf is not an object with exactly one member")
    (member, value), = cnf.items()
    if member not in ("jkt", "x5t#S256") or not isinstance(value, str):
        raise ValueError("cnf holds neither jkt nor x5t#S256 as a string")
    return _check_cap(claims.get("cap"))


def _binding(bind: Any, cnf: dict) -> dict:
    """§4.4: the three accepted forms of bind and cnf, else 401 invalid_token (step 10)."""
    (member, value), = cnf.items()
    if member == "jkt" and bind in (None, "DPoP") and _is_b64url_32(value):
        return {"mode": "DPoP", "jkt": value}
    if member == "x5t#S256" and bind in (None, "mTLS") and _is_b64url_32(value):
        return {"mode": "mTLS", "x5t#S256": value}
    if member == "jkt" and bind == "mTLS" and _LEGACY_JKT.fullmatch(value):
        # Legacy form (binding.md §6.6): the same 32 bytes, named as x5t#S256 names them.
        from .jose import b64url

        return {"mode": "mTLS", "x5t#S256": b64url(bytes.fromhex(value)), "legacy": True}
    raise _bad_token("bind and cnf disagree")


def verify_token(token: str, now: int, jwks: dict, issuer: str, audience: str,
                 clock_skew: int) -> dict:
    """Token validation at a gateway, token.md §4.5 steps 1-10.

    Returns {"sub", "cap", "trace", "binding", "claims", "header"}; raises Refusal.
    Step 3's refresh of the key set is the caller's business: `jwks` is the current copy.
    """
    if len(token.encode("utf-8")) > MAX_TOKEN_BYTES:  # step 1
        raise _bad_request("the token is over 8192 bytes")
    try:  # step 2
        header, claims, _, _ = _split_jws(token)
        _check_token_header(header)
    except ValueError as error:
        raise _bad_token(f"encoding or header: {error}") from None
    keys = [k for k in jwks.get("keys", []) if isinstance(k, dict) and k.get("kid") == header["kid"]]
    if len(keys) != 1:  # step 3
        raise _bad_token("no key with this kid in the key set")
    key = keys[0]
    try:  # step 4
        key_alg = public_key_alg(key)
    except ValueError as error:
        raise _bad_token(f"unusable key: {error}") from None
    if key_alg != header["alg"] or not signature_verifies(key, key_alg, token):
        raise _bad_token("the signature does not verify under the key's algorithm")
    try:  # step 5
        cap = _check_claims(claims)
    except ValueError as error:
        raise _bad_token(f"claims: {error}") from None
    if claims["iss"] != issuer or claims["aud"] != audience:  # step 6
        raise _bad_token("wrong iss or aud")
    if not now <= claims["exp"] + clock_skew:  # step 7
        raise Refusal(401, "expired_token", "exp + clock_skew has passed")
    if not claims["iat"] <= now + clock_skew:  # step 8
        raise _bad_token("iat is in the future")
    if not 1 <= claims["exp"] - claims["iat"] <= 60:  # step 9
        raise _bad_token("the lifetime is not 1 to 60 seconds")
    binding = _binding(header.get("bind"), claims["cnf"])  # step 10
    return {"sub": claims["sub"], "cap": cap, "trace": claims["trace"], "binding": binding,
            "claims": claims, "header": header}


# --- binding.md §6.1-§6.2 DPoP proofs ---------------------------------------------------

MAX_PROOF_BYTES = 4096
_URI = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#]*)"
                  r"(?P<path>[^?#]*)(?:\?[^#]*)?(?:#.*)?", re.DOTALL)
_DEFAULT_PORT = {"https": "443", "http": "80"}


def _uri_key(uri: str) -> tuple[str, str, str, str] | None:
    """(scheme, host, port, path) of an absolute http/https URI, per §6.1 step 4; None if unusable."""
    m = _URI.fullmatch(uri)
    if m is None:
        return None
    scheme = m["scheme"].lower()
    authority = m["authority"]
    if scheme not in _DEFAULT_PORT or "@" in authority or authority == "":
        return None  # not http(s), or user information
    if authority.startswith("["):
        host, bracket, rest = authority.partition("]")
        host += bracket
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:]
    else:
        host, _, port = authority.partition(":")
    if port and not port.isdigit():
        return None
    # §6.1 step 4 is silent on leading zeros ("0443"): compared as written, so refused.
    if port == _DEFAULT_PORT[scheme]:
        port = ""
    return scheme, host.lower(), port, m["path"]


def _htu_names(htu: str, url: str) -> bool:
    expected = strip_query(url)
    if htu == expected and _uri_key(htu) is not None:
        return True
    a, b = _uri_key(htu), _uri_key(expected)
    return a is not None and a == b


def verify_proof(proof: str | None, method: str, url: str, access_token: str, bound_jkt: str,
                 now_ms: int, max_age_s: int = 5) -> dict:
    """A resource request's DPoP proof, binding.md §6.1 steps 2-9 (no server nonces), `ath` required.

    `url` is the route's public_origin followed by the request path. Returns {"jti", "jkt",
    "claims"}; raises Refusal 401 invalid_proof.
    """
    if proof is None:  # step 1: no DPoP header
        raise _bad_proof("no DPoP proof")
    try:  # step 2
        if len(proof.encode("utf-8")) > MAX_PROOF_BYTES:
            raise ValueError("the proof is over 4096 bytes")
        header, claims, _, _ = _split_jws(proof)
        if "crit" in header or "b64" in header:
            raise ValueError("crit or b64 in the header")
        if header.get("typ") != "dpop+jwt":
            raise ValueError("typ is not dpop+jwt")
        jwk = header.get("jwk")
        alg = public_key_alg(jwk)
        if header.get("alg") != alg:
            raise ValueError("alg is not the algorithm of jwk")
        if not signature_verifies(jwk, alg, proof):
            raise ValueError("the signature does not verify with jwk")
    except ValueError as error:
        raise _bad_proof(f"encoding, header or signature: {error}") from None
    if claims.get("htm") != method:  # step 3
        raise _bad_proof("htm is not the request method")
    htu = claims.get("htu")
    if not isinstance(htu, str) or not _htu_names(htu, url):  # step 4
        raise _bad_proof("htu does not name the request")
    iat = claims.get("iat")  # step 5
    max_age_ms = max_age_s * 1000
    if not _is_int(iat, -(2**63), 2**63 - 1) or not (
            iat * 1000 + 999 >= now_ms - max_age_ms and iat * 1000 <= now_ms + max_age_ms):
        raise _bad_proof("iat is not a JSON integer within the maximum age")
    jti = claims.get("jti")  # step 6
    if not isinstance(jti, str) or not 1 <= len(jti) <= 128:
        raise _bad_proof("jti is not a string of 1-128 characters")
    if "nonce" in claims and not isinstance(claims["nonce"], str):
        raise _bad_proof("nonce is not a string")
    # step 7: server nonces are off here.
    proof_ath = claims.get("ath")  # step 8, ath required (§6.2)
    if not isinstance(proof_ath, str) or not hmac.compare_digest(
            proof_ath.encode("utf-8"), ath_of(access_token).encode("ascii")):
        raise _bad_proof("ath is missing or is not the hash of the token")
    jkt = jwk_thumbprint(jwk)  # step 9
    if not hmac.compare_digest(jkt.encode("ascii"), bound_jkt.encode("utf-8")):
        raise _bad_proof("the proof's key is not the key the token is bound to")
    return {"jti": jti, "jkt": jkt, "claims": claims}
