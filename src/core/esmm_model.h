/*
 * esmm_model.h: the ESMM model, its flat buffers, training and scoring.
 *
 * Layout (llm.c style): every trainable tensor lives in one flat float
 * buffer `params`, addressed by offsets that index `grads`, `m1` and `m2`
 * the same way, so that the optimizer is one loop and a checkpoint is one
 * copy.  The embedding tables come first, then the dense region (kernels,
 * biases, batch-norm gamma/beta of both towers).  Batch-norm running
 * statistics are not trained and live in `state`.
 *
 * Data path: an encoded row (ids, raw floats, labels) -> esmm_batch ->
 * input assembly (embedding lookup, numeric normalization) -> towers ->
 * pctr, pcvr, pctcvr.
 */
#ifndef ESMM_MODEL_H
#define ESMM_MODEL_H

#include "esmm_core.h"
#include "esmm_data.h"

#define ESMM_NO_OFFSET ((size_t) -1)

/* Offsets of one layer's tensors; ESMM_NO_OFFSET when absent. */
typedef struct esmm_layer_ref
{
	uint32_t	in,
				out;
	size_t		W;				/* params: [in, out] */
	size_t		b;				/* params: [out] */
	size_t		gamma,
				beta;			/* params: [out] */
	size_t		run_mean,
				run_var;		/* state: [out] */
} esmm_layer_ref;

/* Per-layer activations of one tower for a batch of up to max_B rows. */
typedef struct esmm_layer_acts
{
	float	   *pre;			/* [B, out] dense output */
	float	   *xhat;			/* [B, out] batch norm, training; NULL without it */
	float	   *inv_std;		/* [out] batch norm, training; NULL without it */
	float	   *bn;				/* [B, out] batch-norm output; NULL without it */
	float	   *act;			/* [B, out] activation output */
	float	   *mask;			/* [B, out] dropout mask; NULL without dropout */
	float	   *drop;			/* [B, out] dropout output; NULL without dropout */
	const float *y;				/* what the next layer read: act or drop */
} esmm_layer_acts;

typedef struct esmm_history_epoch
{
	uint32_t	epoch;			/* 1-based */
	double		train_loss;		/* mean data loss over the epoch's batches */
	uint64_t	rows;			/* rows trained on in the epoch */
	double		seconds;
	uint32_t	n_metrics;
	char		metric_names[16][32];
	double		metric_values[16];
} esmm_history_epoch;

typedef struct esmm_report
{
	uint64_t	rows_seen;		/* rows the aggregate received */
	uint64_t	rows_trained;	/* rows in the training buffer */
	uint64_t	rows_dropped;	/* click = 0 and conversion = 1 */
	uint64_t	rows_null_label;	/* a NULL label */
	uint64_t	rows_bad;		/* skipped by on_bad_row = skip */
	double		seconds;		/* whole training */
	uint32_t	threads;
	uint32_t	n_epochs;
	esmm_history_epoch *epochs; /* [n_epochs], owned by the model */
	uint64_t	rows_validation;	/* rows held out for the metrics */
	uint32_t	best_epoch;		/* whose weights the model holds; 0: the last */
	uint8_t		stopped_early;	/* early stopping ended training */
} esmm_report;

/* What an embedding table holds. */
typedef enum esmm_table_role
{
	ESMM_TABLE_MAIN = 0,		/* a feature's embeddings, read by towers/experts */
	ESMM_TABLE_WIDE_LINEAR = 1, /* MMoE's wide part: first-order weights [rows, 1] */
	ESMM_TABLE_WIDE_FM = 2		/* MMoE's wide part: FM latent vectors [rows, k] */
} esmm_table_role;

#define ESMM_MAX_TABLES (3 * ESMM_MAX_FEATURES)

/*
 * Row blocks.  An ESMM or MMoE batch is cut into at most ESMM_MAX_BLOCKS
 * blocks of at least ESMM_BLOCK_ROWS rows (model_row_blocks); OpenMP
 * threads take whole blocks, each running the towers (or the experts,
 * gates and task towers) forward and backward with a single-threaded sgemm
 * and writing its own rows and its own dense gradients.  The cut depends on
 * the batch size only, and the blocks' gradients are summed in block
 * order, so training gives the same bits for any thread count.
 */
#define ESMM_BLOCK_ROWS 128
#define ESMM_MAX_BLOCKS 16
#define ESMM_NO_TABLE 0xFFFF

/*
 * One embedding table in params [0, n_embedding).  A numeric feature's
 * wide tables have one row, scaled by the value.  Only the rows a batch
 * looks up are regularized and updated (lazily), so l1 and l2 apply to
 * those rows, averaged over the batch.
 */
typedef struct esmm_table
{
	size_t		off;			/* params: [rows, dim] */
	size_t		row_base;		/* its first row among all tables' rows */
	uint32_t	rows;
	uint32_t	dim;
	uint16_t	feature;
	uint8_t		role;			/* esmm_table_role */
	uint8_t		active;			/* some input reads it */
	float		l1,
				l2;
} esmm_table;

struct mmoe_parts;

typedef struct esmm_model
{
	esmm_model_kind kind;
	esmm_schema schema;
	esmm_arch	arch;
	uint8_t		has_tower[2];

	/* the normalized config as JSON text, opaque to the core */
	char	   *config_json;
	size_t		config_len;

	esmm_report report;

	/* input slots: where feature f's value sits in an esmm_batch */
	uint32_t	n_ids,
				n_nums,
				n_multi;
	uint32_t	slot[ESMM_MAX_FEATURES];
	uint32_t	tower_in[2];	/* D of each tower */

	/* MMoE (kind ESMM_KIND_MMOE): the architecture, and its layout and
	 * workspace (mmoe_model.c); arch and has_tower stay zero */
	mmoe_arch	mmoe;
	struct mmoe_parts *mm;

	/* parameter layout */
	size_t		n_params;
	size_t		n_embedding;	/* params [0, n_embedding) are tables */
	uint32_t	n_tables;
	esmm_table	table[ESMM_MAX_TABLES];
	uint16_t	feat_table[ESMM_MAX_FEATURES];	/* feature f's own table, or ESMM_NO_TABLE */
	size_t		emb_off[ESMM_MAX_FEATURES];	/* its offset, or ESMM_NO_OFFSET */
	esmm_layer_ref layer[2][ESMM_MAX_LAYERS];
	size_t		n_state;

	float	   *params;			/* [n_params] */
	float	   *state;			/* [n_state] */

	/* training state, NULL until esmm_model_train_begin */
	esmm_optim_spec optim;
	uint64_t	step;			/* optimizer steps taken, for Adam */
	float	   *grads;			/* [n_params] */
	float	   *m1;				/* [n_params] first moment / accumulator */
	float	   *m2;				/* [n_params] second moment / momentum */
	uint32_t   *stamp;			/* [embedding rows] last step a row was touched */
	size_t		n_rows_total;	/* rows of all tables */
	uint32_t	n_touched;
	uint16_t   *touched_table;	/* [touched_cap] */
	uint32_t   *touched_row;	/* [touched_cap] */
	size_t		touched_cap;
	uint64_t	dropout_rng;
	uint32_t   *perm;			/* [perm_len] the epoch's row order */
	size_t		perm_len;
	void	   *eval_mem;		/* an evaluation's buffers, while it runs */
	float	   *best_params;	/* [n_params] the best epoch's, with early stopping */
	float	   *best_state;		/* [n_state] */

	/* workspace for batches of up to max_B rows */
	int			max_B;
	float	   *work;			/* one allocation, carved below */
	float	   *input[2];		/* [B, D] tower input; one buffer when
								 * shared_input */
	float	   *d_input[2];		/* [B, D] its gradient */
	int			shared_input;	/* both towers read the same features */
	float	   *block_grads;	/* [block_cap, n_params - n_embedding]
								 * each row block's dense gradients */
	int			block_cap;		/* row blocks block_grads holds: those of
								 * a batch of the training batch size */
	float	   *wt;				/* [n_params - n_embedding] the towers'
								 * kernels transposed, at their offsets less
								 * n_embedding: each training batch writes
								 * them for its backward */
	float	   *scratch[3];		/* [B, max(D, widths)] backward buffers */
	int32_t    *col_ids;		/* [n_ids, B] the id columns, contiguous */
	float	   *y_task[2];		/* [B] labels, contiguous */
	float	   *dp;				/* [B] MSE: gradient on a probability */
	esmm_layer_acts acts[2][ESMM_MAX_LAYERS];
	float	   *logit[2];		/* [B] */
	float	   *d_logit[2];		/* [B] */
	float	   *prob[3];		/* [B] pctr, pcvr, pctcvr */
	/* a gathered training batch */
	int32_t    *batch_ids;		/* [B, n_ids] */
	float	   *batch_nums;		/* [B, n_nums] */
	float	   *batch_labels;	/* [B, n_labels] */
	uint32_t   *batch_multi_off;	/* [n_multi, B+1] */
	int32_t    *batch_multi_ids;	/* [batch_multi_cap] */
	size_t		batch_multi_cap;
} esmm_model;

/*
 * Creates a model for schema and arch: computes the layout and allocates
 * params and state (zeroed).  kind is ESMM_KIND_ESMM, _CTR or _CVR; the
 * partial kinds have one tower.  Validates every count and width.
 */
esmm_code	esmm_model_create(esmm_model **out, const esmm_schema *schema,
							  const esmm_arch *arch, esmm_model_kind kind,
							  esmm_status *st);

/* Validates schema and arch like esmm_model_create and counts the
 * parameters, and, when bytes is not NULL, the bytes
 * esmm_model_memory(m, batch_size, what) would give, without allocating
 * them: lets a caller refuse a model too large for its memory budget
 * before asking for the memory. */
esmm_code	esmm_model_plan(const esmm_schema *schema, const esmm_arch *arch,
							esmm_model_kind kind, int batch_size, unsigned what,
							size_t *n_params, size_t *bytes, esmm_status *st);

/* What esmm_model_memory counts beyond parameters, state and workspace */
#define ESMM_MEMORY_TRAIN 1u	/* training: gradients, two optimizer moments,
								 * the embedding rows' step stamps, the row
								 * blocks' dense gradients, the touched rows */
#define ESMM_MEMORY_BEST 2u		/* early stopping's copy of the best weights */

/*
 * The bytes m holds to score (what 0) or train batches of batch_size
 * rows: the model itself, its parameters and state, the workspace, and
 * what asks for.  The touched-row lists are counted at their largest for
 * rows without array ids; each array id can add an entry or three.
 * Buffers with a slot per training row (the epoch's permutation) are the
 * caller's to count.  SIZE_MAX when the sum overflows.
 */
size_t		esmm_model_memory(const esmm_model *m, int batch_size, unsigned what);

/*
 * The sub-model of one tower (seed 000's esmm-ctr and esmm-cvr): kind
 * ESMM_KIND_ESMM_CTR or _CVR, with only that tower, the features it reads
 * (their tables copied) and the config and report of m.  m must be a full
 * ESMM model.  The sub-model scores exactly as m's tower does.
 */
esmm_code	esmm_model_export(esmm_model **out, const esmm_model *m,
							  esmm_model_kind kind, esmm_status *st);

/* Whether every batch-norm running variance is >= 0 (a decoded model's
 * statistics must be, or inference would take a square root of < 0). */
int			esmm_model_variances_valid(const esmm_model *m);

/* Frees the model and everything it owns.  NULL is allowed. */
void		esmm_model_free(esmm_model *m);

/* How many models this process has created and not freed: a leak check
 * for a caller that can be interrupted (a cancelled query must free its
 * models).  Models are created and freed on one thread, so it is a plain
 * counter. */
long		esmm_model_live(void);

/* Copies the config JSON text into the model. */
esmm_code	esmm_model_set_config(esmm_model *m, const char *json, size_t len,
								  esmm_status *st);

/*
 * Seeded, deterministic initialization.  Each tensor draws from its own
 * stream (seed mixed with the tower, layer and tensor), so the two towers
 * never start from identical weights.  Kernels: Glorot uniform; biases
 * and beta: 0; gamma: 1; running variance: 1; tables: uniform(-0.05,0.05).
 */
void		esmm_model_init(esmm_model *m, uint64_t seed);

/* Allocates the workspace for batches of up to max_B rows (scoring). */
esmm_code	esmm_model_workspace(esmm_model *m, int max_B, esmm_status *st);

/* The bytes esmm_model_workspace(m, max_B) would allocate, without
 * allocating: a decoded model's widths come from untrusted bytes, so a
 * caller checks this against its memory budget first.  Linear in max_B. */
size_t		esmm_model_workspace_bytes(const esmm_model *m, int max_B);

/* Allocates gradients, optimizer moments and a workspace of batch_size;
 * resets the optimizer step. */
esmm_code	esmm_model_train_begin(esmm_model *m, const esmm_optim_spec *optim,
								   int batch_size, uint64_t seed,
								   esmm_status *st);

/*
 * One training step's maths without the update: forward in training mode
 * (batch norm on batch statistics, dropout), loss, and backward into
 * grads, including the L1/L2 terms.  Returns the whole objective
 * (weighted data loss + regularization) averaged over the batch, and the
 * data loss alone in *data_loss when not NULL; NaN when the model cannot
 * take the batch (no training state, an empty batch, or more rows than
 * esmm_model_train_begin's batch size made room for).
 */
double		esmm_model_forward_backward(esmm_model *m, const esmm_batch *batch,
										double *data_loss);

/* Applies the optimizer to the dense region and to the embedding rows the
 * last forward_backward touched, then clears those gradients. */
void		esmm_model_step(esmm_model *m);

/*
 * Inference: pctr, pcvr and pctcvr for batch->B rows (B <= max_B of the
 * workspace).  A missing tower's outputs are NaN.  Each output is [B];
 * any may be NULL.
 */
void		esmm_model_predict(esmm_model *m, const esmm_batch *batch,
							   float *pctr, float *pcvr, float *pctcvr);

/* Applies feature f's normalization to a raw value; NaN (NULL) gives 0. */
float		esmm_feature_normalize(const esmm_feature *f, float raw);

/*
 * Computes the normalization statistics of every numeric feature over the
 * rows of ds (NULLs excluded), into schema->features[].mean/std.
 */
void		esmm_schema_fit_stats(esmm_schema *schema, const esmm_dataset *ds);

/* The input slots of a schema: how many id, float and multi columns an
 * encoded row has; slot[f] receives feature f's column among its kind. */
void		esmm_schema_slots(const esmm_schema *schema, uint32_t *n_ids,
							  uint32_t *n_nums, uint32_t *n_multi,
							  uint32_t slot[ESMM_MAX_FEATURES]);

/* ---------------------------------------------------------- evaluation */

typedef enum esmm_metric_kind
{
	ESMM_METRIC_AUC = 0,
	ESMM_METRIC_BACC,			/* accuracy of score > 0.5, Keras' binary accuracy */
	ESMM_METRIC_LOGLOSS,		/* scores clipped to [1e-7, 1 - 1e-7] */
	ESMM_METRIC_MSE,
	ESMM_METRIC_COUNT
} esmm_metric_kind;

/* The configuration names of the metrics, indexed by esmm_metric_kind. */
extern const char *const esmm_metric_names[ESMM_METRIC_COUNT];

#define ESMM_MAX_EVAL_METRICS 15	/* plus val_loss: 16 per epoch */

/* Monitors that are not one of the requested metrics. */
#define ESMM_MONITOR_NONE (-1)
#define ESMM_MONITOR_VAL_LOSS (-2)	/* the objective on the validation rows */
#define ESMM_MONITOR_LOSS (-3)		/* the training loss of the epoch */

/*
 * What to compute after each epoch, and when to stop.  ESMM scores each
 * label with its own probability: the click with pctr; a ctcvr label with
 * pctcvr; a conversion label with pcvr on the clicked rows, as the paper
 * evaluates CVR.  Metrics are named "<label>_<metric>", as the seeds'
 * monitors ("is_kg_auc") are.
 */
typedef struct esmm_eval_spec
{
	uint32_t	n_metrics;
	struct
	{
		uint8_t		label;		/* 0: the click, 1: the second label */
		uint8_t		metric;		/* esmm_metric_kind */
		char		name[32];	/* "<label>_<metric>" */
	}			metrics[ESMM_MAX_EVAL_METRICS];
	int			monitor;		/* index into metrics, or ESMM_MONITOR_* */
	uint8_t		early_stopping;
	uint8_t		mode_max;		/* larger is better */
	uint32_t	patience;		/* epochs without improvement before stopping */
	float		min_delta;		/* the least change that counts as improvement */
} esmm_eval_spec;

/* The bytes esmm_model_evaluate holds per evaluated row of a model of
 * kind with n_labels labels: its scores and labels, and the AUC's
 * scratch. */
size_t		esmm_eval_row_bytes(esmm_model_kind kind, uint32_t n_labels);

/* ------------------------------------------------------------- trainer */

typedef struct esmm_progress
{
	int			evaluating;		/* 1 between evaluation batches: only batch,
								 * batches and rows_done are set */
	uint32_t	epoch;			/* 1-based */
	uint64_t	batch;			/* 1-based, within the epoch */
	uint64_t	batches;		/* in the epoch */
	uint64_t	rows_done;		/* in the epoch */
	double		running_loss;	/* mean data loss so far in the epoch */
	double		seconds;		/* since the epoch began */
	int			end_of_epoch;	/* 1 on the call after the last batch */
	const esmm_history_epoch *history;	/* with end_of_epoch: the epoch's entry */
	int			stopping;		/* with end_of_epoch: early stopping ends here */
} esmm_progress;

/* Called on the calling thread between batches; a nonzero return stops
 * training with ESMM_ERR_CANCELED.  It may also not return (longjmp):
 * the memory a training or an evaluation holds belongs to the model. */
typedef int (*esmm_progress_fn) (void *arg, const esmm_progress *p);

/*
 * Scores every row of ds and computes the requested metrics into
 * values[n_metrics] (NaN when undefined, e.g. an AUC over one class) and
 * the ESMM objective's data loss into *loss.  Uses the model's workspace.
 * Calls progress (when not NULL) after each batch, with evaluating set; a
 * nonzero return stops with ESMM_ERR_CANCELED.
 */
esmm_code	esmm_model_evaluate(esmm_model *m, const esmm_dataset *ds,
								const esmm_eval_spec *ev, double *values,
								double *loss, esmm_progress_fn progress,
								void *progress_arg, esmm_status *st);

/*
 * Trains m on every row of ds for ts->epochs epochs of mini-batches,
 * shuffled each epoch from ts->seed (a permutation of stored rows, so the
 * buffer itself is never written).  Appends one history entry per epoch.
 * esmm_model_train_begin must have been called.
 */
esmm_code	esmm_model_train(esmm_model *m, const esmm_dataset *ds,
							 const esmm_train_spec *ts, esmm_progress_fn progress,
							 void *progress_arg, esmm_status *st);

/*
 * esmm_model_train with a validation set: after each epoch, evaluates ev
 * on val (when it has rows; on the training rows otherwise) and records
 * val_loss and the metrics in the epoch's history.  With early stopping,
 * stops after ev->patience epochs without an improvement of the monitor
 * by more than min_delta, and leaves the best epoch's weights in the
 * model (report.best_epoch).  val and ev may be NULL.
 */
esmm_code	esmm_model_fit(esmm_model *m, const esmm_dataset *train,
						   const esmm_dataset *val, const esmm_train_spec *ts,
						   const esmm_eval_spec *ev, esmm_progress_fn progress,
						   void *progress_arg, esmm_status *st);

/* Appends a zeroed entry to m's history, numbered after the last one;
 * NULL when out of memory. */
esmm_history_epoch *esmm_model_history_append(esmm_model *m);

/* Adds metric name = value to history entry h (at most 16; names cut to
 * 31 bytes). */
void		esmm_history_add_metric(esmm_history_epoch *h, const char *name, double value);

/* Early stopping's test: whether monitor value v improves on best (NaN:
 * none yet) by more than min_delta, larger being better with mode_max. */
int			esmm_monitor_improves(int mode_max, float min_delta, double best, double v);

/* ------------------------------------------- warm start and averaging */

/*
 * Whether a model trained as `earlier` can continue as `m`: the same kind,
 * features (names, kinds, buckets, widths), labels and layer shapes.
 * Hyperparameters that do not shape a tensor (dropout, L1/L2, the
 * optimizer, the learning rate) may differ.  On a mismatch, returns
 * ESMM_ERR_ARGUMENT with the first difference in st->msg.
 */
esmm_code	esmm_model_compatible(const esmm_model *m, const esmm_model *earlier,
								  esmm_status *st);

/*
 * Warm start (SPEC §5): copies earlier's weights, batch-norm statistics,
 * normalization statistics and history into m.  With with_optimizer, and
 * when earlier holds an optimizer state of the same optimizer kind and m's
 * training has begun (esmm_model_train_begin), its moments and step count
 * too, and *optimizer_restored is set to 1 (else 0).
 */
esmm_code	esmm_model_warm_start(esmm_model *m, const esmm_model *earlier,
								  int with_optimizer, int *optimizer_restored,
								  esmm_status *st);

/*
 * Model averaging, as MADlib does across Greenplum segments: m becomes
 * (w_m * m + w_other * other) / (w_m + w_other) in its weights, batch-norm
 * statistics, normalization statistics (pooled mean and variance) and,
 * when both hold them, optimizer moments and step count.  The weights are
 * the rows each model trained on.  The models must be compatible.
 */
esmm_code	esmm_model_average(esmm_model *m, double w_m, const esmm_model *other,
							   double w_other, esmm_status *st);

#endif							/* ESMM_MODEL_H */
