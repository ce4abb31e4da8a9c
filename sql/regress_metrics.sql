-- The metric aggregates: against scikit-learn on 20000 rows with heavy
-- ties, serial and in forced parallel plans, then the edge cases.
SET client_min_messages = notice;

-- reference rows: begin
-- 20000 rows from arithmetic on the row number (no random(), no hash, so
-- every platform builds the same table).  Scores have two decimals (heavy
-- ties), a few are exactly 0 or 1 (clipped by logloss); a few rows have a
-- NULL score, label, group or target; groups have ~13 rows, except 100
-- groups of one row (one class, left out by gauc).
CREATE TABLE metrics_rows AS
SELECT i AS id,
       CASE WHEN i % 1013 = 0 THEN NULL ELSE s END::float8 AS score,
       CASE WHEN i % 1013 = 0 THEN NULL ELSE s END::real AS score_r,
       CASE WHEN i % 1019 = 0 THEN NULL ELSE w < 0.1 + 0.6 * s END AS click,
       CASE WHEN i % 1019 = 0 THEN NULL ELSE (w < 0.1 + 0.6 * s)::int END AS click_i,
       g AS grp,
       'user-' || g AS grp_t,
       round(s * 5 + ((i * 13) % 7 - 3) / 10.0, 1)::float8 AS pred,
       CASE WHEN i % 1031 = 0 THEN NULL ELSE ((i * 37) % 101) / 20.0 END::float8 AS target
FROM (SELECT i,
             CASE WHEN i % 997 = 0 THEN 0 WHEN i % 991 = 0 THEN 1
                  ELSE round(0.6 * ((i * 7919) % 10007) / 10007 + 0.4 * ((i * 104729 + 13) % 9973) / 9973, 2)
             END AS s,
             ((i * 2654435761) % 1000003) / 1000003.0 AS w,
             CASE WHEN i % 1021 = 0 THEN NULL WHEN i > 19900 THEN i ELSE (i * 31) % 1500 END AS g
      FROM generate_series(1::bigint, 20000) i) r;
-- reference rows: end
ANALYZE metrics_rows;

-- scikit-learn's values for these rows, from test/reference_metrics.py
-- (roc_auc_score, log_loss of scores clipped to [1e-7, 1 - 1e-7],
-- accuracy_score of score > threshold, per-group roc_auc_score weighted by
-- the group's rows, mean_squared_error, mean_absolute_error; pcoc with numpy)
CREATE TABLE metrics_reference (reference text PRIMARY KEY, value float8);
INSERT INTO metrics_reference VALUES
	('auc', 0.648643903579124),
	('auc_real', 0.648643903579124),
	('logloss', 0.6912702477240565),
	('logloss_real', 0.6912702481345369),
	('bacc', 0.604949403867348),
	('bacc_035', 0.5355174832181144),
	('bacc_real', 0.604949403867348),
	('pcoc', 1.2509395383843451),
	('gauc', 0.6097018240009474),
	('gauc_text', 0.6097018240009467),
	('mse', 3.206568740303288),
	('rmse', 1.7906894594829355),
	('mae', 1.4732846203893697);

-- every metric and overload over the table, a row (metric, reference, value) each
CREATE VIEW metrics_all AS
SELECT m.*
FROM (SELECT auc(score, click) AS auc_bool, auc(score, click_i) AS auc_int,
             auc(score_r, click) AS auc_real,
             gauc(score, click, grp) AS gauc_bool_int8, gauc(score, click_i, grp) AS gauc_int_int8,
             gauc(score, click, grp_t) AS gauc_bool_text, gauc(score, click_i, grp_t) AS gauc_int_text,
             logloss(score, click) AS logloss_bool, logloss(score, click_i) AS logloss_int,
             logloss(score_r, click_i) AS logloss_real,
             binary_accuracy(score, click) AS bacc_bool, binary_accuracy(score, click_i) AS bacc_int,
             binary_accuracy(score, click, 0.35) AS bacc_bool_035,
             binary_accuracy(score, click_i, 0.35) AS bacc_int_035,
             binary_accuracy(score_r, click) AS bacc_real,
             pcoc(score, click) AS pcoc_bool, pcoc(score, click_i) AS pcoc_int,
             mse(pred, target) AS mse, rmse(pred, target) AS rmse, mae(pred, target) AS mae
      FROM metrics_rows) a,
     LATERAL (VALUES ('auc(score, bool)', 'auc', a.auc_bool),
                     ('auc(score, int)', 'auc', a.auc_int),
                     ('auc(real score, bool)', 'auc_real', a.auc_real),
                     ('gauc(score, bool, bigint)', 'gauc', a.gauc_bool_int8),
                     ('gauc(score, int, bigint)', 'gauc', a.gauc_int_int8),
                     ('gauc(score, bool, text)', 'gauc_text', a.gauc_bool_text),
                     ('gauc(score, int, text)', 'gauc_text', a.gauc_int_text),
                     ('logloss(score, bool)', 'logloss', a.logloss_bool),
                     ('logloss(score, int)', 'logloss', a.logloss_int),
                     ('logloss(real score, int)', 'logloss_real', a.logloss_real),
                     ('binary_accuracy(score, bool)', 'bacc', a.bacc_bool),
                     ('binary_accuracy(score, int)', 'bacc', a.bacc_int),
                     ('binary_accuracy(score, bool, 0.35)', 'bacc_035', a.bacc_bool_035),
                     ('binary_accuracy(score, int, 0.35)', 'bacc_035', a.bacc_int_035),
                     ('binary_accuracy(real score, bool)', 'bacc_real', a.bacc_real),
                     ('pcoc(score, bool)', 'pcoc', a.pcoc_bool),
                     ('pcoc(score, int)', 'pcoc', a.pcoc_int),
                     ('mse(pred, target)', 'mse', a.mse),
                     ('rmse(pred, target)', 'rmse', a.rmse),
                     ('mae(pred, target)', 'mae', a.mae)) m(metric, reference, value);

-- serial: every metric equals scikit-learn's to 1e-9
SET max_parallel_workers_per_gather = 0;
EXPLAIN (COSTS OFF) SELECT * FROM metrics_all;
CREATE TABLE metrics_serial AS SELECT * FROM metrics_all;
SELECT s.metric, abs(s.value - r.value) < 1e-9 AS equals_sklearn
FROM metrics_serial s JOIN metrics_reference r USING (reference)
ORDER BY s.metric;

-- parallel: partial states in two workers, serialized, combined by the
-- leader; the same values as the serial run to 1e-9
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT * FROM metrics_all;
CREATE TABLE metrics_parallel AS SELECT * FROM metrics_all;
SELECT p.metric, abs(p.value - s.value) < 1e-9 AS equals_serial,
       abs(p.value - r.value) < 1e-9 AS equals_sklearn
FROM metrics_parallel p JOIN metrics_serial s USING (metric) JOIN metrics_reference r ON r.reference = p.reference
ORDER BY p.metric;

-- grouped, so that the leader combines a state per group from each worker
EXPLAIN (COSTS OFF)
SELECT grp % 7 AS part, auc(score, click) AS auc, gauc(score, click, grp_t) AS gauc,
       logloss(score, click) AS logloss, binary_accuracy(score, click) AS bacc,
       pcoc(score, click) AS pcoc, rmse(pred, target) AS rmse
FROM metrics_rows WHERE grp IS NOT NULL GROUP BY 1;
CREATE TABLE metrics_grouped_parallel AS
SELECT grp % 7 AS part, auc(score, click) AS auc, gauc(score, click, grp_t) AS gauc,
       logloss(score, click) AS logloss, binary_accuracy(score, click) AS bacc,
       pcoc(score, click) AS pcoc, rmse(pred, target) AS rmse
FROM metrics_rows WHERE grp IS NOT NULL GROUP BY 1;
RESET parallel_leader_participation;
SET max_parallel_workers_per_gather = 0;
SELECT p.part,
       abs(p.auc - s.auc) < 1e-9 AND abs(p.gauc - s.gauc) < 1e-9 AND
       abs(p.logloss - s.logloss) < 1e-9 AND abs(p.bacc - s.bacc) < 1e-9 AND
       abs(p.pcoc - s.pcoc) < 1e-9 AND abs(p.rmse - s.rmse) < 1e-9 AS equals_serial
FROM metrics_grouped_parallel p
     FULL JOIN (SELECT grp % 7 AS part, auc(score, click) AS auc, gauc(score, click, grp_t) AS gauc,
                       logloss(score, click) AS logloss, binary_accuracy(score, click) AS bacc,
                       pcoc(score, click) AS pcoc, rmse(pred, target) AS rmse
                FROM metrics_rows WHERE grp IS NOT NULL GROUP BY 1) s USING (part)
ORDER BY p.part;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

-- the catalog: every metric aggregate is parallel safe, has a combine
-- function with serialization, and it and its support functions have a comment
SELECT a.aggfnoid::regprocedure AS aggregate, p.proparallel AS parallel,
       a.aggcombinefn <> 0 AND a.aggserialfn <> 0 AND a.aggdeserialfn <> 0 AS combines,
       a.aggfinalmodify AS final_modify,
       obj_description(a.aggfnoid, 'pg_proc') IS NOT NULL AND
       obj_description(a.aggtransfn, 'pg_proc') IS NOT NULL AND
       obj_description(a.aggfinalfn, 'pg_proc') IS NOT NULL AND
       obj_description(a.aggcombinefn, 'pg_proc') IS NOT NULL AND
       obj_description(a.aggserialfn, 'pg_proc') IS NOT NULL AND
       obj_description(a.aggdeserialfn, 'pg_proc') IS NOT NULL AS commented,
       (SELECT bool_and(f.proparallel = 's')
        FROM pg_proc f
        WHERE f.oid IN (a.aggtransfn, a.aggfinalfn, a.aggcombinefn, a.aggserialfn, a.aggdeserialfn)) AS support_safe
FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
WHERE p.proname IN ('auc', 'gauc', 'logloss', 'binary_accuracy', 'pcoc', 'mse', 'rmse', 'mae')
  AND p.pronamespace = 'public'::regnamespace
ORDER BY 1::text;

DROP VIEW metrics_all;
DROP TABLE metrics_rows, metrics_reference, metrics_serial, metrics_parallel, metrics_grouped_parallel;

-- ------------------------------------------------------------ edge cases

-- by hand: auc pos {0.4, 0.8, 0.3} neg {0.1, 0.4}: (1.5 + 2 + 1) / 6;
-- gauc: groups 1 and 2 each have auc 1, group 3 one class;
-- logloss -(ln 0.4 + ln 0.8 + ln 0.3 + ln 0.9 + ln 0.6) / 5; accuracy 3 of 5
-- at thresholds 0.5, 0.35 and 0; pcoc (0.1 + 0.4 + 0.4 + 0.8 + 0.3) / 3
CREATE TABLE tiny (s float8, l boolean, g bigint);
INSERT INTO tiny VALUES (0.1, false, 1), (0.4, true, 1), (0.4, false, 2), (0.8, true, 2), (0.3, true, 3);
SELECT auc(s, l) = 4.5 / 6 AS auc, gauc(s, l, g) = 1 AS gauc,
       abs(logloss(s, l) + (ln(0.4) + ln(0.8) + ln(0.3) + ln(0.9) + ln(0.6)) / 5) < 1e-15 AS logloss,
       binary_accuracy(s, l) = 0.6 AS bacc, binary_accuracy(s, l, 0.35) = 0.6 AS bacc_035,
       binary_accuracy(s, l, 0.0) = 0.6 AS bacc_0, abs(pcoc(s, l) - 2.0 / 3) < 1e-15 AS pcoc
FROM tiny;
-- a score equal to the threshold is not above it, as in Keras
SELECT binary_accuracy(0.5, true) AS positive_at_half, binary_accuracy(0.5, false) AS negative_at_half;
-- gauc weights each group by its rows: group 1 (auc 0.75, 3 rows), group 2 (auc 0, 2 rows)
SELECT gauc(s, l, g) = (3 * 0.75 + 2 * 0) / 5 AS weighted
FROM (VALUES (0.9, true, 1), (0.1, false, 1), (0.9, false, 1), (0.2, true, 2), (0.3, false, 2)) v(s, l, g);
-- regression: errors -2, 0, 4
SELECT mse(p, t) = 20.0 / 3 AS mse, rmse(p, t) = sqrt(20.0 / 3) AS rmse, mae(p, t) = 2 AS mae
FROM (VALUES (1.0, 3.0), (2, 2), (5, 1)) v(p, t);

-- rows with a NULL in any argument are skipped: the same values as without
-- them (FILTER keeps out the rows whose NULL is in a column the metric
-- does not read)
SELECT auc(s, l) FILTER (WHERE g IS NOT NULL AND th IS NOT NULL) = (SELECT auc(s, l) FROM tiny) AS auc,
       gauc(s, l, g) FILTER (WHERE th IS NOT NULL) = (SELECT gauc(s, l, g) FROM tiny) AS gauc,
       logloss(s, l) FILTER (WHERE g IS NOT NULL AND th IS NOT NULL) = (SELECT logloss(s, l) FROM tiny) AS logloss,
       binary_accuracy(s, l, th) FILTER (WHERE g IS NOT NULL) = (SELECT binary_accuracy(s, l) FROM tiny) AS bacc,
       pcoc(s, l) FILTER (WHERE g IS NOT NULL AND th IS NOT NULL) = (SELECT pcoc(s, l) FROM tiny) AS pcoc
FROM (SELECT s, l, g, 0.5 AS th FROM tiny
      UNION ALL VALUES (NULL, true, 1, 0.5), (0.9, NULL, 1, 0.5), (0.9, false, NULL, 0.5), (0.9, false, 1, NULL)) v(s, l, g, th);
SELECT mse(p, t) = 20.0 / 3 AS mse, mae(p, t) = 2 AS mae
FROM (VALUES (1.0, 3.0), (2, 2), (5, 1), (NULL, 1), (7, NULL)) v(p, t);

-- labels: boolean, bigint, int, smallint; scores: double, real, numeric
SELECT auc(s, l::int) AS int4, auc(s, l::int::smallint) AS int2, auc(s, l::int::bigint) AS int8,
       auc(s::real, l) AS real_score, auc(s::numeric, l) AS numeric_score,
       gauc(s, l::int, g::int) AS int4_group, gauc(s, l, g::text) AS text_group,
       logloss(s::real, l::int) = logloss(s::real, l) AS logloss_int,
       binary_accuracy(s, l::int::smallint, 0.35::real) AS bacc_int2
FROM tiny;

-- one class: auc and gauc are NULL, with a notice; so is pcoc with no positive
SELECT auc(s, l) FROM (VALUES (0.1, true), (0.2, true)) v(s, l);
SELECT auc(s, l) FROM (VALUES (0.1, 0), (0.2, 0), (0.3, 0)) v(s, l);
SELECT gauc(s, l, g) FROM (VALUES (0.1, true, 'a'), (0.2, false, 'b'), (0.3, false, 'b')) v(s, l, g);
SELECT pcoc(s, l) FROM (VALUES (0.1, false), (0.2, false)) v(s, l);
-- one class is still fine for the mean metrics
SELECT abs(logloss(s, l) + ln(0.9)) < 1e-15 AS logloss, binary_accuracy(s, l) AS bacc FROM (VALUES (0.1, false)) v(s, l);

-- no rows, or only NULL rows: NULL, without a notice
SELECT auc(s, l) IS NULL AS auc, gauc(s, l, 1) IS NULL AS gauc, logloss(s, l) IS NULL AS logloss,
       binary_accuracy(s, l) IS NULL AS bacc, binary_accuracy(s, l, 0.3) IS NULL AS bacc_threshold,
       pcoc(s, l) IS NULL AS pcoc, mse(s, s) IS NULL AS mse, rmse(s, s) IS NULL AS rmse,
       mae(s, s) IS NULL AS mae
FROM tiny WHERE false;
SELECT auc(s, l) IS NULL AS auc, gauc(s, l, 'g') IS NULL AS gauc, logloss(s, l) IS NULL AS logloss,
       pcoc(s, l) IS NULL AS pcoc, mse(s, l::int) IS NULL AS mse
FROM (VALUES (NULL::float8, true), (0.5, NULL)) v(s, l);

-- an infinite error is an infinite mse, not an error
SELECT mse(p, t), rmse(p, t), mae(p, t) FROM (VALUES ('Infinity'::float8, 1.0), (1, 2)) v(p, t);

-- invalid labels
SELECT auc(0.5, 2);
SELECT gauc(0.5, -1, 7);
SELECT logloss(s, l) FROM (VALUES (0.5, 1), (0.4, 3)) v(s, l);
SELECT binary_accuracy(0.5, 2, 0.5);
SELECT pcoc(0.5, 5::smallint);

-- NaN
SELECT auc(s, l) FROM (VALUES ('NaN'::float8, true), (0.2, false)) v(s, l);
SELECT gauc('NaN', true, 'u');
SELECT logloss('NaN', 1);
SELECT binary_accuracy('NaN'::real, true);
SELECT binary_accuracy(0.5, true, 'NaN');
SELECT pcoc('NaN', 1);
SELECT mse('NaN', 1);
SELECT rmse(1, 'NaN');
SELECT mae(1, 'NaN');

DROP TABLE tiny;
