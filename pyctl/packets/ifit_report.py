"""IFIT report: the UDP payload a tail node sends to the collector (SPEC §3 "Export").

Layout (offsets in the UDP payload)::

    0   Version=1(8) | NodeCount(8) | Flags(16)
    4   FlowMonID(20) | L(1) | D(1) | Reserved(10)
    8   TailNodeId(32)
    12  TailTimestamp seconds(32)
    16  TailTimestamp sub-seconds, µs(32)
    20  family(8) | proto(8) | sport(16) | dport(16) | reserved(16)
    28  src(128)
    44  dst(128)
    60  trace record: the raw IOAM node-data area      (Flags bit 0 clear)
        counter record: packets(64) | bytes(64)        (Flags bit 0 set)

Choices this module makes where SPEC is silent:

* Flags bit 0 is the most significant bit (SPEC convention): ``IFIT_FLAG_COUNTERS = 0x8000``.
* ``family`` is the IP version of the inner packet: 4 or 6 (`IFIT_FAMILY_IPV4`,
  `IFIT_FAMILY_IPV6`). IPv4 addresses are carried as ::ffff:a.b.c.d; ``src``/``dst`` accept
  dotted IPv4 strings and map them, ``src_ip``/``dst_ip`` give them back unmapped.
* The report does not carry the IOAM trace type, so `IFITReport.records` takes it as an
  argument, and it reads the *last* NodeCount records of ``data``: that is right both when the
  tail exports the whole pre-allocated area (free space first) and when it exports only the
  filled part.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from scapy.data import IP_PROTOS
from scapy.fields import (
    BitField,
    ByteEnumField,
    ByteField,
    ConditionalField,
    FlagsField,
    IntField,
    LongField,
    ShortField,
    StrField,
    XIntField,
)
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IP6Field
from scapy.packet import Packet, bind_layers, bind_top_down, split_layers

from pyctl.errors import PacketError
from pyctl.packets.ioam import TRACE_TYPE_DEFAULT, IOAMNodeRecord, node_len_for, parse_node_data

IFIT_REPORT_PORT = 5391
IFIT_REPORT_VERSION = 1
IFIT_FLAG_COUNTERS = 0x8000
"""Flags bit 0 (most significant): a per-colour counter record."""
IFIT_FAMILY_IPV4 = 4
IFIT_FAMILY_IPV6 = 6
IFIT_REPORT_HEADER_LEN = 60
IFIT_COUNTER_RECORD_LEN = IFIT_REPORT_HEADER_LEN + 16

# FlagsField names go from the least significant bit up; SPEC numbers bits from the top.
_FLAG_NAMES = [f"bit{15 - i}" for i in range(15)] + ["counters"]


class _MappedIP6Field(IP6Field):
    """IPv6 address field that also takes a dotted IPv4 address and stores it v4-mapped."""

    def h2i(self, pkt: Packet | None, x: Any) -> Any:
        if isinstance(x, str) and "." in x and ":" not in x:
            x = f"::ffff:{ipaddress.IPv4Address(x)}"
        return super().h2i(pkt, x)

    def any2i(self, pkt: Packet | None, x: Any) -> Any:
        return self.h2i(pkt, x)


def _is_counter(pkt: Packet) -> bool:
    return bool(int(pkt.flags) & IFIT_FLAG_COUNTERS)


def _unmap(addr: str) -> str:
    ip = ipaddress.IPv6Address(addr)
    return str(ip.ipv4_mapped) if ip.ipv4_mapped is not None else str(ip)


class IFITReport(Packet):
    """IFIT report (UDP payload, default destination port 5391).

    ``family`` left None is set to 4 when both addresses are IPv4-mapped, else 6. ``reserved``
    is the 10-bit field after L and D, ``tuple_reserved`` the 16-bit one of the 5-tuple.
    """

    name = "IFIT Report"
    fields_desc = [
        ByteField("version", IFIT_REPORT_VERSION),
        ByteField("node_count", 0),
        FlagsField("flags", 0, 16, _FLAG_NAMES),
        BitField("flowmon_id", 0, 20),
        BitField("L", 0, 1),
        BitField("D", 0, 1),
        BitField("reserved", 0, 10),
        XIntField("tail_node_id", 0),
        IntField("ts_sec", 0),
        IntField("ts_subsec", 0),
        ByteEnumField("family", None, {IFIT_FAMILY_IPV4: "IPv4", IFIT_FAMILY_IPV6: "IPv6"}),
        ByteEnumField("proto", 17, IP_PROTOS),
        ShortField("sport", 0),
        ShortField("dport", 0),
        ShortField("tuple_reserved", 0),
        _MappedIP6Field("src", "::"),
        _MappedIP6Field("dst", "::"),
        ConditionalField(LongField("packets", 0), _is_counter),
        ConditionalField(LongField("bytes", 0), _is_counter),
        ConditionalField(StrField("data", b""), lambda pkt: not _is_counter(pkt)),
    ]

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.family is None:
            mapped = all(
                ipaddress.IPv6Address(str(a)).ipv4_mapped is not None for a in (self.src, self.dst)
            )
            family = IFIT_FAMILY_IPV4 if mapped else IFIT_FAMILY_IPV6
            pkt = pkt[:20] + bytes([family]) + pkt[21:]
        return pkt + pay

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        # Only a counter record can leave bytes over (trace records take the rest as data).
        return b"", s

    @property
    def is_counter_record(self) -> bool:
        """True for a per-colour counter record (Flags bit 0)."""
        return _is_counter(self)

    @property
    def src_ip(self) -> str:
        """Inner source address; IPv4 given dotted (unmapped)."""
        return _unmap(str(self.src))

    @property
    def dst_ip(self) -> str:
        """Inner destination address; IPv4 given dotted (unmapped)."""
        return _unmap(str(self.dst))

    def records(self, trace_type: int = TRACE_TYPE_DEFAULT) -> list[IOAMNodeRecord]:
        """The NodeCount node records, most recent hop first; [] for a counter record."""
        if self.is_counter_record:
            return []
        size = int(self.node_count) * node_len_for(trace_type) * 4
        data = bytes(self.data or b"")
        if size > len(data):
            raise PacketError(
                f"IFIT report NodeCount {self.node_count} needs {size} bytes of node data "
                f"for trace_type {trace_type:#08x}; the report has {len(data)}"
            )
        return parse_node_data(data[len(data) - size :], trace_type)


def register_ifit_report_port(port: int) -> None:
    """Dissect UDP datagrams to `port` as IFIT reports (5391 is registered on import)."""
    if not 1 <= port <= 0xFFFF:
        raise PacketError(f"IFIT report port {port!r} is not in 1..65535")
    bind_layers(UDP, IFITReport, dport=port)


def unregister_ifit_report_port(port: int) -> None:
    """Stop dissecting UDP datagrams to `port` as IFIT reports."""
    if port not in ifit_report_ports():
        raise PacketError(f"UDP port {port!r} is not registered for IFIT reports")
    split_layers(UDP, IFITReport, dport=port)
    if ifit_report_ports():
        # split_layers also dropped the build-time default dport; point it at a remaining port.
        bind_top_down(UDP, IFITReport, dport=min(ifit_report_ports()))


def ifit_report_ports() -> set[int]:
    """UDP destination ports that currently dissect as `IFITReport`."""
    return {
        int(fields["dport"])
        for fields, cls in UDP.payload_guess
        if cls is IFITReport and "dport" in fields
    }


register_ifit_report_port(IFIT_REPORT_PORT)
