-- Table scoring: esmm_predict_table on the synthetic impressions (imp,
-- 100,000 rows) with the model test/pgtap/setup.sql trained.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
BEGIN;
SELECT plan(8);

CREATE TEMP TABLE m AS SELECT model FROM tap_models WHERE name = 'v1';

SELECT is(esmm_predict_table((SELECT model FROM m), 'imp', 'id', 'imp_scores_1'),
	(SELECT count(*) FROM imp), 'every source row is written once');
SELECT is((SELECT count(DISTINCT id) FROM imp_scores_1), (SELECT count(*) FROM imp),
	'one row per key');
SELECT ok((SELECT max(greatest(abs(s.pctr - t.pctr), abs(s.pcvr - t.pcvr), abs(s.pctcvr - t.pctcvr)))
		   FROM imp_scores_1 s JOIN tap_scores t USING (id)) < 1e-6,
	'table scores equal per-row esmm_predict scores to 1e-6');

-- the same scores with two threads
SET LOCAL esmm.threads = 2;
SELECT is(esmm_predict_table((SELECT model FROM m), 'imp', 'id', 'imp_scores_2'),
	(SELECT count(*) FROM imp), 'two threads write every row too');
SELECT ok((SELECT max(greatest(abs(a.pctr - b.pctr), abs(a.pcvr - b.pcvr), abs(a.pctcvr - b.pctcvr)))
		   FROM imp_scores_1 a JOIN imp_scores_2 b USING (id)) < 1e-6,
	'scores with 1 and 2 threads agree to 1e-6');
RESET esmm.threads;

-- a cancel between batches stops it within a batch's time, and the
-- output table goes with it (pgTAP's throws_ok cannot catch a cancel)
SET LOCAL statement_timeout = '60ms';
CREATE TEMP TABLE cancel_run AS SELECT * FROM tap_run_until_cancelled(
	'SELECT esmm_predict_table((SELECT model FROM tap_models WHERE name = ''v1''), ''imp'', ''id'', ''imp_scores_cancelled'')');
RESET statement_timeout;
SELECT is(outcome, 'cancelled', format('statement_timeout 60ms cancels table scoring, after %s s', round(seconds::numeric, 3)))
FROM cancel_run;
SELECT ok(seconds < 1.0, 'the cancel lands within a second') FROM cancel_run;
SELECT hasnt_table('imp_scores_cancelled', 'a cancelled scoring leaves no output table');

SELECT * FROM finish();
ROLLBACK;
