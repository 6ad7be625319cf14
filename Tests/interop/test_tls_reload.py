"""Certificate rotation without a restart, as Kubernetes, cert-manager and SPIRE do it.

A real stack is started, then its certificates are replaced on disk while requests keep
coming: new handshakes must see the new certificate, no request may fail, and a connection
opened before the rotation must keep working. The gateway reads its pair through a
Kubernetes Secret volume's layout (`tls.crt -> ..data/tls.crt`, `..data -> ..2026_…`,
swapped atomically) and finds the change by its periodic check; the publisher's pair is
renamed over in place and SIGHUP makes it reload at once.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import re
import signal
import socket
import ssl
import threading
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stack import Stack, new_stack

RELOAD_CHECK_SECONDS = 10  # the services' periodic check of their TLS files


def issue_server_pair(pki: Path, common_name: str) -> tuple[bytes, bytes]:
    """A new server certificate for localhost and 127.0.0.1 from the stack's CA, and its key (PEM)."""
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return (certificate.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def served_certificate(stack: Stack, port: int) -> str:
    """SHA-256 of the certificate a new TLS handshake on `port` presents."""
    context = ssl.create_default_context(cafile=stack.ca)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


def fingerprint(pem: bytes) -> str:
    return hashlib.sha256(x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)).hexdigest()


def pid_of(stack: Stack, service: str) -> int:
    """The pid of the service's latest start (a stack started twice reports both)."""
    for line in reversed(stack.output):
        found = re.search(rf"started {service} \(ekey-\w+, pid (\d+)\)", line)
        if found:
            return int(found.group(1))
    raise AssertionError(f"no pid for {service} in the output of ekey up")


class Load:
    """Requests on fresh connections (each a new handshake) from two threads, plus one
    HTTP/1.1 keep-alive connection opened before the rotation and used throughout."""

    def __init__(self, stack: Stack, port: int, path: str):
        self.stack, self.port, self.path = stack, port, path
        self.failures: list[str] = []
        self.answered = 0
        self.seen: set[str] = set()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.context = ssl.create_default_context(cafile=stack.ca)
        self.context.set_alpn_protocols(["http/1.1"])
        self.kept = self._connect()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]

    def _connect(self) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        return self.context.wrap_socket(raw, server_hostname="localhost")

    def exchange(self, connection: ssl.SSLSocket) -> int:
        connection.sendall(f"GET {self.path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = connection.recv(65536)
            if not chunk:
                raise ConnectionError("closed before the response head")
            response += chunk
        head, _, body = response.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        while len(body) < length:
            chunk = connection.recv(65536)
            if not chunk:
                raise ConnectionError("closed inside the response body")
            body += chunk
        return int(head.split(b" ", 2)[1])

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                with self._connect() as connection:
                    certificate = hashlib.sha256(connection.getpeercert(binary_form=True)).hexdigest()
                    status = self.exchange(connection)
                with self.lock:
                    self.answered += 1
                    self.seen.add(certificate)
                if status >= 500:
                    self.failures.append(f"status {status}")
            except Exception as error:  # every failure is a finding
                self.failures.append(repr(error))

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)
        self.kept.close()


def wait_for_certificate(stack: Stack, port: int, expected: str, seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if served_certificate(stack, port) == expected:
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"port {port} still serves the old certificate after {seconds} s")


@pytest.fixture(scope="module")
def rotating_stack():
    """A stack whose gateway reads its pair through a Secret volume's symlinks."""
    running = new_stack()
    running.start()
    running.stop()
    secret = running.folder / "gateway-tls"
    first = secret / "..2026_12_07_a"
    first.mkdir(parents=True)
    (first / "tls.crt").write_bytes((running.pki / "server.crt").read_bytes())
    (first / "tls.key").write_bytes((running.pki / "server.key").read_bytes())
    (secret / "..data").symlink_to(first.name)
    (secret / "tls.crt").symlink_to("..data/tls.crt")
    (secret / "tls.key").symlink_to("..data/tls.key")
    config = running.folder / "stack.yaml"
    lines = config.read_text().splitlines(keepends=True)[1:]  # keep the edits: drop the generated-file line
    text = "".join(lines)
    gateway_start = text.index("\ngateway:")
    gateway = text[gateway_start:].replace("cert: pki/server.crt, key: pki/server.key",
                                            "cert: gateway-tls/tls.crt, key: gateway-tls/tls.key", 1)
    config.write_text(text[:gateway_start] + gateway)
    with running:
        yield running


def test_gateway_picks_up_a_secret_volume_swap_without_dropping_a_request(rotating_stack):
    stack = rotating_stack
    port = stack.ports["gateway-port"]
    old = served_certificate(stack, port)
    certificate, key = issue_server_pair(stack.pki, "ekey rotated gateway")
    secret = stack.folder / "gateway-tls"
    with Load(stack, port, "/payments") as load:
        assert load.exchange(load.kept) == 401  # the kept connection works before the rotation
        time.sleep(0.5)
        second = secret / "..2026_12_07_b"
        second.mkdir()
        (second / "tls.crt").write_bytes(certificate)
        (second / "tls.key").write_bytes(key)
        (secret / "..data_tmp").symlink_to(second.name)
        os.rename(secret / "..data_tmp", secret / "..data")  # the atomic swap kubelet makes
        waited = wait_for_certificate(stack, port, fingerprint(certificate), RELOAD_CHECK_SECONDS + 5)
        time.sleep(0.5)
        assert load.exchange(load.kept) == 401  # the connection opened before the rotation still serves
    assert waited <= RELOAD_CHECK_SECONDS + 2
    assert not load.failures, load.failures[:5]
    assert load.answered > 20
    assert load.seen == {old, fingerprint(certificate)}
    assert any("TLS certificate reloaded" in line and "file check" in line for line in stack.output)
    # the expiry gauge follows the reload: the new certificate lives one day, the old one a year
    metrics = httpx.get(stack.admin_url("gateway", "/metrics")).text
    expiry = float(re.search(r'ekey_tls_certificate_expiry_seconds\{listener="gateway"\} (\S+)', metrics).group(1))
    assert 0 < expiry <= 86400


def test_publisher_reloads_on_sighup_and_refuses_a_mismatched_pair(rotating_stack):
    stack = rotating_stack
    port = stack.ports["jwks-port"]
    old = served_certificate(stack, port)
    publisher = pid_of(stack, "jwks")
    certificate, key = issue_server_pair(stack.pki, "ekey rotated publisher")

    # A certificate whose key has not arrived yet: refused, the old pair keeps serving.
    staged = stack.pki / "server.crt.new"
    staged.write_bytes(certificate)
    os.rename(staged, stack.pki / "server.crt")
    os.kill(publisher, signal.SIGHUP)
    time.sleep(1)
    assert served_certificate(stack, port) == old
    assert any("TLS certificate not reloaded" in line and "does not belong" in line for line in stack.output)

    # The key arrives; SIGHUP reloads at once (no wait for the periodic check).
    with Load(stack, port, "/.well-known/jwks.json") as load:
        time.sleep(0.3)
        staged = stack.pki / "server.key.new"
        staged.write_bytes(key)
        os.rename(staged, stack.pki / "server.key")
        os.kill(publisher, signal.SIGHUP)
        waited = wait_for_certificate(stack, port, fingerprint(certificate), 3)
        time.sleep(0.3)
        assert load.exchange(load.kept) == 200
    assert waited < 3
    assert not load.failures, load.failures[:5]
    assert fingerprint(certificate) in load.seen
