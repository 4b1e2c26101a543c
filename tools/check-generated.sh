#!/usr/bin/env bash
# Fails (exit 1, naming the files) when the committed output in Sources/CSwaplineProto
# (protobuf-c code and the descriptor set) differs from what tools/generate-proto.sh makes of
# proto/ now, or the embedded dashboard (Sources/SwaplineServer/UI/DashboardAssets.swift) from
# what tools/generate-ui-assets.sh makes of ui/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
committed="Sources/CSwaplineProto"

fresh="$(mktemp -d)"
trap 'rm -rf "$fresh"' EXIT
tools/generate-proto.sh "$fresh" 2>/dev/null

list() {
    (cd "$1" && find . -type f \( -name '*.pb-c.c' -o -name '*.pb-c.h' -o -path ./include/CSwaplineProto.h -o -path ./include/module.modulemap \
        -o -path ./descriptor_set.c -o -path ./include/descriptor_set.h \) -printf '%P\n') \
        | LC_ALL=C sort
}

stale=()
while read -r file; do
    if [[ ! -f "$committed/$file" ]]; then
        stale+=("$committed/$file (missing)")
    elif ! cmp -s "$fresh/$file" "$committed/$file"; then
        stale+=("$committed/$file (differs)")
    fi
done < <(list "$fresh")
while read -r file; do
    [[ -f "$fresh/$file" ]] || stale+=("$committed/$file (no longer generated)")
done < <(list "$committed")

dashboard="Sources/SwaplineServer/UI/DashboardAssets.swift"
tools/generate-ui-assets.sh "$fresh/DashboardAssets.swift"
cmp -s "$fresh/DashboardAssets.swift" "$dashboard" || stale+=("$dashboard (differs from ui/: run tools/generate-ui-assets.sh)")

if ((${#stale[@]})); then
    echo "check-generated: generated code is stale; run tools/generate-proto.sh or tools/generate-ui-assets.sh:" >&2
    printf '  %s\n' "${stale[@]}" >&2
    exit 1
fi
echo "check-generated: ok"
