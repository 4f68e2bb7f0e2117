"""Packets per second on one veth path, side by side: XDP H.Encaps vs kernel seg6 vs forwarding.

    sudo .venv/bin/python bench/srv6_path.py [--seconds 3] [--segments 1,4,8] [--payloads 64,1000]

Three namespaces: gen -(veth)- dut -(veth)- sink. `trafgen` (netsniff-ng, zero-copy
PACKET_MMAP) floods IPv6/UDP frames from gen; the DUT forwards them to the sink, where an XDP
program (ebpf/src/icpn_bench.bpf.c) counts and drops them. For each segment count and payload
the DUT runs, one after the other on the same path:
  (a) the eBPF H.Encaps headend: icpn_node as native XDP, redirecting to the sink's veth;
  (b) the kernel's `encap seg6 mode encap` route;
  (c) plain kernel IPv6 forwarding (no SRv6), for scale.
Printed: frames per second delivered to the sink and the ratio a/b (target: >= 2).
Generator, DUT and sink share this machine's cores: a veth delivers in the sender's context, so
on a 2-core VM the generator's CPU does the DUT's work too, and when all three variants deliver
about the same rate the path is generator-bound and the ratio says nothing about the DUT (the
script says so). Per-packet program cost, free of that, is bench/ebpf_srv6.py's measure.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from pyctl import netns
from pyctl.model.load import node_from_dict
from pyctl.targets.ebpf import EBPFDataPlane
from pyctl.targets.ebpf import attach as att
from pyctl.targets.ebpf.libbpf import BPFObject

ROOT = Path(__file__).resolve().parents[1]
SINK_OBJ = ROOT / "ebpf" / "build" / "icpn_bench.bpf.o"
MAC = {
    "g0": "02:00:00:00:0a:01",
    "d1": "02:00:00:00:0d:01",
    "d2": "02:00:00:00:0d:02",
    "s0": "02:00:00:00:0e:01",
}
DST = "2001:db8:b::1"


def segments(n: int) -> list[str]:
    return [f"fc00:{i + 1:x}::e" for i in range(n)]


@contextmanager
def bench_path() -> Iterator[dict[str, netns.Netns]]:
    netns.cleanup_stale("icpnb")
    names = {role: netns.unique_name("icpnb", role) for role in ("gen", "dut", "sink")}
    made: dict[str, netns.Netns] = {}
    try:
        for role, name in names.items():
            made[role] = netns.create(name)
        netns.add_veth(made["gen"], "g0", made["dut"], "d1", a_mac=MAC["g0"], b_mac=MAC["d1"])
        netns.add_veth(made["dut"], "d2", made["sink"], "s0", a_mac=MAC["d2"], b_mac=MAC["s0"])
        for role, ifs in (("gen", ["g0"]), ("dut", ["d1", "d2"]), ("sink", ["s0"])):
            for i in ifs:
                made[role].ip("link", "set", i, "up")
        made["dut"].sysctl({"net.ipv6.conf.all.forwarding": 1, "net.ipv6.conf.all.seg6_enabled": 1})
        yield made
    finally:
        for ns in made.values():
            ns.delete()


def frame(payload: int) -> bytes:
    pkt = (
        Ether(src=MAC["g0"], dst=MAC["d1"])
        / IPv6(src="2001:db8:a::1", dst=DST, hlim=64)
        / UDP(sport=1000, dport=2000)
        / Raw(bytes(payload))
    )
    return bytes(pkt)


def trafgen_conf(data: bytes, path: Path) -> None:
    path.write_text("{ " + ", ".join(f"0x{b:02x}" for b in data) + " }\n")


def sink_count(obj: BPFObject) -> int:
    raw = obj.map("sink_count").lookup(struct.pack("I", 0))
    return sum(struct.unpack(f"{len(raw) // 8}Q", raw)) if raw else 0


def measure(ns: dict[str, netns.Netns], conf: Path, seconds: float, obj: BPFObject) -> float:
    """Frames per second reaching the sink while trafgen sends a fixed count (it exits by itself;
    the count is sized from a quick calibration run so that a run lasts about `seconds`)."""
    count = int(200_000 * seconds)
    argv = ["ip", "netns", "exec", ns["gen"].name, "trafgen", "--dev", "g0", "--conf", str(conf)]
    argv += ["--cpus", "1", "--num", str(count)]
    start, t0 = sink_count(obj), time.perf_counter()
    subprocess.run(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
        timeout=seconds * 20 + 10,
    )
    t1 = time.perf_counter()
    time.sleep(0.05)  # frames still in flight
    return (sink_count(obj) - start) / (t1 - t0)


def kernel_routes(ns: netns.Netns, segs: list[str] | None) -> None:
    ns.ip("-6", "neigh", "replace", "fe80::2", "lladdr", MAC["s0"], "dev", "d2", "nud", "permanent")
    ns.ip("-6", "route", "replace", "fc00::/16", "via", "fe80::2", "dev", "d2")
    if segs is None:
        ns.ip("-6", "route", "replace", "2001:db8:b::/64", "via", "fe80::2", "dev", "d2")
    else:
        ns.ip("sr", "tunsrc", "set", "fc00:a::1")  # the outer source, as icpn_node's `source`
        ns.ip(
            "-6",
            "route",
            "replace",
            "2001:db8:b::/64",
            "encap",
            "seg6",
            "mode",
            "encap",
            "segs",
            ",".join(segs),
            "dev",
            "d2",
        )


def headend_node(segs: list[str]) -> dict[str, object]:
    return {
        "name": "bench-headend",
        "role": "headend",
        "node_id": 1,
        "source": "fc00:a::1",
        "ports": [{"index": 1, "mac": MAC["d1"]}, {"index": 2, "mac": MAC["d2"]}],
        "routes": [{"prefix": "fc00::/16", "port": 2, "mac": MAC["s0"]}],
        "policies": [
            {"name": "p", "match": {"dst": "2001:db8:b::/64"}, "sid_lists": [{"segments": segs}]}
        ],
    }


def start_headend(dp: EBPFDataPlane, segs: list[str]) -> None:
    """Configure icpn_node as the headend and attach it to the DUT's ports (in the DUT ns)."""
    dp.configure(node_from_dict(headend_node(segs), "bench"))
    dp.attach({1: att.ifindex_of("d1"), 2: att.ifindex_of("d2")}, "native")


def run(
    seconds: float, seg_counts: list[int], payloads: list[int]
) -> list[tuple[int, int, float, float, float]]:
    rows = []
    with bench_path() as ns, tempfile.TemporaryDirectory() as tmp:
        obj = BPFObject(SINK_OBJ)
        obj.load()

        def attach_sink() -> None:
            att.attach_xdp(att.ifindex_of("s0"), obj.program("icpn_sink").fd, "native")

        ns["sink"].run(attach_sink)
        for payload in payloads:
            conf = Path(tmp) / f"p{payload}.cfg"
            trafgen_conf(frame(payload), conf)
            kernel_routes(ns["dut"], None)
            plain = measure(ns, conf, seconds, obj)
            for n in seg_counts:
                segs = segments(n)
                kernel_routes(ns["dut"], segs)
                kern = measure(ns, conf, seconds, obj)
                ns["dut"].ip("-6", "route", "del", "2001:db8:b::/64")
                dp = EBPFDataPlane()
                ns["dut"].run(functools.partial(start_headend, dp, segs))
                try:
                    xdp = measure(ns, conf, seconds, obj)
                finally:
                    ns["dut"].run(dp.detach)
                    dp.close()
                rows.append((n, payload, xdp, kern, plain))
                print(
                    f"  {n} SIDs, {payload:4d} B payload: XDP {xdp:10.0f}  kernel seg6 {kern:10.0f}"
                    f"  forwarding {plain:10.0f} pps  XDP/kernel {xdp / max(kern, 1):5.2f}x",
                    flush=True,
                )
        obj.close()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--segments", default="1,4,8")
    ap.add_argument("--payloads", default="64,1000")
    args = ap.parse_args()
    if shutil.which("trafgen") is None:
        print(
            "srv6_path: trafgen (Debian package netsniff-ng) is needed: sudo make deps",
            file=sys.stderr,
        )
        return 2
    if not SINK_OBJ.exists():
        print("srv6_path: eBPF objects not built: make build", file=sys.stderr)
        return 2
    print("veth path gen -> dut -> sink, frames/s delivered (side by side in this run):")
    rows = run(
        args.seconds,
        [int(x) for x in args.segments.split(",")],
        [int(x) for x in args.payloads.split(",")],
    )
    ratios = [x / max(k, 1) for _, _, x, k, _ in rows]
    bound = all(abs(x - p) / max(p, 1) < 0.15 for _, _, x, _, p in rows)
    if bound:
        print(
            "note: XDP, kernel seg6 and plain forwarding all run at about the generator's rate:"
            " the path is generator-bound here, so the ratio below does not measure the DUT"
        )
    print(
        f"XDP H.Encaps / kernel seg6 encap: min {min(ratios):.2f}x, max {max(ratios):.2f}x"
        f" (target >= 2x): {'met' if min(ratios) >= 2 else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
