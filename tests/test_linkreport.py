"""The links table's figures: a flow's frame on the backbone and the propagation IFIT shows."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pyctl import constants as C
from pyctl.controller.plan import make_plan
from pyctl.model.topology import Link, load_topology
from pyctl.net.framesize import backbone_frame_bytes
from pyctl.net.linkreport import link_rows, propagation_ms

TOPOS = Path(__file__).resolve().parent.parent / "topologies"


def test_backbone_frame_of_a_tcp_segment_is_the_inner_frame_plus_outer_ipv6_and_srh() -> None:
    """minimal.yaml: pe1 encapsulates ha -> hb in an outer IPv6 header and an SRH of one SID
    (H.Encaps, SPEC 1); a TCP flow matches no APN or IFIT rule there, so no Hop-by-Hop options.
    By hand: 14 (Ethernet) + 40 (IPv6) + 20 (TCP) + 1400 payload = 1474 inner, + 40 + 8 + 16 =
    1538 bytes on the pe1-pe2 link."""
    topo = load_topology(TOPOS / "minimal.yaml")
    plan = make_plan(topo)
    tcp = dataclasses.replace(topo.flows[0], proto=C.IPPROTO_TCP, dport=5201)
    assert backbone_frame_bytes(plan, topo, tcp, 1400) == 1538
    # a flow whose source is not a host of the plan has no headend to take it
    assert backbone_frame_bytes(plan, topo, dataclasses.replace(tcp, src="nobody"), 1400) is None


def _flow(name: str, *hops: tuple[str, str, int]) -> dict[str, object]:
    return {
        "flow": name,
        "hops": [{"from": a, "to": b, "delay_us": {"min": m, "avg": m + 500}} for a, b, m in hops],
    }


def test_propagation_is_the_least_flow_minimum_less_its_own_serialisation() -> None:
    """A 50 Mbit/s, 15 ms link crossed by a 4,430-byte flow (its minimum 15,760 us: 15 ms + its
    own 0.7088 ms serialisation + 51.2 us in the nodes) and a 1,326-byte one steered by the loop
    (15,300 us: queued behind a big frame; less 0.2122 ms -> 15.0878 ms). The bigger frame's
    figure is the lower: 15.760 - 4430 x 8 / 50,000 = 15.0512 ms. An unrated link subtracts
    nothing; a flow of unknown size is left out."""
    links = [Link("a", "b", bw_mbit=50, delay_ms=15), Link("b", "c")]
    ifit = [
        _flow("bulk", ("a", "b", 15_760), ("b", "c", 300)),
        _flow("mice on p/1", ("b", "a", 15_300)),
        _flow("unknown", ("a", "b", 1_000)),
    ]
    got = propagation_ms(ifit, links, {"bulk": 4430, "mice": 1326})
    assert abs(got[frozenset("ab")] - 15.0512) < 1e-9
    assert abs(got[frozenset("bc")] - 0.300) < 1e-9
    rows = {r["link"]: r for r in link_rows(links, {}, ifit, "icpn_linkd", {"bulk": 4430})}
    assert abs(rows["a-b"]["measured"]["propagation_ms"] - 15.0512) < 1e-9
    assert rows["a-b"]["measured"]["delay_ms"] == 1.0  # the raw minimum: "unknown"'s 1,000 us


def test_a_hop_with_an_estimated_clock_shows_only_the_delay_above_its_fastest_packet() -> None:
    """A BMv2 end: the collector labels the hop's delay basis "estimated" (pyctl.telemetry.clock:
    the fastest packet is taken as the floor, 0), so its minimum is 0 by construction and less
    serialisation would read negative. The row gives no propagation, and the text table shows
    n/a and the mean above the minimum: 450 - 0 us = +0.45 ms."""
    from pyctl.net.report import _links_table

    links = [Link("a", "s", bw_mbit=50, delay_ms=2), Link("s", "b", bw_mbit=50, delay_ms=2)]
    hop = {"from": "a", "to": "s", "delay_us": {"min": 0, "avg": 450, "basis": "estimated"}}
    shared = {"from": "s", "to": "b", "delay_us": {"min": 2_300, "avg": 2_500, "basis": "raw"}}
    rows = link_rows(
        links, {}, [{"flow": "bulk", "hops": [hop, shared]}], "icpn_linkd", {"bulk": 1500}
    )
    by_link = {r["link"]: r["measured"] for r in rows}
    assert by_link["a-s"]["propagation_ms"] is None and by_link["a-s"]["clock"] == "estimated"
    # 2.3 ms less 1500 x 8 / 50,000 = 0.24 ms of serialisation
    assert abs(by_link["s-b"]["propagation_ms"] - 2.06) < 1e-9
    text = "\n".join(_links_table(rows))
    line = next(x for x in text.splitlines() if x.startswith("a-s"))
    assert "n/a*" in line and "+0.45*" in line
    assert "BMv2" in text


def test_ifit_delays_with_an_estimated_clock_show_only_what_was_measured(tmp_path: Path) -> None:
    """A hop or path with a BMv2 end (basis "estimated") shows its mean above its fastest
    packet, marked and explained, not an absolute figure (an all-BMv2 run printed -1.5 s); one
    on a shared clock shows its mean. Expected: avg - min of the figures below."""
    from pyctl.net.report import render

    hop = {"avg": -1500.0, "min": -1800.0, "basis": "estimated"}
    shared = {"avg": 250.0, "min": 200.0, "basis": "synchronised"}
    flow = {
        "flow": "f",
        "path": ["a", "b", "c"],
        "path_changes": 0,
        "delay_us": {"avg": -2000.0, "min": -2600.0, "jitter": 5, "basis": "estimated"},
        "hops": [
            {"from": "a", "to": "b", "delay_us": hop},
            {"from": "b", "to": "c", "delay_us": shared},
        ],
    }
    doc = {"topology": "t", "dataplane": "bmv2", "seconds_per_phase": 1, "phases": []}
    text = render({**doc, "ifit": [flow]}, tmp_path)
    assert "one-way +600 us above the fastest*" in text
    assert "a -> b: +300 us above the fastest*" in text and "b -> c: 250 us" in text
    assert "* an end is a BMv2 switch" in text and "-1500" not in text
    shared_flow = {**flow, "delay_us": {**shared, "jitter": 5}, "hops": flow["hops"][1:]}
    plain = render({**doc, "ifit": [shared_flow]}, tmp_path)
    assert "one-way 250 us" in plain and "above the fastest" not in plain and "*" not in plain
