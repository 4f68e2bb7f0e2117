"""What the IFIT collector keeps per flow and per node, the delay figure it hands the
scheduler, and the JSON it writes of a flow, a node, a report and a flow's loss."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyctl.telemetry.clock import ClockModel
from pyctl.telemetry.loss import FlowLoss
from pyctl.telemetry.report import Report, address_text
from pyctl.telemetry.stats import RunningStats

MAX_HOPS_PER_FLOW = 64  # distinct hops kept per flow (a path has at most 255/5 records)


@dataclass(frozen=True)
class DelayFigure:
    """A delay over the last closed colour period (µs), as the scheduler consumes it."""

    count: int
    avg: float
    min: int
    max: int
    jitter: float
    basis: str

    @classmethod
    def from_stats(cls, stats: RunningStats) -> DelayFigure | None:
        if not stats.p_count:
            return None
        return cls(
            stats.p_count, stats.p_avg, stats.p_min, stats.p_max, stats.p_jitter, stats.basis
        )


FlowKey = tuple[int, int, int, int, int, bytes, bytes]
"""(FlowMonID, family, proto, sport, dport, src, dst)."""


class FlowState:
    __slots__ = (
        "key",
        "reports",
        "w_reports",
        "d_reports",
        "first_seen",
        "last_seen",
        "path",
        "path_changes",
        "history",
        "delay",
        "hops",
        "_text",
    )

    def __init__(self, key: FlowKey, now: float, history: int) -> None:
        self.key = key
        self.reports = 0
        self.w_reports = 0
        self.d_reports = 0
        self.first_seen = now
        self.last_seen = now
        self.path: tuple[int | None, ...] | None = None
        self.path_changes = 0
        self.history: deque[tuple[float, int | None, tuple[int | None, ...]]] = deque(
            maxlen=history
        )
        self.delay = RunningStats()
        self.hops: dict[tuple[int, int], RunningStats] = {}
        self._text: tuple[str, str] | None = None

    @property
    def flowmon_id(self) -> int:
        return self.key[0]

    def addresses(self) -> tuple[str, str]:
        if self._text is None:
            self._text = (address_text(self.key[5]), address_text(self.key[6]))
        return self._text

    def identity(self) -> dict[str, Any]:
        src, dst = self.addresses()
        fid, family, proto, sport, dport = self.key[:5]
        return {
            "flowmon_id": fid,
            "family": family,
            "proto": proto,
            "src": src,
            "dst": dst,
            "sport": sport,
            "dport": dport,
        }

    def as_dict(self) -> dict[str, Any]:
        """The flow as /flows and the per-period summaries show it."""
        return {
            **self.identity(),
            "reports": self.reports,
            "d_reports": self.d_reports,
            "first_seen": round(self.first_seen, 6),
            "last_seen": round(self.last_seen, 6),
            "path": list(self.path or ()),
            "path_changes": self.path_changes,
            "path_history": [
                {"time": round(t, 6), "tail_ts_us": ts, "path": list(p)}
                for t, ts, p in self.history
            ],
            "delay_us": self.delay.as_dict(),
            "hops": [
                {"from": a, "to": b, "delay_us": s.as_dict()} for (a, b), s in self.hops.items()
            ],
        }


class NodeState:
    __slots__ = ("queue_last", "queue_max")

    def __init__(self) -> None:
        self.queue_last: int | None = None
        self.queue_max = 0


def report_event(report: Report, now: float) -> dict[str, Any]:
    """One report as a JSON event (`CollectorConfig.report_events`)."""
    event: dict[str, Any] = {
        "type": "counter" if report.is_counter else "report",
        "time": round(now, 6),
        "flowmon_id": report.flowmon_id,
        "colour": report.colour,
        "d": report.d_flag,
        "node" if report.is_counter else "tail": report.tail_node_id,
        "ts_us": report.tail_ts_us,
    }
    if report.is_counter:
        event.update(packets=report.packets, bytes=report.octets)
        return event
    event.update(
        family=report.family,
        proto=report.proto,
        src=report.src_ip,
        dst=report.dst_ip,
        sport=report.sport,
        dport=report.dport,
        hops=[
            {
                "node": h.node_id,
                "hop_limit": h.hop_limit,
                "in": h.ingress_if,
                "out": h.egress_if,
                "ts_us": h.ts_us,
                "queue": h.queue_depth,
            }
            for h in report.hops
        ],
    )
    return event


def loss_dict(flowmon_id: int, total: FlowLoss) -> dict[str, Any]:
    """A FlowMonID's loss totals as /flows shows them."""
    return {
        "flowmon_id": flowmon_id,
        "periods": total.periods,
        "measured_periods": total.measured_periods,
        "head_packets": total.head_packets,
        "packets_lost": total.packets_lost,
        "last": total.last.as_dict() if total.last is not None else None,
    }


def node_docs(nodes: Mapping[int, NodeState], clock: ClockModel) -> list[dict[str, Any]]:
    """Each node's queue depth (last, max) and clock offset as /flows shows them, by node id."""
    docs: dict[int, dict[str, Any]] = {}
    for node_id, state in nodes.items():
        if state.queue_last is not None:
            docs.setdefault(node_id, {"node": node_id})["queue_depth"] = {
                "last": state.queue_last,
                "max": state.queue_max,
            }
    for node_id, off in clock.offsets.items():
        docs.setdefault(node_id, {"node": node_id})["clock"] = {
            "offset_us": off,
            "source": clock.sources.get(node_id),
        }
    return [docs[n] for n in sorted(docs)]
