/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Includes, helpers and the packet-access layer every ICPN program uses.
 *
 * Packets are read and written with the load/store-bytes helpers at explicit offsets rather than
 * with direct packet pointers: the pipeline moves headers around (encapsulation, PSP, APN
 * insertion), which invalidates packet pointers, and offsets that walk extension-header chains
 * keep the verifier's range tracking simple. The same code compiles for XDP and for tc
 * (ICPN_TC defined) through the CTX and pkt_* macros below.
 */
#ifndef ICPN_COMMON_H
#define ICPN_COMMON_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <linux/seg6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "icpn_consts.h"
#include "icpn_ebpf.h"

/* Masks the code relies on instead of bounds checks the verifier would need spelled out. */
_Static_assert((ICPN_MAX_EXT_HEADERS & (ICPN_MAX_EXT_HEADERS - 1)) == 0,
	       "ext[i & (ICPN_MAX_EXT_HEADERS - 1)] needs a power of two");
_Static_assert(ICPN_DROP_SID_LOOP <= 31 && ICPN_DROP_QUEUE_FULL <= 31,
	       "stats index STAT_DROP_BASE + (drop & 31) needs every drop code below 32");
_Static_assert(ICPN_STAT_DROP_BASE + 31 < ICPN_N_STATS,
	       "the stats map must hold STAT_DROP_BASE + 31");

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#define __noinline __attribute__((noinline))
/* A function the verifier checks once on its own (a BPF "global function"). */
#define ICPN_STAGE __noinline

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Largest frame the programs handle (an XDP buffer is one page). */
#define ICPN_MAX_FRAME 4096

/* barrier_var() (bpf_helpers.h) hides a value from clang's range reasoning, so that the bound
 * check written after it is the one the verifier sees. */

#ifdef ICPN_TC
#define CTX struct __sk_buff
#define pkt_len(ctx) ((__u32)(ctx)->len)
#define pkt_load(ctx, off, buf, n) bpf_skb_load_bytes(ctx, off, buf, n)
#define pkt_store(ctx, off, buf, n) bpf_skb_store_bytes(ctx, off, (void *)(buf), n, 0)
#define pkt_store16(ctx, off, src) pkt_store(ctx, off, src, 16)
#else
#define CTX struct xdp_md

/* The frame's length without the bpf_xdp_get_buff_len call (no program takes multi-buffer
 * frames). Subtracting packet pointers needs a privileged loader, which these programs have. */
static __always_inline __u32 xdp_len(struct xdp_md *ctx)
{
	__u64 len, data;

	/* in asm: clang would keep the pointers as u32 and spill them, which the verifier refuses */
	asm volatile("%[len] = *(u32 *)(%[ctx] + %[end_off])\n\t"
		     "%[data] = *(u32 *)(%[ctx] + %[data_off])\n\t"
		     "%[len] -= %[data]"
		     : [len] "=&r"(len), [data] "=&r"(data)
		     : [ctx] "r"(ctx), [end_off] "i"(offsetof(struct xdp_md, data_end)),
		       [data_off] "i"(offsetof(struct xdp_md, data)));
	return (__u32)len;
}
#define pkt_len(ctx) xdp_len(ctx)

/* A fixed-size access goes straight to the packet: no program takes multi-buffer frames, so the
 * frame is data..data_end, and a helper call costs far more than the copy (about 32 ns each on
 * a VM whose kernel returns through the SRSO safe-RET thunk; docs/ebpf-performance.md). */

/* The n bytes at `off`, or NULL when they are not all in the frame. */
static __always_inline __u8 *xdp_ptr(struct xdp_md *ctx, __u32 off, __u32 n)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 *p, *q;

	if (off > ICPN_MAX_FRAME)
		return NULL;
	/* A bound the verifier keeps: clang may have checked a 32-bit copy of a 64-bit sum. The
	 * mask changes nothing (off <= ICPN_MAX_FRAME); the barrier keeps clang from dropping it. */
	barrier_var(off);
	off &= 2 * ICPN_MAX_FRAME - 1;
	p = data + off;
	q = p + n;
	barrier_var(q); /* the comparison the verifier needs, not one clang rewrote */
	if ((void *)q > end)
		return NULL;
	return p;
}

static __always_inline long xdp_access(struct xdp_md *ctx, __u32 off, void *buf, __u32 n,
				       int store)
{
	__u8 *p = xdp_ptr(ctx, off, n);

	if (!p)
		return -1;
	if (store)
		__builtin_memcpy(p, buf, n);
	else
		__builtin_memcpy(buf, p, n);
	return 0;
}

/* 16 bytes (a SID) from an 8-byte-aligned map value in two 64-bit moves instead of 16 byte
 * moves. The packet side may be unaligned: the verifier allows that where the CPU handles it
 * (x86, arm64: no BPF_F_STRICT_ALIGNMENT). */
static __always_inline long xdp_store16(struct xdp_md *ctx, __u32 off, const void *src)
{
	const __u64 *w = src;
	__u8 *p = xdp_ptr(ctx, off, 16);

	if (!p)
		return -1;
	((__u64 *)p)[0] = w[0];
	((__u64 *)p)[1] = w[1];
	return 0;
}
#define pkt_store16(ctx, off, src) xdp_store16(ctx, off, src)

#define pkt_load(ctx, off, buf, n)                                                           \
	(__builtin_constant_p(n) ? xdp_access(ctx, off, buf, n, 0)                          \
				 : bpf_xdp_load_bytes(ctx, off, buf, n))
/* the helper is declared with a non-const buffer; it only reads it */
#define pkt_store(ctx, off, buf, n)                                                          \
	(__builtin_constant_p(n) ? xdp_access(ctx, off, (void *)(buf), n, 1)                \
				 : bpf_xdp_store_bytes(ctx, off, (void *)(buf), n))
#endif

#endif
