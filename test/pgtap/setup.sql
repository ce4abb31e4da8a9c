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
-- Runs q, which a statement_timeout set by the caller cancels, and says
-- how it ended and after how long (pgTAP's throws_ok cannot catch a cancel).
CREATE FUNCTION tap_run_until_cancelled(q text, OUT outcome text, OUT seconds float8) LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
	EXECUTE q;
	outcome := 'finished';
	seconds := extract(epoch FROM clock_timestamp() - t0);
EXCEPTION WHEN query_canceled THEN
	outcome := 'cancelled';
	seconds := extract(epoch FROM clock_timestamp() - t0);
END $$;
