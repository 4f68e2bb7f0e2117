"""icpn_node attached as XDP to real (veth) interfaces, forwarding between namespaces.

h1 --veth-- [r: icpn_node on both ports, generic XDP] --veth-- h2. A frame sent from h1 must reach
h2 exactly as the reference plane says it leaves port 2 (End: SL, DA and hop limit rewritten,
Ethernet rewritten), and one the node drops must not arrive.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from ebpf_nodes import node, node_dict
from scapy.layers.inet import UDP
from scapy.layers.inet6 import HBHOptUnknown, IPv6, IPv6ExtHdrHopByHop, IPv6ExtHdrSegmentRouting
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from pyctl import netns
from pyctl.model.load import node_from_dict
from pyctl.model.node import NodeConfig, PacketContext
from pyctl.targets.ebpf import EBPFDataPlane
from pyctl.targets.ebpf import attach as att
from pyctl.targets.reference import ReferenceDataPlane

pytestmark = pytest.mark.root

ETH_P_ALL = 0x0003
H1_MAC, H2_MAC = "02:00:00:00:0a:02", "02:00:00:00:0c:01"  # the transit node's neighbours


@dataclass
class Topo:
    r: netns.Netns
    h1: netns.Netns
    h2: netns.Netns
    node: NodeConfig


@pytest.fixture
def topo() -> Iterator[Topo]:
    n = node("transit")
    made: list[netns.Netns] = []
    try:
        for role in ("r", "h1", "h2"):
            made.append(netns.create(netns.unique_name("icpnt-xdp", role)))
        r, h1, h2 = made
        netns.add_veth(r, "p1", h1, "e0", a_mac=n.port(1).mac, b_mac=H1_MAC)
        netns.add_veth(r, "p2", h2, "e0", a_mac=n.port(2).mac, b_mac=H2_MAC)
        # no IPv6 on the router's own stack: nothing but forwarded frames leaves its ports
        r.sysctl({"net.ipv6.conf.all.disable_ipv6": 1, "net.ipv6.conf.default.disable_ipv6": 1})
        for ns, ifs in ((r, ("p1", "p2")), (h1, ("e0",)), (h2, ("e0",))):
            for ifname in ifs:
                ns.ip("link", "set", ifname, "up")
        yield Topo(r, h1, h2, n)
    finally:
        for ns in made:
            ns.delete()


def _capture(ns: netns.Netns) -> socket.socket:
    def open_socket() -> socket.socket:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind(("e0", 0))
        s.setblocking(False)
        return s

    return ns.run(open_socket)


def _send(ns: netns.Netns, frame: bytes) -> None:
    def send() -> None:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
            s.bind(("e0", 0))
            s.send(frame)

    ns.run(send)


def _received(sock: socket.socket, seconds: float) -> list[bytes]:
    frames, end = [], time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        ready, _, _ = select.select([sock], [], [], left)
        if ready:
            frames.append(sock.recv(65535))
    return frames


def test_forwarding_through_attached_xdp_matches_the_reference(topo: Topo) -> None:
    srv6 = (
        Ether(src=H1_MAC, dst=topo.node.port(1).mac)
        / IPv6(src="fc00:a::1", dst="fc00:b::1", hlim=64)
        / IPv6ExtHdrSegmentRouting(addresses=["fc00:d::d6", "fc00:b::1"], segleft=1)
        / IPv6(src="2001:db8:1::1", dst="2001:db8:2::2")
        / UDP(sport=40000, dport=5000)
        / Raw(b"through-xdp")
    )
    expired = srv6.copy()
    expired[IPv6].hlim = 1
    ref = ReferenceDataPlane()
    ref.configure(topo.node)
    want = ref.process(bytes(srv6), PacketContext(in_port=1))
    assert want.drop is None and want.outputs[0].port == 2
    assert ref.process(bytes(expired), PacketContext(in_port=1)).drop == "hop-limit"

    dp = EBPFDataPlane()
    dp.configure(topo.node)
    try:
        ifindexes = topo.r.run(lambda: {1: att.ifindex_of("p1"), 2: att.ifindex_of("p2")})
        topo.r.run(lambda: dp.attach(ifindexes, "generic"))
        assert "xdpgeneric" in topo.r.ip("-d", "link", "show", "p1")
        sock = _capture(topo.h2)
        try:
            _received(sock, 0.2)  # whatever the hosts' own stacks sent while coming up
            _send(topo.h1, bytes(expired))
            _send(topo.h1, bytes(srv6))
            got = _received(sock, 1.0)
        finally:
            sock.close()
        assert got.count(want.outputs[0].frame) == 1
        assert not any(f.endswith(b"through-xdp") and f != want.outputs[0].frame for f in got)
        stats = dp.stats()
        assert stats["forward"] >= 1 and stats["drop:hop-limit"] == 1
    finally:
        dp.close()
    assert "xdpgeneric" not in topo.r.ip("-d", "link", "show", "p1")


def test_ifit_report_queued_by_xdp_is_sent_by_send_aux(topo: Topo) -> None:
    """A tail that does not decapsulate strips the IFIT options, forwards the packet and queues
    a report; send_aux() sends the report out of the collector's port (here back to h1)."""
    d = node_dict("transit")
    d["ifit"] = {"role": "tail", "namespace_id": 7, "collector": {"address": "fc00:a::99"}}
    n = node_from_dict(d, "test")
    trace = HBHOptUnknown(otype=0x31, optdata=bytes.fromhex("0000 0007 2814 f20000 00") + bytes(80))
    alt = HBHOptUnknown(otype=0x12, optdata=bytes.fromhex("12345800"))
    pkt = (
        Ether(src=H1_MAC, dst=n.port(1).mac)
        / IPv6(src="fc00:a::1", dst="2001:db8:2::2", hlim=64)
        / IPv6ExtHdrHopByHop(options=[alt, trace])
        / UDP(sport=40000, dport=5000)
        / Raw(b"ifit-live")
    )
    ref = ReferenceDataPlane()
    ref.configure(n)
    want = ref.process(bytes(pkt), PacketContext(in_port=1))
    report = [o.frame for o in want.outputs if o.port == 1]
    assert want.drop is None and len(report) == 1

    dp = EBPFDataPlane()
    dp.configure(n)
    try:
        ifindexes = topo.r.run(lambda: {1: att.ifindex_of("p1"), 2: att.ifindex_of("p2")})
        topo.r.run(lambda: dp.attach(ifindexes, "generic"))
        at_h1, at_h2 = _capture(topo.h1), _capture(topo.h2)
        try:
            _received(at_h1, 0.2)
            _received(at_h2, 0.2)
            _send(topo.h1, bytes(pkt))
            forwarded = _received(at_h2, 0.5)
            assert dp.send_aux() == 1  # the clock is the kernel's now: compare what is not time
            to_h1 = bytes.fromhex(H1_MAC.replace(":", ""))
            reports = [f for f in _received(at_h1, 0.5) if f[:6] == to_h1]
        finally:
            at_h1.close()
            at_h2.close()
    finally:
        dp.close()
    assert [o.frame for o in want.outputs if o.port == 2][0] in forwarded
    assert len(reports) == 1
    got, exp = IPv6(reports[0][14:]), IPv6(report[0][14:])
    assert (got.src, got.dst, got[UDP].dport) == (exp.src, exp.dst, 5391)
    # equal but for the times (the report's and the record's): the node runs on kernel time
    g, e = bytes(got[UDP].payload), bytes(exp[UDP].payload)
    no_time = [(0, 12), (20, 68), (76, len(e))]  # header | 5-tuple + hop/ids | queue depth
    assert len(g) == len(e) == 80
    assert [g[a:b] for a, b in no_time] == [e[a:b] for a, b in no_time]


def test_kernel_fib_routes_through_the_namespaces_tables(topo: Topo) -> None:
    """attach(kernel_fib=True): the egress port and neighbour MAC come from bpf_fib_lookup on
    the router namespace's own route and neighbour entries (the node has no routes at all)."""
    d = node_dict("transit")
    d["routes"] = []
    n = node_from_dict(d, "test")
    topo.r.sysctl(
        {
            "net.ipv6.conf.all.disable_ipv6": 0,
            "net.ipv6.conf.p1.disable_ipv6": 0,
            "net.ipv6.conf.p2.disable_ipv6": 0,
            "net.ipv6.conf.all.forwarding": 1,
        }
    )
    topo.r.ip("-6", "addr", "add", "fc00:ff::1/64", "dev", "p2", "nodad")
    topo.r.ip("-6", "route", "add", "2001:db8:2::/48", "via", "fc00:ff::2", "dev", "p2")
    topo.r.ip("-6", "neigh", "add", "fc00:ff::2", "lladdr", H2_MAC, "dev", "p2", "nud", "permanent")
    pkt = (
        Ether(src=H1_MAC, dst=n.port(1).mac)
        / IPv6(src="2001:db8:1::1", dst="2001:db8:2::2", hlim=9)
        / UDP(sport=1, dport=2)
        / Raw(b"kernel-fib")
    )
    want = bytes(
        Ether(src=n.port(2).mac, dst=H2_MAC)
        / IPv6(src="2001:db8:1::1", dst="2001:db8:2::2", hlim=8)
        / UDP(sport=1, dport=2)
        / Raw(b"kernel-fib")
    )
    dp = EBPFDataPlane()
    dp.configure(n)
    try:
        ifindexes = topo.r.run(lambda: {1: att.ifindex_of("p1"), 2: att.ifindex_of("p2")})
        topo.r.run(lambda: dp.attach(ifindexes, "generic", kernel_fib=True))
        sock = _capture(topo.h2)
        try:
            _received(sock, 0.2)
            _send(topo.h1, bytes(pkt))
            got = _received(sock, 1.0)
        finally:
            sock.close()
    finally:
        dp.close()
    assert want in got
