/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* CRC-32 (IEEE 802.3, reflected, init and xor-out 0xFFFFFFFF, as zlib), the hash the contract
 * fixes for flow labels, count-min indexes and APN-keyed SID-list choice (docs/pipeline.md 3).
 * The 256-entry table is computed by the compiler from the polynomial. */
#ifndef ICPN_HASH_H
#define ICPN_HASH_H

#include "common.h"

#define CRC_STEP(c) (((c) >> 1) ^ (ICPN_CRC32_POLY & (0u - ((c)&1u))))
#define CRC_BYTE(n)                                                                          \
	CRC_STEP(CRC_STEP(CRC_STEP(CRC_STEP(CRC_STEP(CRC_STEP(CRC_STEP(CRC_STEP((__u32)(n)))))))))
#define CRC_4(n) CRC_BYTE(n), CRC_BYTE(n + 1), CRC_BYTE(n + 2), CRC_BYTE(n + 3)
#define CRC_16(n) CRC_4(n), CRC_4(n + 4), CRC_4(n + 8), CRC_4(n + 12)
#define CRC_64(n) CRC_16(n), CRC_16(n + 16), CRC_16(n + 32), CRC_16(n + 48)

static const __u32 crc32_table[256] = { CRC_64(0), CRC_64(64), CRC_64(128), CRC_64(192) };

/* Longest input hashed: a row byte plus the 37-byte flow key. */
#define ICPN_CRC_MAX_LEN 40

static __always_inline __u32 crc32_update(__u32 crc, const __u8 *buf, __u32 len)
{
	for (__u32 i = 0; i < ICPN_CRC_MAX_LEN; i++) {
		if (i >= len)
			break;
		crc = crc32_table[(crc ^ buf[i]) & 0xff] ^ (crc >> 8);
	}
	return crc;
}

static __always_inline __u32 crc32(const __u8 *buf, __u32 len)
{
	return ~crc32_update(0xffffffff, buf, len);
}

#endif
