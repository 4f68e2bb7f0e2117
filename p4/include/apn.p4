// APN (SPEC 2, docs/pipeline.md section 3): the APN-ID of a packet (RoCEv2 QP map, then the
// option the packet carries, then the network-side classifier), and building an APN option.
#ifndef ICPN_APN_P4
#define ICPN_APN_P4

#include <core.p4>

#include "headers.p4"

// A carried APN option O with words W: its APN-ID when it is usable (meta.apn_valid,
// apn_from_pkt). (Macros, not controls: p4c 1.2.4's BMv2 back end emits field names BMv2
// rejects when a control that takes meta is applied to different headers.)
#define APN_CARRIED(O, W)                                                                     \
    {                                                                                         \
        bit<16> p = O.para_type;                                                              \
        bit<8> params = (bit<8>)(p[15:15]) + (bit<8>)(p[14:14]) + (bit<8>)(p[13:13])          \
                        + (bit<8>)(p[12:12]) + (bit<8>)(p[11:11]) + (bit<8>)(p[10:10])        \
                        + (bit<8>)(p[9:9]) + (bit<8>)(p[8:8]) + (bit<8>)(p[7:7])              \
                        + (bit<8>)(p[6:6]) + (bit<8>)(p[5:5]) + (bit<8>)(p[4:4])              \
                        + (bit<8>)(p[3:3]) + (bit<8>)(p[2:2]) + (bit<8>)(p[1:1])              \
                        + (bit<8>)(p[0:0]);                                                   \
        if (O.id_type == ICPN_APN_ID_TYPE_32 && meta.apn_words >= 1 + params) {               \
            meta.apn_id = (ip6_t)W[0].w;                                                      \
            meta.apn_valid = 1;                                                               \
        } else if (O.id_type == ICPN_APN_ID_TYPE_64 && meta.apn_words >= 2 + params) {        \
            meta.apn_id = (ip6_t)(W[0].w ++ W[1].w);                                          \
            meta.apn_valid = 1;                                                               \
        } else if (O.id_type == ICPN_APN_ID_TYPE_128 && meta.apn_words >= 4 + params) {       \
            meta.apn_id = W[0].w ++ W[1].w ++ W[2].w ++ W[3].w;                               \
            meta.apn_valid = 1;                                                               \
        }                                                                                     \
        if (meta.apn_valid == 1) {                                                            \
            meta.apn_from_pkt = 1;                                                            \
            meta.apn_id_type = O.id_type;                                                     \
        }                                                                                     \
    }

// A usable carried option from a DOH, laid out as a mark's words: the headend copies it from
// there (ApnFill) into whichever carrier the node uses.
#define APN_CARRIED_WORDS(O, W)                                                               \
    if (meta.apn_valid == 1) {                                                                \
        meta.apn_flags = O.flags;                                                             \
        meta.apn_para = O.para_type;                                                          \
        meta.apn_nwords = meta.apn_words;                                                     \
        meta.apn_w0 = W[0].w;                                                                 \
        meta.apn_w1 = W[1].w;                                                                 \
        meta.apn_w2 = W[2].w;                                                                 \
        meta.apn_w3 = W[3].w;                                                                 \
        meta.apn_w4 = W[4].w;                                                                 \
        meta.apn_w5 = W[5].w;                                                                 \
        meta.apn_w6 = W[6].w;                                                                 \
        meta.apn_w7 = W[7].w;                                                                 \
        meta.apn_w8 = W[8].w;                                                                 \
        meta.apn_w9 = W[9].w;                                                                 \
        meta.apn_w10 = W[10].w;                                                               \
        meta.apn_w11 = W[11].w;                                                               \
    }

control ApnClassify(in headers_t hdr, inout meta_t meta) {

    // A mark: the APN-ID (for hashing and policy matching) and the option's words as the
    // controller laid them out (ID words, then one word per parameter bit set).
    // (meta.apn_from_pkt is 0 here: these tables apply only while meta.apn_valid is 0.)
    action set_mark(ip6_t apn_id, bit<8> id_type, bit<8> flags, bit<16> para_type,
                    bit<8> nwords, bit<32> w0, bit<32> w1, bit<32> w2, bit<32> w3, bit<32> w4,
                    bit<32> w5, bit<32> w6, bit<32> w7) {
        meta.apn_valid = 1;
        meta.apn_id = apn_id;
        meta.apn_id_type = id_type;
        meta.apn_flags = flags;
        meta.apn_para = para_type;
        meta.apn_nwords = nwords;
        meta.apn_tail_n = 0;
        meta.apn_w0 = w0;
        meta.apn_w1 = w1;
        meta.apn_w2 = w2;
        meta.apn_w3 = w3;
        meta.apn_w4 = w4;
        meta.apn_w5 = w5;
        meta.apn_w6 = w6;
        meta.apn_w7 = w7;
    }

    // A mark of at most two words (a 32-bit APN-ID with at most one parameter, a 64-bit one
    // with none): only the words it has, where set_mark assigns eight (BMv2 pays per
    // assignment, and this is the common mark).
    action set_mark_short(ip6_t apn_id, bit<8> id_type, bit<8> flags, bit<16> para_type,
                          bit<8> nwords, bit<32> w0, bit<32> w1) {
        meta.apn_valid = 1;
        meta.apn_id = apn_id;
        meta.apn_id_type = id_type;
        meta.apn_flags = flags;
        meta.apn_para = para_type;
        meta.apn_nwords = nwords;
        meta.apn_tail_n = 0;
        meta.apn_w0 = w0;
        meta.apn_w1 = w1;
    }

    // RoCEv2 destination QP -> APN mark (written by the controller).
    table apn_qp {
        key = { hdr.bth.dest_qp: exact @name("qp"); }
        actions = { set_mark; set_mark_short; NoAction; }
        default_action = NoAction();
        size = 4096;
    }

    // Network-side classifier: the first matching entry in configuration order (priority).
    table apn_classifier {
        key = {
            meta.k_src:   ternary @name("src");
            meta.k_dst:   ternary @name("dst");
            meta.k_proto: ternary @name("proto");
            meta.sport:   ternary @name("sport");
            meta.dport:   ternary @name("dport");
            meta.dscp:    ternary @name("dscp");
            meta.in_port: ternary @name("in_port");
        }
        actions = { set_mark; set_mark_short; NoAction; }
        default_action = NoAction();
        size = 1024;
    }

    apply {
        meta.apn_valid = 0;
        meta.apn_from_pkt = 0;
        meta.apn_in_hbh = 0;
        // (a tunnel's BTH belongs to the packet inside: the received packet has no QP)
        if (hdr.bth.isValid() && !hdr.inner_ipv6.isValid() && !hdr.inner_ipv4.isValid()) {
            apn_qp.apply();
        }
        // The option the packet carries (application side, or an upstream edge): the first of
        // the APN type in the HBH, else in a DOH (the parser keeps only that one). Usable when
        // its ID type is 1, 2 or 3 and the ID plus one word per para_type bit fit in it.
        if (meta.apn_valid == 0) {
            if (hdr.hbh_apn.isValid()) {
                APN_CARRIED(hdr.hbh_apn, hdr.hbh_apn_word)
                meta.apn_in_hbh = meta.apn_valid;
            } else if (meta.apn_unwalked == 1) {
                // A DOH holds more options before a possible APN option than the parser keeps
                // apart, or an APN option has a length the parser cannot hold: where the
                // carried option decides anything, say so rather than guess.
                if (meta.apn_reads == 1) {
                    meta.drop_reason = ICPN_DROP_P4_LIMIT;
                }
            } else if (hdr.doh1_apn.isValid()) {
                APN_CARRIED(hdr.doh1_apn, hdr.doh1_apn_word)
                APN_CARRIED_WORDS(hdr.doh1_apn, hdr.doh1_apn_word)
            } else if (hdr.doh2_apn.isValid()) {
                APN_CARRIED(hdr.doh2_apn, hdr.doh2_apn_word)
                APN_CARRIED_WORDS(hdr.doh2_apn, hdr.doh2_apn_word)
            }
        }
        if (meta.apn_valid == 0) {
            apn_classifier.apply();
        }
    }
}

#define APN_WORD(I) w[I].setValid(); w[I].w = meta.apn_w##I;

// An APN option of the node's type from the mark the classifier / QP map chose (or a carried
// option from a DOH, laid out the same way).
control ApnFill(inout opt_apn_t o, inout word_t[ICPN_APN_MAX_WORDS] w, in meta_t meta) {
    action words1() { APN_WORD(0) }
    action words2() { APN_WORD(0) APN_WORD(1) }
    action words3() { APN_WORD(0) APN_WORD(1) APN_WORD(2) }
    action words4() { APN_WORD(0) APN_WORD(1) APN_WORD(2) APN_WORD(3) }
    action words5() { APN_WORD(0) APN_WORD(1) APN_WORD(2) APN_WORD(3) APN_WORD(4) }
    action words6() { APN_WORD(0) APN_WORD(1) APN_WORD(2) APN_WORD(3) APN_WORD(4) APN_WORD(5) }
    action words7() { APN_WORD(0) APN_WORD(1) APN_WORD(2) APN_WORD(3) APN_WORD(4) APN_WORD(5) APN_WORD(6) }
    action words8() { APN_WORD(0) APN_WORD(1) APN_WORD(2) APN_WORD(3) APN_WORD(4) APN_WORD(5) APN_WORD(6) APN_WORD(7) }
    action words9() { APN_WORD(0) APN_WORD(1) APN_WORD(2) APN_WORD(3) APN_WORD(4) APN_WORD(5) APN_WORD(6) APN_WORD(7) APN_WORD(8) }
    action words10() { APN_WORD(0) APN_WORD(1) APN_WORD(2) APN_WORD(3) APN_WORD(4) APN_WORD(5) APN_WORD(6) APN_WORD(7) APN_WORD(8) APN_WORD(9) }
    action words11() { APN_WORD(0) APN_WORD(1) APN_WORD(2) APN_WORD(3) APN_WORD(4) APN_WORD(5) APN_WORD(6) APN_WORD(7) APN_WORD(8) APN_WORD(9) APN_WORD(10) }
    action words12() { APN_WORD(0) APN_WORD(1) APN_WORD(2) APN_WORD(3) APN_WORD(4) APN_WORD(5) APN_WORD(6) APN_WORD(7) APN_WORD(8) APN_WORD(9) APN_WORD(10) APN_WORD(11) }

    table apn_words {
        key = { meta.apn_nwords: exact @name("words"); }
        actions = {
            words1; words2; words3; words4; words5; words6; words7; words8; words9; words10;
            words11; words12; NoAction;
        }
        const entries = {
            1: words1();
            2: words2();
            3: words3();
            4: words4();
            5: words5();
            6: words6();
            7: words7();
            8: words8();
            9: words9();
            10: words10();
            11: words11();
            12: words12();
        }
        default_action = NoAction();
    }

    apply {
        o.setValid();
        o.type = meta.apn_type;
        o.len = 4 + 4 * meta.apn_nwords + meta.apn_tail_n;
        o.id_type = meta.apn_id_type;
        o.flags = meta.apn_flags;
        o.para_type = meta.apn_para;
        apn_words.apply();
    }
}

// The octets of a carried APN option after its words (meta.apn_tail_n of meta.apn_tail), after
// the option's words in the header this node builds. (Not a part of ApnFill: an option this node
// inserts is a mark's, whole words.)
control ApnTail(inout padb_t[3] t, in bit<8> n, in bit<24> tail) {
    apply {
        if (n >= 1) { t[0].setValid(); t[0].b = tail[23:16]; }
        if (n >= 2) { t[1].setValid(); t[1].b = tail[15:8]; }
        if (n >= 3) { t[2].setValid(); t[2].b = tail[7:0]; }
    }
}

// Network-side APN marking without encapsulation (docs/pipeline.md 3): a new HBH[APN, padding]
// right after the IPv6 header; a packet that has a HBH keeps it as it is. DOH carrier: a new
// DOH[APN, padding] after the IPv6 header or its HBH, unless a DOH is already there. The SRH TLV
// carrier inserts nothing. An insertion that would take the Payload Length past 65535 is
// dropped too-big.
control ApnInsert(inout headers_t hdr, inout meta_t meta) {
    ApnFill() apn_mark;
    ApnFill() doh_mark;

    apply {
        // the new header: 2 octets, the option (2 + 4 + 4 * words), padding to 8n
        bit<32> grow = ((bit<32>)meta.apn_nwords * 4 + 8 + 7) & 0xFFF8;
        bit<1> insert = 0;
        if (meta.apn_carrier == ICPN_APN_CARRIER_DOH) {
            if (hdr.hbh.isValid()) {
                if (hdr.hbh.next_hdr != ICPN_IPPROTO_DSTOPTS) {
                    insert = 1;
                }
            } else if (hdr.ipv6.next_hdr != ICPN_IPPROTO_DSTOPTS) {
                insert = 1;
            }
        } else if (meta.apn_carrier == ICPN_APN_CARRIER_HBH && !hdr.hbh.isValid()) {
            insert = 1;
        }
        if (insert == 1 && (bit<32>)hdr.ipv6.payload_len + grow > 65535) {
            meta.drop_reason = ICPN_DROP_TOO_BIG;
        } else if (insert == 1 && meta.apn_carrier == ICPN_APN_CARRIER_DOH) {
            hdr.inserted_doh.setValid();
            if (hdr.hbh.isValid()) {
                hdr.inserted_doh.next_hdr = hdr.hbh.next_hdr;
                hdr.hbh.next_hdr = ICPN_IPPROTO_DSTOPTS;
            } else {
                hdr.inserted_doh.next_hdr = hdr.ipv6.next_hdr;
                hdr.ipv6.next_hdr = ICPN_IPPROTO_DSTOPTS;
            }
            doh_mark.apply(hdr.inserted_doh_apn, hdr.inserted_doh_apn_word, meta);
        } else if (insert == 1) {
            hdr.hbh.setValid();
            hdr.hbh.next_hdr = hdr.ipv6.next_hdr;
            hdr.hbh.len = 0;
            hdr.ipv6.next_hdr = ICPN_IPPROTO_HOPOPTS;
            meta.hbh_len_in = 0;
            apn_mark.apply(hdr.inserted_apn, hdr.inserted_apn_word, meta);
        }
    }
}

#endif
