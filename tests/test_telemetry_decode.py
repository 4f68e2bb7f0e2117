"""IFIT report decoding (SPEC 3 "Export"): bytes written by hand, the scapy cross-check, and
every reason a datagram is rejected, including random and mutated (hostile) input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyctl.errors import ConfigError, PacketError
from pyctl.packets.ifit_report import IFITReport
from pyctl.packets.ioam import IOAMNodeRecord, trace_type_from_bits
from pyctl.telemetry import (
    Collector,
    CollectorConfig,
    HopRecord,
    ReportError,
    TraceLayout,
    decode_report,
    encode_counter_report,
    encode_trace_report,
)
from pyctl.telemetry.admission import R_INTERNAL

# A trace report, field by field from SPEC 3: two hops, head node 3 then tail node 7.
HAND_TRACE = bytes.fromhex(
    "01"  # Version 1
    "02"  # NodeCount 2
    "0000"  # Flags: trace report
    "12345800"  # FlowMonID 0x12345 (20 bits) | L=1 | D=0 | Reserved
    "00000007"  # TailNodeId 7
    "00000064"  # TailTimestamp seconds 100
    "0007a120"  # sub-seconds 500000 µs
    "06"  # family 6
    "11"  # proto UDP
    "03e8"  # sport 1000
    "07d0"  # dport 2000
    "0000"  # reserved
    "20010db8000000000000000000000001"  # src 2001:db8::1
    "20010db8000000000000000000000002"  # dst 2001:db8::2
    # node data, most recent hop first (trace type 0xF20000: 5 words per node)
    "3e000007"  # hop limit 62 | node id 7
    "00010003"  # ingress if 1 | egress if 3
    "00000064"  # ts seconds 100
    "0007a120"  # ts µs 500000
    "00000005"  # queue depth 5
    "3f000003"  # hop limit 63 | node id 3
    "00020001"  # ingress if 2 | egress if 1
    "00000064"  # ts seconds 100
    "00079d38"  # ts µs 499000
    "ffffffff"  # queue depth: not provided (all ones)
)

# A counter record: node 3 counted 1000 packets / 1,500,000 bytes of FlowMonID 0x12345, colour 0.
HAND_COUNTER = bytes.fromhex(
    "01" "00" "8000"  # Version 1, NodeCount 0, Flags bit 0 = counter record
    "12345000"  # FlowMonID 0x12345, L=0, D=0
    "00000003"  # node 3
    "00000065" "00000000"  # period closed at 101.000000 s
    "04" "11" "0000" "0000" "0000"  # family 4, UDP, no ports
    "00000000000000000000ffffc0000201"  # ::ffff:192.0.2.1
    "00000000000000000000ffffc6336401"  # ::ffff:198.51.100.1
    "00000000000003e8"  # packets 1000
    "000000000016e360"  # bytes 1,500,000
)  # fmt: skip


def test_hand_built_trace_report_decodes() -> None:
    r = decode_report(HAND_TRACE)
    assert (r.version, r.node_count, r.flags, r.is_counter) == (1, 2, 0, False)
    assert (r.flowmon_id, r.colour, r.d_flag) == (0x12345, 1, 0)
    assert (r.tail_node_id, r.tail_ts_us) == (7, 100_500_000)
    assert (r.family, r.proto, r.sport, r.dport) == (6, 17, 1000, 2000)
    assert (r.src_ip, r.dst_ip) == ("2001:db8::1", "2001:db8::2")
    # path order: head first (the wire has the most recent hop first)
    assert r.path == (3, 7)
    assert r.hops[0] == HopRecord(3, 63, 2, 1, 100_499_000, None)
    assert r.hops[1] == HopRecord(7, 62, 1, 3, 100_500_000, 5)
    assert r.bad_timestamps == 0


def test_hand_built_counter_record_decodes() -> None:
    r = decode_report(HAND_COUNTER)
    assert r.is_counter and r.hops == ()
    assert (r.flowmon_id, r.colour, r.tail_node_id) == (0x12345, 0, 3)
    assert (r.packets, r.octets, r.tail_ts_us) == (1000, 1_500_000, 101_000_000)
    assert (r.family, r.src_ip, r.dst_ip) == (4, "192.0.2.1", "198.51.100.1")


def test_encoder_writes_the_hand_built_bytes() -> None:
    hops = [HopRecord(3, 63, 2, 1, 100_499_000, None), HopRecord(7, 62, 1, 3, 100_500_000, 5)]
    built = encode_trace_report(
        flowmon_id=0x12345, colour=1, hops=hops, src="2001:db8::1", dst="2001:db8::2",
        proto=17, sport=1000, dport=2000,
    )  # fmt: skip
    assert built == HAND_TRACE
    counter = encode_counter_report(
        flowmon_id=0x12345, colour=0, node_id=3, ts_us=101_000_000, packets=1000,
        octets=1_500_000, src="192.0.2.1", dst="198.51.100.1", proto=17,
    )  # fmt: skip
    assert counter == HAND_COUNTER


@pytest.mark.parametrize("data", [HAND_TRACE, HAND_COUNTER], ids=["trace", "counter"])
def test_struct_decoder_agrees_with_the_scapy_layer(data: bytes) -> None:
    fast = decode_report(data)
    slow = IFITReport(data)
    assert (fast.version, fast.node_count, int(slow.flags)) == (
        slow.version,
        slow.node_count,
        fast.flags,
    )
    assert (fast.flowmon_id, fast.colour, fast.d_flag) == (slow.flowmon_id, slow.L, slow.D)
    assert fast.tail_node_id == slow.tail_node_id
    assert fast.tail_ts_us == slow.ts_sec * 1_000_000 + slow.ts_subsec
    assert (fast.family, fast.proto, fast.sport, fast.dport) == (
        slow.family,
        slow.proto,
        slow.sport,
        slow.dport,
    )
    assert (fast.src_ip, fast.dst_ip) == (slow.src_ip, slow.dst_ip)
    if fast.is_counter:
        assert (fast.packets, fast.octets) == (slow.packets, slow.bytes)
        return
    recs = list(reversed(slow.records()))  # scapy: most recent first
    assert [h.node_id for h in fast.hops] == [r.node_id for r in recs]
    for h, rec in zip(fast.hops, recs, strict=True):
        assert (h.hop_limit, h.ingress_if, h.egress_if) == (
            rec.hop_limit,
            rec.ingress_if,
            rec.egress_if,
        )
        assert rec.ts_sec is not None and rec.ts_subsec is not None
        assert h.ts_us == rec.ts_sec * 1_000_000 + rec.ts_subsec
        assert h.queue_depth == (None if rec.queue_depth == 0xFFFFFFFF else rec.queue_depth)


@settings(max_examples=150, deadline=None)
@given(
    hops=st.lists(
        st.tuples(
            st.integers(0, 0xFFFFFE),
            st.integers(0, 255),
            st.integers(0, 0xFFFF),
            st.integers(0, 0xFFFF),
            st.integers(0, 2**32 - 2),
            st.integers(0, 999_999),
            st.integers(0, 2**32 - 2),
        ),
        max_size=8,
    ),
    flowmon=st.integers(0, 2**20 - 1),
    colour=st.integers(0, 1),
    d=st.integers(0, 1),
)
def test_random_reports_agree_with_scapy(
    hops: list[tuple[int, int, int, int, int, int, int]], flowmon: int, colour: int, d: int
) -> None:
    """Reports built by the scapy layer (its own IOAM record packer) decode identically."""
    trace_type = 0xF20000
    records = [
        IOAMNodeRecord(
            hop_limit=hl, node_id=n, ingress_if=i, egress_if=e, ts_sec=s, ts_subsec=us,
            queue_depth=q,
        )
        for n, hl, i, e, s, us, q in hops
    ]  # fmt: skip
    area = b"".join(r.pack(trace_type) for r in reversed(records))
    pkt = IFITReport(
        node_count=len(records), flowmon_id=flowmon, L=colour, D=d, tail_node_id=9,
        ts_sec=5, ts_subsec=6, src="2001:db8::1", dst="192.0.2.9", sport=1, dport=2, data=area,
    )  # fmt: skip
    fast = decode_report(bytes(pkt))
    assert fast.family == 6 and fast.dst_ip == "192.0.2.9"
    assert (fast.flowmon_id, fast.colour, fast.d_flag) == (flowmon, colour, d)
    assert fast.hops == tuple(
        HopRecord(n, hl, i, e, s * 1_000_000 + us, q) for n, hl, i, e, s, us, q in hops
    )


def test_report_with_a_whole_preallocated_area_takes_the_last_records() -> None:
    """Free space first, then NodeCount records: the decoder reads the filled tail end."""
    area = HAND_TRACE[60:]
    data = HAND_TRACE[:60] + bytes(40) + area  # two free 20-byte slots before the records
    assert decode_report(data).path == (3, 7)


def test_other_trace_types() -> None:
    layout = TraceLayout.for_trace_type(trace_type_from_bits(0, 2, 3))  # id, seconds, µs
    assert layout.record_len == 12
    hops = [HopRecord(1, 64, None, None, 1_000_000, None), HopRecord(2, 63, None, None, 1_000_250)]
    data = encode_trace_report(flowmon_id=1, colour=0, hops=hops, src="::1", dst="::2",
                               layout=layout)  # fmt: skip
    assert len(data) == 60 + 24
    assert decode_report(data, layout).hops == (
        HopRecord(1, 64, None, None, 1_000_000, None),
        HopRecord(2, 63, None, None, 1_000_250, None),
    )
    wide = TraceLayout.for_trace_type(trace_type_from_bits(8, 9, 2, 3))  # 64-bit id and ifs
    data = encode_trace_report(
        flowmon_id=1, colour=0, hops=[HopRecord(2**40, 9, 70000, 80000, 5, None)],
        src="::1", dst="::2", layout=wide, tail_node_id=9,
    )  # fmt: skip
    assert decode_report(data, wide).hops == (HopRecord(2**40, 9, 70000, 80000, 5, None),)
    with pytest.raises(PacketError, match="bit 22"):
        TraceLayout.for_trace_type(trace_type_from_bits(0, 22))
    with pytest.raises(ConfigError, match="trace_type"):
        CollectorConfig(trace_type=0)


def test_all_ones_and_malformed_timestamps() -> None:
    words = bytearray(HAND_TRACE)
    words[60 + 12 : 60 + 16] = struct.pack(">I", 1_000_000)  # tail record µs out of range
    words[80 + 8 : 80 + 16] = b"\xff" * 8  # head record: no timestamp (all ones)
    r = decode_report(bytes(words))
    assert r.hops[0].ts_us is None and r.hops[1].ts_us is None
    assert r.bad_timestamps == 1  # all ones is "not provided", not malformed


def _with(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (HAND_TRACE[:59], "truncated"),
        (b"", "truncated"),
        (_with(HAND_TRACE, 0, b"\x02"), "bad-version"),
        (_with(HAND_TRACE, 20, b"\x05"), "bad-family"),
        (_with(HAND_TRACE, 1, b"\x03"), "bad-node-count"),  # NodeCount lies: 3 > 2 records
        (HAND_TRACE + b"\x00" * 7, "bad-area-length"),
        (HAND_TRACE[:-1], "bad-area-length"),
        (HAND_COUNTER + b"\x00", "bad-counter-length"),
        (HAND_COUNTER[:-8], "bad-counter-length"),
    ],
)
def test_invalid_reports_raise_with_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ReportError) as err:
        decode_report(data)
    assert err.value.reason == reason
    c = Collector()
    assert c.feed(data, ("::1", 9), now=1.0) is None
    assert c.rejected == {reason: 1}
    assert c.trace_reports == c.counter_reports == 0


def test_huge_datagram_is_rejected_before_decoding() -> None:
    c = Collector(CollectorConfig(max_report_bytes=1000))
    assert c.feed(HAND_TRACE + bytes(20 * 60), ("::1", 9), now=1.0) is None
    assert c.rejected == {"too-large": 1}


def _accounted(c: Collector) -> None:
    assert c.datagrams == c.trace_reports + c.counter_reports + sum(c.rejected.values())
    assert c.rejected.get(R_INTERNAL, 0) == 0


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=20))
def test_random_bytes_never_crash_the_collector(datagrams: list[bytes]) -> None:
    c = Collector()
    for i, d in enumerate(datagrams):
        c.feed(d, ("::1", 9), now=1.0 + i * 0.3)
    _accounted(c)
    c.snapshot()
    c.metrics_text()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from([HAND_TRACE, HAND_COUNTER]),
    edits=st.lists(st.tuples(st.integers(0, 120), st.integers(0, 255)), max_size=8),
    cut=st.integers(0, 140),
    extra=st.binary(max_size=60),
)
def test_mutated_reports_never_crash_the_collector(
    base: bytes, edits: list[tuple[int, int]], cut: int, extra: bytes
) -> None:
    """Valid reports with flipped bytes (lying NodeCount, flags, timestamps), cut or extended."""
    data = bytearray(base)
    for pos, value in edits:
        if pos < len(data):
            data[pos] = value
    mutated = bytes(data[:cut]) + extra
    c = Collector()
    for i, d in enumerate((bytes(data), mutated, base)):
        c.feed(d, ("::1", 9), now=10.0 + i)
    _accounted(c)
    assert c.trace_reports + c.counter_reports >= 1  # the untouched base is always accepted
    c.snapshot()
    c.metrics_text()
