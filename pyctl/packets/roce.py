"""RoCEv2 helpers on top of scapy's ``scapy.contrib.roce`` (BTH bound to UDP 4791; SPEC §4, §5).

A RoCEv2 packet carries only the *destination* QP (BTH bytes 5-7 = UDP payload bytes 5-7).
A real RNIC addresses its CNP to the sender's QP, which it knows from the connection state, not
from the packet. `cnp_for` therefore targets the QP given as ``dest_qp`` and, when none is given,
the received packet's destination QP: the convention of this project's traffic generator, which
uses the same QP number at both ends of a connection.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

from scapy.contrib.roce import BTH, CNP_OPCODE, CNPPadding
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from pyctl.errors import PacketError

ROCE_V2_PORT = 4791
ROCE_DEFAULT_SPORT = 49152
BTH_OPCODE_RC_SEND_ONLY = 0x04
DEFAULT_SRC_MAC = "02:00:00:00:00:01"
DEFAULT_DST_MAC = "02:00:00:00:00:02"

__all__ = [
    "BTH",
    "CNP_OPCODE",
    "CNPPadding",
    "ROCE_V2_PORT",
    "RoCEFlowKey",
    "cnp_for",
    "roce_dest_qp",
    "roce_flow_key",
    "roce_packet",
]


def _check(name: str, value: int, bits: int) -> None:
    if not 0 <= value < 1 << bits:
        raise PacketError(f"{name} {value!r} does not fit {bits} bits")


def _l3(src: str, dst: str, dscp: int, ecn: int) -> Packet:
    try:
        versions = {ipaddress.ip_address(src).version, ipaddress.ip_address(dst).version}
    except ValueError as err:
        raise PacketError(f"RoCE address: {err}") from None
    if len(versions) != 1:
        raise PacketError(f"RoCE src {src!r} and dst {dst!r} are of different IP versions")
    tos = (dscp << 2) | ecn
    if versions == {6}:
        return IPv6(src=src, dst=dst, tc=tos)
    return IP(src=src, dst=dst, tos=tos)


def roce_packet(
    src: str,
    dst: str,
    dest_qp: int,
    psn: int = 0,
    payload: bytes = b"",
    ecn: int = 0b10,
    sport: int = ROCE_DEFAULT_SPORT,
    opcode: int = BTH_OPCODE_RC_SEND_ONLY,
    dscp: int = 0,
    src_mac: str = DEFAULT_SRC_MAC,
    dst_mac: str = DEFAULT_DST_MAC,
) -> Packet:
    """Ether / IPv6-or-IPv4 (by address family) / UDP 4791 / BTH / payload, ICRC computed.

    The payload is zero-padded to a multiple of 4 bytes and BTH PadCnt says by how much, as an
    RNIC does. `ecn` defaults to ECT(0); the MACs are explicit so that building never resolves
    neighbours.
    """
    _check("RoCE dest_qp", dest_qp, 24)
    _check("RoCE psn", psn, 24)
    _check("RoCE ecn", ecn, 2)
    _check("RoCE dscp", dscp, 6)
    _check("RoCE sport", sport, 16)
    _check("RoCE BTH opcode", opcode, 8)
    pkt = (
        Ether(src=src_mac, dst=dst_mac)
        / _l3(src, dst, dscp, ecn)
        / UDP(sport=sport, dport=ROCE_V2_PORT)
        / BTH(opcode=opcode, dqpn=dest_qp, psn=psn, padcount=-len(payload) % 4)
    )
    if payload:
        pkt = pkt / Raw(payload + bytes(-len(payload) % 4))
    return pkt


def _bth_path(pkt: Packet) -> tuple[Packet, Packet, Packet] | None:
    """(IP layer, UDP, BTH) of the innermost RoCEv2 packet, or None."""
    bth = pkt.getlayer(BTH)
    if bth is None:
        return None
    udp = bth.underlayer
    ip = udp.underlayer if udp is not None else None
    if not isinstance(udp, UDP) or not isinstance(ip, IP | IPv6):
        return None
    return ip, udp, bth


def cnp_for(pkt: Packet, dest_qp: int | None = None, dscp: int = 0) -> Packet:
    """The CNP a receiver answers a (CE-marked) RoCEv2 packet with.

    BTH opcode 0x81, BECN = 1, P_Key copied, 16 reserved bytes, ICRC; addresses and MACs
    swapped; UDP source port kept (so the CNP's 5-tuple names the same flow); Not-ECT.
    """
    found = _bth_path(pkt)
    if found is None:
        raise PacketError(f"cnp_for: {pkt.summary()!r} is not a RoCEv2 packet (no UDP 4791 BTH)")
    ip, udp, bth = found
    qp = int(bth.dqpn) if dest_qp is None else dest_qp
    _check("CNP dest_qp", qp, 24)
    _check("CNP dscp", dscp, 6)
    ether = pkt.getlayer(Ether)
    src_mac = ether.dst if ether is not None else DEFAULT_DST_MAC
    dst_mac = ether.src if ether is not None else DEFAULT_SRC_MAC
    return (
        Ether(src=src_mac, dst=dst_mac)
        / _l3(str(ip.dst), str(ip.src), dscp, 0)
        / UDP(sport=int(udp.sport), dport=ROCE_V2_PORT)
        / BTH(opcode=CNP_OPCODE, becn=1, dqpn=qp, pkey=int(bth.pkey))
        / CNPPadding()
    )


class RoCEFlowKey(NamedTuple):
    """Flow key of a RoCEv2 packet (SPEC §4): addresses plus destination QP."""

    src: str
    dst: str
    dest_qp: int


def roce_dest_qp(pkt: Packet) -> int | None:
    """Destination QP of a RoCEv2 packet (innermost BTH), None if `pkt` is not RoCEv2."""
    found = _bth_path(pkt)
    return None if found is None else int(found[2].dqpn)


def roce_flow_key(pkt: Packet) -> RoCEFlowKey | None:
    """(src, dst, dest QP) of a RoCEv2 packet (innermost BTH), None if `pkt` is not RoCEv2."""
    found = _bth_path(pkt)
    if found is None:
        return None
    ip, _, bth = found
    return RoCEFlowKey(str(ip.src), str(ip.dst), int(bth.dqpn))
