/*
 * esmm_model.c: the ESMM model: layout, initialization, forward, backward,
 * optimizer step, scoring and the epoch loop.
 *
 * Backward mirrors forward in reverse: esmm_tower_forward runs
 * dense -> batch norm -> activation -> dropout per layer, and
 * esmm_tower_backward undoes them in the opposite order.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "esmm_model.h"
#include "layers.h"
#include "metrics.h"
#include "optim.h"
#include "stack.h"
#include "mmoe_model.h"
#include "model_internal.h"

#define MAX_UNITS 65536
#define MAX_DIM 1024
#define MAX_BUCKETS (1u << 30)

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int
feature_has_table(const esmm_feature *f)
{
	return f->kind == ESMM_FEAT_CATEGORICAL || f->kind == ESMM_FEAT_MULTI;
}

/* Tower t as a stack of layers. */
static esmm_stack
tower_stack(const esmm_model *m, int t)
{
	/* the stack writes activations, never the model's layout */
	esmm_stack	st = {&m->arch.tower[t], (esmm_layer_ref *) m->layer[t],
	(esmm_layer_acts *) m->acts[t], 0, m->wt, m->n_embedding};

	return st;
}

/* --------------------------------------------------------------- schema */

void
esmm_schema_slots(const esmm_schema *schema, uint32_t *n_ids,
				  uint32_t *n_nums, uint32_t *n_multi,
				  uint32_t slot[ESMM_MAX_FEATURES])
{
	uint32_t	counts[4] = {0, 0, 0, 0};

	for (uint32_t f = 0; f < schema->n_features && f < ESMM_MAX_FEATURES; f++)
	{
		uint8_t		k = schema->features[f].kind;

		slot[f] = k < 4 ? counts[k]++ : 0;
	}
	*n_ids = counts[ESMM_FEAT_CATEGORICAL];
	*n_nums = counts[ESMM_FEAT_NUMERIC];
	*n_multi = counts[ESMM_FEAT_MULTI];
}

float
esmm_feature_normalize(const esmm_feature *f, float raw)
{
	float		v = raw;

	if (isnan(raw))
		return 0.0f;
	if (f->norm == ESMM_NORM_LOG)
		v = copysignf(log1pf(fabsf(v)), v);
	if (f->norm != ESMM_NORM_NONE)
		v = (v - f->mean) / f->std;
	return v;
}

/* Feature f's transformed raw value v, before standardization. */
static double
stats_value(const esmm_feature *f, double v)
{
	return f->norm == ESMM_NORM_LOG ? copysign(log1p(fabs(v)), v) : v;
}

void
esmm_schema_fit_stats(esmm_schema *schema, const esmm_dataset *ds)
{
	uint32_t	n_ids,
				n_nums,
				n_multi,
				slot[ESMM_MAX_FEATURES],
				numeric[ESMM_MAX_FEATURES],
				k = 0;
	double		sum[ESMM_MAX_FEATURES] = {0},
				ss[ESMM_MAX_FEATURES] = {0},
				mean[ESMM_MAX_FEATURES];
	size_t		n[ESMM_MAX_FEATURES] = {0};

	esmm_schema_slots(schema, &n_ids, &n_nums, &n_multi, slot);
	for (uint32_t f = 0; f < schema->n_features; f++)
		if (schema->features[f].kind == ESMM_FEAT_NUMERIC)
			numeric[k++] = f;
	if (k == 0)
		return;

	/*
	 * Two passes: one pass (sum of squares minus squared mean) cancels
	 * catastrophically on a near-constant column far from zero.  Each
	 * pass reads a row's numbers once for every feature, in the rows'
	 * logical order (a feature's sums then do not depend on how the rows
	 * are stored), and asks for a row ahead since that order is a
	 * permutation of the stored one.
	 */
	for (int pass = 0; pass < 2; pass++)
	{
		for (size_t r = 0; r < ds->n_rows; r++)
		{
			const float *v = esmm_dataset_nums(ds, r);

			if (r + ESMM_PREFETCH_AHEAD < ds->n_rows)
				ESMM_PREFETCH(esmm_dataset_nums(ds, r + ESMM_PREFETCH_AHEAD));
			for (uint32_t i = 0; i < k; i++)
			{
				float		raw = v[slot[numeric[i]]];
				double		x;

				if (isnan(raw))
					continue;
				x = stats_value(&schema->features[numeric[i]], raw);
				if (pass == 0)
				{
					sum[i] += x;
					n[i]++;
				}
				else
					ss[i] += (x - mean[i]) * (x - mean[i]);
			}
		}
		for (uint32_t i = 0; pass == 0 && i < k; i++)
			mean[i] = n[i] > 0 ? sum[i] / n[i] : 0.0;
	}
	for (uint32_t i = 0; i < k; i++)
	{
		esmm_feature *feat = &schema->features[numeric[i]];
		double		sd = n[i] > 0 ? sqrt(ss[i] / n[i]) : 0.0;

		feat->mean = (float) mean[i];
		/* a constant column (to float precision) must not divide by ~0 */
		feat->std = sd > 1e-6 * fmax(1.0, fabs(mean[i])) ? (float) sd : 1.0f;
	}
}

/* --------------------------------------------------------------- layout */

static esmm_code
validate_schema(const esmm_schema *s, esmm_status *st)
{
	if (s->n_features == 0 || s->n_features > ESMM_MAX_FEATURES)
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "feature count %u is not in 1..%d",
						 s->n_features, ESMM_MAX_FEATURES);
	if (s->n_labels > ESMM_MAX_LABELS)
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "label count %u exceeds %d",
						 s->n_labels, ESMM_MAX_LABELS);
	for (uint32_t i = 0; i < s->n_labels; i++)
		if (memchr(s->labels[i], '\0', ESMM_NAME_LEN) == NULL)
			return esmm_fail(st, ESMM_ERR_ARGUMENT, "label name %u is not terminated", i);
	for (uint32_t f = 0; f < s->n_features; f++)
	{
		const esmm_feature *ft = &s->features[f];

		if (memchr(ft->name, '\0', ESMM_NAME_LEN) == NULL || ft->name[0] == '\0')
			return esmm_fail(st, ESMM_ERR_ARGUMENT, "feature %u has no valid name", f);
		if (ft->kind < ESMM_FEAT_CATEGORICAL || ft->kind > ESMM_FEAT_MULTI)
			return esmm_fail(st, ESMM_ERR_ARGUMENT, "feature \"%s\" has unknown kind %u",
							 ft->name, ft->kind);
		if (ft->norm > ESMM_NORM_LOG)
			return esmm_fail(st, ESMM_ERR_ARGUMENT, "feature \"%s\" has unknown normalization %u",
							 ft->name, ft->norm);
		if (feature_has_table(ft))
		{
			if (ft->n_buckets < 1 || ft->n_buckets > MAX_BUCKETS)
				return esmm_fail(st, ESMM_ERR_ARGUMENT, "feature \"%s\" has %u buckets, not in 1..%u",
								 ft->name, ft->n_buckets, MAX_BUCKETS);
			if (ft->dim < 1 || ft->dim > MAX_DIM)
				return esmm_fail(st, ESMM_ERR_ARGUMENT, "feature \"%s\" has embedding width %u, not in 1..%d",
								 ft->name, ft->dim, MAX_DIM);
		}
		else if (!isfinite(ft->mean) || !isfinite(ft->std) || ft->std <= 0.0f)
			return esmm_fail(st, ESMM_ERR_ARGUMENT, "feature \"%s\" has invalid statistics",
							 ft->name);
	}
	return ESMM_OK;
}

esmm_code
model_validate_tower(const esmm_tower_spec *t, const esmm_schema *s,
					 const char *name, int flags, esmm_status *st)
{
	if (t->n_layers < 1 || t->n_layers > ESMM_MAX_LAYERS)
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "%s tower has %u layers, not 1..%d",
						 name, t->n_layers, ESMM_MAX_LAYERS);
	if ((flags & MODEL_TOWER_INPUTS) && (t->n_inputs < 1 || t->n_inputs > s->n_features))
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "%s tower has %u inputs, not 1..%u",
						 name, t->n_inputs, s->n_features);
	for (uint32_t i = 0; (flags & MODEL_TOWER_INPUTS) && i < t->n_inputs; i++)
		if (t->inputs[i] >= s->n_features)
			return esmm_fail(st, ESMM_ERR_ARGUMENT, "%s tower input %u is feature %u of %u",
							 name, i, t->inputs[i], s->n_features);
	for (uint32_t l = 0; l < t->n_layers; l++)
	{
		const esmm_layer_spec *ly = &t->layers[l];

		if (ly->units < 1 || ly->units > MAX_UNITS)
			return esmm_fail(st, ESMM_ERR_ARGUMENT, "%s tower layer %u has %u units",
							 name, l, ly->units);
		if (ly->act >= ESMM_ACT_COUNT)
			return esmm_fail(st, ESMM_ERR_ARGUMENT, "%s tower layer %u has unknown activation %u",
							 name, l, ly->act);
		if (!(ly->dropout >= 0.0f && ly->dropout < 1.0f))
			return esmm_fail(st, ESMM_ERR_ARGUMENT, "%s tower layer %u has dropout %g",
							 name, l, ly->dropout);
	}
	if ((flags & MODEL_TOWER_UNIT_OUTPUT) && t->layers[t->n_layers - 1].units != 1)
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "%s tower must end in a layer of width 1", name);
	if (!isfinite(t->l1) || !isfinite(t->l2) || t->l1 < 0.0f || t->l2 < 0.0f)
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "%s tower has invalid regularization", name);
	return ESMM_OK;
}

/* Whether feature f's own table is read by some input of the model. */
static int
feature_table_used(const esmm_model *m, uint32_t f)
{
	if (m->kind == ESMM_KIND_MMOE)
		return mmoe_feature_uses_table(m, f);
	for (int t = 0; t < 2; t++)
		for (uint32_t i = 0; m->has_tower[t] && i < m->arch.tower[t].n_inputs; i++)
			if (m->arch.tower[t].inputs[i] == f)
				return 1;
	return 0;
}

uint16_t
model_add_table(esmm_model *m, uint32_t f, esmm_table_role role, uint32_t rows,
				uint32_t dim, float l1, float l2, size_t *cursor)
{
	esmm_table *t;
	size_t		n,
				base = 0;

	if (m->n_tables >= ESMM_MAX_TABLES)
		return ESMM_NO_TABLE;
	if (m->n_tables > 0)
		base = m->table[m->n_tables - 1].row_base + m->table[m->n_tables - 1].rows;
	t = &m->table[m->n_tables];
	t->off = *cursor;
	if (!esmm_size_mul(rows, dim, &n) || !esmm_size_add(*cursor, n, cursor))
		return ESMM_NO_TABLE;
	t->row_base = base;
	t->rows = rows;
	t->dim = dim;
	t->feature = (uint16_t) f;
	t->role = (uint8_t) role;
	t->active = 1;
	t->l1 = l1;
	t->l2 = l2;
	m->n_rows_total = base + rows;
	return (uint16_t) m->n_tables++;
}

static esmm_code
compute_layout(esmm_model *m, esmm_status *st)
{
	const esmm_schema *s = &m->schema;
	size_t		cur = 0,
				scur = 0;

	esmm_schema_slots(s, &m->n_ids, &m->n_nums, &m->n_multi, m->slot);
	m->n_tables = 0;
	m->n_rows_total = 0;
	for (uint32_t f = 0; f < s->n_features; f++)
	{
		const esmm_feature *ft = &s->features[f];
		int			used = feature_table_used(m, f);

		m->emb_off[f] = ESMM_NO_OFFSET;
		m->feat_table[f] = ESMM_NO_TABLE;
		/* ESMM keeps a table for every categorical feature, read or not */
		if (!feature_has_table(ft) || (m->kind == ESMM_KIND_MMOE && !used))
			continue;
		m->feat_table[f] = model_add_table(m, f, ESMM_TABLE_MAIN, ft->n_buckets + 1, ft->dim,
										   0.0f, m->kind == ESMM_KIND_MMOE ?
										   m->mmoe.l2_embedding : m->arch.l2_embedding,
										   &cur);
		if (m->feat_table[f] == ESMM_NO_TABLE)
			return esmm_fail(st, ESMM_ERR_NOMEM, "embedding tables overflow size_t");
		m->table[m->feat_table[f]].active = (uint8_t) used;
		m->emb_off[f] = m->table[m->feat_table[f]].off;
	}
	if (m->kind == ESMM_KIND_MMOE && !mmoe_layout_tables(m, &cur))
		return esmm_fail(st, ESMM_ERR_NOMEM, "wide tables overflow size_t");
	m->n_embedding = cur;

	if (m->kind == ESMM_KIND_MMOE)
	{
		if (!mmoe_layout_dense(m, &cur, &scur))
			return esmm_fail(st, ESMM_ERR_NOMEM, "mmoe parameters overflow size_t");
	}
	for (int t = 0; t < 2; t++)
	{
		const esmm_tower_spec *tw = &m->arch.tower[t];
		uint32_t	in = 0;

		if (!m->has_tower[t])
			continue;
		for (uint32_t i = 0; i < tw->n_inputs; i++)
			in += esmm_feature_width(&s->features[tw->inputs[i]]);
		m->tower_in[t] = in;
		{
			esmm_stack	stack = tower_stack(m, t);

			if (!esmm_stack_layout(&stack, in, &cur, &scur))
				return esmm_fail(st, ESMM_ERR_NOMEM, "tower parameters overflow size_t");
		}
	}
	/* the towers read one input buffer when they read the same features */
	m->shared_input = m->kind != ESMM_KIND_MMOE && m->has_tower[0] && m->has_tower[1] &&
		m->arch.tower[0].n_inputs == m->arch.tower[1].n_inputs &&
		memcmp(m->arch.tower[0].inputs, m->arch.tower[1].inputs,
			   m->arch.tower[0].n_inputs * sizeof(m->arch.tower[0].inputs[0])) == 0;
	m->n_params = cur;
	m->n_state = scur;
	return ESMM_OK;
}


float *
model_alloc_floats(size_t n)
{
	size_t		bytes;

	if (!esmm_size_mul(n > 0 ? n : 1, sizeof(float), &bytes))
		return NULL;
	return calloc(1, bytes);
}

/* Models allocated and not yet freed in this process (esmm_model_live). */
static long live_models = 0;

long
esmm_model_live(void)
{
	return live_models;
}

/* Validates and lays out a model without allocating its buffers: an ESMM
 * kind from arch, or ESMM_KIND_MMOE from mmoe. */
static esmm_code
model_new_layout(esmm_model **out, const esmm_schema *schema,
				 const esmm_arch *arch, const mmoe_arch *mmoe,
				 esmm_model_kind kind, esmm_status *st)
{
	esmm_model *m;
	esmm_code	rc;

	*out = NULL;
	if (kind != ESMM_KIND_ESMM && kind != ESMM_KIND_ESMM_CTR && kind != ESMM_KIND_ESMM_CVR &&
		kind != ESMM_KIND_MMOE)
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "model kind %d is not a known kind", (int) kind);
	if ((kind == ESMM_KIND_MMOE) != (mmoe != NULL))
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "model kind %d needs %s architecture", (int) kind,
						 kind == ESMM_KIND_MMOE ? "an mmoe" : "an esmm");
	if ((rc = validate_schema(schema, st)) != ESMM_OK)
		return rc;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return esmm_fail(st, ESMM_ERR_NOMEM, "out of memory for the model");
	live_models++;
	m->kind = kind;
	m->schema = *schema;
	if (kind == ESMM_KIND_MMOE)
	{
		m->mmoe = *mmoe;
		if ((rc = mmoe_validate(m, st)) != ESMM_OK)
			goto fail;
	}
	else
	{
		m->arch = *arch;
		m->has_tower[ESMM_TOWER_CTR] = kind != ESMM_KIND_ESMM_CVR;
		m->has_tower[ESMM_TOWER_CVR] = kind != ESMM_KIND_ESMM_CTR;
		for (int t = 0; t < 2; t++)
			if (m->has_tower[t] &&
				(rc = model_validate_tower(&arch->tower[t], schema, t == 0 ? "ctr" : "cvr",
										  MODEL_TOWER_INPUTS | MODEL_TOWER_UNIT_OUTPUT,
										  st)) != ESMM_OK)
				goto fail;
		if (arch->loss > ESMM_LOSS_MSE || !(arch->loss_weights[0] >= 0.0f) ||
			!(arch->loss_weights[1] >= 0.0f) || !(arch->l2_embedding >= 0.0f))
		{
			rc = esmm_fail(st, ESMM_ERR_ARGUMENT, "invalid loss settings");
			goto fail;
		}
	}
	if ((rc = compute_layout(m, st)) != ESMM_OK)
		goto fail;
	*out = m;
	return ESMM_OK;
fail:
	esmm_model_free(m);
	return rc;
}

/* Allocates the params and state of a laid-out model. */
static esmm_code
model_allocate(esmm_model *m, esmm_model **out, esmm_status *st)
{
	m->params = model_alloc_floats(m->n_params);
	m->state = model_alloc_floats(m->n_state);
	if (m->params == NULL || m->state == NULL)
	{
		esmm_code	rc = esmm_fail(st, ESMM_ERR_NOMEM, "out of memory for %zu parameters",
								   m->n_params);

		esmm_model_free(m);
		return rc;
	}
	*out = m;
	return ESMM_OK;
}

/* The plans' count: the layout's parameters and, when asked, its bytes. */
static esmm_code
plan_layout(esmm_model *m, int batch_size, unsigned what, size_t *n_params,
			size_t *bytes)
{
	*n_params = m->n_params;
	if (bytes != NULL)
		*bytes = esmm_model_memory(m, batch_size, what);
	esmm_model_free(m);
	return ESMM_OK;
}

esmm_code
esmm_model_plan(const esmm_schema *schema, const esmm_arch *arch,
				esmm_model_kind kind, int batch_size, unsigned what,
				size_t *n_params, size_t *bytes, esmm_status *st)
{
	esmm_model *m;
	esmm_code	rc;

	if (kind == ESMM_KIND_MMOE)
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "an mmoe model is planned by mmoe_model_plan");
	if ((rc = model_new_layout(&m, schema, arch, NULL, kind, st)) != ESMM_OK)
		return rc;
	return plan_layout(m, batch_size, what, n_params, bytes);
}

esmm_code
esmm_model_create(esmm_model **out, const esmm_schema *schema,
				  const esmm_arch *arch, esmm_model_kind kind, esmm_status *st)
{
	esmm_model *m;
	esmm_code	rc;

	*out = NULL;
	if (kind == ESMM_KIND_MMOE)
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "an mmoe model is created by mmoe_model_create");
	if ((rc = model_new_layout(&m, schema, arch, NULL, kind, st)) != ESMM_OK)
		return rc;
	return model_allocate(m, out, st);
}

esmm_code
mmoe_model_plan(const esmm_schema *schema, const mmoe_arch *a, int batch_size,
				unsigned what, size_t *n_params, size_t *bytes, esmm_status *st)
{
	esmm_model *m;
	esmm_code	rc = model_new_layout(&m, schema, NULL, a, ESMM_KIND_MMOE, st);

	if (rc != ESMM_OK)
		return rc;
	return plan_layout(m, batch_size, what, n_params, bytes);
}

esmm_code
mmoe_model_create(esmm_model **out, const esmm_schema *schema,
				  const mmoe_arch *a, esmm_status *st)
{
	esmm_model *m;
	esmm_code	rc;

	*out = NULL;
	if ((rc = model_new_layout(&m, schema, NULL, a, ESMM_KIND_MMOE, st)) != ESMM_OK)
		return rc;
	return model_allocate(m, out, st);
}

static void
free_workspace(esmm_model *m)
{
	mmoe_free_workspace(m);
	free(m->work);
	free(m->col_ids);
	free(m->batch_ids);
	free(m->batch_multi_off);
	free(m->batch_multi_ids);
	m->work = NULL;
	m->col_ids = NULL;
	m->batch_ids = NULL;
	m->batch_multi_off = NULL;
	m->batch_multi_ids = NULL;
	m->batch_multi_cap = 0;
	m->max_B = 0;
}

void
esmm_model_free(esmm_model *m)
{
	if (m == NULL)
		return;
	live_models--;
	free_workspace(m);
	free(m->params);
	free(m->state);
	free(m->grads);
	free(m->m1);
	free(m->m2);
	free(m->stamp);
	free(m->touched_table);
	free(m->touched_row);
	free(m->perm);
	free(m->eval_mem);
	free(m->best_params);
	free(m->best_state);
	free(m->block_grads);
	free(m->wt);
	free(m->config_json);
	free(m->report.epochs);
	mmoe_free_parts(m);
	free(m);
}

int
esmm_model_variances_valid(const esmm_model *m)
{
	if (m->kind == ESMM_KIND_MMOE)
		return mmoe_variances_valid(m);
	for (int t = 0; t < 2; t++)
		if (m->has_tower[t])
		{
			esmm_stack	stack = tower_stack(m, t);

			if (!esmm_stack_variances_valid(&stack, m->state))
				return 0;
		}
	return 1;
}

esmm_code
esmm_model_set_config(esmm_model *m, const char *json, size_t len,
					  esmm_status *st)
{
	char	   *copy = malloc(len + 1);

	if (copy == NULL)
		return esmm_fail(st, ESMM_ERR_NOMEM, "out of memory for the config");
	memcpy(copy, json, len);
	copy[len] = '\0';
	free(m->config_json);
	m->config_json = copy;
	m->config_len = len;
	return ESMM_OK;
}

/* ---------------------------------------------------------------- export */

/* Copies one layer's tensors (those present) from src to dst. */
static void
copy_layer(esmm_model *dst, const esmm_layer_ref *d, const esmm_model *src,
		   const esmm_layer_ref *r)
{
	memcpy(dst->params + d->W, src->params + r->W, (size_t) r->in * r->out * sizeof(float));
	if (r->b != ESMM_NO_OFFSET)
		memcpy(dst->params + d->b, src->params + r->b, r->out * sizeof(float));
	if (r->gamma != ESMM_NO_OFFSET)
	{
		memcpy(dst->params + d->gamma, src->params + r->gamma, r->out * sizeof(float));
		memcpy(dst->params + d->beta, src->params + r->beta, r->out * sizeof(float));
		memcpy(dst->state + d->run_mean, src->state + r->run_mean, r->out * sizeof(float));
		memcpy(dst->state + d->run_var, src->state + r->run_var, r->out * sizeof(float));
	}
}

esmm_code
esmm_model_export(esmm_model **out, const esmm_model *m, esmm_model_kind kind,
				  esmm_status *st)
{
	const int	t = kind == ESMM_KIND_ESMM_CTR ? ESMM_TOWER_CTR : ESMM_TOWER_CVR;
	const esmm_tower_spec *tw = &m->arch.tower[t];
	esmm_schema *schema;
	esmm_arch	arch;
	esmm_model *sub = NULL;
	int			map[ESMM_MAX_FEATURES];	/* feature of m -> feature of sub */
	esmm_code	rc;

	*out = NULL;
	if (m->kind != ESMM_KIND_ESMM)
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "only a full ESMM model has sub-models");
	if (kind != ESMM_KIND_ESMM_CTR && kind != ESMM_KIND_ESMM_CVR)
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "model kind %d is not a sub-model kind", (int) kind);
	schema = malloc(sizeof(*schema));
	if (schema == NULL)
		return esmm_fail(st, ESMM_ERR_NOMEM, "out of memory for the schema");

	/* the tower's features, in the order of the full schema */
	*schema = m->schema;
	schema->n_features = 0;
	for (uint32_t f = 0; f < m->schema.n_features; f++)
	{
		map[f] = -1;
		for (uint32_t i = 0; i < tw->n_inputs; i++)
			if (tw->inputs[i] == f)
			{
				map[f] = (int) schema->n_features;
				schema->features[schema->n_features++] = m->schema.features[f];
				break;
			}
	}
	memset(&arch, 0, sizeof(arch));
	arch.tower[t] = *tw;
	for (uint32_t i = 0; i < tw->n_inputs; i++)
		arch.tower[t].inputs[i] = (uint16_t) map[tw->inputs[i]];
	arch.loss_weights[0] = m->arch.loss_weights[0];
	arch.loss_weights[1] = m->arch.loss_weights[1];
	arch.l2_embedding = m->arch.l2_embedding;
	arch.label_is_ctcvr = m->arch.label_is_ctcvr;
	arch.loss = m->arch.loss;

	rc = esmm_model_create(&sub, schema, &arch, kind, st);
	free(schema);
	if (rc != ESMM_OK)
		return rc;
	for (uint32_t f = 0; f < m->schema.n_features; f++)
		if (map[f] >= 0 && m->emb_off[f] != ESMM_NO_OFFSET)
		{
			const esmm_feature *ft = &m->schema.features[f];

			memcpy(sub->params + sub->emb_off[map[f]], m->params + m->emb_off[f],
				   ((size_t) ft->n_buckets + 1) * ft->dim * sizeof(float));
		}
	for (uint32_t l = 0; l < tw->n_layers; l++)
		copy_layer(sub, &sub->layer[t][l], m, &m->layer[t][l]);

	sub->report = m->report;
	sub->report.epochs = NULL;
	if (m->report.n_epochs > 0)
	{
		sub->report.epochs = malloc(m->report.n_epochs * sizeof(esmm_history_epoch));
		if (sub->report.epochs == NULL)
		{
			esmm_model_free(sub);
			return esmm_fail(st, ESMM_ERR_NOMEM, "out of memory for the history");
		}
		memcpy(sub->report.epochs, m->report.epochs, m->report.n_epochs * sizeof(esmm_history_epoch));
	}
	if (m->config_json != NULL &&
		(rc = esmm_model_set_config(sub, m->config_json, m->config_len, st)) != ESMM_OK)
	{
		esmm_model_free(sub);
		return rc;
	}
	*out = sub;
	return ESMM_OK;
}

/* ----------------------------------------------------------------- init */

void
esmm_model_init(esmm_model *m, uint64_t seed)
{
	memset(m->params, 0, m->n_params * sizeof(float));
	/* feature f's table draws from stream 1000 + f whatever its place */
	for (uint32_t t = 0; t < m->n_tables; t++)
		if (m->table[t].role == ESMM_TABLE_MAIN)
			esmm_fill_uniform(m->params + m->table[t].off,
							  (size_t) m->table[t].rows * m->table[t].dim, 0.05f,
							  esmm_tensor_stream(seed, 1000 + m->table[t].feature));
	if (m->kind == ESMM_KIND_MMOE)
	{
		mmoe_init(m, seed);
		return;
	}
	for (int t = 0; t < 2; t++)
		if (m->has_tower[t])
		{
			esmm_stack	stack = tower_stack(m, t);

			esmm_stack_init(&stack, m->params, m->state, seed, ((uint64_t) t + 1) << 16);
		}
}

/* ------------------------------------------------------------ workspace */

static uint32_t
max_width(const esmm_model *m)
{
	uint32_t	w = 1;

	for (int t = 0; t < 2; t++)
	{
		if (!m->has_tower[t])
			continue;
		esmm_stack	stack = tower_stack(m, t);

		if (m->tower_in[t] > w)
			w = m->tower_in[t];
		if (esmm_stack_max_width(&stack) > w)
			w = esmm_stack_max_width(&stack);
	}
	return w;
}

/*
 * Lays the float workspace for batches of B rows out from p, or only sizes
 * it when p is NULL (then the model's pointers are left alone); returns its
 * length in floats.  Sizing and carving are one walk, so that they cannot
 * disagree.
 */
static size_t
workspace_carve(esmm_model *m, float *p, size_t B)
{
	size_t		cur = 0;

#define CARVE(ptr, count) \
	do { if (p != NULL) (ptr) = p + cur; cur += (count); } while (0)
	for (int t = 0; t < 2; t++)
	{
		if (!m->has_tower[t])
			continue;
		if (t == 1 && m->shared_input)
		{
			if (p != NULL)
				m->input[1] = m->input[0];
		}
		else
			CARVE(m->input[t], B * m->tower_in[t]);
		CARVE(m->d_input[t], B * m->tower_in[t]);
		{
			esmm_stack	stack = tower_stack(m, t);

			cur += esmm_stack_carve(&stack, p != NULL ? p + cur : NULL, B);
		}
		CARVE(m->logit[t], B);
		CARVE(m->d_logit[t], B);
	}
	for (int i = 0; i < 3; i++)
		CARVE(m->scratch[i], B * max_width(m));
	for (int i = 0; i < 3; i++)
		CARVE(m->prob[i], B);
	CARVE(m->y_task[0], B);
	CARVE(m->y_task[1], B);
	CARVE(m->dp, B);
	CARVE(m->batch_nums, B * m->n_nums);
	CARVE(m->batch_labels, B * (m->schema.n_labels > 0 ? m->schema.n_labels : 1));
#undef CARVE
	return cur;
}

/* The lengths, in 4-byte slots, of a batch's id buffers: col_ids,
 * batch_ids, batch_multi_off and batch_multi_ids (which grows). */
static void
workspace_id_slots(const esmm_model *m, size_t B, size_t n[4])
{
	n[0] = B * (m->n_ids > 0 ? m->n_ids : 1);
	n[1] = B * m->n_ids + 1;
	n[2] = (B + 1) * m->n_multi + 1;
	n[3] = B * (m->n_multi > 0 ? 4 : 0) + 1;
}

size_t
esmm_model_workspace_bytes(const esmm_model *m, int max_B)
{
	size_t		B = (size_t) (max_B > 0 ? max_B : 1);
	/* a model's widths are at most 65536 and its layers, stacks and
	 * features a few hundred, so these sums stay far below SIZE_MAX */
	size_t		slots = workspace_carve((esmm_model *) m, NULL, B) +
		(m->kind == ESMM_KIND_MMOE ? mmoe_workspace_floats(m, B) : 0),
				ids[4];

	workspace_id_slots(m, B, ids);
	for (int i = 0; i < 4; i++)
		slots += ids[i];
	return slots * sizeof(float);
}

/* The most table rows B rows holding array_ids array ids can look up: one
 * per id column and row, every array id, and an array feature's missing
 * row per row; with MMoE's wide tables, three times that, and two rows
 * per numeric feature. */
static size_t
max_lookups(const esmm_model *m, size_t B, size_t array_ids)
{
	size_t		per_feature = m->kind == ESMM_KIND_MMOE ? 3 : 1;

	return (B * (m->n_ids + m->n_multi) + array_ids) * per_feature + 2 * (size_t) m->n_nums;
}

size_t
esmm_model_memory(const esmm_model *m, int batch_size, unsigned what)
{
	size_t		B = (size_t) (batch_size > 0 ? batch_size : 1),
				weights = m->n_params + m->n_state,
				floats = weights,
				extra,
				touched,
				bytes;
	int			blocks = model_train_blocks(m, batch_size);

	if ((what & ESMM_MEMORY_BEST) && !esmm_size_add(floats, weights, &floats))
		return SIZE_MAX;
	/* gradients and two moments, the kernels transposed (as many floats
	 * as the dense parameters); each row block but a lone one its own
	 * dense gradients */
	if ((what & ESMM_MEMORY_TRAIN) &&
		(!esmm_size_mul(3, m->n_params, &extra) || !esmm_size_add(floats, extra, &floats) ||
		 !esmm_size_add(floats, m->n_params - m->n_embedding, &floats) ||
		 (blocks > 1 && (!esmm_size_mul((size_t) blocks, m->n_params - m->n_embedding, &extra) ||
						 !esmm_size_add(floats, extra, &floats)))))
		return SIZE_MAX;
	if (!esmm_size_mul(floats, sizeof(float), &bytes) ||
		!esmm_size_add(bytes, esmm_model_workspace_bytes(m, batch_size), &bytes))
		return SIZE_MAX;
	if (!esmm_size_add(bytes, sizeof(*m), &bytes) ||
		(m->kind == ESMM_KIND_MMOE && !esmm_size_add(bytes, mmoe_parts_bytes(m), &bytes)))
		return SIZE_MAX;
	if (!(what & ESMM_MEMORY_TRAIN))
		return bytes;
	/* a step stamp per embedding row; the touched lists, a table and a
	 * row number per entry, double as they grow */
	touched = 2 * max_lookups(m, B, 0) * (sizeof(uint16_t) + sizeof(uint32_t));
	if (!esmm_size_add(bytes, (m->n_rows_total + 1) * sizeof(uint32_t), &bytes) ||
		!esmm_size_add(bytes, touched, &bytes))
		return SIZE_MAX;
	return bytes;
}

esmm_code
esmm_model_workspace(esmm_model *m, int max_B, esmm_status *st)
{
	size_t		B = (size_t) max_B,
				n,
				ids[4];
	float	   *p;
	esmm_code	rc;

	if (max_B < 1 || max_B > (1 << 24))
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "batch size %d is not in 1..%d", max_B, 1 << 24);
	free_workspace(m);
	if (!esmm_size_mul(workspace_carve(m, NULL, B), sizeof(float), &n) || (p = malloc(n)) == NULL)
		return esmm_fail(st, ESMM_ERR_NOMEM, "out of memory for a batch of %d rows", max_B);
	m->work = p;
	workspace_carve(m, p, B);
	workspace_id_slots(m, B, ids);
	m->col_ids = malloc(ids[0] * sizeof(int32_t));
	m->batch_ids = malloc(ids[1] * sizeof(int32_t));
	m->batch_multi_off = malloc(ids[2] * sizeof(uint32_t));
	m->batch_multi_cap = ids[3];
	m->batch_multi_ids = malloc(m->batch_multi_cap * sizeof(int32_t));
	if (m->col_ids == NULL || m->batch_ids == NULL || m->batch_multi_off == NULL ||
		m->batch_multi_ids == NULL)
	{
		free_workspace(m);
		return esmm_fail(st, ESMM_ERR_NOMEM, "out of memory for a batch of %d rows", max_B);
	}
	if (m->kind == ESMM_KIND_MMOE && (rc = mmoe_workspace(m, max_B, st)) != ESMM_OK)
	{
		free_workspace(m);
		return rc;
	}
	m->max_B = max_B;
	return ESMM_OK;
}

esmm_code
esmm_model_train_begin(esmm_model *m, const esmm_optim_spec *optim,
					   int batch_size, uint64_t seed, esmm_status *st)
{
	esmm_code	rc;
	float		m1_init = esmm_optim_m1_init(optim);
	size_t		n_block;
	int			max_blocks;

	if (m->kind != ESMM_KIND_MMOE && !m->has_tower[ESMM_TOWER_CTR])
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "a cvr-only model cannot be trained: its loss needs the ctr tower");
	if (optim->kind > ESMM_OPTIM_RMSPROP)
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "unknown optimizer kind %u", optim->kind);
	if ((rc = esmm_model_workspace(m, batch_size, st)) != ESMM_OK)
		return rc;
	free(m->grads);
	free(m->m1);
	free(m->m2);
	free(m->stamp);
	free(m->block_grads);
	/* dense gradients for as many row blocks as a batch of batch_size
	 * rows is cut into (none when one block: it writes grads directly) */
	m->block_grads = NULL;
	m->block_cap = max_blocks = model_train_blocks(m, batch_size);
	if (max_blocks <= 1)
		m->block_grads = model_alloc_floats(1);
	else if (esmm_size_mul((size_t) max_blocks, m->n_params - m->n_embedding, &n_block))
		m->block_grads = model_alloc_floats(n_block);
	free(m->wt);
	m->wt = model_alloc_floats(m->n_params - m->n_embedding);
	m->grads = model_alloc_floats(m->n_params);
	m->m1 = model_alloc_floats(m->n_params);
	m->m2 = model_alloc_floats(m->n_params);
	m->stamp = calloc(m->n_rows_total + 1, sizeof(uint32_t));
	if (m->grads == NULL || m->m1 == NULL || m->m2 == NULL || m->stamp == NULL ||
		m->block_grads == NULL || m->wt == NULL)
	{
		/* all or nothing: training checks grads alone */
		free(m->grads);
		free(m->m1);
		free(m->m2);
		free(m->stamp);
		free(m->block_grads);
		free(m->wt);
		m->grads = m->m1 = m->m2 = m->block_grads = m->wt = NULL;
		m->stamp = NULL;
		return esmm_fail(st, ESMM_ERR_NOMEM, "out of memory for the optimizer state of %zu parameters",
						 m->n_params);
	}
	for (size_t i = 0; i < m->n_params; i++)
		m->m1[i] = m1_init;
	m->optim = *optim;
	m->step = 0;
	m->n_touched = 0;
	m->dropout_rng = esmm_tensor_stream(seed, 77);
	return ESMM_OK;
}

/* Makes room for n touched rows and multi ids; 0 on failure. */
static int
ensure_touched(esmm_model *m, size_t need)
{
	uint16_t   *f;
	uint32_t   *r;

	if (need <= m->touched_cap)
		return 1;
	need = need * 2;
	f = realloc(m->touched_table, need * sizeof(uint16_t));
	if (f == NULL)
		return 0;
	m->touched_table = f;
	r = realloc(m->touched_row, need * sizeof(uint32_t));
	if (r == NULL)
		return 0;
	m->touched_row = r;
	m->touched_cap = need;
	return 1;
}

/* ---------------------------------------------------------------- input */

/* An id the encoder produced; anything out of range reads the missing row,
 * so a mismatched caller can never index outside a table. */
static inline int32_t
clamp_id(int32_t id, uint32_t n_buckets)
{
	return (id < 0 || (uint32_t) id > n_buckets) ? (int32_t) n_buckets : id;
}

/* Id feature f's column of col_ids ([n_ids, max_B]). */
static inline int32_t *
id_column(const esmm_model *m, uint32_t f)
{
	return m->col_ids + (size_t) m->slot[f] * m->max_B;
}

/* Feature f's ids for the rows [b0, b1), clamped, into its id column;
 * returns that column.  The backward pass reads what the forward pass
 * gathered. */
static const int32_t *
gather_id_column(esmm_model *m, const esmm_batch *batch, uint32_t f, int b0, int b1)
{
	const esmm_feature *ft = &m->schema.features[f];
	int32_t    *col = id_column(m, f);

	for (int b = b0; b < b1; b++)
		col[b] = clamp_id(batch->ids[(size_t) b * m->n_ids + m->slot[f]], ft->n_buckets);
	return col;
}

/* The table feature f reads in role, or ESMM_NO_TABLE. */
static inline uint16_t
role_table(const esmm_model *m, uint32_t f, esmm_table_role role)
{
	return role == ESMM_TABLE_MAIN ? m->feat_table[f] : mmoe_wide_table(m, f, role);
}

uint32_t
model_input_width(const esmm_model *m, const uint16_t *inputs, uint32_t n,
				  esmm_table_role role)
{
	uint32_t	w = 0;

	for (uint32_t i = 0; i < n; i++)
		w += role == ESMM_TABLE_MAIN ? esmm_feature_width(&m->schema.features[inputs[i]]) :
			m->table[role_table(m, inputs[i], role)].dim;
	return w;
}

void
model_input_forward_rows(esmm_model *m, float *x, int D, const uint16_t *inputs,
						 uint32_t n, esmm_table_role role, const esmm_batch *batch,
						 int b0, int b1)
{
	const int	B = batch->B;
	const int	rows = b1 - b0;
	int			c = 0;

	for (uint32_t i = 0; i < n; i++)
	{
		uint32_t	f = inputs[i];
		const esmm_feature *ft = &m->schema.features[f];
		uint16_t	t = role_table(m, f, role);
		int			dim = t != ESMM_NO_TABLE ? (int) m->table[t].dim : 0;

		if (ft->kind == ESMM_FEAT_CATEGORICAL)
			esmm_embedding_forward(x + c, gather_id_column(m, batch, f, b0, b1) + b0,
								   m->params + m->table[t].off, rows, dim, D);
		else if (ft->kind == ESMM_FEAT_MULTI)
			esmm_embedding_mean_forward(x + c, batch->multi_off + (size_t) m->slot[f] * (B + 1) + b0,
										batch->multi_ids, m->params + m->table[t].off,
										(int32_t) ft->n_buckets, rows, dim, D);
		else if (role != ESMM_TABLE_MAIN)
		{
			/* a numeric feature's one wide row, scaled by its value */
			const float *w = m->params + m->table[t].off;

			for (int b = b0; b < b1; b++)
			{
				float		v = esmm_feature_normalize(ft, batch->nums[(size_t) b * m->n_nums + m->slot[f]]);

				for (int j = 0; j < dim; j++)
					x[(size_t) (b - b0) * D + c + j] = v * w[j];
			}
		}
		else
		{
			dim = (int) esmm_feature_width(ft);
			for (int b = b0; b < b1; b++)
			{
				float		raw = batch->nums[(size_t) b * m->n_nums + m->slot[f]];

				x[(size_t) (b - b0) * D + c] = esmm_feature_normalize(ft, raw);
				if (ft->null_indicator)
					x[(size_t) (b - b0) * D + c + 1] = isnan(raw) ? 1.0f : 0.0f;
			}
		}
		c += dim;
	}
}

void
model_input_forward(esmm_model *m, float *x, int D, const uint16_t *inputs,
					uint32_t n, esmm_table_role role, const esmm_batch *batch)
{
	model_input_forward_rows(m, x, D, inputs, n, role, batch, 0, batch->B);
}

/* Accumulates the columns [c, c + its width) of dx [B, D] into the table
 * feature f reads in role; returns that width.  An id feature's ids are
 * those the forward pass over this batch gathered.  Rows are added in
 * batch order, so the result does not depend on who else runs meanwhile. */
static int
input_backward_feature(esmm_model *m, const float *dx, int D, int c, uint32_t f,
					   esmm_table_role role, const esmm_batch *batch)
{
	const int	B = batch->B;
	const esmm_feature *ft = &m->schema.features[f];
	uint16_t	t = role_table(m, f, role);
	int			dim = t != ESMM_NO_TABLE ? (int) m->table[t].dim : 0;

	if (ft->kind == ESMM_FEAT_CATEGORICAL)
		esmm_embedding_backward(m->grads + m->table[t].off, dx + c,
								id_column(m, f), B, dim, D);
	else if (ft->kind == ESMM_FEAT_MULTI)
		esmm_embedding_mean_backward(m->grads + m->table[t].off, dx + c,
									 batch->multi_off + (size_t) m->slot[f] * (B + 1),
									 batch->multi_ids, (int32_t) ft->n_buckets,
									 B, dim, D);
	else if (role != ESMM_TABLE_MAIN)
	{
		float	   *g = m->grads + m->table[t].off;

		for (int b = 0; b < B; b++)
		{
			float		v = esmm_feature_normalize(ft, batch->nums[(size_t) b * m->n_nums + m->slot[f]]);

			for (int j = 0; j < dim; j++)
				g[j] += v * dx[(size_t) b * D + c + j];
		}
	}
	else
		dim = (int) esmm_feature_width(ft);
	return dim;
}

void
model_input_backward(esmm_model *m, const float *dx, int D, const uint16_t *inputs,
					 uint32_t n, esmm_table_role role, const esmm_batch *batch)
{
	int			c = 0;

	for (uint32_t i = 0; i < n; i++)
		c += input_backward_feature(m, dx, D, c, inputs[i], role, batch);
}

/*
 * model_input_backward for the main tables, a thread per feature: each
 * feature of one input list has its own table and its own id column, so
 * threads never write the same memory, and each table sees the rows in
 * batch order whatever the thread count.
 */
static void
model_input_backward_parallel(esmm_model *m, const float *dx, int D, const uint16_t *inputs,
							  uint32_t n, const esmm_batch *batch)
{
	int			col[ESMM_MAX_FEATURES];
	uint8_t		seen[ESMM_MAX_FEATURES] = {0};
	int			c = 0,
				distinct = 1;

	for (uint32_t i = 0; i < n; i++)
	{
		col[i] = c;
		c += (int) esmm_feature_width(&m->schema.features[inputs[i]]);
		/* a crafted model may list a feature twice: then one thread */
		distinct &= !seen[inputs[i]];
		seen[inputs[i]] = 1;
	}
#pragma omp parallel for schedule(dynamic, 1) if (batch->B >= ESMM_PARALLEL_MIN_ROWS && n > 1 && distinct)
	for (int i = 0; i < (int) n; i++)
		(void) input_backward_feature(m, dx, D, col[i], inputs[i], ESMM_TABLE_MAIN, batch);
}

/* Marks row id of table t as touched by this step. */
static inline void
touch_row(esmm_model *m, uint16_t t, int32_t id)
{
	size_t		k = m->table[t].row_base + (size_t) id;
	uint32_t	mark = (uint32_t) (m->step + 1);

	if (m->stamp[k] == mark)
		return;
	m->stamp[k] = mark;
	m->touched_table[m->n_touched] = t;
	m->touched_row[m->n_touched] = (uint32_t) id;
	m->n_touched++;
}

/*
 * touch_row for the B rows of a categorical feature's table, without a
 * branch: every lookup writes the next list entry, and only a row not
 * yet touched moves the end past it (a batch looks up the small tables'
 * rows again and again, so the branch would be guessed wrong often).
 * There is room: the list holds every lookup of the batch.
 */
static void
touch_categorical(esmm_model *m, uint16_t t, const esmm_batch *batch)
{
	const esmm_table *tb = &m->table[t];
	const uint32_t n_buckets = m->schema.features[tb->feature].n_buckets;
	const int32_t *ids = batch->ids + m->slot[tb->feature];
	uint32_t   *stamp = m->stamp + tb->row_base;
	const uint32_t mark = (uint32_t) (m->step + 1);
	uint32_t	n = m->n_touched;

	for (int b = 0; b < batch->B; b++)
	{
		int32_t		id = clamp_id(ids[(size_t) b * m->n_ids], n_buckets);
		uint32_t	fresh = stamp[id] != mark;

		stamp[id] = mark;
		m->touched_table[n] = t;
		m->touched_row[n] = (uint32_t) id;
		n += fresh;
	}
	m->n_touched = n;
}

/* Table tb's L2 (scale) and L1 (scale1) terms for one lookup of its row
 * id: adds their gradient and returns their loss. */
static double
lookup_regularize(esmm_model *m, const esmm_table *tb, int32_t id, float scale,
				  float scale1)
{
	const float *w = m->params + tb->off + (size_t) id * tb->dim;
	float	   *g = m->grads + tb->off + (size_t) id * tb->dim;
	double		loss = 0.0;

	if (scale > 0.0f)
		for (uint32_t j = 0; j < tb->dim; j++)
		{
			loss += (double) scale * w[j] * w[j];
			g[j] += 2.0f * scale * w[j];
		}
	if (scale1 > 0.0f)
		for (uint32_t j = 0; j < tb->dim; j++)
		{
			loss += (double) scale1 * fabsf(w[j]);
			g[j] += w[j] > 0.0f ? scale1 : w[j] < 0.0f ? -scale1 : 0.0f;
		}
	return loss;
}

/*
 * Records every table row the batch looked up, and applies each table's
 * L1/L2 terms (l * mean over the batch of each looked-up row's |w| or w^2)
 * to exactly those lookups.  Returns those terms' loss.
 */
double
model_embedding_touch(esmm_model *m, const esmm_batch *batch)
{
	const int	B = batch->B;
	double		loss = 0.0;

	for (uint16_t t = 0; t < m->n_tables; t++)
	{
		const esmm_table *tb = &m->table[t];
		const esmm_feature *ft = &m->schema.features[tb->feature];
		const float scale = tb->l2 / (float) B;
		const float scale1 = tb->l1 / (float) B;
		const int	reg = scale > 0.0f || scale1 > 0.0f;

		if (!tb->active)
			continue;
		if (ft->kind == ESMM_FEAT_CATEGORICAL)
		{
			touch_categorical(m, t, batch);
			for (int b = 0; reg && b < B; b++)
				loss += lookup_regularize(m, tb,
										  clamp_id(batch->ids[(size_t) b * m->n_ids + m->slot[tb->feature]], ft->n_buckets),
										  scale, scale1);
			continue;
		}
		for (int b = 0; b < B; b++)
		{
			uint32_t	n = 1;
			const int32_t *ids;
			int32_t		one = 0;

			ids = &one;
			if (ft->kind == ESMM_FEAT_MULTI)
			{
				const uint32_t *off = batch->multi_off + (size_t) m->slot[tb->feature] * (B + 1);

				n = off[b + 1] - off[b];
				ids = batch->multi_ids + off[b];
				if (n == 0)
				{
					one = (int32_t) ft->n_buckets;
					ids = &one;
					n = 1;
				}
			}
			for (uint32_t k = 0; k < n; k++)
			{
				/* a numeric feature's wide tables have the one row 0 */
				int32_t		id = ft->kind == ESMM_FEAT_NUMERIC ? 0 : clamp_id(ids[k], ft->n_buckets);

				touch_row(m, t, id);
				if (reg)
					loss += lookup_regularize(m, tb, id, scale, scale1);
			}
		}
	}
	return loss;
}

/* --------------------------------------------------------------- towers */

static int
towers_use_bn(const esmm_model *m)
{
	for (int t = 0; t < 2; t++)
		for (uint32_t l = 0; m->has_tower[t] && l < m->arch.tower[t].n_layers; l++)
			if (m->arch.tower[t].layers[l].use_bn)
				return 1;
	return 0;
}

int
model_train_blocks(const esmm_model *m, int B)
{
	int			bn = m->kind == ESMM_KIND_MMOE ? mmoe_uses_bn(m) : towers_use_bn(m);

	return bn ? 1 : model_row_blocks(B);
}

int
model_batch_blocks(const esmm_model *m, int B, int training, int *rows)
{
	return model_cut_blocks(B, training ? model_train_blocks(m, B) : model_row_blocks(B), rows);
}

/*
 * Runs tower t forward on the rows [b0, b1) of the batch: assembles their
 * input (tower 1 reuses tower 0's when shared_input), then the stack, whose
 * activations acts receives; leaves the logits in m->logit[t][ws ..
 * ws + b1 - b0).  The rows use the workspace from its row ws on: b0 in
 * training, whose backward reads them back by batch row; any free stretch
 * when scoring (esmm_model_predict).  Backward gradients go to
 * grads[o - grad_base].
 */
static void
esmm_tower_forward(esmm_model *m, int t, const esmm_batch *batch, int b0, int b1, int ws,
				   int training, uint64_t *rng, esmm_layer_acts *acts, size_t grad_base)
{
	const esmm_tower_spec *tw = &m->arch.tower[t];
	const int	D = (int) m->tower_in[t];
	float	   *x = m->input[t] + (size_t) ws * D;
	esmm_stack	whole = tower_stack(m, t);
	esmm_stack	s = esmm_stack_rows(&whole, acts, (size_t) ws, grad_base);
	const float *y;

	if (!(t == 1 && m->shared_input))
		model_input_forward_rows(m, x, D, tw->inputs, tw->n_inputs, ESMM_TABLE_MAIN,
								 batch, b0, b1);
	y = esmm_stack_forward(&s, x, m->params, m->state, b1 - b0, training, rng);
	memcpy(m->logit[t] + ws, y, (size_t) (b1 - b0) * sizeof(float));
}

/*
 * The reverse of esmm_tower_forward on the same rows, with the acts it
 * filled: from d_logit[t] to the gradient of the tower input, in
 * m->d_input[t] rows [b0, b1), accumulating the tower's parameter
 * gradients into grads[o - grad_base].
 */
static void
esmm_tower_backward(esmm_model *m, int t, int b0, int b1, esmm_layer_acts *acts,
					float *grads, size_t grad_base)
{
	const size_t D = m->tower_in[t];
	const size_t w = max_width(m);
	esmm_stack	whole = tower_stack(m, t);
	esmm_stack	s = {whole.spec, whole.ref, acts, grad_base, whole.wt, whole.wt_base};
	float	   *dx = m->scratch[0] + (size_t) b0 * w;

	esmm_stack_backward(&s, dx, m->d_logit[t] + b0, m->input[t] + (size_t) b0 * D,
						m->params, grads, b1 - b0, m->scratch[1] + (size_t) b0 * w,
						m->scratch[2] + (size_t) b0 * w);
	memcpy(m->d_input[t] + (size_t) b0 * D, dx, (size_t) (b1 - b0) * D * sizeof(float));
}

/* ----------------------------------------------------------------- loss */

static inline float
sigmoidf(float z)
{
	return 1.0f / (1.0f + expf(-z));
}

/*
 * The ESMM objective on the logits of the rows [b0, b1) of a batch of B:
 * w1 * loss(click, pctr) + w2 * loss(ctcvr, pctr * pcvr), each row
 * weighted 1/B.  Writes those rows of d_logit of each tower present and
 * returns their summed loss (times B: the caller divides).
 */
static double
esmm_loss_backward(esmm_model *m, const esmm_batch *batch, int b0, int b1)
{
	const int	B = batch->B;
	const int	n = b1 - b0;
	const uint32_t nl = m->schema.n_labels;
	const float w1 = m->arch.loss_weights[0] / (float) B;
	const float w2 = m->arch.loss_weights[1] / (float) B;
	const int	both = m->has_tower[0] && m->has_tower[1];
	const float *a = m->logit[0] + b0,
			   *bl = m->logit[1] + b0;
	float	   *d0 = m->d_logit[0] + b0,
			   *d1 = m->d_logit[1] + b0,
			   *y0 = m->y_task[0] + b0,
			   *y1 = m->y_task[1] + b0,
			   *p0 = m->prob[0] + b0,
			   *p1 = m->prob[1] + b0,
			   *p2 = m->prob[2] + b0,
			   *dp = m->dp + b0;
	double		loss = 0.0;

	for (int b = b0; b < b1; b++)
	{
		m->y_task[0][b] = batch->labels[(size_t) b * nl];
		m->y_task[1][b] = nl > 1 ? batch->labels[(size_t) b * nl + 1] : 0.0f;
	}
	if (m->arch.loss == ESMM_LOSS_BCE && both)
	{
		double		loss_ctr = 0.0,
					loss_ctcvr = 0.0;

		esmm_ctr_ctcvr_loss(d0, d1, a, bl, y0, y1, n, w1, w2, &loss_ctr, &loss_ctcvr);
		return m->arch.loss_weights[0] * loss_ctr + m->arch.loss_weights[1] * loss_ctcvr;
	}
	if (m->arch.loss == ESMM_LOSS_BCE)
		return m->arch.loss_weights[0] * esmm_bce_logits(d0, a, y0, n, w1);

	/* MSE on the probabilities, chained through the sigmoids */
	for (int b = 0; b < n; b++)
		p0[b] = sigmoidf(a[b]);
	loss += m->arch.loss_weights[0] * esmm_mse(dp, p0, y0, n, w1);
	for (int b = 0; b < n; b++)
		d0[b] = dp[b] * p0[b] * (1.0f - p0[b]);
	if (both)
	{
		for (int b = 0; b < n; b++)
		{
			p1[b] = sigmoidf(bl[b]);
			p2[b] = p0[b] * p1[b];
		}
		loss += m->arch.loss_weights[1] * esmm_mse(dp, p2, y1, n, w2);
		for (int b = 0; b < n; b++)
		{
			d0[b] += dp[b] * p1[b] * p0[b] * (1.0f - p0[b]);
			d1[b] = dp[b] * p0[b] * p1[b] * (1.0f - p1[b]);
		}
	}
	return loss;
}

/*
 * Forward, loss and backward of the rows [b0, b1), block k of the batch:
 * returns their summed loss.  The block's dense gradients go to grads
 * (offset by grad_base), its input gradients to d_input; with a shared
 * input, d_input[0] receives both towers' sum.
 */
static double
esmm_block_forward_backward(esmm_model *m, const esmm_batch *batch, int k, int b0,
							int b1, float *grads, size_t grad_base)
{
	esmm_layer_acts acts[2][ESMM_MAX_LAYERS];
	/* a dropout stream per step and block: the same masks for any
	 * thread count */
	uint64_t	rng = esmm_tensor_stream(m->dropout_rng ^ m->step, (uint64_t) k + 1);
	double		loss;

	for (int t = 0; t < 2; t++)
		if (m->has_tower[t])
			esmm_tower_forward(m, t, batch, b0, b1, b0, 1, &rng, acts[t], grad_base);
	loss = esmm_loss_backward(m, batch, b0, b1);
	for (int t = 0; t < 2; t++)
		if (m->has_tower[t])
			esmm_tower_backward(m, t, b0, b1, acts[t], grads, grad_base);
	if (m->shared_input)
	{
		const size_t D = m->tower_in[0];
		float	   *d0 = m->d_input[0] + (size_t) b0 * D;
		const float *d1 = m->d_input[1] + (size_t) b0 * D;

		for (size_t i = 0; i < (size_t) (b1 - b0) * D; i++)
			d0[i] += d1[i];
	}
	return loss;
}

/*
 * How many chunks a loop over parameters cuts them into: one per thread
 * of the team, so that each thread has an equal share (chunks of a fixed
 * size gave one of two threads two chunks of the bench model's three).
 * Every loop over chunks is elementwise or sums in a fixed order, so the
 * cut never changes a result.
 */
static inline long
param_chunks(void)
{
	return esmm_threads_max();
}

/* Chunk k of n_chunks over n parameters: returns its first index, its
 * length in *len.  Edges fall on multiples of ESMM_PARALLEL_ALIGN floats
 * from the first parameter, so that two threads share at most the cache
 * line at an edge (the region itself need not start on a line). */
static inline size_t
param_chunk(long k, long n_chunks, size_t n, size_t *len)
{
	size_t		per = ((n + (size_t) n_chunks - 1) / (size_t) n_chunks + ESMM_PARALLEL_ALIGN - 1) /
		ESMM_PARALLEL_ALIGN * ESMM_PARALLEL_ALIGN;
	size_t		i0 = (size_t) k * per < n ? (size_t) k * per : n;

	*len = (n - i0 < per ? n : i0 + per) - i0;
	return i0;
}

/*
 * Sums the dense gradients of a batch's n_blocks row blocks (block_grads)
 * into m->grads' dense region.
 */
void
model_sum_block_grads(esmm_model *m, int n_blocks)
{
	const size_t dense = m->n_params - m->n_embedding;
	float	   *g = m->grads + m->n_embedding;
	const long	n_chunks = param_chunks();

	/* each element is ((0 + block 0) + block 1) + ..., in block order
	 * whatever the thread count; a chunk at a time, block by block, so
	 * that the inner loops run over contiguous floats and vectorize */
#pragma omp parallel for schedule(static) if (dense >= ESMM_PARALLEL_MIN_FLOATS)
	for (long c = 0; c < n_chunks; c++)
	{
		size_t		len,
					i0 = param_chunk(c, n_chunks, dense, &len),
					i1 = i0 + len;

		for (size_t i = i0; i < i1; i++)
			g[i] = 0.0f + m->block_grads[i];
		for (int k = 1; k < n_blocks; k++)
		{
			const float *bk = m->block_grads + (size_t) k * dense;

			for (size_t i = i0; i < i1; i++)
				g[i] += bk[i];
		}
	}
}

/*
 * ESMM's forward and backward over a batch, in row blocks run by the
 * OpenMP threads (ESMM_BLOCK_ROWS); returns the data loss, the mean over
 * the batch.  The blocks' dense gradients are summed in block order and
 * the input gradients scattered a thread per table, so the result is the
 * same for any thread count.
 */
static double
esmm_forward_backward(esmm_model *m, const esmm_batch *batch)
{
	const int	B = batch->B;
	const size_t dense = m->n_params - m->n_embedding;
	double		block_loss[ESMM_MAX_BLOCKS],
				loss = 0.0;
	int			rows,
				n_blocks = model_batch_blocks(m, B, 1, &rows);

	/*
	 * One block writes the model's gradients directly.  Static: a thread
	 * takes the same blocks every batch, whose rows esmm_batch_gather's
	 * static loop gave it too, so a block's workspace stays in one core's
	 * cache (with dynamic blocks, two threads spent 10% longer in them).
	 */
#pragma omp parallel for schedule(static) if (n_blocks > 1)
	for (int k = 0; k < n_blocks; k++)
	{
		int			b0 = k * rows,
					b1 = b0 + rows < B ? b0 + rows : B;
		float	   *g = n_blocks > 1 ? m->block_grads + (size_t) k * dense : m->grads + m->n_embedding;

		if (n_blocks > 1)
			memset(g, 0, dense * sizeof(float));
		block_loss[k] = esmm_block_forward_backward(m, batch, k, b0, b1, g, m->n_embedding);
	}
	for (int k = 0; k < n_blocks; k++)
		loss += block_loss[k];

	if (n_blocks > 1)
		model_sum_block_grads(m, n_blocks);
	for (int t = 0; t < 2; t++)
		if (m->has_tower[t] && !(t == 1 && m->shared_input))
			model_input_backward_parallel(m, m->d_input[t], (int) m->tower_in[t],
										  m->arch.tower[t].inputs, m->arch.tower[t].n_inputs,
										  batch);
	return loss / B;
}

/* ------------------------------------------------------ training steps */

/* Where touched row i starts in the parameter arrays. */
static inline size_t
touched_offset(const esmm_model *m, long i)
{
	const esmm_table *tb = &m->table[m->touched_table[i]];

	return tb->off + (size_t) m->touched_row[i] * tb->dim;
}

/* Zeroes the gradient rows the last forward_backward touched, so that a
 * second forward_backward without a step does not add to them. */
static void
clear_touched_grads(esmm_model *m)
{
	for (uint32_t i = 0; i < m->n_touched; i++)
	{
		const esmm_table *tb = &m->table[m->touched_table[i]];

		memset(m->grads + touched_offset(m, i), 0, tb->dim * sizeof(float));
		m->stamp[tb->row_base + m->touched_row[i]] = 0;
	}
	m->n_touched = 0;
}

/* The most table rows a batch can look up. */
static size_t
batch_lookups(const esmm_model *m, const esmm_batch *batch)
{
	size_t		array_ids = 0;

	for (uint32_t k = 0; k < m->n_multi; k++)
	{
		const uint32_t *off = batch->multi_off + (size_t) k * (batch->B + 1);

		if (off[batch->B] > off[0])
			array_ids += off[batch->B] - off[0];
	}
	return max_lookups(m, (size_t) batch->B, array_ids);
}

double
esmm_model_forward_backward(esmm_model *m, const esmm_batch *batch,
							double *data_loss)
{
	const int	B = batch->B;
	double		loss,
				reg = 0.0;
	size_t		dense = m->n_params - m->n_embedding;

	/* the loss needs pctr: a CVR-only model (an export) cannot train */
	if ((m->kind != ESMM_KIND_MMOE && !m->has_tower[ESMM_TOWER_CTR]) ||
		m->grads == NULL || B < 1 || B > m->max_B || model_train_blocks(m, B) > m->block_cap)
		return NAN;
	/* the dense region is small and always fully updated: clear it whole */
	memset(m->grads + m->n_embedding, 0, dense * sizeof(float));
	clear_touched_grads(m);
	if (!ensure_touched(m, batch_lookups(m, batch)))
		return NAN;
	if (m->kind == ESMM_KIND_MMOE)
	{
		loss = mmoe_forward_backward(m, batch, &reg);
		if (data_loss != NULL)
			*data_loss = loss;
		return loss + reg + model_embedding_touch(m, batch);
	}

	/* the towers' kernels as this step's backward reads them */
	for (int t = 0; t < 2; t++)
		if (m->has_tower[t])
		{
			esmm_stack	stack = tower_stack(m, t);

			esmm_stack_transpose(&stack, m->params, m->wt, m->n_embedding);
		}
	loss = esmm_forward_backward(m, batch);
	if (data_loss != NULL)
		*data_loss = loss;
	reg += model_embedding_touch(m, batch);

	for (int t = 0; t < 2; t++)
		if (m->has_tower[t])
		{
			esmm_stack	stack = tower_stack(m, t);

			reg += esmm_stack_regularize(&stack, m->params, m->grads);
		}
	return loss + reg;
}

void
esmm_model_step(esmm_model *m)
{
	size_t		dense = m->n_params - m->n_embedding;
	esmm_optim_coef c;
	const long	n_touched = (long) m->n_touched;
	const long	n_chunks = param_chunks();

	m->step++;
	esmm_optim_begin(&c, &m->optim, m->step);
	/* every update is elementwise, so any split gives the same result:
	 * the dense parameters in chunks, then the touched embedding rows,
	 * which are distinct (touch_row), so threads never share one */
#pragma omp parallel if (n_touched >= ESMM_PARALLEL_MIN_ROWS || dense >= ESMM_PARALLEL_MIN_FLOATS)
	{
#pragma omp for schedule(static) nowait
		for (long k = 0; k < n_chunks; k++)
		{
			size_t		n,
						i0 = m->n_embedding + param_chunk(k, n_chunks, dense, &n);

			esmm_optim_apply(&c, m->params + i0, m->grads + i0, m->m1 + i0, m->m2 + i0, n);
		}
		/*
		 * Dynamic: the list starts with the largest table's rows, each
		 * a cold miss, then the small tables' cached ones, so equal
		 * static halves left one of two threads twice the other's Adam
		 * time (perf samples per thread, 6.6% against 4.1%)
		 */
#pragma omp for schedule(dynamic, 32)
		for (long i = 0; i < n_touched; i++)
		{
			size_t		dim = m->table[m->touched_table[i]].dim;
			size_t		off = touched_offset(m, i);

			/* the touched rows are scattered over the tables */
			if (i + ESMM_PREFETCH_AHEAD < n_touched)
			{
				size_t		ahead = touched_offset(m, i + ESMM_PREFETCH_AHEAD);

				ESMM_PREFETCH(m->params + ahead);
				ESMM_PREFETCH(m->grads + ahead);
				ESMM_PREFETCH(m->m1 + ahead);
				ESMM_PREFETCH(m->m2 + ahead);
			}

			esmm_optim_apply(&c, m->params + off, m->grads + off, m->m1 + off, m->m2 + off, dim);
			memset(m->grads + off, 0, dim * sizeof(float));
		}
	}
	m->n_touched = 0;
}

/* Scores the rows [b0, b1) of the batch into the outputs (any NULL),
 * with the workspace from its row ws on. */
static void
esmm_predict_rows(esmm_model *m, const esmm_batch *batch, int b0, int b1, int ws,
				  float *pctr, float *pcvr, float *pctcvr)
{
	esmm_layer_acts acts[ESMM_MAX_LAYERS];

	for (int t = 0; t < 2; t++)
		if (m->has_tower[t])
			esmm_tower_forward(m, t, batch, b0, b1, ws, 0, NULL, acts, 0);
	for (int b = b0; b < b1; b++)
	{
		float		p0 = m->has_tower[0] ? sigmoidf(m->logit[0][ws + b - b0]) : NAN;
		float		p1 = m->has_tower[1] ? sigmoidf(m->logit[1][ws + b - b0]) : NAN;

		if (pctr)
			pctr[b] = p0;
		if (pcvr)
			pcvr[b] = p1;
		if (pctcvr)
			pctcvr[b] = p0 * p1;
	}
}

void
esmm_model_predict(esmm_model *m, const esmm_batch *batch, float *pctr,
				   float *pcvr, float *pctcvr)
{
	const int	B = batch->B;
	int			rows,
				n_blocks;
	int			own_stretch;

	if (m->kind == ESMM_KIND_MMOE)
	{
		/* an mmoe model has tasks, not towers: mmoe_model_predict */
		for (int b = 0; b < B; b++)
		{
			if (pctr)
				pctr[b] = NAN;
			if (pcvr)
				pcvr[b] = NAN;
			if (pctcvr)
				pctcvr[b] = NAN;
		}
		return;
	}
	/* a row's scores do not depend on the blocks: any thread count gives
	 * the same; per-row scoring (one block) never enters the pool */
	n_blocks = model_batch_blocks(m, B, 0, &rows);
	if (n_blocks == 1)
	{
		esmm_predict_rows(m, batch, 0, B, 0, pctr, pcvr, pctcvr);
		return;
	}
	/*
	 * Scoring keeps nothing for a backward pass, so each thread runs its
	 * blocks in one stretch of the workspace, its own, when they all fit:
	 * a few hundred KB that stay in cache, where the batch's own rows
	 * would stream megabytes through memory and fault them in on a
	 * cold call.  The blocks, and so the scores, are the same.
	 */
	own_stretch = (size_t) esmm_threads_max() * rows <= (size_t) m->max_B;
#pragma omp parallel for schedule(dynamic, 1)
	for (int k = 0; k < n_blocks; k++)
		esmm_predict_rows(m, batch, k * rows, k * rows + rows < B ? k * rows + rows : B,
						  own_stretch ? esmm_thread_num() * rows : k * rows,
						  pctr, pcvr, pctcvr);
}

/* -------------------------------------------------------------- trainer */

/* Copies the rows perm[0..B-1] of ds into the model's batch arrays. */
static esmm_code
esmm_batch_gather(esmm_model *m, const esmm_dataset *ds, const uint32_t *perm,
				  int B, esmm_batch *out, esmm_status *st)
{
	const uint32_t nl = ds->n_labels;

	/* each thread fills its own batch rows */
#pragma omp parallel for schedule(static) if (B >= ESMM_PARALLEL_MIN_ROWS)
	for (int b = 0; b < B; b++)
	{
		size_t		r = perm[b];

		/* the shuffled rows miss the cache: ask for a later row's now */
		if (b + ESMM_PREFETCH_AHEAD < B)
		{
			size_t		ahead = perm[b + ESMM_PREFETCH_AHEAD];

			ESMM_PREFETCH(esmm_dataset_ids(ds, ahead));
			ESMM_PREFETCH(esmm_dataset_nums(ds, ahead));
			ESMM_PREFETCH(esmm_dataset_labels(ds, ahead));
		}
		esmm_copy_ids(m->batch_ids + (size_t) b * ds->n_ids, esmm_dataset_ids(ds, r), ds->n_ids);
		esmm_copy_floats(m->batch_nums + (size_t) b * ds->n_nums, esmm_dataset_nums(ds, r), ds->n_nums);
		esmm_copy_floats(m->batch_labels + (size_t) b * nl, esmm_dataset_labels(ds, r), nl);
	}
	if (ds->n_multi > 0)
	{
		size_t		used = 0;

		for (uint32_t k = 0; k < ds->n_multi; k++)
		{
			uint32_t   *off = m->batch_multi_off + (size_t) k * (B + 1);

			for (int b = 0; b < B; b++)
			{
				uint32_t	count;
				const int32_t *ids = esmm_dataset_multi(ds, perm[b], k, &count);

				if (used + count > m->batch_multi_cap)
				{
					size_t		cap = (used + count) * 2;
					int32_t    *p = realloc(m->batch_multi_ids, cap * sizeof(int32_t));

					if (p == NULL)
						return esmm_fail(st, ESMM_ERR_NOMEM, "out of memory for a batch's array ids");
					m->batch_multi_ids = p;
					m->batch_multi_cap = cap;
				}
				off[b] = (uint32_t) used;
				memcpy(m->batch_multi_ids + used, ids, count * sizeof(int32_t));
				used += count;
			}
			off[B] = (uint32_t) used;
		}
	}
	out->B = B;
	out->ids = m->batch_ids;
	out->nums = m->batch_nums;
	out->labels = m->batch_labels;
	out->multi_off = m->batch_multi_off;
	out->multi_ids = m->batch_multi_ids;
	return ESMM_OK;
}

/* An unbiased draw in [0, n) from 64 random bits (Lemire's multiply). */
static inline uint32_t
draw_below(uint64_t *rng, uint32_t n)
{
	return (uint32_t) (((esmm_rng_next(rng) >> 32) * (uint64_t) n) >> 32);
}

/* ----------------------------------------------------------- evaluation */

const char *const esmm_metric_names[ESMM_METRIC_COUNT] = {"auc", "bacc", "logloss", "mse"};

/* Clipped as SPEC §2's logloss is, so that a confident miss stays finite. */
static double
clipped_bce(double p, double y)
{
	p = p < 1e-7 ? 1e-7 : p > 1.0 - 1e-7 ? 1.0 - 1e-7 : p;
	return -(y * log(p) + (1.0 - y) * log(1.0 - p));
}

/*
 * One metric over the rows where mask is set (mask NULL: all rows).
 * s[n] scores, y[n] labels; pos_neg[n] is scratch for the AUC.
 */
static double
metric_value(esmm_metric_kind kind, const float *s, const float *y,
			 const float *mask, size_t n, double *scratch)
{
	double		sum = 0.0;
	size_t		count = 0,
				n_pos = 0,
				n_neg = 0;

	for (size_t i = 0; i < n; i++)
	{
		if (mask != NULL && mask[i] < 0.5f)
			continue;
		count++;
		switch (kind)
		{
			case ESMM_METRIC_AUC:
				/* positives fill scratch from the front, negatives from the back */
				if (y[i] > 0.5f)
					scratch[n_pos++] = s[i];
				else
					scratch[n - 1 - n_neg++] = s[i];
				break;
			case ESMM_METRIC_BACC:
				sum += (s[i] > 0.5f) == (y[i] > 0.5f);
				break;
			case ESMM_METRIC_LOGLOSS:
				sum += clipped_bce(s[i], y[i]);
				break;
			default:
				sum += ((double) s[i] - y[i]) * ((double) s[i] - y[i]);
		}
	}
	if (count == 0)
		return NAN;
	if (kind == ESMM_METRIC_AUC)
		return esmm_auc(scratch, n_pos, scratch + n - n_neg, n_neg);
	return sum / count;
}

static void
eval_buffers_free(esmm_model *m)
{
	free(m->eval_mem);
	m->eval_mem = NULL;
}

/*
 * The evaluation's buffers as one allocation owned by the model, so that a
 * progress callback that does not return (a query cancel) leaks nothing:
 * *d [n_doubles], *f [n_floats], *idx [n_idx].  0 when out of memory.
 */
static int
eval_buffers(esmm_model *m, size_t n_doubles, size_t n_floats, size_t n_idx,
			 double **d, float **f, uint32_t **idx)
{
	size_t		bd,
				bf,
				bi,
				total;

	eval_buffers_free(m);
	if (!esmm_size_mul(n_doubles, sizeof(double), &bd) ||
		!esmm_size_mul(n_floats, sizeof(float), &bf) ||
		!esmm_size_mul(n_idx, sizeof(uint32_t), &bi) ||
		!esmm_size_add(bd, bf, &total) || !esmm_size_add(total, bi + 1, &total) ||
		(m->eval_mem = malloc(total)) == NULL)
		return 0;
	*d = (double *) m->eval_mem;
	*f = (float *) ((char *) m->eval_mem + bd);
	*idx = (uint32_t *) ((char *) m->eval_mem + bd + bf);
	return 1;
}

size_t
esmm_eval_row_bytes(esmm_model_kind kind, uint32_t n_labels)
{
	/* ESMM: pctr, pcvr, pctcvr, click, ctcvr; MMoE: a score and a label
	 * per task */
	size_t		floats = kind == ESMM_KIND_MMOE ? 2 * (size_t) n_labels : 5;

	return floats * sizeof(float) + sizeof(double);
}

/*
 * After an evaluation batch that ended at row done of n: tells progress
 * (evaluating set); nonzero when it asks to stop.
 */
static int
eval_progress(esmm_progress_fn progress, void *arg, size_t done, size_t n, int bs)
{
	esmm_progress p;

	if (progress == NULL)
		return 0;
	memset(&p, 0, sizeof(p));
	p.evaluating = 1;
	p.batch = (done + (size_t) bs - 1) / (size_t) bs;
	p.batches = (n + (size_t) bs - 1) / (size_t) bs;
	p.rows_done = done;
	return progress(arg, &p);
}

/*
 * MMoE's evaluation: each task's scores (mmoe_model_scores) against its
 * label; the loss is sum_t w_t * (clipped BCE or squared error), a mean
 * over the rows.
 */
static esmm_code
mmoe_evaluate(esmm_model *m, const esmm_dataset *ds, const esmm_eval_spec *ev,
			  double *values, double *loss, esmm_progress_fn progress,
			  void *progress_arg, esmm_status *st)
{
	const size_t n = ds->n_rows;
	const uint32_t T = m->mmoe.n_tasks;
	const int	bs = m->max_B;
	float	   *buf = NULL;		/* [2T, n]: scores of task t, then labels */
	float	   *out = NULL;		/* [max_B, T] */
	double	   *scratch = NULL; /* [n] */
	uint32_t   *idx = NULL;		/* [max_B] */
	esmm_code	rc = ESMM_OK;

	if (!eval_buffers(m, n, (2 * (size_t) T * n) + (size_t) bs * T, (size_t) bs, &scratch, &buf, &idx))
		rc = esmm_fail(st, ESMM_ERR_NOMEM, "out of memory to evaluate %zu rows", n);
	else
		out = buf + 2 * (size_t) T * n;
	for (size_t start = 0; rc == ESMM_OK && start < n; start += bs)
	{
		int			B = (int) (n - start < (size_t) bs ? n - start : (size_t) bs);
		esmm_batch	batch;

		for (int b = 0; b < B; b++)
			idx[b] = (uint32_t) (start + b);
		if ((rc = esmm_batch_gather(m, ds, idx, B, &batch, st)) != ESMM_OK)
			break;
		mmoe_model_scores(m, &batch, out);
		for (int b = 0; b < B; b++)
			for (uint32_t t = 0; t < T; t++)
			{
				buf[t * n + start + b] = out[(size_t) b * T + t];
				buf[(T + t) * n + start + b] = batch.labels[(size_t) b * T + t];
			}
		if (eval_progress(progress, progress_arg, start + B, n, bs))
			rc = esmm_fail(st, ESMM_ERR_CANCELED, "evaluation was canceled");
	}
	if (rc == ESMM_OK)
	{
		double		l = 0.0;

		for (uint32_t t = 0; t < T; t++)
		{
			const float *s = buf + t * n,
					   *y = buf + (T + t) * n;
			double		lt = 0.0;

			for (size_t i = 0; i < n; i++)
				lt += m->mmoe.task_type[t] == MMOE_TASK_REGRESSION ?
					((double) s[i] - y[i]) * ((double) s[i] - y[i]) : clipped_bce(s[i], y[i]);
			l += m->mmoe.loss_weights[t] * lt;
		}
		*loss = l / n;
		for (uint32_t k = 0; ev != NULL && k < ev->n_metrics; k++)
		{
			uint32_t	t = ev->metrics[k].label;

			if (t < T)
				values[k] = metric_value((esmm_metric_kind) ev->metrics[k].metric,
										 buf + t * n, buf + (T + t) * n, NULL, n, scratch);
		}
	}
	eval_buffers_free(m);
	return rc;
}

esmm_code
esmm_model_evaluate(esmm_model *m, const esmm_dataset *ds,
					const esmm_eval_spec *ev, double *values, double *loss,
					esmm_progress_fn progress, void *progress_arg,
					esmm_status *st)
{
	const size_t n = ds->n_rows;
	const int	bs = m->max_B;
	float	   *buf = NULL;		/* [5, n]: pctr, pcvr, pctcvr, click, ctcvr */
	double	   *scratch = NULL; /* [n] */
	uint32_t   *idx = NULL;		/* [max_B] */
	esmm_code	rc = ESMM_OK;

	*loss = NAN;
	for (uint32_t k = 0; ev != NULL && k < ev->n_metrics; k++)
		values[k] = NAN;
	if (n == 0)
		return ESMM_OK;
	if (m->kind == ESMM_KIND_MMOE)
	{
		if (bs < 1 || ds->n_labels != m->mmoe.n_tasks)
			return esmm_fail(st, ESMM_ERR_ARGUMENT, "evaluation needs an mmoe model with a workspace");
		return mmoe_evaluate(m, ds, ev, values, loss, progress, progress_arg, st);
	}
	if (bs < 1 || !m->has_tower[0] || !m->has_tower[1] || ds->n_labels != 2)
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "evaluation needs a full ESMM model with a workspace");
	if (!eval_buffers(m, n, 5 * n, (size_t) bs, &scratch, &buf, &idx))
		rc = esmm_fail(st, ESMM_ERR_NOMEM, "out of memory to evaluate %zu rows", n);
	for (size_t start = 0; rc == ESMM_OK && start < n; start += bs)
	{
		int			B = (int) (n - start < (size_t) bs ? n - start : (size_t) bs);
		esmm_batch	batch;

		for (int b = 0; b < B; b++)
			idx[b] = (uint32_t) (start + b);
		if ((rc = esmm_batch_gather(m, ds, idx, B, &batch, st)) != ESMM_OK)
			break;
		esmm_model_predict(m, &batch, buf + start, buf + n + start, buf + 2 * n + start);
		for (int b = 0; b < B; b++)
		{
			buf[3 * n + start + b] = batch.labels[2 * b];
			buf[4 * n + start + b] = batch.labels[2 * b + 1];
		}
		if (eval_progress(progress, progress_arg, start + B, n, bs))
			rc = esmm_fail(st, ESMM_ERR_CANCELED, "evaluation was canceled");
	}
	if (rc == ESMM_OK)
	{
		const float *pctr = buf,
				   *pcvr = buf + n,
				   *pctcvr = buf + 2 * n,
				   *click = buf + 3 * n,
				   *ctcvr = buf + 4 * n;
		double		l = 0.0;

		for (size_t i = 0; i < n; i++)
			l += m->arch.loss == ESMM_LOSS_MSE ?
				m->arch.loss_weights[0] * (pctr[i] - click[i]) * (pctr[i] - click[i]) +
				m->arch.loss_weights[1] * (pctcvr[i] - ctcvr[i]) * (pctcvr[i] - ctcvr[i]) :
				m->arch.loss_weights[0] * clipped_bce(pctr[i], click[i]) +
				m->arch.loss_weights[1] * clipped_bce(pctcvr[i], ctcvr[i]);
		*loss = l / n;
		for (uint32_t k = 0; ev != NULL && k < ev->n_metrics; k++)
		{
			esmm_metric_kind kind = (esmm_metric_kind) ev->metrics[k].metric;

			if (ev->metrics[k].label == 0)
				values[k] = metric_value(kind, pctr, click, NULL, n, scratch);
			else if (m->arch.label_is_ctcvr)
				values[k] = metric_value(kind, pctcvr, ctcvr, NULL, n, scratch);
			else				/* conversion: pcvr on the clicked rows */
				values[k] = metric_value(kind, pcvr, ctcvr, click, n, scratch);
		}
	}
	eval_buffers_free(m);
	return rc;
}

int
esmm_monitor_improves(int mode_max, float min_delta, double best, double v)
{
	return isnan(best) ? !isnan(v) : mode_max ? v > best + min_delta : v < best - min_delta;
}

/* The monitored value of an epoch; NaN when it is undefined. */
static double
monitor_value(const esmm_eval_spec *ev, const esmm_history_epoch *h,
			  const double *values, double val_loss)
{
	if (ev->monitor == ESMM_MONITOR_LOSS)
		return h->train_loss;
	if (ev->monitor == ESMM_MONITOR_VAL_LOSS)
		return val_loss;
	if (ev->monitor >= 0 && (uint32_t) ev->monitor < ev->n_metrics)
		return values[ev->monitor];
	return NAN;
}

/* Appends epoch's history entry; NULL when out of memory. */
esmm_history_epoch *
esmm_model_history_append(esmm_model *m)
{
	esmm_history_epoch *h = realloc(m->report.epochs, (m->report.n_epochs + 1) * sizeof(*h));

	if (h == NULL)
		return NULL;
	m->report.epochs = h;
	h = &m->report.epochs[m->report.n_epochs++];
	memset(h, 0, sizeof(*h));
	h->epoch = m->report.n_epochs;
	return h;
}

void
esmm_history_add_metric(esmm_history_epoch *h, const char *name, double value)
{
	if (h->n_metrics >= 16)
		return;
	snprintf(h->metric_names[h->n_metrics], sizeof(h->metric_names[0]), "%s", name);
	h->metric_values[h->n_metrics++] = value;
}

esmm_code
esmm_model_train(esmm_model *m, const esmm_dataset *ds,
				 const esmm_train_spec *ts, esmm_progress_fn progress,
				 void *progress_arg, esmm_status *st)
{
	return esmm_model_fit(m, ds, NULL, ts, NULL, progress, progress_arg, st);
}

esmm_code
esmm_model_fit(esmm_model *m, const esmm_dataset *ds, const esmm_dataset *val,
			   const esmm_train_spec *ts, const esmm_eval_spec *ev,
			   esmm_progress_fn progress, void *progress_arg, esmm_status *st)
{
	const size_t n = ds->n_rows;
	const int	bs = m->max_B;
	const int	has_val = val != NULL && val->n_rows > 0;
	const int	evaluate = ev != NULL && (ev->n_metrics > 0 || ev->early_stopping || has_val);
	uint64_t	rng = esmm_tensor_stream(ts->seed, 4242);
	uint32_t   *perm;
	esmm_dataset stored = *ds;
	esmm_code	rc = ESMM_OK;
	double		t_start = now_seconds(),
				best = NAN;
	uint32_t	wait = 0;

	if (ds->n_ids != m->n_ids || ds->n_nums != m->n_nums || ds->n_multi != m->n_multi ||
		ds->n_labels != m->schema.n_labels ||
		(has_val && (val->n_ids != m->n_ids || val->n_nums != m->n_nums ||
					 val->n_multi != m->n_multi || val->n_labels != m->schema.n_labels)))
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "the training buffer does not match the model's schema");
	if (n == 0 || n > UINT32_MAX)
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "row count %zu is not in 1..%u", n, UINT32_MAX);
	if (m->grads == NULL || bs < 1)
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "esmm_model_train_begin was not called");
	if (ev != NULL && ev->early_stopping)
	{
		free(m->best_params);
		free(m->best_state);
		m->best_params = malloc((m->n_params > 0 ? m->n_params : 1) * sizeof(float));
		m->best_state = malloc((m->n_state > 0 ? m->n_state : 1) * sizeof(float));
		if (m->best_params == NULL || m->best_state == NULL)
			return esmm_fail(st, ESMM_ERR_NOMEM, "out of memory for the best epoch's weights");
	}
	m->report.rows_validation = has_val ? val->n_rows : 0;
	/* a warm start's history goes on; best_epoch numbers the whole of it */
	m->report.best_epoch = 0;
	m->report.stopped_early = 0;
	/* owned by the model, so that a caller that longjmps out of the
	 * progress callback (a query cancel) leaks nothing */
	free(m->perm);
	m->perm = perm = malloc(n * sizeof(uint32_t));
	m->perm_len = n;
	if (perm == NULL)
		return esmm_fail(st, ESMM_ERR_NOMEM, "out of memory for a permutation of %zu rows", n);
	/*
	 * The permutation holds stored rows: ds's canonical order is applied
	 * here once, so that gathering a shuffled row is one cache miss
	 * rather than two dependent ones (order[], then the row).  Shuffling
	 * positions gives the same rows in the same order as shuffling row
	 * numbers would.
	 */
	stored.order = NULL;
	for (size_t i = 0; i < n; i++)
		perm[i] = (uint32_t) esmm_dataset_row(ds, i);

	for (uint32_t epoch = 1; epoch <= ts->epochs && rc == ESMM_OK; epoch++)
	{
		esmm_progress p = {0};
		double		t_epoch = now_seconds(),
					sum_loss = 0.0;
		esmm_history_epoch *h;

		if (ts->shuffle)
			for (size_t i = n - 1; i > 0; i--)
			{
				uint32_t	j = draw_below(&rng, (uint32_t) (i + 1));
				uint32_t	tmp = perm[i];

				perm[i] = perm[j];
				perm[j] = tmp;
			}
		p.epoch = epoch;
		p.batches = (n + bs - 1) / bs;
		for (size_t start = 0; start < n; start += bs)
		{
			int			B = (int) (n - start < (size_t) bs ? n - start : (size_t) bs);
			esmm_batch	batch;
			double		data_loss = 0.0;

			if ((rc = esmm_batch_gather(m, &stored, perm + start, B, &batch, st)) != ESMM_OK)
				break;
			/* forward_backward returns NaN when this fails; say why here */
			if (!ensure_touched(m, batch_lookups(m, &batch)))
			{
				rc = esmm_fail(st, ESMM_ERR_NOMEM, "out of memory for the rows a batch touches");
				break;
			}
			if (!isfinite(esmm_model_forward_backward(m, &batch, &data_loss)) ||
				!isfinite(data_loss))
			{
				rc = esmm_fail(st, ESMM_ERR_NUMERIC,
							   "training diverged: the loss is not finite at epoch %u, batch %zu",
							   epoch, (size_t) (start / bs + 1));
				break;
			}
			esmm_model_step(m);
			sum_loss += data_loss * B;
			p.batch++;
			p.rows_done += B;
			p.running_loss = sum_loss / p.rows_done;
			p.seconds = now_seconds() - t_epoch;
			if (progress != NULL && progress(progress_arg, &p))
			{
				rc = esmm_fail(st, ESMM_ERR_CANCELED, "training was canceled");
				break;
			}
		}
		if (rc != ESMM_OK)
			break;

		if ((h = esmm_model_history_append(m)) == NULL)
		{
			rc = esmm_fail(st, ESMM_ERR_NOMEM, "out of memory for the training history");
			break;
		}
		h->train_loss = sum_loss / n;
		h->rows = n;
		if (evaluate)
		{
			double		values[ESMM_MAX_EVAL_METRICS],
						val_loss,
						v;

			if ((rc = esmm_model_evaluate(m, has_val ? val : ds, ev, values, &val_loss,
											progress, progress_arg, st)) != ESMM_OK)
				break;
			if (has_val)
				esmm_history_add_metric(h, "val_loss", val_loss);
			for (uint32_t k = 0; k < ev->n_metrics; k++)
				esmm_history_add_metric(h, ev->metrics[k].name, values[k]);
			v = monitor_value(ev, h, values, val_loss);
			if (ev->early_stopping)
			{
				if (esmm_monitor_improves(ev->mode_max, ev->min_delta, best, v))
				{
					best = v;
					wait = 0;
					m->report.best_epoch = h->epoch;
					memcpy(m->best_params, m->params, m->n_params * sizeof(float));
					memcpy(m->best_state, m->state, m->n_state * sizeof(float));
				}
				else if (++wait >= ev->patience && epoch < ts->epochs)
					p.stopping = 1;
			}
		}
		h->seconds = now_seconds() - t_epoch;
		p.end_of_epoch = 1;
		p.seconds = h->seconds;
		p.history = h;
		if (progress != NULL && progress(progress_arg, &p))
			rc = esmm_fail(st, ESMM_ERR_CANCELED, "training was canceled");
		if (p.stopping)
		{
			m->report.stopped_early = 1;
			break;
		}
	}
	/* the best epoch's weights, as Keras' restore_best_weights */
	if (rc == ESMM_OK && m->report.best_epoch > 0 && m->report.best_epoch < m->report.n_epochs)
	{
		memcpy(m->params, m->best_params, m->n_params * sizeof(float));
		memcpy(m->state, m->best_state, m->n_state * sizeof(float));
	}
	m->report.seconds += now_seconds() - t_start;
	return rc;
}
