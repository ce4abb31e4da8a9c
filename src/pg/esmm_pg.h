/*
 * esmm_pg.h: glue shared by the SQL functions: GUCs, threads, and the
 * model bytea <-> core model conversions.
 */
#ifndef ESMM_PG_H
#define ESMM_PG_H

#include "postgres.h"

#include "lib/stringinfo.h"

#include "esmm_model.h"

extern int	esmm_threads;		/* GUC esmm.threads */
extern int	esmm_max_memory_kb; /* GUC esmm.max_memory */
extern int	esmm_model_cache_kb;	/* GUC esmm.model_cache */

/*
 * Sets the OpenMP and OpenBLAS thread count to esmm.threads, creating any
 * new pool threads with every signal blocked so that signals stay with the
 * backend's main thread.  Call on the main thread before any compute.
 */
void		esmm_threads_prepare(void);

/*
 * Call before detoasting argument raw (a model bytea or a config jsonb)
 * of function fn.  In a parallel worker, a value stored out of line in a
 * temporary table is an ERROR that says so: a subquery's result reaches
 * the workers as a pointer into the leader's temporary table, which only
 * the leader can read.
 */
void		esmm_check_worker_arg(Datum raw, const char *fn, const char *what);

/* Raises ERROR for a failed core status (invalid model, out of memory,
 * divergence, ...), with the core's message. */
void		esmm_report_status(const esmm_status *st) pg_attribute_noreturn();

/* A core model freed when memory context cxt is reset or deleted, so that
 * an ERROR or a cancel never leaks it. */
typedef struct esmm_model_handle
{
	esmm_model *model;
	MemoryContextCallback cb;
} esmm_model_handle;

/* Ties m to cxt; the handle lives in cxt. */
esmm_model_handle *esmm_handle_new(esmm_model *m, MemoryContext cxt);

/* Frees the model now; the callback then has nothing to do. */
void		esmm_handle_release(esmm_model_handle *h);

/*
 * Decodes a model bytea (ERROR "invalid esmm model: <reason>" on any
 * defect) into a model owned by cxt, with a workspace of up to max_B rows
 * (fewer when max_B rows would exceed esmm.max_memory; model->max_B says
 * how many), and its optimizer state when with_optimizer and the bytea
 * holds one.
 */
esmm_model_handle *esmm_model_from_bytea(bytea *b, int max_B, MemoryContext cxt,
										 bool with_optimizer);

/*
 * The decoded model for b's bytes, with a workspace of up to max_B rows as
 * esmm_model_from_bytea gives, from the backend's model cache (decoded and
 * added on a miss; see model_cache.c).  The model stays valid, and is not
 * evicted, until memory context pin is reset or deleted.  It is shared:
 * use it for scoring only, and never call back into PostgreSQL between
 * filling its workspace and reading the scores.
 */
esmm_model_handle *esmm_model_cache_get(bytea *b, int max_B, MemoryContext pin);

/* The cache's contents and counters since the backend started. */
typedef struct esmm_model_cache_info
{
	int64		entries;
	int64		pinned;			/* entries in use by a running statement */
	int64		bytes;			/* counted against esmm.model_cache */
	int64		hits;
	int64		misses;
} esmm_model_cache_info;

void		esmm_model_cache_stats(esmm_model_cache_info *info);

/* The assign hook of esmm.model_cache: evicts down to the new size. */
void		esmm_model_cache_assign(int newval, void *extra);

/* ERROR unless m is an MMoE model when mmoe, an ESMM one otherwise: the
 * scorers esmm_fn and mmoe_fn each score one kind. */
void		esmm_check_scored_kind(const esmm_model *m, bool mmoe, const char *esmm_fn,
								   const char *mmoe_fn);

/* Encodes m into a new bytea in the current memory context. */
bytea	   *esmm_model_to_bytea(const esmm_model *m, bool with_optimizer);

/* ", name value" for each metric of an epoch's history entry, into out
 * (reset first): the epoch NOTICEs of esmm_train and esmm_fit. */
void		esmm_format_metrics(StringInfo out, const esmm_history_epoch *h);

/* The early-stopping NOTICE of esmm_train and esmm_fit. */
void		esmm_notice_early_stopping(uint32 epoch, const char *monitor, float min_delta,
									   uint32 patience, uint32 best_epoch);

/* A relation's schema-qualified, quoted name, for a query. */
char	   *esmm_relation_sql_name(Oid relid);

/* CRC-32C with PostgreSQL's pg_crc32c, the core's esmm_crc_fn. */
uint32_t	esmm_pg_crc32c(const void *data, size_t len);

#endif
