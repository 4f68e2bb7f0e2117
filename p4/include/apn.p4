// APN (SPEC 2, docs/pipeline.md section 3): the APN-ID of a packet (RoCEv2 QP map, then the
// option the packet carries, then the network-side classifier), and building an APN option.
#ifndef ICPN_APN_P4
#define ICPN_APN_P4

#include <core.p4>

#include "headers.p4"

control ApnClassify(in headers_t hdr, inout meta_t meta) {

    // A mark: the APN-ID (for hashing and policy matching) and the option's words as the
    // controller laid them out (ID words, then one word per parameter bit set).
    action set_mark(ip6_t apn_id, bit<8> id_type, bit<8> flags, bit<16> para_type,
                    bit<8> nwords, bit<32> w0, bit<32> w1, bit<32> w2, bit<32> w3, bit<32> w4,
                    bit<32> w5, bit<32> w6, bit<32> w7) {
        meta.apn_valid = 1;
        meta.apn_from_pkt = 0;
        meta.apn_id = apn_id;
        meta.apn_id_type = id_type;
        meta.apn_flags = flags;
        meta.apn_para = para_type;
        meta.apn_nwords = nwords;
        meta.apn_w0 = w0;
        meta.apn_w1 = w1;
        meta.apn_w2 = w2;
        meta.apn_w3 = w3;
        meta.apn_w4 = w4;
        meta.apn_w5 = w5;
        meta.apn_w6 = w6;
        meta.apn_w7 = w7;
    }

    // RoCEv2 destination QP -> APN mark (written by the controller).
    table apn_qp {
        key = { hdr.bth.dest_qp: exact @name("qp"); }
        actions = { set_mark; NoAction; }
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
        actions = { set_mark; NoAction; }
        default_action = NoAction();
        size = 1024;
    }

    apply {
        meta.apn_valid = 0;
        meta.apn_from_pkt = 0;
        if (hdr.bth.isValid()) {
            apn_qp.apply();
        }
        // The option the packet carries (application side, or an upstream edge): usable when
        // its ID type is 1, 2 or 3 and the ID plus one word per para_type bit fit in it.
        if (meta.apn_valid == 0 && hdr.apn.isValid()) {
            bit<16> p = hdr.apn.para_type;
            bit<8> params = (bit<8>)(p[15:15]) + (bit<8>)(p[14:14]) + (bit<8>)(p[13:13])
                            + (bit<8>)(p[12:12]) + (bit<8>)(p[11:11]) + (bit<8>)(p[10:10])
                            + (bit<8>)(p[9:9]) + (bit<8>)(p[8:8]) + (bit<8>)(p[7:7])
                            + (bit<8>)(p[6:6]) + (bit<8>)(p[5:5]) + (bit<8>)(p[4:4])
                            + (bit<8>)(p[3:3]) + (bit<8>)(p[2:2]) + (bit<8>)(p[1:1])
                            + (bit<8>)(p[0:0]);
            if (hdr.apn.id_type == ICPN_APN_ID_TYPE_32 && meta.apn_words >= 1 + params) {
                meta.apn_id = (ip6_t)hdr.apn_word[0].w;
                meta.apn_valid = 1;
            } else if (hdr.apn.id_type == ICPN_APN_ID_TYPE_64 && meta.apn_words >= 2 + params) {
                meta.apn_id = (ip6_t)(hdr.apn_word[0].w ++ hdr.apn_word[1].w);
                meta.apn_valid = 1;
            } else if (hdr.apn.id_type == ICPN_APN_ID_TYPE_128
                       && meta.apn_words >= 4 + params) {
                meta.apn_id = hdr.apn_word[0].w ++ hdr.apn_word[1].w ++ hdr.apn_word[2].w
                              ++ hdr.apn_word[3].w;
                meta.apn_valid = 1;
            }
            if (meta.apn_valid == 1) {
                meta.apn_from_pkt = 1;
                meta.apn_id_type = hdr.apn.id_type;
            }
        }
        if (meta.apn_valid == 0) {
            apn_classifier.apply();
        }
    }
}

#define APN_WORD(I) w[I].setValid(); w[I].w = meta.apn_w##I;

// An APN option from the mark the classifier / QP map chose.
control ApnFill(inout opt_apn_t o, inout word_t[ICPN_APN_MAX_WORDS] w, in meta_t meta) {
    action words1() { APN_WORD(0) }
    action words2() { APN_WORD(0) APN_WORD(1) }
    action words3() { APN_WORD(0) APN_WORD(1) APN_WORD(2) }
    action words4() { APN_WORD(0) APN_WORD(1) APN_WORD(2) APN_WORD(3) }
    action words5() { APN_WORD(0) APN_WORD(1) APN_WORD(2) APN_WORD(3) APN_WORD(4) }
    action words6() { APN_WORD(0) APN_WORD(1) APN_WORD(2) APN_WORD(3) APN_WORD(4) APN_WORD(5) }
    action words7() { APN_WORD(0) APN_WORD(1) APN_WORD(2) APN_WORD(3) APN_WORD(4) APN_WORD(5) APN_WORD(6) }
    action words8() { APN_WORD(0) APN_WORD(1) APN_WORD(2) APN_WORD(3) APN_WORD(4) APN_WORD(5) APN_WORD(6) APN_WORD(7) }

    table apn_words {
        key = { meta.apn_nwords: exact @name("words"); }
        actions = { words1; words2; words3; words4; words5; words6; words7; words8; NoAction; }
        const entries = {
            1: words1();
            2: words2();
            3: words3();
            4: words4();
            5: words5();
            6: words6();
            7: words7();
            8: words8();
        }
        default_action = NoAction();
    }

    apply {
        o.setValid();
        o.type = ICPN_APN_OPT_TYPE_DEFAULT;
        o.len = 4 + 4 * meta.apn_nwords;
        o.id_type = meta.apn_id_type;
        o.flags = meta.apn_flags;
        o.para_type = meta.apn_para;
        apn_words.apply();
    }
}

#endif
