-- Trains the models the pgTAP files test, and stores scores to compare
-- after pg_dump and restore.  Run once per suite, in database esmm_tap.
\set cfg `cat demo/esmm_config.json`
SET client_min_messages = warning;
CREATE TABLE tap_config AS SELECT :'cfg'::jsonb
	|| '{"train_args": {"batch_size": 512, "epochs": 3, "seed": 42,
	     "optimizer": {"type": "adam", "args": {"learning_rate": 0.001}}}}'::jsonb AS cfg;
CREATE TABLE tap_models AS
	SELECT 'v1'::text AS name, esmm_train(i, (SELECT cfg FROM tap_config)) AS model
	FROM imp i WHERE split = 'train';
CREATE TABLE tap_scores AS
	SELECT i.id, p.pctr, p.pcvr, p.pctcvr
	FROM imp i, LATERAL esmm_predict((SELECT model FROM tap_models WHERE name = 'v1'), i) p
	WHERE i.split = 'test';
