// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* icpn_host_apn: application-side APN marking (SPEC 2) on a host's tc egress hook.
 *
 * An application opts in with setsockopt(SO_MARK, m); packets whose skb->mark is a key of
 * socket_marks get the mapped APN option in a new Hop-by-Hop (or Destination Options) header
 * right after the IPv6 header, unless they already have one (docs/pipeline.md 3). Everything
 * else passes untouched; so does a packet that cannot grow (the stack must not lose it).
 */
#define ICPN_TC
#include "common.h"
#include "layout.h"
#include "parsing.h"
#include "pktops.h"
#include "options.h"
#include "apn.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct icpn_host_scratch {
	struct icpn_pkt p;
	__u8 zeros[8];		/* PadN data: at most 5 bytes */
	__u8 data[256];		/* the option data (any 8-bit length is readable) */
	__u8 chunk[ICPN_CHUNK];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct icpn_host_cfg);
} host_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ICPN_MAX_SOCKET_MARKS);
	__type(key, __u32);
	__type(value, struct icpn_apn_mark);
} socket_marks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct icpn_host_scratch);
} host_scratch SEC(".maps");

SEC("tc")
int icpn_host_apn(struct __sk_buff *skb)
{
	struct icpn_host_scratch *s;
	struct icpn_host_cfg *c;
	struct icpn_apn_mark *m;
	__u32 zero = 0, mark = skb->mark;
	__u8 kind;

	if (skb->protocol != bpf_htons(ETH_P_IPV6))
		return TC_ACT_OK;
	m = bpf_map_lookup_elem(&socket_marks, &mark);
	c = bpf_map_lookup_elem(&host_cfg, &zero);
	s = bpf_map_lookup_elem(&host_scratch, &zero);
	if (!m || !c || !s || c->carrier == ICPN_CARRIER_SRH_TLV)
		return TC_ACT_OK;
	if (parse_packet(skb, &s->p) != 0 || s->p.l3_proto != ETH_P_IPV6)
		return TC_ACT_OK;
	__builtin_memcpy(s->data, m->data, sizeof(m->data));
	kind = c->carrier == ICPN_CARRIER_HBH ? ICPN_IPPROTO_HOPOPTS : ICPN_IPPROTO_DSTOPTS;
	if (apn_insert_header(skb, &s->p, kind, c->opt_type, s->data, m->data_len, s->zeros,
			      s->chunk) == 0)
		__sync_fetch_and_add(&c->n_marked, 1);
	return TC_ACT_OK;
}
