/*
 * test_format.c: the model bytea of model_format.c: a reference CRC-32C,
 * round trips (with and without optimizer state), and a decoder that
 * must refuse every truncation, every flipped byte and every crafted
 * count with ESMM_ERR_FORMAT, leaving nothing allocated.
 *
 * Crafted buffers get a recomputed CRC, so that they reach the parser
 * instead of stopping at the checksum.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit.h"
#include "model_format.h"

#define SEED 7771

/* The section tags of model_format.h. */
enum
{
	TAG_CONF = 1,
	TAG_SCHM,
	TAG_ARCH,
	TAG_REPT,
	TAG_PARM,
	TAG_STAT,
	TAG_OPTS
};

#define FEATURE_BYTES 88		/* name[64], src_type, 4 bytes, n_buckets, dim, mean, std */

/* ------------------------------------------------------------- CRC-32C */

static void
test_crc(void)
{
	CHECK(crc32c_ref("123456789", 9) == 0xE3069283u, "CRC-32C check value %08x",
		  crc32c_ref("123456789", 9));
	CHECK(crc32c_ref("", 0) == 0u, "CRC-32C of nothing %08x", crc32c_ref("", 0));
	/* RFC 3720 B.4: 32 bytes of zeros */
	{
		uint8_t		z[32];

		memset(z, 0, sizeof(z));
		CHECK(crc32c_ref(z, 32) == 0x8A9136AAu, "CRC-32C of 32 zeros %08x", crc32c_ref(z, 32));
	}
}

/* ------------------------------------------------------------- helpers */

static void
wr_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t) v;
	p[1] = (uint8_t) (v >> 8);
}

static void
wr_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t) (v >> (8 * i));
}

static void
wr_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t) (v >> (8 * i));
}

static uint32_t
rd_u32(const uint8_t *p)
{
	return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 |
		(uint32_t) p[3] << 24;
}

static uint64_t
rd_u64(const uint8_t *p)
{
	return (uint64_t) rd_u32(p) | (uint64_t) rd_u32(p + 4) << 32;
}

/* Rewrites the header's CRC for the bytes as they now are. */
static void
fix_crc(uint8_t *buf, size_t len)
{
	if (len >= 12)
		wr_u32(buf + 8, crc32c_ref(buf + 12, len - 12));
}

/*
 * Where section tag's header starts (the u64 length is at +8, the
 * payload at +16), by walking the section headers; 0 if absent.
 */
static size_t
section_at(const uint8_t *buf, size_t len, uint32_t tag)
{
	size_t		pos = ESMM_HEADER_SIZE;

	while (pos + 16 <= len)
	{
		uint64_t	n = rd_u64(buf + pos + 8);

		if (rd_u32(buf + pos) == tag)
			return pos;
		if (n > len - pos - 16)
			return 0;
		pos += 16 + (size_t) n;
	}
	return 0;
}

static uint8_t *
dup_bytes(const uint8_t *p, size_t n, size_t extra)
{
	uint8_t    *c = calloc(n + extra + 1, 1);

	memcpy(c, p, n);
	return c;
}

/* ---------------------------------------------------------- the model */

static void
set_feature(esmm_feature *f, const char *name, esmm_feature_kind kind,
			uint32_t n_buckets, uint32_t dim, uint32_t src_type)
{
	memset(f, 0, sizeof(*f));
	strcpy(f->name, name);
	f->kind = (uint8_t) kind;
	f->n_buckets = n_buckets;
	f->dim = dim;
	f->mean = 0.0f;
	f->std = 1.0f;
	f->src_type = src_type;
}

/*
 * Features: 0 ad (categorical, hashed, 7 x 3), 1 price (numeric, log,
 * NULL indicator), 2 tags (multi, 6 x 2).  Every field that the format
 * carries gets a value other than its zero, so that a field the decoder
 * drops shows.
 */
static void
make_spec(esmm_schema *s, esmm_arch *a)
{
	memset(s, 0, sizeof(*s));
	s->n_features = 3;
	set_feature(&s->features[0], "ad", ESMM_FEAT_CATEGORICAL, 7, 3, 20);
	s->features[0].hashed = 1;
	set_feature(&s->features[1], "price", ESMM_FEAT_NUMERIC, 0, 0, 701);
	s->features[1].norm = ESMM_NORM_LOG;
	s->features[1].null_indicator = 1;
	s->features[1].mean = 0.25f;
	s->features[1].std = 1.5f;
	set_feature(&s->features[2], "tags", ESMM_FEAT_MULTI, 6, 2, 1009);
	s->n_labels = 2;
	strcpy(s->labels[0], "click");
	strcpy(s->labels[1], "buy");
	s->label_src_type[0] = 16;
	s->label_src_type[1] = 23;

	memset(a, 0, sizeof(*a));
	a->tower[0].n_layers = 3;
	set_layer(&a->tower[0].layers[0], 5, ESMM_ACT_GELU, 0, 1, 0.0f);
	set_layer(&a->tower[0].layers[1], 3, ESMM_ACT_ELU, 1, 0, 0.25f);
	set_layer(&a->tower[0].layers[2], 1, ESMM_ACT_NONE, 1, 0, 0.0f);
	a->tower[0].l1 = 0.003f;
	a->tower[0].l2 = 0.004f;
	a->tower[0].n_inputs = 3;
	a->tower[0].inputs[0] = 0;
	a->tower[0].inputs[1] = 1;
	a->tower[0].inputs[2] = 2;
	a->tower[1].n_layers = 2;
	set_layer(&a->tower[1].layers[0], 4, ESMM_ACT_LRELU, 1, 1, 0.1f);
	set_layer(&a->tower[1].layers[1], 1, ESMM_ACT_NONE, 1, 0, 0.0f);
	a->tower[1].l2 = 0.0005f;
	a->tower[1].n_inputs = 2;
	a->tower[1].inputs[0] = 2;
	a->tower[1].inputs[1] = 0;
	a->loss_weights[0] = 0.8f;
	a->loss_weights[1] = 1.3f;
	a->l2_embedding = 0.02f;
	a->label_is_ctcvr = 1;
	a->loss = ESMM_LOSS_MSE;
}

/* Four rows for the spec of make_spec. */
typedef struct small_batch
{
	int32_t		ids[4];
	float		nums[4];
	float		labels[8];
	uint32_t	off[5];
	int32_t		tags[5];
	esmm_batch	b;
} small_batch;

static void
make_batch(small_batch *sb)
{
	static const int32_t ids[4] = {0, 6, 3, 7};
	static const float labels[8] = {1, 1, 0, 0, 1, 0, 1, 1};
	static const uint32_t off[5] = {0, 2, 2, 4, 5};
	static const int32_t tags[5] = {1, 5, 0, 3, 2};

	memcpy(sb->ids, ids, sizeof(ids));
	sb->nums[0] = 2.0f;
	sb->nums[1] = NAN;
	sb->nums[2] = -7.5f;
	sb->nums[3] = 0.0f;
	memcpy(sb->labels, labels, sizeof(labels));
	memcpy(sb->off, off, sizeof(off));
	memcpy(sb->tags, tags, sizeof(tags));
	sb->b.B = 4;
	sb->b.ids = sb->ids;
	sb->b.nums = sb->nums;
	sb->b.labels = sb->labels;
	sb->b.multi_off = sb->off;
	sb->b.multi_ids = sb->tags;
}

static const char config_text[] = "{\"kind\": \"esmm\", \"towers\": [64, 32], \"note\": \"caf\xc3\xa9\"}";

/*
 * A model of kind, initialized, trained for three steps with rmsprop and
 * momentum (so that m1, m2, step and the batch-norm statistics all hold
 * something), with a config and a report of two epochs.
 */
static esmm_model *
build_model(esmm_model_kind kind)
{
	esmm_schema s;
	esmm_arch	a;
	esmm_model *m = NULL;
	esmm_status st;
	esmm_optim_spec o;
	small_batch sb;

	make_spec(&s, &a);
	esmm_status_clear(&st);
	if (esmm_model_create(&m, &s, &a, kind, &st) != ESMM_OK)
	{
		CHECK(0, "create: %s", st.msg);
		return NULL;
	}
	esmm_model_init(m, SEED);
	esmm_optim_defaults(&o, ESMM_OPTIM_RMSPROP);
	o.momentum = 0.5f;
	o.learning_rate = 0.01f;
	if (esmm_model_train_begin(m, &o, 4, SEED, &st) != ESMM_OK)
	{
		CHECK(0, "train_begin: %s", st.msg);
		esmm_model_free(m);
		return NULL;
	}
	make_batch(&sb);
	for (int i = 0; i < 3; i++)
	{
		(void) esmm_model_forward_backward(m, &sb.b, NULL);
		esmm_model_step(m);
	}
	CHECK(esmm_model_set_config(m, config_text, strlen(config_text), &st) == ESMM_OK,
		  "set_config: %s", st.msg);

	m->report.rows_seen = 1000003;
	m->report.rows_trained = 999000;
	m->report.rows_dropped = 17;
	m->report.rows_null_label = 5;
	m->report.rows_bad = 3;
	m->report.seconds = 12.625;
	m->report.threads = 4;
	m->report.n_epochs = 2;
	m->report.epochs = calloc(2, sizeof(esmm_history_epoch));
	for (uint32_t e = 0; e < 2; e++)
	{
		esmm_history_epoch *h = &m->report.epochs[e];

		h->epoch = e + 1;
		h->train_loss = 0.5 / (e + 1) + 1e-9;
		h->rows = 999000;
		h->seconds = 6.0 + e;
		h->n_metrics = e == 0 ? 2 : 3;
		strcpy(h->metric_names[0], "auc_ctr");
		h->metric_values[0] = 0.71 + e * 0.01;
		strcpy(h->metric_names[1], "auc_ctcvr");
		h->metric_values[1] = 0.66 + e * 0.01;
		strcpy(h->metric_names[2], "a_name_of_thirty_one_characters");
		h->metric_values[2] = -1.0 / 3.0;
	}
	return m;
}

/* Encodes m; *len gets the size.  NULL on failure. */
static uint8_t *
encode(const esmm_model *m, int with_optimizer, size_t *len)
{
	esmm_status st;
	uint8_t    *buf;

	*len = esmm_model_encoded_size(m, with_optimizer);
	buf = malloc(*len);
	esmm_status_clear(&st);
	if (esmm_model_encode(m, with_optimizer, buf, *len, crc32c_ref, &st) != ESMM_OK)
	{
		CHECK(0, "encode: %s", st.msg);
		free(buf);
		return NULL;
	}
	return buf;
}

/* Decodes a buffer that must be refused: FORMAT, a message, no model. */
static int
refused(const uint8_t *buf, size_t len, int with_optimizer)
{
	esmm_model *m = (esmm_model *) 1;
	esmm_status st;
	esmm_code	rc;

	esmm_status_clear(&st);
	rc = esmm_model_decode(&m, buf, len, crc32c_ref, with_optimizer, &st);
	if (rc == ESMM_OK && m != (esmm_model *) 1)
		esmm_model_free(m);
	return rc == ESMM_ERR_FORMAT && m == NULL && st.code == ESMM_ERR_FORMAT &&
		st.msg[0] != '\0';
}

#define CHECK_REFUSED(buf, len, what) \
	do { \
		esmm_model *m_ = (esmm_model *) 1; \
		esmm_status st_; \
		esmm_code	rc_; \
		esmm_status_clear(&st_); \
		rc_ = esmm_model_decode(&m_, (buf), (len), crc32c_ref, 1, &st_); \
		CHECK(rc_ == ESMM_ERR_FORMAT && m_ == NULL && st_.msg[0] != '\0', \
			  "%s: decode returned %d, model %s, \"%s\"", (what), (int) rc_, \
			  m_ == NULL ? "NULL" : "set", st_.msg); \
		if (rc_ == ESMM_OK && m_ != NULL && m_ != (esmm_model *) 1) \
			esmm_model_free(m_); \
	} while (0)

/* ---------------------------------------------------------- round trips */

static int
same_arch(const esmm_model *a, const esmm_model *b)
{
	int			ok = a->kind == b->kind && a->has_tower[0] == b->has_tower[0] &&
		a->has_tower[1] == b->has_tower[1] &&
		a->arch.loss_weights[0] == b->arch.loss_weights[0] &&
		a->arch.loss_weights[1] == b->arch.loss_weights[1] &&
		a->arch.l2_embedding == b->arch.l2_embedding &&
		a->arch.label_is_ctcvr == b->arch.label_is_ctcvr &&
		a->arch.loss == b->arch.loss;

	for (int t = 0; t < 2; t++)
	{
		const esmm_tower_spec *x = &a->arch.tower[t],
				   *y = &b->arch.tower[t];

		if (!a->has_tower[t])
			continue;
		ok &= x->n_layers == y->n_layers && x->l1 == y->l1 && x->l2 == y->l2 &&
			x->n_inputs == y->n_inputs &&
			memcmp(x->inputs, y->inputs, x->n_inputs * sizeof(uint16_t)) == 0;
		for (uint32_t l = 0; l < x->n_layers && l < ESMM_MAX_LAYERS; l++)
			ok &= x->layers[l].units == y->layers[l].units &&
				x->layers[l].use_bias == y->layers[l].use_bias &&
				x->layers[l].act == y->layers[l].act &&
				x->layers[l].use_bn == y->layers[l].use_bn &&
				x->layers[l].dropout == y->layers[l].dropout;
	}
	return ok;
}

static int
same_report(const esmm_report *a, const esmm_report *b)
{
	int			ok = a->rows_seen == b->rows_seen && a->rows_trained == b->rows_trained &&
		a->rows_dropped == b->rows_dropped && a->rows_null_label == b->rows_null_label &&
		a->rows_bad == b->rows_bad && a->seconds == b->seconds &&
		a->threads == b->threads && a->n_epochs == b->n_epochs;

	for (uint32_t e = 0; ok && e < a->n_epochs; e++)
	{
		const esmm_history_epoch *x = &a->epochs[e],
				   *y = &b->epochs[e];

		ok &= x->epoch == y->epoch && x->train_loss == y->train_loss &&
			x->rows == y->rows && x->seconds == y->seconds &&
			x->n_metrics == y->n_metrics;
		for (uint32_t k = 0; ok && k < x->n_metrics; k++)
			ok &= strcmp(x->metric_names[k], y->metric_names[k]) == 0 &&
				x->metric_values[k] == y->metric_values[k];
	}
	return ok;
}

/* Scores the small batch with both models: the outputs must be equal. */
static void
check_same_scores(esmm_model *a, esmm_model *b, const char *what)
{
	esmm_status st;
	small_batch sb;
	float		pa[3][4],
				pb[3][4];

	make_batch(&sb);
	sb.b.labels = NULL;
	if (b->max_B < 4 && esmm_model_workspace(b, 4, &st) != ESMM_OK)
	{
		CHECK(0, "%s: workspace: %s", what, st.msg);
		return;
	}
	if (a->max_B < 4 && esmm_model_workspace(a, 4, &st) != ESMM_OK)
	{
		CHECK(0, "%s: workspace: %s", what, st.msg);
		return;
	}
	esmm_model_predict(a, &sb.b, pa[0], pa[1], pa[2]);
	esmm_model_predict(b, &sb.b, pb[0], pb[1], pb[2]);
	CHECK(memcmp(pa, pb, sizeof(pa)) == 0, "%s: scores differ after the round trip", what);
}

static void
round_trip(esmm_model_kind kind, int with_optimizer, const char *what)
{
	esmm_model *m = build_model(kind),
			   *d = NULL;
	esmm_status st;
	uint8_t    *buf;
	size_t		len;
	esmm_code	rc;

	if (m == NULL)
		return;
	buf = encode(m, with_optimizer, &len);
	if (buf == NULL)
	{
		esmm_model_free(m);
		return;
	}
	CHECK(memcmp(buf, "ESMM", 4) == 0 && buf[4] == ESMM_FORMAT_VERSION && buf[5] == 0 &&
		  buf[6] == (uint8_t) kind && buf[7] == 0, "%s: header", what);
	CHECK(rd_u32(buf + 8) == crc32c_ref(buf + 12, len - 12), "%s: stored CRC", what);
	CHECK(rd_u32(buf + 12) == (with_optimizer ? 7u : 6u), "%s: section count %u", what,
		  rd_u32(buf + 12));
	CHECK(esmm_model_peek_kind(buf, len) == kind, "%s: peek_kind", what);

	esmm_status_clear(&st);
	rc = esmm_model_decode(&d, buf, len, crc32c_ref, 1, &st);
	CHECK(rc == ESMM_OK && d != NULL, "%s: decode: %s", what, st.msg);
	if (d != NULL)
	{
		CHECK(memcmp(&m->schema, &d->schema, sizeof(m->schema)) == 0, "%s: schema differs", what);
		CHECK(same_arch(m, d), "%s: architecture differs", what);
		CHECK(d->n_params == m->n_params && d->n_state == m->n_state &&
			  memcmp(m->params, d->params, m->n_params * sizeof(float)) == 0,
			  "%s: parameters differ", what);
		CHECK(memcmp(m->state, d->state, m->n_state * sizeof(float)) == 0,
			  "%s: batch-norm statistics differ", what);
		CHECK(same_report(&m->report, &d->report), "%s: report differs", what);
		CHECK(d->config_json != NULL && d->config_len == strlen(config_text) &&
			  strcmp(d->config_json, config_text) == 0, "%s: config \"%s\"", what,
			  d->config_json ? d->config_json : "(null)");
		if (with_optimizer)
		{
			CHECK(d->m1 != NULL && d->m2 != NULL &&
				  memcmp(m->m1, d->m1, m->n_params * sizeof(float)) == 0 &&
				  memcmp(m->m2, d->m2, m->n_params * sizeof(float)) == 0,
				  "%s: optimizer moments differ", what);
			CHECK(d->step == 3 && d->optim.kind == ESMM_OPTIM_RMSPROP,
				  "%s: step %llu kind %u", what, (unsigned long long) d->step, d->optim.kind);
		}
		else
			CHECK(d->m1 == NULL && d->m2 == NULL && d->step == 0,
				  "%s: optimizer state out of nowhere", what);
		check_same_scores(m, d, what);

		/* the decoded model encodes to the same bytes */
		{
			size_t		len2;
			uint8_t    *buf2 = encode(d, with_optimizer, &len2);

			CHECK(buf2 != NULL && len2 == len && memcmp(buf, buf2, len) == 0,
				  "%s: re-encoding gives other bytes", what);
			free(buf2);
		}
		esmm_model_free(d);
	}

	/* the optimizer section is skipped unless asked for */
	if (with_optimizer)
	{
		d = NULL;
		rc = esmm_model_decode(&d, buf, len, crc32c_ref, 0, &st);
		CHECK(rc == ESMM_OK && d != NULL && d->m1 == NULL && d->step == 0 &&
			  memcmp(m->params, d->params, m->n_params * sizeof(float)) == 0,
			  "%s: decode without the optimizer: %s", what, st.msg);
		esmm_model_free(d);
	}
	free(buf);
	esmm_model_free(m);
}

static void
test_round_trips(void)
{
	round_trip(ESMM_KIND_ESMM, 0, "esmm");
	round_trip(ESMM_KIND_ESMM, 1, "esmm with optimizer");
	round_trip(ESMM_KIND_ESMM_CTR, 0, "ctr-only");
	round_trip(ESMM_KIND_ESMM_CTR, 1, "ctr-only with optimizer");

	/* a model that never trained: no optimizer section, no config, no history */
	{
		esmm_schema s;
		esmm_arch	a;
		esmm_model *m = NULL,
				   *d = NULL;
		esmm_status st;
		uint8_t    *buf;
		size_t		len;

		make_spec(&s, &a);
		esmm_status_clear(&st);
		if (esmm_model_create(&m, &s, &a, ESMM_KIND_ESMM, &st) != ESMM_OK)
		{
			CHECK(0, "create: %s", st.msg);
			return;
		}
		esmm_model_init(m, SEED);
		CHECK(esmm_model_encoded_size(m, 1) == esmm_model_encoded_size(m, 0),
			  "an untrained model has no optimizer state to write");
		buf = encode(m, 1, &len);
		if (buf != NULL)
		{
			CHECK(rd_u32(buf + 12) == 6, "untrained: %u sections", rd_u32(buf + 12));
			CHECK(esmm_model_decode(&d, buf, len, crc32c_ref, 1, &st) == ESMM_OK && d != NULL &&
				  d->report.n_epochs == 0 && d->config_json != NULL &&
				  strcmp(d->config_json, "{}") == 0 &&
				  memcmp(m->params, d->params, m->n_params * sizeof(float)) == 0,
				  "untrained round trip: %s", st.msg);
			if (d != NULL)
				check_same_scores(m, d, "untrained");
			esmm_model_free(d);
			free(buf);
		}

		/* a buffer of the wrong size is refused by the encoder */
		len = esmm_model_encoded_size(m, 0);
		buf = malloc(len + 1);
		esmm_status_clear(&st);
		CHECK(esmm_model_encode(m, 0, buf, len + 1, crc32c_ref, &st) == ESMM_ERR_ARGUMENT &&
			  st.msg[0] != '\0', "encode into a buffer one byte too long");
		free(buf);
		esmm_model_free(m);
	}
}

/* ----------------------------------------------------------- corruption */

static void
test_truncation(void)
{
	esmm_model *m = build_model(ESMM_KIND_ESMM);
	uint8_t    *buf,
			   *cut;
	size_t		len;
	int			bad_plain = 0,
				bad_fixed = 0;
	size_t		first_plain = 0,
				first_fixed = 0;

	if (m == NULL)
		return;
	buf = encode(m, 1, &len);
	esmm_model_free(m);
	if (buf == NULL)
		return;
	CHECK(refused(buf, len, 1) == 0, "the intact buffer is refused");
	for (size_t n = 0; n < len; n++)
	{
		/* a copy of exactly n bytes, so that ASan sees any read past it */
		cut = malloc(n ? n : 1);
		memcpy(cut, buf, n);
		if (!refused(cut, n, 1) && bad_plain++ == 0)
			first_plain = n;
		/* the same cut with a valid CRC: only the parser stands in the way */
		fix_crc(cut, n);
		if (!refused(cut, n, 1) && bad_fixed++ == 0)
			first_fixed = n;
		free(cut);
	}
	CHECK(bad_plain == 0, "%d truncations accepted or misreported, the first at %zu of %zu bytes",
		  bad_plain, first_plain, len);
	CHECK(bad_fixed == 0, "%d truncations with a valid CRC accepted or misreported, the first at %zu of %zu bytes",
		  bad_fixed, first_fixed, len);
	free(buf);
}

static void
test_byte_flips(void)
{
	esmm_model *m = build_model(ESMM_KIND_ESMM);
	uint8_t    *buf;
	size_t		len;
	int			bad = 0,
				odd = 0,
				tried = 0;
	size_t		first_bad = 0,
				first_odd = 0;
	uint64_t	rng = 0x1234567;

	if (m == NULL)
		return;
	buf = encode(m, 1, &len);
	esmm_model_free(m);
	if (buf == NULL)
		return;

	/*
	 * Every byte (the buffer is a few kB), flipped by a random nonzero
	 * mask: the checksum, the magic, the version or the kind must catch it.
	 */
	for (size_t pos = 0; pos < len; pos++)
	{
		uint8_t		mask;

		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		mask = (uint8_t) (rng >> 56);
		if (mask == 0)
			mask = 0x80;
		buf[pos] ^= mask;
		if (!refused(buf, len, 1) && bad++ == 0)
			first_bad = pos;
		buf[pos] ^= mask;
		tried++;
	}
	CHECK(bad == 0, "%d of %d single-byte flips accepted, the first at byte %zu", bad, tried, first_bad);

	/*
	 * The same with the CRC recomputed: every field reaches the parser.  A
	 * flip may be harmless (a weight, a name, a type oid), but the result
	 * is then a usable model that encodes to a buffer of the same size;
	 * anything else must be ESMM_ERR_FORMAT, never a crash, a leak or an
	 * out-of-memory.
	 */
	for (size_t pos = 12; pos < len; pos++)
	{
		static const uint8_t masks[3] = {0x01, 0x80, 0xFF};

		for (int k = 0; k < 3; k++)
		{
			esmm_model *d = NULL;
			esmm_status st;
			esmm_code	rc;

			buf[pos] ^= masks[k];
			fix_crc(buf, len);
			esmm_status_clear(&st);
			rc = esmm_model_decode(&d, buf, len, crc32c_ref, 1, &st);
			if (rc == ESMM_OK)
			{
				small_batch sb;
				float		p[3][4];

				make_batch(&sb);
				if (d == NULL || esmm_model_encoded_size(d, 1) != len ||
					esmm_model_workspace(d, 4, &st) != ESMM_OK)
				{
					if (odd++ == 0)
						first_odd = pos;
				}
				else
					esmm_model_predict(d, &sb.b, p[0], p[1], p[2]);
				esmm_model_free(d);
			}
			else if ((rc != ESMM_ERR_FORMAT || d != NULL || st.msg[0] == '\0') && odd++ == 0)
				first_odd = pos;
			buf[pos] ^= masks[k];
		}
	}
	fix_crc(buf, len);
	CHECK(odd == 0, "%d flips with a valid CRC gave neither a model nor a format error; the first at byte %zu",
		  odd, first_odd);
	free(buf);
}

/* A buffer with one field rewritten and the CRC fixed; must be refused. */
typedef struct crafted
{
	const uint8_t *orig;
	size_t		len;
} crafted;

static void
craft_u32(const crafted *c, size_t at, uint32_t v, const char *what)
{
	uint8_t    *b = dup_bytes(c->orig, c->len, 0);

	wr_u32(b + at, v);
	fix_crc(b, c->len);
	CHECK_REFUSED(b, c->len, what);
	free(b);
}

static void
craft_u64(const crafted *c, size_t at, uint64_t v, const char *what)
{
	uint8_t    *b = dup_bytes(c->orig, c->len, 0);

	wr_u64(b + at, v);
	fix_crc(b, c->len);
	CHECK_REFUSED(b, c->len, what);
	free(b);
}

static void
craft_u16(const crafted *c, size_t at, uint16_t v, const char *what)
{
	uint8_t    *b = dup_bytes(c->orig, c->len, 0);

	wr_u16(b + at, v);
	fix_crc(b, c->len);
	CHECK_REFUSED(b, c->len, what);
	free(b);
}

static void
craft_f32(const crafted *c, size_t at, float v, const char *what)
{
	uint32_t	u;

	memcpy(&u, &v, 4);
	craft_u32(c, at, u, what);
}

/*
 * A schema that asks for 2^30 buckets of width 1024 (a 4 TB table) in a
 * buffer of a few kB: the decoder must refuse it as a format error before
 * asking for the memory.  In a child: the sanitizers abort on such a
 * request instead of returning NULL.
 */
static int
decode_huge_table(void *arg)
{
	const crafted *c = arg;
	uint8_t    *b = dup_bytes(c->orig, c->len, 0);
	size_t		schm = section_at(b, c->len, TAG_SCHM) + 16;
	esmm_model *m = NULL;
	esmm_status st;
	esmm_code	rc;

	wr_u32(b + schm + 4 + 72, 1u << 30);	/* feature 0's n_buckets */
	wr_u32(b + schm + 4 + 76, 1024);	/* and dim */
	fix_crc(b, c->len);
	esmm_status_clear(&st);
	rc = esmm_model_decode(&m, b, c->len, crc32c_ref, 1, &st);
	if (rc != ESMM_ERR_FORMAT)
		fprintf(stderr, "decode of a 4 TB table returned %d: %s\n", (int) rc, st.msg);
	esmm_model_free(m);
	free(b);
	return rc == ESMM_ERR_FORMAT && m == NULL ? 0 : 10 + (int) rc;
}

static void
test_crafted(void)
{
	esmm_model *m = build_model(ESMM_KIND_ESMM);
	crafted		c;
	uint8_t    *buf;
	size_t		len,
				conf,
				schm,
				arch,
				rept,
				parm,
				stat,
				opts;

	if (m == NULL)
		return;
	buf = encode(m, 1, &len);
	if (buf == NULL)
	{
		esmm_model_free(m);
		return;
	}
	c.orig = buf;
	c.len = len;
	conf = section_at(buf, len, TAG_CONF);
	schm = section_at(buf, len, TAG_SCHM);
	arch = section_at(buf, len, TAG_ARCH);
	rept = section_at(buf, len, TAG_REPT);
	parm = section_at(buf, len, TAG_PARM);
	stat = section_at(buf, len, TAG_STAT);
	opts = section_at(buf, len, TAG_OPTS);
	CHECK(conf == 16 && conf < schm && schm < arch && arch < rept && rept < parm &&
		  parm < stat && stat < opts, "section layout %zu %zu %zu %zu %zu %zu %zu",
		  conf, schm, arch, rept, parm, stat, opts);
	if (!(conf == 16 && conf < schm && schm < arch && arch < rept && rept < parm &&
		  parm < stat && stat < opts))
		goto out;
	CHECK(rd_u32(buf + schm + 16) == 3 && rd_u64(buf + parm + 16) == m->n_params &&
		  rd_u64(buf + opts + 16 + 12) == m->n_params, "the fields are where the format says");

	/* header */
	{
		uint8_t    *b = dup_bytes(buf, len, 0);

		b[0] = 'X';
		CHECK_REFUSED(b, len, "wrong magic");
		CHECK(esmm_model_peek_kind(b, len) == 0, "peek_kind of a foreign buffer");
		b[0] = 'E';
		wr_u16(b + 4, 2);
		CHECK_REFUSED(b, len, "version 2");
		wr_u16(b + 4, 0);
		CHECK_REFUSED(b, len, "version 0");
		wr_u16(b + 4, ESMM_FORMAT_VERSION);
		wr_u16(b + 6, ESMM_KIND_MMOE);
		CHECK_REFUSED(b, len, "the mmoe kind");
		wr_u16(b + 6, ESMM_KIND_ESMM_CTR);
		CHECK_REFUSED(b, len, "kind ctr on an esmm body");
		wr_u16(b + 6, ESMM_KIND_ESMM);
		wr_u32(b + 8, rd_u32(b + 8) ^ 1);
		CHECK_REFUSED(b, len, "wrong CRC");
		free(b);
		CHECK(esmm_model_peek_kind(buf, 15) == 0, "peek_kind of a short buffer");
	}
	craft_u32(&c, 12, 8, "8 sections");
	craft_u32(&c, 12, 5, "5 sections");
	craft_u32(&c, 12, 6, "6 sections before an optimizer section");

	/* trailing bytes, with and without a valid CRC */
	{
		uint8_t    *b = dup_bytes(buf, len, 1);

		CHECK_REFUSED(b, len + 1, "a trailing byte, stale CRC");
		fix_crc(b, len + 1);
		CHECK_REFUSED(b, len + 1, "a trailing byte");
		free(b);
	}

	/* section headers */
	craft_u32(&c, schm, TAG_ARCH, "a section out of order");
	craft_u32(&c, schm + 4, 1, "a nonzero reserved word");
	craft_u64(&c, schm + 8, (uint64_t) 1 << 60, "a section length of 2^60");
	craft_u64(&c, schm + 8, UINT64_MAX, "a section length of 2^64-1");
	craft_u64(&c, conf + 8, len, "a config as long as the buffer");
	craft_u64(&c, schm + 8, rd_u64(buf + schm + 8) - 1, "a schema one byte short");
	craft_u64(&c, schm + 8, rd_u64(buf + schm + 8) + 1, "a schema one byte long");
	craft_u64(&c, parm + 8, rd_u64(buf + parm + 8) + 4, "a parameter section one float long");
	craft_u64(&c, opts + 8, rd_u64(buf + opts + 8) - 4, "an optimizer section one float short");

	/* config */
	{
		uint8_t    *b = dup_bytes(buf, len, 0);

		b[conf + 16 + 3] = '\0';
		fix_crc(b, len);
		CHECK_REFUSED(b, len, "a NUL in the config");
		free(b);
	}

	/* schema */
	schm += 16;
	craft_u32(&c, schm, 1000, "1000 features");
	craft_u32(&c, schm, 0, "0 features");
	craft_u32(&c, schm, 2, "2 features of 3");
	craft_u32(&c, schm, 4, "4 features of 3");
	{
		uint8_t    *b = dup_bytes(buf, len, 0);

		memset(b + schm + 4, 'a', ESMM_NAME_LEN);	/* no NUL in the name */
		fix_crc(b, len);
		CHECK_REFUSED(b, len, "an unterminated feature name");
		free(b);
	}
	craft_u32(&c, schm + 4 + 68, 9, "feature kind 9");
	/* kind 1, hashed 1, norm 7, null_indicator 0 */
	craft_u32(&c, schm + 4 + 68, 1 | 1 << 8 | 7 << 16, "normalization 7");
	craft_u32(&c, schm + 4 + 72, 0, "0 buckets");
	craft_u32(&c, schm + 4 + 72, 8, "8 buckets where the parameters hold 7");
	craft_u32(&c, schm + 4 + 72, (1u << 30) + 1, "2^30+1 buckets");
	craft_u32(&c, schm + 4 + 76, 0, "embedding width 0");
	craft_u32(&c, schm + 4 + 76, 1025, "embedding width 1025");
	craft_f32(&c, schm + 4 + FEATURE_BYTES + 84, 0.0f, "a numeric std of 0");
	craft_f32(&c, schm + 4 + FEATURE_BYTES + 80, NAN, "a NaN numeric mean");
	craft_u32(&c, schm + 4 + 3 * FEATURE_BYTES, 9, "9 labels");
	craft_u32(&c, schm + 4 + 3 * FEATURE_BYTES, 3, "3 labels of 2");
	survives_in_child(decode_huge_table, &c, "a 4 TB table in a small buffer");

	/* architecture: CTR tower first */
	arch += 16;
	craft_u32(&c, arch, 0, "a tower of 0 layers");
	craft_u32(&c, arch, 17, "a tower of 17 layers");
	craft_u32(&c, arch, 1000000, "a tower of 10^6 layers");
	craft_u32(&c, arch, 2, "2 layers of 3");
	craft_u32(&c, arch + 4, 0, "a layer of width 0");
	craft_u32(&c, arch + 4, 65537, "a layer of width 65537");
	craft_u32(&c, arch + 4 + 2 * 12, 2, "an output layer of width 2");
	{
		uint8_t    *b = dup_bytes(buf, len, 0);

		b[arch + 4 + 5] = ESMM_ACT_COUNT;
		fix_crc(b, len);
		CHECK_REFUSED(b, len, "an unknown activation");
		free(b);
	}
	craft_f32(&c, arch + 4 + 12 + 8, 1.0f, "dropout 1");
	craft_f32(&c, arch + 4 + 12 + 8, NAN, "dropout NaN");
	craft_f32(&c, arch + 4 + 3 * 12, -0.5f, "a negative l1");
	craft_f32(&c, arch + 4 + 3 * 12 + 4, INFINITY, "an infinite l2");
	craft_u32(&c, arch + 4 + 3 * 12 + 8, 1000, "a tower of 1000 inputs");
	craft_u32(&c, arch + 4 + 3 * 12 + 8, 0, "a tower of no inputs");
	craft_u16(&c, arch + 4 + 3 * 12 + 12, 3, "a tower input out of range");
	craft_u16(&c, arch + 4 + 3 * 12 + 12 + 2, 65535, "a tower input of 65535");
	{
		/* after the CTR tower (3 layers, 3 inputs) comes the CVR tower */
		size_t		cvr = arch + 4 + 3 * 12 + 12 + 3 * 2;
		size_t		tail = cvr + 4 + 2 * 12 + 12 + 2 * 2;

		craft_u32(&c, cvr, 0, "a cvr tower of 0 layers");
		craft_u16(&c, cvr + 4 + 2 * 12 + 12, 7, "a cvr input out of range");
		craft_f32(&c, tail, -1.0f, "a negative loss weight");
		craft_f32(&c, tail + 8, NAN, "a NaN embedding l2");
		{
			uint8_t    *b = dup_bytes(buf, len, 0);

			b[tail + 13] = 2;
			fix_crc(b, len);
			CHECK_REFUSED(b, len, "loss kind 2");
			free(b);
		}
	}

	/* report */
	rept += 16;
	/* epochs start at +56: epoch, loss, rows, seconds, then n_metrics at +28 */
	craft_u32(&c, rept + 52, UINT32_MAX, "2^32-1 epochs");
	craft_u32(&c, rept + 52, 3, "3 epochs of 2");
	craft_u32(&c, rept + 52, 1, "1 epoch of 2");
	craft_u32(&c, rept + 56 + 28, 17, "17 metrics");
	craft_u32(&c, rept + 56 + 28, UINT32_MAX, "2^32-1 metrics");
	{
		uint8_t    *b = dup_bytes(buf, len, 0);

		memset(b + rept + 56 + 32, 'm', 32);	/* a metric name without NUL */
		fix_crc(b, len);
		CHECK_REFUSED(b, len, "an unterminated metric name");
		free(b);
	}

	/* parameters, statistics, optimizer state */
	parm += 16;
	stat += 16;
	opts += 16;
	craft_u64(&c, parm, m->n_params + 1, "one parameter too many");
	craft_u64(&c, parm, m->n_params - 1, "one parameter too few");
	craft_u64(&c, parm, (uint64_t) 1 << 62, "2^62 parameters");
	craft_u64(&c, stat, m->n_state + 1, "one statistic too many");
	craft_u64(&c, stat, UINT64_MAX, "2^64-1 statistics");
	craft_f32(&c, parm + 8 + 4 * 5, NAN, "a NaN parameter");
	craft_f32(&c, parm + 8 + 4 * (m->n_params - 1), INFINITY, "an infinite last parameter");
	craft_f32(&c, stat + 8, NAN, "a NaN running mean");
	/* the CTR tower's first layer: run_mean[5] then run_var[5] */
	craft_f32(&c, stat + 8 + 4 * 5, -1.0f, "a negative running variance");
	craft_u32(&c, opts, 4, "optimizer kind 4");
	craft_u64(&c, opts + 12, m->n_params + 1, "optimizer state of another size");
	craft_u64(&c, opts + 12, (uint64_t) 1 << 61, "optimizer state of 2^61 floats");
out:
	esmm_model_free(m);
	free(buf);
}

/*
 * A valid model of a few MB can have 65536-wide layers: its scoring
 * workspace must be sized before it is allocated, and grow linearly with
 * the batch, so that the glue can bound a batch by esmm.max_memory.
 */
static void
test_workspace_bound(void)
{
	esmm_schema s;
	esmm_arch	a;
	esmm_model *m = NULL;
	esmm_status st;
	size_t		one,
				two,
				big;

	make_spec(&s, &a);
	a.tower[0].n_layers = 5;
	for (int l = 0; l < 4; l++)
		set_layer(&a.tower[0].layers[l], l % 2 ? 1 : 65536, ESMM_ACT_RELU, 1, 0, 0.0f);
	set_layer(&a.tower[0].layers[4], 1, ESMM_ACT_NONE, 1, 0, 0.0f);
	esmm_status_clear(&st);
	if (esmm_model_create(&m, &s, &a, ESMM_KIND_ESMM, &st) != ESMM_OK)
	{
		CHECK(0, "create: %s", st.msg);
		return;
	}
	one = esmm_model_workspace_bytes(m, 1);
	two = esmm_model_workspace_bytes(m, 2);
	big = esmm_model_workspace_bytes(m, 4096);
	CHECK(m->n_params < 2000000, "%zu parameters, a few MB of bytea", m->n_params);
	CHECK(big > ((size_t) 4 << 30), "4096 rows need %zu bytes, more than 4 GB", big);
	CHECK(one < ((size_t) 16 << 20), "one row needs %zu bytes", one);
	CHECK(big - one == 4095 * (two - one), "workspace is linear in the batch: %zu, %zu, %zu", one, two, big);
	CHECK(esmm_model_workspace(m, 2, &st) == ESMM_OK && m->max_B == 2, "a batch of 2 allocates: %s", st.msg);
	/* sizing leaves an allocated workspace alone */
	CHECK(esmm_model_workspace_bytes(m, 4096) == big, "sizing again gives %zu bytes", big);
	/* the carve must stay within what was sized: write every buffer end */
	m->scratch[2][2 * 65536 - 1] = 1.0f;
	m->batch_labels[2 * 2 - 1] = 1.0f;
	esmm_model_free(m);
}

void
suite_format(void)
{
	test_crc();
	test_round_trips();
	test_truncation();
	test_byte_flips();
	test_crafted();
	test_workspace_bound();
}
