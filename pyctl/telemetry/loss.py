"""Loss per alternate-marking colour period, from the nodes' counter records (RFC 9341 method).

Every IFIT node exports, when a colour period closes, the packets and bytes it counted for
(FlowMonID, colour). Records of one period are grouped into a *block* per (FlowMonID, colour);
the block closes when every node of the flow's known path has reported, when a node reports the
same colour again (that is the next period of this colour), or `timeout_s` after it opened. Then

    loss = packets counted by the head - packets counted by the tail

and the same difference between consecutive reporting nodes of the path gives per-segment loss.
The path (head first) comes from the flow's trace reports, or from configured endpoints when no
trace is seen. Counters are per period by default; with ``cumulative=True`` they are running
totals and the tracker differences consecutive records of the same (FlowMonID, node, colour).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CLOSE_COMPLETE = "all-nodes"
CLOSE_NEXT = "next-period"
CLOSE_TIMEOUT = "timeout"


@dataclass(frozen=True)
class PeriodLoss:
    """Loss of one colour period of one FlowMonID. Loss is None when head or tail is missing."""

    flowmon_id: int
    colour: int
    period: int  # 1, 2, ... per FlowMonID, in closing order
    closed_at: float
    counts: tuple[tuple[int, int, int], ...]  # (node, packets, bytes), path order first
    head: int | None
    tail: int | None
    packets_lost: int | None
    bytes_lost: int | None
    loss_ppm: float | None
    segments: tuple[tuple[int, int, int], ...]  # (from node, to node, packets lost)
    complete: bool
    closed_by: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": "loss",
            "time": round(self.closed_at, 6),
            "flowmon_id": self.flowmon_id,
            "colour": self.colour,
            "period": self.period,
            "head": self.head,
            "tail": self.tail,
            "packets_lost": self.packets_lost,
            "bytes_lost": self.bytes_lost,
            "loss_ppm": None if self.loss_ppm is None else round(self.loss_ppm, 3),
            "counts": [{"node": n, "packets": p, "bytes": b} for n, p, b in self.counts],
            "segments": [{"from": a, "to": b, "packets_lost": x} for a, b, x in self.segments],
            "complete": self.complete,
            "closed_by": self.closed_by,
        }


@dataclass
class _Block:
    opened: float
    counts: dict[int, tuple[int, int]] = field(default_factory=dict)


@dataclass
class FlowLoss:
    """Running totals of one FlowMonID over the closed periods that had a head and a tail."""

    periods: int = 0
    measured_periods: int = 0
    head_packets: int = 0
    packets_lost: int = 0
    last: PeriodLoss | None = None


class LossTracker:
    def __init__(
        self,
        *,
        timeout_s: float,
        cumulative: bool = False,
        max_flows: int = 10_000,
        endpoints: Mapping[int, tuple[int, int]] | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.cumulative = cumulative
        self.max_flows = max_flows
        self.endpoints = dict(endpoints or {})
        self.paths: dict[int, tuple[int | None, ...]] = {}
        self.totals: dict[int, FlowLoss] = {}
        self.counter_resets = 0
        self._blocks: dict[tuple[int, int], _Block] = {}
        self._last_raw: dict[tuple[int, int, int], tuple[int, int]] = {}

    def set_path(self, flowmon_id: int, path: tuple[int | None, ...]) -> None:
        if flowmon_id in self.paths or len(self.paths) < self.max_flows:
            self.paths[flowmon_id] = path

    def add(
        self, flowmon_id: int, colour: int, node: int, packets: int, octets: int, now: float
    ) -> tuple[list[PeriodLoss], bool]:
        """Account one counter record; returns closed periods and False if the table was full."""
        if self.cumulative:
            key3 = (flowmon_id, node, colour)
            prev = self._last_raw.get(key3)
            if prev is None and len(self._last_raw) >= 4 * self.max_flows:
                return [], False
            self._last_raw[key3] = (packets, octets)
            if prev is None:
                return [], True  # first sample of a running total only sets the baseline
            if packets < prev[0] or octets < prev[1]:
                self.counter_resets += 1  # node restarted: the new total is this period's count
            else:
                packets, octets = packets - prev[0], octets - prev[1]
        closed: list[PeriodLoss] = []
        key = (flowmon_id, colour)
        block = self._blocks.get(key)
        if block is not None and node in block.counts:
            closed.append(self._close(key, block, now, CLOSE_NEXT))
            block = None
        if block is None:
            if len(self._blocks) >= 2 * self.max_flows:
                return closed, False
            block = self._blocks[key] = _Block(opened=now)
        block.counts[node] = (packets, octets)
        path = self._path(flowmon_id)
        if path and all(n in block.counts for n in path):
            closed.append(self._close(key, block, now, CLOSE_COMPLETE))
        return closed, True

    def expire(self, now: float) -> list[PeriodLoss]:
        """Close the blocks older than the timeout (some node never reported)."""
        old = [(k, b) for k, b in self._blocks.items() if now - b.opened >= self.timeout_s]
        return [self._close(k, b, now, CLOSE_TIMEOUT) for k, b in old]

    def _path(self, flowmon_id: int) -> tuple[int, ...]:
        path = self.paths.get(flowmon_id)
        if path:
            return tuple(n for n in path if n is not None)
        ends = self.endpoints.get(flowmon_id)
        return ends if ends else ()

    def _close(self, key: tuple[int, int], block: _Block, now: float, why: str) -> PeriodLoss:
        del self._blocks[key]
        flowmon_id, colour = key
        path = self._path(flowmon_id)
        on_path = [n for n in path if n in block.counts]
        others = sorted(n for n in block.counts if n not in path)
        counts = tuple((n, *block.counts[n]) for n in on_path + others)
        head = path[0] if path and path[0] in block.counts else None
        tail = path[-1] if len(path) > 1 and path[-1] in block.counts else None
        lost = lost_b = ppm = None
        if head is not None and tail is not None:
            lost = block.counts[head][0] - block.counts[tail][0]
            lost_b = block.counts[head][1] - block.counts[tail][1]
            sent = block.counts[head][0]
            ppm = max(lost, 0) * 1e6 / sent if sent else 0.0
        segments = tuple(
            (a, b, block.counts[a][0] - block.counts[b][0])
            for a, b in zip(on_path, on_path[1:], strict=False)
        )
        total = self.totals.get(flowmon_id)
        if total is None:
            total = FlowLoss()
            if len(self.totals) < self.max_flows:
                self.totals[flowmon_id] = total
        total.periods += 1
        result = PeriodLoss(
            flowmon_id=flowmon_id,
            colour=colour,
            period=total.periods,
            closed_at=now,
            counts=counts,
            head=head,
            tail=tail,
            packets_lost=lost,
            bytes_lost=lost_b,
            loss_ppm=ppm,
            segments=segments,
            complete=bool(path) and len(on_path) == len(path),
            closed_by=why,
        )
        if lost is not None and head is not None:
            total.measured_periods += 1
            total.head_packets += block.counts[head][0]
            total.packets_lost += lost
        total.last = result
        return result
