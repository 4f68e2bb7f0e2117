// ICPN node pipeline for BMv2 simple_switch_grpc (v1model), programmed over P4Runtime.
//
// The wire contract is ../shared/SPEC.md with the choices of docs/pipeline.md; this program
// follows docs/pipeline.md section 1 step by step (the step numbers below are its numbers).
// Limits of this data plane are listed in docs/p4.md.
//
// Build: make -C p4   (renders build/consts.p4 from pyctl/constants.py and build/codes.p4 from
// pyctl/targets/bmv2/codes.py, then runs p4c-bm2-ss).

#include <core.p4>
#include <v1model.p4>

#include "consts.p4"
#include "codes.p4"

// Each include includes what it uses, so their order here does not matter.
#include "include/headers.p4"
#include "include/ipv4.p4"
#include "include/parser.p4"
#include "include/hashing.p4"
#include "include/apn.p4"
#include "include/ifit.p4"
#include "include/srv6.p4"
#include "include/congestion.p4"
#include "include/deparser.p4"

const bit<32> INSTANCE_NORMAL = 0;
const bit<32> INSTANCE_INGRESS_CLONE = 1;
const bit<32> INSTANCE_EGRESS_CLONE = 2;
const bit<32> INSTANCE_RECIRC = 4;

control IcpnVerifyChecksum(inout headers_t hdr, inout meta_t meta) {
    apply {
        verify_checksum(hdr.ipv4.isValid(),
            { hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.tos, hdr.ipv4.total_len, hdr.ipv4.id,
              hdr.ipv4.flags, hdr.ipv4.frag_offset, hdr.ipv4.ttl, hdr.ipv4.protocol,
              hdr.ipv4.src, hdr.ipv4.dst, hdr.ipv4_opts },
            hdr.ipv4.checksum, HashAlgorithm.csum16);
    }
}

control IcpnIngress(inout headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) {
    ip6_t  source;
    bit<8> flowlabel_mode;
    bit<8> ifit_role;
    bit<1> ecn_enabled;
    mac_t  in_mac;
    // IFIT counting's arguments (ifit_counted) and the outer lengths (encap_lengths)
    bit<1>  counted;
    bit<20> counted_flowmon;
    bit<1>  counted_colour;
    bit<32> carrier;
    bit<32> plen;
    bit<16> outer;

    PfcIngress() pfc;
    PfcHold() pfc_hold;
    QueueBytesIn() queue_in;
    FlowKey() flow_key;
    SRv6Endpoint() endpoint;
    ApnClassify() apn;
    Elephant() elephant;
    Headend() headend;
    ApnInsert() apn_insert;
    // (@name: the P4Info names of the pad tables inside stay what the controller knows)
    @name("e_doh_layout") OptionsLayout() encap_doh_layout;
    @name("n_doh_layout") OptionsLayout() inserted_doh_layout;
    IoamCheck() ioam_check;
    IfitStrip() ifit_strip;
    IfitCount() ifit_count;
    IfitSlot() ifit_slot;
    @name("n_hbh_layout") OptionsLayout() hbh_layout;
    @name("e_hbh_layout") EncapHbhLayout() encap_hbh_layout;
    Ipv4DecTtl() ipv4_ttl;
    Ipv4DecTtl() inner_ipv4_ttl;

    // What IFIT counts of the packet leaving (docs/pipeline.md 4): after an encapsulation the
    // head's own AltMark; else the received one, at a transit node or a tail; carrier = the
    // IPv6 length of that header's packet, as it leaves (before a tail's strip) or,
    // decapsulated, as it came. One action: each if of a control's body is a table in BMv2.
    action ifit_counted() {
        bool head = meta.encap == 1;
        counted = head ? meta.ifit_head
                  : ((meta.altmark_in == 1 && (meta.decap == 0 || ifit_role == ICPN_IFIT_ROLE_TAIL))
                     ? 1w1 : 1w0);
        counted_flowmon = head ? meta.flowmon_id : meta.altmark_in_flowmon;
        counted_colour = head ? meta.ifit_l : meta.altmark_in_l;
        carrier = head ? 40 + (bit<32>)hdr.encap_ipv6.payload_len
                  : ((meta.decap == 0)
                     ? 40 + (bit<32>)hdr.ipv6.payload_len + (bit<32>)meta.strip_bytes
                     : meta.altmark_in_len);
    }

    // The outer IPv6 Payload Length: `outer` (its HBH and DOH), the SRH, then the inner packet
    // (`plen`, an inner IPv6 header's payload, plus its own 40 octets; or an IPv4 packet's
    // total length), summed in 32 bits.
    action encap_lengths() {
        bit<32> srh = hdr.encap_srh.isValid() ? ((bit<32>)hdr.encap_srh.len + 1) * 8 : 0;
        plen = (bit<32>)outer + srh
               + (hdr.ipv6.isValid() ? 40 + plen : (bit<32>)hdr.ipv4.total_len);
        hdr.encap_ipv6.payload_len = (bit<16>)plen;
    }

    action drop(bit<16> reason) {
        meta.drop_reason = reason;
    }

    // Test mode: the controller supplies the time and the random draw of PacketContext, and
    // the switch reports drops to the CPU port with their reason.
    action set_context(bit<48> time_us, bit<32> rand32) {
        meta.test_mode = 1;
        meta.now_us = time_us;
        meta.rand32 = rand32;
    }

    table test_ctx {
        actions = { set_context; NoAction; }
        default_action = NoAction();
        size = 1;
    }

    action set_node(ip6_t source_addr, bit<8> flowlabel, bit<8> ifit, bit<8> apn_carrier,
                    bit<8> apn_type, bit<8> apn_tlv_type, bit<1> apn_reads, bit<1> ecn) {
        ecn_enabled = ecn;
        meta.apn_reads = apn_reads;
        meta.apn_carrier = apn_carrier;
        meta.apn_type = apn_type;
        meta.apn_tlv_type = apn_tlv_type;
        source = source_addr;
        flowlabel_mode = flowlabel;
        ifit_role = ifit;
    }

    table node_cfg {
        actions = { set_node; NoAction; }
        default_action = NoAction();
        size = 1;
    }

    action set_in_mac(mac_t mac) {
        in_mac = mac;
    }

    // The MAC of each port, for the not-for-me check.
    table port_in {
        key = { meta.in_port: exact @name("port"); }
        actions = { set_in_mac; NoAction; }
        default_action = NoAction();
        size = 512;
    }

    action set_nexthop(port_t port, mac_t dmac) {
        meta.out_port = (bit<16>)port;
        meta.nh_mac = dmac;
        meta.routed = 1;
    }

    // FIB: (table, family, address); IPv4 as ::ffff:a.b.c.d/(96 + prefix length).
    table fib {
        key = {
            meta.fib_vrf:    exact @name("vrf");
            meta.fib_family: exact @name("family");
            meta.fib_addr:   lpm   @name("addr");
        }
        actions = { set_nexthop; NoAction; }
        default_action = NoAction();
        size = 4096;
    }

    apply {
        source = 0;
        flowlabel_mode = ICPN_FLOWLABEL_HASH;
        ifit_role = ICPN_IFIT_ROLE_NONE;
        ecn_enabled = 0;
        // Another pass of a packet whose End wrote a local SID (meta.sid_chain): in_port, the
        // arrival time, the PFC priority and the pass count come with it; the steps done once
        // per frame (not-for-me, PFC in / out, IFIT counting) are not done again.
        bool again = sm.instance_type == INSTANCE_RECIRC;
        if (!again) {
            meta.in_port = (bit<16>)sm.ingress_port;
            meta.now_us = sm.ingress_global_timestamp;
        }
        meta.frame_len = sm.packet_length;
        random(meta.rand32, 32w0, 32w0xFFFFFFFF);
        if (hdr.packet_out.isValid()) {
            meta.frame_len = sm.packet_length - 6;
            if (hdr.packet_out.mode == ICPN_PKTOUT_DIRECT) {
                sm.egress_spec = (port_t)hdr.packet_out.egress_port;
                hdr.packet_out.setInvalid();
                meta.bypass = 1;
                exit;
            }
            meta.in_port = hdr.packet_out.in_port;
            hdr.packet_out.setInvalid();
        }
        test_ctx.apply();
        node_cfg.apply();

        // 0. A router takes only frames to its port's MAC (and PFC frames to their group MAC).
        in_mac = 0;
        port_in.apply();
        if (!hdr.ethernet.isValid()) {
            drop(ICPN_DROP_NOT_IP);
        } else if (again) {
            // (the frame was taken on its first pass)
        } else if (hdr.ethernet.dst != in_mac
                   && !(hdr.ethernet.ether_type == ICPN_PFC_ETHERTYPE
                        && hdr.ethernet.dst == ICPN_PFC_DST_MAC)) {
            drop(ICPN_DROP_NOT_FOR_ME);
        }

        // 1-2. PFC frames in (consumed), PFC frames out for a full ingress queue.
        if (meta.drop_reason == 0 && !again) {
            pfc.apply(hdr, meta);
        }

        // 3. Parse errors and validation. The IPv6 header comes first (RFC 8200 3: version, a
        // Payload Length within the frame), then its extension headers: one the parser could
        // not finish is bad-exthdr, or bad-srh for a routing header, whatever its type.
        bit<1> tlv_error = 0;
        if (meta.drop_reason == 0 && hdr.ipv6.isValid()
            && (hdr.ipv6.version != 6 || (bit<32>)hdr.ipv6.payload_len + 54 > meta.frame_len)) {
            drop(ICPN_DROP_BAD_IPV6);
        } else if (meta.drop_reason == 0 && sm.parser_error == error.ExtUnheld) {
            // docs/pipeline.md 1 step 3: a HBH anywhere but first, or a fifth extension header,
            // is bad-exthdr; other orders are valid but not held by this parser.
            if (meta.l4_proto == ICPN_IPPROTO_HOPOPTS
                || (hdr.hbh.isValid() && hdr.doh1.isValid() && hdr.rh.isValid()
                    && hdr.doh2.isValid())) {
                drop(ICPN_DROP_BAD_EXTHDR);
            } else {
                drop(ICPN_DROP_P4_LIMIT);
            }
        } else if (meta.drop_reason == 0 && sm.parser_error == error.HbhUnheld) {
            drop(ICPN_DROP_P4_LIMIT);
        } else if (meta.drop_reason == 0 && sm.parser_error == error.BadSrhTlv) {
            tlv_error = 1;    // only a segment endpoint looks at the TLVs
        } else if (meta.drop_reason == 0 && sm.parser_error != error.NoError) {
            bit<8> stage = meta.parse_stage;
            if (stage >= STAGE_INNER) {
                // an incomplete inner packet or transport header is not an error here
            } else if (stage >= STAGE_EXT2) {
                drop(ICPN_DROP_BAD_EXTHDR);
            } else if (stage >= STAGE_RH) {
                drop(ICPN_DROP_BAD_SRH);
            } else if (stage >= STAGE_EXTHDR) {
                drop(ICPN_DROP_BAD_EXTHDR);
            } else if (stage >= STAGE_IPV4) {
                drop(ICPN_DROP_BAD_IPV4);
            } else if (stage >= STAGE_IPV6) {
                drop(ICPN_DROP_BAD_IPV6);
            } else {
                drop(ICPN_DROP_NOT_IP);
            }
        }
        if (meta.drop_reason == 0) {
            if (hdr.ipv6.isValid()) {
                // Each extension header must end within the Payload Length (EXT_ENDS_WITHIN).
                bit<32> plen6 = (bit<32>)hdr.ipv6.payload_len;
                bit<32> ext_end = 0;
                bit<16> overrun = 0;
                EXT_ENDS_WITHIN(hdr.hbh.isValid(), (bit<32>)meta.hbh_len_in, plen6, ext_end,
                                overrun, ICPN_DROP_BAD_EXTHDR)
                EXT_ENDS_WITHIN(hdr.doh1.isValid(), ((bit<32>)hdr.doh1.len + 1) * 8, plen6,
                                ext_end, overrun, ICPN_DROP_BAD_EXTHDR)
                EXT_ENDS_WITHIN(hdr.rh.isValid(), ((bit<32>)hdr.rh.len + 1) * 8, plen6, ext_end,
                                overrun, ICPN_DROP_BAD_SRH)
                EXT_ENDS_WITHIN(hdr.doh2.isValid(), ((bit<32>)hdr.doh2.len + 1) * 8, plen6,
                                ext_end, overrun, ICPN_DROP_BAD_EXTHDR)
                if (overrun != 0) {
                    drop(overrun);
                } else if (!again && (hdr.ipv6.src[127:118] == 0x3FA
                                      || hdr.ipv6.dst[127:118] == 0x3FA)) {
                    drop(ICPN_DROP_LINK_LOCAL);
                }
            } else if (hdr.ipv4.isValid()) {
                // RFC 1812 5.2.2: a router checks the header checksum; IHL*4 <= total length.
                if ((bit<32>)hdr.ipv4.total_len + 14 > meta.frame_len
                    || (bit<16>)hdr.ipv4.ihl * 4 > hdr.ipv4.total_len
                    || sm.checksum_error == 1) {
                    drop(ICPN_DROP_BAD_IPV4);
                } else if (hdr.ipv4.src[31:16] == 0xA9FE || hdr.ipv4.dst[31:16] == 0xA9FE) {
                    drop(ICPN_DROP_LINK_LOCAL);
                }
            } else {
                drop(ICPN_DROP_NOT_IP);
            }
        }

        // The tail acts on a usable trace (decapsulation removes the outer HBH before it acts).
        bit<1> tail = 0;
        if (meta.drop_reason == 0) {
            flow_key.apply(hdr, meta, true);
            if (hdr.altmark.isValid()) {
                meta.altmark_in = 1;
                meta.altmark_in_flowmon = hdr.altmark.flowmon_id;
                meta.altmark_in_l = hdr.altmark.l;
                meta.altmark_in_len = 40 + (bit<32>)hdr.ipv6.payload_len;
            }
            if (ifit_role != ICPN_IFIT_ROLE_NONE && hdr.trace.isValid()) {
                ioam_check.apply(hdr.trace, meta);
                if (ifit_role == ICPN_IFIT_ROLE_TAIL && meta.ioam_usable == 1) {
                    tail = 1;
                }
            }
            // 4. My-SID.
            if (hdr.ipv6.isValid()) {
                endpoint.apply(hdr, meta, tlv_error);
            }
        }

        if (meta.drop_reason == 0 && meta.behaviour == 0) {
            // 5. Headend: APN-ID, elephants, policy, encapsulation (and IFIT head).
            apn.apply(hdr, meta);
            elephant.apply(meta);
            headend.apply(hdr, meta, source, flowlabel_mode, ifit_role);
            // Without encapsulation: an APN-ID from the QP map or a classifier goes into the
            // packet itself (a carried option stays as it is).
            if (meta.drop_reason == 0 && meta.encap == 0 && meta.apn_valid == 1
                && meta.apn_from_pkt == 0 && hdr.ipv6.isValid()) {
                apn_insert.apply(hdr, meta);
            }
            if (meta.encap == 0) {
                // 6. Transit forwarding on the destination.
                meta.fib_lookup = 1;
                meta.fib_vrf = 0;
                if (hdr.ipv6.isValid()) {
                    meta.fib_family = ICPN_FAMILY_IPV6;
                    meta.fib_addr = hdr.ipv6.dst;
                } else {
                    meta.fib_family = ICPN_FAMILY_IPV4;
                    meta.fib_addr = V4_MAPPED(hdr.ipv4.dst);
                }
            }
            meta.hl_check = 1;
        }

        if (meta.drop_reason == 0 && meta.fib_lookup == 1) {
            fib.apply();
            if (meta.routed == 0) {
                drop(ICPN_DROP_NO_ROUTE);
            }
        }

        // A decapsulated packet: its own hop limit / TTL, after the lookup (docs/pipeline.md 2).
        if (meta.drop_reason == 0 && meta.decap == 1) {
            if (hdr.inner_ipv6.isValid()) {
                if (hdr.inner_ipv6.hop_limit <= 1) {
                    drop(ICPN_DROP_HOP_LIMIT);
                } else {
                    hdr.inner_ipv6.hop_limit = hdr.inner_ipv6.hop_limit - 1;
                }
            } else if (hdr.inner_ipv4.ttl <= 1) {
                drop(ICPN_DROP_HOP_LIMIT);
            } else {
                inner_ipv4_ttl.apply(hdr.inner_ipv4);
            }
        }

        if (meta.drop_reason == 0 && meta.hl_check == 1) {
            // Transit decrements the hop limit / TTL; a headend's outer header already has
            // the received one minus one.
            if (hdr.ipv6.isValid()) {
                if (hdr.ipv6.hop_limit <= 1) {
                    drop(ICPN_DROP_HOP_LIMIT);
                } else if (meta.encap == 0) {
                    hdr.ipv6.hop_limit = hdr.ipv6.hop_limit - 1;
                    meta.hop_limit_out = hdr.ipv6.hop_limit;
                }
            } else {
                if (hdr.ipv4.ttl <= 1) {
                    drop(ICPN_DROP_HOP_LIMIT);
                } else if (meta.encap == 0) {
                    ipv4_ttl.apply(hdr.ipv4);
                }
            }
        }

        // IFIT tail: the report is built from an I2E clone; a tail that does not decapsulate
        // reports the packet as it leaves and removes the IFIT options itself. (A packet that goes
        // on to another local SID is not leaving yet: its last pass acts.)
        if (meta.drop_reason == 0 && tail == 1 && meta.sid_chain == 0) {
            meta.report = 1;
            if (meta.decap == 0) {
                meta.report_outer = 1;
                meta.hbh_stripped = 1;
                ifit_strip.apply(hdr, meta);
            }
        }

        // (An encapsulated packet's no-route / hop-limit came from step 6, after the
        // encapsulation where the contract finds too-big: too-big is still looked for.)
        if (meta.drop_reason == 0
            || (meta.encap == 1 && (meta.drop_reason == ICPN_DROP_NO_ROUTE
                                    || meta.drop_reason == ICPN_DROP_HOP_LIMIT))) {
            // Lengths, summed in 32 bits: an insertion or encapsulation past a Payload Length of
            // 65535 is too-big (no wrap).
            plen = hdr.ipv6.isValid() ? (bit<32>)hdr.ipv6.payload_len : 0;
            // A received HBH leaves as it came (its options kept in order, hbh_pre / hbh_post);
            // one a tail stripped of its IFIT options, or one this node inserted, is laid out.
            if (hdr.hbh.isValid() && (meta.hbh_stripped == 1 || meta.hbh_len_in == 0)) {
                bit<16> hbh_total;
                hbh_layout.apply(hdr.hbh, hdr.inserted_apn, meta.hbh_kept, hdr.hbh_pad_end,
                                 hbh_total);
                plen = plen + (bit<32>)hbh_total - (bit<32>)meta.hbh_len_in;
                hdr.ipv6.payload_len = (bit<16>)plen;
                if (meta.hbh_stripped == 1) {
                    meta.strip_bytes = meta.hbh_len_in - hbh_total;
                }
            }
            if (hdr.inserted_doh.isValid()) {
                bit<16> doh_total;
                inserted_doh_layout.apply(hdr.inserted_doh, hdr.inserted_doh_apn, 0,
                                          hdr.inserted_doh_pad, doh_total);
                plen = plen + (bit<32>)doh_total;
                hdr.ipv6.payload_len = (bit<16>)plen;
            }
            if (hdr.encap_ipv6.isValid()) {
                outer = 0;
                if (hdr.encap_hbh.isValid()) {
                    encap_hbh_layout.apply(hdr.encap_hbh, hdr.encap_apn, hdr.encap_altmark,
                                           hdr.encap_ioam, hdr.encap_hbh_pad_align,
                                           hdr.encap_hbh_pad_end, outer);
                }
                if (hdr.encap_doh.isValid()) {
                    bit<16> doh_total;
                    encap_doh_layout.apply(hdr.encap_doh, hdr.encap_doh_apn, 0,
                                           hdr.encap_doh_pad, doh_total);
                    outer = outer + doh_total;
                }
                encap_lengths();
            }
            if (plen > 0xFFFF) {
                drop(ICPN_DROP_TOO_BIG);
            }
        }

        // IFIT counting at step 7, as the packet leaves (docs/pipeline.md 4): the AltMark of
        // its outer header -- the head's own after an encapsulation, none after another node's;
        // a decapsulated outer header's at a tail only. A packet dropped before, or going on to
        // another local SID of this node, is not counted (yet); one held by PFC (step 8) is.
        // Bytes: the IPv6 length of that header's packet, as it leaves (before a tail's strip)
        // or, decapsulated, as it came.
        if (meta.drop_reason == 0 && meta.sid_chain == 0) {
            if (ifit_role != ICPN_IFIT_ROLE_NONE) {
                ifit_counted();
                if (counted == 1) {
                    bit<1> taken;
                    ifit_slot.apply(counted_flowmon, taken);
                    if (taken == 1) {
                        drop(ICPN_DROP_P4_LIMIT);   // another FlowMonID's counter slot
                    } else {
                        ifit_count.apply(((bit<32>)counted_flowmon % ICPN_IFIT_COUNTER_FLOWS) * 2
                                         + (bit<32>)counted_colour, carrier);
                    }
                }
            }
        }
        if (meta.drop_reason == 0 && meta.sid_chain == 0) {
            // 8. PFC: a packet for a paused (port, priority) is held (a tail still reports it).
            pfc_hold.apply(meta);
        }

        if (meta.drop_reason == 0) {
            // The frame as it will leave, computed once: egress changes no length (IOAM
            // stamps space the head reserved), so ECN's byte count and the egress truncation
            // read the same figure.
            meta.out_len = 0;
            if (hdr.encap_ipv6.isValid()) {
                meta.out_len = 54 + (bit<32>)hdr.encap_ipv6.payload_len;
            } else if (hdr.ipv6.isValid()) {
                meta.out_len = 54 + (bit<32>)hdr.ipv6.payload_len;
            } else if (hdr.ipv4.isValid()) {
                meta.out_len = 14 + (bit<32>)hdr.ipv4.total_len;
            } else if (hdr.inner_ipv6.isValid()) {
                meta.out_len = 54 + (bit<32>)hdr.inner_ipv6.payload_len;
            } else if (hdr.inner_ipv4.isValid()) {
                meta.out_len = 14 + (bit<32>)hdr.inner_ipv4.total_len;
            }
            sm.egress_spec = (port_t)meta.out_port;
            if (meta.sid_chain == 1) {
                sm.egress_spec = (port_t)meta.in_port;   // recirculated from egress, never sent
            } else if (ecn_enabled == 1 && meta.test_mode == 0) {
                // ECN's queue depth in bytes: the frame as it will leave (headers pushed).
                queue_in.apply(meta, meta.out_port, meta.out_len);
            }
            if (meta.report == 1) {
                meta.clone_kind = ICPN_CLONE_KIND_REPORT;
                clone_preserving_field_list(CloneType.I2E, ICPN_REPORT_SESSION,
                                            ICPN_FIELD_LIST_CLONE);
            } else if (meta.pfc_emit == 1) {
                meta.clone_kind = ICPN_CLONE_KIND_PFC;
                clone_preserving_field_list(CloneType.I2E,
                                            ICPN_PFC_SESSION_BASE + (bit<32>)meta.in_port,
                                            ICPN_FIELD_LIST_CLONE);
            }
        } else {
            if (meta.report == 1 && meta.drop_reason == ICPN_DROP_PFC_HELD) {
                meta.clone_kind = ICPN_CLONE_KIND_REPORT;
                clone_preserving_field_list(CloneType.I2E, ICPN_REPORT_SESSION,
                                            ICPN_FIELD_LIST_CLONE);
            } else if (meta.pfc_emit == 1) {
                meta.clone_kind = ICPN_CLONE_KIND_PFC;
                clone_preserving_field_list(CloneType.I2E,
                                            ICPN_PFC_SESSION_BASE + (bit<32>)meta.in_port,
                                            ICPN_FIELD_LIST_CLONE);
            }
            if (meta.test_mode == 1) {
                sm.egress_spec = ICPN_CPU_PORT;
                hdr.packet_in.setValid();
                hdr.packet_in.ingress_port = meta.in_port;
                hdr.packet_in.reason = meta.drop_reason;
            } else {
                mark_to_drop(sm);
            }
        }
    }
}

control IcpnEgress(inout headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) {
    bit<24> node_id;
    bit<8>  ifit_role;
    bit<1>  ecn_enabled;
    ip6_t   source;
    ip6_t   collector;
    bit<16> collector_port;
    mac_t   collector_mac;
    mac_t   src_mac;
    bit<16> qd_port;
    bit<32> qdepth;
    bit<32> qbytes;

    FlowKey() report_key;
    IoamRecord() record_head;
    IoamRecord() record_transit;
    IoamRecord() record_tail;
    IoamStampHead() stamp_head;
    IoamStamp() stamp_transit;
    IoamStamp() stamp_tail;
    IfitReport() ifit_report;
    PfcFrame() pfc_frame;
    QueueBytesOut() queue_out;
    Ecn() ecn;

    action set_egress_node(bit<24> node, bit<8> ifit, bit<1> ecn_on, ip6_t source_addr,
                ip6_t collector_addr, bit<16> report_port, mac_t report_dmac) {
        node_id = node;
        ifit_role = ifit;
        ecn_enabled = ecn_on;
        source = source_addr;
        collector = collector_addr;
        collector_port = report_port;
        collector_mac = report_dmac;
    }

    table egress_cfg {
        actions = { set_egress_node; NoAction; }
        default_action = NoAction();
        size = 1;
    }

    action set_port_mac(mac_t mac) {
        src_mac = mac;
    }

    table port_mac {
        key = { sm.egress_port: exact @name("port"); }
        actions = { set_port_mac; NoAction; }
        default_action = NoAction();
        size = 512;
    }

    action set_qdepth(bit<32> packets, bit<32> bytes) {
        qdepth = packets;
        qbytes = bytes;
    }

    // Test mode: PacketContext.egress_queue_packets (IOAM) and egress_queue_bytes (ECN) (no
    // entry: 0).
    table test_qdepth {
        key = { qd_port: exact @name("port"); }
        actions = { set_qdepth; NoAction; }
        default_action = NoAction();
        size = 512;
    }

    apply {
        node_id = 0;
        ifit_role = ICPN_IFIT_ROLE_NONE;
        ecn_enabled = 0;
        source = 0;
        collector = 0;
        collector_port = ICPN_IFIT_REPORT_PORT;
        collector_mac = 0;
        src_mac = 0;
        if (meta.bypass == 1) {
            exit;
        }
        if (meta.sid_chain == 1) {
            // The deparsed packet goes through ingress again for the local SID it is sent to.
            recirculate_preserving_field_list(ICPN_FIELD_LIST_RECIRC);
            exit;
        }
        queue_out.apply(meta, (bit<16>)sm.egress_port);
        egress_cfg.apply();
        port_mac.apply();
        ioam_record_t rec;     // this node's IOAM record
        bool is_clone = sm.instance_type == INSTANCE_INGRESS_CLONE
                        || sm.instance_type == INSTANCE_EGRESS_CLONE;
        // Queue depth of the data packet's egress port (a report clone's is the port the
        // forwarded packet took: the last depth seen there).
        qd_port = (bit<16>)sm.egress_port;
        qdepth = (bit<32>)sm.enq_qdepth;
        qbytes = meta.queue_bytes;
        if (is_clone) {
            qd_port = meta.out_port;
            last_qdepth.read(qdepth, (bit<32>)meta.out_port & 511);
        }
        if (meta.test_mode == 1) {
            qdepth = 0;
            qbytes = 0;
            test_qdepth.apply();
        }
        if (is_clone) {
            if (meta.clone_kind == ICPN_CLONE_KIND_PFC) {
                pfc_frame.apply(hdr, meta, src_mac);
            } else if (meta.clone_kind == ICPN_CLONE_KIND_REPORT) {
                // The tail's own record, with what the forwarded packet saw.
                report_key.apply(hdr, meta, false);
                record_tail.apply(meta.hop_limit_out, node_id, meta.in_port, meta.out_port,
                                  meta.now_us, qdepth, rec);
                stamp_tail.apply(hdr.trace, hdr.ioam_record, meta.ioam_node_len,
                                 meta.ioam_default, meta.ioam_sel, rec);
                ifit_report.apply(hdr, meta, source, collector, collector_port, node_id,
                                  collector_mac);
                hdr.ethernet.src = src_mac;
            } else if (meta.clone_kind == ICPN_CLONE_KIND_OVERSIZE) {
                hdr.packet_in.setValid();
                hdr.packet_in.ingress_port = meta.in_port;
                hdr.packet_in.egress_port = meta.out_port;
                hdr.packet_in.reason = 0;
                truncate(ICPN_PACKET_IN_LEN + meta.out_len);
            }
        } else if (sm.egress_port != ICPN_CPU_PORT) {
            last_qdepth.write((bit<32>)sm.egress_port, (bit<32>)sm.enq_qdepth);

            // 7. IOAM stamping in the outermost HBH.
            if (ifit_role != ICPN_IFIT_ROLE_NONE) {
                if (hdr.encap_trace.isValid()) {
                    record_head.apply(hdr.encap_ipv6.hop_limit, node_id, meta.in_port,
                                      (bit<16>)sm.egress_port, meta.now_us, qdepth, rec);
                    if (meta.ifit_gen == 1) {
                        GEN_WORD(0) GEN_WORD(1) GEN_WORD(2) GEN_WORD(3) GEN_WORD(4)
                        GEN_WORD(5) GEN_WORD(6) GEN_WORD(7) GEN_WORD(8) GEN_WORD(9)
                        GEN_WORD(10) GEN_WORD(11) GEN_WORD(12) GEN_WORD(13) GEN_WORD(14)
                        GEN_WORD(15) GEN_WORD(16) GEN_WORD(17) GEN_WORD(18) GEN_WORD(19)
                        GEN_WORD(20) GEN_WORD(21) GEN_WORD(22) GEN_WORD(23) GEN_WORD(24)
                        hdr.encap_trace.remaining_len = hdr.encap_trace.remaining_len
                                                        - (bit<7>)hdr.encap_trace.node_len;
                    } else {
                        stamp_head.apply(hdr.encap_trace, hdr.encap_ioam_own, rec);
                    }
                } else if (meta.ioam_usable == 1 && hdr.trace.isValid() && meta.encap == 0) {
                    // (an encapsulated packet's trace is inside: the outer header has none)
                    record_transit.apply(hdr.ipv6.hop_limit, node_id, meta.in_port,
                                         (bit<16>)sm.egress_port, meta.now_us, qdepth, rec);
                    stamp_transit.apply(hdr.trace, hdr.ioam_record, meta.ioam_node_len,
                                        meta.ioam_default, meta.ioam_sel, rec);
                }
            }

            // 8. ECN on the outermost header, then the Ethernet rewrite.
            if (ecn_enabled == 1) {
                ecn.apply(hdr, meta, qbytes);
            }
            hdr.ethernet.src = src_mac;
            hdr.ethernet.dst = meta.nh_mac;
            // The frame carries exactly the IP packet (meta.out_len, from ingress):
            // link-layer padding goes.
            if (meta.out_len != 0) {
                truncate(meta.out_len);
            }
            // Test mode: a frame longer than the test link carries (an IPv6 packet of up to
            // 65575 octets, the link's MTU being at most 65535) reaches the controller instead,
            // naming its port; this copy is not sent.
            if (meta.test_mode == 1 && meta.out_len > ICPN_TEST_LINK_MAX_FRAME) {
                meta.clone_kind = ICPN_CLONE_KIND_OVERSIZE;
                clone_preserving_field_list(CloneType.E2E, ICPN_CPU_SESSION,
                                            ICPN_FIELD_LIST_CLONE);
                mark_to_drop(sm);
            }

            // A tail that sent its report by I2E clone sends a PFC frame by E2E clone.
            if (meta.report == 1 && meta.pfc_emit == 1) {
                meta.clone_kind = ICPN_CLONE_KIND_PFC;
                clone_preserving_field_list(CloneType.E2E,
                                            ICPN_PFC_SESSION_BASE + (bit<32>)meta.in_port,
                                            ICPN_FIELD_LIST_CLONE);
            }
        }
    }
}


#define R(K) hdr.ioam_record[K]
#define IOAM_AREA_LIST                                                                          \
    R(0),  R(1),  R(2),  R(3),  R(4),  R(5),  R(6),  R(7),  R(8),  R(9),  R(10), R(11), R(12), \
    R(13), R(14), R(15), R(16), R(17), R(18), R(19), R(20), R(21), R(22), R(23), R(24),        \
    hdr.ioam_filled

control IcpnComputeChecksum(inout headers_t hdr, inout meta_t meta) {
    apply {
        // IFIT report: UDP checksum over the IPv6 pseudo-header, the UDP header and the
        // report (headers that are not valid take no part in the sum).
        update_checksum(hdr.report_udp.isValid(),
            { hdr.encap_ipv6.src, hdr.encap_ipv6.dst, 16w0, hdr.report_udp.len, 24w0, 8w17,
              hdr.report_udp.sport, hdr.report_udp.dport, hdr.report_udp.len, 16w0,
              hdr.report_hdr, hdr.report_tuple,
              IOAM_AREA_LIST },
            hdr.report_udp.checksum, HashAlgorithm.csum16);
    }
}

V1Switch(IcpnParser(), IcpnVerifyChecksum(), IcpnIngress(), IcpnEgress(), IcpnComputeChecksum(),
         IcpnDeparser()) main;
