/* model_info.c: esmm_model_info(bytea) -> jsonb. */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "access/htup_details.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "common/md5.h"

#include "esmm_pg.h"
#include "mmoe_model.h"

static const char *const kind_names[] = {"", "esmm", "esmm_ctr", "esmm_cvr", "mmoe"};
static const char *const feature_kinds[] = {"", "categorical", "numeric", "multi"};
static const char *const norm_names[] = {"none", "standard", "log"};

static void
json_key(StringInfo s, const char *key)
{
	escape_json(s, key);
	appendStringInfoChar(s, ':');
}

/* A double as JSON: non-finite values become null. */
static void
json_number(StringInfo s, double v)
{
	if (isfinite(v))
		appendStringInfo(s, "%.9g", v);
	else
		appendStringInfoString(s, "null");
}

static void
append_schema(StringInfo s, const esmm_model *m)
{
	appendStringInfoChar(s, '[');
	for (uint32_t f = 0; f < m->schema.n_features; f++)
	{
		const esmm_feature *ft = &m->schema.features[f];

		if (f > 0)
			appendStringInfoChar(s, ',');
		appendStringInfoChar(s, '{');
		json_key(s, "column");
		escape_json(s, ft->name);
		appendStringInfoChar(s, ',');
		json_key(s, "type");
		escape_json(s, format_type_be(ft->src_type));
		appendStringInfoChar(s, ',');
		json_key(s, "kind");
		escape_json(s, feature_kinds[ft->kind]);
		if (ft->kind == ESMM_FEAT_NUMERIC)
		{
			appendStringInfoString(s, ",\"normalize\":");
			escape_json(s, norm_names[ft->norm]);
			appendStringInfoString(s, ",\"mean\":");
			json_number(s, ft->mean);
			appendStringInfoString(s, ",\"std\":");
			json_number(s, ft->std);
			appendStringInfo(s, ",\"null_indicator\":%s", ft->null_indicator ? "true" : "false");
		}
		else
			appendStringInfo(s, ",\"%s\":%u,\"embedding_dim\":%u",
							 ft->hashed ? "hash_buckets" : "vocab_size", ft->n_buckets, ft->dim);
		appendStringInfoChar(s, '}');
	}
	appendStringInfoChar(s, ']');
}

/*
 * The history, an entry per epoch.  rows_dropped is the report's count in
 * every entry: in-memory training drops rows once, while encoding, so each
 * epoch misses the same rows.
 */
static void
append_history(StringInfo s, const esmm_report *r)
{
	appendStringInfoChar(s, '[');
	for (uint32_t e = 0; e < r->n_epochs; e++)
	{
		const esmm_history_epoch *h = &r->epochs[e];

		if (e > 0)
			appendStringInfoChar(s, ',');
		appendStringInfo(s, "{\"epoch\":%u,\"train_loss\":", h->epoch);
		json_number(s, h->train_loss);
		appendStringInfo(s, ",\"rows\":" UINT64_FORMAT ",\"rows_dropped\":" UINT64_FORMAT ",\"seconds\":",
						 h->rows, r->rows_dropped);
		json_number(s, h->seconds);
		for (uint32_t k = 0; k < h->n_metrics; k++)
		{
			appendStringInfoChar(s, ',');
			json_key(s, h->metric_names[k]);
			json_number(s, h->metric_values[k]);
		}
		appendStringInfoChar(s, '}');
	}
	appendStringInfoChar(s, ']');
}

/* The model's name (model_args.name), from its stored config. */
static void
append_model_name(StringInfo s, const esmm_model *m)
{
	Jsonb	   *cfg = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
														 CStringGetDatum(m->config_len > 0 ? m->config_json : "{}")));
	JsonbValue	key,
			   *v;

	key.type = jbvString;
	key.val.string.val = "name";
	key.val.string.len = 4;
	v = findJsonbValueFromContainer(&cfg->root, JB_FOBJECT, &key);
	if (v != NULL && v->type == jbvString)
		escape_json(s, pnstrdup(v->val.string.val, v->val.string.len));
	else
		appendStringInfoString(s, "null");
}

/* Names of a list of features, as a JSON array. */
static void
append_feature_names(StringInfo s, const esmm_model *m, const uint16_t *inputs, uint32_t n)
{
	appendStringInfoChar(s, '[');
	for (uint32_t i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoChar(s, ',');
		escape_json(s, m->schema.features[inputs[i]].name);
	}
	appendStringInfoChar(s, ']');
}

/* What an MMoE model is made of: the parts and the widths that
 * feature_cross and output_cross gave them. */
static void
append_mmoe(StringInfo s, const esmm_model *m)
{
	static const char *const wide_types[] = {"FM", "LR", "raw"};
	const mmoe_arch *a = &m->mmoe;
	mmoe_widths w;

	mmoe_model_widths(m, &w);
	appendStringInfo(s, "{\"experts\":%u,\"expert_layers\":[", a->n_experts);
	for (uint32_t l = 0; l < a->expert.n_layers; l++)
		appendStringInfo(s, "%s%u", l > 0 ? "," : "", a->expert.layers[l].units);
	appendStringInfo(s, "],\"gates\":%u,\"expert_input_width\":%u,\"task_input_width\":%u",
					 a->share_gates ? 1 : a->n_tasks, w.expert_in, w.task_in);
	appendStringInfoString(s, ",\"mmoe_features\":");
	append_feature_names(s, m, a->expert.inputs, a->expert.n_inputs);
	appendStringInfoString(s, ",\"tasks\":[");
	for (uint32_t t = 0; t < a->n_tasks; t++)
	{
		appendStringInfo(s, "%s{\"label\":", t > 0 ? "," : "");
		escape_json(s, m->schema.labels[t]);
		appendStringInfo(s, ",\"type\":\"%s\",\"loss_weight\":",
						 a->task_type[t] == MMOE_TASK_REGRESSION ? "regression" : "binary");
		json_number(s, a->loss_weights[t]);
		appendStringInfoString(s, ",\"layers\":[");
		for (uint32_t l = 0; l < a->task[t].n_layers; l++)
			appendStringInfo(s, "%s%u", l > 0 ? "," : "", a->task[t].layers[l].units);
		appendStringInfoString(s, "]}");
	}
	appendStringInfo(s, "],\"use_wide\":%s", a->use_wide ? "true" : "false");
	if (a->use_wide)
	{
		appendStringInfo(s, ",\"wide_type\":\"%s\",\"feature_cross\":%u,\"output_cross\":%u,\"wide_output_width\":%u",
						 wide_types[a->wide_type < 3 ? a->wide_type : 2], a->feature_cross,
						 a->output_cross, w.wide_out);
		appendStringInfoString(s, ",\"wide_features\":");
		append_feature_names(s, m, a->wide_inputs, a->n_wide_inputs);
	}
	appendStringInfoChar(s, '}');
}

/* The model argument, which a parallel worker must be able to read */
static inline bytea *
model_arg(FunctionCallInfo fcinfo, const char *fn)
{
	esmm_check_worker_arg(PG_GETARG_DATUM(0), fn, "model");
	return PG_GETARG_BYTEA_PP(0);
}

PG_FUNCTION_INFO_V1(esmm_model_info);

/* esmm_model_info(model bytea) -> jsonb: kind, config, schema, sizes, report */
Datum
esmm_model_info(PG_FUNCTION_ARGS)
{
	bytea	   *b = model_arg(fcinfo, "esmm_model_info");
	esmm_model_handle *h = esmm_model_from_bytea(b, 1, CurrentMemoryContext, false);
	const esmm_model *m = h->model;
	StringInfoData s;
	Datum		result;

	initStringInfo(&s);
	appendStringInfoChar(&s, '{');
	json_key(&s, "kind");
	escape_json(&s, kind_names[m->kind]);
	appendStringInfoString(&s, ",\"name\":");
	append_model_name(&s, m);
	appendStringInfo(&s, ",\"format_version\":1,\"bytes\":%zu", (size_t) VARSIZE_ANY_EXHDR(b));
	appendStringInfo(&s, ",\"parameters\":%zu,\"embedding_parameters\":%zu,\"parameter_bytes\":%zu",
					 m->n_params, m->n_embedding, m->n_params * sizeof(float));
	appendStringInfoString(&s, ",\"labels\":[");
	for (uint32_t i = 0; i < m->schema.n_labels; i++)
	{
		if (i > 0)
			appendStringInfoChar(&s, ',');
		escape_json(&s, m->schema.labels[i]);
	}
	appendStringInfoString(&s, "],\"features\":");
	append_schema(&s, m);
	if (m->kind == ESMM_KIND_MMOE)
	{
		appendStringInfoString(&s, ",\"mmoe\":");
		append_mmoe(&s, m);
	}
	appendStringInfoString(&s, ",\"config\":");
	appendStringInfoString(&s, m->config_len > 0 ? m->config_json : "{}");
	appendStringInfo(&s, ",\"report\":{\"rows_seen\":" UINT64_FORMAT ",\"rows_trained\":" UINT64_FORMAT
					 ",\"rows_dropped\":" UINT64_FORMAT ",\"rows_null_label\":" UINT64_FORMAT
					 ",\"rows_bad\":" UINT64_FORMAT ",\"threads\":%u,\"seconds\":",
					 m->report.rows_seen, m->report.rows_trained, m->report.rows_dropped,
					 m->report.rows_null_label, m->report.rows_bad, m->report.threads);
	json_number(&s, m->report.seconds);
	appendStringInfo(&s, ",\"rows_validation\":" UINT64_FORMAT ",\"best_epoch\":%u,\"stopped_early\":%s",
					 m->report.rows_validation, m->report.best_epoch,
					 m->report.stopped_early ? "true" : "false");
	appendStringInfoString(&s, ",\"history\":");
	append_history(&s, &m->report);
	appendStringInfoString(&s, "}}");
	esmm_handle_release(h);
	result = DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data));
	PG_RETURN_DATUM(result);
}

PG_FUNCTION_INFO_V1(esmm_model_fingerprint);

/*
 * esmm_model_fingerprint(model bytea) -> text: the md5 of the model with
 * the report's wall-clock durations and thread count zeroed, so that two
 * trainings with the same seed and rows compare equal although they took
 * different times on different thread counts (ESMM's row blocks make the
 * weights independent of the thread count).
 */
Datum
esmm_model_fingerprint(PG_FUNCTION_ARGS)
{
	bytea	   *b = model_arg(fcinfo, "esmm_model_fingerprint");
	esmm_model_handle *h = esmm_model_from_bytea(b, 1, CurrentMemoryContext, false);
	esmm_model *m = h->model;
	bytea	   *canonical;
	char		hex[33];
	const char *errstr = NULL;

	m->report.seconds = 0.0;
	m->report.threads = 0;
	for (uint32_t e = 0; e < m->report.n_epochs; e++)
		m->report.epochs[e].seconds = 0.0;
	canonical = esmm_model_to_bytea(m, false);
	esmm_handle_release(h);
	if (!pg_md5_hash(VARDATA(canonical), VARSIZE(canonical) - VARHDRSZ, hex, &errstr))
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not compute the model fingerprint: %s", errstr)));
	PG_RETURN_TEXT_P(cstring_to_text(hex));
}

PG_FUNCTION_INFO_V1(esmm_training_history);

/*
 * esmm_training_history(model bytea) -> setof (epoch, metric, value): the
 * per-epoch history as rows to plot: train_loss, rows, rows_dropped,
 * seconds, and each validation metric.
 */
Datum
esmm_training_history(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bytea	   *b = model_arg(fcinfo, "esmm_training_history");
	esmm_model_handle *h;
	const esmm_report *r;

	InitMaterializedSRF(fcinfo, 0);
	h = esmm_model_from_bytea(b, 1, CurrentMemoryContext, false);
	r = &h->model->report;
	for (uint32_t e = 0; e < r->n_epochs; e++)
	{
		const esmm_history_epoch *ep = &r->epochs[e];
		const char *names[4 + 16];
		double		values[4 + 16];
		int			n = 0;

		names[n] = "train_loss";
		values[n++] = ep->train_loss;
		names[n] = "rows";
		values[n++] = (double) ep->rows;
		names[n] = "rows_dropped";
		values[n++] = (double) r->rows_dropped;
		names[n] = "seconds";
		values[n++] = ep->seconds;
		for (uint32_t k = 0; k < ep->n_metrics; k++)
		{
			names[n] = ep->metric_names[k];
			values[n++] = ep->metric_values[k];
		}
		for (int i = 0; i < n; i++)
		{
			Datum		row[3];
			bool		nulls[3] = {false, false, isnan(values[i])};

			row[0] = Int32GetDatum((int32) ep->epoch);
			row[1] = CStringGetTextDatum(names[i]);
			row[2] = Float8GetDatum(values[i]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, nulls);
		}
	}
	esmm_handle_release(h);
	return (Datum) 0;
}

/* The sub-model kind that part ('ctr' or 'cvr') names. */
static inline esmm_model_kind
export_kind(const char *part)
{
	if (strcmp(part, "ctr") == 0)
		return ESMM_KIND_ESMM_CTR;
	if (strcmp(part, "cvr") == 0)
		return ESMM_KIND_ESMM_CVR;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown sub-model \"%s\"", part),
			 errhint("The sub-models of an ESMM model are 'ctr' and 'cvr'.")));
	pg_unreachable();
}

PG_FUNCTION_INFO_V1(esmm_export);

/* esmm_export(model bytea, part text) -> bytea: seed 000's esmm-ctr or esmm-cvr */
Datum
esmm_export(PG_FUNCTION_ARGS)
{
	bytea	   *b = model_arg(fcinfo, "esmm_export");
	esmm_model_kind kind = export_kind(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	esmm_model_handle *h = esmm_model_from_bytea(b, 1, CurrentMemoryContext, false);
	esmm_model_handle *sub = esmm_handle_new(NULL, CurrentMemoryContext);
	esmm_status st;
	bytea	   *out;

	if (h->model->kind == ESMM_KIND_MMOE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("esmm_export cannot split an mmoe model"),
				 errhint("Only a full ESMM model has ctr and cvr sub-models; score an mmoe model with mmoe_predict.")));
	if (h->model->kind != ESMM_KIND_ESMM)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model is already the %s sub-model", kind_names[h->model->kind]),
				 errhint("Export from the full ESMM model that esmm_train returned.")));
	esmm_status_clear(&st);
	if (esmm_model_export(&sub->model, h->model, kind, &st) != ESMM_OK)
		esmm_report_status(&st);
	out = esmm_model_to_bytea(sub->model, false);
	esmm_handle_release(sub);
	esmm_handle_release(h);
	PG_RETURN_BYTEA_P(out);
}

PG_FUNCTION_INFO_V1(esmm_live_models);

/*
 * esmm_live_models() -> bigint: the models this backend holds outside
 * memory contexts and the model cache (decoded or being trained); 0
 * between statements unless something leaked.
 */
Datum
esmm_live_models(PG_FUNCTION_ARGS)
{
	esmm_model_cache_info info;

	esmm_model_cache_stats(&info);
	PG_RETURN_INT64((int64) esmm_model_live() - info.entries);
}

PG_FUNCTION_INFO_V1(esmm_model_cache);

/*
 * esmm_model_cache() -> (entries, pinned, bytes, hits, misses): the
 * backend's cache of decoded models.
 */
Datum
esmm_model_cache(PG_FUNCTION_ARGS)
{
	esmm_model_cache_info info;
	TupleDesc	desc;
	Datum		values[5];
	bool		nulls[5] = {false};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "esmm_model_cache must return a record");
	esmm_model_cache_stats(&info);
	values[0] = Int64GetDatum(info.entries);
	values[1] = Int64GetDatum(info.pinned);
	values[2] = Int64GetDatum(info.bytes);
	values[3] = Int64GetDatum(info.hits);
	values[4] = Int64GetDatum(info.misses);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}
