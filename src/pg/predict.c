/*
 * predict.c: esmm_predict(bytea, record) -> (pctr, pcvr, pctcvr), and
 * mmoe_predict(bytea, record) -> real[], one score per task.
 *
 * The decoded model and the row binding are cached in fn_extra for the
 * query; across queries the decoded model comes from the backend's model
 * cache (model_cache.c), found by its full bytes.  Within a query, a
 * changed bytea is never served stale either:
 *  - a model argument the planner knows to be stable (a constant or an
 *    external parameter) cannot change during the query, so it is decoded
 *    once and never compared again;
 *  - a model stored out of line (read from a table) is keyed by its TOAST
 *    pointer, which names the stored value exactly, and is never detoasted
 *    per row;
 *  - anything else is compared byte for byte with the cached copy: such
 *    values are inline, so small.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/detoast.h"
#include "funcapi.h"
#include "utils/memutils.h"

#include "catalog/pg_type.h"
#include "utils/array.h"

#include "encoder.h"
#include "esmm_pg.h"
#include "mmoe_model.h"

typedef struct predict_cache
{
	MemoryContext mcxt;			/* everything below; reset on a new model */
	bool		valid;
	bool		arg_stable;		/* the model argument is a Const or Param */
	bool		key_is_toast;
	struct varatt_external toast;
	Size		key_len;
	char	   *key_copy;		/* [key_len] the model's bytes */
	esmm_model_handle *h;
	esmm_encoder enc;
	int32_t    *ids;			/* [n_ids] one row */
	float	   *nums;			/* [n_nums] */
	uint32_t   *multi_counts;	/* [n_multi] */
	uint32_t   *multi_off;		/* [n_multi, 2] */
	esmm_idbuf	multi;
	TupleDesc	result_desc;
} predict_cache;

static predict_cache *
cache_get(FunctionCallInfo fcinfo)
{
	predict_cache *c = (predict_cache *) fcinfo->flinfo->fn_extra;

	if (c == NULL)
	{
		c = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(*c));
		c->mcxt = AllocSetContextCreate(fcinfo->flinfo->fn_mcxt, "esmm predict cache",
										ALLOCSET_DEFAULT_SIZES);
		c->arg_stable = get_fn_expr_arg_stable(fcinfo->flinfo, 0);
		fcinfo->flinfo->fn_extra = c;
	}
	return c;
}

static bool
cache_hit(const predict_cache *c, Datum raw, const char *fn, bytea **detoasted)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(raw);
	bytea	   *b;

	if (c->valid && c->arg_stable)
		return true;
	if (VARATT_IS_EXTERNAL_ONDISK(v))
	{
		struct varatt_external toast;

		VARATT_EXTERNAL_GET_POINTER(toast, v);
		if (c->valid && c->key_is_toast &&
			toast.va_valueid == c->toast.va_valueid &&
			toast.va_toastrelid == c->toast.va_toastrelid)
			return true;
	}
	esmm_check_worker_arg(raw, fn, "model");
	b = *detoasted = (bytea *) PG_DETOAST_DATUM_PACKED(raw);
	return c->valid && !c->key_is_toast && VARSIZE_ANY_EXHDR(b) == c->key_len &&
		memcmp(VARDATA_ANY(b), c->key_copy, c->key_len) == 0;
}

/* Decodes the model into the cache, replacing what it held. */
static void
cache_load(predict_cache *c, Datum raw, bytea *b)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(raw);
	Size		len = VARSIZE_ANY_EXHDR(b);
	esmm_model *m;

	MemoryContextReset(c->mcxt);
	c->valid = false;
	/* scoring calls sgemm: the thread count and the signal-blocked pool
	 * must be in place before OpenBLAS opens a parallel region */
	esmm_threads_prepare();
	c->h = esmm_model_cache_get(b, 1, c->mcxt);
	m = c->h->model;
	c->key_is_toast = VARATT_IS_EXTERNAL_ONDISK(v);
	if (c->key_is_toast)
		VARATT_EXTERNAL_GET_POINTER(c->toast, v);
	c->key_len = len;
	/* only the byte-for-byte path needs the bytes */
	if (!c->arg_stable && !c->key_is_toast)
	{
		c->key_copy = MemoryContextAllocHuge(c->mcxt, Max(len, 1));
		memcpy(c->key_copy, VARDATA_ANY(b), len);
	}
	c->ids = MemoryContextAlloc(c->mcxt, sizeof(int32_t) * Max(m->n_ids, 1));
	c->nums = MemoryContextAlloc(c->mcxt, sizeof(float) * Max(m->n_nums, 1));
	c->multi_counts = MemoryContextAlloc(c->mcxt, sizeof(uint32_t) * Max(m->n_multi, 1));
	c->multi_off = MemoryContextAlloc(c->mcxt, sizeof(uint32_t) * 2 * Max(m->n_multi, 1));
	memset(&c->multi, 0, sizeof(c->multi));
	c->multi.mcxt = c->mcxt;
	memset(&c->enc, 0, sizeof(c->enc));
	c->valid = true;
}

/* The cached model for this call's model argument, decoded on a miss;
 * an ERROR when it is not of kind (ESMM's kinds, or MMoE). */
static esmm_model *
cached_model(FunctionCallInfo fcinfo, predict_cache *c, bool mmoe)
{
	Datum		raw = PG_GETARG_DATUM(0);
	bytea	   *b = NULL;
	esmm_model *m;

	if (!cache_hit(c, raw, mmoe ? "mmoe_predict" : "esmm_predict", &b))
	{
		if (b == NULL)
			b = (bytea *) PG_DETOAST_DATUM_PACKED(raw);
		cache_load(c, raw, b);
	}
	m = c->h->model;
	esmm_check_scored_kind(m, mmoe, "esmm_predict", "mmoe_predict");
	return m;
}

/* Encodes one row for the cached model into a batch of one. */
static void
encode_one(predict_cache *c, HeapTupleHeader tup, esmm_batch *batch)
{
	esmm_model *m = c->h->model;

	if (!esmm_encoder_matches(&c->enc, tup))
		esmm_encoder_bind(&c->enc, &m->schema, tup, false, NULL, c->mcxt);
	c->multi.len = 0;
	(void) esmm_encode_row(&c->enc, tup, c->ids, c->nums, &c->multi, c->multi_counts, NULL);
	for (uint32_t k = 0, at = 0; k < m->n_multi; k++)
	{
		c->multi_off[2 * k] = at;
		at += c->multi_counts[k];
		c->multi_off[2 * k + 1] = at;
	}
	batch->B = 1;
	batch->ids = c->ids;
	batch->nums = c->nums;
	batch->labels = NULL;
	batch->multi_off = c->multi_off;
	batch->multi_ids = c->multi.ids;
}

PG_FUNCTION_INFO_V1(esmm_predict);

/* esmm_predict(model bytea, row record) -> (pctr, pcvr, pctcvr) */
Datum
esmm_predict(PG_FUNCTION_ARGS)
{
	predict_cache *c = cache_get(fcinfo);
	esmm_model *m = cached_model(fcinfo, c, false);
	esmm_batch	batch;
	float		p[3];
	Datum		values[3];
	bool		nulls[3];

	if (c->result_desc == NULL)
	{
		TupleDesc	td;
		MemoryContext old;

		if (get_call_result_type(fcinfo, NULL, &td) != TYPEFUNC_COMPOSITE)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("esmm_predict must be called in a context that accepts a record")));
		old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
		c->result_desc = BlessTupleDesc(CreateTupleDescCopy(td));
		MemoryContextSwitchTo(old);
	}
	encode_one(c, PG_GETARG_HEAPTUPLEHEADER(1), &batch);
	esmm_model_predict(m, &batch, &p[0], &p[1], &p[2]);
	for (int i = 0; i < 3; i++)
	{
		/* a partial (exported) model has NaN for the tower it lacks */
		nulls[i] = isnan(p[i]);
		values[i] = Float4GetDatum(p[i]);
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(c->result_desc, values, nulls)));
}

PG_FUNCTION_INFO_V1(mmoe_predict);

/* mmoe_predict(model bytea, row record) -> real[], in label order */
Datum
mmoe_predict(PG_FUNCTION_ARGS)
{
	predict_cache *c = cache_get(fcinfo);
	esmm_model *m = cached_model(fcinfo, c, true);
	esmm_batch	batch;
	float		out[ESMM_MAX_LABELS];
	Datum		values[ESMM_MAX_LABELS];
	uint32_t	T = m->mmoe.n_tasks;

	encode_one(c, PG_GETARG_HEAPTUPLEHEADER(1), &batch);
	mmoe_model_predict(m, &batch, out);
	for (uint32_t t = 0; t < T; t++)
		values[t] = Float4GetDatum(out[t]);
	PG_RETURN_ARRAYTYPE_P(construct_array(values, (int) T, FLOAT4OID, sizeof(float4),
										  true, TYPALIGN_INT));
}
