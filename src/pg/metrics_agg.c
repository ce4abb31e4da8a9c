/*
 * metrics_agg.c: auc(score, label), exact, as an aggregate.
 *
 * The state keeps the scores of each class apart (8 bytes a row); the
 * final function sorts both and counts wins in one merge (core/metrics.c).
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "utils/memutils.h"

#include "metrics.h"

typedef struct score_list
{
	double	   *v;
	size_t		n;
	size_t		cap;
} score_list;

typedef struct auc_state
{
	score_list	cls[2];			/* [0] negatives, [1] positives */
} auc_state;

static void
score_list_push(score_list *l, double v, MemoryContext cxt)
{
	if (l->n == l->cap)
	{
		l->cap = Max(1024, l->cap * 2);
		l->v = l->v == NULL ? MemoryContextAllocHuge(cxt, l->cap * sizeof(double)) :
			repalloc_huge(l->v, l->cap * sizeof(double));
	}
	l->v[l->n++] = v;
}

/* Shared transition: skip rows with a NULL, then file the score. */
static Datum
auc_accumulate(FunctionCallInfo fcinfo, int label)
{
	MemoryContext aggcxt;
	auc_state  *s;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("auc called in non-aggregate context")));
	s = PG_ARGISNULL(0) ? MemoryContextAllocZero(aggcxt, sizeof(auc_state)) :
		(auc_state *) PG_GETARG_POINTER(0);
	if (!PG_ARGISNULL(1) && label >= 0)
	{
		double		score = PG_GETARG_FLOAT8(1);

		/* NaN has no place in a ranking, and would break the sort */
		if (isnan(score))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("auc score is NaN"),
					 errhint("Scores must be numbers; filter out or replace NaN scores.")));
		score_list_push(&s->cls[label], score, aggcxt);
	}
	PG_RETURN_POINTER(s);
}

PG_FUNCTION_INFO_V1(esmm_auc_sfunc_bool);

/* auc's transition for boolean labels */
Datum
esmm_auc_sfunc_bool(PG_FUNCTION_ARGS)
{
	return auc_accumulate(fcinfo, PG_ARGISNULL(2) ? -1 : PG_GETARG_BOOL(2) ? 1 : 0);
}

PG_FUNCTION_INFO_V1(esmm_auc_sfunc_int);

/* auc's transition for integer 0/1 labels */
Datum
esmm_auc_sfunc_int(PG_FUNCTION_ARGS)
{
	int64		v;

	if (PG_ARGISNULL(2))
		return auc_accumulate(fcinfo, -1);
	v = PG_GETARG_INT64(2);
	if (v != 0 && v != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("auc label must be 0 or 1, got " INT64_FORMAT, v),
				 errhint("Labels are boolean or integer 0/1.")));
	return auc_accumulate(fcinfo, (int) v);
}

PG_FUNCTION_INFO_V1(esmm_auc_final);

/* auc's final function: the exact AUC, or NULL for a single class */
Datum
esmm_auc_final(PG_FUNCTION_ARGS)
{
	auc_state  *s;
	double		auc;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	s = (auc_state *) PG_GETARG_POINTER(0);
	if (s->cls[0].n == 0 && s->cls[1].n == 0)
		PG_RETURN_NULL();
	if (s->cls[0].n == 0 || s->cls[1].n == 0)
	{
		ereport(NOTICE,
				(errmsg("auc is undefined: all %zu labels are %s",
						s->cls[0].n + s->cls[1].n, s->cls[1].n == 0 ? "negative" : "positive")));
		PG_RETURN_NULL();
	}
	auc = esmm_auc(s->cls[1].v, s->cls[1].n, s->cls[0].v, s->cls[0].n);
	PG_RETURN_FLOAT8(auc);
}
