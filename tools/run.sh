#!/usr/bin/env bash
# Builds the release binary (installing missing system packages first) and runs the server.
# Arguments are passed to `swapline serve`, e.g. `tools/run.sh --port 50051 --lease-ms 60000`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tools/install-deps.sh
swift build -c release --product swapline >&2
exec "$(swift build -c release --show-bin-path)/swapline" serve "$@"
