"""ICPN's link element from Python: start `icpn_linkd` (ebpf/linkd/icpn_linkd.c) inside a run's
links namespace, give it links (pairs of interfaces), set each direction's `LinkModel`, change
models and take links down/up at run time, read counters, stop it.

Why an element of our own: XDP_REDIRECT bypasses every qdisc, so netem/HTB/TBF never see frames
an eBPF node forwards (and some kernels have no netem). A link a<->b becomes
a <-> L_a [element] L_b <-> b; the element forwards L_a->L_b and L_b->L_a obeying the model.

The caller creates the veths and hands a `Spawn`: anything that starts an argv inside the links
namespace and returns its `subprocess.Popen` (a Mininet node's `popen`, `spawn_in_netns(name)`,
`spawn_in_netns_of(pid)`). docs/links.md describes the model and the command protocol.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pyroute2 import IPRoute

from pyctl import ifconf
from pyctl.errors import ICPNError
from pyctl.model.link import Direction, LinkModel, check_number
from pyctl.targets.ebpf import attach as att
from pyctl.targets.ebpf.bpfobject import BPFObject

BUILD_DIR = Path(__file__).resolve().parents[2] / "ebpf" / "build"
LINKD_BINARY = BUILD_DIR / "icpn_linkd"
PASS_OBJECT = BUILD_DIR / "icpn_bench.bpf.o"
PASS_PROGRAM = "icpn_pass"  # XDP_PASS: a veth only takes redirected frames with XDP attached
TEST_ETHERTYPE = 0x88B5  # the frames of --gen / --sink


class LinkdError(ICPNError):
    """The element failed or refused a command; the message is its one-line answer."""


def linkd_binary() -> Path:
    if not LINKD_BINARY.is_file():
        raise ICPNError(f"icpn_linkd: {LINKD_BINARY} is not built (run make build)")
    return LINKD_BINARY


@dataclass(frozen=True)
class Counters:
    """One direction: every received frame is sent (tx), dropped for one reason, or in flight."""

    rx: int
    rx_bytes: int
    tx: int
    tx_bytes: int
    dropped_loss: int
    dropped_queue: int
    dropped_down: int
    dropped_tx: int
    in_flight: int


@dataclass(frozen=True)
class LinkStats:
    up: bool
    a2b: Counters
    b2a: Counters


class Spawn(Protocol):
    """Start argv inside the links namespace (Popen keyword arguments pass through)."""

    def __call__(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]: ...


def spawn_in_netns(name: str) -> Spawn:
    """A Spawn for a named namespace (`ip netns add`), through `ip netns exec`."""

    def spawn(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["ip", "netns", "exec", name, *argv], **kwargs)

    return spawn


def spawn_in_netns_of(pid: int) -> Spawn:
    """A Spawn for the namespace process `pid` is in (a Mininet node's shell), via nsenter."""

    def spawn(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["nsenter", f"--net=/proc/{pid}/ns/net", *argv], **kwargs)

    return spawn


@dataclass
class _Link:
    if_a: str
    if_b: str
    ifindexes: list[int] = field(default_factory=list)


class LinkElement:
    """One `icpn_linkd` serving every link of a run. Commands are answered in order; a refused
    one raises LinkdError with the element's reason. Use as a context manager or call stop()."""

    def __init__(
        self,
        spawn: Spawn,
        *,
        seed: int | None = None,
        rt_priority: int | None = None,
        timeout_s: float = 5.0,
        xdp_pass: bool = True,
    ) -> None:
        """rt_priority: run the element SCHED_FIFO at that priority (1-99) so that a busy
        machine's other tasks cannot hold departures back (docs/links.md: the tail of the delay
        error on a loaded machine is scheduling latency)."""
        argv = [str(linkd_binary())]
        if seed is not None:
            argv += ["--seed", str(int(seed))]
        if rt_priority is not None:
            check_number("link element", "rt_priority", rt_priority, 1, 99)
            argv += ["--rt-prio", str(int(rt_priority))]
        self.timeout_s = timeout_s
        self.links: dict[str, _Link] = {}
        self._buf = b""
        # one command and its answer at a time: the live view samples stats from its own thread
        self._lock = threading.Lock()
        self._xdp_pass = xdp_pass
        self._bpf: BPFObject | None = None
        self._ns_fd: int | None = None
        self._stderr = tempfile.TemporaryFile()  # read when the element fails
        self.proc = spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        try:
            # the first answer proves icpn_linkd runs (so /proc/<pid>/ns/net is its namespace,
            # not the one of a wrapper that had not entered it yet)
            self.command("stats")
            self._ns_fd = os.open(f"/proc/{self.proc.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    # -- the command channel ---------------------------------------------------------------

    def _readline(self) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            # poll, not select: a process running 1,000 nodes holds fds above select's 1024
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            ready = poller.poll(self.timeout_s * 1000)
            chunk = os.read(fd, 65536) if ready else b""
            if not chunk:
                raise LinkdError(f"icpn_linkd: {self._why_gone(bool(ready))}")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode(errors="replace")

    def _why_gone(self, eof: bool) -> str:
        if not eof:
            return f"no answer within {self.timeout_s:g} s"
        self._stderr.seek(0)
        err = self._stderr.read().decode(errors="replace").strip().splitlines()
        rc = self.proc.poll()
        return err[-1] if err else f"exited (status {rc})"

    def command(self, line: str) -> str:
        """Send one command; return what follows `ok` or raise LinkdError."""
        if "\n" in line:
            raise LinkdError(f"icpn_linkd: one command a line: {line!r}")
        assert self.proc.stdin is not None
        with self._lock:
            try:
                self.proc.stdin.write(line.encode() + b"\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                raise LinkdError(f"icpn_linkd: {self._why_gone(True)}") from None
            answer = self._readline()
        if answer == "ok" or answer.startswith("ok "):
            return answer[3:]
        raise LinkdError(f"icpn_linkd: {answer.removeprefix('error ')}")

    # -- links -----------------------------------------------------------------------------

    def _in_ns(self, fn: Any) -> Any:
        assert self._ns_fd is not None
        return att.in_netns(self._ns_fd, fn)

    def _prepare(self, ifnames: list[str]) -> list[int]:
        """Make L_* interfaces fit for the element (in its namespace, in one visit and without a
        process per setting: pyctl.ifconf): up, no IPv6 of their own (no DAD/RS frames towards
        the node), one frame per packet (no GRO/TSO/GSO; LRO is fixed off on veths), and an
        XDP_PASS program so frames XDP_REDIRECTed into their veth peers are not lost."""

        def work() -> list[int]:
            indexes = []
            with IPRoute() as ipr:
                for ifname in ifnames:
                    index = att.ifindex_of(ifname, ipr)
                    ifconf.sysctl(f"net.ipv6.conf.{ifname}.disable_ipv6", "1")
                    ifconf.set_offloads(ifname, ("gro", "tso", "gso"))
                    if self._xdp_pass:
                        att.attach_xdp(index, self._pass_fd(), "native")
                    ifconf.set_links({ifname: {"state": "up"}}, ipr)
                    indexes.append(index)
            return indexes

        try:
            return list(self._in_ns(work))
        except (OSError, ICPNError) as exc:
            raise LinkdError(f"icpn_linkd: preparing {', '.join(ifnames[:4])}: {exc}") from None

    def _pass_fd(self) -> int:
        if self._bpf is None:
            obj = BPFObject(PASS_OBJECT)
            try:
                obj.load()
            except BaseException:
                obj.close()
                raise
            self._bpf = obj
        return self._bpf.program(PASS_PROGRAM).fd

    def add(
        self,
        link_id: str,
        if_a: str,
        if_b: str,
        a2b: LinkModel | None = None,
        b2a: LinkModel | None = None,
    ) -> None:
        """Carry frames between if_a and if_b (interfaces of the links namespace), each way
        with its model (b2a defaults to a2b's; both default to a plain wire)."""
        self.add_many([(link_id, if_a, if_b, a2b, b2a)])

    def add_many(
        self, links: list[tuple[str, str, str, LinkModel | None, LinkModel | None]]
    ) -> None:
        """`add` for many links (link_id, if_a, if_b, a2b, b2a): their interfaces are prepared
        in one visit to the namespace."""
        for link_id, if_a, if_b, _, _ in links:
            self.links[link_id] = _Link(if_a, if_b)  # before preparing: stop() undoes it
        indexes = self._prepare([i for _, a, b, _, _ in links for i in (a, b)])
        for n, (link_id, if_a, if_b, a2b, b2a) in enumerate(links):
            self.links[link_id].ifindexes = indexes[2 * n : 2 * n + 2]
            self.command(f"add {link_id} {if_a} {if_b}")
            self.set(link_id, "a2b", a2b or LinkModel())
            self.set(link_id, "b2a", b2a or a2b or LinkModel())

    def set(self, link_id: str, direction: Direction, model: LinkModel) -> None:
        """Change a direction's model; frames already in flight keep their departure."""
        self.command(f"set {link_id} {direction} {' '.join(model.tokens())}")

    def down(self, link_id: str) -> None:
        self.command(f"down {link_id}")

    def up(self, link_id: str) -> None:
        self.command(f"up {link_id}")

    def remove(self, link_id: str) -> None:
        self.command(f"del {link_id}")
        self._release(self.links.pop(link_id))

    def stats(self) -> dict[str, LinkStats]:
        data = json.loads(self.command("stats"))["links"]
        return {
            lid: LinkStats(bool(v["up"]), Counters(**v["a2b"]), Counters(**v["b2a"]))
            for lid, v in data.items()
        }

    # -- teardown --------------------------------------------------------------------------

    def _release(self, link: _Link) -> None:
        """Take the XDP_PASS program off the link's interfaces (if they are still there)."""
        if not self._xdp_pass or self._ns_fd is None:
            return
        for index in link.ifindexes:
            try:
                self._in_ns(lambda i=index: att.detach_xdp(i, "native"))
            except ICPNError:
                pass  # the interface went with its namespace

    def stop(self) -> None:
        """Quit the element (SIGTERM, then SIGKILL if it hangs) and release everything."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(2)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        for link in self.links.values():
            self._release(link)
        self.links.clear()
        if self._ns_fd is not None:
            os.close(self._ns_fd)
            self._ns_fd = None
        if self._bpf is not None:
            self._bpf.close()
            self._bpf = None
        self._stderr.close()

    def __enter__(self) -> LinkElement:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- test traffic: icpn_linkd --gen / --sink (bench/links.py, tests/test_linkd.py) ---------------


def gen_argv(
    ifname: str,
    size: int,
    *,
    rate_fps: float = 0,
    duration_s: float = 1.0,
    count: int | None = None,
) -> list[str]:
    """Frames of `size` bytes (ethertype 0x88b5, sequence number, CLOCK_MONOTONIC send time),
    paced at rate_fps (0: as fast as the sender can) for duration_s or until `count`."""
    argv = [str(linkd_binary()), "--gen", ifname, "--size", str(size)]
    argv += ["--rate", str(rate_fps), "--duration", str(duration_s)]
    return argv + (["--count", str(count)] if count else [])


def sink_argv(ifname: str, *, duration_s: float = 60.0, idle_ms: int = 500) -> list[str]:
    """Count the test frames arriving on ifname until duration_s, or idle_ms after the last."""
    return [str(linkd_binary()), "--sink", ifname, "--duration", str(duration_s),
            "--idle-ms", str(idle_ms)]  # fmt: skip


@dataclass(frozen=True)
class SinkResult:
    received: int
    bytes: int
    max_seq: int
    reordered: int
    span_s: float  # first to last arrival
    delay_ns: dict[str, float]  # n, min, p50, p99, max, mean of the one-way delays


class Sink:
    """A running `--sink`; result() waits for its JSON line."""

    def __init__(self, spawn: Spawn, ifname: str, *, duration_s: float = 60, idle_ms: int = 500):
        self.proc = spawn(
            sink_argv(ifname, duration_s=duration_s, idle_ms=idle_ms),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline().decode().strip()
        if ready != "ready":
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            self.close()
            raise LinkdError(f"icpn_linkd --sink: {err.strip() or ready or 'no ready line'}")

    def result(self, timeout_s: float = 120) -> SinkResult:
        out, err = self.proc.communicate(timeout=timeout_s)
        if self.proc.returncode != 0:
            raise LinkdError(f"icpn_linkd --sink: {err.decode().strip()}")
        return SinkResult(**json.loads(out.decode().strip().splitlines()[-1]))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


def generate(spawn: Spawn, ifname: str, size: int, **kw: Any) -> dict[str, float]:
    """Run the generator to its end; return {"sent", "errors", "seconds"}."""
    proc = spawn(gen_argv(ifname, size, **kw), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise LinkdError(f"icpn_linkd --gen: {err.decode().strip()}")
    result: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
    return result
