"""Live telemetry for the scheduler: path figures from an IFIT `Collector`, once per period.

A path is measured by the IFIT flow that follows it (`Path.flowmon_id`: one-way delay and
jitter of the last closed colour period, loss of the last closed colour period) or, without
one, by the hops it crosses (`Path.nodes`: sum of the per-hop mean delays of the last closed
period, largest per-hop jitter; no loss figure). `CollectorFeed` registers a period hook on
the collector, so every colour period ends with one `on_telemetry` call: a path whose delay
rises past an SLA during period k is re-steered at the end of period k (if the period's mean
passes the bound) or of period k+1 (the first whole period of the higher delay) — within two
colour periods. Loss of period k is known once its counter records are in, i.e. at the end of
period k+1 at the latest.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise
from typing import Protocol

from pyctl.errors import ConfigError
from pyctl.sched.model import Decision, Path, PathState
from pyctl.telemetry.records import DelayFigure
from pyctl.telemetry.state import Collector

STATS = ("avg", "max")


class TelemetryConsumer(Protocol):
    paths: dict[str, Path]

    def on_telemetry(
        self, updates: PathState | Iterable[PathState], now: float | None = None
    ) -> list[Decision]: ...


def _delay(fig: DelayFigure, stat: str) -> float:
    return float(fig.max) if stat == "max" else fig.avg


def path_states_from_collector(
    collector: Collector,
    paths: Iterable[Path],
    now: float,
    stat: str = "avg",
    loss_max_age_s: float | None = None,
) -> list[PathState]:
    """One `PathState` per path the collector has figures for (`stat`: avg or max delay)."""
    if stat not in STATS:
        raise ConfigError("stat", f"{stat!r} is not one of {STATS}")
    max_age = loss_max_age_s if loss_max_age_s is not None else 3 * collector.config.period_s
    out = []
    for path in paths:
        delay = jitter = loss = None
        source = ""
        if path.flowmon_id is not None:
            fig = collector.flow_figure(path.flowmon_id)
            if fig is not None:
                delay, jitter = _delay(fig, stat), fig.jitter
                source = f"IFIT flowmon {path.flowmon_id}, {fig.basis} clocks"
            period = collector.period_loss(path.flowmon_id)
            if period is not None and period.loss_ppm is not None:
                if now - period.closed_at <= max_age:
                    loss = period.loss_ppm
                    source = source or f"IFIT flowmon {path.flowmon_id}"
        elif len(path.nodes) >= 2:
            figs = [collector.link_figure(a, b) for a, b in pairwise(path.nodes)]
            present = [f for f in figs if f is not None]
            if present and len(present) == len(figs):
                delay = sum(_delay(f, stat) for f in present)
                jitter = max(f.jitter for f in present)
                hops = "-".join(str(n) for n in path.nodes)
                source = f"IFIT hops {hops}, {present[0].basis} clocks"
        if delay is not None or loss is not None:
            out.append(PathState(path.name, delay, jitter, loss, now, source))
    return out


class CollectorFeed:
    """Feeds `consumer.on_telemetry` from `collector` at the end of every colour period."""

    def __init__(
        self, collector: Collector, consumer: TelemetryConsumer, stat: str = "avg"
    ) -> None:
        if stat not in STATS:
            raise ConfigError("stat", f"{stat!r} is not one of {STATS}")
        self.collector = collector
        self.consumer = consumer
        self.stat = stat
        self.decisions: list[Decision] = []
        collector.add_period_hook(self.on_period)

    def on_period(self, now: float) -> None:
        updates = path_states_from_collector(
            self.collector, self.consumer.paths.values(), now, self.stat
        )
        if updates:
            self.decisions.extend(self.consumer.on_telemetry(updates, now))
