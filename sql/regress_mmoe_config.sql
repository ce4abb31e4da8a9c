--
-- mmoe_config_check(jsonb): the configuration parser for MMoE v2 (SPEC §3,
-- seed 002).
--
-- The same wording as esmm_config_check: every error names the key and the
-- value, with the accepted values in a HINT.
--
\set VERBOSITY default

-- Seed 002's whole template, as written, with its model input file's
-- content (the version 2 example of seed 002) as model_input_config.
CREATE TEMP TABLE seed (cfg jsonb);
INSERT INTO seed VALUES ($cfg$
{
    "num_workers": 1,
    "node_affin": "only_gpu",
    "pod_affin": "spread",
    "timeout": "100d",
    "job_detail": {
        "model_input_config_file": "`${PACK_PATH}$`/model_input_config.json",
        "model_input_config": {
                "version": 2,
                "inputs": {
                    "defs":[
                        {"name": "age", "dtype": "int32", "vocab_size":33, "embedding_dim":80},
                        {"name": "age_level", "dtype": "int32", "vocab_size":10, "embedding_dim":80},
                        {"name": "sex", "dtype": "int32", "vocab_size":4, "embedding_dim":80},
                        {"name": "degree", "dtype": "int32", "vocab_size":9, "embedding_dim":80},
                        {"name": "city_level", "dtype": "int32", "vocab_size":9, "embedding_dim":80},
                        {"name": "os_type", "dtype": "int32", "vocab_size":10, "embedding_dim":80},
                        {"name": "genre_0", "dtype": "int32", "vocab_size":61, "embedding_dim":80},
                        {"name": "bd_play_cnt", "dtype": "int32", "vocab_size":59, "embedding_dim":8},
                        {"name": "bd_play_time", "dtype": "int32", "vocab_size":59, "embedding_dim":8},
                        {"name": "wifi_play_cnt", "dtype": "int32", "vocab_size":51, "embedding_dim":8},
                        {"name": "wifi_play_time", "dtype": "int32", "vocab_size":51, "embedding_dim":8},
                        {"name": "is_click", "dtype": "int32", "is_label": true},
                        {"name": "play_num1", "dtype": "int32", "is_label": true},
                        {"name": "play_num5", "dtype": "int32", "is_label": true},
                        {"name": "playtime_3000", "dtype": "int32", "is_label": true},
                        {"name": "is_favor", "dtype": "int32", "is_label": true}
                    ],
                    "groups":{
                        "wide": ["age","age_level","sex","degree","city_level","os_type","genre_0"],
                        "mmoe": ["age","age_level","sex","bd_play_cnt","bd_play_time","wifi_play_cnt"],
                        "labels": ["is_click", "play_num1", "play_num5", "playtime_3000", "is_favor"]
                    }
                }
            },
        "model_args": {
            "name": "mmoe_model_v2",
            "task_structs": [
                [
                    64,
                    16,
                    1
                ],
                [
                    64,
                    16,
                    1
                ],
                [
                    64,
                    16,
                    1
                ]
            ],
            "task_use_bias": true,
            "task_hidden_act": "relu",
            "task_output_act": "sigmoid",
            "task_use_bn": false,
            "task_l2_reg": 0.001,
            "num_experts": 4,
            "expert_layers": [
                128,
                64
            ],
            "expert_use_bias": true,
            "expert_l2_reg": 0.001,
            "gate_use_bias": true,
            "use_wide": true,
            "wide_type": "FM",
            "wide_width": 8,
            "feature_cross": 2,
            "output_cross": 0,
            "wide_l2_reg": 0.001
        },
        "train_data_args": {
            "data_file": "${PACK_PATH}$/dataset/train_data.csv",
            "field_delim": ",",
            "with_headers": true
        },
        "val_data_args": {
            "data_file": "${PACK_PATH}$/dataset/vali_data.csv",
            "field_delim": ",",
            "with_headers": true
        },
        "test_data_args": {
            "data_file": "${PACK_PATH}$/dataset/test_data.csv",
            "field_delim": ",",
            "with_headers": true
        },
        "train_args": {
            "batch_size": 256,
            "epochs": 3,
            "num_samples": 2938797,
            "num_val_samples": 1567359,
            "optimizer": {
                "type": "adam",
                "args": {
                    "learning_rate": 0.001
                }
            },
            "losses": "bce",
            "metrics": {
                "is_click": [
                    "auc",
                    "bacc"
                ],
                "is_favor": [
                    "auc",
                    "bacc"
                ],
							"play_num1": [
                    "auc",
                    "bacc"
                ]
            },
            "train_speed_logger": {
                "every_batches": 1000,
                "with_metrics": true
            },
            "tensorboard":{
                "profile_batch": [200,300]
            },
            "early_stopping": {
                "monitor": "val_loss",
                "mode": "min",
                "patience": 3,
                "min_delta": 0.001
            }
        },
        "eval_args": {
            "batch_size": 256,
            "metrics": {
                "is_click": [
                    "auc",
                    "bacc"
                ],
                "is_favor": [
                    "auc",
                    "bacc"
                ],
							"play_num1": [
                    "auc",
                    "bacc"
                ]
            },
            "output_file": "$EXPORT_PATH$/mmoev2-fm-2-res.json"
        }
    }
}
$cfg$);

-- The two examples of seed 002 disagree: three task_structs, five labels.
SELECT mmoe_config_check(cfg) FROM seed;

-- With the three labels that its metrics name, in the labels group's order,
-- it parses: the pipeline keys are ignored under one NOTICE, early_stopping
-- holds out 10% of the rows, the other label columns are neither labels nor
-- features.
CREATE TEMP TABLE mmoe AS
SELECT jsonb_set(cfg, '{job_detail,model_input_config,inputs,groups,labels}',
                 '["is_click", "play_num1", "is_favor"]') AS cfg
FROM seed;
SELECT jsonb_pretty(mmoe_config_check(cfg)) FROM mmoe;

-- The normalized document reads back to itself.
SET client_min_messages = warning;
SELECT mmoe_config_check(mmoe_config_check(cfg)) = mmoe_config_check(cfg) AS stable
FROM mmoe;
RESET client_min_messages;

-- Flattened and minimal: every default filled in.  Without inputs.groups.wide
-- there is no wide part, whatever use_wide says.
CREATE TEMP TABLE minimal AS
SELECT '{"task_structs": [[32], [16, 8]], "num_experts": 2, "expert_layers": [16],
         "inputs": {"groups": {"labels": ["click", "buy"]}}}'::jsonb AS cfg;
SELECT jsonb_pretty(mmoe_config_check(cfg)) FROM minimal;
SET client_min_messages = warning;
SELECT mmoe_config_check(mmoe_config_check(cfg)) = mmoe_config_check(cfg) AS stable
FROM minimal;
RESET client_min_messages;

-- Labels from the defs marked is_label, in their order; model_args,
-- train_args and the inputs flattened inside job_detail; the mmoe group
-- defaults to every feature.
WITH c AS MATERIALIZED (
  SELECT mmoe_config_check('{"num_workers": 2, "job_detail": {
      "task_structs": [[8, 1], [8], [4, 4]], "num_experts": 3, "expert_layers": [8],
      "wide_type": "LR", "epochs": 2,
      "inputs": {"defs": [{"name": "u", "dtype": "int64", "hash_buckets": 100},
                          {"name": "ctr", "dtype": "int32", "is_label": true},
                          {"name": "price", "dtype": "float32"},
                          {"name": "cvr", "dtype": "int32", "is_label": true},
                          {"name": "dwell", "dtype": "float32", "is_label": true}],
                 "groups": {"wide": ["u", "price"]}}}}') AS n)
SELECT n #> '{inputs,groups}' AS groups, n #> '{model_args,task_structs}' AS task_structs,
       n #> '{model_args,use_wide}' AS use_wide, n #> '{model_args,wide_type}' AS wide_type,
       n #> '{train_args,losses}' AS losses, n #> '{train_args,epochs}' AS epochs
FROM c;

-- Without defs, groups name columns; the wide group may be empty.
SELECT n -> 'inputs' AS inputs, n #> '{model_args,use_wide}' AS use_wide
FROM (SELECT mmoe_config_check('{"task_structs": [[4]], "num_experts": 1, "expert_layers": [4],
        "inputs": {"exclude": ["id"], "groups": {"labels": ["y"], "wide": [], "mmoe": ["a", "b"]}}}') AS n
      OFFSET 0) s;

-- Per-layer arrays, as for ESMM: task keys apply by layer index to every
-- task tower (the deepest shows them all); a short array leaves the rest
-- without activation; use_bn reaches the output layer, dropout does not.
-- Experts have no output layer: every expert layer is hidden.
SELECT m -> 'task_structs' AS task_structs, m -> 'task_hidden_act' AS task_act,
       m -> 'task_use_bn' AS task_bn, m -> 'task_dropout' AS task_dropout,
       m -> 'expert_layers' AS expert_layers, m -> 'expert_act' AS expert_act,
       m -> 'expert_use_bn' AS expert_bn, m -> 'expert_dropout' AS expert_dropout,
       m -> 'expert_use_bias' AS expert_bias, m -> 'task_use_bias' AS task_bias
FROM (SELECT mmoe_config_check('{"task_structs": [[32, 16, 1], [8]], "num_experts": 4,
        "expert_layers": [64, 32, 16],
        "task_hidden_act": ["tanh"], "task_use_bn": [true, false, true, true],
        "task_dropout": [0.5, 0.25, 0.9, 0.1], "task_use_bias": false,
        "expert_act": ["relu", null, "gelu", "swish"], "expert_use_bn": true,
        "expert_dropout": [0.1, 0.2], "expert_use_bias": false, "expert_l2_reg": null,
        "use_wide": false, "inputs": {"groups": {"labels": ["click", "buy"]}}}') -> 'model_args' AS m
      OFFSET 0) s;

-- feature_cross 0 to 5 and output_cross: 0 adds the wide output, any other
-- integer does not (kept as 1).
SELECT fc, oc, m -> 'feature_cross' AS feature_cross, m -> 'output_cross' AS output_cross,
       m -> 'use_wide' AS use_wide, m -> 'wide_type' AS wide_type, m -> 'wide_width' AS wide_width
FROM (VALUES (0, 0), (1, 1), (2, 0), (3, -2), (4, 0), (5, 7)) v(fc, oc),
     LATERAL (SELECT mmoe_config_check(format('{"task_structs": [[8], [8]], "num_experts": 2,
        "expert_layers": [8], "feature_cross": %s, "output_cross": %s, "wide_width": 4,
        "inputs": {"groups": {"labels": ["click", "buy"], "wide": ["a", "b"]}}}', fc, oc)::jsonb)
        -> 'model_args' AS m OFFSET 0) s;

-- share_gates (plain MoE), the gates' keys, the wide part's rates.
SELECT m -> 'share_gates' AS share_gates, m -> 'gate_use_bias' AS gate_bias,
       m -> 'gate_l1_reg' AS gate_l1, m -> 'gate_l2_reg' AS gate_l2,
       m -> 'wide_l1_reg' AS wide_l1, m -> 'wide_l2_reg' AS wide_l2,
       m -> 'l2_reg_embedding' AS l2_emb, m -> 'name' AS name
FROM (SELECT mmoe_config_check('{"task_structs": [[8], [8]], "num_experts": 2, "expert_layers": [8],
        "share_gates": true, "gate_use_bias": false, "gate_l1_reg": 0.001, "gate_l2_reg": null,
        "wide_l1_reg": 0.5, "wide_l2_reg": 0.003, "l2_reg_embedding": 0.0001, "name": "moe",
        "inputs": {"groups": {"labels": ["click", "buy"], "wide": ["a"]}}}') -> 'model_args' AS m
      OFFSET 0) s;

-- wide_type: FM and LR in any case; any other string is the raw wide
-- features, kept as written, with a NOTICE unless it is "raw".
SELECT wt, mmoe_config_check(format('{"task_structs": [[8]], "num_experts": 1, "expert_layers": [8],
         "wide_type": %s, "inputs": {"groups": {"labels": ["y"], "wide": ["a"]}}}', wt)::jsonb)
       #> '{model_args,wide_type}' AS wide_type
FROM (VALUES ('"FM"'), ('"fm"'), ('"Lr"'), ('"raw"'), ('"wide_features"')) v(wt);
-- use_wide false: no notice, the group is kept for the record
SELECT n #> '{model_args,use_wide}' AS use_wide, n #> '{inputs,groups,wide}' AS wide
FROM (SELECT mmoe_config_check('{"task_structs": [[8]], "num_experts": 1, "expert_layers": [8],
        "use_wide": false, "wide_type": "none",
        "inputs": {"groups": {"labels": ["y"], "wide": ["a"]}}}') AS n OFFSET 0) s;

-- Task types: binary (BCE on the sigmoid of the logit) or regression (MSE,
-- never an output activation), from task_types (train_args or model_args)
-- or losses; task_output_act sigmoid makes mmoe_predict return binary
-- tasks' probabilities.
SELECT t -> 'task_types' AS task_types, t -> 'losses' AS losses,
       m -> 'task_output_act' AS output_act, m -> 'loss_weights' AS loss_weights
FROM (VALUES
  ('{"task_types": ["binary", "regression", "binary"]}'),
  ('{"train_args": {"task_types": "regression"}, "task_output_act": "sigmoid"}'),
  ('{"model_args": {"task_types": ["regression", "binary", "binary"]}, "losses": {"click": "mse"}}'),
  ('{"losses": ["bce", "mse", "mse"], "task_output_act": null, "loss_weights": [1, 0.5, 0]}'),
  ('{"losses": "mse", "task_types": "regression", "train_args": {"task_types": "regression"}}'),
  ('{"losses": {"dwell": "mse"}, "task_types": {"click": "binary"}}')) v(extra),
     LATERAL (SELECT '{"task_structs": [[8], [8], [8]], "num_experts": 2, "expert_layers": [8],
                       "use_wide": false,
                       "inputs": {"groups": {"labels": ["click", "buy", "dwell"]}}}'::jsonb
                     || extra::jsonb AS cfg OFFSET 0) c,
     LATERAL (SELECT mmoe_config_check(cfg) AS n OFFSET 0) r,
     LATERAL (SELECT n -> 'train_args' AS t, n -> 'model_args' AS m OFFSET 0) s;

-- Metrics and early stopping by MMoE label.
SELECT t -> 'metrics' AS metrics, t -> 'early_stopping' AS early_stopping, e AS eval_args
FROM (SELECT n -> 'train_args' AS t, n -> 'eval_args' AS e
      FROM (SELECT mmoe_config_check('{"task_structs": [[8], [8], [8]], "num_experts": 2,
              "expert_layers": [8], "validation_fraction": 0.2, "use_wide": false,
              "metrics": {"click": ["auc"], "dwell": ["mse", "mse"]},
              "early_stopping": {"monitor": "dwell_mse", "patience": 2},
              "eval_args": {"metrics": {"buy": ["bacc", "logloss"]}},
              "inputs": {"groups": {"labels": ["click", "buy", "dwell"]}}}') AS n OFFSET 0) r) s;

--
-- Errors.
--

-- not an object
SELECT mmoe_config_check('[]');

-- unknown keys, at every level
SELECT mmoe_config_check(jsonb_set(cfg, '{num_expert}', '4')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,num_worker}', '1')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,expert_layer}', '[64]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,ctr_dnn_units}', '[64]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,train_args,task_type}', '"binary"')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,eval_args,task_types}', '"binary"')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_input_config,inputs,groups,deep}', '["age"]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_input_config,inputs,groups,ctr}', '["age"]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,train_args,metrics,play_num5}', '["auc"]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,train_args,losses}', '{"is_click": "bce", "is_like": "bce"}')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,train_args,task_types}', '{"click": "binary"}')) FROM mmoe;

-- wrong types
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,task_structs}', '64')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,task_structs}', '[64, 16, 1]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,task_structs,1}', '[64, "16"]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,num_experts}', '"4"')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,expert_layers}', '128')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,share_gates}', '"yes"')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,use_wide}', '1')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,wide_type}', '2')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,feature_cross}', '1.5')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,output_cross}', '"0"')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,task_output_act}', '"relu"')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,task_hidden_act}', '["relu", "leaky_relu"]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,expert_act}', '"relux"')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,expert_use_bn}', '[true, "false"]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,gate_use_bias}', 'null')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,train_args,task_types}', '5')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_input_config,inputs,groups,labels}', '"is_click"')) FROM mmoe;

-- out-of-range values
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,num_experts}', '0')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,num_experts}', '65')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,feature_cross}', '6')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,feature_cross}', '-1')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,wide_width}', '0')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,wide_width}', '1025')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,expert_layers}', '[]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,expert_layers}', '[128, 0]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,expert_layers}',
                                   '[8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,task_structs,0}', '[]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,task_structs,2}',
                                   '[8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,task_dropout}', '1')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,expert_dropout}', '[0.5, -0.5]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,gate_l2_reg}', '-0.001')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,wide_l2_reg}', '"0.001"')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,loss_weights}', '[1, 1]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,loss_weights}', '[0, 0, 0]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,wide_type}', '""')) FROM mmoe;

-- task_structs and the labels: one tower per label
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_args,task_structs}', '[[64, 16, 1], [64, 16, 1]]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_input_config,inputs,groups,labels}', '["is_click"]')) FROM mmoe;

-- task types and losses
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,train_args,task_types}',
                                   '["binary", "classification", "binary"]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,train_args,task_types}', '["binary", "regression"]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,train_args,task_types}',
                                   '["binary", "regression", "binary"]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(jsonb_set(cfg, '{job_detail,train_args,task_types}', '"binary"'),
                                   '{job_detail,model_args,task_types}', '"regression"')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,train_args,losses}', '["bce", "bce"]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,train_args,losses}', '"binary_crossentropy"')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,train_args,early_stopping,monitor}', '"play_num5_auc"')) FROM mmoe;

-- groups
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_input_config,inputs,groups,wide}', '["age", "is_favor"]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_input_config,inputs,groups,mmoe}', '[]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_input_config,inputs,groups,labels}',
                                   '["is_click", "age"]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_input_config,inputs,groups,labels}',
                                   '["is_click", "play_num1", "is_click"]')) FROM mmoe;
SELECT mmoe_config_check(jsonb_set(cfg, '{job_detail,model_input_config,inputs,groups,labels}', '[]')) FROM mmoe;
SELECT mmoe_config_check('{"task_structs": [[8]], "num_experts": 1, "expert_layers": [8],
                           "inputs": {"groups": {"labels": ["a", "b", "c", "d", "e", "f", "g", "h", "i"]}}}');
SELECT mmoe_config_check(format('{"task_structs": [[8]], "num_experts": 1, "expert_layers": [8],
                                  "inputs": {"defs": [{"name": "a"}, %s]}}',
                                 (SELECT string_agg(format('{"name": "y%s", "is_label": true}', i), ', ')
                                  FROM generate_series(1, 9) i))::jsonb);
SELECT mmoe_config_check('{"task_structs": [[8]], "num_experts": 1, "expert_layers": [8],
                           "inputs": {"groups": {"labels": ["y"], "mmoe": ["a", "y"]}}}');
SELECT mmoe_config_check('{"task_structs": [[8]], "num_experts": 1, "expert_layers": [8],
                           "inputs": {"exclude": ["id"], "groups": {"labels": ["y"], "wide": ["id"]}}}');

-- missing keys
SELECT mmoe_config_check(cfg #- '{job_detail,model_args,task_structs}') FROM mmoe;
SELECT mmoe_config_check(cfg #- '{job_detail,model_args,num_experts}') FROM mmoe;
SELECT mmoe_config_check(cfg #- '{job_detail,model_args,expert_layers}') FROM mmoe;
SELECT mmoe_config_check('{"task_structs": [[8]], "num_experts": 1, "expert_layers": [8]}');
SELECT mmoe_config_check('{"task_structs": [[8]], "num_experts": 1, "expert_layers": [8],
                           "job_detail": {"inputs": {"defs": [{"name": "a"}]}}}');
SELECT mmoe_config_check('{"inputs": {"groups": {"labels": ["y"]}}}');
