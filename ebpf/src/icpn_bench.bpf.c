// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* The ends and baselines of bench/srv6_path.py and bench/ebpf_srv6.py.
 *
 * icpn_gen is run by BPF_PROG_TEST_RUN in live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES): the
 * kernel feeds it copies of one frame and XDP_TX sends each out of the generator's veth, so the
 * generator costs tens of nanoseconds a frame and the device under test, not the sender, sets the
 * rate. The kernel fills a page with the frame only when the page is first allocated; recycled
 * pages come back as the device under test left them (rewritten MACs, pushed headers), so the
 * generator writes the frame's first GEN_HEAD bytes back from gen_frame before each send (every
 * headend variant rewrites only headers, inside that span; icpn_gen_long writes GEN_HEAD_LONG
 * for End + IFIT, which edits SL and the IOAM trace further in). icpn_sink_tc counts and drops
 * what arrives at tc ingress: an XDP sink would make the veth copy every kernel-forwarded skb with
 * less than 256 bytes of headroom, a cost only the kernel variants would pay. icpn_pass and
 * icpn_redirect are the baselines: a BPF_PROG_TEST_RUN of a program that does nothing, and a
 * device under test that forwards without doing anything else; icpn_calls times kernel calls;
 * icpn_replay (below) runs a frame-changing program repeatedly on the same frame.
 */
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2); /* 0: frames, 1: bytes */
	__type(key, __u32);
	__type(value, __u64);
} sink_count SEC(".maps");

static __always_inline void count(__u64 len)
{
	__u32 frames = 0, bytes = 1;
	__u64 *n = bpf_map_lookup_elem(&sink_count, &frames);
	__u64 *b = bpf_map_lookup_elem(&sink_count, &bytes);

	if (n)
		*n += 1;
	if (b)
		*b += len;
}

#define GEN_HEAD 64
#define GEN_HEAD_LONG 256

struct gen_head {
	__u8 bytes[GEN_HEAD_LONG];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_head);
} gen_frame SEC(".maps");

static __always_inline int gen(struct xdp_md *ctx, const __u32 n)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct gen_head *head = bpf_map_lookup_elem(&gen_frame, &zero);

	if (!head || data + n > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(data, head->bytes, n);
	return XDP_TX;
}

SEC("xdp")
int icpn_gen(struct xdp_md *ctx)
{
	return gen(ctx, GEN_HEAD);
}

/* for a DUT that edits the frame beyond GEN_HEAD (End + IFIT: SL, the IOAM trace) */
SEC("xdp")
int icpn_gen_long(struct xdp_md *ctx)
{
	return gen(ctx, GEN_HEAD_LONG);
}

SEC("xdp")
int icpn_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

/* Ten clock reads: what one call into the kernel costs on this machine (bench/ebpf_srv6.py). */
SEC("xdp")
int icpn_calls(struct xdp_md *ctx)
{
	__u64 t = 0;

	for (int i = 0; i < 10; i++)
		t += bpf_ktime_get_ns();
	return t ? XDP_PASS : XDP_DROP;
}

/* entry 0: the interface icpn_redirect sends every frame out of (a DEVMAP, as icpn_node's) */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} redirect_to SEC(".maps");

SEC("xdp")
int icpn_redirect(struct xdp_md *ctx)
{
	return bpf_redirect_map(&redirect_to, 0, XDP_DROP);
}

SEC("tc")
int icpn_sink_tc(struct __sk_buff *skb)
{
	count(skb->len);
	return TC_ACT_SHOT;
}

/* Replay: icpn_replay puts the frame back as it was (the head where it was, then its first
 * REPLAY_HEAD bytes from replay_frame) and tail-calls replay_to[0]. BPF_PROG_TEST_RUN with
 * repeat=N then runs a program that changes the frame (End, IFIT stamping, encapsulation) N times
 * on the same input, warm; the same wrapper around icpn_pass is the floor. The head is moved
 * back with bpf_xdp_adjust_head, called with 0 when the size did not change, so that the floor
 * pays the same call. */
#define REPLAY_HEAD 256

struct replay_head {
	__u32 len;		/* the frame's length */
	__u32 pad;
	__u8 bytes[REPLAY_HEAD];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct replay_head);
} replay_frame SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} replay_to SEC(".maps");

SEC("xdp")
int icpn_replay(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct replay_head *head = bpf_map_lookup_elem(&replay_frame, &zero);
	void *data, *data_end;

	if (!head || bpf_xdp_adjust_head(ctx, (int)xdp_len(ctx) - (int)head->len) < 0)
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + REPLAY_HEAD > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(data, head->bytes, REPLAY_HEAD);
	bpf_tail_call(ctx, &replay_to, 0);
	return XDP_ABORTED;
}
