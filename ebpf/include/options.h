/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* IPv6 options (RFC 8200 4.2) and SRH TLVs: writing them, padding (Pad1 / PadN), and walking
 * the options of a HBH / DOH header with bpf_loop (a header may hold up to 2046 of them). */
#ifndef ICPN_OPTIONS_H
#define ICPN_OPTIONS_H

#include "common.h"

/* One TLV: type, length, then `len` bytes of `data` (a scratch buffer). */
static __always_inline int opt_write(CTX *ctx, __u32 off, __u8 type, const __u8 *data, __u32 len)
{
	__u8 h[2] = { type, (__u8)len };

	if (pkt_store(ctx, off, h, 2) < 0)
		return -1;
	len &= 0xff;
	if (len == 0)
		return 0;
	return pkt_store(ctx, off + 2, data, len);
}

/* n bytes of padding: Pad1 for one, PadN (zero data) for more. */
static __always_inline int pad_write(CTX *ctx, const __u8 *zeros, __u32 off, __u32 n, __u8 pad1,
				     __u8 padn)
{
	__u8 h[2] = { padn, (__u8)(n - 2) };

	if (n == 0)
		return 0;
	if (n == 1)
		return pkt_store(ctx, off, &pad1, 1);
	if (pkt_store(ctx, off, h, 2) < 0)
		return -1;
	n = (n - 2) & 0xff;
	if (n == 0)
		return 0;
	return pkt_store(ctx, off + 2, zeros, n);
}

/* RFC 9343 2: AltMark option 0x12 with data FlowMonID(20) | L | D | Reserved(10). */
static __always_inline int altmark_write(CTX *ctx, __u32 off, __u32 data)
{
	__u8 o[6] = { ICPN_ALTMARK_OPT_TYPE, 4 };
	__be32 d = bpf_htonl(data);

	__builtin_memcpy(&o[2], &d, 4);
	return pkt_store(ctx, off, o, sizeof(o));
}

/* Walk of an options header: finds the first option of up to two types. */
struct opt_walk {
	CTX *ctx;
	__u32 off;	/* next option */
	__u32 end;	/* end of the header */
	__u8 want[2];
	__u8 found_n;
	__u8 pad;
	__u32 found_off[2];	/* option offsets (0 = not found) */
	__u8 found_len[2];
	__u8 pad2[2];
};

/* RFC 8200 4.2 as pyctl's reference walks it: Pad1 is one octet; the walk stops at an option
 * that would run past the header. */
static __always_inline long opt_walk_one(struct opt_walk *w)
{
	__u8 h[2];

	if (w->off >= w->end)
		return 1;
	if (pkt_load(w->ctx, w->off, h, 1) < 0)
		return 1;
	if (h[0] == ICPN_IPV6_OPT_PAD1) {
		w->off += 1;
		return 0;
	}
	if (w->off + 2 > w->end || pkt_load(w->ctx, w->off, h, 2) < 0 ||
	    w->off + 2 + h[1] > w->end)
		return 1;
	for (int k = 0; k < 2; k++) {
		if (h[0] == w->want[k] && !w->found_off[k]) {
			w->found_off[k] = w->off;
			w->found_len[k] = h[1];
			w->found_n++;
		}
	}
	w->off += 2 + h[1];
	return w->found_n >= 2 ? 1 : 0;
}

/* the same step as a bpf_loop callback */
static long opt_walk_step(__u32 i, void *data)
{
	return opt_walk_one(data);
}

#define OPT_WALK_INLINE 4

/* First options of types t0 and t1 (give the same type twice to look for one) in the options
 * header at [off, off + len). */
static __always_inline void opt_find(CTX *ctx, struct opt_walk *w, __u32 off, __u32 len, __u8 t0,
				     __u8 t1)
{
	w->ctx = ctx;
	w->off = off + 2;
	w->end = off + len;
	w->want[0] = t0;
	w->want[1] = t1;
	w->found_n = t0 == t1 ? 1 : 0;
	w->found_off[0] = w->found_off[1] = 0;
	w->found_len[0] = w->found_len[1] = 0;
	/* the first steps inline (the options a headend writes are found in two or three), the
	 * rest, if any, in a bpf_loop: the same steps either way */
	for (int i = 0; i < OPT_WALK_INLINE; i++)
		if (opt_walk_one(w))
			return;
	bpf_loop(2048 - OPT_WALK_INLINE, opt_walk_step, w, 0);
}

#endif
