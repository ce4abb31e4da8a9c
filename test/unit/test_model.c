/*
 * test_model.c: the ESMM model of esmm_model.c, end to end on a small
 * hand-built schema: the whole objective's gradient against central
 * differences for every parameter, initialization, sparse updates,
 * training, scoring, normalization statistics and spec validation.
 *
 * Data come from a generator of this file's own (splitmix64), so that a
 * broken esmm_rng cannot quietly make the tests trivial.
 */
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <omp.h>

#include "unit.h"
#include "esmm_model.h"
#include "optim.h"
#include "model_format.h"
#include "metrics.h"

#define GRAD_FLOOR 1e-7			/* below this, a tensor's gradient is "none" */
#define SEED 20240611

/* ------------------------------------------------------------- helpers */

static uint64_t data_rng = UINT64_C(0x9E3779B97F4A7C15);

static uint64_t
next_u64(void)
{
	uint64_t	z = (data_rng += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

static double
uniform01(void)
{
	return (next_u64() >> 11) * (1.0 / 9007199254740992.0);
}

static uint32_t
below(uint32_t n)
{
	return (uint32_t) (uniform01() * n);
}

static double
sigmoid(double z)
{
	return 1.0 / (1.0 + exp(-z));
}

static void
set_feature(esmm_feature *f, const char *name, esmm_feature_kind kind,
			uint32_t n_buckets, uint32_t dim)
{
	memset(f, 0, sizeof(*f));
	strcpy(f->name, name);
	f->kind = (uint8_t) kind;
	f->n_buckets = n_buckets;
	f->dim = dim;
	f->mean = 0.0f;
	f->std = 1.0f;
}

/*
 * The schema of the suite:
 *   0 ad     categorical, 7 buckets, dim 3 (both towers: a shared table)
 *   1 user   categorical, 5 buckets, dim 2 (CVR tower only)
 *   2 price  numeric, standard (mean 0.5, std 2), NULL indicator
 *   3 tags   multi, 6 buckets, dim 2 (both towers)
 * Slots: ids {ad, user}, nums {price}, multi {tags}.
 */
static void
make_schema(esmm_schema *s)
{
	memset(s, 0, sizeof(*s));
	s->n_features = 4;
	set_feature(&s->features[0], "ad", ESMM_FEAT_CATEGORICAL, 7, 3);
	set_feature(&s->features[1], "user", ESMM_FEAT_CATEGORICAL, 5, 2);
	set_feature(&s->features[2], "price", ESMM_FEAT_NUMERIC, 0, 0);
	s->features[2].norm = ESMM_NORM_STANDARD;
	s->features[2].mean = 0.5f;
	s->features[2].std = 2.0f;
	s->features[2].null_indicator = 1;
	set_feature(&s->features[3], "tags", ESMM_FEAT_MULTI, 6, 2);
	s->n_labels = 2;
	strcpy(s->labels[0], "click");
	strcpy(s->labels[1], "conv");
}

/*
 * CTR: inputs {ad, price, tags}; 4 relu with batch norm (and a bias in
 * front of it, whose gradient batch norm must cancel), 3 swish, 1.
 * CVR: inputs {user, price, tags, ad}; 4 tanh, 3 swish with batch norm
 * and no bias, 1.  dropout goes on the CTR tower's second layer.
 */
static void
make_arch(esmm_arch *a, esmm_loss_kind loss, float dropout)
{
	esmm_tower_spec *ctr = &a->tower[ESMM_TOWER_CTR];
	esmm_tower_spec *cvr = &a->tower[ESMM_TOWER_CVR];

	memset(a, 0, sizeof(*a));
	ctr->n_layers = 3;
	set_layer(&ctr->layers[0], 4, ESMM_ACT_RELU, 1, 1, 0.0f);
	set_layer(&ctr->layers[1], 3, ESMM_ACT_SWISH, 1, 0, dropout);
	set_layer(&ctr->layers[2], 1, ESMM_ACT_NONE, 1, 0, 0.0f);
	ctr->l1 = 0.001f;
	ctr->l2 = 0.002f;
	ctr->n_inputs = 3;
	ctr->inputs[0] = 0;
	ctr->inputs[1] = 2;
	ctr->inputs[2] = 3;

	cvr->n_layers = 3;
	set_layer(&cvr->layers[0], 4, ESMM_ACT_TANH, 1, 0, 0.0f);
	set_layer(&cvr->layers[1], 3, ESMM_ACT_SWISH, 0, 1, 0.0f);
	set_layer(&cvr->layers[2], 1, ESMM_ACT_NONE, 1, 0, 0.0f);
	cvr->l1 = 0.001f;
	cvr->l2 = 0.002f;
	cvr->n_inputs = 4;
	cvr->inputs[0] = 1;
	cvr->inputs[1] = 2;
	cvr->inputs[2] = 3;
	cvr->inputs[3] = 0;

	a->loss_weights[0] = 1.0f;
	a->loss_weights[1] = 0.7f;
	a->l2_embedding = 0.01f;
	a->label_is_ctcvr = 0;
	a->loss = (uint8_t) loss;
}

/*
 * Six rows by hand:
 *   row  ad  user    price  click ctcvr  tags
 *   0    1   0        0.3   1     1      {0, 2}
 *   1    3   4        NULL  0     0      {}      (the missing row, 6)
 *   2    1   2       -1.2   1     0      {5}
 *   3    6   1        2.5   0     0      {1, 1, 3}
 *   4    0   NULL(5)  0.0   1     1      {2}
 *   5    2   0        1.7   1     0      {3, 0}
 * Rows never looked up: ad 4, 5, 7; user 3; tags 4 (see looked_up).
 */
#define HB_ROWS 6
typedef struct hand_batch
{
	int32_t		ids[HB_ROWS * 2];
	float		nums[HB_ROWS];
	float		labels[HB_ROWS * 2];
	uint32_t	multi_off[HB_ROWS + 1];
	int32_t		multi_ids[9];
	esmm_batch	b;
} hand_batch;

/* Per feature, '1' for each table row the hand batch looks up. */
static const char *const looked_up[4] = {"11110010", "111011", NULL, "1111011"};

static void
make_batch(hand_batch *hb)
{
	static const int32_t ids[HB_ROWS * 2] = {1, 0, 3, 4, 1, 2, 6, 1, 0, 5, 2, 0};
	static const float labels[HB_ROWS * 2] = {1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 1, 0};
	static const uint32_t off[HB_ROWS + 1] = {0, 2, 2, 3, 6, 7, 9};
	static const int32_t tags[9] = {0, 2, 5, 1, 1, 3, 2, 3, 0};

	memcpy(hb->ids, ids, sizeof(ids));
	hb->nums[0] = 0.3f;
	hb->nums[1] = NAN;
	hb->nums[2] = -1.2f;
	hb->nums[3] = 2.5f;
	hb->nums[4] = 0.0f;
	hb->nums[5] = 1.7f;
	memcpy(hb->labels, labels, sizeof(labels));
	memcpy(hb->multi_off, off, sizeof(off));
	memcpy(hb->multi_ids, tags, sizeof(tags));
	hb->b.B = HB_ROWS;
	hb->b.ids = hb->ids;
	hb->b.nums = hb->nums;
	hb->b.labels = hb->labels;
	hb->b.multi_off = hb->multi_off;
	hb->b.multi_ids = hb->multi_ids;
}

/*
 * Whether row b of a batch of make_schema's rows (2 ids, 1 number, one
 * array feature), scored alone (one row, one block, sgemv), is within
 * 1e-6 of the scores p[3] it got in the batch.
 */
static int
scores_alone(esmm_model *m, const esmm_batch *full, int b, const float p[3])
{
	esmm_batch	one;
	uint32_t	off[2] = {full->multi_off[b], full->multi_off[b + 1]};
	float		q[3];

	one.B = 1;
	one.ids = full->ids + (size_t) b * 2;
	one.nums = full->nums + b;
	one.labels = NULL;
	one.multi_off = off;
	one.multi_ids = full->multi_ids;
	esmm_model_predict(m, &one, &q[0], &q[1], &q[2]);
	return fabs(q[0] - p[0]) <= 1e-6 && fabs(q[1] - p[1]) <= 1e-6 && fabs(q[2] - p[2]) <= 1e-6;
}

/* A created, initialized model with its training state, or NULL. */
static esmm_model *
new_model(const esmm_schema *s, const esmm_arch *a, esmm_model_kind kind,
		  esmm_optim_kind opt, float lr, int batch_size, uint64_t seed)
{
	esmm_model *m = NULL;
	esmm_status st;

	esmm_status_clear(&st);
	if (esmm_model_create(&m, s, a, kind, &st) != ESMM_OK)
	{
		CHECK(0, "esmm_model_create failed: %s", st.msg);
		return NULL;
	}
	return ready_to_train(m, opt, lr, batch_size, seed);
}

static float *
copy_floats(const float *v, size_t n)
{
	float	   *c = malloc((n ? n : 1) * sizeof(float));

	memcpy(c, v, n * sizeof(float));
	return c;
}

static double
max_abs(const float *v, size_t n)
{
	double		m = 0.0;

	for (size_t i = 0; i < n; i++)
	{
		if (isnan(v[i]))
			return INFINITY;
		if (fabs(v[i]) > m)
			m = fabs(v[i]);
	}
	return m;
}

static int
feature_used(const esmm_model *m, uint32_t f)
{
	for (int t = 0; t < 2; t++)
		for (uint32_t i = 0; m->has_tower[t] && i < m->arch.tower[t].n_inputs; i++)
			if (m->arch.tower[t].inputs[i] == f)
				return 1;
	return 0;
}

/* ------------------------------------------------------ gradient check */

/*
 * The regularization part of the objective, from the documentation:
 * l2_embedding * (sum over lookups of |row|^2) / B, plus l1 |W| + l2 W^2
 * of every kernel.  Each lookup counts (a row looked up twice, twice).
 */
static double
expected_regularization(const esmm_model *m, const hand_batch *hb)
{
	double		reg = 0.0,
				emb = 0.0;

	for (uint32_t f = 0; f < m->schema.n_features; f++)
	{
		const esmm_feature *ft = &m->schema.features[f];
		const float *table = m->params + m->emb_off[f];

		if (ft->kind == ESMM_FEAT_NUMERIC || !feature_used(m, f))
			continue;
		for (int b = 0; b < HB_ROWS; b++)
		{
			int32_t		rows[HB_ROWS * 2];
			uint32_t	n = 0;

			if (ft->kind == ESMM_FEAT_CATEGORICAL)
				rows[n++] = hb->ids[b * 2 + m->slot[f]];
			else if (hb->multi_off[b + 1] == hb->multi_off[b])
				rows[n++] = (int32_t) ft->n_buckets;
			else
				for (uint32_t k = hb->multi_off[b]; k < hb->multi_off[b + 1]; k++)
					rows[n++] = hb->multi_ids[k];
			for (uint32_t k = 0; k < n; k++)
				for (uint32_t j = 0; j < ft->dim; j++)
				{
					double		w = table[(size_t) rows[k] * ft->dim + j];

					emb += w * w;
				}
		}
	}
	reg = m->arch.l2_embedding * emb / HB_ROWS;
	for (int t = 0; t < 2; t++)
		for (uint32_t l = 0; m->has_tower[t] && l < m->arch.tower[t].n_layers; l++)
		{
			const esmm_layer_ref *r = &m->layer[t][l];

			for (size_t i = 0; i < (size_t) r->in * r->out; i++)
			{
				double		w = m->params[r->W + i];

				reg += m->arch.tower[t].l1 * fabs(w) + m->arch.tower[t].l2 * w * w;
			}
		}
	return reg;
}

/* The data loss from the logits forward_backward left in the workspace. */
static double
expected_data_loss(const esmm_model *m, const hand_batch *hb)
{
	const int	both = m->has_tower[0] && m->has_tower[1];
	double		l1 = 0.0,
				l2 = 0.0;

	for (int b = 0; b < HB_ROWS; b++)
	{
		double		pctr = sigmoid(m->logit[0][b]);
		double		yc = hb->labels[b * 2],
					yv = hb->labels[b * 2 + 1];

		if (m->arch.loss == ESMM_LOSS_BCE)
			l1 -= yc * log(pctr) + (1 - yc) * log(1 - pctr);
		else
			l1 += (pctr - yc) * (pctr - yc);
		if (both)
		{
			double		p = pctr * sigmoid(m->logit[1][b]);

			if (m->arch.loss == ESMM_LOSS_BCE)
				l2 -= yv * log(p) + (1 - yv) * log(1 - p);
			else
				l2 += (p - yv) * (p - yv);
		}
	}
	return (m->arch.loss_weights[0] * l1 + m->arch.loss_weights[1] * l2) / HB_ROWS;
}

static void
gradient_check(esmm_model_kind kind, esmm_loss_kind loss, int label_is_ctcvr,
			   int steps_first, const char *what)
{
	esmm_schema s;
	esmm_arch	a;
	hand_batch	hb;
	esmm_model *m;
	float	   *an;
	double		obj,
				data = NAN;
	char		name[128];

	make_schema(&s);
	make_arch(&a, loss, 0.0f);	/* no dropout: its masks are random */
	a.label_is_ctcvr = (uint8_t) label_is_ctcvr;
	make_batch(&hb);
	m = new_model(&s, &a, kind, ESMM_OPTIM_ADAM, 0.0f, HB_ROWS, SEED);
	if (m == NULL)
		return;
	/* after optimizer steps too: the backward reads the kernels
	 * transposed, which must follow every step */
	for (int k = 0; k < steps_first; k++)
	{
		(void) esmm_model_forward_backward(m, &hb.b, NULL);
		esmm_model_step(m);
	}

	obj = esmm_model_forward_backward(m, &hb.b, &data);
	an = copy_floats(m->grads, m->n_params);
	CHECK(isfinite(obj) && isfinite(data), "%s: objective %g, data loss %g", what, obj, data);
	CHECK_NEAR(data, expected_data_loss(m, &hb), 1e-6 * fmax(1.0, data), "data loss from the logits");
	CHECK_NEAR(obj - data, expected_regularization(m, &hb), 1e-6, "regularization term");

	/* the embedding tables: every row, looked up or not */
	for (uint32_t f = 0; f < s.n_features; f++)
	{
		const esmm_feature *ft = &s.features[f];
		int			used = feature_used(m, f);
		double		max_used = 0.0,
					max_unused = 0.0;

		if (ft->kind == ESMM_FEAT_NUMERIC)
			continue;
		for (uint32_t r = 0; r <= ft->n_buckets; r++)
		{
			size_t		off = m->emb_off[f] + (size_t) r * ft->dim;
			int			hit = used && looked_up[f][r] == '1';

			snprintf(name, sizeof(name), "%s: table %s row %u", what, ft->name, r);
			if (hit)
			{
				double		g = check_fd_range(m, &hb.b, an, off, ft->dim, 0, name);

				max_used = fmax(max_used, g);
			}
			else
				max_unused = fmax(max_unused, max_abs(an + off, ft->dim));
		}
		CHECK(max_unused == 0.0, "%s: table %s has gradient %g on rows nobody looked up",
			  what, ft->name, max_unused);
		if (used)
			CHECK(max_used >= GRAD_FLOOR, "%s: table %s has no gradient (%g)",
				  what, ft->name, max_used);
		else
		{
			/* a table no tower reads: central differences must agree on 0 */
			snprintf(name, sizeof(name), "%s: unused table %s", what, ft->name);
			check_fd_range(m, &hb.b, an, m->emb_off[f],
						   ((size_t) ft->n_buckets + 1) * ft->dim, 0, name);
		}
	}

	/* the towers */
	for (int t = 0; t < 2; t++)
		for (uint32_t l = 0; m->has_tower[t] && l < a.tower[t].n_layers; l++)
		{
			const esmm_layer_ref *r = &m->layer[t][l];
			const char *tn = t == 0 ? "ctr" : "cvr";
			double		g;

			snprintf(name, sizeof(name), "%s: %s layer %u W", what, tn, l);
			g = check_fd_range(m, &hb.b, an, r->W, (size_t) r->in * r->out, 1, name);
			CHECK(g >= GRAD_FLOOR, "%s has no gradient (%g)", name, g);
			if (r->b != ESMM_NO_OFFSET)
			{
				snprintf(name, sizeof(name), "%s: %s layer %u b", what, tn, l);
				g = check_fd_range(m, &hb.b, an, r->b, r->out, 0, name);
				if (a.tower[t].layers[l].use_bn)
					/* batch norm subtracts the batch mean, bias included */
					CHECK(g < 1e-5, "%s in front of batch norm has gradient %g", name, g);
				else
					CHECK(g >= GRAD_FLOOR, "%s has no gradient (%g)", name, g);
			}
			if (r->gamma != ESMM_NO_OFFSET)
			{
				snprintf(name, sizeof(name), "%s: %s layer %u gamma", what, tn, l);
				g = check_fd_range(m, &hb.b, an, r->gamma, r->out, 0, name);
				CHECK(g >= GRAD_FLOOR, "%s has no gradient (%g)", name, g);
				snprintf(name, sizeof(name), "%s: %s layer %u beta", what, tn, l);
				g = check_fd_range(m, &hb.b, an, r->beta, r->out, 0, name);
				CHECK(g >= GRAD_FLOOR, "%s has no gradient (%g)", name, g);
			}
		}
	free(an);
	esmm_model_free(m);
}

static void
test_gradients(void)
{
	gradient_check(ESMM_KIND_ESMM, ESMM_LOSS_BCE, 0, 0, "esmm bce");
	gradient_check(ESMM_KIND_ESMM, ESMM_LOSS_MSE, 0, 0, "esmm mse");
	gradient_check(ESMM_KIND_ESMM, ESMM_LOSS_BCE, 1, 0, "esmm bce ctcvr-labels");
	gradient_check(ESMM_KIND_ESMM, ESMM_LOSS_MSE, 1, 0, "esmm mse ctcvr-labels");
	gradient_check(ESMM_KIND_ESMM_CTR, ESMM_LOSS_BCE, 0, 0, "ctr-only bce");
	gradient_check(ESMM_KIND_ESMM_CTR, ESMM_LOSS_MSE, 0, 0, "ctr-only mse");
	gradient_check(ESMM_KIND_ESMM, ESMM_LOSS_BCE, 0, 3, "esmm bce after 3 steps");
}

/*
 * forward_backward computes "the" gradient of the batch: calling it twice
 * on the same batch must give the same gradients, and the step after it
 * must still update the rows the batch looked up.
 */
static void
test_forward_backward_repeatable(void)
{
	esmm_schema s;
	esmm_arch	a;
	hand_batch	hb;
	esmm_model *m;
	float	   *g1,
			   *before;
	size_t		row;

	make_schema(&s);
	make_arch(&a, ESMM_LOSS_BCE, 0.0f);
	make_batch(&hb);
	m = new_model(&s, &a, ESMM_KIND_ESMM, ESMM_OPTIM_SGD, 0.1f, HB_ROWS, SEED);
	if (m == NULL)
		return;
	(void) esmm_model_forward_backward(m, &hb.b, NULL);
	g1 = copy_floats(m->grads, m->n_params);
	(void) esmm_model_forward_backward(m, &hb.b, NULL);
	CHECK(memcmp(g1, m->grads, m->n_params * sizeof(float)) == 0,
		  "a second forward_backward on the same batch changed the gradients "
		  "(ad row 1: %g then %g)", (double) g1[m->emb_off[0] + 3],
		  (double) m->grads[m->emb_off[0] + 3]);

	before = copy_floats(m->params, m->n_params);
	esmm_model_step(m);
	row = m->emb_off[0] + 1 * 3;	/* ad row 1, looked up twice */
	CHECK(memcmp(before + row, m->params + row, 3 * sizeof(float)) != 0,
		  "the step after two forward_backward calls left a looked-up row unchanged");
	CHECK(max_abs(m->grads, m->n_embedding) == 0.0,
		  "the step left embedding gradients behind (%g)", max_abs(m->grads, m->n_embedding));
	free(g1);
	free(before);
	esmm_model_free(m);
}

/* ---------------------------------------------------------- row blocks */

/* A batch of n rows cycling through the six hand rows. */
typedef struct big_batch
{
	int32_t    *ids;
	float	   *nums;
	float	   *labels;
	uint32_t   *multi_off;
	int32_t    *multi_ids;
	esmm_batch	b;
} big_batch;

static void
make_big_batch(big_batch *bb, int n)
{
	hand_batch	hb;
	uint32_t	at = 0;

	make_batch(&hb);
	bb->ids = malloc(sizeof(int32_t) * 2 * n);
	bb->nums = malloc(sizeof(float) * n);
	bb->labels = malloc(sizeof(float) * 2 * n);
	bb->multi_off = malloc(sizeof(uint32_t) * (n + 1));
	bb->multi_ids = malloc(sizeof(int32_t) * 3 * n);
	for (int r = 0; r < n; r++)
	{
		int			h = r % HB_ROWS;

		memcpy(bb->ids + 2 * r, hb.ids + 2 * h, 2 * sizeof(int32_t));
		memcpy(bb->labels + 2 * r, hb.labels + 2 * h, 2 * sizeof(float));
		/* vary the price so that no two blocks see the same rows */
		bb->nums[r] = isnan(hb.nums[h]) ? NAN : hb.nums[h] + 0.01f * (float) (r % 17);
		bb->multi_off[r] = at;
		for (uint32_t k = hb.multi_off[h]; k < hb.multi_off[h + 1]; k++)
			bb->multi_ids[at++] = hb.multi_ids[k];
	}
	bb->multi_off[n] = at;
	bb->b.B = n;
	bb->b.ids = bb->ids;
	bb->b.nums = bb->nums;
	bb->b.labels = bb->labels;
	bb->b.multi_off = bb->multi_off;
	bb->b.multi_ids = bb->multi_ids;
}

static void
free_big_batch(big_batch *bb)
{
	free(bb->ids);
	free(bb->nums);
	free(bb->labels);
	free(bb->multi_off);
	free(bb->multi_ids);
}

/*
 * A batch of three row blocks (ESMM_BLOCK_ROWS): its gradients agree with
 * central differences, and training and scoring give the same bits on one
 * thread and on two, with dropout too, for towers with their own inputs
 * and for towers that share one; scored in blocks, each row scores as it
 * does alone.
 */
static void
test_row_blocks(void)
{
	const int	B = 2 * ESMM_BLOCK_ROWS + 7;
	big_batch	bb;

	make_big_batch(&bb, B);
	for (int variant = 0; variant < 3; variant++)
	{
		const int	shared = variant == 1;
		const float dropout = variant == 2 ? 0.3f : 0.0f;
		esmm_schema s;
		esmm_arch	a;
		esmm_model *m;
		float	   *g1,
				   *p1,
				   *p2;
		double		obj1,
					obj2;
		char		name[96];

		make_schema(&s);
		make_arch(&a, ESMM_LOSS_BCE, dropout);
		/* batch norm in training takes the whole batch as one block */
		for (int t = 0; t < 2; t++)
			for (uint32_t l = 0; l < a.tower[t].n_layers; l++)
				a.tower[t].layers[l].use_bn = 0;
		if (shared)
		{
			a.tower[1].n_inputs = a.tower[0].n_inputs;
			memcpy(a.tower[1].inputs, a.tower[0].inputs, sizeof(a.tower[0].inputs));
		}
		m = new_model(&s, &a, ESMM_KIND_ESMM, ESMM_OPTIM_ADAM, 0.0f, B, SEED);
		if (m == NULL)
			break;
		CHECK(m->shared_input == shared, "variant %d: shared_input is %d", variant, m->shared_input);

		omp_set_num_threads(1);
		obj1 = esmm_model_forward_backward(m, &bb.b, NULL);
		g1 = copy_floats(m->grads, m->n_params);
		omp_set_num_threads(2);
		obj2 = esmm_model_forward_backward(m, &bb.b, NULL);
		CHECK(obj1 == obj2 && memcmp(g1, m->grads, m->n_params * sizeof(float)) == 0,
			  "variant %d: 1 and 2 threads differ (objective %.17g vs %.17g)", variant, obj1, obj2);

		p1 = malloc(sizeof(float) * 3 * B);
		p2 = malloc(sizeof(float) * 3 * B);
		omp_set_num_threads(1);
		esmm_model_predict(m, &bb.b, p1, p1 + B, p1 + 2 * B);
		omp_set_num_threads(2);
		esmm_model_predict(m, &bb.b, p2, p2 + B, p2 + 2 * B);
		CHECK(memcmp(p1, p2, sizeof(float) * 3 * B) == 0, "variant %d: scores differ by thread count",
			  variant);
		/* scoring threads run their blocks in a stretch of the workspace of
		 * their own (esmm_model_predict): each row still scores as it does
		 * alone, one row in one block through sgemv */
		{
			int			alone = 1;

			for (int b = 0; b < B; b++)
			{
				const float p[3] = {p2[b], p2[B + b], p2[2 * B + b]};

				alone &= scores_alone(m, &bb.b, b, p);
			}
			CHECK(alone, "variant %d: a row scored alone differs from its row block", variant);
		}

		/* dropout masks are drawn again per call: no central differences */
		if (dropout == 0.0f)
		{
			for (int t = 0; t < 2; t++)
				for (uint32_t l = 0; l < a.tower[t].n_layers; l++)
				{
					const esmm_layer_ref *r = &m->layer[t][l];
					double		g;

					snprintf(name, sizeof(name), "row blocks variant %d: tower %d layer %u W", variant, t, l);
					g = check_fd_range(m, &bb.b, g1, r->W, (size_t) r->in * r->out, 1, name);
					CHECK(g >= GRAD_FLOOR, "%s has no gradient (%g)", name, g);
				}
			snprintf(name, sizeof(name), "row blocks variant %d: ad row 1", variant);
			CHECK(check_fd_range(m, &bb.b, g1, m->emb_off[0] + 3, 3, 0, name) >= GRAD_FLOOR,
				  "%s has no gradient", name);
		}
		free(g1);
		free(p1);
		free(p2);
		esmm_model_free(m);
	}
	free_big_batch(&bb);
}

/*
 * Dense parameters above the size at which the row blocks' gradient sum
 * and the optimizer step go to the threads, cut into one chunk per thread
 * with a short last one: gradients and the stepped parameters have the
 * same bits on one thread and on two, and the chunked step equals one
 * esmm_optim_step over the whole dense region, its naive twin.
 */
static void
test_parallel_chunks(void)
{
	const int	B = 2 * ESMM_BLOCK_ROWS + 7;
	big_batch	bb;
	esmm_schema s;
	esmm_arch	a;
	esmm_model *m[2] = {NULL, NULL};
	float	   *g[2] = {NULL, NULL},
			   *p[2] = {NULL, NULL};
	size_t		dense = 0;

	make_big_batch(&bb, B);
	make_schema(&s);
	make_arch(&a, ESMM_LOSS_BCE, 0.0f);
	for (int t = 0; t < 2; t++)
	{
		a.tower[t].layers[0].units = 96;
		a.tower[t].layers[1].units = 40;
		for (uint32_t l = 0; l < a.tower[t].n_layers; l++)
			a.tower[t].layers[l].use_bn = 0;
	}
	for (int i = 0; i < 2; i++)
	{
		esmm_optim_coef c;
		float	   *w,
				   *m1,
				   *m2;

		m[i] = new_model(&s, &a, ESMM_KIND_ESMM, ESMM_OPTIM_ADAM, 0.01f, B, SEED);
		if (m[i] == NULL)
			break;
		dense = m[i]->n_params - m[i]->n_embedding;
		omp_set_num_threads(i + 1);
		esmm_model_forward_backward(m[i], &bb.b, NULL);
		g[i] = copy_floats(m[i]->grads, m[i]->n_params);
		/* the naive twin: Adam over the whole dense region in one call */
		w = copy_floats(m[i]->params + m[i]->n_embedding, dense);
		m1 = copy_floats(m[i]->m1 + m[i]->n_embedding, dense);
		m2 = copy_floats(m[i]->m2 + m[i]->n_embedding, dense);
		esmm_optim_begin(&c, &m[i]->optim, m[i]->step + 1);
		esmm_optim_apply(&c, w, m[i]->grads + m[i]->n_embedding, m1, m2, dense);
		esmm_model_step(m[i]);
		p[i] = copy_floats(m[i]->params, m[i]->n_params);
		CHECK(memcmp(w, m[i]->params + m[i]->n_embedding, dense * sizeof(float)) == 0 &&
			  memcmp(m1, m[i]->m1 + m[i]->n_embedding, dense * sizeof(float)) == 0,
			  "%d thread(s): the chunked step differs from one Adam call", i + 1);
		free(w);
		free(m1);
		free(m2);
	}
	omp_set_num_threads(1);
	if (m[0] != NULL && m[1] != NULL)
	{
		CHECK(dense >= ESMM_PARALLEL_MIN_FLOATS && dense % (2 * ESMM_PARALLEL_ALIGN) != 0,
			  "%zu dense parameters do not make two chunks and a partial one", dense);
		CHECK(memcmp(g[0], g[1], m[0]->n_params * sizeof(float)) == 0,
			  "gradients differ between 1 and 2 threads");
		CHECK(memcmp(p[0], p[1], m[0]->n_params * sizeof(float)) == 0,
			  "stepped parameters differ between 1 and 2 threads");
	}
	for (int i = 0; i < 2; i++)
	{
		free(g[i]);
		free(p[i]);
		esmm_model_free(m[i]);
	}
	free_big_batch(&bb);
}

/* ------------------------------------------------------ initialization */

static void
test_init(void)
{
	esmm_schema s;
	esmm_arch	a;
	esmm_model *m1 = NULL,
			   *m2 = NULL,
			   *m3 = NULL;
	esmm_status st;

	/* identical towers: same inputs, same layers, so W shapes match */
	make_schema(&s);
	make_arch(&a, ESMM_LOSS_BCE, 0.0f);
	a.tower[ESMM_TOWER_CVR] = a.tower[ESMM_TOWER_CTR];
	if (esmm_model_create(&m1, &s, &a, ESMM_KIND_ESMM, &st) != ESMM_OK ||
		esmm_model_create(&m2, &s, &a, ESMM_KIND_ESMM, &st) != ESMM_OK ||
		esmm_model_create(&m3, &s, &a, ESMM_KIND_ESMM, &st) != ESMM_OK)
	{
		CHECK(0, "create: %s", st.msg);
		goto out;
	}
	esmm_model_init(m1, SEED);
	esmm_model_init(m2, SEED);
	esmm_model_init(m3, SEED + 1);

	for (uint32_t l = 0; l < a.tower[0].n_layers; l++)
	{
		const esmm_layer_ref *r0 = &m1->layer[0][l],
				   *r1 = &m1->layer[1][l];

		CHECK(r0->in == r1->in && r0->out == r1->out, "layer %u shapes differ", l);
		CHECK(memcmp(m1->params + r0->W, m1->params + r1->W,
					 (size_t) r0->in * r0->out * sizeof(float)) != 0,
			  "the two towers start from the same W at layer %u", l);
	}

	CHECK(m1->n_params == m2->n_params && m1->n_state == m2->n_state, "same layout");
	CHECK(memcmp(m1->params, m2->params, m1->n_params * sizeof(float)) == 0,
		  "the same seed gives different parameters");
	CHECK(memcmp(m1->state, m2->state, m1->n_state * sizeof(float)) == 0,
		  "the same seed gives different statistics");
	CHECK(memcmp(m1->params, m3->params, m1->n_params * sizeof(float)) != 0,
		  "another seed gives the same parameters");
	for (uint32_t f = 0; f < s.n_features; f++)
		if (m1->emb_off[f] != ESMM_NO_OFFSET)
			CHECK(memcmp(m1->params + m1->emb_off[f], m3->params + m3->emb_off[f],
						 s.features[f].dim * sizeof(float)) != 0,
				  "another seed gives the same table %u", f);

	/* the documented distributions */
	{
		double		emb_max = max_abs(m1->params, m1->n_embedding);
		int			ok_bias = 1,
					ok_bn = 1,
					ok_w = 1;

		CHECK(emb_max <= 0.05 && emb_max > 0.03, "tables uniform(-0.05, 0.05), max |w| %g", emb_max);
		for (int t = 0; t < 2; t++)
			for (uint32_t l = 0; l < a.tower[t].n_layers; l++)
			{
				const esmm_layer_ref *r = &m1->layer[t][l];
				double		limit = sqrt(6.0 / (r->in + r->out));
				double		wmax = max_abs(m1->params + r->W, (size_t) r->in * r->out);

				/* every W has >= 3 entries, so its max is well inside the limit */
				ok_w &= wmax <= limit && wmax > 0.2 * limit;
				for (uint32_t j = 0; j < r->out; j++)
				{
					if (r->b != ESMM_NO_OFFSET)
						ok_bias &= m1->params[r->b + j] == 0.0f;
					if (r->gamma != ESMM_NO_OFFSET)
						ok_bn &= m1->params[r->gamma + j] == 1.0f &&
							m1->params[r->beta + j] == 0.0f &&
							m1->state[r->run_mean + j] == 0.0f &&
							m1->state[r->run_var + j] == 1.0f;
				}
			}
		CHECK(ok_w, "kernels are Glorot uniform");
		CHECK(ok_bias, "biases start at 0");
		CHECK(ok_bn, "gamma 1, beta 0, running mean 0, running variance 1");
	}

	/* init overwrites whatever was there: re-init gives the seed's values */
	for (size_t i = 0; i < m3->n_params; i++)
		m3->params[i] = 7.0f;
	esmm_model_init(m3, SEED);
	CHECK(memcmp(m1->params, m3->params, m1->n_params * sizeof(float)) == 0,
		  "init does not fully overwrite the parameters");
out:
	esmm_model_free(m1);
	esmm_model_free(m2);
	esmm_model_free(m3);
}

/* ------------------------------------------------------- sparse updates */

/* Whether row r of feature f is identical in two snapshots. */
static int
row_same(const esmm_model *m, uint32_t f, uint32_t r, const float *a, const float *b)
{
	size_t		dim = m->schema.features[f].dim;
	size_t		off = m->emb_off[f] + r * dim;

	return memcmp(a + off, b + off, dim * sizeof(float)) == 0;
}

static void
test_sparse_updates(void)
{
	esmm_schema s;
	esmm_arch	a;
	hand_batch	hb,
				hb2;
	esmm_model *m;
	float	   *p0,
			   *m10,
			   *m20,
			   *p1;
	int			bad_untouched = 0,
				bad_touched = 0,
				bad_lazy = 0;

	make_schema(&s);
	make_arch(&a, ESMM_LOSS_BCE, 0.0f);
	make_batch(&hb);
	m = new_model(&s, &a, ESMM_KIND_ESMM, ESMM_OPTIM_ADAM, 0.01f, HB_ROWS, SEED);
	if (m == NULL)
		return;
	p0 = copy_floats(m->params, m->n_params);
	m10 = copy_floats(m->m1, m->n_params);
	m20 = copy_floats(m->m2, m->n_params);

	(void) esmm_model_forward_backward(m, &hb.b, NULL);
	esmm_model_step(m);
	CHECK(m->step == 1, "one step taken, step = %llu", (unsigned long long) m->step);

	for (uint32_t f = 0; f < s.n_features; f++)
	{
		if (m->emb_off[f] == ESMM_NO_OFFSET)
			continue;
		for (uint32_t r = 0; r <= s.features[f].n_buckets; r++)
		{
			int			same = row_same(m, f, r, p0, m->params) &&
				row_same(m, f, r, m10, m->m1) && row_same(m, f, r, m20, m->m2);

			if (looked_up[f][r] == '1')
				bad_touched += same || row_same(m, f, r, p0, m->params);
			else
				bad_untouched += !same;
		}
	}
	CHECK(bad_untouched == 0, "%d rows nobody looked up changed", bad_untouched);
	CHECK(bad_touched == 0, "%d looked-up rows did not move", bad_touched);
	CHECK(max_abs(m->grads, m->n_embedding) == 0.0,
		  "the step did not clear the embedding gradients (%g)",
		  max_abs(m->grads, m->n_embedding));
	/* the dense region is updated whole */
	for (int t = 0; t < 2; t++)
		CHECK(memcmp(p0 + m->layer[t][0].W, m->params + m->layer[t][0].W,
					 sizeof(float)) != 0, "tower %d's first kernel did not move", t);

	/*
	 * A second batch over rows the first never saw: the first batch's rows
	 * keep their weights and moments (lazy Adam, no decay while unseen).
	 * Two rows: ad {4, 5}, user {3, 3}, tags {{4}, {4}}.
	 */
	p1 = copy_floats(m->params, m->n_params);
	memcpy(m10, m->m1, m->n_params * sizeof(float));
	memcpy(m20, m->m2, m->n_params * sizeof(float));
	make_batch(&hb2);
	hb2.b.B = 2;
	hb2.ids[0] = 4;
	hb2.ids[1] = 3;
	hb2.ids[2] = 5;
	hb2.ids[3] = 3;
	hb2.multi_off[0] = 0;
	hb2.multi_off[1] = 1;
	hb2.multi_off[2] = 2;
	hb2.multi_ids[0] = 4;
	hb2.multi_ids[1] = 4;
	(void) esmm_model_forward_backward(m, &hb2.b, NULL);
	esmm_model_step(m);
	for (uint32_t f = 0; f < s.n_features; f++)
		for (uint32_t r = 0; m->emb_off[f] != ESMM_NO_OFFSET && r <= s.features[f].n_buckets; r++)
		{
			int			second = (f == 0 && (r == 4 || r == 5)) || (f == 1 && r == 3) ||
				(f == 3 && r == 4);
			int			same = row_same(m, f, r, p1, m->params) &&
				row_same(m, f, r, m10, m->m1) && row_same(m, f, r, m20, m->m2);

			bad_lazy += second ? row_same(m, f, r, p1, m->params) : !same;
		}
	CHECK(bad_lazy == 0, "%d rows broke lazy updates in the second step", bad_lazy);

	free(p0);
	free(p1);
	free(m10);
	free(m20);
	esmm_model_free(m);
}

/* ------------------------------------------------------------ datasets */

typedef struct test_data
{
	esmm_dataset ds;
	esmm_chunk	chunks[2];
} test_data;

/* Allocates chunk c for rows rows of ds's widths, zeroed; multi lists
 * empty until filled. */
static void
alloc_chunk(esmm_chunk *c, const esmm_dataset *ds, size_t rows, size_t multi_cap)
{
	c->ids = calloc(rows * ds->n_ids + 1, sizeof(int32_t));
	c->nums = calloc(rows * ds->n_nums + 1, sizeof(float));
	c->labels = calloc(rows * ds->n_labels + 1, sizeof(float));
	c->multi_off = calloc(rows * ds->n_multi + 1, sizeof(uint32_t));
	c->multi_ids = calloc(multi_cap + 1, sizeof(int32_t));
	c->multi_cap = multi_cap;
}

static void
free_data(test_data *d)
{
	for (size_t i = 0; i < d->ds.n_chunks; i++)
	{
		free(d->chunks[i].ids);
		free(d->chunks[i].nums);
		free(d->chunks[i].labels);
		free(d->chunks[i].multi_off);
		free(d->chunks[i].multi_ids);
	}
}

/*
 * n rows (< one chunk) for make_schema: the click depends on the ad and
 * on the price, the conversion (given a click) on the user; tags are
 * noise.  Labels are (click, click AND conversion).
 */
static void
make_training_data(test_data *d, size_t n)
{
	static const double ad_effect[7] = {-2.0, -1.0, 0.0, 1.0, 2.0, -1.5, 1.5};
	static const double user_effect[6] = {-2.0, 1.0, -1.0, 2.0, 0.0, 0.0};
	esmm_chunk *c = &d->chunks[0];
	uint32_t	used = 0;

	memset(d, 0, sizeof(*d));
	d->ds.n_ids = 2;
	d->ds.n_nums = 1;
	d->ds.n_labels = 2;
	d->ds.n_multi = 1;
	d->ds.n_rows = n;
	d->ds.n_chunks = 1;
	d->ds.chunks = d->chunks;
	alloc_chunk(c, &d->ds, n, n * 3);
	data_rng = UINT64_C(12345);
	for (size_t r = 0; r < n; r++)
	{
		int32_t		ad = (int32_t) below(7);
		int32_t		user = uniform01() < 0.1 ? 5 : (int32_t) below(5);
		int			null_price = uniform01() < 0.1;
		double		price = -3.0 + 6.0 * uniform01();
		int			click = uniform01() < sigmoid(ad_effect[ad] + (null_price ? 0.0 : 0.8 * price));
		int			conv = click && uniform01() < sigmoid(user_effect[user] - 0.5);
		uint32_t	n_tags = below(4);

		c->ids[r * 2] = ad;
		c->ids[r * 2 + 1] = user;
		/* raw prices around 0.5 with spread 2, like the schema's statistics */
		c->nums[r] = null_price ? NAN : (float) (0.5 + price * 2.0 / 1.7);
		c->labels[r * 2] = (float) click;
		c->labels[r * 2 + 1] = (float) conv;
		c->multi_off[r] = used;
		for (uint32_t k = 0; k < n_tags; k++)
			c->multi_ids[used++] = (int32_t) below(6);
	}
	c->multi_off[n] = used;
}

/* --------------------------------------------------------------- training */

typedef struct progress_log
{
	int			calls;
	int			end_calls;
	int			cancel_at;		/* cancel on this call; 0: never */
	int			bad;			/* inconsistent reports */
	uint64_t	last_batch;
	uint64_t	rows;			/* expected rows per epoch */
	double		end_loss[8];
	double		first_loss;		/* running loss after the first batch */
} progress_log;

static int
record_progress(void *arg, const esmm_progress *p)
{
	progress_log *log = arg;

	log->calls++;
	if (!isfinite(p->running_loss) || p->running_loss <= 0.0)
		log->bad++;
	if (p->end_of_epoch)
	{
		if (p->epoch >= 1 && p->epoch <= 8)
			log->end_loss[p->epoch - 1] = p->running_loss;
		if (p->rows_done != log->rows || p->batch != p->batches)
			log->bad++;
		log->end_calls++;
		log->last_batch = 0;
	}
	else
	{
		if (p->batch != log->last_batch + 1 || p->batch > p->batches ||
			p->rows_done > log->rows)
			log->bad++;
		if (p->epoch == 1 && p->batch == 1)
			log->first_loss = p->running_loss;
		log->last_batch = p->batch;
	}
	return log->cancel_at != 0 && log->calls == log->cancel_at;
}

/* The data loss of a model that ignores its inputs: the label rates. */
static double
constant_predictor_loss(const test_data *d, const esmm_arch *a)
{
	double		yc = 0.0,
				yv = 0.0,
				n = (double) d->ds.n_rows;

	for (size_t r = 0; r < d->ds.n_rows; r++)
	{
		yc += d->chunks[0].labels[r * 2];
		yv += d->chunks[0].labels[r * 2 + 1];
	}
	yc /= n;
	yv /= n;
	return -a->loss_weights[0] * (yc * log(yc) + (1 - yc) * log(1 - yc))
		- a->loss_weights[1] * (yv * log(yv) + (1 - yv) * log(1 - yv));
}

/* AUC of pctr against clicks and of pctcvr against ctcvr on the data. */
static void
training_auc(esmm_model *m, const test_data *d, double *auc_ctr, double *auc_ctcvr)
{
	size_t		n = d->ds.n_rows;
	const esmm_chunk *c = &d->chunks[0];
	double	   *pos[2],
			   *neg[2];
	size_t		np[2] = {0, 0},
				nn[2] = {0, 0};
	float		pctr[64],
				pctcvr[64];

	for (int k = 0; k < 2; k++)
	{
		pos[k] = malloc(n * sizeof(double));
		neg[k] = malloc(n * sizeof(double));
	}
	for (size_t start = 0; start < n; start += 64)
	{
		esmm_batch	b;

		b.B = (int) (n - start < 64 ? n - start : 64);
		b.ids = c->ids + start * 2;
		b.nums = c->nums + start;
		b.labels = NULL;
		b.multi_off = c->multi_off + start;	/* absolute offsets */
		b.multi_ids = c->multi_ids;
		esmm_model_predict(m, &b, pctr, NULL, pctcvr);
		for (int i = 0; i < b.B; i++)
		{
			const float *y = c->labels + (start + i) * 2;

			if (y[0] > 0.5f)
				pos[0][np[0]++] = pctr[i];
			else
				neg[0][nn[0]++] = pctr[i];
			if (y[1] > 0.5f)
				pos[1][np[1]++] = pctcvr[i];
			else
				neg[1][nn[1]++] = pctcvr[i];
		}
	}
	*auc_ctr = esmm_auc(pos[0], np[0], neg[0], nn[0]);
	*auc_ctcvr = esmm_auc(pos[1], np[1], neg[1], nn[1]);
	for (int k = 0; k < 2; k++)
	{
		free(pos[k]);
		free(neg[k]);
	}
}

static esmm_model *
train_once(const test_data *d, uint64_t shuffle_seed, progress_log *log,
		   esmm_code *rc, esmm_status *st)
{
	esmm_schema s;
	esmm_arch	a;
	esmm_model *m;
	esmm_train_spec ts;

	make_schema(&s);
	make_arch(&a, ESMM_LOSS_BCE, 0.1f);
	m = new_model(&s, &a, ESMM_KIND_ESMM, ESMM_OPTIM_ADAM, 0.01f, 64, SEED);
	if (m == NULL)
		return NULL;
	ts = shuffled_spec(64, 3, shuffle_seed);
	ts.optim = m->optim;
	esmm_status_clear(st);
	*rc = esmm_model_train(m, &d->ds, &ts, record_progress, log, st);
	return m;
}

static void
test_training(void)
{
	test_data	d;
	progress_log log1,
				log2,
				log3;
	esmm_model *m1,
			   *m2,
			   *m3;
	esmm_status st;
	esmm_code	rc;
	esmm_arch	a;
	const size_t n = 3000;

	make_training_data(&d, n);
	make_arch(&a, ESMM_LOSS_BCE, 0.1f);

	memset(&log1, 0, sizeof(log1));
	log1.rows = n;
	m1 = train_once(&d, SEED, &log1, &rc, &st);
	if (m1 == NULL)
	{
		free_data(&d);
		return;
	}
	CHECK(rc == ESMM_OK, "training failed: %s", st.msg);
	CHECK(m1->report.n_epochs == 3, "history has %u epochs", m1->report.n_epochs);
	if (m1->report.n_epochs == 3)
	{
		const esmm_history_epoch *e = m1->report.epochs;
		double		base = constant_predictor_loss(&d, &a);

		/* epochs 2 and 3 sit near the noise floor: only compare with epoch 1 */
		CHECK(e[1].train_loss < e[0].train_loss && e[2].train_loss < e[0].train_loss,
			  "epoch losses do not decrease: %g %g %g",
			  e[0].train_loss, e[1].train_loss, e[2].train_loss);
		/* the features explain the labels: beat predicting the label rates */
		CHECK(e[2].train_loss < 0.9 * base, "epoch 3 loss %g vs constant predictor %g",
			  e[2].train_loss, base);
		for (int k = 0; k < 3; k++)
		{
			CHECK(e[k].epoch == (uint32_t) k + 1 && e[k].rows == n && e[k].seconds >= 0.0,
				  "epoch %d: number %u rows %llu seconds %g", k + 1, e[k].epoch,
				  (unsigned long long) e[k].rows, e[k].seconds);
			CHECK_NEAR(log1.end_loss[k], e[k].train_loss, 1e-12,
					   "the end-of-epoch running loss is the epoch loss");
		}
		CHECK(log1.first_loss > e[2].train_loss, "first batch loss %g, last epoch %g",
			  log1.first_loss, e[2].train_loss);
	}
	CHECK(log1.end_calls == 3 && log1.calls == 3 * (47 + 1),
		  "progress called %d times, %d at epoch ends", log1.calls, log1.end_calls);
	CHECK(log1.bad == 0, "%d inconsistent progress reports", log1.bad);
	CHECK(m1->step == 3 * 47, "optimizer steps %llu", (unsigned long long) m1->step);
	{
		double		auc_ctr,
					auc_ctcvr;

		training_auc(m1, &d, &auc_ctr, &auc_ctcvr);
		CHECK(auc_ctr > 0.75, "pctr AUC on the training data %g", auc_ctr);
		CHECK(auc_ctcvr > 0.65, "pctcvr AUC on the training data %g", auc_ctcvr);
	}

	/* the same seeds again: bit-identical, dropout and shuffling included */
	memset(&log2, 0, sizeof(log2));
	log2.rows = n;
	m2 = train_once(&d, SEED, &log2, &rc, &st);
	if (m2 != NULL)
	{
		CHECK(rc == ESMM_OK, "second training failed: %s", st.msg);
		CHECK(memcmp(m1->params, m2->params, m1->n_params * sizeof(float)) == 0,
			  "training twice with one seed gives different parameters");
		CHECK(memcmp(m1->state, m2->state, m1->n_state * sizeof(float)) == 0,
			  "training twice with one seed gives different statistics");
		CHECK(m2->report.n_epochs == 3 &&
			  m2->report.epochs[2].train_loss == m1->report.epochs[2].train_loss,
			  "training twice with one seed gives different losses");
		esmm_model_free(m2);
	}

	/* another shuffling seed (same init and dropout seeds): other batches */
	memset(&log2, 0, sizeof(log2));
	log2.rows = n;
	m2 = train_once(&d, SEED + 1, &log2, &rc, &st);
	if (m2 != NULL)
	{
		CHECK(rc == ESMM_OK, "third training failed: %s", st.msg);
		CHECK(memcmp(m1->params, m2->params, m1->n_params * sizeof(float)) != 0,
			  "the shuffling seed does not change the batches");
		esmm_model_free(m2);
	}

	/* a progress callback that says stop */
	memset(&log3, 0, sizeof(log3));
	log3.rows = n;
	log3.cancel_at = 3;
	m3 = train_once(&d, SEED, &log3, &rc, &st);
	if (m3 != NULL)
	{
		CHECK(rc == ESMM_ERR_CANCELED, "cancel returned %d", (int) rc);
		CHECK(st.code == ESMM_ERR_CANCELED && st.msg[0] != '\0', "cancel status %d \"%s\"",
			  (int) st.code, st.msg);
		CHECK(log3.calls == 3, "progress called %d times after canceling at 3", log3.calls);
		CHECK(m3->report.n_epochs == 0, "a canceled epoch entered the history");
		esmm_model_free(m3);
	}

	/* a buffer of another shape is refused */
	{
		esmm_dataset bad = d.ds;
		esmm_train_spec ts;

		memset(&ts, 0, sizeof(ts));
		ts.epochs = 1;
		bad.n_nums = 2;
		esmm_status_clear(&st);
		CHECK(esmm_model_train(m1, &bad, &ts, NULL, NULL, &st) == ESMM_ERR_ARGUMENT &&
			  st.msg[0] != '\0', "a mismatched buffer was accepted");
		bad = d.ds;
		bad.n_rows = 0;
		esmm_status_clear(&st);
		CHECK(esmm_model_train(m1, &bad, &ts, NULL, NULL, &st) == ESMM_ERR_ARGUMENT &&
			  st.msg[0] != '\0', "an empty buffer was accepted");
	}
	esmm_model_free(m1);
	free_data(&d);
}

/* -------------------------------------------------------------- scoring */

static void
test_predict(void)
{
	esmm_schema s;
	esmm_arch	a;
	hand_batch	hb;
	esmm_model *m,
			   *ctr;
	float		pctr[HB_ROWS],
				pcvr[HB_ROWS],
				pctcvr[HB_ROWS];
	int			in_range = 1,
				product = 1,
				alone = 1;

	make_schema(&s);
	make_arch(&a, ESMM_LOSS_BCE, 0.2f);
	make_batch(&hb);
	m = new_model(&s, &a, ESMM_KIND_ESMM, ESMM_OPTIM_ADAM, 0.05f, HB_ROWS, SEED);
	if (m == NULL)
		return;
	/* a few steps, so that batch norm's running statistics are not 0/1 */
	for (int i = 0; i < 5; i++)
	{
		(void) esmm_model_forward_backward(m, &hb.b, NULL);
		esmm_model_step(m);
	}
	esmm_model_predict(m, &hb.b, pctr, pcvr, pctcvr);
	for (int b = 0; b < HB_ROWS; b++)
	{
		in_range &= pctr[b] >= 0.0f && pctr[b] <= 1.0f && pcvr[b] >= 0.0f &&
			pcvr[b] <= 1.0f && pctcvr[b] >= 0.0f && pctcvr[b] <= 1.0f;
		product &= fabs((double) pctcvr[b] - (double) pctr[b] * pcvr[b]) <= 1e-7;
	}
	CHECK(in_range, "a probability outside [0, 1]");
	CHECK(product, "pctcvr is not pctr * pcvr");

	/*
	 * Inference is row by row (batch norm on running statistics, no
	 * dropout): each row scored alone matches the batch, and scoring twice
	 * gives the same numbers.
	 */
	for (int b = 0; b < HB_ROWS; b++)
	{
		const float p[3] = {pctr[b], pcvr[b], pctcvr[b]};

		alone &= scores_alone(m, &hb.b, b, p);
	}
	CHECK(alone, "a row scored alone differs from the same row in a batch");
	{
		float		again[HB_ROWS];

		esmm_model_predict(m, &hb.b, NULL, NULL, again);
		CHECK(memcmp(again, pctcvr, sizeof(again)) == 0, "scoring is not repeatable");
	}

	/*
	 * An id outside a table reads the missing row (esmm_model.c, clamp_id):
	 * for a list of the multi feature too.  Row 0's tags {0, 2} become
	 * {0, 7}, 7 being past the table's last row (6, the missing id), and
	 * must score as {0, 6}.
	 */
	{
		hand_batch	h1,
					h2;
		float		q1[HB_ROWS],
					q2[HB_ROWS];

		make_batch(&h1);
		make_batch(&h2);
		h1.multi_ids[1] = 7;
		h2.multi_ids[1] = 6;
		esmm_model_predict(m, &h1.b, q1, NULL, NULL);
		esmm_model_predict(m, &h2.b, q2, NULL, NULL);
		CHECK(q1[0] == q2[0], "multi id past the table scores %.7g, the missing row %.7g",
			  (double) q1[0], (double) q2[0]);
		/* the categorical path clamps: ad 99 scores as ad 7, the missing row */
		make_batch(&h1);
		make_batch(&h2);
		h1.ids[0] = 99;
		h2.ids[0] = 7;
		esmm_model_predict(m, &h1.b, q1, NULL, NULL);
		esmm_model_predict(m, &h2.b, q2, NULL, NULL);
		CHECK(q1[0] == q2[0], "categorical id past the table scores %.7g, the missing row %.7g",
			  (double) q1[0], (double) q2[0]);
	}
	esmm_model_free(m);

	/* the CTR tower alone: no pCVR, so no pCTCVR */
	ctr = new_model(&s, &a, ESMM_KIND_ESMM_CTR, ESMM_OPTIM_ADAM, 0.0f, HB_ROWS, SEED);
	if (ctr == NULL)
		return;
	esmm_model_predict(ctr, &hb.b, pctr, pcvr, pctcvr);
	in_range = 1;
	product = 1;
	for (int b = 0; b < HB_ROWS; b++)
	{
		in_range &= pctr[b] >= 0.0f && pctr[b] <= 1.0f;
		product &= isnan(pcvr[b]) && isnan(pctcvr[b]);
	}
	CHECK(in_range, "ctr-only pctr outside [0, 1]");
	CHECK(product, "ctr-only model gives a pcvr or pctcvr that is not NaN");
	esmm_model_free(ctr);

	/* the CVR tower alone (an export): pcvr only */
	{
		esmm_model *cvr = NULL;
		esmm_status st;

		esmm_status_clear(&st);
		if (esmm_model_create(&cvr, &s, &a, ESMM_KIND_ESMM_CVR, &st) != ESMM_OK ||
			esmm_model_workspace(cvr, HB_ROWS, &st) != ESMM_OK)
		{
			CHECK(0, "cvr-only model: %s", st.msg);
			esmm_model_free(cvr);
			return;
		}
		esmm_model_init(cvr, SEED);
		esmm_model_predict(cvr, &hb.b, pctr, pcvr, pctcvr);
		in_range = 1;
		product = 1;
		for (int b = 0; b < HB_ROWS; b++)
		{
			in_range &= pcvr[b] >= 0.0f && pcvr[b] <= 1.0f;
			product &= isnan(pctr[b]) && isnan(pctcvr[b]);
		}
		CHECK(in_range, "cvr-only pcvr outside [0, 1]");
		CHECK(product, "cvr-only model gives a pctr or pctcvr that is not NaN");
		esmm_model_free(cvr);
	}
}

/*
 * The tower inputs, from the schema's definition: each tower's features
 * concatenated in its input order; a table's row (the missing row for
 * NULL or an empty list, the mean of the rows for a list); a numeric
 * value standardized, 0 for NULL, then its NULL indicator.
 */
static void
test_input_assembly(void)
{
	esmm_schema s;
	esmm_arch	a;
	hand_batch	hb;
	esmm_model *m = NULL;
	esmm_status st;
	float		p[HB_ROWS];
	int			bad = 0;
	double		worst = 0.0;

	make_schema(&s);
	make_arch(&a, ESMM_LOSS_BCE, 0.0f);
	make_batch(&hb);
	esmm_status_clear(&st);
	if (esmm_model_create(&m, &s, &a, ESMM_KIND_ESMM, &st) != ESMM_OK ||
		esmm_model_workspace(m, HB_ROWS, &st) != ESMM_OK)
	{
		CHECK(0, "create: %s", st.msg);
		esmm_model_free(m);
		return;
	}
	esmm_model_init(m, SEED);
	esmm_model_predict(m, &hb.b, p, NULL, NULL);
	for (int t = 0; t < 2; t++)
	{
		const esmm_tower_spec *tw = &a.tower[t];
		const uint32_t D = m->tower_in[t];

		for (int b = 0; b < HB_ROWS; b++)
		{
			uint32_t	c = 0;

			for (uint32_t i = 0; i < tw->n_inputs; i++)
			{
				uint32_t	f = tw->inputs[i];
				const esmm_feature *ft = &s.features[f];
				double		want[4] = {0, 0, 0, 0};
				uint32_t	w = ft->kind == ESMM_FEAT_NUMERIC ? 2 : ft->dim;

				if (ft->kind == ESMM_FEAT_NUMERIC)
				{
					float		raw = hb.nums[b];

					want[0] = isnan(raw) ? 0.0 : (raw - 0.5) / 2.0;
					want[1] = isnan(raw) ? 1.0 : 0.0;
				}
				else
				{
					uint32_t	lo,
								hi;
					int32_t		one;
					const int32_t *ids;

					if (ft->kind == ESMM_FEAT_CATEGORICAL)
					{
						one = hb.ids[b * 2 + (f == 0 ? 0 : 1)];
						ids = &one;
						lo = 0;
						hi = 1;
					}
					else
					{
						ids = hb.multi_ids;
						lo = hb.multi_off[b];
						hi = hb.multi_off[b + 1];
						if (lo == hi)
						{
							one = (int32_t) ft->n_buckets;
							ids = &one;
							lo = 0;
							hi = 1;
						}
					}
					for (uint32_t k = lo; k < hi; k++)
						for (uint32_t j = 0; j < ft->dim; j++)
							want[j] += m->params[m->emb_off[f] + (size_t) ids[k] * ft->dim + j] /
								(double) (hi - lo);
				}
				for (uint32_t j = 0; j < w; j++)
				{
					double		err = fabs(m->input[t][(size_t) b * D + c + j] - want[j]);

					bad += !(err <= 1e-6);
					worst = fmax(worst, err);
				}
				c += w;
			}
			bad += c != D;
		}
	}
	CHECK(bad == 0, "%d tower inputs differ from the schema's definition (worst by %g)", bad, worst);
	esmm_model_free(m);
}

/* --------------------------------------------------- crash-prone paths */

/*
 * A CVR-only model is a kind esmm_model_create accepts, but its loss needs
 * pctr: training must be refused with a message, or else work; it must
 * never crash (it once read the missing CTR tower's NULL logits).
 */
static int
cvr_only_step(void *arg)
{
	esmm_schema s;
	esmm_arch	a;
	hand_batch	hb;
	esmm_model *m = NULL;
	esmm_status st;
	esmm_optim_spec o;
	esmm_code	rc;
	double		l;

	(void) arg;
	make_schema(&s);
	make_arch(&a, ESMM_LOSS_BCE, 0.0f);
	make_batch(&hb);
	esmm_status_clear(&st);
	if (esmm_model_create(&m, &s, &a, ESMM_KIND_ESMM_CVR, &st) != ESMM_OK)
		return 2;
	esmm_model_init(m, SEED);
	esmm_optim_defaults(&o, ESMM_OPTIM_ADAM);
	rc = esmm_model_train_begin(m, &o, HB_ROWS, SEED, &st);
	if (rc != ESMM_OK)
		return rc == ESMM_ERR_ARGUMENT && st.msg[0] != '\0' ? 0 : 5;
	l = esmm_model_forward_backward(m, &hb.b, NULL);
	esmm_model_step(m);
	return isfinite(l) ? 0 : 3;
}

/*
 * forward_backward takes any batch: one whose multi lists hold many ids
 * (here 2 rows of 100 distinct ids, where the trainer's own batches start
 * with room for 4 per row) must record every looked-up row within the
 * touched arrays.
 */
static int
long_lists_step(void *arg)
{
	esmm_schema s;
	esmm_arch	a;
	esmm_model *m;
	esmm_batch	b;
	int32_t		ids[200];
	uint32_t	off[3] = {0, 100, 200};
	float		labels[4] = {1, 0, 0, 0};
	double		l;

	(void) arg;
	memset(&s, 0, sizeof(s));
	s.n_features = 1;
	set_feature(&s.features[0], "tags", ESMM_FEAT_MULTI, 1000, 2);
	s.n_labels = 2;
	strcpy(s.labels[0], "click");
	strcpy(s.labels[1], "conv");
	make_arch(&a, ESMM_LOSS_BCE, 0.0f);
	for (int t = 0; t < 2; t++)
	{
		a.tower[t].n_inputs = 1;
		a.tower[t].inputs[0] = 0;
	}
	m = new_model(&s, &a, ESMM_KIND_ESMM, ESMM_OPTIM_ADAM, 0.0f, 2, SEED);
	if (m == NULL)
		return 2;
	for (int i = 0; i < 200; i++)
		ids[i] = i * 5;
	b.B = 2;
	b.ids = NULL;
	b.nums = NULL;
	b.labels = labels;
	b.multi_off = off;
	b.multi_ids = ids;
	l = esmm_model_forward_backward(m, &b, NULL);
	if (m->n_touched > m->touched_cap)
		return 4;
	esmm_model_step(m);
	return isfinite(l) ? 0 : 3;
}

static void
test_crash_prone(void)
{
	survives_in_child(cvr_only_step, NULL, "cvr-only training");
	survives_in_child(long_lists_step, NULL, "forward_backward with 100-id lists");
}

/* ---------------------------------------------------------- statistics */

static void
test_fit_stats(void)
{
	esmm_schema s;
	test_data	d;
	const size_t C = ESMM_CHUNK_ROWS;
	const size_t n = C + 5;
	const double e = exp(1.0);

	/*
	 * 0 cat (an id column, to shift the numeric slots' meaning), then
	 * numerics: 1 standard, 2 log, 3 all NULL, 4 constant.  Two chunks, so
	 * that rows on both sides of the boundary count.
	 */
	memset(&s, 0, sizeof(s));
	s.n_features = 5;
	set_feature(&s.features[0], "c", ESMM_FEAT_CATEGORICAL, 3, 2);
	set_feature(&s.features[1], "x", ESMM_FEAT_NUMERIC, 0, 0);
	s.features[1].norm = ESMM_NORM_STANDARD;
	set_feature(&s.features[2], "lg", ESMM_FEAT_NUMERIC, 0, 0);
	s.features[2].norm = ESMM_NORM_LOG;
	set_feature(&s.features[3], "none", ESMM_FEAT_NUMERIC, 0, 0);
	s.features[3].norm = ESMM_NORM_STANDARD;
	set_feature(&s.features[4], "k", ESMM_FEAT_NUMERIC, 0, 0);
	s.features[4].norm = ESMM_NORM_STANDARD;

	memset(&d, 0, sizeof(d));
	d.ds.n_ids = 1;
	d.ds.n_nums = 4;
	d.ds.n_labels = 2;
	d.ds.n_rows = n;
	d.ds.n_chunks = 2;
	d.ds.chunks = d.chunks;
	alloc_chunk(&d.chunks[0], &d.ds, C, 0);
	alloc_chunk(&d.chunks[1], &d.ds, n - C, 0);
	for (size_t r = 0; r < n; r++)
	{
		float	   *v = (float *) esmm_dataset_nums(&d.ds, r);

		v[0] = v[1] = v[2] = NAN;
		v[3] = 4.0f;
	}
	/* x: {1, 3, -2, 6}: mean 2, variance (1+9+4+36)/4 - 4 = 8.5 */
	((float *) esmm_dataset_nums(&d.ds, 0))[0] = 1.0f;
	((float *) esmm_dataset_nums(&d.ds, 100))[0] = 3.0f;
	((float *) esmm_dataset_nums(&d.ds, C - 1))[0] = -2.0f;
	((float *) esmm_dataset_nums(&d.ds, C))[0] = 6.0f;
	/* lg: {0, e-1, -(e^2-1)} -> {0, 1, -2}: mean -1/3, variance 5/3 - 1/9 */
	((float *) esmm_dataset_nums(&d.ds, 0))[1] = 0.0f;
	((float *) esmm_dataset_nums(&d.ds, 7))[1] = (float) (e - 1.0);
	((float *) esmm_dataset_nums(&d.ds, C + 2))[1] = (float) -(e * e - 1.0);

	esmm_schema_fit_stats(&s, &d.ds);
	CHECK_NEAR(s.features[1].mean, 2.0, 1e-6, "standard mean");
	CHECK_NEAR(s.features[1].std, sqrt(8.5), 1e-6, "standard std (population)");
	CHECK_NEAR(s.features[2].mean, -1.0 / 3.0, 1e-6, "log mean");
	CHECK_NEAR(s.features[2].std, sqrt(14.0) / 3.0, 1e-6, "log std");
	CHECK(s.features[3].mean == 0.0f && s.features[3].std == 1.0f,
		  "an all-NULL column: mean %g std %g", s.features[3].mean, s.features[3].std);
	CHECK_NEAR(s.features[4].mean, 4.0, 1e-6, "constant column mean");
	CHECK(s.features[4].std == 1.0f, "a constant 4 column: std %g", s.features[4].std);
	CHECK(s.features[0].mean == 0.0f && s.features[0].std == 1.0f,
		  "a categorical feature got statistics");

	/* normalization uses them: sign(x) log1p(|x|), then standardized */
	{
		const esmm_feature *lg = &s.features[2];
		double		mu = -1.0 / 3.0,
					sd = sqrt(14.0) / 3.0;

		CHECK_NEAR(esmm_feature_normalize(lg, -(float) (e * e - 1.0)), (-2.0 - mu) / sd, 1e-5,
				   "log normalize of -(e^2-1)");
		CHECK_NEAR(esmm_feature_normalize(lg, 3.0f), (log1p(3.0) - mu) / sd, 1e-5,
				   "log normalize of 3");
		CHECK_NEAR(esmm_feature_normalize(&s.features[1], 5.0f), (5.0 - 2.0) / sqrt(8.5), 1e-5,
				   "standard normalize of 5");
		CHECK(esmm_feature_normalize(lg, NAN) == 0.0f, "NULL normalizes to 0");
	}
	free_data(&d);

	/*
	 * A constant column of a value with no exact binary form: its variance
	 * is 0, so its std must be the constant-column fallback 1, not the
	 * rounding noise of sum(x^2)/n - mean^2 (which can be ~1e-4 here and
	 * would blow any other value up by 10^4 at scoring time).
	 */
	{
		esmm_schema s2;

		memset(&s2, 0, sizeof(s2));
		s2.n_features = 1;
		set_feature(&s2.features[0], "k", ESMM_FEAT_NUMERIC, 0, 0);
		s2.features[0].norm = ESMM_NORM_STANDARD;
		memset(&d, 0, sizeof(d));
		d.ds.n_nums = 1;
		d.ds.n_labels = 2;
		d.ds.n_rows = 2000;
		d.ds.n_chunks = 1;
		d.ds.chunks = d.chunks;
		alloc_chunk(&d.chunks[0], &d.ds, 2000, 0);
		for (size_t r = 0; r < 2000; r++)
			d.chunks[0].nums[r] = 1000.1f;
		esmm_schema_fit_stats(&s2, &d.ds);
		CHECK_NEAR(s2.features[0].mean, 1000.1f, 1e-3, "constant 1000.1 mean");
		CHECK(s2.features[0].std == 1.0f, "a constant 1000.1 column: std %g, not 1",
			  s2.features[0].std);
		free_data(&d);
	}
}

/* ---------------------------------------------------------- validation */

static void
expect_rejected(const esmm_schema *s, const esmm_arch *a, esmm_model_kind kind,
				const char *what)
{
	esmm_model *m = (esmm_model *) 1;	/* must come back NULL */
	esmm_status st;
	size_t		n = 12345;
	esmm_code	rc;

	esmm_status_clear(&st);
	rc = esmm_model_create(&m, s, a, kind, &st);
	CHECK(rc == ESMM_ERR_ARGUMENT && st.code == ESMM_ERR_ARGUMENT && st.msg[0] != '\0',
		  "%s: create returned %d \"%s\"", what, (int) rc, st.msg);
	CHECK(m == NULL, "%s: create left a model behind", what);
	if (rc == ESMM_OK)
		esmm_model_free(m);
	esmm_status_clear(&st);
	rc = esmm_model_plan(s, a, kind, 1, 0, &n, NULL, &st);
	CHECK(rc == ESMM_ERR_ARGUMENT && st.msg[0] != '\0', "%s: plan returned %d \"%s\"",
		  what, (int) rc, st.msg);
}

/*
 * esmm_model_memory counts what training holds (esmm.max_memory rests on
 * it): the plan gives the count of the model it lays out, and the heap a
 * model grows by, created and trained one batch of 1000 rows, is within
 * that count plus a little bookkeeping, and short of it by at most the
 * touched lists' headroom.  The towers are 64 wide and without batch
 * norm, so that the batch runs in 8 row blocks whose dense gradients are
 * well above the slack.
 */
#define MEM_ROWS 1000
static void
test_memory_count(void)
{
	static int32_t ids[MEM_ROWS * 2];
	static float nums[MEM_ROWS],
				labels[MEM_ROWS * 2];
	static uint32_t off[MEM_ROWS + 1];
	hand_batch	hb;
	esmm_batch	b;
	esmm_schema s;
	esmm_arch	a;
	esmm_model *m;
	esmm_status st;
	size_t		n = 0,
				planned = 0,
				scored = 0,
				counted,
				headroom,
				before,
				grown;

	make_schema(&s);
	make_arch(&a, ESMM_LOSS_BCE, 0.0f);
	for (int t = 0; t < 2; t++)
		for (uint32_t l = 0; l < a.tower[t].n_layers; l++)
		{
			a.tower[t].layers[l].use_bn = 0;
			if (l == 0)
				a.tower[t].layers[l].units = 64;
		}
	make_batch(&hb);
	for (int r = 0; r < MEM_ROWS; r++)
	{
		memcpy(ids + 2 * r, hb.ids + 2 * (r % HB_ROWS), 2 * sizeof(int32_t));
		memcpy(labels + 2 * r, hb.labels + 2 * (r % HB_ROWS), 2 * sizeof(float));
		nums[r] = hb.nums[r % HB_ROWS];
	}
	b = hb.b;
	b.B = MEM_ROWS;
	b.ids = ids;
	b.nums = nums;
	b.labels = labels;
	b.multi_off = off;			/* no tags: the count covers single ids */
	esmm_status_clear(&st);
	CHECK(esmm_model_plan(&s, &a, ESMM_KIND_ESMM, MEM_ROWS, ESMM_MEMORY_TRAIN, &n, &planned, &st) == ESMM_OK &&
		  esmm_model_plan(&s, &a, ESMM_KIND_ESMM, MEM_ROWS, 0, &n, &scored, &st) == ESMM_OK,
		  "plan: %s", st.msg);
	/* a warm-up model first: OpenMP and OpenBLAS allocate once */
	m = new_model(&s, &a, ESMM_KIND_ESMM, ESMM_OPTIM_ADAM, 0.01f, MEM_ROWS, SEED);
	if (m != NULL)
		(void) esmm_model_forward_backward(m, &b, NULL);
	esmm_model_free(m);

	before = unit_heap_in_use();
	m = new_model(&s, &a, ESMM_KIND_ESMM, ESMM_OPTIM_ADAM, 0.01f, MEM_ROWS, SEED);
	if (m == NULL)
		return;
	CHECK(isfinite(esmm_model_forward_backward(m, &b, NULL)), "a batch of %d rows trains", MEM_ROWS);
	esmm_model_step(m);
	grown = unit_heap_in_use() - before;
	counted = esmm_model_memory(m, MEM_ROWS, ESMM_MEMORY_TRAIN);
	/* the touched lists at their largest: twice a table and a row number
	 * for every id and array feature and row, two per number */
	headroom = 2 * ((size_t) MEM_ROWS * (m->n_ids + m->n_multi) + 2 * m->n_nums) *
		(sizeof(uint16_t) + sizeof(uint32_t));
	CHECK(counted == planned, "the plan counts %zu bytes, the model %zu", planned, counted);
	CHECK(scored == sizeof(*m) + (m->n_params + m->n_state) * sizeof(float) +
		  esmm_model_workspace_bytes(m, MEM_ROWS),
		  "scoring counts %zu bytes", scored);
	CHECK(m->block_cap == 8 && (size_t) m->block_cap * (m->n_params - m->n_embedding) * sizeof(float) > 16384,
		  "the batch runs in %d row blocks of %zu dense floats each", m->block_cap,
		  m->n_params - m->n_embedding);
	if (UNIT_HEAP_MEASURED)
		CHECK(grown <= counted + 4096 && counted <= grown + headroom,
			  "the model grew the heap by %zu bytes; counted %zu (headroom %zu)", grown, counted, headroom);
	CHECK(esmm_model_memory(m, 4 * MEM_ROWS, ESMM_MEMORY_TRAIN) > counted &&
		  esmm_model_memory(m, MEM_ROWS, ESMM_MEMORY_TRAIN | ESMM_MEMORY_BEST) ==
		  counted + (m->n_params + m->n_state) * sizeof(float),
		  "larger batches and early stopping count more");
	esmm_model_free(m);

	/* batch norm trains as one block: no block gradients, none counted */
	make_arch(&a, ESMM_LOSS_BCE, 0.0f);
	m = new_model(&s, &a, ESMM_KIND_ESMM, ESMM_OPTIM_ADAM, 0.01f, MEM_ROWS, SEED);
	if (m == NULL)
		return;
	CHECK(m->block_cap == 1, "with batch norm, %d blocks", m->block_cap);
	esmm_model_free(m);
}

static void
test_validation(void)
{
	esmm_schema s0,
				s;
	esmm_arch	a0,
				a;
	esmm_model *m = NULL;
	esmm_status st;
	size_t		n = 0;

	make_schema(&s0);
	make_arch(&a0, ESMM_LOSS_BCE, 0.0f);
	esmm_status_clear(&st);

	/* the good spec is accepted, and plan counts what create allocates */
	CHECK(esmm_model_create(&m, &s0, &a0, ESMM_KIND_ESMM, &st) == ESMM_OK, "good spec: %s", st.msg);
	CHECK(esmm_model_plan(&s0, &a0, ESMM_KIND_ESMM, 1, 0, &n, NULL, &st) == ESMM_OK && m != NULL &&
		  n == m->n_params, "plan counts %zu parameters", n);
	/* 8*3 + 6*2 + 7*2 table floats; ctr 7*4+4+4+4 + 4*3+3 + 3+1; cvr 9*4+4 + 4*3+3+3 + 3+1 */
	if (m != NULL)
	{
		CHECK(m->n_embedding == 50, "table floats %zu", m->n_embedding);
		CHECK(m->n_params == 50 + 59 + 62, "parameters %zu", m->n_params);
		CHECK(m->n_state == 2 * 4 + 2 * 3, "state floats %zu", m->n_state);
		CHECK(m->tower_in[0] == 7 && m->tower_in[1] == 9, "tower widths %u %u",
			  m->tower_in[0], m->tower_in[1]);
	}
	esmm_model_free(m);

	a = a0;
	a.tower[ESMM_TOWER_CTR].n_layers = 0;
	expect_rejected(&s0, &a, ESMM_KIND_ESMM, "0 layers");

	a = a0;
	a.tower[ESMM_TOWER_CVR].layers[2].units = 2;
	expect_rejected(&s0, &a, ESMM_KIND_ESMM, "last layer of width 2");

	a = a0;
	a.tower[ESMM_TOWER_CVR].inputs[1] = 4;
	expect_rejected(&s0, &a, ESMM_KIND_ESMM, "input 4 of 4 features");

	a = a0;
	a.tower[ESMM_TOWER_CTR].layers[1].dropout = 1.0f;
	expect_rejected(&s0, &a, ESMM_KIND_ESMM, "dropout 1");

	a = a0;
	a.tower[ESMM_TOWER_CTR].layers[1].dropout = NAN;
	expect_rejected(&s0, &a, ESMM_KIND_ESMM, "dropout NaN");

	a = a0;
	a.tower[ESMM_TOWER_CTR].layers[0].units = 0;
	expect_rejected(&s0, &a, ESMM_KIND_ESMM, "a layer of width 0");

	a = a0;
	a.tower[ESMM_TOWER_CTR].layers[0].act = ESMM_ACT_COUNT;
	expect_rejected(&s0, &a, ESMM_KIND_ESMM, "unknown activation");

	a = a0;
	a.tower[ESMM_TOWER_CTR].n_inputs = 0;
	expect_rejected(&s0, &a, ESMM_KIND_ESMM, "no inputs");

	a = a0;
	a.tower[ESMM_TOWER_CVR].l2 = -1.0f;
	expect_rejected(&s0, &a, ESMM_KIND_ESMM, "negative l2");

	a = a0;
	a.loss = 2;
	expect_rejected(&s0, &a, ESMM_KIND_ESMM, "unknown loss");

	a = a0;
	a.loss_weights[1] = NAN;
	expect_rejected(&s0, &a, ESMM_KIND_ESMM, "NaN loss weight");

	s = s0;
	s.features[3].n_buckets = 0;
	expect_rejected(&s, &a0, ESMM_KIND_ESMM, "0 buckets");

	s = s0;
	s.features[0].dim = 0;
	expect_rejected(&s, &a0, ESMM_KIND_ESMM, "embedding width 0");

	s = s0;
	s.features[2].std = 0.0f;
	expect_rejected(&s, &a0, ESMM_KIND_ESMM, "std 0");

	s = s0;
	s.features[1].kind = 9;
	expect_rejected(&s, &a0, ESMM_KIND_ESMM, "unknown feature kind");

	s = s0;
	s.features[1].name[0] = '\0';
	expect_rejected(&s, &a0, ESMM_KIND_ESMM, "empty feature name");

	s = s0;
	s.n_features = 0;
	expect_rejected(&s, &a0, ESMM_KIND_ESMM, "no features");

	expect_rejected(&s0, &a0, ESMM_KIND_MMOE, "the mmoe kind");

	/* a one-tower kind validates only its tower */
	a = a0;
	a.tower[ESMM_TOWER_CVR].n_layers = 0;
	m = NULL;
	CHECK(esmm_model_create(&m, &s0, &a, ESMM_KIND_ESMM_CTR, &st) == ESMM_OK && m != NULL &&
		  !m->has_tower[ESMM_TOWER_CVR], "ctr-only with an empty cvr tower: %s", st.msg);
	esmm_model_free(m);
}

/* ---------------------------------------------------------------- fitting */

/* Rows [first, first + n) of d as a dataset of their own (one chunk). */
static esmm_dataset
data_slice(test_data *d, esmm_chunk *c, size_t first, size_t n)
{
	esmm_dataset v = d->ds;

	c->ids = d->chunks[0].ids + first * d->ds.n_ids;
	c->nums = d->chunks[0].nums + first * d->ds.n_nums;
	c->labels = d->chunks[0].labels + first * d->ds.n_labels;
	c->multi_off = d->chunks[0].multi_off + first * d->ds.n_multi;	/* absolute */
	c->multi_ids = d->chunks[0].multi_ids;
	c->multi_cap = d->chunks[0].multi_cap;
	v.n_rows = n;
	v.n_chunks = 1;
	v.chunks = c;
	return v;
}

static void
eval_metric(esmm_eval_spec *ev, uint8_t label, esmm_metric_kind kind, const char *name)
{
	ev->metrics[ev->n_metrics].label = label;
	ev->metrics[ev->n_metrics].metric = (uint8_t) kind;
	snprintf(ev->metrics[ev->n_metrics].name, sizeof(ev->metrics[0].name), "%s", name);
	ev->n_metrics++;
}

/* The history value named name in entry h; NaN when absent. */
static double
history_metric(const esmm_history_epoch *h, const char *name)
{
	for (uint32_t k = 0; k < h->n_metrics; k++)
		if (strcmp(h->metric_names[k], name) == 0)
			return h->metric_values[k];
	return NAN;
}

/*
 * The metrics fit records on the validation rows equal the same metrics
 * computed here from the model's own scores: AUC (brute force pairs),
 * accuracy at 0.5, clipped log loss, MSE, and for a conversion label the
 * AUC of pcvr on the clicked rows only.
 */
static void
test_fit_metrics(int label_is_ctcvr)
{
	test_data	d;
	esmm_chunk	ct,
				cv;
	esmm_dataset train,
				val;
	esmm_schema s;
	esmm_arch	a;
	esmm_model *m;
	esmm_train_spec ts;
	esmm_eval_spec ev;
	esmm_status st;
	const esmm_history_epoch *h;
	size_t		n = 400;
	float		pctr[400],
				pcvr[400],
				pctcvr[400];
	double		wins = 0,
				pairs = 0,
				acc = 0,
				ll = 0,
				se = 0,
				w2 = 0,
				p2 = 0;

	make_training_data(&d, 1000);
	train = data_slice(&d, &ct, 0, 600);
	val = data_slice(&d, &cv, 600, n);
	make_schema(&s);
	make_arch(&a, ESMM_LOSS_BCE, 0.0f);
	a.label_is_ctcvr = (uint8_t) label_is_ctcvr;
	m = new_model(&s, &a, ESMM_KIND_ESMM, ESMM_OPTIM_ADAM, 0.01f, 64, SEED);
	if (m == NULL)
		return;
	ts = shuffled_spec(64, 2, 3);
	memset(&ev, 0, sizeof(ev));
	ev.monitor = ESMM_MONITOR_NONE;
	eval_metric(&ev, 0, ESMM_METRIC_AUC, "click_auc");
	eval_metric(&ev, 0, ESMM_METRIC_BACC, "click_bacc");
	eval_metric(&ev, 0, ESMM_METRIC_LOGLOSS, "click_logloss");
	eval_metric(&ev, 0, ESMM_METRIC_MSE, "click_mse");
	eval_metric(&ev, 1, ESMM_METRIC_AUC, "conv_auc");
	esmm_status_clear(&st);
	CHECK(esmm_model_fit(m, &train, &val, &ts, &ev, NULL, NULL, &st) == ESMM_OK, "fit: %s", st.msg);
	CHECK(m->report.n_epochs == 2 && m->report.rows_validation == n && m->report.best_epoch == 0,
		  "fit without early stopping: %u epochs, %llu validation rows, best %u",
		  m->report.n_epochs, (unsigned long long) m->report.rows_validation, m->report.best_epoch);
	if (m->report.n_epochs != 2)
	{
		esmm_model_free(m);
		free_data(&d);
		return;
	}
	h = &m->report.epochs[1];
	CHECK(h->n_metrics == 6 && strcmp(h->metric_names[0], "val_loss") == 0,
		  "history holds val_loss and 5 metrics, got %u", h->n_metrics);

	for (size_t start = 0; start < n; start += 64)
	{
		esmm_batch	b;

		b.B = (int) (n - start < 64 ? n - start : 64);
		b.ids = cv.ids + start * 2;
		b.nums = cv.nums + start;
		b.labels = NULL;
		b.multi_off = cv.multi_off + start;
		b.multi_ids = cv.multi_ids;
		esmm_model_predict(m, &b, pctr + start, pcvr + start, pctcvr + start);
	}
	for (size_t i = 0; i < n; i++)
	{
		float		yc = cv.labels[2 * i],
					yv = cv.labels[2 * i + 1];
		double		p = pctr[i] < 1e-7 ? 1e-7 : pctr[i] > 1 - 1e-7 ? 1 - 1e-7 : pctr[i];

		acc += (pctr[i] > 0.5f) == (yc > 0.5f);
		ll += -(yc * log(p) + (1 - yc) * log(1 - p));
		se += ((double) pctr[i] - yc) * ((double) pctr[i] - yc);
		for (size_t j = 0; j < n; j++)
		{
			float		zc = cv.labels[2 * j],
						zv = cv.labels[2 * j + 1];

			if (yc > 0.5f && zc < 0.5f)
			{
				pairs += 1;
				wins += pctr[i] > pctr[j] ? 1.0 : pctr[i] == pctr[j] ? 0.5 : 0.0;
			}
			/* the second label: ctcvr over all rows, or conversion on clicks */
			if (label_is_ctcvr ? (yv > 0.5f && zv < 0.5f)
				: (yc > 0.5f && zc > 0.5f && yv > 0.5f && zv < 0.5f))
			{
				float		si = label_is_ctcvr ? pctcvr[i] : pcvr[i];
				float		sj = label_is_ctcvr ? pctcvr[j] : pcvr[j];

				p2 += 1;
				w2 += si > sj ? 1.0 : si == sj ? 0.5 : 0.0;
			}
		}
	}
	CHECK_NEAR(history_metric(h, "click_auc"), wins / pairs, 1e-12, "validation click AUC");
	CHECK_NEAR(history_metric(h, "click_bacc"), acc / n, 1e-12, "validation click accuracy");
	CHECK_NEAR(history_metric(h, "click_logloss"), ll / n, 1e-9, "validation click log loss");
	CHECK_NEAR(history_metric(h, "click_mse"), se / n, 1e-9, "validation click MSE");
	CHECK(p2 > 0, "the validation rows hold pairs for the second label");
	CHECK_NEAR(history_metric(h, "conv_auc"), w2 / p2, 1e-12,
			   label_is_ctcvr ? "validation ctcvr AUC of pctcvr" : "validation conversion AUC of pcvr on clicks");
	esmm_model_free(m);
	free_data(&d);
}

/*
 * Early stopping on val_loss: a small training set and a large learning
 * rate overfit, training stops before the last epoch, and the model keeps
 * the best epoch's weights: evaluating it again gives that epoch's
 * val_loss exactly.
 */
static void
test_early_stopping(void)
{
	test_data	d;
	esmm_chunk	ct,
				cv;
	esmm_dataset train,
				val;
	esmm_schema s;
	esmm_arch	a;
	esmm_model *m;
	esmm_train_spec ts;
	esmm_eval_spec ev;
	esmm_status st;
	double		values[ESMM_MAX_EVAL_METRICS],
				loss,
				best_logged;
	uint32_t	best;

	make_training_data(&d, 1000);
	train = data_slice(&d, &ct, 0, 120);
	val = data_slice(&d, &cv, 500, 500);
	make_schema(&s);
	make_arch(&a, ESMM_LOSS_BCE, 0.0f);
	m = new_model(&s, &a, ESMM_KIND_ESMM, ESMM_OPTIM_ADAM, 0.05f, 16, SEED);
	if (m == NULL)
		return;
	ts = shuffled_spec(16, 60, 5);
	memset(&ev, 0, sizeof(ev));
	eval_metric(&ev, 0, ESMM_METRIC_AUC, "click_auc");
	ev.monitor = ESMM_MONITOR_VAL_LOSS;
	ev.early_stopping = 1;
	ev.patience = 2;
	esmm_status_clear(&st);
	CHECK(esmm_model_fit(m, &train, &val, &ts, &ev, NULL, NULL, &st) == ESMM_OK, "fit: %s", st.msg);
	best = m->report.best_epoch;
	CHECK(m->report.stopped_early && m->report.n_epochs < 60,
		  "overfitting stops early: %u epochs, stopped %d", m->report.n_epochs, m->report.stopped_early);
	CHECK(best >= 1 && best + ev.patience == m->report.n_epochs,
		  "training stops patience epochs after the best: best %u of %u", best, m->report.n_epochs);
	if (best >= 1 && best <= m->report.n_epochs)
	{
		best_logged = history_metric(&m->report.epochs[best - 1], "val_loss");
		for (uint32_t e = 0; e < m->report.n_epochs; e++)
			CHECK(!(history_metric(&m->report.epochs[e], "val_loss") < best_logged),
				  "epoch %u has a lower val_loss than the best epoch %u", e + 1, best);
		CHECK(esmm_model_evaluate(m, &val, &ev, values, &loss, NULL, NULL, &st) == ESMM_OK, "evaluate: %s", st.msg);
		CHECK(loss == best_logged, "the restored weights give the best epoch's val_loss: %.12g vs %.12g",
			  loss, best_logged);
		CHECK(history_metric(&m->report.epochs[m->report.n_epochs - 1], "val_loss") > best_logged,
			  "the last epoch was worse than the best");
	}
	esmm_model_free(m);

	/* patience 0 stops at the first epoch that does not improve */
	m = new_model(&s, &a, ESMM_KIND_ESMM, ESMM_OPTIM_ADAM, 0.05f, 16, SEED);
	if (m == NULL)
	{
		free_data(&d);
		return;
	}
	ev.patience = 0;
	CHECK(esmm_model_fit(m, &train, &val, &ts, &ev, NULL, NULL, &st) == ESMM_OK, "fit: %s", st.msg);
	CHECK(m->report.stopped_early && m->report.best_epoch + 1 == m->report.n_epochs,
		  "patience 0: best %u of %u epochs", m->report.best_epoch, m->report.n_epochs);
	esmm_model_free(m);
	free_data(&d);
}

/*
 * Evaluation reports each batch to the progress callback (so that a query
 * can be canceled during it): a nonzero return stops it with
 * ESMM_ERR_CANCELED; a callback that jumps out leaves its buffers to the
 * model, which frees them (ASan's leak check runs on this); a fit's
 * validation passes evaluating calls too.
 */
typedef struct eval_calls
{
	int			calls,
				stop_at,		/* return 1 at this call, 0: never */
				jump_at;		/* longjmp at this call, 0: never */
	int			bad;			/* a call without evaluating or out of order */
	uint64_t	last_batch,
				last_done;
	jmp_buf		jump;
} eval_calls;

static int
count_eval_calls(void *arg, const esmm_progress *p)
{
	eval_calls *c = (eval_calls *) arg;

	if (!p->evaluating)
		return 0;
	c->calls++;
	/* a pass starts at batch 1; within it, batches and rows go up */
	if (p->batch == 1 ? p->rows_done == 0 :
		p->batch != c->last_batch + 1 || p->rows_done <= c->last_done || p->batch > p->batches)
		c->bad++;
	c->last_batch = p->batch;
	c->last_done = p->rows_done;
	if (c->calls == c->jump_at)
		longjmp(c->jump, 1);
	return c->calls == c->stop_at;
}

static void
test_evaluate_progress(void)
{
	test_data	d;
	esmm_chunk	cv;
	esmm_dataset val;
	esmm_schema s;
	esmm_arch	a;
	esmm_model *m;
	esmm_eval_spec ev;
	esmm_train_spec ts;
	esmm_status st;
	eval_calls	c;
	double		values[ESMM_MAX_EVAL_METRICS],
				loss0,
				loss;

	make_training_data(&d, 1000);
	val = data_slice(&d, &cv, 500, 500);
	make_schema(&s);
	make_arch(&a, ESMM_LOSS_BCE, 0.0f);
	m = new_model(&s, &a, ESMM_KIND_ESMM, ESMM_OPTIM_ADAM, 0.05f, 16, SEED);
	if (m == NULL)
	{
		free_data(&d);
		return;
	}
	memset(&ev, 0, sizeof(ev));
	eval_metric(&ev, 0, ESMM_METRIC_AUC, "click_auc");
	esmm_status_clear(&st);
	CHECK(esmm_model_evaluate(m, &val, &ev, values, &loss0, NULL, NULL, &st) == ESMM_OK, "evaluate: %s", st.msg);

	memset(&c, 0, sizeof(c));
	CHECK(esmm_model_evaluate(m, &val, &ev, values, &loss, count_eval_calls, &c, &st) == ESMM_OK &&
		  loss == loss0, "with progress: the same loss %.12g vs %.12g", loss, loss0);
	CHECK(c.calls == 32 && c.bad == 0 && c.last_done == 500,
		  "500 rows in batches of 16: 32 calls in order, got %d (%d out of order, last %llu rows)",
		  c.calls, c.bad, (unsigned long long) c.last_done);

	memset(&c, 0, sizeof(c));
	c.stop_at = 3;
	esmm_status_clear(&st);
	CHECK(esmm_model_evaluate(m, &val, &ev, values, &loss, count_eval_calls, &c, &st) == ESMM_ERR_CANCELED &&
		  st.code == ESMM_ERR_CANCELED && c.calls == 3 && isnan(loss) && m->eval_mem == NULL,
		  "a nonzero return stops after its batch: %d calls, \"%s\"", c.calls, st.msg);

	memset(&c, 0, sizeof(c));
	c.jump_at = 2;
	if (setjmp(c.jump) == 0)
	{
		(void) esmm_model_evaluate(m, &val, &ev, values, &loss, count_eval_calls, &c, &st);
		CHECK(0, "the callback jumped out");
	}
	/* freed straight away: ASan's leak check sees whether the model
	 * took the buffers with it */
	CHECK(c.calls == 2 && m->eval_mem != NULL, "a jump out leaves the buffers with the model");
	esmm_model_free(m);
	m = new_model(&s, &a, ESMM_KIND_ESMM, ESMM_OPTIM_ADAM, 0.05f, 16, SEED);
	if (m == NULL)
	{
		free_data(&d);
		return;
	}

	ts = shuffled_spec(16, 2, 5);
	memset(&c, 0, sizeof(c));
	{
		esmm_chunk	ct;
		esmm_dataset train = data_slice(&d, &ct, 0, 100);
		int			calls = 0;

		CHECK(esmm_model_fit(m, &train, &val, &ts, &ev, count_eval_calls, &c, &st) == ESMM_OK,
			  "fit: %s", st.msg);
		calls = c.calls;
		CHECK(calls == 2 * 32 && c.bad == 0, "a fit's two validation passes report their batches: %d calls, %d out of order",
			  calls, c.bad);
	}
	esmm_model_free(m);
	free_data(&d);
}

/* ----------------------------------------------------------------- export */

/*
 * A tower's sub-model scores exactly as the full model's tower, reads only
 * that tower's features (the batch is re-laid for its schema), and survives
 * the format; the other outputs are NaN.
 */
static void
test_export(void)
{
	test_data	d;
	esmm_schema s;
	esmm_arch	a;
	esmm_model *m,
			   *sub[2];
	esmm_status st;
	const esmm_model_kind kinds[2] = {ESMM_KIND_ESMM_CTR, ESMM_KIND_ESMM_CVR};
	float		full[3][64],
				part[3][64];

	make_training_data(&d, 64);
	make_schema(&s);
	make_arch(&a, ESMM_LOSS_BCE, 0.0f);
	m = new_model(&s, &a, ESMM_KIND_ESMM, ESMM_OPTIM_ADAM, 0.01f, 64, SEED);
	if (m == NULL)
		return;
	{
		esmm_batch	b = {64, d.chunks[0].ids, d.chunks[0].nums, NULL, d.chunks[0].multi_off, d.chunks[0].multi_ids};

		esmm_model_predict(m, &b, full[0], full[1], full[2]);
	}
	for (int t = 0; t < 2; t++)
	{
		esmm_status_clear(&st);
		sub[t] = NULL;
		CHECK(esmm_model_export(&sub[t], m, kinds[t], &st) == ESMM_OK, "export %d: %s", t, st.msg);
		if (sub[t] == NULL)
			continue;
		CHECK(sub[t]->schema.n_features == m->arch.tower[t].n_inputs,
			  "sub-model %d keeps the %u features of its tower, has %u",
			  t, m->arch.tower[t].n_inputs, sub[t]->schema.n_features);
		CHECK(sub[t]->has_tower[t] && !sub[t]->has_tower[1 - t], "sub-model %d has one tower", t);
		CHECK(sub[t]->n_params < m->n_params, "sub-model %d is smaller: %zu of %zu parameters",
			  t, sub[t]->n_params, m->n_params);
		{
			/* lay the rows out for the sub-model's schema: its id, float
			 * and multi slots, copied from the full model's */
			int32_t		ids[64 * 4];
			float		nums[64 * 4];
			uint32_t	off[4 * 65];
			esmm_batch	b;

			for (uint32_t f = 0; f < sub[t]->schema.n_features; f++)
			{
				uint32_t	full_f = 0;

				while (strcmp(m->schema.features[full_f].name, sub[t]->schema.features[f].name) != 0)
					full_f++;
				for (int r = 0; r < 64; r++)
				{
					if (sub[t]->schema.features[f].kind == ESMM_FEAT_CATEGORICAL)
						ids[r * sub[t]->n_ids + sub[t]->slot[f]] = d.chunks[0].ids[r * m->n_ids + m->slot[full_f]];
					else if (sub[t]->schema.features[f].kind == ESMM_FEAT_NUMERIC)
						nums[r * sub[t]->n_nums + sub[t]->slot[f]] = d.chunks[0].nums[r * m->n_nums + m->slot[full_f]];
				}
				if (sub[t]->schema.features[f].kind == ESMM_FEAT_MULTI)
					for (int r = 0; r <= 64; r++)
						off[sub[t]->slot[f] * 65 + r] = d.chunks[0].multi_off[r];
			}
			b.B = 64;
			b.ids = ids;
			b.nums = nums;
			b.labels = NULL;
			b.multi_off = off;
			b.multi_ids = d.chunks[0].multi_ids;
			if (esmm_model_workspace(sub[t], 64, &st) != ESMM_OK)
			{
				CHECK(0, "workspace: %s", st.msg);
				continue;
			}
			esmm_model_predict(sub[t], &b, part[0], part[1], part[2]);
			CHECK(memcmp(part[t], full[t], sizeof(part[t])) == 0,
				  "sub-model %d scores as the full model's tower: %g vs %g", t,
				  (double) part[t][0], (double) full[t][0]);
			CHECK(isnan(part[1 - t][0]) && isnan(part[2][0]),
				  "sub-model %d leaves the other tower's outputs and pctcvr NaN", t);
		}
		{
			size_t		len = esmm_model_encoded_size(sub[t], 0);
			uint8_t    *buf = malloc(len);
			esmm_model *back = NULL;

			CHECK(esmm_model_encode(sub[t], 0, buf, len, crc32c_ref, &st) == ESMM_OK &&
				  esmm_model_decode(&back, buf, len, crc32c_ref, 0, &st) == ESMM_OK &&
				  back->kind == kinds[t] && back->n_params == sub[t]->n_params &&
				  memcmp(back->params, sub[t]->params, back->n_params * sizeof(float)) == 0,
				  "sub-model %d round-trips through the format: %s", t, st.msg);
			esmm_model_free(back);
			free(buf);
		}
		esmm_model_free(sub[t]);
	}
	esmm_status_clear(&st);
	sub[0] = NULL;
	CHECK(esmm_model_export(&sub[0], m, ESMM_KIND_ESMM, &st) == ESMM_ERR_ARGUMENT && sub[0] == NULL,
		  "exporting to a full kind is refused");
	esmm_model_free(m);
	free_data(&d);
}

/* ------------------------------------------------- scaling out (SPEC §5) */

/* A copy of d's rows in reverse order, as another worker split might
 * hand them over. */
static void
reverse_data(test_data *out, const test_data *d)
{
	const esmm_dataset *ds = &d->ds;
	esmm_chunk *c = &out->chunks[0];
	size_t		n = ds->n_rows;
	uint32_t	used = 0;

	memset(out, 0, sizeof(*out));
	out->ds = *ds;
	out->ds.chunks = out->chunks;
	out->ds.order = NULL;
	alloc_chunk(c, ds, n, d->chunks[0].multi_cap);
	for (size_t i = 0; i < n; i++)
	{
		size_t		r = n - 1 - i;
		uint32_t	count;
		const int32_t *ids = esmm_dataset_multi(ds, r, 0, &count);

		memcpy(c->ids + i * ds->n_ids, esmm_dataset_ids(ds, r), ds->n_ids * sizeof(int32_t));
		memcpy(c->nums + i * ds->n_nums, esmm_dataset_nums(ds, r), ds->n_nums * sizeof(float));
		memcpy(c->labels + i * ds->n_labels, esmm_dataset_labels(ds, r), ds->n_labels * sizeof(float));
		c->multi_off[i] = used;
		memcpy(c->multi_ids + used, ids, count * sizeof(int32_t));
		used += count;
	}
	c->multi_off[n] = used;
}

/* Whether logical rows r of a and b hold the same values. */
static int
same_row(const esmm_dataset *a, size_t ra, const esmm_dataset *b, size_t rb)
{
	uint32_t	na,
				nb;
	const int32_t *ma = esmm_dataset_multi(a, ra, 0, &na);
	const int32_t *mb = esmm_dataset_multi(b, rb, 0, &nb);

	return memcmp(esmm_dataset_ids(a, ra), esmm_dataset_ids(b, rb), a->n_ids * 4) == 0 &&
		memcmp(esmm_dataset_nums(a, ra), esmm_dataset_nums(b, rb), a->n_nums * 4) == 0 &&
		memcmp(esmm_dataset_labels(a, ra), esmm_dataset_labels(b, rb), a->n_labels * 4) == 0 &&
		na == nb && memcmp(ma, mb, na * 4) == 0;
}

/* A model of make_schema/make_arch, initialized from seed, training begun. */
static esmm_model *
scaling_model(uint64_t seed, int batch)
{
	esmm_schema s;
	esmm_arch	a;
	esmm_optim_spec o;
	esmm_model *m = NULL;
	esmm_status st;

	make_schema(&s);
	make_arch(&a, ESMM_LOSS_BCE, 0.0f);
	esmm_optim_defaults(&o, ESMM_OPTIM_ADAM);
	o.learning_rate = 0.01f;
	if (esmm_model_create(&m, &s, &a, ESMM_KIND_ESMM, &st) != ESMM_OK)
		return NULL;
	esmm_model_init(m, seed);
	if (esmm_model_train_begin(m, &o, batch, seed, &st) != ESMM_OK)
	{
		esmm_model_free(m);
		return NULL;
	}
	return m;
}

/* The naive twin of the canonical order: qsort by the rows' keys, then
 * their contents, ties by stored position, which is what a stable sort
 * leaves. */
static const esmm_dataset *twin_ds;

static int
twin_compare(const void *pa, const void *pb)
{
	uint32_t	a = *(const uint32_t *) pa,
				b = *(const uint32_t *) pb;
	uint64_t	ka = esmm_dataset_row_key(twin_ds, a),
				kb = esmm_dataset_row_key(twin_ds, b);
	int			c = esmm_dataset_row_compare(twin_ds, a, b);

	if (ka != kb)
		return ka < kb ? -1 : 1;
	return c != 0 ? c : (a > b) - (a < b);
}

/*
 * Rows of make_training_data made into 24 distinct rows repeated (ad and
 * user from the row number, a NULL price every fifth row, no tags), so
 * that equal keys come in runs.
 */
static void
repeat_rows(test_data *d)
{
	esmm_chunk *c = &d->chunks[0];

	for (size_t r = 0; r < d->ds.n_rows; r++)
	{
		c->ids[r * 2] = (int32_t) (r % 3);
		c->ids[r * 2 + 1] = (int32_t) (r % 2);
		c->nums[r] = r % 5 == 0 ? NAN : 1.0f;
		c->labels[r * 2] = (float) (r % 7 == 0);
		c->labels[r * 2 + 1] = 0.0f;
		c->multi_off[r + 1] = 0;
	}
}

/*
 * The canonical order (a radix sort on the keys, then each run of equal
 * keys sorted by contents, stably) is the naive twin's order exactly, on
 * one thread and on two: on the training data (few identical rows), and
 * on 24 distinct rows repeated, where 200 rows make short runs (insertion
 * sort), 2,000 runs of about 80 (merged on the calling thread), 16,000
 * runs long enough for the merges to go parallel.
 */
static void
test_canonical_order_twin(void)
{
	static const size_t sizes[4] = {2000, 200, 2000, 16000};

	for (int z = 0; z < 4; z++)
	{
		const size_t n = sizes[z];
		test_data	d;
		uint32_t   *twin = malloc(n * sizeof(uint32_t));
		uint32_t   *order = malloc(n * sizeof(uint32_t));
		esmm_row_key *scratch = malloc(2 * n * sizeof(esmm_row_key));
		size_t		identical = 0;

		make_training_data(&d, n);
		if (z > 0)
			repeat_rows(&d);
		for (size_t i = 0; i < n; i++)
			twin[i] = (uint32_t) i;
		twin_ds = &d.ds;
		qsort(twin, n, sizeof(uint32_t), twin_compare);
		for (size_t i = 0; i + 1 < n; i++)
			identical += esmm_dataset_row_compare(&d.ds, twin[i], twin[i + 1]) == 0;
		CHECK(identical > 0, "canonical twin, %zu rows: the data has identical rows", n);
		for (int threads = 1; threads <= 2; threads++)
		{
			size_t		same = 0;

			omp_set_num_threads(threads);
			memset(order, 0xff, n * sizeof(uint32_t));
			esmm_dataset_canonical_order(&d.ds, order, scratch);
			for (size_t i = 0; i < n; i++)
				same += order[i] == twin[i];
			CHECK(same == n, "canonical twin, %zu rows, %d thread(s): %zu positions agree",
				  n, threads, same);
		}
		free(twin);
		free(order);
		free(scratch);
		free_data(&d);
	}
}

/*
 * The canonical order makes the same rows in another order train the
 * same model (parallel workers' slices); averaging and warm starts do
 * what the streaming aggregates' combine and esmm_fit rely on.
 */
static void
test_scaling_out(void)
{
	test_data d,
				r;
	uint32_t   *order[2];
	esmm_row_key *scratch;
	size_t		n = 300,
				same = 0,
				sorted = 0,
				ties = 0,
				identical = 0;
	esmm_model *m[2];
	esmm_train_spec ts;
	esmm_status st;
	int			restored = -1;

	make_training_data(&d, n);
	reverse_data(&r, &d);
	order[0] = malloc(n * sizeof(uint32_t));
	order[1] = malloc(n * sizeof(uint32_t));
	scratch = malloc(2 * n * sizeof(esmm_row_key));
	esmm_dataset_canonical_order(&r.ds, order[1], scratch);
	esmm_dataset_canonical_order(&d.ds, order[0], scratch);
	/* sorted by key, then by contents; keys tie only for identical rows
	 * (the data has some) */
	for (size_t i = 0; i + 1 < n; i++)
	{
		uint64_t	k0 = esmm_dataset_row_key(&d.ds, order[0][i]),
					k1 = esmm_dataset_row_key(&d.ds, order[0][i + 1]);
		int			c = esmm_dataset_row_compare(&d.ds, order[0][i], order[0][i + 1]);

		sorted += k0 < k1 || (k0 == k1 && c <= 0);
		ties += k0 == k1;
		identical += c == 0;
	}
	CHECK(sorted == n - 1, "canonical order: %zu of %zu neighbours in order by key, then contents", sorted, n - 1);
	CHECK(ties > 0 && ties == identical, "canonical order: %zu neighbours tie on their keys, %zu are identical rows",
		  ties, identical);
	free(scratch);
	d.ds.order = order[0];
	r.ds.order = order[1];
	for (size_t i = 0; i < n; i++)
		same += same_row(&d.ds, i, &r.ds, i);
	CHECK(same == n, "canonical order: %zu of %zu rows line up in both orders", same, n);
	CHECK(!same_row(&d.ds, 0, &d.ds, n - 1), "canonical order: the check can tell rows apart");

	ts = shuffled_spec(32, 2, 5);
	esmm_optim_defaults(&ts.optim, ESMM_OPTIM_ADAM);
	m[0] = scaling_model(3, 32);
	m[1] = scaling_model(3, 32);
	CHECK(m[0] && m[1], "scaling: models created");
	if (!m[0] || !m[1])
		return;
	CHECK(esmm_model_train(m[0], &d.ds, &ts, NULL, NULL, &st) == ESMM_OK &&
		  esmm_model_train(m[1], &r.ds, &ts, NULL, NULL, &st) == ESMM_OK,
		  "scaling: both orders train");
	CHECK(memcmp(m[0]->params, m[1]->params, m[0]->n_params * sizeof(float)) == 0,
		  "canonical order: the same rows in reverse order train bit-identical weights");

	/* averaging: 1/4 of m[0] and 3/4 of a differently seeded model */
	{
		esmm_model *b = scaling_model(9, 32);
		esmm_model *a = scaling_model(3, 32);
		double		worst = 0.0;

		CHECK(esmm_model_train(b, &d.ds, &ts, NULL, NULL, &st) == ESMM_OK, "scaling: b trains");
		memcpy(a->params, m[0]->params, a->n_params * sizeof(float));
		memcpy(a->m1, m[0]->m1, a->n_params * sizeof(float));
		a->step = 100;
		b->step = 200;
		a->schema.features[2].mean = 1.0f;
		a->schema.features[2].std = 1.0f;
		b->schema.features[2].mean = 3.0f;
		b->schema.features[2].std = 1.0f;
		CHECK(esmm_model_average(a, 1.0, b, 3.0, &st) == ESMM_OK, "average: compatible models");
		for (size_t i = 0; i < a->n_params; i++)
		{
			double		want = 0.25 * m[0]->params[i] + 0.75 * b->params[i];

			worst = fmax(worst, fabs(a->params[i] - want));
			worst = fmax(worst, fabs(a->m1[i] - (0.25 * m[0]->m1[i] + 0.75 * b->m1[i])));
		}
		CHECK(worst < 1e-6, "average: weights and moments are the row-weighted mean (worst %g)", worst);
		CHECK(a->step == 175, "average: step count %llu, want 175", (unsigned long long) a->step);
		/* pooled: mean 2.5; second moment 0.25*2 + 0.75*10 = 8; var 1.75 */
		CHECK_NEAR(a->schema.features[2].mean, 2.5, 1e-6, "average: pooled mean");
		CHECK_NEAR(a->schema.features[2].std, sqrt(1.75), 1e-6, "average: pooled standard deviation");

		/* warm start: everything the earlier model learned */
		CHECK(esmm_model_warm_start(m[1], a, 1, &restored, &st) == ESMM_OK && restored == 1,
			  "warm start: compatible, optimizer restored");
		CHECK(memcmp(m[1]->params, a->params, a->n_params * sizeof(float)) == 0 &&
			  memcmp(m[1]->m1, a->m1, a->n_params * sizeof(float)) == 0 &&
			  m[1]->step == a->step && m[1]->schema.features[2].mean == a->schema.features[2].mean &&
			  m[1]->report.n_epochs == a->report.n_epochs,
			  "warm start: weights, moments, step, statistics and history copied");
		CHECK(esmm_model_warm_start(m[1], a, 0, &restored, &st) == ESMM_OK && restored == 0,
			  "warm start: without the optimizer state when not asked");
		esmm_model_free(a);
		esmm_model_free(b);
	}

	/* incompatible shapes are refused with the first difference */
	{
		esmm_schema s;
		esmm_arch	a;
		esmm_model *other = NULL;

		make_schema(&s);
		make_arch(&a, ESMM_LOSS_BCE, 0.0f);
		a.tower[ESMM_TOWER_CVR].layers[0].units = 5;
		CHECK(esmm_model_create(&other, &s, &a, ESMM_KIND_ESMM, &st) == ESMM_OK, "scaling: other created");
		CHECK(esmm_model_compatible(m[0], other, &st) == ESMM_ERR_ARGUMENT &&
			  strstr(st.msg, "cvr tower") != NULL, "compatible: another cvr tower is refused: %s", st.msg);
		CHECK(esmm_model_average(m[0], 1, other, 1, &st) == ESMM_ERR_ARGUMENT, "average: refuses it too");
		esmm_model_free(other);
		make_arch(&a, ESMM_LOSS_BCE, 0.0f);
		s.features[1].n_buckets = 6;
		CHECK(esmm_model_create(&other, &s, &a, ESMM_KIND_ESMM, &st) == ESMM_OK, "scaling: other created");
		CHECK(esmm_model_compatible(m[0], other, &st) == ESMM_ERR_ARGUMENT &&
			  strstr(st.msg, "feature 2 is \"user\" (categorical, 6 buckets") != NULL,
			  "compatible: other buckets are refused: %s", st.msg);
		esmm_model_free(other);
	}
	esmm_model_free(m[0]);
	esmm_model_free(m[1]);
	free(order[0]);
	free(order[1]);
	free_data(&d);
	free_data(&r);
}

void
suite_model(void)
{
	test_gradients();
	test_forward_backward_repeatable();
	test_row_blocks();
	test_parallel_chunks();
	test_init();
	test_sparse_updates();
	test_training();
	test_predict();
	test_input_assembly();
	test_memory_count();
	test_crash_prone();
	test_fit_stats();
	test_validation();
	test_fit_metrics(1);
	test_fit_metrics(0);
	test_early_stopping();
	test_evaluate_progress();
	test_export();
	test_canonical_order_twin();
	test_scaling_out();
}
