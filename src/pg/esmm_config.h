/*
 * esmm_config.h: the training configuration, parsed from jsonb.
 *
 * esmm_config_parse() accepts the seed 000 and seed 002 documents as they
 * are written: job_detail / model_args / train_args / eval_args may be
 * nested or flattened, and the pipeline keys (num_workers, *_data_args,
 * load_model_from, ...) are ignored under one NOTICE that lists them.  Any
 * other unknown key, wrong type or out-of-range value is an ERROR that
 * names the key and the value, with a HINT that gives the accepted values.
 *
 * The feature schema is resolved later, against the row type, by the
 * encoder (encoder.h): the parser records what the user asked for.
 */
#ifndef ESMM_CONFIG_H
#define ESMM_CONFIG_H

#include "postgres.h"
#include "utils/jsonb.h"

#include "esmm_core.h"

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

typedef struct esmm_metric_request
{
	char		label[ESMM_NAME_LEN];
	uint32_t	n_metrics;
	char		metrics[8][16];	/* "auc", "bacc", "logloss", "mse" */
} esmm_metric_request;

typedef struct esmm_config
{
	esmm_model_kind kind;		/* ESMM_KIND_ESMM for esmm_train */
	char		name[ESMM_NAME_LEN];	/* model_args.name, default "esmm" */

	/* inputs: inputs.defs (or model_input_config.inputs.defs) */
	bool		defs_given;		/* false: every column but labels/exclude */
	uint32_t	n_requests;
	esmm_feature_request requests[ESMM_MAX_FEATURES];
	uint32_t	n_exclude;
	char		exclude[ESMM_MAX_FEATURES][ESMM_NAME_LEN];
	uint32_t	default_embedding_dim;	/* default 8 */
	uint32_t	default_hash_buckets;	/* default 10000 */

	/* inputs.groups.ctr / .cvr: feature names; not given: all features */
	bool		group_given[2];
	uint32_t	n_group[2];
	char		group[2][ESMM_MAX_FEATURES][ESMM_NAME_LEN];

	/* labels: [0] ctr_label_name, [1] ctcvr_label_name or cvr_label_name */
	char		labels[2][ESMM_NAME_LEN];

	/* model_args: towers without inputs (filled by the encoder), losses */
	esmm_arch	arch;

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

	/* The normalized config, every default filled in, flattened into
	 * {"name", "inputs", "model_args", "train_args", "eval_args"}; stored in
	 * the model and shown by esmm_model_info. Allocated in the caller's
	 * memory context. */
	Jsonb	   *normalized;
} esmm_config;

/*
 * Parses cfg into *out (zeroed first).  ERRORs on any mistake, with
 * ERRCODE_INVALID_PARAMETER_VALUE, the key and the value in the message,
 * and the accepted values in the HINT.  Emits one NOTICE listing the
 * ignored pipeline keys, when there are any.
 */
void		esmm_config_parse(esmm_config *out, Jsonb *cfg);

#endif							/* ESMM_CONFIG_H */
