#!/usr/bin/env bash
# Unsafe pointers and C imports belong only in the thin wrappers of the C libraries
# (docs/architecture.md). Fails, naming the file, when they appear anywhere else in Sources/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# The files allowed to import C modules or use Unsafe* types.
allowed='^Sources/(H2Transport/NGHTTP2Session\.swift|SwaplineMessages/.*|SwaplineStore/SQLite.*|CurlHTTP/Curl.*|CurlHTTP/SystemResolver\.swift|SwaplineCore/WallClock\.swift)$'

violations=$(grep -rlE '^\s*(@testable\s+)?import\s+C[A-Z]|Unsafe(Mutable)?(Raw)?(Buffer)?Pointer|Unmanaged<' Sources --include='*.swift' \
    | grep -vE "$allowed" || true)
if [[ -n "$violations" ]]; then
    echo "unsafe code or C imports outside the C wrappers:" >&2
    echo "$violations" >&2
    exit 1
fi
echo "check-unsafe: ok"
