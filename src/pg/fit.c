/*
 * fit.c: esmm_fit(source, config [, validation]) -> bytea and mmoe_fit,
 * epochs over a table of any size (SPEC §5).
 *
 * Each epoch is one aggregate pass, SELECT esmm_train(t, config) FROM
 * source t, in streaming mode and warm-started from the previous epoch's
 * model with its optimizer state, so that its memory is bounded by
 * esmm.max_memory whatever the table's size, and PostgreSQL may run it
 * with parallel workers whose models the combine function averages.
 * Between epochs: the validation metrics (on the rows validation_fraction
 * holds out, which the pass evaluates, or on a validation table through
 * esmm_evaluate), a progress NOTICE, and early stopping.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"

#include "esmm_config.h"
#include "esmm_pg.h"

/*
 * Runs a one-row, one-column query with the inner aggregates' NOTICEs
 * silenced (esmm_fit reports each epoch itself); returns the value copied
 * into cxt, or NULL.
 */
static Datum
query_value(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls,
			MemoryContext cxt, bool *isnull)
{
	int			nest = NewGUCNestLevel();
	int			rc;
	Datum		d;

	(void) set_config_option("client_min_messages", "warning", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	/* no row limit: a limited run may stop early, so PostgreSQL would not
	 * give it parallel workers */
	rc = SPI_execute_with_args(sql, nargs, types, values, nulls, true, 0);
	AtEOXact_GUC(true, nest);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "esmm_fit: query failed: %s", sql);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
	if (*isnull)
		return (Datum) 0;
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);
		Datum		copy = PointerGetDatum(PG_DETOAST_DATUM_COPY(d));

		MemoryContextSwitchTo(old);
		return copy;
	}
}

/*
 * The config of epoch e's pass: the normalized config, in streaming mode,
 * one epoch, a seed of the epoch's own, the optimizer state kept, the
 * previous model as init_model (none: the user's, if any).
 */
static Jsonb *
epoch_config(Jsonb *normalized, uint64 seed, float holdout, bytea *init, MemoryContext cxt)
{
	Oid			types[4] = {JSONBOID, INT8OID, FLOAT4OID, BYTEAOID};
	Datum		values[4] = {JsonbPGetDatum(normalized), Int64GetDatum((int64) seed),
	Float4GetDatum(holdout), PointerGetDatum(init)};
	char		nulls[4] = {' ', ' ', ' ', init ? ' ' : 'n'};
	bool		isnull;

	return DatumGetJsonbP(query_value(
									  "SELECT jsonb_set($1, '{train_args}', ($1->'train_args') || "
									  "jsonb_build_object('mode', 'streaming', 'epochs', 1, 'seed', $2, "
									  "'keep_optimizer_state', true, 'validation_fraction', $3) || "
									  "CASE WHEN $4 IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('init_model', $4) END)",
									  4, types, values, nulls, cxt, &isnull));
}

/* Records esmm_evaluate's result (jsonb) in history entry h, "loss" as
 * val_loss; returns its row count. */
static uint64
record_validation(esmm_history_epoch *h, Jsonb *metrics)
{
	Oid			type = JSONBOID;
	Datum		value = JsonbPGetDatum(metrics);
	uint64		rows = 0;

	if (SPI_execute_with_args("SELECT key, (value #>> '{}')::float8 FROM jsonb_each($1)",
							  1, &type, &value, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "esmm_fit: could not read the validation metrics");
	h->n_metrics = 0;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		char	   *key = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		Datum		v = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);
		double		x = isnull ? NAN : DatumGetFloat8(v);

		if (strcmp(key, "rows") == 0)
		{
			rows = isnull ? 0 : (uint64) x;
			continue;
		}
		esmm_history_add_metric(h, strcmp(key, "loss") == 0 ? "val_loss" : key, x);
	}
	return rows;
}

/* The early-stopping monitor's value in epoch entry h; NaN if absent. */
static double
monitor_value(const esmm_config *cfg, const esmm_history_epoch *h)
{
	if (strcmp(cfg->es_monitor, "loss") == 0)
		return h->train_loss;
	for (uint32_t k = 0; k < h->n_metrics; k++)
		if (strcmp(h->metric_names[k], cfg->es_monitor) == 0)
			return h->metric_values[k];
	return NAN;
}

static Datum
fit(FunctionCallInfo fcinfo, esmm_model_kind kind, const char *fn)
{
	MemoryContext fitcxt = CurrentMemoryContext;
	esmm_config cfg;
	char	   *source,
			   *validation = NULL;
	bytea	   *prev,
			   *best = NULL;
	uint32		best_epoch = 0,
				wait = 0,
				done = 0;
	double		best_value = NAN;
	bool		stopped = false;
	esmm_model_handle *mh;
	esmm_model *m;
	bytea	   *out;
	instr_time	t_start;
	StringInfoData metrics;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s source and configuration must not be null", fn)));
	esmm_config_parse_kind(&cfg, PG_GETARG_JSONB_P(1), kind);
	source = esmm_relation_sql_name(PG_GETARG_OID(0));
	if (!PG_ARGISNULL(2))
		validation = esmm_relation_sql_name(PG_GETARG_OID(2));
	prev = cfg.init_model;
	initStringInfo(&metrics);
	INSTR_TIME_SET_CURRENT(t_start);

	SPI_connect();
	for (uint32 e = 1; e <= cfg.train.epochs && !stopped; e++)
	{
		Jsonb	   *ecfg;
		Oid			type = JSONBOID;
		Datum		arg;
		bool		isnull;
		bytea	   *model;
		esmm_history_epoch *h;
		instr_time	t0,
					t1;
		double		value;

		CHECK_FOR_INTERRUPTS();
		INSTR_TIME_SET_CURRENT(t0);
		/* with a validation table, every source row trains */
		ecfg = epoch_config(cfg.normalized, cfg.train.seed + e - 1,
							validation ? 0.0f : cfg.validation_fraction, prev, fitcxt);
		arg = JsonbPGetDatum(ecfg);
		model = (bytea *) DatumGetPointer(query_value(psprintf("SELECT %s(t, $1) FROM %s t",
															   kind == ESMM_KIND_MMOE ? "mmoe_train" : "esmm_train",
															   source),
													  1, &type, &arg, NULL, fitcxt, &isnull));
		if (isnull)
		{
			ereport(NOTICE, (errmsg("%s: no rows to train on in %s", fn, source)));
			SPI_finish();
			PG_RETURN_NULL();
		}
		mh = esmm_model_from_bytea(model, 1, fitcxt, true);
		m = mh->model;
		h = &m->report.epochs[m->report.n_epochs - 1];
		if (validation != NULL)
		{
			Oid			types[1] = {BYTEAOID};
			Datum		args[1] = {PointerGetDatum(model)};
			Datum		metrics = query_value(psprintf("SELECT esmm_evaluate(t, $1) FROM %s t", validation),
											  1, types, args, NULL, fitcxt, &isnull);

			if (!isnull)
				m->report.rows_validation = record_validation(h, DatumGetJsonbP(metrics));
		}
		INSTR_TIME_SET_CURRENT(t1);
		INSTR_TIME_SUBTRACT(t1, t0);
		h->seconds = INSTR_TIME_GET_DOUBLE(t1);
		esmm_format_metrics(&metrics, h);
		ereport(NOTICE,
				(errmsg("%s epoch %u/%u: loss %.6f%s, " UINT64_FORMAT " rows, %.0f rows/s",
						fn, e, cfg.train.epochs, h->train_loss, metrics.data, h->rows,
						h->seconds > 0 ? h->rows / h->seconds : 0.0)));
		value = monitor_value(&cfg, h);
		done = e;
		if (cfg.early_stopping_given)
		{
			if (esmm_monitor_improves(cfg.es_mode_max, cfg.es_min_delta, best_value, value))
			{
				best_value = value;
				best_epoch = h->epoch;
				wait = 0;
			}
			else if (++wait >= cfg.es_patience && e < cfg.train.epochs)
			{
				stopped = true;
				esmm_notice_early_stopping(e, cfg.es_monitor, cfg.es_min_delta, cfg.es_patience,
										   best_epoch);
			}
		}
		{
			/* SPI's memory goes at SPI_finish */
			MemoryContext old = MemoryContextSwitchTo(fitcxt);

			prev = esmm_model_to_bytea(m, true);
			MemoryContextSwitchTo(old);
		}
		if (best_epoch == h->epoch)
			best = prev;
		esmm_handle_release(mh);
	}
	SPI_finish();

	/* the last epoch's history; the best epoch's weights */
	mh = esmm_model_from_bytea(prev, 1, fitcxt, true);
	m = mh->model;
	if (best != NULL && best != prev)
	{
		esmm_model_handle *bh = esmm_model_from_bytea(best, 1, fitcxt, false);

		memcpy(m->params, bh->model->params, m->n_params * sizeof(float));
		if (m->n_state > 0)
			memcpy(m->state, bh->model->state, m->n_state * sizeof(float));
		for (uint32_t f = 0; f < m->schema.n_features; f++)
			m->schema.features[f] = bh->model->schema.features[f];
		esmm_handle_release(bh);
	}
	m->report.best_epoch = best != NULL ? best_epoch : 0;
	m->report.stopped_early = stopped;
	{
		instr_time	t = t_start;
		instr_time	now;

		INSTR_TIME_SET_CURRENT(now);
		INSTR_TIME_SUBTRACT(now, t);
		m->report.seconds = INSTR_TIME_GET_DOUBLE(now);
	}
	ereport(NOTICE,
			(errmsg("%s trained %u epochs on " UINT64_FORMAT " rows of %s in %.1f s%s",
					fn, done, m->report.rows_trained, source, m->report.seconds,
					m->report.best_epoch > 0 ? psprintf("; weights of epoch %u", m->report.best_epoch) : "")));
	out = esmm_model_to_bytea(m, cfg.keep_optimizer_state);
	esmm_handle_release(mh);
	PG_RETURN_BYTEA_P(out);
}

PG_FUNCTION_INFO_V1(esmm_fit);

/* esmm_fit(source regclass, config jsonb, validation regclass) RETURNS bytea */
Datum
esmm_fit(PG_FUNCTION_ARGS)
{
	return fit(fcinfo, ESMM_KIND_ESMM, "esmm_fit");
}

PG_FUNCTION_INFO_V1(mmoe_fit);

/* mmoe_fit(source regclass, config jsonb, validation regclass) RETURNS bytea */
Datum
mmoe_fit(PG_FUNCTION_ARGS)
{
	return fit(fcinfo, ESMM_KIND_MMOE, "mmoe_fit");
}
