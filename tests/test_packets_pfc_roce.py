"""pyctl.packets, PFC frames (IEEE 802.1Qbb, SPEC §5) and RoCEv2 packets and CNPs (SPEC §4,
§5): bytes written by hand, the ICRC computed here from the IBA rules, flow keys."""

from __future__ import annotations

import struct
import zlib

import pytest
from packet_bytes import MAC_A, MAC_B, frame, h
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrSegmentRouting
from scapy.layers.l2 import Ether

from pyctl.errors import PacketError
from pyctl.packets import BTH, PFC, cnp_for, pfc_frame, roce_dest_qp, roce_flow_key, roce_packet

# ---------------------------------------------------------------- PFC (IEEE 802.1Qbb, SPEC §5)


def test_pfc_frame_bytes() -> None:
    xoff = h(
        "0180c2000001 020000000001 8808"
        "0101 0008"  # opcode, priority-enable vector: priority 3
        "0000 0000 0000 ffff 0000 0000 0000 0000"  # time[0..7]
    ) + bytes(26)  # pad to the 46-byte minimum payload
    assert bytes(pfc_frame(MAC_A, {3: 0xFFFF})) == xoff
    xon = bytes(pfc_frame(MAC_A, {3: 0}))
    assert xon == xoff[:24] + bytes(2) + xoff[26:] and len(xon) == 60


def test_pfc_dissection() -> None:
    raw = bytes(pfc_frame(MAC_A, {0: 10, 7: 0xFFFF}))
    pfc = Ether(raw)[PFC]
    assert pfc.class_enable == 0x81 and pfc.paused() == {0: 10, 7: 0xFFFF}
    assert pfc.pause_time(3) == 0
    assert bytes(Ether(raw)) == raw
    pause_8023x = h("0180c2000001 020000000001 8808 0001 ffff") + bytes(42)
    assert PFC not in Ether(pause_8023x)
    with pytest.raises(PacketError, match="priority 8"):
        pfc_frame(MAC_A, {8: 1})
    with pytest.raises(PacketError, match="pause time 65536"):
        pfc_frame(MAC_A, {1: 0x10000})


# ---------------------------------------------------------------- RoCEv2 (SPEC §4, §5)


def icrc(pkt: bytes) -> bytes:
    """RoCEv2 ICRC computed here from the IBA rules: 8 bytes of ones, then IP/UDP/BTH/payload
    with the variant fields (IPv6 TC/FL/HL or IPv4 TOS/TTL/checksum, UDP checksum, BTH byte 4)
    set to ones; CRC-32, least significant byte first."""
    ip = bytearray(pkt[14:])
    if ip[0] >> 4 == 6:
        ip[0:4] = bytes([0x6F, 0xFF, 0xFF, 0xFF])
        ip[7] = 0xFF
        udp = 40
    else:
        ip[1], ip[8], ip[10:12] = 0xFF, 0xFF, b"\xff\xff"
        udp = 20
    ip[udp + 6 : udp + 8] = b"\xff\xff"
    ip[udp + 8 + 4] = 0xFF
    return struct.pack("<I", zlib.crc32(b"\xff" * 8 + bytes(ip[:-4])))


def test_roce_packet_ipv6() -> None:
    raw = bytes(roce_packet("2001:db8::1", "2001:db8::2", dest_qp=0x12, psn=7, payload=b"hello"))
    pkt = Ether(raw)
    assert pkt[IPv6].tc == 0b10 and pkt[UDP].dport == 4791
    # BTH: opcode RC SEND_ONLY, PadCnt 3, P_Key ffff, dest QP 0x12, PSN 7; payload padded to 8.
    assert raw[62 : 62 + 12] == h("04 30 ffff 00 000012 00 000007")
    assert raw[74:-4] == b"hello\x00\x00\x00"
    assert raw[-4:] == icrc(raw)
    assert roce_flow_key(pkt) == ("2001:db8::1", "2001:db8::2", 0x12)
    assert roce_dest_qp(pkt) == 0x12


def test_roce_packet_ipv4() -> None:
    pkt = Ether(bytes(roce_packet("10.0.0.1", "10.0.0.2", dest_qp=0xABCDEF, ecn=1, dscp=26)))
    assert pkt[IP].tos == (26 << 2) | 1 and pkt[BTH].dqpn == 0xABCDEF
    assert bytes(pkt)[-4:] == icrc(bytes(pkt))
    with pytest.raises(PacketError, match="different IP versions"):
        roce_packet("10.0.0.1", "2001:db8::2", dest_qp=1)
    with pytest.raises(PacketError, match="dest_qp 16777216"):
        roce_packet("10.0.0.1", "10.0.0.2", dest_qp=1 << 24)


def test_cnp_for() -> None:
    data = roce_packet("2001:db8::1", "2001:db8::2", dest_qp=0x12, ecn=0b11, sport=50000)
    cnp = Ether(bytes(cnp_for(Ether(bytes(data)))))
    assert (cnp.src, cnp.dst) == (MAC_B, MAC_A)
    assert (cnp[IPv6].src, cnp[IPv6].dst, cnp[IPv6].tc) == ("2001:db8::2", "2001:db8::1", 0)
    assert (cnp[UDP].sport, cnp[UDP].dport) == (50000, 4791)
    raw = bytes(cnp)
    # BTH: opcode 0x81 (CNP), P_Key ffff, BECN set, dest QP 0x12, PSN 0, 16 reserved bytes, ICRC.
    assert raw[62:-4] == h("81 00 ffff 40 000012 00 000000") + bytes(16)
    assert raw[-4:] == icrc(raw)
    assert cnp_for(data, dest_qp=0x99)[BTH].dqpn == 0x99
    with pytest.raises(PacketError, match="not a RoCEv2 packet"):
        cnp_for(Ether() / IPv6() / UDP(dport=53))


def test_roce_inside_srv6_uses_inner_headers() -> None:
    inner = roce_packet("2001:db8::1", "2001:db8::2", dest_qp=77)[IPv6]
    outer = Ether(src=MAC_A, dst=MAC_B) / IPv6(src="fc00:1::1", dst="fc00:2::")
    raw = bytes(outer / IPv6ExtHdrSegmentRouting(addresses=["fc00:3::", "fc00:2::"]) / inner)
    assert roce_flow_key(Ether(raw)) == ("2001:db8::1", "2001:db8::2", 77)
    assert roce_flow_key(Ether(frame(IPv6() / UDP(dport=53)))) is None
