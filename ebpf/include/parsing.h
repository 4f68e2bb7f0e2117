/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Header parsing (docs/pipeline.md section 1 step 3).
 *
 * One bounds-checking helper per header, xdp-tools style: each reads its header at the cursor,
 * checks it against the packet, advances the cursor and returns the next protocol (or -1).
 * parse_packet() runs them in order and fills struct icpn_pkt, the parse state every later stage
 * reads. The IP header is always at ETH_HLEN: the pipeline re-parses after it moves headers.
 */
#ifndef ICPN_PARSING_H
#define ICPN_PARSING_H

#include "common.h"

struct hdr_cursor {
	__u32 off;
};

/* An IPv6 extension header: its kind (the Next Header value naming it), where it starts, its
 * length, and the offset of the Next Header byte that names it. */
struct icpn_ext {
	__u16 off;
	__u16 len;
	__u16 named_at;
	__u8 kind;
	__u8 pad;
};

/* Parse state of the frame being processed. Offsets are from the start of the frame. */
struct icpn_pkt {
	__u32 len;		/* frame length */
	__u32 in_port;
	__u64 now_us;
	__u32 rand32;
	__u16 l3_proto;		/* EtherType of the outermost header: ETH_P_IPV6 / ETH_P_IP */
	__u16 ip_end;		/* end of the IP packet (payload length / total length) */
	__u16 l4_off;		/* first byte after the IP header and its extension headers */
	__u8 l4_proto;		/* upper-layer protocol: Next Header after them */
	__u8 n_ext;
	struct icpn_ext ext[ICPN_MAX_EXT_HEADERS];
	__s8 rh;		/* index in ext[] of the first Routing header, or -1 */
	__u8 rh_type;
	__u8 tc;		/* IPv6 traffic class / IPv4 TOS */
	__u8 hop_limit;		/* IPv6 hop limit / IPv4 TTL */
	__u8 has_ports;
	__u8 is_roce;
	__u8 fragment;		/* IPv4 non-first fragment */
	__u8 pad;
	__u32 flowlabel;
	__u64 src[2];		/* addresses, IPv4 v4-mapped (::ffff:a.b.c.d) */
	__u64 dst[2];
	__u16 sport;		/* 0 unless TCP/UDP with the ports present */
	__u16 dport;
	__u32 qp;		/* RoCEv2 destination QP, when is_roce */
};

#define IP6_HLEN 40
#define UDP_HLEN 8
#define BTH_LEN 12

static __always_inline void v4_mapped(__u64 a[2], __be32 addr)
{
	__u8 *b = (__u8 *)a;

	a[0] = 0;
	a[1] = 0;
	b[10] = 0xff;
	b[11] = 0xff;
	__builtin_memcpy(&b[12], &addr, 4);
}

/* Ethernet; returns the EtherType (host order). Only the EtherType is read: the addresses are
 * the PFC stage's business. */
static __always_inline int parse_ethhdr(CTX *ctx, struct hdr_cursor *c)
{
	__be16 proto;

	if (pkt_load(ctx, c->off + offsetof(struct ethhdr, h_proto), &proto, sizeof(proto)) < 0)
		return -1;
	c->off += sizeof(struct ethhdr);
	return bpf_ntohs(proto);
}

/* IPv6 fixed header, read in place (*ip6; tc: a copy in buf): version 6 and a payload that fits
 * in the frame; returns Next Header. */
static __always_inline int parse_ip6hdr(CTX *ctx, struct hdr_cursor *c, struct ipv6hdr *buf,
					const struct ipv6hdr **ip6)
{
	const struct ipv6hdr *h = pkt_view(ctx, c->off, sizeof(*h), buf);

	if (!h || h->version != 6)
		return -1;
	if (c->off + sizeof(*h) + bpf_ntohs(h->payload_len) > pkt_len(ctx))
		return -1;
	c->off += sizeof(*h);
	*ip6 = h;
	return h->nexthdr;
}

/* IPv4 header, read in place (*ip4; tc: a copy in buf): IHL >= 5, IHL*4 <= total length <= the
 * frame, and (RFC 1812 5.2.2, a router verifies it) a valid header checksum; returns the
 * protocol. */
static __always_inline int parse_iphdr(CTX *ctx, struct hdr_cursor *c, struct iphdr *buf,
				       const struct iphdr **ip4p)
{
	const struct iphdr *ip4 = pkt_view(ctx, c->off, sizeof(*ip4), buf);
	const __u8 *b = (const __u8 *)ip4;
	__u32 hlen, tot, sum = 0;

	if (!ip4)
		return -1;
	*ip4p = ip4;
	hlen = ip4->ihl * 4;
	tot = bpf_ntohs(ip4->tot_len);
	if (ip4->version != 4 || ip4->ihl < 5 || tot < hlen || c->off + tot > pkt_len(ctx))
		return -1;
	for (int i = 0; i < (int)sizeof(*ip4); i += 2)
		sum += ((__u32)b[i] << 8) | b[i + 1];
	/* options: at most 40 bytes, one 32-bit word at a time */
	for (__u32 o = sizeof(*ip4); o < 60; o += 4) {
		__u8 w[4];

		if (o >= hlen)
			break;
		if (pkt_load(ctx, c->off + o, w, 4) < 0)
			return -1;
		sum += (((__u32)w[0] << 8) | w[1]) + (((__u32)w[2] << 8) | w[3]);
	}
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	if (sum != 0xffff)
		return -1;
	c->off += hlen;
	return ip4->protocol;
}

/* An extension header's length from its Hdr Ext Len (8-octet units, not counting the first 8). */
static __always_inline __u32 ext_len(__u8 hdr_ext_len)
{
	return ((__u32)hdr_ext_len + 1) * 8;
}

static __always_inline int is_exthdr(__u8 nh)
{
	return nh == ICPN_IPPROTO_HOPOPTS || nh == ICPN_IPPROTO_DSTOPTS || nh == ICPN_IPPROTO_ROUTING;
}

/* An IPv6 extension header (HBH, DOH or Routing) that must end by `end`; returns its Next
 * Header and fills *ext (all but kind and named_at). */
static __always_inline int parse_exthdr(CTX *ctx, struct hdr_cursor *c, __u32 end,
					struct icpn_ext *ext)
{
	__u8 h[2];
	__u32 len;

	if (c->off + 2 > end || pkt_load(ctx, c->off, h, 2) < 0)
		return -1;
	len = ext_len(h[1]);
	if (c->off + len > end)
		return -1;
	ext->off = c->off;
	ext->len = len;
	c->off += len;
	return h[0];
}

/* The SRH fixed part (RFC 8754) at `off`; returns its Next Header. */
static __always_inline int parse_srh(CTX *ctx, __u32 off, struct ipv6_sr_hdr *srh)
{
	if (pkt_load(ctx, off, srh, sizeof(*srh)) < 0)
		return -1;
	return srh->nexthdr;
}

/* TCP/UDP ports (not for IPv4 non-first fragments), and for RoCEv2 (UDP 4791 with a whole
 * BTH) the destination QP, BTH bytes 5-7. */
static __always_inline void parse_l4(CTX *ctx, struct icpn_pkt *p)
{
	__be16 ports[2];
	__u8 qp[3];

	p->has_ports = 0;
	p->is_roce = 0;
	p->sport = 0;
	p->dport = 0;
	p->qp = 0;
	if ((p->l4_proto != ICPN_IPPROTO_TCP && p->l4_proto != ICPN_IPPROTO_UDP) || p->fragment)
		return;
	if (p->l4_off + 4 > p->ip_end || pkt_load(ctx, p->l4_off, ports, 4) < 0)
		return;
	p->has_ports = 1;
	p->sport = bpf_ntohs(ports[0]);
	p->dport = bpf_ntohs(ports[1]);
	if (p->l4_proto == ICPN_IPPROTO_UDP && p->dport == ICPN_ROCEV2_UDP_PORT &&
	    p->l4_off + UDP_HLEN + BTH_LEN <= p->ip_end &&
	    pkt_load(ctx, p->l4_off + UDP_HLEN + 5, qp, 3) == 0) {
		p->is_roce = 1;
		p->qp = ((__u32)qp[0] << 16) | ((__u32)qp[1] << 8) | qp[2];
	}
}

/* IPv6 extension headers: at most ICPN_MAX_EXT_HEADERS of HBH (first only), Routing and DOH,
 * each within the packet (a Routing header that overruns is bad-srh). */
static __always_inline int parse_ip6_exts(CTX *ctx, struct icpn_pkt *p, struct hdr_cursor *c,
					  int nh)
{
	__u32 named_at = ETH_HLEN + 6;

	p->n_ext = 0;
	p->rh = -1;
	for (int i = 0; i <= ICPN_MAX_EXT_HEADERS; i++) {
		struct icpn_ext ext = {};
		int kind = nh;

		if (!is_exthdr(kind))
			break;
		if (i == ICPN_MAX_EXT_HEADERS || (kind == ICPN_IPPROTO_HOPOPTS && i > 0))
			return ICPN_DROP_BAD_EXTHDR;
		nh = parse_exthdr(ctx, c, p->ip_end, &ext);
		if (nh < 0)
			return kind == ICPN_IPPROTO_ROUTING ? ICPN_DROP_BAD_SRH : ICPN_DROP_BAD_EXTHDR;
		ext.kind = kind;
		ext.named_at = named_at;
		named_at = ext.off;
		if (kind == ICPN_IPPROTO_ROUTING && p->rh < 0) {
			p->rh = i;
			if (pkt_load(ctx, ext.off + 2, &p->rh_type, 1) < 0)
				return ICPN_DROP_BAD_SRH;
		}
		p->ext[i & (ICPN_MAX_EXT_HEADERS - 1)] = ext;
		p->n_ext = i + 1;
	}
	p->l4_off = c->off;
	p->l4_proto = nh;
	return 0;
}

/* RFC 4291 2.5.6 / RFC 3927 2.7: a router never forwards a link-local source or destination
 * (fe80::/10, 169.254.0.0/16). */
static __always_inline int is_link_local(const struct icpn_pkt *p, const __u64 a[2])
{
	const __u8 *b = (const __u8 *)a;

	if (p->l3_proto == ETH_P_IPV6)
		return b[0] == 0xfe && (b[1] & 0xc0) == 0x80;
	return b[12] == 169 && b[13] == 254;
}

/* Parse the frame into *p: 0, or a DROP_* reason. */
static __always_inline int parse_packet(CTX *ctx, struct icpn_pkt *p)
{
	struct hdr_cursor c = { .off = 0 };
	int proto, rc;

	p->len = pkt_len(ctx);
	p->n_ext = 0;
	p->rh = -1;
	p->fragment = 0;
	proto = parse_ethhdr(ctx, &c);
	if (proto == ETH_P_IPV6) {
		const struct ipv6hdr *ip6;
		struct ipv6hdr buf;
		int nh;

		nh = parse_ip6hdr(ctx, &c, &buf, &ip6);
		if (nh < 0)
			return ICPN_DROP_BAD_IPV6;
		p->l3_proto = ETH_P_IPV6;
		p->ip_end = ETH_HLEN + sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
		p->tc = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
		p->flowlabel = ((__u32)(ip6->flow_lbl[0] & 0xf) << 16) |
			       ((__u32)ip6->flow_lbl[1] << 8) | ip6->flow_lbl[2];
		p->hop_limit = ip6->hop_limit;
		__builtin_memcpy(p->src, &ip6->saddr, 16);
		__builtin_memcpy(p->dst, &ip6->daddr, 16);
		rc = parse_ip6_exts(ctx, p, &c, nh);
		if (rc)
			return rc;
	} else if (proto == ETH_P_IP) {
		const struct iphdr *ip4;
		struct iphdr buf;
		int nh;

		nh = parse_iphdr(ctx, &c, &buf, &ip4);
		if (nh < 0)
			return ICPN_DROP_BAD_IPV4;
		p->l3_proto = ETH_P_IP;
		p->ip_end = ETH_HLEN + bpf_ntohs(ip4->tot_len);
		p->tc = ip4->tos;
		p->flowlabel = 0;
		p->hop_limit = ip4->ttl;
		p->fragment = (bpf_ntohs(ip4->frag_off) & 0x1fff) != 0;
		v4_mapped(p->src, ip4->saddr);
		v4_mapped(p->dst, ip4->daddr);
		p->l4_off = c.off;
		p->l4_proto = nh;
	} else {
		return ICPN_DROP_NOT_IP;
	}
	parse_l4(ctx, p);
	return 0;
}

#endif
