"""Event sinks of the collector: JSON lines and in-memory (Prometheus is in telemetry.metrics)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import IO, Any, Protocol

log = logging.getLogger("pyctl.telemetry")


class Sink(Protocol):
    """Where the collector's events go (one dict per event, JSON-serialisable)."""

    def emit(self, event: Mapping[str, Any]) -> None: ...

    def flush(self) -> None: ...


class JsonLinesSink:
    """One compact JSON object per line; flushed at each period end (not per line, for speed)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.lines = 0
        self.errors = 0

    def emit(self, event: Mapping[str, Any]) -> None:
        try:
            self.stream.write(json.dumps(event, separators=(",", ":")) + "\n")
        except (OSError, ValueError) as e:  # full disk, closed pipe: lose lines, keep collecting
            self._failed(e)
            return
        self.lines += 1

    def flush(self) -> None:
        try:
            self.stream.flush()
        except (OSError, ValueError) as e:
            self._failed(e)

    def _failed(self, error: Exception) -> None:
        if not self.errors:
            log.warning("JSON lines output failed (further failures only counted): %s", error)
        self.errors += 1


class ListSink:
    """Keeps the events in memory (tests, in-process users)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(self, event: Mapping[str, Any]) -> None:
        self.events.append(dict(event))

    def flush(self) -> None:
        return None

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]
