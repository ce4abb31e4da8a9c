-- SPEC §7, bad input, row by row, through every entry point: esmm_train,
-- mmoe_train, esmm_evaluate, esmm_fit, esmm_predict, mmoe_predict and
-- esmm_predict_table.  Tested elsewhere: each kind of configuration mistake
-- (regress_config, regress_mmoe_config), a model of the wrong kind
-- (regress_mmoe), a warm start from another schema and corrupted or
-- crafted models (regress_errors).
SET client_min_messages = warning;
CREATE SCHEMA bad_input;
SET search_path = bad_input, public;
CREATE TABLE t AS
SELECT g AS id, g % 5 AS a, (g % 3)::text AS b, (g % 7)::float8 AS x, (g % 7)::real AS xr,
       (g % 7)::numeric AS xn, ARRAY[g % 4, g % 3] AS tags,
       (g % 2) AS click, (g % 4 = 1)::int AS conv, now() AS ts
FROM generate_series(1, 200) g;
\set base '{"ctr_label_name": "click", "cvr_label_name": "conv", "inputs": {"defs": [{"name": "a", "vocab_size": 5}, {"name": "b"}, {"name": "x"}]}, "train_args": {"epochs": 1}}'
\set mbase '{"inputs": {"defs": [{"name": "a", "vocab_size": 5}, {"name": "b"}, {"name": "x"}, {"name": "tags", "vocab_size": 4}], "groups": {"labels": ["click", "conv"]}}, "model_args": {"num_experts": 2, "expert_layers": [4], "task_structs": [[4], [4]], "task_output_act": "sigmoid"}, "train_args": {"epochs": 1}}'
CREATE TABLE m AS SELECT esmm_train(t, :'base') AS model FROM t;
CREATE TABLE mm AS SELECT mmoe_train(t, :'mbase') AS model FROM t;
CREATE TABLE mi AS SELECT esmm_train(t, jsonb_set(:'base', '{inputs,defs,2,null_indicator}', 'true')) AS model FROM t;

-- NULL categorical feature: its own "missing" id, in training and scoring
SELECT esmm_train(t, :'base') IS NOT NULL AS trained FROM (SELECT id, NULL::int AS a, NULL::text AS b, x, click, conv FROM t) t;
SELECT p.pctr BETWEEN 0 AND 1 AS in_range, p.pctr <> q.pctr AS not_id_0
FROM esmm_predict((SELECT model FROM m), (SELECT r FROM (SELECT NULL::int AS a, 'x'::text AS b, 1::float8 AS x) r)) p,
     esmm_predict((SELECT model FROM m), (SELECT r FROM (SELECT 0 AS a, 'x'::text AS b, 1::float8 AS x) r)) q;
-- NULL numeric feature: 0 after normalization (the training mean), plus an
-- indicator where configured
SELECT p.pctr = q.pctr AS null_scores_as_mean
FROM esmm_predict((SELECT model FROM m), (SELECT r FROM (SELECT 1 AS a, 'x'::text AS b, NULL::float8 AS x) r)) p,
     esmm_predict((SELECT model FROM m), (SELECT r FROM (SELECT 1 AS a, 'x'::text AS b,
       (SELECT (esmm_model_info(model)->'features'->2->>'mean')::float8 FROM m) AS x) r)) q;
SELECT esmm_model_info(model)->'features'->2->'null_indicator' AS null_indicator, p.pctr <> q.pctr AS indicator_moves_score
FROM mi,
     esmm_predict((SELECT model FROM mi), (SELECT r FROM (SELECT 1 AS a, 'x'::text AS b, NULL::float8 AS x) r)) p,
     esmm_predict((SELECT model FROM mi), (SELECT r FROM (SELECT 1 AS a, 'x'::text AS b,
       (SELECT (esmm_model_info(model)->'features'->2->>'mean')::float8 FROM mi) AS x) r)) q;
-- a NULL array is an empty list, a NULL element is skipped
SELECT esmm_model_info(mmoe_train(t, :'mbase'))->'report'->>'rows_trained' AS trained
FROM (SELECT id, a, b, x, CASE WHEN id = 5 THEN ARRAY[1, NULL] WHEN id = 6 THEN NULL ELSE tags END AS tags, click, conv FROM t) t;
SELECT cardinality(mmoe_predict((SELECT model FROM mm), r)) AS tasks
FROM (SELECT 1 AS a, 'x'::text AS b, 1::float8 AS x, NULL::int[] AS tags UNION ALL SELECT 1, 'x', 1, ARRAY[NULL, 2]) r;

-- NULL label: the row is skipped and counted; no usable row gives NULL
SELECT esmm_model_info(esmm_train(t, :'base'))->'report'->>'rows_null_label' AS null_labels
FROM (SELECT id, a, b, x, CASE WHEN id <= 10 THEN NULL ELSE click END AS click, conv FROM t) t;
SELECT esmm_model_info(mmoe_train(t, :'mbase'))->'report'->>'rows_null_label' AS null_labels
FROM (SELECT id, a, b, x, tags, click, CASE WHEN id <= 7 THEN NULL ELSE conv END AS conv FROM t) t;
SET client_min_messages = notice;
SELECT esmm_train(t, :'base') IS NULL AS null_model FROM (SELECT id, a, b, x, NULL::int AS click, conv FROM t) t;
SET client_min_messages = warning;
-- NULL rows (an outer join without matches) are no rows at all
SELECT esmm_train(r, :'base') IS NULL AS null_model FROM (SELECT NULL::t AS r FROM t) s;
SELECT esmm_train(t, :'base') IS NULL AS null_model FROM (SELECT 1) one LEFT JOIN t ON false;
-- NULL arguments: a NULL model scores NULL; esmm_predict_table is strict
SELECT * FROM esmm_predict(NULL, (SELECT r FROM (SELECT 1 AS a) r));
SELECT mmoe_predict(NULL, (SELECT r FROM (SELECT 1 AS a) r)) IS NULL AS null_scores;
SELECT esmm_predict_table(NULL, 't', 'id', 'out_null') IS NULL AS null_model,
       esmm_predict_table((SELECT model FROM m), NULL, 'id', 'out_null') IS NULL AS null_source,
       esmm_predict_table((SELECT model FROM m), 't', NULL, 'out_null') IS NULL AS null_key,
       esmm_predict_table((SELECT model FROM m), 't', 'id', NULL) IS NULL AS null_output;
SELECT to_regclass('out_null') IS NULL AS no_table;
SELECT esmm_train(t, NULL) FROM t;

-- NaN or Inf in a numeric feature: an ERROR naming the column and the row,
-- in every numeric type, at training and at scoring
SELECT esmm_train(t, :'base') FROM (SELECT id, a, b, CASE WHEN id = 50 THEN 'NaN'::float8 ELSE x END AS x, click, conv FROM t) t;
SELECT esmm_train(t, :'base') FROM (SELECT id, a, b, CASE WHEN id = 60 THEN 'Infinity'::float8 ELSE x END AS x, click, conv FROM t) t;
SELECT esmm_train(t, :'base') FROM (SELECT id, a, b, CASE WHEN id = 70 THEN '-Infinity'::float8 ELSE x END AS x, click, conv FROM t) t;
SELECT esmm_train(t, '{"ctr_label_name": "click", "cvr_label_name": "conv", "inputs": {"defs": [{"name": "xr"}]}}')
FROM (SELECT CASE WHEN id = 3 THEN 'NaN'::real ELSE xr END AS xr, click, conv FROM t) t;
SELECT esmm_train(t, '{"ctr_label_name": "click", "cvr_label_name": "conv", "inputs": {"defs": [{"name": "xn"}]}}')
FROM (SELECT CASE WHEN id = 4 THEN 'NaN'::numeric ELSE xn END AS xn, click, conv FROM t) t;
SELECT esmm_train(t, '{"ctr_label_name": "click", "cvr_label_name": "conv", "inputs": {"defs": [{"name": "xn"}]}}')
FROM (SELECT CASE WHEN id = 5 THEN 1e300 ELSE xn END AS xn, click, conv FROM t) t;
SELECT mmoe_train(t, :'mbase') FROM (SELECT id, a, b, CASE WHEN id = 8 THEN 'NaN'::float8 ELSE x END AS x, tags, click, conv FROM t) t;
SELECT * FROM esmm_predict((SELECT model FROM m), (SELECT r FROM (SELECT 1 AS a, 'x'::text AS b, '-Infinity'::float8 AS x) r));
SELECT mmoe_predict((SELECT model FROM mm), r) FROM (SELECT 1 AS a, 'x'::text AS b, 'NaN'::float8 AS x, ARRAY[1] AS tags) r;
SELECT esmm_evaluate(t, (SELECT model FROM m)) FROM (SELECT id, a, b, CASE WHEN id = 9 THEN 'NaN'::float8 ELSE x END AS x, click, conv FROM t) t;
CREATE VIEW with_nan AS SELECT id, a, b, CASE WHEN id = 9 THEN 'NaN'::float8 ELSE x END AS x FROM t;
SELECT esmm_predict_table((SELECT model FROM m), 'with_nan', 'id', 'out_nan');
SELECT to_regclass('out_nan') IS NULL AS no_partial_table;
-- or skipped and counted with on_bad_row: skip
SELECT esmm_model_info(esmm_train(t, (:'base')::jsonb || '{"on_bad_row": "skip"}'))->'report'->>'rows_bad' AS rows_bad
FROM (SELECT id, a, b, CASE WHEN id IN (50, 51) THEN 'NaN'::float8 ELSE x END AS x, click, conv FROM t) t;

-- an integer id outside vocab_size without hashing: an ERROR naming the
-- column, the id and the vocab size; hashed when hash_buckets is set
SELECT esmm_train(t, :'base') FROM (SELECT id, a + 1 AS a, b, x, click, conv FROM t) t;
SELECT esmm_train(t, :'base') FROM (SELECT id, -a AS a, b, x, click, conv FROM t) t;
SELECT mmoe_train(t, :'mbase') FROM (SELECT id, a, b, x, ARRAY[id % 9] AS tags, click, conv FROM t) t;
SELECT esmm_train(t, jsonb_set(:'base', '{inputs,defs,0}', '{"name": "a", "hash_buckets": 5}')) IS NOT NULL AS hashed
FROM (SELECT id, a * 1000 AS a, b, x, click, conv FROM t) t;
SELECT * FROM esmm_predict((SELECT model FROM m), (SELECT r FROM (SELECT 9 AS a, 'x'::text AS b, 0.5::float8 AS x) r));
SELECT mmoe_predict((SELECT model FROM mm), r) FROM (SELECT 1 AS a, 'x'::text AS b, 1::float8 AS x, ARRAY[1, 4] AS tags) r;
CREATE VIEW out_of_vocab AS SELECT id, a + 1 AS a, b, x FROM t;
SELECT esmm_predict_table((SELECT model FROM m), 'out_of_vocab', 'id', 'out_oov');

-- a missing column, or a column of the wrong type, at training and at
-- scoring: an ERROR that names the column
SELECT esmm_train(t, '{"ctr_label_name": "clik", "cvr_label_name": "conv"}') FROM t;
SELECT esmm_train(t, '{"ctr_label_name": "click", "cvr_label_name": "conv", "inputs": {"defs": [{"name": "nope"}]}}') FROM t;
SELECT mmoe_train(t, jsonb_set(:'mbase', '{inputs,groups,labels}', '["click", "conversion"]')) FROM t;
SELECT esmm_train(t, '{"ctr_label_name": "click", "cvr_label_name": "conv"}') FROM t;
SELECT esmm_train(t, '{"ctr_label_name": "click", "cvr_label_name": "conv", "inputs": {"defs": [{"name": "x", "type": "categorical"}]}}') FROM t;
SELECT esmm_train(t, '{"ctr_label_name": "click", "cvr_label_name": "conv", "inputs": {"defs": [{"name": "click"}]}}') FROM t;
SELECT esmm_train(t, '{"ctr_label_name": "click", "cvr_label_name": "conv", "inputs": {"defs": [{"name": "a"}], "groups": {"ctr": ["b"]}}}') FROM t;
SELECT esmm_train(t, '{"ctr_label_name": "b", "cvr_label_name": "conv", "inputs": {"defs": [{"name": "a"}]}}') FROM t;
SELECT esmm_train(t, :'base') FROM (SELECT id, a, b, x, click * 2 AS click, conv FROM t) t;
SELECT * FROM esmm_predict((SELECT model FROM m), (SELECT r FROM (SELECT 1 AS a, 'x'::text AS b) r));
SELECT * FROM esmm_predict((SELECT model FROM m), (SELECT r FROM (SELECT 1 AS a, 2 AS b, 0.5::float8 AS x) r));
SELECT mmoe_predict((SELECT model FROM mm), r) FROM (SELECT 1 AS a, 'x'::text AS b, 1::float8 AS x) r;
SELECT mmoe_predict((SELECT model FROM mm), r) FROM (SELECT 1 AS a, 'x'::text AS b, 1::float8 AS x, ARRAY['p'] AS tags) r;
SELECT esmm_evaluate(t, (SELECT model FROM m)) FROM (SELECT a, b, x, click FROM t) t;
CREATE VIEW no_x AS SELECT id, a, b FROM t;
SELECT esmm_predict_table((SELECT model FROM m), 'no_x', 'id', 'out_no_x');
CREATE VIEW text_a AS SELECT id, a::text AS a, b, x FROM t;
SELECT esmm_predict_table((SELECT model FROM m), 'text_a', 'id', 'out_text_a');
SELECT esmm_predict_table((SELECT model FROM m), 't', 'nokey', 'out_nokey');

-- memory: a model over esmm.max_memory, or over the 1 GB bytea limit, is
-- an ERROR before allocating, with the size; in mode memory so are the rows
-- (mode auto streams instead), and the held-out rows in streaming
\set small '{"ctr_label_name": "click", "cvr_label_name": "conv", "inputs": {"defs": [{"name": "a", "vocab_size": 5}, {"name": "b", "hash_buckets": 10}, {"name": "x"}]}, "model_args": {"ctr_dnn_units": [4], "cvr_dnn_units": [4]}, "train_args": {"epochs": 1, "mode": "memory", "batch_size": 16}}'
SET esmm.max_memory = '64kB';
SELECT esmm_train(t, :'base') FROM t;
SELECT mmoe_train(t, :'mbase') FROM t;
-- evaluation counts the model's bytes, its decoded weights and a batch
SELECT esmm_evaluate(t, (SELECT model FROM m)) FROM t;
SELECT esmm_train(t, :'small') FROM t;
SELECT esmm_model_info(esmm_train(t, jsonb_set(:'small', '{train_args,mode}', '"auto"')))->'report'->'history'->0->>'rows' AS streamed_rows FROM t;
-- which rows are held out follows a hash of the whole row and the row order:
-- leave out ts (now() differs between runs) and fix the order
SELECT esmm_train(t, jsonb_set(jsonb_set(:'small', '{train_args,mode}', '"streaming"'), '{train_args,validation_fraction}', '0.9')) FROM (SELECT t.id, a, b, x, click, conv FROM t, generate_series(1, 20) g ORDER BY g, t.id) t;
RESET esmm.max_memory;
SELECT esmm_train(t, '{"ctr_label_name": "click", "cvr_label_name": "conv", "inputs": {"defs": [{"name": "b", "hash_buckets": 1073741824, "embedding_dim": 1024}]}}') FROM t;
-- scoring too: a model's layers can be 65536 wide, so esmm.max_memory
-- bounds a scoring batch; a table is then scored in smaller batches, to the
-- same scores
CREATE TABLE wide_model AS SELECT esmm_train(t, jsonb_set(:'base', '{model_args}', '{"ctr_dnn_units": [16384, 2, 16384], "cvr_dnn_units": [4]}')) AS model FROM t;
SET esmm.max_memory = '256kB';
SELECT * FROM esmm_predict((SELECT model FROM wide_model), (SELECT r FROM (SELECT 1 AS a, 'x'::text AS b, 0.5::float8 AS x) r));
SET esmm.max_memory = '8MB';
SELECT esmm_predict_table((SELECT model FROM wide_model), 't', 'id', 'out_wide');
RESET esmm.max_memory;
SELECT count(*) AS rows, max(abs(o.pctr - p.pctr)) < 1e-6 AS same_scores
FROM out_wide o JOIN t ON t.id = o.id, esmm_predict((SELECT model FROM wide_model), t) p;

-- zero rows: NULL, like other aggregates; nothing to score is 0 rows
CREATE TABLE empty AS SELECT * FROM t WHERE false;
SELECT esmm_train(e, :'base') IS NULL AS esmm_train, mmoe_train(e, :'mbase') IS NULL AS mmoe_train,
       esmm_evaluate(e, (SELECT model FROM m)) IS NULL AS esmm_evaluate
FROM empty e;
SELECT esmm_fit('empty', :'base') IS NULL AS esmm_fit;
SELECT esmm_predict_table((SELECT model FROM m), 'empty', 'id', 'out_empty') AS scored;
SELECT count(*) AS rows FROM out_empty;
SELECT auc(p.pctr, e.click) IS NULL AS auc FROM empty e, esmm_predict((SELECT model FROM m), e) p;

-- only one class in a label: training works, with a warning; auc is NULL,
-- with a NOTICE
SELECT esmm_train(t, :'base') IS NOT NULL AS trained FROM (SELECT id, a, b, x, click, 0 AS conv FROM t) t;
SET client_min_messages = notice;
SELECT auc(p.pctcvr, 0) AS auc FROM t, esmm_predict((SELECT model FROM m), t) p;
SET client_min_messages = warning;

-- a failed training leaves the database as it was
CREATE TABLE failed AS SELECT esmm_train(t, :'base') AS model FROM (SELECT id, a + 1 AS a, b, x, click, conv FROM t) t;
SELECT to_regclass('failed') IS NULL AS no_table;

RESET search_path;
DROP SCHEMA bad_input CASCADE;
