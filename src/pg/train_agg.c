/*
 * train_agg.c: esmm_train(record, jsonb) -> bytea and
 * mmoe_train(record, jsonb) -> bytea, in-memory mode.
 *
 * The transition function parses the config on the first row, resolves
 * the schema against the row type, and appends each encoded row to the
 * compact training buffer, or to the validation buffer when a hash of the
 * row falls in validation_fraction.  The final function computes the
 * normalization statistics on the training rows, trains for the
 * configured epochs with the validation metrics and early stopping, and
 * encodes the model.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "common/hashfn.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/typcache.h"

#include "encoder.h"
#include "esmm_config.h"
#include "esmm_pg.h"

/* Encoded rows in chunks: the training rows, or the validation rows. */
typedef struct row_buffer
{
	esmm_dataset ds;
	size_t		chunks_cap;
	esmm_idbuf	multi;			/* the current chunk's array ids */
} row_buffer;

typedef struct esmm_train_state
{
	MemoryContext mcxt;			/* the aggregate's context */
	esmm_model_kind kind;		/* ESMM_KIND_ESMM or ESMM_KIND_MMOE */
	esmm_config cfg;
	esmm_schema schema;
	esmm_arch	arch;			/* ESMM */
	mmoe_arch	mmoe;			/* MMoE */
	esmm_eval_spec ev;			/* the metrics and early stopping asked for */
	esmm_encoder enc;
	row_buffer	train;
	row_buffer	val;
	uint64		val_threshold;	/* a row whose hash is below goes to val */
	size_t		bytes;			/* encoded bytes, against esmm.max_memory */
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
seal_multi(row_buffer *buf)
{
	esmm_chunk *c;

	if (buf->ds.n_multi == 0 || buf->ds.n_chunks == 0)
		return;
	c = &buf->ds.chunks[buf->ds.n_chunks - 1];
	c->multi_ids = buf->multi.ids;
	c->multi_cap = buf->multi.cap;
}

/* The chunk of buf that receives its next row, allocated when it begins. */
static esmm_chunk *
current_chunk(esmm_train_state *s, row_buffer *buf)
{
	esmm_dataset *ds = &buf->ds;
	size_t		k = ds->n_rows >> ESMM_CHUNK_ROWS_LOG2;
	esmm_chunk *c;
	size_t		rows = ESMM_CHUNK_ROWS;

	if (k < ds->n_chunks)
		return &ds->chunks[k];

	seal_multi(buf);
	if (ds->n_chunks == buf->chunks_cap)
	{
		buf->chunks_cap = Max(16, buf->chunks_cap * 2);
		ds->chunks = ds->chunks == NULL ?
			MemoryContextAllocZero(s->mcxt, buf->chunks_cap * sizeof(esmm_chunk)) :
			repalloc_huge(ds->chunks, buf->chunks_cap * sizeof(esmm_chunk));
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
		buf->multi.ids = NULL;
		buf->multi.len = 0;
		buf->multi.cap = 0;
	}
	return c;
}

/* An empty buffer for rows of the encoder's widths. */
static void
row_buffer_init(row_buffer *buf, const esmm_encoder *enc, MemoryContext cxt)
{
	memset(buf, 0, sizeof(*buf));
	buf->ds.n_ids = enc->n_ids;
	buf->ds.n_nums = enc->n_nums;
	buf->ds.n_multi = enc->n_multi;
	buf->ds.n_labels = enc->schema->n_labels;
	buf->multi.mcxt = cxt;
}

/*
 * Whether a row is held out for validation: by a hash of its contents,
 * never by its position, so that the same rows are held out whatever the
 * scan order.
 */
static bool
row_is_validation(const esmm_train_state *s, HeapTupleHeader tup)
{
	uint32		len = HeapTupleHeaderGetDatumLength(tup);
	uint64		h;

	if (s->val_threshold == 0)
		return false;
	/* the null bitmap and the data: everything but the header fields */
	h = hash_bytes_extended((const unsigned char *) tup + offsetof(HeapTupleHeaderData, t_bits),
							len - offsetof(HeapTupleHeaderData, t_bits), 0x65736d6d);
	return h < s->val_threshold;
}

/* ------------------------------------------------------------ state */

/*
 * The evaluation the config asks for: the metrics of train_args.metrics
 * and eval_args.metrics (union), named <label>_<metric>, and the early
 * stopping monitor, added to the metrics when it is not among them.
 */
static void
eval_spec_from_config(esmm_eval_spec *ev, const esmm_config *cfg)
{
	const esmm_metric_request *lists[2] = {cfg->metric_requests, cfg->eval_metric_requests};
	const uint32_t counts[2] = {cfg->n_metric_requests, cfg->n_eval_metric_requests};

	memset(ev, 0, sizeof(*ev));
	ev->monitor = ESMM_MONITOR_NONE;
	for (int l = 0; l < 2; l++)
		for (uint32_t i = 0; i < counts[l]; i++)
			for (uint32_t j = 0; j < lists[l][i].n_metrics; j++)
			{
				char		name[ESMM_NAME_LEN + 16];
				int			label = esmm_config_label_index(cfg, lists[l][i].label);
				int			kind;
				uint32_t	k;

				for (kind = 0; kind < ESMM_METRIC_COUNT; kind++)
					if (strcmp(lists[l][i].metrics[j], esmm_metric_names[kind]) == 0)
						break;
				snprintf(name, sizeof(name), "%s_%s", lists[l][i].label, lists[l][i].metrics[j]);
				for (k = 0; k < ev->n_metrics; k++)
					if (strcmp(ev->metrics[k].name, name) == 0)
						break;
				if (kind == ESMM_METRIC_COUNT || k < ev->n_metrics)
					continue;
				/* ESMM's parser accepts its labels' names only; "ctcvr" too */
				if (label < 0)
					label = cfg->kind == ESMM_KIND_MMOE ? 0 : 1;
				/* the history keeps 31 bytes of a name: never drop one silently */
				if (strlen(name) >= 32)
					ereport(ERROR,
							(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
							 errmsg("metric name \"%s\" is longer than 31 bytes", name),
							 errhint("Metrics are named <label>_<metric>; rename the label column to at most %d bytes.",
									 30 - (int) strlen(lists[l][i].metrics[j]))));
				if (ev->n_metrics == ESMM_MAX_EVAL_METRICS)
					ereport(ERROR,
							(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
							 errmsg("too many metrics: at most %d per model", ESMM_MAX_EVAL_METRICS),
							 errhint("List fewer metrics in train_args.metrics and eval_args.metrics.")));
				ev->metrics[k].label = (uint8_t) label;
				ev->metrics[k].metric = (uint8_t) kind;
				strlcpy(ev->metrics[k].name, name, sizeof(ev->metrics[k].name));
				ev->n_metrics++;
			}
	if (!cfg->early_stopping_given)
		return;
	ev->early_stopping = 1;
	ev->mode_max = cfg->es_mode_max;
	ev->patience = cfg->es_patience;
	ev->min_delta = cfg->es_min_delta;
	if (strcmp(cfg->es_monitor, "val_loss") == 0)
		ev->monitor = ESMM_MONITOR_VAL_LOSS;
	else if (strcmp(cfg->es_monitor, "loss") == 0)
		ev->monitor = ESMM_MONITOR_LOSS;
	else
	{
		if (strlen(cfg->es_monitor) >= 32)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("early_stopping monitor \"%s\" is longer than 31 bytes", cfg->es_monitor),
					 errhint("Monitors are named <label>_<metric>; rename the label column, or monitor val_loss.")));
		for (uint32_t k = 0; k < ev->n_metrics; k++)
			if (strcmp(ev->metrics[k].name, cfg->es_monitor) == 0)
				ev->monitor = (int) k;
		if (ev->monitor == ESMM_MONITOR_NONE)
		{
			/* "<label>_<metric>": the parser accepted only such names */
			const char **labels = esmm_config_labels(cfg);

			for (int label = 0; labels[label] != NULL; label++)
				for (int kind = 0; kind < ESMM_METRIC_COUNT; kind++)
				{
					char		name[ESMM_NAME_LEN + 16];

					snprintf(name, sizeof(name), "%s_%s", labels[label], esmm_metric_names[kind]);
					if (strcmp(name, cfg->es_monitor) == 0 && ev->n_metrics < ESMM_MAX_EVAL_METRICS &&
						strlen(name) < 32)
					{
						ev->metrics[ev->n_metrics].label = (uint8_t) label;
						ev->metrics[ev->n_metrics].metric = (uint8_t) kind;
						strlcpy(ev->metrics[ev->n_metrics].name, name, 32);
						ev->monitor = (int) ev->n_metrics++;
					}
				}
		}
	}
}



static esmm_train_state *
train_state_new(MemoryContext aggcxt, Jsonb *cfg_json, HeapTupleHeader tup,
				esmm_model_kind kind)
{
	MemoryContext old = MemoryContextSwitchTo(aggcxt);
	esmm_train_state *s = palloc0(sizeof(esmm_train_state));
	TupleDesc	td;

	s->mcxt = aggcxt;
	s->kind = kind;
	esmm_config_parse_kind(&s->cfg, cfg_json, kind);
	td = lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(tup), HeapTupleHeaderGetTypMod(tup));
	PG_TRY();
	{
		s->arch = s->cfg.arch;
		s->mmoe = s->cfg.mmoe;
		if (kind == ESMM_KIND_MMOE)
			mmoe_schema_resolve(&s->schema, &s->mmoe, &s->cfg, td);
		else
			esmm_schema_resolve(&s->schema, &s->arch, &s->cfg, td);
	}
	PG_FINALLY();
	{
		ReleaseTupleDesc(td);
	}
	PG_END_TRY();
	/* before the first row is buffered: a config error must not wait for
	 * the whole scan */
	eval_spec_from_config(&s->ev, &s->cfg);
	s->enc.skip_bad_rows = s->cfg.on_bad_row_skip;
	esmm_encoder_bind(&s->enc, &s->schema, tup, true,
					  kind == ESMM_KIND_MMOE ? s->mmoe.task_type : NULL, aggcxt);
	row_buffer_init(&s->train, &s->enc, aggcxt);
	row_buffer_init(&s->val, &s->enc, aggcxt);
	s->val_threshold = (uint64) ((double) s->cfg.validation_fraction * 18446744073709551615.0);
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

/* The transition of esmm_train and mmoe_train: encode one row into the
 * training or the validation buffer. */
static Datum
train_transition(FunctionCallInfo fcinfo, esmm_model_kind kind, const char *fn)
{
	MemoryContext aggcxt;
	esmm_train_state *s;
	HeapTupleHeader tup;
	row_buffer *buf;
	esmm_dataset *ds;
	esmm_chunk *c;
	size_t		r;
	size_t		multi_before;
	esmm_row_status rs;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s called in non-aggregate context", fn)));
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
				 errmsg("%s configuration must not be null", fn)));
	tup = PG_GETARG_HEAPTUPLEHEADER(1);
	if (s == NULL)
		s = train_state_new(aggcxt, PG_GETARG_JSONB_P(2), tup, kind);
	else if (!esmm_encoder_matches(&s->enc, tup))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s received rows of different types", fn)));

	s->rows_seen++;
	buf = row_is_validation(s, tup) ? &s->val : &s->train;
	ds = &buf->ds;
	c = current_chunk(s, buf);
	r = ds->n_rows & (ESMM_CHUNK_ROWS - 1);
	multi_before = buf->multi.len;
	rs = esmm_encode_row(&s->enc, tup, c->ids + r * ds->n_ids, c->nums + r * ds->n_nums,
						 &buf->multi, s->multi_counts, c->labels + r * ds->n_labels);
	if (rs != ESMM_ROW_OK ||
		(kind != ESMM_KIND_MMOE && !esmm_labels_apply(&s->arch, c->labels + r * ds->n_labels)))
	{
		/* the slot is reused by the next row; forget its array ids */
		buf->multi.len = multi_before;
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

		if (buf->multi.len > UINT32_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many array ids in one chunk of the training buffer")));
		for (uint32_t k = 0; k < ds->n_multi; k++)
		{
			base += s->multi_counts[k];
			c->multi_off[r * ds->n_multi + k + 1] = base;
		}
		charge_memory(s, (buf->multi.len - multi_before) * sizeof(int32_t));
	}
	ds->n_rows++;
	PG_RETURN_POINTER(s);
}

PG_FUNCTION_INFO_V1(esmm_train_sfunc);

/* esmm_train's transition. */
Datum
esmm_train_sfunc(PG_FUNCTION_ARGS)
{
	return train_transition(fcinfo, ESMM_KIND_ESMM, "esmm_train");
}

PG_FUNCTION_INFO_V1(mmoe_train_sfunc);

/* mmoe_train's transition. */
Datum
mmoe_train_sfunc(PG_FUNCTION_ARGS)
{
	return train_transition(fcinfo, ESMM_KIND_MMOE, "mmoe_train");
}

/* ---------------------------------------------------------- progress */

typedef struct train_progress
{
	const esmm_config *cfg;
	const esmm_model *m;
	instr_time	last_notice;
	StringInfoData metrics;		/* the last epoch's metrics, for with_metrics */
} train_progress;

/* ", name value" for each metric of an epoch's history entry. */
static void
format_metrics(StringInfo out, const esmm_history_epoch *h)
{
	resetStringInfo(out);
	for (uint32_t k = 0; k < h->n_metrics; k++)
		appendStringInfo(out, ", %s %.6f", h->metric_names[k], h->metric_values[k]);
}

/*
 * Between batches, on the main thread: honour a cancel (the core owns no
 * memory outside the model, which its memory-context callback frees) and
 * report progress every every_batches batches, or every 5 seconds, and
 * after each epoch with its validation metrics.
 */
static int
esmm_train_progress(void *arg, const esmm_progress *p)
{
	train_progress *tp = (train_progress *) arg;
	const esmm_train_spec *ts = &tp->cfg->train;
	instr_time	now;
	bool		due;

	CHECK_FOR_INTERRUPTS();
	INSTR_TIME_SET_CURRENT(now);
	if (p->end_of_epoch)
	{
		format_metrics(&tp->metrics, p->history);
		ereport(NOTICE,
				(errmsg("epoch %u/%u: loss %.6f%s, " UINT64_FORMAT " rows, %.0f rows/s",
						p->epoch, ts->epochs, p->running_loss, tp->metrics.data, p->rows_done,
						p->seconds > 0 ? p->rows_done / p->seconds : 0.0)));
		if (p->stopping)
			ereport(NOTICE,
					(errmsg("early stopping after epoch %u: %s has not improved by more than %g for %u epochs; keeping the weights of epoch %u",
							p->epoch, tp->cfg->es_monitor, tp->cfg->es_min_delta,
							tp->cfg->es_patience, tp->m->report.best_epoch)));
		tp->last_notice = now;
		return 0;
	}
	if (ts->log_every_batches > 0)
		due = p->batch % ts->log_every_batches == 0;
	else
	{
		instr_time	elapsed = now;

		INSTR_TIME_SUBTRACT(elapsed, tp->last_notice);
		due = INSTR_TIME_GET_DOUBLE(elapsed) >= 5.0;
	}
	if (due)
	{
		ereport(NOTICE,
				(errmsg("epoch %u/%u, batch " UINT64_FORMAT "/" UINT64_FORMAT ": loss %.6f, %.0f rows/s%s%s",
						p->epoch, ts->epochs, p->batch, p->batches, p->running_loss,
						p->seconds > 0 ? p->rows_done / p->seconds : 0.0,
						ts->log_with_metrics && tp->metrics.len > 0 ? "; last epoch" : "",
						ts->log_with_metrics ? tp->metrics.data : "")));
		tp->last_notice = now;
	}
	return 0;
}

/* A label with one class trains, but its AUC is undefined: say so. */
static void
notice_single_class(const esmm_train_state *s)
{
	for (uint32_t i = 0; i < s->schema.n_labels; i++)
	{
		uint64		pos = 0;

		if (s->kind == ESMM_KIND_MMOE && s->mmoe.task_type[i] == MMOE_TASK_REGRESSION)
			continue;
		for (size_t r = 0; r < s->train.ds.n_rows; r++)
			pos += esmm_dataset_labels(&s->train.ds, r)[i] > 0.5f;
		if (pos == 0 || pos == s->train.ds.n_rows)
			ereport(WARNING,
					(errmsg("label \"%s\" has a single class in the %zu training rows",
							i == 0 || s->kind == ESMM_KIND_MMOE || s->arch.label_is_ctcvr ?
							s->schema.labels[i] : "ctcvr",
							s->train.ds.n_rows)));
	}
}

/* The final function of esmm_train and mmoe_train: train on the buffer,
 * return the model. */
static Datum
train_finish(FunctionCallInfo fcinfo)
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
	if (s->train.ds.n_rows == 0)
	{
		ereport(NOTICE,
				(errmsg("no rows to train on: " UINT64_FORMAT " rows seen, " UINT64_FORMAT " with a NULL label, " UINT64_FORMAT " dropped, " UINT64_FORMAT " bad",
						s->rows_seen, s->rows_null_label, s->rows_dropped, s->rows_bad)));
		PG_RETURN_NULL();
	}
	seal_multi(&s->train);
	seal_multi(&s->val);
	notice_single_class(s);
	/* statistics of the training rows only: validation must not leak in */
	esmm_schema_fit_stats(&s->schema, &s->train.ds);

	esmm_status_clear(&st);
	if ((s->kind == ESMM_KIND_MMOE ? mmoe_model_plan(&s->schema, &s->mmoe, &n_params, &st) :
		 esmm_model_plan(&s->schema, &s->arch, ESMM_KIND_ESMM, &n_params, &st)) != ESMM_OK)
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
	if ((s->kind == ESMM_KIND_MMOE ? mmoe_model_create(&h->model, &s->schema, &s->mmoe, &st) :
		 esmm_model_create(&h->model, &s->schema, &s->arch, ESMM_KIND_ESMM, &st)) != ESMM_OK)
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
	m->report.rows_trained = s->train.ds.n_rows;
	m->report.rows_dropped = s->rows_dropped;
	m->report.rows_null_label = s->rows_null_label;
	m->report.rows_bad = s->rows_bad;
	m->report.threads = (uint32_t) esmm_threads;

	esmm_threads_prepare();
	tp.cfg = &s->cfg;
	tp.m = m;
	initStringInfo(&tp.metrics);
	INSTR_TIME_SET_CURRENT(tp.last_notice);
	if (esmm_model_fit(m, &s->train.ds, &s->val.ds, &s->cfg.train, &s->ev,
					   esmm_train_progress, &tp, &st) != ESMM_OK)
		esmm_report_status(&st);
	ereport(NOTICE,
			(errmsg("trained %u epochs on " UINT64_FORMAT " rows (" UINT64_FORMAT " more held out for validation) in %.1f s: final loss %.6f%s; %s" UINT64_FORMAT " with a NULL label, " UINT64_FORMAT " bad",
					m->report.n_epochs, m->report.rows_trained, m->report.rows_validation,
					m->report.seconds, m->report.epochs[m->report.n_epochs - 1].train_loss,
					m->report.best_epoch > 0 ?
					psprintf(", weights of epoch %u", m->report.best_epoch) : "",
					s->kind == ESMM_KIND_MMOE ? "" :
					psprintf(UINT64_FORMAT " rows dropped (conversion without click), ",
							 m->report.rows_dropped),
					m->report.rows_null_label, m->report.rows_bad)));

	out = esmm_model_to_bytea(m, false);
	esmm_handle_release(h);
	PG_RETURN_BYTEA_P(out);
}

PG_FUNCTION_INFO_V1(esmm_train_final);

/* esmm_train's final function. */
Datum
esmm_train_final(PG_FUNCTION_ARGS)
{
	return train_finish(fcinfo);
}

PG_FUNCTION_INFO_V1(mmoe_train_final);

/* mmoe_train's final function. */
Datum
mmoe_train_final(PG_FUNCTION_ARGS)
{
	return train_finish(fcinfo);
}
