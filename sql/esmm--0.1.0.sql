-- esmm 0.1.0: ESMM trained, stored, scored and evaluated in SQL.
\echo Use "CREATE EXTENSION esmm" to load this file. \quit

-- ------------------------------------------------------------ training

CREATE FUNCTION esmm_train_sfunc(internal, record, jsonb) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE;
CREATE FUNCTION esmm_train_final(internal) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE;

CREATE AGGREGATE esmm_train(record, jsonb) (
	SFUNC = esmm_train_sfunc,
	STYPE = internal,
	FINALFUNC = esmm_train_final,
	FINALFUNC_MODIFY = READ_WRITE,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE esmm_train(record, jsonb) IS
	'trains an ESMM model (CTR and CVR towers over shared embeddings) on whole rows; the jsonb config names the columns; returns the model as bytea';
COMMENT ON FUNCTION esmm_train_sfunc(internal, record, jsonb) IS
	'esmm_train transition: parses the config on the first row and encodes each row into the training buffer';
COMMENT ON FUNCTION esmm_train_final(internal) IS
	'esmm_train final function: trains on the buffered rows and encodes the model';

CREATE FUNCTION esmm_config_check(config jsonb) RETURNS jsonb
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION esmm_config_check(jsonb) IS
	'validates an esmm_train configuration and returns it normalized, with every default filled in';

-- ------------------------------------------------------------- scoring

CREATE FUNCTION esmm_predict(model bytea, r record,
	OUT pctr real, OUT pcvr real, OUT pctcvr real)
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION esmm_predict(bytea, record) IS
	'scores one row with an ESMM model: pCTR, pCVR and pCTCVR = pCTR * pCVR; features are found by column name';

CREATE FUNCTION esmm_model_info(model bytea) RETURNS jsonb
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION esmm_model_info(bytea) IS
	'describes a model: kind, feature schema with normalization statistics, parameter counts, normalized config and training report';

CREATE FUNCTION esmm_model_fingerprint(model bytea) RETURNS text
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION esmm_model_fingerprint(bytea) IS
	'md5 of the model with its training durations zeroed: equal for two trainings with the same seed, rows and threads';

-- ---------------------------------------------------------- evaluation

CREATE FUNCTION esmm_auc_sfunc_bool(internal, double precision, boolean) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_auc_sfunc_int(internal, double precision, bigint) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION esmm_auc_final(internal) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION esmm_auc_sfunc_bool(internal, double precision, boolean) IS
	'auc transition for boolean labels';
COMMENT ON FUNCTION esmm_auc_sfunc_int(internal, double precision, bigint) IS
	'auc transition for integer 0/1 labels';
COMMENT ON FUNCTION esmm_auc_final(internal) IS
	'auc final function: exact Mann-Whitney AUC';

CREATE AGGREGATE auc(double precision, boolean) (
	SFUNC = esmm_auc_sfunc_bool,
	STYPE = internal,
	FINALFUNC = esmm_auc_final,
	FINALFUNC_MODIFY = READ_WRITE,
	PARALLEL = SAFE
);
CREATE AGGREGATE auc(double precision, bigint) (
	SFUNC = esmm_auc_sfunc_int,
	STYPE = internal,
	FINALFUNC = esmm_auc_final,
	FINALFUNC_MODIFY = READ_WRITE,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE auc(double precision, boolean) IS
	'exact ROC AUC with ties counted as half; NULL when the labels have one class';
COMMENT ON AGGREGATE auc(double precision, bigint) IS
	'exact ROC AUC with ties counted as half, for 0/1 labels; NULL when the labels have one class';
