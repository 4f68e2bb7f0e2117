"""BMv2 switch nodes in an emulation: simple_switch_grpc inside a Mininet node's namespace.

Mininet namespaces have no name (`ip netns exec` cannot reach them), so the switch is started
with the node's own `popen` (mnexec into its namespace). Its P4Runtime server listens on a Unix
socket in the run directory: a filesystem path is reachable from the controller's namespace,
where a TCP port on the node's loopback would not be. IFIT reports and PFC frames are clones to
the switch's own ports (docs/p4.md), so no agent runs beside it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pyctl.errors import ICPNError
from pyctl.model.node import NodeConfig
from pyctl.net.emulation import EmulationError
from pyctl.net.runners import stop_process
from pyctl.p4rt import P4Info, Switch, Update
from pyctl.targets.bmv2 import build, counters
from pyctl.targets.bmv2.dataplane import BMv2DataPlane
from pyctl.targets.bmv2.process import SwitchSpec
from pyctl.targets.bmv2.writer import node_program

# sun_path holds 108 bytes; a longer socket path goes to a short temporary directory instead
MAX_UNIX_PATH = 100
READY_TIMEOUT_S = 20.0


class BMv2SwitchRunner:
    """Runs one simple_switch_grpc on the ports of a switch node and programs it over
    P4Runtime with p4/build/icpn.json and the node's entries (as `BMv2DataPlane` does)."""

    def __init__(self, name: str, log: bool = False, pcap: bool = False) -> None:
        self.name = name
        self.log = log  # debug log / pcaps of every port, kept in the run directory
        self.pcap = pcap
        self.node: Any = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.switch: Switch | None = None
        self.spec: SwitchSpec | None = None
        self.socket_path = Path()
        self._sock_dir: Path | None = None  # a temporary directory of ours, removed at stop
        self._out = Path()

    def start(self, node: Any, cfg: NodeConfig, ifnames: dict[int, str], run_dir: Path) -> None:
        reason = BMv2DataPlane.unavailable()
        if reason is not None:
            raise EmulationError(f"switch {self.name}: BMv2 cannot run here: {reason}")
        self.node = node
        # the switch takes every frame from pcap; the namespace's own stack must stay silent
        node.cmd(
            "sysctl -qw net.ipv6.conf.all.forwarding=0 net.ipv4.ip_forward=0"
            " net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"
        )
        node.cmd("ip link set lo up")  # the Thrift server binds on the node's loopback
        sw_dir = run_dir / "bmv2" / self.name
        sw_dir.mkdir(parents=True, exist_ok=True)
        self.socket_path = sw_dir / "grpc.sock"
        if len(str(self.socket_path)) > MAX_UNIX_PATH:
            self._sock_dir = Path(tempfile.mkdtemp(prefix="icpn-bmv2sock-"))
            self.socket_path = self._sock_dir / "grpc.sock"
        self.spec = SwitchSpec(
            name=self.name, ports=dict(ifnames), run_dir=sw_dir, log=self.log, pcap=self.pcap
        )
        self._out = sw_dir / f"{self.name}.out"
        try:
            self._launch()
            self.apply(cfg)
        except BaseException:
            self.stop()
            raise

    @property
    def grpc_address(self) -> str:
        return f"unix:{self.socket_path}"

    def _argv(self) -> list[str]:
        assert self.spec is not None
        argv = self.spec.argv()
        # the spec's TCP address is on the node's loopback: serve on the Unix socket instead
        at = argv.index("--grpc-server-addr") + 1
        argv[at] = self.grpc_address
        return argv

    def _launch(self) -> None:
        assert self.spec is not None
        if self.spec.pcap:
            (self.spec.run_dir / "pcap").mkdir(exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        out = self._out.open("ab")
        try:
            self.proc = self.node.popen(self._argv(), stdout=out, stderr=subprocess.STDOUT)
        finally:
            out.close()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.socket_path.exists():
            if not self.alive():
                raise EmulationError(
                    f"switch {self.name}: simple_switch_grpc exited: {self._tail()}"
                )
            if time.monotonic() > deadline:
                raise EmulationError(
                    f"switch {self.name}: no gRPC socket within {READY_TIMEOUT_S:g} s ({self._out})"
                )
            time.sleep(0.05)
        self.switch = Switch(
            self.name,
            self.grpc_address,
            device_id=self.spec.device_id,
            p4info=P4Info.load(build.P4INFO),
        )
        try:
            self.switch.connect()  # waits for the server behind the socket to answer
        except ICPNError as e:
            raise EmulationError(f"switch {self.name}: P4Runtime connect failed: {e}") from e

    def _tail(self) -> str:
        try:
            lines = self._out.read_text(errors="replace").splitlines()
        except OSError:
            return "(no output)"
        return " | ".join(lines[-5:]) or "(no output)"

    def apply(self, cfg: NodeConfig) -> None:
        """Push the pipeline (fresh state: every register cleared) and all of `cfg`'s entries;
        a dead switch is restarted first (the controller's re-push)."""
        if self.spec is None:
            raise EmulationError(f"switch {self.name}: apply() before start()")
        try:
            program = node_program(cfg)  # refuses configurations beyond the P4 limits first
        except ICPNError as e:
            raise EmulationError(f"switch {self.name}: {e}") from e
        if not self.alive():
            self._close_switch()
            self._launch()
        assert self.switch is not None and self.switch.p4info is not None
        try:
            self.switch.set_pipeline(
                self.switch.p4info, program.device_config(build.JSON.read_bytes())
            )
            updates = [Update("modify", d) for d in program.defaults]
            updates += [Update("insert", e) for e in program.inserts()]
            self.switch.write(updates)
        except ICPNError as e:
            raise EmulationError(f"switch {self.name}: programming BMv2 failed: {e}") from e

    def alive(self) -> bool:
        """Whether simple_switch_grpc runs (the controller restores it when not)."""
        return self.proc is not None and self.proc.poll() is None

    def ifit_counters(
        self, flowmon_ids: Iterable[int] | None = None
    ) -> dict[tuple[int, int], tuple[int, int]]:
        """The node's IFIT running totals, (FlowMonID, colour) -> (packets, bytes), of these
        FlowMonIDs, read over P4Runtime (pyctl.targets.bmv2.counters)."""
        if self.switch is None or not self.alive():
            raise EmulationError(f"switch {self.name}: not running")
        try:
            return counters.ifit_counters(self.switch, flowmon_ids or ())
        except ICPNError as e:
            raise EmulationError(f"switch {self.name}: reading IFIT counters failed: {e}") from e

    def _close_switch(self) -> None:
        if self.switch is not None:
            self.switch.close()
            self.switch = None

    def stop(self) -> None:
        self._close_switch()
        stop_process(self.proc)
        self.proc = None
        if self.socket_path != Path():
            self.socket_path.unlink(missing_ok=True)
        if self._sock_dir is not None:
            shutil.rmtree(self._sock_dir, ignore_errors=True)
            self._sock_dir = None
