/*
 * esmm_config.c: the training configuration, parsed from jsonb.
 *
 * The document is read in two passes.  The first sorts every key of the
 * top level and of job_detail into a section (model_args, train_args,
 * eval_args, the inputs) or into the ignored pipeline keys.  A key may sit
 * nested in its section or flattened at the level: the seeds' templates and
 * short hand-written configs both work, and a key given in both places
 * with two different values is an error rather than a silent choice.  The
 * second pass reads each section through small typed getters; they own
 * every error message, so that the wording, which pg_regress output pins,
 * stays uniform.
 *
 * Model kinds differ in their model_args keys, input groups, labels and
 * losses; those live in a cfg_model_desc, with an entry for ESMM and one for
 * MMoE v2.  ESMM names its labels in model_args, MMoE lists them in
 * inputs.groups.labels: MMoE reads the inputs before model_args.
 *
 * jsonb does not keep the order of keys, so "order of appearance" for the
 * pipeline-key NOTICE is rebuilt: by level (top, job_detail, train_args,
 * eval_args), then in the order the seed templates write them.
 */
#include "postgres.h"

#include <ctype.h>
#include <float.h>
#include <math.h>

#include "common/shortest_dec.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "nodes/pg_list.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "esmm_config.h"

#define CFG_NAME_MAX		(ESMM_NAME_LEN - 1)
#define CFG_MAX_UNITS		65536
#define CFG_MAX_BATCH		1048576
#define CFG_MAX_EPOCHS		ESMM_MAX_EPOCHS
#define CFG_MAX_BUCKETS		(INT64CONST(1) << 30)
#define CFG_MAX_EMB_DIM		1024
#define CFG_VALUE_CLIP		200 /* bytes of a value quoted in a message */

/* Pipeline-key levels, in the order the NOTICE lists them. */
#define LEVEL_TOP			0
#define LEVEL_JOB_DETAIL	1
#define LEVEL_TRAIN_ARGS	2
#define LEVEL_EVAL_ARGS		3
#define LEVEL_NONE			(-1)

/* One value of the document, with what messages need to name it. */
typedef struct cfg_node
{
	const char *key;			/* names it in hints; elements: their array's
								 * key */
	const char *path;			/* dotted path in the document */
	JsonbValue	v;				/* a scalar, or jbvBinary for a container */
} cfg_node;

/* The keys of one object, possibly merged from several places. */
typedef struct cfg_section
{
	const char *name;			/* "model_args": names it in hints */
	const char *where;			/* path of its nested object, if any */
	List	   *nodes;			/* cfg_node *, one per key */
} cfg_section;

/* An ignored key, with its place in the NOTICE's list. */
typedef struct cfg_pipeline_key
{
	const char *key;
	int			level;
	int			rank;
	int			seq;
} cfg_pipeline_key;

/* An entry of inputs.defs, for the normalized document. */
typedef struct cfg_def
{
	int			request;		/* index into out->requests; -1: a label */
	const char *name;
	const char *dtype;			/* "" when not given */
} cfg_def;

struct cfg_ctx;

typedef struct cfg_model_desc
{
	esmm_model_kind kind;
	const char *what;			/* "esmm": names the configuration */
	const char *example;		/* a short valid configuration, for hints */
	const char *const *model_keys;	/* NULL-terminated */
	const char *const *train_keys;
	const char *const *group_names; /* inputs.groups keys */
	bool		labels_in_inputs;	/* read the inputs before model_args */
	void		(*parse_model) (struct cfg_ctx *c, esmm_config *out);
	void		(*parse_groups) (struct cfg_ctx *c, esmm_config *out,
								 const cfg_section *groups);
	void		(*parse_losses) (struct cfg_ctx *c, esmm_config *out);
	void		(*put_model) (JsonbParseState **st, const esmm_config *out);
	void		(*put_groups) (JsonbParseState **st, const esmm_config *out);
	void		(*put_losses) (JsonbParseState **st, const esmm_config *out);
} cfg_model_desc;

typedef struct cfg_ctx
{
	const cfg_model_desc *desc;
	cfg_section model;
	cfg_section train;
	cfg_section eval;
	cfg_section inputs;			/* one node, "inputs", from wherever it came */
	List	   *pipeline;		/* cfg_pipeline_key * */
	List	   *defs;			/* cfg_def *, as inputs.defs lists them */
	cfg_node   *defs_node;		/* inputs.defs, if given */
	bool		holdout_defaulted;	/* early_stopping without validation_fraction */
	bool		wide_dropped;	/* use_wide true, but no wide features */
	bool		wide_raw_notice;	/* a wide_type neither FM, LR nor raw */
	bool		wide_unused;	/* no cross reads the wide part */
} cfg_ctx;

typedef struct cfg_range
{
	float		lo;
	float		hi;
	bool		lo_open;
	bool		hi_open;
	const char *what;
} cfg_range;

static const cfg_range RANGE_POSITIVE = {0.0f, FLT_MAX, true, false, "a positive number"};
static const cfg_range RANGE_NONNEG = {0.0f, FLT_MAX, false, false, "a non-negative number"};
static const cfg_range RANGE_RATE = {0.0f, 1.0f, false, true, "a number in [0, 1)"};
static const cfg_range RANGE_HOLDOUT = {0.0f, 0.9f, false, false, "a number in [0, 0.9]"};

static const char *const level_keys[] = {
	"job_detail", "inputs", "model_input_config", "model_args", "train_args",
	"eval_args", NULL
};

static const char *const esmm_train_keys[] = {
	"batch_size", "epochs", "optimizer", "losses", "metrics", "early_stopping",
	"train_speed_logger", "seed", "validation_fraction", "shuffle",
	"on_bad_row", "mode", "streaming_window", "init_model",
	"keep_optimizer_state", NULL
};

/* MMoE's: ESMM's and task_types, which model_args may hold too. */
static const char *const mmoe_train_keys[] = {
	"batch_size", "epochs", "optimizer", "losses", "metrics", "early_stopping",
	"train_speed_logger", "seed", "validation_fraction", "shuffle",
	"on_bad_row", "mode", "streaming_window", "init_model",
	"keep_optimizer_state", "task_types", NULL
};

static const char *const eval_keys[] = {"batch_size", "metrics", NULL};

/* In the seeds' order; "*_data_args" is any key with that suffix. */
static const char *const pipeline_keys[] = {
	"num_workers", "node_affin", "pod_affin", "timeout",
	"model_input_config_file", "load_model_from", "*_data_args", "mw_com",
	"train_type", "num_samples", "num_val_samples", "tensorboard",
	"output_file", NULL
};

static const char *const mic_keys[] = {"version", "inputs", NULL};

static const char *const input_keys[] = {
	"defs", "groups", "exclude", "default_embedding_dim",
	"default_hash_buckets", NULL
};

static const char *const def_keys[] = {
	"name", "dtype", "type", "vocab_size", "hash_buckets", "embedding_dim",
	"normalize", "null_indicator", "is_label", NULL
};

static const char *const dtype_names[] = {
	"int16", "int32", "int64", "int", "float32", "float64", "float",
	"double", "string", "text", "bool", NULL
};

/* Indexed by esmm_feature_kind - 1. */
static const char *const kind_names[] = {"categorical", "numeric", "multi", NULL};

/* Indexed by esmm_norm. */
static const char *const norm_names[] = {"none", "standard", "log", NULL};

/* Indexed by esmm_optim_kind. */
static const char *const optim_names[] = {"adam", "adagrad", "sgd", "rmsprop", NULL};

static const char *const optim_keys[] = {"type", "args", NULL};

/* Keras' arguments of each optimizer, indexed by esmm_optim_kind. */
static const char *const optim_args[][5] = {
	{"learning_rate", "beta_1", "beta_2", "epsilon", NULL},
	{"learning_rate", "initial_accumulator_value", "epsilon", NULL},
	{"learning_rate", "momentum", NULL},
	{"learning_rate", "rho", "momentum", "epsilon", NULL},
};

typedef struct cfg_optim_arg
{
	const char *name;
	size_t		offset;			/* of the float in esmm_optim_spec */
	const cfg_range *range;
} cfg_optim_arg;

static const cfg_optim_arg optim_arg_table[] = {
	{"learning_rate", offsetof(esmm_optim_spec, learning_rate), &RANGE_POSITIVE},
	{"beta_1", offsetof(esmm_optim_spec, beta_1), &RANGE_RATE},
	{"beta_2", offsetof(esmm_optim_spec, beta_2), &RANGE_RATE},
	{"epsilon", offsetof(esmm_optim_spec, epsilon), &RANGE_POSITIVE},
	{"momentum", offsetof(esmm_optim_spec, momentum), &RANGE_RATE},
	{"rho", offsetof(esmm_optim_spec, rho), &RANGE_RATE},
	{"initial_accumulator_value", offsetof(esmm_optim_spec, initial_accumulator_value),
	&RANGE_NONNEG},
};

/* Indexed by esmm_loss_kind. */
static const char *const loss_names[] = {"bce", "mse", NULL};

static const char *const metric_names[] = {"auc", "bacc", "logloss", "mse", NULL};

static const char *const es_keys[] = {"monitor", "mode", "patience", "min_delta", NULL};
static const char *const es_modes[] = {"min", "max", "auto", NULL};
static const char *const logger_keys[] = {"every_batches", "with_metrics", NULL};
static const char *const bad_row_names[] = {"error", "skip", NULL};
const char *const esmm_train_mode_names[] = {"auto", "memory", "streaming", NULL};

/* ------------------------------------------------------------ messages */

static void cfg_bad(const cfg_node *n, const char *fmt,...)
			pg_attribute_printf(2, 3) pg_attribute_noreturn();
static void cfg_unknown(const cfg_node *n, const char *section,
						const char *accepted) pg_attribute_noreturn();
static void cfg_missing(const char *path, const char *hint) pg_attribute_noreturn();

/* Appends names[] to buf, comma-separated after what buf holds. */
static void
cfg_append_names(StringInfo buf, const char *const *names)
{
	for (; *names != NULL; names++)
	{
		if (buf->len > 0)
			appendStringInfoString(buf, ", ");
		appendStringInfoString(buf, *names);
	}
}

static char *
cfg_join(const char *const *names)
{
	StringInfoData buf;

	initStringInfo(&buf);
	cfg_append_names(&buf, names);
	return buf.data;
}

static int
cfg_index(const char *const *names, const char *key)
{
	int			i;

	for (i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], key) == 0)
			return i;
	return -1;
}

/* The JSON text of a value; clipped for messages, since a wrong-typed
 * section can be kilobytes long. */
static char *
cfg_text(const cfg_node *n, bool clip)
{
	JsonbValue	v = n->v;
	Jsonb	   *jb = JsonbValueToJsonb(&v);
	char	   *s = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	int			len = strlen(s);

	if (clip && len > CFG_VALUE_CLIP)
		s = psprintf("%.*s...", pg_mbcliplen(s, len, CFG_VALUE_CLIP), s);
	return s;
}

/* ERROR for a wrong type or range; the hint reads "<key> must be <what>." */
static void
cfg_bad(const cfg_node *n, const char *fmt,...)
{
	StringInfoData what;

	initStringInfo(&what);
	for (;;)
	{
		va_list		ap;
		int			needed;

		va_start(ap, fmt);
		needed = appendStringInfoVA(&what, fmt, ap);
		va_end(ap);
		if (needed == 0)
			break;
		enlargeStringInfo(&what, needed);
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for configuration key \"%s\": %s",
					n->path, cfg_text(n, true)),
			 errhint("%s must be %s.", n->key, what.data)));
	pg_unreachable();
}

static void
cfg_unknown(const cfg_node *n, const char *section, const char *accepted)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown configuration key \"%s\"", n->path),
			 errhint("Accepted keys in %s are: %s.", section, accepted)));
	pg_unreachable();
}

static void
cfg_missing(const char *path, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("missing configuration key \"%s\"", path),
			 errhint("%s", hint)));
	pg_unreachable();
}

/* ------------------------------------------------------------- walking */

static bool
cfg_is(const cfg_node *n, bool object)
{
	return n->v.type == jbvBinary &&
		(object ? JsonContainerIsObject(n->v.val.binary.data)
		 : JsonContainerIsArray(n->v.val.binary.data));
}

/* The members (object) or elements (array) of a container, in jsonb order. */
static List *
cfg_children(const cfg_node *n)
{
	JsonbIterator *it = JsonbIteratorInit(n->v.val.binary.data);
	JsonbIteratorToken tok;
	JsonbValue	v;
	List	   *out = NIL;
	char	   *key = NULL;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		cfg_node   *child;

		if (tok == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, v.val.string.len);
			continue;
		}
		if (tok != WJB_VALUE && tok != WJB_ELEM)
			continue;
		child = palloc(sizeof(cfg_node));
		child->v = v;
		if (tok == WJB_VALUE)
		{
			child->key = key;
			child->path = n->path[0] ? psprintf("%s.%s", n->path, key) : key;
		}
		else
		{
			child->key = n->key;
			child->path = psprintf("%s[%d]", n->path, list_length(out));
		}
		out = lappend(out, child);
	}
	return out;
}

/* The elements of an array value, or an error that says what it must be. */
static List *
cfg_array(const cfg_node *n, const char *what)
{
	if (!cfg_is(n, false))
		cfg_bad(n, "%s", what);
	return cfg_children(n);
}

static void
cfg_section_init(cfg_section *s, const char *name)
{
	s->name = name;
	s->where = NULL;
	s->nodes = NIL;
}

static cfg_node *
cfg_get(const cfg_section *s, const char *key)
{
	ListCell   *lc;

	foreach(lc, s->nodes)
	{
		cfg_node   *n = lfirst(lc);

		if (strcmp(n->key, key) == 0)
			return n;
	}
	return NULL;
}

/* Where a missing key of s belongs, for the message. */
static char *
cfg_where(const cfg_section *s, const char *key)
{
	return psprintf("%s.%s", s->where ? s->where : s->name, key);
}

/* Adds n to s; a key given twice (nested and flattened) must agree. */
static void
cfg_add(cfg_section *s, cfg_node *n)
{
	cfg_node   *old = cfg_get(s, n->key);

	if (old == NULL)
	{
		s->nodes = lappend(s->nodes, n);
		return;
	}
	if (strcmp(cfg_text(old, false), cfg_text(n, false)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("conflicting values for configuration key \"%s\": %s and %s",
						n->key, cfg_text(old, true), cfg_text(n, true)),
				 errhint("%s is given both as \"%s\" and as \"%s\"; give it once.",
						 n->key, old->path, n->path)));
}

/* The sort rank of a pipeline key (seed order), or -1 for other keys. */
static int
cfg_pipeline_rank(const char *key)
{
	static const char suffix[] = "_data_args";
	static const char *const data_args[] = {"train_data_args", "val_data_args",
	"test_data_args", NULL};
	size_t		len = strlen(key);
	int			i;

	for (i = 0; pipeline_keys[i] != NULL; i++)
	{
		if (pipeline_keys[i][0] == '*')
		{
			if (len > strlen(suffix) &&
				strcmp(key + len - strlen(suffix), suffix) == 0)
			{
				int			sub = cfg_index(data_args, key);

				return i * 4 + (sub >= 0 ? sub : 3);
			}
		}
		else if (strcmp(pipeline_keys[i], key) == 0)
			return i * 4;
	}
	return -1;
}

static bool
cfg_take_pipeline(cfg_ctx *c, const cfg_node *n, int level)
{
	cfg_pipeline_key *p;
	int			rank = level == LEVEL_NONE ? -1 : cfg_pipeline_rank(n->key);

	if (rank < 0)
		return false;
	p = palloc(sizeof(cfg_pipeline_key));
	p->key = n->key;
	p->level = level;
	p->rank = rank;
	p->seq = list_length(c->pipeline);
	c->pipeline = lappend(c->pipeline, p);
	return true;
}

/*
 * Merges the object n into s: every key must be one of keys[] or, where
 * pipeline_level is a level, a pipeline key.
 */
static void
cfg_merge(cfg_ctx *c, cfg_section *s, const cfg_node *n,
		  const char *const *keys, int pipeline_level)
{
	ListCell   *lc;

	if (!cfg_is(n, true))
		cfg_bad(n, "an object");
	if (s->where == NULL)
		s->where = n->path;
	foreach(lc, cfg_children(n))
	{
		cfg_node   *m = lfirst(lc);

		if (cfg_index(keys, m->key) >= 0)
			cfg_add(s, m);
		else if (!cfg_take_pipeline(c, m, pipeline_level))
		{
			char	   *accepted = cfg_join(keys);

			if (pipeline_level != LEVEL_NONE)
				accepted = psprintf("%s, %s", accepted, cfg_join(pipeline_keys));
			cfg_unknown(m, s->name, accepted);
		}
	}
}

/* Opens the object n as a section of its own; what: when n is no object. */
static void
cfg_open(cfg_ctx *c, cfg_section *s, const cfg_node *n, const char *name,
		 const char *const *keys, const char *what)
{
	cfg_section_init(s, name);
	if (!cfg_is(n, true))
		cfg_bad(n, "%s", what ? what : "an object");
	cfg_merge(c, s, n, keys, LEVEL_NONE);
}

/* ------------------------------------------------------------- getters */

/* The canonical decimal text of a number, or NULL for other values. */
static char *
cfg_number_text(const cfg_node *n)
{
	if (n->v.type != jbvNumeric ||
		numeric_is_nan(n->v.val.numeric) || numeric_is_inf(n->v.val.numeric))
		return NULL;
	return numeric_normalize(n->v.val.numeric);
}

/* An integer in [lo, hi]; 2.0 counts as an integer, as in JSON. */
static int64
cfg_int(const cfg_node *n, int64 lo, int64 hi, const char *what)
{
	char	   *s = cfg_number_text(n);

	if (s != NULL && strchr(s, '.') == NULL)
	{
		char	   *end;
		int64		x;

		errno = 0;
		x = strtoi64(s, &end, 10);
		if (errno == 0 && *end == '\0' && x >= lo && x <= hi)
			return x;
	}
	if (what != NULL)
		cfg_bad(n, "%s", what);
	cfg_bad(n, "an integer from " INT64_FORMAT " to " INT64_FORMAT, lo, hi);
}

/* A number in r, checked after rounding to float, which is what is kept. */
static float
cfg_real(const cfg_node *n, const cfg_range *r, const char *what)
{
	char	   *s = cfg_number_text(n);

	if (s != NULL)
	{
		float		f = (float) strtod(s, NULL);

		if (isfinite(f) &&
			(r->lo_open ? f > r->lo : f >= r->lo) &&
			(r->hi_open ? f < r->hi : f <= r->hi))
			return f;
	}
	cfg_bad(n, "%s", what ? what : r->what);
}

/* Regularization rates: seed 002 documents null as "none", that is 0. */
static float
cfg_rate_or_null(const cfg_node *n, const cfg_range *r)
{
	return n->v.type == jbvNull ? 0.0f : cfg_real(n, r, NULL);
}

static bool
cfg_bool(const cfg_node *n, const char *what)
{
	if (n->v.type != jbvBool)
		cfg_bad(n, "%s", what ? what : "true or false");
	return n->v.val.boolean;
}

/* A string of 1 to 63 bytes: a column or model name. */
static char *
cfg_name(const cfg_node *n, const char *what)
{
	if (n->v.type != jbvString ||
		n->v.val.string.len < 1 || n->v.val.string.len > CFG_NAME_MAX)
		cfg_bad(n, "%s", what);
	return pnstrdup(n->v.val.string.val, n->v.val.string.len);
}

/* The index of the string value in names[]. */
static int
cfg_enum(const cfg_node *n, const char *const *names, const char *what)
{
	if (n->v.type == jbvString)
	{
		int			i;

		for (i = 0; names[i] != NULL; i++)
			if (strlen(names[i]) == (size_t) n->v.val.string.len &&
				memcmp(names[i], n->v.val.string.val, n->v.val.string.len) == 0)
				return i;
	}
	if (what != NULL)
		cfg_bad(n, "%s", what);
	cfg_bad(n, "one of: %s", cfg_join(names));
}

/* One-line readers of an optional key of a section. */
static int64
cfg_get_int(const cfg_section *s, const char *key, int64 lo, int64 hi, int64 dflt)
{
	cfg_node   *n = cfg_get(s, key);

	return n ? cfg_int(n, lo, hi, NULL) : dflt;
}

static float
cfg_get_real(const cfg_section *s, const char *key, const cfg_range *r, float dflt)
{
	cfg_node   *n = cfg_get(s, key);

	return n ? cfg_real(n, r, NULL) : dflt;
}

static bool
cfg_get_bool(const cfg_section *s, const char *key, bool dflt)
{
	cfg_node   *n = cfg_get(s, key);

	return n ? cfg_bool(n, NULL) : dflt;
}

static int
cfg_get_enum(const cfg_section *s, const char *key, const char *const *names, int dflt)
{
	cfg_node   *n = cfg_get(s, key);

	return n ? cfg_enum(n, names, NULL) : dflt;
}

/* A model name; dflt when absent. */
static const char *
cfg_get_name(const cfg_section *s, const char *key, const char *dflt)
{
	cfg_node   *n = cfg_get(s, key);

	return n ? cfg_name(n, "a string of 1 to 63 bytes") : dflt;
}

/* A regularization rate: non-negative, null or absent for 0. */
static float
cfg_get_rate(const cfg_section *s, const char *key)
{
	cfg_node   *n = cfg_get(s, key);

	return n ? cfg_rate_or_null(n, &RANGE_NONNEG) : 0.0f;
}

/* A key that must be given. */
static cfg_node *
cfg_require(const cfg_section *s, const char *key, const char *hint)
{
	cfg_node   *n = cfg_get(s, key);

	if (n == NULL)
		cfg_missing(cfg_where(s, key), hint);
	return n;
}

/* --------------------------------------------------------- per-layer keys */

typedef double (*cfg_layer_reader) (const cfg_node *n, const char *what);

/* The core's activation names, "none" last as users read them. */
static const char *const *
cfg_act_list(void)
{
	const char **names = palloc((ESMM_ACT_COUNT + 1) * sizeof(char *));
	int			i;

	for (i = 1; i < ESMM_ACT_COUNT; i++)
		names[i - 1] = esmm_act_names[i];
	names[ESMM_ACT_COUNT - 1] = esmm_act_names[ESMM_ACT_NONE];
	names[ESMM_ACT_COUNT] = NULL;
	return names;
}

static double
cfg_layer_act(const cfg_node *n, const char *what)
{
	int			i;

	if (n->v.type == jbvNull)
		return ESMM_ACT_NONE;
	i = cfg_enum(n, cfg_act_list(), what);
	return i == ESMM_ACT_COUNT - 1 ? ESMM_ACT_NONE : i + 1;
}

static double
cfg_layer_bool(const cfg_node *n, const char *what)
{
	return cfg_bool(n, what);
}

static double
cfg_layer_rate(const cfg_node *n, const char *what)
{
	if (n->v.type == jbvNull)
		return 0.0;
	return cfg_real(n, &RANGE_RATE, what);
}

/*
 * Reads a per-layer key (seed 000's *_hidden_act, *_use_bn, *_dropout) into
 * vals[0..nl-1]: one value applies to every layer; in an array, entry i
 * applies to layer i, missing entries take "missing", and entries past the
 * last layer are checked (a typo there is still a typo) but unused.
 */
static void
cfg_per_layer(const cfg_node *n, int nl, double dflt, double missing,
			  cfg_layer_reader read, const char *what, double *vals)
{
	int			i;

	for (i = 0; i < nl; i++)
		vals[i] = dflt;
	if (n == NULL)
		return;
	if (cfg_is(n, false))
	{
		ListCell   *lc;

		for (i = 0; i < nl; i++)
			vals[i] = missing;
		foreach(lc, cfg_children(n))
		{
			double		x = read(lfirst(lc), what);

			if (foreach_current_index(lc) < nl)
				vals[foreach_current_index(lc)] = x;
		}
	}
	else
	{
		double		x = read(n, what);

		for (i = 0; i < nl; i++)
			vals[i] = x;
	}
}

/* loss_weights: count non-negative numbers, not all 0; all 1 when absent. */
static void
cfg_parse_weights(const cfg_node *n, uint32 count, const char *what, float *w)
{
	List	   *elems;
	ListCell   *lc;
	bool		any = false;
	uint32		i;

	for (i = 0; i < count; i++)
		w[i] = 1.0f;
	if (n == NULL)
		return;
	elems = cfg_array(n, what);
	if (list_length(elems) != (int) count)
		cfg_bad(n, "%s", what);
	foreach(lc, elems)
	{
		i = foreach_current_index(lc);
		w[i] = cfg_real(lfirst(lc), &RANGE_NONNEG, what);
		if (w[i] != 0)
			any = true;
	}
	if (!any)
		cfg_bad(n, "%s", what);
}

/* The keys of one kind of tower: ESMM's ctr_dnn_* and cvr_dnn_*, MMoE's
 * task_* and expert_*. */
typedef struct cfg_tower_keys
{
	const char *act;
	const char *use_bias;
	const char *use_bn;
	const char *dropout;
	const char *l1;
	const char *l2;
	bool		output;			/* the last layer is the linear output layer */
} cfg_tower_keys;

/*
 * The layer widths in n: a non-empty array of at most ESMM_MAX_LAYERS
 * widths, with seed 000's width-1 output layer appended when output is set
 * and the last width is not 1.
 */
static int
cfg_parse_units(const cfg_node *n, bool output, const char *what, uint32 *units)
{
	List	   *elems = cfg_array(n, what);
	ListCell   *lc;
	int			nl;

	if (list_length(elems) == 0 || list_length(elems) > ESMM_MAX_LAYERS)
		cfg_bad(n, "%s", what);
	nl = 0;
	foreach(lc, elems)
		units[nl++] = cfg_int(lfirst(lc), 1, CFG_MAX_UNITS, what);
	if (output && units[nl - 1] != 1)
	{
		if (nl == ESMM_MAX_LAYERS)
			cfg_bad(n, "%s", what);
		units[nl++] = 1;
	}
	return nl;
}

/*
 * Fills t from its nl layer widths and the per-layer keys of s.  Seed 000:
 * activations and dropout are for the hidden layers (an output layer stays
 * linear, its sigmoid is part of the loss), batch norm is for every layer,
 * the output included.  Without an output layer every layer is hidden.
 */
static void
cfg_parse_tower(const cfg_section *s, const cfg_tower_keys *k,
				const uint32 *units, int nl, esmm_tower_spec *t)
{
	double		act[ESMM_MAX_LAYERS];
	double		bn[ESMM_MAX_LAYERS];
	double		dropout[ESMM_MAX_LAYERS];
	int			nh = k->output ? nl - 1 : nl;
	bool		use_bias;
	int			i;

	use_bias = cfg_get_bool(s, k->use_bias, true);
	cfg_per_layer(cfg_get(s, k->act), nh, ESMM_ACT_RELU, ESMM_ACT_NONE, cfg_layer_act,
				  psprintf("one of: %s", cfg_join(cfg_act_list())), act);
	cfg_per_layer(cfg_get(s, k->use_bn), nl, 0, 0,
				  cfg_layer_bool, "true or false, or a per-layer array of those", bn);
	cfg_per_layer(cfg_get(s, k->dropout), nh, 0, 0,
				  cfg_layer_rate, "a number in [0, 1), or a per-layer array of those", dropout);

	t->n_layers = nl;
	for (i = 0; i < nl; i++)
	{
		bool		hidden = i < nh;

		t->layers[i].units = units[i];
		t->layers[i].use_bias = use_bias;
		t->layers[i].act = hidden ? (uint8) act[i] : ESMM_ACT_NONE;
		t->layers[i].use_bn = bn[i] != 0;
		t->layers[i].dropout = hidden ? (float) dropout[i] : 0.0f;
	}
	t->l1 = cfg_get_rate(s, k->l1);
	t->l2 = cfg_get_rate(s, k->l2);
}

/* ------------------------------------------------------------------ ESMM */

static const char *const esmm_model_keys[] = {
	"name",
	"ctr_dnn_units", "ctr_dnn_hidden_act", "ctr_dnn_use_bias", "ctr_dnn_use_bn",
	"ctr_dnn_dropout", "ctr_dnn_l1_reg", "ctr_dnn_l2_reg",
	"cvr_dnn_units", "cvr_dnn_hidden_act", "cvr_dnn_use_bias", "cvr_dnn_use_bn",
	"cvr_dnn_dropout", "cvr_dnn_l1_reg", "cvr_dnn_l2_reg",
	"l2_reg_embedding", "ctr_label_name", "ctcvr_label_name", "cvr_label_name",
	"loss_weights", NULL
};

/* Indexed by ESMM_TOWER_CTR / ESMM_TOWER_CVR; also the inputs.groups keys. */
static const char *const esmm_towers[] = {"ctr", "cvr", NULL};

static char *
esmm_key(const char *tower, const char *suffix)
{
	return psprintf("%s_dnn_%s", tower, suffix);
}

static cfg_tower_keys
esmm_tower_keys(const char *tower)
{
	cfg_tower_keys k = {
		esmm_key(tower, "hidden_act"), esmm_key(tower, "use_bias"),
		esmm_key(tower, "use_bn"), esmm_key(tower, "dropout"),
		esmm_key(tower, "l1_reg"), esmm_key(tower, "l2_reg"), true
	};

	return k;
}

static void
esmm_parse_tower(const cfg_section *s, const char *tower, esmm_tower_spec *t)
{
	static const uint32 dflt[] = {64, 32, 1};
	cfg_tower_keys k = esmm_tower_keys(tower);
	uint32		units[ESMM_MAX_LAYERS];
	cfg_node   *n = cfg_get(s, esmm_key(tower, "units"));
	int			nl = lengthof(dflt);

	if (n != NULL)
		nl = cfg_parse_units(n, true,
							 psprintf("a non-empty array of integers from 1 to %d, at most %d layers "
									  "counting the width-1 output layer appended when the last width is not 1",
									  CFG_MAX_UNITS, ESMM_MAX_LAYERS),
							 units);
	else
		memcpy(units, dflt, sizeof(dflt));
	cfg_parse_tower(s, &k, units, nl, t);
}

static void
esmm_parse_model(cfg_ctx *c, esmm_config *out)
{
	const cfg_section *s = &c->model;
	const char *label_what = "a column name of 1 to 63 bytes";
	cfg_node   *n;
	cfg_node   *ctcvr;
	cfg_node   *cvr;
	int			t;

	strlcpy(out->name, cfg_get_name(s, "name", "esmm"), ESMM_NAME_LEN);

	for (t = 0; t < 2; t++)
		esmm_parse_tower(s, esmm_towers[t], &out->arch.tower[t]);

	out->arch.l2_embedding = cfg_get_rate(s, "l2_reg_embedding");

	cfg_parse_weights(cfg_get(s, "loss_weights"), 2,
					  "an array of 2 non-negative numbers (ctr, ctcvr), not both 0",
					  out->arch.loss_weights);

	if ((n = cfg_get(s, "ctr_label_name")) == NULL)
		cfg_missing(cfg_where(s, "ctr_label_name"),
					"ctr_label_name names the click label column.");
	strlcpy(out->labels[0], cfg_name(n, label_what), ESMM_NAME_LEN);

	ctcvr = cfg_get(s, "ctcvr_label_name");
	cvr = cfg_get(s, "cvr_label_name");
	if (ctcvr != NULL && cvr != NULL)
		cfg_bad(cvr, "omitted when ctcvr_label_name is given");
	if (ctcvr == NULL && cvr == NULL)
		cfg_missing(cfg_where(s, "ctcvr_label_name"),
					"Give ctcvr_label_name, the click-and-conversion label column, "
					"or cvr_label_name, the conversion label column.");
	n = ctcvr ? ctcvr : cvr;
	out->arch.label_is_ctcvr = ctcvr != NULL;
	strlcpy(out->labels[1], cfg_name(n, label_what), ESMM_NAME_LEN);
	if (strcmp(out->labels[0], out->labels[1]) == 0)
		cfg_bad(n, "a column other than ctr_label_name");
}

/* ---------------------------------------------------------------- inputs */

const char **
esmm_config_labels(const esmm_config *out)
{
	const char **names = palloc((ESMM_MAX_LABELS + 1) * sizeof(char *));
	uint32		n = 0;

	if (out->kind == ESMM_KIND_MMOE)
		for (; n < out->n_labels; n++)
			names[n] = out->mmoe_labels[n];
	else
	{
		names[n++] = out->labels[0];
		names[n++] = out->labels[1];
	}
	names[n] = NULL;
	return names;
}

int
esmm_config_label_index(const esmm_config *out, const char *name)
{
	return cfg_index(esmm_config_labels(out), name);
}

static bool
cfg_is_label(const esmm_config *out, const char *name)
{
	return esmm_config_label_index(out, name) >= 0;
}

static int
cfg_find_request(const esmm_config *out, const char *name)
{
	uint32		i;

	for (i = 0; i < out->n_requests; i++)
		if (strcmp(out->requests[i].name, name) == 0)
			return i;
	return -1;
}

static bool
cfg_in_names(const char (*names)[ESMM_NAME_LEN], uint32 n, const char *name)
{
	uint32		i;

	for (i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

/* Errors when any of keys[] is given in d: they do not apply to a feature
 * of this kind, and a silently unused setting is a typo waiting to bite. */
static void
cfg_forbid(const cfg_section *d, const char *const *keys, const char *what)
{
	for (; *keys != NULL; keys++)
	{
		cfg_node   *n = cfg_get(d, *keys);

		if (n != NULL)
			cfg_bad(n, "%s", what);
	}
}

static void
cfg_parse_defs(cfg_ctx *c, esmm_config *out, const cfg_node *defs)
{
	static const char *const table_keys[] = {"vocab_size", "hash_buckets", "embedding_dim", NULL};
	static const char *const numeric_keys[] = {"normalize", "null_indicator", NULL};
	char	   *what = psprintf("an array of 1 to %d feature definitions (objects), not counting labels",
								ESMM_MAX_FEATURES);
	ListCell   *lc;

	out->defs_given = true;
	foreach(lc, cfg_array(defs, what))
	{
		cfg_node   *e = lfirst(lc);
		cfg_def    *def = palloc(sizeof(cfg_def));
		esmm_feature_request *r;
		cfg_section d;
		cfg_node   *n;
		ListCell   *prev;
		bool		is_label;
		int			dtype;
		int			kind;
		int			norm;
		int64		vocab;
		int64		buckets;
		int64		dim;
		bool		null_indicator;
		bool		float_dtype;
		bool		text_dtype;

		cfg_open(c, &d, e, "inputs.defs entries", def_keys, what);
		if ((n = cfg_get(&d, "name")) == NULL)
			cfg_missing(psprintf("%s.name", e->path),
						"name is the column that the entry describes.");
		def->name = cfg_name(n, "a column name of 1 to 63 bytes");
		foreach(prev, c->defs)
			if (strcmp(((cfg_def *) lfirst(prev))->name, def->name) == 0)
				cfg_bad(n, "a column name not already listed in inputs.defs");

		/* every key is checked, labels' too */
		dtype = cfg_get_enum(&d, "dtype", dtype_names, -1);
		kind = cfg_get_enum(&d, "type", kind_names, -1) + 1;
		vocab = cfg_get_int(&d, "vocab_size", 1, CFG_MAX_BUCKETS, 0);
		buckets = cfg_get_int(&d, "hash_buckets", 1, CFG_MAX_BUCKETS, 0);
		dim = cfg_get_int(&d, "embedding_dim", 1, CFG_MAX_EMB_DIM, 0);
		norm = cfg_get_enum(&d, "normalize", norm_names, -1);
		null_indicator = cfg_get_bool(&d, "null_indicator", false);
		is_label = cfg_get_bool(&d, "is_label", false);

		def->dtype = dtype >= 0 ? dtype_names[dtype] : "";
		def->request = -1;
		c->defs = lappend(c->defs, def);
		if (!is_label && cfg_is_label(out, def->name))
			cfg_bad(n, "a feature column, not a label: give this entry \"is_label\": true or remove it");
		if (is_label)
			continue;

		float_dtype = dtype >= 0 && (strncmp(def->dtype, "float", 5) == 0 ||
									 strcmp(def->dtype, "double") == 0);
		text_dtype = dtype >= 0 && (strcmp(def->dtype, "string") == 0 ||
									strcmp(def->dtype, "text") == 0);
		if (kind == 0 && dtype >= 0)
			kind = float_dtype ? ESMM_FEAT_NUMERIC : ESMM_FEAT_CATEGORICAL;
		if (kind == ESMM_FEAT_NUMERIC && text_dtype)
			cfg_bad(cfg_get(&d, "type"), "categorical or multi for dtype %s", def->dtype);
		if ((kind == ESMM_FEAT_CATEGORICAL || kind == ESMM_FEAT_MULTI) && float_dtype)
			cfg_bad(cfg_get(&d, "type"), "numeric for dtype %s", def->dtype);
		if (kind == ESMM_FEAT_NUMERIC)
			cfg_forbid(&d, table_keys, "omitted for a numeric feature");
		if (kind == ESMM_FEAT_CATEGORICAL || kind == ESMM_FEAT_MULTI)
			cfg_forbid(&d, numeric_keys, "omitted for a categorical or multi feature");

		if (out->n_requests == ESMM_MAX_FEATURES)
			cfg_bad(defs, "%s", what);
		def->request = out->n_requests;
		r = &out->requests[out->n_requests++];
		strlcpy(r->name, def->name, ESMM_NAME_LEN);
		strlcpy(r->dtype, def->dtype, sizeof(r->dtype));
		r->kind = kind;
		r->vocab_size = vocab;
		r->hash_buckets = buckets;
		r->embedding_dim = dim;
		r->norm = norm >= 0 ? norm : ESMM_NORM_STANDARD;
		r->norm_given = norm >= 0;
		r->null_indicator = null_indicator;
	}
	if (out->n_requests == 0)
		cfg_bad(defs, "%s", what);
}

static void
cfg_parse_exclude(esmm_config *out, const cfg_node *n)
{
	char	   *what = psprintf("an array of at most %d distinct column names, none of them a feature in inputs.defs",
								ESMM_MAX_FEATURES);
	ListCell   *lc;

	foreach(lc, cfg_array(n, what))
	{
		char	   *name = cfg_name(lfirst(lc), what);

		if (out->n_exclude == ESMM_MAX_FEATURES)
			cfg_bad(n, "%s", what);
		if (cfg_in_names(out->exclude, out->n_exclude, name) ||
			cfg_find_request(out, name) >= 0)
			cfg_bad(lfirst(lc), "%s", what);
		strlcpy(out->exclude[out->n_exclude++], name, ESMM_NAME_LEN);
	}
}

/* A group of features into names[]; returns how many. */
static uint32
cfg_parse_group(const esmm_config *out, const cfg_node *n, bool may_be_empty,
				char (*names)[ESMM_NAME_LEN])
{
	const char *what = psprintf(out->defs_given
								? "%s array of distinct feature names from inputs.defs"
								: "%s array of distinct column names that are neither labels nor in inputs.exclude",
								may_be_empty ? "an" : "a non-empty");
	List	   *elems = cfg_array(n, what);
	ListCell   *lc;
	uint32		count = 0;

	if ((list_length(elems) == 0 && !may_be_empty) || list_length(elems) > ESMM_MAX_FEATURES)
		cfg_bad(n, "%s", what);
	foreach(lc, elems)
	{
		char	   *name = cfg_name(lfirst(lc), what);
		bool		ok = out->defs_given
			? cfg_find_request(out, name) >= 0
			: !cfg_is_label(out, name) && !cfg_in_names(out->exclude, out->n_exclude, name);

		if (!ok || cfg_in_names(names, count, name))
			cfg_bad(lfirst(lc), "%s", what);
		strlcpy(names[count++], name, ESMM_NAME_LEN);
	}
	return count;
}

static void
esmm_parse_groups(cfg_ctx *c, esmm_config *out, const cfg_section *g)
{
	cfg_node   *n;
	int			t;

	for (t = 0; t < 2; t++)
		if ((n = cfg_get(g, esmm_towers[t])) != NULL)
		{
			out->n_group[t] = cfg_parse_group(out, n, false, out->group[t]);
			out->group_given[t] = true;
		}
}

static void
cfg_parse_inputs(cfg_ctx *c, esmm_config *out)
{
	cfg_node   *in = cfg_get(&c->inputs, "inputs");
	cfg_section s;
	cfg_node   *n;

	out->default_embedding_dim = 8;
	out->default_hash_buckets = 10000;
	if (in == NULL)
		return;
	cfg_open(c, &s, in, "inputs", input_keys, NULL);
	out->default_embedding_dim = cfg_get_int(&s, "default_embedding_dim", 1, CFG_MAX_EMB_DIM, 8);
	out->default_hash_buckets = cfg_get_int(&s, "default_hash_buckets", 1,
											CFG_MAX_BUCKETS, 10000);
	if ((n = cfg_get(&s, "defs")) != NULL)
	{
		c->defs_node = n;
		cfg_parse_defs(c, out, n);
	}
	if ((n = cfg_get(&s, "exclude")) != NULL)
		cfg_parse_exclude(out, n);
	if ((n = cfg_get(&s, "groups")) != NULL)
	{
		cfg_section g;

		cfg_open(c, &g, n, "inputs.groups", c->desc->group_names, NULL);
		c->desc->parse_groups(c, out, &g);
	}
}

/* ------------------------------------------------------------ train_args */

/* The metrics object of train_args or eval_args, in label order. */
static uint32
cfg_parse_metrics(cfg_ctx *c, const esmm_config *out, const cfg_node *n,
				  const char *section, esmm_metric_request *req)
{
	const char **labels = esmm_config_labels(out);
	char	   *what = psprintf("an array of metric names from: %s", cfg_join(metric_names));
	cfg_section m;
	uint32		nreq = 0;
	int			l;

	cfg_open(c, &m, n, section, labels,
			 "an object that maps each label to an array of metric names");
	for (l = 0; labels[l] != NULL; l++)
	{
		cfg_node   *a = cfg_get(&m, labels[l]);
		esmm_metric_request *r = &req[nreq];
		ListCell   *lc;

		if (a == NULL)
			continue;
		nreq++;
		strlcpy(r->label, labels[l], ESMM_NAME_LEN);
		r->n_metrics = 0;
		foreach(lc, cfg_array(a, what))
		{
			const char *name = metric_names[cfg_enum(lfirst(lc), metric_names, what)];
			uint32		i;

			for (i = 0; i < r->n_metrics; i++)
				if (strcmp(r->metrics[i], name) == 0)
					break;
			if (i == r->n_metrics)
				strlcpy(r->metrics[r->n_metrics++], name, sizeof(r->metrics[0]));
		}
	}
	return nreq;
}

/* ESMM's losses: one kind for both labels, however it is written. */
static uint8
cfg_parse_losses(cfg_ctx *c, const esmm_config *out, const cfg_node *n)
{
	const char *what = "bce or mse, given once or as an array or an object by label of equal values";
	const char **labels = esmm_config_labels(out);
	List	   *vals;
	ListCell   *lc;
	int			loss = -1;

	if (n->v.type == jbvString)
		return cfg_enum(n, loss_names, what);
	if (cfg_is(n, true))
	{
		cfg_section s;

		cfg_open(c, &s, n, "train_args.losses", labels, NULL);
		vals = s.nodes;
	}
	else
		vals = cfg_array(n, what);
	if (list_length(vals) < 1 || list_length(vals) > 2)
		cfg_bad(n, "%s", what);
	foreach(lc, vals)
	{
		cfg_node   *e = lfirst(lc);
		int			x;

		e->key = "losses";
		x = cfg_enum(e, loss_names, what);
		if (loss >= 0 && x != loss)
			cfg_bad(e, "%s", what);
		loss = x;
	}
	return loss;
}

static const cfg_optim_arg *
cfg_optim_arg_of(const char *name)
{
	int			i;

	for (i = 0; i < (int) lengthof(optim_arg_table); i++)
		if (strcmp(optim_arg_table[i].name, name) == 0)
			return &optim_arg_table[i];
	elog(ERROR, "unknown optimizer argument \"%s\"", name);
	return NULL;
}

static void
cfg_parse_optimizer(cfg_ctx *c, esmm_config *out, const cfg_node *n)
{
	const char *what = "adam, adagrad, sgd or rmsprop, or an object with keys type and args";
	esmm_optim_kind kind = ESMM_OPTIM_ADAM;
	cfg_node   *args = NULL;

	if (n != NULL && n->v.type == jbvString)
		kind = cfg_enum(n, optim_names, what);
	else if (n != NULL)
	{
		cfg_section o;

		cfg_open(c, &o, n, "train_args.optimizer", optim_keys, what);
		kind = cfg_get_enum(&o, "type", optim_names, ESMM_OPTIM_ADAM);
		args = cfg_get(&o, "args");
	}
	esmm_optim_defaults(&out->train.optim, kind);
	out->train.optim.kind = kind;
	if (args != NULL)
	{
		const char *const *names = optim_args[kind];
		cfg_section a;
		int			i;

		cfg_open(c, &a, args,
				 psprintf("train_args.optimizer.args for %s", optim_names[kind]),
				 names, NULL);
		for (i = 0; names[i] != NULL; i++)
		{
			const cfg_optim_arg *arg = cfg_optim_arg_of(names[i]);
			cfg_node   *v = cfg_get(&a, names[i]);

			if (v != NULL)
				*(float *) ((char *) &out->train.optim + arg->offset) =
					cfg_real(v, arg->range, NULL);
		}
	}
}

/* The accepted early_stopping monitors: the losses, then <label>_<metric>. */
static const char **
cfg_monitors(const esmm_config *out)
{
	const char **labels = esmm_config_labels(out);
	const char **names = palloc((2 + ESMM_MAX_LABELS * (lengthof(metric_names) - 1) + 1) *
								sizeof(char *));
	int			n = 0;
	int			l;
	int			m;

	names[n++] = "val_loss";
	names[n++] = "loss";
	for (l = 0; labels[l] != NULL; l++)
		for (m = 0; metric_names[m] != NULL; m++)
		{
			char	   *s = psprintf("%s_%s", labels[l], metric_names[m]);

			/* es_monitor holds ESMM_NAME_LEN bytes */
			if (strlen(s) <= CFG_NAME_MAX)
				names[n++] = s;
		}
	names[n] = NULL;
	return names;
}

static void
cfg_parse_early_stopping(cfg_ctx *c, esmm_config *out, const cfg_node *n)
{
	const char **monitors = cfg_monitors(out);
	cfg_section es;
	const char *monitor;
	int			mode;
	size_t		len;

	cfg_open(c, &es, n, "train_args.early_stopping", es_keys, NULL);
	out->early_stopping_given = true;
	monitor = monitors[cfg_get_enum(&es, "monitor", monitors, 0)];
	strlcpy(out->es_monitor, monitor, ESMM_NAME_LEN);
	mode = cfg_get_enum(&es, "mode", es_modes, 2);
	len = strlen(monitor);
	/* auto: larger is better for the accuracy-like metrics only */
	out->es_mode_max = mode == 1 ||
		(mode == 2 && ((len > 4 && strcmp(monitor + len - 4, "_auc") == 0) ||
					   (len > 5 && strcmp(monitor + len - 5, "_bacc") == 0)));
	out->es_patience = cfg_get_int(&es, "patience", 0, PG_INT32_MAX, 0);
	out->es_min_delta = cfg_get_real(&es, "min_delta", &RANGE_NONNEG, 0.0f);
}

static void
esmm_parse_losses(cfg_ctx *c, esmm_config *out)
{
	cfg_node   *n = cfg_get(&c->train, "losses");

	out->arch.loss = n ? cfg_parse_losses(c, out, n) : ESMM_LOSS_BCE;
}

/*
 * init_model: a bytea as jsonb renders one, "\\x" and hex digits, as
 * to_jsonb(model) and jsonb_build_object('init_model', model) write it.
 * cfg_parse copies it into the caller's context; whether it is a
 * model of a compatible schema is checked against the rows.
 */
static bytea *
cfg_init_model(const cfg_node *n)
{
	const char *hint = "a model bytea in hex, as jsonb_build_object('init_model', model) writes it";
	char	   *text;
	bytea	   *out;

	if (n->v.type != jbvString || n->v.val.string.len < 4 ||
		n->v.val.string.val[0] != '\\' || n->v.val.string.val[1] != 'x')
		cfg_bad(n, "%s", hint);
	text = pnstrdup(n->v.val.string.val, n->v.val.string.len);
	for (const char *p = text + 2; *p; p++)
		if (!isxdigit((unsigned char) *p))
			cfg_bad(n, "%s", hint);
	if (n->v.val.string.len % 2 != 0)
		cfg_bad(n, "%s", hint);
	out = DatumGetByteaPP(DirectFunctionCall1(byteain, CStringGetDatum(text)));
	pfree(text);
	return out;
}

static void
cfg_parse_train(cfg_ctx *c, esmm_config *out)
{
	const cfg_section *s = &c->train;
	cfg_node   *n;
	cfg_node   *holdout;

	out->train.batch_size = cfg_get_int(s, "batch_size", 1, CFG_MAX_BATCH, 512);
	out->train.epochs = cfg_get_int(s, "epochs", 1, CFG_MAX_EPOCHS, 1);
	cfg_parse_optimizer(c, out, cfg_get(s, "optimizer"));
	c->desc->parse_losses(c, out);
	if ((n = cfg_get(s, "metrics")) != NULL)
		out->n_metric_requests = cfg_parse_metrics(c, out, n, "train_args.metrics",
												   out->metric_requests);
	if ((n = cfg_get(s, "early_stopping")) != NULL)
		cfg_parse_early_stopping(c, out, n);
	if ((n = cfg_get(s, "train_speed_logger")) != NULL)
	{
		cfg_section l;

		cfg_open(c, &l, n, "train_args.train_speed_logger", logger_keys, NULL);
		out->train.log_every_batches = cfg_get_int(&l, "every_batches", 0, PG_INT32_MAX, 0);
		out->train.log_with_metrics = cfg_get_bool(&l, "with_metrics", false);
	}
	out->train.seed = cfg_get_int(s, "seed", 0, PG_INT64_MAX, 42);
	out->train.shuffle = cfg_get_bool(s, "shuffle", true);
	out->on_bad_row_skip = cfg_get_enum(s, "on_bad_row", bad_row_names, 0) == 1;
	out->mode = (esmm_train_mode) cfg_get_enum(s, "mode", esmm_train_mode_names, ESMM_MODE_AUTO);
	out->streaming_window = cfg_get_int(s, "streaming_window", 1, PG_INT32_MAX, 65536);
	out->keep_optimizer_state = cfg_get_bool(s, "keep_optimizer_state", false);
	if ((n = cfg_get(s, "init_model")) != NULL)
		out->init_model = cfg_init_model(n);

	holdout = cfg_get(s, "validation_fraction");
	out->validation_fraction = holdout ? cfg_real(holdout, &RANGE_HOLDOUT, NULL) : 0.0f;
	if (out->early_stopping_given && holdout == NULL)
	{
		out->validation_fraction = 0.1f;
		c->holdout_defaulted = true;
	}
	if (out->early_stopping_given && out->validation_fraction == 0 &&
		strcmp(out->es_monitor, "val_loss") == 0)
		cfg_bad(holdout, "greater than 0 when early_stopping monitors val_loss");
}

static void
cfg_parse_eval(cfg_ctx *c, esmm_config *out)
{
	const cfg_section *s = &c->eval;
	cfg_node   *n;

	/* without eval_args, evaluate as training does */
	out->eval_batch_size = cfg_get_int(s, "batch_size", 1, CFG_MAX_BATCH,
									   out->train.batch_size);
	if ((n = cfg_get(s, "metrics")) != NULL)
		out->n_eval_metric_requests = cfg_parse_metrics(c, out, n, "eval_args.metrics",
														out->eval_metric_requests);
	else
	{
		out->n_eval_metric_requests = out->n_metric_requests;
		memcpy(out->eval_metric_requests, out->metric_requests,
			   sizeof(out->metric_requests));
	}
}

/* ------------------------------------------------------------------ MMoE */

#define MMOE_MAX_EXPERTS	64
#define MMOE_MAX_WIDE_WIDTH	1024

static const char *const mmoe_model_keys[] = {
	"name",
	"task_structs", "task_use_bias", "task_hidden_act", "task_output_act",
	"task_use_bn", "task_dropout", "task_l1_reg", "task_l2_reg",
	"num_experts", "expert_layers", "expert_use_bias", "expert_act",
	"expert_dropout", "expert_use_bn", "expert_l1_reg", "expert_l2_reg",
	"gate_use_bias", "gate_l1_reg", "gate_l2_reg", "share_gates",
	"use_wide", "wide_type", "wide_width", "wide_l1_reg", "wide_l2_reg",
	"feature_cross", "output_cross",
	"l2_reg_embedding", "loss_weights", "task_types", NULL
};

/* The inputs.groups keys. */
static const char *const mmoe_groups[] = {"wide", "mmoe", "labels", NULL};

/* Indexed by mmoe_task_type, as loss_names by the task type's loss. */
static const char *const task_type_names[] = {"binary", "regression", NULL};

StaticAssertDecl((int) MMOE_TASK_BINARY == (int) ESMM_LOSS_BCE &&
				 (int) MMOE_TASK_REGRESSION == (int) ESMM_LOSS_MSE,
				 "a task type and its loss share their index");

/* Indexed by task_output_sigmoid. */
static const char *const output_act_names[] = {"none", "sigmoid", NULL};

static const cfg_tower_keys mmoe_task_keys = {
	"task_hidden_act", "task_use_bias", "task_use_bn", "task_dropout",
	"task_l1_reg", "task_l2_reg", true
};

/* Experts have no output layer: every layer is hidden. */
static const cfg_tower_keys mmoe_expert_keys = {
	"expert_act", "expert_use_bias", "expert_use_bn", "expert_dropout",
	"expert_l1_reg", "expert_l2_reg", false
};

static void
mmoe_parse_labels(esmm_config *out, const cfg_node *n)
{
	char	   *what = psprintf("a non-empty array of at most %d distinct label column names, "
								"none of them a feature in inputs.defs", ESMM_MAX_LABELS);
	List	   *elems = cfg_array(n, what);
	ListCell   *lc;

	if (list_length(elems) == 0 || list_length(elems) > ESMM_MAX_LABELS)
		cfg_bad(n, "%s", what);
	foreach(lc, elems)
	{
		char	   *name = cfg_name(lfirst(lc), what);

		if (cfg_find_request(out, name) >= 0 ||
			cfg_in_names(out->mmoe_labels, out->n_labels, name))
			cfg_bad(lfirst(lc), "%s", what);
		strlcpy(out->mmoe_labels[out->n_labels++], name, ESMM_NAME_LEN);
	}
}

/* The labels first: without inputs.defs, the other groups must not list
 * them. */
static void
mmoe_parse_groups(cfg_ctx *c, esmm_config *out, const cfg_section *g)
{
	cfg_node   *n;

	if ((n = cfg_get(g, "labels")) != NULL)
		mmoe_parse_labels(out, n);
	if ((n = cfg_get(g, "wide")) != NULL)
	{
		out->n_group_wide = cfg_parse_group(out, n, true, out->group_wide);
		out->group_wide_given = true;
	}
	if ((n = cfg_get(g, "mmoe")) != NULL)
	{
		out->n_group_mmoe = cfg_parse_group(out, n, false, out->group_mmoe);
		out->group_mmoe_given = true;
	}
}

/* Without inputs.groups.labels: the inputs.defs entries marked is_label. */
static void
mmoe_labels_from_defs(cfg_ctx *c, esmm_config *out)
{
	cfg_node   *in = cfg_get(&c->inputs, "inputs");
	ListCell   *lc;

	if (out->n_labels > 0)
		return;
	foreach(lc, c->defs)
	{
		const cfg_def *def = lfirst(lc);

		if (def->request >= 0)
			continue;
		if (out->n_labels == ESMM_MAX_LABELS)
			cfg_bad(c->defs_node, "an array of at most %d label entries (\"is_label\": true) "
					"when inputs.groups.labels is not given", ESMM_MAX_LABELS);
		strlcpy(out->mmoe_labels[out->n_labels++], def->name, ESMM_NAME_LEN);
	}
	if (out->n_labels == 0)
		cfg_missing(psprintf("%s.groups.labels", in ? in->path : "inputs"),
					"MMoE needs its label columns in task order: list them in inputs.groups.labels, "
					"or mark them \"is_label\": true in inputs.defs.");
}

/* task_structs: one tower per label, in label order. */
static void
mmoe_parse_task_structs(const cfg_section *s, esmm_config *out)
{
	char	   *what = psprintf("an array of arrays of integers from 1 to %d, each at most %d layers "
								"counting the width-1 output layer appended when the last width is not 1",
								CFG_MAX_UNITS, ESMM_MAX_LAYERS);
	cfg_node   *n = cfg_require(s, "task_structs",
								"task_structs gives the layer widths of each task's tower, "
								"from the bottom up: one array per label, in label order.");
	List	   *towers = cfg_array(n, what);
	ListCell   *lc;

	foreach(lc, towers)
		if (!cfg_is(lfirst(lc), false))
			cfg_bad(lfirst(lc), "%s", what);
	if (list_length(towers) != (int) out->n_labels)
		cfg_bad(n, "an array of %u %s of layer widths, one per label (%s), not %d",
				out->n_labels, out->n_labels == 1 ? "array" : "arrays",
				cfg_join(esmm_config_labels(out)), list_length(towers));
	foreach(lc, towers)
	{
		uint32		units[ESMM_MAX_LAYERS];
		int			nl = cfg_parse_units(lfirst(lc), true, what, units);

		cfg_parse_tower(s, &mmoe_task_keys, units, nl,
						&out->mmoe.task[foreach_current_index(lc)]);
	}
}

/* wide_type: FM or LR, in any case; any other name: the raw wide features. */
static void
mmoe_parse_wide_type(const cfg_section *s, esmm_config *out)
{
	cfg_node   *n = cfg_get(s, "wide_type");
	const char *name = n ? cfg_name(n, "a string of 1 to 63 bytes: FM, LR, or any other name "
									"for the raw wide features") : "FM";

	out->mmoe.wide_type = MMOE_WIDE_RAW;
	if (pg_strcasecmp(name, "FM") == 0)
	{
		out->mmoe.wide_type = MMOE_WIDE_FM;
		name = "FM";
	}
	else if (pg_strcasecmp(name, "LR") == 0)
	{
		out->mmoe.wide_type = MMOE_WIDE_LR;
		name = "LR";
	}
	strlcpy(out->wide_type_name, name, ESMM_NAME_LEN);
}

static void
mmoe_parse_model(cfg_ctx *c, esmm_config *out)
{
	const cfg_section *s = &c->model;
	mmoe_arch  *a = &out->mmoe;
	uint32		units[ESMM_MAX_LAYERS];
	cfg_node   *n;
	int			nl;

	mmoe_labels_from_defs(c, out);
	a->n_tasks = out->n_labels;
	strlcpy(out->name, cfg_get_name(s, "name", "mmoe v2"), ESMM_NAME_LEN);

	mmoe_parse_task_structs(s, out);
	n = cfg_get(s, "task_output_act");
	a->task_output_sigmoid = n != NULL && n->v.type != jbvNull &&
		cfg_enum(n, output_act_names, "sigmoid, or none or null for the raw output") == 1;

	n = cfg_require(s, "num_experts", "num_experts is the number of experts, from 1 to 64.");
	a->n_experts = cfg_int(n, 1, MMOE_MAX_EXPERTS, NULL);
	n = cfg_require(s, "expert_layers",
					"expert_layers gives the layer widths of every expert, from the bottom up.");
	nl = cfg_parse_units(n, false, psprintf("a non-empty array of integers from 1 to %d, at most %d layers",
											CFG_MAX_UNITS, ESMM_MAX_LAYERS), units);
	cfg_parse_tower(s, &mmoe_expert_keys, units, nl, &a->expert);

	a->gate_use_bias = cfg_get_bool(s, "gate_use_bias", true);
	a->gate_l1 = cfg_get_rate(s, "gate_l1_reg");
	a->gate_l2 = cfg_get_rate(s, "gate_l2_reg");
	a->share_gates = cfg_get_bool(s, "share_gates", false);

	a->use_wide = cfg_get_bool(s, "use_wide", true);
	mmoe_parse_wide_type(s, out);
	a->wide_width = cfg_get_int(s, "wide_width", 1, MMOE_MAX_WIDE_WIDTH, 8);
	a->wide_l1 = cfg_get_rate(s, "wide_l1_reg");
	a->wide_l2 = cfg_get_rate(s, "wide_l2_reg");
	a->feature_cross = cfg_get_int(s, "feature_cross", 0, 5, 0);
	n = cfg_get(s, "output_cross");
	a->output_cross = n != NULL &&
		cfg_int(n, PG_INT64_MIN, PG_INT64_MAX,
				"an integer: 0 adds the wide output to each task's logit, any other value does not") != 0;
	if (a->use_wide && out->n_group_wide == 0)
	{
		a->use_wide = false;
		c->wide_dropped = true;
	}
	c->wide_raw_notice = a->use_wide && a->wide_type == MMOE_WIDE_RAW &&
		pg_strcasecmp(out->wide_type_name, "raw") != 0;
	/* feature_cross 0 reads the wide part only through output_cross 0,
	 * which only an FM or LR output can take */
	c->wide_unused = a->use_wide && a->feature_cross == 0 &&
		(a->output_cross != 0 || a->wide_type == MMOE_WIDE_RAW);

	a->l2_embedding = cfg_get_rate(s, "l2_reg_embedding");
	cfg_parse_weights(cfg_get(s, "loss_weights"), out->n_labels,
					  psprintf("an array of %u non-negative numbers, one per label (%s), not all 0",
							   out->n_labels, cfg_join(esmm_config_labels(out))),
					  a->loss_weights);
}

/*
 * A per-task choice among names[] (task_types, losses): one name for every
 * task, an array of one per task, or an object by label whose missing
 * labels get -1, as every task does when n is NULL.  nodes[t] is the value
 * that decided task t, for messages.
 */
static void
mmoe_per_task(cfg_ctx *c, const esmm_config *out, const cfg_node *n, const char *section,
			  const char *const *names, int *vals, cfg_node **nodes)
{
	const char **labels = esmm_config_labels(out);
	char	   *what = psprintf("%s or %s, given once for every task, as an array of %u, "
								"one per label (%s), or as an object by label",
								names[0], names[1], out->n_labels, cfg_join(labels));
	List	   *elems;
	ListCell   *lc;
	uint32		t;

	for (t = 0; t < out->n_labels; t++)
	{
		vals[t] = -1;
		nodes[t] = NULL;
	}
	if (n == NULL)
		return;
	if (n->v.type == jbvString)
	{
		int			x = cfg_enum(n, names, what);

		for (t = 0; t < out->n_labels; t++)
		{
			vals[t] = x;
			nodes[t] = (cfg_node *) n;
		}
		return;
	}
	if (cfg_is(n, true))
	{
		cfg_section s;

		cfg_open(c, &s, n, section, labels, NULL);
		for (t = 0; t < out->n_labels; t++)
			if ((nodes[t] = cfg_get(&s, labels[t])) != NULL)
			{
				nodes[t]->key = n->key;
				vals[t] = cfg_enum(nodes[t], names, what);
			}
		return;
	}
	elems = cfg_array(n, what);
	if (list_length(elems) != (int) out->n_labels)
		cfg_bad(n, "%s", what);
	foreach(lc, elems)
	{
		t = foreach_current_index(lc);
		nodes[t] = lfirst(lc);
		vals[t] = cfg_enum(nodes[t], names, what);
	}
}

/* Each task's type, from task_types and losses, which must agree. */
static void
mmoe_parse_losses(cfg_ctx *c, esmm_config *out)
{
	cfg_node   *n = cfg_get(&c->model, "task_types");
	int			types[ESMM_MAX_LABELS];
	int			losses[ESMM_MAX_LABELS];
	cfg_node   *type_nodes[ESMM_MAX_LABELS];
	cfg_node   *loss_nodes[ESMM_MAX_LABELS];
	uint32		t;

	/* model_args may hold task_types too: given twice, the values agree */
	if (n != NULL)
		cfg_add(&c->train, n);
	mmoe_per_task(c, out, cfg_get(&c->train, "task_types"), "train_args.task_types",
				  task_type_names, types, type_nodes);
	mmoe_per_task(c, out, cfg_get(&c->train, "losses"), "train_args.losses",
				  loss_names, losses, loss_nodes);
	for (t = 0; t < out->n_labels; t++)
	{
		if (types[t] >= 0 && losses[t] >= 0 && types[t] != losses[t])
			cfg_bad(loss_nodes[t], "%s for %s, a %s task in task_types",
					loss_names[types[t]], out->mmoe_labels[t], task_type_names[types[t]]);
		out->mmoe.task_type[t] = types[t] >= 0 ? types[t]
			: losses[t] >= 0 ? losses[t] : MMOE_TASK_BINARY;
	}
}

/* ------------------------------------------------------------ the levels */

static void
cfg_read_model_input_config(cfg_ctx *c, const cfg_node *n)
{
	cfg_section s;
	cfg_node   *v;

	cfg_open(c, &s, n, "model_input_config", mic_keys,
			 "an object with keys version (2) and inputs");
	if ((v = cfg_get(&s, "version")) != NULL)
		cfg_int(v, 2, 2, "2");
	if ((v = cfg_get(&s, "inputs")) == NULL)
		cfg_missing(cfg_where(&s, "inputs"),
					"inputs describes the features: defs, groups, exclude, "
					"default_embedding_dim and default_hash_buckets.");
	cfg_add(&c->inputs, v);
}

/*
 * Sorts the keys of the top level or of job_detail into the sections: the
 * nested ones, and the flattened model_args and train_args keys.
 */
static void
cfg_read_level(cfg_ctx *c, const cfg_node *obj, int level)
{
	const char *const *model_keys = c->desc->model_keys;
	const char *const *train_keys = c->desc->train_keys;
	ListCell   *lc;

	foreach(lc, cfg_children(obj))
	{
		cfg_node   *m = lfirst(lc);
		const char *key = m->key;

		if (level == LEVEL_TOP && strcmp(key, "job_detail") == 0)
		{
			if (!cfg_is(m, true))
				cfg_bad(m, "an object");
			cfg_read_level(c, m, LEVEL_JOB_DETAIL);
		}
		else if (strcmp(key, "model_args") == 0)
			cfg_merge(c, &c->model, m, model_keys, LEVEL_NONE);
		else if (strcmp(key, "train_args") == 0)
			cfg_merge(c, &c->train, m, train_keys, LEVEL_TRAIN_ARGS);
		else if (strcmp(key, "eval_args") == 0)
			cfg_merge(c, &c->eval, m, eval_keys, LEVEL_EVAL_ARGS);
		else if (strcmp(key, "inputs") == 0)
			cfg_add(&c->inputs, m);
		else if (strcmp(key, "model_input_config") == 0)
			cfg_read_model_input_config(c, m);
		else if (cfg_take_pipeline(c, m, level))
			continue;
		else if (cfg_index(model_keys, key) >= 0)
			cfg_add(&c->model, m);
		else if (cfg_index(train_keys, key) >= 0)
			cfg_add(&c->train, m);
		else
		{
			StringInfoData accepted;
			const char *const *k;

			initStringInfo(&accepted);
			cfg_append_names(&accepted, level == LEVEL_TOP ? level_keys : level_keys + 1);
			cfg_append_names(&accepted, model_keys);
			/* MMoE's task_types is both a model_args and a train_args key */
			for (k = train_keys; *k != NULL; k++)
				if (cfg_index(model_keys, *k) < 0)
					appendStringInfo(&accepted, ", %s", *k);
			cfg_append_names(&accepted, pipeline_keys);
			cfg_unknown(m, level == LEVEL_TOP ? "the configuration" : "job_detail",
						accepted.data);
		}
	}
}

/* ------------------------------------------------------- the normalized */

static void
jb_key(JsonbParseState **st, const char *key)
{
	JsonbValue	k;

	if (key == NULL)
		return;
	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	pushJsonbValue(st, WJB_KEY, &k);
}

/* key NULL: an array element. */
static void
jb_put(JsonbParseState **st, const char *key, JsonbValue *v)
{
	jb_key(st, key);
	pushJsonbValue(st, key ? WJB_VALUE : WJB_ELEM, v);
}

static void
jb_str(JsonbParseState **st, const char *key, const char *s)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = strlen(s);
	jb_put(st, key, &v);
}

static void
jb_int(JsonbParseState **st, const char *key, int64 x)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(x);
	jb_put(st, key, &v);
}

/* The shortest decimal that reads back as the same float: 0.003, not
 * 0.0030000000260770321, whatever extra_float_digits says. */
static void
jb_real(JsonbParseState **st, const char *key, float x)
{
	char		buf[FLOAT_SHORTEST_DECIMAL_LEN];
	JsonbValue	v;

	float_to_shortest_decimal_buf(x, buf);
	v.type = jbvNumeric;
	v.val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in,
														CStringGetDatum(buf),
														ObjectIdGetDatum(InvalidOid),
														Int32GetDatum(-1)));
	jb_put(st, key, &v);
}

static void
jb_bool(JsonbParseState **st, const char *key, bool b)
{
	JsonbValue	v;

	v.type = jbvBool;
	v.val.boolean = b;
	jb_put(st, key, &v);
}

static void
jb_open(JsonbParseState **st, const char *key, bool object)
{
	jb_key(st, key);
	pushJsonbValue(st, object ? WJB_BEGIN_OBJECT : WJB_BEGIN_ARRAY, NULL);
}

static JsonbValue *
jb_close(JsonbParseState **st, bool object)
{
	return pushJsonbValue(st, object ? WJB_END_OBJECT : WJB_END_ARRAY, NULL);
}

static void
jb_names(JsonbParseState **st, const char *key, const char (*names)[ESMM_NAME_LEN], uint32 n)
{
	uint32		i;

	jb_open(st, key, false);
	for (i = 0; i < n; i++)
		jb_str(st, NULL, names[i]);
	jb_close(st, false);
}

static void
jb_units(JsonbParseState **st, const char *key, const esmm_tower_spec *t)
{
	uint32		i;

	jb_open(st, key, false);
	for (i = 0; i < t->n_layers; i++)
		jb_int(st, NULL, t->layers[i].units);
	jb_close(st, false);
}

/* The per-layer keys of tower t, one entry per layer, and its rates. */
static void
jb_tower(JsonbParseState **st, const cfg_tower_keys *k, const esmm_tower_spec *t)
{
	uint32		i;

	jb_open(st, k->act, false);
	for (i = 0; i < t->n_layers; i++)
		jb_str(st, NULL, esmm_act_names[t->layers[i].act]);
	jb_close(st, false);
	jb_bool(st, k->use_bias, t->layers[0].use_bias);
	jb_open(st, k->use_bn, false);
	for (i = 0; i < t->n_layers; i++)
		jb_bool(st, NULL, t->layers[i].use_bn);
	jb_close(st, false);
	jb_open(st, k->dropout, false);
	for (i = 0; i < t->n_layers; i++)
		jb_real(st, NULL, t->layers[i].dropout);
	jb_close(st, false);
	jb_real(st, k->l1, t->l1);
	jb_real(st, k->l2, t->l2);
}

static void
jb_reals(JsonbParseState **st, const char *key, const float *x, uint32 n)
{
	uint32		i;

	jb_open(st, key, false);
	for (i = 0; i < n; i++)
		jb_real(st, NULL, x[i]);
	jb_close(st, false);
}

static void
esmm_put_model(JsonbParseState **st, const esmm_config *out)
{
	int			t;

	jb_str(st, "name", out->name);
	for (t = 0; t < 2; t++)
	{
		cfg_tower_keys k = esmm_tower_keys(esmm_towers[t]);

		jb_units(st, esmm_key(esmm_towers[t], "units"), &out->arch.tower[t]);
		jb_tower(st, &k, &out->arch.tower[t]);
	}
	jb_real(st, "l2_reg_embedding", out->arch.l2_embedding);
	jb_str(st, "ctr_label_name", out->labels[0]);
	jb_str(st, out->arch.label_is_ctcvr ? "ctcvr_label_name" : "cvr_label_name",
		   out->labels[1]);
	jb_reals(st, "loss_weights", out->arch.loss_weights, 2);
}

static void
esmm_put_groups(JsonbParseState **st, const esmm_config *out)
{
	int			t;

	if (!out->group_given[0] && !out->group_given[1])
		return;
	jb_open(st, "groups", true);
	for (t = 0; t < 2; t++)
		if (out->group_given[t])
			jb_names(st, esmm_towers[t], out->group[t], out->n_group[t]);
	jb_close(st, true);
}

static void
esmm_put_losses(JsonbParseState **st, const esmm_config *out)
{
	jb_str(st, "losses", loss_names[out->arch.loss]);
}

/*
 * The per-layer task keys apply by layer index to every task tower: those
 * of the deepest tower show them all, and read back to the same towers.
 */
static void
mmoe_put_model(JsonbParseState **st, const esmm_config *out)
{
	const mmoe_arch *a = &out->mmoe;
	const esmm_tower_spec *deepest = &a->task[0];
	uint32		t;

	jb_str(st, "name", out->name);
	jb_open(st, "task_structs", false);
	for (t = 0; t < a->n_tasks; t++)
	{
		jb_units(st, NULL, &a->task[t]);
		if (a->task[t].n_layers > deepest->n_layers)
			deepest = &a->task[t];
	}
	jb_close(st, false);
	jb_tower(st, &mmoe_task_keys, deepest);
	jb_str(st, "task_output_act", output_act_names[a->task_output_sigmoid]);
	jb_int(st, "num_experts", a->n_experts);
	jb_units(st, "expert_layers", &a->expert);
	jb_tower(st, &mmoe_expert_keys, &a->expert);
	jb_bool(st, "gate_use_bias", a->gate_use_bias);
	jb_real(st, "gate_l1_reg", a->gate_l1);
	jb_real(st, "gate_l2_reg", a->gate_l2);
	jb_bool(st, "share_gates", a->share_gates);
	jb_bool(st, "use_wide", a->use_wide);
	jb_str(st, "wide_type", out->wide_type_name);
	jb_int(st, "wide_width", a->wide_width);
	jb_real(st, "wide_l1_reg", a->wide_l1);
	jb_real(st, "wide_l2_reg", a->wide_l2);
	jb_int(st, "feature_cross", a->feature_cross);
	jb_int(st, "output_cross", a->output_cross);
	jb_real(st, "l2_reg_embedding", a->l2_embedding);
	jb_reals(st, "loss_weights", a->loss_weights, a->n_tasks);
}

static void
mmoe_put_groups(JsonbParseState **st, const esmm_config *out)
{
	jb_open(st, "groups", true);
	if (out->group_wide_given)
		jb_names(st, "wide", out->group_wide, out->n_group_wide);
	if (out->group_mmoe_given)
		jb_names(st, "mmoe", out->group_mmoe, out->n_group_mmoe);
	jb_names(st, "labels", out->mmoe_labels, out->n_labels);
	jb_close(st, true);
}

static void
mmoe_put_losses(JsonbParseState **st, const esmm_config *out)
{
	uint32		t;

	jb_open(st, "losses", true);
	for (t = 0; t < out->n_labels; t++)
		jb_str(st, out->mmoe_labels[t], loss_names[out->mmoe.task_type[t]]);
	jb_close(st, true);
	jb_open(st, "task_types", false);
	for (t = 0; t < out->n_labels; t++)
		jb_str(st, NULL, task_type_names[out->mmoe.task_type[t]]);
	jb_close(st, false);
}

static void
cfg_put_inputs(JsonbParseState **st, const cfg_ctx *c, const esmm_config *out)
{
	ListCell   *lc;

	jb_open(st, "inputs", true);
	if (out->defs_given)
	{
		jb_open(st, "defs", false);
		foreach(lc, c->defs)
		{
			const cfg_def *def = lfirst(lc);
			const esmm_feature_request *r;

			jb_open(st, NULL, true);
			jb_str(st, "name", def->name);
			if (def->dtype[0] != '\0')
				jb_str(st, "dtype", def->dtype);
			if (def->request < 0)
				jb_bool(st, "is_label", true);
			else
			{
				r = &out->requests[def->request];
				if (r->kind != 0)
					jb_str(st, "type", kind_names[r->kind - 1]);
				if (r->vocab_size != 0)
					jb_int(st, "vocab_size", r->vocab_size);
				if (r->hash_buckets != 0)
					jb_int(st, "hash_buckets", r->hash_buckets);
				/* a feature of unknown kind keeps only what was given */
				if (r->kind == ESMM_FEAT_CATEGORICAL || r->kind == ESMM_FEAT_MULTI ||
					r->embedding_dim != 0)
					jb_int(st, "embedding_dim", r->embedding_dim ? r->embedding_dim
						   : out->default_embedding_dim);
				if (r->kind == ESMM_FEAT_NUMERIC || r->norm_given)
					jb_str(st, "normalize", norm_names[r->norm]);
				if (r->kind == ESMM_FEAT_NUMERIC || r->null_indicator)
					jb_bool(st, "null_indicator", r->null_indicator);
			}
			jb_close(st, true);
		}
		jb_close(st, false);
	}
	c->desc->put_groups(st, out);
	jb_names(st, "exclude", out->exclude, out->n_exclude);
	jb_int(st, "default_embedding_dim", out->default_embedding_dim);
	jb_int(st, "default_hash_buckets", out->default_hash_buckets);
	jb_close(st, true);
}

static void
cfg_put_metrics(JsonbParseState **st, const char *key,
				const esmm_metric_request *req, uint32 n)
{
	uint32		i;
	uint32		j;

	jb_open(st, key, true);
	for (i = 0; i < n; i++)
	{
		jb_open(st, req[i].label, false);
		for (j = 0; j < req[i].n_metrics; j++)
			jb_str(st, NULL, req[i].metrics[j]);
		jb_close(st, false);
	}
	jb_close(st, true);
}

static void
cfg_put_train(JsonbParseState **st, const cfg_ctx *c, const esmm_config *out)
{
	const esmm_optim_spec *o = &out->train.optim;
	const char *const *args = optim_args[o->kind];
	int			i;

	jb_open(st, "train_args", true);
	jb_int(st, "batch_size", out->train.batch_size);
	jb_int(st, "epochs", out->train.epochs);
	jb_open(st, "optimizer", true);
	jb_str(st, "type", optim_names[o->kind]);
	jb_open(st, "args", true);
	for (i = 0; args[i] != NULL; i++)
		jb_real(st, args[i],
				*(const float *) ((const char *) o + cfg_optim_arg_of(args[i])->offset));
	jb_close(st, true);
	jb_close(st, true);
	c->desc->put_losses(st, out);
	cfg_put_metrics(st, "metrics", out->metric_requests, out->n_metric_requests);
	if (out->early_stopping_given)
	{
		jb_open(st, "early_stopping", true);
		jb_str(st, "monitor", out->es_monitor);
		jb_str(st, "mode", out->es_mode_max ? "max" : "min");
		jb_int(st, "patience", out->es_patience);
		jb_real(st, "min_delta", out->es_min_delta);
		jb_close(st, true);
	}
	jb_open(st, "train_speed_logger", true);
	jb_int(st, "every_batches", out->train.log_every_batches);
	jb_bool(st, "with_metrics", out->train.log_with_metrics);
	jb_close(st, true);
	jb_int(st, "seed", (int64) out->train.seed);
	jb_real(st, "validation_fraction", out->validation_fraction);
	jb_bool(st, "shuffle", out->train.shuffle);
	jb_str(st, "on_bad_row", bad_row_names[out->on_bad_row_skip ? 1 : 0]);
	jb_str(st, "mode", esmm_train_mode_names[out->mode]);
	jb_int(st, "streaming_window", out->streaming_window);
	jb_bool(st, "keep_optimizer_state", out->keep_optimizer_state);
	jb_close(st, true);

	jb_open(st, "eval_args", true);
	jb_int(st, "batch_size", out->eval_batch_size);
	cfg_put_metrics(st, "metrics", out->eval_metric_requests, out->n_eval_metric_requests);
	jb_close(st, true);
}

static JsonbValue *
cfg_normalize(const cfg_ctx *c, const esmm_config *out)
{
	JsonbParseState *st = NULL;

	jb_open(&st, NULL, true);
	jb_str(&st, "name", out->name);
	cfg_put_inputs(&st, c, out);
	jb_open(&st, "model_args", true);
	c->desc->put_model(&st, out);
	jb_close(&st, true);
	cfg_put_train(&st, c, out);
	return jb_close(&st, true);
}

/* ---------------------------------------------------------- entry points */

static int
cfg_pipeline_cmp(const ListCell *a, const ListCell *b)
{
	const cfg_pipeline_key *x = lfirst(a);
	const cfg_pipeline_key *y = lfirst(b);

	if (x->level != y->level)
		return x->level - y->level;
	if (x->rank != y->rank)
		return x->rank - y->rank;
	return x->seq - y->seq;
}

/* Sent once the whole document is valid, so a failing one shows only its
 * error. */
static void
cfg_notices(cfg_ctx *c, const esmm_config *out)
{
	if (c->pipeline != NIL)
	{
		StringInfoData list;
		List	   *seen = NIL;
		ListCell   *lc;

		list_sort(c->pipeline, cfg_pipeline_cmp);
		initStringInfo(&list);
		foreach(lc, c->pipeline)
		{
			const char *key = ((cfg_pipeline_key *) lfirst(lc))->key;
			ListCell   *s;

			foreach(s, seen)
				if (strcmp(lfirst(s), key) == 0)
					break;
			if (s != NULL)
				continue;
			seen = lappend(seen, (char *) key);
			appendStringInfo(&list, "%s%s", list.len > 0 ? ", " : "", key);
		}
		ereport(NOTICE,
				(errmsg_plural("ignoring pipeline key that has no meaning in the database: %s",
							   "ignoring pipeline keys that have no meaning in the database: %s",
							   list_length(seen), list.data)));
	}
	if (c->wide_dropped)
		ereport(NOTICE,
				(errmsg("use_wide is true but inputs.groups.wide is empty: no wide part"),
				 errhint("List the wide features in inputs.groups.wide, or set use_wide to false.")));
	if (c->wide_raw_notice)
		ereport(NOTICE,
				(errmsg("wide_type \"%s\" is neither FM nor LR: the wide features enter the model as they are",
						out->wide_type_name),
				 errhint("Set wide_type to \"raw\" to say so without this notice.")));
	if (c->wide_unused)
		ereport(NOTICE,
				(errmsg("the wide part is not used: feature_cross is 0 and %s",
						out->mmoe.wide_type == MMOE_WIDE_RAW ?
						"raw wide features cannot be added to the logits" : "output_cross is not 0"),
				 errhint("Set feature_cross to 1-5, or output_cross to 0 with wide_type FM or LR, or use_wide to false.")));
	if (c->holdout_defaulted)
		ereport(NOTICE,
				(errmsg("early_stopping needs validation rows: holding out 10%% of the rows"),
				 errhint("Set validation_fraction to hold out another share.")));
}

static const cfg_model_desc esmm_desc = {
	.kind = ESMM_KIND_ESMM,
	.what = "esmm",
	.example = "{\"ctr_label_name\": \"click\", \"cvr_label_name\": \"buy\"}",
	.model_keys = esmm_model_keys,
	.train_keys = esmm_train_keys,
	.group_names = esmm_towers,
	.labels_in_inputs = false,
	.parse_model = esmm_parse_model,
	.parse_groups = esmm_parse_groups,
	.parse_losses = esmm_parse_losses,
	.put_model = esmm_put_model,
	.put_groups = esmm_put_groups,
	.put_losses = esmm_put_losses
};

static const cfg_model_desc mmoe_desc = {
	.kind = ESMM_KIND_MMOE,
	.what = "mmoe",
	.example = "{\"task_structs\": [[32], [32]], \"num_experts\": 4, \"expert_layers\": [64], "
	"\"inputs\": {\"groups\": {\"labels\": [\"click\", \"buy\"]}}}",
	.model_keys = mmoe_model_keys,
	.train_keys = mmoe_train_keys,
	.group_names = mmoe_groups,
	.labels_in_inputs = true,
	.parse_model = mmoe_parse_model,
	.parse_groups = mmoe_parse_groups,
	.parse_losses = mmoe_parse_losses,
	.put_model = mmoe_put_model,
	.put_groups = mmoe_put_groups,
	.put_losses = mmoe_put_losses
};

static void
cfg_parse(esmm_config *out, Jsonb *cfg, const cfg_model_desc *desc, bool notices)
{
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext tmp;
	cfg_ctx		c;
	cfg_node	root;
	JsonbValue *doc;

	memset(out, 0, sizeof(*out));
	if (cfg == NULL || !JB_ROOT_IS_OBJECT(cfg))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s configuration must be a json object", desc->what),
				 errhint("Pass an object such as %s.", desc->example)));

	/* paths and lists are many small pieces: drop them all at the end */
	tmp = AllocSetContextCreate(caller, "esmm configuration", ALLOCSET_SMALL_SIZES);
	MemoryContextSwitchTo(tmp);

	memset(&c, 0, sizeof(c));
	c.desc = desc;
	cfg_section_init(&c.model, "model_args");
	cfg_section_init(&c.train, "train_args");
	cfg_section_init(&c.eval, "eval_args");
	cfg_section_init(&c.inputs, "inputs");
	root.key = "";
	root.path = "";
	root.v.type = jbvBinary;
	root.v.val.binary.data = &cfg->root;
	root.v.val.binary.len = VARSIZE(cfg) - VARHDRSZ;
	cfg_read_level(&c, &root, LEVEL_TOP);

	/* labels first: inputs, metrics and monitors refer to them */
	out->kind = desc->kind;
	if (desc->labels_in_inputs)
	{
		cfg_parse_inputs(&c, out);
		desc->parse_model(&c, out);
	}
	else
	{
		desc->parse_model(&c, out);
		cfg_parse_inputs(&c, out);
	}
	cfg_parse_train(&c, out);
	cfg_parse_eval(&c, out);

	doc = cfg_normalize(&c, out);
	MemoryContextSwitchTo(caller);
	out->normalized = JsonbValueToJsonb(doc);
	/* parsed in tmp, which goes below */
	if (out->init_model != NULL)
		out->init_model = (bytea *) PG_DETOAST_DATUM_COPY(PointerGetDatum(out->init_model));
	if (notices)
		cfg_notices(&c, out);
	MemoryContextDelete(tmp);
}

void
esmm_config_parse_kind(esmm_config *out, Jsonb *cfg, esmm_model_kind kind)
{
	esmm_config_parse_notices(out, cfg, kind, true);
}

void
esmm_config_parse_notices(esmm_config *out, Jsonb *cfg, esmm_model_kind kind, bool notices)
{
	switch (kind)
	{
		case ESMM_KIND_ESMM:
			cfg_parse(out, cfg, &esmm_desc, notices);
			break;
		case ESMM_KIND_MMOE:
			cfg_parse(out, cfg, &mmoe_desc, notices);
			break;
		default:
			elog(ERROR, "no configuration parser for model kind %d", (int) kind);
	}
}

void
esmm_config_parse(esmm_config *out, Jsonb *cfg)
{
	esmm_config_parse_kind(out, cfg, ESMM_KIND_ESMM);
}

static Datum
cfg_check(FunctionCallInfo fcinfo, esmm_model_kind kind)
{
	esmm_config *cfg = palloc0(sizeof(esmm_config));

	esmm_config_parse_kind(cfg, PG_GETARG_JSONB_P(0), kind);
	PG_RETURN_JSONB_P(cfg->normalized);
}

PG_FUNCTION_INFO_V1(esmm_config_check);

/* esmm_config_check(jsonb) RETURNS jsonb: the normalized ESMM configuration. */
Datum
esmm_config_check(PG_FUNCTION_ARGS)
{
	return cfg_check(fcinfo, ESMM_KIND_ESMM);
}

PG_FUNCTION_INFO_V1(mmoe_config_check);

/* mmoe_config_check(jsonb) RETURNS jsonb: the normalized MMoE configuration. */
Datum
mmoe_config_check(PG_FUNCTION_ARGS)
{
	return cfg_check(fcinfo, ESMM_KIND_MMOE);
}
