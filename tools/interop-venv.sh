#!/usr/bin/env bash
# Creates (idempotently) the Python venv that the interop suite runs in: tests/.venv with the
# stock grpcio client, grpcio-tools (stubs are generated from proto/ at test time), pytest,
# hyper-h2 for raw HTTP/2 frame tests, and for the REST shim httpx (HTTP/1.1 and HTTP/2),
# openapi-spec-validator and schemathesis, Pillow (FaceFusion simulator and worker tests),
# psycopg 3 for the PostgreSQL test databases (tests/interop/conftest.py), and moto's S3 server
# (with boto3) for the S3 storage tests; prometheus_client (parsing /metrics), grpcio-reflection
# (a stock reflection client) and selenium (driving Chromium through chromium-driver).
# Prints the venv's python path on the last line.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SWAPLINE_VENV:-$root/tests/.venv}"
python="${PYTHON:-python3}"

# Pinned to known-good major lines; bump together.
requirements=(
    "grpcio>=1.60,<2"
    "grpcio-tools>=1.60,<2"
    "protobuf>=4.25"
    "pytest>=8,<10"
    "pytest-timeout>=2.2,<3"
    "pytest-xdist>=3.5,<4"
    "h2>=4.1,<5"
    "httpx[http2]>=0.27,<1"
    "openapi-spec-validator>=0.7,<1"
    "schemathesis>=4,<5"
    "pillow>=10,<14"
    "psycopg[binary]>=3.1,<4"
    "moto[server]>=5.1,<6"
    "prometheus-client>=0.20,<1"
    "grpcio-reflection>=1.60,<2"
    "selenium>=4.15,<5"
)
stamp="$venv/.swapline-requirements"
wanted="$(printf '%s\n' "${requirements[@]}")"

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]] \
    && "$venv/bin/python" -c 'import grpc, grpc_tools, pytest, h2, pytest_timeout, xdist, httpx, openapi_spec_validator, schemathesis, PIL, psycopg, moto.server, boto3, prometheus_client, grpc_reflection, selenium' 2>/dev/null; then
    echo "$venv/bin/python"
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    if ! "$python" -m venv "$venv" >&2; then
        # Debian's python3 ships venv/ensurepip separately.
        echo "interop-venv: venv creation failed; installing python3-venv" >&2
        rm -rf "$venv"
        if [[ $(id -u) -eq 0 ]]; then sudo=""; else sudo="sudo"; fi
        $sudo apt-get update >&2
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y python3-venv >&2
        "$python" -m venv "$venv" >&2
    fi
fi

"$venv/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip >&2
"$venv/bin/python" -m pip install --disable-pip-version-check -q "${requirements[@]}" >&2
printf '%s\n' "$wanted" > "$stamp"
echo "$venv/bin/python"
