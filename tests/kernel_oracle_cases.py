"""The kernel oracle's hand-written cases: scapy packets with their expected outputs written
by hand from SPEC.md / RFC 8986 / docs/pipeline.md, and how a plane's outputs are compared
with them after normalising only what SPEC leaves to the node (the outer flow label in
`hash` mode) and what docs/kernel-oracle.md documents (the outer hop limit of an IPv4 packet
encapsulated by Linux)."""

from __future__ import annotations

from kernel_oracle_rig import SOURCE, Case, _eth, _out, _outer, _srh, _u4, _u6
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from pyctl.targets.base import Result

# ---------------------------------------------------------------------------------------------
# Cases


def _encap_cases() -> list[Case]:
    cases = []
    for mode in ("copy", "zero", "hash"):
        node = f"headend-{mode}"
        for hlim, tc, fl, n in ((64, 0, 0x12345, 9), (2, 0x28, 0xABCDE, 300)):
            inner = _u6("2001:db8:b::1", hlim=hlim, tc=tc, fl=fl, n=n)
            outer_fl = {"copy": fl, "zero": 0, "hash": 0}[mode]
            exp = (
                _out(2)
                / IPv6(src=SOURCE, dst="fc00:2::e", hlim=hlim - 1, tc=tc, fl=outer_fl, nh=43)
                / _srh(["fc00:9::d6", "fc00:5::e", "fc00:2::e"], 2, 41)
                / Raw(bytes(inner))
            )
            cases.append(
                Case(
                    f"encaps-3sid-{mode}-hl{hlim}",
                    node,
                    _eth(1) / inner,
                    ((2, exp),),
                    norm_flowlabel=mode == "hash",
                )
            )
    inner = _u6("2001:db8:e::7", hlim=33, tc=0x10, fl=0x55555)
    exp = (
        _out(3)
        / IPv6(src=SOURCE, dst="fc00:3::d6", hlim=32, tc=0x10, fl=0x55555, nh=43)
        / _srh(["fc00:3::d6"], 0, 41)
        / Raw(bytes(inner))
    )
    cases.append(Case("encaps-1sid", "headend-copy", _eth(1) / inner, ((3, exp),)))
    # H.Encaps.Red: the SRH omits S1 (LE = n-2, SL = n-1); with one SID there is no SRH at all
    inner = _u6("2001:db8:c::1", hlim=50)
    exp = (
        _out(3)
        / IPv6(src=SOURCE, dst="fc00:3::e", hlim=49, fl=0, nh=43)
        / _srh(["fc00:9::d6"], 1, 41, le=0)
        / Raw(bytes(inner))
    )
    cases.append(Case("encaps-red-2sid", "headend-copy", _eth(1) / inner, ((3, exp),)))
    inner = _u6("2001:db8:f::1", hlim=50, fl=0x1)
    exp = (
        _out(2)
        / IPv6(src=SOURCE, dst="fc00:2::e", hlim=49, fl=0x1, nh=43)
        / _srh(["fc00:9::d6", "fc00:3::e"], 2, 41, le=1)
        / Raw(bytes(inner))
    )
    cases.append(Case("encaps-red-3sid", "headend-copy", _eth(1) / inner, ((2, exp),)))
    inner = _u6("2001:db8:d::1", hlim=7, fl=0x2, n=40)
    exp = _out(2) / IPv6(src=SOURCE, dst="fc00:2::d6", hlim=6, fl=0x2, nh=41) / Raw(bytes(inner))
    cases.append(Case("encaps-red-1sid", "headend-copy", _eth(1) / inner, ((2, exp),)))
    # IPv4 inner (TOS 0 here; the TOS difference is a documented test of its own)
    for mode in ("copy", "hash"):
        for ttl, n in ((64, 9), (9, 200)):
            inner4 = _u4("10.2.0.1", ttl=ttl, n=n)
            exp = (
                _out(2)
                / IPv6(src=SOURCE, dst="fc00:2::e", hlim=ttl - 1, fl=0, nh=43)
                / _srh(["fc00:9::d4", "fc00:2::e"], 1, 4)
                / Raw(bytes(inner4))
            )
            cases.append(
                Case(
                    f"encaps-v4-{mode}-ttl{ttl}",
                    f"headend-{mode}",
                    _eth(1) / inner4,
                    ((2, exp),),
                    norm_flowlabel=mode == "hash",
                    norm_v4_outer_hlim=True,
                )
            )
    inner4 = _u4("10.3.9.9", ttl=20)
    exp = (
        _out(3)
        / IPv6(src=SOURCE, dst="fc00:3::e", hlim=19, nh=43)
        / _srh(["fc00:9::d4"], 1, 4, le=0)
        / Raw(bytes(inner4))
    )
    cases.append(
        Case(
            "encaps-red-v4-2sid",
            "headend-copy",
            _eth(1) / inner4,
            ((3, exp),),
            norm_v4_outer_hlim=True,
        )
    )
    inner4 = _u4("10.4.0.1", ttl=20)
    exp = _out(2) / IPv6(src=SOURCE, dst="fc00:2::d4", hlim=19, nh=4) / Raw(bytes(inner4))
    cases.append(
        Case(
            "encaps-red-v4-1sid",
            "headend-copy",
            _eth(1) / inner4,
            ((2, exp),),
            norm_v4_outer_hlim=True,
        )
    )
    cases.append(
        Case(
            "encaps-hop-limit-1",
            "headend-copy",
            _eth(1) / _u6("2001:db8:b::1", hlim=1),
            drop="hop-limit",
        )
    )
    return cases


def _end_cases() -> list[Case]:
    cases = []
    # explicit checksum: a bare UDP after the SRH keeps the same bytes in and out
    udp = UDP(sport=7, dport=9, chksum=0x1234) / Raw(b"end-payload")
    segs3 = ["fc00:3::d6", "fc00:2::1", "fc00:1::e"]
    pkt = _eth(1) / _outer("fc00:1::e", 43, hlim=64) / _srh(segs3, 2, 17) / udp
    exp = _out(2) / _outer("fc00:2::1", 43, hlim=63) / _srh(segs3, 1, 17) / Raw(bytes(udp))
    cases.append(Case("end-sl2-sl1", "endpoint", pkt, ((2, exp),)))
    inner = _u6("2001:db8:b::9", hlim=10, n=100)
    segs2 = ["fc00:3::d6", "fc00:1::e"]
    pkt = _eth(2) / _outer("fc00:1::e", 43, hlim=9) / _srh(segs2, 1, 41) / inner
    exp = _out(3) / _outer("fc00:3::d6", 43, hlim=8) / _srh(segs2, 0, 41) / Raw(bytes(inner))
    cases.append(Case("end-sl1-sl0-keeps-srh", "endpoint", pkt, ((3, exp),), in_port=2))
    inner4 = _u4("10.9.9.9", ttl=3)
    pkt = _eth(1) / _outer("fc00:1::e", 43, hlim=2) / _srh(segs2, 1, 4) / inner4
    exp = _out(3) / _outer("fc00:3::d6", 43, hlim=1) / _srh(segs2, 0, 4) / Raw(bytes(inner4))
    cases.append(Case("end-inner-v4-hl2", "endpoint", pkt, ((3, exp),)))
    # reduced SRH (H.Encaps.Red upstream): SL = LE + 1, DA is not in the list
    segs = ["fc00:3::d6", "fc00:2::7"]
    pkt = _eth(1) / _outer("fc00:1::e", 43) / _srh(segs, 2, 17, le=1) / udp
    exp = _out(2) / _outer("fc00:2::7", 43, hlim=63) / _srh(segs, 1, 17, le=1) / Raw(bytes(udp))
    cases.append(Case("end-reduced-srh", "endpoint", pkt, ((2, exp),)))
    hbh = IPv6ExtHdrHopByHop(nh=43)
    pkt = _eth(1) / _outer("fc00:1::e", 0) / hbh / _srh(segs3, 2, 17) / udp
    exp = _out(2) / _outer("fc00:2::1", 0, hlim=63) / hbh / _srh(segs3, 1, 17) / Raw(bytes(udp))
    cases.append(Case("end-after-hbh", "endpoint", pkt, ((2, exp),)))
    # drops
    cases += [
        Case(
            "end-sl0",
            "endpoint",
            _eth(1) / _outer("fc00:1::e", 43) / _srh(segs3, 0, 17) / udp,
            drop="sl-zero",
        ),
        Case("end-no-srh", "endpoint", _eth(1) / _outer("fc00:1::e", 17) / udp, drop="no-srh"),
        Case(
            "end-hop-limit-1",
            "endpoint",
            _eth(1) / _outer("fc00:1::e", 43, hlim=1) / _srh(segs3, 2, 17) / udp,
            drop="hop-limit",
        ),
        Case(
            "end-bad-le",
            "endpoint",
            _eth(1) / _outer("fc00:1::e", 43) / _srh(segs2, 1, 17, le=2) / udp,
            drop="bad-srh-le",
        ),
        Case(
            "end-bad-sl",
            "endpoint",
            _eth(1) / _outer("fc00:1::e", 43) / _srh(segs2, 3, 17) / udp,
            drop="bad-srh-sl",
        ),
        Case(
            "end-next-no-route",
            "endpoint",
            _eth(1) / _outer("fc00:1::e", 43) / _srh(["fc00:7::1", "fc00:1::e"], 1, 17) / udp,
            drop="no-route",
        ),
    ]
    # PSP: the SRH goes when SL becomes 0 (Next Header and Payload Length patched)
    pkt = (
        _eth(1)
        / _outer("fc00:1::b", 43, hlim=30)
        / _srh(["fc00:3::d6", "fc00:1::b"], 1, 41)
        / inner
    )
    exp = _out(3) / _outer("fc00:3::d6", 41, hlim=29) / Raw(bytes(inner))
    cases.append(Case("psp-sl1-removes-srh", "endpoint", pkt, ((3, exp),)))
    pkt = (
        _eth(1)
        / _outer("fc00:1::b", 43)
        / _srh(["fc00:3::d6", "fc00:2::1", "fc00:1::b"], 2, 17)
        / udp
    )
    exp = (
        _out(2)
        / _outer("fc00:2::1", 43, hlim=63)
        / _srh(["fc00:3::d6", "fc00:2::1", "fc00:1::b"], 1, 17)
        / Raw(bytes(udp))
    )
    cases.append(Case("psp-sl2-keeps-srh", "endpoint", pkt, ((2, exp),)))
    pkt = _eth(1) / _outer("fc00:1::b", 0) / hbh / _srh(["fc00:2::5", "fc00:1::b"], 1, 17) / udp
    exp = _out(2) / _outer("fc00:2::5", 0, hlim=63) / IPv6ExtHdrHopByHop(nh=17) / Raw(bytes(udp))
    cases.append(Case("psp-after-hbh", "endpoint", pkt, ((2, exp),)))
    # End.X: the adjacency (port 3), not the FIB (which says port 2 for fc00:2::)
    pkt = (
        _eth(1)
        / _outer("fc00:1::a3", 43, hlim=5)
        / _srh(["fc00:2::d6", "fc00:1::a3"], 1, 41)
        / inner
    )
    exp = (
        _out(3)
        / _outer("fc00:2::d6", 43, hlim=4)
        / _srh(["fc00:2::d6", "fc00:1::a3"], 0, 41)
        / Raw(bytes(inner))
    )
    cases.append(Case("end-x", "endpoint", pkt, ((3, exp),)))
    pkt = _eth(2) / _outer("fc00:1::a3", 43) / _srh(segs3[:2] + ["fc00:1::a3"], 2, 17) / udp
    exp = (
        _out(3)
        / _outer("fc00:2::1", 43, hlim=63)
        / _srh(segs3[:2] + ["fc00:1::a3"], 1, 17)
        / Raw(bytes(udp))
    )
    cases.append(Case("end-x-sl2", "endpoint", pkt, ((3, exp),), in_port=2))
    cases.append(
        Case(
            "end-x-sl0",
            "endpoint",
            _eth(1) / _outer("fc00:1::a3", 43) / _srh(segs2, 0, 17) / udp,
            drop="sl-zero",
        )
    )
    # NEXT-CSID (F3216): a non-zero argument shifts the C-SIDs and leaves SL and the SRH alone
    pkt = _eth(1) / _outer("fc00:0:100:200:300::", 17, hlim=12) / udp
    exp = _out(2) / _outer("fc00:0:200:300::", 17, hlim=11) / Raw(bytes(udp))
    cases.append(Case("next-csid-shift", "endpoint", pkt, ((2, exp),)))
    segs = ["fc00:3::d6", "fc00:0:100:200::"]
    pkt = _eth(1) / _outer("fc00:0:100:200::", 43) / _srh(segs, 1, 41) / inner
    exp = _out(2) / _outer("fc00:0:200::", 43, hlim=63) / _srh(segs, 1, 41) / Raw(bytes(inner))
    cases.append(Case("next-csid-shift-with-srh", "endpoint", pkt, ((2, exp),)))
    segs = ["fc00:3::d6", "fc00:0:100::"]
    pkt = _eth(1) / _outer("fc00:0:100::", 43) / _srh(segs, 1, 41) / inner
    exp = _out(3) / _outer("fc00:3::d6", 43, hlim=63) / _srh(segs, 0, 41) / Raw(bytes(inner))
    cases.append(Case("next-csid-arg-zero-end", "endpoint", pkt, ((3, exp),)))
    pkt = _eth(1) / _outer("fc00:0:101:200:400::", 17, hlim=12) / udp
    exp = _out(3) / _outer("fc00:0:200:400::", 17, hlim=11) / Raw(bytes(udp))
    cases.append(Case("next-csid-end-x", "endpoint", pkt, ((3, exp),)))
    return cases


def _decap_cases() -> list[Case]:
    cases = []
    inner = _u6("2001:db8:b::1", hlim=20, tc=0x04, fl=0x777, n=64)
    srh0 = _srh(["fc00:1::d6", "fc00:2::e"], 0, 41)
    exp_inner = IPv6(bytes(inner))
    exp_inner.hlim = 19
    pkt = _eth(2) / _outer("fc00:1::d6", 43, src=SOURCE) / srh0 / inner
    cases.append(Case("dt6-table10", "endpoint", pkt, ((3, _out(3) / exp_inner),), in_port=2))
    pkt = _eth(2) / _outer("fc00:1::d6", 41, hlim=1, src=SOURCE) / inner
    cases.append(Case("dt6-no-srh", "endpoint", pkt, ((3, _out(3) / exp_inner),), in_port=2))
    pkt = _eth(2) / _outer("fc00:1::dd6", 41, src=SOURCE) / inner
    cases.append(Case("dt6-main-table", "endpoint", pkt, ((1, _out(1) / exp_inner),), in_port=2))
    pkt = (
        _eth(2)
        / _outer("fc00:1::d6", 43, src=SOURCE)
        / _srh(["fc00:1::d6", "fc00:2::e"], 1, 41)
        / inner
    )
    cases.append(Case("dt6-sl1", "endpoint", pkt, drop="sl-nonzero", in_port=2))
    pkt = _eth(2) / _outer("fc00:1::d6", 4, src=SOURCE) / _u4("10.2.0.1")
    cases.append(Case("dt6-inner-v4", "endpoint", pkt, drop="bad-inner", in_port=2))
    pkt = _eth(2) / _outer("fc00:1::d6", 41, src=SOURCE) / _u6("2001:db8:a::5")
    cases.append(Case("dt6-not-in-table", "endpoint", pkt, drop="no-route", in_port=2))
    pkt = _eth(2) / _outer("fc00:1::d6", 41, src=SOURCE) / _u6("2001:db8:b::1", hlim=1)
    cases.append(Case("dt6-inner-hl1", "endpoint", pkt, drop="hop-limit", in_port=2))
    # End.DX6 / End.DX4: to the adjacency, whatever the inner destination
    inner = _u6("2001:db8:77::1", hlim=64)
    exp_inner = IPv6(bytes(inner))
    exp_inner.hlim = 63
    pkt = _eth(2) / _outer("fc00:1::c6", 43, src=SOURCE) / _srh(["fc00:1::c6"], 0, 41) / inner
    cases.append(Case("dx6", "endpoint", pkt, ((3, _out(3) / exp_inner),), in_port=2))
    inner4 = _u4("10.77.0.1", ttl=64, tos=0x10, n=50)
    exp4 = IP(bytes(inner4))
    exp4.ttl = 63
    del exp4.chksum
    pkt = _eth(3) / _outer("fc00:1::c4", 4, src=SOURCE) / inner4
    cases.append(Case("dx4-no-srh", "endpoint", pkt, ((2, _out(2) / exp4),), in_port=3))
    pkt = (
        _eth(3)
        / _outer("fc00:1::c4", 43, src=SOURCE)
        / _srh(["fc00:1::c4", "fc00:3::e"], 0, 4)
        / inner4
    )
    cases.append(Case("dx4-srh", "endpoint", pkt, ((2, _out(2) / exp4),), in_port=3))
    pkt = _eth(3) / _outer("fc00:1::c4", 41, src=SOURCE) / inner
    cases.append(Case("dx4-inner-v6", "endpoint", pkt, drop="bad-inner", in_port=3))
    return cases


def _forwarding_cases() -> list[Case]:
    cases = []
    for dst, port in (("2001:db8:b::1", 2), ("2001:db8:b:5::1", 3)):
        pkt = _u6(dst, hlim=64, tc=0x2, fl=0x4321)
        exp = IPv6(bytes(pkt))
        exp.hlim = 63
        cases.append(Case(f"fwd6-{port}", "router", _eth(1) / pkt, ((port, _out(port) / exp),)))
    segs = ["fc00:3::d6", "2001:db8:b::1"]
    pkt = (
        IPv6(src="2001:db8:a::1", dst="2001:db8:b::1", hlim=3)
        / _srh(segs, 1, 17)
        / UDP()
        / Raw(b"t")
    )
    exp = IPv6(bytes(pkt))
    exp.hlim = 2
    cases.append(Case("fwd6-srv6-transit", "router", _eth(1) / pkt, ((2, _out(2) / exp),)))
    pkt4 = _u4("10.2.3.4", ttl=17, tos=0x3)
    exp4 = IP(bytes(pkt4))
    exp4.ttl = 16
    del exp4.chksum
    cases.append(Case("fwd4", "router", _eth(1) / pkt4, ((2, _out(2) / exp4),)))
    cases += [
        Case("fwd6-hl1", "router", _eth(1) / _u6("2001:db8:b::1", hlim=1), drop="hop-limit"),
        Case("fwd4-ttl1", "router", _eth(1) / _u4("10.2.0.1", ttl=1), drop="hop-limit"),
        Case("fwd6-no-route", "router", _eth(1) / _u6("2001:db8:99::1"), drop="no-route"),
        Case("fwd4-no-route", "router", _eth(1) / _u4("10.99.0.1"), drop="no-route"),
    ]
    return cases


def _steering_cases() -> list[Case]:
    """Policy choice: the first matching policy in configuration order, on all match fields."""

    def encap(seg: str, inner: Packet, port: int) -> Ether:
        return (
            _out(port)
            / IPv6(src=SOURCE, dst=seg, hlim=inner.hlim - 1 if inner.version == 6 else 63, nh=43)
            / _srh([seg], 0, 41 if inner.version == 6 else 4)
            / Raw(bytes(inner))
        )

    tcp6 = IPv6(src="2001:db8:a::1", dst="2001:db8:b::1") / TCP(sport=5, dport=80) / Raw(b"t")
    udp6 = _u6("2001:db8:b::1")
    other6 = _u6("2001:db8:99::1")
    src_a = IPv6(src="2001:db8:a:7::1", dst="2001:db8:99::1") / UDP() / Raw(b"s")
    dns4 = IP(src="10.1.0.1", dst="10.5.0.1", ttl=64) / UDP(sport=3, dport=53) / Raw(b"q")
    web4 = IP(src="10.1.0.1", dst="10.5.0.1", ttl=64) / UDP(sport=3, dport=80) / Raw(b"w")
    return [
        Case(
            "steer-order-beats-lpm", "steering", _eth(1) / tcp6, ((2, encap("fc00:2::a", tcp6, 2)),)
        ),
        Case("steer-dst", "steering", _eth(1) / udp6, ((2, encap("fc00:2::b", udp6, 2)),)),
        Case(
            "steer-in-port",
            "steering",
            _eth(3) / other6,
            ((3, encap("fc00:3::c", other6, 3)),),
            in_port=3,
        ),
        Case("steer-no-policy", "steering", _eth(1) / other6, drop="no-route"),
        Case("steer-src", "steering", _eth(1) / src_a, ((2, encap("fc00:2::f", src_a, 2)),)),
        Case(
            "steer-v4-dport",
            "steering",
            _eth(1) / dns4,
            ((3, encap("fc00:3::d", dns4, 3)),),
            norm_v4_outer_hlim=True,
        ),
        Case("steer-v4-no-policy", "steering", _eth(1) / web4, drop="no-route"),
    ]


CASES = _encap_cases() + _end_cases() + _decap_cases() + _forwarding_cases() + _steering_cases()


# ---------------------------------------------------------------------------------------------
# Running and comparing


# ---------------------------------------------------------------------------------------------
# Comparing a plane's outputs with a case


def normalise(frame: bytes, case: Case) -> bytes:
    """Blank what SPEC leaves to the node (outer flow label in hash mode) and the documented
    Linux difference (outer hop limit over an IPv4 inner packet)."""
    b = bytearray(frame)
    if len(b) >= 54 and b[12:14] == b"\x86\xdd":
        if case.norm_flowlabel:
            b[15] &= 0xF0
            b[16] = b[17] = 0
        if case.norm_v4_outer_hlim:
            b[21] = 0
    return bytes(b)


def expected_outputs(case: Case) -> list[tuple[int, bytes]]:
    return sorted((port, normalise(bytes(pkt), case)) for port, pkt in case.expect)


def actual_outputs(result: Result, case: Case) -> list[tuple[int, bytes]]:
    return sorted((o.port, normalise(o.frame, case)) for o in result.outputs)


def explain(label: str, case: Case, result: Result) -> str:
    lines = [f"{label} on {case.id}: drop={result.drop!r}"]
    for port, frame in actual_outputs(result, case):
        lines.append(f"  got port {port}: {Ether(frame).summary()}\n    {frame.hex()}")
    for port, frame in expected_outputs(case):
        lines.append(f"  want port {port}: {Ether(frame).summary()}\n    {frame.hex()}")
    return "\n".join(lines)
