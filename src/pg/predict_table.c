/*
 * predict_table.c: esmm_predict_table and mmoe_predict_table: score a
 * whole table in batches into a new table.
 *
 *   esmm_predict_table(model, source, key_column, output_table) -> bigint
 *   creates output_table(key <the key column's type>, pctr real, pcvr real,
 *   pctcvr real); mmoe_predict_table's has one real column per task,
 *   named after its label.
 *
 * Everything goes through SPI as the caller: reading the source needs its
 * SELECT privilege, creating the output needs CREATE on the schema, and
 * nothing is SECURITY DEFINER.  The source query streams its rows into a
 * DestReceiver that encodes each from the slot's values, with no copy of
 * the row in between; every SCORE_BATCH rows, the batch is scored with the
 * batched (sgemm) forward pass and written to the output table, which
 * this call created and owns, with table_multi_insert as COPY does: one
 * WAL record per page instead of an executor round per row.  Should the
 * new table have gained an index, a trigger or row security meanwhile (an
 * event trigger), each batch goes through INSERT ... SELECT FROM
 * unnest(...) instead, on an SPI connection of its own, since the source
 * query is still running on the outer one.  The statement is one
 * transaction: a cancel between batches leaves no output table behind.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "executor/tuptable.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/typcache.h"
#include "utils/varlena.h"

#include "encoder.h"
#include "esmm_pg.h"
#include "mmoe_model.h"

#define SCORE_BATCH 4096

/* One batch of encoded rows, feature-major for the array features as the
 * core's batches are (esmm_data.h). */
typedef struct score_batch
{
	MemoryContext cxt;			/* the call's: outlives the batches */
	int32_t    *ids;			/* [SCORE_BATCH, n_ids] */
	float	   *nums;			/* [SCORE_BATCH, n_nums] */
	uint32_t   *counts;			/* [SCORE_BATCH, n_multi] ids per row and feature */
	esmm_idbuf	row_ids;		/* the rows' array ids, row-major */
	uint32_t   *multi_off;		/* [n_multi, SCORE_BATCH + 1] */
	int32_t    *multi_ids;		/* feature-major copy of row_ids */
	size_t		multi_cap;
	float	   *out;			/* [n_outputs, SCORE_BATCH]: one column per output */
	float	   *task_rows;		/* [SCORE_BATCH, n_outputs]: mmoe_model_predict's */
	Datum	   *keys;			/* [SCORE_BATCH] */
	bool	   *key_nulls;		/* [SCORE_BATCH] */
} score_batch;

/* The output table's columns beside the key. */
static int
output_columns(const esmm_model *m, const char **names, int max)
{
	static const char *const esmm_names[3] = {"pctr", "pcvr", "pctcvr"};
	int			n = m->kind == ESMM_KIND_MMOE ? (int) m->mmoe.n_tasks : 3;

	for (int i = 0; i < n && i < max; i++)
		names[i] = m->kind == ESMM_KIND_MMOE ? m->schema.labels[i] : esmm_names[i];
	return n;
}

/* The key column's type, or an ERROR naming the column. */
static Oid
key_column_type(Oid relid, const char *key, int32 *typmod)
{
	AttrNumber	att = get_attnum(relid, key);
	Oid			type;
	Oid			coll;

	if (att == InvalidAttrNumber || att < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("key column \"%s\" does not exist in table %s", key,
						get_rel_name(relid)),
				 errhint("The key column is copied to the output table, one row per scored row.")));
	get_atttypetypmodcoll(relid, att, &type, typmod, &coll);
	if (!OidIsValid(get_array_type(type)))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("key column \"%s\" has type %s, which has no array type", key,
						format_type_be(type)),
				 errhint("Use a key column of a base type such as bigint, integer, text or uuid.")));
	return type;
}

/* Creates the output table; returns its quoted, qualified name, and its
 * oid in *relid. */
static char *
create_output(const esmm_model *m, text *name, Oid key_type, int32 key_typmod,
			  const char *key, Oid *relid)
{
	List	   *names = textToQualifiedNameList(name);
	char	   *qualified = NameListToQuotedString(names);
	const char *cols[ESMM_MAX_LABELS];
	int			n = output_columns(m, cols, ESMM_MAX_LABELS);
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TABLE %s (%s %s", qualified, quote_identifier(key),
					 format_type_with_typemod(key_type, key_typmod));
	for (int i = 0; i < n; i++)
		appendStringInfo(&sql, ", %s real", quote_identifier(cols[i]));
	appendStringInfoChar(&sql, ')');
	if (SPI_execute(sql.data, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not create the output table %s", qualified);
	*relid = RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock, false);
	return qualified;
}

/* Lays the batch's array ids out feature-major, as the core reads them:
 * the encoder appended them row by row. */
static void
batch_multi_layout(score_batch *sb, const esmm_model *m, int B)
{
	const uint32_t nm = m->n_multi;
	uint32_t	pos[ESMM_MAX_FEATURES];	/* where feature k's next id goes */
	size_t		at = 0;

	if (nm == 0)
		return;
	if (sb->row_ids.len + 1 > sb->multi_cap)
	{
		sb->multi_cap = (sb->row_ids.len + 1) * 2;
		sb->multi_ids = sb->multi_ids == NULL ?
			MemoryContextAllocHuge(sb->cxt, sb->multi_cap * sizeof(int32_t)) :
			repalloc_huge(sb->multi_ids, sb->multi_cap * sizeof(int32_t));
	}
	/* feature k's segment starts after the ids of features 0..k-1 */
	for (uint32_t k = 0, start = 0; k < nm; k++)
	{
		pos[k] = start;
		for (int b = 0; b < B; b++)
			start += sb->counts[(size_t) b * nm + k];
	}
	for (int b = 0; b < B; b++)
		for (uint32_t k = 0; k < nm; k++)
		{
			uint32_t	c = sb->counts[(size_t) b * nm + k];

			sb->multi_off[(size_t) k * (B + 1) + b] = pos[k];
			memcpy(sb->multi_ids + pos[k], sb->row_ids.ids + at, c * sizeof(int32_t));
			pos[k] += c;
			at += c;
		}
	for (uint32_t k = 0; k < nm; k++)
		sb->multi_off[(size_t) k * (B + 1) + B] = pos[k];
}

/* Scores B encoded rows into sb->out, one column of B per output. */
static void
batch_score(score_batch *sb, esmm_model *m, int B)
{
	esmm_batch	batch;

	batch_multi_layout(sb, m, B);
	batch.B = B;
	batch.ids = sb->ids;
	batch.nums = sb->nums;
	batch.labels = NULL;
	batch.multi_off = sb->multi_off;
	batch.multi_ids = sb->multi_ids;
	if (m->kind == ESMM_KIND_MMOE)
	{
		const uint32_t T = m->mmoe.n_tasks;

		mmoe_model_predict(m, &batch, sb->task_rows);
		for (int b = 0; b < B; b++)
			for (uint32_t t = 0; t < T; t++)
				sb->out[(size_t) t * B + b] = sb->task_rows[(size_t) b * T + t];
	}
	else
		esmm_model_predict(m, &batch, sb->out, sb->out + B, sb->out + 2 * B);
}

/* The output table, written directly when nothing but its heap needs to
 * see the rows. */
typedef struct output_writer
{
	Relation	rel;			/* NULL: write through SPI */
	TupleDesc	desc;			/* a copy, so that slots do not pin it */
	TupleTableSlot **slots;		/* [SCORE_BATCH], the first n_slots made */
	int			n_slots;
	MemoryContext cxt;			/* the slots' and the copy's */
	BulkInsertState bistate;
	CommandId	cid;
} output_writer;

static void
output_writer_open(output_writer *w, Oid relid)
{
	Relation	rel = table_open(relid, RowExclusiveLock);

	memset(w, 0, sizeof(*w));
	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relhasindex ||
		rel->rd_rel->relhastriggers || rel->rd_rel->relrowsecurity ||
		rel->rd_att->constr != NULL)
	{
		table_close(rel, RowExclusiveLock);
		return;
	}
	w->rel = rel;
	/*
	 * A slot over the relation's own descriptor pins it in the resource
	 * owner, whose forget is a linear search: dropping 4,096 slots cost 11 ms.
	 * A copy is not reference-counted.  Slots are made as batches need them,
	 * so a small table makes few.
	 */
	w->cxt = CurrentMemoryContext;
	w->desc = CreateTupleDescCopy(RelationGetDescr(rel));
	w->slots = palloc(sizeof(TupleTableSlot *) * SCORE_BATCH);
	w->bistate = GetBulkInsertState();
	w->cid = GetCurrentCommandId(true);
}

static void
output_writer_close(output_writer *w)
{
	if (w->rel == NULL)
		return;
	for (int i = 0; i < w->n_slots; i++)
		ExecDropSingleTupleTableSlot(w->slots[i]);
	FreeBulkInsertState(w->bistate);
	table_finish_bulk_insert(w->rel, 0);
	table_close(w->rel, NoLock);
	w->rel = NULL;
}

/* Writes B scored rows straight into the output table's heap. */
static void
batch_write_direct(score_batch *sb, output_writer *w, int n_out, int B)
{
	if (w->n_slots < B)
	{
		MemoryContext old = MemoryContextSwitchTo(w->cxt);

		for (; w->n_slots < B; w->n_slots++)
			w->slots[w->n_slots] = MakeSingleTupleTableSlot(w->desc, table_slot_callbacks(w->rel));
		MemoryContextSwitchTo(old);
	}
	for (int b = 0; b < B; b++)
	{
		TupleTableSlot *slot = w->slots[b];

		ExecClearTuple(slot);
		slot->tts_values[0] = sb->keys[b];
		slot->tts_isnull[0] = sb->key_nulls[b];
		for (int i = 0; i < n_out; i++)
		{
			float		v = sb->out[(size_t) i * B + b];

			/* a sub-model's missing tower scores NaN: NULL, as esmm_predict */
			slot->tts_isnull[1 + i] = isnan(v);
			slot->tts_values[1 + i] = Float4GetDatum(v);
		}
		ExecStoreVirtualTuple(slot);
	}
	/* the table is this transaction's own and only grows: no free space to
	 * look for, as COPY into a table created in its transaction */
	table_multi_insert(w->rel, w->slots, B, w->cid, TABLE_INSERT_SKIP_FSM, w->bistate);
}

/* Writes B scored rows with one INSERT ... SELECT FROM unnest(...). */
static void
batch_write(score_batch *sb, SPIPlanPtr insert, int n_out, Oid key_type, int B)
{
	Datum		args[1 + ESMM_MAX_LABELS];
	Datum	   *vals = palloc(sizeof(Datum) * B);
	bool	   *nulls = palloc(sizeof(bool) * B);
	int			dims[1] = {B};
	int			lbs[1] = {1};
	int16		typlen;
	bool		typbyval;
	char		typalign;

	get_typlenbyvalalign(key_type, &typlen, &typbyval, &typalign);
	args[0] = PointerGetDatum(construct_md_array(sb->keys, sb->key_nulls, 1, dims, lbs,
												 key_type, typlen, typbyval, typalign));
	for (int i = 0; i < n_out; i++)
	{
		for (int b = 0; b < B; b++)
		{
			float		v = sb->out[(size_t) i * B + b];

			/* a sub-model's missing tower scores NaN: NULL, as esmm_predict */
			nulls[b] = isnan(v);
			vals[b] = Float4GetDatum(v);
		}
		args[1 + i] = PointerGetDatum(construct_md_array(vals, nulls, 1, dims, lbs, FLOAT4OID,
														 sizeof(float4), true, TYPALIGN_INT));
	}
	if (SPI_execute_plan(insert, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write a batch of scores");
	pfree(vals);
	pfree(nulls);
}

/*
 * Receives the source query's rows: encodes each into the batch and, every
 * batch rows, scores and writes them.
 */
typedef struct score_receiver
{
	DestReceiver pub;			/* first: the executor calls through it */
	esmm_model *m;
	esmm_encoder *enc;
	score_batch *sb;
	output_writer *writer;
	SPIPlanPtr	insert;			/* the INSERT when writer->rel is NULL */
	MemoryContext batch_cxt;	/* what one batch allocates, reset after it */
	Oid			key_type;
	int16		key_len;
	bool		key_byval;
	int			n_out;
	int			batch;			/* rows per batch */
	int			n;				/* rows in the batch so far */
	int64		written;
	/*
	 * The error context of the caller, not of SPI's query: an ERROR about a
	 * row (a NaN, an id outside its vocabulary) is about the source table,
	 * and quoting the internal SELECT that read it would only confuse.
	 */
	ErrorContextCallback *caller_context;
} score_receiver;

/* Scores and writes the rows received since the last flush. */
static void
score_flush(score_receiver *r)
{
	MemoryContext old;

	if (r->n == 0)
		return;
	CHECK_FOR_INTERRUPTS();
	old = MemoryContextSwitchTo(r->batch_cxt);
	batch_score(r->sb, r->m, r->n);
	if (r->writer->rel != NULL)
		batch_write_direct(r->sb, r->writer, r->n_out, r->n);
	else
	{
		SPI_connect();
		batch_write(r->sb, r->insert, r->n_out, r->key_type, r->n);
		SPI_finish();
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(r->batch_cxt);
	r->written += r->n;
	r->n = 0;
	r->sb->row_ids.len = 0;
}

static bool
score_receive_slot(TupleTableSlot *slot, DestReceiver *self)
{
	score_receiver *r = (score_receiver *) self;
	score_batch *sb = r->sb;
	const esmm_model *m = r->m;
	const int	b = r->n;
	ErrorContextCallback *spi_context = error_context_stack;
	MemoryContext old = MemoryContextSwitchTo(r->batch_cxt);

	error_context_stack = r->caller_context;
	slot_getallattrs(slot);
	/* the slot's values last until the next row; the key must last until
	 * the batch is written */
	sb->key_nulls[b] = slot->tts_isnull[0];
	sb->keys[b] = sb->key_nulls[b] ? (Datum) 0 :
		datumCopy(slot->tts_values[0], r->key_byval, r->key_len);
	(void) esmm_encode_datums(r->enc, slot->tts_values, slot->tts_isnull,
							  sb->ids + (size_t) b * m->n_ids, sb->nums + (size_t) b * m->n_nums,
							  &sb->row_ids, sb->counts + (size_t) b * m->n_multi, NULL);
	MemoryContextSwitchTo(old);
	if (++r->n == r->batch)
		score_flush(r);
	error_context_stack = spi_context;
	return true;
}

/* The query's result columns, found by name as in the table. */
static void
score_receiver_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	score_receiver *r = (score_receiver *) self;

	esmm_encoder_bind_desc(r->enc, &r->m->schema, typeinfo, r->sb->cxt);
}

static void
score_receiver_shutdown(DestReceiver *self)
{
	score_receiver *r = (score_receiver *) self;
	ErrorContextCallback *spi_context = error_context_stack;

	error_context_stack = r->caller_context;
	score_flush(r);
	error_context_stack = spi_context;
}

static void
score_receiver_destroy(DestReceiver *self)
{
}

/* The body of both functions: kind says which models it accepts. */
static int64
predict_table(FunctionCallInfo fcinfo, bool mmoe)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	Oid			source = PG_GETARG_OID(1);
	char	   *key = text_to_cstring(PG_GETARG_TEXT_PP(2));
	text	   *output = PG_GETARG_TEXT_PP(3);
	MemoryContext batch_cxt;
	esmm_model_handle *h;
	esmm_model *m;
	esmm_encoder enc;
	score_batch sb;
	Oid			key_type;
	int32		key_typmod;
	char	   *out_name;
	int			n_out;
	const char *cols[ESMM_MAX_LABELS];
	Oid			argtypes[1 + ESMM_MAX_LABELS];
	SPIPlanPtr	insert = NULL;
	SPIPlanPtr	source_query;
	SPIExecuteOptions options;
	score_receiver receiver;
	StringInfoData sql;
	output_writer writer;
	Oid			out_relid;
	int			batch;

	esmm_threads_prepare();
	/*
	 * Decoded afresh rather than from the model cache: decoding is a few
	 * ms against scoring a table, and the cache is kept for small per-row
	 * workspaces (see model_cache.c).
	 */
	h = esmm_model_from_bytea(b, SCORE_BATCH, CurrentMemoryContext, false);
	m = h->model;
	batch = m->max_B;			/* fewer than SCORE_BATCH for a very wide model */
	esmm_check_scored_kind(m, mmoe, "esmm_predict_table", "mmoe_predict_table");
	key_type = key_column_type(source, key, &key_typmod);
	n_out = output_columns(m, cols, ESMM_MAX_LABELS);

	memset(&sb, 0, sizeof(sb));
	sb.ids = palloc(sizeof(int32_t) * Max(1, (size_t) batch * m->n_ids));
	sb.nums = palloc(sizeof(float) * Max(1, (size_t) batch * m->n_nums));
	sb.counts = palloc(sizeof(uint32_t) * Max(1, (size_t) batch * m->n_multi));
	sb.multi_off = palloc(sizeof(uint32_t) * ((size_t) (batch + 1) * Max(1, m->n_multi)));
	sb.out = palloc(sizeof(float) * (size_t) batch * n_out);
	sb.task_rows = palloc(sizeof(float) * (size_t) batch * n_out);
	sb.keys = palloc(sizeof(Datum) * batch);
	sb.key_nulls = palloc(sizeof(bool) * batch);
	sb.cxt = CurrentMemoryContext;
	sb.row_ids.mcxt = sb.cxt;
	memset(&enc, 0, sizeof(enc));
	batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "esmm predict_table batch",
									  ALLOCSET_DEFAULT_SIZES);

	SPI_connect();
	out_name = create_output(m, output, key_type, key_typmod, key, &out_relid);
	output_writer_open(&writer, out_relid);

	initStringInfo(&sql);
	if (writer.rel == NULL)
	{
		appendStringInfo(&sql, "INSERT INTO %s SELECT * FROM unnest($1", out_name);
		argtypes[0] = get_array_type(key_type);
		for (int i = 0; i < n_out; i++)
		{
			appendStringInfo(&sql, ", $%d", i + 2);
			argtypes[1 + i] = FLOAT4ARRAYOID;
		}
		appendStringInfoChar(&sql, ')');
		insert = SPI_prepare(sql.data, 1 + n_out, argtypes);
		if (insert == NULL)
			elog(ERROR, "could not prepare the insert into %s", out_name);
	}

	/*
	 * The key and the columns the model reads, found and type-checked by
	 * binding the encoder to the table's row type first, so that a missing
	 * or mistyped column gets the encoder's own error.
	 */
	{
		TupleDesc	rel_desc = lookup_rowtype_tupdesc_copy(get_rel_type_id(source), -1);

		esmm_encoder_bind_desc(&enc, &m->schema, rel_desc, CurrentMemoryContext);
		resetStringInfo(&sql);
		appendStringInfo(&sql, "SELECT s.%s", quote_identifier(key));
		for (uint32_t f = 0; f < m->schema.n_features; f++)
			appendStringInfo(&sql, ", s.%s",
							 quote_identifier(NameStr(TupleDescAttr(rel_desc, enc.attnum[f])->attname)));
		appendStringInfo(&sql, " FROM %s s", esmm_relation_sql_name(source));
	}
	memset(&receiver, 0, sizeof(receiver));
	receiver.pub.receiveSlot = score_receive_slot;
	receiver.pub.rStartup = score_receiver_startup;
	receiver.pub.rShutdown = score_receiver_shutdown;
	receiver.pub.rDestroy = score_receiver_destroy;
	receiver.pub.mydest = DestNone;
	receiver.m = m;
	receiver.enc = &enc;
	receiver.sb = &sb;
	receiver.writer = &writer;
	receiver.insert = insert;
	receiver.batch_cxt = batch_cxt;
	receiver.key_type = key_type;
	get_typlenbyval(key_type, &receiver.key_len, &receiver.key_byval);
	receiver.n_out = n_out;
	receiver.batch = batch;
	receiver.caller_context = error_context_stack;

	/*
	 * Prepared without CURSOR_OPT_PARALLEL_OK: the receiver writes, which a
	 * parallel plan's leader may not.
	 */
	source_query = SPI_prepare(sql.data, 0, NULL);
	if (source_query == NULL)
		elog(ERROR, "could not prepare the query of %s", esmm_relation_sql_name(source));
	memset(&options, 0, sizeof(options));
	options.read_only = true;
	options.dest = &receiver.pub;
	if (SPI_execute_plan_extended(source_query, &options) < 0)
		elog(ERROR, "could not read %s", esmm_relation_sql_name(source));
	output_writer_close(&writer);
	SPI_finish();
	esmm_handle_release(h);
	return receiver.written;
}

PG_FUNCTION_INFO_V1(esmm_predict_table);

/* esmm_predict_table(model, source, key_column, output_table) -> rows written */
Datum
esmm_predict_table(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(predict_table(fcinfo, false));
}

PG_FUNCTION_INFO_V1(mmoe_predict_table);

/* mmoe_predict_table(model, source, key_column, output_table) -> rows written */
Datum
mmoe_predict_table(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(predict_table(fcinfo, true));
}
