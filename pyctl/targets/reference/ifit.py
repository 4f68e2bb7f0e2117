"""IFIT (SPEC 3, docs/pipeline.md 4): the Alternate-Marking and IOAM pre-allocated trace options,
per-hop stamping, the head's colouring, and the tail's report."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from pyctl import constants as C
from pyctl.model.trace import WIDE_BITS, node_len, trace_bit
from pyctl.targets.reference.apn import find_option, option
from pyctl.targets.reference.frame import IPV6_HLEN, UDP_HLEN, inet_checksum, u16

NODE_LEN_SHIFT = 11
REMAINING_MASK = 0x7F
ONES = 0xFFFFFFFF


@dataclass(frozen=True)
class AltMark:
    flowmon_id: int
    colour: int
    d: int


def altmark_option(mark: AltMark) -> bytes:
    """RFC 9343 2: HBH option 0x12, data FlowMonID(20) | L | D | Reserved(10)."""
    word = mark.flowmon_id << 12 | mark.colour << 11 | mark.d << 10
    return option(C.ALTMARK_OPT_TYPE, struct.pack("!I", word))


def parse_altmark(data: bytes) -> AltMark | None:
    """An AltMark option's data is exactly 4 octets (RFC 9343 2); anything else is ignored."""
    if len(data) != 4:
        return None
    word = int.from_bytes(data, "big")
    return AltMark(word >> 12, word >> 11 & 1, word >> 10 & 1)


def ioam_option(namespace_id: int, trace_type: int, max_nodes: int) -> bytes:
    """RFC 9486 2 / RFC 9197 4.4: option 0x31, Reserved, IOAM-Option-Type 0 (pre-allocated
    trace), the trace header with RemainingLen = max_nodes * NodeLen, Flags 0, a zeroed area."""
    nl = node_len(trace_type) or 0
    remaining = max_nodes * nl
    header = struct.pack("!BBHH", 0, 0, namespace_id, nl << NODE_LEN_SHIFT | remaining)
    return option(
        C.IOAM_OPT_TYPE, header + trace_type.to_bytes(3, "big") + b"\x00" + bytes(remaining * 4)
    )


@dataclass(frozen=True)
class Trace:
    """A usable IOAM pre-allocated trace option; offsets are from the start of the packet."""

    offset: int  # the option's type octet
    node_len: int
    remaining: int
    trace_type: int
    area_len: int

    @property
    def word(self) -> int:
        """Offset of the NodeLen(5) | Flags(4) | RemainingLen(7) word."""
        return self.offset + 6

    @property
    def area(self) -> int:
        return self.offset + 12

    def filled(self, data: bytes) -> bytes:
        """The node data written so far, most recent hop first (RFC 9197 4.4)."""
        return data[self.area + self.remaining * 4 : self.area + self.area_len]


def hbh_option(data: bytes, opt_type: int) -> tuple[int, bytes] | None:
    """Offset (in the packet) and data of the first `opt_type` option of the HBH that follows
    the IPv6 header of `data`, if there is one."""
    if data[6] != C.IPPROTO_HOPOPTS:
        return None
    hbh = data[IPV6_HLEN : IPV6_HLEN + (data[IPV6_HLEN + 1] + 1) * 8]
    found = find_option(hbh, opt_type)
    return None if found is None else (IPV6_HLEN + found[0], found[1])


def find_altmark(data: bytes) -> AltMark | None:
    found = hbh_option(data, C.ALTMARK_OPT_TYPE)
    return None if found is None else parse_altmark(found[1])


def find_trace(data: bytes, namespace_id: int) -> Trace | None:
    """pipeline.md 4: the first IOAM option of the outer HBH, if usable: a pre-allocated trace
    (IOAM-Option-Type 0) of the default namespace 0 or the node's, a 4n-octet area, NodeLen as
    its trace type sizes it (> 0), RemainingLen within the area. Otherwise IFIT ignores it."""
    found = hbh_option(data, C.IOAM_OPT_TYPE)
    if found is None:
        return None
    off, opt = found
    if len(opt) < 10 or (len(opt) - 10) % 4 or opt[1] != 0:
        return None
    namespace, word = u16(opt, 2), u16(opt, 4)
    trace_type = int.from_bytes(opt[6:9], "big")
    nl, remaining = word >> NODE_LEN_SHIFT, word & REMAINING_MASK
    if namespace not in (0, namespace_id) or not nl or node_len(trace_type) != nl:
        return None
    if remaining * 4 > len(opt) - 10:
        return None
    return Trace(off, nl, remaining, trace_type, len(opt) - 10)


@dataclass(frozen=True)
class Hop:
    """What this node records (pipeline.md 4)."""

    hop_limit: int
    node_id: int
    ingress: int
    egress: int
    time_us: int
    queue_packets: int


def node_data(trace_type: int, hop: Hop) -> bytes:
    """pipeline.md 4 / RFC 9197 4.4.2: fields in trace-type bit order; bits 0, 1, 2, 3 and 6 are
    provided, every other one is all ones (8 octets for bits 8-10, else 4)."""
    provided = {
        0: (hop.hop_limit & 0xFF) << 24 | hop.node_id & 0xFFFFFF,
        1: (hop.ingress & 0xFFFF) << 16 | hop.egress & 0xFFFF,
        2: hop.time_us // 1_000_000 & ONES,
        3: hop.time_us % 1_000_000,
        6: hop.queue_packets & ONES,
    }
    out = b""
    for b in range(22):
        if not trace_bit(trace_type, b):
            continue
        if b in provided:
            out += struct.pack("!I", provided[b])
        else:
            out += b"\xff" * (8 if b in WIDE_BITS else 4)
    return out


def stamp(data: bytes, trace: Trace, hop: Hop) -> bytes:
    """pipeline.md 4: write the node data at RemainingLen*4 - NodeLen*4 of the area and subtract
    NodeLen; without room set the Overflow flag and write nothing (RFC 9197 4.4.1)."""
    b = bytearray(data)
    word = u16(b, trace.word)
    if trace.remaining < trace.node_len:
        word |= C.IOAM_OVERFLOW_FLAG
    else:
        remaining = trace.remaining - trace.node_len
        at = trace.area + remaining * 4
        b[at : at + trace.node_len * 4] = node_data(trace.trace_type, hop)
        word = word & ~REMAINING_MASK | remaining
    struct.pack_into("!H", b, trace.word, word)
    return bytes(b)


@dataclass(frozen=True)
class FiveTuple:
    """The inner packet's 5-tuple as the report carries it (addresses 16 octets, IPv4 mapped)."""

    family: int
    proto: int
    sport: int
    dport: int
    src: bytes
    dst: bytes

    def to_bytes(self) -> bytes:
        head = struct.pack("!BBHHH", self.family, self.proto, self.sport, self.dport, 0)
        return head + mapped(self.src) + mapped(self.dst)


def mapped(addr: bytes) -> bytes:
    """IPv4 addresses as ::ffff:a.b.c.d (SPEC 3)."""
    return addr if len(addr) == 16 else bytes(10) + b"\xff\xff" + addr


def report_payload(
    mark: AltMark | None, node_id: int, time_us: int, flow: FiveTuple, records: bytes, count: int
) -> bytes:
    """SPEC 3 IFIT report: Version 1 | NodeCount | Flags 0 | FlowMonID | L | D | Reserved |
    TailNodeId | seconds | µs | 5-tuple | node data. No AltMark: FlowMonID, L and D are 0."""
    m = mark or AltMark(0, 0, 0)
    head = struct.pack(
        "!BBHIIII",
        C.IFIT_REPORT_VERSION,
        count,
        0,
        m.flowmon_id << 12 | m.colour << 11 | m.d << 10,
        node_id,
        time_us // 1_000_000 & ONES,
        time_us % 1_000_000,
    )
    return head + flow.to_bytes() + records


def udp_ipv6(src: bytes, dst: bytes, port: int, payload: bytes) -> bytes:
    """IPv6 (TC 0, flow label 0, hop limit 64) / UDP with sport = dport = `port` and the checksum
    over the pseudo-header (RFC 8200 8.1); a computed 0 is sent as 0xFFFF (RFC 768)."""
    length = UDP_HLEN + len(payload)
    udp = struct.pack("!HHHH", port, port, length, 0) + payload
    pseudo = src + dst + struct.pack("!IxxxB", length, C.IPPROTO_UDP)
    csum = inet_checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    header = struct.pack("!IHBB", 6 << 28, length, C.IPPROTO_UDP, C.IFIT_REPORT_HOP_LIMIT)
    return header + src + dst + udp


@dataclass
class Colouring:
    """Head state: per FlowMonID, the current colour period and the packets seen in it."""

    periods: dict[int, tuple[int, int]] = field(default_factory=dict)

    def mark(self, flowmon_id: int, time_us: int, period_us: int, d_every: int) -> AltMark:
        """pipeline.md 4: L = period parity; D on packets 0, d_every, 2*d_every ... of a period."""
        period = time_us // period_us
        seen_period, count = self.periods.get(flowmon_id, (period, 0))
        if seen_period != period:
            count = 0
        self.periods[flowmon_id] = (period, count + 1)
        return AltMark(flowmon_id, period & 1, int(count % d_every == 0))
