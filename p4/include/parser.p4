// Parser: Ethernet, PFC, IPv4, IPv6 with HBH / DOH / Routing / DOH (docs/pipeline.md step 3),
// the HBH options ICPN reads (APN, AltMark, IOAM trace), the SRH segment list, an inner
// IPv6 / IPv4 packet and the innermost transport ports. Every loop is bounded by a header stack
// or by an octet count taken from the packet.
#ifndef ICPN_PARSER_P4
#define ICPN_PARSER_P4

#include <core.p4>
#include <v1model.p4>

#include "headers.p4"

error {
    BadExtHdr,     // an option overruns its header, or more unknown options than slots
    BadIpv4,       // IHL < 5
    BadSrhTlv      // the SRH's TLV area does not parse exactly (bad-srh at an endpoint only)
}

// meta.parse_stage: one bit per stage entered; stages are entered in this order on every path,
// so the highest bit set says where the parser stopped. (Or-ing keeps p4c from dropping the
// writes as dead stores: it does not know that an extract can end the parse.)
const bit<8> STAGE_L2     = 0x01;
const bit<8> STAGE_IPV6   = 0x02;
const bit<8> STAGE_IPV4   = 0x04;
const bit<8> STAGE_EXTHDR = 0x08;
const bit<8> STAGE_RH     = 0x10;
const bit<8> STAGE_EXT2   = 0x20;   // a Destination Options header after the routing header
const bit<8> STAGE_INNER  = 0x40;
const bit<8> STAGE_L4     = 0x80;

parser IcpnParser(packet_in packet, out headers_t hdr, inout meta_t meta,
                  inout standard_metadata_t sm) {

    state start {
        // BMv2 re-parses an I2E clone in a recycled PHV whose metadata it resets only after the
        // parse: the bookkeeping the parser reads must start from zero here, not from the last
        // packet's values (else the clone's HBH options parse differently, a flaky IFIT report).
        meta.hbh_seen = 0;
        meta.hbh_unk = 0;
        meta.rh_opaque = 0;
        meta.tlv_count = 0;
        meta.parse_stage = STAGE_L2;
        transition select(sm.ingress_port) {
            ICPN_CPU_PORT: parse_packet_out;
            default: parse_ethernet;
        }
    }

    // A frame sent straight to a port is not parsed: it leaves exactly as the controller
    // wrote it.
    state parse_packet_out {
        packet.extract(hdr.packet_out);
        transition select(hdr.packet_out.mode) {
            ICPN_PKTOUT_DIRECT: accept;
            default: parse_ethernet;
        }
    }

    state parse_ethernet {
        packet.extract(hdr.ethernet);
        transition select(hdr.ethernet.ether_type) {
            ICPN_ETHERTYPE_IPV6: parse_ipv6;
            ICPN_ETHERTYPE_IPV4: parse_ipv4;
            ICPN_PFC_ETHERTYPE: parse_pfc;
            default: accept;
        }
    }

    state parse_pfc {
        transition select(packet.lookahead<bit<16>>()) {
            ICPN_PFC_OPCODE: extract_pfc;
            default: accept;
        }
    }

    state extract_pfc {
        packet.extract(hdr.pfc);
        transition accept;
    }

    // ---- IPv4 ---------------------------------------------------------------------------------

    state parse_ipv4 {
        meta.parse_stage = meta.parse_stage | STAGE_IPV4;
        packet.extract(hdr.ipv4);
        verify(hdr.ipv4.ihl >= 5, error.BadIpv4);
        meta.l4_proto = hdr.ipv4.protocol;
        transition select(hdr.ipv4.ihl, hdr.ipv4.frag_offset) {
            (5, 0): parse_upper;
            (5, _): accept;            // a non-first fragment has no transport header
            default: parse_ipv4_opts;
        }
    }

    state parse_ipv4_opts {
        packet.extract(hdr.ipv4_opts, ((bit<32>)hdr.ipv4.ihl - 5) * 32);
        transition select(hdr.ipv4.frag_offset) {
            0: parse_upper;
            default: accept;
        }
    }

    // ---- IPv6 and its extension headers, in the order HBH, DOH, Routing, DOH ---------------

    state parse_ipv6 {
        meta.parse_stage = meta.parse_stage | STAGE_IPV6;
        packet.extract(hdr.ipv6);
        meta.l4_proto = hdr.ipv6.next_hdr;
        transition select(hdr.ipv6.next_hdr) {
            ICPN_IPPROTO_HOPOPTS: parse_hbh;
            default: after_hbh;
        }
    }

    state parse_hbh {
        meta.parse_stage = meta.parse_stage | STAGE_EXTHDR;
        packet.extract(hdr.hbh);
        meta.hbh_len_in = ((bit<16>)hdr.hbh.len + 1) * 8;
        meta.opt_rem = ((bit<16>)hdr.hbh.len + 1) * 8 - 2;
        meta.l4_proto = hdr.hbh.next_hdr;
        transition hbh_opts;
    }

    state hbh_opts {
        transition select(meta.opt_rem) {
            0: after_hbh;
            default: hbh_opt;
        }
    }

    state hbh_opt {
        transition select(packet.lookahead<bit<8>>()) {
            ICPN_IPV6_OPT_PAD1: hbh_pad1;
            default: hbh_tlv;
        }
    }

    // Padding is consumed here and rebuilt by the deparser side (HbhLayout): the HBH always
    // leaves in the layout of docs/pipeline.md.
    state hbh_pad1 {
        packet.advance(8);
        meta.opt_rem = meta.opt_rem - 1;
        transition hbh_opts;
    }

    state hbh_tlv {
        verify(meta.opt_rem >= 2, error.BadExtHdr);
        bit<16> tl = packet.lookahead<bit<16>>();
        meta.opt_len = tl[7:0];
        verify(meta.opt_rem >= (bit<16>)tl[7:0] + 2, error.BadExtHdr);
        meta.opt_rem = meta.opt_rem - ((bit<16>)tl[7:0] + 2);
        transition select(tl[15:8], meta.hbh_seen) {
            (ICPN_IPV6_OPT_PADN, _): hbh_padn;
            (ICPN_APN_OPT_TYPE_DEFAULT, 4w0 &&& 4w1): hbh_apn_check;
            (ICPN_ALTMARK_OPT_TYPE, 4w0 &&& 4w2): hbh_altmark_check;
            (ICPN_IOAM_OPT_TYPE, 4w0 &&& 4w4): hbh_ioam_check;
            default: hbh_unknown;
        }
    }

    state hbh_padn {
        packet.advance(((bit<32>)meta.opt_len + 2) * 8);
        transition hbh_opts;
    }

    // APN: Opt Data Len = 4 + 4 * words, 1 <= words <= APN_MAX_WORDS; anything else is kept as an
    // unknown option.
    state hbh_apn_check {
        bit<16> below_min = (bit<16>)meta.opt_len - 8;
        bit<16> above_max = (4 + 4 * ICPN_APN_MAX_WORDS) - (bit<16>)meta.opt_len;
        transition select(meta.opt_len[1:0], below_min[15:15], above_max[15:15]) {
            (0, 0, 0): hbh_apn;
            default: hbh_unknown;
        }
    }

    state hbh_apn {
        packet.extract(hdr.apn);
        meta.hbh_seen = meta.hbh_seen | 1;
        meta.apn_words = (hdr.apn.len - 4) >> 2;
        meta.words_left = (hdr.apn.len - 4) >> 2;
        transition hbh_apn_word;
    }

    state hbh_apn_word {
        packet.extract(hdr.apn_word.next);
        meta.words_left = meta.words_left - 1;
        transition select(meta.words_left) {
            0: hbh_opts;
            default: hbh_apn_word;
        }
    }

    state hbh_altmark_check {
        transition select(meta.opt_len) {
            4: hbh_altmark;
            default: hbh_unknown;
        }
    }

    state hbh_altmark {
        packet.extract(hdr.altmark);
        meta.hbh_seen = meta.hbh_seen | 2;
        transition hbh_opts;
    }

    // IOAM: a pre-allocated trace whose area is whole records of 5 words (20 octets), at most
    // IOAM_MAX_NODES of them, goes into hdr.ioam_record; any other IOAM option is kept raw
    // (forwarded, never stamped).
    state hbh_ioam_check {
        bit<32> head = packet.lookahead<bit<32>>();
        bit<16> below_hdr = (bit<16>)meta.opt_len - 2;
        transition select(head[7:0], meta.opt_len, below_hdr[15:15]) {
            (0, 10, _): hbh_ioam_trace;
            (0, 30, _): hbh_ioam_trace;
            (0, 50, _): hbh_ioam_trace;
            (0, 70, _): hbh_ioam_trace;
            (0, 90, _): hbh_ioam_trace;
            (0, 110, _): hbh_ioam_trace;
            (0, 130, _): hbh_ioam_trace;
            (0, 150, _): hbh_ioam_trace;
            (0, 170, _): hbh_ioam_trace;
            (_, _, 0): hbh_ioam_raw;
            default: hbh_unknown;
        }
    }

    state hbh_ioam_trace {
        packet.extract(hdr.ioam);
        packet.extract(hdr.trace);
        meta.hbh_seen = meta.hbh_seen | 4;
        // (len - 10) / 20 for the lengths above
        meta.ioam_nodes = (bit<8>)((((bit<16>)hdr.ioam.len - 10) * 13) >> 8);
        meta.words_left = (bit<8>)((((bit<16>)hdr.ioam.len - 10) * 13) >> 8);
        transition select(meta.words_left) {
            0: hbh_opts;
            default: hbh_ioam_node;
        }
    }

    state hbh_ioam_node {
        packet.extract(hdr.ioam_record.next);
        meta.words_left = meta.words_left - 1;
        transition select(meta.words_left) {
            0: hbh_opts;
            default: hbh_ioam_node;
        }
    }

    state hbh_ioam_raw {
        packet.extract(hdr.ioam);
        packet.extract(hdr.ioam_raw, ((bit<32>)hdr.ioam.len - 2) * 8);
        meta.hbh_seen = meta.hbh_seen | 4;
        transition hbh_opts;
    }

    state hbh_unknown {
        transition select(meta.hbh_unk) {
            0: hbh_unk0;
            1: hbh_unk1;
            default: hbh_too_many;
        }
    }

    state hbh_unk0 {
        packet.extract(hdr.other_opt0, (bit<32>)meta.opt_len * 8);
        meta.hbh_unk = 1;
        transition hbh_opts;
    }

    state hbh_unk1 {
        packet.extract(hdr.other_opt1, (bit<32>)meta.opt_len * 8);
        meta.hbh_unk = 2;
        transition hbh_opts;
    }

    state hbh_too_many {
        verify(false, error.BadExtHdr);
        transition accept;
    }

    state after_hbh {
        transition select(meta.l4_proto) {
            ICPN_IPPROTO_DSTOPTS: parse_doh1;
            ICPN_IPPROTO_ROUTING: parse_rh;
            default: parse_upper;
        }
    }

    state parse_doh1 {
        meta.parse_stage = meta.parse_stage | STAGE_EXTHDR;
        packet.extract(hdr.doh1);
        packet.extract(hdr.doh1_body, (bit<32>)hdr.doh1.len * 64 + 48);
        meta.l4_proto = hdr.doh1.next_hdr;
        transition select(hdr.doh1.next_hdr) {
            ICPN_IPPROTO_ROUTING: parse_rh;
            ICPN_IPPROTO_DSTOPTS: parse_doh2;
            default: parse_upper;
        }
    }

    // Routing header. Type 4 (SRH) with at most MAX_SEGMENTS segments is parsed into hdr.seg;
    // min(LE + 1, HdrExtLen / 2) segments are taken, so a bad Last Entry never reads past the
    // header (validation happens at a segment endpoint, in ingress). The rest of the header
    // (TLVs, or the body of another routing type) is kept as it is.
    state parse_rh {
        meta.parse_stage = meta.parse_stage | STAGE_RH;
        packet.extract(hdr.rh);
        meta.l4_proto = hdr.rh.next_hdr;
        meta.rh_body = (bit<16>)hdr.rh.len * 8;
        bit<16> held = (bit<16>)(hdr.rh.len >> 1) - ((bit<16>)hdr.rh.last_entry + 1);
        transition select(hdr.rh.routing_type, held[15:15]) {
            (ICPN_SRH_ROUTING_TYPE, 0): rh_count_le;
            (ICPN_SRH_ROUTING_TYPE, 1): rh_count_len;
            default: rh_opaque;
        }
    }

    state rh_count_le {
        meta.segs_left = hdr.rh.last_entry + 1;
        transition rh_segs_check;
    }

    state rh_count_len {
        meta.segs_left = hdr.rh.len >> 1;
        transition rh_segs_check;
    }

    state rh_segs_check {
        bit<8> room = ICPN_MAX_SEGMENTS - meta.segs_left;
        transition select(meta.segs_left, room[7:7]) {
            (0, _): rh_tlvs;
            (_, 0): rh_seg;
            default: rh_opaque;
        }
    }

    state rh_seg {
        packet.extract(hdr.seg.next);
        meta.segs_left = meta.segs_left - 1;
        meta.rh_body = meta.rh_body - 16;
        transition select(meta.segs_left) {
            0: rh_tlvs;
            default: rh_seg;
        }
    }

    state rh_opaque {
        meta.rh_opaque = 1;
        transition rh_tlvs;
    }

    // The TLV area of an SRH must parse exactly (Pad1 one octet, every other TLV 2 + Length
    // octets, the last ending at the header's end); four TLVs are walked, the rest kept raw.
    state rh_tlvs {
        transition select(meta.rh_body, meta.rh_opaque, meta.tlv_count) {
            (0, _, _): after_rh;
            (_, 1, _): rh_rest;
            (_, _, 4): rh_rest;
            default: rh_tlv;
        }
    }

    state rh_tlv {
        transition select(packet.lookahead<bit<8>>(), meta.tlv_count) {
            (0, 0): rh_pad1_0;
            (0, 1): rh_pad1_1;
            (0, 2): rh_pad1_2;
            (0, 3): rh_pad1_3;
            default: rh_tlv_len;
        }
    }

    state rh_tlv_len {
        verify(meta.rh_body >= 2, error.BadSrhTlv);
        bit<16> tl = packet.lookahead<bit<16>>();
        meta.opt_len = tl[7:0];
        verify(meta.rh_body >= (bit<16>)tl[7:0] + 2, error.BadSrhTlv);
        meta.rh_body = meta.rh_body - ((bit<16>)tl[7:0] + 2);
        transition select(meta.tlv_count) {
            0: rh_tlv_0;
            1: rh_tlv_1;
            2: rh_tlv_2;
            default: rh_tlv_3;
        }
    }

#define RH_TLV_STATES(K)                                                                      \
    state rh_pad1_##K {                                                                       \
        packet.extract(hdr.tlv_pad##K);                                                       \
        meta.rh_body = meta.rh_body - 1;                                                      \
        meta.tlv_count = K + 1;                                                               \
        transition rh_tlvs;                                                                   \
    }                                                                                         \
    state rh_tlv_##K {                                                                        \
        packet.extract(hdr.tlv##K, (bit<32>)meta.opt_len * 8);                                \
        meta.tlv_count = K + 1;                                                               \
        transition rh_tlvs;                                                                   \
    }

    RH_TLV_STATES(0)
    RH_TLV_STATES(1)
    RH_TLV_STATES(2)
    RH_TLV_STATES(3)

    state rh_rest {
        packet.extract(hdr.rh_rest, (bit<32>)meta.rh_body * 8);
        transition after_rh;
    }

    state after_rh {
        transition select(meta.l4_proto) {
            ICPN_IPPROTO_DSTOPTS: parse_doh2;
            default: parse_upper;
        }
    }

    state parse_doh2 {
        meta.parse_stage = meta.parse_stage | STAGE_EXT2;
        packet.extract(hdr.doh2);
        packet.extract(hdr.doh2_body, (bit<32>)hdr.doh2.len * 64 + 48);
        meta.l4_proto = hdr.doh2.next_hdr;
        transition parse_upper;
    }

    // ---- inner packet and transport ------------------------------------------------------------

    state parse_upper {
        transition select(meta.l4_proto) {
            ICPN_IPPROTO_IPV6: parse_in6;
            ICPN_IPPROTO_IPIP: parse_in4;
            default: parse_l4;
        }
    }

    state parse_in6 {
        meta.parse_stage = meta.parse_stage | STAGE_INNER;
        packet.extract(hdr.inner_ipv6);
        meta.l4_proto = hdr.inner_ipv6.next_hdr;
        transition parse_l4;
    }

    state parse_in4 {
        meta.parse_stage = meta.parse_stage | STAGE_INNER;
        packet.extract(hdr.inner_ipv4);
        meta.l4_proto = hdr.inner_ipv4.protocol;
        transition select(hdr.inner_ipv4.ihl, hdr.inner_ipv4.frag_offset) {
            (5, 0): parse_l4;
            (5, _): accept;
            (4w0 &&& 4w0xC, _): accept;    // IHL 0..3: malformed, no transport header
            (4, _): accept;
            default: parse_in4_opts;
        }
    }

    state parse_in4_opts {
        packet.extract(hdr.inner_ipv4_opts, ((bit<32>)hdr.inner_ipv4.ihl - 5) * 32);
        transition select(hdr.inner_ipv4.frag_offset) {
            0: parse_l4;
            default: accept;
        }
    }

    state parse_l4 {
        meta.parse_stage = meta.parse_stage | STAGE_L4;
        transition select(meta.l4_proto) {
            ICPN_IPPROTO_TCP: parse_ports;
            ICPN_IPPROTO_UDP: parse_udp;
            default: accept;
        }
    }

    state parse_ports {
        packet.extract(hdr.l4);
        transition accept;
    }

    state parse_udp {
        packet.extract(hdr.l4);
        packet.extract(hdr.udp_rest);
        transition select(hdr.l4.dport) {
            ICPN_ROCEV2_UDP_PORT: parse_bth;
            default: accept;
        }
    }

    state parse_bth {
        packet.extract(hdr.bth);
        transition accept;
    }
}

#endif
