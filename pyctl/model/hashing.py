"""Hashes and bucket tables that every data plane must compute identically (SPEC section 4).

docs/pipeline.md states them as part of the contract; these functions are the executable form.
"""

from __future__ import annotations

import ipaddress
import zlib
from dataclasses import dataclass

from pyctl import constants as C


@dataclass(frozen=True)
class FlowKey:
    """The flow key of SPEC section 4: 5-tuple, or addresses + destination QP for RoCEv2."""

    src: ipaddress.IPv4Address | ipaddress.IPv6Address
    dst: ipaddress.IPv4Address | ipaddress.IPv6Address
    proto: int
    sport: int = 0
    dport: int = 0
    qp: int | None = None  # RoCEv2 destination QP (24 bits)

    def to_bytes(self) -> bytes:
        """37 bytes: src(16) dst(16) proto(1) then sport(2) dport(2), or 0x00 QP(3) for RoCEv2.

        IPv4 addresses are mapped as ::ffff:a.b.c.d.
        """
        tail = (
            self.qp.to_bytes(4, "big")
            if self.qp is not None
            else self.sport.to_bytes(2, "big") + self.dport.to_bytes(2, "big")
        )
        return _addr16(self.src) + _addr16(self.dst) + bytes([self.proto]) + tail


def _addr16(a: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    if isinstance(a, ipaddress.IPv4Address):
        return b"\x00" * 10 + b"\xff\xff" + a.packed
    return a.packed


def crc32(data: bytes) -> int:
    """CRC-32 (IEEE 802.3, reflected, init and xor-out 0xFFFFFFFF), as zlib computes it."""
    return zlib.crc32(data) & 0xFFFFFFFF


def apn_id_bytes(apn_id: int, id_type: int) -> bytes:
    width = {C.APN_ID_TYPE_32: 4, C.APN_ID_TYPE_64: 8, C.APN_ID_TYPE_128: 16}[id_type]
    return apn_id.to_bytes(width, "big")


def flow_hash(key: FlowKey) -> int:
    return crc32(key.to_bytes())


def apn_hash(apn_id: int, id_type: int) -> int:
    return crc32(apn_id_bytes(apn_id, id_type))


def flow_label(key: FlowKey) -> int:
    """Outer flow label in `hash` mode: the low 20 bits of the flow hash."""
    return flow_hash(key) & 0xFFFFF


def sketch_index(row: int, key: FlowKey, width: int) -> int:
    """Count-min sketch column of `key` in `row`: CRC-32 over the row number byte + key bytes."""
    return crc32(bytes([row]) + key.to_bytes()) % width


def bucket_table(weights: list[int], size: int = C.POLICY_BUCKETS_DEFAULT) -> tuple[int, ...]:
    """Bucket -> SID-list index, filled by smooth weighted round robin.

    Interleaving (rather than contiguous blocks) keeps neighbouring hash values on different
    paths; any bucket table is valid on the wire, since data planes only index it.
    """
    if not weights or any(w <= 0 for w in weights):
        raise ValueError(f"weights must be positive, got {weights}")
    total = sum(weights)
    current = [0] * len(weights)
    table = []
    for _ in range(size):
        for i, w in enumerate(weights):
            current[i] += w
        best = max(range(len(weights)), key=lambda i: (current[i], -i))
        current[best] -= total
        table.append(best)
    return tuple(table)
