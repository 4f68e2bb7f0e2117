"""A small local HTTP server in a thread: the collector's /metrics and the scheduler's /load.

Bound to 127.0.0.1 by default (these endpoints have no authentication); port 0 picks a free
port (`LocalHTTPServer.port` gives it). Request bodies are bounded and handler errors become a
400 with the message, never a dead server thread.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pyctl.errors import ConfigError, ICPNError

MAX_BODY = 64 * 1024
log = logging.getLogger("pyctl.httpd")


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


Handler = Callable[[bytes], Response]
"""A route handler: request body (empty for GET) -> response."""


def json_body(body: bytes, where: str) -> Any:
    """A request's JSON body; ConfigError naming `where` (a 400) when it is not JSON."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(where, f"body is not JSON: {e}") from None


def json_ok(obj: Any) -> Response:
    """A 200 carrying `obj` as JSON."""
    return Response(200, (json.dumps(obj) + "\n").encode(), "application/json")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    routes: Mapping[tuple[str, str], Handler] = {}


class _V6Server(_Server):
    address_family = socket.AF_INET6


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        handler = self.server.routes.get((method, path))
        if handler is None:
            known = sorted(p for m, p in self.server.routes if m == method)
            status = 404 if known or method == "GET" else 405
            self._send(Response(status, f"no {method} {path}; try {', '.join(known)}\n".encode()))
            return
        body = b""
        if method == "POST":
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY:
                self._send(Response(413 if length > 0 else 400, b"bad Content-Length\n"))
                return
            body = self.rfile.read(length)
        try:
            response = handler(body)
        except ICPNError as e:
            response = Response(400, f"{e}\n".encode())
        self._send(response)

    def do_GET(self) -> None:  # http.server's naming
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class LocalHTTPServer:
    """Serve `routes` ((method, path) -> handler) from a background thread until `stop()`."""

    def __init__(
        self, routes: Mapping[tuple[str, str], Handler], bind: str = "127.0.0.1", port: int = 0
    ) -> None:
        cls = _V6Server if ":" in bind else _Server
        try:
            self._httpd = cls((bind, port), _RequestHandler)
        except OSError as e:
            raise ICPNError(f"HTTP server: cannot bind {bind} port {port}: {e.strerror}") from None
        self._httpd.routes = dict(routes)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self.bind = bind

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"http://{host}:{self.port}"

    def start(self) -> LocalHTTPServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()
