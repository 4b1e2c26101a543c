#!/usr/bin/env bash
# Unary CreateTask throughput against nghttpd serving a small static file, same h2load settings,
# same machine, same run; prints both req/s figures and their ratio (swapline / nghttpd).
# All traffic stays on 127.0.0.1.
#
# Environment (defaults in brackets):
#   BENCH_CLIENTS [16]  BENCH_STREAMS [16]  BENCH_DURATION [10]  BENCH_THREADS [1]
#   BENCH_WARMUP [2]     seconds of h2load warm-up (-w 0 disables) before each measurement
#   BENCH_PIN [auto]     "1" pins each server to one core and h2load to the others with taskset,
#                        "0" never pins, "auto" pins when there are at least 2 cores
#   BENCH_SERVER_CPU [0] core for the server under test; h2load gets the remaining cores
#   SWAPLINE_BIN         binary to benchmark [release build, built here]
#   BENCH_SKIP_BUILD=1   do not run `swift build -c release`
#   BENCH_STORE [memory] task store of the server under test: memory (the request path alone)
#                        or sqlite (durable, group commit; its data directory is a temp dir)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

clients="${BENCH_CLIENTS:-16}"
streams="${BENCH_STREAMS:-16}"
duration="${BENCH_DURATION:-10}"
threads="${BENCH_THREADS:-1}"
warmup="${BENCH_WARMUP:-2}"
pin="${BENCH_PIN:-auto}"
server_cpu="${BENCH_SERVER_CPU:-0}"

for tool in h2load nghttpd python3; do
    command -v "$tool" >/dev/null || {
        echo "error: $tool not found (Debian: nghttp2-client, nghttp2-server, python3)" >&2
        exit 1
    }
done

if [[ -z "${SWAPLINE_BIN:-}" ]]; then
    if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
        echo "==> swift build -c release --product swapline" >&2
        swift build -c release --product swapline >&2
    fi
    SWAPLINE_BIN="$(swift build -c release --show-bin-path)/swapline"
fi
[[ -x "$SWAPLINE_BIN" ]] || { echo "error: $SWAPLINE_BIN not found" >&2; exit 1; }

ncpu="$(nproc)"
server_pin=() client_pin=()
if [[ "$pin" == 1 || ( "$pin" == auto && "$ncpu" -ge 2 ) ]] && command -v taskset >/dev/null; then
    others="$(python3 -c "import sys; n,s=int(sys.argv[1]),int(sys.argv[2]); print(','.join(str(c) for c in range(n) if c!=s))" "$ncpu" "$server_cpu")"
    server_pin=(taskset -c "$server_cpu")
    client_pin=(taskset -c "$others")
fi

work="$(mktemp -d -t swapline-bench.XXXXXX)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# --- request bodies: 5-byte gRPC prefix + CreateTaskRequest ---------------------------------
# Hand-encoded protobuf (field 2 = FaceSwapParams with URL fields 1/2, field 4 = priority), so
# no stubs are needed. Usage: create_task_body FILE SOURCE_URL PRIORITY
create_task_body() {
    python3 - "$@" <<'PY'
import struct, sys
def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F; n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n: return bytes(out)
def field(num, payload):
    return bytes([num << 3 | 2]) + varint(len(payload)) + payload
path, source, priority = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
msg = field(2, field(1, source) + field(2, b"https://example.com/target.jpg"))
if priority:
    msg += bytes([4 << 3 | 0]) + varint(priority)
open(path, "wb").write(struct.pack(">BI", 0, len(msg)) + msg)
PY
}
create_task_body "$work/create.bin" "https://example.com/source.jpg" 0
head -c 64 /dev/zero | tr '\0' 'x' > "$work/index.html"

# --- swapline ------------------------------------------------------------------------------
# h2load is one client: the per-client rate limit and the queue cap are off.
"${server_pin[@]}" "$SWAPLINE_BIN" serve --host 127.0.0.1 --port 0 --create-rate 0 --max-queue-length 0 \
    --store "${BENCH_STORE:-memory}" --data "$work/data" \
    >"$work/swapline.out" 2>"$work/swapline.err" &
pids+=($!)
swapline_pid=$!
port=""
for _ in $(seq 300); do
    port="$(sed -n 's/^swapline listening on 127\.0\.0\.1:\([0-9]\+\)$/\1/p' "$work/swapline.out")"
    [[ -n "$port" ]] && break
    kill -0 "$swapline_pid" 2>/dev/null || { cat "$work/swapline.err" >&2; exit 1; }
    sleep 0.1
done
[[ -n "$port" ]] || { echo "error: swapline did not report its port" >&2; exit 1; }

# --- nghttpd -------------------------------------------------------------------------------
nport="$(free_port)"
"${server_pin[@]}" nghttpd --no-tls -d "$work" "$nport" >"$work/nghttpd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),0.2).close()' \
        "$nport" 2>/dev/null && break
    sleep 0.1
done

h2load_args=(-c "$clients" -m "$streams" -t "$threads" -D "$duration")
[[ "$warmup" != 0 ]] && h2load_args+=(--warm-up-time="$warmup")

run() {  # name url [extra h2load args...]
    local name="$1" url="$2"; shift 2
    echo "==> h2load ${h2load_args[*]} $* $url" >&2
    "${client_pin[@]}" h2load "${h2load_args[@]}" "$@" "$url" >"$work/$name.txt" 2>&1 || {
        cat "$work/$name.txt" >&2; exit 1; }
    sed -n 's/^finished in .*, \([0-9.]\+\) req\/s.*/\1/p' "$work/$name.txt"
}

rps_swapline="$(run swapline "http://127.0.0.1:$port/swapline.v1.TaskService/CreateTask" \
    -d "$work/create.bin" -H 'content-type: application/grpc' -H 'te: trailers')"
rps_nghttpd="$(run nghttpd "http://127.0.0.1:$nport/index.html")"

summary() { grep -E '^(requests|status codes):' "$work/$1.txt" | sed 's/^/    /'; }

# h2load only sees HTTP statuses; a gRPC error is still HTTP 200. Count what the server really
# acknowledged with a second, counted run at a priority above everything queued: those tasks
# come out of the queue first, so draining them through grpcio gives an exact count.
counted="${BENCH_COUNTED:-10000}"
create_task_body "$work/marked.bin" "https://example.com/counted.jpg" 100
"${client_pin[@]}" h2load -n "$counted" -c "$clients" -m "$streams" -t "$threads" -d "$work/marked.bin" \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    "http://127.0.0.1:$port/swapline.v1.TaskService/CreateTask" >"$work/counted.txt" 2>&1 || true
counted_2xx="$(sed -n 's/^status codes: \([0-9]\+\) 2xx.*/\1/p' "$work/counted.txt")"
acknowledged="n/a (run tools/interop-venv.sh for grpcio)"
venv_python="$root/tests/.venv/bin/python"
if [[ -x "$venv_python" ]]; then
    acknowledged="$("$venv_python" - "$port" <<'PY' 2>&1 | tail -n 1 || true
import sys, time
sys.path.insert(0, "tests/interop")
import grpc, support
from support import tasks_pb2 as pb
ch = grpc.insecure_channel(f"127.0.0.1:{int(sys.argv[1])}", options=support.CHANNEL_OPTIONS)
stub = support.tasks_pb2_grpc.ConsumerServiceStub(ch)
n, deadline, more = 0, time.monotonic() + 60, True
while more and time.monotonic() < deadline:
    for f in [stub.FetchTask.future(pb.FetchTaskRequest(consumer_id="bench"), timeout=30)
              for _ in range(256)]:
        r = f.result()
        if r.HasField("task") and r.task.priority == 100:
            n += 1
        else:
            more = False
print(n if not more else f">= {n} (drain stopped after 60 s)")
PY
)"
fi
alive=yes; kill -0 "$swapline_pid" 2>/dev/null || alive=no

echo
echo "machine:   $(nproc) cores, $(sed -n 's/^model name\s*:\s*//p' /proc/cpuinfo | head -1)"
echo "settings:  h2load ${h2load_args[*]}${server_pin:+ (servers pinned: ${server_pin[*]}; h2load: ${client_pin[*]})}"
echo "swapline:  ${rps_swapline} req/s   (CreateTask, unary gRPC, --store ${BENCH_STORE:-memory})"
summary swapline
echo "nghttpd:   ${rps_nghttpd} req/s   (GET 64-byte file)"
summary nghttpd
python3 - "$rps_swapline" "$rps_nghttpd" <<'PY'
import sys
s, n = (float(x) for x in sys.argv[1:3])
print(f"ratio:     {s / n:.3f}  (swapline / nghttpd; the target is >= 0.5)")
PY
echo "counted:   h2load -n $counted: ${counted_2xx:-0} HTTP 2xx; CreateTask acknowledged by the server: $acknowledged"
echo "server alive after the runs: $alive"
