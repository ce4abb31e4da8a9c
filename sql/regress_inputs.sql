-- Input kinds, label forms, layer options and optimizers: each trains and
-- scores sensibly.
SET client_min_messages = warning;
CREATE TABLE ev AS
SELECT g AS id,
       (g % 40)::int2 AS shop,
       ARRAY[(g % 11), (g % 7) + 20]::int4[] AS tags,
       CASE WHEN g % 9 = 0 THEN '{}'::text[] ELSE ARRAY['t' || (g % 5)] END AS words,
       ((g % 23)::numeric / 7) AS amount,
       (g % 40 < 12) AS clicked,
       ((g % 40 < 12) AND g % 3 = 0)::int::int2 AS bought
FROM generate_series(1, 3000) g;

-- array features are mean-pooled; numeric columns are numbers; labels bool and int2
CREATE TABLE inputs_model AS
SELECT esmm_train(e, '{"ctr_label_name": "clicked", "ctcvr_label_name": "bought",
                       "inputs": {"defs": [{"name": "shop", "vocab_size": 40},
                                           {"name": "tags", "type": "multi", "hash_buckets": 64, "embedding_dim": 4},
                                           {"name": "words", "embedding_dim": 4},
                                           {"name": "amount", "normalize": "log", "null_indicator": true}]},
                       "ctr_dnn_units": [8], "cvr_dnn_units": [8],
                       "train_args": {"epochs": 4, "batch_size": 128, "seed": 3,
                                      "optimizer": {"type": "adam", "args": {"learning_rate": 0.01}}}}') AS model
FROM ev e;
SELECT f->>'column' AS col, f->>'kind' AS kind, f->>'type' AS type,
       coalesce(f->>'vocab_size', f->>'hash_buckets') AS buckets, f->>'normalize' AS norm
FROM inputs_model, jsonb_array_elements(esmm_model_info(model)->'features') f;
SELECT round(auc(p.pctr, e.clicked)::numeric, 2) >= 0.95 AS ctr_learned,
       round(auc(p.pctcvr, e.bought::int)::numeric, 2) >= 0.8 AS ctcvr_learned,
       bool_and(p.pctcvr <= p.pctr) AS ctcvr_below_ctr
FROM ev e, LATERAL esmm_predict((SELECT model FROM inputs_model), e) p;
-- an empty array and a NULL array score like the missing id
SELECT a.pctr = b.pctr AS empty_is_null
FROM esmm_predict((SELECT model FROM inputs_model),
                  (SELECT r FROM (SELECT 1::int2 AS shop, '{}'::int4[] AS tags, '{}'::text[] AS words, 1::numeric AS amount) r)) a,
     esmm_predict((SELECT model FROM inputs_model),
                  (SELECT r FROM (SELECT 1::int2 AS shop, NULL::int4[] AS tags, NULL::text[] AS words, 1::numeric AS amount) r)) b;

-- every optimizer, batch norm, dropout, per-layer arrays and both losses train
CREATE TABLE variants (name text, cfg jsonb);
INSERT INTO variants VALUES
 ('adagrad', '{"optimizer": {"type": "adagrad", "args": {"learning_rate": 0.05}}}'),
 ('sgd momentum', '{"optimizer": {"type": "sgd", "args": {"learning_rate": 0.05, "momentum": 0.9}}}'),
 ('rmsprop', '{"optimizer": {"type": "rmsprop", "args": {"learning_rate": 0.005}}}'),
 ('adam mse', '{"optimizer": {"type": "adam", "args": {"learning_rate": 0.01}}, "losses": "mse"}');
SELECT v.name,
       (esmm_model_info(t.model)->'report'->'history'->-1->>'train_loss')::float8
         < (esmm_model_info(t.model)->'report'->'history'->0->>'train_loss')::float8 AS loss_fell,
       (SELECT auc(p.pctr, e.clicked) > 0.9 FROM ev e, LATERAL esmm_predict(t.model, e) p) AS ctr_learned
FROM variants v,
     LATERAL (SELECT esmm_train(e, jsonb_build_object(
                'ctr_label_name', 'clicked', 'ctcvr_label_name', 'bought',
                'inputs', '{"exclude": ["id"]}'::jsonb,
                'ctr_dnn_units', '[16, 8]'::jsonb, 'cvr_dnn_units', '[16, 8]'::jsonb,
                'ctr_dnn_hidden_act', '["relu", "tanh"]'::jsonb, 'cvr_dnn_hidden_act', 'gelu',
                'ctr_dnn_use_bn', '[true, false, true]'::jsonb, 'cvr_dnn_use_bn', true,
                'ctr_dnn_dropout', '[0.1, 0]'::jsonb, 'cvr_dnn_dropout', 0.2,
                'ctr_dnn_l2_reg', 0.001, 'cvr_dnn_l1_reg', 0.0001, 'l2_reg_embedding', 0.0001,
                'train_args', jsonb_build_object('epochs', 4, 'batch_size', 128, 'seed', 5) || v.cfg)) AS model
              FROM ev e) t
ORDER BY v.name;

-- char(n) hashes without its padding: text and other widths score alike
CREATE TABLE padded AS
SELECT g AS id, ('k' || (g % 6))::char(4) AS code, (g % 6 < 2)::int AS click, 0 AS conv
FROM generate_series(1, 600) g;
CREATE TABLE padded_model AS
SELECT esmm_train(p, '{"ctr_label_name": "click", "cvr_label_name": "conv",
                       "inputs": {"exclude": ["id"]}, "ctr_dnn_units": [4], "cvr_dnn_units": [4],
                       "train_args": {"epochs": 2, "batch_size": 32}}') AS model
FROM padded p;
SELECT count(*) AS codes,
       bool_and(a.pctr = b.pctr AND a.pctr = c.pctr) AS same_scores
FROM (SELECT DISTINCT code FROM padded) d,
     LATERAL esmm_predict((SELECT model FROM padded_model), (SELECT r FROM (SELECT d.code) r)) a,
     LATERAL esmm_predict((SELECT model FROM padded_model), (SELECT r FROM (SELECT rtrim(d.code)::text AS code) r)) b,
     LATERAL esmm_predict((SELECT model FROM padded_model), (SELECT r FROM (SELECT d.code::char(8) AS code) r)) c;
