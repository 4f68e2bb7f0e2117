"""The Linux kernel's seg6 / seg6local as an outside oracle, held against SPEC.md and the reference.

Every case is a scapy packet with its expected outputs written by hand from SPEC.md / RFC 8986 /
docs/pipeline.md. It is pushed through the kernel data plane and the reference data plane; each
must produce the expected bytes after normalising only what SPEC leaves to the node (the outer
flow label in `hash` mode) and what docs/kernel-oracle.md documents (the outer hop limit of an
IPv4 packet encapsulated by Linux). The two planes are also compared with each other directly.
The kernel reports no drop reasons: for it a drop is checked as "dropped, nothing out".
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import statistics
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6MLReport2,
    ICMPv6ND_NS,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrSegmentRouting,
    RouterAlert,
)
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from pyctl import netns
from pyctl.errors import ConfigError
from pyctl.model.load import node_from_dict
from pyctl.model.node import NodeConfig, PacketContext
from pyctl.targets import dataplane_class
from pyctl.targets.base import DataPlane, Result
from pyctl.targets.kernel import KernelDataPlane, KernelUnsupported, cleanup_stale, probe
from pyctl.targets.kernel.capture import parse_snmp, triage
from pyctl.targets.kernel.plan import SID_TABLE, build_plan
from pyctl.targets.kernel.probe import KernelCaps
from pyctl.targets.reference import ReferenceDataPlane

pytestmark = [pytest.mark.root, pytest.mark.kernel]

PREFIX = "icpnt-k"
CAPS = probe()
# A kernel with every seg6 capability: plan-layout tests build plans with it, so they run (and
# mean the same) whatever the running kernel has.
FULL_CAPS = KernelCaps(
    **{f.name: True for f in dataclasses.fields(KernelCaps) if f.name != "problem"}
)

# Port MACs of the node under test and of its neighbours.
P = {1: "02:00:00:00:01:01", 2: "02:00:00:00:01:02", 3: "02:00:00:00:01:03"}
HOST = "02:00:00:00:00:aa"  # behind port 1
N2 = "02:00:00:00:02:01"  # behind port 2
N3 = "02:00:00:00:03:01"  # behind port 3
SOURCE = "fc00:1::1"

PORTS = [{"index": i, "mac": mac} for i, mac in P.items()]
BASE_ROUTES = [
    {"prefix": "fc00:2::/32", "port": 2, "mac": N2},
    {"prefix": "fc00:3::/32", "port": 3, "mac": N3},
    {"prefix": "2001:db8:a::/48", "port": 1, "mac": HOST},
    {"prefix": "10.1.0.0/16", "port": 1, "mac": HOST},
]


def _policy(name: str, dst: str, mode: str, *segs: str, **match: Any) -> dict[str, Any]:
    return {
        "name": name,
        "match": {"dst": dst, **match} if dst else match,
        "mode": mode,
        "sid_lists": [{"segments": list(segs)}],
    }


def _headend(flowlabel: str) -> dict[str, Any]:
    return {
        "name": f"headend-{flowlabel}",
        "role": "headend",
        "node_id": 1,
        "source": SOURCE,
        "flowlabel": flowlabel,
        "ports": PORTS,
        "routes": BASE_ROUTES,
        "policies": [
            _policy("e3", "2001:db8:b::/48", "H.Encaps", "fc00:2::e", "fc00:5::e", "fc00:9::d6"),
            _policy("r2", "2001:db8:c::/48", "H.Encaps.Red", "fc00:3::e", "fc00:9::d6"),
            _policy("r1", "2001:db8:d::/48", "H.Encaps.Red", "fc00:2::d6"),
            _policy("e1", "2001:db8:e::/48", "H.Encaps", "fc00:3::d6"),
            _policy(
                "r3", "2001:db8:f::/48", "H.Encaps.Red", "fc00:2::e", "fc00:3::e", "fc00:9::d6"
            ),
            _policy("v4e", "10.2.0.0/16", "H.Encaps", "fc00:2::e", "fc00:9::d4"),
            _policy("v4r", "10.3.0.0/16", "H.Encaps.Red", "fc00:3::e", "fc00:9::d4"),
            _policy("v4r1", "10.4.0.0/16", "H.Encaps.Red", "fc00:2::d4"),
        ],
    }


NODES: dict[str, dict[str, Any]] = {
    "headend-copy": _headend("copy"),
    "headend-zero": _headend("zero"),
    "headend-hash": _headend("hash"),
    "endpoint": {
        "name": "endpoint",
        "role": "transit",
        "node_id": 2,
        "source": SOURCE,
        "ports": PORTS,
        "routes": BASE_ROUTES
        + [
            {"prefix": "fc00:0:200::/48", "port": 2, "mac": N2},
            {"prefix": "2001:db8:b::/48", "port": 1, "mac": HOST},
            {"prefix": "2001:db8:b::/48", "port": 3, "mac": N3, "table": 10},
        ],
        "local_sids": [
            {"sid": "fc00:1::e/128", "behaviour": "End"},
            {"sid": "fc00:1::b/128", "behaviour": "End", "flavours": ["psp"]},
            {"sid": "fc00:1::a3/128", "behaviour": "End.X", "adjacency": {"port": 3, "mac": N3}},
            {"sid": "fc00:1::d6/128", "behaviour": "End.DT6", "table": 10},
            {"sid": "fc00:1::dd6/128", "behaviour": "End.DT6", "table": 0},
            {"sid": "fc00:1::c6/128", "behaviour": "End.DX6", "adjacency": {"port": 3, "mac": N3}},
            {"sid": "fc00:1::c4/128", "behaviour": "End.DX4", "adjacency": {"port": 2, "mac": N2}},
            {"sid": "fc00:0:100::/48", "behaviour": "End", "flavours": ["next-csid"]},
            {
                "sid": "fc00:0:101::/48",
                "behaviour": "End.X",
                "flavours": ["next-csid"],
                "adjacency": {"port": 3, "mac": N3},
            },
        ],
    },
    "router": {
        "name": "router",
        "role": "transit",
        "node_id": 3,
        "source": SOURCE,
        "ports": PORTS,
        "routes": BASE_ROUTES
        + [
            {"prefix": "2001:db8:b::/48", "port": 2, "mac": N2},
            {"prefix": "2001:db8:b:5::/64", "port": 3, "mac": N3},
            {"prefix": "10.2.0.0/16", "port": 2, "mac": N2},
        ],
    },
    "steering": {
        "name": "steering",
        "role": "headend",
        "node_id": 4,
        "source": SOURCE,
        "flowlabel": "zero",
        "ports": PORTS,
        "routes": BASE_ROUTES,
        "policies": [
            _policy("tcp", "2001:db8::/32", "H.Encaps", "fc00:2::a", proto=6),
            _policy("site-b", "2001:db8:b::/48", "H.Encaps", "fc00:2::b"),
            _policy("from-3", "", "H.Encaps", "fc00:3::c", in_port=3),
            _policy("dns4", "10.0.0.0/8", "H.Encaps", "fc00:3::d", proto=17, dport=53),
            _policy("src-a", "", "H.Encaps", "fc00:2::f", src="2001:db8:a:7::/64"),
        ],
    },
}


def _node(key: str) -> NodeConfig:
    return node_from_dict(NODES[key], f"<{key}>")


# ---------------------------------------------------------------------------------------------
# Cases


@dataclass(frozen=True)
class Case:
    id: str
    node: str
    packet: Packet
    expect: tuple[tuple[int, Packet], ...] = ()
    drop: str | None = None  # the docs/pipeline.md reason (the reference must give it)
    in_port: int = 1
    norm_flowlabel: bool = False  # SPEC: `hash` is a node's own hash; Linux hashes differently
    norm_v4_outer_hlim: bool = False  # docs/kernel-oracle.md: Linux uses its default hop limit


def _eth(port: int) -> Ether:
    """The frame a neighbour sends to port `port` of the node under test."""
    return Ether(src={1: HOST, 2: N2, 3: N3}[port], dst=P[port])


def _out(port: int) -> Ether:
    """The Ethernet header of a frame the node sends out of `port` to its neighbour."""
    return Ether(src=P[port], dst={1: HOST, 2: N2, 3: N3}[port])


def _u6(
    dst: str = "2001:db8:b::1", *, hlim: int = 64, tc: int = 0, fl: int = 0, n: int = 9
) -> Packet:
    return (
        IPv6(src="2001:db8:a::1", dst=dst, hlim=hlim, tc=tc, fl=fl)
        / UDP(sport=1000, dport=2000)
        / Raw(b"payload6-" + bytes(i % 256 for i in range(n)))
    )


def _u4(dst: str = "10.2.0.1", *, ttl: int = 64, tos: int = 0, n: int = 9) -> Packet:
    return (
        IP(src="10.1.0.1", dst=dst, ttl=ttl, tos=tos, id=7)
        / UDP(sport=1000, dport=2000)
        / Raw(b"payload4-" + bytes(i % 256 for i in range(n)))
    )


def _outer(dst: str, nh: int, *, hlim: int = 64, src: str = "2001:db8:a::1") -> IPv6:
    return IPv6(src=src, dst=dst, hlim=hlim, nh=nh)


def _srh(segs: list[str], sl: int, nh: int, le: int | None = None) -> IPv6ExtHdrSegmentRouting:
    """SRH with `segs` in wire order (List[0] first: the last segment of the path)."""
    return IPv6ExtHdrSegmentRouting(
        addresses=segs, segleft=sl, lastentry=len(segs) - 1 if le is None else le, nh=nh
    )


def _encap_cases() -> list[Case]:
    cases = []
    for mode in ("copy", "zero", "hash"):
        node = f"headend-{mode}"
        for hlim, tc, fl, n in ((64, 0, 0x12345, 9), (2, 0x28, 0xABCDE, 300)):
            inner = _u6("2001:db8:b::1", hlim=hlim, tc=tc, fl=fl, n=n)
            outer_fl = {"copy": fl, "zero": 0, "hash": 0}[mode]
            exp = (
                _out(2)
                / IPv6(src=SOURCE, dst="fc00:2::e", hlim=hlim - 1, tc=tc, fl=outer_fl, nh=43)
                / _srh(["fc00:9::d6", "fc00:5::e", "fc00:2::e"], 2, 41)
                / Raw(bytes(inner))
            )
            cases.append(
                Case(
                    f"encaps-3sid-{mode}-hl{hlim}",
                    node,
                    _eth(1) / inner,
                    ((2, exp),),
                    norm_flowlabel=mode == "hash",
                )
            )
    inner = _u6("2001:db8:e::7", hlim=33, tc=0x10, fl=0x55555)
    exp = (
        _out(3)
        / IPv6(src=SOURCE, dst="fc00:3::d6", hlim=32, tc=0x10, fl=0x55555, nh=43)
        / _srh(["fc00:3::d6"], 0, 41)
        / Raw(bytes(inner))
    )
    cases.append(Case("encaps-1sid", "headend-copy", _eth(1) / inner, ((3, exp),)))
    # H.Encaps.Red: the SRH omits S1 (LE = n-2, SL = n-1); with one SID there is no SRH at all
    inner = _u6("2001:db8:c::1", hlim=50)
    exp = (
        _out(3)
        / IPv6(src=SOURCE, dst="fc00:3::e", hlim=49, fl=0, nh=43)
        / _srh(["fc00:9::d6"], 1, 41, le=0)
        / Raw(bytes(inner))
    )
    cases.append(Case("encaps-red-2sid", "headend-copy", _eth(1) / inner, ((3, exp),)))
    inner = _u6("2001:db8:f::1", hlim=50, fl=0x1)
    exp = (
        _out(2)
        / IPv6(src=SOURCE, dst="fc00:2::e", hlim=49, fl=0x1, nh=43)
        / _srh(["fc00:9::d6", "fc00:3::e"], 2, 41, le=1)
        / Raw(bytes(inner))
    )
    cases.append(Case("encaps-red-3sid", "headend-copy", _eth(1) / inner, ((2, exp),)))
    inner = _u6("2001:db8:d::1", hlim=7, fl=0x2, n=40)
    exp = _out(2) / IPv6(src=SOURCE, dst="fc00:2::d6", hlim=6, fl=0x2, nh=41) / Raw(bytes(inner))
    cases.append(Case("encaps-red-1sid", "headend-copy", _eth(1) / inner, ((2, exp),)))
    # IPv4 inner (TOS 0 here; the TOS difference is a documented test of its own)
    for mode in ("copy", "hash"):
        for ttl, n in ((64, 9), (9, 200)):
            inner4 = _u4("10.2.0.1", ttl=ttl, n=n)
            exp = (
                _out(2)
                / IPv6(src=SOURCE, dst="fc00:2::e", hlim=ttl - 1, fl=0, nh=43)
                / _srh(["fc00:9::d4", "fc00:2::e"], 1, 4)
                / Raw(bytes(inner4))
            )
            cases.append(
                Case(
                    f"encaps-v4-{mode}-ttl{ttl}",
                    f"headend-{mode}",
                    _eth(1) / inner4,
                    ((2, exp),),
                    norm_flowlabel=mode == "hash",
                    norm_v4_outer_hlim=True,
                )
            )
    inner4 = _u4("10.3.9.9", ttl=20)
    exp = (
        _out(3)
        / IPv6(src=SOURCE, dst="fc00:3::e", hlim=19, nh=43)
        / _srh(["fc00:9::d4"], 1, 4, le=0)
        / Raw(bytes(inner4))
    )
    cases.append(
        Case(
            "encaps-red-v4-2sid",
            "headend-copy",
            _eth(1) / inner4,
            ((3, exp),),
            norm_v4_outer_hlim=True,
        )
    )
    inner4 = _u4("10.4.0.1", ttl=20)
    exp = _out(2) / IPv6(src=SOURCE, dst="fc00:2::d4", hlim=19, nh=4) / Raw(bytes(inner4))
    cases.append(
        Case(
            "encaps-red-v4-1sid",
            "headend-copy",
            _eth(1) / inner4,
            ((2, exp),),
            norm_v4_outer_hlim=True,
        )
    )
    cases.append(
        Case(
            "encaps-hop-limit-1",
            "headend-copy",
            _eth(1) / _u6("2001:db8:b::1", hlim=1),
            drop="hop-limit",
        )
    )
    return cases


def _end_cases() -> list[Case]:
    cases = []
    # explicit checksum: a bare UDP after the SRH keeps the same bytes in and out
    udp = UDP(sport=7, dport=9, chksum=0x1234) / Raw(b"end-payload")
    segs3 = ["fc00:3::d6", "fc00:2::1", "fc00:1::e"]
    pkt = _eth(1) / _outer("fc00:1::e", 43, hlim=64) / _srh(segs3, 2, 17) / udp
    exp = _out(2) / _outer("fc00:2::1", 43, hlim=63) / _srh(segs3, 1, 17) / Raw(bytes(udp))
    cases.append(Case("end-sl2-sl1", "endpoint", pkt, ((2, exp),)))
    inner = _u6("2001:db8:b::9", hlim=10, n=100)
    segs2 = ["fc00:3::d6", "fc00:1::e"]
    pkt = _eth(2) / _outer("fc00:1::e", 43, hlim=9) / _srh(segs2, 1, 41) / inner
    exp = _out(3) / _outer("fc00:3::d6", 43, hlim=8) / _srh(segs2, 0, 41) / Raw(bytes(inner))
    cases.append(Case("end-sl1-sl0-keeps-srh", "endpoint", pkt, ((3, exp),), in_port=2))
    inner4 = _u4("10.9.9.9", ttl=3)
    pkt = _eth(1) / _outer("fc00:1::e", 43, hlim=2) / _srh(segs2, 1, 4) / inner4
    exp = _out(3) / _outer("fc00:3::d6", 43, hlim=1) / _srh(segs2, 0, 4) / Raw(bytes(inner4))
    cases.append(Case("end-inner-v4-hl2", "endpoint", pkt, ((3, exp),)))
    # reduced SRH (H.Encaps.Red upstream): SL = LE + 1, DA is not in the list
    segs = ["fc00:3::d6", "fc00:2::7"]
    pkt = _eth(1) / _outer("fc00:1::e", 43) / _srh(segs, 2, 17, le=1) / udp
    exp = _out(2) / _outer("fc00:2::7", 43, hlim=63) / _srh(segs, 1, 17, le=1) / Raw(bytes(udp))
    cases.append(Case("end-reduced-srh", "endpoint", pkt, ((2, exp),)))
    hbh = IPv6ExtHdrHopByHop(nh=43)
    pkt = _eth(1) / _outer("fc00:1::e", 0) / hbh / _srh(segs3, 2, 17) / udp
    exp = _out(2) / _outer("fc00:2::1", 0, hlim=63) / hbh / _srh(segs3, 1, 17) / Raw(bytes(udp))
    cases.append(Case("end-after-hbh", "endpoint", pkt, ((2, exp),)))
    # drops
    cases += [
        Case(
            "end-sl0",
            "endpoint",
            _eth(1) / _outer("fc00:1::e", 43) / _srh(segs3, 0, 17) / udp,
            drop="sl-zero",
        ),
        Case("end-no-srh", "endpoint", _eth(1) / _outer("fc00:1::e", 17) / udp, drop="no-srh"),
        Case(
            "end-hop-limit-1",
            "endpoint",
            _eth(1) / _outer("fc00:1::e", 43, hlim=1) / _srh(segs3, 2, 17) / udp,
            drop="hop-limit",
        ),
        Case(
            "end-bad-le",
            "endpoint",
            _eth(1) / _outer("fc00:1::e", 43) / _srh(segs2, 1, 17, le=2) / udp,
            drop="bad-srh-le",
        ),
        Case(
            "end-bad-sl",
            "endpoint",
            _eth(1) / _outer("fc00:1::e", 43) / _srh(segs2, 3, 17) / udp,
            drop="bad-srh-sl",
        ),
        Case(
            "end-next-no-route",
            "endpoint",
            _eth(1) / _outer("fc00:1::e", 43) / _srh(["fc00:7::1", "fc00:1::e"], 1, 17) / udp,
            drop="no-route",
        ),
    ]
    # PSP: the SRH goes when SL becomes 0 (Next Header and Payload Length patched)
    pkt = (
        _eth(1)
        / _outer("fc00:1::b", 43, hlim=30)
        / _srh(["fc00:3::d6", "fc00:1::b"], 1, 41)
        / inner
    )
    exp = _out(3) / _outer("fc00:3::d6", 41, hlim=29) / Raw(bytes(inner))
    cases.append(Case("psp-sl1-removes-srh", "endpoint", pkt, ((3, exp),)))
    pkt = (
        _eth(1)
        / _outer("fc00:1::b", 43)
        / _srh(["fc00:3::d6", "fc00:2::1", "fc00:1::b"], 2, 17)
        / udp
    )
    exp = (
        _out(2)
        / _outer("fc00:2::1", 43, hlim=63)
        / _srh(["fc00:3::d6", "fc00:2::1", "fc00:1::b"], 1, 17)
        / Raw(bytes(udp))
    )
    cases.append(Case("psp-sl2-keeps-srh", "endpoint", pkt, ((2, exp),)))
    pkt = _eth(1) / _outer("fc00:1::b", 0) / hbh / _srh(["fc00:2::5", "fc00:1::b"], 1, 17) / udp
    exp = _out(2) / _outer("fc00:2::5", 0, hlim=63) / IPv6ExtHdrHopByHop(nh=17) / Raw(bytes(udp))
    cases.append(Case("psp-after-hbh", "endpoint", pkt, ((2, exp),)))
    # End.X: the adjacency (port 3), not the FIB (which says port 2 for fc00:2::)
    pkt = (
        _eth(1)
        / _outer("fc00:1::a3", 43, hlim=5)
        / _srh(["fc00:2::d6", "fc00:1::a3"], 1, 41)
        / inner
    )
    exp = (
        _out(3)
        / _outer("fc00:2::d6", 43, hlim=4)
        / _srh(["fc00:2::d6", "fc00:1::a3"], 0, 41)
        / Raw(bytes(inner))
    )
    cases.append(Case("end-x", "endpoint", pkt, ((3, exp),)))
    pkt = _eth(2) / _outer("fc00:1::a3", 43) / _srh(segs3[:2] + ["fc00:1::a3"], 2, 17) / udp
    exp = (
        _out(3)
        / _outer("fc00:2::1", 43, hlim=63)
        / _srh(segs3[:2] + ["fc00:1::a3"], 1, 17)
        / Raw(bytes(udp))
    )
    cases.append(Case("end-x-sl2", "endpoint", pkt, ((3, exp),), in_port=2))
    cases.append(
        Case(
            "end-x-sl0",
            "endpoint",
            _eth(1) / _outer("fc00:1::a3", 43) / _srh(segs2, 0, 17) / udp,
            drop="sl-zero",
        )
    )
    # NEXT-CSID (F3216): a non-zero argument shifts the C-SIDs and leaves SL and the SRH alone
    pkt = _eth(1) / _outer("fc00:0:100:200:300::", 17, hlim=12) / udp
    exp = _out(2) / _outer("fc00:0:200:300::", 17, hlim=11) / Raw(bytes(udp))
    cases.append(Case("next-csid-shift", "endpoint", pkt, ((2, exp),)))
    segs = ["fc00:3::d6", "fc00:0:100:200::"]
    pkt = _eth(1) / _outer("fc00:0:100:200::", 43) / _srh(segs, 1, 41) / inner
    exp = _out(2) / _outer("fc00:0:200::", 43, hlim=63) / _srh(segs, 1, 41) / Raw(bytes(inner))
    cases.append(Case("next-csid-shift-with-srh", "endpoint", pkt, ((2, exp),)))
    segs = ["fc00:3::d6", "fc00:0:100::"]
    pkt = _eth(1) / _outer("fc00:0:100::", 43) / _srh(segs, 1, 41) / inner
    exp = _out(3) / _outer("fc00:3::d6", 43, hlim=63) / _srh(segs, 0, 41) / Raw(bytes(inner))
    cases.append(Case("next-csid-arg-zero-end", "endpoint", pkt, ((3, exp),)))
    pkt = _eth(1) / _outer("fc00:0:101:200:400::", 17, hlim=12) / udp
    exp = _out(3) / _outer("fc00:0:200:400::", 17, hlim=11) / Raw(bytes(udp))
    cases.append(Case("next-csid-end-x", "endpoint", pkt, ((3, exp),)))
    return cases


def _decap_cases() -> list[Case]:
    cases = []
    inner = _u6("2001:db8:b::1", hlim=20, tc=0x04, fl=0x777, n=64)
    srh0 = _srh(["fc00:1::d6", "fc00:2::e"], 0, 41)
    exp_inner = IPv6(bytes(inner))
    exp_inner.hlim = 19
    pkt = _eth(2) / _outer("fc00:1::d6", 43, src=SOURCE) / srh0 / inner
    cases.append(Case("dt6-table10", "endpoint", pkt, ((3, _out(3) / exp_inner),), in_port=2))
    pkt = _eth(2) / _outer("fc00:1::d6", 41, hlim=1, src=SOURCE) / inner
    cases.append(Case("dt6-no-srh", "endpoint", pkt, ((3, _out(3) / exp_inner),), in_port=2))
    pkt = _eth(2) / _outer("fc00:1::dd6", 41, src=SOURCE) / inner
    cases.append(Case("dt6-main-table", "endpoint", pkt, ((1, _out(1) / exp_inner),), in_port=2))
    pkt = (
        _eth(2)
        / _outer("fc00:1::d6", 43, src=SOURCE)
        / _srh(["fc00:1::d6", "fc00:2::e"], 1, 41)
        / inner
    )
    cases.append(Case("dt6-sl1", "endpoint", pkt, drop="sl-nonzero", in_port=2))
    pkt = _eth(2) / _outer("fc00:1::d6", 4, src=SOURCE) / _u4("10.2.0.1")
    cases.append(Case("dt6-inner-v4", "endpoint", pkt, drop="bad-inner", in_port=2))
    pkt = _eth(2) / _outer("fc00:1::d6", 41, src=SOURCE) / _u6("2001:db8:a::5")
    cases.append(Case("dt6-not-in-table", "endpoint", pkt, drop="no-route", in_port=2))
    pkt = _eth(2) / _outer("fc00:1::d6", 41, src=SOURCE) / _u6("2001:db8:b::1", hlim=1)
    cases.append(Case("dt6-inner-hl1", "endpoint", pkt, drop="hop-limit", in_port=2))
    # End.DX6 / End.DX4: to the adjacency, whatever the inner destination
    inner = _u6("2001:db8:77::1", hlim=64)
    exp_inner = IPv6(bytes(inner))
    exp_inner.hlim = 63
    pkt = _eth(2) / _outer("fc00:1::c6", 43, src=SOURCE) / _srh(["fc00:1::c6"], 0, 41) / inner
    cases.append(Case("dx6", "endpoint", pkt, ((3, _out(3) / exp_inner),), in_port=2))
    inner4 = _u4("10.77.0.1", ttl=64, tos=0x10, n=50)
    exp4 = IP(bytes(inner4))
    exp4.ttl = 63
    del exp4.chksum
    pkt = _eth(3) / _outer("fc00:1::c4", 4, src=SOURCE) / inner4
    cases.append(Case("dx4-no-srh", "endpoint", pkt, ((2, _out(2) / exp4),), in_port=3))
    pkt = (
        _eth(3)
        / _outer("fc00:1::c4", 43, src=SOURCE)
        / _srh(["fc00:1::c4", "fc00:3::e"], 0, 4)
        / inner4
    )
    cases.append(Case("dx4-srh", "endpoint", pkt, ((2, _out(2) / exp4),), in_port=3))
    pkt = _eth(3) / _outer("fc00:1::c4", 41, src=SOURCE) / inner
    cases.append(Case("dx4-inner-v6", "endpoint", pkt, drop="bad-inner", in_port=3))
    return cases


def _forwarding_cases() -> list[Case]:
    cases = []
    for dst, port in (("2001:db8:b::1", 2), ("2001:db8:b:5::1", 3)):
        pkt = _u6(dst, hlim=64, tc=0x2, fl=0x4321)
        exp = IPv6(bytes(pkt))
        exp.hlim = 63
        cases.append(Case(f"fwd6-{port}", "router", _eth(1) / pkt, ((port, _out(port) / exp),)))
    segs = ["fc00:3::d6", "2001:db8:b::1"]
    pkt = (
        IPv6(src="2001:db8:a::1", dst="2001:db8:b::1", hlim=3)
        / _srh(segs, 1, 17)
        / UDP()
        / Raw(b"t")
    )
    exp = IPv6(bytes(pkt))
    exp.hlim = 2
    cases.append(Case("fwd6-srv6-transit", "router", _eth(1) / pkt, ((2, _out(2) / exp),)))
    pkt4 = _u4("10.2.3.4", ttl=17, tos=0x3)
    exp4 = IP(bytes(pkt4))
    exp4.ttl = 16
    del exp4.chksum
    cases.append(Case("fwd4", "router", _eth(1) / pkt4, ((2, _out(2) / exp4),)))
    cases += [
        Case("fwd6-hl1", "router", _eth(1) / _u6("2001:db8:b::1", hlim=1), drop="hop-limit"),
        Case("fwd4-ttl1", "router", _eth(1) / _u4("10.2.0.1", ttl=1), drop="hop-limit"),
        Case("fwd6-no-route", "router", _eth(1) / _u6("2001:db8:99::1"), drop="no-route"),
        Case("fwd4-no-route", "router", _eth(1) / _u4("10.99.0.1"), drop="no-route"),
    ]
    return cases


def _steering_cases() -> list[Case]:
    """Policy choice: the first matching policy in configuration order, on all match fields."""

    def encap(seg: str, inner: Packet, port: int) -> Ether:
        return (
            _out(port)
            / IPv6(src=SOURCE, dst=seg, hlim=inner.hlim - 1 if inner.version == 6 else 63, nh=43)
            / _srh([seg], 0, 41 if inner.version == 6 else 4)
            / Raw(bytes(inner))
        )

    tcp6 = IPv6(src="2001:db8:a::1", dst="2001:db8:b::1") / TCP(sport=5, dport=80) / Raw(b"t")
    udp6 = _u6("2001:db8:b::1")
    other6 = _u6("2001:db8:99::1")
    src_a = IPv6(src="2001:db8:a:7::1", dst="2001:db8:99::1") / UDP() / Raw(b"s")
    dns4 = IP(src="10.1.0.1", dst="10.5.0.1", ttl=64) / UDP(sport=3, dport=53) / Raw(b"q")
    web4 = IP(src="10.1.0.1", dst="10.5.0.1", ttl=64) / UDP(sport=3, dport=80) / Raw(b"w")
    return [
        Case(
            "steer-order-beats-lpm", "steering", _eth(1) / tcp6, ((2, encap("fc00:2::a", tcp6, 2)),)
        ),
        Case("steer-dst", "steering", _eth(1) / udp6, ((2, encap("fc00:2::b", udp6, 2)),)),
        Case(
            "steer-in-port",
            "steering",
            _eth(3) / other6,
            ((3, encap("fc00:3::c", other6, 3)),),
            in_port=3,
        ),
        Case("steer-no-policy", "steering", _eth(1) / other6, drop="no-route"),
        Case("steer-src", "steering", _eth(1) / src_a, ((2, encap("fc00:2::f", src_a, 2)),)),
        Case(
            "steer-v4-dport",
            "steering",
            _eth(1) / dns4,
            ((3, encap("fc00:3::d", dns4, 3)),),
            norm_v4_outer_hlim=True,
        ),
        Case("steer-v4-no-policy", "steering", _eth(1) / web4, drop="no-route"),
    ]


CASES = _encap_cases() + _end_cases() + _decap_cases() + _forwarding_cases() + _steering_cases()


# ---------------------------------------------------------------------------------------------
# Running and comparing


def normalise(frame: bytes, case: Case) -> bytes:
    """Blank what SPEC leaves to the node (outer flow label in hash mode) and the documented
    Linux difference (outer hop limit over an IPv4 inner packet)."""
    b = bytearray(frame)
    if len(b) >= 54 and b[12:14] == b"\x86\xdd":
        if case.norm_flowlabel:
            b[15] &= 0xF0
            b[16] = b[17] = 0
        if case.norm_v4_outer_hlim:
            b[21] = 0
    return bytes(b)


def expected_outputs(case: Case) -> list[tuple[int, bytes]]:
    return sorted((port, normalise(bytes(pkt), case)) for port, pkt in case.expect)


def actual_outputs(result: Result, case: Case) -> list[tuple[int, bytes]]:
    return sorted((o.port, normalise(o.frame, case)) for o in result.outputs)


def explain(label: str, case: Case, result: Result) -> str:
    lines = [f"{label} on {case.id}: drop={result.drop!r}"]
    for port, frame in actual_outputs(result, case):
        lines.append(f"  got port {port}: {Ether(frame).summary()}\n    {frame.hex()}")
    for port, frame in expected_outputs(case):
        lines.append(f"  want port {port}: {Ether(frame).summary()}\n    {frame.hex()}")
    return "\n".join(lines)


@dataclass
class Planes:
    """Configured data planes, one per (kind, node), created on first use and closed at the end."""

    planes: dict[tuple[str, str], DataPlane] = field(default_factory=dict)

    def get(self, kind: str, node: str) -> DataPlane:
        key = (kind, node)
        if kind == "kernel" and CAPS.problem is not None:
            pytest.skip(f"kernel plane: {CAPS.problem}")  # the reference cases still run
        if key not in self.planes:
            plane: DataPlane = (
                KernelDataPlane(prefix=PREFIX) if kind == "kernel" else ReferenceDataPlane()
            )
            self.planes[key] = plane
            plane.configure(_node(node))
        return self.planes[key]

    def run(self, kind: str, case: Case) -> Result:
        return self.get(kind, case.node).process(
            bytes(case.packet), PacketContext(in_port=case.in_port)
        )

    def close(self) -> None:
        for plane in self.planes.values():
            plane.close()
        self.planes.clear()


def _our_netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)}


@pytest.fixture(scope="module", autouse=True)
def leaves_nothing_behind() -> Iterator[None]:
    before = _our_netns()
    yield
    assert _our_netns() - before == set(), "the kernel plane left namespaces behind"


@pytest.fixture(scope="module")
def planes() -> Iterator[Planes]:
    p = Planes()
    try:
        yield p
    finally:
        p.close()


def _check(kind: str, case: Case, result: Result) -> None:
    if case.drop is not None:
        assert result.dropped and not result.outputs, explain(kind, case, result)
        if kind == "reference":
            assert result.drop == case.drop, explain(kind, case, result)
        return
    assert not result.dropped, explain(kind, case, result)
    assert actual_outputs(result, case) == expected_outputs(case), explain(kind, case, result)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_kernel_matches_spec(planes: Planes, case: Case) -> None:
    _check("kernel", case, planes.run("kernel", case))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_reference_matches_spec(planes: Planes, case: Case) -> None:
    _check("reference", case, planes.run("reference", case))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_kernel_agrees_with_reference(planes: Planes, case: Case) -> None:
    k, r = planes.run("kernel", case), planes.run("reference", case)
    assert k.dropped == r.dropped, f"kernel drop={k.drop!r}, reference drop={r.drop!r}"
    assert actual_outputs(k, case) == actual_outputs(r, case), explain("kernel", case, k)


# ---------------------------------------------------------------------------------------------
# Documented differences (docs/kernel-oracle.md): asserted, so the page stays true


def test_ipv4_inner_outer_hop_limit_and_tc_differ_as_documented(planes: Planes) -> None:
    inner = _u4("10.2.0.1", ttl=9, tos=0xB9)
    case = Case("v4-doc", "headend-copy", _eth(1) / inner)
    (k,) = planes.run("kernel", case).outputs
    (r,) = planes.run("reference", case).outputs
    kernel_outer, ref_outer = Ether(k.frame)[IPv6], Ether(r.frame)[IPv6]
    # Linux: the route's default hop limit (64) minus the forwarding decrement; TC 0
    assert (kernel_outer.hlim, kernel_outer.tc) == (63, 0)
    # SPEC: the TTL minus one; the TOS copied (RFC 6040, so ECN survives)
    assert (ref_outer.hlim, ref_outer.tc) == (8, 0xB9)
    assert bytes(kernel_outer[IPv6ExtHdrSegmentRouting]) == bytes(
        ref_outer[IPv6ExtHdrSegmentRouting]
    )


def test_hash_flowlabel_is_nonzero_and_per_flow(planes: Planes) -> None:
    """`hash` mode: Linux fills a flow hash (SPEC: CRC32 of the flow key); only values differ."""
    labels = set()
    for sport in range(1000, 1008):
        pkt = (
            _eth(1)
            / IPv6(src="2001:db8:a::1", dst="2001:db8:b::1")
            / UDP(sport=sport, dport=2)
            / Raw(b"f")
        )
        case = Case("fl", "headend-hash", pkt)
        (k,) = planes.run("kernel", case).outputs
        labels.add(Ether(k.frame)[IPv6].fl)
        again = planes.run("kernel", case).outputs[0]
        assert Ether(again.frame)[IPv6].fl == Ether(k.frame)[IPv6].fl
    assert 0 not in labels and len(labels) >= 6


def test_icmp_errors_become_drops(planes: Planes) -> None:
    case = Case("icmp", "router", _eth(1) / _u6("2001:db8:b::1", hlim=1))
    assert planes.run("kernel", case).drop == "kernel-icmp-time-exceeded"
    case = Case("icmp4", "router", _eth(1) / _u4("10.2.0.1", ttl=1))
    assert planes.run("kernel", case).drop == "kernel-icmp4-time-exceeded"
    case = Case("unreach", "router", _eth(1) / _u6("2001:db8:99::1"))
    assert planes.run("kernel", case).drop == "kernel-icmp-dest-unreachable"
    # no route back to the sender: nothing comes out at all, the MIB counter names the drop
    pkt = IPv6(src="2001:db8:55::1", dst="2001:db8:99::1") / UDP() / Raw(b"x")
    case = Case("silent", "router", _eth(1) / pkt)
    drop = planes.run("kernel", case).drop or ""
    assert drop.startswith("kernel-dropped:") and "Ip6InNoRoutes" in drop.split(":")[1].split(",")


# ---------------------------------------------------------------------------------------------
# What the kernel supports, and what it refuses


@pytest.mark.needs_kernel("seg6")
def test_supports_names_what_the_kernel_lacks() -> None:
    assert KernelDataPlane.unavailable() is None
    for ok in (["End"], ["End.X"], ["H.Encaps", "H.Encaps.Red"], ["End.DT6", "End.DX4", "End.DX6"]):
        assert KernelDataPlane.supports(ok) is None
    assert KernelDataPlane.supports(["SRH-validation", "forwarding", "PSP", "NEXT-CSID"]) is None
    assert KernelDataPlane.supports(["H.Encaps", "APN"]) == "kernel seg6 has no APN"
    for never in ("deep-hash", "elephant", "IFIT-head", "IFIT-transit", "IFIT-tail", "ECN", "PFC"):
        reason = KernelDataPlane.supports([never])
        assert reason is not None and reason.startswith("kernel")
    assert "unknown" not in (KernelDataPlane.supports(["End"]) or "")
    assert (
        KernelDataPlane.supports(["Teleport"])
        == "kernel plane does not know the feature 'Teleport'"
    )
    assert (KernelDataPlane.supports(["End.X", "PSP"]) is None) == CAPS.psp_end_x
    assert (KernelDataPlane.supports(["End.DT4"]) is None) == CAPS.dt4
    assert (KernelDataPlane.supports(["End.DT46"]) is None) == CAPS.dt46


def _with(key: str, **changes: Any) -> NodeConfig:
    return node_from_dict({**NODES[key], **changes})


@pytest.mark.needs_kernel("seg6")
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"apn": {"classifiers": [{"match": {}, "apn_id": 1}]}}, "no APN"),
        ({"ifit": {"role": "transit"}}, "no IFIT"),
        ({"ecn": {"enabled": True}}, "ECN"),
        ({"pfc": {"enabled": True}}, "PFC"),
        ({"policies": [_policy("d", "", "H.Encaps", "fc00::1", dscp=10)]}, "DSCP"),
    ],
)
def test_configure_refuses_node_wide_features(changes: dict[str, Any], message: str) -> None:
    node = _with("router", **changes)
    plane = KernelDataPlane(prefix=PREFIX)
    try:
        with pytest.raises(KernelUnsupported, match=message):
            plane.configure(node)
        assert plane.namespaces == ()
    finally:
        plane.close()


_LAZY_SIDS = [
    {"sid": "fc00:1::51/128", "behaviour": "End", "flavours": ["psp", "next-csid"]},
    {"sid": "fc00:52::/48", "behaviour": "End", "flavours": ["next-csid"], "block_bits": 36},
    {"sid": "fc00:1::53/128", "behaviour": "End.DT4", "table": 10},
    {
        "sid": "fc00:1::54/128",
        "behaviour": "End.X",
        "flavours": ["psp"],
        "adjacency": {"port": 3, "mac": N3},
    },
]


@pytest.mark.needs_kernel("seg6")
@pytest.mark.parametrize(
    ("dst", "message"),
    [
        ("fc00:1::51", "ignores PSP"),
        ("fc00:52::1", "block_bits: 36; kernel NEXT-CSID needs a multiple of 8"),
        ("fc00:1::53", "End.DT4 needs a VRF device" if not CAPS.dt4 else None),
        ("fc00:1::54", "no PSP flavour for End.X" if not CAPS.psp_end_x else None),
        ("2001:db8:9::1", "one SID list per route (policy 'two' has 2)"),
    ],
)
def test_unsupported_sid_or_policy_refuses_only_its_packets(dst: str, message: str | None) -> None:
    """A SID or policy the kernel cannot run does not stop the node: only packets that need it
    raise (so a vector that never uses it still runs)."""
    two_lists = {
        "name": "two",
        "match": {"dst": "2001:db8:9::/48"},
        "sid_lists": [{"segments": ["fc00:2::1"]}, {"segments": ["fc00:3::1"]}],
    }
    node = _with(
        "router",
        local_sids=_LAZY_SIDS + [{"sid": "fc00:1::e/128", "behaviour": "End"}],
        policies=[two_lists],
    )
    plane = KernelDataPlane(prefix=PREFIX)
    try:
        plane.configure(node)
        ok = _eth(1) / _outer("fc00:1::e", 43) / _srh(["fc00:2::9", "fc00:1::e"], 1, 59)
        assert [o.port for o in plane.process(bytes(ok), PacketContext(in_port=1)).outputs] == [2]
        srh = _srh(["fc00:2::9", dst], 1, 41)
        pkt = (
            _eth(1) / _outer(dst, 43) / srh / _u6()
            if dst.startswith("fc00")
            else _eth(1) / _u6(dst)
        )
        if message is None:  # this kernel has it after all
            assert not plane.process(bytes(pkt), PacketContext(in_port=1)).outputs == []
        else:
            with pytest.raises(KernelUnsupported, match=re.escape(message)):
                plane.process(bytes(pkt), PacketContext(in_port=1))
    finally:
        plane.close()


def test_reserved_table_is_a_config_error() -> None:
    node = _with("router", routes=[{"prefix": "2001:db8::/32", "port": 2, "mac": N2, "table": 254}])
    with pytest.raises(ConfigError, match=r"routes\[0\]\.table: table 254 is reserved"):
        build_plan(node, FULL_CAPS, "t")


def test_plan_layout() -> None:
    plan = build_plan(_node("endpoint"), FULL_CAPS, "tester-ns")
    assert plan.veth_cmds[0] == (
        "link add p1 address 02:00:00:00:01:01 mtu 9000 type veth "
        "peer name t1 mtu 9000 netns tester-ns"
    )
    assert "sr tunsrc set fc00:1::1" in plan.node_cmds
    assert "neigh replace 100::3 lladdr 02:00:00:00:03:01 dev p3 nud permanent" in plan.node_cmds
    assert f"rule add pref 100 lookup {SID_TABLE}" in plan.v6_cmds
    assert (
        "route add fc00:0:100::/48 encap seg6local action End flavors next-csid lblen 32 nflen 16 "
        f"dev p1 table {SID_TABLE}"
    ) in plan.v6_cmds
    assert (
        "route add fc00:1::c4/128 encap seg6local action End.DX4 nh4 169.254.0.2 "
        f"dev p1 table {SID_TABLE}" in plan.v6_cmds
    )
    assert "route add 2001:db8:b::/48 via 100::3 dev p3 onlink table 10" in plan.v6_cmds
    assert plan.node_sysctls["net.ipv6.seg6_flowlabel"] == 1
    assert plan.node_sysctls["net.ipv6.conf.default.accept_dad"] == 0
    assert plan.tester_sysctls["net.ipv6.conf.default.disable_ipv6"] == 1
    steering = build_plan(_node("steering"), FULL_CAPS, "t")
    assert (
        "rule add pref 1000 from ::/0 to 2001:db8::/32 ipproto 6 lookup 70001" in steering.v6_cmds
    )
    assert "rule add pref 1002 from 0.0.0.0/0 to 0.0.0.0/0 iif p3 lookup 70003" in steering.v4_cmds
    assert f"rule add pref 201 from {SOURCE}/128 blackhole" in steering.v6_cmds


def test_triage_and_counters() -> None:
    local6 = frozenset({ipaddress.IPv6Address(SOURCE)})
    local4 = frozenset({ipaddress.IPv4Address("192.0.0.8")})
    mld = (
        Ether()
        / IPv6(src="::", dst="ff02::16", hlim=1)
        / IPv6ExtHdrHopByHop(options=[RouterAlert()])
        / ICMPv6MLReport2()
    )
    assert triage(bytes(mld), local6, local4).kind == "chatter"
    ns = Ether() / IPv6(src="fe80::1", dst="ff02::1:ff00:1", hlim=255) / ICMPv6ND_NS(tgt="fc00::1")
    assert triage(bytes(ns), local6, local4).kind == "chatter"
    forwarded_ns = Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6ND_NS(tgt="fc00::1")
    assert triage(bytes(forwarded_ns), local6, local4).kind == "output"
    te = Ether() / IPv6(src=SOURCE, dst="2001:db8::1") / ICMPv6TimeExceeded() / IPv6()
    assert triage(bytes(te), local6, local4) == triage(bytes(te), local6, local4)
    assert triage(bytes(te), local6, local4).reason == "kernel-icmp-time-exceeded"
    transit_te = (
        Ether() / IPv6(src="2001:db8::9", dst="2001:db8::1") / ICMPv6TimeExceeded() / IPv6()
    )
    assert triage(bytes(transit_te), local6, local4).kind == "output"
    assert triage(b"\x00" * 12 + b"\x08\x06" + b"\x00" * 28, local6, local4).kind == "chatter"
    snmp = "Ip: Forwarding InHdrErrors\nIp: 1 7\nIcmp: InMsgs\nIcmp: 3\n"
    assert parse_snmp(snmp) == {"IpForwarding": 1, "IpInHdrErrors": 7, "IcmpInMsgs": 3}
    assert parse_snmp("Ip6InNoRoutes                   \t5\nIcmp6InErrors 0\n") == {
        "Ip6InNoRoutes": 5,
        "Icmp6InErrors": 0,
    }


def test_registered_and_cleanup_of_dead_pids() -> None:
    assert dataplane_class("kernel") is KernelDataPlane
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = netns.create(f"{PREFIX}-{dead.pid}-abc123-t")
    live = netns.create(netns.unique_name(PREFIX))
    try:
        assert stale.name in cleanup_stale(PREFIX)
        assert not stale.exists() and live.exists()
    finally:
        stale.delete()
        live.delete()


def test_timing_per_packet(planes: Planes) -> None:
    """Budget: under 30 ms per packet with an output, under 100 ms per drop."""
    forwarded = Case("t", "router", _eth(1) / _u6("2001:db8:b::1"))
    dropped = Case(
        "t", "router", _eth(1) / IPv6(src="2001:db8:55::1", dst="2001:db8:99::1") / UDP()
    )
    planes.run("kernel", forwarded)
    out_times, drop_times = [], []
    for _ in range(50):
        t = time.perf_counter()
        assert planes.run("kernel", forwarded).outputs
        out_times.append(time.perf_counter() - t)
    for _ in range(10):
        t = time.perf_counter()
        assert planes.run("kernel", dropped).dropped
        drop_times.append(time.perf_counter() - t)
    out_ms, drop_ms = statistics.median(out_times) * 1e3, statistics.median(drop_times) * 1e3
    print(f"kernel plane: {out_ms:.1f} ms per forwarded packet, {drop_ms:.1f} ms per drop (median)")
    assert out_ms < 30 and drop_ms < 100


def _bad_checksum() -> Packet:
    pkt = IP(bytes(_u4("10.2.0.1")))
    pkt.chksum ^= 0xFFFF
    return pkt


def _bad_tlv_area() -> Packet:
    srh = _srh(["fc00:2::9", "fc00:1::e"], 1, 17)
    srh.len = 5  # 8 more octets: a TLV whose length runs past the header
    return _outer("fc00:1::e", 43) / srh / Raw(b"\x05\xff" + bytes(6)) / UDP(chksum=1)


def _ce(outer: IPv6) -> IPv6:
    outer.tc = 0x03
    return outer


KERNEL_CASES = [
    # RFC 1812 5.2.2: a router verifies the IPv4 header checksum
    ("router", _eth(1) / _bad_checksum(), 1, "drop"),
    # only frames sent to the port's own MAC are routed (PACKET_OTHERHOST / broadcast)
    ("router", Ether(src=HOST, dst="02:00:00:00:99:99") / _u6(), 1, "drop"),
    ("router", Ether(src=HOST, dst="ff:ff:ff:ff:ff:ff") / _u6(), 1, "drop"),
    # RFC 4291 2.5.6: packets with a link-local source are not forwarded
    ("router", _eth(1) / IPv6(src="fe80::1", dst="2001:db8:b::1") / UDP(chksum=1), 1, "drop"),
    # an SRH whose TLV area does not parse is refused (seg6_validate_srh)
    ("endpoint", _eth(1) / _bad_tlv_area(), 1, "drop"),
    # End whose next SID is another SID of this node: processed again here (End.DT6 -> port 3)
    (
        "endpoint",
        _eth(1) / _outer("fc00:1::e", 43) / _srh(["fc00:1::d6", "fc00:1::e"], 1, 41) / _u6(),
        1,
        "port 3",
    ),
    # no RFC 6040 at decapsulation: outer CE over an inner Not-ECT is forwarded, not dropped
    (
        "endpoint",
        _eth(2) / _ce(_outer("fc00:1::d6", 41, src=SOURCE)) / _u6(tc=0),
        2,
        "port 3 tc 0",
    ),
    (
        "endpoint",
        _eth(2) / _ce(_outer("fc00:1::d6", 41, src=SOURCE)) / _u6(tc=2),
        2,
        "port 3 tc 2",
    ),
]
KERNEL_CASE_IDS = [
    "ipv4-bad-checksum",
    "mac-not-ours",
    "mac-broadcast",
    "link-local-source",
    "srh-bad-tlv-area",
    "end-next-sid-local",
    "decap-ce-over-not-ect",
    "decap-ce-not-copied",
]
# The first six became part of the contract (pipeline.md): there the reference must agree.
SHARED = 6


@pytest.mark.parametrize(("node", "frame", "in_port", "verdict"), KERNEL_CASES, ids=KERNEL_CASE_IDS)
def test_kernel_behaviour_beyond_the_contract(
    planes: Planes, node: str, frame: Packet, in_port: int, verdict: str
) -> None:
    """What the kernel does beyond SPEC itself (docs/kernel-oracle.md)."""
    result = planes.run("kernel", Case("x", node, frame, in_port=in_port))
    if verdict == "drop":
        assert result.dropped and not result.outputs
        return
    (out,) = result.outputs
    words = verdict.split()
    assert out.port == int(words[1])
    if len(words) == 4:
        assert Ether(out.frame)[IPv6].tc == int(words[3])


@pytest.mark.parametrize(
    ("node", "frame", "in_port", "verdict"),
    KERNEL_CASES[:SHARED],
    ids=KERNEL_CASE_IDS[:SHARED],
)
def test_contract_follows_the_kernel_where_the_rfcs_do(
    planes: Planes, node: str, frame: Packet, in_port: int, verdict: str
) -> None:
    """pipeline.md adopted these kernel behaviours (RFC 1812, 4291, 8754, 8986 S15)."""
    result = planes.run("reference", Case("x", node, frame, in_port=in_port))
    if verdict == "drop":
        assert result.dropped and not result.outputs, result
        return
    (out,) = result.outputs
    assert out.port == int(verdict.split()[1])
