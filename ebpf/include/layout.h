/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Map key and value layouts shared with Python.
 *
 * Every struct here is mirrored field for field by ctypes in pyctl/targets/ebpf/maps.py;
 * tests/test_ebpf_loader.py compares the two against the BTF of the built object, so a change
 * here without the matching change there fails the suite. Integer codes (behaviours, flags,
 * sizes) come from the generated icpn_ebpf.h.
 */
#ifndef ICPN_LAYOUT_H
#define ICPN_LAYOUT_H

#include "common.h"

/* Node-wide configuration (one entry). */
struct icpn_cfg {
	__u32 flags;		/* ICPN_CFG_* */
	__u32 node_id;		/* IOAM node id, 24 bits */
	__u8 source[16];	/* outer source of H.Encaps and IFIT reports */
	__u8 collector[16];	/* IFIT tail: report destination */
	__u16 collector_port;
	__u8 flowlabel_mode;	/* ICPN_FLOWLABEL_* */
	__u8 apn_carrier;	/* ICPN_CARRIER_* */
	__u8 apn_opt_type;
	__u8 apn_srh_tlv_type;
	__u8 ifit_role;		/* ICPN_IFIT_* */
	__u8 ioam_node_len;	/* words per node, from the trace type */
	__u8 ioam_max_nodes;
	__u8 n_policies;
	__u8 n_classifiers;
	__u8 n_ifit_flows;
	__u16 ioam_namespace;
	__u8 pfc_default_prio;
	__u8 pfc_xoff_pct;
	__u32 ioam_trace_type;
	__u32 ifit_d_every;
	__u8 pfc_xon_pct;
	__u8 pad0;
	__u16 pfc_pause_time;
	__u32 cms_rows;
	__u32 cms_width;
	__u32 elephant_idle_windows;
	__u64 ifit_period_us;
	__u64 elephant_window_us;
	__u64 elephant_threshold;
	__u64 ecn_kmin_bytes;
	__u64 ecn_kmax_bytes;
	__u64 ecn_pmax_t;	/* floor(pmax * 2^32): the marking threshold scale */
	__u64 line_rate_bps;	/* virtual-queue drain rate and PFC quanta */
	__u64 pfc_buffer_bytes;
	__u32 n_sid_prefixes;	/* local SID prefixes below, or ICPN_SID_PREFIXES_ALL */
	__u32 pad1;
	__u8 sid_prefix[ICPN_MAX_SID_PREFIXES][16];
	__u8 sid_mask[ICPN_MAX_SID_PREFIXES][16];
};

/* A port: its MAC (Ethernet source on egress) and, when attached, its ifindex. */
struct icpn_port {
	__u8 mac[6];
	__u8 valid;
	__u8 pad;
	__u32 ifindex;
};

/* Where a FIB entry or an adjacency sends a packet. */
struct icpn_nexthop {
	__u32 port;
	__u8 mac[6];
	__u8 pad[2];
};

/* LPM keys: prefixlen counts the table id's 32 bits too, so the table is matched exactly. */
struct icpn_fib6_key {
	__u32 prefixlen;
	__u32 table;
	__u8 addr[16];
};

struct icpn_fib4_key {
	__u32 prefixlen;
	__u32 table;
	__u8 addr[4];
};

struct icpn_sid_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* A My-SID table entry. */
struct icpn_sid {
	__u8 behaviour;		/* ICPN_B_* */
	__u8 flavours;		/* ICPN_FL_* bits */
	__u8 block_bits;	/* NEXT-CSID locator block */
	__u8 csid_bits;
	__u32 table;		/* End.DT* lookup table */
	struct icpn_nexthop adj; /* End.X, End.DX* */
};

/* A /128 local SID in its sid_slots entry (valid 0: the slot is empty). */
struct icpn_sid_slot {
	__u8 addr[16];
	struct icpn_sid sid;
	__u32 valid;
};

/* A classifier match. Addresses are 128-bit (IPv4 v4-mapped); a prefix is (net, mask). */
struct icpn_match {
	__u64 src[2];
	__u64 src_mask[2];
	__u64 dst[2];
	__u64 dst_mask[2];
	__u8 apn_id[16];	/* big-endian, right-aligned */
	__u32 fields;		/* ICPN_M_*: the fields that must match */
	__u8 proto;
	__u8 dscp;
	__u8 in_port;
	__u8 family;		/* 4 or 6 when a prefix fixes it, else 0 */
	__u16 sport;
	__u16 dport;
	__u32 pad;
};

/* An APN mark: the option data exactly as it goes on the wire, and the id for comparisons. */
struct icpn_apn_mark {
	__u8 id[16];		/* big-endian, right-aligned */
	__u8 data[ICPN_APN_DATA_MAX]; /* id_type, flags, para_type, APN-ID, parameters */
	__u8 data_len;
	__u8 id_len;		/* 4, 8 or 16 */
	__u8 pad[2];
};

struct icpn_classifier {
	struct icpn_match match;
	struct icpn_apn_mark mark;
};

struct icpn_policy {
	struct icpn_match match;
	__u32 n_buckets;
	__u8 deep_hash;
	__u8 n_lists;
	__u8 pad[2];
};

/* One SID list of a policy, precomputed for its encapsulation mode. */
struct icpn_sidlist {
	__u8 da[16];		/* outer destination: S1 */
	__u8 segs[ICPN_MAX_SEGMENTS][16]; /* SRH Segment List in wire order, List[0] first */
	__u8 n_segs;		/* entries in the SRH; 0 = no SRH (H.Encaps.Red, one SID) */
	__u8 n_total;		/* segments of the SID list: SL = n_total - 1 */
	__u8 resolved;		/* nh is the FIB's next hop for da (table 0), found by the writer */
	__u8 pad[5];
	struct icpn_nexthop nh;
};

struct icpn_ifit_flow {
	struct icpn_match match;
	__u32 flowmon_id;
	__u32 pad;
};

/* Head: packets of a FlowMonID seen in the current colour period (for the D flag). */
struct icpn_ifit_period {
	__u64 period;
	__u64 count;
};

struct icpn_ifit_ckey {
	__u32 flowmon_id;
	__u32 color;
};

struct icpn_counter {
	__u64 packets;
	__u64 bytes;
};

/* A per-CPU IFIT counter slot; count.packets 0: not taken yet on this CPU. */
struct icpn_ifit_slot {
	struct icpn_ifit_ckey key;
	struct icpn_counter count;
};

/* Count-min cell; a cell of an older epoch reads as zero (a lazy reset at each new window). */
struct icpn_cms_cell {
	__u64 epoch;
	__u64 bytes;
};

/* The measurement window the sketch counts, and its epoch (bumped at every window change). */
struct icpn_el_state {
	__u64 window;
	__u64 epoch;
};

struct icpn_flow_key {
	__u8 b[ICPN_FLOW_KEY_LEN];
	__u8 pad[40 - ICPN_FLOW_KEY_LEN];
};

struct icpn_elephant {
	__u64 last_window;	/* the last window a packet of the flow was seen in */
	__u64 elephant;		/* 1 once its estimate reached the threshold */
};

/* Virtual queue of a port (live mode): the kernel time (ns) at which the bytes queued so far
 * will have left at the port's line rate; the depth a packet finds is (busy_until - now) * rate.
 * One word, so that every CPU updates it with one compare-and-swap. */
struct icpn_vqueue {
	__u64 busy_until_ns;
};

/* A port's line (live mode): the virtual queue drains at rate_bps (0: cfg.line_rate_bps) and
 * a packet that would take it past limit_bytes is dropped (0: no limit). */
struct icpn_port_shape {
	__u64 rate_bps;
	__u64 limit_bytes;
};

/* Per-port egress counters (per CPU). */
struct icpn_port_stats {
	__u64 tx_packets;	/* forwarded out of the port */
	__u64 tx_bytes;
	__u64 queue_drops;	/* live: tail-dropped, the virtual queue was full */
	__u64 queue_drop_bytes;
	__u64 ce_marked;	/* ECN CE set by this node on the way out */
};

/* PFC state of (port, priority). */
struct icpn_pfc_state {
	__u64 paused_until_us;	/* egress: do not send this priority before then */
	__u32 xoff_sent;	/* ingress: we told the neighbour to pause */
	__u32 pad;
};

/* Live capture: a frame as it arrived on (dir ICPN_TAP_IN) or left (ICPN_TAP_OUT) a port whose
 * tap_ports entry is set; data holds its first caplen octets. The ring gets the header and the
 * caplen octets only. */
struct icpn_tap {
	__u32 port;
	__u32 dir;
	__u32 len;
	__u32 caplen;
	__u8 data[ICPN_TAP_SNAP];
};

/* Test mode: what PacketContext supplies instead of clocks, queues and randomness. */
struct icpn_test_ctx {
	__u64 time_us;
	__u32 rand32;
	__u32 in_port;
	__u64 egress_queue_bytes[ICPN_MAX_PORTS];
	__u64 egress_queue_packets[ICPN_MAX_PORTS];
	__u64 ingress_queue_bytes[ICPN_MAX_PORTS * ICPN_PRIORITIES];
};

/* Test mode: what happened to the last frame (data_out holds the frame itself). */
struct icpn_verdict {
	__u32 action;		/* ICPN_ACT_* */
	__u32 port;		/* egress port when forwarded */
	__u32 drop;		/* DROP_* reason when dropped */
	__u32 n_aux;		/* frames pushed to aux_out */
};

/* icpn_host_apn's settings (one entry). */
struct icpn_host_cfg {
	__u8 carrier;		/* ICPN_CARRIER_HBH or ICPN_CARRIER_DOH */
	__u8 opt_type;
	__u8 pad[2];
	__u32 n_marked;		/* packets it marked */
};

/* An extra frame the node emits (IFIT report, PFC frame), for the agent or the test harness. */
struct icpn_frame {
	__u32 port;
	__u32 len;
	__u8 data[ICPN_AUX_FRAME_MAX];
};

#endif
