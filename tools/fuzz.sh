#!/usr/bin/env bash
# Builds and runs the libFuzzer targets of fuzz/targets/ (docs/security.md, "Fuzzing").
#
#   tools/fuzz.sh --list                 the targets, one a line
#   tools/fuzz.sh TARGET SECONDS [ARG…]  builds TARGET and fuzzes it for SECONDS; extra
#                                        arguments go to libFuzzer (e.g. -max_len=65536)
#   tools/fuzz.sh --all SECONDS          builds every target, then fuzzes each for SECONDS
#   tools/fuzz.sh --ci SECONDS           the same for the targets whose build has no BoringSSL
#                                        (what tools/test.sh runs)
#   tools/fuzz.sh --repro TARGET FILE…   builds TARGET and runs it once on each FILE
#
# Builds go to their own scratch folder, .build-fuzz (gitignored), in release mode with
# `-sanitize=fuzzer,address` and `-enable-testing` (the targets reach internal types with
# @testable), linked with lld. Each run starts from the committed seeds in fuzz/corpus/TARGET
# and keeps what it finds in .build-fuzz-runs/corpus/TARGET, so later runs start from there. A
# crash, a hang (an input taking more than 10 s), an out-of-memory or a failed check exits
# nonzero and prints the path of the reproducer it saved in .build-fuzz-runs/findings/TARGET;
# fix the bug, add the input as a regression test, and rerun.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scratch="$root/.build-fuzz"
# Corpora and reproducers live beside the scratch folder: SwiftPM owns what is inside it.
runs="$root/.build-fuzz-runs"
# lld: gold (the default) fails with an internal error on the instrumented objects.
build_flags=(-c release --scratch-path "$scratch" -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing -Xswiftc -use-ld=lld)
# The fuzz targets exist in Package.swift only with this set.
export SWAPLINE_FUZZ=1

targets() { (cd fuzz/targets && ls -1d fuzz-*); }
# fuzz-rest-json and fuzz-http1 link SwaplineServer or H2Transport and so build BoringSSL twice
# (swift-crypto's and NIOSSL's): minutes more than these three on CI's two cores.
ci_targets=(fuzz-grpc-framing fuzz-proto-decode fuzz-url-policy)

usage() {
    sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

require_target() {
    targets | grep -qxF -- "$1" || { echo "error: no fuzz target '$1' (tools/fuzz.sh --list)" >&2; exit 2; }
}

build() {
    for target in "$@"; do
        echo "==> building $target" >&2
        swift build "${build_flags[@]}" --product "$target" >&2
    done
}

binary() { echo "$scratch/release/$1"; }

# libFuzzer's options for every run: hangs and memory blow-ups count as failures (and leaks:
# AddressSanitizer's leak check is on).
libfuzzer_options=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1)

fuzz() {
    local target="$1" seconds="$2"
    shift 2
    local work="$runs/corpus/$target" artifacts="$runs/findings/$target/"
    mkdir -p "$work" "$artifacts"
    local extra=()
    [[ -f "fuzz/dict/$target.dict" ]] && extra+=("-dict=fuzz/dict/$target.dict")
    echo "==> fuzzing $target for $seconds s" >&2
    local before status=0
    before="$(ls -1 "$artifacts")"
    "$(binary "$target")" "${libfuzzer_options[@]}" "${extra[@]}" -max_total_time="$seconds" \
        -artifact_prefix="$artifacts" "$@" "$work" "fuzz/corpus/$target" || status=$?
    if [[ $status -ne 0 ]]; then
        echo "error: $target failed (exit $status)" >&2
        comm -13 <(echo "$before") <(ls -1 "$artifacts") | while read -r artifact; do
            echo "reproducer: $artifacts$artifact  (tools/fuzz.sh --repro $target $artifacts$artifact)" >&2
        done
        return "$status"
    fi
}

case "${1:-}" in
    --list)
        targets
        ;;
    --all | --ci)
        [[ $# -eq 2 ]] || usage
        if [[ "$1" == --all ]]; then mapfile -t chosen < <(targets); else chosen=("${ci_targets[@]}"); fi
        build "${chosen[@]}"
        failed=0
        for target in "${chosen[@]}"; do fuzz "$target" "$2" || failed=1; done
        exit "$failed"
        ;;
    --repro)
        [[ $# -ge 3 ]] || usage
        require_target "$2"
        build "$2"
        target="$2"
        shift 2
        "$(binary "$target")" "${libfuzzer_options[@]}" "$@"
        ;;
    "" | -*)
        usage
        ;;
    *)
        [[ $# -ge 2 ]] || usage
        require_target "$1"
        [[ "$2" =~ ^[0-9]+$ ]] || { echo "error: SECONDS must be a whole number, not '$2'" >&2; exit 2; }
        build "$1"
        fuzz "$@"
        ;;
esac
