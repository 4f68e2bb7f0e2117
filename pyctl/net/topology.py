"""Topologies as data: sites, nodes, links and intents (schema: docs/topology.md)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from pyctl import constants as C
from pyctl.errors import ConfigError
from pyctl.model.fields import Field
from pyctl.model.node import EncapMode, Role


class Kind(enum.StrEnum):
    HOST = "host"
    COLLECTOR = "collector"  # a host that receives IFIT reports
    EBPF = "ebpf"
    BMV2 = "bmv2"
    AUTO = "auto"  # BMv2 where present, else eBPF


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


@dataclass(frozen=True)
class Link:
    a: str
    b: str
    bw_mbit: float | None = None
    delay_ms: float = 0.0
    loss_pct: float = 0.0
    mtu: int = 9000
    queue_packets: int = 64


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

    def node(self, name: str) -> TopoNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    @property
    def routers(self) -> list[TopoNode]:
        return [n for n in self.nodes if n.is_router]


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


def _link(f: Field, names: set[str]) -> Link:
    f.mapping(("a", "b", "bw_mbit", "delay_ms", "loss_pct", "mtu", "queue_packets"))
    ends = []
    for key in ("a", "b"):
        end = f.child(key)
        name = end.string()
        if name not in names:
            raise end.fail(f"{name!r} is not a node of this topology")
        ends.append(name)
    if ends[0] == ends[1]:
        raise f.child("b").fail(f"a link cannot join {ends[0]!r} to itself")
    bw = f.child("bw_mbit")
    return Link(
        a=ends[0],
        b=ends[1],
        bw_mbit=bw.number(0.001, 1_000_000, 0) if bw.present() else None,
        delay_ms=f.child("delay_ms").number(0, 10_000, 0),
        loss_pct=f.child("loss_pct").number(0, 100, 0),
        mtu=f.child("mtu").integer(1280, 9000, 9000),
        queue_packets=f.child("queue_packets").integer(1, 100_000, 64),
    )


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
        + ("rate_mbit", "sla")
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
    )


def topology_from_field(f: Field) -> Topology:
    f.mapping(("name", "description", "sites", "nodes", "links", "policies", "flows") + _FEATURES)
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
    )


def load_topology(path: str | Path) -> Topology:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(str(p), f"cannot read: {e.strerror}") from None
    return topology_from_field(Field.from_yaml(text, str(p)))
