"""Reference data plane: APN option, APN-keyed deep hashing and elephant detection (SPEC 2 and 4,
docs/pipeline.md 3). Option bytes are written out from SPEC; `pyctl.packets` layers (written
independently) cross-check them."""

from __future__ import annotations

import ipaddress
import struct
import zlib
from typing import Any

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop, IPv6ExtHdrSegmentRouting
from scapy.packet import Packet, Raw
from test_reference import frame, make_plane, on_wire, route, run, single

from pyctl.model.hashing import FlowKey
from pyctl.packets import APNOption

SRH = IPv6ExtHdrSegmentRouting
SOURCE = "fc00:1::1"
S1, S2, S3, S4 = "fc00:2::1", "fc00:3::1", "fc00:4::1", "fc00:5::1"
PAYLOAD = UDP(sport=1000, dport=2000, chksum=0x1234) / Raw(b"payload")
APP_ID = 0x00010002


def apn_option(apn_id: int, id_type: int = 1, para: int = 0, params: tuple[int, ...] = ()) -> bytes:
    """SPEC 2: type 0x1E, length, APN-ID-Type, Flags 0, APN-Para-Type, APN-ID, parameters."""
    width = {1: 4, 2: 8, 3: 16}[id_type]
    data = struct.pack("!BBH", id_type, 0, para) + apn_id.to_bytes(width, "big")
    data += b"".join(struct.pack("!I", p) for p in params)
    return bytes([0x1E, len(data)]) + data


def padded(nh: int, *options: bytes) -> bytes:
    """An option header with the options and PadN/Pad1 to 8n (no IOAM here)."""
    body = bytes([nh, 0]) + b"".join(options)
    pad = -len(body) % 8
    body += b"\x00" if pad == 1 else (bytes([1, pad - 2]) + bytes(pad - 2) if pad else b"")
    return bytes([nh, len(body) // 8 - 1]) + body[2:]


def headend(apn: dict[str, Any] | None = None, **extra: Any) -> Any:
    fields: dict[str, Any] = {
        "role": "headend",
        "source": SOURCE,
        "flowlabel": "zero",
        "routes": [route("fc00::/16", 2), route("2001:db8:7::/48", 3)],
        "policies": [
            {
                "name": "p",
                "match": {"dst": "2001:db8:3::/48"},
                "sid_lists": [{"segments": [S1, S2]}],
            },
            {
                "name": "red1",
                "match": {"dst": "2001:db8:5::/48"},
                "mode": "H.Encaps.Red",
                "sid_lists": [{"segments": [S1]}],
            },
        ],
        "apn": apn
        if apn is not None
        else {"classifiers": [{"match": {"proto": 17}, "apn_id": APP_ID}]},
    }
    fields.update(extra)
    return make_plane(**fields)


def user(dst: str = "2001:db8:3::1", *ext: Packet, hlim: int = 40) -> Packet:
    pkt: Packet = IPv6(src="2001:db8:a::1", dst=dst, hlim=hlim)
    for e in ext:
        pkt = pkt / e
    return pkt / PAYLOAD


def encapsulated(inner: Packet, *outer_ext: bytes, nh: int, srh: Packet | None = None) -> Packet:
    chain = b"".join(outer_ext) + (bytes(srh) if srh is not None else b"")
    return IPv6(src=SOURCE, dst=S1, hlim=39, nh=nh) / Raw(chain + bytes(inner))


def plain_srh(nh: int = 41) -> Packet:
    return SRH(addresses=[S2, S1], segleft=1, nh=nh)


def test_classifier_mark_goes_into_the_outer_hbh() -> None:
    apn = {
        "classifiers": [
            {
                "match": {"proto": 17},
                "apn_id": APP_ID,
                "params": {"bandwidth_kbps": 1000, "loss_ppm": 10},
            }
        ]
    }
    inner = user()
    got = single(run(headend(apn), frame(inner)))
    opt = apn_option(APP_ID, para=0x9000, params=(1000, 10))
    assert opt == bytes(APNOption(apn_id=APP_ID, para_type=0x9000, params=[1000, 10]))
    hbh = padded(43, opt)
    assert hbh == bytes([43, 2]) + opt + bytes([1, 2, 0, 0])
    assert got.frame == on_wire(2, encapsulated(inner, hbh, nh=0, srh=plain_srh()))


def test_carried_option_is_copied_and_left_in_the_inner() -> None:
    app = apn_option(0x00070001, para=0x4000, params=(250,))
    inner_hbh = IPv6ExtHdrHopByHop(bytes(padded(17, app)))
    inner = IPv6(src="2001:db8:a::1", dst="2001:db8:3::1", hlim=40, nh=0) / Raw(
        padded(17, app) + bytes(PAYLOAD)
    )
    assert bytes(inner_hbh) == padded(17, app)
    got = single(run(headend(), frame(inner)))
    assert got.frame == on_wire(2, encapsulated(inner, padded(43, app), nh=0, srh=plain_srh()))


def test_carried_option_in_a_doh_counts_too() -> None:
    app = apn_option(0x00070001)
    inner = IPv6(src="2001:db8:a::1", dst="2001:db8:3::1", hlim=40, nh=60) / Raw(
        padded(17, app) + bytes(PAYLOAD)
    )
    got = single(run(headend(), frame(inner)))
    assert got.frame == on_wire(2, encapsulated(inner, padded(43, app), nh=0, srh=plain_srh()))


def test_unusable_carried_option_counts_as_absent() -> None:
    broken = bytes([0x1E, 6, 1, 0, 0x80, 0, 0, 7])  # announces a parameter it does not carry
    inner = IPv6(src="2001:db8:a::1", dst="2001:db8:3::1", hlim=40, nh=0) / Raw(
        padded(17, broken) + bytes(PAYLOAD)
    )
    got = single(run(headend(), frame(inner)))
    assert got.frame == on_wire(
        2, encapsulated(inner, padded(43, apn_option(APP_ID)), nh=0, srh=plain_srh())
    )


def roce(qp: int, sport: int = 49152, dst: str = "2001:db8:3::1") -> Packet:
    bth = bytes([0x04, 0, 0xFF, 0xFF, 0]) + qp.to_bytes(3, "big") + bytes(4)
    return (
        IPv6(src="2001:db8:a::1", dst=dst, hlim=40)
        / UDP(sport=sport, dport=4791, chksum=0)
        / Raw(bth + bytes(8))
    )


def test_qp_map_comes_first() -> None:
    apn = {
        "qp_map": [{"qp": 0x12, "apn_id": 0x00010003}],
        "classifiers": [{"match": {"proto": 17}, "apn_id": APP_ID}],
    }
    app = apn_option(0x00070001)
    carried = IPv6(src="2001:db8:a::1", dst="2001:db8:3::1", hlim=40, nh=0) / Raw(
        padded(17, app) + bytes(roce(0x12)[UDP])
    )
    got = single(run(headend(apn), frame(carried)))
    assert got.frame == on_wire(
        2, encapsulated(carried, padded(43, apn_option(0x00010003)), nh=0, srh=plain_srh())
    )
    other_qp = roce(0x13)
    got = single(run(headend(apn), frame(other_qp)))
    assert got.frame == on_wire(
        2, encapsulated(other_qp, padded(43, apn_option(APP_ID)), nh=0, srh=plain_srh())
    )


@pytest.mark.parametrize(
    ("id_type", "apn_id"), [(2, 0x0001000200000000), (3, 0x0001_0002 << 96 | 5)]
)
def test_wide_apn_ids(id_type: int, apn_id: int) -> None:
    apn = {"classifiers": [{"match": {}, "apn_id": apn_id, "id_type": id_type}]}
    inner = user()
    got = single(run(headend(apn), frame(inner)))
    opt = apn_option(apn_id, id_type)
    assert got.frame == on_wire(2, encapsulated(inner, padded(43, opt), nh=0, srh=plain_srh()))


def test_doh_carrier() -> None:
    apn = {"carrier": "doh", "classifiers": [{"match": {}, "apn_id": APP_ID}]}
    inner = user()
    got = single(run(headend(apn), frame(inner)))
    assert got.frame == on_wire(
        2, encapsulated(inner, padded(43, apn_option(APP_ID)), nh=60, srh=plain_srh())
    )


def test_srh_tlv_carrier() -> None:
    apn = {"carrier": "srh-tlv", "classifiers": [{"match": {}, "apn_id": APP_ID}]}
    inner = user()
    got = single(run(headend(apn), frame(inner)))
    tlv = bytes([124, 8, 1, 0, 0, 0]) + APP_ID.to_bytes(4, "big")
    srh = (
        bytes([41, 6, 4, 1, 1, 0, 0, 0])
        + ipaddress.IPv6Address(S2).packed
        + ipaddress.IPv6Address(S1).packed
    )
    srh += tlv + bytes([4, 4, 0, 0, 0, 0])  # PadN to 8n
    assert len(srh) == 56
    assert got.frame == on_wire(
        2, IPv6(src=SOURCE, dst=S1, hlim=39, nh=43) / Raw(srh + bytes(inner))
    )


def test_srh_tlv_keeps_an_srh_for_one_reduced_sid() -> None:
    apn = {"carrier": "srh-tlv", "classifiers": [{"match": {}, "apn_id": APP_ID}]}
    inner = user("2001:db8:5::1")
    got = single(run(headend(apn), frame(inner)))
    srh = bytes([41, 4, 4, 0, 0, 0, 0, 0]) + ipaddress.IPv6Address(S1).packed
    srh += bytes([124, 8, 1, 0, 0, 0]) + APP_ID.to_bytes(4, "big") + bytes([4, 4, 0, 0, 0, 0])
    assert got.frame == on_wire(
        2, IPv6(src=SOURCE, dst=S1, hlim=39, nh=43) / Raw(srh + bytes(inner))
    )
    no_apn = single(run(headend({}), frame(inner)))
    assert no_apn.frame == on_wire(2, IPv6(src=SOURCE, dst=S1, hlim=39, nh=41) / inner)


# APN insertion without encapsulation


def marking_edge(carrier: str = "hbh") -> Any:
    return make_plane(
        routes=[route("2001:db8::/32", 2)],
        apn={"carrier": carrier, "classifiers": [{"match": {"dport": 2000}, "apn_id": APP_ID}]},
    )


def test_insertion_into_a_packet_without_hbh() -> None:
    got = single(run(marking_edge(), frame(user(hlim=9))))
    expected = IPv6(src="2001:db8:a::1", dst="2001:db8:3::1", hlim=8, nh=0) / Raw(
        padded(17, apn_option(APP_ID)) + bytes(PAYLOAD)
    )
    assert got.frame == on_wire(2, expected)


def test_no_insertion_when_the_header_exists_or_the_packet_is_marked() -> None:
    dp = marking_edge()
    with_hbh = user("2001:db8:3::1", IPv6ExtHdrHopByHop(options=[]), hlim=9)
    assert single(run(dp, frame(with_hbh))).frame == on_wire(
        2, user("2001:db8:3::1", IPv6ExtHdrHopByHop(options=[]), hlim=8)
    )
    v4 = IP(src="192.0.2.1", dst="198.51.100.1") / PAYLOAD
    assert run(dp, frame(v4)).drop == "no-route"  # IPv4 is forwarded unmarked (no route here)
    unmatched = IPv6(src="2001:db8:a::1", dst="2001:db8:3::1", hlim=9) / UDP(
        sport=1, dport=1, chksum=1
    )
    assert single(run(dp, frame(unmatched))).frame[14 + 6] == 17


def test_doh_insertion_goes_after_the_hbh() -> None:
    dp = marking_edge("doh")
    hbh = IPv6ExtHdrHopByHop(options=[])
    got = single(run(dp, frame(user("2001:db8:3::1", hbh, hlim=9))))
    expected = IPv6(src="2001:db8:a::1", dst="2001:db8:3::1", hlim=8, nh=0) / Raw(
        bytes([60, 0]) + bytes([1, 4, 0, 0, 0, 0]) + padded(17, apn_option(APP_ID)) + bytes(PAYLOAD)
    )
    assert got.frame == on_wire(2, expected)
    with_doh = user("2001:db8:3::1", IPv6ExtHdrDestOpt(options=[]), hlim=9)
    assert single(run(dp, frame(with_doh))).frame == on_wire(
        2, user("2001:db8:3::1", IPv6ExtHdrDestOpt(options=[]), hlim=8)
    )


# Policy choice and deep hashing (SPEC 4)

FOUR = [S1, S2, S3, S4]


def multipath(**extra: Any) -> Any:
    policy: dict[str, Any] = {
        "name": "mp",
        "match": {"dst": "2001:db8:3::/48"},
        "sid_lists": [{"segments": [s]} for s in FOUR],
        "buckets": [b % 4 for b in range(64)],
    }
    policy.update(extra.pop("policy", {}))
    fields: dict[str, Any] = {
        "source": SOURCE,
        "flowlabel": "zero",
        "routes": [route("fc00::/16", 2)],
        "policies": [policy],
        "apn": {
            "classifiers": [
                {"match": {"sport": 1}, "apn_id": 0x00010001},
                {"match": {"sport": 2}, "apn_id": 0x00010002},
                {"match": {"sport": 3}, "apn_id": 0x00010003},
                {"match": {"sport": 4}, "apn_id": 0x00010004},
            ]
        },
        "elephant": {"threshold_bytes": 1},  # every flow is an elephant at once
    }
    fields.update(extra)
    return make_plane(**fields)


def chosen(dp: Any, sport: int, dport: int) -> str:
    pkt = IPv6(src="2001:db8:a::1", dst="2001:db8:3::1") / UDP(sport=sport, dport=dport) / Raw(b"x")
    return str(ipaddress.IPv6Address(single(run(dp, frame(pkt))).frame[14 + 24 : 14 + 40]))


def by_apn(apn_id: int) -> str:
    return FOUR[zlib.crc32(apn_id.to_bytes(4, "big")) % 64 % 4]


def by_flow(sport: int, dport: int) -> str:
    key = (
        ipaddress.IPv6Address("2001:db8:a::1").packed
        + ipaddress.IPv6Address("2001:db8:3::1").packed
        + bytes([17])
        + struct.pack("!HH", sport, dport)
    )
    return FOUR[zlib.crc32(key) % 64 % 4]


def test_deep_hashing_keys_elephants_on_the_apn_id() -> None:
    ids = [0x00010001, 0x00010002, 0x00010003, 0x00010004]
    buckets = [zlib.crc32(i.to_bytes(4, "big")) % 64 for i in ids]
    assert len({b % 4 for b in buckets}) > 1, "the test needs APN-IDs on different SID lists"
    dp = multipath()
    for sport, apn_id in zip((1, 2, 3, 4), ids, strict=True):
        picks = {chosen(dp, sport, dport) for dport in range(100, 140)}
        assert picks == {by_apn(apn_id)}  # one path per APN-ID, whatever the 5-tuple
    assert by_apn(ids[0]) != by_apn(ids[1])  # buckets 61 and 7: SID lists 1 and 3
    assert chosen(dp, 1, 5) != chosen(dp, 2, 5)
    distinct = {by_apn(i) for i in ids}
    assert {chosen(dp, s, 7) for s in (1, 2, 3, 4)} == distinct


def test_mice_and_non_deep_policies_hash_the_5_tuple() -> None:
    mice = multipath(elephant={"threshold_bytes": 10**9})
    no_deep = multipath(policy={"deep_hash": False})
    no_apn = multipath(apn={})
    for dp in (mice, no_deep, no_apn):
        for dport in range(100, 120):
            assert chosen(dp, 1, dport) == by_flow(1, dport)
    assert len({by_flow(1, d) for d in range(100, 120)}) > 1


def test_policy_choice_by_apn_id() -> None:
    dp = make_plane(
        source=SOURCE,
        flowlabel="zero",
        routes=[route("fc00::/16", 2)],
        apn={"classifiers": [{"match": {"sport": 1}, "apn_id": 0x00010001}]},
        policies=[
            {"name": "gold", "match": {"apn_id": 0x00010001}, "sid_lists": [{"segments": [S1]}]},
            {"name": "rest", "match": {}, "sid_lists": [{"segments": [S2]}]},
        ],
    )
    assert chosen(dp, 1, 9) == S1
    assert chosen(dp, 2, 9) == S2


# Elephant detection (count-min sketch, windows, ageing)


def elephant_node(**cfg: Any) -> Any:
    settings = {"threshold_bytes": 3000, "window_us": 100_000, "idle_windows": 2}
    settings.update(cfg)
    return make_plane(routes=[route("2001:db8::/32", 2), route("10.0.0.0/8", 2)], elephant=settings)


def sized(sport: int, ip_len: int) -> Packet:
    """An IPv6/UDP packet whose IP length (40 + payload length) is `ip_len`."""
    return (
        IPv6(src="2001:db8:a::1", dst="2001:db8:3::1")
        / UDP(sport=sport, dport=80)
        / Raw(bytes(ip_len - 48))
    )


def key(sport: int) -> FlowKey:
    return FlowKey(
        ipaddress.IPv6Address("2001:db8:a::1"),
        ipaddress.IPv6Address("2001:db8:3::1"),
        17,
        sport,
        80,
    )


def test_elephant_after_threshold() -> None:
    dp = elephant_node()
    run(dp, frame(sized(1, 1000)), time_us=0)
    run(dp, frame(sized(1, 1000)) + bytes(30), time_us=10)  # link padding does not count
    assert dp.elephants() == frozenset()
    run(dp, frame(sized(1, 999)), time_us=20)
    assert dp.elephants() == frozenset()
    run(dp, frame(sized(1, 1001)), time_us=30)  # estimate 4000 >= 3000
    assert dp.elephants() == {key(1)}


def test_new_window_resets_the_sketch_and_elephants_age_out() -> None:
    dp = elephant_node()
    for t in (0, 1, 2):
        run(dp, frame(sized(1, 1000)), time_us=t)
    assert dp.elephants() == {key(1)}
    run(dp, frame(sized(2, 2500)), time_us=100_000)  # window 1: the sketch starts over
    run(dp, frame(sized(2, 499)), time_us=100_001)
    assert dp.elephants() == {key(1)}
    run(dp, frame(sized(3, 100)), time_us=200_000)  # window 2: flow 1 idle for one window
    assert dp.elephants() == {key(1)}
    run(dp, frame(sized(3, 100)), time_us=300_000)  # window 3: idle for windows 1 and 2
    assert dp.elephants() == frozenset()


def test_an_elephant_stays_while_it_sends() -> None:
    dp = elephant_node()
    run(dp, frame(sized(1, 3000)), time_us=0)
    for w in range(1, 8):
        run(dp, frame(sized(1, 60)), time_us=w * 100_000)
        assert dp.elephants() == {key(1)}


def test_rocev2_flows_are_keyed_by_qp() -> None:
    dp = elephant_node(threshold_bytes=2 * len(bytes(roce(7))))
    run(dp, frame(roce(7, sport=1000)))
    run(dp, frame(roce(7, sport=2000)))
    src, dst = ipaddress.IPv6Address("2001:db8:a::1"), ipaddress.IPv6Address("2001:db8:3::1")
    assert dp.elephants() == {FlowKey(src, dst, 17, qp=7)}


def test_ipv4_flows() -> None:
    dp = elephant_node(threshold_bytes=100)
    pkt = IP(src="192.0.2.1", dst="10.0.0.1") / UDP(sport=5, dport=6) / Raw(bytes(72))
    run(dp, frame(pkt))
    assert dp.elephants() == {
        FlowKey(ipaddress.IPv4Address("192.0.2.1"), ipaddress.IPv4Address("10.0.0.1"), 17, 5, 6)
    }
