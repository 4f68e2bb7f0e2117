"""NodeConfig -> eBPF map entries (the layouts of ebpf/include/layout.h via `maps`).

Pure: `node_entries(node)` computes every entry without touching the kernel, so it is testable
without root and the data plane only has to write what it returns. Work the C side would do
per packet and that depends only on configuration is done here once: SID lists are stored in
SRH wire order for their encapsulation mode, APN options as their wire bytes, prefixes as
(network, mask) pairs.
"""

from __future__ import annotations

import ctypes
import ipaddress
import math
from dataclasses import dataclass, field

from pyctl import constants as C
from pyctl.errors import ConfigError
from pyctl.model.node import (
    Adjacency,
    APNCarrier,
    APNMark,
    Behaviour,
    EncapMode,
    Flavour,
    FlowLabelMode,
    FlowMatch,
    IFITRole,
    NodeConfig,
    SIDList,
)
from pyctl.model.trace import data_words
from pyctl.targets.ebpf import maps as M
from pyctl.targets.reference.fib import Fib

_BEHAVIOUR = {
    Behaviour.END: M.B_END,
    Behaviour.END_X: M.B_END_X,
    Behaviour.END_DT4: M.B_END_DT4,
    Behaviour.END_DT6: M.B_END_DT6,
    Behaviour.END_DT46: M.B_END_DT46,
    Behaviour.END_DX4: M.B_END_DX4,
    Behaviour.END_DX6: M.B_END_DX6,
}
_FLOWLABEL = {
    FlowLabelMode.HASH: M.FLOWLABEL_HASH,
    FlowLabelMode.COPY: M.FLOWLABEL_COPY,
    FlowLabelMode.ZERO: M.FLOWLABEL_ZERO,
}
_CARRIER = {
    APNCarrier.HBH: M.CARRIER_HBH,
    APNCarrier.DOH: M.CARRIER_DOH,
    APNCarrier.SRH_TLV: M.CARRIER_SRH_TLV,
}
_IFIT_ROLE = {
    IFITRole.NONE: M.IFIT_NONE,
    IFITRole.HEAD: M.IFIT_HEAD,
    IFITRole.TRANSIT: M.IFIT_TRANSIT,
    IFITRole.TAIL: M.IFIT_TAIL,
}
_ID_LEN = {C.APN_ID_TYPE_32: 4, C.APN_ID_TYPE_64: 8, C.APN_ID_TYPE_128: 16}
# APN-Para-Type masks in bit order (bit 0 = most significant; docs/pipeline.md section 3).
_PARAMS = (
    (0x8000, "bandwidth_kbps"),
    (0x4000, "latency_us"),
    (0x2000, "jitter_us"),
    (0x1000, "loss_ppm"),
)
# Opt Data Len is 8 bits: 2 bytes of IOAM header and 8 of trace header leave 245 for the area.
IOAM_MAX_AREA_WORDS = (255 - 10) // 4

Entry = tuple[bytes, bytes]


@dataclass
class MapEntries:
    """Everything `configure` writes: the cfg value and the entries of each map by name."""

    cfg: M.Cfg
    entries: dict[str, list[Entry]] = field(default_factory=dict)

    def add(self, name: str, key: bytes | M.CStruct, value: bytes | M.CStruct) -> None:
        self.entries.setdefault(name, []).append((bytes(key), bytes(value)))


def _mac(s: str) -> bytes:
    return bytes(int(x, 16) for x in s.split(":"))


def _u32(i: int) -> bytes:
    return M.u32_key(i)


def _nexthop(adj: Adjacency) -> M.Nexthop:
    nh = M.Nexthop(port=adj.port)
    nh.mac[:] = list(_mac(adj.mac))
    return nh


def _addr16(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[bytes, int]:
    """A prefix as 16 network bytes (IPv4 v4-mapped) and its length over 128 bits."""
    if isinstance(net, ipaddress.IPv4Network):
        return b"\x00" * 10 + b"\xff\xff" + net.network_address.packed, net.prefixlen + 96
    return net.network_address.packed, net.prefixlen


def _u64_pair(b: bytes) -> list[int]:
    # The C side compares the address bytes as two native u64 loads.
    return [int.from_bytes(b[:8], "little"), int.from_bytes(b[8:], "little")]


def _mask(plen: int) -> bytes:
    return ((1 << 128) - (1 << (128 - plen))).to_bytes(16, "big") if plen else bytes(16)


def encode_match(m: FlowMatch, where: str) -> M.Match:
    out = M.Match()
    fields = 0
    families = set()
    for name, net in (("src", m.src), ("dst", m.dst)):
        if net is None:
            continue
        addr, plen = _addr16(net)
        families.add(4 if isinstance(net, ipaddress.IPv4Network) else 6)
        setattr(out, name, (ctypes.c_uint64 * 2)(*_u64_pair(addr)))
        setattr(out, f"{name}_mask", (ctypes.c_uint64 * 2)(*_u64_pair(_mask(plen))))
        fields |= M.M_SRC if name == "src" else M.M_DST
    if len(families) > 1:
        raise ConfigError(where, f"src {m.src} and dst {m.dst} are of different IP versions")
    out.family = families.pop() if families else 0
    for name, flag in (
        ("proto", M.M_PROTO),
        ("sport", M.M_SPORT),
        ("dport", M.M_DPORT),
        ("dscp", M.M_DSCP),
        ("in_port", M.M_IN_PORT),
    ):
        value = getattr(m, name)
        if value is not None:
            setattr(out, name, value)
            fields |= flag
    if m.apn_id is not None:
        out.apn_id[:] = list(m.apn_id.to_bytes(16, "big"))
        fields |= M.M_APN_ID
    out.fields = fields
    return out


def apn_option_data(mark: APNMark) -> bytes:
    """The APN option data (SPEC section 2): id_type, flags, para_type, APN-ID, parameters."""
    para = 0
    params = b""
    for mask, name in _PARAMS:
        value = getattr(mark.params, name)
        if value is not None:
            para |= mask
            params += value.to_bytes(4, "big")
    width = _ID_LEN[mark.id_type]
    return (
        bytes([mark.id_type, mark.flags])
        + para.to_bytes(2, "big")
        + mark.apn_id.to_bytes(width, "big")
        + params
    )


def encode_mark(mark: APNMark) -> M.APNMark:
    data = apn_option_data(mark)
    out = M.APNMark(data_len=len(data), id_len=_ID_LEN[mark.id_type])
    out.id[:] = list(mark.apn_id.to_bytes(16, "big"))
    out.data[: len(data)] = list(data)
    return out


def encode_sid_list(sl: SIDList, mode: EncapMode, fib: Fib | None = None) -> M.SIDList:
    """SRH Segment List in wire order: List[0] = last segment; H.Encaps.Red omits S1. With the
    node's `fib`, also the next hop the FIB gives the outer destination (table 0), so that the
    headend does not look it up per packet (the routes and the policies change together)."""
    segs = list(sl.segments)
    reduced = mode is EncapMode.ENCAPS_RED
    wire = list(reversed(segs[1:] if reduced else segs))
    out = M.SIDList(n_segs=len(wire), n_total=len(segs))
    out.da[:] = list(segs[0].packed)
    for i, s in enumerate(wire):
        out.segs[i][:] = list(s.packed)
    via = fib.lookup(0, segs[0].packed) if fib is not None else None
    if via is not None:
        out.resolved = 1
        out.nh = _nexthop(via)
    return out


def _cfg(node: NodeConfig) -> M.Cfg:
    c = M.Cfg()
    flags = M.CFG_TEST_MODE  # the data plane clears it when it attaches to real ports
    e, ecn, pfc, ifit, apn = node.elephant, node.ecn, node.pfc, node.ifit, node.apn
    if e.enabled:
        flags |= M.CFG_ELEPHANT
    if ecn.enabled:
        flags |= M.CFG_ECN
    if pfc.enabled:
        flags |= M.CFG_PFC
    if pfc.priority_from_dscp:
        flags |= M.CFG_PFC_PRIO_DSCP
    if apn.keep_at_egress:
        flags |= M.CFG_APN_KEEP
    heads_ifit = ifit.role is IFITRole.HEAD and ifit.flows
    if node.policies or apn.classifiers or apn.qp_map or heads_ifit or e.enabled:
        flags |= M.CFG_CLASSIFY
    c.flags = flags
    c.node_id = node.node_id
    if node.source is not None:
        c.source[:] = list(node.source.packed)
    if ifit.collector is not None:
        c.collector[:] = list(ifit.collector.address.packed)
        c.collector_port = ifit.collector.port
    c.flowlabel_mode = _FLOWLABEL[node.flowlabel]
    c.apn_carrier = _CARRIER[apn.carrier]
    c.apn_opt_type = apn.option_type
    c.apn_srh_tlv_type = apn.srh_tlv_type
    c.ifit_role = _IFIT_ROLE[ifit.role]
    node_len = data_words(ifit.trace_type)
    if ifit.role is not IFITRole.NONE and (
        node_len == 0 or node_len * ifit.max_nodes > IOAM_MAX_AREA_WORDS
    ):
        raise ConfigError(
            f"node {node.name}: ifit",
            f"trace_type {ifit.trace_type:#08x} x max_nodes {ifit.max_nodes} needs "
            f"{node_len * ifit.max_nodes} words; an IOAM option holds 1 to {IOAM_MAX_AREA_WORDS}",
        )
    c.ioam_node_len = node_len
    c.ioam_max_nodes = ifit.max_nodes
    c.ioam_namespace = ifit.namespace_id
    c.ioam_trace_type = ifit.trace_type
    c.ifit_d_every = ifit.d_every
    c.ifit_period_us = ifit.period_us
    prefixes = sorted({s.sid for s in node.local_sids}, key=str)
    if len(prefixes) > M.MAX_SID_PREFIXES:
        c.n_sid_prefixes = M.SID_PREFIXES_ALL
    else:
        c.n_sid_prefixes = len(prefixes)
        for i, net in enumerate(prefixes):
            c.sid_prefix[i][:] = list(net.network_address.packed)
            c.sid_mask[i][:] = list(net.netmask.packed)
    c.n_policies = len(node.policies)
    c.n_classifiers = len(apn.classifiers)
    c.n_ifit_flows = len(ifit.flows)
    if e.rows > M.MAX_CMS_ROWS or e.width > M.MAX_CMS_WIDTH:
        raise ConfigError(
            f"node {node.name}: elephant",
            f"{e.rows} x {e.width} sketch exceeds {M.MAX_CMS_ROWS} x {M.MAX_CMS_WIDTH}",
        )
    c.cms_rows = e.rows
    c.cms_width = e.width
    c.elephant_window_us = e.window_us
    c.elephant_threshold = e.threshold_bytes
    c.elephant_idle_windows = e.idle_windows
    c.ecn_kmin_bytes = ecn.kmin_bytes
    c.ecn_kmax_bytes = ecn.kmax_bytes
    c.ecn_pmax_t = math.floor(ecn.pmax * (1 << 32))
    c.line_rate_bps = ecn.line_rate_bps
    c.pfc_buffer_bytes = pfc.buffer_bytes
    c.pfc_xoff_pct = pfc.xoff_pct
    c.pfc_xon_pct = pfc.xon_pct
    c.pfc_pause_time = pfc.pause_time
    c.pfc_default_prio = pfc.default_priority
    return c


def _limit(node: NodeConfig, what: str, n: int, most: int) -> None:
    if n > most:
        raise ConfigError(f"node {node.name}: {what}", f"{n} entries; the eBPF node holds {most}")


STEER_ROOM = 4  # flows a headend can have pinned before a re-push must load a bigger program


def map_sizes(node: NodeConfig) -> dict[str, int]:
    """max_entries of the maps `node` needs fewer of than the object's most (maps.h), set before
    the object loads. Array and preallocated maps take their memory at creation: sized for the
    most any node needs, one node held 18 MB, mostly the count-min sketch and the elephant
    table, which only nodes with elephant detection touch, and the QP table (docs/scaling.md)."""
    e = node.elephant
    sizes = {
        # icpn_node.bpf.c: index (policy & (MAX_POLICIES - 1)) * MAX_BUCKETS + bucket, for the
        # node's policies and, at a headend, STEER_ROOM more: the controller pins steered flows
        # in policies of their own, written into the running program (EBPFDataPlane.reconfigure)
        "policy_buckets": (
            min(M.MAX_POLICIES, len(node.policies) + STEER_ROOM) if node.policies else 1
        )
        * M.MAX_BUCKETS,
        # classify.h: rows * width cells, only with CFG_ELEPHANT
        "cms": e.rows * e.width if e.enabled else 1,
        "elephants": M.MAX_FLOWS if e.enabled else 1,
        # a preallocated hash: written from the configuration only
        "qp_map": max(1, len(node.apn.qp_map)),
    }
    return sizes


def node_entries(node: NodeConfig) -> MapEntries:
    """All map entries for `node`; raises ConfigError for what the eBPF maps cannot hold."""
    out = MapEntries(cfg=_cfg(node))
    _limit(node, "policies", len(node.policies), M.MAX_POLICIES)
    _limit(node, "apn.classifiers", len(node.apn.classifiers), M.MAX_CLASSIFIERS)
    _limit(node, "ifit.flows", len(node.ifit.flows), M.MAX_IFIT_FLOWS)
    _limit(node, "routes", len(node.routes), M.MAX_ROUTES)
    _limit(node, "local_sids", len(node.local_sids), M.MAX_SIDS)
    _limit(node, "apn.qp_map", len(node.apn.qp_map), M.MAX_QPS)
    for p in node.ports:
        if not 0 <= p.index < C.MAX_PORTS:  # the port maps are arrays keyed by port number
            most = C.MAX_PORTS - 1
            raise ConfigError(
                f"node {node.name}: ports", f"port {p.index}; the eBPF node holds 0..{most}"
            )
        port = M.Port(valid=1)
        port.mac[:] = list(_mac(p.mac))
        out.add("ports", _u32(p.index), port)
    for r in node.routes:
        addr, plen = r.prefix.network_address.packed, r.prefix.prefixlen
        if isinstance(r.prefix, ipaddress.IPv6Network):
            k6 = M.Fib6Key(prefixlen=32 + plen, table=r.table)
            k6.addr[:] = list(addr)
            out.add("fib6", k6, _nexthop(r.via))
        else:
            k4 = M.Fib4Key(prefixlen=32 + plen, table=r.table)
            k4.addr[:] = list(addr)
            out.add("fib4", k4, _nexthop(r.via))
    slots: set[int] = set()
    for s in node.local_sids:
        key = M.SIDKey(prefixlen=s.sid.prefixlen)
        key.addr[:] = list(s.sid.network_address.packed)
        flavours = (M.FL_PSP if Flavour.PSP in s.flavours else 0) | (
            M.FL_NEXT_CSID if Flavour.NEXT_CSID in s.flavours else 0
        )
        sid = M.SID(
            behaviour=_BEHAVIOUR[s.behaviour],
            flavours=flavours,
            block_bits=s.block_bits,
            csid_bits=s.csid_bits,
            table=s.table,
        )
        if s.adjacency is not None:
            sid.adj = _nexthop(s.adjacency)
        out.add("my_sids", key, sid)
        addr = s.sid.network_address.packed
        slot = M.sid_slot(addr)
        if s.sid.prefixlen == 128 and slot not in slots:  # a collision stays in the trie only
            slots.add(slot)
            entry = M.SIDSlot(sid=sid, valid=1)
            entry.addr[:] = list(addr)
            out.add("sid_slots", _u32(slot), entry)
    fib = Fib.build(node.routes)
    for i, pol in enumerate(node.policies):
        where = f"node {node.name}: policies[{i}]"
        _limit(node, f"policies[{i}].buckets", len(pol.buckets), M.MAX_BUCKETS)
        # Buckets that all name one SID list are one bucket: any hash picks it, so the program
        # need not hash the flow for it.
        buckets = pol.buckets[:1] if len(set(pol.buckets)) == 1 else pol.buckets
        out.add(
            "policies",
            _u32(i),
            M.Policy(
                match=encode_match(pol.match, where + ".match"),
                n_buckets=len(buckets),
                deep_hash=int(pol.deep_hash),
                n_lists=len(pol.sid_lists),
            ),
        )
        for b, sl_index in enumerate(buckets):
            out.add("policy_buckets", _u32(i * M.MAX_BUCKETS + b), _u32(sl_index))
        for j, sl in enumerate(pol.sid_lists):
            out.add("sid_lists", _u32(i * C.MAX_SID_LISTS + j), encode_sid_list(sl, pol.mode, fib))
    for i, cl in enumerate(node.apn.classifiers):
        where = f"node {node.name}: apn.classifiers[{i}].match"
        out.add(
            "classifiers",
            _u32(i),
            M.Classifier(match=encode_match(cl.match, where), mark=encode_mark(cl.mark)),
        )
    for qp, mark in node.apn.qp_map:
        out.add("qp_map", _u32(qp), encode_mark(mark))
    for i, fl in enumerate(node.ifit.flows):
        where = f"node {node.name}: ifit.flows[{i}].match"
        out.add(
            "ifit_flows",
            _u32(i),
            M.IFITFlow(match=encode_match(fl.match, where), flowmon_id=fl.flowmon_id),
        )
    return out


def socket_mark_entries(node: NodeConfig) -> list[Entry]:
    """Host side: SO_MARK -> APN mark entries of the tc egress program."""
    _limit(node, "apn.socket_marks", len(node.apn.socket_marks), M.MAX_SOCKET_MARKS)
    return [(_u32(mark), bytes(encode_mark(m))) for mark, m in node.apn.socket_marks]
