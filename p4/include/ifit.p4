// IFIT (SPEC 3, docs/pipeline.md section 4): head options, IOAM stamping, per-colour counters,
// the tail's report, and the HBH layout every emitted HBH is rebuilt to.
//
// Limits (docs/p4.md): a transit / tail stamps only the default trace type (0xF20000, NodeLen 5),
// into an area of at most IOAM_MAX_NODES records; other IOAM options are forwarded untouched.
// A head may lay out another trace type (set_ifit_head_gen: encap_gen_empty, encap_gen_record).
#ifndef ICPN_IFIT_P4
#define ICPN_IFIT_P4

#include <core.p4>
#include <v1model.p4>

#include "headers.p4"
#include "hashing.p4"

const bit<5> IOAM_NODE_LEN_DEFAULT = 5;

// Packets and bytes per (FlowMonID, colour): index (FlowMonID % IFIT_COUNTER_FLOWS) * 2 + L.
// BMv2 counts the octets of the frame as received.
counter(2 * ICPN_IFIT_COUNTER_FLOWS, CounterType.packets_and_bytes) ifit_counts;

// Head: per-flow colour period (period number + 1) and the countdown to the next D mark.
register<bit<48>>(ICPN_IFIT_COUNTER_FLOWS) ifit_period;
register<bit<32>>(ICPN_IFIT_COUNTER_FLOWS) ifit_countdown;

// Pad of n octets (docs/pipeline.md): Pad1 for one, PadN with zero data otherwise. A table
// with constant entries costs BMv2 one lookup where a chain of conditions costs one per test.
#define PAD_OFF(I) p[I].setInvalid();
#define PAD_ZERO(I) p[I].setValid(); p[I].b = 0;
#define PADN(DATA) p[0].setValid(); p[0].b = ICPN_IPV6_OPT_PADN; p[1].setValid(); \
    p[1].b = DATA;

control MakePad(in bit<8> n, inout padb_t[7] p) {
    action pad0() { PAD_OFF(0) PAD_OFF(1) PAD_OFF(2) PAD_OFF(3) PAD_OFF(4) PAD_OFF(5) PAD_OFF(6) }
    action pad1() { PAD_ZERO(0) PAD_OFF(1) PAD_OFF(2) PAD_OFF(3) PAD_OFF(4) PAD_OFF(5) PAD_OFF(6) }
    action pad2() { PADN(0) PAD_OFF(2) PAD_OFF(3) PAD_OFF(4) PAD_OFF(5) PAD_OFF(6) }
    action pad3() { PADN(1) PAD_ZERO(2) PAD_OFF(3) PAD_OFF(4) PAD_OFF(5) PAD_OFF(6) }
    action pad4() { PADN(2) PAD_ZERO(2) PAD_ZERO(3) PAD_OFF(4) PAD_OFF(5) PAD_OFF(6) }
    action pad5() { PADN(3) PAD_ZERO(2) PAD_ZERO(3) PAD_ZERO(4) PAD_OFF(5) PAD_OFF(6) }
    action pad6() { PADN(4) PAD_ZERO(2) PAD_ZERO(3) PAD_ZERO(4) PAD_ZERO(5) PAD_OFF(6) }
    action pad7() { PADN(5) PAD_ZERO(2) PAD_ZERO(3) PAD_ZERO(4) PAD_ZERO(5) PAD_ZERO(6) }

    table pad {
        key = { n: exact @name("octets"); }
        actions = { pad0; pad1; pad2; pad3; pad4; pad5; pad6; pad7; }
        const entries = {
            0: pad0();
            1: pad1();
            2: pad2();
            3: pad3();
            4: pad4();
            5: pad5();
            6: pad6();
            7: pad7();
        }
        default_action = pad0();
    }

    apply {
        pad.apply();
    }
}

// Rebuilds an HBH's length and padding for the options present, in the order the deparser
// emits them: APN, AltMark, other options, [pad to 4n], IOAM, [pad to 8n]. An HBH received in
// this layout leaves byte for byte as it came.
control HbhLayout(inout exthdr_t h, in opt_apn_t apn, in opt_altmark_t am,
                  in opt_generic_t other0, in opt_generic_t other1, in opt_ioam_t io,
                  inout padb_t[7] pad_align, inout padb_t[7] pad_end, out bit<16> total) {
    // (@name: the P4Info names of the pad tables stay what they were)
    @name("make_pad_a") MakePad() make_pad_align;
    @name("make_pad_e") MakePad() make_pad_end;
    apply {
        bit<16> off = 2;
        if (apn.isValid()) { off = off + 2 + (bit<16>)apn.len; }
        if (am.isValid()) { off = off + 6; }
        if (other0.isValid()) { off = off + 2 + (bit<16>)other0.len; }
        if (other1.isValid()) { off = off + 2 + (bit<16>)other1.len; }
        bit<8> na = 0;
        if (io.isValid()) {
            na = (bit<8>)((16w0 - off) & 3);
            off = off + (bit<16>)na + 2 + (bit<16>)io.len;
        }
        bit<8> ne = (bit<8>)((16w0 - off) & 7);
        total = off + (bit<16>)ne;
        h.len = (bit<8>)(total >> 3) - 1;
        make_pad_align.apply(na, pad_align);
        make_pad_end.apply(ne, pad_end);
    }
}

// A DOH that holds only an APN option (DOH carrier): its length and the padding to 8n.
control DohLayout(inout exthdr_t h, in opt_apn_t apn, inout padb_t[7] pad, out bit<16> total) {
    MakePad() make_pad;
    apply {
        bit<16> off = 4 + (bit<16>)apn.len;
        bit<8> ne = (bit<8>)((16w0 - off) & 7);
        total = off + (bit<16>)ne;
        h.len = (bit<8>)(total >> 3) - 1;
        make_pad.apply(ne, pad);
    }
}

// Stamps this node's record into a pre-allocated trace (docs/pipeline.md section 4): at word
// RemainingLen - NodeLen of the area, or the Overflow flag when the room is used up.
#define IOAM_WRITE(K) records[K].hop_node = rec.hop_node; records[K].ports = rec.ports;       \
    records[K].seconds = rec.seconds; records[K].micros = rec.micros;                         \
    records[K].qdepth = rec.qdepth;

control IoamStamp(inout ioam_trace_t t, inout ioam_node_t[ICPN_IOAM_MAX_NODES] records,
                  in bit<8> nodes, in ioam_record_t rec) {
    bit<8> slot;
    action write0() { IOAM_WRITE(0) }
    action write1() { IOAM_WRITE(1) }
    action write2() { IOAM_WRITE(2) }
    action write3() { IOAM_WRITE(3) }
    action write4() { IOAM_WRITE(4) }
    action write5() { IOAM_WRITE(5) }
    action write6() { IOAM_WRITE(6) }
    action write7() { IOAM_WRITE(7) }

    // record index = (RemainingLen - NodeLen) / NodeLen
    table ioam_slot {
        key = { slot: exact @name("remaining_len"); }
        actions = { write0; write1; write2; write3; write4; write5; write6; write7; NoAction; }
        const entries = {
            5: write0();
            10: write1();
            15: write2();
            20: write3();
            25: write4();
            30: write5();
            35: write6();
            40: write7();
        }
        default_action = NoAction();
    }

    apply {
        if (t.trace_type == ICPN_IOAM_TRACE_TYPE_DEFAULT && t.node_len == IOAM_NODE_LEN_DEFAULT) {
            slot = (bit<8>)t.remaining_len;
            if (t.remaining_len < 5) {
                t.flags = t.flags | 4w0x8;
            } else if ((bit<16>)slot <= (bit<16>)nodes * 5) {
                if (ioam_slot.apply().hit) {
                    t.remaining_len = t.remaining_len - 5;
                }
            }
        }
    }
}

// Seconds and microseconds of a µs timestamp.
const bit<160> USEC_MAGIC = ((1 << ICPN_MAGIC_SHIFT_TIME) + 999999) / 1000000;

control IoamRecord(in bit<8> hop_limit, in bit<24> node_id, in bit<16> in_if, in bit<16> out_if,
                   in bit<48> now_us, in bit<32> qdepth, out ioam_record_t rec) {
    apply {
        bit<48> sec = MAGIC_DIV(now_us, USEC_MAGIC);
        rec.hop_node = hop_limit ++ node_id;
        rec.ports = in_if ++ out_if;
        rec.seconds = sec[31:0];
        rec.micros = (bit<32>)(now_us - sec * 1000000);
        rec.qdepth = qdepth;
    }
}

// BMv2's setValid (add_header) zeroes an invalid header: that is the empty record.
#define GEN_ZERO(I) if (zw > I) {                                                              \
        hdr.encap_gen_empty[I].setValid(); hdr.encap_gen_empty[I].w = 0; }
#define GEN_REC(I) if (node_len > I) {                                                         \
        hdr.encap_gen_record[I].setValid(); hdr.encap_gen_record[I].w = 0; }
#define ZERO_NODE(I) hdr.encap_ioam_record[I].setValid();

// The IFIT head (docs/pipeline.md section 4): on encapsulation, a flow that matches gets the
// AltMark option (colour of the current period, D on one packet in d_every) and an empty
// pre-allocated IOAM trace in the outer HBH.
control IfitHead(inout headers_t hdr, inout meta_t meta) {
    bit<20>  flowmon;
    bit<32>  slot;
    bit<128> period_magic;
    bit<32>  d_every;
    bit<16>  namespace_id;
    bit<8>   nodes;
    bit<8>   node_len;
    bit<24>  trace_type;

    action set_flowmon(bit<20> flowmon_id, bit<32> flow_slot) {
        flowmon = flowmon_id;
        slot = flow_slot;
    }

    table ifit_flow {
        key = {
            meta.k_src:   ternary @name("src");
            meta.k_dst:   ternary @name("dst");
            meta.k_proto: ternary @name("proto");
            meta.sport:   ternary @name("sport");
            meta.dport:   ternary @name("dport");
            meta.dscp:    ternary @name("dscp");
            meta.in_port: ternary @name("in_port");
        }
        actions = { set_flowmon; NoAction; }
        default_action = NoAction();
        size = ICPN_IFIT_COUNTER_FLOWS;
    }

    action head(bit<128> period_div, bit<32> d_every_n, bit<16> namespace, bit<8> max_nodes,
                bit<24> trace) {
        period_magic = period_div;
        d_every = d_every_n;
        namespace_id = namespace;
        nodes = max_nodes;
        trace_type = trace;
    }

    // Head settings; set_ifit_headN also lays out the empty area of N records (N = max_nodes),
    // so the head needs one lookup for both.
    action set_ifit_head1(bit<128> period_div, bit<32> d_every_n, bit<16> namespace,
                          bit<24> trace) {
        head(period_div, d_every_n, namespace, 1, trace);
        ZERO_NODE(0)
    }

    action set_ifit_head2(bit<128> period_div, bit<32> d_every_n, bit<16> namespace,
                          bit<24> trace) {
        head(period_div, d_every_n, namespace, 2, trace);
        ZERO_NODE(0) ZERO_NODE(1)
    }

    action set_ifit_head3(bit<128> period_div, bit<32> d_every_n, bit<16> namespace,
                          bit<24> trace) {
        head(period_div, d_every_n, namespace, 3, trace);
        ZERO_NODE(0) ZERO_NODE(1) ZERO_NODE(2)
    }

    action set_ifit_head4(bit<128> period_div, bit<32> d_every_n, bit<16> namespace,
                          bit<24> trace) {
        head(period_div, d_every_n, namespace, 4, trace);
        ZERO_NODE(0) ZERO_NODE(1) ZERO_NODE(2) ZERO_NODE(3)
    }

    action set_ifit_head5(bit<128> period_div, bit<32> d_every_n, bit<16> namespace,
                          bit<24> trace) {
        head(period_div, d_every_n, namespace, 5, trace);
        ZERO_NODE(0) ZERO_NODE(1) ZERO_NODE(2) ZERO_NODE(3) ZERO_NODE(4)
    }

    action set_ifit_head6(bit<128> period_div, bit<32> d_every_n, bit<16> namespace,
                          bit<24> trace) {
        head(period_div, d_every_n, namespace, 6, trace);
        ZERO_NODE(0) ZERO_NODE(1) ZERO_NODE(2) ZERO_NODE(3) ZERO_NODE(4) ZERO_NODE(5)
    }

    action set_ifit_head7(bit<128> period_div, bit<32> d_every_n, bit<16> namespace,
                          bit<24> trace) {
        head(period_div, d_every_n, namespace, 7, trace);
        ZERO_NODE(0) ZERO_NODE(1) ZERO_NODE(2) ZERO_NODE(3)
        ZERO_NODE(4) ZERO_NODE(5) ZERO_NODE(6)
    }

    action set_ifit_head8(bit<128> period_div, bit<32> d_every_n, bit<16> namespace,
                          bit<24> trace) {
        head(period_div, d_every_n, namespace, 8, trace);
        ZERO_NODE(0) ZERO_NODE(1) ZERO_NODE(2) ZERO_NODE(3)
        ZERO_NODE(4) ZERO_NODE(5) ZERO_NODE(6) ZERO_NODE(7)
    }

    // Another trace type: NodeLen node_words, the record's words chosen by sel (ICPN_GEN_*).
    action set_ifit_head_gen(bit<128> period_div, bit<32> d_every_n, bit<16> namespace,
                             bit<24> trace, bit<8> max_nodes, bit<8> node_words, bit<32> sel) {
        head(period_div, d_every_n, namespace, max_nodes, trace);
        node_len = node_words;
        meta.ifit_gen = 1;
        meta.ifit_gen_sel = sel;
    }

    table ifit_head_cfg {
        actions = {
            set_ifit_head1; set_ifit_head2; set_ifit_head3; set_ifit_head4; set_ifit_head5;
            set_ifit_head6; set_ifit_head7; set_ifit_head8; set_ifit_head_gen; NoAction;
        }
        default_action = NoAction();
        size = 1;
    }

    apply {
        flowmon = 0;
        slot = 0;
        period_magic = 0;
        d_every = 1;
        namespace_id = 0;
        nodes = 0;
        node_len = (bit<8>)IOAM_NODE_LEN_DEFAULT;
        trace_type = ICPN_IOAM_TRACE_TYPE_DEFAULT;
        meta.ifit_gen = 0;
        if (ifit_flow.apply().hit) {
            ifit_head_cfg.apply();
            bit<48> period1 = MAGIC_DIV(meta.now_us, period_magic) + 1;
            bit<48> last;
            bit<32> countdown;
            ifit_period.read(last, slot);
            ifit_countdown.read(countdown, slot);
            if (last != period1) {
                countdown = 0;
            }
            bit<1> d = 0;
            if (countdown == 0) {
                d = 1;
                countdown = d_every - 1;
            } else {
                countdown = countdown - 1;
            }
            ifit_period.write(slot, period1);
            ifit_countdown.write(slot, countdown);

            hdr.encap_hbh.setValid();
            hdr.encap_altmark.setValid();
            hdr.encap_altmark.type = ICPN_ALTMARK_OPT_TYPE;
            hdr.encap_altmark.len = 4;
            hdr.encap_altmark.flowmon_id = flowmon;
            bit<48> period = period1 - 1;
            hdr.encap_altmark.l = period[0:0];
            hdr.encap_altmark.d = d;
            hdr.encap_altmark.reserved = 0;
            hdr.encap_ioam.setValid();
            hdr.encap_ioam.type = ICPN_IOAM_OPT_TYPE;
            hdr.encap_ioam.len = 10 + 4 * nodes * node_len;
            hdr.encap_ioam.reserved = 0;
            hdr.encap_ioam.ioam_type = 0;
            hdr.encap_trace.setValid();
            hdr.encap_trace.namespace_id = namespace_id;
            hdr.encap_trace.node_len = (bit<5>)node_len;
            hdr.encap_trace.flags = 0;
            hdr.encap_trace.remaining_len = (bit<7>)(nodes * node_len);
            if (meta.ifit_gen == 1) {
                bit<8> zw = (nodes - 1) * node_len;
                GEN_ZERO(0)  GEN_ZERO(1)  GEN_ZERO(2)  GEN_ZERO(3)  GEN_ZERO(4)  GEN_ZERO(5)
                GEN_ZERO(6)  GEN_ZERO(7)  GEN_ZERO(8)  GEN_ZERO(9)  GEN_ZERO(10) GEN_ZERO(11)
                GEN_ZERO(12) GEN_ZERO(13) GEN_ZERO(14) GEN_ZERO(15) GEN_ZERO(16) GEN_ZERO(17)
                GEN_ZERO(18) GEN_ZERO(19) GEN_ZERO(20) GEN_ZERO(21) GEN_ZERO(22) GEN_ZERO(23)
                GEN_ZERO(24) GEN_ZERO(25) GEN_ZERO(26) GEN_ZERO(27) GEN_ZERO(28) GEN_ZERO(29)
                GEN_ZERO(30) GEN_ZERO(31)
                GEN_REC(0) GEN_REC(1) GEN_REC(2) GEN_REC(3) GEN_REC(4) GEN_REC(5) GEN_REC(6)
                GEN_REC(7)
            }
            hdr.encap_trace.trace_type = trace_type;
            hdr.encap_trace.reserved = 0;
            meta.ifit_head = 1;
            meta.flowmon_id = flowmon;
            meta.ifit_l = hdr.encap_altmark.l;
        }
    }
}

// A head with another trace type stamps its record word by word (ICPN_GEN_*), from the
// ioam_record_t `rec` its IoamRecord computed.
#define GEN_WORD(I) if (hdr.encap_gen_record[I].isValid()) { \
        bit<4> s##I = (bit<4>)(meta.ifit_gen_sel >> (4 * I)); \
        bit<32> v##I = 0xFFFFFFFF; \
        if (s##I == ICPN_GEN_HOP_NODE) { v##I = rec.hop_node; } \
        else if (s##I == ICPN_GEN_PORTS) { v##I = rec.ports; } \
        else if (s##I == ICPN_GEN_SECONDS) { v##I = rec.seconds; } \
        else if (s##I == ICPN_GEN_MICROS) { v##I = rec.micros; } \
        else if (s##I == ICPN_GEN_QDEPTH) { v##I = rec.qdepth; } \
        hdr.encap_gen_record[I].w = v##I; }

// Removes the IFIT options from the received HBH (a tail that does not decapsulate), and the
// HBH itself when nothing else is left in it.
control IfitStrip(inout headers_t hdr, inout meta_t meta) {
    apply {
        hdr.altmark.setInvalid();
        hdr.ioam.setInvalid();
        hdr.trace.setInvalid();
        hdr.ioam_raw.setInvalid();
        hdr.ioam_record.pop_front(ICPN_IOAM_MAX_NODES);
        if (!hdr.apn.isValid() && !hdr.other_opt0.isValid() && !hdr.other_opt1.isValid()) {
            hdr.ipv6.next_hdr = hdr.hbh.next_hdr;
            hdr.ipv6.payload_len = hdr.ipv6.payload_len - meta.hbh_len_in;
            hdr.hbh.setInvalid();
        }
    }
}

#define DROP_NODE(K) if (rem > 5 * K) { hdr.ioam_record[K].setInvalid(); }

// Turns an I2E clone made at the tail into the IFIT report (docs/pipeline.md section 4): the
// clone was re-parsed from the received frame, so its IOAM area is stamped here with the data
// the forwarded packet had (ports, time, hop limit kept in the clone's field list).
control IfitReport(inout headers_t hdr, inout meta_t meta, in ip6_t source, in ip6_t collector,
                   in bit<16> udp_port, in bit<24> node_id, in mac_t dmac) {
    apply {
        bit<8> rem = (bit<8>)hdr.trace.remaining_len;
        // rem is a multiple of NodeLen (5) <= 40: rem * 52 >> 8 == rem / 5 there.
        bit<8> nodes = meta.ioam_nodes - (bit<8>)(((bit<16>)rem * 52) >> 8);

        hdr.report_hdr.setValid();
        hdr.report_hdr.version = ICPN_IFIT_REPORT_VERSION;
        hdr.report_hdr.node_count = nodes;
        hdr.report_hdr.flags = 0;
        hdr.report_hdr.flowmon_id = 0;
        hdr.report_hdr.l = 0;
        hdr.report_hdr.d = 0;
        if (hdr.altmark.isValid()) {
            hdr.report_hdr.flowmon_id = hdr.altmark.flowmon_id;
            hdr.report_hdr.l = hdr.altmark.l;
            hdr.report_hdr.d = hdr.altmark.d;
        }
        hdr.report_hdr.reserved = 0;
        hdr.report_hdr.tail_node_id = (bit<32>)node_id;
        bit<48> sec = MAGIC_DIV(meta.now_us, USEC_MAGIC);
        hdr.report_hdr.ts_sec = sec[31:0];
        hdr.report_hdr.ts_usec = (bit<32>)(meta.now_us - sec * 1000000);

        hdr.report_tuple.setValid();
        hdr.report_tuple.family = meta.k_family;
        hdr.report_tuple.proto = meta.k_proto;
        hdr.report_tuple.sport = meta.sport;
        hdr.report_tuple.dport = meta.dport;
        hdr.report_tuple.reserved = 0;
        hdr.report_tuple.src = meta.k_src;
        hdr.report_tuple.dst = meta.k_dst;

        bit<16> udp_len = 8 + 20 + 40 + 20 * (bit<16>)nodes;
        hdr.report_udp.setValid();
        hdr.report_udp.sport = udp_port;
        hdr.report_udp.dport = udp_port;
        hdr.report_udp.len = udp_len;
        hdr.report_udp.checksum = 0;      // computed in IcpnComputeChecksum

        hdr.encap_ipv6.setValid();
        hdr.encap_ipv6.version = 6;
        hdr.encap_ipv6.tc = 0;
        hdr.encap_ipv6.flow_label = 0;
        hdr.encap_ipv6.payload_len = udp_len;
        hdr.encap_ipv6.next_hdr = ICPN_IPPROTO_UDP;
        hdr.encap_ipv6.hop_limit = ICPN_IFIT_REPORT_HOP_LIMIT;
        hdr.encap_ipv6.src = source;
        hdr.encap_ipv6.dst = collector;
        hdr.ethernet.dst = dmac;
        hdr.ethernet.ether_type = ICPN_ETHERTYPE_IPV6;

        // Only the filled part of the area follows the report header: every header the
        // deparser emits between them goes, and the frame is cut after the area.
        hdr.ipv6.setInvalid();
        hdr.hbh.setInvalid();
        hdr.apn.setInvalid();
        hdr.apn_word.pop_front(ICPN_APN_MAX_WORDS);
        hdr.altmark.setInvalid();
        hdr.other_opt0.setInvalid();
        hdr.other_opt1.setInvalid();
        hdr.ioam.setInvalid();
        hdr.trace.setInvalid();
        hdr.ioam_raw.setInvalid();
        DROP_NODE(0) DROP_NODE(1) DROP_NODE(2) DROP_NODE(3)
        DROP_NODE(4) DROP_NODE(5) DROP_NODE(6) DROP_NODE(7)
        truncate(14 + 40 + (bit<32>)udp_len);
    }
}

#endif
