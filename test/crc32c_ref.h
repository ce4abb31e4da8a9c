/*
 * crc32c_ref.h: the reference CRC-32C (Castagnoli, reflected polynomial
 * 0x82F63B78), bit by bit: slow and obviously right.  The core's
 * esmm_crc_fn for everything that runs without PostgreSQL's pg_crc32c:
 * the unit tests, the fuzz target and its corpus writer.
 */
#ifndef ESMM_CRC32C_REF_H
#define ESMM_CRC32C_REF_H

#include <stddef.h>
#include <stdint.h>

static inline uint32_t
crc32c_ref(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t	crc = 0xFFFFFFFFu;

	for (size_t i = 0; i < len; i++)
	{
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
	}
	return crc ^ 0xFFFFFFFFu;
}

#endif
