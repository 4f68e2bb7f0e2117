"""The frames the Wireshark tests hand to tshark: every frame of the conformance vectors,
IFIT reports built with the `IFITReport` layer, and frames for what the vectors lack
(64/128-bit APN-IDs, every parameter bit, Destination-option and SRH TLV carriers, a bitmap
that disagrees with the length)."""

from __future__ import annotations

from pathlib import Path

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrSegmentRouting,
)
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from pyctl import constants as C
from pyctl.conformance import load_vectors
from pyctl.packets import (
    APN_ID_TYPE_64,
    APN_ID_TYPE_128,
    SRHTLVAPN,
    AltMarkOption,
    APNOption,
    IFITReport,
    IOAMNodeRecord,
    apn_id_from_groups,
    ioam_trace_option,
)

ROOT = Path(__file__).resolve().parent.parent


def _eth(pkt: Packet) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / pkt)


def _extra_frames() -> list[bytes]:
    """Frames for what the vectors do not carry: other APN widths, carriers, every field."""
    inner = IPv6(src="2001:db8:1::1", dst="2001:db8:2::2") / UDP(sport=1, dport=2)
    apn64 = APNOption(
        id_type=APN_ID_TYPE_64,
        flags=0xA5,
        para_type=0xF000,
        apn_id=apn_id_from_groups(0xDEADBEEF, 0x1234, APN_ID_TYPE_64) | 0x5678,
        params=[100_000, 250, 30, 1_000],
    )
    # Bits 0 and 5: a bandwidth and a parameter of an unknown bit (still 32 bits, ignored).
    apn128 = APNOption(
        id_type=APN_ID_TYPE_128,
        para_type=0x8400,
        apn_id=apn_id_from_groups((1 << 64) - 2, 0xCAFE0001, APN_ID_TYPE_128) | 0xFFFF0000,
        params=[10, 0xFFFFFFFF],
    )
    # The bitmap announces two parameters, the length carries one (validate_apn's mismatch).
    short = APNOption(para_type=0xC000, apn_id=0x00070001, params=[5])
    frames = [
        _eth(
            IPv6(src="fc00:a::1", dst="fc00:b::1")
            / IPv6ExtHdrHopByHop(options=[apn64, AltMarkOption(flowmon_id=0xFFFFF, L=1, D=1)])
            / inner
        ),
        _eth(IPv6(src="fc00:a::1", dst="fc00:b::1") / IPv6ExtHdrDestOpt(options=[apn128]) / inner),
        _eth(IPv6(src="fc00:a::1", dst="fc00:b::1") / IPv6ExtHdrHopByHop(options=[short]) / inner),
        _eth(
            IPv6(src="fc00:a::1", dst="fcbb:bb00:100:200:300::")
            / IPv6ExtHdrSegmentRouting(
                addresses=["fc00:3::", "fcbb:bb00:100:200:300::"],
                segleft=1,
                tlv_objects=[SRHTLVAPN(apn_id=0xABCD0042, para_type=0x2000, params=[77])],
            )
            / inner
        ),
    ]
    # A non-first fragment whose data happens to look like a Hop-by-Hop header with an APN
    # option: it is fragment data, not a header (scapy leaves it Raw).
    hbh = bytes(IPv6ExtHdrHopByHop(nh=59, options=[APNOption(apn_id=1)]))
    frames.append(
        _eth(IPv6(src="fc00:a::1", dst="fc00:b::1") / IPv6ExtHdrFragment(nh=0, offset=8) / hbh)
    )
    return frames + _report_frames()


def _report_frames() -> list[bytes]:
    """IFIT reports as a tail sends them (sport = dport = collector port, ebpf/include/ifit.h)."""
    trace = ioam_trace_option(max_nodes=4)
    for node in (11, 12, 13):
        trace.stamp(
            IOAMNodeRecord(
                hop_limit=64 - node,
                node_id=node,
                ingress_if=node % 3,
                egress_if=node % 5,
                ts_sec=1_700_000_000 + node,
                ts_subsec=999_000 + node,
                queue_depth=node * 7,
            )
        )
    udp = UDP(sport=C.IFIT_REPORT_PORT, dport=C.IFIT_REPORT_PORT)
    v6 = IPv6(src="fc00:c::1", dst="fc00:99::1") / udp
    head = dict(flowmon_id=0xABCDE, L=1, D=0, tail_node_id=0x0A0B0C0D, ts_sec=7, ts_subsec=8)
    reports = [
        # The whole pre-allocated area (free space first), IPv6 inner tuple.
        v6
        / IFITReport(
            node_count=3,
            **head,
            proto=6,
            sport=40000,
            dport=443,
            src="2001:db8:1::1",
            dst="2001:db8:2::2",
            data=bytes(trace.data),
        ),
        # Only the filled part, IPv4 inner tuple (mapped), carried over IPv4 to the collector.
        IP(src="10.0.0.1", dst="10.0.0.9")
        / udp
        / IFITReport(
            node_count=3,
            flowmon_id=1,
            L=0,
            D=1,
            src="10.1.2.3",
            dst="192.0.2.200",
            sport=5000,
            dport=5001,
            data=trace.filled(),
        ),
        # Counter records: one with 64-bit values that use the top bit.
        v6
        / IFITReport(
            flags=0x8001,  # the counter bit and one other
            **head,
            src="10.0.0.1",
            dst="10.0.0.2",
            packets=12345,
            bytes=(1 << 63) + 5,
        ),
        v6 / IFITReport(flags=0x8000, flowmon_id=2, packets=0, bytes=0),
    ]
    return [_eth(r) for r in reports]


def _vector_frames() -> list[bytes]:
    frames = []
    for vector in load_vectors(ROOT / "tests" / "vectors"):
        for step in vector.steps:
            frames.append(step.frame)
            frames += [out.frame for out in step.expect]
    return frames
