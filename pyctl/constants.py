"""Wire constants shared by every data plane.

This module is the single place they are written. `make build` renders it into
`ebpf/build/icpn_consts.h` (``python -m pyctl.constants c``) so the C code never types them
again, and the P4 build renders `p4/build/consts.p4` the same way (``python -m pyctl.constants
p4``; committed with the P4 artefacts).
"""

from __future__ import annotations

import sys

# SRv6 (RFC 8754 / RFC 8986)
IPPROTO_HOPOPTS = 0
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_DSTOPTS = 60
IPPROTO_NONE = 59
IPPROTO_IPV6 = 41
IPPROTO_IPIP = 4
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58
SRH_ROUTING_TYPE = 4
SRH_TLV_PAD1 = 0
SRH_TLV_PADN = 4
SRH_TLV_HMAC = 5
MAX_SEGMENTS = 8  # bound of every segment stack (P4 header stack, eBPF loops)
CSID_BLOCK_BITS = 32
CSID_BITS = 16

# APN (SPEC section 2)
APN_OPT_TYPE_DEFAULT = 0x1E
APN_SRH_TLV_TYPE_DEFAULT = 124
APN_ID_TYPE_32 = 1
APN_ID_TYPE_64 = 2
APN_ID_TYPE_128 = 3

# IFIT (SPEC section 3)
IOAM_OPT_TYPE = 0x31
ALTMARK_OPT_TYPE = 0x12
IOAM_TRACE_TYPE_DEFAULT = 0xF20000  # bits 0,1,2,3,6 (bit 0 = MSB of the 24-bit field)
IOAM_MAX_NODES_DEFAULT = 8
IOAM_AREA_MAX_WORDS = 61  # an option's data is at most 255 octets: 10 + 4 x 61 (RFC 9486 2)
IOAM_OVERFLOW_FLAG = 0x0400
IFIT_REPORT_PORT = 5391
IFIT_PERIOD_US_DEFAULT = 1_000_000
IFIT_D_EVERY_DEFAULT = 64

# Elephants and deep hashing (SPEC section 4)
ROCEV2_UDP_PORT = 4791
CMS_ROWS_DEFAULT = 3
CMS_WIDTH_DEFAULT = 1024
ELEPHANT_WINDOW_US_DEFAULT = 100_000
ELEPHANT_THRESHOLD_BYTES_DEFAULT = 1_000_000
ELEPHANT_IDLE_WINDOWS_DEFAULT = 2
POLICY_BUCKETS_DEFAULT = 64
FLOW_KEY_LEN = 37

# Congestion (SPEC section 5)
ECN_CE = 0b11
PFC_ETHERTYPE = 0x8808
PFC_DST_MAC = 0x0180C2000001  # IEEE 802.3 Annex 31B MAC Control group address
PFC_OPCODE = 0x0101
PFC_PAUSE_MAX = 0xFFFF

# Sizes every data plane bounds its loops and tables with.
MAX_PORTS = 64
MAX_SID_LISTS = 8
MAX_PARAMS = 4


# Link layer and IPv6 option padding (RFC 8200 4.2)
ETH_HLEN = 14  # Ethernet II header: a full-size frame is MTU + ETH_HLEN bytes on a link
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
IPV6_OPT_PAD1 = 0
IPV6_OPT_PADN = 1
MAX_EXT_HEADERS = 4  # extension headers walked per IPv6 header (docs/pipeline.md 1.3)
IFIT_REPORT_VERSION = 1
IFIT_REPORT_HOP_LIMIT = 64  # hop limit of an IFIT report as it leaves the tail

# Drop reasons (docs/pipeline.md); `pyctl.targets.reasons` maps them to the names in results.
DROP_NOT_IP = 1
DROP_BAD_IPV6 = 2
DROP_BAD_IPV4 = 3
DROP_BAD_EXTHDR = 4
DROP_BAD_SRH = 5
DROP_BAD_SRH_LE = 6
DROP_BAD_SRH_SL = 7
DROP_HOP_LIMIT = 8
DROP_SL_ZERO = 9
DROP_SL_NONZERO = 10
DROP_NO_SRH = 11
DROP_BAD_INNER = 12
DROP_NO_ROUTE = 13
DROP_ECN_NOT_ECT_CE = 14
DROP_PFC_CONSUMED = 15
DROP_PFC_HELD = 16
DROP_TOO_BIG = 17
DROP_NOT_FOR_ME = 18
DROP_LINK_LOCAL = 19
DROP_SID_LOOP = 20
MAX_SID_PASSES = 8  # local SIDs chained in one node (End -> End.DT6 ...) before sid-loop


# Python's alone, not rendered: C has <linux/if_ether.h>'s ETH_HLEN and P4 sizes its header
# types, so a copy there would be a second definition.
_PYTHON_ONLY = frozenset({"ETH_HLEN"})


def _exported() -> dict[str, int]:
    return {
        k: v
        for k, v in globals().items()
        if k.isupper() and isinstance(v, int) and k not in _PYTHON_ONLY
    }


def c_header() -> str:
    """The constants as a C header for the eBPF programs."""
    lines = [
        "/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */",
        "/* Generated from pyctl/constants.py by `python -m pyctl.constants c`; do not edit. */",
        "#ifndef ICPN_CONSTS_H",
        "#define ICPN_CONSTS_H",
    ]
    lines += [f"#define ICPN_{k} {v:#x}" for k, v in _exported().items()]
    lines.append("#endif")
    return "\n".join(lines) + "\n"


def p4_header() -> str:
    """The constants as P4_16 ``const`` declarations."""
    lines = [
        "// Generated from pyctl/constants.py by `python -m pyctl.constants p4`; do not edit.",
        "#ifndef ICPN_CONSTS_P4",
        "#define ICPN_CONSTS_P4",
    ]
    lines += [f"#define ICPN_{k} {v:#x}" for k, v in _exported().items()]
    lines.append("#endif")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    kind = sys.argv[1] if len(sys.argv) > 1 else "c"
    if kind not in ("c", "p4"):
        sys.exit(f"usage: python -m pyctl.constants [c|p4]  (got {kind!r})")
    sys.stdout.write(c_header() if kind == "c" else p4_header())
