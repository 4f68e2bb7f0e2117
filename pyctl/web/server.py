"""`icpn run --web [ADDR:PORT]`: serve the live view while the network runs.

GET / is the page (static/live.html, no outside resources), GET /state the current state as
JSON, which the page polls twice a second. A sampler thread reads the network every
SAMPLE_S seconds, so a page that polls faster (or several pages) adds no load on the network.
At the end `finished` writes report.html into the run directory: the same page with the final
state and the plots embedded, which opens from disk without a server.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from pyctl.errors import ConfigError, ICPNError
from pyctl.telemetry.httpd import LocalHTTPServer, Response
from pyctl.web.state import LiveState, embed, final_state

SAMPLE_S = 0.5
DEFAULT_ADDR = "127.0.0.1:8080"
log = logging.getLogger("pyctl.web")


def page() -> str:
    return resources.files("pyctl.web").joinpath("static/live.html").read_text(encoding="utf-8")


def parse_addr(value: str) -> tuple[str, int]:
    """ADDR:PORT, :PORT or PORT (address 127.0.0.1); [v6]:PORT for IPv6."""
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "", value
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError("--web", f"{value!r} is not ADDR:PORT (port 0-65535)")
    return host, int(port)


class LiveView:
    """The run's observer (pyctl.net.observer.RunObserver): serves the page from network_up to
    close (when given an address), and writes report.html at finished (always: every `icpn run`
    leaves one)."""

    def __init__(self, addr: str | None = DEFAULT_ADDR, say: Callable[[str], None] = print) -> None:
        self.say = say
        self.live: LiveState | None = None
        self._state: dict[str, Any] = {"status": "starting"}
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None
        self.report_html: Path | None = None
        # bound now: a taken port is an error before the network is built, not after
        self.server: LocalHTTPServer | None = None
        if addr is not None:
            self.bind, self.port = parse_addr(addr)
            self.server = LocalHTTPServer(self._routes(), self.bind, self.port)

    @property
    def url(self) -> str:
        return self.server.url if self.server else ""

    def network_up(self, scenario: Any) -> None:
        self.live = LiveState(scenario)
        run_log = scenario.log

        def tee(line: str) -> None:  # the page shows the run's log and its current phase
            assert self.live is not None
            self.live.note(line.strip())
            run_log(line)

        scenario.log = tee
        self._state = self.live.sample()
        self._sampler = threading.Thread(target=self._sample_loop, name="web-sampler", daemon=True)
        self._sampler.start()
        if self.server is not None:
            self.server.start()
            self.say(f"  live view: {self.server.url}/")

    def _routes(self) -> dict[tuple[str, str], Callable[[bytes], Response]]:
        html = page().encode()
        return {
            ("GET", "/"): lambda _: Response(200, html, "text/html; charset=utf-8"),
            ("GET", "/state"): lambda _: Response(
                200, json.dumps(self._state).encode(), "application/json"
            ),
        }

    def _sample_loop(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            assert self.live is not None
            try:
                self._state = self.live.sample()
            except (ICPNError, OSError, KeyError, ValueError) as e:
                log.debug("live view: sample failed: %s", e)

    def finished(self, report: dict[str, Any], run_dir: Path) -> None:
        self._halt_sampler()
        if self.live is None:
            return
        self.live.status = "finished"
        self._state = final_state(self.live.sample(), report, run_dir)
        self.report_html = run_dir / "report.html"
        self.report_html.write_text(embed(page(), self._state), encoding="utf-8")
        self.say(f"  report.html: {self.report_html}")

    def _halt_sampler(self) -> None:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join()
            self._sampler = None

    def close(self) -> None:
        self._halt_sampler()
        if self.server is not None:
            self.server.stop()
            self.server = None
