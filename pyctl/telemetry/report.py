"""IFIT report wire format (SPEC §3 "Export"): a fast decoder and an encoder, no scapy.

The collector decodes every datagram with precompiled `struct.Struct` objects; the scapy layer
`pyctl.packets.IFITReport` describes the same bytes for people and is held to this module by a
cross-check test. Layout of the UDP payload::

    0   Version=1(8) | NodeCount(8) | Flags(16)
    4   FlowMonID(20) | L(1) | D(1) | Reserved(10)
    8   TailNodeId(32)
    12  TailTimestamp seconds(32) | sub-seconds µs(32)
    20  family(8) | proto(8) | sport(16) | dport(16) | reserved(16)
    28  src(128)   44 dst(128)     (IPv4 as ::ffff:a.b.c.d)
    60  trace report: the IOAM node-data area, most recent hop first
        counter record (Flags & 0x8000): packets(64) | bytes(64)

The report does not say which IOAM trace type its node data follows, so the collector is told
(`TraceLayout`, default 0xF20000: 20-byte records). Like the scapy layer, the decoder takes the
*last* NodeCount records of the area, which is right whether the tail exported only the filled
records (pipeline.md §4) or the whole pre-allocated area.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from pyctl import constants as C
from pyctl.errors import PacketError

REPORT_VERSION = 1
FLAG_COUNTERS = 0x8000
"""Flags bit 0 (most significant bit of the 16-bit Flags): a per-colour counter record."""
FAMILY_IPV4 = 4
FAMILY_IPV6 = 6
HEADER = struct.Struct(">BBHIIIIBBHHH16s16s")
HEADER_LEN = HEADER.size  # 60
COUNTERS = struct.Struct(">QQ")
COUNTER_RECORD_LEN = HEADER_LEN + COUNTERS.size  # 76
US_PER_S = 1_000_000
ALL_ONES_32 = 0xFFFFFFFF
_V4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"
_new_tuple = tuple.__new__  # builds a HopRecord without NamedTuple.__new__'s Python frame

# Reasons a datagram is rejected (the collector counts each one and logs them rate-limited).
R_TRUNCATED = "truncated"
R_TOO_LARGE = "too-large"
R_VERSION = "bad-version"
R_FAMILY = "bad-family"
R_NODE_COUNT = "bad-node-count"
R_AREA = "bad-area-length"
R_COUNTER_LEN = "bad-counter-length"
REJECT_REASONS = (
    R_TRUNCATED,
    R_TOO_LARGE,
    R_VERSION,
    R_FAMILY,
    R_NODE_COUNT,
    R_AREA,
    R_COUNTER_LEN,
)


class ReportError(PacketError):
    """A datagram that is not a valid IFIT report; `reason` is one of `REJECT_REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(f"IFIT report {reason}: {message}")


# Trace-type bits (RFC 9197 numbering, bit 0 = MSB of the 24-bit field) -> octets of node data.
_BIT_SIZES = {b: 4 for b in range(22)} | {8: 8, 9: 8, 10: 8}
_BIT_OPAQUE = 22


def _has(trace_type: int, bit: int) -> bool:
    return bool(trace_type & (1 << (23 - bit)))


class HopRecord(NamedTuple):
    """One node's IOAM data. None = not carried by the trace type, or all ones (not provided).

    `ts_us` joins the seconds and µs fields (bits 2 and 3) in µs of the node's own clock. (A
    NamedTuple: built ~2x faster than a frozen dataclass, and the decoder builds millions.)
    """

    node_id: int | None
    hop_limit: int | None = None
    ingress_if: int | None = None
    egress_if: int | None = None
    ts_us: int | None = None
    queue_depth: int | None = None


@dataclass(frozen=True)
class TraceLayout:
    """How to split and read node data for one IOAM trace type (compiled once)."""

    trace_type: int
    record: struct.Struct
    i_id: int | None  # word index of hop_limit(8)|node_id(24) (bit 0)
    i_wide_id: int | None  # hop_limit(8)|node_id(56) (bit 8)
    i_if: int | None  # ingress(16)|egress(16) (bit 1)
    i_wide_if: int | None  # ingress(32)|egress(32) (bit 9)
    i_sec: int | None
    i_subsec: int | None
    i_queue: int | None
    is_default: bool = False  # 0xF20000: decoded by an inlined loop (the common, hot case)

    @property
    def record_len(self) -> int:
        return self.record.size

    @classmethod
    def for_trace_type(cls, trace_type: int) -> TraceLayout:
        if not 0 <= trace_type < 1 << 24:
            raise PacketError(f"IOAM trace_type {trace_type!r} does not fit 24 bits")
        if _has(trace_type, _BIT_OPAQUE):
            raise PacketError(
                f"IOAM trace_type {trace_type:#08x}: bit 22 (opaque state snapshot, variable "
                "length) is not supported by the collector"
            )
        fmt = ">"
        index: dict[int, int] = {}
        for bit in range(22):
            if _has(trace_type, bit):
                index[bit] = len(fmt) - 1
                fmt += "Q" if _BIT_SIZES[bit] == 8 else "I"
        if len(fmt) == 1:
            raise PacketError(f"IOAM trace_type {trace_type:#08x} selects no node data")
        return cls(
            trace_type=trace_type,
            record=struct.Struct(fmt),
            i_id=index.get(0),
            i_wide_id=index.get(8),
            i_if=index.get(1),
            i_wide_if=index.get(9),
            i_sec=index.get(2),
            i_subsec=index.get(3),
            i_queue=index.get(6),
            is_default=trace_type == C.IOAM_TRACE_TYPE_DEFAULT,
        )

    def hop(self, words: tuple[int, ...]) -> tuple[HopRecord, bool]:
        """A record from its unpacked words; the flag is True when a timestamp was malformed."""
        node_id = hop_limit = ingress = egress = ts = queue = None
        bad_ts = False
        if self.i_id is not None:
            w = words[self.i_id]
            hop_limit, node_id = w >> 24, w & 0xFFFFFF
        elif self.i_wide_id is not None:
            w = words[self.i_wide_id]
            hop_limit, node_id = w >> 56, w & 0xFFFFFFFFFFFFFF
        if self.i_if is not None:
            w = words[self.i_if]
            ingress, egress = w >> 16, w & 0xFFFF
        elif self.i_wide_if is not None:
            w = words[self.i_wide_if]
            ingress, egress = w >> 32, w & ALL_ONES_32
        if self.i_sec is not None:
            sec = words[self.i_sec]
            sub = words[self.i_subsec] if self.i_subsec is not None else 0
            if sec != ALL_ONES_32 and sub != ALL_ONES_32:
                if sub < US_PER_S:
                    ts = sec * US_PER_S + sub
                else:
                    bad_ts = True
        if self.i_queue is not None:
            q = words[self.i_queue]
            queue = None if q == ALL_ONES_32 else q
        return HopRecord(node_id, hop_limit, ingress, egress, ts, queue), bad_ts

    def pack_hop(self, hop: HopRecord) -> bytes:
        """Node data for `hop` (fields left None, or not selected, written all ones)."""
        words: list[int] = []
        for bit in range(22):
            if not _has(self.trace_type, bit):
                continue
            size = _BIT_SIZES[bit]
            ones = (1 << (8 * size)) - 1
            if bit in (0, 8):
                id_bits = 24 if bit == 0 else 56
                hl = 0xFF if hop.hop_limit is None else hop.hop_limit
                nid = (1 << id_bits) - 1 if hop.node_id is None else hop.node_id
                words.append((hl << id_bits) | nid)
            elif bit in (1, 9):
                half = 16 if bit == 1 else 32
                mask = (1 << half) - 1
                ing = mask if hop.ingress_if is None else hop.ingress_if
                eg = mask if hop.egress_if is None else hop.egress_if
                words.append((ing << half) | eg)
            elif bit == 2:
                words.append(ones if hop.ts_us is None else hop.ts_us // US_PER_S)
            elif bit == 3:
                words.append(ones if hop.ts_us is None else hop.ts_us % US_PER_S)
            elif bit == 6:
                words.append(ones if hop.queue_depth is None else hop.queue_depth)
            else:
                words.append(ones)
        try:
            return self.record.pack(*words)
        except struct.error as e:
            raise PacketError(
                f"hop record {hop} does not fit trace_type {self.trace_type:#08x}: {e}"
            ) from None


DEFAULT_LAYOUT = TraceLayout.for_trace_type(C.IOAM_TRACE_TYPE_DEFAULT)


@dataclass(slots=True)
class Report:
    """A decoded IFIT report (read-only by convention; not frozen, which would be slower).

    `hops` is in path order (head first): the wire order (most recent hop first) reversed.
    `packets`/`octets` are set only for counter records; `src`/`dst` are the 16 raw address bytes
    (the hot path never builds address objects; `src_ip`/`dst_ip` do it on demand).
    """

    version: int
    node_count: int
    flags: int
    flowmon_id: int
    colour: int
    d_flag: int
    tail_node_id: int
    tail_ts_us: int | None
    family: int
    proto: int
    sport: int
    dport: int
    src: bytes
    dst: bytes
    hops: tuple[HopRecord, ...] = ()
    packets: int | None = None
    octets: int | None = None
    bad_timestamps: int = 0

    @property
    def is_counter(self) -> bool:
        return bool(self.flags & FLAG_COUNTERS)

    @property
    def path(self) -> tuple[int | None, ...]:
        """Node ids, head first."""
        return tuple(h.node_id for h in self.hops)

    @property
    def src_ip(self) -> str:
        return address_text(self.src)

    @property
    def dst_ip(self) -> str:
        return address_text(self.dst)


def address_text(raw: bytes) -> str:
    """A 16-byte report address as text; IPv4-mapped addresses are given dotted."""
    if raw[:12] == _V4_MAPPED_PREFIX:
        return str(ipaddress.IPv4Address(raw[12:]))
    return str(ipaddress.IPv6Address(raw))


def decode_report(data: bytes | memoryview, layout: TraceLayout = DEFAULT_LAYOUT) -> Report:
    """Decode one UDP payload; raise `ReportError` (with a reason) when it is not a valid report."""
    n = len(data)
    if n < HEADER_LEN:
        raise ReportError(R_TRUNCATED, f"{n} bytes, the header needs {HEADER_LEN}")
    (
        version,
        node_count,
        flags,
        word,
        tail,
        sec,
        sub,
        family,
        proto,
        sport,
        dport,
        _reserved,
        src,
        dst,
    ) = HEADER.unpack_from(data)
    if version != REPORT_VERSION:
        raise ReportError(R_VERSION, f"Version {version}, expected {REPORT_VERSION}")
    if family != FAMILY_IPV6 and family != FAMILY_IPV4:
        raise ReportError(R_FAMILY, f"family {family}, expected 4 or 6")
    bad_ts = 0
    if sec == ALL_ONES_32 or sub == ALL_ONES_32:
        tail_ts = None
    elif sub >= US_PER_S:
        tail_ts = None
        bad_ts = 1
    else:
        tail_ts = sec * US_PER_S + sub
    if flags & FLAG_COUNTERS:
        if n != COUNTER_RECORD_LEN:
            raise ReportError(
                R_COUNTER_LEN, f"counter record of {n} bytes, expected {COUNTER_RECORD_LEN}"
            )
        packets, octets = COUNTERS.unpack_from(data, HEADER_LEN)
        return Report(
            version, node_count, flags, word >> 12, (word >> 11) & 1, (word >> 10) & 1, tail,
            tail_ts, family, proto, sport, dport, src, dst, (), packets, octets, bad_ts,
        )  # fmt: skip
    size = layout.record.size
    area = n - HEADER_LEN
    if area % size:
        raise ReportError(
            R_AREA, f"node-data area of {area} bytes is not a multiple of the {size}-byte record"
        )
    need = node_count * size
    if need > area:
        raise ReportError(
            R_NODE_COUNT, f"NodeCount {node_count} needs {need} bytes, the area has {area}"
        )
    hops: list[HopRecord] = []
    area_view = memoryview(data)[n - need :]
    if layout.is_default:
        append = hops.append
        for w0, w1, sec, sub, q in layout.record.iter_unpack(area_view):
            if sub < US_PER_S and sec != ALL_ONES_32:
                ts: int | None = sec * US_PER_S + sub
            else:
                ts = None
                bad_ts += sub != ALL_ONES_32 and sec != ALL_ONES_32
            append(
                _new_tuple(
                    HopRecord,
                    (w0 & 0xFFFFFF, w0 >> 24, w1 >> 16, w1 & 0xFFFF, ts,
                     None if q == ALL_ONES_32 else q),
                )
            )  # fmt: skip
    else:
        make = layout.hop
        for words in layout.record.iter_unpack(area_view):
            hop, bad = make(words)
            hops.append(hop)
            bad_ts += bad
    hops.reverse()
    return Report(
        version, node_count, flags, word >> 12, (word >> 11) & 1, (word >> 10) & 1, tail, tail_ts,
        family, proto, sport, dport, src, dst, tuple(hops), None, None, bad_ts,
    )  # fmt: skip


def _address_bytes(addr: str) -> tuple[bytes, int]:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        raise PacketError(f"IFIT report address {addr!r} is not an IP address") from None
    if isinstance(ip, ipaddress.IPv4Address):
        return _V4_MAPPED_PREFIX + ip.packed, FAMILY_IPV4
    return ip.packed, FAMILY_IPV4 if ip.ipv4_mapped is not None else FAMILY_IPV6


def _header(
    *,
    node_count: int,
    flags: int,
    flowmon_id: int,
    colour: int,
    d_flag: int,
    node_id: int,
    ts_us: int | None,
    src: str,
    dst: str,
    proto: int,
    sport: int,
    dport: int,
    version: int,
) -> bytes:
    if not 0 <= flowmon_id < 1 << 20:
        raise PacketError(f"IFIT report flowmon_id {flowmon_id!r} does not fit 20 bits")
    src_b, fam_s = _address_bytes(src)
    dst_b, fam_d = _address_bytes(dst)
    family = FAMILY_IPV4 if fam_s == fam_d == FAMILY_IPV4 else FAMILY_IPV6
    word = (flowmon_id << 12) | ((colour & 1) << 11) | ((d_flag & 1) << 10)
    sec, sub = (ALL_ONES_32, ALL_ONES_32) if ts_us is None else divmod(ts_us, US_PER_S)
    try:
        return HEADER.pack(
            version, node_count, flags, word, node_id, sec, sub,
            family, proto, sport, dport, 0, src_b, dst_b,
        )  # fmt: skip
    except struct.error as e:
        raise PacketError(f"IFIT report field out of range: {e}") from None


def encode_trace_report(
    *,
    flowmon_id: int,
    colour: int,
    hops: Sequence[HopRecord],
    src: str,
    dst: str,
    proto: int = C.IPPROTO_UDP,
    sport: int = 0,
    dport: int = 0,
    tail_node_id: int | None = None,
    tail_ts_us: int | None = None,
    d_flag: int = 0,
    layout: TraceLayout = DEFAULT_LAYOUT,
    version: int = REPORT_VERSION,
) -> bytes:
    """The report a tail sends for `hops` (head first); tail id and time default to the last hop."""
    if not hops and (tail_node_id is None or tail_ts_us is None):
        raise PacketError("IFIT report without hops needs tail_node_id and tail_ts_us")
    last = hops[-1] if hops else None
    tail_id = tail_node_id if tail_node_id is not None else (last.node_id if last else None)
    tail_ts = tail_ts_us if tail_ts_us is not None else (last.ts_us if last else None)
    head = _header(
        node_count=len(hops), flags=0, flowmon_id=flowmon_id, colour=colour, d_flag=d_flag,
        node_id=ALL_ONES_32 if tail_id is None else tail_id, ts_us=tail_ts,
        src=src, dst=dst, proto=proto, sport=sport, dport=dport, version=version,
    )  # fmt: skip
    return head + b"".join(layout.pack_hop(h) for h in reversed(hops))


def encode_counter_report(
    *,
    flowmon_id: int,
    colour: int,
    node_id: int,
    ts_us: int,
    packets: int,
    octets: int,
    src: str = "::",
    dst: str = "::",
    proto: int = 0,
    sport: int = 0,
    dport: int = 0,
) -> bytes:
    """A per-colour counter record exported by `node_id` when a colour period closes."""
    head = _header(
        node_count=0, flags=FLAG_COUNTERS, flowmon_id=flowmon_id, colour=colour, d_flag=0,
        node_id=node_id, ts_us=ts_us, src=src, dst=dst, proto=proto, sport=sport, dport=dport,
        version=REPORT_VERSION,
    )  # fmt: skip
    try:
        return head + COUNTERS.pack(packets, octets)
    except struct.error as e:
        raise PacketError(f"IFIT counter record packets/bytes out of range: {e}") from None
