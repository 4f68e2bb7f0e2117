"""A planned topology as a Mininet network: hosts, switch nodes, shaped links, clean teardown.

Mininet is driven from its Python API only (never `mn -c`: its cleanup kills processes by name
and deletes links machine-wide). Every name this module creates starts with a per-run prefix
`ic<3 hex>`; a registry file under /run/icpn records the run's owner PID and node shells, so a run
that crashed is cleaned up by `cleanup_stale()` without touching anything else.

Switch nodes are plain namespaces; what forwards in them is a `SwitchRunner` (eBPF programs,
BMv2) started on the node's interfaces.

Every link a<->b is a <-> L_a [link element] L_b <-> b: the run's *links namespace* holds an
interface pair per link and one `icpn_linkd` (pyctl.net.linkd) that carries each direction's
frames with its link model (delay, jitter, loss, rate, queue). So a link behaves the same
whatever sends into it — a host, an XDP_REDIRECT of an eBPF node (which bypasses qdiscs), BMv2 or
a software switch — and on kernels with and without netem (docs/topology.md).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pyctl import kernelfeatures
from pyctl.controller.plan import Plan
from pyctl.errors import ICPNError
from pyctl.model.topology import DIRECTION_FIELDS, Link, Topology
from pyctl.net.linkd import LinkElement, LinkStats
from pyctl.net.netem import NetemElement
from pyctl.netns import alive, in_netns_of
from pyctl.targets.runner import SwitchRunner

if TYPE_CHECKING:  # cluster mode (pyctl.net.cluster) imports Mininet's cluster classes
    from pyctl.net.cluster import Cluster, ClusterElements

REGISTRY = Path("/run/icpn")
LINK_ELEMENT_RT_PRIORITY = 10
LINK_ELEMENTS = ("icpn", "netem")  # icpn_linkd (every kernel) or netem (where present)
T = TypeVar("T")


class EmulationError(ICPNError):
    """The network could not be built or torn down; the message names the step."""


@dataclass
class LinkInfo:
    link: Link
    a_if: str
    b_if: str
    link_id: str = ""  # the element's name for it (l<n>)
    la_if: str = ""  # the element's interface towards a (in the links namespace)
    lb_if: str = ""  # ... towards b

    @property
    def name(self) -> str:
        return f"{self.link.a}-{self.link.b}"


def port_rates(topo: Topology, plan: Plan, switch: str) -> dict[int, float]:
    """Line rate (bit/s) of each shaped port of a switch, from its link's `bw_mbit`."""
    links = {frozenset((lk.a, lk.b)): lk for lk in topo.links}
    rates = {}
    for (node, port), (peer, _) in plan.wiring.items():
        lk = links.get(frozenset((node, peer)))
        if node == switch and lk is not None and lk.bw_mbit:
            rates[port] = lk.bw_mbit * 1e6
    return rates


def new_prefix() -> str:
    """`ic` + 3 hex digits of this PID: short enough for 15-character interface names."""
    return f"ic{os.getpid() % 4096:03x}"


class Emulation:
    """Owns a Mininet network built from a plan; `stop()` (or leaving the `with`) removes it."""

    def __init__(
        self,
        topo: Topology,
        plan: Plan,
        run_dir: Path,
        runner_factory: Callable[[str], SwitchRunner],
        log: Callable[[str], None] = print,
        link_element: str = "icpn",
        cluster: Cluster | None = None,
    ) -> None:
        if link_element not in LINK_ELEMENTS:
            raise EmulationError(
                f"link element {link_element!r} is not one of {', '.join(LINK_ELEMENTS)}"
            )
        if cluster is not None and link_element != "icpn":
            raise EmulationError("a run over several servers carries its links with icpn_linkd")
        if link_element == "netem":
            for feature in ("netem", "mirred"):
                reason = kernelfeatures.missing(feature)
                if reason is not None:
                    raise EmulationError(f"link element netem: {reason}; use icpn_linkd")
        self.topo = topo
        self.plan = plan
        self.run_dir = run_dir
        self.runner_factory = runner_factory
        self.log = log
        self.prefix = new_prefix()
        self.net: Any = None
        self.nodes: dict[str, Any] = {}  # plan name -> Mininet node
        self.links_node: Any = None  # the links namespace (the link element runs there)
        self.ifnames: dict[tuple[str, int], str] = {}  # (plan node, port) -> interface name
        self.runners: dict[str, SwitchRunner] = {}
        self.links: list[LinkInfo] = []
        self.element: LinkElement | NetemElement | ClusterElements | None = None
        self.cluster = cluster  # several servers (docs/cluster.md), else None
        # what implements the link model (named in the report)
        self.element_name = "icpn_linkd" if link_element == "icpn" else "netem"
        self.procs: list[subprocess.Popen[bytes]] = []
        self._registry = REGISTRY / f"{self.prefix}.json"

    # -- bring-up --------------------------------------------------------------------------

    def start(self) -> None:
        try:
            from mininet.log import setLogLevel
            from mininet.net import Mininet
        except ImportError as e:
            raise ICPNError(
                f"Mininet does not import ({e}): install Debian's `mininet` package and run ICPN "
                "from the system python or a venv made with --system-site-packages"
            ) from None

        cleanup_stale()
        setLogLevel("error")
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        try:
            if self.cluster is not None:
                self.cluster.precheck(self.prefix, self.run_dir)
                self.net = self.cluster.mininet()
            else:
                self.net = Mininet(topo=None, build=False, controller=None, autoSetMacs=False)
            self._add_nodes()
            self._write_registry()
            self._add_links()
            self.net.build()
            self._write_registry()
            self._configure_hosts()
            self._start_links()
            self._start_switches()
        except BaseException:
            self.stop()
            raise

    def _short(self, name: str) -> str:
        if name in self.plan.switches:
            return f"{self.prefix}s{list(self.plan.switches).index(name) + 1}"
        return f"{self.prefix}h{list(self.plan.hosts).index(name) + 1}"

    def _add_nodes(self) -> None:
        cluster = self.cluster
        if cluster is not None:
            from pyctl.net.cluster import place

            hosts, switches = list(self.plan.hosts), list(self.plan.switches)
            cluster.placement = place(cluster.spec, self.topo, switches, hosts)
        for name in [*self.plan.hosts, *self.plan.switches]:
            where = cluster.host_params(name) if cluster is not None else {}
            self.nodes[name] = self.net.addHost(self._short(name), ip=None, **where)
        self.links_node = self.net.addHost(f"{self.prefix}L", ip=None)
        if cluster is not None:
            cluster.add_links_nodes(self.net, self.links_node)
            cluster.track([*self.nodes.values(), *cluster.links_nodes.values()])

    def _add_links(self) -> None:
        done: set[tuple[str, int]] = set()
        link_of: dict[frozenset[str], Link] = {
            frozenset((lk.a, lk.b)): lk for lk in self.topo.links
        }
        for (a, ap), (b, bp) in self.plan.wiring.items():
            if (a, ap) in done:
                continue
            done.update({(a, ap), (b, bp)})
            n = len(self.links) + 1
            a_if, b_if = self._ifname(a, ap), self._ifname(b, bp)
            la, lb = f"{self.prefix}l{n}a", f"{self.prefix}l{n}b"
            link = link_of[frozenset((a, b))]
            # in cluster mode, the links namespace of the server of the link's `a` end
            ln = self.cluster.links_node(link) if self.cluster is not None else self.links_node
            self.net.addLink(
                self.nodes[a], ln, intfName1=a_if, intfName2=la, addr1=self._mac(a, ap)
            )
            self.net.addLink(
                ln, self.nodes[b], intfName1=lb, intfName2=b_if, addr2=self._mac(b, bp)
            )
            self.ifnames[(a, ap)], self.ifnames[(b, bp)] = a_if, b_if
            if (link.a, link.b) != (a, b):  # the model's a->b is the topology's a->b
                a_if, b_if, la, lb = b_if, a_if, lb, la
            self.links.append(LinkInfo(link, a_if, b_if, f"l{n}", la, lb))

    def _ifname(self, node: str, port: int) -> str:
        return f"{self._short(node)}p{port}"

    def _mac(self, node: str, port: int) -> str:
        if node in self.plan.switches:
            return self.plan.switches[node].port(port).mac
        return self.plan.hosts[node].mac

    def _configure_hosts(self) -> None:
        for name, h in self.plan.hosts.items():
            node = self.nodes[name]
            intf = self.ifnames[(name, 1)]
            mtu = self._link_of(name).mtu
            _sh(
                node,
                "sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0"
                f" net.ipv6.conf.{intf}.disable_ipv6=0 net.ipv6.conf.{intf}.accept_dad=0"
                f" net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.{intf}.router_solicitations=0",
                f"ip link set {intf} mtu {mtu} up",
                f"ip -6 addr add {h.address}/128 dev {intf} nodad",
                f"ip -6 neigh replace fe80::1 lladdr {h.gateway_mac} dev {intf} nud permanent",
                f"ip -6 route replace default via fe80::1 dev {intf}",
                f"ethtool -K {intf} tx off >/dev/null 2>&1 || true",
            )
        for name in self.plan.switches:
            node = self.nodes[name]
            cmds = ["sysctl -qw net.ipv6.conf.all.disable_ipv6=0"]
            for (n, _), intf in self.ifnames.items():
                if n == name:
                    cmds.append(f"ip link set {intf} mtu {self._mtu_of_if(intf)} up")
                    cmds.append(f"ethtool -K {intf} tx off >/dev/null 2>&1 || true")
            _sh(node, *cmds)

    def _link_of(self, host: str) -> Link:
        for info in self.links:
            if host in (info.link.a, info.link.b):
                return info.link
        raise EmulationError(f"host {host!r} has no link")

    def _mtu_of_if(self, intf: str) -> int:
        for info in self.links:
            if intf in (info.a_if, info.b_if):
                return info.link.mtu
        return 1500

    def _start_links(self) -> None:
        """The links namespace: its interfaces at each link's MTU, no IPv6 of its own, and the
        link element carrying every link with its model."""
        if self.cluster is not None:  # one links namespace and element per server
            self.element = self.cluster.start_elements(
                self.links, LINK_ELEMENT_RT_PRIORITY, lambda node, cmd: _sh(node, cmd)
            )
            self._write_registry()
            return
        node = self.links_node
        cmds = ["sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"]
        for info in self.links:
            cmds += [f"ip link set {i} mtu {info.link.mtu}" for i in (info.la_if, info.lb_if)]
        _sh(node, *cmds)

        def spawn(argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
            proc: subprocess.Popen[bytes] = node.popen(argv, **kw)
            return proc

        # Switch nodes forward with generic (skb) XDP, whose redirect reaches the element's veth
        # as a normal skb: no XDP program is needed on the element's side (a native one would
        # also refuse links above the veth's XDP MTU limit of about 3,500 bytes).
        # SCHED_FIFO: on a busy 2-core VM the element must not wait behind traffic generators
        # and software switches, or queueing in the run queue shows up as link delay
        # (docs/links.md, measured performance)
        self.element = LinkElement(spawn, xdp_pass=False, rt_priority=LINK_ELEMENT_RT_PRIORITY)
        self._write_registry()
        for info in self.links:
            lk = info.link
            self.element.add(info.link_id, info.la_if, info.lb_if, lk.model("a2b"), lk.model("b2a"))

    # -- links at run time -----------------------------------------------------------------

    def link(self, a: str, b: str) -> LinkInfo:
        """The link between nodes a and b (either order); EmulationError if there is none."""
        for info in self.links:
            if {info.link.a, info.link.b} == {a, b}:
                return info
        raise EmulationError(f"no link between {a!r} and {b!r}")

    def _element(self) -> LinkElement | NetemElement | ClusterElements:
        if self.element is None:
            raise EmulationError("the network is not up")
        return self.element

    def set_link(self, a: str, b: str, **changes: Any) -> Link:
        """Change link fields (delay_ms, loss_pct, bw_mbit, jitter_ms, ... as in the topology)
        while traffic runs; both directions, frames already in flight keep their departure.
        Returns the link as it now is."""
        info = self.link(a, b)
        unknown = set(changes) - set(DIRECTION_FIELDS)
        if unknown:
            raise EmulationError(f"set_link: {sorted(unknown)} are not link fields")
        new = dataclasses.replace(info.link, **changes)
        a2b, b2a = new.model("a2b"), new.model("b2a")  # validates before anything changes
        self._element().set(info.link_id, "a2b", a2b)
        self._element().set(info.link_id, "b2a", b2a)
        info.link = new
        return new

    def link_down(self, a: str, b: str) -> None:
        """Take the link down: every frame either way is dropped until `link_up`."""
        self._element().down(self.link(a, b).link_id)

    def link_up(self, a: str, b: str) -> None:
        self._element().up(self.link(a, b).link_id)

    def link_stats(self) -> dict[str, LinkStats]:
        """The element's counters per link, keyed "a-b" as in the topology."""
        stats = self._element().stats()
        return {info.name: stats[info.link_id] for info in self.links}

    def _start_switches(self) -> None:
        for name, cfg in self.plan.switches.items():
            runner = self.runner_factory(name)
            if self.cluster is not None:  # a node on another server runs its plane there
                self.cluster.runner_for(self.nodes[name], runner)
            ifs = {port: self.ifnames[(name, port)] for port in (p.index for p in cfg.ports)}
            runner.start(self.nodes[name], cfg, ifs, self.run_dir)
            self.runners[name] = runner

    # -- use -------------------------------------------------------------------------------

    def popen(self, node: str, argv: list[str], log_name: str) -> subprocess.Popen[bytes]:
        """Start a process inside a node; its output goes to logs/<log_name>.log."""
        logf = open(self.run_dir / "logs" / f"{log_name}.log", "wb")  # owned by proc
        proc: subprocess.Popen[bytes] = self.nodes[node].popen(
            argv, stdout=logf, stderr=subprocess.STDOUT
        )
        logf.close()
        self.procs.append(proc)
        self._write_registry()
        return proc

    def pull(self) -> None:
        """Bring here what processes on other servers wrote into the run directory (cluster)."""
        if self.cluster is not None:
            self.cluster.pull()

    def run_in(self, node: str, fn: Callable[[], T]) -> T:
        if getattr(self.nodes[node], "isRemote", False):
            raise EmulationError(f"{node} runs on server {self.nodes[node].server}, not here")
        return in_netns_of(self.nodes[node].pid, fn)

    # -- teardown --------------------------------------------------------------------------

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 3
        for proc in self.procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        for runner in self.runners.values():
            runner.stop()
        self.runners.clear()
        if self.element is not None:
            element, self.element = self.element, None
            element.stop()
        if self.cluster is not None:
            self.cluster.cleanup()  # what is left in the run's namespaces on the other servers
        if self.net is not None:
            net, self.net = self.net, None
            net.stop()
        _delete_root_links(self.prefix)
        if self.cluster is not None:
            self.cluster.close()
        self._registry.unlink(missing_ok=True)

    def __enter__(self) -> Emulation:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _write_registry(self) -> None:
        REGISTRY.mkdir(parents=True, exist_ok=True)
        shells = [*self.nodes.values(), self.links_node]
        # a node on another server has a PID there: this machine's is its ssh session's
        pids = [n.pid for n in shells if getattr(n, "pid", None) and not getattr(n, "isRemote", 0)]
        pids += [p.pid for p in self.procs]
        if self.element is not None and self.element.pid is not None:
            pids.append(self.element.pid)
        if self.cluster is not None:
            pids += self.cluster.local_pids()
            if self.element is not None and hasattr(self.element, "pids"):
                pids += self.element.pids()
        data = {"owner": os.getpid(), "prefix": self.prefix, "pids": pids}
        self._registry.write_text(json.dumps(data))


def _status(node: Any, cmd: str) -> tuple[int, str]:
    """A shell command in a node: (exit status, output)."""
    out = node.cmd(f"{cmd}; echo __rc=$?")
    body, _, rc = out.rpartition("__rc=")
    return (int(rc) if rc.strip().isdigit() else 1), body


def _sh(node: Any, *cmds: str) -> None:
    """Run shell commands in a node; raise naming the command when one fails."""
    for cmd in cmds:
        rc, body = _status(node, cmd)
        if rc != 0:
            raise EmulationError(f"{node.name}: `{cmd}` failed: {body.strip()}")


def _delete_root_links(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=False)
    gone = []
    for line in out.stdout.splitlines():
        parts = line.split(": ")
        if len(parts) > 1:
            name = parts[1].split("@")[0]
            if name.startswith(prefix):
                subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)
                gone.append(name)
    return gone


def cleanup_stale() -> list[str]:
    """Remove what runs whose owner process is gone left behind: their processes and links."""
    if not REGISTRY.is_dir():
        return []
    cleaned = []
    for f in REGISTRY.glob("ic*.json"):
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            f.unlink(missing_ok=True)
            continue
        if alive(int(data.get("owner", 0))):
            continue
        for pid in data.get("pids", []):
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        cleaned += _delete_root_links(str(data.get("prefix", "ic-none")))
        f.unlink(missing_ok=True)
        cleaned.append(f.stem)
    return cleaned
