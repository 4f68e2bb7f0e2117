"""SRv6: SRH parsing and validation (RFC 8754), endpoint behaviours and flavours (RFC 8986,
RFC 9800 NEXT-CSID), and the headend encapsulations H.Encaps / H.Encaps.Red (RFC 8986 5)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from pyctl import constants as C
from pyctl.targets.reference.apn import options_header
from pyctl.targets.reference.frame import (
    Drop,
    ExtHeader,
    IPPacket,
    parse_ipv4,
    parse_ipv6,
    remove_header,
    set_payload_length,
)

SRH_FIXED = 8
SID_LEN = 16


@dataclass(frozen=True)
class Srh:
    header: ExtHeader
    hdr_ext_len: int
    segments_left: int
    last_entry: int

    def segment_offset(self, i: int) -> int:
        return self.header.offset + SRH_FIXED + SID_LEN * i


def find_srh(pkt: IPPacket) -> Srh | None:
    """The packet's first Routing header if its type is 4 (RFC 8754 2); another type is not an
    SRH. The parser already guaranteed its 8 fixed octets are present."""
    e = pkt.ext(C.IPPROTO_ROUTING)
    if e is None or pkt.data[e.offset + 2] != C.SRH_ROUTING_TYPE:
        return None
    d = pkt.data
    return Srh(e, d[e.offset + 1], d[e.offset + 3], d[e.offset + 4])


def validate_srh(srh: Srh, data: bytes) -> None:
    """RFC 8986 4.1 S08-S09: Last Entry must fit in Hdr Ext Len, Segments Left <= LE + 1;
    RFC 8754 2.1: the TLVs after the segment list must exactly fill the rest of the header."""
    if srh.last_entry > srh.hdr_ext_len // 2 - 1:
        raise Drop(C.DROP_BAD_SRH_LE)
    if srh.segments_left > srh.last_entry + 1:
        raise Drop(C.DROP_BAD_SRH_SL)
    off = srh.segment_offset(srh.last_entry + 1)
    end = srh.header.offset + srh.header.length
    while off < end:
        if data[off] == C.SRH_TLV_PAD1:
            off += 1
            continue
        if off + 2 > end or off + 2 + data[off + 1] > end:
            raise Drop(C.DROP_BAD_SRH)
        off += 2 + data[off + 1]


def check_hop_limit(hop_limit: int) -> None:
    """RFC 8200 / RFC 8986 4.1 S03: a packet with hop limit <= 1 cannot be forwarded."""
    if hop_limit <= 1:
        raise Drop(C.DROP_HOP_LIMIT)


def end(pkt: IPPacket, srh: Srh) -> bytes:
    """RFC 8986 4.1 S10-S12: Hop Limit -1, Segments Left -1, DA = Segment List[Segments Left]."""
    b = bytearray(pkt.data)
    sl = srh.segments_left - 1
    b[7] -= 1
    b[srh.header.offset + 3] = sl
    seg = srh.segment_offset(sl)
    b[24:40] = b[seg : seg + SID_LEN]
    return bytes(b)


def psp(data: bytes, srh: Srh) -> bytes:
    """RFC 8986 4.16.1 PSP S14-S17: once Segments Left is 0, remove the SRH and patch the
    previous header's Next Header and the Payload Length. `data` is the packet after `end`."""
    return remove_header(data, srh.header)


def next_csid_shift(da: bytes, block_bits: int, csid_bits: int) -> bytes | None:
    """RFC 9800 4.1 NEXT-CSID: the argument is what follows Locator-Block + C-SID; when it is not
    zero, shift it left by one C-SID (zero-filled) behind the block. None when it is zero."""
    value = int.from_bytes(da, "big")
    arg_bits = 128 - block_bits - csid_bits
    arg = value & ((1 << arg_bits) - 1)
    if arg == 0:
        return None
    block = value >> (128 - block_bits) << (128 - block_bits)
    return (block | (arg << csid_bits)).to_bytes(16, "big")


def set_destination(data: bytes, da: bytes) -> bytes:
    return data[:24] + da + data[40:]


def decapsulate(pkt: IPPacket, accept: Sequence[int]) -> IPPacket:
    """RFC 8986 4.4-4.8 (End.DX6/DX4/DT6/DT4/DT46): remove the outer IPv6 header with all its
    extension headers; the upper layer must be IPv6 (41) or IPv4 (4) as the behaviour accepts
    (`bad-inner`). The inner packet is parsed and validated like a received one."""
    if pkt.proto not in accept:
        raise Drop(C.DROP_BAD_INNER)
    if pkt.proto == C.IPPROTO_IPV6:
        return parse_ipv6(pkt.upper)
    return parse_ipv4(pkt.upper)


def srh_padding(n: int) -> bytes:
    """RFC 8754 2.1.1: Pad1 (type 0) for one octet, else PadN (type 4) with zero data."""
    if n == 0:
        return b""
    if n == 1:
        return bytes([C.SRH_TLV_PAD1])
    return bytes([C.SRH_TLV_PADN, n - 2]) + bytes(n - 2)


def build_srh(
    next_header: int, segment_list: Sequence[bytes], segments_left: int, tlvs: bytes
) -> bytes:
    """RFC 8754 2: fixed part (Flags 0, Tag 0), Segment List[0..LE], TLVs, padding to 8n."""
    body = b"".join(segment_list) + tlvs
    body += srh_padding(-(SRH_FIXED + len(body)) % 8)
    hdr_ext_len = (SRH_FIXED + len(body)) // 8 - 1
    fixed = struct.pack(
        "!BBBBBBH",
        next_header,
        hdr_ext_len,
        C.SRH_ROUTING_TYPE,
        segments_left,
        len(segment_list) - 1,
        0,
        0,
    )
    return fixed + body


@dataclass(frozen=True)
class OuterHeaders:
    """What goes into the outer header chain besides the SRH segments (pipeline.md 2)."""

    source: bytes
    flow_label: int
    hbh_options: tuple[bytes, ...] = ()
    doh_options: tuple[bytes, ...] = ()
    srh_tlvs: bytes = b""


def encapsulate(
    inner: IPPacket, segments: Sequence[bytes], reduced: bool, outer: OuterHeaders
) -> bytes:
    """RFC 8986 5.1 H.Encaps / 5.2 H.Encaps.Red: IPv6 [HBH] [DOH] [SRH] inner.

    SRH List[i] = S(n-i), SL = n-1; H.Encaps.Red leaves S1 out of the list (LE = n-2) and has no
    SRH for a single segment, unless a TLV must be carried (then the H.Encaps SRH is used).
    Hop Limit = inner hop limit / TTL (decremented later, when forwarded); TC = inner TC / TOS.
    """
    nh = C.IPPROTO_IPV6 if inner.version == 6 else C.IPPROTO_IPIP
    chain = inner.data
    n = len(segments)
    if not (reduced and n == 1 and not outer.srh_tlvs):
        listed = segments[1:] if reduced and n > 1 else segments
        chain = build_srh(nh, list(reversed(listed)), n - 1, outer.srh_tlvs) + chain
        nh = C.IPPROTO_ROUTING
    if outer.doh_options:
        chain = options_header(nh, outer.doh_options) + chain
        nh = C.IPPROTO_DSTOPTS
    if outer.hbh_options:
        chain = options_header(nh, outer.hbh_options) + chain
        nh = C.IPPROTO_HOPOPTS
    first_word = (6 << 28) | (inner.tos << 20) | outer.flow_label
    header = struct.pack("!IHBB", first_word, 0, nh, inner.hop_limit) + outer.source + segments[0]
    return set_payload_length(header + chain)
