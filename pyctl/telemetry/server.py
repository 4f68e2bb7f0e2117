"""The collector as a service: a UDP receiver thread feeding a `Collector`, and the HTTP
exporter (``/metrics`` in Prometheus text, ``/flows`` as JSON) on a local port.

``/metrics`` is prometheus_client's `generate_latest` over `CollectorServer.registry`, a registry
of the server's own (more collectors may be registered in it); the HTTP server is ICPN's.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
import time
from collections.abc import Callable

from pyctl import constants as C
from pyctl.errors import ConfigError, ICPNError
from pyctl.telemetry.config import DEFAULT_HTTP_PORT
from pyctl.telemetry.httpd import LocalHTTPServer, Response
from pyctl.telemetry.metrics import CONTENT_TYPE, exposition, registry_for
from pyctl.telemetry.state import Collector

log = logging.getLogger("pyctl.telemetry")


def _udp_socket(bind: str, port: int, rcvbuf: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(bind, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ConfigError("bind", f"{bind!r} is not an address: {e.strerror}") from None
    family, _, _, _, sockaddr = infos[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind(sockaddr)
    except OSError as e:
        sock.close()
        raise ICPNError(f"collector: cannot bind UDP {bind} port {port}: {e.strerror}") from None
    return sock


class CollectorServer:
    """UDP receiver (a thread) plus the HTTP exporter; `stop()` shuts both down cleanly."""

    def __init__(
        self,
        collector: Collector,
        bind: str = "::1",
        port: int = C.IFIT_REPORT_PORT,
        http_bind: str = "127.0.0.1",
        http_port: int | None = DEFAULT_HTTP_PORT,
        rcvbuf: int = 4 << 20,
    ) -> None:
        self.collector = collector
        self._stop = threading.Event()
        self.registry = registry_for(collector.snapshot)
        self._sock = _udp_socket(bind, port, rcvbuf)
        self.http: LocalHTTPServer | None = None
        if http_port is not None:
            try:
                self.http = LocalHTTPServer(self._routes(), http_bind, http_port)
            except ICPNError:
                self._sock.close()
                raise
        self._thread = threading.Thread(target=self._receive, name="ifit-collector", daemon=True)

    def _routes(self) -> dict[tuple[str, str], Callable[[bytes], Response]]:
        def metrics(_body: bytes) -> Response:
            return Response(200, exposition(self.registry), CONTENT_TYPE)

        def flows(_body: bytes) -> Response:
            body = json.dumps(self.collector.snapshot()).encode()
            return Response(200, body, "application/json")

        def health(_body: bytes) -> Response:
            return Response(200, b"ok\n")

        return {("GET", "/metrics"): metrics, ("GET", "/flows"): flows, ("GET", "/healthz"): health}

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def cpu_seconds(self) -> float | None:
        """CPU time the receive thread has used (None before start, after stop, or unknown)."""
        ident = self._thread.ident
        if ident is None or not self._thread.is_alive():
            return None
        try:
            return time.clock_gettime(time.pthread_getcpuclockid(ident))
        except (OSError, AttributeError):
            return None

    def start(self) -> CollectorServer:
        if self.http is not None:
            self.http.start()
        self._thread.start()
        return self

    def _receive(self) -> None:
        limit = self.collector.config.max_report_bytes
        buf = bytearray(limit + 1)  # one byte more: a longer datagram shows as too large
        view = memoryview(buf)
        sock = self._sock
        feed = self.collector.feed
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        # Drain without waiting (one syscall per datagram under load); poll only when empty.
        while not self._stop.is_set():
            try:
                n, addr = sock.recvfrom_into(buf, 0, socket.MSG_DONTWAIT)
            except BlockingIOError:
                if not poller.poll(200):
                    self.collector.tick()
                continue
            except OSError as e:
                if self._stop.is_set():
                    break
                log.warning("collector: receive failed: %s", e)
                time.sleep(0.05)
                continue
            feed(bytes(view[:n]), addr)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._sock.close()
        if self.http is not None:
            self.http.stop()
        if self.collector.sink is not None:
            self.collector.sink.flush()

    def __enter__(self) -> CollectorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(
    collector: Collector | None = None,
    *,
    bind: str = "::1",
    port: int = C.IFIT_REPORT_PORT,
    http_bind: str = "127.0.0.1",
    http_port: int | None = DEFAULT_HTTP_PORT,
    stop: threading.Event | None = None,
    duration: float | None = None,
    started: Callable[[CollectorServer], None] | None = None,
) -> Collector:
    """Run a collector server until `stop` is set or `duration` seconds pass; returns it."""
    collector = collector or Collector()
    stop = stop or threading.Event()
    with CollectorServer(collector, bind, port, http_bind, http_port) as server:
        if started is not None:
            started(server)
        stop.wait(duration)
    return collector
