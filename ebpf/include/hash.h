/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* CRC-32 (IEEE 802.3, reflected, init and xor-out 0xFFFFFFFF, as zlib), the hash the contract
 * fixes for flow labels, count-min indexes and APN-keyed SID-list choice (docs/pipeline.md 3).
 * Slicing-by-4: four bytes a step through the tables pyctl/targets/ebpf/maps.py generates. */
#ifndef ICPN_HASH_H
#define ICPN_HASH_H

#include "common.h"

/* Longest input hashed: the 37-byte flow key. */
#define ICPN_CRC_MAX_LEN 40

static __always_inline __u32 crc32_update(__u32 crc, const __u8 *buf, __u32 len)
{
	__u32 i = 0;

	for (; i + 4 <= len && i + 4 <= ICPN_CRC_MAX_LEN; i += 4) {
		crc ^= (__u32)buf[i] | (__u32)buf[i + 1] << 8 | (__u32)buf[i + 2] << 16 |
		       (__u32)buf[i + 3] << 24;
		crc = icpn_crc32_t3[crc & 0xff] ^ icpn_crc32_t2[(crc >> 8) & 0xff] ^
		      icpn_crc32_t1[(crc >> 16) & 0xff] ^ icpn_crc32_t0[crc >> 24];
	}
	for (; i < len && i < ICPN_CRC_MAX_LEN; i++)
		crc = icpn_crc32_t0[(crc ^ buf[i]) & 0xff] ^ (crc >> 8);
	return crc;
}

static __always_inline __u32 crc32(const __u8 *buf, __u32 len)
{
	return ~crc32_update(0xffffffff, buf, len);
}

#endif
