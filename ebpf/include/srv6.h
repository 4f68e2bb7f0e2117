/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* SRv6 (RFC 8754, RFC 8986, RFC 9800; docs/pipeline.md section 2): SRH validation, End, End.X,
 * PSP, NEXT-CSID, the checks of End.DT* / End.DX*, and the H.Encaps / H.Encaps.Red headend. */
#ifndef ICPN_SRV6_H
#define ICPN_SRV6_H

#include "state.h"
#include "options.h"
#include "l3.h"
#include "ifit.h"

#define IP6_OFF_HOPLIMIT (ETH_HLEN + 7)
#define IP6_OFF_DADDR (ETH_HLEN + 24)
#define SRH_OFF_SL 3
#define SID_LEN 16

static __always_inline const struct icpn_ext *rh_ext(const struct icpn_pkt *p)
{
	return &p->ext[p->rh & (ICPN_MAX_EXT_HEADERS - 1)];
}

static __always_inline int has_srh(const struct icpn_pkt *p)
{
	return p->rh >= 0 && p->rh_type == ICPN_SRH_ROUTING_TYPE;
}

struct tlv_walk {
	CTX *ctx;
	__u32 off;
	__u32 end;
	int bad;
};

/* One SRH TLV (RFC 8754 2.1): Pad1 is one octet, any other TLV 2 + Length. */
static long srh_tlv_step(__u32 i, void *data)
{
	struct tlv_walk *w = data;
	__u8 h[2];

	if (w->off >= w->end)
		return 1;
	if (pkt_load(w->ctx, w->off, h, 1) < 0) {
		w->bad = 1;
		return 1;
	}
	if (h[0] == ICPN_SRH_TLV_PAD1) {
		w->off += 1;
		return 0;
	}
	if (w->off + 2 > w->end || pkt_load(w->ctx, w->off, h, 2) < 0 ||
	    w->off + 2 + h[1] > w->end) {
		w->bad = 1;
		return 1;
	}
	w->off += 2 + h[1];
	return 0;
}

/* RFC 8986 4.1 S09: LE fits in Hdr Ext Len and SL <= LE + 1; 0 or the drop reason. */
static __always_inline int srh_bounds(const struct ipv6_sr_hdr *srh)
{
	if ((int)srh->first_segment > (int)(srh->hdrlen / 2) - 1)
		return ICPN_DROP_BAD_SRH_LE;
	if (srh->segments_left > srh->first_segment + 1)
		return ICPN_DROP_BAD_SRH_SL;
	return 0;
}

/* RFC 8986 4.1 S08-S09 and RFC 8754 2.1 (the parser already made sure the header is in the
 * packet): LE fits in Hdr Ext Len, SL <= LE + 1, the TLVs after the segment list exactly fill
 * the rest of the header, as Linux's seg6_validate_srh checks. 0 or the drop reason. */
static __always_inline int srh_check(CTX *ctx, const struct icpn_pkt *p, struct ipv6_sr_hdr *srh)
{
	const struct icpn_ext *e = rh_ext(p);
	struct tlv_walk w = { .ctx = ctx };
	int rc;

	if (parse_srh(ctx, e->off, srh) < 0)
		return ICPN_DROP_INTERNAL; /* the parser measured the header: 8 octets at least */
	rc = srh_bounds(srh);
	if (rc)
		return rc;
	w.off = e->off + sizeof(*srh) + ((__u32)srh->first_segment + 1) * SID_LEN;
	w.end = e->off + e->len;
	if (w.off < w.end) /* the common SRH has no TLVs */
		bpf_loop(2048, srh_tlv_step, &w, 0);
	return w.bad ? ICPN_DROP_BAD_SRH : 0;
}

/* RFC 8986 4.16.1 S14-S17: remove the SRH, patch the Next Header that named it and the Payload
 * Length, then parse the packet again. */
static __always_inline int srv6_psp(CTX *ctx, struct icpn_scratch *s)
{
	struct icpn_pkt *p = &s->p;
	const struct icpn_ext *e = rh_ext(p);
	__u32 off = e->off, len = e->len;
	__u8 nh;

	if (pkt_load(ctx, off, &nh, 1) < 0 || pkt_store(ctx, e->named_at, &nh, 1) < 0)
		return -1;
	if (ip6_set_plen(ctx, p->ip_end - len) < 0 || pkt_remove(ctx, off, len, s->chunk) < 0)
		return -1;
	return parse_packet(ctx, p) ? -1 : 0;
}

/* End / End.X (RFC 8986 4.1, 4.2): SL -= 1, DA = List[SL], hop limit - 1; PSP at SL 0.
 * End.X goes to its adjacency; End returns R_AGAIN: the new DA is looked up again (S15). */
static __always_inline int srv6_end(CTX *ctx, struct icpn_scratch *s, const struct icpn_sid *sid)
{
	struct icpn_pkt *p = &s->p;
	struct ipv6_sr_hdr srh;
	__u32 sl;
	int rc;

	/* RFC 8986 4.1 order: S02 SL == 0, S05 hop limit, S09 LE / SL sanity. The parser put the
	 * whole routing header (8 octets at least) inside the packet, and the checks below put
	 * List[SL - 1] inside it: a failed read or write from here on is the node's, not the
	 * packet's (internal-error). */
	if (!has_srh(p))
		return drop(s, ICPN_DROP_NO_SRH);
	if (parse_srh(ctx, rh_ext(p)->off, &srh) < 0)
		return drop(s, ICPN_DROP_INTERNAL);
	if (srh.segments_left == 0)
		return drop(s, ICPN_DROP_SL_ZERO);
	if (p->hop_limit <= 1)
		return drop(s, ICPN_DROP_HOP_LIMIT);
	rc = srh_check(ctx, p, &srh);
	if (rc)
		return drop(s, rc);
	sl = srh.segments_left - 1;
	/* sl <= LE <= HdrExtLen/2 - 1: List[sl] lies inside the routing header */
	if (pkt_load(ctx, rh_ext(p)->off + sizeof(srh) + sl * SID_LEN, p->dst, SID_LEN) < 0)
		return drop(s, ICPN_DROP_INTERNAL);
	srh.segments_left = sl;
	p->hop_limit -= 1;
	if (pkt_store(ctx, rh_ext(p)->off + SRH_OFF_SL, &srh.segments_left, 1) < 0 ||
	    pkt_store(ctx, IP6_OFF_DADDR, p->dst, SID_LEN) < 0 ||
	    pkt_store(ctx, IP6_OFF_HOPLIMIT, &p->hop_limit, 1) < 0)
		return drop(s, ICPN_DROP_INTERNAL);
	/* PSP removes a header the parser measured and parses what it already parsed, less one
	 * header: nothing in it can fail because of the packet */
	if (sl == 0 && (sid->flavours & ICPN_FL_PSP) && srv6_psp(ctx, s) < 0)
		return drop(s, ICPN_DROP_INTERNAL);
	if (sid->behaviour == ICPN_B_END_X) {
		s->nh = sid->adj;
		return R_OUT;
	}
	return R_AGAIN;
}

/* Mask of the low n bits (0..128) of a 128-bit value held as (hi, lo). */
static __always_inline void mask_low(__u32 n, __u64 *hi, __u64 *lo)
{
	if (n >= 128) {
		*hi = ~0ULL;
		*lo = ~0ULL;
	} else if (n >= 64) {
		*hi = n == 64 ? 0 : (~0ULL >> (128 - n));
		*lo = ~0ULL;
	} else {
		*hi = 0;
		*lo = n == 0 ? 0 : (~0ULL >> (64 - n));
	}
}

/* RFC 9800 NEXT-CSID: with a non-zero argument (the bits after block + C-SID), shift them left
 * by one C-SID behind the block, hop limit - 1. R_CONT when the argument is zero: End applies. */
static __always_inline int srv6_next_csid(CTX *ctx, struct icpn_scratch *s,
					  const struct icpn_sid *sid)
{
	struct icpn_pkt *p = &s->p;
	__u32 block = sid->block_bits, csid = sid->csid_bits;
	__u64 hi, lo, ahi, alo, bhi, blo, nhi, nlo;

	if (block + csid >= 128 || csid == 0 || csid >= 64)
		return R_CONT;
	hi = bpf_be64_to_cpu(p->dst[0]);
	lo = bpf_be64_to_cpu(p->dst[1]);
	mask_low(128 - block - csid, &ahi, &alo);
	if (!(hi & ahi) && !(lo & alo))
		return R_CONT;
	if (p->hop_limit <= 1)
		return drop(s, ICPN_DROP_HOP_LIMIT);
	nhi = (hi << csid) | (lo >> (64 - csid));
	nlo = lo << csid;
	mask_low(128 - block, &bhi, &blo);
	p->dst[0] = bpf_cpu_to_be64((hi & ~bhi) | (nhi & bhi));
	p->dst[1] = bpf_cpu_to_be64((lo & ~blo) | (nlo & blo));
	p->hop_limit -= 1;
	/* the parsed IPv6 header: a failed write is the node's */
	if (pkt_store(ctx, IP6_OFF_DADDR, p->dst, SID_LEN) < 0 ||
	    pkt_store(ctx, IP6_OFF_HOPLIMIT, &p->hop_limit, 1) < 0)
		return drop(s, ICPN_DROP_INTERNAL);
	if (sid->behaviour == ICPN_B_END_X) {
		s->nh = sid->adj;
		return R_OUT;
	}
	return R_AGAIN;
}

/* H.Encaps / H.Encaps.Red (RFC 8986 5.1, 5.2; pipeline.md 2): push
 * IPv6 [HBH: APN, AltMark, IOAM] [DOH: APN] [SRH (+ APN TLV)] in front of the IP packet.
 * Hop limit = inner hop limit (the transit step decrements it), TC = inner TC / TOS. */
static __always_inline int srv6_encap(CTX *ctx, struct icpn_scratch *s, const struct icpn_cfg *c,
				      const struct icpn_sidlist *sl, __u32 flow_label)
{
	struct icpn_pkt *p = &s->p;
	__u32 alen = s->apn_len & 0xff;
	int apn_hbh = s->has_apn && c->apn_carrier == ICPN_CARRIER_HBH;
	int apn_doh = s->has_apn && c->apn_carrier == ICPN_CARRIER_DOH;
	int apn_tlv = s->has_apn && c->apn_carrier == ICPN_CARRIER_SRH_TLV;
	__u32 area = (__u32)c->ioam_node_len * c->ioam_max_nodes * 4;
	__u32 hbh_len = 0, hbh_pre_ioam = 0, doh_len = 0, srh_len = 0, srh_body = 0, n_list;
	__u32 total, inner_len = p->ip_end - ETH_HLEN, off, inner_nh, nh;
	struct ipv6hdr ip6 = {};
	struct ipv6_sr_hdr srh = {};
	__u8 h[4];

	if (area > ICPN_OPT_MAX - 12)
		return drop(s, ICPN_DROP_TOO_BIG);
	if (apn_hbh || s->ifit_head) {
		__u32 l = 2;

		if (apn_hbh)
			l += 2 + alen;
		if (s->ifit_head) {
			l += 6;
			hbh_pre_ioam = l;
			l = (l + 3) & ~3U;
			l += 12 + area;
		}
		hbh_len = (l + 7) & ~7U;
	}
	if (apn_doh)
		doh_len = (4 + alen + 7) & ~7U;
	n_list = sl->n_segs;
	if (n_list > ICPN_MAX_SEGMENTS)
		return drop(s, ICPN_DROP_TOO_BIG);
	if (n_list == 0 && apn_tlv)
		n_list = 1; /* H.Encaps.Red of one SID with a TLV: the H.Encaps SRH */
	if (n_list) {
		srh_body = sizeof(srh) + n_list * SID_LEN + (apn_tlv ? 2 + alen : 0);
		srh_len = (srh_body + 7) & ~7U;
	}
	total = IP6_HLEN + hbh_len + doh_len + srh_len;
	if (total - IP6_HLEN + inner_len > 0xffff)
		return drop(s, ICPN_DROP_TOO_BIG);
	inner_nh = p->l3_proto == ETH_P_IPV6 ? ICPN_IPPROTO_IPV6 : ICPN_IPPROTO_IPIP;

	nh = srh_len ? ICPN_IPPROTO_ROUTING : inner_nh;
	nh = doh_len ? ICPN_IPPROTO_DSTOPTS : nh;
	nh = hbh_len ? ICPN_IPPROTO_HOPOPTS : nh;
	ip6.version = 6;
	ip6.priority = p->tc >> 4;
	ip6.flow_lbl[0] = (__u8)(p->tc << 4) | ((flow_label >> 16) & 0xf);
	ip6.flow_lbl[1] = flow_label >> 8;
	ip6.flow_lbl[2] = flow_label;
	ip6.payload_len = bpf_htons(total - IP6_HLEN + inner_len);
	ip6.nexthdr = nh;
	ip6.hop_limit = p->hop_limit;
	__builtin_memcpy(&ip6.saddr, c->source, 16);
	__builtin_memcpy(&ip6.daddr, sl->da, 16);

	if (total > ICPN_MAX_FRAME)
		return drop(s, ICPN_DROP_TOO_BIG);
	if (pkt_push_front(ctx, total, s->chunk) < 0)
		return drop(s, grow_drop_reason(p->len, total));
	/* From here on every write lands in the room just made, and the parse below reads headers
	 * this function wrote: a failure is the node's (internal-error), not the packet's. */
	h[0] = ETH_P_IPV6 >> 8;
	h[1] = ETH_P_IPV6 & 0xff;
	if (pkt_store(ctx, ETH_HLEN - 2, h, 2) < 0 || pkt_store(ctx, ETH_HLEN, &ip6, sizeof(ip6)) < 0)
		return drop(s, ICPN_DROP_INTERNAL);
	off = ETH_HLEN + IP6_HLEN;
	if (hbh_len) {
		__u32 end = off + hbh_len;

		nh = srh_len ? ICPN_IPPROTO_ROUTING : inner_nh;
		nh = doh_len ? ICPN_IPPROTO_DSTOPTS : nh;
		h[0] = nh;
		h[1] = hbh_len / 8 - 1;
		if (pkt_store(ctx, off, h, 2) < 0)
			return drop(s, ICPN_DROP_INTERNAL);
		off += 2;
		if (apn_hbh && opt_write(ctx, off, c->apn_opt_type, s->apn_data, alen) < 0)
			return drop(s, ICPN_DROP_INTERNAL);
		off += apn_hbh ? 2 + alen : 0;
		if (s->ifit_head) {
			__u32 pad = ((hbh_pre_ioam + 3) & ~3U) - hbh_pre_ioam;

			if (altmark_write(ctx, off, s->ifit_flow) < 0 ||
			    pad_write(ctx, s->zeros, off + 6, pad, ICPN_IPV6_OPT_PAD1, ICPN_IPV6_OPT_PADN) < 0)
				return drop(s, ICPN_DROP_INTERNAL);
			off += 6 + pad;
			if (ioam_write(ctx, s, c, off, area) < 0)
				return drop(s, ICPN_DROP_INTERNAL);
			off += 12 + area;
		}
		if (pad_write(ctx, s->zeros, off, end - off, ICPN_IPV6_OPT_PAD1, ICPN_IPV6_OPT_PADN) < 0)
			return drop(s, ICPN_DROP_INTERNAL);
		off = end;
	}
	if (doh_len) {
		__u32 end = off + doh_len;

		h[0] = srh_len ? ICPN_IPPROTO_ROUTING : inner_nh;
		h[1] = doh_len / 8 - 1;
		if (pkt_store(ctx, off, h, 2) < 0 ||
		    opt_write(ctx, off + 2, c->apn_opt_type, s->apn_data, alen) < 0 ||
		    pad_write(ctx, s->zeros, off + 4 + alen, end - off - 4 - alen, ICPN_IPV6_OPT_PAD1,
			      ICPN_IPV6_OPT_PADN) < 0)
			return drop(s, ICPN_DROP_INTERNAL);
		off = end;
	}
	if (srh_len) {
		__u32 end = off + srh_len, seg_bytes = n_list * SID_LEN;

		srh.nexthdr = inner_nh;
		srh.hdrlen = srh_len / 8 - 1;
		srh.type = ICPN_SRH_ROUTING_TYPE;
		srh.segments_left = sl->n_total - 1;
		srh.first_segment = n_list - 1;
		if (pkt_store(ctx, off, &srh, sizeof(srh)) < 0)
			return drop(s, ICPN_DROP_INTERNAL);
		off += sizeof(srh);
		if (sl->n_segs == 0) {
			if (pkt_store(ctx, off, sl->da, SID_LEN) < 0)
				return drop(s, ICPN_DROP_INTERNAL);
		} else {
			/* a SID at a time: fixed-size stores go straight to the packet */
			for (__u32 i = 0; i < ICPN_MAX_SEGMENTS; i++) {
				if (i >= n_list)
					break;
				if (pkt_store16(ctx, off + i * SID_LEN, sl->segs[i]) < 0)
					return drop(s, ICPN_DROP_INTERNAL);
			}
		}
		off += seg_bytes;
		if (apn_tlv) {
			if (opt_write(ctx, off, c->apn_srh_tlv_type, s->apn_data, alen) < 0)
				return drop(s, ICPN_DROP_INTERNAL);
			off += 2 + alen;
		}
		if (pad_write(ctx, s->zeros, off, end - off, ICPN_SRH_TLV_PAD1, ICPN_SRH_TLV_PADN) < 0)
			return drop(s, ICPN_DROP_INTERNAL);
	}
	if (parse_packet(ctx, p) != 0)
		return drop(s, ICPN_DROP_INTERNAL);
	return R_CONT;
}

#endif
