/*
 * mmoe_model.c: MMoE v2's own parts (see mmoe_model.h): the wide tables,
 * experts, gates and task towers, their layout, initialization, forward
 * and backward.  The tables, input assembly, lazy embedding updates,
 * optimizer step and trainer are esmm_model.c's, shared with ESMM.
 *
 * Backward mirrors forward in reverse: task towers, then per task the
 * mixture and its gate, then the experts, then the inputs and the wide
 * part.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "mmoe_model.h"
#include "model_internal.h"
#include "optim.h"
#include "stack.h"

typedef struct mmoe_parts
{
	/* ---- layout */
	uint32_t	E,				/* experts */
				G,				/* gates: 1 when shared, else T */
				T,				/* tasks */
				H;				/* an expert's output width */
	uint32_t	n_expert_inputs;	/* the mmoe group, then the wide group
									 * when feature_cross puts it there */
	uint16_t	expert_inputs[2 * ESMM_MAX_FEATURES];
	uint32_t	d_expert;		/* expert and gate input width */
	uint32_t	d_wide;			/* the raw wide features, when assembled */
	uint32_t	d_cross;		/* what a task tower reads beside the mixture */
	uint32_t	d_task;			/* H + d_cross */
	uint32_t	fm_k;			/* FM latent width */
	int			need_wide_features; /* x_w is assembled */
	int			wide_scalar;	/* the FM/LR output o is computed */
	int			add_to_logits;	/* output_cross 0 with a scalar wide output */
	int			cross_scalar;	/* the task towers read the scalar o */
	uint16_t	lin_table[ESMM_MAX_FEATURES];
	uint16_t	fm_table[ESMM_MAX_FEATURES];
	size_t		wide_bias;		/* params [1] */
	size_t		gate_W[ESMM_MAX_LABELS];	/* params [d_expert, E] */
	size_t		gate_b[ESMM_MAX_LABELS];	/* params [E] or ESMM_NO_OFFSET */
	esmm_layer_ref *expert_ref; /* [E * expert layers] */
	esmm_layer_acts *expert_acts;	/* [E * expert layers] */
	esmm_layer_ref task_ref[ESMM_MAX_LABELS][ESMM_MAX_LAYERS];
	esmm_layer_acts task_acts[ESMM_MAX_LABELS][ESMM_MAX_LAYERS];

	/* ---- workspace for batches of up to max_B rows */
	float	   *work;
	float	   *x_e;			/* [B, d_expert] */
	float	   *x_w;			/* [B, d_wide] */
	float	   *lin;			/* [B, n_wide] first-order terms */
	float	   *fm_e;			/* [B, n_wide * fm_k] FM field vectors */
	float	   *fm_y;			/* [B] FM second-order term */
	float	   *wide_o;			/* [B] the wide output o */
	const float *e_out[MMOE_MAX_EXPERTS];	/* [B, H] each, in the activations */
	float	   *gate_p[ESMM_MAX_LABELS];	/* [B, E] softmax */
	float	   *u[ESMM_MAX_LABELS];	/* [B, d_task] task tower input */
	float	   *z[ESMM_MAX_LABELS];	/* [B] task logit */
	float	   *dz[ESMM_MAX_LABELS];	/* [B] */
	float	   *y;				/* [B] one task's labels */
	float	   *h;				/* [B, H] one task's mixture */
	float	   *d_e[MMOE_MAX_EXPERTS];	/* [B, H] */
	float	   *d_h;			/* [B, H] */
	float	   *d_g;			/* [B, E] */
	float	   *d_xe;			/* [B, d_expert] */
	float	   *d_xw;			/* [B, d_wide] */
	float	   *d_o;			/* [B] */
	float	   *d_lin;			/* [B, n_wide] */
	float	   *d_fm;			/* [B, n_wide * fm_k] */
	float	   *dx,				/* [B, max width] stack backward buffers */
			   *sb,
			   *sc;
} mmoe_parts;

/* Expert k's and task t's stacks, with the activations of p: m->mm, or
 * a view of some of its rows (mmoe_parts_rows). */
static esmm_stack
expert_stack(const esmm_model *m, mmoe_parts *p, uint32_t k)
{
	const size_t L = m->mmoe.expert.n_layers;
	esmm_stack	st = {&m->mmoe.expert, p->expert_ref + k * L, p->expert_acts + k * L, 0,
	m->wt, m->n_embedding};

	return st;
}

static esmm_stack
task_stack(const esmm_model *m, mmoe_parts *p, uint32_t t)
{
	esmm_stack	st = {&m->mmoe.task[t], p->task_ref[t], p->task_acts[t], 0, m->wt, m->n_embedding};

	return st;
}

static int
wide_has_model(const mmoe_arch *a)
{
	return a->use_wide && (a->wide_type == MMOE_WIDE_FM || a->wide_type == MMOE_WIDE_LR);
}

/* Whether the raw wide features are assembled on their own (x_w): a task
 * tower reads them (feature_cross 2, 4), or they are the wide output that
 * a task tower reads (3, 5 with a raw wide part). */
static int
needs_wide_features(const mmoe_arch *a)
{
	int			into = mmoe_wide_into_tasks(a);

	return into == 1 || (into == 2 && !wide_has_model(a));
}

/* Whether the FM/LR output is computed: added to the logits or read by
 * the task towers. */
static int
needs_wide_scalar(const mmoe_arch *a)
{
	return wide_has_model(a) && (a->output_cross == 0 || mmoe_wide_into_tasks(a) == 2);
}

static int
in_list(const uint16_t *list, uint32_t n, uint32_t f)
{
	for (uint32_t i = 0; i < n; i++)
		if (list[i] == f)
			return 1;
	return 0;
}

/* ----------------------------------------------------------- validation */

esmm_code
mmoe_validate(const esmm_model *m, esmm_status *st)
{
	const mmoe_arch *a = &m->mmoe;
	const esmm_schema *s = &m->schema;
	esmm_code	rc;

	if (a->n_tasks < 1 || a->n_tasks > ESMM_MAX_LABELS || a->n_tasks != s->n_labels)
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "mmoe has %u tasks for %u labels, not 1..%d",
						 a->n_tasks, s->n_labels, ESMM_MAX_LABELS);
	if (a->n_experts < 1 || a->n_experts > MMOE_MAX_EXPERTS)
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "mmoe has %u experts, not 1..%d",
						 a->n_experts, MMOE_MAX_EXPERTS);
	if ((rc = model_validate_tower(&a->expert, s, "expert", MODEL_TOWER_INPUTS, st)) != ESMM_OK)
		return rc;
	for (uint32_t t = 0; t < a->n_tasks; t++)
	{
		if ((rc = model_validate_tower(&a->task[t], s, "task", MODEL_TOWER_UNIT_OUTPUT, st)) != ESMM_OK)
			return rc;
		/* a task tower reads the mixture, never features directly */
		if (a->task[t].n_inputs != 0)
			return esmm_fail(st, ESMM_ERR_ARGUMENT, "task %u has %u feature inputs, not 0", t,
							 a->task[t].n_inputs);
		if (a->task_type[t] > MMOE_TASK_REGRESSION)
			return esmm_fail(st, ESMM_ERR_ARGUMENT, "task %u has unknown type %u", t, a->task_type[t]);
		if (!isfinite(a->loss_weights[t]) || a->loss_weights[t] < 0.0f)
			return esmm_fail(st, ESMM_ERR_ARGUMENT, "task %u has loss weight %g", t,
							 (double) a->loss_weights[t]);
	}
	if (!isfinite(a->gate_l1) || !isfinite(a->gate_l2) || a->gate_l1 < 0.0f || a->gate_l2 < 0.0f ||
		!isfinite(a->wide_l1) || !isfinite(a->wide_l2) || a->wide_l1 < 0.0f || a->wide_l2 < 0.0f ||
		!isfinite(a->l2_embedding) || a->l2_embedding < 0.0f)
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "mmoe has invalid regularization");
	if (a->feature_cross > 5 || a->output_cross > 1 || a->wide_type > MMOE_WIDE_RAW ||
		a->use_wide > 1 || a->share_gates > 1 || a->gate_use_bias > 1 || a->task_output_sigmoid > 1)
		return esmm_fail(st, ESMM_ERR_ARGUMENT,
						 "mmoe has feature_cross %u, output_cross %u, wide type %u: out of range",
						 a->feature_cross, a->output_cross, a->wide_type);
	if (!a->use_wide && a->n_wide_inputs != 0)
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "wide part is off but has %u inputs",
						 a->n_wide_inputs);
	if (a->use_wide)
	{
		if (a->n_wide_inputs < 1 || a->n_wide_inputs > s->n_features)
			return esmm_fail(st, ESMM_ERR_ARGUMENT, "wide part has %u inputs, not 1..%u",
							 a->n_wide_inputs, s->n_features);
		for (uint32_t i = 0; i < a->n_wide_inputs; i++)
			if (a->wide_inputs[i] >= s->n_features ||
				in_list(a->wide_inputs, i, a->wide_inputs[i]))
				return esmm_fail(st, ESMM_ERR_ARGUMENT, "wide input %u is feature %u of %u, or repeated",
								 i, a->wide_inputs[i], s->n_features);
		if (a->wide_type == MMOE_WIDE_FM && (a->wide_width < 1 || a->wide_width > 1024))
			return esmm_fail(st, ESMM_ERR_ARGUMENT, "wide_width %u is not in 1..1024", a->wide_width);
	}
	return ESMM_OK;
}

int
mmoe_feature_uses_table(const esmm_model *m, uint32_t f)
{
	const mmoe_arch *a = &m->mmoe;

	if (in_list(a->expert.inputs, a->expert.n_inputs, f))
		return 1;
	return a->use_wide && (mmoe_wide_into_experts(a) || needs_wide_features(a)) &&
		in_list(a->wide_inputs, a->n_wide_inputs, f);
}

uint16_t
mmoe_wide_table(const esmm_model *m, uint32_t f, esmm_table_role role)
{
	if (m->mm == NULL || f >= ESMM_MAX_FEATURES)
		return ESMM_NO_TABLE;
	return role == ESMM_TABLE_WIDE_FM ? m->mm->fm_table[f] :
		role == ESMM_TABLE_WIDE_LINEAR ? m->mm->lin_table[f] : ESMM_NO_TABLE;
}

/* --------------------------------------------------------------- layout */

/* Allocates the parts and lays out the wide tables (after the features'
 * own): per wide feature a linear table [rows, 1] and, for FM, a latent
 * table [rows, wide_width]; a numeric feature's have one row. */
int
mmoe_layout_tables(esmm_model *m, size_t *cursor)
{
	const mmoe_arch *a = &m->mmoe;
	mmoe_parts *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return 0;
	m->mm = p;
	for (uint32_t f = 0; f < ESMM_MAX_FEATURES; f++)
		p->lin_table[f] = p->fm_table[f] = ESMM_NO_TABLE;
	p->wide_scalar = needs_wide_scalar(a);
	p->fm_k = p->wide_scalar && a->wide_type == MMOE_WIDE_FM ? a->wide_width : 0;
	for (uint32_t i = 0; p->wide_scalar && i < a->n_wide_inputs; i++)
	{
		uint32_t	f = a->wide_inputs[i];
		const esmm_feature *ft = &m->schema.features[f];
		uint32_t	rows = ft->kind == ESMM_FEAT_NUMERIC ? 1 : ft->n_buckets + 1;

		p->lin_table[f] = model_add_table(m, f, ESMM_TABLE_WIDE_LINEAR, rows, 1,
										  a->wide_l1, a->wide_l2, cursor);
		if (p->lin_table[f] == ESMM_NO_TABLE)
			return 0;
		if (p->fm_k > 0 &&
			(p->fm_table[f] = model_add_table(m, f, ESMM_TABLE_WIDE_FM, rows, p->fm_k,
											  a->wide_l1, a->wide_l2, cursor)) == ESMM_NO_TABLE)
			return 0;
	}
	return 1;
}

int
mmoe_layout_dense(esmm_model *m, size_t *cursor, size_t *scursor)
{
	const mmoe_arch *a = &m->mmoe;
	mmoe_parts *p = m->mm;
	const uint32_t L = a->expert.n_layers;
	int			into = mmoe_wide_into_tasks(a);

	p->E = a->n_experts;
	p->T = a->n_tasks;
	p->G = a->share_gates ? 1 : a->n_tasks;
	p->H = a->expert.layers[L - 1].units;
	p->need_wide_features = needs_wide_features(a);
	p->add_to_logits = p->wide_scalar && a->output_cross == 0;

	p->n_expert_inputs = 0;
	for (uint32_t i = 0; i < a->expert.n_inputs; i++)
		p->expert_inputs[p->n_expert_inputs++] = a->expert.inputs[i];
	for (uint32_t i = 0; mmoe_wide_into_experts(a) && i < a->n_wide_inputs; i++)
		p->expert_inputs[p->n_expert_inputs++] = a->wide_inputs[i];
	p->d_expert = model_input_width(m, p->expert_inputs, p->n_expert_inputs, ESMM_TABLE_MAIN);
	p->d_wide = p->need_wide_features ?
		model_input_width(m, a->wide_inputs, a->n_wide_inputs, ESMM_TABLE_MAIN) : 0;
	p->cross_scalar = into == 2 && p->wide_scalar;
	p->d_cross = p->cross_scalar ? 1 : into != 0 ? p->d_wide : 0;
	p->d_task = p->H + p->d_cross;

	p->wide_bias = ESMM_NO_OFFSET;
	if (p->wide_scalar)
	{
		p->wide_bias = *cursor;
		if (!esmm_size_add(*cursor, 1, cursor))
			return 0;
	}
	p->expert_ref = calloc((size_t) p->E * L, sizeof(esmm_layer_ref));
	p->expert_acts = calloc((size_t) p->E * L, sizeof(esmm_layer_acts));
	if (p->expert_ref == NULL || p->expert_acts == NULL)
		return 0;
	for (uint32_t k = 0; k < p->E; k++)
	{
		esmm_stack	s = expert_stack(m, m->mm, k);

		if (!esmm_stack_layout(&s, p->d_expert, cursor, scursor))
			return 0;
	}
	for (uint32_t g = 0; g < p->G; g++)
	{
		size_t		n;

		p->gate_W[g] = *cursor;
		if (!esmm_size_mul(p->d_expert, p->E, &n) || !esmm_size_add(*cursor, n, cursor))
			return 0;
		p->gate_b[g] = ESMM_NO_OFFSET;
		if (a->gate_use_bias)
		{
			p->gate_b[g] = *cursor;
			if (!esmm_size_add(*cursor, p->E, cursor))
				return 0;
		}
	}
	for (uint32_t t = 0; t < p->T; t++)
	{
		esmm_stack	s = task_stack(m, m->mm, t);

		if (!esmm_stack_layout(&s, p->d_task, cursor, scursor))
			return 0;
	}
	return 1;
}

void
mmoe_model_widths(const esmm_model *m, mmoe_widths *w)
{
	memset(w, 0, sizeof(*w));
	if (m->kind != ESMM_KIND_MMOE || m->mm == NULL)
		return;
	w->expert_in = m->mm->d_expert;
	w->wide_in = m->mm->d_wide;
	w->wide_out = m->mm->wide_scalar ? 1 : m->mm->d_wide;
	w->task_in = m->mm->d_task;
}

int
mmoe_variances_valid(const esmm_model *m)
{
	for (uint32_t k = 0; k < m->mm->E; k++)
	{
		esmm_stack	s = expert_stack(m, m->mm, k);

		if (!esmm_stack_variances_valid(&s, m->state))
			return 0;
	}
	for (uint32_t t = 0; t < m->mm->T; t++)
	{
		esmm_stack	s = task_stack(m, m->mm, t);

		if (!esmm_stack_variances_valid(&s, m->state))
			return 0;
	}
	return 1;
}

/* ----------------------------------------------------------------- init */

void
mmoe_init(esmm_model *m, uint64_t seed)
{
	mmoe_parts *p = m->mm;

	/* every expert, gate and task tower from its own stream: experts that
	 * start equal get equal gradients and stay equal (PaddleRec #721) */
	for (uint32_t k = 0; k < p->E; k++)
	{
		esmm_stack	s = expert_stack(m, m->mm, k);

		esmm_stack_init(&s, m->params, m->state, seed, ((uint64_t) 100 + k) << 16);
	}
	for (uint32_t g = 0; g < p->G; g++)
		esmm_fill_uniform(m->params + p->gate_W[g], (size_t) p->d_expert * p->E,
						  sqrtf(6.0f / (float) (p->d_expert + p->E)),
						  esmm_tensor_stream(seed, ((uint64_t) 300 + g) << 16));
	for (uint32_t t = 0; t < p->T; t++)
	{
		esmm_stack	s = task_stack(m, m->mm, t);

		esmm_stack_init(&s, m->params, m->state, seed, ((uint64_t) 200 + t) << 16);
	}
	for (uint32_t i = 0; i < m->n_tables; i++)
	{
		const esmm_table *tb = &m->table[i];

		if (tb->role != ESMM_TABLE_MAIN)
			esmm_fill_uniform(m->params + tb->off, (size_t) tb->rows * tb->dim, 0.05f,
							  esmm_tensor_stream(seed, (tb->role == ESMM_TABLE_WIDE_FM ? 3000 : 2000) +
												 (uint64_t) tb->feature));
	}
}

/* ------------------------------------------------------------ workspace */

void
mmoe_free_workspace(esmm_model *m)
{
	if (m->mm == NULL)
		return;
	free(m->mm->work);
	m->mm->work = NULL;
}

void
mmoe_free_parts(esmm_model *m)
{
	if (m->mm == NULL)
		return;
	mmoe_free_workspace(m);
	free(m->mm->expert_ref);
	free(m->mm->expert_acts);
	free(m->mm);
	m->mm = NULL;
}

/* The widest buffer a stack backward needs: any layer, either input. */
static size_t
max_width(const esmm_model *m)
{
	const mmoe_parts *p = m->mm;
	size_t		w = p->d_expert > p->d_task ? p->d_expert : p->d_task;
	esmm_stack	s = expert_stack(m, m->mm, 0);

	if (esmm_stack_max_width(&s) > w)
		w = esmm_stack_max_width(&s);
	for (uint32_t t = 0; t < p->T; t++)
	{
		s = task_stack(m, m->mm, t);
		if (esmm_stack_max_width(&s) > w)
			w = esmm_stack_max_width(&s);
	}
	return w > p->E ? w : p->E;
}

/* Lays MMoE's float workspace for B rows out from base, or only sizes it
 * when base is NULL (then the model's pointers are left alone); returns
 * its length in floats. */
static size_t
mmoe_workspace_carve(esmm_model *m, float *base, size_t B)
{
	mmoe_parts *p = m->mm;
	const size_t nw = p->wide_scalar ? m->mmoe.n_wide_inputs : 0;
	const size_t W = max_width(m);
	size_t		cur = 0;

#define CARVE(ptr, count) \
	do { if (base != NULL) (ptr) = base + cur; cur += (count); } while (0)
	CARVE(p->x_e, B * p->d_expert);
	CARVE(p->x_w, B * p->d_wide);
	CARVE(p->lin, B * nw);
	CARVE(p->fm_e, B * nw * p->fm_k);
	CARVE(p->fm_y, B);
	CARVE(p->wide_o, B);
	for (uint32_t k = 0; k < p->E; k++)
	{
		esmm_stack	s = expert_stack(m, m->mm, k);

		cur += esmm_stack_carve(&s, base != NULL ? base + cur : NULL, B);
		CARVE(p->d_e[k], B * p->H);
	}
	for (uint32_t g = 0; g < p->G; g++)
		CARVE(p->gate_p[g], B * p->E);
	for (uint32_t t = 0; t < p->T; t++)
	{
		esmm_stack	s = task_stack(m, m->mm, t);

		cur += esmm_stack_carve(&s, base != NULL ? base + cur : NULL, B);
		CARVE(p->u[t], B * p->d_task);
		CARVE(p->z[t], B);
		CARVE(p->dz[t], B);
	}
	CARVE(p->y, B);
	CARVE(p->h, B * p->H);
	CARVE(p->d_h, B * p->H);
	CARVE(p->d_g, B * p->E);
	CARVE(p->d_xe, B * p->d_expert);
	CARVE(p->d_xw, B * p->d_wide);
	CARVE(p->d_o, B);
	CARVE(p->d_lin, B * nw);
	CARVE(p->d_fm, B * nw * p->fm_k);
	CARVE(p->dx, B * W);
	CARVE(p->sb, B * W);
	CARVE(p->sc, B * W);
#undef CARVE
	return cur;
}

size_t
mmoe_workspace_floats(const esmm_model *m, size_t B)
{
	return mmoe_workspace_carve((esmm_model *) m, NULL, B);
}

esmm_code
mmoe_workspace(esmm_model *m, int max_B, esmm_status *st)
{
	size_t		floats,
				bytes;
	float	   *base;

	mmoe_free_workspace(m);
	floats = mmoe_workspace_carve(m, NULL, (size_t) max_B);
	if (!esmm_size_mul(floats > 0 ? floats : 1, sizeof(float), &bytes) ||
		(base = malloc(bytes)) == NULL)
		return esmm_fail(st, ESMM_ERR_NOMEM, "out of memory for a batch of %d rows", max_B);
	m->mm->work = base;
	mmoe_workspace_carve(m, base, (size_t) max_B);
	return ESMM_OK;
}

/* -------------------------------------------------------------- forward */

/* Appends a [B, w] block at column c of a [B, D] buffer. */
static void
copy_columns(float *dst, int D, int c, const float *src, int w, int B)
{
	for (int b = 0; b < B; b++)
		memcpy(dst + (size_t) b * D + c, src + (size_t) b * w, (size_t) w * sizeof(float));
}

/* Adds columns [c, c + w) of a [B, D] buffer into dst [B, w]. */
static void
add_columns(float *dst, const float *src, int D, int c, int w, int B)
{
	for (int b = 0; b < B; b++)
		for (int j = 0; j < w; j++)
			dst[(size_t) b * w + j] += src[(size_t) b * D + c + j];
}

/*
 * Everything from the inputs to the task logits p->z, for the rows
 * [b0, b1) of the batch, in p's workspace from its row 0: m->mm for a
 * whole batch, or a view (mmoe_parts_rows) for a block of one.
 */
static void
mmoe_forward_rows(esmm_model *m, mmoe_parts *p, const esmm_batch *batch, int b0, int b1,
				  int training, uint64_t *rng)
{
	const mmoe_arch *a = &m->mmoe;
	const int	B = b1 - b0;
	const int	nw = (int) a->n_wide_inputs;

	model_input_forward_rows(m, p->x_e, (int) p->d_expert, p->expert_inputs,
							 p->n_expert_inputs, ESMM_TABLE_MAIN, batch, b0, b1);
	if (p->need_wide_features)
		model_input_forward_rows(m, p->x_w, (int) p->d_wide, a->wide_inputs, a->n_wide_inputs,
								 ESMM_TABLE_MAIN, batch, b0, b1);
	if (p->wide_scalar)
	{
		model_input_forward_rows(m, p->lin, nw, a->wide_inputs, a->n_wide_inputs,
								 ESMM_TABLE_WIDE_LINEAR, batch, b0, b1);
		if (p->fm_k > 0)
		{
			model_input_forward_rows(m, p->fm_e, nw * (int) p->fm_k, a->wide_inputs,
									 a->n_wide_inputs, ESMM_TABLE_WIDE_FM, batch, b0, b1);
			esmm_fm_forward(p->fm_y, p->fm_e, B, nw, (int) p->fm_k);
		}
		for (int b = 0; b < B; b++)
		{
			float		o = m->params[p->wide_bias] + (p->fm_k > 0 ? p->fm_y[b] : 0.0f);

			for (int i = 0; i < nw; i++)
				o += p->lin[(size_t) b * nw + i];
			p->wide_o[b] = o;
		}
	}

	for (uint32_t k = 0; k < p->E; k++)
	{
		esmm_stack	s = expert_stack(m, p, k);

		p->e_out[k] = esmm_stack_forward(&s, p->x_e, m->params, m->state, B, training,
										 rng);
	}
	for (uint32_t g = 0; g < p->G; g++)
	{
		esmm_dense_forward(p->gate_p[g], p->x_e, m->params + p->gate_W[g],
						   p->gate_b[g] != ESMM_NO_OFFSET ? m->params + p->gate_b[g] : NULL,
						   B, (int) p->d_expert, (int) p->E);
		esmm_softmax_forward(p->gate_p[g], p->gate_p[g], B, (int) p->E);
	}
	for (uint32_t t = 0; t < p->T; t++)
	{
		esmm_stack	s = task_stack(m, p, t);
		const float *zt;

		esmm_mixture_forward(p->h, p->gate_p[a->share_gates ? 0 : t], p->e_out, B,
							 (int) p->E, (int) p->H);
		copy_columns(p->u[t], (int) p->d_task, 0, p->h, (int) p->H, B);
		if (p->d_cross > 0)
			copy_columns(p->u[t], (int) p->d_task, (int) p->H,
						 p->cross_scalar ? p->wide_o : p->x_w,
						 (int) p->d_cross, B);
		zt = esmm_stack_forward(&s, p->u[t], m->params, m->state, B, training, rng);
		for (int b = 0; b < B; b++)
			p->z[t][b] = zt[b] + (p->add_to_logits ? p->wide_o[b] : 0.0f);
	}
}

static inline float
sigmoidf(float z)
{
	return 1.0f / (1.0f + expf(-z));
}

/* A thread's view of some rows of the workspace, on its stack (~80 kB):
 * m->mm's parts moved down to those rows, with the experts' activations. */
typedef struct mmoe_rows_view
{
	mmoe_parts	parts;
	esmm_layer_acts expert_acts[MMOE_MAX_EXPERTS * ESMM_MAX_LAYERS];
} mmoe_rows_view;

/*
 * Fills view with m->mm for the workspace rows from w0 on: the same
 * layers, every buffer moved down w0 rows.  Views of disjoint rows run on
 * separate threads.  Returns the view's parts.
 */
static mmoe_parts *
mmoe_parts_rows(mmoe_rows_view *view, const esmm_model *m, size_t w0)
{
	mmoe_parts *p = m->mm,
			   *v = &view->parts;
	esmm_layer_acts *expert_acts = view->expert_acts;
	const size_t nw = p->wide_scalar ? m->mmoe.n_wide_inputs : 0;
	const size_t L = m->mmoe.expert.n_layers;
	const size_t W = max_width(m);

	*v = *p;
	v->x_e = p->x_e + w0 * p->d_expert;
	v->x_w = p->x_w + w0 * p->d_wide;
	v->lin = p->lin + w0 * nw;
	v->fm_e = p->fm_e + w0 * nw * p->fm_k;
	v->fm_y = p->fm_y + w0;
	v->wide_o = p->wide_o + w0;
	v->expert_acts = expert_acts;
	for (uint32_t k = 0; k < p->E; k++)
	{
		esmm_stack	s = expert_stack(m, p, k);

		(void) esmm_stack_rows(&s, expert_acts + k * L, w0, 0);
	}
	for (uint32_t g = 0; g < p->G; g++)
		v->gate_p[g] = p->gate_p[g] + w0 * p->E;
	for (uint32_t t = 0; t < p->T; t++)
	{
		esmm_stack	s = task_stack(m, p, t);

		(void) esmm_stack_rows(&s, v->task_acts[t], w0, 0);
		v->u[t] = p->u[t] + w0 * p->d_task;
		v->z[t] = p->z[t] + w0;
	}
	v->h = p->h + w0 * p->H;
	for (uint32_t k = 0; k < p->E; k++)
		v->d_e[k] = p->d_e[k] + w0 * p->H;
	for (uint32_t t = 0; t < p->T; t++)
		v->dz[t] = p->dz[t] + w0;
	v->y = p->y + w0;
	v->d_h = p->d_h + w0 * p->H;
	v->d_g = p->d_g + w0 * p->E;
	v->d_xe = p->d_xe + w0 * p->d_expert;
	v->d_xw = p->d_xw + w0 * p->d_wide;
	v->d_o = p->d_o + w0;
	v->d_lin = p->d_lin + w0 * nw;
	v->d_fm = p->d_fm + w0 * nw * p->fm_k;
	v->dx = p->dx + w0 * W;
	v->sb = p->sb + w0 * W;
	v->sc = p->sc + w0 * W;
	return v;
}

/* Writes out rows [b0, b1) of [B, T]: the logits of p's forward pass,
 * through the sigmoid for binary tasks when sigmoid_binary. */
static void
mmoe_outputs_rows(esmm_model *m, mmoe_parts *p, const esmm_batch *batch, int b0, int b1,
				  float *out, int sigmoid_binary)
{
	mmoe_forward_rows(m, p, batch, b0, b1, 0, NULL);
	for (int b = 0; b < b1 - b0; b++)
		for (uint32_t t = 0; t < p->T; t++)
			out[(size_t) (b0 + b) * p->T + t] =
				sigmoid_binary && m->mmoe.task_type[t] == MMOE_TASK_BINARY ?
				sigmoidf(p->z[t][b]) : p->z[t][b];
}

/*
 * Scores a batch in row blocks (ESMM_BLOCK_ROWS), which the OpenMP
 * threads share as esmm_model_predict's: the cut depends on B only, so
 * any thread count gives the same scores, and each thread runs its blocks
 * in its own stretch of the workspace, which stays in cache.  One block
 * (per-row scoring) never enters the pool.
 */
static void
mmoe_outputs(esmm_model *m, const esmm_batch *batch, float *out, int sigmoid_binary)
{
	const int	B = batch->B;
	int			rows,
				n_blocks = model_batch_blocks(m, B, 0, &rows),
				own_stretch;

	if (n_blocks <= 1)
	{
		mmoe_outputs_rows(m, m->mm, batch, 0, B, out, sigmoid_binary);
		return;
	}
	own_stretch = (size_t) esmm_threads_max() * rows <= (size_t) m->max_B;
#pragma omp parallel for schedule(dynamic, 1)
	for (int k = 0; k < n_blocks; k++)
	{
		mmoe_rows_view view;
		int			b0 = k * rows,
					b1 = b0 + rows < B ? b0 + rows : B;
		mmoe_parts *p = mmoe_parts_rows(&view, m,
										(size_t) (own_stretch ? esmm_thread_num() * rows : b0));

		mmoe_outputs_rows(m, p, batch, b0, b1, out, sigmoid_binary);
	}
}

void
mmoe_model_predict(esmm_model *m, const esmm_batch *batch, float *out)
{
	mmoe_outputs(m, batch, out, m->mmoe.task_output_sigmoid);
}

void
mmoe_model_scores(esmm_model *m, const esmm_batch *batch, float *out)
{
	mmoe_outputs(m, batch, out, 1);
}

/* ------------------------------------------------------------- backward */

/* The weighted task losses of the logits p->z of the rows [b0, b1), each
 * row weighted 1/B of the whole batch: returns their sum, writes p->dz. */
static double
mmoe_loss_rows(esmm_model *m, mmoe_parts *p, const esmm_batch *batch, int b0, int b1)
{
	const mmoe_arch *a = &m->mmoe;
	const int	n = b1 - b0;
	double		loss = 0.0;

	for (uint32_t t = 0; t < p->T; t++)
	{
		const float w = a->loss_weights[t] / (float) batch->B;

		for (int b = 0; b < n; b++)
			p->y[b] = batch->labels[(size_t) (b0 + b) * p->T + t];
		if (a->task_type[t] == MMOE_TASK_REGRESSION)
			loss += a->loss_weights[t] * esmm_mse(p->dz[t], p->z[t], p->y, n, w);
		else
			loss += a->loss_weights[t] * esmm_bce_logits(p->dz[t], p->z[t], p->y, n, w);
	}
	return loss;
}

int
mmoe_uses_bn(const esmm_model *m)
{
	for (uint32_t l = 0; l < m->mmoe.expert.n_layers; l++)
		if (m->mmoe.expert.layers[l].use_bn)
			return 1;
	for (uint32_t t = 0; t < m->mmoe.n_tasks; t++)
		for (uint32_t l = 0; l < m->mmoe.task[t].n_layers; l++)
			if (m->mmoe.task[t].layers[l].use_bn)
				return 1;
	return 0;
}

size_t
mmoe_parts_bytes(const esmm_model *m)
{
	size_t		per_layer = (size_t) m->mm->E * m->mmoe.expert.n_layers;

	return sizeof(mmoe_parts) + per_layer * (sizeof(esmm_layer_ref) + sizeof(esmm_layer_acts));
}

/*
 * Forward, loss and backward of the rows [b0, b1) in p (m->mm, or a view
 * of those rows): returns their summed loss.  The dense gradients go to
 * grads (the tensor at offset o to grads[o - grad_base]); the input
 * gradients stay in p's d_xe, d_xw, d_lin and d_fm for
 * mmoe_input_backward.
 */
static double
mmoe_block_forward_backward(esmm_model *m, mmoe_parts *p, const esmm_batch *batch, int b0,
							int b1, uint64_t *rng, float *grads, size_t grad_base)
{
	const mmoe_arch *a = &m->mmoe;
	const int	B = b1 - b0;
	const int	nw = (int) a->n_wide_inputs;
	const int	De = (int) p->d_expert;
	double		loss;

	mmoe_forward_rows(m, p, batch, b0, b1, 1, rng);
	loss = mmoe_loss_rows(m, p, batch, b0, b1);

	memset(p->d_xe, 0, (size_t) B * De * sizeof(float));
	memset(p->d_xw, 0, (size_t) B * p->d_wide * sizeof(float));
	memset(p->d_o, 0, (size_t) B * sizeof(float));
	for (uint32_t k = 0; k < p->E; k++)
		memset(p->d_e[k], 0, (size_t) B * p->H * sizeof(float));

	for (int t = (int) p->T - 1; t >= 0; t--)
	{
		esmm_stack	s = task_stack(m, p, (uint32_t) t);
		uint32_t	g = a->share_gates ? 0 : (uint32_t) t;

		s.grad_base = grad_base;
		if (p->add_to_logits)
			for (int b = 0; b < B; b++)
				p->d_o[b] += p->dz[t][b];
		esmm_stack_backward(&s, p->dx, p->dz[t], p->u[t], m->params, grads, B, p->sb, p->sc);
		/* dx [B, d_task]: the mixture's columns, then the cross's */
		for (int b = 0; b < B; b++)
			memcpy(p->d_h + (size_t) b * p->H, p->dx + (size_t) b * p->d_task,
				   p->H * sizeof(float));
		if (p->d_cross > 0)
			add_columns(p->cross_scalar ? p->d_o : p->d_xw, p->dx,
						(int) p->d_task, (int) p->H, (int) p->d_cross, B);
		esmm_mixture_backward(p->d_e, p->d_g, p->d_h, p->gate_p[g], p->e_out, B,
							  (int) p->E, (int) p->H);
		esmm_softmax_backward(p->d_g, p->d_g, p->gate_p[g], B, (int) p->E);
		esmm_dense_backward(p->dx, grads + (p->gate_W[g] - grad_base),
							p->gate_b[g] != ESMM_NO_OFFSET ? grads + (p->gate_b[g] - grad_base) : NULL,
							p->d_g, p->x_e, m->params + p->gate_W[g], NULL, B, De, (int) p->E);
		add_columns(p->d_xe, p->dx, De, 0, De, B);
	}
	for (int k = (int) p->E - 1; k >= 0; k--)
	{
		esmm_stack	s = expert_stack(m, p, (uint32_t) k);

		s.grad_base = grad_base;
		esmm_stack_backward(&s, p->dx, p->d_e[k], p->x_e, m->params, grads, B, p->sb, p->sc);
		add_columns(p->d_xe, p->dx, De, 0, De, B);
	}

	if (p->wide_scalar)
	{
		if (p->fm_k > 0)
			esmm_fm_backward(p->d_fm, p->d_o, p->fm_e, B, nw, (int) p->fm_k);
		for (int b = 0; b < B; b++)
		{
			grads[p->wide_bias - grad_base] += p->d_o[b];
			for (int i = 0; i < nw; i++)
				p->d_lin[(size_t) b * nw + i] = p->d_o[b];
		}
	}
	return loss;
}

/* The input gradients of the whole batch, which the blocks left in
 * m->mm's buffers in batch row order, into the tables. */
static void
mmoe_input_backward(esmm_model *m, const esmm_batch *batch)
{
	const mmoe_arch *a = &m->mmoe;
	mmoe_parts *p = m->mm;
	const int	nw = (int) a->n_wide_inputs;

	if (p->wide_scalar)
	{
		if (p->fm_k > 0)
			model_input_backward(m, p->d_fm, nw * (int) p->fm_k, a->wide_inputs,
								 a->n_wide_inputs, ESMM_TABLE_WIDE_FM, batch);
		model_input_backward(m, p->d_lin, nw, a->wide_inputs, a->n_wide_inputs,
							 ESMM_TABLE_WIDE_LINEAR, batch);
	}
	if (p->need_wide_features)
		model_input_backward(m, p->d_xw, (int) p->d_wide, a->wide_inputs, a->n_wide_inputs,
							 ESMM_TABLE_MAIN, batch);
	model_input_backward(m, p->d_xe, (int) p->d_expert, p->expert_inputs, p->n_expert_inputs,
						 ESMM_TABLE_MAIN, batch);
}

/*
 * MMoE's forward and backward over a batch: row blocks on the OpenMP
 * threads, each writing its own dense gradients, summed in block order
 * (model_sum_block_grads), so the result is the same for any thread
 * count; then the tables' gradients and the regularizers.  Returns the
 * data loss, a mean over the batch, and the regularizers' in *reg.
 */
double
mmoe_forward_backward(esmm_model *m, const esmm_batch *batch, double *reg)
{
	const mmoe_arch *a = &m->mmoe;
	mmoe_parts *p = m->mm;
	const int	B = batch->B;
	double		loss = 0.0,
				block_loss[ESMM_MAX_BLOCKS];
	int			rows,
				n_blocks = model_batch_blocks(m, B, 1, &rows);

	/* the experts' and towers' kernels as this step's backward reads them */
	for (uint32_t k = 0; k < p->E; k++)
	{
		esmm_stack	s = expert_stack(m, p, k);

		esmm_stack_transpose(&s, m->params, m->wt, m->n_embedding);
	}
	for (uint32_t t = 0; t < p->T; t++)
	{
		esmm_stack	s = task_stack(m, p, t);

		esmm_stack_transpose(&s, m->params, m->wt, m->n_embedding);
	}
	if (n_blocks == 1)
		loss = mmoe_block_forward_backward(m, p, batch, 0, B, &m->dropout_rng, m->grads, 0);
	else
	{
		const size_t dense = m->n_params - m->n_embedding;

#pragma omp parallel for schedule(static)
		for (int k = 0; k < n_blocks; k++)
		{
			mmoe_rows_view view;
			int			b0 = k * rows,
						b1 = b0 + rows < B ? b0 + rows : B;
			/* a dropout stream per step and block: the same masks for any
			 * thread count */
			uint64_t	rng = esmm_tensor_stream(m->dropout_rng ^ m->step, (uint64_t) k + 1);
			float	   *g = m->block_grads + (size_t) k * dense;

			memset(g, 0, dense * sizeof(float));
			block_loss[k] = mmoe_block_forward_backward(m, mmoe_parts_rows(&view, m, (size_t) b0),
														batch, b0, b1, &rng, g, m->n_embedding);
		}
		for (int k = 0; k < n_blocks; k++)
			loss += block_loss[k];
		model_sum_block_grads(m, n_blocks);
	}
	mmoe_input_backward(m, batch);
	loss /= B;

	*reg = 0.0;
	for (uint32_t k = 0; k < p->E; k++)
	{
		esmm_stack	s = expert_stack(m, m->mm, k);

		*reg += esmm_stack_regularize(&s, m->params, m->grads);
	}
	for (uint32_t g = 0; g < p->G; g++)
	{
		size_t		n = (size_t) p->d_expert * p->E;

		*reg += esmm_reg_loss(m->params + p->gate_W[g], n, a->gate_l1, a->gate_l2);
		esmm_reg_grad(m->grads + p->gate_W[g], m->params + p->gate_W[g], n, a->gate_l1, a->gate_l2);
	}
	for (uint32_t t = 0; t < p->T; t++)
	{
		esmm_stack	s = task_stack(m, m->mm, t);

		*reg += esmm_stack_regularize(&s, m->params, m->grads);
	}
	return loss;
}
