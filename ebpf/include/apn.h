/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* APN (SPEC 2, docs/pipeline.md 3): APN-ID widths, and the insertion of an APN option into a
 * packet that is not encapsulated (the network-side edge and the host's tc egress hook). */
#ifndef ICPN_APN_H
#define ICPN_APN_H

#include "common.h"
#include "parsing.h"
#include "pktops.h"
#include "options.h"

static __always_inline __u32 apn_id_width(__u8 id_type)
{
	switch (id_type) {
	case ICPN_APN_ID_TYPE_32:
		return 4;
	case ICPN_APN_ID_TYPE_64:
		return 8;
	case ICPN_APN_ID_TYPE_128:
		return 16;
	}
	return 0;
}

/* pipeline.md 3, no encapsulation: a new HBH (kind 0) right after the IPv6 header, or a new DOH
 * (kind 60) right after the IPv6 header or its HBH, holding the option (opt_type, data[alen]).
 * 0 when inserted (then *p is stale), -1 when a header of that kind is already there (the
 * existing one wins), else the drop reason: too-big when the Payload Length would exceed 65535
 * (the contract's case) or the frame ICPN_MAX_FRAME (grow_drop_reason); internal-error when a
 * write fails, since every offset written was checked by the parser. */
static __always_inline int apn_insert_header(CTX *ctx, const struct icpn_pkt *p, __u8 kind,
					     __u8 opt_type, const __u8 *data, __u32 alen,
					     const __u8 *zeros, __u8 *chunk)
{
	__u32 named_at = ETH_HLEN + 6, at = ETH_HLEN + IP6_HLEN, idx = 0;
	__u32 hlen = (4 + (alen & 0xff) + 7) & ~7U;
	__be16 plen;
	__u8 h[2];

	alen &= 0xff;
	if (kind == ICPN_IPPROTO_DSTOPTS && p->n_ext > 0 &&
	    p->ext[0].kind == ICPN_IPPROTO_HOPOPTS) {
		named_at = p->ext[0].off;
		at = p->ext[0].off + p->ext[0].len;
		idx = 1;
	}
	if (p->n_ext > idx && p->ext[idx & (ICPN_MAX_EXT_HEADERS - 1)].kind == kind)
		return -1;
	if (p->ip_end - ETH_HLEN - IP6_HLEN + hlen > 0xffff)
		return ICPN_DROP_TOO_BIG;
	if (pkt_load(ctx, named_at, &h[0], 1) < 0)
		return ICPN_DROP_INTERNAL;
	h[1] = hlen / 8 - 1;
	if (at > ICPN_MAX_FRAME)
		return ICPN_DROP_INTERNAL;
	if (pkt_insert(ctx, at, hlen, chunk) < 0)
		return grow_drop_reason(p->len, hlen);
	plen = bpf_htons(p->ip_end + hlen - ETH_HLEN - IP6_HLEN);
	if (pkt_store(ctx, at, h, 2) < 0 || opt_write(ctx, at + 2, opt_type, data, alen) < 0 ||
	    pad_write(ctx, zeros, at + 4 + alen, hlen - 4 - alen, ICPN_IPV6_OPT_PAD1,
		      ICPN_IPV6_OPT_PADN) < 0 ||
	    pkt_store(ctx, named_at, &kind, 1) < 0 || pkt_store(ctx, ETH_HLEN + 4, &plen, 2) < 0)
		return ICPN_DROP_INTERNAL;
	return 0;
}

#endif
