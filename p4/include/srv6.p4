// SRv6 (SPEC 1, docs/pipeline.md section 2): the My-SID table with End / End.X (PSP and
// NEXT-CSID flavours) / End.DT4 / End.DT6 / End.DT46 / End.DX4 / End.DX6, and the H.Encaps /
// H.Encaps.Red headend with APN-keyed deep hashing over weighted SID lists.
#ifndef ICPN_SRV6_P4
#define ICPN_SRV6_P4

#include <core.p4>
#include <v1model.p4>

#include "headers.p4"
#include "ipv4.p4"
#include "apn.p4"
#include "ifit.p4"

// An extension header of LEN octets, there when PRESENT, must end within its IPv6 packet's
// Payload Length LIMIT (the parser only bounded it by the frame): END adds it up, and ERR (0
// until then: the first one found wins) takes REASON, bad-exthdr or bad-srh for a routing
// header. For the outer packet (step 3) and an inner one where it is decapsulated.
#define EXT_ENDS_WITHIN(PRESENT, LEN, LIMIT, END, ERR, REASON)                                \
    if (ERR == 0 && (PRESENT)) {                                                              \
        END = END + (LEN);                                                                    \
        if (END > LIMIT) {                                                                    \
            ERR = REASON;                                                                     \
        }                                                                                     \
    }
// An inner extension header H, whose type TYPE its predecessor names.
#define INNER_EXT_END(H, TYPE)                                                                \
    EXT_ENDS_WITHIN(H.isValid(), ((bit<16>)H.len + 1) * 8, inner_plen, inner_end, inner_err,  \
                    (TYPE == ICPN_IPPROTO_ROUTING ? (bit<16>)ICPN_DROP_BAD_SRH                \
                                                  : ICPN_DROP_BAD_EXTHDR))

// Removes the SRH's TLVs (PSP removes the whole SRH).
control StripTlvs(inout headers_t hdr) {
    apply {
        hdr.tlv.pop_front(ICPN_SRH_TLV_SLOTS);
        hdr.rh_rest.setInvalid();
    }
}

// Removes the outer IPv6 header and all its extension headers (End.DT* / End.DX*).
control StripOuter(inout headers_t hdr) {
    apply {
        hdr.ipv6.setInvalid();
        hdr.hbh.setInvalid();
        hdr.hbh_pre.pop_front(ICPN_HBH_SLOTS_BEFORE_IOAM);
        hdr.ioam.setInvalid();
        hdr.trace.setInvalid();
        hdr.ioam_raw.setInvalid();
        hdr.ioam_empty.setInvalid();
        hdr.ioam_record.pop_front(ICPN_IOAM_RECORD_WORDS);
        hdr.ioam_filled.setInvalid();
        hdr.hbh_post.pop_front(ICPN_HBH_SLOTS_AFTER_IOAM);
        hdr.hbh_rest.setInvalid();
        hdr.hbh_apn.setInvalid();
        hdr.hbh_apn_word.pop_front(ICPN_APN_MAX_WORDS);
        hdr.altmark.setInvalid();
        DOH_SET_INVALID(doh1)
        hdr.rh.setInvalid();
        hdr.seg.pop_front(ICPN_MAX_SEGMENTS);
        hdr.tlv.pop_front(ICPN_SRH_TLV_SLOTS);
        hdr.rh_rest.setInvalid();
        DOH_SET_INVALID(doh2)
    }
}

control SRv6Endpoint(inout headers_t hdr, inout meta_t meta, in bit<1> tlv_error) {
    bit<1>  next_csid;
    ip6_t   block_mask;
    ip6_t   arg_mask;
    bit<8>  csid_shift;
    bit<16> vrf;
    port_t  adj_port;
    mac_t   adj_mac;

    Ipv4SetCe() inner_ce;
    StripOuter() strip_outer;
    StripTlvs() strip_tlvs;

    action drop(bit<16> reason) {
        meta.drop_reason = reason;
    }

    // NEXT-CSID: block = mask of the Locator-Block, arg = mask of the bits after the C-SID,
    // csid_bits = the C-SID length (the controller derives them from the LocalSID).
    action end(bit<1> psp, bit<1> csid, ip6_t block, ip6_t arg, bit<8> csid_bits) {
        meta.behaviour = ICPN_B_END;
        meta.psp = psp;
        next_csid = csid;
        block_mask = block;
        arg_mask = arg;
        csid_shift = csid_bits;
    }

    action end_x(bit<1> psp, bit<1> csid, ip6_t block, ip6_t arg, bit<8> csid_bits,
                 port_t port, mac_t dmac) {
        meta.behaviour = ICPN_B_END_X;
        meta.psp = psp;
        next_csid = csid;
        block_mask = block;
        arg_mask = arg;
        csid_shift = csid_bits;
        adj_port = port;
        adj_mac = dmac;
    }

    action end_dt4(bit<16> table_id) {
        meta.behaviour = ICPN_B_END_DT4;
        vrf = table_id;
    }

    action end_dt6(bit<16> table_id) {
        meta.behaviour = ICPN_B_END_DT6;
        vrf = table_id;
    }

    action end_dt46(bit<16> table_id) {
        meta.behaviour = ICPN_B_END_DT46;
        vrf = table_id;
    }

    action end_dx4(port_t port, mac_t dmac) {
        meta.behaviour = ICPN_B_END_DX4;
        adj_port = port;
        adj_mac = dmac;
    }

    action end_dx6(port_t port, mac_t dmac) {
        meta.behaviour = ICPN_B_END_DX6;
        adj_port = port;
        adj_mac = dmac;
    }

    table my_sid {
        key = { hdr.ipv6.dst: lpm @name("sid"); }
        actions = { end; end_x; end_dt4; end_dt6; end_dt46; end_dx4; end_dx6; NoAction; }
        default_action = NoAction();
        size = 1024;
    }

    // RFC 8986 4.1 S14-S16: Segments Left - 1, the segment it then points at becomes the
    // destination (the parser holds segments 0..7; more are dropped before), hop limit - 1.
    // One action: p4c turns each if of a control's body into a table of its own, where
    // conditional expressions in an action stay one step.
    action advance() {
        bit<8> sl = hdr.rh.segments_left - 1;
        hdr.rh.segments_left = sl;
        hdr.ipv6.dst = (sl == 0) ? hdr.seg[0].sid
                     : ((sl == 1) ? hdr.seg[1].sid
                     : ((sl == 2) ? hdr.seg[2].sid
                     : ((sl == 3) ? hdr.seg[3].sid
                     : ((sl == 4) ? hdr.seg[4].sid
                     : ((sl == 5) ? hdr.seg[5].sid
                     : ((sl == 6) ? hdr.seg[6].sid : hdr.seg[7].sid))))));
        hdr.ipv6.hop_limit = hdr.ipv6.hop_limit - 1;
    }

    // The prefixes of my_sid again, hit only: is the DA that End wrote a local SID? (p4c applies
    // a table once per packet; applied only after an End that wrote a new DA.)
    table local_sid {
        key = { hdr.ipv6.dst: lpm @name("sid"); }
        actions = { NoAction; }
        default_action = NoAction();
        size = 1024;
    }

    apply {
        meta.behaviour = 0;
        next_csid = 0;
        block_mask = 0;
        arg_mask = 0;
        csid_shift = 0;
        vrf = 0;
        adj_port = 0;
        adj_mac = 0;
        my_sid.apply();
        bool srh = hdr.rh.isValid() && hdr.rh.routing_type == ICPN_SRH_ROUTING_TYPE;
        if (meta.behaviour == 0) {
            // not a local SID
        } else if (meta.behaviour == ICPN_B_END || meta.behaviour == ICPN_B_END_X) {
            bit<1> done = 0;
            if (next_csid == 1 && (hdr.ipv6.dst & arg_mask) != 0) {
                // NEXT-CSID with a non-zero argument: shift the C-SIDs, keep SL and the SRH.
                if (hdr.ipv6.hop_limit <= 1) {
                    drop(ICPN_DROP_HOP_LIMIT);
                } else {
                    hdr.ipv6.dst = (hdr.ipv6.dst & block_mask)
                                   | ((hdr.ipv6.dst << csid_shift) & ~block_mask);
                    hdr.ipv6.hop_limit = hdr.ipv6.hop_limit - 1;
                    done = 1;
                }
            } else if (!srh) {
                // RFC 8986 4.1 order: S02 (SL), S05 (hop limit), then S09-S10 (LE, SL).
                drop(ICPN_DROP_NO_SRH);
            } else if (hdr.rh.segments_left == 0) {
                drop(ICPN_DROP_SL_ZERO);
            } else if (hdr.ipv6.hop_limit <= 1) {
                drop(ICPN_DROP_HOP_LIMIT);
            } else if ((bit<16>)hdr.rh.last_entry + 1 > (bit<16>)(hdr.rh.len >> 1)) {
                drop(ICPN_DROP_BAD_SRH_LE);
            } else if ((bit<16>)hdr.rh.segments_left > (bit<16>)hdr.rh.last_entry + 1) {
                drop(ICPN_DROP_BAD_SRH_SL);
            } else if (tlv_error == 1) {
                drop(ICPN_DROP_BAD_SRH);
            } else if (meta.rh_opaque == 1 || meta.tlv_unwalked == 1) {
                drop(ICPN_DROP_P4_LIMIT);      // more segments or TLVs than the parser holds
            } else {
                advance();
                if (meta.psp == 1 && hdr.rh.segments_left == 0) {
                    // PSP: the penultimate segment removes the SRH.
                    if (hdr.doh1.isValid()) {
                        hdr.doh1.next_hdr = hdr.rh.next_hdr;
                    } else if (hdr.hbh.isValid()) {
                        hdr.hbh.next_hdr = hdr.rh.next_hdr;
                    } else {
                        hdr.ipv6.next_hdr = hdr.rh.next_hdr;
                    }
                    hdr.ipv6.payload_len = hdr.ipv6.payload_len
                                           - ((bit<16>)hdr.rh.len + 1) * 8;
                    hdr.rh.setInvalid();
                    hdr.seg.pop_front(ICPN_MAX_SEGMENTS);
                    strip_tlvs.apply(hdr);
                }
                done = 1;
            }
            if (done == 1) {
                meta.hop_limit_out = hdr.ipv6.hop_limit;
                if (meta.behaviour == ICPN_B_END && local_sid.apply().hit) {
                    // docs/pipeline.md 1.4: the new DA is a local SID, whose behaviour runs on
                    // this result in another pass (recirculated from egress); at most
                    // MAX_SID_PASSES SIDs per packet.
                    if (meta.sid_passes >= ICPN_MAX_SID_PASSES - 1) {
                        drop(ICPN_DROP_SID_LOOP);
                    } else {
                        meta.sid_passes = meta.sid_passes + 1;
                        meta.sid_chain = 1;
                    }
                } else if (meta.behaviour == ICPN_B_END) {
                    meta.fib_lookup = 1;
                    meta.fib_vrf = 0;
                    meta.fib_family = ICPN_FAMILY_IPV6;
                    meta.fib_addr = hdr.ipv6.dst;
                } else {
                    meta.out_port = (bit<16>)adj_port;
                    meta.nh_mac = adj_mac;
                    meta.routed = 1;
                }
            }
        } else {
            // End.DT* / End.DX*: decapsulate and route (or send) the inner packet.
            bool want6 = meta.behaviour == ICPN_B_END_DT6 || meta.behaviour == ICPN_B_END_DT46
                         || meta.behaviour == ICPN_B_END_DX6;
            bool want4 = meta.behaviour == ICPN_B_END_DT4 || meta.behaviour == ICPN_B_END_DT46
                         || meta.behaviour == ICPN_B_END_DX4;
            bit<2> outer_ecn = hdr.ipv6.tc[1:0];
            // The inner packet must fit in what the outer Payload Length leaves after the
            // extension headers (its own step 3: length not beyond the bytes it has).
            bit<32> ext_len = (bit<32>)meta.hbh_len_in;
            if (hdr.doh1.isValid()) {
                ext_len = ext_len + ((bit<32>)hdr.doh1.len + 1) * 8;
            }
            if (hdr.rh.isValid()) {
                ext_len = ext_len + ((bit<32>)hdr.rh.len + 1) * 8;
            }
            if (hdr.doh2.isValid()) {
                ext_len = ext_len + ((bit<32>)hdr.doh2.len + 1) * 8;
            }
            bit<32> room = (bit<32>)hdr.ipv6.payload_len;
            if (srh && (bit<16>)hdr.rh.last_entry + 1 > (bit<16>)(hdr.rh.len >> 1)) {
                drop(ICPN_DROP_BAD_SRH_LE);
            } else if (srh && (bit<16>)hdr.rh.segments_left > (bit<16>)hdr.rh.last_entry + 1) {
                drop(ICPN_DROP_BAD_SRH_SL);
            } else if (srh && tlv_error == 1) {
                drop(ICPN_DROP_BAD_SRH);
            } else if (srh && meta.tlv_unwalked == 1) {
                drop(ICPN_DROP_P4_LIMIT);      // TLVs past the ones the parser walks
            } else if (srh && hdr.rh.segments_left != 0) {
                drop(ICPN_DROP_SL_NONZERO);
            } else if (want6 && hdr.inner_ipv6.isValid()) {
                // The inner packet's extension headers, in order, each within its Payload
                // Length (bad-srh for a Routing header, else bad-exthdr), as step 3 walks them.
                bit<16> inner_plen = hdr.inner_ipv6.payload_len;
                bit<16> inner_end = 0;
                bit<16> inner_err = 0;
                INNER_EXT_END(hdr.inner_ext0, hdr.inner_ipv6.next_hdr)
                INNER_EXT_END(hdr.inner_ext1, hdr.inner_ext0.next_hdr)
                INNER_EXT_END(hdr.inner_ext2, hdr.inner_ext1.next_hdr)
                INNER_EXT_END(hdr.inner_ext3, hdr.inner_ext2.next_hdr)
                bool cut = meta.inner_ext_tries != meta.inner_ext_done;
                if (inner_err == 0 && cut && meta.inner_ext_type == ICPN_IPPROTO_ROUTING) {
                    inner_err = ICPN_DROP_BAD_SRH;
                } else if (inner_err == 0 && (cut || meta.inner_ext_bad == 1)) {
                    inner_err = ICPN_DROP_BAD_EXTHDR;
                }
                if (hdr.inner_ipv6.version != 6
                    || 40 + (bit<32>)hdr.inner_ipv6.payload_len + ext_len > room) {
                    drop(ICPN_DROP_BAD_IPV6);
                } else if (inner_err != 0) {
                    drop(inner_err);
                } else if (hdr.inner_ipv6.src[127:118] == 0x3FA
                           || hdr.inner_ipv6.dst[127:118] == 0x3FA) {
                    drop(ICPN_DROP_LINK_LOCAL);
                } else if (outer_ecn == ICPN_ECN_CE && hdr.inner_ipv6.tc[1:0] == 0) {
                    drop(ICPN_DROP_ECN_NOT_ECT_CE);
                } else {
                    if (outer_ecn == ICPN_ECN_CE) {
                        hdr.inner_ipv6.tc = hdr.inner_ipv6.tc | ICPN_ECN_CE;
                    }
                    meta.decap = 1;
                    meta.fib_family = ICPN_FAMILY_IPV6;
                    meta.fib_addr = hdr.inner_ipv6.dst;
                    hdr.ethernet.ether_type = ICPN_ETHERTYPE_IPV6;
                }
            } else if (want4 && hdr.inner_ipv4.isValid()) {
                // The inner header's own step-3 checks (RFC 1812 5.2.2: its checksum too; the
                // one's complement sum of a valid header is 0xFFFF, so csum16 gives 0).
                bit<16> inner_sum;
                hash(inner_sum, HashAlgorithm.csum16, 16w0,
                     { hdr.inner_ipv4.version, hdr.inner_ipv4.ihl, hdr.inner_ipv4.tos,
                       hdr.inner_ipv4.total_len, hdr.inner_ipv4.id, hdr.inner_ipv4.flags,
                       hdr.inner_ipv4.frag_offset, hdr.inner_ipv4.ttl, hdr.inner_ipv4.protocol,
                       hdr.inner_ipv4.checksum, hdr.inner_ipv4.src, hdr.inner_ipv4.dst,
                       hdr.inner_ipv4_opts },
                     32w0x10000);
                if (hdr.inner_ipv4.version != 4 || hdr.inner_ipv4.ihl < 5
                    || (bit<16>)hdr.inner_ipv4.ihl * 4 > hdr.inner_ipv4.total_len
                    || (bit<32>)hdr.inner_ipv4.total_len + ext_len > room
                    || inner_sum != 0) {
                    drop(ICPN_DROP_BAD_IPV4);
                } else if (hdr.inner_ipv4.src[31:16] == 0xA9FE
                           || hdr.inner_ipv4.dst[31:16] == 0xA9FE) {
                    drop(ICPN_DROP_LINK_LOCAL);
                } else if (outer_ecn == ICPN_ECN_CE && hdr.inner_ipv4.tos[1:0] == 0) {
                    drop(ICPN_DROP_ECN_NOT_ECT_CE);
                } else {
                    if (outer_ecn == ICPN_ECN_CE && hdr.inner_ipv4.tos[1:0] != ICPN_ECN_CE) {
                        inner_ce.apply(hdr.inner_ipv4);
                    }
                    meta.decap = 1;
                    meta.fib_family = ICPN_FAMILY_IPV4;
                    meta.fib_addr = V4_MAPPED(hdr.inner_ipv4.dst);
                    hdr.ethernet.ether_type = ICPN_ETHERTYPE_IPV4;
                }
            } else {
                drop(ICPN_DROP_BAD_INNER);
            }
            if (meta.decap == 1) {
                // the tail's IOAM record: the outer hop limit as if it were forwarded
                meta.hop_limit_out = hdr.ipv6.hop_limit - 1;
                strip_outer.apply(hdr);
                if (meta.behaviour == ICPN_B_END_DX4 || meta.behaviour == ICPN_B_END_DX6) {
                    meta.out_port = (bit<16>)adj_port;
                    meta.nh_mac = adj_mac;
                    meta.routed = 1;
                } else {
                    meta.fib_lookup = 1;
                    meta.fib_vrf = vrf;
                }
            }
        }
    }
}

#define ENC_SEG(I) hdr.encap_seg[I].setValid(); hdr.encap_seg[I].sid = seg##I;
#define COPY_APN_WORD(D, I) D[I] = hdr.hbh_apn_word[I];
#define COPY_APN_WORDS(D) COPY_APN_WORD(D, 0) COPY_APN_WORD(D, 1) COPY_APN_WORD(D, 2) \
    COPY_APN_WORD(D, 3) COPY_APN_WORD(D, 4) COPY_APN_WORD(D, 5) COPY_APN_WORD(D, 6) \
    COPY_APN_WORD(D, 7) COPY_APN_WORD(D, 8) COPY_APN_WORD(D, 9) COPY_APN_WORD(D, 10) \
    COPY_APN_WORD(D, 11)

control Headend(inout headers_t hdr, inout meta_t meta, in ip6_t source,
                in bit<8> flowlabel_mode, in bit<8> ifit_role) {
    bit<16> nbuckets;
    bit<1>  deep_hash;
    bit<16> bucket;
    bit<8>  nsegs;
    bit<8>  sl;
    ip6_t   first;
    bit<8>  inner_proto;   // the inner packet's protocol (outer_ipv6)

    IfitHead() ifit_head;
    ApnFill() apn_fill;
    ApnFill() doh_fill;
    ApnFill() tlv_fill;
    ApnTail() apn_tail;
    ApnTail() doh_tail;
    ApnTail() tlv_tail;
    MakePad() tlv_pad;

    action set_policy(bit<16> policy_id, bit<16> buckets, bit<1> deep) {
        meta.policy_id = policy_id;
        nbuckets = buckets;
        deep_hash = deep;
    }

    // SRv6 policies in configuration order (priority); apn_valid / apn_id match a policy's
    // APN-ID when it has one.
    table policy {
        key = {
            meta.k_src:     ternary @name("src");
            meta.k_dst:     ternary @name("dst");
            meta.k_proto:   ternary @name("proto");
            meta.sport:     ternary @name("sport");
            meta.dport:     ternary @name("dport");
            meta.dscp:      ternary @name("dscp");
            meta.in_port:   ternary @name("in_port");
            meta.apn_valid: ternary @name("apn_valid");
            meta.apn_id:    ternary @name("apn_id");
        }
        actions = { set_policy; NoAction; }
        default_action = NoAction();
        size = 256;
    }

    // One SID list per bucket (SPEC section 4: bucket = hash mod the bucket-table size), in wire
    // order: the SRH's segment list seg0..seg(N-1) (seg0 the last segment), Segments Left and
    // the first segment (the outer destination). encapN pushes N SRH segments; encap0 none
    // (H.Encaps.Red with one segment). One lookup gives the bucket's list and its segments.
    action encap0(bit<8> segments_left, ip6_t first_sid) {
        nsegs = 0;
        sl = segments_left;
        first = first_sid;
    }

    action encap1(bit<8> segments_left, ip6_t first_sid, ip6_t seg0) {
        nsegs = 1;
        sl = segments_left;
        first = first_sid;
        ENC_SEG(0)
    }

    action encap2(bit<8> segments_left, ip6_t first_sid, ip6_t seg0, ip6_t seg1) {
        nsegs = 2;
        sl = segments_left;
        first = first_sid;
        ENC_SEG(0)
        ENC_SEG(1)
    }

    action encap3(bit<8> segments_left, ip6_t first_sid, ip6_t seg0, ip6_t seg1, ip6_t seg2) {
        nsegs = 3;
        sl = segments_left;
        first = first_sid;
        ENC_SEG(0)
        ENC_SEG(1)
        ENC_SEG(2)
    }

    action encap4(bit<8> segments_left, ip6_t first_sid, ip6_t seg0, ip6_t seg1, ip6_t seg2,
                  ip6_t seg3) {
        nsegs = 4;
        sl = segments_left;
        first = first_sid;
        ENC_SEG(0)
        ENC_SEG(1)
        ENC_SEG(2)
        ENC_SEG(3)
    }

    action encap5(bit<8> segments_left, ip6_t first_sid, ip6_t seg0, ip6_t seg1, ip6_t seg2,
                  ip6_t seg3, ip6_t seg4) {
        nsegs = 5;
        sl = segments_left;
        first = first_sid;
        ENC_SEG(0)
        ENC_SEG(1)
        ENC_SEG(2)
        ENC_SEG(3)
        ENC_SEG(4)
    }

    action encap6(bit<8> segments_left, ip6_t first_sid, ip6_t seg0, ip6_t seg1, ip6_t seg2,
                  ip6_t seg3, ip6_t seg4, ip6_t seg5) {
        nsegs = 6;
        sl = segments_left;
        first = first_sid;
        ENC_SEG(0)
        ENC_SEG(1)
        ENC_SEG(2)
        ENC_SEG(3)
        ENC_SEG(4)
        ENC_SEG(5)
    }

    action encap7(bit<8> segments_left, ip6_t first_sid, ip6_t seg0, ip6_t seg1, ip6_t seg2,
                  ip6_t seg3, ip6_t seg4, ip6_t seg5, ip6_t seg6) {
        nsegs = 7;
        sl = segments_left;
        first = first_sid;
        ENC_SEG(0)
        ENC_SEG(1)
        ENC_SEG(2)
        ENC_SEG(3)
        ENC_SEG(4)
        ENC_SEG(5)
        ENC_SEG(6)
    }

    action encap8(bit<8> segments_left, ip6_t first_sid, ip6_t seg0, ip6_t seg1, ip6_t seg2,
                  ip6_t seg3, ip6_t seg4, ip6_t seg5, ip6_t seg6, ip6_t seg7) {
        nsegs = 8;
        sl = segments_left;
        first = first_sid;
        ENC_SEG(0)
        ENC_SEG(1)
        ENC_SEG(2)
        ENC_SEG(3)
        ENC_SEG(4)
        ENC_SEG(5)
        ENC_SEG(6)
        ENC_SEG(7)
    }

    // The outer IPv6 header from the inner packet's (IPv6, else IPv4). One action: p4c turns
    // each if of a control's body into a table of its own, where conditional expressions in an
    // action stay one step.
    action outer_ipv6() {
        bool inner6 = hdr.ipv6.isValid();
        inner_proto = inner6 ? (bit<8>)ICPN_IPPROTO_IPV6 : (bit<8>)ICPN_IPPROTO_IPIP;
        bit<8> hop_limit = inner6 ? hdr.ipv6.hop_limit : hdr.ipv4.ttl;
        bit<20> inner_label = inner6 ? hdr.ipv6.flow_label : 20w0;
        hdr.encap_ipv6.setValid();
        hdr.encap_ipv6.version = 6;
        hdr.encap_ipv6.tc = inner6 ? hdr.ipv6.tc : hdr.ipv4.tos;
        hdr.encap_ipv6.flow_label =
            (flowlabel_mode == ICPN_FLOWLABEL_HASH) ? meta.flow_hash[19:0]
            : ((flowlabel_mode == ICPN_FLOWLABEL_COPY) ? inner_label : 20w0);
        hdr.encap_ipv6.payload_len = 0;          // set once every header is in place
        hdr.encap_ipv6.hop_limit = hop_limit - 1;
        hdr.encap_ipv6.src = source;
        hdr.encap_ipv6.dst = first;
        meta.hop_limit_out = hop_limit - 1;
    }

    table policy_bucket {
        key = {
            meta.policy_id: exact @name("policy");
            bucket:         exact @name("bucket");
        }
        actions = {
            encap0; encap1; encap2; encap3; encap4; encap5; encap6; encap7; encap8; NoAction;
        }
        default_action = NoAction();
        size = 16384;
    }

    apply {
        meta.encap = 0;
        nbuckets = 1;
        deep_hash = 0;
        bucket = 0;
        nsegs = 0;
        sl = 0;
        first = 0;
        if (policy.apply().hit) {
            // Deep hashing: an elephant with an APN-ID hashes on the APN-ID, the rest on the
            // flow key; bucket = CRC-32 mod the bucket-table size.
            bit<32> b;
            if (meta.elephant == 1 && meta.apn_valid == 1 && deep_hash == 1) {
                if (meta.apn_id_type == ICPN_APN_ID_TYPE_128) {
                    ip6_t id128 = meta.apn_id;
                    hash(b, HashAlgorithm.crc32, 32w0, { id128 }, (bit<32>)nbuckets);
                } else if (meta.apn_id_type == ICPN_APN_ID_TYPE_64) {
                    bit<64> id64 = meta.apn_id[63:0];
                    hash(b, HashAlgorithm.crc32, 32w0, { id64 }, (bit<32>)nbuckets);
                } else {
                    bit<32> id32 = meta.apn_id[31:0];
                    hash(b, HashAlgorithm.crc32, 32w0, { id32 }, (bit<32>)nbuckets);
                }
            } else {
                // crc32(flow key) is meta.flow_hash already: the identity "hash" takes it mod n.
                hash(b, HashAlgorithm.identity, 32w0, { meta.flow_hash }, (bit<32>)nbuckets);
            }
            bucket = (bit<16>)b;
            if (policy_bucket.apply().hit) {
                meta.encap = 1;
            }
        }
        if (meta.encap == 1) {
            outer_ipv6();
            // SRH TLV carrier: the APN needs an SRH; H.Encaps.Red with one SID then gets the
            // H.Encaps one (List[0] = S1, SL = LE = 0).
            bit<1> apn_tlv = 0;
            if (meta.apn_valid == 1 && meta.apn_carrier == ICPN_APN_CARRIER_SRH_TLV) {
                apn_tlv = 1;
                if (nsegs == 0) {
                    hdr.encap_seg[0].setValid();
                    hdr.encap_seg[0].sid = first;
                    nsegs = 1;
                }
            }
            if (nsegs != 0) {
                hdr.encap_srh.setValid();
                hdr.encap_srh.next_hdr = inner_proto;
                hdr.encap_srh.len = nsegs << 1;
                hdr.encap_srh.routing_type = ICPN_SRH_ROUTING_TYPE;
                hdr.encap_srh.segments_left = sl;
                hdr.encap_srh.last_entry = nsegs - 1;
                hdr.encap_srh.flags = 0;
                hdr.encap_srh.tag = 0;
            }
            if (ifit_role == ICPN_IFIT_ROLE_HEAD) {
                ifit_head.apply(hdr, meta);
            }
            // The APN option travels in the outer HBH (or, DOH carrier, in an outer DOH before
            // the SRH): copied from the packet's HBH, or laid out from words (the mark the
            // classifier chose, or the option the packet carries in a DOH).
            if (meta.apn_valid == 1) {
                if (meta.apn_carrier == ICPN_APN_CARRIER_DOH) {
                    if (meta.apn_in_hbh == 1) {
                        hdr.encap_doh_apn = hdr.hbh_apn;
                        COPY_APN_WORDS(hdr.encap_doh_apn_word)
                    } else {
                        doh_fill.apply(hdr.encap_doh_apn, hdr.encap_doh_apn_word, meta);
                    }
                    doh_tail.apply(hdr.encap_doh_apn_tail, meta.apn_tail_n, meta.apn_tail);
                    hdr.encap_doh.setValid();
                } else if (meta.apn_carrier == ICPN_APN_CARRIER_SRH_TLV) {
                    if (meta.apn_in_hbh == 1) {
                        hdr.encap_tlv_apn = hdr.hbh_apn;
                        COPY_APN_WORDS(hdr.encap_tlv_apn_word)
                    } else {
                        tlv_fill.apply(hdr.encap_tlv_apn, hdr.encap_tlv_apn_word, meta);
                    }
                    tlv_tail.apply(hdr.encap_tlv_apn_tail, meta.apn_tail_n, meta.apn_tail);
                } else {
                    if (meta.apn_in_hbh == 1) {
                        hdr.encap_apn = hdr.hbh_apn;
                        COPY_APN_WORDS(hdr.encap_apn_word)
                    } else {
                        apn_fill.apply(hdr.encap_apn, hdr.encap_apn_word, meta);
                    }
                    apn_tail.apply(hdr.encap_apn_tail, meta.apn_tail_n, meta.apn_tail);
                    hdr.encap_hbh.setValid();
                }
            }
            if (apn_tlv == 1) {
                // type, length, the option's data; then PadN (type 4) / Pad1 to 8n octets
                hdr.encap_tlv_apn.type = meta.apn_tlv_type;
                bit<16> tlv_len = 2 + (bit<16>)hdr.encap_tlv_apn.len;
                bit<8> ne = (bit<8>)((16w0 - tlv_len) & 7);
                tlv_pad.apply(ne, hdr.encap_tlv_pad);
                if (ne >= 2) {
                    hdr.encap_tlv_pad[0].b = ICPN_SRH_TLV_PADN;
                }
                hdr.encap_srh.len = hdr.encap_srh.len + (bit<8>)((tlv_len + (bit<16>)ne) >> 3);
            }
            // Next Headers: IPv6, [HBH], [DOH], [SRH], inner.
            bit<8> nh = hdr.encap_srh.isValid() ? ICPN_IPPROTO_ROUTING : inner_proto;
            if (hdr.encap_doh.isValid()) {
                hdr.encap_doh.next_hdr = nh;
                nh = ICPN_IPPROTO_DSTOPTS;
            }
            if (hdr.encap_hbh.isValid()) {
                hdr.encap_hbh.next_hdr = nh;
                nh = ICPN_IPPROTO_HOPOPTS;
            }
            hdr.encap_ipv6.next_hdr = nh;
            hdr.ethernet.ether_type = ICPN_ETHERTYPE_IPV6;
            meta.fib_lookup = 1;
            meta.fib_vrf = 0;
            meta.fib_family = ICPN_FAMILY_IPV6;
            meta.fib_addr = first;
        }
    }
}

#endif
