/*
 * metrics.h: exact evaluation metrics, the maths behind the SQL aggregates
 * (src/pg/metrics_agg.c) and the trainer's evaluation.
 *
 * Two kinds of state:
 *  - ranking metrics (auc, gauc) keep every score, one array per class,
 *    and sort them once at the end: O(n log n), 8 bytes a row (plus an
 *    8-byte group key for gauc);
 *  - mean metrics (logloss, binary accuracy, pcoc, mse, rmse, mae) keep
 *    running counts and compensated sums (esmm_sums), which merge exactly
 *    enough that a parallel run equals a serial one to ~1e-15.
 * Undefined results (no rows, one class) come back as NaN; the caller
 * decides what to say.  NaN inputs are the caller's to reject: a ranking
 * needs a total order and a mean would silently become NaN.
 */
#ifndef ESMM_METRICS_H
#define ESMM_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------- ranking */

/*
 * Exact ROC AUC, the Mann-Whitney statistic with ties counted as half:
 * P(score of a positive > score of a negative) + P(equal) / 2.
 * pos[n_pos] and neg[n_neg] are the scores of each class; both arrays are
 * sorted in place.  O(n log n) time, O(log n) stack, no heap.  Returns
 * NaN when a class is empty.
 */
double		esmm_auc(double *pos, size_t n_pos, double *neg, size_t n_neg);

/*
 * Group AUC: the AUC of each group that has both classes, weighted by the
 * group's row count (both classes).  pos_key[i] is the group of pos[i],
 * likewise for the negatives; the four arrays are sorted in place, by
 * (group, score).  *n_groups receives the number of distinct groups.
 * Returns NaN when no group has both classes.
 */
double		esmm_gauc(uint64_t *pos_key, double *pos, size_t n_pos,
					  uint64_t *neg_key, double *neg, size_t n_neg,
					  size_t *n_groups);

/*
 * Sorts rows in place by (key, score), or by score alone when key is NULL:
 * an introsort (median-of-three quicksort whose partition splits runs of
 * equal values evenly, heapsort past 2 log2 n levels, insertion sort for
 * short ranges).  O(n log n) worst case, no heap memory: glibc's qsort
 * would malloc a copy of the array for its merge sort.
 */
void		esmm_sort_rows(uint64_t *key, double *score, size_t n);

/* The introsort's fallback alone, exposed so that the unit tests reach it. */
void		esmm_heapsort_rows(uint64_t *key, double *score, size_t n);

/*
 * The capacity to grow an array of cap elements to, so that it holds at
 * least need: 1.25x, not 2x, so that a state of 10M scores carries at most
 * 25% slack (10 bytes a row), and at least 16 elements.
 */
size_t		esmm_grow(size_t cap, size_t need);

/* ---------------------------------------------------------------- means */

/* A Neumaier-compensated sum: sum + comp is the sum to ~1 ulp. */
typedef struct esmm_ksum
{
	double		sum;
	double		comp;
} esmm_ksum;

/* The state of every mean metric; each uses the fields its comment names. */
typedef struct esmm_sums
{
	int64_t		n;				/* rows counted (all) */
	int64_t		hits;			/* positive labels (pcoc), right answers
								 * (binary accuracy) */
	esmm_ksum	a;				/* losses (logloss), scores (pcoc), squared
								 * errors (mse, rmse) */
	esmm_ksum	b;				/* absolute errors (mae) */
} esmm_sums;

/* label is 0 or 1 */
void		esmm_logloss_add(esmm_sums *s, double score, int label);
void		esmm_bacc_add(esmm_sums *s, double score, int label, double threshold);
void		esmm_pcoc_add(esmm_sums *s, double score, int label);
void		esmm_errors_add(esmm_sums *s, double pred, double target);

/* into += from: the state of the rows of both */
void		esmm_sums_merge(esmm_sums *into, const esmm_sums *from);

/* The metrics; NaN when undefined (no rows; for pcoc, no positive label). */
double		esmm_sums_logloss(const esmm_sums *s);
double		esmm_sums_bacc(const esmm_sums *s);
double		esmm_sums_pcoc(const esmm_sums *s);
double		esmm_sums_mse(const esmm_sums *s);
double		esmm_sums_rmse(const esmm_sums *s);
double		esmm_sums_mae(const esmm_sums *s);

/* Scores are clipped to [EPS, 1 - EPS] before the log, as Keras does. */
#define ESMM_LOGLOSS_EPS 1e-7

#endif
