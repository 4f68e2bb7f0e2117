"""pyctl.packets, the IOAM trace option (SPEC §3, RFC 9197/9486) and the Alternate-Marking
option (RFC 9343): bytes written by hand, stamping, overflow, malformed options, validation
messages and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packet_bytes import HOP_A, HOP_B, frame, h, three_hop_option
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop, PadN
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from pyctl.errors import PacketError
from pyctl.packets import (
    IOAM_OVERFLOW_FLAG,
    TRACE_TYPE_DEFAULT,
    AltMarkOption,
    APNOption,
    IOAMNodeRecord,
    IOAMTraceOption,
    ioam_trace_option,
    node_len_for,
    parse_node_data,
    trace_type_from_bits,
    validate_ioam,
    validate_packet,
)

# ---------------------------------------------------------------- IOAM (SPEC §3, RFC 9197/9486)

# Empty default trace, namespace 1, room for 2 nodes.
IOAM_EMPTY_2 = h(
    """
    31 32 00 00    # type 0x31, Opt Data Len 50, Reserved, IOAM-Option-Type 0
    0001 280a      # Namespace-ID 1 | NodeLen 5 (0x2800), Flags 0, RemainingLen 10
    f20000 00      # IOAM-Trace-Type bits 0,1,2,3,6 | Reserved
    """
) + bytes(40)


def test_trace_type_constants() -> None:
    assert TRACE_TYPE_DEFAULT == 0xF20000 == trace_type_from_bits(0, 1, 2, 3, 6)
    assert node_len_for(TRACE_TYPE_DEFAULT) == 5
    assert node_len_for(trace_type_from_bits(8, 9, 10)) == 6
    assert node_len_for(trace_type_from_bits(*range(12))) == 15
    assert node_len_for(trace_type_from_bits(12, 13)) == 2
    assert node_len_for(trace_type_from_bits(22, 23)) == 0
    assert IOAM_OVERFLOW_FLAG == 0x0400
    with pytest.raises(PacketError, match="does not fit 24 bits"):
        node_len_for(1 << 24)


def test_ioam_empty_trace_bytes() -> None:
    opt = ioam_trace_option(namespace_id=1, max_nodes=2)
    assert bytes(opt) == IOAM_EMPTY_2
    assert bytes(IOAMTraceOption(namespace_id=1, data=bytes(40))) == IOAM_EMPTY_2  # auto lengths
    assert opt.records() == []
    assert validate_ioam(IOAM_EMPTY_2) == []


def test_ioam_three_hop_records() -> None:
    hbh = h("11 0b 01 00") + three_hop_option()  # 4 + 92 = 96 = 12 x 8
    opt = IPv6ExtHdrHopByHop(hbh).options[1]
    assert isinstance(opt, IOAMTraceOption)
    assert (opt.namespace_id, opt.node_len, opt.remaining_len, opt.trace_type) == (
        1,
        5,
        5,
        0xF20000,
    )
    assert not opt.flags.overflow
    recs = opt.records()
    assert [r.node_id for r in recs] == opt.path() == [3, 2, 1]
    assert recs[0] == IOAMNodeRecord(
        hop_limit=0x3D,
        node_id=3,
        ingress_if=5,
        egress_if=0xFFFF,
        ts_sec=0x65000001,
        ts_subsec=10,
        queue_depth=2,
    )
    assert (recs[1].queue_depth, recs[1].ts_subsec, recs[2].hop_limit) == (7, 250, 0x3F)
    assert validate_ioam(three_hop_option()) == []


def test_ioam_stamp_writes_at_remaining_len_and_overflows() -> None:
    opt = ioam_trace_option(namespace_id=1, max_nodes=1)
    rec = IOAMNodeRecord.unpack(HOP_A, TRACE_TYPE_DEFAULT)
    assert opt.stamp(rec) is True
    assert bytes(opt) == h("31 1e 00 00 0001 2800 f20000 00") + HOP_A
    assert opt.stamp(rec) is False
    # Overflow flag set (0x0400 of the NodeLen|Flags|RemainingLen word), area untouched.
    assert bytes(opt) == h("31 1e 00 00 0001 2c00 f20000 00") + HOP_A
    assert opt.flags.overflow and opt.overflow
    assert opt.records() == [rec]


def test_ioam_overflow_flag_dissects() -> None:
    raw = h("31 1e 00 00 0001 2c00 f20000 00") + HOP_B
    opt = IPv6ExtHdrHopByHop(h("3b 04 01 00") + raw + h("01 02 0000")).options[1]
    assert opt.flags.overflow and opt.remaining_len == 0 and opt.node_len == 5
    assert opt.path() == [2]


def test_ioam_record_pack_unknown_fields_all_ones() -> None:
    tt = trace_type_from_bits(0, 8, 11, 12)
    packed = IOAMNodeRecord(hop_limit=1, node_id=2, node_id_wide=3).pack(tt)
    assert packed == h("01 000002  ff 00000000000003  ffffffff  ffffffff")
    back = IOAMNodeRecord.unpack(packed, tt)
    assert (back.hop_limit_wide, back.buffer_occupancy, back.undefined) == (
        0xFF,
        0xFFFFFFFF,
        (0xFFFFFFFF,),
    )
    with pytest.raises(PacketError, match=r"IOAMNodeRecord.node_id 16777216 does not fit 24"):
        IOAMNodeRecord(node_id=1 << 24).pack(TRACE_TYPE_DEFAULT)
    with pytest.raises(PacketError, match="bit 22"):
        IOAMNodeRecord().pack(trace_type_from_bits(0, 22))


def test_ioam_linux_layout_padn_then_option_at_4n() -> None:
    # What Linux (ioam6 lwtunnel, RFC 9486) puts after IPv6 for
    # "trace prealloc type 0xf20000 ns 1 size 40": HBH header, PadN of 2, option at offset 4.
    hbh = h("11 06  01 00") + IOAM_EMPTY_2
    raw = frame(IPv6(src="2001:db8::1", dst="2001:db8::2", nh=0, plen=len(hbh) + 8)) + hbh
    raw += bytes(UDP(sport=1, dport=2, len=8, chksum=0))
    pkt = Ether(raw)
    opts = pkt[IPv6ExtHdrHopByHop].options
    assert isinstance(opts[0], PadN) and isinstance(opts[1], IOAMTraceOption)
    assert opts[1].remaining_len == 10 and UDP in pkt
    # scapy's autopad puts our option at the same place.
    built = IPv6ExtHdrHopByHop(nh=17, options=[ioam_trace_option(namespace_id=1, max_nodes=2)])
    assert bytes(built) == hbh
    assert validate_packet(raw) == []


def test_ioam_malformed_records_raise_packet_error() -> None:
    nodelen0 = IPv6ExtHdrHopByHop(
        h("3b 02 01 00 31 0e 00 00 0001 0001 f20000 00 00000000 01020000")
    )
    opt = nodelen0.options[1]
    assert isinstance(opt, IOAMTraceOption)
    with pytest.raises(PacketError, match="NodeLen is 0"):
        opt.records()
    beyond = IOAMTraceOption(h("31 0e 00 00 0001 2814 f20000 00 00000000"))
    with pytest.raises(PacketError, match=r"RemainingLen 20 \(80 bytes\) is beyond the 4-byte"):
        beyond.records()
    with pytest.raises(PacketError, match="NodeLen 4 does not match"):
        parse_node_data(bytes(16), TRACE_TYPE_DEFAULT, node_len=4)


@pytest.mark.parametrize(
    ("hbh", "last_option", "problem"),
    [
        # IOAM Opt Data Len 64 in a 24-byte header: the option keeps the 18 bytes that exist.
        (
            "3b 02 01 00 31 40 00 00 0001 2801 f20000 00 00000000 01020000",
            IOAMTraceOption,
            "option 0x31 at offset 4: overruns the header (24 bytes)",
        ),
        (
            "3b 02 01 00 31 0e 00 00 0001 0001 f20000 00 00000000 01020000",
            IOAMTraceOption,
            "IOAM NodeLen is 0",
        ),
        (
            "3b 02 01 00 31 0e 00 00 0001 2814 f20000 00 00000000 01020000",
            IOAMTraceOption,
            "IOAM RemainingLen 20 (80 bytes) is beyond the 4-byte node-data area",
        ),
        # APN option too short for its APN-Para-Type: scapy's fallback, Raw.
        ("3b 00 1e 02 01 00 01 00", Raw, "APN value of 2 bytes is shorter than the 4 bytes"),
        ("3b 00 12 02 0000 01 00", Raw, "Alt-Mark Opt Data Len 2 is not 4"),
    ],
)
def test_malformed_options_dissect_without_exception(
    hbh: str, last_option: type, problem: str
) -> None:
    raw = frame(IPv6(nh=0, plen=len(h(hbh)))) + h(hbh)
    options = Ether(raw)[IPv6ExtHdrHopByHop].options
    assert isinstance(options[1] if isinstance(options[0], PadN) else options[0], last_option)
    assert any(problem in p for p in validate_packet(raw)), validate_packet(raw)


def test_ioam_validation_messages() -> None:
    assert validate_ioam(h("31 0e 00 00 0001 0001 f20000 00 00000000")) == ["IOAM NodeLen is 0"]
    assert validate_ioam(h("31 0e 00 00 0001 2814 f20000 00 00000000")) == [
        "IOAM RemainingLen 20 (80 bytes) is beyond the 4-byte node-data area"
    ]
    assert (
        "does not match IOAM-Trace-Type 0xf20000 (5 words)"
        in (validate_ioam(h("31 0e 00 00 0001 2001 f20000 00 00000000"))[0])
    )
    assert "overruns" in validate_ioam(IOAM_EMPTY_2[:30])[0]
    assert "no room for the 8-byte trace header" in validate_ioam(h("31 04 00 00 0001 2800"))[0]
    assert "not a pre-allocated trace" in validate_ioam(h("31 02 00 04"))[0]


# ---------------------------------------------------------------- Alternate marking (RFC 9343)


def test_altmark_bytes_and_dissection() -> None:
    assert bytes(AltMarkOption(flowmon_id=0xABCDE, L=1)) == h("12 04 abcde800")
    assert bytes(AltMarkOption(flowmon_id=0xABCDE, D=1)) == h("12 04 abcde400")
    opt = IPv6ExtHdrHopByHop(h("3b 00 12 04 00001c00")).options[0]
    assert isinstance(opt, AltMarkOption)
    assert (opt.flowmon_id, opt.L, opt.D) == (1, 1, 1)


def test_all_three_options_in_one_hbh() -> None:
    trace = ioam_trace_option(max_nodes=2)
    raw = frame(
        IPv6()
        / IPv6ExtHdrHopByHop(options=[APNOption(apn_id=7), AltMarkOption(flowmon_id=9), trace])
        / UDP()
    )
    opts = [o for o in Ether(raw)[IPv6ExtHdrHopByHop].options if not isinstance(o, PadN)]
    assert [type(o) for o in opts] == [APNOption, AltMarkOption, IOAMTraceOption]
    # APN 10 bytes at 2, Alt-Mark 6 at 12, then PadN 2 so that IOAM starts at 20 (4n).
    assert raw[54 + 18 : 54 + 20] == h("01 00") and raw[54 + 20] == 0x31
    assert validate_packet(raw) == []


@settings(max_examples=200, deadline=None)
@given(tt_bits=st.sets(st.integers(0, 21), min_size=1), data=st.data())
def test_ioam_record_round_trip(tt_bits: set[int], data: st.DataObject) -> None:
    trace_type = trace_type_from_bits(*tt_bits)
    words = node_len_for(trace_type)
    raw = data.draw(st.binary(min_size=words * 4, max_size=words * 4))
    rec = IOAMNodeRecord.unpack(raw, trace_type)
    assert rec.pack(trace_type) == raw
    max_nodes = max(1, min(4, 244 // (words * 4)))
    if words * 4 > 244:
        return
    opt = ioam_trace_option(trace_type=trace_type, max_nodes=max_nodes)
    assert opt.stamp(rec)
    assert IOAMTraceOption(bytes(opt)).records() == [rec]
