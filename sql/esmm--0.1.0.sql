-- esmm 0.1.0: ESMM trained, stored, scored and evaluated in SQL.
\echo Use "CREATE EXTENSION esmm" to load this file. \quit

-- ------------------------------------------------------------ training

-- Shared by esmm_train, mmoe_train and esmm_evaluate: parallel workers
-- encode their slices (and in streaming mode train on them); the leader
-- concatenates the rows and averages the models (SPEC §5).
CREATE FUNCTION esmm_train_combine(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE;
CREATE FUNCTION esmm_train_serialize(internal) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
CREATE FUNCTION esmm_train_deserialize(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION esmm_train_combine(internal, internal) IS
	'esmm_train, mmoe_train and esmm_evaluate combine function: concatenates in-memory states'' rows; averages streaming states'' models (weights, batch-norm and normalization statistics, optimizer moments) weighted by the rows each trained on';
COMMENT ON FUNCTION esmm_train_serialize(internal) IS
	'esmm_train, mmoe_train and esmm_evaluate serialization: a parallel worker''s rows, or its streaming model with the optimizer state, as one bytea';
COMMENT ON FUNCTION esmm_train_deserialize(bytea, internal) IS
	'esmm_train, mmoe_train and esmm_evaluate deserialization: the bytea of esmm_train_serialize, read in place by the combine function';

CREATE FUNCTION esmm_train_sfunc(internal, record, jsonb) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE;
CREATE FUNCTION esmm_train_final(internal) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE;

CREATE AGGREGATE esmm_train(record, jsonb) (
	SFUNC = esmm_train_sfunc,
	STYPE = internal,
	FINALFUNC = esmm_train_final,
	FINALFUNC_MODIFY = READ_WRITE,
	COMBINEFUNC = esmm_train_combine,
	SERIALFUNC = esmm_train_serialize,
	DESERIALFUNC = esmm_train_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE esmm_train(record, jsonb) IS
	'trains an ESMM model (CTR and CVR towers over shared embeddings) on whole rows; the jsonb config names the columns; returns the model as bytea';
COMMENT ON FUNCTION esmm_train_sfunc(internal, record, jsonb) IS
	'esmm_train transition: parses the config on the first row and encodes each row into the training buffer';
COMMENT ON FUNCTION esmm_train_final(internal) IS
	'esmm_train final function: trains on the buffered rows and encodes the model';

CREATE FUNCTION mmoe_train_sfunc(internal, record, jsonb) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE;
CREATE FUNCTION mmoe_train_final(internal) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE;

CREATE AGGREGATE mmoe_train(record, jsonb) (
	SFUNC = mmoe_train_sfunc,
	STYPE = internal,
	FINALFUNC = mmoe_train_final,
	FINALFUNC_MODIFY = READ_WRITE,
	COMBINEFUNC = esmm_train_combine,
	SERIALFUNC = esmm_train_serialize,
	DESERIALFUNC = esmm_train_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE mmoe_train(record, jsonb) IS
	'trains an MMoE v2 model (seed 002: experts, per-task softmax gates, task towers, an optional FM/LR/raw wide part) on whole rows; returns the model as bytea';
COMMENT ON FUNCTION mmoe_train_sfunc(internal, record, jsonb) IS
	'mmoe_train transition: parses the config on the first row and encodes each row into the training buffer';
COMMENT ON FUNCTION mmoe_train_final(internal) IS
	'mmoe_train final function: trains on the buffered rows and encodes the model';

CREATE FUNCTION esmm_evaluate_sfunc(internal, record, bytea) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE;
CREATE FUNCTION esmm_evaluate_final(internal) RETURNS jsonb
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE;
CREATE AGGREGATE esmm_evaluate(record, bytea) (
	SFUNC = esmm_evaluate_sfunc,
	STYPE = internal,
	FINALFUNC = esmm_evaluate_final,
	FINALFUNC_MODIFY = READ_WRITE,
	COMBINEFUNC = esmm_train_combine,
	SERIALFUNC = esmm_train_serialize,
	DESERIALFUNC = esmm_train_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE esmm_evaluate(record, bytea) IS
	'evaluates an esmm or mmoe model on whole rows with the labels its config names: {"rows", "loss" (the training objective''s data loss), and each metric of its train_args.metrics, or AUC and log loss per label when none}; parallel safe';
COMMENT ON FUNCTION esmm_evaluate_sfunc(internal, record, bytea) IS
	'esmm_evaluate transition: parses the model''s own config on the first row and encodes each row';
COMMENT ON FUNCTION esmm_evaluate_final(internal) IS
	'esmm_evaluate final function: scores the encoded rows and computes the loss and the metrics';

CREATE FUNCTION esmm_fit(source regclass, config jsonb, validation regclass DEFAULT NULL) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION esmm_fit(regclass, jsonb, regclass) IS
	'trains an ESMM model on a table of any size: one (parallel) streaming esmm_train pass per epoch, warm-started from the previous epoch with its optimizer state; validation metrics between epochs on the validation table or on the rows validation_fraction holds out; early stopping; a NOTICE per epoch';
CREATE FUNCTION mmoe_fit(source regclass, config jsonb, validation regclass DEFAULT NULL) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION mmoe_fit(regclass, jsonb, regclass) IS
	'trains an MMoE v2 model on a table of any size, as esmm_fit does';

CREATE FUNCTION esmm_config_check(config jsonb) RETURNS jsonb
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION esmm_config_check(jsonb) IS
	'validates an esmm_train configuration and returns it normalized, with every default filled in';

CREATE FUNCTION mmoe_config_check(config jsonb) RETURNS jsonb
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION mmoe_config_check(jsonb) IS
	'validates an MMoE v2 configuration (seed 002) and returns it normalized, with every default filled in';

-- ------------------------------------------------------------- scoring

CREATE FUNCTION esmm_predict(model bytea, r record,
	OUT pctr real, OUT pcvr real, OUT pctcvr real)
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION esmm_predict(bytea, record) IS
	'scores one row with an ESMM model: pCTR, pCVR and pCTCVR = pCTR * pCVR; features are found by column name';

CREATE FUNCTION mmoe_predict(model bytea, r record) RETURNS real[]
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION mmoe_predict(bytea, record) IS
	'scores one row with an MMoE model: one score per task, in label order (a probability for a binary task with task_output_act sigmoid, else the logit or the regression value)';

CREATE FUNCTION esmm_predict_table(model bytea, source regclass, key_column text, output_table text)
	RETURNS bigint
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION esmm_predict_table(bytea, regclass, text, text) IS
	'scores every row of source in batches and creates output_table(key, pctr, pcvr, pctcvr), the key of the key column''s type; returns the rows written; runs with the caller''s privileges';

CREATE FUNCTION mmoe_predict_table(model bytea, source regclass, key_column text, output_table text)
	RETURNS bigint
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION mmoe_predict_table(bytea, regclass, text, text) IS
	'scores every row of source in batches with an MMoE model and creates output_table(key, one real column per task named after its label); returns the rows written';

CREATE FUNCTION esmm_model_info(model bytea) RETURNS jsonb
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION esmm_model_info(bytea) IS
	'describes a model: kind, feature schema with normalization statistics, parameter counts, normalized config and training report';

CREATE FUNCTION esmm_export(model bytea, part text) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION esmm_export(bytea, text) IS
	'the CTR or CVR sub-model of an ESMM model (seed 000''s esmm-ctr, esmm-cvr): that tower and the embeddings of its group; scoring it needs only that group''s columns';

CREATE FUNCTION esmm_training_history(model bytea,
	OUT epoch integer, OUT metric text, OUT value double precision)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION esmm_training_history(bytea) IS
	'the per-epoch training history as rows (epoch, metric, value): train_loss, rows, rows_dropped, seconds and the validation metrics, ready to plot';

CREATE FUNCTION esmm_model_fingerprint(model bytea) RETURNS text
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION esmm_model_fingerprint(bytea) IS
	'md5 of the model with its training durations zeroed: equal for two trainings with the same seed, rows and threads';

CREATE FUNCTION esmm_live_models() RETURNS bigint
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION esmm_live_models() IS
	'how many models this backend holds in memory outside memory contexts and the model cache (decoded for scoring, or being trained); 0 between statements, also after a cancelled one';
CREATE FUNCTION esmm_model_cache(OUT entries bigint, OUT pinned bigint, OUT bytes bigint, OUT hits bigint, OUT misses bigint)
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION esmm_model_cache() IS
	'this backend''s cache of decoded models (esmm.model_cache): entries, entries in use by a running statement, bytes counted against esmm.model_cache, and hits and misses since the backend started';

-- ---------------------------------------------------------- evaluation
-- Exact metric aggregates, parallel safe: each has a combine function and
-- serializes its internal state to bytea for parallel workers.  Scores are
-- double precision (real casts implicitly); labels are boolean or integer
-- 0/1 (int2 and int4 cast to bigint); a row with a NULL anywhere is
-- skipped; a NaN argument is an error.

-- auc and gauc keep every score, one array per class, and sort in place in
-- the final function (FINALFUNC_MODIFY = READ_WRITE).
CREATE FUNCTION esmm_auc_sfunc_bool(internal, double precision, boolean) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_auc_sfunc_int(internal, double precision, bigint) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_gauc_sfunc_bool_int8(internal, double precision, boolean, bigint) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_gauc_sfunc_int_int8(internal, double precision, bigint, bigint) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_gauc_sfunc_bool_text(internal, double precision, boolean, text) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_gauc_sfunc_int_text(internal, double precision, bigint, text) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_scores_combine(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_scores_serialize(internal) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_scores_deserialize(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_auc_final(internal) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_gauc_final(internal) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION esmm_auc_sfunc_bool(internal, double precision, boolean) IS
	'auc transition for boolean labels: files the score under its class';
COMMENT ON FUNCTION esmm_auc_sfunc_int(internal, double precision, bigint) IS
	'auc transition for integer 0/1 labels: files the score under its class';
COMMENT ON FUNCTION esmm_gauc_sfunc_bool_int8(internal, double precision, boolean, bigint) IS
	'gauc transition for boolean labels and bigint groups';
COMMENT ON FUNCTION esmm_gauc_sfunc_int_int8(internal, double precision, bigint, bigint) IS
	'gauc transition for integer 0/1 labels and bigint groups';
COMMENT ON FUNCTION esmm_gauc_sfunc_bool_text(internal, double precision, boolean, text) IS
	'gauc transition for boolean labels and text groups, keyed by a 64-bit hash of the text';
COMMENT ON FUNCTION esmm_gauc_sfunc_int_text(internal, double precision, bigint, text) IS
	'gauc transition for integer 0/1 labels and text groups, keyed by a 64-bit hash of the text';
COMMENT ON FUNCTION esmm_scores_combine(internal, internal) IS
	'auc and gauc combine function: appends the scores of the second state to the first';
COMMENT ON FUNCTION esmm_scores_serialize(internal) IS
	'auc and gauc serialization: the scores (and group keys) as one bytea, from a parallel worker to its leader';
COMMENT ON FUNCTION esmm_scores_deserialize(bytea, internal) IS
	'auc and gauc deserialization: the bytea of esmm_scores_serialize back into a state';
COMMENT ON FUNCTION esmm_auc_final(internal) IS
	'auc final function: sorts each class in place and counts the Mann-Whitney wins, ties as half';
COMMENT ON FUNCTION esmm_gauc_final(internal) IS
	'gauc final function: sorts by (group, score) in place and averages the AUCs of the groups with both classes, weighted by their row counts';

CREATE AGGREGATE auc(double precision, boolean) (
	SFUNC = esmm_auc_sfunc_bool,
	STYPE = internal,
	FINALFUNC = esmm_auc_final,
	FINALFUNC_MODIFY = READ_WRITE,
	COMBINEFUNC = esmm_scores_combine,
	SERIALFUNC = esmm_scores_serialize,
	DESERIALFUNC = esmm_scores_deserialize,
	PARALLEL = SAFE
);
CREATE AGGREGATE auc(double precision, bigint) (
	SFUNC = esmm_auc_sfunc_int,
	STYPE = internal,
	FINALFUNC = esmm_auc_final,
	FINALFUNC_MODIFY = READ_WRITE,
	COMBINEFUNC = esmm_scores_combine,
	SERIALFUNC = esmm_scores_serialize,
	DESERIALFUNC = esmm_scores_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE auc(double precision, boolean) IS
	'exact ROC AUC (score, label) with ties counted as half (Mann-Whitney); NULL when the labels have one class; O(n log n), 8 bytes a row';
COMMENT ON AGGREGATE auc(double precision, bigint) IS
	'exact ROC AUC (score, label) with ties counted as half (Mann-Whitney), for 0/1 labels; NULL when the labels have one class; O(n log n), 8 bytes a row';

CREATE AGGREGATE gauc(double precision, boolean, bigint) (
	SFUNC = esmm_gauc_sfunc_bool_int8,
	STYPE = internal,
	FINALFUNC = esmm_gauc_final,
	FINALFUNC_MODIFY = READ_WRITE,
	COMBINEFUNC = esmm_scores_combine,
	SERIALFUNC = esmm_scores_serialize,
	DESERIALFUNC = esmm_scores_deserialize,
	PARALLEL = SAFE
);
CREATE AGGREGATE gauc(double precision, bigint, bigint) (
	SFUNC = esmm_gauc_sfunc_int_int8,
	STYPE = internal,
	FINALFUNC = esmm_gauc_final,
	FINALFUNC_MODIFY = READ_WRITE,
	COMBINEFUNC = esmm_scores_combine,
	SERIALFUNC = esmm_scores_serialize,
	DESERIALFUNC = esmm_scores_deserialize,
	PARALLEL = SAFE
);
CREATE AGGREGATE gauc(double precision, boolean, text) (
	SFUNC = esmm_gauc_sfunc_bool_text,
	STYPE = internal,
	FINALFUNC = esmm_gauc_final,
	FINALFUNC_MODIFY = READ_WRITE,
	COMBINEFUNC = esmm_scores_combine,
	SERIALFUNC = esmm_scores_serialize,
	DESERIALFUNC = esmm_scores_deserialize,
	PARALLEL = SAFE
);
CREATE AGGREGATE gauc(double precision, bigint, text) (
	SFUNC = esmm_gauc_sfunc_int_text,
	STYPE = internal,
	FINALFUNC = esmm_gauc_final,
	FINALFUNC_MODIFY = READ_WRITE,
	COMBINEFUNC = esmm_scores_combine,
	SERIALFUNC = esmm_scores_serialize,
	DESERIALFUNC = esmm_scores_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE gauc(double precision, boolean, bigint) IS
	'group AUC (score, label, group): the exact AUC of each group with both classes, weighted by the group''s row count; NULL when no group has both classes';
COMMENT ON AGGREGATE gauc(double precision, bigint, bigint) IS
	'group AUC (score, 0/1 label, group): the exact AUC of each group with both classes, weighted by the group''s row count; NULL when no group has both classes';
COMMENT ON AGGREGATE gauc(double precision, boolean, text) IS
	'group AUC (score, label, text group): as gauc with bigint groups; text groups are keyed by a 64-bit hash of their bytes, so two distinct groups merge only on a hash collision (about 3e-8 for a million groups)';
COMMENT ON AGGREGATE gauc(double precision, bigint, text) IS
	'group AUC (score, 0/1 label, text group): as gauc with bigint groups; text groups are keyed by a 64-bit hash of their bytes, so two distinct groups merge only on a hash collision (about 3e-8 for a million groups)';

-- The mean metrics keep counts and compensated sums (esmm_sums), 48 bytes.
CREATE FUNCTION esmm_logloss_sfunc_bool(internal, double precision, boolean) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_logloss_sfunc_int(internal, double precision, bigint) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_bacc_sfunc_bool(internal, double precision, boolean) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_bacc_sfunc_int(internal, double precision, bigint) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_bacc_sfunc_bool(internal, double precision, boolean, double precision) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_bacc_sfunc_int(internal, double precision, bigint, double precision) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_pcoc_sfunc_bool(internal, double precision, boolean) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_pcoc_sfunc_int(internal, double precision, bigint) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_errors_sfunc(internal, double precision, double precision) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_sums_combine(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_sums_serialize(internal) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_sums_deserialize(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_logloss_final(internal) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_bacc_final(internal) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_pcoc_final(internal) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_mse_final(internal) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_rmse_final(internal) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_mae_final(internal) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION esmm_logloss_sfunc_bool(internal, double precision, boolean) IS
	'logloss transition for boolean labels: adds the clipped cross-entropy of the row';
COMMENT ON FUNCTION esmm_logloss_sfunc_int(internal, double precision, bigint) IS
	'logloss transition for integer 0/1 labels: adds the clipped cross-entropy of the row';
COMMENT ON FUNCTION esmm_bacc_sfunc_bool(internal, double precision, boolean) IS
	'binary_accuracy transition for boolean labels, threshold 0.5';
COMMENT ON FUNCTION esmm_bacc_sfunc_int(internal, double precision, bigint) IS
	'binary_accuracy transition for integer 0/1 labels, threshold 0.5';
COMMENT ON FUNCTION esmm_bacc_sfunc_bool(internal, double precision, boolean, double precision) IS
	'binary_accuracy transition for boolean labels and a threshold';
COMMENT ON FUNCTION esmm_bacc_sfunc_int(internal, double precision, bigint, double precision) IS
	'binary_accuracy transition for integer 0/1 labels and a threshold';
COMMENT ON FUNCTION esmm_pcoc_sfunc_bool(internal, double precision, boolean) IS
	'pcoc transition for boolean labels: adds the score and counts the positives';
COMMENT ON FUNCTION esmm_pcoc_sfunc_int(internal, double precision, bigint) IS
	'pcoc transition for integer 0/1 labels: adds the score and counts the positives';
COMMENT ON FUNCTION esmm_errors_sfunc(internal, double precision, double precision) IS
	'mse, rmse and mae transition: adds the squared and the absolute error of the row (one state shared by the three)';
COMMENT ON FUNCTION esmm_sums_combine(internal, internal) IS
	'combine function of logloss, binary_accuracy, pcoc, mse, rmse and mae: adds the counts and the compensated sums';
COMMENT ON FUNCTION esmm_sums_serialize(internal) IS
	'serialization of the logloss, binary_accuracy, pcoc, mse, rmse and mae state, from a parallel worker to its leader';
COMMENT ON FUNCTION esmm_sums_deserialize(bytea, internal) IS
	'deserialization of the logloss, binary_accuracy, pcoc, mse, rmse and mae state';
COMMENT ON FUNCTION esmm_logloss_final(internal) IS
	'logloss final function: the mean cross-entropy';
COMMENT ON FUNCTION esmm_bacc_final(internal) IS
	'binary_accuracy final function: the share of rows classified right';
COMMENT ON FUNCTION esmm_pcoc_final(internal) IS
	'pcoc final function: mean(score) / mean(label)';
COMMENT ON FUNCTION esmm_mse_final(internal) IS
	'mse final function: the mean squared error';
COMMENT ON FUNCTION esmm_rmse_final(internal) IS
	'rmse final function: the square root of the mean squared error';
COMMENT ON FUNCTION esmm_mae_final(internal) IS
	'mae final function: the mean absolute error';

CREATE AGGREGATE logloss(double precision, boolean) (
	SFUNC = esmm_logloss_sfunc_bool, STYPE = internal, FINALFUNC = esmm_logloss_final,
	COMBINEFUNC = esmm_sums_combine, SERIALFUNC = esmm_sums_serialize,
	DESERIALFUNC = esmm_sums_deserialize, PARALLEL = SAFE
);
CREATE AGGREGATE logloss(double precision, bigint) (
	SFUNC = esmm_logloss_sfunc_int, STYPE = internal, FINALFUNC = esmm_logloss_final,
	COMBINEFUNC = esmm_sums_combine, SERIALFUNC = esmm_sums_serialize,
	DESERIALFUNC = esmm_sums_deserialize, PARALLEL = SAFE
);
CREATE AGGREGATE binary_accuracy(double precision, boolean) (
	SFUNC = esmm_bacc_sfunc_bool, STYPE = internal, FINALFUNC = esmm_bacc_final,
	COMBINEFUNC = esmm_sums_combine, SERIALFUNC = esmm_sums_serialize,
	DESERIALFUNC = esmm_sums_deserialize, PARALLEL = SAFE
);
CREATE AGGREGATE binary_accuracy(double precision, bigint) (
	SFUNC = esmm_bacc_sfunc_int, STYPE = internal, FINALFUNC = esmm_bacc_final,
	COMBINEFUNC = esmm_sums_combine, SERIALFUNC = esmm_sums_serialize,
	DESERIALFUNC = esmm_sums_deserialize, PARALLEL = SAFE
);
CREATE AGGREGATE binary_accuracy(double precision, boolean, double precision) (
	SFUNC = esmm_bacc_sfunc_bool, STYPE = internal, FINALFUNC = esmm_bacc_final,
	COMBINEFUNC = esmm_sums_combine, SERIALFUNC = esmm_sums_serialize,
	DESERIALFUNC = esmm_sums_deserialize, PARALLEL = SAFE
);
CREATE AGGREGATE binary_accuracy(double precision, bigint, double precision) (
	SFUNC = esmm_bacc_sfunc_int, STYPE = internal, FINALFUNC = esmm_bacc_final,
	COMBINEFUNC = esmm_sums_combine, SERIALFUNC = esmm_sums_serialize,
	DESERIALFUNC = esmm_sums_deserialize, PARALLEL = SAFE
);
CREATE AGGREGATE pcoc(double precision, boolean) (
	SFUNC = esmm_pcoc_sfunc_bool, STYPE = internal, FINALFUNC = esmm_pcoc_final,
	COMBINEFUNC = esmm_sums_combine, SERIALFUNC = esmm_sums_serialize,
	DESERIALFUNC = esmm_sums_deserialize, PARALLEL = SAFE
);
CREATE AGGREGATE pcoc(double precision, bigint) (
	SFUNC = esmm_pcoc_sfunc_int, STYPE = internal, FINALFUNC = esmm_pcoc_final,
	COMBINEFUNC = esmm_sums_combine, SERIALFUNC = esmm_sums_serialize,
	DESERIALFUNC = esmm_sums_deserialize, PARALLEL = SAFE
);
CREATE AGGREGATE mse(double precision, double precision) (
	SFUNC = esmm_errors_sfunc, STYPE = internal, FINALFUNC = esmm_mse_final,
	COMBINEFUNC = esmm_sums_combine, SERIALFUNC = esmm_sums_serialize,
	DESERIALFUNC = esmm_sums_deserialize, PARALLEL = SAFE
);
CREATE AGGREGATE rmse(double precision, double precision) (
	SFUNC = esmm_errors_sfunc, STYPE = internal, FINALFUNC = esmm_rmse_final,
	COMBINEFUNC = esmm_sums_combine, SERIALFUNC = esmm_sums_serialize,
	DESERIALFUNC = esmm_sums_deserialize, PARALLEL = SAFE
);
CREATE AGGREGATE mae(double precision, double precision) (
	SFUNC = esmm_errors_sfunc, STYPE = internal, FINALFUNC = esmm_mae_final,
	COMBINEFUNC = esmm_sums_combine, SERIALFUNC = esmm_sums_serialize,
	DESERIALFUNC = esmm_sums_deserialize, PARALLEL = SAFE
);
COMMENT ON AGGREGATE logloss(double precision, boolean) IS
	'mean binary cross-entropy (score, label) with scores clipped to [1e-7, 1 - 1e-7]; NULL for no rows';
COMMENT ON AGGREGATE logloss(double precision, bigint) IS
	'mean binary cross-entropy (score, 0/1 label) with scores clipped to [1e-7, 1 - 1e-7]; NULL for no rows';
COMMENT ON AGGREGATE binary_accuracy(double precision, boolean) IS
	'share of rows where (score > 0.5) equals the label, as Keras'' binary accuracy; NULL for no rows';
COMMENT ON AGGREGATE binary_accuracy(double precision, bigint) IS
	'share of rows where (score > 0.5) equals the 0/1 label, as Keras'' binary accuracy; NULL for no rows';
COMMENT ON AGGREGATE binary_accuracy(double precision, boolean, double precision) IS
	'share of rows where (score > threshold) equals the label, as Keras'' binary accuracy; NULL for no rows';
COMMENT ON AGGREGATE binary_accuracy(double precision, bigint, double precision) IS
	'share of rows where (score > threshold) equals the 0/1 label, as Keras'' binary accuracy; NULL for no rows';
COMMENT ON AGGREGATE pcoc(double precision, boolean) IS
	'predicted over observed clicks (score, label): mean(score) / mean(label); NULL when no label is positive';
COMMENT ON AGGREGATE pcoc(double precision, bigint) IS
	'predicted over observed clicks (score, 0/1 label): mean(score) / mean(label); NULL when no label is positive';
COMMENT ON AGGREGATE mse(double precision, double precision) IS
	'mean squared error (prediction, target); NULL for no rows';
COMMENT ON AGGREGATE rmse(double precision, double precision) IS
	'root mean squared error (prediction, target); NULL for no rows';
COMMENT ON AGGREGATE mae(double precision, double precision) IS
	'mean absolute error (prediction, target); NULL for no rows';
