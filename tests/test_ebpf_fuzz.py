"""Property test: random and mutated packets through the eBPF programs give exactly what the
reference plane gives (same drop reason, or the same outputs byte for byte).

Truncated headers, bad lengths, SL/LE out of range, nested SRHs, IOAM options with lying lengths
and garbage APN options are made by mutating well-formed templates; every one of at least 10,000
frames goes through icpn_node (three nodes: headend, transit, egress, with their state carried
from frame to frame) and the host's icpn_host_apn. A frame the eBPF plane forwarded differently
from the reference would be a corrupted forward: the test fails on the first one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from ebpf_nodes import node
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import (
    HBHOptUnknown,
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrSegmentRouting,
    PadN,
)
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from pyctl.errors import PacketError
from pyctl.model.node import APNCarrier, NodeConfig, PacketContext
from pyctl.packets import pfc_frame
from pyctl.targets.base import Result
from pyctl.targets.ebpf import EBPFDataPlane
from pyctl.targets.ebpf.host import MIN_IP_FRAME, HostAPN
from pyctl.targets.reference import ReferenceDataPlane
from pyctl.targets.reference.apn import insert_apn, mark_data, option
from pyctl.targets.reference.frame import Drop, parse_ipv6

pytestmark = pytest.mark.root

BATCH = 100
EXAMPLES = 60  # x BATCH frames per node: 3 nodes x 6,000 + 2 x 1,000 host frames

APN_32 = HBHOptUnknown(otype=0x1E, optdata=bytes.fromhex("01000000 00010001"))
APN_LONG = HBHOptUnknown(
    otype=0x1E, optdata=bytes.fromhex("0200c000 0002000300040005 000003e8 00000005")
)
APN_GARBAGE = HBHOptUnknown(otype=0x1E, optdata=bytes.fromhex("07ff"))
ALTMARK = HBHOptUnknown(otype=0x12, optdata=bytes.fromhex("12345c00"))


def _ioam(remaining: int, area: int, node_len: int = 5, ns: int = 7) -> HBHOptUnknown:
    word = node_len << 11 | remaining
    head = ns.to_bytes(2, "big") + word.to_bytes(2, "big") + bytes.fromhex("f20000 00")
    return HBHOptUnknown(otype=0x31, optdata=b"\x00\x00" + head + bytes(range(area)))


def _udp(payload: bytes = b"icpn-fuzz") -> UDP:
    return UDP(sport=40000, dport=5000) / Raw(payload)


def _srh(segments: list[str], segleft: int) -> IPv6ExtHdrSegmentRouting:
    return IPv6ExtHdrSegmentRouting(addresses=segments, segleft=segleft)


def headend_templates(mac: str) -> list[bytes]:
    e = Ether(src="02:00:00:00:00:01", dst=mac)
    inner6 = IPv6(src="2001:db8:1::1", dst="2001:db8:2::2", hlim=64, tc=0xB9, fl=0x12345)
    bth = bytes.fromhex("64000000 000000a1 00000001")
    return [
        bytes(e / inner6 / _udp()),
        bytes(e / IPv6(src="2001:db8:1::1", dst="2001:db8:2::3", tc=46 << 2 | 1) / _udp()),
        bytes(e / inner6 / TCP(sport=1234, dport=80, flags="S")),
        bytes(e / inner6 / ICMPv6EchoRequest()),
        bytes(e / inner6 / UDP(sport=49152, dport=4791) / Raw(bth + bytes(16))),
        bytes(e / inner6 / IPv6ExtHdrHopByHop(options=[APN_32]) / _udp()),
        bytes(e / inner6 / IPv6ExtHdrHopByHop(options=[APN_LONG]) / _udp()),
        bytes(e / inner6 / IPv6ExtHdrDestOpt(options=[APN_GARBAGE, APN_32]) / _udp()),
        bytes(e / IP(src="10.0.1.1", dst="10.0.2.2", tos=2) / _udp()),
        bytes(e / IP(src="10.0.1.1", dst="10.0.2.2", options=b"\x01\x01\x01\x00") / _udp()),
        bytes(e / IPv6(src="2001:db8:1::1", dst="2001:db8:9::9") / _udp()),
        bytes(e / IPv6(src="2001:db8:1::1", dst="2001:db8:9::9") / IPv6ExtHdrHopByHop() / _udp()),
        bytes(pfc_frame("02:00:00:00:00:01", {3: 100, 5: 0})),
        bytes(e / ARP()),
        bytes(e / inner6 / _udp(bytes(1200))),
    ]


def transit_templates(mac: str) -> list[bytes]:
    e = Ether(src="02:00:00:00:0a:02", dst=mac)
    inner = IPv6(src="2001:db8:1::1", dst="2001:db8:2::2") / _udp()
    inner4 = IP(src="10.0.1.1", dst="10.0.2.2") / _udp()

    def outer(dst: str, *hdrs: object, tc: int = 1) -> IPv6:
        pkt = IPv6(src="fc00:a::1", dst=dst, hlim=64, tc=tc)
        for h in hdrs:
            pkt = pkt / h
        return pkt

    hbh_ifit = IPv6ExtHdrHopByHop(options=[ALTMARK, _ioam(25, 120)])
    hbh_lying = IPv6ExtHdrHopByHop(options=[ALTMARK, _ioam(60, 40)])
    return [
        bytes(e / outer("fc00:b::1", _srh(["fc00:d::d6", "fc00:b::1"], 1)) / inner),
        bytes(e / outer("fc00:b::2", _srh(["fc00:d::d6", "fc00:b::2"], 1)) / inner),
        bytes(e / outer("fc00:b::3", _srh(["fc00:d::d6", "fc00:c::1", "fc00:b::3"], 2)) / inner),
        bytes(e / outer("fc00:b::4", hbh_ifit, _srh(["fc00:d::d6", "fc00:b::4"], 1)) / inner),
        bytes(e / outer("fc00:b::1", hbh_ifit, _srh(["fc00:d::d6", "fc00:b::1"], 1)) / inner),
        bytes(e / outer("fc00:b::1", hbh_lying, _srh(["fc00:d::d6", "fc00:b::1"], 1)) / inner),
        bytes(e / outer("fcbb:bb00:100:200:300::") / inner),
        bytes(e / outer("fcbb:bb00:100::", _srh(["fc00:d::d6", "fcbb:bb00:100::"], 1)) / inner),
        bytes(e / outer("fc00:b::1", _srh(["fc00:b::d6", "fc00:b::1"], 1)) / inner),
        bytes(e / outer("fc00:b::1", _srh(["fc00:b::1"] * 9, 8)) / inner),
        bytes(e / outer("fc00:b::d6", _srh(["fc00:b::d6"], 0)) / inner),
        bytes(e / outer("fc00:b::d4", tc=3) / inner4),
        bytes(e / outer("fc00:b::c4") / inner4),
        bytes(e / outer("fc00:b::1", _srh(["fc00:b::1"], 0), _srh(["fc00:d::1"], 0)) / inner),
        bytes(
            e
            / outer("fc00:b::d6", _srh(["fc00:b::d6"], 0))
            / IPv6(src="fe80::1", dst="2001:db8:2::2")
            / _udp()
        ),
        bytes(e / IPv6(src="2001:db8:1::1", dst="2001:db8:2::2", hlim=2, tc=2) / _udp()),
        bytes(e / IP(src="10.0.1.1", dst="10.1.2.3", ttl=9, tos=1) / _udp()),
        bytes(pfc_frame("02:00:00:00:0a:02", {0: 300, 7: 3})),
    ]


def egress_templates(mac: str) -> list[bytes]:
    e = Ether(src="02:00:00:00:0c:02", dst=mac)
    inner = IPv6(src="2001:db8:1::1", dst="2001:db8:2::2", tc=2) / _udp()
    inner4 = IP(src="10.0.1.1", dst="10.0.2.2", tos=1) / _udp()
    hbh = IPv6ExtHdrHopByHop(options=[APN_32, ALTMARK, PadN(optdata=b"\x00\x00"), _ioam(20, 100)])
    return [
        bytes(
            e
            / IPv6(src="fc00:a::1", dst="fc00:d::d6", tc=3)
            / hbh
            / _srh(["fc00:d::d6", "fc00:b::1"], 0)
            / inner
        ),
        bytes(e / IPv6(src="fc00:a::1", dst="fc00:d::d4") / hbh / inner4),
        bytes(e / IPv6(src="fc00:a::1", dst="fc00:d::d46", tc=3) / inner4),
        bytes(e / IPv6(src="fc00:a::1", dst="fc00:d::c6") / _srh(["fc00:d::c6"], 0) / inner),
        bytes(e / IPv6(src="fc00:a::1", dst="fc00:d::c4") / inner4),
        bytes(e / IPv6(src="fc00:a::1", dst="fc00:9::1") / hbh / _udp()),
        bytes(
            e
            / IPv6(src="fc00:a::1", dst="fc00:d::d6")
            / IPv6ExtHdrHopByHop(options=[ALTMARK, _ioam(0, 20)])
            / inner
        ),
    ]


@dataclass
class Case:
    """One node on both planes, with its frames and the MAC its ports answer to."""

    node: NodeConfig
    templates: list[bytes]
    macs: dict[int, bytes]
    ebpf: EBPFDataPlane
    ref: ReferenceDataPlane


TEMPLATES = {"headend": headend_templates, "transit": transit_templates, "egress": egress_templates}


@pytest.fixture(scope="module", params=list(TEMPLATES))
def case(request: pytest.FixtureRequest) -> Iterator[Case]:
    kind = request.param
    n = node(kind)
    macs = {p.index: bytes.fromhex(p.mac.replace(":", "")) for p in n.ports}
    ebpf, ref = EBPFDataPlane(), ReferenceDataPlane()
    ebpf.configure(n)
    ref.configure(n)
    try:
        yield Case(n, TEMPLATES[kind](n.ports[0].mac), macs, ebpf, ref)
    finally:
        ebpf.close()


edit = st.tuples(st.integers(0, 255), st.integers(0, 255))
frame_plan = st.fixed_dictionaries(
    {
        "template": st.integers(0, 1000),
        "port": st.integers(0, 2),
        "edits": st.lists(edit, max_size=4),
        "cut": st.one_of(st.none(), st.integers(14, 400)),
        "tail": st.binary(max_size=8),
        "dt": st.integers(-2000, 3000),
        "rand32": st.integers(0, 0xFFFFFFFF),
        "queue": st.integers(0, 8000),
        "ingress": st.integers(0, 12000),
        "fix_v4": st.booleans(),
    }
)


def fix_ipv4_checksums(frame: bytearray) -> None:
    """Recompute the IPv4 header checksum of an outer (EtherType 0x0800) or inner (right after a
    40-byte IPv6 header) IPv4 header, so that mutations reach past the checksum check."""
    for base in (14, 54):
        if len(frame) < base + 20 or frame[base] >> 4 != 4:
            continue
        if base == 14 and frame[12:14] != b"\x08\x00":
            continue
        ihl = (frame[base] & 0x0F) * 4
        if ihl < 20 or len(frame) < base + ihl:
            continue
        frame[base + 10 : base + 12] = b"\x00\x00"
        total = sum(int.from_bytes(frame[base + i : base + i + 2], "big") for i in range(0, ihl, 2))
        while total > 0xFFFF:
            total = (total & 0xFFFF) + (total >> 16)
        frame[base + 10 : base + 12] = (~total & 0xFFFF).to_bytes(2, "big")


def _same(a: Result, b: Result) -> bool:
    key = [(o.port, o.frame) for o in a.outputs]
    return a.drop == b.drop and Counter(key) == Counter((o.port, o.frame) for o in b.outputs)


def _show(r: Result) -> str:
    return f"drop={r.drop} outputs={[(o.port, o.frame.hex()) for o in r.outputs]}"


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plans=st.lists(frame_plan, min_size=BATCH, max_size=BATCH))
def test_node_matches_the_reference_on_mutated_frames(case: Case, plans: list[dict]) -> None:
    time_us = 10_000
    ports = sorted(case.macs)
    for plan in plans:
        frame = bytearray(case.templates[plan["template"] % len(case.templates)])
        in_port = ports[plan["port"] % len(ports)]
        if frame[:6] != b"\x01\x80\xc2\x00\x00\x01":
            frame[:6] = case.macs[in_port]
        for pos, val in plan["edits"]:
            at = 14 + pos
            if at < len(frame):
                frame[at] = val
        if plan["cut"] is not None:
            frame = frame[: plan["cut"]]
        frame += plan["tail"]
        if plan["fix_v4"]:
            fix_ipv4_checksums(frame)
        time_us = max(0, time_us + plan["dt"])
        ctx = PacketContext(
            in_port=in_port,
            time_us=time_us,
            rand32=plan["rand32"],
            egress_queue_bytes={p: plan["queue"] for p in ports},
            egress_queue_packets={p: plan["queue"] // 1000 for p in ports},
            ingress_queue_bytes={(in_port, prio): plan["ingress"] for prio in range(8)},
        )
        got = case.ebpf.process(bytes(frame), ctx)
        want = case.ref.process(bytes(frame), ctx)
        assert _same(got, want), (
            f"{case.node.name}: frame {bytes(frame).hex()} in_port {in_port} time {time_us}\n"
            f"  ebpf:      {_show(got)}\n  reference: {_show(want)}"
        )


# --- the host's tc egress program -------------------------------------------------------------


def _host_node(carrier: str) -> NodeConfig:
    from pyctl.model.load import node_from_dict

    return node_from_dict(
        {
            "name": "H1",
            "role": "host",
            "node_id": 1,
            "ports": [{"index": 1, "mac": "02:00:00:00:00:01"}],
            "apn": {
                "carrier": carrier,
                "socket_marks": [
                    {"mark": 7, "apn_id": 0x00010001},
                    {"mark": 8, "apn_id": 9, "id_type": 3, "params": {"latency_us": 50}},
                ],
            },
        }
    )


def host_templates() -> list[bytes]:
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:0a:01")
    ip6 = IPv6(src="2001:db8:1::1", dst="2001:db8:2::2")
    return [
        bytes(e / ip6 / _udp()),
        bytes(e / ip6 / IPv6ExtHdrHopByHop() / _udp()),
        bytes(
            e
            / ip6
            / IPv6ExtHdrHopByHop(options=[PadN(optdata=bytes(12))])
            / IPv6ExtHdrDestOpt()
            / _udp()
        ),
        bytes(e / ip6 / IPv6ExtHdrDestOpt(options=[APN_32]) / _udp()),
        bytes(e / ip6 / _srh(["2001:db8:2::2"], 0) / _udp()),
        bytes(e / IP(src="10.0.1.1", dst="10.0.2.2") / _udp()),
    ]


def _host_expected(n: NodeConfig, frame: bytes, mark: int) -> bytes:
    """The reference's no-encapsulation insertion (pipeline.md 3) for a marked frame."""
    marks = dict(n.apn.socket_marks)
    if mark not in marks or frame[12:14] != b"\x86\xdd":
        return frame
    try:
        pkt = parse_ipv6(frame[14:])
    except Drop:
        return frame
    opt = option(n.apn.option_type, mark_data(marks[mark]))
    try:
        data = insert_apn(pkt, APNCarrier(n.apn.carrier), opt)
    except Drop:
        return frame
    return frame if data is None else frame[:14] + data + frame[14 + len(pkt.data) :]


@pytest.mark.parametrize("carrier", ["hbh", "doh"])
@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(plans=st.lists(frame_plan, min_size=BATCH, max_size=BATCH))
def test_host_program_matches_the_reference_insertion(carrier: str, plans: list[dict]) -> None:
    n = _host_node(carrier)
    templates = host_templates()
    with HostAPN(n) as host:
        for plan in plans:
            frame = bytearray(templates[plan["template"] % len(templates)])
            for pos, val in plan["edits"]:
                if 14 + pos < len(frame):
                    frame[14 + pos] = val
            if plan["cut"] is not None:
                frame = frame[: plan["cut"]]
            mark = (6, 7, 8)[plan["port"]]
            if len(frame) < MIN_IP_FRAME.get(bytes(frame[12:14]), 14):
                with pytest.raises(PacketError, match="cannot be test-run"):
                    host.process(bytes(frame), mark)
                continue
            got = host.process(bytes(frame), mark)
            assert got == _host_expected(n, bytes(frame), mark), (
                f"frame {bytes(frame).hex()} mark {mark}: got {got.hex()}"
            )
