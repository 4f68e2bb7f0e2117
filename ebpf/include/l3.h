/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Writes to the outermost IP header (at ETH_HLEN): IPv6 payload length, hop limit / TTL and
 * traffic class / TOS, with the IPv4 header checksum updated incrementally (RFC 1624) for each
 * changed word. */
#ifndef ICPN_L3_H
#define ICPN_L3_H

#include "state.h"
#include "csum.h"

#define IP6_OFF_PLEN (ETH_HLEN + 4)

/* Replace the 16-bit IPv4 header word at `off` (from the IP header) and fix the checksum. */
static __always_inline int ip4_set_word(CTX *ctx, __u32 off, __u16 new)
{
	__u8 w[2], c[2];
	__u16 old, check;

	if (pkt_load(ctx, ETH_HLEN + off, w, 2) < 0 || pkt_load(ctx, ETH_HLEN + 10, c, 2) < 0)
		return -1;
	old = ((__u16)w[0] << 8) | w[1];
	if (old == new)
		return 0;
	check = csum_replace16(((__u16)c[0] << 8) | c[1], old, new);
	w[0] = new >> 8;
	w[1] = new & 0xff;
	c[0] = check >> 8;
	c[1] = check & 0xff;
	if (pkt_store(ctx, ETH_HLEN + off, w, 2) < 0 || pkt_store(ctx, ETH_HLEN + 10, c, 2) < 0)
		return -1;
	return 0;
}

/* IPv6 Payload Length of a packet that ends at ip_end. */
static __always_inline int ip6_set_plen(CTX *ctx, __u32 ip_end)
{
	__be16 plen = bpf_htons(ip_end - ETH_HLEN - IP6_HLEN);

	return pkt_store(ctx, IP6_OFF_PLEN, &plen, 2);
}

/* IPv6 hop limit / IPv4 TTL. */
static __always_inline int ip_set_hop_limit(CTX *ctx, struct icpn_pkt *p, __u8 hl)
{
	if (p->l3_proto == ETH_P_IPV6) {
		if (pkt_store(ctx, ETH_HLEN + 7, &hl, 1) < 0)
			return -1;
	} else {
		__u8 proto;

		if (pkt_load(ctx, ETH_HLEN + 9, &proto, 1) < 0 ||
		    ip4_set_word(ctx, 8, ((__u16)hl << 8) | proto) < 0)
			return -1;
	}
	p->hop_limit = hl;
	return 0;
}

/* IPv6 traffic class / IPv4 TOS. */
static __always_inline int ip_set_tc(CTX *ctx, struct icpn_pkt *p, __u8 tc)
{
	if (tc == p->tc)
		return 0;
	if (p->l3_proto == ETH_P_IPV6) {
		__u8 b[2];

		if (pkt_load(ctx, ETH_HLEN, b, 2) < 0)
			return -1;
		b[0] = (b[0] & 0xf0) | (tc >> 4);
		b[1] = (b[1] & 0x0f) | (__u8)(tc << 4);
		if (pkt_store(ctx, ETH_HLEN, b, 2) < 0)
			return -1;
	} else {
		__u8 vihl;

		if (pkt_load(ctx, ETH_HLEN, &vihl, 1) < 0 ||
		    ip4_set_word(ctx, 0, ((__u16)vihl << 8) | tc) < 0)
			return -1;
	}
	p->tc = tc;
	return 0;
}

#endif
