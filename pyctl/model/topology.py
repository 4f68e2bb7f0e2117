"""Topologies as data: sites, nodes, links and intents (schema: docs/topology.md)."""

from __future__ import annotations

import dataclasses
import enum
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyctl import constants as C
from pyctl.errors import ConfigError
from pyctl.model.fields import Field
from pyctl.model.link import (
    JITTER_DISTS,
    MAX_DELAY_MS,
    GilbertElliott,
    JitterDist,
    LinkModel,
)
from pyctl.model.node import EncapMode, Role


class Kind(enum.StrEnum):
    HOST = "host"
    COLLECTOR = "collector"  # a host that receives IFIT reports
    EBPF = "ebpf"
    BMV2 = "bmv2"
    AUTO = (
        "auto"  # the run's choice: eBPF where it runs, else the reference (scenario.choose_runner)
    )


@dataclass(frozen=True)
class Site:
    name: str
    gpus: int = 0
    description: str = ""


@dataclass(frozen=True)
class TopoNode:
    name: str
    kind: Kind
    site: str | None = None
    role: Role | None = None  # routers only

    @property
    def is_router(self) -> bool:
        return self.kind in (Kind.EBPF, Kind.BMV2, Kind.AUTO)


# Link fields a direction may override (`a_to_b:` / `b_to_a:`), besides the whole-link ones.
DIRECTION_FIELDS = (
    "bw_mbit",
    "delay_ms",
    "jitter_ms",
    "jitter_dist",
    "reorder",
    "loss_pct",
    "gilbert_elliott",
    "queue_packets",
    "queue_bytes",
)


@dataclass(frozen=True)
class Link:
    """A link between two nodes and what it does to frames (docs/topology.md, the link model).

    The fields hold both directions; `a_to_b` / `b_to_a` override some of them for one
    direction. `model("a2b")` is what the link element applies to frames from a to b."""

    a: str
    b: str
    bw_mbit: float | None = None  # serialisation rate; None: as fast as the element goes
    delay_ms: float = 0.0  # one-way propagation
    jitter_ms: float = 0.0
    jitter_dist: JitterDist = "uniform"
    reorder: bool = False  # let jitter reorder frames (as netem does); off: FIFO
    loss_pct: float = 0.0  # random loss
    gilbert_elliott: GilbertElliott | None = None  # burst loss instead of loss_pct
    mtu: int = 9000
    # The sending port's buffer: queue_packets full-size frames, or queue_bytes when given; the
    # same buffer the switch data planes mark ECN and tail-drop against (runners.port_buffers),
    # so the element never drops what a switch's queue admitted.
    queue_packets: int = 64
    queue_bytes: int | None = None
    a_to_b: tuple[tuple[str, object], ...] = ()
    b_to_a: tuple[tuple[str, object], ...] = ()

    def model(self, direction: str) -> LinkModel:
        over = dict(self.a_to_b if direction == "a2b" else self.b_to_a)

        def get(name: str) -> Any:
            return over.get(name, getattr(self, name))

        rate = get("bw_mbit")
        buffer = self.buffer_bytes(direction)
        return LinkModel(
            delay_ms=get("delay_ms"),
            jitter_ms=get("jitter_ms"),
            jitter_dist=get("jitter_dist"),
            reorder=get("reorder"),
            loss_pct=get("loss_pct"),
            gilbert_elliott=get("gilbert_elliott"),
            rate_mbit=rate,
            # without a rate nothing waits: a limit would only cap frames in flight
            queue_packets=None,
            queue_bytes=buffer if rate else None,
        )

    def buffer_bytes(self, direction: str = "a2b") -> int:
        """The sending port's buffer in bytes (what ECN and tail drop count against)."""
        over = dict(self.a_to_b if direction == "a2b" else self.b_to_a)
        qb = over.get("queue_bytes", self.queue_bytes)
        qp = over.get("queue_packets", self.queue_packets)
        return int(qb) if qb else int(qp) * (self.mtu + C.ETH_HLEN)  # type: ignore[call-overload]

    def scaled(self, factor: float) -> Link:
        """The link with every rate times `factor` (what a smaller VM carries)."""

        def scale(items: tuple[tuple[str, object], ...]) -> tuple[tuple[str, object], ...]:
            return tuple(
                (k, v * factor if k == "bw_mbit" and isinstance(v, float) else v) for k, v in items
            )

        return dataclasses.replace(
            self,
            bw_mbit=self.bw_mbit * factor if self.bw_mbit else None,
            a_to_b=scale(self.a_to_b),
            b_to_a=scale(self.b_to_a),
        )


@dataclass(frozen=True)
class PolicyIntent:
    """Traffic from `headend` to the site behind `egress`, over each path of transit nodes."""

    name: str
    headend: str
    egress: str
    paths: tuple[tuple[str, ...], ...]
    weights: tuple[int, ...]
    mode: EncapMode = EncapMode.ENCAPS
    bidirectional: bool = True


@dataclass(frozen=True)
class APNIntent:
    app: int
    user: int


@dataclass(frozen=True)
class SLA:
    latency_us: int | None = None
    loss_ppm: int | None = None
    bandwidth_mbit: float | None = None


@dataclass(frozen=True)
class Server:
    """A machine of a cluster run (docs/cluster.md): a host name or IPv4 address, and the nodes
    pinned to it (the others are placed by Mininet's cluster mode)."""

    name: str
    nodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class FlowIntent:
    name: str
    src: str
    dst: str
    proto: int = C.IPPROTO_UDP
    sport: int = 10000
    dport: int = C.ROCEV2_UDP_PORT
    qp: int | None = None  # RoCEv2 destination QP
    apn: APNIntent | None = None
    app: str = ""
    ifit: bool = True
    rate_mbit: float = 10.0
    sla: SLA = SLA()
    # A reliable connection (RC, as an RDMA NIC runs one): at most this many kB unacknowledged,
    # go-back-N on loss (pyctl.net.traffic); None: paced and unacknowledged.
    window_kb: float | None = None

    def scaled(self, factor: float) -> FlowIntent:
        """The flow with its rate, RC window and SLA bandwidth times `factor`.

        The window is a volume in flight, so it follows the rate. The SLA bandwidth scales too:
        `icpn run` used to keep it while the experiments scaled it, and scaling won because it
        is a rate the network promises the flow (carried to the nodes as the APN bandwidth
        parameter), and on links scaled by `factor` an unscaled figure promises more than the
        path can carry. The SLA's latency and loss stay: times and ratios do not follow rates."""
        bw = self.sla.bandwidth_mbit
        return dataclasses.replace(
            self,
            rate_mbit=self.rate_mbit * factor,
            window_kb=self.window_kb * factor if self.window_kb else None,
            sla=dataclasses.replace(self.sla, bandwidth_mbit=bw * factor) if bw else self.sla,
        )


@dataclass(frozen=True)
class Topology:
    name: str
    description: str
    sites: tuple[Site, ...]
    nodes: tuple[TopoNode, ...]
    links: tuple[Link, ...]
    policies: tuple[PolicyIntent, ...] = ()
    flows: tuple[FlowIntent, ...] = ()
    features: dict[str, object] = field(default_factory=dict)  # apn/ifit/elephant/ecn/pfc raw
    source: str = "<topology>"
    # the machines of a cluster run, the first one running icpn (empty: one machine)
    servers: tuple[Server, ...] = ()

    def node(self, name: str) -> TopoNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    @property
    def routers(self) -> list[TopoNode]:
        return [n for n in self.nodes if n.is_router]

    def scaled(self, factor: float) -> Topology:
        """The topology at `factor` of its rates, what a smaller machine carries (`icpn run`
        and `icpn experiment` --scale): link bandwidths, flows (`FlowIntent.scaled`) and the
        elephant threshold (a volume a flow sends in a window). Times are kept."""
        if factor == 1:
            return self
        features = dict(self.features)
        if "elephant" in features:
            ele = dict(features["elephant"] or {})  # type: ignore[call-overload]
            threshold = ele.get("threshold_bytes", C.ELEPHANT_THRESHOLD_BYTES_DEFAULT)
            ele["threshold_bytes"] = max(1, int(threshold * factor))
            features["elephant"] = ele
        return dataclasses.replace(
            self,
            links=tuple(lk.scaled(factor) for lk in self.links),
            flows=tuple(f.scaled(factor) for f in self.flows),
            features=features,
        )


_FEATURES = ("apn", "ifit", "elephant", "ecn", "pfc")


def _site(f: Field) -> Site:
    f.mapping(("name", "gpus", "description"))
    return Site(
        f.child("name").string(),
        f.child("gpus").integer(0, 1_000_000, 0),
        f.child("description").string(""),
    )


def _node(f: Field, sites: set[str]) -> TopoNode:
    f.mapping(("name", "kind", "site", "role"))
    kind = f.child("kind").choice(Kind)
    site_f = f.child("site")
    site = site_f.string() if site_f.present() else None
    if site is not None and site not in sites:
        raise site_f.fail(f"{site!r} is not a site of this topology ({', '.join(sorted(sites))})")
    role_f = f.child("role")
    role = role_f.choice(Role) if role_f.present() else None
    router = kind in (Kind.EBPF, Kind.BMV2, Kind.AUTO)
    if router and role is None:
        raise role_f.fail("is required for a switch node (headend, transit or egress)")
    if not router and role is not None:
        raise role_f.fail(f"applies to switch nodes, not to a {kind.value}")
    return TopoNode(f.child("name").string(), kind, site, role)


def _direction(f: Field) -> dict[str, object]:
    """A link's model fields as given (those present), checked one by one."""
    out: dict[str, object] = {}
    if f.child("bw_mbit").present():
        out["bw_mbit"] = f.child("bw_mbit").number(0.001, 10_000_000, 0)
    for name in ("delay_ms", "jitter_ms"):
        if f.child(name).present():
            out[name] = f.child(name).number(0, MAX_DELAY_MS, 0)
    if f.child("jitter_dist").present():
        dist = f.child("jitter_dist").string()
        if dist not in JITTER_DISTS:
            raise f.child("jitter_dist").fail(f"{dist!r} is not one of {', '.join(JITTER_DISTS)}")
        out["jitter_dist"] = dist
    if f.child("reorder").present():
        out["reorder"] = f.child("reorder").boolean(False)
    if f.child("loss_pct").present():
        out["loss_pct"] = f.child("loss_pct").number(0, 100, 0)
    ge = f.child("gilbert_elliott")
    if ge.present():
        ge.mapping(("p_pct", "r_pct", "loss_bad_pct", "loss_good_pct"))
        out["gilbert_elliott"] = GilbertElliott(
            p_pct=ge.child("p_pct").number(0, 100, 0),
            r_pct=ge.child("r_pct").number(0, 100, 0),
            loss_bad_pct=ge.child("loss_bad_pct").number(0, 100, 100),
            loss_good_pct=ge.child("loss_good_pct").number(0, 100, 0),
        )
        if out.get("loss_pct"):
            raise f.child("loss_pct").fail("give loss_pct or gilbert_elliott, not both")
    if f.child("queue_packets").present():
        out["queue_packets"] = f.child("queue_packets").integer(1, 100_000)
    if f.child("queue_bytes").present():
        out["queue_bytes"] = f.child("queue_bytes").integer(1500, 1_000_000_000)
    return out


def _link(f: Field, names: set[str]) -> Link:
    f.mapping(("a", "b", "mtu", "a_to_b", "b_to_a", *DIRECTION_FIELDS))
    ends = []
    for key in ("a", "b"):
        end = f.child(key)
        name = end.string()
        if name not in names:
            raise end.fail(f"{name!r} is not a node of this topology")
        ends.append(name)
    if ends[0] == ends[1]:
        raise f.child("b").fail(f"a link cannot join {ends[0]!r} to itself")
    overrides = {}
    for key in ("a_to_b", "b_to_a"):
        d = f.child(key)
        if d.present():
            d.mapping(DIRECTION_FIELDS)
            overrides[key] = tuple(_direction(d).items())
    link = Link(
        a=ends[0],
        b=ends[1],
        mtu=f.child("mtu").integer(1280, 9000, 9000),
        **_direction(f),  # type: ignore[arg-type]
        **overrides,  # type: ignore[arg-type]
    )
    for direction in ("a2b", "b2a"):
        link.model(direction)  # the combination is valid too (e.g. GE beside an override)
    return link


def _policy(f: Field, routers: dict[str, TopoNode]) -> PolicyIntent:
    f.mapping(("name", "headend", "egress", "paths", "weights", "mode", "bidirectional"))

    def router(x: Field) -> str:
        name = x.string()
        if name not in routers:
            raise x.fail(f"{name!r} is not a switch node of this topology")
        return name

    paths = tuple(tuple(router(n) for n in p.items()) for p in f.child("paths").items())
    if not paths:
        paths = ((),)
    if len(paths) > C.MAX_SID_LISTS:
        raise f.child("paths").fail(f"has {len(paths)} paths; at most {C.MAX_SID_LISTS}")
    for i, p in enumerate(paths):
        if len(p) + 1 > C.MAX_SEGMENTS:
            raise (
                f.child("paths").child(i).fail(f"needs {len(p) + 1} segments; max {C.MAX_SEGMENTS}")
            )
    wf = f.child("weights")
    weights = wf.listed(lambda w: w.integer(1, 0xFFFF)) if wf.present() else (1,) * len(paths)
    if len(weights) != len(paths):
        raise wf.fail(f"has {len(weights)} weights for {len(paths)} paths")
    return PolicyIntent(
        name=f.child("name").string(),
        headend=router(f.child("headend")),
        egress=router(f.child("egress")),
        paths=paths,
        weights=weights,
        mode=f.child("mode").choice(EncapMode, EncapMode.ENCAPS),
        bidirectional=f.child("bidirectional").boolean(True),
    )


_PROTOS = {"udp": C.IPPROTO_UDP, "tcp": C.IPPROTO_TCP, "icmpv6": C.IPPROTO_ICMPV6}


def _flow(f: Field, hosts: set[str]) -> FlowIntent:
    f.mapping(
        ("name", "src", "dst", "proto", "sport", "dport", "qp", "apn", "app", "ifit")
        + ("rate_mbit", "sla", "window_kb")
    )
    ends = []
    for key in ("src", "dst"):
        end = f.child(key)
        if end.string() not in hosts:
            raise end.fail(f"{end.value!r} is not a host of this topology")
        ends.append(end.string())
    proto_f = f.child("proto")
    proto_name = proto_f.string("udp")
    if proto_name not in _PROTOS:
        raise proto_f.fail(f"{proto_name!r} is not one of: {', '.join(_PROTOS)}")
    apn_f = f.child("apn")
    apn = None
    if apn_f.present():
        apn_f.mapping(("app", "user"))
        apn = APNIntent(
            apn_f.child("app").integer(0, 0xFFFF), apn_f.child("user").integer(0, 0xFFFF)
        )
    sla_f = f.child("sla")
    sla_f.mapping(("latency_us", "loss_ppm", "bandwidth_mbit"))
    bw = sla_f.child("bandwidth_mbit")
    window = f.child("window_kb")
    return FlowIntent(
        name=f.child("name").string(),
        src=ends[0],
        dst=ends[1],
        proto=_PROTOS[proto_name],
        sport=f.child("sport").integer(0, 0xFFFF, 10000),
        dport=f.child("dport").integer(0, 0xFFFF, C.ROCEV2_UDP_PORT),
        qp=f.child("qp").opt_integer(0, 0xFFFFFF),
        apn=apn,
        app=f.child("app").string(""),
        ifit=f.child("ifit").boolean(True),
        rate_mbit=f.child("rate_mbit").number(0.001, 100_000, 10.0),
        sla=SLA(
            latency_us=sla_f.child("latency_us").opt_integer(1, 1 << 40),
            loss_ppm=sla_f.child("loss_ppm").opt_integer(0, 1_000_000),
            bandwidth_mbit=bw.number(0, 1_000_000, 0) if bw.present() else None,
        ),
        window_kb=window.number(1, 1_000_000, 0) if window.present() else None,
    )


SERVER_NAME = r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})"


def _servers(f: Field, names: set[str]) -> tuple[Server, ...]:
    """`servers:` a list of host names (or IPv4 addresses), each either a string or
    `{name: NAME, nodes: [NODE, ...]}`; a node is pinned to at most one server."""
    out: list[Server] = []
    pinned: dict[str, str] = {}
    for sf in f.items():
        nodes: tuple[str, ...] = ()
        if isinstance(sf.value, str):
            name = sf.value
        else:
            sf.mapping(("name", "nodes"))
            name = sf.child("name").string()
            items = sf.child("nodes").items()
            nodes = tuple(x.string() for x in items)
            for x, node in zip(items, nodes, strict=True):
                if node not in names:
                    raise x.fail(f"{node!r} is not a node of this topology")
                if node in pinned:
                    raise x.fail(f"{node!r} is already on server {pinned[node]!r}")
                pinned[node] = name
        if not re.fullmatch(SERVER_NAME, name):
            raise sf.fail(f"{name!r} is not a host name or IPv4 address")
        if any(s.name == name for s in out):
            raise sf.fail(f"server {name!r} is listed twice")
        out.append(Server(name, nodes))
    return tuple(out)


def topology_from_field(f: Field) -> Topology:
    f.mapping(
        ("name", "description", "sites", "nodes", "links", "policies", "flows", "servers")
        + _FEATURES
    )
    sites = f.child("sites").listed(_site)
    site_names = {s.name for s in sites}
    nodes = tuple(_node(n, site_names) for n in f.child("nodes").items())
    names = [n.name for n in nodes]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise f.child("nodes").fail(f"duplicate node names: {', '.join(sorted(dup))}")
    if not nodes:
        raise f.child("nodes").fail("at least one node is required")
    links = tuple(_link(lf, set(names)) for lf in f.child("links").items())
    routers = {n.name: n for n in nodes if n.is_router}
    hosts = {n.name for n in nodes if n.kind is Kind.HOST}
    policies = tuple(_policy(p, routers) for p in f.child("policies").items())
    flows = tuple(_flow(x, hosts) for x in f.child("flows").items())
    features = {k: f.child(k).value for k in _FEATURES if f.child(k).present()}
    return Topology(
        name=f.child("name").string(),
        description=f.child("description").string(""),
        sites=sites,
        nodes=nodes,
        links=links,
        policies=policies,
        flows=flows,
        features=features,
        source=f.source,
        servers=_servers(f.child("servers"), set(names)),
    )


def load_topology(path: str | Path) -> Topology:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(str(p), f"cannot read: {e.strerror}") from None
    return topology_from_field(Field.from_yaml(text, str(p)))
