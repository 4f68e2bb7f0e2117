/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Per-packet working state of the node program, kept in a per-CPU scratch map (the BPF stack is
 * 512 bytes for the whole call chain), and the result codes its stages return. */
#ifndef ICPN_STATE_H
#define ICPN_STATE_H

#include "maps.h"
#include "parsing.h"
#include "pktops.h"

/* Largest IPv6 option data (8-bit Opt Data Len) and a node's IOAM record (bits 0-21). */
#define ICPN_OPT_MAX 256
#define ICPN_RECORD_MAX 128
/* Offset of the node data in an IFIT report frame: Ethernet, IPv6, UDP, report header. */
#define ICPN_REPORT_HDR (ETH_HLEN + IP6_HLEN + UDP_HLEN + 60)
#define ICPN_REPORT_AREA_MAX (ICPN_AUX_FRAME_MAX - ICPN_REPORT_HDR)

/* What a stage tells the pipeline. */
enum icpn_rc {
	R_CONT = 0,	/* not handled: go on (transit forwarding on the current destination) */
	R_OUT = 1,	/* s->nh holds the egress; go to the egress stages */
	R_DROP = 2,	/* s->drop holds the reason */
	R_ROUTE = 3,	/* route the (new) outermost destination in table s->table */
	R_ENCAP = 4,	/* encapsulate on the SID list s->sl_idx */
	R_AGAIN = 5,	/* End wrote a new DA: My-SID lookup again, else the FIB (table 0) */
};

/* The IFIT options of an outer HBH (pipeline.md 4), found by ifit_find(). */
struct icpn_ifit_view {
	__u16 ioam_off;		/* the IOAM option's type octet (valid when has_trace) */
	__u16 area_len;
	__u8 has_alt;
	__u8 has_trace;
	__u8 node_len;
	__u8 remaining;
	__u32 altmark;		/* the AltMark option data */
	__u32 trace_type;
	__u16 word;		/* NodeLen | Flags | RemainingLen */
	__u16 carrier_len;	/* IPv6 length of the carrier: 40 + payload length */
	__u8 hop_limit;		/* what this node records as its hop limit */
	__u8 stamped;
	__u8 pad[2];
};

struct icpn_scratch {
	struct icpn_pkt p;
	struct icpn_nexthop nh;	/* egress decision */
	__u32 drop;
	__u32 n_aux;
	__u32 table;		/* FIB table for R_ROUTE */
	/* the flow as the report names it (the packet as received, or the decapsulated one) */
	__u8 origin_proto;
	__u8 decap;		/* End.DT/DX removed the outer header */
	__u8 passes;		/* local SIDs processed after the first one */
	__u8 report;		/* the IFIT tail has a report to send */
	__u8 routed;		/* s->nh is set already (the SID list's resolved next hop) */
	__u8 pad0[1];
	__u16 origin_sport;
	__u16 origin_dport;
	__u8 has_apn;		/* apn_* below describe the packet's APN */
	__u8 apn_carried;	/* ... and it came from an option the packet carries */
	__u8 apn_id[16];	/* APN-ID, big-endian, right-aligned */
	__u16 apn_len;		/* option data length */
	__u8 apn_id_len;
	__u8 elephant;
	__u32 ifit_flow;	/* head: AltMark data for this packet, when ifit_head */
	__u32 sl_idx;		/* the chosen SID list (sid_lists index) */
	__u32 label;		/* its outer flow label */
	__u8 ifit_head;
	__u8 pad[3];
	struct icpn_flow_key key;
	__u32 key_hash;		/* crc32 of the key (SPEC 4), when key_hashed */
	__u8 key_hashed;
	__u8 pad1[3];
	struct icpn_ifit_view iv;
	struct bpf_fib_lookup fib;	/* bpf_fib_lookup's parameters (fib_kernel_lookup) */
	__u8 apn_data[ICPN_OPT_MAX];	/* APN option data, verbatim */
	__u8 record[ICPN_RECORD_MAX];	/* this node's IOAM node data */
	__u8 zeros[ICPN_OPT_MAX];	/* never written: source of zero bytes */
	__u8 chunk[ICPN_CHUNK];
	struct icpn_frame frame;	/* an aux frame being built */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct icpn_scratch);
} scratch SEC(".maps");

static __always_inline struct icpn_scratch *get_scratch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&scratch, &zero);
}

static __always_inline struct icpn_cfg *get_cfg(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&cfg, &zero);
}

static __always_inline struct icpn_test_ctx *get_test_ctx(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&test_ctx, &zero);
}

static __always_inline int test_mode(const struct icpn_cfg *c)
{
	return c->flags & ICPN_CFG_TEST_MODE;
}

static __always_inline int drop(struct icpn_scratch *s, __u32 reason)
{
	s->drop = reason;
	return R_DROP;
}

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);

	if (v)
		*v += 1;
}

/* Queue an extra frame (s->frame) for the agent or the test harness. */
static __always_inline void emit_frame(struct icpn_scratch *s)
{
	if (bpf_map_push_elem(&aux_out, &s->frame, 0) == 0) {
		s->n_aux++;
		stat_inc(ICPN_STAT_AUX);
	} else {
		stat_inc(ICPN_STAT_AUX_LOST);
	}
}

/* Copy a 16-byte address (kept as two u64) into a byte buffer. */
static __always_inline void put_addr(__u8 *dst, const __u64 a[2])
{
	__builtin_memcpy(dst, a, 16);
}

#endif
