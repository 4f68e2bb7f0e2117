"""One emulated network over several machines, with Mininet's cluster mode (docs/cluster.md).

`mininet.examples.cluster` (Debian's `mininet`) gives the pieces: `RemoteHost` (a node whose
shell runs on another server over ssh), `RemoteLink` (a veth on one server, a tunnel between
two), and placement policies (`SwitchBinPlacer`). This module puts an `Emulation` on them:

* placement: the nodes a topology's `servers:` pins stay there; Mininet's `SwitchBinPlacer`
  spreads the other switches evenly and puts each host beside its switch; the collector is always
  on the first server, the machine `icpn` runs on (the controller, the collector's telemetry and
  the report live there);
* links: every server runs a links namespace with its own `icpn_linkd`; a link is carried by the
  element on the server of its `a` end (as the topology writes it), so a link whose ends are on
  two servers is a <-> [element on a's server] <-VXLAN-> b. `VXLANLink` is a `RemoteLink` whose
  tunnel is a VXLAN pair (UDP 4789) instead of Mininet's ssh tunnel (docs/cluster.md says why);
* switches on other servers: their data plane runs in `pyctl.net.cluster_agent`, started in the
  node over ssh; the runner object the controller holds forwards apply/stats/stop to it;
* cleanup: what a run started on a server is ended through ssh when the run stops (processes in
  the run's namespaces, interfaces named with the run's prefix), then the ssh masters are closed.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pyctl
from pyctl.errors import ConfigError, ICPNError
from pyctl.model.link import Direction, LinkModel
from pyctl.model.topology import Kind, Link, Server, Topology
from pyctl.net.linkd import LinkElement, LinkStats, Spawn

VXLAN_PORT = 4789
CONTROL_DIR = Path("/run/icpn")  # the ssh master sockets, beside the runs' registry
SSH_OPTIONS = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
# where pyctl is imported from: a remote python gets it as PYTHONPATH (same path on each server)
PACKAGE_ROOT = Path(pyctl.__file__).resolve().parents[1]


class ClusterError(ICPNError):
    """A server cannot be used, or a step on one failed; the message names the server."""


@dataclass(frozen=True)
class ClusterSpec:
    """The servers of a run (the first is this machine) and how to reach the others."""

    servers: tuple[Server, ...]
    ssh_config: Path | None = None  # an ssh_config(5) file for every ssh ICPN starts
    user: str = "root"


def parse_servers(text: str) -> tuple[Server, ...]:
    """`--servers host1,host2,...`: the names, in order (one-line error for a bad one)."""
    names = [s.strip() for s in text.split(",")]
    if len(names) < 2 or not all(names):
        raise ConfigError("--servers", f"{text!r}: give two or more servers, comma-separated")
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}", name):
            raise ConfigError("--servers", f"{name!r} is not a host name or IPv4 address")
    if len(set(names)) != len(names):
        raise ConfigError("--servers", f"{text!r} names a server twice")
    return tuple(Server(n) for n in names)


def cluster_spec(
    topo: Topology, servers: str | None, ssh_config: Path | None = None
) -> ClusterSpec | None:
    """The run's cluster: `--servers` (which replaces the topology's list, keeping the nodes the
    topology pins to a server of the same name), else the topology's `servers:`, else None."""
    listed = topo.servers
    if servers is not None:
        pinned = {s.name: s.nodes for s in topo.servers}
        listed = tuple(Server(s.name, pinned.get(s.name, ())) for s in parse_servers(servers))
    if ssh_config is not None and not ssh_config.is_file():
        raise ConfigError("--ssh-config", f"{str(ssh_config)!r} is not a file")
    if len(listed) < 2:
        if ssh_config is not None:
            raise ConfigError("--ssh-config", "given without servers (--servers or servers:)")
        return None
    return ClusterSpec(listed, ssh_config)


def place(
    spec: ClusterSpec, topo: Topology, switches: list[str], hosts: list[str]
) -> dict[str, str]:
    """Node -> server name. Pinned nodes stay; the collector goes to the first server; the other
    switches are spread by Mininet's SwitchBinPlacer and each other host joins its switch."""
    from mininet.examples.cluster import SwitchBinPlacer

    first = spec.servers[0].name
    pinned = {n: s.name for s in spec.servers for n in s.nodes}
    for node in topo.nodes:
        if node.kind is Kind.COLLECTOR:
            if pinned.get(node.name, first) != first:
                raise ConfigError(
                    "servers", f"collector {node.name!r} must be on the first server ({first!r})"
                )
            pinned[node.name] = first
    links = [(lk.a, lk.b) for lk in topo.links]
    free = [s for s in switches if s not in pinned]
    placer = SwitchBinPlacer(
        servers=[s.name for s in spec.servers], switches=free, hosts=[], links=links
    )
    where = {s: pinned.get(s) or placer.place(s) for s in switches}
    for h in hosts:
        peer = next((b if a == h else a for a, b in links if h in (a, b)), None)
        where[h] = pinned.get(h) or (where.get(peer, first) if peer else first)
    return where


# -- nodes and links (Mininet's cluster classes) --------------------------------------------------


def _remote_host_class(ssh_config: Path | None) -> type:
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
def _vxlan_link_class() -> type:
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

    def _prepare(self, ifname: str) -> int:
        cmds = [f"sysctl -qw net.ipv6.conf.{ifname}.disable_ipv6=1"]
        cmds += [f"ethtool -K {ifname} {f} off >/dev/null 2>&1" for f in ("gro", "tso", "gso")]
        cmds.append(f"ip link set {ifname} up")
        out = self.node.cmd(" ; ".join(cmds) + " ; echo __rc=$?")
        if "__rc=0" not in out:
            raise ClusterError(f"{self.node.server}: preparing {ifname}: {out.strip()}")
        return 0


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


class Cluster:
    """What an Emulation asks in cluster mode: where each node goes, the Mininet classes, the
    links namespaces and elements per server, and the cleanup on every server."""

    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec
        self.first = spec.servers[0].name
        self.placement: dict[str, str] = {}
        self.links_nodes: dict[str, Any] = {}  # server -> its links namespace node
        self.remote_nodes: list[Any] = []
        self.server_ip: dict[str, str] = {}
        self.prefix = ""
        self._host_cls: type | None = None
        self._control = ""
        self.run_dir: Path | None = None
        self._run_dirs: dict[str, str] = {}  # server -> "shared" | "made" | "existed"

    # -- before Mininet ------------------------------------------------------------------------

    def _ssh(self, server: str) -> list[str]:
        argv = ["ssh", *SSH_OPTIONS]
        if self.spec.ssh_config is not None:
            argv += ["-F", str(self.spec.ssh_config)]
        argv += ["-o", f"ControlPath={self._control}"]
        return [*argv, f"{self.spec.user}@{self.server_ip[server]}"]

    def precheck(self, prefix: str, run_dir: Path) -> None:
        """Resolve every server and check it answers over ssh as root with what ICPN needs (a
        one-line error naming the server otherwise; MininetCluster's precheck exits instead);
        give each the run directory at the same path (`pull` brings its files here)."""
        self.prefix = prefix
        CONTROL_DIR.mkdir(parents=True, exist_ok=True)
        self._control = f"{CONTROL_DIR}/{prefix}-ssh-%C"
        link_cls: Any = _vxlan_link_class()
        link_cls.vni_base, link_cls.count = int(prefix[2:], 16) << 12, 0
        self.run_dir = run_dir.resolve()
        marker = self.run_dir / f".{prefix}-here"
        marker.touch()
        try:
            self._check_servers(marker)
        finally:
            marker.unlink()

    def _check_servers(self, marker: Path) -> None:
        from mininet.examples.cluster import RemoteMixin

        self.server_ip[self.first] = "127.0.0.1"
        for server in self.spec.servers[1:]:
            ip = RemoteMixin.findServerIP(server.name)
            if ip is None:
                raise ClusterError(f"server {server.name!r}: no IPv4 address (getent ahostsv4)")
            self.server_ip[server.name] = ip
            check = f"command -v mnexec sudo >/dev/null && test -x {shlex.quote(sys.executable)}"
            check += f" && test -d {shlex.quote(str(PACKAGE_ROOT / 'pyctl'))}"
            proc = subprocess.run(
                [*self._ssh(server.name), "-n", check], capture_output=True, text=True, timeout=30
            )
            if proc.returncode == 255:
                err = proc.stderr.strip().splitlines()
                raise ClusterError(
                    f"server {server.name!r}: ssh {self.spec.user}@{ip} failed"
                    f" ({err[-1] if err else 'no message'}); see docs/cluster.md"
                )
            if proc.returncode != 0:
                raise ClusterError(
                    f"server {server.name!r}: needs mnexec (mininet), sudo, {sys.executable} and"
                    f" ICPN at {PACKAGE_ROOT} (the same install as here; docs/cluster.md)"
                )
            d = shlex.quote(str(self.run_dir))
            where = self._remote(
                server.name,
                f"if [ -e {shlex.quote(str(marker))} ]; then echo shared;"
                f" elif [ -e {d} ]; then echo existed; else mkdir -p {d} && echo made; fi",
            )
            self._run_dirs[server.name] = where.strip()

    def _remote(self, server: str, script: str, timeout: float = 60) -> str:
        proc = subprocess.run(
            [*self._ssh(server), "-n", script], capture_output=True, text=True, timeout=timeout
        )
        return proc.stdout

    def pull(self) -> None:
        """Copy what processes on other servers wrote into the run directory (flow statistics)
        here, from servers that do not share it (the same path on a shared filesystem is read
        in place)."""
        if self.run_dir is None:
            return
        for server, how in self._run_dirs.items():
            if how == "shared":
                continue
            remote = subprocess.Popen(
                [*self._ssh(server), "-n", f"tar -C {shlex.quote(str(self.run_dir))} -cf - ."],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            subprocess.run(
                ["tar", "-C", str(self.run_dir), "--keep-newer-files", "-xf", "-"],
                stdin=remote.stdout,
                capture_output=True,
                check=False,
            )
            if remote.stdout is not None:
                remote.stdout.close()
            remote.wait(60)

    def mininet(self) -> Any:
        from mininet.net import Mininet

        return Mininet(
            topo=None, build=False, controller=None, autoSetMacs=False, link=_vxlan_link_class()
        )

    def host_params(self, name: str) -> dict[str, Any]:
        """addHost keywords for a plan node (none for nodes on this machine: plain Mininet)."""
        return self._params(self.placement[name])

    def _params(self, server: str) -> dict[str, Any]:
        if server == self.first:
            return {}
        if self._host_cls is None:
            self._host_cls = _remote_host_class(self.spec.ssh_config)
        return {
            "cls": self._host_cls,
            "server": server,
            "serverIP": self.server_ip[server],
            "user": self.spec.user,
            "controlPath": self._control,
        }

    def add_links_nodes(self, net: Any, local: Any) -> None:
        """A links namespace on every other server that carries a link (`local` is this
        machine's)."""
        self.links_nodes[self.first] = local
        for i, server in enumerate(s.name for s in self.spec.servers[1:]):
            if server in self.placement.values():
                node = net.addHost(f"{self.prefix}L{i + 2}", ip=None, **self._params(server))
                self.links_nodes[server] = node

    def track(self, nodes: Iterable[Any]) -> None:
        self.remote_nodes = [n for n in nodes if getattr(n, "isRemote", False)]

    def links_node(self, link: Link) -> Any:
        """The links namespace whose element carries `link`: that of its `a` end's server."""
        return self.links_nodes[self.placement[link.a]]

    def runner_for(self, node: Any, runner: Any) -> None:
        """Make `runner` run its node on the node's server when that is another one (in place:
        the controller keeps the object it made, and isinstance checks still hold)."""
        if not getattr(node, "isRemote", False):
            return
        kind = type(runner).__name__
        if kind not in ("EBPFSwitchRunner", "SoftwareSwitchRunner"):
            raise ClusterError(
                f"switch {runner.name}: a {kind} node runs on the first server only"
                " (pin it there in the topology's servers:)"
            )
        runner.__class__ = remote_class(type(runner))
        runner.run_prefix = self.prefix

    # -- running -------------------------------------------------------------------------------

    def start_elements(
        self, links: list[Any], rt_priority: int, sh: Callable[[Any, str], None]
    ) -> ClusterElements:
        elements = ClusterElements()
        try:
            for server, node in self.links_nodes.items():
                infos = [i for i in links if self.placement[i.link.a] == server]
                cmds = ["sysctl -qw net.ipv6.conf.all.disable_ipv6=1"]
                cmds += [f"ip link set {i.la_if} mtu {i.link.mtu}" for i in infos]
                cmds += [f"ip link set {i.lb_if} mtu {i.link.mtu}" for i in infos]
                for cmd in cmds:
                    sh(node, cmd)
                spawn = _spawn_of(node)
                if server == self.first:
                    element = LinkElement(spawn, xdp_pass=False, rt_priority=rt_priority)
                else:
                    element = RemoteLinkElement(node, spawn, rt_priority)
                elements.by_server[server] = element
                for i in infos:
                    lk = i.link
                    elements.add(
                        server, i.link_id, i.la_if, i.lb_if, lk.model("a2b"), lk.model("b2a")
                    )
        except BaseException:
            elements.stop()
            raise
        return elements

    def local_pids(self) -> list[int]:
        """This machine's processes of the remote nodes (their ssh sessions): ending them ends
        the nodes' shells on their servers."""
        return [n.shell.pid for n in self.remote_nodes if getattr(n, "shell", None)]

    def cleanup(self) -> None:
        """On every other server: end the processes left in the run's namespaces (not their
        shells, which Mininet ends) and delete interfaces named with the run's prefix."""
        by_server: dict[str, list[int]] = {}
        for n in self.remote_nodes:
            if n.pid:
                by_server.setdefault(n.server, []).append(int(n.pid))
        for server in (s.name for s in self.spec.servers[1:]):
            if server not in self.server_ip:
                continue
            script = _CLEANUP.format(
                pids=" ".join(map(str, by_server.get(server, []))), prefix=self.prefix
            )
            subprocess.run(
                [*self._ssh(server), "-n", script], capture_output=True, timeout=60, check=False
            )

    def close(self) -> None:
        """Bring the other servers' run files here and remove the run directories this run made
        there; end the ssh master connections (ControlPersist would keep each a second longer)."""
        self.pull()
        for server, how in self._run_dirs.items():
            if how == "made" and self.run_dir is not None:
                self._remote(server, f"rm -rf {shlex.quote(str(self.run_dir))}")
        self._run_dirs.clear()
        for server in (s.name for s in self.spec.servers[1:]):
            if server in self.server_ip:
                subprocess.run(
                    [*self._ssh(server), "-O", "exit"], capture_output=True, timeout=10, check=False
                )


# Run as root on a server. The namespaces are found from the nodes' shells; never the server's
# own (that of PID 1 or of this shell), should a shell's PID be gone and reused.
_CLEANUP = """
keep=" {pids} "; own=$(readlink /proc/$$/ns/net); init=$(readlink /proc/1/ns/net)
for ns in $(for p in {pids}; do readlink /proc/$p/ns/net; done | sort -u); do
  [ "$ns" = "$own" ] || [ "$ns" = "$init" ] && continue
  for d in /proc/[0-9]*; do
    p=${{d#/proc/}}
    case "$keep" in *" $p "*) continue;; esac
    [ "$(readlink $d/ns/net 2>/dev/null)" = "$ns" ] && kill -9 $p 2>/dev/null
  done
done
for i in $(ip -o link show | awk -F': ' '{{print $2}}' | cut -d@ -f1 | grep '^{prefix}'); do
  ip link del "$i" 2>/dev/null
done
rm -rf /tmp/{prefix}-agent-*
true
"""


def _spawn_of(node: Any) -> Spawn:
    def spawn(argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        proc: subprocess.Popen[bytes] = node.popen(argv, **kw)
        return proc

    return spawn
