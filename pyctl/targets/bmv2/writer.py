"""NodeConfig -> the P4Runtime entities that program p4/icpn.p4 for that node.

Pure: no switch, no gRPC. `node_program(node)` says everything the switch must hold; the
controller writes it and can write it again after a restart. Table, field and action names are
P4Info names (resolved to ids by `pyctl.p4rt`); the numbers shared with the P4 source come from
`codes.py`. Configurations beyond the program's documented limits raise `P4Unsupported`.
"""

from __future__ import annotations

import functools
import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from pyctl import constants as C
from pyctl.errors import DataPlaneUnavailable
from pyctl.model.hashing import bucket_table
from pyctl.model.node import (
    Adjacency,
    APNCarrier,
    APNMark,
    APNParams,
    Behaviour,
    EncapMode,
    Flavour,
    FlowLabelMode,
    FlowMatch,
    IFITRole,
    LocalSID,
    NodeConfig,
    PacketContext,
    SRv6Policy,
)
from pyctl.model.trace import area_words
from pyctl.p4rt import LPM, CloneSession, Entity, TableEntry, Ternary
from pyctl.targets.bmv2 import codes

IOAM_NODE_LEN = 5


class P4Unsupported(DataPlaneUnavailable):
    """The node asks for something beyond a documented limit of the P4 program (docs/p4.md)."""


_FLOWLABEL = {
    FlowLabelMode.HASH: codes.FLOWLABEL_HASH,
    FlowLabelMode.COPY: codes.FLOWLABEL_COPY,
    FlowLabelMode.ZERO: codes.FLOWLABEL_ZERO,
}
_ROLE = {
    IFITRole.NONE: codes.IFIT_ROLE_NONE,
    IFITRole.HEAD: codes.IFIT_ROLE_HEAD,
    IFITRole.TRANSIT: codes.IFIT_ROLE_TRANSIT,
    IFITRole.TAIL: codes.IFIT_ROLE_TAIL,
}

MAX_PRIORITY = 1 << 20


@dataclass
class NodeProgram:
    """Everything one node's switch holds, in the order it must be written."""

    defaults: list[TableEntry] = field(default_factory=list)  # default-action modifications
    entries: list[TableEntry] = field(default_factory=list)
    clone_sessions: list[CloneSession] = field(default_factory=list)
    # Parser value sets (P4Info alias -> members). BMv2's P4Runtime server cannot write them
    # (ValueSetEntry: UNIMPLEMENTED), so they go into the program itself: device_config().
    value_sets: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def inserts(self) -> list[Entity]:
        return [*self.clone_sessions, *self.entries]

    def device_config(self, bmv2_json: bytes) -> bytes:
        """The BMv2 JSON to load on this node's switch: `bmv2_json` (p4/build/icpn.json) with
        each parser transition on a value set made a transition on its members."""
        return with_value_sets(bmv2_json, tuple(sorted(self.value_sets.items())))


@functools.lru_cache(maxsize=8)
def with_value_sets(bmv2_json: bytes, members: tuple[tuple[str, tuple[int, ...]], ...]) -> bytes:
    """BMv2 JSON whose `parse_vset` transitions match the given members, as constants: what a
    P4Runtime ValueSetEntry write would make them match (an empty set matches nothing). A set
    is named by its P4Info alias (its name without the parser's, e.g. "apn_option_type")."""
    program = json.loads(bmv2_json)
    by_name = dict(members)
    widths: dict[str, int] = {}
    for vset in program.get("parse_vsets", []):
        alias = vset["name"].rsplit(".", 1)[-1]
        widths[vset["name"]] = vset["compressed_bitwidth"]
        if alias in by_name:
            by_name[vset["name"]] = by_name.pop(alias)
    unknown = sorted(n for n in by_name if n not in widths)
    if unknown:
        raise ValueError(f"value set {unknown[0]!r} is not in the program")
    for parser in program.get("parsers", []):
        for state in parser.get("parse_states", []):
            transitions = []
            for t in state.get("transitions", []):
                if t.get("type") != "parse_vset":
                    transitions.append(t)
                    continue
                digits = (widths[t["value"]] + 3) // 4
                for v in by_name.get(t["value"], ()):
                    transitions.append(
                        {
                            "type": "hexstr",
                            "value": f"0x{v:0{digits}x}",
                            "mask": None,
                            "next_state": t["next_state"],
                        }
                    )
            state["transitions"] = transitions
    return json.dumps(program).encode()


def magic(divisor: int, shift: int) -> int:
    """ceil(2^shift / divisor): floor(n / divisor) == (n * magic) >> shift for the P4 ranges."""
    if divisor <= 0:
        raise ValueError(f"divisor must be positive, got {divisor}")
    return -(-(1 << shift) // divisor)


def mapped(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    """The 128-bit form the P4 program uses: IPv4 as ::ffff:a.b.c.d."""
    if isinstance(addr, ipaddress.IPv4Address):
        return 0xFFFF << 32 | int(addr)
    return int(addr)


def _prefix(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[int, int]:
    """(value, prefix length) over 128 bits."""
    if isinstance(net, ipaddress.IPv4Network):
        return mapped(net.network_address), 96 + net.prefixlen
    return int(net.network_address), net.prefixlen


def _ternary_prefix(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Ternary:
    value, plen = _prefix(net)
    mask = ((1 << plen) - 1) << (128 - plen) if plen else 0
    return Ternary(value, mask)


def _exact_or_any(value: int | None, bits: int) -> Ternary:
    if value is None:
        return Ternary(0, 0)
    return Ternary(value, (1 << bits) - 1)


def flow_match_keys(m: FlowMatch) -> dict[str, Ternary]:
    """The ternary keys of apn_classifier / ifit_flow / policy for a FlowMatch."""
    keys = {
        "src": _ternary_prefix(m.src) if m.src is not None else Ternary(0, 0),
        "dst": _ternary_prefix(m.dst) if m.dst is not None else Ternary(0, 0),
        "proto": _exact_or_any(m.proto, 8),
        "sport": _exact_or_any(m.sport, 16),
        "dport": _exact_or_any(m.dport, 16),
        "dscp": _exact_or_any(m.dscp, 6),
        "in_port": _exact_or_any(m.in_port, 16),
    }
    return keys


def _by_order(i: int) -> int:
    """P4Runtime priority: larger wins, so configuration order i gets MAX_PRIORITY - i."""
    return MAX_PRIORITY - i


SHORT_MARK_WORDS = 2  # set_mark_short's words; set_mark takes eight


def _mark(mark: APNMark) -> tuple[str, dict[str, int]]:
    """The mark's action and parameters: the APN-ID, and the option's words in wire order (ID
    words, then one word per parameter in para_type bit order: bandwidth, latency, jitter,
    loss). A mark of at most two words takes set_mark_short (fewer assignments per packet)."""
    params: APNParams = mark.params
    values = [
        (0x8000, params.bandwidth_kbps),
        (0x4000, params.latency_us),
        (0x2000, params.jitter_us),
        (0x1000, params.loss_ppm),
    ]
    para_type = 0
    id_words = {C.APN_ID_TYPE_32: 1, C.APN_ID_TYPE_64: 2, C.APN_ID_TYPE_128: 4}[mark.id_type]
    words = [(mark.apn_id >> (32 * (id_words - 1 - i))) & 0xFFFFFFFF for i in range(id_words)]
    for bit, value in values:
        if value is not None:
            para_type |= bit
            words.append(value)
    out = {
        "apn_id": mark.apn_id,
        "id_type": mark.id_type,
        "flags": mark.flags,
        "para_type": para_type,
        "nwords": len(words),
    }
    short = len(words) <= SHORT_MARK_WORDS
    for i in range(SHORT_MARK_WORDS if short else 8):
        out[f"w{i}"] = words[i] if i < len(words) else 0
    return ("set_mark_short" if short else "set_mark"), out


def _route_for(
    node: NodeConfig, addr: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> Adjacency | None:
    """The FIB (table 0) answer for an address: longest matching prefix."""
    best = None
    for r in node.routes:
        if r.table == 0 and r.prefix.version == addr.version and addr in r.prefix:
            if best is None or r.prefix.prefixlen > best.prefix.prefixlen:
                best = r
    return best.via if best is not None else None


_APN_CARRIER = {
    APNCarrier.HBH: codes.APN_CARRIER_HBH,
    APNCarrier.DOH: codes.APN_CARRIER_DOH,
    APNCarrier.SRH_TLV: codes.APN_CARRIER_SRH_TLV,
}


# Trace-type bit (0 = most significant of 24) -> what each of its words holds
# (docs/pipeline.md section 4); bits 8-10 are 8 octets, the rest 4; bit 23 has no node data.
_GEN_KNOWN = {
    0: codes.GEN_HOP_NODE,
    1: codes.GEN_PORTS,
    2: codes.GEN_SECONDS,
    3: codes.GEN_MICROS,
    6: codes.GEN_QDEPTH,
}


def _trace_words(trace_type: int) -> list[int]:
    """The ICPN_GEN_* source of each word of a node record of `trace_type`."""
    out: list[int] = []
    for bit in range(22):
        if trace_type & (1 << (23 - bit)):
            size = 2 if 8 <= bit <= 10 else 1
            out += [_GEN_KNOWN.get(bit, codes.GEN_ONES)] * size
    return out


def _packed(words: list[int]) -> int:
    """4 bits per word, the first word lowest (meta.ifit_gen_sel, meta.ioam_sel)."""
    return sum(s << (4 * i) for i, s in enumerate(words))


# The three tables that give a received trace type's record layout, one octet each: table,
# action, the octet's place in the 24 bits.
_TRACE_OCTETS = (
    ("ioam_trace_bits_0_7", "words_0_7", 16),
    ("ioam_trace_bits_8_15", "words_8_15", 8),
    ("ioam_trace_bits_16_23", "words_16_23", 0),
)


def _trace_octet_entries() -> list[TableEntry]:
    """Every octet value of each third of a trace type -> its words and their sources: the
    switch concatenates the three to lay out a record of the packet's own trace type."""
    out: list[TableEntry] = []
    for table, action, shift in _TRACE_OCTETS:
        for octet in range(256):
            words = _trace_words(octet << shift)
            if words:
                out.append(
                    TableEntry(
                        table,
                        {"octet": octet},
                        action,
                        {"words": len(words), "sel": _packed(words)},
                    )
                )
    return out


def shared_counter_slots(flowmon_ids: Iterable[int]) -> list[str]:
    """One line per FlowMonID that would share an IFIT counter slot (FlowMonID %
    IFIT_COUNTER_FLOWS) with another: the program keeps the slot for the first one counted and
    drops the other's packets p4-limit (docs/p4.md limits)."""
    first: dict[int, int] = {}
    problems = []
    for fid in flowmon_ids:
        slot = fid % codes.IFIT_COUNTER_FLOWS
        other = first.setdefault(slot, fid)
        if other != fid:
            problems.append(
                f"ifit.flows flowmon_id {fid}: shares counter slot {slot} with "
                f"flowmon_id {other} (FlowMonIDs equal mod {codes.IFIT_COUNTER_FLOWS})"
            )
    return problems


def check_limits(node: NodeConfig) -> list[str]:
    """What this node asks of the P4 program that it cannot do (docs/p4.md "Limits")."""
    problems: list[str] = []
    # A transit or tail stamps with the packet's trace type; a head lays out any area one
    # option holds (the model refuses a larger one), so only a node built past the model is.
    if node.ifit.role is IFITRole.HEAD:
        if area_words(node.ifit.trace_type, node.ifit.max_nodes) > C.IOAM_AREA_MAX_WORDS:
            problems.append(
                f"ifit.trace_type {node.ifit.trace_type:#x} with max_nodes "
                f"{node.ifit.max_nodes}: more than one IOAM option holds"
            )
        problems += shared_counter_slots(f.flowmon_id for f in node.ifit.flows)
    if node.elephant.enabled:
        if node.elephant.rows > codes.CMS_MAX_ROWS:
            problems.append(f"elephant.rows {node.elephant.rows}: at most {codes.CMS_MAX_ROWS}")
        if node.elephant.width > codes.CMS_MAX_WIDTH:
            problems.append(f"elephant.width {node.elephant.width}: at most {codes.CMS_MAX_WIDTH}")
    for pol in node.policies:
        for sl in pol.sid_lists:
            if len(sl.segments) > C.MAX_SEGMENTS:
                problems.append(
                    f"policy {pol.name}: a SID list of {len(sl.segments)} segments "
                    f"(at most {C.MAX_SEGMENTS})"
                )
    return problems


def _local_sid(ls: LocalSID) -> TableEntry:
    value, plen = int(ls.sid.network_address), ls.sid.prefixlen
    match = {"sid": LPM(value, plen)}
    b = ls.behaviour
    if b in (Behaviour.END, Behaviour.END_X):
        csid = Flavour.NEXT_CSID in ls.flavours
        block = ((1 << ls.block_bits) - 1) << (128 - ls.block_bits) if csid else 0
        after = ls.block_bits + ls.csid_bits
        arg = (1 << (128 - after)) - 1 if csid and after < 128 else 0
        params: dict[str, int | str] = {
            "psp": int(Flavour.PSP in ls.flavours),
            "csid": int(csid),
            "block": block,
            "arg": arg,
            "csid_bits": ls.csid_bits if csid else 0,
        }
        if b is Behaviour.END:
            return TableEntry("my_sid", match, "end", params)
        assert ls.adjacency is not None  # the loader requires it for End.X
        params |= {"port": ls.adjacency.port, "dmac": ls.adjacency.mac}
        return TableEntry("my_sid", match, "end_x", params)
    if b in (Behaviour.END_DT4, Behaviour.END_DT6, Behaviour.END_DT46):
        action = {
            Behaviour.END_DT4: "end_dt4",
            Behaviour.END_DT6: "end_dt6",
            Behaviour.END_DT46: "end_dt46",
        }[b]
        return TableEntry("my_sid", match, action, {"table_id": ls.table})
    assert ls.adjacency is not None  # End.DX4 / End.DX6
    action = "end_dx4" if b is Behaviour.END_DX4 else "end_dx6"
    return TableEntry(
        "my_sid", match, action, {"port": ls.adjacency.port, "dmac": ls.adjacency.mac}
    )


def _local_sid_prefixes(sids: tuple[LocalSID, ...]) -> list[TableEntry]:
    """local_sid: my_sid's prefixes, hit only (is the DA an End wrote a local SID?)."""
    prefixes = dict.fromkeys((int(ls.sid.network_address), ls.sid.prefixlen) for ls in sids)
    return [TableEntry("local_sid", {"sid": LPM(v, plen)}, "NoAction") for v, plen in prefixes]


def _policy_entries(node: NodeConfig) -> list[TableEntry]:
    out: list[TableEntry] = []
    for pid, pol in enumerate(node.policies):
        buckets = pol.buckets or bucket_table([s.weight for s in pol.sid_lists])
        keys: dict[str, Ternary] = dict(flow_match_keys(pol.match))
        if pol.match.apn_id is not None:
            keys["apn_valid"] = Ternary(1, 1)
            keys["apn_id"] = Ternary(pol.match.apn_id, (1 << 128) - 1)
        else:
            keys["apn_valid"] = Ternary(0, 0)
            keys["apn_id"] = Ternary(0, 0)
        out.append(
            TableEntry(
                "policy",
                keys,
                "set_policy",
                {"policy_id": pid, "buckets": len(buckets), "deep": int(pol.deep_hash)},
                priority=_by_order(pid),
            )
        )
        encaps = [_encap(pol, sl.segments) for sl in pol.sid_lists]
        for b, list_index in enumerate(buckets):
            action, params = encaps[list_index]
            out.append(TableEntry("policy_bucket", {"policy": pid, "bucket": b}, action, params))
    return out


def _encap(
    pol: SRv6Policy, segments: tuple[ipaddress.IPv6Address, ...]
) -> tuple[str, dict[str, int]]:
    """(encapN, params): the SRH list in wire order, List[0] = last segment; Red omits S1."""
    n = len(segments)
    in_srh = list(segments) if pol.mode is EncapMode.ENCAPS else list(segments[1:])
    wire = list(reversed(in_srh))
    params = {"segments_left": n - 1, "first_sid": int(segments[0])}
    for i, sid in enumerate(wire):
        params[f"seg{i}"] = int(sid)
    return f"encap{len(wire)}", params


def ecn_top(pmax: float) -> int:
    """floor(pmax * 2^32) (docs/pipeline.md 5): 2^32 for pmax 1.0, so every draw marks at Kmax."""
    return int(pmax * (1 << 32))


def reads_carried_apn(node: NodeConfig) -> bool:
    """Whether an APN option a packet carries can change what the node does with it (pipeline.md
    3 and 5): a policy copies it into the outer headers and may match or hash on it; with a
    classifier, a carried option is what keeps one from being inserted. Elsewhere it is never read,
    so a DOH the parser cannot walk to its end (docs/p4.md limits) need not be dropped."""
    return bool(node.policies or node.apn.classifiers)


def node_program(node: NodeConfig) -> NodeProgram:
    """Every default action, table entry and clone session of `node` on p4/icpn.p4."""
    problems = check_limits(node)
    if problems:
        raise P4Unsupported(f"node {node.name!r}: " + "; ".join(problems))
    prog = NodeProgram(value_sets={"apn_option_type": (node.apn.option_type,)})
    role = _ROLE[node.ifit.role]
    source = int(node.source) if node.source is not None else 0

    # Node-wide settings (keyless tables: their default action).
    prog.defaults.append(
        TableEntry(
            "node_cfg",
            action="set_node",
            params={
                "source_addr": source,
                "flowlabel": _FLOWLABEL[node.flowlabel],
                "ifit": role,
                "apn_carrier": _APN_CARRIER[node.apn.carrier],
                "apn_type": node.apn.option_type,
                "apn_tlv_type": node.apn.srh_tlv_type,
                "apn_reads": int(reads_carried_apn(node)),
                "ecn": int(node.ecn.enabled),
            },
            default=True,
        )
    )
    collector = node.ifit.collector
    report_adj = _route_for(node, collector.address) if collector is not None else None
    prog.defaults.append(
        TableEntry(
            "egress_cfg",
            action="set_egress_node",
            params={
                "node": node.node_id,
                "ifit": role,
                "ecn_on": int(node.ecn.enabled),
                "source_addr": source,
                "collector_addr": int(collector.address) if collector is not None else 0,
                "report_port": collector.port if collector is not None else C.IFIT_REPORT_PORT,
                "report_dmac": report_adj.mac if report_adj is not None else 0,
            },
            default=True,
        )
    )
    e = node.elephant
    if e.enabled:
        prog.defaults.append(
            TableEntry(
                "elephant_cfg",
                action="set_elephant",
                params={
                    "cms_rows": e.rows,
                    "cms_width": e.width,
                    "window_div": magic(e.window_us, codes.MAGIC_SHIFT_TIME),
                    "threshold_bytes": e.threshold_bytes,
                    "idle": e.idle_windows,
                    # an elephant the switch cannot remember matters only where it picks a path
                    "decides_path": int(any(p.deep_hash for p in node.policies)),
                },
                default=True,
            )
        )
    p = node.pfc
    buffer_x = p.buffer_bytes
    prog.defaults.append(
        TableEntry(
            "pfc_cfg",
            action="set_pfc",
            params={
                "enabled": int(p.enabled),
                "xoff_bytes": buffer_x * p.xoff_pct // 100,
                "xon_bytes": -(-(buffer_x * p.xon_pct) // 100),
                "pause": p.pause_time,
                "dscp_priority": int(p.priority_from_dscp),
                "priority": p.default_priority,
                "drain_bytes_per_us": max(1, node.ecn.line_rate_bps // 8_000_000),
                "quanta_div": magic(node.ecn.line_rate_bps, codes.MAGIC_SHIFT_PAUSE),
            },
            default=True,
        )
    )
    if node.ifit.role is not IFITRole.NONE:
        prog.defaults.append(
            TableEntry(
                "ioam_node_cfg",
                action="set_ioam_node",
                params={"namespace": node.ifit.namespace_id},
                default=True,
            )
        )
    default_layout = (
        node.ifit.trace_type == C.IOAM_TRACE_TYPE_DEFAULT
        and node.ifit.max_nodes <= codes.IOAM_MAX_NODES
    )
    if node.ifit.role is IFITRole.HEAD and not default_layout:
        # word by word: any trace type, any area one option holds
        words = _trace_words(node.ifit.trace_type)
        prog.defaults.append(
            TableEntry(
                "ifit_head_cfg",
                action="set_ifit_head_gen",
                params={
                    "period_div": magic(node.ifit.period_us, codes.MAGIC_SHIFT_TIME),
                    "d_every_n": node.ifit.d_every,
                    "namespace": node.ifit.namespace_id,
                    "trace": node.ifit.trace_type,
                    "max_nodes": node.ifit.max_nodes,
                    "node_words": len(words),
                    "sel": _packed(words),
                },
                default=True,
            )
        )
    elif node.ifit.role is IFITRole.HEAD:
        prog.defaults.append(
            TableEntry(
                "ifit_head_cfg",
                # set_ifit_headN lays out the empty area of N = max_nodes records
                action=f"set_ifit_head{node.ifit.max_nodes}",
                params={
                    "period_div": magic(node.ifit.period_us, codes.MAGIC_SHIFT_TIME),
                    "d_every_n": node.ifit.d_every,
                    "namespace": node.ifit.namespace_id,
                    "trace": node.ifit.trace_type,
                },
                default=True,
            )
        )

    # Ports, FIB, local SIDs.
    for port in node.ports:
        prog.entries.append(
            TableEntry("port_mac", {"port": port.index}, "set_port_mac", {"mac": port.mac})
        )
        prog.entries.append(
            TableEntry("port_in", {"port": port.index}, "set_in_mac", {"mac": port.mac})
        )
    for r in node.routes:
        value, plen = _prefix(r.prefix)
        family = codes.FAMILY_IPV4 if r.prefix.version == 4 else codes.FAMILY_IPV6
        prog.entries.append(
            TableEntry(
                "fib",
                {"vrf": r.table, "family": family, "addr": LPM(value, plen)},
                "set_nexthop",
                {"port": r.via.port, "dmac": r.via.mac},
            )
        )
    prog.entries += [_local_sid(ls) for ls in node.local_sids]
    prog.entries += _local_sid_prefixes(node.local_sids)

    # Headend: APN marks, policies, IFIT flows.
    for qp, mark in node.apn.qp_map:
        prog.entries.append(TableEntry("apn_qp", {"qp": qp}, *_mark(mark)))
    for i, cl in enumerate(node.apn.classifiers):
        action, params = _mark(cl.mark)
        prog.entries.append(
            TableEntry(
                "apn_classifier",
                dict(flow_match_keys(cl.match)),
                action,
                params,
                priority=_by_order(i),
            )
        )
    prog.entries += _policy_entries(node)
    if node.ifit.role is IFITRole.HEAD:
        slots: dict[int, int] = {}
        for i, fl in enumerate(node.ifit.flows):
            slot = slots.setdefault(fl.flowmon_id, len(slots))
            prog.entries.append(
                TableEntry(
                    "ifit_flow",
                    dict(flow_match_keys(fl.match)),
                    "set_flowmon",
                    {"flowmon_id": fl.flowmon_id, "flow_slot": slot},
                    priority=_by_order(i),
                )
            )
    if node.ifit.role is not IFITRole.NONE:
        prog.entries += _trace_octet_entries()
    if node.ecn.enabled:
        prog.defaults.append(
            TableEntry(
                "ecn_cfg",
                action="set_ecn",
                params={
                    "kmin_bytes": node.ecn.kmin_bytes,
                    "kmax_bytes": node.ecn.kmax_bytes,
                    "pmax_t": ecn_top(node.ecn.pmax),
                },
                default=True,
            )
        )

    # Clone sessions: the IFIT report goes out of the FIB answer for the collector; a PFC frame
    # goes back out of the port it answers.
    if report_adj is not None:
        prog.clone_sessions.append(CloneSession(codes.REPORT_SESSION, ((report_adj.port, 0),)))
    for port in node.ports:
        prog.clone_sessions.append(
            CloneSession(codes.PFC_SESSION_BASE + port.index, ((port.index, 0),))
        )
    # Test mode: a frame too long for its test link reaches the controller (codes.py).
    prog.clone_sessions.append(CloneSession(codes.CPU_SESSION, ((codes.CPU_PORT, 0),)))
    return prog


@dataclass
class ContextWrites:
    """The test-mode entries that give the switch one PacketContext."""

    default: TableEntry
    qdepth: list[TableEntry]
    ingress_queue: list[TableEntry]


def context_writes(ctx: PacketContext) -> ContextWrites:
    default = TableEntry(
        "test_ctx",
        action="set_context",
        params={"time_us": ctx.time_us, "rand32": ctx.rand32},
        default=True,
    )
    ports = sorted(set(ctx.egress_queue_packets) | set(ctx.egress_queue_bytes))
    qdepth = [
        TableEntry(
            "test_qdepth",
            {"port": port},
            "set_qdepth",
            {
                "packets": ctx.egress_queue_packets.get(port, 0),
                # (32 bits: anything above Kmax < 2^30 marks the same)
                "bytes": min(ctx.egress_queue_bytes.get(port, 0), 0xFFFFFFFF),
            },
        )
        for port in ports
    ]
    ingress = [
        TableEntry(
            "test_ingress_queue", {"port": port, "priority": prio}, "set_occupancy", {"bytes": n}
        )
        for (port, prio), n in sorted(ctx.ingress_queue_bytes.items())
    ]
    return ContextWrites(default, qdepth, ingress)


def live_context() -> TableEntry:
    """test_ctx back to its initial default: real time, real random draws, real queues."""
    return TableEntry("test_ctx", action="NoAction", default=True)
