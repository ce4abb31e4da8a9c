/* metrics.c: exact metrics. */
#include <math.h>
#include <stdlib.h>

#include "metrics.h"

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

double
esmm_auc(double *pos, size_t n_pos, double *neg, size_t n_neg)
{
	size_t		lo = 0,			/* negatives strictly below pos[i] */
				hi = 0;			/* negatives at or below pos[i] */
	double		wins = 0.0;

	if (n_pos == 0 || n_neg == 0)
		return NAN;
	qsort(pos, n_pos, sizeof(double), cmp_double);
	qsort(neg, n_neg, sizeof(double), cmp_double);
	for (size_t i = 0; i < n_pos; i++)
	{
		while (lo < n_neg && neg[lo] < pos[i])
			lo++;
		if (hi < lo)
			hi = lo;
		while (hi < n_neg && neg[hi] <= pos[i])
			hi++;
		/* a double counts half-pairs exactly up to 2^52: 67M x 67M rows */
		wins += (double) lo + 0.5 * (double) (hi - lo);
	}
	return wins / ((double) n_pos * (double) n_neg);
}
