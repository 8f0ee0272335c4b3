"""A webhook goes to the address the SSRF check accepted, even if the name resolves elsewhere a moment
later (DNS rebinding): real loopback HTTP(S) servers, and a resolver that changes its answer after the
first lookup."""

from __future__ import annotations

import datetime as dt
import http.server
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from export_engine.db.models import ExportEvent, WebhookEndpoint
from export_engine.notifications.ssrf import parse_networks
from export_engine.notifications.webhooks import send

HOST = "hook.rebind.test"
CHECKED, REBOUND = "127.0.0.1", "127.0.0.2"  # only the first is allowed: the second is "internal"
ALLOWED = parse_networks(f"{CHECKED}/32")


class Receiver:
    """An HTTP(S) server on one loopback address that records each request's Host header and SNI."""

    def __init__(self, address: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        self.hosts: list[str] = []
        self.paths: list[str] = []
        self.sni: list[str | None] = []
        hosts, paths = self.hosts, self.paths

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["content-length"]))
                hosts.append(self.headers["host"])
                paths.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((address, port), Handler)
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: self.sni.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def rebinding_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """HOST answers CHECKED to the first lookup and REBOUND to every later one; returns the lookups."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host != HOST:
            return real(host, port, *args, **kwargs)
        answer = CHECKED if not lookups else REBOUND
        lookups.append(answer)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (answer, int(port)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


def _port_free_on_both() -> int:
    for _ in range(20):
        with socket.socket() as first:
            first.bind((CHECKED, 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind((REBOUND, port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no port free on both loopback addresses")


def _receivers(
    tls: tuple[ssl.SSLContext, ssl.SSLContext] | None = None,
) -> Iterator[tuple[int, Receiver, Receiver]]:
    port = _port_free_on_both()
    checked = Receiver(CHECKED, port, tls[0] if tls else None)
    rebound = Receiver(REBOUND, port, tls[1] if tls else None)
    try:
        yield port, checked, rebound
    finally:
        checked.close()
        rebound.close()


def _send(url: str, client: httpx.Client):  # type: ignore[no-untyped-def]
    endpoint = WebhookEndpoint(
        id="ep_test", owner="demo-user-1", url=url, events=[], secret="whsec_" + "A" * 32
    )
    event = ExportEvent(
        id="evt_test", type="export.completed", owner="demo-user-1", reference_id="r",
        occurred_at=datetime.now(UTC), payload={"reference_id": "r"},
    )  # fmt: skip
    return send(client, endpoint, event, allowed=ALLOWED, now=datetime.now(UTC), timeout=10)


def test_the_request_goes_to_the_checked_address_not_a_second_answer(rebinding_dns):
    for port, checked, rebound in _receivers():
        with httpx.Client() as client:
            attempt = _send(f"http://{HOST}:{port}/hook", client)
        assert attempt.delivered, attempt
        assert rebinding_dns == [CHECKED]  # one lookup: the check's; httpx resolved nothing
        assert checked.hosts == [f"{HOST}:{port}"]  # the receiver still sees the name it was given
        assert rebound.hosts == []


def _certificate(name: str, tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A self-signed certificate for `name`: a server context using it, and the file to trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    return server, cert_path


@pytest.mark.parametrize("cert_name", [HOST, "someone-else.test"])
def test_https_keeps_sni_and_checks_the_certificate_against_the_name(rebinding_dns, tmp_path, cert_name):
    server_tls, cert_path = _certificate(cert_name, tmp_path)
    (tmp_path / "rebound").mkdir()
    rebound_tls, _ = _certificate(HOST, tmp_path / "rebound")  # never trusted: never reached either
    client_tls = ssl.create_default_context(cafile=str(cert_path))
    for port, checked, rebound in _receivers((server_tls, rebound_tls)):
        with httpx.Client(verify=client_tls) as client:
            attempt = _send(f"https://{HOST}:{port}/hook", client)
        assert checked.sni == [HOST]  # SNI is the name, not the pinned address
        assert rebound.sni == [] and rebound.hosts == []
        if cert_name == HOST:
            assert attempt.delivered, attempt
            assert checked.hosts == [f"{HOST}:{port}"]
        else:  # verified against the name: a certificate for another name is refused, and retried later
            assert not attempt.delivered and attempt.retry
            assert f"Hostname mismatch, certificate is not valid for '{HOST}'" in (attempt.error or "")
            assert checked.hosts == []


def test_behind_an_egress_proxy_the_proxy_gets_the_name(rebinding_dns, monkeypatch):
    """With HTTP(S)_PROXY set, httpx sends to the proxy, which resolves the name itself: the URL goes
    unpinned (a pinned https URL would fail the certificate check at the tunnel)."""
    for port, checked, rebound in _receivers():
        # The receiver on the checked address plays the proxy: a proxy gets the absolute URL.
        monkeypatch.setenv("HTTP_PROXY", f"http://{CHECKED}:{port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        with httpx.Client() as client:
            attempt = _send(f"http://{HOST}:{port}/hook", client)
        assert attempt.delivered, attempt
        assert checked.paths == [f"http://{HOST}:{port}/hook"]
        assert rebinding_dns == [CHECKED]  # the check's lookup; the proxy resolves for the request
        assert rebound.hosts == []
