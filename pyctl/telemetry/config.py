"""How the IFIT collector is configured (`CollectorConfig`, checked on creation) and the
choices its options take (`icpn collector`)."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from pyctl import constants as C
from pyctl.errors import ConfigError, PacketError
from pyctl.telemetry.clock import ClockConfig
from pyctl.telemetry.report import TraceLayout

DEFAULT_HTTP_PORT = 9391
COUNTER_MODES = ("per-period", "cumulative")
DELAY_FROM = ("all", "d-marked")


@dataclass(frozen=True)
class CollectorConfig:
    trace_type: int = C.IOAM_TRACE_TYPE_DEFAULT
    period_s: float = C.IFIT_PERIOD_US_DEFAULT / 1e6
    """Colour period: window of the per-period figures, loss timeouts, offset estimation."""
    counters: str = "per-period"
    """Counter records carry the period's count ("per-period") or running totals ("cumulative")."""
    delay_from: str = "all"
    """Compute delays from every trace report, or only from D-marked ones ("d-marked")."""
    clock: ClockConfig = field(default_factory=ClockConfig)
    endpoints: Mapping[int, tuple[int, int]] = field(default_factory=dict)
    """FlowMonID -> (head, tail) node ids for loss when no trace report gives the path."""
    allowed_sources: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    """Only accept reports from these prefixes (empty: from anyone)."""
    max_flows: int = 10_000
    max_links: int = 10_000
    max_report_bytes: int = 4096
    path_history: int = 32
    flow_idle_s: float = 60.0
    report_events: bool = False
    """Emit one JSON event per report (besides the per-period summaries)."""
    log_interval_s: float = 10.0

    def __post_init__(self) -> None:
        try:
            TraceLayout.for_trace_type(self.trace_type)
        except PacketError as e:
            raise ConfigError("trace_type", str(e)) from None
        checks: list[tuple[str, object, bool]] = [
            ("period_s", self.period_s, self.period_s > 0 and math.isfinite(self.period_s)),
            ("counters", self.counters, self.counters in COUNTER_MODES),
            ("delay_from", self.delay_from, self.delay_from in DELAY_FROM),
            ("max_flows", self.max_flows, self.max_flows >= 1),
            ("max_links", self.max_links, self.max_links >= 1),
            ("max_report_bytes", self.max_report_bytes, self.max_report_bytes >= 60),
            ("path_history", self.path_history, self.path_history >= 1),
            ("flow_idle_s", self.flow_idle_s, self.flow_idle_s > 0),
        ]
        for name, value, ok in checks:
            if not ok:
                raise ConfigError(name, f"invalid value {value!r}")
