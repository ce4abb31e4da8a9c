/*
 * dataset.c: the canonical order of a training buffer.
 *
 * PostgreSQL's parallel workers each encode a slice of the table, and the
 * combine function concatenates the slices in whatever order the workers
 * finish.  Sorting the rows by their contents before the seeded shuffle
 * makes training on the concatenation give the same model as training on
 * the same rows serially (SPEC §5, issue 6).
 */
#include <string.h>

#include "esmm_data.h"

/* <0, 0, >0 as stored row a sorts before, with, after stored row b. */
static int
row_compare(const esmm_dataset *ds, uint32_t a, uint32_t b)
{
	const esmm_chunk *ca = &ds->chunks[a >> ESMM_CHUNK_ROWS_LOG2];
	const esmm_chunk *cb = &ds->chunks[b >> ESMM_CHUNK_ROWS_LOG2];
	size_t		ra = a & (ESMM_CHUNK_ROWS - 1);
	size_t		rb = b & (ESMM_CHUNK_ROWS - 1);
	int			c;

	if (ds->n_ids > 0 &&
		(c = memcmp(ca->ids + ra * ds->n_ids, cb->ids + rb * ds->n_ids,
					ds->n_ids * sizeof(int32_t))) != 0)
		return c;
	/* the bits, so that NaN (NULL) compares equal to itself */
	if (ds->n_nums > 0 &&
		(c = memcmp(ca->nums + ra * ds->n_nums, cb->nums + rb * ds->n_nums,
					ds->n_nums * sizeof(float))) != 0)
		return c;
	if ((c = memcmp(ca->labels + ra * ds->n_labels, cb->labels + rb * ds->n_labels,
					ds->n_labels * sizeof(float))) != 0)
		return c;
	for (uint32_t k = 0; k < ds->n_multi; k++)
	{
		const uint32_t *oa = ca->multi_off + ra * ds->n_multi + k;
		const uint32_t *ob = cb->multi_off + rb * ds->n_multi + k;
		uint32_t	na = oa[1] - oa[0],
					nb = ob[1] - ob[0];

		if (na != nb)
			return na < nb ? -1 : 1;
		if (na > 0 &&
			(c = memcmp(ca->multi_ids + oa[0], cb->multi_ids + ob[0], na * sizeof(int32_t))) != 0)
			return c;
	}
	return 0;
}

void
esmm_dataset_canonical_order(const esmm_dataset *ds, uint32_t *order, uint32_t *tmp)
{
	const size_t n = ds->n_rows;
	uint32_t   *src = order,
			   *dst = tmp;

	for (size_t i = 0; i < n; i++)
		order[i] = (uint32_t) i;
	/* bottom-up merge sort: O(n log n) comparisons, no recursion */
	for (size_t width = 1; width < n; width *= 2)
	{
		for (size_t lo = 0; lo < n; lo += 2 * width)
		{
			size_t		mid = lo + width < n ? lo + width : n;
			size_t		hi = lo + 2 * width < n ? lo + 2 * width : n;
			size_t		i = lo,
						j = mid,
						k = lo;

			while (i < mid && j < hi)
				dst[k++] = row_compare(ds, src[j], src[i]) < 0 ? src[j++] : src[i++];
			while (i < mid)
				dst[k++] = src[i++];
			while (j < hi)
				dst[k++] = src[j++];
		}
		{
			uint32_t   *t = src;

			src = dst;
			dst = t;
		}
	}
	if (src != order)
		memcpy(order, src, n * sizeof(uint32_t));
}
