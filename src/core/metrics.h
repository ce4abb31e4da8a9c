/*
 * metrics.h: exact evaluation metrics over score arrays.
 */
#ifndef ESMM_METRICS_H
#define ESMM_METRICS_H

#include <stddef.h>

/*
 * Exact ROC AUC, the Mann-Whitney statistic with ties counted as half:
 * P(score of a positive > score of a negative) + P(equal) / 2.
 * pos[n_pos] and neg[n_neg] are the scores of each class; both arrays are
 * sorted in place.  O(n log n) time, no extra memory.  Returns NaN when a
 * class is empty.  Scores must not be NaN (the caller rejects them): the
 * sort needs a total order.
 */
double		esmm_auc(double *pos, size_t n_pos, double *neg, size_t n_neg);

#endif
