"""The Mininet pieces of a network over several servers (pyctl.net.cluster builds the network).

Node and link classes on Mininet's cluster mode (`RemoteHost`, a VXLAN `RemoteLink`), the link
element of a server that is not this machine, and the runner of a switch on another server
(its data plane in `pyctl.net.cluster_agent`, reached over ssh).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import pyctl
from pyctl.errors import ICPNError
from pyctl.model.link import Direction, LinkModel
from pyctl.net.linkd import LinkElement, LinkStats, Spawn

VXLAN_PORT = 4789
SSH_OPTIONS = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
# where pyctl is imported from: a remote python gets it as PYTHONPATH (same path on each server)
PACKAGE_ROOT = Path(pyctl.__file__).resolve().parents[1]


class ClusterError(ICPNError):
    """A server cannot be used, or a step on one failed; the message names the server."""


def remote_host_class(ssh_config: Path | None) -> type:
    """RemoteHost with ICPN's ssh options, argv quoted for the remote shell, and pyctl importable
    there from the same path."""
    from mininet.examples.cluster import RemoteHost

    base: list[str] = ["ssh", "-q", *SSH_OPTIONS]
    if ssh_config is not None:
        base += ["-F", str(ssh_config)]

    class ICPNRemoteHost(RemoteHost):
        sshbase = [*base, "-tt"]

        def popen(self, *args: Any, **kwargs: Any) -> Any:
            if self.isRemote and len(args) == 1 and isinstance(args[0], list):
                # ssh joins the argv into one command line for the remote shell
                argv = ["env", f"PYTHONPATH={PACKAGE_ROOT}", *args[0]]
                args = ([shlex.quote(str(a)) for a in argv],)
            return super().popen(*args, **kwargs)

    return ICPNRemoteHost


def _root_cmd(node: Any, cmd: str) -> str:
    """Run a command in the root namespace of the server `node` is on; its output."""
    if getattr(node, "isRemote", False):
        return str(node.rcmd(cmd))
    out = subprocess.run(cmd, shell=True, capture_output=True, text=True, check=False)
    return out.stdout + out.stderr


@cache
def vxlan_link_class() -> type:
    from mininet.examples.cluster import RemoteLink

    class VXLANLink(RemoteLink):
        """RemoteLink whose tunnel between two servers is a VXLAN pair (one VNI a link, UDP
        4789 between the servers' addresses): kernel forwarding, no ssh process per link, any
        MTU the servers' network carries. On one server it is RemoteLink's veth."""

        vni_base = 0  # set per run (the run's prefix), so two runs never share a VNI
        count = 0

        def makeTunnel(
            self,
            node1: Any,
            node2: Any,
            intfname1: str,
            intfname2: str,
            addr1: str | None = None,
            addr2: str | None = None,
        ) -> None:
            cls = type(self)
            cls.count += 1
            vni = cls.vni_base + cls.count
            ip1, ip2 = _underlay(node1, node2), _underlay(node2, node1)
            made: list[tuple[Any, str]] = []
            try:
                for node, name, addr, local, remote in (
                    (node1, intfname1, addr1, ip1, ip2),
                    (node2, intfname2, addr2, ip2, ip1),
                ):
                    cmd = f"ip link add {name}" + (f" address {addr}" if addr else "")
                    cmd += f" type vxlan id {vni} local {local} remote {remote}"
                    cmd += f" dstport {VXLAN_PORT}"
                    out = _root_cmd(node, cmd)
                    if out.strip():
                        raise ClusterError(f"{_server(node)}: `{cmd}` failed: {out.strip()}")
                    made.append((node, name))
                    out = _root_cmd(node, f"ip link set {name} netns {node.pid}")
                    if out.strip():
                        raise ClusterError(f"{_server(node)}: moving {name}: {out.strip()}")
            except BaseException:
                for node, name in made:
                    _root_cmd(node, f"ip link del {name} 2>/dev/null")
                raise

    return VXLANLink


def _server(node: Any) -> str:
    return str(getattr(node, "server", "localhost"))


def _underlay(node: Any, peer: Any) -> str:
    """The address `node`'s server sends VXLAN from towards `peer`'s server."""
    if getattr(node, "isRemote", False):
        return str(node.serverIP)
    route = _root_cmd(node, f"ip -4 route get {peer.serverIP}")
    m = re.search(r" src (\S+)", route)
    if not m:
        raise ClusterError(f"this machine has no route to server {peer.server}: {route.strip()}")
    return m.group(1)


# -- link elements: one per server ---------------------------------------------------------------


class RemoteLinkElement(LinkElement):
    """icpn_linkd in the links namespace of another server: its interfaces are prepared through
    the namespace's shell (the ssh process's own namespace here is not the element's)."""

    def __init__(self, node: Any, spawn: Spawn, rt_priority: int) -> None:
        self.node = node
        super().__init__(spawn, xdp_pass=False, rt_priority=rt_priority)

    def _prepare(self, ifnames: list[str]) -> list[int]:
        cmds = []
        for ifname in ifnames:
            cmds.append(f"sysctl -qw net.ipv6.conf.{ifname}.disable_ipv6=1")
            cmds += [f"ethtool -K {ifname} {f} off >/dev/null 2>&1" for f in ("gro", "tso", "gso")]
            cmds.append(f"ip link set {ifname} up")
        out = self.node.cmd(" ; ".join(cmds) + " ; echo __rc=$?")
        if "__rc=0" not in out:
            raise ClusterError(f"{self.node.server}: preparing {', '.join(ifnames)}: {out.strip()}")
        return [0 for _ in ifnames]


class ClusterElements:
    """The link elements of a cluster run, as one: each link goes to its server's element."""

    def __init__(self) -> None:
        self.by_server: dict[str, LinkElement] = {}
        self.of_link: dict[str, LinkElement] = {}
        self.pid: int | None = None  # the registry lists every element's local pid (pids())

    def pids(self) -> list[int]:
        return [e.pid for e in self.by_server.values()]

    def add(
        self, server: str, link_id: str, if_a: str, if_b: str, a2b: LinkModel, b2a: LinkModel
    ) -> None:
        self.of_link[link_id] = self.by_server[server]
        self.by_server[server].add(link_id, if_a, if_b, a2b, b2a)

    def set(self, link_id: str, direction: Direction, model: LinkModel) -> None:
        self.of_link[link_id].set(link_id, direction, model)

    def down(self, link_id: str) -> None:
        self.of_link[link_id].down(link_id)

    def up(self, link_id: str) -> None:
        self.of_link[link_id].up(link_id)

    def stats(self) -> dict[str, LinkStats]:
        out: dict[str, LinkStats] = {}
        for element in self.by_server.values():
            out.update(element.stats())
        return out

    def stop(self) -> None:
        for element in self.by_server.values():
            element.stop()
        self.by_server.clear()


# -- switches on other servers: the agent ---------------------------------------------------------


class RemoteRunnerMixin:
    """Put before a runner class (`remote_class`): the same runner, run by
    `pyctl.net.cluster_agent` inside the node on its server; the controller's calls go there."""

    name: str
    runner_kind: str  # the runner class the agent makes (set by remote_class)
    node: Any
    run_dir: Path
    _agent_proc: Any
    _agent_lock: threading.Lock

    def _agent_argv(self) -> list[str]:
        argv = [sys.executable, "-m", "pyctl.net.cluster_agent", "--name", self.name]
        argv += ["--prefix", str(getattr(self, "run_prefix", "icpn"))]
        argv += ["--runner", self.runner_kind]
        argv += ["--dataplane", str(getattr(self, "dataplane", "reference"))]
        for opt, values in (("--rate", "rates"), ("--buffer", "buffers")):
            for port, value in sorted(getattr(self, values, {}).items()):
                argv += [opt, f"{port}={value:.0f}"]
        return argv

    def start(self, node: Any, cfg: Any, ifnames: dict[int, str], run_dir: Path) -> None:
        from pyctl.model.dump import node_to_dict

        self.node, self.run_dir = node, run_dir
        self.ifnames = ifnames
        argv = self._agent_argv()
        for port, ifname in sorted(ifnames.items()):
            argv += ["--port", f"{port}={ifname}"]
        log = open(run_dir / "logs" / f"agent-{self.name}.log", "ab")  # handed to the process
        self._agent_lock = threading.Lock()
        self._agent_proc = node.popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log
        )
        log.close()
        self._call("start", cfg=node_to_dict(cfg))

    def _call(self, op: str, **args: Any) -> Any:
        proc = getattr(self, "_agent_proc", None)
        if proc is None or proc.poll() is not None:
            raise ClusterError(f"switch {self.name}: its agent is not running ({op})")
        with self._agent_lock:
            try:
                proc.stdin.write(json.dumps({"op": op, **args}).encode() + b"\n")
                proc.stdin.flush()
            except BrokenPipeError:
                raise ClusterError(f"switch {self.name}: its agent exited") from None
            line = proc.stdout.readline().decode()
        if not line:
            raise ClusterError(f"switch {self.name}: its agent exited (logs/agent-{self.name}.log)")
        answer = json.loads(line)
        if "error" in answer:
            raise ClusterError(f"switch {self.name} on {self.node.server}: {answer['error']}")
        return answer.get("value")

    def apply(self, cfg: Any) -> None:
        from pyctl.model.dump import node_to_dict

        self._call("apply", cfg=node_to_dict(cfg))

    def alive(self) -> bool:
        try:
            return bool(self._call("alive"))
        except ClusterError:
            return False

    def stats(self) -> dict[str, Any]:
        value: dict[str, Any] = self._call("stats")
        return value

    def ifit_counters(
        self, flowmon_ids: Iterable[int] | None = None
    ) -> dict[tuple[int, int], tuple[int, int]]:
        ids = list(flowmon_ids) if flowmon_ids is not None else None
        rows = self._call("ifit_counters", ids=ids)
        return {(f, c): (p, b) for f, c, p, b in rows}

    def set_port_rate(self, port: int, bps: float) -> None:
        self._call("set_port_rate", port=port, bps=bps)

    def tap(self, port: int) -> Any:
        raise ClusterError(f"switch {self.name}: captures work on the first server's nodes only")

    def stop(self) -> None:
        proc = getattr(self, "_agent_proc", None)
        if proc is None:
            return
        try:
            final = self._call("stop") if proc.poll() is None else None
        except (ClusterError, ValueError, OSError):
            final = None
        if final:  # the node's counters, written where a local runner writes them
            nodes = self.run_dir / "nodes"
            nodes.mkdir(parents=True, exist_ok=True)
            (nodes / f"{self.name}.stats.json").write_text(json.dumps(final, indent=1))
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        self._agent_proc = None


_REMOTE_CLASSES: dict[type, type] = {}


def remote_class(cls: type) -> type:
    """`cls` run on another server: isinstance(x, cls) still holds for the controller."""
    if cls not in _REMOTE_CLASSES:
        _REMOTE_CLASSES[cls] = type(
            f"Remote{cls.__name__}", (RemoteRunnerMixin, cls), {"runner_kind": cls.__name__}
        )
    return _REMOTE_CLASSES[cls]


# -- the cluster of one run -----------------------------------------------------------------------


def spawn_of(node: Any) -> Spawn:
    def spawn(argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        proc: subprocess.Popen[bytes] = node.popen(argv, **kw)
        return proc

    return spawn
