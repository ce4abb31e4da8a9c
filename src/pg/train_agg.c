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
#include "access/parallel.h"
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
	size_t		bytes;			/* charged against the budget */
	size_t		cap_rows;		/* rows the chunks have room for */
	esmm_idbuf	multi;			/* the current chunk's array ids */
} row_buffer;

#define TRAIN_STATE_MAGIC 0x45534d53	/* "ESMS" */

typedef struct esmm_train_state
{
	uint32		magic;			/* TRAIN_STATE_MAGIC: not a state_view */
	MemoryContext mcxt;			/* the aggregate's context */
	esmm_model_kind kind;		/* ESMM_KIND_ESMM or ESMM_KIND_MMOE */
	Jsonb	   *cfg_json;		/* as passed, for a parallel worker's state */
	Oid			rowtype;		/* the rows' type, likewise */
	int32		rowtypmod;
	esmm_config cfg;
	esmm_schema schema;
	esmm_arch	arch;			/* ESMM */
	mmoe_arch	mmoe;			/* MMoE */
	esmm_eval_spec ev;			/* the metrics and early stopping asked for */
	esmm_encoder enc;			/* bound on the first row; unbound in a
								 * combined state, which receives no rows */
	row_buffer	train;
	row_buffer	val;
	uint64		val_threshold;	/* a row whose hash is below goes to val */
	size_t		row_bytes;		/* a buffered row without its array ids */
	size_t		budget;			/* esmm.max_memory less the model's memory */
	size_t		bytes;			/* both buffers' bytes */
	uint32_t   *multi_counts;	/* [n_multi] scratch */
	uint64		rows_seen;
	uint64		rows_dropped;
	uint64		rows_null_label;
	uint64		rows_bad;

	/* warm start, evaluation */
	esmm_model_handle *init;	/* the decoded init_model, or NULL */
	bytea	   *eval_model;		/* esmm_evaluate: the model evaluated */
	bool		evaluate_only;	/* esmm_evaluate: every row is a validation row */

	/* streaming (SPEC §5) */
	bool		streaming;
	bool		switch_noticed;
	size_t		window_rows;	/* rows trained at a time */
	esmm_model_handle *h;		/* the model being trained, once created */
	uint64		windows;		/* windows trained */
	uint64		rows_trained;
	double		loss_sum;		/* data loss times rows, over the windows */
	double		seconds;		/* spent training windows */
	instr_time	last_notice;
} esmm_train_state;

static void stream_train_window(esmm_train_state *s);
static void switch_to_streaming(esmm_train_state *s, bool announce);

/* ------------------------------------------------------------- buffer */

/* ERROR: the rows would not fit in esmm.max_memory. */
static void
memory_exceeded(const esmm_train_state *s, size_t need)
{
	if (s->streaming)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("validation rows of %zu bytes exceed esmm.max_memory (%d kB) after " UINT64_FORMAT " rows",
						s->val.bytes + need, esmm_max_memory_kb, s->rows_seen),
				 errhint("Lower validation_fraction or raise esmm.max_memory; esmm_fit can validate on a separate table.")));
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("%s buffer of %zu bytes exceeds esmm.max_memory (%d kB) after " UINT64_FORMAT " rows",
					s->evaluate_only ? "evaluation" : "training",
					s->bytes + need, esmm_max_memory_kb, s->rows_seen),
			 s->evaluate_only ?
			 errhint("Raise esmm.max_memory, or evaluate on fewer rows.") :
			 errhint("Raise esmm.max_memory, or set train_args.mode to \"auto\" or \"streaming\" to train on rows as they arrive.")));
}

static void
charge_memory(esmm_train_state *s, row_buffer *buf, size_t bytes)
{
	s->bytes += bytes;
	buf->bytes += bytes;
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

/* Empties buf, giving its memory back. */
static void
row_buffer_reset(esmm_train_state *s, row_buffer *buf)
{
	seal_multi(buf);
	for (size_t k = 0; k < buf->ds.n_chunks; k++)
	{
		esmm_chunk *c = &buf->ds.chunks[k];

		pfree(c->ids);
		pfree(c->nums);
		pfree(c->labels);
		if (c->multi_off)
			pfree(c->multi_off);
		if (c->multi_ids)
			pfree(c->multi_ids);
	}
	buf->ds.n_chunks = 0;
	buf->ds.n_rows = 0;
	buf->ds.order = NULL;
	buf->cap_rows = 0;
	buf->multi.ids = NULL;
	buf->multi.len = buf->multi.cap = 0;
	s->bytes -= buf->bytes;
	buf->bytes = 0;
}

/*
 * The slot of buf's next row: its chunk, and its row r in it.  Trains a
 * streaming window when one is full; in mode auto, switches to streaming
 * when the buffer would outgrow the budget; allocates a chunk (in
 * streaming mode no larger than the window needs) when the last is full.
 */
static esmm_chunk *
row_slot(esmm_train_state *s, row_buffer *buf, size_t *r)
{
	esmm_dataset *ds = &buf->ds;
	const bool	is_train = buf == &s->train && !s->evaluate_only;
	size_t		k;
	size_t		rows = ESMM_CHUNK_ROWS;
	esmm_chunk *c;

	/* a window ends when it is full, when the buffers outgrew the budget,
	 * or when its last chunk, cut short to fit, is full */
	if (is_train && s->streaming && ds->n_rows > 0 &&
		(ds->n_rows >= s->window_rows || s->bytes > s->budget ||
		 (ds->n_rows == buf->cap_rows && (buf->cap_rows & (ESMM_CHUNK_ROWS - 1)) != 0)))
		stream_train_window(s);
	else if (is_train && !s->streaming && s->bytes > s->budget)
	{
		if (s->cfg.mode != ESMM_MODE_AUTO)
			memory_exceeded(s, 0);
		switch_to_streaming(s, true);
	}
	k = ds->n_rows >> ESMM_CHUNK_ROWS_LOG2;
	*r = ds->n_rows & (ESMM_CHUNK_ROWS - 1);
	if (ds->n_rows < buf->cap_rows)
		return &ds->chunks[k];

	if (is_train && s->streaming)
		rows = Min(rows, s->window_rows - ds->n_rows);
	if (s->bytes + rows * s->row_bytes > s->budget)
	{
		if (is_train && !s->streaming && s->cfg.mode == ESMM_MODE_AUTO)
		{
			switch_to_streaming(s, true);
			return row_slot(s, buf, r);
		}
		if (s->streaming && s->train.ds.n_rows > 0)
		{
			/* the validation rows grew into the window's share */
			stream_train_window(s);
			return row_slot(s, buf, r);
		}
		if (!(is_train && s->streaming) || s->bytes + s->row_bytes > s->budget)
			memory_exceeded(s, rows * s->row_bytes);
		rows = (s->budget - s->bytes) / s->row_bytes;
	}

	seal_multi(buf);
	if (ds->n_chunks == buf->chunks_cap)
	{
		buf->chunks_cap = Max(16, buf->chunks_cap * 2);
		ds->chunks = ds->chunks == NULL ?
			MemoryContextAllocZero(s->mcxt, buf->chunks_cap * sizeof(esmm_chunk)) :
			repalloc_huge(ds->chunks, buf->chunks_cap * sizeof(esmm_chunk));
	}
	charge_memory(s, buf, rows * s->row_bytes);
	buf->cap_rows += rows;
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

/*
 * Completes row r of chunk c, whose array ids were appended from
 * multi_before on: their offsets, and their memory.
 */
static void
row_commit(esmm_train_state *s, row_buffer *buf, esmm_chunk *c, size_t r,
		   size_t multi_before, const uint32_t *multi_counts)
{
	esmm_dataset *ds = &buf->ds;

	if (ds->n_multi > 0)
	{
		uint32_t	base = c->multi_off[r * ds->n_multi];

		if (buf->multi.len > UINT32_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many array ids in one chunk of the training buffer")));
		for (uint32_t k = 0; k < ds->n_multi; k++)
		{
			base += multi_counts[k];
			c->multi_off[r * ds->n_multi + k + 1] = base;
		}
		charge_memory(s, buf, (buf->multi.len - multi_before) * sizeof(int32_t));
	}
	ds->n_rows++;
}

/* An empty buffer for rows of the schema's widths. */
static void
row_buffer_init(row_buffer *buf, const esmm_schema *schema, MemoryContext cxt)
{
	uint32_t	slot[ESMM_MAX_FEATURES];

	memset(buf, 0, sizeof(*buf));
	esmm_schema_slots(schema, &buf->ds.n_ids, &buf->ds.n_nums, &buf->ds.n_multi, slot);
	buf->ds.n_labels = schema->n_labels;
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



/* ------------------------------------------------------------ model */

/*
 * Creates the model the state trains: normalization statistics from
 * stats_ds (none: from the init_model, or left at 0 and 1), the seeded
 * initialization, the optimizer, then the warm start from init_model.
 */
static void
state_model_create(esmm_train_state *s, const esmm_dataset *stats_ds)
{
	esmm_status st;
	esmm_model *m;
	char	   *cfg_text;
	int			restored;

	if (s->init == NULL && stats_ds != NULL)
		esmm_schema_fit_stats(&s->schema, stats_ds);
	esmm_status_clear(&st);
	/* the handle exists before the model, so no ERROR can orphan it */
	s->h = esmm_handle_new(NULL, s->mcxt);
	if ((s->kind == ESMM_KIND_MMOE ? mmoe_model_create(&s->h->model, &s->schema, &s->mmoe, &st) :
		 esmm_model_create(&s->h->model, &s->schema, &s->arch, ESMM_KIND_ESMM, &st)) != ESMM_OK)
		esmm_report_status(&st);
	m = s->h->model;
	cfg_text = JsonbToCString(NULL, &s->cfg.normalized->root, VARSIZE(s->cfg.normalized));
	if (esmm_model_set_config(m, cfg_text, strlen(cfg_text), &st) != ESMM_OK)
		esmm_report_status(&st);
	pfree(cfg_text);
	esmm_model_init(m, s->cfg.train.seed);
	if (esmm_model_train_begin(m, &s->cfg.train.optim, (int) s->cfg.train.batch_size,
							   s->cfg.train.seed, &st) != ESMM_OK)
		esmm_report_status(&st);
	if (s->init == NULL)
		return;
	if (esmm_model_warm_start(m, s->init->model, 1, &restored, &st) != ESMM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("init_model does not match the configuration: %s", st.msg),
				 errhint("Warm-start from a model trained with the same features, labels and layer shapes, or leave out init_model.")));
	if (!restored && s->init->model->m1 != NULL && !IsParallelWorker())
		ereport(NOTICE,
				(errmsg("init_model's optimizer state is for another optimizer: the optimizer starts afresh")));
}

/* Between evaluation batches: honour a cancel (the evaluation's buffers
 * belong to the model, which its memory-context callback frees). */
static int
evaluation_progress(void *arg, const esmm_progress *p)
{
	CHECK_FOR_INTERRUPTS();
	return 0;
}

/* ---------------------------------------------------------- streaming */

/* Between a window's batches: honour a cancel; report every 5 seconds. */
static int
stream_progress(void *arg, const esmm_progress *p)
{
	esmm_train_state *s = (esmm_train_state *) arg;
	instr_time	now;

	CHECK_FOR_INTERRUPTS();
	if (p->evaluating)
		return 0;
	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, s->last_notice);
	if (!p->end_of_epoch && INSTR_TIME_GET_DOUBLE(now) >= 5.0)
	{
		ereport(NOTICE,
				(errmsg("streaming: " UINT64_FORMAT " rows trained in " UINT64_FORMAT " windows, window loss %.6f",
						s->rows_trained + p->rows_done, s->windows, p->running_loss)));
		INSTR_TIME_SET_CURRENT(s->last_notice);
	}
	return 0;
}

/*
 * Trains one pass over the buffered training rows, shuffled by a seed of
 * their own, and empties the buffer.  The pass's history entry is folded
 * into the state's running totals: the streaming pass is one epoch.
 */
static void
stream_train_window(esmm_train_state *s)
{
	esmm_dataset *ds = &s->train.ds;
	esmm_train_spec ts = s->cfg.train;
	esmm_status st;
	esmm_model *m;
	esmm_history_epoch *h;

	if (ds->n_rows == 0)
		return;
	seal_multi(&s->train);
	if (s->h == NULL)
		state_model_create(s, ds);
	m = s->h->model;
	s->windows++;
	ts.epochs = 1;
	ts.seed = s->cfg.train.seed * 1000003 + s->windows;
	esmm_threads_prepare();
	esmm_status_clear(&st);
	if (esmm_model_fit(m, ds, NULL, &ts, NULL, stream_progress, s, &st) != ESMM_OK)
		esmm_report_status(&st);
	h = &m->report.epochs[m->report.n_epochs - 1];
	s->loss_sum += h->train_loss * (double) h->rows;
	s->rows_trained += h->rows;
	s->seconds += h->seconds;
	m->report.n_epochs--;
	row_buffer_reset(s, &s->train);
}

/*
 * From here on, train windows as rows arrive: announce (once) when the
 * buffer would exceed esmm.max_memory, quietly when mode streaming asked
 * for it.  The rows already buffered are the first window.
 */
static void
switch_to_streaming(esmm_train_state *s, bool announce)
{
	size_t		fit;

	if (s->streaming)
		return;
	s->streaming = true;
	/* the window's share of the budget; the validation rows take the rest */
	fit = s->budget / s->row_bytes;
	s->window_rows = Max(1, Min((size_t) s->cfg.streaming_window, fit));
	if (announce && !s->switch_noticed && !IsParallelWorker())
	{
		s->switch_noticed = true;
		ereport(NOTICE,
				(errmsg("encoded rows would exceed esmm.max_memory (%d kB) after " UINT64_FORMAT " rows: training in streaming mode, one pass in windows of up to %zu rows",
						esmm_max_memory_kb, s->rows_seen, s->window_rows),
				 errhint("esmm_fit trains several epochs over a table of any size; set train_args.mode to \"memory\" to make this an error.")));
	}
	stream_train_window(s);
}

/* What a decoded model holds: esmm_model_memory's count, and the
 * optimizer moments a stored model can bring along. */
static double
held_model_bytes(const esmm_model *m)
{
	return (double) esmm_model_memory(m, m->max_B, 0) +
		(m->m1 != NULL ? 2.0 * m->n_params * sizeof(float) : 0.0);
}

/*
 * A state for rows of type td under cfg_json: the config parsed (its
 * NOTICEs only when notices), the schema resolved, the memory budget set,
 * and the init_model decoded and checked against the schema.  The encoder
 * is bound by the first row (train_bind).
 */
static esmm_train_state *
train_state_new(MemoryContext aggcxt, Jsonb *cfg_json, Oid rowtype, int32 rowtypmod,
				esmm_model_kind kind, bool notices, bytea *eval_model)
{
	MemoryContext old = MemoryContextSwitchTo(aggcxt);
	esmm_train_state *s = palloc0(sizeof(esmm_train_state));
	TupleDesc	td;
	size_t		n_params,
				model_bytes;
	double		need;
	int			batch;
	unsigned	what;
	esmm_status st;

	s->magic = TRAIN_STATE_MAGIC;
	s->mcxt = aggcxt;
	s->kind = kind;
	s->cfg_json = (Jsonb *) PG_DETOAST_DATUM_COPY(PointerGetDatum(cfg_json));
	s->rowtype = rowtype;
	s->rowtypmod = rowtypmod;
	esmm_config_parse_notices(&s->cfg, s->cfg_json, kind, notices);
	td = lookup_rowtype_tupdesc(rowtype, rowtypmod);
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
	row_buffer_init(&s->train, &s->schema, aggcxt);
	row_buffer_init(&s->val, &s->schema, aggcxt);
	/* a row's encoded values, and its slots in the canonical order and in
	 * the epoch's permutation; when the aggregate evaluates, an
	 * evaluation's scores and scratch per row */
	s->row_bytes = (s->train.ds.n_ids + s->train.ds.n_nums + s->train.ds.n_labels +
					s->train.ds.n_multi + 2) * sizeof(int32_t);
	if (eval_model != NULL || s->ev.n_metrics > 0 || s->ev.early_stopping ||
		s->cfg.validation_fraction > 0)
		s->row_bytes += esmm_eval_row_bytes(kind, (uint32_t) s->train.ds.n_labels);
	s->val_threshold = (uint64) ((double) s->cfg.validation_fraction * 18446744073709551615.0);
	s->multi_counts = palloc0(sizeof(uint32_t) * Max(1, s->train.ds.n_multi));

	/*
	 * What the model will hold: to train, its parameters, gradients and
	 * two moments, the best epoch's copy under early stopping, the row
	 * blocks' gradients and a batch's workspace; to evaluate, its
	 * parameters and an evaluation batch's workspace
	 */
	batch = (int) (eval_model ? s->cfg.eval_batch_size : s->cfg.train.batch_size);
	what = eval_model ? 0 : ESMM_MEMORY_TRAIN | (s->ev.early_stopping ? ESMM_MEMORY_BEST : 0);
	esmm_status_clear(&st);
	if ((kind == ESMM_KIND_MMOE ?
		 mmoe_model_plan(&s->schema, &s->mmoe, batch, what, &n_params, &model_bytes, &st) :
		 esmm_model_plan(&s->schema, &s->arch, ESMM_KIND_ESMM, batch, what, &n_params, &model_bytes, &st)) != ESMM_OK)
		esmm_report_status(&st);
	if ((double) n_params * sizeof(float) > (double) MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("model of %zu parameters would exceed the 1 GB bytea limit", n_params),
				 errhint("Use fewer hash buckets or narrower embeddings.")));
	/*
	 * What else the state holds: the config as passed (an init_model in it
	 * is hex, twice the model's bytes), and the evaluated model's bytes or
	 * the init_model decoded, with its optimizer state; the init_model's
	 * bytes are not needed once decoded
	 */
	need = (double) model_bytes + VARSIZE_ANY(s->cfg_json);
	if (eval_model != NULL)
		need += VARSIZE_ANY(eval_model);
	else if (s->cfg.init_model != NULL)
	{
		s->init = esmm_model_from_bytea(s->cfg.init_model, 1, aggcxt, true);
		pfree(s->cfg.init_model);
		s->cfg.init_model = NULL;
		need += held_model_bytes(s->init->model);
	}
	if (need + s->row_bytes > (double) esmm_max_memory_kb * 1024)
	{
		if (eval_model != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("model of %zu parameters needs %.0f kB to evaluate in batches of %d rows, more than esmm.max_memory (%d kB) allows",
							n_params, ceil(need / 1024), batch, esmm_max_memory_kb),
					 errhint("Raise esmm.max_memory; the batch size is the model's eval_args.batch_size.")));
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("model of %zu parameters needs %.0f kB to train in batches of %d rows, more than esmm.max_memory (%d kB) allows",
						n_params, ceil(need / 1024), batch, esmm_max_memory_kb),
				 errhint("Use a smaller batch_size, fewer hash buckets or narrower embeddings, or raise esmm.max_memory.")));
	}
	s->budget = (size_t) ((double) esmm_max_memory_kb * 1024 - need);

	if (eval_model != NULL)
	{
		s->evaluate_only = true;
		s->eval_model = (bytea *) PG_DETOAST_DATUM_COPY(PointerGetDatum(eval_model));
		s->val_threshold = 0;
	}
	else if (s->cfg.mode == ESMM_MODE_STREAMING)
		switch_to_streaming(s, false);
	/* an init_model's schema is checked now, not after the scan */
	if (s->init != NULL && !s->streaming)
		state_model_create(s, NULL);
	INSTR_TIME_SET_CURRENT(s->last_notice);
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

/* The aggregate memory context, or an ERROR naming fn. */
static MemoryContext
train_agg_context(FunctionCallInfo fcinfo, const char *fn)
{
	MemoryContext aggcxt;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s called in non-aggregate context", fn)));
	return aggcxt;
}

/* Encodes one row into the training or the validation buffer. */
static void
train_add_row(esmm_train_state *s, HeapTupleHeader tup)
{
	row_buffer *buf;
	esmm_dataset *ds;
	esmm_chunk *c;
	size_t		r;
	size_t		multi_before;
	esmm_row_status rs;

	s->rows_seen++;
	buf = s->evaluate_only || row_is_validation(s, tup) ? &s->val : &s->train;
	ds = &buf->ds;
	c = row_slot(s, buf, &r);
	multi_before = buf->multi.len;
	rs = esmm_encode_row(&s->enc, tup, c->ids + r * ds->n_ids, c->nums + r * ds->n_nums,
						 &buf->multi, s->multi_counts, c->labels + r * ds->n_labels);
	if (rs != ESMM_ROW_OK ||
		(s->kind != ESMM_KIND_MMOE && !esmm_labels_apply(&s->arch, c->labels + r * ds->n_labels)))
	{
		/* the slot is reused by the next row; forget its array ids */
		buf->multi.len = multi_before;
		if (rs == ESMM_ROW_NULL_LABEL)
			s->rows_null_label++;
		else if (rs == ESMM_ROW_BAD)
			s->rows_bad++;
		else
			s->rows_dropped++;
		return;
	}
	row_commit(s, buf, c, r, multi_before, s->multi_counts);
}

/* Binds the state's encoder to the rows' type, on the first row. */
static void
train_bind(esmm_train_state *s, HeapTupleHeader tup)
{
	s->enc.skip_bad_rows = s->cfg.on_bad_row_skip;
	esmm_encoder_bind(&s->enc, &s->schema, tup, true,
					  s->kind == ESMM_KIND_MMOE ? s->mmoe.task_type : NULL, s->mcxt);
}

/* The transition of esmm_train and mmoe_train: encode one row into the
 * training or the validation buffer. */
static Datum
train_transition(FunctionCallInfo fcinfo, esmm_model_kind kind, const char *fn)
{
	MemoryContext aggcxt = train_agg_context(fcinfo, fn);
	esmm_train_state *s;
	HeapTupleHeader tup;

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
	{
		/* a parallel worker's config was parsed, with its notices, by the
		 * leader's plan already */
		esmm_check_worker_arg(PG_GETARG_DATUM(2), fn, "configuration");
		s = train_state_new(aggcxt, PG_GETARG_JSONB_P(2), HeapTupleHeaderGetTypeId(tup),
							HeapTupleHeaderGetTypMod(tup), kind, !IsParallelWorker(), NULL);
		train_bind(s, tup);
	}
	else if (!esmm_encoder_matches(&s->enc, tup))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s received rows of different types", fn)));
	train_add_row(s, tup);
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
	if (p->evaluating)
		return 0;
	INSTR_TIME_SET_CURRENT(now);
	if (p->end_of_epoch)
	{
		esmm_format_metrics(&tp->metrics, p->history);
		ereport(NOTICE,
				(errmsg("epoch %u/%u: loss %.6f%s, " UINT64_FORMAT " rows, %.0f rows/s",
						p->epoch, ts->epochs, p->running_loss, tp->metrics.data, p->rows_done,
						p->seconds > 0 ? p->rows_done / p->seconds : 0.0)));
		if (p->stopping)
			esmm_notice_early_stopping(p->epoch, tp->cfg->es_monitor, tp->cfg->es_min_delta,
									   tp->cfg->es_patience, tp->m->report.best_epoch);
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

/* The summary NOTICE of a training. */
static void
notice_summary(const esmm_train_state *s, const esmm_model *m, const char *how)
{
	ereport(NOTICE,
			(errmsg("trained %s on " UINT64_FORMAT " rows (" UINT64_FORMAT " more held out for validation) in %.1f s: final loss %.6f%s; %s" UINT64_FORMAT " with a NULL label, " UINT64_FORMAT " bad",
					how, m->report.rows_trained, m->report.rows_validation,
					m->report.seconds, m->report.epochs[m->report.n_epochs - 1].train_loss,
					m->report.best_epoch > 0 ?
					psprintf(", weights of epoch %u", m->report.best_epoch) : "",
					s->kind == ESMM_KIND_MMOE ? "" :
					psprintf(UINT64_FORMAT " rows dropped (conversion without click), ",
							 m->report.rows_dropped),
					m->report.rows_null_label, m->report.rows_bad)));
}

/* The report's counts of rows, from the state. */
static void
report_rows(esmm_model *m, const esmm_train_state *s, uint64 rows_trained)
{
	m->report.rows_seen = s->rows_seen;
	m->report.rows_trained = rows_trained;
	m->report.rows_dropped = s->rows_dropped;
	m->report.rows_null_label = s->rows_null_label;
	m->report.rows_bad = s->rows_bad;
	m->report.threads = (uint32_t) esmm_threads;
}

/* The NOTICE for a training without rows. */
static void
notice_no_rows(const esmm_train_state *s)
{
	ereport(NOTICE,
			(errmsg("no rows to train on: " UINT64_FORMAT " rows seen, " UINT64_FORMAT " with a NULL label, " UINT64_FORMAT " dropped, " UINT64_FORMAT " bad",
					s->rows_seen, s->rows_null_label, s->rows_dropped, s->rows_bad)));
}

/*
 * Sorts buf's rows into their canonical order (esmm_dataset_canonical_order),
 * so that the rows parallel workers encoded train as the same rows would
 * serially.  Without shuffling, the rows keep the order they came in.
 */
static void
order_rows(esmm_train_state *s, row_buffer *buf)
{
	size_t		n = buf->ds.n_rows;
	uint32_t   *order;
	esmm_row_key *scratch;

	if (n < 2 || !s->cfg.train.shuffle)
		return;
	order = MemoryContextAllocHuge(s->mcxt, n * sizeof(uint32_t));
	scratch = MemoryContextAllocHuge(CurrentMemoryContext, 2 * n * sizeof(esmm_row_key));
	/* the sort's passes run on the pool */
	esmm_threads_prepare();
	esmm_dataset_canonical_order(&buf->ds, order, scratch);
	pfree(scratch);
	buf->ds.order = order;
}

/*
 * Streaming mode's end: trains the last window, appends the pass to the
 * history as one epoch, with val_loss and the metrics on the held-out
 * rows, and returns the model (with its optimizer state when
 * keep_optimizer_state).
 */
static bytea *
stream_finish(esmm_train_state *s)
{
	esmm_model *m;
	esmm_history_epoch *h;
	esmm_status st;

	stream_train_window(s);
	if (s->rows_trained == 0)
	{
		notice_no_rows(s);
		return NULL;
	}
	m = s->h->model;
	if ((h = esmm_model_history_append(m)) == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	h->train_loss = s->loss_sum / (double) s->rows_trained;
	h->rows = s->rows_trained;
	h->seconds = s->seconds;
	m->report.seconds = s->seconds;
	m->report.best_epoch = 0;
	m->report.stopped_early = 0;
	m->report.rows_validation = s->val.ds.n_rows;
	esmm_status_clear(&st);
	if (s->val.ds.n_rows > 0)
	{
		double		values[ESMM_MAX_EVAL_METRICS],
					val_loss;

		seal_multi(&s->val);
		esmm_threads_prepare();
		if (esmm_model_evaluate(m, &s->val.ds, &s->ev, values, &val_loss, evaluation_progress, NULL, &st) != ESMM_OK)
			esmm_report_status(&st);
		esmm_history_add_metric(h, "val_loss", val_loss);
		for (uint32_t k = 0; k < s->ev.n_metrics; k++)
			esmm_history_add_metric(h, s->ev.metrics[k].name, values[k]);
	}
	report_rows(m, s, s->rows_trained);
	notice_summary(s, m, psprintf("one streaming pass in " UINT64_FORMAT " windows", s->windows));
	return esmm_model_to_bytea(m, s->cfg.keep_optimizer_state);
}

/* The final function of esmm_train and mmoe_train: train on the buffer,
 * return the model. */
static Datum
train_finish(FunctionCallInfo fcinfo)
{
	esmm_train_state *s;
	esmm_status st;
	esmm_model *m;
	train_progress tp;
	bytea	   *out;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	s = (esmm_train_state *) PG_GETARG_POINTER(0);
	if (s->streaming)
	{
		out = stream_finish(s);
		if (out == NULL)
			PG_RETURN_NULL();
		PG_RETURN_BYTEA_P(out);
	}
	if (s->train.ds.n_rows == 0)
	{
		notice_no_rows(s);
		PG_RETURN_NULL();
	}
	seal_multi(&s->train);
	seal_multi(&s->val);
	order_rows(s, &s->train);
	order_rows(s, &s->val);
	notice_single_class(s);
	/* statistics of the training rows only: validation must not leak in */
	if (s->h == NULL)
		state_model_create(s, &s->train.ds);
	m = s->h->model;
	report_rows(m, s, s->train.ds.n_rows);

	esmm_threads_prepare();
	tp.cfg = &s->cfg;
	tp.m = m;
	initStringInfo(&tp.metrics);
	INSTR_TIME_SET_CURRENT(tp.last_notice);
	esmm_status_clear(&st);
	if (esmm_model_fit(m, &s->train.ds, &s->val.ds, &s->cfg.train, &s->ev,
					   esmm_train_progress, &tp, &st) != ESMM_OK)
		esmm_report_status(&st);
	notice_summary(s, m, psprintf("%u epochs", m->report.n_epochs));
	out = esmm_model_to_bytea(m, s->cfg.keep_optimizer_state);
	esmm_handle_release(s->h);
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

/* ------------------------------------------------ parallel aggregation */

/*
 * A state as it travels from a parallel worker to the leader: this
 * header, then the config jsonb, the streaming model (with its optimizer
 * state), the evaluated model, the training rows and the validation rows.
 * Rows are written column by column: ids, floats, labels, the count of
 * each array feature's ids, then the ids.  It only travels within one
 * server binary, so the native layout is the format.
 */
typedef struct state_header
{
	uint32		magic;
	uint32		kind;
	Oid			rowtype;
	int32		rowtypmod;
	uint32		flags;			/* 1: streaming, 2: evaluate_only */
	uint32		pad;
	uint64		rows_seen,
				rows_dropped,
				rows_null_label,
				rows_bad,
				rows_trained,
				windows;
	double		loss_sum,
				seconds;
	uint64		cfg_len,
				model_len,
				eval_len;
	uint64		n_rows[2];		/* training, validation */
	uint64		n_multi_ids[2];
} state_header;

/* A deserialized state: its header, and pointers into the bytea. */
typedef struct state_view
{
	uint32		magic;			/* not TRAIN_STATE_MAGIC */
	state_header h;
	const char *cfg;
	const char *model;
	const char *eval;
	const char *rows[1];		/* the training rows, then the validation rows */
	size_t		len;			/* of the whole */
} state_view;

/* The bytes of n rows of ds's widths with multi_ids array ids. */
static size_t
rows_bytes(const esmm_dataset *ds, uint64 n, uint64 multi_ids)
{
	return n * (ds->n_ids + ds->n_nums + ds->n_labels + ds->n_multi) * 4 + multi_ids * 4;
}

static uint64
multi_total(const row_buffer *buf)
{
	uint64		total = 0;

	for (size_t k = 0; k < buf->ds.n_chunks; k++)
	{
		const esmm_chunk *c = &buf->ds.chunks[k];
		size_t		rows = Min(ESMM_CHUNK_ROWS, buf->ds.n_rows - k * ESMM_CHUNK_ROWS);

		if (buf->ds.n_multi > 0)
			total += c->multi_off[rows * buf->ds.n_multi];
	}
	return total;
}

/* Writes buf's rows at p, column by column; returns the end. */
static char *
rows_write(char *p, const row_buffer *buf)
{
	const esmm_dataset *ds = &buf->ds;
	const size_t n = ds->n_rows;

#define COPY_COLUMN(width, fn) \
	for (size_t r = 0; r < n && (width) > 0; r++, p += (width) * 4) \
		memcpy(p, fn(ds, r), (width) * 4)
	COPY_COLUMN(ds->n_ids, esmm_dataset_ids);
	COPY_COLUMN(ds->n_nums, esmm_dataset_nums);
	COPY_COLUMN(ds->n_labels, esmm_dataset_labels);
#undef COPY_COLUMN
	for (size_t r = 0; r < n; r++)
		for (uint32_t k = 0; k < ds->n_multi; k++, p += 4)
		{
			uint32_t	count;

			(void) esmm_dataset_multi(ds, r, k, &count);
			memcpy(p, &count, 4);
		}
	for (size_t r = 0; r < n; r++)
		for (uint32_t k = 0; k < ds->n_multi; k++)
		{
			uint32_t	count;
			const int32_t *ids = esmm_dataset_multi(ds, r, k, &count);

			memcpy(p, ids, count * 4);
			p += count * 4;
		}
	return p;
}

/* Appends the n rows written at p (rows_write) to buf, through row_slot:
 * a streaming state trains them as its windows fill. */
static void
rows_append(esmm_train_state *s, row_buffer *buf, const char *p, uint64 n, uint64 multi_ids)
{
	esmm_dataset *ds = &buf->ds;
	const char *ids = p,
			   *nums = ids + n * ds->n_ids * 4,
			   *labels = nums + n * ds->n_nums * 4,
			   *counts = labels + n * ds->n_labels * 4;
	int32_t    *multi = NULL;	/* the array ids, aligned */
	uint64		used = 0;

	if (ds->n_multi > 0)
	{
		multi = palloc(Max(1, multi_ids) * sizeof(int32_t));
		memcpy(multi, counts + n * ds->n_multi * 4, multi_ids * 4);
	}
	for (uint64 i = 0; i < n; i++)
	{
		size_t		r;
		esmm_chunk *c = row_slot(s, buf, &r);
		size_t		multi_before = buf->multi.len;

		memcpy(c->ids + r * ds->n_ids, ids + i * ds->n_ids * 4, ds->n_ids * 4);
		memcpy(c->nums + r * ds->n_nums, nums + i * ds->n_nums * 4, ds->n_nums * 4);
		memcpy(c->labels + r * ds->n_labels, labels + i * ds->n_labels * 4, ds->n_labels * 4);
		memcpy(s->multi_counts, counts + i * ds->n_multi * 4, ds->n_multi * 4);
		for (uint32_t k = 0; k < ds->n_multi; k++)
		{
			if (multi_ids - used < s->multi_counts[k])
				elog(ERROR, "invalid esmm training state: array ids beyond its end");
			esmm_idbuf_append(&buf->multi, multi + used, s->multi_counts[k]);
			used += s->multi_counts[k];
		}
		row_commit(s, buf, c, r, multi_before, s->multi_counts);
	}
	if (multi != NULL)
		pfree(multi);
}

PG_FUNCTION_INFO_V1(esmm_train_serialize);

/* esmm_train, mmoe_train and esmm_evaluate serialization: a parallel
 * worker's state as one bytea (a streaming state trains its last window
 * first) */
Datum
esmm_train_serialize(PG_FUNCTION_ARGS)
{
	esmm_train_state *s = (esmm_train_state *) PG_GETARG_POINTER(0);
	state_header h;
	bytea	   *model = NULL;
	size_t		size;
	bytea	   *out;
	char	   *p;

	(void) train_agg_context(fcinfo, "esmm_train_serialize");
	if (s->streaming)
		stream_train_window(s);
	seal_multi(&s->train);
	seal_multi(&s->val);
	memset(&h, 0, sizeof(h));
	h.magic = TRAIN_STATE_MAGIC;
	h.kind = s->kind;
	h.rowtype = s->rowtype;
	h.rowtypmod = s->rowtypmod;
	h.flags = (s->streaming ? 1 : 0) | (s->evaluate_only ? 2 : 0);
	h.rows_seen = s->rows_seen;
	h.rows_dropped = s->rows_dropped;
	h.rows_null_label = s->rows_null_label;
	h.rows_bad = s->rows_bad;
	h.rows_trained = s->rows_trained;
	h.windows = s->windows;
	h.loss_sum = s->loss_sum;
	h.seconds = s->seconds;
	if (s->h != NULL && s->streaming && s->rows_trained > 0)
		model = esmm_model_to_bytea(s->h->model, true);
	h.cfg_len = VARSIZE(s->cfg_json);
	h.model_len = model ? VARSIZE(model) - VARHDRSZ : 0;
	h.eval_len = s->eval_model ? VARSIZE_ANY_EXHDR(s->eval_model) : 0;
	h.n_rows[0] = s->train.ds.n_rows;
	h.n_rows[1] = s->val.ds.n_rows;
	h.n_multi_ids[0] = multi_total(&s->train);
	h.n_multi_ids[1] = multi_total(&s->val);
	size = sizeof(h) + h.cfg_len + h.model_len + h.eval_len +
		rows_bytes(&s->train.ds, h.n_rows[0], h.n_multi_ids[0]) +
		rows_bytes(&s->val.ds, h.n_rows[1], h.n_multi_ids[1]);
	if (size > MaxAllocSize - VARHDRSZ)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("training state of %zu bytes is too large to pass from a parallel worker", size),
				 errhint("Set train_args.mode to \"streaming\", or run without parallel workers: SET max_parallel_workers_per_gather = 0.")));
	out = palloc(VARHDRSZ + size);
	SET_VARSIZE(out, VARHDRSZ + size);
	p = VARDATA(out);
	memcpy(p, &h, sizeof(h));
	p += sizeof(h);
	memcpy(p, s->cfg_json, h.cfg_len);
	p += h.cfg_len;
	if (model)
		memcpy(p, VARDATA(model), h.model_len);
	p += h.model_len;
	if (s->eval_model)
		memcpy(p, VARDATA_ANY(s->eval_model), h.eval_len);
	p += h.eval_len;
	p = rows_write(p, &s->train);
	p = rows_write(p, &s->val);
	Assert(p == VARDATA(out) + size);
	PG_RETURN_BYTEA_P(out);
}

PG_FUNCTION_INFO_V1(esmm_train_deserialize);

/* The bytea back into a view of the state, for the combine function. */
Datum
esmm_train_deserialize(PG_FUNCTION_ARGS)
{
	bytea	   *in = PG_GETARG_BYTEA_P(0);
	const char *p = VARDATA(in);
	size_t		len = VARSIZE(in) - VARHDRSZ;
	state_view *v = palloc0(sizeof(state_view));

	(void) train_agg_context(fcinfo, "esmm_train_deserialize");
	if (len < sizeof(state_header))
		elog(ERROR, "invalid esmm training state: %zu bytes", len);
	memcpy(&v->h, p, sizeof(state_header));
	if (v->h.magic != TRAIN_STATE_MAGIC || v->h.cfg_len < VARHDRSZ ||
		v->h.cfg_len > len || v->h.model_len > len || v->h.eval_len > len ||
		v->h.n_rows[0] > len || v->h.n_rows[1] > len ||
		v->h.n_multi_ids[0] > len || v->h.n_multi_ids[1] > len)
		elog(ERROR, "invalid esmm training state header");
	v->magic = 0;
	p += sizeof(state_header);
	v->cfg = p;
	p += v->h.cfg_len;
	v->model = p;
	p += v->h.model_len;
	v->eval = p;
	p += v->h.eval_len;
	/* the rows' widths come from the config: the combine checks them */
	v->rows[0] = p;
	v->len = len;
	if ((size_t) (p - VARDATA(in)) > len)
		elog(ERROR, "invalid esmm training state: %zu bytes", len);
	PG_RETURN_POINTER(v);
}

/*
 * A combined state for the rows and models of view v: the config parsed
 * again, without its NOTICEs, against the same row type.
 */
static esmm_train_state *
state_from_view(MemoryContext aggcxt, const state_view *v)
{
	Jsonb	   *cfg = palloc(v->h.cfg_len);
	bytea	   *eval = NULL;
	esmm_train_state *s;

	memcpy(cfg, v->cfg, v->h.cfg_len);
	if (VARSIZE(cfg) != v->h.cfg_len)
		elog(ERROR, "invalid esmm training state: config of %zu bytes", (size_t) v->h.cfg_len);
	if (v->h.flags & 2)
	{
		eval = palloc(VARHDRSZ + v->h.eval_len);
		SET_VARSIZE(eval, VARHDRSZ + v->h.eval_len);
		memcpy(VARDATA(eval), v->eval, v->h.eval_len);
	}
	s = train_state_new(aggcxt, cfg, v->h.rowtype, v->h.rowtypmod,
						(esmm_model_kind) v->h.kind, false, eval);
	/* the participant that switched said so */
	s->switch_noticed = true;
	return s;
}

/* Merges view v's streaming model into s's: adopts it, or averages the
 * two weighted by the rows each trained on. */
static void
combine_models(esmm_train_state *s, const state_view *v)
{
	bytea	   *b = palloc(VARHDRSZ + v->h.model_len);
	esmm_model_handle *other;
	esmm_status st;

	SET_VARSIZE(b, VARHDRSZ + v->h.model_len);
	memcpy(VARDATA(b), v->model, v->h.model_len);
	other = esmm_model_from_bytea(b, 1, CurrentMemoryContext, true);
	pfree(b);
	switch_to_streaming(s, true);
	esmm_status_clear(&st);
	if (s->h == NULL)
	{
		esmm_model_handle *own = s->init;

		/* warm-started from it: its statistics, weights and optimizer state */
		s->init = other;
		state_model_create(s, NULL);
		s->init = own;
	}
	else if (esmm_model_average(s->h->model, (double) s->rows_trained, other->model,
								(double) v->h.rows_trained, &st) != ESMM_OK)
		esmm_report_status(&st);
	esmm_handle_release(other);
	s->rows_trained += v->h.rows_trained;
	s->loss_sum += v->h.loss_sum;
	s->windows += v->h.windows;
	s->seconds = Max(s->seconds, v->h.seconds);
}

PG_FUNCTION_INFO_V1(esmm_train_combine);

/*
 * esmm_train, mmoe_train and esmm_evaluate combine: concatenates the rows
 * of in-memory states, and averages the models of streaming states
 * weighted by rows (SPEC §5).
 */
Datum
esmm_train_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = train_agg_context(fcinfo, "esmm_train_combine");
	esmm_train_state *s = PG_ARGISNULL(0) ? NULL : (esmm_train_state *) PG_GETARG_POINTER(0);
	state_view *v = PG_ARGISNULL(1) ? NULL : (state_view *) PG_GETARG_POINTER(1);
	MemoryContext old;
	const char *p;
	size_t		train_len;

	if (v == NULL)
	{
		if (s == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(s);
	}
	if (v->magic == TRAIN_STATE_MAGIC || (s != NULL && s->magic != TRAIN_STATE_MAGIC))
		elog(ERROR, "esmm_train_combine expects a state and a deserialized state");
	old = MemoryContextSwitchTo(aggcxt);
	if (s == NULL)
		s = state_from_view(aggcxt, v);
	MemoryContextSwitchTo(old);
	if (v->h.kind != (uint32) s->kind)
		elog(ERROR, "esmm_train_combine: states of different model kinds");
	s->rows_seen += v->h.rows_seen;
	s->rows_dropped += v->h.rows_dropped;
	s->rows_null_label += v->h.rows_null_label;
	s->rows_bad += v->h.rows_bad;
	if (v->h.model_len > 0)
		combine_models(s, v);
	p = v->rows[0];
	train_len = rows_bytes(&s->train.ds, v->h.n_rows[0], v->h.n_multi_ids[0]);
	if ((size_t) (p - v->cfg) + sizeof(state_header) + train_len +
		rows_bytes(&s->val.ds, v->h.n_rows[1], v->h.n_multi_ids[1]) != v->len)
		elog(ERROR, "invalid esmm training state: %zu bytes do not hold its rows", v->len);
	rows_append(s, s->evaluate_only ? &s->val : &s->train, p, v->h.n_rows[0], v->h.n_multi_ids[0]);
	rows_append(s, &s->val, p + train_len, v->h.n_rows[1], v->h.n_multi_ids[1]);
	PG_RETURN_POINTER(s);
}

/* ----------------------------------------------------------- evaluation */

PG_FUNCTION_INFO_V1(esmm_evaluate_sfunc);

/* esmm_evaluate's transition: the first row parses the model's own config;
 * every row is encoded as a validation row. */
Datum
esmm_evaluate_sfunc(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = train_agg_context(fcinfo, "esmm_evaluate");
	esmm_train_state *s = PG_ARGISNULL(0) ? NULL : (esmm_train_state *) PG_GETARG_POINTER(0);
	HeapTupleHeader tup;

	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(s);
	if (s == NULL && PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("esmm_evaluate model must not be null")));
	tup = PG_GETARG_HEAPTUPLEHEADER(1);
	if (s == NULL)
	{
		bytea	   *b;
		esmm_model_handle *mh;
		esmm_model *m;
		Jsonb	   *cfg;

		esmm_check_worker_arg(PG_GETARG_DATUM(2), "esmm_evaluate", "model");
		b = PG_GETARG_BYTEA_PP(2);
		mh = esmm_model_from_bytea(b, 1, CurrentMemoryContext, false);
		m = mh->model;
		if (m->kind != ESMM_KIND_ESMM && m->kind != ESMM_KIND_MMOE)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("esmm_evaluate needs a full esmm or an mmoe model, not an exported tower"),
					 errhint("Score an exported tower with esmm_predict and the metric aggregates (auc, logloss).")));
		cfg = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
												 CStringGetDatum(pnstrdup(m->config_json, m->config_len))));
		s = train_state_new(aggcxt, cfg, HeapTupleHeaderGetTypeId(tup),
							HeapTupleHeaderGetTypMod(tup), m->kind, false, b);
		esmm_handle_release(mh);
		train_bind(s, tup);
	}
	else if (!esmm_encoder_matches(&s->enc, tup))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("esmm_evaluate received rows of different types")));
	train_add_row(s, tup);
	PG_RETURN_POINTER(s);
}

/* When the model's config asks for no metric: AUC and log loss of each
 * binary label, MSE of each regression label. */
static void
eval_spec_default(esmm_eval_spec *ev, const esmm_train_state *s)
{
	for (uint32_t i = 0; i < s->schema.n_labels; i++)
	{
		bool		regression = s->kind == ESMM_KIND_MMOE && s->mmoe.task_type[i] == MMOE_TASK_REGRESSION;
		const int	kinds[2] = {regression ? ESMM_METRIC_MSE : ESMM_METRIC_AUC, ESMM_METRIC_LOGLOSS};

		for (int j = 0; j < (regression ? 1 : 2) && ev->n_metrics < ESMM_MAX_EVAL_METRICS; j++)
		{
			const char *label = s->schema.labels[i];

			ev->metrics[ev->n_metrics].label = (uint8_t) i;
			ev->metrics[ev->n_metrics].metric = (uint8_t) kinds[j];
			snprintf(ev->metrics[ev->n_metrics].name, 32, "%s_%s", label, esmm_metric_names[kinds[j]]);
			ev->n_metrics++;
		}
	}
}

PG_FUNCTION_INFO_V1(esmm_evaluate_final);

/* esmm_evaluate's final function: the loss and the metrics, as jsonb. */
Datum
esmm_evaluate_final(PG_FUNCTION_ARGS)
{
	esmm_train_state *s;
	esmm_model_handle *mh;
	esmm_eval_spec ev;
	double		values[ESMM_MAX_EVAL_METRICS],
				loss;
	esmm_status st;
	StringInfoData out;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	s = (esmm_train_state *) PG_GETARG_POINTER(0);
	seal_multi(&s->val);
	order_rows(s, &s->val);
	mh = esmm_model_from_bytea(s->eval_model, (int) s->cfg.eval_batch_size, CurrentMemoryContext, false);
	ev = s->ev;
	if (ev.n_metrics == 0)
		eval_spec_default(&ev, s);
	esmm_threads_prepare();
	esmm_status_clear(&st);
	if (esmm_model_evaluate(mh->model, &s->val.ds, &ev, values, &loss, evaluation_progress, NULL, &st) != ESMM_OK)
		esmm_report_status(&st);
	esmm_handle_release(mh);
	initStringInfo(&out);
	appendStringInfo(&out, "{\"rows\": %zu, \"loss\": ", s->val.ds.n_rows);
	appendStringInfoString(&out, isfinite(loss) ? psprintf("%.17g", loss) : "null");
	for (uint32_t k = 0; k < ev.n_metrics; k++)
		appendStringInfo(&out, ", \"%s\": %s", ev.metrics[k].name,
						 isfinite(values[k]) ? psprintf("%.17g", values[k]) : "null");
	appendStringInfoChar(&out, '}');
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data)));
}
