"""icpn_replay (ebpf/src/icpn_bench.bpf.c) in front of a program: its warm cost on a frame it
changes. Shared by bench/ebpf_srv6.py, bench/srv6_path.py and bench/bpf_profile.py."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable

from pyctl.errors import ICPNError
from pyctl.targets.ebpf import maps as M
from pyctl.targets.ebpf.bpfobject import BPFObject, Program, TestRun

REPLAY_HEAD = 256  # icpn_bench.bpf.c


class Replay:
    """icpn_replay puts the frame back as it was and tail-calls the program under test, so one
    test run with repeat=N runs it N times on the same input, warm."""

    def __init__(self, bench: BPFObject) -> None:
        self.prog = bench.program("icpn_replay")
        self.floor = bench.program("icpn_pass")
        self._frame = bench.map("replay_frame")
        self._to = bench.map("replay_to")

    def run(self, target: Program, frame: bytes, repeat: int, ctx: bytes | None = None) -> TestRun:
        head = frame[:REPLAY_HEAD]
        self._frame.update(M.u32_key(0), len(frame).to_bytes(4, sys.byteorder) + bytes(4) + head)
        self._to.update(M.u32_key(0), target.fd.to_bytes(4, sys.byteorder))
        return self.prog.test_run(frame, ctx=ctx, repeat=repeat)

    def cost(
        self,
        target: Program,
        frame: bytes,
        repeat: int,
        runs: int,
        floor: Program | None = None,
        ctx: bytes | None = None,
        same: Callable[[bytes, bytes], bool] | None = None,
    ) -> float | None:
        """Warm ns a packet minus `floor`'s (a do-nothing program by default), or None when
        replaying does not reproduce the single run's output (a program that changes the frame
        beyond what replay restores). `ctx`: the xdp_md to start from (an ingress ifindex);
        `same`: how outputs compare (equal bytes by default; a live node's timestamps differ)."""
        if len(frame) < REPLAY_HEAD:
            raise ICPNError(f"replay needs frames of {REPLAY_HEAD} bytes or more")
        replayed = self.run(target, frame, 3, ctx).data
        single = target.test_run(frame, ctx=ctx).data
        if not (same or bytes.__eq__)(replayed, single):
            return None
        node, base = [], []
        for _ in range(runs):  # interleaved: drift hits both alike
            node.append(self.run(target, frame, repeat, ctx).duration_ns)
            base.append(self.run(floor or self.floor, frame, repeat, ctx).duration_ns)
        return statistics.median(node) - statistics.median(base)

    def frame_ns(
        self, target: Program, frame: bytes, repeat: int, runs: int, ctx: bytes | None = None
    ) -> float:
        """Whole warm ns a frame of `target` through the replay, nothing subtracted: with
        icpn_redirect, the least an XDP program costs this frame here (a floor)."""
        return statistics.median(
            self.run(target, frame, repeat, ctx).duration_ns for _ in range(runs)
        )


def kernel_call_ns(bench: BPFObject) -> float:
    """One call into the kernel (a clock read: icpn_calls makes ten) minus the do-nothing
    program, repeat=10000, median of 30 runs."""
    small = bytes(100)

    def median(name: str) -> float:
        prog = bench.program(name)
        return statistics.median(prog.test_run(small, repeat=10000).duration_ns for _ in range(30))

    return (median("icpn_calls") - median("icpn_pass")) / 10
