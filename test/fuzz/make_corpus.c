/*
 * make_corpus.c: writes valid models into a directory, the seed corpus of
 * fuzz_decode: each kind, every feature kind, batch norm, history with
 * metrics, and optimizer state.  Each file starts with the selector byte
 * that fuzz_decode reads (bit 0: recompute the CRC; bit 1: decode the
 * optimizer state).
 *
 * MMoE models get one seed per shape of the wide part (FM, LR, raw, none)
 * and per way feature_cross and output_cross wire it in, since each shape
 * lays out different tables and tensors: a mutation can only reach the
 * layout code that some seed's architecture section already walks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_format.h"
#include "mmoe_model.h"
#include "../crc32c_ref.h"


static void
feature(esmm_feature *f, const char *name, esmm_feature_kind kind, uint32_t buckets, uint32_t dim)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->kind = (uint8_t) kind;
	f->src_type = kind == ESMM_FEAT_NUMERIC ? 701 : kind == ESMM_FEAT_MULTI ? 1007 : 23;
	f->n_buckets = buckets;
	f->dim = dim;
	f->norm = kind == ESMM_FEAT_NUMERIC ? ESMM_NORM_LOG : 0;
	f->null_indicator = kind == ESMM_FEAT_NUMERIC;
	f->std = 1.0f;
}

/* Initializes m and gives it a config, a one-epoch history with a metric
 * and, with with_opt, Adam's state, so that every section has a payload. */
static void
fill_model(esmm_model *m, int with_opt)
{
	esmm_status st;
	esmm_optim_spec o;

	esmm_model_init(m, 7);
	esmm_model_set_config(m, "{\"name\": \"corpus\"}", 18, &st);
	m->report.n_epochs = 1;
	m->report.epochs = calloc(1, sizeof(esmm_history_epoch));
	m->report.epochs[0].epoch = 1;
	m->report.epochs[0].n_metrics = 1;
	strcpy(m->report.epochs[0].metric_names[0], "click_auc");
	m->report.epochs[0].metric_values[0] = 0.7;
	m->report.best_epoch = 1;
	if (with_opt)
	{
		esmm_optim_defaults(&o, ESMM_OPTIM_ADAM);
		if (esmm_model_train_begin(m, &o, 4, 7, &st) != ESMM_OK)
		{
			fprintf(stderr, "%s\n", st.msg);
			exit(1);
		}
	}
}

/* Writes selector, then m encoded, to dir/name. */
static void
save_model(const char *dir, const char *name, const esmm_model *m, int with_opt,
		   uint8_t selector)
{
	esmm_status st;
	char		path[512];
	FILE	   *f;
	size_t		len = esmm_model_encoded_size(m, with_opt);
	uint8_t    *buf = malloc(len);

	if (buf == NULL || esmm_model_encode(m, with_opt, buf, len, crc32c_ref, &st) != ESMM_OK)
	{
		fprintf(stderr, "cannot encode %s\n", name);
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL)
	{
		perror(path);
		exit(1);
	}
	fwrite(&selector, 1, 1, f);
	fwrite(buf, 1, len, f);
	fclose(f);
	free(buf);
}

static void
write_model(const char *dir, const char *name, esmm_model_kind kind, int bn, int with_opt)
{
	esmm_schema s;
	esmm_arch	a;
	esmm_model *m,
			   *sub = NULL;
	esmm_status st;

	memset(&s, 0, sizeof(s));
	memset(&a, 0, sizeof(a));
	s.n_features = 3;
	feature(&s.features[0], "ad", ESMM_FEAT_CATEGORICAL, 5, 2);
	feature(&s.features[1], "price", ESMM_FEAT_NUMERIC, 0, 0);
	feature(&s.features[2], "tags", ESMM_FEAT_MULTI, 4, 2);
	s.n_labels = 2;
	strcpy(s.labels[0], "click");
	strcpy(s.labels[1], "conv");
	s.label_src_type[0] = s.label_src_type[1] = 23;
	for (int t = 0; t < 2; t++)
	{
		esmm_tower_spec *tw = &a.tower[t];

		tw->n_layers = 2;
		tw->layers[0].units = 3;
		tw->layers[0].use_bias = 1;
		tw->layers[0].act = ESMM_ACT_RELU;
		tw->layers[0].use_bn = (uint8_t) bn;
		tw->layers[1].units = 1;
		tw->layers[1].use_bias = 1;
		tw->n_inputs = 3;
		for (int i = 0; i < 3; i++)
			tw->inputs[i] = (uint16_t) i;
	}
	a.loss_weights[0] = a.loss_weights[1] = 1.0f;
	if (esmm_model_create(&m, &s, &a, ESMM_KIND_ESMM, &st) != ESMM_OK)
	{
		fprintf(stderr, "%s\n", st.msg);
		exit(1);
	}
	fill_model(m, with_opt);
	if (kind != ESMM_KIND_ESMM && esmm_model_export(&sub, m, kind, &st) != ESMM_OK)
	{
		fprintf(stderr, "%s\n", st.msg);
		exit(1);
	}
	save_model(dir, name, sub ? sub : m, with_opt, 1);
	esmm_model_free(sub);
	esmm_model_free(m);
}

/* A tower of one hidden layer of units and an output of width out. */
static void
mmoe_tower(esmm_tower_spec *tw, uint32_t units, uint32_t out, int bn)
{
	memset(tw, 0, sizeof(*tw));
	tw->n_layers = 2;
	tw->layers[0].units = units;
	tw->layers[0].use_bias = 1;
	tw->layers[0].act = ESMM_ACT_RELU;
	tw->layers[0].use_bn = (uint8_t) bn;
	tw->layers[1].units = out;
	tw->layers[1].use_bias = 1;
	tw->l2 = 0.001f;
}

/* One MMoE seed of the shape the options give. */
typedef struct mmoe_seed
{
	const char *name;
	int			use_wide;
	mmoe_wide_type wide_type;
	int			feature_cross;
	int			output_cross;
	int			share_gates;
	int			bn;				/* batch norm in the experts */
	int			regression;		/* a third task, of type regression */
	int			with_opt;
} mmoe_seed;

/*
 * Features ad, price and tags feed the experts; user, price and ad the
 * wide part, so that ad's table is shared, user's is the wide group's own
 * (kept only when feature_cross reads the raw wide features), and price is
 * a numeric feature with one-row wide tables.
 */
static void
write_mmoe(const char *dir, const mmoe_seed *sd)
{
	esmm_schema s;
	mmoe_arch	a;
	esmm_model *m;
	esmm_status st;
	uint32_t	n_tasks = sd->regression ? 3 : 2;

	memset(&s, 0, sizeof(s));
	memset(&a, 0, sizeof(a));
	s.n_features = 4;
	feature(&s.features[0], "ad", ESMM_FEAT_CATEGORICAL, 5, 2);
	feature(&s.features[1], "price", ESMM_FEAT_NUMERIC, 0, 0);
	feature(&s.features[2], "tags", ESMM_FEAT_MULTI, 4, 2);
	feature(&s.features[3], "user", ESMM_FEAT_CATEGORICAL, 3, 3);
	s.n_labels = n_tasks;
	strcpy(s.labels[0], "click");
	strcpy(s.labels[1], "conv");
	strcpy(s.labels[2], "spend");
	s.label_src_type[0] = s.label_src_type[1] = 23;
	s.label_src_type[2] = 701;

	a.n_tasks = n_tasks;
	for (uint32_t t = 0; t < n_tasks; t++)
	{
		a.task_type[t] = t == 2 ? MMOE_TASK_REGRESSION : MMOE_TASK_BINARY;
		a.loss_weights[t] = 1.0f;
		mmoe_tower(&a.task[t], 2, 1, 0);
	}
	a.task_output_sigmoid = 1;
	a.n_experts = 3;
	mmoe_tower(&a.expert, 3, 2, sd->bn);
	a.expert.n_inputs = 3;
	a.expert.inputs[0] = 0;
	a.expert.inputs[1] = 1;
	a.expert.inputs[2] = 2;
	a.gate_use_bias = 1;
	a.gate_l2 = 0.001f;
	a.share_gates = (uint8_t) sd->share_gates;
	a.use_wide = (uint8_t) sd->use_wide;
	a.wide_type = (uint8_t) sd->wide_type;
	a.wide_width = 2;
	a.wide_l2 = 0.001f;
	a.n_wide_inputs = sd->use_wide ? 3 : 0;
	a.wide_inputs[0] = 3;
	a.wide_inputs[1] = 1;
	a.wide_inputs[2] = 0;
	a.feature_cross = (uint8_t) sd->feature_cross;
	a.output_cross = (uint8_t) sd->output_cross;
	a.l2_embedding = 0.01f;
	if (mmoe_model_create(&m, &s, &a, &st) != ESMM_OK)
	{
		fprintf(stderr, "%s: %s\n", sd->name, st.msg);
		exit(1);
	}
	fill_model(m, sd->with_opt);
	/* selector 3 for the model with optimizer state: its section is then
	 * decoded, not skipped */
	save_model(dir, sd->name, m, sd->with_opt, sd->with_opt ? 3 : 1);
	esmm_model_free(m);
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : ".";
	/* name, wide, type, feature_cross, output_cross, shared gates, bn,
	 * regression, optimizer */
	static const mmoe_seed mmoe_seeds[] = {
		/* FM output added to the logits, raw wide features into the tasks */
		{"mmoe_fm", 1, MMOE_WIDE_FM, 2, 0, 0, 0, 0, 0},
		/* one shared gate; the LR output only through the task towers */
		{"mmoe_lr_shared", 1, MMOE_WIDE_LR, 5, 1, 1, 0, 0, 0},
		/* raw wide features into the tasks, batch norm, a regression
		 * task, Adam's state */
		{"mmoe_raw_bn_optimizer", 1, MMOE_WIDE_RAW, 4, 0, 0, 1, 1, 1},
		/* the wide features into experts and gates, FM output into the
		 * tasks and the logits */
		{"mmoe_fm_experts", 1, MMOE_WIDE_FM, 3, 0, 0, 0, 0, 0},
		/* no wide part: user's table is not laid out at all */
		{"mmoe_narrow", 0, MMOE_WIDE_FM, 0, 1, 0, 0, 0, 0},
	};

	write_model(dir, "esmm", ESMM_KIND_ESMM, 0, 0);
	write_model(dir, "esmm_bn", ESMM_KIND_ESMM, 1, 0);
	write_model(dir, "esmm_optimizer", ESMM_KIND_ESMM, 0, 1);
	write_model(dir, "esmm_ctr", ESMM_KIND_ESMM_CTR, 1, 0);
	write_model(dir, "esmm_cvr", ESMM_KIND_ESMM_CVR, 0, 0);
	for (size_t i = 0; i < sizeof(mmoe_seeds) / sizeof(mmoe_seeds[0]); i++)
		write_mmoe(dir, &mmoe_seeds[i]);
	return 0;
}
