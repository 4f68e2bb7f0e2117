"""pyctl.packets, whole frames: validate_packet on a valid SRv6/IFIT frame and on broken ones,
and fuzzed malformed input (truncated, corrupted, random options) that never raises."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packet_bytes import (
    HOP_A,
    IFIT_COUNTER_REPORT,
    IFIT_TRACE_REPORT,
    MAC_A,
    SRH_HMAC,
    frame,
    h,
    three_hop_option,
)
from scapy.config import conf
from scapy.layers.inet import UDP
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrSegmentRouting,
    PadN,
)
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from pyctl.errors import PacketError
from pyctl.packets import (
    APN_PARA_BANDWIDTH,
    SRHTLVAPN,
    TRACE_TYPE_DEFAULT,
    AltMarkOption,
    APNOption,
    IFITReport,
    IOAMNodeRecord,
    IOAMTraceOption,
    ioam_trace_option,
    pfc_frame,
    roce_packet,
    validate_packet,
)

# ---------------------------------------------------------------- whole-frame validation


def srv6_ifit_frame() -> bytes:
    trace = ioam_trace_option(namespace_id=1, max_nodes=3)
    trace.stamp(IOAMNodeRecord.unpack(HOP_A, TRACE_TYPE_DEFAULT))
    return frame(
        IPv6(src="fc00:1::1", dst="fc00:2::")
        / IPv6ExtHdrHopByHop(
            options=[
                APNOption(apn_id=0x70001, para_type=APN_PARA_BANDWIDTH, params=[100]),
                AltMarkOption(flowmon_id=5, L=1),
                trace,
            ]
        )
        / IPv6ExtHdrSegmentRouting(
            addresses=["fc00:3::", "fc00:2::"], segleft=1, tlv_objects=[SRHTLVAPN(apn_id=5)]
        )
        / IPv6(src="2001:db8::1", dst="2001:db8::2")
        / UDP(sport=1, dport=2)
        / Raw(b"payload")
    )


def test_valid_srv6_ifit_frame_dissects() -> None:
    raw = srv6_ifit_frame()
    assert validate_packet(raw) == []
    pkt = Ether(raw)
    trace = next(o for o in pkt[IPv6ExtHdrHopByHop].options if isinstance(o, IOAMTraceOption))
    assert trace.path() == [1]
    assert pkt[IPv6ExtHdrSegmentRouting].tlv_objects[0].apn_id == 5
    assert pkt[UDP].sport == 1 and bytes(pkt) == raw


@dataclass(frozen=True)
class Broken:
    name: str
    raw: bytes
    message: str


def broken_frames() -> list[Broken]:
    good = srv6_ifit_frame()
    plen_overrun = bytearray(good)
    plen_overrun[18:20] = (2000).to_bytes(2, "big")
    unaligned = frame(
        IPv6()
        / IPv6ExtHdrHopByHop(
            autopad=0, options=[ioam_trace_option(max_nodes=1), PadN(optdata=bytes(4))]
        )
    )
    hbh_second = frame(IPv6() / IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop())
    rh2 = frame(IPv6(nh=43) / Raw(h("3b 02 02 01 00000000") + bytes(16)))
    srh_sl = bytearray(good)
    srh_at = 14 + 40 + good[14 + 40 + 1] * 8 + 8
    srh_sl[srh_at + 3] = 7
    return [
        Broken("short", good[:10], "frame of 10 bytes is shorter than the 14-byte Ethernet"),
        Broken("plen", bytes(plen_overrun), "IPv6 Payload Length 2000 overruns"),
        Broken("align", unaligned, "IOAM option is not 4-octet aligned"),
        Broken("hbh", hbh_second, "Hop-by-Hop header is not the first extension header"),
        Broken("rh2", rh2, "routing type 2 is not an SRH (type 4)"),
        Broken("sl", bytes(srh_sl), "SRH Segments Left 7 > Last Entry 1 + 1"),
        Broken("cut", good[:100], "overruns the header"),
    ]


@pytest.mark.parametrize("case", broken_frames(), ids=lambda c: c.name)
def test_validate_packet_reports(case: Broken) -> None:
    problems = validate_packet(case.raw)
    assert any(case.message in p for p in problems), problems


# ---------------------------------------------------------------- malformed input never raises

SEEDS = [
    srv6_ifit_frame(),
    frame(IPv6() / IPv6ExtHdrHopByHop(h("11 0b 01 00") + three_hop_option()) / UDP()),
    frame(IPv6() / UDP(dport=5391) / Raw(IFIT_TRACE_REPORT)),
    frame(IPv6() / UDP(dport=5391) / Raw(IFIT_COUNTER_REPORT)),
    frame(IPv6(nh=43) / Raw(SRH_HMAC)),
    bytes(pfc_frame(MAC_A, {3: 0xFFFF})),
    bytes(roce_packet("10.0.0.1", "10.0.0.2", dest_qp=5, payload=b"abc")),
]


@contextmanager
def quiet_dissector() -> Iterator[None]:
    """Default scapy behaviour (undecodable bytes become Raw), whatever another test set."""
    saved = conf.debug_dissector
    conf.debug_dissector = False
    try:
        yield
    finally:
        conf.debug_dissector = saved


def _exercise(raw: bytes) -> None:
    with quiet_dissector():
        pkt = Ether(raw)
    pkt.show(dump=True)
    assert bytes(pkt) == raw
    problems = validate_packet(raw)
    assert all(isinstance(p, str) for p in problems)
    for layer in (IOAMTraceOption, IFITReport):
        if layer in pkt:
            try:
                pkt[layer].records()
            except PacketError:
                pass


@settings(max_examples=400, deadline=None)
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_truncated_frames_never_raise(seed: bytes, data: st.DataObject) -> None:
    _exercise(seed[: data.draw(st.integers(14, len(seed)))])


@settings(max_examples=600, deadline=None)
@given(
    seed=st.sampled_from(SEEDS),
    flips=st.lists(st.tuples(st.integers(14, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
)
def test_corrupted_frames_never_raise(seed: bytes, flips: list[tuple[int, int]]) -> None:
    raw = bytearray(seed)
    for pos, value in flips:
        raw[pos % len(raw)] = value
    _exercise(bytes(raw))


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=120), otype=st.sampled_from([0x1E, 0x31, 0x12]))
def test_random_option_bytes_never_raise(body: bytes, otype: int) -> None:
    # Any option body of any length, inside a well-formed HBH: dissects, validates, no exception.
    opt = bytes([otype]) + body
    opt = opt[:1] + bytes([min(len(opt) - 2, 255)]) + opt[2:] if len(opt) >= 2 else opt
    hbh_len = (len(opt) + 2 + 7) // 8 * 8
    hbh = h("3b") + bytes([hbh_len // 8 - 1]) + opt + bytes(hbh_len - 2 - len(opt))
    _exercise(frame(IPv6(nh=0, plen=len(hbh))) + hbh)
