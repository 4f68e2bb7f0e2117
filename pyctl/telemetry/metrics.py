"""The collector's Prometheus exposition, built with prometheus_client from one snapshot per scrape.

`IFITMetrics` is a prometheus_client custom collector: each `collect()` takes one
`Collector.snapshot()` (a copy made under the collector's lock, so one scrape is consistent and
the lock is released before any family is built) and yields metric families from it. Nothing is
updated on the report path: the cost is paid per scrape only. Metric names and labels are listed
in docs/telemetry.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector as PromCollector
from prometheus_client.registry import CollectorRegistry

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""What `generate_latest` writes: the text format 0.0.4 (ICPN's names are all legacy-valid).
Not CONTENT_TYPE_LATEST, which from prometheus_client 0.23 on names text format 1.0.0."""

Snapshot = Mapping[str, Any]
Family = CounterMetricFamily | GaugeMetricFamily

FLOW_LABELS = ("flowmon_id", "src", "dst", "proto", "sport", "dport")
STATS = ("last", "min", "avg", "max")


def _family(
    fams: list[Metric], kind: str, name: str, help_text: str, labels: Sequence[str] = ()
) -> Family:
    cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    fam = cls(name, help_text, labels=list(labels))
    fams.append(fam)
    return fam


def _add(fam: Family, value: float | int | None, *labels: object) -> None:
    """One sample (none for a missing value); label values in the family's label order."""
    if value is not None:
        fam.add_metric([str(v) for v in labels], value)


def _flow_labels(flow: Snapshot) -> tuple[object, ...]:
    return tuple(flow[k] for k in FLOW_LABELS)


def families(snapshot: Snapshot) -> list[Metric]:
    """Every family of a `Collector.snapshot()`, typed and documented (empty ones included)."""
    c = snapshot["counters"]
    fams: list[Metric] = []

    def counter(name: str, help_text: str, *labels: str) -> Family:
        return _family(fams, "counter", name, help_text, labels)

    def gauge(name: str, help_text: str, *labels: str) -> Family:
        return _family(fams, "gauge", name, help_text, labels)

    _add(counter("icpn_ifit_datagrams_total", "UDP datagrams received"), c["datagrams"])
    reports = counter("icpn_ifit_reports_total", "valid IFIT reports by kind", "kind")
    _add(reports, c["trace_reports"], "trace")
    _add(reports, c["counter_reports"], "counter")
    rejected = counter(
        "icpn_ifit_rejected_total", "datagrams rejected (not counted as reports)", "reason"
    )
    for reason, n in sorted(c["rejected"].items()):
        _add(rejected, n, reason)
    anomalies = counter(
        "icpn_ifit_anomalies_total", "accepted reports with a suspicious field", "kind"
    )
    for kind, n in sorted(c["anomalies"].items()):
        _add(anomalies, n, kind)
    _add(counter("icpn_ifit_periods_total", "colour periods closed"), c["periods"])
    _add(gauge("icpn_ifit_flows", "flows tracked"), len(snapshot["flows"]))

    f_reports = counter("icpn_ifit_flow_reports_total", "trace reports per flow", *FLOW_LABELS)
    f_delay = gauge(
        "icpn_ifit_flow_delay_us",
        "one-way delay head to tail over the run, µs (basis: clock correction used)",
        *FLOW_LABELS, "stat", "basis",
    )  # fmt: skip
    f_period = gauge(
        "icpn_ifit_flow_period_delay_us",
        "one-way delay in the last closed period, µs",
        *FLOW_LABELS, "stat", "basis",
    )  # fmt: skip
    f_jitter = gauge(
        "icpn_ifit_flow_jitter_us", "RFC 3550 jitter of the delay, µs", *FLOW_LABELS, "basis"
    )
    f_changes = counter("icpn_ifit_flow_path_changes_total", "traced path changes", *FLOW_LABELS)
    f_path = gauge(
        "icpn_ifit_flow_path_info", "current traced path, head first", *FLOW_LABELS, "path"
    )
    for flow in snapshot["flows"]:
        labels = _flow_labels(flow)
        _add(f_reports, flow["reports"], *labels)
        delay = flow["delay_us"]
        basis = delay["basis"]
        for stat in STATS:
            _add(f_delay, delay.get(stat), *labels, stat, basis)
        last = delay.get("last_period")
        if last:
            for stat in ("min", "avg", "max"):
                _add(f_period, last[stat], *labels, stat, basis)
        _add(f_jitter, delay.get("jitter"), *labels, basis)
        _add(f_changes, flow["path_changes"], *labels)
        path = ",".join("?" if n is None else str(n) for n in flow["path"])
        _add(f_path, 1, *labels, path)

    h_delay = gauge(
        "icpn_ifit_hop_delay_us", "per-hop delay over the run, µs", "from", "to", "stat", "basis"
    )
    h_jitter = gauge(
        "icpn_ifit_hop_jitter_us", "per-hop RFC 3550 jitter, µs", "from", "to", "basis"
    )
    for link in snapshot["links"]:
        delay = link["delay_us"]
        for stat in STATS:
            _add(h_delay, delay.get(stat), link["from"], link["to"], stat, delay["basis"])
        _add(h_jitter, delay.get("jitter"), link["from"], link["to"], delay["basis"])

    queue = gauge(
        "icpn_ifit_node_queue_depth", "egress queue depth stamped by a node", "node", "stat"
    )
    offset = gauge(
        "icpn_ifit_node_clock_offset_us",
        "µs the node clock is ahead of the reference",
        "node", "source",
    )  # fmt: skip
    for node in snapshot["nodes"]:
        q = node.get("queue_depth")
        if q:
            _add(queue, q["last"], node["node"], "last")
            _add(queue, q["max"], node["node"], "max")
        clk = node.get("clock")
        if clk:
            _add(offset, clk["offset_us"], node["node"], clk["source"])

    l_lost = gauge(
        "icpn_ifit_loss_packets",
        "packets lost head to tail in the last colour period",
        "flowmon_id",
    )
    l_ppm = gauge("icpn_ifit_loss_ppm", "loss ratio of the last colour period, ppm", "flowmon_id")
    l_total = counter("icpn_ifit_loss_packets_total", "packets lost over the run", "flowmon_id")
    l_head = counter(
        "icpn_ifit_loss_head_packets_total",
        "packets the head counted in the measured colour periods (denominator of the loss)",
        "flowmon_id",
    )
    l_periods = counter("icpn_ifit_loss_periods_total", "colour periods measured", "flowmon_id")
    for loss in snapshot["loss"]:
        fid = loss["flowmon_id"]
        last = loss.get("last") or {}
        _add(l_lost, last.get("packets_lost"), fid)
        _add(l_ppm, last.get("loss_ppm"), fid)
        _add(l_total, loss["packets_lost"], fid)
        _add(l_head, loss["head_packets"], fid)
        _add(l_periods, loss["measured_periods"], fid)
    return fams


class IFITMetrics(PromCollector):
    """prometheus_client custom collector over a snapshot source (`Collector.snapshot`)."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        yield from families(self.snapshot())


def registry_for(snapshot: Callable[[], Snapshot]) -> CollectorRegistry:
    """A registry of its own (not prometheus_client's global one) holding `IFITMetrics`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(IFITMetrics(snapshot))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The /metrics body (text format 0.0.4, see `CONTENT_TYPE`)."""
    return generate_latest(registry)


def prometheus_text(snapshot: Snapshot) -> str:
    """Render one `Collector.snapshot()` as Prometheus text."""
    return exposition(registry_for(lambda: snapshot)).decode()
