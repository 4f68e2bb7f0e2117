"""Reference data plane, SRv6 (SPEC 1, RFC 8754, RFC 8986, RFC 9800; docs/pipeline.md 2).

Expected packets are written from the RFC text: the input with exactly the fields the behaviour
changes set to their new values.
"""

from __future__ import annotations

import ipaddress
import struct
import zlib
from typing import Any

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, IPv6ExtHdrSegmentRouting
from scapy.packet import Packet, Raw
from test_reference import PEER, frame, make_plane, on_wire, route, run, single

SRH = IPv6ExtHdrSegmentRouting
PAYLOAD = UDP(sport=1000, dport=2000, chksum=0x1234) / Raw(b"payload")
ADJ3 = {"port": 3, "mac": PEER[3]}
ADJ2 = {"port": 2, "mac": PEER[2]}

ENDPOINT = {
    "local_sids": [
        {"sid": "fc00:2::e/128", "behaviour": "End"},
        {"sid": "fc00:2::ef/128", "behaviour": "End", "flavours": ["psp"]},
        {"sid": "fc00:2::7/128", "behaviour": "End.X", "adjacency": ADJ3},
        {"sid": "fc00:2::7f/128", "behaviour": "End.X", "flavours": ["psp"], "adjacency": ADJ3},
        {"sid": "fcbb:bb00:100::/48", "behaviour": "End", "flavours": ["next-csid"]},
        {
            "sid": "fcbb:bb00:101::/48",
            "behaviour": "End.X",
            "flavours": ["next-csid"],
            "adjacency": ADJ3,
        },
        {"sid": "fc00:2::d6/128", "behaviour": "End.DT6", "table": 10},
        {"sid": "fc00:2::d4/128", "behaviour": "End.DT4", "table": 20},
        {"sid": "fc00:2::46/128", "behaviour": "End.DT46"},
        {"sid": "fc00:2::a6/128", "behaviour": "End.DX6", "adjacency": ADJ3},
        {"sid": "fc00:2::a4/128", "behaviour": "End.DX4", "adjacency": ADJ2},
    ],
    "routes": [
        route("fc00:3::/32", 2),
        route("fc00:9::/32", 2),
        route("fcbb:bb00:200::/48", 3),
        route("2001:db8:b::/48", 2),
        route("2001:db8:b::/48", 3, table=10),
        route("198.51.100.0/24", 3, table=20),
        route("198.51.100.0/24", 2),
    ],
}


def endpoint() -> Any:
    return make_plane(**ENDPOINT)


def outer(dst: str, hlim: int = 64, **kw: Any) -> Packet:
    return IPv6(src="2001:db8:a::1", dst=dst, hlim=hlim, tc=0x28, fl=0x12345, **kw)


# End, End.X, PSP (RFC 8986 4.1, 4.2, 4.16.1)


def test_end_sl2_to_sl1() -> None:
    segs = ["fc00:9::1", "fc00:3::1", "fc00:2::e"]
    got = single(
        run(endpoint(), frame(outer("fc00:2::e") / SRH(addresses=segs, segleft=2) / PAYLOAD))
    )
    assert got.port == 2
    assert got.frame == on_wire(
        2, outer("fc00:3::1", 63) / SRH(addresses=segs, segleft=1) / PAYLOAD
    )


def test_end_sl1_to_sl0_keeps_the_srh_without_psp() -> None:
    segs = ["fc00:9::1", "fc00:2::e"]
    got = single(
        run(endpoint(), frame(outer("fc00:2::e", 9) / SRH(addresses=segs, segleft=1) / PAYLOAD))
    )
    assert got.frame == on_wire(2, outer("fc00:9::1", 8) / SRH(addresses=segs, segleft=0) / PAYLOAD)


def test_psp_removes_exactly_the_srh() -> None:
    segs = ["fc00:9::1", "fc00:2::ef"]
    pkt = outer("fc00:2::ef") / SRH(addresses=segs, segleft=1) / PAYLOAD
    got = single(run(endpoint(), frame(pkt)))
    assert got.frame == on_wire(2, outer("fc00:9::1", 63) / PAYLOAD)
    out_ip, in_ip = got.frame[14:], bytes(pkt)
    srh_len = 8 + 16 * len(segs)
    assert out_ip[6] == 17 and struct.unpack("!H", out_ip[4:6])[0] == len(in_ip) - 40 - srh_len
    assert out_ip[40:] == in_ip[40 + srh_len :]


def test_psp_patches_the_hbh_before_the_srh() -> None:
    segs = ["fc00:9::1", "fc00:2::ef"]
    hbh = IPv6ExtHdrHopByHop(options=[])
    pkt = outer("fc00:2::ef") / hbh / SRH(addresses=segs, segleft=1) / PAYLOAD
    got = single(run(endpoint(), frame(pkt)))
    assert got.frame == on_wire(
        2, outer("fc00:9::1", 63) / IPv6ExtHdrHopByHop(options=[]) / PAYLOAD
    )
    assert got.frame[14 + 40] == 17  # the HBH now names UDP


def test_psp_only_when_sl_reaches_zero() -> None:
    segs = ["fc00:9::1", "fc00:3::1", "fc00:2::ef"]
    got = single(
        run(endpoint(), frame(outer("fc00:2::ef") / SRH(addresses=segs, segleft=2) / PAYLOAD))
    )
    assert got.frame == on_wire(
        2, outer("fc00:3::1", 63) / SRH(addresses=segs, segleft=1) / PAYLOAD
    )


def test_end_x_uses_the_adjacency_not_the_fib() -> None:
    segs = ["fc00:9::1", "fc00:3::1", "fc00:2::7"]
    got = single(
        run(endpoint(), frame(outer("fc00:2::7") / SRH(addresses=segs, segleft=2) / PAYLOAD))
    )
    assert got.port == 3  # the FIB would say 2
    assert got.frame == on_wire(
        3, outer("fc00:3::1", 63) / SRH(addresses=segs, segleft=1) / PAYLOAD
    )
    to_nowhere = ["fd99::1", "fc00:2::7"]  # no route needed
    pkt = outer("fc00:2::7") / SRH(addresses=to_nowhere, segleft=1) / PAYLOAD
    assert single(run(endpoint(), frame(pkt))).port == 3


def test_end_x_psp() -> None:
    segs = ["fc00:9::1", "fc00:2::7f"]
    got = single(
        run(endpoint(), frame(outer("fc00:2::7f") / SRH(addresses=segs, segleft=1) / PAYLOAD))
    )
    assert got.frame == on_wire(3, outer("fc00:9::1", 63) / PAYLOAD)


def test_end_new_da_without_route() -> None:
    pkt = outer("fc00:2::e") / SRH(addresses=["fd99::1", "fc00:2::e"], segleft=1) / PAYLOAD
    assert run(endpoint(), frame(pkt)).drop == "no-route"


# SRH validation (RFC 8754 4.3.1.1, RFC 8986 4.1; pipeline.md 2)


def test_bad_last_entry() -> None:
    pkt = outer("fc00:2::e") / SRH(addresses=["fc00:9::1", "fc00:2::e"], segleft=1, lastentry=2)
    raw = bytes(pkt / PAYLOAD)
    assert raw[40 + 1] == 4 and raw[40 + 4] == 2  # HdrExtLen 4 holds 2 SIDs, LE says 3
    assert run(endpoint(), frame(IPv6(raw))).drop == "bad-srh-le"


def test_segments_left_beyond_last_entry_plus_one() -> None:
    segs = ["fc00:9::1", "fc00:2::e"]
    assert run(
        endpoint(), frame(outer("fc00:2::e") / SRH(addresses=segs, segleft=3) / PAYLOAD)
    ).drop == ("bad-srh-sl")
    # SL = LE + 1 is valid (a reduced SRH without S1): DA = List[LE]
    red = ["fc00:9::1", "fc00:3::1"]
    pkt = outer("fc00:2::e") / SRH(addresses=red, segleft=2) / PAYLOAD
    got = single(run(endpoint(), frame(pkt)))
    assert got.frame == on_wire(2, outer("fc00:3::1", 63) / SRH(addresses=red, segleft=1) / PAYLOAD)


def test_hop_limit_at_an_endpoint() -> None:
    segs = ["fc00:9::1", "fc00:2::e"]
    assert run(
        endpoint(), frame(outer("fc00:2::e", 1) / SRH(addresses=segs, segleft=1) / PAYLOAD)
    ).drop == ("hop-limit")
    assert run(
        endpoint(), frame(outer("fc00:2::e", 0) / SRH(addresses=segs, segleft=1) / PAYLOAD)
    ).drop == ("hop-limit")
    got = single(
        run(endpoint(), frame(outer("fc00:2::e", 2) / SRH(addresses=segs, segleft=1) / PAYLOAD))
    )
    assert got.frame[14 + 7] == 1


def test_validation_order() -> None:
    """RFC 8986 4.1 (pipeline.md 2): sl-zero (S02), hop-limit (S05), bad-srh-le / -sl (S09)."""
    bad_le_hl1 = outer("fc00:2::e", 1) / SRH(
        addresses=["fc00:9::1", "fc00:2::e"], segleft=1, lastentry=5
    )
    assert run(endpoint(), frame(bad_le_hl1 / PAYLOAD)).drop == "hop-limit"
    bad_le = outer("fc00:2::e") / SRH(addresses=["fc00:9::1", "fc00:2::e"], segleft=1, lastentry=5)
    assert run(endpoint(), frame(bad_le / PAYLOAD)).drop == "bad-srh-le"
    sl0_hl1 = outer("fc00:2::e", 1) / SRH(addresses=["fc00:2::e"], segleft=0)
    assert run(endpoint(), frame(sl0_hl1 / PAYLOAD)).drop == "sl-zero"


def test_sl_zero_at_end() -> None:
    pkt = outer("fc00:2::e") / SRH(addresses=["fc00:2::e"], segleft=0) / PAYLOAD
    assert run(endpoint(), frame(pkt)).drop == "sl-zero"


def test_no_srh_at_end_and_other_routing_types() -> None:
    assert run(endpoint(), frame(outer("fc00:2::e") / PAYLOAD)).drop == "no-srh"
    type0 = outer("fc00:2::e") / IPv6ExtHdrRouting(addresses=["fc00:9::1"], segleft=1) / PAYLOAD
    assert bytes(type0)[42] == 0
    assert run(endpoint(), frame(type0)).drop == "no-srh"  # a type-0 header is not an SRH


def test_truncated_srh_at_an_endpoint() -> None:
    raw = bytearray(
        bytes(outer("fc00:2::e") / SRH(addresses=["fc00:9::1", "fc00:2::e"], segleft=1))
    )
    raw[41] = 6  # claims 56 octets, 40 present
    assert run(endpoint(), frame(IPv6(bytes(raw)))).drop == "bad-srh"


# NEXT-CSID (RFC 9800, F3216)


def test_next_csid_shifts_the_argument() -> None:
    pkt = outer("fcbb:bb00:100:200:300::") / PAYLOAD
    got = single(run(endpoint(), frame(pkt)))
    assert got.port == 3
    assert got.frame == on_wire(3, outer("fcbb:bb00:200:300::", 63) / PAYLOAD)


def test_next_csid_keeps_sl_and_srh() -> None:
    segs = ["fc00:9::1", "fcbb:bb00:100:200::"]
    got = single(
        run(
            endpoint(),
            frame(outer("fcbb:bb00:100:200::") / SRH(addresses=segs, segleft=1) / PAYLOAD),
        )
    )
    expected = outer("fcbb:bb00:200::", 63) / SRH(addresses=segs, segleft=1) / PAYLOAD
    assert got.frame == on_wire(3, expected)


def test_next_csid_end_of_carrier_is_end() -> None:
    segs = ["fc00:9::1", "fcbb:bb00:100::"]
    got = single(
        run(endpoint(), frame(outer("fcbb:bb00:100::") / SRH(addresses=segs, segleft=1) / PAYLOAD))
    )
    assert got.frame == on_wire(
        2, outer("fc00:9::1", 63) / SRH(addresses=segs, segleft=0) / PAYLOAD
    )
    assert run(endpoint(), frame(outer("fcbb:bb00:100::") / PAYLOAD)).drop == "no-srh"


def test_next_csid_end_x_and_hop_limit() -> None:
    got = single(run(endpoint(), frame(outer("fcbb:bb00:101:f00::") / PAYLOAD)))
    assert got.port == 3
    assert got.frame == on_wire(3, outer("fcbb:bb00:f00::", 63) / PAYLOAD)
    assert run(endpoint(), frame(outer("fcbb:bb00:100:200::", 1) / PAYLOAD)).drop == "hop-limit"


def test_next_csid_other_formats() -> None:
    """F4816: block 48, C-SID 16; the argument is the 64 low bits."""
    dp = make_plane(
        local_sids=[
            {
                "sid": "fc00:0:1:7::/64",
                "behaviour": "End",
                "flavours": ["next-csid"],
                "block_bits": 48,
            }
        ],
        routes=[route("fc00:0:1::/48", 2)],
    )
    got = single(run(dp, frame(outer("fc00:0:1:7:8:9::") / PAYLOAD)))
    assert got.frame == on_wire(2, outer("fc00:0:1:8:9::", 63) / PAYLOAD)


# End.DT6 / DT4 / DT46 / DX6 / DX4 (RFC 8986 4.4-4.8)


def inner6(hlim: int = 20, tc: int = 0) -> Packet:
    return IPv6(src="2001:db8:c::1", dst="2001:db8:b::1", hlim=hlim, tc=tc) / PAYLOAD


def inner4(ttl: int = 20, tos: int = 0) -> Packet:
    return IP(src="192.0.2.1", dst="198.51.100.7", ttl=ttl, tos=tos, id=7) / PAYLOAD


def encapsulated(sid: str, inner: Packet, srh: bool = True, hlim: int = 64, tc: int = 0) -> Packet:
    o: Packet = IPv6(src="fc00:1::1", dst=sid, hlim=hlim, tc=tc)
    if srh:
        o = o / SRH(addresses=[sid, "fc00:3::1"], segleft=0)
    return o / inner


def test_dt6_strips_every_outer_header_and_looks_up_its_table() -> None:
    hbh = IPv6ExtHdrHopByHop(options=[])
    pkt = (
        IPv6(src="fc00:1::1", dst="fc00:2::d6")
        / hbh
        / SRH(addresses=["fc00:2::d6"], segleft=0)
        / inner6()
    )
    got = single(run(endpoint(), frame(pkt)))
    assert got.port == 3  # table 10, not table 0's port 2
    assert got.frame == on_wire(3, inner6(hlim=19))


def test_dt6_without_srh() -> None:
    got = single(run(endpoint(), frame(encapsulated("fc00:2::d6", inner6(), srh=False))))
    assert got.frame == on_wire(3, inner6(hlim=19))


def test_dt4_decrements_ttl_with_a_valid_checksum() -> None:
    got = single(run(endpoint(), frame(encapsulated("fc00:2::d4", inner4()))))
    assert got.port == 3
    assert got.frame == on_wire(3, inner4(ttl=19))  # scapy recomputes the checksum


def test_dt46_takes_both_families_from_table_0() -> None:
    assert single(run(endpoint(), frame(encapsulated("fc00:2::46", inner6())))).frame == on_wire(
        2, inner6(19)
    )
    assert single(run(endpoint(), frame(encapsulated("fc00:2::46", inner4())))).frame == on_wire(
        2, inner4(19)
    )


@pytest.mark.parametrize(
    ("sid", "inner"),
    [
        ("fc00:2::d6", inner4()),
        ("fc00:2::d4", inner6()),
        ("fc00:2::a6", inner4()),
        ("fc00:2::46", PAYLOAD),
    ],
)
def test_bad_inner(sid: str, inner: Packet) -> None:
    assert run(endpoint(), frame(encapsulated(sid, inner))).drop == "bad-inner"


def test_dx6_and_dx4_use_the_adjacency() -> None:
    got6 = single(run(endpoint(), frame(encapsulated("fc00:2::a6", inner6()))))
    assert got6.frame == on_wire(3, inner6(19))
    got4 = single(run(endpoint(), frame(encapsulated("fc00:2::a4", inner4(tos=0x10)))))
    assert got4.frame == on_wire(2, inner4(19, tos=0x10))


def test_decap_checks() -> None:
    dp = endpoint()
    sl1 = IPv6(src="fc00:1::1", dst="fc00:2::d6") / SRH(
        addresses=["fc00:2::d6", "fc00:2::d6"], segleft=1
    )
    assert run(dp, frame(sl1 / inner6())).drop == "sl-nonzero"
    bad_le = IPv6(src="fc00:1::1", dst="fc00:2::d6") / SRH(
        addresses=["fc00:2::d6"], segleft=0, lastentry=1
    )
    assert run(dp, frame(bad_le / inner6())).drop == "bad-srh-le"
    assert run(dp, frame(encapsulated("fc00:2::d6", inner6(hlim=1)))).drop == "hop-limit"
    # the outer header is not forwarded: its hop limit is not checked
    assert single(run(dp, frame(encapsulated("fc00:2::d6", inner6(), hlim=1)))).frame == on_wire(
        3, inner6(19)
    )
    truncated = bytes(encapsulated("fc00:2::d6", inner6()))[:-20]
    truncated = truncated[:4] + struct.pack("!H", len(truncated) - 40) + truncated[6:]
    assert run(dp, frame(IPv6(truncated))).drop == "bad-ipv6"
    away = IPv6(src="2001:db8:c::1", dst="2001:db8:7::1", hlim=5) / PAYLOAD
    assert run(dp, frame(encapsulated("fc00:2::d6", away))).drop == "no-route"


NOT_ECT, ECT1, ECT0, CE = 0, 1, 2, 3


@pytest.mark.parametrize(
    ("outer_ecn", "inner_ecn", "expected"),
    [
        (CE, ECT0, CE),
        (CE, ECT1, CE),
        (CE, CE, CE),
        (CE, NOT_ECT, None),
        (ECT1, ECT0, ECT0),
        (ECT0, NOT_ECT, NOT_ECT),
        (NOT_ECT, ECT1, ECT1),
    ],
)
def test_decap_ecn_rfc6040(outer_ecn: int, inner_ecn: int, expected: int | None) -> None:
    for inner, made in ((inner6, "tc"), (inner4, "tos")):
        pkt = encapsulated("fc00:2::46", inner(**{made: 0xB8 | inner_ecn}), tc=0x20 | outer_ecn)
        result = run(endpoint(), frame(pkt))
        if expected is None:
            assert result.drop == "ecn-not-ect-ce"
        else:
            assert single(result).frame == on_wire(2, inner(19, 0xB8 | expected))


# H.Encaps / H.Encaps.Red (RFC 8986 5.1, 5.2)

SOURCE = "fc00:1::1"
S1, S2, S3 = "fc00:2::1", "fc00:3::1", "fc00:4::1"


def headend(**extra: Any) -> Any:
    fields: dict[str, Any] = {
        "role": "headend",
        "source": SOURCE,
        "routes": [route("fc00:2::/32", 2), route("fc00:3::/32", 3), route("2001:db8:7::/48", 3)],
        "policies": [
            {
                "name": "three",
                "match": {"dst": "2001:db8:3::/48"},
                "sid_lists": [{"segments": [S1, S2, S3]}],
            },
            {
                "name": "red3",
                "match": {"dst": "2001:db8:4::/48"},
                "mode": "H.Encaps.Red",
                "sid_lists": [{"segments": [S1, S2, S3]}],
            },
            {
                "name": "red1",
                "match": {"dst": "2001:db8:5::/48"},
                "mode": "H.Encaps.Red",
                "sid_lists": [{"segments": [S2]}],
            },
            {
                "name": "v4",
                "match": {"dst": "198.51.100.0/24"},
                "sid_lists": [{"segments": [S1, S2]}],
            },
        ],
    }
    fields.update(extra)
    return make_plane(**fields)


def key_label(src: str, dst: str, proto: int, sport: int, dport: int) -> int:
    """SPEC 4 / pipeline.md 3 flow key, written out: src(16) dst(16) proto sport dport."""

    def a16(a: str) -> bytes:
        ip = ipaddress.ip_address(a)
        return ip.packed if ip.version == 6 else bytes(10) + b"\xff\xff" + ip.packed

    key = a16(src) + a16(dst) + bytes([proto]) + struct.pack("!HH", sport, dport)
    assert len(key) == 37
    return zlib.crc32(key) & 0xFFFFF


def user6(dst: str, hlim: int = 40, tc: int = 0xB8, fl: int = 0xABCDE) -> Packet:
    return IPv6(src="2001:db8:a::1", dst=dst, hlim=hlim, tc=tc, fl=fl) / PAYLOAD


def test_h_encaps_three_sids() -> None:
    inner = user6("2001:db8:3::1")
    got = single(run(headend(), frame(inner)))
    label = key_label("2001:db8:a::1", "2001:db8:3::1", 17, 1000, 2000)
    expected = (
        IPv6(src=SOURCE, dst=S1, hlim=39, tc=0xB8, fl=label)
        / SRH(addresses=[S3, S2, S1], segleft=2, lastentry=2)
        / inner
    )
    assert got.port == 2
    assert got.frame == on_wire(2, expected)
    assert got.frame[14 + 40 :][:8] == bytes(
        [41, 6, 4, 2, 2, 0, 0, 0]
    )  # NH, len, type, SL, LE, flags, tag


def test_h_encaps_red_three_sids_has_le1_sl2() -> None:
    inner = user6("2001:db8:4::1")
    got = single(run(headend(), frame(inner)))
    label = key_label("2001:db8:a::1", "2001:db8:4::1", 17, 1000, 2000)
    expected = (
        IPv6(src=SOURCE, dst=S1, hlim=39, tc=0xB8, fl=label)
        / SRH(addresses=[S3, S2], segleft=2, lastentry=1)
        / inner
    )
    assert got.frame == on_wire(2, expected)
    srh = got.frame[14 + 40 :]
    assert (srh[3], srh[4]) == (2, 1)


def test_h_encaps_red_one_sid_has_no_srh() -> None:
    inner = user6("2001:db8:5::1")
    got = single(run(headend(), frame(inner)))
    label = key_label("2001:db8:a::1", "2001:db8:5::1", 17, 1000, 2000)
    assert got.frame == on_wire(
        3, IPv6(src=SOURCE, dst=S2, hlim=39, tc=0xB8, fl=label, nh=41) / inner
    )


def test_h_encaps_ipv4_inner() -> None:
    inner = IP(src="192.0.2.1", dst="198.51.100.9", ttl=10, tos=0x2A) / PAYLOAD
    got = single(run(headend(), frame(inner)))
    label = key_label("192.0.2.1", "198.51.100.9", 17, 1000, 2000)
    expected = (
        IPv6(src=SOURCE, dst=S1, hlim=9, tc=0x2A, fl=label)
        / SRH(addresses=[S2, S1], segleft=1, nh=4)
        / inner
    )
    assert got.frame == on_wire(2, expected)
    assert got.frame[14 + 40] == 4


@pytest.mark.parametrize(("mode", "v6_label", "v4_label"), [("copy", 0xABCDE, 0), ("zero", 0, 0)])
def test_flow_label_modes(mode: str, v6_label: int, v4_label: int) -> None:
    dp = headend(flowlabel=mode)
    got = single(run(dp, frame(user6("2001:db8:3::1"))))
    assert int.from_bytes(got.frame[15:18], "big") & 0xFFFFF == v6_label
    got4 = single(run(dp, frame(IP(src="192.0.2.1", dst="198.51.100.9") / PAYLOAD)))
    assert int.from_bytes(got4.frame[15:18], "big") & 0xFFFFF == v4_label


def test_headend_drops() -> None:
    dp = headend()
    assert run(dp, frame(user6("2001:db8:3::1", hlim=1))).drop == "hop-limit"
    no_s1 = headend(routes=[route("fc00:3::/32", 3)])
    assert run(no_s1, frame(user6("2001:db8:3::1"))).drop == "no-route"


def test_unmatched_packets_are_forwarded_as_they_are() -> None:
    got = single(run(headend(), frame(user6("2001:db8:7::1", hlim=5))))
    assert got.frame == on_wire(3, user6("2001:db8:7::1", hlim=4))
