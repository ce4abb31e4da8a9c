/*
 * test_metrics.c: esmm_auc on hand-counted cases and against a
 * brute-force count of every (positive, negative) pair.
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

void
suite_metrics(void)
{
	test_hand_cases();
	test_sorts_in_place();
	test_against_brute_force();
}
