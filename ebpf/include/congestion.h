/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Congestion (SPEC 5, docs/pipeline.md 1.1, 1.2 and 5): DCQCN-style ECN marking from the egress
 * queue, PFC frames consumed (pauses), generated from the ingress queue (XOFF / XON) and
 * honoured (a paused priority is held). */
#ifndef ICPN_CONGESTION_H
#define ICPN_CONGESTION_H

#include "state.h"

#define PFC_QUANTUM_BITS 512
#define PFC_MIN_FRAME 60
#define PFC_BODY_LEN 20 /* opcode, enable vector, eight times */

static const __u8 pfc_dst_mac[ETH_ALEN] = { 0x01, 0x80, 0xc2, 0x00, 0x00, 0x01 };

/* pipeline.md 5: the 32-bit marking threshold T (mark iff rand32 < T); 2^32 = always. */
static __always_inline __u64 ecn_threshold(const struct icpn_cfg *c, __u64 q)
{
	if (q <= c->ecn_kmin_bytes)
		return 0;
	if (q > c->ecn_kmax_bytes)
		return 1ULL << 32;
	return c->ecn_pmax_t * (q - c->ecn_kmin_bytes) / (c->ecn_kmax_bytes - c->ecn_kmin_bytes);
}

/* Live mode: the egress port's virtual queue (docs/pipeline.md 5; SPEC's eBPF queue model),
 * drained at the port's line rate. Stores in *depth the bytes the packet finds queued and adds
 * the packet; returns -1 without adding it when that would exceed the port's buffer (tail drop).
 * A port with no rate (no shape, no ECN line rate) never queues. The queue is one word that
 * every CPU updates with compare-and-swap; a backlog is kept below 1 s so that the arithmetic
 * (microseconds x bit/s) cannot overflow. */
#define VQ_MAX_BACKLOG_NS 1000000000ULL
#define VQ_CAS_TRIES 8

static __always_inline int vqueue_enqueue(const struct icpn_cfg *c, __u32 port, __u32 len,
					  __u64 *depth)
{
	struct icpn_vqueue *vq = bpf_map_lookup_elem(&vqueues, &port);
	struct icpn_port_shape *sh = bpf_map_lookup_elem(&port_shape, &port);
	__u64 rate = c->flags & ICPN_CFG_ECN ? c->line_rate_bps : 0, limit = 0;
	__u64 now, old, start, next, q = 0;

	*depth = 0;
	if (sh && sh->rate_bps) {
		rate = sh->rate_bps;
		limit = sh->limit_bytes;
	}
	if (!vq || !rate)
		return 0;
	now = bpf_ktime_get_ns();
	for (int i = 0; i < VQ_CAS_TRIES; i++) {
		old = vq->busy_until_ns;
		start = old > now ? old : now;
		q = (start - now) / 1000 * rate / 8000000;
		if (limit && q + len > limit) {
			*depth = q;
			return -1;
		}
		next = start + (__u64)len * 8000000000ULL / rate;
		if (next > now + VQ_MAX_BACKLOG_NS)
			next = now + VQ_MAX_BACKLOG_NS;
		if (__sync_val_compare_and_swap(&vq->busy_until_ns, old, next) == old)
			break;
	}
	*depth = q;
	return 0;
}

static __always_inline struct icpn_port_stats *port_stats_of(__u32 port)
{
	return bpf_map_lookup_elem(&port_stats, &port);
}

/* SPEC 5 priority: the 3 high bits of the DSCP, or the configured default. */
static __always_inline __u32 pfc_priority(const struct icpn_cfg *c, int has_tos, __u8 tos)
{
	if ((c->flags & ICPN_CFG_PFC_PRIO_DSCP) && has_tos)
		return tos >> 5;
	return c->pfc_default_prio & 7;
}

static __always_inline struct icpn_pfc_state *pfc_state_of(__u32 port, __u32 prio)
{
	__u32 idx = (port & (ICPN_MAX_PORTS - 1)) * ICPN_PRIORITIES + (prio & 7);

	return bpf_map_lookup_elem(&pfc_state, &idx);
}

/* IEEE 802.1Qbb frame pausing `prio` for `time` quanta (0 = XON), zero-padded to 60 octets. */
static __always_inline void pfc_emit(struct icpn_scratch *s, const __u8 *src_mac, __u32 port,
				     __u32 prio, __u16 time)
{
	__u8 *f = s->frame.data;

	__builtin_memset(f, 0, PFC_MIN_FRAME);
	__builtin_memcpy(f, pfc_dst_mac, ETH_ALEN);
	__builtin_memcpy(f + 6, src_mac, ETH_ALEN);
	f[12] = ICPN_PFC_ETHERTYPE >> 8;
	f[13] = ICPN_PFC_ETHERTYPE & 0xff;
	f[14] = ICPN_PFC_OPCODE >> 8;
	f[15] = ICPN_PFC_OPCODE & 0xff;
	f[17] = 1 << (prio & 7);
	f[18 + (prio & 7) * 2] = time >> 8;
	f[19 + (prio & 7) * 2] = time & 0xff;
	s->frame.port = port;
	s->frame.len = PFC_MIN_FRAME;
	emit_frame(s);
}

#endif
