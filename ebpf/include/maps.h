/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The maps of the node program (layouts in layout.h, mirrored by pyctl/targets/ebpf/maps.py).
 *
 * test_ctx and verdict are plain arrays, not per-CPU: a test run executes on whichever CPU the
 * syscall is on, and user space must read exactly the entry the program wrote. Only test mode
 * (ICPN_CFG_TEST_MODE) touches them, and test runs of one object are serialised by pyctl.
 */
#ifndef ICPN_MAPS_H
#define ICPN_MAPS_H

#include "layout.h"

#define ICPN_ARRAY(_name, _n, _val)                                                          \
	struct {                                                                             \
		__uint(type, BPF_MAP_TYPE_ARRAY);                                            \
		__uint(max_entries, _n);                                                     \
		__type(key, __u32);                                                          \
		__type(value, _val);                                                         \
	} _name SEC(".maps")

#define ICPN_MAP(_name, _type, _n, _key, _val)                                               \
	struct {                                                                             \
		__uint(type, _type);                                                         \
		__uint(max_entries, _n);                                                     \
		__type(key, _key);                                                           \
		__type(value, _val);                                                         \
	} _name SEC(".maps")

#define ICPN_LPM(_name, _n, _key, _val)                                                      \
	struct {                                                                             \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);                                         \
		__uint(max_entries, _n);                                                     \
		__uint(map_flags, BPF_F_NO_PREALLOC);                                        \
		__type(key, _key);                                                           \
		__type(value, _val);                                                         \
	} _name SEC(".maps")

ICPN_ARRAY(cfg, 1, struct icpn_cfg);
ICPN_ARRAY(ports, ICPN_MAX_PORTS, struct icpn_port);
/* ifindex -> port: an array (value port + 1, 0 = none) below ICPN_IFINDEX_FAST, a hash above */
ICPN_ARRAY(if_port_fast, ICPN_IFINDEX_FAST, __u32);
ICPN_MAP(if_port, BPF_MAP_TYPE_HASH, ICPN_MAX_PORTS, __u32, __u32);
ICPN_MAP(tx_port, BPF_MAP_TYPE_DEVMAP, ICPN_MAX_PORTS, __u32, __u32); /* port -> ifindex */

ICPN_LPM(fib6, ICPN_MAX_ROUTES, struct icpn_fib6_key, struct icpn_nexthop);
ICPN_LPM(fib4, ICPN_MAX_ROUTES, struct icpn_fib4_key, struct icpn_nexthop);
ICPN_LPM(my_sids, ICPN_MAX_SIDS, struct icpn_sid_key, struct icpn_sid);
ICPN_ARRAY(sid_slots, ICPN_SID_SLOTS, struct icpn_sid_slot);

ICPN_ARRAY(policies, ICPN_MAX_POLICIES, struct icpn_policy);
ICPN_ARRAY(policy_buckets, ICPN_MAX_POLICIES *ICPN_MAX_BUCKETS, __u32);
ICPN_ARRAY(sid_lists, ICPN_MAX_POLICIES *ICPN_MAX_SID_LISTS, struct icpn_sidlist);

ICPN_ARRAY(classifiers, ICPN_MAX_CLASSIFIERS, struct icpn_classifier);
ICPN_MAP(qp_map, BPF_MAP_TYPE_HASH, ICPN_MAX_QPS, __u32, struct icpn_apn_mark);

ICPN_ARRAY(ifit_flows, ICPN_MAX_IFIT_FLOWS, struct icpn_ifit_flow);
ICPN_MAP(ifit_periods, BPF_MAP_TYPE_HASH, ICPN_MAX_IFIT_FLOWS, __u32, struct icpn_ifit_period);
ICPN_MAP(ifit_slots, BPF_MAP_TYPE_PERCPU_ARRAY, ICPN_IFIT_SLOTS, __u32, struct icpn_ifit_slot);
ICPN_MAP(ifit_counters, BPF_MAP_TYPE_PERCPU_HASH, 2 * ICPN_MAX_IFIT_FLOWS, struct icpn_ifit_ckey,
	 struct icpn_counter);

ICPN_ARRAY(cms, ICPN_CMS_CELLS, struct icpn_cms_cell);
ICPN_ARRAY(el_state, 1, struct icpn_el_state);
ICPN_MAP(elephants, BPF_MAP_TYPE_LRU_HASH, ICPN_MAX_FLOWS, struct icpn_flow_key,
	 struct icpn_elephant);

ICPN_ARRAY(vqueues, ICPN_MAX_PORTS, struct icpn_vqueue);
ICPN_ARRAY(port_shape, ICPN_MAX_PORTS, struct icpn_port_shape);
ICPN_MAP(port_stats, BPF_MAP_TYPE_PERCPU_ARRAY, ICPN_MAX_PORTS, __u32, struct icpn_port_stats);
ICPN_ARRAY(pfc_state, ICPN_MAX_PORTS *ICPN_PRIORITIES, struct icpn_pfc_state);

ICPN_ARRAY(test_ctx, 1, struct icpn_test_ctx);
ICPN_ARRAY(verdict, 1, struct icpn_verdict);
ICPN_MAP(stats, BPF_MAP_TYPE_PERCPU_ARRAY, ICPN_N_STATS, __u32, __u64);

/* Live capture: ports whose frames are copied to the taps ring (1 = on), and the per-CPU
 * buffer a copy is assembled in. */
ICPN_ARRAY(tap_ports, ICPN_MAX_PORTS, __u32);
ICPN_MAP(tap_buf, BPF_MAP_TYPE_PERCPU_ARRAY, 1, __u32, struct icpn_tap);

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, ICPN_TAP_RING_BYTES);
} taps SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, ICPN_AUX_QUEUE_LEN);
	__type(value, struct icpn_frame);
} aux_out SEC(".maps");

/* A 16-byte address field of a map value as two u64, read in place. Map values are 8-byte
 * aligned and the address fields read this way (sid_slots.addr, cfg.sid_prefix, cfg.sid_mask)
 * sit at multiples of 8 (tests/test_ebpf_loader.py checks): told so, clang loads two words
 * instead of 16 bytes one by one. */
static __always_inline const __u64 *addr_words(const __u8 *a)
{
	return __builtin_assume_aligned(a, 8);
}

/* The index of a direct-mapped array of 2^bits slots for a 64-bit value: Fibonacci hashing,
 * the product's top bits, which every bit of w reaches. */
static __always_inline __u32 slot_hash(__u64 w, __u32 bits)
{
	return (__u32)((w * ICPN_SLOT_HASH_MUL) >> (64 - bits));
}

/* The sid_slots index of an address (maps.py sid_slot): its two halves XORed. */
static __always_inline __u32 sid_slot_of(const __u64 a[2])
{
	return slot_hash(a[0] ^ a[1], ICPN_SID_SLOT_BITS);
}

/* The /128 local SID `a` from its sid_slots entry, or NULL when the slot holds no SID or
 * another one (then the My-SID trie decides). */
static __always_inline struct icpn_sid *sid_in_slot(const __u64 a[2])
{
	__u32 idx = sid_slot_of(a);
	struct icpn_sid_slot *slot = bpf_map_lookup_elem(&sid_slots, &idx);
	const __u64 *w;

	if (!slot || !slot->valid)
		return NULL;
	w = addr_words(slot->addr);
	return w[0] == a[0] && w[1] == a[1] ? &slot->sid : NULL;
}

/* The port an interface is, or ICPN_MAX_PORTS when it is none of the node's. */
static __always_inline __u32 port_of_ifindex(__u32 ifindex)
{
	__u32 *port;

	if (ifindex < ICPN_IFINDEX_FAST) {
		port = bpf_map_lookup_elem(&if_port_fast, &ifindex);
		return port && *port ? *port - 1 : ICPN_MAX_PORTS;
	}
	port = bpf_map_lookup_elem(&if_port, &ifindex);
	return port ? *port : ICPN_MAX_PORTS;
}

#endif
