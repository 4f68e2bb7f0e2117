"""What makes a switch node forward in an emulation (`pyctl.net.emulation.SwitchRunner`)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pyctl import constants as C
from pyctl.controller.plan import Plan
from pyctl.errors import ICPNError
from pyctl.model.dump import node_to_dict
from pyctl.model.node import NodeConfig
from pyctl.model.topology import Topology
from pyctl.net.emulation import EmulationError
from pyctl.netns import in_netns_of
from pyctl.targets.ebpf import EBPFDataPlane
from pyctl.targets.ebpf import attach as att
from pyctl.targets.ebpf.attach import XDPMode
from pyctl.targets.ebpf.bpfobject import RingBuffer
from pyctl.targets.ebpf.maps import TAP_OUT

# An eBPF port's buffer when its link is unknown: 64 frames of 1514 bytes.
DEFAULT_BUFFER_BYTES = 64 * 1514
# How often the agent looks for frames the node queued (IFIT reports, PFC frames) when idle.
AUX_POLL_S = 0.002
PFC_ETHERTYPE = C.PFC_ETHERTYPE.to_bytes(2, "big")


class SoftwareSwitchRunner:
    """Runs `pyctl.net.swnode` (a data plane in Python on AF_PACKET sockets) in the node."""

    parallel_start = True  # start() touches only its own node (Emulation starts a few at once)

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
        # the node's control socket (IFIT counters): a short path (unix sockets take 107 bytes)
        self._ctl_dir: Path | None = None

    def start(self, node: Any, cfg: NodeConfig, ifnames: dict[int, str], run_dir: Path) -> None:
        self.node, self.ifnames, self.run_dir = node, ifnames, run_dir
        # the namespace's own stack must neither route nor answer these frames
        node.cmd(
            "sysctl -qw net.ipv6.conf.all.forwarding=0 net.ipv4.ip_forward=0"
            " net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"
        )
        self.apply(cfg)

    def _ask(self, request: dict[str, Any], timeout_s: float = 5.0) -> Any:
        """One request to the switch process over its control socket, its JSON answer."""
        assert self._ctl_dir is not None
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(str(self._ctl_dir / "ctl"))
            sock.sendall(json.dumps(request).encode())
            sock.shutdown(socket.SHUT_WR)
            return json.loads(b"".join(iter(lambda: sock.recv(65536), b"")))

    def apply(self, cfg: NodeConfig) -> None:
        """The controller's re-push: into the running switch process (its tables replaced in
        milliseconds), else by (re)starting the process with `cfg`."""
        config = node_to_dict(cfg)
        nodes = self.run_dir / "nodes"
        nodes.mkdir(parents=True, exist_ok=True)
        cfg_file = nodes / f"{self.name}.json"  # what the switch runs from now on, either way
        cfg_file.write_text(json.dumps(config, indent=1))
        if self.alive() and self._ctl_dir is not None:
            try:
                answer = self._ask({"configure": config})
            except (OSError, ValueError) as e:
                answer = {"error": str(e)}
            if answer == {"ok": True}:
                return
        self.stop()
        argv = [sys.executable, "-m", "pyctl.net.swnode", "--node", str(cfg_file)]
        argv += ["--dataplane", self.dataplane, "--stats", str(nodes / f"{self.name}.stats.json")]
        for port, ifname in sorted(self.ifnames.items()):
            argv += ["--port", f"{port}={ifname}"]
        for port, bps in sorted(self.rates.items()):
            argv += ["--rate", f"{port}={bps:.0f}"]
        if self._ctl_dir is None:
            self._ctl_dir = Path(tempfile.mkdtemp(prefix="icpn-sw-"))
        argv += ["--control", str(self._ctl_dir / "ctl")]
        logfile = self.run_dir / "logs" / f"swnode-{self.name}.log"
        log = open(logfile, "ab")  # handed to the process
        start = log.tell()  # a restart appends: only what this start writes counts
        self.proc = self.node.popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            written = logfile.read_bytes()[start:].decode(errors="replace")
            if self.proc is None or self.proc.poll() is not None:
                raise EmulationError(f"switch {self.name}: swnode exited: {written[-500:]}")
            if f"swnode {cfg.name}:" in written:
                return
            time.sleep(0.05)
        raise EmulationError(f"switch {self.name}: swnode did not start within 10 s ({logfile})")

    def alive(self) -> bool:
        """Whether the switch process is running (the controller restores it when not)."""
        return self.proc is not None and self.proc.poll() is None

    def ifit_counters(
        self, flowmon_ids: Iterable[int] | None = None
    ) -> dict[tuple[int, int], tuple[int, int]]:
        """The node's IFIT running totals, (FlowMonID, colour) -> (packets, bytes), of these
        FlowMonIDs, asked of the switch process over its control socket."""
        if self._ctl_dir is None or not self.alive():
            raise EmulationError(f"switch {self.name}: not running")
        rows = self._ask({"counters": sorted(set(flowmon_ids or ()))}, timeout_s=1.0)
        return {(f, c): (p, b) for f, c, p, b in rows}

    def stop(self) -> None:
        """End the switch process and remove its control socket's directory."""
        stop_process(self.proc)
        self.proc = None
        if self._ctl_dir is not None:
            shutil.rmtree(self._ctl_dir, ignore_errors=True)
            self._ctl_dir = None


def stop_process(proc: subprocess.Popen[bytes] | None, timeout_s: float = 5.0) -> None:
    """End a runner's process: SIGTERM, then SIGKILL if it is still there after `timeout_s`."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def port_buffers(topo: Topology, plan: Plan, switch: str) -> dict[int, int]:
    """Buffer (bytes) of each port of a switch: its link's buffer in the direction away from
    the switch (Link.buffer_bytes), the eBPF node's tail-drop limit."""
    links = {frozenset((lk.a, lk.b)): lk for lk in topo.links}
    out = {}
    for (node, port), (peer, _) in plan.wiring.items():
        lk = links.get(frozenset((node, peer)))
        if node == switch and lk is not None:
            out[port] = lk.buffer_bytes("a2b" if lk.a == switch else "b2a")
    return out


class EBPFSwitchRunner:
    """Runs the eBPF node program (ebpf/build/icpn_node.bpf.o) as XDP on every port of a switch
    namespace (ebpf/README.md, "Live nodes").

    The maps are written from the NodeConfig, with the ports' ifindexes of the node's own
    namespace (written from a thread inside it); each shaped port gets its line rate and buffer
    (a virtual queue that tail-drops, since XDP_REDIRECT bypasses qdiscs). One agent thread
    sends the frames the program queues in `aux_out` (IFIT reports, PFC frames) out of their
    ports through packet sockets opened in the namespace, and reads the capture ring (`tap`).
    `apply` loads the new configuration into a fresh program and swaps it onto the interfaces
    in place (no moment without a program).
    """

    parallel_start = True  # start() touches only its own node (Emulation starts a few at once)

    def __init__(
        self,
        name: str,
        rates: dict[int, float] | None = None,
        buffers: dict[int, int] | None = None,
        mode: XDPMode = "generic",
        poll_s: float = AUX_POLL_S,
    ) -> None:
        self.name = name
        self.rates = rates or {}  # port -> line rate (bit/s)
        self.buffers = buffers or {}  # port -> tail-drop limit (bytes)
        self.mode: XDPMode = mode
        self.poll_s = poll_s
        self.node: Any = None
        self.ifnames: dict[int, str] = {}
        self.ifindexes: dict[int, int] = {}
        self.run_dir = Path(".")
        self.aux_sent = 0
        self.aux_failed = 0
        self.pfc_sent = 0
        self.agent_error: str | None = None
        self._dp: EBPFDataPlane | None = None
        self._ring: RingBuffer | None = None
        self._lock = threading.Lock()  # guards _dp and _ring against apply/stop
        self._stop = threading.Event()
        self._agent: threading.Thread | None = None
        self._socks: dict[int, socket.socket] = {}
        # port -> the open captures' frame lists (replaced, never mutated: the agent reads it)
        self._taps: dict[int, tuple[list[bytes], ...]] = {}

    def start(self, node: Any, cfg: NodeConfig, ifnames: dict[int, str], run_dir: Path) -> None:
        reason = EBPFDataPlane.unavailable()
        if reason is not None:
            raise EmulationError(f"switch {self.name}: the eBPF data plane cannot run: {reason}")
        self.node, self.ifnames, self.run_dir = node, ifnames, run_dir
        # XDP takes every frame first; the namespace's own stack must not answer or route any
        node.cmd(
            "sysctl -qw net.ipv6.conf.all.forwarding=0 net.ipv4.ip_forward=0"
            " net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"
        )
        if self.mode == "native":
            self._napi_on_peers()
        self.ifindexes, self._socks = in_netns_of(node.pid, self._open_ports)
        try:
            self.apply(cfg)
        except BaseException:
            self.stop()
            raise
        self._stop.clear()
        self._agent = threading.Thread(target=self._agent_loop, name=f"icpn-agent-{self.name}")
        self._agent.daemon = True
        self._agent.start()

    def _open_ports(self) -> tuple[dict[int, int], dict[int, socket.socket]]:
        """In the node's namespace: the ports' ifindexes and a packet socket on each (a socket
        stays in the namespace it was made in, whichever thread uses it later)."""
        ifindexes, socks = {}, {}
        try:
            for port, ifname in self.ifnames.items():
                ifindexes[port] = att.ifindex_of(ifname)
                socks[port] = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
                socks[port].bind((ifname, 0))
        except (OSError, ICPNError):
            for sock in socks.values():
                sock.close()
            raise
        return ifindexes, socks

    def _napi_on_peers(self) -> None:
        """Native XDP_REDIRECT into a veth needs NAPI on its peer (DESIGN.md): a peer without
        an XDP program of its own gets GRO on."""
        for ifname in self.ifnames.values():
            link = self.node.intf(ifname).link
            peer = link.intf2 if link.intf1.name == ifname else link.intf1
            peer.node.cmd(f"ethtool -K {peer.name} gro on >/dev/null 2>&1")

    def apply(self, cfg: NodeConfig) -> None:
        """The controller's re-push: into the running program's tables when it is still on its
        ports with the same ports (steering: milliseconds, its counters and state carry on),
        else into a fresh program (fresh state) put on the ports in place of the old one."""
        if self.node is None:
            raise EmulationError(f"switch {self.name}: apply() before start()")
        if self.alive():
            with self._lock:
                try:
                    if self._dp is not None and self._dp.reconfigure(cfg):
                        return
                except ICPNError as e:
                    raise EmulationError(f"switch {self.name}: re-configuring failed: {e}") from e
        new = EBPFDataPlane()
        ring = None
        try:
            new.configure(cfg)
            shapes = {
                port: (int(rate), self.buffers.get(port, DEFAULT_BUFFER_BYTES))
                for port, rate in self.rates.items()
                if port in self.ifindexes and rate > 0
            }
            new.shape_ports(shapes)
            for port in self._taps:
                new.set_tap(port, True)
            ring = new.tap_reader(self._on_tap)
            in_netns_of(self.node.pid, lambda: new.attach(self.ifindexes, self.mode))
        except ICPNError as e:
            if ring is not None:
                ring.close()
            new.close()
            raise EmulationError(f"switch {self.name}: loading the eBPF node failed: {e}") from e
        with self._lock:
            old, old_ring = self._dp, self._ring
            self._dp, self._ring = new, ring
        if old_ring is not None:
            old_ring.close()
        if old is not None:
            old.hand_over()  # its interfaces run the new program now
            old.close()

    def ifit_counters(
        self, flowmon_ids: Iterable[int] | None = None
    ) -> dict[tuple[int, int], tuple[int, int]]:
        """The node's IFIT counters: (FlowMonID, colour) -> (packets, bytes) (of these only)."""
        with self._lock:
            return self._dp.ifit_counters(flowmon_ids) if self._dp is not None else {}

    def set_port_rate(self, port: int, bps: float) -> None:
        """Change a port's line rate in place (no reload: the node keeps its state)."""
        with self._lock:
            self.rates[port] = bps
            if self._dp is not None:
                buffer = self.buffers.get(port, DEFAULT_BUFFER_BYTES)
                self._dp.shape_ports({port: (int(bps), buffer)})

    def alive(self) -> bool:
        """Whether the node's program is still on every port and its agent runs (the controller
        re-pushes the configuration to a switch that is not)."""
        with self._lock:
            dp = self._dp
            if dp is None or self._agent is None or not self._agent.is_alive():
                return False
            want = dp.program_id()
        try:
            on = in_netns_of(
                self.node.pid, lambda: [att.xdp_prog_id(i) for i in self.ifindexes.values()]
            )
        except (OSError, ICPNError):
            return False
        return all(prog == want for prog in on)

    def _on_tap(self, port: int, direction: int, frame: bytes) -> None:
        for frames in self._taps.get(port, ()):
            frames.append(frame)

    def _agent_loop(self) -> None:
        """Send queued aux frames; wait for the next ones in the capture ring's poll."""
        timeout_ms = max(1, int(self.poll_s * 1000))
        while not self._stop.is_set():
            frames = []
            with self._lock:
                try:
                    if self._dp is not None:
                        frames = self._dp.drain_aux()
                    if self._ring is not None and not frames:
                        self._ring.poll(timeout_ms)
                except ICPNError as e:
                    self.agent_error = str(e)
            for out in frames:
                sock = self._socks.get(out.port)
                try:
                    if sock is None:
                        raise OSError(f"no port {out.port}")
                    sock.send(out.frame)
                    self.aux_sent += 1
                    self.pfc_sent += out.frame[12:14] == PFC_ETHERTYPE
                    self._on_tap(out.port, TAP_OUT, out.frame)
                except OSError:
                    self.aux_failed += 1
            if self._ring is None:
                self._stop.wait(self.poll_s)

    @contextmanager
    def tap(self, port: int) -> Iterator[list[bytes]]:
        """Collect the frames `port` receives and sends (as the program sees them: XDP takes
        frames before packet sockets would) while the block runs."""
        if port not in self.ifindexes:
            raise EmulationError(f"switch {self.name}: no port {port}")
        frames: list[bytes] = []
        with self._lock:
            if self._dp is None:
                raise EmulationError(f"switch {self.name}: not running")
            self._taps = {**self._taps, port: (*self._taps.get(port, ()), frames)}
            self._dp.set_tap(port, True)
        try:
            yield frames
        finally:
            with self._lock:
                left = tuple(f for f in self._taps.get(port, ()) if f is not frames)
                self._taps = {p: v for p, v in self._taps.items() if p != port}
                if left:
                    self._taps[port] = left
                elif self._dp is not None:
                    self._dp.set_tap(port, False)

    def stats(self) -> dict[str, Any]:
        """The node's counters now, in the software switch's layout (`counts`: in, out,
        dropped, ce_marked, pfc_frames, held; `drops` by reason, with the live `queue-full`)
        plus per-port `ports` (tx, queue drops, CE marks) and the agent's `aux` figures."""
        with self._lock:
            if self._dp is None:
                raise EmulationError(f"switch {self.name}: not running")
            return self._stats_of(self._dp)

    def _stats_of(self, dp: EBPFDataPlane) -> dict[str, Any]:
        raw, ports = dp.stats(), dp.port_stats()
        drops = {k.removeprefix("drop:"): v for k, v in raw.items() if k.startswith("drop:") and v}
        counts = {
            "in": raw["rx"],
            "out": raw["forward"] + self.aux_sent,
            "dropped": sum(drops.values()),
            "ce_marked": sum(p["ce_marked"] for p in ports.values()),
            "pfc_frames": self.pfc_sent,
            "held": 0,  # a paused priority is dropped (pfc-held), not held, in live XDP
        }
        aux = {"queued": raw["aux"], "lost": raw["aux-lost"], "sent": self.aux_sent}
        aux["failed"] = self.aux_failed
        return {
            "counts": counts,
            "drops": drops,
            "ports": {str(p): v for p, v in ports.items()},
            "aux": aux,
        }

    def stop(self) -> None:
        """Stop the agent, write the counters to nodes/<name>.stats.json, detach the program
        from every port and release its maps (nothing pinned, no process)."""
        self._stop.set()
        if self._agent is not None:
            self._agent.join()
            self._agent = None
        with self._lock:
            dp, self._dp = self._dp, None
            ring, self._ring = self._ring, None
        if ring is not None:
            ring.close()
        if dp is not None:
            try:
                nodes = self.run_dir / "nodes"
                nodes.mkdir(parents=True, exist_ok=True)
                stats = self._stats_of(dp)
                (nodes / f"{self.name}.stats.json").write_text(json.dumps(stats, indent=1))
            finally:
                try:
                    dp.close()
                except ICPNError:  # the interfaces are gone already: nothing left to detach
                    dp.hand_over()
                    dp.close()
        for sock in self._socks.values():
            sock.close()
        self._socks.clear()
