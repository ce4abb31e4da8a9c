-- mmoe_train, mmoe_predict and esmm_model_info on MMoE models: what they
-- show, and the wording of their errors.
SET client_min_messages = warning;
CREATE TABLE mmoe_rows AS
SELECT id, (id % 7)::int AS a, 'b' || (id % 3) AS b, (id % 11) / 10.0 AS x,
	(id % 2)::int AS click, ((id / 2) % 2 = 0) AS liked, (id % 5) * 1.5 AS spend
FROM generate_series(1, 400) id;
CREATE TABLE mmoe_cfg AS SELECT '{
	"inputs": {"defs": [{"name": "a", "dtype": "int32", "vocab_size": 7, "embedding_dim": 3},
	                    {"name": "b", "dtype": "string", "hash_buckets": 16, "embedding_dim": 2},
	                    {"name": "x", "dtype": "float64"}],
	           "groups": {"wide": ["a", "b"], "mmoe": ["a", "x"], "labels": ["click", "liked", "spend"]}},
	"model_args": {"task_structs": [[4], [4, 1], [3, 1]], "task_types": ["binary", "binary", "regression"],
	               "num_experts": 3, "expert_layers": [5, 4], "task_output_act": "sigmoid", "use_wide": true, "wide_type": "FM",
	               "wide_width": 2, "feature_cross": 3, "output_cross": 0},
	"train_args": {"batch_size": 32, "epochs": 2, "seed": 3}
}'::jsonb AS cfg;
CREATE TABLE mmoe_model AS
	SELECT mmoe_train(r, (SELECT cfg FROM mmoe_cfg)) AS model FROM mmoe_rows r;

-- the parts and the widths feature_cross 3 gives them: experts read the
-- mmoe group (a: 3, x: 1) and the wide group (a: 3, b: 2); task towers the
-- mixture (4) and the FM output (1)
SELECT jsonb_pretty(esmm_model_info(model)->'mmoe') FROM mmoe_model;
SELECT esmm_model_info(model)->>'kind' AS kind, esmm_model_info(model)->'labels' AS labels
FROM mmoe_model;

-- one score per task, in label order; binary tasks in [0,1]
SELECT cardinality(p) AS tasks, bool_and(p[1] BETWEEN 0 AND 1 AND p[2] BETWEEN 0 AND 1) AS binary_in_01
FROM (SELECT mmoe_predict((SELECT model FROM mmoe_model), r) AS p FROM mmoe_rows r) s
GROUP BY 1;
-- scoring needs the features only, not the labels
SELECT cardinality(mmoe_predict((SELECT model FROM mmoe_model), f)) AS tasks
FROM (SELECT a, b, x FROM mmoe_rows LIMIT 1) f;

-- one kind of model per scoring function
SELECT esmm_predict((SELECT model FROM mmoe_model), r) FROM mmoe_rows r LIMIT 1;
SELECT esmm_export(model, 'ctr') FROM mmoe_model;
CREATE TABLE esmm_rows AS SELECT a, b, x, click, click AS conv FROM mmoe_rows;
SELECT mmoe_predict((SELECT esmm_train(e, '{"inputs": {"defs": [{"name": "a", "dtype": "int32", "vocab_size": 7}]},
	"model_args": {"ctr_label_name": "click", "cvr_label_name": "conv"}, "train_args": {"epochs": 1}}')
	FROM esmm_rows e), r) FROM mmoe_rows r LIMIT 1;

-- labels
SELECT mmoe_train(r, (SELECT cfg FROM mmoe_cfg) #- '{inputs,groups,labels}'
	|| '{"inputs": {"groups": {"labels": ["click", "liked", "nope"]}}}') FROM mmoe_rows r;
SELECT mmoe_train(r, (SELECT cfg FROM mmoe_cfg)) FROM (SELECT id, a, b, x, click, liked, 'high'::text AS spend FROM mmoe_rows) r;
SELECT mmoe_train(r, (SELECT cfg FROM mmoe_cfg)) FROM (SELECT id, a, b, x, 2 AS click, liked, spend FROM mmoe_rows) r;
SELECT mmoe_train(r, (SELECT cfg FROM mmoe_cfg)) FROM (SELECT id, a, b, x, click, liked, 'NaN'::float8 AS spend FROM mmoe_rows) r;
SELECT length(mmoe_train(r, (SELECT cfg FROM mmoe_cfg))) > 0 AS real_target_trains
FROM (SELECT id, a, b, x, click, liked, 1.5::real AS spend FROM mmoe_rows) r;
SELECT count(*) AS rows_left FROM (SELECT esmm_model_info(mmoe_train(r, (SELECT cfg FROM mmoe_cfg)
	|| '{"train_args": {"on_bad_row": "skip"}}'))->'report'->>'rows_trained' AS n
	FROM (SELECT id, a, b, x, click, liked, CASE WHEN id % 4 = 0 THEN 'Infinity'::float8 ELSE spend END AS spend FROM mmoe_rows) r) s
WHERE n::int = 300;
SELECT mmoe_train(r, (SELECT cfg FROM mmoe_cfg)) FROM (SELECT id, a, b, x, 1.0::float8 AS click, liked, spend FROM mmoe_rows) r;

-- groups and configs
SELECT mmoe_train(r, (SELECT cfg FROM mmoe_cfg) || '{"inputs": {"defs": [{"name": "a", "dtype": "int32"}],
	"groups": {"wide": ["b"], "labels": ["click", "liked", "spend"]}}}') FROM mmoe_rows r;
-- four tasks with four metrics each: more than the 15 a model records,
-- refused on the first row
SELECT mmoe_train(r, (SELECT cfg FROM mmoe_cfg) || jsonb_build_object(
	'inputs', (SELECT cfg->'inputs' FROM mmoe_cfg) || '{"groups": {"wide": ["a"], "labels": ["click", "liked", "spend", "c2"]}}',
	'model_args', (SELECT cfg->'model_args' FROM mmoe_cfg) || '{"task_structs": [[4], [4], [4], [4]],
		"task_types": ["binary", "binary", "regression", "binary"]}',
	'train_args', '{"metrics": {"click": ["auc", "bacc", "logloss", "mse"], "liked": ["auc", "bacc", "logloss", "mse"],
		"spend": ["mse", "auc", "bacc", "logloss"], "c2": ["auc", "bacc", "logloss", "mse"]}}'::jsonb))
FROM (SELECT *, click AS c2 FROM mmoe_rows) r;
SELECT mmoe_train(r, NULL) FROM mmoe_rows r;
SELECT mmoe_train(r, (SELECT cfg FROM mmoe_cfg)) FROM (SELECT 1 AS one) r;

DROP TABLE mmoe_rows, mmoe_cfg, mmoe_model, esmm_rows;
