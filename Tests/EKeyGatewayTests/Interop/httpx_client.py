#!/usr/bin/env python3
"""A DPoP client written with httpx (HTTP/2) and joserfc, calling through the gateway.

  httpx_client.py keygen KEYFILE                       -> prints the public JWK (JSON)
  httpx_client.py call KEYFILE CAFILE URL HTU TOKEN BODY   -> prints {"status", "http_version", "body"}
"""
import base64
import hashlib
import json
import secrets
import sys
import time
import warnings

import httpx
from joserfc import jws
from joserfc.jwk import ECKey

warnings.simplefilter("ignore")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def keygen(path):
    key = ECKey.generate_key("P-256")
    with open(path, "w") as handle:
        json.dump(key.as_dict(private=True), handle)
    print(json.dumps(key.as_dict(private=False)))


def call(path, ca, url, htu, token, body):
    with open(path) as handle:
        key = ECKey.import_key(json.load(handle))
    public = key.as_dict(private=False)
    proof = jws.serialize_compact(
        {"typ": "dpop+jwt", "alg": "ES256", "jwk": public},
        json.dumps({
            "jti": secrets.token_urlsafe(16), "htm": "POST", "htu": htu, "iat": int(time.time()),
            "ath": b64url(hashlib.sha256(token.encode()).digest()),
        }),
        key,
        algorithms=["ES256"],
    )
    with httpx.Client(http2=True, verify=ca) as client:
        response = client.post(url, content=body, headers={"Authorization": "DPoP " + token, "DPoP": proof})
    print(json.dumps({"status": response.status_code, "http_version": response.http_version, "body": response.text}))


if __name__ == "__main__":
    if sys.argv[1] == "keygen":
        keygen(sys.argv[2])
    else:
        call(*sys.argv[2:8])
