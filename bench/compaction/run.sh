#!/usr/bin/env bash
# Request latency during a large compaction, Plinth (several batch-limit / sleep settings) against real
# etcd 3.4 doing the same compaction (issue #6). Builds what is missing, then runs
# dist/bench/compaction/compaction.js with the given options (see the top of compaction.ts):
#
#   bash bench/compaction/run.sh                 # 100k keys x 10 versions; ~20 min on 2 CPUs
#   bash bench/compaction/run.sh --quick         # 10k keys, results under /var/tmp/plinth-compaction-quick
#
# Writes bench/results/compaction.md and bench/results/compaction-latency.svg; every request's latency
# goes to <parent>/compaction-latency.csv.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
main_js="$root/dist/bench/compaction/compaction.js"
if [ ! -f "$main_js" ] || [ -n "$(find "$root/src" "$root/bench" -name '*.ts' -newer "$main_js" -print -quit)" ]; then
  (cd "$root" && npm run -s build >&2)
fi
B=${BENCHMARK_BIN:-/tmp/etcd-benchmark/benchmark}
if [ ! -x "$B" ]; then
  tools=$(cd "$root/../shared/tools" 2>/dev/null && pwd || cd /work/shared/tools && pwd)
  bash "$tools/build-etcd-benchmark.sh" "$B" >&2
fi
command -v etcd >/dev/null || { echo "etcd not on PATH (Debian's etcd-server)" >&2; exit 1; }
BENCHMARK_BIN=$B exec node "$main_js" "$@"
