// IFIT (SPEC 3, docs/pipeline.md section 4): head options, IOAM stamping, per-colour counters,
// the tail's report, and the layouts of the option headers this node builds or strips.
//
// Every node stamps a received trace with the packet's own trace type (IoamCheck, IoamStamp).
// A head lays out the default type in up to IOAM_MAX_NODES records with set_ifit_headN (one
// action per size: the common case, fast); any other layout one option holds word by word with
// set_ifit_head_gen (encap_gen_empty: up to 60 empty words, encap_gen_record: up to 25).
#ifndef ICPN_IFIT_P4
#define ICPN_IFIT_P4

#include <core.p4>
#include <v1model.p4>

#include "headers.p4"
#include "hashing.p4"

const bit<5> IOAM_NODE_LEN_DEFAULT = 5;
const bit<24> IOAM_TRACE_DEFAULT = ICPN_IOAM_TRACE_TYPE_DEFAULT;

// Packets per (FlowMonID, colour): index (FlowMonID % IFIT_COUNTER_FLOWS) * 2 + L.
counter(2 * ICPN_IFIT_COUNTER_FLOWS, CounterType.packets) ifit_counts;
// Their bytes: SPEC 3 counts the carrier's IPv6 length, where a BMv2 counter would add the
// frame's received length (bm_sim counters.h). So each length is counted digit by digit: for
// each of its IFIT_LEN_DIGITS base-16 digits, one packet in the cell of the digit's position
// and value, IFIT_LEN_CELLS cells per index; bytes = the sum of value x 16^position x packets
// over them (pyctl.targets.bmv2.counters reads it back).
counter(2 * ICPN_IFIT_COUNTER_FLOWS * ICPN_IFIT_LEN_CELLS, CounterType.packets) ifit_len_digits;

// One packet in each of a value's IFIT_LEN_DIGITS base-16 digit cells, from cell `base`: the
// cell of digit k with value v is base + 16 k + v (pyctl.targets.bmv2.counters reads them).
#define COUNT_DIGITS(CTR, BASE, V)                     \
    CTR.count(BASE + (bit<32>)V[3:0]);                 \
    CTR.count(BASE + 16 + (bit<32>)V[7:4]);            \
    CTR.count(BASE + 32 + (bit<32>)V[11:8]);           \
    CTR.count(BASE + 48 + (bit<32>)V[15:12]);          \
    CTR.count(BASE + 64 + (bit<32>)V[19:16]);

// Counts a packet of `len` octets (its carrier's IPv6 length) in counter index `idx`.
control IfitCount(in bit<32> idx, in bit<32> len) {
    apply {
        ifit_counts.count(idx);
        bit<32> base = idx * ICPN_IFIT_LEN_CELLS;
        COUNT_DIGITS(ifit_len_digits, base, len)
    }
}

// Which FlowMonID a counter slot (FlowMonID % IFIT_COUNTER_FLOWS, both colours) counts:
// FlowMonID + 1, 0 while free. The first FlowMonID counted in a slot keeps it; a packet of
// another FlowMonID of that slot cannot be counted apart, so it is dropped p4-limit rather than
// forwarded into another flow's counters (docs/p4.md limits). The keeper is also counted once,
// digit by digit (IFIT_LEN_DIGITS base-16 digits, as the lengths), into ifit_slot_keeper: the
// controller reads which FlowMonID a slot's counts are (registers are not readable over
// P4Runtime on BMv2).
register<bit<32>>(ICPN_IFIT_COUNTER_FLOWS) ifit_slot_owner;
counter(ICPN_IFIT_COUNTER_FLOWS * ICPN_IFIT_LEN_CELLS, CounterType.packets) ifit_slot_keeper;

// taken = 1: the slot of `flowmon_id` is another FlowMonID's.
control IfitSlot(in bit<20> flowmon_id, out bit<1> taken) {
    bit<1> claimed;

    // One action: BMv2 holds the register's lock for the whole action.
    action claim() {
        bit<32> slot = (bit<32>)flowmon_id % ICPN_IFIT_COUNTER_FLOWS;
        bit<32> me = (bit<32>)flowmon_id + 1;
        bit<32> owner;
        ifit_slot_owner.read(owner, slot);
        claimed = (owner == 0) ? 1w1 : 1w0;
        taken = (owner != 0 && owner != me) ? 1w1 : 1w0;
        ifit_slot_owner.write(slot, (owner == 0) ? me : owner);
    }

    apply {
        claim();
        if (claimed == 1) {
            bit<32> base = ((bit<32>)flowmon_id % ICPN_IFIT_COUNTER_FLOWS) * ICPN_IFIT_LEN_CELLS;
            COUNT_DIGITS(ifit_slot_keeper, base, flowmon_id)
        }
    }
}

// Head: per-flow colour period (period number + 1) and the countdown to the next D mark.
register<bit<48>>(ICPN_IFIT_COUNTER_FLOWS) ifit_period;
register<bit<32>>(ICPN_IFIT_COUNTER_FLOWS) ifit_countdown;

// Pad of n octets (docs/pipeline.md): Pad1 for one, PadN with zero data otherwise. A table
// with constant entries costs BMv2 one lookup where a chain of conditions costs one per test.
// Each pad stack is this node's own (never parsed) and laid out once per packet, so it starts
// invalid: an action makes valid only the octets it needs.
#define PAD_ZERO(I) p[I].setValid(); p[I].b = 0;
#define PADN(DATA) p[0].setValid(); p[0].b = ICPN_IPV6_OPT_PADN; p[1].setValid(); \
    p[1].b = DATA;

control MakePad(in bit<8> n, inout padb_t[7] p) {
    action pad0() { }
    action pad1() { PAD_ZERO(0) }
    action pad2() { PADN(0) }
    action pad3() { PADN(1) PAD_ZERO(2) }
    action pad4() { PADN(2) PAD_ZERO(2) PAD_ZERO(3) }
    action pad5() { PADN(3) PAD_ZERO(2) PAD_ZERO(3) PAD_ZERO(4) }
    action pad6() { PADN(4) PAD_ZERO(2) PAD_ZERO(3) PAD_ZERO(4) PAD_ZERO(5) }
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

// Lays out the HBH this node builds (a headend's outer HBH): its length and padding for the
// options present, in the order the deparser emits them: APN, AltMark, [pad to 4n], IOAM,
// [pad to 8n] (docs/pipeline.md 3).
control EncapHbhLayout(inout exthdr_t h, in opt_apn_t apn, in opt_altmark_t am,
                       in opt_ioam_t io, inout padb_t[7] pad_align, inout padb_t[7] pad_end,
                       out bit<16> total) {
    // (@name: the P4Info names of the pad tables stay what they were)
    @name("make_pad_a") MakePad() make_pad_align;
    @name("make_pad_e") MakePad() make_pad_end;
    bit<8> na;   // octets of padding before the IOAM option, and at the end
    bit<8> ne;

    // One action (see IfitHead.mark): the options' octets, the padding, the header's length.
    action lengths() {
        bit<16> off = 2 + (apn.isValid() ? 2 + (bit<16>)apn.len : 16w0)
                      + (am.isValid() ? 16w6 : 16w0);
        na = io.isValid() ? (bit<8>)((16w0 - off) & 3) : 8w0;
        off = off + (io.isValid() ? (bit<16>)na + 2 + (bit<16>)io.len : 16w0);
        ne = (bit<8>)((16w0 - off) & 7);
        total = off + (bit<16>)ne;
        h.len = (bit<8>)(total >> 3) - 1;
    }

    apply {
        lengths();
        make_pad_align.apply(na, pad_align);
        make_pad_end.apply(ne, pad_end);
    }
}

// An options header laid out again: `kept` octets of options kept in their order, then an APN
// option this node adds (if valid), then padding to 8n. A DOH[APN] this node inserts or pushes,
// the HBH[APN] it inserts, a received HBH a tail stripped of its IFIT options.
control OptionsLayout(inout exthdr_t h, in opt_apn_t apn, in bit<16> kept, inout padb_t[7] pad,
                      out bit<16> total) {
    MakePad() make_pad;
    apply {
        bit<16> off = 2 + kept + (apn.isValid() ? 2 + (bit<16>)apn.len : 16w0);
        bit<8> ne = (bit<8>)((16w0 - off) & 7);
        total = off + (bit<16>)ne;
        h.len = (bit<8>)(total >> 3) - 1;
        make_pad.apply(ne, pad);
    }
}

// Which received traces this node stamps (docs/pipeline.md section 4), and how: IOAM-Option-Type
// 0 (the parser), Namespace-ID 0 or the node's, bit 22 clear, NodeLen equal to the size of the
// trace type and RemainingLen within the area. The record's words, in trace-type bit order, are
// the concatenation of each octet's words (three tables of 256 entries the controller fills from
// the function that lays out a head's record); the default type needs no lookup.
const bit<100> IOAM_SEL_DEFAULT = (bit<100>)ICPN_GEN_HOP_NODE | (bit<100>)ICPN_GEN_PORTS << 4
    | (bit<100>)ICPN_GEN_SECONDS << 8 | (bit<100>)ICPN_GEN_MICROS << 12
    | (bit<100>)ICPN_GEN_QDEPTH << 16;

control IoamCheck(in ioam_trace_t t, inout meta_t meta) {
    bit<16> namespace_id;
    bit<8>  words0;
    bit<8>  words1;
    bit<8>  words2;
    bit<32> sel0;
    bit<44> sel1;
    bit<24> sel2;

    action set_ioam_node(bit<16> namespace) {
        namespace_id = namespace;
    }

    table ioam_node_cfg {
        actions = { set_ioam_node; NoAction; }
        default_action = NoAction();
        size = 1;
    }

    action words_0_7(bit<8> words, bit<32> sel) {
        words0 = words;
        sel0 = sel;
    }

    action words_8_15(bit<8> words, bit<44> sel) {
        words1 = words;
        sel1 = sel;
    }

    action words_16_23(bit<8> words, bit<24> sel) {
        words2 = words;
        sel2 = sel;
    }

    // Trace-type bits 0-7, 8-15, 16-23 (bit 0 the most significant): their words, and the
    // ICPN_GEN_* of each (4 bits a word, the first lowest). Bits 22 and 23 have no words.
    table ioam_trace_bits_0_7 {
        key = { t.trace_type[23:16]: exact @name("octet"); }
        actions = { words_0_7; NoAction; }
        default_action = NoAction();
        size = 256;
    }

    table ioam_trace_bits_8_15 {
        key = { t.trace_type[15:8]: exact @name("octet"); }
        actions = { words_8_15; NoAction; }
        default_action = NoAction();
        size = 256;
    }

    table ioam_trace_bits_16_23 {
        key = { t.trace_type[7:0]: exact @name("octet"); }
        actions = { words_16_23; NoAction; }
        default_action = NoAction();
        size = 256;
    }

    apply {
        namespace_id = 0;
        ioam_node_cfg.apply();
        bit<8> node_len = 5;
        meta.ioam_sel = IOAM_SEL_DEFAULT;
        meta.ioam_default = 1;
        if (t.trace_type[23:1] != IOAM_TRACE_DEFAULT[23:1]) {   // bit 23: no data
            meta.ioam_default = 0;
            words0 = 0;
            words1 = 0;
            words2 = 0;
            sel0 = 0;
            sel1 = 0;
            sel2 = 0;
            ioam_trace_bits_0_7.apply();
            ioam_trace_bits_8_15.apply();
            ioam_trace_bits_16_23.apply();
            node_len = words0 + words1 + words2;
            meta.ioam_sel = (bit<100>)sel0 | (bit<100>)sel1 << (words0 << 2)
                            | (bit<100>)sel2 << ((words0 + words1) << 2);
        }
        meta.ioam_node_len = node_len;
        meta.ioam_usable = 0;
        if ((t.namespace_id == 0 || t.namespace_id == namespace_id) && t.trace_type[1:1] == 0
            && node_len != 0 && (bit<8>)t.node_len == node_len
            && (bit<8>)t.remaining_len <= meta.ioam_words) {
            meta.ioam_usable = 1;
        }
    }
}

// Stamps this node's record into a usable trace (docs/pipeline.md section 4): the parser put
// the words at RemainingLen - NodeLen of the area into `record`; without room for them, the
// Overflow flag. Word j of the record is word sel[4j+3:4j] (ICPN_GEN_*) of `rec` as laid out
// in `words` below.
#define IOAM_STAMP_WORD(J) if (node_len > J) {                                                 \
        record[J].w = (bit<32>)(words >> ((bit<8>)sel[4 * J + 3:4 * J] << 5)); }

control IoamStamp(inout ioam_trace_t t, inout word_t[ICPN_IOAM_RECORD_WORDS] record,
                  in bit<8> node_len, in bit<1> default_type, in bit<100> sel,
                  in ioam_record_t rec) {
    apply {
        bit<8> rem = (bit<8>)t.remaining_len;
        if (rem < node_len) {
            t.flags = t.flags | 4w0x8;
        } else if (default_type == 1) {
            // the default type's words straight from the record (no selectors)
            record[0].w = rec.hop_node;
            record[1].w = rec.ports;
            record[2].w = rec.seconds;
            record[3].w = rec.micros;
            record[4].w = rec.qdepth;
            t.remaining_len = (bit<7>)(rem - node_len);
        } else {
            // word 32 * ICPN_GEN_*: hop limit | node id, ports, seconds, µs, queue depth, ones
            bit<192> words = 32w0xFFFFFFFF ++ rec.qdepth ++ rec.micros ++ rec.seconds
                             ++ rec.ports ++ rec.hop_node;
            IOAM_STAMP_WORD(0)  IOAM_STAMP_WORD(1)  IOAM_STAMP_WORD(2)  IOAM_STAMP_WORD(3)
            IOAM_STAMP_WORD(4)  IOAM_STAMP_WORD(5)  IOAM_STAMP_WORD(6)  IOAM_STAMP_WORD(7)
            IOAM_STAMP_WORD(8)  IOAM_STAMP_WORD(9)  IOAM_STAMP_WORD(10) IOAM_STAMP_WORD(11)
            IOAM_STAMP_WORD(12) IOAM_STAMP_WORD(13) IOAM_STAMP_WORD(14) IOAM_STAMP_WORD(15)
            IOAM_STAMP_WORD(16) IOAM_STAMP_WORD(17) IOAM_STAMP_WORD(18) IOAM_STAMP_WORD(19)
            IOAM_STAMP_WORD(20) IOAM_STAMP_WORD(21) IOAM_STAMP_WORD(22) IOAM_STAMP_WORD(23)
            IOAM_STAMP_WORD(24)
            t.remaining_len = (bit<7>)(rem - node_len);
        }
    }
}

// A head's own record in the default-type area it laid out: the area's last record.
control IoamStampHead(inout ioam_trace_t t, inout ioam_node_t own, in ioam_record_t rec) {
    apply {
        own.hop_node = rec.hop_node;
        own.ports = rec.ports;
        own.seconds = rec.seconds;
        own.micros = rec.micros;
        own.qdepth = rec.qdepth;
        t.remaining_len = t.remaining_len - (bit<7>)IOAM_NODE_LEN_DEFAULT;
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
#define GEN_REC(I) if (meta.ifit_gen_node_len > I) {                                          \
        hdr.encap_gen_record[I].setValid(); hdr.encap_gen_record[I].w = 0; }
#define EMPTY4 hdr.encap_ioam_empty4.setValid();
#define EMPTY2 hdr.encap_ioam_empty2.setValid();
#define EMPTY1 hdr.encap_ioam_empty1.setValid();
#define OWN_NODE hdr.encap_ioam_own.setValid();

// The IFIT head (docs/pipeline.md section 4): on encapsulation, a flow that matches gets the
// AltMark option (colour of the current period, D on one packet in d_every) and an empty
// pre-allocated IOAM trace in the outer HBH.
control IfitHead(inout headers_t hdr, inout meta_t meta) {
    bit<128> period_magic;
    bit<32>  d_every;

    action set_flowmon(bit<20> flowmon_id, bit<32> flow_slot) {
        meta.flowmon_id = flowmon_id;
        meta.ifit_slot = flow_slot;
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

    // The head's settings, and the IOAM trace option's fixed part written at once: it is the
    // same for every packet of the node (the AltMark, which is not, follows in apply).
    action head(bit<128> period_div, bit<32> d_every_n, bit<16> namespace, bit<8> max_nodes,
                bit<8> node_words, bit<24> trace) {
        period_magic = period_div;
        d_every = d_every_n;
        // (setValid zeroes Reserved, IOAM-Option-Type 0 and Flags, as it does the empty records)
        hdr.encap_ioam.setValid();
        hdr.encap_ioam.type = ICPN_IOAM_OPT_TYPE;
        hdr.encap_ioam.len = 10 + 4 * max_nodes * node_words;
        hdr.encap_trace.setValid();
        hdr.encap_trace.namespace_id = namespace;
        hdr.encap_trace.node_len = (bit<5>)node_words;
        hdr.encap_trace.remaining_len = (bit<7>)(max_nodes * node_words);
        hdr.encap_trace.trace_type = trace;
    }

    // Head settings; set_ifit_headN also lays out the empty area of N records (N = max_nodes),
    // so the head needs one lookup for both.
    action set_ifit_head1(bit<128> period_div, bit<32> d_every_n, bit<16> namespace,
                          bit<24> trace) {
        head(period_div, d_every_n, namespace, 1, (bit<8>)IOAM_NODE_LEN_DEFAULT, trace);
        OWN_NODE
    }

    action set_ifit_head2(bit<128> period_div, bit<32> d_every_n, bit<16> namespace,
                          bit<24> trace) {
        head(period_div, d_every_n, namespace, 2, (bit<8>)IOAM_NODE_LEN_DEFAULT, trace);
        EMPTY1 OWN_NODE
    }

    action set_ifit_head3(bit<128> period_div, bit<32> d_every_n, bit<16> namespace,
                          bit<24> trace) {
        head(period_div, d_every_n, namespace, 3, (bit<8>)IOAM_NODE_LEN_DEFAULT, trace);
        EMPTY2 OWN_NODE
    }

    action set_ifit_head4(bit<128> period_div, bit<32> d_every_n, bit<16> namespace,
                          bit<24> trace) {
        head(period_div, d_every_n, namespace, 4, (bit<8>)IOAM_NODE_LEN_DEFAULT, trace);
        EMPTY2 EMPTY1 OWN_NODE
    }

    action set_ifit_head5(bit<128> period_div, bit<32> d_every_n, bit<16> namespace,
                          bit<24> trace) {
        head(period_div, d_every_n, namespace, 5, (bit<8>)IOAM_NODE_LEN_DEFAULT, trace);
        EMPTY4 OWN_NODE
    }

    action set_ifit_head6(bit<128> period_div, bit<32> d_every_n, bit<16> namespace,
                          bit<24> trace) {
        head(period_div, d_every_n, namespace, 6, (bit<8>)IOAM_NODE_LEN_DEFAULT, trace);
        EMPTY4 EMPTY1 OWN_NODE
    }

    action set_ifit_head7(bit<128> period_div, bit<32> d_every_n, bit<16> namespace,
                          bit<24> trace) {
        head(period_div, d_every_n, namespace, 7, (bit<8>)IOAM_NODE_LEN_DEFAULT, trace);
        EMPTY4 EMPTY2 OWN_NODE
    }

    action set_ifit_head8(bit<128> period_div, bit<32> d_every_n, bit<16> namespace,
                          bit<24> trace) {
        head(period_div, d_every_n, namespace, 8, (bit<8>)IOAM_NODE_LEN_DEFAULT, trace);
        EMPTY4 EMPTY2 EMPTY1 OWN_NODE
    }

    // Another trace type: NodeLen node_words, the record's words chosen by sel (ICPN_GEN_*).
    action set_ifit_head_gen(bit<128> period_div, bit<32> d_every_n, bit<16> namespace,
                             bit<24> trace, bit<8> max_nodes, bit<8> node_words, bit<100> sel) {
        head(period_div, d_every_n, namespace, max_nodes, node_words, trace);
        meta.ifit_gen_nodes = max_nodes;
        meta.ifit_gen_node_len = node_words;
        meta.ifit_gen = 1;
        meta.ifit_gen_sel = sel;
    }

    // The flow's AltMark for this packet: its period's colour and, one packet in d_every, D (a
    // new period restarts the countdown). One action: p4c turns each if of a control's body
    // into a table of its own, where conditional expressions in an action stay one step.
    action mark() {
        bit<48> period1 = MAGIC_DIV(meta.now_us, period_magic) + 1;
        bit<48> last;
        bit<32> countdown;
        ifit_period.read(last, meta.ifit_slot);
        ifit_countdown.read(countdown, meta.ifit_slot);
        countdown = (last != period1) ? 32w0 : countdown;
        bit<1> d = (countdown == 0) ? 1w1 : 1w0;
        ifit_period.write(meta.ifit_slot, period1);
        ifit_countdown.write(meta.ifit_slot, (countdown == 0) ? d_every - 1 : countdown - 1);
        bit<48> period = period1 - 1;
        hdr.encap_hbh.setValid();
        hdr.encap_altmark.setValid();
        hdr.encap_altmark.type = ICPN_ALTMARK_OPT_TYPE;
        hdr.encap_altmark.len = 4;
        hdr.encap_altmark.flowmon_id = meta.flowmon_id;
        hdr.encap_altmark.l = period[0:0];
        hdr.encap_altmark.d = d;
        meta.ifit_head = 1;
        meta.ifit_l = period[0:0];
    }

    // A node without head settings: one period, D on every packet, no trace.
    action no_head() {
        period_magic = 0;
        d_every = 1;
    }

    // Its default action is the node's settings (the controller's) or no_head: the locals are
    // set by the actions of the lookups that run, not once more beforehand for every packet
    // (meta.ifit_gen starts at 0, as all metadata does).
    table ifit_head_cfg {
        actions = {
            set_ifit_head1; set_ifit_head2; set_ifit_head3; set_ifit_head4; set_ifit_head5;
            set_ifit_head6; set_ifit_head7; set_ifit_head8; set_ifit_head_gen; no_head;
        }
        default_action = no_head();
        size = 1;
    }

    apply {
        if (ifit_flow.apply().hit) {
            ifit_head_cfg.apply();
            mark();
            if (meta.ifit_gen == 1) {
                bit<8> zw = (meta.ifit_gen_nodes - 1) * meta.ifit_gen_node_len;
                GEN_ZERO(0) GEN_ZERO(1) GEN_ZERO(2) GEN_ZERO(3) GEN_ZERO(4) GEN_ZERO(5)
                GEN_ZERO(6) GEN_ZERO(7) GEN_ZERO(8) GEN_ZERO(9) GEN_ZERO(10) GEN_ZERO(11)
                GEN_ZERO(12) GEN_ZERO(13) GEN_ZERO(14) GEN_ZERO(15) GEN_ZERO(16) GEN_ZERO(17)
                GEN_ZERO(18) GEN_ZERO(19) GEN_ZERO(20) GEN_ZERO(21) GEN_ZERO(22) GEN_ZERO(23)
                GEN_ZERO(24) GEN_ZERO(25) GEN_ZERO(26) GEN_ZERO(27) GEN_ZERO(28) GEN_ZERO(29)
                GEN_ZERO(30) GEN_ZERO(31) GEN_ZERO(32) GEN_ZERO(33) GEN_ZERO(34) GEN_ZERO(35)
                GEN_ZERO(36) GEN_ZERO(37) GEN_ZERO(38) GEN_ZERO(39) GEN_ZERO(40) GEN_ZERO(41)
                GEN_ZERO(42) GEN_ZERO(43) GEN_ZERO(44) GEN_ZERO(45) GEN_ZERO(46) GEN_ZERO(47)
                GEN_ZERO(48) GEN_ZERO(49) GEN_ZERO(50) GEN_ZERO(51) GEN_ZERO(52) GEN_ZERO(53)
                GEN_ZERO(54) GEN_ZERO(55) GEN_ZERO(56) GEN_ZERO(57) GEN_ZERO(58) GEN_ZERO(59)
                GEN_REC(0) GEN_REC(1) GEN_REC(2) GEN_REC(3) GEN_REC(4) GEN_REC(5) GEN_REC(6)
                GEN_REC(7) GEN_REC(8) GEN_REC(9) GEN_REC(10) GEN_REC(11) GEN_REC(12) GEN_REC(13)
                GEN_REC(14) GEN_REC(15) GEN_REC(16) GEN_REC(17) GEN_REC(18) GEN_REC(19)
                GEN_REC(20) GEN_REC(21) GEN_REC(22) GEN_REC(23) GEN_REC(24)
            }
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

// Removes the IFIT options from the received HBH (a tail that does not decapsulate): the
// options of the AltMark and IOAM types and the padding (the parser noted their slots), and an
// unwalked rest; the HBH itself when nothing else is left in it. The options left keep their
// order; the lengths step lays them out again (docs/pipeline.md 4).
#define HBH_STRIP_SLOT(S, I) if (meta.hbh_strip_##S[I:I] == 1) { hdr.hbh_##S[I].setInvalid(); }
control IfitStrip(inout headers_t hdr, inout meta_t meta) {
    apply {
        hdr.altmark.setInvalid();
        hdr.ioam.setInvalid();
        hdr.trace.setInvalid();
        hdr.ioam_raw.setInvalid();
        hdr.ioam_empty.setInvalid();
        hdr.ioam_record.pop_front(ICPN_IOAM_RECORD_WORDS);
        hdr.ioam_filled.setInvalid();
        hdr.hbh_rest.setInvalid();
        HBH_STRIP_SLOT(pre, 0) HBH_STRIP_SLOT(pre, 1) HBH_STRIP_SLOT(pre, 2)
        HBH_STRIP_SLOT(pre, 3) HBH_STRIP_SLOT(pre, 4) HBH_STRIP_SLOT(pre, 5)
        HBH_STRIP_SLOT(pre, 6) HBH_STRIP_SLOT(pre, 7)
        HBH_STRIP_SLOT(post, 0) HBH_STRIP_SLOT(post, 1) HBH_STRIP_SLOT(post, 2)
        HBH_STRIP_SLOT(post, 3)
        if (meta.hbh_kept == 0) {
            hdr.ipv6.next_hdr = hdr.hbh.next_hdr;
            hdr.ipv6.payload_len = hdr.ipv6.payload_len - meta.hbh_len_in;
            hdr.hbh.setInvalid();
            meta.strip_bytes = meta.hbh_len_in;
        }
    }
}

// Turns an I2E clone made at the tail into the IFIT report (docs/pipeline.md section 4): the
// clone was re-parsed from the received frame, so its IOAM area is stamped here with the data
// the forwarded packet had (ports, time, hop limit kept in the clone's field list).
control IfitReport(inout headers_t hdr, inout meta_t meta, in ip6_t source, in ip6_t collector,
                   in bit<16> udp_port, in bit<24> node_id, in mac_t dmac) {
    bit<32> count_magic;

    action count_by(bit<32> magic) {
        count_magic = magic;
    }

    // NodeCount = filled words / NodeLen, as (filled * ceil(2^16 / NodeLen)) >> 16: exact for
    // up to 61 words and NodeLen up to 25 (checked in tests/test_bmv2_writer.py).
#define COUNT_BY(D) D: count_by(((1 << 16) + D - 1) / D);
    table node_count {
        key = { meta.ioam_node_len: exact @name("node_len"); }
        actions = { count_by; NoAction; }
        const entries = {
            COUNT_BY(1)  COUNT_BY(2)  COUNT_BY(3)  COUNT_BY(4)  COUNT_BY(5)  COUNT_BY(6)
            COUNT_BY(7)  COUNT_BY(8)  COUNT_BY(9)  COUNT_BY(10) COUNT_BY(11) COUNT_BY(12)
            COUNT_BY(13) COUNT_BY(14) COUNT_BY(15) COUNT_BY(16) COUNT_BY(17) COUNT_BY(18)
            COUNT_BY(19) COUNT_BY(20) COUNT_BY(21) COUNT_BY(22) COUNT_BY(23) COUNT_BY(24)
            COUNT_BY(25)
        }
        default_action = NoAction();
    }
#undef COUNT_BY

    apply {
        bit<8> rem = (bit<8>)hdr.trace.remaining_len;
        bit<8> filled = meta.ioam_words - rem;
        count_magic = 0;
        node_count.apply();

        hdr.report_hdr.setValid();
        hdr.report_hdr.version = ICPN_IFIT_REPORT_VERSION;
        hdr.report_hdr.node_count = (bit<8>)(((bit<48>)filled * (bit<48>)count_magic) >> 16);
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

        // The 5-tuple of the packet as it leaves: the inner one after decapsulation; without
        // it the outer packet's, whose upper layer is an inner packet (41 / 4, no ports) when
        // there is one (otherwise the flow key's innermost packet is the outer packet).
        hdr.report_tuple.setValid();
        hdr.report_tuple.family = meta.k_family;
        hdr.report_tuple.proto = meta.k_proto;
        hdr.report_tuple.sport = meta.sport;
        hdr.report_tuple.dport = meta.dport;
        hdr.report_tuple.reserved = 0;
        hdr.report_tuple.src = meta.k_src;
        hdr.report_tuple.dst = meta.k_dst;
        if (meta.report_outer == 1
            && (hdr.inner_ipv6.isValid() || hdr.inner_ipv4.isValid())) {
            hdr.report_tuple.family = ICPN_FAMILY_IPV6;
            hdr.report_tuple.proto = ICPN_IPPROTO_IPV6;
            if (hdr.inner_ipv4.isValid()) {
                hdr.report_tuple.proto = ICPN_IPPROTO_IPIP;
            }
            hdr.report_tuple.sport = 0;
            hdr.report_tuple.dport = 0;
            hdr.report_tuple.src = hdr.ipv6.src;
            hdr.report_tuple.dst = hdr.ipv6.dst;
        }

        bit<16> udp_len = 8 + 20 + 40 + 4 * (bit<16>)filled;
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
        hdr.hbh_pre.pop_front(ICPN_HBH_SLOTS_BEFORE_IOAM);
        hdr.ioam.setInvalid();
        hdr.trace.setInvalid();
        hdr.ioam_raw.setInvalid();
        hdr.ioam_empty.setInvalid();    // (this node's record and the filled ones stay)
        hdr.hbh_post.pop_front(ICPN_HBH_SLOTS_AFTER_IOAM);
        hdr.hbh_rest.setInvalid();
        truncate(14 + 40 + (bit<32>)udp_len);
    }
}

#endif
