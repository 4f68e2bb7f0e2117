"""The eBPF data plane: ebpf/build/icpn_node.bpf.o run through BPF_PROG_TEST_RUN.

`configure` loads a fresh copy of the object (fresh maps: configuration and state are replaced
together) and writes the maps from the `NodeConfig`; `process` writes the packet's
`PacketContext` to the test_ctx map, runs the XDP program once on the frame, then reads the
verdict map (forward to a port, or drop with a reason) and drains the aux_out queue (IFIT
reports and PFC frames the node emitted).
"""

from __future__ import annotations

import functools
import os
import socket
import struct
from collections.abc import Callable, Iterable
from pathlib import Path

from pyctl import constants as C
from pyctl.errors import ConfigError, DataPlaneUnavailable, ICPNError, PacketError
from pyctl.model.node import NodeConfig, PacketContext
from pyctl.targets.base import FEATURES, DataPlane, Output, Result
from pyctl.targets.ebpf import attach as att
from pyctl.targets.ebpf import bpfobject, libbpf
from pyctl.targets.ebpf import maps as M
from pyctl.targets.ebpf.writer import map_sizes, node_entries
from pyctl.targets.reasons import DROP_REASONS, INTERNAL_ERROR, QUEUE_FULL, reason_name

BUILD_DIR = Path(__file__).resolve().parents[3] / "ebpf" / "build"
NODE_OBJECT = BUILD_DIR / "icpn_node.bpf.o"
NODE_PROGRAM = "icpn_node"
# An XDP test run gets one page: 256 bytes of headroom and the skb_shared_info are not data.
MAX_FRAME = 4096 - 256 - 320

# The node's drop codes beyond the contract's (maps.py): reported, counted, never expected.
OWN_REASONS: dict[int, str] = {M.DROP_INTERNAL: INTERNAL_ERROR, M.DROP_QUEUE_FULL: QUEUE_FULL}

# Every feature of the conformance vectors (pyctl.targets.base.FEATURES) is implemented.
IMPLEMENTED: frozenset[str] = frozenset(FEATURES)

# Array maps configure() writes whole; the others (hash, LPM) start empty in a fresh object.
_ARRAY_MAPS = ("ports", "policies", "policy_buckets", "sid_lists", "classifiers", "ifit_flows")


@functools.lru_cache(maxsize=4)
def _probe(path: str, mtime: float) -> str | None:
    """Whether the kernel accepts the object (cached per build of it)."""
    del mtime
    try:
        with bpfobject.BPFObject(path) as obj:
            obj.load()
    except ICPNError as e:
        return f"the kernel refuses {Path(path).name}: {str(e).splitlines()[0]}"
    return None


class EBPFDataPlane(DataPlane):
    """The node pipeline as an XDP program, driven through BPF_PROG_TEST_RUN."""

    name = "ebpf"

    @classmethod
    def unavailable(cls) -> str | None:
        if os.geteuid() != 0:
            return "needs root to load BPF programs (run with sudo)"
        reason = libbpf.available()
        if reason is not None:
            return reason
        if not NODE_OBJECT.is_file():
            return f"{NODE_OBJECT.relative_to(BUILD_DIR.parents[1])} is not built: run `make build`"
        return _probe(str(NODE_OBJECT), NODE_OBJECT.stat().st_mtime)

    @classmethod
    def supports(cls, covers: list[str]) -> str | None:
        missing = [f for f in covers if f not in IMPLEMENTED]
        if missing:
            return f"not implemented in eBPF yet: {', '.join(missing)}"
        return None

    def __init__(self, obj_path: Path = NODE_OBJECT) -> None:
        self._path = obj_path
        self._obj: bpfobject.BPFObject | None = None
        self._node: NodeConfig | None = None
        self._attached: list[tuple[int, att.XDPMode]] = []
        self._netns: int | None = None  # fd of the namespace the ifindexes belong to
        self._ports: dict[int, int] = {}  # attached port index -> ifindex
        self._sizes: dict[str, int] = {}  # max_entries the loaded object was given (map_sizes)

    def _load(self, sizes: dict[str, int] | None = None) -> bpfobject.BPFObject:
        if self._obj is not None:
            self._obj.close()
            self._obj = None
        obj = bpfobject.BPFObject(self._path)
        try:
            for name, n in (sizes or {}).items():
                obj.set_max_entries(name, n)
            obj.load()
        except ICPNError:
            obj.close()
            raise
        self._obj = obj
        return obj

    @property
    def obj(self) -> bpfobject.BPFObject:
        if self._obj is None or self._node is None:
            raise ICPNError("the eBPF data plane is not configured: call configure(node) first")
        return self._obj

    def configure(self, node: NodeConfig) -> None:
        entries = node_entries(node)
        self.detach()
        self._sizes = map_sizes(node)
        obj = self._load(self._sizes)
        obj.map("cfg").update(M.u32_key(0), entries.cfg)
        for name, items in entries.entries.items():
            m = obj.map(name)
            for n, (key, value) in enumerate(items, 1):
                try:
                    m.update(key, value)
                except ICPNError as e:
                    # a map too small for the node (E2BIG, ENOSPC): one line naming both
                    raise ConfigError(
                        f"node {node.name}: map {name!r}",
                        f"entry {n} of {len(items)} does not fit (max_entries {m.max_entries}):"
                        f" {str(e).rpartition(': ')[2]}",
                    ) from None
        self._node = node

    def reconfigure(self, node: NodeConfig) -> bool:
        """Write `node`'s tables into the running program instead of loading a new one: what
        the program keeps (IFIT counters, elephant and queue state) carries on and no frame
        meets a port between two programs. Only entries that differ are written; entries the
        old tables had and the new lack are deleted (zeroed in arrays). False, with nothing
        written, when the ports or the routes differ or the maps were sized at load for fewer
        entries (`map_sizes`): the caller loads a fresh program then.

        Between the first and the last write a frame can meet a mix of the two tables (the
        controller steering one flow: microseconds), as on a router updating its FIB."""
        if self._obj is None or self._node is None:
            return False
        if [(p.index, p.mac) for p in node.ports] != [(p.index, p.mac) for p in self._node.ports]:
            return False
        if any(n > self._sizes.get(name, 0) for name, n in map_sizes(node).items()):
            return False  # maps sized at load for fewer entries than `node` has
        new, old = node_entries(node), node_entries(self._node)
        if any(new.entries.get(f) != old.entries.get(f) for f in ("fib6", "fib4")):
            return False  # the program caches route lookups (fib.h): a route change re-loads
        for name in sorted(new.entries.keys() | old.entries.keys()):
            m = self._obj.map(name)
            want, had = dict(new.entries.get(name, [])), dict(old.entries.get(name, []))
            for key, value in want.items():
                if had.get(key) != value:
                    m.update(key, value)
            for key in had.keys() - want.keys():
                if m.array:
                    m.update(key, bytes(m.value_size))
                else:
                    m.delete(key)
        # the bits `attach` set for where the program runs (real ports, the kernel's FIB) stay
        cfg_map = self._obj.map("cfg")
        raw = cfg_map.lookup(M.u32_key(0))
        placed = M.Cfg.from_buffer_copy(raw).flags if raw else M.CFG_TEST_MODE
        keep = M.CFG_TEST_MODE | M.CFG_FIB_HELPER
        new.cfg.flags = (new.cfg.flags & ~keep) | (placed & keep)
        cfg_map.update(M.u32_key(0), new.cfg)
        self._node = node
        return True

    def map(self, name: str) -> bpfobject.Map:
        """A map of the loaded node program, for counters and inspection."""
        return self.obj.map(name)

    def _test_ctx(self, ctx: PacketContext) -> M.TestCtx:
        t = M.TestCtx(time_us=ctx.time_us, rand32=ctx.rand32, in_port=ctx.in_port)
        checks = (
            ("time_us", ctx.time_us, 1 << 64),
            ("rand32", ctx.rand32, 1 << 32),
            ("in_port", ctx.in_port, C.MAX_PORTS),
        )
        for name, value, end in checks:
            if not 0 <= value < end:
                raise PacketError(f"PacketContext.{name} = {value!r} is out of range [0, {end})")
        for field_name in ("egress_queue_bytes", "egress_queue_packets"):
            arr = getattr(t, field_name)
            for port, n in getattr(ctx, field_name).items():
                if not 0 <= port < C.MAX_PORTS:
                    raise PacketError(f"PacketContext.{field_name}: port {port!r} out of range")
                arr[port] = n
        for (port, prio), n in ctx.ingress_queue_bytes.items():
            if not (0 <= port < C.MAX_PORTS and 0 <= prio < M.PRIORITIES):
                raise PacketError(
                    f"PacketContext.ingress_queue_bytes: ({port!r}, {prio!r}) is not "
                    f"(port < {C.MAX_PORTS}, priority < {M.PRIORITIES})"
                )
            t.ingress_queue_bytes[port * M.PRIORITIES + prio] = n
        return t

    def process(self, frame: bytes, ctx: PacketContext) -> Result:
        obj, node = self.obj, self._node
        assert node is not None
        if self._attached:
            raise ICPNError("the eBPF node is attached to interfaces; process() is for test runs")
        if ctx.in_port not in {p.index for p in node.ports}:
            known = sorted(p.index for p in node.ports)
            raise PacketError(f"ctx.in_port {ctx.in_port} is not a port of {node.name} {known}")
        if len(frame) < 14:
            raise PacketError(f"frame of {len(frame)} bytes: the eBPF node takes 14..{MAX_FRAME}")
        if len(frame) > MAX_FRAME:
            # A limit of this plane (one page per XDP test run, no frags), not a bad frame: the
            # conformance runner reports it as a skip (e.g. srv6/encaps-too-big's 64 KiB frames).
            raise DataPlaneUnavailable(
                f"frame of {len(frame)} bytes: the eBPF node takes 14..{MAX_FRAME}"
            )
        obj.map("test_ctx").update(M.u32_key(0), self._test_ctx(ctx))
        aux = obj.map("aux_out")
        while aux.pop() is not None:
            pass
        verdict = obj.map("verdict")
        verdict.update(M.u32_key(0), M.Verdict())
        run = obj.program(NODE_PROGRAM).test_run(frame)
        raw = verdict.lookup(M.u32_key(0))
        v = M.Verdict.from_buffer_copy(raw) if raw is not None else M.Verdict()
        outputs = self.drain_aux()
        if v.action == M.ACT_FORWARD:
            return Result([*outputs, Output(v.port, run.data)])
        if v.action == M.ACT_DROP:
            return Result(outputs, drop=reason_name(v.drop, OWN_REASONS))
        raise ICPNError(f"icpn_node returned {run.retval} without a verdict (aborted)")

    def stats(self) -> dict[str, int]:
        """Packet counters summed over CPUs: rx, forward (fast-end: of those, by the End fast
        path), aux, and drops by reason."""
        m = self.obj.map("stats")
        ncpu = m.buffer_size // 8
        out: dict[str, int] = {}
        names = {M.STAT_RX: "rx", M.STAT_FORWARD: "forward", M.STAT_AUX: "aux"}
        names[M.STAT_AUX_LOST] = "aux-lost"
        names[M.STAT_FAST_END] = "fast-end"
        for code, reason in {**DROP_REASONS, **OWN_REASONS}.items():
            names[M.STAT_DROP_BASE + code] = f"drop:{reason}"
        for idx, label in names.items():
            raw = m.lookup(M.u32_key(idx)) or bytes(m.buffer_size)
            out[label] = sum(int.from_bytes(raw[i * 8 : i * 8 + 8], "little") for i in range(ncpu))
        return out

    def port_stats(self) -> dict[int, dict[str, int]]:
        """Per-port egress counters summed over CPUs (ports with any traffic): tx_packets,
        tx_bytes, queue_drops and queue_drop_bytes (live tail drops), ce_marked."""
        m = self.obj.map("port_stats")
        names = [f[0] for f in M.PortStats._fields_]
        out: dict[int, dict[str, int]] = {}
        for port in range(C.MAX_PORTS):
            total = dict.fromkeys(names, 0)
            for st in M.per_cpu(m.lookup(M.u32_key(port)), M.PortStats):
                for name in names:
                    total[name] += getattr(st, name)
            if any(total.values()):
                out[port] = total
        return out

    def shape_ports(self, shapes: dict[int, tuple[int, int]]) -> None:
        """Live mode: port -> (line rate in bit/s, buffer in bytes). Each port's virtual queue
        drains at its rate, and a packet that would take it past the buffer is dropped
        (`drop:queue-full`, counted per port); a buffer of 0 means no limit. Test runs ignore
        this (their queue depths come from the PacketContext)."""
        node = self._node
        m = self.obj.map("port_shape")
        known = {p.index for p in node.ports} if node else set()
        for port, (rate, limit) in shapes.items():
            if port not in known:
                raise ConfigError("shape_ports", f"port {port} is not a port of the node")
            if not (0 < rate < 1 << 64 and 0 <= limit < 1 << 64):
                raise ConfigError(f"shape_ports: port {port}", f"rate {rate} / buffer {limit}")
            m.update(M.u32_key(port), M.PortShape(rate_bps=rate, limit_bytes=limit))

    def set_tap(self, port: int, on: bool) -> None:
        """Live capture: copy every frame `port` receives and sends to the `taps` ring (XDP takes
        frames before packet sockets see them, and redirects past them)."""
        if not 0 <= port < C.MAX_PORTS:
            raise ConfigError("set_tap", f"port {port} is out of range [0, {C.MAX_PORTS})")
        self.obj.map("tap_ports").update(M.u32_key(port), M.u32_key(1 if on else 0))

    def tap_reader(self, on_frame: Callable[[int, int, bytes], None]) -> bpfobject.RingBuffer:
        """A reader of the `taps` ring: its `poll` calls `on_frame(port, direction, frame)`
        (direction `maps.TAP_IN` or `TAP_OUT`; frames are cut at `maps.TAP_SNAP` octets)."""

        def record(raw: bytes) -> None:
            if len(raw) < M.TAP_HEADER:
                return
            port, direction, _length, caplen = struct.unpack_from("=IIII", raw)
            on_frame(port, direction, raw[M.TAP_HEADER : M.TAP_HEADER + caplen])

        return bpfobject.RingBuffer(self.obj.map("taps"), record)

    def program_id(self) -> int:
        """The kernel's id of the loaded node program (what an interface reports attached)."""
        fdinfo = Path(f"/proc/self/fdinfo/{self.obj.program(NODE_PROGRAM).fd}").read_text()
        for line in fdinfo.splitlines():
            key, _, value = line.partition(":")
            if key == "prog_id":
                return int(value)
        raise ICPNError(f"{NODE_PROGRAM}: the kernel reports no prog_id for its fd")

    def hand_over(self) -> None:
        """Forget the interfaces this node is attached to without detaching it: another loaded
        node has replaced its program there (a re-push without a gap). `close()` then only
        releases this object's program and maps."""
        self._attached.clear()
        self._ports.clear()
        if self._netns is not None:
            os.close(self._netns)
            self._netns = None

    def ifit_counters(
        self, flowmon_ids: Iterable[int] | None = None
    ) -> dict[tuple[int, int], tuple[int, int]]:
        """(FlowMonID, colour) -> (packets, bytes), summed over CPUs. With `flowmon_ids`, only
        those: two slot lookups each instead of all the slots (a period's export of a whole
        network then costs a few syscalls a node, not thousands)."""
        totals: dict[tuple[int, int], list[int]] = {}
        wanted = None if flowmon_ids is None else set(flowmon_ids)

        def add(fid: int, color: int, c: M.Counter) -> None:
            t = totals.setdefault((fid, color), [0, 0])
            t[0] += c.packets
            t[1] += c.bytes

        slots = self.obj.map("ifit_slots")
        indexes = (
            range(M.IFIT_SLOTS)
            if wanted is None  # the slot of (FlowMonID, L), as ifit.h picks it
            else sorted({(f * 2 + c) & (M.IFIT_SLOTS - 1) for f in wanted for c in (0, 1)})
        )
        for idx in indexes:
            for slot in M.per_cpu(slots.lookup(M.u32_key(idx)), M.IFITSlot):
                if slot.count.packets and (wanted is None or slot.key.flowmon_id in wanted):
                    add(slot.key.flowmon_id, slot.key.color, slot.count)
        m = self.obj.map("ifit_counters")
        for key in m.keys():
            k = M.IFITCounterKey.from_buffer_copy(key)
            if wanted is not None and k.flowmon_id not in wanted:
                continue
            for c in M.per_cpu(m.lookup(key), M.Counter):
                add(k.flowmon_id, k.color, c)
        return {k: (v[0], v[1]) for k, v in totals.items()}

    def attach(
        self, ifindexes: dict[int, int], mode: att.XDPMode = "generic", kernel_fib: bool = False
    ) -> None:
        """Run the configured node on real interfaces (port index -> ifindex, in this network
        namespace): the ports' maps get the ifindexes, test mode is switched off, and icpn_node
        is attached as XDP to each. IFIT reports and PFC frames then wait in the aux_out queue
        for an agent to send (`send_aux`). With `kernel_fib`, routes come from the namespace's
        kernel FIB and neighbour table (bpf_fib_lookup) instead of the node's `routes`."""
        obj, node = self.obj, self._node
        assert node is not None
        ports, tx_port = obj.map("ports"), obj.map("tx_port")
        if_fast, if_port = obj.map("if_port_fast"), obj.map("if_port")
        for index, ifindex in ifindexes.items():
            raw = ports.lookup(M.u32_key(index))
            port = M.Port.from_buffer_copy(raw) if raw else M.Port()
            if not port.valid:
                raise ConfigError(f"node {node.name}: ports", f"port {index} is not configured")
            port.ifindex = ifindex
            ports.update(M.u32_key(index), port)
            if ifindex < M.IFINDEX_FAST:
                if_fast.update(M.u32_key(ifindex), M.u32_key(index + 1))
            else:
                if_port.update(M.u32_key(ifindex), M.u32_key(index))
            tx_port.update(M.u32_key(index), M.u32_key(ifindex))
        cfg_map = obj.map("cfg")
        raw_cfg = cfg_map.lookup(M.u32_key(0))
        cfg = M.Cfg.from_buffer_copy(raw_cfg) if raw_cfg else M.Cfg()
        cfg.flags &= ~M.CFG_TEST_MODE
        cfg.flags = cfg.flags | M.CFG_FIB_HELPER if kernel_fib else cfg.flags & ~M.CFG_FIB_HELPER
        cfg_map.update(M.u32_key(0), cfg)
        prog = obj.program(NODE_PROGRAM)
        if self._netns is None:
            self._netns = att.current_netns()
        for ifindex in ifindexes.values():
            att.attach_xdp(ifindex, prog.fd, mode)
            self._attached.append((ifindex, mode))
        self._ports.update(ifindexes)

    def detach(self) -> None:
        """Take icpn_node off every interface `attach` put it on (in the namespace it was in,
        whichever thread calls this)."""
        fd, self._netns = self._netns, None
        self._ports.clear()
        if fd is None:
            return
        try:
            while self._attached:
                ifindex, mode = self._attached.pop()
                att.in_netns(fd, functools.partial(att.detach_xdp, ifindex, mode))
        finally:
            os.close(fd)

    def send_aux(self) -> int:
        """Live mode: send the frames the node queued (IFIT reports, PFC frames) out of their
        ports, from the namespace the node is attached in; returns how many were sent. An agent
        calls this periodically (XDP cannot create frames of its own)."""
        if self._netns is None:
            raise ICPNError("send_aux() needs the node attached to interfaces (attach())")
        frames = self.drain_aux()
        ifindex = dict(self._ports)

        def send() -> int:
            sent = 0
            for out in frames:
                if out.port not in ifindex:
                    continue
                with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
                    sock.bind((socket.if_indextoname(ifindex[out.port]), 0))
                    sock.send(out.frame)
                sent += 1
            return sent

        return att.in_netns(self._netns, send)

    def drain_aux(self) -> list[Output]:
        """Frames the node emitted besides forwarding (IFIT reports, PFC), oldest first."""
        aux, out = self.obj.map("aux_out"), []
        while (item := aux.pop()) is not None:
            f = M.Frame.from_buffer_copy(item)
            out.append(Output(f.port, bytes(f.data[: f.len])))
        return out

    def close(self) -> None:
        self.detach()
        if self._obj is not None:
            self._obj.close()
            self._obj = None
        self._node = None
