"""pyctl.packets, SRH TLVs (RFC 8754): the HMAC TLV (which scapy gets wrong) and the APN TLV,
bytes written by hand, dissection and validation messages."""

from __future__ import annotations

import pytest
from packet_bytes import SRH_HMAC, h
from scapy.layers.inet6 import (
    IPv6ExtHdrSegmentRouting,
    IPv6ExtHdrSegmentRoutingTLV,
    IPv6ExtHdrSegmentRoutingTLVHMAC,
    IPv6ExtHdrSegmentRoutingTLVPadN,
)

from pyctl.errors import PacketError
from pyctl.packets import (
    SRHTLVAPN,
    SRHTLVHMAC,
    register_srh_apn_tlv_type,
    unregister_srh_apn_tlv_type,
    validate_srh,
)

# ---------------------------------------------------------------- SRH TLVs (RFC 8754)


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
