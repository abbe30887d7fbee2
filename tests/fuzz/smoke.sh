#!/usr/bin/env bash
# A short run of one libFuzzer harness on a copy of its seed corpus (the seeds
# in the tree are not touched): non-zero on any crash, leak or sanitizer report.
# usage: smoke.sh FUZZER SEED_DIR SECONDS
set -u
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$1" "$tmp" "$2" -max_total_time="$3" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$tmp.log" 2>&1
rc=$?
grep -E "stat::number_of_executed_units|SUMMARY|ERROR" "$tmp.log"
[ "$rc" -eq 0 ] || tail -40 "$tmp.log"
rm -f "$tmp.log"
exit "$rc"
