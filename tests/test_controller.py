"""The controller keeps the intended state: a switch that dies comes back with everything."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

from pyctl.controller.controller import Controller
from pyctl.net.runners import SoftwareSwitchRunner
from pyctl.testing import Network, watch_until_restart

TOPOS = Path(__file__).resolve().parent.parent / "topologies"


def test_a_killed_switch_is_restored_with_its_configuration(
    icpn_network: Callable[..., Network],
) -> None:
    net = icpn_network(TOPOS / "minimal.yaml", dataplane="reference")
    messages: list[str] = []
    ctl = Controller(dict(net.plan.switches), net.runners, log=messages.append)
    assert net.ping("ha", "hb", count=2) == 2
    runner = net.runners["pe2"]
    assert isinstance(runner, SoftwareSwitchRunner) and runner.proc is not None
    proc = runner.proc
    os.kill(proc.pid, signal.SIGKILL)  # the switch crashes mid-run
    proc.wait(5)
    assert net.ping("ha", "hb", count=2) == 0  # the network is broken ...
    watch_until_restart(ctl)
    assert ctl.restarts == {"pe2": 1}
    assert net.ping("ha", "hb", count=2) == 2  # ... until the controller re-pushed pe2's config
    assert any("pe2 is down" in m for m in messages)
    assert ctl.reconcile() == []  # nothing else to restore
