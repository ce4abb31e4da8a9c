/* model_format.c: encoding and strict decoding of model format v1. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_format.h"
#include "mmoe_model.h"

enum
{
	SEC_CONF = 1,
	SEC_SCHM = 2,
	SEC_ARCH = 3,
	SEC_REPT = 4,
	SEC_PARM = 5,
	SEC_STAT = 6,
	SEC_OPTS = 7
};

#define SECTION_HEADER 16
#define METRIC_NAME_LEN 32

/* ------------------------------------------------------------- writer */

/* A cursor that counts when buf is NULL, so sizing and writing share code. */
typedef struct writer
{
	uint8_t    *buf;
	size_t		pos;
} writer;

static void
put_bytes(writer *w, const void *p, size_t n)
{
	if (w->buf)
		memcpy(w->buf + w->pos, p, n);
	w->pos += n;
}

static void
put_u8(writer *w, uint8_t v)
{
	put_bytes(w, &v, 1);
}

static void
put_u16(writer *w, uint16_t v)
{
	uint8_t		b[2] = {(uint8_t) v, (uint8_t) (v >> 8)};

	put_bytes(w, b, 2);
}

static void
put_u32(writer *w, uint32_t v)
{
	uint8_t		b[4];

	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t) (v >> (8 * i));
	put_bytes(w, b, 4);
}

static void
put_u64(writer *w, uint64_t v)
{
	uint8_t		b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t) (v >> (8 * i));
	put_bytes(w, b, 8);
}

static void
put_f32(writer *w, float v)
{
	uint32_t	u;

	memcpy(&u, &v, 4);
	put_u32(w, u);
}

static void
put_f64(writer *w, double v)
{
	uint64_t	u;

	memcpy(&u, &v, 8);
	put_u64(w, u);
}

static void
put_floats(writer *w, const float *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		put_f32(w, v[i]);
}

/* A fixed-width, NUL-padded name field. */
static void
put_name(writer *w, const char *s, size_t width)
{
	size_t		n = strnlen(s, width - 1);

	put_bytes(w, s, n);
	for (; n < width; n++)
		put_u8(w, 0);
}

/* Starts a section; returns where its length goes, patched by end. */
static size_t
section_begin(writer *w, uint32_t tag)
{
	size_t		at;

	put_u32(w, tag);
	put_u32(w, 0);
	at = w->pos;
	put_u64(w, 0);
	return at;
}

static void
section_end(writer *w, size_t at)
{
	if (w->buf)
	{
		writer		patch = {w->buf, at};

		put_u64(&patch, (uint64_t) (w->pos - at - 8));
	}
}

static uint32_t
tower_count(const esmm_model *m)
{
	return (uint32_t) m->has_tower[0] + m->has_tower[1];
}

static void
put_tower(writer *w, const esmm_tower_spec *tw)
{
	put_u32(w, tw->n_layers);
	for (uint32_t l = 0; l < tw->n_layers; l++)
	{
		put_u32(w, tw->layers[l].units);
		put_u8(w, tw->layers[l].use_bias);
		put_u8(w, tw->layers[l].act);
		put_u8(w, tw->layers[l].use_bn);
		put_u8(w, 0);
		put_f32(w, tw->layers[l].dropout);
	}
	put_f32(w, tw->l1);
	put_f32(w, tw->l2);
	put_u32(w, tw->n_inputs);
	for (uint32_t i = 0; i < tw->n_inputs; i++)
		put_u16(w, tw->inputs[i]);
}

static void
put_mmoe_arch(writer *w, const mmoe_arch *a)
{
	put_u32(w, a->n_tasks);
	for (uint32_t t = 0; t < a->n_tasks; t++)
	{
		put_u8(w, a->task_type[t]);
		put_u8(w, 0);
		put_u16(w, 0);
		put_f32(w, a->loss_weights[t]);
		put_tower(w, &a->task[t]);
	}
	put_u8(w, a->task_output_sigmoid);
	put_u8(w, a->gate_use_bias);
	put_u8(w, a->share_gates);
	put_u8(w, a->use_wide);
	put_u32(w, a->n_experts);
	put_tower(w, &a->expert);
	put_f32(w, a->gate_l1);
	put_f32(w, a->gate_l2);
	put_u8(w, a->wide_type);
	put_u8(w, a->feature_cross);
	put_u8(w, a->output_cross);
	put_u8(w, 0);
	put_u32(w, a->wide_width);
	put_f32(w, a->wide_l1);
	put_f32(w, a->wide_l2);
	put_u32(w, a->n_wide_inputs);
	for (uint32_t i = 0; i < a->n_wide_inputs; i++)
		put_u16(w, a->wide_inputs[i]);
	put_f32(w, a->l2_embedding);
}

static void
write_model(writer *w, const esmm_model *m, int with_optimizer)
{
	const esmm_schema *s = &m->schema;
	size_t		at;

	put_bytes(w, "ESMM", 4);
	put_u16(w, ESMM_FORMAT_VERSION);
	put_u16(w, (uint16_t) m->kind);
	put_u32(w, 0);				/* CRC, patched last */
	put_u32(w, with_optimizer ? 7 : 6);

	at = section_begin(w, SEC_CONF);
	put_bytes(w, m->config_json ? m->config_json : "{}", m->config_json ? m->config_len : 2);
	section_end(w, at);

	at = section_begin(w, SEC_SCHM);
	put_u32(w, s->n_features);
	for (uint32_t f = 0; f < s->n_features; f++)
	{
		const esmm_feature *ft = &s->features[f];

		put_name(w, ft->name, ESMM_NAME_LEN);
		put_u32(w, ft->src_type);
		put_u8(w, ft->kind);
		put_u8(w, ft->hashed);
		put_u8(w, ft->norm);
		put_u8(w, ft->null_indicator);
		put_u32(w, ft->n_buckets);
		put_u32(w, ft->dim);
		put_f32(w, ft->mean);
		put_f32(w, ft->std);
	}
	put_u32(w, s->n_labels);
	for (uint32_t i = 0; i < s->n_labels; i++)
	{
		put_name(w, s->labels[i], ESMM_NAME_LEN);
		put_u32(w, s->label_src_type[i]);
	}
	section_end(w, at);

	at = section_begin(w, SEC_ARCH);
	if (m->kind == ESMM_KIND_MMOE)
		put_mmoe_arch(w, &m->mmoe);
	else
	{
		for (int t = 0; t < 2; t++)
			if (m->has_tower[t])
				put_tower(w, &m->arch.tower[t]);
		put_f32(w, m->arch.loss_weights[0]);
		put_f32(w, m->arch.loss_weights[1]);
		put_f32(w, m->arch.l2_embedding);
		put_u8(w, m->arch.label_is_ctcvr);
		put_u8(w, m->arch.loss);
		put_u16(w, 0);
	}
	section_end(w, at);

	at = section_begin(w, SEC_REPT);
	put_u64(w, m->report.rows_seen);
	put_u64(w, m->report.rows_trained);
	put_u64(w, m->report.rows_dropped);
	put_u64(w, m->report.rows_null_label);
	put_u64(w, m->report.rows_bad);
	put_f64(w, m->report.seconds);
	put_u32(w, m->report.threads);
	put_u32(w, m->report.n_epochs);
	for (uint32_t e = 0; e < m->report.n_epochs; e++)
	{
		const esmm_history_epoch *h = &m->report.epochs[e];

		put_u32(w, h->epoch);
		put_f64(w, h->train_loss);
		put_u64(w, h->rows);
		put_f64(w, h->seconds);
		put_u32(w, h->n_metrics);
		for (uint32_t k = 0; k < h->n_metrics; k++)
		{
			put_name(w, h->metric_names[k], METRIC_NAME_LEN);
			put_f64(w, h->metric_values[k]);
		}
	}
	put_u64(w, m->report.rows_validation);
	put_u32(w, m->report.best_epoch);
	put_u8(w, m->report.stopped_early);
	section_end(w, at);

	at = section_begin(w, SEC_PARM);
	put_u64(w, m->n_params);
	put_floats(w, m->params, m->n_params);
	section_end(w, at);

	at = section_begin(w, SEC_STAT);
	put_u64(w, m->n_state);
	put_floats(w, m->state, m->n_state);
	section_end(w, at);

	if (with_optimizer)
	{
		at = section_begin(w, SEC_OPTS);
		put_u32(w, m->optim.kind);
		put_u64(w, m->step);
		put_u64(w, m->n_params);
		put_floats(w, m->m1, m->n_params);
		put_floats(w, m->m2, m->n_params);
		section_end(w, at);
	}
}

size_t
esmm_model_encoded_size(const esmm_model *m, int with_optimizer)
{
	writer		w = {NULL, 0};

	write_model(&w, m, with_optimizer && m->m1 != NULL);
	return w.pos;
}

esmm_code
esmm_model_encode(const esmm_model *m, int with_optimizer, uint8_t *buf,
				  size_t len, esmm_crc_fn crc, esmm_status *st)
{
	writer		w = {buf, 0};
	writer		patch = {buf, 8};

	with_optimizer = with_optimizer && m->m1 != NULL;
	if (m->kind != ESMM_KIND_MMOE && tower_count(m) == 0)
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "the model has no tower");
	if (len != esmm_model_encoded_size(m, with_optimizer))
		return esmm_fail(st, ESMM_ERR_ARGUMENT, "encode buffer of %zu bytes has the wrong size", len);
	write_model(&w, m, with_optimizer);
	put_u32(&patch, crc(buf + 12, len - 12));
	return ESMM_OK;
}

/* ------------------------------------------------------------- reader */

/* A bounds-checked cursor: any read past the end sets failed, returns 0. */
typedef struct reader
{
	const uint8_t *buf;
	size_t		pos;
	size_t		end;
	int			failed;
} reader;

static int
take(reader *r, size_t n, const uint8_t **p)
{
	if (r->failed || n > r->end - r->pos)
	{
		r->failed = 1;
		return 0;
	}
	*p = r->buf + r->pos;
	r->pos += n;
	return 1;
}

static uint8_t
get_u8(reader *r)
{
	const uint8_t *p;

	return take(r, 1, &p) ? p[0] : 0;
}

static uint16_t
get_u16(reader *r)
{
	const uint8_t *p;

	return take(r, 2, &p) ? (uint16_t) (p[0] | p[1] << 8) : 0;
}

static uint32_t
get_u32(reader *r)
{
	const uint8_t *p;
	uint32_t	v = 0;

	if (!take(r, 4, &p))
		return 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t
get_u64(reader *r)
{
	const uint8_t *p;
	uint64_t	v = 0;

	if (!take(r, 8, &p))
		return 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static float
get_f32(reader *r)
{
	uint32_t	u = get_u32(r);
	float		v;

	memcpy(&v, &u, 4);
	return v;
}

static double
get_f64(reader *r)
{
	uint64_t	u = get_u64(r);
	double		v;

	memcpy(&v, &u, 8);
	return v;
}

/* A fixed-width name that must contain its NUL terminator. */
static int
get_name(reader *r, char *dst, size_t width)
{
	const uint8_t *p;

	if (!take(r, width, &p) || memchr(p, '\0', width) == NULL)
		return 0;
	memcpy(dst, p, width);
	return 1;
}

/* Reads count floats into dst[count]; count was checked against the
 * section length by the caller. */
static void
get_floats(reader *r, float *dst, size_t count)
{
	for (size_t i = 0; i < count; i++)
		dst[i] = get_f32(r);
}

/* Opens the next section, which must carry tag; *sec spans its payload. */
static esmm_code
open_section(reader *r, uint32_t tag, reader *sec, esmm_status *st)
{
	static const char *const names[] = {"", "config", "schema", "architecture",
	"report", "parameters", "statistics", "optimizer state"};
	uint32_t	got = get_u32(r);
	uint32_t	zero = get_u32(r);
	uint64_t	len = get_u64(r);

	if (r->failed)
		return esmm_fail(st, ESMM_ERR_FORMAT, "truncated before the %s section", names[tag]);
	if (got != tag || zero != 0)
		return esmm_fail(st, ESMM_ERR_FORMAT, "expected the %s section, found tag %u",
						 names[tag], got);
	if (len > r->end - r->pos)
		return esmm_fail(st, ESMM_ERR_FORMAT, "%s section of %llu bytes overruns the %zu bytes left",
						 names[tag], (unsigned long long) len, r->end - r->pos);
	sec->buf = r->buf;
	sec->pos = r->pos;
	sec->end = r->pos + (size_t) len;
	sec->failed = 0;
	r->pos = sec->end;
	return ESMM_OK;
}

static esmm_code
close_section(reader *sec, const char *what, esmm_status *st)
{
	if (sec->failed)
		return esmm_fail(st, ESMM_ERR_FORMAT, "%s section is truncated", what);
	if (sec->pos != sec->end)
		return esmm_fail(st, ESMM_ERR_FORMAT, "%s section has %zu trailing bytes",
						 what, sec->end - sec->pos);
	return ESMM_OK;
}

static esmm_code
read_schema(reader *r, esmm_schema *s, esmm_status *st)
{
	s->n_features = get_u32(r);
	if (r->failed || s->n_features == 0 || s->n_features > ESMM_MAX_FEATURES)
		return esmm_fail(st, ESMM_ERR_FORMAT, "feature count %u is not in 1..%d",
						 s->n_features, ESMM_MAX_FEATURES);
	for (uint32_t f = 0; f < s->n_features; f++)
	{
		esmm_feature *ft = &s->features[f];

		if (!get_name(r, ft->name, ESMM_NAME_LEN))
			return esmm_fail(st, ESMM_ERR_FORMAT, "feature %u has a malformed name", f);
		ft->src_type = get_u32(r);
		ft->kind = get_u8(r);
		ft->hashed = get_u8(r);
		ft->norm = get_u8(r);
		ft->null_indicator = get_u8(r);
		ft->n_buckets = get_u32(r);
		ft->dim = get_u32(r);
		ft->mean = get_f32(r);
		ft->std = get_f32(r);
	}
	s->n_labels = get_u32(r);
	if (r->failed || s->n_labels > ESMM_MAX_LABELS)
		return esmm_fail(st, ESMM_ERR_FORMAT, "label count %u exceeds %d",
						 s->n_labels, ESMM_MAX_LABELS);
	for (uint32_t i = 0; i < s->n_labels; i++)
	{
		if (!get_name(r, s->labels[i], ESMM_NAME_LEN))
			return esmm_fail(st, ESMM_ERR_FORMAT, "label %u has a malformed name", i);
		s->label_src_type[i] = get_u32(r);
	}
	return close_section(r, "schema", st);
}

static esmm_code
get_tower(reader *r, esmm_tower_spec *tw, esmm_status *st)
{
	tw->n_layers = get_u32(r);
	if (r->failed || tw->n_layers < 1 || tw->n_layers > ESMM_MAX_LAYERS)
		return esmm_fail(st, ESMM_ERR_FORMAT, "tower has %u layers, not 1..%d",
						 tw->n_layers, ESMM_MAX_LAYERS);
	for (uint32_t l = 0; l < tw->n_layers; l++)
	{
		tw->layers[l].units = get_u32(r);
		tw->layers[l].use_bias = get_u8(r);
		tw->layers[l].act = get_u8(r);
		tw->layers[l].use_bn = get_u8(r);
		(void) get_u8(r);
		tw->layers[l].dropout = get_f32(r);
	}
	tw->l1 = get_f32(r);
	tw->l2 = get_f32(r);
	tw->n_inputs = get_u32(r);
	if (r->failed || tw->n_inputs > ESMM_MAX_FEATURES)
		return esmm_fail(st, ESMM_ERR_FORMAT, "tower has %u inputs, more than %d",
						 tw->n_inputs, ESMM_MAX_FEATURES);
	for (uint32_t i = 0; i < tw->n_inputs; i++)
		tw->inputs[i] = get_u16(r);
	return ESMM_OK;
}

static esmm_code
read_arch(reader *r, esmm_arch *a, const uint8_t has_tower[2], esmm_status *st)
{
	esmm_code	rc;

	for (int t = 0; t < 2; t++)
		if (has_tower[t] && (rc = get_tower(r, &a->tower[t], st)) != ESMM_OK)
			return rc;
	a->loss_weights[0] = get_f32(r);
	a->loss_weights[1] = get_f32(r);
	a->l2_embedding = get_f32(r);
	a->label_is_ctcvr = get_u8(r);
	a->loss = get_u8(r);
	(void) get_u16(r);
	return close_section(r, "architecture", st);
}

/* The MMoE architecture; mmoe_model_plan validates the values after. */
static esmm_code
read_mmoe_arch(reader *r, mmoe_arch *a, esmm_status *st)
{
	esmm_code	rc;

	a->n_tasks = get_u32(r);
	if (r->failed || a->n_tasks < 1 || a->n_tasks > ESMM_MAX_LABELS)
		return esmm_fail(st, ESMM_ERR_FORMAT, "mmoe has %u tasks, not 1..%d", a->n_tasks,
						 ESMM_MAX_LABELS);
	for (uint32_t t = 0; t < a->n_tasks; t++)
	{
		a->task_type[t] = get_u8(r);
		(void) get_u8(r);
		(void) get_u16(r);
		a->loss_weights[t] = get_f32(r);
		if ((rc = get_tower(r, &a->task[t], st)) != ESMM_OK)
			return rc;
	}
	a->task_output_sigmoid = get_u8(r);
	a->gate_use_bias = get_u8(r);
	a->share_gates = get_u8(r);
	a->use_wide = get_u8(r);
	a->n_experts = get_u32(r);
	if ((rc = get_tower(r, &a->expert, st)) != ESMM_OK)
		return rc;
	a->gate_l1 = get_f32(r);
	a->gate_l2 = get_f32(r);
	a->wide_type = get_u8(r);
	a->feature_cross = get_u8(r);
	a->output_cross = get_u8(r);
	(void) get_u8(r);
	a->wide_width = get_u32(r);
	a->wide_l1 = get_f32(r);
	a->wide_l2 = get_f32(r);
	a->n_wide_inputs = get_u32(r);
	if (r->failed || a->n_wide_inputs > ESMM_MAX_FEATURES)
		return esmm_fail(st, ESMM_ERR_FORMAT, "wide part has %u inputs, more than %d",
						 a->n_wide_inputs, ESMM_MAX_FEATURES);
	for (uint32_t i = 0; i < a->n_wide_inputs; i++)
		a->wide_inputs[i] = get_u16(r);
	a->l2_embedding = get_f32(r);
	return close_section(r, "architecture", st);
}

static esmm_code
read_report(reader *r, esmm_report *rep, esmm_status *st)
{
	/* the smallest encoded epoch, to bound n_epochs by the bytes left */
	const size_t min_epoch = 4 + 8 + 8 + 8 + 4;

	rep->rows_seen = get_u64(r);
	rep->rows_trained = get_u64(r);
	rep->rows_dropped = get_u64(r);
	rep->rows_null_label = get_u64(r);
	rep->rows_bad = get_u64(r);
	rep->seconds = get_f64(r);
	rep->threads = get_u32(r);
	rep->n_epochs = get_u32(r);
	if (r->failed)
		return esmm_fail(st, ESMM_ERR_FORMAT, "report section is truncated");
	/* each decoded epoch takes sizeof(esmm_history_epoch) bytes, far more
	 * than its encoding: the cap keeps a crafted count from allocating
	 * more than a few tens of MB */
	if (rep->n_epochs > ESMM_MAX_EPOCHS || rep->n_epochs > (r->end - r->pos) / min_epoch)
		return esmm_fail(st, ESMM_ERR_FORMAT, "report claims %u epochs in %zu bytes",
						 rep->n_epochs, r->end - r->pos);
	if (rep->n_epochs > 0)
	{
		rep->epochs = calloc(rep->n_epochs, sizeof(esmm_history_epoch));
		if (rep->epochs == NULL)
			return esmm_fail(st, ESMM_ERR_NOMEM, "out of memory for %u epochs", rep->n_epochs);
	}
	for (uint32_t e = 0; e < rep->n_epochs; e++)
	{
		esmm_history_epoch *h = &rep->epochs[e];

		h->epoch = get_u32(r);
		h->train_loss = get_f64(r);
		h->rows = get_u64(r);
		h->seconds = get_f64(r);
		h->n_metrics = get_u32(r);
		if (r->failed || h->n_metrics > 16)
			return esmm_fail(st, ESMM_ERR_FORMAT, "epoch %u has %u metrics, more than 16",
							 e + 1, h->n_metrics);
		for (uint32_t k = 0; k < h->n_metrics; k++)
		{
			if (!get_name(r, h->metric_names[k], METRIC_NAME_LEN))
				return esmm_fail(st, ESMM_ERR_FORMAT, "epoch %u has a malformed metric name", e + 1);
			h->metric_values[k] = get_f64(r);
		}
	}
	rep->rows_validation = get_u64(r);
	rep->best_epoch = get_u32(r);
	rep->stopped_early = get_u8(r);
	if (!r->failed && (rep->best_epoch > rep->n_epochs || rep->stopped_early > 1))
		return esmm_fail(st, ESMM_ERR_FORMAT, "report names best epoch %u of %u",
						 rep->best_epoch, rep->n_epochs);
	return close_section(r, "report", st);
}

/* Reads "u64 count, f32[count]" where count must equal expect. */
static esmm_code
read_float_block(reader *r, float *dst, size_t expect, const char *what,
				 esmm_status *st)
{
	uint64_t	count = get_u64(r);

	if (r->failed)
		return esmm_fail(st, ESMM_ERR_FORMAT, "%s section is truncated", what);
	if (count != expect)
		return esmm_fail(st, ESMM_ERR_FORMAT, "%s section holds %llu values, the architecture needs %zu",
						 what, (unsigned long long) count, expect);
	if (expect > (r->end - r->pos) / 4)
		return esmm_fail(st, ESMM_ERR_FORMAT, "%s section is truncated", what);
	get_floats(r, dst, expect);
	return ESMM_OK;
}

esmm_model_kind
esmm_model_peek_kind(const uint8_t *buf, size_t len)
{
	if (len < ESMM_HEADER_SIZE || memcmp(buf, "ESMM", 4) != 0)
		return 0;
	return (esmm_model_kind) (buf[6] | buf[7] << 8);
}

esmm_code
esmm_model_decode(esmm_model **out, const uint8_t *buf, size_t len,
				  esmm_crc_fn crc, int with_optimizer, esmm_status *st)
{
	reader		r = {buf, 0, len, 0};
	reader		sec;
	esmm_schema *schema = NULL;
	esmm_arch	arch;
	mmoe_arch  *mmoe = NULL;
	esmm_model *m = NULL;
	esmm_report rep;
	uint16_t	version,
				kind;
	uint32_t	stored_crc,
				n_sections;
	const uint8_t *conf;
	size_t		conf_len;
	esmm_code	rc;
	uint8_t		has_tower[2];

	*out = NULL;
	memset(&arch, 0, sizeof(arch));
	memset(&rep, 0, sizeof(rep));
	if (len < ESMM_HEADER_SIZE)
		return esmm_fail(st, ESMM_ERR_FORMAT, "%zu bytes is shorter than the %d-byte header",
						 len, ESMM_HEADER_SIZE);
	if (memcmp(buf, "ESMM", 4) != 0)
		return esmm_fail(st, ESMM_ERR_FORMAT, "bad magic number, not an esmm model");
	r.pos = 4;
	version = get_u16(&r);
	kind = get_u16(&r);
	stored_crc = get_u32(&r);
	n_sections = get_u32(&r);
	if (version != ESMM_FORMAT_VERSION)
		return esmm_fail(st, ESMM_ERR_FORMAT, "format version %u is not supported (this build reads %d)",
						 version, ESMM_FORMAT_VERSION);
	if (kind != ESMM_KIND_ESMM && kind != ESMM_KIND_ESMM_CTR && kind != ESMM_KIND_ESMM_CVR &&
		kind != ESMM_KIND_MMOE)
		return esmm_fail(st, ESMM_ERR_FORMAT, "unknown model kind %u", kind);
	if (crc(buf + 12, len - 12) != stored_crc)
		return esmm_fail(st, ESMM_ERR_FORMAT, "checksum mismatch");
	if (n_sections != 6 && n_sections != 7)
		return esmm_fail(st, ESMM_ERR_FORMAT, "section count %u is not 6 or 7", n_sections);
	has_tower[0] = kind != ESMM_KIND_ESMM_CVR;
	has_tower[1] = kind != ESMM_KIND_ESMM_CTR;

	if ((rc = open_section(&r, SEC_CONF, &sec, st)) != ESMM_OK)
		return rc;
	conf = buf + sec.pos;
	conf_len = sec.end - sec.pos;
	if (memchr(conf, '\0', conf_len) != NULL)
		return esmm_fail(st, ESMM_ERR_FORMAT, "config section contains a NUL byte");

	schema = calloc(1, sizeof(*schema));
	mmoe = kind == ESMM_KIND_MMOE ? calloc(1, sizeof(*mmoe)) : NULL;
	if (schema == NULL || (kind == ESMM_KIND_MMOE && mmoe == NULL))
	{
		free(schema);
		return esmm_fail(st, ESMM_ERR_NOMEM, "out of memory for the schema");
	}
	if ((rc = open_section(&r, SEC_SCHM, &sec, st)) != ESMM_OK ||
		(rc = read_schema(&sec, schema, st)) != ESMM_OK ||
		(rc = open_section(&r, SEC_ARCH, &sec, st)) != ESMM_OK ||
		(rc = mmoe != NULL ? read_mmoe_arch(&sec, mmoe, st) :
		 read_arch(&sec, &arch, has_tower, st)) != ESMM_OK ||
		(rc = open_section(&r, SEC_REPT, &sec, st)) != ESMM_OK ||
		(rc = read_report(&sec, &rep, st)) != ESMM_OK)
		goto fail;

	/*
	 * The parameter count follows from the spec; check that the bytes that
	 * remain can hold that many floats before allocating them, so that a
	 * crafted header (a 2^30-row table, say) cannot ask for terabytes.
	 * esmm_model_plan also re-validates every count and width of the spec.
	 */
	{
		size_t		n_params;

		if ((rc = mmoe != NULL ? mmoe_model_plan(schema, mmoe, 1, 0, &n_params, NULL, st) :
			 esmm_model_plan(schema, &arch, (esmm_model_kind) kind, 1, 0, &n_params, NULL, st)) != ESMM_OK)
		{
			if (rc == ESMM_ERR_ARGUMENT)
				rc = ESMM_ERR_FORMAT;
			goto fail;
		}
		if (n_params > (r.end - r.pos) / sizeof(float))
		{
			rc = esmm_fail(st, ESMM_ERR_FORMAT, "the architecture needs %zu parameters, more than the %zu bytes left can hold",
						   n_params, r.end - r.pos);
			goto fail;
		}
	}
	if ((rc = mmoe != NULL ? mmoe_model_create(&m, schema, mmoe, st) :
		 esmm_model_create(&m, schema, &arch, (esmm_model_kind) kind, st)) != ESMM_OK)
	{
		if (rc == ESMM_ERR_ARGUMENT)
			rc = ESMM_ERR_FORMAT;
		goto fail;
	}
	free(schema);
	schema = NULL;
	free(mmoe);
	mmoe = NULL;
	m->report = rep;
	rep.epochs = NULL;
	if ((rc = esmm_model_set_config(m, (const char *) conf, conf_len, st)) != ESMM_OK)
		goto fail;

	if ((rc = open_section(&r, SEC_PARM, &sec, st)) != ESMM_OK ||
		(rc = read_float_block(&sec, m->params, m->n_params, "parameters", st)) != ESMM_OK ||
		(rc = close_section(&sec, "parameters", st)) != ESMM_OK ||
		(rc = open_section(&r, SEC_STAT, &sec, st)) != ESMM_OK ||
		(rc = read_float_block(&sec, m->state, m->n_state, "statistics", st)) != ESMM_OK ||
		(rc = close_section(&sec, "statistics", st)) != ESMM_OK)
		goto fail;
	for (size_t i = 0; i < m->n_params; i++)
		if (!isfinite(m->params[i]))
		{
			rc = esmm_fail(st, ESMM_ERR_FORMAT, "parameter %zu is not finite", i);
			goto fail;
		}
	for (size_t i = 0; i < m->n_state; i++)
		if (!isfinite(m->state[i]))
		{
			rc = esmm_fail(st, ESMM_ERR_FORMAT, "statistic %zu is not finite", i);
			goto fail;
		}
	if (!esmm_model_variances_valid(m))
	{
		rc = esmm_fail(st, ESMM_ERR_FORMAT, "a batch-norm variance is negative");
		goto fail;
	}

	if (n_sections == 7)
	{
		uint32_t	okind;
		uint64_t	step,
					count;

		if ((rc = open_section(&r, SEC_OPTS, &sec, st)) != ESMM_OK)
			goto fail;
		okind = get_u32(&sec);
		step = get_u64(&sec);
		count = get_u64(&sec);
		if (sec.failed || okind > ESMM_OPTIM_RMSPROP || count != m->n_params ||
			count > (sec.end - sec.pos) / 8)
		{
			rc = esmm_fail(st, ESMM_ERR_FORMAT, "optimizer state does not match the parameters");
			goto fail;
		}
		if (with_optimizer)
		{
			m->m1 = malloc((m->n_params > 0 ? m->n_params : 1) * sizeof(float));
			m->m2 = malloc((m->n_params > 0 ? m->n_params : 1) * sizeof(float));
			if (m->m1 == NULL || m->m2 == NULL)
			{
				rc = esmm_fail(st, ESMM_ERR_NOMEM, "out of memory for the optimizer state");
				goto fail;
			}
			get_floats(&sec, m->m1, m->n_params);
			get_floats(&sec, m->m2, m->n_params);
			m->optim.kind = okind;
			m->step = step;
		}
		else
			sec.pos = sec.end;
		if ((rc = close_section(&sec, "optimizer state", st)) != ESMM_OK)
			goto fail;
	}
	if (r.pos != r.end)
	{
		rc = esmm_fail(st, ESMM_ERR_FORMAT, "%zu trailing bytes after the last section",
					   r.end - r.pos);
		goto fail;
	}
	*out = m;
	return ESMM_OK;

fail:
	free(schema);
	free(mmoe);
	free(rep.epochs);
	esmm_model_free(m);
	/* a spec that validation rejects is a malformed model here */
	if (st != NULL)
		st->code = rc;
	return rc;
}
