/*
 * model_merge.c: warm starts and model averaging (SPEC §5).
 *
 * A warm start continues training from an earlier model of the same
 * shapes; the streaming aggregates' combine function averages the models
 * that parallel workers trained on their slices, weighted by rows.  Both
 * need the same answer to "are these two models the same tensors?", which
 * esmm_model_compatible gives with the first difference it finds.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "esmm_model.h"

static const char *
kind_name(esmm_model_kind k)
{
	switch (k)
	{
		case ESMM_KIND_ESMM:
			return "esmm";
		case ESMM_KIND_ESMM_CTR:
			return "esmm-ctr";
		case ESMM_KIND_ESMM_CVR:
			return "esmm-cvr";
		case ESMM_KIND_MMOE:
			return "mmoe";
	}
	return "unknown";
}

static const char *
feature_kind_name(uint8_t k)
{
	return k == ESMM_FEAT_CATEGORICAL ? "categorical" :
		k == ESMM_FEAT_NUMERIC ? "numeric" : k == ESMM_FEAT_MULTI ? "multi" : "unknown";
}

/* Whether two layer stacks have the same tensors and activations. */
static int
tower_shape_equal(const esmm_tower_spec *a, const esmm_tower_spec *b)
{
	if (a->n_layers != b->n_layers || a->n_inputs != b->n_inputs ||
		memcmp(a->inputs, b->inputs, a->n_inputs * sizeof(a->inputs[0])) != 0)
		return 0;
	for (uint32_t l = 0; l < a->n_layers; l++)
		if (a->layers[l].units != b->layers[l].units ||
			a->layers[l].use_bias != b->layers[l].use_bias ||
			a->layers[l].act != b->layers[l].act ||
			a->layers[l].use_bn != b->layers[l].use_bn)
			return 0;
	return 1;
}

/* The first MMoE architecture field that shapes a tensor and differs. */
static const char *
mmoe_difference(const mmoe_arch *a, const mmoe_arch *b)
{
	if (a->n_tasks != b->n_tasks)
		return "the number of tasks";
	if (memcmp(a->task_type, b->task_type, a->n_tasks) != 0)
		return "task_types";
	if (a->task_output_sigmoid != b->task_output_sigmoid)
		return "task_output_act";
	if (a->n_experts != b->n_experts)
		return "num_experts";
	if (!tower_shape_equal(&a->expert, &b->expert))
		return "the experts (expert_layers, expert_act, expert_use_bias, expert_use_bn or the mmoe group)";
	if (a->gate_use_bias != b->gate_use_bias || a->share_gates != b->share_gates)
		return "the gates (gate_use_bias, share_gates)";
	for (uint32_t t = 0; t < a->n_tasks; t++)
		if (!tower_shape_equal(&a->task[t], &b->task[t]))
			return "the task towers (task_structs, task_hidden_act, task_use_bias, task_use_bn)";
	if (a->use_wide != b->use_wide || a->wide_type != b->wide_type ||
		a->wide_width != b->wide_width || a->n_wide_inputs != b->n_wide_inputs ||
		memcmp(a->wide_inputs, b->wide_inputs, a->n_wide_inputs * sizeof(a->wide_inputs[0])) != 0 ||
		a->feature_cross != b->feature_cross || a->output_cross != b->output_cross)
		return "the wide part (use_wide, wide_type, wide_width, the wide group, feature_cross, output_cross)";
	return NULL;
}

esmm_code
esmm_model_compatible(const esmm_model *m, const esmm_model *earlier, esmm_status *st)
{
	const esmm_schema *a = &m->schema,
			   *b = &earlier->schema;
	static const char *const tower_names[2] = {"ctr", "cvr"};

	if (m->kind != earlier->kind)
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "the earlier model is an %s model, not %s",
						 kind_name(earlier->kind), kind_name(m->kind));
	if (a->n_features != b->n_features)
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "the earlier model has %u features, this one %u",
						 b->n_features, a->n_features);
	for (uint32_t f = 0; f < a->n_features; f++)
	{
		const esmm_feature *x = &a->features[f],
				   *y = &b->features[f];

		if (strcmp(x->name, y->name) != 0 || x->kind != y->kind || x->hashed != y->hashed ||
			x->norm != y->norm || x->null_indicator != y->null_indicator ||
			x->n_buckets != y->n_buckets || (x->kind != ESMM_FEAT_NUMERIC && x->dim != y->dim))
			return esmm_fail(st, ESMM_ERR_ARGUMENT,
							 "feature %u is \"%s\" (%s, %u buckets, width %u) in the earlier model, \"%s\" (%s, %u buckets, width %u) in this one",
							 f + 1, y->name, feature_kind_name(y->kind), y->n_buckets, y->dim,
							 x->name, feature_kind_name(x->kind), x->n_buckets, x->dim);
	}
	if (a->n_labels != b->n_labels)
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "the earlier model has %u labels, this one %u",
						 b->n_labels, a->n_labels);
	for (uint32_t l = 0; l < a->n_labels; l++)
		if (strcmp(a->labels[l], b->labels[l]) != 0)
			return esmm_fail(st, ESMM_ERR_ARGUMENT, "label %u is \"%s\" in the earlier model, \"%s\" in this one",
							 l + 1, b->labels[l], a->labels[l]);
	if (m->kind == ESMM_KIND_MMOE)
	{
		const char *what = mmoe_difference(&m->mmoe, &earlier->mmoe);

		if (what != NULL)
			return esmm_fail(st, ESMM_ERR_ARGUMENT, "%s differ from the earlier model's", what);
	}
	else
	{
		if (m->arch.label_is_ctcvr != earlier->arch.label_is_ctcvr)
			return esmm_fail(st, ESMM_ERR_ARGUMENT,
							 "the earlier model's second label is a %s label, this one's a %s label",
							 earlier->arch.label_is_ctcvr ? "ctcvr" : "cvr",
							 m->arch.label_is_ctcvr ? "ctcvr" : "cvr");
		for (int t = 0; t < 2; t++)
			if (m->has_tower[t] != earlier->has_tower[t] ||
				(m->has_tower[t] && !tower_shape_equal(&m->arch.tower[t], &earlier->arch.tower[t])))
				return esmm_fail(st, ESMM_ERR_ARGUMENT,
								 "the %s tower (units, activations, use_bias, use_bn or inputs) differs from the earlier model's",
								 tower_names[t]);
	}
	/* what every check above implies; a crafted model could still differ */
	if (m->n_params != earlier->n_params || m->n_state != earlier->n_state)
		return esmm_fail(st, ESMM_ERR_ARGUMENT,
						 "the earlier model has %zu parameters and %zu statistics, this one %zu and %zu",
						 earlier->n_params, earlier->n_state, m->n_params, m->n_state);
	return ESMM_OK;
}

esmm_code
esmm_model_warm_start(esmm_model *m, const esmm_model *earlier, int with_optimizer,
					  int *optimizer_restored, esmm_status *st)
{
	esmm_code	rc;
	esmm_history_epoch *h = NULL;

	*optimizer_restored = 0;
	if ((rc = esmm_model_compatible(m, earlier, st)) != ESMM_OK)
		return rc;
	if (earlier->report.n_epochs > 0)
	{
		h = malloc(earlier->report.n_epochs * sizeof(*h));
		if (h == NULL)
			return esmm_fail(st, ESMM_ERR_NOMEM, "out of memory for the earlier model's history");
		memcpy(h, earlier->report.epochs, earlier->report.n_epochs * sizeof(*h));
	}
	free(m->report.epochs);
	m->report.epochs = h;
	m->report.n_epochs = earlier->report.n_epochs;
	memcpy(m->params, earlier->params, m->n_params * sizeof(float));
	if (m->n_state > 0)
		memcpy(m->state, earlier->state, m->n_state * sizeof(float));
	/* the weights were learned on inputs normalized with these */
	for (uint32_t f = 0; f < m->schema.n_features; f++)
	{
		m->schema.features[f].mean = earlier->schema.features[f].mean;
		m->schema.features[f].std = earlier->schema.features[f].std;
	}
	if (with_optimizer && earlier->m1 != NULL && earlier->m2 != NULL && m->m1 != NULL &&
		earlier->optim.kind == m->optim.kind)
	{
		memcpy(m->m1, earlier->m1, m->n_params * sizeof(float));
		memcpy(m->m2, earlier->m2, m->n_params * sizeof(float));
		m->step = earlier->step;
		*optimizer_restored = 1;
	}
	return ESMM_OK;
}

/* x = x + w * (y - x) over n floats: the weighted mean with weight w on y. */
static void
blend(float *x, const float *y, size_t n, double w)
{
	const float wf = (float) w;

	for (size_t i = 0; i < n; i++)
		x[i] += wf * (y[i] - x[i]);
}

esmm_code
esmm_model_average(esmm_model *m, double w_m, const esmm_model *other, double w_other,
				   esmm_status *st)
{
	esmm_code	rc;
	double		w;

	if ((rc = esmm_model_compatible(m, other, st)) != ESMM_OK)
		return rc;
	if (!(w_m >= 0 && w_other >= 0))
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "averaging weights must not be negative");
	if (w_m + w_other <= 0)
		return ESMM_OK;
	w = w_other / (w_m + w_other);
	blend(m->params, other->params, m->n_params, w);
	blend(m->state, other->state, m->n_state, w);
	for (uint32_t f = 0; f < m->schema.n_features; f++)
	{
		esmm_feature *x = &m->schema.features[f];
		const esmm_feature *y = &other->schema.features[f];
		double		mean,
					second;

		if (x->kind != ESMM_FEAT_NUMERIC)
			continue;
		/* pooled: the mean of the means, the mean of the second moments */
		mean = (1 - w) * x->mean + w * y->mean;
		second = (1 - w) * ((double) x->std * x->std + (double) x->mean * x->mean) +
			w * ((double) y->std * y->std + (double) y->mean * y->mean);
		x->mean = (float) mean;
		x->std = second - mean * mean > 1e-12 ? (float) sqrt(second - mean * mean) : 1.0f;
	}
	if (m->m1 != NULL && m->m2 != NULL && other->m1 != NULL && other->m2 != NULL &&
		m->optim.kind == other->optim.kind)
	{
		blend(m->m1, other->m1, m->n_params, w);
		blend(m->m2, other->m2, m->n_params, w);
		m->step = (uint64_t) llround((1 - w) * (double) m->step + w * (double) other->step);
	}
	return ESMM_OK;
}
