"""scapy layers for the wire formats of SPEC.md that scapy lacks or gets wrong.

Importing this package registers everything with scapy (its own idiom: the option-type table
of ``scapy.layers.inet6``, the SRH TLV table, ``bind_layers``), so plain scapy dissection finds
the new layers:

* `APNOption` (HBH / Destination option 0x1E, see `register_apn_option_type`),
  `IOAMTraceOption` (0x31), `AltMarkOption` (0x12);
* `SRHTLVAPN` (SRH TLV 124) and `SRHTLVHMAC` (SRH TLV 5, replacing scapy's broken one);
* `IFITReport` on UDP port 5391, `PFC` on EtherType 0x8808, RoCEv2 BTH on UDP 4791 (scapy
  contrib) with `roce_packet` / `cnp_for` / `roce_flow_key`;
* `pyctl.packets.validate`: byte-level checks that return human-readable problems.

Dissecting an IOAM-stamped SRv6 packet::

    from scapy.layers.l2 import Ether
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop, IPv6ExtHdrSegmentRouting
    from pyctl.packets import AltMarkOption, APNOption, IOAMTraceOption, validate_packet

    pkt = Ether(frame)                        # frame: bytes captured on a link
    assert not validate_packet(frame)         # [] when every length and field is consistent
    hbh = pkt[IPv6ExtHdrHopByHop]
    trace = next(o for o in hbh.options if isinstance(o, IOAMTraceOption))
    for hop in trace.records():               # most recent hop first
        print(hop.node_id, hop.ingress_if, hop.egress_if, hop.ts_sec, hop.queue_depth)
    print(trace.path(), trace.flags.overflow)
    mark = next(o for o in hbh.options if isinstance(o, AltMarkOption))
    print(mark.flowmon_id, mark.L, mark.D)
    srh = pkt[IPv6ExtHdrSegmentRouting]
    print(srh.segleft, srh.addresses)         # addresses[0] is the last segment

Building one (HBH options are padded by scapy: PadN before the IOAM option so that it starts
on 4n, PadN at the end to reach a multiple of 8)::

    from scapy.layers.inet import UDP
    from pyctl.packets import IOAMNodeRecord, apn_id_from_groups, ioam_trace_option

    trace = ioam_trace_option(namespace_id=1, max_nodes=8)
    trace.stamp(IOAMNodeRecord(hop_limit=63, node_id=1, ingress_if=1, egress_if=2,
                               ts_sec=0, ts_subsec=0, queue_depth=0))
    pkt = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
           / IPv6(src="2001:db8::1", dst="fc00:2::")
           / IPv6ExtHdrHopByHop(options=[APNOption(apn_id=apn_id_from_groups(7, 1)),
                                         AltMarkOption(flowmon_id=5), trace])
           / IPv6ExtHdrSegmentRouting(addresses=["fc00:3::", "fc00:2::"], segleft=1)
           / IPv6(src="10::1", dst="20::1") / UDP(dport=9000))
"""

from pyctl.packets.altmark import ALTMARK_OPTION_TYPE, AltMarkOption
from pyctl.packets.apn import (
    APN_GROUP_SPLIT,
    APN_ID_TYPE_32,
    APN_ID_TYPE_64,
    APN_ID_TYPE_128,
    APN_ID_WIDTH,
    APN_OPTION_TYPE,
    APN_PARA_BANDWIDTH,
    APN_PARA_JITTER,
    APN_PARA_LATENCY,
    APN_PARA_LOSS,
    APNOption,
    apn_groups,
    apn_id_from_groups,
    apn_option_types,
    para_count,
    register_apn_option_type,
    unregister_apn_option_type,
)
from pyctl.packets.ifit_report import (
    IFIT_FAMILY_IPV4,
    IFIT_FAMILY_IPV6,
    IFIT_FLAG_COUNTERS,
    IFIT_REPORT_PORT,
    IFITReport,
    ifit_report_ports,
    register_ifit_report_port,
    unregister_ifit_report_port,
)
from pyctl.packets.ioam import (
    IOAM_OPTION_TYPE,
    IOAM_OVERFLOW_FLAG,
    TRACE_TYPE_DEFAULT,
    IOAMNodeRecord,
    IOAMTraceOption,
    ioam_trace_option,
    node_len_for,
    parse_node_data,
    trace_type_from_bits,
)
from pyctl.packets.pfc import PFC, PFC_DST_MAC, PFC_ETHERTYPE, PFC_OPCODE, pfc_frame
from pyctl.packets.roce import (
    BTH,
    ROCE_V2_PORT,
    RoCEFlowKey,
    cnp_for,
    roce_dest_qp,
    roce_flow_key,
    roce_packet,
)
from pyctl.packets.srh import (
    SRH_TLV_APN,
    SRH_TLV_HMAC,
    SRHTLVAPN,
    SRHTLVHMAC,
    register_srh_apn_tlv_type,
    srh_apn_tlv_types,
    unregister_srh_apn_tlv_type,
)
from pyctl.packets.validate import (
    validate_altmark,
    validate_apn,
    validate_ifit_report,
    validate_ioam,
    validate_packet,
    validate_srh,
)

__all__ = [
    "ALTMARK_OPTION_TYPE",
    "APN_GROUP_SPLIT",
    "APN_ID_TYPE_128",
    "APN_ID_TYPE_32",
    "APN_ID_TYPE_64",
    "APN_ID_WIDTH",
    "APN_OPTION_TYPE",
    "APN_PARA_BANDWIDTH",
    "APN_PARA_JITTER",
    "APN_PARA_LATENCY",
    "APN_PARA_LOSS",
    "BTH",
    "IFIT_FAMILY_IPV4",
    "IFIT_FAMILY_IPV6",
    "IFIT_FLAG_COUNTERS",
    "IFIT_REPORT_PORT",
    "IOAM_OPTION_TYPE",
    "IOAM_OVERFLOW_FLAG",
    "PFC",
    "PFC_DST_MAC",
    "PFC_ETHERTYPE",
    "PFC_OPCODE",
    "ROCE_V2_PORT",
    "SRHTLVAPN",
    "SRHTLVHMAC",
    "SRH_TLV_APN",
    "SRH_TLV_HMAC",
    "TRACE_TYPE_DEFAULT",
    "APNOption",
    "AltMarkOption",
    "IFITReport",
    "IOAMNodeRecord",
    "IOAMTraceOption",
    "RoCEFlowKey",
    "apn_groups",
    "apn_id_from_groups",
    "apn_option_types",
    "cnp_for",
    "ioam_trace_option",
    "node_len_for",
    "para_count",
    "parse_node_data",
    "pfc_frame",
    "register_apn_option_type",
    "register_ifit_report_port",
    "register_srh_apn_tlv_type",
    "roce_dest_qp",
    "roce_flow_key",
    "roce_packet",
    "srh_apn_tlv_types",
    "trace_type_from_bits",
    "unregister_apn_option_type",
    "unregister_ifit_report_port",
    "ifit_report_ports",
    "unregister_srh_apn_tlv_type",
    "validate_altmark",
    "validate_apn",
    "validate_ifit_report",
    "validate_ioam",
    "validate_packet",
    "validate_srh",
]
