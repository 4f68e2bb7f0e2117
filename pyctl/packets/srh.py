"""SRH TLVs (RFC 8754 §2.1): a corrected HMAC TLV and the APN TLV (SPEC §1, §2).

scapy 2.8's ``IPv6ExtHdrSegmentRoutingTLVHMAC`` gets the HMAC TLV wrong in two ways:
its Length is a 16-bit field (``FieldLenField`` without ``fmt="B"``), which shifts every later
byte, and it counts Length as ``len(HMAC) + 48`` instead of ``len(HMAC) + 6`` (D/Reserved 2 +
HMAC Key ID 4), so it neither builds nor dissects RFC 8754 bytes. `SRHTLVHMAC` replaces it in
scapy's SRH TLV dispatch (``IPv6ExtHdrSegmentRoutingTLV.registered_sr_tlv``), as does
`SRHTLVAPN` for type 124, so ``IPv6ExtHdrSegmentRouting(raw)`` yields these classes.
"""

from __future__ import annotations

from scapy.fields import BitField, ByteEnumField, ByteField, IntField, StrField
from scapy.layers.inet6 import IPv6ExtHdrSegmentRoutingTLV, _segment_routing_header_tlvs

from pyctl.errors import PacketError
from pyctl.packets._tlv import _BoundedTLV
from pyctl.packets.apn import _APNValue, apn_value_fields

SRH_TLV_PAD1 = 0
SRH_TLV_PADN = 4
SRH_TLV_HMAC = 5
SRH_TLV_APN = 124
"""Default type of the APN TLV (SPEC §2; no IANA assignment, configurable)."""

HMAC_FIXED_LEN = 6
"""D/Reserved (2) + HMAC Key ID (4): the HMAC TLV Length without the HMAC itself."""

_segment_routing_header_tlvs[SRH_TLV_APN] = "APN TLV"


class SRHTLVHMAC(_BoundedTLV, IPv6ExtHdrSegmentRoutingTLV):
    """HMAC TLV: ``Type=5 | Length | D(1) Reserved(15) | HMAC Key ID(32) | HMAC``.

    ``len`` is computed (6 + len(hmac)) when left None. RFC 8754 wants the HMAC to be a multiple
    of 8 octets and at most 32; building does not enforce it so that bad TLVs can be made for
    tests (`pyctl.packets.validate.validate_srh` reports them).
    """

    name = "SRH HMAC TLV"
    fields_desc = [
        ByteEnumField("type", SRH_TLV_HMAC, _segment_routing_header_tlvs),
        ByteField("len", None),
        BitField("D", 0, 1),
        BitField("reserved", 0, 15),
        IntField("hmackeyid", 0),
        StrField("hmac", b""),
    ]

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.len is None:
            if len(pkt) - 2 > 255:
                raise PacketError(f"SRH HMAC TLV value of {len(pkt) - 2} bytes exceeds 255")
            pkt = pkt[:1] + bytes([len(pkt) - 2]) + pkt[2:]
        return pkt + pay


class SRHTLVAPN(_APNValue, IPv6ExtHdrSegmentRoutingTLV):
    """APN TLV: ``Type=124 | Length | APN value`` (same value fields as `APNOption`).

    ``len`` is computed when left None. For a non-default type call `register_srh_apn_tlv_type`.
    """

    name = "SRH APN TLV"
    _len_field = "len"
    fields_desc = [
        ByteEnumField("type", SRH_TLV_APN, _segment_routing_header_tlvs),
        ByteField("len", None),
        *apn_value_fields(),
    ]

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        return self._patch_len(pkt) + pay


def register_srh_apn_tlv_type(tlv_type: int) -> None:
    """Make SRH TLV type `tlv_type` dissect as `SRHTLVAPN` (124 is registered on import)."""
    registry = IPv6ExtHdrSegmentRoutingTLV.registered_sr_tlv
    if not 0 <= tlv_type <= 0xFF or tlv_type in (SRH_TLV_PAD1, SRH_TLV_PADN, SRH_TLV_HMAC):
        raise PacketError(f"APN SRH TLV type {tlv_type!r} is not in 0..255 or is Pad1/PadN/HMAC")
    current = registry.get(tlv_type)
    if current is not None and current is not SRHTLVAPN:
        raise PacketError(f"SRH TLV type {tlv_type} already dissects as {current.__name__}")
    registry[tlv_type] = SRHTLVAPN
    _segment_routing_header_tlvs.setdefault(tlv_type, "APN TLV")


def unregister_srh_apn_tlv_type(tlv_type: int) -> None:
    """Stop dissecting SRH TLV type `tlv_type` as `SRHTLVAPN` (it becomes a generic TLV)."""
    registry = IPv6ExtHdrSegmentRoutingTLV.registered_sr_tlv
    if registry.get(tlv_type) is not SRHTLVAPN:
        raise PacketError(f"SRH TLV type {tlv_type!r} is not registered as an APN TLV type")
    del registry[tlv_type]


def srh_apn_tlv_types() -> list[int]:
    """SRH TLV types that currently dissect as `SRHTLVAPN`."""
    registry = IPv6ExtHdrSegmentRoutingTLV.registered_sr_tlv
    return sorted(t for t, cls in registry.items() if cls is SRHTLVAPN)


# Defining the classes already registered them (scapy's register_variant); say it explicitly.
IPv6ExtHdrSegmentRoutingTLV.registered_sr_tlv[SRH_TLV_HMAC] = SRHTLVHMAC
register_srh_apn_tlv_type(SRH_TLV_APN)
