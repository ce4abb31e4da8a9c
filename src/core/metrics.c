/* metrics.c: exact metrics (see metrics.h). */
#include <math.h>
#include <stdint.h>

#include "metrics.h"

/* ---------------------------------------------------- compensated sums */

/* Neumaier's variant of Kahan: also exact when x is larger than the sum. */
static void
ksum_add(esmm_ksum *k, double x)
{
	double		t = k->sum + x;

	if (fabs(k->sum) >= fabs(x))
		k->comp += (k->sum - t) + x;
	else
		k->comp += (x - t) + k->sum;
	k->sum = t;
}

static double
ksum_value(const esmm_ksum *k)
{
	/* an infinite sum has a NaN compensation (inf - inf); the sum is right */
	return isfinite(k->sum) ? k->sum + k->comp : k->sum;
}

static void
ksum_merge(esmm_ksum *into, const esmm_ksum *from)
{
	ksum_add(into, from->sum);
	ksum_add(into, from->comp);
}

/* ------------------------------------------------------------- sorting */

/*
 * Rows are two parallel arrays rather than an array of pairs so that, once
 * sorted, the scores of one group are contiguous doubles, which the AUC
 * count below reads for auc and gauc alike.  key == NULL sorts by score.
 */
typedef struct rows
{
	uint64_t   *key;
	double	   *score;
} rows;

static inline int
row_less(rows r, size_t i, size_t j)
{
	if (r.key != NULL && r.key[i] != r.key[j])
		return r.key[i] < r.key[j];
	return r.score[i] < r.score[j];
}

static inline void
row_swap(rows r, size_t i, size_t j)
{
	double		s = r.score[i];

	r.score[i] = r.score[j];
	r.score[j] = s;
	if (r.key != NULL)
	{
		uint64_t	k = r.key[i];

		r.key[i] = r.key[j];
		r.key[j] = k;
	}
}

/* Heapsort of [lo, lo + n), the fallback that bounds the worst case. */
static void
sift_down(rows r, size_t lo, size_t root, size_t n)
{
	for (;;)
	{
		size_t		child = 2 * root + 1;

		if (child >= n)
			return;
		if (child + 1 < n && row_less(r, lo + child, lo + child + 1))
			child++;
		if (!row_less(r, lo + root, lo + child))
			return;
		row_swap(r, lo + root, lo + child);
		root = child;
	}
}

static void
heap_sort(rows r, size_t lo, size_t n)
{
	for (size_t i = n / 2; i-- > 0;)
		sift_down(r, lo, i, n);
	for (size_t end = n; end-- > 1;)
	{
		row_swap(r, lo, lo + end);
		sift_down(r, lo, 0, end);
	}
}

/* Sorts [lo, hi). */
static void
intro_sort(rows r, size_t lo, size_t hi, int depth)
{
	while (hi - lo > 16)
	{
		size_t		mid = lo + (hi - lo) / 2,
					i = lo,
					j = hi;

		if (depth-- == 0)
		{
			heap_sort(r, lo, hi - lo);
			return;
		}

		/*
		 * Median of three to r[lo] as the pivot, the smallest of the three to
		 * r[mid] and the largest to r[hi - 1]: the pivot and the largest
		 * stop the two scans, so they need no bounds checks.
		 */
		if (row_less(r, mid, lo))
			row_swap(r, mid, lo);
		if (row_less(r, hi - 1, lo))
			row_swap(r, hi - 1, lo);
		if (row_less(r, hi - 1, mid))
			row_swap(r, hi - 1, mid);
		row_swap(r, lo, mid);

		/*
		 * Both scans stop on rows equal to the pivot, so a run of ties (the
		 * common case for rounded scores) is split in the middle instead of
		 * degrading to quadratic time.
		 */
		for (;;)
		{
			do
				i++;
			while (row_less(r, i, lo));
			do
				j--;
			while (row_less(r, lo, j));
			if (i >= j)
				break;
			row_swap(r, i, j);
		}
		row_swap(r, lo, j);

		/* recurse into the smaller side, loop on the larger: O(log n) stack */
		if (j - lo < hi - j - 1)
		{
			intro_sort(r, lo, j, depth);
			lo = j + 1;
		}
		else
		{
			intro_sort(r, j + 1, hi, depth);
			hi = j;
		}
	}
	for (size_t i = lo + 1; i < hi; i++)
		for (size_t j = i; j > lo && row_less(r, j, j - 1); j--)
			row_swap(r, j, j - 1);
}

void
esmm_sort_rows(uint64_t *key, double *score, size_t n)
{
	rows		r = {key, score};
	int			depth = 0;

	for (size_t m = n; m > 1; m >>= 1)
		depth += 2;
	if (n > 1)
		intro_sort(r, 0, n, depth);
}

void
esmm_heapsort_rows(uint64_t *key, double *score, size_t n)
{
	rows		r = {key, score};

	heap_sort(r, 0, n);
}

size_t
esmm_grow(size_t cap, size_t need)
{
	size_t		grown = cap + cap / 4;

	if (grown < 16)
		grown = 16;
	return grown > need ? grown : need;
}

/* ------------------------------------------------------------- ranking */

/*
 * Twice the Mann-Whitney count over sorted scores: 2 per (positive,
 * negative) pair the positive wins, 1 per tie.  An integer, so it is exact
 * up to 2^64 (6e9 rows), where a double would round beyond 2^53.
 */
static uint64_t
doubled_wins(const double *pos, size_t n_pos, const double *neg, size_t n_neg)
{
	size_t		lo = 0,			/* negatives strictly below pos[i] */
				hi = 0;			/* negatives at or below pos[i] */
	uint64_t	wins2 = 0;

	for (size_t i = 0; i < n_pos; i++)
	{
		while (lo < n_neg && neg[lo] < pos[i])
			lo++;
		if (hi < lo)
			hi = lo;
		while (hi < n_neg && neg[hi] <= pos[i])
			hi++;
		wins2 += 2 * (uint64_t) lo + (uint64_t) (hi - lo);
	}
	return wins2;
}

static double
auc_of_sorted(const double *pos, size_t n_pos, const double *neg, size_t n_neg)
{
	return (double) doubled_wins(pos, n_pos, neg, n_neg) /
		(2.0 * (double) n_pos * (double) n_neg);
}

double
esmm_auc(double *pos, size_t n_pos, double *neg, size_t n_neg)
{
	if (n_pos == 0 || n_neg == 0)
		return NAN;
	esmm_sort_rows(NULL, pos, n_pos);
	esmm_sort_rows(NULL, neg, n_neg);
	return auc_of_sorted(pos, n_pos, neg, n_neg);
}

double
esmm_gauc(uint64_t *pos_key, double *pos, size_t n_pos,
		  uint64_t *neg_key, double *neg, size_t n_neg,
		  size_t *n_groups)
{
	size_t		i = 0,
				j = 0,
				groups = 0;
	uint64_t	weight = 0;
	esmm_ksum	weighted = {0.0, 0.0};

	esmm_sort_rows(pos_key, pos, n_pos);
	esmm_sort_rows(neg_key, neg, n_neg);

	/* walk the groups in key order, both classes side by side */
	while (i < n_pos || j < n_neg)
	{
		uint64_t	g = (j == n_neg || (i < n_pos && pos_key[i] <= neg_key[j])) ?
			pos_key[i] : neg_key[j];
		size_t		i0 = i,
					j0 = j;

		while (i < n_pos && pos_key[i] == g)
			i++;
		while (j < n_neg && neg_key[j] == g)
			j++;
		groups++;
		if (i > i0 && j > j0)
		{
			size_t		rows_g = (i - i0) + (j - j0);

			ksum_add(&weighted, (double) rows_g *
					 auc_of_sorted(pos + i0, i - i0, neg + j0, j - j0));
			weight += rows_g;
		}
	}
	*n_groups = groups;
	return weight == 0 ? NAN : ksum_value(&weighted) / (double) weight;
}

/* ---------------------------------------------------------------- means */

void
esmm_logloss_add(esmm_sums *s, double score, int label)
{
	double		p = fmin(fmax(score, ESMM_LOGLOSS_EPS), 1.0 - ESMM_LOGLOSS_EPS);

	/* log1p(-p): log(1 - p) without the rounding of 1 - p */
	ksum_add(&s->a, label ? -log(p) : -log1p(-p));
	s->n++;
}

void
esmm_bacc_add(esmm_sums *s, double score, int label, double threshold)
{
	s->hits += (score > threshold) == (label != 0);
	s->n++;
}

void
esmm_pcoc_add(esmm_sums *s, double score, int label)
{
	ksum_add(&s->a, score);
	s->hits += label != 0;
	s->n++;
}

void
esmm_errors_add(esmm_sums *s, double pred, double target)
{
	double		e = pred - target;

	ksum_add(&s->a, e * e);
	ksum_add(&s->b, fabs(e));
	s->n++;
}

void
esmm_sums_merge(esmm_sums *into, const esmm_sums *from)
{
	into->n += from->n;
	into->hits += from->hits;
	ksum_merge(&into->a, &from->a);
	ksum_merge(&into->b, &from->b);
}

double
esmm_sums_logloss(const esmm_sums *s)
{
	return s->n == 0 ? NAN : ksum_value(&s->a) / (double) s->n;
}

double
esmm_sums_bacc(const esmm_sums *s)
{
	return s->n == 0 ? NAN : (double) s->hits / (double) s->n;
}

double
esmm_sums_pcoc(const esmm_sums *s)
{
	/* mean(score) / mean(label): the row counts cancel */
	return s->hits == 0 ? NAN : ksum_value(&s->a) / (double) s->hits;
}

double
esmm_sums_mse(const esmm_sums *s)
{
	return s->n == 0 ? NAN : ksum_value(&s->a) / (double) s->n;
}

double
esmm_sums_rmse(const esmm_sums *s)
{
	return sqrt(esmm_sums_mse(s));
}

double
esmm_sums_mae(const esmm_sums *s)
{
	return s->n == 0 ? NAN : ksum_value(&s->b) / (double) s->n;
}
