// IPv4 helpers: the incremental header checksum (RFC 1624), TTL decrement and CE marking that
// keep it right, and the IPv4-mapped IPv6 form every lookup and flow key uses for an address.
#ifndef ICPN_IPV4_P4
#define ICPN_IPV4_P4

#include "headers.p4"

// Maps an IPv4 address into ::ffff:a.b.c.d (the flow key's and the FIB's address form).
#define V4_MAPPED(A) ((ip6_t)(16w0xFFFF ++ (A)))

// IPv4 header checksum after one 16-bit word changed (RFC 1624 eqn. 3): a checksum that was
// wrong on arrival stays wrong by the same amount, as docs/pipeline.md asks.
bit<16> csum_replace(in bit<16> csum, in bit<16> old_word, in bit<16> new_word) {
    bit<32> s = (bit<32>)(~csum) + (bit<32>)(~old_word) + (bit<32>)new_word;
    s = (s & 0xFFFF) + (s >> 16);
    s = (s & 0xFFFF) + (s >> 16);
    return ~(s[15:0]);
}

control Ipv4DecTtl(inout ipv4_t ip) {
    apply {
        bit<16> old_word = ip.ttl ++ ip.protocol;
        ip.ttl = ip.ttl - 1;
        ip.checksum = csum_replace(ip.checksum, old_word, ip.ttl ++ ip.protocol);
    }
}

control Ipv4SetCe(inout ipv4_t ip) {
    apply {
        bit<16> old_word = ip.version ++ ip.ihl ++ ip.tos;
        ip.tos = ip.tos | ICPN_ECN_CE;
        ip.checksum = csum_replace(ip.checksum, old_word, ip.version ++ ip.ihl ++ ip.tos);
    }
}

#endif
