-- Scaling out (SPEC §5, issue 6): parallel training aggregates, streaming
-- mode, warm starts, esmm_evaluate and esmm_fit, on the synthetic
-- impressions (imp) of test/pgtap/setup.sql.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
BEGIN;
SELECT plan(15);

-- a model small enough that esmm.max_memory can be a quarter of the rows
CREATE TEMP TABLE sc AS SELECT '{
  "inputs": {"defs": [
    {"name": "user_id", "dtype": "int32", "hash_buckets": 2000, "embedding_dim": 4},
    {"name": "item_id", "dtype": "int32", "hash_buckets": 2000, "embedding_dim": 4},
    {"name": "category", "dtype": "string", "hash_buckets": 100, "embedding_dim": 4},
    {"name": "hour", "dtype": "int32", "vocab_size": 24, "embedding_dim": 4},
    {"name": "device", "dtype": "string", "hash_buckets": 16, "embedding_dim": 4},
    {"name": "user_age", "dtype": "float32", "normalize": "standard"},
    {"name": "item_price", "dtype": "float64", "normalize": "log"},
    {"name": "user_hist_ctr", "dtype": "float32", "normalize": "standard"}]},
  "model_args": {"ctr_dnn_units": [32, 16], "cvr_dnn_units": [32, 16],
                 "ctr_dnn_hidden_act": "relu", "cvr_dnn_hidden_act": "relu",
                 "ctr_label_name": "click", "cvr_label_name": "conversion"},
  "train_args": {"batch_size": 256, "epochs": 3, "seed": 7,
                 "optimizer": {"type": "adam", "args": {"learning_rate": 0.002}}}}'::jsonb AS cfg;
CREATE VIEW sc_train AS SELECT * FROM imp WHERE split = 'train';
CREATE TEMP TABLE sc_test AS SELECT * FROM imp WHERE split = 'test';
CREATE FUNCTION pg_temp.sc_auc(m bytea, OUT ctr float8, OUT ctcvr float8) AS $$
	SELECT auc(p.pctr, t.click), auc(p.pctcvr, t.click * t.conversion)
	FROM sc_test t, LATERAL esmm_predict(m, t) p $$ LANGUAGE sql;
CREATE FUNCTION pg_temp.plan_of(q text) RETURNS text AS $$
DECLARE r record; t text := '';
BEGIN
	FOR r IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || q LOOP
		t := t || r."QUERY PLAN" || E'\n';
	END LOOP;
	RETURN t;
END $$ LANGUAGE plpgsql;

-- serial references, in a regular table (rolled back at the end): a
-- parallel query that reads a model from a temporary table hands its
-- workers a pointer into that table's TOAST storage, which they cannot
-- read (ERROR: cannot access temporary tables during a parallel operation)
SET max_parallel_workers_per_gather = 0;
CREATE TABLE ref AS SELECT
	(SELECT esmm_train(i, (SELECT cfg FROM sc) || '{"train_args": {"epochs": 1, "seed": 7, "batch_size": 256}}') FROM sc_train i) AS one,
	(SELECT esmm_train(i, (SELECT cfg FROM sc)) FROM sc_train i) AS three;

-- forced parallel plans
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SELECT ok(pg_temp.plan_of('SELECT esmm_train(i, (SELECT cfg FROM sc)) FROM sc_train i')
		  ~ 'Partial Aggregate.*Workers Launched: [12]|Workers Launched: [12].*Partial Aggregate',
	'esmm_train runs as a Partial Aggregate in launched parallel workers');
SELECT ok(pg_temp.plan_of('SELECT mmoe_train(i, ''{"inputs": {"defs": [{"name": "hour", "vocab_size": 24}], "groups": {"labels": ["click", "conversion"]}}, "model_args": {"task_structs": [[4], [4]], "num_experts": 2, "expert_layers": [4]}}'') FROM sc_train i')
		  ~ 'Partial Aggregate',
	'mmoe_train runs as a Partial Aggregate');

-- in memory: the workers encode, the leader sorts the rows canonically
SELECT is((SELECT esmm_model_fingerprint(esmm_train(i, (SELECT cfg FROM sc) || '{"train_args": {"epochs": 1, "seed": 7, "batch_size": 256}}')) FROM sc_train i),
		  (SELECT esmm_model_fingerprint(one) FROM ref),
	'a parallel in-memory esmm_train gives the serial model, bit for bit');

-- array features travel between processes too
CREATE TABLE sc_tags AS SELECT g AS id, g % 50 AS a,
	array[g % 7, g % 11, (g / 3) % 5] || CASE WHEN g % 4 = 0 THEN '{}'::int[] ELSE array[g % 13] END AS tags,
	(g % 3 = 0)::int AS click, (g % 9 = 0)::int AS conv
	FROM generate_series(1, 30000) g;
SET max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE tags_serial AS SELECT esmm_model_fingerprint(esmm_train(t, '{"ctr_label_name": "click", "cvr_label_name": "conv",
	"inputs": {"defs": [{"name": "a", "vocab_size": 50}, {"name": "tags", "type": "multi", "hash_buckets": 100}]}}')) AS f FROM sc_tags t;
SET max_parallel_workers_per_gather = 2;
SELECT is((SELECT esmm_model_fingerprint(esmm_train(t, '{"ctr_label_name": "click", "cvr_label_name": "conv",
	"inputs": {"defs": [{"name": "a", "vocab_size": 50}, {"name": "tags", "type": "multi", "hash_buckets": 100}]}}')) FROM sc_tags t),
		  (SELECT f FROM tags_serial),
	'with an array feature, too, a parallel in-memory esmm_train gives the serial model');

-- streaming: each participant trains its slice, the leader averages
CREATE TEMP TABLE par AS SELECT esmm_train(i, jsonb_set((SELECT cfg FROM sc) || '{"train_args": {"epochs": 1, "seed": 7, "batch_size": 256}}',
	'{train_args,mode}', '"streaming"')) AS m FROM sc_train i;
-- one pass of averaged models costs accuracy (each saw a third of the
-- rows; README "Scaling out" gives the figures): it must still learn
SELECT ok((SELECT ctr FROM pg_temp.sc_auc((SELECT m FROM par))) > 0.6,
	format('a parallel streaming pass (averaged models) learns: CTR AUC %s (one in-memory epoch: %s)',
		   round((SELECT ctr FROM pg_temp.sc_auc((SELECT m FROM par)))::numeric, 4),
		   round((SELECT ctr FROM pg_temp.sc_auc((SELECT one FROM ref)))::numeric, 4)));
SELECT is((SELECT (esmm_model_info(m)->'report'->>'rows_trained')::int FROM par), (SELECT count(*)::int FROM sc_train),
	'the averaged model counts every participant''s rows');

-- esmm_evaluate: parallel, and the same numbers as the metric aggregates
CREATE TEMP TABLE ev AS SELECT esmm_evaluate(t, (SELECT three FROM ref)) AS e FROM imp t WHERE split = 'test';
-- (batched and per-row scores may differ in the last float bit)
SELECT ok(abs((SELECT (e->>'click_auc')::float8 FROM ev) - (SELECT ctr FROM pg_temp.sc_auc((SELECT three FROM ref)))) < 1e-4
	AND (SELECT (e->>'rows')::int FROM ev) = (SELECT count(*)::int FROM sc_test),
	format('esmm_evaluate in parallel gives the AUC that auc(esmm_predict) gives: %s vs %s',
		   (SELECT e->>'click_auc' FROM ev), (SELECT ctr FROM pg_temp.sc_auc((SELECT three FROM ref)))));

-- esmm_fit on a table over twice esmm.max_memory: every row takes 48
-- bytes (5 ids, 3 floats, 2 labels, and its slots in the canonical order
-- and in the permutation).  The model in batches of 128 rows takes about
-- 560 kB (parameters, gradients, moments and a batch's workspace); from
-- the second epoch on, the config also carries the last epoch's model in
-- hex (about 470 kB) and its decoded weights and moments (about 270 kB),
-- which leaves windows of about 6,000 rows
SET esmm.max_memory = '1600kB';
CREATE TEMP TABLE sc_fit AS SELECT jsonb_set(cfg, '{train_args,batch_size}', '128') AS cfg FROM sc;
SELECT ok((SELECT count(*) * 48 FROM sc_train) >= 2 * 1600 * 1024, 'the training rows are over twice esmm.max_memory');
SELECT throws_like(format('SELECT esmm_train(i, %L) FROM sc_train i', jsonb_set((SELECT cfg FROM sc_fit), '{train_args,mode}', '"memory"')),
	'training buffer of % bytes exceeds esmm.max_memory (1600 kB) after % rows', 'so they do not fit in memory, but the model does');
SET max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE fit AS SELECT esmm_fit('sc_train', (SELECT cfg FROM sc_fit)) AS m;
SET max_parallel_workers_per_gather = 2;
CREATE TEMP TABLE fitp AS SELECT esmm_fit('sc_train', (SELECT cfg FROM sc_fit)) AS m;
RESET esmm.max_memory;
-- CTCVR AUC rests on about 170 test conversions: its standard error is
-- about 0.02, so it gets a bound that noise cannot break
SELECT ok(abs(f.ctr - r.ctr) < 0.01 AND abs(f.ctcvr - r.ctcvr) < 0.04,
	format('esmm_fit (streaming, 3 epochs) is within 0.01 CTR AUC of in-memory training: CTR %s vs %s, CTCVR %s vs %s',
		   round(f.ctr::numeric, 4), round(r.ctr::numeric, 4), round(f.ctcvr::numeric, 4), round(r.ctcvr::numeric, 4)))
FROM pg_temp.sc_auc((SELECT m FROM fit)) f, pg_temp.sc_auc((SELECT three FROM ref)) r;
SELECT ok(f.ctr > r.ctr - 0.01 AND f.ctcvr > r.ctcvr - 0.04,
	format('a parallel esmm_fit (averaged models) is no worse than 0.01 AUC below in-memory training: CTR %s vs %s, CTCVR %s vs %s',
		   round(f.ctr::numeric, 4), round(r.ctr::numeric, 4), round(f.ctcvr::numeric, 4), round(r.ctcvr::numeric, 4)))
FROM pg_temp.sc_auc((SELECT m FROM fitp)) f, pg_temp.sc_auc((SELECT three FROM ref)) r;
SELECT is((SELECT jsonb_array_length(esmm_model_info(m)->'report'->'history') FROM fit), 3,
	'esmm_fit records one history entry per epoch');
SELECT isnt((SELECT esmm_model_fingerprint(m) FROM fitp), (SELECT esmm_model_fingerprint(m) FROM fit),
	'esmm_fit''s passes ran in parallel (averaging changes the weights)');

-- warm start: the history goes on, the optimizer state travels with
-- keep_optimizer_state
SET max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE warm AS SELECT esmm_train(i, jsonb_set((SELECT cfg FROM sc) || '{"train_args": {"epochs": 1, "seed": 7, "batch_size": 256, "keep_optimizer_state": true}}',
	'{train_args,init_model}', to_jsonb((SELECT three FROM ref)))) AS m FROM sc_train i;
SELECT is((SELECT jsonb_agg(e->'epoch') FROM warm, jsonb_array_elements(esmm_model_info(m)->'report'->'history') e),
		  '[1, 2, 3, 4]'::jsonb, 'a warm start continues the earlier model''s history');
SELECT ok((SELECT length(m) FROM warm) > 2.5 * (SELECT length(three) FROM ref),
	'keep_optimizer_state stores both Adam moments in the model');

SELECT * FROM finish();
ROLLBACK;
