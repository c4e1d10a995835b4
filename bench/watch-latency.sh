#!/usr/bin/env bash
# Watch event latency (put -> event received), Plinth (lmdb) against real etcd 3.4, measured with etcd's own
# Go load tool (tools/benchmark `watch-latency`).  Issue #3.
#
#   bash bench/watch-latency.sh [--quick] [--parent DIR] [--rounds N] [--out FILE]
#
# For watchers in 1, 100, 1000 (all on one key; streams 1, 10, 10), runs
#   benchmark --endpoints=127.0.0.1:PORT --conns=S --clients=W --precise watch-latency --total=T --put-rate=100
# against a fresh etcd then a fresh Plinth, for each of --rounds rounds (default 3: A B A B A B), T = 1000 puts
# (200 with --quick). The table has medians over rounds of p50/p90/p99/max latency and the Plinth/etcd ratios.
# Every server gets a fresh data dir under --parent (default /var/tmp: real disk, fsync on) and a free loopback
# port, and is stopped (its PID only) with its dir removed as soon as its run ends; an EXIT trap cleans up the rest.
# Writes bench/results/watch-latency.md (or --out) and prints it. ~4 min on 2 CPUs (full), ~1.5 min (--quick).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
tools=$(cd "$root/../shared/tools" 2>/dev/null && pwd || true)
[ -n "$tools" ] && [ -x "$tools/etcd-local.sh" ] || { echo "need ../shared/tools/etcd-local.sh next to the repo" >&2; exit 2; }

quick=0 parent=/var/tmp rounds=3 out="$root/bench/results/watch-latency.md"
args_given="$*"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --parent) parent=${2:?}; shift ;;
    --rounds) rounds=${2:?}; shift ;;
    --out) out=${2:?}; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[[ $rounds =~ ^[1-9][0-9]?$ ]] || { echo "--rounds: 1..99" >&2; exit 2; }

WATCHERS=(1 100 1000)
declare -A STREAMS=([1]=1 [100]=10 [1000]=10)   # --conns: one watch stream per connection (see report)
PUT_RATE=100
if [ $quick = 1 ]; then TOTAL=200; else TOTAL=1000; fi
RUN_TIMEOUT=150   # seconds per benchmark run

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
command -v etcdctl >/dev/null || { echo "etcdctl not on PATH" >&2; exit 1; }
mkdir -p "$parent"

# ---------- server lifecycle ----------
declare -A LIVE=()   # pid -> data dir, for the EXIT trap
OUT_F=$(mktemp "${TMPDIR:-/tmp}/watch-latency-out.XXXXXX")
TIMES_F=$(mktemp "${TMPDIR:-/tmp}/watch-latency-times.XXXXXX")
cleanup() {
  local pid
  for pid in "${!LIVE[@]}"; do stop_server "$pid" "${LIVE[$pid]}"; done
  rm -f "$OUT_F" "$TIMES_F"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {  # a port p with p and p+1 both unused on loopback; bounded attempts
  local i p
  for i in $(seq 1 200); do
    p=$(( 20000 + RANDOM % 12000 ))   # below the ephemeral range (32768+)
    if ! ss -Htan "sport = :$p or sport = :$((p + 1))" | grep -q .; then echo "$p"; return 0; fi
  done
  echo "no free port" >&2; return 1
}

healthy() { ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$1" --command-timeout=1s endpoint health >/dev/null 2>&1; }

# start_server etcd|plinth PORT -> sets SPID, SDIR
start_server() {
  local kind=$1 port=$2 i
  if [ "$kind" = etcd ]; then
    read -r SPID SDIR < <("$tools/etcd-local.sh" start "$parent" "$port")
    [ -n "${SPID:-}" ] || { echo "etcd did not start" >&2; return 1; }
    LIVE[$SPID]=$SDIR
  else
    SDIR=$(mktemp -d "$parent/plinth-perf.XXXXXX")
    node "$root/bin/plinth.js" --data-dir "$SDIR/data" --listen-client-urls "http://127.0.0.1:$port" \
      --backend lmdb >"$SDIR/plinth.log" 2>&1 &
    SPID=$!
    LIVE[$SPID]=$SDIR
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

# CPU accounting in clock ticks (as bench/put-durability.sh): machine busy/all time, a PID's own time, this
# shell's reaped children (the load tool), so that other sessions' use of the shared machine can be reported.
TCK=$(getconf CLK_TCK)
cpu_stat() { awk '/^cpu /{print $2+$3+$4, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
pid_ticks() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12+$13}' || echo 0; }
child_ticks() {  # -> CT. `times` must run in this shell, not in a pipe or $(...)
  times >"$TIMES_F"
  CT=$(awk -v t="$TCK" 'NR==2{ s=0; for(i=1;i<=2;i++){ split($i,a,/[ms]/); s+=a[1]*60+a[2] } printf "%d", s*t }' "$TIMES_F")
}

# Before each run wait (1 s samples, at most QUIET_BUDGET s over the whole script) until the machine is less
# than 20% busy.
QUIET_BUDGET=${QUIET_BUDGET:-60}
wait_quiet() {
  local a b a2 b2 i
  for i in $(seq 1 20); do
    read -r a b < <(cpu_stat); sleep 1; read -r a2 b2 < <(cpu_stat)
    awk -v x=$((a2 - a)) -v y=$((b2 - b)) 'BEGIN{exit !(y > 0 && x / y < 0.20)}' && return 0
    [ "$QUIET_BUDGET" -gt 0 ] || return 0
    [ "$i" = 1 ] && log "  machine busy ($(( 100 * (a2 - a) / (b2 - b > 0 ? b2 - b : 1) ))%), waiting (budget ${QUIET_BUDGET}s)"
    QUIET_BUDGET=$((QUIET_BUDGET - 1))
  done
}

ms() { awk -v s="$1" 'BEGIN{ if (s=="") print ""; else printf "%.3f", s*1000 }'; }

# one_run KIND WATCHERS -> P50 P90 P99 PMAX (ms), EVENTS, TOTAL_S (the tool's measured phase), SETUP_S (tool
# wall time minus that: dial + creating the watchers + exit), SCPU (server CPU ms per put), HWM (MB),
# FOREIGN (% of the machine's CPU used by other processes during the run), OK (0 if no result)
one_run() {
  local kind=$1 w=$2 port rc t0 t1 s0 s1 k0 k1 busy0 all0 busy1 all1 hwm
  port=$(free_port)
  start_server "$kind" "$port"
  wait_quiet
  s0=$(pid_ticks "$SPID"); child_ticks; k0=$CT; read -r busy0 all0 < <(cpu_stat); t0=$(date +%s.%N)
  rc=0
  timeout "$RUN_TIMEOUT" "$B" --endpoints="127.0.0.1:$port" --conns="${STREAMS[$w]}" --clients="$w" --precise \
    watch-latency --total="$TOTAL" --put-rate="$PUT_RATE" >"$OUT_F" 2>/dev/null || rc=$?
  t1=$(date +%s.%N); read -r busy1 all1 < <(cpu_stat); s1=$(pid_ticks "$SPID"); child_ticks; k1=$CT
  hwm=$(hwm_kb "$SPID")
  kill -0 "$SPID" 2>/dev/null || log "WARNING: $kind died during the run"
  stop_server "$SPID" "$SDIR"
  P50=$(ms "$(awk '$1=="50%"{print $3}' "$OUT_F")")
  P90=$(ms "$(awk '$1=="90%"{print $3}' "$OUT_F")")
  P99=$(ms "$(awk '$1=="99%"{print $3}' "$OUT_F")")
  PMAX=$(ms "$(awk '$1=="Slowest:"{print $2}' "$OUT_F")")
  TOTAL_S=$(awk '$1=="Total:"{printf "%.2f", $2}' "$OUT_F")
  # events = watchers * puts; the tool's histogram counts them
  EVENTS=$(awk '/Response time histogram/{h=1; next} h && /\[[0-9]+\]/{gsub(/[\[\]]/,"",$2); s+=$2} /Latency distribution/{h=0} END{print s+0}' "$OUT_F")
  SETUP_S=$(awk -v a="$t0" -v b="$t1" -v m="${TOTAL_S:-0}" 'BEGIN{printf "%.2f", (b - a) - m}')
  SCPU=$(awk -v t=$((s1 - s0)) -v n="$TOTAL" -v h="$TCK" 'BEGIN{printf "%.2f", t / h * 1000 / n}')
  HWM=$(awk -v k="$hwm" 'BEGIN{printf "%.0f", k/1024}')
  FOREIGN=$(awk -v b=$((busy1 - busy0)) -v a=$((all1 - all0)) -v s=$((s1 - s0)) -v k=$((k1 - k0)) \
    'BEGIN{f = a > 0 ? (b - s - k) / a * 100 : 0; if (f < 0) f = 0; printf "%.0f", f}')
  OK=1
  if [ -z "$P50" ] || [ -z "$P99" ]; then
    log "WARNING: no result from the benchmark ($kind, $w watchers, exit $rc)"; OK=0
    P50=- P90=- P99=- PMAX=- TOTAL_S=- EVENTS=0
  fi
}

median() { tr ' ' '\n' | grep -v '^-\?$' | sort -g | awk '{a[NR]=$1} END{if(NR==0){print "-";exit} m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; print m}'; }
fmt() { awk -v x="$1" -v d="$2" 'BEGIN{ if (x=="-") print "-"; else printf "%.*f", d, x }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="-" || b=="-" || b+0==0) print "-"; else printf "%.2f", a/b }'; }

dsync_ms() {  # mean latency of a 4 KiB O_DSYNC write (200 of them) in a file under $parent
  local f r; f=$(mktemp "$parent/dsync-probe.XXXXXX")
  r=$(dd if=/dev/zero of="$f" bs=4k count=200 oflag=dsync 2>&1 | awk '/copied/{printf "%.3f", $(NF-3)*1000/200}') || true
  rm -f "$f"; echo "${r:-?}"
}
QUIET_BUDGET_0=$QUIET_BUDGET
dsync0=$(dsync_ms); load0=$(cut -d' ' -f1-3 /proc/loadavg)
t_start=$(date +%s)
declare -A R=()   # R[kind,watchers,metric] = space-separated values over rounds
FAILED=0

# ---------- 2. runs: etcd, Plinth alternating ----------
for r in $(seq 1 "$rounds"); do
  for w in "${WATCHERS[@]}"; do
    for kind in etcd plinth; do
      log "round $r/$rounds: $kind, $w watcher(s) on ${STREAMS[$w]} stream(s), $TOTAL puts at $PUT_RATE/s"
      one_run "$kind" "$w"
      [ "$OK" = 1 ] || FAILED=$((FAILED + 1))
      log "  -> p50 $P50 ms, p90 $P90 ms, p99 $P99 ms, max $PMAX ms; $EVENTS events in $TOTAL_S s (setup $SETUP_S s); server CPU $SCPU ms/put, peak RSS $HWM MB; others ${FOREIGN}% CPU"
      R[$kind,$w,p50]+="$P50 "; R[$kind,$w,p90]+="$P90 "; R[$kind,$w,p99]+="$P99 "; R[$kind,$w,max]+="$PMAX "
      R[$kind,$w,tot]+="$TOTAL_S "; R[$kind,$w,setup]+="$SETUP_S "; R[$kind,$w,cpu]+="$SCPU "; R[$kind,$w,hwm]+="$HWM "
      R[$kind,$w,fgn]+="$FOREIGN "; R[$kind,$w,ev]+="$EVENTS "
    done
  done
done
elapsed=$(( $(date +%s) - t_start ))

# ---------- 3. report ----------
med() { median <<<"${1:-}"; }
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
per_round() {  # KIND W METRIC -> "a [f%] b [g%] ..."
  paste -d' ' <(tr ' ' '\n' <<<"${R[$1,$2,$3]}" | grep .) <(tr ' ' '\n' <<<"${R[$1,$2,fgn]}" | grep .) | awk '{printf "%s [%s%%] ", $1, $2}'
}

mkdir -p "$(dirname "$out")"
{
  echo "# Watch event latency (put → event received): Plinth vs etcd $etcdv"
  echo
  echo "Issue #3. Generated by \`bench/watch-latency.sh\` — do not edit by hand."
  echo
  echo "- command: \`bash bench/watch-latency.sh${args_given:+ $args_given}\` ($mode mode; ${elapsed} s)"
  echo "- load, per run: \`benchmark --endpoints=127.0.0.1:PORT --conns=S --clients=W --precise watch-latency --total=$TOTAL --put-rate=$PUT_RATE\` (etcd 3.4.23's \`tools/benchmark\`, Go; key and value 32 random bytes)"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Plinth: git $rev$dirty, \`--backend lmdb\`, defaults otherwise; etcd $etcdv (Debian \`etcd-server\`), defaults otherwise; fsync on for both"
  echo "- machine: $(nproc) CPUs ($cpu), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, Node $(node --version), $(uname -sr)"
  echo "- disk: data dirs under \`$parent\` on $dev ($fst, $mnt; rotational=$rot, write_cache=$wcache); mean 4 KiB O_DSYNC write (dd) ${dsync0} ms before, ${dsync1} ms after the runs"
  echo "- server, load tool and other sessions share the machine (load average before: $load0, after: $load1); before each run the script waits (at most ${QUIET_BUDGET_0} s in all) for it to be under 20% busy; a fresh server with an empty data dir per run, loopback only; $FAILED run(s) gave no result"
  echo
  echo '```'
  echo "$dfh"
  echo '```'
  echo
  echo "## What the tool measures"
  echo
  echo "\`watch-latency\` makes S client connections and W watchers (\`--clients\`), watcher i on connection i mod S;"
  echo "the Go client puts all watchers of one connection on one gRPC watch stream, so there are S streams with W/S"
  echo "watchers each, all watching the same single key (the tool has no prefix mode: a prefix watch is not measured"
  echo "here). A separate connection then puts that key $TOTAL times, rate-limited to $PUT_RATE/s (burst $PUT_RATE). For each put it"
  echo "waits for the event on **every** watcher before the next put, and records one sample per watcher: from the"
  echo "moment the Put call **returned** to the moment that watcher's goroutine got the event. So the clock starts at"
  echo "the put's response, not its request: an event the server sends before or with the put response counts as"
  echo "≈0 plus Go scheduling; the numbers are the event's lag behind the put acknowledgement plus the client-side"
  echo "fan-out to W goroutines (which grows with W and shares the 2 CPUs with the server). W × $TOTAL samples per run."
  echo "With 1 watcher both servers usually have the event on the wire before the put response, so that row is"
  echo "Go scheduling noise (µs) and its ratios mean little; the tool's measured phase below shows the full cycle"
  echo "(put + every watcher's event) when it is longer than the rate limit allows."
  echo
  echo "## Latency, medians of $rounds round(s) (etcd, Plinth alternating; a fresh server per run)"
  echo
  echo "| watchers | streams | puts | events/run | etcd p50 ms | Plinth p50 ms | **p50 Plinth/etcd** | etcd p90 ms | Plinth p90 ms | etcd p99 ms | Plinth p99 ms | **p99 Plinth/etcd** | etcd max ms | Plinth max ms | max Plinth/etcd |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for w in "${WATCHERS[@]}"; do
    e50=$(med "${R[etcd,$w,p50]}"); p50=$(med "${R[plinth,$w,p50]}")
    e99=$(med "${R[etcd,$w,p99]}"); p99=$(med "${R[plinth,$w,p99]}")
    emx=$(med "${R[etcd,$w,max]}"); pmx=$(med "${R[plinth,$w,max]}")
    printf '| %s | %s | %s | %s | %s | %s | **%s** | %s | %s | %s | %s | **%s** | %s | %s | %s |\n' \
      "$w" "${STREAMS[$w]}" "$TOTAL" "$((w * TOTAL))" \
      "$(fmt "$e50" 3)" "$(fmt "$p50" 3)" "$(ratio "$p50" "$e50")" \
      "$(fmt "$(med "${R[etcd,$w,p90]}")" 3)" "$(fmt "$(med "${R[plinth,$w,p90]}")" 3)" \
      "$(fmt "$e99" 3)" "$(fmt "$p99" 3)" "$(ratio "$p99" "$e99")" \
      "$(fmt "$emx" 2)" "$(fmt "$pmx" 2)" "$(ratio "$pmx" "$emx")"
  done
  echo
  echo "## Around the latency, medians"
  echo
  echo "Measured phase = the tool's \`Total\` (all puts and their events; at least ~$(( (TOTAL - PUT_RATE) / PUT_RATE )) s from the rate limit, more when"
  echo "a put plus its fan-out takes longer than 1/$PUT_RATE s). Setup = the tool's wall time minus that: dialing and"
  echo "creating the W watchers (the Go client creates them one at a time per stream). Server CPU counts the server"
  echo "process's threads over the whole tool run, per put."
  echo
  echo "| watchers | etcd measured phase s | Plinth measured phase s | etcd setup s | Plinth setup s | etcd CPU ms/put | Plinth CPU ms/put | etcd peak RSS MB | Plinth peak RSS MB |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for w in "${WATCHERS[@]}"; do
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$w" \
      "$(fmt "$(med "${R[etcd,$w,tot]}")" 2)" "$(fmt "$(med "${R[plinth,$w,tot]}")" 2)" \
      "$(fmt "$(med "${R[etcd,$w,setup]}")" 2)" "$(fmt "$(med "${R[plinth,$w,setup]}")" 2)" \
      "$(fmt "$(med "${R[etcd,$w,cpu]}")" 2)" "$(fmt "$(med "${R[plinth,$w,cpu]}")" 2)" \
      "$(fmt "$(med "${R[etcd,$w,hwm]}")" 0)" "$(fmt "$(med "${R[plinth,$w,hwm]}")" 0)"
  done
  echo
  echo "Per-round p99 ms (etcd | Plinth), in brackets the % of the machine's CPU used by other processes during that run:"
  echo
  for w in "${WATCHERS[@]}"; do
    echo "- $w watcher(s): $(per_round etcd "$w" p99)| $(per_round plinth "$w" p99)"
  done
} >"$out"

cat "$out"
log "wrote $out"
