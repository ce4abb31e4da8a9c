/*
 * test_mmoe.c: the MMoE v2 model (mmoe_model.c) on a small hand-built
 * schema: the whole objective's gradient against central differences for
 * every feature_cross 0-5 x output_cross {0, 1} x wide type, with a
 * binary and a regression task; the widths each cross gives; experts that
 * start apart; training that learns; scoring; spec validation.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

#include "unit.h"
#include "esmm_model.h"
#include "metrics.h"
#include "mmoe_model.h"
#include "model_format.h"

#define SEED 7301
#define GRAD_FLOOR 1e-7

/*
 * Features:
 *   0 ad     categorical, 7 buckets, dim 3  (mmoe and wide: one shared table)
 *   1 user   categorical, 5 buckets, dim 2  (wide)
 *   2 price  numeric, standard, NULL indicator (mmoe)
 *   3 tags   multi, 6 buckets, dim 2        (mmoe)
 *   4 age    numeric, log                   (wide)
 * Labels: click (binary), spend (regression), like (binary).
 */
static void
make_schema(esmm_schema *s, uint32_t n_labels)
{
	static const char *const names[5] = {"ad", "user", "price", "tags", "age"};
	static const uint8_t kinds[5] = {ESMM_FEAT_CATEGORICAL, ESMM_FEAT_CATEGORICAL,
	ESMM_FEAT_NUMERIC, ESMM_FEAT_MULTI, ESMM_FEAT_NUMERIC};
	static const uint32_t buckets[5] = {7, 5, 0, 6, 0};
	static const uint32_t dims[5] = {3, 2, 0, 2, 0};
	static const char *const labels[3] = {"click", "spend", "like"};

	memset(s, 0, sizeof(*s));
	s->n_features = 5;
	for (int f = 0; f < 5; f++)
	{
		esmm_feature *ft = &s->features[f];

		strcpy(ft->name, names[f]);
		ft->kind = kinds[f];
		ft->n_buckets = buckets[f];
		ft->dim = dims[f];
		ft->mean = 0.0f;
		ft->std = 1.0f;
	}
	s->features[2].norm = ESMM_NORM_STANDARD;
	s->features[2].mean = 0.5f;
	s->features[2].std = 2.0f;
	s->features[2].null_indicator = 1;
	s->features[4].norm = ESMM_NORM_LOG;
	s->features[4].mean = 3.0f;
	s->features[4].std = 0.5f;
	s->n_labels = n_labels;
	for (uint32_t t = 0; t < n_labels; t++)
		strcpy(s->labels[t], labels[t]);
}

/*
 * Three experts [4 tanh + batch norm, 3 swish]; task towers [3 sigmoid, 1];
 * gates with bias; every regularizer on, so that the check covers them.
 * Activations without kinks, and no dropout: central differences need a
 * smooth, deterministic objective.
 */
static void
make_arch(mmoe_arch *a, uint32_t n_tasks, int feature_cross, int output_cross,
		  mmoe_wide_type wide_type)
{
	memset(a, 0, sizeof(*a));
	a->n_tasks = n_tasks;
	for (uint32_t t = 0; t < n_tasks; t++)
	{
		a->task_type[t] = t == 1 ? MMOE_TASK_REGRESSION : MMOE_TASK_BINARY;
		a->loss_weights[t] = 1.0f - 0.25f * (float) t;
		a->task[t].n_layers = 2;
		set_layer(&a->task[t].layers[0], 3, ESMM_ACT_SIGMOID, 1, 0, 0.0f);
		set_layer(&a->task[t].layers[1], 1, ESMM_ACT_NONE, 1, 0, 0.0f);
		a->task[t].l1 = 0.001f;
		a->task[t].l2 = 0.002f;
	}
	a->task_output_sigmoid = 1;
	a->n_experts = 3;
	a->expert.n_layers = 2;
	set_layer(&a->expert.layers[0], 4, ESMM_ACT_TANH, 1, 1, 0.0f);
	set_layer(&a->expert.layers[1], 3, ESMM_ACT_SWISH, 1, 0, 0.0f);
	a->expert.l1 = 0.001f;
	a->expert.l2 = 0.003f;
	a->expert.n_inputs = 3;
	a->expert.inputs[0] = 0;
	a->expert.inputs[1] = 2;
	a->expert.inputs[2] = 3;
	a->gate_use_bias = 1;
	a->gate_l1 = 0.001f;
	a->gate_l2 = 0.002f;
	a->use_wide = 1;
	a->wide_type = (uint8_t) wide_type;
	a->wide_width = 4;
	a->wide_l1 = 0.001f;
	a->wide_l2 = 0.004f;
	a->n_wide_inputs = 3;
	a->wide_inputs[0] = 1;
	a->wide_inputs[1] = 4;
	a->wide_inputs[2] = 0;
	a->feature_cross = (uint8_t) feature_cross;
	a->output_cross = (uint8_t) output_cross;
	a->l2_embedding = 0.01f;
}

#define HB_ROWS 6
typedef struct hand_batch
{
	int32_t		ids[HB_ROWS * 2];	/* ad, user */
	float		nums[HB_ROWS * 2];	/* price, age */
	float		labels[HB_ROWS * 3];	/* click, spend, like */
	uint32_t	multi_off[HB_ROWS + 1];
	int32_t		multi_ids[8];
	esmm_batch	b;
} hand_batch;

/* Rows with a repeated ad (a row looked up twice), a NULL price, an empty
 * tags list and an out-of-range id, which reads the missing row. */
static void
make_batch(hand_batch *hb, uint32_t n_labels)
{
	static const int32_t ids[HB_ROWS * 2] = {1, 0, 3, 4, 1, 2, 6, 1, 0, 9, 2, 0};
	static const float nums[HB_ROWS * 2] = {0.3f, 12.0f, NAN, 40.0f, -1.2f, 3.0f,
	2.5f, 100.0f, 0.0f, NAN, 1.7f, 25.0f};
	static const float labels[HB_ROWS * 3] = {1, 0.5f, 0, 0, -0.5f, 1, 1, 0.25f, 1,
	0, 0.0f, 0, 1, 0.75f, 0, 0, -0.25f, 1};
	static const uint32_t off[HB_ROWS + 1] = {0, 2, 2, 3, 6, 7, 8};
	static const int32_t tags[8] = {0, 2, 5, 1, 1, 3, 2, 0};

	memcpy(hb->ids, ids, sizeof(ids));
	memcpy(hb->nums, nums, sizeof(nums));
	for (int b = 0; b < HB_ROWS; b++)
		for (uint32_t t = 0; t < n_labels; t++)
			hb->labels[b * n_labels + t] = labels[b * 3 + t];
	memcpy(hb->multi_off, off, sizeof(off));
	memcpy(hb->multi_ids, tags, sizeof(tags));
	hb->b.B = HB_ROWS;
	hb->b.ids = hb->ids;
	hb->b.nums = hb->nums;
	hb->b.labels = hb->labels;
	hb->b.multi_off = hb->multi_off;
	hb->b.multi_ids = hb->multi_ids;
}

/* Rows [b0, b0 + n) of a batch of this file's layout (ids ad and user,
 * numbers price and age, three labels, the tags array) as a batch. */
static esmm_batch
batch_rows(const esmm_batch *b, int b0, int n)
{
	esmm_batch	part = *b;

	part.B = n;
	part.ids = b->ids + b0 * 2;
	part.nums = b->nums + b0 * 2;
	part.labels = b->labels + b0 * 3;
	part.multi_off = b->multi_off + b0;
	return part;
}

static esmm_model *
new_mmoe(const esmm_schema *s, const mmoe_arch *a, int batch_size, float lr)
{
	esmm_model *m = NULL;
	esmm_status st;
	size_t		n = 0,
				bytes = 0,
				before = unit_heap_in_use(),
				grown,
				touched;

	esmm_status_clear(&st);
	if (mmoe_model_create(&m, s, a, &st) != ESMM_OK)
	{
		CHECK(0, "mmoe_model_create failed: %s", st.msg);
		return NULL;
	}
	if ((m = ready_to_train(m, ESMM_OPTIM_ADAM, lr, batch_size, SEED)) == NULL)
		return NULL;
	/*
	 * The plan that esmm.max_memory checks counts what this model holds:
	 * the heap grew by the count less the touched lists, which a step
	 * allocates (a table and a row number, doubled, for three tables per
	 * id and array feature and row, and two per number)
	 */
	grown = unit_heap_in_use() - before;
	touched = 2 * ((size_t) batch_size * (m->n_ids + m->n_multi) * 3 + 2 * m->n_nums) *
		(sizeof(uint16_t) + sizeof(uint32_t));
	CHECK(mmoe_model_plan(s, a, batch_size, ESMM_MEMORY_TRAIN, &n, &bytes, &st) == ESMM_OK &&
		  n == m->n_params && bytes == esmm_model_memory(m, batch_size, ESMM_MEMORY_TRAIN),
		  "the plan counts %zu parameters and %zu bytes to train", n, bytes);
	if (UNIT_HEAP_MEASURED)
		CHECK(grown <= bytes - touched + 4096 && bytes - touched <= grown + 4096,
			  "the model grew the heap by %zu bytes; counted %zu less %zu for the touched lists",
			  grown, bytes, touched);
	return m;
}

/* ------------------------------------------------------ gradient check */

/*
 * The whole objective's gradient, every parameter against central
 * differences, for one configuration; and every part that the
 * configuration uses must get a gradient (a backward that forgets a part
 * would otherwise agree with a forward that ignores it).
 */
static void
gradient_check(int feature_cross, int output_cross, mmoe_wide_type wide_type,
			   int share_gates, int steps_first)
{
	esmm_schema s;
	mmoe_arch	a;
	hand_batch	hb;
	esmm_model *m;
	float	   *an;
	char		what[96];
	double		total = 0.0;
	int			wide_used;

	make_schema(&s, 2);
	make_arch(&a, 2, feature_cross, output_cross, wide_type);
	a.share_gates = (uint8_t) share_gates;
	make_batch(&hb, 2);
	if ((m = new_mmoe(&s, &a, HB_ROWS, 0.0f)) == NULL)
		return;
	/* gates and wide tables away from zero, so that they matter */
	for (size_t i = 0; i < m->n_params; i++)
		if (fabsf(m->params[i]) < 0.02f && i < m->n_embedding)
			m->params[i] += 0.1f;
	/* after optimizer steps too: the backward reads the kernels
	 * transposed, which must follow every step */
	for (int k = 0; k < steps_first; k++)
	{
		esmm_model_forward_backward(m, &hb.b, NULL);
		esmm_model_step(m);
	}
	esmm_model_forward_backward(m, &hb.b, NULL);
	an = malloc(m->n_params * sizeof(float));
	memcpy(an, m->grads, m->n_params * sizeof(float));

	snprintf(what, sizeof(what), "mmoe cross %d/%d wide %d%s%s: tables", feature_cross,
			 output_cross, (int) wide_type, share_gates ? " shared gate" : "",
			 steps_first ? " after steps" : "");
	/* only looked-up rows have a gradient; the others must have none */
	for (uint32_t t = 0; t < m->n_tables; t++)
		total += check_fd_range(m, &hb.b, an, m->table[t].off,
								(size_t) m->table[t].rows * m->table[t].dim, 1, what);
	snprintf(what, sizeof(what), "mmoe cross %d/%d wide %d%s: dense", feature_cross,
			 output_cross, (int) wide_type, share_gates ? " shared gate" : "");
	total += check_fd_range(m, &hb.b, an, m->n_embedding, m->n_params - m->n_embedding, 1, what);
	CHECK(total > GRAD_FLOOR, "%s: no gradient at all", what);

	/* each part that the cross wires in receives a gradient */
	wide_used = feature_cross != 0 || (wide_type != MMOE_WIDE_RAW && output_cross == 0);
	for (uint32_t t = 0; t < m->n_tables; t++)
	{
		const esmm_table *tb = &m->table[t];
		double		g = 0.0;

		for (size_t i = 0; i < (size_t) tb->rows * tb->dim; i++)
			g = fmax(g, fabs(an[tb->off + i]));
		CHECK(g > GRAD_FLOOR, "cross %d/%d wide %d: table %u (feature %u, role %u) has no gradient",
			  feature_cross, output_cross, (int) wide_type, t, tb->feature, tb->role);
	}
	{
		int			has_wide_table = 0;

		for (uint32_t t = 0; t < m->n_tables; t++)
			has_wide_table |= m->table[t].feature == 1 || m->table[t].feature == 4;
		CHECK(has_wide_table == wide_used,
			  "cross %d/%d wide %d: the wide-only features have tables: %d, expected %d",
			  feature_cross, output_cross, (int) wide_type, has_wide_table, wide_used);
	}
	free(an);
	esmm_model_free(m);
}

static void
test_gradients(void)
{
	for (int fc = 0; fc <= 5; fc++)
		for (int oc = 0; oc <= 1; oc++)
			for (int w = MMOE_WIDE_FM; w <= MMOE_WIDE_RAW; w++)
				gradient_check(fc, oc, (mmoe_wide_type) w, 0, 0);
	gradient_check(2, 0, MMOE_WIDE_FM, 1, 0);
	gradient_check(5, 0, MMOE_WIDE_LR, 1, 0);
	gradient_check(2, 0, MMOE_WIDE_FM, 0, 3);
}

/* ---------------------------------------------------------- the wiring */

/* Seed 002's meanings as widths: what the experts and task towers read. */
static void
test_widths(void)
{
	esmm_schema s;
	const uint32_t Dm = 3 + 2 + 2;	/* ad, price + indicator, tags */
	const uint32_t Dw = 2 + 1 + 3;	/* user, age, ad */
	const uint32_t H = 3;

	make_schema(&s, 2);
	for (int fc = 0; fc <= 5; fc++)
		for (int w = MMOE_WIDE_FM; w <= MMOE_WIDE_RAW; w++)
		{
			mmoe_arch	a;
			esmm_model *m = NULL;
			esmm_status st;
			mmoe_widths wd;
			uint32_t	want_task = H;

			make_arch(&a, 2, fc, 0, (mmoe_wide_type) w);
			if (mmoe_model_create(&m, &s, &a, &st) != ESMM_OK)
			{
				CHECK(0, "create cross %d wide %d: %s", fc, w, st.msg);
				continue;
			}
			mmoe_model_widths(m, &wd);
			CHECK(wd.expert_in == (fc >= 1 && fc <= 3 ? Dm + Dw : Dm),
				  "cross %d wide %d: experts read %u", fc, w, wd.expert_in);
			if (fc == 2 || fc == 4)
				want_task += Dw;
			else if (fc == 3 || fc == 5)
				want_task += w == MMOE_WIDE_RAW ? Dw : 1;
			CHECK(wd.task_in == want_task, "cross %d wide %d: task towers read %u, not %u",
				  fc, w, wd.task_in, want_task);
			esmm_model_free(m);
		}
}

/* output_cross 0 adds the wide output to every logit: with the wide
 * bias moved by d, every task's logit moves by d; with 1 it does not. */
static void
test_output_cross(void)
{
	esmm_schema s;
	hand_batch	hb;

	make_schema(&s, 3);
	make_batch(&hb, 3);
	for (int oc = 0; oc <= 1; oc++)
	{
		mmoe_arch	a;
		esmm_model *m;
		float		before[HB_ROWS * 3],
					after[HB_ROWS * 3];
		size_t		bias;
		double		worst = 0.0;

		make_arch(&a, 3, 0, oc, MMOE_WIDE_LR);
		a.task_output_sigmoid = 0;
		a.task_type[1] = MMOE_TASK_BINARY;
		if ((m = new_mmoe(&s, &a, HB_ROWS, 0.0f)) == NULL)
			return;
		mmoe_model_predict(m, &hb.b, before);
		if (oc == 1)
		{
			CHECK(m->n_tables == 2, "output_cross 1, feature_cross 0: no wide tables (%u tables)",
				  m->n_tables);
			esmm_model_free(m);
			continue;
		}
		/* the wide bias is the first dense parameter */
		bias = m->n_embedding;
		m->params[bias] += 0.75f;
		mmoe_model_predict(m, &hb.b, after);
		for (int i = 0; i < HB_ROWS * 3; i++)
			worst = fmax(worst, fabs((after[i] - before[i]) - 0.75));
		CHECK(worst < 1e-5, "output_cross 0: each logit moves with the wide output (off by %g)", worst);
		esmm_model_free(m);
	}
}

/* ------------------------------------------------------------ the init */

static void
test_experts_differ(void)
{
	esmm_schema s;
	mmoe_arch	a;
	esmm_model *m,
			   *again;
	hand_batch	hb;
	size_t		per_expert;
	float		out[HB_ROWS * 2];

	make_schema(&s, 2);
	make_arch(&a, 2, 0, 1, MMOE_WIDE_FM);
	make_batch(&hb, 2);
	if ((m = new_mmoe(&s, &a, HB_ROWS, 0.0f)) == NULL)
		return;
	/* experts are laid out one after another, each the same size */
	per_expert = (size_t) m->mmoe.expert.layers[0].units * 7 + 4 + 8 + 4 * 3 + 3;
	for (uint32_t i = 0; i < a.n_experts; i++)
		for (uint32_t j = i + 1; j < a.n_experts; j++)
		{
			const float *ei = m->params + m->n_embedding + i * per_expert;
			const float *ej = m->params + m->n_embedding + j * per_expert;
			size_t		same = 0;

			for (size_t k = 0; k < 4 * 7; k++)
				same += ei[k] == ej[k];
			CHECK(same == 0, "experts %u and %u start with %zu equal first-layer weights", i, j, same);
		}
	/* and the whole model is a function of the seed alone */
	again = new_mmoe(&s, &a, HB_ROWS, 0.0f);
	if (again != NULL)
	{
		CHECK(memcmp(m->params, again->params, m->n_params * sizeof(float)) == 0,
			  "the same seed gives the same initial weights");
		esmm_model_free(again);
	}
	/* the gates then see different experts: not every gate is uniform */
	mmoe_model_predict(m, &hb.b, out);
	CHECK(isfinite(out[0]) && out[0] > 0.0f && out[0] < 1.0f, "a binary task scores in (0,1): %g",
		  (double) out[0]);
	esmm_model_free(m);
}

/* ------------------------------------------------------------- training */

typedef struct sim_data
{
	esmm_dataset ds;
	esmm_chunk	chunk;
} sim_data;

static uint64_t sim_rng = UINT64_C(0x2545F4914F6CDD1D);

static double
sim_uniform(void)
{
	sim_rng ^= sim_rng << 13;
	sim_rng ^= sim_rng >> 7;
	sim_rng ^= sim_rng << 17;
	return (sim_rng >> 11) * (1.0 / 9007199254740992.0);
}

/*
 * n rows whose labels depend on the features: click on the ad and the
 * user interacting (only an FM or the experts can see a product), spend on
 * the price, like on the tags.
 */
static void
make_sim(sim_data *d, size_t n)
{
	esmm_chunk *c = &d->chunk;

	memset(d, 0, sizeof(*d));
	d->ds.n_ids = 2;
	d->ds.n_nums = 2;
	d->ds.n_labels = 3;
	d->ds.n_multi = 1;
	d->ds.n_rows = n;
	d->ds.n_chunks = 1;
	d->ds.chunks = c;
	c->ids = malloc(ESMM_CHUNK_ROWS * 2 * sizeof(int32_t));
	c->nums = malloc(ESMM_CHUNK_ROWS * 2 * sizeof(float));
	c->labels = malloc(ESMM_CHUNK_ROWS * 3 * sizeof(float));
	c->multi_off = malloc((ESMM_CHUNK_ROWS + 1) * sizeof(uint32_t));
	c->multi_ids = malloc(ESMM_CHUNK_ROWS * 2 * sizeof(int32_t));
	c->multi_cap = ESMM_CHUNK_ROWS * 2;
	c->multi_off[0] = 0;
	for (size_t r = 0; r < n; r++)
	{
		int32_t		ad = (int32_t) (sim_uniform() * 7),
					user = (int32_t) (sim_uniform() * 5);
		float		price = (float) (sim_uniform() * 4.0 - 1.0);
		int32_t		tag = (int32_t) (sim_uniform() * 6);
		double		z_click = ((ad % 2) == (user % 2) ? 1.5 : -1.5);
		double		z_like = tag < 3 ? 1.2 : -1.2;

		c->ids[r * 2] = ad;
		c->ids[r * 2 + 1] = user;
		c->nums[r * 2] = price;
		c->nums[r * 2 + 1] = (float) (sim_uniform() * 50.0);
		c->labels[r * 3] = sim_uniform() < 1.0 / (1.0 + exp(-z_click));
		c->labels[r * 3 + 1] = 0.5f * price + 0.2f * (float) (sim_uniform() - 0.5);
		c->labels[r * 3 + 2] = sim_uniform() < 1.0 / (1.0 + exp(-z_like));
		c->multi_ids[r] = tag;
		c->multi_off[r + 1] = (uint32_t) (r + 1);
	}
}

/* All of d's rows as one batch. */
static esmm_batch
sim_batch(const sim_data *d)
{
	esmm_batch	b;

	memset(&b, 0, sizeof(b));
	b.B = (int) d->ds.n_rows;
	b.ids = d->chunk.ids;
	b.nums = d->chunk.nums;
	b.labels = d->chunk.labels;
	b.multi_off = d->chunk.multi_off;
	b.multi_ids = d->chunk.multi_ids;
	return b;
}

static void
free_sim(sim_data *d)
{
	free(d->chunk.ids);
	free(d->chunk.nums);
	free(d->chunk.labels);
	free(d->chunk.multi_off);
	free(d->chunk.multi_ids);
}

/* A progress callback that counts evaluation batches in *arg and stops
 * at the call where the count reaches 0 */
static int
count_batches(void *arg, const esmm_progress *p)
{
	int		   *calls = (int *) arg;

	return p->evaluating && ++*calls == 0;
}

static void
test_training(void)
{
	esmm_schema s;
	mmoe_arch	a;
	sim_data	d;
	esmm_model *m;
	esmm_train_spec ts;
	esmm_eval_spec ev;
	esmm_status st;
	double		values[4],
				loss;
	static const char *const names[4] = {"click_auc", "like_auc", "spend_mse", "click_logloss"};
	static const uint8_t labels[4] = {0, 2, 1, 0};
	static const uint8_t kinds[4] = {ESMM_METRIC_AUC, ESMM_METRIC_AUC, ESMM_METRIC_MSE,
	ESMM_METRIC_LOGLOSS};

	make_schema(&s, 3);
	make_arch(&a, 3, 2, 0, MMOE_WIDE_FM);
	/* the gradient checks cover the regularizers; here they would only
	 * slow a 10-epoch fit down */
	a.l2_embedding = a.gate_l1 = a.gate_l2 = a.wide_l1 = a.wide_l2 = 0.0f;
	a.expert.l1 = a.expert.l2 = 0.0f;
	for (int t = 0; t < 3; t++)
		a.task[t].l1 = a.task[t].l2 = 0.0f;
	make_sim(&d, 4000);
	memset(&ev, 0, sizeof(ev));
	ev.n_metrics = 4;
	for (int k = 0; k < 4; k++)
	{
		ev.metrics[k].label = labels[k];
		ev.metrics[k].metric = kinds[k];
		strcpy(ev.metrics[k].name, names[k]);
	}
	ev.monitor = ESMM_MONITOR_NONE;
	ts = shuffled_spec(64, 10, 11);
	if ((m = new_mmoe(&s, &a, 64, 0.02f)) == NULL)
	{
		free_sim(&d);
		return;
	}
	esmm_status_clear(&st);
	CHECK(esmm_model_evaluate(m, &d.ds, &ev, values, &loss, NULL, NULL, &st) == ESMM_OK, "evaluate: %s", st.msg);
	{
		int			calls = 0;
		double		again;

		/* MMoE's evaluation reports its batches too, and can be stopped */
		CHECK(esmm_model_evaluate(m, &d.ds, &ev, values, &again, count_batches, &calls, &st) == ESMM_OK &&
			  again == loss && (size_t) calls == (d.ds.n_rows + 63) / 64,
			  "%d progress calls for %zu rows in batches of 64", calls, d.ds.n_rows);
		calls = -1;				/* count_batches stops at call 0 */
		CHECK(esmm_model_evaluate(m, &d.ds, &ev, values, &again, count_batches, &calls, &st) == ESMM_ERR_CANCELED &&
			  calls == 0, "a nonzero return stops the evaluation");
		(void) esmm_model_evaluate(m, &d.ds, &ev, values, &loss, NULL, NULL, &st);
	}
	{
		double		loss0 = loss;

		CHECK(esmm_model_fit(m, &d.ds, NULL, &ts, &ev, NULL, NULL, &st) == ESMM_OK, "fit: %s", st.msg);
		CHECK(m->report.n_epochs == 10, "6 epochs of history, got %u", m->report.n_epochs);
		CHECK(m->report.n_epochs == 10 &&
			  m->report.epochs[9].train_loss < 0.8 * m->report.epochs[0].train_loss,
			  "the training loss goes down: %g then %g", m->report.epochs[0].train_loss,
			  m->report.n_epochs == 10 ? m->report.epochs[9].train_loss : NAN);
		CHECK(esmm_model_evaluate(m, &d.ds, &ev, values, &loss, NULL, NULL, &st) == ESMM_OK, "evaluate: %s", st.msg);
		CHECK(loss < 0.7 * loss0, "the evaluated loss goes down: %g then %g", loss0, loss);
	}
	/* the generating rules give AUCs of about 0.82 (click) and 0.80 (like) */
	CHECK(values[0] > 0.78, "click AUC %g: the ad x user interaction was learned", values[0]);
	CHECK(values[1] > 0.75, "like AUC %g", values[1]);
	CHECK(values[2] < 0.03, "spend MSE %g (label noise variance 0.0033)", values[2]);
	CHECK(isfinite(values[3]) && values[3] < 0.55, "click logloss %g", values[3]);
	esmm_model_free(m);
	free_sim(&d);
}

/* mmoe_model_predict returns probabilities of binary tasks (with
 * task_output_sigmoid) and raw values of regression tasks; without
 * task_output_sigmoid, logits; batches of one give the same scores. */
static void
test_predict(void)
{
	esmm_schema s;
	mmoe_arch	a;
	hand_batch	hb;
	esmm_model *m;
	float		probs[HB_ROWS * 3],
				logits[HB_ROWS * 3],
				one[3];

	make_schema(&s, 3);
	make_arch(&a, 3, 3, 0, MMOE_WIDE_FM);
	make_batch(&hb, 3);
	if ((m = new_mmoe(&s, &a, HB_ROWS, 0.0f)) == NULL)
		return;
	mmoe_model_predict(m, &hb.b, probs);
	m->mmoe.task_output_sigmoid = 0;
	mmoe_model_predict(m, &hb.b, logits);
	for (int b = 0; b < HB_ROWS; b++)
		for (int t = 0; t < 3; t++)
		{
			float		p = probs[b * 3 + t],
						z = logits[b * 3 + t];

			if (t == 1)
				CHECK(p == z, "regression task: no output activation (%g, %g)", (double) p, (double) z);
			else
				CHECK_NEAR(p, 1.0 / (1.0 + exp(-z)), 1e-6, "binary task: sigmoid of the logit");
		}
	m->mmoe.task_output_sigmoid = 1;
	for (int b = 0; b < HB_ROWS; b++)
	{
		esmm_batch	single = batch_rows(&hb.b, b, 1);

		mmoe_model_predict(m, &single, one);
		for (int t = 0; t < 3; t++)
			CHECK_NEAR(one[t], probs[b * 3 + t], 1e-5, "row scored alone or in a batch");
	}
	esmm_model_free(m);
}

/*
 * A batch of several row blocks (the threads' share of scoring) scores
 * the same bits on one thread and on two, since the blocks and not the
 * threads decide the work; and every row as it scores alone.
 */
static void
test_predict_blocks(void)
{
	enum
	{
		N = 3 * ESMM_BLOCK_ROWS + 7
	};
	esmm_schema s;
	mmoe_arch	a;
	sim_data	d;
	esmm_model *m;
	esmm_batch	b;
	float	   *out[3],
				one[3];
	int			in_range = 1;
	/* 8 threads cannot each have their own stretch of N rows: the blocks
	 * then run in their batch rows' places */
	static const int threads[3] = {1, 2, 8};

	make_schema(&s, 3);
	make_arch(&a, 3, 3, 0, MMOE_WIDE_FM);
	make_sim(&d, N);
	for (int i = 0; i < 3; i++)
		out[i] = malloc(N * 3 * sizeof(float));
	if ((m = new_mmoe(&s, &a, N, 0.0f)) == NULL || out[0] == NULL || out[1] == NULL ||
		out[2] == NULL)
		goto done;
	b = sim_batch(&d);
	for (int i = 0; i < 3; i++)
	{
		for (int j = 0; j < N * 3; j++)
			out[i][j] = NAN;
		omp_set_num_threads(threads[i]);
		mmoe_model_predict(m, &b, out[i]);
	}
	omp_set_num_threads(1);
	for (int i = 1; i < 3; i++)
		CHECK(memcmp(out[0], out[i], N * 3 * sizeof(float)) == 0,
			  "%d rows in blocks: the scores differ between 1 and %d threads", N, threads[i]);
	for (int r = 0; r < N; r++)
		for (int t = 0; t < 3; t++)
			in_range &= t == 1 ? isfinite(out[0][r * 3 + t]) :
				out[0][r * 3 + t] >= 0.0f && out[0][r * 3 + t] <= 1.0f;
	CHECK(in_range, "every score is finite, and a probability for the binary tasks");
	for (int r = 0; r < N; r += 29)
	{
		esmm_batch	single = batch_rows(&b, r, 1);

		mmoe_model_predict(m, &single, one);
		for (int t = 0; t < 3; t++)
			CHECK(fabs(one[t] - out[0][r * 3 + t]) <= 1e-5,
				  "row %d, task %d: %g alone, %g in its block", r, t, one[t], out[0][r * 3 + t]);
	}
done:
	esmm_model_free(m);
	for (int i = 0; i < 3; i++)
		free(out[i]);
	free_sim(&d);
}

/* forward_backward of batch b on one thread, then on two: each's
 * gradients in g[0] and g[1], its data loss in loss[0] and loss[1];
 * returns whether they have the same bits. */
static int
same_on_1_and_2_threads(esmm_model *m, const esmm_batch *b, float *g[2], double loss[2])
{
	for (int th = 0; th < 2; th++)
	{
		omp_set_num_threads(th + 1);
		esmm_model_forward_backward(m, b, &loss[th]);
		memcpy(g[th], m->grads, m->n_params * sizeof(float));
	}
	omp_set_num_threads(1);
	return memcmp(g[0], g[1], m->n_params * sizeof(float)) == 0 && loss[0] == loss[1];
}

/*
 * Training in row blocks (a batch of more than ESMM_BLOCK_ROWS rows, no
 * batch norm): the gradients have the same bits on one thread and on
 * two, and they are the gradients of the whole batch: the row-weighted
 * mean of those of its parts, each small enough to run as one block.
 */
static void
test_train_blocks(void)
{
	enum
	{
		N = 2 * ESMM_BLOCK_ROWS + 7,
		PART = 100
	};
	esmm_schema s;
	mmoe_arch	a;
	sim_data	d;
	esmm_model *m;
	esmm_batch	b;
	float	   *g[2] = {NULL, NULL};
	double	   *want = NULL,
				loss[2],
				loss_want = 0.0,
				scale = 0.0,
				diff = 0.0;

	make_schema(&s, 3);
	make_arch(&a, 3, 3, 0, MMOE_WIDE_FM);
	a.expert.layers[0].use_bn = 0;
	make_sim(&d, N);
	if ((m = new_mmoe(&s, &a, N, 0.01f)) == NULL)
	{
		free_sim(&d);
		return;
	}
	b = sim_batch(&d);
	g[0] = malloc(m->n_params * sizeof(float));
	g[1] = malloc(m->n_params * sizeof(float));
	want = calloc(m->n_params, sizeof(double));
	if (g[0] == NULL || g[1] == NULL || want == NULL)
		goto done;
	CHECK(same_on_1_and_2_threads(m, &b, g, loss),
		  "%d rows in blocks: the gradients differ between 1 and 2 threads", N);

	/* each part's gradient has its own regularizers; weighted by its rows
	 * they add up to the whole batch's once */
	for (int b0 = 0; b0 < N; b0 += PART)
	{
		int			n = N - b0 < PART ? N - b0 : PART;
		esmm_batch	part = batch_rows(&b, b0, n);
		double		part_loss;

		esmm_model_forward_backward(m, &part, &part_loss);
		loss_want += part_loss * n / N;
		for (size_t i = 0; i < m->n_params; i++)
			want[i] += (double) m->grads[i] * n / N;
	}
	for (size_t i = 0; i < m->n_params; i++)
	{
		scale = fmax(scale, fabs(want[i]));
		diff = fmax(diff, fabs(g[0][i] - want[i]));
	}
	CHECK(scale > 1e-4 && diff <= 1e-5 * scale,
		  "the blocks' gradient is the batch's: max difference %g, largest gradient %g", diff, scale);
	CHECK(fabs(loss[0] - loss_want) <= 1e-6 * fabs(loss_want),
		  "the blocks' loss is the batch's: %.9g vs %.9g", loss[0], loss_want);

	/* with dropout, each block draws its own masks: the same for any
	 * thread count */
	esmm_model_free(m);
	a.expert.layers[1].dropout = 0.3f;
	a.task[0].layers[0].dropout = 0.2f;
	if ((m = new_mmoe(&s, &a, N, 0.01f)) == NULL)
		goto done;
	CHECK(same_on_1_and_2_threads(m, &b, g, loss),
		  "%d rows in blocks, with dropout: the gradients differ between 1 and 2 threads", N);
done:
	free(g[0]);
	free(g[1]);
	free(want);
	esmm_model_free(m);
	free_sim(&d);
}

/* --------------------------------------------------------------- format */

/*
 * An MMoE model after a few steps (batch norm statistics moved, Adam
 * state) encodes and decodes to the same architecture, parameters and
 * scores; every truncation and every single-byte change (with the
 * checksum recomputed, so the deep checks run) is rejected or decodes to
 * a model that still scores finite numbers.
 */
static void
test_format_round_trip(void)
{
	esmm_schema s;
	mmoe_arch	a;
	hand_batch	hb;
	esmm_model *m,
			   *d = NULL;
	esmm_status st;
	uint8_t    *buf,
			   *bad;
	size_t		len;
	float		want[HB_ROWS * 3],
				got[HB_ROWS * 3];
	int			rejected = 0,
				tries = 0,
				survived = 0;

	make_schema(&s, 3);
	make_arch(&a, 3, 5, 0, MMOE_WIDE_FM);
	a.share_gates = 1;
	make_batch(&hb, 3);
	if ((m = new_mmoe(&s, &a, HB_ROWS, 0.01f)) == NULL)
		return;
	for (int i = 0; i < 3; i++)
	{
		esmm_model_forward_backward(m, &hb.b, NULL);
		esmm_model_step(m);
	}
	mmoe_model_predict(m, &hb.b, want);
	len = esmm_model_encoded_size(m, 1);
	buf = malloc(len);
	bad = malloc(len);
	esmm_status_clear(&st);
	CHECK(esmm_model_encode(m, 1, buf, len, crc32c_ref, &st) == ESMM_OK, "encode: %s", st.msg);
	CHECK(esmm_model_peek_kind(buf, len) == ESMM_KIND_MMOE, "the header says mmoe");
	CHECK(esmm_model_decode(&d, buf, len, crc32c_ref, 1, &st) == ESMM_OK, "decode: %s", st.msg);
	if (d != NULL)
	{
		CHECK(d->kind == ESMM_KIND_MMOE && memcmp(&d->mmoe, &m->mmoe, sizeof(mmoe_arch)) == 0,
			  "the architecture survives the round trip");
		CHECK(d->n_params == m->n_params &&
			  memcmp(d->params, m->params, m->n_params * sizeof(float)) == 0 &&
			  memcmp(d->state, m->state, m->n_state * sizeof(float)) == 0 &&
			  memcmp(d->m1, m->m1, m->n_params * sizeof(float)) == 0 && d->step == m->step,
			  "parameters, statistics and optimizer state survive the round trip");
		if (esmm_model_workspace(d, HB_ROWS, &st) == ESMM_OK)
		{
			mmoe_model_predict(d, &hb.b, got);
			CHECK(memcmp(want, got, sizeof(want)) == 0, "the decoded model scores bit-identically");
		}
		esmm_model_free(d);
	}
	for (size_t cut = 0; cut < len; cut += 1 + cut / 64)
	{
		tries++;
		d = NULL;
		if (esmm_model_decode(&d, buf, cut, crc32c_ref, 1, &st) == ESMM_ERR_FORMAT && d == NULL)
			rejected++;
		esmm_model_free(d);
	}
	CHECK(tries > 100 && rejected == tries, "truncations rejected: %d of %d", rejected, tries);
	/* every byte of the header and architecture, flipped, the CRC fixed */
	for (size_t i = 4; i < len && i < 2048; i++)
	{
		if (i >= 8 && i < 12)
			continue;
		memcpy(bad, buf, len);
		bad[i] ^= 0x5A;
		{
			uint32_t	c = crc32c_ref(bad + 12, len - 12);

			memcpy(bad + 8, &c, 4);
		}
		d = NULL;
		if (esmm_model_decode(&d, bad, len, crc32c_ref, 1, &st) != ESMM_OK)
		{
			CHECK(d == NULL && st.msg[0] != '\0', "a rejection says why (byte %zu)", i);
			continue;
		}
		if (d->kind == ESMM_KIND_MMOE && d->schema.n_labels == 3 &&
			esmm_model_workspace(d, HB_ROWS, &st) == ESMM_OK)
		{
			int			finite = 1;

			mmoe_model_predict(d, &hb.b, got);
			for (int k = 0; k < HB_ROWS * 3; k++)
				finite &= !isnan(got[k]);
			survived += finite;
			CHECK(finite, "a model that decodes after byte %zu changed scores numbers", i);
		}
		esmm_model_free(d);
	}
	CHECK(survived > 0, "some changes (parameter bytes) still decode: %d", survived);
	free(buf);
	free(bad);
	esmm_model_free(m);
}

/* ----------------------------------------------------------- validation */

static void
expect_rejected(const mmoe_arch *a, uint32_t n_labels, const char *what)
{
	esmm_schema s;
	esmm_model *m = NULL;
	esmm_status st;

	make_schema(&s, n_labels);
	esmm_status_clear(&st);
	CHECK(mmoe_model_create(&m, &s, a, &st) == ESMM_ERR_ARGUMENT && m == NULL && st.msg[0] != '\0',
		  "%s is rejected (%s)", what, st.msg);
	esmm_model_free(m);
}

static void
test_validation(void)
{
	mmoe_arch	a;

	make_arch(&a, 2, 2, 0, MMOE_WIDE_FM);
	a.n_experts = 0;
	expect_rejected(&a, 2, "no experts");
	make_arch(&a, 2, 2, 0, MMOE_WIDE_FM);
	a.n_experts = MMOE_MAX_EXPERTS + 1;
	expect_rejected(&a, 2, "too many experts");
	make_arch(&a, 2, 2, 0, MMOE_WIDE_FM);
	expect_rejected(&a, 3, "two tasks for three labels");
	make_arch(&a, 2, 6, 0, MMOE_WIDE_FM);
	expect_rejected(&a, 2, "feature_cross 6");
	make_arch(&a, 2, 2, 2, MMOE_WIDE_FM);
	expect_rejected(&a, 2, "output_cross 2");
	make_arch(&a, 2, 2, 0, MMOE_WIDE_FM);
	a.task[1].layers[1].units = 2;
	expect_rejected(&a, 2, "a task tower that does not end in width 1");
	make_arch(&a, 2, 2, 0, MMOE_WIDE_FM);
	a.wide_inputs[2] = 1;
	expect_rejected(&a, 2, "a repeated wide input");
	make_arch(&a, 2, 2, 0, MMOE_WIDE_FM);
	a.wide_inputs[0] = 5;
	expect_rejected(&a, 2, "a wide input past the schema");
	make_arch(&a, 2, 2, 0, MMOE_WIDE_FM);
	a.expert.inputs[1] = 200;
	expect_rejected(&a, 2, "an expert input past the schema");
	make_arch(&a, 2, 2, 0, MMOE_WIDE_FM);
	a.task_type[0] = 2;
	expect_rejected(&a, 2, "an unknown task type");
	make_arch(&a, 2, 2, 0, MMOE_WIDE_FM);
	a.loss_weights[1] = NAN;
	expect_rejected(&a, 2, "a NaN loss weight");
	make_arch(&a, 2, 2, 0, MMOE_WIDE_FM);
	a.wide_width = 0;
	expect_rejected(&a, 2, "an FM of width 0");
	make_arch(&a, 2, 2, 0, MMOE_WIDE_FM);
	a.task[0].n_inputs = 1;
	expect_rejected(&a, 2, "a task tower with feature inputs");
	make_arch(&a, 2, 2, 0, MMOE_WIDE_FM);
	a.use_wide = 0;
	expect_rejected(&a, 2, "wide inputs with the wide part off");
}

void
suite_mmoe(void)
{
	test_gradients();
	test_widths();
	test_output_cross();
	test_experts_differ();
	test_training();
	test_predict();
	test_predict_blocks();
	test_train_blocks();
	test_format_round_trip();
	test_validation();
}
