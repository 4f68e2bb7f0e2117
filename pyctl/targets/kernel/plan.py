"""Translate a `NodeConfig` into sysctls and iproute2 commands for one Linux network namespace.

Pure (no system calls), so the translation is testable without root. The layout:

* port `i` is the veth end `p<i>` (the port's MAC, MTU 9000) whose peer `t<i>` is in the tester
  namespace;
* every adjacency (port, MAC) gets a synthetic next-hop address, `100::<n>` (RFC 6666
  discard-only prefix) and `169.254.<n>`, a host route on its port and a permanent neighbour
  entry, so the kernel never sends Neighbour Discovery or ARP;
* the My-SID table is a routing table consulted first (rule preference 100), then one table per
  SRv6 policy in configuration order (preferences 1000+i, selectors = the policy's match), then
  the main FIB: the processing order of docs/pipeline.md section 1.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from pyctl.errors import ConfigError, DataPlaneUnavailable
from pyctl.model.node import (
    Adjacency,
    Behaviour,
    EncapMode,
    Flavour,
    FlowLabelMode,
    FlowMatch,
    LocalSID,
    NodeConfig,
    SRv6Policy,
)
from pyctl.targets.kernel.probe import KernelCaps

PORT_MTU = 9000
MAIN_TABLE = 254
RESERVED_TABLES = (253, 254, 255)  # default, main, local
SID_TABLE = 70000  # above the model's 16-bit table numbers
POLICY_TABLE_BASE = 70001
PREF_SIDS = 100
PREF_ENCAP_GUARD = 200
PREF_POLICY_BASE = 1000
# Where the node's own ICMP errors come from besides `source`: Linux picks ::1 for ICMPv6 when
# the node has no other address, and 192.0.0.8 (RFC 7600) for ICMPv4 without an IPv4 address.
LOOPBACK_V6 = ipaddress.IPv6Address("::1")
IPV4_DUMMY_SOURCE = ipaddress.IPv4Address("192.0.0.8")
LOOPBACK_V4 = ipaddress.IPv4Address("127.0.0.1")
# Traffic for a SID or policy the kernel cannot run is routed out of this extra veth, one
# neighbour MAC per refused item, so `process` can say which one the packet needed.
SINK_IF = "sink"
MAX_ADJACENCIES = 0xFEFF  # 169.254.255.0/24 is left for the sink next hops

SEG6_FLOWLABEL = {FlowLabelMode.HASH: 1, FlowLabelMode.COPY: 0, FlowLabelMode.ZERO: -1}


class KernelUnsupported(DataPlaneUnavailable):
    """The node asks for something the kernel's seg6 cannot do here (the message says what)."""


@dataclass(frozen=True)
class NextHop:
    adjacency: Adjacency
    v6: ipaddress.IPv6Address
    v4: ipaddress.IPv4Address

    @property
    def dev(self) -> str:
        return port_ifname(self.adjacency.port)


@dataclass(frozen=True)
class KernelPlan:
    """Everything `KernelDataPlane.configure` applies, in order."""

    node_sysctls: dict[str, object]  # before the ports exist, so they inherit the defaults
    tester_sysctls: dict[str, object]
    veth_cmds: tuple[str, ...]  # node namespace, any family
    tester_cmds: tuple[str, ...]
    node_cmds: tuple[str, ...]  # node namespace, any family: links up, addresses, neighbours
    v6_cmds: tuple[str, ...]
    v4_cmds: tuple[str, ...]
    port_sysctls: dict[str, object]
    local_v6: frozenset[ipaddress.IPv6Address]  # the node's own addresses (ICMP error sources)
    local_v4: frozenset[ipaddress.IPv4Address]
    nexthops: tuple[NextHop, ...] = field(default=())
    sink: dict[str, str] = field(default_factory=dict)  # neighbour MAC -> why it is refused


def port_ifname(index: int) -> str:
    return f"p{index}"


def tester_ifname(index: int) -> str:
    return f"t{index}"


def _table(t: int, where: str) -> str:
    if t == 0:
        return "main"
    if t in RESERVED_TABLES:
        raise ConfigError(
            where, f"table {t} is reserved by Linux (253 default, 254 main, 255 local)"
        )
    return str(t)


def _features(node: NodeConfig) -> None:
    """Refuse the node features the kernel's seg6 does not have."""
    if node.apn.classifiers or node.apn.qp_map or node.apn.socket_marks:
        raise KernelUnsupported("kernel seg6 has no APN")
    if node.ifit.role.value != "none":
        raise KernelUnsupported("kernel seg6 has no IFIT (IOAM trace / alternate marking)")
    if node.ecn.enabled:
        raise KernelUnsupported("kernel does no DCQCN-style ECN marking")
    if node.pfc.enabled:
        raise KernelUnsupported("kernel does not generate or honour PFC frames")


def _nexthops(node: NodeConfig) -> dict[Adjacency, NextHop]:
    adjs: list[Adjacency] = [r.via for r in node.routes]
    adjs += [s.adjacency for s in node.local_sids if s.adjacency is not None]
    unique = sorted(set(adjs), key=lambda a: (a.port, a.mac.lower()))
    if len(unique) > MAX_ADJACENCIES:
        raise KernelUnsupported(
            f"{len(unique)} adjacencies; at most {MAX_ADJACENCIES} are supported"
        )
    out = {}
    for n, adj in enumerate(unique, start=1):
        v6 = ipaddress.IPv6Address((0x0100 << 112) | n)
        v4 = ipaddress.IPv4Address((169 << 24) | (254 << 16) | n)
        out[adj] = NextHop(adj, v6, v4)
    return out


def _csid(sid: LocalSID, where: str) -> str:
    for what, bits in (("block_bits", sid.block_bits), ("csid_bits", sid.csid_bits)):
        if bits <= 0 or bits > 120 or bits % 8:
            raise KernelUnsupported(
                f"{where}.{what}: {bits}; kernel NEXT-CSID needs a multiple of 8 in 8..120"
            )
    if sid.block_bits + sid.csid_bits > 128:
        raise KernelUnsupported(f"{where}: block_bits + csid_bits exceed 128")
    return f"flavors next-csid lblen {sid.block_bits} nflen {sid.csid_bits}"


def _flavours(sid: LocalSID, caps: KernelCaps, where: str) -> str:
    fl = sid.flavours
    if not fl:
        return ""
    end = sid.behaviour is Behaviour.END
    name = sid.behaviour.value
    if Flavour.PSP in fl and Flavour.NEXT_CSID in fl:
        raise KernelUnsupported(
            f"{where}: kernel accepts PSP with NEXT-CSID but ignores PSP (NEXT-CSID applies first)"
        )
    if Flavour.PSP in fl:
        if not (caps.psp_end if end else caps.psp_end_x):
            raise KernelUnsupported(f"{where}: this kernel has no PSP flavour for {name}")
        return "flavors psp"
    if not (caps.next_csid_end if end else caps.next_csid_end_x):
        raise KernelUnsupported(f"{where}: this kernel has no NEXT-CSID flavour for {name}")
    return _csid(sid, where)


def _sid_cmd(
    sid: LocalSID, nh: dict[Adjacency, NextHop], caps: KernelCaps, dev: str, where: str
) -> tuple[str, int | None]:
    """The seg6local route of one local SID, and the VRF table it needs (if any)."""
    b = sid.behaviour
    vrf: int | None = None
    if b is Behaviour.END:
        action = "End"
    elif b is Behaviour.END_X:
        assert sid.adjacency is not None
        action = f"End.X nh6 {nh[sid.adjacency].v6}"
    elif b is Behaviour.END_DT6:
        action = f"End.DT6 table {_table(sid.table, where + '.table')}"
    elif b in (Behaviour.END_DT4, Behaviour.END_DT46):
        if not (caps.dt4 if b is Behaviour.END_DT4 else caps.dt46):
            raise KernelUnsupported(
                f"{where}: {b.value} needs a VRF device and this kernel has none (CONFIG_NET_VRF)"
            )
        if sid.table == 0:
            raise KernelUnsupported(f"{where}: kernel {b.value} needs a VRF table, not main")
        vrf = sid.table
        action = f"{b.value} vrftable {_table(sid.table, where + '.table')}"
    elif b is Behaviour.END_DX6:
        assert sid.adjacency is not None
        action = f"End.DX6 nh6 {nh[sid.adjacency].v6}"
    elif b is Behaviour.END_DX4:
        assert sid.adjacency is not None
        action = f"End.DX4 nh4 {nh[sid.adjacency].v4}"
    else:
        raise KernelUnsupported(f"{where}: kernel plane has no {b.value}")
    flv = _flavours(sid, caps, where)
    cmd = f"route add {sid.sid} encap seg6local action {action} {flv} dev {dev} table {SID_TABLE}"
    return " ".join(cmd.split()), vrf


def _families(match: FlowMatch, where: str) -> list[int]:
    fams = {4, 6}
    for net in (match.src, match.dst):
        if net is not None:
            fams &= {net.version}
    if not fams:
        raise ConfigError(where, "src and dst are of different IP versions")
    return sorted(fams)


def _selectors(match: FlowMatch, family: int) -> str:
    any_net = "0.0.0.0/0" if family == 4 else "::/0"
    parts = [f"from {match.src or any_net}", f"to {match.dst or any_net}"]
    if match.proto is not None:
        parts.append(f"ipproto {match.proto}")
    if match.sport is not None:
        parts.append(f"sport {match.sport}")
    if match.dport is not None:
        parts.append(f"dport {match.dport}")
    if match.in_port is not None:
        parts.append(f"iif {port_ifname(match.in_port)}")
    return " ".join(parts)


def _refuse_policy(pol: SRv6Policy, where: str) -> None:
    """Policy selectors an `ip rule` cannot express make the whole node unusable."""
    if pol.match.apn_id is not None:
        raise KernelUnsupported("kernel seg6 has no APN (policy steered on apn_id)")
    if pol.match.dscp is not None:
        raise KernelUnsupported(f"{where}: kernel plane cannot steer a policy on DSCP")


def _policy_route(pol: SRv6Policy, dev: str, default: str) -> str:
    mode = "encap" if pol.mode is EncapMode.ENCAPS else "encap.red"
    segs = ",".join(str(s) for s in pol.sid_lists[0].segments)
    return f"route add {default} encap seg6 mode {mode} segs {segs} dev {dev}"


@dataclass
class _Sink:
    """The refused SIDs and policies: each gets a next hop on the sink interface."""

    cmds: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)

    def hop(self, reason: str) -> tuple[ipaddress.IPv6Address, ipaddress.IPv4Address]:
        k = len(self.reasons) + 1
        if k > 0xFF:
            raise KernelUnsupported("more than 255 SIDs and policies this kernel cannot run")
        mac = f"02:ff:00:00:00:{k:02x}"
        v6 = ipaddress.IPv6Address((0x0100 << 112) | (1 << 32) | k)
        v4 = ipaddress.IPv4Address((169 << 24) | (254 << 16) | (255 << 8) | k)
        self.reasons[mac] = reason
        self.cmds += [
            f"neigh replace {v6} lladdr {mac} dev {SINK_IF} nud permanent",
            f"neigh replace {v4} lladdr {mac} dev {SINK_IF} nud permanent",
        ]
        return v6, v4


def build_plan(node: NodeConfig, caps: KernelCaps, tester_ns: str) -> KernelPlan:
    """The commands that make a namespace behave as `node`; raises before anything is changed.

    Node-wide features the kernel lacks (APN, IFIT, ECN, PFC, DSCP steering) raise
    `KernelUnsupported`. A SID or policy it cannot run only matters to the packets that use it:
    those are routed to the sink, and `KernelDataPlane.process` raises when one arrives there.
    """
    _features(node)
    for i, pol in enumerate(node.policies):
        _refuse_policy(pol, f"policies[{i}]")
    ports = sorted(node.ports, key=lambda p: p.index)
    first_dev = port_ifname(ports[0].index)
    nh = _nexthops(node)

    node_sysctls: dict[str, object] = {
        "net.ipv6.conf.all.forwarding": 1,
        "net.ipv6.seg6_flowlabel": SEG6_FLOWLABEL[node.flowlabel],
        "net.ipv6.icmp.ratelimit": 0,
        "net.ipv4.ip_forward": 1,
        "net.ipv4.icmp_ratelimit": 0,
        "net.ipv4.icmp_msgs_per_sec": 1_000_000,
        "net.ipv4.icmp_msgs_burst": 1_000_000,
        "net.ipv6.conf.lo.seg6_enabled": 1,
    }
    for scope in ("all", "default"):
        node_sysctls |= {
            f"net.ipv6.conf.{scope}.forwarding": 1,
            f"net.ipv6.conf.{scope}.disable_ipv6": 0,
            f"net.ipv6.conf.{scope}.seg6_enabled": 1,
            # no link-local address, no DAD, no RS/RA, no unsolicited NA: the ports stay silent
            f"net.ipv6.conf.{scope}.addr_gen_mode": 1,
            f"net.ipv6.conf.{scope}.accept_dad": 0,
            f"net.ipv6.conf.{scope}.dad_transmits": 0,
            f"net.ipv6.conf.{scope}.accept_ra": 0,
            f"net.ipv6.conf.{scope}.router_solicitations": 0,
            f"net.ipv6.conf.{scope}.ndisc_notify": 0,
            f"net.ipv4.conf.{scope}.rp_filter": 0,
            f"net.ipv4.conf.{scope}.send_redirects": 0,
        }
    tester_sysctls: dict[str, object] = {
        "net.ipv6.conf.all.disable_ipv6": 1,
        "net.ipv6.conf.default.disable_ipv6": 1,
    }
    veth_cmds = [
        f"link add {port_ifname(p.index)} address {p.mac} mtu {PORT_MTU} type veth "
        f"peer name {tester_ifname(p.index)} mtu {PORT_MTU} netns {tester_ns}"
        for p in ports
    ]
    tester_cmds = [f"link set {tester_ifname(p.index)} up" for p in ports]
    node_cmds = [f"link set {port_ifname(p.index)} up" for p in ports]
    port_sysctls: dict[str, object] = {
        f"net.ipv6.conf.{port_ifname(p.index)}.seg6_enabled": 1 for p in ports
    }
    v6: list[str] = []
    v4: list[str] = []
    local_v6: set[ipaddress.IPv6Address] = set()

    if node.source is not None:
        node_cmds.append(f"addr add {node.source}/128 dev lo nodad")
        node_cmds.append(f"sr tunsrc set {node.source}")
        local_v6.add(node.source)
    for hop in nh.values():
        mac = hop.adjacency.mac
        node_cmds.append(f"neigh replace {hop.v6} lladdr {mac} dev {hop.dev} nud permanent")
        node_cmds.append(f"neigh replace {hop.v4} lladdr {mac} dev {hop.dev} nud permanent")
        v6.append(f"route add {hop.v6}/128 dev {hop.dev}")
        # a gateway route, so that End.DX4's lookup of nh4 resolves the neighbour nh4 itself
        v4.append(f"route add {hop.v4}/32 via {hop.v4} dev {hop.dev} onlink")

    for i, r in enumerate(node.routes):
        hop = nh[r.via]
        table = _table(r.table, f"routes[{i}].table")
        gw = hop.v6 if r.prefix.version == 6 else hop.v4
        cmd = f"route add {r.prefix} via {gw} dev {hop.dev} onlink table {table}"
        (v6 if r.prefix.version == 6 else v4).append(cmd)

    sink = _Sink()
    vrfs: set[int] = set()
    for i, s in enumerate(node.local_sids):
        try:
            cmd, vrf = _sid_cmd(s, nh, caps, first_dev, f"local_sids[{i}]")
        except KernelUnsupported as exc:
            gw6, _ = sink.hop(str(exc))
            cmd, vrf = f"route add {s.sid} via {gw6} dev {SINK_IF} onlink table {SID_TABLE}", None
        v6.append(cmd)
        if vrf is not None:
            vrfs.add(vrf)
    if node.local_sids:
        v6.append(f"rule add pref {PREF_SIDS} lookup {SID_TABLE}")
    for t in sorted(vrfs):
        node_cmds += [f"link add icpnvrf{t} type vrf table {t}", f"link set icpnvrf{t} up"]
    if vrfs:
        node_sysctls["net.vrf.strict_mode"] = 1

    if node.policies:
        if node.source is None:
            raise ConfigError("source", "is required when the node has SRv6 policies")
        # Encapsulated packets (outer SA = source) are looked up again on input: keep them away
        # from the policies (a match-all policy would otherwise encapsulate them again).
        v6.append(f"rule add pref {PREF_ENCAP_GUARD} from {node.source}/128 lookup main")
        v6.append(f"rule add pref {PREF_ENCAP_GUARD + 1} from {node.source}/128 blackhole")
    for i, pol in enumerate(node.policies):
        where = f"policies[{i}]"
        ptable = POLICY_TABLE_BASE + i
        refused = None
        if len(pol.sid_lists) != 1:
            refused = sink.hop(
                f"{where}: kernel seg6 encapsulates on one SID list per route "
                f"(policy {pol.name!r} has {len(pol.sid_lists)})"
            )
        for fam in _families(pol.match, f"{where}.match"):
            cmds = v4 if fam == 4 else v6
            default = "0.0.0.0/0" if fam == 4 else "::/0"
            if refused is None:
                cmds.append(f"{_policy_route(pol, first_dev, default)} table {ptable}")
            else:
                gw = refused[0] if fam == 6 else refused[1]
                cmds.append(f"route add {default} via {gw} dev {SINK_IF} onlink table {ptable}")
            selectors = _selectors(pol.match, fam)
            cmds.append(f"rule add pref {PREF_POLICY_BASE + i} {selectors} lookup {ptable}")
    if sink.reasons:
        veth_cmds.append(
            f"link add {SINK_IF} mtu {PORT_MTU} type veth "
            f"peer name {SINK_IF} mtu {PORT_MTU} netns {tester_ns}"
        )
        tester_cmds.append(f"link set {SINK_IF} up")
        node_cmds.append(f"link set {SINK_IF} up")
        node_cmds += sink.cmds

    return KernelPlan(
        node_sysctls=node_sysctls,
        tester_sysctls=tester_sysctls,
        veth_cmds=tuple(veth_cmds),
        tester_cmds=tuple(tester_cmds),
        node_cmds=tuple(node_cmds),
        v6_cmds=tuple(v6),
        v4_cmds=tuple(v4),
        port_sysctls=port_sysctls,
        local_v6=frozenset(local_v6 | {LOOPBACK_V6}),
        local_v4=frozenset({IPV4_DUMMY_SOURCE, LOOPBACK_V4}),
        nexthops=tuple(nh.values()),
        sink=sink.reasons,
    )


def unsupported_features(covers: Iterable[str], caps: KernelCaps) -> str | None:
    """Why the kernel cannot run a vector covering `covers`, or None when it can."""
    covers = list(covers)
    flags = {
        "End": caps.seg6local,
        "End.X": caps.end_x,
        "End.DT6": caps.dt6,
        "End.DX4": caps.dx4,
        "End.DX6": caps.dx6,
        "H.Encaps": caps.encap,
        "H.Encaps.Red": caps.encap_red,
        "SRH-validation": caps.seg6local,
        "forwarding": True,
        "PSP": caps.psp_end,
        "NEXT-CSID": caps.next_csid_end,
        "End.DT4": caps.dt4,
        "End.DT46": caps.dt46,
    }
    never = {
        "APN": "kernel seg6 has no APN",
        "deep-hash": "kernel seg6 has no APN-keyed deep hashing (one SID list per policy)",
        "elephant": "kernel has no elephant-flow detection",
        "IFIT-head": "kernel seg6 has no IFIT (IOAM trace / alternate marking)",
        "IFIT-transit": "kernel seg6 has no IFIT (IOAM trace / alternate marking)",
        "IFIT-tail": "kernel seg6 has no IFIT (IOAM trace / alternate marking)",
        "ECN": "kernel does no DCQCN-style ECN marking",
        "PFC": "kernel does not generate or honour PFC frames",
    }
    for feature in covers:
        if feature in never:
            return never[feature]
        if feature not in flags:
            return f"kernel plane does not know the feature {feature!r}"
        if not flags[feature]:
            if feature in ("End.DT4", "End.DT46"):
                return f"kernel {feature} needs a VRF device and this kernel has none"
            return f"this kernel has no {feature}"
    if "PSP" in covers and "End.X" in covers and not caps.psp_end_x:
        return "this kernel has PSP for End only, not End.X"
    if "NEXT-CSID" in covers and "End.X" in covers and not caps.next_csid_end_x:
        return "this kernel has NEXT-CSID for End only, not End.X"
    return None
