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
    ExtUnheld,     // an IPv6 extension header where the parser holds none (after HBH, DOH,
                   // Routing, DOH): bad-exthdr when the contract says so, else p4-limit
    HbhUnheld,     // a HBH with more options than the parser keeps apart in their places
                   // (HBH_SLOTS_BEFORE_IOAM / _AFTER_IOAM): dropped p4-limit, never forwarded
                   // re-laid out (docs/p4.md limits)
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

// The carried APN option of N words and R octets more (Opt Data Len 4 + 4N + R, R < 4: SPEC 2
// asks for no whole words), read by lookahead into an opt_apn_t header and its word stack W,
// the R octets into meta.apn_tail (left-aligned) (never emitted: the option's octets stay where
// they came, in a slot or the rest of its header). S_N_R is the state for N words and R octets,
// then NEXT.
#define APN_LOOK_WORD(W, N, R, I) \
        W[I].setValid(); W[I].w = la[32 * (N - I) + 8 * R - 1:32 * (N - I - 1) + 8 * R];
#define APN_LOOK_1(W, N, R)  APN_LOOK_WORD(W, N, R, 0)
#define APN_LOOK_2(W, N, R)  APN_LOOK_1(W, N, R) APN_LOOK_WORD(W, N, R, 1)
#define APN_LOOK_3(W, N, R)  APN_LOOK_2(W, N, R) APN_LOOK_WORD(W, N, R, 2)
#define APN_LOOK_4(W, N, R)  APN_LOOK_3(W, N, R) APN_LOOK_WORD(W, N, R, 3)
#define APN_LOOK_5(W, N, R)  APN_LOOK_4(W, N, R) APN_LOOK_WORD(W, N, R, 4)
#define APN_LOOK_6(W, N, R)  APN_LOOK_5(W, N, R) APN_LOOK_WORD(W, N, R, 5)
#define APN_LOOK_7(W, N, R)  APN_LOOK_6(W, N, R) APN_LOOK_WORD(W, N, R, 6)
#define APN_LOOK_8(W, N, R)  APN_LOOK_7(W, N, R) APN_LOOK_WORD(W, N, R, 7)
#define APN_LOOK_9(W, N, R)  APN_LOOK_8(W, N, R) APN_LOOK_WORD(W, N, R, 8)
#define APN_LOOK_10(W, N, R) APN_LOOK_9(W, N, R) APN_LOOK_WORD(W, N, R, 9)
#define APN_LOOK_11(W, N, R) APN_LOOK_10(W, N, R) APN_LOOK_WORD(W, N, R, 10)
#define APN_LOOK_12(W, N, R) APN_LOOK_11(W, N, R) APN_LOOK_WORD(W, N, R, 11)
#define APN_LOOK_TAIL_0 meta.apn_tail = 0;
#define APN_LOOK_TAIL_1 meta.apn_tail = la[7:0] ++ 16w0;
#define APN_LOOK_TAIL_2 meta.apn_tail = la[15:0] ++ 8w0;
#define APN_LOOK_TAIL_3 meta.apn_tail = la[23:0];
#define APN_WORDS_STATE(S, W, N, R, NEXT)                                                     \
    state S##_##N##_##R {                                                                     \
        bit<(48 + 32 * N + 8 * R)> la = packet.lookahead<bit<(48 + 32 * N + 8 * R)>>();       \
        APN_LOOK_##N(W, N, R)                                                                 \
        APN_LOOK_TAIL_##R                                                                     \
        meta.apn_words = N;                                                                   \
        meta.apn_tail_n = R;                                                                  \
        transition NEXT;                                                                      \
    }
#define APN_WORDS_STATES_N(S, W, N, NEXT)                                                     \
    APN_WORDS_STATE(S, W, N, 0, NEXT) APN_WORDS_STATE(S, W, N, 1, NEXT)                       \
    APN_WORDS_STATE(S, W, N, 2, NEXT) APN_WORDS_STATE(S, W, N, 3, NEXT)
#define APN_WORDS_STATES(S, W, NEXT)                                                          \
    APN_WORDS_STATES_N(S, W, 1, NEXT) APN_WORDS_STATES_N(S, W, 2, NEXT)                       \
    APN_WORDS_STATES_N(S, W, 3, NEXT) APN_WORDS_STATES_N(S, W, 4, NEXT)                       \
    APN_WORDS_STATES_N(S, W, 5, NEXT) APN_WORDS_STATES_N(S, W, 6, NEXT)                       \
    APN_WORDS_STATES_N(S, W, 7, NEXT) APN_WORDS_STATES_N(S, W, 8, NEXT)                       \
    APN_WORDS_STATES_N(S, W, 9, NEXT) APN_WORDS_STATES_N(S, W, 10, NEXT)                      \
    APN_WORDS_STATES_N(S, W, 11, NEXT) APN_WORDS_STATES_N(S, W, 12, NEXT)
// The state for an APN option of meta.opt_len octets (8 .. 4 + 4 * APN_MAX_WORDS + 3).
#define APN_WORDS_SELECT(S)                                                                   \
            8: S##_1_0; 9: S##_1_1; 10: S##_1_2; 11: S##_1_3;                                 \
            12: S##_2_0; 13: S##_2_1; 14: S##_2_2; 15: S##_2_3;                               \
            16: S##_3_0; 17: S##_3_1; 18: S##_3_2; 19: S##_3_3;                               \
            20: S##_4_0; 21: S##_4_1; 22: S##_4_2; 23: S##_4_3;                               \
            24: S##_5_0; 25: S##_5_1; 26: S##_5_2; 27: S##_5_3;                               \
            28: S##_6_0; 29: S##_6_1; 30: S##_6_2; 31: S##_6_3;                               \
            32: S##_7_0; 33: S##_7_1; 34: S##_7_2; 35: S##_7_3;                               \
            36: S##_8_0; 37: S##_8_1; 38: S##_8_2; 39: S##_8_3;                               \
            40: S##_9_0; 41: S##_9_1; 42: S##_9_2; 43: S##_9_3;                               \
            44: S##_10_0; 45: S##_10_1; 46: S##_10_2; 47: S##_10_3;                           \
            48: S##_11_0; 49: S##_11_1; 50: S##_11_2; 51: S##_11_3;                           \
            52: S##_12_0; 53: S##_12_1; 54: S##_12_2; default: S##_12_3;
// Largest Opt Data Len of an APN option the parser reads.
#define APN_MAX_OPT_LEN (4 + 4 * ICPN_APN_MAX_WORDS + 3)

// The options of Destination Options header N, walked (as the HBH's) until the first option of
// the APN type: up to DOH_SLOTS_BEFORE_APN options before it are kept one by one, as they are
// (N_pre), the APN option is read by lookahead into N_apn when it has an APN's length, and the
// rest of the header, from the APN option on, is kept as it is (N_body): the DOH leaves as it
// came. The whole header is N_body once the packet has an option of the APN type; past the
// slots, or where an option runs past the header, the walk stops there (docs/pipeline.md 3).
#define DOH_STATES(N, NEXT)                                                                   \
    state N##_opts {                                                                          \
        transition select(meta.opt_rem) {                                                     \
            0: NEXT;                                                                          \
            default: N##_opt;                                                                 \
        }                                                                                     \
    }                                                                                         \
    state N##_opt {                                                                           \
        transition select(packet.lookahead<bit<8>>()) {                                       \
            ICPN_IPV6_OPT_PAD1: N##_pad1;                                                     \
            default: N##_tlv;                                                                 \
        }                                                                                     \
    }                                                                                         \
    state N##_pad1 {                                                                          \
        meta.slot_len = 1;                                                                    \
        transition N##_slot;                                                                  \
    }                                                                                         \
    state N##_tlv {                                                                           \
        transition select(meta.opt_rem) {                                                     \
            1: N##_rest;                                                                      \
            default: N##_tlv_len;                                                             \
        }                                                                                     \
    }                                                                                         \
    state N##_tlv_len {                                                                       \
        meta.opt_len = packet.lookahead<bit<16>>()[7:0];                                      \
        meta.slot_len = 2 + (bit<16>)packet.lookahead<bit<16>>()[7:0];                        \
        bit<16> after = meta.opt_rem - meta.slot_len;                                         \
        transition select(after[15:15]) {                                                     \
            0: N##_tlv_type;                                                                  \
            default: N##_rest;                                                                \
        }                                                                                     \
    }                                                                                         \
    state N##_tlv_type {                                                                      \
        transition select(packet.lookahead<bit<8>>()) {                                       \
            apn_option_type: N##_apn_check;                                                   \
            default: N##_slot;                                                                \
        }                                                                                     \
    }                                                                                         \
    state N##_slot {                                                                          \
        transition select(meta.doh_opts) {                                                    \
            ICPN_DOH_SLOTS_BEFORE_APN: N##_unwalked;                                          \
            default: N##_slot_keep;                                                           \
        }                                                                                     \
    }                                                                                         \
    state N##_slot_keep {                                                                     \
        packet.extract(hdr.N##_pre.next, (bit<32>)meta.slot_len * 8);                         \
        meta.opt_rem = meta.opt_rem - meta.slot_len;                                          \
        meta.doh_opts = meta.doh_opts + 1;                                                    \
        transition N##_opts;                                                                  \
    }                                                                                         \
    state N##_unwalked {                                                                      \
        meta.apn_unwalked = 1;    /* an APN option may follow: Apn decides (p4-limit) */     \
        transition N##_rest;                                                                  \
    }                                                                                         \
    state N##_apn_check {                                                                     \
        meta.hbh_seen = meta.hbh_seen | 1;                                                    \
        bit<16> below_min = (bit<16>)meta.opt_len - 8;                                        \
        bit<16> above_max = APN_MAX_OPT_LEN - (bit<16>)meta.opt_len;                          \
        transition select(below_min[15:15], above_max[15:15]) {                               \
            (0, 0): N##_apn;                                                                  \
            (0, 1): N##_apn_unheld;                                                           \
            default: N##_rest;                                                                \
        }                                                                                     \
    }                                                                                         \
    state N##_apn_unheld {                                                                    \
        transition select(packet.lookahead<bit<24>>()[7:0]) {                                 \
            ICPN_APN_ID_TYPE_32: N##_apn_unread;                                              \
            ICPN_APN_ID_TYPE_64: N##_apn_unread;                                              \
            ICPN_APN_ID_TYPE_128: N##_apn_unread;                                             \
            default: N##_rest;                                                                \
        }                                                                                     \
    }                                                                                         \
    state N##_apn_unread {                                                                    \
        meta.apn_unwalked = 1;    /* a usable-looking APN option of a length not held */     \
        transition N##_rest;                                                                  \
    }                                                                                         \
    state N##_apn {                                                                           \
        hdr.N##_apn = packet.lookahead<opt_apn_t>();                                          \
        transition select(meta.opt_len) {                                                     \
            APN_WORDS_SELECT(N##_apn)                                                         \
        }                                                                                     \
    }                                                                                         \
    APN_WORDS_STATES(N##_apn, hdr.N##_apn_word, N##_rest)                                     \
    state N##_rest {                                                                          \
        transition select(meta.opt_rem) {                                                     \
            0: NEXT;                                                                          \
            default: N##_body;                                                                \
        }                                                                                     \
    }                                                                                         \
    state N##_body {                                                                          \
        packet.extract(hdr.N##_body, (bit<32>)meta.opt_rem * 8);                              \
        transition NEXT;                                                                      \
    }

// The select cases, after the IPv6 extension headers the parser holds, for what follows them
// (parse_upper's, inlined: one state fewer per packet).
#define IPV6_UPPER                                                                            \
            ICPN_IPPROTO_IPV6: parse_in6;                                                     \
            ICPN_IPPROTO_IPIP: parse_in4;                                                     \
            default: parse_l4;

parser IcpnParser(packet_in packet, out headers_t hdr, inout meta_t meta,
                  inout standard_metadata_t sm) {
    bit<8> ioam_empty_words;    // the parts of a trace's area (hbh_ioam_trace)
    bit<8> ioam_filled_words;

    // The node's APN option type (apn.option_type, one value). The BMv2 P4Runtime server cannot
    // write value sets, so the controller writes it into the program it loads
    // (writer.NodeProgram.device_config): no lookup at run time.
    value_set<bit<8>>(1) apn_option_type;

    state start {
        // BMv2 re-parses an I2E clone in a recycled PHV whose metadata it resets only after the
        // parse: the bookkeeping the parser reads must start from zero here, not from the last
        // packet's values (else the clone's HBH options parse differently, a flaky IFIT report).
        meta.hbh_seen = 0;
        meta.l3_tc_valid = 0;
        meta.hbh_pre_n = 0;
        meta.hbh_post_n = 0;
        meta.hbh_strip_pre = 0;
        meta.hbh_strip_post = 0;
        meta.hbh_kept = 0;
        meta.rh_opaque = 0;
        meta.tlv_count = 0;
        meta.tlv_unwalked = 0;
        meta.apn_unwalked = 0;
        meta.inner_ext_tries = 0;
        meta.inner_ext_done = 0;
        meta.inner_ext_type = 0;
        meta.inner_ext_bad = 0;
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
        meta.l3_tc = packet.lookahead<bit<16>>()[7:0];
        meta.l3_tc_valid = 1;
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
        meta.l3_tc = packet.lookahead<bit<16>>()[11:4];
        meta.l3_tc_valid = 1;
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

// A select key of an option's type and length (16 bits), matching the type alone.
#define OPT_TYPE(T) ((bit<16>)(T) << 8) &&& 16w0xFF00
// After an option: the next slot before the IOAM option (hbh_seen bit 4 clear) or after it,
// while one is free. The masks count below ICPN_HBH_SLOTS_BEFORE_IOAM (8) and
// ICPN_HBH_SLOTS_AFTER_IOAM (4): powers of two (pyctl.targets.bmv2.codes).
#define HBH_SLOT_NEXT                                              \
            (4w4 &&& 4w4, _, 8w0 &&& 8w0xFC): hbh_slot_post;      \
            (4w4 &&& 4w4, _, _): hbh_unheld;                      \
            (_, 8w0 &&& 8w0xF8, _): hbh_slot_pre;                 \
            default: hbh_unheld;

    state hbh_opts {
        transition select(meta.opt_rem) {
            0: after_hbh;
            default: hbh_opt;
        }
    }

    // One option: Pad1, a TLV, or (one octet left) an overrun.
    state hbh_opt {
        transition select(packet.lookahead<bit<8>>(), meta.opt_rem) {
            (ICPN_IPV6_OPT_PAD1, _): hbh_pad1;
            (_, 1): hbh_overrun;
            default: hbh_tlv;
        }
    }

    // Every option is kept apart in its place (hbh_strip / hbh_keep, then a slot); the HBH
    // leaves as it came. What a tail strips (docs/pipeline.md 4: padding, the AltMark- and
    // IOAM-typed options) is noted per slot.
    state hbh_pad1 {
        meta.slot_len = 1;
        transition hbh_strip;
    }

    // A TLV: its length, and what it is (one state: BMv2 pays for every state it enters). An
    // AltMark is read when it is the first and has 4 octets of data; the first IOAM option is
    // split for stamping; the first option of the APN type may be the carried one.
    state hbh_tlv {
        bit<16> tl = packet.lookahead<bit<16>>();
        meta.opt_len = tl[7:0];
        meta.slot_len = 2 + (bit<16>)tl[7:0];
        bit<16> after = meta.opt_rem - meta.slot_len;
        // Keys are whole fields under masks (type: tl's high octet, length: its low one):
        // p4c copies a sliced key into a field of its own first, one more step per option.
        transition select(after, tl, meta.hbh_seen) {
            (16w0x8000 &&& 16w0x8000, _, _): hbh_overrun;             // after < 0
            (_, OPT_TYPE(ICPN_IPV6_OPT_PADN), _): hbh_strip;
            (_, (bit<16>)ICPN_ALTMARK_OPT_TYPE << 8 | 16w4, 4w0 &&& 4w2): hbh_altmark;
            (_, OPT_TYPE(ICPN_ALTMARK_OPT_TYPE), _): hbh_strip;
            (_, OPT_TYPE(ICPN_IOAM_OPT_TYPE), 4w0 &&& 4w4): hbh_ioam_check;
            (_, OPT_TYPE(ICPN_IOAM_OPT_TYPE), _): hbh_strip;
            (_, _, 4w0 &&& 4w1): hbh_other;
            default: hbh_keep;
        }
    }

    // An option running past the header: the walk stops there (docs/pipeline.md 3) and the rest
    // of the header is kept as it is; a tail's strip drops it with the IFIT options (its walk
    // stops there too).
    state hbh_overrun {
        packet.extract(hdr.hbh_rest, (bit<32>)meta.opt_rem * 8);
        meta.opt_rem = 0;
        transition after_hbh;
    }

    // The first option of the APN type is the carried one; a later one is kept as unknown.
    state hbh_other {
        transition select(packet.lookahead<bit<8>>()) {
            apn_option_type: hbh_apn_check;
            default: hbh_keep;
        }
    }

    // APN: Opt Data Len 8 .. APN_MAX_OPT_LEN (1 .. APN_MAX_WORDS words, then up to 3 octets);
    // a shorter one is kept as an unknown option (and, being the first of the type, means no
    // carried option: no ID fits in it).
    state hbh_apn_check {
        meta.hbh_seen = meta.hbh_seen | 1;
        bit<16> below_min = (bit<16>)meta.opt_len - 8;
        bit<16> above_max = APN_MAX_OPT_LEN - (bit<16>)meta.opt_len;
        transition select(below_min[15:15], above_max[15:15]) {
            (0, 0): hbh_apn;
            (0, 1): hbh_apn_unheld;
            default: hbh_keep;
        }
    }

    // An option of the APN type with an ID type the contract reads but longer than the APN
    // header holds (past ICPN_APN_MAX_WORDS words and 3 octets): kept as an unknown option;
    // a node that reads carried options drops the packet p4-limit (Apn).
    state hbh_apn_unheld {
        transition select(packet.lookahead<bit<24>>()[7:0]) {
            ICPN_APN_ID_TYPE_32: hbh_apn_unread;
            ICPN_APN_ID_TYPE_64: hbh_apn_unread;
            ICPN_APN_ID_TYPE_128: hbh_apn_unread;
            default: hbh_keep;
        }
    }

    state hbh_apn_unread {
        meta.apn_unwalked = 1;
        transition hbh_keep;
    }

    state hbh_apn {
        hdr.hbh_apn = packet.lookahead<opt_apn_t>();
        transition select(meta.opt_len) {
            APN_WORDS_SELECT(hbh_apn)
        }
    }

    APN_WORDS_STATES(hbh_apn, hdr.hbh_apn_word, hbh_keep)

    state hbh_altmark {
        hdr.altmark = packet.lookahead<opt_altmark_t>();
        meta.hbh_seen = meta.hbh_seen | 2;
        transition hbh_strip;
    }

    // The option at hand (meta.slot_len octets) goes into the next slot before or after the
    // IOAM option, marked as one a tail strips or keeps.
    state hbh_strip {
        meta.slot_strip = 1;
        meta.opt_rem = meta.opt_rem - meta.slot_len;
        transition select(meta.hbh_seen, meta.hbh_pre_n, meta.hbh_post_n) {
            HBH_SLOT_NEXT
        }
    }

    state hbh_keep {
        meta.slot_strip = 0;
        meta.hbh_kept = meta.hbh_kept + meta.slot_len;
        meta.opt_rem = meta.opt_rem - meta.slot_len;
        transition select(meta.hbh_seen, meta.hbh_pre_n, meta.hbh_post_n) {
            HBH_SLOT_NEXT
        }
    }

    // More options than the slots before (or after) the IOAM option hold.
    state hbh_unheld {
        verify(false, error.HbhUnheld);
        transition accept;
    }

    state hbh_slot_pre {
        packet.extract(hdr.hbh_pre.next, (bit<32>)meta.slot_len * 8);
        meta.hbh_strip_pre = meta.hbh_strip_pre | ((bit<8>)meta.slot_strip << meta.hbh_pre_n);
        meta.hbh_pre_n = meta.hbh_pre_n + 1;
        transition hbh_opts;
    }

    state hbh_slot_post {
        packet.extract(hdr.hbh_post.next, (bit<32>)meta.slot_len * 8);
        meta.hbh_strip_post = meta.hbh_strip_post | ((bit<8>)meta.slot_strip << meta.hbh_post_n);
        meta.hbh_post_n = meta.hbh_post_n + 1;
        transition hbh_opts;
    }

    // IOAM: a pre-allocated trace (IOAM-Option-Type 0, data 10 + 4n octets) goes into hdr.trace
    // and its area, split where this node's record goes (RemainingLen - NodeLen words), into
    // hdr.ioam_empty, hdr.ioam_record (NodeLen words, at most IOAM_RECORD_WORDS) and
    // hdr.ioam_filled. Without room for a record (or a NodeLen no trace type has) the record is
    // empty; with RemainingLen beyond the area, all of it is ioam_filled: such a trace is never
    // stamped. Any other IOAM option is kept raw (forwarded, never stamped).
#define IOAM_RECORD_NEXT                  \
            0: hbh_ioam_filled;           \
            1: hbh_ioam_w1;               \
            8w2 &&& 8w0xFE: hbh_ioam_w2;  \
            8w4 &&& 8w0xFC: hbh_ioam_w4;  \
            default: hbh_ioam_w8;
#define IOAM_RECORD_STATE(N, EXTRACTS)              \
    state hbh_ioam_w##N {                           \
        EXTRACTS                                    \
        meta.words_left = meta.words_left - N;      \
        transition select(meta.words_left) {        \
            IOAM_RECORD_NEXT                        \
        }                                           \
    }
#define IOAM_WORD packet.extract(hdr.ioam_record.next);

    // A trace: IOAM-Option-Type 0 (the head's low octet), Opt Data Len 4n + 2 and >= 10.
    state hbh_ioam_check {
        bit<32> head = packet.lookahead<bit<32>>();
        bit<16> below_trace = (bit<16>)meta.opt_len - 10;
        bit<16> below_hdr = (bit<16>)meta.opt_len - 2;
        transition select(head, meta.opt_len, below_trace, below_hdr) {
            (32w0 &&& 32w0xFF, 8w2 &&& 8w3, 16w0 &&& 16w0x8000, _): hbh_ioam_trace;
            (_, _, _, 16w0 &&& 16w0x8000): hbh_ioam_raw;
            default: hbh_strip;
        }
    }

    state hbh_ioam_trace {
        meta.opt_rem = meta.opt_rem - meta.slot_len;
        packet.extract(hdr.ioam);
        packet.extract(hdr.trace);
        meta.hbh_seen = meta.hbh_seen | 4;
        meta.ioam_words = (hdr.ioam.len - 10) >> 2;
        bit<8> rem = (bit<8>)hdr.trace.remaining_len;     // (these differences are > -128)
        bit<8> nl = (bit<8>)hdr.trace.node_len;
        bit<8> beyond = meta.ioam_words - rem;
        bit<8> room = rem - nl;
        bit<8> longer = ICPN_IOAM_RECORD_WORDS - nl;
        ioam_empty_words = room;
        ioam_filled_words = meta.ioam_words - rem;
        meta.words_left = nl;
        transition select(beyond[7:7], room[7:7], longer[7:7], nl, room) {
            (1, _, _, _, _): hbh_ioam_beyond;
            (0, 1, _, _, _): hbh_ioam_no_record;
            (0, 0, 1, _, _): hbh_ioam_no_record;
            (0, 0, 0, 0, _): hbh_ioam_no_record;
            (0, 0, 0, _, 0): hbh_ioam_record;       // no empty words before the record
            default: hbh_ioam_empty_words;
        }
    }

    state hbh_ioam_beyond {
        ioam_empty_words = 0;
        ioam_filled_words = meta.ioam_words;
        meta.words_left = 0;
        transition hbh_ioam_empty;
    }

    state hbh_ioam_no_record {
        ioam_empty_words = (bit<8>)hdr.trace.remaining_len;
        meta.words_left = 0;
        transition hbh_ioam_empty;
    }

    state hbh_ioam_empty {
        transition select(ioam_empty_words) {
            0: hbh_ioam_record;
            default: hbh_ioam_empty_words;
        }
    }

    state hbh_ioam_empty_words {
        packet.extract(hdr.ioam_empty, (bit<32>)ioam_empty_words * 32);
        transition select(meta.words_left) {
            IOAM_RECORD_NEXT
        }
    }

    state hbh_ioam_record {
        transition select(meta.words_left) {
            IOAM_RECORD_NEXT
        }
    }

    // The record in steps of 8, 4, 2 and 1 words: fewer parser states than one word at a time.
    IOAM_RECORD_STATE(1, IOAM_WORD)
    IOAM_RECORD_STATE(2, IOAM_WORD IOAM_WORD)
    IOAM_RECORD_STATE(4, IOAM_WORD IOAM_WORD IOAM_WORD IOAM_WORD)
    IOAM_RECORD_STATE(8, IOAM_WORD IOAM_WORD IOAM_WORD IOAM_WORD
                         IOAM_WORD IOAM_WORD IOAM_WORD IOAM_WORD)

    state hbh_ioam_filled {
        transition select(ioam_filled_words) {
            0: hbh_opts;
            default: hbh_ioam_filled_words;
        }
    }

    state hbh_ioam_filled_words {
        packet.extract(hdr.ioam_filled, (bit<32>)ioam_filled_words * 32);
        transition hbh_opts;
    }

    state hbh_ioam_raw {
        meta.opt_rem = meta.opt_rem - meta.slot_len;
        packet.extract(hdr.ioam);
        packet.extract(hdr.ioam_raw, ((bit<32>)hdr.ioam.len - 2) * 8);
        meta.hbh_seen = meta.hbh_seen | 4;
        transition hbh_opts;
    }

    state after_hbh {
        transition select(meta.l4_proto) {
            ICPN_IPPROTO_DSTOPTS: parse_doh1;
            ICPN_IPPROTO_ROUTING: parse_rh;
            ICPN_IPPROTO_HOPOPTS: ext_unheld;
            IPV6_UPPER
        }
    }

    state parse_doh1 {
        meta.parse_stage = meta.parse_stage | STAGE_EXTHDR;
        packet.extract(hdr.doh1);
        meta.l4_proto = hdr.doh1.next_hdr;
        meta.opt_rem = (bit<16>)hdr.doh1.len * 8 + 6;
        meta.doh_opts = 0;
        transition select(meta.hbh_seen[0:0]) {
            0: doh1_opts;
            default: doh1_rest;
        }
    }

    DOH_STATES(doh1, after_doh1)

    state after_doh1 {
        transition select(meta.l4_proto) {
            ICPN_IPPROTO_ROUTING: parse_rh;
            ICPN_IPPROTO_DSTOPTS: parse_doh2;
            ICPN_IPPROTO_HOPOPTS: ext_unheld;
            IPV6_UPPER
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

#define RH_SEGS_SELECT                                                                        \
        bit<8> room = ICPN_MAX_SEGMENTS - meta.segs_left;                                     \
        transition select(meta.segs_left, room[7:7]) {                                        \
            (0, _): rh_tlvs;                                                                  \
            (_, 0): rh_seg;                                                                   \
            default: rh_opaque;                                                               \
        }

    state rh_count_le {
        meta.segs_left = hdr.rh.last_entry + 1;
        RH_SEGS_SELECT
    }

    state rh_count_len {
        meta.segs_left = hdr.rh.len >> 1;
        RH_SEGS_SELECT
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
    // octets, the last ending at the header's end); SRH_TLV_SLOTS TLVs are walked and kept
    // one by one, as they are, the rest kept raw.
    state rh_tlvs {
        transition select(meta.rh_body, meta.rh_opaque, meta.tlv_count) {
            (0, _, _): after_rh;
            (_, 1, _): rh_rest;
            (_, _, ICPN_SRH_TLV_SLOTS): rh_unwalked;
            default: rh_tlv;
        }
    }

    state rh_tlv {
        transition select(packet.lookahead<bit<8>>()) {
            0: rh_pad1;
            default: rh_tlv_len;
        }
    }

    state rh_pad1 {
        meta.slot_len = 1;
        transition rh_tlv_keep;
    }

    state rh_tlv_len {
        verify(meta.rh_body >= 2, error.BadSrhTlv);
        bit<16> tl = packet.lookahead<bit<16>>();
        verify(meta.rh_body >= (bit<16>)tl[7:0] + 2, error.BadSrhTlv);
        meta.slot_len = (bit<16>)tl[7:0] + 2;
        transition rh_tlv_keep;
    }

    state rh_tlv_keep {
        packet.extract(hdr.tlv.next, (bit<32>)meta.slot_len * 8);
        meta.rh_body = meta.rh_body - meta.slot_len;
        meta.tlv_count = meta.tlv_count + 1;
        transition rh_tlvs;
    }

    // More TLVs than the parser walks: an endpoint cannot validate them (drop p4-limit there).
    state rh_unwalked {
        meta.tlv_unwalked = 1;
        transition rh_rest;
    }

    state rh_rest {
        packet.extract(hdr.rh_rest, (bit<32>)meta.rh_body * 8);
        transition after_rh;
    }

    state after_rh {
        transition select(meta.l4_proto) {
            ICPN_IPPROTO_DSTOPTS: parse_doh2;
            ICPN_IPPROTO_HOPOPTS: ext_unheld;
            ICPN_IPPROTO_ROUTING: ext_unheld;
            IPV6_UPPER
        }
    }

    state parse_doh2 {
        meta.parse_stage = meta.parse_stage | STAGE_EXT2;
        packet.extract(hdr.doh2);
        meta.l4_proto = hdr.doh2.next_hdr;
        meta.opt_rem = (bit<16>)hdr.doh2.len * 8 + 6;
        meta.doh_opts = 0;
        transition select(meta.hbh_seen[0:0]) {
            0: doh2_opts;
            default: doh2_rest;
        }
    }

    DOH_STATES(doh2, ipv6_upper)

    // The first Next Header after the extension headers the parser holds: another extension
    // header there is one it cannot hold (ingress tells bad-exthdr from p4-limit).
    state ipv6_upper {
        transition select(meta.l4_proto) {
            ICPN_IPPROTO_HOPOPTS: ext_unheld;
            ICPN_IPPROTO_DSTOPTS: ext_unheld;
            ICPN_IPPROTO_ROUTING: ext_unheld;
            IPV6_UPPER
        }
    }

    state ext_unheld {
        verify(false, error.ExtUnheld);
        transition accept;
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
        transition select(meta.l4_proto) {
            ICPN_IPPROTO_HOPOPTS: in6_ext0;
            ICPN_IPPROTO_ROUTING: in6_ext0;
            ICPN_IPPROTO_DSTOPTS: in6_ext0;
            default: parse_l4;
        }
    }

    // The inner packet's extension headers, walked as the outer ones (docs/pipeline.md 1 step
    // 3) and kept whole; whether each ends within the inner Payload Length is checked where the
    // packet is decapsulated (Srv6Endpoint), the only place the contract parses an inner packet.
    // A header the frame cuts short leaves inner_ext_tries past inner_ext_done, its type in
    // inner_ext_type. (Counters, not a flag set then cleared: p4c would drop the first write
    // as a dead store, not knowing that an extract can end the parse.)
#define IN6_EXT(N, NEXT)                                                                      \
    state in6_ext##N {                                                                        \
        meta.inner_ext_tries = meta.inner_ext_tries + 1;                                      \
        meta.inner_ext_type = meta.l4_proto;                                                  \
        bit<16> tl = packet.lookahead<bit<16>>();                                             \
        packet.extract(hdr.inner_ext##N, ((bit<32>)tl[7:0] + 1) * 64 - 16);                    \
        meta.inner_ext_done = meta.inner_ext_done + 1;                                        \
        meta.l4_proto = hdr.inner_ext##N.next_hdr;                                            \
        transition select(meta.l4_proto) {                                                    \
            ICPN_IPPROTO_HOPOPTS: in6_ext_bad;                                                \
            ICPN_IPPROTO_ROUTING: NEXT;                                                       \
            ICPN_IPPROTO_DSTOPTS: NEXT;                                                       \
            default: parse_l4;                                                                \
        }                                                                                     \
    }
    IN6_EXT(0, in6_ext1)
    IN6_EXT(1, in6_ext2)
    IN6_EXT(2, in6_ext3)
    IN6_EXT(3, in6_ext_bad)

    // A HBH not first, or a fifth extension header: bad-exthdr at a decapsulation.
    state in6_ext_bad {
        meta.inner_ext_bad = 1;
        transition accept;
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
