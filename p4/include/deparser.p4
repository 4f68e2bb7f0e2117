// Deparser: every header that may be valid, in wire order. The received HBH's options come out
// in the order they came (hbh_pre, the IOAM option, hbh_post, an unwalked rest).
#ifndef ICPN_DEPARSER_P4
#define ICPN_DEPARSER_P4

#include <core.p4>

#include "headers.p4"

control IcpnDeparser(packet_out packet, in headers_t hdr) {
    apply {
        packet.emit(hdr.packet_in);
        packet.emit(hdr.ethernet);
        packet.emit(hdr.pfc);
        packet.emit(hdr.pfc_pad);
        // outer headers pushed by a headend, or the IPv6 header of an IFIT report
        packet.emit(hdr.encap_ipv6);
        packet.emit(hdr.encap_hbh);
        packet.emit(hdr.encap_apn);
        packet.emit(hdr.encap_apn_word);
        packet.emit(hdr.encap_apn_tail);
        packet.emit(hdr.encap_altmark);
        packet.emit(hdr.encap_hbh_pad_align);
        packet.emit(hdr.encap_ioam);
        packet.emit(hdr.encap_trace);
        packet.emit(hdr.encap_ioam_empty4);
        packet.emit(hdr.encap_ioam_empty2);
        packet.emit(hdr.encap_ioam_empty1);
        packet.emit(hdr.encap_ioam_own);
        packet.emit(hdr.encap_gen_empty);
        packet.emit(hdr.encap_gen_record);
        packet.emit(hdr.encap_hbh_pad_end);
        packet.emit(hdr.encap_doh);
        packet.emit(hdr.encap_doh_apn);
        packet.emit(hdr.encap_doh_apn_word);
        packet.emit(hdr.encap_doh_apn_tail);
        packet.emit(hdr.encap_doh_pad);
        packet.emit(hdr.encap_srh);
        packet.emit(hdr.encap_seg);
        packet.emit(hdr.encap_tlv_apn);
        packet.emit(hdr.encap_tlv_apn_word);
        packet.emit(hdr.encap_tlv_apn_tail);
        packet.emit(hdr.encap_tlv_pad);
        // IFIT report (its node data: hdr.ioam_record and hdr.ioam_filled below)
        packet.emit(hdr.report_udp);
        packet.emit(hdr.report_hdr);
        packet.emit(hdr.report_tuple);
        // the packet as received
        packet.emit(hdr.ipv6);
        packet.emit(hdr.hbh);
        packet.emit(hdr.inserted_apn);
        packet.emit(hdr.inserted_apn_word);
        packet.emit(hdr.hbh_pre);
        packet.emit(hdr.ioam);
        packet.emit(hdr.trace);
        packet.emit(hdr.ioam_raw);
        packet.emit(hdr.ioam_empty);
        packet.emit(hdr.ioam_record);
        packet.emit(hdr.ioam_filled);
        packet.emit(hdr.hbh_post);
        packet.emit(hdr.hbh_rest);
        packet.emit(hdr.hbh_pad_end);
        packet.emit(hdr.inserted_doh);
        packet.emit(hdr.inserted_doh_apn);
        packet.emit(hdr.inserted_doh_apn_word);
        packet.emit(hdr.inserted_doh_pad);
        packet.emit(hdr.doh1);
        packet.emit(hdr.doh1_pre);
        packet.emit(hdr.doh1_body);
        packet.emit(hdr.rh);
        packet.emit(hdr.seg);
        packet.emit(hdr.tlv);
        packet.emit(hdr.rh_rest);
        packet.emit(hdr.doh2);
        packet.emit(hdr.doh2_pre);
        packet.emit(hdr.doh2_body);
        packet.emit(hdr.ipv4);
        packet.emit(hdr.ipv4_opts);
        packet.emit(hdr.inner_ipv6);
        packet.emit(hdr.inner_ext0);
        packet.emit(hdr.inner_ext1);
        packet.emit(hdr.inner_ext2);
        packet.emit(hdr.inner_ext3);
        packet.emit(hdr.inner_ipv4);
        packet.emit(hdr.inner_ipv4_opts);
        packet.emit(hdr.l4);
        packet.emit(hdr.udp_rest);
        packet.emit(hdr.bth);
    }
}

#endif
