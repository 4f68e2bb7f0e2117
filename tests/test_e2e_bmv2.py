"""End-to-end on BMv2 switch nodes (pyctl.net.bmv2_runner.BMv2SwitchRunner): simple_switch_grpc
with p4/build/icpn.json in each switch's namespace, programmed over P4Runtime on a Unix socket."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, IPv6, IPv6ExtHdrSegmentRouting
from scapy.packet import Raw

from pyctl.net.bmv2_runner import BMv2SwitchRunner
from pyctl.packets import IFITReport
from pyctl.targets.bmv2.dataplane import BMv2DataPlane
from pyctl.testing import Network

TOPOS = Path(__file__).resolve().parent.parent / "topologies"

UNAVAILABLE = BMv2DataPlane.unavailable()  # toolchain.detect().bmv2_reason, artefacts, root

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=f"BMv2 switch nodes: {UNAVAILABLE}"),
]


def test_ping_crosses_srv6_both_ways_and_stop_leaves_nothing(
    icpn_network: Callable[..., Network],
) -> None:
    net = icpn_network(TOPOS / "minimal.yaml", dataplane="bmv2")
    with net.capture("pe2", 1) as wire:
        assert net.ping("ha", "hb", count=3) == 3
    srv6 = [p for p in wire.packets if IPv6ExtHdrSegmentRouting in p]
    # requests pe1 -> pe2 and replies pe2 -> pe1, each encapsulated with the planned SIDs
    assert {p[IPv6].dst for p in srv6} == {"fc00:0:2:d6::", "fc00:0:1:d6::"}
    assert len(srv6) >= 6
    runner = net.runners["pe1"]
    assert isinstance(runner, BMv2SwitchRunner) and runner.alive()
    runner.apply(net.plan.switches["pe1"])  # the controller's re-push: pipeline and entries
    assert net.ping("ha", "hb", count=2) == 2
    assert runner.proc is not None
    runner.proc.kill()  # a crash: apply() restarts the switch and programs it again
    runner.proc.wait()
    assert not runner.alive()
    runner.apply(net.plan.switches["pe1"])
    assert runner.alive() and net.ping("ha", "hb", count=2) == 2
    sock = runner.socket_path
    runner.stop()
    assert not runner.alive() and not sock.exists()
    assert net.ping("ha", "hb", count=1) == 0  # pe1 is gone: nothing forwards any more


def test_ifit_report_reaches_the_collector(icpn_network: Callable[..., Network]) -> None:
    net = icpn_network(TOPOS / "ingest.yaml", dataplane="bmv2")
    mouse = IPv6(src=net.address("src1"), dst=net.address("dc1")) / UDP(sport=7, dport=53)
    with net.capture("collector", 1, settle_s=1.0) as col:
        net.send("src1", net.frame("src1", mouse / Raw(b"q")))
    arrived = [p for p in col.packets if IPv6 in p and p[IPv6].dst == net.address("collector")]
    (report,) = [p[IFITReport] for p in arrived if IFITReport in p]
    names = {cfg.node_id: n for n, cfg in net.plan.switches.items()}
    path = [names[r.node_id] for r in reversed(report.records())]
    assert path[0] == "pe-sh" and path[-1] == "pe-nx" and path[1] in {"p1", "p2", "p3", "p4"}
    assert report.flowmon_id == net.plan.flowmon_ids["mice"]


def test_ifit_counters_hold_each_carriers_ipv6_length(
    icpn_network: Callable[..., Network],
) -> None:
    """The IFIT counters a BMv2 node exports (read over P4Runtime) hold SPEC 3's bytes: the
    carrier's IPv6 length, here taken from the frame captured on the wire (40 + its Payload
    Length), where BMv2's own counters would add the received frame's length. The head counts
    the packet it sends, the decapsulating tail the outer packet it received."""
    net = icpn_network(TOPOS / "ingest.yaml", dataplane="bmv2")
    fid = net.plan.flowmon_ids["mice"]
    core = {"p1", "p2", "p3", "p4"}
    head_ports = [
        p for (n, p), (peer, _) in net.plan.wiring.items() if n == "pe-sh" and peer in core
    ]
    tail_ports = [
        p for (n, p), (peer, _) in net.plan.wiring.items() if n == "pe-nx" and peer in core
    ]
    mouse = IPv6(src=net.address("src1"), dst=net.address("dc1")) / UDP(sport=7, dport=53)
    with ExitStack() as stack:
        caps = [stack.enter_context(net.capture("pe-sh", p, settle_s=1.0)) for p in head_ports]
        caps += [stack.enter_context(net.capture("pe-nx", p, settle_s=1.0)) for p in tail_ports]
        net.send("src1", net.frame("src1", mouse / Raw(b"icpn-count")))
    sent = [p for c in caps[: len(head_ports)] for p in c.packets if _carries(p)]
    got = [p for c in caps[len(head_ports) :] for p in c.packets if _carries(p)]
    assert len(sent) == 1 and len(got) == 1, (sent, got)
    for node, frame in (("pe-sh", sent[0]), ("pe-nx", got[0])):
        counts = net.runners[node].ifit_counters([fid])
        length = 40 + frame[IPv6].plen
        assert sorted(counts.values()) == [(1, length)], (node, counts, length)


def _carries(frame: Any) -> bool:
    """The encapsulated test datagram (its payload ends the frame; not dc1's ICMPv6 error
    quoting it on its way back)."""
    return (
        IPv6ExtHdrSegmentRouting in frame
        and ICMPv6DestUnreach not in frame
        and bytes(frame).endswith(b"icpn-count")
    )
