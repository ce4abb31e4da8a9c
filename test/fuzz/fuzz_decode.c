/*
 * fuzz_decode.c: libFuzzer target on the model decoder, the security
 * boundary (SPEC §6): any bytes handed to esmm_predict reach it.
 *
 * The input is a model bytea.  Half the time the fuzzer's bytes are taken
 * as they are (the CRC rejects almost all of them); the other half the CRC
 * is recomputed first, so that mutations reach the section, count and
 * schema checks behind it.  A decoded model is then scored on a batch of
 * out-of-range ids and NaNs (an MMoE model by mmoe_model_predict, as
 * esmm_predict scores it) and encoded again, which must give back a model
 * that decodes and encodes to the same bytes.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mmoe_model.h"
#include "model_format.h"
#include "../crc32c_ref.h"


/* Scores a batch of 3 hostile rows: every id out of range, NaN floats,
 * array lists pointing at ids past every table.  An MMoE model reads the
 * same batch through its own scorer, and its evaluation scorer too, which
 * forces every binary task through the sigmoid. */
static void
score_hostile_rows(esmm_model *m)
{
	esmm_status st;
	int32_t		ids[3 * ESMM_MAX_FEATURES];
	float		nums[3 * ESMM_MAX_FEATURES];
	uint32_t	off[ESMM_MAX_FEATURES * 4];
	int32_t		multi[6] = {-1, 0, 1 << 30, 7, -7, 3};
	float		out[3][3];
	float		tasks[3 * ESMM_MAX_LABELS];
	esmm_batch	b;

	for (int i = 0; i < 3 * ESMM_MAX_FEATURES; i++)
	{
		ids[i] = i % 2 ? -5 : 1 << 30;
		nums[i] = i % 3 ? NAN : 1e30f;
	}
	for (int k = 0; k < ESMM_MAX_FEATURES; k++)
	{
		off[k * 4] = 0;
		off[k * 4 + 1] = 2;
		off[k * 4 + 2] = 2;
		off[k * 4 + 3] = 6;
	}
	if (esmm_model_workspace(m, 3, &st) != ESMM_OK)
		return;
	b.B = 3;
	b.ids = ids;
	b.nums = nums;
	b.labels = NULL;
	b.multi_off = off;
	b.multi_ids = multi;
	if (m->kind == ESMM_KIND_MMOE)
	{
		mmoe_model_predict(m, &b, tasks);
		mmoe_model_scores(m, &b, tasks);
	}
	/* on an MMoE model, only fills NaN: it must not read the towers */
	esmm_model_predict(m, &b, out[0], out[1], out[2]);
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t    *buf;
	esmm_model *m = NULL;
	esmm_status st;

	if (size < 1)
		return 0;
	buf = malloc(size - 1 > 0 ? size - 1 : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data + 1, size - 1);
	/* the first byte chooses: keep the CRC, or make it right */
	if ((data[0] & 1) && size - 1 >= ESMM_HEADER_SIZE)
	{
		uint32_t	c = crc32c_ref(buf + 12, size - 1 - 12);

		for (int i = 0; i < 4; i++)
			buf[8 + i] = (uint8_t) (c >> (8 * i));
	}
	if (esmm_model_decode(&m, buf, size - 1, crc32c_ref, data[0] & 2, &st) == ESMM_OK)
	{
		size_t		len = esmm_model_encoded_size(m, 0);
		uint8_t    *again = malloc(len);
		uint8_t    *third = malloc(len);
		esmm_model *m2 = NULL;

		score_hostile_rows(m);
		if (again != NULL && third != NULL)
		{
			if (esmm_model_encode(m, 0, again, len, crc32c_ref, &st) != ESMM_OK ||
				esmm_model_decode(&m2, again, len, crc32c_ref, 0, &st) != ESMM_OK)
				abort();		/* a model that decodes must re-encode and decode */
			/* and the format must carry every field it reads: a field
			 * that the decoder drops or alters changes the bytes */
			if (m2->kind != m->kind || esmm_model_encoded_size(m2, 0) != len ||
				esmm_model_encode(m2, 0, third, len, crc32c_ref, &st) != ESMM_OK ||
				memcmp(again, third, len) != 0)
				abort();
			esmm_model_free(m2);
		}
		free(again);
		free(third);
		esmm_model_free(m);
	}
	else if (m != NULL || st.msg[0] == '\0')
		abort();				/* a failed decode leaves nothing and says why */
	free(buf);
	return 0;
}
