"""ekey_py: a second E-Key client, in Python, built from docs/spec/ alone.

No Swift source of the E-Key client was read to write it; where the specification
left something open, the choice made is marked in a comment naming the section.
"""

from .client import EKeyClient, EKeyError, Token, tls_context
from .jose import DPoPKey, ath, b64url, b64url_decode, certificate_thumbprint, decode_jws, jwk_thumbprint

__all__ = ["EKeyClient", "EKeyError", "Token", "tls_context", "DPoPKey", "ath", "b64url",
           "b64url_decode", "certificate_thumbprint", "decode_jws", "jwk_thumbprint"]
