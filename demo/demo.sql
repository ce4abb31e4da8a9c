-- The demo's SQL: train on the train split, score the test split, and
-- compare the AUCs with those of the propensities the generator used.
\set cfg `cat demo/esmm_config.json`
-- The model column is EXTERNAL: float32 weights do not compress, and pglz
-- would run over most of the model before giving up (README, "Model")
CREATE TABLE models (name text PRIMARY KEY, model bytea);
ALTER TABLE models ALTER COLUMN model SET STORAGE EXTERNAL;
\timing on
-- hold out 10% of the rows by a hash of each row; metrics per label after
-- every epoch; stop when val_loss stops improving and keep the best epoch
INSERT INTO models
SELECT 'v1', esmm_train(i, :'cfg'::jsonb || '{"train_args": {"epochs": 4, "seed": 42,
    "batch_size": 512, "optimizer": {"type": "adam", "args": {"learning_rate": 0.001}},
    "validation_fraction": 0.1,
    "metrics": {"click": ["auc", "logloss"], "conversion": ["auc"]},
    "early_stopping": {"monitor": "val_loss", "mode": "min", "patience": 1}}}')
FROM impressions i WHERE split = 'train';
\timing off

SELECT esmm_model_info(model)->'report'->>'rows_trained' AS rows_trained,
       esmm_model_info(model)->'report'->>'rows_validation' AS rows_validation,
       esmm_model_info(model)->'report'->>'best_epoch' AS best_epoch,
       esmm_model_info(model)->'report'->>'stopped_early' AS stopped_early
FROM models;

-- the history, one row per epoch and metric
SELECT epoch, metric, round(value::numeric, 4) AS value
FROM esmm_training_history((SELECT model FROM models WHERE name = 'v1'))
WHERE metric NOT IN ('rows', 'seconds') ORDER BY epoch, metric;

CREATE TEMP TABLE scored AS
SELECT i.id, i.click, i.conversion, i.true_ctr, i.true_cvr, p.pctr, p.pcvr, p.pctcvr
FROM impressions i,
     LATERAL esmm_predict((SELECT model FROM models WHERE name = 'v1'), i) p
WHERE i.split = 'test';

SELECT 'CTR (pctr vs click)' AS task,
       round(auc(pctr, click)::numeric, 4) AS model_auc,
       round(auc(true_ctr, click)::numeric, 4) AS true_propensity_auc,
       count(*) AS rows
FROM scored
UNION ALL
SELECT 'CTCVR (pctcvr vs click and conversion)',
       round(auc(pctcvr, click * conversion)::numeric, 4),
       round(auc(true_ctr * true_cvr, click * conversion)::numeric, 4), count(*)
FROM scored
UNION ALL
SELECT 'CVR on clicked rows (pcvr vs conversion)',
       round(auc(pcvr, conversion)::numeric, 4),
       round(auc(true_cvr, conversion)::numeric, 4), count(*)
FROM scored WHERE click = 1;

-- evaluate in SQL: every metric of the test split in one pass
SELECT round(auc(p.pctr, t.click)::numeric, 4)                                AS ctr_auc,
       round(auc(p.pctcvr, t.click * t.conversion)::numeric, 4)               AS ctcvr_auc,
       round((auc(p.pcvr, t.conversion) FILTER (WHERE t.click = 1))::numeric, 4) AS cvr_auc_on_clicks,
       round(gauc(p.pctr, t.click, t.user_id)::numeric, 4)                    AS ctr_gauc,
       round(logloss(p.pctr, t.click)::numeric, 4)                            AS ctr_logloss,
       round(binary_accuracy(p.pctr, t.click)::numeric, 4)                    AS ctr_bacc,
       round(pcoc(p.pctr, t.click)::numeric, 4)                               AS ctr_pcoc
FROM impressions t, LATERAL esmm_predict((SELECT model FROM models WHERE name = 'v1'), t) p
WHERE t.split = 'test';
