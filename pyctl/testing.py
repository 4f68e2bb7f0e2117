"""pytest plugin: bring an ICPN topology up for a test, send scapy packets, assert where they go.

Installed with the package (entry point `pytest11`), so any suite can write:

```python
def test_ping_crosses_srv6(icpn_network):
    net = icpn_network("topologies/minimal.yaml")
    with net.capture("pe2", 1) as wire:                  # the SRv6 link, at pe2's port 1
        assert net.ping("ha", "hb") == 3
    assert any(IPv6ExtHdrSegmentRouting in p for p in wire.packets)
```

Every network is torn down when the test ends (also on failure or Ctrl-C), leaving nothing.
Needs root (namespaces); a test using the fixture without root fails with that reason.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pyctl.controller.plan import Plan, make_plan
from pyctl.errors import ConfigError, ICPNError
from pyctl.model.fields import Field
from pyctl.model.load import parse_apn
from pyctl.model.node import APNConfig, NodeConfig, Role
from pyctl.model.topology import Topology, load_topology
from pyctl.net.emulation import Emulation, port_rates
from pyctl.net.runners import EBPFSwitchRunner, SoftwareSwitchRunner, port_buffers
from pyctl.targets.ebpf.attach import ifindex_of
from pyctl.targets.ebpf.host import HostAPN

if TYPE_CHECKING:  # imported when used: it needs grpc, which this plugin does not
    from pyctl.controller.controller import Controller
    from pyctl.net.bmv2_runner import BMv2SwitchRunner

ETH_P_ALL = 0x0003
SO_MARK = 36


def watch_until_restart(ctl: Controller, timeout_s: float = 10.0) -> None:
    """Let `ctl` reconcile the network every 0.2 s until it has restarted a node, or for
    `timeout_s`; the test then asserts what `ctl.restarts` holds."""
    stop = ctl.watch(interval_s=0.2)
    try:
        deadline = time.monotonic() + timeout_s
        while not ctl.restarts and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop()


@dataclass
class Capture:
    """Frames seen on one interface while the `capture` block ran (scapy `Ether` packets)."""

    frames: list[bytes] = field(default_factory=list)

    @property
    def packets(self) -> list[Any]:
        from scapy.layers.l2 import Ether

        import pyctl.packets  # noqa: F401  (ICPN layers)

        return [Ether(f) for f in self.frames]


class Network:
    """A running emulation with helpers for tests; `close()` tears it down."""

    def __init__(
        self,
        topo: Topology,
        run_dir: Path,
        dataplane: str = "reference",
        link_element: str = "icpn",
    ) -> None:
        if os.geteuid() != 0:
            raise ICPNError("an ICPN network needs root (namespaces and links)")
        self.topo = topo
        self.plan: Plan = make_plan(topo)
        self.dataplane = dataplane
        self.runners: dict[str, SoftwareSwitchRunner | EBPFSwitchRunner | BMv2SwitchRunner] = {}

        def runner(name: str) -> SoftwareSwitchRunner | EBPFSwitchRunner | BMv2SwitchRunner:
            rates = port_rates(topo, self.plan, name)
            if dataplane == "ebpf":  # the XDP node program itself on the ports
                buffers = port_buffers(topo, self.plan, name)
                self.runners[name] = EBPFSwitchRunner(name, rates, buffers)
            elif dataplane == "bmv2":  # simple_switch_grpc with p4/build/icpn.json on the ports
                from pyctl.net.bmv2_runner import BMv2SwitchRunner

                self.runners[name] = BMv2SwitchRunner(name)
            else:  # a data plane in Python on AF_PACKET sockets (pyctl.net.swnode)
                self.runners[name] = SoftwareSwitchRunner(name, dataplane, rates)
            return self.runners[name]

        self.host_apns: list[HostAPN] = []
        self.emu = Emulation(
            topo, self.plan, run_dir, runner, log=lambda _m: None, link_element=link_element
        )
        self.emu.start()

    def close(self) -> None:
        try:
            for hp in self.host_apns:
                hp.close()
            self.host_apns.clear()
        finally:
            self.emu.stop()

    def host_apn(self, host: str) -> HostAPN:
        """Application-side APN on `host`: the tc program `icpn_host_apn` on the egress hook of
        the host's interface, with the topology's `apn.socket_marks` (SO_MARK -> APN-ID). A
        socket that sets one of those marks (`send_marked`) gets the APN option from the host
        itself; other traffic leaves unchanged. Removed when the network closes."""
        raw = self.topo.features.get("apn")
        apn = parse_apn(Field(raw, "apn", self.topo.source)) if raw is not None else APNConfig()
        if not apn.socket_marks:
            raise ConfigError(f"{self.topo.source}: apn.socket_marks", "empty: nothing to mark")
        if host not in self.plan.hosts:
            raise ConfigError("host_apn", f"{host!r} is not a host of {self.topo.name}")
        hp = HostAPN(NodeConfig(name=host, role=Role.HOST, node_id=0, ports=(), apn=apn))
        ifname = self.emu.ifnames[(host, 1)]
        try:
            self.emu.run_in(host, lambda: hp.attach(ifindex_of(ifname)))
        except ICPNError:
            hp.close()
            raise
        self.host_apns.append(hp)
        return hp

    def send_marked(self, host: str, dst: str, payload: bytes, dport: int, mark: int) -> None:
        """Send one UDP datagram from `host`'s own stack with SO_MARK `mark` (as an application
        that opted into APN would)."""
        addr = self.address(dst)

        def send() -> None:
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
                sock.sendto(payload, (addr, dport))

        self.emu.run_in(host, send)

    def address(self, host: str) -> str:
        return str(self.plan.hosts[host].address)

    def frame(self, host: str, payload: Any) -> bytes:
        """`payload` (an IPv6/IPv4 scapy packet) as the host would send it to its gateway."""
        from scapy.layers.l2 import Ether

        h = self.plan.hosts[host]
        return bytes(Ether(src=h.mac, dst=h.gateway_mac) / payload)

    def roce(self, src: str, dst: str, qp: int, size: int = 200) -> bytes:
        """A RoCEv2 packet (UDP 4791, BTH to `qp`, ECT(0)) from host `src` to host `dst`."""
        from pyctl.packets import roce_packet

        h = self.plan.hosts[src]
        pkt = roce_packet(
            self.address(src),
            self.address(dst),
            dest_qp=qp,
            payload=b"\x00" * size,
            src_mac=h.mac,
            dst_mac=h.gateway_mac,
        )
        return bytes(pkt)

    def _socket(self, node: str, port: int) -> socket.socket:
        ifname = self.emu.ifnames[(node, port)]

        def make() -> socket.socket:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            s.bind((ifname, 0))
            return s

        return self.emu.run_in(node, make)  # the socket stays in the node's namespace

    def send(self, host: str, frame: bytes | Any, count: int = 1, gap_s: float = 0.0) -> None:
        """Put raw Ethernet frames on the wire from a host's interface."""
        sock = self._socket(host, 1)
        data = bytes(frame)
        try:
            for _ in range(count):
                for _attempt in range(1000):
                    try:
                        sock.send(data)
                        break
                    except OSError as e:  # the host's qdisc is full: wait for it, as a host would
                        if e.errno != errno.ENOBUFS:
                            raise
                        time.sleep(0.001)
                if gap_s:
                    time.sleep(gap_s)
        finally:
            sock.close()

    @contextmanager
    def capture(self, node: str, port: int = 1, settle_s: float = 0.3) -> Iterator[Capture]:
        """Collect every frame on `node`'s interface `port` (both directions) during the block,
        plus `settle_s` after it for frames still in flight. On an eBPF switch the frames come
        from the node program's capture ring (a packet socket there sees nothing: XDP takes
        frames first and redirects past it)."""
        runner = self.runners.get(node)
        if isinstance(runner, EBPFSwitchRunner):
            with runner.tap(port) as frames:
                cap = Capture(frames)
                time.sleep(0.05)
                yield cap
                time.sleep(settle_s)
            cap.frames = list(frames)
            return
        sock = self._socket(node, port)
        sock.settimeout(0.05)
        cap = Capture()
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                try:
                    cap.frames.append(sock.recv(65536))
                except TimeoutError:
                    continue
                except OSError:
                    return

        t = threading.Thread(target=loop, daemon=True)
        t.start()
        try:
            time.sleep(0.05)
            yield cap
            time.sleep(settle_s)
        finally:
            stop.set()
            t.join()
            sock.close()

    def rtts_ms(self, src: str, dst: str, count: int = 50, interval_s: float = 0.02) -> list[float]:
        """Round-trip times (ms) of `count` ICMPv6 echoes from a host (the lost ones left out)."""
        out = self.emu.nodes[src].cmd(
            f"ping -6 -n -c {count} -i {interval_s} -W 2 {self.address(dst)}"
        )
        return [float(m) for m in re.findall(r"time=([0-9.]+) ms", out)]

    def set_link(self, a: str, b: str, **changes: Any) -> None:
        """Change a link while traffic runs (fields as in the topology: delay_ms, loss_pct,
        bw_mbit, jitter_ms, ...); see Emulation.set_link."""
        self.emu.set_link(a, b, **changes)

    def ping(self, src: str, dst: str, count: int = 3) -> int:
        """ICMPv6 echo from a host; the number of replies."""
        out = self.emu.nodes[src].cmd(
            f"ping -6 -c {count} -i 0.2 -W 1 {self.address(dst)} | grep -o '[0-9]* received'"
        )
        return int(out.split()[0]) if out.strip() else 0

    def switch_stats(self, name: str) -> dict[str, Any]:
        """A switch node's counters. An eBPF node is read live (`EBPFSwitchRunner.stats`); a
        software switch writes them when it stops, so it is restarted to read them."""
        import json

        runner = self.runners[name]
        if isinstance(runner, EBPFSwitchRunner):
            return runner.stats()
        runner.stop()
        stats = json.loads((self.emu.run_dir / "nodes" / f"{name}.stats.json").read_text())
        runner.apply(self.plan.switches[name])
        result: dict[str, Any] = stats
        return result


@pytest.fixture
def icpn_network(tmp_path: Path) -> Iterator[Callable[..., Network]]:
    """Factory: `icpn_network(topology_path, dataplane="reference")` -> a running `Network`.
    `dataplane="ebpf"` runs the XDP node program on the switches' ports (EBPFSwitchRunner);
    any other name runs that data plane in Python on the ports (pyctl.net.swnode)."""
    started: list[Network] = []

    def start(
        topology: str | Path,
        dataplane: str = "reference",
        link_element: str = "icpn",
        **overrides: Any,
    ) -> Network:
        topo = load_topology(topology)
        if overrides:
            import dataclasses

            topo = dataclasses.replace(topo, **overrides)
        net = Network(topo, tmp_path / f"net{len(started)}", dataplane, link_element)
        started.append(net)
        return net

    try:
        yield start
    finally:
        for net in started:
            net.close()
