"""One emulated link of 15 ms, side by side in one run: a plain veth pair (no emulation), ICPN's
link element (icpn_linkd, docs/links.md) and netem where the kernel has it.

    sudo .venv/bin/python bench/links.py [--seconds 2] [--paced-fps 80000]   (icpn bench links)

Traffic: `icpn_linkd --gen` in namespace a sends test frames (sequence number and its
CLOCK_MONOTONIC send time in the payload) out of eth0; `icpn_linkd --sink` in namespace b counts
them and takes each one's one-way delay from the kernel's receive stamp (same machine, same
clock). Printed per setup: frames/s delivered when the sender blasts 64-byte and 1514-byte
(1,500-byte MTU) frames; frames/s delivered and the added-delay error (measured one-way delay
minus the configured 15 ms: p50/p99/max) at a paced 80,000 frames/s of 1514 bytes; loss measured
over 100,000 frames at a configured 1% against the binomial 99% interval; CPU time per frame of
the element's process (/proc/<pid>/stat) and of the whole machine (/proc/stat) over the paced run.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import machine_busy_s, print_machine, proc_cpu_s

from pyctl import kernelfeatures, netns
from pyctl.model.link import LinkModel
from pyctl.net.linkd import LinkElement, Sink, Spawn, generate, spawn_in_netns

PREFIX = "icpnb-lk"
DELAY_MS = 15.0
LOSS_PCT = 1.0
LOSS_FRAMES = 100_000
LOSS_FPS = 25_000  # well below what each setup carries: only the model loses frames
RT_PRIORITY = 10  # the "(FIFO)" column: the element scheduled SCHED_FIFO
LIGHT_FPS = 5_000  # the delay error where nothing queues
TARGET_FPS = 80_000
TARGET_P99_US = 200.0


# The element on one CPU, the test traffic (generator and sink) on another: on a 2-CPU VM three
# busy processes unpinned measure the scheduler, and a SCHED_FIFO element starves the sink.
CPUS = os.cpu_count() or 1
TRAFFIC_CPU, ELEMENT_CPU = 0, CPUS - 1


def on_cpu(spawn: Spawn, cpu: int) -> Spawn:
    """`spawn` with the process pinned to `cpu` (taskset execs it: the pid is the program's)."""

    def pinned(argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        return spawn(["taskset", "-c", str(cpu), *argv], **kw)

    return pinned


def traffic(ns: netns.Netns) -> Spawn:
    return on_cpu(spawn_in_netns(ns.name), TRAFFIC_CPU)


@dataclass
class Setup:
    """Namespaces a and b joined by one link, emulated one way or another."""

    name: str
    a: netns.Netns
    b: netns.Netns
    element: LinkElement | None = None
    made: list[netns.Netns] = field(default_factory=list)
    set_loss: Callable[[float], None] = lambda pct: None

    def forwarded(self) -> int:
        if self.element is None:
            return 0
        return self.element.stats()["ab"].a2b.tx

    def settle(self, timeout_s: float = 10) -> None:
        """Wait until the element has sent what it holds (a blast leaves a backlog)."""
        deadline = time.monotonic() + timeout_s
        while self.element is not None and time.monotonic() < deadline:
            st = self.element.stats()["ab"]
            if st.a2b.in_flight == 0 and st.b2a.in_flight == 0:
                break
            time.sleep(0.05)
        time.sleep(0.3)  # and the socket buffers drain

    def model_lost(self) -> int:
        if self.element is None:
            return 0
        return self.element.stats()["ab"].a2b.dropped_loss

    def received(self) -> int:
        if self.element is None:
            return 0
        return self.element.stats()["ab"].a2b.rx


def _pair(role: str) -> tuple[netns.Netns, netns.Netns, list[netns.Netns]]:
    a = netns.create(netns.unique_name(PREFIX, f"{role}a"))
    b = netns.create(netns.unique_name(PREFIX, f"{role}b"))
    return a, b, [a, b]


@contextmanager
def plain() -> Iterator[Setup]:
    a, b, made = _pair("p")
    try:
        netns.add_veth(a, "eth0", b, "eth0")
        a.ip("link", "set", "eth0", "up")
        b.ip("link", "set", "eth0", "up")
        yield Setup("plain veth", a, b, made=made)
    finally:
        for ns in made:
            ns.delete()


@contextmanager
def icpn(rt_priority: int | None = None) -> Iterator[Setup]:
    a, b, made = _pair("i")
    el = None
    try:
        lns = netns.create(netns.unique_name(PREFIX, "il"))
        made.append(lns)
        netns.add_veth(a, "eth0", lns, "La")
        netns.add_veth(b, "eth0", lns, "Lb")
        a.ip("link", "set", "eth0", "up")
        b.ip("link", "set", "eth0", "up")
        el = LinkElement(
            on_cpu(spawn_in_netns(lns.name), ELEMENT_CPU), seed=1, rt_priority=rt_priority
        )
        # no queue limit (netem's below is set out of reach too): blasts measure carrying
        el.add("ab", "La", "Lb", LinkModel(delay_ms=DELAY_MS, queue_packets=None))
        element = el

        def set_loss(pct: float) -> None:
            model = LinkModel(delay_ms=DELAY_MS, loss_pct=pct, queue_packets=None)
            element.set("ab", "a2b", model)

        name = "icpn element" + (" (FIFO)" if rt_priority else "")
        yield Setup(name, a, b, el, made, set_loss)
    finally:
        if el is not None:
            el.stop()
        for ns in made:
            ns.delete()


@contextmanager
def netem() -> Iterator[Setup]:
    a, b, made = _pair("n")
    try:
        netns.add_veth(a, "eth0", b, "eth0")
        a.ip("link", "set", "eth0", "up")
        b.ip("link", "set", "eth0", "up")

        def qdisc(verb: str, loss: float) -> None:
            argv = ["ip", "netns", "exec", a.name, "tc", "qdisc", verb, "dev", "eth0", "root"]
            argv += ["netem", "delay", f"{DELAY_MS}ms", "limit", "100000"]
            argv += ["loss", f"{loss}%"] if loss else []
            subprocess.run(argv, check=True, capture_output=True)

        qdisc("add", 0)
        yield Setup("netem", a, b, made=made, set_loss=lambda pct: qdisc("change", pct))
    finally:
        for ns in made:
            ns.delete()


@dataclass
class Figures:
    fps_64: float = 0
    fps_1514: float = 0
    paced_fps: float = 0
    delay_err_us: tuple[float, float, float] = (0, 0, 0)
    light_err_us: tuple[float, float, float] = (0, 0, 0)
    loss_pct: float = 0
    loss_in_interval: bool = False
    model_loss: tuple[float, bool, int] | None = None  # %, in the 99% interval, frames seen
    element_cpu_us: float | None = None
    machine_cpu_us: float = 0


def blast(s: Setup, size: int, seconds: float) -> float:
    sink = Sink(traffic(s.b), "eth0", duration_s=seconds + 30, idle_ms=400)
    rx0 = s.received()
    try:
        sent = generate(traffic(s.a), "eth0", size, duration_s=seconds)
    finally:
        got = sink.result()
    fps = got.received / got.span_s if got.span_s > 0 else 0.0
    where = f", {s.received() - rx0:,} reached the element" if s.element else ""
    print(f"  {s.name}, {size} B blast: sent {sent['sent']:,.0f} in {sent['seconds']:.2f} s"
          f"{where}, {got.received:,} delivered ({fps:,.0f}/s)")  # fmt: skip
    return fps


def paced(
    s: Setup, fps: float, seconds: float, configured_ms: float
) -> tuple[float, tuple[float, float, float], float | None, float]:
    """Delivered frames/s, delay error (p50, p99, max in us), element and machine CPU us/frame."""
    sink = Sink(traffic(s.b), "eth0", duration_s=seconds + 30, idle_ms=400)
    pid = s.element.pid if s.element else None
    cpu0, busy0, fwd0 = proc_cpu_s(pid) if pid else 0.0, machine_busy_s(), s.forwarded()
    try:
        generate(traffic(s.a), "eth0", 1514, rate_fps=fps, duration_s=seconds)
    finally:
        got = sink.result()
    busy = machine_busy_s() - busy0
    d, conf = got.delay_ns, configured_ms * 1e6
    err = ((d["p50"] - conf) / 1e3, (d["p99"] - conf) / 1e3, (d["max"] - conf) / 1e3)
    cpu = None
    if pid:
        cpu = (proc_cpu_s(pid) - cpu0) * 1e6 / max(1, s.forwarded() - fwd0)
    fps_got = got.received / got.span_s if got.span_s > 0 else 0.0
    return fps_got, err, cpu, busy * 1e6 / max(1, got.received)


def measure(s: Setup, seconds: float, paced_fps: float, configured_ms: float) -> Figures:
    f = Figures()
    # light load first: nothing an overloaded run left queued can distort it
    _, f.light_err_us, _, _ = paced(s, LIGHT_FPS, seconds, configured_ms)
    f.paced_fps, f.delay_err_us, f.element_cpu_us, f.machine_cpu_us = paced(
        s, paced_fps, seconds, configured_ms
    )
    s.settle()
    f.fps_64 = blast(s, 64, seconds)
    s.settle()
    f.fps_1514 = blast(s, 1514, seconds)
    s.settle()
    if not configured_ms:
        return f
    # loss accuracy: end to end, and of the frames that reached the element (the model's own)
    s.set_loss(LOSS_PCT)
    sink = Sink(traffic(s.b), "eth0", duration_s=60, idle_ms=400)
    rx0, lost0 = s.received(), s.model_lost()
    try:
        sent = generate(traffic(s.a), "eth0", 64, rate_fps=LOSS_FPS,
                        count=LOSS_FRAMES, duration_s=30)  # fmt: skip
    finally:
        got = sink.result()
    n = int(sent["sent"])
    f.loss_pct, f.loss_in_interval = n and 100 * (n - got.received) / n, in_99(n, n - got.received)
    if s.element:
        m, lost = s.received() - rx0, s.model_lost() - lost0
        f.model_loss = (100 * lost / m, in_99(m, lost), m)
    return f


def in_99(n: int, lost: int) -> bool:
    """Inside the binomial's central 99% (normal approximation: n*p is about a thousand)."""
    p = LOSS_PCT / 100
    half = 2.576 * math.sqrt(n * p * (1 - p))
    return n * p - half <= lost <= n * p + half


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="length of each traffic run")
    ap.add_argument("--paced-fps", type=float, default=TARGET_FPS, help="the paced load")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench links: needs root (namespaces, AF_PACKET, XDP)")
        return 2
    netns.cleanup_stale(PREFIX)
    print_machine()
    print(f"link: {DELAY_MS:g} ms one way; frames 64 B and 1514 B (1,500-byte MTU), no FCS")
    setups: list[tuple[Callable[[], object], float]] = [
        (plain, 0.0),
        (icpn, DELAY_MS),
        (lambda: icpn(RT_PRIORITY), DELAY_MS),
    ]
    have_netem = kernelfeatures.present("netem")
    if have_netem:
        setups.append((netem, DELAY_MS))
    else:
        print("netem: absent in this kernel (tc qdisc add ... netem fails): not compared")
    results: dict[str, Figures] = {}
    for make, conf in setups:
        with make() as s:  # type: ignore[attr-defined]
            results[s.name] = measure(s, args.seconds, args.paced_fps, conf)
    names = list(results)
    rows: list[tuple[str, Callable[[Figures], str]]] = [
        ("frames/s delivered, 64 B, blast", lambda f: f"{f.fps_64:,.0f}"),
        ("frames/s delivered, 1514 B, blast", lambda f: f"{f.fps_1514:,.0f}"),
        (f"frames/s delivered, 1514 B, paced {args.paced_fps:,.0f}",
         lambda f: f"{f.paced_fps:,.0f}"),
        ("  delay error p50/p99/max us",
         lambda f: "/".join(f"{v:.0f}" for v in f.delay_err_us)),
        (f"delay error p50/p99/max us at {LIGHT_FPS:,}/s",
         lambda f: "/".join(f"{v:.0f}" for v in f.light_err_us)),
        (f"loss {LOSS_PCT:g}% over {LOSS_FRAMES:,}, end to end %",
         lambda f: f"{f.loss_pct:.3f} ({'in' if f.loss_in_interval else 'OUT of'} 99%)"),
        ("  of the frames the element saw %",
         lambda f: "-" if f.model_loss is None else
         f"{f.model_loss[0]:.3f} ({'in' if f.model_loss[1] else 'OUT of'} 99%)"),
        ("CPU us/frame, element process (paced)",
         lambda f: "-" if f.element_cpu_us is None else f"{f.element_cpu_us:.2f}"),
        ("CPU us/frame, whole machine (paced) *", lambda f: f"{f.machine_cpu_us:.2f}"),
    ]  # fmt: skip
    w = 40
    print(f"{'':{w}}" + "".join(f"{n:>22}" for n in names))
    for label, fmt in rows:
        cells = [fmt(results[n]) if not (n == "plain veth" and "loss" in label) else "-"
                 for n in names]  # fmt: skip
        print(f"{label:{w}}" + "".join(f"{c:>22}" for c in cells))
    print("* busy time of every CPU over the run / frames: includes whatever else the machine ran")
    print(f"(FIFO): the element runs SCHED_FIFO priority {RT_PRIORITY} (LinkElement rt_priority)")
    pl = results["plain veth"]
    for name in ("icpn element", "icpn element (FIFO)"):
        ic = results[name]
        ok_fps = ic.paced_fps >= 0.99 * TARGET_FPS and args.paced_fps >= TARGET_FPS
        ok_p99 = ic.delay_err_us[1] < TARGET_P99_US
        alone = 1e6 / (ic.element_cpu_us or 1e9)
        print(f"target: {name} carries >= {TARGET_FPS:,} frames/s of 1514 B: "
              f"{'PASS' if ok_fps else 'FAIL'} ({ic.paced_fps:,.0f} paced, {ic.fps_1514:,.0f} "
              f"blast; plain veth {pl.fps_1514:,.0f} blast; {alone:,.0f}/s per core of the "
              f"element's CPU/frame)")  # fmt: skip
        print(f"target: {name} p99 delay error < {TARGET_P99_US:.0f} us at the paced load: "
              f"{'PASS' if ok_p99 else 'FAIL'} ({ic.delay_err_us[1]:,.0f} us;"
              f" {ic.light_err_us[1]:,.0f} us at {LIGHT_FPS:,}/s)")  # fmt: skip
    if have_netem:
        ne = results["netem"]
        ic = results["icpn element"]
        added_ic = ic.machine_cpu_us - pl.machine_cpu_us
        added_ne = ne.machine_cpu_us - pl.machine_cpu_us
        ratio = added_ic / added_ne if added_ne > 0 else float("inf")
        print(f"target: icpn CPU/frame <= 2x netem's (added over plain veth, whole machine): "
              f"{'PASS' if ratio <= 2 else 'FAIL'} ({ratio:.2f}x)")  # fmt: skip
    else:
        print("target: icpn CPU/frame <= 2x netem's: netem absent: not compared")
    return 0


if __name__ == "__main__":
    sys.exit(main())
