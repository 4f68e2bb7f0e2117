// Deparser: every header that may be valid, in wire order. The received HBH options come out
// in the layout HbhLayout rebuilt (APN, AltMark, others, pad, IOAM, pad).
#ifndef ICPN_DEPARSER_P4
#define ICPN_DEPARSER_P4

control IcpnDeparser(packet_out packet, in headers_t hdr) {
    apply {
        packet.emit(hdr.packet_in);
        packet.emit(hdr.ethernet);
        packet.emit(hdr.pfc);
        packet.emit(hdr.pfc_pad);
        // outer headers pushed by a headend, or the IPv6 header of an IFIT report
        packet.emit(hdr.e_ipv6);
        packet.emit(hdr.e_hbh);
        packet.emit(hdr.e_apn);
        packet.emit(hdr.e_apn_w);
        packet.emit(hdr.e_altmark);
        packet.emit(hdr.e_pad_a);
        packet.emit(hdr.e_ioam);
        packet.emit(hdr.e_trace);
        packet.emit(hdr.e_ioam_n);
        packet.emit(hdr.e_gen_zero);
        packet.emit(hdr.e_gen_rec);
        packet.emit(hdr.e_pad_e);
        packet.emit(hdr.e_doh);
        packet.emit(hdr.e_doh_apn);
        packet.emit(hdr.e_doh_apn_w);
        packet.emit(hdr.e_doh_pad);
        packet.emit(hdr.e_srh);
        packet.emit(hdr.e_seg);
        packet.emit(hdr.e_tlv_apn);
        packet.emit(hdr.e_tlv_apn_w);
        packet.emit(hdr.e_tlv_pad);
        // IFIT report (its node data is the filled records of hdr.ioam_n below)
        packet.emit(hdr.r_udp);
        packet.emit(hdr.r_hdr);
        packet.emit(hdr.r_tuple);
        // the packet as received
        packet.emit(hdr.ipv6);
        packet.emit(hdr.hbh);
        packet.emit(hdr.apn);
        packet.emit(hdr.apn_w);
        packet.emit(hdr.altmark);
        packet.emit(hdr.unk0);
        packet.emit(hdr.unk1);
        packet.emit(hdr.pad_a);
        packet.emit(hdr.ioam);
        packet.emit(hdr.trace);
        packet.emit(hdr.ioam_raw);
        packet.emit(hdr.ioam_n);
        packet.emit(hdr.pad_e);
        packet.emit(hdr.n_doh);
        packet.emit(hdr.n_doh_apn);
        packet.emit(hdr.n_doh_apn_w);
        packet.emit(hdr.n_doh_pad);
        packet.emit(hdr.doh1);
        packet.emit(hdr.doh1_body);
        packet.emit(hdr.rh);
        packet.emit(hdr.seg);
        packet.emit(hdr.tlv_pad0);
        packet.emit(hdr.tlv0);
        packet.emit(hdr.tlv_pad1);
        packet.emit(hdr.tlv1);
        packet.emit(hdr.tlv_pad2);
        packet.emit(hdr.tlv2);
        packet.emit(hdr.tlv_pad3);
        packet.emit(hdr.tlv3);
        packet.emit(hdr.rh_rest);
        packet.emit(hdr.doh2);
        packet.emit(hdr.doh2_body);
        packet.emit(hdr.ipv4);
        packet.emit(hdr.ipv4_opts);
        packet.emit(hdr.in6);
        packet.emit(hdr.in4);
        packet.emit(hdr.in4_opts);
        packet.emit(hdr.l4);
        packet.emit(hdr.udp_rest);
        packet.emit(hdr.bth);
    }
}

#endif
