/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* IFIT (SPEC 3, docs/pipeline.md 4): finding the AltMark and IOAM trace options of the outer
 * HBH, per-(FlowMonID, colour) counters, stamping this node's record, the tail's report (an
 * aux frame) and the tail's removal of the options from a packet it does not decapsulate. */
#ifndef ICPN_IFIT_H
#define ICPN_IFIT_H

#include "state.h"
#include "options.h"
#include "csum.h"

#define IOAM_REMAINING_MASK 0x7f
#define IOAM_WIDE_FIRST 8
#define IOAM_WIDE_LAST 10
#define IOAM_SHORT_RECORD 32

/* RFC 9486 2 / RFC 9197 4.4: an empty pre-allocated trace for this node's settings. */
static __always_inline int ioam_write(CTX *ctx, struct icpn_scratch *s, const struct icpn_cfg *c,
				      __u32 off, __u32 area)
{
	__u8 o[12] = { ICPN_IOAM_OPT_TYPE, (__u8)(10 + area) };
	__u16 word = ((__u16)c->ioam_node_len << 11) | (__u16)(area / 4);

	o[4] = c->ioam_namespace >> 8;
	o[5] = c->ioam_namespace;
	o[6] = word >> 8;
	o[7] = word;
	o[8] = c->ioam_trace_type >> 16;
	o[9] = c->ioam_trace_type >> 8;
	o[10] = c->ioam_trace_type;
	if (pkt_store(ctx, off, o, sizeof(o)) < 0)
		return -1;
	area &= 0xff;
	if (area == 0)
		return 0;
	return pkt_store(ctx, off + sizeof(o), s->zeros, area);
}

/* RFC 9197 4.4.1: node-data words of a trace type (bits 8-10 are 8 octets, the others up to
 * bit 21 are 4, bit 23 none); 0 when bit 22 is set (this project cannot size it). */
#define IOAM_BITS_0_21 0xfffffcU
#define IOAM_BITS_8_10 0x00e000U

static __always_inline __u32 ioam_node_len(__u32 trace_type)
{
	if (trace_type & 0x2)
		return 0;
	return __builtin_popcount(trace_type & IOAM_BITS_0_21) +
	       __builtin_popcount(trace_type & IOAM_BITS_8_10);
}

/* The IFIT options of the HBH that follows the IPv6 header at ETH_HLEN, if usable (pipeline.md
 * 4): an AltMark of exactly 4 octets, a pre-allocated trace of namespace 0 or the node's with a
 * 4n-octet area, NodeLen as its trace type sizes it and RemainingLen within the area. */
static __always_inline void ifit_find(CTX *ctx, struct icpn_scratch *s, const struct icpn_cfg *c)
{
	struct icpn_pkt *p = &s->p;
	struct icpn_ifit_view *v = &s->iv;
	struct opt_walk w;
	__u8 o[12];
	__u32 olen, nl, rem, tt;
	__u16 ns;

	__builtin_memset(v, 0, sizeof(*v));
	v->carrier_len = p->ip_end - ETH_HLEN;
	if (p->l3_proto != ETH_P_IPV6 || p->n_ext == 0 || p->ext[0].kind != ICPN_IPPROTO_HOPOPTS)
		return;
	opt_find(ctx, &w, p->ext[0].off, p->ext[0].len, ICPN_ALTMARK_OPT_TYPE, ICPN_IOAM_OPT_TYPE);
	if (w.found_off[0] && w.found_len[0] == 4) {
		__be32 d;

		if (pkt_load(ctx, w.found_off[0] + 2, &d, 4) == 0) {
			v->has_alt = 1;
			v->altmark = bpf_ntohl(d);
		}
	}
	olen = w.found_len[1];
	if (!w.found_off[1] || olen < 10 || (olen - 10) % 4)
		return;
	if (pkt_load(ctx, w.found_off[1], o, sizeof(o)) < 0 || o[3] != 0)
		return;
	ns = ((__u16)o[4] << 8) | o[5];
	v->word = ((__u16)o[6] << 8) | o[7];
	tt = ((__u32)o[8] << 16) | ((__u32)o[9] << 8) | o[10];
	nl = v->word >> 11;
	rem = v->word & IOAM_REMAINING_MASK;
	/* the node's own trace type is sized in cfg already (the writer's node_len_for) */
	if ((ns != 0 && ns != c->ioam_namespace) || nl == 0 ||
	    (tt == c->ioam_trace_type ? c->ioam_node_len : ioam_node_len(tt)) != nl ||
	    rem * 4 > olen - 10)
		return;
	v->has_trace = 1;
	v->ioam_off = w.found_off[1];
	v->area_len = olen - 10;
	v->node_len = nl;
	v->remaining = rem;
	v->trace_type = tt;
}

/* Every IFIT node counts packets and bytes (the carrier's IPv6 length) per (FlowMonID, L): in
 * the key's slot of a per-CPU array (an inlined lookup) when that slot is free or its own on
 * this CPU, else in a per-CPU hash. pyctl adds the two up. */
static __always_inline void ifit_count(const struct icpn_ifit_view *v)
{
	struct icpn_ifit_ckey k;
	struct icpn_counter one = { .packets = 1, .bytes = v->carrier_len }, *cnt;
	struct icpn_ifit_slot *slot;
	__u32 idx;

	if (!v->has_alt)
		return;
	k.flowmon_id = v->altmark >> 12;
	k.color = (v->altmark >> 11) & 1;
	idx = (k.flowmon_id * 2 + k.color) & (ICPN_IFIT_SLOTS - 1);
	slot = bpf_map_lookup_elem(&ifit_slots, &idx);
	if (slot && (slot->count.packets == 0 ||
		     (slot->key.flowmon_id == k.flowmon_id && slot->key.color == k.color))) {
		slot->key = k;
		slot->count.packets += 1;
		slot->count.bytes += v->carrier_len;
		return;
	}
	cnt = bpf_map_lookup_elem(&ifit_counters, &k);
	if (cnt) {
		cnt->packets += 1;
		cnt->bytes += v->carrier_len;
	} else {
		bpf_map_update_elem(&ifit_counters, &k, &one, BPF_NOEXIST);
	}
}

/* pipeline.md 4 / RFC 9197 4.4.2: the word of trace-type bit b. Bits 0, 1, 2, 3 and 6 are
 * provided, every other one is all ones. */
static __always_inline __u32 ioam_word(const struct icpn_scratch *s, const struct icpn_cfg *c,
				       __u32 b, __u32 queue_packets)
{
	switch (b) {
	case 0:
		return ((__u32)s->iv.hop_limit << 24) | (c->node_id & 0xffffff);
	case 1:
		return ((s->p.in_port & 0xffff) << 16) | (s->nh.port & 0xffff);
	case 2:
		return s->p.now_us / 1000000;
	case 3:
		return s->p.now_us % 1000000;
	case 6:
		return queue_packets;
	default:
		return 0xffffffff;
	}
}

/* This node's data in trace-type bit order (8 octets for bits 8-10, else 4). Unrolled:
 * straight-line code, no callback a bit, each word computed only when its bit is set. */
static __always_inline void ifit_record(struct icpn_scratch *s, const struct icpn_cfg *c,
					__u32 queue_packets)
{
	__u32 tt = s->iv.trace_type, off = 0;

#pragma unroll
	for (__u32 b = 0; b < 22; b++) {
		__be32 be;

		if (!(tt & (1U << (23 - b))))
			continue;
		if (off > ICPN_RECORD_MAX - 8)
			break;
		be = bpf_htonl(ioam_word(s, c, b, queue_packets));
		__builtin_memcpy(&s->record[off], &be, 4);
		off += 4;
		if (b >= IOAM_WIDE_FIRST && b <= IOAM_WIDE_LAST) {
			__builtin_memcpy(&s->record[off], &be, 4);
			off += 4;
		}
	}
}

/* The record's first n bytes to the packet at `at`: the usual record (up to 8 words) behind one
 * bounds check, a longer one a word at a time (fixed-size stores go straight to the packet). */
static __always_inline int ifit_put_record(CTX *ctx, struct icpn_scratch *s, __u32 at, __u32 n)
{
#ifndef ICPN_TC
	__u8 *q = n <= IOAM_SHORT_RECORD ? xdp_ptr(ctx, at, IOAM_SHORT_RECORD) : NULL;

	if (q) {
		for (__u32 i = 0; i < IOAM_SHORT_RECORD / 4; i++) {
			if (i * 4 >= n)
				break;
			__builtin_memcpy(q + i * 4, &s->record[i * 4], 4);
		}
		return 0;
	}
#endif
	for (__u32 i = 0; i < ICPN_RECORD_MAX / 4; i++) {
		if (i * 4 >= n)
			break;
		if (pkt_store(ctx, at + i * 4, &s->record[i * 4], 4) < 0)
			return -1;
	}
	return 0;
}

/* Write the record at RemainingLen*4 - NodeLen*4 of the area of the packet's trace and
 * subtract NodeLen, or set Overflow when there is no room (RFC 9197 4.4.1). */
static __always_inline int ifit_stamp_packet(CTX *ctx, struct icpn_scratch *s)
{
	struct icpn_ifit_view *v = &s->iv;
	__u32 n = (__u32)v->node_len * 4;
	__be16 word;

	if (v->remaining < v->node_len) {
		v->word |= ICPN_IOAM_OVERFLOW_FLAG;
	} else {
		v->remaining -= v->node_len;
		v->word = (v->word & ~IOAM_REMAINING_MASK) | v->remaining;
		v->stamped = 1;
		__u32 at = v->ioam_off + 12 + v->remaining * 4;

		if (n == 0 || n > ICPN_RECORD_MAX)
			return -1;
		if (ifit_put_record(ctx, s, at, n) < 0)
			return -1;
	}
	word = bpf_htons(v->word);
	return pkt_store(ctx, v->ioam_off + 6, &word, 2);
}

/* The report's node data (the filled area after stamping, most recent hop first) into the aux
 * frame, straight from the packet. Called before the packet loses the trace. */
static __always_inline int ifit_copy_filled(CTX *ctx, struct icpn_scratch *s, __u32 skip)
{
	struct icpn_ifit_view *v = &s->iv;
	__u32 from = v->remaining * 4, len = v->area_len - v->remaining * 4;

	barrier_var(len);
	if (len == 0)
		return 0;
	if (len > ICPN_REPORT_AREA_MAX - ICPN_RECORD_MAX || skip > ICPN_RECORD_MAX)
		return -1;
	return pkt_load(ctx, v->ioam_off + 12 + from, &s->frame.data[ICPN_REPORT_HDR + skip], len);
}

/* pipeline.md 4 tail report: Ethernet / IPv6 (SA source, DA collector, hop limit 64) / UDP
 * (sport = dport = collector port) / IFIT report, sent out of the route to the collector. The
 * node data is already in place (ifit_copy_filled, plus the record when stamped). */
static __always_inline void ifit_report(struct icpn_scratch *s, const struct icpn_cfg *c,
					const struct icpn_nexthop *nh, const __u8 *port_mac)
{
	const struct icpn_ifit_view *v = &s->iv;
	const struct icpn_pkt *p = &s->p;
	__u8 *f = s->frame.data;
	__u32 filled = v->area_len - v->remaining * 4, udp_len, sum = 0, csum;
	__u32 alt = v->has_alt ? v->altmark & ~0x3ffU : 0, nl4 = (__u32)v->node_len * 4;
	struct ipv6hdr ip6 = {};
	__be32 w32;
	__be16 w16;

	if (filled > ICPN_REPORT_AREA_MAX || !nl4)
		return;
	udp_len = UDP_HLEN + 60 + filled;
	__builtin_memcpy(f, nh->mac, 6);
	__builtin_memcpy(f + 6, port_mac, 6);
	f[12] = ETH_P_IPV6 >> 8;
	f[13] = ETH_P_IPV6 & 0xff;
	ip6.version = 6;
	ip6.payload_len = bpf_htons(udp_len);
	ip6.nexthdr = ICPN_IPPROTO_UDP;
	ip6.hop_limit = ICPN_IFIT_REPORT_HOP_LIMIT;
	__builtin_memcpy(&ip6.saddr, c->source, 16);
	__builtin_memcpy(&ip6.daddr, c->collector, 16);
	__builtin_memcpy(f + ETH_HLEN, &ip6, sizeof(ip6));
	f += ETH_HLEN + IP6_HLEN;
	w16 = bpf_htons(c->collector_port);
	__builtin_memcpy(f, &w16, 2);
	__builtin_memcpy(f + 2, &w16, 2);
	w16 = bpf_htons(udp_len);
	__builtin_memcpy(f + 4, &w16, 2);
	f[6] = 0;
	f[7] = 0;
	f += UDP_HLEN;
	f[0] = ICPN_IFIT_REPORT_VERSION;
	f[1] = filled / nl4;
	f[2] = 0;
	f[3] = 0;
	w32 = bpf_htonl(alt);
	__builtin_memcpy(f + 4, &w32, 4);
	w32 = bpf_htonl(c->node_id);
	__builtin_memcpy(f + 8, &w32, 4);
	w32 = bpf_htonl((__u32)(p->now_us / 1000000));
	__builtin_memcpy(f + 12, &w32, 4);
	w32 = bpf_htonl((__u32)(p->now_us % 1000000));
	__builtin_memcpy(f + 16, &w32, 4);
	f[20] = p->l3_proto == ETH_P_IPV6 ? 6 : 4;
	f[21] = s->origin_proto;
	w16 = bpf_htons(s->origin_sport);
	__builtin_memcpy(f + 22, &w16, 2);
	w16 = bpf_htons(s->origin_dport);
	__builtin_memcpy(f + 24, &w16, 2);
	f[26] = 0;
	f[27] = 0;
	put_addr(f + 28, p->src);
	put_addr(f + 44, p->dst);
	/* RFC 8200 8.1 pseudo-header, then the UDP datagram; a computed 0 is sent as 0xFFFF */
	sum = csum_add_addr(sum, c->source);
	sum = csum_add_addr(sum, c->collector);
	sum += udp_len + ICPN_IPPROTO_UDP;
	sum = csum_add_buf(sum, f - UDP_HLEN, udp_len);
	csum = (__u16)~csum_fold32(sum);
	if (csum == 0)
		csum = 0xffff;
	f[6 - UDP_HLEN] = csum >> 8;
	f[7 - UDP_HLEN] = csum & 0xff;
	s->frame.port = nh->port;
	s->frame.len = ICPN_REPORT_HDR + filled;
	emit_frame(s);
}

#endif
