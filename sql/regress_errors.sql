-- Every error the training, scoring and metric functions raise.
SET client_min_messages = warning;
CREATE TABLE t AS
SELECT g AS id, g % 5 AS a, (g % 3)::text AS b, (g % 7)::float8 AS x,
       (g % 2) AS click, (g % 4 = 1)::int AS conv, now() AS ts
FROM generate_series(1, 200) g;
\set base '{"ctr_label_name": "click", "cvr_label_name": "conv", "inputs": {"defs": [{"name": "a", "vocab_size": 5}, {"name": "b"}, {"name": "x"}]}, "train_args": {"epochs": 1}}'
CREATE TABLE m AS SELECT esmm_train(t, :'base') AS model FROM t;

-- training: columns
SELECT esmm_train(t, '{"ctr_label_name": "clik", "cvr_label_name": "conv"}') FROM t;
SELECT esmm_train(t, '{"ctr_label_name": "click", "cvr_label_name": "conv", "inputs": {"defs": [{"name": "nope"}]}}') FROM t;
SELECT esmm_train(t, '{"ctr_label_name": "click", "cvr_label_name": "conv"}') FROM t;
SELECT esmm_train(t, '{"ctr_label_name": "click", "cvr_label_name": "conv", "inputs": {"defs": [{"name": "x", "type": "categorical"}]}}') FROM t;
SELECT esmm_train(t, '{"ctr_label_name": "click", "cvr_label_name": "conv", "inputs": {"defs": [{"name": "click"}]}}') FROM t;
SELECT esmm_train(t, '{"ctr_label_name": "click", "cvr_label_name": "conv", "inputs": {"defs": [{"name": "a"}], "groups": {"ctr": ["b"]}}}') FROM t;
SELECT esmm_train(t, '{"ctr_label_name": "b", "cvr_label_name": "conv", "inputs": {"defs": [{"name": "a"}]}}') FROM t;
-- training: values
SELECT esmm_train(t, :'base') FROM (SELECT id, a + 1 AS a, b, x, click, conv FROM t) t;
SELECT esmm_train(t, :'base') FROM (SELECT id, a, b, CASE WHEN id = 50 THEN 'NaN'::float8 ELSE x END AS x, click, conv FROM t) t;
SELECT esmm_train(t, :'base') FROM (SELECT id, a, b, CASE WHEN id = 60 THEN 'Infinity'::float8 ELSE x END AS x, click, conv FROM t) t;
SELECT esmm_train(t, :'base') FROM (SELECT id, a, b, x, click * 2 AS click, conv FROM t) t;
-- bad rows can be skipped and counted instead
SELECT esmm_model_info(esmm_train(t, (:'base')::jsonb || '{"on_bad_row": "skip"}'))->'report'->>'rows_bad' AS rows_bad
FROM (SELECT id, a, b, CASE WHEN id = 50 THEN 'NaN'::float8 ELSE x END AS x, click, conv FROM t) t;
-- NULL labels are skipped and counted; no usable row gives NULL
SELECT esmm_model_info(esmm_train(t, :'base'))->'report'->>'rows_null_label' AS null_labels
FROM (SELECT id, a, b, x, CASE WHEN id <= 10 THEN NULL ELSE click END AS click, conv FROM t) t;
SET client_min_messages = notice;
SELECT esmm_train(t, :'base') IS NULL AS null_model FROM (SELECT id, a, b, x, NULL::int AS click, conv FROM t) t;
SET client_min_messages = warning;
-- a single class still trains, with a warning
SELECT esmm_train(t, :'base') IS NOT NULL AS trained FROM (SELECT id, a, b, x, click, 0 AS conv FROM t) t;
-- memory limits, before allocating
SET esmm.max_memory = '64kB';
SELECT esmm_train(t, :'base') FROM t;
RESET esmm.max_memory;
SELECT esmm_train(t, '{"ctr_label_name": "click", "cvr_label_name": "conv", "inputs": {"defs": [{"name": "b", "hash_buckets": 1073741824, "embedding_dim": 1024}]}}') FROM t;
-- a config must be given, and leave features
SELECT esmm_train(t, NULL) FROM t;
SELECT esmm_train(t, '{"ctr_label_name": "click", "cvr_label_name": "conv", "inputs": {"exclude": ["id", "a", "b", "x", "ts"]}}') FROM t;
-- at most 128 features
DO $$ BEGIN EXECUTE 'CREATE TABLE wide AS SELECT 1 AS click, 0 AS conv, '
  || (SELECT string_agg(format('%s AS c%s', g, g), ', ') FROM generate_series(1, 129) g); END $$;
SELECT esmm_train(w, '{"ctr_label_name": "click", "cvr_label_name": "conv"}') FROM wide w;
-- options of the evaluation loop are checked, and said to be not applied yet
SET client_min_messages = notice;
SELECT esmm_train(t, (:'base')::jsonb || '{"train_args": {"validation_fraction": 0.2}}')
FROM (SELECT id, a, b, x, CASE WHEN id = 2 THEN 3 ELSE click END AS click, conv FROM t ORDER BY id) t;
SET client_min_messages = warning;

-- scoring: the row must carry the model's columns, with their types
SELECT * FROM esmm_predict((SELECT model FROM m), (SELECT r FROM (SELECT 1 AS a, 'x'::text AS b) r));
SELECT * FROM esmm_predict((SELECT model FROM m), (SELECT r FROM (SELECT 1 AS a, 2 AS b, 0.5::float8 AS x) r));
SELECT * FROM esmm_predict((SELECT model FROM m), (SELECT r FROM (SELECT 9 AS a, 'x'::text AS b, 0.5::float8 AS x) r));
-- NULL features have their own id; a NULL model gives NULL
SELECT pctr BETWEEN 0 AND 1 AS ok FROM esmm_predict((SELECT model FROM m), (SELECT r FROM (SELECT NULL::int AS a, NULL::text AS b, NULL::float8 AS x) r));
SELECT * FROM esmm_predict(NULL, (SELECT r FROM (SELECT 1 AS a) r));

-- corrupted, truncated and foreign models
SELECT * FROM esmm_predict('\x00'::bytea, (SELECT r FROM (SELECT 1 AS a) r));
SELECT esmm_model_info('not a model'::bytea);
SELECT esmm_model_info(set_byte(model, 10, get_byte(model, 10) # 1)) FROM m;
SELECT esmm_model_info(substr(model, 1, length(model) - 4)) FROM m;
SELECT esmm_model_info(set_byte(model, 4, 9)) FROM m;
SELECT esmm_model_info(overlay(model placing '\x00000000' from 1 for 4)) FROM m;
SELECT esmm_model_info(model || '\x00'::bytea) FROM m;

-- metrics
SET client_min_messages = notice;
SELECT auc(0.5, 2);
SELECT auc(s, l) FROM (VALUES (0.1, true), (0.2, true)) v(s, l);
SELECT auc(s, l) IS NULL AS empty FROM (VALUES (0.1, true)) v(s, l) WHERE false;
