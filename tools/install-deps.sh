#!/usr/bin/env bash
# Installs the Debian packages Swapline builds, runs and tests with, when any is missing
# (ffmpeg: the GIF and WebP renditions of `swapline engine`; chromium and chromium-driver: the
# dashboard's browser tests; tmux: the CLI's terminal tests).
# Set SWAPLINE_SKIP_APT=1 to skip (e.g. on a machine prepared by hand).
#
# PostgreSQL, HAProxy and nginx are test dependencies: the tests start their own throwaway
# instances on free loopback ports (tools/pg-test-cluster.sh, tests/interop/support.py). Their
# Debian packages would otherwise create and start system services on install (a `main`
# PostgreSQL cluster on 5432, nginx on port 80, haproxy), so while this script installs them
# no service is started and postgresql-common creates no cluster.
set -euo pipefail

packages=(libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler libcurl4-openssl-dev curl
          libsqlite3-dev nghttp2-client nghttp2-server python3-venv pkg-config
          postgresql-15 postgresql-client-15 haproxy nginx ffmpeg
          chromium chromium-driver tmux)
[[ "${SWAPLINE_SKIP_APT:-0}" == 1 ]] && exit 0

missing=()
for package in "${packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
((${#missing[@]})) || exit 0

echo "==> installing system packages: ${missing[*]}" >&2
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"

# No service starts while we install (invoke-rc.d asks policy-rc.d; 101 = action forbidden).
# An existing policy-rc.d is the machine owner's and is left alone.
policy=/usr/sbin/policy-rc.d
cluster_conf=/etc/postgresql-common/createcluster.d/50-swapline-no-main-cluster.conf
cleanup=()
restore() {
    local path
    for path in "${cleanup[@]}"; do $sudo rm -f "$path"; done
}
trap restore EXIT
if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\n# tools/install-deps.sh: no service starts while it installs packages\nexit 101\n' \
        | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    cleanup+=("$policy")
fi
if [[ " ${missing[*]} " == *" postgresql-15 "* ]]; then
    # Kept after the install: Debian's createcluster.conf includes this directory, and a later
    # reinstall or upgrade of postgresql-15 must not create the cluster either.
    $sudo mkdir -p "$(dirname "$cluster_conf")"
    printf '# tools/install-deps.sh: the tests run their own clusters (tools/pg-test-cluster.sh)\ncreate_main_cluster = false\n' \
        | $sudo tee "$cluster_conf" >/dev/null
fi

$sudo apt-get update >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}" >&2
