"""pyctl.packets, the IFIT report (SPEC §3 Export): trace and counter reports written by hand,
dissection via the UDP port, the configurable port and validation."""

from __future__ import annotations

import pytest
from packet_bytes import HOP_A, IFIT_COUNTER_REPORT, IFIT_TRACE_REPORT, frame, three_hop_option
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from pyctl.errors import PacketError
from pyctl.packets import (
    IFIT_FLAG_COUNTERS,
    IFIT_REPORT_PORT,
    TRACE_TYPE_DEFAULT,
    IFITReport,
    IOAMNodeRecord,
    register_ifit_report_port,
    unregister_ifit_report_port,
    validate_packet,
)

# ---------------------------------------------------------------- IFIT report (SPEC §3 Export)


def test_ifit_constants() -> None:
    assert IFIT_REPORT_PORT == 5391 and IFIT_FLAG_COUNTERS == 0x8000


def test_ifit_trace_report_bytes() -> None:
    report = IFITReport(
        node_count=1,
        flowmon_id=0x12345,
        L=1,
        tail_node_id=10,
        ts_sec=0x65000002,
        ts_subsec=500,
        proto=17,
        sport=1000,
        dport=2000,
        src="10.0.0.1",
        dst="10.0.0.2",
        data=HOP_A,
    )
    assert bytes(report) == IFIT_TRACE_REPORT


def test_ifit_report_dissected_via_udp_port() -> None:
    raw = frame(
        IPv6(src="fd00::1", dst="fd00::2") / UDP(sport=40000, dport=5391) / Raw(IFIT_TRACE_REPORT)
    )
    rep = Ether(raw)[IFITReport]
    assert (rep.version, rep.node_count, rep.flowmon_id, rep.L, rep.D) == (1, 1, 0x12345, 1, 0)
    assert (rep.family, rep.src_ip, rep.dst_ip, rep.sport, rep.dport) == (
        4,
        "10.0.0.1",
        "10.0.0.2",
        1000,
        2000,
    )
    assert not rep.is_counter_record
    assert rep.records() == [IOAMNodeRecord.unpack(HOP_A, TRACE_TYPE_DEFAULT)]
    assert validate_packet(raw) == []


def test_ifit_counter_report() -> None:
    built = IFITReport(
        flags=IFIT_FLAG_COUNTERS,
        flowmon_id=0x12345,
        tail_node_id=10,
        ts_sec=0x65000002,
        proto=6,
        sport=80,
        dport=50000,
        src="2001:db8::1",
        dst="2001:db8::2",
        packets=1000,
        bytes=1500000,
    )
    assert bytes(built) == IFIT_COUNTER_REPORT
    rep = UDP(bytes(UDP(dport=5391) / Raw(IFIT_COUNTER_REPORT)))[IFITReport]
    assert rep.is_counter_record and rep.flags.counters
    assert (rep.family, rep.packets, rep.bytes, rep.records()) == (6, 1000, 1500000, [])


def test_ifit_report_records_from_whole_area() -> None:
    # A tail that exports the whole pre-allocated area (free space first): last NodeCount records.
    area = three_hop_option()[12:]
    rep = IFITReport(node_count=3, data=area)
    assert [r.node_id for r in IFITReport(bytes(rep)).records()] == [3, 2, 1]
    with pytest.raises(PacketError, match="NodeCount 5 needs 100 bytes"):
        IFITReport(node_count=5, data=area).records()


def test_ifit_report_port_is_configurable() -> None:
    raw = bytes(UDP(sport=40000, dport=6000) / Raw(IFIT_COUNTER_REPORT))  # not sport 53: DNS
    assert IFITReport not in UDP(raw)
    register_ifit_report_port(6000)
    try:
        assert UDP(raw)[IFITReport].packets == 1000
    finally:
        unregister_ifit_report_port(6000)
    assert IFITReport not in UDP(raw)
    assert UDP(bytes(UDP() / IFITReport())).dport == 5391


def test_ifit_report_validation() -> None:
    bad = bytearray(IFIT_TRACE_REPORT)
    bad[0], bad[20] = 2, 5
    raw = frame(IPv6() / UDP(dport=5391) / Raw(bytes(bad)))
    assert validate_packet(raw) == [
        "IPv6 UDP: IFIT report version 2 is not 1",
        "IPv6 UDP: IFIT report family 5 is not 4 or 6",
    ]
