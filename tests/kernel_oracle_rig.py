"""The nodes the kernel-oracle tests configure (headends, an endpoint, a router, a steering
headend), the Case record and the packet builders the cases are written with, and the
check that the kernel plane leaves no namespace behind. Shared by tests/test_kernel_oracle_*.py,
tests/test_ebpf_kernel_oracle.py and tests/kernel_oracle_cases.py."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrSegmentRouting
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from pyctl.model.load import node_from_dict
from pyctl.model.node import NodeConfig
from pyctl.targets.kernel import probe
from pyctl.targets.kernel.probe import KernelCaps

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


def _our_netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)}


@pytest.fixture(scope="module", autouse=True)
def leaves_nothing_behind() -> Iterator[None]:
    before = _our_netns()
    yield
    assert _our_netns() - before == set(), "the kernel plane left namespaces behind"
