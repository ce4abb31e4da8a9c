/*
 * esmm_config.h: the training configuration, parsed from jsonb.
 *
 * esmm_config_parse_kind() accepts the seed 000 (ESMM) and seed 002 (MMoE
 * v2) documents as they are written: job_detail / model_args / train_args /
 * eval_args may be nested or flattened, and the pipeline keys (num_workers,
 * *_data_args, load_model_from, ...) are ignored under one NOTICE that
 * lists them.  Any other unknown key, wrong type or out-of-range value is an
 * ERROR that names the key and the value, with a HINT that gives the
 * accepted values.
 *
 * The fields marked ESMM stay zero in an MMoE configuration and those
 * marked MMoE in an ESMM one; the others serve both (the metric requests
 * name labels of either kind).
 *
 * The feature schema is resolved later, against the row type, by the
 * encoder (encoder.h): the parser records what the user asked for.
 */
#ifndef ESMM_CONFIG_H
#define ESMM_CONFIG_H

#include "postgres.h"
#include "utils/jsonb.h"

#include "esmm_core.h"
#include "mmoe_model.h"

/* What inputs.defs said of one feature, before the column type is known. */
typedef struct esmm_feature_request
{
	char		name[ESMM_NAME_LEN];
	char		dtype[16];		/* as written ("int32", "string", ...) or "" */
	uint8_t		kind;			/* esmm_feature_kind, or 0: decide by column type */
	int64_t		vocab_size;		/* 0: not given */
	int64_t		hash_buckets;	/* 0: not given */
	uint32_t	embedding_dim;	/* 0: not given, use default_embedding_dim */
	uint8_t		norm;			/* esmm_norm; default standard for numeric */
	bool		norm_given;
	bool		null_indicator;
} esmm_feature_request;

typedef enum esmm_train_mode
{
	ESMM_MODE_AUTO = 0,
	ESMM_MODE_MEMORY = 1,
	ESMM_MODE_STREAMING = 2
} esmm_train_mode;

/* The configuration names of the modes, indexed by esmm_train_mode. */
extern const char *const esmm_train_mode_names[];

typedef struct esmm_metric_request
{
	char		label[ESMM_NAME_LEN];
	uint32_t	n_metrics;
	char		metrics[8][16];	/* "auc", "bacc", "logloss", "mse" */
} esmm_metric_request;

typedef struct esmm_config
{
	esmm_model_kind kind;		/* ESMM_KIND_ESMM or ESMM_KIND_MMOE */
	char		name[ESMM_NAME_LEN];	/* model_args.name, default "esmm" or
										 * "mmoe v2" */

	/* inputs: inputs.defs (or model_input_config.inputs.defs) */
	bool		defs_given;		/* false: every column but labels/exclude */
	uint32_t	n_requests;
	esmm_feature_request requests[ESMM_MAX_FEATURES];
	uint32_t	n_exclude;
	char		exclude[ESMM_MAX_FEATURES][ESMM_NAME_LEN];
	uint32_t	default_embedding_dim;	/* default 8 */
	uint32_t	default_hash_buckets;	/* default 10000 */

	/* ESMM: inputs.groups.ctr / .cvr: feature names; not given: all features */
	bool		group_given[2];
	uint32_t	n_group[2];
	char		group[2][ESMM_MAX_FEATURES][ESMM_NAME_LEN];

	/* ESMM labels: [0] ctr_label_name, [1] ctcvr_label_name or cvr_label_name */
	char		labels[2][ESMM_NAME_LEN];

	/* ESMM model_args: towers without inputs (filled by the encoder), losses */
	esmm_arch	arch;

	/*
	 * MMoE: inputs.groups.wide / .mmoe (feature names).  mmoe not given:
	 * every feature.  wide not given, or empty: no wide part (mmoe.use_wide
	 * is then false, with a NOTICE when use_wide was true).
	 */
	bool		group_wide_given;
	bool		group_mmoe_given;
	uint32_t	n_group_wide;
	uint32_t	n_group_mmoe;
	char		group_wide[ESMM_MAX_FEATURES][ESMM_NAME_LEN];
	char		group_mmoe[ESMM_MAX_FEATURES][ESMM_NAME_LEN];

	/*
	 * MMoE labels in task order: inputs.groups.labels, or else the
	 * inputs.defs entries with "is_label": true, in their order.  Other
	 * is_label entries are columns that are neither labels nor features.
	 */
	uint32_t	n_labels;
	char		mmoe_labels[ESMM_MAX_LABELS][ESMM_NAME_LEN];

	/*
	 * MMoE model_args and task types; everything but the inputs of the
	 * towers and wide part (expert.inputs, task[].inputs, wide_inputs),
	 * which the encoder fills from the group names.  task_type[t] comes from
	 * task_types or losses (bce: binary, mse: regression).  A binary task's
	 * loss is always BCE on the sigmoid of its logit; task_output_sigmoid
	 * (task_output_act) only says whether mmoe_predict returns the
	 * probability or the logit of a binary task; a regression task never has
	 * an output activation.  Experts have no width-1 output layer: every
	 * expert layer is hidden (activation, dropout and batch norm apply to
	 * all of them).  output_cross is 0 (add) or 1 (do not add).
	 */
	mmoe_arch	mmoe;
	char		wide_type_name[ESMM_NAME_LEN];	/* "FM", "LR", or as written
												 * (raw) */

	/* train_args */
	esmm_train_spec train;
	float		validation_fraction;	/* 0: none */
	bool		early_stopping_given;
	char		es_monitor[ESMM_NAME_LEN];	/* "val_loss", "is_kg_auc", ... */
	bool		es_mode_max;	/* mode "max"; "min" otherwise ("auto": by name) */
	uint32_t	es_patience;
	float		es_min_delta;
	uint32_t	n_metric_requests;	/* train_args.metrics */
	esmm_metric_request metric_requests[ESMM_MAX_LABELS];
	uint32_t	n_eval_metric_requests;	/* eval_args.metrics */
	esmm_metric_request eval_metric_requests[ESMM_MAX_LABELS];
	uint32_t	eval_batch_size;

	/* bad rows: false = ERROR (default), true = skip and count */
	bool		on_bad_row_skip;

	/*
	 * SPEC §5.  mode: buffer every row and train epochs over the buffer
	 * (memory), train windows of streaming_window rows as they arrive, one
	 * pass (streaming), or buffer until esmm.max_memory would be exceeded
	 * and stream from there (auto).  init_model: the model to warm-start
	 * from (never stored in the normalized config); keep_optimizer_state:
	 * store the optimizer state in the model, and restore it from an
	 * init_model that stored it.
	 */
	esmm_train_mode mode;
	uint32_t	streaming_window;
	bytea	   *init_model;
	bool		keep_optimizer_state;

	/* The normalized config, every default filled in, flattened into
	 * {"name", "inputs", "model_args", "train_args", "eval_args"}; stored in
	 * the model and shown by esmm_model_info. Allocated in the caller's
	 * memory context. */
	Jsonb	   *normalized;
} esmm_config;

/*
 * Parses cfg as a configuration of kind (ESMM_KIND_ESMM or ESMM_KIND_MMOE)
 * into *out (zeroed first).  ERRORs on any mistake, with
 * ERRCODE_INVALID_PARAMETER_VALUE, the key and the value in the message,
 * and the accepted values in the HINT.  Emits one NOTICE listing the
 * ignored pipeline keys, when there are any, and NOTICEs for the defaults
 * it had to choose (validation rows held out, no wide part).
 */
void		esmm_config_parse_kind(esmm_config *out, Jsonb *cfg, esmm_model_kind kind);

/* The same; notices false leaves out the NOTICEs about the config (ignored
 * pipeline keys, a defaulted hold-out, ...), for a config already parsed
 * once in this query: a parallel worker's, a combined state's. */
void		esmm_config_parse_notices(esmm_config *out, Jsonb *cfg, esmm_model_kind kind,
									  bool notices);

/* The labels in task order, NULL-terminated (palloc'd): ESMM's two (click,
 * then ctcvr or conversion), or MMoE's. */
const char **esmm_config_labels(const esmm_config *cfg);

/* name's place in esmm_config_labels(cfg), or -1. */
int			esmm_config_label_index(const esmm_config *cfg, const char *name);

/* esmm_config_parse_kind(out, cfg, ESMM_KIND_ESMM). */
void		esmm_config_parse(esmm_config *out, Jsonb *cfg);

#endif							/* ESMM_CONFIG_H */
