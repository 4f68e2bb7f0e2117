"""Map layouts of the eBPF data plane, mirrored from ebpf/include/layout.h, and the codes they use.

The C structs are the definition; the ctypes classes below mirror them field for field (same
names, same order) and tests/test_ebpf_loader.py checks sizes and offsets against the BTF of the
built object. The integer codes (behaviours, flags, table sizes) are defined here once and
rendered into ebpf/build/icpn_ebpf.h by `c_header()` (ebpf/Makefile).
"""

from __future__ import annotations

import ctypes
import sys
import zlib
from typing import TypeVar

from pyctl import constants as C
from pyctl.model import codes as K

# --- codes shared with the C programs (rendered as ICPN_<NAME>) -------------------------------

# verdict.action
ACT_FORWARD = 1
ACT_DROP = 2
ACT_PASS = 3
# cfg.flags
CFG_TEST_MODE = 1 << 0
CFG_FIB_HELPER = 1 << 1
CFG_ELEPHANT = 1 << 2
CFG_ECN = 1 << 3
CFG_PFC = 1 << 4
CFG_APN_KEEP = 1 << 5
CFG_PFC_PRIO_DSCP = 1 << 6
# the node classifies (flow key, APN-ID, elephants): it has something that reads them
CFG_CLASSIFY = 1 << 7
# icpn_sid.behaviour
B_END = K.B_END
B_END_X = K.B_END_X
B_END_DT4 = K.B_END_DT4
B_END_DT6 = K.B_END_DT6
B_END_DT46 = K.B_END_DT46
B_END_DX4 = K.B_END_DX4
B_END_DX6 = K.B_END_DX6
# icpn_sid.flavours
FL_PSP = K.FL_PSP
FL_NEXT_CSID = K.FL_NEXT_CSID
# cfg.flowlabel_mode
FLOWLABEL_HASH = K.FLOWLABEL_HASH
FLOWLABEL_COPY = K.FLOWLABEL_COPY
FLOWLABEL_ZERO = K.FLOWLABEL_ZERO
# cfg.apn_carrier
CARRIER_HBH = K.APN_CARRIER_HBH
CARRIER_DOH = K.APN_CARRIER_DOH
CARRIER_SRH_TLV = K.APN_CARRIER_SRH_TLV
# cfg.ifit_role
IFIT_NONE = K.IFIT_ROLE_NONE
IFIT_HEAD = K.IFIT_ROLE_HEAD
IFIT_TRANSIT = K.IFIT_ROLE_TRANSIT
IFIT_TAIL = K.IFIT_ROLE_TAIL
# icpn_match.fields
M_SRC = 1 << 0
M_DST = 1 << 1
M_PROTO = 1 << 2
M_SPORT = 1 << 3
M_DPORT = 1 << 4
M_DSCP = 1 << 5
M_IN_PORT = 1 << 6
M_APN_ID = 1 << 7
# hashing: CRC-32 IEEE, reflected polynomial (zlib.crc32, pyctl.model.hashing.crc32)
CRC32_POLY = 0xEDB88320
# table sizes
PRIORITIES = 8
MAX_ROUTES = 4096
MAX_SIDS = 1024
# cfg carries up to this many local SID prefixes so that a destination outside all of them
# skips the My-SID LPM lookup; SID_PREFIXES_ALL: more than that, look every destination up
MAX_SID_PREFIXES = 8
# /128 SIDs also sit in a direct-mapped array in front of the My-SID trie (inlined lookup); the
# slot is the top SID_SLOT_BITS bits of (address high half XOR low half) * SLOT_HASH_MUL
# (Fibonacci hashing: every address bit reaches them; SIDs often differ in the last octet only)
SID_SLOT_BITS = 10
SID_SLOTS = 1 << SID_SLOT_BITS
SLOT_HASH_MUL = 0x9E3779B97F4A7C15
# IFIT counters: a per-CPU direct-mapped array by (FlowMonID * 2 + L), the hash for the rest
IFIT_SLOTS = 1024
SID_PREFIXES_ALL = 0xFFFFFFFF
# ifindexes below this map to ports through an array (inlined lookup), the rest through a hash
IFINDEX_FAST = 4096
MAX_POLICIES = 16
MAX_BUCKETS = 4096
MAX_CLASSIFIERS = 32
MAX_QPS = 4096
MAX_IFIT_FLOWS = 32
MAX_FLOWS = 65536
MAX_CMS_ROWS = 8
MAX_CMS_WIDTH = 65536
CMS_CELLS = MAX_CMS_ROWS * MAX_CMS_WIDTH
APN_DATA_MAX = 36
AUX_FRAME_MAX = 512
AUX_QUEUE_LEN = 64
MAX_SOCKET_MARKS = 1024
# live capture (tap_ports, taps): snap length, ring size (a power-of-2 number of pages), dir
TAP_SNAP = 2048
# 256 KiB: about 120 full-size snaps or 2,000 small frames between two reads by the node's agent
# (woken per record); half of the 512 KiB it was, which was a third of a node's kernel memory
TAP_RING_BYTES = 1 << 18
TAP_IN = 0
TAP_OUT = 1
# stats map: index STAT_DROP_BASE + drop code counts drops of that reason
STAT_RX = 0
STAT_FORWARD = 1
STAT_AUX = 2
STAT_AUX_LOST = 3
# packets the End fast path forwarded (icpn_node.bpf.c fast_end), a subset of STAT_FORWARD
STAT_FAST_END = 4
STAT_DROP_BASE = 16
N_STATS = 64
# Drops that are not contract reasons (pyctl/targets/reasons.py names them; a conformance vector
# never expects them). internal-error: a helper or a write failed on a packet the contract
# handles (the node's fault, not the input's: ebpf/README.md); test runs can produce it.
DROP_INTERNAL = 30
# Live only (test runs never produce it): the egress port's virtual queue is full (tail drop at
# the port's buffer). Counted at STAT_DROP_BASE + 31.
DROP_QUEUE_FULL = 31


def _codes() -> dict[str, int]:
    return {
        k: v
        for k, v in globals().items()
        if k.isupper() and isinstance(v, int) and not k.startswith("_")
    }


def crc32_tables() -> list[list[int]]:
    """Slicing-by-4 tables: entry n of table k is the CRC state after byte n and k zero bytes."""
    t0 = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ (CRC32_POLY if c & 1 else 0)
        t0.append(c)
    tables = [t0]
    for _ in range(3):
        prev = tables[-1]
        tables.append([(prev[n] >> 8) ^ t0[prev[n] & 0xFF] for n in range(256)])
    return tables


def cms_row_xor() -> list[int]:
    """CRC-32 is affine: crc32(row || key) == crc32(key) ^ cms_row_xor()[row] for any key of
    FLOW_KEY_LEN bytes, so the count-min rows of SPEC 4 need one CRC of the key, not one a row."""
    n = C.FLOW_KEY_LEN
    zero = zlib.crc32(bytes(n))
    return [zlib.crc32(bytes([r]) + bytes(n)) ^ zero for r in range(MAX_CMS_ROWS)]


def _c_array(name: str, values: list[int]) -> list[str]:
    rows = [", ".join(f"{v:#010x}" for v in values[i : i + 6]) for i in range(0, len(values), 6)]
    # explicitly in .rodata: clang would put a 32-byte array in .rodata.cst32, which the BTF of
    # .rodata then misdescribes and the kernel refuses
    head = f'static const __u32 {name}[{len(values)}] __attribute__((section(".rodata"))) = {{'
    return [head, *(f"\t{r}," for r in rows), "};"]


def c_header() -> str:
    lines = [
        "/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */",
        "/* Generated from pyctl/targets/ebpf/maps.py; do not edit. */",
        "#ifndef ICPN_EBPF_H",
        "#define ICPN_EBPF_H",
    ]
    lines += [f"#define ICPN_{k} {v:#x}" for k, v in _codes().items()]
    for k, table in enumerate(crc32_tables()):
        lines += _c_array(f"icpn_crc32_t{k}", table)
    lines += _c_array("icpn_cms_row_xor", cms_row_xor())
    lines.append("#endif")
    return "\n".join(lines) + "\n"


# --- ctypes mirrors of layout.h -----------------------------------------------------------------

u8, u16, u32, u64 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_uint64


class CStruct(ctypes.Structure):
    """A mirror of a struct of layout.h; `_c_name_` is its C name (for the BTF check)."""

    _c_name_: str = ""


S = TypeVar("S", bound=CStruct)


def per_cpu(raw: bytes | None, cls: type[S]) -> list[S]:
    """The values of a per-CPU map entry, one a CPU (the kernel pads each to 8 octets)."""
    if raw is None:
        return []
    stride = (ctypes.sizeof(cls) + 7) // 8 * 8
    return [cls.from_buffer_copy(raw, i * stride) for i in range(len(raw) // stride)]


class Cfg(CStruct):
    _c_name_ = "icpn_cfg"
    _fields_ = [
        ("flags", u32),
        ("node_id", u32),
        ("source", u8 * 16),
        ("collector", u8 * 16),
        ("collector_port", u16),
        ("flowlabel_mode", u8),
        ("apn_carrier", u8),
        ("apn_opt_type", u8),
        ("apn_srh_tlv_type", u8),
        ("ifit_role", u8),
        ("ioam_node_len", u8),
        ("ioam_max_nodes", u8),
        ("n_policies", u8),
        ("n_classifiers", u8),
        ("n_ifit_flows", u8),
        ("ioam_namespace", u16),
        ("pfc_default_prio", u8),
        ("pfc_xoff_pct", u8),
        ("ioam_trace_type", u32),
        ("ifit_d_every", u32),
        ("pfc_xon_pct", u8),
        ("pad0", u8),
        ("pfc_pause_time", u16),
        ("cms_rows", u32),
        ("cms_width", u32),
        ("elephant_idle_windows", u32),
        ("ifit_period_us", u64),
        ("elephant_window_us", u64),
        ("elephant_threshold", u64),
        ("ecn_kmin_bytes", u64),
        ("ecn_kmax_bytes", u64),
        ("ecn_pmax_t", u64),
        ("line_rate_bps", u64),
        ("pfc_buffer_bytes", u64),
        ("n_sid_prefixes", u32),
        ("pad1", u32),
        ("sid_prefix", (u8 * 16) * MAX_SID_PREFIXES),
        ("sid_mask", (u8 * 16) * MAX_SID_PREFIXES),
    ]


class Port(CStruct):
    _c_name_ = "icpn_port"
    _fields_ = [("mac", u8 * 6), ("valid", u8), ("pad", u8), ("ifindex", u32)]


class Nexthop(CStruct):
    _c_name_ = "icpn_nexthop"
    _fields_ = [("port", u32), ("mac", u8 * 6), ("pad", u8 * 2)]


class Fib6Key(CStruct):
    _c_name_ = "icpn_fib6_key"
    _fields_ = [("prefixlen", u32), ("table", u32), ("addr", u8 * 16)]


class Fib4Key(CStruct):
    _c_name_ = "icpn_fib4_key"
    _fields_ = [("prefixlen", u32), ("table", u32), ("addr", u8 * 4)]


class SIDKey(CStruct):
    _c_name_ = "icpn_sid_key"
    _fields_ = [("prefixlen", u32), ("addr", u8 * 16)]


class SID(CStruct):
    _c_name_ = "icpn_sid"
    _fields_ = [
        ("behaviour", u8),
        ("flavours", u8),
        ("block_bits", u8),
        ("csid_bits", u8),
        ("table", u32),
        ("adj", Nexthop),
    ]


class SIDSlot(CStruct):
    _c_name_ = "icpn_sid_slot"
    _fields_ = [("addr", u8 * 16), ("sid", SID), ("valid", u32)]


def sid_slot(addr: bytes) -> int:
    """The sid_slots index of a 16-octet address (maps.h sid_slot_of: the two halves as the CPU
    loads them, XORed, then Fibonacci-hashed to SID_SLOT_BITS)."""
    w = int.from_bytes(addr[:8], sys.byteorder) ^ int.from_bytes(addr[8:], sys.byteorder)
    return ((w * SLOT_HASH_MUL) & 0xFFFF_FFFF_FFFF_FFFF) >> (64 - SID_SLOT_BITS)


class Match(CStruct):
    _c_name_ = "icpn_match"
    _fields_ = [
        ("src", u64 * 2),
        ("src_mask", u64 * 2),
        ("dst", u64 * 2),
        ("dst_mask", u64 * 2),
        ("apn_id", u8 * 16),
        ("fields", u32),
        ("proto", u8),
        ("dscp", u8),
        ("in_port", u8),
        ("family", u8),
        ("sport", u16),
        ("dport", u16),
        ("pad", u32),
    ]


class APNMark(CStruct):
    _c_name_ = "icpn_apn_mark"
    _fields_ = [
        ("id", u8 * 16),
        ("data", u8 * APN_DATA_MAX),
        ("data_len", u8),
        ("id_len", u8),
        ("pad", u8 * 2),
    ]


class Classifier(CStruct):
    _c_name_ = "icpn_classifier"
    _fields_ = [("match", Match), ("mark", APNMark)]


class Policy(CStruct):
    _c_name_ = "icpn_policy"
    _fields_ = [
        ("match", Match),
        ("n_buckets", u32),
        ("deep_hash", u8),
        ("n_lists", u8),
        ("pad", u8 * 2),
    ]


class SIDList(CStruct):
    _c_name_ = "icpn_sidlist"
    _fields_ = [
        ("da", u8 * 16),
        ("segs", (u8 * 16) * C.MAX_SEGMENTS),
        ("n_segs", u8),
        ("n_total", u8),
        ("resolved", u8),
        ("pad", u8 * 5),
        ("nh", Nexthop),
    ]


class IFITFlow(CStruct):
    _c_name_ = "icpn_ifit_flow"
    _fields_ = [("match", Match), ("flowmon_id", u32), ("pad", u32)]


class IFITPeriod(CStruct):
    _c_name_ = "icpn_ifit_period"
    _fields_ = [("period", u64), ("count", u64)]


class IFITCounterKey(CStruct):
    _c_name_ = "icpn_ifit_ckey"
    _fields_ = [("flowmon_id", u32), ("color", u32)]


class Counter(CStruct):
    _c_name_ = "icpn_counter"
    _fields_ = [("packets", u64), ("bytes", u64)]


class IFITSlot(CStruct):
    _c_name_ = "icpn_ifit_slot"
    _fields_ = [("key", IFITCounterKey), ("count", Counter)]


class CMSCell(CStruct):
    _c_name_ = "icpn_cms_cell"
    _fields_ = [("epoch", u64), ("bytes", u64)]


class ElephantState(CStruct):
    _c_name_ = "icpn_el_state"
    _fields_ = [("window", u64), ("epoch", u64)]


class FlowKey(CStruct):
    _c_name_ = "icpn_flow_key"
    _fields_ = [("b", u8 * C.FLOW_KEY_LEN), ("pad", u8 * (40 - C.FLOW_KEY_LEN))]


class Elephant(CStruct):
    _c_name_ = "icpn_elephant"
    _fields_ = [("last_window", u64), ("elephant", u64)]


class VQueue(CStruct):
    _c_name_ = "icpn_vqueue"
    _fields_ = [("busy_until_ns", u64)]


class PortShape(CStruct):
    _c_name_ = "icpn_port_shape"
    _fields_ = [("rate_bps", u64), ("limit_bytes", u64)]


class PortStats(CStruct):
    _c_name_ = "icpn_port_stats"
    _fields_ = [
        ("tx_packets", u64),
        ("tx_bytes", u64),
        ("queue_drops", u64),
        ("queue_drop_bytes", u64),
        ("ce_marked", u64),
    ]


class PFCState(CStruct):
    _c_name_ = "icpn_pfc_state"
    _fields_ = [("paused_until_us", u64), ("xoff_sent", u32), ("pad", u32)]


class Tap(CStruct):
    _c_name_ = "icpn_tap"
    _fields_ = [
        ("port", u32),
        ("dir", u32),
        ("len", u32),
        ("caplen", u32),
        ("data", u8 * TAP_SNAP),
    ]


TAP_HEADER = Tap.data.offset


class TestCtx(CStruct):
    _c_name_ = "icpn_test_ctx"
    _fields_ = [
        ("time_us", u64),
        ("rand32", u32),
        ("in_port", u32),
        ("egress_queue_bytes", u64 * C.MAX_PORTS),
        ("egress_queue_packets", u64 * C.MAX_PORTS),
        ("ingress_queue_bytes", u64 * (C.MAX_PORTS * PRIORITIES)),
    ]


class Verdict(CStruct):
    _c_name_ = "icpn_verdict"
    _fields_ = [("action", u32), ("port", u32), ("drop", u32), ("n_aux", u32)]


class HostCfg(CStruct):
    _c_name_ = "icpn_host_cfg"
    _fields_ = [("carrier", u8), ("opt_type", u8), ("pad", u8 * 2), ("n_marked", u32)]


class Frame(CStruct):
    _c_name_ = "icpn_frame"
    _fields_ = [("port", u32), ("len", u32), ("data", u8 * AUX_FRAME_MAX)]


STRUCTS: tuple[type[CStruct], ...] = (
    Cfg,
    Port,
    Nexthop,
    Fib6Key,
    Fib4Key,
    SIDKey,
    SID,
    SIDSlot,
    IFITSlot,
    Match,
    APNMark,
    Classifier,
    Policy,
    SIDList,
    IFITFlow,
    IFITPeriod,
    IFITCounterKey,
    Counter,
    CMSCell,
    ElephantState,
    FlowKey,
    Elephant,
    VQueue,
    PortShape,
    PortStats,
    PFCState,
    Tap,
    TestCtx,
    Verdict,
    HostCfg,
    Frame,
)


def u32_key(i: int) -> bytes:
    return i.to_bytes(4, sys.byteorder)
