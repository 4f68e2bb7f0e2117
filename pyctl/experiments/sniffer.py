"""Frames seen on one port of an emulated node during an experiment (`Sniffer`)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from pyctl.experiments.session import ExperimentScenario

ETH_P_ALL = 0x0003


class Sniffer:
    """Frames arriving on one interface of a node, for a short while, from a thread.

    A packet socket sees them on a software switch; an eBPF node takes frames before packet
    sockets would, so its runner's capture (`tap(port)`, both directions) is used instead.
    """

    def __init__(self, scenario: ExperimentScenario, node: str, port: int) -> None:
        assert scenario.emu is not None
        ifname = scenario.emu.ifnames[(node, port)]
        self.port = port
        self.frames: list[bytes] = []
        self._thread: threading.Thread | None = None
        self._tap: Callable[[int], AbstractContextManager[list[bytes]]] | None = None
        self._sock: socket.socket | None = None
        tap = getattr(scenario.runners.get(node), "tap", None)
        if callable(tap):
            self._tap = tap
            return

        def make() -> socket.socket:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            s.bind((ifname, 0))
            s.settimeout(0.05)
            return s

        self._sock = scenario.emu.run_in(node, make)  # the socket stays in the namespace

    def start(self, seconds: float, limit: int = 50) -> Sniffer:
        def from_socket(sock: socket.socket) -> None:
            end = time.monotonic() + seconds
            try:
                while time.monotonic() < end and len(self.frames) < limit:
                    try:
                        self.frames.append(sock.recv(65536))
                    except TimeoutError:
                        continue
            finally:
                sock.close()

        def from_tap(tap: Callable[[int], AbstractContextManager[list[bytes]]]) -> None:
            with tap(self.port) as frames:
                time.sleep(seconds)
            self.frames = list(frames)[:limit]

        if self._tap is not None:
            self._thread = threading.Thread(target=from_tap, args=(self._tap,), daemon=True)
        elif self._sock is not None:
            self._thread = threading.Thread(target=from_socket, args=(self._sock,), daemon=True)
        if self._thread is not None:
            self._thread.start()
        return self

    def wait(self) -> list[bytes]:
        if self._thread is not None:
            self._thread.join()
        elif self._sock is not None:
            self._sock.close()
        return self.frames
