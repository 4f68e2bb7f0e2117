"""Which IFIT reports the collector admits: the senders it accepts, the reasons it refuses a
report or flags an anomaly (the names /flows and the Prometheus metrics count), and the
rate-limited warning it logs for each."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from typing import Any

from pyctl.telemetry.report import REJECT_REASONS

R_SOURCE = "source-not-allowed"
R_FLOW_TABLE = "flow-table-full"
R_LOSS_TABLE = "loss-table-full"
R_INTERNAL = "internal-error"
ALL_REASONS = (*REJECT_REASONS, R_SOURCE, R_FLOW_TABLE, R_LOSS_TABLE, R_INTERNAL)
A_BAD_TIMESTAMP = "bad-timestamp"
A_COUNTER_RESET = "counter-reset"


class RateLimitedLog:
    """At most one warning per key per interval; the next one says how many were suppressed."""

    def __init__(self, logger: logging.Logger, interval_s: float) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warn(self, key: str, message: str, now: float, exc_info: bool = False) -> None:
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        more = self._suppressed.pop(key, 0)
        self._last[key] = now
        suffix = f" ({more} more {key} suppressed)" if more else ""
        self.logger.warning("%s%s", message, suffix, exc_info=exc_info)


class SourceFilter:
    """`CollectorConfig.allowed_sources`: whether a report's sender may send, cached per address
    (at most `limit` addresses, so a spoofing sender cannot grow the cache without bound)."""

    def __init__(
        self, allowed: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network], limit: int
    ) -> None:
        self.allowed = tuple(allowed)
        self.limit = limit
        self._ok: dict[str, bool] = {}

    def __call__(self, addr: Sequence[Any] | None) -> bool:
        if addr is None:
            return False
        host = str(addr[0])
        ok = self._ok.get(host)
        if ok is None:
            try:
                ip = ipaddress.ip_address(host.split("%", 1)[0])
            except ValueError:
                ok = False
            else:
                if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                    ip = ip.ipv4_mapped
                ok = any(ip in net for net in self.allowed)
            if len(self._ok) < self.limit:
                self._ok[host] = ok
        return ok
