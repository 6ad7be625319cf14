"""An E-Key client (issuer §7, gateway §9), written from docs/spec only.

It asks the issuer's `POST /token` for a token, authenticating with a registered DPoP
key (§7.2.2) or a client certificate (§7.2.1), and calls through the gateway with the
token and either a fresh DPoP proof (§6.1, §6.2) or the client certificate (§6.5),
answering a `use_dpop_nonce` challenge once (§6.3). HTTP/2 over TLS via httpx.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from .jose import DPoPKey, decode_jws, strip_query


class EKeyError(Exception):
    """A refusal by the issuer (§7.7) or the gateway (§9.10)."""

    def __init__(self, status: int, error: str | None, description: str | None,
                 response: httpx.Response | None = None):
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description
        self.response = response

    @property
    def www_authenticate(self) -> str | None:
        return self.response.headers.get("www-authenticate") if self.response is not None else None

    @classmethod
    def from_response(cls, response: httpx.Response) -> "EKeyError":
        """Read `{"error", "error_description"}`; a body that is not that keeps error None."""
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            body = {}
        if not isinstance(body, dict):
            body = {}
        return cls(response.status_code, body.get("error"), body.get("error_description"), response)


@dataclass
class Token:
    """The 201 answer of `POST /token` (§7.6)."""

    token: str
    token_type: str
    expires_in: int
    expires_at: int
    trace: str
    cnf: dict
    kid: str
    raw: dict = field(repr=False, default_factory=dict)

    @property
    def header(self) -> dict:
        """The token's protected header, decoded, not verified."""
        return decode_jws(self.token)[0]

    @property
    def claims(self) -> dict:
        """The token's claims, decoded, not verified (the gateway verifies)."""
        return decode_jws(self.token)[1]


def tls_context(ca: str, cert: tuple[str, str] | None = None) -> ssl.SSLContext:
    """TLS trusting only the stack's CA, with an optional client certificate (cert, key)."""
    context = ssl.create_default_context(cafile=ca)
    if cert is not None:
        context.load_cert_chain(cert[0], cert[1])
    return context


class EKeyClient:
    """Obtains tokens and calls through a gateway.

    `dpop_key` is the key proofs are signed with (and, for a registered client, the key
    the issuer knows); `cert` is a (certificate, key) pair presented on every connection.
    """

    def __init__(self, token_endpoint: str, *, ca: str, dpop_key: DPoPKey | None = None,
                 cert: tuple[str, str] | None = None, timeout: float = 10.0):
        self.token_endpoint = token_endpoint
        self.dpop_key = dpop_key
        self.http = httpx.Client(http2=True, verify=tls_context(ca, cert), timeout=timeout)
        self.nonces: dict[str, str] = {}  # origin -> last DPoP-Nonce it sent (§6.3)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "EKeyClient":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # §7: the issuer -------------------------------------------------------------------

    def request_token(self, action: str, audience: str, *, limit: int = 1, ttl: int | None = None,
                      bind: str = "DPoP", scope: str | None = None, subcap: list[str] | None = None,
                      sub: str | None = None, send_jwk: bool = False,
                      prove: bool | None = None, proof: str | None = None) -> Token:
        """`POST /token` (§7.1) for one capability; raises EKeyError on any refusal.

        A proof by `dpop_key` (sent whenever there is one, unless prove=False)
        authenticates a registered client (§7.2.2) and, with bind DPoP, binds the token;
        the client certificate authenticates too (§7.2.1) and binds with bind mTLS (§7.3).
        `send_jwk` adds `jwk` to the body; with prove=False that is §7.3's third row.
        `proof` sends that proof instead of a fresh one (to test replays).
        """
        cap: dict[str, Any] = {"action": action, "limit": limit}
        if scope is not None:
            cap["scope"] = scope
        if subcap:
            cap["subcap"] = list(subcap)
        body: dict[str, Any] = {"aud": audience, "cap": cap, "bind": bind}
        if ttl is not None:
            body["ttl"] = ttl
        if sub is not None:
            body["sub"] = sub
        headers = {"content-type": "application/json"}
        if send_jwk and self.dpop_key is not None:
            body["jwk"] = self.dpop_key.public_jwk
        if proof is not None:
            headers["dpop"] = proof
        elif self.dpop_key is not None and prove is not False:
            # §6.1 / §7.2.2: htm POST, htu = issuer_url + /token; no ath, no nonce.
            headers["dpop"] = self.dpop_key.proof("POST", self.token_endpoint)
        response = self.http.post(self.token_endpoint, content=json.dumps(body), headers=headers)
        if response.status_code != 201:
            raise EKeyError.from_response(response)
        answer = response.json()
        return Token(token=answer["token"], token_type=answer["token_type"],
                     expires_in=answer["expires_in"], expires_at=answer["expires_at"],
                     trace=answer["trace"], cnf=answer["cnf"], kid=answer["kid"], raw=answer)

    # §9: the gateway ------------------------------------------------------------------

    def call(self, method: str, url: str, token: Token | str, *, content: bytes | str | None = None,
             headers: dict[str, str] | None = None, proof: str | None = None,
             scheme: str | None = None) -> httpx.Response:
        """Make one request through the gateway; return the upstream's answer or raise EKeyError.

        A DPoP-bound token gets a fresh proof (htm, htu, iat, jti, ath) unless `proof` is
        given; a 401 `use_dpop_nonce` with `DPoP-Nonce` is retried once with that nonce.
        An mTLS-bound token relies on the client certificate of this client.
        """
        text = token.token if isinstance(token, Token) else token
        dpop_bound = "jkt" in (token.cnf if isinstance(token, Token) else decode_jws(text)[1]["cnf"])
        if scheme is None:
            scheme = token.token_type if isinstance(token, Token) else ("DPoP" if dpop_bound else "EKey")
        origin = _origin(url)

        def send(nonce: str | None) -> httpx.Response:
            request_headers = dict(headers or {})
            request_headers["authorization"] = f"{scheme} {text}"
            if proof is not None:
                request_headers["dpop"] = proof
            elif dpop_bound:
                if self.dpop_key is None:
                    raise ValueError("a DPoP-bound token needs dpop_key")
                request_headers["dpop"] = self.dpop_key.proof(method, url, token=text, nonce=nonce)
            return self.http.request(method, url, content=content, headers=request_headers)

        response = send(self.nonces.get(origin))
        if (response.status_code == 401 and proof is None and dpop_bound
                and "dpop-nonce" in response.headers and _error(response) == "use_dpop_nonce"):
            self.nonces[origin] = response.headers["dpop-nonce"]
            response = send(self.nonces[origin])  # §6.3: retry once with the server's nonce
        if "dpop-nonce" in response.headers:
            self.nonces[origin] = response.headers["dpop-nonce"]
        if response.status_code >= 400 and response.headers.get("content-type", "").startswith("application/json") \
                and _error(response) is not None:
            raise EKeyError.from_response(response)
        return response

    def proof_for(self, method: str, url: str, token: Token | str, **extra: Any) -> str:
        """A proof for a resource request, for tests that want to replay or alter one."""
        assert self.dpop_key is not None
        text = token.token if isinstance(token, Token) else token
        return self.dpop_key.proof(method, url, token=text, **extra)


def _origin(url: str) -> str:
    parts = urlsplit(strip_query(url))
    return f"{parts.scheme}://{parts.netloc}".lower()


def _error(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None
