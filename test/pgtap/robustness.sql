-- Robustness (SPEC §4, §7): a cancel or statement_timeout stops every
-- long-running entry point within a second of the next batch boundary,
-- without leaking memory or threads, and the worker threads block every
-- signal so that the backend's main thread gets them.  Runs on the
-- synthetic impressions (imp, 100,000 rows) and the demo config.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
BEGIN;
SELECT plan(21);

CREATE FUNCTION pg_temp.proc_status(field text) RETURNS bigint LANGUAGE sql AS $$
	SELECT substring(pg_read_file('/proc/self/status') FROM field || ':\s*(\d+)')::bigint $$;
CREATE FUNCTION pg_temp.memory_context_bytes() RETURNS bigint LANGUAGE sql AS $$
	SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts $$;

-- configurations that would run for many seconds: 50 epochs
CREATE TEMP TABLE long_cfg AS
SELECT jsonb_set(cfg, '{train_args,epochs}', '50') AS esmm,
       jsonb_build_object('inputs', jsonb_build_object('defs', cfg->'inputs'->'defs'),
                          'model_args', '{"num_experts": 4, "expert_layers": [32], "task_structs": [[16], [16]]}'::jsonb,
                          'train_args', '{"epochs": 50, "batch_size": 512}'::jsonb) AS mmoe
FROM tap_config;
CREATE TEMP TABLE runs (what text, timeout_ms int, outcome text, seconds float8);

-- statement_timeout holds for each statement.  The scan and encoding of
-- 100k rows take 0.2-0.4 s (about 1 s when the machine is busy), so 2.5 s
-- lands in the epochs (or windows, or passes), and 50 epochs would take 15 s
-- or more; each must stop within a second of its timeout.
-- In the query, %1$L is the ESMM config and %2$L the MMoE config.
PREPARE cancelled(text, int, text) AS
	INSERT INTO runs SELECT $1, $2, r.* FROM long_cfg,
		tap_run_until_cancelled(format($3, esmm, mmoe)) r;
SET LOCAL statement_timeout = '2500ms';
EXECUTE cancelled('esmm_train', 2500, 'SELECT esmm_train(i, %1$L) FROM imp i');
SET LOCAL esmm.threads = 2;
EXECUTE cancelled('esmm_train, 2 threads', 2500, 'SELECT esmm_train(i, %1$L) FROM imp i');
SET LOCAL esmm.threads = 1;
-- (streaming makes one pass, at about 1M rows/s: 100 copies of the rows make it long)
EXECUTE cancelled('esmm_train, streaming', 2500, 'SELECT esmm_train(i, jsonb_set(%1$L, ''{train_args,mode}'', ''"streaming"'')) FROM imp i, generate_series(1, 100)');
EXECUTE cancelled('mmoe_train', 2500, 'SELECT mmoe_train(i, %2$L) FROM imp i');
SET LOCAL statement_timeout = '4000ms';
EXECUTE cancelled('esmm_fit', 4000, 'SELECT esmm_fit(''imp'', %1$L)');
-- and during the scan, before any batch
SET LOCAL statement_timeout = '30ms';
EXECUTE cancelled('esmm_train, in the scan', 30, 'SELECT esmm_train(i, %1$L) FROM imp i');
RESET statement_timeout;

SELECT is(outcome, 'cancelled', format('statement_timeout %s ms cancels %s', timeout_ms, what))
FROM runs ORDER BY what;
SELECT ok(seconds < timeout_ms / 1000.0 + 1.0,
	format('%s stops %s s after its timeout', what, round((seconds - timeout_ms / 1000.0)::numeric, 3)))
FROM runs ORDER BY what;

-- No leak: after one cancelled training with 2 threads to warm the caches
-- and the thread pool, three more leave the memory contexts and the thread
-- count where they were, and no core model alive.  Each training holds 4 MB
-- of rows in memory contexts, and a core model (parameters, gradients,
-- Adam's moments) that is malloc'd; resident memory cannot show a leaked
-- model, since it reuses what the row buffers freed.
SET LOCAL esmm.threads = 2;
SET LOCAL statement_timeout = '2500ms';
EXECUTE cancelled('warm-up', 2500, 'SELECT esmm_train(i, %1$L) FROM imp i');
RESET statement_timeout;
CREATE TEMP TABLE before AS
SELECT pg_temp.memory_context_bytes() AS ctx,
       pg_temp.proc_status('Threads') AS threads;
SET LOCAL statement_timeout = '2500ms';
EXECUTE cancelled('leak 1', 2500, 'SELECT esmm_train(i, %1$L) FROM imp i');
EXECUTE cancelled('leak 2', 2500, 'SELECT esmm_train(i, %1$L) FROM imp i');
EXECUTE cancelled('leak 3', 2500, 'SELECT esmm_train(i, %1$L) FROM imp i');
RESET statement_timeout;
SELECT is((SELECT count(*) FROM runs WHERE what LIKE 'leak %' AND outcome = 'cancelled'), 3::bigint,
	'three more trainings cancelled');
SELECT ok(pg_temp.memory_context_bytes() - ctx < 1048576,
	format('memory contexts grew by %s bytes over three cancels', pg_temp.memory_context_bytes() - ctx)) FROM before;
SELECT is(esmm_live_models(), 0::bigint,
	'no core model outlives a cancelled training (they are malloc''d, outside memory contexts)');
SELECT is(pg_temp.proc_status('Threads'), threads, format('still %s threads after three cancels', threads)) FROM before;

-- Signals: the backend has its OpenMP pool (one thread besides itself at
-- esmm.threads = 2), and every pool thread blocks SIGHUP, SIGINT, SIGQUIT,
-- SIGUSR1, SIGUSR2, SIGALRM, SIGTERM and SIGURG (the latch), so that the
-- kernel delivers them to the main thread, whose handlers set the flags
-- that CHECK_FOR_INTERRUPTS reads
CREATE TEMP TABLE thread_masks AS
SELECT t::int AS tid,
       ('x' || lpad(substring(pg_read_file('/proc/self/task/' || t || '/status') FROM 'SigBlk:\s*([0-9a-f]+)'), 16, '0'))::bit(64)::bigint AS blocked
FROM pg_ls_dir('/proc/self/task') t;
SELECT ok((SELECT count(*) FROM thread_masks WHERE tid <> pg_backend_pid()) >= 1,
	format('the backend runs %s pool thread(s)', (SELECT count(*) FROM thread_masks WHERE tid <> pg_backend_pid())));
SELECT is((SELECT count(*) FROM thread_masks
		   WHERE tid <> pg_backend_pid()
		     AND blocked & x'0000000000406a07'::bigint <> x'0000000000406a07'::bigint), 0::bigint,
	'every pool thread blocks the signals PostgreSQL handles');
SELECT is((SELECT blocked & x'0000000000004002'::bigint FROM thread_masks WHERE tid = pg_backend_pid()), 0::bigint,
	'the main thread still takes SIGINT and SIGTERM');

-- esmm.blas_kernel names the kernels OpenBLAS chose: the ones the
-- server's environment asks for (OPENBLAS_CORETYPE, as on this project's
-- machines), or else the CPU's own; it is read-only.  The environment is
-- the postmaster's: a backend's own /proc/self/environ is overwritten by
-- its process title.
CREATE TEMP TABLE server_env AS
SELECT substring(encode(pg_read_binary_file('/proc/' || split_part(pg_read_file('postmaster.pid'), E'\n', 1) || '/environ'), 'escape')
				 FROM 'OPENBLAS_CORETYPE=([A-Za-z0-9]+)') AS coretype;
SELECT CASE WHEN coretype IS NULL
	THEN ok(current_setting('esmm.blas_kernel') ~ '^[A-Za-z0-9]+$',
			format('esmm.blas_kernel (%s) names the kernels OpenBLAS chose for this CPU', current_setting('esmm.blas_kernel')))
	ELSE is(lower(current_setting('esmm.blas_kernel')), lower(coretype),
			format('esmm.blas_kernel (%s) follows OPENBLAS_CORETYPE in the server''s environment', current_setting('esmm.blas_kernel')))
	END FROM server_env;
SELECT throws_ok('SET esmm.blas_kernel = ''Haswell''', '55P02',
	'parameter "esmm.blas_kernel" cannot be changed', 'esmm.blas_kernel is read-only');

SELECT * FROM finish();
ROLLBACK;
