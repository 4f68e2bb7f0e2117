// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* icpn_sink: counts and drops every frame (the receiving end of bench/srv6_path.py).
 *
 * Attached as XDP to the sink side of a veth, it also keeps frames redirected into that veth
 * from being lost (DESIGN.md: the receiving end needs an XDP program).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2); /* 0: frames, 1: bytes */
	__type(key, __u32);
	__type(value, __u64);
} sink_count SEC(".maps");

SEC("xdp")
int icpn_sink(struct xdp_md *ctx)
{
	__u32 frames = 0, bytes = 1;
	__u64 *n = bpf_map_lookup_elem(&sink_count, &frames);
	__u64 *b = bpf_map_lookup_elem(&sink_count, &bytes);

	if (n)
		*n += 1;
	if (b)
		*b += ctx->data_end - ctx->data;
	return XDP_DROP;
}
