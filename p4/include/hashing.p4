// Flow key, CRC-32 flow hash, count-min elephant detection (docs/pipeline.md section 3).
// CRC-32 is v1model's HashAlgorithm.crc32 (reflected IEEE, init and xor-out 0xFFFFFFFF): the
// same value as zlib.crc32 over the same octets, which is what pyctl.model.hashing computes.
#ifndef ICPN_HASHING_P4
#define ICPN_HASHING_P4

#include <core.p4>
#include <v1model.p4>

#include "headers.p4"
#include "ipv4.p4"

// floor(t / d) for t < 2^48 and 0 < d < 2^32: (t * ceil(2^80 / d)) >> 80 (exact; the controller
// computes the multiplier, see pyctl/targets/bmv2/writer.py magic()).
#define MAGIC_DIV(T, M) ((bit<48>)(((bit<160>)(T) * (bit<160>)(M)) >> ICPN_MAGIC_SHIFT_TIME))

// The flow key: src(16) dst(16) proto(1) then sport(2) dport(2), or 0x00 QP(3) for RoCEv2; also
// the DSCP and IP length the classifiers and the sketch use. `received`: the key of the packet
// as received, which a headend encapsulates (docs/pipeline.md 3): a tunnel's own addresses and
// protocol (41 / 4), no ports. Otherwise the innermost packet's (an IFIT report's 5-tuple).
control FlowKey(in headers_t hdr, inout meta_t meta, in bool received) {
    apply {
        bool tunnel = hdr.inner_ipv6.isValid() || hdr.inner_ipv4.isValid();
        meta.k_proto = meta.l4_proto;
        if (received && hdr.inner_ipv6.isValid()) {
            meta.k_proto = ICPN_IPPROTO_IPV6;
        } else if (received && hdr.inner_ipv4.isValid()) {
            meta.k_proto = ICPN_IPPROTO_IPIP;
        }
        if (!received && hdr.inner_ipv6.isValid()) {
            meta.k_family = 6;
            meta.k_src = hdr.inner_ipv6.src;
            meta.k_dst = hdr.inner_ipv6.dst;
            meta.dscp = hdr.inner_ipv6.tc[7:2];
            meta.ip_len = (bit<32>)hdr.inner_ipv6.payload_len + 40;
        } else if (!received && hdr.inner_ipv4.isValid()) {
            meta.k_family = 4;
            meta.k_src = V4_MAPPED(hdr.inner_ipv4.src);
            meta.k_dst = V4_MAPPED(hdr.inner_ipv4.dst);
            meta.dscp = hdr.inner_ipv4.tos[7:2];
            meta.ip_len = (bit<32>)hdr.inner_ipv4.total_len;
        } else if (hdr.ipv6.isValid()) {
            meta.k_family = 6;
            meta.k_src = hdr.ipv6.src;
            meta.k_dst = hdr.ipv6.dst;
            meta.dscp = hdr.ipv6.tc[7:2];
            meta.ip_len = (bit<32>)hdr.ipv6.payload_len + 40;
        } else {
            meta.k_family = 4;
            meta.k_src = V4_MAPPED(hdr.ipv4.src);
            meta.k_dst = V4_MAPPED(hdr.ipv4.dst);
            meta.dscp = hdr.ipv4.tos[7:2];
            meta.ip_len = (bit<32>)hdr.ipv4.total_len;
        }
        // The transport header belongs to the innermost packet.
        bool own_l4 = !received || !tunnel;
        meta.sport = 0;
        meta.dport = 0;
        if (own_l4 && hdr.l4.isValid()) {
            meta.sport = hdr.l4.sport;
            meta.dport = hdr.l4.dport;
        }
        if (own_l4 && hdr.bth.isValid()) {
            meta.k_tail = 8w0 ++ hdr.bth.dest_qp;
        } else {
            meta.k_tail = meta.sport ++ meta.dport;
        }
        hash(meta.flow_hash, HashAlgorithm.crc32, 32w0,
             { meta.k_src, meta.k_dst, meta.k_proto, meta.k_tail }, 64w0x100000000);
    }
}

// Count-min sketch rows: cell = (window number + 1)(48) | bytes(32). A cell written in an
// older window reads as zero, which is the reset at each new window without a sweep.
register<bit<80>>(ICPN_CMS_MAX_WIDTH) cms_row0;
register<bit<80>>(ICPN_CMS_MAX_WIDTH) cms_row1;
register<bit<80>>(ICPN_CMS_MAX_WIDTH) cms_row2;
register<bit<80>>(ICPN_CMS_MAX_WIDTH) cms_row3;
register<bit<80>>(ICPN_CMS_MAX_WIDTH) cms_row4;
register<bit<80>>(ICPN_CMS_MAX_WIDTH) cms_row5;
register<bit<80>>(ICPN_CMS_MAX_WIDTH) cms_row6;
register<bit<80>>(ICPN_CMS_MAX_WIDTH) cms_row7;
// Elephant state per flow slot (flow hash mod ELEPHANT_SLOTS): remembers(1) | overflowed(1) |
// 0(14) | the remembered flow's last window + 1 (48) | the last window + 1 in which another flow
// of the slot came after an overflow (48); and the remembered flow's key (src, dst, proto,
// ports or QP).
register<bit<112>>(ICPN_ELEPHANT_SLOTS) elephant_state;
register<bit<296>>(ICPN_ELEPHANT_SLOTS) elephant_key;

#define CMS_ROW(REG, ROW)                                                                     \
    hash(idx, HashAlgorithm.crc32, 32w0,                                                      \
         { ROW, meta.k_src, meta.k_dst, meta.k_proto, meta.k_tail }, width);                  \
    REG.read(cell, idx);                                                                      \
    count = 0;                                                                                \
    if (cell[79:32] == window1) {                                                             \
        count = cell[31:0];                                                                   \
    }                                                                                         \
    count = count + meta.ip_len;                                                              \
    REG.write(idx, window1 ++ count);                                                         \
    if (count < estimate) {                                                                   \
        estimate = count;                                                                     \
    }

control Elephant(inout meta_t meta) {
    bit<1>   enabled;
    bit<8>   rows;
    bit<32>  width;
    bit<128> window_magic;
    bit<32>  threshold;
    bit<48>  idle_windows;
    bit<1>   decides;     // a policy hashes elephants apart (deep_hash)

    action set_elephant(bit<8> cms_rows, bit<32> cms_width, bit<128> window_div,
                     bit<32> threshold_bytes, bit<48> idle, bit<1> decides_path) {
        enabled = 1;
        decides = decides_path;
        rows = cms_rows;
        width = cms_width;
        window_magic = window_div;
        threshold = threshold_bytes;
        idle_windows = idle;
    }

    table elephant_cfg {
        actions = { set_elephant; NoAction; }
        default_action = NoAction();
        size = 1;
    }

    apply {
        enabled = 0;
        rows = 0;
        width = 1;
        window_magic = 0;
        threshold = 0;
        idle_windows = 0;
        decides = 0;
        meta.elephant = 0;
        elephant_cfg.apply();
        if (enabled == 1) {
            bit<48> window1 = MAGIC_DIV(meta.now_us, window_magic) + 1;
            bit<32> estimate = 0xFFFFFFFF;
            bit<32> idx;
            bit<80> cell;
            bit<32> count;
            CMS_ROW(cms_row0, 8w0)
            if (rows > 1) {
                CMS_ROW(cms_row1, 8w1)
            }
            if (rows > 2) {
                CMS_ROW(cms_row2, 8w2)
            }
            if (rows > 3) {
                CMS_ROW(cms_row3, 8w3)
                if (rows > 4) {
                    CMS_ROW(cms_row4, 8w4)
                }
                if (rows > 5) {
                    CMS_ROW(cms_row5, 8w5)
                }
                if (rows > 6) {
                    CMS_ROW(cms_row6, 8w6)
                }
                if (rows > 7) {
                    CMS_ROW(cms_row7, 8w7)
                }
            }
            // Once an elephant, a flow stays one until idle_windows windows pass without it
            // (a window before the one it was last seen in counts as within them, as the
            // contract's w - s <= idle_windows). A slot remembers one flow by its whole key.
            // When a second flow of the slot becomes an elephant it cannot be remembered: the
            // slot is marked overflowed, and until idle_windows pass without a packet of any
            // other flow there, such a packet under the threshold (it may be the forgotten
            // elephant) is dropped p4-limit where elephants pick a path.
            bit<32> slot = meta.flow_hash & (ICPN_ELEPHANT_SLOTS - 1);
            bit<296> key = meta.k_src ++ meta.k_dst ++ meta.k_proto ++ meta.k_tail;
            bit<112> state;
            bit<296> holder;
            elephant_state.read(state, slot);
            elephant_key.read(holder, slot);
            bit<48> held = state[95:48];
            bit<48> spilled = state[47:0];
            bool live = state[111:111] == 1
                        && (window1 < held || window1 - held <= idle_windows);
            bool spill_live = state[110:110] == 1
                              && (window1 < spilled || window1 - spilled <= idle_windows);
            bool mine = live && holder == key;
            if (mine) {
                meta.elephant = 1;
            }
            if (estimate >= threshold) {
                meta.elephant = 1;
            }
            if (!mine && (spill_live || (live && meta.elephant == 1))) {
                // An elephant by its own count is one whatever the slot forgot; below the
                // threshold, this flow may be the forgotten elephant or a mouse.
                if (meta.elephant == 0 && decides == 1) {
                    meta.drop_reason = ICPN_DROP_P4_LIMIT;
                }
                state[110:110] = 1;
                state[47:0] = window1;
                if (!live && meta.elephant == 1) {
                    state[111:111] = 1;
                    state[95:48] = window1;
                    elephant_key.write(slot, key);
                }
                elephant_state.write(slot, state);
            } else if (meta.elephant == 1) {
                state[111:111] = 1;
                state[95:48] = window1;
                elephant_state.write(slot, state);
                elephant_key.write(slot, key);
            }
        }
    }
}

#endif
