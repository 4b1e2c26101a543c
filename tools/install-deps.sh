#!/usr/bin/env bash
# Installs the Debian packages Swapline builds, runs and tests with, when any is missing.
# Set SWAPLINE_SKIP_APT=1 to skip (e.g. on a machine prepared by hand).
set -euo pipefail

packages=(libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler libcurl4-openssl-dev curl
          libsqlite3-dev nghttp2-client nghttp2-server python3-venv pkg-config)
[[ "${SWAPLINE_SKIP_APT:-0}" == 1 ]] && exit 0

missing=()
for package in "${packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
((${#missing[@]})) || exit 0

echo "==> installing system packages: ${missing[*]}" >&2
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
$sudo apt-get update >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}" >&2
