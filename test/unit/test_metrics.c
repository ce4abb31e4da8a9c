/*
 * test_metrics.c: the metrics of core/metrics.c: esmm_auc and esmm_gauc
 * on hand-counted cases and against a brute-force count of every
 * (positive, negative) pair, heavy ties included; the introsort against
 * qsort; the mean metrics against hand values and long double sums; and
 * every state merged from chunks against the state of all the rows, which
 * is what a parallel plan computes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "metrics.h"

/* esmm_auc sorts its inputs, so each call gets its own copies. */
static double
auc_of(const double *pos, size_t n_pos, const double *neg, size_t n_neg)
{
	double	   *p = malloc((n_pos ? n_pos : 1) * sizeof(double));
	double	   *n = malloc((n_neg ? n_neg : 1) * sizeof(double));
	double		r;

	if (n_pos)
		memcpy(p, pos, n_pos * sizeof(double));
	if (n_neg)
		memcpy(n, neg, n_neg * sizeof(double));
	r = esmm_auc(p, n_pos, n, n_neg);
	free(p);
	free(n);
	return r;
}

/* The definition: wins + ties/2 over all n_pos * n_neg pairs. */
static double
auc_brute(const double *pos, size_t n_pos, const double *neg, size_t n_neg)
{
	double		wins = 0.0;

	for (size_t i = 0; i < n_pos; i++)
		for (size_t j = 0; j < n_neg; j++)
			wins += pos[i] > neg[j] ? 1.0 : pos[i] == neg[j] ? 0.5 : 0.0;
	return wins / ((double) n_pos * (double) n_neg);
}

static void
test_hand_cases(void)
{
	const double hi[3] = {0.7, 0.9, 0.8};
	const double lo[4] = {0.1, 0.3, 0.2, 0.6};
	const double same[3] = {0.4, 0.4, 0.4};

	CHECK(auc_of(hi, 3, lo, 4) == 1.0, "perfect separation %g", auc_of(hi, 3, lo, 4));
	CHECK(auc_of(lo, 4, hi, 3) == 0.0, "reversed %g", auc_of(lo, 4, hi, 3));
	CHECK(auc_of(same, 3, same, 2) == 0.5, "all tied %g", auc_of(same, 3, same, 2));

	/*
	 * pos {0.5, 0.8, 0.8}, neg {0.2, 0.8, 0.9}:
	 *   0.5 beats 0.2, loses to 0.8 and 0.9        -> 1
	 *   each 0.8 beats 0.2, ties 0.8, loses to 0.9 -> 1.5, twice
	 * (1 + 3) / 9 pairs.
	 */
	{
		const double p[3] = {0.8, 0.5, 0.8};
		const double n[3] = {0.9, 0.2, 0.8};

		CHECK_NEAR(auc_of(p, 3, n, 3), 4.0 / 9.0, 1e-15, "ties by hand");
	}

	/*
	 * pos {1, 2, 3}, neg {2, 2, 0, 3}:
	 *   1: beats 0                    -> 1
	 *   2: beats 0, ties 2, 2         -> 2
	 *   3: beats 2, 2, 0, ties 3      -> 3.5
	 * 6.5 / 12.
	 */
	{
		const double p[3] = {3, 1, 2};
		const double n[4] = {2, 2, 0, 3};

		CHECK_NEAR(auc_of(p, 3, n, 4), 6.5 / 12.0, 1e-15, "runs of ties by hand");
	}

	/* one of each */
	{
		const double a = 0.3,
					b = 0.6;

		CHECK(auc_of(&b, 1, &a, 1) == 1.0, "one pair, right order");
		CHECK(auc_of(&a, 1, &b, 1) == 0.0, "one pair, wrong order");
		CHECK(auc_of(&a, 1, &a, 1) == 0.5, "one pair, tied");
	}

	/* an empty class has no pairs */
	CHECK(isnan(auc_of(hi, 3, lo, 0)), "no negatives gives NaN");
	CHECK(isnan(auc_of(hi, 0, lo, 4)), "no positives gives NaN");
	CHECK(isnan(auc_of(hi, 0, lo, 0)), "no rows gives NaN");
}

/* Sorting in place is part of the contract: the inputs come back sorted. */
static void
test_sorts_in_place(void)
{
	double		p[4] = {0.9, 0.1, 0.5, 0.3};
	double		n[3] = {0.7, 0.2, 0.4};

	(void) esmm_auc(p, 4, n, 3);
	CHECK(p[0] == 0.1 && p[1] == 0.3 && p[2] == 0.5 && p[3] == 0.9,
		  "positives sorted: %g %g %g %g", p[0], p[1], p[2], p[3]);
	CHECK(n[0] == 0.2 && n[1] == 0.4 && n[2] == 0.7,
		  "negatives sorted: %g %g %g", n[0], n[1], n[2]);
}

/*
 * 2000 random scores rounded to one decimal (eleven values, so nearly
 * every score is tied with many others), split unevenly between the
 * classes, against the O(n^2) count.  Several seeds and mixes.
 */
static void
test_against_brute_force(void)
{
	uint64_t	rng = UINT64_C(0x2545F4914F6CDD1D);
	double	   *pos = malloc(2000 * sizeof(double));
	double	   *neg = malloc(2000 * sizeof(double));

	for (int trial = 0; trial < 4; trial++)
	{
		size_t		n_pos = 0,
					n_neg = 0;
		double		shift = 0.1 * trial;	/* positives score higher */
		double		want;

		for (int i = 0; i < 2000; i++)
		{
			double		u,
						v;

			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			u = (rng >> 11) * (1.0 / 9007199254740992.0);
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			v = (rng >> 11) * (1.0 / 9007199254740992.0);
			if (v < 0.3)
			{
				u = fmin(1.0, u + shift);
				pos[n_pos++] = round(u * 10.0) / 10.0;
			}
			else
				neg[n_neg++] = round(u * 10.0) / 10.0;
		}
		want = auc_brute(pos, n_pos, neg, n_neg);
		CHECK_NEAR(auc_of(pos, n_pos, neg, n_neg), want, 1e-12,
				   "auc against the pair count");
		/* swapping the classes gives 1 - auc */
		CHECK_NEAR(auc_of(neg, n_neg, pos, n_pos), 1.0 - want, 1e-12,
				   "swapped classes give 1 - auc");
		/* the data must be informative enough for the check to mean something */
		if (trial == 3)
			CHECK(want > 0.6, "shifted positives should rank higher (%g)", want);
	}
	free(pos);
	free(neg);
}

/* ---------------------------------------------------------------- helpers */

static uint64_t test_rng = UINT64_C(0x9E3779B97F4A7C15);

/* xorshift64: uniform in [0, 1) */
static double
uniform(void)
{
	test_rng ^= test_rng << 13;
	test_rng ^= test_rng >> 7;
	test_rng ^= test_rng << 17;
	return (test_rng >> 11) * (1.0 / 9007199254740992.0);
}

static int
cmp_pair(const void *a, const void *b)
{
	const double *x = a,
			   *y = b;

	/* keys are stored as doubles here: small integers, exact */
	if (x[0] != y[0])
		return x[0] < y[0] ? -1 : 1;
	return (x[1] > y[1]) - (x[1] < y[1]);
}

/* ------------------------------------------------------------------ sorting */

/*
 * esmm_sort_rows against qsort on inputs that break naive quicksorts:
 * random, all equal, two values, sorted, reversed, organ pipe; by score
 * alone and by (key, score); the heapsort fallback on its own too.
 */
static void
test_sort(void)
{
	enum
	{
		N = 5003
	};
	double	   *score = malloc(N * sizeof(double));
	uint64_t   *key = malloc(N * sizeof(uint64_t));
	double	   *pairs = malloc(2 * N * sizeof(double));
	static const char *const shapes[] = {
		"random", "all equal", "two values", "sorted", "reversed", "organ pipe", "rounded"
	};

	for (int shape = 0; shape < 7; shape++)
		for (int keyed = 0; keyed < 2; keyed++)
			for (int heap = 0; heap < 2; heap++)
				for (size_t n = 0; n <= N; n += (n < 40 ? 1 : 997))
				{
					int			ok = 1;

					for (size_t i = 0; i < n; i++)
					{
						double		v;

						switch (shape)
						{
							case 0:
								v = uniform();
								break;
							case 1:
								v = 0.25;
								break;
							case 2:
								v = uniform() < 0.5 ? 0.0 : 1.0;
								break;
							case 3:
								v = (double) i;
								break;
							case 4:
								v = (double) (n - i);
								break;
							case 5:
								v = (double) (i < n / 2 ? i : n - i);
								break;
							default:
								v = round(uniform() * 20.0) / 20.0;
						}
						score[i] = v;
						key[i] = (uint64_t) (uniform() * 7.0);
						pairs[2 * i] = keyed ? (double) key[i] : 0.0;
						pairs[2 * i + 1] = v;
					}
					if (heap)
						esmm_heapsort_rows(keyed ? key : NULL, score, n);
					else
						esmm_sort_rows(keyed ? key : NULL, score, n);
					qsort(pairs, n, 2 * sizeof(double), cmp_pair);
					for (size_t i = 0; i < n && ok; i++)
						ok = score[i] == pairs[2 * i + 1] &&
							(!keyed || (double) key[i] == pairs[2 * i]);
					CHECK(ok, "%s sort of %zu rows, %s, as qsort", heap ? "heap" : "intro",
						  n, shapes[shape]);
				}

	/* a million tied rows: quadratic time here would hang the suite */
	{
		size_t		n = 1000000;
		double	   *big = malloc(n * sizeof(double));
		int			ok = 1;

		for (size_t i = 0; i < n; i++)
			big[i] = (double) (i % 3);
		esmm_sort_rows(NULL, big, n);
		for (size_t i = 1; i < n; i++)
			ok &= big[i - 1] <= big[i];
		CHECK(ok && big[0] == 0.0 && big[n - 1] == 2.0, "a million rows of three values");
		free(big);
	}
	free(score);
	free(key);
	free(pairs);
}

/* 1.25x growth, at least 16, at least what is needed */
static void
test_grow(void)
{
	CHECK(esmm_grow(0, 1) == 16, "first growth %zu", esmm_grow(0, 1));
	CHECK(esmm_grow(16, 17) == 20, "16 grows to %zu", esmm_grow(16, 17));
	CHECK(esmm_grow(8000000, 8000001) == 10000000, "8M grows to %zu",
		  esmm_grow(8000000, 8000001));
	CHECK(esmm_grow(100, 1000) == 1000, "a merge needing more gets it: %zu",
		  esmm_grow(100, 1000));
}

/* -------------------------------------------------------------------- gauc */

/* The definition: per group, the pair count; weighted by the group's rows. */
static double
gauc_brute(const uint64_t *key, const double *score, const int *label, size_t n)
{
	double		num = 0.0,
				den = 0.0;

	for (uint64_t g = 0; g < 64; g++)
	{
		double		wins = 0.0,
					n_pos = 0.0,
					n_neg = 0.0;

		for (size_t i = 0; i < n; i++)
		{
			if (key[i] != g)
				continue;
			if (label[i])
				n_pos++;
			else
				n_neg++;
			for (size_t j = 0; label[i] && j < n; j++)
				if (key[j] == g && !label[j])
					wins += score[i] > score[j] ? 1.0 : score[i] == score[j] ? 0.5 : 0.0;
		}
		if (n_pos > 0 && n_neg > 0)
		{
			num += (n_pos + n_neg) * wins / (n_pos * n_neg);
			den += n_pos + n_neg;
		}
	}
	return den > 0 ? num / den : NAN;
}

/* gauc of n rows, in order[] when given, split into the class arrays it wants */
static double
gauc_of(const uint64_t *key, const double *score, const int *label,
		const size_t *order, size_t n, size_t *groups)
{
	uint64_t   *pk = malloc((n + 1) * sizeof(uint64_t)),
			   *nk = malloc((n + 1) * sizeof(uint64_t));
	double	   *ps = malloc((n + 1) * sizeof(double)),
			   *ns = malloc((n + 1) * sizeof(double));
	size_t		np = 0,
				nn = 0;
	double		r;

	for (size_t k = 0; k < n; k++)
	{
		size_t		i = order ? order[k] : k;

		if (label[i])
		{
			pk[np] = key[i];
			ps[np++] = score[i];
		}
		else
		{
			nk[nn] = key[i];
			ns[nn++] = score[i];
		}
	}
	r = esmm_gauc(pk, ps, np, nk, ns, nn, groups);
	free(pk);
	free(nk);
	free(ps);
	free(ns);
	return r;
}

static void
test_gauc(void)
{
	/*
	 * Group 1: pos {0.9}, neg {0.1, 0.9}: 1.5 / 2 = 0.75, 3 rows.
	 * Group 2: pos {0.2, 0.4}, neg {0.3}: 1 / 2 = 0.5, 3 rows.
	 * Group 3: pos {0.5}: one class, left out.
	 * Group 4: pos {0.6}, neg {0.6, 0.6, 0.1}: 2 / 3, 4 rows.
	 * (3 * 0.75 + 3 * 0.5 + 4 * 2/3) / 10.
	 */
	{
		const uint64_t key[] = {4, 1, 2, 3, 1, 2, 4, 1, 2, 4, 4};
		const double score[] = {0.6, 0.9, 0.2, 0.5, 0.1, 0.4, 0.6, 0.9, 0.3, 0.6, 0.1};
		const int	label[] = {1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0};
		size_t		groups;
		double		want = (3 * 0.75 + 3 * 0.5 + 4 * (2.0 / 3.0)) / 10.0;

		CHECK_NEAR(gauc_of(key, score, label, NULL, 11, &groups), want, 1e-15, "gauc by hand");
		CHECK(groups == 4, "four groups, got %zu", groups);
	}

	/* no group with both classes */
	{
		const uint64_t key[] = {1, 2, 2};
		const double score[] = {0.1, 0.2, 0.3};
		const int	label[] = {1, 0, 0};
		size_t		groups;

		CHECK(isnan(gauc_of(key, score, label, NULL, 3, &groups)) && groups == 2,
			  "one class per group gives NaN");
		CHECK(isnan(gauc_of(key, score, label, NULL, 0, &groups)) && groups == 0,
			  "no rows gives NaN");
	}

	/*
	 * Random groups (keys spread over the whole 64-bit range by the
	 * multiplier, so the ordering is by unsigned key) and rounded scores,
	 * against the definition; the same rows in another order give the
	 * same value, bit for bit, as a parallel plan's concatenation does.
	 */
	for (int trial = 0; trial < 4; trial++)
	{
		enum
		{
			N = 1500
		};
		uint64_t	key[N],
					small[N];
		double		score[N];
		int			label[N];
		size_t		order[N],
					groups,
					groups2;
		double		got,
					again,
					want;

		for (size_t i = 0; i < N; i++)
		{
			small[i] = (uint64_t) (uniform() * (trial == 0 ? 1 : 40));
			key[i] = small[i] * UINT64_C(0x9E3779B97F4A7C15);
			label[i] = uniform() < 0.2 + 0.1 * trial;
			score[i] = round((uniform() + 0.3 * label[i]) * 10.0) / 10.0;
			order[i] = N - 1 - i;
		}
		want = gauc_brute(small, score, label, N);
		got = gauc_of(key, score, label, NULL, N, &groups);
		CHECK_NEAR(got, want, 1e-12, "gauc against the pair count");
		again = gauc_of(key, score, label, order, N, &groups2);
		CHECK(got == again && groups == groups2, "gauc does not depend on row order");
		if (trial == 0)
		{
			/* one group: gauc is the auc */
			double		pos[N],
						neg[N];
			size_t		np = 0,
						nn = 0;

			for (size_t i = 0; i < N; i++)
			{
				if (label[i])
					pos[np++] = score[i];
				else
					neg[nn++] = score[i];
			}
			CHECK_NEAR(got, esmm_auc(pos, np, neg, nn), 1e-15, "one group: gauc = auc");
		}
	}
}

/* -------------------------------------------------------------- auc merging */

/*
 * A parallel auc concatenates the workers' arrays in any order; the sort
 * makes the result independent of it.  Here: rows split into three chunks
 * appended in two orders, against all the rows at once.
 */
static void
test_auc_chunks(void)
{
	enum
	{
		N = 30000
	};
	double	   *pos = malloc(N * sizeof(double)),
			   *neg = malloc(N * sizeof(double)),
			   *pos2 = malloc(N * sizeof(double)),
			   *neg2 = malloc(N * sizeof(double));
	size_t		np = 0,
				nn = 0;
	double		all,
				merged;

	for (size_t i = 0; i < N; i++)
	{
		int			y = uniform() < 0.1;
		double		s = round((uniform() + 0.2 * y) * 100.0) / 100.0;

		if (y)
			pos[np++] = s;
		else
			neg[nn++] = s;
	}
	/* chunks [2/3, 1), [0, 1/3), [1/3, 2/3) of each class, appended */
	for (int c = 0; c < 2; c++)
	{
		const double *src = c ? pos : neg;
		double	   *dst = c ? pos2 : neg2;
		size_t		n = c ? np : nn,
					a = n / 3,
					b = 2 * n / 3;

		memcpy(dst, src + b, (n - b) * sizeof(double));
		memcpy(dst + (n - b), src, a * sizeof(double));
		memcpy(dst + (n - b) + a, src + a, (b - a) * sizeof(double));
	}
	all = auc_of(pos, np, neg, nn);
	merged = esmm_auc(pos2, np, neg2, nn);
	CHECK(all == merged, "merged chunks give the same auc: %.17g vs %.17g", all, merged);
	CHECK_NEAR(all, auc_brute(pos, np, neg, nn), 1e-12, "30000 rows of two decimals");
	free(pos);
	free(neg);
	free(pos2);
	free(neg2);
}

/* ------------------------------------------------------------- mean metrics */

static void
test_means_by_hand(void)
{
	esmm_sums	s = {0};

	/* logloss: -(log 0.8 + log(1 - 0.4)) / 2 */
	esmm_logloss_add(&s, 0.8, 1);
	esmm_logloss_add(&s, 0.4, 0);
	CHECK_NEAR(esmm_sums_logloss(&s), -(log(0.8) + log(0.6)) / 2.0, 1e-15, "logloss by hand");

	/* clipping: a score of 0 for a positive costs -log(1e-7), not infinity */
	memset(&s, 0, sizeof(s));
	esmm_logloss_add(&s, 0.0, 1);
	esmm_logloss_add(&s, 1.0, 0);
	esmm_logloss_add(&s, -3.0, 0);
	esmm_logloss_add(&s, INFINITY, 1);
	CHECK_NEAR(esmm_sums_logloss(&s),
			   (-log(1e-7) - log1p(-(1 - 1e-7)) - log1p(-1e-7) - log(1 - 1e-7)) / 4.0,
			   1e-14, "logloss clips to [1e-7, 1 - 1e-7]");

	/* binary accuracy: score > threshold, strictly */
	memset(&s, 0, sizeof(s));
	esmm_bacc_add(&s, 0.5, 1, 0.5); /* 0.5 is not above 0.5: wrong */
	esmm_bacc_add(&s, 0.5, 0, 0.5); /* right */
	esmm_bacc_add(&s, 0.51, 1, 0.5);	/* right */
	esmm_bacc_add(&s, 0.9, 0, 0.5); /* wrong */
	esmm_bacc_add(&s, 0.2, 1, 0.1); /* right, with a lower threshold */
	CHECK_NEAR(esmm_sums_bacc(&s), 3.0 / 5.0, 1e-15, "binary accuracy by hand");

	/* pcoc: mean(score) / mean(label) = (0.2 + 0.4 + 0.9) / 2 */
	memset(&s, 0, sizeof(s));
	esmm_pcoc_add(&s, 0.2, 0);
	esmm_pcoc_add(&s, 0.4, 1);
	esmm_pcoc_add(&s, 0.9, 1);
	CHECK_NEAR(esmm_sums_pcoc(&s), 1.5 / 2.0, 1e-15, "pcoc by hand");
	memset(&s, 0, sizeof(s));
	esmm_pcoc_add(&s, 0.2, 0);
	CHECK(isnan(esmm_sums_pcoc(&s)), "pcoc without a positive is NaN");

	/* errors: (1, 3), (2, 2), (5, 1): squared 4, 0, 16; absolute 2, 0, 4 */
	memset(&s, 0, sizeof(s));
	esmm_errors_add(&s, 1, 3);
	esmm_errors_add(&s, 2, 2);
	esmm_errors_add(&s, 5, 1);
	CHECK_NEAR(esmm_sums_mse(&s), 20.0 / 3.0, 1e-15, "mse by hand");
	CHECK_NEAR(esmm_sums_rmse(&s), sqrt(20.0 / 3.0), 1e-15, "rmse by hand");
	CHECK_NEAR(esmm_sums_mae(&s), 2.0, 1e-15, "mae by hand");

	/* no rows */
	memset(&s, 0, sizeof(s));
	CHECK(isnan(esmm_sums_logloss(&s)) && isnan(esmm_sums_bacc(&s)) &&
		  isnan(esmm_sums_mse(&s)) && isnan(esmm_sums_rmse(&s)) &&
		  isnan(esmm_sums_mae(&s)) && isnan(esmm_sums_pcoc(&s)), "no rows gives NaN");

	/* an infinite error makes an infinite mse, not a NaN */
	esmm_errors_add(&s, 1, 2);
	esmm_errors_add(&s, INFINITY, 2);
	CHECK(isinf(esmm_sums_mse(&s)) && isinf(esmm_sums_mae(&s)), "infinite errors");
}

/*
 * The compensated sum: 1e16, then 10000 ones, then -1e16 sums to 10000
 * exactly, where a plain double sum gives 0 (1e16 + 1 rounds back to
 * 1e16).  The same rows in three merged chunks give the same.
 */
static void
test_compensated_sums(void)
{
	esmm_sums	all = {0},
				part[3] = {{0}};
	size_t		n = 10002;

	for (size_t i = 0; i < n; i++)
	{
		double		v = i == 0 ? 1e16 : i == n - 1 ? -1e16 : 1.0;

		esmm_pcoc_add(&all, v, 1);
		esmm_pcoc_add(&part[i * 3 / n], v, 1);
	}
	CHECK(esmm_sums_pcoc(&all) * (double) n == 10000.0,
		  "compensated sum %.17g", esmm_sums_pcoc(&all) * (double) n);
	esmm_sums_merge(&part[2], &part[0]);
	esmm_sums_merge(&part[2], &part[1]);
	CHECK(esmm_sums_pcoc(&part[2]) * (double) n == 10000.0,
		  "compensated sum over merged chunks %.17g", esmm_sums_pcoc(&part[2]) * (double) n);
}

/*
 * Every mean metric over 200000 rows: against long double references, and
 * merged from 7 uneven chunks (in reverse order) against all the rows.
 */
static void
test_means_merged(void)
{
	enum
	{
		N = 200000,
		CHUNKS = 7
	};
	esmm_sums	all[4] = {{0}},
				chunk[CHUNKS][4] = {{{0}}},
				merged[4] = {{0}};
	long double ll = 0,
				sq = 0,
				ab = 0,
				sc = 0;
	int64_t		right = 0,
				pos = 0;

	for (size_t i = 0; i < N; i++)
	{
		int			y = uniform() < 0.3;
		double		s = round(fmin(1.0, uniform() * 0.8 + 0.3 * y) * 100.0) / 100.0,
					t = uniform() * 4.0 - 1.0;
		size_t		c = (i * i / N) % CHUNKS;	/* uneven chunk sizes */
		double		p = fmin(fmax(s, 1e-7), 1 - 1e-7);

		esmm_logloss_add(&all[0], s, y);
		esmm_bacc_add(&all[1], s, y, 0.35);
		esmm_pcoc_add(&all[2], s, y);
		esmm_errors_add(&all[3], s, t);
		esmm_logloss_add(&chunk[c][0], s, y);
		esmm_bacc_add(&chunk[c][1], s, y, 0.35);
		esmm_pcoc_add(&chunk[c][2], s, y);
		esmm_errors_add(&chunk[c][3], s, t);
		ll += y ? -logl(p) : -logl(1.0L - p);
		right += (s > 0.35) == y;
		sc += s;
		pos += y;
		sq += ((long double) s - t) * ((long double) s - t);
		ab += fabsl((long double) s - t);
	}
	for (int c = CHUNKS - 1; c >= 0; c--)
		for (int m = 0; m < 4; m++)
			esmm_sums_merge(&merged[m], &chunk[c][m]);

	CHECK_NEAR(esmm_sums_logloss(&all[0]), (double) (ll / N), 1e-13, "logloss vs long double");
	CHECK(esmm_sums_bacc(&all[1]) == (double) right / N, "binary accuracy count");
	CHECK_NEAR(esmm_sums_pcoc(&all[2]), (double) (sc / pos), 1e-13, "pcoc vs long double");
	CHECK_NEAR(esmm_sums_mse(&all[3]), (double) (sq / N), 1e-13, "mse vs long double");
	CHECK_NEAR(esmm_sums_mae(&all[3]), (double) (ab / N), 1e-13, "mae vs long double");

	CHECK_NEAR(esmm_sums_logloss(&merged[0]), esmm_sums_logloss(&all[0]), 1e-14, "merged logloss");
	CHECK(esmm_sums_bacc(&merged[1]) == esmm_sums_bacc(&all[1]), "merged binary accuracy");
	CHECK_NEAR(esmm_sums_pcoc(&merged[2]), esmm_sums_pcoc(&all[2]), 1e-14, "merged pcoc");
	CHECK_NEAR(esmm_sums_mse(&merged[3]), esmm_sums_mse(&all[3]), 1e-14, "merged mse");
	CHECK_NEAR(esmm_sums_rmse(&merged[3]), esmm_sums_rmse(&all[3]), 1e-14, "merged rmse");
	CHECK_NEAR(esmm_sums_mae(&merged[3]), esmm_sums_mae(&all[3]), 1e-14, "merged mae");
	CHECK(merged[0].n == N && merged[2].hits == pos, "merged counts");
}

void
suite_metrics(void)
{
	test_hand_cases();
	test_sorts_in_place();
	test_against_brute_force();
	test_sort();
	test_grow();
	test_gauc();
	test_auc_chunks();
	test_means_by_hand();
	test_compensated_sums();
	test_means_merged();
}
