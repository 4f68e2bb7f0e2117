"""End-to-end: real packets through Mininet networks built from topologies, via pyctl.testing.

Each test runs with the switch nodes on both data planes that run on the wire: the reference
model as a software switch (pyctl.net.swnode) and icpn_node as XDP (EBPFSwitchRunner); packets
are sent and captured on the hosts' and switches' own interfaces. What only live eBPF nodes
have (policing, host-side APN, in-place re-push) is in tests/test_e2e_ebpf.py.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop, IPv6ExtHdrSegmentRouting
from scapy.packet import Raw

from pyctl.packets import APNOption, IFITReport
from pyctl.testing import Network

TOPOS = Path(__file__).resolve().parent.parent / "topologies"


PLANES = ["reference", "ebpf"]


@pytest.fixture(params=PLANES)
def plane(request: pytest.FixtureRequest) -> str:
    """The switch nodes' data plane: the reference software switch, or icpn_node as XDP."""
    name: str = request.param
    return name


def test_ping_crosses_srv6_both_ways(icpn_network: Callable[..., Network], plane: str) -> None:
    net = icpn_network(TOPOS / "minimal.yaml", dataplane=plane)
    with net.capture("pe2", 1) as wire:
        assert net.ping("ha", "hb", count=3) == 3
    srv6 = [p for p in wire.packets if IPv6ExtHdrSegmentRouting in p]
    # requests pe1 -> pe2 and replies pe2 -> pe1, each encapsulated with the planned SIDs
    dsts = {p[IPv6].dst for p in srv6}
    assert dsts == {"fc00:0:2:d6::", "fc00:0:1:d6::"}
    assert len(srv6) >= 6
    stats = net.switch_stats("pe1")
    assert stats["counts"]["out"] >= 6  # requests encapsulated, replies decapsulated


def test_apn_inserted_by_the_edge_and_removed_at_egress(
    icpn_network: Callable[..., Network], plane: str
) -> None:
    net = icpn_network(TOPOS / "minimal.yaml", dataplane=plane)
    with net.capture("pe2", 1) as wire, net.capture("hb", 1) as host:
        net.send("ha", net.roce("ha", "hb", qp=0x11))
    (outer,) = [p for p in wire.packets if APNOption in p]
    assert outer[APNOption].apn_id == 0x00010002  # APP group 1, USER group 2
    (delivered,) = [p for p in host.packets if UDP in p and p[UDP].dport == 4791]
    assert IPv6ExtHdrHopByHop not in delivered  # the outer header (and its APN) went at pe2
    assert delivered[IPv6].src == net.address("ha")


def test_repush_takes_effect_in_the_running_switch(
    icpn_network: Callable[..., Network], plane: str
) -> None:
    """The controller's re-push changes what a running switch does, without restarting it:
    pe1 without its policy has nothing to send hb's traffic into (the echo requests are
    dropped); with the policy back, they flow again. The reference switch keeps its process
    (the tables go over its control socket), the eBPF node its program (test_e2e_ebpf)."""
    net = icpn_network(TOPOS / "minimal.yaml", dataplane=plane)
    runner = net.runners["pe1"]
    cfg = net.plan.switches["pe1"]
    proc = getattr(runner, "proc", None)
    assert net.ping("ha", "hb", count=2) == 2
    runner.apply(dataclasses.replace(cfg, policies=()))
    assert net.ping("ha", "hb", count=2) == 0
    runner.apply(cfg)
    assert net.ping("ha", "hb", count=2) == 2
    assert getattr(runner, "proc", None) is proc  # the same switch process (None for eBPF)


def test_ifit_counters_count_every_packet_at_every_ifit_node(
    icpn_network: Callable[..., Network], plane: str
) -> None:
    """20 packets of minimal.yaml's IFIT flow: its head (pe1) and its tail (pe2) each count
    every one once, in the colour of its period (20 in all, over one colour or both when a
    period turns meanwhile), and the switch's runner reads these running totals (what the
    closed loop's counter export reads every period: the eBPF maps, or the reference switch
    process over its control socket). A FlowMonID no flow has counts nothing."""
    net = icpn_network(TOPOS / "minimal.yaml", dataplane=plane)
    fid = net.plan.flowmon_ids["probe"]
    net.send("ha", net.roce("ha", "hb", qp=0x11), count=20)
    time.sleep(0.5)  # the last ones through the switch processes
    for switch in ("pe1", "pe2"):
        totals = net.runners[switch].ifit_counters([fid, fid + 1])  # type: ignore[attr-defined]
        assert sum(p for (f, _c), (p, _b) in totals.items() if f == fid) == 20, (switch, totals)
        assert not any(f == fid + 1 for f, _c in totals), totals


def test_ifit_traces_the_path_to_the_collector(
    icpn_network: Callable[..., Network], plane: str
) -> None:
    net = icpn_network(TOPOS / "ingest.yaml", dataplane=plane)
    mouse = IPv6(src=net.address("src1"), dst=net.address("dc1")) / UDP(sport=7, dport=53)
    with net.capture("collector", 1) as col:
        net.send("src1", net.frame("src1", mouse / Raw(b"q")))
    # (the collector host answers with ICMPv6 errors quoting the report: only what arrives counts)
    arrived = [p for p in col.packets if IPv6 in p and p[IPv6].dst == net.address("collector")]
    (report,) = [p[IFITReport] for p in arrived if IFITReport in p]
    ids = [r.node_id for r in reversed(report.records())]
    names = {cfg.node_id: n for n, cfg in net.plan.switches.items()}
    path = [names[i] for i in ids]
    assert path[0] == "pe-sh" and path[-1] == "pe-nx" and path[1] in {"p1", "p2", "p3", "p4"}
    assert report.flowmon_id == net.plan.flowmon_ids["mice"]
    records = list(reversed(report.records()))
    times = [r.ts_sec * 1_000_000 + r.ts_subsec for r in records]
    hops = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(0 <= d < 100_000 for d in hops), hops  # one clock: per-hop delays make sense


def test_elephants_spread_over_the_four_paths(
    icpn_network: Callable[..., Network], plane: str
) -> None:
    topo_features = {"elephant": {"threshold_bytes": 3000, "window_us": 1_000_000}}
    net = icpn_network(TOPOS / "ingest.yaml", dataplane=plane, features=topo_features)
    flows = [
        ("src1", "dc1", 0x101),
        ("src1", "dc2", 0x102),
        ("src2", "dc1", 0x103),
        ("src2", "dc2", 0x104),
    ]
    for src, dst, qp in flows:  # 20 x ~270 B: past the 3,000-byte threshold, elephants now
        net.send(src, net.roce(src, dst, qp), count=20)
    time.sleep(0.3)  # let the mice-phase packets drain before watching
    ports = {p: net.plan.wiring[("pe-sh", p)][0] for p in range(3, 7)}  # pe-sh -> p1..p4
    seen: dict[int, set[str]] = defaultdict(set)
    caps = {}
    from contextlib import ExitStack

    with ExitStack() as stack:
        for port in ports:
            caps[port] = stack.enter_context(net.capture("pe-sh", port))
        for src, dst, qp in flows:
            net.send(src, net.roce(src, dst, qp), count=5)
    head = net.plan.switches["pe-sh"]
    for port, cap in caps.items():
        for p in cap.packets:
            # leaving pe-sh only (dc hosts answer with ICMPv6 errors that quote the BTH)
            if p.src == head.port(port).mac and p.haslayer("BTH"):
                seen[p["BTH"].dqpn].add(ports[port])
    assert {qp: len(v) for qp, v in seen.items()} == {0x101: 1, 0x102: 1, 0x103: 1, 0x104: 1}, seen
    assert sorted(next(iter(v)) for v in seen.values()) == ["p1", "p2", "p3", "p4"]


def test_ecn_marks_under_congestion_reach_the_receiver(
    icpn_network: Callable[..., Network], plane: str
) -> None:
    """A burst into the 10 Mbit/s inter-DC link fills leaf-a's queue past Kmax: the outer header
    is marked CE there, and leaf-b copies CE to the inner header as it decapsulates (RFC 6040)."""
    net = icpn_network(TOPOS / "cross-dc.yaml", dataplane=plane)
    with net.capture("gpu-b1", 1) as rx:
        net.send("gpu-a1", net.roce("gpu-a1", "gpu-b1", qp=0x301, size=1000), count=150)
    got = [p for p in rx.packets if p.haslayer("BTH") and p[IPv6].dst == net.address("gpu-b1")]
    ecn = [p[IPv6].tc & 0b11 for p in got]
    assert ecn.count(0b11) > 0, "no CE mark under congestion"
    assert ecn[0] == 0b10  # the first packets met an empty queue: ECT(0), not marked
    assert all(e in (0b10, 0b11) for e in ecn)
    # A node marks only ECT packets (CE stays CE), so every CE the receiver saw is exactly one
    # mark made by one node on the way. A marked packet can still be lost after its mark (leaf-a
    # marks, then dci's queue, policed by XDP or the real qdisc, drops it), so marks may exceed
    # what arrives, never the other way round.
    counted = {sw: net.switch_stats(sw) for sw in ("leaf-a", "dci", "leaf-b")}
    marked = {sw: st["counts"].get("ce_marked", 0) for sw, st in counted.items()}
    assert marked["leaf-a"] > 0
    assert 0 < ecn.count(0b11) <= sum(marked.values()), marked
    if plane == "ebpf":  # every drop on the way is counted by the node that made it
        dropped = {sw: st["counts"]["dropped"] for sw, st in counted.items()}
        lost_after_a_mark = sum(marked.values()) - ecn.count(0b11)
        assert lost_after_a_mark <= dropped["dci"] + dropped["leaf-b"], (marked, dropped)


def test_pfc_pauses_an_incast_without_loss(icpn_network: Callable[..., Network]) -> None:
    """Three senders at 6 Mbit/s into a 10 Mbit/s port: the switch pauses them with PFC frames
    (their ingress share of the buffer passes XOFF) and they hold their packets: zero loss."""
    import json
    import sys

    net = icpn_network(TOPOS / "incast.yaml", dataplane="reference")  # eBPF drops on pause
    run = net.emu.run_dir
    py = [sys.executable, "-m", "pyctl.net.traffic"]
    rx = net.emu.popen(
        "rx", [*py, "recv", "--duration", "5", "--stats", str(run / "rx.json")], "rx"
    )
    time.sleep(0.3)
    senders = []
    for i, host in enumerate(("s1", "s2", "s3")):
        argv = [*py, "send", "--dst", net.address("rx"), "--qp", hex(0x501 + i), "--size", "1000"]
        argv += ["--rate-mbit", "6", "--duration", "2", "--stats", str(run / f"{host}.json")]
        argv += ["--pfc-iface", net.emu.ifnames[(host, 1)], "--line-rate-mbit", "100"]
        senders.append(net.emu.popen(host, argv, host))
    for proc in senders:
        assert proc.wait(20) == 0
    assert rx.wait(20) == 0
    sent = [json.loads((run / f"{h}.json").read_text()) for h in ("s1", "s2", "s3")]
    got = json.loads((run / "rx.json").read_text())
    assert sum(s["pfc_pauses"] for s in sent) > 0, "no PFC pause reached the senders"
    assert sum(f["packets"] for f in got.values()) == sum(s["packets"] for s in sent)  # lossless
    tor = net.switch_stats("tor")
    assert tor["counts"]["pfc_frames"] > 0 and "tx-full" not in tor["drops"]
