#!/usr/bin/env bash
# Put throughput with fsync on real disk: Plinth (lmdb) against real etcd 3.4, measured with etcd's own Go
# load tool (tools/benchmark), plus the effect of --backend-batch-limit / --backend-batch-interval on Plinth's
# throughput and peak RSS.  Issue #5.  See bench/README-put-durability.md.
#
#   bash bench/put-durability.sh [--quick] [--parent DIR] [--rounds N] [--batch-rounds N] [--batch-etcd] [--out FILE]
#
# Part A: for clients in 1, 16, 256 (conns 1, 4, 16: every connection carries the same number of clients),
#         `benchmark put --key-size=16 --val-size=256 --key-space-size=1000000 --total=N`, against a fresh
#         etcd then a fresh Plinth, for each of --rounds rounds (default 3: A B A B A B); medians of
#         Requests/sec, p50, p99 and of the server's peak RSS (VmHWM).
# Part B: Plinth only (etcd too with --batch-etcd), 256 clients / 16 conns, --backend-batch-limit in
#         {1000, 10000} x --backend-batch-interval in {10ms, 100ms, 1s}, a fresh server per run; medians over
#         --batch-rounds (default 3) of Requests/sec, p99 and VmHWM.
# Every server gets a fresh data dir under --parent (default /var/tmp: real disk, fsync on), a free loopback
# port, and is stopped (its PID only) and its dir removed as soon as its run ends; an EXIT trap cleans up the rest.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
tools=$(cd "$root/../shared/tools" 2>/dev/null && pwd || true)
[ -n "$tools" ] && [ -x "$tools/etcd-local.sh" ] || { echo "need ../shared/tools/etcd-local.sh next to the repo" >&2; exit 2; }

quick=0 parent=/var/tmp rounds=3 brounds=3 batch_etcd=0 out="$root/bench/results/put-durability.md"
args_given="$*"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --parent) parent=${2:?}; shift ;;
    --rounds) rounds=${2:?}; shift ;;
    --batch-rounds) brounds=${2:?}; shift ;;
    --batch-etcd) batch_etcd=1 ;;
    --out) out=${2:?}; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[[ $rounds =~ ^[1-9][0-9]?$ && $brounds =~ ^[1-9][0-9]?$ ]] || { echo "--rounds/--batch-rounds: 1..99" >&2; exit 2; }

CLIENTS=(1 16 256)
declare -A CONNS=([1]=1 [16]=4 [256]=16)
if [ $quick = 1 ]; then
  declare -A TOTAL=([1]=1000 [16]=5000 [256]=10000); BTOTAL=10000
else
  declare -A TOTAL=([1]=5000 [16]=20000 [256]=50000); BTOTAL=50000
fi
LIMITS=(1000 10000)
INTERVALS=(10ms 100ms 1s)
PUT_ARGS=(put --key-size=16 --val-size=256 --key-space-size=1000000)

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

# ---------- 1. build ----------
main_js="$root/dist/src/cli/main.js"
if [ ! -f "$main_js" ] || [ -n "$(find "$root/src" -name '*.ts' -newer "$main_js" -print -quit)" ]; then
  log "building Plinth (npm run build)"
  if ! (cd "$root" && npm run -s build >&2); then
    [ -f "$main_js" ] || { echo "build failed and no dist/ to run" >&2; exit 1; }
    log "WARNING: npm run build failed (see above); running the dist/ that exists"
  fi
fi
B=${BENCHMARK_BIN:-${TMPDIR:-/tmp}/etcd-benchmark/benchmark}
if [ ! -x "$B" ] && [ -x /tmp/etcd-benchmark/benchmark ]; then B=/tmp/etcd-benchmark/benchmark; fi
if [ ! -x "$B" ]; then log "building etcd's benchmark tool"; bash "$tools/build-etcd-benchmark.sh" "$B" >&2; fi
command -v etcd >/dev/null || { echo "etcd not on PATH (Debian's etcd-server)" >&2; exit 1; }
mkdir -p "$parent"

# ---------- server lifecycle ----------
declare -A LIVE=()   # pid -> data dir, for the EXIT trap
cleanup() {
  set +e
  local pid
  for pid in "${!LIVE[@]}"; do log "cleanup: stopping $pid (${LIVE[$pid]})"; stop_server "$pid" "${LIVE[$pid]}"; done
  [ -n "${TIMES_F:-}" ] && rm -f "$TIMES_F"
}
trap cleanup EXIT
set -E
trap 'log "ERROR: line $LINENO: $BASH_COMMAND exited $?"' ERR
trap 'exit 130' INT TERM

free_port() {  # a port p with p and p+1 both unused on loopback; bounded attempts
  local i p
  for i in $(seq 1 200); do
    p=$(( 20000 + RANDOM % 12000 ))   # below the ephemeral range (32768+)
    if ! ss -Htln "sport = :$p or sport = :$((p + 1))" | grep -q .; then echo "$p"; return 0; fi
  done
  echo "no free port" >&2; return 1
}

healthy() { ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$1" --command-timeout=1s endpoint health >/dev/null 2>&1; }

# start_server etcd|plinth PORT [server flags...]  -> sets SPID, SDIR
start_server() {
  local kind=$1 port=$2; shift 2
  if [ "$kind" = etcd ]; then
    read -r SPID SDIR < <("$tools/etcd-local.sh" start "$parent" "$port" "$@")
    [ -n "${SPID:-}" ] || { echo "etcd did not start" >&2; return 1; }
    LIVE[$SPID]=$SDIR
  else
    SDIR=$(mktemp -d "$parent/plinth-perf.XXXXXX")
    node "$root/bin/plinth.js" --data-dir "$SDIR/data" --listen-client-urls "http://127.0.0.1:$port" \
      --backend lmdb "$@" >"$SDIR/plinth.log" 2>&1 &
    SPID=$!
    LIVE[$SPID]=$SDIR
    local i
    for i in $(seq 1 100); do   # up to ~20 s
      healthy "$port" && return 0
      kill -0 "$SPID" 2>/dev/null || { cat "$SDIR/plinth.log" >&2; echo "plinth exited" >&2; return 1; }
      sleep 0.2
    done
    echo "plinth not healthy after 20 s" >&2; return 1
  fi
}

stop_server() {  # PID DIR: that PID only, TERM then KILL after 10 s; remove its dir
  local pid=$1 dd=$2 i
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  case "$dd" in "$parent"/etcd-perf.*|"$parent"/plinth-perf.*) rm -rf -- "$dd" ;; esac
  unset "LIVE[$pid]"
}

hwm_kb() { awk '/^VmHWM:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# CPU accounting, in clock ticks: the machine's busy time (user+nice+system; irq/softirq left out, as loopback
# traffic's softirq time is charged to no process), all time, a PID's own (all its threads), and this shell's
# reaped children (the load tool runs as one), and kernel threads' (jbd2, kworkers: fsync's work, charged to
# neither server; reported apart). "Others" = busy - server - load tool - kernel threads.
TCK=$(getconf CLK_TCK)
cpu_stat() { awk '/^cpu /{print $2+$3+$4, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }   # busy total
pid_ticks() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12+$13}' || echo 0; }
kthread_ticks() { { cat /proc/[0-9]*/stat 2>/dev/null || true; } | sed 's/^.*) //' | awk '$2==2{s+=$12+$13} END{print s+0}'; }
TIMES_F=$(mktemp "${TMPDIR:-/tmp}/put-durability-times.XXXXXX")
child_ticks() {  # -> CT. `times` must run in this shell, not in a pipe or $(...), whose children are not ours
  times >"$TIMES_F"
  CT=$(awk -v t="$TCK" 'NR==2{ s=0; for(i=1;i<=2;i++){ split($i,a,/[ms]/); s+=a[1]*60+a[2] } printf "%d", s*t }' "$TIMES_F")
}

# Other sessions share this machine: before each run wait (1 s samples, at most QUIET_BUDGET s over the whole
# script) until the machine is less than 20% busy, and record what others used during each run.
QUIET_BUDGET=${QUIET_BUDGET:-120}
wait_quiet() {
  local a b i
  for i in $(seq 1 30); do
    read -r a b < <(cpu_stat); sleep 1; read -r a2 b2 < <(cpu_stat)
    awk -v x=$((a2 - a)) -v y=$((b2 - b)) 'BEGIN{exit !(y > 0 && x / y < 0.20)}' && return 0
    [ "$QUIET_BUDGET" -gt 0 ] || return 0
    [ "$i" = 1 ] && log "  machine busy ($(( 100 * (a2 - a) / (b2 - b > 0 ? b2 - b : 1) ))%), waiting (budget ${QUIET_BUDGET}s)"
    QUIET_BUDGET=$((QUIET_BUDGET - 1))
  done
}

# one_run KIND CLIENTS TOTAL [server flags...] -> sets RPS P50 P99 (ms) HWM RSS0 (MB) ERRS, SCPU (server CPU ms
# per 1000 puts), KCPU (kernel threads' CPU ms per 1000 puts), FOREIGN (% of the machine's CPU used by other
# processes during the run)
one_run() {
  local kind=$1 c=$2 n=$3; shift 3
  local port out hwm rss0 s0 s1 k0 k1 busy0 all0 busy1 all1 kt0 kt1
  port=$(free_port)
  start_server "$kind" "$port" "$@"
  rss0=$(rss_kb "$SPID")
  wait_quiet
  kt0=$(kthread_ticks); s0=$(pid_ticks "$SPID"); child_ticks; k0=$CT; read -r busy0 all0 < <(cpu_stat)
  out=$(timeout 300 "$B" --endpoints="127.0.0.1:$port" --conns="${CONNS[$c]:-16}" --clients="$c" --precise \
        "${PUT_ARGS[@]}" --total="$n" 2>/dev/null) || true
  read -r busy1 all1 < <(cpu_stat); s1=$(pid_ticks "$SPID"); child_ticks; k1=$CT; kt1=$(kthread_ticks)
  hwm=$(hwm_kb "$SPID")
  kill -0 "$SPID" 2>/dev/null || log "WARNING: $kind died during the run"
  stop_server "$SPID" "$SDIR"
  RPS=$(awk '/Requests\/sec:/{print $2}' <<<"$out")
  P50=$(awk '$1=="50%"{printf "%.3f", $3*1000}' <<<"$out")
  P99=$(awk '$1=="99%"{printf "%.3f", $3*1000}' <<<"$out")
  ERRS=$(awk '/Error distribution/{e=1; next} e && /\[[0-9]+\]/{gsub(/[\[\]]/,"",$1); s+=$1} END{print s+0}' <<<"$out")
  HWM=$(awk -v k="$hwm" 'BEGIN{printf "%.1f", k/1024}')
  RSS0=$(awk -v k="$rss0" 'BEGIN{printf "%.1f", k/1024}')
  SCPU=$(awk -v t=$((s1 - s0)) -v n="$n" -v h="$TCK" 'BEGIN{printf "%.1f", t / h * 1000 / n * 1000}')
  FOREIGN=$(awk -v b=$((busy1 - busy0)) -v a=$((all1 - all0)) -v s=$((s1 - s0)) -v k=$((k1 - k0)) -v t=$((kt1 - kt0)) \
    'BEGIN{f = a > 0 ? (b - s - k - t) / a * 100 : 0; if (f < 0) f = 0; printf "%.0f", f}')
  KCPU=$(awk -v t=$((kt1 - kt0)) -v n="$n" -v h="$TCK" 'BEGIN{printf "%.1f", t / h * 1000 / n * 1000}')
  if [ -z "$RPS" ]; then log "WARNING: no result from the benchmark ($kind, $c clients)"; RPS=0 P50=0 P99=0; fi
}

# measured_run: one_run, repeated (at most MAX_TRIES times, and RETRY_BUDGET times over the whole script) while
# other processes used more than FOREIGN_MAX % of the machine; the last attempt is kept either way.
FOREIGN_MAX=${FOREIGN_MAX:-25} MAX_TRIES=3 RETRY_BUDGET=${RETRY_BUDGET:-15} DISCARDED=0
measured_run() {
  local try
  for try in $(seq 1 "$MAX_TRIES"); do
    one_run "$@"
    [ "$FOREIGN" -le "$FOREIGN_MAX" ] && return 0
    [ "$try" -lt "$MAX_TRIES" ] && [ "$RETRY_BUDGET" -gt 0 ] || { log "  (kept although others used ${FOREIGN}% CPU)"; return 0; }
    log "  others used ${FOREIGN}% CPU (${RPS%.*} req/s): discarded, again"
    RETRY_BUDGET=$((RETRY_BUDGET - 1)); DISCARDED=$((DISCARDED + 1))
  done
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END{if(NR==0){print "-";exit} m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; print m}'; }
fmt() { awk -v x="$1" -v d="$2" 'BEGIN{ if (x=="-") print "-"; else printf "%.*f", d, x }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0==0) print "-"; else printf "%.2f", a/b }'; }

dsync_ms() {  # mean latency of a 4 KiB O_DSYNC write (200 of them) in a file under $parent
  local f r; f=$(mktemp "$parent/dsync-probe.XXXXXX")
  r=$(dd if=/dev/zero of="$f" bs=4k count=200 oflag=dsync 2>&1 | awk '/copied/{printf "%.3f", $(NF-3)*1000/200}') || true
  rm -f "$f"; echo "${r:-?}"
}
QUIET_BUDGET_0=$QUIET_BUDGET RETRY_BUDGET_0=$RETRY_BUDGET
dsync0=$(dsync_ms); load0=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$(date +%s)
declare -A R=()   # R[kind,clients,metric] = space-separated values over rounds

# ---------- 2. Part A: etcd vs Plinth ----------
for r in $(seq 1 "$rounds"); do
  for c in "${CLIENTS[@]}"; do
    for kind in etcd plinth; do
      log "part A round $r/$rounds: $kind, $c clients, ${TOTAL[$c]} puts"
      measured_run "$kind" "$c" "${TOTAL[$c]}"
      log "  -> ${RPS%.*} req/s, p50 $P50 ms, p99 $P99 ms, peak RSS $HWM MB, server CPU $SCPU ms/1000 puts, kernel threads $KCPU, others ${FOREIGN}% CPU, errors $ERRS"
      R[$kind,$c,rps]+="$RPS "; R[$kind,$c,p50]+="$P50 "; R[$kind,$c,p99]+="$P99 "; R[$kind,$c,cpu]+="$SCPU "; R[$kind,$c,fgn]+="$FOREIGN "; R[$kind,$c,kcpu]+="$KCPU "
      R[$kind,$c,hwm]+="$HWM "; R[$kind,$c,err]+="$ERRS "
    done
  done
done

# ---------- 3. Part B: batch limit / interval ----------
bkinds=(plinth); [ $batch_etcd = 1 ] && bkinds=(plinth etcd)
declare -A Q=()
CONFIGS=(); for lim in "${LIMITS[@]}"; do for iv in "${INTERVALS[@]}"; do CONFIGS+=("$lim $iv"); done; done
for r in $(seq 1 "$brounds"); do
  for kind in "${bkinds[@]}"; do
    nc=${#CONFIGS[@]}
    for j in $(seq 0 $((nc - 1))); do
      # each round starts one config later (and runs backwards on even rounds), so no config always owns the same slot
      if (( r % 2 )); then idx=$(( (j + r - 1) % nc )); else idx=$(( (nc - 1 - j + r - 1) % nc )); fi
      read -r lim iv <<<"${CONFIGS[$idx]}"
      log "part B round $r/$brounds: $kind limit $lim interval $iv, 256 clients, $BTOTAL puts"
      measured_run "$kind" 256 "$BTOTAL" --backend-batch-limit="$lim" --backend-batch-interval="$iv"
      log "  -> ${RPS%.*} req/s, p99 $P99 ms, RSS $RSS0 -> peak $HWM MB, server CPU $SCPU ms/1000 puts, others ${FOREIGN}% CPU, errors $ERRS"
      k="$kind,$lim,$iv"
      Q[$k,rps]+="$RPS "; Q[$k,p50]+="$P50 "; Q[$k,p99]+="$P99 "; Q[$k,hwm]+="$HWM "; Q[$k,rss0]+="$RSS0 "; Q[$k,err]+="$ERRS "
      Q[$k,cpu]+="$SCPU "; Q[$k,fgn]+="$FOREIGN "
    done
  done
done
elapsed=$(( $(date +%s) - t0 ))

# ---------- 4. report ----------
med() { median <<<"${1:-}"; }
sum() { tr ' ' '\n' | awk '{s+=$1} END{print s+0}' <<<"${1:-}"; }
cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
dfh=$(df -h "$parent")
fst=$(df -T "$parent" | awk 'NR==2{print $2}')
dev=$(df "$parent" | awk 'NR==2{print $1}')
mnt=$(findmnt -no OPTIONS --target "$parent" 2>/dev/null || true)
bdev=$(basename "$dev")
rot=$(cat "/sys/block/$bdev/queue/rotational" 2>/dev/null || echo '?')
wcache=$(cat "/sys/block/$bdev/queue/write_cache" 2>/dev/null || echo '?')
dsync1=$(dsync_ms); load1=$(cut -d' ' -f1-3 /proc/loadavg)
rev=$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo '?')
dirty=$(cd "$root" && git status --porcelain -- src 2>/dev/null | grep -q . && echo ' (src/ has uncommitted changes)' || true)
etcdv=$(etcd --version 2>/dev/null | awk '/etcd Version/{print $3}')
mode=full; [ $quick = 1 ] && mode=quick

mkdir -p "$(dirname "$out")"
{
  echo "# Put throughput with fsync on real disk: Plinth vs etcd $etcdv"
  echo
  echo "Issue #5. Generated by \`bench/put-durability.sh\` — do not edit by hand."
  echo
  echo "- command: \`bash bench/put-durability.sh${args_given:+ $args_given}\` ($mode mode; ${elapsed} s)"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Plinth: git $rev$dirty, backend lmdb, defaults otherwise; etcd $etcdv (Debian), defaults otherwise (fsync on for both)"
  echo "- load tool: etcd 3.4's \`tools/benchmark\` (Go), \`benchmark --conns=C --clients=N --precise put --key-size=16 --val-size=256 --key-space-size=1000000 --total=T\`"
  echo "- machine: $(nproc) CPUs ($cpu), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, Node $(node --version), $(uname -sr)"
  echo "- disk: data dirs under \`$parent\` on $dev ($fst, $mnt; rotational=$rot, write_cache=$wcache); mean 4 KiB O_DSYNC write (dd) ${dsync0} ms before, ${dsync1} ms after the runs"
  echo "- client, server and load tool share the machine (load average before: $load0, after: $load1); every run is on a freshly started server with an empty data dir"
  echo "- other sessions share this machine: before each run the script waits (at most ${QUIET_BUDGET_0}s in all) for it to be under 20% busy, and a run during which other processes used more than ${FOREIGN_MAX}% of the CPU is discarded and repeated (at most $((MAX_TRIES - 1)) times per run, ${RETRY_BUDGET_0} in all): $DISCARDED run(s) discarded this time. CPU ms/1k puts counts the server process's own threads; kernel threads (journal, writeback: fsync's work) are listed apart"
  echo
  echo '```'
  echo "$dfh"
  echo '```'
  echo
  echo "## Part A — etcd vs Plinth, medians of $rounds round(s) (etcd, Plinth alternating; a fresh server per run)"
  echo
  echo "| clients | conns | puts | etcd req/s | Plinth req/s | **Plinth/etcd** | etcd p50 ms | Plinth p50 ms | etcd p99 ms | Plinth p99 ms | etcd peak RSS MB | Plinth peak RSS MB | etcd CPU ms/1k puts | Plinth CPU ms/1k puts | kernel threads ms/1k puts (etcd/Plinth) | errors (etcd/Plinth) |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for c in "${CLIENTS[@]}"; do
    er=$(med "${R[etcd,$c,rps]}"); pr=$(med "${R[plinth,$c,rps]}")
    printf '| %s | %s | %s | %s | %s | **%s** | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s/%s |\n' "$c" "${CONNS[$c]}" "${TOTAL[$c]}" \
      "$(fmt "$er" 0)" "$(fmt "$pr" 0)" "$(ratio "$pr" "$er")" \
      "$(fmt "$(med "${R[etcd,$c,p50]}")" 2)" "$(fmt "$(med "${R[plinth,$c,p50]}")" 2)" \
      "$(fmt "$(med "${R[etcd,$c,p99]}")" 2)" "$(fmt "$(med "${R[plinth,$c,p99]}")" 2)" \
      "$(fmt "$(med "${R[etcd,$c,hwm]}")" 0)" "$(fmt "$(med "${R[plinth,$c,hwm]}")" 0)" \
      "$(fmt "$(med "${R[etcd,$c,cpu]}")" 0)" "$(fmt "$(med "${R[plinth,$c,cpu]}")" 0)" \
      "$(fmt "$(med "${R[etcd,$c,kcpu]}")" 0)/$(fmt "$(med "${R[plinth,$c,kcpu]}")" 0)" \
      "$(sum "${R[etcd,$c,err]}")" "$(sum "${R[plinth,$c,err]}")"
  done
  echo
  echo "Per-round req/s (etcd | Plinth), and in brackets the % of the machine's CPU used by other processes during each kept run:"
  echo
  for c in "${CLIENTS[@]}"; do
    echo "- $c client(s): $(paste -d' ' <(tr ' ' '\n' <<<"${R[etcd,$c,rps]}" | grep .) <(tr ' ' '\n' <<<"${R[etcd,$c,fgn]}" | grep .) | awk '{printf "%.0f [%s%%] ", $1, $2}')| $(paste -d' ' <(tr ' ' '\n' <<<"${R[plinth,$c,rps]}" | grep .) <(tr ' ' '\n' <<<"${R[plinth,$c,fgn]}" | grep .) | awk '{printf "%.0f [%s%%] ", $1, $2}')"
  done
  echo
  echo "## Part B — ${bkinds[*]}: --backend-batch-limit × --backend-batch-interval, 256 clients / 16 conns, $BTOTAL puts, medians of $brounds round(s)"
  echo
  echo "RSS at start is VmRSS once healthy; peak is VmHWM at the end of the run. \"vs default\" compares with limit 10000 / interval 100ms (etcd's defaults and Plinth's) of the same server."
  echo
  echo "| server | batch limit | batch interval | req/s | vs default | p50 ms | p99 ms | RSS at start MB | peak RSS MB | CPU ms/1k puts | others' CPU % (max) | errors |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for kind in "${bkinds[@]}"; do
    dflt=$(med "${Q[$kind,10000,100ms,rps]}")
    for lim in "${LIMITS[@]}"; do
      for iv in "${INTERVALS[@]}"; do
        k="$kind,$lim,$iv"; q=$(med "${Q[$k,rps]}")
        name=Plinth; [ "$kind" = etcd ] && name=etcd
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$lim" "$iv" "$(fmt "$q" 0)" "$(ratio "$q" "$dflt")" \
          "$(fmt "$(med "${Q[$k,p50]}")" 2)" "$(fmt "$(med "${Q[$k,p99]}")" 2)" \
          "$(fmt "$(med "${Q[$k,rss0]}")" 0)" "$(fmt "$(med "${Q[$k,hwm]}")" 0)" "$(fmt "$(med "${Q[$k,cpu]}")" 0)" \
          "$(tr ' ' '\n' <<<"${Q[$k,fgn]}" | grep . | sort -g | tail -1)" "$(sum "${Q[$k,err]}")"
      done
    done
  done
} >"$out"

cat "$out"
log "wrote $out"
