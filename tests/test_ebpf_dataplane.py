"""icpn_node through BPF_PROG_TEST_RUN, compared with the reference plane on scenarios the
conformance vectors do not cover: header pushes beyond the XDP headroom, SID chains, state that
builds up (elephants, IFIT counters, PFC), counters, and the errors the target reports."""

from __future__ import annotations

import copy
import dataclasses
import random
import zlib
from collections import Counter
from collections.abc import Iterator
from ipaddress import IPv6Address
from typing import Any

import pytest
from ebpf_nodes import node, node_dict
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import (
    HBHOptUnknown,
    IPv6,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrSegmentRouting,
    IPv6ExtHdrSegmentRoutingTLVPadN,
)
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from pyctl.errors import ConfigError, DataPlaneUnavailable, ICPNError, PacketError
from pyctl.model.load import node_from_dict
from pyctl.model.node import Behaviour, NodeConfig, PacketContext
from pyctl.packets import AltMarkOption, ioam_trace_option, pfc_frame
from pyctl.targets import dataplane_class
from pyctl.targets.base import FEATURES, Result
from pyctl.targets.ebpf import EBPFDataPlane
from pyctl.targets.ebpf import maps as M
from pyctl.targets.ebpf.dataplane import MAX_FRAME
from pyctl.targets.reference import ReferenceDataPlane

pytestmark = pytest.mark.root

A_MAC, B_MAC, D_MAC = "02:00:00:00:0a:01", "02:00:00:00:0b:01", "02:00:00:00:0d:01"


def _same(a: Result, b: Result) -> bool:
    return a.drop == b.drop and Counter((o.port, o.frame) for o in a.outputs) == Counter(
        (o.port, o.frame) for o in b.outputs
    )


def _show(r: Result) -> str:
    return f"{r.drop} {[(o.port, o.frame.hex()) for o in r.outputs]}"


class Pair:
    """The same node on both planes; `run` asserts they agree and returns the eBPF result."""

    def __init__(self, n: NodeConfig) -> None:
        self.node = n
        self.ebpf, self.ref = EBPFDataPlane(), ReferenceDataPlane()
        self.ebpf.configure(n)
        self.ref.configure(n)

    def run(self, frame: bytes, ctx: PacketContext) -> Result:
        got, want = self.ebpf.process(frame, ctx), self.ref.process(frame, ctx)
        assert _same(got, want), f"frame {frame.hex()}\n ebpf {_show(got)}\n ref  {_show(want)}"
        return got


@pytest.fixture
def pair_of() -> Iterator[Any]:
    made: list[Pair] = []

    def make(n: NodeConfig) -> Pair:
        made.append(Pair(n))
        return made[-1]

    try:
        yield make
    finally:
        for p in made:
            p.ebpf.close()


def _headend(**overrides: Any) -> NodeConfig:
    d = node_dict("headend")
    d.update(copy.deepcopy(overrides))
    return node_from_dict(d, "test")


def _to_site2(payload: int = 11, **ip: Any) -> bytes:
    fields = {"src": "2001:db8:1::1", "dst": "2001:db8:2::2", "hlim": 64, **ip}
    pkt = Ether(src="02:00:00:00:00:01", dst=A_MAC) / IPv6(**fields)
    return bytes(pkt / UDP(sport=40000, dport=5000) / Raw(bytes(payload)))


# --- the registry, availability and features --------------------------------------------------


def test_registered_and_available() -> None:
    assert dataplane_class("ebpf") is EBPFDataPlane
    assert EBPFDataPlane.unavailable() is None


def test_supports_every_conformance_feature_and_names_unknown_ones() -> None:
    assert EBPFDataPlane.supports(list(FEATURES)) is None
    assert EBPFDataPlane.supports(["End", "teleport"]) == "not implemented in eBPF yet: teleport"


# --- header pushes and removals ---------------------------------------------------------------


def test_encapsulation_larger_than_the_xdp_headroom(pair_of: Any) -> None:
    """8 segments, a 64-bit APN-ID with parameters and an IFIT trace: a 400-byte push, which
    takes the grow-the-tail-and-move path instead of bpf_xdp_adjust_head."""
    p = pair_of(node("headend"))
    frame = _to_site2(tc=46 << 2 | 2)  # DSCP 46 -> the 64-bit APN with parameters
    ctx = PacketContext(in_port=1, time_us=5_000)
    res = p.run(frame, ctx)
    out = res.outputs[-1].frame
    assert res.drop is None and len(out) - len(frame) > 256
    assert IPv6(out[14:]).nh == 0  # HBH first: APN, AltMark, IOAM


def test_big_frame_encapsulated_and_too_big_frame_refused(pair_of: Any) -> None:
    p = pair_of(node("headend"))
    big = _to_site2(payload=2800)
    p.run(big, PacketContext(in_port=1, time_us=1))
    # beyond one page: a limit of this plane, which the vector runner reports as a skip
    with pytest.raises(DataPlaneUnavailable, match=f"takes 14..{MAX_FRAME}"):
        p.ebpf.process(_to_site2(payload=MAX_FRAME), PacketContext(in_port=1))


def test_a_push_the_buffer_cannot_hold_is_an_internal_error(pair_of: Any) -> None:
    """H.Encaps with an APN option and an IFIT trace pushes more than bpf_xdp_adjust_head's
    headroom, so the frame grows at its tail, which a test run's buffer allows up to MAX_FRAME
    (the rest of the page is headroom and skb_shared_info). One byte more and the write fails:
    the reference forwards that packet (the contract's too-big is a Payload Length past 65535),
    so the drop is the node's own internal-error, not a reason that blames the packet."""
    p = pair_of(node("headend"))
    ctx = PacketContext(in_port=1, time_us=5_000)
    small = _to_site2(tc=46 << 2 | 2)  # DSCP 46: the 64-bit APN with parameters, IFIT head
    push = len(p.run(small, ctx).outputs[-1].frame) - len(small)  # the two planes agree on it
    assert push > 256  # beyond the headroom: the tail-growth path
    room = MAX_FRAME - push - len(small)  # payload bytes to add for an output of MAX_FRAME
    fits = _to_site2(payload=11 + room, tc=46 << 2 | 2)
    assert len(p.run(fits, ctx).outputs[-1].frame) == MAX_FRAME
    over = _to_site2(payload=12 + room, tc=46 << 2 | 2)
    want = p.ref.process(over, ctx)
    assert want.drop is None and len(want.outputs[-1].frame) == MAX_FRAME + 1
    got = p.ebpf.process(over, ctx)
    assert (got.drop, got.outputs) == ("internal-error", [])
    stats = p.ebpf.stats()
    assert stats["drop:internal-error"] == 1 and stats["drop:too-big"] == 0


def test_end_then_local_dt6_on_one_node_and_sid_loop(pair_of: Any) -> None:
    p = pair_of(node("transit"))
    inner = IPv6(src="2001:db8:1::1", dst="2001:db8:2::2") / UDP() / Raw(b"x")
    e = Ether(src="02:00:00:00:0a:02", dst=B_MAC)
    chained = (
        e
        / IPv6(src="fc00:a::1", dst="fc00:b::1")
        / IPv6ExtHdrSegmentRouting(addresses=["fc00:b::d6", "fc00:b::1"], segleft=1)
        / inner
    )
    res = p.run(bytes(chained), PacketContext(in_port=1))
    assert res.drop is None and IPv6(res.outputs[0].frame[14:]).dst == "2001:db8:2::2"
    looping = (
        e
        / IPv6(src="fc00:a::1", dst="fc00:b::1")
        / IPv6ExtHdrSegmentRouting(addresses=["fc00:b::1"] * 10, segleft=9)
        / inner
    )
    assert p.run(bytes(looping), PacketContext(in_port=1)).drop == "sid-loop"


def test_ipv4_with_options_checksum_checked_and_updated(pair_of: Any) -> None:
    p = pair_of(node("transit"))
    pkt = (
        Ether(src="02:00:00:00:0a:02", dst=B_MAC)
        / IP(src="10.0.1.1", dst="10.0.2.2", ttl=9, options=b"\x94\x04\x00\x00")
        / UDP()
        / Raw(b"y")
    )
    res = p.run(bytes(pkt), PacketContext(in_port=1))
    out = IP(res.outputs[0].frame[14:])
    assert out.ttl == 8 and out.ihl == 6
    broken = bytearray(bytes(pkt))
    broken[14 + 10] ^= 0xFF
    assert p.run(bytes(broken), PacketContext(in_port=1)).drop == "bad-ipv4"


# --- state that builds up ---------------------------------------------------------------------


def test_elephants_and_ifit_counters_evolve_like_the_reference(pair_of: Any) -> None:
    """One flow at random times (going backwards too) through the headend: besides agreeing with
    the reference frame by frame, the SID list of every packet follows the elephant state and
    the IFIT counters hold what was sent, both worked here from the contract (pipeline.md 3, 4)
    without either plane's code."""
    p = pair_of(node("headend"))
    # UDP 2001:db8:1::1.40001 -> 2001:db8:2::2.5000: APN-ID 0x00010001 (classifier) -> policy
    # "gold": list 0 has 3 segments, list 1 has 8; weights 2:1 fill the 64 buckets 0, 1, 0, 0,
    # 1, 0, ... (list 1 iff bucket % 3 == 1). A mouse hashes its flow key, an elephant its APN-ID.
    src, dst, sport, dport = "2001:db8:1::1", "2001:db8:2::2", 40001, 5000
    key = IPv6Address(src).packed + IPv6Address(dst).packed + bytes([17])
    key += sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
    mouse = int(zlib.crc32(key) % 64 % 3 == 1)
    elephant = int(zlib.crc32((0x00010001).to_bytes(4, "big")) % 64 % 3 == 1)
    assert (mouse, elephant) == (0, 1)  # so the SID list shows whether the flow is an elephant
    n_segments = {0: 3, 1: 8}
    # Elephant settings of HEADEND_EXTRA: 1,000 µs windows, 3,000 bytes, 1 idle window. With one
    # flow the count-min estimate is exactly its bytes (inner IP length) in the current window.
    window, in_window, last = -1, 0, None
    counters: Counter[tuple[int, int]] = Counter()
    lists_used: Counter[int] = Counter()
    rng = random.Random(7)
    t = 0
    for _ in range(300):
        # mostly bursts (time going backwards too), sometimes a pause of one to three windows
        gap = rng.random() < 0.15
        t = max(0, t + (rng.randrange(1000, 3600) if gap else rng.randrange(-400, 900)))
        payload = rng.choice((100, 900, 1400))
        ip = IPv6(src=src, dst=dst, hlim=64, fl=rng.randrange(3))
        frame = Ether(src="02:00:00:00:00:01", dst=A_MAC) / ip / UDP(sport=sport, dport=dport)
        inner_len = 40 + 8 + payload
        w = t // 1000
        if w != window:
            window, in_window = w, 0
        if last is not None and w - last > 1:
            last = None  # forgotten: more than idle_windows windows since its last packet
        in_window += inner_len
        if in_window >= 3000 or last is not None:
            last = w
        chosen = elephant if last is not None else mouse
        lists_used[chosen] += 1
        ctx = PacketContext(in_port=1, time_us=t, rand32=rng.randrange(1 << 32))
        res = p.run(bytes(frame / Raw(bytes(payload))), ctx)
        out = Ether(res.outputs[-1].frame)
        assert len(out[IPv6ExtHdrSegmentRouting].addresses) == n_segments[chosen], (t, chosen)
        # Counted by the head (FlowMonID 0x12345, colour (t // period 1,000 µs) & 1) at its outer
        # IP length: inner + IPv6 40 + HBH 152 (APN 10, AltMark 6, PadN 2, IOAM 4 + 8 + 6 x 20,
        # with the 2-byte header) + SRH 8 + 16 per segment.
        colour = (t // 1000) & 1
        counters[(colour, 0)] += 1
        counters[(colour, 1)] += inner_len + 40 + 152 + 8 + 16 * n_segments[chosen]
    assert lists_used[elephant] > 0 and lists_used[mouse] > 0, lists_used
    want = {(0x12345, c): (counters[(c, 0)], counters[(c, 1)]) for c in (0, 1)}
    assert p.ebpf.ifit_counters() == want
    assert p.ref.counters() == want
    assert p.ebpf.stats()["forward"] == 300


def test_ifit_counters_match_the_reference(pair_of: Any) -> None:
    p = pair_of(node("transit"))
    alt = HBHOptUnknown(otype=0x12, optdata=bytes.fromhex("12345800"))
    for i in range(5):
        pkt = (
            Ether(src="02:00:00:00:0a:02", dst=B_MAC)
            / IPv6(src="fc00:a::1", dst="fc00:d::1")
            / IPv6ExtHdrHopByHop(options=[alt])
            / UDP()
            / Raw(bytes(i * 10))
        )
        p.run(bytes(pkt), PacketContext(in_port=1, time_us=i))
    assert p.ebpf.ifit_counters() == p.ref.counters() == {(0x12345, 1): (5, 5 * 56 + 100)}
    # Only some FlowMonIDs (what the control plane's per-period export reads): the same counter
    # for its own FlowMonID, nothing for another (0x12345 ^ 512 shares its slot index)
    assert p.ebpf.ifit_counters([0x12345, 7]) == {(0x12345, 1): (5, 5 * 56 + 100)}
    assert p.ebpf.ifit_counters([0x12345 ^ 512]) == {}


def test_pfc_pause_xoff_xon_like_the_reference(pair_of: Any) -> None:
    p = pair_of(node("transit"))
    pause = bytes(pfc_frame("02:00:00:00:0a:02", {0: 1000}))
    assert p.run(pause, PacketContext(in_port=2, time_us=0)).drop == "pfc-consumed"
    to_port2 = bytes(
        Ether(src="02:00:00:00:0a:02", dst=B_MAC)
        / IPv6(src="2001:db8:1::1", dst="2001:db8:2::2")
        / UDP()
    )
    assert p.run(to_port2, PacketContext(in_port=1, time_us=100)).drop == "pfc-held"
    assert p.run(to_port2, PacketContext(in_port=1, time_us=600)).drop is None
    full = {(1, 0): 9_000}
    res = p.run(to_port2, PacketContext(in_port=1, time_us=700, ingress_queue_bytes=full))
    assert [o.port for o in res.outputs] == [1, 2]  # XOFF back to port 1, packet to port 2
    res = p.run(to_port2, PacketContext(in_port=1, time_us=800))
    assert [o.port for o in res.outputs] == [1, 2]  # XON


def test_stats_count_received_forwarded_and_dropped(pair_of: Any) -> None:
    p = pair_of(node("transit"))
    good = bytes(
        Ether(src="02:00:00:00:0a:02", dst=B_MAC) / IPv6(src="fc00:a::1", dst="fc00:d::1") / UDP()
    )
    p.run(good, PacketContext(in_port=1))
    p.run(good[:20], PacketContext(in_port=1))
    p.run(bytes(Ether(src="02:00:00:00:0a:02", dst="02:00:00:00:99:99")), PacketContext(in_port=1))
    stats = p.ebpf.stats()
    assert (stats["rx"], stats["forward"]) == (3, 1)
    assert stats["drop:bad-ipv6"] == 1 and stats["drop:not-for-me"] == 1


def test_configure_replaces_configuration_and_state(pair_of: Any) -> None:
    p = pair_of(node("transit"))
    pause = bytes(pfc_frame("02:00:00:00:0a:02", {0: 0xFFFF}))
    p.run(pause, PacketContext(in_port=2, time_us=0))
    n = node("transit")
    p.ebpf.configure(n)
    p.ref.configure(n)
    to_port2 = bytes(
        Ether(src="02:00:00:00:0a:02", dst=B_MAC)
        / IPv6(src="2001:db8:1::1", dst="2001:db8:2::2")
        / UDP()
    )
    assert p.run(to_port2, PacketContext(in_port=1, time_us=1)).drop is None


# --- errors -----------------------------------------------------------------------------------


def test_process_before_configure_is_an_error() -> None:
    with EBPFDataPlane() as dp, pytest.raises(ICPNError, match="configure"):
        dp.process(_to_site2(), PacketContext(in_port=1))


def test_unknown_in_port_and_bad_context_are_packet_errors() -> None:
    with EBPFDataPlane() as dp:
        dp.configure(node("transit"))
        with pytest.raises(PacketError, match="in_port 9 is not a port of B"):
            dp.process(_to_site2(), PacketContext(in_port=9))
        with pytest.raises(PacketError, match="rand32"):
            dp.process(_to_site2(), PacketContext(in_port=1, rand32=1 << 32))
        with pytest.raises(PacketError, match=r"ingress_queue_bytes: \(1, 9\)"):
            dp.process(_to_site2(), PacketContext(in_port=1, ingress_queue_bytes={(1, 9): 1}))


def test_what_the_maps_cannot_hold_is_a_config_error() -> None:
    d = node_dict("headend")
    d["policies"] = [dict(d["policies"][2], name=f"p{i}") for i in range(17)]
    with EBPFDataPlane() as dp, pytest.raises(ConfigError, match="policies: 17 entries"):
        dp.configure(node_from_dict(d, "test"))
    # an IOAM area past one option (the loader refuses it: a node built in Python)
    h = node_from_dict(node_dict("headend"), "test")
    big = dataclasses.replace(
        h, ifit=dataclasses.replace(h.ifit, max_nodes=16, trace_type=0xFFFFFC)
    )
    with EBPFDataPlane() as dp, pytest.raises(ConfigError, match="ifit"):
        dp.configure(big)
    # a port number past the 64-entry port arrays (a plan made elsewhere, not a YAML node,
    # whose loader already refuses it): named, not an E2BIG from the map update
    n = node("transit")
    far = dataclasses.replace(n, ports=(*n.ports, dataclasses.replace(n.ports[0], index=76)))
    with EBPFDataPlane() as dp, pytest.raises(ConfigError, match="port 76; the eBPF node holds"):
        dp.configure(far)


def test_a_128_sid_is_found_in_its_slot_without_the_trie(pair_of: Any) -> None:
    """maps.sid_slot (Python, where the writer puts a /128 SID) and sid_slot_of (maps.h, where
    the program looks) agree: with the SID's My-SID trie entry deleted, End still runs."""
    p = pair_of(node("transit"))
    sid = next(
        s for s in p.node.local_sids if s.sid.prefixlen == 128 and s.behaviour is Behaviour.END
    )
    addr = str(sid.sid.network_address)
    frame = bytes(
        Ether(src="02:00:00:00:0a:02", dst=B_MAC)
        / IPv6(src="fc00:a::1", dst=addr)
        / IPv6ExtHdrSegmentRouting(addresses=["fc00:d::d6", addr], segleft=1)
        / IPv6(src="2001:db8:1::1", dst="2001:db8:2::2")
        / UDP(sport=40000, dport=5000)
    )
    ctx = PacketContext(in_port=1)
    want = p.run(frame, ctx)
    assert want.drop is None
    assert IPv6(want.outputs[0].frame[14:]).dst == "fc00:d::d6"  # End ran
    key = M.SIDKey(prefixlen=128)
    key.addr[:] = list(sid.sid.network_address.packed)
    assert p.ebpf.map("my_sids").delete(bytes(key))
    assert _same(p.ebpf.process(frame, ctx), want)


def _end_frame(
    dst: str = "fc00:b::1",
    segs: tuple[str, ...] = ("fc00:d::d6", "fc00:b::1"),
    sl: int = 1,
    hlim: int = 64,
    hbh: bool = False,
    tlv: bool = False,
    after: bytes = b"",
) -> bytes:
    srh = IPv6ExtHdrSegmentRouting(addresses=list(segs), segleft=sl)
    if tlv:
        srh.tlv_objects = [IPv6ExtHdrSegmentRoutingTLVPadN(padding=b"\0\0\0\0")]
    outer = IPv6(src="fc00:a::1", dst=dst, hlim=hlim)
    opts = [AltMarkOption(flowmon_id=9), ioam_trace_option(max_nodes=4)]
    pkt = Ether(src="02:00:00:00:0a:02", dst=B_MAC) / outer
    if hbh:
        pkt = pkt / IPv6ExtHdrHopByHop(options=opts)
    inner = IPv6(src="2001:db8:1::1", dst="2001:db8:2::2") / UDP(sport=1, dport=2) / Raw(b"x")
    return bytes(pkt / srh / inner) + after


@pytest.mark.parametrize(
    ("frame", "fast"),
    [
        (_end_frame(), True),
        (_end_frame(hbh=True), True),  # End + IFIT transit stamping
        (_end_frame(dst="fc00:b::3", segs=("fc00:d::d6", "fc00:b::3")), True),  # End.X
        (_end_frame(dst="fc00:b::2", segs=("fc00:d::d6", "fc00:b::2")), False),  # PSP flavour
        (_end_frame(tlv=True), False),  # TLVs are checked by the pipeline
        (_end_frame(segs=("fc00:b::d6", "fc00:b::1")), False),  # the next SID is local
        (_end_frame(segs=("2001:db9::1", "fc00:b::1")), False),  # no route: dropped
        (_end_frame(hlim=1), False),
        (_end_frame(sl=0), False),
        (_end_frame(after=bytes(6)), False),  # link padding: the pipeline trims it
        (_end_frame(dst="fe80::1", segs=("fc00:d::d6", "fe80::1")), False),
    ],
    ids=[
        "end",
        "end-ifit",
        "end-x",
        "psp",
        "tlv",
        "next-local",
        "no-route",
        "hlim-1",
        "sl-0",
        "padded",
        "link-local",
    ],
)
def test_end_fast_path_takes_the_usual_packet_and_leaves_the_rest(
    pair_of: Any, frame: bytes, fast: bool
) -> None:
    """fast_end forwards End / End.X of the usual packet itself, exactly as the pipeline and the
    reference would, and hands every other packet to the pipeline untouched."""
    p = pair_of(node("transit"))
    before = p.ebpf.stats()["fast-end"]
    p.run(frame, PacketContext(in_port=1, time_us=5000))
    assert p.ebpf.stats()["fast-end"] - before == (1 if fast else 0)


def test_policies_beyond_the_inline_match_steps(pair_of: Any) -> None:
    """first_match tries two entries inline and the rest in a bpf_loop: a policy found at any
    position encapsulates as the reference does, and a packet no policy matches is forwarded."""
    filler = [
        {
            "name": f"f{i}",
            "match": {"dst": f"2001:db8:9{i}::/48"},
            "sid_lists": [{"segments": ["fc00:b::1"]}],
        }
        for i in range(4)
    ]
    d = node_dict("headend")
    d["policies"] = filler + d["policies"]
    p = pair_of(node_from_dict(d, "test"))
    ctx = PacketContext(in_port=1, time_us=1000)
    e = Ether(src="02:00:00:00:00:01", dst=A_MAC)
    for dst in ("2001:db8:91::1", "2001:db8:93::1", "2001:db8:2::2", "2001:db8:1::7"):
        res = p.run(bytes(e / IPv6(src="2001:db8:1::1", dst=dst) / UDP(dport=5001)), ctx)
        assert res.drop is None
    res = p.run(bytes(e / IP(src="10.0.1.1", dst="10.0.2.2") / UDP(dport=5001)), ctx)
    assert IPv6(res.outputs[0].frame[14:]).dst == "fc00:d::d4"  # "v4", the 7th policy


def test_fib_cache_slots_shared_by_many_destinations(pair_of: Any) -> None:
    """3,000 destinations over every route, twice: far more than the cache's 1,024 slots per
    CPU, so destinations evict one another; every packet still takes its own route."""
    p = pair_of(node("transit"))
    rng = random.Random(7)
    prefixes = ["fc00:a", "fc00:c", "fc00:d", "fc00:e", "2001:db8:1", "2001:db8:2", "2001:db9:0"]
    dsts = [f"{rng.choice(prefixes)}::{rng.randrange(1, 1 << 16):x}" for _ in range(3000)]
    e = Ether(src="02:00:00:00:0a:02", dst=B_MAC)
    ports = Counter()
    for dst in dsts + dsts:
        res = p.run(
            bytes(e / IPv6(src="2001:db8:1::1", dst=dst, hlim=9) / UDP()), PacketContext(in_port=1)
        )
        ports[res.outputs[0].port if res.outputs else res.drop] += 1
    assert len(ports) >= 4  # routes to several ports, and no-route drops, all as the reference
