#!/usr/bin/env bash
# The project's test command (README and CI call it): installs missing system packages, checks
# the generated protobuf-c code, builds once, runs the Swift unit tests and then the interop
# suite, which drives the real `swapline` binary with the stock Python grpcio client.
#
# Both test runs share one throwaway PostgreSQL cluster on a free loopback port
# (tools/pg-test-cluster.sh), started once before `swift test`, exported as
# SWAPLINE_TEST_POSTGRES_URL and always stopped and removed on exit. If it cannot start, the
# run fails: PostgreSQL tests are never skipped silently.
#
# Environment:
#   SWAPLINE_SKIP_APT=1          do not install system packages
#   SWAPLINE_PYTEST_ARGS         extra pytest arguments (e.g. "-k tasks -x")
#   SWAPLINE_PYTEST_WORKERS      pytest-xdist workers for the interop suite (default 2; 0 = serial)
#   SWAPLINE_TEST_POSTGRES=off   developers only: start no cluster; the PostgreSQL tests are
#                                skipped (refused when CI is set)
#   SWAPLINE_TEST_POSTGRES_URL   use this cluster instead of starting one (its user needs
#                                CREATEDB: tests make a database each)
#   SWAPLINE_FUZZ_SECONDS        seconds each libFuzzer target of `tools/fuzz.sh --ci` runs
#                                (default 30; 0 skips the fuzzing step)
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

step "tools/cli-reference.sh --check"
tools/cli-reference.sh --check .build/debug/swapline

# --- PostgreSQL for both test runs ---------------------------------------------------------
pg_dir=""
stop_postgres() {
    if [[ -n "$pg_dir" ]]; then
        step "stopping the test PostgreSQL cluster"
        tools/pg-test-cluster.sh stop "$pg_dir/cluster" || true
        rm -rf "$pg_dir"
        pg_dir=""
    fi
}
trap stop_postgres EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -n "${SWAPLINE_TEST_POSTGRES_URL:-}" ]]; then
    step "PostgreSQL: using SWAPLINE_TEST_POSTGRES_URL from the environment"
elif [[ "${SWAPLINE_TEST_POSTGRES:-on}" == off ]]; then
    if [[ -n "${CI:-}" ]]; then
        echo "error: SWAPLINE_TEST_POSTGRES=off is not allowed under CI" >&2
        exit 1
    fi
    step "PostgreSQL: SWAPLINE_TEST_POSTGRES=off, its tests are skipped"
else
    step "starting a throwaway PostgreSQL cluster (tools/pg-test-cluster.sh)"
    # Its own parent directory, searchable by the `postgres` user the cluster runs as.
    pg_dir="$(mktemp -d "${TMPDIR:-/tmp}/swapline-test-pg.XXXXXX")"
    chmod 755 "$pg_dir"
    if ! SWAPLINE_TEST_POSTGRES_URL="$(tools/pg-test-cluster.sh start "$pg_dir/cluster" | tail -n 1)" \
        || [[ "$SWAPLINE_TEST_POSTGRES_URL" != postgres://* ]]; then
        echo "error: could not start PostgreSQL for the tests (developers: SWAPLINE_TEST_POSTGRES=off skips them)" >&2
        exit 1
    fi
    export SWAPLINE_TEST_POSTGRES_URL
fi

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

# --- fuzzing -------------------------------------------------------------------------------
# A short run of the libFuzzer targets that build without BoringSSL (tools/fuzz.sh builds them
# into .build-fuzz); it finds what a change breaks in the parsers near the seeds, not what hours
# of fuzzing would. `tools/fuzz.sh --all SECONDS` runs all five.
fuzz_seconds="${SWAPLINE_FUZZ_SECONDS:-30}"
if [[ "$fuzz_seconds" != 0 ]]; then
    step "tools/fuzz.sh --ci $fuzz_seconds"
    tools/fuzz.sh --ci "$fuzz_seconds"
fi
