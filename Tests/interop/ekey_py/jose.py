"""JWS pieces for E-Key, written from docs/spec only (§2, §4.1, §6.1; RFC 7515, 7638, 9449).

`cryptography` supplies the ECDSA P-256 primitive; everything else (base64url, the
compact serialisation, the raw r||s signature, RFC 7638 thumbprints, DPoP proofs) is
assembled here by hand, as the specification describes it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 4648 §5, spec §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url decoding: URL-safe alphabet, no padding, zero trailing bits (§4.1)."""
    if "=" in text or any(c in "+/" for c in text) or len(text) % 4 == 1:
        raise ValueError(f"not strict base64url: {text[:20]!r}")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url(data) != text:  # non-zero unused bits give another canonical text
        raise ValueError("base64url with non-zero trailing bits")
    return data


def compact_json(value: Any) -> bytes:
    """JSON without whitespace, UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode_jws(jws: str) -> tuple[dict, dict, bytes]:
    """Split a compact JWS into (header, payload, signature) without verifying anything."""
    parts = jws.split(".")
    if len(parts) != 3:
        raise ValueError("a compact JWS has three parts")
    header = json.loads(b64url_decode(parts[0]))
    payload = json.loads(b64url_decode(parts[1]))
    return header, payload, b64url_decode(parts[2])


def ath(token: str) -> str:
    """base64url(SHA-256(token)) as sent after the scheme in Authorization (§6.2)."""
    return b64url(hashlib.sha256(token.encode("ascii")).digest())


def certificate_thumbprint(pem_path: str | Path) -> str:
    """`x5t#S256`: base64url(SHA-256(DER of the leaf certificate)) (§2.1, §6.5)."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(Path(pem_path).read_bytes())
    return b64url(hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest())


class DPoPKey:
    """An EC P-256 private key that signs ES256 JWS and DPoP proofs."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey):
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ValueError("only EC P-256 keys are supported")
        self._key = private_key

    @classmethod
    def from_pem(cls, pem: bytes | str | Path) -> "DPoPKey":
        """Load a PEM private key (PKCS#8 or SEC1) from bytes or a file path."""
        data = pem if isinstance(pem, bytes) else Path(pem).read_bytes()
        return cls(serialization.load_pem_private_key(data, password=None))

    @classmethod
    def generate(cls) -> "DPoPKey":
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_jwk(self) -> dict[str, str]:
        """The public JWK (kty, crv, x, y; 32-byte coordinates), no private members."""
        numbers = self._key.public_key().public_numbers()
        return {"kty": "EC", "crv": "P-256",
                "x": b64url(numbers.x.to_bytes(32, "big")),
                "y": b64url(numbers.y.to_bytes(32, "big"))}

    @property
    def thumbprint(self) -> str:
        """RFC 7638 SHA-256 thumbprint: required members in lexical order, no whitespace."""
        jwk = self.public_jwk
        canonical = compact_json({k: jwk[k] for k in ("crv", "kty", "x", "y")})
        return b64url(hashlib.sha256(canonical).digest())

    def sign_raw(self, signing_input: bytes) -> bytes:
        """ES256 signature as 64 bytes r || s (RFC 7518 §3.4), never DER."""
        der = self._key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def sign_jws(self, header: dict, payload: dict) -> str:
        """Compact JWS: b64url(header) . b64url(payload) . b64url(r||s)."""
        signing_input = f"{b64url(compact_json(header))}.{b64url(compact_json(payload))}"
        return f"{signing_input}.{b64url(self.sign_raw(signing_input.encode('ascii')))}"

    def proof(self, htm: str, htu: str, *, token: str | None = None, nonce: str | None = None,
              iat: int | None = None, jti: str | None = None) -> str:
        """A DPoP proof (§6.1): typ dpop+jwt, ES256, jwk; jti, htm, htu, iat, and ath when a token is given."""
        claims: dict[str, Any] = {
            "jti": jti or b64url(secrets.token_bytes(18)),
            "htm": htm,
            "htu": strip_query(htu),
            "iat": int(time.time()) if iat is None else iat,
        }
        if token is not None:
            claims["ath"] = ath(token)
        if nonce is not None:
            claims["nonce"] = nonce
        return self.sign_jws({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.public_jwk}, claims)


def strip_query(uri: str) -> str:
    """The URI without query and fragment, as `htu` wants it (RFC 9449 §4.2, spec §6.1)."""
    return uri.split("#", 1)[0].split("?", 1)[0]


def jwk_thumbprint(jwk: dict) -> str:
    """RFC 7638 thumbprint of a public EC or OKP JWK (for checking a proof's or issuer's key)."""
    required = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}[jwk["kty"]]
    return b64url(hashlib.sha256(compact_json({k: jwk[k] for k in required})).digest())


def verify_es256(jwk: dict, jws: str) -> bool:
    """Check an ES256 compact JWS against a public P-256 JWK (used by tests on proofs)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    head, body, sig = jws.split(".")
    raw = b64url_decode(sig)
    if len(raw) != 64:
        return False
    public = ec.EllipticCurvePublicNumbers(
        int.from_bytes(b64url_decode(jwk["x"]), "big"),
        int.from_bytes(b64url_decode(jwk["y"]), "big"), ec.SECP256R1()).public_key()
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public.verify(der, f"{head}.{body}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, binascii.Error, ValueError):
        return False
