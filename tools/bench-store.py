#!/usr/bin/env python3
"""Durable CreateTask throughput with group commit on and off.

For each mode, starts `swapline serve` on a fresh --data directory (SQLite,
synchronous=FULL unless told otherwise), warms it up with h2load for a few seconds, then sends
a counted run of unary CreateTask calls from CLIENTS concurrent clients (h2load: one
connection and one stream at a time per client, so each client waits for its answer before
the next call) sized to last about DURATION seconds. Prints calls/s and the p50/p99 latency
of each mode, and the ratio. h2load only sees HTTP statuses (a gRPC error is HTTP 200 too),
so the tasks in the database are counted before and after the counted run: the difference
must equal the calls h2load saw answered.

Not a test: figures depend on the disk's fsync latency and on what else runs on the machine.

    tools/bench-store.py                                   # builds the release binary first
    SWAPLINE_BIN=.build/release/swapline tools/bench-store.py

Environment: BENCH_CLIENTS [64], BENCH_DURATION [10] s, BENCH_WARMUP [3] s,
BENCH_SYNCHRONOUS [full], BENCH_PIN [auto] (server on core 0, h2load on core 1 when there are
at least two), SWAPLINE_BIN, BENCH_SKIP_BUILD=1. Needs h2load (Debian: nghttp2-client).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "64"))
DURATION = float(os.environ.get("BENCH_DURATION", "10"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "3"))
SYNCHRONOUS = os.environ.get("BENCH_SYNCHRONOUS", "full")


def binary() -> Path:
    if "SWAPLINE_BIN" in os.environ:
        return Path(os.environ["SWAPLINE_BIN"])
    if os.environ.get("BENCH_SKIP_BUILD") != "1":
        print("==> swift build -c release --product swapline", file=sys.stderr)
        subprocess.run(["swift", "build", "-c", "release", "--product", "swapline"], cwd=ROOT, check=True)
    bin_dir = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.strip()
    return Path(bin_dir) / "swapline"


def pinning() -> tuple[list[str], list[str]]:
    """taskset prefixes for the server and for h2load, or none."""
    mode = os.environ.get("BENCH_PIN", "auto")
    if mode == "0" or (mode == "auto" and (os.cpu_count() or 1) < 2) or not shutil.which("taskset"):
        return [], []
    return ["taskset", "-c", "0"], ["taskset", "-c", "1"]


def create_request_body() -> bytes:
    """A framed CreateTaskRequest{params{source_url, target_url}}, hand-encoded protobuf."""
    def field(number: int, payload: bytes) -> bytes:
        return bytes([number << 3 | 2, len(payload)]) + payload  # every payload here is < 128 bytes
    params = field(1, b"https://example.com/source.jpg") + field(2, b"https://example.com/target.jpg")
    message = field(2, params)
    return struct.pack(">BI", 0, len(message)) + message


class Server:
    def __init__(self, bin_path: Path, data_dir: Path, group_commit: str, prefix: list[str]):
        self.database = data_dir / "tasks.db"
        self.proc = subprocess.Popen(
            [*prefix, str(bin_path), "serve", "--port", "0", "--data", str(data_dir), "--synchronous", SYNCHRONOUS,
             "--group-commit", group_commit, "--log-level", "warning"],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.stop()
            raise RuntimeError(f"swapline did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.rsplit(':', 1)[1])}/swapline.v1.TaskService/CreateTask"

    def stored_tasks(self) -> int:
        # WAL mode: a reader in another process sees every committed task without blocking the server.
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True) as database:
            return database.execute("SELECT count(*) FROM tasks").fetchone()[0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def h2load(prefix: list[str], url: str, body: Path, *limits: str, log: Path | None = None) -> str:
    args = [*prefix, "h2load", "-c", str(CLIENTS), "-m", "1", "-t", "1", *limits, "-d", str(body),
            "-H", "content-type: application/grpc", "-H", "te: trailers", url]
    if log is not None:
        args.insert(len(prefix) + 1, f"--log-file={log}")
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def rate_of(output: str) -> float:
    return float(re.search(r"^finished in .*?, ([0-9.]+) req/s", output, re.M).group(1))


def run(bin_path: Path, group_commit: str, work: Path) -> dict:
    server_pin, client_pin = pinning()
    data_dir = work / f"data-{group_commit}"
    server = Server(bin_path, data_dir, group_commit, server_pin)
    try:
        body = work / "create.bin"
        body.write_bytes(create_request_body())
        warm_rate = rate_of(h2load(client_pin, server.url, body, "-D", f"{WARMUP:g}"))
        time.sleep(0.5)  # let calls cut off by the end of the warm-up finish
        before = server.stored_tasks()
        calls = max(CLIENTS * 10, int(warm_rate * DURATION))
        log = work / f"latency-{group_commit}.tsv"
        output = h2load(client_pin, server.url, body, "-n", str(calls), log=log)
        answered = int(re.search(r"^status codes: (\d+) 2xx", output, re.M).group(1))
        stored = server.stored_tasks() - before
        if not answered == stored == calls:
            raise RuntimeError(f"group commit {group_commit}: {calls} sent, {answered} answered, {stored} stored")
        latencies = sorted(int(line.split("\t")[2]) / 1000 for line in log.read_text().splitlines() if line)
        return {"mode": group_commit, "rate": rate_of(output), "calls": calls,
                "p50": latencies[len(latencies) // 2], "p99": latencies[min(len(latencies) - 1, len(latencies) * 99 // 100)]}
    finally:
        server.stop()


def main() -> None:
    if not shutil.which("h2load"):
        sys.exit("error: h2load not found (Debian: nghttp2-client)")
    bin_path = binary()
    work = Path(tempfile.mkdtemp(prefix="swapline-bench-store-"))
    try:
        print(f"CreateTask, {CLIENTS} concurrent clients (one call in flight each), ~{DURATION:g} s counted run "
              f"after {WARMUP:g} s warm-up, synchronous={SYNCHRONOUS}, {bin_path}")
        results = [run(bin_path, mode, work) for mode in ("on", "off")]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for r in results:
        print(f"group commit {r['mode']:>3}: {r['rate']:9.0f} calls/s   p50 {r['p50']:7.2f} ms   "
              f"p99 {r['p99']:7.2f} ms   ({r['calls']} calls, every one answered and stored)")
    print(f"ratio on/off: {results[0]['rate'] / results[1]['rate']:.1f}x")


if __name__ == "__main__":
    main()
