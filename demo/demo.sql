-- The demo's SQL: train on the train split, score the test split, and
-- compare the AUCs with those of the propensities the generator used.
\set cfg `cat demo/esmm_config.json`
\timing on
CREATE TABLE models AS
SELECT 'v1' AS name, esmm_train(i, :'cfg') AS model
FROM impressions i WHERE split = 'train';
\timing off

SELECT jsonb_pretty(esmm_model_info(model)->'report') AS training_report FROM models;

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
