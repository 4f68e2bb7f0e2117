"""IOAM trace-type arithmetic (RFC 9197 4.4.1), written once for every plane and tool.

Bit 0 is the most significant of the 24 bits. Bits 8, 9 and 10 are 8-octet fields, bits 0-21
otherwise 4 octets; bit 22 (opaque state snapshot) has a variable length that NodeLen does not
count, and bit 23 is reserved (sent as 0, ignored when received).
"""

from __future__ import annotations

WIDE_BITS = (8, 9, 10)  # 8-octet fields
OPAQUE_BIT = 22  # variable-length opaque state snapshot: not in NodeLen
RESERVED_BIT = 23
TRACE_TYPE_BITS = 24


def trace_bit(trace_type: int, b: int) -> bool:
    """IOAM-Trace-Type bit `b` (bit 0 = the most significant of the 24)."""
    return bool(trace_type >> (TRACE_TYPE_BITS - 1 - b) & 1)


def data_words(trace_type: int) -> int:
    """The 4-octet words of the fixed-size node data the trace type asks for (bits 0-21)."""
    return sum(2 if b in WIDE_BITS else 1 for b in range(OPAQUE_BIT) if trace_bit(trace_type, b))


def node_len(trace_type: int) -> int | None:
    """NodeLen of a trace a node must stamp; None with bit 22: no ICPN node can size the
    opaque snapshot, so such a trace is not stamped (docs/pipeline.md 4)."""
    if trace_bit(trace_type, OPAQUE_BIT):
        return None
    return data_words(trace_type)


def area_words(trace_type: int, max_nodes: int) -> int:
    """Words of the pre-allocated area a head lays out for `max_nodes` records of the type:
    at most IOAM_AREA_MAX_WORDS fit one option (pyctl.constants)."""
    return max_nodes * data_words(trace_type)
