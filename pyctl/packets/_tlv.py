"""Dissection shared by every Type | Length | Value element of this package.

IPv6 Hop-by-Hop / Destination options (RFC 8200 §4.2) and SRH TLVs (RFC 8754 §2.1) both put an
8-bit length of the value right after an 8-bit type. A layer built on `_BoundedTLV` parses its
fields from those ``2 + length`` bytes only, so an inner field that disagrees with the length
(an APN-ID type, an IOAM NodeLen, ...) cannot eat the next option: the option stream stays
aligned and `pyctl.packets.validate` names the disagreement.
"""

from __future__ import annotations

from scapy.packet import Packet


def align_delta(curpos: int, x: int, y: int) -> int:
    """Padding needed before an option whose alignment requirement is ``xn + y`` (RFC 8200 §4.2)."""
    return (y - curpos) % x


class _BoundedTLV(Packet):
    """Base of the TLV layers: fields are dissected inside ``2 + length`` bytes only."""

    def do_dissect(self, s: bytes) -> bytes:
        end = 2 + s[1] if len(s) >= 2 else len(s)
        rest: bytes = super().do_dissect(s[:end])
        return rest + s[end:]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        # What follows the TLV is the next TLV, handed back to the enclosing PacketListField.
        return b"", s
