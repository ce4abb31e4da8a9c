-- Validation, metrics, early stopping and history of esmm_train, on the
-- synthetic impressions (imp) of test/pgtap/setup.sql.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
BEGIN;
SELECT plan(14);

CREATE TEMP TABLE cfg AS SELECT cfg || '{"train_args": {"batch_size": 512, "epochs": 3, "seed": 42,
	"validation_fraction": 0.2,
	"metrics": {"click": ["auc", "bacc", "logloss"], "conversion": ["auc"]}}}'::jsonb AS cfg
FROM tap_config;

-- validation rows are chosen by a hash of the row, not by its position
CREATE TEMP TABLE fwd AS SELECT esmm_train(i, (SELECT cfg FROM cfg)) AS model
FROM (SELECT * FROM imp WHERE split = 'train' AND id <= 40000 ORDER BY id) i;
CREATE TEMP TABLE bwd AS SELECT esmm_train(i, (SELECT cfg FROM cfg)) AS model
FROM (SELECT * FROM imp WHERE split = 'train' AND id <= 40000 ORDER BY id DESC) i;
SELECT is((SELECT (esmm_model_info(model)->'report'->>'rows_validation')::int FROM fwd),
		  (SELECT (esmm_model_info(model)->'report'->>'rows_validation')::int FROM bwd),
	'the same rows in another order hold out the same number of rows');
SELECT ok((SELECT (esmm_model_info(model)->'report'->>'rows_validation')::float8
				  / (SELECT count(*) FROM imp WHERE split = 'train' AND id <= 40000) FROM fwd)
		  BETWEEN 0.18 AND 0.22, 'about 20% of the rows are held out');

-- metrics per epoch, named <label>_<metric>, computed on the held-out rows
CREATE TEMP TABLE hist AS SELECT h.* FROM fwd, esmm_training_history(model) h;
SELECT is((SELECT count(DISTINCT epoch)::int FROM hist), 3, 'the history has 3 epochs');
SELECT set_eq('SELECT DISTINCT metric FROM hist',
	ARRAY['train_loss', 'rows', 'rows_dropped', 'seconds', 'val_loss', 'click_auc', 'click_bacc', 'click_logloss', 'conversion_auc'],
	'the history holds the training loss, val_loss and each requested metric');
SELECT ok(bool_and(value > 0.55 AND value < 1), 'after the last epoch, validation AUCs beat chance')
FROM hist WHERE metric IN ('click_auc', 'conversion_auc') AND epoch = 3;
SELECT ok((SELECT value FROM hist WHERE epoch = 3 AND metric = 'click_auc')
		  > (SELECT value FROM hist WHERE epoch = 1 AND metric = 'click_auc'),
	'the validation click AUC improves from the first epoch to the last');
SELECT ok((SELECT value FROM hist WHERE epoch = 1 AND metric = 'click_logloss')
		  BETWEEN 0.1 AND 0.7, 'the validation log loss is a sensible number');

-- early stopping on a metric keeps the best epoch's weights
CREATE TEMP TABLE es AS SELECT esmm_train(i, (SELECT cfg FROM tap_config)
	|| '{"train_args": {"epochs": 12, "seed": 42, "batch_size": 256,
	     "optimizer": {"type": "adam", "args": {"learning_rate": 0.02}},
	     "validation_fraction": 0.25,
	     "early_stopping": {"monitor": "val_loss", "mode": "min", "patience": 1}}}') AS model
FROM imp i WHERE split = 'train' AND id <= 30000;
CREATE TEMP TABLE esh AS SELECT h.* FROM es, esmm_training_history(model) h WHERE metric = 'val_loss';
SELECT ok((SELECT (esmm_model_info(model)->'report'->>'stopped_early')::bool FROM es),
	'a learning rate that overfits stops early');
SELECT is((SELECT (esmm_model_info(model)->'report'->>'best_epoch')::int FROM es),
		  (SELECT epoch FROM esh ORDER BY value, epoch LIMIT 1),
	'the model keeps the weights of the epoch with the lowest val_loss');
SELECT is((SELECT max(epoch) FROM esh),
		  (SELECT (esmm_model_info(model)->'report'->>'best_epoch')::int + 1 FROM es),
	'patience 1 stops one epoch after the best');

-- seed 000's train_args as written: metrics and early stopping on is_kg_auc
CREATE TEMP TABLE kg AS
SELECT user_id AS age_level, item_id AS moment_id, device AS os_type, user_age AS log_days,
	   click AS is_kg, click * conversion AS is_dapan
FROM imp WHERE id <= 20000;
CREATE TEMP TABLE kgm AS SELECT esmm_train(k, '{"job_detail": {"model_args": {
	  "ctr_dnn_units": [16, 1], "cvr_dnn_units": [16, 1], "ctr_label_name": "is_kg", "ctcvr_label_name": "is_dapan"},
	"train_args": {"batch_size": 512, "epochs": 3,
	  "optimizer": {"type": "adam", "args": {"learning_rate": 0.001}}, "losses": "bce",
	  "metrics": {"is_kg": ["auc", "bacc"], "is_dapan": ["auc", "bacc"]},
	  "early_stopping": {"monitor": "is_kg_auc", "mode": "max", "patience": 5, "min_delta": 0.001}},
	"eval_args": {"batch_size": 256, "metrics": {"is_kg": ["auc", "bacc"], "is_dapan": ["auc", "bacc"]}}}}') AS model
FROM kg k;
SELECT set_eq($$SELECT DISTINCT metric FROM kgm, esmm_training_history(model) WHERE metric LIKE 'is\_%'$$,
	ARRAY['is_kg_auc', 'is_kg_bacc', 'is_dapan_auc', 'is_dapan_bacc'],
	'seed 000''s metrics are computed per label');
SELECT ok((SELECT (esmm_model_info(model)->'report'->>'rows_validation')::int > 0 FROM kgm),
	'early stopping without validation_fraction holds out rows');
SELECT ok((SELECT value FROM kgm, esmm_training_history(model) h
		   WHERE metric = 'is_kg_auc' AND h.epoch = (esmm_model_info(model)->'report'->>'best_epoch')::int)
		  >= (SELECT max(value) - 0.001 FROM kgm, esmm_training_history(model) WHERE metric = 'is_kg_auc'),
	'the monitor is_kg_auc (mode max, min_delta 0.001) keeps an epoch within min_delta of the best');

-- esmm_training_history matches esmm_model_info
SELECT is((SELECT count(*)::int FROM fwd, esmm_training_history(model)),
		  (SELECT sum(4 + (SELECT count(*) FROM jsonb_object_keys(e) k WHERE k NOT IN ('epoch', 'rows', 'rows_dropped', 'seconds', 'train_loss')))::int
		   FROM fwd, jsonb_array_elements(esmm_model_info(model)->'report'->'history') e),
	'esmm_training_history returns every value of esmm_model_info''s history');

SELECT * FROM finish();
ROLLBACK;
