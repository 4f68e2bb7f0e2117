"""Reference data plane: registry, drop reasons, parsing and validation (docs/pipeline.md 0-1),
transit forwarding, checksums, and robustness against arbitrary frames.

The helpers at the top are shared by the other tests/test_reference_*.py files.
"""

from __future__ import annotations

import dataclasses
import re
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    IPv6ExtHdrSegmentRouting,
)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet, Raw

from pyctl import constants as C
from pyctl.errors import ConfigError, PacketError
from pyctl.model import PacketContext, node_from_dict
from pyctl.packets import AltMarkOption, ioam_trace_option
from pyctl.targets import open_dataplane
from pyctl.targets.base import Output, Result
from pyctl.targets.reasons import DROP_CODES, DROP_REASONS, reason_code, reason_name
from pyctl.targets.reference import ReferenceDataPlane
from pyctl.targets.reference.frame import checksum_update, inet_checksum

MACS = {1: "02:00:00:00:00:01", 2: "02:00:00:00:00:02", 3: "02:00:00:00:00:03"}
PEER = {1: "02:00:00:00:01:01", 2: "02:00:00:00:02:02", 3: "02:00:00:00:03:03"}
PIPELINE_MD = Path(__file__).resolve().parent.parent / "docs" / "pipeline.md"


def node_dict(**extra: Any) -> dict[str, Any]:
    node: dict[str, Any] = {
        "name": "n",
        "role": "transit",
        "node_id": 0x0A0B0C,
        "ports": [{"index": i, "mac": m} for i, m in MACS.items()],
    }
    node.update(extra)
    return node


def route(prefix: str, port: int, table: int = 0) -> dict[str, Any]:
    return {"prefix": prefix, "port": port, "mac": PEER[port], "table": table}


def make_plane(**extra: Any) -> ReferenceDataPlane:
    """A reference plane configured from YAML-shaped fields through the real loader."""
    dp = ReferenceDataPlane()
    dp.configure(node_from_dict(node_dict(**extra), "test"))
    return dp


def run(dp: ReferenceDataPlane, pkt: Packet | bytes, in_port: int = 1, **ctx: Any) -> Result:
    return dp.process(bytes(pkt), PacketContext(in_port=in_port, **ctx))


def single(result: Result) -> Output:
    assert result.drop is None, result.drop
    assert len(result.outputs) == 1, result.outputs
    return result.outputs[0]


def on_wire(port: int, ip: Packet | bytes) -> bytes:
    """What leaves `port` towards its neighbour: the Ethernet rewrite of pipeline.md 0."""
    raw = bytes(ip)
    ethertype = 0x86DD if raw[0] >> 4 == 6 else 0x0800
    return bytes(Ether(src=MACS[port], dst=PEER[port], type=ethertype)) + raw


def frame(ip: Packet) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:aa", dst=MACS[1]) / ip)


def udp6(src: str = "2001:db8::1", dst: str = "2001:db8:9::1", hlim: int = 64, **kw: Any) -> Packet:
    return (
        IPv6(src=src, dst=dst, hlim=hlim, **kw)
        / UDP(sport=1000, dport=2000, chksum=0x1234)
        / Raw(b"payload")
    )


TRANSIT_ROUTES = [
    route("2001:db8:9::/48", 2),
    route("2001:db8:9:1::/64", 3),
    route("2001:db8:8::/48", 2),
    route("2001:db8:8::/48", 3),
    route("10.0.0.0/8", 2),
    route("10.9.0.0/16", 3),
]


# Registry and drop reasons


def test_registered_under_its_name() -> None:
    dp = open_dataplane("reference")
    assert isinstance(dp, ReferenceDataPlane)
    assert dp.name == "reference"


def test_drop_reasons_are_exactly_those_of_pipeline_md() -> None:
    text = PIPELINE_MD.read_text()
    paragraph = text[text.index("Drop reasons and their codes") :].split("\n\n")[0]
    named = set(re.findall(r"`([a-z0-9-]+)`", paragraph)) - {"pyctl.constants.DROP_*"}
    assert named == set(DROP_REASONS.values())
    for name in DROP_REASONS.values():
        assert f"`{name}`" in text.split("## 1.")[1], f"{name} is never used in the steps"
    codes = {v for k, v in vars(C).items() if k.startswith("DROP_")}
    assert codes == set(DROP_REASONS)
    assert len(DROP_CODES) == len(DROP_REASONS)
    for code, name in DROP_REASONS.items():
        assert reason_code(name) == code and reason_name(code) == name
    with pytest.raises(KeyError, match="no-such"):
        reason_code("no-such")


def test_process_before_configure_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="configure"):
        ReferenceDataPlane().process(b"", PacketContext(in_port=1))


def test_unknown_in_port_is_named() -> None:
    dp = make_plane()
    with pytest.raises(PacketError, match="in_port 9"):
        run(dp, frame(udp6()), in_port=9)


def test_config_errors_name_the_field() -> None:
    dp = ReferenceDataPlane()
    tail = node_from_dict(node_dict(ifit={"role": "tail", "collector": {"address": "fd00::c"}}))
    with pytest.raises(ConfigError, match="ifit.collector"):
        dp.configure(tail)
    # 16 x 5 words > 61: the loader refuses it; a node built in Python reaches the plane
    with pytest.raises(ConfigError, match="ifit.max_nodes: 16 records"):
        node_from_dict(node_dict(ifit={"role": "head", "max_nodes": 16}))
    head = node_from_dict(node_dict(ifit={"role": "head", "max_nodes": 12}))
    big = dataclasses.replace(head, ifit=dataclasses.replace(head.ifit, max_nodes=16))
    with pytest.raises(ConfigError, match="ifit.max_nodes.*16"):
        dp.configure(big)
    opaque = node_from_dict(node_dict(ifit={"role": "head", "trace_type": 0x800002}))
    with pytest.raises(ConfigError, match="ifit.trace_type"):
        dp.configure(opaque)


# Step 3: parsing and validation


@pytest.mark.parametrize(
    "raw",
    [
        bytes(Ether(dst=MACS[1]) / ARP()),
        b"\x02\x00\x00\x00\x00\x01\x02\x00",  # shorter than an Ethernet header
        bytes(Ether(dst=MACS[1]) / Dot1Q(vlan=5) / udp6()),  # tagged frames are not handled
    ],
)
def test_not_ip(raw: bytes) -> None:
    assert run(make_plane(routes=TRANSIT_ROUTES), raw).drop == "not-ip"


def test_bad_ipv6() -> None:
    dp = make_plane(routes=TRANSIT_ROUTES)
    ip = bytearray(bytes(udp6()))
    ip[0] = 0x40  # version 4 behind EtherType IPv6
    assert run(dp, bytes(Ether(dst=MACS[1], type=0x86DD)) + bytes(ip)).drop == "bad-ipv6"
    longer = bytearray(bytes(udp6()))
    struct.pack_into("!H", longer, 4, len(longer) - 40 + 1)  # payload length past the frame
    assert run(dp, bytes(Ether(dst=MACS[1], type=0x86DD)) + bytes(longer)).drop == "bad-ipv6"
    short = bytes(udp6())[:39]  # shorter than the fixed header
    assert run(dp, bytes(Ether(dst=MACS[1], type=0x86DD)) + short).drop == "bad-ipv6"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.__setitem__(0, 0x44),  # IHL 4
        lambda b: struct.pack_into("!H", b, 2, len(b) + 1),  # total length past the frame
        lambda b: struct.pack_into("!H", b, 2, 19),  # total length below the header
        lambda b: b.__setitem__(0, 0x65),  # version 6 behind EtherType IPv4
    ],
)
def test_bad_ipv4(mutate: Any) -> None:
    ip = bytearray(bytes(IP(src="1.1.1.1", dst="10.1.1.1") / UDP() / Raw(b"x")))
    mutate(ip)
    dp = make_plane(routes=TRANSIT_ROUTES)
    assert run(dp, bytes(Ether(dst=MACS[1], type=0x0800)) + bytes(ip)).drop == "bad-ipv4"


def test_ipv4_options_and_padding_are_fine() -> None:
    ip = IP(src="1.1.1.1", dst="10.1.1.1", ttl=5, options=b"\x01\x01\x01\x00") / UDP() / Raw(b"x")
    raw = bytes(ip)
    out = single(run(make_plane(routes=TRANSIT_ROUTES), frame(ip) + bytes(10)))
    expected = bytearray(raw)
    expected[8] = 4
    struct.pack_into("!H", expected, 10, 0)
    struct.pack_into("!H", expected, 10, inet_checksum(bytes(expected[:24])))
    assert out.frame == on_wire(2, bytes(expected))


def _ext_chain(*headers: Packet) -> Packet:
    pkt: Packet = IPv6(src="2001:db8::1", dst="2001:db8:9::1")
    for h in headers:
        pkt = pkt / h
    return pkt / UDP(sport=1, dport=2, chksum=0x1234)


def test_four_extension_headers_pass_a_fifth_is_bad() -> None:
    dp = make_plane(routes=TRANSIT_ROUTES)
    four = _ext_chain(
        IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt(), IPv6ExtHdrRouting(), IPv6ExtHdrDestOpt()
    )
    assert run(dp, frame(four)).drop is None
    five = _ext_chain(
        IPv6ExtHdrHopByHop(),
        IPv6ExtHdrDestOpt(),
        IPv6ExtHdrRouting(),
        IPv6ExtHdrDestOpt(),
        IPv6ExtHdrDestOpt(),
    )
    assert run(dp, frame(five)).drop == "bad-exthdr"


def test_hbh_must_come_first() -> None:
    pkt = _ext_chain(IPv6ExtHdrDestOpt(), IPv6ExtHdrHopByHop())
    assert run(make_plane(routes=TRANSIT_ROUTES), frame(pkt)).drop == "bad-exthdr"


def test_truncated_extension_headers() -> None:
    dp = make_plane(routes=TRANSIT_ROUTES)
    hbh = bytearray(bytes(_ext_chain(IPv6ExtHdrHopByHop())))
    hbh[41] = 3  # 32 octets claimed, 16 present
    assert run(dp, frame(IPv6(bytes(hbh)))).drop == "bad-exthdr"
    srh = bytearray(
        bytes(_ext_chain(IPv6ExtHdrSegmentRouting(addresses=["fc00::1", "fc00::2"], segleft=1)))
    )
    srh[41] = 9  # HdrExtLen overruns the packet
    assert run(dp, frame(IPv6(bytes(srh)))).drop == "bad-srh"
    cut = bytes(_ext_chain(IPv6ExtHdrSegmentRouting(addresses=["fc00::1"])))[:44]
    cut = cut[:4] + struct.pack("!H", 4) + cut[6:]
    assert run(dp, frame(IPv6(cut))).drop == "bad-srh"


# Step 6: transit forwarding


def test_transit_ipv6_longest_prefix_and_hop_limit() -> None:
    dp = make_plane(routes=TRANSIT_ROUTES)
    out = single(run(dp, frame(udp6(dst="2001:db8:9:1::5", hlim=9))))
    assert out.port == 3
    assert out.frame == on_wire(3, udp6(dst="2001:db8:9:1::5", hlim=8))
    assert single(run(dp, frame(udp6(dst="2001:db8:9:2::5")))).port == 2
    assert single(run(dp, frame(udp6(dst="2001:db8:8::1")))).port == 2  # equal prefixes: first
    assert run(dp, frame(udp6(dst="2001:db8:7::1"))).drop == "no-route"
    assert run(dp, frame(udp6(hlim=1))).drop == "hop-limit"
    assert single(run(dp, frame(udp6(hlim=2)))).frame == on_wire(2, udp6(hlim=1))


def test_link_padding_is_removed() -> None:
    ip = IPv6(src="2001:db8::1", dst="2001:db8:9::1", hlim=3, nh=59)
    out = single(run(make_plane(routes=TRANSIT_ROUTES), frame(ip) + bytes(6)))
    assert out.frame == on_wire(2, IPv6(src="2001:db8::1", dst="2001:db8:9::1", hlim=2, nh=59))


def test_transit_ipv4_ttl_and_checksum() -> None:
    dp = make_plane(routes=TRANSIT_ROUTES)
    ip = IP(src="192.0.2.1", dst="10.9.1.1", ttl=64, tos=0xB8) / TCP(sport=5, dport=6)
    out = single(run(dp, frame(ip)))
    assert out.port == 3
    expected = IP(src="192.0.2.1", dst="10.9.1.1", ttl=63, tos=0xB8) / TCP(sport=5, dport=6)
    assert out.frame == on_wire(3, expected)
    assert run(dp, frame(IP(src="192.0.2.1", dst="10.1.1.1", ttl=1) / UDP())).drop == "hop-limit"
    assert run(dp, frame(IP(src="192.0.2.1", dst="11.1.1.1") / UDP())).drop == "no-route"


def test_ipv4_wrong_checksum_is_dropped() -> None:
    """RFC 1812 5.2.2: a router verifies the IPv4 header checksum."""
    ip = bytearray(bytes(IP(src="192.0.2.1", dst="10.1.1.1", ttl=64) / UDP()))
    struct.pack_into("!H", ip, 10, 0xFFFF)
    raw = bytes(Ether(src=PEER[1], dst=MACS[1], type=0x0800)) + bytes(ip)
    assert run(make_plane(routes=TRANSIT_ROUTES), raw).drop == "bad-ipv4"


def test_link_local_and_foreign_frames_are_not_forwarded() -> None:
    dp = make_plane(routes=[route("::/0", 2), route("0.0.0.0/0", 2)])
    assert run(dp, frame(udp6(src="fe80::1"))).drop == "link-local"
    assert run(dp, frame(udp6(dst="fe80::2"))).drop == "link-local"
    assert run(dp, frame(IP(src="169.254.1.1", dst="10.0.0.1") / UDP())).drop == "link-local"
    bcast = bytes(Ether(src=PEER[1], dst="ff:ff:ff:ff:ff:ff") / udp6())
    assert run(dp, bcast).drop == "not-for-me"
    other = bytes(Ether(src=PEER[1], dst=MACS[2]) / udp6())
    assert run(dp, other).drop == "not-for-me"
    assert single(run(dp, frame(udp6()))).port == 2


ipv4_headers = st.builds(
    lambda tos, ident, ttl, proto, src, dst: IP(
        tos=tos, id=ident, ttl=ttl, proto=proto, src=src, dst=dst
    ),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.integers(2, 255),
    st.integers(0, 255),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=4).map(str),
)


@given(ipv4_headers)
def test_incremental_checksum_equals_recompute_for_valid_headers(ip: IP) -> None:
    raw = bytearray(bytes(ip))
    old = struct.unpack_from("!H", raw, 8)[0]
    updated = checksum_update(struct.unpack_from("!H", raw, 10)[0], old, old - 0x100)
    raw[8] -= 1
    struct.pack_into("!H", raw, 10, 0)
    assert updated == inet_checksum(bytes(raw[:20]))


# Robustness: every frame gives a Result


def full_node() -> dict[str, Any]:
    """A node with every feature on, so that fuzzed frames reach every code path."""
    return node_dict(
        source="fc00:1::1",
        routes=[*TRANSIT_ROUTES, route("fc00::/16", 2), route("fd00::/16", 3), route("::/0", 2, 5)],
        local_sids=[
            {"sid": "fc00:1::e/128", "behaviour": "End", "flavours": ["psp"]},
            {"sid": "fc00:1:1::/48", "behaviour": "End", "flavours": ["next-csid", "psp"]},
            {
                "sid": "fc00:1::7/128",
                "behaviour": "End.X",
                "adjacency": {"port": 3, "mac": PEER[3]},
            },
            {"sid": "fc00:1::d6/128", "behaviour": "End.DT6", "table": 5},
            {"sid": "fc00:1::46/128", "behaviour": "End.DT46"},
            {
                "sid": "fc00:1::4/128",
                "behaviour": "End.DX4",
                "adjacency": {"port": 3, "mac": PEER[3]},
            },
        ],
        policies=[
            {
                "name": "p",
                "match": {"dst": "2001:db8:8::/48"},
                "sid_lists": [
                    {"segments": ["fc00:2::1", "fc00:3::1"]},
                    {"segments": ["fc00:4::1"]},
                ],
            },
            {
                "name": "red",
                "match": {"dst": "10.9.0.0/16"},
                "mode": "H.Encaps.Red",
                "sid_lists": [{"segments": ["fc00:2::1", "fc00:3::1", "fc00:5::1"]}],
            },
        ],
        apn={
            "classifiers": [{"match": {"proto": 17}, "apn_id": 0x10002, "params": {"loss_ppm": 3}}]
        },
        ifit={"role": "tail", "collector": {"address": "fd00::c"}, "max_nodes": 3},
        elephant={"threshold_bytes": 300, "width": 16},
        ecn={"kmin_bytes": 10, "kmax_bytes": 100},
        pfc={"buffer_bytes": 1000},
    )


def seed_frames() -> list[bytes]:
    """Valid frames that reach each feature of `full_node`, to be mutated."""
    inner = IPv6(src="2001:db8::1", dst="2001:db8:9::1", tc=1) / UDP(sport=1, dport=4791)
    inner = inner / Raw(bytes(16))
    ifit = IPv6ExtHdrHopByHop(options=[AltMarkOption(flowmon_id=5), ioam_trace_option(max_nodes=2)])
    return [
        frame(udp6(dst="2001:db8:8::1")),
        frame(IP(src="1.2.3.4", dst="10.9.1.1", tos=2) / UDP(sport=1, dport=2) / Raw(b"abc")),
        frame(
            IPv6(src="2001:db8::1", dst="fc00:1::e", tc=3)
            / IPv6ExtHdrSegmentRouting(addresses=["fc00:1::d6", "fc00:1::e"], segleft=1)
            / inner
        ),
        frame(IPv6(src="2001:db8::1", dst="fc00:1:1:2:3::") / inner),
        frame(IPv6(src="2001:db8::1", dst="fc00:1::46", tc=3) / ifit / inner),
        bytes(Ether(dst=MACS[1], type=0x8808)) + struct.pack("!HH8H", 0x0101, 0xFF, *range(8)),
    ]


def test_seed_frames_reach_the_features() -> None:
    """The mutation test starts from frames that the full node handles without a drop."""
    dp = ReferenceDataPlane()
    dp.configure(node_from_dict(full_node()))
    ports_used = [sorted(o.port for o in run(dp, raw).outputs) for raw in seed_frames()[:-1]]
    # plain, encapsulated IPv4, End + PSP, NEXT-CSID, DT46 at an IFIT tail (+ report)
    assert ports_used == [[2], [2], [2], [2], [2, 3]]
    assert run(dp, seed_frames()[-1]).drop == "pfc-consumed"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_random_frames_always_give_a_result(raw: bytes, port: int, rand: int) -> None:
    dp = ReferenceDataPlane()
    dp.configure(node_from_dict(full_node()))
    for prefix in (b"", bytes(12) + b"\x86\xdd", bytes(12) + b"\x08\x00"):
        r = run(dp, prefix + raw, in_port=port, rand32=rand, ingress_queue_bytes={(port, 0): 900})
        assert isinstance(r, Result)
        assert r.drop is None or r.drop in DROP_CODES


@settings(max_examples=400, deadline=None)
@given(
    st.integers(0, 5),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6),
    st.integers(0, 400),
    st.integers(0, 3_000_000),
)
def test_mutated_frames_always_give_a_result(
    which: int, flips: list[tuple[int, int]], cut: int, time_us: int
) -> None:
    dp = ReferenceDataPlane()
    dp.configure(node_from_dict(full_node()))
    raw = bytearray(seed_frames()[which])
    for pos, value in flips:
        if pos < len(raw):
            raw[pos] = value
    r = run(dp, bytes(raw[: max(cut, 14)]), time_us=time_us, egress_queue_bytes={2: 50})
    assert r.drop is None or r.drop in DROP_CODES
    for out in r.outputs:
        assert out.port in MACS and len(out.frame) >= 14
