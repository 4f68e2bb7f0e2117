"""The controller keeps the intended state: a switch that dies comes back with everything."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from pyctl.controller.controller import Controller
from pyctl.controller.plan import make_plan
from pyctl.net.emulation import Emulation, port_rates
from pyctl.net.runners import SoftwareSwitchRunner
from pyctl.net.topology import load_topology

TOPOS = Path(__file__).resolve().parent.parent / "topologies"


def _ping(emu: Emulation, plan_addr: str) -> int:
    out = emu.nodes["ha"].cmd(f"ping -6 -c 2 -i 0.2 -W 1 {plan_addr} | grep -o '[0-9]* received'")
    return int(out.split()[0]) if out.strip() else 0


def test_a_killed_switch_is_restored_with_its_configuration(tmp_path: Path) -> None:
    topo = load_topology(TOPOS / "minimal.yaml")
    plan = make_plan(topo)
    runners: dict[str, SoftwareSwitchRunner] = {}

    def runner(name: str) -> SoftwareSwitchRunner:
        runners[name] = SoftwareSwitchRunner(name, "reference", port_rates(topo, plan, name))
        return runners[name]

    messages: list[str] = []
    with Emulation(topo, plan, tmp_path, runner, log=messages.append) as emu:
        ctl = Controller(dict(plan.switches), runners, log=messages.append)
        hb = str(plan.hosts["hb"].address)
        assert _ping(emu, hb) == 2
        proc = runners["pe2"].proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGKILL)  # the switch crashes mid-run
        proc.wait(5)
        assert _ping(emu, hb) == 0  # the network is broken ...
        stop = ctl.watch(interval_s=0.2)
        try:
            deadline = time.monotonic() + 10
            while not ctl.restarts and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            stop()
        assert ctl.restarts == {"pe2": 1}
        assert _ping(emu, hb) == 2  # ... until the controller re-pushed pe2's configuration
        assert any("pe2 is down" in m for m in messages)
        assert ctl.reconcile() == []  # nothing else to restore
