#!/usr/bin/env bash
# Soak test of the hostile-client limits (issue 11): normal grpcio traffic for a quiet phase,
# then again while every abuse case of tools/soak.py runs in parallel; prints the normal
# clients' call and error counts, p50/p99 latency of both phases and the server's RSS, and
# exits non-zero if a normal call failed or the server died. Bounded in time: two phases of
# --seconds each (default 30) plus start-up.
#
#   tools/soak.sh [--seconds N] [--clients N] [--rate N] [--abuse case,case] [-- extra serve flags]
#
# Environment: SWAPLINE_BIN (default: a release build made here), SOAK_SKIP_BUILD=1.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [[ -z "${SWAPLINE_BIN:-}" ]]; then
    if [[ -z "${SOAK_SKIP_BUILD:-}" ]]; then
        swift build -c release --product swapline >&2
    fi
    SWAPLINE_BIN="$(swift build -c release --show-bin-path)/swapline"
fi
export SWAPLINE_BIN
python="$(tools/interop-venv.sh | tail -n 1)"
PYTHONDONTWRITEBYTECODE=1 exec "$python" tools/soak.py "$@"
