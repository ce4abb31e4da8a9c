/*
 * train_agg.c: esmm_train(record, jsonb) -> bytea, in-memory mode.
 *
 * The transition function parses the config on the first row, resolves
 * the schema against the row type, and appends each encoded row to the
 * compact buffer.  The final function computes the normalization
 * statistics, trains for the configured epochs and encodes the model.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/typcache.h"

#include "encoder.h"
#include "esmm_config.h"
#include "esmm_pg.h"

typedef struct esmm_train_state
{
	MemoryContext mcxt;			/* the aggregate's context */
	esmm_config cfg;
	esmm_schema schema;
	esmm_arch	arch;
	esmm_encoder enc;
	esmm_dataset ds;
	size_t		chunks_cap;
	size_t		bytes;			/* encoded bytes, against esmm.max_memory */
	esmm_idbuf	multi;			/* the current chunk's array ids */
	uint32_t   *multi_counts;	/* [n_multi] scratch */
	uint64		rows_seen;
	uint64		rows_dropped;
	uint64		rows_null_label;
	uint64		rows_bad;
} esmm_train_state;

/* ------------------------------------------------------------- buffer */

static void
charge_memory(esmm_train_state *s, size_t bytes)
{
	s->bytes += bytes;
	if (s->bytes > (size_t) esmm_max_memory_kb * 1024)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("training buffer of %zu bytes exceeds esmm.max_memory (%d kB) after " UINT64_FORMAT " rows",
						s->bytes, esmm_max_memory_kb, s->rows_seen),
				 errhint("Raise esmm.max_memory, or train on fewer rows.")));
}

/* Seals the current chunk's array ids into it. */
static void
seal_multi(esmm_train_state *s)
{
	esmm_chunk *c;

	if (s->ds.n_multi == 0 || s->ds.n_chunks == 0)
		return;
	c = &s->ds.chunks[s->ds.n_chunks - 1];
	c->multi_ids = s->multi.ids;
	c->multi_cap = s->multi.cap;
}

/* The chunk that receives row ds.n_rows, allocated when it begins. */
static esmm_chunk *
current_chunk(esmm_train_state *s)
{
	esmm_dataset *ds = &s->ds;
	size_t		k = ds->n_rows >> ESMM_CHUNK_ROWS_LOG2;
	esmm_chunk *c;
	size_t		rows = ESMM_CHUNK_ROWS;

	if (k < ds->n_chunks)
		return &ds->chunks[k];

	seal_multi(s);
	if (ds->n_chunks == s->chunks_cap)
	{
		s->chunks_cap = Max(16, s->chunks_cap * 2);
		ds->chunks = ds->chunks == NULL ?
			MemoryContextAllocZero(s->mcxt, s->chunks_cap * sizeof(esmm_chunk)) :
			repalloc_huge(ds->chunks, s->chunks_cap * sizeof(esmm_chunk));
	}
	charge_memory(s, rows * (ds->n_ids * sizeof(int32_t) + ds->n_nums * sizeof(float) +
							 ds->n_labels * sizeof(float) +
							 (ds->n_multi ? ds->n_multi * sizeof(uint32_t) : 0)));
	c = &ds->chunks[ds->n_chunks++];
	memset(c, 0, sizeof(*c));
	c->ids = MemoryContextAllocHuge(s->mcxt, Max(1, rows * ds->n_ids) * sizeof(int32_t));
	c->nums = MemoryContextAllocHuge(s->mcxt, Max(1, rows * ds->n_nums) * sizeof(float));
	c->labels = MemoryContextAllocHuge(s->mcxt, rows * ds->n_labels * sizeof(float));
	if (ds->n_multi > 0)
	{
		c->multi_off = MemoryContextAllocHuge(s->mcxt, (rows * ds->n_multi + 1) * sizeof(uint32_t));
		c->multi_off[0] = 0;
		s->multi.ids = NULL;
		s->multi.len = 0;
		s->multi.cap = 0;
	}
	return c;
}

/* ------------------------------------------------------------ state */

static esmm_train_state *
train_state_new(MemoryContext aggcxt, Jsonb *cfg_json, HeapTupleHeader tup)
{
	MemoryContext old = MemoryContextSwitchTo(aggcxt);
	esmm_train_state *s = palloc0(sizeof(esmm_train_state));
	TupleDesc	td;

	s->mcxt = aggcxt;
	esmm_config_parse(&s->cfg, cfg_json);
	if (s->cfg.validation_fraction > 0 || s->cfg.early_stopping_given ||
		s->cfg.n_metric_requests > 0)
		ereport(NOTICE,
				(errmsg("train_args.validation_fraction, early_stopping and metrics are checked but not applied yet: every row trains for every epoch")));
	td = lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(tup), HeapTupleHeaderGetTypMod(tup));
	PG_TRY();
	{
		s->arch = s->cfg.arch;
		esmm_schema_resolve(&s->schema, &s->arch, &s->cfg, td);
	}
	PG_FINALLY();
	{
		ReleaseTupleDesc(td);
	}
	PG_END_TRY();
	s->enc.skip_bad_rows = s->cfg.on_bad_row_skip;
	esmm_encoder_bind(&s->enc, &s->schema, tup, true, aggcxt);
	s->ds.n_ids = s->enc.n_ids;
	s->ds.n_nums = s->enc.n_nums;
	s->ds.n_multi = s->enc.n_multi;
	s->ds.n_labels = 2;
	s->multi.mcxt = aggcxt;
	s->multi_counts = palloc0(sizeof(uint32_t) * Max(1, s->enc.n_multi));
	MemoryContextSwitchTo(old);
	return s;
}

/*
 * Applies ESMM's label rules to an encoded row: the second label becomes
 * click AND conversion, and a conversion without a click is dropped.
 * Returns false for a dropped row.
 */
static bool
esmm_labels_apply(const esmm_arch *arch, float *labels)
{
	if (labels[0] == 0.0f && labels[1] == 1.0f)
		return false;
	if (!arch->label_is_ctcvr)
		labels[1] = labels[0] * labels[1];
	return true;
}

PG_FUNCTION_INFO_V1(esmm_train_sfunc);

/* esmm_train's transition: encode one row into the buffer. */
Datum
esmm_train_sfunc(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	esmm_train_state *s;
	HeapTupleHeader tup;
	esmm_dataset *ds;
	esmm_chunk *c;
	size_t		r;
	size_t		multi_before;
	esmm_row_status rs;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("esmm_train_sfunc called in non-aggregate context")));
	s = PG_ARGISNULL(0) ? NULL : (esmm_train_state *) PG_GETARG_POINTER(0);
	/* a NULL row (an outer join's, say) carries nothing to train on */
	if (PG_ARGISNULL(1))
	{
		if (s == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(s);
	}
	if (s == NULL && PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("esmm_train configuration must not be null")));
	tup = PG_GETARG_HEAPTUPLEHEADER(1);
	if (s == NULL)
		s = train_state_new(aggcxt, PG_GETARG_JSONB_P(2), tup);
	else if (!esmm_encoder_matches(&s->enc, tup))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("esmm_train received rows of different types")));

	s->rows_seen++;
	ds = &s->ds;
	c = current_chunk(s);
	r = ds->n_rows & (ESMM_CHUNK_ROWS - 1);
	multi_before = s->multi.len;
	rs = esmm_encode_row(&s->enc, tup, c->ids + r * ds->n_ids, c->nums + r * ds->n_nums,
						 &s->multi, s->multi_counts, c->labels + r * ds->n_labels);
	if (rs != ESMM_ROW_OK || !esmm_labels_apply(&s->arch, c->labels + r * ds->n_labels))
	{
		/* the slot is reused by the next row; forget its array ids */
		s->multi.len = multi_before;
		if (rs == ESMM_ROW_NULL_LABEL)
			s->rows_null_label++;
		else if (rs == ESMM_ROW_BAD)
			s->rows_bad++;
		else
			s->rows_dropped++;
		PG_RETURN_POINTER(s);
	}
	if (ds->n_multi > 0)
	{
		uint32_t	base = c->multi_off[r * ds->n_multi];

		if (s->multi.len > UINT32_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many array ids in one chunk of the training buffer")));
		for (uint32_t k = 0; k < ds->n_multi; k++)
		{
			base += s->multi_counts[k];
			c->multi_off[r * ds->n_multi + k + 1] = base;
		}
		charge_memory(s, (s->multi.len - multi_before) * sizeof(int32_t));
	}
	ds->n_rows++;
	PG_RETURN_POINTER(s);
}

/* ---------------------------------------------------------- progress */

typedef struct train_progress
{
	const esmm_train_spec *ts;
	instr_time	last_notice;
} train_progress;

/*
 * Between batches, on the main thread: honour a cancel (the core owns no
 * memory outside the model, which its memory-context callback frees) and
 * report progress every every_batches batches, or every 5 seconds.
 */
static int
esmm_train_progress(void *arg, const esmm_progress *p)
{
	train_progress *tp = (train_progress *) arg;
	instr_time	now;
	bool		due;

	CHECK_FOR_INTERRUPTS();
	INSTR_TIME_SET_CURRENT(now);
	if (p->end_of_epoch)
	{
		ereport(NOTICE,
				(errmsg("epoch %u/%u: loss %.6f, " UINT64_FORMAT " rows, %.0f rows/s",
						p->epoch, tp->ts->epochs, p->running_loss, p->rows_done,
						p->seconds > 0 ? p->rows_done / p->seconds : 0.0)));
		tp->last_notice = now;
		return 0;
	}
	if (tp->ts->log_every_batches > 0)
		due = p->batch % tp->ts->log_every_batches == 0;
	else
	{
		instr_time	elapsed = now;

		INSTR_TIME_SUBTRACT(elapsed, tp->last_notice);
		due = INSTR_TIME_GET_DOUBLE(elapsed) >= 5.0;
	}
	if (due)
	{
		ereport(NOTICE,
				(errmsg("epoch %u/%u, batch " UINT64_FORMAT "/" UINT64_FORMAT ": loss %.6f, %.0f rows/s",
						p->epoch, tp->ts->epochs, p->batch, p->batches, p->running_loss,
						p->seconds > 0 ? p->rows_done / p->seconds : 0.0)));
		tp->last_notice = now;
	}
	return 0;
}

/* A label with one class trains, but its AUC is undefined: say so. */
static void
notice_single_class(const esmm_train_state *s)
{
	for (uint32_t i = 0; i < 2; i++)
	{
		uint64		pos = 0;

		for (size_t r = 0; r < s->ds.n_rows; r++)
			pos += esmm_dataset_labels(&s->ds, r)[i] > 0.5f;
		if (pos == 0 || pos == s->ds.n_rows)
			ereport(WARNING,
					(errmsg("label \"%s\" has a single class in the %zu training rows",
							i == 0 ? s->schema.labels[0] :
							s->arch.label_is_ctcvr ? s->schema.labels[1] : "ctcvr",
							s->ds.n_rows)));
	}
}

PG_FUNCTION_INFO_V1(esmm_train_final);

/* esmm_train's final function: train on the buffer, return the model. */
Datum
esmm_train_final(PG_FUNCTION_ARGS)
{
	esmm_train_state *s;
	esmm_status st;
	esmm_model *m = NULL;
	esmm_model_handle *h;
	train_progress tp;
	size_t		n_params;
	char	   *cfg_text;
	bytea	   *out;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	s = (esmm_train_state *) PG_GETARG_POINTER(0);
	if (s->ds.n_rows == 0)
	{
		ereport(NOTICE,
				(errmsg("no rows to train on: " UINT64_FORMAT " rows seen, " UINT64_FORMAT " with a NULL label, " UINT64_FORMAT " dropped, " UINT64_FORMAT " bad",
						s->rows_seen, s->rows_null_label, s->rows_dropped, s->rows_bad)));
		PG_RETURN_NULL();
	}
	seal_multi(s);
	notice_single_class(s);
	esmm_schema_fit_stats(&s->schema, &s->ds);

	esmm_status_clear(&st);
	if (esmm_model_plan(&s->schema, &s->arch, ESMM_KIND_ESMM, &n_params, &st) != ESMM_OK)
		esmm_report_status(&st);
	/* params, gradients and two moments */
	if ((double) n_params * sizeof(float) * 4 + s->bytes > (double) esmm_max_memory_kb * 1024)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("model of %zu parameters needs %.0f MB to train, more than esmm.max_memory (%d kB) allows",
						n_params, (double) n_params * sizeof(float) * 4 / 1048576.0, esmm_max_memory_kb),
				 errhint("Use fewer hash buckets or narrower embeddings, or raise esmm.max_memory.")));
	if ((double) n_params * sizeof(float) > (double) MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("model of %zu parameters would exceed the 1 GB bytea limit", n_params),
				 errhint("Use fewer hash buckets or narrower embeddings.")));

	/* the handle exists before the model, so no ERROR can orphan it */
	h = esmm_handle_new(NULL, CurrentMemoryContext);
	if (esmm_model_create(&h->model, &s->schema, &s->arch, ESMM_KIND_ESMM, &st) != ESMM_OK)
		esmm_report_status(&st);
	m = h->model;
	cfg_text = JsonbToCString(NULL, &s->cfg.normalized->root, VARSIZE(s->cfg.normalized));
	if (esmm_model_set_config(m, cfg_text, strlen(cfg_text), &st) != ESMM_OK)
		esmm_report_status(&st);
	esmm_model_init(m, s->cfg.train.seed);
	if (esmm_model_train_begin(m, &s->cfg.train.optim, (int) s->cfg.train.batch_size,
							   s->cfg.train.seed, &st) != ESMM_OK)
		esmm_report_status(&st);
	m->report.rows_seen = s->rows_seen;
	m->report.rows_trained = s->ds.n_rows;
	m->report.rows_dropped = s->rows_dropped;
	m->report.rows_null_label = s->rows_null_label;
	m->report.rows_bad = s->rows_bad;
	m->report.threads = (uint32_t) esmm_threads;

	esmm_threads_prepare();
	tp.ts = &s->cfg.train;
	INSTR_TIME_SET_CURRENT(tp.last_notice);
	if (esmm_model_train(m, &s->ds, &s->cfg.train, esmm_train_progress, &tp, &st) != ESMM_OK)
		esmm_report_status(&st);
	ereport(NOTICE,
			(errmsg("trained %u epochs on " UINT64_FORMAT " rows in %.1f s: final loss %.6f; " UINT64_FORMAT " rows dropped (conversion without click), " UINT64_FORMAT " with a NULL label, " UINT64_FORMAT " bad",
					m->report.n_epochs, m->report.rows_trained, m->report.seconds,
					m->report.epochs[m->report.n_epochs - 1].train_loss,
					m->report.rows_dropped, m->report.rows_null_label, m->report.rows_bad)));

	out = esmm_model_to_bytea(m, false);
	esmm_handle_release(h);
	PG_RETURN_BYTEA_P(out);
}
