-- demo/load_census.sql
--
-- Loads the UCI census-income (KDD) test file -- 99,762 rows, 42 columns,
-- the data set of the MMoE paper (Ma et al., KDD 2018) -- into table
-- `census`, with the paper's two task labels, a third label for a
-- three-task model, and a deterministic 60/40 train/test split.
--
--   psql -v census_file=../shared/data/census-income/census-income.test.gz \
--        -f demo/load_census.sql
--
-- Variables (all optional):
--   census_file  path of census-income.test.gz, read by the CLIENT through
--                \copy ... FROM PROGRAM 'gzip -dc FILE' (a relative path is
--                relative to psql's working directory)
--                          (default ../shared/data/census-income/census-income.test.gz,
--                           i.e. run from the repository root)
--   split_seed   seed of the train/test hash, any bigint (default 42)
--
-- Needs no extension.  The table `census` is DROPPED and recreated.
-- The columns and labels are described in demo/README_data.md.
--
-- Table census:
--   id                bigint PK, the row number in file order (1..99762)
--   the 42 columns    named as in ../shared/data/README.md, trimmed;
--                     age, wage_per_hour, capital_gains, capital_losses,
--                     stock_dividends, num_emp, weeks_worked and
--                     instance_weight as double precision, every other one
--                     as text (the integer-coded det_ind_code, det_occ_code,
--                     own_or_self, vet_benefits and year too, so that they
--                     are categories).  '?' (not asked) is kept as a value.
--   income            1 when income_50k = '50000+.'          (task 1 of the paper)
--   never_married     1 when marital_stat = 'Never married'  (task 2 of the paper)
--   college           1 when education is at least a college (associate,
--                     bachelor's, master's, professional or doctoral) degree;
--                     the third task of the paper's second census task group
--   split             'train' (about 60%) / 'test' (about 40%), by a hash of id
--
-- Never use as features: instance_weight (a sampling weight), income_50k
-- (source of income), marital_stat (source of never_married) and, whenever
-- college is a task, education (source of college).

\set ON_ERROR_STOP on

\if :{?census_file}
\else
\set census_file ../shared/data/census-income/census-income.test.gz
\endif
\if :{?split_seed}
\else
\set split_seed 42
\endif

SET client_min_messages = warning;
SET synchronous_commit = off;

DROP TABLE IF EXISTS pg_temp.census_raw;
CREATE TEMP TABLE census_raw (
    id               bigserial,
    age              text,
    class_worker     text,
    det_ind_code     text,
    det_occ_code     text,
    education        text,
    wage_per_hour    text,
    hs_college       text,
    marital_stat     text,
    major_ind_code   text,
    major_occ_code   text,
    race             text,
    hisp_origin      text,
    sex              text,
    union_member     text,
    unemp_reason     text,
    full_or_part_emp text,
    capital_gains    text,
    capital_losses   text,
    stock_dividends  text,
    tax_filer_stat   text,
    region_prev_res  text,
    state_prev_res   text,
    det_hh_fam_stat  text,
    det_hh_summ      text,
    instance_weight  text,
    mig_chg_msa      text,
    mig_chg_reg      text,
    mig_move_reg     text,
    mig_same         text,
    mig_prev_sunbelt text,
    num_emp          text,
    fam_under_18     text,
    country_father   text,
    country_mother   text,
    country_self     text,
    citizenship      text,
    own_or_self      text,
    vet_question     text,
    vet_benefits     text,
    weeks_worked     text,
    year             text,
    income_50k       text
);

-- psql does not expand variables inside \copy, so the command is built as a
-- string and run from a variable.  The file name is single-quoted for the
-- shell, then the program is quoted for \copy (quotes doubled; \copy does not
-- take E'' strings, so not %L).  COPY assigns id in file order.
SELECT format('\copy census_raw (age, class_worker, det_ind_code, det_occ_code, education, '
              'wage_per_hour, hs_college, marital_stat, major_ind_code, major_occ_code, race, '
              'hisp_origin, sex, union_member, unemp_reason, full_or_part_emp, capital_gains, '
              'capital_losses, stock_dividends, tax_filer_stat, region_prev_res, state_prev_res, '
              'det_hh_fam_stat, det_hh_summ, instance_weight, mig_chg_msa, mig_chg_reg, '
              'mig_move_reg, mig_same, mig_prev_sunbelt, num_emp, fam_under_18, country_father, '
              'country_mother, country_self, citizenship, own_or_self, vet_question, vet_benefits, '
              'weeks_worked, year, income_50k) FROM PROGRAM ''%s'' WITH (FORMAT csv)',
              replace('gzip -dc ''' || replace(:'census_file', '''', '''\''''') || '''',
                      '''', '''''')) AS census_copy
\gset
:census_copy

DROP TABLE IF EXISTS census;
CREATE TABLE census AS
SELECT id,
       btrim(age)::double precision              AS age,
       btrim(class_worker)                       AS class_worker,
       btrim(det_ind_code)                       AS det_ind_code,
       btrim(det_occ_code)                       AS det_occ_code,
       btrim(education)                          AS education,
       btrim(wage_per_hour)::double precision    AS wage_per_hour,
       btrim(hs_college)                         AS hs_college,
       btrim(marital_stat)                       AS marital_stat,
       btrim(major_ind_code)                     AS major_ind_code,
       btrim(major_occ_code)                     AS major_occ_code,
       btrim(race)                               AS race,
       btrim(hisp_origin)                        AS hisp_origin,
       btrim(sex)                                AS sex,
       btrim(union_member)                       AS union_member,
       btrim(unemp_reason)                       AS unemp_reason,
       btrim(full_or_part_emp)                   AS full_or_part_emp,
       btrim(capital_gains)::double precision    AS capital_gains,
       btrim(capital_losses)::double precision   AS capital_losses,
       btrim(stock_dividends)::double precision  AS stock_dividends,
       btrim(tax_filer_stat)                     AS tax_filer_stat,
       btrim(region_prev_res)                    AS region_prev_res,
       btrim(state_prev_res)                     AS state_prev_res,
       btrim(det_hh_fam_stat)                    AS det_hh_fam_stat,
       btrim(det_hh_summ)                        AS det_hh_summ,
       btrim(instance_weight)::double precision  AS instance_weight,
       btrim(mig_chg_msa)                        AS mig_chg_msa,
       btrim(mig_chg_reg)                        AS mig_chg_reg,
       btrim(mig_move_reg)                       AS mig_move_reg,
       btrim(mig_same)                           AS mig_same,
       btrim(mig_prev_sunbelt)                   AS mig_prev_sunbelt,
       btrim(num_emp)::double precision          AS num_emp,
       btrim(fam_under_18)                       AS fam_under_18,
       btrim(country_father)                     AS country_father,
       btrim(country_mother)                     AS country_mother,
       btrim(country_self)                       AS country_self,
       btrim(citizenship)                        AS citizenship,
       btrim(own_or_self)                        AS own_or_self,
       btrim(vet_question)                       AS vet_question,
       btrim(vet_benefits)                       AS vet_benefits,
       btrim(weeks_worked)::double precision     AS weeks_worked,
       btrim(year)                               AS year,
       btrim(income_50k)                         AS income_50k,
       (btrim(income_50k) = '50000+.')::int      AS income,
       (btrim(marital_stat) = 'Never married')::int AS never_married,
       (btrim(education) IN ('Associates degree-occup /vocational',
                             'Associates degree-academic program',
                             'Bachelors degree(BA AB BS)',
                             'Masters degree(MA MS MEng MEd MSW MBA)',
                             'Prof school degree (MD DDS DVM LLB JD)',
                             'Doctorate degree(PhD EdD)'))::int AS college,
       -- uniform in (0,1) from a 53-bit hash of (id, split_seed)
       CASE WHEN ((hashint8extended(id, :split_seed::bigint) & 9007199254740991)::double precision + 0.5)
                 / 9007199254740992.0 < 0.6
            THEN 'train' ELSE 'test' END         AS split
FROM census_raw
ORDER BY id;

ALTER TABLE census ADD PRIMARY KEY (id);
ALTER TABLE census ALTER COLUMN income SET NOT NULL,
                   ALTER COLUMN never_married SET NOT NULL,
                   ALTER COLUMN college SET NOT NULL,
                   ALTER COLUMN split SET NOT NULL;
DROP TABLE pg_temp.census_raw;
ANALYZE census;

RESET client_min_messages;

SELECT count(*)                                          AS n_rows,
       count(*) FILTER (WHERE split = 'train')           AS n_train,
       count(*) FILTER (WHERE split = 'test')            AS n_test,
       round(avg(income), 4)                             AS income_rate,
       round(avg(never_married), 4)                      AS never_married_rate,
       round(avg(college), 4)                            AS college_rate,
       round(avg(income) FILTER (WHERE split = 'train'), 4) AS income_rate_train,
       round(avg(income) FILTER (WHERE split = 'test'), 4)  AS income_rate_test
FROM census;
