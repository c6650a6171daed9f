"""A tiny HTTP(S) server on loopback whose answers a test writes byte by byte.

The emulator answers like Delix; these tests need what no well-behaved server does: an answer
cut off in the middle, a TLS stream broken after the request arrived, a certificate nobody
trusts. :class:`RawServer` reads each request whole (so the test knows it reached the server:
applied, charged) and hands the socket to the test's ``reply``. :func:`self_signed` makes the
certificate for ``127.0.0.1`` with ``cryptography`` (a dependency of ``pypdf[crypto]``).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Reply = Callable[[socket.socket, str], None]


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate (its own CA) for ``127.0.0.1`` and its key, as PEM files in ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def answer_json(sock: socket.socket, status: int, payload: Any) -> None:
    """A whole, well-formed answer; the connection is closed after it."""
    body = json.dumps(payload).encode()
    head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    sock.sendall(head.encode() + b"Connection: close\r\n\r\n" + body)


def answer_cut_off(sock: socket.socket, status: int = 201) -> None:
    """An answer that promises 400 bytes and stops after 16: the connection dropped mid-answer."""
    sock.sendall(
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n".encode()
        + b'{"data": {"uuid"'
    )


def break_tls(sock: socket.socket) -> None:
    """An application-data record that does not decrypt, written under the TLS layer."""
    os.write(sock.fileno(), b"\x17\x03\x03\x00\x10" + b"\x00" * 16)


class RawServer:
    """Accepts connections on loopback, reads each request whole, then lets ``reply`` answer.

    ``received`` lists the request lines of the requests that arrived whole. With ``tls`` the
    accepted sockets are wrapped first; a client that refuses the certificate never gets to
    send, and nothing is recorded.
    """

    def __init__(self, reply: Reply, *, tls: ssl.SSLContext | None = None) -> None:
        self._reply = reply
        self._tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.received: list[str] = []
        scheme = "https" if tls else "http"
        self.base_url = f"{scheme}://127.0.0.1:{self._listener.getsockname()[1]}/v1"

    def __enter__(self) -> RawServer:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return  # closed by __exit__
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            sock = self._tls.wrap_socket(raw, server_side=True) if self._tls else raw
            with sock:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                length = next(
                    (
                        int(line.split(":", 1)[1])
                        for line in lines
                        if line.lower().startswith("content-length:")
                    ),
                    0,
                )
                while len(body) < length:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    body += chunk
                self.received.append(lines[0])
                self._reply(sock, lines[0])
        except (OSError, ssl.SSLError):
            pass  # the client refused the handshake or went away: nothing was received


def refused_connection(monkeypatch: Any, conn_id: str, *, password: str, **extra: Any) -> int:
    """Point connection ``conn_id`` at a loopback port nothing listens on (every connect is
    refused: nothing can reach a server, so nothing can have been applied); returns the port."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port: int = closed.getsockname()[1]
    connection = {"conn_type": "delix", "host": f"http://127.0.0.1:{port}/v1", "password": password}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({**connection, "extra": extra}))
    return port
