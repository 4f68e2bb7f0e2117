"""Mininet bring-up and teardown from a plan: hosts set up, links shaped, nothing left behind."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from pyctl.controller.plan import make_plan
from pyctl.model.node import NodeConfig
from pyctl.model.topology import load_topology
from pyctl.net.emulation import REGISTRY, Emulation, cleanup_stale

TOPOS = Path(__file__).resolve().parent.parent / "topologies"


class RecordingRunner:
    """Stands in for a data plane: records what the emulation hands a switch."""

    started: dict[str, dict[int, str]] = {}

    def __init__(self, name: str) -> None:
        self.name = name

    def start(self, node: Any, cfg: NodeConfig, ifnames: dict[int, str], run_dir: Path) -> None:
        links = node.cmd("ip -br link")
        for intf in ifnames.values():
            assert intf in links
        RecordingRunner.started[self.name] = ifnames

    def apply(self, cfg: NodeConfig) -> None:
        pass

    def stop(self) -> None:
        RecordingRunner.started.pop(self.name, None)


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    names = {line.split(": ")[1].split("@")[0] for line in out.splitlines()}
    return {n for n in names if re.match(r"ic[0-9a-f]{3}", n)}  # what emulations create


def test_minimal_up_and_down(tmp_path: Path) -> None:
    before = _root_links()
    topo = load_topology(TOPOS / "minimal.yaml")
    plan = make_plan(topo)
    messages: list[str] = []
    with Emulation(topo, plan, tmp_path, RecordingRunner, log=messages.append) as emu:
        assert set(RecordingRunner.started) == {"pe1", "pe2"}
        ha = emu.nodes["ha"]
        intf = emu.ifnames[("ha", 1)]
        assert "2001:db8:1::1/128" in ha.cmd(f"ip -6 addr show dev {intf}")
        assert "default via fe80::1" in ha.cmd("ip -6 route")
        assert plan.hosts["ha"].gateway_mac in ha.cmd("ip -6 neigh")
        assert "mtu 9000" in ha.cmd(f"ip link show dev {intf}")
        # the link runs through the element in the links namespace, at the link's MTU
        info = emu.link("pe2", "pe1")  # either order
        assert info.link.delay_ms == 1.0 and info.link.bw_mbit == 100
        links_ns = emu.links_node.cmd("ip -br link")
        assert info.la_if in links_ns and info.lb_if in links_ns
        assert "mtu 9000" in emu.links_node.cmd(f"ip link show dev {info.la_if}")
        assert emu.element is not None and emu.element.proc.poll() is None
        element_pid = emu.element.pid
        assert (REGISTRY / f"{emu.prefix}.json").exists()
        prefix = emu.prefix
    assert not any("not emulated" in m for m in messages)
    assert not _alive(element_pid)
    assert not RecordingRunner.started
    assert not (REGISTRY / f"{prefix}.json").exists()
    assert _root_links() == before
    assert "mnexec" not in subprocess.run(["ps", "-e"], capture_output=True, text=True).stdout


def test_cleanup_stale_removes_a_dead_runs_leftovers() -> None:
    REGISTRY.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ip", "link", "add", "icfffx1", "type", "veth", "peer", "name", "icfffx2"], check=True
    )
    dead = subprocess.run(["true"], check=True)  # noqa: F841 (its PID is gone by now)
    proc = subprocess.Popen(["sleep", "60"])
    owner = subprocess.Popen(["true"])
    owner.wait()
    (REGISTRY / "icfff.json").write_text(
        f'{{"owner": {owner.pid}, "prefix": "icfff", "pids": [{proc.pid}]}}'
    )
    cleaned = cleanup_stale()
    assert "icfff" in cleaned and "icfffx1" in cleaned
    assert proc.wait(5) != 0  # killed
    assert "icfffx1" not in _root_links()
    assert not (REGISTRY / "icfff.json").exists()
