-- Behaviour of mmoe_train and mmoe_predict (MMoE v2, seed 002) on a
-- synthetic table whose labels follow known rules:
--   click  ~ Bernoulli(sigmoid(1.6 * [a and b agree in parity] - 0.8 + 0.5 x))
--   like   ~ Bernoulli(sigmoid(c < 5 ? 1.2 : -1.2))
--   spend  =  2 x + U(-0.25, 0.25)                    (a regression task)
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
BEGIN;
SELECT plan(19);

CREATE TEMP TABLE mm AS
SELECT id, a, b, c, x, split,
	(u1 < 1 / (1 + exp(-(CASE WHEN a % 2 = b_code % 2 THEN 0.8 ELSE -0.8 END + 0.5 * x))))::int AS click,
	(u2 < 1 / (1 + exp(-(CASE WHEN c < 5 THEN 1.2 ELSE -1.2 END))))::int AS "like",
	2 * x + (u3 - 0.5) / 2 AS spend
FROM (
	SELECT id, a, 'b' || b_code AS b, b_code, c, x, u1, u2, u3,
		CASE WHEN id % 5 = 0 THEN 'test' ELSE 'train' END AS split
	FROM (
		SELECT id,
			(abs(hashint8extended(id, 1)) % 20)::int AS a,
			(abs(hashint8extended(id, 2)) % 8)::int AS b_code,
			(abs(hashint8extended(id, 3)) % 10)::int AS c,
			(abs(hashint8extended(id, 4)) % 1000000) / 250000.0 - 2.0 AS x,
			(abs(hashint8extended(id, 5)) % 1000000) / 1000000.0 AS u1,
			(abs(hashint8extended(id, 6)) % 1000000) / 1000000.0 AS u2,
			(abs(hashint8extended(id, 7)) % 1000000) / 1000000.0 AS u3
		FROM generate_series(1, 6000) id) r) s;

CREATE TEMP TABLE mcfg AS SELECT jsonb_build_object(
	'inputs', jsonb_build_object(
		'defs', jsonb_build_array(
			jsonb_build_object('name', 'a', 'dtype', 'int32', 'vocab_size', 20, 'embedding_dim', 4),
			jsonb_build_object('name', 'b', 'dtype', 'string', 'hash_buckets', 50, 'embedding_dim', 4),
			jsonb_build_object('name', 'c', 'dtype', 'int32', 'vocab_size', 10, 'embedding_dim', 4),
			jsonb_build_object('name', 'x', 'dtype', 'float64')),
		'groups', jsonb_build_object('wide', jsonb_build_array('a', 'b'),
			'mmoe', jsonb_build_array('a', 'b', 'c', 'x'),
			'labels', jsonb_build_array('click', 'like', 'spend'))),
	'model_args', jsonb_build_object('task_structs', '[[16, 1], [16, 1], [16, 1]]'::jsonb,
		'task_types', '["binary", "binary", "regression"]'::jsonb,
		'task_hidden_act', 'relu', 'task_output_act', 'sigmoid',
		'num_experts', 4, 'expert_layers', '[16]'::jsonb, 'expert_act', 'relu',
		'use_wide', true, 'wide_type', 'FM', 'wide_width', 4, 'feature_cross', 2, 'output_cross', 0),
	'train_args', jsonb_build_object('batch_size', 64, 'epochs', 4, 'seed', 7,
		'optimizer', jsonb_build_object('type', 'adam', 'args', jsonb_build_object('learning_rate', 0.005)))) AS cfg;

CREATE TEMP TABLE mmodel AS
	SELECT mmoe_train(t, (SELECT cfg FROM mcfg)) AS model FROM mm t WHERE split = 'train';
CREATE TEMP TABLE mscores AS
	SELECT t.id, t.click, t."like", t.spend, mmoe_predict((SELECT model FROM mmodel), t) AS p
	FROM mm t WHERE split = 'test';

-- training
CREATE TEMP TABLE mh AS
	SELECT (e->>'epoch')::int AS epoch, (e->>'train_loss')::float8 AS loss
	FROM mmodel, jsonb_array_elements(esmm_model_info(model)->'report'->'history') e;
SELECT is((SELECT count(*)::int FROM mh), 4, 'one history entry per epoch');
SELECT ok((SELECT loss FROM mh WHERE epoch = 4) < 0.8 * (SELECT loss FROM mh WHERE epoch = 1),
	format('the training loss goes down: %s then %s',
		(SELECT round(loss::numeric, 4) FROM mh WHERE epoch = 1),
		(SELECT round(loss::numeric, 4) FROM mh WHERE epoch = 4)));

-- scoring
SELECT ok(bool_and(cardinality(p) = 3), 'one score per task, in label order') FROM mscores;
SELECT ok(bool_and(p[1] BETWEEN 0 AND 1 AND p[2] BETWEEN 0 AND 1),
	'binary tasks score in [0,1]') FROM mscores;
SELECT ok(min(p[3]) < -1 AND max(p[3]) > 1,
	format('the regression task has no output activation: %s .. %s',
		round(min(p[3])::numeric, 2), round(max(p[3])::numeric, 2))) FROM mscores;

-- quality against the rules: the best AUCs are about 0.74 (click) and
-- 0.77 (like); the noise of spend has variance 1/48
SELECT ok(auc(p[1], click) > 0.68, format('click AUC %s', round(auc(p[1], click)::numeric, 4))) FROM mscores;
SELECT ok(auc(p[2], "like") > 0.72, format('like AUC %s', round(auc(p[2], "like")::numeric, 4))) FROM mscores;
SELECT ok(mse(p[3], spend) < 0.1, format('spend MSE %s', round(mse(p[3], spend)::numeric, 4))) FROM mscores;

-- the model says what it is
SELECT is(esmm_model_info(model)->>'kind', 'mmoe', 'esmm_model_info knows an mmoe model') FROM mmodel;
SELECT is(esmm_model_info(model)->'mmoe'->'tasks'->2->>'type', 'regression',
	'the third task is a regression') FROM mmodel;

-- determinism
SELECT is((SELECT esmm_model_fingerprint(mmoe_train(t, (SELECT cfg FROM mcfg) || '{"train_args": {"epochs": 1}}'))
		   FROM mm t WHERE split = 'train'),
		  (SELECT esmm_model_fingerprint(mmoe_train(t, (SELECT cfg FROM mcfg) || '{"train_args": {"epochs": 1}}'))
		   FROM mm t WHERE split = 'train'),
	'the same seed gives the same model, durations aside');

-- every feature_cross trains and scores: the wide part wired in six ways
CREATE TEMP TABLE crosses AS
SELECT fc, oc, mmoe_train(t, (SELECT cfg FROM mcfg) || jsonb_build_object(
		'model_args', (SELECT cfg->'model_args' FROM mcfg) || jsonb_build_object('feature_cross', fc, 'output_cross', oc),
		'train_args', (SELECT cfg->'train_args' FROM mcfg))) AS model
FROM generate_series(0, 5) fc, generate_series(0, 1) oc, mm t
WHERE t.split = 'train'
GROUP BY fc, oc;
SELECT is(count(DISTINCT esmm_model_fingerprint(model))::int, 12,
	'feature_cross 0-5 x output_cross 0-1 give twelve different models') FROM crosses;
SELECT ok(bool_and(ok), 'every cross scores finite numbers, binary tasks in [0,1]')
FROM (SELECT fc, oc, bool_and(p[1] BETWEEN 0 AND 1 AND p[2] BETWEEN 0 AND 1
	AND p[3] > -1e6 AND p[3] < 1e6) AS ok
	FROM crosses, LATERAL (SELECT mmoe_predict(crosses.model, t) AS p FROM mm t WHERE t.split = 'test' AND t.id % 50 = 0) s
	GROUP BY fc, oc) q;
-- the click hangs on an a x b interaction that the FM models directly:
-- with its output in the task towers (3, 5) the best cross reaches the
-- rule's own AUC within 4 epochs; the others get there more slowly
CREATE TEMP TABLE cross_auc AS
SELECT fc, oc, auc(s.p[1], s.click) AS auc_click
FROM crosses, LATERAL (SELECT mmoe_predict(crosses.model, t) AS p, t.click FROM mm t WHERE t.split = 'test') s
GROUP BY fc, oc;
SELECT ok(min(auc_click) > 0.63 AND max(auc_click) > truth - 0.02,
	format('every cross learns the click: AUC %s .. %s, the rule''s %s',
		round(min(auc_click)::numeric, 4), round(max(auc_click)::numeric, 4), round(truth::numeric, 4)))
FROM cross_auc, (SELECT auc(1 / (1 + exp(-(CASE WHEN a % 2 = substr(b, 2)::int % 2 THEN 0.8 ELSE -0.8 END + 0.5 * x))), click) AS truth
	FROM mm WHERE split = 'test') t
GROUP BY truth;
SELECT is((SELECT (esmm_model_info(model)->'mmoe'->>'task_input_width')::int FROM crosses WHERE fc = 2 AND oc = 0),
		  (SELECT (esmm_model_info(model)->'mmoe'->>'task_input_width')::int FROM crosses WHERE fc = 0 AND oc = 0) + 8,
	'feature_cross 2 puts the wide features (two embeddings of 4) into each task tower');
SELECT is((SELECT (esmm_model_info(model)->'mmoe'->>'task_input_width')::int FROM crosses WHERE fc = 3 AND oc = 0),
		  (SELECT (esmm_model_info(model)->'mmoe'->>'task_input_width')::int FROM crosses WHERE fc = 0 AND oc = 0) + 1,
	'feature_cross 3 puts the FM output into each task tower');

-- one shared gate: MoE
SELECT is((SELECT (esmm_model_info(mmoe_train(t, (SELECT cfg FROM mcfg) || jsonb_build_object(
		'model_args', (SELECT cfg->'model_args' FROM mcfg) || '{"share_gates": true}',
		'train_args', (SELECT cfg->'train_args' FROM mcfg) || '{"epochs": 1}')))->'mmoe'->>'gates')::int
	FROM mm t WHERE split = 'train'), 1, 'share_gates gives one gate for every task');

-- scores are the same in a parallel plan, where workers decode the model
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
CREATE TABLE mmoe_par AS SELECT t.*, s.p FROM mm t JOIN mscores s USING (id);
CREATE TABLE mmoe_par_model AS SELECT model FROM mmodel;
ANALYZE mmoe_par;
CREATE FUNCTION pg_temp.plan_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text; out text := '';
BEGIN
	FOR r IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP out := out || r || E'\n'; END LOOP;
	RETURN out;
END $$;
SELECT matches(pg_temp.plan_of('SELECT count(*) FROM mmoe_par t WHERE mmoe_predict((SELECT model FROM mmoe_par_model), t) <> t.p'),
	'Gather', 'scoring can run in a parallel plan');
SELECT is((SELECT count(*) FROM mmoe_par t WHERE mmoe_predict((SELECT model FROM mmoe_par_model), t) <> t.p),
	0::bigint, 'scores do not depend on the plan or how the model is passed');

SELECT * FROM finish();
ROLLBACK;
