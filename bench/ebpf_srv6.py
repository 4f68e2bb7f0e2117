"""icpn_node per-packet cost through BPF_PROG_TEST_RUN, per SRv6 behaviour (root needed).

    .venv/bin/python bench/ebpf_srv6.py [--runs N]

For each scenario the frame is first checked to be forwarded as the reference plane forwards it;
then it is run N times (repeat=1 each: a repeated run would see the frame the last one changed)
and the kernel's own per-run duration is reported (median and 99th percentile, ns). A run's
duration includes the test run's own floor, measured side by side as the median duration of a
program that does nothing (icpn_pass, ebpf/src/icpn_bench.bpf.c) on the same frame; the
program's cost is the median minus that floor. Two checks of the method are printed: the IPv6
transit forward with hop limit 255 and repeat=200 (a path every repetition takes again: only the
hop limit changes), and the cost of one call into the kernel (ten clock reads, repeat=10000),
which is what a hash or LPM map lookup or any helper costs on this machine. For scale: the
wall-clock cost of one `EBPFDataPlane.process` call from Python and of the reference plane's
`process`. Built objects needed (`make build`).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop, IPv6ExtHdrSegmentRouting
from scapy.layers.l2 import Ether
from scapy.packet import Raw

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from ebpf_nodes import node, node_dict  # noqa: E402

from pyctl.errors import ICPNError  # noqa: E402
from pyctl.model.load import node_from_dict  # noqa: E402
from pyctl.model.node import NodeConfig, PacketContext  # noqa: E402
from pyctl.packets import AltMarkOption, ioam_trace_option  # noqa: E402
from pyctl.targets.ebpf import EBPFDataPlane  # noqa: E402
from pyctl.targets.ebpf.dataplane import (
    BUILD_DIR,  # noqa: E402
    NODE_PROGRAM,  # noqa: E402
)
from pyctl.targets.ebpf.libbpf import BPFObject, Program  # noqa: E402
from pyctl.targets.reference import ReferenceDataPlane  # noqa: E402

PAYLOAD = Raw(bytes(1000))


def _plain_headend() -> NodeConfig:
    d = node_dict("headend")
    for key in ("apn", "ifit", "elephant", "ecn", "pfc"):
        d.pop(key)
    return node_from_dict(d, "bench")


def scenarios() -> list[tuple[str, NodeConfig, bytes, int]]:
    """(name, node, frame, in_port) for each behaviour measured."""
    to_b = Ether(src="02:00:00:00:0a:02", dst="02:00:00:00:0b:01")
    to_a = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:0a:01")
    to_d = Ether(src="02:00:00:00:0c:02", dst="02:00:00:00:0d:01")
    inner = IPv6(src="2001:db8:1::1", dst="2001:db8:2::2") / UDP(sport=40000, dport=5000) / PAYLOAD
    inner4 = IP(src="10.0.1.1", dst="10.0.2.2") / UDP(sport=40000, dport=5000) / PAYLOAD
    transit, plain = node("transit"), _plain_headend()

    def srh(segs: list[str], sl: int) -> IPv6ExtHdrSegmentRouting:
        return IPv6ExtHdrSegmentRouting(addresses=segs, segleft=sl)

    return [
        ("IPv6 transit forward", transit, bytes(to_b / inner), 1),
        (
            "IPv4 transit forward",
            transit,
            bytes(to_b / IP(src="10.0.1.1", dst="10.1.1.1") / UDP() / PAYLOAD),
            1,
        ),
        (
            "End",
            transit,
            bytes(
                to_b
                / IPv6(src="fc00:a::1", dst="fc00:b::1")
                / srh(["fc00:d::d6", "fc00:b::1"], 1)
                / inner
            ),
            1,
        ),
        (
            "End + IFIT transit",
            transit,
            bytes(
                to_b
                / IPv6(src="fc00:a::1", dst="fc00:b::1")
                / IPv6ExtHdrHopByHop(
                    options=[AltMarkOption(flowmon_id=9), ioam_trace_option(max_nodes=8)]
                )
                / srh(["fc00:d::d6", "fc00:b::1"], 1)
                / inner
            ),
            1,
        ),
        (
            "End + PSP",
            transit,
            bytes(
                to_b
                / IPv6(src="fc00:a::1", dst="fc00:b::2")
                / srh(["fc00:d::d6", "fc00:b::2"], 1)
                / inner
            ),
            1,
        ),
        (
            "End.X",
            transit,
            bytes(
                to_b
                / IPv6(src="fc00:a::1", dst="fc00:b::3")
                / srh(["fc00:d::d6", "fc00:b::3"], 1)
                / inner
            ),
            1,
        ),
        (
            "NEXT-CSID shift",
            transit,
            bytes(to_b / IPv6(src="fc00:a::1", dst="fcbb:bb00:100:200::") / inner),
            1,
        ),
        (
            "End.DT6",
            node("egress"),
            bytes(to_d / IPv6(src="fc00:a::1", dst="fc00:d::d6") / srh(["fc00:d::d6"], 0) / inner),
            1,
        ),
        (
            "End.DT4",
            node("egress"),
            bytes(to_d / IPv6(src="fc00:a::1", dst="fc00:d::d4") / inner4),
            1,
        ),
        ("H.Encaps.Red", plain, bytes(to_a / inner), 1),
        ("H.Encaps (1 SID, IPv4)", plain, bytes(to_a / inner4), 1),
        (
            "H.Encaps + APN + IFIT head",
            node("headend"),
            bytes(
                to_a
                / IPv6(src="2001:db8:1::1", dst="2001:db8:2::2", tc=46 << 2)
                / UDP(sport=40000, dport=5000)
                / PAYLOAD
            ),
            1,
        ),
    ]


def _wall(fn: Callable[[], object], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def _median_ns(prog: Program, frame: bytes, runs: int, repeat: int = 1) -> float:
    return statistics.median(prog.test_run(frame, repeat=repeat).duration_ns for _ in range(runs))


def _repeat_check(floor_prog: Program, runs: int) -> tuple[float, float]:
    """IPv6 transit forward at hop limit 255: (repeat=1 cost, repeat=200 cost), floors removed."""
    _, _, frame, port = scenarios()[0]
    b = bytearray(frame)
    b[14 + 7] = 255  # every one of 200 repetitions forwards it again ...
    frame = bytes(b)
    d = node_dict("transit")
    in_mac = next(p["mac"] for p in d["ports"] if p["index"] == port)
    for r in d["routes"]:
        r["mac"] = in_mac  # ... to a next hop whose MAC is the one the frame came to
    n = node_from_dict(d, "bench")
    dp = EBPFDataPlane()
    try:
        dp.configure(n)
        if dp.process(frame, PacketContext(in_port=port, time_us=1000)).drop is not None:
            raise ICPNError("ebpf_srv6: the repeat check's frame is not forwarded")
        prog = dp.obj.program(NODE_PROGRAM)
        one = _median_ns(prog, frame, runs) - _median_ns(floor_prog, frame, runs)
        many = _median_ns(prog, frame, max(runs // 50, 20), 200)
        many -= _median_ns(floor_prog, frame, max(runs // 50, 20), 200)
    finally:
        dp.close()
    return one, many


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2000, help="test runs per scenario")
    args = ap.parse_args()
    reason = EBPFDataPlane.unavailable()
    if reason is not None:
        print(f"ebpf_srv6: the eBPF plane cannot run here: {reason}", file=sys.stderr)
        return 1
    bench = BPFObject(BUILD_DIR / "icpn_bench.bpf.o")
    bench.load()
    floor_prog = bench.program("icpn_pass")
    rows = []
    for name, n, frame, port in scenarios():
        ctx = PacketContext(in_port=port, time_us=1000)
        dp = EBPFDataPlane()
        try:
            dp.configure(n)
            ref = ReferenceDataPlane()
            ref.configure(n)
            got, want = dp.process(frame, ctx), ref.process(frame, ctx)
            if got.drop is not None or got.outputs != want.outputs:
                print(f"ebpf_srv6: {name}: eBPF and reference disagree", file=sys.stderr)
                return 1
            prog = dp.obj.program(NODE_PROGRAM)
            durations = []
            for _ in range(args.runs):
                durations.append(prog.test_run(frame).duration_ns)
                dp.drain_aux()
            durations.sort()
            p99 = durations[min(len(durations) - 1, int(len(durations) * 0.99))]
            floor = _median_ns(floor_prog, frame, args.runs)
            calls = max(1, args.runs // 10)
            per_call = _wall(functools.partial(dp.process, frame, ctx), calls)
            ref_call = _wall(functools.partial(ref.process, frame, ctx), calls)
        finally:
            dp.close()
        growth = len(got.outputs[-1].frame) - len(frame)
        med = statistics.median(durations)
        rows.append((name, len(frame), growth, med, p99, med - floor, per_call, ref_call))
    small = bytes(100)
    call_ns = (
        _median_ns(bench.program("icpn_calls"), small, 30, 10000)
        - _median_ns(floor_prog, small, 30, 10000)
    ) / 10
    one, many = _repeat_check(floor_prog, args.runs)
    bench.close()
    h = ("scenario", "bytes", "+bytes", "p50 ns", "p99", "cost ns", "process() us", "reference us")
    print(f"{h[0]:28} {h[1]:>6} {h[2]:>6} {h[3]:>7} {h[4]:>6} {h[5]:>8} {h[6]:>13} {h[7]:>13}")
    for name, size, growth, med, p99, cost, call, ref_us in rows:
        print(
            f"{name:28} {size:6d} {growth:+6d} {med:7.0f} {p99:6d} {cost:8.0f}"
            f" {call:13.1f} {ref_us:13.1f}"
        )
    print(
        "cost = p50 - the test run's floor (a program that does nothing, same frame);"
        f" check: IPv6 transit forward, repeat=1 {one:.0f} ns, repeat=200 {many:.0f} ns"
    )
    print(f"one call into the kernel (helper, hash or LPM lookup) here: {call_ns:.0f} ns")
    end_ifit = next(r[5] for r in rows if r[0] == "End + IFIT transit")
    print(
        f"End + IFIT transit: {end_ifit:.0f} ns a packet (target < 100 ns):"
        f" {'met' if end_ifit < 100 else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
