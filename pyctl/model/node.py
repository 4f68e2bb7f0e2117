"""Target-neutral configuration of one node: what it should do, not how a target does it.

Every data plane (reference, eBPF, BMv2, kernel) is programmed from a `NodeConfig`. The YAML
schema that loads into these classes is documented in docs/model.md; `pyctl.model.load` parses
and validates it.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field

from pyctl import constants as C

IPv6Net = ipaddress.IPv6Network
IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address


class Role(enum.StrEnum):
    HOST = "host"
    HEADEND = "headend"
    TRANSIT = "transit"
    EGRESS = "egress"


class Behaviour(enum.StrEnum):
    """RFC 8986 endpoint behaviours bound to a local SID."""

    END = "End"
    END_X = "End.X"
    END_DT4 = "End.DT4"
    END_DT6 = "End.DT6"
    END_DT46 = "End.DT46"
    END_DX4 = "End.DX4"
    END_DX6 = "End.DX6"


class Flavour(enum.StrEnum):
    PSP = "psp"
    NEXT_CSID = "next-csid"


class EncapMode(enum.StrEnum):
    ENCAPS = "H.Encaps"
    ENCAPS_RED = "H.Encaps.Red"


class FlowLabelMode(enum.StrEnum):
    """Outer flow label on encapsulation (Linux seg6_flowlabel 1 / 0 / -1)."""

    HASH = "hash"
    COPY = "copy"
    ZERO = "zero"


class APNCarrier(enum.StrEnum):
    HBH = "hbh"
    DOH = "doh"
    SRH_TLV = "srh-tlv"


class IFITRole(enum.StrEnum):
    """Head inserts the options, transit stamps, tail stamps, strips and exports."""

    NONE = "none"
    HEAD = "head"
    TRANSIT = "transit"
    TAIL = "tail"


@dataclass(frozen=True)
class Port:
    """A port of the node. `index` is the port number used everywhere (vectors, IOAM if ids)."""

    index: int
    mac: str
    ifname: str | None = None


@dataclass(frozen=True)
class Adjacency:
    """A fixed next hop: egress port and the neighbour's MAC address."""

    port: int
    mac: str


@dataclass(frozen=True)
class Route:
    """A FIB entry (IPv6 or IPv4); `table` 0 is the main table, others are VRFs for End.DT*."""

    prefix: IPNet
    via: Adjacency
    table: int = 0


@dataclass(frozen=True)
class LocalSID:
    """An entry of the My-SID table (longest-prefix match on the IPv6 destination)."""

    sid: IPv6Net
    behaviour: Behaviour
    flavours: frozenset[Flavour] = frozenset()
    adjacency: Adjacency | None = None  # End.X, End.DX4, End.DX6
    table: int = 0  # End.DT4 / End.DT6 / End.DT46 lookup table
    block_bits: int = C.CSID_BLOCK_BITS  # NEXT-CSID locator-block length
    csid_bits: int = C.CSID_BITS


@dataclass(frozen=True)
class SIDList:
    segments: tuple[ipaddress.IPv6Address, ...]
    weight: int = 1


@dataclass(frozen=True)
class FlowMatch:
    """A classifier match; every field left None matches anything."""

    src: IPNet | None = None
    dst: IPNet | None = None
    proto: int | None = None
    sport: int | None = None
    dport: int | None = None
    dscp: int | None = None
    in_port: int | None = None
    apn_id: int | None = None  # only in policy steering: the APN-ID the packet was marked with


@dataclass(frozen=True)
class SRv6Policy:
    """An SRv6 policy: traffic matching `match` is encapsulated on one of its weighted SID lists.

    `buckets` is the bucket table (bucket -> SID-list index) of SPEC section 4; the controller
    derives it from the weights (`pyctl.model.hashing.bucket_table`) unless pinned in the YAML.
    """

    name: str
    match: FlowMatch
    sid_lists: tuple[SIDList, ...]
    mode: EncapMode = EncapMode.ENCAPS
    buckets: tuple[int, ...] = ()
    deep_hash: bool = True  # elephants hash on the APN-ID, mice on the 5-tuple


@dataclass(frozen=True)
class APNParams:
    bandwidth_kbps: int | None = None
    latency_us: int | None = None
    jitter_us: int | None = None
    loss_ppm: int | None = None


@dataclass(frozen=True)
class APNMark:
    """What to put in the APN option."""

    apn_id: int
    id_type: int = C.APN_ID_TYPE_32
    flags: int = 0
    params: APNParams = APNParams()


@dataclass(frozen=True)
class APNClassifier:
    match: FlowMatch
    mark: APNMark


@dataclass(frozen=True)
class APNConfig:
    """Network-side (classifiers, QP map) and application-side (socket marks) APN marking."""

    carrier: APNCarrier = APNCarrier.HBH
    option_type: int = C.APN_OPT_TYPE_DEFAULT
    srh_tlv_type: int = C.APN_SRH_TLV_TYPE_DEFAULT
    classifiers: tuple[APNClassifier, ...] = ()
    qp_map: tuple[tuple[int, APNMark], ...] = ()  # RoCEv2 destination QP -> mark
    socket_marks: tuple[tuple[int, APNMark], ...] = ()  # host side: SO_MARK -> mark
    keep_at_egress: bool = False
    priority_by_apn: tuple[tuple[int, int], ...] = ()  # APN-ID -> queue priority


@dataclass(frozen=True)
class IFITFlow:
    match: FlowMatch
    flowmon_id: int


@dataclass(frozen=True)
class Collector:
    address: ipaddress.IPv6Address
    port: int = C.IFIT_REPORT_PORT


@dataclass(frozen=True)
class IFITConfig:
    role: IFITRole = IFITRole.NONE
    namespace_id: int = 0
    trace_type: int = C.IOAM_TRACE_TYPE_DEFAULT
    max_nodes: int = C.IOAM_MAX_NODES_DEFAULT
    period_us: int = C.IFIT_PERIOD_US_DEFAULT
    d_every: int = C.IFIT_D_EVERY_DEFAULT
    flows: tuple[IFITFlow, ...] = ()  # head: which flows get IFIT, with their FlowMonID
    collector: Collector | None = None  # tail: where reports go


@dataclass(frozen=True)
class ElephantConfig:
    enabled: bool = False
    rows: int = C.CMS_ROWS_DEFAULT
    width: int = C.CMS_WIDTH_DEFAULT
    window_us: int = C.ELEPHANT_WINDOW_US_DEFAULT
    threshold_bytes: int = C.ELEPHANT_THRESHOLD_BYTES_DEFAULT
    idle_windows: int = C.ELEPHANT_IDLE_WINDOWS_DEFAULT


@dataclass(frozen=True)
class ECNConfig:
    """DCQCN-style marking on byte thresholds (every data plane; the packet thresholds are read
    by none and kept so that configurations naming them still load)."""

    enabled: bool = False
    kmin_packets: int = 10
    kmax_packets: int = 50
    kmin_bytes: int = 15_000
    kmax_bytes: int = 75_000
    pmax: float = 0.2
    line_rate_bps: int = 1_000_000_000  # eBPF virtual-queue drain rate


@dataclass(frozen=True)
class PFCConfig:
    enabled: bool = False
    buffer_bytes: int = 100_000  # per-port ingress buffer
    xoff_pct: int = 80
    xon_pct: int = 50
    pause_time: int = C.PFC_PAUSE_MAX
    priority_from_dscp: bool = True  # priority = DSCP >> 3; else `default_priority`
    default_priority: int = 0


@dataclass(frozen=True)
class NodeConfig:
    name: str
    role: Role
    node_id: int  # IOAM node id (24 bits)
    ports: tuple[Port, ...]
    source: ipaddress.IPv6Address | None = None  # outer source of H.Encaps and IFIT reports
    flowlabel: FlowLabelMode = FlowLabelMode.HASH
    routes: tuple[Route, ...] = ()
    local_sids: tuple[LocalSID, ...] = ()
    policies: tuple[SRv6Policy, ...] = ()
    apn: APNConfig = APNConfig()
    ifit: IFITConfig = IFITConfig()
    elephant: ElephantConfig = ElephantConfig()
    ecn: ECNConfig = ECNConfig()
    pfc: PFCConfig = PFCConfig()

    def port(self, index: int) -> Port:
        for p in self.ports:
            if p.index == index:
                return p
        raise KeyError(index)


@dataclass
class PacketContext:
    """What the environment tells a data plane about one packet besides its bytes.

    The reference model takes these as inputs so that a vector is deterministic; the eBPF and
    BMv2 targets get the same values through their test hooks (test-mode maps / registers).
    """

    in_port: int
    time_us: int = 0
    egress_queue_bytes: dict[int, int] = field(default_factory=dict)  # port -> bytes queued
    egress_queue_packets: dict[int, int] = field(default_factory=dict)  # port -> packets queued
    ingress_queue_bytes: dict[tuple[int, int], int] = field(default_factory=dict)  # (port, prio)
    rand32: int = 0  # the uniform 32-bit draw used for the ECN decision
