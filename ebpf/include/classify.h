/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Classification (docs/pipeline.md 3): flow matches and the first match of a match table
 * (classifiers, policies, IFIT flows), the 37-byte flow key, elephant detection with a
 * count-min sketch per window, and the packet's APN-ID (QP map, carried option, classifier). */
#ifndef ICPN_CLASSIFY_H
#define ICPN_CLASSIFY_H

#include "state.h"
#include "hash.h"
#include "apn.h"

/* Every field the match sets must match; a prefix matches only its own address family; DSCP
 * is TC/TOS >> 2; apn_id needs the packet's APN-ID (with_apn = 0 for APN classifiers). */
static __always_inline int flow_matches(const struct icpn_match *m, const struct icpn_scratch *s,
					int with_apn)
{
	const struct icpn_pkt *p = &s->p;
	__u32 f = m->fields;
	__u8 family = p->l3_proto == ETH_P_IPV6 ? 6 : 4;

	if (f & ICPN_M_SRC) {
		if (m->family != family || (p->src[0] & m->src_mask[0]) != m->src[0] ||
		    (p->src[1] & m->src_mask[1]) != m->src[1])
			return 0;
	}
	if (f & ICPN_M_DST) {
		if (m->family != family || (p->dst[0] & m->dst_mask[0]) != m->dst[0] ||
		    (p->dst[1] & m->dst_mask[1]) != m->dst[1])
			return 0;
	}
	if ((f & ICPN_M_PROTO) && m->proto != p->l4_proto)
		return 0;
	if ((f & ICPN_M_SPORT) && m->sport != p->sport)
		return 0;
	if ((f & ICPN_M_DPORT) && m->dport != p->dport)
		return 0;
	if ((f & ICPN_M_DSCP) && m->dscp != p->tc >> 2)
		return 0;
	if ((f & ICPN_M_IN_PORT) && m->in_port != p->in_port)
		return 0;
	if (f & ICPN_M_APN_ID) {
		if (!with_apn || !s->has_apn)
			return 0;
		for (int i = 0; i < 16; i++)
			if (m->apn_id[i] != s->apn_id[i])
				return 0;
	}
	return 1;
}

/* pipeline.md 3: src(16) dst(16) proto(1) then sport(2) dport(2), or 0x00 QP(3) for RoCEv2. */
static __always_inline void flow_key(struct icpn_scratch *s)
{
	const struct icpn_pkt *p = &s->p;
	__u8 *k = s->key.b;

	__builtin_memcpy(k, p->src, 16);
	__builtin_memcpy(k + 16, p->dst, 16);
	k[32] = p->l4_proto;
	if (p->is_roce) {
		k[33] = 0;
		k[34] = p->qp >> 16;
		k[35] = p->qp >> 8;
		k[36] = p->qp;
	} else {
		k[33] = p->sport >> 8;
		k[34] = p->sport;
		k[35] = p->dport >> 8;
		k[36] = p->dport;
	}
	__builtin_memset(s->key.pad, 0, sizeof(s->key.pad));
	s->key_hashed = 0;
}

/* crc32 of the flow key (SPEC 4), computed the first time something needs it. */
static __always_inline __u32 key_hash(struct icpn_scratch *s)
{
	if (!s->key_hashed) {
		s->key_hash = crc32(s->key.b, ICPN_FLOW_KEY_LEN);
		s->key_hashed = 1;
	}
	return s->key_hash;
}

struct age_ctx {
	__u64 window;
	__u64 idle;
};

/* Forget an elephant idle for more than idle_windows windows. */
static long elephant_age(void *map, struct icpn_flow_key *key, struct icpn_elephant *e,
			 struct age_ctx *a)
{
	if ((__s64)(a->window - e->last_window) > (__s64)a->idle)
		bpf_map_delete_elem(map, key);
	return 0;
}

/* SPEC 4 / pipeline.md 3: add the packet's IP length to every row of the window's count-min
 * sketch; an elephant once the estimate reaches the threshold, until it idles. */
static __always_inline int elephant_observe(struct icpn_scratch *s, const struct icpn_cfg *c,
					    __u64 nbytes)
{
	struct icpn_el_state *st;
	struct icpn_elephant *e, fresh = {};
	__u64 w, est = ~0ULL;
	__u32 zero = 0, rows = c->cms_rows, width = c->cms_width;

	if (!c->elephant_window_us || !width)
		return 0;
	st = bpf_map_lookup_elem(&el_state, &zero);
	if (!st)
		return 0;
	w = s->p.now_us / c->elephant_window_us;
	/* The sketch is reset at every window change (time going backwards included); epoch 0
	 * is the never-written state of every cell. */
	if (st->epoch == 0 || st->window != w) {
		struct age_ctx a = { .window = w, .idle = c->elephant_idle_windows };

		st->window = w;
		st->epoch += 1;
		bpf_for_each_map_elem(&elephants, elephant_age, &a, 0);
	}
	for (__u32 r = 0; r < ICPN_MAX_CMS_ROWS; r++) {
		struct icpn_cms_cell *cell;
		__u32 idx;

		if (r >= rows)
			break;
		/* crc32(row || key), from the key's CRC (maps.py cms_row_xor) */
		idx = r * width + (key_hash(s) ^ icpn_cms_row_xor[r]) % width;
		cell = bpf_map_lookup_elem(&cms, &idx);
		if (!cell)
			return 0;
		if (cell->epoch != st->epoch) {
			cell->epoch = st->epoch;
			cell->bytes = 0;
		}
		cell->bytes += nbytes;
		if (cell->bytes < est)
			est = cell->bytes;
	}
	e = bpf_map_lookup_elem(&elephants, &s->key);
	if (est >= c->elephant_threshold || e) {
		if (e) {
			e->last_window = w;
		} else {
			fresh.last_window = w;
			fresh.elephant = 1;
			bpf_map_update_elem(&elephants, &s->key, &fresh, BPF_ANY);
		}
		return 1;
	}
	return 0;
}

/* SPEC 2: the option data is usable when its APN-ID-Type is known and the APN-ID and one 32-bit
 * parameter per set APN-Para-Type bit fit; then s->apn_id holds the APN-ID. */
static __always_inline int apn_parse(struct icpn_scratch *s)
{
	__u32 len = s->apn_len, w = apn_id_width(s->apn_data[0]);
	__u16 para = ((__u16)s->apn_data[2] << 8) | s->apn_data[3];

	if (len < 4 || w == 0 || len < 4 + w + 4 * (__u32)__builtin_popcount(para))
		return 0;
	__builtin_memset(s->apn_id, 0, 16);
	if (w == 4)
		__builtin_memcpy(&s->apn_id[12], &s->apn_data[4], 4);
	else if (w == 8)
		__builtin_memcpy(&s->apn_id[8], &s->apn_data[4], 8);
	else
		__builtin_memcpy(&s->apn_id[0], &s->apn_data[4], 16);
	s->apn_id_len = w;
	return 1;
}

/* A configured mark (classifier, QP map, socket mark). */
static __always_inline void apn_from_mark(struct icpn_scratch *s, const struct icpn_apn_mark *m)
{
	__builtin_memcpy(s->apn_data, m->data, sizeof(m->data));
	s->apn_len = m->data_len;
	__builtin_memcpy(s->apn_id, m->id, 16);
	s->apn_id_len = m->id_len;
	s->has_apn = 1;
	s->apn_carried = 0;
}

/* The first option of the APN type in the HBH or a DOH, in header order; 1 when the packet
 * carries a usable one (then s->apn_* describe it). */
static __always_inline int apn_from_packet(CTX *ctx, struct icpn_scratch *s, __u8 opt_type)
{
	struct icpn_pkt *p = &s->p;
	struct opt_walk w;

	for (int i = 0; i < ICPN_MAX_EXT_HEADERS; i++) {
		const struct icpn_ext *e = &p->ext[i];
		__u32 len;

		if (i >= p->n_ext)
			break;
		if (e->kind != ICPN_IPPROTO_HOPOPTS && e->kind != ICPN_IPPROTO_DSTOPTS)
			continue;
		opt_find(ctx, &w, e->off, e->len, opt_type, opt_type);
		if (!w.found_off[0])
			continue;
		len = w.found_len[0];
		s->apn_len = len;
		if (len && pkt_load(ctx, w.found_off[0] + 2, s->apn_data, len & 0xff) < 0)
			return 0;
		if (!apn_parse(s))
			return 0;
		s->has_apn = 1;
		s->apn_carried = 1;
		return 1;
	}
	return 0;
}

/* First entry of a match table that matches the packet: classifiers, policies and IFIT flows
 * all start with their struct icpn_match. */
#define MATCH_INLINE 2

struct match_loop {
	struct icpn_scratch *s;
	void *table;
	__u32 n;
	int with_apn;
	__s32 found;
};

static __always_inline int match_one(struct match_loop *m, __u32 i)
{
	struct icpn_match *e;

	if (i >= m->n)
		return 1;
	e = bpf_map_lookup_elem(m->table, &i);
	if (e && flow_matches(e, m->s, m->with_apn)) {
		m->found = i;
		return 1;
	}
	return 0;
}

static long match_step(__u32 i, void *data)
{
	return match_one(data, i + MATCH_INLINE);
}

/* The first MATCH_INLINE entries are tried inline, where the table is a known map and its
 * lookup is inlined by the verifier; the rest, if any, in a bpf_loop. */
static __always_inline __s32 first_match(struct icpn_scratch *s, void *table, __u32 n,
					 int with_apn)
{
	struct match_loop m = { .s = s, .table = table, .n = n, .with_apn = with_apn, .found = -1 };

	for (__u32 i = 0; i < MATCH_INLINE; i++)
		if (match_one(&m, i))
			return m.found;
	bpf_loop(ICPN_MAX_CLASSIFIERS - MATCH_INLINE, match_step, &m, 0);
	return m.found;
}

/* The packet's APN-ID (pipeline.md 3): QP map, else the option it carries, else the first
 * matching classifier. */
static __always_inline void classify_apn(CTX *ctx, struct icpn_scratch *s,
					 const struct icpn_cfg *c)
{
	struct icpn_classifier *cl;
	__u32 i;
	__s32 found;

	s->has_apn = 0;
	s->apn_carried = 0;
	if (s->p.is_roce) {
		struct icpn_apn_mark *m = bpf_map_lookup_elem(&qp_map, &s->p.qp);

		if (m) {
			apn_from_mark(s, m);
			return;
		}
	}
	if (apn_from_packet(ctx, s, c->apn_opt_type))
		return;
	found = first_match(s, &classifiers, c->n_classifiers, 0);
	if (found < 0)
		return;
	i = found;
	cl = bpf_map_lookup_elem(&classifiers, &i);
	if (cl)
		apn_from_mark(s, &cl->mark);
}

#endif
