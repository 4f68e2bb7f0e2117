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

import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyctl.errors import ConfigError
from pyctl.model.topology import Kind, Link, Server, Topology
from pyctl.net.cluster_nodes import (
    PACKAGE_ROOT,
    SSH_OPTIONS,
    ClusterElements,
    ClusterError,
    RemoteLinkElement,
    remote_class,
    remote_host_class,
    spawn_of,
    vxlan_link_class,
)
from pyctl.net.linkd import LinkElement

CONTROL_DIR = Path("/run/icpn")  # the ssh master sockets, beside the runs' registry


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
        link_cls: Any = vxlan_link_class()
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
            topo=None, build=False, controller=None, autoSetMacs=False, link=vxlan_link_class()
        )

    def host_params(self, name: str) -> dict[str, Any]:
        """addHost keywords for a plan node (none for nodes on this machine: plain Mininet)."""
        return self._params(self.placement[name])

    def _params(self, server: str) -> dict[str, Any]:
        if server == self.first:
            return {}
        if self._host_cls is None:
            self._host_cls = remote_host_class(self.spec.ssh_config)
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
                spawn = spawn_of(node)
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
