#!/usr/bin/env bash
# The one-command end-to-end demo: installs what is missing, builds swapline, starts the
# FaceFusion simulator (tools/facefusion-sim, a stand-in for a real FaceFusion deployment) and
# `swapline serve` with in-process workers and local storage, submits a face-swap task built from
# the simulator's sample images, shows its progress as it happens and prints where the results
# are. Everything listens on 127.0.0.1 only and is stopped on exit; the results stay.
#
# Environment:
#   SWAPLINE_BIN        use this swapline binary instead of building one
#   SWAPLINE_DEMO_DIR   where results go (default: swapline-data/demo in the repository)
#   SWAPLINE_SKIP_APT=1 do not install system packages
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
step() { printf '==> %s\n' "$*" >&2; }

tools/install-deps.sh

# Pillow is all the simulator needs; it gets a small venv of its own.
venv="$root/.venv"
if ! "$venv/bin/python" -c 'import PIL' 2>/dev/null; then
    step "python venv with Pillow for the FaceFusion simulator ($venv)"
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --disable-pip-version-check -q "pillow>=10,<14" >&2
fi

if [[ -z "${SWAPLINE_BIN:-}" ]]; then
    step "building swapline"
    swift build --product swapline >&2
    SWAPLINE_BIN="$(swift build --show-bin-path)/swapline"
fi

demo_dir="${SWAPLINE_DEMO_DIR:-$root/swapline-data/demo}"
mkdir -p "$demo_dir/outputs" "$demo_dir/engine"
logs="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$logs"
}
trap cleanup EXIT

# Starts a process in the background (in this shell, so that the exit trap knows its pid).
launch() {
    local name=$1; shift
    "$@" > "$logs/$name.out" 2> "$logs/$name.err" &
    pids+=($!)
}

# Waits for the "listening on 127.0.0.1:PORT" line of a launched process; echoes PORT.
await_port() {
    local name=$1 port
    for _ in $(seq 300); do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$logs/$name.out" | head -n 1)
        if [[ -n "$port" ]]; then echo "$port"; return; fi
        sleep 0.1
    done
    echo "error: $name did not start:" >&2
    cat "$logs/$name.err" >&2
    exit 1
}

step "starting the FaceFusion simulator"
launch facefusion-sim "$venv/bin/python" tools/facefusion-sim --port 0 --latency-ms 1500 --output-dir "$demo_dir/engine"
engine_port=$(await_port facefusion-sim)
engine="http://127.0.0.1:$engine_port"

step "starting swapline serve with 2 in-process workers (engine $engine)"
# The sample images are on loopback, which the URL policy refuses by default (docs/security.md):
# this one host:port is let through, nothing else inside.
launch swapline "$SWAPLINE_BIN" serve --port 0 --store memory --workers 2 --engine "$engine" \
    --storage "local:$demo_dir/outputs" --url-allow-host "127.0.0.1:$engine_port"
port=$(await_port swapline)
server="http://127.0.0.1:$port"

step "submitting a face-swap task and following it (swapline create --watch, gRPC via SwaplineClient)"
"$SWAPLINE_BIN" create --server "$server" --source "$engine/samples/source.jpg" \
    --target "$engine/samples/target.jpg" --resolution 512x512 --model inswapper_128_fp16 --watch \
    | tee "$logs/create.out"
task_id=$(head -n 1 "$logs/create.out")

step "the server publishes the stored files at /outputs/ (under an unguessable key per file)"
for stored in $(cd "$demo_dir/outputs" && find "$task_id" -type f -name 'result.*' | sort); do
    curl -sS -o /dev/null -w "GET %{url_effective} -> %{http_code} %{content_type}, %{size_download} bytes\n" \
        "$server/outputs/$stored"
done
echo "stored files (they stay after the demo stops):"
ls -lR "$demo_dir/outputs/$task_id"
echo "DEMO OK: task $task_id COMPLETED; results in $demo_dir/outputs/$task_id"
