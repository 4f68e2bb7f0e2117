"""APN (SPEC 2, docs/pipeline.md 3): the APN option's bytes, the APN-ID a packet carries, where
the option is inserted, and the layout of the IPv6 option headers (HBH / DOH) that carry it
together with the IFIT options."""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pyctl import constants as C
from pyctl.model.hashing import apn_id_bytes
from pyctl.model.node import APNCarrier, APNMark
from pyctl.targets.reference.frame import (
    IPV6_HLEN,
    ExtHeader,
    IPPacket,
    insert_header,
    remove_header,
    set_payload_length,
    u16,
)

ID_WIDTH = {C.APN_ID_TYPE_32: 4, C.APN_ID_TYPE_64: 8, C.APN_ID_TYPE_128: 16}
# APN-Para-Type masks, SPEC bit 0 = most significant bit (pipeline.md 3).
PARA_BANDWIDTH = 0x8000
PARA_LATENCY = 0x4000
PARA_JITTER = 0x2000
PARA_LOSS = 0x1000


@dataclass(frozen=True)
class APNValue:
    """An APN-ID and the option data that carries it (copied verbatim when carried again)."""

    apn_id: int
    id_type: int
    data: bytes

    def id_bytes(self) -> bytes:
        """The APN-ID as 4/8/16 big-endian octets: the deep-hashing input (SPEC 4)."""
        return apn_id_bytes(self.apn_id, self.id_type)


def mark_data(mark: APNMark) -> bytes:
    """SPEC 2 option data: APN-ID-Type, Flags, APN-Para-Type, APN-ID, one u32 per set bit."""
    p = mark.params
    params = [
        (PARA_BANDWIDTH, p.bandwidth_kbps),
        (PARA_LATENCY, p.latency_us),
        (PARA_JITTER, p.jitter_us),
        (PARA_LOSS, p.loss_ppm),
    ]
    present = [(bit, v) for bit, v in params if v is not None]
    head = struct.pack("!BBH", mark.id_type, mark.flags, sum(bit for bit, _ in present))
    values = b"".join(struct.pack("!I", v) for _, v in present)
    return head + apn_id_bytes(mark.apn_id, mark.id_type) + values


def mark_value(mark: APNMark) -> APNValue:
    return APNValue(mark.apn_id, mark.id_type, mark_data(mark))


def parse_apn_data(data: bytes) -> APNValue | None:
    """SPEC 2: usable when the APN-ID-Type is known and the APN-ID and one 32-bit parameter per
    set APN-Para-Type bit fit in the option; otherwise the packet carries no APN-ID."""
    if len(data) < 4 or data[0] not in ID_WIDTH:
        return None
    width = ID_WIDTH[data[0]]
    if len(data) < 4 + width + 4 * bin(u16(data, 2)).count("1"):
        return None
    return APNValue(int.from_bytes(data[4 : 4 + width], "big"), data[0], data)


def option(opt_type: int, data: bytes) -> bytes:
    """RFC 8200 4.2 TLV-encoded option."""
    return bytes([opt_type, len(data)]) + data


def pad_option(n: int) -> bytes:
    """RFC 8200 4.2: Pad1 for one octet, PadN (zero data) for more."""
    if n == 0:
        return b""
    if n == 1:
        return bytes([C.IPV6_OPT_PAD1])
    return bytes([C.IPV6_OPT_PADN, n - 2]) + bytes(n - 2)


def options_header(next_header: int, options: Sequence[bytes]) -> bytes:
    """pipeline.md 3 HBH/DOH layout: the options in the given order, padding before the IOAM
    option so that it starts at 4n from the start of the header, padding at the end to 8n."""
    body = bytearray([next_header, 0])
    for opt in options:
        if opt[0] == C.IOAM_OPT_TYPE:
            body += pad_option(-len(body) % 4)
        body += opt
    body += pad_option(-len(body) % 8)
    body[1] = len(body) // 8 - 1
    return bytes(body)


def iter_options(header: bytes) -> Iterator[tuple[int, int, bytes]]:
    """RFC 8200 4.2: (offset, type, data) of the options after the two header octets; Pad1 is
    skipped. The walk stops at an option that would run past the header."""
    off = 2
    while off < len(header):
        if header[off] == C.IPV6_OPT_PAD1:
            off += 1
            continue
        if off + 2 > len(header) or off + 2 + header[off + 1] > len(header):
            return
        n = header[off + 1]
        yield off, header[off], header[off + 2 : off + 2 + n]
        off += 2 + n


def find_option(header: bytes, opt_type: int) -> tuple[int, bytes] | None:
    """Offset and data of the first option of `opt_type` in an option header."""
    return next(((off, d) for off, t, d in iter_options(header) if t == opt_type), None)


def packet_apn(pkt: IPPacket, option_type: int) -> APNValue | None:
    """pipeline.md 3: the first option of `option_type` in the HBH or a DOH (header order)."""
    for e in pkt.exts:
        if e.kind in (C.IPPROTO_HOPOPTS, C.IPPROTO_DSTOPTS):
            found = find_option(pkt.ext_bytes(e), option_type)
            if found is not None:
                return parse_apn_data(found[1])
    return None


def insert_apn(pkt: IPPacket, carrier: APNCarrier, apn_option: bytes) -> bytes | None:
    """pipeline.md 3, no encapsulation: a new HBH right after the IPv6 header, or a new DOH
    right after the IPv6 header or its HBH. None (nothing inserted) when a header of that kind
    is already there, for IPv4, or for the srh-tlv carrier."""
    if pkt.version != 6 or carrier is APNCarrier.SRH_TLV:
        return None
    exts = list(pkt.exts)
    named_at, at = 6, IPV6_HLEN
    kind = C.IPPROTO_HOPOPTS if carrier is APNCarrier.HBH else C.IPPROTO_DSTOPTS
    if kind == C.IPPROTO_DSTOPTS and exts and exts[0].kind == C.IPPROTO_HOPOPTS:
        named_at, at = exts[0].offset, exts[0].offset + exts[0].length
        exts = exts[1:]
    if exts and exts[0].kind == kind:
        return None
    return insert_header(pkt.data, named_at, at, kind, options_header(0, [apn_option]))


def strip_hbh_options(data: bytes, kinds: frozenset[int]) -> bytes:
    """pipeline.md 4: remove the options of `kinds` from the HBH that follows the IPv6 header,
    lay the remaining ones out again, and remove the HBH when none remain."""
    length = (data[IPV6_HLEN + 1] + 1) * 8
    hbh = data[IPV6_HLEN : IPV6_HLEN + length]
    kept = [
        option(t, d) for _, t, d in iter_options(hbh) if t not in kinds and t != C.IPV6_OPT_PADN
    ]
    if not kept:
        return remove_header(data, ExtHeader(C.IPPROTO_HOPOPTS, IPV6_HLEN, length, 6))
    rebuilt = options_header(hbh[0], kept)
    return set_payload_length(data[:IPV6_HLEN] + rebuilt + data[IPV6_HLEN + length :])


def srh_tlv(tlv_type: int, data: bytes) -> bytes:
    """RFC 8754 2.1: an SRH TLV (Type, Length, Value); the APN TLV carries the option data."""
    return bytes([tlv_type, len(data)]) + data
