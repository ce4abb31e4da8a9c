-- Training, scoring and inspection on a small deterministic table.
SET client_min_messages = warning;
CREATE TABLE clicks AS
SELECT g AS id, (g % 50) AS user_id, (g * 7 % 30)::int8 AS item_id,
       CASE g % 3 WHEN 0 THEN 'ios' WHEN 1 THEN 'android' ELSE 'web' END AS device,
       (g % 2 = 0) AS is_new,
       CASE WHEN g % 17 = 0 THEN NULL ELSE (g % 13)::float8 / 13 END AS score,
       ((g % 50) < 10 OR (g * 7 % 30) < 5)::int AS click,
       ((g % 50) < 10 AND g % 4 = 0)::int AS conversion
FROM generate_series(1, 2000) g;

CREATE TABLE models AS
SELECT esmm_train(c, '{"ctr_label_name": "click", "cvr_label_name": "conversion",
                       "inputs": {"exclude": ["id"]},
                       "ctr_dnn_units": [16, 8], "cvr_dnn_units": [16, 8],
                       "train_args": {"epochs": 3, "batch_size": 64, "seed": 7}}') AS model
FROM clicks c;

-- the chosen schema: every column but the labels and the excluded id
SELECT f->>'column' AS col, f->>'type' AS type, f->>'kind' AS kind,
       f->>'hash_buckets' AS buckets, f->>'embedding_dim' AS dim, f->>'normalize' AS norm
FROM models, jsonb_array_elements(esmm_model_info(model)->'features') f;
SELECT esmm_model_info(model)->>'kind' AS kind,
       esmm_model_info(model)->'labels' AS labels,
       esmm_model_info(model)->'report'->>'rows_trained' AS rows_trained,
       jsonb_array_length(esmm_model_info(model)->'report'->'history') AS epochs,
       esmm_model_info(model)->'config'->'model_args'->'ctr_dnn_units' AS ctr_units
FROM models;

-- scores: in range, the product rule, and better than chance
SELECT bool_and(p.pctr BETWEEN 0 AND 1 AND p.pcvr BETWEEN 0 AND 1) AS in_range,
       max(abs(p.pctcvr - p.pctr * p.pcvr)) < 1e-6 AS product_rule,
       auc(p.pctr, c.click) > 0.9 AS ctr_learned
FROM clicks c, LATERAL esmm_predict((SELECT model FROM models), c) p;

-- scoring needs only the feature columns, found by name in any order
SELECT p.pctr = q.pctr AS same_score
FROM (SELECT * FROM clicks WHERE id = 5) c,
     LATERAL esmm_predict((SELECT model FROM models), c) p,
     LATERAL esmm_predict((SELECT model FROM models),
                          (SELECT r FROM (SELECT c.score, c.is_new, c.device, c.item_id, c.user_id) r)) q;

-- zero rows give NULL, like other aggregates
SELECT esmm_train(c, '{"ctr_label_name": "click", "cvr_label_name": "conversion"}') IS NULL AS null_model
FROM clicks c WHERE false;

-- auc: exact, ties count half, NULLs skipped, bool or int labels
SELECT auc(s, l) FROM (VALUES (0.1, false), (0.4, true), (0.4, false), (0.8, true), (NULL, true)) v(s, l);
SELECT auc(s, l) FROM (VALUES (0.1::real, 0), (0.4, 1), (0.35, 0), (0.8, 1), (0.5, NULL::int)) v(s, l);
SELECT auc(s, l) FROM (VALUES (0.1, 1), (0.2, 1)) v(s, l);

-- the config check returns the normalized config
SELECT esmm_config_check('{"ctr_label_name": "a", "cvr_label_name": "b"}')->'train_args'->'optimizer' AS optimizer;

-- a model that changes from row to row is never served from a stale cache:
-- two small models (stored inline) crossed with rows score exactly as each
-- model alone does
CREATE TABLE two_models AS
SELECT s AS seed, esmm_train(c, jsonb_build_object('ctr_label_name', 'click', 'cvr_label_name', 'conversion',
         'inputs', '{"exclude": ["id"], "default_hash_buckets": 4, "default_embedding_dim": 2}'::jsonb,
         'ctr_dnn_units', '[2]'::jsonb, 'cvr_dnn_units', '[2]'::jsonb,
         'train_args', jsonb_build_object('epochs', 1, 'seed', s))) AS model
FROM generate_series(1, 2) s, clicks c GROUP BY s;
SELECT bool_and(pg_column_size(model) < 2000) AS stored_inline FROM two_models;
SELECT count(*) AS pairs,
       bool_and(p.pctr = (SELECT q.pctr FROM esmm_predict((SELECT model FROM two_models WHERE seed = m.seed), c) q)) AS each_its_own
FROM two_models m, (SELECT * FROM clicks WHERE id <= 20) c, LATERAL esmm_predict(m.model, c) p;
SELECT count(DISTINCT p.pctr) > 20 AS models_differ
FROM two_models m, (SELECT * FROM clicks WHERE id <= 20) c, LATERAL esmm_predict(m.model, c) p;
