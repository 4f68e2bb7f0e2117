"""Frames in and out of the kernel node: AF_PACKET sockets, frame triage, drop counters.

Triage sorts what comes out of the node's ports into
* chatter the kernel emits on its own (Neighbour Discovery, MLD, router solicitations, ARP),
  which is not an output of the packet under test;
* ICMP errors the node itself sends about the packet (Time Exceeded, Parameter Problem, ...),
  which the data-plane contract reports as a drop, not as an output;
* real outputs.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23  # Linux 4.20+: do not see our own injected frames
RCVBUF = 4 << 20

# ICMPv6 types the kernel sends on its own: MLD (130-132, 143), RS/RA/NS/NA/Redirect (133-137).
_CHATTER_ICMP6 = frozenset({130, 131, 132, 133, 134, 135, 136, 137, 143})
_ICMP6_ERRORS = {1: "dest-unreachable", 2: "packet-too-big", 3: "time-exceeded", 4: "param-problem"}
_ICMP4_ERRORS = {3: "dest-unreachable", 11: "time-exceeded", 12: "param-problem"}
_V6_EXT = frozenset({0, 43, 60})  # HBH, Routing, Destination Options: walked to find ICMPv6

# Kernel MIB counters whose increase names why a packet vanished.
DROP_COUNTERS = (
    "Ip6InHdrErrors",
    "Ip6InTooBigErrors",
    "Ip6InNoRoutes",
    "Ip6InAddrErrors",
    "Ip6InUnknownProtos",
    "Ip6InTruncatedPkts",
    "Ip6InDiscards",
    "Ip6OutDiscards",
    "Ip6OutNoRoutes",
    "IpInHdrErrors",
    "IpInAddrErrors",
    "IpInUnknownProtos",
    "IpInDiscards",
    "IpOutDiscards",
    "IpOutNoRoutes",
)


@dataclass(frozen=True)
class Triage:
    kind: str  # "output" | "chatter" | "icmp-error"
    reason: str | None = None  # for icmp-error: e.g. "kernel-icmp-time-exceeded"


def _l3(frame: bytes) -> tuple[int, int] | None:
    if len(frame) < 14:
        return None
    etype, off = int.from_bytes(frame[12:14], "big"), 14
    if etype == 0x8100 and len(frame) >= 18:
        etype, off = int.from_bytes(frame[16:18], "big"), 18
    return etype, off


def _icmp6(frame: bytes, off: int) -> tuple[bytes, int] | None:
    """(source address, ICMPv6 type) when the IPv6 packet at `off` carries ICMPv6."""
    if len(frame) < off + 40:
        return None
    nh, src, p = frame[off + 6], frame[off + 8 : off + 24], off + 40
    for _ in range(8):
        if nh == 58:
            return (src, frame[p]) if p < len(frame) else None
        if nh not in _V6_EXT or p + 2 > len(frame):
            return None
        nh, p = frame[p], p + (frame[p + 1] + 1) * 8
    return None


def triage(
    frame: bytes,
    local_v6: frozenset[ipaddress.IPv6Address],
    local_v4: frozenset[ipaddress.IPv4Address],
) -> Triage:
    l3 = _l3(frame)
    if l3 is None:
        return Triage("output")
    etype, off = l3
    if etype == 0x0806:
        return Triage("chatter")
    if etype == 0x86DD:
        found = _icmp6(frame, off)
        if found is None:
            return Triage("output")
        src_bytes, icmp_type = found
        src = ipaddress.IPv6Address(src_bytes)
        if icmp_type in _CHATTER_ICMP6 and (src.is_unspecified or src.is_link_local):
            return Triage("chatter")
        if icmp_type in _ICMP6_ERRORS and src in local_v6:
            return Triage("icmp-error", f"kernel-icmp-{_ICMP6_ERRORS[icmp_type]}")
        return Triage("output")
    if etype == 0x0800 and len(frame) >= off + 20 and frame[off + 9] == 1:
        ihl = (frame[off] & 0x0F) * 4
        src4 = ipaddress.IPv4Address(frame[off + 12 : off + 16])
        if len(frame) > off + ihl and src4 in local_v4:
            icmp_type = frame[off + ihl]
            if icmp_type in _ICMP4_ERRORS:
                return Triage("icmp-error", f"kernel-icmp4-{_ICMP4_ERRORS[icmp_type]}")
    return Triage("output")


def open_port_socket(ifname: str) -> socket.socket:
    """A non-blocking AF_PACKET socket on `ifname` of the calling thread's namespace."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.bind((ifname, ETH_P_ALL))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def parse_snmp(text: str) -> dict[str, int]:
    """/proc/net/snmp6 ("Name value" lines) or /proc/net/snmp (header line, value line pairs)."""
    out: dict[str, int] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        parts = lines[i].split()
        if len(parts) == 2 and not parts[0].endswith(":"):
            if parts[1].lstrip("-").isdigit():
                out[parts[0]] = int(parts[1])
            i += 1
            continue
        if parts and parts[0].endswith(":") and i + 1 < len(lines):
            values = lines[i + 1].split()
            if values and values[0] == parts[0]:
                prefix = parts[0][:-1]
                for name, value in zip(parts[1:], values[1:], strict=False):
                    if value.lstrip("-").isdigit():
                        out[prefix + name] = int(value)
                i += 2
                continue
        i += 1
    return out


class Counters:
    """The node namespace's IP MIB counters; construct it on a thread inside that namespace."""

    def __init__(self) -> None:
        # /proc/thread-self/net is the opening thread's namespace; the open files stay bound to it
        self._fds = [
            os.open(f"/proc/thread-self/net/{name}", os.O_RDONLY | os.O_CLOEXEC)
            for name in ("snmp6", "snmp")
        ]

    def read(self) -> dict[str, int]:
        values: dict[str, int] = {}
        for fd in self._fds:
            chunks = []
            os.lseek(fd, 0, os.SEEK_SET)
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            values |= parse_snmp(b"".join(chunks).decode())
        return values

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []


def drop_counters(before: dict[str, int], after: dict[str, int]) -> list[str]:
    return [n for n in DROP_COUNTERS if after.get(n, 0) > before.get(n, 0)]
