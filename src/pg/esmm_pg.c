/* esmm_pg.c: module init, GUCs, threads, and model bytea conversions. */
#include "postgres.h"

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <omp.h>
#include <cblas.h>

#include "common/jsonapi.h"
#include "access/detoast.h"
#include "access/parallel.h"
#include "catalog/pg_class.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/pg_crc32c.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "encoder.h"
#include "esmm_pg.h"
#include "model_format.h"

PG_MODULE_MAGIC;

int			esmm_threads = 1;
int			esmm_max_memory_kb = 1024 * 1024;
static char *esmm_blas_kernel = NULL;

/* The largest pool this backend created with signals blocked. */
static int	threads_prepared = 0;

void		_PG_init(void);

void
_PG_init(void)
{
	DefineCustomIntVariable("esmm.threads",
							"Threads used by one backend for training and batch scoring.",
							"The default is 1 so that many backends scoring at once do not "
							"oversubscribe the cores; raise it for a training session.",
							&esmm_threads, 1, 1, 256,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("esmm.max_memory",
							"Memory one training aggregate may use: its encoded rows plus the model's parameters, gradients, optimizer moments and a batch's workspace.",
							"Beyond it, training in mode auto switches to streaming (windows of rows trained as they arrive), "
							"and in mode memory stops with an error before allocating.",
							&esmm_max_memory_kb, 1024 * 1024, 64, INT_MAX,
							PGC_USERSET, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("esmm.model_cache",
							"Memory each backend may keep decoded models in between statements, for scoring.",
							"A model is found by its bytes, so a changed model is never served stale; "
							"the least recently used models are evicted first, and 0 turns the cache off.",
							&esmm_model_cache_kb, 32 * 1024, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_KB, NULL, esmm_model_cache_assign, NULL);
	/* OpenBLAS picks its kernels when it loads, from the CPU or from
	 * OPENBLAS_CORETYPE in the server's environment; reading the name
	 * starts no thread, so it is safe in the postmaster */
	DefineCustomStringVariable("esmm.blas_kernel",
							   "The OpenBLAS kernels this server multiplies with.",
							   "Chosen by OpenBLAS when the server starts, from the CPU or from "
							   "OPENBLAS_CORETYPE in the server's environment.",
							   &esmm_blas_kernel, openblas_get_corename(),
							   PGC_INTERNAL, GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							   NULL, NULL, NULL);
	MarkGUCPrefixReserved("esmm");
}

void
esmm_threads_prepare(void)
{
	int			n = esmm_threads;

	/*
	 * libgomp creates pool threads lazily, from the thread that opens a
	 * parallel region, and they inherit its signal mask.  Opening a region
	 * once with every signal blocked makes every pool thread ignore
	 * signals, so SIGINT, SIGTERM and the latch's SIGURG reach the main
	 * thread only.  Never in the postmaster: it would fork threads away.
	 */
	if (n > threads_prepared && IsUnderPostmaster)
	{
		sigset_t	all,
					old;

		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
#pragma omp parallel num_threads(n)
		{
			(void) omp_get_thread_num();
		}
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		threads_prepared = n;
	}
	omp_set_num_threads(n);
	openblas_set_num_threads(n);
}

void
esmm_check_worker_arg(Datum raw, const char *fn, const char *what)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(raw);

	if (IsParallelWorker() && VARATT_IS_EXTERNAL_ONDISK(v))
	{
		struct varatt_external toast;

		VARATT_EXTERNAL_GET_POINTER(toast, v);
		if (get_rel_persistence(toast.va_toastrelid) == RELPERSISTENCE_TEMP)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("%s in a parallel worker cannot read its %s from a temporary table", fn, what),
					 errhint("Keep the %s in a regular table, or SET max_parallel_workers_per_gather = 0.", what)));
	}
}

void
esmm_report_status(const esmm_status *st)
{
	switch (st->code)
	{
		case ESMM_ERR_FORMAT:
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("invalid esmm model: %s", st->msg)));
			break;
		case ESMM_ERR_NOMEM:
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("%s", st->msg)));
			break;
		case ESMM_ERR_NUMERIC:
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("%s", st->msg),
					 errhint("Lower the learning rate, or check the features for extreme values.")));
			break;
		case ESMM_ERR_CANCELED:
			CHECK_FOR_INTERRUPTS();
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("%s", st->msg)));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("%s", st->msg)));
	}
	pg_unreachable();
}

static void
handle_free(void *arg)
{
	esmm_model_handle *h = (esmm_model_handle *) arg;

	esmm_model_free(h->model);
	h->model = NULL;
}

esmm_model_handle *
esmm_handle_new(esmm_model *m, MemoryContext cxt)
{
	esmm_model_handle *h = MemoryContextAllocZero(cxt, sizeof(*h));

	h->model = m;
	h->cb.func = handle_free;
	h->cb.arg = h;
	MemoryContextRegisterResetCallback(cxt, &h->cb);
	return h;
}

void
esmm_handle_release(esmm_model_handle *h)
{
	esmm_model_free(h->model);
	h->model = NULL;
}

uint32_t
esmm_pg_crc32c(const void *data, size_t len)
{
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, data, len);
	FIN_CRC32C(crc);
	return crc;
}

/* The config section is opaque to the core; esmm_model_info embeds it in
 * jsonb, so a corrupted one must fail here, as an invalid model. */
static void
esmm_config_check_json(const esmm_model *m)
{
	JsonLexContext *lex;

	if (pg_verify_mbstr(GetDatabaseEncoding(), m->config_json, (int) m->config_len, true) &&
		(lex = makeJsonLexContextCstringLen(m->config_json, (int) m->config_len,
											GetDatabaseEncoding(), false)) != NULL &&
		pg_parse_json(lex, &nullSemAction) == JSON_SUCCESS)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("invalid esmm model: the config section is not valid JSON")));
}

/* Metric names end up as jsonb keys in esmm_model_info: they must be
 * valid in the database encoding. */
static void
esmm_report_check(const esmm_report *r)
{
	for (uint32_t e = 0; e < r->n_epochs; e++)
		for (uint32_t k = 0; k < r->epochs[e].n_metrics; k++)
		{
			const char *name = r->epochs[e].metric_names[k];

			if (!pg_verify_mbstr(GetDatabaseEncoding(), name, (int) strlen(name), true))
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("invalid esmm model: a metric name is not valid in the database encoding")));
		}
}

/*
 * The largest batch, up to max_B, whose workspace fits esmm.max_memory.
 * A decoded model's widths come from the bytea: a crafted model of a few
 * MB can ask for 65536-wide layers, which at 4,096 rows would be tens of
 * GB.  Scoring smaller batches gives the same scores.
 */
static int
workspace_batch(const esmm_model *m, int max_B)
{
	size_t		budget = (size_t) esmm_max_memory_kb * 1024;
	size_t		per_row = esmm_model_workspace_bytes(m, 1);
	int			B = max_B;

	if (per_row > budget)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("scoring this model needs %zu kB per row, more than esmm.max_memory (%d kB) allows",
						(per_row + 1023) / 1024, esmm_max_memory_kb),
				 errhint("Raise esmm.max_memory.")));
	while (B > 1 && esmm_model_workspace_bytes(m, B) > budget)
		B /= 2;
	return B;
}

esmm_model_handle *
esmm_model_from_bytea(bytea *b, int max_B, MemoryContext cxt, bool with_optimizer)
{
	esmm_status st;
	esmm_model *m;
	esmm_model_handle *h;

	esmm_status_clear(&st);
	/* the handle exists before the model, so no ERROR can orphan it */
	h = esmm_handle_new(NULL, cxt);
	if (esmm_model_decode(&h->model, (const uint8_t *) VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b),
						  esmm_pg_crc32c, with_optimizer, &st) != ESMM_OK)
		esmm_report_status(&st);
	m = h->model;
	esmm_schema_check(&m->schema);
	esmm_report_check(&m->report);
	esmm_config_check_json(m);
	if (esmm_model_workspace(m, workspace_batch(m, max_B), &st) != ESMM_OK)
		esmm_report_status(&st);
	return h;
}

void
esmm_check_scored_kind(const esmm_model *m, bool mmoe, const char *esmm_fn, const char *mmoe_fn)
{
	if ((m->kind == ESMM_KIND_MMOE) != mmoe)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s cannot score %s model", mmoe ? mmoe_fn : esmm_fn,
						m->kind == ESMM_KIND_MMOE ? "an mmoe" : "an esmm"),
				 errhint("Score an esmm model with %s and an mmoe model with %s.", esmm_fn, mmoe_fn)));
}

bytea *
esmm_model_to_bytea(const esmm_model *m, bool with_optimizer)
{
	size_t		len = esmm_model_encoded_size(m, with_optimizer);
	esmm_status st;
	bytea	   *out;

	if (len > MaxAllocSize - VARHDRSZ)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("model of %zu bytes exceeds the 1 GB bytea limit", len),
				 errhint("Use fewer hash buckets or narrower embeddings.")));
	out = palloc(len + VARHDRSZ);
	SET_VARSIZE(out, len + VARHDRSZ);
	esmm_status_clear(&st);
	if (esmm_model_encode(m, with_optimizer, (uint8_t *) VARDATA(out), len,
						  esmm_pg_crc32c, &st) != ESMM_OK)
		esmm_report_status(&st);
	return out;
}

void
esmm_format_metrics(StringInfo out, const esmm_history_epoch *h)
{
	resetStringInfo(out);
	for (uint32_t k = 0; k < h->n_metrics; k++)
		appendStringInfo(out, ", %s %.6f", h->metric_names[k], h->metric_values[k]);
}

void
esmm_notice_early_stopping(uint32 epoch, const char *monitor, float min_delta,
						   uint32 patience, uint32 best_epoch)
{
	ereport(NOTICE,
			(errmsg("early stopping after epoch %u: %s has not improved by more than %g for %u epochs; keeping the weights of epoch %u",
					epoch, monitor, min_delta, patience, best_epoch)));
}

char *
esmm_relation_sql_name(Oid relid)
{
	char	   *name = get_rel_name(relid);

	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), name);
}
