#!/usr/bin/env bash
# The progress NOTICEs of esmm_train carry timings, so pg_regress cannot hold
# them; this counts them instead.  Needs the cluster of test/run_tests.sh
# (PG* variables set) and its esmm_tap database.
#   train_speed_logger.every_batches = 5 over 40 batches and 2 epochs:
#   8 batch NOTICEs and 1 epoch NOTICE per epoch, and 1 summary;
#   with_metrics adds the last epoch's metrics to the batch NOTICEs;
#   client_min_messages = warning silences them all.
set -euo pipefail
cfg='{"ctr_label_name": "click", "cvr_label_name": "conversion",
      "inputs": {"exclude": ["id", "true_ctr", "true_cvr", "split"]},
      "ctr_dnn_units": [8], "cvr_dnn_units": [8],
      "train_args": {"epochs": 2, "batch_size": 100, "validation_fraction": 0.2,
                     "metrics": {"click": ["auc"]},
                     "train_speed_logger": {"every_batches": 5, "with_metrics": true}}}'
out=$(psql -X -v ON_ERROR_STOP=1 -d esmm_tap -c "SET client_min_messages = notice" \
	-c "SELECT length(esmm_train(i, '$cfg')) > 0 FROM imp i WHERE id <= 5000" 2>&1)
quiet=$(psql -X -v ON_ERROR_STOP=1 -d esmm_tap -c "SET client_min_messages = warning" \
	-c "SELECT length(esmm_train(i, '$cfg')) > 0 FROM imp i WHERE id <= 5000" 2>&1)
rows=$(psql -X -At -d esmm_tap -c "SELECT count(*) FROM imp WHERE id <= 5000")
batch=$(grep -c "NOTICE:  epoch [12]/2, batch [0-9]*/[0-9]*: loss [0-9.]*, [0-9]* rows/s" <<<"$out" || true)
batch_metrics=$(grep -c "NOTICE:  epoch 2/2, batch .*; last epoch, val_loss [0-9.]*, click_auc [0-9.]*$" <<<"$out" || true)
epoch=$(grep -c "NOTICE:  epoch [12]/2: loss [0-9.]*, val_loss [0-9.]*, click_auc [0-9.]*, [0-9]* rows, [0-9]* rows/s" <<<"$out" || true)
summary=$(grep -c "NOTICE:  trained 2 epochs on [0-9]* rows ([0-9]* more held out for validation)" <<<"$out" || true)
notices=$(grep -c "NOTICE" <<<"$quiet" || true)
# about 4000 training rows in batches of 100: 40 batches, a NOTICE every 5
want_batch=$(( 2 * ($(grep -o "trained 2 epochs on [0-9]*" <<<"$out" | grep -o "[0-9]*$") + 99) / 100 / 5 ))
echo "rows $rows; batch notices $batch (want $want_batch), with metrics in epoch 2: $batch_metrics, epoch notices $epoch, summary $summary, notices when quiet $notices"
[ "$batch" -eq "$want_batch" ] && [ "$batch_metrics" -eq $((want_batch / 2)) ] && [ "$epoch" -eq 2 ] &&
	[ "$summary" -eq 1 ] && [ "$notices" -eq 0 ]
