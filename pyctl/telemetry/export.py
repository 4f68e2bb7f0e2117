"""Exports of the collector: JSON lines (events) and Prometheus text exposition format 0.0.4."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from typing import IO, Any, Protocol

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
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


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float | int) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return repr(value)
    return str(value)


class _Family:
    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.name = name
        self.kind = kind
        self.help = help_text
        self.samples: list[tuple[dict[str, object], float | int]] = []

    def add(self, value: float | int | None, **labels: object) -> None:
        if value is not None:
            self.samples.append((labels, value))

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} {self.kind}"
        for labels, value in self.samples:
            if labels:
                text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
                yield f"{self.name}{{{text}}} {_number(value)}"
            else:
                yield f"{self.name} {_number(value)}"


def _flow_labels(flow: Mapping[str, Any]) -> dict[str, object]:
    return {
        "flowmon_id": flow["flowmon_id"],
        "src": flow["src"],
        "dst": flow["dst"],
        "proto": flow["proto"],
        "sport": flow["sport"],
        "dport": flow["dport"],
    }


def _stat_samples(fam: _Family, stats: Mapping[str, Any], **labels: object) -> None:
    for stat in ("last", "min", "avg", "max"):
        if stat in stats:
            fam.add(stats[stat], **labels, stat=stat, basis=stats["basis"])


def prometheus_text(snapshot: Mapping[str, Any]) -> str:
    """Render a `Collector.snapshot()` as Prometheus text (every family typed and documented)."""
    c = snapshot["counters"]
    fams: list[_Family] = []

    def family(name: str, kind: str, help_text: str) -> _Family:
        fam = _Family(name, kind, help_text)
        fams.append(fam)
        return fam

    family("icpn_ifit_datagrams_total", "counter", "UDP datagrams received").add(c["datagrams"])
    reports = family("icpn_ifit_reports_total", "counter", "valid IFIT reports by kind")
    reports.add(c["trace_reports"], kind="trace")
    reports.add(c["counter_reports"], kind="counter")
    rejected = family(
        "icpn_ifit_rejected_total", "counter", "datagrams rejected (not counted as reports)"
    )
    for reason, n in sorted(c["rejected"].items()):
        rejected.add(n, reason=reason)
    anomalies = family(
        "icpn_ifit_anomalies_total", "counter", "accepted reports with a suspicious field"
    )
    for kind, n in sorted(c["anomalies"].items()):
        anomalies.add(n, kind=kind)
    family("icpn_ifit_periods_total", "counter", "colour periods closed").add(c["periods"])
    family("icpn_ifit_flows", "gauge", "flows tracked").add(len(snapshot["flows"]))

    f_reports = family("icpn_ifit_flow_reports_total", "counter", "trace reports per flow")
    f_delay = family(
        "icpn_ifit_flow_delay_us",
        "gauge",
        "one-way delay head to tail over the run, µs (basis: clock correction used)",
    )
    f_period = family(
        "icpn_ifit_flow_period_delay_us", "gauge", "one-way delay in the last closed period, µs"
    )
    f_jitter = family("icpn_ifit_flow_jitter_us", "gauge", "RFC 3550 jitter of the delay, µs")
    f_changes = family("icpn_ifit_flow_path_changes_total", "counter", "traced path changes")
    f_path = family("icpn_ifit_flow_path_info", "gauge", "current traced path, head first")
    for flow in snapshot["flows"]:
        labels = _flow_labels(flow)
        f_reports.add(flow["reports"], **labels)
        delay = flow["delay_us"]
        _stat_samples(f_delay, delay, **labels)
        last = delay.get("last_period")
        if last:
            for stat in ("min", "avg", "max"):
                f_period.add(last[stat], **labels, stat=stat, basis=delay["basis"])
        if "jitter" in delay:
            f_jitter.add(delay["jitter"], **labels, basis=delay["basis"])
        f_changes.add(flow["path_changes"], **labels)
        path = ",".join("?" if n is None else str(n) for n in flow["path"])
        f_path.add(1, **labels, path=path)

    h_delay = family("icpn_ifit_hop_delay_us", "gauge", "per-hop delay over the run, µs")
    h_jitter = family("icpn_ifit_hop_jitter_us", "gauge", "per-hop RFC 3550 jitter, µs")
    for link in snapshot["links"]:
        delay = link["delay_us"]
        _stat_samples(h_delay, delay, **{"from": link["from"], "to": link["to"]})
        if "jitter" in delay:
            h_jitter.add(
                delay["jitter"], **{"from": link["from"], "to": link["to"], "basis": delay["basis"]}
            )

    queue = family("icpn_ifit_node_queue_depth", "gauge", "egress queue depth stamped by a node")
    offset = family(
        "icpn_ifit_node_clock_offset_us", "gauge", "µs the node clock is ahead of the reference"
    )
    for node in snapshot["nodes"]:
        q = node.get("queue_depth")
        if q:
            queue.add(q["last"], node=node["node"], stat="last")
            queue.add(q["max"], node=node["node"], stat="max")
        clk = node.get("clock")
        if clk:
            offset.add(clk["offset_us"], node=node["node"], source=clk["source"])

    l_lost = family(
        "icpn_ifit_loss_packets", "gauge", "packets lost head to tail in the last colour period"
    )
    l_ppm = family("icpn_ifit_loss_ppm", "gauge", "loss ratio of the last colour period, ppm")
    l_total = family("icpn_ifit_loss_packets_total", "counter", "packets lost over the run")
    l_periods = family("icpn_ifit_loss_periods_total", "counter", "colour periods measured")
    for loss in snapshot["loss"]:
        fid = loss["flowmon_id"]
        last = loss.get("last") or {}
        l_lost.add(last.get("packets_lost"), flowmon_id=fid)
        l_ppm.add(last.get("loss_ppm"), flowmon_id=fid)
        l_total.add(loss["packets_lost"], flowmon_id=fid)
        l_periods.add(loss["measured_periods"], flowmon_id=fid)

    lines: list[str] = []
    for fam in fams:
        lines.extend(fam.render())
    return "\n".join(lines) + "\n"
