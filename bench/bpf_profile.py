"""Where icpn_node's time goes, line by line (root and perf needed).

    .venv/bin/python bench/bpf_profile.py ["End + IFIT transit"] [--seconds S] [--top N]

Runs one of bench/ebpf_srv6.py's scenarios through icpn_replay (warm, repeat=100000 a run) for S
seconds while `perf record -e cpu-clock -a` samples every CPU, then maps each sample that fell in
the program's JIT-ed code to the source line the BTF line info names (`perf annotate` cannot
disassemble BPF where perf lacks libopcodes, and this VM has no PMU counters). Prints the share of
the program's samples per function and per source line.

Reading it: a sample names the instruction after the one that was slow, so the line right after a
call site carries the cost of that call's return (on a CPU whose kernel returns through the SRSO
safe-RET thunk, every return is mispredicted: docs/ebpf-performance.md).
"""

from __future__ import annotations

import argparse
import bisect
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from ebpf_srv6 import scenarios
from machine import print_machine
from replay import Replay

from pyctl.model.node import PacketContext
from pyctl.targets.ebpf import EBPFDataPlane
from pyctl.targets.ebpf.bpfobject import BPFObject, JitImage
from pyctl.targets.ebpf.dataplane import BUILD_DIR, NODE_PROGRAM


def _samples(perf: str, data: Path) -> list[tuple[int, str]]:
    out = subprocess.run(
        [perf, "script", "-i", str(data), "-F", "ip,sym"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if parts:
            rows.append((int(parts[0], 16), parts[1] if len(parts) > 1 else "?"))
    return rows


def report(img: JitImage, samples: list[tuple[int, str]], top: int) -> None:
    starts = [ln.address for ln in img.lines]
    funcs: Counter[str] = Counter()
    lines: Counter[tuple[str, int, str]] = Counter()
    for addr, sym in samples:
        if not any(a <= addr < a + n for a, n, _ in img.funcs):
            continue
        funcs[sym.removeprefix("bpf_prog_").split("_", 1)[-1]] += 1
        k = bisect.bisect_right(starts, addr) - 1
        if k >= 0:
            ln = img.lines[k]
            lines[(ln.file, ln.line, ln.source[:80])] += 1
    n = sum(funcs.values())
    print(f"{len(samples)} samples, {n} in the program ({100 * n / max(len(samples), 1):.0f}%)")
    if not n:
        return
    print("\nby function:")
    for name, c in funcs.most_common():
        print(f"  {100 * c / n:5.1f}%  {name}")
    print(f"\nby source line (top {top}):")
    for (file, line, src), c in lines.most_common(top):
        print(f"  {100 * c / n:5.1f}%  {file}:{line:<5} {src}")


def main() -> int:
    names = [s[0] for s in scenarios()]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario", nargs="?", default="End + IFIT transit", choices=names)
    ap.add_argument("--seconds", type=float, default=5.0, help="how long perf samples")
    ap.add_argument("--top", type=int, default=40, help="source lines to print")
    args = ap.parse_args()
    print_machine()
    perf = shutil.which("perf")
    if perf is None:
        print("bpf_profile: needs perf (Debian: apt install linux-perf)", file=sys.stderr)
        return 1
    reason = EBPFDataPlane.unavailable()
    if reason is not None:
        print(f"bpf_profile: the eBPF plane cannot run here: {reason}", file=sys.stderr)
        return 1
    _, node, frame, port = next(s for s in scenarios() if s[0] == args.scenario)
    bench, dp = BPFObject(BUILD_DIR / "icpn_bench.bpf.o"), EBPFDataPlane()
    try:
        bench.load()
        dp.configure(node)
        dp.process(frame, PacketContext(in_port=port, time_us=1000))
        prog = dp.obj.program(NODE_PROGRAM)
        img = prog.jit_image()
        replay = Replay(bench)
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "perf.data"
            print(f"bpf_profile: {args.scenario}, {args.seconds:g} s ...", file=sys.stderr)
            rec = subprocess.Popen(
                [perf, "record", "-q", "-e", "cpu-clock", "-F", "20000", "-a"]
                + ["-o", str(data), "--", "sleep", str(args.seconds)],
                stdout=subprocess.DEVNULL,
            )
            while rec.poll() is None:
                replay.run(prog, frame, 100000)
                dp.drain_aux()
            if rec.returncode != 0:
                print(f"bpf_profile: perf record exited {rec.returncode}", file=sys.stderr)
                return 1
            samples = _samples(perf, data)
    finally:
        dp.close()
        bench.close()
    report(img, samples, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
