"""The Linux kernel's seg6 / seg6local as a data plane: an outside oracle for SRv6.

One instance = two network namespaces: the node (ports `p<i>`, routes, seg6local SIDs, policies
as seg6 encapsulation routes) and a tester namespace holding the peers `t<i>`, where frames are
injected and collected with AF_PACKET sockets. Nothing is created in the root namespace.

The kernel does not say why it dropped a packet, so drops carry "kernel-dropped" (with the MIB
counters that moved, e.g. "kernel-dropped:Ip6InNoRoutes") or, when the node answered with an
ICMP error, "kernel-icmp-<type>"; `exact_drop_reasons = False` tells the conformance runner to
accept any reason from this plane, and `comparable` blanks what docs/kernel-oracle.md lists as
left to the node or as a documented Linux difference.
"""

from __future__ import annotations

import functools
import os
import select
import socket
import time

from pyctl import netns
from pyctl.errors import DataPlaneUnavailable, PacketError
from pyctl.model.node import FlowLabelMode, NodeConfig, PacketContext
from pyctl.targets.base import DataPlane, Output, Result
from pyctl.targets.kernel.capture import Counters, drop_counters, open_port_socket, triage
from pyctl.targets.kernel.plan import (
    SINK_IF,
    KernelPlan,
    KernelUnsupported,
    build_plan,
    tester_ifname,
    unsupported_features,
)
from pyctl.targets.kernel.probe import probe

DEFAULT_PREFIX = "icpn-k"
DROP_WAIT_S = 0.03  # nothing out after this long: the packet was dropped
QUIET_S = 0.002  # after an output, wait this long for more before returning
SINK_PORT = -1  # the sink's key among the capture sockets
_V6_EXT = (0, 43, 60)


def cleanup_stale(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Remove namespaces this plane left behind in processes that are gone; return their names."""
    return netns.cleanup_stale(prefix)


def comparable(frame: bytes, node: NodeConfig) -> bytes:
    """`frame` with the bytes blanked that may differ between this plane and SPEC by design.

    Only a packet this node encapsulated (outer IPv6 from `node.source`) is touched: the flow
    label when the node hashes it (SPEC: CRC32 of the flow key; Linux: its skb hash), and over an
    IPv4 inner packet the hop limit and traffic class (Linux: default hop limit 64 and TC 0;
    SPEC: TTL and TOS copied). Apply it to the expected and the produced frame alike.
    """
    if node.source is None or not node.policies or len(frame) < 54 or frame[12:14] != b"\x86\xdd":
        return frame
    if frame[22:38] != node.source.packed:
        return frame
    nh, p = frame[20], 54
    while nh in _V6_EXT and p + 2 <= len(frame):
        nh, p = frame[p], p + (frame[p + 1] + 1) * 8
    out = bytearray(frame)
    if node.flowlabel is FlowLabelMode.HASH:
        out[15] &= 0xF0
        out[16] = out[17] = 0
    if nh == 4:
        out[21] = 0
        out[14] &= 0xF0
        out[15] &= 0x0F
    return bytes(out)


class KernelDataPlane(DataPlane):
    name = "kernel"
    exact_drop_reasons = False  # the kernel reports no drop reasons (see the module docstring)

    def __init__(
        self,
        prefix: str = DEFAULT_PREFIX,
        drop_wait_s: float = DROP_WAIT_S,
        quiet_s: float = QUIET_S,
    ) -> None:
        self.prefix = prefix
        self.drop_wait_s = drop_wait_s
        self.quiet_s = quiet_s
        self._owner_pid = os.getpid()
        self._node_ns: netns.Netns | None = None
        self._tester_ns: netns.Netns | None = None
        self._plan: KernelPlan | None = None
        self._socks: dict[int, socket.socket] = {}
        self._port_of_fd: dict[int, int] = {}
        self._poll = select.poll()
        self._counters: Counters | None = None

    @classmethod
    def unavailable(cls) -> str | None:
        return probe().problem

    @classmethod
    def supports(cls, covers: list[str]) -> str | None:
        """None when the kernel implements every feature in `covers`, else a one-line reason."""
        caps = probe()
        return caps.problem or unsupported_features(covers, caps)

    comparable = staticmethod(comparable)

    @property
    def namespaces(self) -> tuple[str, ...]:
        """The (node, tester) namespace names while configured."""
        return tuple(ns.name for ns in (self._node_ns, self._tester_ns) if ns is not None)

    def configure(self, node: NodeConfig) -> None:
        self.close()
        caps = probe()
        if caps.problem:
            raise DataPlaneUnavailable(f"kernel: {caps.problem}")
        cleanup_stale(self.prefix)
        base = netns.unique_name(self.prefix)
        plan = build_plan(node, caps, tester_ns=f"{base}-t")  # raises before anything exists
        try:
            self._node_ns = netns.create(base)
            self._tester_ns = netns.create(f"{base}-t")
            self._apply(plan, self._node_ns, self._tester_ns)
            captures = {p.index: tester_ifname(p.index) for p in node.ports}
            if plan.sink:
                captures[SINK_PORT] = SINK_IF
            for port, ifname in captures.items():
                sock = self._tester_ns.run(functools.partial(open_port_socket, ifname))
                self._socks[port] = sock
                self._port_of_fd[sock.fileno()] = port
                self._poll.register(sock.fileno(), select.POLLIN)
            self._counters = self._node_ns.run(Counters)
            self._plan = plan
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _apply(plan: KernelPlan, node_ns: netns.Netns, tester_ns: netns.Netns) -> None:
        tester_ns.sysctl(plan.tester_sysctls)
        node_ns.sysctl(plan.node_sysctls)
        node_ns.ip_batch(plan.veth_cmds)
        tester_ns.ip_batch(plan.tester_cmds)
        node_ns.ip_batch(plan.node_cmds)
        node_ns.sysctl(plan.port_sysctls)
        node_ns.ip_batch(plan.v6_cmds, family="-6")
        node_ns.ip_batch(plan.v4_cmds, family="-4")

    def _drain(self) -> None:
        for sock in self._socks.values():
            while True:
                try:
                    sock.recv(65535)
                except BlockingIOError:
                    break

    def _collect(self, plan: KernelPlan) -> list[tuple[int, bytes]]:
        """Frames leaving the node until `drop_wait_s` passes with none, or `quiet_s` after one."""
        frames: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + self.drop_wait_s
        while (left := deadline - time.monotonic()) > 0:
            for fd, _ in self._poll.poll(left * 1000):
                port = self._port_of_fd[fd]
                sock = self._socks[port]
                while True:
                    try:
                        data = sock.recv(65535)
                    except BlockingIOError:
                        break
                    if triage(data, plan.local_v6, plan.local_v4).kind != "chatter":
                        frames.append((port, data))
                        deadline = time.monotonic() + self.quiet_s
        return frames

    def process(self, frame: bytes, ctx: PacketContext) -> Result:
        plan, counters = self._plan, self._counters
        if plan is None or counters is None:
            raise PacketError("kernel data plane: process() before configure()")
        sock = self._socks.get(ctx.in_port) if ctx.in_port != SINK_PORT else None
        if sock is None:
            ports = sorted(p for p in self._socks if p != SINK_PORT)
            raise PacketError(f"ctx.in_port {ctx.in_port} is not a port of the node {ports}")
        if len(frame) < 14:
            raise PacketError(f"frame of {len(frame)} bytes is shorter than an Ethernet header")
        self._drain()
        before = counters.read()
        sock.send(frame)
        outputs: list[Output] = []
        icmp: list[str] = []
        for port, data in self._collect(plan):
            if port == SINK_PORT:
                reason = plan.sink.get(data[:6].hex(":"), "a SID or policy this kernel lacks")
                raise KernelUnsupported(f"the packet needs {reason}")
            t = triage(data, plan.local_v6, plan.local_v4)
            if t.reason is not None:
                icmp.append(t.reason)
            else:
                outputs.append(Output(port, data))
        if icmp:
            return Result(outputs=outputs, drop=icmp[0])
        if outputs:
            return Result(outputs=outputs)
        moved = drop_counters(before, counters.read())
        return Result(drop="kernel-dropped" + (":" + ",".join(moved) if moved else ""))

    def close(self) -> None:
        for sock in self._socks.values():
            self._poll.unregister(sock.fileno())
            sock.close()
        self._socks.clear()
        self._port_of_fd.clear()
        if self._counters is not None:
            self._counters.close()
            self._counters = None
        self._plan = None
        for ns in (self._tester_ns, self._node_ns):
            if ns is not None:
                ns.delete()
        self._node_ns = self._tester_ns = None

    def __del__(self) -> None:
        # a forgotten close() must not leave namespaces behind (a forked child does not own them)
        if getattr(self, "_owner_pid", None) == os.getpid() and getattr(self, "_node_ns", None):
            self.close()
