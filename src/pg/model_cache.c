/*
 * model_cache.c: the backend's cache of decoded models, the "decoder (with
 * a cache)" step of the scoring path.
 *
 * Decoding a model (CRC, copying and checking every parameter, allocating
 * the workspace) takes about 1.5 ms for the demo's 1.5 MB model, 10 times
 * what scoring one row by primary key costs.  Within a query, esmm_predict
 * and mmoe_predict keep their model in fn_extra; across queries they find
 * it here, so that a query scoring one row does not decode.
 *
 * An entry is found by the model's bytes, compared in full, never by a
 * TOAST pointer or a hash alone: a value id can be reused once the row is
 * gone, and a changed model must never be served stale.  Comparing 1.5 MB
 * takes about 0.1 ms.  The key also holds the workspace's batch and
 * esmm.max_memory, which decide the workspace's size.
 *
 * Entries are kept in least-recently-used order within esmm.model_cache
 * bytes.  A caller pins its entry until a memory context of its own is
 * reset or deleted (the end of its query, or an ERROR), and a pinned entry
 * is never evicted.  Several callers can share an entry because scoring a
 * row uses the workspace without calling back into PostgreSQL.
 *
 * esmm_predict_table does not use the cache.  Its workspace of 4,096 rows
 * is 27 MB for the demo model, and keeping it made the next call 15%
 * slower, not faster: glibc raises its mmap threshold when a large block is
 * freed, and without that free every batch's SPI and tuple memory was
 * mapped and faulted in afresh.  Its decode is 3% of scoring 40k rows.
 */
#include "postgres.h"

#include "lib/ilist.h"
#include "utils/memutils.h"

#include "esmm_pg.h"

typedef struct cache_entry
{
	dlist_node	node;			/* in lru, most recently used first */
	MemoryContext cxt;			/* everything of the entry, itself included */
	esmm_model_handle *h;
	char	   *bytes;			/* [len] the model's bytes, the key */
	Size		len;
	int			max_B;			/* the batch asked for, also the key */
	int			max_memory_kb;	/* esmm.max_memory at decoding, also the key */
	Size		size;			/* what the entry holds, for the budget */
	int			pins;
} cache_entry;

int			esmm_model_cache_kb;	/* GUC esmm.model_cache */

static MemoryContext cache_cxt;
static dlist_head lru = DLIST_STATIC_INIT(lru);
static Size cache_bytes;
static uint64 cache_hits;
static uint64 cache_misses;

static void
entry_unpin(void *arg)
{
	cache_entry *e = (cache_entry *) arg;

	Assert(e->pins > 0);
	e->pins--;
}

/* Pins e until memory context pin is reset or deleted. */
static void
entry_pin(cache_entry *e, MemoryContext pin)
{
	MemoryContextCallback *cb = MemoryContextAllocZero(pin, sizeof(*cb));

	cb->func = entry_unpin;
	cb->arg = e;
	MemoryContextRegisterResetCallback(pin, cb);
	e->pins++;
}

static void
entry_evict(cache_entry *e)
{
	dlist_delete(&e->node);
	cache_bytes -= e->size;
	/* the handle's callback frees the core model */
	MemoryContextDelete(e->cxt);
}

/* Evicts unpinned entries, oldest first, until need more bytes fit in
 * limit bytes. */
static void
cache_make_room(Size need, Size limit)
{
	dlist_node *cur = dlist_is_empty(&lru) ? NULL : dlist_tail_node(&lru);

	while (cur != NULL && cache_bytes + need > limit)
	{
		/* the node lives in the entry's memory: step before evicting */
		dlist_node *prev = dlist_has_prev(&lru, cur) ? dlist_prev_node(&lru, cur) : NULL;
		cache_entry *e = dlist_container(cache_entry, node, cur);

		if (e->pins == 0)
			entry_evict(e);
		cur = prev;
	}
}

static cache_entry *
cache_lookup(const char *bytes, Size len, int max_B)
{
	dlist_iter	it;

	dlist_foreach(it, &lru)
	{
		cache_entry *e = dlist_container(cache_entry, node, it.cur);

		if (e->len == len && e->max_B == max_B && e->max_memory_kb == esmm_max_memory_kb &&
			memcmp(e->bytes, bytes, len) == 0)
			return e;
	}
	return NULL;
}

esmm_model_handle *
esmm_model_cache_get(bytea *b, int max_B, MemoryContext pin)
{
	const char *bytes = VARDATA_ANY(b);
	Size		len = VARSIZE_ANY_EXHDR(b);
	cache_entry *e = cache_lookup(bytes, len, max_B);
	MemoryContext cxt;
	esmm_model_handle *h;
	Size		size;

	if (e != NULL)
	{
		cache_hits++;
		dlist_move_head(&lru, &e->node);
		entry_pin(e, pin);
		return e->h;
	}
	cache_misses++;
	/* decoded under the caller's context first: an ERROR frees it */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "esmm cached model", ALLOCSET_DEFAULT_SIZES);
	h = esmm_model_from_bytea(b, max_B, cxt, false);
	size = 2 * len + esmm_model_workspace_bytes(h->model, h->model->max_B);
	if (size > (Size) esmm_model_cache_kb * 1024)
	{
		/* larger than the whole cache: the caller's own */
		MemoryContextSetParent(cxt, pin);
		return h;
	}
	cache_make_room(size, (Size) esmm_model_cache_kb * 1024);
	if (cache_cxt == NULL)
		cache_cxt = AllocSetContextCreate(TopMemoryContext, "esmm model cache", ALLOCSET_SMALL_SIZES);
	e = MemoryContextAllocZero(cxt, sizeof(*e));
	e->cxt = cxt;
	e->h = h;
	e->bytes = MemoryContextAllocHuge(cxt, Max(len, 1));
	memcpy(e->bytes, bytes, len);
	e->len = len;
	e->max_B = max_B;
	e->max_memory_kb = esmm_max_memory_kb;
	e->size = size;
	MemoryContextSetParent(cxt, cache_cxt);
	dlist_push_head(&lru, &e->node);
	cache_bytes += size;
	entry_pin(e, pin);
	return h;
}

void
esmm_model_cache_stats(esmm_model_cache_info *info)
{
	dlist_iter	it;

	memset(info, 0, sizeof(*info));
	dlist_foreach(it, &lru)
	{
		cache_entry *e = dlist_container(cache_entry, node, it.cur);

		info->entries++;
		info->pinned += e->pins > 0;
	}
	info->bytes = (int64) cache_bytes;
	info->hits = (int64) cache_hits;
	info->misses = (int64) cache_misses;
}

void
esmm_model_cache_assign(int newval, void *extra)
{
	cache_make_room(0, (Size) newval * 1024);
}
