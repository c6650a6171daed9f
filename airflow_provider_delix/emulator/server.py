"""HTTP transport: a stdlib ``ThreadingHTTPServer`` speaking HTTP/1.1 with keep-alive.

Why the stdlib: no dependency, one thread per connection (plenty for tens of concurrent
clients and tens of thousands of requests), and full control of the socket, which is what a
"dropped connection" fault needs: the handler just closes it without writing a byte.
Responses are written in one ``send`` with an exact ``Content-Length`` and Nagle disabled, so
keep-alive clients never wait on delayed ACKs.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from airflow_provider_delix.emulator.admin import handle_admin
from airflow_provider_delix.emulator.app import EmulatorApp, Request, Response

MAX_BODY = 64 * 1000 * 1000  # 5 PDFs of 8 MB plus multipart framing
API_PREFIX = "/v1"
ADMIN_PREFIX = "/_emulator"
_REASONS = {207: "Multi-Status", 422: "Unprocessable Content", 429: "Too Many Requests"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.app.config.log_requests:
            sys.stderr.write(f"delix-emulator: {self.address_string()} {format % args}\n")

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._send(Response(411, {"message": "Length Required"}), close=True)
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self._send(Response(413, {"message": "Payload Too Large"}), close=True)
            return None
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        body = self._read_body()
        if body is None:
            return
        app = self.server.app
        url = urlsplit(self.path)
        try:
            if url.path.startswith(ADMIN_PREFIX + "/"):
                response: Response | None = handle_admin(
                    app, self.command, url.path[len(ADMIN_PREFIX) :], body
                )
            elif url.path == API_PREFIX or url.path.startswith(API_PREFIX + "/"):
                host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
                request = Request(
                    method=self.command,
                    path=url.path[len(API_PREFIX) :],
                    query=dict(parse_qsl(url.query)),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    base_url=f"http://{host}{API_PREFIX}",
                )
                response = app.handle(request)
            else:
                response = Response(404, {"message": "Not Found"})
        except Exception as exc:  # an emulator bug must answer, not kill the connection thread
            app.stats.count_error()
            # A plain 500 (no ErrorEnum): a transient server failure a client may retry. The
            # spec's GENERAL_EXCEPTION is a 422 refusal, which only the injected fault gives.
            response = Response(500, {"message": f"Server Error (emulator bug: {exc!r})"})
        if response is None:  # injected fault: close the socket without any answer
            self.close_connection = True
            return
        self._send(response)

    def _send(self, response: Response, *, close: bool = False) -> None:
        body = response.body
        payload = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        reason = _REASONS.get(response.status) or self.responses.get(response.status, ("",))[0]
        lines = [
            f"HTTP/1.1 {response.status} {reason}",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            *(f"{k}: {v}" for k, v in response.headers.items()),
        ]
        if close:
            lines.append("Connection: close")
            self.close_connection = True
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            self.wfile.write(head + payload)
        except OSError:  # the client gave up (e.g. its timeout was shorter than our latency)
            self.close_connection = True
            return
        self.log_request(response.status, len(payload))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], app: EmulatorApp) -> None:
        self.app = app
        super().__init__(address, _Handler)


class EmulatorServer:
    """An ``EmulatorApp`` bound to a socket; ``port=0`` picks a free port."""

    def __init__(self, app: EmulatorApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self._httpd = _Server((host, port), app)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        host = str(self._httpd.server_address[0])
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}{API_PREFIX}"

    def serve_forever(self) -> None:
        self._httpd.serve_forever(poll_interval=0.05)  # also bounds how long stop() waits

    def start(self) -> None:
        """Serve on a background daemon thread."""
        self._thread = threading.Thread(target=self.serve_forever, name="delix-emulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self.app.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
