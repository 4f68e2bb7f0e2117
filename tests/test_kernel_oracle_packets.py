"""The Linux kernel's seg6 / seg6local as an outside oracle, held against SPEC.md and the reference.

Every case of kernel_oracle_cases is pushed through the kernel data plane and the reference data
plane; each must produce the expected bytes after normalising only what SPEC leaves to the
node and what docs/kernel-oracle.md documents. The two planes are also compared with each
other directly. The kernel reports no drop reasons: for it a drop is checked as "dropped,
nothing out". Also here: the documented differences, what the kernel does beyond the
contract, and the per-packet timing budget.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from kernel_oracle_cases import CASES, actual_outputs, expected_outputs, explain
from kernel_oracle_rig import (
    CAPS,
    HOST,
    PREFIX,
    SOURCE,
    Case,
    _eth,
    _node,
    _outer,
    _srh,
    _u4,
    _u6,
    leaves_nothing_behind,  # noqa: F401 (autouse fixture)
)
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrSegmentRouting
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from pyctl.model.node import PacketContext
from pyctl.targets.base import DataPlane, Result
from pyctl.targets.kernel import KernelDataPlane
from pyctl.targets.reference import ReferenceDataPlane

pytestmark = [pytest.mark.root, pytest.mark.kernel]


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
