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
-- NULL rows (an outer join without matches) are no rows at all
SELECT esmm_train(r, :'base') IS NULL AS null_model FROM (SELECT NULL::t AS r FROM t) s;
SELECT esmm_train(t, :'base') IS NULL AS null_model FROM (SELECT 1) one LEFT JOIN t ON false;
-- a single class still trains, with a warning
SELECT esmm_train(t, :'base') IS NOT NULL AS trained FROM (SELECT id, a, b, x, click, 0 AS conv FROM t) t;
-- memory limits, before allocating: the model, then the buffer in mode
-- memory (mode auto streams instead)
\set small '{"ctr_label_name": "click", "cvr_label_name": "conv", "inputs": {"defs": [{"name": "a", "vocab_size": 5}, {"name": "b", "hash_buckets": 10}, {"name": "x"}]}, "model_args": {"ctr_dnn_units": [4], "cvr_dnn_units": [4]}, "train_args": {"epochs": 1, "mode": "memory"}}'
SET esmm.max_memory = '64kB';
SELECT esmm_train(t, :'base') FROM t;
SELECT esmm_train(t, :'small') FROM t;
SELECT esmm_model_info(esmm_train(t, jsonb_set(:'small', '{train_args,mode}', '"auto"')))->'report'->'history'->0->>'rows' AS streamed_rows FROM t;
-- streaming: the held-out rows must fit
SELECT esmm_train(t, jsonb_set(jsonb_set(:'small', '{train_args,mode}', '"streaming"'), '{train_args,validation_fraction}', '0.9')) FROM (SELECT t.* FROM t, generate_series(1, 20)) t;
RESET esmm.max_memory;
-- modes and warm starts
SELECT esmm_train(t, jsonb_set(:'small', '{train_args,mode}', '"disk"')) FROM t;
SELECT esmm_train(t, jsonb_set(:'small', '{train_args,init_model}', '"0badc0de"')) FROM t;
SELECT esmm_train(t, jsonb_set(:'small', '{train_args,init_model}', '"\\x0badc0de"')) FROM t;
SELECT esmm_train(t, jsonb_set(:'base', '{train_args,init_model}', to_jsonb((SELECT model FROM m)))) IS NOT NULL AS warm_started FROM t;
SELECT esmm_train(t, jsonb_set(:'small', '{train_args,init_model}', to_jsonb((SELECT model FROM m)))) FROM t;
SELECT esmm_train(t, jsonb_set(jsonb_set(:'base', '{model_args}', '{"ctr_dnn_units": [8]}'), '{train_args,init_model}', to_jsonb((SELECT model FROM m)))) FROM t;
SELECT mmoe_train(t, jsonb_build_object('inputs', '{"defs": [{"name": "a", "vocab_size": 5}, {"name": "b"}, {"name": "x"}], "groups": {"labels": ["click", "conv"]}}'::jsonb,
	'model_args', '{"task_structs": [[4], [4]], "num_experts": 2, "expert_layers": [4]}'::jsonb, 'train_args', jsonb_build_object('init_model', (SELECT model FROM m)))) FROM t;
-- esmm_fit and esmm_evaluate
SELECT esmm_fit(NULL, :'base');
SELECT esmm_fit('t', NULL);
SELECT esmm_fit('no_such_table', :'base');
SELECT esmm_evaluate(t, NULL) FROM t;
SELECT esmm_evaluate(t, esmm_export((SELECT model FROM m), 'ctr')) FROM t;
SELECT esmm_evaluate(t, 'not a model') FROM t;
SELECT esmm_train(t, '{"ctr_label_name": "click", "cvr_label_name": "conv", "inputs": {"defs": [{"name": "b", "hash_buckets": 1073741824, "embedding_dim": 1024}]}}') FROM t;
-- a config must be given, and leave features
SELECT esmm_train(t, NULL) FROM t;
SELECT esmm_train(t, '{"ctr_label_name": "click", "cvr_label_name": "conv", "inputs": {"exclude": ["id", "a", "b", "x", "ts"]}}') FROM t;
-- at most 128 features
DO $$ BEGIN EXECUTE 'CREATE TABLE wide AS SELECT 1 AS click, 0 AS conv, '
  || (SELECT string_agg(format('%s AS c%s', g, g), ', ') FROM generate_series(1, 129) g); END $$;
SELECT esmm_train(w, '{"ctr_label_name": "click", "cvr_label_name": "conv"}') FROM wide w;
-- a metric name longer than the history keeps is an error, never dropped
SELECT esmm_train(t, '{"ctr_label_name": "click_within_the_first_week_x", "cvr_label_name": "conv",
  "inputs": {"defs": [{"name": "a", "vocab_size": 5}]},
  "train_args": {"metrics": {"click_within_the_first_week_x": ["auc"]}}}')
FROM (SELECT a, click AS click_within_the_first_week_x, conv FROM t) t;
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

-- crafted models, each with a valid checksum, built by the core's encoder:
-- one feature x (float8), CTR and CVR towers of width 1
SELECT pctr BETWEEN 0 AND 1 AS tiny_scores FROM esmm_predict('\x45534d4d010001004d68cf9506000000010000000000000002000000000000007b7d0200000000000000e8000000000000000100000078000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000bd020000020000000000000000000000000000000000803f02000000636c69636b000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000017000000636f6e760000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001700000003000000000000004c000000000000000100000001000000010000000000000000000000000000000100000000000100000001000000010000000000000000000000000000000100000000000000803f0000803f000000000000000004000000000000004500000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000050000000000000018000000000000000400000000000000296bb2bf000000002fce38bf00000000060000000000000008000000000000000000000000000000', (SELECT r FROM (SELECT 0.5::float8 AS x) r));
-- a config section that is not JSON, a column type no feature can have, a name
-- that is not UTF-8
SELECT esmm_model_info('\x45534d4d01000100005a41d206000000010000000000000004000000000000007b6261640200000000000000e8000000000000000100000078000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000bd020000020000000000000000000000000000000000803f02000000636c69636b000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000017000000636f6e760000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001700000003000000000000004c000000000000000100000001000000010000000000000000000000000000000100000000000100000001000000010000000000000000000000000000000100000000000000803f0000803f000000000000000004000000000000004500000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000050000000000000018000000000000000400000000000000296bb2bf000000002fce38bf00000000060000000000000008000000000000000000000000000000');
SELECT esmm_model_info('\x45534d4d010001005782c47d06000000010000000000000002000000000000007b7d0200000000000000e800000000000000010000007800000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000039300000020000000000000000000000000000000000803f02000000636c69636b000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000017000000636f6e760000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001700000003000000000000004c000000000000000100000001000000010000000000000000000000000000000100000000000100000001000000010000000000000000000000000000000100000000000000803f0000803f000000000000000004000000000000004500000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000050000000000000018000000000000000400000000000000296bb2bf000000002fce38bf00000000060000000000000008000000000000000000000000000000');
SELECT * FROM esmm_predict('\x45534d4d01000100e6ebe37506000000010000000000000002000000000000007b7d0200000000000000e8000000000000000100000078ff0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000bd020000020000000000000000000000000000000000803f02000000636c69636b000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000017000000636f6e760000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001700000003000000000000004c000000000000000100000001000000010000000000000000000000000000000100000000000100000001000000010000000000000000000000000000000100000000000000803f0000803f000000000000000004000000000000004500000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000050000000000000018000000000000000400000000000000296bb2bf000000002fce38bf00000000060000000000000008000000000000000000000000000000', (SELECT r FROM (SELECT 0.5::float8 AS x) r));

-- metrics
SET client_min_messages = notice;
SELECT auc(0.5, 2);
SELECT auc(s, l) FROM (VALUES ('NaN'::float8, true), (0.2, false)) v(s, l);
SELECT auc(s, l) FROM (VALUES (0.1, true), (0.2, true)) v(s, l);
SELECT auc(s, l) IS NULL AS empty FROM (VALUES (0.1, true)) v(s, l) WHERE false;
