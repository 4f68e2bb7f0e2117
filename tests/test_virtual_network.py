"""Whole topologies, as the controller plans them, run packet by packet on a data plane.

These prove the plan (addresses, SIDs, routes, policies, APN and IFIT roles) end to end without
Mininet: a frame from one host must reach the other host through the planned SRv6 path.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from pyctl.controller.plan import Plan, make_plan
from pyctl.model.topology import load_topology
from pyctl.net.virtual import VirtualNetwork
from pyctl.packets import IFITReport, roce_packet

TOPOS = Path(__file__).resolve().parent.parent / "topologies"


def _udp(plan: Plan, src: str, dst: str, dport: int = 53, size: int = 64) -> bytes:
    s, d = plan.hosts[src], plan.hosts[dst]
    pkt = (
        Ether(src=s.mac, dst=s.gateway_mac)
        / IPv6(src=str(s.address), dst=str(d.address), hlim=64)
        / UDP(sport=5000, dport=dport)
        / Raw(b"\x00" * size)
    )
    return bytes(pkt)


def _roce(plan: Plan, src: str, dst: str, qp: int, size: int = 1000) -> bytes:
    s, d = plan.hosts[src], plan.hosts[dst]
    pkt = roce_packet(
        str(s.address),
        str(d.address),
        dest_qp=qp,
        payload=b"\x00" * size,
        src_mac=s.mac,
        dst_mac=s.gateway_mac,
    )
    return bytes(pkt)


def test_minimal_both_directions_and_ifit_report() -> None:
    plan = make_plan(load_topology(TOPOS / "minimal.yaml"))
    with VirtualNetwork(plan) as net:
        trace = net.send("ha", _roce(plan, "ha", "hb", qp=0x11))
        (got,) = trace.delivered_to("hb")
        inner = Ether(got)
        assert inner[IPv6].src == str(plan.hosts["ha"].address)
        assert inner[IPv6].hlim == 63  # decremented once, by the decapsulating egress
        assert inner[Ether].dst == plan.hosts["hb"].mac
        (report,) = trace.delivered_to("col")
        rep = Ether(report)[IFITReport]
        assert [r.node_id for r in reversed(rep.records())] == [1, 2]
        assert rep.flowmon_id == plan.flowmon_ids["probe"]
        back = net.send("hb", _udp(plan, "hb", "ha"))
        assert len(back.delivered_to("ha")) == 1  # the reverse policy carries the answer


def test_ingest_elephants_spread_over_four_paths() -> None:
    """Four RoCEv2 elephants with their own APN-IDs use four distinct SRv6 paths (SPEC 4)."""
    plan = make_plan(load_topology(TOPOS / "ingest.yaml"))
    flows = [
        ("src1", "dc1", 0x101),
        ("src1", "dc2", 0x102),
        ("src2", "dc1", 0x103),
        ("src2", "dc2", 0x104),
    ]
    with VirtualNetwork(plan) as net:
        first: dict[int, str] = {}
        last: dict[int, str] = {}
        # 500 kB in a 100 ms window makes an elephant: ~460 packets of ~1.1 kB; send 600.
        for i in range(600):
            for src, dst, qp in flows:
                trace = net.send(src, _roce(plan, src, dst, qp), time_us=i * 10)
                assert trace.delivered_to(dst), f"flow {qp:#x} lost at packet {i}"
                (path,) = [h.switch for h in trace.hops if h.switch in ("p1", "p2", "p3", "p4")]
                first.setdefault(qp, path)
                last[qp] = path
        assert len(net.planes["pe-sh"].elephants()) == 4  # type: ignore[attr-defined]
    # as mice they hash on the 5-tuple and share paths; as elephants, on their APN-IDs, which
    # the controller pinned to four different paths
    assert len(set(first.values())) < 4
    assert sorted(last.values()) == ["p1", "p2", "p3", "p4"]


@pytest.mark.parametrize("name", ["minimal", "ingest"])
def test_unknown_destination_is_dropped_not_looped(name: str) -> None:
    plan = make_plan(load_topology(TOPOS / f"{name}.yaml"))
    src = next(h for h in plan.hosts if plan.hosts[h].address.exploded.startswith("2001"))
    s = plan.hosts[src]
    frame = bytes(
        Ether(src=s.mac, dst=s.gateway_mac) / IPv6(src=str(s.address), dst="2001:db8:77::1") / UDP()
    )
    with VirtualNetwork(plan) as net:
        trace = net.send(src, frame)
    assert not trace.deliveries
    assert trace.hops[-1].drop == "no-route"
