/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Internet checksums: RFC 1624 incremental updates of the IPv4 header checksum, and the full
 * UDP checksum of packets the node builds itself (IFIT reports). */
#ifndef ICPN_CSUM_H
#define ICPN_CSUM_H

#include "common.h"

static __always_inline __u16 csum_fold32(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), all in host order 16-bit words. */
static __always_inline __u16 csum_replace16(__u16 check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~check;

	sum += (__u16)~old;
	sum += new;
	return (__u16)~csum_fold32(sum);
}

/* Longest buffer csum_add_buf() sums (an IFIT report's UDP datagram is at most 312 bytes). */
#define ICPN_CSUM_MAX 320

/* One's-complement sum of a 16-byte address. */
static __always_inline __u32 csum_add_addr(__u32 sum, const __u8 *a)
{
	for (int i = 0; i < 16; i += 2)
		sum += ((__u32)a[i] << 8) | a[i + 1];
	return sum;
}

struct csum_ctx {
	const __u8 *buf;
	__u32 len;
	__u32 sum;
};

static long csum_step(__u32 i, void *data)
{
	struct csum_ctx *c = data;
	__u32 at = i * 2;

	barrier_var(at);
	if (at > ICPN_CSUM_MAX - 2 || at + 1 >= c->len)
		return 1;
	c->sum += ((__u32)c->buf[at] << 8) | c->buf[at + 1];
	return 0;
}

/* One's-complement sum (unfolded) of `len` bytes (even, at most ICPN_CSUM_MAX) of a buffer
 * that has at least ICPN_CSUM_MAX readable bytes. */
static __always_inline __u32 csum_add_buf(__u32 sum, const __u8 *buf, __u32 len)
{
	struct csum_ctx c = { .buf = buf, .len = len, .sum = sum };

	bpf_loop(ICPN_CSUM_MAX / 2, csum_step, &c, 0);
	return c.sum;
}

#endif
