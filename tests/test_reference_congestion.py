"""Reference data plane, congestion (SPEC 5, RFC 3168, IEEE 802.1Qbb; docs/pipeline.md 1 and 5):
DCQCN-style ECN marking and PFC generation, consumption and pauses."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrSegmentRouting
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet, Raw
from test_reference import MACS, frame, make_plane, on_wire, route, run, single

from pyctl.packets import pfc_frame

PAYLOAD = UDP(sport=1000, dport=2000, chksum=0x1234) / Raw(b"payload")
NOT_ECT, ECT1, ECT0, CE = 0, 1, 2, 3
KMIN, KMAX = 1000, 5000
ROUTES = [route("2001:db8::/32", 2), route("10.0.0.0/8", 2), route("fc00::/16", 3)]


def ecn_plane(**extra: Any) -> Any:
    fields: dict[str, Any] = {
        "routes": ROUTES,
        "ecn": {"kmin_bytes": KMIN, "kmax_bytes": KMAX, "pmax": 0.25},
    }
    fields.update(extra)
    return make_plane(**fields)


def v6(ecn: int, hlim: int = 10) -> Packet:
    return IPv6(src="2001:db8:a::1", dst="2001:db8:b::1", tc=0x68 | ecn, hlim=hlim) / PAYLOAD


def marked(dp: Any, ecn: int, q: int, rand32: int) -> int:
    """The ECN field of the forwarded packet."""
    out = single(run(dp, frame(v6(ecn)), egress_queue_bytes={2: q}, rand32=rand32))
    assert out.frame == on_wire(2, v6(out.frame[15] >> 4 & 3, hlim=9))  # nothing else changes
    return out.frame[15] >> 4 & 3


def test_no_marking_up_to_kmin() -> None:
    dp = ecn_plane()
    assert marked(dp, ECT0, KMIN, 0) == ECT0
    assert marked(dp, ECT0, 0, 0) == ECT0
    assert marked(dp, ECT1, KMIN, 0) == ECT1


def test_always_marked_above_kmax() -> None:
    dp = ecn_plane()
    assert marked(dp, ECT0, KMAX + 1, 2**32 - 1) == CE
    assert marked(dp, ECT1, KMAX + 1, 2**32 - 1) == CE


def test_not_ect_is_never_marked_and_ce_stays() -> None:
    dp = ecn_plane()
    assert marked(dp, NOT_ECT, 10**9, 0) == NOT_ECT
    assert marked(dp, CE, 0, 2**32 - 1) == CE


def test_probability_threshold_between_kmin_and_kmax() -> None:
    dp = ecn_plane()
    threshold = (2**30) * (3000 - KMIN) // (KMAX - KMIN)  # floor(0.25 * 2^32) * ... = 2^29
    assert threshold == 2**29
    assert marked(dp, ECT0, 3000, threshold - 1) == CE
    assert marked(dp, ECT0, 3000, threshold) == ECT0
    assert marked(dp, ECT0, KMAX, 2**30 - 1) == CE  # at Kmax: Pmax
    assert marked(dp, ECT0, KMAX, 2**30) == ECT0


@given(
    st.integers(0, 10_000), st.integers(0, 2**32 - 1), st.sampled_from([NOT_ECT, ECT1, ECT0, CE])
)
def test_marking_properties(q: int, rand32: int, ecn: int) -> None:
    got = marked(ecn_plane(), ecn, q, rand32)
    if ecn in (NOT_ECT, CE) or q <= KMIN:
        assert got == ecn
    elif q > KMAX:
        assert got == CE
    else:
        assert got == (CE if rand32 < 2**30 * (q - KMIN) // (KMAX - KMIN) else ecn)


def test_ipv4_marking_updates_the_checksum() -> None:
    pkt = IP(src="192.0.2.1", dst="10.1.1.1", ttl=9, tos=0x68 | ECT1) / PAYLOAD
    out = single(run(ecn_plane(), frame(pkt), egress_queue_bytes={2: KMAX + 1}))
    assert out.frame == on_wire(
        2, IP(src="192.0.2.1", dst="10.1.1.1", ttl=8, tos=0x68 | CE) / PAYLOAD
    )


def test_only_the_outer_header_of_an_encapsulation_is_marked() -> None:
    dp = ecn_plane(
        source="fc00:1::1",
        flowlabel="zero",
        policies=[{"name": "p", "match": {}, "sid_lists": [{"segments": ["fc00:2::1"]}]}],
    )
    out = single(run(dp, frame(v6(ECT0)), egress_queue_bytes={3: KMAX + 1}))
    inner = v6(ECT0)
    srh = IPv6ExtHdrSegmentRouting(addresses=["fc00:2::1"], segleft=0)
    assert out.frame == on_wire(
        3, IPv6(src="fc00:1::1", dst="fc00:2::1", tc=0x68 | CE, hlim=9) / srh / inner
    )


def test_marking_is_off_unless_enabled() -> None:
    dp = make_plane(routes=ROUTES)
    assert (
        single(run(dp, frame(v6(ECT0)), egress_queue_bytes={2: 10**9})).frame[15] >> 4 & 3 == ECT0
    )


# PFC (IEEE 802.1Qbb)


def pfc_plane(**cfg: Any) -> Any:
    settings: dict[str, Any] = {"buffer_bytes": 10_000, "xoff_pct": 80, "xon_pct": 50}
    settings.update(cfg)
    return make_plane(routes=ROUTES, pfc=settings)


def pfc_bytes(src: str, prio: int, time: int) -> bytes:
    """802.1Qbb written out: MAC-control destination, opcode, enable vector, 8 times, pad to 60."""
    times = [time if p == prio else 0 for p in range(8)]
    raw = bytes.fromhex("0180c2000001") + bytes.fromhex(src.replace(":", "")) + b"\x88\x08"
    raw += struct.pack("!HH8H", 0x0101, 1 << prio, *times)
    return raw + bytes(60 - len(raw))


def occupancy(dp: Any, q: int, prio: int = 5, tc: int = 46 << 2) -> list[bytes]:
    """PFC frames sent back out of port 1 for a packet of DSCP 46 (priority 5) at occupancy q."""
    pkt = IPv6(src="2001:db8:a::1", dst="2001:db8:b::1", tc=tc) / PAYLOAD
    result = run(dp, frame(pkt), ingress_queue_bytes={(1, prio): q})
    assert result.drop is None
    return [o.frame for o in result.outputs if o.port == 1]


def test_xoff_above_the_threshold_and_while_above() -> None:
    dp = pfc_plane()
    assert occupancy(dp, 8000) == []  # 80 % exactly is not above
    xoff = pfc_bytes(MACS[1], 5, 0xFFFF)
    assert xoff == bytes(pfc_frame(MACS[1], {5: 0xFFFF}))  # the independent scapy layer agrees
    assert occupancy(dp, 8001) == [xoff]
    assert occupancy(dp, 9000) == [xoff]  # repeated while above


def test_xon_once_below_the_threshold_after_an_xoff() -> None:
    dp = pfc_plane()
    assert occupancy(dp, 4000) == []  # no XOFF sent yet: no XON
    occupancy(dp, 9000)
    assert occupancy(dp, 6000) == []  # between XON and XOFF: nothing
    assert occupancy(dp, 5000) == []  # 50 % exactly is not below
    assert occupancy(dp, 4999) == [pfc_bytes(MACS[1], 5, 0)]
    assert occupancy(dp, 100) == []


def test_pfc_priority_sources() -> None:
    dp = pfc_plane(priority_from_dscp=False, default_priority=2, pause_time=300)
    assert occupancy(dp, 9000, prio=2) == [pfc_bytes(MACS[1], 2, 300)]
    arp = run(
        pfc_plane(default_priority=6),
        Ether(dst=MACS[1]) / ARP(),
        ingress_queue_bytes={(1, 6): 9000},
    )
    assert arp.drop == "not-ip" and [o.frame for o in arp.outputs] == [
        pfc_bytes(MACS[1], 6, 0xFFFF)
    ]
    v4 = IP(src="192.0.2.1", dst="10.1.1.1", tos=26 << 2) / PAYLOAD  # DSCP 26: priority 3
    result = run(pfc_plane(), frame(v4), ingress_queue_bytes={(1, 3): 9000})
    assert [o.frame for o in result.outputs if o.port == 1] == [pfc_bytes(MACS[1], 3, 0xFFFF)]


def pause(prio_times: dict[int, int], port_mac: str = "02:00:00:00:02:02") -> bytes:
    return bytes(pfc_frame(port_mac, prio_times))


def test_pfc_frames_are_consumed_and_pause_the_port() -> None:
    dp = pfc_plane()
    consumed = run(dp, pause({5: 100}), in_port=2, time_us=10)
    assert consumed.drop == "pfc-consumed" and consumed.outputs == []
    hot = frame(IPv6(src="2001:db8:a::1", dst="2001:db8:b::1", tc=46 << 2) / PAYLOAD)
    cold = frame(IPv6(src="2001:db8:a::1", dst="2001:db8:b::1", tc=0) / PAYLOAD)
    # 100 quanta * 512 bit times at 1 Gbit/s = 51.2 us -> paused until 10 + 51
    assert run(dp, hot, time_us=60).drop == "pfc-held"
    assert run(dp, cold, time_us=60).drop is None  # priority 0 is not paused
    assert (
        run(dp, frame(IPv6(src="::1", dst="fc00::1", tc=46 << 2) / PAYLOAD), time_us=60).drop
        is None
    )
    assert run(dp, hot, time_us=61).drop is None
    run(dp, pause({5: 0xFFFF}), in_port=2, time_us=100)
    assert run(dp, hot, time_us=200).drop == "pfc-held"
    run(dp, pause({5: 0}), in_port=2, time_us=300)  # XON resumes at once
    assert run(dp, hot, time_us=300).drop is None


def test_pause_time_follows_the_line_rate() -> None:
    dp = make_plane(routes=ROUTES, pfc={}, ecn={"enabled": False, "line_rate_bps": 10_000_000})
    run(dp, pause({0: 10}), in_port=2, time_us=0)  # 5120 bits at 10 Mbit/s = 512 us
    cold = frame(IPv6(src="2001:db8:a::1", dst="2001:db8:b::1") / PAYLOAD)
    assert run(dp, cold, time_us=511).drop == "pfc-held"
    assert run(dp, cold, time_us=512).drop is None


def test_pfc_consumed_but_not_honoured_when_disabled() -> None:
    dp = make_plane(routes=ROUTES)
    assert run(dp, pause({0: 0xFFFF}), in_port=2).drop == "pfc-consumed"
    assert run(dp, frame(IPv6(src="2001:db8:a::1", dst="2001:db8:b::1") / PAYLOAD)).drop is None


@pytest.mark.parametrize(
    "raw",
    [
        bytes(Ether(dst="01:80:c2:00:00:01", type=0x8808))
        + struct.pack("!HH", 0x0001, 0xFFFF)
        + bytes(40),
        bytes(Ether(dst="01:80:c2:00:00:01", type=0x8808))
        + struct.pack("!HH", 0x0101, 1)
        + bytes(10),
    ],
)
def test_other_mac_control_frames_are_not_ip(raw: bytes) -> None:
    assert run(pfc_plane(), raw).drop == "not-ip"
