// Congestion (SPEC 5, docs/pipeline.md sections 1 and 5): PFC frames in (pauses), PFC frame
// generation from the ingress-queue occupancy, holding traffic for a paused port, DCQCN-style
// ECN marking from the bytes queued at the egress port.
#ifndef ICPN_CONGESTION_P4
#define ICPN_CONGESTION_P4

#include <core.p4>
#include <v1model.p4>

#include "headers.p4"
#include "ipv4.p4"

#define PFC_SLOTS (ICPN_MAX_PORTS * 8)

// Per (port, priority), index port * 8 + priority.
register<bit<48>>(PFC_SLOTS) pfc_paused_until;   // µs; this port sends nothing of the priority
register<bit<1>>(PFC_SLOTS)  pfc_xoff_sent;      // an XOFF went out and no XON yet
register<bit<32>>(PFC_SLOTS) pfc_vq_bytes;       // ingress virtual queue (outside test mode)
register<bit<48>>(PFC_SLOTS) pfc_vq_time;

// Last enq_qdepth seen per egress port: the tail's record in an IFIT report uses it.
register<bit<32>>(512) last_qdepth;

// Pause of `T` quanta (512 bit times each) received for priority P: paused until now + T * 512
// / line rate, in µs (the controller's multiplier makes the division exact).
#define PFC_PAUSE(P, T)                                                                       \
    if (hdr.pfc.class_enable[P:P] == 1) {                                                     \
        bit<64> bits_us = (bit<64>)(T) * 512000000;                                           \
        bit<48> pause_us = (bit<48>)(((bit<192>)bits_us * (bit<192>)quanta_magic)             \
                                     >> ICPN_MAGIC_SHIFT_PAUSE);                              \
        pfc_paused_until.write(base + P, meta.now_us + pause_us);                             \
    }

control PfcIngress(inout headers_t hdr, inout meta_t meta) {
    bit<1>   generate;
    bit<32>  xoff;
    bit<32>  xon;
    bit<16>  pause_time;
    bit<1>   prio_from_dscp;
    bit<3>   default_prio;
    bit<32>  drain;
    bit<128> quanta_magic;
    bit<32>  occupancy;

    action set_pfc(bit<1> enabled, bit<32> xoff_bytes, bit<32> xon_bytes, bit<16> pause,
                     bit<1> dscp_priority, bit<3> priority, bit<32> drain_bytes_per_us,
                     bit<128> quanta_div) {
        generate = enabled;
        xoff = xoff_bytes;
        xon = xon_bytes;
        pause_time = pause;
        prio_from_dscp = dscp_priority;
        default_prio = priority;
        drain = drain_bytes_per_us;
        quanta_magic = quanta_div;
    }

    table pfc_cfg {
        actions = { set_pfc; NoAction; }
        default_action = NoAction();
        size = 1;
    }

    action set_occupancy(bit<32> bytes) {
        occupancy = bytes;
    }

    // Test mode: the ingress-queue occupancy of PacketContext.ingress_queue_bytes.
    table test_ingress_queue {
        key = {
            meta.in_port:  exact @name("port");
            meta.pfc_prio: exact @name("priority");
        }
        actions = { set_occupancy; NoAction; }
        default_action = NoAction();
        size = 1024;
    }

    apply {
        generate = 0;
        xoff = 0;
        xon = 0;
        pause_time = 0;
        drain = 0;
        quanta_magic = 0;
        prio_from_dscp = 1;
        default_prio = 0;
        occupancy = 0;
        pfc_cfg.apply();
        bit<32> base = ((bit<32>)meta.in_port * 8) & (PFC_SLOTS - 1);
        if (hdr.pfc.isValid()) {
            PFC_PAUSE(0, hdr.pfc.t0)
            PFC_PAUSE(1, hdr.pfc.t1)
            PFC_PAUSE(2, hdr.pfc.t2)
            PFC_PAUSE(3, hdr.pfc.t3)
            PFC_PAUSE(4, hdr.pfc.t4)
            PFC_PAUSE(5, hdr.pfc.t5)
            PFC_PAUSE(6, hdr.pfc.t6)
            PFC_PAUSE(7, hdr.pfc.t7)
            meta.drop_reason = ICPN_DROP_PFC_CONSUMED;
        } else {
            meta.pfc_prio = default_prio;
            if (prio_from_dscp == 1) {
                if (meta.l3_tc_valid == 1) {    // (also from a truncated IP header)
                    meta.pfc_prio = meta.l3_tc[7:5];
                }
            }
            if (generate == 1) {
                bit<32> idx = base + (bit<32>)meta.pfc_prio;
                if (meta.test_mode == 1) {
                    test_ingress_queue.apply();
                } else {
                    // A virtual queue filled by arrivals and drained at the line rate.
                    bit<32> queued;
                    bit<48> since;
                    pfc_vq_bytes.read(queued, idx);
                    pfc_vq_time.read(since, idx);
                    bit<64> drained = (bit<64>)(meta.now_us - since) * (bit<64>)drain;
                    if ((bit<64>)queued > drained) {
                        queued = queued - (bit<32>)drained;
                    } else {
                        queued = 0;
                    }
                    occupancy = queued + meta.frame_len;
                    pfc_vq_bytes.write(idx, occupancy);
                    pfc_vq_time.write(idx, meta.now_us);
                }
                bit<1> sent;
                pfc_xoff_sent.read(sent, idx);
                if (occupancy > xoff) {
                    meta.pfc_emit = 1;
                    meta.pfc_time = pause_time;
                    pfc_xoff_sent.write(idx, 1);
                } else if (occupancy < xon && sent == 1) {
                    meta.pfc_emit = 1;
                    meta.pfc_time = 0;
                    pfc_xoff_sent.write(idx, 0);
                }
            }
        }
    }
}

// Holds (here: drops, reason pfc-held) a packet whose egress port is paused for its priority.
control PfcHold(inout meta_t meta) {
    apply {
        bit<32> idx = (((bit<32>)meta.out_port * 8) & (PFC_SLOTS - 1)) + (bit<32>)meta.pfc_prio;
        bit<48> until;
        pfc_paused_until.read(until, idx);
        if (until > meta.now_us) {
            meta.drop_reason = ICPN_DROP_PFC_HELD;
        }
    }
}

// Turns a clone into a PFC frame for meta.pfc_prio with meta.pfc_time (60 octets, no FCS).
control PfcFrame(inout headers_t hdr, in meta_t meta, in mac_t src) {
    apply {
        hdr.packet_in.setInvalid();
        hdr.ethernet.setValid();
        hdr.ethernet.dst = ICPN_PFC_DST_MAC;
        hdr.ethernet.src = src;
        hdr.ethernet.ether_type = ICPN_PFC_ETHERTYPE;
        hdr.pfc.setValid();
        hdr.pfc.opcode = ICPN_PFC_OPCODE;
        hdr.pfc.class_enable = (bit<16>)1 << meta.pfc_prio;
        hdr.pfc.t0 = 0;
        hdr.pfc.t1 = 0;
        hdr.pfc.t2 = 0;
        hdr.pfc.t3 = 0;
        hdr.pfc.t4 = 0;
        hdr.pfc.t5 = 0;
        hdr.pfc.t6 = 0;
        hdr.pfc.t7 = 0;
        if (meta.pfc_prio == 0) { hdr.pfc.t0 = meta.pfc_time; }
        if (meta.pfc_prio == 1) { hdr.pfc.t1 = meta.pfc_time; }
        if (meta.pfc_prio == 2) { hdr.pfc.t2 = meta.pfc_time; }
        if (meta.pfc_prio == 3) { hdr.pfc.t3 = meta.pfc_time; }
        if (meta.pfc_prio == 4) { hdr.pfc.t4 = meta.pfc_time; }
        if (meta.pfc_prio == 5) { hdr.pfc.t5 = meta.pfc_time; }
        if (meta.pfc_prio == 6) { hdr.pfc.t6 = meta.pfc_time; }
        if (meta.pfc_prio == 7) { hdr.pfc.t7 = meta.pfc_time; }
        hdr.pfc_pad.setValid();
        hdr.pfc_pad.zero = 0;
        truncate(60);
    }
}

// Bytes queued per egress port (outside test mode; BMv2 counts its queues in packets only).
// Two running totals per port: the bytes ingress has sent to the port, and that total as it was
// after the last packet egress took off the port's queue; their difference is what is queued.
// A packet BMv2 drops because the queue is full (simple_switch's queues drop rather than block)
// counts as queued until a packet sent after it leaves the queue: no count is ever left behind.
register<bit<32>>(512) queue_bytes_in;
register<bit<32>>(512) queue_bytes_out;

// Ingress, for a packet sent to a port: the bytes it finds queued there (meta.queue_bytes), and
// the port's total with it (meta.queue_mark, what egress records when it leaves the queue).
control QueueBytesIn(inout meta_t meta, in bit<16> port, in bit<32> len) {
    // One action: BMv2 holds the registers' locks for the whole action, so the read-modify-write
    // does not race with egress threads.
    action enqueue() {
        bit<32> idx = (bit<32>)port & 511;
        bit<32> sent;
        bit<32> left;
        queue_bytes_in.read(sent, idx);
        queue_bytes_out.read(left, idx);
        meta.queue_bytes = sent - left;
        meta.queue_mark = sent + len;
        meta.queue_counted = 1;
        queue_bytes_in.write(idx, sent + len);
    }

    apply {
        enqueue();
    }
}

// Egress, for a packet ingress counted: it has left its port's queue.
control QueueBytesOut(in meta_t meta, in bit<16> port) {
    action dequeue() {
        queue_bytes_out.write((bit<32>)port & 511, meta.queue_mark);
    }

    apply {
        if (meta.queue_counted == 1) {
            dequeue();
        }
    }
}

// ECN (docs/pipeline.md section 5) on the outermost IP header: ECT packets are marked CE with
// probability 0 at q <= Kmin, always above Kmax, else iff rand32 < T(q) with
// T(q) = floor(pmax * 2^32) * (q - Kmin) // (Kmax - Kmin). No division at run time:
// for integers r, n and d > 0, r < floor(n / d) <=> r + 1 <= n / d <=> (r + 1) * d <= n, so the
// test is (rand32 + 1) * (Kmax - Kmin) <= floor(pmax * 2^32) * (q - Kmin), exact in 64 bits
// (each side below 2^33 * 2^30; q, Kmin, Kmax are bytes < 2^32).
control Ecn(inout headers_t hdr, in meta_t meta, in bit<32> qbytes) {
    bit<32> kmin;
    bit<32> kmax;
    bit<64> top;     // floor(pmax * 2^32), up to 2^32
    Ipv4SetCe() ipv4_ce;
    Ipv4SetCe() inner_ipv4_ce;

    action set_ecn(bit<32> kmin_bytes, bit<32> kmax_bytes, bit<33> pmax_t) {
        kmin = kmin_bytes;
        kmax = kmax_bytes;
        top = (bit<64>)pmax_t;
    }

    table ecn_cfg {
        actions = { set_ecn; NoAction; }
        default_action = NoAction();
        size = 1;
    }

    apply {
        bit<2> ecn = 0;
        if (hdr.encap_ipv6.isValid()) {
            ecn = hdr.encap_ipv6.tc[1:0];
        } else if (hdr.ipv6.isValid()) {
            ecn = hdr.ipv6.tc[1:0];
        } else if (hdr.ipv4.isValid()) {
            ecn = hdr.ipv4.tos[1:0];
        } else if (hdr.inner_ipv6.isValid()) {
            ecn = hdr.inner_ipv6.tc[1:0];
        } else if (hdr.inner_ipv4.isValid()) {
            ecn = hdr.inner_ipv4.tos[1:0];
        }
        if (ecn == 1 || ecn == 2) {
            kmin = 0;
            kmax = 0;
            top = 0;
            ecn_cfg.apply();
            bool mark = false;
            if (qbytes > kmax) {
                mark = true;
            } else if (qbytes > kmin) {
                mark = ((bit<64>)meta.rand32 + 1) * (bit<64>)(kmax - kmin)
                       <= top * (bit<64>)(qbytes - kmin);
            }
            if (mark) {
                if (hdr.encap_ipv6.isValid()) {
                    hdr.encap_ipv6.tc = hdr.encap_ipv6.tc | ICPN_ECN_CE;
                } else if (hdr.ipv6.isValid()) {
                    hdr.ipv6.tc = hdr.ipv6.tc | ICPN_ECN_CE;
                } else if (hdr.ipv4.isValid()) {
                    ipv4_ce.apply(hdr.ipv4);
                } else if (hdr.inner_ipv6.isValid()) {
                    hdr.inner_ipv6.tc = hdr.inner_ipv6.tc | ICPN_ECN_CE;
                } else {
                    inner_ipv4_ce.apply(hdr.inner_ipv4);
                }
            }
        }
    }
}

#endif
