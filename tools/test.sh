#!/usr/bin/env bash
# The project's test command (README and CI call it): installs missing system packages, checks
# the generated protobuf-c code, builds once, runs the Swift unit tests and then the interop
# suite, which drives the real `swapline` binary with the stock Python grpcio client.
#
# Environment:
#   SWAPLINE_SKIP_APT=1      do not install system packages
#   SWAPLINE_PYTEST_ARGS     extra pytest arguments (e.g. "-k tasks -x")
#   SWAPLINE_PYTEST_WORKERS  pytest-xdist workers for the interop suite (default 2; 0 = serial)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n==> %s\n' "$*"; }

# --- system packages -----------------------------------------------------------------------
tools/install-deps.sh

# --- repository checks ---------------------------------------------------------------------
step "tools/check-unsafe.sh"
tools/check-unsafe.sh

# --- generated code up to date -------------------------------------------------------------
step "tools/check-generated.sh"
tools/check-generated.sh

# --- build and unit tests ------------------------------------------------------------------
step "swift build --build-tests"
swift build --build-tests

step "swift test (unit tests)"
swift test --skip-build --parallel

# --- interop suite -------------------------------------------------------------------------
step "python venv for the interop suite"
python="$(tools/interop-venv.sh | tail -n 1)"

bin_dir="$(swift build --show-bin-path)"
export SWAPLINE_BIN="${SWAPLINE_BIN:-$bin_dir/swapline}"
[[ -x "$SWAPLINE_BIN" ]] || { echo "error: $SWAPLINE_BIN was not built" >&2; exit 1; }

workers="${SWAPLINE_PYTEST_WORKERS:-2}"
xdist=()
if [[ "$workers" != 0 ]]; then
    # --dist loadfile keeps each module (and its module-scoped server) on one worker.
    xdist=(-n "$workers" --dist loadfile)
fi

step "pytest tests/interop (SWAPLINE_BIN=$SWAPLINE_BIN)"
export PYTHONDONTWRITEBYTECODE=1
# shellcheck disable=SC2086 # word splitting of the extra args is intended
"$python" -m pytest tests/interop "${xdist[@]}" ${SWAPLINE_PYTEST_ARGS:-}
