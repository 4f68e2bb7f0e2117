"""Collector figures: per-hop and one-way delay, clock correction, jitter, loss per colour
period, path changes, limits, JSON lines and Prometheus text; and a report made by the
reference data plane end to end."""

from __future__ import annotations

import io
import ipaddress
import json
import logging
import re
from typing import Any

import pytest

from pyctl.telemetry import (
    ClockConfig,
    Collector,
    CollectorConfig,
    HopRecord,
    JsonLinesSink,
    ListSink,
    encode_counter_report,
    encode_trace_report,
    prometheus_text,
)

ADDR = ("2001:db8::c", 5391, 0, 0)


def trace(
    path: list[int],
    times: list[int],
    *,
    flowmon: int = 7,
    sport: int = 1000,
    colour: int = 0,
    d: int = 0,
    queues: list[int] | None = None,
) -> bytes:
    hops = [
        HopRecord(n, 64 - i, 1, 2, t, None if queues is None else queues[i])
        for i, (n, t) in enumerate(zip(path, times, strict=True))
    ]
    return encode_trace_report(
        flowmon_id=flowmon, colour=colour, d_flag=d, hops=hops, src="2001:db8:a::1",
        dst="2001:db8:b::1", sport=sport, dport=2000,
    )  # fmt: skip


def counter(node: int, packets: int, *, flowmon: int = 7, colour: int = 0) -> bytes:
    return encode_counter_report(
        flowmon_id=flowmon, colour=colour, node_id=node, ts_us=0, packets=packets,
        octets=packets * 100,
    )  # fmt: skip


def only_flow(c: Collector) -> dict[str, Any]:
    flows = c.snapshot()["flows"]
    assert len(flows) == 1
    return flows[0]


def hop_delays(flow: dict[str, Any]) -> dict[tuple[int, int], dict[str, Any]]:
    return {(h["from"], h["to"]): h["delay_us"] for h in flow["hops"]}


def test_per_hop_and_one_way_delay() -> None:
    c = Collector()
    c.feed(trace([1, 2, 3], [1_000_000, 1_000_150, 1_000_400], queues=[3, 0, 9]), ADDR, 10.0)
    c.feed(trace([1, 2, 3], [2_000_000, 2_000_170, 2_000_500], queues=[4, 1, 2]), ADDR, 10.1)
    flow = only_flow(c)
    assert flow["path"] == [1, 2, 3]
    assert (flow["src"], flow["dst"], flow["flowmon_id"]) == ("2001:db8:a::1", "2001:db8:b::1", 7)
    d = flow["delay_us"]
    assert (d["basis"], d["count"], d["min"], d["max"], d["last"]) == ("raw", 2, 400, 500, 500)
    assert d["avg"] == 450
    hops = hop_delays(flow)
    assert (hops[(1, 2)]["min"], hops[(1, 2)]["max"]) == (150, 170)
    assert (hops[(2, 3)]["min"], hops[(2, 3)]["max"]) == (250, 330)
    nodes = {n["node"]: n["queue_depth"] for n in c.snapshot()["nodes"]}
    assert nodes[1] == {"last": 4, "max": 4} and nodes[3] == {"last": 2, "max": 9}


def test_jitter_follows_rfc3550() -> None:
    c = Collector()
    for i, delay in enumerate([100, 150, 120, 120]):
        t = 1_000_000 * (i + 1)
        c.feed(trace([1, 2], [t, t + delay]), ADDR, 10.0 + i * 0.01)
    j = 0.0
    for prev, cur in [(100, 150), (150, 120), (120, 120)]:
        j += (abs(cur - prev) - j) / 16
    assert only_flow(c)["delay_us"]["jitter"] == pytest.approx(j, abs=1e-3)
    assert j == pytest.approx(4.50439453125)


def test_windows_roll_per_colour_period_and_summaries_are_emitted() -> None:
    sink = ListSink()
    c = Collector(CollectorConfig(period_s=1.0), sink)
    c.feed(trace([1, 2], [0, 100]), ADDR, 10.2)
    c.feed(trace([1, 2], [1000, 1300]), ADDR, 10.7)
    c.feed(trace([1, 2], [2000, 2110]), ADDR, 11.1)  # first report of the next period rolls
    flows = sink.of_type("flow")
    assert len(flows) == 1 and flows[0]["time"] == 11.0
    assert flows[0]["delay_us"]["window"] == {"count": 2, "min": 100, "avg": 200.0, "max": 300}
    links = sink.of_type("link")
    assert [(e["from"], e["to"], e["window"]["count"]) for e in links] == [(1, 2, 2)]
    d = only_flow(c)["delay_us"]
    assert d["last_period"]["avg"] == 200 and d["window"]["count"] == 1
    assert (d["count"], d["min"], d["max"]) == (3, 100, 300)
    fig = c.flow_figure(7)
    assert fig is not None and (fig.count, fig.avg, fig.min, fig.max) == (2, 200.0, 100, 300)
    link = c.link_figure(1, 2)
    assert link is not None and (link.count, link.avg) == (2, 200.0)
    c.tick(12.05)  # idle: the server's tick closes the period without a report
    assert len(sink.of_type("flow")) == 2 and c.periods == 2


def test_configured_clock_offsets_correct_the_delays() -> None:
    """Node 2's clock runs 5 ms ahead: raw hop delays +5150 / -4750 µs become 150 / 250."""
    c = Collector(CollectorConfig(clock=ClockConfig(offsets={2: 5000})))
    c.feed(trace([1, 2, 3], [1_000_000, 1_005_150, 1_000_400]), ADDR, 10.0)
    flow = only_flow(c)
    hops = hop_delays(flow)
    assert hops[(1, 2)]["last"] == 150 and hops[(1, 2)]["basis"] == "configured"
    assert hops[(2, 3)]["last"] == 250 and hops[(2, 3)]["basis"] == "configured"
    assert flow["delay_us"]["last"] == 400 and flow["delay_us"]["basis"] == "raw"
    nodes = {n["node"]: n.get("clock") for n in c.snapshot()["nodes"]}
    assert nodes[2] == {"offset_us": 5000, "source": "configured"}


def test_estimated_clock_offsets_from_the_minimum_hop_delay() -> None:
    """BMv2-like clocks: node 2 started 3 s after node 1, node 3 1 s before node 2."""
    clock = ClockConfig(estimate=True, link_floor_us={(1, 2): 100})
    c = Collector(CollectorConfig(period_s=1.0, clock=clock))
    base = 50_000_000
    for i, (d12, d23) in enumerate([(150, 300), (120, 260), (200, 280)]):
        t1 = base + i * 1000
        c.feed(trace([1, 2, 3], [t1, t1 - 3_000_000 + d12, t1 - 2_000_000 + d12 + d23]), ADDR,
               10.0 + i * 0.1)  # fmt: skip
    raw = hop_delays(only_flow(c))
    assert raw[(1, 2)]["basis"] == "raw" and raw[(1, 2)]["min"] == 120 - 3_000_000
    c.tick(11.0)  # period closes: offsets estimated from the window minima
    nodes = {n["node"]: n.get("clock") for n in c.snapshot()["nodes"]}
    assert nodes[1] == {"offset_us": 0, "source": "reference"}  # the head is the reference
    # node 2: min raw 1->2 is -2,999,880, floor 100 -> offset -2,999,980
    assert nodes[2] == {"offset_us": 120 - 3_000_000 - 100, "source": "estimated"}
    t1 = base + 10_000
    c.feed(trace([1, 2, 3], [t1, t1 - 3_000_000 + 180, t1 - 2_000_000 + 180 + 290]), ADDR, 11.2)
    hops = hop_delays(only_flow(c))
    # corrected = floor + (raw - window minimum): 100 + 60 and 0 + (290 - 260)
    assert (hops[(1, 2)]["last"], hops[(1, 2)]["basis"]) == (160, "estimated")
    assert (hops[(2, 3)]["last"], hops[(2, 3)]["basis"]) == (30, "estimated")
    assert only_flow(c)["delay_us"]["basis"] == "estimated"
    assert hops[(1, 2)]["count"] == 1  # figures restarted on the change of basis


def test_delay_from_d_marked_reports_only() -> None:
    c = Collector(CollectorConfig(delay_from="d-marked"))
    c.feed(trace([1, 2], [0, 100], d=0), ADDR, 1.0)
    c.feed(trace([1, 2], [0, 300], d=1), ADDR, 1.1)
    flow = only_flow(c)
    assert (flow["reports"], flow["d_reports"]) == (2, 1)
    assert (flow["delay_us"]["count"], flow["delay_us"]["last"]) == (1, 300)


def test_path_changes_are_detected_and_kept_with_timestamps() -> None:
    sink = ListSink()
    c = Collector(sink=sink)
    for now, path in [(1.0, [1, 2, 3]), (1.1, [1, 4, 3]), (1.2, [1, 4, 3]), (1.3, [1, 2, 3])]:
        c.feed(trace(path, [0, 10, 20]), ADDR, now)
    flow = only_flow(c)
    assert flow["path_changes"] == 2 and flow["path"] == [1, 2, 3]
    assert [(h["time"], h["path"]) for h in flow["path_history"]] == [
        (1.0, [1, 2, 3]),
        (1.1, [1, 4, 3]),
        (1.3, [1, 2, 3]),
    ]
    changes = sink.of_type("path-change")
    assert [(e["old"], e["new"], e["path_changes"]) for e in changes] == [
        ([1, 2, 3], [1, 4, 3], 1),
        ([1, 4, 3], [1, 2, 3], 2),
    ]
    assert c.path_of(7) == (1, 2, 3)


def test_flows_are_told_apart_by_five_tuple() -> None:
    c = Collector()
    c.feed(trace([1, 2], [0, 10], sport=1), ADDR, 1.0)
    c.feed(trace([1, 5], [0, 10], sport=2), ADDR, 1.0)  # same FlowMonID, another path
    assert len(c.flows) == 2
    assert all(f["path_changes"] == 0 for f in c.snapshot()["flows"])


def test_loss_per_colour_period_head_minus_tail() -> None:
    sink = ListSink()
    c = Collector(CollectorConfig(period_s=1.0), sink)
    c.feed(trace([1, 2, 3], [0, 10, 20]), ADDR, 10.0)  # the path gives head 1 and tail 3
    c.feed(counter(1, 1000), ADDR, 10.1)
    c.feed(counter(2, 998), ADDR, 10.2)
    c.feed(counter(3, 995), ADDR, 10.3)  # every node reported: the period closes
    (loss,) = sink.of_type("loss")
    assert (loss["head"], loss["tail"], loss["packets_lost"], loss["bytes_lost"]) == (
        1,
        3,
        5,
        500,
    )
    assert loss["loss_ppm"] == 5000 and loss["complete"] and loss["closed_by"] == "all-nodes"
    assert [(s["from"], s["to"], s["packets_lost"]) for s in loss["segments"]] == [
        (1, 2, 2),
        (2, 3, 3),
    ]
    # colour 1: the transit node never reports; the block times out after two periods
    c.feed(counter(1, 500, colour=1), ADDR, 11.1)
    c.feed(counter(3, 500, colour=1), ADDR, 11.2)
    c.tick(12.0)
    assert len(sink.of_type("loss")) == 1
    c.tick(13.5)
    second = sink.of_type("loss")[1]
    assert (second["colour"], second["packets_lost"], second["complete"]) == (1, 0, False)
    assert second["closed_by"] == "timeout"
    # colour 0 again from the head before the tail's record of the last one: next period
    c.feed(counter(1, 100), ADDR, 14.0)
    c.feed(counter(1, 100), ADDR, 15.5)
    third = sink.of_type("loss")[2]
    assert third["closed_by"] == "next-period" and third["packets_lost"] is None
    period = c.period_loss(7)
    assert period is not None and period.period == 3
    total = c.snapshot()["loss"][0]
    assert (total["measured_periods"], total["head_packets"], total["packets_lost"]) == (
        2,
        1500,
        5,
    )


def test_loss_with_configured_endpoints_and_cumulative_counters() -> None:
    sink = ListSink()
    cfg = CollectorConfig(counters="cumulative", endpoints={9: (1, 3)})
    c = Collector(cfg, sink)
    for node, total in [(1, 10_000), (3, 9_000)]:  # baselines
        c.feed(counter(node, total, flowmon=9), ADDR, 1.0)
    assert sink.of_type("loss") == []
    c.feed(counter(1, 11_000, flowmon=9), ADDR, 2.0)
    c.feed(counter(3, 9_990, flowmon=9), ADDR, 2.1)
    (loss,) = sink.of_type("loss")
    assert (loss["head"], loss["tail"], loss["packets_lost"]) == (1, 3, 10)
    assert loss["loss_ppm"] == 10_000
    c.feed(counter(1, 5, flowmon=9), ADDR, 3.0)  # node restarted: counter went back
    assert c.snapshot()["counters"]["anomalies"]["counter-reset"] == 1


def test_limits_flow_table_and_sources() -> None:
    c = Collector(CollectorConfig(max_flows=2))
    for sport in (1, 2, 3):
        c.feed(trace([1, 2], [0, 10], sport=sport), ADDR, 1.0)
    assert len(c.flows) == 2 and c.rejected == {"flow-table-full": 1}
    allowed = (ipaddress.ip_network("2001:db8::/64"), ipaddress.ip_network("192.0.2.0/24"))
    c = Collector(CollectorConfig(allowed_sources=allowed))
    assert c.feed(trace([1, 2], [0, 1]), ("2001:db8::5", 1, 0, 0), 1.0) is not None
    assert c.feed(trace([1, 2], [0, 1]), ("::ffff:192.0.2.7", 1, 0, 0), 1.0) is not None
    assert c.feed(trace([1, 2], [0, 1]), ("2001:db9::5", 1, 0, 0), 1.0) is None
    assert c.feed(trace([1, 2], [0, 1]), None, 1.0) is None
    assert c.rejected == {"source-not-allowed": 2}


def test_rejections_are_logged_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    c = Collector(CollectorConfig(log_interval_s=10.0))
    with caplog.at_level(logging.WARNING, logger="pyctl.telemetry"):
        for i in range(50):
            c.feed(b"\x01" * 10, ADDR, 1.0 + i * 0.01)
        c.feed(b"\x01" * 10, ADDR, 20.0)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "truncated" in messages[0] and "[2001:db8::c]:5391" in messages[0]
    assert "49 more truncated suppressed" in messages[1]
    assert c.rejected == {"truncated": 51}


def test_failing_period_hook_does_not_stop_the_collector() -> None:
    c = Collector(CollectorConfig(period_s=1.0))
    seen: list[float] = []

    def bad(now: float) -> None:
        seen.append(now)
        raise RuntimeError("consumer bug")

    c.add_period_hook(bad)
    c.feed(trace([1, 2], [0, 1]), ADDR, 1.0)
    assert c.feed(trace([1, 2], [0, 1]), ADDR, 2.5) is not None
    assert seen == [2.5] and c.trace_reports == 2


def test_a_bug_on_one_report_is_counted_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    c = Collector()

    def broken(*_args: object) -> bool:
        raise RuntimeError("bug")

    with monkeypatch.context() as m:
        m.setattr(c, "_on_trace", broken)
        with caplog.at_level(logging.WARNING, logger="pyctl.telemetry"):
            assert c.feed(trace([1, 2], [0, 1]), ADDR, 1.0) is None
    assert c.rejected == {"internal-error": 1}
    assert "RuntimeError: bug" in caplog.text and "Traceback" in caplog.text
    assert c.feed(trace([1, 2], [0, 1]), ADDR, 1.1) is not None


def test_json_lines_sink() -> None:
    out = io.StringIO()
    c = Collector(CollectorConfig(report_events=True), JsonLinesSink(out))
    c.feed(trace([1, 2], [0, 100]), ADDR, 1.0)
    c.feed(counter(1, 10), ADDR, 1.1)
    c.tick(2.0)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    kinds = [e["type"] for e in lines]
    assert kinds == ["report", "counter", "flow", "link"]
    assert lines[0]["hops"][1] == {
        "node": 2, "hop_limit": 63, "in": 1, "out": 2, "ts_us": 100, "queue": None,
    }  # fmt: skip
    assert (lines[1]["node"], lines[1]["packets"], lines[1]["bytes"]) == (1, 10, 1000)


SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? '
    r"(-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?|NaN|[+-]Inf)$"
)


LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:\\.|[^"\\])*)"')


def canonical(labels: str) -> str:
    """A label set in name order: the text format does not fix the order of labels."""
    pairs = sorted(LABEL.findall(labels))
    return "{" + ",".join(f'{k}="{v}"' for k, v in pairs) + "}" if pairs else ""


def parse_prometheus(text: str) -> dict[tuple[str, str], float]:
    """A strict reader of the text format: HELP/TYPE once per family, before its samples.
    Keys are (name, label set in name order) whatever order the exposition wrote them in."""
    assert text.endswith("\n")
    typed: dict[str, str] = {}
    helped: set[str] = set()
    samples: dict[tuple[str, str], float] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in helped
            helped.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name not in typed and kind in ("counter", "gauge")
            typed[name] = kind
            current = name
            continue
        m = SAMPLE.match(line)
        assert m, f"not a valid sample line: {line!r}"
        assert current is not None and m.group(1) == current, f"{m.group(1)} outside its family"
        if typed[current] == "counter":
            assert current.endswith("_total")
        samples[(m.group(1), canonical(m.group(2) or ""))] = float(m.group(5))
    return samples


def test_prometheus_text_format() -> None:
    c = Collector(CollectorConfig(period_s=1.0))
    c.feed(trace([1, 2, 3], [0, 100, 250], queues=[1, 2, 3]), ADDR, 1.0)
    c.feed(trace([1, 2, 3], [0, 120, 300], queues=[1, 5, 3]), ADDR, 1.5)
    c.feed(counter(1, 100), ADDR, 1.6)
    c.feed(counter(2, 100), ADDR, 1.6)
    c.feed(counter(3, 98), ADDR, 1.7)
    c.feed(b"junk", ADDR, 1.8)
    c.tick(2.0)
    samples = parse_prometheus(c.metrics_text())
    assert samples[("icpn_ifit_datagrams_total", "")] == 6
    assert samples[("icpn_ifit_reports_total", '{kind="trace"}')] == 2
    assert samples[("icpn_ifit_rejected_total", '{reason="truncated"}')] == 1
    flow = (
        'flowmon_id="7",src="2001:db8:a::1",dst="2001:db8:b::1",proto="17",sport="1000",'
        'dport="2000"'
    )

    def value(name: str, labels: str) -> float:
        return samples[(name, canonical(labels))]

    assert value("icpn_ifit_flow_delay_us", f'{{{flow},stat="max",basis="raw"}}') == 300
    assert value("icpn_ifit_flow_period_delay_us", f'{{{flow},stat="avg",basis="raw"}}') == 275
    assert value("icpn_ifit_flow_path_info", f'{{{flow},path="1,2,3"}}') == 1
    assert value("icpn_ifit_hop_delay_us", '{from="1",to="2",stat="min",basis="raw"}') == 100
    assert value("icpn_ifit_node_queue_depth", '{node="2",stat="max"}') == 5
    # the head counted 100 in the one measured period (the denominator of the 2 lost)
    assert value("icpn_ifit_loss_head_packets_total", '{flowmon_id="7"}') == 100
    assert samples[("icpn_ifit_loss_packets", '{flowmon_id="7"}')] == 2
    assert samples[("icpn_ifit_loss_ppm", '{flowmon_id="7"}')] == 20_000


def test_prometheus_label_values_are_escaped() -> None:
    snap = Collector().snapshot()
    snap["flows"] = [
        {
            "flowmon_id": 1, "src": 'a"b\\c\nd', "dst": "x", "proto": 6, "sport": 1, "dport": 2,
            "reports": 3, "delay_us": {"basis": "raw", "count": 0, "window": {"count": 0}},
            "path_changes": 0, "path": [1, None],
        }
    ]  # fmt: skip
    text = prometheus_text(snap)
    assert 'src="a\\"b\\\\c\\nd"' in text
    assert 'path="1,?"' in text
    parse_prometheus(text)


def test_report_from_the_reference_data_plane() -> None:
    """Headend -> transit -> egress (topologies/nodes) on the reference data plane: the tail's
    report, taken off the wire, gives the collector the path and the per-hop delays."""
    from scapy.layers.inet import UDP
    from scapy.layers.l2 import Ether

    from pyctl.demo import CHAIN, NODES, WIRING, sample_flows
    from pyctl.model import PacketContext, load_node
    from pyctl.targets.reference import ReferenceDataPlane

    planes = {}
    for name in CHAIN:
        planes[name] = ReferenceDataPlane()
        planes[name].configure(load_node(NODES / f"{name}.yaml"))
    delays = {"headend": 0, "transit": 180, "egress": 430}
    reports = []
    pending = [("headend", 1, sample_flows()[1].frame)]
    while pending:
        node, port, frame = pending.pop(0)
        res = planes[node].process(frame, PacketContext(in_port=port, time_us=5_000 + delays[node]))
        for out in res.outputs:
            nxt = WIRING.get((node, out.port))
            if nxt is not None:
                pending.append((nxt[0], nxt[1], out.frame))
            pkt = Ether(out.frame)
            if UDP in pkt and pkt[UDP].dport == 5391:
                reports.append(bytes(pkt[UDP].payload))
    assert len(reports) == 1
    c = Collector()
    report = c.feed(reports[0], ADDR, 1.0)
    assert report is not None and not report.is_counter
    flow = only_flow(c)
    ids = [load_node(NODES / f"{n}.yaml").node_id for n in CHAIN]
    assert flow["path"] == ids
    hops = hop_delays(flow)
    assert hops[(ids[0], ids[1])]["last"] == 180 and hops[(ids[1], ids[2])]["last"] == 250
    assert flow["delay_us"]["last"] == 430
    assert (flow["src"], flow["dport"]) == ("2001:db8:a::1", 53)
