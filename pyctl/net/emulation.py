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
import functools
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pyroute2 import IPRoute

from pyctl import ifconf, kernelfeatures
from pyctl.controller.plan import Plan
from pyctl.errors import ICPNError
from pyctl.model.topology import DIRECTION_FIELDS, Link, Topology
from pyctl.net.linkd import LinkElement, LinkStats
from pyctl.net.netem import NetemElement
from pyctl.net.wiring import (
    REGISTRY,
    EmulationError,
    Wire,
    cleanup_stale,
    configure_host,
    configure_switch,
    delete_root_links,
    in_place,
    make_veth,
    naming,
    netns_fd,
    sh,
)
from pyctl.netns import in_netns_of, in_netns_of_each
from pyctl.targets.runner import SwitchRunner

if TYPE_CHECKING:  # cluster mode (pyctl.net.cluster) imports Mininet's cluster classes
    from pyctl.net.cluster import Cluster, ClusterElements

LINK_ELEMENT_RT_PRIORITY = 10
LINK_ELEMENTS = ("icpn", "netem")  # icpn_linkd (every kernel) or netem (where present)
T = TypeVar("T")
# switch runners started at once: one a core (the verifier of one eBPF node load keeps one busy)
START_THREADS = max(1, min(4, os.cpu_count() or 1))
SHELL_THREADS = 4  # node shells started at once (_add_nodes)
STOP_THREADS = 16  # runners stopped at once: mostly waiting for the kernel (_stop_runners)
LINKS = "\0links"  # the links namespace among the nodes (no topology name has a NUL)


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


@dataclass(frozen=True)
class _Wiring:
    """One link as the plan wires it, before it is made: a:ap <-> [la lb] <-> b:bp."""

    link: Link
    a: str
    ap: int
    b: str
    bp: int
    a_if: str
    b_if: str
    link_id: str
    la: str
    lb: str


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
        self.timings: dict[str, float] = {}  # bring-up phase -> seconds (bench/network.py)
        self._short_names = {
            **{h: f"{self.prefix}h{i}" for i, h in enumerate(plan.hosts, 1)},
            **{s: f"{self.prefix}s{i}" for i, s in enumerate(plan.switches, 1)},
        }
        self._mtu: dict[str, int] = {}  # interface -> its link's MTU
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
            with self._timed("nodes"):
                self._add_nodes()
                self._write_registry()
            with self._timed("links"):
                self._add_links()
                if self.cluster is not None:
                    self.net.build()  # Mininet's remote links (VXLAN) come up here
                else:
                    self.net.built = True  # net.build() only set `lo` up: _configure_hosts does
                self._write_registry()
            with self._timed("addresses"):
                self._configure_hosts()
            with self._timed("link element"):
                self._start_links()
            with self._timed("switches"):
                self._start_switches()
        except BaseException:
            self.stop()
            raise

    @contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] = time.perf_counter() - t0

    def _short(self, name: str) -> str:
        return self._short_names[name]

    def _add_nodes(self) -> None:
        """A Mininet node (a shell in a namespace of its own) for every node and the links
        namespace. The shells start on a few threads at once: each start waits for a new bash
        to print its prompt (15-30 ms here, mostly the shell starting up), then the nodes join
        the network in order, as `addHost` would add them."""
        if self.cluster is not None:
            self._add_cluster_nodes()
            return
        names = [*self.plan.hosts, *self.plan.switches, LINKS]
        shorts = [self._short(n) if n != LINKS else f"{self.prefix}L" for n in names]
        made, errors = [], []
        with ThreadPoolExecutor(max_workers=SHELL_THREADS) as pool:
            futures = [pool.submit(self.net.host, short, ip=None) for short in shorts]
            for name, f in zip(names, futures, strict=True):  # wait for all: stop() ends them
                error = f.exception()
                if error is None:
                    made.append((name, f.result()))
                else:
                    errors.append(error)
        for name, node in made:
            self.net.hosts.append(node)
            self.net.nameToNode[node.name] = node
            if name == LINKS:
                self.links_node = node
            else:
                self.nodes[name] = node
        if errors:
            raise EmulationError(f"starting the nodes' shells: {errors[0]}")

    def _add_cluster_nodes(self) -> None:
        """Cluster mode: Mininet's addHost places each node on its server (docs/cluster.md)."""
        from pyctl.net.cluster import place

        cluster = self.cluster
        assert cluster is not None
        hosts, switches = list(self.plan.hosts), list(self.plan.switches)
        cluster.placement = place(cluster.spec, self.topo, switches, hosts)
        for name in [*self.plan.hosts, *self.plan.switches]:
            where = cluster.host_params(name)
            self.nodes[name] = self.net.addHost(self._short(name), ip=None, **where)
        self.links_node = self.net.addHost(f"{self.prefix}L", ip=None)
        cluster.add_links_nodes(self.net, self.links_node)
        cluster.track([*self.nodes.values(), *cluster.links_nodes.values()])

    def _add_links(self) -> None:
        """Two veth pairs a link (a <-> L_a and L_b <-> b), each made by one netlink request
        with both ends in their namespaces, named, addressed and at the link's MTU. Mininet's
        addLink took a process or a shell round trip per step (12 ms a pair here); the ends
        are registered with the Mininet nodes as its own links would be (docs/scaling.md)."""
        from mininet.link import Intf

        if self.cluster is not None:
            self._add_cluster_links()
            return
        shells = {**self.nodes, LINKS: self.links_node}
        fds = {name: netns_fd(node.pid) for name, node in shells.items()}
        try:
            with IPRoute() as ipr:
                for w in self._link_wiring():
                    for (x, x_if, x_port, x_mac), (y, y_if, y_port, y_mac) in (
                        ((w.a, w.a_if, w.ap, self._mac(w.a, w.ap)), (LINKS, w.la, None, None)),
                        ((LINKS, w.lb, None, None), (w.b, w.b_if, w.bp, self._mac(w.b, w.bp))),
                    ):
                        make_veth(ipr, (x_if, fds[x], x_mac), (y_if, fds[y], y_mac), w.link.mtu)
                        ends = [
                            Intf(i, node=shells[m], port=p, moveIntfFn=in_place, up=None)
                            for i, m, p in ((x_if, x, x_port), (y_if, y, y_port))
                        ]
                        for end in ends:
                            end.link = Wire(*ends)
                    self._record_link(w)
        finally:
            for fd in fds.values():
                os.close(fd)

    def _add_cluster_links(self) -> None:
        """Cluster mode: Mininet's addLink (a VXLAN RemoteLink between servers)."""
        cluster = self.cluster
        assert cluster is not None
        for w in self._link_wiring():
            ln = cluster.links_node(w.link)  # the links namespace of the server of the `a` end
            self.net.addLink(
                self.nodes[w.a], ln, intfName1=w.a_if, intfName2=w.la, addr1=self._mac(w.a, w.ap)
            )
            self.net.addLink(
                ln, self.nodes[w.b], intfName1=w.lb, intfName2=w.b_if, addr2=self._mac(w.b, w.bp)
            )
            self._record_link(w)

    def _link_wiring(self) -> Iterator[_Wiring]:
        """Each topology link once, as the plan wires it: its ends, their interface names and
        the links namespace's pair (numbered in order, l1, l2, ...)."""
        link_of = {frozenset((lk.a, lk.b)): lk for lk in self.topo.links}
        done: set[tuple[str, int]] = set()
        for (a, ap), (b, bp) in self.plan.wiring.items():
            if (a, ap) in done:
                continue
            done.update({(a, ap), (b, bp)})
            n = len(self.links) + 1
            yield _Wiring(
                link_of[frozenset((a, b))], a, ap, b, bp, self._ifname(a, ap),
                self._ifname(b, bp), f"l{n}", f"{self.prefix}l{n}a", f"{self.prefix}l{n}b",
            )  # fmt: skip

    def _record_link(self, w: _Wiring) -> None:
        """A made link into the emulation's tables (names, LinkInfo, MTUs)."""
        self.ifnames[(w.a, w.ap)], self.ifnames[(w.b, w.bp)] = w.a_if, w.b_if
        a_if, b_if, la, lb = w.a_if, w.b_if, w.la, w.lb
        if (w.link.a, w.link.b) != (w.a, w.b):  # the model's a->b is the topology's a->b
            a_if, b_if, la, lb = b_if, a_if, lb, la
        self.links.append(LinkInfo(w.link, a_if, b_if, w.link_id, la, lb))
        for intf in (a_if, b_if, la, lb):
            self._mtu[intf] = w.link.mtu

    def _ifname(self, node: str, port: int) -> str:
        return f"{self._short(node)}p{port}"

    def _mac(self, node: str, port: int) -> str:
        if node in self.plan.switches:
            return self.plan.switches[node].port(port).mac
        return self.plan.hosts[node].mac

    def _configure_hosts(self) -> None:
        """Addresses, routes and offloads of every node's interfaces, set in-process while one
        thread visits each namespace in turn (pyctl.ifconf): a shell command each cost a process
        per setting, thousands of them at 1,000 nodes (docs/scaling.md)."""
        if self.cluster is not None:
            self._configure_cluster_hosts()
            return
        calls: list[tuple[int, Callable[[], None]]] = []
        for name, h in self.plan.hosts.items():
            intf = self.ifnames[(name, 1)]
            work = functools.partial(configure_host, h, intf, self._mtu_of_if(intf))
            calls.append((self.nodes[name].pid, naming(name, work)))
        for name in self.plan.switches:
            intfs = {i: self._mtu_of_if(i) for (n, _), i in self.ifnames.items() if n == name}
            work = functools.partial(configure_switch, intfs)
            calls.append((self.nodes[name].pid, naming(name, work)))
        in_netns_of_each(calls)

    def _configure_cluster_hosts(self) -> None:
        """Cluster mode: the same settings through each node's shell (a node on another
        server is a shell there; this process cannot enter its namespace)."""
        for name, h in self.plan.hosts.items():
            intf = self.ifnames[(name, 1)]
            sh(
                self.nodes[name],
                "sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0"
                f" net.ipv6.conf.{intf}.disable_ipv6=0 net.ipv6.conf.{intf}.accept_dad=0"
                f" net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.{intf}.router_solicitations=0",
                f"ip link set {intf} mtu {self._mtu_of_if(intf)} up",
                f"ip -6 addr add {h.address}/128 dev {intf} nodad",
                f"ip -6 neigh replace fe80::1 lladdr {h.gateway_mac} dev {intf} nud permanent",
                f"ip -6 route replace default via fe80::1 dev {intf}",
                f"ethtool -K {intf} tx off >/dev/null 2>&1 || true",
            )
        for name in self.plan.switches:
            cmds = ["sysctl -qw net.ipv6.conf.all.disable_ipv6=0"]
            for (n, _), intf in self.ifnames.items():
                if n == name:
                    cmds.append(f"ip link set {intf} mtu {self._mtu_of_if(intf)} up")
                    cmds.append(f"ethtool -K {intf} tx off >/dev/null 2>&1 || true")
            sh(self.nodes[name], *cmds)

    def _mtu_of_if(self, intf: str) -> int:
        return self._mtu.get(intf, 1500)

    def _start_links(self) -> None:
        """The links namespace: its interfaces at each link's MTU, no IPv6 of its own, and the
        link element carrying every link with its model."""
        if self.cluster is not None:  # one links namespace and element per server
            self.element = self.cluster.start_elements(
                self.links, LINK_ELEMENT_RT_PRIORITY, lambda node, cmd: sh(node, cmd)
            )
            self._write_registry()
            return
        node = self.links_node

        def configure() -> None:
            ifconf.sysctl("net.ipv6.conf.all.disable_ipv6", "1")
            ifconf.sysctl("net.ipv6.conf.default.disable_ipv6", "1")
            ifconf.set_links({"lo": {"state": "up"}})

        try:
            in_netns_of(node.pid, configure)
        except ICPNError as e:
            raise EmulationError(f"links namespace: {e}") from None

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
        self.element.add_many(
            [
                (
                    info.link_id,
                    info.la_if,
                    info.lb_if,
                    info.link.model("a2b"),
                    info.link.model("b2a"),
                )
                for info in self.links
            ]
        )

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
        """Start every switch's runner. Runners that say so (`parallel_start`) start on a few
        threads at once: an eBPF node's start is mostly the kernel verifying its program
        (about 1 s of one core here), which runs outside the GIL (docs/scaling.md)."""
        runners = {name: self.runner_factory(name) for name in self.plan.switches}
        if self.cluster is not None:  # a node on another server runs its plane there
            for name, runner in runners.items():
                self.cluster.runner_for(self.nodes[name], runner)

        def start(name: str) -> None:
            cfg = self.plan.switches[name]
            ifs = {port: self.ifnames[(name, port)] for port in (p.index for p in cfg.ports)}
            runners[name].start(self.nodes[name], cfg, ifs, self.run_dir)

        together = [n for n, r in runners.items() if getattr(r, "parallel_start", False)]
        for name in runners:
            if name not in together:
                start(name)
                self.runners[name] = runners[name]
        errors: list[BaseException] = []
        with ThreadPoolExecutor(max_workers=START_THREADS) as pool:
            futures = {name: pool.submit(start, name) for name in together}
            for name, future in futures.items():
                error = future.exception()
                if error is None:
                    self.runners[name] = runners[name]
                else:
                    errors.append(error)
        if errors:
            raise errors[0]

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
        self._stop_runners()
        if self.element is not None:
            element, self.element = self.element, None
            element.stop()
        if self.cluster is not None:
            self.cluster.cleanup()  # what is left in the run's namespaces on the other servers
        if self.net is not None:
            net, self.net = self.net, None
            # Every interface of the run lives in a node's namespace, and a veth pair goes with
            # either end's namespace: ending the nodes' shells removes them all, in the kernel's
            # batched namespace cleanup. Mininet's own link.stop() ran `ip link del` through a
            # shell for each of the 4 ends of a link (24 ms a link here: docs/scaling.md).
            net.links = []
            net.stop()
        delete_root_links(self.prefix)
        if self.cluster is not None:
            self.cluster.close()
        self._registry.unlink(missing_ok=True)

    def _stop_runners(self) -> None:
        """Stop every switch runner; those that may (`parallel_start`) on many threads at once:
        closing a packet socket waits for an RCU grace period (about 13 ms here), and an eBPF
        node holds one a port, so 1,000 nodes spent 20 s closing them one after the other."""
        runners, self.runners = list(self.runners.values()), {}
        errors: list[BaseException] = []
        with ThreadPoolExecutor(max_workers=STOP_THREADS) as pool:
            futures = [pool.submit(r.stop) for r in runners if getattr(r, "parallel_start", False)]
            for r in runners:
                if not getattr(r, "parallel_start", False):
                    r.stop()
            errors = [e for f in futures if (e := f.exception()) is not None]
        if errors:
            raise errors[0]

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
