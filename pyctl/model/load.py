"""Load a `NodeConfig` from YAML (schema: docs/model.md), with errors that name field and value."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pyctl import constants as C
from pyctl.errors import ConfigError
from pyctl.model.fields import Field
from pyctl.model.hashing import bucket_table
from pyctl.model.node import (
    Adjacency,
    APNCarrier,
    APNClassifier,
    APNConfig,
    APNMark,
    APNParams,
    Behaviour,
    Collector,
    ECNConfig,
    ElephantConfig,
    EncapMode,
    Flavour,
    FlowLabelMode,
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
from pyctl.model.trace import area_words, data_words

T = TypeVar("T")


def _adjacency(f: Field) -> Adjacency:
    f.mapping(("port", "mac"))
    return Adjacency(port=f.child("port").integer(0, C.MAX_PORTS - 1), mac=f.child("mac").mac())


def _port(f: Field) -> Port:
    f.mapping(("index", "mac", "ifname"))
    ifname = f.child("ifname")
    return Port(
        index=f.child("index").integer(0, C.MAX_PORTS - 1),
        mac=f.child("mac").mac(),
        ifname=ifname.string() if ifname.present() else None,
    )


def _route(f: Field) -> Route:
    f.mapping(("prefix", "port", "mac", "table"))
    return Route(
        prefix=f.child("prefix").network(),
        via=Adjacency(f.child("port").integer(0, C.MAX_PORTS - 1), f.child("mac").mac()),
        table=f.child("table").integer(0, 0xFFFF, 0),
    )


_NEEDS_ADJ = (Behaviour.END_X, Behaviour.END_DX4, Behaviour.END_DX6)


def _local_sid(f: Field) -> LocalSID:
    f.mapping(("sid", "behaviour", "flavours", "adjacency", "table", "block_bits", "csid_bits"))
    behaviour = f.child("behaviour").choice(Behaviour)
    flavours = frozenset(f.child("flavours").listed(lambda x: x.choice(Flavour)))
    adj_f = f.child("adjacency")
    adjacency = _adjacency(adj_f) if adj_f.present() else None
    if behaviour in _NEEDS_ADJ and adjacency is None:
        raise adj_f.fail(f"is required for {behaviour.value}")
    if behaviour not in _NEEDS_ADJ and adjacency is not None:
        raise adj_f.fail(f"is not used by {behaviour.value}")
    if flavours and behaviour not in (Behaviour.END, Behaviour.END_X):
        raise f.child("flavours").fail(f"flavours apply to End and End.X, not {behaviour.value}")
    block = f.child("block_bits").integer(8, 96, C.CSID_BLOCK_BITS)
    csid = f.child("csid_bits").integer(8, 32, C.CSID_BITS)
    return LocalSID(
        sid=f.child("sid").ipv6_network(),
        behaviour=behaviour,
        flavours=flavours,
        adjacency=adjacency,
        table=f.child("table").integer(0, 0xFFFF, 0),
        block_bits=block,
        csid_bits=csid,
    )


_MATCH_FIELDS = ("src", "dst", "proto", "sport", "dport", "dscp", "in_port", "apn_id")


def _match(f: Field) -> FlowMatch:
    f.mapping(_MATCH_FIELDS)
    src, dst = f.child("src"), f.child("dst")
    return FlowMatch(
        src=src.network() if src.present() else None,
        dst=dst.network() if dst.present() else None,
        proto=f.child("proto").opt_integer(0, 255),
        sport=f.child("sport").opt_integer(0, 0xFFFF),
        dport=f.child("dport").opt_integer(0, 0xFFFF),
        dscp=f.child("dscp").opt_integer(0, 63),
        in_port=f.child("in_port").opt_integer(0, C.MAX_PORTS - 1),
        apn_id=f.child("apn_id").opt_integer(0, (1 << 128) - 1),
    )


_ID_BITS = {C.APN_ID_TYPE_32: 32, C.APN_ID_TYPE_64: 64, C.APN_ID_TYPE_128: 128}


def _mark(f: Field) -> APNMark:
    f.mapping(("apn_id", "id_type", "flags", "params"))
    id_type = f.child("id_type").integer(1, 3, C.APN_ID_TYPE_32)
    p = f.child("params")
    p.mapping(("bandwidth_kbps", "latency_us", "jitter_us", "loss_ppm"))
    u32 = 0xFFFFFFFF
    return APNMark(
        apn_id=f.child("apn_id").integer(0, (1 << _ID_BITS[id_type]) - 1),
        id_type=id_type,
        flags=f.child("flags").integer(0, 0xFF, 0),
        params=APNParams(
            bandwidth_kbps=p.child("bandwidth_kbps").opt_integer(0, u32),
            latency_us=p.child("latency_us").opt_integer(0, u32),
            jitter_us=p.child("jitter_us").opt_integer(0, u32),
            loss_ppm=p.child("loss_ppm").opt_integer(0, u32),
        ),
    )


def _keyed_marks(f: Field, key: str, hi: int) -> tuple[tuple[int, APNMark], ...]:
    out = []
    for item in f.items():
        item.mapping((key, "apn_id", "id_type", "flags", "params"))
        k = item.child(key).integer(0, hi)
        rest = {n: v for n, v in item.mapping().items() if n != key}
        out.append((k, _mark(item.with_value(rest))))
    return tuple(out)


def _classifier(f: Field) -> APNClassifier:
    f.mapping(("match", "apn_id", "id_type", "flags", "params"))
    rest = {n: v for n, v in f.mapping().items() if n != "match"}
    return APNClassifier(match=_match(f.child("match")), mark=_mark(f.with_value(rest)))


def parse_apn(f: Field) -> APNConfig:
    f.mapping(
        (
            "carrier",
            "option_type",
            "srh_tlv_type",
            "classifiers",
            "qp_map",
            "socket_marks",
            "keep_at_egress",
            "priority_by_apn",
        )
    )
    prio = []
    for item in f.child("priority_by_apn").items():
        item.mapping(("apn_id", "priority"))
        prio.append(
            (item.child("apn_id").integer(0, (1 << 128) - 1), item.child("priority").integer(0, 7))
        )
    # Pad1/PadN (0, 1) are below the range; the options every plane also parses (SPEC 3) are
    # refused: a carried APN option of their type could not be told from them.
    option_type = f.child("option_type").integer(2, 0xFF, C.APN_OPT_TYPE_DEFAULT)
    taken = {C.IOAM_OPT_TYPE: "IOAM trace", C.ALTMARK_OPT_TYPE: "Alternate Marking"}
    if option_type in taken:
        raise f.child("option_type").fail(
            f"{option_type:#04x} is the {taken[option_type]} option's type; choose another"
        )
    return APNConfig(
        carrier=f.child("carrier").choice(APNCarrier, APNCarrier.HBH),
        option_type=option_type,
        srh_tlv_type=f.child("srh_tlv_type").integer(6, 0xFF, C.APN_SRH_TLV_TYPE_DEFAULT),
        classifiers=f.child("classifiers").listed(_classifier),
        qp_map=_keyed_marks(f.child("qp_map"), "qp", 0xFFFFFF),
        socket_marks=_keyed_marks(f.child("socket_marks"), "mark", 0xFFFFFFFF),
        keep_at_egress=f.child("keep_at_egress").boolean(False),
        priority_by_apn=tuple(prio),
    )


def _policy(f: Field) -> SRv6Policy:
    f.mapping(("name", "match", "mode", "sid_lists", "buckets", "bucket_count", "deep_hash"))
    lists = []
    for lf in f.child("sid_lists").items():
        lf.mapping(("segments", "weight"))
        segs = lf.child("segments").listed(lambda s: s.ipv6())
        if not 1 <= len(segs) <= C.MAX_SEGMENTS:
            raise lf.child("segments").fail(
                f"has {len(segs)} segments; 1 to {C.MAX_SEGMENTS} are supported"
            )
        lists.append(SIDList(segments=segs, weight=lf.child("weight").integer(1, 0xFFFF, 1)))
    if not 1 <= len(lists) <= C.MAX_SID_LISTS:
        raise f.child("sid_lists").fail(f"has {len(lists)} SID lists; 1 to {C.MAX_SID_LISTS}")
    bf = f.child("buckets")
    if bf.present():
        buckets = bf.listed(lambda b: b.integer(0, len(lists) - 1))
        if not buckets:
            raise bf.fail("must not be empty")
    else:
        size = f.child("bucket_count").integer(1, 4096, C.POLICY_BUCKETS_DEFAULT)
        buckets = bucket_table([sl.weight for sl in lists], size)
    return SRv6Policy(
        name=f.child("name").string(),
        match=_match(f.child("match")),
        sid_lists=tuple(lists),
        mode=f.child("mode").choice(EncapMode, EncapMode.ENCAPS),
        buckets=buckets,
        deep_hash=f.child("deep_hash").boolean(True),
    )


def parse_ifit(f: Field) -> IFITConfig:
    f.mapping(
        (
            "role",
            "namespace_id",
            "trace_type",
            "max_nodes",
            "period_us",
            "d_every",
            "flows",
            "collector",
        )
    )
    flows = []
    for item in f.child("flows").items():
        item.mapping(("match", "flowmon_id"))
        flows.append(
            IFITFlow(_match(item.child("match")), item.child("flowmon_id").integer(0, 0xFFFFF))
        )
    cf = f.child("collector")
    collector = None
    if cf.present():
        cf.mapping(("address", "port"))
        collector = Collector(
            cf.child("address").ipv6(), cf.child("port").integer(1, 0xFFFF, C.IFIT_REPORT_PORT)
        )
    role = f.child("role").choice(IFITRole, IFITRole.NONE)
    if role is IFITRole.TAIL and collector is None:
        raise cf.fail("is required when role is tail")
    trace_type = f.child("trace_type").integer(0, 0xFFFFFF, C.IOAM_TRACE_TYPE_DEFAULT)
    max_nodes = f.child("max_nodes").integer(1, 16, C.IOAM_MAX_NODES_DEFAULT)
    words = area_words(trace_type, max_nodes)
    if role is IFITRole.HEAD and words > C.IOAM_AREA_MAX_WORDS:
        raise f.child("max_nodes").fail(
            f"{max_nodes} records of {data_words(trace_type)} words (trace_type "
            f"{trace_type:#08x}) take {words} words; one IOAM option holds at most "
            f"{C.IOAM_AREA_MAX_WORDS}"
        )
    return IFITConfig(
        role=role,
        namespace_id=f.child("namespace_id").integer(0, 0xFFFF, 0),
        trace_type=trace_type,
        max_nodes=max_nodes,
        period_us=f.child("period_us").integer(1000, 3_600_000_000, C.IFIT_PERIOD_US_DEFAULT),
        d_every=f.child("d_every").integer(1, 1 << 20, C.IFIT_D_EVERY_DEFAULT),
        flows=tuple(flows),
        collector=collector,
    )


def parse_elephant(f: Field) -> ElephantConfig:
    f.mapping(("enabled", "rows", "width", "window_us", "threshold_bytes", "idle_windows"))
    return ElephantConfig(
        enabled=f.child("enabled").boolean(True),
        rows=f.child("rows").integer(1, 8, C.CMS_ROWS_DEFAULT),
        width=f.child("width").integer(16, 1 << 16, C.CMS_WIDTH_DEFAULT),
        window_us=f.child("window_us").integer(1000, 60_000_000, C.ELEPHANT_WINDOW_US_DEFAULT),
        threshold_bytes=f.child("threshold_bytes").integer(
            1, 1 << 40, C.ELEPHANT_THRESHOLD_BYTES_DEFAULT
        ),
        idle_windows=f.child("idle_windows").integer(1, 1000, C.ELEPHANT_IDLE_WINDOWS_DEFAULT),
    )


def parse_ecn(f: Field) -> ECNConfig:
    f.mapping(
        (
            "enabled",
            "kmin_packets",
            "kmax_packets",
            "kmin_bytes",
            "kmax_bytes",
            "pmax",
            "line_rate_bps",
        )
    )
    d = ECNConfig()
    cfg = ECNConfig(
        enabled=f.child("enabled").boolean(True),
        kmin_packets=f.child("kmin_packets").integer(0, 1 << 20, d.kmin_packets),
        kmax_packets=f.child("kmax_packets").integer(1, 1 << 20, d.kmax_packets),
        kmin_bytes=f.child("kmin_bytes").integer(0, 1 << 30, d.kmin_bytes),
        kmax_bytes=f.child("kmax_bytes").integer(1, 1 << 30, d.kmax_bytes),
        pmax=f.child("pmax").number(0.0, 1.0, d.pmax),
        line_rate_bps=f.child("line_rate_bps").integer(1000, 1 << 40, d.line_rate_bps),
    )
    if cfg.kmax_packets <= cfg.kmin_packets:
        raise f.child("kmax_packets").fail(f"{cfg.kmax_packets} must exceed kmin_packets")
    if cfg.kmax_bytes <= cfg.kmin_bytes:
        raise f.child("kmax_bytes").fail(f"{cfg.kmax_bytes} must exceed kmin_bytes")
    return cfg


def parse_pfc(f: Field) -> PFCConfig:
    f.mapping(
        (
            "enabled",
            "buffer_bytes",
            "xoff_pct",
            "xon_pct",
            "pause_time",
            "priority_from_dscp",
            "default_priority",
        )
    )
    d = PFCConfig()
    cfg = PFCConfig(
        enabled=f.child("enabled").boolean(True),
        buffer_bytes=f.child("buffer_bytes").integer(1, 1 << 30, d.buffer_bytes),
        xoff_pct=f.child("xoff_pct").integer(1, 100, d.xoff_pct),
        xon_pct=f.child("xon_pct").integer(0, 99, d.xon_pct),
        pause_time=f.child("pause_time").integer(1, 0xFFFF, d.pause_time),
        priority_from_dscp=f.child("priority_from_dscp").boolean(True),
        default_priority=f.child("default_priority").integer(0, 7, 0),
    )
    if cfg.xon_pct >= cfg.xoff_pct:
        raise f.child("xon_pct").fail(f"{cfg.xon_pct} must be below xoff_pct {cfg.xoff_pct}")
    return cfg


_NODE_FIELDS = (
    "name",
    "role",
    "node_id",
    "ports",
    "source",
    "flowlabel",
    "routes",
    "local_sids",
    "policies",
    "apn",
    "ifit",
    "elephant",
    "ecn",
    "pfc",
)


def node_from_dict(data: Any, source: str = "<node>", path: str = "") -> NodeConfig:
    """Build and validate a `NodeConfig` from parsed YAML; raise `ConfigError` naming the field."""
    return node_from_field(Field(data, path, source))


def node_from_field(f: Field) -> NodeConfig:
    """As `node_from_dict`, from a position in a YAML document (errors then carry line numbers)."""
    f.mapping(_NODE_FIELDS)
    ports = f.child("ports").listed(_port)
    if not ports:
        raise f.child("ports").fail("at least one port is required")
    indexes = [p.index for p in ports]
    if len(set(indexes)) != len(indexes):
        raise f.child("ports").fail(f"duplicate port index in {indexes}")
    src = f.child("source")
    node = NodeConfig(
        name=f.child("name").string(),
        role=f.child("role").choice(Role),
        node_id=f.child("node_id").integer(0, 0xFFFFFF),
        ports=ports,
        source=src.ipv6() if src.present() else None,
        flowlabel=f.child("flowlabel").choice(FlowLabelMode, FlowLabelMode.HASH),
        routes=f.child("routes").listed(_route),
        local_sids=f.child("local_sids").listed(_local_sid),
        policies=f.child("policies").listed(_policy),
        apn=parse_apn(f.child("apn")),
        ifit=parse_ifit(f.child("ifit")),
        elephant=_section(f.child("elephant"), parse_elephant, ElephantConfig()),
        ecn=_section(f.child("ecn"), parse_ecn, ECNConfig()),
        pfc=_section(f.child("pfc"), parse_pfc, PFCConfig()),
    )
    _check_ports_exist(f, node, set(indexes))
    if node.policies and node.source is None:
        raise src.fail("is required when the node has SRv6 policies (outer source address)")
    return node


def _section(f: Field, parse: Callable[[Field], T], absent: T) -> T:
    """An optional feature section: absent means off, present means on unless `enabled: false`."""
    return parse(f) if f.present() else absent


def _check_ports_exist(f: Field, node: NodeConfig, ports: set[int]) -> None:
    def check(field: Field, port: int) -> None:
        if port not in ports:
            raise field.fail(f"port {port} is not one of the node's ports {sorted(ports)}")

    for i, r in enumerate(node.routes):
        check(f.child("routes").child(i).child("port"), r.via.port)
    for i, s in enumerate(node.local_sids):
        if s.adjacency is not None:
            check(f.child("local_sids").child(i).child("adjacency").child("port"), s.adjacency.port)


def load_node(path: str | Path) -> NodeConfig:
    """Read a node YAML file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(str(p), f"cannot read: {e.strerror}") from None
    f = Field.from_yaml(text, str(p))
    return node_from_field(f)
