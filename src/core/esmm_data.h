/*
 * esmm_data.h: the compact training buffer and the batch view.
 *
 * The encoder (src/pg/encoder.c) turns each row into ids, raw floats and
 * labels, appended to fixed-size chunks so that the buffer never holds
 * more than one partly-filled chunk of slack (SPEC §8: at most 1.25x the
 * raw bytes).  The core reads the chunks and never writes them.
 */
#ifndef ESMM_DATA_H
#define ESMM_DATA_H

#include <stddef.h>
#include <stdint.h>

#define ESMM_CHUNK_ROWS_LOG2 14
#define ESMM_CHUNK_ROWS ((size_t) 1 << ESMM_CHUNK_ROWS_LOG2)

typedef struct esmm_chunk
{
	int32_t    *ids;			/* [ESMM_CHUNK_ROWS, n_ids] */
	float	   *nums;			/* [ESMM_CHUNK_ROWS, n_nums] raw, NaN = NULL */
	float	   *labels;			/* [ESMM_CHUNK_ROWS, n_labels] */
	uint32_t   *multi_off;		/* [ESMM_CHUNK_ROWS * n_multi + 1] into multi_ids */
	int32_t    *multi_ids;		/* [multi_cap] */
	size_t		multi_cap;
} esmm_chunk;

typedef struct esmm_dataset
{
	uint32_t	n_ids;
	uint32_t	n_nums;
	uint32_t	n_labels;
	uint32_t	n_multi;
	size_t		n_rows;
	size_t		n_chunks;
	esmm_chunk *chunks;			/* [n_chunks] */
	/*
	 * Optional [n_rows]: logical row r is stored row order[r].  Rows that
	 * parallel workers encoded arrive in an order the scan decides; a
	 * canonical order (esmm_dataset_canonical_order) makes training on
	 * them the same as on the same rows serially.  NULL: stored order.
	 */
	const uint32_t *order;
} esmm_dataset;

/* Where logical row r is stored. */
static inline size_t
esmm_dataset_row(const esmm_dataset *ds, size_t r)
{
	return ds->order != NULL ? ds->order[r] : r;
}

/* Row r's fixed columns. */
static inline const int32_t *
esmm_dataset_ids(const esmm_dataset *ds, size_t r)
{
	r = esmm_dataset_row(ds, r);
	return ds->chunks[r >> ESMM_CHUNK_ROWS_LOG2].ids +
		(r & (ESMM_CHUNK_ROWS - 1)) * ds->n_ids;
}

static inline const float *
esmm_dataset_nums(const esmm_dataset *ds, size_t r)
{
	r = esmm_dataset_row(ds, r);
	return ds->chunks[r >> ESMM_CHUNK_ROWS_LOG2].nums +
		(r & (ESMM_CHUNK_ROWS - 1)) * ds->n_nums;
}

static inline const float *
esmm_dataset_labels(const esmm_dataset *ds, size_t r)
{
	r = esmm_dataset_row(ds, r);
	return ds->chunks[r >> ESMM_CHUNK_ROWS_LOG2].labels +
		(r & (ESMM_CHUNK_ROWS - 1)) * ds->n_labels;
}

/* Row r's ids of multi feature k: *count ids starting at the return. */
static inline const int32_t *
esmm_dataset_multi(const esmm_dataset *ds, size_t r, uint32_t k,
				   uint32_t *count)
{
	const esmm_chunk *c;
	size_t		i;

	r = esmm_dataset_row(ds, r);
	c = &ds->chunks[r >> ESMM_CHUNK_ROWS_LOG2];
	i = (r & (ESMM_CHUNK_ROWS - 1)) * ds->n_multi + k;

	*count = c->multi_off[i + 1] - c->multi_off[i];
	return c->multi_ids + c->multi_off[i];
}

/* A row and its sort key: the scratch of esmm_dataset_canonical_order. */
typedef struct esmm_row_key
{
	uint64_t	key;
	uint32_t	row;
} esmm_row_key;

/*
 * Fills order[n_rows] with the rows sorted by a 64-bit hash of their
 * contents (esmm_dataset_row_key), then by the contents themselves (ids,
 * the bits of the floats, labels, array ids), which is the same whatever
 * order the rows were appended in: rows that compare equal are equal.
 * scratch[2 * n_rows] is scratch.  Reads the stored rows (ds->order is
 * ignored).  The keys, and the merges within long runs of equal keys, run
 * on the calling thread's OpenMP team when there are at least
 * ESMM_PARALLEL_MIN_ROWS rows, with the same result for any thread count.
 */
void		esmm_dataset_canonical_order(const esmm_dataset *ds, uint32_t *order,
										 esmm_row_key *scratch);

/* The canonical order's key of stored row r: a 64-bit hash of its ids,
 * float bits, labels and array ids (with their counts). */
uint64_t	esmm_dataset_row_key(const esmm_dataset *ds, uint32_t r);

/* <0, 0, >0 as stored row a's contents sort before, with, after stored
 * row b's: the canonical order's tie-break among equal keys. */
int			esmm_dataset_row_compare(const esmm_dataset *ds, uint32_t a, uint32_t b);

/*
 * A batch of rows in contiguous arrays: what the model reads.  ids, nums
 * and labels are row-major; multi feature k's row b holds
 * multi_ids[multi_off[k*(B+1)+b] .. multi_off[k*(B+1)+b+1]-1].
 */
typedef struct esmm_batch
{
	int			B;
	const int32_t *ids;			/* [B, n_ids] */
	const float *nums;			/* [B, n_nums] raw, NaN = NULL */
	const float *labels;		/* [B, n_labels]; NULL when scoring */
	const uint32_t *multi_off;	/* [n_multi, B+1] */
	const int32_t *multi_ids;
} esmm_batch;

#endif							/* ESMM_DATA_H */
