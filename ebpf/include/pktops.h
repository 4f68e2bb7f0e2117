/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Growing and shrinking the frame at any offset (XDP; tc: insertion after the IPv6 header).
 *
 * XDP can only move the start of the frame (bpf_xdp_adjust_head) and its end
 * (bpf_xdp_adjust_tail). Inserting n bytes at `off` therefore grows the head and moves the first
 * `off` bytes down; removing moves them up and shrinks the head. The headroom is 256 bytes minus
 * the xdp_frame the kernel keeps there (about 216 usable, also in BPF_PROG_TEST_RUN); a bigger
 * push (H.Encaps with an IOAM trace) grows the tail instead and moves the whole frame, in
 * ICPN_CHUNK-byte steps through a scratch buffer.
 */
#ifndef ICPN_PKTOPS_H
#define ICPN_PKTOPS_H

#include "common.h"

#define ICPN_CHUNK 256
#define ICPN_MAX_CHUNKS (ICPN_MAX_FRAME / ICPN_CHUNK)

/* Why a frame of len bytes could not grow by n. Past ICPN_MAX_FRAME, the largest frame the
 * programs handle, the packet is too big for this node as for an MTU: too-big, the input's
 * reason. Within it the node could not do what the contract asks of a packet it accepted (its
 * buffer had no room: the kernel keeps the tail of the page for skb_shared_info; or a helper
 * failed): internal-error. */
static __always_inline __u32 grow_drop_reason(__u32 len, __u32 n)
{
	return len + n > ICPN_MAX_FRAME ? ICPN_DROP_TOO_BIG : ICPN_DROP_INTERNAL;
}

struct move_ctx {
	CTX *ctx;
	__u8 *buf;
	__u32 dst;
	__u32 src;
	__u32 n;
	__u32 done;
	int err;
};

/* One chunk of pkt_move(); a bpf_loop callback, so the verifier checks it once. */
static long pkt_move_step(__u32 i, void *data)
{
	struct move_ctx *m = data;
	__u32 c, s, d;

	if (m->done >= m->n)
		return 1;
	c = m->n - m->done;
	if (c > ICPN_CHUNK)
		c = ICPN_CHUNK;
	if (m->dst < m->src) {
		/* moving towards the start: front to back */
		s = m->src + m->done;
		d = m->dst + m->done;
	} else {
		/* moving towards the end: back to front */
		s = m->src + m->n - m->done - c;
		d = m->dst + m->n - m->done - c;
	}
	barrier_var(c);
	if (c == 0 || c > ICPN_CHUNK || pkt_load(m->ctx, s, m->buf, c) < 0 ||
	    pkt_store(m->ctx, d, m->buf, c) < 0) {
		m->err = 1;
		return 1;
	}
	m->done += c;
	return 0;
}

/* Copy n bytes from src to dst inside the frame (the regions may overlap), through `buf`
 * (ICPN_CHUNK bytes of scratch). */
static __always_inline int pkt_move(CTX *ctx, __u32 dst, __u32 src, __u32 n, __u8 *buf)
{
	struct move_ctx m = { .ctx = ctx, .buf = buf, .dst = dst, .src = src, .n = n };

	if (dst == src || n == 0)
		return 0;
	bpf_loop(ICPN_MAX_CHUNKS + 1, pkt_move_step, &m, 0);
	return m.err || m.done < n ? -1 : 0;
}

#ifndef ICPN_TC
/* Make n bytes of room at the start; the frame's bytes end up at [n, n + len). */
static __always_inline int pkt_push_front(CTX *ctx, __u32 n, __u8 *buf)
{
	__u32 len;

	if (n == 0)
		return 0;
	if (bpf_xdp_adjust_head(ctx, -(int)n) == 0)
		return 0;
	len = pkt_len(ctx);
	if (bpf_xdp_adjust_tail(ctx, (int)n) < 0)
		return -1;
	return pkt_move(ctx, n, 0, len, buf);
}

/* Drop the first n bytes. */
static __always_inline int pkt_pop_front(CTX *ctx, __u32 n)
{
	if (n == 0)
		return 0;
	return bpf_xdp_adjust_head(ctx, (int)n) == 0 ? 0 : -1;
}

/* Insert n (uninitialised) bytes at `off`. */
static __always_inline int pkt_insert(CTX *ctx, __u32 off, __u32 n, __u8 *buf)
{
	if (pkt_push_front(ctx, n, buf) < 0)
		return -1;
	return pkt_move(ctx, 0, n, off, buf);
}

/* Remove the n bytes at `off`. */
static __always_inline int pkt_remove(CTX *ctx, __u32 off, __u32 n, __u8 *buf)
{
	if (pkt_move(ctx, n, 0, off, buf) < 0)
		return -1;
	return pkt_pop_front(ctx, n);
}
#else
/* tc: insert n (uninitialised) bytes at `off`, at or after the IPv6 fixed header.
 * bpf_skb_adjust_room(BPF_ADJ_ROOM_NET) opens the room right after the 40-byte header; the
 * bytes between it and `off` (an HBH the new header goes after) are moved up. */
static __always_inline int pkt_insert(CTX *ctx, __u32 off, __u32 n, __u8 *buf)
{
	const __u32 net_end = ETH_HLEN + 40;

	if (off < net_end || bpf_skb_adjust_room(ctx, (__s32)n, BPF_ADJ_ROOM_NET, 0) < 0)
		return -1;
	return pkt_move(ctx, net_end, net_end + n, off - net_end, buf);
}
#endif

#endif
