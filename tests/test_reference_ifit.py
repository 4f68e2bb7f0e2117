"""Reference data plane, IFIT (SPEC 3, RFC 9197 / 9486 / 9341 / 9343; docs/pipeline.md 4):
head insertion, per-hop stamping, overflow, per-colour counters, the tail's report."""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop, IPv6ExtHdrSegmentRouting
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from test_reference import MACS, PEER, frame, make_plane, on_wire, route, run, single

from pyctl.packets import AltMarkOption, APNOption, IFITReport, IOAMTraceOption, ioam_trace_option
from pyctl.targets.base import Output
from pyctl.targets.reference import ReferenceDataPlane

SRH = IPv6ExtHdrSegmentRouting
PAYLOAD = UDP(sport=1000, dport=2000, chksum=0x1234) / Raw(b"payload")
FLOWMON = 42
HEAD_SRC, TAIL_SRC, COLLECTOR = "fc00:1::1", "fc00:3::1", "fd00::c"
TRANSIT_SID, TAIL_SID = "fc00:2::e", "fc00:3::46"
DEFAULT_TT = 0xF20000


def head(max_nodes: int = 8, **ifit: Any) -> ReferenceDataPlane:
    cfg: dict[str, Any] = {
        "role": "head",
        "max_nodes": max_nodes,
        "flows": [{"match": {"dst": "2001:db8:b::/48"}, "flowmon_id": FLOWMON}],
    }
    cfg.update(ifit)
    return make_plane(
        node_id=1,
        source=HEAD_SRC,
        flowlabel="zero",
        routes=[route("fc00:2::/32", 2)],
        policies=[
            {
                "name": "p",
                "match": {"dst": "2001:db8::/32"},
                "sid_lists": [{"segments": [TRANSIT_SID, TAIL_SID]}],
            }
        ],
        ifit=cfg,
    )


def transit() -> ReferenceDataPlane:
    return make_plane(
        node_id=2,
        local_sids=[{"sid": "fc00:2::e/128", "behaviour": "End"}],
        routes=[route("fc00:3::/32", 2)],
        ifit={"role": "transit"},
    )


def tail(**extra: Any) -> ReferenceDataPlane:
    fields: dict[str, Any] = {
        "node_id": 3,
        "source": TAIL_SRC,
        "local_sids": [{"sid": "fc00:3::46/128", "behaviour": "End.DT46"}],
        "routes": [route("2001:db8:b::/48", 3), route("198.51.100.0/24", 3), route("fd00::/16", 2)],
        "ifit": {"role": "tail", "collector": {"address": COLLECTOR}},
    }
    fields.update(extra)
    return make_plane(**fields)


def user(hlim: int = 40) -> Packet:
    return IPv6(src="2001:db8:a::1", dst="2001:db8:b::1", hlim=hlim) / PAYLOAD


def hop(dp: ReferenceDataPlane, raw: bytes, **ctx: Any) -> bytes:
    """One node: the packet in on port 1, its single forwarded frame out, as the next node's
    port 1 receives it (the destination MAC is that port's)."""
    out = single(run(dp, raw, in_port=1, **ctx)).frame
    return bytes.fromhex(MACS[1].replace(":", "")) + out[6:]


def node_data(hl: int, node_id: int, ingress: int, egress: int, time_us: int, queue: int) -> bytes:
    """Default trace type 0xF20000 (bits 0, 1, 2, 3, 6), 20 octets, as pipeline.md 4 lists them."""
    return struct.pack(
        "!IIIII",
        hl << 24 | node_id,
        ingress << 16 | egress,
        time_us // 10**6,
        time_us % 10**6,
        queue,
    )


def trace_of(raw: bytes) -> IOAMTraceOption:
    opts = Ether(raw)[IPv6ExtHdrHopByHop].options
    found: IOAMTraceOption = next(o for o in opts if isinstance(o, IOAMTraceOption))
    return found


def test_head_inserts_altmark_and_a_stamped_trace() -> None:
    t = 1_500_000  # period 1: L = 1; the first packet of the period: D = 1
    got = single(run(head(max_nodes=3), frame(user()), time_us=t, egress_queue_packets={2: 9}))
    altmark = bytes([0x12, 4]) + struct.pack("!I", FLOWMON << 12 | 1 << 11 | 1 << 10)
    area = bytes(40) + node_data(39, 1, 1, 2, t, 9)  # the head's record at the end of the area
    ioam = (
        bytes([0x31, 70, 0, 0])
        + struct.pack("!HH", 0, 5 << 11 | 10)
        + bytes([0xF2, 0, 0, 0])
        + area
    )
    hbh = bytes([43, 9]) + altmark + ioam  # 80 octets: the IOAM option starts at 8 = 4n, no padding
    assert len(hbh) == 80
    srh = SRH(addresses=[TAIL_SID, TRANSIT_SID], segleft=1)
    expected = IPv6(src=HEAD_SRC, dst=TRANSIT_SID, hlim=39, nh=0) / Raw(hbh + bytes(srh / user()))
    assert got.frame == on_wire(2, expected)
    # the independent scapy layers read the same thing
    opts = Ether(got.frame)[IPv6ExtHdrHopByHop].options
    trace = next(o for o in opts if isinstance(o, IOAMTraceOption))
    assert trace.path() == [1] and not trace.overflow
    mark = next(o for o in opts if isinstance(o, AltMarkOption))
    assert (mark.flowmon_id, mark.L, mark.D) == (FLOWMON, 1, 1)


def test_trace_is_aligned_after_an_apn_option() -> None:
    dp = make_plane(
        node_id=1,
        source=HEAD_SRC,
        flowlabel="zero",
        routes=[route("fc00:2::/32", 2)],
        policies=[{"name": "p", "match": {}, "sid_lists": [{"segments": [TRANSIT_SID]}]}],
        apn={"classifiers": [{"match": {}, "apn_id": 0x10002}]},
        ifit={"role": "head", "max_nodes": 1, "flows": [{"match": {}, "flowmon_id": 7}]},
    )
    ip = single(run(dp, frame(user()))).frame[14:]
    hbh = ip[40 : 40 + (ip[41] + 1) * 8]
    assert hbh[2:14] == bytes([0x1E, 8, 1, 0, 0, 0]) + (0x10002).to_bytes(4, "big") + bytes(
        [0x12, 4]
    )
    assert hbh[18:20] == bytes([1, 0])  # PadN of 2 so that the IOAM option starts at 20 = 4n
    assert hbh[20] == 0x31 and hbh[24:26] == bytes(2)  # namespace 0 on a 4-octet boundary
    assert len(hbh) % 8 == 0 and len(hbh) == 20 + 2 + 30 + 4  # PadN of 4 at the end


def chain(max_nodes: int = 8, time_us: int = 2_000_000) -> list[Output]:
    """head -> transit -> tail; the tail's outputs."""
    f = hop(head(max_nodes), frame(user()), time_us=time_us, egress_queue_packets={2: 4})
    f = hop(transit(), f, time_us=time_us + 10, egress_queue_packets={2: 5})
    result = run(tail(), f, in_port=1, time_us=time_us + 20, egress_queue_packets={3: 6})
    assert result.drop is None
    return result.outputs


def test_three_hops_three_records_most_recent_first() -> None:
    outputs = chain()
    forwarded = next(o for o in outputs if o.port == 3)
    assert forwarded.frame == on_wire(
        3, user(hlim=39)
    )  # the inner packet, options gone with the outer
    report = next(o for o in outputs if o.port == 2)
    rep = Ether(report.frame)[IFITReport]
    assert rep.node_count == 3
    records = rep.records(DEFAULT_TT)
    assert [r.node_id for r in records] == [3, 2, 1]
    assert [r.hop_limit for r in records] == [37, 38, 39]  # outer hop limit after each decrement
    assert [(r.ingress_if, r.egress_if) for r in records] == [(1, 3), (1, 2), (1, 2)]
    assert [r.queue_depth for r in records] == [6, 5, 4]
    assert [r.ts_subsec for r in records] == [20, 10, 0]


def test_overflow_at_max_nodes_plus_one() -> None:
    f = hop(head(max_nodes=1), frame(user()), time_us=5)
    before = IPv6(f[14:])[IPv6ExtHdrHopByHop].options[1]
    f2 = hop(transit(), f, time_us=6)
    after = IPv6(f2[14:])[IPv6ExtHdrHopByHop].options[1]
    assert not before.overflow and after.overflow
    assert after.data == before.data and after.remaining_len == 0  # nothing written
    word_at = (
        14 + 40 + 2 + 6 + 6
    )  # NodeLen|Flags|RemainingLen after type, len, reserved, opt-type, ns
    assert struct.unpack("!H", f2[word_at : word_at + 2])[0] == 5 << 11 | 0x0400
    two = [o for o in chain(max_nodes=2) if o.port == 2][0]
    rep = Ether(two.frame)[IFITReport]
    assert rep.node_count == 2 and [r.node_id for r in rep.records(DEFAULT_TT)] == [2, 1]


def test_report_bytes() -> None:
    """The report written out from SPEC 3: header, 5-tuple, the filled area."""
    outputs = chain(max_nodes=3, time_us=7_000_123)
    report = next(o for o in outputs if o.port == 2)
    t = 7_000_123
    records = (
        node_data(37, 3, 1, 3, t + 20, 6)
        + node_data(38, 2, 1, 2, t + 10, 5)
        + node_data(39, 1, 1, 2, t, 4)
    )
    header = struct.pack("!BBHIIII", 1, 3, 0, FLOWMON << 12 | 1 << 11 | 1 << 10, 3, 7, 123 + 20)
    five = struct.pack("!BBHHH", 6, 17, 1000, 2000, 0)
    five += (
        ipaddress.IPv6Address("2001:db8:a::1").packed
        + ipaddress.IPv6Address("2001:db8:b::1").packed
    )
    expected = (
        Ether(src=MACS[2], dst=PEER[2])
        / IPv6(src=TAIL_SRC, dst=COLLECTOR, hlim=64, tc=0, fl=0)
        / UDP(sport=5391, dport=5391)  # scapy computes the checksum
        / Raw(header + five + records)
    )
    assert report.frame == bytes(expected)


def test_report_for_an_ipv4_inner_packet() -> None:
    inner = IP(src="192.0.2.1", dst="198.51.100.9", ttl=30) / UDP(sport=7, dport=9) / Raw(b"v4")
    hdr = IPv6(src=HEAD_SRC, dst=TAIL_SID, hlim=5) / IPv6ExtHdrHopByHop(
        options=[AltMarkOption(flowmon_id=9), ioam_trace_option(max_nodes=2)]
    )
    result = run(tail(), frame(hdr / inner), time_us=3)
    rep = Ether(next(o for o in result.outputs if o.port == 2).frame)[IFITReport]
    assert (rep.family, rep.proto, rep.sport, rep.dport) == (4, 17, 7, 9)
    raw = bytes(rep)
    assert raw[28:44] == bytes(10) + b"\xff\xff" + bytes([192, 0, 2, 1])
    assert [r.hop_limit for r in rep.records(DEFAULT_TT)] == [4]  # outer hop limit 5 minus one
    forwarded = next(o for o in result.outputs if o.port == 3)
    assert forwarded.frame == on_wire(
        3, IP(src="192.0.2.1", dst="198.51.100.9", ttl=29) / UDP(sport=7, dport=9) / Raw(b"v4")
    )


def test_colour_and_d_flag() -> None:
    dp = head(period_us=1000, d_every=3)
    marks = []
    for t in (0, 1, 2, 3, 4, 1000, 1001, 2000):
        ip = IPv6(single(run(dp, frame(user()), time_us=t)).frame[14:])
        m = ip[IPv6ExtHdrHopByHop].options[0]
        marks.append((m.L, m.D))
    assert marks == [(0, 1), (0, 0), (0, 0), (0, 1), (0, 0), (1, 1), (1, 0), (0, 1)]


def test_counters_per_flowmon_and_colour() -> None:
    h, t = head(period_us=1000), transit()
    sizes = []
    for time_us in (0, 10, 1500):
        f = hop(h, frame(user()), time_us=time_us)
        sizes.append(len(f) - 14)
        hop(t, f, time_us=time_us)
    assert h.counters() == {(FLOWMON, 0): (2, sizes[0] + sizes[1]), (FLOWMON, 1): (1, sizes[2])}
    assert t.counters() == h.counters()
    plain = make_plane(routes=[route("2001:db8::/32", 2)])
    run(plain, frame(user()))
    assert plain.counters() == {}


def test_tail_that_does_not_decapsulate_strips_the_options() -> None:
    dp = tail(
        local_sids=[{"sid": "fc00:3::e/128", "behaviour": "End"}],
        routes=[route("fc00::/16", 3), route("fd00::/16", 2)],
    )
    apn = bytes([0x1E, 8, 1, 0, 0, 0, 0, 1, 0, 2])
    ifit = IPv6ExtHdrHopByHop(
        options=[
            APNOption(apn_id=0x10002),
            AltMarkOption(flowmon_id=5),
            ioam_trace_option(max_nodes=2),
        ],
        autopad=1,
    )
    ifit_only = IPv6ExtHdrHopByHop(
        options=[AltMarkOption(flowmon_id=5), ioam_trace_option(max_nodes=2)]
    )
    inner = IPv6(src="2001:db8:a::1", dst="2001:db8:b::1") / PAYLOAD
    srh = SRH(addresses=["fc00:9::1", "fc00:3::e"], segleft=1)
    base = IPv6(src=HEAD_SRC, dst="fc00:3::e", hlim=9)
    # with an APN option left: HBH = APN + PadN to 16 octets
    got = run(dp, frame(base / ifit / srh / inner))
    fwd = next(o for o in got.outputs if o.port == 3)
    kept = bytes([43, 1]) + apn + bytes([1, 2, 0, 0])
    expected = IPv6(src=HEAD_SRC, dst="fc00:9::1", hlim=8, nh=0) / Raw(
        kept + bytes(SRH(addresses=["fc00:9::1", "fc00:3::e"], segleft=0) / inner)
    )
    assert fwd.frame == on_wire(3, expected)
    rep = Ether(next(o for o in got.outputs if o.port == 2).frame)[IFITReport]
    assert (rep.family, rep.proto, rep.sport, rep.dport, rep.flowmon_id) == (6, 41, 0, 0, 5)
    assert rep.dst == "fc00:9::1"  # the packet as it leaves
    # with nothing left the HBH goes
    got = run(dp, frame(base / ifit_only / srh / inner))
    fwd = next(o for o in got.outputs if o.port == 3)
    assert fwd.frame == on_wire(
        3,
        IPv6(src=HEAD_SRC, dst="fc00:9::1", hlim=8)
        / SRH(addresses=["fc00:9::1", "fc00:3::e"], segleft=0)
        / inner,
    )


def test_fields_the_node_cannot_provide_are_all_ones() -> None:
    tt = 1 << 23 | 1 << (23 - 4) | 1 << (23 - 8) | 1 << (23 - 12)  # bits 0, 4, 8 (wide), 12
    dp = head(max_nodes=1, trace_type=tt)
    ip = single(run(dp, frame(user()))).frame[14:]
    hbh = IPv6(ip)[IPv6ExtHdrHopByHop]
    trace = hbh.options[1]
    assert trace.node_len == 5
    assert trace.data == struct.pack("!I", 39 << 24 | 1) + b"\xff" * 16


def test_unusable_traces_are_left_alone() -> None:
    other_ns = IPv6ExtHdrHopByHop(options=[ioam_trace_option(namespace_id=7, max_nodes=2)])
    pkt = IPv6(src=HEAD_SRC, dst="fc00:3::1", hlim=9) / other_ns / PAYLOAD
    f = hop(transit(), frame(pkt))
    expected = on_wire(2, IPv6(src=HEAD_SRC, dst="fc00:3::1", hlim=8) / other_ns / PAYLOAD)
    assert f[6:] == expected[6:]  # `hop` readdressed the frame to the next node
    stamped = hop(
        transit(),
        frame(
            IPv6(src=HEAD_SRC, dst="fc00:3::1")
            / IPv6ExtHdrHopByHop(options=[ioam_trace_option(max_nodes=2)])
            / PAYLOAD
        ),
    )
    assert trace_of(stamped).path() == [2]


def test_head_without_a_matching_flow_adds_nothing() -> None:
    dp = head()
    other = IPv6(src="2001:db8:a::1", dst="2001:db8:c::1", hlim=40) / PAYLOAD
    ip = single(run(dp, frame(other))).frame[14:]
    assert ip[6] == 43  # straight to the SRH


def test_tail_without_route_to_the_collector_still_forwards() -> None:
    f = hop(transit(), hop(head(), frame(user())))
    dp = tail(routes=[route("2001:db8:b::/48", 3)])
    assert single(run(dp, f)).port == 3


def test_decapsulating_transit_node_ignores_the_outer_options() -> None:
    dp = tail(ifit={"role": "transit"})
    f = hop(transit(), hop(head(), frame(user())))
    assert single(run(dp, f)).frame == on_wire(3, user(hlim=39))
    assert dp.counters() == {}
