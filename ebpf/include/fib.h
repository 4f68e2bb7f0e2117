/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Forwarding: LPM routes per table (the model's FIB), or the kernel FIB when
 * ICPN_CFG_FIB_HELPER is set (live nodes that let Linux own the routes). */
#ifndef ICPN_FIB_H
#define ICPN_FIB_H

#include "maps.h"

/* Longest-prefix match of an IPv6 destination in `table`; 0 and *nh filled when found. */
static __always_inline int fib6_lookup(__u32 table, const __u64 dst[2], struct icpn_nexthop *nh)
{
	struct icpn_fib6_key k = { .prefixlen = 32 + 128, .table = table };
	struct icpn_nexthop *v;

	__builtin_memcpy(k.addr, dst, 16);
	v = bpf_map_lookup_elem(&fib6, &k);
	if (!v)
		return -1;
	*nh = *v;
	return 0;
}

/* The same for IPv4 (`dst` v4-mapped, as in struct icpn_pkt). */
static __always_inline int fib4_lookup(__u32 table, const __u64 dst[2], struct icpn_nexthop *nh)
{
	struct icpn_fib4_key k = { .prefixlen = 32 + 32, .table = table };
	struct icpn_nexthop *v;

	__builtin_memcpy(k.addr, (const __u8 *)dst + 12, 4);
	v = bpf_map_lookup_elem(&fib4, &k);
	if (!v)
		return -1;
	*nh = *v;
	return 0;
}

#ifndef ICPN_TC
/* The kernel's FIB (table = the VRF's table id); the egress ifindex is mapped to a port. */
static __always_inline int fib_kernel_lookup(struct xdp_md *ctx, int v6, __u32 table,
					     const __u64 src[2], const __u64 dst[2], __u8 tc,
					     struct icpn_nexthop *nh)
{
	struct bpf_fib_lookup f = {};
	__u32 port;
	__u32 flags = 0;

	f.ifindex = ctx->ingress_ifindex;
	if (v6) {
		f.family = 10; /* AF_INET6 */
		__builtin_memcpy(f.ipv6_src, src, 16);
		__builtin_memcpy(f.ipv6_dst, dst, 16);
		f.flowinfo = bpf_htonl((__u32)tc << 20);
	} else {
		f.family = 2; /* AF_INET */
		__builtin_memcpy(&f.ipv4_src, (const __u8 *)src + 12, 4);
		__builtin_memcpy(&f.ipv4_dst, (const __u8 *)dst + 12, 4);
		f.tos = tc;
	}
	if (table) {
		f.tbid = table;
		flags |= BPF_FIB_LOOKUP_DIRECT | BPF_FIB_LOOKUP_TBID;
	}
	if (bpf_fib_lookup(ctx, &f, sizeof(f), flags) != BPF_FIB_LKUP_RET_SUCCESS)
		return -1;
	port = port_of_ifindex(f.ifindex);
	if (port >= ICPN_MAX_PORTS)
		return -1;
	nh->port = port;
	__builtin_memcpy(nh->mac, f.dmac, 6);
	return 0;
}
#endif

#endif
