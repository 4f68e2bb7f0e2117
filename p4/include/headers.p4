// Headers and metadata of the ICPN P4 program (SPEC.md wire formats, docs/pipeline.md choices).
#ifndef ICPN_HEADERS_P4
#define ICPN_HEADERS_P4

// Header stack sizes (codes.p4) and the field list id clones keep (codes.p4); wire constants
// (consts.p4) for every include that uses these types.
#include "consts.p4"
#include "codes.p4"

typedef bit<48>  mac_t;
typedef bit<128> ip6_t;
typedef bit<32>  ip4_t;
typedef bit<9>   port_t;

// Packet-in: the first header of every frame the switch sends to the controller.
@controller_header("packet_in")
header packet_in_t {
    bit<16> ingress_port;
    bit<16> reason;        // 0: punted; else a drop reason (test mode, pyctl.constants.DROP_*)
    bit<16> egress_port;   // reason 0 in test mode: a frame for this port too long for its link
}

// Packet-out: the first header of every frame the controller sends to the switch.
@controller_header("packet_out")
header packet_out_t {
    bit<16> egress_port;   // mode PKTOUT_DIRECT: send out of this port, no pipeline
    bit<16> in_port;       // mode PKTOUT_PIPELINE: process as if received on this port
    bit<8>  mode;
    bit<8>  reserved;
}

header ethernet_t {
    mac_t   dst;
    mac_t   src;
    bit<16> ether_type;
}

// IEEE 802.1Qbb PFC frame (after the Ethernet header), and the zero padding to 60 octets.
header pfc_t {
    bit<16> opcode;
    bit<16> class_enable;
    bit<16> t0;
    bit<16> t1;
    bit<16> t2;
    bit<16> t3;
    bit<16> t4;
    bit<16> t5;
    bit<16> t6;
    bit<16> t7;
}

header pfc_pad_t {
    bit<208> zero;         // 60 - 14 - 20 octets
}

header ipv4_t {
    bit<4>  version;
    bit<4>  ihl;
    bit<8>  tos;
    bit<16> total_len;
    bit<16> id;
    bit<3>  flags;
    bit<13> frag_offset;
    bit<8>  ttl;
    bit<8>  protocol;
    bit<16> checksum;
    ip4_t   src;
    ip4_t   dst;
}

header ipv4_opts_t {
    varbit<320> data;
}

header ipv6_t {
    bit<4>  version;
    bit<8>  tc;
    bit<20> flow_label;
    bit<16> payload_len;
    bit<8>  next_hdr;
    bit<8>  hop_limit;
    ip6_t   src;
    ip6_t   dst;
}

// First two octets of a Hop-by-Hop or Destination Options header.
header exthdr_t {
    bit<8> next_hdr;
    bit<8> len;            // 8-octet units after the first 8 octets
}

// An extension header of an inner (encapsulated) IPv6 packet, kept as it is: HBH, Routing or
// Destination Options, up to (255 + 1) * 8 octets in all.
header inner_ext_t {
    bit<8>          next_hdr;
    bit<8>          len;
    varbit<16368>   data;
}

// Destination Options header body, kept as it is (ICPN reads no destination option).
header opaque_t {
    varbit<16320> data;
}

// APN option (SPEC 2): type, length, then ID type, flags, parameter bitmap; then 32-bit words
// (APN-ID words, then one word per parameter).
header opt_apn_t {
    bit<8>  type;
    bit<8>  len;
    bit<8>  id_type;
    bit<8>  flags;
    bit<16> para_type;
}

header word_t {
    bit<32> w;
}

// Alternate Marking option (RFC 9343).
header opt_altmark_t {
    bit<8>  type;
    bit<8>  len;
    bit<20> flowmon_id;
    bit<1>  l;
    bit<1>  d;
    bit<10> reserved;
}

// IOAM option header (RFC 9486) and the pre-allocated trace header (RFC 9197).
header opt_ioam_t {
    bit<8> type;
    bit<8> len;
    bit<8> reserved;
    bit<8> ioam_type;
}

header ioam_trace_t {
    bit<16> namespace_id;
    bit<5>  node_len;
    bit<4>  flags;
    bit<7>  remaining_len;
    bit<24> trace_type;
    bit<8>  reserved;
}

// One node's record of the default trace type (NodeLen 5), as a head lays out its area: the data
// fields of trace type bits 0, 1, 2, 3 and 6 (RFC 9197 4.4.2), named as ICPN_GEN_* names them.
header ioam_node_t {
    bit<32> hop_node;      // hop limit (8) | node id (24)
    bit<32> ports;         // ingress interface (16) | egress interface (16)
    bit<32> seconds;       // timestamp seconds
    bit<32> micros;        // timestamp fraction, in microseconds
    bit<32> qdepth;        // queue depth
}

// Empty records of the default trace type, 4, 2 or 1 (5 words each) as one field: a head lays
// out the records before its own at zero, and BMv2 pays per header made valid and per field
// reset and emitted, so up to 7 records take at most 3 headers (encap_ioam_empty4/2/1).
header ioam_empty_nodes4_t {
    bit<640> zero;
}

header ioam_empty_nodes2_t {
    bit<320> zero;
}

header ioam_empty_node_t {
    bit<160> zero;
}

// The same record as the values a node computes before it stamps them (IoamRecord).
struct ioam_record_t {
    bit<32> hop_node;
    bit<32> ports;
    bit<32> seconds;
    bit<32> micros;
    bit<32> qdepth;
}

// The rest of an IOAM option this program does not stamp (another IOAM type, another size).
header opt_raw_t {
    varbit<2040> data;
}

// Words of a trace's area kept as they are (at most all of them: IOAM_AREA_WORDS).
header ioam_words_t {
    varbit<(ICPN_IOAM_AREA_WORDS * 32)> data;
}

// One option of a received HBH or DOH, or one SRH TLV (a Pad1, a PadN or a TLV), kept as it
// is: the header leaves as it came (RFC 8200 4.2: a router does not rearrange options), unless
// a tail strips a HBH's IFIT options.
header opt_slot_t {
    varbit<2056> bytes;
}

// The rest of a received HBH where an option runs past it, kept as it is (up to 2046 octets).
header hbh_rest_t {
    varbit<16368> bytes;
}

// One octet of padding: a stack of these is a Pad1 or a PadN option (docs/pipeline.md).
header padb_t {
    bit<8> b;
}

// Routing header fixed part; for Routing Type 4 it is the SRH (RFC 8754).
header rh_t {
    bit<8>  next_hdr;
    bit<8>  len;
    bit<8>  routing_type;
    bit<8>  segments_left;
    bit<8>  last_entry;
    bit<8>  flags;
    bit<16> tag;
}

header seg_t {
    ip6_t sid;
}

// After the segment list: SRH TLVs, or the body of another routing type, as they are.
header rh_rest_t {
    varbit<16320> data;
}

header l4_ports_t {
    bit<16> sport;
    bit<16> dport;
}

header udp_rest_t {
    bit<16> len;
    bit<16> checksum;
}

// RoCEv2 Base Transport Header, first 8 octets (destination QP in octets 5-7).
header bth_t {
    bit<8>  opcode;
    bit<8>  flags;
    bit<16> pkey;
    bit<8>  reserved;
    bit<24> dest_qp;
}

// IFIT report (SPEC 3): UDP, the report header, the inner 5-tuple; the node data follows.
header udp_t {
    bit<16> sport;
    bit<16> dport;
    bit<16> len;
    bit<16> checksum;
}

header ifit_report_t {
    bit<8>  version;
    bit<8>  node_count;
    bit<16> flags;
    bit<20> flowmon_id;
    bit<1>  l;
    bit<1>  d;
    bit<10> reserved;
    bit<32> tail_node_id;
    bit<32> ts_sec;
    bit<32> ts_usec;
}

header ifit_tuple_t {
    bit<8>  family;
    bit<8>  proto;
    bit<16> sport;
    bit<16> dport;
    bit<16> reserved;
    ip6_t   src;
    ip6_t   dst;
}

// The headers of a Destination Options header N (DOH 1 before the routing header, DOH 2 after):
// the options before its APN option, each as it is; the rest of the header as it is; the APN
// option of the node's type (the carried option when the HBH has none), read by lookahead and
// never emitted.
#define DOH_HEADERS(N)                                  \
    exthdr_t      N;                                    \
    opt_slot_t[ICPN_DOH_SLOTS_BEFORE_APN] N##_pre;      \
    opaque_t      N##_body;                             \
    opt_apn_t     N##_apn;                              \
    word_t[ICPN_APN_MAX_WORDS] N##_apn_word;

// Removes Destination Options header N (hdr.N and all of DOH_HEADERS(N)).
#define DOH_SET_INVALID(N)                              \
    hdr.N.setInvalid();                                 \
    hdr.N##_pre.pop_front(ICPN_DOH_SLOTS_BEFORE_APN);   \
    hdr.N##_body.setInvalid();                          \
    hdr.N##_apn.setInvalid();                           \
    hdr.N##_apn_word.pop_front(ICPN_APN_MAX_WORDS);

struct headers_t {
    packet_in_t   packet_in;
    packet_out_t  packet_out;
    ethernet_t    ethernet;
    pfc_t         pfc;
    pfc_pad_t     pfc_pad;

    // encap_*: the outer headers a headend pushes (H.Encaps), in wire order; encap_ipv6 is also
    // the IPv6 header of an IFIT report.
    ipv6_t        encap_ipv6;
    exthdr_t      encap_hbh;
    opt_apn_t     encap_apn;
    word_t[ICPN_APN_MAX_WORDS]  encap_apn_word;
    padb_t[3]     encap_apn_tail;        // the octets of a carried option after its words
    opt_altmark_t encap_altmark;
    padb_t[7]     encap_hbh_pad_align;   // pad to 4n + 2 before the IOAM option
    opt_ioam_t    encap_ioam;
    ioam_trace_t  encap_trace;
    ioam_empty_nodes4_t encap_ioam_empty4;  // the records before the head's (4 + 2 + 1 of them
    ioam_empty_nodes2_t encap_ioam_empty2;  // hold ICPN_IOAM_MAX_NODES - 1: set_ifit_headN)
    ioam_empty_node_t   encap_ioam_empty1;
    ioam_node_t   encap_ioam_own;        // the head's own record, the area's last
    // A head with another trace type: the empty records, then its own record, word by word.
    word_t[ICPN_IOAM_GEN_ZERO_WORDS] encap_gen_empty;
    word_t[ICPN_IOAM_GEN_REC_WORDS]  encap_gen_record;
    padb_t[7]     encap_hbh_pad_end;     // pad to the HBH's end (8n)
    // DOH carrier: the outer DOH[APN, padding] between the HBH and the SRH.
    exthdr_t      encap_doh;
    opt_apn_t     encap_doh_apn;
    word_t[ICPN_APN_MAX_WORDS]  encap_doh_apn_word;
    padb_t[3]     encap_doh_apn_tail;
    padb_t[7]     encap_doh_pad;
    rh_t          encap_srh;
    seg_t[ICPN_MAX_SEGMENTS]    encap_seg;
    // SRH TLV carrier: the APN option data as a TLV after the segment list, then PadN.
    opt_apn_t     encap_tlv_apn;
    word_t[ICPN_APN_MAX_WORDS]  encap_tlv_apn_word;
    padb_t[3]     encap_tlv_apn_tail;
    padb_t[7]     encap_tlv_pad;

    // report_*: the IFIT report (built from a clone at the tail) after encap_ipv6.
    udp_t         report_udp;
    ifit_report_t report_hdr;
    ifit_tuple_t  report_tuple;

    // The packet as received: outer IPv6 and its extension headers ...
    ipv6_t        ipv6;
    exthdr_t      hbh;
    // A HBH this node inserts (no encapsulation, HBH carrier): its APN option, then hbh_pad_end.
    opt_apn_t     inserted_apn;
    word_t[ICPN_APN_MAX_WORDS]  inserted_apn_word;
    // The received HBH's options in their order: those before the first IOAM option, that option
    // (a pre-allocated trace split as below, or another IOAM option kept raw), those after it,
    // then the rest of the header as it is where an option runs past it (the walk stops).
    opt_slot_t[ICPN_HBH_SLOTS_BEFORE_IOAM] hbh_pre;
    opt_ioam_t    ioam;
    ioam_trace_t  trace;
    opt_raw_t     ioam_raw;
    // A pre-allocated trace's area in three parts, split where this node's record goes
    // (RemainingLen - NodeLen): the empty words before it, its words, the records after it.
    ioam_words_t  ioam_empty;
    word_t[ICPN_IOAM_RECORD_WORDS] ioam_record;
    ioam_words_t  ioam_filled;
    opt_slot_t[ICPN_HBH_SLOTS_AFTER_IOAM] hbh_post;
    hbh_rest_t    hbh_rest;
    padb_t[7]     hbh_pad_end;           // a HBH laid out here (inserted, stripped): pad to 8n
    // What the parser read, by lookahead, from options kept in hbh_pre / hbh_post (never
    // emitted): the carried APN option (the first of the node's APN type) and the AltMark.
    opt_apn_t     hbh_apn;
    word_t[ICPN_APN_MAX_WORDS]  hbh_apn_word;
    opt_altmark_t altmark;
    // inserted_doh*: DOH carrier without encapsulation, a DOH[APN, padding] this node inserts
    // after the IPv6 header / HBH.
    exthdr_t      inserted_doh;
    opt_apn_t     inserted_doh_apn;
    word_t[ICPN_APN_MAX_WORDS]  inserted_doh_apn_word;
    padb_t[7]     inserted_doh_pad;
    // A Destination Options header: its options before the APN option, each as it is, then the
    // rest as it is (DOH_HEADERS).
    DOH_HEADERS(doh1)
    rh_t          rh;
    seg_t[ICPN_MAX_SEGMENTS]    seg;
    // SRH TLVs, up to SRH_TLV_SLOTS walked one by one (each a Pad1 or a TLV, as it is), then
    // the rest as it is
    opt_slot_t[ICPN_SRH_TLV_SLOTS] tlv;
    rh_rest_t     rh_rest;
    DOH_HEADERS(doh2)
    // ... or an outer IPv4 header ...
    ipv4_t        ipv4;
    ipv4_opts_t   ipv4_opts;
    // ... then an inner packet (IPv6 / IPv4 in IPv6) ...
    ipv6_t        inner_ipv6;
    inner_ext_t   inner_ext0;     // the inner packet's extension headers (ICPN_MAX_EXT_HEADERS)
    inner_ext_t   inner_ext1;
    inner_ext_t   inner_ext2;
    inner_ext_t   inner_ext3;
    ipv4_t        inner_ipv4;
    ipv4_opts_t   inner_ipv4_opts;
    // ... and the transport ports of the innermost packet.
    l4_ports_t    l4;
    udp_rest_t    udp_rest;
    bth_t         bth;
}

struct meta_t {
    // Preserved into clones (an I2E clone is re-parsed; only these fields survive).
    @field_list(ICPN_FIELD_LIST_CLONE) bit<8>  clone_kind;
    // (ICPN_FIELD_LIST_RECIRC: preserved into another pass of an End chained into a local SID)
    @field_list(ICPN_FIELD_LIST_CLONE, ICPN_FIELD_LIST_RECIRC) bit<16> in_port;
    @field_list(ICPN_FIELD_LIST_CLONE) bit<16> out_port;
    @field_list(ICPN_FIELD_LIST_CLONE, ICPN_FIELD_LIST_RECIRC) bit<48> now_us;
    @field_list(ICPN_FIELD_LIST_CLONE) bit<1>  test_mode;
    @field_list(ICPN_FIELD_LIST_CLONE) bit<8>  hop_limit_out;
    @field_list(ICPN_FIELD_LIST_CLONE) bit<32> out_len;   // octets of the frame sent
    @field_list(ICPN_FIELD_LIST_CLONE, ICPN_FIELD_LIST_RECIRC) bit<3>  pfc_prio;
    @field_list(ICPN_FIELD_LIST_RECIRC) bit<8> sid_passes;   // local SIDs chained so far
    @field_list(ICPN_FIELD_LIST_CLONE) bit<16> pfc_time;

    // Parser bookkeeping.
    bit<16> opt_rem;       // octets of options left in the HBH being parsed
    bit<8>  opt_len;
    bit<4>  hbh_seen;      // 1 APN (an option of the APN type, HBH or DOH), 2 AltMark, 4 IOAM
    bit<1>  apn_unwalked;  // a carried APN option may be there, unread: a DOH walk stopped at
                           // its option limit, or an APN option of a length not held
    // The inner IPv6 packet's extension headers (checked where it is decapsulated): headers
    // begun and extracted (one begun and not extracted was cut short), the type of the last
    // one begun, and a HBH not first or a fifth one.
    bit<4>  inner_ext_tries;
    bit<4>  inner_ext_done;
    bit<8>  inner_ext_type;
    bit<1>  inner_ext_bad;
    bit<8>  doh_opts;      // options of the DOH being parsed kept before its APN option
    // The received HBH's options (hbh_pre / hbh_post): how many, which a tail's strip removes
    // (padding, AltMark- and IOAM-typed options, an unwalked rest: bit i for slot i), the
    // octets of those it keeps; the slot being parsed.
    bit<8>  hbh_pre_n;
    bit<8>  hbh_post_n;
    bit<8>  hbh_strip_pre;
    bit<8>  hbh_strip_post;
    bit<16> hbh_kept;
    bit<16> slot_len;
    bit<1>  slot_strip;
    bit<1>  tlv_unwalked;  // SRH TLVs past the ones the parser walks (not validated)
    bit<1>  hbh_stripped;  // the tail removed IFIT options: the HBH is laid out again
    bit<8>  l3_tc;         // IPv6 traffic class / IPv4 TOS, read even from a truncated header
    bit<1>  l3_tc_valid;   //   (PFC's priority: docs/pipeline.md 2 reads it from 2 octets)
    bit<8>  words_left;
    bit<8>  apn_words;     // words of the carried APN option (hbh_apn, doh1_apn or doh2_apn)
    bit<8>  apn_tail_n;    // its octets after the words (0..3; SPEC 2 asks for no whole words)
    bit<24> apn_tail;      // those octets, left-aligned
    // (an I2E clone's metadata is reset after its re-parse: what the report needs is kept)
    @field_list(ICPN_FIELD_LIST_CLONE) bit<8>  ioam_words;   // words of the trace's area
    bit<16> hbh_len_in;    // octets of the HBH as received
    bit<16> rh_body;       // octets of the routing header after its fixed part
    bit<8>  segs_left;
    bit<1>  rh_opaque;     // routing header not parsed into hdr.seg (not type 4, too long)
    bit<8>  tlv_count;     // SRH TLVs walked
    bit<8>  parse_stage;   // which header the parser was in when it stopped
    @field_list(ICPN_FIELD_LIST_CLONE) bit<8>  l4_proto;  // innermost upper-layer protocol

    // Node state for this packet.
    bit<1>  bypass;        // a packet-out sent straight to a port
    bit<32> frame_len;     // octets of the frame as received (without a packet-out header)
    bit<1>  hl_check;      // transit / headend: check and use the received hop limit
    bit<16> drop_reason;
    bit<32> rand32;
    mac_t   nh_mac;
    bit<1>  routed;        // egress port and next-hop MAC decided

    // One FIB lookup per packet, on these.
    bit<1>  fib_lookup;
    bit<16> fib_vrf;
    bit<8>  fib_family;
    ip6_t   fib_addr;

    // Flow key of the innermost packet (docs/pipeline.md section 3).
    ip6_t   k_src;
    ip6_t   k_dst;
    bit<8>  k_proto;
    bit<32> k_tail;        // sport|dport, or 0x00|QP for RoCEv2
    bit<16> sport;         // transport ports (0 without a TCP / UDP header)
    bit<16> dport;
    bit<8>  k_family;      // 4 or 6
    bit<6>  dscp;
    bit<32> ip_len;        // IP length of the innermost packet
    bit<32> flow_hash;

    // APN
    bit<1>  apn_valid;
    bit<1>  apn_from_pkt;
    ip6_t   apn_id;        // right-aligned
    bit<8>  apn_id_type;
    bit<8>  apn_flags;
    bit<16> apn_para;
    bit<1>  ifit_gen;      // IFIT head with another trace type (encap_gen_record)
    bit<100> ifit_gen_sel; // ICPN_GEN_* of each encap_gen_record word, 4 bits each, word 0 lowest
    bit<8>  ifit_gen_nodes;     // its area's records (max_nodes)
    bit<8>  ifit_gen_node_len;  // and each record's words
    bit<8>  apn_carrier;   // ICPN_APN_CARRIER_*: where a new APN option goes
    bit<8>  apn_tlv_type;  // SRH TLV carrier: the TLV type
    bit<8>  apn_nwords;    // a classifier's mark: the option's words, laid out by the controller
    bit<32> apn_w0;
    bit<32> apn_w1;
    bit<32> apn_w2;
    bit<32> apn_w3;
    bit<32> apn_w4;
    bit<32> apn_w5;
    bit<32> apn_w6;
    bit<32> apn_w7;
    bit<32> apn_w8;        // (w8..w11: a carried option from a DOH only)
    bit<32> apn_w9;
    bit<32> apn_w10;
    bit<32> apn_w11;
    bit<1>  apn_in_hbh;    // the carried option is hdr.hbh_apn (else the words above)
    bit<8>  apn_type;      // the node's APN option type
    bit<1>  apn_reads;     // the node's behaviour depends on a carried APN option

    // Elephants
    bit<1>  elephant;

    // SRv6
    bit<8>  behaviour;
    bit<1>  psp;
    bit<1>  sid_chain;     // End wrote a DA that is a local SID: recirculate for its behaviour
    bit<1>  decap;
    bit<1>  encap;
    bit<16> policy_id;

    // IFIT
    bit<1>  ifit_head;
    bit<20> flowmon_id;    // a head's flow (set by ifit_flow; counted once ifit_head is 1)
    bit<32> ifit_slot;     // and its slot in the head's period and countdown registers
    bit<1>  ifit_l;
    // The received AltMark's FlowMonID and L: its counter (IfitSlot, IfitCount), counted as the
    // packet leaves
    bit<1>  altmark_in;
    bit<20> altmark_in_flowmon;
    bit<1>  altmark_in_l;
    bit<32> altmark_in_len;  // its carrier's IPv6 length as received (a decapsulating tail's)
    bit<16> strip_bytes;     // octets a tail's strip took from the HBH (counted: SPEC 3)
    bit<1>  report;
    // The received trace (IoamCheck): usable by this node, its NodeLen, the ICPN_GEN_* of each
    // word of a record (4 bits each, word 0 lowest); the report's 5-tuple is the outer packet's.
    @field_list(ICPN_FIELD_LIST_CLONE) bit<1>   ioam_usable;
    @field_list(ICPN_FIELD_LIST_CLONE) bit<8>   ioam_node_len;
    @field_list(ICPN_FIELD_LIST_CLONE) bit<1>   ioam_default;   // trace type 0xF20000
    @field_list(ICPN_FIELD_LIST_CLONE) bit<100> ioam_sel;
    @field_list(ICPN_FIELD_LIST_CLONE) bit<1>   report_outer;

    // PFC
    bit<1>  pfc_emit;

    // Bytes queued at the egress port (QueueBytesIn / QueueBytesOut, outside test mode)
    bit<32> queue_bytes;   // found queued when ingress sent the packet
    bit<32> queue_mark;    // the port's running total of bytes sent, this packet included
    bit<1>  queue_counted;
}

#endif
