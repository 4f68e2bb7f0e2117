"""The IFIT collector's state: decode reports from any data plane, keep per-flow and per-hop
figures (delay, jitter, loss per colour period, paths), and export them.

`Collector` is usable in-process (`feed(datagram, addr, now)`); pyctl.telemetry.server receives
reports over UDP and serves them over HTTP; pyctl.telemetry.collector is ``icpn collector``.
Beside it: its configuration (`config`), what it keeps per flow and node and the JSON of it
(`records`), which reports it admits (`admission`).
What each figure means (clock correction of delays, loss per colour period, jitter) is
documented in docs/telemetry.md.

Time: ``now`` is seconds (``time.time()`` unless given). Colour periods of the collector are
aligned to multiples of `CollectorConfig.period_s` of that time; at each period end the windows
roll, loss blocks time out, clock offsets are re-estimated, summaries are emitted and the
period hooks run (outside the lock: a hook may read the collector).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from pyctl.telemetry.admission import (
    A_BAD_TIMESTAMP,
    A_COUNTER_RESET,
    ALL_REASONS,
    R_FLOW_TABLE,
    R_INTERNAL,
    R_LOSS_TABLE,
    R_SOURCE,
    RateLimitedLog,
    SourceFilter,
)
from pyctl.telemetry.clock import ClockModel
from pyctl.telemetry.config import CollectorConfig
from pyctl.telemetry.export import Sink
from pyctl.telemetry.loss import LossTracker, PeriodLoss
from pyctl.telemetry.metrics import prometheus_text
from pyctl.telemetry.records import (
    MAX_HOPS_PER_FLOW,
    DelayFigure,
    FlowKey,
    FlowState,
    NodeState,
    loss_dict,
    node_docs,
    report_event,
)
from pyctl.telemetry.report import R_TOO_LARGE, Report, ReportError, TraceLayout, decode_report
from pyctl.telemetry.stats import RunningStats

log = logging.getLogger("pyctl.telemetry")


class Collector:
    """Decodes IFIT reports and keeps the figures. Thread-safe (one lock)."""

    def __init__(
        self,
        config: CollectorConfig | None = None,
        sink: Sink | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.config = config or CollectorConfig()
        self.sink = sink
        self.layout = TraceLayout.for_trace_type(self.config.trace_type)
        self.clock = ClockModel(self.config.clock, self.config.max_links)
        self.loss = LossTracker(
            timeout_s=2 * self.config.period_s,
            cumulative=self.config.counters == "cumulative",
            max_flows=self.config.max_flows,
            endpoints=self.config.endpoints,
        )
        self.datagrams = 0
        self.trace_reports = 0
        self.counter_reports = 0
        self.periods = 0
        self.rejected: dict[str, int] = {}
        self.anomalies: dict[str, int] = {}
        self.flows: dict[FlowKey, FlowState] = {}
        self.links: dict[tuple[int, int], RunningStats] = {}
        self.nodes: dict[int, NodeState] = {}
        self._lock = threading.Lock()
        self._log = RateLimitedLog(logger or log, self.config.log_interval_s)
        self._hooks: list[Callable[[float], None]] = []
        self._next_roll: float | None = None
        self._sender_ok = SourceFilter(self.config.allowed_sources, self.config.max_flows)
        self._estimate = self.config.clock.estimate
        self._d_only = self.config.delay_from == "d-marked"

    # --- input ---------------------------------------------------------------------------

    def feed(
        self, data: bytes | memoryview, addr: Sequence[Any] | None = None, now: float | None = None
    ) -> Report | None:
        """Account one datagram; the decoded report, or None when it was rejected."""
        if now is None:
            now = time.time()
        with self._lock:
            self.datagrams += 1
            rolled = False
            try:
                rolled = self._maybe_roll(now)
                report = self._feed(data, addr, now)
            except Exception as e:  # hostile input must never stop the collector
                self._reject(R_INTERNAL, f"{type(e).__name__}: {e}", addr, now, exc_info=True)
                report = None
        if rolled:
            self._run_hooks(now)
        return report

    def tick(self, now: float | None = None) -> None:
        """Close the colour period if it is over (the server calls this when idle)."""
        if now is None:
            now = time.time()
        with self._lock:
            try:
                rolled = self._maybe_roll(now)
            except Exception as e:  # a bug here must not end the server thread
                self._anomaly(R_INTERNAL)
                self._log.warn(R_INTERNAL, f"period end failed: {e!r}", now, exc_info=True)
                rolled = False
        if rolled:
            self._run_hooks(now)

    def add_period_hook(self, hook: Callable[[float], None]) -> None:
        """Call `hook(now)` after each colour period closes (outside the collector's lock)."""
        self._hooks.append(hook)

    def _feed(
        self, data: bytes | memoryview, addr: Sequence[Any] | None, now: float
    ) -> Report | None:
        if self.config.allowed_sources and not self._sender_ok(addr):
            self._reject(R_SOURCE, "source not in allowed_sources", addr, now)
            return None
        if len(data) > self.config.max_report_bytes:
            limit = self.config.max_report_bytes
            self._reject(R_TOO_LARGE, f"{len(data)} bytes > max_report_bytes {limit}", addr, now)
            return None
        try:
            report = decode_report(data, self.layout)
        except ReportError as e:
            self._reject(e.reason, str(e), addr, now)
            return None
        if report.bad_timestamps:
            self._anomaly(A_BAD_TIMESTAMP, report.bad_timestamps)
        if report.is_counter:
            ok = self._on_counter(report, now, addr)
        else:
            ok = self._on_trace(report, now, addr)
        if not ok:
            return None
        if self.config.report_events and self.sink is not None:
            self.sink.emit(report_event(report, now))
        return report

    def _reject(
        self,
        reason: str,
        message: str,
        addr: Sequence[Any] | None,
        now: float,
        exc_info: bool = False,
    ) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        who = f"[{addr[0]}]:{addr[1]}" if addr is not None and len(addr) >= 2 else "?"
        self._log.warn(reason, f"IFIT report from {who} rejected: {message}", now, exc_info)

    def _anomaly(self, kind: str, n: int = 1) -> None:
        self.anomalies[kind] = self.anomalies.get(kind, 0) + n

    def _on_trace(self, report: Report, now: float, addr: Sequence[Any] | None) -> bool:
        key: FlowKey = (
            report.flowmon_id, report.family, report.proto, report.sport, report.dport,
            report.src, report.dst,
        )  # fmt: skip
        flow = self.flows.get(key)
        if flow is None:
            if len(self.flows) >= self.config.max_flows:
                self._reject(R_FLOW_TABLE, f"max_flows {self.config.max_flows} reached", addr, now)
                return False
            flow = self.flows[key] = FlowState(key, now, self.config.path_history)
        self.trace_reports += 1
        flow.reports += 1
        flow.w_reports += 1
        flow.last_seen = now
        if report.d_flag:
            flow.d_reports += 1
        hops = report.hops
        path = tuple([h.node_id for h in hops])
        if path != flow.path:
            self._path_change(flow, path, report, now)
        if self._d_only and not report.d_flag:
            return True
        clock = self.clock
        offsets = clock.offsets
        corrected = bool(offsets)  # else every delay is raw and needs no lookups
        raw_label = clock.raw_label
        estimate = self._estimate
        nodes = self.nodes
        flow_hops = flow.hops
        prev_node: int | None = None
        prev_ts = 0
        for node, _hl, _in, _out, ts, queue in hops:
            if node is None:
                prev_node = None
                continue
            if queue is not None:
                state = nodes.get(node) or self._new_node(node)
                if state is not None:
                    state.queue_last = queue
                    if queue > state.queue_max:
                        state.queue_max = queue
            if ts is None:
                prev_node = None
                continue
            if prev_node is not None and prev_node != node:
                delay = ts - prev_ts
                if estimate:
                    clock.observe(prev_node, node, delay)
                if corrected:
                    label = clock.basis(prev_node, node)
                    delay += offsets.get(prev_node, 0) - offsets.get(node, 0)
                else:
                    label = raw_label
                link = (prev_node, node)
                stats = flow_hops.get(link)
                if stats is None and len(flow_hops) < MAX_HOPS_PER_FLOW:
                    stats = flow_hops[link] = RunningStats(label)
                if stats is not None:
                    stats.add(delay, label)
            prev_node, prev_ts = node, ts
        if hops:
            head_node, _hl, _in, _out, head_ts, _q = hops[0]
            if estimate and head_node is not None:
                clock.observe_head(head_node)
            tail_ts = report.tail_ts_us
            if head_ts is not None and head_node is not None and tail_ts is not None:
                tail = report.tail_node_id
                if corrected:
                    one_way = tail_ts - head_ts + offsets.get(head_node, 0) - offsets.get(tail, 0)
                    flow.delay.add(one_way, clock.basis(head_node, tail))
                else:
                    flow.delay.add(tail_ts - head_ts, raw_label)
        return True

    def _new_node(self, node: int) -> NodeState | None:
        if len(self.nodes) >= self.config.max_links:
            return None
        state = self.nodes[node] = NodeState()
        return state

    def _path_change(
        self, flow: FlowState, path: tuple[int | None, ...], report: Report, now: float
    ) -> None:
        old = flow.path
        flow.path = path
        flow.history.append((now, report.tail_ts_us, path))
        self.loss.set_path(flow.flowmon_id, path)
        if old is None:
            return
        flow.path_changes += 1
        if self.sink is not None:
            self.sink.emit(
                {
                    "type": "path-change",
                    "time": round(now, 6),
                    **flow.identity(),
                    "old": list(old),
                    "new": list(path),
                    "path_changes": flow.path_changes,
                    "tail_ts_us": report.tail_ts_us,
                }
            )

    def _on_counter(self, report: Report, now: float, addr: Sequence[Any] | None) -> bool:
        assert report.packets is not None and report.octets is not None
        resets = self.loss.counter_resets
        closed, ok = self.loss.add(
            report.flowmon_id,
            report.colour,
            report.tail_node_id,
            report.packets,
            report.octets,
            now,
        )
        if self.loss.counter_resets != resets:
            self._anomaly(A_COUNTER_RESET)
        self._emit_losses(closed)
        if not ok:
            self._reject(R_LOSS_TABLE, "too many open colour periods", addr, now)
            return False
        self.counter_reports += 1
        return True

    def _emit_losses(self, losses: list[PeriodLoss]) -> None:
        if self.sink is not None:
            for loss in losses:
                self.sink.emit(loss.as_dict())

    # --- colour periods ----------------------------------------------------------------------

    def _maybe_roll(self, now: float) -> bool:
        if self._next_roll is None:
            self._next_roll = self._boundary_after(now)
            return False
        if now < self._next_roll:
            return False
        self._roll(now)
        return True

    def _boundary_after(self, now: float) -> float:
        p = self.config.period_s
        return (math.floor(now / p) + 1) * p

    def _roll(self, now: float) -> None:
        end = self._next_roll if self._next_roll is not None else now
        sink = self.sink
        links = self.links
        for flow in self.flows.values():
            for link, stats in flow.hops.items():
                total = links.get(link)
                if total is None and len(links) < self.config.max_links:
                    total = links[link] = RunningStats(stats.basis)
                if total is not None:
                    total.absorb(stats)
        for key, flow in list(self.flows.items()):
            if sink is not None and flow.w_reports:
                sink.emit({"type": "flow", "time": round(end, 6), **flow.as_dict()})
            flow.w_reports = 0
            flow.delay.roll()
            for stats in flow.hops.values():
                stats.roll()
            if now - flow.last_seen > self.config.flow_idle_s:
                del self.flows[key]
        for (a, b), stats in self.links.items():
            if sink is not None and stats.w_count:
                sink.emit(
                    {"type": "link", "time": round(end, 6), "from": a, "to": b, **stats.as_dict()}
                )
            stats.roll()
        self.clock.roll()
        self._emit_losses(self.loss.expire(now))
        self.periods += 1
        self._next_roll = self._boundary_after(now)
        if sink is not None:
            sink.flush()

    def _run_hooks(self, now: float) -> None:
        for hook in self._hooks:
            try:
                hook(now)
            except Exception:  # a consumer's bug must not stop the collector
                self._log.logger.exception("collector period hook %r failed", hook)

    # --- read side -------------------------------------------------------------------------

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """Everything the collector knows, JSON-serialisable (the /flows document)."""
        with self._lock:
            return {
                "time": round(time.time() if now is None else now, 6),
                "counters": {
                    "datagrams": self.datagrams,
                    "trace_reports": self.trace_reports,
                    "counter_reports": self.counter_reports,
                    "periods": self.periods,
                    "rejected": {r: self.rejected.get(r, 0) for r in ALL_REASONS},
                    "anomalies": {A_BAD_TIMESTAMP: 0, A_COUNTER_RESET: 0} | self.anomalies,
                },
                "flows": [f.as_dict() for f in self.flows.values()],
                "links": [
                    {"from": a, "to": b, "delay_us": s.as_dict()}
                    for (a, b), s in self.links.items()
                ],
                "nodes": node_docs(self.nodes, self.clock),
                "loss": [loss_dict(fid, t) for fid, t in self.loss.totals.items()],
            }

    def metrics_text(self) -> str:
        return prometheus_text(self.snapshot())

    def flow_figure(self, flowmon_id: int) -> DelayFigure | None:
        """Worst (highest mean) last-period one-way delay among the flows of a FlowMonID."""
        with self._lock:
            figures = [
                DelayFigure.from_stats(f.delay)
                for f in self.flows.values()
                if f.flowmon_id == flowmon_id
            ]
        present = [f for f in figures if f is not None]
        return max(present, key=lambda f: f.avg) if present else None

    def link_figure(self, a: int, b: int) -> DelayFigure | None:
        with self._lock:
            stats = self.links.get((a, b))
            return DelayFigure.from_stats(stats) if stats is not None else None

    def period_loss(self, flowmon_id: int) -> PeriodLoss | None:
        """The last closed colour period of `flowmon_id` (None before the first one)."""
        with self._lock:
            total = self.loss.totals.get(flowmon_id)
            return total.last if total is not None else None

    def path_of(self, flowmon_id: int) -> tuple[int | None, ...]:
        with self._lock:
            return self.loss.paths.get(flowmon_id, ())
