--
-- esmm_config_check(jsonb): the configuration parser (SPEC §3).
--
-- Every error names the key and the value, with the accepted values in a
-- HINT; the wording is part of the interface.
--
\set VERBOSITY default

-- Seed 000's whole template, exactly as written: the pipeline keys are
-- ignored under one NOTICE, early_stopping holds out 10% of the rows.
CREATE TEMP TABLE seed (cfg jsonb);
INSERT INTO seed VALUES ($cfg$
{
    "num_workers": 1,
    "node_affin": "only_cpu",
    "job_detail": {
        "model_input_config_file": "${PACK_PATH}$/model_input_demo.json",
        "load_model_from": "${DATA_PATH}$/saved_model/esmm",
        "model_args": {
            "cvr_dnn_units": [
                64,
                32,
                1
            ],
            "cvr_dnn_hidden_act": "lrelu",
            "cvr_dnn_use_bias": true,
            "cvr_dnn_use_bn": false,
            "cvr_dnn_dropout": 0,
            "cvr_dnn_l1_reg": 0.003,
            "cvr_dnn_l2_reg": 0.005,
            "ctr_dnn_units": [
                64,
                32,
                1
            ],
            "ctr_dnn_hidden_act": "lrelu",
            "ctr_dnn_use_bias": true,
            "ctr_dnn_use_bn": false,
            "ctr_dnn_dropout": 0,
            "ctr_dnn_l1_reg": 0.003,
            "ctr_dnn_l2_reg": 0.005,
            "ctr_label_name": "is_kg",
            "ctcvr_label_name": "is_dapan"
        },
        "train_data_args": {
            "data_file": "${PACK_PATH}$/part-00099",
            "file_type": "csv",
            "field_delim": ",",
            "with_headers": false,
            "headers": "neg_sample,logid,moment_id,is_click,age_level,sex,degree,income_level,city_level,is_kg,log_days,net_day,is_dapan,os_type,square_clicknum_1d,square_clicknum_3d,square_clicknum_7d,square_clicknum_15d,square_fig_clicknum_1d,square_fig_clicknum_3d,square_fig_clicknum_7d,square_fig_clicknum_15d,square_video_clicknum_1d,square_video_clicknum_3d,square_video_clicknum_7d,square_video_clicknum_15d,square_fig_viewtime_1d,square_fig_viewtime_3d,square_fig_viewtime_7d,square_fig_viewtime_15d,square_video_viewtime_1d,square_video_viewtime_3d,square_video_viewtime_7d,square_video_viewtime_15d,total_viewcnt_1d,total_viewcnt_3d,total_viewcnt_7d,total_viewcnt_15d,total_viewtime_1d,total_viewtime_3d,total_viewtime_7d,total_viewtime_15d,total_commentcnt_1d,total_commentcnt_3d,total_commentcnt_7d,total_commentcnt_15d,total_favorcnt_1d,total_favorcnt_3d,total_favorcnt_7d,total_favorcnt_15d,cate_1_7d,cate_1_15d,cate_1_30d,cate_1_90d,cate_2_7d,cate_2_15d,cate_2_30d,cate_2_90d,cate_3_7d,cate_3_15d,cate_3_30d,cate_3_90d,group_90d,publisher_90d,moment_type,pics_num,video_duration,freshness,validity_level,is_artist_self,cate_first,cate_second,cate_third,group_id,publisher_id,moment_type_n,pics_num_n,video_duration_n,freshness_n,validity_level_n,is_artist_self_n,cate_first_n,cate_second_n,cate_third_n,group_id_n,publisher_id_n"
        },
        "val_data_args": {
            "data_file": "${PACK_PATH}$/part-00099",
            "file_type": "csv",
            "field_delim": ",",
            "with_headers": false,
            "headers": "neg_sample,logid,moment_id,is_click,age_level,sex,degree,income_level,city_level,is_kg,log_days,net_day,is_dapan,os_type,square_clicknum_1d,square_clicknum_3d,square_clicknum_7d,square_clicknum_15d,square_fig_clicknum_1d,square_fig_clicknum_3d,square_fig_clicknum_7d,square_fig_clicknum_15d,square_video_clicknum_1d,square_video_clicknum_3d,square_video_clicknum_7d,square_video_clicknum_15d,square_fig_viewtime_1d,square_fig_viewtime_3d,square_fig_viewtime_7d,square_fig_viewtime_15d,square_video_viewtime_1d,square_video_viewtime_3d,square_video_viewtime_7d,square_video_viewtime_15d,total_viewcnt_1d,total_viewcnt_3d,total_viewcnt_7d,total_viewcnt_15d,total_viewtime_1d,total_viewtime_3d,total_viewtime_7d,total_viewtime_15d,total_commentcnt_1d,total_commentcnt_3d,total_commentcnt_7d,total_commentcnt_15d,total_favorcnt_1d,total_favorcnt_3d,total_favorcnt_7d,total_favorcnt_15d,cate_1_7d,cate_1_15d,cate_1_30d,cate_1_90d,cate_2_7d,cate_2_15d,cate_2_30d,cate_2_90d,cate_3_7d,cate_3_15d,cate_3_30d,cate_3_90d,group_90d,publisher_90d,moment_type,pics_num,video_duration,freshness,validity_level,is_artist_self,cate_first,cate_second,cate_third,group_id,publisher_id,moment_type_n,pics_num_n,video_duration_n,freshness_n,validity_level_n,is_artist_self_n,cate_first_n,cate_second_n,cate_third_n,group_id_n,publisher_id_n"
        },
        "train_args": {
            "mw_com": "RING",
            "train_type": "compile_fit",
            "batch_size": 512,
            "epochs": 1,
            "optimizer": {
                "type": "adam",
                "args": {
                    "learning_rate": 0.001
                }
            },
            "losses": "bce",
            "metrics": {
                "is_kg": [
                    "auc",
                    "bacc"
                ],
                "is_dapan": [
                    "auc",
                    "bacc"
                ]
            },
            "early_stopping": {
                "monitor": "is_kg_auc",
                "mode": "max",
                "patience": 5,
                "min_delta": 0.001
            },
            "train_speed_logger": {
                "every_batches": 1000,
                "with_metrics": true
            },
            "tensorboard": {}
        },
        "eval_args": {
            "batch_size": 256,
            "metrics": {
                "is_kg": [
                    "auc",
                    "bacc"
                ],
                "is_dapan": [
                    "auc",
                    "bacc"
                ]
            }
        }
    }
}
$cfg$);
SELECT jsonb_pretty(esmm_config_check(cfg)) FROM seed;

-- The normalized document reads back to itself.
SET client_min_messages = warning;
SELECT esmm_config_check(esmm_config_check(cfg)) = esmm_config_check(cfg) AS stable
FROM seed;
RESET client_min_messages;

-- Flattened: the model_args and train_args keys at the top level, every
-- default filled in.
SELECT jsonb_pretty(esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy"}'));
WITH c AS MATERIALIZED (
  SELECT esmm_config_check('{"ctr_label_name": "click", "ctcvr_label_name": "click_buy",
                             "ctr_dnn_units": [16], "cvr_dnn_units": [32, 8, 1],
                             "batch_size": 64, "epochs": 3, "optimizer": "sgd", "seed": 7,
                             "shuffle": false, "on_bad_row": "skip"}') AS n)
SELECT n #> '{model_args,ctr_dnn_units}' AS ctr_units, n #> '{model_args,cvr_dnn_units}' AS cvr_units,
       n #> '{model_args,ctcvr_label_name}' AS ctcvr, n -> 'train_args' AS train_args
FROM c;

-- Flattened inside job_detail, with the inputs there too.
WITH c AS MATERIALIZED (
  SELECT esmm_config_check('{"num_workers": 2, "job_detail": {"ctr_label_name": "click",
                             "cvr_label_name": "buy", "epochs": 2, "losses": ["mse"],
                             "inputs": {"exclude": ["id", "ts"], "default_hash_buckets": 1000}}}') AS n)
SELECT n -> 'inputs' AS inputs, n #> '{train_args,epochs}' AS epochs, n #> '{train_args,losses}' AS losses
FROM c;

-- Sections at the top level, without job_detail; model_input_config as the
-- seeds' model input file would hold it (labels marked is_label).
CREATE TEMP TABLE sections AS SELECT esmm_config_check('{
  "model_args": {"ctr_label_name": "click", "cvr_label_name": "buy", "name": "esmm_v2",
                 "ctr_dnn_units": [32, 16], "l2_reg_embedding": 0.0001,
                 "loss_weights": [1, 2]},
  "train_args": {"batch_size": 256, "losses": ["bce", "bce"],
                 "optimizer": {"type": "rmsprop", "args": {"learning_rate": 0.01, "rho": 0.8, "momentum": 0.5}},
                 "metrics": {"buy": ["logloss", "auc", "auc"]},
                 "early_stopping": {"monitor": "buy_logloss", "patience": 2},
                 "validation_fraction": 0.2},
  "eval_args": {"batch_size": 1024},
  "model_input_config": {"version": 2, "inputs": {
    "defs": [{"name": "user_id", "dtype": "int64", "hash_buckets": 100000, "embedding_dim": 16},
             {"name": "age", "dtype": "float32", "normalize": "log", "null_indicator": true},
             {"name": "city", "dtype": "string"},
             {"name": "tags", "dtype": "int32", "type": "multi", "vocab_size": 500},
             {"name": "price", "type": "numeric"},
             {"name": "device"},
             {"name": "click", "dtype": "int32", "is_label": true},
             {"name": "buy", "dtype": "bool", "is_label": true},
             {"name": "like", "dtype": "int32", "is_label": true}],
    "groups": {"ctr": ["user_id", "age", "city"], "cvr": ["user_id", "tags", "price"]},
    "default_embedding_dim": 4}}}') AS n;
SELECT jsonb_pretty(n -> 'inputs') FROM sections;
SELECT n -> 'name' AS name, n #> '{model_args,ctr_dnn_units}' AS ctr_units,
       n #> '{model_args,l2_reg_embedding}' AS l2_emb, n #> '{model_args,loss_weights}' AS loss_weights
FROM sections;
SELECT jsonb_pretty(n -> 'train_args') AS train_args, n -> 'eval_args' AS eval_args FROM sections;

-- Per-layer arrays: a short hidden_act leaves the rest without activation,
-- entries past the hidden layers are unused, use_bn reaches the output layer,
-- dropout never does; null means "none" / 0 as in seed 002.
SELECT m -> 'ctr_dnn_units' AS units, m -> 'ctr_dnn_hidden_act' AS act,
       m -> 'ctr_dnn_use_bn' AS bn, m -> 'ctr_dnn_dropout' AS dropout,
       m -> 'cvr_dnn_hidden_act' AS cvr_act, m -> 'cvr_dnn_use_bn' AS cvr_bn,
       m -> 'cvr_dnn_dropout' AS cvr_dropout, m -> 'cvr_dnn_l1_reg' AS cvr_l1
FROM (SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
        "ctr_dnn_units": [128, 64, 32], "ctr_dnn_hidden_act": ["relu", "tanh"],
        "ctr_dnn_use_bn": [true, false, false, true], "ctr_dnn_dropout": [0.5, 0, 0.25, 0.9, 0.1],
        "cvr_dnn_units": [8, 1], "cvr_dnn_hidden_act": [null, "gelu", "swish"],
        "cvr_dnn_use_bn": true, "cvr_dnn_dropout": 0.3, "cvr_dnn_l1_reg": null}') -> 'model_args' AS m
      OFFSET 0) s;

-- 16 layers at most, counting the appended output layer.
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "ctr_dnn_units": [8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8],
                           "cvr_dnn_units": [8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 1.0]}')
       -> 'model_args' -> 'cvr_dnn_units' AS cvr_units;

-- Optimizers: each type takes Keras' arguments, the others keep Keras' defaults.
SELECT esmm_config_check(format('{"ctr_label_name": "click", "cvr_label_name": "buy", "optimizer": %s}', o)::jsonb)
       #> '{train_args,optimizer}' AS optimizer
FROM (VALUES ('"adam"'), ('"adagrad"'), ('{"type": "sgd", "args": {"momentum": 0.9}}'),
             ('{"type": "adagrad", "args": {"initial_accumulator_value": 0.5, "epsilon": 1e-6}}'),
             ('{"args": {"learning_rate": 0.01, "beta_2": 0.99}}')) v(o);

-- losses as an object by label; early_stopping mode auto; on_bad_row in train_args.
SELECT t -> 'losses' AS losses, t -> 'early_stopping' AS early_stopping,
       t -> 'validation_fraction' AS holdout, t -> 'on_bad_row' AS on_bad_row
FROM (SELECT esmm_config_check('{"ctr_label_name": "click", "ctcvr_label_name": "ctcvr",
        "train_args": {"losses": {"click": "mse", "ctcvr": "mse"}, "on_bad_row": "skip",
                       "early_stopping": {"monitor": "ctcvr_auc", "mode": "auto"}}}') -> 'train_args' AS t
      OFFSET 0) s;

-- A key both nested and flattened is accepted when both values agree.
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy", "batch_size": 128,
                           "train_args": {"batch_size": 128}}') #> '{train_args,batch_size}' AS batch_size;

-- Seed 002's pipeline layout and train_args/eval_args, with ESMM's model_args.
SELECT esmm_config_check(cfg) -> 'train_args' AS train_args FROM (VALUES ('{
    "num_workers": 1, "node_affin": "only_gpu", "pod_affin": "spread", "timeout": "100d",
    "job_detail": {
        "model_input_config_file": "${PACK_PATH}$/model_input_config.json",
        "model_args": {"ctr_label_name": "is_click", "cvr_label_name": "is_favor"},
        "train_data_args": {"data_file": "${PACK_PATH}$/dataset/train_data.csv", "field_delim": ",", "with_headers": true},
        "val_data_args": {"data_file": "${PACK_PATH}$/dataset/vali_data.csv", "field_delim": ",", "with_headers": true},
        "test_data_args": {"data_file": "${PACK_PATH}$/dataset/test_data.csv", "field_delim": ",", "with_headers": true},
        "train_args": {"batch_size": 256, "epochs": 3, "num_samples": 2938797, "num_val_samples": 1567359,
            "optimizer": {"type": "adam", "args": {"learning_rate": 0.001}}, "losses": "bce",
            "metrics": {"is_click": ["auc", "bacc"], "is_favor": ["auc", "bacc"]},
            "train_speed_logger": {"every_batches": 1000, "with_metrics": true},
            "tensorboard": {"profile_batch": [200, 300]},
            "early_stopping": {"monitor": "val_loss", "mode": "min", "patience": 3, "min_delta": 0.001}},
        "eval_args": {"batch_size": 256, "metrics": {"is_click": ["auc", "bacc"], "is_favor": ["auc", "bacc"]},
            "output_file": "$EXPORT_PATH$/mmoev2-fm-2-res.json"}}}'::jsonb)) v(cfg);

--
-- Errors.
--

-- not an object
SELECT esmm_config_check('[{"ctr_label_name": "click"}]');
SELECT esmm_config_check('"ctr_label_name"');

-- unknown keys, at every level
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy", "batch_sise": 64}');
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,num_worker}', '1')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,model_args,ctr_dnn_unit}', '[64]')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,learning_rate}', '0.1')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,eval_args,epochs}', '1')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,optimizer,lr}', '0.1')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,optimizer,args,lr}', '0.1')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,optimizer,args,momentum}', '0.9')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,early_stopping,baseline}', '0.5')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,train_speed_logger,every_seconds}', '10')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,metrics,play_num1}', '["auc"]')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,model_args,job_detail}', '{}')) FROM seed;
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy", "job_detail": {"job_detail": {}}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy", "inputs": {"def": []}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "inputs": {"defs": [{"name": "a", "vocab": 10}]}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "inputs": {"groups": {"ctr": ["a"], "wide": ["b"]}}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "model_input_config": {"version": 2, "input": {}}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "losses": {"click": "bce", "conversion": "bce"}}');

-- a key given twice with two values
SELECT esmm_config_check(jsonb_set(cfg, '{batch_size}', '256')) FROM seed;
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "inputs": {"exclude": ["id"]}, "model_input_config": {"inputs": {}}}');

-- wrong types
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail}', '"esmm"')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,model_args}', '[]')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,batch_size}', '"512"')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,epochs}', '1.5')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,train_speed_logger,with_metrics}', '1')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,model_args,ctr_dnn_units}', '64')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,model_args,cvr_dnn_units}', '[64, "32"]')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,model_args,cvr_dnn_use_bias}', '"true"')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,model_args,ctr_dnn_use_bn}', '[true, "false"]')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,model_args,ctr_label_name}', '["is_kg"]')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,optimizer}', '5')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,metrics}', '["auc"]')) FROM seed;
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy", "inputs": []}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy", "inputs": {"defs": {"name": "a"}}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy", "inputs": {"defs": ["a"]}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "inputs": {"defs": [{"name": "a", "null_indicator": "yes"}]}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy", "inputs": {"groups": {"ctr": "a"}}}');

-- out-of-range values
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,batch_size}', '0')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,eval_args,batch_size}', '2000000')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,epochs}', '0')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,optimizer,args,learning_rate}', '0')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,optimizer,args,beta_1}', '1')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,optimizer,args,epsilon}', '-1e-7')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,early_stopping,patience}', '-1')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,early_stopping,min_delta}', '-0.001')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,train_speed_logger,every_batches}', '-5')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,model_args,ctr_dnn_l1_reg}', '-0.003')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,model_args,cvr_dnn_units}', '[64, 0, 1]')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,model_args,cvr_dnn_units}', '[]')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,model_args,cvr_dnn_units}',
                                   '[8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8]')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,model_args,loss_weights}', '[1]')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,model_args,loss_weights}', '[0, 0]')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,model_args,name}',
                                   to_jsonb(repeat('m', 64)))) FROM seed;
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy", "seed": -1}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy", "seed": 1e30}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy", "validation_fraction": 0.95}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "validation_fraction": 0, "early_stopping": {"monitor": "val_loss"}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "inputs": {"default_embedding_dim": 2000}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "inputs": {"default_hash_buckets": 1073741825}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "inputs": {"defs": [{"name": "a", "vocab_size": 0}]}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "inputs": {"defs": [{"name": "a", "embedding_dim": 1025}]}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "model_input_config": {"version": 1, "inputs": {}}}');

-- labels
SELECT esmm_config_check(cfg #- '{job_detail,model_args,ctr_label_name}') FROM seed;
SELECT esmm_config_check(cfg #- '{job_detail,model_args,ctcvr_label_name}') FROM seed;
SELECT esmm_config_check('{"batch_size": 64}');
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,model_args,cvr_label_name}', '"is_conv"')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,model_args,ctcvr_label_name}', '"is_kg"')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,model_args,ctr_label_name}', '""')) FROM seed;

-- optimizer type
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,optimizer,type}', '"adamw"')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,optimizer}', '"Adam"')) FROM seed;

-- activations
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,model_args,ctr_dnn_hidden_act}', '"relux"')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,model_args,cvr_dnn_hidden_act}', '["relu", "leaky_relu"]')) FROM seed;
-- an unused entry past the hidden layers is still checked
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,model_args,cvr_dnn_hidden_act}', '["relu", "relu", "softmax"]')) FROM seed;

-- dropout
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,model_args,ctr_dnn_dropout}', '1')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,model_args,ctr_dnn_dropout}', '-0.1')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,model_args,cvr_dnn_dropout}', '[0.5, 1.5]')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,model_args,cvr_dnn_dropout}', '"0.5"')) FROM seed;

-- losses, metrics, monitors, bad rows
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,losses}', '"binary_crossentropy"')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,losses}', '["bce", "mse"]')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,metrics,is_kg}', '["auc", "f1"]')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,eval_args,metrics,is_dapan}', '"auc"')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,early_stopping,monitor}', '"val_auc"')) FROM seed;
SELECT esmm_config_check(jsonb_set(cfg, '{job_detail,train_args,early_stopping,mode}', '"maximum"')) FROM seed;
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy", "on_bad_row": "ignore"}');

-- feature definitions
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "inputs": {"defs": [{"dtype": "int32"}]}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "inputs": {"defs": [{"name": "a"}, {"name": "a", "dtype": "int32"}]}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "inputs": {"defs": [{"name": "a", "dtype": "int8"}]}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "inputs": {"defs": [{"name": "a", "type": "dense"}]}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "inputs": {"defs": [{"name": "a", "type": "numeric", "normalize": "minmax"}]}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "inputs": {"defs": [{"name": "a", "dtype": "float32", "vocab_size": 10}]}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "inputs": {"defs": [{"name": "a", "dtype": "int32", "normalize": "log"}]}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "inputs": {"defs": [{"name": "a", "dtype": "string", "type": "numeric"}]}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "inputs": {"defs": [{"name": "a", "dtype": "double", "type": "categorical"}]}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "inputs": {"defs": [{"name": "a"}, {"name": "click", "dtype": "int32"}]}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "inputs": {"defs": [{"name": "click", "is_label": true}, {"name": "buy", "is_label": true}]}}');

-- groups and exclude
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "inputs": {"defs": [{"name": "a"}, {"name": "b"}], "groups": {"ctr": ["a", "c"]}}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "inputs": {"defs": [{"name": "a"}, {"name": "b"}], "groups": {"cvr": ["a", "b", "a"]}}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "inputs": {"groups": {"ctr": []}}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "inputs": {"groups": {"ctr": ["a", "click"]}}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "inputs": {"exclude": ["id"], "groups": {"cvr": ["a", "id"]}}}');
SELECT esmm_config_check('{"ctr_label_name": "click", "cvr_label_name": "buy",
                           "inputs": {"defs": [{"name": "a"}], "exclude": ["a"]}}');

-- seed 000's whole document, pasted as written, trains: without an
-- inputs section every column but its labels (is_kg, is_dapan) is a feature
CREATE TEMP TABLE kg AS
SELECT g % 7 AS age_level, g % 2 AS sex, g % 5 AS degree, (g % 11)::float8 AS log_days,
       (g % 7 < 3)::int AS is_kg, (g % 7 < 3 AND g % 3 = 0)::int AS is_dapan
FROM generate_series(1, 1000) g;
SET client_min_messages = warning;
SELECT esmm_model_info(m)->'labels' AS labels,
       esmm_model_info(m)->'config'->'model_args'->'ctr_dnn_hidden_act' AS act,
       esmm_model_info(m)->'config'->'model_args'->'cvr_dnn_l2_reg' AS l2,
       jsonb_array_length(esmm_model_info(m)->'features') AS features,
       esmm_model_info(m)->'report'->>'rows_trained' AS rows_trained
FROM (SELECT esmm_train(k, (SELECT cfg FROM seed)) AS m FROM kg k) s;
RESET client_min_messages;
