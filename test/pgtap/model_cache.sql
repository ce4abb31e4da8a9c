-- The backend's cache of decoded models (esmm.model_cache): esmm_predict
-- finds a model decoded by an earlier query, never serves a changed model
-- stale, releases its pin on an ERROR, and evicts down to a lowered size.
-- Uses the model test/pgtap/setup.sql trained and its stored scores.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
BEGIN;
SELECT plan(17);
SET LOCAL esmm.model_cache = '32MB';

-- v2: v1's config with another seed of as many digits, so the same length
CREATE TEMP TABLE models AS
	SELECT name, model FROM tap_models WHERE name = 'v1'
	UNION ALL
	SELECT 'v2', esmm_train(i, jsonb_set((SELECT cfg FROM tap_config), '{train_args,seed}', '41'))
	FROM imp i WHERE split = 'train';
CREATE TEMP TABLE sample AS SELECT * FROM imp WHERE split = 'test' ORDER BY id LIMIT 500;
CREATE TEMP TABLE current_model AS SELECT model FROM models WHERE name = 'v1';
CREATE TEMP TABLE stats AS SELECT 'start'::text AS at, * FROM esmm_model_cache();

-- how many of the sample's scores under the current model differ from
-- want (a table of id, pctr, pcvr, pctcvr), compared exactly
CREATE FUNCTION pg_temp.mismatches(want regclass) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
	EXECUTE format('SELECT count(*) FROM sample s CROSS JOIN LATERAL esmm_predict((SELECT model FROM current_model), s) p
		JOIN %s w ON w.id = s.id
		WHERE (p.pctr, p.pcvr, p.pctcvr) IS DISTINCT FROM (w.pctr, w.pcvr, w.pctcvr)', want) INTO n;
	RETURN n;
END $$;

SELECT is(length((SELECT model FROM models WHERE name = 'v1')),
	length((SELECT model FROM models WHERE name = 'v2')),
	'v1 and v2 have the same length, so only their bytes tell them apart');

-- the first query decodes, the next ones find it
SELECT is(pg_temp.mismatches('tap_scores'), 0::bigint, 'v1 scores as it did when setup.sql decoded it');
INSERT INTO stats SELECT 'v1 once', * FROM esmm_model_cache();
SELECT is(pg_temp.mismatches('tap_scores'), 0::bigint, 'v1 from the cache scores the same');
INSERT INTO stats SELECT 'v1 twice', * FROM esmm_model_cache();
SELECT is((SELECT misses FROM stats WHERE at = 'v1 once') - (SELECT misses FROM stats WHERE at = 'start'), 1::bigint,
	'the first query over v1 decodes it');
SELECT is((SELECT (hits, misses) FROM stats WHERE at = 'v1 twice'),
	(SELECT (hits + 1, misses) FROM stats WHERE at = 'v1 once'),
	'the second query finds it in the cache');
SELECT is(esmm_live_models(), 0::bigint, 'cached models are not counted as leaked');

-- the same bytes stored as another value are found by their bytes
CREATE TEMP TABLE copy_of_v1 AS SELECT model FROM current_model;
INSERT INTO stats SELECT 'before copy', * FROM esmm_model_cache();
SELECT is((SELECT count(*) FROM sample s, LATERAL esmm_predict((SELECT model FROM copy_of_v1), s) p), 500::bigint,
	'a copy of v1 scores');
SELECT is((SELECT misses FROM esmm_model_cache()), (SELECT misses FROM stats WHERE at = 'before copy'),
	'and is found by its bytes, not by where it is stored');

-- a changed model is never served stale: v2's own scores, decoded fresh
SET LOCAL esmm.model_cache = 0;
UPDATE current_model SET model = (SELECT model FROM models WHERE name = 'v2');
CREATE TEMP TABLE v2_fresh AS
	SELECT s.id, p.* FROM sample s, LATERAL esmm_predict((SELECT model FROM current_model), s) p;
SET LOCAL esmm.model_cache = '32MB';
SELECT is((SELECT count(*) FROM v2_fresh v JOIN tap_scores t USING (id) WHERE v.pctr <> t.pctr), 500::bigint,
	'v2 scores differ from v1 on every row');
SELECT is(pg_temp.mismatches('v2_fresh'), 0::bigint,
	'after the stored model changes to v2, the next query scores with v2');
SELECT is((SELECT entries FROM esmm_model_cache()), 1::bigint,
	'esmm.model_cache = 0 emptied the cache, which now holds v2 only');
UPDATE current_model SET model = (SELECT model FROM models WHERE name = 'v1');
SELECT is(pg_temp.mismatches('tap_scores'), 0::bigint, 'and back to v1');
SELECT is((SELECT entries FROM esmm_model_cache()), 2::bigint, 'v1, decoded again, joins v2');

-- an ERROR in the middle of a query releases its pin
SELECT throws_ok($$SELECT count(*) FROM (SELECT id, user_id, item_id, category, hour, device, user_age,
		CASE WHEN id = (SELECT max(id) FROM sample) THEN 'NaN'::float8 ELSE item_price END AS item_price,
		user_hist_ctr FROM sample) s, LATERAL esmm_predict((SELECT model FROM current_model), s) p$$,
	'22003', NULL, 'a NaN in the last row stops scoring with an ERROR');
SELECT is((SELECT pinned FROM esmm_model_cache()), 0::bigint, 'no entry stays pinned after the ERROR');

-- lowering esmm.model_cache evicts at once; a model larger than the
-- cache is decoded for its query only
SET LOCAL esmm.model_cache = '1MB';
SELECT is((SELECT (entries, bytes) FROM esmm_model_cache()), (0::bigint, 0::bigint),
	'esmm.model_cache = 1MB evicts both models (about 3 MB each)');
SELECT is(pg_temp.mismatches('tap_scores'), 0::bigint, 'a model larger than the cache still scores, uncached');

SELECT * FROM finish();
ROLLBACK;
