"""IOAM pre-allocated trace option (RFC 9197 data, RFC 9486 IPv6 encapsulation; SPEC §3).

Option layout (offsets from the option type)::

    0  Option Type=0x31 | Opt Data Len | Reserved(8) | IOAM-Option-Type=0(8)
    4  Namespace-ID(16) | NodeLen(5) | Flags(4) | RemainingLen(7)
    8  IOAM-Trace-Type(24) | Reserved(8)
    12 node-data area (RemainingLen*4 free bytes, then the filled records, most recent hop first)

Trace-type bits are numbered as in RFC 9197: bit 0 is the most significant bit of the 24-bit
field, so bit ``b`` has the mask ``1 << (23 - b)``. The Overflow flag is the most significant of
the four flag bits: ``0x0400`` of the 16-bit word NodeLen|Flags|RemainingLen (`IOAM_OVERFLOW_FLAG`),
``flags.overflow`` on the layer. A field a node cannot provide is all ones (RFC 9197 §4.4.2).
"""

from __future__ import annotations

from dataclasses import dataclass

from scapy.fields import (
    BitField,
    ByteEnumField,
    ByteField,
    ConditionalField,
    FlagsField,
    ShortField,
    StrField,
    XBitField,
)
from scapy.layers.inet6 import _hbhoptcls, _hbhopts, _OTypeField
from scapy.packet import Packet

from pyctl.errors import PacketError
from pyctl.model.trace import data_words
from pyctl.packets._tlv import _BoundedTLV, align_delta

IOAM_OPTION_TYPE = 0x31
IOAM_TYPE_PREALLOC = 0
IOAM_TYPE_INCREMENTAL = 1
IOAM_OVERFLOW_FLAG = 0x0400
"""Overflow in the 16-bit word NodeLen(5) | Flags(4) | RemainingLen(7) (SPEC §3)."""

IOAM_TRACE_HEADER_LEN = 10
"""Opt Data Len of an empty-area trace: Reserved + IOAM-Option-Type (2) + trace header (8)."""

IOAM_MAX_AREA = 255 - IOAM_TRACE_HEADER_LEN
"""Largest node-data area one option can carry (8-bit Opt Data Len)."""

TRACE_BIT_OPAQUE = 22
TRACE_BIT_RESERVED = 23


def trace_type_from_bits(*bits: int) -> int:
    """IOAM-Trace-Type with the given RFC 9197 bit numbers set (bit 0 = most significant)."""
    value = 0
    for bit in bits:
        if not 0 <= bit <= 23:
            raise PacketError(f"IOAM trace-type bit {bit!r} is not in 0..23")
        value |= 1 << (23 - bit)
    return value


TRACE_TYPE_DEFAULT = trace_type_from_bits(0, 1, 2, 3, 6)
"""0xF20000: hop limit + node id, ingress/egress if, timestamp s, timestamp µs, queue depth."""

# (trace-type bit, ((record attribute, width in bits), ...)) for the fixed-size node-data fields.
_TRACE_FIELDS: tuple[tuple[int, tuple[tuple[str, int], ...]], ...] = (
    (0, (("hop_limit", 8), ("node_id", 24))),
    (1, (("ingress_if", 16), ("egress_if", 16))),
    (2, (("ts_sec", 32),)),
    (3, (("ts_subsec", 32),)),
    (4, (("transit_delay", 32),)),
    (5, (("namespace_data", 32),)),
    (6, (("queue_depth", 32),)),
    (7, (("checksum_complement", 32),)),
    (8, (("hop_limit_wide", 8), ("node_id_wide", 56))),
    (9, (("ingress_if_wide", 32), ("egress_if_wide", 32))),
    (10, (("namespace_data_wide", 64),)),
    (11, (("buffer_occupancy", 32),)),
)
_UNDEFINED_BITS = range(12, 22)  # RFC 9197: each one 4 octets, written 0xFFFFFFFF


def _check_trace_type(trace_type: int) -> None:
    if not 0 <= trace_type < 1 << 24:
        raise PacketError(f"IOAM trace_type {trace_type!r} does not fit 24 bits")


def node_len_for(trace_type: int) -> int:
    """NodeLen (4-octet words per node) that `trace_type` needs when building a trace: the
    fixed-size data of bits 0-21 (pyctl.model.trace); bits 22 and 23 add nothing."""
    _check_trace_type(trace_type)
    return data_words(trace_type)


@dataclass(frozen=True)
class IOAMNodeRecord:
    """One node's data of an IOAM trace; None = the trace type does not carry the field."""

    hop_limit: int | None = None
    node_id: int | None = None
    ingress_if: int | None = None
    egress_if: int | None = None
    ts_sec: int | None = None
    ts_subsec: int | None = None
    transit_delay: int | None = None
    namespace_data: int | None = None
    queue_depth: int | None = None
    checksum_complement: int | None = None
    hop_limit_wide: int | None = None
    node_id_wide: int | None = None
    ingress_if_wide: int | None = None
    egress_if_wide: int | None = None
    namespace_data_wide: int | None = None
    buffer_occupancy: int | None = None
    undefined: tuple[int, ...] = ()
    """Values of the undefined bits 12-21 that are set, in bit order."""

    @classmethod
    def unpack(cls, data: bytes, trace_type: int) -> IOAMNodeRecord:
        """Parse one node's data (exactly ``node_len_for(trace_type) * 4`` bytes)."""
        if trace_type & (1 << (23 - TRACE_BIT_OPAQUE)):
            raise PacketError("IOAM trace_type bit 22 (opaque state snapshot) is not supported")
        need = node_len_for(trace_type) * 4
        if len(data) != need:
            raise PacketError(
                f"IOAM node data is {len(data)} bytes, trace_type {trace_type:#08x} needs {need}"
            )
        value = int.from_bytes(data, "big")
        pos = len(data) * 8
        found: dict[str, int] = {}
        for bit, fields in _TRACE_FIELDS:
            if trace_type & (1 << (23 - bit)):
                for attr, width in fields:
                    pos -= width
                    found[attr] = (value >> pos) & ((1 << width) - 1)
        undefined = []
        for bit in _UNDEFINED_BITS:
            if trace_type & (1 << (23 - bit)):
                pos -= 32
                undefined.append((value >> pos) & 0xFFFFFFFF)
        return cls(**found, undefined=tuple(undefined))

    def pack(self, trace_type: int) -> bytes:
        """Node data for `trace_type`; fields left None are written all ones (RFC 9197 §4.4.2)."""
        if trace_type & (1 << (23 - TRACE_BIT_OPAQUE)):
            raise PacketError("IOAM trace_type bit 22 (opaque state snapshot) is not supported")
        words = node_len_for(trace_type)
        value = 0
        for bit, fields in _TRACE_FIELDS:
            if trace_type & (1 << (23 - bit)):
                for attr, width in fields:
                    field = getattr(self, attr)
                    field = (1 << width) - 1 if field is None else field
                    if not 0 <= field < 1 << width:
                        raise PacketError(
                            f"IOAMNodeRecord.{attr} {field!r} does not fit {width} bits"
                        )
                    value = (value << width) | field
        extra = iter(self.undefined)
        for bit in _UNDEFINED_BITS:
            if trace_type & (1 << (23 - bit)):
                value = (value << 32) | (next(extra, 0xFFFFFFFF) & 0xFFFFFFFF)
        return value.to_bytes(words * 4, "big")


def parse_node_data(
    data: bytes, trace_type: int, node_len: int | None = None
) -> list[IOAMNodeRecord]:
    """Split a filled node-data area into records (the first is the most recent hop).

    `node_len` (words) defaults to what `trace_type` needs; a different one is an error because
    the records could not be told apart.
    """
    need = node_len_for(trace_type)
    if node_len is None:
        node_len = need
    if node_len == 0:
        raise PacketError("IOAM NodeLen is 0: node data cannot be split into records")
    if node_len != need:
        raise PacketError(
            f"IOAM NodeLen {node_len} does not match trace_type {trace_type:#08x} "
            f"(which needs {need} words)"
        )
    size = node_len * 4
    if len(data) % size:
        raise PacketError(
            f"IOAM node data of {len(data)} bytes is not a whole number of {size}-byte records"
        )
    return [
        IOAMNodeRecord.unpack(data[i : i + size], trace_type) for i in range(0, len(data), size)
    ]


_hbhopts[IOAM_OPTION_TYPE] = "IOAM"


def _is_trace(pkt: Packet) -> bool:
    return pkt.ioam_type in (IOAM_TYPE_PREALLOC, IOAM_TYPE_INCREMENTAL)


class IOAMTraceOption(_BoundedTLV):
    """IOAM option, HBH type 0x31; the trace header is present for IOAM-Option-Type 0 and 1.

    ``optlen``, ``node_len`` (from ``trace_type``) and ``remaining_len`` (= the whole area, i.e.
    an empty trace) are computed when left None. ``reserved`` is the Reserved byte of the option
    data, ``trace_reserved`` the one of the trace header. Other IOAM-Option-Types (POT, E2E, DEX)
    keep everything after IOAM-Option-Type in ``data``.
    """

    name = "IOAM Trace Option"
    fields_desc = [
        _OTypeField("otype", IOAM_OPTION_TYPE, _hbhopts),
        ByteField("optlen", None),
        ByteField("reserved", 0),
        ByteEnumField(
            "ioam_type",
            IOAM_TYPE_PREALLOC,
            {0: "Pre-allocated Trace", 1: "Incremental Trace", 2: "POT", 3: "E2E", 4: "DEX"},
        ),
        ConditionalField(ShortField("namespace_id", 0), _is_trace),
        ConditionalField(BitField("node_len", None, 5), _is_trace),
        # FlagsField names go from the least significant bit up: Overflow is RFC 9197 bit 0,
        # Loopback and Active are RFC 9322 bits 1 and 2.
        ConditionalField(
            FlagsField("flags", 0, 4, ["reserved", "active", "loopback", "overflow"]), _is_trace
        ),
        ConditionalField(BitField("remaining_len", None, 7), _is_trace),
        ConditionalField(XBitField("trace_type", TRACE_TYPE_DEFAULT, 24), _is_trace),
        ConditionalField(ByteField("trace_reserved", 0), _is_trace),
        StrField("data", b""),
    ]

    def alignment_delta(self, curpos: int) -> int:
        # RFC 9486 §3: 4n, so that the trace header and node data are 4-octet aligned.
        return align_delta(curpos, 4, 0)

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if _is_trace(self):
            word = int.from_bytes(pkt[6:8], "big")
            if self.node_len is None:
                word = (word & 0x07FF) | (node_len_for(int(self.trace_type)) << 11)
            if self.remaining_len is None:
                words = len(self.data) // 4
                if words > 0x7F:
                    raise PacketError(f"IOAM area of {len(self.data)} bytes exceeds RemainingLen")
                word = (word & 0xFF80) | words
            pkt = pkt[:6] + word.to_bytes(2, "big") + pkt[8:]
        if self.optlen is None:
            if len(pkt) - 2 > 255:
                raise PacketError(
                    f"IOAM option data of {len(pkt) - 2} bytes does not fit Opt Data Len (255)"
                )
            pkt = pkt[:1] + bytes([len(pkt) - 2]) + pkt[2:]
        return pkt + pay

    def _node_len(self) -> int:
        return node_len_for(int(self.trace_type)) if self.node_len is None else int(self.node_len)

    def _remaining_len(self) -> int:
        return len(self.data) // 4 if self.remaining_len is None else int(self.remaining_len)

    @property
    def overflow(self) -> bool:
        """True when a node found no room left (the Overflow flag)."""
        return bool(int(self.flags or 0) & 0x8)

    def filled(self) -> bytes:
        """The written part of the area: from RemainingLen*4 to the end."""
        start = self._remaining_len() * 4
        if start > len(self.data):
            raise PacketError(
                f"IOAM RemainingLen {self._remaining_len()} ({start} bytes) is beyond the "
                f"{len(self.data)}-byte node-data area"
            )
        return bytes(self.data[start:])

    def records(self) -> list[IOAMNodeRecord]:
        """Per-hop records, most recent hop first (the lowest offset of the filled area)."""
        if not _is_trace(self):
            raise PacketError(f"IOAM-Option-Type {self.ioam_type} is not a trace")
        return parse_node_data(self.filled(), int(self.trace_type), self._node_len())

    def path(self) -> list[int]:
        """Node ids of the trace, most recent hop first (needs trace-type bit 0 or 8)."""
        ids = []
        for rec in self.records():
            node = rec.node_id if rec.node_id is not None else rec.node_id_wide
            if node is None:
                raise PacketError("IOAM trace_type carries no node id (bit 0 or 8)")
            ids.append(node)
        return ids

    def stamp(self, record: IOAMNodeRecord) -> bool:
        """Write one hop's data as an IFIT node does (SPEC §3); False when there is no room.

        The record goes at ``RemainingLen*4 - NodeLen*4`` and RemainingLen drops by NodeLen;
        with too little room the Overflow flag is set and the area is left as it is.
        """
        node_len = self._node_len()
        if node_len != node_len_for(int(self.trace_type)):
            raise PacketError(f"IOAM NodeLen {node_len} does not match trace_type")
        remaining = self._remaining_len()
        if remaining * 4 > len(self.data):
            raise PacketError(f"IOAM RemainingLen {remaining} is beyond the node-data area")
        if remaining < node_len:
            self.setfieldval("flags", int(self.flags or 0) | 0x8)
            return False
        offset = (remaining - node_len) * 4
        area = bytearray(self.data)
        area[offset : offset + node_len * 4] = record.pack(int(self.trace_type))
        self.setfieldval("data", bytes(area))
        self.setfieldval("remaining_len", remaining - node_len)
        self.setfieldval("node_len", node_len)
        return True


def ioam_trace_option(
    namespace_id: int = 0, trace_type: int = TRACE_TYPE_DEFAULT, max_nodes: int = 8
) -> IOAMTraceOption:
    """An empty pre-allocated trace with room for `max_nodes` nodes (area zeroed)."""
    node_len = node_len_for(trace_type)
    if node_len == 0:
        raise PacketError(f"IOAM trace_type {trace_type:#08x} selects no node data")
    if not 0 <= namespace_id <= 0xFFFF:
        raise PacketError(f"IOAM namespace_id {namespace_id!r} does not fit 16 bits")
    area = node_len * 4 * max_nodes
    if max_nodes < 1 or area > IOAM_MAX_AREA - IOAM_MAX_AREA % 4:
        raise PacketError(
            f"IOAM max_nodes {max_nodes!r} x NodeLen {node_len} words = {area} bytes; one option "
            f"holds 1..{IOAM_MAX_AREA // (node_len * 4)} such nodes"
        )
    return IOAMTraceOption(
        namespace_id=namespace_id,
        node_len=node_len,
        remaining_len=node_len * max_nodes,
        trace_type=trace_type,
        data=bytes(area),
    )


_hbhoptcls[IOAM_OPTION_TYPE] = IOAMTraceOption
