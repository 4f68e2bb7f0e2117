"""Bytes written by hand from SPEC.md and the RFCs that several packet test modules
use (hop records, an SRH with an HMAC TLV, IFIT reports), and how they write hex and frames."""

from __future__ import annotations

from scapy.layers.l2 import Ether

MAC_A = "02:00:00:00:00:01"
MAC_B = "02:00:00:00:00:02"


def h(text: str) -> bytes:
    """Hex written by hand: spaces and line breaks are ignored, '#' starts a comment."""
    return bytes.fromhex("".join(line.split("#")[0] for line in text.splitlines()).replace(" ", ""))


def frame(*layers: object) -> bytes:
    pkt = Ether(src=MAC_A, dst=MAC_B)
    for layer in layers:
        pkt = pkt / layer
    return bytes(pkt)


# Hop records of the default trace type: hop limit | node id(24), ingress if | egress if,
# timestamp s, timestamp µs, queue depth.
HOP_A = h("3f 000001  0001 0002  65000000  00000064  00000000")
HOP_B = h("3e 000002  0003 0004  65000000  000000fa  00000007")
HOP_C = h("3d 000003  0005 ffff  65000001  0000000a  00000002")  # egress if unknown: all ones


def three_hop_option() -> bytes:
    """Room for 4 nodes, 3 written (A first, then B, then C): RemainingLen 5, most recent first."""
    return h("31 5a 00 00  0001 2805  f20000 00") + bytes(20) + HOP_C + HOP_B + HOP_A


# SRH (Next Header 41), S1 = fc00:2::, S2 = fc00:3:: (List[0] is the last segment), SL = LE = 1,
# HMAC TLV with key id 7 and a 32-byte HMAC: 8 + 32 + 40 = 80 bytes, Hdr Ext Len 9.
SRH_HMAC = h(
    "29 09 04 01 01 00 0000"
    "fc000003000000000000000000000000"
    "fc000002000000000000000000000000"
    "05 26 0000 00000007"
) + bytes([0x11] * 32)


IFIT_TRACE_REPORT = (
    h(
        "01 01 0000"  # version 1, NodeCount 1, Flags 0
        "12345800"  # FlowMonID 0x12345 | L 1 | D 0 | Reserved
        "0000000a"  # TailNodeId 10
        "65000002 000001f4"  # tail timestamp 0x65000002 s, 500 µs
        "04 11 03e8 07d0 0000"  # family 4, UDP, 1000 -> 2000
        "00000000 00000000 0000ffff 0a000001"  # ::ffff:10.0.0.1
        "00000000 00000000 0000ffff 0a000002"  # ::ffff:10.0.0.2
    )
    + HOP_A
)

IFIT_COUNTER_REPORT = h(
    "01 00 8000"  # Flags bit 0: counter record
    "12345000 0000000a 65000002 00000000"
    "06 06 0050 c350 0000"  # family 6, TCP, 80 -> 50000
    "20010db8000000000000000000000001"
    "20010db8000000000000000000000002"
    "00000000000003e8 000000000016e360"  # 1000 packets, 1500000 bytes
)
