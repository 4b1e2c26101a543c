#!/usr/bin/env bash
# Task-queue benchmark of issue 9 (the queue lives in the store): prints each figure beside its
# target with PASS or MISS. The load comes from swapline-loadgen (Sources/swapline-loadgen), a C
# gRPC client that follows leases and checks grpc-status. All traffic stays on 127.0.0.1.
#
#   tools/bench-queue.sh                     # SQLite: the store at 10^4 and at 10^6 tasks
#   tools/bench-queue.sh --postgres URL      # PostgreSQL: one server, then two on one database
#
# SQLite (synchronous=full, group commit on: the server's defaults), on one server process:
#   1. RSS of the idle server on an empty data directory.
#   2. Fill to BENCH_BASE tasks; CreateTask rate (BENCH_CREATE calls) and full-cycle rate
#      (BENCH_CONSUMERS consumers for BENCH_DURATION s: CreateTask, FetchTask, UpdateStatus
#      PROCESSING, UpdateStatus COMPLETED). These runs add their own tasks to the store.
#   3. Fill to BENCH_TASKS: PENDING tasks from CreateTask, then BENCH_CYCLED cycles, which
#      complete the oldest ones, so the store holds a mix of PENDING and COMPLETED tasks.
#   4. RSS of the filled server; stop it; start it again on the same directory, timing how long
#      until it prints its listening line; CreateTask and cycle rates again; RSS again.
# PostgreSQL (--postgres URL or BENCH_POSTGRES=URL):
#   the cycle rate with one server, then with a second server on the same database and the
#   consumers spread over both; in each run no task may be acknowledged COMPLETED twice.
#   The runs add tasks to that database; give it one made for benchmarking.
#
# Nothing is pinned: the targets count the load generator's CPU on the same 2 cores.
#
# Environment (defaults in brackets):
#   BENCH_TASKS [1000000]   stored tasks for the large measurements
#   BENCH_BASE [10000]      stored tasks for the small measurements
#   BENCH_CYCLED [BENCH_TASKS/10]  cycles run while filling (tasks left COMPLETED)
#   BENCH_CREATE [20000]    CreateTask calls per create-rate measurement
#   BENCH_DURATION [10]     seconds per cycle-rate measurement
#   BENCH_WARMUP [2]        seconds of cycles before each cycle-rate measurement on a fresh process
#   BENCH_CONSUMERS [64]    concurrent consumers in cycle runs
#   BENCH_CONNECTIONS [4]   HTTP/2 connections per server
#   BENCH_STREAMS [32]      concurrent CreateTask calls per connection in create runs
#   BENCH_LOADGEN_THREADS [1]
#   SWAPLINE_BIN, LOADGEN_BIN  binaries to use [release builds, built here]
#   BENCH_SKIP_BUILD=1      do not run `swift build -c release`
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

postgres="${BENCH_POSTGRES:-}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --postgres) postgres="${2:?--postgres needs a URL}"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 1 ;;
    esac
done

tasks="${BENCH_TASKS:-1000000}"
base="${BENCH_BASE:-10000}"
cycled="${BENCH_CYCLED:-$((tasks / 10))}"
create_calls="${BENCH_CREATE:-20000}"
duration="${BENCH_DURATION:-10}"
warmup="${BENCH_WARMUP:-2}"
consumers="${BENCH_CONSUMERS:-64}"
connections="${BENCH_CONNECTIONS:-4}"
streams="${BENCH_STREAMS:-32}"
loadgen_threads="${BENCH_LOADGEN_THREADS:-1}"

if [[ "${BENCH_SKIP_BUILD:-0}" != 1 && ( -z "${SWAPLINE_BIN:-}" || -z "${LOADGEN_BIN:-}" ) ]]; then
    # `swift build` builds only the last of several --product options, hence two calls.
    for product in swapline swapline-loadgen; do
        echo "==> swift build -c release --product $product" >&2
        swift build -c release --product "$product" >&2
    done
fi
bin_dir="$(swift build -c release --show-bin-path)"
SWAPLINE_BIN="${SWAPLINE_BIN:-$bin_dir/swapline}"
LOADGEN_BIN="${LOADGEN_BIN:-$bin_dir/swapline-loadgen}"
for bin in "$SWAPLINE_BIN" "$LOADGEN_BIN"; do
    [[ -x "$bin" ]] || { echo "error: $bin not found (build it, or unset BENCH_SKIP_BUILD)" >&2; exit 1; }
done

work="$(mktemp -d -t swapline-bench-queue.XXXXXX)"
# Children still running. A pid leaves the list once it is reaped, so that cleanup can never
# signal an unrelated process that got the number later.
pids=()
forget() { local kept=() pid; for pid in "${pids[@]}"; do [[ "$pid" == "$1" ]] || kept+=("$pid"); done; pids=("${kept[@]}"); }
stop_pid() {  # pid: SIGTERM, then SIGKILL when it outlives the shutdown grace
    local pid="$1"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    forget "$pid"
}
cleanup() {  # newest first: a load generator ends before the server it loads
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop_pid "${pids[i]}"; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { date +%s%3N; }

# Starts `swapline serve` and waits for its listening line. Sets server_pid, server_port and
# server_start_ms (launch to listening line). Usage: start_server NAME DATA_DIR [serve flags...]
start_server() {
    local name="$1" data="$2" started line
    shift 2
    started="$(now_ms)"
    # One load generator is one client: the per-client rate limit and the queue cap are off.
    "$SWAPLINE_BIN" serve --host 127.0.0.1 --port 0 --data "$data" --shutdown-grace-ms 2000 --log-level warning \
        --create-rate 0 --max-queue-length 0 \
        "$@" >"$work/$name.out" 2>"$work/$name.err" &
    server_pid=$!
    pids+=("$server_pid")
    server_port=""
    for _ in $(seq 60000); do  # 10 ms steps, 10 minutes at most
        line="$(sed -n 's/^swapline listening on 127\.0\.0\.1:\([0-9]\+\)$/\1/p' "$work/$name.out")"
        if [[ -n "$line" ]]; then
            server_port="$line"
            break
        fi
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "error: server $name exited before listening:" >&2
            cat "$work/$name.err" >&2
            exit 1
        fi
        sleep 0.01
    done
    [[ -n "$server_port" ]] || { echo "error: server $name did not report its port" >&2; exit 1; }
    server_start_ms=$(($(now_ms) - started))
}

rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }  # RESULT line, key -> value

# Totals over every load-generator run: tasks stored (created, whether or not their cycle
# finished), failed calls, and whether any task was acknowledged COMPLETED twice.
stored=0
errors=0
duplicated=0

# Runs the load generator, its report on stderr, and sets `result` to its RESULT line. It runs
# in the background and is waited for, so that a signal to this script is handled at once.
loadgen() {  # name args...
    local name="$1" status=0
    shift
    echo "==> swapline-loadgen $*" >&2
    "$LOADGEN_BIN" "$@" --threads "$loadgen_threads" --progress 10 >"$work/$name.txt" &
    pids+=($!)
    wait $! || status=$?
    forget $!
    sed 's/^/    /' "$work/$name.txt" >&2
    if [[ "$status" == 2 ]]; then
        echo "ERROR: $name: a task was acknowledged COMPLETED more than once" >&2
        duplicated=1
    elif [[ "$status" != 0 ]]; then
        echo "warning: $name: swapline-loadgen exited with $status (failed calls or an aborted run)" >&2
    fi
    result="$(grep '^RESULT ' "$work/$name.txt")" || { echo "error: $name printed no RESULT line" >&2; exit 1; }
    # Create and cycle runs name the tasks they created differently.
    stored=$((stored + $(field "$result" tasks)$(field "$result" tasks_created)))
    errors=$((errors + $(field "$result" errors)))
}

create_run() {  # name count server-port
    loadgen "$1" create -n "$2" --server "127.0.0.1:$3" --connections "$connections" --streams "$streams"
}
cycle_run() {  # name (SECONDS | -nCOUNT) server-ports...
    local name="$1" amount=(-d "$2") servers=() port
    [[ "$2" == -n* ]] && amount=(-n "${2#-n}")
    shift 2
    for port in "$@"; do servers+=(--server "127.0.0.1:$port"); done
    loadgen "$name" cycle "${amount[@]}" "${servers[@]}" --consumers "$consumers" --connections "$connections"
}
warm_up() {  # name server-ports...: cycles, so that the measured run meets no cold caches
    if [[ "$warmup" != 0 ]]; then cycle_run "$1" "$warmup" "${@:2}"; fi
}

awk_calc() { awk "BEGIN { $1 }"; }
verdict() { awk_calc "print ($1) ? \"PASS\" : \"MISS\""; }
percent() { awk_calc "if ($2 > 0) printf \"%.0f%%\", $1 / $2 * 100; else print \"n/a\""; }
row() { printf '%-52s %-26s %-24s %s\n' "$@"; }
machine="$(nproc) cores, $(sed -n 's/^model name\s*:\s*//p' /proc/cpuinfo | head -1)"

# --- PostgreSQL ---------------------------------------------------------------------------
if [[ -n "$postgres" ]]; then
    shown="$(sed -E 's#://([^:@/]+):[^@]*@#://\1@#' <<<"$postgres")"  # never print the password
    durability="$(psql -X -At "$postgres" -c "SELECT 'fsync=' || current_setting('fsync') || ', synchronous_commit=' || current_setting('synchronous_commit')" 2>/dev/null || echo "settings unknown")"
    echo "==> PostgreSQL store $shown ($durability)" >&2
    start_server pg-a "$work/pg-a" --store "$postgres"
    port_a="$server_port"
    warm_up pg-warmup-one "$port_a"
    cycle_run pg-one "$duration" "$port_a"
    one="$result"
    start_server pg-b "$work/pg-b" --store "$postgres"
    port_b="$server_port"
    warm_up pg-warmup-two "$port_a" "$port_b"
    cycle_run pg-two "$duration" "$port_a" "$port_b"
    two="$result"

    echo
    echo "machine:  $machine"
    echo "store:    PostgreSQL $shown ($durability); $consumers consumers spread over the servers; $duration s per run"
    row "figure" "one server" "two servers" "verdict"
    row "full cycles/s" "$(field "$one" cycles_per_s)" "$(field "$two" cycles_per_s)" ""
    row "cycle p50 / p99 ms" "$(field "$one" p50_ms) / $(field "$one" p99_ms)" \
        "$(field "$two" p50_ms) / $(field "$two" p99_ms)" ""
    row "failed calls" "$(field "$one" errors)" "$(field "$two" errors)" ""
    row "tasks completed twice (target 0)" "$(field "$one" duplicates)" "$(field "$two" duplicates)" \
        "$( ((duplicated)) && echo MISS || echo PASS)"
    exit $((duplicated ? 2 : 0))
fi

# --- SQLite -------------------------------------------------------------------------------
data="$work/sqlite"
sqlite_flags=(--store sqlite --synchronous full --group-commit on)
start_server empty "$data" "${sqlite_flags[@]}"
sleep 1  # let the idle server settle before its RSS is read
rss_empty="$(rss_mib "$server_pid")"
echo "==> idle server on an empty data directory: RSS $rss_empty MiB" >&2

create_run fill-small "$base" "$server_port"
warm_up warmup-small "$server_port"
small_at="$stored"
echo "==> measuring from $small_at stored tasks" >&2
create_run create-small "$create_calls" "$server_port"
create_small="$result"
cycle_run cycle-small "$duration" "$server_port"
cycle_small="$result"

fill=$((tasks - stored - cycled))
if ((fill > 0)); then create_run fill-pending "$fill" "$server_port"; fi
if ((cycled > 0)); then cycle_run fill-completed "-n$cycled" "$server_port"; fi
sleep 2
rss_filled="$(rss_mib "$server_pid")"
echo "==> $stored stored tasks: RSS $rss_filled MiB" >&2

stop_pid "$server_pid"
start_server restarted "$data" "${sqlite_flags[@]}"
restart_ms="$server_start_ms"
large_at="$stored"
echo "==> restart on $stored stored tasks: listening after $restart_ms ms" >&2
warm_up warmup-large "$server_port"
create_run create-large "$create_calls" "$server_port"
create_large="$result"
cycle_run cycle-large "$duration" "$server_port"
cycle_large="$result"
sleep 2
rss_restarted="$(rss_mib "$server_pid")"

cs="$(field "$create_small" tasks_per_s)" cl="$(field "$create_large" tasks_per_s)"
ys="$(field "$cycle_small" cycles_per_s)" yl="$(field "$cycle_large" cycles_per_s)"
small="from $small_at stored" large="from $large_at stored"
growth() { awk_calc "printf \"%+.1f\", $1 - $rss_empty"; }
echo
echo "machine:  $machine"
echo "store:    SQLite, synchronous=full, group commit on; $consumers consumers; $duration s per cycle run,"
echo "          $create_calls calls per CreateTask run (the runs add tasks to the store). Filled with"
echo "          PENDING tasks, $cycled then COMPLETED by cycles; $stored stored when the script ended."
row "figure" "measured" "target" "verdict"
row "CreateTask/s, $small" "$cs" "" ""
row "CreateTask/s, $large" "$cl ($(percent "$cl" "$cs"))" ">= 80% of the small one" "$(verdict "$cl >= 0.8 * $cs")"
row "full cycles/s, $small" "$ys" ">= 5000" "$(verdict "$ys >= 5000")"
row "full cycles/s, $large" "$yl ($(percent "$yl" "$ys"))" ">= 80% of the small one" "$(verdict "$yl >= 0.8 * $ys")"
row "" "" ">= 5000" "$(verdict "$yl >= 5000")"
row "cycle p50 / p99 ms, $small" "$(field "$cycle_small" p50_ms) / $(field "$cycle_small" p99_ms)" "" ""
row "cycle p50 / p99 ms, $large" "$(field "$cycle_large" p50_ms) / $(field "$cycle_large" p99_ms)" "" ""
row "RSS, idle server, empty store" "$rss_empty MiB" "" ""
row "RSS after filling to $tasks" "$rss_filled MiB ($(growth "$rss_filled"))" "<= empty + 64 MiB" \
    "$(verdict "$rss_filled - $rss_empty <= 64")"
row "RSS after restart and the large runs" "$rss_restarted MiB ($(growth "$rss_restarted"))" "<= empty + 64 MiB" \
    "$(verdict "$rss_restarted - $rss_empty <= 64")"
row "restart, launch to listening, $large" "$(awk_calc "printf \"%.2f s\", $restart_ms / 1000")" "< 2 s" \
    "$(verdict "$restart_ms < 2000")"
row "tasks completed twice" "$( ((duplicated)) && echo 'yes, see above' || echo none)" "none" \
    "$( ((duplicated)) && echo MISS || echo PASS)"
row "failed calls, all runs" "$errors" "0" "$(verdict "$errors == 0")"
exit $((duplicated ? 2 : 0))
