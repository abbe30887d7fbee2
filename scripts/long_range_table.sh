#!/usr/bin/env bash
# The accuracy rows of a sequence-model experiment as a Markdown table (for results/long_range.md):
# each configuration (model, mixer, tokens L) with its parameters, MACs, latency and planned memory
# at batch 1, the held-out accuracy after the last step, the best evaluation and the first step at
# which the held-out accuracy reached 50% and 90% (empty when it never did), and the training time;
# then each training's curve: the held-out accuracy and the training seconds at every evaluation,
# and the steps at which those evaluations were made.
#   usage: scripts/long_range_table.sh DB EXPERIMENT
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: scripts/long_range_table.sh DB EXPERIMENT" >&2
    exit 2
fi
db=$1
exp=$2
case $exp in *"'"*) echo "long_range_table.sh: an experiment name may not hold a quote" >&2; exit 2 ;; esac
if [ ! -f "$db" ]; then
    echo "long_range_table.sh: no database at $db" >&2
    exit 1
fi
sqlite3 -markdown "$db" "
SELECT r.model AS model, r.mixer AS mixer, r.tokens AS L, r.params AS params,
       printf('%.2f', r.macs / 1e6 / r.batch) AS MMACs, printf('%.3f', r.latency_ms_median) AS latency_ms,
       printf('%.1f', r.peak_bytes / 1048576.0) AS plan_MiB,
       printf('%.2f', r.accuracy_top1) AS accuracy,
       printf('%.2f', (SELECT max(test_top1) FROM train_log t WHERE t.result_id = r.id)) AS best,
       (SELECT min(step) FROM train_log t WHERE t.result_id = r.id AND t.test_top1 >= 50) AS step_50,
       (SELECT min(step) FROM train_log t WHERE t.result_id = r.id AND t.test_top1 >= 90) AS step_90,
       printf('%.0f', r.train_seconds) AS train_s, printf('%.0f', r.train_images_per_s) AS seq_per_s
FROM results r WHERE r.experiment = '$exp' AND r.status = 'ok' AND r.accuracy_top1 IS NOT NULL
  AND r.id IN (SELECT max(id) FROM results WHERE experiment = '$exp' GROUP BY config_hash)
ORDER BY r.tokens, r.model, r.accuracy_top1 DESC;"
echo
sqlite3 -markdown "$db" "
SELECT r.mixer AS mixer, r.tokens AS L, CASE WHEN r.model LIKE '%pos_embed=1%' THEN 'yes' ELSE 'no' END AS positions,
  (SELECT group_concat(v, ' · ') FROM (SELECT printf('%.1f', test_top1) AS v FROM train_log
     WHERE result_id = r.id ORDER BY step)) AS 'held-out accuracy % at each evaluation',
  (SELECT group_concat(v, ' · ') FROM (SELECT printf('%.0f', seconds) AS v FROM train_log
     WHERE result_id = r.id ORDER BY step)) AS 'training s at each',
  (SELECT group_concat(step, ' · ') FROM (SELECT step FROM train_log WHERE result_id = r.id ORDER BY step)) AS steps
FROM results r WHERE r.experiment = '$exp' AND r.status = 'ok' AND r.accuracy_top1 IS NOT NULL
  AND r.id IN (SELECT max(id) FROM results WHERE experiment = '$exp' GROUP BY config_hash)
ORDER BY r.tokens, positions, r.mixer;"
