"""Check raw bytes against SPEC.md; every function returns human-readable problems, [] = fine.

These read bytes, not scapy layers, so that they judge exactly what is on the wire (scapy would
fix lengths up on rebuild) and never raise on malformed input. Offsets in messages count from
the start of the bytes the function was given (for `validate_packet`: of the enclosing header).
Which option / TLV types are APN, and which UDP ports carry IFIT reports, is read from the
registrations (`register_apn_option_type`, `register_srh_apn_tlv_type`,
`register_ifit_report_port`).
"""

from __future__ import annotations

import ipaddress

from pyctl import constants as C
from pyctl.packets.altmark import ALTMARK_DATA_LEN, ALTMARK_OPTION_TYPE
from pyctl.packets.apn import APN_ID_WIDTH, APN_VALUE_MIN_LEN, apn_option_types, para_count
from pyctl.packets.ifit_report import (
    IFIT_COUNTER_RECORD_LEN,
    IFIT_FAMILY_IPV4,
    IFIT_FAMILY_IPV6,
    IFIT_FLAG_COUNTERS,
    IFIT_REPORT_HEADER_LEN,
    IFIT_REPORT_VERSION,
    ifit_report_ports,
)
from pyctl.packets.ioam import (
    IOAM_OPTION_TYPE,
    IOAM_TRACE_HEADER_LEN,
    IOAM_TYPE_PREALLOC,
    TRACE_BIT_OPAQUE,
    TRACE_BIT_RESERVED,
    node_len_for,
)
from pyctl.packets.pfc import PFC_ETHERTYPE, PFC_OPCODE
from pyctl.packets.roce import ROCE_V2_PORT
from pyctl.packets.srh import HMAC_FIXED_LEN, SRH_TLV_HMAC, SRH_TLV_PAD1, srh_apn_tlv_types

__all__ = [
    "validate_altmark",
    "validate_apn",
    "validate_apn_value",
    "validate_ifit_report",
    "validate_ioam",
    "validate_packet",
    "validate_srh",
]

_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_ETH_VLAN = (0x8100, 0x88A8)
_NH_HBH, _NH_ROUTING, _NH_FRAGMENT, _NH_DESTOPT = 0, 43, 44, 60
_NH_IPV4, _NH_IPV6, _NH_UDP, _NH_NONE = 4, 41, 17, 59
_MAX_NESTING = 8  # IP-in-IP depth we follow; deeper is reported, not recursed into
_BTH_AND_ICRC = 16


def _tlv_value(tlv: bytes, what: str) -> tuple[bytes, list[str]]:
    """Value bytes of ``Type | Length | Value`` (cut to what is present) and framing problems."""
    if len(tlv) < 2:
        return b"", [f"{what} truncated: {len(tlv)} byte(s), type and length need 2"]
    end = 2 + tlv[1]
    if end > len(tlv):
        return tlv[2:], [f"{what} length {tlv[1]} overruns the {len(tlv) - 2} bytes available"]
    return tlv[2:end], []


def validate_apn_value(value: bytes) -> list[str]:
    """Problems of an APN value: ``APN-ID-Type | Flags | APN-Para-Type | APN-ID | params``."""
    if len(value) < APN_VALUE_MIN_LEN:
        return [f"APN value of {len(value)} bytes is shorter than the 4 bytes before the APN-ID"]
    id_type, para_type = value[0], int.from_bytes(value[2:4], "big")
    width = APN_ID_WIDTH.get(id_type)
    if width is None:
        return [f"APN-ID-Type {id_type} is not 1 (32-bit), 2 (64-bit) or 3 (128-bit)"]
    rest = len(value) - APN_VALUE_MIN_LEN - width
    if rest < 0:
        return [
            f"APN-ID-Type {id_type} needs a {width}-byte APN-ID but "
            f"{len(value) - APN_VALUE_MIN_LEN} byte(s) follow"
        ]
    problems = []
    if rest % 4:
        problems.append(f"APN parameters take {rest} bytes, not a multiple of 4")
    if rest // 4 != para_count(para_type):
        problems.append(
            f"APN-Para-Type {para_type:#06x} announces {para_count(para_type)} parameter(s) "
            f"but the value carries {rest // 4}"
        )
    return problems


def validate_apn(opt_bytes: bytes) -> list[str]:
    """Problems of an APN option (bytes from its Option Type on)."""
    value, problems = _tlv_value(opt_bytes, "APN option")
    if len(opt_bytes) < 2:
        return problems
    return problems + validate_apn_value(value)


def validate_altmark(opt_bytes: bytes) -> list[str]:
    """Problems of an Alternate Marking option (bytes from its Option Type on)."""
    value, problems = _tlv_value(opt_bytes, "Alt-Mark option")
    if len(opt_bytes) >= 2 and opt_bytes[1] != ALTMARK_DATA_LEN:
        problems.append(f"Alt-Mark Opt Data Len {opt_bytes[1]} is not {ALTMARK_DATA_LEN}")
    return problems


def validate_ioam(opt_bytes: bytes) -> list[str]:
    """Problems of an IOAM pre-allocated trace option (bytes from its Option Type on)."""
    value, problems = _tlv_value(opt_bytes, "IOAM option")
    if len(opt_bytes) < 2:
        return problems
    if len(value) < 2:
        return problems + [f"IOAM Opt Data Len {opt_bytes[1]} leaves no IOAM-Option-Type"]
    if value[1] != IOAM_TYPE_PREALLOC:
        return problems + [f"IOAM-Option-Type {value[1]} is not a pre-allocated trace (0)"]
    if len(value) < IOAM_TRACE_HEADER_LEN:
        return problems + [
            f"IOAM option data of {len(value)} bytes has no room for the 8-byte trace header"
        ]
    word = int.from_bytes(value[4:6], "big")
    node_len, remaining = word >> 11, word & 0x7F
    trace_type = int.from_bytes(value[6:9], "big")
    if node_len == 0:
        problems.append("IOAM NodeLen is 0")
    if trace_type & (1 << (23 - TRACE_BIT_OPAQUE)):
        problems.append("IOAM-Trace-Type bit 22 (opaque state snapshot) is not supported")
    if trace_type & (1 << (23 - TRACE_BIT_RESERVED)):
        problems.append("IOAM-Trace-Type bit 23 is reserved but set")
    need = node_len_for(trace_type)
    if node_len and node_len != need:
        problems.append(
            f"IOAM NodeLen {node_len} does not match IOAM-Trace-Type {trace_type:#08x} "
            f"({need} words)"
        )
    area = len(value) - IOAM_TRACE_HEADER_LEN
    if area % 4:
        problems.append(f"IOAM node-data area of {area} bytes is not a multiple of 4")
    if remaining * 4 > area:
        problems.append(
            f"IOAM RemainingLen {remaining} ({remaining * 4} bytes) is beyond the "
            f"{area}-byte node-data area"
        )
    elif node_len and (area - remaining * 4) % (node_len * 4):
        problems.append(
            f"IOAM filled area of {area - remaining * 4} bytes is not a whole number of "
            f"{node_len * 4}-byte node records"
        )
    return problems


def validate_srh(srh_bytes: bytes) -> list[str]:
    """Problems of a Segment Routing Header (bytes from its Next Header field on)."""
    if len(srh_bytes) < 8:
        return [f"SRH truncated: {len(srh_bytes)} bytes, the fixed part is 8"]
    hdr_len, rtype, sl, le = srh_bytes[1], srh_bytes[2], srh_bytes[3], srh_bytes[4]
    if rtype != 4:
        return [f"routing type {rtype} is not an SRH (type 4)"]
    problems = []
    total = 8 * (hdr_len + 1)
    if total > len(srh_bytes):
        problems.append(
            f"SRH Hdr Ext Len {hdr_len} ({total} bytes) overruns the {len(srh_bytes)} bytes "
            "available"
        )
    if 2 * (le + 1) > hdr_len:
        problems.append(f"SRH Last Entry {le} > Hdr Ext Len/2 - 1 = {hdr_len / 2 - 1:g}")
        return problems
    if sl > le + 1:
        problems.append(f"SRH Segments Left {sl} > Last Entry {le} + 1")
    end = min(total, len(srh_bytes))
    pos = 8 + 16 * (le + 1)
    apn_types = srh_apn_tlv_types()
    while pos < end:
        tlv_type = srh_bytes[pos]
        if tlv_type == SRH_TLV_PAD1:
            pos += 1
            continue
        value, framing = _tlv_value(srh_bytes[pos:end], f"SRH TLV type {tlv_type} at offset {pos}")
        if framing:
            problems += framing
            break
        if tlv_type == SRH_TLV_HMAC:
            problems += _hmac_problems(value, pos)
        elif tlv_type in apn_types:
            problems += [f"SRH APN TLV at offset {pos}: {p}" for p in validate_apn_value(value)]
        pos += 2 + len(value)
    return problems


def _hmac_problems(value: bytes, pos: int) -> list[str]:
    if len(value) < HMAC_FIXED_LEN:
        return [f"SRH HMAC TLV at offset {pos}: Length {len(value)} is shorter than 6"]
    hmac = len(value) - HMAC_FIXED_LEN
    if hmac % 8 or hmac > 32:
        return [
            f"SRH HMAC TLV at offset {pos}: HMAC of {hmac} bytes is not a multiple of 8 "
            "up to 32 (RFC 8754 §2.1.2)"
        ]
    return []


def validate_ifit_report(payload: bytes) -> list[str]:
    """Problems of an IFIT report (the UDP payload)."""
    if len(payload) < IFIT_REPORT_HEADER_LEN:
        return [f"IFIT report of {len(payload)} bytes is shorter than its 60-byte header"]
    problems = []
    if payload[0] != IFIT_REPORT_VERSION:
        problems.append(f"IFIT report version {payload[0]} is not {IFIT_REPORT_VERSION}")
    family = payload[20]
    if family not in (IFIT_FAMILY_IPV4, IFIT_FAMILY_IPV6):
        problems.append(f"IFIT report family {family} is not 4 or 6")
    elif family == IFIT_FAMILY_IPV4:
        for name, raw in (("src", payload[28:44]), ("dst", payload[44:60])):
            if ipaddress.IPv6Address(raw).ipv4_mapped is None:
                problems.append(f"IFIT report family 4 but {name} is not ::ffff:a.b.c.d")
    if int.from_bytes(payload[2:4], "big") & IFIT_FLAG_COUNTERS:
        if len(payload) != IFIT_COUNTER_RECORD_LEN:
            problems.append(
                f"IFIT counter record of {len(payload)} bytes is not {IFIT_COUNTER_RECORD_LEN}"
            )
    elif (len(payload) - IFIT_REPORT_HEADER_LEN) % 4:
        problems.append(
            f"IFIT report node data of {len(payload) - IFIT_REPORT_HEADER_LEN} bytes is not a "
            "multiple of 4"
        )
    return problems


def _options(hdr: bytes, where: str) -> list[str]:
    """Problems of the options of a Hop-by-Hop / Destination Options header."""
    problems = []
    apn_types = apn_option_types()
    pos = 2
    while pos < len(hdr):
        otype = hdr[pos]
        if otype == 0:
            pos += 1
            continue
        here = f"{where} option {otype:#04x} at offset {pos}"
        if pos + 2 > len(hdr) or pos + 2 + hdr[pos + 1] > len(hdr):
            problems.append(f"{here}: overruns the header ({len(hdr)} bytes)")
            break
        opt = hdr[pos : pos + 2 + hdr[pos + 1]]
        if otype == IOAM_OPTION_TYPE:
            if pos % 4:
                problems.append(f"{here}: IOAM option is not 4-octet aligned (RFC 9486: 4n)")
            found = validate_ioam(opt)
        elif otype == ALTMARK_OPTION_TYPE:
            found = validate_altmark(opt)
        elif otype in apn_types:
            found = validate_apn(opt)
        else:
            found = []
        problems += [f"{here}: {p}" for p in found]
        pos += len(opt)
    return problems


def _udp(seg: bytes, where: str) -> list[str]:
    if len(seg) < 8:
        return [f"{where} UDP header truncated: {len(seg)} bytes"]
    length, dport = int.from_bytes(seg[4:6], "big"), int.from_bytes(seg[2:4], "big")
    if length < 8 or length > len(seg):
        return [f"{where} UDP Length {length} does not fit the {len(seg)} bytes present"]
    payload = seg[8:length]
    if dport in ifit_report_ports():
        return [f"{where} UDP: {p}" for p in validate_ifit_report(payload)]
    if dport == ROCE_V2_PORT and len(payload) < _BTH_AND_ICRC:
        return [f"{where} RoCEv2 payload of {len(payload)} bytes is shorter than BTH + ICRC (16)"]
    return []


def _ipv4(pkt: bytes, where: str, depth: int) -> list[str]:
    if len(pkt) < 20:
        return [f"{where} header truncated: {len(pkt)} bytes of 20"]
    ihl, total, proto = (pkt[0] & 0x0F) * 4, int.from_bytes(pkt[2:4], "big"), pkt[9]
    if pkt[0] >> 4 != 4:
        return [f"{where} version {pkt[0] >> 4} is not 4"]
    if ihl < 20 or ihl > total:
        return [f"{where} IHL {ihl // 4} does not fit Total Length {total}"]
    problems = []
    if total > len(pkt):
        problems.append(f"{where} Total Length {total} overruns the {len(pkt)} bytes present")
    body = pkt[ihl:total]
    if int.from_bytes(pkt[6:8], "big") & 0x1FFF:
        return problems  # a non-first fragment has no transport header
    return problems + _next(proto, body, where, depth)


def _next(nh: int, body: bytes, where: str, depth: int) -> list[str]:
    if nh == _NH_UDP:
        return _udp(body, where)
    if nh in (_NH_IPV6, _NH_IPV4):
        if depth >= _MAX_NESTING:
            return [f"{where}: more than {_MAX_NESTING} nested IP headers, not followed"]
        if nh == _NH_IPV6:
            return _ipv6(body, "inner IPv6", depth + 1)
        return _ipv4(body, "inner IPv4", depth + 1)
    return []


def _ipv6(pkt: bytes, where: str, depth: int) -> list[str]:
    if len(pkt) < 40:
        return [f"{where} header truncated: {len(pkt)} bytes of 40"]
    if pkt[0] >> 4 != 6:
        return [f"{where} version {pkt[0] >> 4} is not 6"]
    problems = []
    plen = int.from_bytes(pkt[4:6], "big")
    if 40 + plen > len(pkt):
        problems.append(
            f"{where} Payload Length {plen} overruns the {len(pkt) - 40} bytes after the header"
        )
    body = pkt[40 : 40 + plen]
    nh, pos, first = pkt[6], 0, True
    names = {_NH_HBH: "Hop-by-Hop", _NH_DESTOPT: "Destination Options", _NH_ROUTING: "routing"}
    while nh in (_NH_HBH, _NH_DESTOPT, _NH_ROUTING, _NH_FRAGMENT):
        here = f"{where} {names.get(nh, 'Fragment')} header at offset {40 + pos}"
        if nh == _NH_HBH and not first:
            problems.append(f"{here}: Hop-by-Hop header is not the first extension header")
        if pos + 8 > len(body):
            return problems + [f"{here}: truncated ({len(body) - pos} bytes left)"]
        size = 8 if nh == _NH_FRAGMENT else 8 * (body[pos + 1] + 1)
        if pos + size > len(body):
            problems.append(f"{here}: length {size} overruns the {len(body) - pos} bytes left")
        hdr = body[pos : pos + size]
        if nh in (_NH_HBH, _NH_DESTOPT):
            problems += _options(hdr, here)
        elif nh == _NH_ROUTING:
            problems += [f"{here}: {p}" for p in validate_srh(hdr)]
        elif int.from_bytes(hdr[2:4], "big") & 0xFFF8:
            return problems  # non-first fragment
        if pos + size > len(body):
            return problems
        nh, pos, first = hdr[0], pos + size, False
    if nh == _NH_NONE:
        return problems
    return problems + _next(nh, body[pos:], where, depth)


def validate_packet(frame: bytes) -> list[str]:
    """Problems of an Ethernet frame: every header this project defines or relies on is checked
    (IPv6 extension headers and their APN / IOAM / Alt-Mark options, SRH, inner IPv6 / IPv4 of
    an SRv6 encapsulation, UDP lengths, IFIT reports, RoCEv2 and PFC frame sizes)."""
    if len(frame) < C.ETH_HLEN:
        return [f"frame of {len(frame)} bytes is shorter than the 14-byte Ethernet header"]
    pos, ethertype = C.ETH_HLEN, int.from_bytes(frame[12:14], "big")
    while ethertype in _ETH_VLAN:
        if len(frame) < pos + 4:
            return [f"VLAN tag at offset {pos - 2} truncated"]
        ethertype = int.from_bytes(frame[pos + 2 : pos + 4], "big")
        pos += 4
    payload = frame[pos:]
    if ethertype == _ETH_IPV6:
        return _ipv6(payload, "IPv6", 0)
    if ethertype == _ETH_IPV4:
        return _ipv4(payload, "IPv4", 0)
    if ethertype == PFC_ETHERTYPE and payload[:2] == PFC_OPCODE.to_bytes(2, "big"):
        if len(payload) < 20:
            return [f"PFC frame truncated: {len(payload)} bytes of 20 (opcode, vector, 8 times)"]
        if payload[2]:
            return [f"PFC priority-enable vector high octet {payload[2]:#04x} is not 0"]
    return []
