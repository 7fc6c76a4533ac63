"""A Docker registry token server (the `WWW-Authenticate: Bearer realm=...` flow) for tests.

It signs RS256 JWTs with a self-signed certificate that the registry trusts through
`auth.token.rootcertbundle`, checks basic-auth credentials, and grants the requested
actions. `lifetime` makes tokens die early *for the registry* (their `exp` is set so the
registry's 60 s clock-skew leeway runs out after `lifetime` seconds) while `expires_in`
tells the client what it wants: a token that expires mid-run, seen from the registry.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from flows.demo.loopback import LoopbackServer, QuietHandler, loopback_tls

SERVICE = "regsweep-test-registry"
ISSUER = "regsweep-test-token-server"
REGISTRY_LEEWAY = 60  # Distribution accepts a token until exp + 60 s


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer(LoopbackServer):
    """Issue tokens to `username`/`password` over https, as real token services do; write the
    registry's cert bundle to `cert_path` and the CA clients must trust to `ca_file`
    (`SSL_CERT_FILE`)."""

    cert_path: Path
    username: str = "ci"
    password: str = "s3cret"
    lifetime: float = 300.0  # seconds the registry accepts a token
    expires_in: int = 300  # what the token response tells the client
    issued: list[str] = field(default_factory=list)  # scopes of the tokens issued
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = dt.datetime.now(dt.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        # https for the realm: a fresh certificate for 127.0.0.1; clients trust `ca_file`.
        self._tls, pem = loopback_tls()
        self.ca_file = self.cert_path.with_name(self.cert_path.stem + "-tls-ca.pem")
        self.ca_file.write_bytes(pem)

    def tls_context(self) -> ssl.SSLContext | None:
        return self._tls

    def registry_config(self) -> str:
        """The `auth:` section for the registry's configuration."""
        return (
            "auth:\n  token:\n"
            f"    realm: {self.url}/token\n"
            f"    service: {SERVICE}\n"
            f"    issuer: {ISSUER}\n"
            f"    rootcertbundle: {self.cert_path}\n"
        )

    def token(self, scopes: list[str]) -> str:
        header = {
            "typ": "JWT",
            "alg": "RS256",
            "x5c": [base64.b64encode(self._cert.public_bytes(serialization.Encoding.DER)).decode()],
        }
        now = int(time.time())
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": self.username,
            "aud": SERVICE,
            "iat": now,
            "nbf": now - 1,
            "exp": now + int(self.lifetime) - REGISTRY_LEEWAY,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        server = self
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != "/token":
                    self.reply_json(404, {"error": "not found"})
                elif self.headers.get("Authorization") != expected:
                    self.reply_json(401, {"error": "bad credentials"})
                else:
                    scopes = parse_qs(parts.query).get("scope", [])
                    with server._lock:
                        server.issued.extend(scopes)
                    token = server.token(scopes)
                    self.reply_json(200, {"token": token, "expires_in": server.expires_in})

        return Handler
