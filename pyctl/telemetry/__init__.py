"""IFIT telemetry collector: decode reports (SPEC §3), per-flow/per-hop figures, exports.

See docs/telemetry.md. The hot path (`decode_report`) uses `struct` only; the scapy layer
`pyctl.packets.IFITReport` describes the same bytes for people.
"""

from pyctl.telemetry.clock import ClockConfig
from pyctl.telemetry.collector import (
    Collector,
    CollectorConfig,
    CollectorServer,
    DelayFigure,
    main,
    serve,
)
from pyctl.telemetry.export import JsonLinesSink, ListSink, prometheus_text
from pyctl.telemetry.loss import PeriodLoss
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

__all__ = [
    "DEFAULT_LAYOUT",
    "ClockConfig",
    "Collector",
    "CollectorConfig",
    "CollectorServer",
    "DelayFigure",
    "HopRecord",
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
