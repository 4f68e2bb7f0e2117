"""From a topology and its intents to every node's configuration: nobody writes entries by hand.

Address plan (docs/topology.md):
* switch n (1-based, in file order): locator and End SID `fc00:0:n::/48` (F3216: block fc00:0000,
  C-SID n), End.DT6 SID `fc00:0:n:d6::/64`, outer source `fc00:0:n::1`, port p's MAC
  `02:00:NN:NN:00:pp`;
* host k of site s: `2001:db8:s::k`, MAC `02:01:KK:KK:00:01`; a site's prefix is `2001:db8:s::/48`;
* collector: `fd00::c`.
Routes between switches follow shortest paths (hop count; ties broken by node order).
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from pyctl import constants as C
from pyctl.errors import ConfigError
from pyctl.model.fields import Field
from pyctl.model.hashing import apn_hash, bucket_table
from pyctl.model.load import parse_apn, parse_ecn, parse_elephant, parse_ifit, parse_pfc
from pyctl.model.node import (
    Adjacency,
    APNClassifier,
    APNConfig,
    APNMark,
    Behaviour,
    Collector,
    ECNConfig,
    ElephantConfig,
    FlowMatch,
    IFITConfig,
    IFITFlow,
    IFITRole,
    LocalSID,
    NodeConfig,
    PFCConfig,
    Port,
    Role,
    Route,
    SIDList,
    SRv6Policy,
)
from pyctl.model.topology import FlowIntent, Kind, Topology

COLLECTOR_ADDR = ipaddress.IPv6Address("fd00::c")


@dataclass(frozen=True)
class HostPlan:
    name: str
    address: ipaddress.IPv6Address
    mac: str
    switch: str  # the switch it is attached to
    switch_port: int
    gateway_mac: str  # MAC of that switch port


@dataclass
class Plan:
    """Everything the controller derived: per-switch configs, hosts, and the port wiring."""

    switches: dict[str, NodeConfig] = field(default_factory=dict)
    hosts: dict[str, HostPlan] = field(default_factory=dict)
    # (node, port) -> (peer node, peer port); hosts use port 1 for their single interface
    wiring: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    flowmon_ids: dict[str, int] = field(default_factory=dict)  # flow name -> FlowMonID

    def end_sid(self, switch: str) -> ipaddress.IPv6Address:
        return _end_sid(self._index(switch))

    def _index(self, switch: str) -> int:
        return list(self.switches).index(switch) + 1


def _end_sid(n: int) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(f"fc00:0:{n:x}::")


def _dt6_sid(n: int) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(f"fc00:0:{n:x}:d6::")


def _switch_mac(n: int, port: int) -> str:
    return f"02:00:{n >> 8:02x}:{n & 0xFF:02x}:00:{port:02x}"


def _host_mac(k: int) -> str:
    return f"02:01:{k >> 8:02x}:{k & 0xFF:02x}:00:01"


def _site_prefix(s: int) -> ipaddress.IPv6Network:
    return ipaddress.IPv6Network(f"2001:db8:{s:x}::/48")


def _features(topo: Topology) -> dict[str, Any]:
    def parsed(name: str, parse: Any, default: Any) -> Any:
        raw = topo.features.get(name)
        return default if raw is None else parse(Field(raw, name, topo.source))

    return {
        "apn": parsed("apn", parse_apn, APNConfig()),
        "ifit": parsed("ifit", parse_ifit, IFITConfig()),
        "elephant": parsed("elephant", parse_elephant, ElephantConfig()),
        "ecn": parsed("ecn", parse_ecn, ECNConfig()),
        "pfc": parsed("pfc", parse_pfc, PFCConfig()),
    }


def make_plan(topo: Topology) -> Plan:
    """Derive every switch's `NodeConfig` from the topology (raises ConfigError on conflicts)."""
    feats = _features(topo)
    switches = [n.name for n in topo.routers]
    index = {name: i + 1 for i, name in enumerate(switches)}
    site_index = {s.name: i + 1 for i, s in enumerate(topo.sites)}

    ports: dict[str, list[Port]] = {s: [] for s in switches}
    wiring: dict[tuple[str, int], tuple[str, int]] = {}
    host_links: dict[str, tuple[str, int]] = {}
    for link in topo.links:
        ends: list[tuple[str, int]] = []
        for name in (link.a, link.b):
            if name in index:
                p = len(ports[name]) + 1
                if p >= C.MAX_PORTS:  # every data plane holds ports 0..MAX_PORTS-1
                    raise ConfigError(
                        topo.source,
                        f"links: switch {name!r} has more than {C.MAX_PORTS - 1} links"
                        f" (ports 1..{C.MAX_PORTS - 1})",
                    )
                ports[name].append(Port(p, _switch_mac(index[name], p)))
                ends.append((name, p))
            else:
                if name in host_links:
                    raise ConfigError(topo.source, f"links: host {name!r} has more than one link")
                ends.append((name, 1))
        wiring[ends[0]] = ends[1]
        wiring[ends[1]] = ends[0]
        for (a, _), (b, bp) in ((ends[0], ends[1]), (ends[1], ends[0])):
            if a not in index and b in index:
                host_links[a] = (b, bp)

    hosts: dict[str, HostPlan] = {}
    per_site: dict[int, int] = {}
    for k, node in enumerate(topo.nodes, 1):
        if node.is_router:
            continue
        if node.name not in host_links:
            raise ConfigError(topo.source, f"nodes: {node.name!r} is not linked to a switch")
        sw, sp = host_links[node.name]
        if node.kind is Kind.COLLECTOR:
            addr = COLLECTOR_ADDR
        else:
            if node.site is None:
                raise ConfigError(topo.source, f"nodes: host {node.name!r} needs a site")
            si = site_index[node.site]
            per_site[si] = per_site.get(si, 0) + 1
            addr = _site_prefix(si)[per_site[si]]
        hosts[node.name] = HostPlan(
            node.name, addr, _host_mac(k), sw, sp, _switch_mac(index[sw], sp)
        )

    next_hop = _shortest_next_hops(switches, wiring)

    def adjacency_towards(src: str, dst: str) -> Adjacency:
        port = next_hop[(src, dst)]
        peer, peer_port = wiring[(src, port)]
        return Adjacency(port, _switch_mac(index[peer], peer_port))

    routes: dict[str, list[Route]] = {s: [] for s in switches}
    for s in switches:
        for t in switches:
            if s != t and (s, t) in next_hop:
                prefix = ipaddress.IPv6Network(f"fc00:0:{index[t]:x}::/48")
                routes[s].append(Route(prefix, adjacency_towards(s, t)))
        for h in hosts.values():
            if h.switch == s:
                routes[s].append(
                    Route(ipaddress.ip_network(h.address), Adjacency(h.switch_port, h.mac))
                )
            elif h.address == COLLECTOR_ADDR and (s, h.switch) in next_hop:
                routes[s].append(
                    Route(ipaddress.ip_network(h.address), adjacency_towards(s, h.switch))
                )

    policies: dict[str, list[SRv6Policy]] = {s: [] for s in switches}
    dt6_needed: set[str] = set()
    for pol in topo.policies:
        legs = [(pol.headend, pol.egress, pol.paths, pol.name)]
        if pol.bidirectional:
            back = tuple(tuple(reversed(p)) for p in pol.paths)
            legs.append((pol.egress, pol.headend, back, pol.name + "-reverse"))
        for head, tail, paths, name in legs:
            tail_node = topo.node(tail)
            if tail_node.site is None:
                raise ConfigError(topo.source, f"policies: egress {tail!r} needs a site")
            sid_lists = tuple(
                SIDList(
                    tuple(_end_sid(index[t]) for t in path) + (_dt6_sid(index[tail]),), weight=w
                )
                for path, w in zip(paths, pol.weights, strict=True)
            )
            for path in paths:
                hops = [head, *path, tail]
                for a, b in zip(hops, hops[1:], strict=False):
                    if (a, b) not in next_hop:
                        raise ConfigError(
                            topo.source, f"policies: {name}: {b!r} unreachable from {a!r}"
                        )
            site = _site_prefix(site_index[tail_node.site])
            apn_ids = [
                (f.apn.app << 16) | f.apn.user
                for f in topo.flows
                if f.apn is not None
                and hosts[f.src].switch == head
                and hosts[f.dst].address in site
            ]
            policies[head].append(
                SRv6Policy(
                    name=name,
                    match=FlowMatch(dst=site),
                    sid_lists=sid_lists,
                    mode=pol.mode,
                    buckets=spread_elephants(bucket_table(list(pol.weights)), apn_ids, len(paths)),
                )
            )
            dt6_needed.add(tail)

    flowmon = {f.name: i + 1 for i, f in enumerate(topo.flows) if f.ifit}
    collector_present = any(h.address == COLLECTOR_ADDR for h in hosts.values())
    if flowmon and not collector_present:
        raise ConfigError(topo.source, "flows: IFIT is on for some flow but no node is a collector")

    plan = Plan(hosts=hosts, wiring=wiring, flowmon_ids=flowmon)
    for s in switches:
        n = index[s]
        sids = [LocalSID(ipaddress.IPv6Network(f"{_end_sid(n)}/48"), Behaviour.END)]
        if s in dt6_needed:
            sids.append(LocalSID(ipaddress.IPv6Network(f"{_dt6_sid(n)}/64"), Behaviour.END_DT6))
        plan.switches[s] = NodeConfig(
            name=s,
            role=topo.node(s).role or _default_role(s, policies),
            node_id=n,
            ports=tuple(ports[s]),
            source=ipaddress.IPv6Address(f"fc00:0:{n:x}::1"),
            routes=tuple(routes[s]),
            local_sids=tuple(sids),
            policies=tuple(policies[s]),
            apn=_apn_for(s, topo, plan, feats["apn"]),
            ifit=_ifit_for(s, topo, plan, feats["ifit"], policies, dt6_needed, collector_present),
            elephant=feats["elephant"] if policies[s] else ElephantConfig(),
            ecn=feats["ecn"],
            pfc=feats["pfc"],
        )
    return plan


def spread_elephants(buckets: tuple[int, ...], apn_ids: list[int], n_lists: int) -> tuple[int, ...]:
    """Pin the bucket of each known elephant APN-ID to its own SID list, round robin.

    Deep hashing sends an elephant to `buckets[crc32(APN-ID) % len(buckets)]`; left to the weighted
    fill, two elephants may land on one path. The controller knows the APN-IDs of its intents,
    so it spreads them (SPEC 4). Two APN-IDs hashing to the same bucket must share a path.
    """
    table = list(buckets)
    seen: set[int] = set()
    for i, apn_id in enumerate(apn_ids):
        b = apn_hash(apn_id, C.APN_ID_TYPE_32) % len(table)
        if b not in seen:
            table[b] = i % n_lists
            seen.add(b)
    return tuple(table)


def _default_role(s: str, policies: dict[str, list[SRv6Policy]]) -> Role:
    return Role.HEADEND if policies[s] else Role.TRANSIT


def _shortest_next_hops(
    switches: list[str], wiring: dict[tuple[str, int], tuple[str, int]]
) -> dict[tuple[str, str], int]:
    """(src, dst) -> egress port of src on a shortest switch-only path (BFS, ties by order)."""
    adj: dict[str, list[tuple[int, str]]] = {s: [] for s in switches}
    for (a, ap), (b, _) in sorted(wiring.items()):
        if a in adj and b in adj:
            adj[a].append((ap, b))
    out: dict[tuple[str, str], int] = {}
    for src in switches:
        first: dict[str, int] = {src: 0}
        queue = deque([src])
        while queue:
            cur = queue.popleft()
            for port, nb in adj[cur]:
                if nb not in first:
                    first[nb] = port if cur == src else first[cur]
                    queue.append(nb)
        for dst, port in first.items():
            if dst != src:
                out[(src, dst)] = port
    return out


def _flow_match(plan: Plan, f: FlowIntent) -> FlowMatch:
    return FlowMatch(
        src=ipaddress.ip_network(plan.hosts[f.src].address),
        dst=ipaddress.ip_network(plan.hosts[f.dst].address),
        proto=f.proto,
        dport=f.dport,
    )


def _apn_for(s: str, topo: Topology, plan: Plan, base: APNConfig) -> APNConfig:
    classifiers = []
    qp_map = []
    for f in topo.flows:
        if f.apn is None or plan.hosts[f.src].switch != s:
            continue
        mark = APNMark(apn_id=(f.apn.app << 16) | f.apn.user)
        if f.sla.bandwidth_mbit or f.sla.latency_us:
            from pyctl.model.node import APNParams

            mark = replace(
                mark,
                params=APNParams(
                    bandwidth_kbps=int(f.sla.bandwidth_mbit * 1000)
                    if f.sla.bandwidth_mbit
                    else None,
                    latency_us=f.sla.latency_us,
                    loss_ppm=f.sla.loss_ppm,
                ),
            )
        classifiers.append(APNClassifier(_flow_match(plan, f), mark))
        if f.qp is not None and f.dport == C.ROCEV2_UDP_PORT:
            qp_map.append((f.qp, mark))
    return replace(base, classifiers=tuple(classifiers), qp_map=tuple(qp_map))


def _ifit_for(
    s: str,
    topo: Topology,
    plan: Plan,
    base: IFITConfig,
    policies: dict[str, list[SRv6Policy]],
    tails: set[str],
    collector: bool,
) -> IFITConfig:
    if not plan.flowmon_ids:
        return IFITConfig()
    flows = tuple(
        IFITFlow(_flow_match(plan, f), plan.flowmon_ids[f.name])
        for f in topo.flows
        if f.name in plan.flowmon_ids and plan.hosts[f.src].switch == s
    )
    if flows and policies[s]:
        role = IFITRole.HEAD
    elif s in tails and collector:
        role = IFITRole.TAIL
    else:
        role = IFITRole.TRANSIT
    return replace(
        base,
        role=role,
        flows=flows if role is IFITRole.HEAD else (),
        collector=Collector(COLLECTOR_ADDR) if role is IFITRole.TAIL else None,
    )
