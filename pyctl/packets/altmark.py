"""Alternate Marking option (RFC 9341 method, RFC 9343 IPv6 encapsulation; SPEC §3).

HBH option type 0x12, Opt Data Len 4, data ``FlowMonID(20) | L(1) | D(1) | Reserved(10)``.
L is the colour (flipped by the head node every period), D the double-marking (delay) bit.
"""

from __future__ import annotations

from scapy.fields import BitField, ByteField, StrField
from scapy.layers.inet6 import _hbhoptcls, _hbhopts, _OTypeField

from pyctl.errors import PacketError
from pyctl.packets._tlv import _BoundedTLV

ALTMARK_OPTION_TYPE = 0x12
ALTMARK_DATA_LEN = 4

_hbhopts[ALTMARK_OPTION_TYPE] = "Alt-Mark"


class AltMarkOption(_BoundedTLV):
    """Alternate Marking HBH option; ``optlen`` is computed when left None."""

    name = "Alternate Marking Option"
    fields_desc = [
        _OTypeField("otype", ALTMARK_OPTION_TYPE, _hbhopts),
        ByteField("optlen", None),
        BitField("flowmon_id", 0, 20),
        BitField("L", 0, 1),
        BitField("D", 0, 1),
        BitField("reserved", 0, 10),
        # Bytes beyond the 4 data bytes of a malformed option (Opt Data Len > 4).
        StrField("trailing", b""),
    ]

    def alignment_delta(self, curpos: int) -> int:
        # RFC 9343 states no alignment requirement.
        return 0

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.optlen is None:
            if len(pkt) - 2 > 255:
                raise PacketError(f"Alt-Mark option data of {len(pkt) - 2} bytes exceeds 255")
            pkt = pkt[:1] + bytes([len(pkt) - 2]) + pkt[2:]
        return pkt + pay


_hbhoptcls[ALTMARK_OPTION_TYPE] = AltMarkOption
