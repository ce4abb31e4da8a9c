-- Sub-models (seed 000's esmm-ctr and esmm-cvr): one tower and the
-- embeddings of its group; scoring needs only that group's columns.
SET client_min_messages = warning;
CREATE TABLE shop AS
SELECT g AS id, g % 30 AS user_id, g * 7 % 20 AS item_id, (g % 9)::float8 AS price,
       (g % 30 < 8 OR g * 7 % 20 < 4)::int AS click,
       (g % 30 < 8 AND g % 9 < 3)::int AS conversion
FROM generate_series(1, 2000) g;
CREATE TABLE shop_model AS
SELECT esmm_train(s, '{"ctr_label_name": "click", "cvr_label_name": "conversion",
                       "inputs": {"defs": [{"name": "user_id", "vocab_size": 30}, {"name": "item_id", "vocab_size": 20},
                                           {"name": "price"}],
                                  "groups": {"ctr": ["user_id", "item_id"], "cvr": ["item_id", "price"]}},
                       "ctr_dnn_units": [8], "cvr_dnn_units": [8],
                       "train_args": {"epochs": 2, "batch_size": 64}}') AS model
FROM shop s;
CREATE TABLE parts AS
SELECT model AS full_model, esmm_export(model, 'ctr') AS ctr, esmm_export(model, 'cvr') AS cvr FROM shop_model;

SELECT esmm_model_info(ctr)->>'kind' AS ctr_kind,
       (SELECT array_agg(f->>'column') FROM jsonb_array_elements(esmm_model_info(ctr)->'features') f) AS ctr_columns,
       esmm_model_info(cvr)->>'kind' AS cvr_kind,
       (SELECT array_agg(f->>'column') FROM jsonb_array_elements(esmm_model_info(cvr)->'features') f) AS cvr_columns,
       (esmm_model_info(ctr)->>'parameters')::int + (esmm_model_info(cvr)->>'parameters')::int
         > (esmm_model_info(full_model)->>'parameters')::int AS item_table_in_both
FROM parts;

-- each sub-model scores as the full model's tower, from its group's columns only
SELECT count(*) AS rows,
       bool_and(c.pctr = p.pctr AND c.pcvr IS NULL AND c.pctcvr IS NULL) AS ctr_matches,
       bool_and(v.pcvr = p.pcvr AND v.pctr IS NULL AND v.pctcvr IS NULL) AS cvr_matches
FROM shop s,
     LATERAL esmm_predict((SELECT full_model FROM parts), s) p,
     LATERAL esmm_predict((SELECT ctr FROM parts), (SELECT r FROM (SELECT s.user_id, s.item_id) r)) c,
     LATERAL esmm_predict((SELECT cvr FROM parts), (SELECT r FROM (SELECT s.item_id, s.price) r)) v;

-- errors
SELECT esmm_export(full_model, 'ctcvr') FROM parts;
SELECT esmm_export(ctr, 'ctr') FROM parts;
SELECT * FROM esmm_predict((SELECT ctr FROM parts), (SELECT r FROM (SELECT 1 AS item_id, 2.0::float8 AS price) r));
