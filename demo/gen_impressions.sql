-- demo/gen_impressions.sql
--
-- Synthetic ad impressions with KNOWN click / conversion propensities, for
-- the esmm demo and benchmark.  Pure SQL (no extension needed), deterministic
-- for a given (seed, n_rows): every random number is a hash of
-- (seed, purpose, row/user/item id), never random().  Row i of a 1M-row table
-- is identical to row i of a 200k-row table with the same seed.
--
--   psql -v n_rows=200000 -v seed=42 -v table=impressions -f demo/gen_impressions.sql
--
-- Variables (all optional):
--   n_rows   number of impressions              (default 200000)
--   seed     any bigint below 9e15              (default 42)
--   table    table to (re)create, may be schema-qualified, unquoted
--                                               (default impressions)
--   n_users  size of the user population        (default 20000)
--   n_items  size of the item catalogue         (default 5000)
--
-- The model is described in demo/README_data.md.  The table is DROPPED and
-- recreated.  The script ends with a one-row summary: row count, click rate,
-- conversion rate among clicks and the test-split AUCs of the true
-- propensities (the ceiling any model can reach on this data).

\set ON_ERROR_STOP on

\if :{?n_rows}
\else
\set n_rows 200000
\endif
\if :{?seed}
\else
\set seed 42
\endif
\if :{?table}
\else
\set table impressions
\endif
\if :{?n_users}
\else
\set n_users 20000
\endif
\if :{?n_items}
\else
\set n_items 5000
\endif

SET client_min_messages = warning;
SET synchronous_commit = off;
SET jit = off;   -- the big expression makes JIT compile for ~1 s, for nothing

-- uniform in (0,1), 53 bits, from a hash of (x, s); s = seed*1000 + purpose.
CREATE OR REPLACE FUNCTION pg_temp.esmm_gen_u01(x bigint, s bigint)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT ((hashint8extended(x, s) & 9007199254740991)::double precision + 0.5)
          / 9007199254740992.0 $$;

-- standard normal (Box-Muller) from purposes s and s+500.
CREATE OR REPLACE FUNCTION pg_temp.esmm_gen_z(x bigint, s bigint)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT sqrt(-2.0 * ln(((hashint8extended(x, s) & 9007199254740991)::double precision + 0.5)
                          / 9007199254740992.0))
        * cos(2.0 * pi() * ((hashint8extended(x, s + 500) & 9007199254740991)::double precision + 0.5)
                          / 9007199254740992.0) $$;

CREATE OR REPLACE FUNCTION pg_temp.esmm_gen_sigmoid(x double precision)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT 1.0 / (1.0 + exp(-x)) $$;

-- Zipf-like rank in 1..n: continuous power law with density ~ x^-a on
-- [1, n+1], sampled by inverse CDF, floored (a != 1; a = 0.9 is used below:
-- rank 1 gets ~4% of the rows among 20000 users, ~5% among 5000 items).
CREATE OR REPLACE FUNCTION pg_temp.esmm_gen_zipf(u double precision, n int, a double precision)
RETURNS int LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT least(n, floor(power(1.0 + u * (power(n + 1.0, 1.0 - a) - 1.0), 1.0 / (1.0 - a))))::int $$;

\set s (:seed::bigint * 1000)

-- ---------------------------------------------------------------- categories
DROP TABLE IF EXISTS pg_temp.esmm_gen_cats;
CREATE TEMP TABLE esmm_gen_cats AS
SELECT c - 1 AS cat_idx,
       (ARRAY['electronics','books','fashion','shoes','beauty','home','garden',
              'toys','sports','outdoor','grocery','beverages','pets','baby',
              'health','jewelry','watches','music','movies','games','software',
              'office','automotive','tools','furniture','kitchen','travel',
              'tickets','art','phones'])[c] AS category,
       0.45 * pg_temp.esmm_gen_z(c, :s + 3) AS c1,               -- CTR effect
       0.6  * pg_temp.esmm_gen_z(c, :s + 1) AS c2,               -- CVR effect
       2.0 + 3.0 * pg_temp.esmm_gen_u01(c, :s + 2) AS price_mu   -- log-price centre
FROM generate_series(1, 30) c;
ANALYZE esmm_gen_cats;

-- --------------------------------------------------------------------- users
DROP TABLE IF EXISTS pg_temp.esmm_gen_users;
CREATE TEMP TABLE esmm_gen_users AS
SELECT uid,
       u,
       0.5 * u + 0.25 * pg_temp.esmm_gen_z(uid, :s + 11) AS u2,   -- CVR effect
       least(80.0, greatest(18.0, 36.0 + 11.0 * pg_temp.esmm_gen_z(uid, :s + 12))) AS age,
       0.15 * pg_temp.esmm_gen_z(uid, :s + 13) AS hist_noise,
       CASE WHEN pd < 0.40 THEN 'android' WHEN pd < 0.75 THEN 'ios'
            WHEN pd < 0.93 THEN 'web' ELSE 'tablet' END AS main_device
FROM (SELECT uid,
             0.6 * pg_temp.esmm_gen_z(uid, :s + 10) AS u,             -- CTR effect
             pg_temp.esmm_gen_u01(uid, :s + 14) AS pd
      FROM generate_series(1, :n_users) uid) x;
ALTER TABLE esmm_gen_users ADD PRIMARY KEY (uid);
ANALYZE esmm_gen_users;

-- --------------------------------------------------------------------- items
-- 5% of items form the "low CTR, high CVR" segment (i -= 1.5, i2 += 2).
DROP TABLE IF EXISTS pg_temp.esmm_gen_items;
CREATE TEMP TABLE esmm_gen_items AS
SELECT iid, cat_idx, seg,
       0.3  * pg_temp.esmm_gen_z(iid, :s + 21) - CASE WHEN seg THEN 1.5 ELSE 0 END AS i_res,
       0.3  * pg_temp.esmm_gen_z(iid, :s + 22) + CASE WHEN seg THEN 2.0 ELSE 0 END AS i2,
       0.7  * pg_temp.esmm_gen_z(iid, :s + 23) AS price_dev
FROM (SELECT iid, seg,
             CASE WHEN seg THEN 26 + floor(2 * uc)::int           -- travel, tickets
                  ELSE floor(28 * uc)::int + CASE WHEN uc >= 26.0 / 28 THEN 2 ELSE 0 END
             END AS cat_idx
      FROM (SELECT iid,
                   pg_temp.esmm_gen_u01(iid, :s + 24) < 0.05 AS seg,
                   pg_temp.esmm_gen_u01(iid, :s + 20) AS uc
            FROM generate_series(1, :n_items) iid) y) x;
ALTER TABLE esmm_gen_items ADD PRIMARY KEY (iid);
ANALYZE esmm_gen_items;

-- ---------------------------------------------------------------- impressions
DROP TABLE IF EXISTS :table;
CREATE TABLE :table (
    id             bigint PRIMARY KEY,
    user_id        int NOT NULL,
    item_id        int NOT NULL,
    category       text NOT NULL,
    hour           int NOT NULL,
    device         text NOT NULL,
    user_age       real,
    item_price     double precision NOT NULL,
    user_hist_ctr  real NOT NULL,
    click          int NOT NULL,
    conversion     int NOT NULL,
    true_ctr       double precision NOT NULL,
    true_cvr       double precision NOT NULL,
    split          text NOT NULL
);

INSERT INTO :table
SELECT id, user_id, item_id, category, hour, device, user_age, item_price,
       user_hist_ctr, click,
       CASE WHEN click = 1 AND u_conv < true_cvr THEN 1 ELSE 0 END AS conversion,
       true_ctr, true_cvr, split
FROM (
    -- stage 3: propensities and click
    SELECT j.*, t.true_ctr, t.true_cvr,
           CASE WHEN j.u_click < t.true_ctr THEN 1 ELSE 0 END AS click
    FROM (
        -- stage 2: join the user / item / category attributes
        SELECT r.id, r.user_id, r.item_id, c.category, r.hour, r.u_click, r.u_conv,
               CASE WHEN r.u_dev < 0.8 THEN us.main_device
                    ELSE (ARRAY['android','ios','web','tablet'])[1 + floor(4 * r.u_dev2)::int]
               END AS device,
               us.age,
               CASE WHEN r.u_agenull < 0.02 THEN NULL
                    ELSE (round(us.age * 10) / 10)::real END AS user_age,
               round(exp(c.price_mu + it.price_dev + 0.05 * r.z_price) * 100) / 100 AS item_price,
               (round(pg_temp.esmm_gen_sigmoid(-3.0 + us.u + us.hist_noise + 0.1 * r.z_hist)
                      * 10000) / 10000)::real AS user_hist_ctr,
               us.u, us.u2, c.c1 + it.i_res AS i, it.i2, c.c2,
               CASE WHEN r.u_split < 0.8 THEN 'train' ELSE 'test' END AS split
        FROM (
            -- stage 1: per-row uniforms / normals
            SELECT g.id,
                   pg_temp.esmm_gen_zipf(pg_temp.esmm_gen_u01(g.id, :s + 101), :n_users, 0.9) AS user_id,
                   pg_temp.esmm_gen_zipf(pg_temp.esmm_gen_u01(g.id, :s + 102), :n_items, 0.9) AS item_id,
                   floor(24 * pg_temp.esmm_gen_u01(g.id, :s + 103))::int AS hour,
                   pg_temp.esmm_gen_u01(g.id, :s + 104) AS u_dev,
                   pg_temp.esmm_gen_u01(g.id, :s + 105) AS u_dev2,
                   pg_temp.esmm_gen_u01(g.id, :s + 106) AS u_agenull,
                   pg_temp.esmm_gen_z(g.id, :s + 107)   AS z_price,
                   pg_temp.esmm_gen_z(g.id, :s + 108)   AS z_hist,
                   pg_temp.esmm_gen_u01(g.id, :s + 109) AS u_click,
                   pg_temp.esmm_gen_u01(g.id, :s + 110) AS u_conv,
                   pg_temp.esmm_gen_u01(g.id, :s + 111) AS u_split
            FROM generate_series(1, :n_rows::bigint) g(id)
            OFFSET 0
        ) r
        JOIN esmm_gen_users us ON us.uid = r.user_id
        JOIN esmm_gen_items it ON it.iid = r.item_id
        JOIN esmm_gen_cats c ON c.cat_idx = it.cat_idx
        OFFSET 0
    ) j
    CROSS JOIN LATERAL (
        SELECT pg_temp.esmm_gen_sigmoid(
                   -3.0 + j.u + j.i
                   + 0.3 * cos(2 * pi() * (j.hour - 20) / 24.0)                       -- h(hour)
                   + CASE j.device WHEN 'ios' THEN 0.10 WHEN 'android' THEN 0.0
                                   WHEN 'web' THEN -0.35 ELSE 0.25 END               -- d(device)
                   - 0.15 * (j.age - 36.0) / 11.0                                    -- age term
                   - 0.15 * (ln(j.item_price) - 3.5)                                 -- price term
               ) AS true_ctr,
               pg_temp.esmm_gen_sigmoid(
                   -2.1 + j.u2 + j.i2 + j.c2
                   + CASE j.device WHEN 'ios' THEN 0.05 WHEN 'android' THEN -0.10
                                   WHEN 'web' THEN 0.30 ELSE 0.10 END               -- d2(device)
                   - 0.50 * (ln(j.item_price) - 3.5)                                 -- price term
               ) AS true_cvr
        OFFSET 0
    ) t
) x
ORDER BY id;

\set cmt 'Synthetic ad impressions with known propensities for the esmm demo (demo/gen_impressions.sql, seed=' :seed ', n_rows=' :n_rows ', n_users=' :n_users ', n_items=' :n_items '). true_ctr = sigmoid(-3.0 + u(user) + c1(category) + i(item) + 0.3*cos(2pi(hour-20)/24) + d(device) - 0.15*(age-36)/11 - 0.15*(ln price - 3.5)); true_cvr = sigmoid(-2.1 + u2(user) + i2(item) + c2(category) + d2(device) - 0.5*(ln price - 3.5)); 5% of items (categories travel and tickets) have low CTR and high CVR (i -= 1.5, i2 += 2). click ~ Bernoulli(true_ctr); conversion = click AND Bernoulli(true_cvr); split = train (~80%) / test (~20%) by hash of id. user_hist_ctr is a noisy proxy of u; user_age is NULL for ~2% of rows. See demo/README_data.md.'
COMMENT ON TABLE :table IS :'cmt';

ANALYZE :table;

-- ------------------------------------------------------------------- summary
-- AUCs by the Mann-Whitney rank formula, ties counted half:
--   AUC = sum over distinct scores of pos(score) * (neg below + neg(score)/2) / (P*N)
\pset footer off
WITH s AS (
    SELECT 'ctr'::text AS m, true_ctr AS sc, click AS y
      FROM :table WHERE split = 'test'
    UNION ALL
    SELECT 'ctcvr', true_ctr * true_cvr, click * conversion
      FROM :table WHERE split = 'test'
    UNION ALL
    SELECT 'cvr_clicked', true_cvr, conversion
      FROM :table WHERE split = 'test' AND click = 1
), g AS (
    SELECT m, sc, sum(y)::float8 AS p, (count(*) - sum(y))::float8 AS n
      FROM s GROUP BY m, sc
), c AS (
    SELECT m, p, n,
           coalesce(sum(n) OVER (PARTITION BY m ORDER BY sc
                                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS nb
      FROM g
), auc AS (
    SELECT m, sum(p * (nb + 0.5 * n)) / nullif(sum(p) * sum(n), 0) AS auc
      FROM c GROUP BY m
), st AS (
    SELECT count(*) AS n_rows,
           count(*) FILTER (WHERE split = 'train') AS n_train,
           count(*) FILTER (WHERE split = 'test') AS n_test,
           avg(click) AS click_rate,
           sum(conversion)::float8 / nullif(sum(click), 0) AS cvr_among_clicks,
           avg(conversion) AS ctcvr_rate
      FROM :table
)
SELECT st.n_rows, st.n_train, st.n_test,
       round(st.click_rate, 4)                  AS click_rate,
       round(st.cvr_among_clicks::numeric, 4)   AS cvr_among_clicks,
       round(st.ctcvr_rate, 5)                  AS ctcvr_rate,
       round((SELECT auc FROM auc WHERE m = 'ctr')::numeric, 4)         AS true_auc_ctr,
       round((SELECT auc FROM auc WHERE m = 'ctcvr')::numeric, 4)       AS true_auc_ctcvr,
       round((SELECT auc FROM auc WHERE m = 'cvr_clicked')::numeric, 4) AS true_auc_cvr_clicked
FROM st;
