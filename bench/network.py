"""Network bring-up, programming and teardown time for 10, 50 and 100 nodes, side by side.

    sudo .venv/bin/python bench/network.py [--sizes 10,50,100] [--runner reference|ebpf|none]

A synthetic topology of N nodes (half switches in a chain of pairs, half hosts, one collector)
is planned by the controller and brought up in Mininet. Printed per size: plan time (intent to
every table entry), bring-up (namespaces, links, shaping), programming (switch nodes started
with their configurations: a swnode process each, or the XDP program loaded, its maps written
and attached to every port with `--runner ebpf`), teardown, and the ratio of the total to the
30 s target for 100 nodes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyctl.controller.plan import make_plan
from pyctl.model.fields import Field
from pyctl.model.node import NodeConfig
from pyctl.net.emulation import Emulation, SwitchRunner, port_rates
from pyctl.net.runners import EBPFSwitchRunner, SoftwareSwitchRunner, port_buffers
from pyctl.net.topology import topology_from_field

TARGET_S = 30.0


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
    return {"plan": t_plan, "up": t_up, "down": t_down, "nodes": len(topo.nodes)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="10,50,100")
    ap.add_argument("--runner", choices=("reference", "ebpf", "none"), default="reference")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    print(f"network bring-up, switch runner: {args.runner} (target: 100 nodes in {TARGET_S:.0f} s)")
    cols = ("nodes", "plan s", "up+program s", "down s", "total s", "of target")
    widths = (6, 8, 13, 8, 8, 10)
    print(" ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True)))
    for n in sizes:
        r = measure(n, args.runner)
        total = r["plan"] + r["up"] + r["down"]
        print(
            f"{int(r['nodes']):6d} {r['plan']:8.3f} {r['up']:13.2f} {r['down']:8.2f} {total:8.2f}"
            f" {total / TARGET_S:9.0%}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
