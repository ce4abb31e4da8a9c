-- After pg_dump and restore into a new database: the stored model scores
-- exactly as it did before the dump.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
BEGIN;
SELECT plan(3);
SELECT ok((SELECT count(*) FROM tap_scores) > 0, 'the scores were restored');
SELECT is((SELECT count(*) FROM imp i JOIN tap_scores s USING (id),
			LATERAL esmm_predict((SELECT model FROM tap_models WHERE name = 'v1'), i) p
		   WHERE p.pctr IS DISTINCT FROM s.pctr OR p.pcvr IS DISTINCT FROM s.pcvr
			  OR p.pctcvr IS DISTINCT FROM s.pctcvr),
		  0::bigint, 'the restored model gives the same predictions');
SELECT is((SELECT esmm_model_info(model)->>'kind' FROM tap_models), 'esmm', 'the restored model decodes');
SELECT * FROM finish();
ROLLBACK;
