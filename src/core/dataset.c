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

#include "esmm_core.h"
#include "esmm_data.h"

int
esmm_dataset_row_compare(const esmm_dataset *ds, uint32_t a, uint32_t b)
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

/* Folds the 32-bit words w[0..n) into h. */
static inline uint64_t
hash_words(uint64_t h, const void *w, size_t n)
{
	const unsigned char *p = w;

	for (size_t i = 0; i < n; i++)
	{
		uint32_t	v;

		memcpy(&v, p + 4 * i, sizeof(v));
		h = (h ^ v) * UINT64_C(0x9E3779B97F4A7C15);
		h ^= h >> 29;
	}
	return h;
}

/*
 * A hash rather than the row's first bytes: data whose leading columns
 * repeat (an hour, a device, a census code) tied in long runs on its
 * first 8 bytes, and each run was sorted by full comparisons (3.5% of an
 * mmoe_train on census).  Equal keys are now identical rows, bar a 2^-64
 * chance, and the contents still break any tie.
 */
uint64_t
esmm_dataset_row_key(const esmm_dataset *ds, uint32_t r)
{
	const esmm_chunk *c = &ds->chunks[r >> ESMM_CHUNK_ROWS_LOG2];
	size_t		i = r & (ESMM_CHUNK_ROWS - 1);
	uint64_t	h = UINT64_C(0x243F6A8885A308D3);

	h = hash_words(h, c->ids + i * ds->n_ids, ds->n_ids);
	h = hash_words(h, c->nums + i * ds->n_nums, ds->n_nums);
	h = hash_words(h, c->labels + i * ds->n_labels, ds->n_labels);
	for (uint32_t k = 0; k < ds->n_multi; k++)
	{
		const uint32_t *off = c->multi_off + i * ds->n_multi + k;
		uint32_t	count = off[1] - off[0];

		h = hash_words(h, &count, 1);
		h = hash_words(h, c->multi_ids + off[0], count);
	}
	/* every input bit reaches the high half, which the radix sort reads */
	return esmm_mix64(h);
}

/* Whether item b sorts before item a: by key, then by contents. */
static int
key_before(const esmm_dataset *ds, const esmm_row_key *b, const esmm_row_key *a)
{
	if (b->key != a->key)
		return b->key < a->key;
	return esmm_dataset_row_compare(ds, b->row, a->row) < 0;
}

/* Merge q of a pass of the given width over n items: the sorted
 * src[lo..mid) and src[mid..hi) into dst[lo..hi), stably. */
static inline void
merge_one(const esmm_dataset *ds, const esmm_row_key *src, esmm_row_key *dst,
		  size_t n, size_t width, size_t q)
{
	size_t		lo = q * 2 * width;
	size_t		mid = lo + width < n ? lo + width : n;
	size_t		hi = lo + 2 * width < n ? lo + 2 * width : n;
	size_t		i = lo,
				j = mid,
				k = lo;

	while (i < mid && j < hi)
		dst[k++] = key_before(ds, &src[j], &src[i]) ? src[j++] : src[i++];
	while (i < mid)
		dst[k++] = src[i++];
	while (j < hi)
		dst[k++] = src[j++];
}

/*
 * Sorts a[0..n) by key_before, stably, with tmp[n] as scratch; returns
 * the array that holds the result (a or tmp).  A bottom-up merge sort:
 * O(n log n) comparisons, no recursion; the merges of one pass write
 * disjoint ranges, so threads share a pass out, and the order is the same
 * for any thread count.  Below ESMM_PARALLEL_MIN_ROWS rows it never
 * enters a parallel region: even a team of one costs a microsecond or
 * two a pass, which made runs of a hundred equal keys sort slower than
 * the whole merge sort before the radix sort did.
 */
static esmm_row_key *
merge_sort(const esmm_dataset *ds, esmm_row_key *a, esmm_row_key *tmp, size_t n)
{
	esmm_row_key *src = a,
			   *dst = tmp;

	for (size_t width = 1; width < n; width *= 2)
	{
		const size_t n_merges = (n + 2 * width - 1) / (2 * width);

		if (n >= ESMM_PARALLEL_MIN_ROWS && n_merges > 1)
		{
#pragma omp parallel for schedule(static)
			for (size_t q = 0; q < n_merges; q++)
				merge_one(ds, src, dst, n, width, q);
		}
		else
			for (size_t q = 0; q < n_merges; q++)
				merge_one(ds, src, dst, n, width, q);
		{
			esmm_row_key *t = src;

			src = dst;
			dst = t;
		}
	}
	return src;
}

/* Runs of equal keys up to this long are sorted by insertion: most runs
 * are two or three rows (a user's repeated item), and entering merge_sort's
 * parallel region, even for a team of one, cost more than sorting them. */
#define SHORT_RUN 16

/* Sorts a short a[0..n) by key_before, stably. */
static void
insertion_sort(const esmm_dataset *ds, esmm_row_key *a, size_t n)
{
	for (size_t i = 1; i < n; i++)
	{
		esmm_row_key cur = a[i];
		size_t		j = i;

		while (j > 0 && key_before(ds, &cur, &a[j - 1]))
		{
			a[j] = a[j - 1];
			j--;
		}
		a[j] = cur;
	}
}

/*
 * Sorts a[0..n) by the keys' high 32 bits alone, stably, with tmp[n] as
 * scratch; returns the array that holds the result.  A radix sort on those
 * bytes, least significant first: four passes that read and write
 * sequentially and never branch on a comparison, where the merge sort
 * took 17 passes of unpredictable branches (7% of esmm_train's time on the
 * demo rows).  The keys are hashes, so few rows share their high half;
 * the runs that do are sorted by whole key after (key_before).
 */
static esmm_row_key *
radix_sort_keys(esmm_row_key *a, esmm_row_key *tmp, size_t n)
{
	esmm_row_key *src = a,
			   *dst = tmp;

	for (int shift = 32; shift < 64 && n > 1; shift += 8)
	{
		size_t		count[256] = {0};
		size_t		at = 0;

		for (size_t i = 0; i < n; i++)
			count[(src[i].key >> shift) & 0xff]++;
		/* a byte every key shares leaves the order as it is */
		if (count[(src[0].key >> shift) & 0xff] == n)
			continue;
		for (int d = 0; d < 256; d++)
		{
			size_t		c = count[d];

			count[d] = at;
			at += c;
		}
		for (size_t i = 0; i < n; i++)
			dst[count[(src[i].key >> shift) & 0xff]++] = src[i];
		{
			esmm_row_key *t = src;

			src = dst;
			dst = t;
		}
	}
	return src;
}

void
esmm_dataset_canonical_order(const esmm_dataset *ds, uint32_t *order, esmm_row_key *scratch)
{
	const size_t n = ds->n_rows;
	esmm_row_key *items = scratch,
			   *tmp = scratch + n;

	/* keys travel with their rows, so that each pass reads and writes
	 * sequentially */
#pragma omp parallel for schedule(static) if (n >= ESMM_PARALLEL_MIN_ROWS)
	for (size_t i = 0; i < n; i++)
	{
		items[i].key = esmm_dataset_row_key(ds, (uint32_t) i);
		items[i].row = (uint32_t) i;
	}
	/*
	 * By the keys' high half, then each run that shares it by whole key
	 * and the rows' contents: both sorts are stable, so this is the order
	 * of one stable sort by key_before, rows that compare equal staying as
	 * they were stored.
	 */
	items = radix_sort_keys(items, tmp, n);
	tmp = items == scratch ? scratch + n : scratch;
	for (size_t lo = 0; lo < n;)
	{
		size_t		hi = lo + 1;

		while (hi < n && items[hi].key >> 32 == items[lo].key >> 32)
			hi++;
		if (hi - lo <= SHORT_RUN)
			insertion_sort(ds, items + lo, hi - lo);
		else if (merge_sort(ds, items + lo, tmp + lo, hi - lo) != items + lo)
			memcpy(items + lo, tmp + lo, (hi - lo) * sizeof(esmm_row_key));
		lo = hi;
	}
	for (size_t i = 0; i < n; i++)
		order[i] = items[i].row;
}
