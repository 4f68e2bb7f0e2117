"""`BMv2DataPlane`: one node on a real simple_switch_grpc, frames through veth pairs.

configure() starts the switch (once), installs p4/build/icpn.json over P4Runtime (which also
clears every register: a fresh node) and writes the node's entries (writer.py). process() puts
the PacketContext into the switch's test-mode tables, sends the frame into the port's veth and
collects what comes out of every port; a drop comes back to the CPU port with its reason. If the
switch died, process() restarts it and re-pushes the pipeline and every entry first.
"""

from __future__ import annotations

import atexit
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from pyctl import toolchain
from pyctl.errors import DataPlaneUnavailable, ICPNError
from pyctl.model.node import NodeConfig, PacketContext
from pyctl.p4rt import P4Info, Switch, TableEntry, Update
from pyctl.targets.base import FEATURES, DataPlane, Output, Result
from pyctl.targets.bmv2 import build, codes
from pyctl.targets.bmv2.links import PACKET_OUTGOING, VethLinks
from pyctl.targets.bmv2.process import SwitchProcess, SwitchSpec
from pyctl.targets.bmv2.writer import NodeProgram, context_writes, node_program
from pyctl.targets.reasons import reason_name

# Every feature name the conformance vectors use; the P4 program implements them all, within
# the limits of docs/p4.md (configure() raises P4Unsupported past them).
SUPPORTED = frozenset(FEATURES)


RECV_SIZE = 1 << 17  # more than the longest frame a link carries

# Planes that hold (or may hold) a switch, veths and a run directory and were not closed. The
# switch runs in a session of its own, so a caller that raised between configure() and close()
# would leave it running after Python exits: what is still here at exit is closed then.
_UNCLOSED: dict[int, BMv2DataPlane] = {}


@atexit.register
def _close_unclosed() -> None:
    for plane in list(_UNCLOSED.values()):
        if plane.owner_pid != os.getpid():
            continue  # a forked child exiting: the planes are its parent's
        try:
            plane.close()
        except (OSError, ICPNError, subprocess.SubprocessError) as e:
            print(f"icpn: bmv2 cleanup at exit: {e}", file=sys.stderr)


def drop_name(code: int) -> str:
    """The docs/pipeline.md name of a drop code the switch reported."""
    if code == codes.DROP_P4_LIMIT:
        return codes.DROP_P4_LIMIT_NAME
    return reason_name(code)


class BMv2DataPlane(DataPlane):
    name = "bmv2"

    def __init__(self, log: bool = False, pcap: bool = False, settle_s: float = 0.05) -> None:
        """log / pcap: keep a debug log / pcaps of every port in the run directory (kept)."""
        self.log = log
        self.pcap = pcap
        self.settle_s = settle_s
        self.run_dir = Path(tempfile.mkdtemp(prefix=f"icpn-bmv2-{os.getpid()}-"))
        self.node: NodeConfig | None = None
        self.program: NodeProgram | None = None
        self.links: VethLinks | None = None
        self.process_: SwitchProcess | None = None
        self.switch: Switch | None = None
        self.sockets: dict[int, socket.socket] = {}
        self.p4info = P4Info.load(build.P4INFO)
        self.restarts = 0
        self._ctx_entries: list[TableEntry] = []
        self.owner_pid = os.getpid()
        _UNCLOSED[id(self)] = self

    # ---- availability ------------------------------------------------------------------------

    @classmethod
    def unavailable(cls) -> str | None:
        reason = toolchain.detect().bmv2_reason
        if reason is not None:
            return reason
        for artefact in (build.JSON, build.P4INFO):
            if not artefact.exists():
                return f"{artefact.relative_to(build.ROOT)} not built (make -C p4 needs p4c)"
        if os.geteuid() != 0:
            return "needs root (veth pairs and a network namespace)"
        return None

    @classmethod
    def supports(cls, covers: Iterable[str]) -> str | None:
        """None when every feature is implemented here, else why not (sizes: docs/p4.md limits)."""
        missing = sorted(set(covers) - SUPPORTED)
        if missing:
            return f"not implemented in p4/icpn.p4: {', '.join(missing)}"
        return None

    # ---- switch lifecycle --------------------------------------------------------------------

    def _ensure_switch(self, node: NodeConfig) -> None:
        ports = sorted(p.index for p in node.ports)
        if self.links is not None and self.links.ports == ports and self._alive():
            return
        self._teardown()
        links = VethLinks(ports)
        self.links = links
        links.create()
        spec = SwitchSpec(
            name=node.name or "bmv2",
            ports={p: links.switch_side[p] for p in ports},
            run_dir=self.run_dir,
            log=self.log,
            pcap=self.pcap,
        )
        self.process_ = SwitchProcess(spec)
        self.process_.start()
        self.sockets = dict(links.open_sockets())
        self._connect()

    def _alive(self) -> bool:
        return self.process_ is not None and self.process_.alive()

    def _connect(self) -> None:
        assert self.process_ is not None
        if self.switch is not None:
            self.switch.close()
        self.switch = Switch(
            self.process_.spec.name,
            self.process_.spec.grpc_address,
            device_id=self.process_.spec.device_id,
            p4info=self.p4info,
        )
        self.switch.connect()

    def _push(self) -> None:
        """Pipeline (fresh state) + every entry of the node: what a restart needs too."""
        assert self.switch is not None and self.program is not None
        self.switch.set_pipeline(self.p4info, self.program.device_config(build.JSON.read_bytes()))
        updates = [Update("modify", d) for d in self.program.defaults]
        updates += [Update("insert", e) for e in self.program.inserts()]
        self.switch.write(updates)
        self._ctx_entries = []

    def configure(self, node: NodeConfig) -> None:
        program = node_program(node)  # refuses configurations beyond the P4 limits first
        self._ensure_switch(node)
        self.node = node
        self.program = program
        self._push()

    def restart(self) -> None:
        """Restart a dead (or live) switch and re-push the pipeline and all entries."""
        if self.process_ is None or self.node is None:
            raise DataPlaneUnavailable("bmv2: restart before configure")
        self.process_.restart()
        self.restarts += 1
        self._connect()
        self._push()

    def kill_switch(self) -> None:
        """Kill the switch process (what a crash looks like; for restart tests)."""
        if self.process_ is not None:
            self.process_.kill()

    # ---- packets -----------------------------------------------------------------------------

    def _set_context(self, ctx: PacketContext) -> None:
        assert self.switch is not None
        writes = context_writes(ctx)
        updates = [Update("modify", writes.default)]
        updates += [Update("delete", e) for e in self._ctx_entries]
        fresh = writes.qdepth + writes.ingress_queue
        updates += [Update("insert", e) for e in fresh]
        self.switch.write(updates)
        self._ctx_entries = fresh

    def _drain(self) -> None:
        for s in self.sockets.values():
            while True:
                try:
                    s.recv(RECV_SIZE)
                except BlockingIOError:
                    break
        if self.switch is not None:
            self.switch.drain_packets()

    def process(self, frame: bytes, ctx: PacketContext) -> Result:
        if self.node is None or self.switch is None:
            raise DataPlaneUnavailable("bmv2: process() before configure()")
        if not self._alive():
            self.restart()
        if ctx.in_port not in self.sockets:
            raise DataPlaneUnavailable(f"bmv2: in_port {ctx.in_port} is not a port of the node")
        self._set_context(ctx)
        self._drain()
        if len(frame) > codes.TEST_LINK_MAX_FRAME:
            # longer than a veth carries: in by packet-out, as if received on in_port
            self.switch.packet_out(
                bytes(frame),
                egress_port=0,
                in_port=ctx.in_port,
                mode=codes.PKTOUT_PIPELINE,
                reserved=0,
            )
        else:
            self.sockets[ctx.in_port].send(frame)
        return self._collect()

    def _collect(self, timeout_s: float = 3.0) -> Result:
        assert self.switch is not None
        by_fd = {s.fileno(): port for port, s in self.sockets.items()}
        outputs: list[Output] = []
        drop: str | None = None
        verdict = False
        start = time.monotonic()
        quiet_since = start
        while True:
            now = time.monotonic()
            if verdict and now - quiet_since >= self.settle_s:
                break
            if now - start > timeout_s:
                if not verdict:
                    drop = "no-verdict"
                break
            ready, _, _ = select.select(list(by_fd), [], [], 0.005)
            got = False
            for fd in ready:
                sock = self.sockets[by_fd[fd]]
                while True:
                    try:
                        data, addr = sock.recvfrom(RECV_SIZE)
                    except BlockingIOError:
                        break
                    if addr[2] == PACKET_OUTGOING:
                        continue
                    outputs.append(Output(by_fd[fd], data))
                    verdict = got = True
            pkt = self.switch.packet_in(timeout=0)
            while pkt is not None:
                reason = pkt.metadata.get("reason", 0)
                if reason:
                    drop = drop_name(reason)
                    verdict = got = True
                elif "egress_port" in pkt.metadata and pkt.metadata["egress_port"]:
                    # a frame too long for its veth, handed over instead of sent (codes.py)
                    outputs.append(Output(pkt.metadata["egress_port"], pkt.payload))
                    verdict = got = True
                pkt = self.switch.packet_in(timeout=0)
            if got:
                quiet_since = time.monotonic()
        return Result(outputs=outputs, drop=drop)

    # ---- teardown ----------------------------------------------------------------------------

    def _teardown(self) -> None:
        # Each step runs even if one before it fails or is interrupted (Ctrl-C, SIGTERM).
        for s in self.sockets.values():
            s.close()
        self.sockets = {}
        try:
            if self.switch is not None:
                self.switch.close()
                self.switch = None
        finally:
            try:
                if self.process_ is not None:
                    self.process_.stop()
                    self.process_ = None
            finally:
                if self.links is not None:
                    self.links.destroy()
                    self.links = None

    def close(self) -> None:
        try:
            self._teardown()
        finally:
            _UNCLOSED.pop(id(self), None)
            if not (self.log or self.pcap):
                shutil.rmtree(self.run_dir, ignore_errors=True)
