"""The reference data plane: docs/pipeline.md section 1, one step after the other, on bytes.

`ReferenceDataPlane.process` is the executable form of that page; each step is one method whose
docstring names the step. Drops are `Drop(code)` exceptions caught in `process`, so a step reads
as the straight path through it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field

from pyctl import constants as C
from pyctl.errors import ConfigError, PacketError
from pyctl.model.hashing import FlowKey, crc32, flow_hash, flow_label
from pyctl.model.node import (
    Adjacency,
    APNCarrier,
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
from pyctl.targets.base import DataPlane, Output, Result
from pyctl.targets.reasons import reason_name
from pyctl.targets.reference.apn import (
    APNValue,
    insert_apn,
    mark_value,
    option,
    packet_apn,
    srh_tlv,
    strip_hbh_options,
)
from pyctl.targets.reference.config import check_node, policy_buckets
from pyctl.targets.reference.congestion import (
    PFC_DST,
    PFCState,
    ecn_decapsulate,
    ecn_mark,
    parse_pfc,
    pfc_frame,
    priority,
    traffic_ecn,
)
from pyctl.targets.reference.elephant import ElephantDetector
from pyctl.targets.reference.fib import Fib, LpmTable, Net, sid_table
from pyctl.targets.reference.frame import (
    Drop,
    Ethernet,
    IPPacket,
    decrement_hop_limit,
    ethernet,
    flow_key,
    ip_dst,
    ip_hop_limit,
    ip_src,
    is_link_local,
    mac_bytes,
    parse_ethernet,
    parse_ip,
    ports,
    traffic_class,
)
from pyctl.targets.reference.ifit import (
    Colouring,
    FiveTuple,
    Hop,
    altmark_option,
    find_altmark,
    find_trace,
    ioam_option,
    report_payload,
    stamp,
    udp_ipv6,
)
from pyctl.targets.reference.srv6 import (
    OuterHeaders,
    check_hop_limit,
    decapsulate,
    encapsulate,
    end,
    find_srh,
    next_csid_shift,
    psp,
    set_destination,
    validate_srh,
)

INNER_ACCEPTED = {
    Behaviour.END_DT6: (C.IPPROTO_IPV6,),
    Behaviour.END_DX6: (C.IPPROTO_IPV6,),
    Behaviour.END_DT4: (C.IPPROTO_IPIP,),
    Behaviour.END_DX4: (C.IPPROTO_IPIP,),
    Behaviour.END_DT46: (C.IPPROTO_IPV6, C.IPPROTO_IPIP),
}
DX_BEHAVIOURS = (Behaviour.END_DX6, Behaviour.END_DX4)
IFIT_OPTIONS = frozenset({C.ALTMARK_OPT_TYPE, C.IOAM_OPT_TYPE})


@dataclass(frozen=True)
class Forward:
    """A packet leaving the node: IP bytes, where it goes, and what IFIT needs to know.

    `origin` is the parsed packet whose upper layer names the flow (the report's 5-tuple);
    `outer` is the outer IPv6 packet as received when this node decapsulated it.
    """

    data: bytes
    version: int
    adj: Adjacency
    origin: IPPacket
    outer: bytes | None = None


@dataclass
class Runtime:
    """A configured node: its tables (built once) and its state (elephants, IFIT, PFC)."""

    node: NodeConfig
    fib: Fib
    sids: LpmTable[LocalSID]
    buckets: tuple[tuple[int, ...], ...]  # per policy
    macs: dict[int, bytes]
    elephants: ElephantDetector
    pfc: PFCState = field(default_factory=PFCState)
    colouring: Colouring = field(default_factory=Colouring)
    counters: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)


class ReferenceDataPlane(DataPlane):
    """The pure-Python oracle every other data plane is compared with."""

    name = "reference"

    def __init__(self) -> None:
        self._rt: Runtime | None = None

    def configure(self, node: NodeConfig) -> None:
        check_node(node)
        self._rt = Runtime(
            node=node,
            fib=Fib.build(node.routes),
            sids=sid_table(node.local_sids),
            buckets=tuple(policy_buckets(p) for p in node.policies),
            macs={p.index: mac_bytes(p.mac) for p in node.ports},
            elephants=ElephantDetector(node.elephant),
        )

    def counters(self) -> dict[tuple[int, int], tuple[int, int]]:
        """IFIT counters: (FlowMonID, colour) -> (packets, bytes)."""
        return dict(self._runtime().counters)

    def elephants(self) -> frozenset[FlowKey]:
        """The flow keys currently detected as elephants."""
        return self._runtime().elephants.elephants()

    def _runtime(self) -> Runtime:
        if self._rt is None:
            raise ConfigError("reference data plane", "configure() must be called first")
        return self._rt

    def process(self, frame: bytes, ctx: PacketContext) -> Result:
        rt = self._runtime()
        if ctx.in_port not in rt.macs:
            known = sorted(rt.macs)
            raise PacketError(f"ctx.in_port {ctx.in_port} is not a port of {rt.node.name} {known}")
        if not 0 <= ctx.rand32 <= 0xFFFFFFFF:
            raise PacketError(f"ctx.rand32 {ctx.rand32} is not a 32-bit unsigned value")
        side: list[Output] = []
        try:
            out = Pipeline(rt, ctx, side).run(bytes(frame))
        except Drop as d:
            return Result(side, reason_name(d.code))
        return Result([*side, out])


@dataclass
class Pipeline:
    """One frame through docs/pipeline.md section 1; `side` collects PFC frames and reports."""

    rt: Runtime
    ctx: PacketContext
    side: list[Output]
    passes: int = 0  # local SIDs processed so far for this packet

    @property
    def node(self) -> NodeConfig:
        return self.rt.node

    def run(self, frame: bytes) -> Output:
        eth = parse_ethernet(frame)
        # A router takes frames sent to its port's MAC; MAC Control (PFC) frames may also use
        # the reserved multicast address (IEEE 802.3 Annex 31B).
        pfc = eth.ethertype == C.PFC_ETHERTYPE
        if eth.dst != self.rt.macs[self.ctx.in_port] and not (pfc and eth.dst == PFC_DST):
            raise Drop(C.DROP_NOT_FOR_ME)
        if pfc:
            self.pfc_in(eth)
        if self.node.pfc.enabled:
            self.pfc_out(eth)
        pkt = parse_ip(eth.payload, eth.ethertype)
        check_not_link_local(pkt)
        sid = self.rt.sids.lookup(pkt.dst) if pkt.version == 6 else None
        fwd = self.endpoint(pkt, sid) if sid is not None else self.headend(pkt)
        return self.egress(self.ifit(fwd))

    # Steps 1-2: PFC

    def pfc_in(self, eth: Ethernet) -> None:
        """Step 1: a PFC frame (opcode 0x0101) pauses the priorities it enables on in_port; it is
        consumed. Other MAC-control frames are `not-ip`."""
        parsed = parse_pfc(eth.payload)
        if parsed is None:
            raise Drop(C.DROP_NOT_IP)
        if self.node.pfc.enabled:
            vector, times = parsed
            rate = self.node.ecn.line_rate_bps
            self.rt.pfc.receive(self.ctx.in_port, vector, times, self.ctx.time_us, rate)
        raise Drop(C.DROP_PFC_CONSUMED)

    def pfc_out(self, eth: Ethernet) -> None:
        """Step 2: XOFF / XON back out of in_port from the ingress-queue occupancy."""
        tos = None
        if eth.ethertype in (C.ETHERTYPE_IPV6, C.ETHERTYPE_IPV4) and len(eth.payload) >= 2:
            tos = traffic_class(eth.payload, 6 if eth.ethertype == C.ETHERTYPE_IPV6 else 4)
        prio = priority(self.node.pfc, tos)
        port = self.ctx.in_port
        occupancy = self.ctx.ingress_queue_bytes.get((port, prio), 0)
        time = self.rt.pfc.generate(self.node.pfc, port, prio, occupancy)
        if time is not None:
            self.side.append(Output(port, pfc_frame(self.rt.macs[port], prio, time)))

    # Step 4: endpoint behaviours (pipeline.md 2)

    def endpoint(self, pkt: IPPacket, sid: LocalSID) -> Forward:
        if sid.behaviour in (Behaviour.END, Behaviour.END_X):
            return self.end(pkt, sid)
        return self.decap(pkt, sid)

    def end(self, pkt: IPPacket, sid: LocalSID) -> Forward:
        """End / End.X with the PSP and NEXT-CSID flavours (RFC 8986 4.1, 4.2, 4.16.1; RFC 9800)."""
        if Flavour.NEXT_CSID in sid.flavours:
            shifted = next_csid_shift(pkt.dst, sid.block_bits, sid.csid_bits)
            if shifted is not None:
                check_hop_limit(pkt.hop_limit)
                data = decrement_hop_limit(set_destination(pkt.data, shifted), 6)
                return self.end_egress(data, sid, pkt)
        srh = find_srh(pkt)
        if srh is None:
            raise Drop(C.DROP_NO_SRH)
        # RFC 8986 4.1 order: S02 SL == 0, S05 hop limit, S09 LE / SL sanity.
        if srh.segments_left == 0:
            raise Drop(C.DROP_SL_ZERO)
        check_hop_limit(pkt.hop_limit)
        validate_srh(srh, pkt.data)
        data = end(pkt, srh)
        if Flavour.PSP in sid.flavours and srh.segments_left == 1:
            data = psp(data, srh)
        return self.end_egress(data, sid, pkt)

    def end_egress(self, data: bytes, sid: LocalSID, origin: IPPacket) -> Forward:
        """End: FIB lookup on the new DA (RFC 8986 4.1 S15), where a local SID of this node is
        processed in turn (as Linux does), at most MAX_SID_PASSES times; End.X: the adjacency."""
        if sid.behaviour is Behaviour.END_X and sid.adjacency is not None:
            return Forward(data, 6, sid.adjacency, origin)
        dst = ip_dst(data, 6)
        local = self.rt.sids.lookup(dst)
        if local is not None:
            self.passes += 1
            if self.passes >= C.MAX_SID_PASSES:
                raise Drop(C.DROP_SID_LOOP)
            return self.endpoint(parse_ip(data, C.ETHERTYPE_IPV6), local)
        return Forward(data, 6, self.lookup(0, dst), origin)

    def decap(self, pkt: IPPacket, sid: LocalSID) -> Forward:
        """End.DT6/DT4/DT46/DX6/DX4 (RFC 8986 4.4-4.8): SRH (if any) valid with SL 0, inner
        packet out, CE copied (RFC 6040), then a lookup in `table` or the adjacency."""
        srh = find_srh(pkt)
        if srh is not None:
            validate_srh(srh, pkt.data)
            if srh.segments_left != 0:
                raise Drop(C.DROP_SL_NONZERO)
        inner = decapsulate(pkt, INNER_ACCEPTED[sid.behaviour])
        check_not_link_local(inner)
        data = ecn_decapsulate(traffic_ecn(pkt.data, 6), inner)
        if sid.behaviour in DX_BEHAVIOURS and sid.adjacency is not None:
            adj = sid.adjacency
        else:
            adj = self.lookup(sid.table, inner.dst)
        check_hop_limit(inner.hop_limit)
        return Forward(
            decrement_hop_limit(data, inner.version), inner.version, adj, inner, pkt.data
        )

    # Steps 5-6: headend and transit

    def headend(self, pkt: IPPacket) -> Forward:
        """Step 5: elephant detection, APN-ID, policy choice and encapsulation; a packet that
        matches no policy may get an APN option inserted, then is forwarded (step 6)."""
        key = flow_key(pkt)
        elephant = False
        if self.node.elephant.enabled:
            elephant = self.rt.elephants.observe(key, len(pkt.data), self.ctx.time_us)
        apn, carried = self.apn_of(pkt, key)
        for i, policy in enumerate(self.node.policies):
            if flow_matches(policy.match, pkt, self.ctx.in_port, apn):
                return self.encapsulate(pkt, key, policy, self.rt.buckets[i], apn, elephant)
        data = pkt.data
        if apn is not None and not carried:
            apn_opt = option(self.node.apn.option_type, apn.data)
            data = insert_apn(pkt, self.node.apn.carrier, apn_opt) or data
        return self.forward(data, pkt.version, pkt)

    def apn_of(self, pkt: IPPacket, key: FlowKey) -> tuple[APNValue | None, bool]:
        """pipeline.md 3: QP map, else the option the packet carries, else the classifiers.
        The flag says whether the packet already carries it."""
        cfg = self.node.apn
        for qp, mark in cfg.qp_map:
            if key.qp is not None and qp == key.qp:
                return mark_value(mark), False
        carried = packet_apn(pkt, cfg.option_type)
        if carried is not None:
            return carried, True
        for c in cfg.classifiers:
            if flow_matches(c.match, pkt, self.ctx.in_port, None):
                return mark_value(c.mark), False
        return None, False

    def encapsulate(
        self,
        pkt: IPPacket,
        key: FlowKey,
        policy: SRv6Policy,
        buckets: tuple[int, ...],
        apn: APNValue | None,
        elephant: bool,
    ) -> Forward:
        """pipeline.md 2-4: SID list by (deep) hashing, outer headers with the APN option and
        the IFIT head options, then forwarded on S1 (step 6)."""
        if elephant and apn is not None and policy.deep_hash:
            h = crc32(apn.id_bytes())
        else:
            h = flow_hash(key)
        sid_list = policy.sid_lists[buckets[h % len(buckets)]]
        hbh: list[bytes] = []
        doh: list[bytes] = []
        tlvs = b""
        cfg = self.node.apn
        if apn is not None:
            if cfg.carrier is APNCarrier.HBH:
                hbh.append(option(cfg.option_type, apn.data))
            elif cfg.carrier is APNCarrier.DOH:
                doh.append(option(cfg.option_type, apn.data))
            else:
                tlvs = srh_tlv(cfg.srh_tlv_type, apn.data)
        hbh += self.ifit_head_options(pkt, apn)
        outer = OuterHeaders(
            source=self.node.source.packed if self.node.source else bytes(16),
            flow_label=self.outer_flow_label(pkt, key),
            hbh_options=tuple(hbh),
            doh_options=tuple(doh),
            srh_tlvs=tlvs,
        )
        segments = [s.packed for s in sid_list.segments]
        reduced = policy.mode is EncapMode.ENCAPS_RED
        return self.forward(encapsulate(pkt, segments, reduced, outer), 6, pkt)

    def outer_flow_label(self, pkt: IPPacket, key: FlowKey) -> int:
        mode = self.node.flowlabel
        if mode is FlowLabelMode.HASH:
            return flow_label(key)
        return pkt.flow_label if mode is FlowLabelMode.COPY else 0

    def ifit_head_options(self, pkt: IPPacket, apn: APNValue | None) -> list[bytes]:
        """pipeline.md 4 head: AltMark and a fresh IOAM trace for the first matching flow."""
        cfg = self.node.ifit
        if cfg.role is not IFITRole.HEAD:
            return []
        for f in cfg.flows:
            if flow_matches(f.match, pkt, self.ctx.in_port, apn):
                mark = self.rt.colouring.mark(
                    f.flowmon_id, self.ctx.time_us, cfg.period_us, cfg.d_every
                )
                return [
                    altmark_option(mark),
                    ioam_option(cfg.namespace_id, cfg.trace_type, cfg.max_nodes),
                ]
        return []

    def forward(self, data: bytes, version: int, origin: IPPacket) -> Forward:
        """Step 6: FIB lookup (table 0) on the destination, hop limit check, decrement."""
        adj = self.lookup(0, ip_dst(data, version))
        check_hop_limit(ip_hop_limit(data, version))
        return Forward(decrement_hop_limit(data, version), version, adj, origin)

    def lookup(self, table: int, dst: bytes) -> Adjacency:
        adj = self.rt.fib.lookup(table, dst)
        if adj is None:
            raise Drop(C.DROP_NO_ROUTE)
        return adj

    # Step 7: IFIT (pipeline.md 4)

    def ifit(self, fwd: Forward) -> Forward:
        """Count and stamp the IFIT options of the outer IPv6 header as the packet leaves (or, at
        a decapsulating tail, of the removed outer header); the tail reports and strips."""
        cfg = self.node.ifit
        if cfg.role is IFITRole.NONE:
            return fwd
        if fwd.outer is not None:
            if cfg.role is not IFITRole.TAIL:
                return fwd
            carrier, hop_limit = fwd.outer, (fwd.outer[7] - 1) & 0xFF
        elif fwd.version == 6:
            carrier, hop_limit = fwd.data, fwd.data[7]
        else:
            return fwd
        self.count(carrier)
        trace = find_trace(carrier, cfg.namespace_id)
        if trace is None:
            return fwd
        port = fwd.adj.port
        queue = self.ctx.egress_queue_packets.get(port, 0)
        hop = Hop(hop_limit, self.node.node_id, self.ctx.in_port, port, self.ctx.time_us, queue)
        stamped = stamp(carrier, trace, hop)
        if cfg.role is not IFITRole.TAIL:
            return dataclasses.replace(fwd, data=stamped)
        self.report(stamped, fwd)
        if fwd.outer is not None:
            return fwd
        return dataclasses.replace(fwd, data=strip_hbh_options(stamped, IFIT_OPTIONS))

    def count(self, carrier: bytes) -> None:
        """Per-(FlowMonID, L) packets and bytes (the IPv6 length of the carrying packet)."""
        mark = find_altmark(carrier)
        if mark is None:
            return
        key = (mark.flowmon_id, mark.colour)
        packets, nbytes = self.rt.counters.get(key, (0, 0))
        self.rt.counters[key] = (packets + 1, nbytes + 40 + int.from_bytes(carrier[4:6], "big"))

    def report(self, stamped: bytes, fwd: Forward) -> None:
        """pipeline.md 4 tail report to the collector, sent out of the FIB lookup on it."""
        collector, source = self.node.ifit.collector, self.node.source
        trace = find_trace(stamped, self.node.ifit.namespace_id)
        if collector is None or source is None or trace is None:
            return
        adj = self.rt.fib.lookup(0, collector.address.packed)
        if adj is None:
            return
        records = trace.filled(stamped)
        sport, dport = ports(fwd.origin)
        flow = FiveTuple(
            family=fwd.version,
            proto=fwd.origin.proto,
            sport=sport,
            dport=dport,
            src=ip_src(fwd.data, fwd.version),
            dst=ip_dst(fwd.data, fwd.version),
        )
        count = len(records) // (trace.node_len * 4)
        payload = report_payload(
            find_altmark(stamped), self.node.node_id, self.ctx.time_us, flow, records, count
        )
        packet = udp_ipv6(source.packed, collector.address.packed, collector.port, payload)
        frame = ethernet(mac_bytes(adj.mac), self.rt.macs[adj.port], C.ETHERTYPE_IPV6, packet)
        self.side.append(Output(adj.port, frame))

    # Step 8: ECN, PFC pause, Ethernet

    def egress(self, fwd: Forward) -> Output:
        """ECN on the outermost header, the PFC pause check, then the Ethernet rewrite."""
        port, data, version = fwd.adj.port, fwd.data, fwd.version
        if self.node.ecn.enabled:
            q = self.ctx.egress_queue_bytes.get(port, 0)
            data = ecn_mark(data, version, self.node.ecn, q, self.ctx.rand32)
        if self.node.pfc.enabled:
            prio = priority(self.node.pfc, traffic_class(data, version))
            if self.rt.pfc.is_paused(port, prio, self.ctx.time_us):
                raise Drop(C.DROP_PFC_HELD)
        ethertype = C.ETHERTYPE_IPV6 if version == 6 else C.ETHERTYPE_IPV4
        return Output(port, ethernet(mac_bytes(fwd.adj.mac), self.rt.macs[port], ethertype, data))


def check_not_link_local(pkt: IPPacket) -> None:
    """RFC 4291 2.5.6 / RFC 3927 2.7: a router never forwards link-local source or destination."""
    if is_link_local(pkt.src) or is_link_local(pkt.dst):
        raise Drop(C.DROP_LINK_LOCAL)


def flow_matches(m: FlowMatch, pkt: IPPacket, in_port: int, apn: APNValue | None) -> bool:
    """Every field that is set must match; a prefix matches only its own address family; DSCP
    is TC/TOS >> 2; `apn_id` needs the packet's APN-ID (classifiers never have one yet)."""
    sport, dport = ports(pkt)
    checks = (
        m.src is None or _in_prefix(pkt.src, m.src),
        m.dst is None or _in_prefix(pkt.dst, m.dst),
        m.proto is None or m.proto == pkt.proto,
        m.sport is None or m.sport == sport,
        m.dport is None or m.dport == dport,
        m.dscp is None or m.dscp == pkt.tos >> 2,
        m.in_port is None or m.in_port == in_port,
        m.apn_id is None or (apn is not None and apn.apn_id == m.apn_id),
    )
    return all(checks)


def _in_prefix(addr: bytes, net: Net) -> bool:
    return net.version == (6 if len(addr) == 16 else 4) and ipaddress.ip_address(addr) in net
