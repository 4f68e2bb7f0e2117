/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Forwarding: LPM routes per table (the model's FIB), or the kernel FIB when
 * ICPN_CFG_FIB_HELPER is set (live nodes that let Linux own the routes). */
#ifndef ICPN_FIB_H
#define ICPN_FIB_H

#include "maps.h"

/* pyctl writes the FIB maps once, before the program sees a packet (a configuration that changes
 * a route loads a new object; EBPFDataPlane.reconfigure), so the route of a destination never changes while the program runs: a per-CPU
 * direct-mapped cache of LPM results spares most packets the trie lookup, a call into the
 * kernel (about 32 ns on this project's VM; docs/ebpf-performance.md). A slot holds the last
 * destination that hashed to it; misses (no route) are not cached. */
#define ICPN_FIB_CACHE_BITS 10
#define ICPN_FIB_CACHE_SLOTS (1U << ICPN_FIB_CACHE_BITS)

struct icpn_fib_cache_entry {
	__u64 addr[2];		/* IPv4 v4-mapped */
	__u32 table;
	__u8 valid;
	__u8 v6;
	__u8 pad[2];
	struct icpn_nexthop nh;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ICPN_FIB_CACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct icpn_fib_cache_entry);
} fib_cache SEC(".maps");

static __always_inline struct icpn_fib_cache_entry *fib_cache_slot(__u32 table, const __u64 dst[2])
{
	__u32 idx = slot_hash(dst[0] ^ dst[1] ^ table, ICPN_FIB_CACHE_BITS);

	return bpf_map_lookup_elem(&fib_cache, &idx);
}

/* Longest-prefix match of `dst` in `table` of fib6 (v6) or fib4 (dst v4-mapped, as in struct
 * icpn_pkt); 0 and *nh filled when found. */
static __always_inline int fib_lookup_cached(int v6, __u32 table, const __u64 dst[2],
					     struct icpn_nexthop *nh)
{
	struct icpn_fib_cache_entry *e = fib_cache_slot(table, dst);
	struct icpn_nexthop *v;

	if (e && e->valid && e->v6 == v6 && e->table == table && e->addr[0] == dst[0] &&
	    e->addr[1] == dst[1]) {
		*nh = e->nh;
		return 0;
	}
	if (v6) {
		struct icpn_fib6_key k = { .prefixlen = 32 + 128, .table = table };

		__builtin_memcpy(k.addr, dst, 16);
		v = bpf_map_lookup_elem(&fib6, &k);
	} else {
		struct icpn_fib4_key k = { .prefixlen = 32 + 32, .table = table };

		__builtin_memcpy(k.addr, (const __u8 *)dst + 12, 4);
		v = bpf_map_lookup_elem(&fib4, &k);
	}
	if (!v)
		return -1;
	*nh = *v;
	if (e) {
		e->addr[0] = dst[0];
		e->addr[1] = dst[1];
		e->table = table;
		e->v6 = v6;
		e->nh = *v;
		e->valid = 1;
	}
	return 0;
}

#ifndef ICPN_TC
/* The kernel's FIB (table = the VRF's table id); the egress ifindex is mapped to a port. `f` is
 * the helper's 64-byte parameter block, kept off the stack (the call chain has 512 bytes).
 * 0, or the drop reason: no-route when the kernel has no usable route (a BPF_FIB_LKUP_RET_*
 * code: unreachable, blackhole, no neighbour, ...) or routes out of a device that is not one of
 * the node's ports, both about the destination; internal-error when the helper itself fails (a
 * negative errno: its arguments are the program's, not the packet's). */
static __always_inline int fib_kernel_lookup(struct xdp_md *ctx, struct bpf_fib_lookup *f, int v6,
					     __u32 table, const __u64 src[2], const __u64 dst[2],
					     __u8 tc, struct icpn_nexthop *nh)
{
	__u32 port;
	__u32 flags = 0;
	long rc;

	__builtin_memset(f, 0, sizeof(*f));
	f->ifindex = ctx->ingress_ifindex;
	if (v6) {
		f->family = 10; /* AF_INET6 */
		__builtin_memcpy(f->ipv6_src, src, 16);
		__builtin_memcpy(f->ipv6_dst, dst, 16);
		f->flowinfo = bpf_htonl((__u32)tc << 20);
	} else {
		f->family = 2; /* AF_INET */
		__builtin_memcpy(&f->ipv4_src, (const __u8 *)src + 12, 4);
		__builtin_memcpy(&f->ipv4_dst, (const __u8 *)dst + 12, 4);
		f->tos = tc;
	}
	if (table) {
		f->tbid = table;
		flags |= BPF_FIB_LOOKUP_DIRECT | BPF_FIB_LOOKUP_TBID;
	}
	rc = bpf_fib_lookup(ctx, f, sizeof(*f), flags);
	if (rc < 0)
		return ICPN_DROP_INTERNAL;
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return ICPN_DROP_NO_ROUTE;
	port = port_of_ifindex(f->ifindex);
	if (port >= ICPN_MAX_PORTS)
		return ICPN_DROP_NO_ROUTE;
	nh->port = port;
	__builtin_memcpy(nh->mac, f->dmac, 6);
	return 0;
}
#endif

#endif
