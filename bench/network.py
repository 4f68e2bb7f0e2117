"""A network of 100 to 1,000 nodes planned, brought up, programmed, pinged across its WAN and torn
down, each phase timed, with memory per node and the scaling exponent.

    sudo .venv/bin/python bench/network.py [--sizes 100,300,1000] [--runner ebpf|reference|none]
                                           [--hosts-per-leaf 32] [--floor]

The topology of N nodes (`fabric`): two data-centre sites, each a leaf-spine fabric with its
hosts (every leaf linked to every spine, hosts on the leaves) and a border router linked to every
spine; the borders meet over a WAN of two routers (5 ms links, about 1,000 km each). Each leaf
of site 1 has a bidirectional SRv6 policy to the leaf of the same number at site 2 over either
WAN router. Every switch node is programmed from these intents by the controller (routes, SIDs,
policies); every link runs through the link element with its model.

Printed per size: plan (intent to every table entry), bring-up (namespaces, links and their
element, addresses), programming (every switch node's program loaded, its maps written and
attached: `--runner ebpf`), the first ping across the WAN (a host of site 1 to one of site 2,
end to end through headend, WAN and egress, from the first attempt to the first reply),
teardown, memory per node (over all nodes: what the run's processes hold, as proportional set
size, plus the growth of the kernel memory that namespaces, interfaces and BPF maps take:
unreclaimable slab, page tables, stacks, per-CPU and vmalloc; the machine's MemAvailable swung
by more than the whole figure with other work on it) and the kernel memory of the eBPF nodes'
programs and maps (the `memlock` of their file descriptors, per eBPF node). After teardown it
checks that nothing is left: the run's processes, network namespaces (every one a process or
/run/netns holds) and interfaces in the root namespace. Then the scaling exponent of the total
time (fit of log t against log n over the sizes) and the target: 1,000 nodes planned, up,
programmed and answering a ping end to end in under 120 s, at no more than 1 MB per node,
nothing left behind.

`--floor` also builds bare Mininet (namespaces and veths only) of the same nodes and links and
prints the old ratio target (100 nodes within 4.3x of it).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from machine import print_machine, target

from pyctl.controller.plan import Plan, make_plan
from pyctl.errors import ICPNError
from pyctl.model.fields import Field
from pyctl.model.node import NodeConfig
from pyctl.model.topology import Topology, topology_from_field
from pyctl.net.emulation import Emulation, SwitchRunner, port_rates
from pyctl.net.runners import EBPFSwitchRunner, SoftwareSwitchRunner, port_buffers

TARGET_RATIO = 30.0 / 7.0  # --floor: 100 nodes in 30 s where bare Mininet took ~7 s (DESIGN.md)
TARGET_NODES = 1000
TARGET_S = 120.0
TARGET_MB = 1.0
PING_TIMEOUT_S = 30.0
WAN_DELAY_MS = 5.0  # one WAN link: about 1,000 km of fibre


def fabric(n: int, hosts_per_leaf: int = 48) -> dict[str, Any]:
    """A topology of exactly n nodes: two leaf-spine sites with hosts, a border each, a WAN of
    two routers. Leaves hold up to `hosts_per_leaf` hosts; the node count decides the leaves."""
    wan = ["wan1", "wan2"]
    per_site = (n - len(wan)) // 2
    spines = 2 if per_site < 250 else 4
    leaves = max(2, round((per_site - spines - 1) / (hosts_per_leaf + 1)))
    hosts = per_site - spines - 1 - leaves
    if hosts < leaves:
        raise ICPNError(f"--sizes: {n} nodes are too few for a fabric of two sites (>= 16)")
    nodes: list[dict[str, Any]] = [{"name": w, "kind": "ebpf", "role": "transit"} for w in wan]
    links: list[dict[str, Any]] = []
    policies: list[dict[str, Any]] = []
    extra = n - len(wan) - 2 * per_site  # an odd count: one more host at site 1
    for s in (1, 2):
        site = f"dc{s}"
        border = f"{site}-border"
        nodes.append({"name": border, "kind": "ebpf", "role": "transit", "site": site})
        for w in wan:
            links.append({"a": border, "b": w, "bw_mbit": 10000, "delay_ms": WAN_DELAY_MS})
        for j in range(1, spines + 1):
            spine = f"{site}-spine{j}"
            nodes.append({"name": spine, "kind": "ebpf", "role": "transit", "site": site})
            links.append({"a": spine, "b": border, "bw_mbit": 40000})
        site_hosts = hosts + (extra if s == 1 else 0)
        for j in range(1, leaves + 1):
            leaf = f"{site}-leaf{j}"
            role = "headend" if s == 1 else "egress"  # the ends of the policies
            nodes.append({"name": leaf, "kind": "ebpf", "role": role, "site": site})
            for k in range(1, spines + 1):
                links.append({"a": leaf, "b": f"{site}-spine{k}", "bw_mbit": 40000})
            # hosts spread evenly: leaf j takes every leaves-th host
            for h in range(j, site_hosts + 1, leaves):
                host = f"{site}-h{h}"
                nodes.append({"name": host, "kind": "host", "site": site})
                links.append({"a": host, "b": leaf, "bw_mbit": 10000})
    for j in range(1, leaves + 1):
        policies.append(
            {
                "name": f"leaf{j}",
                "headend": f"dc1-leaf{j}",
                "egress": f"dc2-leaf{j}",
                "paths": [["wan1"], ["wan2"]],
            }
        )
    return {
        "name": f"fabric-{n}",
        "description": f"two leaf-spine sites and a WAN, {n} nodes (bench/network.py)",
        "sites": [{"name": "dc1"}, {"name": "dc2"}],
        "nodes": nodes,
        "links": links,
        "policies": policies,
    }


def ping_pair(topo: Topology, plan: Plan) -> tuple[str, str]:
    """A host on leaf 1 of site 1 and one on leaf 1 of site 2 (the first policy's ends)."""
    pol = topo.policies[0]
    src = next(h for h in plan.hosts.values() if h.switch == pol.headend)
    dst = next(h for h in plan.hosts.values() if h.switch == pol.egress)
    return src.name, dst.name


class NoopRunner:
    def start(self, node: Any, cfg: NodeConfig, ifnames: dict[int, str], run_dir: Path) -> None:
        pass

    def apply(self, cfg: NodeConfig) -> None:
        pass

    def stop(self) -> None:
        pass


KERNEL_FIELDS = ("SUnreclaim", "KernelStack", "PageTables", "Percpu", "VmallocUsed")


def kernel_memory() -> int:
    """Bytes of kernel memory that namespaces, interfaces, processes and BPF maps take and
    nothing gives back under pressure (/proc/meminfo: KERNEL_FIELDS)."""
    fields = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        fields[key] = int(rest.split()[0]) * 1024
    return sum(fields[k] for k in KERNEL_FIELDS)


def pss(pids: list[int]) -> int:
    """Proportional set size of processes (shared pages split among their users)."""
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        m = re.search(r"^Pss:\s+(\d+)", text, re.M)
        total += int(m.group(1)) * 1024 if m else 0
    return total


def bpf_memlock() -> int:
    """Bytes of kernel memory charged to this process's BPF maps and programs."""
    total = 0
    for fd in os.listdir("/proc/self/fdinfo"):
        try:
            m = re.search(r"^memlock:\s+(\d+)", Path(f"/proc/self/fdinfo/{fd}").read_text(), re.M)
        except OSError:
            continue
        if m:
            total += int(m.group(1))
    return total


def net_namespaces(pids: list[int] | None = None) -> set[int]:
    """Inodes of the network namespaces of `pids`, or of every one a process or /run/netns
    holds."""
    out = set()
    procs = pids if pids is not None else [int(p) for p in os.listdir("/proc") if p.isdigit()]
    paths = [Path(f"/proc/{p}/ns/net") for p in procs]
    run = Path("/run/netns")
    paths += list(run.iterdir()) if run.is_dir() and pids is None else []
    for p in paths:
        try:
            out.add(p.stat().st_ino)
        except OSError:
            continue
    return out


def root_links(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=False)
    names = [line.split(": ")[1].split("@")[0] for line in out.stdout.splitlines() if ": " in line]
    return [n for n in names if n.startswith(prefix)]


def first_ping(emu: Emulation, src: str, dst: str) -> float:
    """Seconds from the first ping attempt to the first reply (one echo a second at most)."""
    addr = emu.plan.hosts[dst].address
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < PING_TIMEOUT_S:
        out = emu.nodes[src].cmd(f"ping -6 -n -c 1 -W 1 {addr}")
        if " 1 received" in out:
            return time.perf_counter() - t0
    raise ICPNError(f"ping {src} -> {dst} ({addr}): no reply within {PING_TIMEOUT_S:g} s")


def bare_mininet(plan: Plan) -> float:
    """Seconds to build and stop the plan's nodes and links as bare Mininet: one namespace a
    node, one veth pair a link, nothing configured in them (the floor of a bring-up)."""
    from mininet.log import setLogLevel
    from mininet.net import Mininet

    setLogLevel("error")
    prefix = f"ib{os.getpid() & 0xFFF:03x}"  # interface names live in the root namespace
    names = {name: f"{prefix}n{i}" for i, name in enumerate([*plan.hosts, *plan.switches])}
    t0 = time.perf_counter()
    net = Mininet(topo=None, build=False, controller=None, autoSetMacs=False)
    try:
        nodes = {name: net.addHost(short, ip=None) for name, short in names.items()}
        done: set[tuple[str, int]] = set()
        for (a, ap), (b, bp) in plan.wiring.items():
            if (a, ap) not in done:
                done.update({(a, ap), (b, bp)})
                net.addLink(
                    nodes[a],
                    nodes[b],
                    intfName1=f"{names[a]}p{ap}",
                    intfName2=f"{names[b]}p{bp}",
                )
        net.build()
    finally:
        net.stop()
    return time.perf_counter() - t0


def measure(n: int, runner: str, hosts_per_leaf: int, floor: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    topo = topology_from_field(Field(fabric(n, hosts_per_leaf), "", f"fabric-{n}"))
    plan = make_plan(topo)
    r: dict[str, Any] = {"plan": time.perf_counter() - t0, "nodes": len(topo.nodes)}
    r.update(switches=len(plan.switches), hosts=len(plan.hosts), links=len(topo.links))
    factories: dict[str, Callable[[str], SwitchRunner]] = {
        "none": lambda name: NoopRunner(),
        "reference": SoftwareSwitchRunner,
        "ebpf": lambda name: EBPFSwitchRunner(
            name, port_rates(topo, plan, name), port_buffers(topo, plan, name)
        ),
    }
    with tempfile.TemporaryDirectory() as tmp:
        emu = Emulation(topo, plan, Path(tmp), factories[runner], log=lambda _m: None)
        kernel, own, bpf = kernel_memory(), pss([os.getpid()]), bpf_memlock()
        pids: list[int] = []
        ours: set[int] = set()
        try:
            emu.start()
            t = emu.timings
            r["up"] = t["nodes"] + t["links"] + t["addresses"] + t["link element"]
            r["program"] = t["switches"]
            pids = [node.pid for node in emu.nodes.values()] + [emu.links_node.pid]
            element_pid = emu.element.pid if emu.element is not None else None
            pids += [element_pid] if element_pid is not None else []
            ours = net_namespaces(pids) - net_namespaces([os.getpid()])
            r["ping"] = first_ping(emu, *ping_pair(topo, plan)) if runner != "none" else 0.0
            parts = {
                "kernel": kernel_memory() - kernel,
                "node shells and icpn_linkd": pss(pids),
                "this process": pss([os.getpid()]) - own,
            }
            r["mem"] = sum(parts.values()) / r["nodes"]
            r["phases"] = ", ".join(f"{k} {v:.1f} s" for k, v in t.items())
            r["parts"] = ", ".join(f"{k} {v / r['nodes'] / 1e6:.2f}" for k, v in parts.items())
            r["bpf"] = (bpf_memlock() - bpf) / r["switches"]
        finally:
            t2 = time.perf_counter()
            emu.stop()
            r["down"] = time.perf_counter() - t2
        r["left"] = left_behind(emu.prefix, pids, ours)
    r["bare"] = bare_mininet(plan) if floor else None
    return r


def left_behind(prefix: str, pids: list[int], ours: set[int], wait_s: float = 30) -> str:
    """What the run left (its processes, its namespaces still held by a process or /run/netns,
    interfaces of its prefix in the root namespace), or "nothing"; waits up to wait_s."""
    deadline = time.monotonic() + wait_s
    while True:
        procs = [p for p in pids if Path(f"/proc/{p}").exists()]
        spaces = net_namespaces() & ours
        links = root_links(prefix)
        if not (procs or spaces or links) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    what = [f"{len(procs)} processes"] if procs else []
    what += [f"{len(spaces)} namespaces"] if spaces else []
    what += [f"{len(links)} root interfaces ({', '.join(links[:3])})"] if links else []
    return ", ".join(what) or "nothing"


def exponent(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of log t against log n."""
    if len(points) < 2:
        return None
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(t) for _, t in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="100,300,1000")
    ap.add_argument("--runner", choices=("ebpf", "reference", "none"), default="ebpf")
    ap.add_argument("--hosts-per-leaf", type=int, default=48)
    ap.add_argument("--floor", action="store_true", help="also time bare Mininet (old target)")
    args = ap.parse_args()
    try:
        sizes = [int(x) for x in args.sizes.split(",")]
    except ValueError:
        print(f"--sizes: {args.sizes!r} is not a comma-separated list of node counts")
        return 2
    print_machine()
    print(
        f"network: two leaf-spine sites and a WAN, switch runner {args.runner}, up to"
        f" {args.hosts_per_leaf} hosts a leaf; mem = the run's processes (Pss) and kernel memory"
        " growth over all nodes,"
        " bpf = kernel memory of programs and maps per eBPF node"
    )
    cols = ("nodes", "switch", "hosts", "links", "plan s", "up s", "program s", "ping s",
            "down s", "total s", "mem MB", "bpf MB", "left behind")  # fmt: skip
    widths = (6, 6, 6, 6, 7, 7, 9, 7, 7, 8, 7, 7, 0)
    print(" ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True)), flush=True)
    ok, points, big = True, [], None
    for n in sizes:
        try:
            r = measure(n, args.runner, args.hosts_per_leaf, args.floor)
        except (ICPNError, OSError) as e:  # one line, not a traceback
            print(f"{n:6d} nodes: {e}", flush=True)
            return 1
        total = r["plan"] + r["up"] + r["program"] + r["ping"] + r["down"]
        points.append((r["nodes"], total))
        print(
            f"{r['nodes']:6d} {r['switches']:6d} {r['hosts']:6d} {r['links']:6d}"
            f" {r['plan']:7.2f} {r['up']:7.2f} {r['program']:9.2f} {r['ping']:7.2f}"
            f" {r['down']:7.2f} {total:8.2f} {r['mem'] / 1e6:7.2f} {r['bpf'] / 1e6:7.2f}"
            f" {r['left']}",
            flush=True,
        )
        print(f"       bring-up and programming: {r['phases']}")
        print(f"       memory per node (MB): {r['parts']}", flush=True)
        if r["bare"] is not None:
            ok &= target(
                f"{r['nodes']} nodes planned, up, programmed and down",
                total / r["bare"],
                TARGET_RATIO,
                True,
                "bare Mininet",
            )
        if r["nodes"] >= TARGET_NODES:
            big = r
    k = exponent(points)
    span = f"{points[0][0]} -> {points[-1][0]} nodes" if points else ""
    print(f"scaling exponent of the total time: {k:.2f} ({span})" if k else "scaling: one size")
    if big is None:
        print(f"target {TARGET_NODES} nodes: skipped (no size of {TARGET_NODES} or more)")
        return 0 if ok else 1
    ready = big["plan"] + big["up"] + big["program"] + big["ping"]
    passed = ready < TARGET_S and big["mem"] <= TARGET_MB * 1e6 and big["left"] == "nothing"
    print(
        f"target {big['nodes']} nodes planned, up, programmed and answering a ping end to end:"
        f" {ready:.1f} s (< {TARGET_S:g} s), {big['mem'] / 1e6:.2f} MB per node"
        f" (<= {TARGET_MB:g} MB; eBPF programs and maps {big['bpf'] / 1e6:.2f} MB per eBPF"
        f" node), left behind: {big['left']}: {'PASS' if passed else 'MISS'}",
        flush=True,
    )
    return 0 if ok and passed else 1


if __name__ == "__main__":
    sys.exit(main())
