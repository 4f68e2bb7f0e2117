"""The control plane's IFIT counter export (SPEC §3, docs/pipeline.md 4).

A node keeps running totals of packets and bytes per (FlowMonID, colour). At the end of each
colour period of the nodes' clock (CLOCK_MONOTONIC) the exporter reads every node and reports
what the colour that just closed counted in that period: the difference from the totals read
two periods earlier (the last time that colour closed). A total that went down means the node
was re-loaded: it counts from 0, so the new total is the period's count (and a key it no
longer has counted 0, so that every colour block at the collector has all its nodes). Each
record is fed to an IFIT `Collector` as the wire datagram (`encode_counter_report`), then
`on_period` runs (a scheduler feed evaluates its paths at once, with the period's loss in).

The sources are plain callables so that this module needs no emulation: node name ->
(node id, read() -> {(flowmon_id, colour): (packets, bytes)}).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from pyctl.telemetry.report import encode_counter_report
from pyctl.telemetry.state import Collector

Counters = Mapping[tuple[int, int], tuple[int, int]]  # (flowmon_id, colour) -> (packets, bytes)
Source = tuple[int, Callable[[], Counters]]  # (node id, read)


class CounterExporter:
    """Per-colour-period counter records from `sources` into `collector` (a thread)."""

    def __init__(
        self,
        sources: Mapping[str, Source],
        collector: Collector,
        period_us: int,
        *,
        guard_s: float = 0.05,
        on_period: Callable[[float], None] | None = None,
    ) -> None:
        self.sources = dict(sources)
        self.collector = collector
        self.period_us = period_us
        self.guard_s = guard_s  # after the boundary: packets of the closed colour still in flight
        self.on_period = on_period
        self.exported = 0
        self.unreadable = 0  # reads that failed (a node being re-loaded): that period skipped
        self.late = 0  # periods not reported: read after the colour was counted again
        self._totals: dict[tuple[str, int, int], tuple[int, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ifit-counters", daemon=True)

    def start(self) -> None:
        if self.sources:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def export(self, now_us: int, wall: float | None = None, deadline_us: int | None = None) -> int:
        """Report the colour period that closed before `now_us` (the nodes' clock, µs) from
        every source; the number of records fed.

        With `deadline_us` (the next boundary, when the closed colour is counted again): when
        the last read ends after it, the period is not reported and the totals stay as they
        were, so the next report of that colour covers both of its periods at every node. A
        read can be that late when a node's runner is busy re-loading it (the controller
        re-pushing a headend holds it for a second or more on a loaded machine); reported, the
        nodes read before and after the deadline would disagree and show a loss nothing lost."""
        wall = time.time() if wall is None else wall
        closed = (now_us // self.period_us - 1) & 1
        snapshot: dict[str, Counters] = {}
        for name, (_node_id, read) in self.sources.items():
            try:
                snapshot[name] = read()
            except Exception:  # a node being re-loaded or gone: skip it this period
                self.unreadable += 1
        if deadline_us is not None and time.monotonic() * 1e6 >= deadline_us:
            self.late += 1
            return 0
        fed = 0
        for name, counters in snapshot.items():
            node_id = self.sources[name][0]
            # A key the node counted before but lacks now: it was re-loaded and counted none
            # since. Reported as 0, so that the collector's colour block has every node.
            seen = {(f, c): (0, 0) for (n, f, c) in self._totals if n == name and c == closed}
            for (fid, colour), (packets, octets) in (seen | dict(counters)).items():
                if colour != closed:
                    continue
                was_p, was_o = self._totals.get((name, fid, colour), (0, 0))
                self._totals[(name, fid, colour)] = (packets, octets)
                if packets >= was_p and octets >= was_o:
                    packets, octets = packets - was_p, octets - was_o
                report = encode_counter_report(
                    flowmon_id=fid, colour=colour, node_id=node_id, ts_us=now_us,
                    packets=packets, octets=octets,
                )  # fmt: skip
                self.collector.feed(report, None, wall)
                fed += 1
        self.exported += fed
        if self.on_period is not None:
            self.on_period(wall)
        return fed

    def _loop(self) -> None:
        period = self.period_us / 1e6
        while True:
            now = time.monotonic()
            boundary = (int(now / period) + 1) * period
            if self._stop.wait(boundary + self.guard_s - now):
                return
            self.export(int(time.monotonic() * 1e6), deadline_us=int((boundary + period) * 1e6))
