"""Network bring-up, programming and teardown time for 10, 50 and 100 nodes, side by side.

    sudo .venv/bin/python bench/network.py [--sizes 10,50,100] [--runner reference|ebpf|none]

A synthetic topology of N nodes (half switches in a chain of pairs, half hosts, one collector)
is planned by the controller and brought up in Mininet. Printed per size: plan time (intent to
every table entry), bring-up (namespaces, links, shaping), programming (switch nodes started
with their configurations: a swnode process each, or the XDP program loaded, its maps written
and attached to every port with `--runner ebpf`), teardown, and the floor: bare Mininet, the
same number of namespaces joined by the same veths (no addresses, shaping or switch programs),
built and stopped in the same run. Target: the total within 4.3x the floor (the target was
100 nodes in 30 s on a VM where bare Mininet took about 7 s for 100 nodes).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from machine import print_machine, target

from pyctl.controller.plan import Plan, make_plan
from pyctl.model.fields import Field
from pyctl.model.node import NodeConfig
from pyctl.model.topology import topology_from_field
from pyctl.net.emulation import Emulation, SwitchRunner, port_rates
from pyctl.net.runners import EBPFSwitchRunner, SoftwareSwitchRunner, port_buffers

TARGET_RATIO = 30.0 / 7.0  # 100 nodes in 30 s where bare Mininet took ~7 s (DESIGN.md)


def synthetic(n: int) -> dict[str, Any]:
    """n nodes: s switches in a chain, one host per switch, a collector on the last switch."""
    switches = max(2, n // 2)
    hosts = n - switches - 1
    nodes: list[dict[str, Any]] = [
        {"name": f"s{i}", "kind": "ebpf", "role": "transit", "site": f"site{i % 2}"}
        for i in range(switches)
    ]
    nodes[0]["role"] = "headend"
    nodes[-1]["role"] = "egress"
    links = [{"a": f"s{i}", "b": f"s{i + 1}", "bw_mbit": 100} for i in range(switches - 1)]
    for h in range(hosts):
        # one host a switch: a switch holds at most 63 ports (constants.MAX_PORTS)
        sw = h % switches
        nodes.append({"name": f"h{h}", "kind": "host", "site": f"site{sw % 2}"})
        links.append({"a": f"h{h}", "b": f"s{sw}", "bw_mbit": 100})
    nodes.append({"name": "col", "kind": "collector"})
    links.append({"a": "col", "b": f"s{switches - 1}"})
    mid = [f"s{i}" for i in range(1, min(switches - 1, 7))]
    return {
        "name": f"bench-{n}",
        "sites": [{"name": "site0"}, {"name": "site1"}],
        "nodes": nodes,
        "links": links,
        "policies": [{"name": "p", "headend": "s0", "egress": f"s{switches - 1}", "paths": [mid]}],
    }


class NoopRunner:
    def start(self, node: Any, cfg: NodeConfig, ifnames: dict[int, str], run_dir: Path) -> None:
        pass

    def apply(self, cfg: NodeConfig) -> None:
        pass

    def stop(self) -> None:
        pass


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


def measure(n: int, runner: str) -> dict[str, float]:
    t0 = time.perf_counter()
    topo = topology_from_field(Field(synthetic(n), "", f"bench-{n}"))
    plan = make_plan(topo)
    t_plan = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        factories: dict[str, Callable[[str], SwitchRunner]] = {
            "none": lambda name: NoopRunner(),
            "reference": SoftwareSwitchRunner,
            "ebpf": lambda name: EBPFSwitchRunner(
                name, port_rates(topo, plan, name), port_buffers(topo, plan, name)
            ),
        }
        factory = factories[runner]
        emu = Emulation(topo, plan, Path(tmp), factory, log=lambda _m: None)
        t1 = time.perf_counter()
        emu.start()
        t_up = time.perf_counter() - t1
        t2 = time.perf_counter()
        emu.stop()
        t_down = time.perf_counter() - t2
    bare = bare_mininet(plan)
    return {"plan": t_plan, "up": t_up, "down": t_down, "bare": bare, "nodes": len(topo.nodes)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="10,50,100")
    ap.add_argument("--runner", choices=("reference", "ebpf", "none"), default="reference")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    print_machine()
    print(
        f"network bring-up, switch runner: {args.runner}; floor: bare Mininet (namespaces and"
        " veths only) of the same nodes and links, in the same run"
    )
    cols = ("nodes", "plan s", "up+program s", "down s", "total s", "bare s", "total/bare")
    widths = (6, 8, 13, 8, 8, 8, 11)
    print(" ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True)))
    ok = True
    for n in sizes:
        r = measure(n, args.runner)
        total = r["plan"] + r["up"] + r["down"]
        print(
            f"{int(r['nodes']):6d} {r['plan']:8.3f} {r['up']:13.2f} {r['down']:8.2f} {total:8.2f}"
            f" {r['bare']:8.2f} {total / r['bare']:10.2f}x",
            flush=True,
        )
        ok &= target(
            f"{int(r['nodes'])} nodes planned, up, programmed and down",
            total / r["bare"],
            TARGET_RATIO,
            True,
            "bare Mininet",
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
