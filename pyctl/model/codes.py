"""The node model's enumerations as the numbers every data plane's tables carry.

Written once: the eBPF map layouts (pyctl.targets.ebpf.maps, rendered into icpn_ebpf.h) and the
P4 program's controller codes (pyctl.targets.bmv2.codes, rendered into codes.p4) take them from
here, under the names their own sources use.
"""

from __future__ import annotations

# local SID behaviours (Behaviour)
B_END = 1
B_END_X = 2
B_END_DT4 = 3
B_END_DT6 = 4
B_END_DT46 = 5
B_END_DX4 = 6
B_END_DX6 = 7
# SID flavours (Flavour), a bit each
FL_PSP = 1 << 0
FL_NEXT_CSID = 1 << 1
# outer flow label of an encapsulation (FlowLabelMode)
FLOWLABEL_HASH = 0
FLOWLABEL_COPY = 1
FLOWLABEL_ZERO = 2
# where an APN option goes (APNCarrier)
APN_CARRIER_HBH = 0
APN_CARRIER_DOH = 1
APN_CARRIER_SRH_TLV = 2
# a node's IFIT role (IFITRole)
IFIT_ROLE_NONE = 0
IFIT_ROLE_HEAD = 1
IFIT_ROLE_TRANSIT = 2
IFIT_ROLE_TAIL = 3
