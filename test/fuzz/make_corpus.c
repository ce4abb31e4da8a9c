/*
 * make_corpus.c: writes valid models into a directory, the seed corpus of
 * fuzz_decode: each kind, every feature kind, batch norm, history with
 * metrics, and optimizer state.  Each file starts with the selector byte
 * that fuzz_decode reads (1: recompute the CRC).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_format.h"
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

static void
write_model(const char *dir, const char *name, esmm_model_kind kind, int bn, int with_opt)
{
	esmm_schema s;
	esmm_arch	a;
	esmm_model *m,
			   *sub = NULL;
	esmm_status st;
	esmm_optim_spec o;
	char		path[512];
	FILE	   *f;
	size_t		len;
	uint8_t    *buf;
	uint8_t		selector = 1;

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
		esmm_model_train_begin(m, &o, 4, 7, &st);
	}
	if (kind != ESMM_KIND_ESMM && esmm_model_export(&sub, m, kind, &st) != ESMM_OK)
	{
		fprintf(stderr, "%s\n", st.msg);
		exit(1);
	}
	len = esmm_model_encoded_size(sub ? sub : m, with_opt);
	buf = malloc(len);
	esmm_model_encode(sub ? sub : m, with_opt, buf, len, crc32c_ref, &st);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	fwrite(&selector, 1, 1, f);
	fwrite(buf, 1, len, f);
	fclose(f);
	free(buf);
	esmm_model_free(sub);
	esmm_model_free(m);
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : ".";

	write_model(dir, "esmm", ESMM_KIND_ESMM, 0, 0);
	write_model(dir, "esmm_bn", ESMM_KIND_ESMM, 1, 0);
	write_model(dir, "esmm_optimizer", ESMM_KIND_ESMM, 0, 1);
	write_model(dir, "esmm_ctr", ESMM_KIND_ESMM_CTR, 1, 0);
	write_model(dir, "esmm_cvr", ESMM_KIND_ESMM_CVR, 0, 0);
	return 0;
}
