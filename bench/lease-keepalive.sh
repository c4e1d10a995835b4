#!/usr/bin/env bash
# Lease keep-alive throughput, Plinth against real etcd 3.4, with etcd's own Go load tool
# (`benchmark lease-keepalive`: each client grants a lease and keeps it alive, one request at a time).
# A B A B A B rounds on fresh servers, medians. Usage: bash bench/lease-keepalive.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
TOTAL=${TOTAL:-50000}; [ "${1:-}" = --quick ] && TOTAL=10000
CLIENTS_LIST=${CLIENTS_LIST:-"1 100"}
B=${ETCD_BENCHMARK:-${TMPDIR:-/tmp}/etcd-benchmark/benchmark}
[ -x "$B" ] || bash ../shared/tools/build-etcd-benchmark.sh "$B" >/dev/null
[ -f dist/src/cli/main.js ] || npm run build >/dev/null
PARENT=$(mktemp -d /var/tmp/plinth-lka.XXXXXX)
trap 'rm -rf "$PARENT"' EXIT
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

run_plinth() { # clients -> req/s
  local port dd pid out; port=$(free_port); dd=$(mktemp -d "$PARENT/p.XXXXXX")
  node bin/plinth.js --data-dir "$dd" --listen-client-urls "http://127.0.0.1:$port" >"$dd.log" 2>&1 & pid=$!
  for _ in $(seq 1 100); do grep -q ' serving ' "$dd.log" 2>/dev/null && break; sleep 0.1; done
  out=$("$B" --endpoints="127.0.0.1:$port" --conns="$(( $1 < 10 ? 1 : 10 ))" --clients="$1" lease-keepalive --total="$TOTAL" 2>&1 | awk '/Requests\/sec/{print $2}')
  kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$dd"; echo "$out"
}
run_etcd() {
  local port pid dd out; port=$(free_port)
  read -r pid dd < <(bash ../shared/tools/etcd-local.sh start "$PARENT" "$port")
  out=$("$B" --endpoints="127.0.0.1:$port" --conns="$(( $1 < 10 ? 1 : 10 ))" --clients="$1" lease-keepalive --total="$TOTAL" 2>&1 | awk '/Requests\/sec/{print $2}')
  bash ../shared/tools/etcd-local.sh stop "$pid" "$dd"; echo "$out"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

OUT=bench/results/lease-keepalive.md
{
  echo "# Lease keep-alive throughput: Plinth vs etcd 3.4"
  echo
  echo "- command: \`bash bench/lease-keepalive.sh${1:+ $1}\` ($TOTAL keep-alives per run, 3 rounds A B A B A B, fresh servers, /var/tmp, fsync on)"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) CPUs ($(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | xargs)), Node $(node --version)"
  echo "- load tool: etcd 3.4's \`benchmark lease-keepalive\` (Go)"
  echo
  echo "| clients | etcd req/s (median) | Plinth req/s (median) | Plinth/etcd |"
  echo "|---:|---:|---:|---:|"
  for c in $CLIENTS_LIST; do
    e=(); p=()
    for _ in 1 2 3; do e+=("$(run_etcd "$c")"); p+=("$(run_plinth "$c")"); done
    me=$(median "${e[@]}"); mp=$(median "${p[@]}")
    echo "| $c | $me | $mp | $(awk -v a="$mp" -v b="$me" 'BEGIN{printf "%.2f", a/b}') |"
  done
} | tee "$OUT"
