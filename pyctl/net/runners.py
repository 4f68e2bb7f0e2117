"""What makes a switch node forward in an emulation (`pyctl.net.emulation.SwitchRunner`)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pyctl.model.dump import node_to_dict
from pyctl.model.node import NodeConfig
from pyctl.net.emulation import EmulationError


class SoftwareSwitchRunner:
    """Runs `pyctl.net.swnode` (a data plane in Python on AF_PACKET sockets) in the node."""

    def __init__(
        self, name: str, dataplane: str = "reference", rates: dict[int, float] | None = None
    ) -> None:
        self.name = name
        self.dataplane = dataplane
        self.rates = rates or {}  # port -> line rate (bit/s) for the virtual queues
        self.proc: subprocess.Popen[bytes] | None = None
        self.node: Any = None
        self.ifnames: dict[int, str] = {}
        self.run_dir = Path(".")

    def start(self, node: Any, cfg: NodeConfig, ifnames: dict[int, str], run_dir: Path) -> None:
        self.node, self.ifnames, self.run_dir = node, ifnames, run_dir
        # the namespace's own stack must neither route nor answer these frames
        node.cmd(
            "sysctl -qw net.ipv6.conf.all.forwarding=0 net.ipv4.ip_forward=0"
            " net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"
        )
        self.apply(cfg)

    def apply(self, cfg: NodeConfig) -> None:
        """(Re)start the switch process with `cfg` (the controller's re-push)."""
        self.stop()
        nodes = self.run_dir / "nodes"
        nodes.mkdir(parents=True, exist_ok=True)
        cfg_file = nodes / f"{self.name}.json"
        cfg_file.write_text(json.dumps(node_to_dict(cfg), indent=1))
        argv = [sys.executable, "-m", "pyctl.net.swnode", "--node", str(cfg_file)]
        argv += ["--dataplane", self.dataplane, "--stats", str(nodes / f"{self.name}.stats.json")]
        for port, ifname in sorted(self.ifnames.items()):
            argv += ["--port", f"{port}={ifname}"]
        for port, bps in sorted(self.rates.items()):
            argv += ["--rate", f"{port}={bps:.0f}"]
        log = open(self.run_dir / "logs" / f"swnode-{self.name}.log", "ab")  # noqa: SIM115
        self.proc = self.node.popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 10
        logfile = self.run_dir / "logs" / f"swnode-{self.name}.log"
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise EmulationError(
                    f"switch {self.name}: swnode exited: {logfile.read_text()[-500:]}"
                )
            if f"swnode {cfg.name}:" in logfile.read_text():
                return
            time.sleep(0.05)
        raise EmulationError(f"switch {self.name}: swnode did not start within 10 s ({logfile})")

    def alive(self) -> bool:
        """Whether the switch process is running (the controller restores it when not)."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
