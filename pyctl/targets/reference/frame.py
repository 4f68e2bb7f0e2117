"""Byte-level parsing of Ethernet, IPv6 (with extension headers), IPv4 and the L4 ports.

Every read is bounds-checked against the bytes actually present; a malformed packet raises
`Drop` with the reason of docs/pipeline.md section 1 step 3, never an IndexError.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from pyctl import constants as C
from pyctl.model.hashing import FlowKey

IPV6_HLEN = 40
IPV4_HLEN = 20
UDP_HLEN = 8
BTH_LEN = 12


class Drop(Exception):
    """Raised inside the pipeline to drop the frame with a `pyctl.constants` DROP_* code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def u16(data: bytes | bytearray, off: int) -> int:
    value: int = struct.unpack_from("!H", data, off)[0]
    return value


@dataclass(frozen=True)
class Ethernet:
    dst: bytes
    src: bytes
    ethertype: int
    payload: bytes


def parse_ethernet(frame: bytes) -> Ethernet:
    """An untagged Ethernet II frame (no FCS); anything shorter than a header is `not-ip`."""
    if len(frame) < C.ETH_HLEN:
        raise Drop(C.DROP_NOT_IP)
    return Ethernet(frame[0:6], frame[6:12], u16(frame, 12), frame[C.ETH_HLEN :])


def ethernet(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


@dataclass(frozen=True)
class ExtHeader:
    """One IPv6 extension header: its kind (the Next Header value naming it), where it starts,
    its length in octets, and the offset of the Next Header byte that names it."""

    kind: int
    offset: int
    length: int
    named_at: int


@dataclass(frozen=True)
class IPPacket:
    """A parsed IP packet. `data` is trimmed to the IP length (link padding removed)."""

    data: bytes
    version: int
    exts: tuple[ExtHeader, ...]
    proto: int  # upper-layer protocol (after the extension headers)
    l4: int  # offset of the upper-layer header
    fragment: bool = False  # IPv4 non-first fragment: no ports

    @property
    def src(self) -> bytes:
        return ip_src(self.data, self.version)

    @property
    def dst(self) -> bytes:
        return ip_dst(self.data, self.version)

    @property
    def hop_limit(self) -> int:
        return ip_hop_limit(self.data, self.version)

    @property
    def tos(self) -> int:
        """IPv6 Traffic Class or IPv4 TOS (DSCP << 2 | ECN)."""
        return traffic_class(self.data, self.version)

    @property
    def flow_label(self) -> int:
        return int.from_bytes(self.data[1:4], "big") & 0xFFFFF if self.version == 6 else 0

    def ext(self, kind: int) -> ExtHeader | None:
        return next((e for e in self.exts if e.kind == kind), None)

    def ext_bytes(self, e: ExtHeader) -> bytes:
        return self.data[e.offset : e.offset + e.length]

    @property
    def upper(self) -> bytes:
        return self.data[self.l4 :]


def ip_src(data: bytes, version: int) -> bytes:
    return data[8:24] if version == 6 else data[12:16]


def ip_dst(data: bytes, version: int) -> bytes:
    return data[24:40] if version == 6 else data[16:20]


def ip_hop_limit(data: bytes, version: int) -> int:
    return data[7] if version == 6 else data[8]


def traffic_class(data: bytes, version: int) -> int:
    if version == 6:
        return ((data[0] & 0x0F) << 4) | (data[1] >> 4)
    return data[1]


def parse_ip(payload: bytes, ethertype: int) -> IPPacket:
    """Step 3: IPv6 or IPv4 by EtherType; any other EtherType is `not-ip`."""
    if ethertype == C.ETHERTYPE_IPV6:
        return parse_ipv6(payload)
    if ethertype == C.ETHERTYPE_IPV4:
        return parse_ipv4(payload)
    raise Drop(C.DROP_NOT_IP)


def parse_ipv6(data: bytes) -> IPPacket:
    """RFC 8200 3/4: version 6, Payload Length within the bytes, then the extension headers.

    At most MAX_EXT_HEADERS headers among HBH (only first, RFC 8200 4.1), Routing and
    Destination Options are walked; each must fit in the packet (`bad-exthdr`, or `bad-srh`
    for a Routing header). A further one is `bad-exthdr`.
    """
    if len(data) < IPV6_HLEN or data[0] >> 4 != 6:
        raise Drop(C.DROP_BAD_IPV6)
    total = IPV6_HLEN + u16(data, 4)
    if total > len(data):
        raise Drop(C.DROP_BAD_IPV6)
    data = data[:total]
    exts: list[ExtHeader] = []
    nh, off, named_at = data[6], IPV6_HLEN, 6
    while nh in (C.IPPROTO_HOPOPTS, C.IPPROTO_ROUTING, C.IPPROTO_DSTOPTS):
        if len(exts) == C.MAX_EXT_HEADERS or (nh == C.IPPROTO_HOPOPTS and exts):
            raise Drop(C.DROP_BAD_EXTHDR)
        overrun = C.DROP_BAD_SRH if nh == C.IPPROTO_ROUTING else C.DROP_BAD_EXTHDR
        if off + 2 > total:
            raise Drop(overrun)
        length = (data[off + 1] + 1) * 8
        if off + length > total:
            raise Drop(overrun)
        exts.append(ExtHeader(nh, off, length, named_at))
        nh, named_at, off = data[off], off, off + length
    return IPPacket(data, 6, tuple(exts), nh, off)


def ones_complement_sum(data: bytes) -> int:
    """The 16-bit one's complement sum of `data` (even length): 0xFFFF for a valid header."""
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def is_link_local(addr: bytes) -> bool:
    """fe80::/10 (RFC 4291 2.5.6) or 169.254.0.0/16 (RFC 3927 2.7): never forwarded."""
    if len(addr) == 16:
        return addr[0] == 0xFE and addr[1] & 0xC0 == 0x80
    return addr[:2] == b"\xa9\xfe"


def parse_ipv4(data: bytes) -> IPPacket:
    """RFC 791 3.1: version 4, IHL >= 5, IHL*4 <= Total Length <= the bytes; RFC 1812 5.2.2: a
    router verifies the header checksum."""
    if len(data) < IPV4_HLEN or data[0] >> 4 != 4:
        raise Drop(C.DROP_BAD_IPV4)
    ihl = (data[0] & 0x0F) * 4
    total = u16(data, 2)
    if ihl < IPV4_HLEN or total < ihl or total > len(data):
        raise Drop(C.DROP_BAD_IPV4)
    if ones_complement_sum(data[:ihl]) != 0xFFFF:
        raise Drop(C.DROP_BAD_IPV4)
    fragment = u16(data, 6) & 0x1FFF != 0
    return IPPacket(data[:total], 4, (), data[9], ihl, fragment)


def ports(pkt: IPPacket) -> tuple[int, int]:
    """TCP/UDP source and destination ports, (0, 0) for other protocols, non-first IPv4
    fragments, or an upper-layer header shorter than 4 octets."""
    if pkt.proto not in (C.IPPROTO_TCP, C.IPPROTO_UDP) or pkt.fragment:
        return 0, 0
    if pkt.l4 + 4 > len(pkt.data):
        return 0, 0
    return u16(pkt.data, pkt.l4), u16(pkt.data, pkt.l4 + 2)


def rocev2_qp(pkt: IPPacket) -> int | None:
    """The RoCEv2 destination QP (BTH bytes 5-7, SPEC 4) of a UDP/4791 packet with a whole BTH."""
    sport, dport = ports(pkt)
    if pkt.proto != C.IPPROTO_UDP or dport != C.ROCEV2_UDP_PORT:
        return None
    bth = pkt.l4 + UDP_HLEN
    if bth + BTH_LEN > len(pkt.data):
        return None
    return int.from_bytes(pkt.data[bth + 5 : bth + 8], "big")


def address(raw: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.IPv6Address(raw) if len(raw) == 16 else ipaddress.IPv4Address(raw)


def flow_key(pkt: IPPacket) -> FlowKey:
    """pipeline.md 3: 5-tuple, or addresses + destination QP for RoCEv2 (ports then unused)."""
    src, dst = address(pkt.src), address(pkt.dst)
    qp = rocev2_qp(pkt)
    if qp is not None:
        return FlowKey(src, dst, pkt.proto, qp=qp)
    sport, dport = ports(pkt)
    return FlowKey(src, dst, pkt.proto, sport, dport)


# Checksums (RFC 1071, RFC 1624)


def ones_add(a: int, b: int) -> int:
    s = a + b
    return (s & 0xFFFF) + (s >> 16)


def inet_checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum of `data` (odd length padded with a zero octet)."""
    if len(data) % 2:
        data += b"\x00"
    s = 0
    for (word,) in struct.iter_unpack("!H", data):
        s = ones_add(s, word)
    return ~s & 0xFFFF


def checksum_update(hc: int, old: int, new: int) -> int:
    """RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') for one 16-bit word changed from m to m'."""
    s = ones_add(ones_add(~hc & 0xFFFF, ~old & 0xFFFF), new)
    return ~s & 0xFFFF


def ipv4_set_word(data: bytearray, off: int, new: int) -> None:
    """Replace the 16-bit header word at `off` and update the header checksum (RFC 1624)."""
    old = u16(data, off)
    struct.pack_into("!H", data, off, new)
    struct.pack_into("!H", data, 10, checksum_update(u16(data, 10), old, new))


def decrement_hop_limit(data: bytes, version: int) -> bytes:
    """IPv6 Hop Limit - 1 (RFC 8200 3); IPv4 TTL - 1 with the checksum updated (RFC 1624)."""
    b = bytearray(data)
    if version == 6:
        b[7] -= 1
    else:
        ipv4_set_word(b, 8, u16(b, 8) - 0x0100)
    return bytes(b)


def set_ecn(data: bytes, version: int, ecn: int) -> bytes:
    """Set the 2 ECN bits of the Traffic Class / TOS (RFC 3168 5); IPv4 checksum updated.
    An unchanged value leaves the bytes alone (no checksum rewrite)."""
    if traffic_class(data, version) & 0b11 == ecn:
        return data
    b = bytearray(data)
    if version == 6:
        b[1] = (b[1] & 0xCF) | (ecn << 4)
    else:
        ipv4_set_word(b, 0, (u16(b, 0) & 0xFFFC) | ecn)
    return bytes(b)


def set_payload_length(data: bytes) -> bytes:
    """IPv6 Payload Length = bytes after the fixed header; `too-big` past 65535 (no jumbograms)."""
    plen = len(data) - IPV6_HLEN
    if plen > 0xFFFF:
        raise Drop(C.DROP_TOO_BIG)
    return data[:4] + struct.pack("!H", plen) + data[6:]


def insert_header(data: bytes, named_at: int, at: int, kind: int, header: bytes) -> bytes:
    """Insert an extension header of `kind` at offset `at`, in front of the header named by the
    Next Header byte at `named_at`: the new header takes over that Next Header value."""
    b = bytearray(data[:at] + bytes([data[named_at]]) + header[1:] + data[at:])
    b[named_at] = kind
    return set_payload_length(bytes(b))


def remove_header(data: bytes, e: ExtHeader) -> bytes:
    """Remove one extension header: its Next Header goes to the byte that named it, and the
    Payload Length shrinks by its length (RFC 8986 4.16.1 PSP S15-S17, used for every removal)."""
    b = bytearray(data)
    b[e.named_at] = data[e.offset]
    b[e.offset : e.offset + e.length] = b""
    return set_payload_length(bytes(b))
