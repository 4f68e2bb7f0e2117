// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* icpn_node: the ICPN node pipeline as one XDP program (docs/pipeline.md section 1).
 *
 * Each stage is a BPF global function, which the verifier checks once on its own instead of
 * once per path through the whole pipeline; stages share the per-CPU scratch state.
 *
 * Test mode (ICPN_CFG_TEST_MODE in cfg): time, queue depths, the ECN random draw and the ingress
 * port come from the test_ctx map instead of the kernel, and the verdict (forward to a port, or
 * drop with a reason) is written to the verdict map, which pyctl reads after BPF_PROG_TEST_RUN
 * together with data_out. Extra frames (IFIT reports, PFC frames) go to the aux_out queue in
 * both modes: in test mode pyctl drains it after each run, a live node's agent sends them.
 */
#include "common.h"
#include "maps.h"
#include "state.h"
#include "parsing.h"
#include "pktops.h"
#include "fib.h"
#include "l3.h"
#include "srv6.h"
#include "classify.h"
#include "ifit.h"
#include "congestion.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline int mac_equal(const __u8 *a, const __u8 *b)
{
	for (int i = 0; i < ETH_ALEN; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

/* The route to `dst` in `table` into s->nh: 0, or the drop reason (no-route; with the kernel's
 * FIB also internal-error, see fib_kernel_lookup). */
static __always_inline int route(struct xdp_md *ctx, const struct icpn_cfg *c,
				 struct icpn_scratch *s, __u32 table, const __u64 dst[2])
{
	struct icpn_pkt *p = &s->p;
	int v6 = p->l3_proto == ETH_P_IPV6;

	if (c->flags & ICPN_CFG_FIB_HELPER)
		return fib_kernel_lookup(ctx, &s->fib, v6, table, p->src, dst, p->tc, &s->nh);
	return fib_lookup_cached(v6, table, dst, &s->nh) < 0 ? ICPN_DROP_NO_ROUTE : 0;
}

/* Record parse results the IFIT report names the flow by. */
static __always_inline void set_origin(struct icpn_scratch *s)
{
	s->origin_proto = s->p.l4_proto;
	s->origin_sport = s->p.sport;
	s->origin_dport = s->p.dport;
}

/* Parse, and trim link padding after the IP packet (pyctl's reference forwards IP bytes). */
static __always_inline int parse_trim(struct xdp_md *ctx, struct icpn_scratch *s)
{
	int rc = parse_packet(ctx, &s->p);

	if (rc)
		return rc;
	if (s->p.len > s->p.ip_end) {
		/* the IP packet (parsed: at least ETH_HLEN + 20 octets) stays: shrinking to it fails
		 * only if the helper does */
		if (bpf_xdp_adjust_tail(ctx, -(int)(s->p.len - s->p.ip_end)) < 0)
			return ICPN_DROP_INTERNAL;
		s->p.len = s->p.ip_end;
	}
	return 0;
}

/* --- steps 1-2: PFC ------------------------------------------------------------------------ */

/* Step 2 of PFC: XOFF / XON back out of the ingress port from its queue's occupancy. */
static __always_inline void pfc_ingress(struct xdp_md *ctx, struct icpn_scratch *s,
					const struct icpn_cfg *c, const struct icpn_port *port,
					__u32 proto)
{
	struct icpn_pfc_state *st;
	__u32 in_port = s->p.in_port, prio;
	__u64 occ = 0;
	int has_tos = 0;
	__u8 h[3] = {};

	if ((proto == ETH_P_IPV6 || proto == ETH_P_IP) && pkt_load(ctx, ETH_HLEN, h, 2) == 0) {
		has_tos = 1;
		h[2] = proto == ETH_P_IPV6 ? (__u8)(h[0] << 4) | (h[1] >> 4) : h[1];
	}
	prio = pfc_priority(c, has_tos, h[2]);
	if (test_mode(c)) {
		struct icpn_test_ctx *t = get_test_ctx();
		__u32 idx = (in_port & (ICPN_MAX_PORTS - 1)) * ICPN_PRIORITIES + prio;

		if (t && idx < ICPN_MAX_PORTS * ICPN_PRIORITIES)
			occ = t->ingress_queue_bytes[idx];
	}
	st = pfc_state_of(in_port, prio);
	if (!st)
		return;
	if (occ * 100 > (__u64)c->pfc_xoff_pct * c->pfc_buffer_bytes) {
		st->xoff_sent = 1;
		pfc_emit(s, port->mac, in_port, prio, c->pfc_pause_time);
	} else if (occ * 100 < (__u64)c->pfc_xon_pct * c->pfc_buffer_bytes && st->xoff_sent) {
		st->xoff_sent = 0;
		pfc_emit(s, port->mac, in_port, prio, 0);
	}
}

ICPN_STAGE int stage_pfc(struct xdp_md *ctx)
{
	struct icpn_scratch *s = get_scratch();
	struct icpn_cfg *c = get_cfg();
	struct icpn_pfc_state *st;
	struct icpn_port *port;
	__u32 in_port, proto;
	const __u8 *h;

	if (!s || !c)
		return R_DROP;
	/* read in place: the stage writes nothing, and the frame does not change under it */
	h = xdp_ptr(ctx, 0, ETH_HLEN);
	if (!h)
		return drop(s, ICPN_DROP_NOT_IP);
	proto = ((__u32)h[12] << 8) | h[13];
	in_port = s->p.in_port;
	/* Step 0: a router takes frames to its port's MAC; MAC Control (PFC) frames may also use
	 * the reserved multicast address (IEEE 802.3 Annex 31B). */
	port = bpf_map_lookup_elem(&ports, &in_port);
	if (!port || !mac_equal(h, port->mac)) {
		if (proto != ICPN_PFC_ETHERTYPE || !mac_equal(h, pfc_dst_mac))
			return drop(s, ICPN_DROP_NOT_FOR_ME);
	}
	if (proto == ICPN_PFC_ETHERTYPE) {
		/* Step 1: a PFC frame pauses the priorities it enables on in_port; it is consumed. */
		h = xdp_ptr(ctx, 0, ETH_HLEN + PFC_BODY_LEN);
		if (!h || (((__u16)h[14] << 8) | h[15]) != ICPN_PFC_OPCODE)
			return drop(s, ICPN_DROP_NOT_IP);
		if ((c->flags & ICPN_CFG_PFC) && c->line_rate_bps) {
			for (__u32 pr = 0; pr < ICPN_PRIORITIES; pr++) {
				__u64 quanta = ((__u64)h[18 + pr * 2] << 8) | h[19 + pr * 2];

				if (!(h[17] & (1 << pr)))
					continue;
				st = pfc_state_of(in_port, pr);
				if (st)
					st->paused_until_us =
						s->p.now_us + quanta * PFC_QUANTUM_BITS * 1000000ULL /
								      c->line_rate_bps;
			}
		}
		return drop(s, ICPN_DROP_PFC_CONSUMED);
	}
	if (c->flags & ICPN_CFG_PFC)
		pfc_ingress(ctx, s, c, port, proto);
	return R_CONT;
}

/* --- step 3: parse ----------------------------------------------------------------------- */

ICPN_STAGE int stage_parse(struct xdp_md *ctx)
{
	struct icpn_scratch *s = get_scratch();
	int rc;

	if (!s)
		return R_DROP;
	rc = parse_trim(ctx, s);
	if (rc)
		return drop(s, rc);
	if (is_link_local(&s->p, s->p.src) || is_link_local(&s->p, s->p.dst))
		return drop(s, ICPN_DROP_LINK_LOCAL);
	set_origin(s);
	return R_CONT;
}

/* --- step 4: endpoint behaviours ----------------------------------------------------------- */

/* End.DT4 / DT6 / DT46 / DX4 / DX6 (RFC 8986 4.4-4.8): SRH (if any) valid with SL 0, the outer
 * header and its extension headers removed, CE copied (RFC 6040), then a lookup in the SID's
 * table or its adjacency, and the inner hop limit decremented. */
static __always_inline int endpoint_decap(struct xdp_md *ctx, struct icpn_scratch *s,
					  const struct icpn_cfg *c, const struct icpn_sid *sid)
{
	struct icpn_pkt *p = &s->p;
	__u8 b = sid->behaviour, inner = p->l4_proto, outer_ce, tc;
	int want6 = b == ICPN_B_END_DT6 || b == ICPN_B_END_DT46 || b == ICPN_B_END_DX6;
	int want4 = b == ICPN_B_END_DT4 || b == ICPN_B_END_DT46 || b == ICPN_B_END_DX4;
	__u32 outer;
	__be16 proto;
	int rc;

	if (has_srh(p)) {
		struct ipv6_sr_hdr srh;

		rc = srh_check(ctx, p, &srh);
		if (rc)
			return drop(s, rc);
		if (srh.segments_left != 0)
			return drop(s, ICPN_DROP_SL_NONZERO);
	}
	if (!((inner == ICPN_IPPROTO_IPV6 && want6) || (inner == ICPN_IPPROTO_IPIP && want4)))
		return drop(s, ICPN_DROP_BAD_INNER);
	if (c->ifit_role == ICPN_IFIT_TAIL)
		ifit_tail_capture(ctx, s, c);
	outer_ce = (p->tc & 3) == ICPN_ECN_CE;
	outer = p->l4_off - ETH_HLEN;
	proto = bpf_htons(inner == ICPN_IPPROTO_IPV6 ? ETH_P_IPV6 : ETH_P_IP);
	/* the parsed outer headers end by ip_end, so at least an Ethernet header's worth of frame
	 * is left: a failure is the helper's (the inner packet is judged by the parse below) */
	if (outer > ICPN_MAX_FRAME || pkt_pop_front(ctx, outer) < 0 ||
	    pkt_store(ctx, ETH_HLEN - 2, &proto, 2) < 0)
		return drop(s, ICPN_DROP_INTERNAL);
	s->decap = 1;
	rc = parse_trim(ctx, s);
	if (rc)
		return drop(s, rc);
	if (is_link_local(p, p->src) || is_link_local(p, p->dst))
		return drop(s, ICPN_DROP_LINK_LOCAL);
	set_origin(s);
	tc = p->tc;
	if (outer_ce && (tc & 3) != ICPN_ECN_CE) {
		if ((tc & 3) == 0)
			return drop(s, ICPN_DROP_ECN_NOT_ECT_CE);
		tc |= ICPN_ECN_CE;
	}
	if (b == ICPN_B_END_DX4 || b == ICPN_B_END_DX6) {
		s->nh = sid->adj;
	} else {
		rc = route(ctx, c, s, sid->table, p->dst);
		if (rc)
			return drop(s, rc);
	}
	if (p->hop_limit <= 1)
		return drop(s, ICPN_DROP_HOP_LIMIT);
	/* writes to the inner header just parsed */
	if (ip_set_tc(ctx, p, tc) < 0 || ip_set_hop_limit(ctx, p, p->hop_limit - 1) < 0)
		return drop(s, ICPN_DROP_INTERNAL);
	return R_OUT;
}

/* Whether a local SID prefix covers `dst`: when none does, the My-SID lookup (a kernel call)
 * would miss, so it is not made. */
static __always_inline int sid_maybe_local(const struct icpn_cfg *c, const __u64 dst[2])
{
	__u32 n = c->n_sid_prefixes;

	if (n > ICPN_MAX_SID_PREFIXES)
		return 1;
	for (__u32 i = 0; i < ICPN_MAX_SID_PREFIXES; i++) {
		const __u64 *a = addr_words(c->sid_prefix[i]), *m = addr_words(c->sid_mask[i]);

		if (i >= n)
			break;
		if ((dst[0] & m[0]) == a[0] && (dst[1] & m[1]) == a[1])
			return 1;
	}
	return 0;
}

/* My-SID table (step 4); R_CONT when the destination is not a local SID. `again`: the lookup of
 * a DA that End wrote, where a miss is R_ROUTE (the FIB, table 0). */
ICPN_STAGE int stage_endpoint(struct xdp_md *ctx, int again)
{
	struct icpn_scratch *s = get_scratch();
	struct icpn_cfg *c = get_cfg();
	struct icpn_sid_key k = { .prefixlen = 128 };
	struct icpn_sid *v;
	int rc;

	if (!s || !c)
		return R_DROP;
	s->table = 0;
	if (s->p.l3_proto != ETH_P_IPV6)
		return again ? R_ROUTE : R_CONT;
	if (!sid_maybe_local(c, s->p.dst))
		return again ? R_ROUTE : R_CONT;
	v = sid_in_slot(s->p.dst); /* a /128 SID: no longer prefix can match */
	if (!v) {
		__builtin_memcpy(k.addr, s->p.dst, 16);
		v = bpf_map_lookup_elem(&my_sids, &k);
	}
	if (!v)
		return again ? R_ROUTE : R_CONT;
	if (again && ++s->passes >= ICPN_MAX_SID_PASSES)
		return drop(s, ICPN_DROP_SID_LOOP);
	switch (v->behaviour) {
	case ICPN_B_END:
	case ICPN_B_END_X:
		if (v->flavours & ICPN_FL_NEXT_CSID) {
			rc = srv6_next_csid(ctx, s, v);
			if (rc != R_CONT)
				return rc;
		}
		return srv6_end(ctx, s, v);
	case ICPN_B_END_DT4:
	case ICPN_B_END_DT6:
	case ICPN_B_END_DT46:
	case ICPN_B_END_DX4:
	case ICPN_B_END_DX6:
		return endpoint_decap(ctx, s, c, v);
	}
	return drop(s, ICPN_DROP_NO_ROUTE);
}

/* --- step 5: headend ----------------------------------------------------------------------- */

/* Step 5a: the flow key, elephant detection and the APN-ID. */
ICPN_STAGE int stage_classify(struct xdp_md *ctx)
{
	struct icpn_scratch *s = get_scratch();
	struct icpn_cfg *c = get_cfg();

	if (!s || !c)
		return R_DROP;
	/* nothing on this node reads the flow key, the APN-ID or the elephant bit */
	if (!(c->flags & ICPN_CFG_CLASSIFY))
		return R_CONT;
	flow_key(s);
	if (c->flags & ICPN_CFG_ELEPHANT)
		s->elephant = elephant_observe(s, c, s->p.ip_end - ETH_HLEN);
	classify_apn(ctx, s, c);
	return R_CONT;
}

static __always_inline __u32 apn_hash(const struct icpn_scratch *s)
{
	switch (s->apn_id_len) {
	case 4:
		return crc32(&s->apn_data[4], 4);
	case 8:
		return crc32(&s->apn_data[4], 8);
	}
	return crc32(&s->apn_data[4], 16);
}

/* Step 5b: the first matching policy, its SID list by (deep) hashing (pipeline.md 3), the outer
 * flow label and the IFIT head options. R_ENCAP, or R_CONT when no policy matches. */
ICPN_STAGE int stage_policy(struct xdp_md *ctx)
{
	struct icpn_scratch *s = get_scratch();
	struct icpn_cfg *c = get_cfg();
	struct icpn_policy *pol;
	__u32 i, h, idx, *li;
	__s32 found;

	/* a global function's arguments must be valid at every call: keep clang from passing an
	 * unused ctx as garbage */
	barrier_var(ctx);
	if (!s || !c)
		return R_DROP;
	found = first_match(s, &policies, c->n_policies, 1);
	if (found < 0)
		return R_CONT;
	i = found;
	pol = bpf_map_lookup_elem(&policies, &i);
	if (!pol || !pol->n_buckets)
		return R_CONT;
	if (s->elephant && s->has_apn && pol->deep_hash)
		h = apn_hash(s);
	else if (pol->n_buckets > 1)
		h = key_hash(s);
	else
		h = 0; /* one bucket: any hash picks it */
	idx = (i & (ICPN_MAX_POLICIES - 1)) * ICPN_MAX_BUCKETS + h % pol->n_buckets;
	li = bpf_map_lookup_elem(&policy_buckets, &idx);
	if (!li)
		return R_CONT;
	s->sl_idx = (i & (ICPN_MAX_POLICIES - 1)) * ICPN_MAX_SID_LISTS +
		    (*li & (ICPN_MAX_SID_LISTS - 1));
	if (c->flowlabel_mode == ICPN_FLOWLABEL_HASH)
		s->label = key_hash(s) & 0xfffff;
	else if (c->flowlabel_mode == ICPN_FLOWLABEL_COPY)
		s->label = s->p.flowlabel;
	else
		s->label = 0;
	ifit_head(s, c);
	return R_ENCAP;
}

/* Step 5c: H.Encaps / H.Encaps.Red on the chosen SID list. */
ICPN_STAGE int stage_encap(struct xdp_md *ctx)
{
	struct icpn_scratch *s = get_scratch();
	struct icpn_cfg *c = get_cfg();
	struct icpn_sidlist *sl;
	__u32 idx;
	int rc;

	if (!s || !c)
		return R_DROP;

	idx = s->sl_idx;
	sl = bpf_map_lookup_elem(&sid_lists, &idx);
	if (!sl)
		return R_CONT;
	rc = srv6_encap(ctx, s, c, sl, s->label);
	/* the FIB's answer for the outer destination, found when the node was configured */
	if (rc == R_CONT && sl->resolved && !(c->flags & ICPN_CFG_FIB_HELPER)) {
		s->nh = sl->nh;
		s->routed = 1;
	}
	return rc;
}

/* Step 5d: no policy matched; an APN-marking edge inserts the option into the packet (not
 * when the packet already carries one, for IPv4, or for the srh-tlv carrier). */
ICPN_STAGE int stage_apn_insert(struct xdp_md *ctx)
{
	struct icpn_scratch *s = get_scratch();
	struct icpn_cfg *c = get_cfg();
	int rc;

	if (!s || !c)
		return R_DROP;
	if (!s->has_apn || s->apn_carried || s->p.l3_proto != ETH_P_IPV6 ||
	    c->apn_carrier == ICPN_CARRIER_SRH_TLV)
		return R_CONT;
	rc = apn_insert_header(ctx, &s->p,
			       c->apn_carrier == ICPN_CARRIER_HBH ? ICPN_IPPROTO_HOPOPTS
								  : ICPN_IPPROTO_DSTOPTS,
			       c->apn_opt_type, s->apn_data, s->apn_len, s->zeros, s->chunk);
	if (rc > 0)
		return drop(s, rc);
	/* The packet parsed before the insertion. It fails to parse after it only where this
	 * node's parse state is full (a fifth extension header), a limit of the node that the
	 * contract does not have: internal-error. */
	if (rc == 0 && parse_packet(ctx, &s->p) != 0)
		return drop(s, ICPN_DROP_INTERNAL);
	return R_CONT;
}

/* --- step 6: forwarding ------------------------------------------------------------------ */

/* FIB lookup (table 0) on the destination, hop limit check, decrement. */
ICPN_STAGE int stage_transit(struct xdp_md *ctx)
{
	struct icpn_scratch *s = get_scratch();
	struct icpn_cfg *c = get_cfg();
	int rc;

	if (!s || !c)
		return R_DROP;
	if (!s->routed) {
		rc = route(ctx, c, s, 0, s->p.dst);
		if (rc)
			return drop(s, rc);
	}
	if (s->p.hop_limit <= 1)
		return drop(s, ICPN_DROP_HOP_LIMIT);
	if (ip_set_hop_limit(ctx, &s->p, s->p.hop_limit - 1) < 0) /* the parsed header */
		return drop(s, ICPN_DROP_INTERNAL);
	return R_OUT;
}

/* A destination an endpoint behaviour has just set (the hop limit is done already). */
ICPN_STAGE int stage_route(struct xdp_md *ctx)
{
	struct icpn_scratch *s = get_scratch();
	struct icpn_cfg *c = get_cfg();
	int rc;

	if (!s || !c)
		return R_DROP;
	rc = route(ctx, c, s, s->table, s->p.dst);
	return rc ? drop(s, rc) : R_OUT;
}

/* --- step 7: IFIT -------------------------------------------------------------------------- */

/* The tail's report, out of the route to the collector (none without a route). */
ICPN_STAGE int stage_report(struct xdp_md *ctx)
{
	struct icpn_scratch *s = get_scratch();
	struct icpn_cfg *c = get_cfg();
	struct icpn_nexthop saved, to_collector;
	__u64 collector[2];
	struct icpn_port *port;
	__u32 idx;

	if (!s || !c)
		return 0;
	saved = s->nh;
	__builtin_memcpy(collector, c->collector, 16);
	if (c->flags & ICPN_CFG_FIB_HELPER) {
		if (fib_kernel_lookup(ctx, &s->fib, 1, 0, collector, collector, 0, &s->nh))
			return 0;
	} else if (fib_lookup_cached(1, 0, collector, &s->nh) < 0) {
		return 0;
	}
	to_collector = s->nh;
	s->nh = saved;
	idx = to_collector.port;
	port = bpf_map_lookup_elem(&ports, &idx);
	if (port)
		ifit_report(s, c, &to_collector, port->mac);
	return 0;
}

/* Count and stamp the IFIT options of the outer IPv6 header as the packet leaves (or, at a
 * decapsulating tail, of the outer header it removed); the tail reports and strips. */
ICPN_STAGE int stage_ifit(struct xdp_md *ctx)
{
	struct icpn_scratch *s = get_scratch();
	struct icpn_cfg *c = get_cfg();
	struct icpn_ifit_view *v;
	int rc;

	if (!s || !c)
		return R_DROP;
	v = &s->iv;
	if (c->ifit_role == ICPN_IFIT_NONE)
		return R_OUT;
	if (!s->decap) {
		rc = ifit_forward(ctx, s, c);
		if (rc != R_OUT || c->ifit_role != ICPN_IFIT_TAIL || !v->has_trace)
			return rc;
		/* the tail reports the trace and removes the options */
		if (ifit_copy_filled(ctx, s, 0) == 0)
			s->report = 1;
		/* ifit_find measured the HBH and its options; the strip moves bytes within it and
		 * parses a packet that parsed with more: a failure is the node's */
		if (ifit_strip(ctx, s) < 0)
			return drop(s, ICPN_DROP_INTERNAL);
		return R_OUT;
	}
	if (c->ifit_role != ICPN_IFIT_TAIL)
		return R_OUT;
	/* a decapsulating tail: tail_capture took the options; the report gets this node's record
	 * in its copy of the area */
	ifit_count(v);
	if (!v->has_trace)
		return R_OUT;
	ifit_record_here(s, c);
	if (v->remaining >= v->node_len) {
		v->remaining -= v->node_len;
		ifit_report_put_record(s, (__u32)v->node_len * 4);
	}
	s->report = 1;
	return R_OUT;
}

/* --- step 8: ECN, PFC pause, Ethernet ----------------------------------------------------- */

static __always_inline int egress(struct xdp_md *ctx, struct icpn_scratch *s,
				  const struct icpn_cfg *c)
{
	struct icpn_port_stats *ps;
	struct icpn_port *port;
	struct ethhdr eth;
	__u64 q = 0;
	__u32 idx;

	idx = s->nh.port;
	ps = port_stats_of(idx);
	/* Live mode: the packet joins its port's virtual queue, or is tail-dropped when the queue
	 * is full (a link's capacity, since XDP_REDIRECT bypasses qdiscs); ECN reads the depth. */
	if (!test_mode(c) && vqueue_enqueue(c, idx, s->p.ip_end, &q) < 0) {
		if (ps) {
			ps->queue_drops++;
			ps->queue_drop_bytes += s->p.ip_end;
		}
		return drop(s, ICPN_DROP_QUEUE_FULL);
	}
	if (c->flags & ICPN_CFG_ECN) {
		__u8 ecn = s->p.tc & 3;

		if (test_mode(c)) {
			struct icpn_test_ctx *t = get_test_ctx();

			if (t && idx < ICPN_MAX_PORTS)
				q = t->egress_queue_bytes[idx];
		}
		if ((ecn == 1 || ecn == 2) && (__u64)s->p.rand32 < ecn_threshold(c, q)) {
			if (ip_set_tc(ctx, &s->p, s->p.tc | ICPN_ECN_CE) < 0) /* the parsed header */
				return drop(s, ICPN_DROP_INTERNAL);
			if (ps)
				ps->ce_marked++;
		}
	}
	if (c->flags & ICPN_CFG_PFC) {
		struct icpn_pfc_state *st = pfc_state_of(idx, pfc_priority(c, 1, s->p.tc));

		if (st && st->paused_until_us > s->p.now_us)
			return drop(s, ICPN_DROP_PFC_HELD);
	}
	port = bpf_map_lookup_elem(&ports, &idx);
	if (!port || !port->valid)
		return drop(s, ICPN_DROP_NO_ROUTE);
	__builtin_memcpy(eth.h_dest, s->nh.mac, ETH_ALEN);
	__builtin_memcpy(eth.h_source, port->mac, ETH_ALEN);
	eth.h_proto = bpf_htons(s->p.l3_proto);
	if (pkt_store(ctx, 0, &eth, sizeof(eth)) < 0) /* every frame here holds an IP packet */
		return drop(s, ICPN_DROP_INTERNAL);
	if (ps) {
		ps->tx_packets++;
		ps->tx_bytes += s->p.ip_end;
	}
	return R_OUT;
}

ICPN_STAGE int stage_egress(struct xdp_md *ctx)
{
	struct icpn_scratch *s = get_scratch();
	struct icpn_cfg *c = get_cfg();

	if (!s || !c)
		return R_DROP;
	return egress(ctx, s, c);
}

/* --- the End fast path --------------------------------------------------------------------- */

/* End / End.X (RFC 8986 4.1, 4.2) of the usual SRv6 packet in one function that makes no calls.
 * On this project's VM every return from a BPF function or a helper is mispredicted on purpose
 * (the SRSO safe-RET thunk, docs/ebpf-performance.md) and the pipeline makes a dozen of them per
 * packet; End at a transit node is the case worth doing without. The fast path only reads until
 * it knows the pipeline would do exactly this, then does it with the pipeline's own helpers
 * (PFC step 2, IFIT, egress). Every other packet gets R_CONT, untouched, and goes through the
 * pipeline. Taken for:
 *   Ethernet to the ingress port's MAC / IPv6 whose payload ends the frame / HBH? / SRH of type 4
 *   without TLVs / anything but another extension header;
 *   DA a /128 End or End.X SID without flavours, found in its slot; SL >= 1; hop limit >= 2;
 *   no link-local address; for End, a new DA outside the local SID prefixes with a route in
 *   table 0 (the model's FIB, not the kernel's); an IFIT role other than the tail.
 */
static __always_inline int fast_end(struct xdp_md *ctx, struct icpn_scratch *s,
				    const struct icpn_cfg *c)
{
	__u32 in_port = s->p.in_port, off = ETH_HLEN + IP6_HLEN;
	struct icpn_pkt *p = &s->p;
	const struct ipv6hdr *ip6;
	struct icpn_port *port;
	const struct ipv6_sr_hdr *srh;
	struct icpn_sid *sid;
	__u8 *hdr, h[2], nh, sl;
	int rc;

	if ((c->flags & ICPN_CFG_FIB_HELPER) || c->ifit_role == ICPN_IFIT_TAIL)
		return R_CONT;
	/* Headers are read in place and what is read goes straight to the parse state (the
	 * pipeline parses again when this returns R_CONT): this function's frame adds to the
	 * pipeline's, and the call chain has 512 bytes of stack. */
	hdr = xdp_ptr(ctx, 0, ETH_HLEN + IP6_HLEN);
	if (!hdr || hdr[12] != (ETH_P_IPV6 >> 8) || hdr[13] != (ETH_P_IPV6 & 0xff))
		return R_CONT;
	port = bpf_map_lookup_elem(&ports, &in_port);
	if (!port || !mac_equal(hdr, port->mac))
		return R_CONT;
	ip6 = (const struct ipv6hdr *)(hdr + ETH_HLEN);
	if (ip6->version != 6 || ip6->hop_limit <= 1)
		return R_CONT;
	p->ip_end = off + bpf_ntohs(ip6->payload_len);
	if (p->ip_end != pkt_len(ctx))
		return R_CONT;
	p->len = p->ip_end;
	p->l3_proto = ETH_P_IPV6;
	p->hop_limit = ip6->hop_limit;
	p->tc = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
	p->flowlabel = ((__u32)(ip6->flow_lbl[0] & 0xf) << 16) |
		       ((__u32)ip6->flow_lbl[1] << 8) | ip6->flow_lbl[2];
	nh = ip6->nexthdr;
	__builtin_memcpy(p->src, &ip6->saddr, 16);
	__builtin_memcpy(p->dst, &ip6->daddr, 16);
	if (is_link_local(p, p->src) || is_link_local(p, p->dst))
		return R_CONT;
	p->n_ext = 0;
	if (nh == ICPN_IPPROTO_HOPOPTS) {
		if (pkt_load(ctx, off, h, 2) < 0)
			return R_CONT;
		p->ext[0] = (struct icpn_ext){
			.off = off,
			.len = ext_len(h[1]),
			.named_at = ETH_HLEN + 6,
			.kind = ICPN_IPPROTO_HOPOPTS,
		};
		p->n_ext = 1;
		nh = h[0];
		off += ext_len(h[1]);
		if (off > p->ip_end)
			return R_CONT;
	}
	if (nh != ICPN_IPPROTO_ROUTING)
		return R_CONT;
	srh = (const struct ipv6_sr_hdr *)xdp_ptr(ctx, off, sizeof(*srh));
	if (!srh)
		return R_CONT;
	/* srv6_end's checks; no TLVs: the segment list fills the header */
	if (off + ext_len(srh->hdrlen) > p->ip_end || srh->type != ICPN_SRH_ROUTING_TYPE ||
	    is_exthdr(srh->nexthdr) || srh->segments_left == 0 || srh_bounds(srh) ||
	    sizeof(*srh) + ((__u32)srh->first_segment + 1) * SID_LEN != ext_len(srh->hdrlen))
		return R_CONT;
	if (!sid_maybe_local(c, p->dst))
		return R_CONT;
	sid = sid_in_slot(p->dst);
	if (!sid || sid->flavours || (sid->behaviour != ICPN_B_END && sid->behaviour != ICPN_B_END_X))
		return R_CONT;
	sl = srh->segments_left - 1;
	/* the new DA: the old one is not needed any more */
	if (pkt_load(ctx, off + sizeof(*srh) + (__u32)sl * SID_LEN, p->dst, SID_LEN) < 0)
		return R_CONT;
	if (sid->behaviour == ICPN_B_END_X) {
		s->nh = sid->adj;
	} else if (sid_maybe_local(c, p->dst) || fib_lookup_cached(1, 0, p->dst, &s->nh) < 0) {
		return R_CONT; /* another local SID next, or no route: the pipeline's case */
	}

	/* From here on the packet is the fast path's. */
	p->hop_limit -= 1;
	p->fragment = 0;
	p->rh = p->n_ext;
	p->ext[p->n_ext & (ICPN_MAX_EXT_HEADERS - 1)] = (struct icpn_ext){
		.off = off,
		.len = ext_len(srh->hdrlen),
		.named_at = p->n_ext ? ETH_HLEN + IP6_HLEN : ETH_HLEN + 6,
		.kind = ICPN_IPPROTO_ROUTING,
	};
	p->n_ext += 1;
	p->rh_type = ICPN_SRH_ROUTING_TYPE;
	p->l4_off = off + ext_len(srh->hdrlen);
	p->l4_proto = srh->nexthdr;
	parse_l4(ctx, p);
	set_origin(s);
	if (c->flags & ICPN_CFG_PFC)
		pfc_ingress(ctx, s, c, port, ETH_P_IPV6);
	if (pkt_store(ctx, off + SRH_OFF_SL, &sl, 1) < 0 ||
	    pkt_store16(ctx, IP6_OFF_DADDR, p->dst) < 0 ||
	    pkt_store(ctx, IP6_OFF_HOPLIMIT, &p->hop_limit, 1) < 0)
		return drop(s, ICPN_DROP_INTERNAL); /* offsets read above */
	if (c->ifit_role != ICPN_IFIT_NONE) {
		rc = ifit_forward(ctx, s, c);
		if (rc != R_OUT)
			return rc;
	}
	rc = egress(ctx, s, c);
	if (rc == R_OUT)
		stat_inc(ICPN_STAT_FAST_END);
	return rc;
}

/* Each stage is a call, and on this project's VM every return is mispredicted (~8 ns,
 * docs/ebpf-performance.md): a stage whose first check would send the packet straight on is
 * not called. The guards repeat those checks; the stages keep them. */
ICPN_STAGE int icpn_pipeline(struct xdp_md *ctx)
{
	struct icpn_scratch *s = get_scratch();
	struct icpn_cfg *c = get_cfg();
	int rc;

	if (!s || !c)
		return R_DROP;
	rc = stage_pfc(ctx);
	if (rc != R_CONT)
		return rc;
	rc = stage_parse(ctx);
	if (rc != R_CONT)
		return rc;
	s->table = 0;
	if (s->p.l3_proto == ETH_P_IPV6 && sid_maybe_local(c, s->p.dst))
		rc = stage_endpoint(ctx, 0);
	/* End, then the SID it wrote, on one node (as Linux does); stage_endpoint drops the packet
	 * (sid-loop) at the MAX_SID_PASSES-th chained SID */
	for (int i = 0; i < ICPN_MAX_SID_PASSES && rc == R_AGAIN; i++)
		rc = stage_endpoint(ctx, 1);
	if (rc == R_CONT) {
		if (c->flags & ICPN_CFG_CLASSIFY)
			rc = stage_classify(ctx);
		if (rc == R_CONT && c->n_policies)
			rc = stage_policy(ctx);
		if (rc == R_ENCAP)
			rc = stage_encap(ctx);
		else if (rc == R_CONT && s->has_apn)
			rc = stage_apn_insert(ctx);
		if (rc == R_CONT)
			rc = stage_transit(ctx);
	} else if (rc == R_ROUTE) {
		rc = stage_route(ctx);
	}
	if (rc == R_OUT && c->ifit_role != ICPN_IFIT_NONE) {
		rc = stage_ifit(ctx);
		/* called from here, not from stage_ifit: the two stacks together exceed 512 bytes */
		if (s->report)
			stage_report(ctx);
	}
	if (rc == R_OUT)
		rc = stage_egress(ctx);
	return rc;
}

/* Whether `port` is tapped (an inlined array lookup: most packets skip the call below). */
static __always_inline int tapped(__u32 port)
{
	__u32 *on = bpf_map_lookup_elem(&tap_ports, &port);

	return on && *on;
}

/* Live capture: copy the frame to the taps ring (a packet socket on a port sees nothing XDP
 * redirects or drops). */
ICPN_STAGE int tap_frame(struct xdp_md *ctx, __u32 port, __u32 dir)
{
	__u32 zero = 0, len, caplen;
	struct icpn_tap *t;

	t = bpf_map_lookup_elem(&tap_buf, &zero);
	if (!t)
		return 0;
	len = bpf_xdp_get_buff_len(ctx);
	caplen = len < ICPN_TAP_SNAP ? len : ICPN_TAP_SNAP;
	barrier_var(caplen);
	if (caplen < 1 || caplen > ICPN_TAP_SNAP)
		return 0;
	if (bpf_xdp_load_bytes(ctx, 0, t->data, caplen) < 0)
		return 0;
	t->port = port;
	t->dir = dir;
	t->len = len;
	t->caplen = caplen;
	bpf_ringbuf_output(&taps, t, offsetof(struct icpn_tap, data) + caplen, 0);
	return 0;
}

/* --- entry --------------------------------------------------------------------------------- */

SEC("xdp")
int icpn_node(struct xdp_md *ctx)
{
	struct icpn_scratch *s = get_scratch();
	struct icpn_cfg *c = get_cfg();
	int test, rc, act;
	__u32 zero = 0;

	if (!s || !c)
		return XDP_ABORTED;
	test = test_mode(c);
	s->drop = 0;
	s->n_aux = 0;
	s->decap = 0;
	s->passes = 0;
	s->report = 0;
	s->routed = 0;
	s->has_apn = 0;
	s->elephant = 0;
	s->ifit_head = 0;
	__builtin_memset(&s->iv, 0, sizeof(s->iv));
	__builtin_memset(&s->nh, 0, sizeof(s->nh));
	if (test) {
		struct icpn_test_ctx *t = get_test_ctx();

		if (!t)
			return XDP_ABORTED;
		s->p.in_port = t->in_port;
		s->p.now_us = t->time_us;
		s->p.rand32 = t->rand32;
	} else {
		s->p.in_port = port_of_ifindex(ctx->ingress_ifindex);
		/* helper calls cost tens of ns: only for what reads them (PFC, elephants, IFIT; ECN) */
		s->p.now_us = (c->flags & (ICPN_CFG_PFC | ICPN_CFG_ELEPHANT)) ||
					      c->ifit_role != ICPN_IFIT_NONE
				      ? bpf_ktime_get_ns() / 1000
				      : 0;
		s->p.rand32 = c->flags & ICPN_CFG_ECN ? bpf_get_prandom_u32() : 0;
		if (tapped(s->p.in_port))
			tap_frame(ctx, s->p.in_port, ICPN_TAP_IN);
	}
	stat_inc(ICPN_STAT_RX);
	rc = fast_end(ctx, s, c);
	if (rc == R_CONT)
		rc = icpn_pipeline(ctx);
	if (rc == R_OUT) {
		stat_inc(ICPN_STAT_FORWARD);
		if (!test && tapped(s->nh.port))
			tap_frame(ctx, s->nh.port, ICPN_TAP_OUT);
		act = test ? XDP_TX : (int)bpf_redirect_map(&tx_port, s->nh.port, XDP_DROP);
	} else {
		/* a drop without a reason: a map lookup that cannot fail did */
		if (rc != R_DROP || s->drop == 0)
			s->drop = ICPN_DROP_INTERNAL;
		stat_inc(ICPN_STAT_DROP_BASE + (s->drop & 31));
		act = XDP_DROP;
	}
	if (test) {
		struct icpn_verdict *v = bpf_map_lookup_elem(&verdict, &zero);

		if (v) {
			v->action = rc == R_OUT ? ICPN_ACT_FORWARD : ICPN_ACT_DROP;
			v->port = s->nh.port;
			v->drop = rc == R_OUT ? 0 : s->drop;
			v->n_aux = s->n_aux;
		}
	}
	return act;
}
