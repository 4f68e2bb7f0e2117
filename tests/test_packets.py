"""pyctl.packets: bytes written by hand from SPEC.md / the RFCs, dissection of real bytes (including
bytes the Linux kernel stamps), round trips, validation messages and fuzzed malformed input."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.config import conf
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrSegmentRouting,
    IPv6ExtHdrSegmentRoutingTLV,
    IPv6ExtHdrSegmentRoutingTLVHMAC,
    IPv6ExtHdrSegmentRoutingTLVPadN,
    PadN,
)
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from pyctl.errors import PacketError
from pyctl.packets import (
    APN_PARA_BANDWIDTH,
    APN_PARA_JITTER,
    APN_PARA_LATENCY,
    APN_PARA_LOSS,
    BTH,
    IFIT_FLAG_COUNTERS,
    IFIT_REPORT_PORT,
    IOAM_OVERFLOW_FLAG,
    PFC,
    SRHTLVAPN,
    SRHTLVHMAC,
    TRACE_TYPE_DEFAULT,
    AltMarkOption,
    APNOption,
    IFITReport,
    IOAMNodeRecord,
    IOAMTraceOption,
    apn_groups,
    apn_id_from_groups,
    cnp_for,
    ioam_trace_option,
    node_len_for,
    parse_node_data,
    pfc_frame,
    register_apn_option_type,
    register_ifit_report_port,
    register_srh_apn_tlv_type,
    roce_dest_qp,
    roce_flow_key,
    roce_packet,
    trace_type_from_bits,
    unregister_apn_option_type,
    unregister_ifit_report_port,
    unregister_srh_apn_tlv_type,
    validate_apn,
    validate_ioam,
    validate_packet,
    validate_srh,
)

MAC_A = "02:00:00:00:00:01"
MAC_B = "02:00:00:00:00:02"


def h(text: str) -> bytes:
    """Hex written by hand: spaces and line breaks are ignored, '#' starts a comment."""
    return bytes.fromhex("".join(line.split("#")[0] for line in text.splitlines()).replace(" ", ""))


def frame(*layers: object) -> bytes:
    pkt = Ether(src=MAC_A, dst=MAC_B)
    for layer in layers:
        pkt = pkt / layer
    return bytes(pkt)


# ---------------------------------------------------------------- APN (SPEC §2)

# APN option, 32-bit APN-ID APP 7 | USER 1, bandwidth 1000 kbit/s and loss 50 ppm.
APN_32 = h(
    """
    1e 10          # option type 0x1E, Opt Data Len 16
    01 00          # APN-ID-Type 1 (32-bit), Flags 0
    90 00          # APN-Para-Type: bit 0 (bandwidth) + bit 3 (loss)
    00 07 00 01    # APN-ID = APP 7 | USER 1
    00 00 03 e8    # bandwidth 1000
    00 00 00 32    # loss 50
    """
)


def test_apn_para_masks_follow_bit0_is_msb() -> None:
    assert (APN_PARA_BANDWIDTH, APN_PARA_LATENCY, APN_PARA_JITTER, APN_PARA_LOSS) == (
        0x8000,
        0x4000,
        0x2000,
        0x1000,
    )


def test_apn_option_32bit_bytes() -> None:
    opt = APNOption(
        apn_id=apn_id_from_groups(7, 1),
        para_type=APN_PARA_BANDWIDTH | APN_PARA_LOSS,
        params=[1000, 50],
    )
    assert bytes(opt) == APN_32


def test_apn_option_in_hbh_dissects_from_ether() -> None:
    # HBH: Next Header 59, Hdr Ext Len 2 (24 bytes), the 18-byte option, PadN of 4.
    hbh = h("3b 02") + APN_32 + h("01 02 00 00")
    raw = frame(IPv6(src="2001:db8::1", dst="2001:db8::2", nh=0, plen=len(hbh))) + hbh
    opt = Ether(raw)[IPv6ExtHdrHopByHop].options[0]
    assert isinstance(opt, APNOption)
    assert (opt.otype, opt.optlen, opt.id_type, opt.apn_id) == (0x1E, 16, 1, 0x00070001)
    assert (opt.app_group, opt.user_group) == (7, 1)
    assert opt.params == [1000, 50]
    assert opt.param_map() == {APN_PARA_BANDWIDTH: 1000, APN_PARA_LOSS: 50}
    built = frame(IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop(options=[opt]))
    assert built == raw
    assert validate_packet(raw) == []


def test_apn_option_in_destination_options() -> None:
    raw = frame(IPv6() / IPv6ExtHdrDestOpt(options=[APNOption(apn_id=9)]) / UDP())
    assert Ether(raw)[IPv6ExtHdrDestOpt].options[0].apn_id == 9


def test_apn_wide_ids_and_group_split() -> None:
    # 64-bit: APP 32 | USER 16 | Reserved 16.
    apn64 = apn_id_from_groups(0x0A0B0C0D, 0x0102, id_type=2)
    assert apn64 == 0x0A0B0C0D_0102_0000
    assert bytes(APNOption(id_type=2, apn_id=apn64)) == h("1e 0c 02 00 0000 0a0b0c0d 0102 0000")
    # 128-bit: APP 64 | USER 32 | Reserved 32.
    apn128 = apn_id_from_groups(0x0102030405060708, 0x090A0B0C, id_type=3)
    raw = h("1e 18 03 00 4000 0102030405060708 090a0b0c 00000000 0000 0005")
    assert bytes(APNOption(id_type=3, apn_id=apn128, para_type=APN_PARA_LATENCY, params=[5])) == (
        raw
    )
    opt = IPv6ExtHdrHopByHop(h("3b 03") + raw + h("01 02 0000")).options[0]
    assert (opt.app_group, opt.user_group) == (0x0102030405060708, 0x090A0B0C)
    assert opt.param_map() == {APN_PARA_LATENCY: 5}
    assert apn_groups(0xFFFF0001) == (0xFFFF, 1)


def test_apn_bad_values_name_the_field() -> None:
    with pytest.raises(PacketError, match="APP-Group-ID 65536"):
        apn_id_from_groups(0x10000, 1)
    with pytest.raises(PacketError, match="USER-Group-ID -1"):
        apn_id_from_groups(1, -1)
    with pytest.raises(PacketError, match="id_type 4"):
        apn_id_from_groups(1, 1, id_type=4)
    with pytest.raises(PacketError, match="apn_id 0x100000000"):
        bytes(APNOption(apn_id=1 << 32))
    with pytest.raises(PacketError, match="id_type 7"):
        bytes(APNOption(id_type=7, apn_id=1))


def test_apn_configurable_option_type() -> None:
    raw = frame(IPv6() / IPv6ExtHdrHopByHop(options=[APNOption(otype=0x3E, apn_id=0x50001)]))
    assert not isinstance(Ether(raw)[IPv6ExtHdrHopByHop].options[0], APNOption)
    register_apn_option_type(0x3E)
    try:
        opt = Ether(raw)[IPv6ExtHdrHopByHop].options[0]
        assert isinstance(opt, APNOption)
        assert (opt.otype, opt.app_group, opt.user_group) == (0x3E, 5, 1)
    finally:
        unregister_apn_option_type(0x3E)
    with pytest.raises(PacketError, match="IOAMTraceOption"):
        register_apn_option_type(0x31)


def test_apn_validation_messages() -> None:
    good = APN_32
    assert validate_apn(good) == []
    one_param_missing = h("1e 0c 01 00 9000 00070001 000003e8")
    assert validate_apn(one_param_missing) == [
        "APN-Para-Type 0x9000 announces 2 parameter(s) but the value carries 1"
    ]
    assert "APN-ID-Type 9 is not 1" in validate_apn(h("1e 04 09 00 0000"))[0]
    assert validate_apn(h("1e 06 02 00 0000 1234")) == [
        "APN-ID-Type 2 needs a 8-byte APN-ID but 2 byte(s) follow"
    ]
    assert "overruns" in validate_apn(good[:-3])[0]
    assert "not a multiple of 4" in validate_apn(h("1e 0a 01 00 8000 00000001 0000"))[0]


# ---------------------------------------------------------------- IOAM (SPEC §3, RFC 9197/9486)

# Empty default trace, namespace 1, room for 2 nodes.
IOAM_EMPTY_2 = h(
    """
    31 32 00 00    # type 0x31, Opt Data Len 50, Reserved, IOAM-Option-Type 0
    0001 280a      # Namespace-ID 1 | NodeLen 5 (0x2800), Flags 0, RemainingLen 10
    f20000 00      # IOAM-Trace-Type bits 0,1,2,3,6 | Reserved
    """
) + bytes(40)

# Hop records of the default trace type: hop limit | node id(24), ingress if | egress if,
# timestamp s, timestamp µs, queue depth.
HOP_A = h("3f 000001  0001 0002  65000000  00000064  00000000")
HOP_B = h("3e 000002  0003 0004  65000000  000000fa  00000007")
HOP_C = h("3d 000003  0005 ffff  65000001  0000000a  00000002")  # egress if unknown: all ones


def three_hop_option() -> bytes:
    """Room for 4 nodes, 3 written (A first, then B, then C): RemainingLen 5, most recent first."""
    return h("31 5a 00 00  0001 2805  f20000 00") + bytes(20) + HOP_C + HOP_B + HOP_A


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


# ---------------------------------------------------------------- SRH TLVs (RFC 8754)

# SRH (Next Header 41), S1 = fc00:2::, S2 = fc00:3:: (List[0] is the last segment), SL = LE = 1,
# HMAC TLV with key id 7 and a 32-byte HMAC: 8 + 32 + 40 = 80 bytes, Hdr Ext Len 9.
SRH_HMAC = h(
    "29 09 04 01 01 00 0000"
    "fc000003000000000000000000000000"
    "fc000002000000000000000000000000"
    "05 26 0000 00000007"
) + bytes([0x11] * 32)


def test_scapy_hmac_tlv_is_wrong() -> None:
    # Still broken in scapy 2.8: 16-bit Length and Length = len(HMAC) + 48. Drop SRHTLVHMAC
    # when this starts failing.
    theirs = bytes(IPv6ExtHdrSegmentRoutingTLVHMAC(hmackeyid=7, hmac=bytes([0x11] * 32)))
    assert theirs != SRH_HMAC[40:]


def test_srh_hmac_tlv_bytes_and_dissection() -> None:
    srh = IPv6ExtHdrSegmentRouting(
        nh=41,
        addresses=["fc00:3::", "fc00:2::"],
        segleft=1,
        tlv_objects=[SRHTLVHMAC(hmackeyid=7, hmac=bytes([0x11] * 32))],
    )
    assert bytes(srh) == SRH_HMAC
    back = IPv6ExtHdrSegmentRouting(SRH_HMAC)
    tlv = back.tlv_objects[0]
    assert isinstance(tlv, SRHTLVHMAC)
    assert (tlv.len, tlv.D, tlv.hmackeyid, tlv.hmac) == (38, 0, 7, bytes([0x11] * 32))
    assert validate_srh(SRH_HMAC) == []


def test_srh_apn_tlv_bytes_and_dissection() -> None:
    # One segment (16) + APN TLV (10) + PadN (6) = 40 bytes, Hdr Ext Len 4.
    raw = h(
        "3b 04 04 00 00 00 0000"
        "fc000002000000000000000000000000"
        "7c 08 01 00 0000 00070001"
        "04 04 00000000"
    )
    built = IPv6ExtHdrSegmentRouting(
        addresses=["fc00:2::"], segleft=0, tlv_objects=[SRHTLVAPN(apn_id=0x70001)]
    )
    assert bytes(built) == raw
    tlvs = IPv6ExtHdrSegmentRouting(raw).tlv_objects
    assert isinstance(tlvs[0], SRHTLVAPN) and isinstance(tlvs[1], IPv6ExtHdrSegmentRoutingTLVPadN)
    assert (tlvs[0].app_group, tlvs[0].user_group) == (7, 1)
    assert validate_srh(raw) == []


def test_srh_apn_tlv_type_is_configurable() -> None:
    raw = bytes(IPv6ExtHdrSegmentRouting(addresses=["::1"], tlv_objects=[SRHTLVAPN(type=200)]))
    assert type(IPv6ExtHdrSegmentRouting(raw).tlv_objects[0]) is IPv6ExtHdrSegmentRoutingTLV
    register_srh_apn_tlv_type(200)
    try:
        assert isinstance(IPv6ExtHdrSegmentRouting(raw).tlv_objects[0], SRHTLVAPN)
    finally:
        unregister_srh_apn_tlv_type(200)
    with pytest.raises(PacketError, match="Pad1/PadN/HMAC"):
        register_srh_apn_tlv_type(5)


def test_srh_validation_messages() -> None:
    assert validate_srh(h("3b 02 02 01 00 00 0000") + bytes(16)) == [
        "routing type 2 is not an SRH (type 4)"
    ]
    assert validate_srh(SRH_HMAC[:7]) == ["SRH truncated: 7 bytes, the fixed part is 8"]
    le_too_big = bytearray(SRH_HMAC)
    le_too_big[4] = 5
    assert validate_srh(bytes(le_too_big)) == ["SRH Last Entry 5 > Hdr Ext Len/2 - 1 = 3.5"]
    sl_too_big = bytearray(SRH_HMAC)
    sl_too_big[3] = 3
    assert validate_srh(bytes(sl_too_big)) == ["SRH Segments Left 3 > Last Entry 1 + 1"]
    assert "overruns the 72 bytes available" in validate_srh(SRH_HMAC[:72])[0]
    # 8 + 32 + HMAC TLV of 13 bytes (5-byte HMAC) + 3 x Pad1 = 56 bytes, Hdr Ext Len 6.
    bad_hmac = (
        h("29 06 04 01 01 00 0000") + SRH_HMAC[8:40] + h("05 0b 0000 00000007 1111111111 000000")
    )
    assert validate_srh(bad_hmac) == [
        "SRH HMAC TLV at offset 40: HMAC of 5 bytes is not a multiple of 8 up to 32 "
        "(RFC 8754 §2.1.2)"
    ]
    overrun = SRH_HMAC[:40] + h("05 30") + SRH_HMAC[42:]
    assert "SRH TLV type 5 at offset 40 length 48 overruns" in validate_srh(overrun)[0]
    apn_bad = h("3b 03 04 00 00 00 0000") + bytes(16) + h("7c 06 01 00 8000 0001")
    assert validate_srh(apn_bad) == [
        "SRH APN TLV at offset 24: APN-ID-Type 1 needs a 4-byte APN-ID but 2 byte(s) follow"
    ]


# ---------------------------------------------------------------- IFIT report (SPEC §3 Export)

IFIT_TRACE_REPORT = (
    h(
        "01 01 0000"  # version 1, NodeCount 1, Flags 0
        "12345800"  # FlowMonID 0x12345 | L 1 | D 0 | Reserved
        "0000000a"  # TailNodeId 10
        "65000002 000001f4"  # tail timestamp 0x65000002 s, 500 µs
        "04 11 03e8 07d0 0000"  # family 4, UDP, 1000 -> 2000
        "00000000 00000000 0000ffff 0a000001"  # ::ffff:10.0.0.1
        "00000000 00000000 0000ffff 0a000002"  # ::ffff:10.0.0.2
    )
    + HOP_A
)

IFIT_COUNTER_REPORT = h(
    "01 00 8000"  # Flags bit 0: counter record
    "12345000 0000000a 65000002 00000000"
    "06 06 0050 c350 0000"  # family 6, TCP, 80 -> 50000
    "20010db8000000000000000000000001"
    "20010db8000000000000000000000002"
    "00000000000003e8 000000000016e360"  # 1000 packets, 1500000 bytes
)


def test_ifit_constants() -> None:
    assert IFIT_REPORT_PORT == 5391 and IFIT_FLAG_COUNTERS == 0x8000


def test_ifit_trace_report_bytes() -> None:
    report = IFITReport(
        node_count=1,
        flowmon_id=0x12345,
        L=1,
        tail_node_id=10,
        ts_sec=0x65000002,
        ts_subsec=500,
        proto=17,
        sport=1000,
        dport=2000,
        src="10.0.0.1",
        dst="10.0.0.2",
        data=HOP_A,
    )
    assert bytes(report) == IFIT_TRACE_REPORT


def test_ifit_report_dissected_via_udp_port() -> None:
    raw = frame(
        IPv6(src="fd00::1", dst="fd00::2") / UDP(sport=40000, dport=5391) / Raw(IFIT_TRACE_REPORT)
    )
    rep = Ether(raw)[IFITReport]
    assert (rep.version, rep.node_count, rep.flowmon_id, rep.L, rep.D) == (1, 1, 0x12345, 1, 0)
    assert (rep.family, rep.src_ip, rep.dst_ip, rep.sport, rep.dport) == (
        4,
        "10.0.0.1",
        "10.0.0.2",
        1000,
        2000,
    )
    assert not rep.is_counter_record
    assert rep.records() == [IOAMNodeRecord.unpack(HOP_A, TRACE_TYPE_DEFAULT)]
    assert validate_packet(raw) == []


def test_ifit_counter_report() -> None:
    built = IFITReport(
        flags=IFIT_FLAG_COUNTERS,
        flowmon_id=0x12345,
        tail_node_id=10,
        ts_sec=0x65000002,
        proto=6,
        sport=80,
        dport=50000,
        src="2001:db8::1",
        dst="2001:db8::2",
        packets=1000,
        bytes=1500000,
    )
    assert bytes(built) == IFIT_COUNTER_REPORT
    rep = UDP(bytes(UDP(dport=5391) / Raw(IFIT_COUNTER_REPORT)))[IFITReport]
    assert rep.is_counter_record and rep.flags.counters
    assert (rep.family, rep.packets, rep.bytes, rep.records()) == (6, 1000, 1500000, [])


def test_ifit_report_records_from_whole_area() -> None:
    # A tail that exports the whole pre-allocated area (free space first): last NodeCount records.
    area = three_hop_option()[12:]
    rep = IFITReport(node_count=3, data=area)
    assert [r.node_id for r in IFITReport(bytes(rep)).records()] == [3, 2, 1]
    with pytest.raises(PacketError, match="NodeCount 5 needs 100 bytes"):
        IFITReport(node_count=5, data=area).records()


def test_ifit_report_port_is_configurable() -> None:
    raw = bytes(UDP(sport=40000, dport=6000) / Raw(IFIT_COUNTER_REPORT))  # not sport 53: DNS
    assert IFITReport not in UDP(raw)
    register_ifit_report_port(6000)
    try:
        assert UDP(raw)[IFITReport].packets == 1000
    finally:
        unregister_ifit_report_port(6000)
    assert IFITReport not in UDP(raw)
    assert UDP(bytes(UDP() / IFITReport())).dport == 5391


def test_ifit_report_validation() -> None:
    bad = bytearray(IFIT_TRACE_REPORT)
    bad[0], bad[20] = 2, 5
    raw = frame(IPv6() / UDP(dport=5391) / Raw(bytes(bad)))
    assert validate_packet(raw) == [
        "IPv6 UDP: IFIT report version 2 is not 1",
        "IPv6 UDP: IFIT report family 5 is not 4 or 6",
    ]


# ---------------------------------------------------------------- PFC (IEEE 802.1Qbb, SPEC §5)


def test_pfc_frame_bytes() -> None:
    xoff = h(
        "0180c2000001 020000000001 8808"
        "0101 0008"  # opcode, priority-enable vector: priority 3
        "0000 0000 0000 ffff 0000 0000 0000 0000"  # time[0..7]
    ) + bytes(26)  # pad to the 46-byte minimum payload
    assert bytes(pfc_frame(MAC_A, {3: 0xFFFF})) == xoff
    xon = bytes(pfc_frame(MAC_A, {3: 0}))
    assert xon == xoff[:24] + bytes(2) + xoff[26:] and len(xon) == 60


def test_pfc_dissection() -> None:
    raw = bytes(pfc_frame(MAC_A, {0: 10, 7: 0xFFFF}))
    pfc = Ether(raw)[PFC]
    assert pfc.class_enable == 0x81 and pfc.paused() == {0: 10, 7: 0xFFFF}
    assert pfc.pause_time(3) == 0
    assert bytes(Ether(raw)) == raw
    pause_8023x = h("0180c2000001 020000000001 8808 0001 ffff") + bytes(42)
    assert PFC not in Ether(pause_8023x)
    with pytest.raises(PacketError, match="priority 8"):
        pfc_frame(MAC_A, {8: 1})
    with pytest.raises(PacketError, match="pause time 65536"):
        pfc_frame(MAC_A, {1: 0x10000})


# ---------------------------------------------------------------- RoCEv2 (SPEC §4, §5)


def icrc(pkt: bytes) -> bytes:
    """RoCEv2 ICRC computed here from the IBA rules: 8 bytes of ones, then IP/UDP/BTH/payload
    with the variant fields (IPv6 TC/FL/HL or IPv4 TOS/TTL/checksum, UDP checksum, BTH byte 4)
    set to ones; CRC-32, least significant byte first."""
    ip = bytearray(pkt[14:])
    if ip[0] >> 4 == 6:
        ip[0:4] = bytes([0x6F, 0xFF, 0xFF, 0xFF])
        ip[7] = 0xFF
        udp = 40
    else:
        ip[1], ip[8], ip[10:12] = 0xFF, 0xFF, b"\xff\xff"
        udp = 20
    ip[udp + 6 : udp + 8] = b"\xff\xff"
    ip[udp + 8 + 4] = 0xFF
    return struct.pack("<I", zlib.crc32(b"\xff" * 8 + bytes(ip[:-4])))


def test_roce_packet_ipv6() -> None:
    raw = bytes(roce_packet("2001:db8::1", "2001:db8::2", dest_qp=0x12, psn=7, payload=b"hello"))
    pkt = Ether(raw)
    assert pkt[IPv6].tc == 0b10 and pkt[UDP].dport == 4791
    # BTH: opcode RC SEND_ONLY, PadCnt 3, P_Key ffff, dest QP 0x12, PSN 7; payload padded to 8.
    assert raw[62 : 62 + 12] == h("04 30 ffff 00 000012 00 000007")
    assert raw[74:-4] == b"hello\x00\x00\x00"
    assert raw[-4:] == icrc(raw)
    assert roce_flow_key(pkt) == ("2001:db8::1", "2001:db8::2", 0x12)
    assert roce_dest_qp(pkt) == 0x12


def test_roce_packet_ipv4() -> None:
    pkt = Ether(bytes(roce_packet("10.0.0.1", "10.0.0.2", dest_qp=0xABCDEF, ecn=1, dscp=26)))
    assert pkt[IP].tos == (26 << 2) | 1 and pkt[BTH].dqpn == 0xABCDEF
    assert bytes(pkt)[-4:] == icrc(bytes(pkt))
    with pytest.raises(PacketError, match="different IP versions"):
        roce_packet("10.0.0.1", "2001:db8::2", dest_qp=1)
    with pytest.raises(PacketError, match="dest_qp 16777216"):
        roce_packet("10.0.0.1", "10.0.0.2", dest_qp=1 << 24)


def test_cnp_for() -> None:
    data = roce_packet("2001:db8::1", "2001:db8::2", dest_qp=0x12, ecn=0b11, sport=50000)
    cnp = Ether(bytes(cnp_for(Ether(bytes(data)))))
    assert (cnp.src, cnp.dst) == (MAC_B, MAC_A)
    assert (cnp[IPv6].src, cnp[IPv6].dst, cnp[IPv6].tc) == ("2001:db8::2", "2001:db8::1", 0)
    assert (cnp[UDP].sport, cnp[UDP].dport) == (50000, 4791)
    raw = bytes(cnp)
    # BTH: opcode 0x81 (CNP), P_Key ffff, BECN set, dest QP 0x12, PSN 0, 16 reserved bytes, ICRC.
    assert raw[62:-4] == h("81 00 ffff 40 000012 00 000000") + bytes(16)
    assert raw[-4:] == icrc(raw)
    assert cnp_for(data, dest_qp=0x99)[BTH].dqpn == 0x99
    with pytest.raises(PacketError, match="not a RoCEv2 packet"):
        cnp_for(Ether() / IPv6() / UDP(dport=53))


def test_roce_inside_srv6_uses_inner_headers() -> None:
    inner = roce_packet("2001:db8::1", "2001:db8::2", dest_qp=77)[IPv6]
    outer = Ether(src=MAC_A, dst=MAC_B) / IPv6(src="fc00:1::1", dst="fc00:2::")
    raw = bytes(outer / IPv6ExtHdrSegmentRouting(addresses=["fc00:3::", "fc00:2::"]) / inner)
    assert roce_flow_key(Ether(raw)) == ("2001:db8::1", "2001:db8::2", 77)
    assert roce_flow_key(Ether(frame(IPv6() / UDP(dport=53)))) is None


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


# ---------------------------------------------------------------- round trips


@settings(max_examples=200, deadline=None)
@given(
    id_type=st.sampled_from([1, 2, 3]),
    flags=st.integers(0, 255),
    para_type=st.integers(0, 0xFFFF),
    data=st.data(),
)
def test_apn_round_trip(id_type: int, flags: int, para_type: int, data: st.DataObject) -> None:
    bits = {1: 32, 2: 64, 3: 128}[id_type]
    apn_id = data.draw(st.integers(0, (1 << bits) - 1))
    params = data.draw(
        st.lists(
            st.integers(0, 0xFFFFFFFF),
            min_size=para_type.bit_count(),
            max_size=para_type.bit_count(),
        )
    )
    opt = APNOption(id_type=id_type, flags=flags, para_type=para_type, apn_id=apn_id, params=params)
    back = IPv6ExtHdrHopByHop(bytes(IPv6ExtHdrHopByHop(options=[opt]))).options[0]
    assert (back.id_type, back.flags, back.para_type, back.apn_id, back.params) == (
        id_type,
        flags,
        para_type,
        apn_id,
        params,
    )
    assert validate_apn(bytes(opt)) == []
    tlv = SRHTLVAPN(
        bytes(SRHTLVAPN(id_type=id_type, apn_id=apn_id, para_type=para_type, params=params))
    )
    assert (tlv.apn_id, tlv.params) == (apn_id, params)


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


# ---------------------------------------------------------------- the Linux kernel as IOAM node

NODE_ID = 0xABCDEF
NODE_ID_WIDE = 0x11223344556677
NS_DATA = 0xDEADBEEF
NS_DATA_WIDE = 0xCAFE0000CAFE0000
MARKER = b"icpn-ioam-probe"

CAPTURE = r"""
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x86DD))
s.bind(("pkc0", 0))
s.settimeout(10)
print("ready", flush=True)
want = int(sys.argv[1])
while want:
    f = s.recv(65535)
    if sys.argv[2].encode() in f:
        print(f.hex(), flush=True)
        want -= 1
"""

SEND = r"""
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("pka0", 0))
for frame in sys.argv[1:]:
    s.send(bytes.fromhex(frame))
"""


@dataclass(frozen=True)
class KernelPath:
    """A -- B -- C; B is a Linux router that stamps IOAM namespace 123."""

    a: str
    b: str
    c: str
    a_mac: str
    b_mac: str


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def kernel_path() -> Iterator[KernelPath]:
    a, b, c = (f"icpnt-pk{os.getpid()}{x}" for x in "abc")
    created: list[str] = []
    try:
        for ns in (a, b, c):
            _ip("netns", "add", ns)
            created.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("link", "add", "pka0", "netns", a, "type", "veth", "peer", "name", "pkb0", "netns", b)
        _ip("link", "add", "pkb1", "netns", b, "type", "veth", "peer", "name", "pkc0", "netns", c)
        for ns, dev, addr in (
            (a, "pka0", "2001:db8:1::1/64"),
            (b, "pkb0", "2001:db8:1::2/64"),
            (b, "pkb1", "2001:db8:2::2/64"),
            (c, "pkc0", "2001:db8:2::3/64"),
        ):
            _ip("-n", ns, "addr", "add", addr, "dev", dev, "nodad")
            _ip("-n", ns, "link", "set", dev, "up")
        _ip("-n", c, "route", "add", "2001:db8:1::/64", "via", "2001:db8:2::2")
        for key, value in (
            ("net.ipv6.conf.all.forwarding", "1"),
            ("net.ipv6.ioam6_id", str(NODE_ID)),
            ("net.ipv6.ioam6_id_wide", str(NODE_ID_WIDE)),
            ("net.ipv6.conf.pkb0.ioam6_enabled", "1"),
            ("net.ipv6.conf.pkb0.ioam6_id", "11"),
            ("net.ipv6.conf.pkb1.ioam6_id", "12"),
        ):
            subprocess.run(
                ["ip", "netns", "exec", b, "sysctl", "-qw", f"{key}={value}"],
                check=True,
                timeout=10,
            )
        _ip(
            "-n",
            b,
            "ioam",
            "namespace",
            "add",
            "123",
            "data",
            f"{NS_DATA:#x}",
            "wide",
            f"{NS_DATA_WIDE:#x}",
        )
        macs = [
            json.loads(
                subprocess.run(
                    ["ip", "-n", ns, "-j", "link", "show", dev],
                    check=True,
                    capture_output=True,
                    timeout=10,
                ).stdout
            )[0]["address"]
            for ns, dev in ((a, "pka0"), (b, "pkb0"))
        ]
        yield KernelPath(a, b, c, macs[0], macs[1])
    finally:
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], check=False, timeout=10)


def _through_kernel(path: KernelPath, options: list[IOAMTraceOption]) -> list[bytes]:
    frames = [
        bytes(
            Ether(src=path.a_mac, dst=path.b_mac)
            / IPv6(src="2001:db8:1::1", dst="2001:db8:2::3", hlim=64)
            / IPv6ExtHdrHopByHop(options=[opt])
            / UDP(sport=4000, dport=9999)
            / Raw(MARKER)
        )
        for opt in options
    ]
    cap = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            path.c,
            sys.executable,
            "-c",
            CAPTURE,
            str(len(frames)),
            MARKER.decode(),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert cap.stdout is not None and cap.stdout.readline().strip() == "ready"
        subprocess.run(
            ["ip", "netns", "exec", path.a, sys.executable, "-c", SEND] + [f.hex() for f in frames],
            check=True,
            timeout=10,
        )
        out, _ = cap.communicate(timeout=15)
    finally:
        if cap.poll() is None:
            cap.kill()
            cap.wait()
    assert cap.returncode == 0
    return [bytes.fromhex(line) for line in out.split()]


@pytest.mark.root
@pytest.mark.kernel
def test_linux_kernel_stamps_ioam_trace(kernel_path: KernelPath) -> None:
    all_bits = trace_type_from_bits(*range(12))
    full = ioam_trace_option(namespace_id=123, trace_type=TRACE_TYPE_DEFAULT, max_nodes=1)
    full.stamp(IOAMNodeRecord(node_id=1))  # no room left: the kernel must set Overflow
    sent = [
        ioam_trace_option(namespace_id=123, trace_type=TRACE_TYPE_DEFAULT, max_nodes=2),
        ioam_trace_option(namespace_id=123, trace_type=all_bits, max_nodes=3),
        full,
    ]
    now = time.time()
    got = _through_kernel(kernel_path, sent)
    assert len(got) == 3
    for raw in got:
        assert validate_packet(raw) == []
    by_type = {}
    for raw in got:
        opt = Ether(raw)[IOAMTraceOption]
        by_type[(int(opt.trace_type), int(opt.flags.overflow))] = (Ether(raw), opt)

    pkt, default = by_type[(TRACE_TYPE_DEFAULT, 0)]
    (rec,) = default.records()
    assert default.remaining_len == 5
    assert (rec.node_id, rec.ingress_if, rec.egress_if) == (NODE_ID, 11, 12)
    assert rec.hop_limit == pkt[IPv6].hlim == 63
    assert abs(rec.ts_sec - now) < 120 and rec.ts_subsec < 1_000_000

    _, wide = by_type[(all_bits, 0)]
    (rec,) = wide.records()
    assert wide.remaining_len == 30
    assert (rec.node_id, rec.node_id_wide, rec.hop_limit_wide) == (NODE_ID, NODE_ID_WIDE, 63)
    assert (rec.namespace_data, rec.namespace_data_wide) == (NS_DATA, NS_DATA_WIDE)
    assert rec.checksum_complement == 0xFFFFFFFF  # Linux cannot provide it: all ones

    _, overflowed = by_type[(TRACE_TYPE_DEFAULT, 1)]
    assert overflowed.path() == [1]
    assert int.from_bytes(bytes(overflowed)[6:8], "big") & IOAM_OVERFLOW_FLAG
