"""IFIT telemetry collector: decode reports (SPEC §3), per-flow/per-hop figures, exports.

See docs/telemetry.md. The hot path (`decode_report`) uses `struct` only; the scapy layer
`pyctl.packets.IFITReport` describes the same bytes for people.
"""

from pyctl.telemetry.clock import ClockConfig
from pyctl.telemetry.collector import main
from pyctl.telemetry.config import CollectorConfig
from pyctl.telemetry.export import JsonLinesSink, ListSink
from pyctl.telemetry.loss import PeriodLoss
from pyctl.telemetry.metrics import IFITMetrics, prometheus_text
from pyctl.telemetry.records import DelayFigure
from pyctl.telemetry.report import (
    DEFAULT_LAYOUT,
    HopRecord,
    Report,
    ReportError,
    TraceLayout,
    decode_report,
    encode_counter_report,
    encode_trace_report,
)
from pyctl.telemetry.server import CollectorServer, serve
from pyctl.telemetry.state import Collector

__all__ = [
    "DEFAULT_LAYOUT",
    "ClockConfig",
    "Collector",
    "CollectorConfig",
    "CollectorServer",
    "DelayFigure",
    "HopRecord",
    "IFITMetrics",
    "JsonLinesSink",
    "ListSink",
    "PeriodLoss",
    "Report",
    "ReportError",
    "TraceLayout",
    "decode_report",
    "encode_counter_report",
    "encode_trace_report",
    "main",
    "prometheus_text",
    "serve",
]
