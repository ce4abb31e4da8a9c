/*
 * metrics_agg.c: the evaluation aggregates, exact and parallel safe.
 *
 *   auc, gauc                 keep every score (scores_state), one array per
 *                             class, 8 bytes a row (16 for gauc: score and
 *                             group key); the final function sorts in place
 *   logloss, binary_accuracy, keep counts and compensated sums (esmm_sums)
 *   pcoc, mse, rmse, mae
 *
 * The maths is in core/metrics.c; here: arguments, memory, the parallel
 * plumbing (combine, serialize, deserialize) and the messages.  Each
 * transition function is a one-line call into a shared helper, the label's
 * type (boolean or bigint) being the only difference between overloads.
 * A row with a NULL in any argument is skipped.
 */
#include "postgres.h"

#include <math.h>

#include "common/hashfn.h"
#include "fmgr.h"
#include "nodes/primnodes.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "metrics.h"

/* ------------------------------------------------------------ arguments */

/* Where a number argument may not be NaN: its name, and the hint to give. */
typedef struct number_role
{
	const char *name;
	const char *hint;
} number_role;

static const number_role SCORE = {"score", "Scores must be numbers; filter out or replace NaN scores."};
static const number_role THRESHOLD = {"threshold", "The threshold must be a number."};
static const number_role PREDICTION = {"prediction", "Predictions must be numbers; filter out or replace NaN predictions."};
static const number_role TARGET = {"target", "Targets must be numbers; filter out or replace NaN targets."};

/* The aggregate's memory context; anywhere else the call is a mistake. */
static inline MemoryContext
agg_context(FunctionCallInfo fcinfo)
{
	MemoryContext aggcxt;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s called in non-aggregate context",
						get_func_name(fcinfo->flinfo->fn_oid))));
	return aggcxt;
}

/*
 * The name of the aggregate for a message: metric, or when the transition
 * is shared by several aggregates (mse, rmse, mae), the name of the one
 * being run.  When they share one state in a query, that is any of them,
 * which is still right: they all read the same arguments.
 */
static const char *
metric_name(FunctionCallInfo fcinfo, const char *metric)
{
	Aggref	   *aggref;

	if (metric != NULL)
		return metric;
	aggref = AggGetAggref(fcinfo);
	return aggref != NULL ? get_func_name(aggref->aggfnoid) : "metric";
}

/*
 * A double argument into *v; false when NULL.  NaN is an error: it has no
 * place in a ranking, and it would silently turn any mean into NaN.
 */
static inline bool
number_arg(FunctionCallInfo fcinfo, int argno, const char *metric,
		   const number_role *role, double *v)
{
	if (PG_ARGISNULL(argno))
		return false;
	*v = PG_GETARG_FLOAT8(argno);
	if (isnan(*v))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s %s is NaN", metric_name(fcinfo, metric), role->name),
				 errhint("%s", role->hint)));
	return true;
}

/* A label argument, boolean or bigint, as 0 or 1; -1 when NULL. */
static inline int
label_arg(FunctionCallInfo fcinfo, int argno, bool is_int, const char *metric)
{
	int64		v;

	if (PG_ARGISNULL(argno))
		return -1;
	if (!is_int)
		return PG_GETARG_BOOL(argno) ? 1 : 0;
	v = PG_GETARG_INT64(argno);
	if (v != 0 && v != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s label must be 0 or 1, got " INT64_FORMAT, metric, v),
				 errhint("Labels are boolean or integer 0/1.")));
	return (int) v;
}

/*
 * A group argument, bigint or text, as a 64-bit key; false when NULL.
 * Text is keyed by a 64-bit hash of its bytes (whatever the collation):
 * among a million distinct texts, two share a key with probability ~3e-8,
 * whereas keeping the texts would cost their length on every row.
 */
static inline bool
group_arg(FunctionCallInfo fcinfo, int argno, bool is_text, uint64 *key)
{
	text	   *t;

	if (PG_ARGISNULL(argno))
		return false;
	if (!is_text)
	{
		*key = (uint64) PG_GETARG_INT64(argno);
		return true;
	}
	t = PG_GETARG_TEXT_PP(argno);
	*key = hash_bytes_extended((const unsigned char *) VARDATA_ANY(t),
							   VARSIZE_ANY_EXHDR(t), 0);
	return true;
}

/* -------------------------------------------------- auc and gauc states */

/* The scores of one class, and for gauc the group of each. */
typedef struct score_list
{
	double	   *score;
	uint64	   *key;			/* gauc only; NULL for auc */
	size_t		n;
	size_t		cap;
} score_list;

typedef struct scores_state
{
	bool		keyed;			/* gauc: every row has a group key */
	score_list	cls[2];			/* [0] negatives, [1] positives */
} scores_state;

static scores_state *
scores_state_new(MemoryContext cxt, bool keyed)
{
	scores_state *s = MemoryContextAllocZero(cxt, sizeof(scores_state));

	s->keyed = keyed;
	return s;
}

/*
 * Room for need rows.  Growth is 1.25x (esmm_grow) so that the slack stays
 * within 25%.  Arrays beyond 8kB are malloc'd blocks of their own; the
 * large ones are mmap'd by glibc and grown with mremap, without a copy, so
 * growing does not double the peak either (10M rows of auc: 9.4 bytes a
 * row allocated, 8.1 resident).
 */
static void
score_list_reserve(score_list *l, size_t need, bool keyed, MemoryContext cxt)
{
	size_t		cap;

	if (need <= l->cap)
		return;
	cap = esmm_grow(l->cap, need);
	if (l->score == NULL)
	{
		l->score = MemoryContextAllocHuge(cxt, cap * sizeof(double));
		if (keyed)
			l->key = MemoryContextAllocHuge(cxt, cap * sizeof(uint64));
	}
	else
	{
		l->score = repalloc_huge(l->score, cap * sizeof(double));
		if (keyed)
			l->key = repalloc_huge(l->key, cap * sizeof(uint64));
	}
	l->cap = cap;
}

/* Shared transition of auc and gauc: file the row's score under its class. */
static Datum
scores_accumulate(FunctionCallInfo fcinfo, const char *metric, int label,
				  bool keyed, bool has_key, uint64 key)
{
	MemoryContext aggcxt = agg_context(fcinfo);
	scores_state *s = PG_ARGISNULL(0) ? scores_state_new(aggcxt, keyed) :
		(scores_state *) PG_GETARG_POINTER(0);
	double		score;

	if (number_arg(fcinfo, 1, metric, &SCORE, &score) && label >= 0 &&
		(has_key || !keyed))
	{
		score_list *l = &s->cls[label];

		score_list_reserve(l, l->n + 1, keyed, aggcxt);
		l->score[l->n] = score;
		if (keyed)
			l->key[l->n] = key;
		l->n++;
	}
	PG_RETURN_POINTER(s);
}

/* The gauc transition: the group is argument 3, bigint or text. */
static Datum
gauc_accumulate(FunctionCallInfo fcinfo, bool int_label, bool text_group)
{
	uint64		key = 0;
	bool		has_key = group_arg(fcinfo, 3, text_group, &key);

	return scores_accumulate(fcinfo, "gauc", label_arg(fcinfo, 2, int_label, "gauc"),
							 true, has_key, key);
}

PG_FUNCTION_INFO_V1(esmm_auc_sfunc_bool);

/* auc's transition for boolean labels */
Datum
esmm_auc_sfunc_bool(PG_FUNCTION_ARGS)
{
	return scores_accumulate(fcinfo, "auc", label_arg(fcinfo, 2, false, "auc"), false, false, 0);
}

PG_FUNCTION_INFO_V1(esmm_auc_sfunc_int);

/* auc's transition for integer 0/1 labels */
Datum
esmm_auc_sfunc_int(PG_FUNCTION_ARGS)
{
	return scores_accumulate(fcinfo, "auc", label_arg(fcinfo, 2, true, "auc"), false, false, 0);
}

PG_FUNCTION_INFO_V1(esmm_gauc_sfunc_bool_int8);

/* gauc's transition for boolean labels and bigint groups */
Datum
esmm_gauc_sfunc_bool_int8(PG_FUNCTION_ARGS)
{
	return gauc_accumulate(fcinfo, false, false);
}

PG_FUNCTION_INFO_V1(esmm_gauc_sfunc_int_int8);

/* gauc's transition for integer labels and bigint groups */
Datum
esmm_gauc_sfunc_int_int8(PG_FUNCTION_ARGS)
{
	return gauc_accumulate(fcinfo, true, false);
}

PG_FUNCTION_INFO_V1(esmm_gauc_sfunc_bool_text);

/* gauc's transition for boolean labels and text groups */
Datum
esmm_gauc_sfunc_bool_text(PG_FUNCTION_ARGS)
{
	return gauc_accumulate(fcinfo, false, true);
}

PG_FUNCTION_INFO_V1(esmm_gauc_sfunc_int_text);

/* gauc's transition for integer labels and text groups */
Datum
esmm_gauc_sfunc_int_text(PG_FUNCTION_ARGS)
{
	return gauc_accumulate(fcinfo, true, true);
}

PG_FUNCTION_INFO_V1(esmm_scores_combine);

/* auc and gauc combine: appends the second state's rows to the first */
Datum
esmm_scores_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = agg_context(fcinfo);
	scores_state *into = PG_ARGISNULL(0) ? NULL : (scores_state *) PG_GETARG_POINTER(0);
	scores_state *from = PG_ARGISNULL(1) ? NULL : (scores_state *) PG_GETARG_POINTER(1);

	if (from == NULL)
	{
		if (into == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(into);
	}
	/* from is a deserialized state in short-lived memory: always copy */
	if (into == NULL)
		into = scores_state_new(aggcxt, from->keyed);
	for (int c = 0; c < 2; c++)
	{
		score_list *a = &into->cls[c];
		const score_list *b = &from->cls[c];

		if (b->n == 0)
			continue;
		score_list_reserve(a, a->n + b->n, into->keyed, aggcxt);
		memcpy(a->score + a->n, b->score, b->n * sizeof(double));
		if (into->keyed)
			memcpy(a->key + a->n, b->key, b->n * sizeof(uint64));
		a->n += b->n;
	}
	PG_RETURN_POINTER(into);
}

/*
 * The serialized scores_state: this header, then the negatives' scores,
 * the positives' scores, and for gauc the negatives' keys and the
 * positives' keys.  It only travels from a parallel worker to its leader,
 * within one server binary, so the native layout is the format.
 */
typedef struct scores_header
{
	uint64		n[2];
	uint64		keyed;
} scores_header;

static size_t
scores_payload(uint64 n0, uint64 n1, bool keyed)
{
	return sizeof(scores_header) + (n0 + n1) * (keyed ? 16 : 8);
}

PG_FUNCTION_INFO_V1(esmm_scores_serialize);

/* auc and gauc serialization: the state as one bytea, for parallel workers */
Datum
esmm_scores_serialize(PG_FUNCTION_ARGS)
{
	scores_state *s = (scores_state *) PG_GETARG_POINTER(0);
	scores_header h = {{s->cls[0].n, s->cls[1].n}, s->keyed};
	size_t		size;
	bytea	   *out;
	char	   *p;

	(void) agg_context(fcinfo);
	size = scores_payload(h.n[0], h.n[1], s->keyed);
	if (size > MaxAllocSize - VARHDRSZ)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s state of %zu rows is too large to pass from a parallel worker",
						s->keyed ? "gauc" : "auc", s->cls[0].n + s->cls[1].n),
				 errhint("Run the query without parallel workers: SET max_parallel_workers_per_gather = 0.")));
	out = palloc(VARHDRSZ + size);
	SET_VARSIZE(out, VARHDRSZ + size);
	p = VARDATA(out);
	memcpy(p, &h, sizeof(h));
	p += sizeof(h);
	for (int c = 0; c < 2; c++)
	{
		if (s->cls[c].n > 0)
			memcpy(p, s->cls[c].score, s->cls[c].n * sizeof(double));
		p += s->cls[c].n * sizeof(double);
	}
	for (int c = 0; c < 2 && s->keyed; c++)
	{
		if (s->cls[c].n > 0)
			memcpy(p, s->cls[c].key, s->cls[c].n * sizeof(uint64));
		p += s->cls[c].n * sizeof(uint64);
	}
	PG_RETURN_BYTEA_P(out);
}

PG_FUNCTION_INFO_V1(esmm_scores_deserialize);

/* auc and gauc deserialization: the bytea back into a state */
Datum
esmm_scores_deserialize(PG_FUNCTION_ARGS)
{
	bytea	   *in = PG_GETARG_BYTEA_PP(0);
	const char *p = VARDATA_ANY(in);
	size_t		len = VARSIZE_ANY_EXHDR(in);
	scores_header h;
	scores_state *s;

	(void) agg_context(fcinfo);
	if (len < sizeof(h))
		elog(ERROR, "invalid auc or gauc state: %zu bytes", len);
	memcpy(&h, p, sizeof(h));
	if (len != scores_payload(h.n[0], h.n[1], h.keyed != 0))
		elog(ERROR, "invalid auc or gauc state: %zu bytes for " UINT64_FORMAT " rows",
			 len, h.n[0] + h.n[1]);
	p += sizeof(h);
	s = scores_state_new(CurrentMemoryContext, h.keyed != 0);
	for (int c = 0; c < 2; c++)
	{
		score_list_reserve(&s->cls[c], h.n[c], s->keyed, CurrentMemoryContext);
		s->cls[c].n = h.n[c];
		if (h.n[c] > 0)
			memcpy(s->cls[c].score, p, h.n[c] * sizeof(double));
		p += h.n[c] * sizeof(double);
	}
	for (int c = 0; c < 2 && s->keyed; c++)
	{
		if (h.n[c] > 0)
			memcpy(s->cls[c].key, p, h.n[c] * sizeof(uint64));
		p += h.n[c] * sizeof(uint64);
	}
	PG_RETURN_POINTER(s);
}

PG_FUNCTION_INFO_V1(esmm_auc_final);

/* auc's final function: the exact AUC, or NULL for a single class */
Datum
esmm_auc_final(PG_FUNCTION_ARGS)
{
	scores_state *s;
	score_list *neg,
			   *pos;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	s = (scores_state *) PG_GETARG_POINTER(0);
	neg = &s->cls[0];
	pos = &s->cls[1];
	if (neg->n == 0 && pos->n == 0)
		PG_RETURN_NULL();
	if (neg->n == 0 || pos->n == 0)
	{
		ereport(NOTICE,
				(errmsg("auc is undefined: all %zu labels are %s",
						neg->n + pos->n, pos->n == 0 ? "negative" : "positive")));
		PG_RETURN_NULL();
	}
	PG_RETURN_FLOAT8(esmm_auc(pos->score, pos->n, neg->score, neg->n));
}

PG_FUNCTION_INFO_V1(esmm_gauc_final);

/* gauc's final function: the row-weighted mean of the groups' AUCs */
Datum
esmm_gauc_final(PG_FUNCTION_ARGS)
{
	scores_state *s;
	score_list *neg,
			   *pos;
	size_t		groups;
	double		gauc;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	s = (scores_state *) PG_GETARG_POINTER(0);
	neg = &s->cls[0];
	pos = &s->cls[1];
	if (neg->n == 0 && pos->n == 0)
		PG_RETURN_NULL();
	gauc = esmm_gauc(pos->key, pos->score, pos->n, neg->key, neg->score, neg->n, &groups);
	if (isnan(gauc))
	{
		ereport(NOTICE,
				(errmsg("gauc is undefined: none of the %zu groups has both classes", groups)));
		PG_RETURN_NULL();
	}
	PG_RETURN_FLOAT8(gauc);
}

/* ------------------------------------------------------ the mean metrics */

/* The esmm_sums state of this call, created on the first row. */
static inline esmm_sums *
sums_state(FunctionCallInfo fcinfo)
{
	MemoryContext aggcxt = agg_context(fcinfo);

	if (PG_ARGISNULL(0))
		return MemoryContextAllocZero(aggcxt, sizeof(esmm_sums));
	return (esmm_sums *) PG_GETARG_POINTER(0);
}

/* The add functions of the (score, label) metrics, for one helper. */
typedef enum label_metric
{
	LOGLOSS,
	BACC,
	PCOC
} label_metric;

static const char *const label_metric_name[] = {"logloss", "binary_accuracy", "pcoc"};

/*
 * Shared transition of logloss, binary_accuracy and pcoc: arguments
 * (state, score, label [, threshold]).
 */
static Datum
label_accumulate(FunctionCallInfo fcinfo, label_metric m, bool int_label)
{
	const char *metric = label_metric_name[m];
	esmm_sums  *s = sums_state(fcinfo);
	double		score,
				threshold = 0.5;
	int			label = label_arg(fcinfo, 2, int_label, metric);

	if (!number_arg(fcinfo, 1, metric, &SCORE, &score) || label < 0 ||
		(PG_NARGS() > 3 && !number_arg(fcinfo, 3, metric, &THRESHOLD, &threshold)))
		PG_RETURN_POINTER(s);
	if (m == LOGLOSS)
		esmm_logloss_add(s, score, label);
	else if (m == BACC)
		esmm_bacc_add(s, score, label, threshold);
	else
		esmm_pcoc_add(s, score, label);
	PG_RETURN_POINTER(s);
}

PG_FUNCTION_INFO_V1(esmm_logloss_sfunc_bool);

/* logloss's transition for boolean labels */
Datum
esmm_logloss_sfunc_bool(PG_FUNCTION_ARGS)
{
	return label_accumulate(fcinfo, LOGLOSS, false);
}

PG_FUNCTION_INFO_V1(esmm_logloss_sfunc_int);

/* logloss's transition for integer 0/1 labels */
Datum
esmm_logloss_sfunc_int(PG_FUNCTION_ARGS)
{
	return label_accumulate(fcinfo, LOGLOSS, true);
}

PG_FUNCTION_INFO_V1(esmm_bacc_sfunc_bool);

/* binary_accuracy's transition for boolean labels, with or without a threshold */
Datum
esmm_bacc_sfunc_bool(PG_FUNCTION_ARGS)
{
	return label_accumulate(fcinfo, BACC, false);
}

PG_FUNCTION_INFO_V1(esmm_bacc_sfunc_int);

/* binary_accuracy's transition for integer 0/1 labels, with or without a threshold */
Datum
esmm_bacc_sfunc_int(PG_FUNCTION_ARGS)
{
	return label_accumulate(fcinfo, BACC, true);
}

PG_FUNCTION_INFO_V1(esmm_pcoc_sfunc_bool);

/* pcoc's transition for boolean labels */
Datum
esmm_pcoc_sfunc_bool(PG_FUNCTION_ARGS)
{
	return label_accumulate(fcinfo, PCOC, false);
}

PG_FUNCTION_INFO_V1(esmm_pcoc_sfunc_int);

/* pcoc's transition for integer 0/1 labels */
Datum
esmm_pcoc_sfunc_int(PG_FUNCTION_ARGS)
{
	return label_accumulate(fcinfo, PCOC, true);
}

PG_FUNCTION_INFO_V1(esmm_errors_sfunc);

/*
 * The transition of mse, rmse and mae: one state with both error sums, so
 * that the three over the same arguments in one query share it.
 */
Datum
esmm_errors_sfunc(PG_FUNCTION_ARGS)
{
	esmm_sums  *s = sums_state(fcinfo);
	double		pred,
				target;

	if (number_arg(fcinfo, 1, NULL, &PREDICTION, &pred) &&
		number_arg(fcinfo, 2, NULL, &TARGET, &target))
		esmm_errors_add(s, pred, target);
	PG_RETURN_POINTER(s);
}

PG_FUNCTION_INFO_V1(esmm_sums_combine);

/* combine of the mean metrics: adds the counts and the compensated sums */
Datum
esmm_sums_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = agg_context(fcinfo);
	esmm_sums  *into = PG_ARGISNULL(0) ? NULL : (esmm_sums *) PG_GETARG_POINTER(0);

	if (PG_ARGISNULL(1))
	{
		if (into == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(into);
	}
	if (into == NULL)
		into = MemoryContextAllocZero(aggcxt, sizeof(esmm_sums));
	esmm_sums_merge(into, (esmm_sums *) PG_GETARG_POINTER(1));
	PG_RETURN_POINTER(into);
}

PG_FUNCTION_INFO_V1(esmm_sums_serialize);

/* serialization of the mean metrics: the state's bytes (same server only) */
Datum
esmm_sums_serialize(PG_FUNCTION_ARGS)
{
	bytea	   *out = palloc(VARHDRSZ + sizeof(esmm_sums));

	(void) agg_context(fcinfo);
	SET_VARSIZE(out, VARHDRSZ + sizeof(esmm_sums));
	memcpy(VARDATA(out), PG_GETARG_POINTER(0), sizeof(esmm_sums));
	PG_RETURN_BYTEA_P(out);
}

PG_FUNCTION_INFO_V1(esmm_sums_deserialize);

/* deserialization of the mean metrics */
Datum
esmm_sums_deserialize(PG_FUNCTION_ARGS)
{
	bytea	   *in = PG_GETARG_BYTEA_PP(0);
	esmm_sums  *s = palloc(sizeof(esmm_sums));

	(void) agg_context(fcinfo);
	if (VARSIZE_ANY_EXHDR(in) != sizeof(esmm_sums))
		elog(ERROR, "invalid metric state: %zu bytes", (size_t) VARSIZE_ANY_EXHDR(in));
	memcpy(s, VARDATA_ANY(in), sizeof(esmm_sums));
	PG_RETURN_POINTER(s);
}

/* A mean metric's value, NULL when no row was counted. */
static inline Datum
sums_final(FunctionCallInfo fcinfo, double (*metric) (const esmm_sums *))
{
	const esmm_sums *s = PG_ARGISNULL(0) ? NULL : (esmm_sums *) PG_GETARG_POINTER(0);

	if (s == NULL || s->n == 0)
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(metric(s));
}

PG_FUNCTION_INFO_V1(esmm_logloss_final);

/* logloss's final function: the mean clipped binary cross-entropy */
Datum
esmm_logloss_final(PG_FUNCTION_ARGS)
{
	return sums_final(fcinfo, esmm_sums_logloss);
}

PG_FUNCTION_INFO_V1(esmm_bacc_final);

/* binary_accuracy's final function: the share of right answers */
Datum
esmm_bacc_final(PG_FUNCTION_ARGS)
{
	return sums_final(fcinfo, esmm_sums_bacc);
}

PG_FUNCTION_INFO_V1(esmm_pcoc_final);

/* pcoc's final function: mean(score) / mean(label), NULL without a positive */
Datum
esmm_pcoc_final(PG_FUNCTION_ARGS)
{
	const esmm_sums *s = PG_ARGISNULL(0) ? NULL : (esmm_sums *) PG_GETARG_POINTER(0);

	if (s != NULL && s->n > 0 && s->hits == 0)
	{
		ereport(NOTICE,
				(errmsg("pcoc is undefined: all " INT64_FORMAT " labels are negative", s->n)));
		PG_RETURN_NULL();
	}
	return sums_final(fcinfo, esmm_sums_pcoc);
}

PG_FUNCTION_INFO_V1(esmm_mse_final);

/* mse's final function: the mean squared error */
Datum
esmm_mse_final(PG_FUNCTION_ARGS)
{
	return sums_final(fcinfo, esmm_sums_mse);
}

PG_FUNCTION_INFO_V1(esmm_rmse_final);

/* rmse's final function: the root of the mean squared error */
Datum
esmm_rmse_final(PG_FUNCTION_ARGS)
{
	return sums_final(fcinfo, esmm_sums_rmse);
}

PG_FUNCTION_INFO_V1(esmm_mae_final);

/* mae's final function: the mean absolute error */
Datum
esmm_mae_final(PG_FUNCTION_ARGS)
{
	return sums_final(fcinfo, esmm_sums_mae);
}
