/* encoder.c: rows to ids, raw floats and labels (see encoder.h). */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "encoder.h"
#include "esmm_model.h"

/* What a column type can be used for. */
typedef enum type_class
{
	TC_OTHER = 0,
	TC_INT,
	TC_FLOAT,
	TC_TEXT,
	TC_BOOL,
	TC_INT_ARRAY,
	TC_TEXT_ARRAY
} type_class;

/* What a base type (never a domain: callers resolve those) can feed. */
static type_class
classify_type(Oid type)
{
	switch (type)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
			return TC_INT;
		case FLOAT4OID:
		case FLOAT8OID:
		case NUMERICOID:
			return TC_FLOAT;
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			return TC_TEXT;
		case BOOLOID:
			return TC_BOOL;
		case INT2ARRAYOID:
		case INT4ARRAYOID:
		case INT8ARRAYOID:
			return TC_INT_ARRAY;
		case TEXTARRAYOID:
		case VARCHARARRAYOID:
			return TC_TEXT_ARRAY;
		default:
			return TC_OTHER;
	}
}

static int
find_column(TupleDesc tupdesc, const char *name)
{
	for (int i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return i;
	}
	return -1;
}

static Oid
column_type(TupleDesc tupdesc, int att)
{
	return getBaseType(TupleDescAttr(tupdesc, att)->atttypid);
}

/* ------------------------------------------------------ schema resolve */

static bool
is_label(const esmm_config *cfg, const char *name)
{
	return esmm_config_label_index(cfg, name) >= 0;
}

static bool
is_excluded(const esmm_config *cfg, const char *name)
{
	for (uint32_t i = 0; i < cfg->n_exclude; i++)
		if (strcmp(cfg->exclude[i], name) == 0)
			return true;
	return false;
}

/* A binary label is boolean or integer 0/1; a regression target (an
 * MMoE regression task) any number. */
static void
check_label_type(TupleDesc tupdesc, int att, const char *name, bool regression)
{
	Oid			type = column_type(tupdesc, att);
	type_class	tc = classify_type(type);

	if (regression && tc != TC_INT && tc != TC_FLOAT)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("regression label column \"%s\" has type %s", name, format_type_be(type)),
				 errhint("Regression labels must be integer, real, double precision or numeric.")));
	if (!regression && type != BOOLOID && tc != TC_INT)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("label column \"%s\" has type %s", name, format_type_be(type)),
				 errhint("Labels must be boolean or integer 0/1.")));
}

/* Appends the feature that request r describes, on column att. */
static void
add_feature(esmm_schema *schema, const esmm_config *cfg,
			const esmm_feature_request *r, TupleDesc tupdesc, int att)
{
	Oid			type = column_type(tupdesc, att);
	type_class	tc = classify_type(type);
	esmm_feature *f;
	uint8_t		kind = r->kind;

	if (schema->n_features >= ESMM_MAX_FEATURES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many features: at most %d are supported", ESMM_MAX_FEATURES),
				 errhint("List fewer columns in inputs.defs, or name some in inputs.exclude.")));
	if (tc == TC_OTHER)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" has type %s, which cannot be a feature",
						r->name, format_type_be(type)),
				 errhint("Features are integer, text, boolean, real, double precision or numeric columns, or integer or text arrays; list other columns in inputs.exclude.")));
	if (kind == 0)
		kind = tc == TC_FLOAT ? ESMM_FEAT_NUMERIC :
			(tc == TC_INT_ARRAY || tc == TC_TEXT_ARRAY) ? ESMM_FEAT_MULTI :
			ESMM_FEAT_CATEGORICAL;
	if ((kind == ESMM_FEAT_NUMERIC && tc != TC_FLOAT && tc != TC_INT) ||
		(kind == ESMM_FEAT_CATEGORICAL && tc != TC_INT && tc != TC_TEXT && tc != TC_BOOL) ||
		(kind == ESMM_FEAT_MULTI && tc != TC_INT_ARRAY && tc != TC_TEXT_ARRAY))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of type %s cannot be a %s feature", r->name,
						format_type_be(type),
						kind == ESMM_FEAT_NUMERIC ? "numeric" :
						kind == ESMM_FEAT_MULTI ? "multi" : "categorical"),
				 errhint("Numeric features are number columns, categorical features integer, text or boolean columns, multi features integer or text arrays.")));

	f = &schema->features[schema->n_features++];
	memset(f, 0, sizeof(*f));
	strlcpy(f->name, r->name, ESMM_NAME_LEN);
	f->src_type = type;
	f->kind = kind;
	f->std = 1.0f;
	if (kind == ESMM_FEAT_NUMERIC)
	{
		f->norm = r->norm_given ? r->norm : ESMM_NORM_STANDARD;
		f->null_indicator = r->null_indicator;
		return;
	}
	/* text and booleans are always hashed; integers are vocab ids unless
	 * hash_buckets is given or no vocab_size bounds them */
	f->hashed = tc == TC_TEXT || tc == TC_BOOL || tc == TC_TEXT_ARRAY ||
		r->hash_buckets > 0 || r->vocab_size == 0;
	f->n_buckets = (uint32_t) (r->hash_buckets > 0 ? r->hash_buckets :
							   r->vocab_size > 0 ? r->vocab_size :
							   cfg->default_hash_buckets);
	f->dim = r->embedding_dim > 0 ? r->embedding_dim : cfg->default_embedding_dim;
}

static int
feature_index(const esmm_schema *schema, const char *name)
{
	for (uint32_t f = 0; f < schema->n_features; f++)
		if (strcmp(schema->features[f].name, name) == 0)
			return (int) f;
	return -1;
}

/* The features: inputs.defs, or every column but the labels and the
 * excluded ones; and the labels of the config, in task order. */
static void
resolve_features(esmm_schema *schema, const esmm_config *cfg, TupleDesc tupdesc)
{
	const char **labels = esmm_config_labels(cfg);

	memset(schema, 0, sizeof(*schema));
	for (uint32_t i = 0; labels[i] != NULL; i++)
	{
		int			att = find_column(tupdesc, labels[i]);

		if (att < 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("label column \"%s\" does not exist in the input rows", labels[i]),
					 cfg->kind == ESMM_KIND_MMOE ?
					 errhint("inputs.groups.labels (or the inputs.defs marked is_label) must name columns of the rows passed to the aggregate.") :
					 errhint("ctr_label_name and cvr_label_name (or ctcvr_label_name) must name columns of the rows passed to the aggregate.")));
		check_label_type(tupdesc, att, labels[i],
						 cfg->kind == ESMM_KIND_MMOE &&
						 cfg->mmoe.task_type[i] == MMOE_TASK_REGRESSION);
		strlcpy(schema->labels[i], labels[i], ESMM_NAME_LEN);
		schema->label_src_type[i] = column_type(tupdesc, att);
		schema->n_labels++;
	}

	if (cfg->defs_given)
	{
		for (uint32_t i = 0; i < cfg->n_requests; i++)
		{
			const esmm_feature_request *r = &cfg->requests[i];
			int			att = find_column(tupdesc, r->name);

			if (att < 0)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("feature column \"%s\" does not exist in the input rows", r->name),
						 errhint("Every name in inputs.defs must be a column of the rows passed to the aggregate.")));
			if (is_label(cfg, r->name))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("column \"%s\" is a label and cannot also be a feature", r->name)));
			add_feature(schema, cfg, r, tupdesc, att);
		}
	}
	else
	{
		for (int att = 0; att < tupdesc->natts; att++)
		{
			Form_pg_attribute a = TupleDescAttr(tupdesc, att);
			esmm_feature_request r;

			if (a->attisdropped || is_label(cfg, NameStr(a->attname)) ||
				is_excluded(cfg, NameStr(a->attname)))
				continue;
			memset(&r, 0, sizeof(r));
			strlcpy(r.name, NameStr(a->attname), ESMM_NAME_LEN);
			add_feature(schema, cfg, &r, tupdesc, att);
		}
	}
	if (schema->n_features == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the configuration leaves no feature columns"),
				 errhint("Name features in inputs.defs, or pass rows with columns besides the labels.")));
}

/* A group's features as indices into the schema; every feature when the
 * group is not given. */
static void
resolve_group(const esmm_schema *schema, const char *group, bool given,
			  const char (*names)[ESMM_NAME_LEN], uint32_t n_names,
			  uint16_t *inputs, uint32_t *n_inputs)
{
	*n_inputs = 0;
	if (!given)
	{
		for (uint32_t f = 0; f < schema->n_features; f++)
			inputs[(*n_inputs)++] = (uint16_t) f;
		return;
	}
	for (uint32_t i = 0; i < n_names; i++)
	{
		int			f = feature_index(schema, names[i]);

		if (f < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("group \"%s\" names \"%s\", which is not a feature", group, names[i]),
					 errhint("Group members must be features defined in inputs.defs.")));
		inputs[(*n_inputs)++] = (uint16_t) f;
	}
}

void
esmm_schema_resolve(esmm_schema *schema, esmm_arch *arch,
					const esmm_config *cfg, TupleDesc tupdesc)
{
	static const char *const group_names[2] = {"ctr", "cvr"};

	resolve_features(schema, cfg, tupdesc);
	for (int t = 0; t < 2; t++)
		resolve_group(schema, group_names[t], cfg->group_given[t], cfg->group[t],
					  cfg->n_group[t], arch->tower[t].inputs, &arch->tower[t].n_inputs);
}

void
mmoe_schema_resolve(esmm_schema *schema, mmoe_arch *arch,
					const esmm_config *cfg, TupleDesc tupdesc)
{
	resolve_features(schema, cfg, tupdesc);
	resolve_group(schema, "mmoe", cfg->group_mmoe_given, cfg->group_mmoe, cfg->n_group_mmoe,
				  arch->expert.inputs, &arch->expert.n_inputs);
	if (arch->use_wide)
		resolve_group(schema, "wide", true, cfg->group_wide, cfg->n_group_wide,
					  arch->wide_inputs, &arch->n_wide_inputs);
	else
		arch->n_wide_inputs = 0;
}

/* ---------------------------------------------------------------- bind */

/* Whether a column of class actual can feed a feature trained on class
 * trained: the same class, or any number for a numeric feature. */
static bool
compatible(const esmm_feature *f, type_class actual)
{
	type_class	trained = classify_type(f->src_type);

	if (f->kind == ESMM_FEAT_NUMERIC)
		return actual == TC_INT || actual == TC_FLOAT;
	return actual == trained;
}

/* Binds enc to the columns of td (copied into mcxt); the row type, which
 * esmm_encoder_matches compares, stays unset. */
static void
bind_desc(esmm_encoder *enc, const esmm_schema *schema, TupleDesc td, bool with_labels,
		  const uint8_t *label_regression, MemoryContext mcxt)
{
	MemoryContext old = MemoryContextSwitchTo(mcxt);
	bool		skip = enc->skip_bad_rows;

	memset(enc, 0, sizeof(*enc));
	enc->skip_bad_rows = skip;
	enc->schema = schema;
	enc->mcxt = mcxt;
	enc->tupdesc = CreateTupleDescCopy(td);
	enc->rowtype = InvalidOid;	/* set last: a failed bind must not match */
	enc->values = palloc(sizeof(Datum) * Max(enc->tupdesc->natts, 1));
	enc->nulls = palloc(sizeof(bool) * Max(enc->tupdesc->natts, 1));
	MemoryContextSwitchTo(old);
	esmm_schema_slots(schema, &enc->n_ids, &enc->n_nums, &enc->n_multi, enc->slot);
	for (uint32_t f = 0; f < schema->n_features; f++)
	{
		const esmm_feature *ft = &schema->features[f];
		int			att = find_column(enc->tupdesc, ft->name);
		Oid			type;

		if (att < 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" required by the model is missing from the input row",
							ft->name)));
		type = column_type(enc->tupdesc, att);
		if (!compatible(ft, classify_type(type)))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" has type %s, but the model expects %s",
							ft->name, format_type_be(type), format_type_be(ft->src_type))));
		enc->attnum[f] = att;
		enc->type[f] = type;
		if (ft->kind == ESMM_FEAT_MULTI)
		{
			enc->elem_type[f] = get_element_type(type);
			get_typlenbyvalalign(enc->elem_type[f], &enc->elem_len[f],
								 &enc->elem_byval[f], &enc->elem_align[f]);
		}
	}
	for (uint32_t i = 0; i < schema->n_labels; i++)
	{
		enc->label_attnum[i] = -1;
		if (!with_labels)
			continue;
		enc->label_attnum[i] = find_column(enc->tupdesc, schema->labels[i]);
		if (enc->label_attnum[i] < 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("label column \"%s\" does not exist in the input rows",
							schema->labels[i])));
		check_label_type(enc->tupdesc, enc->label_attnum[i], schema->labels[i],
						 label_regression != NULL && label_regression[i]);
		enc->label_regression[i] = label_regression != NULL && label_regression[i];
		enc->label_type[i] = column_type(enc->tupdesc, enc->label_attnum[i]);
	}
}

void
esmm_encoder_bind(esmm_encoder *enc, const esmm_schema *schema,
				  HeapTupleHeader tup, bool with_labels,
				  const uint8_t *label_regression, MemoryContext mcxt)
{
	Oid			rowtype = HeapTupleHeaderGetTypeId(tup);
	int32		typmod = HeapTupleHeaderGetTypMod(tup);
	TupleDesc	td = lookup_rowtype_tupdesc_copy(rowtype, typmod);

	bind_desc(enc, schema, td, with_labels, label_regression, mcxt);
	FreeTupleDesc(td);
	enc->rowtypmod = typmod;
	enc->rowtype_id = assign_record_type_identifier(rowtype, typmod);
	enc->rowtype = rowtype;
}

void
esmm_encoder_bind_desc(esmm_encoder *enc, const esmm_schema *schema, TupleDesc td,
					   MemoryContext mcxt)
{
	bind_desc(enc, schema, td, false, NULL, mcxt);
}

bool
esmm_encoder_matches(esmm_encoder *enc, HeapTupleHeader tup)
{
	uint64		id;
	TupleDesc	td;
	bool		same;

	if (enc->tupdesc == NULL ||
		HeapTupleHeaderGetTypeId(tup) != enc->rowtype ||
		HeapTupleHeaderGetTypMod(tup) != enc->rowtypmod)
		return false;
	/* the identifier changes when ALTER TABLE changes the row type, which
	 * a cache living across statements (PL/pgSQL) would otherwise miss */
	id = assign_record_type_identifier(enc->rowtype, enc->rowtypmod);
	if (id == enc->rowtype_id)
		return true;
	/* but also when the type cache merely rebuilt the entry, after any
	 * invalidation of the table (autovacuum's ANALYZE, say) */
	td = lookup_rowtype_tupdesc(enc->rowtype, enc->rowtypmod);
	same = td->natts == enc->tupdesc->natts;
	for (int i = 0; same && i < td->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(td, i),
					b = TupleDescAttr(enc->tupdesc, i);

		same = a->atttypid == b->atttypid && a->atttypmod == b->atttypmod &&
			a->attisdropped == b->attisdropped &&
			strcmp(NameStr(a->attname), NameStr(b->attname)) == 0;
	}
	ReleaseTupleDesc(td);
	if (same)
		enc->rowtype_id = id;
	return same;
}

/* -------------------------------------------------------------- encode */

void
esmm_idbuf_append(esmm_idbuf *buf, const int32_t *ids, size_t n)
{
	if (buf->len + n > buf->cap)
	{
		size_t		cap = Max(buf->cap * 2, buf->len + n + 64);

		buf->ids = buf->ids == NULL ?
			MemoryContextAllocHuge(buf->mcxt, cap * sizeof(int32_t)) :
			repalloc_huge(buf->ids, cap * sizeof(int32_t));
		buf->cap = cap;
	}
	memcpy(buf->ids + buf->len, ids, n * sizeof(int32_t));
	buf->len += n;
}

static int64
int_value(Datum d, Oid type)
{
	switch (type)
	{
		case INT2OID:
			return DatumGetInt16(d);
		case INT4OID:
			return DatumGetInt32(d);
		default:
			return DatumGetInt64(d);
	}
}

/* The same bucket for an integer whatever its width, as hashint8 does. */
static uint64
hash_int(int64 v)
{
	uint32		lo = (uint32) v;
	uint32		hi = (uint32) (v >> 32);

	lo ^= (v >= 0) ? hi : ~hi;
	return hash_bytes_uint32_extended(lo, 0);
}

/* The id of one scalar value of categorical feature f. */
static int32_t
encode_id(esmm_encoder *enc, uint32_t f, Datum d, Oid type)
{
	const esmm_feature *ft = &enc->schema->features[f];
	uint64		h;

	switch (type)
	{
		case BOOLOID:
			h = hash_bytes_uint32_extended(DatumGetBool(d) ? 1 : 0, 0);
			break;
		case INT2OID:
		case INT4OID:
		case INT8OID:
			{
				int64		v = int_value(d, type);

				if (ft->hashed)
				{
					h = hash_int(v);
					break;
				}
				if (v < 0 || v >= (int64) ft->n_buckets)
					ereport(ERROR,
							(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
							 errmsg("value " INT64_FORMAT " of column \"%s\" is outside its vocab_size %u",
									v, ft->name, ft->n_buckets),
							 errhint("Ids must be in 0..%u; set hash_buckets to hash them instead.",
									 ft->n_buckets - 1)));
				return (int32_t) v;
			}
		default:
			{
				text	   *t = DatumGetTextPP(d);
				int			len = VARSIZE_ANY_EXHDR(t);

				/* char(n)'s padding is not part of the value: 'a'::char(4)
				 * and 'a'::text fall in the same bucket, as in hashbpchar */
				if (type == BPCHAROID)
					len = bpchartruelen(VARDATA_ANY(t), len);
				h = hash_bytes_extended((const unsigned char *) VARDATA_ANY(t), len, 0);
				break;
			}
	}
	return (int32_t) (h % ft->n_buckets);
}

/* Appends the ids of array feature f; returns how many. */
static uint32_t
encode_array(esmm_encoder *enc, uint32_t f, Datum d, esmm_idbuf *multi)
{
	ArrayType  *arr = DatumGetArrayTypeP(d);
	Datum	   *elems;
	bool	   *enulls;
	int			n;

	deconstruct_array(arr, enc->elem_type[f], enc->elem_len[f], enc->elem_byval[f],
					  enc->elem_align[f], &elems, &enulls, &n);
	for (int i = 0; i < n; i++)
	{
		int32_t		id = enulls[i] ? (int32_t) enc->schema->features[f].n_buckets :
			encode_id(enc, f, elems[i], enc->elem_type[f]);

		esmm_idbuf_append(multi, &id, 1);
	}
	pfree(elems);
	pfree(enulls);
	return (uint32_t) n;
}

static double
float_value(Datum d, Oid type)
{
	switch (type)
	{
		case FLOAT4OID:
			return DatumGetFloat4(d);
		case FLOAT8OID:
			return DatumGetFloat8(d);
		case NUMERICOID:
			return DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow, d));
		default:
			return (double) int_value(d, type);
	}
}

esmm_row_status
esmm_encode_row(esmm_encoder *enc, HeapTupleHeader tup, int32_t *ids,
				float *nums, esmm_idbuf *multi, uint32_t *multi_counts,
				float *labels)
{
	HeapTupleData tuple;

	tuple.t_len = HeapTupleHeaderGetDatumLength(tup);
	ItemPointerSetInvalid(&(tuple.t_self));
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = tup;
	heap_deform_tuple(&tuple, enc->tupdesc, enc->values, enc->nulls);
	return esmm_encode_datums(enc, enc->values, enc->nulls, ids, nums, multi, multi_counts,
							  labels);
}

esmm_row_status
esmm_encode_datums(esmm_encoder *enc, const Datum *values, const bool *nulls,
				   int32_t *ids, float *nums, esmm_idbuf *multi,
				   uint32_t *multi_counts, float *labels)
{
	const esmm_schema *schema = enc->schema;

	enc->row_number++;
	if (labels != NULL)
		for (uint32_t i = 0; i < schema->n_labels; i++)
		{
			int			att = enc->label_attnum[i];
			int64		v;

			if (nulls[att])
				return ESMM_ROW_NULL_LABEL;
			if (enc->label_regression[i])
			{
				double		y = float_value(values[att], enc->label_type[i]);

				if (!isfinite(y) || fabs(y) > FLT_MAX)
				{
					if (enc->skip_bad_rows)
						return ESMM_ROW_BAD;
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("regression label column \"%s\" has value %g at row " INT64_FORMAT,
									schema->labels[i], y, enc->row_number),
							 errhint("Regression labels must be finite; set train_args.on_bad_row to \"skip\" to leave such rows out.")));
				}
				labels[i] = (float) y;
				continue;
			}
			v = enc->label_type[i] == BOOLOID ? (int64) DatumGetBool(values[att]) :
				int_value(values[att], enc->label_type[i]);
			if (v != 0 && v != 1)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("label column \"%s\" has value " INT64_FORMAT " at row " INT64_FORMAT,
								schema->labels[i], v, enc->row_number),
						 errhint("Labels must be boolean or integer 0/1.")));
			labels[i] = (float) v;
		}

	for (uint32_t f = 0; f < schema->n_features; f++)
	{
		const esmm_feature *ft = &schema->features[f];
		int			att = enc->attnum[f];
		bool		isnull = nulls[att];
		Datum		d = values[att];

		switch (ft->kind)
		{
			case ESMM_FEAT_CATEGORICAL:
				ids[enc->slot[f]] = isnull ? (int32_t) ft->n_buckets :
					encode_id(enc, f, d, enc->type[f]);
				break;
			case ESMM_FEAT_MULTI:
				multi_counts[enc->slot[f]] = isnull ? 0 : encode_array(enc, f, d, multi);
				break;
			default:
				{
					double		v = isnull ? NAN : float_value(d, enc->type[f]);

					/* NaN marks NULL inside the buffer, so a NaN in the data
					 * must never get there */
					if (!isnull && (isnan(v) || isinf((float) v)))
					{
						if (enc->skip_bad_rows)
							return ESMM_ROW_BAD;
						ereport(ERROR,
								(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
								 errmsg(isfinite(v) ?
										"column \"%s\" has a value (%g) outside the range of real at row " INT64_FORMAT :
										"column \"%s\" has a non-finite value (%g) at row " INT64_FORMAT,
										ft->name, v, enc->row_number),
								 errhint("Clean the column, or set \"on_bad_row\": \"skip\" to skip such rows.")));
					}
					nums[enc->slot[f]] = (float) v;
				}
		}
	}
	return ESMM_ROW_OK;
}

/* ------------------------------------------------------ model schemas */

/* A stored column name must be valid in the database encoding before any
 * message quotes it. */
static void
check_name_encoding(const char *name)
{
	if (!pg_verify_mbstr(GetDatabaseEncoding(), name, (int) strlen(name), true))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid esmm model: a column name is not valid in the database encoding")));
}

void
esmm_schema_check(const esmm_schema *schema)
{
	for (uint32_t f = 0; f < schema->n_features; f++)
	{
		const esmm_feature *ft = &schema->features[f];
		type_class	tc = classify_type(ft->src_type);
		bool		ok;

		check_name_encoding(ft->name);
		switch (ft->kind)
		{
			case ESMM_FEAT_NUMERIC:
				ok = tc == TC_INT || tc == TC_FLOAT;
				break;
			case ESMM_FEAT_MULTI:
				ok = tc == TC_INT_ARRAY || tc == TC_TEXT_ARRAY;
				break;
			default:
				ok = tc == TC_INT || tc == TC_TEXT || tc == TC_BOOL;
		}
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("invalid esmm model: feature \"%s\" has column type %u, which its kind cannot have",
							ft->name, ft->src_type)));
	}
	for (uint32_t i = 0; i < schema->n_labels; i++)
	{
		check_name_encoding(schema->labels[i]);
		if (schema->label_src_type[i] != BOOLOID &&
			classify_type(schema->label_src_type[i]) != TC_INT &&
			classify_type(schema->label_src_type[i]) != TC_FLOAT)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("invalid esmm model: label \"%s\" has column type %u",
							schema->labels[i], schema->label_src_type[i])));
	}
}
