// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * icpn_linkd: ICPN's link element. A user-space delay line between pairs of interfaces of one
 * network namespace (the run's links namespace): every frame arriving on L_a leaves on L_b and
 * vice versa, after the link model of that direction has delayed, lost, rate-limited or queued
 * it. One process serves every link of a run from one single-threaded event loop. C11 + libc.
 * Why it exists: XDP_REDIRECT bypasses every qdisc, so netem/HTB/TBF never see forwarded frames
 * (and some kernels have no netem); a link element the redirect lands in sees them all.
 *
 * Model per direction (docs/links.md):
 *   arrival t (CLOCK_MONOTONIC, read once per receive batch)
 *   loss:   random (loss_pct) or Gilbert-Elliott (ge=P,R,LB,LG in percent: good->bad P,
 *           bad->good R, loss in bad LB (= netem's 1-h), loss in good LG (= 1-k); netem's order
 *           `loss gemodel p r 1-h 1-k`; the state moves first, the loss draw uses the old state)
 *   queue:  with a rate: tail drop when the frames waiting for serialisation (finish > t) would
 *           exceed queue_pkts / queue_bytes; without a rate: the same limit on frames in flight
 *   rate:   finish = max(t, previous finish) + bytes*8/rate_bps (bytes: the L2 frame, no FCS)
 *   delay:  depart = finish + delay_us + jitter (uniform on [-j,+j], normal or paretonormal of
 *           sigma j, cut at +-4 sigma like netem's tables, never before finish); unless reorder=1,
 *           depart = max(depart, previous depart of the direction): jitter never reorders.
 *   Changes apply to frames arriving after the command; frames in flight keep their departure.
 *
 * Control: one command a line on stdin, one answer a line on stdout ("ok ..." or "error ...").
 *   add ID IFA IFB          open both interfaces (they must exist, be up); ID [A-Za-z0-9_.:-]{1,63}
 *   del ID                  close them, drop what is in flight
 *   set ID a2b|b2a|both K=V ...   keys not given keep their value:
 *        delay_us=F jitter_us=F dist=uniform|normal|paretonormal reorder=0|1 loss_pct=F
 *        ge=P,R,LB,LG|off rate_bps=F(0: none) queue_pkts=N(0: no limit) queue_bytes=N(0: none)
 *   down ID / up ID         down drops every arriving frame and every frame in flight, both ways
 *   stats [ID]              ok {"links":{"ID":{"up":1,"a2b":{counters},"b2a":{counters}}}}
 *   quit                    ok, then exit (so do stdin EOF and SIGTERM/SIGINT)
 * Defaults of a new link: no delay, no loss, no rate, queue_pkts=1000 (netem's limit).
 * Options: --seed N (each direction draws from its own generator seeded from N and the link id,
 * so a link's draws do not depend on other links' traffic); --quantum-us Q (default 50): the loop
 * turns at most once every Q us, so under load it moves frames in batches; a frame's departure
 * counts from the kernel's receive stamp, and frames leave at most ~Q us late; --rt-prio P: run
 * SCHED_FIFO at priority P, so a busy machine's other tasks do not hold departures back (the
 * element sleeps between turns; the kernel's RT throttling still bounds it).
 *
 * Test traffic modes (bench/links.py, tests/test_linkd.py), frames of ethertype 0x88b5 carrying
 * "ICPN", a sequence number and the sender's CLOCK_MONOTONIC:
 *   --gen IF --size N [--rate FPS (0: as fast as it can)] [--duration S] [--count N]
 *   --sink IF [--duration S] [--idle-ms N]    prints "ready", then one JSON line at the end
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <math.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define FRAME_MAX 9216 /* MTU 9,100 + Ethernet + VLAN headroom */
#define HEADROOM 4     /* room to put back a VLAN tag the kernel took off */
#define DEFAULT_QUEUE_PKTS 1000
#define RX_BUDGET 4 /* receive batches per socket per loop turn: departures are not starved */
#define TEST_ETHERTYPE 0x88b5
#define TEST_MAGIC 0x4e504349u /* "ICPN" little-endian */

static volatile sig_atomic_t g_stop;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- random numbers: xoshiro256** seeded by splitmix64 ------------------------------------ */

struct rng {
	uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s, result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* uniform on [0, 1) */
static double rng_unit(struct rng *r)
{
	return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* Acklam's inverse of the standard normal CDF (relative error < 1.2e-9) */
static double norm_ppf(double p)
{
	static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
				   -2.759285104469687e+02, 1.383577518672690e+02,
				   -3.066479806614716e+01, 2.506628277459239e+00};
	static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
				   -1.556989798598866e+02, 6.680131188771972e+01,
				   -1.328068155288572e+01};
	static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
				   -2.400758277161838e+00, -2.549732539343734e+00,
				   4.374664141464968e+00,  2.938163982698783e+00};
	static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01,
				   2.445134137142996e+00, 3.754408661907416e+00};
	double q, r;

	if (p <= 0)
		return -1e9;
	if (p < 0.02425) {
		q = sqrt(-2 * log(p));
		return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
		       ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
	}
	if (p > 1 - 0.02425) {
		q = sqrt(-2 * log(1 - p));
		return -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
		       ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
	}
	q = p - 0.5;
	r = q * q;
	return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
	       (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

enum dist { DIST_UNIFORM, DIST_NORMAL, DIST_PARETONORMAL };
static const char *const DIST_NAMES[] = {"uniform", "normal", "paretonormal"};

/* A jitter draw in units of j. normal and paretonormal as iproute2's netem tables make them:
 * paretonormal = (normal + 3 * pareto(a=3, mean-shifted, scaled 4/3)) / 4 at the same quantile;
 * both cut at +-4 (netem's table entries are int16 / 8192). */
static double jitter_draw(struct rng *r, enum dist d)
{
	double u = rng_unit(r), x;

	if (d == DIST_UNIFORM)
		return 2 * u - 1;
	u = u * (1 - 0x1.0p-52) + 0x1.0p-53; /* open interval: the ppf stays finite */
	x = norm_ppf(u);
	if (d == DIST_PARETONORMAL) {
		double par = (1.0 / pow(1 - u, 1.0 / 3.0) - 1.5) * (4.0 / 3.0);

		if (par > 4)
			par = 4;
		x = (x + 3 * par) / 4;
	}
	return x < -4 ? -4 : (x > 4 ? 4 : x);
}

/* ---- frames in flight: a per-direction heap by (departure, arrival order) ------------------- */

struct frame {
	uint64_t dep;
	uint64_t seq;
	uint32_t len;
	unsigned char data[];
};

struct fheap {
	struct frame **v;
	size_t n, cap;
};

static int frame_before(const struct frame *a, const struct frame *b)
{
	return a->dep < b->dep || (a->dep == b->dep && a->seq < b->seq);
}

static int fheap_push(struct fheap *h, struct frame *f)
{
	size_t i;

	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 64;
		struct frame **v = realloc(h->v, cap * sizeof(*v));

		if (!v)
			return -1;
		h->v = v;
		h->cap = cap;
	}
	/* without reordering departures only grow: the new frame stays at the bottom, O(1) */
	for (i = h->n++; i > 0 && frame_before(f, h->v[(i - 1) / 2]); i = (i - 1) / 2)
		h->v[i] = h->v[(i - 1) / 2];
	h->v[i] = f;
	return 0;
}

static struct frame *fheap_pop(struct fheap *h)
{
	struct frame *top = h->v[0], *last = h->v[--h->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && frame_before(h->v[c + 1], h->v[c]))
			c++;
		if (!frame_before(h->v[c], last))
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n)
		h->v[i] = last;
	return top;
}

/* ---- link model, directions, links ---------------------------------------------------------- */

struct model {
	uint64_t delay_ns, jitter_ns;
	enum dist dist;
	int reorder;
	double loss; /* probability */
	int ge;      /* Gilbert-Elliott on (then `loss` is unused) */
	double ge_p, ge_r, ge_lb, ge_lg;
	double rate_bps; /* 0: no serialisation */
	uint64_t queue_pkts, queue_bytes;
};

struct counters {
	uint64_t rx, rx_bytes, tx, tx_bytes, dropped_loss, dropped_queue, dropped_down, dropped_tx;
};

/* frames waiting for serialisation, by finish time (a ring in arrival order) */
struct serq {
	struct {
		uint64_t finish;
		uint32_t len;
	} *v;
	size_t head, n, cap;
	uint64_t bytes;
};

struct link;

struct dir {
	struct link *link;
	int out_fd;
	struct model m;
	struct rng rng;
	int ge_bad;
	uint64_t last_finish, last_dep, seq;
	struct fheap q;
	uint64_t q_bytes;
	struct serq ser;
	struct counters c;
	ssize_t hidx; /* place in the departure heap, -1 when empty */
};

struct port {
	struct link *link;
	int side; /* 0: frames arriving here go a2b */
	int fd;
};

struct link {
	char id[64];
	char ifname[2][IF_NAMESIZE];
	int up;
	struct port port[2];
	struct dir dir[2]; /* 0: a2b, 1: b2a */
};

static struct link **g_links;
static size_t g_nlinks, g_caplinks;
static uint64_t g_seed = 1;
static int g_epfd = -1;

/* the departure heap: directions with frames in flight, by their next departure */
static struct dir **g_dh;
static size_t g_ndh, g_capdh;

static uint64_t dir_next(const struct dir *d)
{
	return d->q.v[0]->dep;
}

static void dh_set(size_t i, struct dir *d)
{
	g_dh[i] = d;
	d->hidx = (ssize_t)i;
}

static void dh_fix(size_t i)
{
	struct dir *d = g_dh[i];

	while (i > 0 && dir_next(d) < dir_next(g_dh[(i - 1) / 2])) {
		dh_set(i, g_dh[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= g_ndh)
			break;
		if (c + 1 < g_ndh && dir_next(g_dh[c + 1]) < dir_next(g_dh[c]))
			c++;
		if (dir_next(g_dh[c]) >= dir_next(d))
			break;
		dh_set(i, g_dh[c]);
		i = c;
	}
	dh_set(i, d);
}

static void dh_remove(struct dir *d)
{
	size_t i = (size_t)d->hidx;
	struct dir *last = g_dh[--g_ndh];

	d->hidx = -1;
	if (last != d) {
		dh_set(i, last);
		dh_fix(i);
	}
}

/* after the head of d's queue changed */
static int dh_update(struct dir *d)
{
	if (d->q.n == 0) {
		if (d->hidx >= 0)
			dh_remove(d);
		return 0;
	}
	if (d->hidx < 0) {
		if (g_ndh == g_capdh) {
			size_t cap = g_capdh ? g_capdh * 2 : 64;
			struct dir **v = realloc(g_dh, cap * sizeof(*v));

			if (!v)
				return -1;
			g_dh = v;
			g_capdh = cap;
		}
		dh_set(g_ndh++, d);
	}
	dh_fix((size_t)d->hidx);
	return 0;
}

static void dir_flush(struct dir *d, uint64_t *counter)
{
	while (d->q.n) {
		free(fheap_pop(&d->q));
		if (counter)
			(*counter)++;
	}
	d->q_bytes = 0;
	d->ser.head = d->ser.n = 0;
	d->ser.bytes = 0;
	dh_update(d);
}

/* ---- checksums: frames a local stack sent with CHECKSUM_PARTIAL arrive unfinished ----------- */

static uint16_t be16(const unsigned char *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* Finish the TCP/UDP checksum of a frame whose sender left it to the (absent) hardware: the
 * field holds the pseudo-header sum; the one's complement sum from the L4 header on completes
 * it (what the kernel's skb_checksum_help does). Other frames are left alone. */
static void finish_checksum(unsigned char *f, size_t len)
{
	size_t off = 14;
	unsigned type = be16(f + 12), proto = 0;
	uint32_t sum = 0;

	while ((type == 0x8100 || type == 0x88a8) && off + 4 <= len) {
		type = be16(f + off + 2);
		off += 4;
	}
	for (int depth = 0; depth < 3; depth++) {
		if (type == 0x0800) {
			if (off + 20 > len || (be16(f + off + 6) & 0x3fff))
				return; /* a fragment: no L4 header to finish */
			proto = f[off + 9];
			off += (size_t)(f[off] & 0xf) * 4;
		} else if (type == 0x86dd) {
			if (off + 40 > len)
				return;
			proto = f[off + 6];
			off += 40;
			while ((proto == 0 || proto == 43 || proto == 60) && off + 8 <= len) {
				proto = f[off];
				off += ((size_t)f[off + 1] + 1) * 8;
			}
		} else {
			return;
		}
		if (proto == 4)
			type = 0x0800;
		else if (proto == 41)
			type = 0x86dd;
		else
			break;
	}
	size_t field = proto == 6 ? 16 : (proto == 17 ? 6 : 0);

	if (!field || off + field + 2 > len)
		return;
	for (size_t i = off; i + 1 < len; i += 2)
		sum += be16(f + i);
	if ((len - off) & 1)
		sum += (uint32_t)f[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	sum = ~sum & 0xffff;
	if (proto == 17 && sum == 0)
		sum = 0xffff;
	f[off + field] = (unsigned char)(sum >> 8);
	f[off + field + 1] = (unsigned char)sum;
}

/* ---- the data path -------------------------------------------------------------------------- */

static int lost(struct dir *d)
{
	struct model *m = &d->m;

	if (!m->ge)
		return m->loss > 0 && rng_unit(&d->rng) < m->loss;
	if (!d->ge_bad) {
		if (rng_unit(&d->rng) < m->ge_p)
			d->ge_bad = 1;
		return rng_unit(&d->rng) < m->ge_lg;
	}
	if (rng_unit(&d->rng) < m->ge_r)
		d->ge_bad = 0;
	return rng_unit(&d->rng) < m->ge_lb;
}

static int serq_push(struct serq *s, uint64_t finish, uint32_t len)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		void *v = malloc(cap * sizeof(*s->v));

		if (!v)
			return -1;
		for (size_t i = 0; i < s->n; i++)
			memcpy((char *)v + i * sizeof(*s->v), &s->v[(s->head + i) % s->cap],
			       sizeof(*s->v));
		free(s->v);
		s->v = v;
		s->cap = cap;
		s->head = 0;
	}
	s->v[(s->head + s->n) % s->cap].finish = finish;
	s->v[(s->head + s->n) % s->cap].len = len;
	s->n++;
	s->bytes += len;
	return 0;
}

static void serq_expire(struct serq *s, uint64_t t)
{
	while (s->n && s->v[s->head].finish <= t) {
		s->bytes -= s->v[s->head].len;
		s->head = (s->head + 1) % s->cap;
		s->n--;
	}
}

static void arrive(struct dir *d, const unsigned char *data, uint32_t len, uint64_t t)
{
	struct model *m = &d->m;
	uint64_t finish = t, dep, pkts, bytes;
	struct frame *f;

	d->c.rx++;
	d->c.rx_bytes += len;
	if (!d->link->up) {
		d->c.dropped_down++;
		return;
	}
	if (lost(d)) {
		d->c.dropped_loss++;
		return;
	}
	if (m->rate_bps > 0) {
		serq_expire(&d->ser, t);
		pkts = d->ser.n;
		bytes = d->ser.bytes;
	} else {
		pkts = d->q.n;
		bytes = d->q_bytes;
	}
	if ((m->queue_pkts && pkts >= m->queue_pkts) ||
	    (m->queue_bytes && bytes + len > m->queue_bytes)) {
		d->c.dropped_queue++;
		return;
	}
	f = malloc(sizeof(*f) + len);
	if (!f) {
		d->c.dropped_queue++;
		return;
	}
	if (m->rate_bps > 0) {
		uint64_t start = d->last_finish > t ? d->last_finish : t;

		finish = start + (uint64_t)((double)len * 8e9 / m->rate_bps + 0.5);
		d->last_finish = finish;
		if (serq_push(&d->ser, finish, len)) {
			free(f);
			d->c.dropped_queue++;
			return;
		}
	}
	dep = finish + m->delay_ns;
	if (m->jitter_ns) {
		double j = jitter_draw(&d->rng, m->dist) * (double)m->jitter_ns;

		dep = j < 0 && (uint64_t)(-j) > m->delay_ns ? finish : (uint64_t)((double)dep + j);
	}
	if (!m->reorder && dep < d->last_dep)
		dep = d->last_dep;
	d->last_dep = dep;
	f->dep = dep;
	f->seq = d->seq++;
	f->len = len;
	memcpy(f->data, data, len);
	if (fheap_push(&d->q, f)) {
		free(f);
		d->c.dropped_queue++;
		return;
	}
	d->q_bytes += len;
	if (d->q.v[0] == f)
		dh_update(d);
}

/* send every frame of d that is due at `t`, in sendmmsg batches */
static void depart(struct dir *d, uint64_t t)
{
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	struct frame *out[BATCH];

	while (d->q.n && d->q.v[0]->dep <= t) {
		int n = 0, sent;

		while (n < BATCH && d->q.n && d->q.v[0]->dep <= t) {
			struct frame *f = fheap_pop(&d->q);

			d->q_bytes -= f->len;
			out[n] = f;
			iov[n].iov_base = f->data;
			iov[n].iov_len = f->len;
			memset(&msgs[n], 0, sizeof(msgs[n]));
			msgs[n].msg_hdr.msg_iov = &iov[n];
			msgs[n].msg_hdr.msg_iovlen = 1;
			n++;
		}
		for (int i = 0; i < n; i += sent > 0 ? sent : 1) {
			sent = sendmmsg(d->out_fd, msgs + i, (unsigned)(n - i), MSG_DONTWAIT);
			if (sent > 0) {
				for (int k = i; k < i + sent; k++) {
					d->c.tx++;
					d->c.tx_bytes += out[k]->len;
				}
			} else if (sent < 0 && errno == EINTR) {
				sent = 0;
				continue;
			} else {
				d->c.dropped_tx++; /* the interface refused this one (down, no buffer) */
			}
		}
		for (int i = 0; i < n; i++)
			free(out[i]);
	}
	dh_update(d);
}

static void depart_due(uint64_t t)
{
	while (g_ndh && dir_next(g_dh[0]) <= t)
		depart(g_dh[0], t);
}

static unsigned char g_rxbuf[BATCH][HEADROOM + FRAME_MAX];
static char g_rxctl[BATCH][CMSG_SPACE(sizeof(struct tpacket_auxdata)) +
			   CMSG_SPACE(sizeof(struct timespec))];
static uint64_t g_quantum_ns = 50000;

static void receive(struct port *p)
{
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	struct dir *d = &p->link->dir[p->side];

	for (int round = 0; round < RX_BUDGET; round++) {
		int n;
		uint64_t t;

		for (int i = 0; i < BATCH; i++) {
			iov[i].iov_base = g_rxbuf[i] + HEADROOM;
			iov[i].iov_len = FRAME_MAX;
			memset(&msgs[i], 0, sizeof(msgs[i]));
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
			msgs[i].msg_hdr.msg_control = g_rxctl[i];
			msgs[i].msg_hdr.msg_controllen = sizeof(g_rxctl[i]);
		}
		n = recvmmsg(p->fd, msgs, BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			return;
		t = now_ns();
		/* the kernel stamps each arrival (CLOCK_REALTIME): the loop may see a frame up to a
		 * quantum late, its departure still counts from when it came */
		struct timespec rt;
		int64_t off;

		clock_gettime(CLOCK_REALTIME, &rt);
		off = ((int64_t)rt.tv_sec * 1000000000ll + rt.tv_nsec) - (int64_t)t;
		for (int i = 0; i < n; i++) {
			unsigned char *f = g_rxbuf[i] + HEADROOM;
			uint32_t len = msgs[i].msg_len;
			uint64_t arrival = t;
			struct cmsghdr *c;

			if ((msgs[i].msg_hdr.msg_flags & MSG_TRUNC) || len < 14) {
				d->c.rx++;
				d->c.dropped_queue++; /* larger than FRAME_MAX: cannot be carried whole */
				continue;
			}
			for (c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c;
			     c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
				struct tpacket_auxdata aux;

				if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
					struct timespec ts;
					int64_t a;

					memcpy(&ts, CMSG_DATA(c), sizeof(ts));
					a = (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec - off;
					/* a clock step would put it outside the last second: ignore it */
					if (a <= (int64_t)t && a > (int64_t)t - 1000000000ll)
						arrival = (uint64_t)a;
					continue;
				}
				if (c->cmsg_level != SOL_PACKET || c->cmsg_type != PACKET_AUXDATA)
					continue;
				memcpy(&aux, CMSG_DATA(c), sizeof(aux));
				if ((aux.tp_status & TP_STATUS_VLAN_VALID) && len + 4 <= FRAME_MAX) {
					/* the kernel took the tag off into metadata: put it back */
					uint16_t tpid = (aux.tp_status & TP_STATUS_VLAN_TPID_VALID)
								? aux.tp_vlan_tpid
								: 0x8100;
					memmove(f - 4, f, 12);
					f -= 4;
					f[12] = (unsigned char)(tpid >> 8);
					f[13] = (unsigned char)tpid;
					f[14] = (unsigned char)(aux.tp_vlan_tci >> 8);
					f[15] = (unsigned char)aux.tp_vlan_tci;
					len += 4;
				}
				if (aux.tp_status & TP_STATUS_CSUMNOTREADY)
					finish_checksum(f, len);
			}
			arrive(d, f, len, arrival);
		}
		if (n < BATCH)
			return;
	}
}

/* ---- links and commands --------------------------------------------------------------------- */

static int open_port(const char *ifname, char *err, size_t errlen)
{
	int one = 1, rcvbuf = 16 << 20, sndbuf = 4 << 20;
	unsigned idx = if_nametoindex(ifname);
	struct sockaddr_ll sll = {0};
	int fd;

	if (!idx) {
		snprintf(err, errlen, "no interface %s in this namespace", ifname);
		return -1;
	}
	/* protocol 0 receives nothing until bind: no frames of other interfaces slip in */
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket(AF_PACKET): %s", strerror(errno));
		return -1;
	}
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = (int)idx;
	if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) ||
	    (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) &&
	     setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf))) ||
	    (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) &&
	     setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf))) ||
	    bind(fd, (struct sockaddr *)&sll, sizeof(sll))) {
		snprintf(err, errlen, "%s: %s", ifname, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static struct link *find_link(const char *id)
{
	for (size_t i = 0; i < g_nlinks; i++)
		if (!strcmp(g_links[i]->id, id))
			return g_links[i];
	return NULL;
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 0x100000001b3ull;
	return h;
}

static void free_link(struct link *l)
{
	for (int s = 0; s < 2; s++) {
		if (l->port[s].fd >= 0)
			close(l->port[s].fd); /* closing also leaves the epoll set */
		dir_flush(&l->dir[s], NULL);
		free(l->dir[s].q.v);
		free(l->dir[s].ser.v);
	}
	free(l);
}

static int valid_id(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = id[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || strchr("_.:-", ch)))
			return 0;
	}
	return 1;
}

static void reply(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

static int parse_num(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* apply one key=value to m; on a bad one, a one-line reason in err */
static int apply_key(struct model *m, const char *key, const char *val, char *err, size_t errlen)
{
	double v;

#define NUM(lo, hi)                                                                              \
	do {                                                                                     \
		if (parse_num(val, lo, hi, &v)) {                                                \
			snprintf(err, errlen, "%s=%s: not a number in [%g, %g]", key, val,       \
				 (double)(lo), (double)(hi));                                    \
			return -1;                                                               \
		}                                                                                \
	} while (0)
	if (!strcmp(key, "delay_us")) {
		NUM(0, 3.6e9);
		m->delay_ns = (uint64_t)(v * 1e3 + 0.5);
	} else if (!strcmp(key, "jitter_us")) {
		NUM(0, 3.6e9);
		m->jitter_ns = (uint64_t)(v * 1e3 + 0.5);
	} else if (!strcmp(key, "dist")) {
		int found = -1;

		for (int i = 0; i < 3; i++)
			if (!strcmp(val, DIST_NAMES[i]))
				found = i;
		if (found < 0) {
			snprintf(err, errlen, "dist=%s: not uniform, normal or paretonormal", val);
			return -1;
		}
		m->dist = (enum dist)found;
	} else if (!strcmp(key, "reorder")) {
		if (strcmp(val, "0") && strcmp(val, "1")) {
			snprintf(err, errlen, "reorder=%s: not 0 or 1", val);
			return -1;
		}
		m->reorder = val[0] == '1';
	} else if (!strcmp(key, "loss_pct")) {
		NUM(0, 100);
		m->loss = v / 100;
		m->ge = 0;
	} else if (!strcmp(key, "ge")) {
		double p[4];
		char buf[128], *tok, *save = NULL;
		int n = 0;

		if (!strcmp(val, "off")) {
			m->ge = 0;
			return 0;
		}
		snprintf(buf, sizeof(buf), "%s", val);
		for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			if (n == 4 || parse_num(tok, 0, 100, &p[n])) {
				n = -1;
				break;
			}
			n++;
		}
		if (n != 4) {
			snprintf(err, errlen, "ge=%s: not off or P,R,LB,LG (four percentages)", val);
			return -1;
		}
		m->ge = 1;
		m->ge_p = p[0] / 100;
		m->ge_r = p[1] / 100;
		m->ge_lb = p[2] / 100;
		m->ge_lg = p[3] / 100;
	} else if (!strcmp(key, "rate_bps")) {
		NUM(0, 1e13);
		if (v > 0 && v < 1000) {
			snprintf(err, errlen, "rate_bps=%s: below 1000 (0 means no rate)", val);
			return -1;
		}
		m->rate_bps = v;
	} else if (!strcmp(key, "queue_pkts")) {
		NUM(0, 1e9);
		m->queue_pkts = (uint64_t)v;
	} else if (!strcmp(key, "queue_bytes")) {
		NUM(0, 1e12);
		m->queue_bytes = (uint64_t)v;
	} else {
		snprintf(err, errlen, "unknown key %s", key);
		return -1;
	}
	return 0;
#undef NUM
}

static void cmd_add(char **arg, int n)
{
	char err[256];
	struct link *l;

	if (n != 3) {
		reply("error add: usage add ID IFA IFB");
		return;
	}
	if (!valid_id(arg[0])) {
		reply("error add: link id %s: 1-63 of [A-Za-z0-9_.:-]", arg[0]);
		return;
	}
	if (find_link(arg[0])) {
		reply("error add: link %s exists", arg[0]);
		return;
	}
	if (!strcmp(arg[1], arg[2])) {
		reply("error add: %s: both ends on one interface", arg[1]);
		return;
	}
	for (size_t i = 0; i < g_nlinks; i++)
		for (int s = 0; s < 2; s++)
			for (int k = 1; k <= 2; k++)
				if (!strcmp(g_links[i]->ifname[s], arg[k])) {
					reply("error add: %s already belongs to link %s", arg[k],
					      g_links[i]->id);
					return;
				}
	for (int k = 1; k <= 2; k++)
		if (strlen(arg[k]) >= IF_NAMESIZE) {
			reply("error add: interface name %s too long", arg[k]);
			return;
		}
	if (g_nlinks == g_caplinks) {
		size_t cap = g_caplinks ? g_caplinks * 2 : 16;
		struct link **v = realloc(g_links, cap * sizeof(*v));

		if (!v) {
			reply("error add: out of memory");
			return;
		}
		g_links = v;
		g_caplinks = cap;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		reply("error add: out of memory");
		return;
	}
	snprintf(l->id, sizeof(l->id), "%s", arg[0]);
	l->up = 1;
	for (int s = 0; s < 2; s++) {
		uint64_t seed = g_seed ^ fnv1a(l->id) ^ (uint64_t)(s + 1) * 0x9e3779b97f4a7c15ull;

		snprintf(l->ifname[s], IF_NAMESIZE, "%s", arg[1 + s]);
		l->port[s] = (struct port){.link = l, .side = s, .fd = -1};
		l->dir[s].link = l;
		l->dir[s].hidx = -1;
		l->dir[s].m.queue_pkts = DEFAULT_QUEUE_PKTS;
		rng_seed(&l->dir[s].rng, seed);
	}
	for (int s = 0; s < 2; s++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &l->port[s]};

		l->port[s].fd = open_port(l->ifname[s], err, sizeof(err));
		if (l->port[s].fd < 0 || epoll_ctl(g_epfd, EPOLL_CTL_ADD, l->port[s].fd, &ev)) {
			if (l->port[s].fd >= 0)
				snprintf(err, sizeof(err), "epoll: %s", strerror(errno));
			free_link(l);
			reply("error add %s: %s", arg[0], err);
			return;
		}
	}
	l->dir[0].out_fd = l->port[1].fd; /* a2b: in on A, out on B */
	l->dir[1].out_fd = l->port[0].fd;
	g_links[g_nlinks++] = l;
	reply("ok");
}

static void cmd_set(char **arg, int n)
{
	struct link *l;
	struct model m[2];
	char err[256];
	int lo, hi;

	if (n < 2) {
		reply("error set: usage set ID a2b|b2a|both KEY=VALUE ...");
		return;
	}
	l = find_link(arg[0]);
	if (!l) {
		reply("error set: no link %s", arg[0]);
		return;
	}
	if (!strcmp(arg[1], "a2b"))
		lo = hi = 0;
	else if (!strcmp(arg[1], "b2a"))
		lo = hi = 1;
	else if (!strcmp(arg[1], "both"))
		lo = 0, hi = 1;
	else {
		reply("error set: direction %s: not a2b, b2a or both", arg[1]);
		return;
	}
	for (int s = lo; s <= hi; s++) {
		m[s] = l->dir[s].m;
		for (int i = 2; i < n; i++) {
			char *eq = strchr(arg[i], '=');

			if (!eq) {
				reply("error set: %s: not KEY=VALUE", arg[i]);
				return;
			}
			*eq = 0;
			if (apply_key(&m[s], arg[i], eq + 1, err, sizeof(err))) {
				reply("error set: %s", err);
				return;
			}
			*eq = '=';
		}
	}
	for (int s = lo; s <= hi; s++) {
		struct dir *d = &l->dir[s];

		if (m[s].rate_bps <= 0) { /* no serialisation from now on */
			d->ser.head = d->ser.n = 0;
			d->ser.bytes = 0;
			d->last_finish = 0;
		}
		if (!m[s].ge)
			d->ge_bad = 0;
		d->m = m[s];
	}
	reply("ok");
}

static void json_counters(FILE *f, const struct dir *d)
{
	const struct counters *c = &d->c;

	fprintf(f,
		"{\"rx\":%llu,\"rx_bytes\":%llu,\"tx\":%llu,\"tx_bytes\":%llu,"
		"\"dropped_loss\":%llu,\"dropped_queue\":%llu,\"dropped_down\":%llu,"
		"\"dropped_tx\":%llu,\"in_flight\":%zu}",
		(unsigned long long)c->rx, (unsigned long long)c->rx_bytes,
		(unsigned long long)c->tx, (unsigned long long)c->tx_bytes,
		(unsigned long long)c->dropped_loss, (unsigned long long)c->dropped_queue,
		(unsigned long long)c->dropped_down, (unsigned long long)c->dropped_tx, d->q.n);
}

static void cmd_stats(char **arg, int n)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int first = 1;

	if (n > 1 || (n == 1 && !find_link(arg[0]))) {
		reply(n > 1 ? "error stats: usage stats [ID]" : "error stats: no link %s", arg[0]);
		return;
	}
	f = open_memstream(&buf, &len);
	if (!f) {
		reply("error stats: out of memory");
		return;
	}
	fputs("ok {\"links\":{", f);
	for (size_t i = 0; i < g_nlinks; i++) {
		struct link *l = g_links[i];

		if (n == 1 && strcmp(l->id, arg[0]))
			continue;
		fprintf(f, "%s\"%s\":{\"up\":%d,\"a2b\":", first ? "" : ",", l->id, l->up);
		json_counters(f, &l->dir[0]);
		fputs(",\"b2a\":", f);
		json_counters(f, &l->dir[1]);
		fputc('}', f);
		first = 0;
	}
	fputs("}}", f);
	fclose(f);
	reply("%s", buf);
	free(buf);
}

static void command(char *line)
{
	char *arg[64], *save = NULL, *tok;
	int n = 0;
	struct link *l;

	for (tok = strtok_r(line, " \t\r", &save); tok && n < 64; tok = strtok_r(NULL, " \t\r", &save))
		arg[n++] = tok;
	if (n == 0 || arg[0][0] == '#')
		return; /* blank lines and comments get no answer */
	if (!strcmp(arg[0], "add")) {
		cmd_add(arg + 1, n - 1);
	} else if (!strcmp(arg[0], "set")) {
		cmd_set(arg + 1, n - 1);
	} else if (!strcmp(arg[0], "stats")) {
		cmd_stats(arg + 1, n - 1);
	} else if (!strcmp(arg[0], "quit")) {
		reply("ok");
		g_stop = 1;
	} else if (!strcmp(arg[0], "del") || !strcmp(arg[0], "down") || !strcmp(arg[0], "up")) {
		if (n != 2 || !(l = find_link(arg[1]))) {
			reply(n != 2 ? "error %s: usage %s ID" : "error %s: no link %s", arg[0],
			      n != 2 ? arg[0] : arg[1]);
			return;
		}
		if (!strcmp(arg[0], "del")) {
			size_t i = 0;

			while (g_links[i] != l)
				i++;
			g_links[i] = g_links[--g_nlinks];
			free_link(l);
		} else if (!strcmp(arg[0], "down")) {
			l->up = 0;
			dir_flush(&l->dir[0], &l->dir[0].c.dropped_down);
			dir_flush(&l->dir[1], &l->dir[1].c.dropped_down);
		} else {
			l->up = 1;
		}
		reply("ok");
	} else {
		reply("error unknown command %s (add, del, set, down, up, stats, quit)", arg[0]);
	}
}

static char g_cmdbuf[1 << 16];
static size_t g_cmdlen;

/* read what stdin has; run every complete line; 1 at EOF */
static int read_commands(void)
{
	for (;;) {
		ssize_t r = read(0, g_cmdbuf + g_cmdlen, sizeof(g_cmdbuf) - 1 - g_cmdlen);
		char *nl;

		if (r < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : 1;
		if (r == 0)
			return 1;
		g_cmdlen += (size_t)r;
		g_cmdbuf[g_cmdlen] = 0;
		while ((nl = memchr(g_cmdbuf, '\n', g_cmdlen))) {
			size_t used = (size_t)(nl - g_cmdbuf) + 1;

			*nl = 0;
			command(g_cmdbuf);
			memmove(g_cmdbuf, g_cmdbuf + used, g_cmdlen - used);
			g_cmdlen -= used;
			if (g_stop)
				return 0;
		}
		if (g_cmdlen == sizeof(g_cmdbuf) - 1) {
			reply("error command line longer than %zu bytes", sizeof(g_cmdbuf) - 1);
			g_cmdlen = 0;
		}
	}
}

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

/* block the stop signals except while waiting, so none is lost between a check and a wait */
static void catch_signals(sigset_t *waitmask)
{
	struct sigaction sa = {0};
	sigset_t block;

	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, waitmask);
	sigdelset(waitmask, SIGTERM);
	sigdelset(waitmask, SIGINT);
}

static int run_element(void)
{
	struct epoll_event evs[64], ev = {.events = EPOLLIN, .data.ptr = NULL};
	sigset_t waitmask;

	catch_signals(&waitmask);
	g_epfd = epoll_create1(EPOLL_CLOEXEC);
	if (g_epfd < 0 || fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK) ||
	    epoll_ctl(g_epfd, EPOLL_CTL_ADD, 0, &ev)) {
		fprintf(stderr, "icpn_linkd: stdin must be a pipe or a terminal: %s\n",
			strerror(errno));
		return 1;
	}
	uint64_t last_turn = 0;

	while (!g_stop) {
		struct timespec ts, *tsp = NULL;
		int n;

		/* at most one turn a quantum: under load a turn moves batches of frames, not one
		 * frame per wake-up (an idle element still answers a lone frame at once) */
		if (g_quantum_ns && now_ns() < last_turn + g_quantum_ns) {
			uint64_t until = last_turn + g_quantum_ns;

			ts.tv_sec = (time_t)(until / 1000000000ull);
			ts.tv_nsec = (long)(until % 1000000000ull);
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		}
		if (g_ndh) {
			uint64_t t = now_ns(), next = dir_next(g_dh[0]);
			uint64_t wait = next > t ? next - t : 0;

			ts.tv_sec = (time_t)(wait / 1000000000ull);
			ts.tv_nsec = (long)(wait % 1000000000ull);
			tsp = &ts;
		}
		n = epoll_pwait2(g_epfd, evs, 64, tsp, &waitmask);
		last_turn = now_ns();
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "icpn_linkd: epoll: %s\n", strerror(errno));
			break;
		}
		for (int i = 0; i < n && !g_stop; i++) {
			if (evs[i].data.ptr == NULL) {
				if (read_commands())
					g_stop = 1;
			} else {
				receive(evs[i].data.ptr);
			}
		}
		depart_due(now_ns());
	}
	for (size_t i = 0; i < g_nlinks; i++)
		free_link(g_links[i]);
	free(g_links);
	free(g_dh);
	close(g_epfd);
	return 0;
}

/* ---- test traffic: generator and sink ------------------------------------------------------- */

struct test_hdr {
	uint32_t magic;
	uint64_t seq;
	uint64_t ts_ns;
} __attribute__((packed));

static int test_socket(const char *ifname, uint16_t proto)
{
	struct sockaddr_ll sll = {0};
	int fd, buf = 8 << 20;

	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(proto);
	sll.sll_ifindex = (int)if_nametoindex(ifname);
	if (!sll.sll_ifindex) {
		fprintf(stderr, "icpn_linkd: no interface %s\n", ifname);
		return -1;
	}
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof(buf)) ||
	    bind(fd, (struct sockaddr *)&sll, sizeof(sll))) {
		fprintf(stderr, "icpn_linkd: %s: %s\n", ifname, strerror(errno));
		return -1;
	}
	return fd;
}

struct opts {
	const char *ifname;
	unsigned size;
	double rate, duration;
	uint64_t count;
	unsigned idle_ms;
};

static void stamp(unsigned char *f, uint64_t seq)
{
	struct test_hdr h = {.magic = TEST_MAGIC, .seq = seq, .ts_ns = now_ns()};

	memcpy(f + 14, &h, sizeof(h));
}

static int run_gen(const struct opts *o)
{
	static unsigned char frames[32][FRAME_MAX];
	struct mmsghdr msgs[32];
	struct iovec iov[32];
	uint64_t sent = 0, errors = 0, start, end, t;
	int fd = test_socket(o->ifname, 0);
	sigset_t waitmask;

	if (fd < 0)
		return 1;
	catch_signals(&waitmask);
	sigprocmask(SIG_SETMASK, &waitmask, NULL);
	for (int i = 0; i < 32; i++) {
		memset(frames[i], 0, o->size);
		memset(frames[i], 0xff, 6);
		memcpy(frames[i] + 6, "\x02\x00\x00\x00\x00\x01", 6);
		frames[i][12] = TEST_ETHERTYPE >> 8;
		frames[i][13] = TEST_ETHERTYPE & 0xff;
		iov[i].iov_base = frames[i];
		iov[i].iov_len = o->size;
		memset(&msgs[i], 0, sizeof(msgs[i]));
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	start = now_ns();
	end = start + (uint64_t)(o->duration * 1e9);
	for (t = start; !g_stop && t < end && sent < o->count; t = now_ns()) {
		if (o->rate > 0) {
			/* paced: every frame stamped just before its own send */
			uint64_t due = (uint64_t)((double)(t - start) * o->rate / 1e9) + 1;

			while (sent < due && sent < o->count) {
				stamp(frames[0], sent);
				if (send(fd, frames[0], o->size, 0) < 0)
					errors++;
				sent++;
			}
			struct timespec ts;
			uint64_t next = start + (uint64_t)((double)sent * 1e9 / o->rate);

			ts.tv_sec = (time_t)(next / 1000000000ull);
			ts.tv_nsec = (long)(next % 1000000000ull);
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		} else {
			unsigned n = o->count - sent < 32 ? (unsigned)(o->count - sent) : 32;
			int r;

			for (unsigned i = 0; i < n; i++)
				stamp(frames[i], sent + i);
			r = sendmmsg(fd, msgs, n, 0);
			if (r < 0) {
				errors++;
				r = 1; /* skip the frame that failed */
			}
			sent += (uint64_t)r;
		}
	}
	printf("{\"sent\":%llu,\"errors\":%llu,\"seconds\":%.6f}\n", (unsigned long long)sent,
	       (unsigned long long)errors, (double)(now_ns() - start) / 1e9);
	close(fd);
	return 0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static int run_sink(const struct opts *o)
{
	static unsigned char buf[BATCH][FRAME_MAX];
	static char ctl[BATCH][CMSG_SPACE(sizeof(struct timespec))];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	uint64_t received = 0, bytes = 0, reordered = 0, max_seq = 0, first = 0, last = 0;
	uint64_t start, end;
	int64_t *delays = NULL;
	size_t nd = 0, capd = 0;
	int fd = test_socket(o->ifname, TEST_ETHERTYPE), one = 1, any = 0, ep;
	sigset_t waitmask;
	double sum = 0;

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)))
		return 1;
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &(struct epoll_event){.events = EPOLLIN}))
		return 1;
	catch_signals(&waitmask);
	printf("ready\n");
	fflush(stdout);
	start = now_ns();
	end = start + (uint64_t)(o->duration * 1e9);
	while (!g_stop) {
		struct timespec to = {0, 20 * 1000000};
		struct epoll_event ev;
		uint64_t t = now_ns();
		int n;

		if (t >= end || (any && o->idle_ms && t - last > o->idle_ms * 1000000ull))
			break;
		epoll_pwait2(ep, &ev, 1, &to, &waitmask);
		for (int i = 0; i < BATCH; i++) {
			iov[i].iov_base = buf[i];
			iov[i].iov_len = FRAME_MAX;
			memset(&msgs[i], 0, sizeof(msgs[i]));
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
			msgs[i].msg_hdr.msg_control = ctl[i];
			msgs[i].msg_hdr.msg_controllen = sizeof(ctl[i]);
		}
		while ((n = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL)) > 0) {
			struct timespec rt, mt;
			int64_t off;

			/* the kernel stamps arrivals in CLOCK_REALTIME; the sender wrote MONOTONIC */
			clock_gettime(CLOCK_REALTIME, &rt);
			clock_gettime(CLOCK_MONOTONIC, &mt);
			off = ((int64_t)rt.tv_sec - mt.tv_sec) * 1000000000ll + rt.tv_nsec - mt.tv_nsec;
			last = now_ns();
			for (int i = 0; i < n; i++) {
				struct test_hdr h;
				struct cmsghdr *c;
				int64_t rx = -1;

				if (msgs[i].msg_len < 14 + sizeof(h))
					continue;
				memcpy(&h, buf[i] + 14, sizeof(h));
				if (h.magic != TEST_MAGIC)
					continue;
				for (c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c;
				     c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
					if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
						struct timespec ts;

						memcpy(&ts, CMSG_DATA(c), sizeof(ts));
						rx = (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec - off;
					}
				}
				if (rx < 0)
					rx = (int64_t)last;
				if (!any)
					first = (uint64_t)rx;
				any = 1;
				received++;
				bytes += msgs[i].msg_len;
				if (h.seq < max_seq)
					reordered++;
				else
					max_seq = h.seq;
				if (nd == capd && capd < (16u << 20)) {
					size_t cap = capd ? capd * 2 : 1 << 16;
					int64_t *v = realloc(delays, cap * sizeof(*v));

					if (v) {
						delays = v;
						capd = cap;
					}
				}
				if (nd < capd) {
					delays[nd] = rx - (int64_t)h.ts_ns;
					sum += (double)delays[nd++];
				}
			}
			for (int i = 0; i < n; i++) {
				msgs[i].msg_hdr.msg_controllen = sizeof(ctl[i]);
				msgs[i].msg_hdr.msg_flags = 0;
			}
		}
	}
	if (nd)
		qsort(delays, nd, sizeof(*delays), cmp_i64);
	printf("{\"received\":%llu,\"bytes\":%llu,\"max_seq\":%llu,\"reordered\":%llu,"
	       "\"span_s\":%.6f,\"delay_ns\":{\"n\":%zu,\"min\":%lld,\"p50\":%lld,\"p99\":%lld,"
	       "\"max\":%lld,\"mean\":%.0f}}\n",
	       (unsigned long long)received, (unsigned long long)bytes,
	       (unsigned long long)max_seq, (unsigned long long)reordered,
	       any ? (double)(last - first) / 1e9 : 0.0, nd, nd ? (long long)delays[0] : 0,
	       nd ? (long long)delays[nd / 2] : 0, nd ? (long long)delays[(nd * 99) / 100] : 0,
	       nd ? (long long)delays[nd - 1] : 0, nd ? sum / (double)nd : 0.0);
	free(delays);
	close(ep);
	close(fd);
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: icpn_linkd [--seed N] [--quantum-us Q] [--rt-prio P] (commands: stdin)\n"
			"       icpn_linkd --gen IF --size N [--rate FPS] [--duration S] [--count N]\n"
			"       icpn_linkd --sink IF [--duration S] [--idle-ms N]\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct opts o = {.size = 64, .duration = 3600, .count = UINT64_MAX, .idle_ms = 0};
	int mode = 0; /* 0 element, 1 gen, 2 sink */
	double v;

	prctl(PR_SET_TIMERSLACK, 1UL); /* departures to the microsecond, not the 50 us default */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (!val)
			return usage();
		i++;
		if (!strcmp(a, "--gen") || !strcmp(a, "--sink")) {
			mode = a[2] == 'g' ? 1 : 2;
			o.ifname = val;
		} else if (!strcmp(a, "--rt-prio") && !parse_num(val, 1, 99, &v)) {
			struct sched_param sp = {.sched_priority = (int)v};

			/* a sandbox may refuse real-time scheduling: the links still work, with a
			 * longer delay tail on a loaded machine */
			if (sched_setscheduler(0, SCHED_FIFO, &sp))
				fprintf(stderr, "icpn_linkd: --rt-prio %s: %s; running at normal priority\n",
					val, strerror(errno));
		} else if (!strcmp(a, "--quantum-us") && !parse_num(val, 0, 1e6, &v)) {
			g_quantum_ns = (uint64_t)(v * 1e3);
		} else if (!strcmp(a, "--seed") && !parse_num(val, 0, 1.8e19, &v)) {
			g_seed = strtoull(val, NULL, 0);
		} else if (!strcmp(a, "--size") && !parse_num(val, 34, FRAME_MAX, &v)) {
			o.size = (unsigned)v < 60 ? 60 : (unsigned)v;
		} else if (!strcmp(a, "--rate") && !parse_num(val, 0, 1e9, &v)) {
			o.rate = v;
		} else if (!strcmp(a, "--duration") && !parse_num(val, 0, 1e6, &v)) {
			o.duration = v;
		} else if (!strcmp(a, "--count") && !parse_num(val, 1, 1e15, &v)) {
			o.count = (uint64_t)v;
		} else if (!strcmp(a, "--idle-ms") && !parse_num(val, 0, 1e7, &v)) {
			o.idle_ms = (unsigned)v;
		} else {
			fprintf(stderr, "icpn_linkd: bad option %s %s\n", a, val);
			return usage();
		}
	}
	if (mode == 1)
		return run_gen(&o);
	if (mode == 2)
		return run_sink(&o);
	return run_element();
}
