"""Numbers shared by the P4 program and its controller (and no other data plane).

Drop reasons travel from the switch to the controller as numbers in the packet-in header; clone
sessions and port numbers are agreed on both sides. They are written here once and rendered into
``p4/build/codes.p4`` by ``python -m pyctl.targets.bmv2.codes`` (the P4 build does it), so the P4
source never types them again.
"""

from __future__ import annotations

import sys

from pyctl import constants as C
from pyctl.model import codes as K

CPU_PORT = 255  # simple_switch_grpc --cpu-port; packet-in / packet-out
PACKET_IN_LEN = 6  # octets of the packet-in header (headers.p4 packet_in_t)

# The test harness's veth links: Linux allows an MTU of at most 65535, so a frame of more than
# 65549 octets (an IPv6 packet with a Payload Length above 65495) cannot cross one. Such a frame
# goes in by packet-out and comes out by packet-in (reason 0 with its egress port).
TEST_LINK_MTU = 65535
TEST_LINK_MAX_FRAME = TEST_LINK_MTU + 14
DROP_PORT = 511  # BMv2's default drop port

# Clone sessions (P4Runtime CloneSessionEntry ids). A PFC frame leaves by the port it answers.
REPORT_SESSION = 1  # IFIT report to the collector's port
CPU_SESSION = 2  # test mode: a frame too long for its link, to the controller
PFC_SESSION_BASE = 64  # session PFC_SESSION_BASE + port sends a PFC frame out `port`

# Field lists preserved across clones (@field_list annotations in the P4 metadata).
FIELD_LIST_CLONE = 1
FIELD_LIST_RECIRC = 2  # an End chained into a local SID: the next pass (recirculation)

# What an I2E / E2E clone becomes in egress.
CLONE_KIND_REPORT = 1
CLONE_KIND_PFC = 2
CLONE_KIND_OVERSIZE = 3

# packet_out.mode: how the switch treats a frame the controller sends.
PKTOUT_DIRECT = 0  # out of packet_out.egress_port, no pipeline
PKTOUT_PIPELINE = 1  # through the pipeline as if received on packet_out.in_port

# my_sid's actions set meta.behaviour (Behaviour); 0 is "not a local SID".
B_END = K.B_END
B_END_X = K.B_END_X
B_END_DT4 = K.B_END_DT4
B_END_DT6 = K.B_END_DT6
B_END_DT46 = K.B_END_DT46
B_END_DX4 = K.B_END_DX4
B_END_DX6 = K.B_END_DX6
# node_cfg.flowlabel (FlowLabelMode) and node_cfg.ifit_role / egress_cfg.ifit_role (IFITRole).
FLOWLABEL_HASH = K.FLOWLABEL_HASH
FLOWLABEL_COPY = K.FLOWLABEL_COPY
FLOWLABEL_ZERO = K.FLOWLABEL_ZERO
IFIT_ROLE_NONE = K.IFIT_ROLE_NONE
IFIT_ROLE_HEAD = K.IFIT_ROLE_HEAD
IFIT_ROLE_TRANSIT = K.IFIT_ROLE_TRANSIT
IFIT_ROLE_TAIL = K.IFIT_ROLE_TAIL
# What each word of a node's IOAM record holds (4 bits per word; the P4 program picks word
# 32 * GEN_* of the record it computed, so these are 0..5 in this order).
GEN_HOP_NODE = 0
GEN_PORTS = 1
GEN_SECONDS = 2
GEN_MICROS = 3
GEN_QDEPTH = 4
GEN_ONES = 5
# node_cfg.apn_carrier (APNCarrier): where a headend / marking edge puts the APN option.
APN_CARRIER_HBH = K.APN_CARRIER_HBH
APN_CARRIER_DOH = K.APN_CARRIER_DOH
APN_CARRIER_SRH_TLV = K.APN_CARRIER_SRH_TLV

# FIB address families (fib.family): IPv4 addresses are looked up as ::ffff:a.b.c.d.
FAMILY_IPV4 = 4
FAMILY_IPV6 = 6

# Drop reasons are pyctl.constants.DROP_* (consts.p4: ICPN_DROP_*, names in
# pyctl.targets.reasons); this one is the P4 program's own: a packet beyond a documented limit.
DROP_P4_LIMIT = 250
DROP_P4_LIMIT_NAME = "p4-limit"

# Sizes of the P4 program's registers and header stacks (docs/p4.md "Limits").
IOAM_MAX_NODES = 8  # a head's default-type area: set_ifit_head1..8 (7 empty ones: 4 + 2 + 1)
IOAM_AREA_WORDS = C.IOAM_AREA_MAX_WORDS  # a received trace's area (ioam_empty / ioam_filled)
IOAM_RECORD_WORDS = 25  # the longest node record (trace-type bits 0-21, bits 8-10 wide)
# A head with another trace type (or more default records than set_ifit_headN lay out): its own
# record, and the empty records before it -- every layout one option can hold.
IOAM_GEN_REC_WORDS = IOAM_RECORD_WORDS
IOAM_GEN_ZERO_WORDS = IOAM_AREA_WORDS - 1
APN_MAX_WORDS = 12  # APN-ID words + parameter words in one APN option
# The options (Pad1 and padding included) a received HBH may hold before its first IOAM option
# and after it: each kept apart, in order, so that the HBH leaves as it came (at most 8 each:
# the parser records which ones a tail strips in one octet; powers of two: the parser counts
# below them with a mask, HBH_SLOT_NEXT).
HBH_SLOTS_BEFORE_IOAM = 8
HBH_SLOTS_AFTER_IOAM = 4
# The options a received DOH may hold before its APN option, each kept apart (a DOH's options
# are walked until the first of the APN type; past these, the carried option is unread).
DOH_SLOTS_BEFORE_APN = 8
SRH_TLV_SLOTS = 8  # SRH TLVs walked and validated one by one at a segment endpoint
CMS_MAX_ROWS = 8  # the model's maximum
CMS_MAX_WIDTH = 4096  # registers of 4096 cells per row (BMv2 keeps each cell as a bignum)
ELEPHANT_SLOTS = 4096
IFIT_COUNTER_FLOWS = 1024  # counter index = (FlowMonID % 1024) * 2 + L
# ifit_len_digits: a counter cell's bytes (IPv6 lengths up to 40 + 65535) counted base 16, one
# packet per digit in the cell of its position and value (pyctl.targets.bmv2.counters).
IFIT_LEN_DIGITS = 5
IFIT_LEN_CELLS = 16 * IFIT_LEN_DIGITS
MAGIC_SHIFT_TIME = 80  # floor(t / d) = (t * ceil(2^80 / d)) >> 80 for t < 2^48, d < 2^32
MAGIC_SHIFT_PAUSE = 88  # pause quanta -> µs: numerator < 2^46, line rate < 2^42


def _exported() -> dict[str, int]:
    return {k: v for k, v in globals().items() if k.isupper() and isinstance(v, int)}


def p4_header() -> str:
    lines = [
        "// Generated from pyctl/targets/bmv2/codes.py by"
        " `python -m pyctl.targets.bmv2.codes`; do not edit.",
        "#ifndef ICPN_CODES_P4",
        "#define ICPN_CODES_P4",
    ]
    lines += [f"#define ICPN_{k} {v}" for k, v in _exported().items()]
    lines.append("#endif")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(p4_header())
