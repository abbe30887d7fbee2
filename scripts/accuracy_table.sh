#!/usr/bin/env bash
# The accuracy rows of an experiment as Markdown tables (for results/accuracy.md):
# every configuration (mixer, resolution, seed), then the mean over seeds.
#   usage: scripts/accuracy_table.sh DB EXPERIMENT
set -euo pipefail
db=$1
exp=$2
echo "Every configuration:"
echo
sqlite3 -markdown "$db" "
SELECT coalesce(mixer, model) AS mixer, resolution AS res, train_seed AS seed, params,
       printf('%.2f', macs / 1e6 / batch) AS MMACs, printf('%.3f', latency_ms_median) AS latency_ms,
       printf('%.2f', accuracy_top1) AS top1, printf('%.2f', accuracy_top5) AS top5,
       printf('%.0f', train_seconds) AS train_s, printf('%.0f', train_images_per_s) AS train_img_s
FROM results WHERE experiment = '$exp' AND status = 'ok' AND accuracy_top1 IS NOT NULL
  AND id IN (SELECT max(id) FROM results WHERE experiment = '$exp' GROUP BY config_hash)
ORDER BY resolution, accuracy_top1 DESC;"
echo
echo "Mean over seeds (and the spread, max - min):"
echo
sqlite3 -markdown "$db" "
SELECT coalesce(mixer, model) AS mixer, resolution AS res, count(*) AS seeds,
       printf('%.2f', avg(accuracy_top1)) AS top1_mean, printf('%.2f', max(accuracy_top1) - min(accuracy_top1)) AS spread,
       printf('%.2f', avg(macs) / 1e6 / avg(batch)) AS MMACs, printf('%.3f', avg(latency_ms_median)) AS latency_ms,
       printf('%.0f', avg(train_seconds)) AS train_s
FROM results WHERE experiment = '$exp' AND status = 'ok' AND accuracy_top1 IS NOT NULL
  AND id IN (SELECT max(id) FROM results WHERE experiment = '$exp' GROUP BY config_hash)
GROUP BY 1, 2 ORDER BY 2, 4 DESC;"
