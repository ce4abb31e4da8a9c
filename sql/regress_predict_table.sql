-- esmm_predict_table and mmoe_predict_table: the output table they create,
-- the rows they write, and the wording of their errors.
SET client_min_messages = warning;
CREATE TABLE pt_rows AS
SELECT id, 'k' || id AS code, (id % 7)::int AS a, 'b' || (id % 3) AS b,
	CASE WHEN id % 10 = 0 THEN NULL ELSE (id % 11) / 10.0 END AS x,
	(id % 2)::int AS click, (id % 4 = 0)::int AS conv, ((id / 2) % 2 = 0) AS liked,
	CASE WHEN id % 9 = 0 THEN NULL ELSE (SELECT array_agg((id * g) % 13) FROM generate_series(1, id % 4) g) END AS tags
FROM generate_series(1, 5000) id;
CREATE TABLE pt_models AS
SELECT 'esmm'::text AS kind, esmm_train(r, '{"inputs": {"defs": [{"name": "a", "dtype": "int32", "vocab_size": 7},
		{"name": "b", "dtype": "string", "hash_buckets": 16}, {"name": "x", "dtype": "float64"},
		{"name": "tags", "hash_buckets": 13}]},
	"model_args": {"ctr_label_name": "click", "cvr_label_name": "conv", "ctr_dnn_units": [8, 1], "cvr_dnn_units": [8, 1]},
	"train_args": {"epochs": 1, "seed": 5}}') AS model FROM pt_rows r
UNION ALL
SELECT 'mmoe', mmoe_train(r, '{"inputs": {"defs": [{"name": "a", "dtype": "int32", "vocab_size": 7},
		{"name": "b", "dtype": "string", "hash_buckets": 16}, {"name": "x", "dtype": "float64"},
		{"name": "tags", "hash_buckets": 13}],
		"groups": {"labels": ["click", "liked"]}},
	"model_args": {"task_structs": [[4], [4]], "num_experts": 2, "expert_layers": [4],
		"task_output_act": "sigmoid", "use_wide": false},
	"train_args": {"epochs": 1, "seed": 5}}') FROM pt_rows r;

-- more rows than one batch (4096); the key keeps its type
SELECT esmm_predict_table((SELECT model FROM pt_models WHERE kind = 'esmm'), 'pt_rows', 'id', 'pt_scores');
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 'pt_scores'::regclass AND attnum > 0 ORDER BY attnum;
-- every row once, scored as esmm_predict scores it
SELECT count(*) AS rows, count(DISTINCT id) AS keys,
	max(greatest(abs(s.pctr - p.pctr), abs(s.pcvr - p.pcvr), abs(s.pctcvr - p.pctcvr))) < 1e-6 AS same_as_esmm_predict
FROM pt_scores s JOIN pt_rows r USING (id),
	LATERAL esmm_predict((SELECT model FROM pt_models WHERE kind = 'esmm'), r) p;

-- a text key, a schema-qualified output name, and a sub-model's NULLs
CREATE SCHEMA pt_out;
SELECT esmm_predict_table(esmm_export((SELECT model FROM pt_models WHERE kind = 'esmm'), 'ctr'),
	'pt_rows', 'code', 'pt_out.ctr_scores');
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 'pt_out.ctr_scores'::regclass AND attnum > 0 ORDER BY attnum;
SELECT count(*) FILTER (WHERE pctr IS NOT NULL) AS pctr, count(pcvr) AS pcvr, count(pctcvr) AS pctcvr
FROM pt_out.ctr_scores;
-- a view as the source, with a key it computes (the executor's memory for
-- each row, gone by the next): each key is its own row's, across batches
CREATE VIEW pt_rows_view AS SELECT 'v' || code AS vcode, * FROM pt_rows;
SELECT esmm_predict_table((SELECT model FROM pt_models WHERE kind = 'esmm'), 'pt_rows_view', 'vcode',
	'pt_out.view_scores');
SELECT count(*) AS joined, count(DISTINCT vcode) AS keys,
	max(abs(s.pctr - p.pctr)) < 1e-6 AS same_as_esmm_predict
FROM pt_out.view_scores s JOIN pt_rows_view r USING (vcode),
	LATERAL esmm_predict((SELECT model FROM pt_models WHERE kind = 'esmm'), r) p;

-- mmoe: one column per task, named after its label
SELECT mmoe_predict_table((SELECT model FROM pt_models WHERE kind = 'mmoe'), 'pt_rows', 'id', 'pt_mmoe');
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 'pt_mmoe'::regclass AND attnum > 0 ORDER BY attnum;
SELECT count(*) AS rows, max(greatest(abs(s.click - p[1]), abs(s.liked - p[2]))) < 1e-6 AS same_as_mmoe_predict
FROM pt_mmoe s JOIN pt_rows r USING (id),
	LATERAL mmoe_predict((SELECT model FROM pt_models WHERE kind = 'mmoe'), r) p;

-- an empty source: an empty output
CREATE TABLE pt_empty AS SELECT * FROM pt_rows WHERE false;
SELECT esmm_predict_table((SELECT model FROM pt_models WHERE kind = 'esmm'), 'pt_empty', 'id', 'pt_empty_scores');
SELECT count(*) FROM pt_empty_scores;

-- errors
SELECT esmm_predict_table((SELECT model FROM pt_models WHERE kind = 'esmm'), 'pt_rows', 'nope', 'pt_x');
SELECT esmm_predict_table((SELECT model FROM pt_models WHERE kind = 'esmm'), 'pt_rows', 'id', 'pt_scores');
SELECT esmm_predict_table((SELECT model FROM pt_models WHERE kind = 'mmoe'), 'pt_rows', 'id', 'pt_x');
SELECT mmoe_predict_table((SELECT model FROM pt_models WHERE kind = 'esmm'), 'pt_rows', 'id', 'pt_x');
SELECT esmm_predict_table((SELECT model FROM pt_models WHERE kind = 'esmm'), 'pt_nope', 'id', 'pt_x');
CREATE TABLE pt_narrow AS SELECT id, a FROM pt_rows;
SELECT esmm_predict_table((SELECT model FROM pt_models WHERE kind = 'esmm'), 'pt_narrow', 'id', 'pt_x');
SELECT to_regclass('pt_x') AS no_partial_output;
SELECT esmm_predict_table('\x00'::bytea, 'pt_rows', 'id', 'pt_x');

-- the caller's privileges: no SELECT on the source, no scoring
CREATE ROLE pt_reader;
GRANT USAGE, CREATE ON SCHEMA pt_out TO pt_reader;
GRANT SELECT ON pt_models TO pt_reader;
SET ROLE pt_reader;
SELECT esmm_predict_table((SELECT model FROM pt_models WHERE kind = 'esmm'), 'pt_rows', 'id', 'pt_out.stolen');
RESET ROLE;

-- an output table that gained an index on creation (an event trigger) is
-- written through INSERT, so the index sees every row; same scores
CREATE FUNCTION pt_index_new() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands()
           WHERE command_tag = 'CREATE TABLE' AND object_identity LIKE '%pt_indexed%' LOOP
    EXECUTE format('CREATE INDEX pt_indexed_id ON %s (id)', r.object_identity);
  END LOOP;
END $$;
CREATE EVENT TRIGGER pt_index_new ON ddl_command_end EXECUTE FUNCTION pt_index_new();
SELECT esmm_predict_table((SELECT model FROM pt_models WHERE kind = 'esmm'), 'pt_rows', 'id', 'pt_indexed');
DROP EVENT TRIGGER pt_index_new;
DROP FUNCTION pt_index_new();
SET enable_seqscan = off;
SELECT count(*) AS indexed_rows, count(*) FILTER (WHERE i.pctr = s.pctr AND i.pcvr = s.pcvr) AS same_scores
FROM pt_indexed i JOIN pt_scores s USING (id);
SELECT count(*) AS found_by_index FROM pt_indexed WHERE id = (SELECT min(id) FROM pt_rows);
RESET enable_seqscan;

DROP SCHEMA pt_out CASCADE;
DROP VIEW pt_rows_view;
DROP TABLE pt_rows, pt_models, pt_scores, pt_mmoe, pt_empty, pt_empty_scores, pt_narrow, pt_indexed;
DROP ROLE pt_reader;
