/*
 * esmm_core.h: shared types of the numeric core.
 *
 * The core is pure C99 (libc, libm, cblas, OpenMP) and never includes a
 * PostgreSQL header: it runs inside OpenMP threads and is unit-tested
 * without a server.  Errors are reported as an esmm_status; the core never
 * exits and never prints.
 *
 * Vocabulary used in every header of the core:
 *   B      rows in a mini-batch
 *   in,out widths of a dense layer
 *   D      width of a tower's input (concatenated features)
 * Every buffer is row-major float32 unless a comment says otherwise.
 */
#ifndef ESMM_CORE_H
#define ESMM_CORE_H

#include <stddef.h>
#include <stdint.h>

#define ESMM_MAX_FEATURES 128   /* features in one model */
#define ESMM_MAX_LAYERS 16      /* layers in one tower */
#define ESMM_MAX_LABELS 8       /* labels (tasks) in one model */
#define ESMM_NAME_LEN 64        /* column names; PostgreSQL's NAMEDATALEN */
#define ESMM_MAX_EPOCHS 100000  /* train_args.epochs, and epochs in a model */
/* Below this many rows (batch rows, or touched table rows) a loop runs on
 * the calling thread: waking the pool costs more than the work. */
#define ESMM_PARALLEL_MIN_ROWS 256
/* The same for loops over parameters, which threads share in equal
 * ranges whose lengths are multiples of ESMM_PARALLEL_ALIGN floats (64
 * bytes, a cache line). */
#define ESMM_PARALLEL_MIN_FLOATS 8192
#define ESMM_PARALLEL_ALIGN 16

#ifdef _OPENMP
#include <omp.h>
#endif

/* The calling thread's number in its team (0 outside a parallel region),
 * and how many threads a parallel region would get; 0 and 1 without
 * OpenMP. */
static inline int
esmm_thread_num(void)
{
#ifdef _OPENMP
	return omp_get_thread_num();
#else
	return 0;
#endif
}

static inline int
esmm_threads_max(void)
{
#ifdef _OPENMP
	return omp_get_max_threads();
#else
	return 1;
#endif
}

/* ---------------------------------------------------------------- status */

typedef enum esmm_code
{
	ESMM_OK = 0,
	ESMM_ERR_ARGUMENT,          /* a caller passed an impossible value */
	ESMM_ERR_NOMEM,             /* malloc failed or a size overflowed */
	ESMM_ERR_FORMAT,            /* a model bytea failed validation */
	ESMM_ERR_NUMERIC,           /* training diverged (non-finite loss) */
	ESMM_ERR_CANCELED           /* the interrupt callback asked to stop */
} esmm_code;

typedef struct esmm_status
{
	esmm_code	code;
	char		msg[256];       /* lower case, no final period */
} esmm_status;

/* Sets st (when not NULL) and returns code, so that callers can write
 * "return esmm_fail(st, ESMM_ERR_ARGUMENT, "bad %d", x);". */
esmm_code	esmm_fail(esmm_status *st, esmm_code code, const char *fmt,...)
#if defined(__GNUC__)
			__attribute__((format(printf, 3, 4)))
#endif
			;

/*
 * Asks for the cache line at p ahead of a read whose address the hardware
 * prefetcher cannot guess (a row of a shuffled batch, a touched table
 * row), ESMM_PREFETCH_AHEAD rows before the loop reaches it.
 */
#define ESMM_PREFETCH_AHEAD 8
#if defined(__GNUC__)
#define ESMM_PREFETCH(p) __builtin_prefetch(p)
#else
#define ESMM_PREFETCH(p) ((void) (p))
#endif

/*
 * Copy the few values of one row (an embedding, a bias, a gathered row)
 * in an inline loop rather than a libc call per row (memmove had 10% of
 * a training run's samples, most of it the call).  The core is built with
 * -fno-tree-loop-distribute-patterns, so that the compiler does not turn
 * these loops back into calls.
 */
static inline void
esmm_copy_floats(float *dst, const float *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = src[i];
}

static inline void
esmm_copy_ids(int32_t *dst, const int32_t *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = src[i];
}

/* splitmix64's finalizer: every bit of z reaches every bit of the
 * result.  esmm_rng_next's output and the canonical order's row keys. */
static inline uint64_t
esmm_mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/*
 * The elementwise kernels (the optimizer step, activations, embedding
 * scatter, bias sums) get an AVX2 copy beside the baseline SSE2 one, and
 * the loader picks by CPU, as pgvector does for its distances.  Without
 * "fma" in the list, no product and sum are fused, so both copies give
 * the same bits.
 */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#define ESMM_TARGET_CLONES __attribute__((target_clones("default", "avx2")))
#else
#define ESMM_TARGET_CLONES
#endif

/* Resets st to ESMM_OK with an empty message. */
void		esmm_status_clear(esmm_status *st);

/* Multiplies a*b into *out; returns 0 on size_t overflow. */
int			esmm_size_mul(size_t a, size_t b, size_t *out);

/* Adds a+b into *out; returns 0 on size_t overflow. */
int			esmm_size_add(size_t a, size_t b, size_t *out);

/* ------------------------------------------------------------ activations */

typedef enum esmm_act
{
	ESMM_ACT_NONE = 0,
	ESMM_ACT_RELU,
	ESMM_ACT_LRELU,             /* slope 0.2 below zero, as tf.nn.leaky_relu */
	ESMM_ACT_SIGMOID,
	ESMM_ACT_TANH,
	ESMM_ACT_ELU,               /* alpha 1 */
	ESMM_ACT_GELU,              /* exact, with erf */
	ESMM_ACT_SWISH,             /* x * sigmoid(x) */
	ESMM_ACT_COUNT
} esmm_act;

/* The configuration names of the activations, indexed by esmm_act. */
extern const char *const esmm_act_names[ESMM_ACT_COUNT];

/* --------------------------------------------------------------- schema */

typedef enum esmm_feature_kind
{
	ESMM_FEAT_CATEGORICAL = 1,  /* one id per row, one embedding row */
	ESMM_FEAT_NUMERIC = 2,      /* one float per row */
	ESMM_FEAT_MULTI = 3         /* an array of ids, embeddings mean-pooled */
} esmm_feature_kind;

typedef enum esmm_norm
{
	ESMM_NORM_NONE = 0,
	ESMM_NORM_STANDARD = 1,     /* (x - mean) / std */
	ESMM_NORM_LOG = 2           /* sign(x) * log1p(|x|), then standardized */
} esmm_norm;

/*
 * One input column.  Categorical and multi features own one embedding
 * table of n_buckets + 1 rows: ids 0..n_buckets-1, and row n_buckets for
 * NULL (the "missing" id).  A feature listed by both towers of ESMM shares
 * its table, which is what makes ESMM's embeddings shared.
 */
typedef struct esmm_feature
{
	char		name[ESMM_NAME_LEN];	/* column name, NUL-terminated */
	uint32_t	src_type;       /* column type as the glue saw it (a type oid) */
	uint8_t		kind;           /* esmm_feature_kind */
	uint8_t		hashed;         /* ids are hashed into n_buckets */
	uint8_t		norm;           /* esmm_norm, numeric only */
	uint8_t		null_indicator; /* numeric: add a 0/1 "was NULL" input */
	uint32_t	n_buckets;      /* vocab_size or hash_buckets */
	uint32_t	dim;            /* embedding width; numeric: ignored */
	float		mean;           /* numeric: statistics after the transform */
	float		std;
} esmm_feature;

/* Returns how many tower inputs feature f contributes: dim for tables,
 * 1 or 2 (with the NULL indicator) for numeric features. */
uint32_t	esmm_feature_width(const esmm_feature *f);

typedef struct esmm_schema
{
	uint32_t	n_features;
	esmm_feature features[ESMM_MAX_FEATURES];
	uint32_t	n_labels;
	char		labels[ESMM_MAX_LABELS][ESMM_NAME_LEN];
	uint32_t	label_src_type[ESMM_MAX_LABELS];
} esmm_schema;

/* ----------------------------------------------------------- architecture */

typedef struct esmm_layer_spec
{
	uint32_t	units;
	uint8_t		use_bias;
	uint8_t		act;            /* esmm_act; the output layer has none */
	uint8_t		use_bn;         /* batch norm after the dense, before act */
	float		dropout;        /* rate in [0,1); hidden layers only */
} esmm_layer_spec;

typedef struct esmm_tower_spec
{
	uint32_t	n_layers;       /* the last has units == 1 */
	esmm_layer_spec layers[ESMM_MAX_LAYERS];
	float		l1;             /* on kernels, as Keras' kernel_regularizer */
	float		l2;
	uint32_t	n_inputs;       /* features feeding this tower, in order */
	uint16_t	inputs[ESMM_MAX_FEATURES];	/* indices into schema.features */
} esmm_tower_spec;

typedef enum esmm_model_kind
{
	ESMM_KIND_ESMM = 1,         /* both towers */
	ESMM_KIND_ESMM_CTR = 2,     /* the CTR tower alone (seed 000's esmm-ctr) */
	ESMM_KIND_ESMM_CVR = 3,     /* the CVR tower alone (esmm-cvr) */
	ESMM_KIND_MMOE = 4
} esmm_model_kind;

typedef enum esmm_loss_kind
{
	ESMM_LOSS_BCE = 0,
	ESMM_LOSS_MSE = 1
} esmm_loss_kind;

enum
{
	ESMM_TOWER_CTR = 0,
	ESMM_TOWER_CVR = 1
};

/*
 * ESMM: schema.labels[0] is the click; schema.labels[1] is either the
 * conversion (label_is_ctcvr = 0; ctcvr = click AND conversion) or the
 * click-and-conversion label itself (label_is_ctcvr = 1).
 */
typedef struct esmm_arch
{
	esmm_tower_spec tower[2];   /* ESMM_TOWER_CTR, ESMM_TOWER_CVR */
	float		loss_weights[2];	/* ctr, ctcvr */
	float		l2_embedding;   /* on the embedding rows a batch looks up */
	uint8_t		label_is_ctcvr;
	uint8_t		loss;           /* esmm_loss_kind */
} esmm_arch;

/* MMoE v2 (seed 002); its forward pass is described in mmoe_model.h. */
typedef enum mmoe_wide_type
{
	MMOE_WIDE_FM = 0,
	MMOE_WIDE_LR = 1,
	MMOE_WIDE_RAW = 2			/* "anything else": the wide features themselves */
} mmoe_wide_type;

typedef enum mmoe_task_type
{
	MMOE_TASK_BINARY = 0,		/* BCE, sigmoid output */
	MMOE_TASK_REGRESSION = 1	/* MSE, no output activation */
} mmoe_task_type;

typedef struct mmoe_arch
{
	uint32_t	n_tasks;		/* = schema.n_labels, in label order */
	uint8_t		task_type[ESMM_MAX_LABELS];	/* mmoe_task_type */
	float		loss_weights[ESMM_MAX_LABELS];
	uint8_t		task_output_sigmoid;	/* task_output_act: sigmoid (1) or none */

	uint32_t	n_experts;
	esmm_tower_spec expert;		/* expert_layers; inputs = the mmoe group */
	uint8_t		gate_use_bias;
	float		gate_l1,
				gate_l2;
	uint8_t		share_gates;	/* one gate for every task: MoE */
	esmm_tower_spec task[ESMM_MAX_LABELS];	/* task_structs, ending in width 1 */

	uint8_t		use_wide;
	uint8_t		wide_type;		/* mmoe_wide_type */
	uint32_t	wide_width;		/* FM latent width */
	float		wide_l1,
				wide_l2;
	uint32_t	n_wide_inputs;
	uint16_t	wide_inputs[ESMM_MAX_FEATURES];	/* the wide group */
	uint8_t		feature_cross;	/* 0..5, seed 002's meanings */
	uint8_t		output_cross;	/* 0: add the wide output to each logit */

	float		l2_embedding;
} mmoe_arch;

/* Whether feature_cross puts the wide features into experts and gates. */
static inline int
mmoe_wide_into_experts(const mmoe_arch *a)
{
	return a->use_wide && a->feature_cross >= 1 && a->feature_cross <= 3;
}

/* What feature_cross puts into each task tower: 0 nothing, 1 the wide
 * features, 2 the wide model's output. */
static inline int
mmoe_wide_into_tasks(const mmoe_arch *a)
{
	if (!a->use_wide)
		return 0;
	if (a->feature_cross == 2 || a->feature_cross == 4)
		return 1;
	if (a->feature_cross == 3 || a->feature_cross == 5)
		return 2;
	return 0;
}

/* ------------------------------------------------------------- training */

typedef enum esmm_optim_kind
{
	ESMM_OPTIM_ADAM = 0,
	ESMM_OPTIM_ADAGRAD,
	ESMM_OPTIM_SGD,
	ESMM_OPTIM_RMSPROP
} esmm_optim_kind;

/* Defaults are Keras' (see esmm_optim_defaults). */
typedef struct esmm_optim_spec
{
	uint32_t	kind;           /* esmm_optim_kind */
	float		learning_rate;
	float		beta_1;         /* adam */
	float		beta_2;         /* adam */
	float		epsilon;        /* adam, adagrad, rmsprop */
	float		momentum;       /* sgd, rmsprop */
	float		rho;            /* rmsprop */
	float		initial_accumulator_value;	/* adagrad */
} esmm_optim_spec;

/* Fills o with Keras' defaults for optimizer kind. */
void		esmm_optim_defaults(esmm_optim_spec *o, esmm_optim_kind kind);

typedef struct esmm_train_spec
{
	uint32_t	batch_size;
	uint32_t	epochs;
	uint64_t	seed;
	uint8_t		shuffle;
	esmm_optim_spec optim;
	uint32_t	log_every_batches;	/* 0: by time, every few seconds */
	uint8_t		log_with_metrics;
} esmm_train_spec;

#endif							/* ESMM_CORE_H */
